/* Router (api/routes.c): every endpoint's status, body and headers, on a
 * real cache filled through sr_cache_replace. No sockets. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "cache/cache.h"
#include "cache/util.h"
#include "tests/unit/tap.h"

static double fake_now;
static double clock_fake(void)
{
    return fake_now;
}

static struct sr_svc *svc(const char *id, const char *name)
{
    return sr_svc_new(json_pack("{s:s, s:s, s:s}", "id", id, "name", name, "image", "nginx:1"));
}

/* Routes and parses the JSON body (NULL if not JSON). */
static json_t *call(const struct sr_api__router *rt, const char *method, const char *target,
                    struct sr_api__response *r)
{
    int rc = sr_api__route(rt, method, target, r);
    if (rc != SR_API_ROUTE_DONE)
        return NULL;
    return json_loadb(r->body, r->len, 0, NULL);
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

    j = call(rt, "GET", "/services/web/metrics", &r);
    is_int(r.status, 404, "/services/web/metrics: 404 (not served yet)");
    is_str(jstr(j, "error"), "not_found", "/services/web/metrics: not_found");
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
        sr_api__route(rt, "GET", nf[i], &r);
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
        {"get", "/health", "GET, HEAD"},
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
    sr_api__route(rt, "HEAD", "/health", &r);
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
    is_int(sr_api__route(rt, "POST", "/cache/refresh", &r), SR_API_ROUTE_REFRESH,
           "refresh with a hook: park it");
    ok(r.body == NULL && r.snap == NULL && r.owned == NULL, "parked: nothing to free");

    sr_api__refresh_response(rt, 0, &r);
    j = json_loadb(r.body, r.len, 0, NULL);
    is_int(r.status, 200, "refresh done: 200");
    ok(json_is_true(json_object_get(j, "refreshed")), "refresh done: refreshed true");
    is_int(jint(j, "stats.services"), 3, "refresh done: stats");
    json_decref(j);
    sr_api__response_clear(&r);

    struct sr_source_status src = {.state = SR_SOURCE_UNREACHABLE};
    snprintf(src.reason, sizeof(src.reason), "connection refused");
    sr_cache_set_source(cache, &src);
    sr_api__refresh_response(rt, -1, &r);
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
    is_int(jint(j, "cleared.metrics"), 0, "clear: cleared.metrics");
    is_int(jint(j, "stats.services"), 0, "clear: stats after");
    is_int(jint(j, "stats.cache_version"), (long long)before + 3, "clear: one version per removal");
    json_decref(j);
    sr_api__response_clear(&r);

    j = call(rt, "GET", "/services", &r);
    is_int(jint(j, "count"), 0, "after clear: empty list");
    json_decref(j);
    sr_api__response_clear(&r);
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
    test_refresh_and_clear(cache, &rt);
    test_decode();

    sr_cache_free(cache);
    return tap_done();
}
