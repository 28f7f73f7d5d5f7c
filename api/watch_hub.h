/* The per-worker hub shared by watch.c and sse.c (not for other files).
 *
 * Threads: `mu` guards the inbox, which the cache's writer threads fill
 * (watch.c on_events); everything else belongs to the worker's thread. */
#ifndef SR_API_WATCH_HUB_H
#define SR_API_WATCH_HUB_H

#include "api/api_internal.h"

struct sr_api__hub {
    struct sr_api__worker *w;
    struct sr_api *api;
    /* Inbox: events of every commit, in revision order (new references). */
    pthread_mutex_t mu;
    struct event *wake_ev; /* NULL once the hub is closed; under mu */
    struct sr_event **q;   /* under mu */
    size_t qn, qcap;
    bool overflow; /* the inbox hit SR_API_HUB_INBOX_MAX: resync everyone */
    /* Worker thread only. */
    struct sr_api__watcher *watchers; /* parked long-polls */
    struct sr_api__sse *clients;      /* SSE streams */
    struct sr_api__sse *kicks;        /* clients with new bytes to hand on */
    size_t nclients;
    struct event *heartbeat_ev;
    struct sr_api__frame *heartbeat;
    struct sr_api__frame *resync; /* the last resync_required built ... */
    uint64_t resync_v;            /* ... and its revision */
    bool stopping;
    uint64_t rng; /* xorshift state for the long-poll jitter */
};

/* Events a hub may hold before it stops queueing and makes every SSE
 * client resync (a worker that stalls must not grow memory forever). */
#define SR_API_HUB_INBOX_MAX 65536

#endif
