/* The live cache: GET /events as a stream on the docker thread's multi handle,
 * split into lines (linesplit.c), classified (event.c) and turned into
 * per-service refreshes (GET /services?filters={"id":...}&status=true, so
 * ServiceStatus is there) or a debounced full resync.
 *
 * Stream data arrives inside curl's write callback, where no transfer may be
 * started: handlers only mark work and wake work_ev, which starts the
 * transfers from the loop. The stream is (re)opened by the full sync
 * (docker.c), which lists only after it opened, so a reconnect always ends
 * with one full resync; since= replays what Docker still has, deduped. */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/docker/client.h"
#include "adapters/docker/docker_internal.h"
#include "adapters/docker/event.h"
#include "adapters/docker/map.h"
#include "cache/log.h"
#include "cache/util.h"

#define LOGGER "docker"

/* ---- per-service refreshes ---------------------------------------------- */

static struct sr_docker__refresh *find_refresh(struct sr_docker *d, const char *id)
{
    for (struct sr_docker__refresh *r = d->refreshes; r != NULL; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static void drop_refresh(struct sr_docker *d, struct sr_docker__refresh *r)
{
    struct sr_docker__refresh **p = &d->refreshes;
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    d->nrefreshes--;
    free(r);
}

/* Marks `id` for a refresh, with follow-up polls when `settle`; `expect`
 * (a task event) keeps them going until an answer moves the running count.
 * Safe inside curl callbacks. */
static void mark_refresh(struct sr_docker *d, const char *id, bool settle, bool expect)
{
    struct sr_docker__refresh *r = find_refresh(d, id);
    if (r == NULL) {
        if (d->nrefreshes >= SR_DOCKER_MAX_PENDING) {
            /* An event flood: one full list is cheaper than hundreds of
             * single GETs, and says the same. */
            sr_docker__want_sync(d);
            return;
        }
        r = sr_calloc(1, sizeof(*r));
        r->d = d;
        snprintf(r->id, sizeof(r->id), "%s", id);
        r->next = d->refreshes;
        d->refreshes = r;
        d->nrefreshes++;
    }
    r->again = true;
    /* For the next GET: one in flight may have left Docker before the event. */
    if (expect)
        r->expect_next = true;
    if (settle) {
        r->settle_left = SR_DOCKER_SETTLE_POLLS;
        r->settle_step = 0;
    }
    /* A full list already in flight may hold the state from before this
     * event: refresh once more after it commits. */
    if (d->step == SR_DOCKER_STEP_LIST)
        r->after_list = true;
    event_active(d->work_ev, EV_READ, 0);
}

static void on_refresh(const struct sr_http_result *res, void *arg);

static void start_refresh(struct sr_docker *d, struct sr_docker__refresh *r)
{
    json_t *f = json_pack("{s:{s:b}}", "id", r->id, 1);
    char *text = json_dumps(f, JSON_COMPACT);
    char *filters = sr_http_escape(text);
    char path[512];
    snprintf(path, sizeof(path), "/v%s/services?filters=%s&status=true", d->api, filters);
    free(filters);
    free(text);
    json_decref(f);
    r->again = false;
    if (r->expect_next) {
        r->expect_move = true;
        r->expect_next = false;
    }
    r->req = sr_http_get(d->http, path, on_refresh, r);
    if (r->req == NULL) {
        sr_log(SR_LOG_WARNING, LOGGER, "could not start GET %s", path);
        sr_docker__want_sync(d);
        if (!r->after_list && r->due == 0)
            drop_refresh(d, r);
        return;
    }
    d->nflight++;
}

/* Whether `id` is cached; *running (when not NULL) gets its cached running
 * count, -1 when it has none. */
static bool find_cached(struct sr_docker *d, const char *id, json_int_t *running)
{
    struct sr_snapshot *snap = sr_cache_acquire(d->cache);
    const struct sr_svc *svc = sr_snapshot_find_id(snap, id);
    if (running != NULL) {
        const json_t *run =
            svc != NULL ? json_object_get(json_object_get(sr_svc_doc(svc), "replicas"), "running")
                        : NULL;
        *running = json_is_integer(run) ? json_integer_value(run) : -1;
    }
    sr_snapshot_release(snap);
    return svc != NULL;
}

/* Commits one service's answer. Returns true when the service is settled
 * (running == desired and no task event still waits for the count to move,
 * or gone), false when it is still converging. */
static bool apply_refresh(struct sr_docker *d, struct sr_docker__refresh *r,
                          const struct sr_http_result *res)
{
    const char *id = r->id;
    json_t *arr = json_loadb(res->body, res->len, JSON_ALLOW_NUL, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        sr_log(SR_LOG_WARNING, LOGGER, "refresh of service %s: answer is not a JSON array", id);
        sr_docker__want_sync(d);
        return true;
    }
    /* The id filter matches prefixes: pick the exact ID. */
    json_t *doc = NULL;
    size_t i;
    json_t *el;
    json_array_foreach(arr, i, el)
    {
        const json_t *eid = json_object_get(el, "ID");
        if (json_is_string(eid) && strcmp(json_string_value(eid), id) == 0) {
            doc = sr_docker_map_service(el);
            break;
        }
    }
    json_decref(arr);
    if (doc != NULL &&
        json_is_true(json_object_get(json_object_get(doc, "autoscaler"), "enabled"))) {
        char name[128];
        snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(doc, "name")));
        const json_t *reps = json_object_get(doc, "replicas");
        const json_t *want = json_object_get(reps, "desired"),
                     *run = json_object_get(reps, "running");
        long long w = json_integer_value(want), g = json_integer_value(run);
        /* Docker counts a task's start or end a moment after its container
         * event: until then it still answers the old count, which may equal
         * the desired one. */
        json_int_t before;
        if (r->expect_move && (!find_cached(d, id, &before) || before != g))
            r->expect_move = false;
        bool settled =
            !json_is_integer(want) || !json_is_integer(run) || (!r->expect_move && w == g);
        struct sr_svc *svc = sr_svc_new(doc);
        int changed = svc != NULL ? sr_cache_upsert(d->cache, svc) : 0;
        sr_log(SR_LOG_DEBUG, LOGGER, "service %s (%s) refreshed: %s, running %lld/%lld%s", name, id,
               changed ? "changed" : "unchanged", g, w,
               r->expect_move ? " (waiting for the count to move)" : "");
        return settled;
    }
    json_decref(doc);
    if (sr_cache_remove(d->cache, id) == 1)
        sr_log(SR_LOG_DEBUG, LOGGER, "service %s removed (gone or no longer enabled)", id);
    return true;
}

