/* http2: h2c connections on an nghttp2 server session (prior knowledge, or
 * upgraded from HTTP/1.1).
 *
 * The plumbing follows nghttp2's examples/libevent-server.c without TLS:
 * read -> nghttp2_session_mem_recv -> nghttp2_session_send; send_callback
 * appends to a staging evbuffer, moved to the bufferevent's output after
 * the send, and says WOULDBLOCK above a threshold; the write callback
 * resumes. The connection closes when the session wants
 * neither to read nor to write and the output is flushed. Protocol errors
 * (RFC 9113 §5.4) are nghttp2's: it answers GOAWAY or RST_STREAM with the
 * right code before our callbacks see them. Request header validation
 * (§8.2, §8.3: pseudo-headers, uppercase names, connection-specific
 * fields, content-length against DATA) is h2_check.c's, with nghttp2's own
 * HTTP messaging checks turned off: malformed requests are reset with
 * PROTOCOL_ERROR (reject()).
 *
 * A request is dispatched when its END_STREAM arrives (on HEADERS or DATA).
 * Response bodies go out without a copy: the data source answers
 * NGHTTP2_DATA_FLAG_NO_COPY and send_data_callback puts the 9-byte frame
 * header, then the snapshot's bytes by reference, into the output evbuffer.
 * Those references may outlive the stream, so a body is a small refcounted
 * holder (struct body) shared by the stream and every evbuffer chain that
 * points into it; the snapshot reference goes when the last one does.
 *
 * Timers: HEAD while a request has begun and not fully arrived (or none
 * came yet on a new connection), IDLE while no stream is open; either ends
 * the connection with GOAWAY(NO_ERROR).
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

#define INM_MAX 1024
#define CLOSED_SLOTS 256 /* client stream IDs whose closing is remembered */
#define LAST_EVENT_ID_MAX 64 /* longer is no revision: not kept */

/* A response body shared by its stream and the evbuffer chains that
 * reference it. Worker thread only, so the count is plain. */
struct body {
    unsigned refs;
    struct sr_api__pool *pool; /* where it came from */
    struct sr_api__response r; /* also the source of the header block (on_send) */
};

struct stream {
    struct h2 *h2;
    int32_t id;
    struct stream *prev, *next;
    char method[24];
    char *path;          /* path_buf, or owned when longer */
    char path_buf[96];
    char *if_none_match; /* owned, or NULL */
    char *if_match;      /* owned, or NULL */
    char *last_event_id; /* owned, or NULL */
    size_t nheaders, header_bytes;
    uint64_t body_len;
    struct sr_api__h2_check check; /* RFC 9113 §8.2-8.3 (h2_check.c) */
    bool rejected;    /* malformed: reset with PROTOCOL_ERROR, never answered */
    int error;        /* status to answer instead of routing, or 0 */
    bool head;
    bool expect_continue; /* Expect: 100-continue */
    uint8_t interim_due;  /* 100 (Continue) HEADERS submitted, not yet encoded */
    bool ended;       /* the client's END_STREAM arrived */
    bool complete;    /* the whole request arrived (or it was answered early) */
    bool responded;   /* a response was submitted */
    bool reset_after; /* the request is still arriving: reset it once
                         answered (RFC 9113 §8.1) */
    struct body *body;
    size_t wire_off; /* bytes of the body already put in the output */
    double moved_at; /* its response last made progress (see scan_stalled), or 0 */
    double body_at;  /* its request's content last made progress (while incomplete) */
    struct sr_api__pending *pending;
    struct sr_api__park park;
    struct sr_api__sse *sse; /* GET /events/stream: a long-lived response */
};

struct h2 {
    struct sr_api__conn *conn;
    nghttp2_session *session;
    struct sr_api__pool *pool; /* the worker's: streams, bodies, nghttp2's blocks */
    /* Frames are staged here during nghttp2_session_send, then moved to
     * the bufferevent's output at once: every evbuffer_add to that output
     * runs the bufferevent's callbacks. */
    struct evbuffer *stage;
    size_t out_before; /* the output's length when the send began */
    uint64_t data_sent, data_mark; /* DATA payload bytes sent; at set_timer */
    double now, next_scan;         /* flush's clock; when scan_stalled looks again */
    struct sr_api__hpack hpack; /* our response header blocks (see on_send) */
    struct stream *streams;
    size_t nstreams;
    struct stream *hdr_stream; /* the stream whose header block is being read */
    int32_t head_id;    /* the stream of a header block still arriving, or 0 */
    uint32_t head_seq, head_timed; /* header blocks begun; the one HEAD times */
    size_t nincomplete; /* streams whose request has not fully arrived */
    bool served_any;    /* a request began: IDLE, not HEAD, when none is open */
    bool notice_sent;   /* shutdown notice submitted */
    bool ping_sent;     /* PING submitted after the notice went out */
    bool goaway_sent;   /* final GOAWAY submitted */
    bool close_after_goaway; /* a timeout GOAWAY: close once it is out */
    bool peer_eof;      /* the client half-closed: close once answered */
    bool stalled;       /* set_timer: a response waits for the client's window */
    bool body_paused;   /* set_timer: content was due while reading was paused */
    bool failed;        /* nghttp2 returned a fatal error: send nothing more */
    bool any_reset_after; /* a stream was ever marked reset_after (else
                             on_frame_send need not look streams up) */
    /* Upgraded from HTTP/1.1: stream 1's DATA waits for the client's
     * preface. Clients read the 101 into a fixed buffer (curl: 32 KiB) and
     * fail if a large response arrives right behind it. */
    bool hold_data;
    /* A frame-header scanner ahead of nghttp2 (see scan()). */
    size_t scan_skip;      /* bytes of preface or payload still to pass */
    uint8_t scan_hd[9];    /* the frame header being gathered */
    size_t scan_hd_len;
    int32_t max_client_id; /* highest client stream ID seen */
    /* How recent streams closed. nghttp2 forgets a stream when it closes
     * (no_closed_streams: keeping them cost ~500 bytes for each of up to
     * MAX_CONCURRENT_STREAMS per connection), so scan() judges frames on
     * closed streams from this: two bits per stream ID (enum closed), a
     * ring over the last CLOSED_SLOTS IDs up to max_client_id. */
    uint8_t closed[CLOSED_SLOTS / 4];
};

