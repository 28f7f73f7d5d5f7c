/* publisher internals shared by its files; not installed, not for other
 * modules. The pure parts (messages, outbox, URL, backoff) are here so unit
 * tests can drive them without a broker.
 *
 * Threads: everything here is single-threaded. The outbox and the link are
 * only touched by the publisher thread; messages are built on any thread and
 * handed over under the publisher's mutex (publisher.c). */
#ifndef SR_PUBLISHER_INTERNAL_H
#define SR_PUBLISHER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/feed.h"
#include "publisher/publisher.h"

#define SR_PUB_APP_ID "service-registry"
#define SR_PUB_LOGGER "publisher"
#define SR_PUB_MAX_KEY 255 /* AMQP shortstr: longer routing keys can't be sent */

/* ---- messages (message.c) --------------------------------------------- */

enum sr_pub_msg_state {
    SR_PUB_MSG_NEW = 0,    /* not sent on the current channel yet */
    SR_PUB_MSG_SENT = 1,   /* published, waiting for the broker's confirm */
    SR_PUB_MSG_RESEND = 2, /* nacked, or in flight when the channel died */
};

/* One message: an event of the cache's feed (routing key + body, shared
 * with SSE and long-poll readers, never copied) or one the publisher built.
 * The event, seq and created never change once queued, so a resend is
 * byte-identical, with the same message_id. */
struct sr_pub_msg {
    struct sr_pub_msg *next, *prev; /* prev: outbox only */
    struct sr_event *ev;            /* owned reference */
    uint64_t seq;                   /* message_id is "<boot id>-<seq>"; set when queued */
    double created;                 /* Unix seconds: the AMQP timestamp */
    enum sr_pub_msg_state state;
    uint64_t tag; /* delivery tag on the current channel when SENT */
};

/* Takes over the reference to `ev`. Never NULL. */
struct sr_pub_msg *sr_publisher__msg_new(struct sr_event *ev, double created);
void sr_publisher__msg_free(struct sr_pub_msg *m); /* NULL ok */

/* {"event":E,"timestamp":RFC3339(ts),"cache_version":V,"<key>":<raw>}, raw
 * being already-encoded JSON (copied). Returns a malloc'd string and its
 * length, or NULL if E or key is not valid UTF-8. */
char *sr_publisher__wrap(const char *event, double ts, uint64_t version, const char *key,
                         const char *raw, size_t raw_len, size_t *len);


/* ---- outbox (outbox.c) --------------------------------------------------
 * A FIFO of messages in publish order, bounded by `max`: pushing onto a full
 * outbox drops the oldest message not in flight (in-flight ones are on the
 * wire already and about to be confirmed) and raises `resync`. A message
 * leaves as soon as the broker confirms it. At most `window` (<= max/2)
 * messages are in flight at once, which bounds the confirm scans and the
 * resend set. */
struct sr_pub_outbox {
    struct sr_pub_msg *head, *tail;
    struct sr_pub_msg *unsent; /* first NEW message: all after it are NEW too */
    size_t count, max, window;
    size_t nsent, nresend; /* messages SENT, RESEND */
    uint64_t dropped, confirmed;
    bool resync; /* drops happened: publish the full state */
};

void sr_publisher__outbox_init(struct sr_pub_outbox *ob, size_t max, size_t window);
/* Frees every message. The outbox can be reused after init. */
void sr_publisher__outbox_clear(struct sr_pub_outbox *ob);
/* Appends m (owned from now on). Unless `force`, drops the oldest messages
 * not in flight until count <= max; returns how many it dropped. */
size_t sr_publisher__outbox_push(struct sr_pub_outbox *ob, struct sr_pub_msg *m, bool force);
/* The next message to publish (RESEND ones first, in queue order, then the
 * first NEW one), or NULL when none or the window is full. Borrowed. */
