/* publisher: broadcasts every cache change to a RabbitMQ topic exchange.
 *
 * DESIGN
 * - Its own thread owns the librabbitmq connection (never shared: librabbitmq
 *   is not thread-safe). It runs no event loop: it sleeps in poll(2) on two
 *   eventfds (work queued, stop) and the AMQP socket, so one wait covers new
 *   messages and the broker's confirms. A condition variable alone could not
 *   wake it for a confirm, and polling for those would add latency.
 * - Producers (the cache's event listener, on the writer's thread under its
 *   write lock; sr_publisher_publish from any thread) only append to a bounded inbox
 *   under a mutex and signal: they never wait on the broker. The thread moves
 *   the inbox into its own outbox. When either is full the oldest message is
 *   dropped and counted; once connected again a full "services.updated" is
 *   published so subscribers can resync.
 * - Publisher confirms: a message leaves the outbox only when the broker has
 *   acked it (nacked or unconfirmed at a disconnect: sent again, in order).
 *   Delivery is at-least-once; message_id lets subscribers drop duplicates.
 * - Broker down, bad credentials, dropped connection: state and last error
 *   are reported (sr_publisher_get_status), reconnects use capped, jittered
 *   exponential backoff (0.5 s doubling to 30 s). Never exits the process.
 *
 * EVENTS. Routing key = event name. AMQP properties: content_type
 * application/json, delivery_mode 2 (persistent), message_id
 * "<16 hex boot id>-<n>" (n counts up in publish order; a resend keeps its
 * id), timestamp (Unix s when queued), app_id "service-registry". Bodies:
 * the cache's feed events (cache/feed.h), published byte for byte, for
 *   service.added / service.updated / service.removed (one per service):
 *     {"event","timestamp","cache_version","service":<record as GET /services shows it>}
 *   metrics.<service name>:
 *     {"event","timestamp","cache_version","service":"<name>","metrics":<doc>}
 *   services.updated, after a full refresh that changed anything:
 *     {"event","timestamp","cache_version","count":N,"services":[...]}
 * and built here, in the same layout:
 *   services.updated, once the backlog has halved after drops (the resync;
 *     cache_version = the snapshot's version)
 *   health.check, right after each connect and then every health_interval_sec:
 *     {"event","timestamp","cache_version","health":<opts.health() or {"status":"unknown"}>}
 *   <event> from sr_publisher_publish: {"event","timestamp","cache_version",<key>:<payload>}
 * "timestamp" is RFC 3339 UTC with milliseconds. */
#ifndef SR_PUBLISHER_H
#define SR_PUBLISHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct sr_cache;
struct sr_publisher;

/* Builds the current /health body (new reference, or NULL). Called on the
 * publisher's own thread, never with a publisher lock held (so it may call
 * sr_publisher_get_status); must be thread-safe and must not block. */
typedef json_t *(*sr_publisher_health_fn)(void *arg);

struct sr_publisher_opts {
    const char *url;              /* amqp://user:pass@host:port/vhost; "" or NULL = disabled */
    const char *exchange;         /* declared durable, type topic; NULL/"" = "service-registry" */
    unsigned outbox_max;          /* RABBITMQ_OUTBOX_MAX, 0 = default 10000 */
    unsigned limit_recheck_sec;   /* RABBITMQ_LIMIT_RECHECK_SEC, 0 = default 300 */
    unsigned health_interval_sec; /* HEALTH_PUBLISH_INTERVAL_SEC, 0 = default 30 */
    sr_publisher_health_fn health;
    void *health_arg;
};

/* Checks a RABBITMQ_URL value (NULL or empty is valid: disabled). Returns 0,
 * or -1 with a one-line reason in err, e.g. "URL port must be 1-65535"; it
 * never quotes the URL, so never the password, and does not name the
 * variable (prefix "RABBITMQ_URL: "). amqps:// is refused (no TLS). An empty
 * vhost ("amqp://h:5672/") means "/". Pure, any thread. */
int sr_publisher_check_url(const char *url, char *err, size_t errlen);

/* Creates the publisher and registers its event listener on `cache`
 * (borrowed, must outlive it). No thread, no I/O yet. Main thread, before
 * any cache writer starts. With no URL it returns a disabled publisher (no
 * listener, every call a no-op, state DISABLED). Returns NULL with a reason
 * in err ("RABBITMQ_URL: ..."). */
struct sr_publisher *sr_publisher_new(const struct sr_publisher_opts *opts, struct sr_cache *cache,
                                      char *err, size_t errlen);

/* Starts the thread (nothing when disabled). Returns 0 or -1. Main thread. */
int sr_publisher_start(struct sr_publisher *p);

/* Queues one message (any thread, never blocks): routing key = event name
 * (1-255 bytes), body = {"event", "timestamp", "cache_version",
 * <payload_key>: payload}. Steals `payload`. For events that don't come from
 * the cache: service changes, metrics and services.updated come from the
 * cache's feed through the event listener, so don't publish those here too. No-op when
 * disabled or stopping. */
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
    char broker[256]; /* "amqp://user@host:port/vhost" (vhost %-encoded), no password */
    char exchange[256];
    uint64_t published;   /* basic.publish calls, resends included */
    uint64_t confirmed;   /* acked by the broker */
    uint64_t dropped;     /* pushed out of a full outbox */
    uint64_t queued;      /* waiting or unconfirmed now */
    uint64_t connects;    /* successful connections so far */
    uint64_t refused;     /* larger than the broker's max_message_size: dropped */
    uint64_t max_message; /* that limit, once the broker refused a message; else 0 */
    char blocked[128];    /* while the broker blocks publishing (connection.blocked,
                           * a resource alarm): its reason; else "" */
    char last_error[256]; /* the latest failure, kept after a reconnect; "" if none */
};

/* Any thread, never blocks on I/O (a short mutex). Works on a disabled
 * publisher (state DISABLED, broker ""). */
void sr_publisher_get_status(struct sr_publisher *p, struct sr_publisher_status *out);
const char *sr_publisher_state_name(enum sr_publisher_state s);

/* The status as the API's publisher_status hook wants it (api.h), a new
 * reference: {"enabled":bool, "status":"disabled|connecting|connected|
 * disconnected", "connected":bool, "broker":"amqp://user@host:port/vhost"|null,
 * "exchange":str, "published":N, "confirmed":N, "queued":N, "dropped":N,
 * "connects":N, "outbox_max":N|null, "last_error":str|null}. Any thread,
 * never blocks on I/O. */
json_t *sr_publisher_status_json(struct sr_publisher *p);

/* Flushes the outbox for up to flush_ms (until every queued message is
 * confirmed, or at once when not connected), then closes the channel and the
 * connection properly and joins the thread. Takes at most flush_ms + ~1 s,
 * even with a broker that stopped answering. Messages queued after this are
 * dropped. Main thread; idempotent; NULL ok. */
void sr_publisher_stop(struct sr_publisher *p, unsigned flush_ms);
/* Removes the event listener from the cache, stops if needed and frees
 * everything. Cache writers may still run. NULL ok. */
void sr_publisher_free(struct sr_publisher *p);

#endif
