/* Router (api/routes.c): every endpoint's status, body and headers, on a
 * real cache filled through sr_cache_replace. No sockets. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "cache/cache.h"
#include "cache/util.h"
#include "tests/unit/tap.h"

/* A built body's tag: "v<version>-<8 hex digits>". */
static bool built_tag(const char *t)
{
    size_t n = strlen(t);
    if (n < 13 || strncmp(t, "\"v", 2) != 0 || t[n - 1] != '"' || t[n - 10] != '-')
        return false;
    for (size_t i = 2; i < n - 10; i++)
        if (t[i] < '0' || t[i] > '9')
            return false;
    for (size_t i = n - 9; i < n - 1; i++)
        if (!strchr("0123456789abcdef", t[i]))
            return false;
    return true;
}

static double fake_now;
static double clock_fake(void)
{
    return fake_now;
}

static struct sr_svc *svc(const char *id, const char *name)
{
    return sr_svc_new(json_pack("{s:s, s:s, s:s}", "id", id, "name", name, "image", "nginx:1"));
}

/* Routes one request; a parked one is reported as ROUTE_PARK in *park. */
static int route(const struct sr_api__router *rt, const char *method, const char *target,
                 const char *inm, struct sr_api__response *r, struct sr_api__park *park)
{
    struct sr_api__request rq = {.method = method, .target = target, .if_none_match = inm};
    struct sr_api__park local;
    int rc = sr_api__route(rt, &rq, r, park ? park : &local);
    if (park == NULL)
        sr_api__park_clear(&local);
    return rc;
}

/* GET path?index=I&wait=1s: DONE (the response in *out, or dropped if out
 * is NULL) or PARK. */
static int poll_route(const struct sr_api__router *rt, const char *path, uint64_t index,
                      struct sr_api__response *out)
{
    char target[128];
    snprintf(target, sizeof(target), "%s?index=%llu&wait=1s", path, (unsigned long long)index);
    struct sr_api__response r;
    int rc = route(rt, "GET", target, NULL, out != NULL ? out : &r, NULL);
    if (rc == SR_API_ROUTE_DONE && out == NULL)
        sr_api__response_clear(&r);
    return rc;
}

/* The whole body: body + tail (malloc'd, NUL-terminated). */
static char *full_body(const struct sr_api__response *r)
{
    size_t n = sr_api__response_length(r);
    char *b = malloc(n + 1);
    if (r->len)
        memcpy(b, r->body, r->len);
    if (r->tail_len)
        memcpy(b + r->len, r->tail, r->tail_len);
    b[n] = '\0';
    return b;
}

/* Routes and parses the JSON body (NULL if not JSON or parked). */
static json_t *call_inm(const struct sr_api__router *rt, const char *method, const char *target,
                        const char *inm, struct sr_api__response *r)
{
    int rc = route(rt, method, target, inm, r, NULL);
    if (rc != SR_API_ROUTE_DONE)
        return NULL;
    char *b = full_body(r);
    json_t *j = json_loads(b, 0, NULL);
    free(b);
    return j;
}

static json_t *call(const struct sr_api__router *rt, const char *method, const char *target,
                    struct sr_api__response *r)
{
    return call_inm(rt, method, target, NULL, r);
}

static bool str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const char *jstr(const json_t *o, const char *path)
{
    /* "a.b" lookups, enough for these tests. */
    char key[64];
    const json_t *cur = o;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        cur = json_object_get(cur, key);
        path += n + (path[n] == '.');
    }
    return json_string_value(cur);
}

static long long jint(const json_t *o, const char *path)
{
    char key[64];
    const json_t *cur = o;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        cur = json_object_get(cur, key);
        path += n + (path[n] == '.');
    }
    return json_is_integer(cur) ? json_integer_value(cur) : -999;
}

static void test_services(struct sr_cache *cache, const struct sr_api__router *rt)
{
    struct sr_api__response r;
    json_t *j = call(rt, "GET", "/services", &r);
    is_int(r.status, 200, "GET /services: 200");
    is_str(r.content_type, "application/json", "GET /services: JSON");
    ok(r.snap != NULL && r.owned == NULL, "GET /services: body borrowed from a snapshot");
    size_t len;
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    const char *list = sr_snapshot_list_body(snap, &len);
    ok(r.len == len && memcmp(r.body, list, len) == 0,
       "GET /services: the snapshot's list body, as is");
    ok(r.body == list, "GET /services: same bytes, not a copy");
    sr_snapshot_release(snap);
    is_int(jint(j, "count"), 3, "GET /services: count 3");
    is_str(jstr(json_array_get(json_object_get(j, "services"), 0), "name"), "api",
           "GET /services: sorted by name");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "HEAD", "/services", &r);
    is_int(r.status, 200, "HEAD /services: 200");
    ok(r.len > 0, "HEAD /services: carries the GET length (transport drops the body)");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services?stack=x&y", &r);
    is_int(r.status, 200, "GET /services?query: 200 (query ignored)");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "http://localhost:5001/services", &r);
    is_int(r.status, 200, "absolute-form target: 200");
    json_decref(j);
    sr_api__response_clear(&r);
}

static void test_service(struct sr_cache *cache, const struct sr_api__router *rt)
{
    struct sr_api__response r;
    json_t *j = call(rt, "GET", "/services/web", &r);
    is_int(r.status, 200, "GET /services/web: 200");
    is_str(jstr(j, "id"), "id-web", "GET /services/web: the service");
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    size_t len;
    const char *body = sr_svc_body(sr_snapshot_find(snap, "web"), &len);
    ok(r.body == body && r.len == len, "GET /services/web: sr_svc_body as is");
    sr_snapshot_release(snap);
    json_decref(j);

    /* The response's reference outlives a change of the cache. */
    struct sr_svc *only = svc("id-other", "other");
    sr_cache_replace(cache, &only, 1, NULL);
    ok(r.len == len && memcmp(r.body, "{\"id\":\"id-web\"", 14) == 0,
       "body still valid after the cache moved on");
    sr_api__response_clear(&r);
    ok(r.snap == NULL && r.body == NULL, "response_clear zeroes");
    struct sr_svc *three[] = {svc("id-web", "web"), svc("id-api", "api"), svc("id-sp", "my app")};
    sr_cache_replace(cache, three, 3, NULL);

    j = call(rt, "GET", "/services/my%20app", &r);
    is_int(r.status, 200, "percent-encoded name: 200");
    is_str(jstr(j, "name"), "my app", "percent-encoded name decoded");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "HEAD", "/services/w%65b?x=%zz", &r);
    is_int(r.status, 200, "HEAD /services/w%65b?bad-query: 200 (query not decoded)");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/nope", &r);
    is_int(r.status, 404, "unknown service: 404");
    is_str(jstr(j, "error"), "service_not_found", "unknown service: error code");
    is_str(jstr(j, "message"), "service 'nope' not found", "unknown service: message");
    ok(r.owned != NULL && r.snap == NULL, "error body is owned, no snapshot held");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/it%27s", &r);
    is_str(jstr(j, "message"), "service 'it's' not found", "decoded name in the message");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/bad%zz", &r);
    is_int(r.status, 400, "bad escape: 400");
    is_str(jstr(j, "error"), "bad_request", "bad escape: bad_request");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/a%00b", &r);
    is_int(r.status, 400, "%00 in a name: 400");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/web/metrics/x", &r);
    is_int(r.status, 404, "/services/web/metrics/x: 404");
    is_str(jstr(j, "error"), "not_found", "/services/web/metrics/x: not_found");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/web/other", &r);
    is_int(r.status, 404, "/services/web/other: 404");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services//metrics", &r);
    is_int(r.status, 404, "/services//metrics: 404 (no name)");
    json_decref(j);
    sr_api__response_clear(&r);
}

