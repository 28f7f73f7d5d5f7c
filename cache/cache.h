/* cache: the registry's in-memory state, shared by every thread.
 *
 * DESIGN
 * - Services live in immutable, reference-counted snapshots. A writer builds
 *   the next snapshot with no lock held, swaps the pointer under the write
 *   lock, and releases the old one outside it. Readers take a reference under
 *   the read lock (a few instructions) and never wait on Docker.
 * - A snapshot holds each service as a struct sr_svc (itself refcounted and
 *   immutable, so a one-service change shares the other entries), the service
 *   list sorted by name, and pre-serialised JSON bodies the API sends as is.
 * - Every change (service added / updated / removed, cleared) bumps the
 *   version by one. Listeners registered with sr_cache_add_listener hear about
 *   each commit, on the writer's thread, after the swap.
 * - Mutable bookkeeping (counters, the Docker source status) sits apart from
 *   snapshots behind a small mutex.
 *
 * Unless stated otherwise, every function is safe to call from any thread and
 * never blocks on I/O. */
#ifndef SR_CACHE_H
#define SR_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/feed.h"

struct sr_cache;
struct sr_snapshot;
struct sr_svc;

/* ---- services ---------------------------------------------------------- */

/* Builds a service entry from its API representation. Steals `doc`, which
 * must be an object with string members "id" and "name"; the entry keeps it
 * unmodified for its whole life. Returns a new reference (refs = 1), or NULL
 * (and decrefs doc) when id or name is missing. */
struct sr_svc *sr_svc_new(json_t *doc);
struct sr_svc *sr_svc_incref(struct sr_svc *svc);
void sr_svc_release(struct sr_svc *svc); /* NULL is a no-op */

/* Borrowed views, valid while the caller holds a reference. */
const char *sr_svc_id(const struct sr_svc *svc);
const char *sr_svc_name(const struct sr_svc *svc);
/* The API representation. Read-only: never modify or json_dumps it from a
 * reader thread; use sr_svc_body for the bytes. */
const json_t *sr_svc_doc(const struct sr_svc *svc);
/* Compact JSON of the doc (no trailing newline). */
const char *sr_svc_body(const struct sr_svc *svc, size_t *len);

/* ---- snapshots (readers) ----------------------------------------------- */

/* Takes a reference to the current snapshot. Never NULL. */
struct sr_snapshot *sr_cache_acquire(struct sr_cache *cache);
void sr_snapshot_release(struct sr_snapshot *snap); /* NULL is a no-op */

uint64_t sr_snapshot_version(const struct sr_snapshot *snap);
/* The revision of the latest change to the services themselves (added,
 * updated, removed, cleared, a full refresh): metrics commits leave it. The
 * list body's "cache_version" is this one. <= sr_snapshot_version. */
uint64_t sr_snapshot_services_version(const struct sr_snapshot *snap);
size_t sr_snapshot_count(const struct sr_snapshot *snap);
/* i-th service in name order (borrowed). */
const struct sr_svc *sr_snapshot_at(const struct sr_snapshot *snap, size_t i);
/* Exact-name lookup (borrowed), or NULL. */
const struct sr_svc *sr_snapshot_find(const struct sr_snapshot *snap, const char *name);
/* Lookup by full Docker service ID (borrowed), or NULL. */
const struct sr_svc *sr_snapshot_find_id(const struct sr_snapshot *snap, const char *id);
/* Metrics of the service with that exact name (borrowed), or NULL. The
 * entry's doc/body are the metrics document; its id/name are the service's. */
const struct sr_svc *sr_snapshot_metrics(const struct sr_snapshot *snap, const char *name);
size_t sr_snapshot_metrics_count(const struct sr_snapshot *snap);
/* Body of GET /services:
 *   {"services":[...],"count":N,"cache_version":V}, V the services version */
const char *sr_snapshot_list_body(const struct sr_snapshot *snap, size_t *len);

/* ---- writers ----------------------------------------------------------- */

enum sr_change_kind {
    SR_CHANGE_ADDED = 1,
    SR_CHANGE_UPDATED = 2,
    SR_CHANGE_REMOVED = 3,
    SR_CHANGE_METRICS = 4, /* svc is the new metrics entry */
};

struct sr_change {
    enum sr_change_kind kind;
    uint64_t version;         /* the revision this change got */
    const struct sr_svc *svc; /* new entry, or the removed one (borrowed) */
};

