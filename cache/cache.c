/* cache: snapshots of the discovered services (see cache.h for the design).
 *
 * Writers serialise on write_mu, so a read-modify-swap of the current
 * snapshot never races another writer; readers only touch the rwlock. */
#include "cache/cache.h"
#include "cache/cache_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

#define MAX_LISTENERS 8

/* One immutable, refcounted JSON document with its bytes: a service record,
 * or the metrics of one service (then id/name are the service's). */
struct sr_svc {
    atomic_uint refs;
    char *id;
    char *name;
    json_t *doc;
    char *body;
    size_t body_len;
};

struct sr_snapshot {
    atomic_uint refs;
    uint64_t version;
    uint64_t services_version; /* the last commit that changed the services */
    size_t n;
    struct sr_svc **svcs; /* sorted by name */
    size_t nmets;
    struct sr_svc **mets; /* metrics of cached services, sorted by name */
    char *list_body;
    size_t list_len;
};

/* The next snapshot's content while a writer builds it (owns its refs). */
struct draft {
    struct sr_svc **svcs;
    size_t n;
    struct sr_svc **mets;
    size_t nmets;
};

struct listener {
    sr_cache_change_cb cb;
    void *arg;
};

struct event_listener {
    sr_cache_event_cb cb;
    void *arg;
};

struct sr_cache {
    pthread_rwlock_t lock;      /* guards `current` (the pointer only) */
    struct sr_snapshot *current;
    pthread_mutex_t write_mu;   /* one writer at a time */
    pthread_mutex_t stats_mu;   /* guards stats */
    struct sr_cache_stats stats;
    struct listener listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct event_listener elisteners[MAX_LISTENERS];
    size_t nelisteners;
    pthread_mutex_t feed_mu;    /* guards ring */
    struct sr_ring ring;
};

/* ---- services ---------------------------------------------------------- */

