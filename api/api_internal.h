/* api internals shared by the files of the api module (not installed, not
 * for other modules).
 *
 *   server.c     listener, accept, protocol detection, connection lifetime,
 *                graceful stop, the API thread
 *   http1.c      pure HTTP/1.1 request parser and response-head formatter
 *   http1_conn.c HTTP/1.1 connections: drives the parser, writes responses
 *   http2.c      h2c connections on an nghttp2 server session
 *   routes.c     pure router: (method, target) -> response
 *   refresh.c    parked POST /cache/refresh requests and the cross-thread
 *                completion mailbox
 *
 * Everything here runs on the API thread, except where a comment says
 * otherwise (sr_api__mailbox_* completion, the router in unit tests). */
#ifndef SR_API_INTERNAL_H
#define SR_API_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api/api.h"

#ifndef SR_VERSION
#define SR_VERSION "dev"
#endif

#define SR_API_SERVER_HEADER "swarm-registry/" SR_VERSION

/* Request limits (shared by HTTP/1.1 and HTTP/2). */
#define SR_API_MAX_REQUEST_LINE 8192  /* request line / :path -> 414 */
#define SR_API_MAX_HEADER_BLOCK 65536 /* all header lines -> 431 */
#define SR_API_MAX_HEADERS 100        /* header fields -> 431 */
#define SR_API_MAX_BODY (1024 * 1024) /* request content -> 413 */

/* ---- responses (routes.c) ----------------------------------------------- */

/* One response. The body is either borrowed from a snapshot (`snap` holds
 * the reference that keeps it alive) or owned (`owned`, malloc'd), never
 * both. Whoever sends it takes both over, or calls sr_api__response_clear. */
struct sr_api__response {
    int status;
    const char *content_type; /* static string */
    const char *allow;        /* static string for 405, else NULL */
    const char *body;
    size_t len;
    struct sr_snapshot *snap; /* reference held for `body`, or NULL */
    char *owned;              /* malloc'd body (== body), or NULL */
};

/* Releases the snapshot reference or frees the owned body; zeroes *r. */
void sr_api__response_clear(struct sr_api__response *r);

/* Fills *r with a JSON error body {"error":code,"message":message}. */
void sr_api__error_response(struct sr_api__response *r, int status, const char *code,
                            const char *message);

/* Reason phrase for a status ("OK", "Not Found", ...). */
const char *sr_api__reason(int status);

/* ---- router (routes.c) --------------------------------------------------- */

/* Everything the router reads. Plain data, so unit tests build one without
 * a server. */
struct sr_api__router {
    struct sr_cache *cache;        /* borrowed */
    unsigned refresh_interval_sec; /* /health staleness: 3x this; 0 = never stale */
    bool can_refresh;              /* a resync hook exists */
    double started_mono;           /* sr_mono() at start, for uptime_sec */
    double (*now)(void);           /* wall clock (sr_now); tests inject one */
};

enum sr_api__route_result {
    SR_API_ROUTE_DONE = 0,    /* *out is the answer */
    SR_API_ROUTE_REFRESH = 1, /* POST /cache/refresh: park, call the hook, then
                                 answer with sr_api__refresh_response */
};

/* Routes one request. `target` is the request target as sent (path and
 * query; an absolute-form URI is accepted). HEAD gets the GET answer: the
 * caller sends the headers only. May call sr_cache_clear (POST /cache/clear).
 * Any thread; never blocks on I/O. */
enum sr_api__route_result sr_api__route(const struct sr_api__router *rt, const char *method,
                                        const char *target, struct sr_api__response *out);

/* The answer to a parked refresh whose hook reported `status` (0 = ok). */
void sr_api__refresh_response(const struct sr_api__router *rt, int status,
                              struct sr_api__response *out);

/* Decodes %XX escapes of src[0..len) into dst (at least len + 1 bytes).
 * Returns the decoded length, or -1 for a bad escape or a decoded NUL. */
long sr_api__percent_decode(const char *src, size_t len, char *dst);

/* ---- HTTP/1.1 parser (http1.c) ------------------------------------------ */

enum sr_api__h1_result {
    SR_API_H1_AGAIN = 0,   /* all input consumed, need more */
    SR_API_H1_REQUEST = 1, /* a request head is complete: see p->req */
    /* negative: -status of the error to answer (-400, -411, -413, -414,
     * -431, -505) before closing. Sticky. */
};

struct sr_api__h1_header {
    const char *name, *value; /* NUL-terminated, in the parser's buffer */
};

struct sr_api__h1_request {
    const char *method, *target; /* NUL-terminated, in the parser's buffer */
    int minor;                   /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;             /* after the version default and Connection */
    bool expect_continue;        /* Expect: 100-continue */
    uint64_t content_length;
    size_t nheaders;
    struct sr_api__h1_header headers[SR_API_MAX_HEADERS];
};

struct sr_api__h1_parser {
    int state;
    int error;  /* sticky negative status, 0 if none */
    bool reset; /* req was handed out: reuse buf at the next call */
    char *buf;  /* the head being accumulated (owned) */
    size_t len, cap;
    size_t line_start;  /* offset of the current line in buf */
    size_t line_end;    /* end of the request line in buf */
    size_t head_bytes;  /* header-section bytes so far (431 cap) */
    size_t nlines;      /* header lines so far (field count cap) */
    uint64_t body_left; /* content bytes still to skip */
    struct sr_api__h1_request req;
};