enum sr_commit_reason {
    SR_COMMIT_FULL_REFRESH = 1, /* sr_cache_replace */
    SR_COMMIT_EVENT = 2,        /* sr_cache_upsert / sr_cache_remove */
    SR_COMMIT_CLEAR = 3,        /* sr_cache_clear */
    SR_COMMIT_METRICS = 4,      /* sr_cache_set_metrics */
};

/* Called on the writer's thread after each commit that changed something,
 * with the cache's writer lock held (so calls arrive in revision order) but
 * no reader lock: a listener may read the cache, must never write to it, and
 * must not block. `changes` and the entries they point to are valid only
 * during the call (take a reference to keep one). */
typedef void (*sr_cache_change_cb)(const struct sr_change *changes, size_t n,
                                   enum sr_commit_reason reason,
                                   const struct sr_snapshot *snap, void *arg);

/* Registers a listener. Call before any writer thread starts. Returns 0, or
 * -1 when the (small, fixed) listener table is full. */
int sr_cache_add_listener(struct sr_cache *cache, sr_cache_change_cb cb, void *arg);

/* ---- change feed (see feed.h) ------------------------------------------------ */

#define SR_CACHE_DEFAULT_LOG_SIZE 4096

/* Called like a change listener, with the events of one commit in revision
 * order (borrowed: incref to keep). A full refresh that changed anything
 * ends with one services.updated event of its own revision. */
typedef void (*sr_cache_event_cb)(struct sr_event *const *events, size_t n, void *arg);

/* Registers an event listener; it hears commits from the next one on. Safe
 * while writers run (it takes the writer lock: never call it from a
 * listener). Returns 0, or -1 when the (small, fixed) table is full. */
int sr_cache_add_event_listener(struct sr_cache *cache, sr_cache_event_cb cb, void *arg);

/* Removes the listener registered with exactly this cb and arg. Safe while
 * writers run: when it returns, no call to it is in progress and none will
 * follow, so arg may be freed. Must not be called from a listener. Returns
 * 0, or -1 when no such listener is registered. */
int sr_cache_remove_event_listener(struct sr_cache *cache, sr_cache_event_cb cb, void *arg);

/* How many event listeners are registered (for tests and diagnostics). */
size_t sr_cache_event_listener_count(struct sr_cache *cache);

/* How many recent events the ring keeps (CHANGE_LOG_SIZE). Call before any
 * writer thread starts; drops what the ring held. */
void sr_cache_set_log_size(struct sr_cache *cache, size_t n);

/* Copies (with a new reference each) up to `max` events with revision >
 * `since`, oldest first, into out. *oldest = the oldest revision the ring
 * still holds (0 if empty): when since + 1 < *oldest, events were lost to
 * the ring and the caller must resync. */
size_t sr_cache_events_since(struct sr_cache *cache, uint64_t since, struct sr_event **out,
                             size_t max, uint64_t *oldest);

/* A services.updated event holding every record of `snap`, with the
 * snapshot's version as revision (new reference). For subscribers that must
 * resync: the publisher after drops, SSE clients behind the ring. */
struct sr_event *sr_snapshot_resync_event(const struct sr_snapshot *snap);

/* Makes the empty cache start at revision `base` instead of 0. Call before
 * any writer or reader. The registry passes its start time in
 * microseconds, so a restarted registry never reuses a revision: an ETag
 * or long-poll index from before the restart cannot match a newer state. */
void sr_cache_set_base_version(struct sr_cache *cache, uint64_t base);

/* The current version (revision). */
uint64_t sr_cache_version(struct sr_cache *cache);

struct sr_cache_diff {
    size_t added, updated, removed;
};

/* Full refresh: the cache becomes exactly `svcs`. Steals the n references
 * (and the array stays the caller's). Entries whose body is byte-identical to
 * the cached one are kept as they were. Fills *diff when non-NULL. Counts one
 * refresh and records its time. Returns the number of changes. */
size_t sr_cache_replace(struct sr_cache *cache, struct sr_svc **svcs, size_t n,
                        struct sr_cache_diff *diff);

/* One service changed: adds it or replaces the entry with the same id
 * (steals the reference). Returns 1 if the cache changed, 0 if identical. */
int sr_cache_upsert(struct sr_cache *cache, struct sr_svc *svc);

/* One service left (or lost its label). Returns 1 if it was cached, else 0. */
int sr_cache_remove(struct sr_cache *cache, const char *id);

/* Empties the cache (services and their metrics). Returns how many services
 * it held. */
size_t sr_cache_clear(struct sr_cache *cache);