static struct sr_svc *entry_new(const char *id, const char *name, json_t *doc)
{
    if (id == NULL || name == NULL || *id == '\0' || *name == '\0' || !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    struct sr_svc *svc = sr_calloc(1, sizeof(*svc));
    atomic_init(&svc->refs, 1);
    svc->doc = doc;
    svc->id = sr_strdup(id);
    svc->name = sr_strdup(name);
    svc->body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    if (svc->body == NULL)
        abort(); /* only fails on OOM */
    svc->body_len = strlen(svc->body);
    return svc;
}

struct sr_svc *sr_svc_new(json_t *doc)
{
    return entry_new(json_string_value(json_object_get(doc, "id")),
                     json_string_value(json_object_get(doc, "name")), doc);
}

struct sr_svc *sr_svc_incref(struct sr_svc *svc)
{
    atomic_fetch_add_explicit(&svc->refs, 1, memory_order_relaxed);
    return svc;
}

void sr_svc_release(struct sr_svc *svc)
{
    if (svc == NULL)
        return;
    if (atomic_fetch_sub_explicit(&svc->refs, 1, memory_order_acq_rel) != 1)
        return;
    json_decref(svc->doc);
    free(svc->body);
    free(svc->id);
    free(svc->name);
    free(svc);
}

const char *sr_svc_id(const struct sr_svc *svc)
{
    return svc->id;
}

const char *sr_svc_name(const struct sr_svc *svc)
{
    return svc->name;
}

const json_t *sr_svc_doc(const struct sr_svc *svc)
{
    return svc->doc;
}

const char *sr_svc_body(const struct sr_svc *svc, size_t *len)
{
    if (len)
        *len = svc->body_len;
    return svc->body;
}

static int same_body(const struct sr_svc *a, const struct sr_svc *b)
{
    return a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0;
}

/* ---- snapshots ----------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    const struct sr_svc *x = *(struct sr_svc *const *)a, *y = *(struct sr_svc *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->id, y->id);
}

/* Takes ownership of the draft's arrays and references; sorts them and
 * serialises the list body without re-encoding each service. */
static struct sr_snapshot *snapshot_new(struct draft *d, uint64_t version,
                                        uint64_t services_version)
{
    struct sr_snapshot *s = sr_calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->version = version;
    s->services_version = services_version;
    s->n = d->n;
    s->svcs = d->svcs;
    s->nmets = d->nmets;
    s->mets = d->mets;
    size_t n = d->n;
    struct sr_svc **svcs = d->svcs;
    if (n > 1)
        qsort(svcs, n, sizeof(*svcs), cmp_name);
    if (s->nmets > 1)
        qsort(s->mets, s->nmets, sizeof(*s->mets), cmp_name);

    size_t cap = 96;
    for (size_t i = 0; i < n; i++)
        cap += svcs[i]->body_len + 1;
    char *p = sr_malloc(cap);
    size_t len = 0;
    memcpy(p, "{\"services\":[", 13);
    len = 13;
    for (size_t i = 0; i < n; i++) {
        if (i)
            p[len++] = ',';
        memcpy(p + len, svcs[i]->body, svcs[i]->body_len);
        len += svcs[i]->body_len;
    }
    /* The list's own revision, so a metrics round leaves its bytes (and
     * ETag) as they were. */
    int w = snprintf(p + len, cap - len, "],\"count\":%zu,\"cache_version\":%llu}", n,
                     (unsigned long long)services_version);
    len += (size_t)w;
    s->list_body = p;
    s->list_len = len;
    return s;
}

/* A draft with no services and no metrics (arrays allocated, as commit expects). */
static struct draft empty_draft(void)
{
    return (struct draft){.svcs = sr_calloc(1, sizeof(struct sr_svc *)),
                          .mets = sr_calloc(1, sizeof(struct sr_svc *))};
}

static void draft_free(struct draft *d)
{
    for (size_t i = 0; i < d->n; i++)
        sr_svc_release(d->svcs[i]);
    for (size_t i = 0; i < d->nmets; i++)
        sr_svc_release(d->mets[i]);
    free(d->svcs);
    free(d->mets);
}

static void snapshot_free(struct sr_snapshot *s)
{
    struct draft d = {s->svcs, s->n, s->mets, s->nmets};
    draft_free(&d);
    free(s->list_body);
    free(s);
}

void sr_snapshot_release(struct sr_snapshot *snap)
{
    if (snap == NULL)
        return;
    if (atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(snap);
}

struct sr_snapshot *sr_cache_acquire(struct sr_cache *cache)
{
    pthread_rwlock_rdlock(&cache->lock);
    struct sr_snapshot *s = cache->current;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&cache->lock);
    return s;
}

uint64_t sr_snapshot_version(const struct sr_snapshot *snap)
{
    return snap->version;
}

uint64_t sr_snapshot_services_version(const struct sr_snapshot *snap)
{
    return snap->services_version;
}

size_t sr_snapshot_count(const struct sr_snapshot *snap)
{
    return snap->n;
}

const struct sr_svc *sr_snapshot_at(const struct sr_snapshot *snap, size_t i)
{
    return i < snap->n ? snap->svcs[i] : NULL;
}

static const struct sr_svc *find_name(struct sr_svc *const *v, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid]->name, name);
        if (c == 0)
            return v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct sr_svc *sr_snapshot_find(const struct sr_snapshot *snap, const char *name)
{
    return find_name(snap->svcs, snap->n, name);
}

const struct sr_svc *sr_snapshot_metrics(const struct sr_snapshot *snap, const char *name)
{
    return find_name(snap->mets, snap->nmets, name);
}

size_t sr_snapshot_metrics_count(const struct sr_snapshot *snap)
{
    return snap->nmets;
}

const struct sr_svc *sr_snapshot_find_id(const struct sr_snapshot *snap, const char *id)
{
    for (size_t i = 0; i < snap->n; i++)
        if (strcmp(snap->svcs[i]->id, id) == 0)
            return snap->svcs[i];
    return NULL;
}

const char *sr_snapshot_list_body(const struct sr_snapshot *snap, size_t *len)
{
    if (len)
        *len = snap->list_len;
    return snap->list_body;
}

/* ---- writers ------------------------------------------------------------- */

/* A change list being built by a writer; entries hold references. */
struct changes {
    struct sr_change *v;
    size_t n, cap;
};

