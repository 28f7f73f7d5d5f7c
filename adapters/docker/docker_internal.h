/* The adapter object, shared by docker.c (lifecycle, resync queue, the full
 * sync state machine), events.c (the /events stream and per-service
 * refreshes) and collect.c (metrics rounds). Internal to adapters/docker.
 *
 * Fields under "any thread" are guarded by mu; every other field belongs to
 * the docker thread once it runs (before sr_docker_start and after the join,
 * to the main thread). */
#ifndef SR_DOCKER_INTERNAL_H
#define SR_DOCKER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapters/docker/docker.h"
#include "adapters/docker/linesplit.h"
#include "adapters/docker/url.h"
#include "cache/cache.h"

#define SR_DOCKER_MAX_API "1.47"    /* newest API version this client speaks */
#define SR_DOCKER_MIN_API_MINOR 41  /* 1.41 = Docker 20.10: ServiceStatus */
#define SR_DOCKER_BACKOFF_MAX 30.0  /* seconds */
#define SR_DOCKER_STREAM_WAIT 3.0   /* how long a sync waits for /events to open */
#define SR_DOCKER_NODE_DEBOUNCE 1.0 /* node events -> one full resync */
#define SR_DOCKER_MAX_REFRESHES 8   /* per-service refreshes in flight */
#define SR_DOCKER_MAX_PENDING 256   /* more pending ids than this: full resync */
#define SR_DOCKER_DEDUPE 16         /* keys kept for the newest timeNano */
#define SR_DOCKER_SETTLE_POLLS 5    /* follow-ups after an event: 0.5, 1, 2, 4, 8 s */
#define SR_DOCKER_STATS_FLIGHT 64   /* stats calls in flight, all metrics rounds together */
#define SR_DOCKER_STATS_TIMEOUT 10  /* seconds, one GET /containers/{id}/stats */
#define SR_DOCKER_METRICS_BATCH 0.1 /* s: a periodic round stores at most this often */

struct event;
struct event_base;
struct sr_http;
struct sr_http_req;
struct sr_sockwatch;

struct sr_docker__resync {
    sr_docker_done_cb cb;
    void *arg;
    struct sr_docker__resync *next;
};

/* Where the full sync is. */
enum sr_docker__step {
    SR_DOCKER_STEP_IDLE = 0,
    SR_DOCKER_STEP_PING,
    SR_DOCKER_STEP_VERSION,
    SR_DOCKER_STEP_INFO,
    SR_DOCKER_STEP_STREAM, /* waiting for /events to open (or fail) */
    SR_DOCKER_STEP_LIST,
};

enum sr_docker__stream {
    SR_DOCKER_STREAM_IDLE = 0,
    SR_DOCKER_STREAM_CONNECTING,
    SR_DOCKER_STREAM_OPEN,
};

/* One service id to re-GET because of an event. */
struct sr_docker__refresh {
    struct sr_docker *d;
    char id[72];
    struct sr_http_req *req; /* in flight, or NULL */
    bool again;              /* (re)run when not in flight */
    bool after_list;         /* re-run once the full list in flight commits */
    int settle_left;         /* follow-up polls left while running != desired */
    int settle_step;         /* polls done, for the delay */
    double due;              /* sr_mono() time of the next follow-up, 0 = none */
    bool expect_next;        /* a task event came: the next GET starts expect_move */
    bool expect_move;        /* not settled until an answer moves the running count */
    struct sr_docker__refresh *next;
};

/* One sr_docker_collect_metrics call, queued or waiting for its round. */
struct sr_docker__collect_req {
    char service_id[72];
    sr_docker_done_cb cb;
    void *arg;
    struct sr_docker__collect_req *next;
};

struct sr_docker__round; /* collect.c */

struct sr_docker__event_key {
    char type[16];
    char action[48];
    char actor[72];
};

struct sr_docker {
    struct sr_docker__endpoint ep;
    char *base_url; /* as configured, for messages */
    unsigned refresh_sec;
    unsigned metrics_sec;
    struct sr_cache *cache;

    /* any thread */
    pthread_mutex_t mu;
    struct sr_docker__resync *queue;       /* newest first */
    struct sr_docker__collect_req *mqueue; /* newest first */
    bool stopping;

    /* main thread */
    bool started, joined;
    pthread_t thread;