static void test_not_found_and_methods(const struct sr_api__router *rt)
{
    struct sr_api__response r;
    json_t *j = call(rt, "GET", "/nope", &r);
    is_int(r.status, 404, "unknown path: 404");
    is_str(jstr(j, "error"), "not_found", "unknown path: not_found");
    ok(jstr(j, "message") && strstr(jstr(j, "message"), "/nope"), "unknown path: named in message");
    ok(r.allow == NULL, "404 has no Allow");
    json_decref(j);
    sr_api__response_clear(&r);

    const char *nf[] = {"/", "/services/", "/health/", "/cache", "/cache/stats/x", "/HEALTH"};
    for (size_t i = 0; i < sizeof(nf) / sizeof(nf[0]); i++) {
        char name[64];
        route(rt, "GET", nf[i], NULL, &r, NULL);
        snprintf(name, sizeof(name), "GET %s: 404", nf[i]);
        is_int(r.status, 404, name);
        sr_api__response_clear(&r);
    }

    struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"DELETE", "/services", "GET, HEAD"}, {"POST", "/services/web", "GET, HEAD"},
        {"POST", "/health", "GET, HEAD"},     {"PUT", "/cache/stats", "GET, HEAD"},
        {"GET", "/cache/refresh", "POST"},    {"HEAD", "/cache/clear", "POST"},
        {"OPTIONS", "/health", "GET, HEAD"}, {"PUT", "/services/web/metrics", "GET, HEAD, POST"},
        {"DELETE", "/events", "GET, HEAD"},  {"POST", "/events", "GET, HEAD"},
        {"PATCH", "/services", "GET, HEAD"}, {"TRACE", "/health", "GET, HEAD"},
        {"CONNECT", "/cache/clear", "POST"}, {"OPTIONS", "*", "GET, HEAD, POST"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[96];
        j = call(rt, cases[i].method, cases[i].path, &r);
        snprintf(name, sizeof(name), "%s %s: 405", cases[i].method, cases[i].path);
        is_int(r.status, 405, name);
        snprintf(name, sizeof(name), "%s %s: Allow %s", cases[i].method, cases[i].path,
                 cases[i].allow);
        is_str(r.allow, cases[i].allow, name);
        snprintf(name, sizeof(name), "%s %s: JSON method_not_allowed", cases[i].method,
                 cases[i].path);
        is_str(jstr(j, "error"), "method_not_allowed", name);
        json_decref(j);
        sr_api__response_clear(&r);
    }

    j = call(rt, "GET", "*", &r);
    is_int(r.status, 400, "target '*': 400");
    json_decref(j);
    sr_api__response_clear(&r);

    /* A method RFC 9110 does not define (methods are case-sensitive): 501,
     * whatever the path. */
    static const struct {
        const char *method, *path;
    } unknown[] = {{"get", "/health"},    {"FOO", "/health"},   {"Head", "/services"},
                   {"BREW", "/nope"},     {"FOO", "*"},         {"PROPFIND", "/services/web"},
                   {"options", "*"}};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        char name[96];
        j = call(rt, unknown[i].method, unknown[i].path, &r);
        snprintf(name, sizeof(name), "%s %s: 501 not_implemented, no Allow", unknown[i].method,
                 unknown[i].path);
        ok(r.status == 501 && r.allow == NULL && strcmp(jstr(j, "error"), "not_implemented") == 0,
           name);
        json_decref(j);
        sr_api__response_clear(&r);
    }
    is_str(sr_api__reason(501), "Not Implemented", "501 reason phrase");

    /* Bytes that are not UTF-8 in the path, raw or percent-encoded, or a
     * character cut by the message's 64-byte limit: a 404 with U+FFFD in
     * the message (jansson refused them, and the process aborted). */
    char cut[80];
    snprintf(cut, sizeof(cut), "/%.62s\xc3\xa9", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    const char *bad[] = {"/\xff", "/services/%ff", "/services/%C3", "/services/%ff/metrics", cut};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[160];
        j = call(rt, "GET", bad[i], &r);
        snprintf(name, sizeof(name), "GET path #%zu with bytes that are not UTF-8: 404", i);
        is_int(r.status, 404, name);
        snprintf(name, sizeof(name), "GET path #%zu: JSON message with U+FFFD", i);
        ok(jstr(j, "message") && strstr(jstr(j, "message"), "\xef\xbf\xbd"), name);
        json_decref(j);
        sr_api__response_clear(&r);
    }
}

static void test_json_text(void)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\xc3", "a\xef\xbf\xbd"},                                     /* cut short */
        {"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd"},                         /* never UTF-8 */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                         /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},         /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"x\xe2\x82y", "x\xef\xbf\xbdy"},                              /* cut: one */
        {"a\xf0\x9f\x98", "a\xef\xbf\xbd"},                            /* cut emoji */
        {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},         /* overlong */
        {"\xe2\x82\xe2\x82\xac", "\xef\xbf\xbd\xe2\x82\xac"},               /* cut, then whole */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[64];
        json_t *j = sr_json_text(cases[i].in);
        snprintf(name, sizeof(name), "json_text case %zu", i);
        is_str(json_string_value(j), cases[i].out, name);
        json_decref(j);
    }
}

static void test_stats(const struct sr_api__router *rt)
{
    struct sr_api__response r;
    json_t *j = call(rt, "GET", "/cache/stats", &r);
    is_int(r.status, 200, "GET /cache/stats: 200");
    is_int(jint(j, "services"), 3, "stats: services");
    is_int(jint(j, "metrics"), 0, "stats: metrics 0");
    ok(jint(j, "cache_version") >= 3, "stats: cache_version");
    ok(jstr(j, "last_refresh") && strlen(jstr(j, "last_refresh")) == 24 &&
           jstr(j, "last_refresh")[23] == 'Z',
       "stats: last_refresh is RFC 3339 UTC");
    is_int(jint(j, "refreshes"), 3, "stats: refreshes counted");
    ok(jint(j, "added") >= 3, "stats: added");
    ok(jint(j, "removed") >= 1, "stats: removed");
    is_int(jint(j, "events_received"), 7, "stats: events_received");
    ok(jstr(j, "last_event_time") != NULL, "stats: last_event_time");
    is_str(jstr(j, "docker.state"), "connected", "stats: docker.state");
    ok(json_is_null(json_object_get(json_object_get(j, "docker"), "reason")),
       "stats: empty reason is null");
    is_str(jstr(j, "docker.api_version"), "1.41", "stats: docker.api_version");
    is_str(jstr(j, "docker.engine_version"), "20.10.24", "stats: docker.engine_version");
    ok(json_is_true(json_object_get(json_object_get(j, "docker"), "events_connected")),
       "stats: docker.events_connected");
    json_decref(j);
    sr_api__response_clear(&r);
}