static void changes_push(struct changes *c, enum sr_change_kind kind, struct sr_svc *svc)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->v = sr_realloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n].kind = kind;
    c->v[c->n].version = 0;
    c->v[c->n].svc = sr_svc_incref(svc);
    c->n++;
}

static void changes_free(struct changes *c)
{
    for (size_t i = 0; i < c->n; i++)
        sr_svc_release((struct sr_svc *)c->v[i].svc);
    free(c->v);
}

/* Called with write_mu held. Numbers the changes, builds and swaps in the
 * new snapshot (taking ownership of the draft), updates the stats, tells
 * the listeners (write_mu still held, so they hear commits in order and
 * sr_cache_remove_event_listener can wait out a call), and releases
 * write_mu. A listener may read the cache, but must not write to it or
 * add or remove listeners. */
static void commit(struct sr_cache *cache, struct draft *d, struct changes *ch,
                   enum sr_commit_reason reason, int count_refresh)
{
    struct sr_snapshot *old = cache->current;
    uint64_t version = old->version;
    for (size_t i = 0; i < ch->n; i++)
        ch->v[i].version = ++version;
    /* A full refresh that changed something is itself an event
     * (services.updated, the whole list), with its own revision. */
    int resync = reason == SR_COMMIT_FULL_REFRESH && ch->n > 0;
    if (resync)
        version++;

    bool services_changed = false;
    for (size_t i = 0; i < ch->n; i++)
        services_changed |= ch->v[i].kind != SR_CHANGE_METRICS;
    struct sr_snapshot *next = NULL;
    if (ch->n > 0) {
        next = snapshot_new(d, version, services_changed ? version : old->services_version);
        atomic_fetch_add_explicit(&next->refs, 1, memory_order_relaxed); /* for listeners */
        pthread_rwlock_wrlock(&cache->lock);
        cache->current = next;
        pthread_rwlock_unlock(&cache->lock);
    } else {
        draft_free(d);
        old = NULL;
    }

    pthread_mutex_lock(&cache->stats_mu);
    for (size_t i = 0; i < ch->n; i++) {
        switch (ch->v[i].kind) {
        case SR_CHANGE_ADDED:
            cache->stats.added++;
            break;
        case SR_CHANGE_UPDATED:
            cache->stats.updated++;
            break;
        case SR_CHANGE_REMOVED:
            cache->stats.removed++;
            break;
        case SR_CHANGE_METRICS:
            cache->stats.metrics_updates++;
            break;
        }
    }
    if (reason == SR_COMMIT_CLEAR)
        cache->stats.clears++;
    if (count_refresh) {
        cache->stats.refreshes++;
        cache->stats.last_refresh = sr_now();
    }
    pthread_mutex_unlock(&cache->stats_mu);

    if (next != NULL) {
        /* Events are built and delivered while write_mu is still held, so
         * the ring and every listener see revisions strictly in order. */
        size_t nev = ch->n + (size_t)resync;
        struct sr_event **evs = sr_calloc(nev, sizeof(*evs));
        char ts[40];
        sr_format_time(sr_now(), ts, sizeof(ts));
        for (size_t i = 0; i < ch->n; i++)
            evs[i] = sr_cache__event_for_change(&ch->v[i], ts, reason);
        if (resync)
            evs[ch->n] = sr_cache__event_resync(next, version, ts);
        pthread_mutex_lock(&cache->feed_mu);
        for (size_t i = 0; i < nev; i++)
            sr_cache__ring_push(&cache->ring, sr_event_incref(evs[i]));
        pthread_mutex_unlock(&cache->feed_mu);

        for (size_t i = 0; i < cache->nlisteners; i++)
            cache->listeners[i].cb(ch->v, ch->n, reason, next, cache->listeners[i].arg);
        for (size_t i = 0; i < cache->nelisteners; i++)
            cache->elisteners[i].cb(evs, nev, cache->elisteners[i].arg);
        for (size_t i = 0; i < nev; i++)
            sr_event_release(evs[i]);
        free(evs);
    }
    pthread_mutex_unlock(&cache->write_mu);

