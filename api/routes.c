/* routes: the pure router, (method, target) -> response. No I/O: the
 * transports (http1_conn.c, http2.c) send what it returns, and
 * tests/unit/test_routes.c calls it directly.
 *
 * Every body is JSON ("application/json"), compact, no trailing newline.
 * Times are RFC 3339 UTC strings ("2024-01-15T10:30:00.123Z") or null.
 *
 *   GET|HEAD /services                200  the snapshot's list body, as is:
 *       {"services":[<service>...],"count":N,"cache_version":V}
 *   GET|HEAD /services/{name}         200  the service body, as is: <service>
 *       ({name} is percent-decoded; the query string is ignored)
 *                                     404  {"error":"service_not_found",
 *                                           "message":"service 'x' not found"}
 *   GET|HEAD /cache/stats             200  <stats>
 *   POST /cache/clear                 200  {"cleared":{"services":N,"metrics":0},
 *                                           "stats":<stats>}
 *   POST /cache/refresh               200  {"refreshed":true,"stats":<stats>}
 *                                     503  {"error":"refresh_failed","message":"...",
 *                                           "stats":<stats>}
 *                                     503  {"error":"refresh_unavailable","message":"..."}
 *                                          (no resync hook)
 *   GET|HEAD /health                  200 healthy|degraded, 503 unhealthy:
 *       {"status":"healthy"|"degraded"|"unhealthy","reasons":["..."],
 *        "docker":<docker>,"cache":<stats>,"publisher":{"status":"disabled"},
 *        "last_refresh":T|null,"version":"0.1.0","uptime_sec":N}
 *   any other path                    404  {"error":"not_found","message":"no route for /x"}
 *   known path, other method          405  {"error":"method_not_allowed","message":"..."}
 *                                          + Allow: "GET, HEAD" or "POST"
 *   bad target (%-escape, NUL)        400  {"error":"bad_request","message":"..."}
 *
 *   <stats>  = {"services":N,"metrics":0,"cache_version":V,"last_refresh":T|null,
 *               "refreshes":N,"added":N,"updated":N,"removed":N,"clears":N,
 *               "events_received":N,"last_event_time":T|null,"docker":<docker>}
 *   <docker> = {"state":"connecting"|"connected"|"unreachable"|"not_manager"|"error",
 *               "reason":"..."|null,"api_version":"1.41"|null,
 *               "engine_version":"20.10.24"|null,"events_connected":bool}
 *
 * /health: unhealthy while Docker is not connected (reason "docker
 * unreachable: ...", "not a swarm manager: ...", "docker connecting",
 * "docker error: ..."); once connected, degraded when the events stream is
 * down or the last full refresh is older than 3 x REFRESH_INTERVAL_SEC. */
#include "api/api_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "cache/util.h"

static const char json_ctype[] = "application/json";
static const char allow_get[] = "GET, HEAD";
static const char allow_post[] = "POST";

const char *sr_api__reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void sr_api__response_clear(struct sr_api__response *r)
{
    sr_snapshot_release(r->snap);
    free(r->owned);
    memset(r, 0, sizeof(*r));
}

/* Steals obj and makes it the owned body. */
static void json_response(struct sr_api__response *r, int status, json_t *obj)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_type = json_ctype;
    r->owned = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (r->owned == NULL)
        abort(); /* json_dumps fails only on OOM */
    r->body = r->owned;
    r->len = strlen(r->owned);
}

void sr_api__error_response(struct sr_api__response *r, int status, const char *code,
                            const char *message)
{
    json_response(r, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

/* ---- JSON pieces ---------------------------------------------------------- */

static json_t *time_or_null(double t)
{
    char buf[40];
    return t > 0 ? json_string(sr_format_time(t, buf, sizeof(buf))) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static const char *state_name(enum sr_source_state s)
{
    switch (s) {
    case SR_SOURCE_CONNECTING:
        return "connecting";
    case SR_SOURCE_CONNECTED:
        return "connected";
    case SR_SOURCE_UNREACHABLE:
        return "unreachable";
    case SR_SOURCE_NOT_MANAGER:
        return "not_manager";
    case SR_SOURCE_ERROR:
        return "error";
    }
    return "error";
}

static json_t *docker_json(const struct sr_source_status *src)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:b}", "state", state_name(src->state), "reason",
                     str_or_null(src->reason), "api_version", str_or_null(src->api_version),
                     "engine_version", str_or_null(src->engine_version), "events_connected",
                     src->events_connected);
}