static json_t *health(const struct sr_api__router *rt, struct sr_cache *cache,
                      const struct sr_source_status *src, int *status)
{
    struct sr_api__response r;
    sr_cache_set_source(cache, src);
    json_t *j = call(rt, "GET", "/health", &r);
    *status = r.status;
    sr_api__response_clear(&r);
    return j;
}

static void test_health(struct sr_cache *cache, struct sr_api__router *rt)
{
    struct sr_source_status src = {0};
    int status;

    json_t *j = health(rt, cache, &src, &status);
    is_int(status, 503, "health, connecting: 503");
    is_str(jstr(j, "status"), "unhealthy", "health, connecting: unhealthy");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)), "docker connecting",
           "health, connecting: reason");
    json_decref(j);

    src.state = SR_SOURCE_UNREACHABLE;
    snprintf(src.reason, sizeof(src.reason),
             "connect /var/run/docker.sock: No such file or directory");
    j = health(rt, cache, &src, &status);
    is_int(status, 503, "health, unreachable: 503");
    is_str(jstr(j, "status"), "unhealthy", "health, unreachable: unhealthy");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)),
           "docker unreachable: connect /var/run/docker.sock: No such file or directory",
           "health, unreachable: reason carries the cause");
    is_int(json_array_size(json_object_get(j, "reasons")), 1,
           "health, unreachable: events-down not added on top");
    is_str(jstr(j, "docker.state"), "unreachable", "health: docker.state");
    json_decref(j);

    src.state = SR_SOURCE_NOT_MANAGER;
    snprintf(src.reason, sizeof(src.reason), "this node is not a swarm manager");
    j = health(rt, cache, &src, &status);
    is_int(status, 503, "health, not manager: 503");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)),
           "not a swarm manager: this node is not a swarm manager", "health, not manager: reason");
    json_decref(j);

    src.state = SR_SOURCE_ERROR;
    snprintf(src.reason, sizeof(src.reason), "unexpected answer");
    j = health(rt, cache, &src, &status);
    is_int(status, 503, "health, error: 503");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)),
           "docker error: unexpected answer", "health, error: reason");
    json_decref(j);

    src.state = SR_SOURCE_CONNECTED;
    src.reason[0] = '\0';
    snprintf(src.api_version, sizeof(src.api_version), "1.41");
    src.events_connected = false;
    j = health(rt, cache, &src, &status);
    is_int(status, 200, "health, events down: 200");
    is_str(jstr(j, "status"), "degraded", "health, events down: degraded");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)),
           "docker events stream down", "health, events down: reason");
    json_decref(j);

    src.events_connected = true;
    j = health(rt, cache, &src, &status);
    is_int(status, 200, "health, all up: 200");
    is_str(jstr(j, "status"), "healthy", "health, all up: healthy");
    is_int(json_array_size(json_object_get(j, "reasons")), 0, "health, all up: no reasons");
    is_str(jstr(j, "docker.state"), "connected", "health: docker block");
    is_int(jint(j, "cache.services"), 3, "health: cache block = stats");
    is_str(jstr(j, "publisher.status"), "disabled", "health: publisher disabled");
    ok(jstr(j, "last_refresh") != NULL, "health: last_refresh");
    is_str(jstr(j, "version"), SR_VERSION, "health: version");
    ok(jint(j, "uptime_sec") >= 0, "health: uptime_sec");
    json_decref(j);

    /* Stale: last refresh older than 3 x interval (30 s). */
    rt->now = clock_fake;
    fake_now = sr_now() + 91;
    j = health(rt, cache, &src, &status);
    is_int(status, 200, "health, stale refresh: 200");
    is_str(jstr(j, "status"), "degraded", "health, stale refresh: degraded");
    const char *why = json_string_value(json_array_get(json_object_get(j, "reasons"), 0));
    ok(why && strncmp(why, "last refresh ", 13) == 0, "health, stale refresh: reason");
    json_decref(j);
    fake_now = sr_now() + 80;
    j = health(rt, cache, &src, &status);
    is_str(jstr(j, "status"), "healthy", "health, 80 s < 90 s: still healthy");
    json_decref(j);
    rt->now = NULL;

    /* HEAD gets the same status. */
    src.state = SR_SOURCE_UNREACHABLE;
    sr_cache_set_source(cache, &src);
    struct sr_api__response r;
    route(rt, "HEAD", "/health", NULL, &r, NULL);
    is_int(r.status, 503, "HEAD /health follows GET: 503");
    sr_api__response_clear(&r);
    src.state = SR_SOURCE_CONNECTED;
    sr_cache_set_source(cache, &src);
}

static void test_refresh_and_clear(struct sr_cache *cache, struct sr_api__router *rt)
{
    struct sr_api__response r;
    rt->can_refresh = false;
    json_t *j = call(rt, "POST", "/cache/refresh", &r);
    is_int(r.status, 503, "refresh without a hook: 503");
    is_str(jstr(j, "error"), "refresh_unavailable", "refresh without a hook: error code");
    json_decref(j);
    sr_api__response_clear(&r);

    rt->can_refresh = true;
    struct sr_api__park park;
    is_int(route(rt, "POST", "/cache/refresh", NULL, &r, &park), SR_API_ROUTE_PARK,
           "refresh with a hook: park it");
    is_int(park.kind, SR_API_PARK_REFRESH, "parked: a refresh");
    ok(r.body == NULL && r.snap == NULL && r.owned == NULL, "parked: nothing to free");

    sr_api__park_response(rt, &park, 0, &r);
    j = json_loadb(r.body, r.len, 0, NULL);
    is_int(r.status, 200, "refresh done: 200");
    ok(json_is_true(json_object_get(j, "refreshed")), "refresh done: refreshed true");
    is_int(jint(j, "stats.services"), 3, "refresh done: stats");
    json_decref(j);
    sr_api__response_clear(&r);

    struct sr_source_status src = {.state = SR_SOURCE_UNREACHABLE};
    snprintf(src.reason, sizeof(src.reason), "connection refused");
    sr_cache_set_source(cache, &src);
    sr_api__park_response(rt, &park, -1, &r);
    j = json_loadb(r.body, r.len, 0, NULL);
    is_int(r.status, 503, "refresh failed: 503");
    is_str(jstr(j, "error"), "refresh_failed", "refresh failed: error code");
    is_str(jstr(j, "message"), "service refresh failed: connection refused",
           "refresh failed: message");
    ok(json_object_get(j, "stats") != NULL, "refresh failed: stats");
    json_decref(j);
    sr_api__response_clear(&r);

    uint64_t before = 0;
    {
        struct sr_cache_stats st;
        sr_cache_get_stats(cache, &st);
        before = st.version;
    }
    j = call(rt, "POST", "/cache/clear", &r);
    is_int(r.status, 200, "POST /cache/clear: 200");
    is_int(jint(j, "cleared.services"), 3, "clear: cleared.services");
    is_int(jint(j, "cleared.metrics"), 2, "clear: cleared.metrics");
    is_int(jint(j, "stats.services"), 0, "clear: stats after");
    is_int(jint(j, "stats.cache_version"), (long long)before + 3, "clear: one version per removal");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services", &r);
    is_int(jint(j, "count"), 0, "after clear: empty list");
    json_decref(j);
    sr_api__response_clear(&r);
}


