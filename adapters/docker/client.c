/* curl multi on libevent, after curl's docs/examples/hiperfifo.c: curl tells
 * us which fds to watch (on_socket) and when to call it back (on_timer_set);
 * libevent tells curl what happened (on_fd, on_timeout), and finished
 * transfers are reaped after every socket_action, outside curl's callbacks,
 * so done callbacks may start new transfers. */
#include "adapters/docker/client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/log.h"
#include "cache/util.h"

#define ERROR_BODY_MAX (64u << 10) /* a stream's non-2xx body is a short message */

struct sock {
    struct event *ev;
    struct sock *next, *prev; /* in h->socks, so free can find curl's leftovers */
};

struct sr_http {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    char *unix_path; /* NULL for TCP */
    char *base_url;
    struct sr_http_req *reqs; /* live requests */
    struct sock *socks;
    sr_http_count_cb count;
    void *count_arg;
};

struct sr_http_req {
    struct sr_http *h;
    CURL *easy;
    bool stream, opened, too_big, aborted;
    sr_http_done_cb on_done;
    sr_http_open_cb on_open;
    sr_http_data_cb on_data;
    void *arg;
    struct sr_buf body;
    char *path; /* as asked for: curl's effective URL is normalised */
    char api_version[32];
    long date;
    char errbuf[CURL_ERROR_SIZE];
    struct sr_http_req *next, *prev;
};

/* ---- fds and timer ------------------------------------------------------ */

static void reap(struct sr_http *h);

static void on_fd(evutil_socket_t fd, short kind, void *arg)
{
    struct sr_http *h = arg;
    int action =
        ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(h->multi, fd, action, &running);
    reap(h);
}

static void on_timeout(evutil_socket_t fd, short kind, void *arg)
{
    struct sr_http *h = arg;
    int running;
    (void)fd;
    (void)kind;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    reap(h);
}

/* CURLMOPT_TIMERFUNCTION: only arm our timer; calling libcurl from here is
 * not allowed (CURLMOPT_TIMERFUNCTION.md). */
static int on_timer_set(CURLM *multi, long timeout_ms, void *arg)
{
    struct sr_http *h = arg;
    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(h->timer);
        return 0;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add(h->timer, &tv);
    return 0;
}

static void sock_free(struct sr_http *h, struct sock *so)
{
    event_free(so->ev);
    if (so->prev != NULL)
        so->prev->next = so->next;
    else
        h->socks = so->next;
    if (so->next != NULL)
        so->next->prev = so->prev;
    free(so);
}

/* CURLMOPT_SOCKETFUNCTION: one persistent event per fd, re-assigned when the
 * interest changes. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct sr_http *h = arg;
    struct sock *so = sockp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (so != NULL)
            sock_free(h, so);
        curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (so == NULL) {
        so = sr_calloc(1, sizeof(*so));
        so->ev = event_new(h->base, fd, kind, on_fd, h);
        if (so->ev == NULL)
            abort(); /* only fails on OOM */
        so->next = h->socks;
        if (h->socks != NULL)
            h->socks->prev = so;
        h->socks = so;
        curl_multi_assign(h->multi, fd, so);
    } else {
        event_del(so->ev);
        event_assign(so->ev, h->base, fd, kind, on_fd, h);
    }
    event_add(so->ev, NULL);
    return 0;
}

/* ---- transfers ---------------------------------------------------------- */

static int append(struct sr_http_req *r, const char *data, size_t n, size_t max)
{
    if (n > max - r->body.len) {
        r->too_big = true;
        return -1;
    }
    sr_buf_put(&r->body, data, n);
    return 0;
}

static long status_of(const struct sr_http_req *r)
{
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sr_http_req *r = arg;
    size_t n = size * nmemb;
    if (r->stream) {
        long code = status_of(r);
        if (code >= 200 && code < 300) {
            if (r->on_data(data, n, r->arg) != 0) {
                r->aborted = true;
                return 0;
            }
            return n;
        }
        return append(r, data, n, ERROR_BODY_MAX) == 0 ? n : 0;
    }
    return append(r, data, n, SR_HTTP_MAX_BODY) == 0 ? n : 0;
}

