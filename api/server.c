/* server: the listening socket, the worker threads and their event bases,
 * accept and hand-off, protocol detection, connection lifetime and timers,
 * and the graceful stop.
 *
 * DESIGN
 * - sr_api_new binds and listens on the main thread, so a bad HOST/PORT is
 *   reported before anything starts; every worker's base is created there
 *   too, and from sr_api_start on only the worker's own thread touches it.
 *   Other threads reach a worker through events raised with event_active
 *   (stop_ev, inbox_ev, the parked-request mailbox), which is why
 *   evthread_use_pthreads() must run before sr_api_new.
 * - Worker 0 owns the listener. It accepts and hands sockets round-robin to
 *   the workers (a mutex-protected inbox plus event_active), which balances
 *   even a handful of long-lived connections evenly, unlike SO_REUSEPORT's
 *   hash; the cost is one wakeup per connection, not per request.
 * - max_connections counts across workers (an atomic). Above it a client is
 *   still accepted, but only to be told: HTTP/1.1 gets 503 with Connection:
 *   close, h2 a GOAWAY naming stream 0 (nothing processed, safe to retry);
 *   at most REFUSING_MAX such answers are in flight, beyond that the socket
 *   is closed at once.
 * - Each connection is a bufferevent for output and its input buffer, but
 *   reads are ours (on_conn_read): libevent 2.1's bufferevent asks the
 *   kernel how much is readable (ioctl FIONREAD) before every read, one
 *   system call in three on a busy connection. Until a protocol is known,
 *   reads only compare the input with the HTTP/2 preface (RFC 9113 §3.4):
 *   24 matching bytes mean h2c with prior knowledge, the first differing
 *   byte means HTTP/1.1. The protocol then gets every byte already read.
 * - One timer per connection, set by the protocol after each callback:
 *   HEAD (a request head must complete header_timeout_sec after it began;
 *   a new connection starts there), IDLE (nothing in progress for
 *   idle_timeout_sec) or NONE (busy). A client that stops reading is caught
 *   by the bufferevent's write timeout (idle_timeout_sec without progress);
 *   meanwhile the protocols stop reading its requests above
 *   SR_API_OUTPUT_HIGH, so its memory stays bounded.
 * - Protocols never free their connection: they return what should happen
 *   (sr_api__conn_next) and the top-level callback here does it, so nothing
 *   up the stack (nghttp2, the parser loop) is left with a freed object.
 * - Closing after a response is a lingering close: flush, shut the write
 *   side, discard input until EOF, 2 s without any, or 5 s in all (a
 *   client that keeps sending must not keep its slot). Closing with unread
 *   input would make the kernel send RST, which can destroy the response in
 *   flight (e.g. a 413 sent while the body is still arriving).
 * - Under dense load a worker polls before it sleeps (loop(), API_SPIN_USEC),
 *   so clients' writes do not each pay for waking it.
 * - Stop: each worker closes (worker 0: the listener), tells each protocol
 *   (HTTP/2: GOAWAY; HTTP/1.1: Connection: close after the current
 *   response; idle: closed at once), waits until its last connection is
 *   gone or grace_ms passed, then force-closes the rest and leaves its
 *   loop. */
#include "api/api_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof(preface) - 1)
#define REFUSING_MAX 64

static const struct timeval linger_timeout = {2, 0}; /* without input */
#define LINGER_MAX_SEC 5.0                                 /* in all */

/* ---- connections ---------------------------------------------------------- */

static void conn_free(struct sr_api__conn *c)
{
    struct sr_api__worker *w = c->w;
    struct sr_api *api = c->api;
    if (c->proto != NULL)
        c->proto->free(c);
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->rev != NULL)
        event_free(c->rev);
    bufferevent_free(c->bev);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (c->refused)
        atomic_fetch_sub(&api->nrefusing, 1);
    else
        atomic_fetch_sub(&api->nconns, 1);
    free(c);
    if (w->stopping && w->conns == NULL)
        event_base_loopbreak(w->base);
}

