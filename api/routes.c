/* routes: the pure router, request -> response. No I/O: the transports
 * (http1_conn.c, http2.c) send what it returns, and tests/unit/test_routes.c
 * calls it directly. Any thread may call it: it only reads snapshots, the
 * cache's stats and the publisher's status hook.
 *
 * Every body is JSON ("application/json"), compact, no trailing newline.
 * Times are RFC 3339 UTC strings ("2024-01-15T10:30:00.123Z") or null.
 *
 *   GET|HEAD /services                200  the snapshot's list body, as is:
 *       {"services":[<service>...],"count":N,"cache_version":V}
 *     filters (query string; unknown parameters are ignored; AND of all):
 *       label=KEY         the service has label KEY      (repeatable)
 *       label=KEY=VALUE   ... with exactly that value     (repeatable)
 *       stack=NAME        "stack" (com.docker.stack.namespace) is NAME
 *       metric=cpu|memory "autoscaler.metric" is that
 *     A filtered list has the same shape; a value nothing matches gives an
 *     empty list, not an error. A bad %-escape in a filter value: 400.
 *   GET|HEAD /services/{name}         200  the service body, as is: <service>
 *       ({name} is percent-decoded; the query string is ignored)
 *                                     404  {"error":"service_not_found",
 *                                           "message":"service 'x' not found"}
 *   GET|HEAD /services/{name}/metrics 200  the metrics entry's body with
 *       "age_sec" (now - "sample_time", 0.1 s) spliced in before its final
 *       '}'; when none is collected yet:
 *       {"service":name,"service_id":id,"sampled_at":null,"sample_time":null,
 *        "age_sec":null,"containers_sampled":0,"containers":[],
 *        "reason":"no metrics collected yet"}
 *                                     404  service_not_found (as above)
 *   POST /services/{name}/metrics     collects now (parked), then the GET answer
 *                                     404  service_not_found
 *                                     503  {"error":"metrics_failed","message":"...",
 *                                           "service":name}
 *                                     503  {"error":"metrics_unavailable",...} (no hook)
 *   GET|HEAD /cache/stats             200  <stats>
 *   POST /cache/clear                 200  {"cleared":{"services":N,"metrics":M},
 *                                           "stats":<stats>}
 *   POST /cache/refresh               200  {"refreshed":true,"stats":<stats>}
 *                                     503  {"error":"refresh_failed","message":"...",
 *                                           "stats":<stats>}
 *                                     503  {"error":"refresh_unavailable","message":"..."}
 *                                          (no resync hook)
 *   GET|HEAD /health                  200 healthy|degraded, 503 unhealthy (at most
 *                                     SR_API_HEALTH_TTL old with a worker's cache):
 *       {"status":"healthy"|"degraded"|"unhealthy","reasons":["..."],
 *        "docker":<docker>,"cache":<stats>,"publisher":<publisher>,
 *        "last_refresh":T|null,"version":"0.1.0","uptime_sec":N}
 *   GET|HEAD /events                  200  {"exchange":"name"|null,
 *       "events":[{"event":"services.updated","routing_key":"services.updated",
 *                  "description":"..."}, ...],"publisher":<publisher>}
 *   GET|HEAD /metrics                 200  Prometheus text format 0.0.4 ("text/plain;
 *       version=0.0.4"): the registry's counters and per-service gauges (prom.c)
 *   GET|HEAD /sd/prometheus           200  Prometheus HTTP SD: [{"targets":["name:port"],
 *       "labels":{"__meta_swarm_service_name":...}}] for the services with an
 *       autoscaler.metrics.port label (prom.c)
 *   GET /events/stream                200  text/event-stream, never ends (sse.c):
 *       "id: R\nevent: <routing key>\ndata: <event body>\n\n" per change;
 *       Last-Event-ID: R (or ?since=R) resumes after R; "event: resync_required"
 *       (data: a services.updated body, id: its revision) when R is out of
 *       the ring; ?types=service.*,metrics.# keeps matching keys (AMQP topic
 *       syntax; repeatable); ": heartbeat" comments.  400 bad since/types
 *     HEAD /events/stream             200  the head only
 *   any other path                    404  {"error":"not_found","message":"no route for /x"}
 *   known path, other method          405  {"error":"method_not_allowed","message":"..."}
 *                                          + Allow: "GET, HEAD", "POST" or
 *                                          "GET, HEAD, POST"
 *   OPTIONS *                         405  the same, Allow: "GET, HEAD, POST"
 *   a method not in RFC 9110 §9       501  {"error":"not_implemented","message":"..."}
 *     nor PATCH (any path)
 *   bad target (%-escape, NUL)        400  {"error":"bad_request","message":"..."}
 *
 *   <stats>  = {"services":N,"metrics":N,"cache_version":V,"last_refresh":T|null,
 *               "refreshes":N,"added":N,"updated":N,"removed":N,"clears":N,
 *               "events_received":N,"last_event_time":T|null,"docker":<docker>}
 *   <docker> = {"state":"connecting"|"connected"|"unreachable"|"not_manager"|"error",
 *               "reason":"..."|null,"api_version":"1.41"|null,
 *               "engine_version":"20.10.24"|null,"events_connected":bool}
 *   <publisher> = hooks->publisher_status() as is (see api.h), or
 *               {"status":"disabled"} without the hook
 *
 * /health: unhealthy while Docker is not connected (reason "docker
 * unreachable: ...", "not a swarm manager: ...", "docker connecting",
 * "docker error: ..."); once connected, degraded when the events stream is
 * down or the last full refresh is older than 3 x REFRESH_INTERVAL_SEC.
 * An enabled publisher that is not connected degrades it too ("publisher
 * disconnected: <last_error>").
 *
 * ETags (RFC 9110 §8.8.3), on every answer the router makes:
 *   snapshot bodies    "v<S>-services", "v<S>-services-<query hash>",
 *                      "v<S>-service", S the services version (metrics
 *                      commits leave it): the bytes are a function of S (and
 *                      the query), so a strong tag is exact;
 *   metrics            W/"v<V>-metrics": age_sec moves with the clock, the
 *                      rest with the version, hence weak;
 *   built bodies       "v<V>-<FNV-1a of the bytes, 8 hex>" (health, stats,
 *                      events, errors, POST answers): they also hold counters
 *                      that move without the version.
 * Preconditions (RFC 9110 §13), on answers that would be 2xx (others
 * ignore them): If-Match (strong comparison: a weak tag never matches; "*"
 * any current representation) false -> 412; then If-None-Match (weak
 * comparison, "*" matches) true -> 304 with no body on GET/HEAD of a 200,
 * 412 on POST. A POST's target has a current representation only for
 * /services/{name}/metrics (its GET tag); /cache/refresh and /cache/clear
 * have none, so any If-Match fails there.
 *
 * X-Registry-Index: <revision> on every GET/HEAD answer: the version the
 * body reflects (the services version for /services and /services/{name};
 * the snapshot's for metrics; for /health, the version in its cached body,
 * up to SR_API_HEALTH_TTL old; else the cache version).
 *
 * Long-polls (Consul's blocking queries) on GET|HEAD /services,
 * /services/{name} and /services/{name}/metrics: ?index=R&wait=T. With R
 * absent or 0, or the endpoint's index (above) not exactly R (past it; or
 * below it, after a restart), the answer comes at once. Otherwise the request parks
 * (watch.c) until a change that endpoint may show (/services: any service.*
 * event; /services/{name}: the events naming that service; its metrics:
 * those and metrics.<name>; all of them: services.updated) or T plus up to
 * T/16 of jitter, and is then answered as without the parameters (the
 * index may then be past R through changes of other services). T: "30s", "5m",
 * "1m30s", "250ms" or plain seconds; default 5m, at most 10m (longer is
 * cut), 0 = the default. A malformed index or wait: 400 bad_request. */
