/* sse: GET /events/stream, the change feed as Server-Sent Events, and its
 * HTTP/1.1 transport (HTTP/2 streams are driven from http2.c through
 * sr_api__sse_read and the kick op).
 *
 * Each event is "id: <revision>\nevent: <routing key>\ndata: <JSON>\n\n".
 * A worker frames each event once and every client of that worker queues a
 * reference to the same bytes; HTTP/1.1 hands them to the socket by
 * reference too, so a change costs one copy per worker, not per client.
 *
 * Resuming: Last-Event-ID (or ?since=R) replays the events after R from the
 * cache's ring. When R is older than the ring (or newer than the cache: a
 * restarted registry), the client gets one "resync_required" event whose
 * data is the full state (a services.updated body) with the snapshot's
 * revision as id, then live events after it. Live events at or below the
 * client's last id are skipped, so replay and live never overlap.
 *
 * Slow readers: what a client has not taken yet (our queue, plus for
 * HTTP/1.1 what sits in the connection's output) is bounded by
 * sse_buffer_bytes. An event that would go past it (unless the client is
 * fully caught up: one event is always accepted) drops the client's queue
 * (a frame already half sent is finished, so the stream stays well formed)
 * and marks it behind; once everything queued is written, it gets a
 * resync_required built from the snapshot of that moment, then continues
 * live. Memory per client is thus bounded whatever the client does; one
 * that reads nothing at all is closed by the write timeout. */
#include "api/watch_hub.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

/* HTTP/1.1: items move to the socket's output while it holds less. */
#define H1_PUMP_BELOW (64 * 1024)
/* Copy a frame into the output below this size: a reference costs a chain. */
#define COPY_BELOW 256
#define REPLAY_BATCH 256

struct item {
    struct sr_api__frame *f;
    struct item *next;
};

struct sr_api__sse {
    struct sr_api__hub *hub;
    struct sr_api__sse *prev, *next;   /* hub->clients */
    struct sr_api__sse *kprev, *knext; /* hub->kicks */
    bool in_kicks;
    const struct sr_api__sse_ops *ops;
    void *owner;
    struct item *head, *tail;
    size_t head_off; /* bytes of head->f already taken */
    size_t queued;   /* bytes in the queue not taken yet */
    uint64_t last_id;
    bool behind; /* dropped events: resync_required once drained */
    bool ended;  /* graceful stop: end after what is queued */
    struct sr_api__types types;
};

/* ---- queue ---------------------------------------------------------------------- */

static struct sr_api__frame *frame_ref(struct sr_api__frame *f)
{
    f->refs++;
    return f;
}

static void push(struct sr_api__sse *s, struct sr_api__frame *f)
{
    struct item *it = sr_malloc(sizeof(*it));
    it->f = frame_ref(f);
    it->next = NULL;
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    s->queued += f->len;
}

static void pop(struct sr_api__sse *s)
{
    struct item *it = s->head;
    s->head = it->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->head_off = 0;
    sr_api__frame_unref(it->f);
    free(it);
}

static size_t backlog(const struct sr_api__sse *s)
{
    return s->queued + (s->ops->backlog ? s->ops->backlog(s->owner) : 0);
}

static void kick_add(struct sr_api__sse *s)
{
    struct sr_api__hub *hub = s->hub;
    if (s->in_kicks)
        return;
    s->in_kicks = true;
    s->kprev = NULL;
    s->knext = hub->kicks;
    if (hub->kicks)
        hub->kicks->kprev = s;
    hub->kicks = s;
}

static void kick_remove(struct sr_api__sse *s)
{
    if (!s->in_kicks)
        return;
    s->in_kicks = false;
    if (s->kprev)
        s->kprev->knext = s->knext;
    else
        s->hub->kicks = s->knext;
    if (s->knext)
        s->knext->kprev = s->kprev;
}

/* A kick may close a connection, and so free any client (several h2
 * streams share one): take them one at a time from the list, which every
 * freed client leaves. */
static void run_kicks(struct sr_api__hub *hub)
{
    while (hub->kicks != NULL) {
        struct sr_api__sse *s = hub->kicks;
        kick_remove(s);
        s->ops->kick(s->owner);
    }
}

static void fall_behind(struct sr_api__sse *s)
{
    /* Keep a frame already half taken: the rest of it must follow. */
    struct item *keep = s->head != NULL && s->head_off > 0 ? s->head : NULL;
    struct item *it = keep ? keep->next : s->head;
    while (it != NULL) {
        struct item *next = it->next;
        sr_api__frame_unref(it->f);
        free(it);
        it = next;
    }
    s->head = s->tail = keep;
    if (keep != NULL) {
        keep->next = NULL;
        s->queued = keep->f->len - s->head_off;
    } else {
        s->queued = 0;
        s->head_off = 0;
    }
    s->behind = true;
    atomic_fetch_add_explicit(&s->hub->api->stats->sse_behind, 1, memory_order_relaxed);
}

