/* http1_conn: HTTP/1.1 connections. Feeds input to the parser (http1.c),
 * routes each request and writes the answer.
 *
 * Requests are answered in order, as soon as their head is parsed (the
 * content, if any, is skipped afterwards). A parked POST /cache/refresh
 * stops parsing until its answer is written, which keeps pipelined answers
 * in order. Bodies go out without a copy: the evbuffer references the
 * snapshot's bytes and its cleanup drops the snapshot reference. */
#include "api/api_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

struct h1 {
    struct sr_api__conn *conn;
    struct sr_api__h1_parser parser;
    struct sr_api__pending *pending; /* parked refresh, or NULL */
    bool pending_head;               /* ... was a HEAD (never for POST; kept general) */
    bool pending_keep;               /* ... and may keep the connection */
    int pending_minor;
    bool peer_done; /* EOF seen: close after the last answer */
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
    char buf[512];
    size_t n = sr_api__h1_format_head(buf, sizeof(buf), r, keep, minor, sr_api__date(c->api));
    if (n == 0 || evbuffer_add(out, buf, n) != 0) {
        sr_api__response_clear(r);
        return -1;
    }
    if (head || r->len == 0) {
        sr_api__response_clear(r);
        return 0;
    }
    int rc;
    if (r->snap != NULL)
        rc = evbuffer_add_reference(out, r->body, r->len, release_snapshot, r->snap);
    else
        rc = evbuffer_add_reference(out, r->body, r->len, release_owned, r->owned);
    if (rc != 0) {
        sr_api__response_clear(r);
        return -1;
    }
    memset(r, 0, sizeof(*r)); /* the evbuffer owns it now */
    return 0;
}

static int process(struct h1 *h);

static void on_refresh_done(void *owner, int status)
{
    struct h1 *h = owner;
    struct sr_api__conn *c = h->conn;
    struct sr_api__response r;
    h->pending = NULL;
    sr_api__refresh_response(&c->api->router, status, &r);
    bool keep = h->pending_keep && !c->api->stopping && !h->peer_done;
    sr_log(SR_LOG_DEBUG, "api", "%s: POST /cache/refresh -> %d (h1)", c->peer, r.status);
    int next;
    if (send_response(h, &r, h->pending_head, keep, h->pending_minor) != 0)
        next = SR_API_CONN_CLOSE;
    else if (!keep)
        next = SR_API_CONN_FLUSH_CLOSE;
    else
        next = process(h); /* pipelined requests waited for this answer */
    /* Called from the mailbox event: a top-level callback, so c may go. */
    sr_api__conn_next(c, next);
}

static int dispatch(struct h1 *h, const struct sr_api__h1_request *req)
{
    struct sr_api__conn *c = h->conn;
    struct sr_api *api = c->api;
    bool head = strcmp(req->method, "HEAD") == 0;
    bool keep = req->keep_alive && !api->stopping;

    /* Answer the expectation so the client sends the content we must
     * skip; a final status without it would leave us waiting for bytes
     * the client may never send (RFC 9110 §10.1.1). */
    if (req->expect_continue && req->minor == 1 && req->content_length > 0)
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);

    struct sr_api__response r;
    if (sr_api__route(&api->router, req->method, req->target, &r) == SR_API_ROUTE_REFRESH) {
        h->pending = sr_api__refresh_start(api, on_refresh_done, h);
        if (h->pending != NULL) {
            h->pending_head = head;
            h->pending_keep = keep;
            h->pending_minor = req->minor;
            return SR_API_CONN_KEEP;
        }
        sr_api__refresh_response(&api->router, -1, &r);
    }
    sr_log(SR_LOG_DEBUG, "api", "%s: %s %s -> %d (h1)", c->peer, req->method, req->target,
           r.status);
    if (send_response(h, &r, head, keep, req->minor) != 0)
        return SR_API_CONN_CLOSE;
    return keep ? SR_API_CONN_KEEP : SR_API_CONN_FLUSH_CLOSE;
}