    sr_snapshot_release(old);
    sr_snapshot_release(next);
}

static int cmp_id(const void *a, const void *b)
{
    const struct sr_svc *x = *(struct sr_svc *const *)a, *y = *(struct sr_svc *const *)b;
    return strcmp(x->id, y->id);
}

/* Copies into d the current metrics of every service d keeps (by id).
 * d->svcs must be sorted by id. */
static void carry_metrics(const struct sr_snapshot *cur, struct draft *d)
{
    d->mets = sr_calloc(cur->nmets ? cur->nmets : 1, sizeof(*d->mets));
    d->nmets = 0;
    for (size_t i = 0; i < cur->nmets; i++) {
        struct sr_svc *m = cur->mets[i];
        struct sr_svc key = {.id = m->id}, *kp = &key;
        if (bsearch(&kp, d->svcs, d->n, sizeof(*d->svcs), cmp_id) != NULL)
            d->mets[d->nmets++] = sr_svc_incref(m);
    }
}

/* A draft holding every current service except the one with `skip_id`. */
static void draft_from(const struct sr_snapshot *cur, const char *skip_id, size_t extra,
                       struct draft *d)
{
    d->svcs = sr_calloc(cur->n + extra + 1, sizeof(*d->svcs));
    d->n = 0;
    for (size_t i = 0; i < cur->n; i++)
        if (skip_id == NULL || strcmp(cur->svcs[i]->id, skip_id) != 0)
            d->svcs[d->n++] = sr_svc_incref(cur->svcs[i]);
}

size_t sr_cache_replace(struct sr_cache *cache, struct sr_svc **in, size_t n,
                        struct sr_cache_diff *diff)
{
    struct changes ch = {0};
    struct draft d = {0};
    d.svcs = sr_calloc(n ? n : 1, sizeof(*d.svcs));
    memcpy(d.svcs, in, n * sizeof(*d.svcs));
    qsort(d.svcs, n, sizeof(*d.svcs), cmp_id);
    /* Docker never repeats an id in one answer; if it did, keep the first. */
    for (size_t i = 0; i < n; i++) {
        if (d.n > 0 && strcmp(d.svcs[d.n - 1]->id, d.svcs[i]->id) == 0)
            sr_svc_release(d.svcs[i]);
        else
            d.svcs[d.n++] = d.svcs[i];
    }

    pthread_mutex_lock(&cache->write_mu);
    const struct sr_snapshot *cur = cache->current;
    struct sr_svc **old = sr_calloc(cur->n ? cur->n : 1, sizeof(*old));
    memcpy(old, cur->svcs, cur->n * sizeof(*old));
    qsort(old, cur->n, sizeof(*old), cmp_id);

    /* Merge the two id-sorted lists. */
    size_t i = 0, j = 0;
    struct sr_cache_diff df = {0};
    while (i < cur->n || j < d.n) {
        int c = i == cur->n ? 1 : j == d.n ? -1 : strcmp(old[i]->id, d.svcs[j]->id);
        if (c < 0) {
            changes_push(&ch, SR_CHANGE_REMOVED, old[i]);
            df.removed++;
            i++;
        } else if (c > 0) {
            changes_push(&ch, SR_CHANGE_ADDED, d.svcs[j]);
            df.added++;
            j++;
        } else {
            if (same_body(old[i], d.svcs[j])) {
                /* Keep the cached entry: same bytes, and readers may hold it. */
                sr_svc_release(d.svcs[j]);
                d.svcs[j] = sr_svc_incref(old[i]);
            } else {
                changes_push(&ch, SR_CHANGE_UPDATED, d.svcs[j]);
                df.updated++;
            }
            i++;
            j++;
        }
    }
    free(old);
    carry_metrics(cur, &d);
    if (diff)
        *diff = df;
    commit(cache, &d, &ch, SR_COMMIT_FULL_REFRESH, 1);
    size_t total = ch.n;
    changes_free(&ch);
    return total;
}