/* Queues f unless that would put the client past its bound. */
static void offer(struct sr_api__sse *s, struct sr_api__frame *f)
{
    size_t b = backlog(s);
    if (b > 0 && b + f->len > s->hub->api->sse_buffer_bytes) {
        fall_behind(s);
    } else {
        push(s, f);
        atomic_fetch_add_explicit(&s->hub->api->stats->sse_events, 1, memory_order_relaxed);
    }
    kick_add(s);
}

static struct sr_api__frame *frame_event(const struct sr_event *ev)
{
    struct sr_buf b = {0};
    size_t len;
    const char *body = sr_event_body(ev, &len);
    sr_api__sse_frame(&b, true, sr_event_revision(ev), sr_event_key(ev), body, len);
    struct sr_api__frame *f = sr_api__frame_new(b.p, b.len);
    free(b.p);
    return f;
}

/* Queues resync_required for the current snapshot (always accepted). */
static void resync(struct sr_api__sse *s)
{
    struct sr_api__hub *hub = s->hub;
    struct sr_snapshot *snap = sr_cache_acquire(hub->api->router.cache);
    uint64_t v = sr_snapshot_version(snap);
    if (hub->resync == NULL || hub->resync_v != v) {
        struct sr_event *ev = sr_snapshot_resync_event(snap);
        struct sr_buf b = {0};
        size_t len;
        const char *body = sr_event_body(ev, &len);
        sr_api__sse_frame(&b, true, v, "resync_required", body, len);
        sr_api__frame_unref(hub->resync);
        hub->resync = sr_api__frame_new(b.p, b.len);
        hub->resync_v = v;
        free(b.p);
        sr_event_release(ev);
    }
    sr_snapshot_release(snap);
    push(s, hub->resync);
    s->behind = false;
    if (v > s->last_id)
        s->last_id = v;
    atomic_fetch_add_explicit(&hub->api->stats->sse_resyncs, 1, memory_order_relaxed);
}

/* ---- the hub's side ------------------------------------------------------------ */

void sr_api__sse_deliver(struct sr_api__hub *hub, struct sr_event *const *evs, size_t n,
                         bool overflow)
{
    if (hub->clients == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t rev = sr_event_revision(evs[i]);
        const char *key = sr_event_key(evs[i]);
        struct sr_api__frame *f = NULL;
        for (struct sr_api__sse *s = hub->clients; s != NULL; s = s->next) {
            if (rev <= s->last_id)
                continue; /* replayed already, or before this client */
            s->last_id = rev;
            if (s->behind || s->ended || !sr_api__types_match(&s->types, key))
                continue;
            if (f == NULL)
                f = frame_event(evs[i]);
            offer(s, f);
        }
        sr_api__frame_unref(f);
    }
    if (overflow)
        for (struct sr_api__sse *s = hub->clients; s != NULL; s = s->next)
            if (!s->behind && !s->ended) {
                fall_behind(s);
                kick_add(s);
            }
    /* A resync_required older than the latest event is of no more use. */
    if (hub->resync != NULL && n > 0 && sr_event_revision(evs[n - 1]) > hub->resync_v) {
        sr_api__frame_unref(hub->resync);
        hub->resync = NULL;
    }
    run_kicks(hub);
}

void sr_api__sse_heartbeat(struct sr_api__hub *hub)
{
    for (struct sr_api__sse *s = hub->clients; s != NULL; s = s->next) {
        /* A client with bytes still on their way needs no keep-alive. */
        if (s->ended || s->behind || backlog(s) > 0)
            continue;
        push(s, hub->heartbeat);
        kick_add(s);
    }
    run_kicks(hub);
}

void sr_api__sse_stop_all(struct sr_api__hub *hub)
{
    for (struct sr_api__sse *s = hub->clients; s != NULL; s = s->next) {
        s->ended = true;
        kick_add(s);
    }
    run_kicks(hub);
}

/* ---- a client ------------------------------------------------------------------ */

/* Replays the events after `since` from the ring; false when the ring no
 * longer holds them all (or they would not fit the buffer). */
