/* The messages the publisher builds itself: health.check, sr_publisher_publish
 * payloads, and the full services.updated after drops. Service and metrics
 * changes arrive ready-made from the cache's feed. Pure functions. */
#include "publisher/publisher_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

struct sr_pub_msg *sr_publisher__msg_new(struct sr_event *ev, double created)
{
    struct sr_pub_msg *m = sr_calloc(1, sizeof(*m));
    m->ev = ev;
    m->created = created;
    return m;
}

void sr_publisher__msg_free(struct sr_pub_msg *m)
{
    if (m == NULL)
        return;
    sr_event_release(m->ev);
    free(m);
}

/* The envelope's members, without the closing brace, e.g.
 * {"event":"x","timestamp":"t","cache_version":1 (jansson escapes). */
static int envelope_open(struct sr_buf *b, const char *event, double ts, uint64_t version)
{
    char tbuf[40];
    json_t *o =
        json_pack("{s:s, s:s, s:I}", "event", event, "timestamp",
                  sr_format_time(ts, tbuf, sizeof(tbuf)), "cache_version", (json_int_t)version);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (s == NULL) /* an event name that is not UTF-8 */
        return -1;
    sr_buf_put(b, s, strlen(s) - 1);
    free(s);
    return 0;
}

char *sr_publisher__wrap(const char *event, double ts, uint64_t version, const char *key,
                         const char *raw, size_t raw_len, size_t *len)
{
    struct sr_buf b = {0};
    json_t *k = json_string(key);
    char *kq = k ? json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(k);
    if (kq == NULL || envelope_open(&b, event, ts, version) != 0) {
        free(kq);
        free(b.p);
        return NULL;
    }
    sr_buf_put(&b, ",", 1);
    sr_buf_put(&b, kq, strlen(kq));
    sr_buf_put(&b, ":", 1);
    sr_buf_put(&b, raw, raw_len);
    sr_buf_put(&b, "}", 1);
    free(kq);
    *len = b.len;
    return b.p;
}