/* ---- ETag / If-None-Match ------------------------------------------------- */

static void test_etag_match(void)
{
    ok(sr_api__etag_match("\"v1-a\"", "\"v1-a\""), "etag: exact");
    ok(!sr_api__etag_match("\"v1-a\"", "\"v2-a\""), "etag: other version");
    ok(sr_api__etag_match("W/\"v1-a\"", "\"v1-a\""), "etag: weak compare ignores W/ (theirs)");
    ok(sr_api__etag_match("\"v1-a\"", "W/\"v1-a\""), "etag: weak compare ignores W/ (ours)");
    ok(sr_api__etag_match("\"x\", \"v1-a\"", "\"v1-a\""), "etag: second of a list");
    ok(sr_api__etag_match("\"x\",W/\"v1-a\"", "\"v1-a\""), "etag: list without spaces");
    ok(sr_api__etag_match("*", "\"v1-a\""), "etag: * matches");
    ok(!sr_api__etag_match("*", ""), "etag: * needs a representation");
    ok(!sr_api__etag_match(NULL, "\"v1-a\""), "etag: no header");
    ok(!sr_api__etag_match("v1-a", "\"v1-a\""), "etag: unquoted is garbage");
    ok(!sr_api__etag_match("\"v1-", "\"v1-a\""), "etag: unterminated");
    ok(!sr_api__etag_match("\"v1-ab\"", "\"v1-a\""), "etag: prefix is not a match");
}

static void test_conditional(struct sr_cache *cache, const struct sr_api__router *rt)
{
    struct sr_api__response r;
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    char want[64];
    snprintf(want, sizeof(want), "\"v%llu-services\"",
             (unsigned long long)sr_snapshot_version(snap));
    sr_snapshot_release(snap);

    json_t *j = call(rt, "GET", "/services", &r);
    is_str(r.etag, want, "GET /services: ETag \"v<version>-services\"");
    json_decref(j);
    sr_api__response_clear(&r);

    json_decref(call_inm(rt, "GET", "/services", want, &r));
    is_int(r.status, 304, "If-None-Match current: 304");
    ok(r.len == 0 && r.tail_len == 0 && r.snap == NULL && r.owned == NULL,
       "304: no body, nothing held");
    is_str(r.etag, want, "304: keeps the ETag");
    ok(r.content_type == NULL, "304: no content type");
    sr_api__response_clear(&r);

    json_decref(call_inm(rt, "HEAD", "/services", "*", &r));
    is_int(r.status, 304, "HEAD with If-None-Match *: 304");
    sr_api__response_clear(&r);

    json_decref(call_inm(rt, "GET", "/services", "\"v0-services\"", &r));
    is_int(r.status, 200, "If-None-Match stale: 200");
    sr_api__response_clear(&r);

    /* The tag moves with the cache. */
    struct sr_svc *extra = svc("id-x", "x");
    sr_cache_upsert(cache, extra);
    json_decref(call_inm(rt, "GET", "/services", want, &r));
    is_int(r.status, 200, "after a change, the old tag no longer matches");
    ok(strcmp(r.etag, want) != 0, "after a change: new ETag");
    sr_api__response_clear(&r);
    sr_cache_remove(cache, "id-x");

    j = call(rt, "GET", "/services/web", &r);
    ok(strncmp(r.etag, "\"v", 2) == 0 && strstr(r.etag, "-service\"") != NULL,
       "GET /services/web: ETag \"v<version>-service\"");
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", r.etag);
    json_decref(j);
    sr_api__response_clear(&r);
    json_decref(call_inm(rt, "GET", "/services/web", tag, &r));
    is_int(r.status, 304, "GET /services/web with its tag: 304");
    sr_api__response_clear(&r);

    /* Built bodies: the tag is a function of the bytes. */
    j = call(rt, "GET", "/cache/stats", &r);
    ok(built_tag(r.etag), "GET /cache/stats: ETag \"v<version>-<hash>\"");
    snprintf(tag, sizeof(tag), "%s", r.etag);
    json_decref(j);
    sr_api__response_clear(&r);
    json_decref(call_inm(rt, "GET", "/cache/stats", tag, &r));
    is_int(r.status, 304, "stats unchanged: 304");
    sr_api__response_clear(&r);
    struct sr_source_status src;
    {
        struct sr_cache_stats st;
        sr_cache_get_stats(cache, &st);
        src = st.source;
    }
    src.events_received++;
    sr_cache_set_source(cache, &src);
    json_decref(call_inm(rt, "GET", "/cache/stats", tag, &r));
    is_int(r.status, 200, "a counter moved without the version: 200, not 304");
    ok(strcmp(r.etag, tag) != 0, "... with a new tag");
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/nope", &r);
    ok(r.etag[0] == '"', "404 from the router carries an ETag too");
    json_decref(j);
    sr_api__response_clear(&r);
    json_decref(call_inm(rt, "GET", "/nope", "*", &r));
    is_int(r.status, 404, "If-None-Match * on a 404: still 404");
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/health", &r);
    ok(built_tag(r.etag), "GET /health: ETag \"v<version>-<hash>\"");
    json_decref(j);
    sr_api__response_clear(&r);
}

/* Routes with If-Match (and If-None-Match); returns the status. */
static int route_im(const struct sr_api__router *rt, const char *method, const char *target,
                    const char *im, const char *inm)
{
    struct sr_api__request rq = {
        .method = method, .target = target, .if_match = im, .if_none_match = inm};
    struct sr_api__response r;
    struct sr_api__park park;
    int rc = sr_api__route(rt, &rq, &r, &park);
    int status = rc == SR_API_ROUTE_PARK ? 0 : r.status;
    if (rc == SR_API_ROUTE_PARK)
        sr_api__park_clear(&park);
    else
        sr_api__response_clear(&r);
    return status;
}

/* RFC 9110 §13: If-Match compares strongly and, false, gives 412 before a
 * POST acts; If-None-Match on a POST gives 412 too. */
