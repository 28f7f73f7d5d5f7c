/* The outbox: messages in publish order until the broker confirms them.
 * Pure bookkeeping, no I/O and no locks (the publisher thread owns it).
 *
 * Invariant: the messages before `unsent` are SENT or RESEND; from `unsent`
 * on they are all NEW. So new messages go out in order by following
 * `unsent`, and confirms and resends only ever look at the front part,
 * which the window keeps short. Doubly linked, so a confirm or a drop can
 * take a message out of the middle. */
#include "publisher/publisher_internal.h"

#include <stdlib.h>

void sr_publisher__outbox_init(struct sr_pub_outbox *ob, size_t max, size_t window)
{
    *ob = (struct sr_pub_outbox){0};
    ob->max = max ? max : 1;
    ob->window = window ? window : 1;
    /* At most half in flight, so a full outbox always has queued messages to
     * drop other than the newest. */
    if (ob->window > ob->max / 2)
        ob->window = ob->max / 2 ? ob->max / 2 : 1;
}

void sr_publisher__outbox_clear(struct sr_pub_outbox *ob)
{
    struct sr_pub_msg *m = ob->head;
    while (m != NULL) {
        struct sr_pub_msg *next = m->next;
        sr_publisher__msg_free(m);
        m = next;
    }
    ob->head = ob->tail = ob->unsent = NULL;
    ob->count = ob->nsent = ob->nresend = 0;
}

static void unlink_msg(struct sr_pub_outbox *ob, struct sr_pub_msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        ob->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        ob->tail = m->prev;
    if (ob->unsent == m)
        ob->unsent = m->next;
    if (m->state == SR_PUB_MSG_SENT)
        ob->nsent--;
    else if (m->state == SR_PUB_MSG_RESEND)
        ob->nresend--;
    ob->count--;
    sr_publisher__msg_free(m);
}

static struct sr_pub_msg *first_resend(const struct sr_pub_outbox *ob)
{
    if (ob->nresend == 0)
        return NULL;
    for (struct sr_pub_msg *m = ob->head; m != ob->unsent; m = m->next)
        if (m->state == SR_PUB_MSG_RESEND)
            return m;
    return NULL;
}

size_t sr_publisher__outbox_push(struct sr_pub_outbox *ob, struct sr_pub_msg *m, bool force)
{
    m->next = NULL;
    m->prev = ob->tail;
    m->state = SR_PUB_MSG_NEW;
    m->tag = 0;
    if (ob->tail != NULL)
        ob->tail->next = m;
    else
        ob->head = m;
    ob->tail = m;
    if (ob->unsent == NULL)
        ob->unsent = m;
    ob->count++;

    size_t dropped = 0;
    while (!force && ob->count > ob->max) {
        struct sr_pub_msg *victim = first_resend(ob);
        if (victim == NULL)
            victim = ob->unsent ? ob->unsent : ob->head; /* head: window > max, can't be */
        unlink_msg(ob, victim);
        dropped++;
    }
    if (dropped > 0) {
        ob->dropped += dropped;
        ob->resync = true;
    }
    return dropped;
}

struct sr_pub_msg *sr_publisher__outbox_next(struct sr_pub_outbox *ob)
{
    if (ob->nsent >= ob->window)
        return NULL;
    struct sr_pub_msg *m = first_resend(ob);
    return m ? m : ob->unsent;
}

void sr_publisher__outbox_sent(struct sr_pub_outbox *ob, struct sr_pub_msg *m, uint64_t tag)
{
    if (m->state == SR_PUB_MSG_RESEND)
        ob->nresend--;
    else if (m == ob->unsent)
        ob->unsent = m->next;
    m->state = SR_PUB_MSG_SENT;
    m->tag = tag;
    ob->nsent++;
}

static bool matches(const struct sr_pub_msg *m, uint64_t tag, bool multiple)
{
    if (m->state != SR_PUB_MSG_SENT)
        return false;
    /* AMQP 0-9-1 basic.ack: multiple with tag 0 means "all outstanding". */
    return multiple ? (tag == 0 || m->tag <= tag) : m->tag == tag;
}

size_t sr_publisher__outbox_ack(struct sr_pub_outbox *ob, uint64_t tag, bool multiple)
{
    size_t n = 0;
    struct sr_pub_msg *m = ob->head;
    while (m != NULL && m != ob->unsent) {
        struct sr_pub_msg *next = m->next;
        if (matches(m, tag, multiple)) {
            unlink_msg(ob, m);
            n++;
        }
        m = next;
    }
    ob->confirmed += n;
    return n;
}

size_t sr_publisher__outbox_nack(struct sr_pub_outbox *ob, uint64_t tag, bool multiple)
{
    size_t n = 0;
    for (struct sr_pub_msg *m = ob->head; m != ob->unsent; m = m->next) {
        if (matches(m, tag, multiple)) {
            m->state = SR_PUB_MSG_RESEND;
            m->tag = 0;
            ob->nsent--;
            ob->nresend++;
            n++;
        }
    }
    return n;
}

void sr_publisher__outbox_remove(struct sr_pub_outbox *ob, struct sr_pub_msg *m)
{
    unlink_msg(ob, m);
}

void sr_publisher__outbox_reset(struct sr_pub_outbox *ob)
{
    for (struct sr_pub_msg *m = ob->head; m != ob->unsent; m = m->next) {
        if (m->state == SR_PUB_MSG_SENT) {
            m->state = SR_PUB_MSG_RESEND;
            m->tag = 0;
            ob->nsent--;
            ob->nresend++;
        }
    }
}