void sr_api__h1_init(struct sr_api__h1_parser *p);
void sr_api__h1_free(struct sr_api__h1_parser *p);

/* Feeds data[0..len). Sets *consumed to the bytes used; call again with the
 * rest. After SR_API_H1_REQUEST, p->req stays valid until the next call,
 * and the next calls skip the request's content before the next request.
 * Pure: no I/O, no globals. */
int sr_api__h1_parse(struct sr_api__h1_parser *p, const char *data, size_t len, size_t *consumed);

/* True when the parser sits between requests with nothing buffered. */
bool sr_api__h1_idle(const struct sr_api__h1_parser *p);

/* Case-insensitive header lookup in the last request (first match). */
const char *sr_api__h1_header(const struct sr_api__h1_request *req, const char *name);

/* Formats a response head into buf. `req_minor` is the request's minor
 * version (1.0 keep-alive needs "Connection: keep-alive"). Returns the
 * length, or 0 when cap is too small. */
size_t sr_api__h1_format_head(char *buf, size_t cap, const struct sr_api__response *r,
                              bool keep_alive, int req_minor, const char *date);

/* IMF-fixdate for `t` ("Sun, 06 Nov 1994 08:49:37 GMT"); buf >= 30 bytes. */
char *sr_api__http_date(time_t t, char *buf, size_t len);

/* ---- parked refreshes (refresh.c) ----------------------------------------- */

struct event_base;
struct evconnlistener;
struct event;
struct sr_api__mailbox;
struct sr_api__pending;

/* Runs on the API thread when the hook finished, unless cancelled. */
typedef void (*sr_api__pending_cb)(void *owner, int status);

struct sr_api__mailbox *sr_api__mailbox_new(struct event_base *base);
/* Detaches from the base (late completions are then dropped) and drops the
 * server's reference. The base's loop must no longer run. Main thread. */
void sr_api__mailbox_close(struct sr_api__mailbox *mb);

/* Calls the resync hook with a new pending record. Returns it (the caller
 * holds one reference, dropped by sr_api__pending_cancel or after the
 * callback ran), or NULL if the hook refused (it then never calls done). */
struct sr_api__pending *sr_api__refresh_start(struct sr_api *api, sr_api__pending_cb cb,
                                              void *owner);
/* The owner went away: the callback will not run. Drops the owner's reference. */
void sr_api__pending_cancel(struct sr_api__pending *p);

/* ---- connections (server.c) ---------------------------------------------- */

struct bufferevent;
struct sr_api__conn;

/* What a protocol tells the connection after each callback. */
enum sr_api__conn_next {
    SR_API_CONN_KEEP = 0,        /* carry on */
    SR_API_CONN_FLUSH_CLOSE = 1, /* send what is queued, then close */
    SR_API_CONN_CLOSE = -1,      /* close now */
};

struct sr_api__proto {
    const char *name;
    /* Bytes arrived (also called once at attach for already-read bytes). */
    int (*on_read)(struct sr_api__conn *c);
    /* The output buffer drained. */
    int (*on_write)(struct sr_api__conn *c);
    /* The peer closed its sending side. */
    int (*on_eof)(struct sr_api__conn *c);
    /* Graceful stop began. */
    int (*on_shutdown)(struct sr_api__conn *c);
    void (*free)(struct sr_api__conn *c);
};

struct sr_api__conn {
    struct sr_api *api;
    struct bufferevent *bev;
    const struct sr_api__proto *proto; /* NULL until detected */
    void *impl;                        /* the protocol's state */
    struct sr_api__conn *prev, *next;  /* api->conns */
    bool draining;                     /* FLUSH_CLOSE: output, then linger */
    bool lingering;                    /* write side shut, discarding input */
    bool peer_eof;                     /* the peer will send nothing more */
    char peer[64];
};

/* Stop reading while the output holds this much (backpressure). */
#define SR_API_OUTPUT_HIGH (256 * 1024)

/* Applies a protocol's answer; must be called only from a top-level
 * callback (it may free c). */
void sr_api__conn_next(struct sr_api__conn *c, int next);

/* Date header value for now (cached per second). */
const char *sr_api__date(struct sr_api *api);

/* The server as the protocol files see it. */
struct sr_api {
    struct sr_api__router router;
    struct sr_api_hooks hooks;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *stop_ev, *grace_ev, *retry_accept_ev;
    struct sr_api__mailbox *mb;
    struct sr_api__conn *conns;
    size_t nconns;
    char where[80]; /* "127.0.0.1:5001", for messages */
    unsigned port;
    unsigned grace_ms;     /* written by sr_api_stop before waking the thread */
    bool started, stopped; /* main thread */
    bool stopping;         /* API thread: graceful stop under way */
    pthread_t thread;
    time_t date_sec;
    char date[32];
};

extern const struct sr_api__proto sr_api__http1;
extern const struct sr_api__proto sr_api__http2;

/* Per-protocol attach: allocate c->impl. HTTP/2 also queues its SETTINGS. */
int sr_api__http1_attach(struct sr_api__conn *c);
int sr_api__http2_attach(struct sr_api__conn *c);

#endif