static void test_preconditions(struct sr_cache *cache, const struct sr_api__router *rt)
{
    struct sr_api__response r;
    json_decref(call(rt, "GET", "/services/web", &r));
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", r.etag);
    sr_api__response_clear(&r);

    is_int(route_im(rt, "GET", "/services/web", tag, NULL), 200, "If-Match with the tag: 200");
    is_int(route_im(rt, "HEAD", "/services/web", "*", NULL), 200, "If-Match *: 200");
    is_int(route_im(rt, "GET", "/services/web", "\"v0-service\"", NULL), 412,
           "If-Match with another tag: 412");
    char weak[80];
    snprintf(weak, sizeof(weak), "W/%s", tag);
    is_int(route_im(rt, "GET", "/services/web", weak, NULL), 412,
           "If-Match compares strongly: W/ of the tag does not match");
    char list[160];
    snprintf(list, sizeof(list), "\"a\", %s", tag);
    is_int(route_im(rt, "GET", "/services/web", list, tag), 304,
           "If-Match holds (list), then If-None-Match: 304");
    is_int(route_im(rt, "GET", "/services/nope", "\"x\"", NULL), 404,
           "a 404 ignores preconditions");
    is_int(route_im(rt, "GET", "/metrics", "*", NULL), 200,
           "If-Match * on an answer without a tag (/metrics): 200");
    struct sr_snapshot *now = sr_cache_acquire(cache);
    char poll[96];
    snprintf(poll, sizeof(poll), "/services?index=%llu&wait=1s",
             (unsigned long long)sr_snapshot_services_version(now));
    sr_snapshot_release(now);
    is_int(route_im(rt, "GET", poll, NULL, NULL), 0, "a long-poll at the current index parks");
    is_int(route_im(rt, "GET", poll, "\"x\"", NULL), 412,
           "... but with If-Match it is answered at once (no late 412)");

    /* Metrics: a weak tag, so only If-Match: * can hold. */
    json_decref(call(rt, "GET", "/services/web/metrics", &r));
    char mtag[64];
    snprintf(mtag, sizeof(mtag), "%s", r.etag);
    sr_api__response_clear(&r);
    is_int(route_im(rt, "GET", "/services/web/metrics", mtag, NULL), 412,
           "GET metrics with If-Match of its weak tag: 412");

    /* POST: checked before acting. */
    uint64_t v = sr_cache_version(cache);
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    size_t n = sr_snapshot_count(snap);
    sr_snapshot_release(snap);
    is_int(route_im(rt, "POST", "/cache/clear", "*", NULL), 412,
           "POST /cache/clear with If-Match: 412 (no current representation)");
    snap = sr_cache_acquire(cache);
    ok(sr_cache_version(cache) == v && sr_snapshot_count(snap) == n,
       "... and nothing was cleared");
    sr_snapshot_release(snap);
    is_int(route_im(rt, "POST", "/cache/refresh", "\"x\"", NULL), 412,
           "POST /cache/refresh with If-Match: 412");
    is_int(route_im(rt, "POST", "/cache/refresh", NULL, "*"), 0,
           "POST /cache/refresh with If-None-Match *: goes ahead (parks)");
    struct sr_api__router collecting = *rt;
    collecting.can_collect = true;
    is_int(route_im(&collecting, "POST", "/services/web/metrics", mtag, NULL), 412,
           "POST metrics with If-Match of the weak tag: 412");
    is_int(route_im(&collecting, "POST", "/services/web/metrics", NULL, mtag), 412,
           "POST metrics with If-None-Match of the current tag: 412");
    is_int(route_im(&collecting, "POST", "/services/web/metrics", "*", NULL), 0,
           "POST metrics with If-Match *: goes ahead (parks)");
    is_int(route_im(&collecting, "POST", "/services/nope/metrics", "\"x\"", NULL), 404,
           "POST metrics of an unknown service: 404, preconditions ignored");

}

/* ---- filters ----------------------------------------------------------------- */

static struct sr_svc *svc_full(const char *id, const char *name, json_t *labels, const char *stack,
                               const char *metric)
{
    return sr_svc_new(json_pack("{s:s, s:s, s:s, s:o, s:s?, s:{s:b, s:s}}", "id", id, "name", name,
                                "image", "busybox:1", "labels", labels, "stack", stack,
                                "autoscaler", "enabled", 1, "metric", metric));
}

static size_t names_of(const char *target, const struct sr_api__router *rt, char *out,
                       size_t cap, int *status)
{
    struct sr_api__response r;
    json_t *j = call(rt, "GET", target, &r);
    *status = r.status;
    out[0] = '\0';
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(json_object_get(j, "services"), i, v)
    {
        if (n++)
            strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, json_string_value(json_object_get(v, "name")), cap - strlen(out) - 1);
    }
    if (json_integer_value(json_object_get(j, "count")) != (json_int_t)n)
        n = (size_t)-1; /* count must match the array */
    json_decref(j);
    sr_api__response_clear(&r);
    return n;
}