/* Arms settle_timer for the earliest follow-up. */
static void arm_settle(struct sr_docker *d)
{
    double first = 0;
    for (struct sr_docker__refresh *r = d->refreshes; r != NULL; r = r->next)
        if (r->due > 0 && (first == 0 || r->due < first))
            first = r->due;
    if (first == 0) {
        evtimer_del(d->settle_timer);
        return;
    }
    double delay = first - sr_mono();
    if (delay < 0)
        delay = 0;
    struct timeval tv = {.tv_sec = (time_t)delay,
                         .tv_usec = (suseconds_t)((delay - (double)(time_t)delay) * 1e6)};
    evtimer_add(d->settle_timer, &tv);
}

/* A manager learns that a task runs or has ended some time after the
 * container start or die event, and tasks on other nodes send no local event
 * at all, so ServiceStatus.RunningTasks lags the events: poll a converging
 * service a few more times (0.5, 1, 2, 4, 8 s) until running == desired, and
 * after a task event until an answer has also moved the running count (the
 * first answer after a die may still count the dead task, and match). */
void sr_docker__on_settle_timer(int fd, short kind, void *arg)
{
    struct sr_docker *d = arg;
    (void)fd;
    (void)kind;
    double now = sr_mono();
    bool any = false;
    for (struct sr_docker__refresh *r = d->refreshes; r != NULL; r = r->next) {
        if (r->due > 0 && r->due <= now + 0.001) {
            r->due = 0;
            r->again = true;
            any = true;
        }
    }
    arm_settle(d);
    if (any)
        sr_docker__on_work(-1, 0, d);
}

static void on_refresh(const struct sr_http_result *res, void *arg)
{
    struct sr_docker__refresh *r = arg;
    struct sr_docker *d = r->d;
    r->req = NULL;
    d->nflight--;
    if (!res->transport_ok || res->status != 200) {
        char msg[200];
        sr_docker__error_text(res->body, res->len, msg, sizeof(msg));
        sr_log(SR_LOG_WARNING, LOGGER, "refresh of service %s failed: %s", r->id,
               res->transport_ok ? msg : res->error);
        /* The change behind the event is not in the cache: a full sync
         * (with its backoff if Docker went away) will bring it. */
        sr_docker__want_sync(d);
    } else if (apply_refresh(d, r, res) || r->settle_left == 0) {
        /* Unless an event came during this GET: its rerun decides, with the
         * follow-ups that event asked for. */
        if (!r->again) {
            r->settle_left = 0;
            r->due = 0;
            r->expect_move = false;
        }
    } else if (!r->again) {
        r->settle_left--;
        r->due = sr_mono() + 0.5 * (double)(1 << r->settle_step);
        r->settle_step++;
        arm_settle(d);
    }
    if (!r->again && !r->after_list && r->due == 0)
        drop_refresh(d, r);
    event_active(d->work_ev, EV_READ, 0);
}

