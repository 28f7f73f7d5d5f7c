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
 *                /services/{name}/metrics, long-polls) and the cross-thread
 *                mailbox
 *   watch.c      change fan-out: the cache's event listener, one hub per
 *                worker (inbox, parked long-polls, SSE clients, heartbeat)
 *   sse.c        GET /events/stream clients, and their HTTP/1.1 transport
 *   watch_parse.c pure: wait=, query parameters, topic patterns, SSE framing
 *   prom.c       pure: GET /metrics and GET /sd/prometheus bodies, counters
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
#include <sys/types.h>
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

/* Bodies shorter than this are copied into the output buffer: an evbuffer
 * reference costs a chain (a malloc and a free, and one more iovec), more
 * than copying 2 KiB. */
#define SR_API_COPY_BELOW 2048

/* Immutable bytes shared inside one worker (so the count is plain): the
 * worker's cached /health answer, lent to every response that uses it, and
 * the SSE frames of watch.c/sse.c. The last reference may be dropped by an
 * evbuffer cleanup (still on the worker thread, or on main after the
 * threads are joined). */
struct sr_api__frame {
    unsigned refs;
    size_t len;
    char data[];
};

struct sr_api__frame *sr_api__frame_new(const char *p, size_t len); /* copies */
void sr_api__frame_unref(struct sr_api__frame *f);                  /* NULL ok */
/* An evbuffer_add_reference cleanup that drops the frame in `arg`. */
void sr_api__frame_release(const void *data, size_t len, void *arg);

/* One response. The body is `body[0..len)` followed by `tail[0..tail_len)`.
 * `body` is borrowed from a snapshot (`snap` holds the reference that keeps
 * it alive) or from a frame (`frame`), or owned (`owned`, malloc'd): one of
 * the three at most; `tail` is inline (a few bytes spliced after a borrowed
 * body, e.g. `,"age_sec":1.5}`).
 * Whoever sends it takes it over, or calls sr_api__response_clear. */
struct sr_api__response {
    int status;
    const char *content_type; /* static string; NULL for 304 */
    const char *allow;        /* static string for 405, else NULL */
    const char *body;
    size_t len;
    struct sr_snapshot *snap; /* reference held for `body`, or NULL */
    struct sr_api__frame *frame; /* reference held for `body`, or NULL */
    char *owned;              /* malloc'd body (== body), or NULL */
    char etag[64];            /* entity-tag with its quotes (maybe W/), "" = none */
    char tail[48];
    size_t tail_len;
    bool has_index;  /* send X-Registry-Index: index (read answers) */
    bool unbounded;  /* no Content-Length: HEAD of an endless event stream */
    uint64_t index;  /* the cache version the answer reflects */
};

/* Total content length: len + tail_len. */
static inline size_t sr_api__response_length(const struct sr_api__response *r)
{
    return r->len + r->tail_len;
}

/* Writes v in decimal and a NUL to buf (at least 21 bytes); returns the
 * digit count. The hot paths' replacement for snprintf("%llu"). */
static inline size_t sr_api__fmt_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* Releases the snapshot reference or frees the owned body; zeroes *r. */
void sr_api__response_clear(struct sr_api__response *r);

struct sr_api__router;
/* Fills *r with a JSON error body {"error":code,"message":message}, with
 * an ETag as every JSON answer has (the cache version and a hash). */
void sr_api__error_response(const struct sr_api__router *rt, struct sr_api__response *r,
                            int status, const char *code, const char *message);

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
    struct sr_api__stats *stats; /* request and watch counters, or NULL */
};

/* A short-lived copy of the /health answer, one per worker thread (no
 * lock): the document is built with jansson per request, and health is
 * what monitors poll hardest. */
struct sr_api__health_cache {
    double until; /* sr_mono_coarse() after which it is rebuilt */
    int status;
    uint64_t index; /* the cache version the body shows */
    struct sr_api__frame *body; /* a reference, or NULL */
    char etag[64];
};
#define SR_API_HEALTH_TTL 0.1 /* seconds */

