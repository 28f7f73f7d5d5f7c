/* Watching without RabbitMQ (issue 8), the pure parts and the router:
 * wait= parsing, topic patterns, SSE framing, the Prometheus text format and
 * HTTP SD body, and the long-poll / stream decisions of sr_api__route. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "cache/cache.h"
#include "cache/util.h"
#include "tests/unit/tap.h"

static void test_wait(void)
{
    static const struct {
        const char *in;
        long long ms; /* -1: refused */
    } cases[] = {
        {"30s", 30000},    {"5m", 300000},     {"1m30s", 90000},  {"250ms", 250},
        {"1.5s", 1500},    {"2h", 7200000},    {"30", 30000},     {"0", 0},
        {"0.25", 250},     {"10m0s", 600000},  {"1h1m1s1ms", 3661001},
        {"", -1},          {"s", -1},          {"5x", -1},        {"-5s", -1},
        {"1m30", -1},      {"1..5s", -1},      {" 5s", -1},       {"5s ", -1},
        {"ms", -1},        {"5sm", -1},        {".s", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 0;
        int rc = sr_api__parse_wait(cases[i].in, strlen(cases[i].in), &ms);
        char name[96];
        snprintf(name, sizeof(name), "wait \"%s\" -> %lld", cases[i].in, cases[i].ms);
        if (cases[i].ms < 0)
            is_int(rc, -1, name);
        else
            ok(rc == 0 && (long long)ms == cases[i].ms, name);
    }
    uint64_t ms = 0;
    ok(sr_api__parse_wait("99999999999999999999h", 21, &ms) == 0 && ms == (uint64_t)1e15,
       "wait: huge values saturate (callers clamp)");
    /* Only the first len bytes count (values are not NUL-terminated). */
    ok(sr_api__parse_wait("5s&index=3", 2, &ms) == 0 && ms == 5000, "wait: bounded by len");
}

static void test_query(void)
{
    const char *q = "label=a&index=42&wait=5s&indexx=1&flag";
    const char *v;
    size_t n;
    ok(sr_api__query_get(q, strlen(q), "index", &v, &n) && n == 2 && memcmp(v, "42", 2) == 0,
       "query: index=42");
    ok(sr_api__query_get(q, strlen(q), "wait", &v, &n) && n == 2 && memcmp(v, "5s", 2) == 0,
       "query: wait=5s");
    ok(sr_api__query_get(q, strlen(q), "flag", &v, &n) && n == 0, "query: a flag has an empty value");
    ok(!sr_api__query_get(q, strlen(q), "inde", &v, &n), "query: no prefix match");
    ok(!sr_api__query_get(q, 10, "index", &v, &n), "query: bounded by qlen");
    uint64_t u;
    ok(sr_api__parse_u64("18446744073709551615", 20, &u) == 0 && u == UINT64_MAX, "u64: max");
    is_int(sr_api__parse_u64("18446744073709551616", 20, &u), -1, "u64: overflow refused");
    is_int(sr_api__parse_u64("", 0, &u), -1, "u64: empty refused");
    is_int(sr_api__parse_u64("+1", 2, &u), -1, "u64: sign refused");
    is_int(sr_api__parse_u64("1 ", 2, &u), -1, "u64: blank refused");
}