static void linger(struct sr_api__conn *c)
{
    if (c->peer_eof) {
        conn_free(c); /* nothing left to read: no RST risk */
        return;
    }
    c->lingering = true;
    c->linger_end = sr_mono_coarse() + LINGER_MAX_SEC;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    /* Input is discarded now, until EOF or linger_timeout without any. */
    c->want_read = true;
    if (c->rev_added)
        event_del(c->rev);
    event_add(c->rev, &linger_timeout);
    c->rev_added = true;
}

/* Reading: on while the protocol wants input and less than
 * SR_API_OUTPUT_HIGH waits unparsed (a parked or backpressured
 * connection), so memory per client stays bounded. */
static void read_update(struct sr_api__conn *c)
{
    if (c->lingering)
        return; /* linger() owns the event */
    bool on = c->want_read && !c->peer_eof &&
              evbuffer_get_length(bufferevent_get_input(c->bev)) < SR_API_OUTPUT_HIGH;
    if (on == c->rev_added)
        return;
    if (on)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
    c->rev_added = on;
}

void sr_api__conn_read(struct sr_api__conn *c, bool on)
{
    c->want_read = on;
    read_update(c);
}

static void arm(struct sr_api__conn *c, double left)
{
    struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};
    event_add(c->timer, &tv);
    c->armed_at = c->deadline;
}

/* A busy connection changes kind several times per request; moving a
 * libevent timer each time (a heap update under the base lock) showed in
 * profiles. So the kind only records a deadline, and the event, armed for
 * the earliest deadline, checks on firing whether one really passed. */
void sr_api__conn_timer(struct sr_api__conn *c, enum sr_api__timer kind)
{
    if (kind == c->timer_kind)
        return;
    if (kind == SR_API_TIMER_NONE) {
        c->timer_kind = kind;
        return; /* a pending event will find nothing to do */
    }
    const struct sr_api__limits *lim = &c->api->lim;
    unsigned sec = kind == SR_API_TIMER_HEAD ? lim->header_timeout_sec : lim->idle_timeout_sec;
    sr_api__conn_timer_at(c, kind, sr_mono_coarse() + sec);
}

void sr_api__conn_timer_at(struct sr_api__conn *c, enum sr_api__timer kind, double deadline)
{
    c->timer_kind = kind;
    c->deadline = deadline;
    if (c->armed_at == 0 || deadline < c->armed_at) {
        double left = deadline - sr_mono_coarse();
        arm(c, left > 0 ? left : 0);
    }
}

/* Writes the output now, instead of waiting for the bufferevent's EV_WRITE
 * event: a response goes out in the loop turn that produced it, with no
 * epoll_ctl round trip. EV_WRITE is enabled only while bytes are left over
 * (the socket is full), and on_conn_write disables it again once drained.
 * Returns true when this call emptied the output. Errors are left to the
 * bufferevent, whose own write meets them too. */
static bool push(struct sr_api__conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0)
        return false;
    /* The bufferevent freezes the start of its output and unfreezes it
     * around its own writes the same way. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write_atmost(out, bufferevent_getfd(c->bev), -1);
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0) {
        bufferevent_enable(c->bev, EV_WRITE);
        return false;
    }
    return n > 0;
}

void sr_api__conn_next(struct sr_api__conn *c, int next)
{
    for (;;) {
        if (next == SR_API_CONN_CLOSE) {
            conn_free(c);
            return;
        }
        if (next == SR_API_CONN_FLUSH_CLOSE && !c->draining) {
            c->draining = true;
            /* The write timeout bounds the flush from now on. */
            sr_api__conn_timer(c, SR_API_TIMER_NONE);
            /* Keep reading so input is discarded rather than answered with RST. */
            evbuffer_drain(bufferevent_get_input(c->bev), (size_t)-1);
            sr_api__conn_read(c, true);
        }
        bool emptied = !c->lingering && push(c);
        if (c->draining) {
            if (!c->lingering && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
                linger(c); /* may free c */
            return;
        }
        /* Drained at once: what the write callback would do, done now. */
        if (!emptied || c->proto == NULL) {
            read_update(c); /* the protocol may have taken input */
            return;
        }
        next = c->proto->on_write(c);
    }
}