/* ---- bodies and streams ------------------------------------------------------ */

static void body_unref(struct body *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    sr_api__response_clear(&b->r);
    sr_api__pool_release(b->pool, b);
}

static void release_body(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    body_unref(arg);
}

static void set_path(struct stream *s, const char *p, size_t n)
{
    if (s->path != s->path_buf)
        free(s->path);
    if (n < sizeof(s->path_buf)) {
        memcpy(s->path_buf, p, n);
        s->path_buf[n] = '\0';
        s->path = s->path_buf;
    } else {
        s->path = sr_strndup(p, n);
    }
}

/* ---- closed streams (see struct h2) ------------------------------------------ */

enum closed {
    CLOSED_SKIPPED,   /* no HEADERS came on it: implicitly closed (§5.1.1) */
    CLOSED_ANNOUNCED, /* its HEADERS came: open, or not yet read by nghttp2,
                         or refused by it */
    CLOSED_ENDED,     /* closed after the client's END_STREAM */
    CLOSED_CUT        /* reset while the client could still be sending */
};

static bool closed_in_window(const struct h2 *h2, int32_t id)
{
    return id > h2->max_client_id - 2 * CLOSED_SLOTS && id <= h2->max_client_id;
}

static void closed_set(struct h2 *h2, int32_t id, enum closed v)
{
    unsigned slot = (unsigned)(id >> 1) % CLOSED_SLOTS, shift = (slot % 4) * 2;
    uint8_t *b = &h2->closed[slot / 4];
    *b = (uint8_t)((*b & ~(3u << shift)) | (unsigned)v << shift);
}

/* The record of a client stream ID inside the window (closed_in_window). */
static enum closed closed_get(const struct h2 *h2, int32_t id)
{
    unsigned slot = (unsigned)(id >> 1) % CLOSED_SLOTS;
    return (enum closed)((h2->closed[slot / 4] >> ((slot % 4) * 2)) & 3u);
}

/* HEADERS open client stream `id`, above max_client_id: the IDs it skips
 * and it take over their slots. 64-bit: id may be 2^31 - 1. */
static void closed_announce(struct h2 *h2, int32_t id)
{
    int64_t from = (int64_t)h2->max_client_id + 2;
    if (from < (int64_t)id - 2 * CLOSED_SLOTS + 2)
        from = (int64_t)id - 2 * CLOSED_SLOTS + 2;
    for (int64_t i = from; i < id; i += 2)
        closed_set(h2, (int32_t)i, CLOSED_SKIPPED);
    closed_set(h2, id, CLOSED_ANNOUNCED);
    h2->max_client_id = id;
}

static struct stream *stream_new(struct h2 *h2, int32_t id)
{
    struct stream *s = sr_api__pool_calloc(h2->pool, 1, sizeof(*s));
    sr_api__h2_check_init(&s->check);
    s->h2 = h2;
    s->id = id;
    s->next = h2->streams;
    if (h2->streams)
        h2->streams->prev = s;
    h2->streams = s;
    h2->nstreams++;
    h2->nincomplete++;
    h2->served_any = true;
    return s;
}

static void mark_complete(struct stream *s)
{
    if (!s->complete) {
        s->complete = true;
        s->h2->nincomplete--;
    }
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
    h2->nstreams--;
    mark_complete(s);
    sr_api__pending_cancel(s->pending);
    sr_api__park_clear(&s->park);
    sr_api__sse_free(s->sse);
    body_unref(s->body);
    if (s->path != s->path_buf)
        free(s->path);
    free(s->if_none_match);
    free(s->if_match);
    free(s->last_event_id);
    if (h2->hdr_stream == s)
        h2->hdr_stream = NULL;
    if (h2->head_id == s->id)
        h2->head_id = 0; /* reset inside its header block */
    sr_api__pool_release(h2->pool, s);
}

/* Data source: only says how much goes in the next frame; the bytes are
 * written by on_send_data. nghttp2 has already capped `length` by the flow
 * control windows and the peer's SETTINGS_MAX_FRAME_SIZE. */