#include "api/api_internal.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

static const char json_ctype[] = "application/json";
static const char allow_get[] = "GET, HEAD";
static const char allow_post[] = "POST";
static const char allow_all[] = "GET, HEAD, POST";

const char *sr_api__reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
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
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
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
    sr_api__frame_unref(r->frame);
    free(r->owned);
    memset(r, 0, sizeof(*r));
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Steals obj and makes it the owned body. A NULL obj (json_pack refused
 * its arguments) is a bug, answered 500 rather than taking the process down. */
static void json_response(struct sr_api__response *r, int status, json_t *obj)
{
    static const char broken[] =
        "{\"error\":\"internal_error\",\"message\":\"the response could not be built\"}";
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_type = json_ctype;
    r->owned = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (r->owned == NULL) {
        sr_log(SR_LOG_ERROR, "api", "a %d response could not be built: answering 500", status);
        r->status = 500;
        r->owned = sr_strndup(broken, sizeof(broken) - 1);
    }
    r->body = r->owned;
    r->len = strlen(r->owned);
}


/* A built body's tag: the version plus a hash of the exact bytes. */
static void tag_built(struct sr_api__response *r, uint64_t version)
{
    /* Short on purpose: each new ETag is an HPACK literal once per
     * connection, and a header every client keeps. */
    snprintf(r->etag, sizeof(r->etag), "\"v%llu-%08x\"", (unsigned long long)version,
             fnv1a(r->body, r->len));
}

static void tagged_json(struct sr_api__response *r, int status, json_t *obj, uint64_t version)
{
    json_response(r, status, obj);
    tag_built(r, version);
}


static uint64_t cache_version(const struct sr_api__router *rt)
{
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    uint64_t v = sr_snapshot_version(snap);
    sr_snapshot_release(snap);
    return v;
}

void sr_api__error_response(const struct sr_api__router *rt, struct sr_api__response *r,
                            int status, const char *code, const char *message)
{
    json_response(r, status,
                  json_pack("{s:s, s:o}", "error", code, "message", sr_json_text(message)));
    tag_built(r, cache_version(rt));
}

/* The tag of a metrics answer (weak: age_sec moves with the clock). */
static void metrics_tag(char *buf, size_t len, uint64_t version)
{
    snprintf(buf, len, "W/\"v%llu-metrics\"", (unsigned long long)version);
}

static void precondition_failed(const struct sr_api__router *rt, struct sr_api__response *r)
{
    sr_api__error_response(rt, r, 412, "precondition_failed",
                           "a precondition (If-Match or If-None-Match) does not hold");
}

/* ---- conditional requests --------------------------------------------------- */

/* Next entity-tag of a list: [W/]"opaque" with its bounds in *tag. Returns
 * the position after it, or NULL at the end / on garbage. */
static const char *next_tag(const char *s, const char **tag, size_t *len)
{
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (*s == '\0')
        return NULL;
    if (s[0] == 'W' && s[1] == '/')
        s += 2;
    if (*s != '"')
        return NULL;
    const char *end = strchr(s + 1, '"');
    if (end == NULL)
        return NULL;
    *tag = s;
    *len = (size_t)(end - s) + 1;
    return end + 1;
}

/* Whether `etag` is in the list (or the list is "*"). Weak comparison
 * ignores W/ on both sides; strong never matches a weak tag. */
static bool tag_in_list(const char *list, const char *etag, bool strong)
{
    if (list == NULL)
        return false;
    const char *p = list;
    while (*p == ' ' || *p == '\t')
        p++;
    bool tagged = etag != NULL && etag[0] != '\0';
    /* If-Match's * holds for any current representation, tagged or not
     * (/metrics); If-None-Match's only answers 304 with a tag to keep. */
    if (p[0] == '*')
        return strong || tagged;
    if (!tagged)
        return false;
    bool weak = etag[0] == 'W';
    if (strong && weak)
        return false;
    const char *mine = weak ? etag + 2 : etag;
    size_t mlen = strlen(mine);
    const char *t;
    size_t tl;
    while ((p = next_tag(p, &t, &tl)) != NULL) {
        bool tweak = t - list >= 2 && t[-2] == 'W' && t[-1] == '/';
        if (tl == mlen && memcmp(t, mine, tl) == 0 && !(strong && tweak))
            return true;
    }
    return false;
}

bool sr_api__etag_match(const char *inm, const char *etag)
{
    return tag_in_list(inm, etag, false);
}