/* One request as the router sees it (all borrowed). */
struct sr_api__request {
    const char *method;
    const char *target;        /* as sent: path and query; absolute-form ok */
    const char *if_none_match; /* NULL when absent */
    const char *if_match;      /* NULL when absent */
    const char *last_event_id; /* Last-Event-ID (SSE resume), NULL when absent */
    bool no_wait;              /* ignore index=/wait= (a woken long-poll) */
    struct sr_api__health_cache *health_cache; /* the caller thread's, or NULL */
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
    SR_API_PARK_WATCH = 3,   /* GET ...?index=R&wait=T: a long-poll (watch.c) */
    SR_API_PARK_STREAM = 4,  /* GET /events/stream: the transport starts an SSE
                                client (sse.c); never goes to sr_api__park_start */
};

/* What a parked request waits for. Owns its strings. */
struct sr_api__park {
    enum sr_api__park_kind kind;
    char *name; /* METRICS: the service name; WATCH on /services/{name}/metrics too */
    char *id;   /* METRICS: its Docker ID */
    /* WATCH: the request to route again (no_wait) once woken */
    char *target, *if_none_match, *if_match;
    bool head;
    uint64_t index;   /* WATCH: answer once the cache is past this revision */
    uint64_t wait_ms; /* WATCH: at most this long (before jitter) */
    /* STREAM: resume after `since` (Last-Event-ID or ?since=) when has_since;
     * `types`: the decoded ?types= patterns, comma-separated, or NULL. */
    bool has_since;
    uint64_t since;
    char *types;
    int endpoint, method; /* for the request counters (sr_api__count) */
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
/* A hex digit's value, or -1. */
int sr_api__hexval(char c);

/* ---- HTTP/1.1 parser (http1.c) ------------------------------------------ */

enum sr_api__h1_result {
    SR_API_H1_AGAIN = 0,   /* all input consumed, need more */
    SR_API_H1_REQUEST = 1, /* a request head is complete: see p->req */
    /* negative: -status of the error to answer (-400, -411, -413, -414,
     * -431, -501, -505) before closing. Sticky. */
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
    /* The request being read has the method HEAD (known once the space
     * after the method arrived), so an error answer sends no content. */
    bool head;
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
/* A list-valued field (If-None-Match, If-Match...): its field lines
 * joined with ", " (RFC 9110 §5.3), empty ones left out; NULL when absent.
 * With several non-empty lines the value is malloc'd and also stored in
 * *joined for the caller to free; otherwise *joined is NULL and the value
 * points into the request. */
const char *sr_api__h1_header_list(const struct sr_api__h1_request *req, const char *name,
                                   char **joined);
/* Number of fields with that name. */
size_t sr_api__h1_header_count(const struct sr_api__h1_request *req, const char *name);
/* A Host or :authority value (RFC 9112 §3.2, RFC 9113 §8.3.1): RFC 3986
 * host [":" port], the host an IP-literal in brackets or a reg-name (which
 * IPv4 addresses are too); no userinfo. Empty is allowed, as the grammar
 * allows. */
bool sr_api__host_ok(const char *v, size_t n);
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

/* ---- tests and fuzzers (server.c) ------------------------------------------ */

/* Only on an API whose workers were never started, from one thread. Serves
 * `fd` on worker 0 as an accepted connection (it owns fd from here). */
void sr_api__test_attach(struct sr_api *api, int fd);
/* Runs worker 0's loop once without blocking; returns its open connections. */
size_t sr_api__test_step(struct sr_api *api);

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
    SR_API_TIMER_BODY = 3, /* request content is due: idle_timeout_sec from
                              its last progress (sr_api__conn_timer_at) */
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
    struct event *rev; /* readable: ours, not the bufferevent's (see server.c) */
    bool want_read;    /* the protocol takes input (sr_api__conn_read) */
    bool rev_added;
    struct event *timer;
    enum sr_api__timer timer_kind;
    double deadline; /* when timer_kind expires (monotonic seconds) */
    double armed_at; /* when the armed timer event fires, or 0 */
    bool draining;  /* FLUSH_CLOSE: output, then linger */
    bool lingering; /* write side shut, discarding input */
    double linger_end; /* lingering: closed by then whatever the peer sends */
    bool peer_eof;  /* the peer will send nothing more */
    bool refused;   /* over max_connections: answer 503/GOAWAY and close */
    char peer[64];
};

/* Stop reading while the output holds this much (backpressure). */
#define SR_API_OUTPUT_HIGH (256 * 1024)

/* Applies a protocol's answer; must be called only from a top-level
 * callback (it may free c). */
void sr_api__conn_next(struct sr_api__conn *c, int next);

/* Whether the protocol takes more input now (backpressure). Reading also
 * pauses by itself while SR_API_OUTPUT_HIGH bytes wait unparsed. */
void sr_api__conn_read(struct sr_api__conn *c, bool on);

/* Sets the connection's deadline for `kind`. Changes only when the kind
 * changes, so a HEAD deadline counts from the first byte of the head. The
 * event itself is moved only when the deadline comes earlier than it. */
void sr_api__conn_timer(struct sr_api__conn *c, enum sr_api__timer kind);
/* The same with an explicit deadline (monotonic seconds), which may move
 * while the kind stays. */
void sr_api__conn_timer_at(struct sr_api__conn *c, enum sr_api__timer kind, double deadline);

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
    unsigned spin_usec;
};