int sr_cache_upsert(struct sr_cache *cache, struct sr_svc *svc)
{
    struct changes ch = {0};
    struct draft d;
    pthread_mutex_lock(&cache->write_mu);
    const struct sr_snapshot *cur = cache->current;
    const struct sr_svc *prev = sr_snapshot_find_id(cur, svc->id);
    if (prev != NULL && same_body(prev, svc)) {
        pthread_mutex_unlock(&cache->write_mu);
        sr_svc_release(svc);
        return 0;
    }
    draft_from(cur, svc->id, 1, &d);
    d.svcs[d.n++] = svc;
    qsort(d.svcs, d.n, sizeof(*d.svcs), cmp_id);
    carry_metrics(cur, &d);
    changes_push(&ch, prev != NULL ? SR_CHANGE_UPDATED : SR_CHANGE_ADDED, svc);
    commit(cache, &d, &ch, SR_COMMIT_EVENT, 0);
    changes_free(&ch);
    return 1;
}

int sr_cache_remove(struct sr_cache *cache, const char *id)
{
    struct changes ch = {0};
    struct draft d;
    pthread_mutex_lock(&cache->write_mu);
    const struct sr_snapshot *cur = cache->current;
    const struct sr_svc *prev = sr_snapshot_find_id(cur, id);
    if (prev == NULL) {
        pthread_mutex_unlock(&cache->write_mu);
        return 0;
    }
    changes_push(&ch, SR_CHANGE_REMOVED, (struct sr_svc *)prev);
    draft_from(cur, id, 0, &d);
    qsort(d.svcs, d.n, sizeof(*d.svcs), cmp_id);
    carry_metrics(cur, &d);
    commit(cache, &d, &ch, SR_COMMIT_EVENT, 0);
    changes_free(&ch);
    return 1;
}

size_t sr_cache_clear(struct sr_cache *cache)
{
    struct changes ch = {0};
    pthread_mutex_lock(&cache->write_mu);
    const struct sr_snapshot *cur = cache->current;
    for (size_t i = 0; i < cur->n; i++)
        changes_push(&ch, SR_CHANGE_REMOVED, cur->svcs[i]);
    size_t n = cur->n;
    struct draft d = empty_draft();
    commit(cache, &d, &ch, SR_COMMIT_CLEAR, 0);
    changes_free(&ch);
    return n;
}

static int cmp_id_item(const void *a, const void *b)
{
    return strcmp((*(struct sr_metrics_item *const *)a)->service_id,
                  (*(struct sr_metrics_item *const *)b)->service_id);
}

/* Orders a batch's items (pointers) by service id, then by position, so the
 * last item for an id is the one that stays. */
static int cmp_item(const void *a, const void *b)
{
    const struct sr_metrics_item *x = *(struct sr_metrics_item *const *)a;
    const struct sr_metrics_item *y = *(struct sr_metrics_item *const *)b;
    int c = strcmp(x->service_id, y->service_id);
    return c ? c : (x < y ? -1 : x > y);
}

