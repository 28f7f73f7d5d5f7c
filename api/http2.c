/* http2: h2c (prior knowledge) connections on an nghttp2 server session.
 *
 * The plumbing follows nghttp2's examples/libevent-server.c without TLS:
 * read -> nghttp2_session_mem_recv -> nghttp2_session_send; send_callback
 * appends to the bufferevent and says WOULDBLOCK above a threshold, and the
 * write callback resumes. The connection closes when the session wants
 * neither to read nor to write and the output is flushed.
 *
 * A request is dispatched when its END_STREAM arrives (on HEADERS or DATA).
 * A stream holds its response, and so the snapshot reference behind the
 * body, until nghttp2 reports it closed; the data provider copies straight
 * from the snapshot bytes into nghttp2's frame buffer.
 *
 * Graceful stop (RFC 9113 §6.8): a GOAWAY shutdown notice, then a PING;
 * the PING's ACK proves the client has seen the notice, so the final GOAWAY
 * can name the last stream we really got. A client that never answers is
 * closed when the grace period ends. */
#include "api/api_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

#define MAX_STREAMS 100

struct stream {
    struct h2 *h2;
    int32_t id;
    struct stream *prev, *next;
    char method[24];
    char *path; /* owned */
    size_t nheaders, header_bytes;
    uint64_t body_len;
    int error; /* status to answer instead of routing, or 0 */
    bool head;
    bool responded;   /* a response was submitted */
    bool reset_after; /* the request is still arriving: reset it once
                         answered (RFC 9113 §8.1) */
    struct sr_api__response resp;
    size_t off; /* bytes of resp.body handed to nghttp2 */
    struct sr_api__pending *pending;
};

struct h2 {
    struct sr_api__conn *conn;
    nghttp2_session *session;
    struct stream *streams;
    bool notice_sent; /* shutdown notice submitted */
    bool ping_sent;   /* PING submitted after the notice went out */
    bool goaway_sent; /* final GOAWAY submitted */
};

/* ---- streams --------------------------------------------------------------- */

static struct stream *stream_new(struct h2 *h2, int32_t id)
{
    struct stream *s = sr_calloc(1, sizeof(*s));
    s->h2 = h2;
    s->id = id;
    s->next = h2->streams;
    if (h2->streams)
        h2->streams->prev = s;
    h2->streams = s;
    return s;
}

static void stream_free(struct stream *s)
{
    struct h2 *h2 = s->h2;
    if (s->prev)
        s->prev->next = s->next;
    else
        h2->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    sr_api__pending_cancel(s->pending);
    sr_api__response_clear(&s->resp);
    free(s->path);
    free(s);
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)id;
    (void)user_data;
    struct stream *s = source->ptr;
    size_t n = s->resp.len - s->off;
    if (n > length)
        n = length;
    memcpy(buf, s->resp.body + s->off, n);
    s->off += n;
    if (s->off == s->resp.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

/* Submits s->resp (kept in the stream until it closes). */
static void respond(struct stream *s)
{
    struct h2 *h2 = s->h2;
    struct sr_api__response *r = &s->resp;
    char status[8], len[24];
    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(len, sizeof(len), "%zu", r->len);
    nghttp2_nv nva[] = {
        NV(":status", status),
        NV("content-type", r->content_type),
        NV("content-length", len),
        NV("date", sr_api__date(h2->conn->api)),
        NV("server", SR_API_SERVER_HEADER),
        NV("cache-control", "no-cache"),
        NV("allow", r->allow ? r->allow : ""),
    };
    size_t nvlen = sizeof(nva) / sizeof(nva[0]) - (r->allow ? 0 : 1);
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_body};
    s->responded = true;
    int rv = nghttp2_submit_response(h2->session, s->id, nva, nvlen,
                                     s->head || r->len == 0 ? NULL : &dp);
    if (rv != 0) {
        sr_log(SR_LOG_DEBUG, "api", "%s: stream %" PRId32 ": cannot respond: %s", h2->conn->peer,
               s->id, nghttp2_strerror(rv));
        sr_api__response_clear(r);
    }
}

static void respond_error(struct stream *s, int status, const char *code, const char *message)
{
    sr_api__response_clear(&s->resp);
    sr_api__error_response(&s->resp, status, code, message);
    respond(s);
}

