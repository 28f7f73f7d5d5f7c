/* server: the listening socket, the API thread and its event base, protocol
 * detection, connection lifetime and the graceful stop.
 *
 * DESIGN
 * - sr_api_new binds and listens on the main thread, so a bad HOST/PORT is
 *   reported before anything starts; the base is created there too, and
 *   from sr_api_start on only the API thread touches it. The main thread
 *   talks to it through two events only: stop_ev (sr_api_stop) and the
 *   refresh mailbox (refresh.c), both raised with event_active, which is
 *   why evthread_use_pthreads() must run before sr_api_new.
 * - Each connection is a bufferevent. Until a protocol is known, reads
 *   only compare the input with the HTTP/2 preface (RFC 9113 §3.4): 24
 *   matching bytes mean h2c with prior knowledge, the first differing byte
 *   means HTTP/1.1. The protocol then gets every byte already read.
 * - Protocols never free their connection: they return what should happen
 *   (sr_api__conn_next) and the top-level callback here does it, so nothing
 *   up the stack (nghttp2, the parser loop) is left with a freed object.
 * - Closing after a response is a lingering close: flush, shut the write
 *   side, discard input until EOF or 2 s. Closing with unread input would
 *   make the kernel send RST, which can destroy the response in flight
 *   (e.g. a 413 sent while the body is still arriving).
 * - Stop: close the listener, tell each protocol (HTTP/2: GOAWAY; HTTP/1.1:
 *   Connection: close after the current response; idle: closed at once),
 *   wait until the last connection is gone or grace_ms passed, then
 *   force-close the rest and leave the loop. */
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
#include <sys/socket.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof(preface) - 1)

static const struct timeval idle_timeout = {60, 0};
static const struct timeval linger_timeout = {2, 0};

/* ---- connections ---------------------------------------------------------- */

static void conn_free(struct sr_api__conn *c)
{
    struct sr_api *api = c->api;
    if (c->proto != NULL)
        c->proto->free(c);
    bufferevent_free(c->bev);
    if (c->prev)
        c->prev->next = c->next;
    else
        api->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    api->nconns--;
    free(c);
    if (api->stopping && api->conns == NULL)
        event_base_loopbreak(api->base);
}

static void linger(struct sr_api__conn *c)
{
    if (c->peer_eof) {
        conn_free(c); /* nothing left to read: no RST risk */
        return;
    }
    c->lingering = true;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    bufferevent_set_timeouts(c->bev, &linger_timeout, NULL);
    bufferevent_enable(c->bev, EV_READ);
}

void sr_api__conn_next(struct sr_api__conn *c, int next)
{
    if (next == SR_API_CONN_CLOSE) {
        conn_free(c);
        return;
    }
    if (next != SR_API_CONN_FLUSH_CLOSE || c->draining)
        return;
    c->draining = true;
    /* Keep reading so input is discarded rather than answered with RST. */
    if (!c->peer_eof)
        bufferevent_enable(c->bev, EV_READ);
    evbuffer_drain(bufferevent_get_input(c->bev), (size_t)-1);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        linger(c);
}

/* Returns 1 when the protocol is known (c->proto set), 0 to wait, -1 on error. */
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
    int rc = h2 ? sr_api__http2_attach(c) : sr_api__http1_attach(c);
    if (rc != 0)
        return -1;
    c->proto = h2 ? &sr_api__http2 : &sr_api__http1;
    sr_log(SR_LOG_DEBUG, "api", "%s: %s", c->peer, c->proto->name);
    return 1;
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    struct sr_api__conn *c = arg;
    if (c->draining) {
        evbuffer_drain(bufferevent_get_input(bev), (size_t)-1);
        return;
    }
    if (c->proto == NULL) {
        int rc = detect(c);
        if (rc < 0)
            conn_free(c);
        if (rc <= 0)
            return;
    }
    sr_api__conn_next(c, c->proto->on_read(c));
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
    struct sr_api__conn *c = arg;
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
            bufferevent_disable(c->bev, EV_READ);
            if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
                conn_free(c);
            return;
        }
        if (c->proto != NULL) {
            sr_api__conn_next(c, c->proto->on_eof(c));
            return;
        }
    }
    if ((what & BEV_EVENT_ERROR) && !c->lingering)
        sr_log(SR_LOG_DEBUG, "api", "%s: connection error: %s", c->peer,
               evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)salen;
    struct sr_api *api = arg;
    int one = 1;
    /* Responses are small and written whole: don't let Nagle hold them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct bufferevent *bev = bufferevent_socket_new(api->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        evutil_closesocket(fd);
        return;
    }
    struct sr_api__conn *c = sr_calloc(1, sizeof(*c));
    c->api = api;
    c->bev = bev;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);

    c->next = api->conns;
    if (api->conns)
        api->conns->prev = c;
    api->conns = c;
    api->nconns++;

    /* Reading pauses when this much input waits unparsed (a parked or
     * backpressured connection), bounding memory per client. */
    bufferevent_setwatermark(bev, EV_READ, 0, SR_API_OUTPUT_HIGH);
    bufferevent_set_timeouts(bev, &idle_timeout, &idle_timeout);
    bufferevent_setcb(bev, on_conn_read, on_conn_write, on_conn_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
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
    struct sr_api *api = arg;
    if (api->conns != NULL)
        sr_log(SR_LOG_INFO, "api", "grace period over: closing %zu connection(s)", api->nconns);
    while (api->conns != NULL)
        conn_free(api->conns);
    event_base_loopbreak(api->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api *api = arg;
    if (api->stopping)
        return;
    api->stopping = true;
    evconnlistener_free(api->listener);
    api->listener = NULL;
    event_del(api->retry_accept_ev);

    for (struct sr_api__conn *c = api->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->draining)
            continue;
        if (c->proto == NULL)
            conn_free(c); /* not even a request yet */
        else
            sr_api__conn_next(c, c->proto->on_shutdown(c));
    }
    if (api->conns == NULL) {
        event_base_loopbreak(api->base);
        return;
    }
    struct timeval tv = {api->grace_ms / 1000, (api->grace_ms % 1000) * 1000};
    event_add(api->grace_ev, &tv);
}