static json_t *stats_json(const struct sr_cache_stats *st)
{
    return json_pack("{s:I, s:i, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "services",
                     (json_int_t)st->services, "metrics", 0, "cache_version",
                     (json_int_t)st->version, "last_refresh", time_or_null(st->last_refresh),
                     "refreshes", (json_int_t)st->refreshes, "added", (json_int_t)st->added,
                     "updated", (json_int_t)st->updated, "removed", (json_int_t)st->removed,
                     "clears", (json_int_t)st->clears, "events_received",
                     (json_int_t)st->source.events_received, "last_event_time",
                     time_or_null(st->source.last_event_time), "docker", docker_json(&st->source));
}

static json_t *current_stats(const struct sr_api__router *rt)
{
    struct sr_cache_stats st;
    sr_cache_get_stats(rt->cache, &st);
    return stats_json(&st);
}

/* "what: reason", or just "what" when there is no reason. */
static json_t *reason_str(const char *what, const char *reason)
{
    char buf[384];
    if (reason[0])
        snprintf(buf, sizeof(buf), "%s: %s", what, reason);
    else
        snprintf(buf, sizeof(buf), "%s", what);
    return json_string(buf);
}

static void health(const struct sr_api__router *rt, struct sr_api__response *out)
{
    struct sr_cache_stats st;
    sr_cache_get_stats(rt->cache, &st);
    const struct sr_source_status *src = &st.source;
    json_t *reasons = json_array();
    const char *status = "healthy";

    switch (src->state) {
    case SR_SOURCE_CONNECTED:
        break;
    case SR_SOURCE_CONNECTING:
        json_array_append_new(reasons, reason_str("docker connecting", src->reason));
        break;
    case SR_SOURCE_UNREACHABLE:
        json_array_append_new(reasons, reason_str("docker unreachable", src->reason));
        break;
    case SR_SOURCE_NOT_MANAGER:
        json_array_append_new(reasons, reason_str("not a swarm manager", src->reason));
        break;
    case SR_SOURCE_ERROR:
    default:
        json_array_append_new(reasons, reason_str("docker error", src->reason));
        break;
    }
    if (src->state != SR_SOURCE_CONNECTED) {
        status = "unhealthy";
    } else {
        /* Degradations only mean something once Docker answers: while it is
         * down, the events stream and refreshes are down as a consequence. */
        if (!src->events_connected)
            json_array_append_new(reasons, json_string("docker events stream down"));
        double now = rt->now ? rt->now() : sr_now();
        double max_age = 3.0 * rt->refresh_interval_sec;
        if (st.last_refresh <= 0) {
            json_array_append_new(reasons, json_string("no full refresh yet"));
        } else if (rt->refresh_interval_sec > 0 && now - st.last_refresh > max_age) {
            char buf[128];
            snprintf(buf, sizeof(buf), "last refresh %.0f s ago (more than 3 x %u s)",
                     now - st.last_refresh, rt->refresh_interval_sec);
            json_array_append_new(reasons, json_string(buf));
        }
        if (json_array_size(reasons) > 0)
            status = "degraded";
    }

    double up = sr_mono() - rt->started_mono;
    json_t *body =
        json_pack("{s:s, s:o, s:o, s:o, s:{s:s}, s:o, s:s, s:I}", "status", status, "reasons",
                  reasons, "docker", docker_json(src), "cache", stats_json(&st), "publisher",
                  "status", "disabled", "last_refresh", time_or_null(st.last_refresh), "version",
                  SR_VERSION, "uptime_sec", (json_int_t)(up > 0 ? up : 0));
    json_response(out, strcmp(status, "unhealthy") == 0 ? 503 : 200, body);
}

void sr_api__refresh_response(const struct sr_api__router *rt, int status,
                              struct sr_api__response *out)
{
    if (status == 0) {
        json_response(out, 200,
                      json_pack("{s:b, s:o}", "refreshed", 1, "stats", current_stats(rt)));
        return;
    }
    struct sr_cache_stats st;
    sr_cache_get_stats(rt->cache, &st);
    json_t *msg = reason_str("service refresh failed", st.source.reason);
    json_response(out, 503,
                  json_pack("{s:s, s:o, s:o}", "error", "refresh_failed", "message", msg, "stats",
                            stats_json(&st)));
}

static void clear(const struct sr_api__router *rt, struct sr_api__response *out)
{
    size_t n = sr_cache_clear(rt->cache);
    json_response(out, 200,
                  json_pack("{s:{s:I, s:i}, s:o}", "cleared", "services", (json_int_t)n, "metrics",
                            0, "stats", current_stats(rt)));
}