size_t sr_cache_set_metrics_batch(struct sr_cache *cache, struct sr_metrics_item *items, size_t n)
{
    struct changes ch = {0};
    struct draft d;
    struct sr_svc **byid = NULL, **entry = sr_calloc(n ? n : 1, sizeof(*entry));
    struct sr_metrics_item **order = sr_calloc(n ? n : 1, sizeof(*order));
    size_t stored = 0;
    pthread_mutex_lock(&cache->write_mu);
    const struct sr_snapshot *cur = cache->current;
    /* One id-sorted index of the services, so n items cost n log N, not n N. */
    byid = sr_calloc(cur->n ? cur->n : 1, sizeof(*byid));
    memcpy(byid, cur->svcs, cur->n * sizeof(*byid));
    qsort(byid, cur->n, sizeof(*byid), cmp_id);
    for (size_t i = 0; i < n; i++) {
        struct sr_metrics_item *it = &items[i];
        struct sr_svc key = {.id = (char *)it->service_id}, *kp = &key;
        struct sr_svc **svc = bsearch(&kp, byid, cur->n, sizeof(*byid), cmp_id);
        order[i] = it;
        if (svc == NULL) { /* left the cache meanwhile: nothing to attach it to */
            json_decref(it->doc);
            it->result = 0;
        } else if ((entry[i] = entry_new((*svc)->id, (*svc)->name, it->doc)) == NULL) {
            it->result = -1;
        } else {
            it->result = 1;
            stored++;
            changes_push(&ch, SR_CHANGE_METRICS, entry[i]);
        }
        it->doc = NULL;
    }
    free(byid);
    if (stored == 0) {
        pthread_mutex_unlock(&cache->write_mu);
        goto done;
    }

    /* The new metrics: the stored items (the last one per id), then every
     * current entry no item replaces. */
    qsort(order, n, sizeof(*order), cmp_item);
    draft_from(cur, NULL, 0, &d);
    d.mets = sr_calloc(cur->nmets + stored, sizeof(*d.mets));
    d.nmets = 0;
    size_t nkeep = 0; /* order[0..nkeep) = the stored items' last per id */
    for (size_t i = 0; i < n; i++) {
        if (order[i]->result != 1)
            continue;
        if (nkeep > 0 && strcmp(order[nkeep - 1]->service_id, order[i]->service_id) == 0)
            nkeep--;
        order[nkeep++] = order[i];
    }
    for (size_t i = 0; i < nkeep; i++)
        d.mets[d.nmets++] = sr_svc_incref(entry[order[i] - items]);
    for (size_t i = 0; i < cur->nmets; i++) {
        struct sr_metrics_item key = {.service_id = cur->mets[i]->id}, *kp = &key;
        if (bsearch(&kp, order, nkeep, sizeof(*order), cmp_id_item) == NULL)
            d.mets[d.nmets++] = sr_svc_incref(cur->mets[i]);
    }
    commit(cache, &d, &ch, SR_COMMIT_METRICS, 0);
done:
    changes_free(&ch);
    for (size_t i = 0; i < n; i++)
        sr_svc_release(entry[i]);
    free(entry);
    free(order);
    return stored;
}

int sr_cache_set_metrics(struct sr_cache *cache, const char *service_id, json_t *doc)
{
    struct sr_metrics_item it = {.service_id = service_id, .doc = doc};
    sr_cache_set_metrics_batch(cache, &it, 1);
    return it.result;
}

/* Listeners are called with write_mu held (commit), so taking it here
 * means no call is in progress and none starts on a half-changed table. */
int sr_cache_add_event_listener(struct sr_cache *cache, sr_cache_event_cb cb, void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&cache->write_mu);
    if (cache->nelisteners < MAX_LISTENERS) {
        cache->elisteners[cache->nelisteners].cb = cb;
        cache->elisteners[cache->nelisteners].arg = arg;
        cache->nelisteners++;
        rc = 0;
    }
    pthread_mutex_unlock(&cache->write_mu);
    return rc;
}

int sr_cache_remove_event_listener(struct sr_cache *cache, sr_cache_event_cb cb, void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&cache->write_mu);
    for (size_t i = 0; i < cache->nelisteners; i++) {
        if (cache->elisteners[i].cb != cb || cache->elisteners[i].arg != arg)
            continue;
        /* Keep the order: listeners hear a commit in registration order. */
        memmove(&cache->elisteners[i], &cache->elisteners[i + 1],
                (cache->nelisteners - i - 1) * sizeof(cache->elisteners[0]));
        cache->nelisteners--;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&cache->write_mu);
    return rc;
}

size_t sr_cache_event_listener_count(struct sr_cache *cache)
{
    pthread_mutex_lock(&cache->write_mu);
    size_t n = cache->nelisteners;
    pthread_mutex_unlock(&cache->write_mu);
    return n;
}

void sr_cache_set_log_size(struct sr_cache *cache, size_t n)
{
    pthread_mutex_lock(&cache->feed_mu);
    sr_cache__ring_free(&cache->ring);
    sr_cache__ring_init(&cache->ring, n);
    pthread_mutex_unlock(&cache->feed_mu);
}

size_t sr_cache_events_since(struct sr_cache *cache, uint64_t since, struct sr_event **out,
                             size_t max, uint64_t *oldest)
{
    pthread_mutex_lock(&cache->feed_mu);
    size_t n = sr_cache__ring_since(&cache->ring, since, out, max, oldest);
    pthread_mutex_unlock(&cache->feed_mu);
    return n;
}

