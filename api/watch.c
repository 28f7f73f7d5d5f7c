/* watch: how changes reach the API's watchers (parked long-polls and SSE
 * streams) without any thread waiting on anything.
 *
 * DESIGN
 * - One event listener on the cache (on_events). The cache calls it on the
 *   writer's thread, in revision order, with the events of one commit; it
 *   must not block, so it only appends new references to each worker's
 *   hub inbox (a mutex-protected array) and wakes the worker with
 *   event_active, the pattern of refresh.c's mailbox. Wakeups coalesce:
 *   the worker swaps the whole inbox out and handles it without the lock.
 * - Long-polls (GET ...?index=R&wait=T) are parked only when the cache is
 *   exactly at R, so a change that commits after the router looked comes
 *   through the inbox afterwards (the cache swaps the snapshot before it
 *   calls listeners): no wakeup can be lost. A watcher is woken by a change
 *   its endpoint can see (service.* and services.updated; metrics.<name>
 *   too for /services/{name}/metrics) or by its timer: wait + up to wait/16
 *   jitter, as Consul does, so clients that parked together do not all
 *   come back in the same millisecond. It is answered through the mailbox,
 *   so its connection is only touched from a top-level callback.
 * - SSE clients get the events through sr_api__sse_deliver (sse.c).
 * - sr_api_free removes the listener before the workers' hubs go; the
 *   cache guarantees no call is in progress once that returns. */
#include "api/watch_hub.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

struct sr_api__watcher {
    struct sr_api__hub *hub;
    struct sr_api__pending *p;
    struct sr_api__watcher *prev, *next;
    struct event *timer;
    uint64_t index;
    char metrics_key[320]; /* "metrics.<name>", or "" */
    char needle[320];      /* "name":"<name>" in a service.* body, or "" */
};

/* ---- frames (shared with sse.c) ------------------------------------------------ */

struct sr_api__frame *sr_api__frame_new(const char *p, size_t len)
{
    struct sr_api__frame *f = sr_malloc(sizeof(*f) + len);
    f->refs = 1;
    f->len = len;
    memcpy(f->data, p, len);
    return f;
}

void sr_api__frame_unref(struct sr_api__frame *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

void sr_api__frame_release(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    sr_api__frame_unref(arg);
}

/* ---- long-polls ----------------------------------------------------------------- */

static void unlink_watcher(struct sr_api__watcher *wt)
{
    struct sr_api__hub *hub = wt->hub;
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        hub->watchers = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    event_free(wt->timer);
    atomic_fetch_sub_explicit(&hub->api->stats->longpolls, 1, memory_order_relaxed);
}

static void fire(struct sr_api__watcher *wt)
{
    struct sr_api__pending *p = wt->p;
    unlink_watcher(wt);
    free(wt);
    /* Only queues p in the mailbox: nothing is answered from here. */
    sr_api__pending_fire(p);
}

static void on_wait_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fire(arg);
}

static uint64_t next_rand(struct sr_api__hub *hub)
{
    uint64_t x = hub->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    hub->rng = x;
    return x;
}

struct sr_api__watcher *sr_api__watch_park(struct sr_api__worker *w,
                                           const struct sr_api__park *park,
                                           struct sr_api__pending *p)
{
    struct sr_api__hub *hub = w->hub;
    if (hub->stopping) {
        sr_api__pending_fire(p); /* answer now, with Connection: close */
        return NULL;
    }
    struct sr_api__watcher *wt = sr_calloc(1, sizeof(*wt));
    wt->hub = hub;
    wt->p = p;
    wt->index = park->index;
    if (park->endpoint == SR_API_EP_SERVICE_METRICS && park->name != NULL)
        snprintf(wt->metrics_key, sizeof(wt->metrics_key), "metrics.%s", park->name);
    /* Docker names are [A-Za-z0-9][A-Za-z0-9_.-]*, the same bytes once
     * JSON-encoded; any other name matches no service anyway. */
    if (park->name != NULL && strlen(park->name) < 256 &&
        strcspn(park->name, "\"\\") == strlen(park->name))
        snprintf(wt->needle, sizeof(wt->needle), "\"name\":\"%s\"", park->name);
    wt->timer = evtimer_new(w->base, on_wait_over, wt);
    if (wt->timer == NULL) {
        free(wt);
        sr_api__pending_fire(p);
        return NULL;
    }
    /* Consul: wait + a random stagger of up to wait / 16. */
    uint64_t ms = park->wait_ms;
    if (ms / 16 > 0)
        ms += next_rand(hub) % (ms / 16 + 1);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(wt->timer, &tv);
    wt->next = hub->watchers;
    if (hub->watchers)
        hub->watchers->prev = wt;
    hub->watchers = wt;
    atomic_fetch_add_explicit(&hub->api->stats->longpolls, 1, memory_order_relaxed);
    return wt;
}

