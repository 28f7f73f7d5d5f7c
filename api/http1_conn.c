/* http1_conn: HTTP/1.1 connections. Feeds input to the parser (http1.c),
 * routes each request and writes the answer.
 *
 * Requests are answered in order, as soon as their head is parsed (the
 * content, if any, is skipped afterwards). A parked request (POST
 * /cache/refresh, POST /services/{name}/metrics) stops parsing until its
 * answer is written, which keeps pipelined answers in order. Bodies go out
 * without a copy: the evbuffer references the snapshot's bytes and its
 * cleanup drops the snapshot reference.
 *
 * Backpressure: parsing stops while the output holds SR_API_OUTPUT_HIGH
 * (a client pipelining without reading) and the bufferevent's read
 * watermark stops reading, so such a client costs a bounded amount.
 *
 * Upgrade: h2c (RFC 7540 §3.2, what `curl --http2 http://` sends): a
 * body-less HTTP/1.1 request with Upgrade: h2c, Connection: Upgrade,
 * HTTP2-Settings and exactly one valid HTTP2-Settings header gets 101 and
 * becomes stream 1 of an HTTP/2 session. Otherwise the Upgrade header is
 * ignored and the request answered in HTTP/1.1 (RFC 9110 §7.8 lets a
 * server ignore it; with a body we would have to read it all first). */
#include "api/api_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

struct h1 {
    struct sr_api__conn *conn;
    struct sr_api__h1_parser parser;
    struct sr_api__pending *pending; /* parked request, or NULL */
    struct sr_api__park park;        /* ... what it waits for */
    bool pending_head;               /* ... was a HEAD (never for POST; kept general) */
    bool pending_keep;               /* ... and may keep the connection */
    int pending_minor;
    bool peer_done;  /* EOF seen: close after the last answer */
    /* GET /events/stream routed: the connection becomes an event stream
     * (sse.c) once the parser loop has returned. */
    bool streaming;
    int stream_minor;
    bool served_any; /* a request was answered: IDLE, not HEAD, between them */
    /* Content of an answered request still being skipped: what was left,
     * and when that last moved (set_timer). */
    uint64_t body_mark;
    double body_at;
    /* An accepted Upgrade: h2c, done once the parser loop has returned. */
    bool upgrading;
    struct {
        unsigned char *settings;
        size_t settings_len;
        char *method, *target, *if_none_match, *if_match, *last_event_id;
    } up;
};

static void release_snapshot(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    sr_snapshot_release(arg);
}

static void release_owned(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    free(arg);
}

/* Queues the answer; takes over r. Returns 0 or -1 (close). */
static int send_response(struct h1 *h, struct sr_api__response *r, bool head, bool keep, int minor)
{
    struct sr_api__conn *c = h->conn;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char buf[768];
    size_t n = sr_api__h1_format_head(buf, sizeof(buf), r, keep, minor, sr_api__date(c->w));
    if (n == 0 || evbuffer_add(out, buf, n) != 0) {
        sr_api__response_clear(r);
        return -1;
    }
    if (head || r->status == 304 || sr_api__response_length(r) == 0) {
        sr_api__response_clear(r);
        return 0;
    }
    int rc = 0;
    if (r->len > 0 && r->len < SR_API_COPY_BELOW) {
        rc = evbuffer_add(out, r->body, r->len);
    } else if (r->len > 0) {
        if (r->snap != NULL)
            rc = evbuffer_add_reference(out, r->body, r->len, release_snapshot, r->snap);
        else if (r->frame != NULL)
            rc = evbuffer_add_reference(out, r->body, r->len, sr_api__frame_release, r->frame);
        else
            rc = evbuffer_add_reference(out, r->body, r->len, release_owned, r->owned);
        if (rc == 0) { /* the evbuffer owns it now */
            r->snap = NULL;
            r->frame = NULL;
            r->owned = NULL;
        }
    }
    if (rc != 0) {
        sr_api__response_clear(r);
        return -1;
    }
    if (r->tail_len > 0)
        rc = evbuffer_add(out, r->tail, r->tail_len);
    sr_api__response_clear(r);
    return rc == 0 ? 0 : -1;
}

static int process(struct h1 *h);
static int run(struct h1 *h);

static void on_parked_done(void *owner, int status)
{
    struct h1 *h = owner;
    struct sr_api__conn *c = h->conn;
    struct sr_api__response r;
    h->pending = NULL;
    sr_api__park_response(&c->api->router, &h->park, status, &r);
    sr_api__park_clear(&h->park);
    bool keep = h->pending_keep && !c->w->stopping && !h->peer_done;
    sr_log(SR_LOG_DEBUG, "api", "%s: parked POST -> %d (h1)", c->peer, r.status);
    int next;
    if (send_response(h, &r, h->pending_head, keep, h->pending_minor) != 0)
        next = SR_API_CONN_CLOSE;
    else if (!keep)
        next = SR_API_CONN_FLUSH_CLOSE;
    else
        next = run(h); /* pipelined requests waited for this answer */
    /* Called from the mailbox event: a top-level callback, so c may go. */
    sr_api__conn_next(c, next);
}

