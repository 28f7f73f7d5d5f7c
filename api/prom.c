/* prom: Prometheus. The request counters, GET /metrics in the text
 * exposition format 0.0.4, and GET /sd/prometheus for Prometheus' HTTP
 * service discovery. The body builders are pure functions of their inputs
 * (tests/unit/test_watch.c checks them line by line).
 *
 * Naming follows https://prometheus.io/docs/practices/naming/: one
 * "swarm_registry_" prefix, counters end in _total, base units (seconds,
 * bytes, ratios rather than percents: cpu 1.0 = one full core, as 100 % is
 * in docker stats), every family with # HELP and # TYPE, and its samples
 * together. A series with no value (a mean over no valid sample) is left
 * out rather than exported as NaN.
 *
 * /sd/prometheus: every cached service with an `autoscaler.metrics.port`
 * label (1-65535) is a target "<service name>:<port>" -- the name resolves
 * to the service's virtual IP inside its overlay networks, so Prometheus
 * must run on one of them -- with __metrics_path__ from
 * `autoscaler.metrics.path` (must start with '/') and __scheme__ from
 * `autoscaler.metrics.scheme` (http or https) when set, and labels
 * __meta_swarm_service_name, _service_id, _stack, _autoscaler_metric,
 * _autoscaler_min_replicas, _autoscaler_max_replicas,
 * _autoscaler_cpu_threshold, _autoscaler_memory_threshold, and
 * __meta_swarm_service_label_<name> for each service label (name made of
 * [a-zA-Z0-9_]). A VIP target scrapes one replica per scrape. */
#include "api/api_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/util.h"

/* The statuses the router and transports answer; anything else is "other". */
static const int codes[SR_API_CODE_COUNT] = {200, 304, 400, 404, 405, 408, 411, 412,
                                             413, 414, 431, 500, 501, 503, 505, 0};
static const char *const methods[SR_API_METHOD_COUNT] = {"GET", "HEAD", "POST", "other"};
static const char *const endpoints[SR_API_EP_COUNT] = {
    [SR_API_EP_OTHER] = "other",
    [SR_API_EP_HEALTH] = "/health",
    [SR_API_EP_SERVICES] = "/services",
    [SR_API_EP_SERVICE] = "/services/{name}",
    [SR_API_EP_SERVICE_METRICS] = "/services/{name}/metrics",
    [SR_API_EP_CACHE_STATS] = "/cache/stats",
    [SR_API_EP_CACHE_REFRESH] = "/cache/refresh",
    [SR_API_EP_CACHE_CLEAR] = "/cache/clear",
    [SR_API_EP_EVENTS] = "/events",
    [SR_API_EP_EVENTS_STREAM] = "/events/stream",
    [SR_API_EP_METRICS] = "/metrics",
    [SR_API_EP_SD_PROMETHEUS] = "/sd/prometheus",
};

int sr_api__method_index(const char *method)
{
    for (int i = 0; i < SR_API_METHOD_COUNT - 1; i++)
        if (strcmp(method, methods[i]) == 0)
            return i;
    return SR_API_METHOD_COUNT - 1;
}

void sr_api__count(struct sr_api__stats *st, int endpoint, int method, int status)
{
    if (st == NULL)
        return;
    int c = 0; /* codes[] starts with 200, nearly every answer */
    while (c < SR_API_CODE_COUNT - 1 && codes[c] != status)
        c++;
    if (endpoint < 0 || endpoint >= SR_API_EP_COUNT)
        endpoint = SR_API_EP_OTHER;
    if (method < 0 || method >= SR_API_METHOD_COUNT)
        method = SR_API_METHOD_OTHER;
    atomic_fetch_add_explicit(&st->requests[endpoint][method][c], 1, memory_order_relaxed);
}

/* ---- text format pieces --------------------------------------------------------- */

void sr_api__prom_label_value(struct sr_buf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            sr_buf_puts(b, "\\\\");
        else if (*p == '"')
            sr_buf_puts(b, "\\\"");
        else if (*p == '\n')
            sr_buf_puts(b, "\\n");
        else
            sr_buf_put(b, p, 1);
    }
}