struct sr_pub_msg *sr_publisher__outbox_next(struct sr_pub_outbox *ob);
/* m (from _next) went out with delivery tag `tag`. */
void sr_publisher__outbox_sent(struct sr_pub_outbox *ob, struct sr_pub_msg *m, uint64_t tag);
/* basic.ack / basic.nack from the broker. multiple: every SENT message with
 * tag <= `tag` (all of them when tag is 0). Acked messages leave; nacked ones
 * will be sent again. Return how many matched. */
size_t sr_publisher__outbox_ack(struct sr_pub_outbox *ob, uint64_t tag, bool multiple);
size_t sr_publisher__outbox_nack(struct sr_pub_outbox *ob, uint64_t tag, bool multiple);
/* Takes m (from _next: not in flight) out and frees it, counting nothing. */
void sr_publisher__outbox_remove(struct sr_pub_outbox *ob, struct sr_pub_msg *m);
/* The channel is gone: every unconfirmed message will be sent again, in
 * order (at-least-once: the broker may have routed it already). */
void sr_publisher__outbox_reset(struct sr_pub_outbox *ob);

/* ---- URL (url.c) --------------------------------------------------------- */

struct sr_pub_url {
    char *buf;                                  /* owned copy amqp_parse_url rewrote */
    const char *user, *password, *host, *vhost; /* point into buf */
    int port;
};

/* Parses an amqp:// URL (percent-decoding as amqp_parse_url does; an empty
 * vhost, as in "amqp://h/", means "/"). Returns 0, or -1 with a one-line
 * reason that never contains the password. */
int sr_publisher__url_parse(const char *url, struct sr_pub_url *out, char *err, size_t errlen);
void sr_publisher__url_free(struct sr_pub_url *u);
/* "amqp://user@host:port/vhost" (vhost percent-encoded): the broker's
 * address for status and logs, without the password. */
void sr_publisher__url_display(const struct sr_pub_url *u, char *buf, size_t len);

/* ---- reconnect backoff (backoff.c) ---------------------------------------- */

#define SR_PUB_BACKOFF_MIN 0.5
#define SR_PUB_BACKOFF_MAX 30.0

/* Seconds to wait before retry number `attempt` (0 = first retry): a ceiling
 * of 0.5 s doubling up to 30 s, jittered down to half of it by `rand01`
 * (in [0,1)) so many registries don't reconnect in lockstep. */
double sr_publisher__backoff(unsigned attempt, double rand01);
/* A connection that lived this long was a good one: the retries after it
 * start again from the shortest delay. One that dies sooner (a broker
 * that accepts the login, then closes the channel) keeps backing off. */
#define SR_PUB_HEALTHY_SEC 10.0
/* The attempt count to back off with after a connection of `lived` s. */
unsigned sr_publisher__attempt_after(unsigned attempt, double lived);

/* ---- the AMQP connection (link.c), publisher thread only ------------------ */

struct sr_pub_link;

/* Called for each basic.ack / basic.nack. */
typedef void (*sr_publisher__confirm_cb)(void *arg, uint64_t tag, bool multiple, bool ack);

/* Tells the owner which socket the handshake runs on (fd), and -1 just
 * before that socket is closed after a failed handshake. */
typedef void (*sr_publisher__fd_cb)(void *arg, int fd);

/* Connects (TCP, login, channel 1, exchange declare, confirm.select).
 * While the TCP connect is in progress it gives up as soon as `stop_fd`
 * becomes readable; during the AMQP handshake, shutting down the socket
 * reported through on_fd makes it fail at once. Returns NULL with a reason
 * in err ("connection refused", "authentication refused (ACCESS_REFUSED)
 * for user 'u'", ...). Blocks for at most SR_PUB_CONNECT_TIMEOUT for the TCP
 * connect and as much again for each handshake step. */
#define SR_PUB_CONNECT_TIMEOUT 5
struct sr_pub_link *sr_publisher__link_open(const struct sr_pub_url *u, const char *exchange,
                                            int stop_fd, sr_publisher__fd_cb on_fd, void *arg,
                                            char *err, size_t errlen);