static void service(const struct sr_api__router *rt, const char *name, struct sr_api__response *out)
{
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    const struct sr_svc *svc = sr_snapshot_find(snap, name);
    if (svc == NULL) {
        sr_snapshot_release(snap);
        char msg[SR_API_MAX_REQUEST_LINE + 64];
        snprintf(msg, sizeof(msg), "service '%s' not found", name);
        sr_api__error_response(out, 404, "service_not_found", msg);
        return;
    }
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = json_ctype;
    out->body = sr_svc_body(svc, &out->len);
    out->snap = snap; /* keeps svc and its body alive until sent */
}

static void list(const struct sr_api__router *rt, struct sr_api__response *out)
{
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = json_ctype;
    out->snap = sr_cache_acquire(rt->cache);
    out->body = sr_snapshot_list_body(out->snap, &out->len);
}

/* ---- routing --------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long sr_api__percent_decode(const char *src, size_t len, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        /* A NUL would cut the name short and alias another service. */
        if (c == '\0')
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

/* A known path and the methods it takes. */
enum route {
    R_NONE = 0,
    R_HEALTH,
    R_SERVICES,
    R_SERVICE,
    R_STATS,
    R_REFRESH,
    R_CLEAR,
};

static bool method_ok(enum route r, const char *m)
{
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0;
    return (r == R_REFRESH || r == R_CLEAR) ? post : get;
}

enum sr_api__route_result sr_api__route(const struct sr_api__router *rt, const char *method,
                                        const char *target, struct sr_api__response *out)
{
    const char *path = target;
    /* absolute-form (RFC 9112 §3.2.2): servers must accept it. */
    if (strncasecmp(path, "http://", 7) == 0 || strncasecmp(path, "https://", 8) == 0) {
        path = strstr(path, "//") + 2;
        path += strcspn(path, "/?");
        if (*path != '/') {
            sr_api__error_response(out, 400, "bad_request", "request target has no path");
            return SR_API_ROUTE_DONE;
        }
    }
    if (*path != '/') {
        sr_api__error_response(out, 400, "bad_request", "request target must start with '/'");
        return SR_API_ROUTE_DONE;
    }
    size_t plen = strcspn(path, "?#");

    enum route r = R_NONE;
    const char *name = NULL;
    size_t name_len = 0;
#define IS(lit) (plen == sizeof(lit) - 1 && memcmp(path, lit, plen) == 0)
    if (IS("/health"))
        r = R_HEALTH;
    else if (IS("/services"))
        r = R_SERVICES;
    else if (IS("/cache/stats"))
        r = R_STATS;
    else if (IS("/cache/refresh"))
        r = R_REFRESH;
    else if (IS("/cache/clear"))
        r = R_CLEAR;
    else if (plen > 10 && memcmp(path, "/services/", 10) == 0 &&
             !memchr(path + 10, '/', plen - 10)) {
        r = R_SERVICE;
        name = path + 10;
        name_len = plen - 10;
    }
#undef IS

    if (r == R_NONE) {
        char msg[96];
        snprintf(msg, sizeof(msg), "no route for %.*s%s", (int)(plen > 64 ? 64 : plen), path,
                 plen > 64 ? "..." : "");
        sr_api__error_response(out, 404, "not_found", msg);
        return SR_API_ROUTE_DONE;
    }
    if (!method_ok(r, method)) {
        char msg[128];
        const char *allow = (r == R_REFRESH || r == R_CLEAR) ? allow_post : allow_get;
        snprintf(msg, sizeof(msg), "method %.16s is not allowed here (allowed: %s)", method, allow);
        sr_api__error_response(out, 405, "method_not_allowed", msg);
        out->allow = allow;
        return SR_API_ROUTE_DONE;
    }

    switch (r) {
    case R_HEALTH:
        health(rt, out);
        break;
    case R_SERVICES:
        list(rt, out);
        break;
    case R_SERVICE: {
        char *decoded = sr_malloc(name_len + 1);
        if (sr_api__percent_decode(name, name_len, decoded) < 0)
            sr_api__error_response(out, 400, "bad_request", "bad percent-encoding in service name");
        else
            service(rt, decoded, out);
        free(decoded);
        break;
    }
    case R_STATS:
        json_response(out, 200, current_stats(rt));
        break;
    case R_CLEAR:
        clear(rt, out);
        break;
    case R_REFRESH:
        if (!rt->can_refresh) {
            sr_api__error_response(out, 503, "refresh_unavailable",
                                   "refresh is not available in this process");
            break;
        }
        memset(out, 0, sizeof(*out));
        return SR_API_ROUTE_REFRESH;
    case R_NONE:
        break;
    }
    return SR_API_ROUTE_DONE;
}
