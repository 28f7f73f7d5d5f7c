/* api: the HTTP server that exposes the cache.
 *
 * DESIGN
 * - One listening socket. Each accepted connection is HTTP/2 with prior
 *   knowledge if its first 24 bytes are the connection preface
 *   ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RFC 9113 §3.4), otherwise HTTP/1.1
 *   with keep-alive. HTTP/2 runs on an nghttp2 server session.
 * - The server runs on API_THREADS worker threads (default 1), each with its
 *   own event base; worker 0 accepts and hands connections round-robin.
 *   Handlers only read cache snapshots: a response holds a snapshot
 *   reference until its last byte is written, and sends the snapshot's
 *   pre-serialised bytes by reference (no copy, no re-serialisation).
 * - Requests that need another thread (POST /cache/refresh, POST
 *   /services/{name}/metrics) are parked: the hook's completion is
 *   marshalled back to the worker that parked it before answering.
 * - Limits (struct sr_api_opts): connections over max_connections get 503 /
 *   GOAWAY; a request head must complete within header_timeout_sec; idle
 *   connections close after idle_timeout_sec; a client that does not read
 *   stops being read (its memory stays bounded).
 * - Watchers (long-polls with ?index=&wait=, GET /events/stream) are parked
 *   on the event loop too; the cache's change listener wakes them.
 */
#ifndef SR_API_H
#define SR_API_H

#include <jansson.h>
#include <stdint.h>

struct sr_cache;
struct sr_api;

typedef void (*sr_api_done_cb)(int status, void *arg);

/* Work the API asks of other modules. Each hook may be NULL (the endpoint
 * then answers 503). Hooks are called on the API thread and must not block.
 * Contract of the asynchronous ones (resync, collect_metrics): a non-zero
 * return means `done` will never be called (the API answers 503 at once);
 * otherwise `done` is called exactly once, from any thread, status 0 on
 * success, anything else on failure. */
struct sr_api_hooks {
    /* A full resync with Docker (POST /cache/refresh). */
    int (*resync)(void *ctx, sr_api_done_cb done, void *arg);
    /* Collects the metrics of one cached service now (POST
     * /services/{name}/metrics); the fresh metrics are in the cache when
     * done(0) runs. */
    int (*collect_metrics)(void *ctx, const char *service_id, sr_api_done_cb done, void *arg);
    void *ctx; /* passed to resync and collect_metrics */

    /* The publisher's status for /health and GET /events, as a new JSON
     * object: {"enabled":bool, "status":"disabled|connecting|connected|
     * disconnected", "connected":bool, "broker":"host:port/vhost"|null,
     * "exchange":..., "published":N, "confirmed":N, "queued":N, "dropped":N,
     * "last_error":str|null}. Any thread, never blocks. NULL hook: disabled. */
    json_t *(*publisher_status)(void *pub_ctx);
    void *pub_ctx;
};

/* Defaults of the limits below (a field left 0 takes its default). */
#define SR_API_DEFAULT_THREADS 1
#define SR_API_DEFAULT_MAX_CONNECTIONS 1024
#define SR_API_DEFAULT_MAX_CONCURRENT_STREAMS 100
#define SR_API_DEFAULT_IDLE_TIMEOUT_SEC 60
#define SR_API_DEFAULT_HEADER_TIMEOUT_SEC 10
#define SR_API_DEFAULT_MAX_HEADER_BYTES 65536
#define SR_API_DEFAULT_MAX_REQUEST_LINE 8192
#define SR_API_DEFAULT_SSE_HEARTBEAT_SEC 15
#define SR_API_DEFAULT_SSE_BUFFER_BYTES (1024 * 1024)
#define SR_API_DEFAULT_SPIN_USEC 50 /* the service's default; see spin_usec */

struct sr_api_opts {
    const char *host;              /* "0.0.0.0", "127.0.0.1", "::", ... */
    unsigned port;                 /* 0 picks a free port (see sr_api_port) */
    unsigned refresh_interval_sec; /* /health: refresh older than 3x is stale */
    /* Limits; 0 = the default above. Config validates the ranges noted. */
    unsigned threads;                /* API_THREADS 1-64: event-loop threads */
    unsigned max_connections;        /* API_MAX_CONNECTIONS 1-1000000: above it a
                                        client gets 503 (HTTP/1.1) or GOAWAY (h2) */
    unsigned max_concurrent_streams; /* API_MAX_CONCURRENT_STREAMS 1-10000, per h2
                                        connection (SETTINGS_MAX_CONCURRENT_STREAMS) */
    unsigned idle_timeout_sec;       /* API_IDLE_TIMEOUT_SEC 1-86400: no request in
                                        progress, or output not moving, for this long */
    unsigned header_timeout_sec;     /* API_HEADER_TIMEOUT_SEC 1-3600: a request head
                                        (HTTP/1.1 head, h2 HEADERS) must be complete
                                        this long after it began (slowloris) */
    unsigned max_header_bytes;       /* API_MAX_HEADER_BYTES 1024-1048576: HTTP/1.1
                                        header section, h2 header list -> 431 */
    unsigned max_request_line;       /* API_MAX_REQUEST_LINE 256-1048576: HTTP/1.1
                                        request line, h2 :path -> 414 */
    /* Not defaulted: 0 never spins (what a zeroed opts gets); the service's
     * config passes API_SPIN_USEC, default SR_API_DEFAULT_SPIN_USEC. */
    unsigned spin_usec;              /* API_SPIN_USEC 0-1000: under dense load, a
                                        worker polls this long before sleeping */
    /* GET /events/stream. 0 = the default above. */
    unsigned sse_heartbeat_sec;      /* SSE_HEARTBEAT_SEC 1-3600: ": heartbeat"
                                        comment period */
    unsigned sse_buffer_bytes;       /* SSE_BUFFER_BYTES 4096-1073741824: bytes a
                                        client may have unsent before it is sent
                                        resync_required instead */
};

/* Creates the server and binds + listens now, so a bad HOST/PORT is reported
 * before any thread starts. `cache` is borrowed. Returns NULL with a one-line
 * reason in err. Main thread. */
struct sr_api *sr_api_new(const struct sr_api_opts *opts, const struct sr_api_hooks *hooks,
                          struct sr_cache *cache, char *err, size_t errlen);

/* The /health body (new reference) and its HTTP status (200 or 503), the
 * same document GET /health answers. Any thread, never blocks (it reads the
 * cache's stats and calls hooks->publisher_status): the publisher sends it
 * as health.check. */
json_t *sr_api_health(struct sr_api *api, int *http_status);

/* The bound port (useful with port 0). */
unsigned sr_api_port(const struct sr_api *api);

/* Starts the server thread. Returns 0 or -1. Main thread. */
int sr_api_start(struct sr_api *api);

/* Graceful stop: stops accepting, sends GOAWAY to HTTP/2 clients and
 * "Connection: close" to HTTP/1.1 ones, lets in-flight responses finish for up
 * to `grace_ms`, then closes everything and joins the thread. Main thread;
 * idempotent. */
void sr_api_stop(struct sr_api *api, unsigned grace_ms);
/* Stops first if needed; NULL ok. The cache may still be written
 * afterwards: the server's change listener then does nothing. */
void sr_api_free(struct sr_api *api);

#endif
