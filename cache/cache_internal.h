/* Shared between the cache's files only. */
#ifndef SR_CACHE_INTERNAL_H
#define SR_CACHE_INTERNAL_H

#include "cache/cache.h"
#include "cache/feed.h"

/* A ring of the most recent events, oldest first. Guarded by the cache. */
struct sr_ring {
    struct sr_event **v;
    size_t cap, start, n;
};

void sr_cache__ring_init(struct sr_ring *r, size_t cap);
void sr_cache__ring_free(struct sr_ring *r);
void sr_cache__ring_push(struct sr_ring *r, struct sr_event *ev); /* steals ev */
size_t sr_cache__ring_since(const struct sr_ring *r, uint64_t since, struct sr_event **out,
                            size_t max, uint64_t *oldest);

struct sr_event *sr_cache__event_for_change(const struct sr_change *ch, const char *ts,
                                            enum sr_commit_reason reason);
struct sr_event *sr_cache__event_resync(const struct sr_snapshot *snap, uint64_t rev,
                                        const char *ts);

#endif