static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)id;
    (void)buf;
    struct h2 *h2 = user_data;
    if (h2->hold_data)
        return NGHTTP2_ERR_DEFERRED;
    struct stream *s = source->ptr;
    /* nghttp2 asks for the next frame only once the previous one went out,
     * so wire_off is where this frame starts. */
    size_t left = sr_api__response_length(&s->body->r) - s->wire_off;
    size_t n = left < length ? left : length;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == left)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    struct h2 *h2 = user_data;
    struct stream *s = source->ptr;
    struct evbuffer *out = h2->stage;
    if (h2->out_before + evbuffer_get_length(out) >= SR_API_OUTPUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    /* No padding is ever selected, so the frame is header + data. */
    if (frame->data.padlen != 0 || evbuffer_add(out, framehd, 9) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    struct body *b = s->body;
    size_t off = s->wire_off, end = off + length;
    if (off < b->r.len) {
        size_t n = (end < b->r.len ? end : b->r.len) - off;
        int rc;
        if (n < SR_API_COPY_BELOW) {
            rc = evbuffer_add(out, b->r.body + off, n);
        } else {
            b->refs++;
            rc = evbuffer_add_reference(out, b->r.body + off, n, release_body, b);
            if (rc != 0)
                b->refs--;
        }
        if (rc != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        off += n;
    }
    if (off < end && evbuffer_add(out, b->r.tail + (off - b->r.len), end - off) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->wire_off = end;
    s->moved_at = h2->now;
    h2->data_sent += length;
    return 0;
}

/* Takes *r over as the stream's response. */
static void set_body(struct stream *s, struct sr_api__response *r)
{
    struct body *b = sr_api__pool_alloc(s->h2->pool, sizeof(*b));
    b->refs = 1;
    b->pool = s->h2->pool;
    b->r = *r;
    memset(r, 0, sizeof(*r));
    s->body = b;
    s->wire_off = 0;
}

/* Room for the header values formatted as the HEADERS frame goes out. */
struct hvalues {
    char status[24], len[24], index[24];
};

/* The stream's response header fields: at most SR_API_H__COUNT of them. */
static size_t response_fields(struct stream *s, struct hvalues *v, struct sr_api__hfield *f)
{
    const struct sr_api__response *r = &s->body->r;
    size_t n = 0;
#define FIELD(k, val, l) f[n++] = (struct sr_api__hfield){(k), (val), (l)}
#define FIELDS(k, val) FIELD(k, val, strlen(val))
    /* Not snprintf: this runs per response and printf dominated it. */
    FIELD(SR_API_H_STATUS, v->status,
          sr_api__fmt_u64(v->status, r->status >= 0 ? (uint64_t)r->status : 0));
    if (r->status != 304) {
        FIELDS(SR_API_H_CONTENT_TYPE, r->content_type);
        if (s->sse == NULL && !r->unbounded) /* an event stream has no length */
            FIELD(SR_API_H_CONTENT_LENGTH, v->len,
                  sr_api__fmt_u64(v->len, sr_api__response_length(r)));
    }
    FIELDS(SR_API_H_DATE, sr_api__date(s->h2->conn->w));
    FIELD(SR_API_H_SERVER, SR_API_SERVER_HEADER, sizeof(SR_API_SERVER_HEADER) - 1);
    FIELD(SR_API_H_CACHE_CONTROL, "no-cache", 8);
    if (r->etag[0])
        FIELDS(SR_API_H_ETAG, r->etag);
    if (r->allow)
        FIELDS(SR_API_H_ALLOW, r->allow);
    if (r->has_index)
        FIELD(SR_API_H_REGISTRY_INDEX, v->index, sr_api__fmt_u64(v->index, r->index));
#undef FIELDS
#undef FIELD
    return n;
}

/* The response's content goes out as DATA (else HEADERS end the stream). */
static bool sends_body(const struct stream *s)
{
    return !s->head && s->body->r.status != 304 && sr_api__response_length(&s->body->r) > 0;
}

/* Submits the response in *r (taken over; kept until the stream closes). */
static void respond(struct stream *s, struct sr_api__response *r)
{
    struct h2 *h2 = s->h2;
    if (s->responded) {
        /* One response per stream: the first one's HEADERS may not have
         * gone out yet, and they are encoded from its body (on_send). */
        sr_log(SR_LOG_WARNING, "api", "%s: stream %" PRId32 ": second response dropped",
               h2->conn->peer, s->id);
        sr_api__response_clear(r);
        return;
    }
    set_body(s, r);
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_body};
    s->responded = true;
    /* No fields: on_send writes the header block. */
    int rv = nghttp2_submit_response(h2->session, s->id, NULL, 0, sends_body(s) ? &dp : NULL);
    if (rv != 0)
        sr_log(SR_LOG_DEBUG, "api", "%s: stream %" PRId32 ": cannot respond: %s", h2->conn->peer,
               s->id, nghttp2_strerror(rv));
}

static void respond_error(struct stream *s, int status, const char *code, const char *message)
{
    sr_api__count(s->h2->conn->api->stats, SR_API_EP_OTHER, SR_API_METHOD_OTHER, status);
    struct sr_api__response r;
    sr_api__error_response(&s->h2->conn->api->router, &r, status, code, message);
    respond(s, &r);
}

static int flush(struct h2 *h2, bool idle_ok);

/* ---- GET /events/stream (sse.c) ---------------------------------------------- */

/* A DATA source that defers while the client's queue is empty; the hub
 * resumes it (kick) when events arrive (nghttp2_session_resume_data). */
static ssize_t read_sse(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)id;
    struct h2 *h2 = user_data;
    if (h2->hold_data)
        return NGHTTP2_ERR_DEFERRED; /* see struct h2 */
    struct stream *s = source->ptr;
    bool eof = false;
    size_t n = sr_api__sse_read(s->sse, buf, length, &eof);
    if (eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

/* From a top-level callback (the hub's): may close the connection. */
static void kick_sse(void *owner)
{
    struct stream *s = owner;
    struct h2 *h2 = s->h2;
    nghttp2_session_resume_data(h2->session, s->id); /* an error: not deferred */
    sr_api__conn_next(h2->conn, flush(h2, false));
}

static const struct sr_api__sse_ops sse_ops = {.kick = kick_sse};

static void start_sse(struct stream *s)
{
    struct h2 *h2 = s->h2;
    uint64_t idx = 0;
    s->sse = sr_api__sse_new(h2->conn->w, &s->park, &sse_ops, s, &idx);
    sr_api__park_clear(&s->park);
    struct sr_api__response r = {.status = 200,
                                 .content_type = "text/event-stream",
                                 .has_index = true,
                                 .index = idx};
    set_body(s, &r);
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_sse};
    s->responded = true;
    int rv = nghttp2_submit_response(h2->session, s->id, NULL, 0, &dp);
    sr_log(SR_LOG_DEBUG, "api",
           "%s: event stream from revision %" PRIu64 " (h2 stream %" PRId32 ")%s%s",
           h2->conn->peer, idx, s->id, rv ? ": " : "", rv ? nghttp2_strerror(rv) : "");
}

static void on_parked_done(void *owner, int status)
{
    struct stream *s = owner;
    struct h2 *h2 = s->h2;
    struct sr_api__response r;
    s->pending = NULL;
    sr_api__park_response(&h2->conn->api->router, &s->park, status, &r);
    sr_api__park_clear(&s->park);
    sr_log(SR_LOG_DEBUG, "api", "%s: parked %s -> %d (h2 stream %" PRId32 ")", h2->conn->peer,
           s->path, r.status, s->id);
    respond(s, &r);
    /* A top-level callback (the mailbox event): safe to send and close. */
    sr_api__conn_next(h2->conn, flush(h2, false));
}

static void dispatch(struct stream *s)
{
    struct sr_api__conn *c = s->h2->conn;
    struct sr_api *api = c->api;
    mark_complete(s);
    if (s->responded || s->pending)
        return;
    if (s->error == 414) {
        respond_error(s, 414, "uri_too_long", ":path too long");
        return;
    }
    if (s->error == 431) {
        respond_error(s, 431, "header_fields_too_large",
                      "request header list too large or over 100 fields");
        return;
    }
    if (s->path == NULL || s->method[0] == '\0') {
        respond_error(s, 400, "bad_request", "missing :method or :path");
        return;
    }
    struct sr_api__request rq = {.method = s->method,
                                 .target = s->path,
                                 .if_none_match = s->if_none_match,
                                 .if_match = s->if_match,
                                 .last_event_id = s->last_event_id,
                                 .health_cache = &c->w->health};
    struct sr_api__response r;
    if (sr_api__route(&api->router, &rq, &r, &s->park) == SR_API_ROUTE_PARK) {
        if (s->park.kind == SR_API_PARK_STREAM) {
            start_sse(s);
            return;
        }
        s->pending = sr_api__park_start(c->w, &s->park, on_parked_done, s);
        if (s->pending != NULL)
            return;
        sr_api__park_response(&api->router, &s->park, -1, &r);
        sr_api__park_clear(&s->park);
    }
    sr_log(SR_LOG_DEBUG, "api", "%s: %s %s -> %d (h2 stream %" PRId32 ")", c->peer, s->method,
           s->path, r.status, s->id);
    respond(s, &r);
}

/* ---- nghttp2 callbacks ------------------------------------------------------ */

static struct stream *stream_of(struct h2 *h2, int32_t id);

/* The stream ID in a 9-byte frame header (RFC 9113 §4.1). */
static int32_t frame_stream_id(const uint8_t *hd)
{
    return (int32_t)(((uint32_t)hd[5] << 24 | (uint32_t)hd[6] << 16 | (uint32_t)hd[7] << 8 |
                      hd[8]) &
                     0x7fffffffu);
}

/* A response's HEADERS frame, with our header block instead of nghttp2's
 * (which is empty: respond() submits no fields). Encoding here, as the
 * frame goes out, keeps the blocks in wire order, and a response nghttp2
 * drops unsent leaves the table alone. */
static int send_headers(struct h2 *h2, const uint8_t *hd)
{
    struct stream *s = stream_of(h2, frame_stream_id(hd));
    /* The server sends neither padding nor priority, and the empty block
     * needs no CONTINUATION. */
    if ((hd[4] & ~(NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS)) != 0) {
        sr_log(SR_LOG_WARNING, "api", "%s: unexpected HEADERS frame flags %#x", h2->conn->peer,
               hd[4]);
        return -1;
    }
    /* A frame nghttp2 had packed before its stream closed still goes out:
     * with no fields (the client has reset the stream), but with any size
     * update due, so the tables stay in step. */
    struct sr_api__hfield f[SR_API_H__COUNT];
    struct hvalues v;
    size_t n = 0;
    if (s != NULL && s->interim_due > 0) { /* frames go out in submission order */
        s->interim_due--;
        f[n++] = (struct sr_api__hfield){SR_API_H_STATUS, "100", 3};
    } else if (s != NULL && s->body != NULL) {
        n = response_fields(s, &v, f);
    }
    /* Our fields are short (the longest: an ETag), and far from the
     * smallest SETTINGS_MAX_FRAME_SIZE (16384). */
    uint8_t frame[9 + 1024];
    ssize_t len = sr_api__hpack_encode(&h2->hpack, f, n, frame + 9, sizeof(frame) - 9);
    if (len < 0) {
        sr_log(SR_LOG_WARNING, "api", "%s: response header block too large", h2->conn->peer);
        return -1;
    }
    frame[0] = 0;
    frame[1] = (uint8_t)(len >> 8);
    frame[2] = (uint8_t)len;
    memcpy(frame + 3, hd + 3, 6); /* type, flags, stream ID */
    return evbuffer_add(h2->stage, frame, 9 + (size_t)len);
}

/* nghttp2 hands over one whole frame per call (a HEADERS frame and each
 * CONTINUATION separately), since this never takes part of one. */
static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    (void)session;
    (void)flags;
    struct h2 *h2 = user_data;
    struct evbuffer *out = h2->stage;
    if (h2->out_before + evbuffer_get_length(out) >= SR_API_OUTPUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    int rc = length >= 9 && data[3] == NGHTTP2_HEADERS ? send_headers(h2, data)
                                                        : evbuffer_add(out, data, length);
    return rc != 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : (ssize_t)length;
}

/* The stream of a frame. A header block is contiguous (RFC 9113 §4.3), so
 * during one (and at its end) it is the stream the block began on, found
 * without nghttp2's stream lookup. */
static struct stream *stream_of(struct h2 *h2, int32_t id)
{
    struct stream *s = h2->hdr_stream;
    if (s != NULL && s->id == id)
        return s;
    return nghttp2_session_get_stream_user_data(h2->session, id);
}

/* A malformed request (RFC 9113 §8.1.1): reset with PROTOCOL_ERROR, as
 * nghttp2's own HTTP messaging checks would. Nothing more is read from it. */
static void reject(struct stream *s)
{
    s->rejected = true;
    mark_complete(s);
    nghttp2_submit_rst_stream(s->h2->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2 *h2 = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* A header block (a request's or trailers) has begun: it must end
     * within header_timeout_sec from now (set_timer, if it is still
     * arriving when the read is done), whatever came before it. */
    h2->head_id = frame->hd.stream_id;
    h2->head_seq++;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *s = stream_new(h2, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    h2->hdr_stream = s;
    return 0;
}

/* Several fields are one comma-separated list (RFC 9110 §5.3): appends
 * `value` to *list, up to INM_MAX bytes in all. False when over. */
static bool join_field(char **list, const uint8_t *value, size_t valuelen)
{
    size_t old = *list ? strlen(*list) : 0;
    if (old + valuelen + 2 > INM_MAX)
        return false;
    *list = sr_realloc(*list, old + valuelen + 3);
    char *p = *list + old;
    if (old) {
        *p++ = ',';
        *p++ = ' ';
    }
    memcpy(p, value, valuelen);
    p[valuelen] = '\0';
    return true;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)session;
    (void)flags;
    struct h2 *h2 = user_data;
    const struct sr_api__limits *lim = &h2->conn->api->lim;
    struct stream *s = stream_of(h2, frame->hd.stream_id);
    if (s == NULL || s->rejected)
        return 0;
    if (!sr_api__h2_check_field(&s->check, name, namelen, value, valuelen,
                                frame->headers.cat == NGHTTP2_HCAT_HEADERS)) {
        reject(s);
        return 0;
    }
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        /* Kept even when an error is already decided: a HEAD gets its
         * 414 or 431 without a body. */
        size_t n = valuelen < sizeof(s->method) - 1 ? valuelen : sizeof(s->method) - 1;
        memcpy(s->method, value, n);
        s->method[n] = '\0';
        s->head = strcmp(s->method, "HEAD") == 0;
    }
    if (s->error)
        return 0;
    /* RFC 9113 §6.5.2: name + value + 32 per field; the field count, as
     * HTTP/1.1's, leaves the pseudo-headers out. */
    s->header_bytes += namelen + valuelen + 32;
    if (name[0] != ':' && ++s->nheaders > SR_API_MAX_HEADERS)
        s->error = 431;
    if (s->error || s->header_bytes > lim->max_header_bytes) {
        s->error = 431;
        return 0;
    }
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS)
        return 0; /* trailers: counted, never merged into the request (RFC 9110 §6.5.1) */
    if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        if (valuelen > lim->max_request_line) {
            s->error = 414;
            return 0;
        }
        set_path(s, (const char *)value, valuelen);
    } else if (namelen == 13 && memcmp(name, "last-event-id", 13) == 0) {
        if (s->last_event_id == NULL && valuelen <= LAST_EVENT_ID_MAX)
            s->last_event_id = sr_strndup((const char *)value, valuelen);
    } else if (namelen == 13 && memcmp(name, "if-none-match", 13) == 0) {
        /* Over the bound either list is refused: dropped, it would let a
         * POST act that a matching tag should stop. */
        if (!join_field(&s->if_none_match, value, valuelen))
            s->error = 431;
    } else if (namelen == 6 && memcmp(name, "expect", 6) == 0) {
        s->expect_continue =
            valuelen == 12 && strncasecmp((const char *)value, "100-continue", 12) == 0;
    } else if (namelen == 8 && memcmp(name, "if-match", 8) == 0) {
        if (!join_field(&s->if_match, value, valuelen))
            s->error = 431;
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
    if (s == NULL || s->rejected)
        return 0;
    /* Content is not read by any endpoint; it is only counted. */
    s->body_len += len;
    s->body_at = sr_mono_coarse();
    if (s->check.content_length >= 0 && s->body_len > (uint64_t)s->check.content_length)
        reject(s); /* more than it announced (§8.1.1) */
    return 0;
}

/* Answers a request whose content is still arriving, and resets it once
 * answered (on_frame_send): nothing more is read from it. */
static void answer_early(struct stream *s, int status, const char *code, const char *message)
{
    s->reset_after = true;
    s->h2->any_reset_after = true;
    mark_complete(s);
    respond_error(s, status, code, message);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct h2 *h2 = user_data;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        for (size_t i = 0; i < frame->settings.niv; i++)
            if (frame->settings.iv[i].settings_id == NGHTTP2_SETTINGS_HEADER_TABLE_SIZE)
                sr_api__hpack_limit(&h2->hpack, frame->settings.iv[i].value);
    }
    if (frame->hd.type == NGHTTP2_SETTINGS && h2->hold_data) {
        h2->hold_data = false; /* the client's preface is in */
        nghttp2_session_resume_data(session, 1);
        return 0;
    }
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
    if (frame->hd.type == NGHTTP2_HEADERS && h2->head_id == frame->hd.stream_id)
        h2->head_id = 0; /* the block is complete */
    struct stream *s = stream_of(h2, frame->hd.stream_id);
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (s != NULL && frame->hd.type == NGHTTP2_HEADERS && !end)
        s->body_at = sr_mono_coarse(); /* its content is due from now */
    if (s != NULL && end)
        s->ended = true;
    if (s == NULL || s->rejected)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS &&
        (frame->headers.cat == NGHTTP2_HCAT_REQUEST ? !sr_api__h2_check_request(&s->check)
                                                    : !end)) { /* trailers end the stream */
        reject(s);
        return 0;
    }
    if (end && s->check.content_length >= 0 && s->body_len != (uint64_t)s->check.content_length) {
        reject(s); /* less than it announced */
        return 0;
    }
    if (s->responded)
        return 0;
    if (s->body_len > SR_API_MAX_BODY || s->check.content_length > SR_API_MAX_BODY) {
        answer_early(s, 413, "content_too_large", "request body over 1 MiB");
        return 0;
    }
    if (end) {
        dispatch(s);
    } else if (s->error && frame->hd.type == NGHTTP2_HEADERS) {
        /* No need to wait for content we would refuse anyway. */
        s->reset_after = true;
        h2->any_reset_after = true;
        dispatch(s);
    } else if (s->expect_continue && frame->hd.type == NGHTTP2_HEADERS) {
        /* RFC 9110 §10.1.1: the client waits for this before its content. */
        if (nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, s->id, NULL, NULL, 0, NULL) == 0)
            s->interim_due++;
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
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) || !h2->any_reset_after)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    /* Answered early: tell the client to stop sending, without error,
     * unless its content has ended since (the stream is closed now). */
    if (s != NULL && s->reset_after && !s->ended)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)error_code;
    struct h2 *h2 = user_data;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s != NULL) {
        if (closed_in_window(h2, stream_id))
            closed_set(h2, stream_id, s->ended ? CLOSED_ENDED : CLOSED_CUT);
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        stream_free(s);
    }
    return 0;
}