static void test_topics(void)
{
    static const struct {
        const char *pattern, *key;
        bool match;
    } cases[] = {
        {"service.*", "service.added", true},
        {"service.*", "service.removed", true},
        {"service.*", "services.updated", false},
        {"service.*", "service", false},
        {"service.*", "service.a.b", false},
        {"metrics.*", "metrics.web", true},
        {"metrics.*", "metrics.my.app", false},
        {"metrics.#", "metrics.my.app", true},
        {"metrics.#", "metrics", true}, /* # is zero or more words */
        {"#", "anything.at.all", true},
        {"#", "", true},
        {"*", "one", true},
        {"*", "one.two", false},
        {"#.updated", "service.updated", true},
        {"#.updated", "services.updated", true},
        {"#.updated", "service.added", false},
        {"*.updated", "updated", false},
        {"a.#.z", "a.z", true},
        {"a.#.z", "a.b.c.z", true},
        {"a.#.z", "a.b.c.y", false},
        {"#.#", "a", true},
        {"a.*.#", "a", false},
        {"a.*.#", "a.b", true},
        {"service.added", "service.added", true},
        {"service.added", "service.addedx", false},
        {"servic*", "service.added", false}, /* no globbing inside a word */
        {"a..b", "a..b", true},              /* empty words are words */
        {"#.#.#.#.#.#.#.#.#.#.x", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[160];
        snprintf(name, sizeof(name), "topic '%s' %s '%s'", cases[i].pattern,
                 cases[i].match ? "matches" : "does not match", cases[i].key);
        is_int(sr_api__topic_match(cases[i].pattern, cases[i].key), cases[i].match, name);
    }

    struct sr_api__types t;
    ok(sr_api__types_parse(" service.* , metrics.web,,", &t) == 0 && t.n == 2,
       "types: two patterns, blanks and empty items ignored");
    ok(t.n == 2 && strcmp(t.v[0], "service.*") == 0 && strcmp(t.v[1], "metrics.web") == 0,
       "types: trimmed");
    ok(sr_api__types_match(&t, "service.removed"), "types: any pattern may match (1)");
    ok(sr_api__types_match(&t, "metrics.web"), "types: any pattern may match (2)");
    ok(!sr_api__types_match(&t, "metrics.db"), "types: none matches");
    sr_api__types_free(&t);
    ok(sr_api__types_parse(NULL, &t) == 0 && t.n == 0 && sr_api__types_match(&t, "x.y"),
       "types: none given matches everything");
    char many[200] = "";
    for (int i = 0; i < 17; i++)
        strcat(many, "a.*,");
    is_int(sr_api__types_parse(many, &t), -1, "types: over 16 patterns refused");
    char longp[300];
    memset(longp, 'a', 256);
    longp[256] = '\0';
    is_int(sr_api__types_parse(longp, &t), -1, "types: a pattern over 255 bytes refused");
}

/* Parses an SSE stream the way WHATWG's algorithm does (enough for tests):
 * returns the data of the first event and its id/event fields. */
static void sse_parse(const char *s, char *id, char *event, char *data)
{
    id[0] = event[0] = data[0] = '\0';
    bool any = false;
    while (*s) {
        size_t n = strcspn(s, "\r\n");
        if (n == 0)
            break; /* blank line: dispatch */
        char line[4096];
        memcpy(line, s, n);
        line[n] = '\0';
        char *colon = strchr(line, ':');
        char *val = colon ? colon + 1 : line + n;
        if (colon)
            *colon = '\0';
        if (*val == ' ')
            val++;
        if (strcmp(line, "id") == 0)
            strcpy(id, val);
        else if (strcmp(line, "event") == 0)
            strcpy(event, val);
        else if (strcmp(line, "data") == 0) {
            if (any)
                strcat(data, "\n");
            strcat(data, val);
            any = true;
        }
        s += n;
        if (s[0] == '\r' && s[1] == '\n')
            s += 2;
        else if (*s)
            s++;
    }
}

static void test_sse_frame(void)
{
    struct sr_buf b = {0};
    sr_api__sse_frame(&b, true, 42, "service.added", "{\"a\":1}", 7);
    is_str(b.p, "id: 42\nevent: service.added\ndata: {\"a\":1}\n\n", "sse: one event");
    free(b.p);

    static const char *const payloads[] = {"line1\nline2", "a\r\nb\rc", "trailing\n", "", "\n\n",
                                           "x"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        memset(&b, 0, sizeof(b));
        sr_api__sse_frame(&b, true, 7, "k", payloads[i], strlen(payloads[i]));
        char id[64], ev[64], data[256], want[256];
        sse_parse(b.p, id, ev, data);
        /* The client joins lines with LF: CRLF and CR come back as LF. */
        size_t k = 0;
        for (const char *p = payloads[i]; *p; p++) {
            if (p[0] == '\r' && p[1] == '\n')
                continue;
            want[k++] = *p == '\r' ? '\n' : *p;
        }
        want[k] = '\0';
        char name[96];
        snprintf(name, sizeof(name), "sse: payload %zu round-trips (lines split)", i);
        ok(strcmp(data, want) == 0 && strcmp(id, "7") == 0 && strcmp(ev, "k") == 0, name);
        ok(strstr(b.p, "\n\n") == b.p + b.len - 2 || strchr(payloads[i], '\n') != NULL,
           "sse: ends with exactly one blank line");
        free(b.p);
    }
    memset(&b, 0, sizeof(b));
    sr_api__sse_frame(&b, false, 0, "bad\nname", "d", 1);
    is_str(b.p, "event: bad name\ndata: d\n\n", "sse: no id; a line break in the name is a space");
    free(b.p);
}

/* ---- Prometheus --------------------------------------------------------------------- */

/* A small checker for the text format 0.0.4: every line is a comment, a
 * HELP/TYPE line, or "name{labels} value"; each family's HELP and TYPE come
 * before its samples, which are contiguous; names and label names are
 * valid; counters end in _total. Returns NULL or what is wrong. */
static const char *prom_check(const char *body)
{
    static char why[256];
    char seen[64][128];
    size_t nseen = 0;
    char cur[128] = "", cur_type[16] = "";
    const char *p = body;
    if (body[0] == '\0' || body[strlen(body) - 1] != '\n')
        return "body must end with a newline";
    while (*p) {
        const char *e = strchr(p, '\n');
        char line[2048];
        size_t n = (size_t)(e - p);
        if (n >= sizeof(line))
            return "line too long";
        memcpy(line, p, n);
        line[n] = '\0';
        p = e + 1;
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            if (sscanf(line + 7, "%127s", name) != 1)
                return "HELP/TYPE without a name";
            if (line[2] == 'H') {
                for (size_t i = 0; i < nseen; i++)
                    if (strcmp(seen[i], name) == 0) {
                        snprintf(why, sizeof(why), "family %s appears twice", name);
                        return why;
                    }
                snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
                snprintf(cur, sizeof(cur), "%s", name);
                cur_type[0] = '\0';
            } else {
                if (strcmp(name, cur) != 0)
                    return "TYPE not right after its HELP";
                sscanf(line + 7 + strlen(name), " %15s", cur_type);
                if (strcmp(cur_type, "counter") && strcmp(cur_type, "gauge") &&
                    strcmp(cur_type, "histogram"))
                    return "unknown TYPE";
                size_t l = strlen(name);
                if (strcmp(cur_type, "counter") == 0 && (l < 6 || strcmp(name + l - 6, "_total")))
                    return "a counter's name must end in _total";
            }
            continue;
        }
        if (line[0] == '#')
            continue;
        size_t k = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
        if (k == 0 || (line[0] >= '0' && line[0] <= '9'))
            return "bad metric name";
        memcpy(name, line, k);
        name[k] = '\0';
        if (strcmp(cur_type, "histogram") == 0) {
            /* A histogram's samples are its name plus one of these. */
            static const char *const sfx[] = {"_bucket", "_sum", "_count"};
            bool suffixed = false;
            for (size_t i = 0; i < 3 && !suffixed; i++) {
                size_t l = strlen(name), m = strlen(sfx[i]);
                if (l > m && strcmp(name + l - m, sfx[i]) == 0 &&
                    strncmp(name, cur, l - m) == 0 && cur[l - m] == '\0') {
                    name[l - m] = '\0';
                    suffixed = true;
                }
            }
            if (!suffixed)
                return "a histogram sample without _bucket, _sum or _count";
        }
        if (strcmp(name, cur) != 0 || cur_type[0] == '\0') {
            snprintf(why, sizeof(why), "sample %s outside its family (%s)", name, cur);
            return why;
        }
        const char *q = line + k;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                size_t ln = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
                if (ln == 0 || q[ln] != '=' || q[ln + 1] != '"')
                    return "bad label";
                q += ln + 2;
                while (*q && *q != '"') {
                    if (*q == '\\') {
                        if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
                            return "bad escape in a label value";
                        q++;
                    }
                    q++;
                }
                if (*q != '"')
                    return "unterminated label value";
                q++;
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    return "bad label separator";
            }
            q++;
        }
        if (*q != ' ')
            return "no space before the value";
        char *end;
        const char *v = q + 1;
        if (strcmp(v, "NaN") && strcmp(v, "+Inf") && strcmp(v, "-Inf")) {
            strtod(v, &end);
            if (end == v || *end != '\0')
                return "bad value";
        }
    }
    return NULL;
}