/* RFC 7540 §3.2 and §6.5.2: the values nghttp2 would refuse. */
static bool settings_ok(const unsigned char *p, size_t len)
{
    if (len % 6 != 0 || len / 6 > 32)
        return false; /* (more than 32: nghttp2's TOO_MANY_SETTINGS) */
    uint32_t no_priorities = UINT32_MAX; /* SETTINGS_NO_RFC7540_PRIORITIES seen */
    for (size_t i = 0; i < len; i += 6) {
        unsigned id = (unsigned)p[i] << 8 | p[i + 1];
        uint32_t v = (uint32_t)p[i + 2] << 24 | (uint32_t)p[i + 3] << 16 |
                     (uint32_t)p[i + 4] << 8 | p[i + 5];
        /* nghttp2 1.52's checks, so that what passes here passes there:
         * ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL (RFC 8441) and
         * NO_RFC7540_PRIORITIES (RFC 9218, which may not change) are 0/1. */
        if (((id == 2 || id == 8 || id == 9) && v > 1) || (id == 4 && v > 0x7fffffffu) ||
            (id == 5 && (v < 16384 || v > 16777215)))
            return false;
        if (id == 9) {
            if (no_priorities != UINT32_MAX && no_priorities != v)
                return false;
            no_priorities = v;
        }
    }
    return true;
}

/* Takes up an Upgrade: h2c if it is possible; true when it will happen. */
/* A list-valued field's lines joined (sr_api__h1_header_list), owned; NULL
 * when absent. */
static char *list_dup(const struct sr_api__h1_request *req, const char *name)
{
    char *joined;
    const char *v = sr_api__h1_header_list(req, name, &joined);
    return joined != NULL ? joined : v != NULL ? sr_strdup(v) : NULL;
}

static bool want_upgrade(struct h1 *h, const struct sr_api__h1_request *req)
{
    if (req->minor != 1 || req->has_body || h->conn->w->stopping)
        return false;
    const char *up = sr_api__h1_header(req, "upgrade");
    const char *conn = sr_api__h1_header(req, "connection");
    const char *hs = sr_api__h1_header(req, "http2-settings");
    if (up == NULL || conn == NULL || hs == NULL || !sr_api__has_token(up, "h2c") ||
        !sr_api__has_token(conn, "upgrade") || !sr_api__has_token(conn, "http2-settings") ||
        sr_api__h1_header_count(req, "http2-settings") != 1)
        return false;
    size_t n = strlen(hs);
    unsigned char *settings = sr_malloc(n * 3 / 4 + 4);
    long len = sr_api__base64url_decode(hs, n, settings);
    if (len < 0 || !settings_ok(settings, (size_t)len)) {
        free(settings);
        return false;
    }
    const char *lei = sr_api__h1_header(req, "last-event-id");
    h->up.settings = settings;
    h->up.settings_len = (size_t)len;
    h->up.method = sr_strdup(req->method);
    h->up.target = sr_strdup(req->target);
    h->up.if_none_match = list_dup(req, "if-none-match");
    h->up.if_match = list_dup(req, "if-match");
    h->up.last_event_id = lei ? sr_strdup(lei) : NULL;
    h->upgrading = true;
    return true;
}

static int dispatch(struct h1 *h, const struct sr_api__h1_request *req)
{
    struct sr_api__conn *c = h->conn;
    struct sr_api *api = c->api;
    bool head = strcmp(req->method, "HEAD") == 0;
    bool keep = req->keep_alive && !c->w->stopping;
    h->served_any = true;
    h->body_mark = 0; /* a new request's content: its own clock */

    if (want_upgrade(h, req))
        return SR_API_CONN_KEEP; /* run() switches once the parser is done */

    /* Answer the expectation so the client sends the content we must
     * skip; a final status without it would leave us waiting for bytes
     * the client may never send (RFC 9110 §10.1.1). */
    if (req->expect_continue && req->minor == 1 && req->content_length > 0)
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);

    char *inm_joined, *im_joined; /* the router copies what it keeps */
    struct sr_api__request rq = {
        .method = req->method,
        .target = req->target,
        .if_none_match = sr_api__h1_header_list(req, "if-none-match", &inm_joined),
        .if_match = sr_api__h1_header_list(req, "if-match", &im_joined),
        .last_event_id = sr_api__h1_header(req, "last-event-id"),
        .health_cache = &c->w->health,
    };
    struct sr_api__response r;
    enum sr_api__route_result res = sr_api__route(&api->router, &rq, &r, &h->park);
    free(inm_joined);
    free(im_joined);
    if (res == SR_API_ROUTE_PARK) {
        if (h->park.kind == SR_API_PARK_STREAM) {
            h->streaming = true; /* run() hands over once the parser is done */
            h->stream_minor = req->minor;
            return SR_API_CONN_KEEP;
        }
        h->pending = sr_api__park_start(c->w, &h->park, on_parked_done, h);
        if (h->pending != NULL) {
            h->pending_head = head;
            h->pending_keep = keep;
            h->pending_minor = req->minor;
            return SR_API_CONN_KEEP;
        }
        sr_api__park_response(&api->router, &h->park, -1, &r);
        sr_api__park_clear(&h->park);
    }
    sr_log(SR_LOG_DEBUG, "api", "%s: %s %s -> %d (h1)", c->peer, req->method, req->target,
           r.status);
    if (send_response(h, &r, head, keep, req->minor) != 0)
        return SR_API_CONN_CLOSE;
    return keep ? SR_API_CONN_KEEP : SR_API_CONN_FLUSH_CLOSE;
}

