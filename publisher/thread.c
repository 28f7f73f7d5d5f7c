/* The publisher thread: owns the AMQP connection and the outbox. One loop:
 * take the inbox, (re)connect when due, queue health and resync messages,
 * read confirms and publish what the window allows, then sleep in poll(2)
 * until a producer, stop, the broker or the next timer wakes it. */
#include "publisher/publisher_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/log.h"
#include "cache/util.h"

#define LOGGER SR_PUB_LOGGER
#define SERVICE_SEC 5.0 /* longest sleep while connected: heartbeats */
#define DROP_LOG_SEC 10.0

static double rand01(struct sr_publisher *p)
{
    /* xorshift64*: jitter only, no need for anything stronger. */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return (double)((p->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* The broker blocks our publishes (connection.blocked: a resource alarm). */
static bool blocked(const struct sr_publisher *p)
{
    return p->link != NULL && sr_publisher__link_blocked(p->link)[0] != '\0';
}

static void set_state(struct sr_publisher *p, enum sr_publisher_state s, const char *error)
{
    pthread_mutex_lock(&p->mu);
    p->st.state = s;
    if (error != NULL)
        snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", error);
    pthread_mutex_unlock(&p->mu);
}

/* Publishes the thread's counters for sr_publisher_get_status. */
static void report(struct sr_publisher *p)
{
    pthread_mutex_lock(&p->mu);
    p->st.published = p->published;
    p->st.confirmed = p->ob.confirmed;
    p->st.dropped = p->ob.dropped;
    p->st.queued = p->ob.count;
    p->st.connects = p->connects;
    p->st.refused = p->refused;
    p->st.max_message = p->max_message;
    snprintf(p->st.blocked, sizeof(p->st.blocked), "%s",
             p->link != NULL ? sr_publisher__link_blocked(p->link) : "");
    pthread_mutex_unlock(&p->mu);
}

/* Moves the inbox into the outbox. Returns the stop flag (and its deadline). */
static bool take_inbox(struct sr_publisher *p, double *flush_deadline)
{
    uint64_t junk;
    while (read(p->wake_fd, &junk, sizeof(junk)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&p->mu);
    struct sr_pub_msg *m = p->in_head;
    p->in_head = p->in_tail = NULL;
    p->in_count = 0;
    p->wake_pending = false;
    if (p->in_resync)
        p->ob.resync = true;
    p->in_resync = false;
    uint64_t dropped = p->in_dropped + p->ob.dropped;
    bool stopping = p->stopping;
    *flush_deadline = p->flush_deadline;
    pthread_mutex_unlock(&p->mu);

    while (m != NULL) {
        struct sr_pub_msg *next = m->next;
        m->seq = ++p->next_seq;
        dropped += sr_publisher__outbox_push(&p->ob, m, false);
        m = next;
    }
    if (dropped > p->drops_logged && sr_mono() >= p->drop_log_at) {
        sr_log(SR_LOG_WARNING, LOGGER,
               "outbox full (RABBITMQ_OUTBOX_MAX=%u): %llu message(s) dropped so far; "
               "a full services.updated follows once connected",
               p->outbox_max, (unsigned long long)dropped);
        p->drops_logged = dropped;
        p->drop_log_at = sr_mono() + DROP_LOG_SEC;
    }
    return stopping;
}

/* Queues a message built on this thread. `force`: may exceed the bound. */
static void push_own(struct sr_publisher *p, struct sr_pub_msg *m, bool force)
{
    if (m == NULL)
        return;
    m->seq = ++p->next_seq;
    sr_publisher__outbox_push(&p->ob, m, force);
}

static void queue_health(struct sr_publisher *p)
{
    /* A backed-up outbox: the next one will do, and pushing this one would
     * drop a service change (and force a resync) for a stale health. */
    if (p->ob.count >= p->ob.max) {
        sr_log(SR_LOG_DEBUG, LOGGER, "outbox full: skipping this health.check");
        return;
    }
    json_t *h = p->health ? p->health(p->health_arg) : NULL;
    if (h == NULL)
        h = json_pack("{s:s}", "status", "unknown");
    char *raw = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(h);
    if (raw == NULL)
        return;
    double now = sr_now();
    size_t len;
    char *body = sr_publisher__wrap("health.check", now, sr_cache_version(p->cache), "health", raw,
                                    strlen(raw), &len);
    free(raw);
    if (body == NULL)
        return;
    /* Revision 0: not a cache change (feed.h). */
    push_own(p, sr_publisher__msg_new(sr_event_new(0, "health.check", body, len), now), false);
    free(body);
}

/* After drops: the whole current state, behind everything still queued, so
 * a subscriber that missed messages ends up right. */
static void queue_resync(struct sr_publisher *p)
{
    struct sr_snapshot *s = sr_cache_acquire(p->cache);
    double now = sr_now();
    struct sr_pub_msg *m = sr_publisher__msg_new(sr_snapshot_resync_event(s), now);
    sr_log(SR_LOG_INFO, LOGGER,
           "queued a full services.updated (%zu services, version %llu) "
           "after dropped messages",
           sr_snapshot_count(s), (unsigned long long)sr_snapshot_version(s));
    sr_snapshot_release(s);
    /* Forced: dropping for it would only ask for yet another resync. */
    push_own(p, m, true);
    p->ob.resync = false;
}

static void on_confirm(void *arg, uint64_t tag, bool multiple, bool ack)
{
    struct sr_publisher *p = arg;
    if (p->probe_tag != 0 && (multiple ? tag == 0 || p->probe_tag <= tag : p->probe_tag == tag)) {
        if (ack) {
            sr_log(SR_LOG_INFO, LOGGER,
                   "the broker took a message over %zu bytes: its limit was raised", p->max_message);
            p->max_message = 0;
        } else {
            p->limit_learned = sr_mono(); /* not a verdict on its size: ask later */
        }
        p->probe_tag = 0;
    }
    if (ack) {
        sr_publisher__outbox_ack(&p->ob, tag, multiple);
    } else {
        size_t n = sr_publisher__outbox_nack(&p->ob, tag, multiple);
        sr_log(SR_LOG_WARNING, LOGGER, "broker nacked %zu message(s); sending again", n);
    }
}

static void drop_link(struct sr_publisher *p, bool graceful)
{
    p->probe_tag = 0; /* unanswered: it is resent, or refused, on the next link */
    pthread_mutex_lock(&p->mu);
    p->link_fd = -1; /* before the close: stop must never shut a reused fd */
    pthread_mutex_unlock(&p->mu);
    if (graceful)
        sr_publisher__link_close(p->link);
    else
        sr_publisher__link_abort(p->link);
    p->link = NULL;
    sr_publisher__outbox_reset(&p->ob);
}

/* Publishes the socket so stop can cut a handshake short (or a stuck send). */
static void on_link_fd(void *arg, int fd)
{
    struct sr_publisher *p = arg;
    pthread_mutex_lock(&p->mu);
    p->link_fd = fd;
    pthread_mutex_unlock(&p->mu);
}

/* One connection attempt. Returns true when connected. */
static bool try_connect(struct sr_publisher *p, unsigned *attempt, double *next_try)
{
    char err[256];
    set_state(p, SR_PUBLISHER_CONNECTING, NULL);
    struct sr_pub_link *l =
        sr_publisher__link_open(&p->url, p->exchange, p->stop_fd, on_link_fd, p, err, sizeof(err));
    if (l == NULL) {
        double delay = sr_publisher__backoff(*attempt, rand01(p));
        *next_try = sr_mono() + delay;
        /* The first failure and every new reason are worth a warning; the
         * same one again every 30 s is not. */
        bool same;
        pthread_mutex_lock(&p->mu);
        same = *attempt > 0 && strcmp(p->st.last_error, err) == 0;
        pthread_mutex_unlock(&p->mu);
        sr_log(same ? SR_LOG_DEBUG : SR_LOG_WARNING, LOGGER,
               "cannot connect to %s: %s; retrying in %.1f s", p->broker, err, delay);
        (*attempt)++;
        set_state(p, SR_PUBLISHER_DISCONNECTED, err);
        return false;
    }
    p->link = l;
    p->connects++;
    p->connected_at = sr_mono();
    sr_publisher__outbox_reset(&p->ob);
    set_state(p, SR_PUBLISHER_CONNECTED, NULL);
    sr_log(SR_LOG_INFO, LOGGER, "connected to %s, exchange %s (%zu message(s) queued)", p->broker,
           p->exchange, p->ob.count);
    return true;
}

/* A message the broker would refuse for its size: it can never be
 * delivered, and sending it would close the channel again and hold up
 * everything behind it. So it goes, counted and logged. */
static void refuse_oversized(struct sr_publisher *p, struct sr_pub_msg *m, size_t len)
{
    sr_log(SR_LOG_ERROR, LOGGER,
           "dropped %s (revision %llu, %zu bytes): the broker refuses messages over %zu bytes "
           "(its max_message_size)",
           sr_event_key(m->ev), (unsigned long long)sr_event_revision(m->ev), len, p->max_message);
    sr_publisher__outbox_remove(&p->ob, m);
    p->refused++;
}

/* Reads confirms, then publishes what the window allows (nothing while the
 * broker blocks us: it would not read it, and a full socket would stall
 * this thread). Returns 0, or -1 with the reason when the connection is
 * dead. */
static int pump(struct sr_publisher *p, char *err, size_t errlen)
{
    if (sr_publisher__link_drain(p->link, on_confirm, p, err, errlen) != 0)
        return -1;
    if (blocked(p) || p->probe_tag != 0)
        return 0; /* blocked, or a re-check of the size limit must answer first */
    struct sr_pub_msg *m;
    while ((m = sr_publisher__outbox_next(&p->ob)) != NULL) {
        size_t len;
        sr_event_body(m->ev, &len);
        bool probe = false;
        if (p->max_message > 0 && len > p->max_message) {
            if (sr_mono() < p->limit_learned + p->limit_recheck_sec) {
                refuse_oversized(p, m, len);
                continue;
            }
            if (p->ob.nsent > 0)
                break; /* the re-check goes alone: once the others are confirmed */
            sr_log(SR_LOG_INFO, LOGGER,
                   "re-checking the broker's limit of %zu bytes with %s (%zu bytes)",
                   p->max_message, sr_event_key(m->ev), len);
            probe = true;
        }
        uint64_t tag;
        if (sr_publisher__link_publish(p->link, p->exchange, p->boot_id, m, &tag, err, errlen) != 0)
            return -1;
        sr_publisher__outbox_sent(&p->ob, m, tag);
        if (probe)
            p->probe_tag = tag;
        p->published++;
        sr_log(SR_LOG_DEBUG, LOGGER, "published %s (%s-%llu, revision %llu)", sr_event_key(m->ev),
               p->boot_id, (unsigned long long)m->seq,
               (unsigned long long)sr_event_revision(m->ev));
        if (probe)
            break;
    }
    return 0;
}

/* Sleeps until a producer, stop, the broker or `timeout` (seconds) wakes us. */
static void wait_events(struct sr_publisher *p, bool stopping, double timeout)
{
    struct pollfd pf[3];
    nfds_t n = 0;
    pf[n++] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
    if (!stopping) /* once stopping it stays readable */
        pf[n++] = (struct pollfd){.fd = p->stop_fd, .events = POLLIN};
    if (p->link != NULL) {
        if (sr_publisher__link_pending(p->link))
            return;
        pf[n++] = (struct pollfd){.fd = sr_publisher__link_fd(p->link), .events = POLLIN};
    }
    if (timeout < 0)
        timeout = 0;
    poll(pf, n, (int)(timeout * 1000) + 1); /* EINTR: the loop just comes back */
}

void *sr_publisher__run(void *arg)
{
    struct sr_publisher *p = arg;
    unsigned attempt = 0;
    double next_try = 0, next_health = 0;
    char err[256];

    for (;;) {
        double flush_deadline;
        bool stopping = take_inbox(p, &flush_deadline);
        report(p); /* queued moved from inbox to outbox: keep the sum right */
        double now = sr_mono();
        /* Blocked: nothing can go out, so there is nothing to wait for. */
        if (stopping && (p->link == NULL || p->ob.count == 0 || now >= flush_deadline || blocked(p)))
            break;
        if (p->link == NULL && !stopping && now >= next_try && try_connect(p, &attempt, &next_try))
            next_health = sr_mono(); /* a fresh health.check right after connecting */
        if (p->link != NULL) {
            if (!stopping && sr_mono() >= next_health) {
                queue_health(p);
                next_health = sr_mono() + p->health_interval_sec;
            }
            /* Only once the backlog has halved: while drops go on, a full
             * state would be stale again before anyone reads it. */
            if (p->ob.resync && !stopping && p->ob.count <= p->ob.max / 2)
                queue_resync(p);
            if (pump(p, err, sizeof(err)) != 0) {
                sr_log(SR_LOG_WARNING, LOGGER, "%s: %s; reconnecting (%zu message(s) queued)",
                       p->broker, err, p->ob.count);
                /* Which message it refused is unknown (confirms lag), but
                 * the limit is known: every message over it is refused. */
                size_t max = sr_publisher__link_max_size(p->link);
                if (max > 0) { /* the broker's word now, raised or lowered */
                    p->max_message = max;
                    p->limit_learned = sr_mono();
                }
                drop_link(p, false);
                set_state(p, SR_PUBLISHER_DISCONNECTED, err);
                /* Not from 0 on every connect: a broker that takes the
                 * login and then drops us would be retried 3 times a
                 * second, re-sending the unconfirmed messages each time. */
                attempt = sr_publisher__attempt_after(attempt, sr_mono() - p->connected_at);
                next_try = sr_mono() + sr_publisher__backoff(attempt++, rand01(p));
            }
        }
        report(p);

        now = sr_mono();
        double timeout;
        if (p->link != NULL) {
            timeout = SERVICE_SEC;
            if (!stopping && next_health - now < timeout)
                timeout = next_health - now;
        } else {
            timeout = next_try - now;
        }
        if (stopping && flush_deadline - now < timeout)
            timeout = flush_deadline - now;
        if (stopping && (p->link == NULL || p->ob.count == 0))
            continue; /* flushed (or nothing to flush on): out at the top */
        wait_events(p, stopping, timeout);
    }

    if (p->ob.count > 0)
        sr_log(SR_LOG_WARNING, LOGGER, "stopping with %zu message(s) %s", p->ob.count,
               p->link == NULL ? "unsent (broker unreachable)"
               : blocked(p) ? "unsent (the broker blocks publishing)"
                                                        : "unconfirmed (flush time is up)");
    if (p->link != NULL) /* a blocked broker reads nothing, not even a close */
        drop_link(p, !blocked(p));
    set_state(p, SR_PUBLISHER_DISCONNECTED, NULL);
    report(p);
    pthread_mutex_lock(&p->mu);
    p->exited = true;
    pthread_cond_signal(&p->exited_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}