/* RFC 9110 §13.2.2 before a POST acts: `tag` is its target's current
 * representation's, NULL when it has none. False: answer 412. */
static bool post_preconditions(const struct sr_api__request *req, const char *tag)
{
    if (req->if_match != NULL && (tag == NULL || !tag_in_list(req->if_match, tag, true)))
        return false;
    return tag == NULL || !tag_in_list(req->if_none_match, tag, false);
}

/* 304: no body, no type; the tag stays (RFC 9110 §15.4.5). */
static void not_modified(struct sr_api__response *r)
{
    char etag[sizeof(r->etag)];
    memcpy(etag, r->etag, sizeof(etag));
    bool has_index = r->has_index;
    uint64_t index = r->index;
    sr_api__response_clear(r);
    r->status = 304;
    memcpy(r->etag, etag, sizeof(etag));
    r->has_index = has_index;
    r->index = index;
}

/* ---- JSON pieces ---------------------------------------------------------- */

static json_t *time_or_null(double t)
{
    char buf[40];
    return t > 0 ? json_string(sr_format_time(t, buf, sizeof(buf))) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s[0] ? sr_json_text(s) : json_null();
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
    return json_pack("{s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "services",
                     (json_int_t)st->services, "metrics", (json_int_t)st->metrics,
                     "cache_version", (json_int_t)st->version, "last_refresh",
                     time_or_null(st->last_refresh), "refreshes", (json_int_t)st->refreshes,
                     "added", (json_int_t)st->added, "updated", (json_int_t)st->updated,
                     "removed", (json_int_t)st->removed, "clears", (json_int_t)st->clears,
                     "events_received", (json_int_t)st->source.events_received,
                     "last_event_time", time_or_null(st->source.last_event_time), "docker",
                     docker_json(&st->source));
}

/* The publisher's status object (new reference). */
static json_t *publisher_json(const struct sr_api__router *rt)
{
    json_t *p = rt->publisher_status ? rt->publisher_status(rt->pub_ctx) : NULL;
    if (p == NULL || !json_is_object(p)) {
        json_decref(p);
        return json_pack("{s:s}", "status", rt->publisher_status ? "unknown" : "disabled");
    }
    return p;
}

/* "what: reason", or just "what" when there is no reason. */
static json_t *reason_str(const char *what, const char *reason)
{
    char buf[384];
    if (reason != NULL && reason[0])
        snprintf(buf, sizeof(buf), "%s: %s", what, reason);
    else
        snprintf(buf, sizeof(buf), "%s", what);
    return sr_json_text(buf);
}

json_t *sr_api__health_json(const struct sr_api__router *rt, int *http_status)
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
    if (src->state == SR_SOURCE_CONNECTED) {
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
    }
    /* The broker is independent of Docker: report it either way. */
    json_t *pub = publisher_json(rt);
    const char *pstate = json_string_value(json_object_get(pub, "status"));
    const json_t *en = json_object_get(pub, "enabled");
    bool enabled = en != NULL ? json_is_true(en) : pstate == NULL || strcmp(pstate, "disabled") != 0;
    if (enabled && (pstate == NULL || strcmp(pstate, "connected") != 0)) {
        char what[64];
        snprintf(what, sizeof(what), "publisher %s", pstate ? pstate : "unknown");
        json_array_append_new(
            reasons, reason_str(what, json_string_value(json_object_get(pub, "last_error"))));
    }
    const char *blocked = json_string_value(json_object_get(pub, "blocked"));
    if (enabled && blocked != NULL) /* a resource alarm: nothing gets published */
        json_array_append_new(reasons, reason_str("publisher blocked by the broker", blocked));
    if (src->state != SR_SOURCE_CONNECTED)
        status = "unhealthy";
    else if (json_array_size(reasons) > 0)
        status = "degraded";

    double up = sr_mono() - rt->started_mono;
    json_t *body = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:I}", "status", status,
                             "reasons", reasons, "docker", docker_json(src), "cache",
                             stats_json(&st), "publisher", pub, "last_refresh",
                             time_or_null(st.last_refresh), "version", SR_VERSION, "uptime_sec",
                             (json_int_t)(up > 0 ? up : 0));
    if (http_status != NULL)
        *http_status = strcmp(status, "unhealthy") == 0 ? 503 : 200;
    return body;
}

static void health(const struct sr_api__router *rt, struct sr_api__health_cache *hc,
                   struct sr_api__response *out)
{
    double now = hc ? sr_mono_coarse() : 0;
    if (hc != NULL && hc->body != NULL && now < hc->until) {
        /* Lent, not copied: this is the hottest answer there is. */
        memset(out, 0, sizeof(*out));
        out->status = hc->status;
        out->content_type = json_ctype;
        out->frame = hc->body;
        out->frame->refs++;
        out->body = hc->body->data;
        out->len = hc->body->len;
        memcpy(out->etag, hc->etag, sizeof(out->etag));
        out->has_index = true;
        out->index = hc->index;
        return;
    }
    int status;
    json_t *body = sr_api__health_json(rt, &status);
    json_int_t v = json_integer_value(json_object_get(json_object_get(body, "cache"),
                                                      "cache_version"));
    tagged_json(out, status, body, (uint64_t)v);
    out->has_index = true;
    out->index = (uint64_t)v; /* the version the body shows */
    if (hc != NULL) {
        hc->index = out->index;
        sr_api__frame_unref(hc->body);
        hc->body = sr_api__frame_new(out->body, out->len);
        hc->status = status;
        snprintf(hc->etag, sizeof(hc->etag), "%s", out->etag);
        hc->until = now + SR_API_HEALTH_TTL;
    }
}

static void stats(const struct sr_api__router *rt, struct sr_api__response *out)
{
    struct sr_cache_stats st;
    sr_cache_get_stats(rt->cache, &st);
    tagged_json(out, 200, stats_json(&st), st.version);
}