static int answer_error(struct h1 *h, int status)
{
    static const struct {
        int status;
        const char *code, *message;
    } errors[] = {
        {400, "bad_request", "malformed HTTP/1.1 request"},
        {408, "request_timeout", "the request head did not arrive in time"},
        {411, "length_required", "chunked request bodies are not supported; send Content-Length"},
        {413, "content_too_large", "request body over 1 MiB"},
        {414, "uri_too_long", "request line too long"},
        {431, "header_fields_too_large", "request header section too large or over 100 fields"},
        {501, "not_implemented", "unknown transfer coding; send Content-Length"},
        {505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are spoken here"},
    };
    const char *code = "bad_request", *message = "malformed HTTP/1.1 request";
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].status == status) {
            code = errors[i].code;
            message = errors[i].message;
        }
    sr_log(SR_LOG_DEBUG, "api", "%s: refused: %d %s (h1)", h->conn->peer, status, code);
    sr_api__count(h->conn->api->stats, SR_API_EP_OTHER, SR_API_METHOD_OTHER, status);
    struct sr_api__response r;
    sr_api__error_response(&h->conn->api->router, &r, status, code, message);
    /* A HEAD gets the head, with the length the content would have had
     * (RFC 9110 §9.3.2). */
    if (send_response(h, &r, h->parser.head, false, 1) != 0)
        return SR_API_CONN_CLOSE;
    return SR_API_CONN_FLUSH_CLOSE;
}

/* Parses and answers what the input holds, until it runs out, a request
 * parks, an upgrade is accepted, the output is too full, or the connection
 * is to close. */
