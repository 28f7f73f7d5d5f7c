/* Change events and the ring that keeps the recent ones. */
#include "cache/feed.h"
#include "cache/cache_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

struct sr_event {
    atomic_uint refs;
    uint64_t revision;
    char *key;
    char *body;
    size_t len;
};

struct sr_event *sr_event_new(uint64_t revision, const char *key, const char *body, size_t len)
{
    struct sr_event *ev = sr_calloc(1, sizeof(*ev));
    atomic_init(&ev->refs, 1);
    ev->revision = revision;
    ev->key = sr_strdup(key);
    ev->body = sr_strndup(body, len);
    ev->len = len;
    return ev;
}

uint64_t sr_event_revision(const struct sr_event *ev)
{
    return ev->revision;
}

const char *sr_event_key(const struct sr_event *ev)
{
    return ev->key;
}

const char *sr_event_body(const struct sr_event *ev, size_t *len)
{
    if (len)
        *len = ev->len;
    return ev->body;
}

struct sr_event *sr_event_incref(struct sr_event *ev)
{
    atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
    return ev;
}

void sr_event_release(struct sr_event *ev)
{
    if (ev == NULL || atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(ev->key);
    free(ev->body);
    free(ev);
}

/* ---- bodies ---------------------------------------------------------------- */

static struct sr_event *finish(struct sr_buf *b, uint64_t rev, const char *key)
{
    struct sr_event *ev = sr_calloc(1, sizeof(*ev));
    atomic_init(&ev->refs, 1);
    ev->revision = rev;
    ev->key = sr_strdup(key);
    ev->body = b->p;
    ev->len = b->len;
    return ev;
}

static void head(struct sr_buf *b, const char *key, const char *ts, uint64_t rev)
{
    char tmp[128];
    sr_buf_puts(b, "{\"event\":\"");
    sr_buf_puts(b, key); /* keys are service.*, metrics.<docker name>: no escaping needed */
    snprintf(tmp, sizeof(tmp), "\",\"timestamp\":\"%s\",\"cache_version\":%llu,", ts,
             (unsigned long long)rev);
    sr_buf_puts(b, tmp);
}

struct sr_event *sr_cache__event_for_change(const struct sr_change *ch, const char *ts,
                                            enum sr_commit_reason reason)
{
    struct sr_buf b = {0};
    char key[320];
    size_t len;
    const char *body = sr_svc_body(ch->svc, &len);
    switch (ch->kind) {
    case SR_CHANGE_ADDED:
        snprintf(key, sizeof(key), "service.added");
        break;
    case SR_CHANGE_UPDATED:
        snprintf(key, sizeof(key), "service.updated");
        break;
    case SR_CHANGE_REMOVED:
        snprintf(key, sizeof(key), "service.removed");
        break;
    case SR_CHANGE_METRICS:
        snprintf(key, sizeof(key), "metrics.%s", sr_svc_name(ch->svc));
        break;
    }
    head(&b, key, ts, ch->version);
    if (ch->kind == SR_CHANGE_METRICS) {
        /* Docker names are [A-Za-z0-9][A-Za-z0-9_.-]*: safe inside quotes. */
        sr_buf_puts(&b, "\"service\":\"");
        sr_buf_puts(&b, sr_svc_name(ch->svc));
        sr_buf_puts(&b, "\",\"metrics\":");
    } else {
        sr_buf_puts(&b, "\"service\":");
    }
    sr_buf_put(&b, body, len);
    /* POST /cache/clear: the service left the cache, not the swarm. */
    if (ch->kind == SR_CHANGE_REMOVED && reason == SR_COMMIT_CLEAR)
        sr_buf_puts(&b, ",\"cause\":\"cache_cleared\"");
    sr_buf_puts(&b, "}");
    return finish(&b, ch->version, key);
}

struct sr_event *sr_cache__event_resync(const struct sr_snapshot *snap, uint64_t rev,
                                        const char *ts)
{
    struct sr_buf b = {0};
    char tmp[64];
    head(&b, "services.updated", ts, rev);
    snprintf(tmp, sizeof(tmp), "\"count\":%zu,\"services\":[", sr_snapshot_count(snap));
    sr_buf_puts(&b, tmp);
    for (size_t i = 0; i < sr_snapshot_count(snap); i++) {
        size_t len;
        const char *body = sr_svc_body(sr_snapshot_at(snap, i), &len);
        if (i)
            sr_buf_puts(&b, ",");
        sr_buf_put(&b, body, len);
    }
    sr_buf_puts(&b, "]}");
    return finish(&b, rev, "services.updated");
}

struct sr_event *sr_snapshot_resync_event(const struct sr_snapshot *snap)
{
    char ts[40];
    sr_format_time(sr_now(), ts, sizeof(ts));
    return sr_cache__event_resync(snap, sr_snapshot_version(snap), ts);
}

/* ---- the ring -------------------------------------------------------------- */

void sr_cache__ring_init(struct sr_ring *r, size_t cap)
{
    r->cap = cap ? cap : 1;
    r->v = sr_calloc(r->cap, sizeof(*r->v));
    r->start = r->n = 0;
}

void sr_cache__ring_free(struct sr_ring *r)
{
    for (size_t i = 0; i < r->n; i++)
        sr_event_release(r->v[(r->start + i) % r->cap]);
    free(r->v);
    r->v = NULL;
}

void sr_cache__ring_push(struct sr_ring *r, struct sr_event *ev)
{
    if (r->n == r->cap) {
        sr_event_release(r->v[r->start]);
        r->v[r->start] = ev;
        r->start = (r->start + 1) % r->cap;
    } else {
        r->v[(r->start + r->n) % r->cap] = ev;
        r->n++;
    }
}

size_t sr_cache__ring_since(const struct sr_ring *r, uint64_t since, struct sr_event **out,
                            size_t max, uint64_t *oldest)
{
    *oldest = r->n ? r->v[r->start]->revision : 0;
    /* Revisions grow along the ring: binary search for the first > since. */
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[(r->start + mid) % r->cap]->revision <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = 0;
    for (size_t i = lo; i < r->n && k < max; i++)
        out[k++] = sr_event_incref(r->v[(r->start + i) % r->cap]);
    return k;
}