static void test_filters(struct sr_cache *cache, const struct sr_api__router *rt)
{
    struct sr_svc *svcs[] = {
        svc_full("id-a", "a", json_pack("{s:s, s:s}", "tier", "web", "team", "blue"), "shop", "cpu"),
        svc_full("id-b", "b", json_pack("{s:s}", "tier", "db"), "shop", "memory"),
        svc_full("id-c", "c", json_pack("{s:s, s:s}", "tier", "web", "x y", "a=b"), NULL, "cpu"),
        svc_full("id-d", "d", json_object(), "other", "memory"),
    };
    sr_cache_replace(cache, svcs, 4, NULL);
    char names[256];
    int status;
    struct {
        const char *target, *want;
    } cases[] = {
        {"/services", "a,b,c,d"},
        {"/services?label=tier", "a,b,c"},
        {"/services?label=tier=web", "a,c"},
        {"/services?label=tier=web&label=team", "a"},
        {"/services?label=tier=web&label=team=red", ""},
        {"/services?label=nope", ""},
        {"/services?stack=shop", "a,b"},
        {"/services?stack=nope", ""},
        {"/services?stack=shop&stack=other", ""},
        {"/services?metric=memory", "b,d"},
        {"/services?metric=disk", ""},
        {"/services?metric=cpu&stack=shop", "a"},
        {"/services?label=x+y=a%3Db", "c"},
        {"/services?label=tier%3Dweb", "a,c"},       /* urlencode's form */
        {"/services?label=x%20y%3Da%3Db", "c"},     /* the value keeps later '=' */
        {"/services?label=tier%3Ddb&label=tier", "b"},
        {"/services?label=x%20y", "c"},
        {"/services?unknown=1&label=tier=db", "b"},
        {"/services?unknown=%zz", "a,b,c,d"},
        {"/services?label=tier=web#frag", "a,c"},
        {"/services?&&label=team&", "a"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[160];
        size_t n = names_of(cases[i].target, rt, names, sizeof(names), &status);
        snprintf(name, sizeof(name), "%s -> [%s]", cases[i].target, cases[i].want);
        is_str(names, cases[i].want, name);
        snprintf(name, sizeof(name), "%s: 200 and count matches", cases[i].target);
        ok(status == 200 && n != (size_t)-1, name);
    }

    struct sr_api__response r;
    json_t *j = call(rt, "GET", "/services?label=%zz", &r);
    is_int(r.status, 400, "bad escape in a filter value: 400");
    json_decref(j);
    sr_api__response_clear(&r);

    /* A filtered body is built from the entries' bytes: identical encoding. */
    j = call(rt, "GET", "/services?stack=shop", &r);
    ok(r.owned != NULL && r.snap == NULL, "filtered list: owned body");
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    size_t alen;
    const char *abody = sr_svc_body(sr_snapshot_find(snap, "a"), &alen);
    ok(r.len > 13 + alen && memcmp(r.body + 13, abody, alen) == 0,
       "filtered list: the entry's bytes, as cached");
    char tail[80];
    snprintf(tail, sizeof(tail), "],\"count\":2,\"cache_version\":%llu}",
             (unsigned long long)sr_snapshot_version(snap));
    ok(r.len > strlen(tail) && strcmp(r.body + r.len - strlen(tail), tail) == 0,
       "filtered list: count and cache_version");
    char tag1[64];
    snprintf(tag1, sizeof(tag1), "%s", r.etag);
    json_decref(j);
    sr_api__response_clear(&r);
    j = call(rt, "GET", "/services?stack=other", &r);
    ok(strcmp(tag1, r.etag) != 0, "different filters: different ETags");
    ok(strncmp(tag1, r.etag, strlen(tag1) - 10) == 0, "... same version part");
    json_decref(j);
    sr_api__response_clear(&r);
    json_decref(call_inm(rt, "GET", "/services?stack=shop", tag1, &r));
    is_int(r.status, 304, "filtered list with its tag: 304");
    sr_api__response_clear(&r);
    sr_snapshot_release(snap);
}

/* ---- metrics ------------------------------------------------------------------- */

static void test_metrics(struct sr_cache *cache, struct sr_api__router *rt)
{
    struct sr_api__response r;
    struct sr_api__park park;
    rt->now = clock_fake;
    fake_now = 1700000100.0;

    json_t *j = call(rt, "GET", "/services/web/metrics", &r);
    is_int(r.status, 200, "metrics, none yet: 200");
    is_str(jstr(j, "service"), "web", "metrics, none yet: service");
    is_str(jstr(j, "service_id"), "id-web", "metrics, none yet: service_id");
    ok(json_is_null(json_object_get(j, "sampled_at")) &&
           json_is_null(json_object_get(j, "sample_time")) &&
           json_is_null(json_object_get(j, "age_sec")),
       "metrics, none yet: sampled_at, sample_time, age_sec null");
    is_int(jint(j, "containers_sampled"), 0, "metrics, none yet: containers_sampled 0");
    ok(json_array_size(json_object_get(j, "containers")) == 0 &&
           json_is_array(json_object_get(j, "containers")),
       "metrics, none yet: containers []");
    is_str(jstr(j, "reason"), "no metrics collected yet", "metrics, none yet: reason");
    ok(strncmp(r.etag, "W/\"v", 4) == 0 && strstr(r.etag, "-metrics\""),
       "metrics: weak ETag W/\"v<version>-metrics\"");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/nope/metrics", &r);
    is_int(r.status, 404, "metrics of an unknown service: 404");
    is_str(jstr(j, "error"), "service_not_found", "metrics 404: service_not_found");
    json_decref(j);
    sr_api__response_clear(&r);

    /* A metrics commit moves the cache version, not the services'. */
    char list_tag[64], svc_tag[64];
    json_decref(call(rt, "GET", "/services", &r));
    snprintf(list_tag, sizeof(list_tag), "%s", r.etag);
    uint64_t list_index = r.index;
    char *list_before = full_body(&r);
    sr_api__response_clear(&r);
    json_decref(call(rt, "GET", "/services/web", &r));
    snprintf(svc_tag, sizeof(svc_tag), "%s", r.etag);
    sr_api__response_clear(&r);
    uint64_t v_before = sr_cache_version(cache);
    is_int(sr_cache_set_metrics(cache, "id-web",
                                json_pack("{s:s, s:s, s:s, s:f, s:i, s:[]}", "service", "web",
                                          "service_id", "id-web", "sampled_at",
                                          "2023-11-14T22:13:07.660Z", "sample_time",
                                          1700000087.66, "containers_sampled", 0, "containers")),
           1, "metrics stored");
    ok(sr_cache_version(cache) > v_before, "the metrics commit moved the cache version");
    json_decref(call_inm(rt, "GET", "/services", list_tag, &r));
    is_int(r.status, 304, "/services: still 304 after a metrics commit");
    sr_api__response_clear(&r);
    json_decref(call(rt, "GET", "/services", &r));
    char *list_after = full_body(&r);
    is_str(list_after, list_before, "/services: the same bytes (cache_version is the list's)");
    ok(r.index == list_index, "/services: the same X-Registry-Index");
    free(list_before);
    free(list_after);
    sr_api__response_clear(&r);
    json_decref(call_inm(rt, "GET", "/services/web", svc_tag, &r));
    is_int(r.status, 304, "/services/{name}: still 304 after a metrics commit");
    sr_api__response_clear(&r);
    is_int(poll_route(rt, "/services", list_index, NULL), SR_API_ROUTE_PARK,
           "/services?index=<its index>: parks though the cache version moved");
    json_decref(call(rt, "GET", "/services/nope", &r));
    is_int(r.status, 404, "an unknown service: 404");
    ok(r.index == list_index, "... whose X-Registry-Index is the services version too");
    sr_api__response_clear(&r);
    is_int(poll_route(rt, "/services/nope", list_index, NULL), SR_API_ROUTE_PARK,
           "a long-poll for a service yet to come parks with that index (no spin)");
    json_decref(call(rt, "GET", "/services?index=abc", &r));
    is_int(r.status, 400, "a malformed index: 400");
    ok(r.has_index && r.index == list_index,
       "... with the services version as its X-Registry-Index, not the cache's");
    sr_api__response_clear(&r);
    json_decref(call(rt, "GET", "/services/nope/metrics", &r));
    is_int(r.status, 404, "metrics of an unknown service: 404");
    ok(r.has_index && r.index == sr_cache_version(cache),
       "... whose X-Registry-Index is the cache version (the metrics' index)");
    sr_api__response_clear(&r);
    is_int(poll_route(rt, "/services/nope/metrics", sr_cache_version(cache), NULL),
           SR_API_ROUTE_PARK, "a metrics long-poll for a service yet to come parks too");
    is_int(poll_route(rt, "/services/web/metrics", v_before, &r), SR_API_ROUTE_DONE,
           "/services/{name}/metrics?index=<before>: answered at once");
    ok(r.index == sr_cache_version(cache), "... with the cache version as its index");
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services/web/metrics", &r);
    is_int(r.status, 200, "metrics: 200");
    ok(j != NULL, "metrics: body + spliced tail is valid JSON");
    is_dbl(json_real_value(json_object_get(j, "age_sec")), 12.3, 0.001,
           "metrics: age_sec = now - sample_time (0.1 s)");
    is_str(jstr(j, "sampled_at"), "2023-11-14T22:13:07.660Z", "metrics: the document's members");
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    size_t mlen;
    const char *mbody = sr_svc_body(sr_snapshot_metrics(snap, "web"), &mlen);
    ok(r.snap != NULL && r.body == mbody && r.len == mlen - 1,
       "metrics: the entry's bytes by reference, minus its final '}'");
    is_str(r.tail, ",\"age_sec\":12.3}", "metrics: small owned tail");
    is_int(sr_api__response_length(&r), mlen + 15, "metrics: length = body - 1 + tail");
    sr_snapshot_release(snap);
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", r.etag);
    json_decref(j);
    sr_api__response_clear(&r);

    fake_now += 100;
    json_decref(call_inm(rt, "GET", "/services/web/metrics", tag, &r));
    is_int(r.status, 304, "metrics: same version, later: 304 (weak tag)");
    sr_api__response_clear(&r);

    fake_now = 1700000000.0; /* before the sample: clock skew */
    j = call(rt, "HEAD", "/services/web/metrics", &r);
    is_int(r.status, 200, "HEAD metrics: 200");
    is_dbl(json_real_value(json_object_get(j, "age_sec")), 0, 0.001, "metrics: age never < 0");
    json_decref(j);
    sr_api__response_clear(&r);

    /* A document without sample_time: age_sec null. */
    sr_cache_set_metrics(cache, "id-api", json_pack("{s:s}", "service", "api"));
    j = call(rt, "GET", "/services/api/metrics", &r);
    ok(j != NULL && json_is_null(json_object_get(j, "age_sec")),
       "metrics without sample_time: age_sec null");
    json_decref(j);
    sr_api__response_clear(&r);

    /* POST: collect now. */
    rt->can_collect = false;
    j = call(rt, "POST", "/services/web/metrics", &r);
    is_int(r.status, 503, "POST metrics without a hook: 503");
    is_str(jstr(j, "error"), "metrics_unavailable", "POST metrics without a hook: error");
    json_decref(j);
    sr_api__response_clear(&r);
    rt->can_collect = true;

    j = call(rt, "POST", "/services/nope/metrics", &r);
    is_int(r.status, 404, "POST metrics of an unknown service: 404");
    json_decref(j);
    sr_api__response_clear(&r);

    is_int(route(rt, "POST", "/services/web/metrics", "*", &r, &park), SR_API_ROUTE_DONE,
           "POST metrics with If-None-Match *: not parked (a representation exists)");
    is_int(r.status, 412, "... 412");
    sr_api__response_clear(&r);
    is_int(route(rt, "POST", "/services/web/metrics", NULL, &r, &park), SR_API_ROUTE_PARK,
           "POST metrics: parked");
    is_int(park.kind, SR_API_PARK_METRICS, "POST metrics: kind");
    is_str(park.id, "id-web", "POST metrics: the service ID for the hook");
    is_str(park.name, "web", "POST metrics: the name to answer with");
    fake_now = 1700000090.0;
    sr_api__park_response(rt, &park, 0, &r);
    {
        char *b = full_body(&r);
        j = json_loads(b, 0, NULL);
        free(b);
    }
    is_int(r.status, 200, "POST metrics done: 200");
    is_dbl(json_real_value(json_object_get(j, "age_sec")), 2.3, 0.001,
           "POST metrics done: the GET answer");
    json_decref(j);
    sr_api__response_clear(&r);

    sr_api__park_response(rt, &park, -1, &r);
    {
        char *b = full_body(&r);
        j = json_loads(b, 0, NULL);
        free(b);
    }
    is_int(r.status, 503, "POST metrics failed: 503");
    is_str(jstr(j, "error"), "metrics_failed", "POST metrics failed: metrics_failed");
    is_str(jstr(j, "service"), "web", "POST metrics failed: names the service");
    json_decref(j);
    sr_api__response_clear(&r);
    sr_api__park_clear(&park);

    /* The service left while collecting. */
    is_int(route(rt, "POST", "/services/my%20app/metrics", NULL, &r, &park), SR_API_ROUTE_PARK,
           "POST metrics of a %-encoded name: parked");
    sr_cache_remove(cache, "id-sp");
    sr_api__park_response(rt, &park, 0, &r);
    is_int(r.status, 404, "POST metrics, service gone meanwhile: 404");
    sr_api__response_clear(&r);
    sr_api__park_clear(&park);
    struct sr_svc *sp = svc("id-sp", "my app");
    sr_cache_upsert(cache, sp);

    j = call(rt, "GET", "/cache/stats", &r);
    is_int(jint(j, "metrics"), 2, "stats: metrics entries counted");
    json_decref(j);
    sr_api__response_clear(&r);
    rt->now = NULL;
}

/* ---- events and the publisher ---------------------------------------------------- */

static const char *pub_state = "connected";
static const char *pub_error = NULL;
static bool pub_enabled = true;
static json_t *fake_publisher(void *ctx)
{
    (*(int *)ctx)++;
    return json_pack("{s:b, s:s, s:b, s:s, s:s, s:i, s:i, s:i, s:i, s:s?}", "enabled", pub_enabled,
                     "status", pub_state, "connected", strcmp(pub_state, "connected") == 0,
                     "broker", "amqp://guest@127.0.0.1:5672/%2F", "exchange", "swarm", "published",
                     5, "confirmed", 4, "queued", 1, "dropped", 0, "last_error", pub_error);
}

static void test_events(struct sr_api__router *rt)
{
    struct sr_api__response r;
    json_t *j = call(rt, "GET", "/events", &r);
    is_int(r.status, 200, "GET /events: 200");
    ok(json_is_null(json_object_get(j, "exchange")), "events without a publisher: exchange null");
    is_str(jstr(j, "publisher.status"), "disabled", "events without a publisher: disabled");
    const char *want[] = {"services.updated",       "service.added", "service.removed",
                          "service.updated",        "metrics.{service_name}",
                          "health.check"};
    json_t *ev = json_object_get(j, "events");
    is_int(json_array_size(ev), 6, "events: six event types");
    for (size_t i = 0; i < 6; i++) {
        char name[96];
        json_t *e = json_array_get(ev, i);
        snprintf(name, sizeof(name), "events[%zu]: %s, same routing key, described", i, want[i]);
        ok(str_eq(jstr(e, "event"), want[i]) && str_eq(jstr(e, "routing_key"), want[i]) &&
               jstr(e, "description") != NULL && strlen(jstr(e, "description")) > 10,
           name);
    }
    ok(built_tag(r.etag), "events: ETag \"v<version>-<hash>\"");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "HEAD", "/events", &r);
    is_int(r.status, 200, "HEAD /events: 200");
    json_decref(j);
    sr_api__response_clear(&r);

    /* (/events/stream is its own route: SSE.) */
    const char *nf[] = {"/events/", "/eventsx", "/events/x/y"};
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        route(rt, "GET", nf[i], NULL, &r, NULL);
        snprintf(name, sizeof(name), "GET %s: 404 (/events is exact)", nf[i]);
        is_int(r.status, 404, name);
        sr_api__response_clear(&r);
    }

    int calls = 0;
    rt->publisher_status = fake_publisher;
    rt->pub_ctx = &calls;
    j = call(rt, "GET", "/events?x=1", &r);
    is_str(jstr(j, "exchange"), "swarm", "events: the publisher's exchange");
    is_str(jstr(j, "publisher.broker"), "amqp://guest@127.0.0.1:5672/%2F",
           "events: the publisher's status, as is");
    is_int(jint(j, "publisher.queued"), 1, "events: publisher counters");
    is_int(calls, 1, "events: one status call");
    json_decref(j);
    sr_api__response_clear(&r);
}