static int parse_error(struct h1 *h, int status)
{
    static const struct {
        int status;
        const char *code, *message;
    } errors[] = {
        {400, "bad_request", "malformed HTTP/1.1 request"},
        {411, "length_required", "chunked request bodies are not supported; send Content-Length"},
        {413, "content_too_large", "request body over 1 MiB"},
        {414, "uri_too_long", "request line over 8 KiB"},
        {431, "header_fields_too_large", "request headers over 64 KiB or 100 fields"},
        {505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are spoken here"},
    };
    const char *code = "bad_request", *message = "malformed HTTP/1.1 request";
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].status == status) {
            code = errors[i].code;
            message = errors[i].message;
        }
    sr_log(SR_LOG_DEBUG, "api", "%s: refused: %d %s (h1)", h->conn->peer, status, code);
    struct sr_api__response r;
    sr_api__error_response(&r, status, code, message);
    if (send_response(h, &r, false, false, 1) != 0)
        return SR_API_CONN_CLOSE;
    return SR_API_CONN_FLUSH_CLOSE;
}

/* Parses and answers what the input holds, until it runs out, a refresh
 * parks, the output is too full, or the connection is to close. */
static int process(struct h1 *h)
{
    struct bufferevent *bev = h->conn->bev;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    while (h->pending == NULL) {
        if (evbuffer_get_length(out) >= SR_API_OUTPUT_HIGH) {
            /* A client pipelining without reading: resume in on_write. */
            bufferevent_disable(bev, EV_READ);
            return SR_API_CONN_KEEP;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t used = 0;
        int rc = sr_api__h1_parse(&h->parser, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (rc < 0)
            return parse_error(h, -rc);
        if (rc == SR_API_H1_REQUEST) {
            int next = dispatch(h, &h->parser.req);
            if (next != SR_API_CONN_KEEP)
                return next;
        }
    }
    if (h->pending == NULL && h->peer_done)
        return evbuffer_get_length(out) ? SR_API_CONN_FLUSH_CLOSE : SR_API_CONN_CLOSE;
    bufferevent_enable(bev, EV_READ);
    return SR_API_CONN_KEEP;
}

static int on_read(struct sr_api__conn *c)
{
    return process(c->impl);
}

static int on_write(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    if (h->pending != NULL)
        return SR_API_CONN_KEEP;
    /* Stopping and nothing left in progress: done with this client. */
    if (c->api->stopping && sr_api__h1_idle(&h->parser) &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        return SR_API_CONN_CLOSE;
    return process(h);
}

static int on_eof(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    h->peer_done = true;
    /* A half-closed client may still read: answer what it already sent. */
    if (h->pending != NULL) {
        bufferevent_disable(c->bev, EV_READ);
        return SR_API_CONN_KEEP;
    }
    return process(h);
}

static int on_shutdown(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    /* A parked request or a half-received one gets its answer, with
     * Connection: close (dispatch sees api->stopping). */
    if (h->pending != NULL || !sr_api__h1_idle(&h->parser) ||
        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return SR_API_CONN_KEEP;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return SR_API_CONN_FLUSH_CLOSE;
    return SR_API_CONN_CLOSE; /* idle keep-alive connection */
}

static void h1_free(struct sr_api__conn *c)
{
    struct h1 *h = c->impl;
    sr_api__pending_cancel(h->pending);
    sr_api__h1_free(&h->parser);
    free(h);
    c->impl = NULL;
}

int sr_api__http1_attach(struct sr_api__conn *c)
{
    struct h1 *h = sr_calloc(1, sizeof(*h));
    h->conn = c;
    sr_api__h1_init(&h->parser);
    c->impl = h;
    return 0;
}

const struct sr_api__proto sr_api__http1 = {
    .name = "HTTP/1.1",
    .on_read = on_read,
    .on_write = on_write,
    .on_eof = on_eof,
    .on_shutdown = on_shutdown,
    .free = h1_free,
};