void sr_api__watch_drop(struct sr_api__watcher *wt)
{
    unlink_watcher(wt);
    free(wt);
}

/* Whether one of the events is a change the watcher's endpoint may show:
 * /services any service event; /services/{name} (and its metrics) only the
 * events naming that service (a label value could give a false positive,
 * which costs one early answer, never a missed one), and a full refresh. */
static bool wakes(const struct sr_api__watcher *wt, struct sr_event *const *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sr_event_revision(evs[i]) <= wt->index)
            continue;
        const char *key = sr_event_key(evs[i]);
        if (strcmp(key, "services.updated") == 0 ||
            (wt->metrics_key[0] && strcmp(key, wt->metrics_key) == 0))
            return true;
        if (strncmp(key, "service.", 8) != 0)
            continue;
        if (wt->needle[0] == '\0')
            return true;
        size_t len;
        const char *body = sr_event_body(evs[i], &len);
        if (memmem(body, len, wt->needle, strlen(wt->needle)) != NULL)
            return true;
    }
    return false;
}

static void wake_watchers(struct sr_api__hub *hub, struct sr_event *const *evs, size_t n,
                          bool overflow)
{
    /* fire() never frees another watcher: the saved next stays valid. */
    for (struct sr_api__watcher *wt = hub->watchers, *next; wt != NULL; wt = next) {
        next = wt->next;
        if (overflow || wakes(wt, evs, n)) {
            atomic_fetch_add_explicit(&hub->api->stats->longpoll_wakeups, 1,
                                      memory_order_relaxed);
            fire(wt);
        }
    }
}

/* ---- the hub ---------------------------------------------------------------------- */

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api__hub *hub = arg;
    pthread_mutex_lock(&hub->mu);
    struct sr_event **q = hub->q;
    size_t n = hub->qn;
    bool overflow = hub->overflow;
    hub->q = NULL;
    hub->qn = hub->qcap = 0;
    hub->overflow = false;
    pthread_mutex_unlock(&hub->mu);

    if (n > 0 || overflow) {
        if (overflow)
            sr_log(SR_LOG_WARNING, "api", "worker %u: change inbox overflowed: SSE clients resync",
                   hub->w->index);
        wake_watchers(hub, q, n, overflow);
        sr_api__sse_deliver(hub, q, n, overflow);
    }
    for (size_t i = 0; i < n; i++)
        sr_event_release(q[i]);
    free(q);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sr_api__sse_heartbeat(arg);
}