/* Over max_connections: a short, protocol-correct refusal. */
static void refuse(struct sr_api__conn *c, bool h2)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (h2) {
        /* Server preface (empty SETTINGS), then GOAWAY: last stream 0,
         * REFUSED_STREAM, debug data naming the cause (RFC 9113 §6.8). */
        static const unsigned char settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
        evbuffer_add(out, settings, sizeof(settings));
        sr_api__h2_goaway(out, 0, 7 /* REFUSED_STREAM */, "too many connections");
    } else {
        char msg[80], head[512];
        snprintf(msg, sizeof(msg), "connection limit (%u) reached; retry later",
                 c->api->lim.max_connections);
        struct sr_api__response r;
        sr_api__error_response(&c->api->router, &r, 503, "too_many_connections", msg);
        int hlen = snprintf(head, sizeof(head),
                            "HTTP/1.1 503 Service Unavailable\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %zu\r\n"
                            "Date: %s\r\n"
                            "Server: " SR_API_SERVER_HEADER "\r\n"
                            "Cache-Control: no-cache\r\n"
                            "ETag: %s\r\n"
                            "Retry-After: 1\r\n"
                            "Connection: close\r\n\r\n",
                            r.len, sr_api__date(c->w), r.etag);
        evbuffer_add(out, head, (size_t)hlen);
        evbuffer_add(out, r.body, r.len);
        sr_api__response_clear(&r);
    }
    sr_log(SR_LOG_DEBUG, "api", "%s: refused (%s): connection limit %u reached", c->peer,
           h2 ? "h2" : "HTTP/1.1", c->api->lim.max_connections);
    sr_api__conn_next(c, SR_API_CONN_FLUSH_CLOSE);
}

/* Returns 1 when the protocol is known (c->proto set), 0 to wait, -1 when c
 * is gone or going (freed, or refused and draining). */
static int detect(struct sr_api__conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    if (n > PREFACE_LEN)
        n = PREFACE_LEN;
    const unsigned char *p = evbuffer_pullup(in, (ssize_t)n);
    bool h2 = n == PREFACE_LEN && memcmp(p, preface, n) == 0;
    if (!h2 && memcmp(p, preface, n) == 0)
        return 0;
    if (c->refused) {
        refuse(c, h2);
        return -1;
    }
    int rc = h2 ? sr_api__http2_attach(c) : sr_api__http1_attach(c);
    if (rc != 0) {
        conn_free(c);
        return -1;
    }
    c->proto = h2 ? &sr_api__http2 : &sr_api__http1;
    sr_log(SR_LOG_DEBUG, "api", "%s: %s", c->peer, c->proto->name);
    return 1;
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg);

/* Bytes per read: a few pipelined requests, or one /services request per
 * connection many times over. */
#define READ_SIZE 16384