void sr_api__prom_label_name(struct sr_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
        sr_buf_put(b, ok ? p : "_", 1);
    }
}

void sr_api__prom_value(struct sr_buf *b, double v)
{
    char tmp[40];
    if (isnan(v))
        snprintf(tmp, sizeof(tmp), "NaN");
    else if (isinf(v))
        snprintf(tmp, sizeof(tmp), v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        snprintf(tmp, sizeof(tmp), "%.0f", v);
    else {
        /* The shortest that reads back the same, as Go's 'g', -1 does. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
    }
    sr_buf_puts(b, tmp);
}

static void family(struct sr_buf *b, const char *name, const char *type, const char *help)
{
    /* HELP text escapes \ and newline; ours are literals without either. */
    sr_buf_puts(b, "# HELP ");
    sr_buf_puts(b, name);
    sr_buf_puts(b, " ");
    sr_buf_puts(b, help);
    sr_buf_puts(b, "\n# TYPE ");
    sr_buf_puts(b, name);
    sr_buf_puts(b, " ");
    sr_buf_puts(b, type);
    sr_buf_puts(b, "\n");
}

/* name{k1="v1",...} value\n; labels is NULL-terminated pairs. */
static void sample(struct sr_buf *b, const char *name, const char *const *labels, double v)
{
    sr_buf_puts(b, name);
    if (labels != NULL && labels[0] != NULL) {
        sr_buf_puts(b, "{");
        for (size_t i = 0; labels[i] != NULL; i += 2) {
            if (i)
                sr_buf_puts(b, ",");
            sr_buf_puts(b, labels[i]);
            sr_buf_puts(b, "=\"");
            sr_api__prom_label_value(b, labels[i + 1]);
            sr_buf_puts(b, "\"");
        }
        sr_buf_puts(b, "}");
    }
    sr_buf_puts(b, " ");
    sr_api__prom_value(b, v);
    sr_buf_puts(b, "\n");
}

static void single(struct sr_buf *b, const char *name, const char *type, const char *help,
                   double v)
{
    family(b, name, type, help);
    sample(b, name, NULL, v);
}

static double num(const json_t *v, double def)
{
    return json_is_number(v) ? json_number_value(v) : def;
}

static uint64_t ld(const atomic_uint_least64_t *a)
{
    return atomic_load_explicit((atomic_uint_least64_t *)a, memory_order_relaxed);
}

/* ---- GET /metrics -------------------------------------------------------------------- */

static void requests(struct sr_buf *b, const struct sr_api__stats *st)
{
    static const char name[] = "swarm_registry_http_requests_total";
    family(b, name, "counter",
           "HTTP requests answered, by endpoint (route template), method and status code.");
    if (st == NULL)
        return;
    for (int e = 0; e < SR_API_EP_COUNT; e++)
        for (int m = 0; m < SR_API_METHOD_COUNT; m++)
            for (int c = 0; c < SR_API_CODE_COUNT; c++) {
                uint64_t v = ld(&st->requests[e][m][c]);
                if (v == 0)
                    continue;
                char code[16];
                if (codes[c])
                    snprintf(code, sizeof(code), "%d", codes[c]);
                else
                    snprintf(code, sizeof(code), "other");
                const char *labels[] = {"endpoint", endpoints[e], "method", methods[m],
                                        "code",     code,         NULL};
                sample(b, name, labels, (double)v);
            }
}

/* Docker API calls by endpoint: every endpoint from the start (a series
 * that appears late hides its first increase from rate()), and durations
 * for all but the event stream, whose length is not a latency. */
static void per_endpoint(struct sr_buf *b, const char *name, const char *help,
                         const uint64_t v[SR_CALL_COUNT])
{
    family(b, name, "counter", help);
    for (int k = 0; k < SR_CALL_COUNT; k++) {
        const char *labels[] = {"endpoint", sr_source_call_name(k), NULL};
        sample(b, name, labels, (double)v[k]);
    }
}

static void docker_calls(struct sr_buf *b, const struct sr_source_calls *c)
{
    static const char dur[] = "swarm_registry_docker_api_request_duration_seconds";
    per_endpoint(b, "swarm_registry_docker_api_requests_total",
                 "Docker Engine API calls made (finished transfers), by endpoint.", c->calls);
    per_endpoint(b, "swarm_registry_docker_api_errors_total",
                 "Docker Engine API calls that failed (transport error or HTTP status >= 400), "
                 "by endpoint.",
                 c->errors);
    family(b, dur, "histogram",
           "How long finished Docker Engine API calls took, by endpoint (not the event stream).");
    char name[sizeof(dur) + 16];
    for (int k = 0; k < SR_CALL_COUNT; k++) {
        if (k == SR_CALL_EVENTS)
            continue;
        snprintf(name, sizeof(name), "%s_bucket", dur);
        for (int i = 0; i <= SR_CALL_BUCKETS; i++) {
            char le[32];
            if (i < SR_CALL_BUCKETS)
                snprintf(le, sizeof(le), "%g", sr_source_call_bounds[i]);
            else
                snprintf(le, sizeof(le), "+Inf");
            const char *labels[] = {"endpoint", sr_source_call_name(k), "le", le, NULL};
            sample(b, name, labels, (double)(i < SR_CALL_BUCKETS ? c->le[k][i] : c->timed[k]));
        }
        const char *labels[] = {"endpoint", sr_source_call_name(k), NULL};
        snprintf(name, sizeof(name), "%s_sum", dur);
        sample(b, name, labels, c->seconds[k]);
        snprintf(name, sizeof(name), "%s_count", dur);
        sample(b, name, labels, (double)c->timed[k]);
    }
}

/* Per-service families: one loop over the snapshot per family keeps each
 * family's samples together, as the format requires. */
enum svc_value {
    V_DESIRED,
    V_RUNNING,
    V_CPU_MEAN,
    V_CPU_MAX,
    V_MEM_MEAN,
    V_MEM_MAX,
    V_MEM_BYTES,
    V_SAMPLED,
    V_SAMPLE_TIME,
};

static bool svc_value(const struct sr_snapshot *snap, const struct sr_svc *svc, enum svc_value k,
                      double *out)
{
    const json_t *doc = sr_svc_doc(svc);
    const struct sr_svc *m = sr_snapshot_metrics(snap, sr_svc_name(svc));
    const json_t *md = m ? sr_svc_doc(m) : NULL;
    const json_t *agg = md ? json_object_get(md, "aggregate") : NULL;
    const json_t *v = NULL;
    double scale = 1;
    switch (k) {
    case V_DESIRED:
        v = json_object_get(json_object_get(doc, "replicas"), "desired");
        break;
    case V_RUNNING:
        v = json_object_get(json_object_get(doc, "replicas"), "running");
        break;
    case V_CPU_MEAN:
        v = json_object_get(agg, "cpu_percent_mean");
        scale = 100;
        break;
    case V_CPU_MAX:
        v = json_object_get(agg, "cpu_percent_max");
        scale = 100;
        break;
    case V_MEM_MEAN:
        v = json_object_get(agg, "memory_percent_mean");
        scale = 100;
        break;
    case V_MEM_MAX:
        v = json_object_get(agg, "memory_percent_max");
        scale = 100;
        break;
    case V_MEM_BYTES:
        v = json_object_get(agg, "memory_bytes_total");
        break;
    case V_SAMPLED:
        v = md ? json_object_get(md, "containers_sampled") : NULL;
        break;
    case V_SAMPLE_TIME:
        v = md ? json_object_get(md, "sample_time") : NULL;
        break;
    }
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v) / scale; /* percent -> ratio: divide, exact for two decimals */
    return true;
}

static void per_service(struct sr_buf *b, const struct sr_snapshot *snap, const char *name,
                        const char *type, const char *help, enum svc_value k)
{
    family(b, name, type, help);
    for (size_t i = 0; i < sr_snapshot_count(snap); i++) {
        const struct sr_svc *svc = sr_snapshot_at(snap, i);
        double v;
        if (!svc_value(snap, svc, k, &v))
            continue;
        const json_t *stack = json_object_get(sr_svc_doc(svc), "stack");
        const char *labels[] = {"service", sr_svc_name(svc), "stack",
                                json_is_string(stack) ? json_string_value(stack) : "", NULL};
        sample(b, name, labels, v);
    }
}

char *sr_api__prom_metrics(const struct sr_api__prom_input *in, size_t *len)
{
    struct sr_buf b = {0};
    const struct sr_cache_stats *cs = in->cache;
    const struct sr_api__stats *st = in->stats;
    const char *const build[] = {"version", SR_VERSION, NULL};

    family(&b, "swarm_registry_build_info", "gauge", "Always 1; the version as a label.");
    sample(&b, "swarm_registry_build_info", build, 1);
    single(&b, "swarm_registry_start_time_seconds", "gauge",
           "When the registry started, in seconds since the Unix epoch.", st ? st->started : 0);
    requests(&b, st);

    /* Docker */
    single(&b, "swarm_registry_docker_up", "gauge",
           "1 when Docker answers and is an active swarm manager, else 0.",
           cs->source.state == SR_SOURCE_CONNECTED);
    single(&b, "swarm_registry_docker_events_stream_up", "gauge",
           "1 while the Docker events stream is connected, else 0.",
           cs->source.events_connected);
    docker_calls(&b, &cs->calls);
    single(&b, "swarm_registry_docker_events_received_total", "counter",
           "Docker events received on the events stream.", (double)cs->source.events_received);
    single(&b, "swarm_registry_docker_last_event_timestamp_seconds", "gauge",
           "When the last Docker event was seen (0 if none), seconds since the epoch.",
           cs->source.last_event_time);

    /* Cache */
    single(&b, "swarm_registry_cache_services", "gauge", "Services in the cache.",
           (double)cs->services);
    single(&b, "swarm_registry_cache_metrics_entries", "gauge",
           "Cached services that have a metrics entry.", (double)cs->metrics);
    single(&b, "swarm_registry_cache_revision", "gauge",
           "The cache version: the revision of the last change (X-Registry-Index).",
           (double)cs->version);
    family(&b, "swarm_registry_cache_changes_total", "counter",
           "Changes to the cache, by kind (each is one revision and one event).");
    const char *const k_add[] = {"kind", "added", NULL}, *const k_upd[] = {"kind", "updated", NULL},
                      *const k_rem[] = {"kind", "removed", NULL},
                      *const k_met[] = {"kind", "metrics", NULL};
    sample(&b, "swarm_registry_cache_changes_total", k_add, (double)cs->added);
    sample(&b, "swarm_registry_cache_changes_total", k_upd, (double)cs->updated);
    sample(&b, "swarm_registry_cache_changes_total", k_rem, (double)cs->removed);
    sample(&b, "swarm_registry_cache_changes_total", k_met, (double)cs->metrics_updates);
    single(&b, "swarm_registry_cache_clears_total", "counter", "POST /cache/clear calls.",
           (double)cs->clears);
    single(&b, "swarm_registry_resyncs_total", "counter",
           "Full resyncs with Docker (periodic, forced, after a reconnect).",
           (double)cs->refreshes);
    single(&b, "swarm_registry_last_resync_timestamp_seconds", "gauge",
           "When the last full resync ended (0 if none), seconds since the epoch.",
           cs->last_refresh);
    single(&b, "swarm_registry_resync_changes_total", "counter",
           "Changes that only a full resync found (the events stream had missed them); "
           "the initial load is not counted.",
           st ? (double)ld(&st->resync_changes) : 0);

    /* Publisher (RabbitMQ) */
    const json_t *p = in->publisher;
    const json_t *en = json_object_get(p, "enabled");
    const char *pst = json_string_value(json_object_get(p, "status"));
    bool enabled = en != NULL ? json_is_true(en) : pst != NULL && strcmp(pst, "disabled") != 0;
    single(&b, "swarm_registry_publisher_enabled", "gauge",
           "1 when RABBITMQ_URL is set, else 0.", enabled);
    single(&b, "swarm_registry_publisher_up", "gauge",
           "1 while the publisher is connected to the broker, else 0.",
           json_is_true(json_object_get(p, "connected")));
    single(&b, "swarm_registry_publisher_published_total", "counter",
           "Messages published to the exchange (resends included).",
           num(json_object_get(p, "published"), 0));
    single(&b, "swarm_registry_publisher_confirmed_total", "counter",
           "Messages the broker confirmed.", num(json_object_get(p, "confirmed"), 0));
    single(&b, "swarm_registry_publisher_dropped_total", "counter",
           "Messages dropped from a full outbox.", num(json_object_get(p, "dropped"), 0));
    single(&b, "swarm_registry_publisher_refused_total", "counter",
           "Messages dropped as larger than the broker's max_message_size.",
           num(json_object_get(p, "refused"), 0));
    single(&b, "swarm_registry_publisher_blocked", "gauge",
           "1 while the broker blocks publishing (a resource alarm), else 0.",
           json_is_string(json_object_get(p, "blocked")));
    single(&b, "swarm_registry_publisher_queued_messages", "gauge",
           "Messages in the outbox, not yet confirmed.", num(json_object_get(p, "queued"), 0));

    /* Watchers */
    family(&b, "swarm_registry_watchers", "gauge",
           "Open watchers: parked long-polls and Server-Sent Events streams.");
    const char *const w_lp[] = {"kind", "longpoll", NULL}, *const w_sse[] = {"kind", "sse", NULL};
    sample(&b, "swarm_registry_watchers", w_lp,
           st ? (double)atomic_load_explicit((atomic_int_least64_t *)&st->longpolls,
                                             memory_order_relaxed)
              : 0);
    sample(&b, "swarm_registry_watchers", w_sse,
           st ? (double)atomic_load_explicit((atomic_int_least64_t *)&st->sse_clients,
                                             memory_order_relaxed)
              : 0);
    single(&b, "swarm_registry_longpoll_wakeups_total", "counter",
           "Long-polls answered because of a change (not their wait running out).",
           st ? (double)ld(&st->longpoll_wakeups) : 0);
    single(&b, "swarm_registry_sse_events_sent_total", "counter",
           "Events queued to Server-Sent Events clients.", st ? (double)ld(&st->sse_events) : 0);
    single(&b, "swarm_registry_sse_resyncs_total", "counter",
           "resync_required events sent (client behind the ring or its buffer).",
           st ? (double)ld(&st->sse_resyncs) : 0);
    single(&b, "swarm_registry_sse_overruns_total", "counter",
           "Times a Server-Sent Events client fell behind its buffer.",
           st ? (double)ld(&st->sse_behind) : 0);
    single(&b, "swarm_registry_api_spin_idle_seconds_total", "counter",
           "Wall time the API threads spent in spins' polls that read nothing (API_SPIN_USEC).",
           st ? (double)ld(&st->spin_idle_usec) / 1e6 : 0);

    /* Per service */
    const struct sr_snapshot *snap = in->snap;
    per_service(&b, snap, "swarm_registry_service_replicas_desired", "gauge",
                "Desired tasks of the service.", V_DESIRED);
    per_service(&b, snap, "swarm_registry_service_replicas_running", "gauge",
                "Tasks of the service in state running.", V_RUNNING);
    per_service(&b, snap, "swarm_registry_service_cpu_usage_ratio", "gauge",
                "Mean CPU use of the sampled containers (1 = one full core).", V_CPU_MEAN);
    per_service(&b, snap, "swarm_registry_service_cpu_usage_max_ratio", "gauge",
                "Highest CPU use among the sampled containers (1 = one full core).", V_CPU_MAX);
    per_service(&b, snap, "swarm_registry_service_memory_usage_ratio", "gauge",
                "Mean memory use of the sampled containers, as a fraction of their limit.",
                V_MEM_MEAN);
    per_service(&b, snap, "swarm_registry_service_memory_usage_max_ratio", "gauge",
                "Highest memory use among the sampled containers, as a fraction of the limit.",
                V_MEM_MAX);
    per_service(&b, snap, "swarm_registry_service_memory_usage_bytes", "gauge",
                "Memory used by the sampled containers together (page cache excluded).",
                V_MEM_BYTES);
    per_service(&b, snap, "swarm_registry_service_containers_sampled", "gauge",
                "Containers of the service that gave numbers in the last metrics round.",
                V_SAMPLED);
    per_service(&b, snap, "swarm_registry_service_metrics_timestamp_seconds", "gauge",
                "When the service's metrics were sampled, seconds since the epoch.",
                V_SAMPLE_TIME);
    if (b.p == NULL)
        sr_buf_puts(&b, "");
    *len = b.len;
    return b.p;
}

/* ---- GET /sd/prometheus ----------------------------------------------------------- */

static bool valid_port(const char *s, long *port)
{
    long long v;
    if (s == NULL || sr_parse_int(s, 1, 65535, &v) != 0)
        return false;
    *port = (long)v;
    return true;
}

static void set_str(json_t *labels, const char *key, const json_t *v)
{
    char buf[32];
    if (json_is_string(v))
        json_object_set_new(labels, key, json_stringn(json_string_value(v), json_string_length(v)));
    else if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        json_object_set_new(labels, key, json_string(buf));
    } else if (json_is_null(v) || v == NULL) {
        json_object_set_new(labels, key, json_string(""));
    }
}