static void events(const struct sr_api__router *rt, struct sr_api__response *out)
{
    static const struct {
        const char *event, *description;
    } list[] = {
        {"services.updated", "the full service list, after a refresh that changed anything "
                             "(and after a resync when messages were dropped)"},
        {"service.added", "a service with autoscaler.enabled=true appeared"},
        {"service.removed", "a service was removed or lost its autoscaler.enabled label"},
        {"service.updated", "a service's record changed (one message per service)"},
        {"metrics.{service_name}", "a service's metrics, after each collection"},
        {"health.check", "the /health body, every HEALTH_PUBLISH_INTERVAL_SEC"},
    };
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "event", list[i].event,
                                             "routing_key", list[i].event, "description",
                                             list[i].description));
    json_t *pub = publisher_json(rt);
    const json_t *ex = json_object_get(pub, "exchange");
    json_t *exchange = json_is_string(ex) && json_string_length(ex) > 0
                           ? json_stringn(json_string_value(ex), json_string_length(ex))
                           : json_null();
    tagged_json(out, 200,
                json_pack("{s:o, s:o, s:o}", "exchange", exchange, "events", arr, "publisher",
                          pub),
                cache_version(rt));
}

static void clear(const struct sr_api__router *rt, struct sr_api__response *out)
{
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    size_t mets = sr_snapshot_metrics_count(snap);
    sr_snapshot_release(snap);
    size_t n = sr_cache_clear(rt->cache);
    struct sr_cache_stats st;
    sr_cache_get_stats(rt->cache, &st);
    tagged_json(out, 200,
                json_pack("{s:{s:I, s:I}, s:o}", "cleared", "services", (json_int_t)n, "metrics",
                          (json_int_t)mets, "stats", stats_json(&st)),
                st.version);
}

/* The index an endpoint answers with (X-Registry-Index), which its
 * long-polls compare with: the list and the records only move with the
 * services, the rest (metrics) with everything. */
static uint64_t endpoint_index(const struct sr_snapshot *snap, int endpoint)
{
    return endpoint == SR_API_EP_SERVICES || endpoint == SR_API_EP_SERVICE
               ? sr_snapshot_services_version(snap)
               : sr_snapshot_version(snap);
}

static void not_found_service(const struct sr_api__router *rt, const char *name,
                              struct sr_api__response *out)
{
    char msg[SR_API_DEFAULT_MAX_REQUEST_LINE + 64];
    snprintf(msg, sizeof(msg), "service '%.*s' not found", SR_API_DEFAULT_MAX_REQUEST_LINE, name);
    sr_api__error_response(rt, out, 404, "service_not_found", msg);
}

/* A read's 404 for `name`, with the index `endpoint` has in `snap` (released
 * here): a long-poll waiting for the service to appear parks, not spins. */
static void not_found_read(const struct sr_api__router *rt, struct sr_snapshot *snap,
                           int endpoint, const char *name, struct sr_api__response *out)
{
    uint64_t index = endpoint_index(snap, endpoint);
    sr_snapshot_release(snap);
    not_found_service(rt, name, out);
    out->has_index = true;
    out->index = index;
}

static void service(const struct sr_api__router *rt, const char *name, struct sr_api__response *out)
{
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    const struct sr_svc *svc = sr_snapshot_find(snap, name);
    if (svc == NULL) {
        not_found_read(rt, snap, SR_API_EP_SERVICE, name, out);
        return;
    }
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = json_ctype;
    out->body = sr_svc_body(svc, &out->len);
    out->snap = snap; /* keeps svc and its body alive until sent */
    out->has_index = true;
    out->index = sr_snapshot_services_version(snap);
    snprintf(out->etag, sizeof(out->etag), "\"v%llu-service\"", (unsigned long long)out->index);
}

/* The metrics of a known service, from `snap` (the reference is taken over). */
static void metrics_from(const struct sr_api__router *rt, struct sr_snapshot *snap,
                         const struct sr_svc *svc, struct sr_api__response *out)
{
    uint64_t version = sr_snapshot_version(snap);
    const struct sr_svc *m = sr_snapshot_metrics(snap, sr_svc_name(svc));
    if (m == NULL) {
        json_t *doc = json_pack(
            "{s:s, s:s, s:n, s:n, s:n, s:i, s:[], s:s}", "service", sr_svc_name(svc),
            "service_id", sr_svc_id(svc), "sampled_at", "sample_time", "age_sec",
            "containers_sampled", 0, "containers", "reason", "no metrics collected yet");
        sr_snapshot_release(snap);
        json_response(out, 200, doc);
        metrics_tag(out->etag, sizeof(out->etag), version);
        out->has_index = true;
        out->index = version;
        return;
    }
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = json_ctype;
    out->snap = snap;
    out->body = sr_svc_body(m, &out->len);
    out->has_index = true;
    out->index = version;
    metrics_tag(out->etag, sizeof(out->etag), version);

    const json_t *doc = sr_svc_doc(m);
    /* Splice ,"age_sec":X before the final '}' instead of re-serialising a
     * shared document: the bytes before it go out by reference. */
    if (json_object_get(doc, "age_sec") != NULL || out->len < 2 || out->body[out->len - 1] != '}')
        return; /* already there (or not an object body): as is */
    const json_t *st = json_object_get(doc, "sample_time");
    char age[32];
    if (json_is_number(st)) {
        double now = rt->now ? rt->now() : sr_now();
        double a = now - json_number_value(st);
        snprintf(age, sizeof(age), "%.1f", a > 0 ? a : 0.0);
    } else {
        snprintf(age, sizeof(age), "null");
    }
    bool empty = out->len == 2; /* "{}" */
    out->len--;
    int n = snprintf(out->tail, sizeof(out->tail), "%s\"age_sec\":%s}", empty ? "" : ",", age);
    out->tail_len = (size_t)n;
}

static void metrics_get(const struct sr_api__router *rt, const char *name,
                        struct sr_api__response *out)
{
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    const struct sr_svc *svc = sr_snapshot_find(snap, name);
    if (svc == NULL) {
        not_found_read(rt, snap, SR_API_EP_SERVICE_METRICS, name, out);
        return;
    }
    metrics_from(rt, snap, svc, out);
}

/* ---- GET /services filters ------------------------------------------------- */

enum filter_kind { F_LABEL = 1, F_STACK, F_METRIC };

struct filter {
    enum filter_kind kind;
    char *key;   /* owned: label key, stack, metric */
    char *value; /* owned: label value, or NULL for presence */
};

struct filters {
    struct filter *v;
    size_t n, cap;
};