static void test_health_publisher(struct sr_cache *cache, struct sr_api__router *rt)
{
    struct sr_api__response r;
    int calls = 0;
    rt->publisher_status = fake_publisher;
    rt->pub_ctx = &calls;

    pub_state = "connected";
    json_t *j = call(rt, "GET", "/health", &r);
    is_int(r.status, 200, "health, publisher connected: 200");
    is_str(jstr(j, "status"), "healthy", "health, publisher connected: healthy");
    is_str(jstr(j, "publisher.status"), "connected", "health: publisher block from the hook");
    is_int(jint(j, "publisher.confirmed"), 4, "health: publisher counters");
    json_decref(j);
    sr_api__response_clear(&r);

    pub_state = "disconnected";
    pub_error = "connection refused";
    j = call(rt, "GET", "/health", &r);
    is_int(r.status, 200, "health, publisher disconnected: 200");
    is_str(jstr(j, "status"), "degraded", "health, publisher disconnected: degraded");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)),
           "publisher disconnected: connection refused", "health: publisher reason");
    json_decref(j);
    sr_api__response_clear(&r);

    pub_state = "connecting";
    pub_error = NULL;
    j = call(rt, "GET", "/health", &r);
    is_str(jstr(j, "status"), "degraded", "health, publisher connecting: degraded");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 0)),
           "publisher connecting", "health: reason without last_error");
    json_decref(j);
    sr_api__response_clear(&r);

    pub_state = "disabled";
    pub_enabled = false;
    j = call(rt, "GET", "/health", &r);
    is_str(jstr(j, "status"), "healthy", "health, publisher disabled by config: healthy");
    json_decref(j);
    sr_api__response_clear(&r);

    /* Docker down and the broker down: both reasons, unhealthy. */
    pub_state = "disconnected";
    pub_enabled = true;
    pub_error = "ACCESS_REFUSED";
    struct sr_cache_stats st;
    sr_cache_get_stats(cache, &st);
    struct sr_source_status src = st.source;
    src.state = SR_SOURCE_UNREACHABLE;
    sr_cache_set_source(cache, &src);
    j = call(rt, "GET", "/health", &r);
    is_int(r.status, 503, "health, docker and broker down: 503");
    is_int(json_array_size(json_object_get(j, "reasons")), 2, "health: both reasons");
    is_str(json_string_value(json_array_get(json_object_get(j, "reasons"), 1)),
           "publisher disconnected: ACCESS_REFUSED", "health: the publisher's reason too");
    json_decref(j);
    sr_api__response_clear(&r);
    src.state = SR_SOURCE_CONNECTED;
    sr_cache_set_source(cache, &src);

    /* sr_api_health: the same document, from a real server object. */
    struct sr_api_hooks hooks = {.publisher_status = fake_publisher, .pub_ctx = &calls};
    struct sr_api_opts opts = {.host = "127.0.0.1", .port = 0, .refresh_interval_sec = 30};
    char err[256] = "";
    struct sr_api *api = sr_api_new(&opts, &hooks, cache, err, sizeof(err));
    ok(api != NULL, "sr_api_new on port 0");
    if (api != NULL) {
        int status = 0;
        pub_state = "connected";
        j = sr_api_health(api, &status);
        is_int(status, 200, "sr_api_health: status");
        is_str(jstr(j, "status"), "healthy", "sr_api_health: healthy");
        is_str(jstr(j, "publisher.status"), "connected", "sr_api_health: publisher block");
        json_decref(j);
        pub_state = "disconnected";
        j = sr_api_health(api, &status);
        is_int(status, 200, "sr_api_health, broker down: 200");
        is_str(jstr(j, "status"), "degraded", "sr_api_health, broker down: degraded");
        json_decref(j);
        ok(sr_api_port(api) > 0, "sr_api_port: the bound port");
        sr_api_free(api);
    }
    pub_state = "connected";
    pub_error = NULL;
    rt->publisher_status = NULL;
    rt->pub_ctx = NULL;
}