static struct sr_svc *svc(const char *id, const char *name, const char *stack, const char *port)
{
    json_t *labels = json_pack("{s:s}", "autoscaler.enabled", "true");
    if (port)
        json_object_set_new(labels, "autoscaler.metrics.port", json_string(port));
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:{s:i, s:i}, s:{s:s, s:i, s:i, s:i, s:i}}",
                            "id", id, "name", name, "labels", labels, "stack",
                            stack ? json_string(stack) : json_null(), "replicas", "desired", 3,
                            "running", 2, "autoscaler", "metric", "cpu", "cpu_threshold", 70,
                            "memory_threshold", 80, "min_replicas", 1, "max_replicas", 5);
    return sr_svc_new(doc);
}

static void test_prom_pieces(void)
{
    struct sr_buf b = {0};
    sr_api__prom_label_value(&b, "a\\b\"c\nd");
    is_str(b.p, "a\\\\b\\\"c\\nd", "prom: label value escapes \\ \" and newline");
    free(b.p);
    static const struct {
        double v;
        const char *want;
    } vals[] = {{0, "0"},          {42, "42"},         {-3, "-3"},     {0.985, "0.985"},
                {1e300, "1e+300"},             {0.1 + 0.2, "0.30000000000000004"},
                {1795508370.71, "1795508370.71"}};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        memset(&b, 0, sizeof(b));
        sr_api__prom_value(&b, vals[i].v);
        char name[64];
        snprintf(name, sizeof(name), "prom: value %s", vals[i].want);
        ok(strtod(b.p, NULL) == vals[i].v && strcmp(b.p, vals[i].want) == 0, name);
        free(b.p);
    }
    memset(&b, 0, sizeof(b));
    sr_api__prom_value(&b, NAN);
    sr_api__prom_value(&b, INFINITY);
    sr_api__prom_value(&b, -INFINITY);
    is_str(b.p, "NaN+Inf-Inf", "prom: NaN, +Inf, -Inf spellings");
    free(b.p);
    memset(&b, 0, sizeof(b));
    sr_api__prom_label_name(&b, "com.docker.stack-namespace9_x");
    is_str(b.p, "com_docker_stack_namespace9_x", "prom: label names made of [a-zA-Z0-9_]");
    free(b.p);
    is_str(prom_check("# HELP x_total h\n# TYPE x_total counter\nx_total 1\nx_total{a=\"1\"} 2\n"),
           NULL, "checker: accepts a valid body");
    ok(prom_check("# HELP x h\n# TYPE x counter\nx 1\n") != NULL, "checker: counter without _total");
    is_str(prom_check("# HELP h_seconds h\n# TYPE h_seconds histogram\n"
                      "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                      "h_seconds_sum 3\nh_seconds_count 2\n"),
           NULL, "checker: a histogram");
    ok(prom_check("# HELP h_seconds h\n# TYPE h_seconds histogram\nh_seconds 1\n") != NULL,
       "checker: a histogram sample needs a suffix");
    ok(prom_check("# HELP h h\n# TYPE h gauge\nh_count 1\n") != NULL,
       "checker: suffixes only for histograms");
    ok(prom_check("# HELP x h\n# TYPE x gauge\ny 1\n") != NULL, "checker: sample outside its family");
    ok(prom_check("# HELP x h\n# TYPE x gauge\nx{a=\"\\q\"} 1\n") != NULL, "checker: bad escape");
}