static void filters_free(struct filters *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].key);
        free(f->v[i].value);
    }
    free(f->v);
}

/* Decodes a query component: %XX, and '+' as a space (form encoding). */
static char *query_decode(const char *s, size_t n)
{
    char *tmp = sr_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        tmp[i] = s[i] == '+' ? ' ' : s[i];
    char *out = sr_malloc(n + 1);
    long len = sr_api__percent_decode(tmp, n, out);
    free(tmp);
    if (len < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Parses the query string q[0..n). Returns 0, or -1 for a bad escape in a
 * known parameter (unknown parameters are never decoded). */
static int parse_filters(const char *q, size_t n, struct filters *f)
{
    size_t pos = 0, klen, vlen;
    const char *kv, *val;
    while (sr_api__query_next(q, n, &pos, &kv, &klen, &val, &vlen)) {
        enum filter_kind kind;
        if (klen == 5 && memcmp(kv, "label", 5) == 0)
            kind = F_LABEL;
        else if (klen == 5 && memcmp(kv, "stack", 5) == 0)
            kind = F_STACK;
        else if (klen == 6 && memcmp(kv, "metric", 6) == 0)
            kind = F_METRIC;
        else
            continue; /* unknown parameter: ignored */
        struct filter flt = {.kind = kind};
        if (kind == F_LABEL) {
            /* label=KEY or label=KEY=VALUE, split at the first '=' once
             * decoded: query encoders (urlencode, URLSearchParams, curl
             * --data-urlencode) send that '=' as %3D. Label keys hold no
             * '=' (docker --label splits at the first one too). */
            flt.key = query_decode(val, vlen);
            if (flt.key == NULL)
                return -1;
            char *eq2 = strchr(flt.key, '=');
            if (eq2 != NULL) {
                *eq2 = '\0';
                flt.value = sr_strdup(eq2 + 1);
            }
        } else {
            flt.key = query_decode(val, vlen);
            if (flt.key == NULL)
                return -1;
        }
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 4;
            f->v = sr_realloc(f->v, f->cap * sizeof(*f->v));
        }
        f->v[f->n++] = flt;
    }
    return 0;
}

static bool str_is(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* Read-only lookups on a shared document: no reference is taken. */
static bool matches(const json_t *doc, const struct filters *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct filter *flt = &f->v[i];
        switch (flt->kind) {
        case F_LABEL: {
            const json_t *v = json_object_get(json_object_get(doc, "labels"), flt->key);
            if (v == NULL || (flt->value != NULL && !str_is(v, flt->value)))
                return false;
            break;
        }
        case F_STACK:
            if (!str_is(json_object_get(doc, "stack"), flt->key))
                return false;
            break;
        case F_METRIC:
            if (!str_is(json_object_get(json_object_get(doc, "autoscaler"), "metric"), flt->key))
                return false;
            break;
        }
    }
    return true;
}

static void list(const struct sr_api__router *rt, const char *query, size_t qlen,
                 struct sr_api__response *out)
{
    struct filters f = {0};
    if (parse_filters(query, qlen, &f) != 0) {
        filters_free(&f);
        sr_api__error_response(rt, out, 400, "bad_request",
                               "bad percent-encoding in a filter value");
        return;
    }
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = json_ctype;
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    uint64_t version = sr_snapshot_services_version(snap); /* metrics don't move it */
    out->has_index = true;
    out->index = version;
    if (f.n == 0) {
        out->snap = snap;
        out->body = sr_snapshot_list_body(snap, &out->len);
        /* "v<version>-services", without snprintf (the hot path). */
        char *e = out->etag;
        *e++ = '"';
        *e++ = 'v';
        e += sr_api__fmt_u64(e, version);
        memcpy(e, "-services\"", 11);
        return;
    }
    /* Built per request from the entries' own bytes: same shape and
     * encoding as the unfiltered body, no re-serialisation. */
    size_t n = sr_snapshot_count(snap), cap = 96, count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        sr_svc_body(sr_snapshot_at(snap, i), &len);
        cap += len + 1;
    }
    char *p = sr_malloc(cap);
    size_t len = 13;
    memcpy(p, "{\"services\":[", 13);
    for (size_t i = 0; i < n; i++) {
        const struct sr_svc *svc = sr_snapshot_at(snap, i);
        if (!matches(sr_svc_doc(svc), &f))
            continue;
        size_t blen;
        const char *b = sr_svc_body(svc, &blen);
        if (count++ > 0)
            p[len++] = ',';
        memcpy(p + len, b, blen);
        len += blen;
    }
    len += (size_t)snprintf(p + len, cap - len, "],\"count\":%zu,\"cache_version\":%llu}", count,
                            (unsigned long long)version);
    sr_snapshot_release(snap);
    filters_free(&f);
    out->owned = p;
    out->body = p;
    out->len = len;
    snprintf(out->etag, sizeof(out->etag), "\"v%llu-services-%08x\"", (unsigned long long)version,
             fnv1a(query, qlen));
}

/* ---- parked requests ---------------------------------------------------------- */

void sr_api__park_clear(struct sr_api__park *park)
{
    free(park->name);
    free(park->id);
    free(park->target);
    free(park->if_none_match);
    free(park->if_match);
    free(park->types);
    memset(park, 0, sizeof(*park));
}

static void park_answer(const struct sr_api__router *rt, const struct sr_api__park *park,
                        int status, struct sr_api__response *out)
{
    struct sr_cache_stats st;
    if (park->kind == SR_API_PARK_METRICS) {
        if (status != 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "metrics collection for service '%.300s' failed",
                     park->name);
            json_response(out, 503,
                          json_pack("{s:s, s:o, s:o}", "error", "metrics_failed", "message",
                                    sr_json_text(msg), "service",
                                    sr_json_text(park->name)));
            tag_built(out, cache_version(rt));
            return;
        }
        /* The fresh numbers are in the cache now; the service may be gone. */
        metrics_get(rt, park->name, out);
        return;
    }
    sr_cache_get_stats(rt->cache, &st);
    if (status == 0) {
        tagged_json(out, 200, json_pack("{s:b, s:o}", "refreshed", 1, "stats", stats_json(&st)),
                    st.version);
        return;
    }
    json_t *msg = reason_str("service refresh failed", st.source.reason);
    tagged_json(out, 503,
                json_pack("{s:s, s:o, s:o}", "error", "refresh_failed", "message", msg, "stats",
                          stats_json(&st)),
                st.version);
}