/* ---- connection -------------------------------------------------------------- */

/* A response still short of its end (an event stream waits for events,
 * and has its own bounds). */
static bool unfinished(const struct stream *s)
{
    return s->responded && s->sse == NULL && s->body != NULL && sends_body(s) &&
           s->wire_off < sr_api__response_length(&s->body->r);
}

static bool response_unfinished(const struct h2 *h2)
{
    for (const struct stream *s = h2->streams; s != NULL; s = s->next)
        if (unfinished(s))
            return true;
    return false;
}

/* set_timer catches a connection whose responses all wait for the client's
 * window; this catches one stream kept waiting while others keep the
 * connection busy (each would pin its snapshot): idle_timeout_sec without
 * progress, then RST_STREAM CANCEL. Looks at most once a second. */
static void scan_stalled(struct h2 *h2)
{
    if (h2->nstreams == 0 || h2->now < h2->next_scan)
        return;
    h2->next_scan = h2->now + 1;
    double idle = h2->conn->api->lim.idle_timeout_sec;
    for (struct stream *s = h2->streams; s != NULL; s = s->next) {
        if (!unfinished(s))
            continue;
        if (s->moved_at == 0) {
            s->moved_at = h2->now; /* first seen waiting */
        } else if (h2->now - s->moved_at >= idle) {
            sr_log(SR_LOG_DEBUG, "api", "%s: h2 stream %" PRId32 " waited %.0f s for a window: reset",
                   h2->conn->peer, s->id, h2->now - s->moved_at);
            s->moved_at = h2->now; /* once */
            nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        }
    }
}

