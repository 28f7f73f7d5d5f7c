/* api: the HTTP server that exposes the cache.
 *
 * DESIGN
 * - One listening socket. Each accepted connection is HTTP/2 with prior
 *   knowledge if its first 24 bytes are the connection preface
 *   ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RFC 9113 §3.4), otherwise HTTP/1.1
 *   with keep-alive. HTTP/2 runs on an nghttp2 server session.
 * - The server runs on its own thread with its own event base. Handlers only
 *   read cache snapshots: a response holds a snapshot reference until its
 *   last byte is written, and sends the snapshot's pre-serialised bytes.
 * - Requests that need another thread (POST /cache/refresh) are parked: the
 *   hook's completion is marshalled back to the API thread before answering.
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

struct sr_api_opts {
    const char *host;              /* "0.0.0.0", "127.0.0.1", "::", ... */
    unsigned port;                 /* 0 picks a free port (see sr_api_port) */
    unsigned refresh_interval_sec; /* /health: refresh older than 3x is stale */
};

/* Creates the server and binds + listens now, so a bad HOST/PORT is reported
 * before any thread starts. `cache` is borrowed. Returns NULL with a one-line
 * reason in err. Main thread. */
struct sr_api *sr_api_new(const struct sr_api_opts *opts, const struct sr_api_hooks *hooks,
                          struct sr_cache *cache, char *err, size_t errlen);

/* The /health body (new reference) and its HTTP status (200 or 503). Any
 * thread, never blocks: the publisher sends it as health.check. */
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
void sr_api_free(struct sr_api *api); /* stops first if needed; NULL ok */

#endif
