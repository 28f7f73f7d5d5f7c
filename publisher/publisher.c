/* publisher: the object, the hand-over from producers, status and the
 * lifecycle (see publisher.h for the design; the thread is in thread.c).
 *
 * Two queues, one owner each. Producers append to the inbox under `mu` and
 * wake the thread through an eventfd; the thread moves the whole inbox into
 * its outbox, which only it touches, so publishing and reading confirms need
 * no lock and producers never wait on the broker. Both queues hold at most
 * outbox_max messages and drop their oldest beyond that. */
#include "publisher/publisher.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"
#include "publisher/publisher_internal.h"

#define LOGGER SR_PUB_LOGGER
#define DEFAULT_EXCHANGE "service-registry"
#define DEFAULT_OUTBOX_MAX 10000
#define DEFAULT_LIMIT_RECHECK_SEC 300
#define DEFAULT_HEALTH_SEC 30
#define WINDOW 1024        /* unconfirmed messages at once */
#define STOP_GRACE_MS 1000 /* after flush_ms, before forcing the socket shut */

const char *sr_publisher_state_name(enum sr_publisher_state s)
{
    switch (s) {
    case SR_PUBLISHER_DISABLED:
        return "disabled";
    case SR_PUBLISHER_CONNECTING:
        return "connecting";
    case SR_PUBLISHER_CONNECTED:
        return "connected";
    case SR_PUBLISHER_DISCONNECTED:
        return "disconnected";
    }
    return "unknown";
}

/* ---- producers (any thread) ------------------------------------------------ */

static void wake(int fd)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the wakeup is pending. */
    while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/* Appends msgs to the inbox (taking them) and wakes the thread. */
static void enqueue(struct sr_publisher *p, struct sr_pub_msg **msgs, size_t n)
{
    bool need_wake = false;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) { /* nothing would send them any more */
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < n; i++)
            sr_publisher__msg_free(msgs[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct sr_pub_msg *m = msgs[i];
        m->next = NULL;
        if (p->in_tail)
            p->in_tail->next = m;
        else
            p->in_head = m;
        p->in_tail = m;
        p->in_count++;
        if (p->in_count > p->outbox_max) {
            struct sr_pub_msg *old = p->in_head;
            p->in_head = old->next;
            p->in_count--;
            p->in_dropped++;
            p->in_resync = true;
            sr_publisher__msg_free(old);
        }
    }
    if (!p->wake_pending) {
        p->wake_pending = true;
        need_wake = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (need_wake)
        wake(p->wake_fd);
}

/* The cache's event listener, on the writer's thread with its write lock
 * held, so batches arrive in revision order. Takes references (no copy)
 * and hands them over; never waits on the broker. */
static void on_events(struct sr_event *const *events, size_t n, void *arg)
{
    struct sr_publisher *p = arg;
    double now = sr_now();
    struct sr_pub_msg **msgs = sr_calloc(n ? n : 1, sizeof(*msgs));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = sr_event_key(events[i]);
        if (strlen(key) > SR_PUB_MAX_KEY) { /* AMQP can't carry it; Docker names never are */
            sr_log(SR_LOG_WARNING, LOGGER, "not publishing %.40s...: routing key too long", key);
            continue;
        }
        msgs[k++] = sr_publisher__msg_new(sr_event_incref(events[i]), now);
    }
    if (k > 0)
        enqueue(p, msgs, k);
    free(msgs);
}

void sr_publisher_publish(struct sr_publisher *p, const char *event, uint64_t cache_version,
                          const char *payload_key, json_t *payload)
{
    if (p == NULL || !p->enabled || payload == NULL) {
        json_decref(payload);
        return;
    }
    size_t elen = event ? strlen(event) : 0;
    if (elen == 0 || elen > SR_PUB_MAX_KEY) {
        sr_log(SR_LOG_WARNING, LOGGER, "not publishing an event with %s name",
               elen ? "a too long" : "an empty");
        json_decref(payload);
        return;
    }
    char *raw = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(payload);
    if (raw == NULL)
        return;
    double now = sr_now();
    size_t len;
    char *body = sr_publisher__wrap(event, now, cache_version, payload_key, raw, strlen(raw), &len);
    free(raw);
    if (body == NULL)
        return;
    struct sr_pub_msg *m =
        sr_publisher__msg_new(sr_event_new(cache_version, event, body, len), now);
    free(body);
    enqueue(p, &m, 1);
}

/* ---- lifecycle (main thread) ----------------------------------------------------- */

static void make_boot_id(struct sr_publisher *p)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)p;
    snprintf(p->boot_id, sizeof(p->boot_id), "%016llx", (unsigned long long)r);
    p->rng = r | 1;
}