static bool start_metrics(const struct sr_api__router *rt, const struct sr_api__request *req,
                          const char *name, struct sr_api__response *out,
                          struct sr_api__park *park)
{
    if (!rt->can_collect) {
        sr_api__error_response(rt, out, 503, "metrics_unavailable",
                               "metrics collection is not available in this process");
        return false;
    }
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    const struct sr_svc *svc = sr_snapshot_find(snap, name);
    if (svc == NULL) {
        sr_snapshot_release(snap);
        not_found_service(rt, name, out);
        return false;
    }
    char tag[64]; /* the GET's (metrics_from) */
    metrics_tag(tag, sizeof(tag), sr_snapshot_version(snap));
    if (!post_preconditions(req, tag)) {
        sr_snapshot_release(snap);
        precondition_failed(rt, out);
        return false;
    }
    memset(out, 0, sizeof(*out));
    park->kind = SR_API_PARK_METRICS;
    park->name = sr_strdup(name);
    park->id = sr_strdup(sr_svc_id(svc));
    sr_snapshot_release(snap);
    return true;
}

/* ---- watching and Prometheus ---------------------------------------------------- */

static const char sse_ctype[] = "text/event-stream";
static const char prom_ctype[] = "text/plain; version=0.0.4; charset=utf-8";

/* Long-poll parameters. Returns 1 when the request is to park (*park
 * filled), 0 to answer it now, -1 when *out holds a 400. */
static int want_wait(const struct sr_api__router *rt, const struct sr_api__request *req,
                     const char *query, size_t qlen, int endpoint, const char *name,
                     struct sr_api__response *out, struct sr_api__park *park)
{
    const char *v;
    size_t vlen;
    uint64_t index, wait_ms = SR_API_WAIT_DEFAULT_MS;
    /* (With If-Match: answered at once, so a failed one is not a late 412.) */
    if (req->no_wait || req->if_match != NULL ||
        !sr_api__query_get(query, qlen, "index", &v, &vlen))
        return 0;
    if (sr_api__parse_u64(v, vlen, &index) != 0) {
        sr_api__error_response(
            rt, out, 400, "bad_request",
            "index must be a revision (X-Registry-Index), a non-negative integer");
        return -1;
    }
    if (sr_api__query_get(query, qlen, "wait", &v, &vlen)) {
        if (sr_api__parse_wait(v, vlen, &wait_ms) != 0) {
            sr_api__error_response(
                rt, out, 400, "bad_request",
                "wait must be a duration such as 30s, 5m, 1m30s or 250ms, or seconds");
            return -1;
        }
        if (wait_ms == 0)
            wait_ms = SR_API_WAIT_DEFAULT_MS;
        else if (wait_ms > SR_API_WAIT_MAX_MS)
            wait_ms = SR_API_WAIT_MAX_MS;
    }
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    uint64_t now = endpoint_index(snap, endpoint);
    sr_snapshot_release(snap);
    if (index == 0 || now != index)
        return 0;
    memset(out, 0, sizeof(*out));
    park->kind = SR_API_PARK_WATCH;
    park->target = sr_strdup(req->target);
    park->if_none_match = req->if_none_match ? sr_strdup(req->if_none_match) : NULL;
    park->if_match = req->if_match ? sr_strdup(req->if_match) : NULL;
    park->head = strcmp(req->method, "HEAD") == 0;
    park->index = index;
    park->wait_ms = wait_ms;
    park->endpoint = endpoint;
    if (name != NULL)
        park->name = sr_strdup(name);
    return 1;
}

/* Every types= parameter, decoded and joined with ','; NULL when none. */
static int types_param(const char *q, size_t qlen, char **out)
{
    struct sr_buf b = {0};
    size_t i = 0;
    *out = NULL;
    while (i < qlen) {
        size_t e = i;
        while (e < qlen && q[e] != '&')
            e++;
        if (e - i >= 6 && memcmp(q + i, "types=", 6) == 0) {
            char *d = query_decode(q + i + 6, e - i - 6);
            if (d == NULL) {
                free(b.p);
                return -1;
            }
            if (b.len > 0)
                sr_buf_puts(&b, ",");
            sr_buf_puts(&b, d);
            free(d);
        }
        i = e + 1;
    }
    *out = b.p;
    return 0;
}

/* GET /events/stream: true to park it as a stream (the transport starts
 * the client); false when *out is the answer (400, or HEAD). */
static bool stream_start(const struct sr_api__router *rt, const struct sr_api__request *req,
                         const char *query, size_t qlen, struct sr_api__response *out,
                         struct sr_api__park *park)
{
    const char *v;
    size_t vlen;
    uint64_t since = 0;
    bool has_since = false;
    if (req->last_event_id != NULL && req->last_event_id[0] != '\0') {
        /* The header wins: an EventSource reconnecting keeps its URL. */
        v = req->last_event_id;
        vlen = strlen(v);
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (sr_api__parse_u64(v, vlen, &since) != 0) {
            sr_api__error_response(rt, out, 400, "bad_request",
                                   "Last-Event-ID must be a revision this registry sent");
            return false;
        }
        has_since = true;
    } else if (sr_api__query_get(query, qlen, "since", &v, &vlen)) {
        if (sr_api__parse_u64(v, vlen, &since) != 0) {
            sr_api__error_response(rt, out, 400, "bad_request",
                                   "since must be a revision (a non-negative integer)");
            return false;
        }
        has_since = true;
    }
    char *types = NULL;
    struct sr_api__types t;
    if (types_param(query, qlen, &types) != 0 || sr_api__types_parse(types, &t) != 0) {
        free(types);
        sr_api__error_response(
            rt, out, 400, "bad_request",
            "types must be routing-key patterns (e.g. service.*,metrics.#): at most "
            "16, each at most 255 bytes and 32 words");
        return false;
    }
    sr_api__types_free(&t);
    if (strcmp(req->method, "HEAD") == 0) {
        free(types);
        memset(out, 0, sizeof(*out));
        out->status = 200;
        out->content_type = sse_ctype;
        out->unbounded = true; /* as the GET: no length (RFC 9110 §9.3.2) */
        return false;
    }
    memset(out, 0, sizeof(*out));
    park->kind = SR_API_PARK_STREAM;
    park->has_since = has_since;
    park->since = since;
    park->types = types;
    return true;
}

