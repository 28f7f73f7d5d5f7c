/* api internals shared by the files of the api module (not installed, not
 * for other modules).
 *
 *   server.c     listener, workers (threads), accept and hand-off, protocol
 *                detection, connection lifetime and timers, graceful stop
 *   http1.c      pure HTTP/1.1 request parser and response-head formatter
 *   http1_conn.c HTTP/1.1 connections: drives the parser, writes responses,
 *                Upgrade: h2c
 *   http2.c      h2c connections on an nghttp2 server session
 *   routes.c     pure router: request -> response (ETag, 304, filters)
 *   refresh.c    parked requests (POST /cache/refresh, POST
 *                /services/{name}/metrics) and the cross-thread mailbox
 *
 * Everything here runs on the worker thread that owns the connection,
 * except where a comment says otherwise (sr_api__mailbox_* completion, the
 * router, which any thread may call). */
#ifndef SR_API_INTERNAL_H
#define SR_API_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api/api.h"

#ifndef SR_VERSION
#define SR_VERSION "dev"
#endif

#define SR_API_SERVER_HEADER "swarm-registry/" SR_VERSION

/* Fixed request limits (the configurable ones are in struct sr_api_opts). */
#define SR_API_MAX_HEADERS 100        /* header fields -> 431 */
#define SR_API_MAX_BODY (1024 * 1024) /* request content -> 413 */
/* Compile-time defaults the unit tests use for the parser. */
#define SR_API_MAX_REQUEST_LINE SR_API_DEFAULT_MAX_REQUEST_LINE
#define SR_API_MAX_HEADER_BLOCK SR_API_DEFAULT_MAX_HEADER_BYTES

/* ---- responses (routes.c) ----------------------------------------------- */

/* One response. The body is `body[0..len)` followed by `tail[0..tail_len)`.
 * `body` is either borrowed from a snapshot (`snap` holds the reference that
 * keeps it alive) or owned (`owned`, malloc'd), never both; `tail` is inline
 * (a few bytes spliced after a borrowed body, e.g. `,"age_sec":1.5}`).
 * Whoever sends it takes it over, or calls sr_api__response_clear. */
struct sr_api__response {
    int status;
    const char *content_type; /* static string; NULL for 304 */
    const char *allow;        /* static string for 405, else NULL */
    const char *body;
    size_t len;
    struct sr_snapshot *snap; /* reference held for `body`, or NULL */
    char *owned;              /* malloc'd body (== body), or NULL */
    char etag[64];            /* entity-tag with its quotes (maybe W/), "" = none */
    char tail[48];
    size_t tail_len;
};

/* Total content length: len + tail_len. */
static inline size_t sr_api__response_length(const struct sr_api__response *r)
{
    return r->len + r->tail_len;
}

/* Releases the snapshot reference or frees the owned body; zeroes *r. */
void sr_api__response_clear(struct sr_api__response *r);

/* Fills *r with a JSON error body {"error":code,"message":message} (no
 * ETag: transport-level errors). */
void sr_api__error_response(struct sr_api__response *r, int status, const char *code,
                            const char *message);

/* Reason phrase for a status ("OK", "Not Found", ...). */
const char *sr_api__reason(int status);

/* RFC 9110 §13.1.2 weak comparison of an If-None-Match value against an
 * entity-tag: true when `etag` is listed or the value is "*". */
bool sr_api__etag_match(const char *if_none_match, const char *etag);

/* ---- router (routes.c) --------------------------------------------------- */

/* Everything the router reads. Plain data, so unit tests build one without
 * a server. Read-only once the server runs (shared by the workers). */
struct sr_api__router {
    struct sr_cache *cache;        /* borrowed */
    unsigned refresh_interval_sec; /* /health staleness: 3x this; 0 = never stale */
    bool can_refresh;              /* a resync hook exists */
    bool can_collect;              /* a collect_metrics hook exists */
    json_t *(*publisher_status)(void *pub_ctx); /* NULL: publisher disabled */
    void *pub_ctx;
    double started_mono;  /* sr_mono() at start, for uptime_sec */
    double (*now)(void);  /* wall clock (sr_now); tests inject one */
};

/* One request as the router sees it (all borrowed). */
struct sr_api__request {
    const char *method;
    const char *target;        /* as sent: path and query; absolute-form ok */
    const char *if_none_match; /* NULL when absent */
};

enum sr_api__route_result {
    SR_API_ROUTE_DONE = 0, /* *out is the answer */
    SR_API_ROUTE_PARK = 1, /* *park says what to start; answer later with
                              sr_api__park_response */
};