static void fill_result(const struct sr_http_req *r, struct sr_http_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = status_of(r);
    res->body = r->body.p != NULL ? r->body.p : "";
    res->len = r->body.len;
    res->api_version = r->api_version;
    res->date = r->date;
    res->error = "";
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sr_http_req *r = arg;
    size_t n = size * nmemb;
    /* Header names are case-insensitive: the spec says API-Version, Go sends
     * Api-Version. */
    static const char api[] = "api-version:", date[] = "date:";
    if (n > sizeof(api) - 1 && strncasecmp(data, api, sizeof(api) - 1) == 0) {
        const char *v = data + sizeof(api) - 1, *e = data + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        snprintf(r->api_version, sizeof(r->api_version), "%.*s", (int)(e - v), v);
    } else if (n > sizeof(date) - 1 && strncasecmp(data, date, sizeof(date) - 1) == 0) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%.*s", (int)(n - (sizeof(date) - 1)), data + sizeof(date) - 1);
        time_t t = curl_getdate(buf, NULL);
        r->date = t >= 0 ? (long)t : -1;
    } else if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n')) {
        long code = status_of(r);
        if (r->stream && !r->opened && code >= 200 && code < 300) {
            r->opened = true;
            struct sr_http_result res;
            fill_result(r, &res);
            res.transport_ok = true;
            if (r->on_open != NULL)
                r->on_open(&res, r->arg);
        }
    }
    return n;
}

static void unlink_req(struct sr_http_req *r)
{
    struct sr_http *h = r->h;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
}

static void req_free(struct sr_http_req *r)
{
    curl_multi_remove_handle(r->h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    unlink_req(r);
    free(r->body.p);
    free(r->path);
    free(r);
}

/* curl's connect message names "localhost port 80" even for a unix socket,
 * and carries a varying "after N ms": say what was tried and the errno, so
 * the reason stays the same from one attempt to the next. */
static void describe_error(struct sr_http_req *r, CURLcode rc, char *out, size_t outlen)
{
    long os_errno = 0;
    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_COULDNT_CONNECT && os_errno != 0) {
        const char *target = r->h->unix_path;
        if (target == NULL)
            target = r->h->base_url + strlen("http://");
        snprintf(out, outlen, "cannot connect to %s: %s", target, strerror((int)os_errno));
    } else if (rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(out, outlen, "response body over %u MiB", SR_HTTP_MAX_BODY >> 20);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(out, outlen, "timed out (%s)", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    } else {
        snprintf(out, outlen, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    }
}

/* Tells the counter about a finished transfer: its path and, unless it is
 * a stream, how long it took. */
static void count(struct sr_http_req *r, bool error)
{
    double seconds = -1;
    curl_off_t us = 0;
    if (!r->stream && curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
        seconds = (double)us / 1e6;
    r->h->count(r->path, error, seconds, r->h->count_arg);
}

/* Takes each finished transfer off the multi handle before its callback
 * runs, so the callback may add or cancel transfers; a cancelled transfer's
 * pending DONE message goes with curl_multi_remove_handle. */
static void reap(struct sr_http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        struct sr_http_req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        struct sr_http_result res;
        fill_result(r, &res);
        char why[CURL_ERROR_SIZE + 64];
        res.transport_ok = rc == CURLE_OK;
        if (rc != CURLE_OK) {
            if (r->too_big)
                snprintf(why, sizeof(why), "response body over %u MiB", SR_HTTP_MAX_BODY >> 20);
            else if (r->aborted)
                snprintf(why, sizeof(why), "stream aborted by the reader");
            else
                describe_error(r, rc, why, sizeof(why));
            res.error = why;
        }
        if (h->count != NULL)
            count(r, rc != CURLE_OK || res.status >= 400);
        sr_http_done_cb done = r->on_done;
        void *arg = r->arg;
        /* Detach the buffers from the request so they outlive its free. */
        char *body = r->body.p;
        char apiv[sizeof(r->api_version)];
        memcpy(apiv, r->api_version, sizeof(apiv));
        res.api_version = apiv;
        r->body.p = NULL;
        req_free(r);
        done(&res, arg);
        free(body);
    }
}

static struct sr_http_req *start(struct sr_http *h, const char *path, bool stream, long timeout_s,
                                 sr_http_open_cb on_open, sr_http_data_cb on_data,
                                 sr_http_done_cb done, void *arg)
{
    struct sr_http_req *r = sr_calloc(1, sizeof(*r));
    r->h = h;
    r->stream = stream;
    r->on_open = on_open;
    r->on_data = on_data;
    r->on_done = done;
    r->arg = arg;
    r->date = -1;
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        free(r);
        return NULL;
    }
    r->path = sr_strdup(path);
    size_t ulen = strlen(h->base_url) + strlen(path) + 1;
    char *url = sr_malloc(ulen);
    snprintf(url, ulen, "%s%s", h->base_url, path);
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url); /* libcurl copies strings */
    free(url);
    if (h->unix_path != NULL)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, h->unix_path);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)SR_HTTP_CONNECT_TIMEOUT_S);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "swarm-registry/" SR_VERSION);
    if (stream) {
        /* /events sends nothing while nothing happens: only keepalive can
         * tell a dead TCP peer from a quiet one. */
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout_s);
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SR_HTTP_MAX_BODY);
    }
    r->next = h->reqs;
    if (h->reqs != NULL)
        h->reqs->prev = r;
    h->reqs = r;
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        unlink_req(r);
        free(r->path);
        free(r);
        return NULL;
    }
    return r;
}