/* When the stalest incomplete request times out: idle_timeout_sec after
 * its content last moved. */
static double body_deadline(const struct h2 *h2)
{
    double first = 0;
    for (const struct stream *s = h2->streams; s != NULL; s = s->next)
        if (!s->complete && (first == 0 || s->body_at < first))
            first = s->body_at;
    return first + h2->conn->api->lim.idle_timeout_sec;
}

static void set_timer(struct h2 *h2)
{
    enum sr_api__timer t;
    bool moved = h2->data_sent != h2->data_mark, stalled = false;
    h2->data_mark = h2->data_sent;
    size_t out = evbuffer_get_length(bufferevent_get_output(h2->conn->bev));
    if (h2->head_id != 0 && h2->head_timed != h2->head_seq) {
        /* A header block still arriving, new since HEAD was last set: its
         * own header_timeout_sec, from (about) its start. */
        h2->head_timed = h2->head_seq;
        sr_api__conn_timer(h2->conn, SR_API_TIMER_NONE);
        t = SR_API_TIMER_HEAD;
    } else if (h2->head_id != 0 || !h2->served_any || h2->hold_data) {
        t = SR_API_TIMER_HEAD; /* (hold_data: the client's preface is due) */
    } else if (h2->nincomplete > 0 && out >= SR_API_OUTPUT_HIGH) {
        /* Content is due, but we are not reading (backpressure): not the
         * client's delay. Its clock restarts once we read again. */
        h2->body_paused = true;
        t = SR_API_TIMER_NONE;
    } else if (h2->nincomplete > 0) {
        /* Content is due on a stream: its own deadline, so that a slow
         * upload is not a slow head and cuts no other stream. */
        if (h2->body_paused) {
            h2->body_paused = false;
            for (struct stream *s = h2->streams; s != NULL; s = s->next)
                s->body_at = h2->now;
        }
        h2->stalled = false;
        sr_api__conn_timer_at(h2->conn, SR_API_TIMER_BODY, body_deadline(h2));
        return;
    } else if (!moved && (out == 0 || h2->stalled) && h2->nstreams > 0 &&
               response_unfinished(h2)) {
        /* The output drained and no DATA followed while a response waits:
         * the client is not opening its window. It gets idle_timeout_sec,
         * as a client that stops reading does. The stall lasts until DATA
         * moves, so PING answers in the output do not restart it. (A full
         * output is the bufferevent write timeout's.) */
        t = SR_API_TIMER_IDLE;
        stalled = true;
    } else if (h2->nstreams > 0 || out > 0) {
        t = SR_API_TIMER_NONE;
    } else {
        t = SR_API_TIMER_IDLE;
    }
    if (h2->stalled && !stalled && t == SR_API_TIMER_IDLE)
        sr_api__conn_timer(h2->conn, SR_API_TIMER_NONE); /* idle from now, not from the stall */
    h2->stalled = stalled;
    sr_api__conn_timer(h2->conn, t);
}

