/* adapters/docker: lifecycle, the cross-thread queues (resyncs, metrics
 * requests) and the full sync, a chain of transfers on the docker thread:
 *   PING -> VERSION -> INFO   (only when not negotiated yet, or after a failure)
 *   -> STREAM                 (open /events first when it is down, events.c)
 *   -> LIST -> commit         (sr_cache_replace)
 * A sync ends in sync_end: it answers the callbacks it took, then arms
 * sync_timer for the next one (refresh period, retry backoff, or at once when
 * requests or events queued another one meanwhile). */
#include "adapters/docker/docker.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/docker/client.h"
#include "adapters/docker/docker_internal.h"
#include "adapters/docker/labels.h"
#include "adapters/docker/map.h"
#include "adapters/docker/sockwatch.h"
#include "cache/log.h"
#include "cache/util.h"

#define LOGGER "docker"

static void sync_start(struct sr_docker *d);
static void do_list(struct sr_docker *d);

/* ---- helpers -------------------------------------------------------------- */

static struct timeval tv_of(double sec)
{
    if (sec < 0)
        sec = 0;
    struct timeval tv = {.tv_sec = (time_t)sec,
                         .tv_usec = (suseconds_t)((sec - (double)(time_t)sec) * 1e6)};
    return tv;
}

double sr_docker__jitter(struct sr_docker *d, double base)
{
    /* +-20%: enough to spread registries that lost the same daemon. */
    double r = (double)rand_r(&d->seed) / (double)RAND_MAX;
    return base * (0.8 + 0.4 * r);
}

void sr_docker__error_text(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const json_t *m = json_object_get(o, "message");
    if (json_is_string(m)) {
        snprintf(out, outlen, "%s", json_string_value(m));
    } else {
        size_t n = len < 160 ? len : 160;
        while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
            n--;
        snprintf(out, outlen, "%.*s", (int)n, body);
    }
    json_decref(o);
}

void sr_docker__publish(struct sr_docker *d)
{
    sr_cache_set_source(d->cache, &d->status);
}