    /* docker thread */
    struct event_base *base;
    struct event *wake_ev;      /* event_active from any thread */
    struct event *sync_timer;   /* next full sync (refresh or retry) */
    struct event *wait_timer;   /* STEP_STREAM: give up waiting; also "go on" */
    struct event *work_ev;      /* start pending per-service refreshes */
    struct event *node_timer;   /* node-event debounce */
    struct event *settle_timer; /* follow-up refreshes of converging services */
    struct sr_http *http;
    struct sr_sockwatch *sockwatch; /* unix socket re-created: retry now */
    unsigned seed;

    enum sr_docker__step step;
    struct sr_http_req *step_req;
    bool negotiated;
    char api[16];
    struct sr_docker__resync *waiting;  /* answered by the next sync */
    struct sr_docker__resync *inflight; /* answered by the running sync */
    bool sync_wanted;                   /* an internal reason for another sync */
    double backoff;                     /* next retry delay (before jitter) */
    enum sr_source_state last_failure;  /* of the previous failed sync */
    struct sr_source_status status;     /* what the cache was last told */

    enum sr_docker__stream stream;
    struct sr_http_req *stream_req;
    struct sr_linesplit split;
    int64_t resume_ns; /* since= for the next connection; 0 = live only */
    int64_t last_ns;   /* newest timeNano seen */
    struct sr_docker__event_key seen[SR_DOCKER_DEDUPE]; /* events at last_ns */
    size_t nseen;
    double stream_backoff;  /* next reconnect delay (before jitter) */
    double stream_retry_at; /* sr_mono() time; 0 when the stream is fine */
    double stream_opened_at;
    uint64_t stream_events; /* valid events on this connection */
    uint64_t bad_lines;
    uint64_t dropped_seen; /* split.dropped already logged */
    struct sr_docker__refresh *refreshes;
    /* "id\nvalue" of the services whose autoscaler.enabled was neither true
     * nor false at the last full refresh: warned about once per value. */
    char **bad_enabled;
    size_t nbad_enabled;
    size_t nrefreshes, nflight;

    /* metrics (collect.c) */
    struct event *metrics_timer;     /* next periodic round */
    char node_id[72];                /* /info Swarm.NodeID: which tasks are local */
    bool metrics_begun;              /* periodic rounds started (after the first sync) */
    bool full_round;                 /* a periodic round runs */
    struct sr_docker__round *rounds; /* running, oldest first */
    size_t stats_flight;             /* stats calls in flight */
    char metrics_error[256];         /* last periodic round failure, logged once */
};

/* docker.c */
void sr_docker__publish(struct sr_docker *d);        /* d->status -> cache */
/* Request queues fed from other threads: lock d->mu and return true, or
 * return false (unlocked) when the adapter is stopping; after pushing, wake
 * the loop and unlock. The wake happens under mu: stop sets `stopping` under
 * it before the base can go away. */
bool sr_docker__queue_lock(struct sr_docker *d);
void sr_docker__queue_wake_unlock(struct sr_docker *d);
void sr_docker__want_sync(struct sr_docker *d);      /* a full sync soon (coalesced) */
void sr_docker__stream_settled(struct sr_docker *d); /* opened or failed */
double sr_docker__jitter(struct sr_docker *d, double base);
/* Docker's error message of a failed answer, or a prefix of its body. */
void sr_docker__error_text(const char *body, size_t len, char *out, size_t outlen);

/* events.c */
/* Opens /events unless it is open or opening: 0, or -1 when it could not
 * even start. */
int sr_docker__events_start(struct sr_docker *d);
/* A full sync ended: refreshes marked during its list run again. */
void sr_docker__events_list_done(struct sr_docker *d);
void sr_docker__events_teardown(struct sr_docker *d); /* after http is freed */
void sr_docker__on_work(int fd, short kind, void *arg);
void sr_docker__on_node_timer(int fd, short kind, void *arg);
void sr_docker__on_settle_timer(int fd, short kind, void *arg);

/* collect.c */
/* A full sync committed: the periodic rounds start with the first one. */
void sr_docker__metrics_synced(struct sr_docker *d);
/* Requests taken off mqueue, in arrival order (the list is taken over). */
void sr_docker__metrics_requests(struct sr_docker *d, struct sr_docker__collect_req *list);
void sr_docker__on_metrics_timer(int fd, short kind, void *arg);
/* Answers and frees a request list (cb(status) for each). */
void sr_docker__collect_answer(struct sr_docker__collect_req *list, int status);
/* Stopping, after http is freed: fails what waits (-1), frees the rounds. */
void sr_docker__metrics_teardown(struct sr_docker *d);

#endif