/* After the client's EOF: true when nothing more can happen. Nothing is
 * left to send, and no stream waits for a hook's answer (which would give
 * it something). A response waiting for the client's flow-control window
 * would wait forever: the client can no longer send WINDOW_UPDATE. */
static bool eof_done(struct h2 *h2)
{
    if (h2->nstreams == h2->nincomplete)
        return true;
    if (nghttp2_session_want_write(h2->session))
        return false;
    for (struct stream *s = h2->streams; s != NULL; s = s->next)
        if (s->pending != NULL)
            return false;
    return true;
}

/* Sends what nghttp2 has queued and decides what the connection does next.
 * idle_ok: the caller expects nothing queued (the output just drained), so
 * ask nghttp2 first rather than walk its empty queues. */
static int flush(struct h2 *h2, bool idle_ok)
{
    struct evbuffer *out = bufferevent_get_output(h2->conn->bev);
    if (h2->failed) /* a late parked answer or event: the GOAWAY was the last */
        return evbuffer_get_length(out) ? SR_API_CONN_FLUSH_CLOSE : SR_API_CONN_CLOSE;
    h2->out_before = evbuffer_get_length(out);
    h2->now = sr_mono_coarse();
    scan_stalled(h2);
    int rv = 0;
    if (!idle_ok || nghttp2_session_want_write(h2->session))
        rv = nghttp2_session_send(h2->session);
    if (evbuffer_get_length(h2->stage) > 0 && evbuffer_add_buffer(out, h2->stage) != 0)
        rv = NGHTTP2_ERR_NOMEM; /* cannot keep the frames in order: give up */
    if (rv != 0) {
        sr_log(SR_LOG_DEBUG, "api", "%s: h2 send: %s", h2->conn->peer, nghttp2_strerror(rv));
        return SR_API_CONN_CLOSE;
    }
    /* want_write walks nghttp2's scheduler: only ask when it decides. */
    bool want_read = nghttp2_session_want_read(h2->session);
    size_t pending_out = evbuffer_get_length(out);
    if (((!want_read || h2->close_after_goaway) && !nghttp2_session_want_write(h2->session)) ||
        (h2->peer_eof && eof_done(h2)))
        return pending_out ? SR_API_CONN_FLUSH_CLOSE : SR_API_CONN_CLOSE;
    /* Backpressure: no new requests while the client is not reading. */
    sr_api__conn_read(h2->conn, pending_out < SR_API_OUTPUT_HIGH && want_read);
    set_timer(h2);
    return SR_API_CONN_KEEP;
}

/* Frames on streams nghttp2 no longer knows, judged as nghttp2 does for
 * the closed streams it keeps (see struct h2), plus RFC 9113 §5.1.1's
 * lower stream ID rule, which nghttp2 leaves out. scan() sees a whole read
 * before nghttp2 does, so a stream announced in it is not open yet.
 * Returns the code of the connection error to end with, or 0. */