static void prom_metrics(const struct sr_api__router *rt, struct sr_api__response *out)
{
    struct sr_cache_stats st;
    sr_cache_get_stats(rt->cache, &st);
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    json_t *pub = publisher_json(rt);
    struct sr_api__prom_input in = {
        .cache = &st, .snap = snap, .stats = rt->stats, .publisher = pub};
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = prom_ctype;
    out->owned = sr_api__prom_metrics(&in, &out->len);
    out->body = out->owned;
    out->has_index = true;
    out->index = sr_snapshot_version(snap);
    json_decref(pub);
    sr_snapshot_release(snap);
}

static void prom_sd(const struct sr_api__router *rt, struct sr_api__response *out)
{
    struct sr_snapshot *snap = sr_cache_acquire(rt->cache);
    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->content_type = json_ctype;
    out->owned = sr_api__prom_sd(snap, &out->len);
    out->body = out->owned;
    out->has_index = true;
    out->index = sr_snapshot_version(snap);
    tag_built(out, out->index);
    sr_snapshot_release(snap);
}

/* ---- routing --------------------------------------------------------------- */

int sr_api__hexval(char c)
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
            int hi = i + 2 < len ? sr_api__hexval(src[i + 1]) : -1;
            int lo = i + 2 < len ? sr_api__hexval(src[i + 2]) : -1;
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
    R_METRICS,
    R_STATS,
    R_REFRESH,
    R_CLEAR,
    R_EVENTS,
    R_STREAM, /* /events/stream */
    R_PROM,   /* /metrics */
    R_SD,     /* /sd/prometheus */
};

static const char *allowed(enum route r)
{
    switch (r) {
    case R_REFRESH:
    case R_CLEAR:
        return allow_post;
    case R_METRICS:
        return allow_all;
    default:
        return allow_get;
    }
}

static bool method_ok(enum route r, int m)
{
    bool get = m == SR_API_METHOD_GET || m == SR_API_METHOD_HEAD;
    bool post = m == SR_API_METHOD_POST;
    const char *a = allowed(r);
    return a == allow_all ? (get || post) : a == allow_post ? post : get;
}

/* The rest of RFC 9110 §9's methods, and PATCH (RFC 5789): where a
 * resource does not take one, 405; any other method is not implemented
 * (501, §9.1). */
static bool standard_method(const char *m)
{
    static const char *const known[] = {"PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return true;
    return false;
}

static enum sr_api__route_result route_one(const struct sr_api__router *rt,
                                           const struct sr_api__request *req,
                                           struct sr_api__response *out,
                                           struct sr_api__park *park, int m, enum route *rp)
{
    const char *method = req->method;
    const char *path = req->target;
    memset(park, 0, sizeof(*park));
    if (m == SR_API_METHOD_OTHER && !standard_method(method)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "method %.16s is not implemented", method);
        sr_api__error_response(rt, out, 501, "not_implemented", msg);
        return SR_API_ROUTE_DONE;
    }
    /* OPTIONS * asks about the server (RFC 9110 §9.3.7); OPTIONS is 405
     * everywhere, and Allow lists every method the server takes. */
    if (strcmp(path, "*") == 0 && strcmp(method, "OPTIONS") == 0) {
        sr_api__error_response(rt, out, 405, "method_not_allowed",
                               "method OPTIONS is not allowed (allowed: GET, HEAD, POST)");
        out->allow = allow_all;
        return SR_API_ROUTE_DONE;
    }
    /* absolute-form (RFC 9112 §3.2.2): servers must accept it. */
    if (*path != '/' &&
        (strncasecmp(path, "http://", 7) == 0 || strncasecmp(path, "https://", 8) == 0)) {
        path = strstr(path, "//") + 2;
        path += strcspn(path, "/?");
        if (*path != '/') {
            sr_api__error_response(rt, out, 400, "bad_request", "request target has no path");
            return SR_API_ROUTE_DONE;
        }
    }
    if (*path != '/') {
        sr_api__error_response(rt, out, 400, "bad_request", "request target must start with '/'");
        return SR_API_ROUTE_DONE;
    }
    size_t plen = strcspn(path, "?#");
    const char *query = path[plen] == '?' ? path + plen + 1 : path + plen;
    size_t qlen = strcspn(query, "#");

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
    else if (IS("/events"))
        r = R_EVENTS;
    else if (IS("/events/stream"))
        r = R_STREAM;
    else if (IS("/metrics"))
        r = R_PROM;
    else if (IS("/sd/prometheus"))
        r = R_SD;
    else if (plen > 10 && memcmp(path, "/services/", 10) == 0) {
        name = path + 10;
        const char *slash = memchr(name, '/', plen - 10);
        if (slash == NULL) {
            r = R_SERVICE;
            name_len = plen - 10;
        } else if (slash > name && (size_t)(path + plen - slash) == 8 &&
                   memcmp(slash, "/metrics", 8) == 0) {
            r = R_METRICS;
            name_len = (size_t)(slash - name);
        }
    }
#undef IS
    *rp = r;

    if (r == R_NONE) {
        char msg[96];
        snprintf(msg, sizeof(msg), "no route for %.*s%s", (int)(plen > 64 ? 64 : plen), path,
                 plen > 64 ? "..." : "");
        sr_api__error_response(rt, out, 404, "not_found", msg);
        return SR_API_ROUTE_DONE;
    }
    if (!method_ok(r, m)) {
        char msg[128];
        const char *allow = allowed(r);
        snprintf(msg, sizeof(msg), "method %.16s is not allowed here (allowed: %s)", method, allow);
        sr_api__error_response(rt, out, 405, "method_not_allowed", msg);
        out->allow = allow;
        return SR_API_ROUTE_DONE;
    }

    bool get = m != SR_API_METHOD_POST;
    enum sr_api__route_result res = SR_API_ROUTE_DONE;
    int wait;
    char *decoded = NULL;
    if (name != NULL) {
        decoded = sr_malloc(name_len + 1);
        if (sr_api__percent_decode(name, name_len, decoded) < 0) {
            free(decoded);
            sr_api__error_response(rt, out, 400, "bad_request",
                                   "bad percent-encoding in service name");
            return SR_API_ROUTE_DONE;
        }
    }
    switch (r) {
    case R_HEALTH:
        health(rt, req->health_cache, out);
        break;
    case R_SERVICES:
        wait = want_wait(rt, req, query, qlen, SR_API_EP_SERVICES, NULL, out, park);
        if (wait == 0)
            list(rt, query, qlen, out);
        else if (wait > 0)
            res = SR_API_ROUTE_PARK;
        break;
    case R_SERVICE:
        wait = want_wait(rt, req, query, qlen, SR_API_EP_SERVICE, decoded, out, park);
        if (wait == 0)
            service(rt, decoded, out);
        else if (wait > 0)
            res = SR_API_ROUTE_PARK;
        break;
    case R_METRICS:
        if (get && (wait = want_wait(rt, req, query, qlen, SR_API_EP_SERVICE_METRICS, decoded,
                                     out, park)) != 0) {
            if (wait > 0)
                res = SR_API_ROUTE_PARK;
        } else if (get)
            metrics_get(rt, decoded, out);
        else if (start_metrics(rt, req, decoded, out, park))
            res = SR_API_ROUTE_PARK;
        break;
    case R_STATS:
        stats(rt, out);
        break;
    case R_EVENTS:
        events(rt, out);
        break;
    case R_STREAM:
        if (stream_start(rt, req, query, qlen, out, park))
            res = SR_API_ROUTE_PARK;
        break;
    case R_PROM:
        prom_metrics(rt, out);
        break;
    case R_SD:
        prom_sd(rt, out);
        break;
    case R_CLEAR:
        if (post_preconditions(req, NULL))
            clear(rt, out);
        else
            precondition_failed(rt, out);
        break;
    case R_REFRESH:
        if (!rt->can_refresh) {
            sr_api__error_response(rt, out, 503, "refresh_unavailable",
                                   "refresh is not available in this process");
            break;
        }
        if (!post_preconditions(req, NULL)) {
            precondition_failed(rt, out);
            break;
        }
        memset(out, 0, sizeof(*out));
        park->kind = SR_API_PARK_REFRESH;
        res = SR_API_ROUTE_PARK;
        break;
    case R_NONE:
        break;
    }
    free(decoded);
    if (res == SR_API_ROUTE_DONE && get && out->status / 100 == 2) {
        if (req->if_match != NULL && !tag_in_list(req->if_match, out->etag, true)) {
            sr_api__response_clear(out); /* it may hold a snapshot */
            precondition_failed(rt, out);
        }
        else if (out->status == 200 && sr_api__etag_match(req->if_none_match, out->etag))
            not_modified(out);
    }
    return res;
}

