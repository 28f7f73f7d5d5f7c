/* HTTP GETs on a curl multi handle driven by one libevent base (curl's
 * hiperfifo pattern). Internal to adapters/docker.
 *
 * Every function must be called on the thread that runs `base`, and never
 * from inside one of this module's callbacks unless stated otherwise. No
 * function blocks. Callbacks run on that thread from the base's dispatch. */
#ifndef SR_DOCKER_CLIENT_H
#define SR_DOCKER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct sr_http;
struct sr_http_req;

#define SR_HTTP_MAX_BODY (64u << 20) /* a bigger answer fails the transfer */
#define SR_HTTP_CONNECT_TIMEOUT_S 5
#define SR_HTTP_TOTAL_TIMEOUT_S 30 /* plain requests; streams have none */

struct sr_http_result {
    bool transport_ok; /* an HTTP answer arrived complete */
    long status;       /* HTTP status, 0 when none */
    const char *error; /* curl's message when !transport_ok, else "" */
    const char *body;  /* NUL-terminated (streams: only non-2xx bodies) */
    size_t len;
    const char *api_version; /* Api-Version header, "" when absent */
    long date;               /* Date header as Unix seconds, -1 when absent */
};

/* Final callback, exactly once per request unless it was cancelled. The
 * result and its strings are valid during the call only. The callback may
 * start and cancel other requests; the request is gone when it runs. */
typedef void (*sr_http_done_cb)(const struct sr_http_result *res, void *arg);
/* Streams: the response headers arrived with a 2xx status. `res` has no body
 * yet. Runs inside a curl callback: it must not start or cancel requests. */
typedef void (*sr_http_open_cb)(const struct sr_http_result *res, void *arg);
/* Streams: bytes of a 2xx body, in arbitrary slices. Runs inside a curl
 * callback (same restriction). Return 0 to go on, -1 to abort the transfer
 * (its done callback then reports a transport error). */
typedef int (*sr_http_data_cb)(const char *data, size_t len, void *arg);

/* Creates the client. `unix_path` ("" or NULL for TCP) and `base_url` (e.g.
 * "http://localhost") are copied. Returns NULL on failure. */
struct sr_http *sr_http_new(struct event_base *base, const char *unix_path, const char *base_url);

/* Called on the loop once per finished transfer (not for cancelled ones),
 * with the path it was started with ("/v1.41/info"), error = transport
 * failure or HTTP status >= 400, and its duration in seconds (-1 for a
 * stream). For counters. */
typedef void (*sr_http_count_cb)(const char *path, bool error, double seconds, void *arg);
void sr_http_set_counter(struct sr_http *h, sr_http_count_cb cb, void *arg);
/* Cancels every request (no callbacks) and frees the client. NULL ok. */
void sr_http_free(struct sr_http *h);

/* Starts GET base_url+path (path starts with '/', already URL-encoded).
 * Returns the request (borrowed: valid until its done callback or
 * sr_http_cancel), or NULL if it could not even start (then no callback). */
struct sr_http_req *sr_http_get(struct sr_http *h, const char *path, sr_http_done_cb done,
                                void *arg);
/* Same, with a total timeout of `timeout_s` seconds instead of
 * SR_HTTP_TOTAL_TIMEOUT_S (0 = that default). */
struct sr_http_req *sr_http_get_timeout(struct sr_http *h, const char *path, unsigned timeout_s,
                                        sr_http_done_cb done, void *arg);
/* Same as sr_http_get, as a stream: no total timeout, TCP keepalive, body handed to
 * on_data instead of being kept. */
struct sr_http_req *sr_http_stream(struct sr_http *h, const char *path, sr_http_open_cb on_open,
                                   sr_http_data_cb on_data, sr_http_done_cb done, void *arg);
/* Aborts a request; its callbacks never run. */
void sr_http_cancel(struct sr_http_req *req);

/* curl_easy_escape without an easy handle at hand: a new string, free()d by
 * the caller. */
char *sr_http_escape(const char *s);

#endif