static int process(struct h1 *h)
{
    struct bufferevent *bev = h->conn->bev;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    while (h->pending == NULL && !h->upgrading && !h->streaming) {
        if (evbuffer_get_length(out) >= SR_API_OUTPUT_HIGH) {
            /* A client pipelining without reading: resume in on_write. */
            sr_api__conn_read(h->conn, false);
            return SR_API_CONN_KEEP;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t used = 0;
        int rc = sr_api__h1_parse(&h->parser, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (rc < 0)
            return answer_error(h, -rc);
        if (rc == SR_API_H1_REQUEST) {
            int next = dispatch(h, &h->parser.req);
            if (next != SR_API_CONN_KEEP)
                return next;
        }
    }
    if (h->upgrading || h->streaming)
        return SR_API_CONN_KEEP;
    if (h->pending == NULL && h->peer_done)
        return evbuffer_get_length(out) ? SR_API_CONN_FLUSH_CLOSE : SR_API_CONN_CLOSE;
    sr_api__conn_read(h->conn, true);
    return SR_API_CONN_KEEP;
}

static void set_timer(struct h1 *h)
{
    struct sr_api__conn *c = h->conn;
    size_t in = evbuffer_get_length(bufferevent_get_input(c->bev));
    size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
    enum sr_api__timer t;
    uint64_t left = h->parser.body_left;
    if (h->pending != NULL || out > 0) {
        t = SR_API_TIMER_NONE; /* busy; the write timeout covers a stalled flush */
    } else if (left > 0) {
        /* Content being skipped is not part of the head: it gets
         * idle_timeout_sec from its last progress. */
        if (left != h->body_mark) {
            h->body_mark = left;
            h->body_at = sr_mono_coarse();
        }
        sr_api__conn_timer_at(c, SR_API_TIMER_BODY, h->body_at + c->api->lim.idle_timeout_sec);
        return;
    } else if (!sr_api__h1_idle(&h->parser) || in > 0 || !h->served_any)
        t = SR_API_TIMER_HEAD;
    else
        t = SR_API_TIMER_IDLE;
    sr_api__conn_timer(c, t);
}


/* process(), then the switch to HTTP/2 if an upgrade was accepted. Every
 * top-level entry goes through here. */
static int run(struct h1 *h)
{
    int next = process(h);
    if (h->streaming && next == SR_API_CONN_KEEP)
        return sr_api__sse_h1_start(h->conn, &h->park, h->stream_minor); /* frees h */
    if (!h->upgrading || next != SR_API_CONN_KEEP) {
        if (next == SR_API_CONN_KEEP)
            set_timer(h);
        return next;
    }
    struct sr_api__conn *c = h->conn;
    struct sr_api__upgrade u = {
        .settings = h->up.settings,
        .settings_len = h->up.settings_len,
        .method = h->up.method,
        .target = h->up.target,
        .if_none_match = h->up.if_none_match,
        .if_match = h->up.if_match,
        .last_event_id = h->up.last_event_id,
    };
    sr_log(SR_LOG_DEBUG, "api", "%s: %s %s: upgrade to h2c", c->peer, u.method, u.target);
    /* It copies what it needs from u before freeing h (and so u). */
    return sr_api__http2_upgrade(c, &u);
}

static int on_read(struct sr_api__conn *c)
{
    return run(c->impl);
}

static int on_write(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    if (h->pending != NULL)
        return SR_API_CONN_KEEP;
    /* Stopping and nothing left in progress: done with this client. */
    if (c->w->stopping && sr_api__h1_idle(&h->parser) &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        return SR_API_CONN_CLOSE;
    return run(h);
}

static int on_eof(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    h->peer_done = true;
    /* A client that leaves a long-poll has given up on it (as Consul
     * clients do): no need to hold the connection until the wait ends. */
    if (h->pending != NULL && h->park.kind == SR_API_PARK_WATCH)
        return SR_API_CONN_CLOSE;
    /* A half-closed client may still read: answer what it already sent. */
    if (h->pending != NULL) {
        sr_api__conn_read(c, false);
        return SR_API_CONN_KEEP;
    }
    return run(h);
}

static int on_shutdown(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    /* A parked request or a half-received one gets its answer, with
     * Connection: close (dispatch sees w->stopping). */
    if (h->pending != NULL || !sr_api__h1_idle(&h->parser) ||
        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return SR_API_CONN_KEEP;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return SR_API_CONN_FLUSH_CLOSE;
    return SR_API_CONN_CLOSE; /* idle keep-alive connection */
}

static int on_timeout(struct sr_api__conn *c, enum sr_api__timer kind)
{
    struct h1 *h = c->impl;
    if (kind == SR_API_TIMER_BODY) {
        /* The request was answered as soon as its head was in. */
        sr_log(SR_LOG_DEBUG, "api", "%s: request content stopped for %u s: closing (h1)", c->peer,
               c->api->lim.idle_timeout_sec);
        return SR_API_CONN_FLUSH_CLOSE; /* lingers: unread content would make close() an RST */
    }
    bool partial = !sr_api__h1_idle(&h->parser) ||
                   evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
    if (kind == SR_API_TIMER_HEAD && partial) {
        sr_log(SR_LOG_DEBUG, "api", "%s: request head not complete within %u s (h1)", c->peer,
               c->api->lim.header_timeout_sec);
        evbuffer_drain(bufferevent_get_input(c->bev), (size_t)-1);
        return answer_error(h, 408);
    }
    sr_log(SR_LOG_DEBUG, "api", "%s: %s for %u s: closing (h1)", c->peer,
           h->served_any ? "idle" : "no request",
           kind == SR_API_TIMER_HEAD ? c->api->lim.header_timeout_sec
                                     : c->api->lim.idle_timeout_sec);
    return SR_API_CONN_CLOSE;
}

static void h1_free(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    sr_api__pending_cancel(h->pending);
    sr_api__park_clear(&h->park);
    sr_api__h1_free(&h->parser);
    free(h->up.settings);
    free(h->up.method);
    free(h->up.target);
    free(h->up.if_none_match);
    free(h->up.if_match);
    free(h->up.last_event_id);
    free(h);
    c->impl = NULL;
}

int sr_api__http1_attach(struct sr_api__conn *c)
{
    struct h1 *h = sr_calloc(1, sizeof(*h));
    h->conn = c;
    sr_api__h1_init_limits(&h->parser, c->api->lim.max_request_line, c->api->lim.max_header_bytes);
    c->impl = h;
    return 0;
}

const struct sr_api__proto sr_api__http1 = {
    .name = "HTTP/1.1",
    .on_read = on_read,
    .on_write = on_write,
    .on_eof = on_eof,
    .on_shutdown = on_shutdown,
    .on_timeout = on_timeout,
    .free = h1_free,
};