static void test_health_cache(struct sr_cache *cache, const struct sr_api__router *rt)
{
    struct sr_api__health_cache hc = {0};
    struct sr_api__request rq = {.method = "GET", .target = "/health", .health_cache = &hc};
    struct sr_api__response r1, r2;
    struct sr_api__park park;
    struct sr_cache_stats st;
    sr_cache_get_stats(cache, &st);
    struct sr_source_status src = st.source;

    sr_api__route(rt, &rq, &r1, &park);
    ok(hc.body != NULL && hc.body->len == r1.len && memcmp(hc.body->data, r1.body, r1.len) == 0,
       "health cache: filled by the first request");
    ok(r1.owned != NULL && r1.frame == NULL, "health cache: the first answer is built");
    src.events_received += 100;
    sr_cache_set_source(cache, &src);
    sr_api__route(rt, &rq, &r2, &park);
    ok(r2.len == r1.len && memcmp(r2.body, r1.body, r1.len) == 0 && strcmp(r1.etag, r2.etag) == 0,
       "health cache: within the TTL, the same answer");
    ok(r2.frame == hc.body && r2.body == hc.body->data && r2.owned == NULL && hc.body->refs == 2,
       "health cache: lent by reference, not copied");
    sr_api__response_clear(&r2);
    is_int((int)hc.body->refs, 1, "health cache: the reference goes with the response");
    hc.until = 0; /* expired */
    sr_api__route(rt, &rq, &r2, &park);
    ok(strcmp(r1.etag, r2.etag) != 0, "health cache: rebuilt after the TTL");
    sr_api__response_clear(&r1);
    sr_api__response_clear(&r2);
    sr_api__frame_unref(hc.body);
}

static void test_decode(void)
{
    char out[32];
    is_int(sr_api__percent_decode("%41%62c", 7, out), 3, "decode: length");
    is_str(out, "Abc", "decode: %41%62c");
    is_int(sr_api__percent_decode("a+b%2Fc", 7, out), 5, "decode: + kept, %2F decoded");
    is_str(out, "a+b/c", "decode: a+b/c");
    is_int(sr_api__percent_decode("%4", 2, out), -1, "decode: truncated escape");
    is_int(sr_api__percent_decode("%", 1, out), -1, "decode: lone %");
    is_int(sr_api__percent_decode("%g0", 3, out), -1, "decode: non-hex");
    is_int(sr_api__percent_decode("a%00", 4, out), -1, "decode: NUL refused");
}

int main(void)
{
    json_object_seed(0);
    struct sr_cache *cache = sr_cache_new();
    struct sr_svc *svcs[] = {svc("id-web", "web"), svc("id-api", "api"), svc("id-db", "db")};
    sr_cache_replace(cache, svcs, 3, NULL);

    struct sr_source_status src = {.state = SR_SOURCE_CONNECTED,
                                   .events_connected = true,
                                   .events_received = 7,
                                   .last_event_time = 1700000000.5};
    snprintf(src.api_version, sizeof(src.api_version), "1.41");
    snprintf(src.engine_version, sizeof(src.engine_version), "20.10.24");
    sr_cache_set_source(cache, &src);

    struct sr_api__router rt = {
        .cache = cache, .refresh_interval_sec = 30, .started_mono = sr_mono(), .can_refresh = true};

    test_services(cache, &rt);
    test_service(cache, &rt);
    test_not_found_and_methods(&rt);
    test_stats(&rt);
    test_health(cache, &rt);
    test_etag_match();
    test_conditional(cache, &rt);
    test_preconditions(cache, &rt);
    test_events(&rt);
    test_health_publisher(cache, &rt);
    test_metrics(cache, &rt);
    test_health_cache(cache, &rt);
    test_refresh_and_clear(cache, &rt);
    test_decode();
    test_json_text();
    test_filters(cache, &rt);

    sr_cache_free(cache);
    return tap_done();
}