static void test_prom_bodies(void)
{
    struct sr_cache *cache = sr_cache_new();
    struct sr_svc *svcs[] = {svc("id-web", "web", "shop", "9100"),
                             svc("id-db", "db", NULL, NULL),
                             svc("id-bad", "bad\"name", NULL, "99999")};
    sr_cache_replace(cache, svcs, 3, NULL);
    sr_cache_set_metrics(cache, "id-web",
                         json_pack("{s:s, s:f, s:i, s:{s:f, s:f, s:f, s:f, s:i}}", "service",
                                   "web", "sample_time", 1795508370.71, "containers_sampled", 2,
                                   "aggregate", "cpu_percent_mean", 98.5, "cpu_percent_max",
                                   99.85, "memory_percent_mean", 12.5, "memory_percent_max",
                                   25.0, "memory_bytes_total", 663552));
    sr_cache_set_metrics(cache, "id-db",
                         json_pack("{s:s, s:n, s:i, s:{s:n, s:n, s:n, s:n, s:i}}", "service",
                                   "db", "sample_time", "containers_sampled", 0, "aggregate",
                                   "cpu_percent_mean", "cpu_percent_max", "memory_percent_mean",
                                   "memory_percent_max", "memory_bytes_total", 0));
    struct sr_cache_stats st;
    sr_cache_get_stats(cache, &st);
    struct sr_snapshot *snap = sr_cache_acquire(cache);
    struct sr_api__stats *stats = calloc(1, sizeof(*stats));
    sr_api__count(stats, SR_API_EP_SERVICES, sr_api__method_index("GET"), 200);
    sr_api__count(stats, SR_API_EP_SERVICES, SR_API_METHOD_GET, 200);
    sr_api__count(stats, SR_API_EP_OTHER, sr_api__method_index("BREW"), 418);
    json_t *pub = json_pack("{s:b, s:s, s:b, s:i, s:i, s:i, s:i}", "enabled", 1, "status",
                            "connected", "connected", 1, "published", 12, "confirmed", 11,
                            "queued", 1, "dropped", 3);
    struct sr_api__prom_input in = {.cache = &st, .snap = snap, .stats = stats, .publisher = pub};
    size_t len;
    char *body = sr_api__prom_metrics(&in, &len);
    is_int(len, strlen(body), "metrics: length");
    const char *why = prom_check(body);
    if (!ok(why == NULL, "metrics: valid text format 0.0.4"))
        printf("#   %s\n", why);
#define HAS(line) ok(strstr(body, line "\n") != NULL, "metrics: " line)
    HAS("swarm_registry_http_requests_total{endpoint=\"/services\",method=\"GET\",code=\"200\"} 2");
    HAS("swarm_registry_http_requests_total{endpoint=\"other\",method=\"other\",code=\"other\"} 1");
    HAS("swarm_registry_cache_services 3");
    HAS("swarm_registry_cache_changes_total{kind=\"added\"} 3");
    HAS("swarm_registry_cache_changes_total{kind=\"metrics\"} 2");
    HAS("swarm_registry_publisher_published_total 12");
    HAS("swarm_registry_publisher_confirmed_total 11");
    HAS("swarm_registry_publisher_dropped_total 3");
    HAS("swarm_registry_publisher_up 1");
    HAS("swarm_registry_watchers{kind=\"sse\"} 0");
    HAS("swarm_registry_service_cpu_usage_ratio{service=\"web\",stack=\"shop\"} 0.985");
    const char *mx = strstr(body, "swarm_registry_service_cpu_usage_max_ratio{service=\"web\",stack=\"shop\"} ");
    ok(mx && strtod(strchr(mx, ' ') + 1, NULL) == 99.85 / 100, "metrics: cpu max ratio = 99.85 / 100");
    HAS("swarm_registry_service_memory_usage_ratio{service=\"web\",stack=\"shop\"} 0.125");
    HAS("swarm_registry_service_memory_usage_bytes{service=\"web\",stack=\"shop\"} 663552");
    HAS("swarm_registry_service_memory_usage_bytes{service=\"db\",stack=\"\"} 0");
    HAS("swarm_registry_service_replicas_desired{service=\"bad\\\"name\",stack=\"\"} 3");
    HAS("swarm_registry_service_metrics_timestamp_seconds{service=\"web\",stack=\"shop\"} "
        "1795508370.71");
#undef HAS
    ok(strstr(body, "cpu_usage_ratio{service=\"db\"") == NULL,
       "metrics: a null mean is left out, not exported");
    ok(strstr(body, "# TYPE swarm_registry_service_cpu_usage_ratio gauge\n") != NULL,
       "metrics: gauges typed");
    free(body);

    body = sr_api__prom_sd(snap, &len);
    json_error_t jerr;
    json_t *sd = json_loads(body, 0, &jerr);
    ok(json_is_array(sd) && json_array_size(sd) == 1,
       "sd: one target group (no port, or a bad one: left out)");
    json_t *g = json_array_get(sd, 0);
    is_str(json_string_value(json_array_get(json_object_get(g, "targets"), 0)), "web:9100",
           "sd: target is <service name>:<port>");
    json_t *l = json_object_get(g, "labels");
    is_str(json_string_value(json_object_get(l, "__meta_swarm_service_name")), "web",
           "sd: service name label");
    is_str(json_string_value(json_object_get(l, "__meta_swarm_stack")), "shop", "sd: stack label");
    is_str(json_string_value(json_object_get(l, "__meta_swarm_autoscaler_metric")), "cpu",
           "sd: autoscaler metric");
    is_str(json_string_value(json_object_get(l, "__meta_swarm_autoscaler_max_replicas")), "5",
           "sd: label values are strings");
    is_str(json_string_value(json_object_get(l, "__meta_swarm_service_label_autoscaler_metrics_port")),
           "9100", "sd: service labels, names sanitised");
    ok(json_object_get(l, "__metrics_path__") == NULL, "sd: no path label without the label");
    size_t nl = 0;
    const char *k;
    json_t *v;
    json_object_foreach(l, k, v) nl += json_is_string(v);
    is_int(nl, json_object_size(l), "sd: every label value is a string");
    json_decref(sd);
    free(body);

    free(stats);
    json_decref(pub);
    sr_snapshot_release(snap);
    sr_cache_free(cache);
}