void sr_docker__on_work(int fd, short kind, void *arg)
{
    struct sr_docker *d = arg;
    (void)fd;
    (void)kind;
    if (d->http == NULL || d->api[0] == '\0')
        return;
    struct sr_docker__refresh *next;
    for (struct sr_docker__refresh *r = d->refreshes; r != NULL; r = next) {
        next = r->next; /* start_refresh may drop r */
        if (d->nflight >= SR_DOCKER_MAX_REFRESHES)
            break;
        if (r->again && r->req == NULL)
            start_refresh(d, r);
    }
}

void sr_docker__events_list_done(struct sr_docker *d)
{
    bool any = false;
    for (struct sr_docker__refresh *r = d->refreshes; r != NULL; r = r->next) {
        if (r->after_list) {
            r->after_list = false;
            r->again = true;
            any = true;
        }
    }
    if (any)
        event_active(d->work_ev, EV_READ, 0);
}

void sr_docker__on_node_timer(int fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    sr_docker__want_sync(arg);
}

/* ---- the stream ------------------------------------------------------------ */

/* Replays after a reconnect repeat events at the resume point: since= is
 * inclusive (NOTES §5). Keys of the events at the newest timeNano are enough. */
static bool seen_before(struct sr_docker *d, const struct sr_docker_event *ev)
{
    struct sr_docker__event_key key;
    memset(&key, 0, sizeof(key));
    snprintf(key.type, sizeof(key.type), "%s", ev->type);
    snprintf(key.action, sizeof(key.action), "%s", ev->action);
    snprintf(key.actor, sizeof(key.actor), "%s", ev->actor_id);
    if (ev->time_nano > d->last_ns) {
        d->last_ns = ev->time_nano;
        d->nseen = 0;
    } else if (ev->time_nano == d->last_ns) {
        for (size_t i = 0; i < d->nseen; i++)
            if (memcmp(&d->seen[i], &key, sizeof(key)) == 0)
                return true;
    } else {
        return false; /* older than the newest: swarm events carry UpdatedAt */
    }
    if (d->nseen < SR_DOCKER_DEDUPE)
        d->seen[d->nseen++] = key;
    return false;
}

static void on_line(const char *line, size_t len, void *arg)
{
    struct sr_docker *d = arg;
    struct sr_docker_event ev;
    char err[160];
    if (sr_docker__event_parse(line, len, &ev, err, sizeof(err)) != 0) {
        d->bad_lines++;
        /* A healthy daemon never sends these: log the first ones, then a
         * count now and then. */
        if (d->bad_lines <= 10 || d->bad_lines % 1000 == 0) {
            char shown[81];
            size_t n = len < sizeof(shown) - 1 ? len : sizeof(shown) - 1;
            for (size_t i = 0; i < n; i++)
                shown[i] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
            shown[n] = '\0';
            sr_log(SR_LOG_WARNING, LOGGER,
                   "events: skipping a line that is not an event (%s; %llu so far): %s%s", err,
                   (unsigned long long)d->bad_lines, shown, len > n ? "..." : "");
        }
        return;
    }
    if (ev.time_nano > 0 && seen_before(d, &ev))
        return;
    d->stream_events++;
    d->status.events_received++;
    if (ev.time_nano > 0) {
        d->status.last_event_time = (double)ev.time_nano / 1e9;
        if (ev.time_nano > d->resume_ns)
            d->resume_ns = ev.time_nano;
    }
    sr_docker__publish(d);
    sr_log(SR_LOG_DEBUG, LOGGER, "event %s %s %s", ev.type, ev.action, ev.actor_id);
    switch (ev.kind) {
    case SR_DOCKER_EVENT_SERVICE:
        mark_refresh(d, ev.service_id, strcmp(ev.action, "remove") != 0, false);
        break;
    case SR_DOCKER_EVENT_TASK:
        /* start and die move the running count (a destroy follows a die). */
        if (find_cached(d, ev.service_id, NULL))
            mark_refresh(d, ev.service_id, true, strcmp(ev.action, "destroy") != 0);
        break;
    case SR_DOCKER_EVENT_NODE:
        if (!evtimer_pending(d->node_timer, NULL)) {
            struct timeval tv = {.tv_sec = (time_t)SR_DOCKER_NODE_DEBOUNCE, .tv_usec = 0};
            evtimer_add(d->node_timer, &tv);
        }
        break;
    case SR_DOCKER_EVENT_OTHER:
    default:
        break;
    }
}

static int on_stream_data(const char *data, size_t len, void *arg)
{
    struct sr_docker *d = arg;
    sr_linesplit_feed(&d->split, data, len, on_line, d);
    if (d->split.dropped != d->dropped_seen) {
        d->dropped_seen = d->split.dropped;
        sr_log(SR_LOG_WARNING, LOGGER, "events: dropped a line longer than %zu bytes",
               d->split.max);
    }
    return 0;
}