enum sr_api__park_kind {
    SR_API_PARK_NONE = 0,
    SR_API_PARK_REFRESH = 1, /* POST /cache/refresh: hooks->resync */
    SR_API_PARK_METRICS = 2, /* POST /services/{name}/metrics: hooks->collect_metrics */
};

/* What a parked request waits for. Owns its strings. */
struct sr_api__park {
    enum sr_api__park_kind kind;
    char *name; /* METRICS: the service name */
    char *id;   /* METRICS: its Docker ID */
};

/* Routes one request. HEAD gets the GET answer: the caller sends the
 * headers only. GET/HEAD answers whose ETag matches If-None-Match become
 * 304 with no body. May call sr_cache_clear (POST /cache/clear). On
 * SR_API_ROUTE_PARK, *out is zeroed and *park filled (the caller owns it).
 * Any thread; never blocks on I/O. */
enum sr_api__route_result sr_api__route(const struct sr_api__router *rt,
                                        const struct sr_api__request *req,
                                        struct sr_api__response *out, struct sr_api__park *park);

/* The answer to a parked request whose hook reported `status` (0 = ok). */
void sr_api__park_response(const struct sr_api__router *rt, const struct sr_api__park *park,
                           int status, struct sr_api__response *out);
void sr_api__park_clear(struct sr_api__park *park);

/* The /health document and its status (routes.c; any thread). */
json_t *sr_api__health_json(const struct sr_api__router *rt, int *http_status);

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
    bool has_body;               /* Content-Length > 0 */
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
    size_t max_line;    /* request line cap (414) */
    size_t max_head;    /* header section cap (431) */
    struct sr_api__h1_request req;
};

/* Default limits (SR_API_MAX_REQUEST_LINE, SR_API_MAX_HEADER_BLOCK). */
void sr_api__h1_init(struct sr_api__h1_parser *p);
/* Explicit limits (0 = default). */
void sr_api__h1_init_limits(struct sr_api__h1_parser *p, size_t max_line, size_t max_head);
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
/* Number of fields with that name. */
size_t sr_api__h1_header_count(const struct sr_api__h1_request *req, const char *name);
/* Comma-separated, case-insensitive token search (Connection, Upgrade...). */
bool sr_api__has_token(const char *value, const char *token);

/* Formats a response head into buf. `req_minor` is the request's minor
 * version (1.0 keep-alive needs "Connection: keep-alive"). Returns the
 * length, or 0 when cap is too small. */
size_t sr_api__h1_format_head(char *buf, size_t cap, const struct sr_api__response *r,
                              bool keep_alive, int req_minor, const char *date);

/* IMF-fixdate for `t` ("Sun, 06 Nov 1994 08:49:37 GMT"); buf >= 30 bytes. */
char *sr_api__http_date(time_t t, char *buf, size_t len);

/* Decodes base64url (RFC 4648 §5, no padding required) of src[0..len) into
 * dst (at least len * 3 / 4 + 3 bytes). Returns the length or -1. Used for
 * the HTTP2-Settings header (RFC 7540 §3.2.1). */
long sr_api__base64url_decode(const char *src, size_t len, unsigned char *dst);

/* ---- parked requests (refresh.c) ----------------------------------------- */

struct event_base;
struct evconnlistener;
struct event;
struct sr_api__mailbox;
struct sr_api__pending;
struct sr_api__worker;

/* Runs on the worker thread when the hook finished, unless cancelled. */
typedef void (*sr_api__pending_cb)(void *owner, int status);

struct sr_api__mailbox *sr_api__mailbox_new(struct event_base *base);
/* Detaches from the base (late completions are then dropped) and drops the
 * server's reference. The base's loop must no longer run. Main thread. */
void sr_api__mailbox_close(struct sr_api__mailbox *mb);

/* Calls the hook `park` names with a new pending record whose completion
 * comes back to worker `w`. Returns it (the caller holds one reference,
 * dropped by sr_api__pending_cancel or after the callback ran), or NULL if
 * the hook refused (it then never calls done). */
struct sr_api__pending *sr_api__park_start(struct sr_api__worker *w,
                                           const struct sr_api__park *park,
                                           sr_api__pending_cb cb, void *owner);
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

/* The connection's single timer, set by the protocol after each callback. */
enum sr_api__timer {
    SR_API_TIMER_NONE = 0, /* busy: a request in progress (the bufferevent's
                              write timeout covers a client not reading) */
    SR_API_TIMER_HEAD = 1, /* a request head began (or none yet on a new
                              connection): header_timeout_sec from then */
    SR_API_TIMER_IDLE = 2, /* nothing in progress: idle_timeout_sec */
};