/* Any thread (the cache's writer): queue one commit's events. */
static void hub_push(struct sr_api__hub *hub, struct sr_event *const *evs, size_t n)
{
    pthread_mutex_lock(&hub->mu);
    if (hub->wake_ev != NULL) {
        if (hub->overflow || hub->qn + n > SR_API_HUB_INBOX_MAX) {
            hub->overflow = true;
        } else {
            if (hub->qn + n > hub->qcap) {
                size_t cap = hub->qcap ? hub->qcap : 16;
                while (cap < hub->qn + n)
                    cap *= 2;
                hub->q = sr_realloc(hub->q, cap * sizeof(*hub->q));
                hub->qcap = cap;
            }
            for (size_t i = 0; i < n; i++)
                hub->q[hub->qn++] = sr_event_incref(evs[i]);
        }
        /* Under mu: the event cannot be freed meanwhile (sr_api__hub_free). */
        event_active(hub->wake_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&hub->mu);
}

struct sr_api__hub *sr_api__hub_new(struct sr_api__worker *w)
{
    struct sr_api__hub *hub = sr_calloc(1, sizeof(*hub));
    hub->w = w;
    hub->api = w->api;
    pthread_mutex_init(&hub->mu, NULL);
    hub->wake_ev = event_new(w->base, -1, 0, on_wake, hub);
    hub->heartbeat_ev = event_new(w->base, -1, EV_PERSIST, on_heartbeat, hub);
    static const char hb[] = ": heartbeat\n\n";
    hub->heartbeat = sr_api__frame_new(hb, sizeof(hb) - 1);
    hub->rng = (uint64_t)(uintptr_t)hub ^ (uint64_t)(sr_now() * 1e6) ^ 0x9e3779b97f4a7c15ull;
    if (hub->rng == 0)
        hub->rng = 1;
    if (hub->wake_ev == NULL || hub->heartbeat_ev == NULL) {
        sr_api__hub_free(hub);
        return NULL;
    }
    return hub;
}

void sr_api__hub_stop(struct sr_api__hub *hub)
{
    if (hub == NULL || hub->stopping)
        return;
    hub->stopping = true;
    while (hub->watchers != NULL)
        fire(hub->watchers);
    sr_api__sse_stop_all(hub);
}

void sr_api__hub_free(struct sr_api__hub *hub)
{
    if (hub == NULL)
        return;
    pthread_mutex_lock(&hub->mu);
    struct event *ev = hub->wake_ev;
    hub->wake_ev = NULL;
    pthread_mutex_unlock(&hub->mu);
    if (ev != NULL)
        event_free(ev);
    /* The connections went first, and their watchers and clients with them. */
    while (hub->watchers != NULL)
        sr_api__watch_drop(hub->watchers); /* not reached: for safety */
    for (size_t i = 0; i < hub->qn; i++)
        sr_event_release(hub->q[i]);
    free(hub->q);
    if (hub->heartbeat_ev != NULL)
        event_free(hub->heartbeat_ev);
    sr_api__frame_unref(hub->heartbeat);
    sr_api__frame_unref(hub->resync);
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}

/* ---- the cache's event listener ------------------------------------------------- */

/* The cache's writer thread, write lock held: queue, wake, return. */
static void on_events(struct sr_event *const *evs, size_t n, void *arg)
{
    struct sr_api *api = arg;
    /* A full refresh that changed something ends its batch with its own
     * services.updated; the changes before it are ones the event stream
     * had not delivered. The first refresh is the initial load, not a
     * catch. */
    if (n > 1 && strcmp(sr_event_key(evs[n - 1]), "services.updated") == 0) {
        struct sr_cache_stats st;
        sr_cache_get_stats(api->router.cache, &st);
        if (st.refreshes > 1)
            atomic_fetch_add_explicit(&api->stats->resync_changes, n - 1, memory_order_relaxed);
    }
    for (unsigned i = 0; i < api->nworkers; i++)
        if (api->workers[i].hub != NULL)
            hub_push(api->workers[i].hub, evs, n);
}

int sr_api__watch_init(struct sr_api *api, const struct sr_api_opts *opts, char *err,
                       size_t errlen)
{
    api->stats = sr_calloc(1, sizeof(*api->stats));
    api->stats->started = sr_now();
    api->router.stats = api->stats;

    unsigned hb = opts->sse_heartbeat_sec, buf = opts->sse_buffer_bytes;
    api->sse_heartbeat_sec = hb ? hb : SR_API_DEFAULT_SSE_HEARTBEAT_SEC;
    api->sse_buffer_bytes = buf ? buf : SR_API_DEFAULT_SSE_BUFFER_BYTES;

    /* The workers and their hubs exist by now. */
    if (sr_cache_add_event_listener(api->router.cache, on_events, api) != 0) {
        snprintf(err, errlen, "cannot watch the cache: too many listeners");
        return -1;
    }
    return 0;
}

void sr_api__watch_detach(struct sr_api *api)
{
    /* Not registered (sr_api_new failed before it): the cache says -1. */
    sr_cache_remove_event_listener(api->router.cache, on_events, api);
}

void sr_api__watch_free(struct sr_api *api)
{
    free(api->stats);
    api->stats = NULL;
    api->router.stats = NULL;
}