struct sr_publisher *sr_publisher_new(const struct sr_publisher_opts *opts, struct sr_cache *cache,
                                      char *err, size_t errlen)
{
    struct sr_publisher *p = sr_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->exited_cv, &ca);
    pthread_condattr_destroy(&ca);
    p->wake_fd = p->stop_fd = p->link_fd = -1;
    p->cache = cache;
    const char *ex = opts->exchange && *opts->exchange ? opts->exchange : DEFAULT_EXCHANGE;
    p->exchange = sr_strdup(ex);
    snprintf(p->st.exchange, sizeof(p->st.exchange), "%s", ex);
    p->enabled = opts->url != NULL && *opts->url != '\0';
    if (!p->enabled) {
        p->st.state = SR_PUBLISHER_DISABLED;
        return p;
    }

    char why[200];
    if (sr_publisher__url_parse(opts->url, &p->url, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "RABBITMQ_URL: %s", why);
        goto fail;
    }
    if (strlen(ex) > SR_PUB_MAX_KEY) {
        snprintf(err, errlen, "RABBITMQ_EXCHANGE: longer than %d bytes", SR_PUB_MAX_KEY);
        goto fail;
    }
    sr_publisher__url_display(&p->url, p->broker, sizeof(p->broker));
    snprintf(p->st.broker, sizeof(p->st.broker), "%s", p->broker);
    p->outbox_max = opts->outbox_max ? opts->outbox_max : DEFAULT_OUTBOX_MAX;
    p->limit_recheck_sec = opts->limit_recheck_sec ? opts->limit_recheck_sec : DEFAULT_LIMIT_RECHECK_SEC;
    p->health_interval_sec =
        opts->health_interval_sec ? opts->health_interval_sec : DEFAULT_HEALTH_SEC;
    p->health = opts->health;
    p->health_arg = opts->health_arg;
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake_fd < 0 || p->stop_fd < 0) {
        snprintf(err, errlen, "publisher: eventfd: %s", strerror(errno));
        goto fail;
    }
    make_boot_id(p);
    sr_publisher__outbox_init(&p->ob, p->outbox_max, WINDOW);
    p->st.state = SR_PUBLISHER_CONNECTING;
    /* Last: once registered, the cache may call us until sr_publisher_free. */
    if (sr_cache_add_event_listener(cache, on_events, p) != 0) {
        snprintf(err, errlen, "publisher: the cache's listener table is full");
        goto fail;
    }
    return p;

fail:
    sr_publisher_free(p);
    return NULL;
}

int sr_publisher_start(struct sr_publisher *p)
{
    if (!p->enabled || p->started)
        return 0;
    int rc = pthread_create(&p->thread, NULL, sr_publisher__run, p);
    if (rc != 0) {
        sr_log(SR_LOG_ERROR, LOGGER, "cannot start the publisher thread: %s", strerror(rc));
        return -1;
    }
    p->started = true;
    sr_log(SR_LOG_INFO, LOGGER, "publishing to %s, exchange %s (outbox max %u, health every %u s)",
           p->broker, p->exchange, p->outbox_max, p->health_interval_sec);
    return 0;
}

void sr_publisher_get_status(struct sr_publisher *p, struct sr_publisher_status *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->dropped += p->in_dropped;
    out->queued += p->in_count;
    pthread_mutex_unlock(&p->mu);
}

json_t *sr_publisher_status_json(struct sr_publisher *p)
{
    struct sr_publisher_status st;
    sr_publisher_get_status(p, &st);
    bool enabled = st.state != SR_PUBLISHER_DISABLED;
    /* The broker's messages and the configured names are text from
     * outside: sr_json_text, so one bad byte cannot empty the status. */
    return json_pack(
        "{s:b, s:s, s:b, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "enabled",
        enabled, "status", sr_publisher_state_name(st.state), "connected",
        st.state == SR_PUBLISHER_CONNECTED, "broker",
        enabled ? sr_json_text(st.broker) : json_null(), "exchange", sr_json_text(st.exchange),
        "published", (json_int_t)st.published, "confirmed", (json_int_t)st.confirmed, "queued",
        (json_int_t)st.queued, "dropped", (json_int_t)st.dropped, "refused",
        (json_int_t)st.refused, "connects", (json_int_t)st.connects, "outbox_max",
        enabled ? json_integer(p->outbox_max) : json_null(), "max_message_bytes",
        st.max_message ? json_integer((json_int_t)st.max_message) : json_null(), "blocked",
        st.blocked[0] ? sr_json_text(st.blocked) : json_null(), "last_error",
        st.last_error[0] ? sr_json_text(st.last_error) : json_null());
}

void sr_publisher_stop(struct sr_publisher *p, unsigned flush_ms)
{
    if (p == NULL || !p->started || p->joined)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    p->flush_deadline = sr_mono() + flush_ms / 1000.0;
    /* Mid-handshake there is nothing to flush: cut it short rather than
     * wait for librabbitmq's handshake timeout. */
    if (p->st.state == SR_PUBLISHER_CONNECTING && p->link_fd >= 0)
        shutdown(p->link_fd, SHUT_RDWR);
    pthread_mutex_unlock(&p->mu);
    wake(p->stop_fd);

    /* librabbitmq can block in a send to a broker that stopped reading; if
     * the thread overstays, shutting the socket makes that call fail. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)ts.tv_nsec + (long long)(flush_ms + STOP_GRACE_MS) * 1000000LL;
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&p->mu);
    while (!p->exited)
        if (pthread_cond_timedwait(&p->exited_cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    if (!p->exited && p->link_fd >= 0) {
        sr_log(SR_LOG_WARNING, LOGGER, "publisher thread stuck in the broker; closing its socket");
        shutdown(p->link_fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    p->joined = true;
}

void sr_publisher_free(struct sr_publisher *p)
{
    if (p == NULL)
        return;
    /* First: once this returns, the cache's writers no longer reach us
     * (-1 when disabled or never registered: nothing to remove). */
    sr_cache_remove_event_listener(p->cache, on_events, p);
    sr_publisher_stop(p, 0);
    struct sr_pub_msg *m = p->in_head;
    while (m != NULL) {
        struct sr_pub_msg *next = m->next;
        sr_publisher__msg_free(m);
        m = next;
    }
    sr_publisher__outbox_clear(&p->ob);
    sr_publisher__url_free(&p->url);
    free(p->exchange);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    if (p->stop_fd >= 0)
        close(p->stop_fd);
    pthread_cond_destroy(&p->exited_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