uint64_t sr_cache_version(struct sr_cache *cache)
{
    struct sr_snapshot *s = sr_cache_acquire(cache);
    uint64_t v = s->version;
    sr_snapshot_release(s);
    return v;
}

int sr_cache_add_listener(struct sr_cache *cache, sr_cache_change_cb cb, void *arg)
{
    if (cache->nlisteners == MAX_LISTENERS)
        return -1;
    cache->listeners[cache->nlisteners].cb = cb;
    cache->listeners[cache->nlisteners].arg = arg;
    cache->nlisteners++;
    return 0;
}

/* ---- bookkeeping --------------------------------------------------------- */

void sr_cache_set_source(struct sr_cache *cache, const struct sr_source_status *st)
{
    pthread_mutex_lock(&cache->stats_mu);
    cache->stats.source = *st;
    pthread_mutex_unlock(&cache->stats_mu);
}

/* Up to 10 s: a one-shot container stats call takes about 1-2 s (Docker
 * waits for a second sample). */
const double sr_source_call_bounds[SR_CALL_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25,  0.5,   1,    2.5,   5,    10};

const char *sr_source_call_name(enum sr_source_call c)
{
    static const char *const names[SR_CALL_COUNT] = {
        "ping", "version", "info", "services", "tasks", "container_stats", "events", "other",
    };
    return (unsigned)c < SR_CALL_COUNT ? names[c] : "other";
}

void sr_cache_count_source_call(struct sr_cache *cache, enum sr_source_call kind, bool error,
                                double seconds)
{
    if ((unsigned)kind >= SR_CALL_COUNT)
        kind = SR_CALL_OTHER;
    pthread_mutex_lock(&cache->stats_mu);
    struct sr_source_calls *c = &cache->stats.calls;
    c->calls[kind]++;
    if (error)
        c->errors[kind]++;
    if (seconds >= 0) {
        c->timed[kind]++;
        c->seconds[kind] += seconds;
        for (int i = 0; i < SR_CALL_BUCKETS; i++)
            if (seconds <= sr_source_call_bounds[i])
                c->le[kind][i]++;
    }
    pthread_mutex_unlock(&cache->stats_mu);
}

void sr_cache_get_stats(struct sr_cache *cache, struct sr_cache_stats *out)
{
    struct sr_snapshot *s = sr_cache_acquire(cache);
    pthread_mutex_lock(&cache->stats_mu);
    *out = cache->stats;
    pthread_mutex_unlock(&cache->stats_mu);
    out->version = s->version;
    out->services = s->n;
    out->metrics = s->nmets;
    sr_snapshot_release(s);
}

/* ---- lifecycle ----------------------------------------------------------- */

struct sr_cache *sr_cache_new(void)
{
    struct sr_cache *cache = sr_calloc(1, sizeof(*cache));
    pthread_rwlock_init(&cache->lock, NULL);
    pthread_mutex_init(&cache->write_mu, NULL);
    pthread_mutex_init(&cache->stats_mu, NULL);
    pthread_mutex_init(&cache->feed_mu, NULL);
    sr_cache__ring_init(&cache->ring, SR_CACHE_DEFAULT_LOG_SIZE);
    struct draft d = empty_draft();
    cache->current = snapshot_new(&d, 0, 0);
    return cache;
}

void sr_cache_set_base_version(struct sr_cache *cache, uint64_t base)
{
    struct draft d = empty_draft();
    sr_snapshot_release(cache->current);
    cache->current = snapshot_new(&d, base, base);
}

void sr_cache_free(struct sr_cache *cache)
{
    if (cache == NULL)
        return;
    sr_snapshot_release(cache->current);
    pthread_rwlock_destroy(&cache->lock);
    pthread_mutex_destroy(&cache->write_mu);
    pthread_mutex_destroy(&cache->stats_mu);
    sr_cache__ring_free(&cache->ring);
    pthread_mutex_destroy(&cache->feed_mu);
    free(cache);
}