static bool replay(struct sr_api__sse *s, uint64_t since, bool gap_ok)
{
    struct sr_cache *cache = s->hub->api->router.cache;
    struct sr_event *batch[REPLAY_BATCH];
    uint64_t cursor = since, oldest = 0;
    bool first = true;
    for (;;) {
        size_t n = sr_cache_events_since(cache, cursor, batch, REPLAY_BATCH, &oldest);
        bool ok = gap_ok || !(first && (oldest == 0 || since + 1 < oldest));
        first = false;
        for (size_t i = 0; i < n; i++) {
            if (ok) {
                cursor = sr_event_revision(batch[i]);
                if (sr_api__types_match(&s->types, sr_event_key(batch[i]))) {
                    struct sr_api__frame *f = frame_event(batch[i]);
                    if (s->queued > 0 && s->queued + f->len > s->hub->api->sse_buffer_bytes)
                        ok = false;
                    else
                        push(s, f);
                    sr_api__frame_unref(f);
                }
            }
            sr_event_release(batch[i]);
        }
        if (!ok) {
            while (s->head != NULL) /* nothing was taken yet */
                pop(s);
            s->queued = 0;
            return false;
        }
        s->last_id = cursor;
        if (n < REPLAY_BATCH)
            return true;
    }
}

struct sr_api__sse *sr_api__sse_new(struct sr_api__worker *w, const struct sr_api__park *park,
                                    const struct sr_api__sse_ops *ops, void *owner,
                                    uint64_t *index)
{
    struct sr_api__hub *hub = w->hub;
    struct sr_api__sse *s = sr_calloc(1, sizeof(*s));
    s->hub = hub;
    s->ops = ops;
    s->owner = owner;
    /* The router validated the list. */
    if (sr_api__types_parse(park->types, &s->types) != 0)
        memset(&s->types, 0, sizeof(s->types));

    struct sr_snapshot *snap = sr_cache_acquire(hub->api->router.cache);
    uint64_t now = sr_snapshot_version(snap);
    uint64_t services = sr_snapshot_services_version(snap);
    sr_snapshot_release(snap);
    s->last_id = now;
    if (park->has_since && park->since != now) {
        /* Newer than the cache: another registry's (or a restarted one's)
         * numbering. Older: replay, if the ring still has it all; or if
         * what it lost can only be metrics events (no service changed
         * since): a resync carries the services, it would not repair
         * those, and the next round brings them anyway. */
        if (park->since > now || !replay(s, park->since, park->since >= services))
            resync(s);
    }
    s->ended = hub->stopping;
    s->next = hub->clients;
    if (hub->clients)
        hub->clients->prev = s;
    hub->clients = s;
    if (hub->nclients++ == 0) {
        struct timeval tv = {hub->api->sse_heartbeat_sec, 0};
        event_add(hub->heartbeat_ev, &tv);
    }
    atomic_fetch_add_explicit(&hub->api->stats->sse_clients, 1, memory_order_relaxed);
    *index = s->last_id;
    return s;
}

size_t sr_api__sse_read(struct sr_api__sse *s, uint8_t *buf, size_t len, bool *eof)
{
    if (s->queued == 0 && s->behind && !s->ended)
        resync(s);
    size_t n = 0;
    while (n < len && s->head != NULL) {
        struct sr_api__frame *f = s->head->f;
        size_t k = f->len - s->head_off;
        if (k > len - n)
            k = len - n;
        memcpy(buf + n, f->data + s->head_off, k);
        n += k;
        s->head_off += k;
        s->queued -= k;
        if (s->head_off == f->len)
            pop(s);
    }
    *eof = s->ended && s->queued == 0;
    return n;
}