/* ---- the router ------------------------------------------------------------------ */

static enum sr_api__route_result call(const struct sr_api__router *rt, const char *method,
                                      const char *target, const char *leid,
                                      struct sr_api__response *r, struct sr_api__park *park)
{
    struct sr_api__request rq = {.method = method, .target = target, .last_event_id = leid};
    return sr_api__route(rt, &rq, r, park);
}

static void test_router(void)
{
    struct sr_cache *cache = sr_cache_new();
    struct sr_svc *svcs[] = {svc("id-web", "web", NULL, "8080")};
    sr_cache_replace(cache, svcs, 1, NULL);
    uint64_t v = sr_cache_version(cache);
    struct sr_api__stats *stats = calloc(1, sizeof(*stats));
    struct sr_api__router rt = {.cache = cache, .started_mono = sr_mono(), .stats = stats};
    struct sr_api__response r;
    struct sr_api__park park;
    char t[128];

    ok(call(&rt, "GET", "/services", NULL, &r, &park) == SR_API_ROUTE_DONE && r.has_index &&
           r.index == v,
       "GET /services carries X-Registry-Index = the version");
    sr_api__response_clear(&r);

    snprintf(t, sizeof(t), "/services?index=%llu&wait=30s", (unsigned long long)v);
    ok(call(&rt, "GET", t, NULL, &r, &park) == SR_API_ROUTE_PARK &&
           park.kind == SR_API_PARK_WATCH && park.index == v && park.wait_ms == 30000 &&
           park.endpoint == SR_API_EP_SERVICES,
       "index = the version: parks (a long-poll of 30 s)");
    sr_api__park_clear(&park);
    snprintf(t, sizeof(t), "/services?index=%llu", (unsigned long long)v);
    ok(call(&rt, "GET", t, NULL, &r, &park) == SR_API_ROUTE_PARK &&
           park.wait_ms == SR_API_WAIT_DEFAULT_MS,
       "no wait: 5 min");
    sr_api__park_clear(&park);
    snprintf(t, sizeof(t), "/services?wait=1h&index=%llu", (unsigned long long)v);
    ok(call(&rt, "GET", t, NULL, &r, &park) == SR_API_ROUTE_PARK &&
           park.wait_ms == SR_API_WAIT_MAX_MS,
       "wait over 10 min: cut to 10 min");
    sr_api__park_clear(&park);
    snprintf(t, sizeof(t), "/services/web?index=%llu&wait=2", (unsigned long long)v);
    ok(call(&rt, "HEAD", t, NULL, &r, &park) == SR_API_ROUTE_PARK && park.head &&
           park.name && strcmp(park.name, "web") == 0 && park.wait_ms == 2000,
       "HEAD /services/web long-poll parks with its name");
    sr_api__park_clear(&park);
    snprintf(t, sizeof(t), "/services/web/metrics?index=%llu&wait=2", (unsigned long long)v);
    ok(call(&rt, "GET", t, NULL, &r, &park) == SR_API_ROUTE_PARK &&
           park.endpoint == SR_API_EP_SERVICE_METRICS,
       "GET /services/web/metrics long-poll parks");
    sr_api__park_clear(&park);
    ok(call(&rt, "POST", t, NULL, &r, &park) != SR_API_ROUTE_PARK || park.kind != SR_API_PARK_WATCH,
       "POST .../metrics never long-polls");
    sr_api__park_clear(&park);
    sr_api__response_clear(&r);

    ok(call(&rt, "GET", "/services?index=1&wait=5s", NULL, &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 200 && r.index == v,
       "an old index answers at once");
    sr_api__response_clear(&r);
    snprintf(t, sizeof(t), "/services?index=%llu", (unsigned long long)v + 100);
    ok(call(&rt, "GET", t, NULL, &r, &park) == SR_API_ROUTE_DONE && r.status == 200,
       "an index from the future (restarted registry) answers at once");
    sr_api__response_clear(&r);
    ok(call(&rt, "GET", "/services?index=0", NULL, &r, &park) == SR_API_ROUTE_DONE,
       "index=0 never waits");
    sr_api__response_clear(&r);
    ok(call(&rt, "GET", "/services?index=x", NULL, &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 400,
       "a bad index: 400");
    sr_api__response_clear(&r);
    snprintf(t, sizeof(t), "/services?index=%llu&wait=soon", (unsigned long long)v);
    ok(call(&rt, "GET", t, NULL, &r, &park) == SR_API_ROUTE_DONE && r.status == 400,
       "a bad wait: 400");
    sr_api__response_clear(&r);
    struct sr_api__request nw = {.method = "GET", .target = t, .no_wait = true};
    snprintf(t, sizeof(t), "/services?index=%llu&wait=5s", (unsigned long long)v);
    ok(sr_api__route(&rt, &nw, &r, &park) == SR_API_ROUTE_DONE && r.status == 200,
       "no_wait (a woken long-poll) answers");
    sr_api__response_clear(&r);

    /* The parked answer: the route again, without waiting. */
    snprintf(t, sizeof(t), "/services/web?index=%llu&wait=5s", (unsigned long long)v);
    call(&rt, "GET", t, NULL, &r, &park);
    struct sr_svc *upd = svc("id-web", "web", "shop", "8080");
    sr_cache_upsert(cache, upd);
    sr_api__park_response(&rt, &park, 0, &r);
    ok(r.status == 200 && r.index == v + 1 && memmem(r.body, r.len, "\"shop\"", 6) != NULL,
       "woken: the current body and index");
    sr_api__park_clear(&park);
    sr_api__response_clear(&r);
    v++;

    /* GET /events/stream */
    ok(call(&rt, "GET", "/events/stream", NULL, &r, &park) == SR_API_ROUTE_PARK &&
           park.kind == SR_API_PARK_STREAM && !park.has_since && park.types == NULL,
       "/events/stream: a stream, live only");
    sr_api__park_clear(&park);
    ok(call(&rt, "GET", "/events/stream?since=3&types=service.*&types=metrics.%23", NULL, &r,
            &park) == SR_API_ROUTE_PARK &&
           park.has_since && park.since == 3 && park.types &&
           strcmp(park.types, "service.*,metrics.#") == 0,
       "/events/stream: since and types (repeated, decoded)");
    sr_api__park_clear(&park);
    ok(call(&rt, "GET", "/events/stream?since=3", " 9 ", &r, &park) == SR_API_ROUTE_PARK &&
           park.since == 9,
       "/events/stream: Last-Event-ID wins over since");
    sr_api__park_clear(&park);
    ok(call(&rt, "GET", "/events/stream", "abc", &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 400,
       "/events/stream: a bad Last-Event-ID: 400");
    sr_api__response_clear(&r);
    ok(call(&rt, "GET", "/events/stream?types=a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z"
                        ".1.2.3.4.5.6.7",
            NULL, &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 400,
       "/events/stream: a pattern over 32 words: 400");
    sr_api__response_clear(&r);
    ok(call(&rt, "HEAD", "/events/stream", NULL, &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 200 && strcmp(r.content_type, "text/event-stream") == 0 && r.len == 0,
       "HEAD /events/stream: the head only");
    sr_api__response_clear(&r);
    ok(call(&rt, "POST", "/events/stream", NULL, &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 405,
       "POST /events/stream: 405");
    sr_api__response_clear(&r);
    ok(call(&rt, "GET", "/events", NULL, &r, &park) == SR_API_ROUTE_DONE && r.status == 200 &&
           strstr(r.body, "\"events\"") != NULL,
       "GET /events stays the event list");
    sr_api__response_clear(&r);

    ok(call(&rt, "GET", "/metrics", NULL, &r, &park) == SR_API_ROUTE_DONE && r.status == 200 &&
           strcmp(r.content_type, "text/plain; version=0.0.4; charset=utf-8") == 0,
       "GET /metrics: text format 0.0.4");
    char *copy = strndup(r.body, r.len);
    is_str(prom_check(copy), NULL, "GET /metrics: passes the checker");
    ok(strstr(copy, "endpoint=\"/services\",method=\"GET\",code=\"200\"") != NULL,
       "GET /metrics: the router counted the requests");
    ok(strstr(copy, "endpoint=\"/events/stream\",method=\"GET\",code=\"200\"") != NULL,
       "GET /metrics: streams counted when they start");
    ok(strstr(copy, "endpoint=\"/services\",method=\"GET\",code=\"400\"} 2") != NULL,
       "GET /metrics: 400s counted");
    free(copy);
    sr_api__response_clear(&r);
    ok(call(&rt, "GET", "/sd/prometheus", NULL, &r, &park) == SR_API_ROUTE_DONE &&
           r.status == 200 && memmem(r.body, r.len, "\"web:8080\"", 10) != NULL && r.etag[0],
       "GET /sd/prometheus: targets, with an ETag");
    sr_api__response_clear(&r);

    free(stats);
    sr_cache_free(cache);
}

int main(void)
{
    json_object_seed(0);
    test_wait();
    test_query();
    test_topics();
    test_sse_frame();
    test_prom_pieces();
    test_prom_bodies();
    test_router();
    return tap_done();
}