static uint32_t judge_unknown_stream(struct h2 *h2, uint8_t type, int32_t id)
{
    if (type == NGHTTP2_HEADERS && id > h2->max_client_id) {
        closed_announce(h2, id);
        return 0;
    }
    /* Above max_client_id, DATA is on an idle stream: nghttp2's verdict. */
    if (id > h2->max_client_id || nghttp2_session_find_stream(h2->session, id) != NULL)
        return 0;
    enum closed c = closed_in_window(h2, id) ? closed_get(h2, id) : CLOSED_SKIPPED;
    switch (c) {
    case CLOSED_ENDED: /* §5.1: frames after END_STREAM */
        return NGHTTP2_STREAM_CLOSED;
    case CLOSED_SKIPPED: /* HEADERS: a lower ID (or one too old to know) */
        return type == NGHTTP2_HEADERS ? NGHTTP2_PROTOCOL_ERROR : 0;
    default: /* announced in this read, refused, or reset by us: ignored */
        return 0;
    }
}

/* Follows the frame headers of the input ahead of nghttp2, for
 * judge_unknown_stream(). Returns a connection error code, or 0. */
static uint32_t scan(struct h2 *h2, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (h2->scan_skip > 0) {
            size_t k = n < h2->scan_skip ? n : h2->scan_skip;
            h2->scan_skip -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = 9 - h2->scan_hd_len;
        if (k > n)
            k = n;
        memcpy(h2->scan_hd + h2->scan_hd_len, p, k);
        h2->scan_hd_len += k;
        p += k;
        n -= k;
        if (h2->scan_hd_len < 9)
            break;
        h2->scan_hd_len = 0;
        const uint8_t *hd = h2->scan_hd;
        h2->scan_skip = (size_t)hd[0] << 16 | (size_t)hd[1] << 8 | hd[2];
        int32_t id = frame_stream_id(hd);
        if ((hd[3] != NGHTTP2_HEADERS && hd[3] != NGHTTP2_DATA) || id == 0 || id % 2 == 0)
            continue; /* nghttp2 judges those */
        uint32_t err = judge_unknown_stream(h2, hd[3], id);
        if (err != 0)
            return err;
    }
    return 0;
}

/* A fatal nghttp2 error leaves the session unusable, but the client should
 * still learn why (RFC 9113 §5.4.1): a GOAWAY written by hand. */
static int goaway_calm(struct h2 *h2, const char *why)
{
    h2->failed = true;
    evbuffer_drain(bufferevent_get_input(h2->conn->bev), (size_t)-1);
    uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(h2->session);
    if (sr_api__h2_goaway(bufferevent_get_output(h2->conn->bev), last, NGHTTP2_ENHANCE_YOUR_CALM,
                          why) != 0)
        return SR_API_CONN_CLOSE;
    return SR_API_CONN_FLUSH_CLOSE;
}

int sr_api__h2_goaway(struct evbuffer *out, uint32_t last, uint32_t code, const char *debug)
{
    size_t dlen = strlen(debug), len = 8 + dlen;
    uint8_t f[9 + 8] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, NGHTTP2_GOAWAY};
    for (int i = 0; i < 4; i++) {
        f[9 + i] = (uint8_t)(last >> (24 - 8 * i));
        f[13 + i] = (uint8_t)(code >> (24 - 8 * i));
    }
    f[9] &= 0x7f; /* the reserved bit */
    return evbuffer_add(out, f, sizeof(f)) != 0 || evbuffer_add(out, debug, dlen) != 0 ? -1 : 0;
}

static int on_read(struct sr_api__conn *c)
{
    struct h2 *h2 = c->impl;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        evbuffer_peek(in, -1, NULL, &v, 1);
        uint32_t err = scan(h2, v.iov_base, v.iov_len);
        if (err != 0) {
            sr_log(SR_LOG_DEBUG, "api", "%s: a frame on a closed stream: GOAWAY %s", c->peer,
                   nghttp2_http2_strerror(err));
            evbuffer_drain(in, (size_t)-1);
            nghttp2_session_terminate_session(h2->session, err);
            break;
        }
        ssize_t n = nghttp2_session_mem_recv(h2->session, v.iov_base, v.iov_len);
        if (n < 0) {
            sr_log(SR_LOG_DEBUG, "api", "%s: h2 recv: %s", c->peer, nghttp2_strerror((int)n));
            if (n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS || n == NGHTTP2_ERR_FLOODED)
                return goaway_calm(h2, nghttp2_strerror((int)n));
            return SR_API_CONN_CLOSE;
        }
        evbuffer_drain(in, (size_t)n);
    }
    return flush(h2, false);
}

static int on_write(struct sr_api__conn *c)
{
    return flush(c->impl, true);
}

static int on_eof(struct sr_api__conn *c)
{
    struct h2 *h2 = c->impl;
    /* The client sends nothing more, but may still read: answer the
     * requests that arrived whole, then close (flush decides), as HTTP/1.1
     * does. Its long-polls and event streams it has given up on, as
     * HTTP/1.1 takes it; and an upgrade's preface can no longer come. */
    if (h2->hold_data)
        return SR_API_CONN_CLOSE;
    h2->peer_eof = true;
    for (struct stream *s = h2->streams; s != NULL; s = s->next)
        if (s->sse != NULL || (s->pending != NULL && s->park.kind == SR_API_PARK_WATCH))
            nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    return flush(h2, false);
}

static int on_shutdown(struct sr_api__conn *c)
{
    struct h2 *h2 = c->impl;
    if (!h2->notice_sent) {
        h2->notice_sent = true;
        nghttp2_submit_shutdown_notice(h2->session);
    }
    return flush(h2, false);
}

/* Answers 408 on each stream whose content stopped for idle_timeout_sec,
 * then resets it (answer_early); the connection and its other
 * streams go on. */
static int body_timeout(struct h2 *h2)
{
    double now = sr_mono_coarse(), idle = h2->conn->api->lim.idle_timeout_sec;
    for (struct stream *s = h2->streams; s != NULL; s = s->next) {
        if (s->complete || s->body_at + idle > now + 0.01)
            continue;
        sr_log(SR_LOG_DEBUG, "api", "%s: h2 stream %" PRId32 ": content stopped for %.0f s: 408",
               h2->conn->peer, s->id, now - s->body_at);
        answer_early(s, 408, "request_timeout", "the request content did not arrive in time");
    }
    return flush(h2, false);
}