void sr_api__sse_free(struct sr_api__sse *s)
{
    if (s == NULL)
        return;
    struct sr_api__hub *hub = s->hub;
    kick_remove(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        hub->clients = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (--hub->nclients == 0)
        event_del(hub->heartbeat_ev);
    while (s->head != NULL)
        pop(s);
    sr_api__types_free(&s->types);
    atomic_fetch_sub_explicit(&hub->api->stats->sse_clients, 1, memory_order_relaxed);
    free(s);
}

/* ---- HTTP/1.1 transport ----------------------------------------------------------- */

struct h1sse {
    struct sr_api__conn *conn;
    struct sr_api__sse *sse;
};

static size_t h1_backlog(void *owner)
{
    const struct h1sse *x = owner;
    return evbuffer_get_length(bufferevent_get_output(x->conn->bev));
}

/* Moves queued frames to the output (by reference) while it is short. */
static void pump(struct h1sse *x)
{
    struct sr_api__sse *s = x->sse;
    struct evbuffer *out = bufferevent_get_output(x->conn->bev);
    if (s->queued == 0 && s->behind && !s->ended && evbuffer_get_length(out) == 0)
        resync(s);
    while (s->head != NULL && evbuffer_get_length(out) < H1_PUMP_BELOW) {
        struct sr_api__frame *f = s->head->f;
        const char *p = f->data + s->head_off;
        size_t k = f->len - s->head_off;
        int rc;
        if (k < COPY_BELOW) {
            rc = evbuffer_add(out, p, k);
        } else {
            rc = evbuffer_add_reference(out, p, k, sr_api__frame_release, frame_ref(f));
            if (rc != 0)
                sr_api__frame_unref(f);
        }
        if (rc != 0)
            break; /* out of memory: leave it queued */
        s->queued -= k;
        pop(s);
    }
}

static int h1_next(struct h1sse *x);

/* From a top-level callback: the connection writes what is queued now
 * (sr_api__conn_next pushes the output), which may close it. */
static void h1_kick(void *owner)
{
    struct h1sse *x = owner;
    pump(x);
    sr_api__conn_next(x->conn, h1_next(x));
}

static const struct sr_api__sse_ops h1_ops = {.kick = h1_kick, .backlog = h1_backlog};

static int h1_next(struct h1sse *x)
{
    struct sr_api__sse *s = x->sse;
    if (s->ended && s->queued == 0)
        return SR_API_CONN_FLUSH_CLOSE;
    return SR_API_CONN_KEEP;
}

static int h1_on_read(struct sr_api__conn *c)
{
    /* Nothing more is expected from the client: discard, but keep reading
     * so that its leaving (EOF) is seen at once. */
    evbuffer_drain(bufferevent_get_input(c->bev), (size_t)-1);
    return SR_API_CONN_KEEP;
}

static int h1_on_write(struct sr_api__conn *c)
{
    struct h1sse *x = c->impl;
    pump(x);
    return h1_next(x);
}

static int h1_on_eof(struct sr_api__conn *c)
{
    (void)c;
    return SR_API_CONN_CLOSE; /* the client went away */
}

static int h1_on_shutdown(struct sr_api__conn *c)
{
    struct h1sse *x = c->impl;
    x->sse->ended = true;
    pump(x);
    return SR_API_CONN_FLUSH_CLOSE;
}

static int h1_on_timeout(struct sr_api__conn *c, enum sr_api__timer kind)
{
    (void)kind;
    sr_api__conn_timer(c, SR_API_TIMER_NONE);
    return SR_API_CONN_KEEP;
}

static void h1_free(struct sr_api__conn *c)
{
    struct h1sse *x = c->impl;
    sr_api__sse_free(x->sse);
    free(x);
    c->impl = NULL;
}

static const struct sr_api__proto sse_h1 = {
    .name = "HTTP/1.1 event stream",
    .on_read = h1_on_read,
    .on_write = h1_on_write,
    .on_eof = h1_on_eof,
    .on_shutdown = h1_on_shutdown,
    .on_timeout = h1_on_timeout,
    .free = h1_free,
};

int sr_api__sse_h1_start(struct sr_api__conn *c, struct sr_api__park *park, int minor)
{
    (void)minor; /* a close-delimited body suits 1.0 and 1.1 alike */
    struct sr_api__park pk = *park;
    memset(park, 0, sizeof(*park)); /* ours now: the HTTP/1.1 state goes next */
    c->proto->free(c);
    struct h1sse *x = sr_calloc(1, sizeof(*x));
    x->conn = c;
    c->impl = x;
    c->proto = &sse_h1;
    uint64_t index = 0;
    x->sse = sr_api__sse_new(c->w, &pk, &h1_ops, x, &index);
    sr_api__park_clear(&pk);

    /* No Content-Length and no chunking: the body runs until the close
     * (RFC 9112 §6.3), which is what an endless stream is. */
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/event-stream\r\n"
                     "Date: %s\r\n"
                     "Server: " SR_API_SERVER_HEADER "\r\n"
                     "Cache-Control: no-cache\r\n"
                     "X-Registry-Index: %llu\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "Connection: close\r\n\r\n",
                     sr_api__date(c->w), (unsigned long long)index);
    if (n < 0 || (size_t)n >= sizeof(head) ||
        evbuffer_add(bufferevent_get_output(c->bev), head, (size_t)n) != 0)
        return SR_API_CONN_CLOSE;
    sr_log(SR_LOG_DEBUG, "api", "%s: event stream from revision %llu (h1)", c->peer,
           (unsigned long long)index);
    pump(x);
    sr_api__conn_timer(c, SR_API_TIMER_NONE);
    evbuffer_drain(bufferevent_get_input(c->bev), (size_t)-1);
    sr_api__conn_read(c, true);
    return h1_next(x);
}