static void on_conn_read(evutil_socket_t fd, short what, void *arg)
{
    struct sr_api__conn *c = arg;
    if (what & EV_TIMEOUT) { /* lingering, and the peer neither sent nor closed */
        conn_free(c);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(in, READ_SIZE, &v, 1) < 1) {
        conn_free(c);
        return;
    }
    ssize_t n = recv(fd, v.iov_base, v.iov_len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        /* What the bufferevent did: stop reading, report EOF or error. */
        event_del(c->rev);
        c->rev_added = false;
        on_conn_event(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
        return;
    }
    v.iov_len = (size_t)n;
    evbuffer_commit_space(in, &v, 1);
    /* Bytes came: load for loop()'s spin (an EOF or error is none). */
    struct sr_api__worker *w = c->w;
    if (w->woke == 0 && w->api->lim.spin_usec != 0)
        w->woke = sr_mono(); /* the first read since loop() last reset it */
    if (c->draining) {
        evbuffer_drain(in, (size_t)-1);
        /* Each read restarts linger_timeout: the overall bound is ours. */
        if (c->lingering && sr_mono_coarse() >= c->linger_end)
            conn_free(c);
        return;
    }
    if (c->proto == NULL && detect(c) <= 0)
        return; /* waiting for more of the preface, or freed, or refused */
    sr_api__conn_next(c, c->proto->on_read(c));
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
    struct sr_api__conn *c = arg;
    /* Drained: push() enables EV_WRITE again when bytes are left over. */
    bufferevent_disable(bev, EV_WRITE);
    if (c->lingering)
        return;
    if (c->draining) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            linger(c);
        return;
    }
    if (c->proto != NULL)
        sr_api__conn_next(c, c->proto->on_write(c));
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct sr_api__conn *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !c->lingering) {
        c->peer_eof = true;
        if (c->draining) {
            /* Half-closed peer: still flush what is queued for it. */
            if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
                conn_free(c);
            return;
        }
        if (c->proto != NULL) {
            sr_api__conn_next(c, c->proto->on_eof(c));
            return;
        }
    }
    if ((what & BEV_EVENT_TIMEOUT) && !c->lingering)
        sr_log(SR_LOG_DEBUG, "api", "%s: output stalled for %u s: closing", c->peer,
               c->api->lim.idle_timeout_sec);
    else if ((what & BEV_EVENT_ERROR) && !c->lingering)
        sr_log(SR_LOG_DEBUG, "api", "%s: connection error: %s", c->peer,
               evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    conn_free(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api__conn *c = arg;
    c->armed_at = 0;
    if (c->timer_kind == SR_API_TIMER_NONE)
        return;
    /* Armed for an earlier deadline that has since moved. */
    double left = c->deadline - sr_mono_coarse();
    if (left > 0.01) {
        arm(c, left);
        return;
    }
    enum sr_api__timer kind = c->timer_kind;
    c->timer_kind = SR_API_TIMER_NONE;
    if (c->proto == NULL || c->draining) {
        /* Not even a protocol yet: just go. (Draining connections sit at
         * NONE; the write timeout bounds them.) */
        sr_log(SR_LOG_DEBUG, "api", "%s: nothing usable within %u s: closing", c->peer,
               c->api->lim.header_timeout_sec);
        conn_free(c);
        return;
    }
    sr_api__conn_next(c, c->proto->on_timeout(c, kind));
}

/* Makes fd a connection of worker w (on w's thread). */
static void conn_attach(struct sr_api__worker *w, evutil_socket_t fd, bool refused)
{
    struct sr_api *api = w->api;
    int one = 1;
    /* Responses are small and written whole: don't let Nagle hold them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct sr_api__conn *c = sr_calloc(1, sizeof(*c));
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev != NULL) {
        c->timer = event_new(w->base, -1, 0, on_timer, c);
        c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_conn_read, c);
    }
    if (c->bev == NULL || c->timer == NULL || c->rev == NULL) {
        if (c->timer != NULL)
            event_free(c->timer);
        if (c->rev != NULL)
            event_free(c->rev);
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        free(c);
        atomic_fetch_sub(refused ? &api->nrefusing : &api->nconns, 1);
        return;
    }
    struct bufferevent *bev = c->bev;
    c->api = api;
    c->w = w;
    c->refused = refused;

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);

    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;

    /* libevent 2.1 caps each write at 16 KiB by default: a /services
     * body would take several loop turns (and writev calls). */
    bufferevent_set_max_single_write(bev, SR_API_OUTPUT_HIGH + 64 * 1024);
    struct timeval idle = {api->lim.idle_timeout_sec, 0};
    bufferevent_set_timeouts(bev, NULL, &idle);
    bufferevent_setcb(bev, NULL, on_conn_write, on_conn_event, c);
    /* The bufferevent freezes its input's end and thaws it only around its
     * own reads; on_conn_read is the only writer there now. */
    evbuffer_unfreeze(bufferevent_get_input(bev), 0);
    sr_api__conn_read(c, true); /* EV_WRITE: see push() */
    /* The first request head is due within header_timeout_sec. */
    sr_api__conn_timer(c, SR_API_TIMER_HEAD);
}

/* Worker w's thread: take the sockets worker 0 handed over. */
static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api__worker *w = arg;
    pthread_mutex_lock(&w->inbox_mu);
    int *fds = w->inbox;
    size_t n = w->inbox_n;
    w->inbox = NULL;
    w->inbox_n = w->inbox_cap = 0;
    pthread_mutex_unlock(&w->inbox_mu);
    for (size_t i = 0; i < n; i++) {
        if (w->stopping) {
            close(fds[i]);
            atomic_fetch_sub(&w->api->nconns, 1);
        } else {
            conn_attach(w, fds[i], false);
        }
    }
    free(fds);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct sr_api *api = arg;
    bool refused = false;
    if (atomic_fetch_add(&api->nconns, 1) >= api->lim.max_connections) {
        atomic_fetch_sub(&api->nconns, 1);
        if (atomic_fetch_add(&api->nrefusing, 1) >= REFUSING_MAX) {
            atomic_fetch_sub(&api->nrefusing, 1);
            evutil_closesocket(fd);
            return;
        }
        refused = true;
    }
    struct sr_api__worker *w = &api->workers[0];
    if (!refused && api->nworkers > 1)
        w = &api->workers[api->next_worker++ % api->nworkers];
    if (w->index == 0) {
        conn_attach(w, fd, refused);
        return;
    }
    pthread_mutex_lock(&w->inbox_mu);
    if (w->inbox_n == w->inbox_cap) {
        w->inbox_cap = w->inbox_cap ? w->inbox_cap * 2 : 16;
        w->inbox = sr_realloc(w->inbox, w->inbox_cap * sizeof(*w->inbox));
    }
    w->inbox[w->inbox_n++] = fd;
    event_active(w->inbox_ev, EV_READ, 0);
    pthread_mutex_unlock(&w->inbox_mu);
}