struct sr_http_req *sr_http_get(struct sr_http *h, const char *path, sr_http_done_cb done,
                                void *arg)
{
    return start(h, path, false, SR_HTTP_TOTAL_TIMEOUT_S, NULL, NULL, done, arg);
}

struct sr_http_req *sr_http_get_timeout(struct sr_http *h, const char *path, unsigned timeout_s,
                                        sr_http_done_cb done, void *arg)
{
    return start(h, path, false, timeout_s ? (long)timeout_s : SR_HTTP_TOTAL_TIMEOUT_S, NULL, NULL,
                 done, arg);
}

struct sr_http_req *sr_http_stream(struct sr_http *h, const char *path, sr_http_open_cb on_open,
                                   sr_http_data_cb on_data, sr_http_done_cb done, void *arg)
{
    return start(h, path, true, 0, on_open, on_data, done, arg);
}

void sr_http_cancel(struct sr_http_req *req)
{
    if (req != NULL)
        req_free(req);
}

char *sr_http_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (e == NULL)
        abort(); /* only fails on OOM */
    char *out = sr_strdup(e);
    curl_free(e);
    return out;
}

/* ---- lifecycle ---------------------------------------------------------- */

struct sr_http *sr_http_new(struct event_base *base, const char *unix_path, const char *base_url)
{
    struct sr_http *h = sr_calloc(1, sizeof(*h));
    h->base = base;
    h->multi = curl_multi_init();
    h->timer = evtimer_new(base, on_timeout, h);
    if (h->multi == NULL || h->timer == NULL) {
        sr_http_free(h);
        return NULL;
    }
    h->unix_path = unix_path != NULL && *unix_path ? sr_strdup(unix_path) : NULL;
    h->base_url = sr_strdup(base_url);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return h;
}

void sr_http_set_counter(struct sr_http *h, sr_http_count_cb cb, void *arg)
{
    h->count = cb;
    h->count_arg = arg;
}

void sr_http_free(struct sr_http *h)
{
    if (h == NULL)
        return;
    while (h->reqs != NULL)
        req_free(h->reqs);
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    /* curl may close pooled connections without telling us: drop their
     * events ourselves. */
    while (h->socks != NULL)
        sock_free(h, h->socks);
    if (h->timer != NULL)
        event_free(h->timer);
    free(h->unix_path);
    free(h->base_url);
    free(h);
}