char *sr_api__prom_sd(const struct sr_snapshot *snap, size_t *len)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < sr_snapshot_count(snap); i++) {
        const struct sr_svc *svc = sr_snapshot_at(snap, i);
        const json_t *doc = sr_svc_doc(svc);
        const json_t *lbl = json_object_get(doc, "labels");
        long port;
        if (!valid_port(json_string_value(json_object_get(lbl, "autoscaler.metrics.port")),
                        &port))
            continue;
        char target[512];
        snprintf(target, sizeof(target), "%s:%ld", sr_svc_name(svc), port);
        json_t *labels = json_object();
        json_object_set_new(labels, "__meta_swarm_service_name", json_string(sr_svc_name(svc)));
        json_object_set_new(labels, "__meta_swarm_service_id", json_string(sr_svc_id(svc)));
        set_str(labels, "__meta_swarm_stack", json_object_get(doc, "stack"));
        const json_t *as = json_object_get(doc, "autoscaler");
        set_str(labels, "__meta_swarm_autoscaler_metric", json_object_get(as, "metric"));
        set_str(labels, "__meta_swarm_autoscaler_min_replicas",
                json_object_get(as, "min_replicas"));
        set_str(labels, "__meta_swarm_autoscaler_max_replicas",
                json_object_get(as, "max_replicas"));
        set_str(labels, "__meta_swarm_autoscaler_cpu_threshold",
                json_object_get(as, "cpu_threshold"));
        set_str(labels, "__meta_swarm_autoscaler_memory_threshold",
                json_object_get(as, "memory_threshold"));
        const char *key;
        const json_t *val;
        /* Read-only iteration of a shared document. */
        json_object_foreach((json_t *)lbl, key, val)
        {
            if (!json_is_string(val))
                continue;
            struct sr_buf n = {0};
            sr_buf_puts(&n, "__meta_swarm_service_label_");
            sr_api__prom_label_name(&n, key);
            json_object_set_new(labels, n.p,
                                json_stringn(json_string_value(val), json_string_length(val)));
            free(n.p);
        }
        const char *path = json_string_value(json_object_get(lbl, "autoscaler.metrics.path"));
        if (path != NULL && path[0] == '/')
            json_object_set_new(labels, "__metrics_path__", json_string(path));
        const char *scheme =
            json_string_value(json_object_get(lbl, "autoscaler.metrics.scheme"));
        if (scheme != NULL && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0))
            json_object_set_new(labels, "__scheme__", json_string(scheme));
        json_array_append_new(groups,
                              json_pack("{s:[s], s:o}", "targets", target, "labels", labels));
    }
    char *body = json_dumps(groups, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(groups);
    if (body == NULL)
        abort(); /* only on OOM */
    *len = strlen(body);
    return body;
}