struct sr_api__proto {
    const char *name;
    /* Bytes arrived (also called once at attach for already-read bytes). */
    int (*on_read)(struct sr_api__conn *c);
    /* The output buffer drained (below the low-water mark). */
    int (*on_write)(struct sr_api__conn *c);
    /* The peer closed its sending side. */
    int (*on_eof)(struct sr_api__conn *c);
    /* Graceful stop began. */
    int (*on_shutdown)(struct sr_api__conn *c);
    /* The timer set with sr_api__conn_timer expired. */
    int (*on_timeout)(struct sr_api__conn *c, enum sr_api__timer kind);
    void (*free)(struct sr_api__conn *c);
};

struct sr_api__conn {
    struct sr_api *api;
    struct sr_api__worker *w;
    struct bufferevent *bev;
    const struct sr_api__proto *proto; /* NULL until detected */
    void *impl;                        /* the protocol's state */
    struct sr_api__conn *prev, *next;  /* w->conns */
    struct event *timer;
    enum sr_api__timer timer_kind;
    bool draining;  /* FLUSH_CLOSE: output, then linger */
    bool lingering; /* write side shut, discarding input */
    bool peer_eof;  /* the peer will send nothing more */
    bool refused;   /* over max_connections: answer 503/GOAWAY and close */
    char peer[64];
};

/* Stop reading while the output holds this much (backpressure). */
#define SR_API_OUTPUT_HIGH (256 * 1024)

/* Applies a protocol's answer; must be called only from a top-level
 * callback (it may free c). */
void sr_api__conn_next(struct sr_api__conn *c, int next);

/* (Re)arms the connection's timer for `kind`. Re-arms only when the kind
 * changes, so a HEAD deadline counts from the first byte of the head. */
void sr_api__conn_timer(struct sr_api__conn *c, enum sr_api__timer kind);

/* Date header value for now (cached per second, per worker). */
const char *sr_api__date(struct sr_api__worker *w);

/* Resolved limits (opts with defaults applied). */
struct sr_api__limits {
    unsigned threads;
    unsigned max_connections;
    unsigned max_concurrent_streams;
    unsigned idle_timeout_sec;
    unsigned header_timeout_sec;
    unsigned max_header_bytes;
    unsigned max_request_line;
};

/* One event-loop thread. Worker 0 also owns the listener and hands
 * accepted sockets round-robin to the others through their inbox. */
struct sr_api__worker {
    struct sr_api *api;
    unsigned index;
    struct event_base *base;
    struct event *stop_ev, *grace_ev, *inbox_ev;
    struct sr_api__mailbox *mb;
    struct sr_api__conn *conns;
    size_t nconns;
    bool stopping; /* this thread: graceful stop under way */
    pthread_t thread;
    bool thread_started;
    time_t date_sec;
    char date[32];
    /* Accepted sockets handed over by worker 0 (under inbox_mu). */
    pthread_mutex_t inbox_mu;
    int *inbox;
    size_t inbox_n, inbox_cap;
};

/* The server. Read-only for the workers once started, except the atomics. */
struct sr_api {
    struct sr_api__router router;
    struct sr_api_hooks hooks;
    struct sr_api__limits lim;
    struct evconnlistener *listener; /* worker 0's */
    struct event *retry_accept_ev;   /* worker 0's */
    unsigned next_worker;            /* worker 0: round-robin */
    struct sr_api__worker *workers;
    unsigned nworkers;
    atomic_uint nconns;    /* open connections, all workers */
    atomic_uint nrefusing; /* refused connections still being answered */
    char where[80];        /* "127.0.0.1:5001", for messages */
    unsigned port;
    unsigned grace_ms;     /* written by sr_api_stop before waking the threads */
    bool started, stopped; /* main thread */
};

extern const struct sr_api__proto sr_api__http1;
extern const struct sr_api__proto sr_api__http2;

/* Per-protocol attach: allocate c->impl. HTTP/2 also queues its SETTINGS. */
int sr_api__http1_attach(struct sr_api__conn *c);
int sr_api__http2_attach(struct sr_api__conn *c);

/* The request an HTTP/1.1 Upgrade: h2c hands to HTTP/2 as stream 1. */
struct sr_api__upgrade {
    const unsigned char *settings; /* decoded HTTP2-Settings payload */
    size_t settings_len;
    const char *method, *target, *if_none_match;
};
/* Replaces c's HTTP/1.1 state (already freed by the caller) by an HTTP/2
 * session upgraded from `u` (RFC 7540 §3.2), answers stream 1, and returns
 * what the connection does next. The 101 must already be queued. */
int sr_api__http2_upgrade(struct sr_api__conn *c, const struct sr_api__upgrade *u);

#endif