static void on_retry_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api *api = arg;
    if (api->listener != NULL)
        evconnlistener_enable(api->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct sr_api *api = arg;
    int err = EVUTIL_SOCKET_ERROR();
    sr_log(SR_LOG_WARNING, "api", "accept on %s failed: %s", api->where,
           evutil_socket_error_to_string(err));
    /* Out of fds: the socket stays readable, so back off instead of spinning. */
    evconnlistener_disable(l);
    struct timeval tv = {0, 100 * 1000};
    event_add(api->retry_accept_ev, &tv);
}

/* ---- stop ------------------------------------------------------------------ */

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api__worker *w = arg;
    if (w->conns != NULL)
        sr_log(SR_LOG_INFO, "api", "grace period over: closing %zu connection(s)", w->nconns);
    while (w->conns != NULL)
        conn_free(w->conns);
    event_base_loopbreak(w->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api__worker *w = arg;
    struct sr_api *api = w->api;
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->index == 0) {
        evconnlistener_free(api->listener);
        api->listener = NULL;
        event_del(api->retry_accept_ev);
    }
    /* Long-polls are answered now and event streams end, rather than
     * being cut when the grace period ends. */
    sr_api__hub_stop(w->hub);
    for (struct sr_api__conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->draining)
            continue;
        if (c->proto == NULL)
            conn_free(c); /* not even a request yet */
        else
            sr_api__conn_next(c, c->proto->on_shutdown(c));
    }
    if (w->conns == NULL) {
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {api->grace_ms / 1000, (api->grace_ms % 1000) * 1000};
    event_add(w->grace_ev, &tv);
}

