/* publisher: broadcasts every cache change to a RabbitMQ topic exchange.
 *
 * DESIGN
 * - Its own thread owns the librabbitmq connection (never shared: librabbitmq
 *   is not thread-safe). It runs no event loop: it waits on a condition
 *   variable for the outbox and inside librabbitmq calls.
 * - Producers (the cache's change listener, on the writer's thread; the
 *   health timer; metrics rounds) only append to a bounded in-memory outbox
 *   under a mutex and signal: they never wait on the broker. When the outbox
 *   is full the oldest message is dropped and counted; after the next
 *   (re)connect a full "services.updated" is published so subscribers resync.
 * - Publisher confirms: a message leaves the outbox only when the broker has
 *   acked it. Delivery is at-least-once; message_id lets subscribers dedupe.
 * - Broker down, bad credentials, dropped connection: state and last error
 *   are reported (sr_publisher_get_status), reconnects use capped, jittered
 *   exponential backoff. Never exits the process. */
#ifndef SR_PUBLISHER_H
#define SR_PUBLISHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct sr_cache;
struct sr_publisher;

/* Builds the current /health body (new reference). Called on the publisher's
 * own thread or timer; must be thread-safe and must not block. */
typedef json_t *(*sr_publisher_health_fn)(void *arg);

struct sr_publisher_opts {
    const char *url;      /* amqp://user:pass@host:port/vhost; "" or NULL = disabled */
    const char *exchange; /* declared durable, type topic */
    unsigned outbox_max;  /* RABBITMQ_OUTBOX_MAX, default 10000 */
    unsigned health_interval_sec; /* HEALTH_PUBLISH_INTERVAL_SEC, default 30 */
    sr_publisher_health_fn health;
    void *health_arg;
};

/* Checks a RABBITMQ_URL value (empty is valid: disabled). Returns 0, or -1
 * with a one-line reason in err (never echoes the password). Pure. */
int sr_publisher_check_url(const char *url, char *err, size_t errlen);

/* Creates the publisher and registers its change listener on `cache`
 * (borrowed, must outlive it). No thread, no I/O yet. Main thread, before
 * any cache writer starts. Returns NULL with a reason in err. */
struct sr_publisher *sr_publisher_new(const struct sr_publisher_opts *opts,
                                      struct sr_cache *cache, char *err, size_t errlen);

/* Starts the thread (nothing when disabled). Returns 0 or -1. Main thread. */
int sr_publisher_start(struct sr_publisher *p);

/* Queues one message (any thread, never blocks): routing key = event name,
 * body = {"event", "timestamp", "cache_version", <payload_key>: payload}.
 * Steals `payload`. Used for metrics.{service} rounds; service changes are
 * queued by the cache listener itself. No-op when disabled. */
void sr_publisher_publish(struct sr_publisher *p, const char *event, uint64_t cache_version,
                          const char *payload_key, json_t *payload);

enum sr_publisher_state {
    SR_PUBLISHER_DISABLED = 0,
    SR_PUBLISHER_CONNECTING = 1,
    SR_PUBLISHER_CONNECTED = 2,
    SR_PUBLISHER_DISCONNECTED = 3, /* waiting to retry; see last_error */
};

struct sr_publisher_status {
    enum sr_publisher_state state;
    char broker[256];      /* host:port/vhost, no credentials */
    char exchange[256];
    uint64_t published, confirmed, dropped;
    uint64_t queued;       /* in the outbox now */
    char last_error[256];  /* "" if none */
};

/* Any thread. */
void sr_publisher_get_status(struct sr_publisher *p, struct sr_publisher_status *out);
const char *sr_publisher_state_name(enum sr_publisher_state s);

/* Flushes the outbox for up to flush_ms, then closes the channel and the
 * connection properly and joins the thread. Main thread; idempotent. */
void sr_publisher_stop(struct sr_publisher *p, unsigned flush_ms);
void sr_publisher_free(struct sr_publisher *p); /* NULL ok */

#endif