static void on_stream_open(const struct sr_http_result *res, void *arg)
{
    struct sr_docker *d = arg;
    d->stream = SR_DOCKER_STREAM_OPEN;
    d->stream_opened_at = sr_mono();
    d->stream_retry_at = 0;
    d->stream_events = 0;
    /* Resume point if nothing arrives on this connection: the daemon's clock
     * at subscription (Date, 1 s resolution, so one second earlier), ours
     * when it sent none. Replaying a little too much only costs GETs. */
    int64_t at =
        res->date > 0 ? ((int64_t)res->date - 1) * 1000000000 : (int64_t)((sr_now() - 1.0) * 1e9);
    if (at > d->resume_ns)
        d->resume_ns = at;
    d->status.events_connected = true;
    sr_docker__publish(d);
    sr_log(SR_LOG_INFO, LOGGER, "events stream connected");
    sr_docker__stream_settled(d);
}

static void on_stream_done(const struct sr_http_result *res, void *arg)
{
    struct sr_docker *d = arg;
    bool was_open = d->stream == SR_DOCKER_STREAM_OPEN;
    d->stream_req = NULL;
    d->stream = SR_DOCKER_STREAM_IDLE;
    sr_linesplit_reset(&d->split);
    /* A stream that worked for a while restarts the backoff; one that keeps
     * failing right away backs off like the sync does. */
    if (was_open && (d->stream_events > 0 || sr_mono() - d->stream_opened_at >= 30))
        d->stream_backoff = 1;
    double delay = sr_docker__jitter(d, d->stream_backoff);
    d->stream_backoff = d->stream_backoff * 2 > SR_DOCKER_BACKOFF_MAX ? SR_DOCKER_BACKOFF_MAX
                                                                      : d->stream_backoff * 2;
    d->stream_retry_at = sr_mono() + delay;
    char msg[200];
    if (res->transport_ok && (res->status < 200 || res->status >= 300))
        sr_docker__error_text(res->body, res->len, msg, sizeof(msg));
    else
        snprintf(msg, sizeof(msg), "%s", res->transport_ok ? "closed by the daemon" : res->error);
    if (was_open)
        sr_log(SR_LOG_WARNING, LOGGER, "events stream lost: %s; reconnecting in %.1f s", msg,
               delay);
    else
        sr_log(SR_LOG_WARNING, LOGGER, "events stream failed (HTTP %ld): %s; retrying in %.1f s",
               res->status, msg, delay);
    d->status.events_connected = false;
    sr_docker__publish(d);
    if (d->step == SR_DOCKER_STEP_STREAM) {
        sr_docker__stream_settled(d);
        return;
    }
    /* The daemon may have restarted (maybe as another version): the next
     * sync, which reopens the stream, negotiates again. */
    d->negotiated = false;
    if (d->step == SR_DOCKER_STEP_IDLE) {
        /* Re-arming may push a refresh that was due sooner by at most the
         * (capped) delay; the reconnecting sync does that refresh anyway. */
        struct timeval tv = {.tv_sec = (time_t)delay,
                             .tv_usec = (suseconds_t)((delay - (double)(time_t)delay) * 1e6)};
        evtimer_add(d->sync_timer, &tv);
    }
}

int sr_docker__events_start(struct sr_docker *d)
{
    if (d->stream != SR_DOCKER_STREAM_IDLE)
        return 0;
    char *filters =
        sr_http_escape("{\"type\":{\"service\":true,\"container\":true,\"node\":true}}");
    char path[512];
    int n = snprintf(path, sizeof(path), "/v%s/events?filters=%s", d->api, filters);
    free(filters);
    if (d->resume_ns > 0)
        snprintf(path + n, sizeof(path) - (size_t)n, "&since=%lld.%09lld",
                 (long long)(d->resume_ns / 1000000000), (long long)(d->resume_ns % 1000000000));
    sr_linesplit_reset(&d->split);
    d->stream_req =
        sr_http_stream(d->http, path, on_stream_open, on_stream_data, on_stream_done, d);
    if (d->stream_req == NULL) {
        sr_log(SR_LOG_WARNING, LOGGER, "could not start GET %s", path);
        return -1;
    }
    d->stream = SR_DOCKER_STREAM_CONNECTING;
    return 0;
}

void sr_docker__events_teardown(struct sr_docker *d)
{
    /* The transfers went with sr_http_free. */
    while (d->refreshes != NULL)
        drop_refresh(d, d->refreshes);
    d->nflight = 0;
    d->stream = SR_DOCKER_STREAM_IDLE;
    d->status.events_connected = false;
    sr_docker__publish(d);
}