/* The loop, spinning under dense load. A worker that sleeps in epoll_wait
 * between requests makes every client write that finds it asleep pay a
 * cross-CPU wakeup (3-4% of h2load's CPU in the bench), and adds that
 * wakeup's latency to the response. So under dense load the worker polls
 * (epoll_wait with no timeout) until spin_usec passed without a read, and
 * only then sleeps. Dense means the last DENSE_GAPS sleeps each ended in a
 * read less than spin_usec after the read before it: reads further apart
 * never start a spin, so light load (an autoscaler polling every few
 * seconds, on new connections or one kept alive) costs nothing, and neither
 * does the burst of one connection's handshake (an h2c client's SETTINGS
 * ACK follows its first read at once). After a spin that ends empty-handed
 * it takes DENSE_GAPS new short gaps to start another. The time spent in
 * polls that read nothing is counted (/metrics). Returns when the loop was
 * broken (stop). */
#define DENSE_GAPS 3
static void loop(struct sr_api__worker *w)
{
    double spin = w->api->lim.spin_usec / 1e6;
    if (spin == 0) {
        event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
        return;
    }
    unsigned short_gaps = 0;
    double last_read = 0; /* when the last read was seen (at least) */
    for (;;) {
        if (short_gaps >= DENSE_GAPS) {
            double prev = sr_mono(), idle = 0;
            last_read = prev;
            for (;;) {
                w->woke = 0;
                if (event_base_loop(w->base, EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY) < 0 ||
                    event_base_got_break(w->base))
                    return;
                double now = sr_mono();
                if (w->woke != 0) {
                    last_read = now;
                } else {
                    idle += now - prev;
                    if (now - last_read >= spin)
                        break;
                }
                prev = now;
            }
            atomic_fetch_add_explicit(&w->api->stats->spin_idle_usec, (uint64_t)(idle * 1e6),
                                      memory_order_relaxed);
            short_gaps = 0;
        }
        w->woke = 0;
        if (event_base_loop(w->base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY) < 0 ||
            event_base_got_break(w->base))
            return;
        if (w->woke != 0) { /* not only a timer or a write */
            short_gaps = w->woke - last_read < spin ? short_gaps + 1 : 0;
            last_read = sr_mono();
        }
    }
}

static void *run(void *arg)
{
    struct sr_api__worker *w = arg;
    /* Signals belong to main (STYLE §6); SIGPIPE from a write to a closed
     * socket then stays pending on this thread instead of killing us. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    loop(w);
    /* A freed bufferevent closes its socket in a finalizer the loop runs:
     * one more turn, so the clients of connections closed by the stop see
     * the close now, not when the API is freed. */
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    return NULL;
}

/* ---- tests and fuzzers ---------------------------------------------------- */

void sr_api__test_attach(struct sr_api *api, int fd)
{
    atomic_fetch_add(&api->nconns, 1);
    conn_attach(&api->workers[0], fd, false);
}

size_t sr_api__test_step(struct sr_api *api)
{
    struct sr_api__worker *w = &api->workers[0];
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    return w->nconns;
}

/* ---- public ---------------------------------------------------------------- */

const char *sr_api__date(struct sr_api__worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_sec) {
        w->date_sec = now;
        sr_api__http_date(now, w->date, sizeof(w->date));
    }
    return w->date;
}

/* Binds and listens; returns the fd or -1 with err set. */
static evutil_socket_t listen_on(const char *host, unsigned port, char *where, size_t wlen,
                                 unsigned *bound, char *err, size_t errlen)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(where, wlen, v6 ? "[%s]:%u" : "%s:%u", host, port);
    if (port > 65535) {
        snprintf(err, errlen, "cannot listen on %s: port out of range", where);
        return -1;
    }
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, service, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", where, gai_strerror(gai));
        return -1;
    }
    evutil_socket_t fd = -1;
    int last = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* "::" should take IPv4 clients too, whatever bindv6only says. */
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(last));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(where, wlen, v6 ? "[%s]:%u" : "%s:%u", host, *bound);
    return fd;
}

static unsigned or_default(unsigned v, unsigned def)
{
    return v ? v : def;
}