static void on_refresh_done(void *owner, int status)
{
    struct stream *s = owner;
    struct h2 *h2 = s->h2;
    s->pending = NULL;
    sr_api__refresh_response(&h2->conn->api->router, status, &s->resp);
    sr_log(SR_LOG_DEBUG, "api", "%s: POST /cache/refresh -> %d (h2 stream %" PRId32 ")",
           h2->conn->peer, s->resp.status, s->id);
    respond(s);
    /* A top-level callback (the mailbox event): safe to send and close. */
    struct sr_api__conn *c = h2->conn;
    sr_api__conn_next(c, c->proto->on_write(c));
}

static void dispatch(struct stream *s)
{
    struct sr_api *api = s->h2->conn->api;
    if (s->responded || s->pending)
        return;
    if (s->error == 414) {
        respond_error(s, 414, "uri_too_long", ":path over 8 KiB");
        return;
    }
    if (s->error == 431) {
        respond_error(s, 431, "header_fields_too_large",
                      "request headers over 64 KiB or 100 fields");
        return;
    }
    if (s->path == NULL || s->method[0] == '\0') {
        respond_error(s, 400, "bad_request", "missing :method or :path");
        return;
    }
    if (sr_api__route(&api->router, s->method, s->path, &s->resp) == SR_API_ROUTE_REFRESH) {
        s->pending = sr_api__refresh_start(api, on_refresh_done, s);
        if (s->pending != NULL)
            return;
        sr_api__refresh_response(&api->router, -1, &s->resp);
    }
    sr_log(SR_LOG_DEBUG, "api", "%s: %s %s -> %d (h2 stream %" PRId32 ")", s->h2->conn->peer,
           s->method, s->path, s->resp.status, s->id);
    respond(s);
}

/* ---- nghttp2 callbacks ------------------------------------------------------ */

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    (void)session;
    (void)flags;
    struct h2 *h2 = user_data;
    struct evbuffer *out = bufferevent_get_output(h2->conn->bev);
    if (evbuffer_get_length(out) >= SR_API_OUTPUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(out, data, length) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)length;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2 *h2 = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *s = stream_new(h2, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s == NULL || s->error)
        return 0;
    s->header_bytes += namelen + valuelen + 4; /* as an HTTP/1 line would count */
    if (++s->nheaders > SR_API_MAX_HEADERS || s->header_bytes > SR_API_MAX_HEADER_BLOCK) {
        s->error = 431;
        return 0;
    }
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        size_t n = valuelen < sizeof(s->method) - 1 ? valuelen : sizeof(s->method) - 1;
        memcpy(s->method, value, n);
        s->method[n] = '\0';
        s->head = strcmp(s->method, "HEAD") == 0;
    } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        if (valuelen > SR_API_MAX_REQUEST_LINE) {
            s->error = 414;
            return 0;
        }
        free(s->path);
        s->path = sr_strndup((const char *)value, valuelen);
    } else if (namelen == 14 && memcmp(name, "content-length", 14) == 0) {
        /* nghttp2 has validated the digits; refuse early what is too big. */
        if (valuelen > 7 || strtoull((const char *)value, NULL, 10) > SR_API_MAX_BODY)
            s->body_len = SR_API_MAX_BODY + 1;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)data;
    (void)user_data;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s == NULL)
        return 0;
    /* Content is not read by any endpoint; it is only counted. */
    s->body_len += len;
    return 0;
}

static void too_large(struct stream *s)
{
    s->reset_after = true;
    respond_error(s, 413, "content_too_large", "request body over 1 MiB");
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2 *h2 = user_data;
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) && h2->ping_sent &&
        !h2->goaway_sent) {
        h2->goaway_sent = true;
        nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session), NGHTTP2_NO_ERROR,
                              NULL, 0);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s == NULL || s->responded)
        return 0;
    if (s->body_len > SR_API_MAX_BODY) {
        too_large(s);
        return 0;
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        dispatch(s);
    } else if (s->error && frame->hd.type == NGHTTP2_HEADERS) {
        /* No need to wait for content we would refuse anyway. */
        s->reset_after = true;
        dispatch(s);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2 *h2 = user_data;
    /* nghttp2 may send a PING ahead of a GOAWAY submitted before it; only
     * a PING sent after the notice proves, once acknowledged, that the
     * client has seen the notice. */
    if (frame->hd.type == NGHTTP2_GOAWAY && h2->notice_sent && !h2->ping_sent) {
        h2->ping_sent = true;
        nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, NULL);
        return 0;
    }
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    /* Answered early: tell the client to stop sending, without error. */
    if (s != NULL && s->reset_after)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)error_code;
    (void)user_data;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s != NULL) {
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        stream_free(s);
    }
    return 0;
}

