/* The change feed: every change to the cache as a numbered event, with the
 * JSON body that RabbitMQ subscribers, SSE clients and long-pollers all see.
 *
 * An event is immutable and refcounted. The cache numbers events with its
 * version (the revision), keeps the last N in a ring (CHANGE_LOG_SIZE), and
 * hands each new batch to event listeners, in revision order.
 *
 * Bodies (compact JSON, documented in README "Events"):
 *   service.added|updated|removed:
 *     {"event":"service.added","timestamp":"<RFC 3339>","cache_version":R,"service":{record}}
 *   metrics.<name>:
 *     {"event":"metrics.web","timestamp":...,"cache_version":R,"service":"web","metrics":{doc}}
 *   services.updated (after a full refresh that changed something):
 *     {"event":"services.updated","timestamp":...,"cache_version":R,"count":N,"services":[...]}
 */
#ifndef SR_CACHE_FEED_H
#define SR_CACHE_FEED_H

#include <stddef.h>
#include <stdint.h>

struct sr_event;

uint64_t sr_event_revision(const struct sr_event *ev);
/* The routing key, which is also the event name ("service.added", ...). */
const char *sr_event_key(const struct sr_event *ev);
const char *sr_event_body(const struct sr_event *ev, size_t *len);
struct sr_event *sr_event_incref(struct sr_event *ev);
void sr_event_release(struct sr_event *ev); /* NULL ok */

/* Builds an event (refs = 1). Copies key and body. Any thread. Used by the
 * cache for changes and by the publisher for health.check (revision 0). */
struct sr_event *sr_event_new(uint64_t revision, const char *key, const char *body, size_t len);

#endif