/* ---- HTTP/2 request header rules (h2_check.c) ---------------------------- */

/* One request's state while its header block (and trailers) arrive. */
struct sr_api__h2_check {
    unsigned flags;         /* what was seen (h2_check.c) */
    int64_t content_length; /* -1: none */
};
void sr_api__h2_check_init(struct sr_api__h2_check *c);
/* One field of a request header block (trailer: of its trailers). False
 * when the request is malformed (reset the stream with PROTOCOL_ERROR). */
bool sr_api__h2_check_field(struct sr_api__h2_check *c, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen, bool trailer);
/* At the end of the request's header block: are the pseudo-headers
 * complete and consistent? (CONNECT: forgets content-length.) */
bool sr_api__h2_check_request(struct sr_api__h2_check *c);

/* ---- HPACK encoder for responses (hpack.c) ------------------------------- */

/* The response fields we send over HTTP/2. */
enum sr_api__hkey {
    SR_API_H_STATUS,
    SR_API_H_CONTENT_TYPE,
    SR_API_H_CONTENT_LENGTH,
    SR_API_H_DATE,
    SR_API_H_SERVER,
    SR_API_H_CACHE_CONTROL,
    SR_API_H_ETAG,
    SR_API_H_ALLOW,
    SR_API_H_REGISTRY_INDEX,
    SR_API_H__COUNT
};

struct sr_api__hfield {
    enum sr_api__hkey key;
    const char *value;
    size_t len;
};

/* The decoder's default (SETTINGS_HEADER_TABLE_SIZE): enough for a few
 * endpoints' answers; more would only hold old Date values. */
#define SR_API_HPACK_TABLE_MAX 4096

struct sr_api__hpack_entry {
    enum sr_api__hkey key;
    size_t len;
    char *value; /* owned */
};

/* One connection's encoder: the dynamic table as the client's decoder
 * holds it. */
struct sr_api__hpack {
    struct sr_api__hpack_entry *ent; /* oldest first */
    size_t n, cap;
    size_t size;     /* RFC 7541 §4.1 */
    size_t max;      /* the table's maximum size */
    size_t low;      /* lowest maximum since the last block, or SIZE_MAX */
    bool resize;     /* a size update starts the next block */
    uint32_t seq;    /* entries ever added */
    uint32_t hint[SR_API_H__COUNT]; /* seq + 1 of each key's last entry used */
};
void sr_api__hpack_init(struct sr_api__hpack *e);
void sr_api__hpack_clear(struct sr_api__hpack *e);
/* The peer's SETTINGS_HEADER_TABLE_SIZE, each value as it arrives. */
void sr_api__hpack_limit(struct sr_api__hpack *e, uint32_t peer_max);
/* Encodes one header block into out. -1 when it does not fit in cap: the
 * table then no longer matches the peer's, so the connection must end. */
ssize_t sr_api__hpack_encode(struct sr_api__hpack *e, const struct sr_api__hfield *f, size_t n,
                             uint8_t *out, size_t cap);

/* ---- pool (pool.c) -------------------------------------------------------- */