/* ---- connection -------------------------------------------------------------- */

/* Sends what nghttp2 has queued and decides what the connection does next. */
static int flush(struct h2 *h2)
{
    struct bufferevent *bev = h2->conn->bev;
    int rv = nghttp2_session_send(h2->session);
    if (rv != 0) {
        sr_log(SR_LOG_DEBUG, "api", "%s: h2 send: %s", h2->conn->peer, nghttp2_strerror(rv));
        return SR_API_CONN_CLOSE;
    }
    bool want_read = nghttp2_session_want_read(h2->session);
    bool want_write = nghttp2_session_want_write(h2->session);
    size_t pending_out = evbuffer_get_length(bufferevent_get_output(bev));
    if (!want_read && !want_write)
        return pending_out ? SR_API_CONN_FLUSH_CLOSE : SR_API_CONN_CLOSE;
    /* Backpressure: no new requests while the client is not reading. */
    if (pending_out >= SR_API_OUTPUT_HIGH || !want_read)
        bufferevent_disable(bev, EV_READ);
    else
        bufferevent_enable(bev, EV_READ);
    return SR_API_CONN_KEEP;
}

static int on_read(struct sr_api__conn *c)
{
    struct h2 *h2 = c->impl;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        evbuffer_peek(in, -1, NULL, &v, 1);
        ssize_t n = nghttp2_session_mem_recv(h2->session, v.iov_base, v.iov_len);
        if (n < 0) {
            sr_log(SR_LOG_DEBUG, "api", "%s: h2 recv: %s", c->peer, nghttp2_strerror((int)n));
            return SR_API_CONN_CLOSE;
        }
        evbuffer_drain(in, (size_t)n);
    }
    return flush(h2);
}

static int on_write(struct sr_api__conn *c)
{
    return flush(c->impl);
}

static int on_eof(struct sr_api__conn *c)
{
    (void)c;
    /* A client that stops sending cannot acknowledge anything either. */
    return SR_API_CONN_CLOSE;
}

static int on_shutdown(struct sr_api__conn *c)
{
    struct h2 *h2 = c->impl;
    if (!h2->notice_sent) {
        h2->notice_sent = true;
        nghttp2_submit_shutdown_notice(h2->session);
    }
    return flush(h2);
}

static void h2_free(struct sr_api__conn *c)
{
    struct h2 *h2 = c->impl;
    /* nghttp2_session_del does not call on_stream_close: free ours here. */
    while (h2->streams != NULL)
        stream_free(h2->streams);
    nghttp2_session_del(h2->session);
    free(h2);
    c->impl = NULL;
}

int sr_api__http2_attach(struct sr_api__conn *c)
{
    struct h2 *h2 = sr_calloc(1, sizeof(*h2));
    nghttp2_session_callbacks *cbs = NULL;
    int rv = nghttp2_session_callbacks_new(&cbs);
    if (rv != 0)
        goto fail;
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    rv = nghttp2_session_server_new(&h2->session, cbs, h2);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        goto fail;

    /* Our SETTINGS go first (RFC 9113 §3.4: the server preface). */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, SR_API_MAX_HEADER_BLOCK},
    };
    rv = nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (rv != 0)
        goto fail;
    h2->conn = c;
    c->impl = h2;
    return 0;

fail:
    sr_log(SR_LOG_WARNING, "api", "%s: cannot start an HTTP/2 session: %s", c->peer,
           nghttp2_strerror(rv));
    nghttp2_session_del(h2->session);
    free(h2);
    return -1;
}

const struct sr_api__proto sr_api__http2 = {
    .name = "HTTP/2 (h2c)",
    .on_read = on_read,
    .on_write = on_write,
    .on_eof = on_eof,
    .on_shutdown = on_shutdown,
    .free = h2_free,
};