/* Replaces the metrics of the cached service `service_id` with `doc`
 * (stolen). Metrics follow their service: they leave with it, and a removed
 * or clear()ed service loses them. Returns 1 if stored, 0 when the service is
 * not cached (doc dropped), -1 if doc is not an object. Every call is one
 * change (SR_CHANGE_METRICS), even when the numbers are the same, since the
 * sample time moved. */
int sr_cache_set_metrics(struct sr_cache *cache, const char *service_id, json_t *doc);

/* One item of a metrics batch: the caller fills service_id and doc (stolen),
 * the cache sets result as sr_cache_set_metrics would return it. */
struct sr_metrics_item {
    const char *service_id;
    json_t *doc;
    int result;
};

/* Stores many services' metrics in one commit: one snapshot rebuild for
 * the lot, where one sr_cache_set_metrics per service rebuilds it each time
 * (a round over N services would cost N^2). Every stored item is still its
 * own change, with its own revision and metrics.{name} event, in item order;
 * for an id given twice the later item is what stays. Returns how many were
 * stored. */
size_t sr_cache_set_metrics_batch(struct sr_cache *cache, struct sr_metrics_item *items,
                                  size_t n);

/* ---- bookkeeping --------------------------------------------------------- */

/* What the Docker adapter reports about its connection. The cache only
 * stores it, so /health and /cache/stats can show it. */
enum sr_source_state {
    SR_SOURCE_CONNECTING = 0, /* not yet answered */
    SR_SOURCE_CONNECTED = 1,  /* reachable, and an active swarm manager */
    SR_SOURCE_UNREACHABLE = 2,/* socket missing, refused, timeouts */
    SR_SOURCE_NOT_MANAGER = 3,/* reachable, but not an active swarm manager */
    SR_SOURCE_ERROR = 4,      /* reachable, but answers we cannot use */
};

struct sr_source_status {
    enum sr_source_state state;
    char reason[256];      /* human-readable, "" when connected */
    char api_version[16];  /* negotiated, e.g. "1.41", "" before */
    char engine_version[64];
    bool events_connected; /* the /events stream is up */
    double last_event_time;/* Unix seconds of the last event seen, 0 if none */
    uint64_t events_received;
};

void sr_cache_set_source(struct sr_cache *cache, const struct sr_source_status *st);

/* What a call to the source (Docker's API) was for, for /metrics. */
enum sr_source_call {
    SR_CALL_PING,
    SR_CALL_VERSION,
    SR_CALL_INFO,
    SR_CALL_SERVICES,
    SR_CALL_TASKS,
    SR_CALL_CONTAINER_STATS,
    SR_CALL_EVENTS, /* the event stream: no duration (it lasts) */
    SR_CALL_OTHER,
    SR_CALL_COUNT
};
/* "ping", "version", ..., "container_stats", "events", "other". */
const char *sr_source_call_name(enum sr_source_call c);

/* Upper bounds (seconds) of the call duration histogram's buckets; the
 * +Inf bucket is the count. */
#define SR_CALL_BUCKETS 12
extern const double sr_source_call_bounds[SR_CALL_BUCKETS];

struct sr_source_calls {
    uint64_t calls[SR_CALL_COUNT];  /* finished calls */
    uint64_t errors[SR_CALL_COUNT]; /* ... that failed */
    /* Durations of the finished calls that have one: */
    uint64_t timed[SR_CALL_COUNT];
    double seconds[SR_CALL_COUNT];
    uint64_t le[SR_CALL_COUNT][SR_CALL_BUCKETS]; /* cumulative, as Prometheus wants */
};

/* Counts one finished call to the source; error = it failed (transport
 * error or HTTP status >= 400); seconds < 0 when it has no meaningful
 * duration (a stream). */
void sr_cache_count_source_call(struct sr_cache *cache, enum sr_source_call kind, bool error,
                                double seconds);

struct sr_cache_stats {
    uint64_t version;
    size_t services;
    size_t metrics;           /* services with a metrics entry */
    uint64_t metrics_updates; /* sr_cache_set_metrics calls stored */
    uint64_t refreshes;       /* full refreshes done */
    double last_refresh;      /* Unix seconds, 0 = never */
    uint64_t added, updated, removed, clears;
    struct sr_source_calls calls; /* Docker API calls, by kind */
    struct sr_source_status source;
};

void sr_cache_get_stats(struct sr_cache *cache, struct sr_cache_stats *out);

/* ---- lifecycle ----------------------------------------------------------- */

struct sr_cache *sr_cache_new(void);
/* Call after every thread using the cache has stopped. Outstanding snapshot
 * references stay valid until released. NULL is a no-op. */
void sr_cache_free(struct sr_cache *cache);

#endif