static void resolve_limits(const struct sr_api_opts *o, struct sr_api__limits *lim)
{
    lim->threads = or_default(o->threads, SR_API_DEFAULT_THREADS);
    if (lim->threads > 64)
        lim->threads = 64;
    lim->max_connections = or_default(o->max_connections, SR_API_DEFAULT_MAX_CONNECTIONS);
    lim->max_concurrent_streams =
        or_default(o->max_concurrent_streams, SR_API_DEFAULT_MAX_CONCURRENT_STREAMS);
    lim->idle_timeout_sec = or_default(o->idle_timeout_sec, SR_API_DEFAULT_IDLE_TIMEOUT_SEC);
    lim->header_timeout_sec = or_default(o->header_timeout_sec, SR_API_DEFAULT_HEADER_TIMEOUT_SEC);
    lim->max_header_bytes = or_default(o->max_header_bytes, SR_API_DEFAULT_MAX_HEADER_BYTES);
    lim->max_request_line = or_default(o->max_request_line, SR_API_DEFAULT_MAX_REQUEST_LINE);
    lim->spin_usec = o->spin_usec > 1000 ? 1000 : o->spin_usec;

    /* Each connection is one fd: stay under the process's limit, with room
     * for Docker, the broker, logs and the refusals. */
    struct rlimit rl;
    rlim_t reserve = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        reserve = rl.rlim_cur > 4 * REFUSING_MAX ? 2 * REFUSING_MAX : rl.rlim_cur / 2;
    if (reserve > 0 && lim->max_connections > rl.rlim_cur - reserve) {
        unsigned fit = (unsigned)(rl.rlim_cur - reserve);
        sr_log(SR_LOG_WARNING, "api",
               "max connections %u lowered to %u: the open-file limit (ulimit -n) is %llu",
               lim->max_connections, fit, (unsigned long long)rl.rlim_cur);
        lim->max_connections = fit;
    }
}

static int worker_init(struct sr_api *api, struct sr_api__worker *w, unsigned index, char *err,
                       size_t errlen)
{
    w->api = api;
    w->index = index;
    w->pool = sr_api__pool_new();
    pthread_mutex_init(&w->inbox_mu, NULL);
    w->base = event_base_new();
    if (w->base == NULL) {
        snprintf(err, errlen, "cannot create the API event base");
        return -1;
    }
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->grace_ev = evtimer_new(w->base, on_grace, w);
    w->inbox_ev = event_new(w->base, -1, 0, on_inbox, w);
    w->mb = sr_api__mailbox_new(w->base);
    w->hub = sr_api__hub_new(w);
    if (!w->stop_ev || !w->grace_ev || !w->inbox_ev || !w->mb || !w->hub) {
        snprintf(err, errlen, "cannot create API events");
        return -1;
    }
    return 0;
}

struct sr_api *sr_api_new(const struct sr_api_opts *opts, const struct sr_api_hooks *hooks,
                          struct sr_cache *cache, char *err, size_t errlen)
{
    struct sr_api *api = sr_calloc(1, sizeof(*api));
    evutil_socket_t fd = -1;
    atomic_init(&api->nconns, 0);
    atomic_init(&api->nrefusing, 0);
    api->router.cache = cache;
    api->router.refresh_interval_sec = opts->refresh_interval_sec;
    api->router.started_mono = sr_mono();
    api->router.now = sr_now;
    if (hooks != NULL)
        api->hooks = *hooks;
    api->router.can_refresh = api->hooks.resync != NULL;
    api->router.can_collect = api->hooks.collect_metrics != NULL;
    api->router.publisher_status = api->hooks.publisher_status;
    api->router.pub_ctx = api->hooks.pub_ctx;
    resolve_limits(opts, &api->lim);

