/* refresh: parked requests (POST /cache/refresh, POST
 * /services/{name}/metrics, and long-polls: GET ...?index=&wait=).
 *
 * The hook (resync, collect_metrics) runs elsewhere (the Docker thread) and
 * calls `done` from there. `done` only queues the pending record in the
 * mailbox of the worker that parked it and wakes that worker's base with
 * event_active; the worker drains the whole queue (wakeups coalesce) and
 * answers on the owner's connection.
 *
 * Lifetimes, since either side may go first:
 * - A pending record has two references: the owner's (a connection or
 *   stream, dropped when it answers or goes away) and the hook's (dropped
 *   after `done` was handled). The owner going away sets `cancelled`, so the
 *   completion is dropped instead of touching a freed connection.
 * - The mailbox has one reference per live pending record plus the
 *   server's, so a hook finishing after sr_api_free still finds a valid
 *   mailbox; once closed (no event), late completions are just released.
 * - A long-poll's "hook" is a watcher on the same worker (watch.c): it
 *   fires through the same mailbox, so the owner is answered from a
 *   top-level callback whatever woke it; an owner going away first drops
 *   the watcher at once (no timer left running for a gone client). */
#include "api/api_internal.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cache/log.h"
#include "cache/util.h"

struct sr_api__mailbox {
    pthread_mutex_t mu;
    unsigned refs;                /* under mu */
    struct event *ev;             /* NULL once closed; under mu */
    struct sr_api__pending *head; /* completed records; under mu */
    struct sr_api__pending **tail;
};

struct sr_api__pending {
    atomic_uint refs;
    bool cancelled; /* API thread only */
    int status;     /* written by done before queueing */
    sr_api__pending_cb cb;
    void *owner;
    struct sr_api__mailbox *mb;
    struct sr_api__pending *next;
    struct sr_api__watcher *watcher; /* a parked long-poll, API thread only */
};

static void mailbox_unref(struct sr_api__mailbox *mb)
{
    pthread_mutex_lock(&mb->mu);
    bool last = --mb->refs == 0;
    pthread_mutex_unlock(&mb->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}

static void pending_unref(struct sr_api__pending *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct sr_api__mailbox *mb = p->mb;
    free(p);
    mailbox_unref(mb);
}

/* API thread: run the callbacks of every completed record. */
static void on_mail(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_api__mailbox *mb = arg;
    pthread_mutex_lock(&mb->mu);
    struct sr_api__pending *p = mb->head;
    mb->head = NULL;
    mb->tail = &mb->head;
    pthread_mutex_unlock(&mb->mu);

    while (p != NULL) {
        struct sr_api__pending *next = p->next;
        if (!p->cancelled) {
            /* The owner answers and forgets p; its reference goes with it. */
            p->cancelled = true;
            p->cb(p->owner, p->status);
            pending_unref(p);
        }
        pending_unref(p); /* the hook's */
        p = next;
    }
}

struct sr_api__mailbox *sr_api__mailbox_new(struct event_base *base)
{
    struct sr_api__mailbox *mb = sr_calloc(1, sizeof(*mb));
    pthread_mutex_init(&mb->mu, NULL);
    mb->refs = 1;
    mb->tail = &mb->head;
    mb->ev = event_new(base, -1, 0, on_mail, mb);
    if (mb->ev == NULL) {
        pthread_mutex_destroy(&mb->mu);
        free(mb);
        return NULL;
    }
    return mb;
}

void sr_api__mailbox_close(struct sr_api__mailbox *mb)
{
    if (mb == NULL)
        return;
    pthread_mutex_lock(&mb->mu);
    struct event *ev = mb->ev;
    mb->ev = NULL;
    struct sr_api__pending *p = mb->head;
    mb->head = NULL;
    mb->tail = &mb->head;
    pthread_mutex_unlock(&mb->mu);
    event_free(ev);
    /* Completed but never delivered: the owners are gone by now. */
    while (p != NULL) {
        struct sr_api__pending *next = p->next;
        if (!p->cancelled) {
            p->cancelled = true;
            pending_unref(p);
        }
        pending_unref(p);
        p = next;
    }
    mailbox_unref(mb);
}

/* Any thread: the hook finished. */
static void on_done(int status, void *arg)
{
    struct sr_api__pending *p = arg;
    struct sr_api__mailbox *mb = p->mb;
    p->status = status;
    pthread_mutex_lock(&mb->mu);
    if (mb->ev != NULL) {
        p->next = NULL;
        *mb->tail = p;
        mb->tail = &p->next;
        /* Under mu: the event cannot be freed meanwhile (mailbox_close). */
        event_active(mb->ev, EV_READ, 0);
        p = NULL;
    }
    pthread_mutex_unlock(&mb->mu);
    if (p != NULL)
        pending_unref(p); /* the server is gone; so is the owner */
}

struct sr_api__pending *sr_api__park_start(struct sr_api__worker *w,
                                           const struct sr_api__park *park,
                                           sr_api__pending_cb cb, void *owner)
{
    const struct sr_api_hooks *hooks = &w->api->hooks;
    struct sr_api__mailbox *mb = w->mb;
    struct sr_api__pending *p = sr_calloc(1, sizeof(*p));
    atomic_init(&p->refs, 2);
    p->cb = cb;
    p->owner = owner;
    p->mb = mb;
    pthread_mutex_lock(&mb->mu);
    mb->refs++;
    pthread_mutex_unlock(&mb->mu);

    int rc = -1;
    if (park->kind == SR_API_PARK_WATCH) {
        p->watcher = sr_api__watch_park(w, park, p);
        return p;
    }
    if (park->kind == SR_API_PARK_REFRESH && hooks->resync != NULL)
        rc = hooks->resync(hooks->ctx, on_done, p);
    else if (park->kind == SR_API_PARK_METRICS && hooks->collect_metrics != NULL)
        rc = hooks->collect_metrics(hooks->ctx, park->id, on_done, p);
    if (rc != 0) {
        /* The hook refused: by the async convention `done` never runs. */
        sr_log(SR_LOG_WARNING, "api", "%s request refused by its hook",
               park->kind == SR_API_PARK_REFRESH ? "refresh" : "metrics collection");
        pending_unref(p);
        pending_unref(p);
        return NULL;
    }
    return p;
}

void sr_api__pending_fire(struct sr_api__pending *p)
{
    p->watcher = NULL;
    on_done(0, p); /* the watcher's reference goes to the mailbox */
}

void sr_api__pending_cancel(struct sr_api__pending *p)
{
    if (p == NULL || p->cancelled)
        return;
    if (p->watcher != NULL) {
        sr_api__watch_drop(p->watcher);
        p->watcher = NULL;
        pending_unref(p); /* the watcher's */
    }
    p->cancelled = true;
    p->owner = NULL;
    pending_unref(p);
}