/* The socket, for poll(2) and for an emergency shutdown(2) from stop. */
int sr_publisher__link_fd(const struct sr_pub_link *l);
/* True when frames already read are waiting: poll must not sleep. */
bool sr_publisher__link_pending(const struct sr_pub_link *l);
/* Publishes m with our properties. Sets *tag to its delivery tag. Returns 0
 * or -1 with a reason (the link is then dead: abort it). */
int sr_publisher__link_publish(struct sr_pub_link *l, const char *exchange, const char *boot_id,
                               const struct sr_pub_msg *m, uint64_t *tag, char *err, size_t errlen);
/* Reads every frame already available without blocking, reporting confirms
 * through cb. Returns 0, or -1 with a reason (dead link). */
int sr_publisher__link_drain(struct sr_pub_link *l, sr_publisher__confirm_cb cb, void *arg,
                             char *err, size_t errlen);
/* The broker's max_message_size, learned when it closed the channel over a
 * message larger than that, or 0. */
size_t sr_publisher__link_max_size(const struct sr_pub_link *l);
/* connection.blocked's reason while the broker blocks our publishes (a
 * resource alarm), else "". */
const char *sr_publisher__link_blocked(const struct sr_pub_link *l);
/* The limit a channel.close (code, reply text) names when the broker refused
 * a message for its size, or 0 (pure, for tests). */
size_t sr_publisher__refused_limit(unsigned code, const char *text, size_t len);
/* Closes the channel and the connection with the AMQP handshakes (each
 * bounded by a short timeout), then frees. NULL ok. */
void sr_publisher__link_close(struct sr_pub_link *l);
/* Frees without any handshake (after an error). NULL ok. */
void sr_publisher__link_abort(struct sr_pub_link *l);

/* ---- the object (publisher.c) and its thread (thread.c) ------------------- */

/* Shared by publisher.c (producers, status, lifecycle) and thread.c. */
struct sr_publisher {
    /* Set by new, read-only afterwards. */
    bool enabled;
    struct sr_pub_url url;
    char *exchange;
    char broker[256];
    unsigned outbox_max;
    /* A learned max_message_size is re-checked this often (the operator may
     * have raised it): the next message over it goes out alone, and the
     * limit is forgotten if the broker takes it. */
    unsigned limit_recheck_sec;
    unsigned health_interval_sec;
    sr_publisher_health_fn health;
    void *health_arg;
    struct sr_cache *cache;
    char boot_id[17];
    int wake_fd; /* producers -> thread: the inbox has messages */
    int stop_fd; /* main -> thread: stop (stays readable once written) */

    pthread_t thread;
    bool started, joined; /* main thread only */

    pthread_mutex_t mu; /* guards everything down to `st` */
    pthread_cond_t exited_cv;
    bool exited;
    bool stopping;
    double flush_deadline; /* sr_mono() */
    struct sr_pub_msg *in_head, *in_tail;
    size_t in_count;
    bool wake_pending;
    uint64_t in_dropped;
    bool in_resync;
    int link_fd;                   /* -1 without a connection */
    struct sr_publisher_status st; /* the thread's view; the inbox is added on read */

    /* Publisher thread only. */
    struct sr_pub_outbox ob;
    struct sr_pub_link *link;
    uint64_t published, connects;
    uint64_t refused;      /* messages over max_message, dropped */
    size_t max_message;    /* the broker's max_message_size once learned, else 0 */
    double limit_learned;  /* sr_mono() when the broker last stated it */
    uint64_t probe_tag;    /* a message over it sent alone to re-check it, 0 if none */
    double connected_at; /* sr_mono() when the link came up */
    uint64_t next_seq; /* message_ids number messages in outbox order */
    uint64_t rng;
    uint64_t drops_logged;
    double drop_log_at;
};

/* The thread's body (pthread start routine; arg is the publisher). */
void *sr_publisher__run(void *arg);

#endif