static void *run(void *arg)
{
    struct sr_api *api = arg;
    /* Signals belong to main (STYLE §6); SIGPIPE from a write to a closed
     * socket then stays pending on this thread instead of killing us. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    event_base_loop(api->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- public ---------------------------------------------------------------- */

const char *sr_api__date(struct sr_api *api)
{
    time_t now = time(NULL);
    if (now != api->date_sec) {
        api->date_sec = now;
        sr_api__http_date(now, api->date, sizeof(api->date));
    }
    return api->date;
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

struct sr_api *sr_api_new(const struct sr_api_opts *opts, const struct sr_api_hooks *hooks,
                          struct sr_cache *cache, char *err, size_t errlen)
{
    struct sr_api *api = sr_calloc(1, sizeof(*api));
    evutil_socket_t fd = -1;
    api->router.cache = cache;
    api->router.refresh_interval_sec = opts->refresh_interval_sec;
    api->router.started_mono = sr_mono();
    api->router.now = sr_now;
    if (hooks != NULL)
        api->hooks = *hooks;
    api->router.can_refresh = api->hooks.resync != NULL;

    fd = listen_on(opts->host ? opts->host : "0.0.0.0", opts->port, api->where, sizeof(api->where),
                   &api->port, err, errlen);
    if (fd < 0)
        goto fail;
    api->base = event_base_new();
    if (api->base == NULL) {
        snprintf(err, errlen, "cannot create the API event base");
        goto fail;
    }
    api->listener = evconnlistener_new(api->base, on_accept, api, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (api->listener == NULL) {
        snprintf(err, errlen, "cannot listen on %s: evconnlistener failed", api->where);
        goto fail;
    }
    fd = -1; /* the listener owns it now */
    evconnlistener_set_error_cb(api->listener, on_accept_error);
    api->stop_ev = event_new(api->base, -1, 0, on_stop, api);
    api->grace_ev = evtimer_new(api->base, on_grace, api);
    api->retry_accept_ev = evtimer_new(api->base, on_retry_accept, api);
    api->mb = sr_api__mailbox_new(api->base);
    if (!api->stop_ev || !api->grace_ev || !api->retry_accept_ev || !api->mb) {
        snprintf(err, errlen, "cannot create API events");
        goto fail;
    }
    return api;

fail:
    if (fd >= 0)
        close(fd);
    sr_api_free(api);
    return NULL;
}

unsigned sr_api_port(const struct sr_api *api)
{
    return api->port;
}

int sr_api_start(struct sr_api *api)
{
    if (api->started || api->stopped)
        return -1;
    if (pthread_create(&api->thread, NULL, run, api) != 0)
        return -1;
    api->started = true;
    sr_log(SR_LOG_INFO, "api", "listening on %s (HTTP/1.1 and h2c)", api->where);
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
     * API thread. */
    api->grace_ms = grace_ms;
    event_active(api->stop_ev, EV_READ, 0);
    pthread_join(api->thread, NULL);
    sr_log(SR_LOG_INFO, "api", "stopped");
}

void sr_api_free(struct sr_api *api)
{
    if (api == NULL)
        return;
    sr_api_stop(api, 0);
    /* The thread is gone (or never ran): what is left is freed from here. */
    while (api->conns != NULL)
        conn_free(api->conns);
    if (api->listener != NULL)
        evconnlistener_free(api->listener);
    sr_api__mailbox_close(api->mb);
    if (api->stop_ev)
        event_free(api->stop_ev);
    if (api->grace_ev)
        event_free(api->grace_ev);
    if (api->retry_accept_ev)
        event_free(api->retry_accept_ev);
    if (api->base)
        event_base_free(api->base);
    free(api);
}