/* A free-list allocator for one worker's small, short-lived blocks
 * (nghttp2's allocations, HTTP/2 streams and response holders). Not
 * thread-safe: only whoever runs the worker's connections may use it.
 * Allocation failure aborts, as sr_malloc does. */
struct sr_api__pool;
struct sr_api__pool *sr_api__pool_new(void);
void sr_api__pool_free(struct sr_api__pool *p); /* NULL ok; after every block is back */
void *sr_api__pool_alloc(struct sr_api__pool *p, size_t n);
void *sr_api__pool_calloc(struct sr_api__pool *p, size_t nmemb, size_t size);
void *sr_api__pool_realloc(struct sr_api__pool *p, void *ptr, size_t n);
void sr_api__pool_release(struct sr_api__pool *p, void *ptr); /* NULL ok */

/* One event-loop thread. Worker 0 also owns the listener and hands
 * accepted sockets round-robin to the others through their inbox. */
struct sr_api__worker {
    struct sr_api *api;
    unsigned index;
    struct event_base *base;
    struct event *stop_ev, *grace_ev, *inbox_ev;
    struct sr_api__mailbox *mb;
    struct sr_api__hub *hub; /* watch.c: long-polls and SSE clients of this worker */
    struct sr_api__conn *conns;
    size_t nconns;
    double woke; /* loop(): when the first read since it reset this came, or 0 */
    bool stopping; /* this thread: graceful stop under way */
    struct sr_api__health_cache health;
    struct sr_api__pool *pool; /* small blocks of this worker's connections */
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
    struct sr_api__stats *stats;  /* watch.c: counters, shared by the workers */
    unsigned sse_heartbeat_sec;   /* resolved SSE options */
    size_t sse_buffer_bytes;
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

/* Appends a GOAWAY frame (RFC 9113 §6.8) written by hand, for when no
 * nghttp2 session can send one (refused, or failed). 0 or -1. */
struct evbuffer;
int sr_api__h2_goaway(struct evbuffer *out, uint32_t last, uint32_t code, const char *debug);

/* The request an HTTP/1.1 Upgrade: h2c hands to HTTP/2 as stream 1. */
struct sr_api__upgrade {
    const unsigned char *settings; /* decoded HTTP2-Settings payload */
    size_t settings_len;
    const char *method, *target, *if_none_match, *if_match, *last_event_id;
};
/* Queues the 101, replaces c's HTTP/1.1 state (freeing it, and `u` with
 * it) by an HTTP/2 session upgraded from `u` (RFC 7540 §3.2), answers
 * stream 1, and returns what the connection does next. */
int sr_api__http2_upgrade(struct sr_api__conn *c, const struct sr_api__upgrade *u);

/* ---- watching: long-polls, SSE, Prometheus ------------------------------------ */

struct sr_api__hub;
struct sr_api__watcher;
struct sr_api__sse;
struct sr_buf;
struct sr_event;
struct sr_snapshot;
struct sr_cache_stats;

#define SR_API_WAIT_DEFAULT_MS (5u * 60 * 1000) /* Consul's default */
#define SR_API_WAIT_MAX_MS (10u * 60 * 1000)    /* ... and maximum */
#define SR_API_SSE_MAX_TYPES 16                 /* ?types= patterns */
#define SR_API_TOPIC_MAX_WORDS 32               /* words in a pattern or key */
#define SR_API_TOPIC_MAX_LEN 255                /* bytes in a pattern */

/* watch_parse.c (pure) */

/* A Consul wait= value: "30s", "5m", "1m30s", "1.5s", "250ms", "2h", or plain
 * seconds "30". Returns 0 with *ms (unclamped; huge values saturate), or -1. */
int sr_api__parse_wait(const char *s, size_t len, uint64_t *ms);
/* Iterates the parameters of q[0..qlen) from *pos (start at 0): sets the raw
 * (undecoded) key and value of the next one ("k" alone gives an empty value)
 * and returns true, or false at the end. */
bool sr_api__query_next(const char *q, size_t qlen, size_t *pos, const char **key,
                        size_t *klen, const char **val, size_t *vlen);
/* The raw (undecoded) value of the first `name` parameter of q[0..qlen). */
bool sr_api__query_get(const char *q, size_t qlen, const char *name, const char **val,
                       size_t *vlen);
/* Whole-string decimal, no sign, no blanks. Returns 0 or -1. */
int sr_api__parse_u64(const char *s, size_t len, uint64_t *out);
/* AMQP 0-9-1 topic match of a dot-separated routing key: '*' is exactly one
 * word, '#' zero or more ("service.*", "metrics.#", "#"). */
bool sr_api__topic_match(const char *pattern, const char *key);

/* A ?types= filter: patterns (owned), any of which may match. */
struct sr_api__types {
    char **v;
    size_t n;
};
/* Parses a comma-separated list (blanks around items ignored, empty items
 * skipped; NULL = no filter). Returns 0, or -1 when over SR_API_SSE_MAX_TYPES
 * patterns, SR_API_TOPIC_MAX_LEN bytes or SR_API_TOPIC_MAX_WORDS words. */
int sr_api__types_parse(const char *list, struct sr_api__types *t);
bool sr_api__types_match(const struct sr_api__types *t, const char *key); /* n == 0: true */
void sr_api__types_free(struct sr_api__types *t);

/* Appends one SSE event to b: "id: N\n" (with_id), "event: NAME\n" (event
 * non-NULL), one "data: " line per line of data[0..len) (split at CRLF, LF,
 * CR, so the client's reassembly gives the bytes back), then "\n". */
void sr_api__sse_frame(struct sr_buf *b, bool with_id, uint64_t id, const char *event,
                       const char *data, size_t len);

/* prom.c: request counters and the Prometheus bodies */

enum sr_api__endpoint {
    SR_API_EP_OTHER = 0, /* unknown paths, malformed requests */
    SR_API_EP_HEALTH,
    SR_API_EP_SERVICES,
    SR_API_EP_SERVICE,
    SR_API_EP_SERVICE_METRICS,
    SR_API_EP_CACHE_STATS,
    SR_API_EP_CACHE_REFRESH,
    SR_API_EP_CACHE_CLEAR,
    SR_API_EP_EVENTS,
    SR_API_EP_EVENTS_STREAM,
    SR_API_EP_METRICS,
    SR_API_EP_SD_PROMETHEUS,
    SR_API_EP_COUNT
};
enum { SR_API_METHOD_GET, SR_API_METHOD_HEAD, SR_API_METHOD_POST, SR_API_METHOD_OTHER };
#define SR_API_METHOD_COUNT 4 /* GET, HEAD, POST, other */
#define SR_API_CODE_COUNT 16  /* see prom.c codes[] */

/* Shared by every worker: relaxed atomics (counters and gauges that only
 * need to add up, not to order anything). */
struct sr_api__stats {
    atomic_uint_least64_t requests[SR_API_EP_COUNT][SR_API_METHOD_COUNT][SR_API_CODE_COUNT];
    atomic_uint_least64_t resync_changes;   /* changes only a full refresh found */
    atomic_uint_least64_t longpoll_wakeups; /* long-polls answered by a change */
    atomic_uint_least64_t sse_events;       /* events written to SSE clients */
    atomic_uint_least64_t sse_resyncs;      /* resync_required sent */
    atomic_uint_least64_t sse_behind;       /* times a client fell behind its buffer */
    atomic_uint_least64_t spin_idle_usec;   /* polling with nothing to do (loop()) */
    atomic_int_least64_t longpolls;         /* gauge: parked long-polls */
    atomic_int_least64_t sse_clients;       /* gauge: open SSE streams */
    double started;                         /* wall clock at sr_api_new */
};

/* SR_API_METHOD_GET .. SR_API_METHOD_OTHER */
int sr_api__method_index(const char *method);
/* Counts one answered request (method: an SR_API_METHOD_*); st NULL is a
 * no-op. Any thread. */
void sr_api__count(struct sr_api__stats *st, int endpoint, int method, int status);

struct sr_api__prom_input {
    const struct sr_cache_stats *cache;
    const struct sr_snapshot *snap;    /* per-service series */
    const struct sr_api__stats *stats; /* NULL: request/watch series are 0 */
    const json_t *publisher;           /* publisher_status() object, or NULL */
};
/* The text exposition format 0.0.4 body (malloc'd, *len set). Pure. */
char *sr_api__prom_metrics(const struct sr_api__prom_input *in, size_t *len);
/* The Prometheus HTTP SD body for the services of snap (malloc'd). Pure. */
char *sr_api__prom_sd(const struct sr_snapshot *snap, size_t *len);
/* Formatting pieces (for tests): a label value with \\, \" and \n escaped,
 * a sample value (integers exactly, NaN, +Inf, -Inf, else the shortest
 * text that reads back the same), and a
 * label name from any string ([a-zA-Z0-9_], anything else -> '_'). */
void sr_api__prom_label_value(struct sr_buf *b, const char *v);
void sr_api__prom_value(struct sr_buf *b, double v);
void sr_api__prom_label_name(struct sr_buf *b, const char *s);

/* watch.c: the fan-out. Main thread unless stated. */

/* sr_api_new, after the limits: counters, SSE options, and the cache's
 * event listener. Returns 0 or -1 with err. */
int sr_api__watch_init(struct sr_api *api, const struct sr_api_opts *opts, char *err,
                       size_t errlen);
/* sr_api_free, threads joined: the listener stops reaching this server. */
void sr_api__watch_detach(struct sr_api *api);
void sr_api__watch_free(struct sr_api *api);
/* One hub per worker, made in worker_init; freed after its connections. */
struct sr_api__hub *sr_api__hub_new(struct sr_api__worker *w);
void sr_api__hub_free(struct sr_api__hub *hub);
/* Worker thread, graceful stop began: parked long-polls are answered now,
 * SSE streams end after what is queued. A top-level callback only. */
void sr_api__hub_stop(struct sr_api__hub *hub);

/* refresh.c calls these for SR_API_PARK_WATCH. watch_park takes the
 * pending record's second ("hook's") reference: it later calls
 * sr_api__pending_fire(p) exactly once, unless sr_api__watch_drop came
 * first (the owner went away). Returns the watcher, or NULL when it fired
 * at once. Worker thread. */
struct sr_api__watcher *sr_api__watch_park(struct sr_api__worker *w,
                                           const struct sr_api__park *park,
                                           struct sr_api__pending *p);
void sr_api__watch_drop(struct sr_api__watcher *wt);
void sr_api__pending_fire(struct sr_api__pending *p);

/* sse.c: one GET /events/stream client. The transport owns it. */
struct sr_api__sse_ops {
    /* Bytes were queued for this client: hand them on (HTTP/1.1: to the
     * output; h2: resume the deferred stream and send). Called only from
     * top-level callbacks; it may free the connection, and so the client. */
    void (*kick)(void *owner);
    /* Bytes handed to the transport and not yet written, counted against
     * the client's buffer; NULL = none. */
    size_t (*backlog)(void *owner);
};
/* Registers a client in w's hub and queues the replay (or resync_required)
 * that `park` (SR_API_PARK_STREAM) asks for; *index = the revision it
 * starts from. Never fails. Worker thread. */
struct sr_api__sse *sr_api__sse_new(struct sr_api__worker *w, const struct sr_api__park *park,
                                    const struct sr_api__sse_ops *ops, void *owner,
                                    uint64_t *index);
/* Moves up to `len` queued bytes into buf. 0 with *eof false: nothing
 * queued now (h2: defer); *eof true: the stream is over (graceful stop). */
size_t sr_api__sse_read(struct sr_api__sse *s, uint8_t *buf, size_t len, bool *eof);
void sr_api__sse_free(struct sr_api__sse *s); /* NULL ok */
/* HTTP/1.1: after routing GET /events/stream, replaces c's HTTP/1.1 state
 * (c->proto->free) with an SSE stream: writes the head (close-delimited
 * body) and the replay. Takes over *park. Returns what c does next. */
int sr_api__sse_h1_start(struct sr_api__conn *c, struct sr_api__park *park, int minor);
/* sse.c internals the hub drives (worker thread, top-level callbacks). */
void sr_api__sse_deliver(struct sr_api__hub *hub, struct sr_event *const *evs, size_t n,
                         bool overflow);
void sr_api__sse_heartbeat(struct sr_api__hub *hub);
void sr_api__sse_stop_all(struct sr_api__hub *hub);

#endif