    fd = listen_on(opts->host ? opts->host : "0.0.0.0", opts->port, api->where, sizeof(api->where),
                   &api->port, err, errlen);
    if (fd < 0)
        goto fail;
    api->workers = sr_calloc(api->lim.threads, sizeof(*api->workers));
    for (unsigned i = 0; i < api->lim.threads; i++) {
        api->nworkers = i + 1; /* so sr_api_free cleans up what was made */
        if (worker_init(api, &api->workers[i], i, err, errlen) != 0)
            goto fail;
    }
    struct event_base *base0 = api->workers[0].base;
    api->listener = evconnlistener_new(base0, on_accept, api, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (api->listener == NULL) {
        snprintf(err, errlen, "cannot listen on %s: evconnlistener failed", api->where);
        goto fail;
    }
    fd = -1; /* the listener owns it now */
    evconnlistener_set_error_cb(api->listener, on_accept_error);
    api->retry_accept_ev = evtimer_new(base0, on_retry_accept, api);
    if (api->retry_accept_ev == NULL) {
        snprintf(err, errlen, "cannot create API events");
        goto fail;
    }
    if (sr_api__watch_init(api, opts, err, errlen) != 0)
        goto fail;
    return api;

fail:
    if (fd >= 0)
        close(fd);
    sr_api_free(api);
    return NULL;
}

json_t *sr_api_health(struct sr_api *api, int *http_status)
{
    return sr_api__health_json(&api->router, http_status);
}

unsigned sr_api_port(const struct sr_api *api)
{
    return api->port;
}

int sr_api_start(struct sr_api *api)
{
    if (api->started || api->stopped)
        return -1;
    api->started = true; /* sr_api_stop joins whatever did start */
    for (unsigned i = 0; i < api->nworkers; i++) {
        struct sr_api__worker *w = &api->workers[i];
        if (pthread_create(&w->thread, NULL, run, w) != 0)
            return -1;
        w->thread_started = true;
    }
    sr_log(SR_LOG_INFO, "api",
           "listening on %s (HTTP/1.1 and h2c; %u thread(s), max %u connections, %u streams "
           "each, idle %u s, header %u s)",
           api->where, api->nworkers, api->lim.max_connections, api->lim.max_concurrent_streams,
           api->lim.idle_timeout_sec, api->lim.header_timeout_sec);
    return 0;
}

void sr_api_stop(struct sr_api *api, unsigned grace_ms)
{
    if (api == NULL || api->stopped)
        return;
    api->stopped = true;
    if (!api->started)
        return;
    /* event_active takes the base lock, which publishes grace_ms to the
     * worker threads. */
    api->grace_ms = grace_ms;
    for (unsigned i = 0; i < api->nworkers; i++)
        if (api->workers[i].thread_started)
            event_active(api->workers[i].stop_ev, EV_READ, 0);
    for (unsigned i = 0; i < api->nworkers; i++)
        if (api->workers[i].thread_started)
            pthread_join(api->workers[i].thread, NULL);
    sr_log(SR_LOG_INFO, "api", "stopped");
}

void sr_api_free(struct sr_api *api)
{
    if (api == NULL)
        return;
    sr_api_stop(api, 0);
    sr_api__watch_detach(api); /* no more changes reach the workers */
    /* The threads are gone (or never ran): what is left is freed from here. */
    if (api->listener != NULL)
        evconnlistener_free(api->listener);
    if (api->retry_accept_ev)
        event_free(api->retry_accept_ev);
    for (unsigned i = 0; i < api->nworkers; i++) {
        struct sr_api__worker *w = &api->workers[i];
        while (w->conns != NULL)
            conn_free(w->conns);
        for (size_t k = 0; k < w->inbox_n; k++)
            close(w->inbox[k]);
        free(w->inbox);
        sr_api__frame_unref(w->health.body);
        sr_api__hub_free(w->hub);
        sr_api__mailbox_close(w->mb);
        if (w->stop_ev)
            event_free(w->stop_ev);
        if (w->grace_ev)
            event_free(w->grace_ev);
        if (w->inbox_ev)
            event_free(w->inbox_ev);
        if (w->base)
            event_base_free(w->base);
        sr_api__pool_free(w->pool); /* last: connections and bodies allocate from it */
        pthread_mutex_destroy(&w->inbox_mu);
    }
    free(api->workers);
    sr_api__watch_free(api);
    free(api);
}