static int on_timeout(struct sr_api__conn *c, enum sr_api__timer kind)
{
    struct h2 *h2 = c->impl;
    if (kind == SR_API_TIMER_BODY)
        return body_timeout(h2);
    static const char head_msg[] = "request headers not complete in time";
    static const char idle_msg[] = "idle timeout";
    bool head = kind == SR_API_TIMER_HEAD;
    sr_log(SR_LOG_DEBUG, "api", "%s: h2 %s: GOAWAY", c->peer, head ? head_msg : idle_msg);
    h2->close_after_goaway = true;
    nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h2->session), NGHTTP2_NO_ERROR,
                          (const uint8_t *)(head ? head_msg : idle_msg),
                          head ? sizeof(head_msg) - 1 : sizeof(idle_msg) - 1);
    return flush(h2, false);
}

static void h2_delete(struct h2 *h2)
{
    /* nghttp2_session_del does not call on_stream_close: free ours here. */
    while (h2->streams != NULL)
        stream_free(h2->streams);
    nghttp2_session_del(h2->session);
    if (h2->stage != NULL)
        evbuffer_free(h2->stage);
    sr_api__hpack_clear(&h2->hpack);
    free(h2);
}

static void h2_free(struct sr_api__conn *c)
{
    h2_delete(c->impl);
    c->impl = NULL;
}

/* nghttp2 allocates from the worker's pool (see pool.c for why). */
static void *mem_malloc(size_t size, void *pool)
{
    return sr_api__pool_alloc(pool, size);
}

static void mem_free(void *ptr, void *pool)
{
    sr_api__pool_release(pool, ptr);
}

static void *mem_calloc(size_t nmemb, size_t size, void *pool)
{
    return sr_api__pool_calloc(pool, nmemb, size);
}

static void *mem_realloc(void *ptr, size_t size, void *pool)
{
    return sr_api__pool_realloc(pool, ptr, size);
}

static struct h2 *h2_new(struct sr_api__conn *c)
{
    struct h2 *h2 = sr_calloc(1, sizeof(*h2));
    h2->conn = c;
    h2->pool = c->w->pool;
    h2->stage = evbuffer_new();
    sr_api__hpack_init(&h2->hpack);
    nghttp2_session_callbacks *cbs = NULL;
    int rv = h2->stage ? nghttp2_session_callbacks_new(&cbs) : NGHTTP2_ERR_NOMEM;
    if (rv != 0)
        goto fail;
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_mem mem = {.mem_user_data = h2->pool,
                       .malloc = mem_malloc,
                       .free = mem_free,
                       .calloc = mem_calloc,
                       .realloc = mem_realloc};
    const struct sr_api__limits *lim = &c->api->lim;
    /* Header validation is ours (h2_check.c): the same rules, cheaper. */
    nghttp2_option *opt = NULL;
    rv = nghttp2_option_new(&opt);
    if (rv == 0) {
        nghttp2_option_set_no_http_messaging(opt, 1);
        nghttp2_option_set_no_closed_streams(opt, 1); /* see struct h2 */
        /* Debian's nghttp2 caps a header block at 8 CONTINUATION frames
         * (CVE-2024-28182): room for max_header_bytes in full frames. */
        nghttp2_option_set_max_continuations(opt, lim->max_header_bytes / 16384 + 8);
        rv = nghttp2_session_server_new3(&h2->session, cbs, h2, opt, &mem);
        nghttp2_option_del(opt);
    }
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        goto fail;
    h2->scan_skip = 24; /* the client preface */

    /* Our SETTINGS go first (RFC 9113 §3.4: the server preface). */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, lim->max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, lim->max_header_bytes},
    };
    rv = nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (rv != 0)
        goto fail;
    return h2;

fail:
    sr_log(SR_LOG_WARNING, "api", "%s: cannot start an HTTP/2 session: %s", c->peer,
           nghttp2_strerror(rv));
    h2_delete(h2);
    return NULL;
}

int sr_api__http2_attach(struct sr_api__conn *c)
{
    struct h2 *h2 = h2_new(c);
    if (h2 == NULL)
        return -1;
    c->impl = h2;
    return 0;
}

int sr_api__http2_upgrade(struct sr_api__conn *c, const struct sr_api__upgrade *u)
{
    struct h2 *h2 = h2_new(c);
    if (h2 == NULL)
        return SR_API_CONN_CLOSE;
    /* The upgrade request is stream 1, half-closed (remote) already. */
    struct stream *s = stream_new(h2, 1);
    s->ended = true;
    snprintf(s->method, sizeof(s->method), "%s", u->method);
    s->head = strcmp(s->method, "HEAD") == 0;
    set_path(s, u->target, strlen(u->target));
    s->if_none_match = u->if_none_match ? sr_strdup(u->if_none_match) : NULL;
    s->if_match = u->if_match ? sr_strdup(u->if_match) : NULL;
    if (u->last_event_id != NULL && strlen(u->last_event_id) <= LAST_EVENT_ID_MAX)
        s->last_event_id = sr_strdup(u->last_event_id);
    int rv = nghttp2_session_upgrade2(h2->session, u->settings, u->settings_len, s->head, s);
    if (rv == 0) /* a server session ignores upgrade2's user data */
        rv = nghttp2_session_set_stream_user_data(h2->session, 1, s);
    closed_announce(h2, 1);
    h2->hold_data = true;
    /* HTTP2-Settings came in the upgrade request, not in a frame. */
    sr_api__hpack_limit(&h2->hpack, nghttp2_session_get_remote_settings(
                                         h2->session, NGHTTP2_SETTINGS_HEADER_TABLE_SIZE));
    if (rv != 0) {
        sr_log(SR_LOG_DEBUG, "api", "%s: h2c upgrade failed: %s", c->peer, nghttp2_strerror(rv));
        h2_delete(h2);
        return SR_API_CONN_CLOSE;
    }
    static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Upgrade: h2c\r\n\r\n";
    evbuffer_add(bufferevent_get_output(c->bev), switching, sizeof(switching) - 1);
    c->proto->free(c); /* the HTTP/1.1 state (and u with it) */
    c->impl = h2;
    c->proto = &sr_api__http2;
    dispatch(s);
    /* Whatever followed the request is the client's preface. */
    return on_read(c);
}

const struct sr_api__proto sr_api__http2 = {
    .name = "HTTP/2 (h2c)",
    .on_read = on_read,
    .on_write = on_write,
    .on_eof = on_eof,
    .on_shutdown = on_shutdown,
    .on_timeout = on_timeout,
    .free = h2_free,
};