/* Records a state change; logs it once (state or reason changed). */
static void set_state(struct sr_docker *d, enum sr_source_state state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(struct sr_docker *d, enum sr_source_state state, const char *fmt, ...)
{
    char reason[sizeof(d->status.reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    bool changed = state != d->status.state || strcmp(reason, d->status.reason) != 0;
    d->status.state = state;
    memcpy(d->status.reason, reason, sizeof(reason));
    if (state != SR_SOURCE_CONNECTED) {
        /* A failed daemon may come back as another version. */
        d->status.api_version[0] = '\0';
    }
    sr_docker__publish(d);
    if (!changed)
        return;
    if (state == SR_SOURCE_CONNECTED)
        sr_log(SR_LOG_INFO, LOGGER, "connected to %s: Docker %s, API %s, active swarm manager",
               d->base_url, d->status.engine_version, d->status.api_version);
    else
        sr_log(SR_LOG_WARNING, LOGGER, "%s: %s (retrying with backoff)",
               state == SR_SOURCE_UNREACHABLE   ? "docker unreachable"
               : state == SR_SOURCE_NOT_MANAGER ? "not an active swarm manager"
                                                : "docker error",
               reason);
}

/* ---- the full sync ---------------------------------------------------------- */

static void answer(struct sr_docker__resync *list, int status)
{
    while (list != NULL) {
        struct sr_docker__resync *next = list->next;
        if (list->cb != NULL)
            list->cb(status, list->arg);
        free(list);
        list = next;
    }
}

/* Seconds until the next sync after a successful one. */
static double next_sync_delay(struct sr_docker *d)
{
    double delay = d->refresh_sec;
    if (d->stream != SR_DOCKER_STREAM_OPEN && d->stream_retry_at > 0) {
        double s = d->stream_retry_at - sr_mono();
        if (s < delay)
            delay = s;
    }
    return delay;
}

static void sync_end(struct sr_docker *d, int rc)
{
    struct sr_docker__resync *done = d->inflight;
    d->inflight = NULL;
    d->step = SR_DOCKER_STEP_IDLE;
    d->step_req = NULL;
    double delay;
    if (rc == 0) {
        d->backoff = 1;
        d->last_failure = SR_SOURCE_CONNECTED;
        delay = next_sync_delay(d);
        sr_docker__metrics_synced(d);
    } else {
        d->negotiated = false;
        delay = sr_docker__jitter(d, d->backoff);
        sr_log(SR_LOG_DEBUG, LOGGER, "sync failed; next attempt in %.1f s", delay);
        d->backoff =
            d->backoff * 2 > SR_DOCKER_BACKOFF_MAX ? SR_DOCKER_BACKOFF_MAX : d->backoff * 2;
    }
    sr_docker__events_list_done(d);
    if (d->waiting != NULL || d->sync_wanted)
        delay = 0;
    struct timeval tv = tv_of(delay);
    evtimer_add(d->sync_timer, &tv);
    answer(done, rc);
}

static void sync_fail(struct sr_docker *d, enum sr_source_state state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sync_fail(struct sr_docker *d, enum sr_source_state state, const char *fmt, ...)
{
    char reason[sizeof(d->status.reason)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    /* A different failure is progress (say the daemon answers again but its
     * manager is still starting): retry soon rather than at a backoff grown
     * while it was down. */
    if (state != d->last_failure)
        d->backoff = 1;
    d->last_failure = state;
    set_state(d, state, "%s", reason);
    sync_end(d, -1);
}

/* Transport failure or unexpected status of a handshake/list request. */
static bool check_answer(struct sr_docker *d, const struct sr_http_result *res, const char *what)
{
    if (!res->transport_ok) {
        sync_fail(d, res->status == 0 ? SR_SOURCE_UNREACHABLE : SR_SOURCE_ERROR, "%s: %s", what,
                  res->error);
        return false;
    }
    if (res->status != 200) {
        char msg[200];
        sr_docker__error_text(res->body, res->len, msg, sizeof(msg));
        /* Every swarm endpoint answers 503 on a node that is not an active
         * manager (NOTES §4); Docker's message says which case it is. */
        sync_fail(d, res->status == 503 ? SR_SOURCE_NOT_MANAGER : SR_SOURCE_ERROR,
                  "%s answered HTTP %ld: %s", what, res->status, msg);
        return false;
    }
    return true;
}

static bool start_step(struct sr_docker *d, enum sr_docker__step step, const char *path,
                       void (*cb)(const struct sr_http_result *, void *))
{
    d->step = step;
    d->step_req = sr_http_get(d->http, path, cb, d);
    if (d->step_req == NULL) {
        sync_fail(d, SR_SOURCE_ERROR, "could not start GET %s", path);
        return false;
    }
    return true;
}

/* "1.41" -> 41; -1 unless "1.<digits>". */
static int api_minor(const char *v)
{
    long long minor;
    if (strncmp(v, "1.", 2) != 0 || sr_parse_int(v + 2, 0, 999, &minor) != 0)
        return -1;
    return (int)minor;
}

/* The record of bad autoscaler.enabled values (struct sr_docker). */
static void free_bad_enabled(struct sr_docker *d)
{
    for (size_t i = 0; i < d->nbad_enabled; i++)
        free(d->bad_enabled[i]);
    free(d->bad_enabled);
}

/* A service left out because its autoscaler.enabled is neither true nor
 * false ("yes", "1"): say so once per service and value, as the labels'
 * other mistakes are said in config_errors. Records it in bad[]. */
static void warn_bad_enabled(struct sr_docker *d, const json_t *doc, char **bad, size_t *nbad)
{
    const json_t *errs = json_object_get(doc, "config_errors");
    size_t i;
    const json_t *e;
    json_array_foreach(errs, i, e) {
        const char *label = json_string_value(json_object_get(e, "label"));
        if (label == NULL || strcmp(label, "autoscaler.enabled") != 0)
            continue;
        const char *id = json_string_value(json_object_get(doc, "id"));
        const char *name = json_string_value(json_object_get(doc, "name"));
        char *value = json_dumps(json_object_get(e, "value"), JSON_ENCODE_ANY);
        size_t len = strlen(id ? id : "") + strlen(value ? value : "") + 2;
        char *key = sr_malloc(len);
        snprintf(key, len, "%s\n%s", id ? id : "", value ? value : "");
        bool known = false;
        for (size_t k = 0; k < d->nbad_enabled && !known; k++)
            known = strcmp(d->bad_enabled[k], key) == 0;
        if (!known)
            sr_log(SR_LOG_WARNING, LOGGER,
                   "service %s: autoscaler.enabled=%s is neither true nor false: not registered",
                   name ? name : "?", value ? value : "?");
        bad[(*nbad)++] = key;
        free(value);
        return;
    }
}

static void on_list(const struct sr_http_result *res, void *arg)
{
    struct sr_docker *d = arg;
    d->step_req = NULL;
    if (!check_answer(d, res, "GET /services"))
        return;
    json_error_t jerr;
    /* JSON_ALLOW_NUL here and on every Docker answer: a label value may
     * hold \u0000, which jansson refuses by default, and one such label
     * failed the whole list. Strings are read with their lengths. */
    json_t *arr = json_loadb(res->body, res->len, JSON_ALLOW_NUL, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        sync_fail(d, SR_SOURCE_ERROR, "GET /services: not a JSON array (%s)",
                  jerr.text[0] ? jerr.text : "wrong type");
        return;
    }
    size_t n = json_array_size(arr), kept = 0, skipped = 0;
    struct sr_svc **svcs = sr_calloc(n ? n : 1, sizeof(*svcs));
    char **bad = sr_calloc(n ? n : 1, sizeof(*bad));
    size_t nbad = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *doc = sr_docker_map_service(json_array_get(arr, i));
        /* The list filter only asks for the label to be present; labels.h
         * decides what "enabled" means, the same way for event refreshes. */
        if (doc == NULL ||
            !json_is_true(json_object_get(json_object_get(doc, "autoscaler"), "enabled"))) {
            skipped += doc == NULL;
            if (doc != NULL)
                warn_bad_enabled(d, doc, bad, &nbad);
            json_decref(doc);
            continue;
        }
        struct sr_svc *svc = sr_svc_new(doc);
        if (svc != NULL)
            svcs[kept++] = svc;
    }
    json_decref(arr);
    free_bad_enabled(d);
    d->bad_enabled = bad; /* what this refresh saw: a fixed service is forgotten */
    d->nbad_enabled = nbad;
    if (skipped > 0)
        sr_log(SR_LOG_WARNING, LOGGER,
               "GET /services: skipped %zu element(s) without ID or Spec.Name", skipped);
    struct sr_cache_diff diff = {0};
    size_t changes = sr_cache_replace(d->cache, svcs, kept, &diff);
    free(svcs);
    sr_log(changes ? SR_LOG_INFO : SR_LOG_DEBUG, LOGGER,
           "full refresh: %zu service(s), %zu added, %zu updated, %zu removed", kept, diff.added,
           diff.updated, diff.removed);
    set_state(d, SR_SOURCE_CONNECTED, "%s", "");
    sync_end(d, 0);
}

static void do_list(struct sr_docker *d)
{
    char *filters = sr_http_escape("{\"label\":{\"autoscaler.enabled\":true}}");
    char path[256];
    snprintf(path, sizeof(path), "/v%s/services?filters=%s&status=true", d->api, filters);
    free(filters);
    start_step(d, SR_DOCKER_STEP_LIST, path, on_list);
}

/* After the handshake: make sure /events is up before listing, so nothing
 * that happens between the list and the subscription is lost (NOTES §5). */
static void do_stream(struct sr_docker *d)
{
    if (d->stream == SR_DOCKER_STREAM_OPEN || sr_docker__events_start(d) != 0) {
        do_list(d);
        return;
    }
    d->step = SR_DOCKER_STEP_STREAM;
    struct timeval tv = tv_of(SR_DOCKER_STREAM_WAIT);
    evtimer_add(d->wait_timer, &tv);
}

void sr_docker__stream_settled(struct sr_docker *d)
{
    /* Called from inside curl callbacks too: continue from the loop. */
    if (d->step == SR_DOCKER_STEP_STREAM)
        event_active(d->wait_timer, EV_TIMEOUT, 0);
}

static void on_wait_timer(evutil_socket_t fd, short kind, void *arg)
{
    struct sr_docker *d = arg;
    (void)fd;
    (void)kind;
    evtimer_del(d->wait_timer);
    if (d->step == SR_DOCKER_STEP_STREAM)
        do_list(d);
}

static void on_info(const struct sr_http_result *res, void *arg)
{
    struct sr_docker *d = arg;
    d->step_req = NULL;
    if (!check_answer(d, res, "GET /info"))
        return;
    json_t *o = json_loadb(res->body, res->len, JSON_ALLOW_NUL, NULL);
    const json_t *swarm = json_object_get(o, "Swarm");
    const json_t *state = json_object_get(swarm, "LocalNodeState");
    const json_t *control = json_object_get(swarm, "ControlAvailable");
    const json_t *error = json_object_get(swarm, "Error");
    if (!json_is_object(o)) {
        json_decref(o);
        sync_fail(d, SR_SOURCE_ERROR, "GET /info: not a JSON object");
        return;
    }
    const char *st = json_is_string(state) ? json_string_value(state) : "";
    if (strcmp(st, "active") != 0 || !json_is_true(control)) {
        char why[256];
        snprintf(why, sizeof(why), "LocalNodeState=%s, ControlAvailable=%s%s%s",
                 st[0] ? st : "\"\"", json_is_true(control) ? "true" : "false",
                 json_is_string(error) && json_string_length(error) ? ", Error=" : "",
                 json_is_string(error) ? json_string_value(error) : "");
        json_decref(o);
        sync_fail(d, SR_SOURCE_NOT_MANAGER, "%s", why);
        return;
    }
    /* Tells this node's tasks from the others' in metrics rounds (NOTES §7). */
    const json_t *node = json_object_get(swarm, "NodeID");
    snprintf(d->node_id, sizeof(d->node_id), "%s",
             json_is_string(node) ? json_string_value(node) : "");
    json_decref(o);
    d->negotiated = true;
    do_stream(d);
}

static void on_version(const struct sr_http_result *res, void *arg)
{
    struct sr_docker *d = arg;
    d->step_req = NULL;
    if (!check_answer(d, res, "GET /version"))
        return;
    json_t *o = json_loadb(res->body, res->len, JSON_ALLOW_NUL, NULL);
    const json_t *v = json_object_get(o, "Version");
    snprintf(d->status.engine_version, sizeof(d->status.engine_version), "%s",
             json_is_string(v) ? json_string_value(v) : "unknown");
    json_decref(o);
    char path[64];
    snprintf(path, sizeof(path), "/v%s/info", d->api);
    start_step(d, SR_DOCKER_STEP_INFO, path, on_info);
}

/* Negotiation as the Go client does it (NOTES §2): the daemon's highest
 * version from the ping, capped at ours; no header means 1.24. */
static void on_ping(const struct sr_http_result *res, void *arg)
{
    struct sr_docker *d = arg;
    d->step_req = NULL;
    if (!check_answer(d, res, "GET /_ping"))
        return;
    const char *server = res->api_version[0] ? res->api_version : "1.24";
    int minor = api_minor(server);
    if (minor < 0) {
        sync_fail(d, SR_SOURCE_ERROR, "GET /_ping: unparsable Api-Version \"%s\"", server);
        return;
    }
    if (minor < SR_DOCKER_MIN_API_MINOR) {
        sync_fail(d, SR_SOURCE_ERROR,
                  "Docker API %s is too old: this registry needs 1.%d or newer (Docker 20.10+)",
                  server, SR_DOCKER_MIN_API_MINOR);
        return;
    }
    int ours = api_minor(SR_DOCKER_MAX_API);
    snprintf(d->api, sizeof(d->api), "1.%d", minor < ours ? minor : ours);
    snprintf(d->status.api_version, sizeof(d->status.api_version), "%s", d->api);
    char path[64];
    snprintf(path, sizeof(path), "/v%s/version", d->api);
    start_step(d, SR_DOCKER_STEP_VERSION, path, on_version);
}

static void sync_start(struct sr_docker *d)
{
    if (d->step != SR_DOCKER_STEP_IDLE)
        return;
    evtimer_del(d->sync_timer);
    d->inflight = d->waiting;
    d->waiting = NULL;
    d->sync_wanted = false;
    if (!d->negotiated)
        start_step(d, SR_DOCKER_STEP_PING, "/_ping", on_ping);
    else
        do_stream(d);
}

static void on_sync_timer(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    sync_start(arg);
}

void sr_docker__want_sync(struct sr_docker *d)
{
    d->sync_wanted = true;
    if (d->step == SR_DOCKER_STEP_IDLE) {
        struct timeval tv = {0, 0};
        evtimer_add(d->sync_timer, &tv);
    }
}

/* ---- thread and cross-thread queue --------------------------------------- */

static void on_wake(evutil_socket_t fd, short kind, void *arg)
{
    struct sr_docker *d = arg;
    (void)fd;
    (void)kind;
    pthread_mutex_lock(&d->mu);
    struct sr_docker__resync *q = d->queue;
    d->queue = NULL;
    bool stopping = d->stopping;
    /* When stopping, teardown answers what is left in mqueue. */
    struct sr_docker__collect_req *mq = stopping ? NULL : d->mqueue;
    if (!stopping)
        d->mqueue = NULL;
    pthread_mutex_unlock(&d->mu);
    /* The queue is newest first: prepend each to keep arrival order. */
    while (q != NULL) {
        struct sr_docker__resync *next = q->next;
        q->next = NULL;
        struct sr_docker__resync **tail = &d->waiting;
        while (*tail != NULL)
            tail = &(*tail)->next;
        *tail = q;
        q = next;
    }
    if (stopping) {
        event_base_loopbreak(d->base);
        return;
    }
    if (d->waiting != NULL)
        sync_start(d);
    /* mqueue is newest first too: reverse it into arrival order. */
    struct sr_docker__collect_req *in_order = NULL;
    while (mq != NULL) {
        struct sr_docker__collect_req *next = mq->next;
        mq->next = in_order;
        in_order = mq;
        mq = next;
    }
    if (in_order != NULL)
        sr_docker__metrics_requests(d, in_order);
}

static void on_socket_created(void *arg)
{
    struct sr_docker *d = arg;
    if (d->status.state == SR_SOURCE_CONNECTED || d->step != SR_DOCKER_STEP_IDLE)
        return;
    sr_log(SR_LOG_DEBUG, LOGGER, "%s (re)appeared: retrying now", d->ep.unix_path);
    /* dockerd creates the socket a moment before it serves on it. */
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    evtimer_add(d->sync_timer, &tv);
}

/* Every Docker API call, failure and duration, for /metrics. */
static void on_call_done(const char *path, bool error, double seconds, void *arg)
{
    struct sr_docker *d = arg;
    sr_cache_count_source_call(d->cache, sr_docker__call_kind(path), error, seconds);
}

static void *thread_main(void *arg)
{
    struct sr_docker *d = arg;
    if (d->ep.unix_path[0] != '\0')
        d->sockwatch = sr_sockwatch_new(d->base, d->ep.unix_path, on_socket_created, d);
    d->http = sr_http_new(d->base, d->ep.unix_path, d->ep.http_base);
    if (d->http != NULL)
        sr_http_set_counter(d->http, on_call_done, d);
    if (d->http == NULL) {
        sr_log(SR_LOG_CRITICAL, LOGGER, "could not create the curl multi handle");
    } else {
        struct timeval now = {0, 0};
        evtimer_add(d->sync_timer, &now);
        event_base_loop(d->base, EVLOOP_NO_EXIT_ON_EMPTY);
    }
    /* Stopping: abort every transfer, then fail whatever still waits. */
    sr_http_free(d->http);
    d->http = NULL;
    sr_sockwatch_free(d->sockwatch);
    d->sockwatch = NULL;
    d->step_req = NULL;
    d->stream_req = NULL;
    sr_docker__events_teardown(d);
    sr_docker__metrics_teardown(d);
    answer(d->inflight, -1);
    answer(d->waiting, -1);
    d->inflight = d->waiting = NULL;
    pthread_mutex_lock(&d->mu);
    struct sr_docker__resync *q = d->queue;
    d->queue = NULL;
    pthread_mutex_unlock(&d->mu);
    answer(q, -1);
    return NULL;
}

int sr_docker_request_resync(struct sr_docker *d, sr_docker_done_cb cb, void *arg)
{
    struct sr_docker__resync *r = sr_calloc(1, sizeof(*r));
    r->cb = cb;
    r->arg = arg;
    if (!sr_docker__queue_lock(d)) {
        free(r);
        return -1;
    }
    r->next = d->queue;
    d->queue = r;
    sr_docker__queue_wake_unlock(d);
    return 0;
}

bool sr_docker__queue_lock(struct sr_docker *d)
{
    pthread_mutex_lock(&d->mu);
    if (!d->stopping)
        return true;
    pthread_mutex_unlock(&d->mu);
    return false;
}

void sr_docker__queue_wake_unlock(struct sr_docker *d)
{
    if (d->base != NULL)
        event_active(d->wake_ev, EV_READ, 0);
    pthread_mutex_unlock(&d->mu);
}

/* ---- lifecycle -------------------------------------------------------------- */

struct sr_docker *sr_docker_new(const struct sr_docker_opts *opts, struct sr_cache *cache,
                                char *err, size_t errlen)
{
    struct sr_docker__endpoint ep;
    if (opts == NULL || cache == NULL) {
        snprintf(err, errlen, "missing options or cache");
        return NULL;
    }
    if (sr_docker__parse_url(opts->base_url, &ep, err, errlen) != 0)
        return NULL;
    if (opts->refresh_interval_sec < 1) {
        snprintf(err, errlen, "refresh_interval_sec must be >= 1");
        return NULL;
    }
    if (opts->metrics_refresh_interval_sec < 1) {
        snprintf(err, errlen, "metrics_refresh_interval_sec must be >= 1");
        return NULL;
    }
    struct sr_docker *d = sr_calloc(1, sizeof(*d));
    d->ep = ep;
    d->base_url = sr_strdup(opts->base_url);
    d->refresh_sec = opts->refresh_interval_sec;
    d->metrics_sec = opts->metrics_refresh_interval_sec;
    d->cache = cache;
    d->backoff = 1;
    d->stream_backoff = 1;
    d->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)d;
    d->status.state = SR_SOURCE_CONNECTING;
    d->last_failure = SR_SOURCE_CONNECTED;
    pthread_mutex_init(&d->mu, NULL);
    sr_linesplit_init(&d->split, SR_LINESPLIT_MAX);
    return d;
}

static void free_events(struct sr_docker *d)
{
    struct event **evs[] = {&d->wake_ev,    &d->sync_timer,   &d->wait_timer,   &d->work_ev,
                            &d->node_timer, &d->settle_timer, &d->metrics_timer};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (*evs[i] != NULL)
            event_free(*evs[i]);
        *evs[i] = NULL;
    }
}

int sr_docker_start(struct sr_docker *d)
{
    if (d->started)
        return -1;
    /* Created here, used only by the docker thread; other threads only
     * event_active(wake_ev), which needs evthread_use_pthreads() first. */
    struct event_base *base = event_base_new();
    if (base == NULL)
        return -1;
    d->wake_ev = event_new(base, -1, 0, on_wake, d);
    d->sync_timer = evtimer_new(base, on_sync_timer, d);
    d->wait_timer = evtimer_new(base, on_wait_timer, d);
    d->work_ev = event_new(base, -1, 0, sr_docker__on_work, d);
    d->node_timer = evtimer_new(base, sr_docker__on_node_timer, d);
    d->settle_timer = evtimer_new(base, sr_docker__on_settle_timer, d);
    d->metrics_timer = evtimer_new(base, sr_docker__on_metrics_timer, d);
    if (d->wake_ev == NULL || d->sync_timer == NULL || d->wait_timer == NULL ||
        d->work_ev == NULL || d->node_timer == NULL || d->settle_timer == NULL ||
        d->metrics_timer == NULL)
        goto fail;
    sr_cache_set_source(d->cache, &d->status);
    pthread_mutex_lock(&d->mu);
    d->base = base;
    /* A request made before start gets a wakeup now. */
    if (d->queue != NULL || d->mqueue != NULL)
        event_active(d->wake_ev, EV_READ, 0);
    pthread_mutex_unlock(&d->mu);
    if (pthread_create(&d->thread, NULL, thread_main, d) != 0)
        goto fail;
    d->started = true;
    return 0;
fail:
    pthread_mutex_lock(&d->mu);
    d->base = NULL;
    pthread_mutex_unlock(&d->mu);
    free_events(d);
    event_base_free(base);
    return -1;
}

void sr_docker_stop(struct sr_docker *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    if (d->started && !d->joined)
        event_active(d->wake_ev, EV_READ, 0);
    pthread_mutex_unlock(&d->mu);
    if (d->started && !d->joined) {
        pthread_join(d->thread, NULL);
        d->joined = true;
    }
}

void sr_docker_free(struct sr_docker *d)
{
    if (d == NULL)
        return;
    sr_docker_stop(d);
    /* Never started: the queued callbacks still deserve their answer. */
    struct sr_docker__resync *q = d->queue;
    d->queue = NULL;
    answer(q, -1);
    struct sr_docker__collect_req *mq = d->mqueue;
    d->mqueue = NULL;
    sr_docker__collect_answer(mq, -1);
    free_events(d);
    free_bad_enabled(d);
    if (d->base != NULL)
        event_base_free(d->base);
    sr_linesplit_free(&d->split);
    pthread_mutex_destroy(&d->mu);
    free(d->base_url);
    free(d);
}