static int endpoint_of(enum route r)
{
    switch (r) {
    case R_HEALTH:
        return SR_API_EP_HEALTH;
    case R_SERVICES:
        return SR_API_EP_SERVICES;
    case R_SERVICE:
        return SR_API_EP_SERVICE;
    case R_METRICS:
        return SR_API_EP_SERVICE_METRICS;
    case R_STATS:
        return SR_API_EP_CACHE_STATS;
    case R_REFRESH:
        return SR_API_EP_CACHE_REFRESH;
    case R_CLEAR:
        return SR_API_EP_CACHE_CLEAR;
    case R_EVENTS:
        return SR_API_EP_EVENTS;
    case R_STREAM:
        return SR_API_EP_EVENTS_STREAM;
    case R_PROM:
        return SR_API_EP_METRICS;
    case R_SD:
        return SR_API_EP_SD_PROMETHEUS;
    case R_NONE:
        break;
    }
    return SR_API_EP_OTHER;
}

/* route_one, plus what every answer gets: X-Registry-Index on reads, and
 * the request counters (a parked request is counted when answered; a
 * stream when it starts). */
enum sr_api__route_result sr_api__route(const struct sr_api__router *rt,
                                        const struct sr_api__request *req,
                                        struct sr_api__response *out, struct sr_api__park *park)
{
    enum route r = R_NONE;
    int m = sr_api__method_index(req->method);
    enum sr_api__route_result res = route_one(rt, req, out, park, m, &r);
    int ep = endpoint_of(r);
    if (res == SR_API_ROUTE_PARK) {
        park->endpoint = ep;
        park->method = m;
        if (park->kind == SR_API_PARK_STREAM)
            sr_api__count(rt->stats, ep, m, 200);
        return res;
    }
    bool read = m == SR_API_METHOD_GET || m == SR_API_METHOD_HEAD;
    if (read && !out->has_index) {
        /* (400s on /services paths: the services version too) */
        struct sr_snapshot *snap = out->snap ? out->snap : sr_cache_acquire(rt->cache);
        out->has_index = true;
        out->index = endpoint_index(snap, ep);
        if (snap != out->snap)
            sr_snapshot_release(snap);
    }
    sr_api__count(rt->stats, ep, m, out->status);
    return res;
}

void sr_api__park_response(const struct sr_api__router *rt, const struct sr_api__park *park,
                           int status, struct sr_api__response *out)
{
    if (park->kind == SR_API_PARK_WATCH) {
        /* Woken (or out of time): the answer the request gets without
         * waiting, counted by sr_api__route. */
        struct sr_api__request rq = {.method = park->head ? "HEAD" : "GET",
                                     .target = park->target,
                                     .if_none_match = park->if_none_match,
                                     .if_match = park->if_match,
                                     .no_wait = true};
        struct sr_api__park again;
        if (sr_api__route(rt, &rq, out, &again) != SR_API_ROUTE_DONE)
            sr_api__park_clear(&again); /* cannot happen with no_wait */
        return;
    }
    park_answer(rt, park, status, out);
    sr_api__count(rt->stats, park->endpoint, park->method, out->status);
}
