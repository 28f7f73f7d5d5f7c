/* Line splitting for the /events stream. A line that fits in one slice is
 * handed over in place; only the tail of a slice is copied. */
#include "adapters/docker/linesplit.h"

#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

void sr_linesplit_init(struct sr_linesplit *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    s->max = max ? max : SR_LINESPLIT_MAX;
}

void sr_linesplit_reset(struct sr_linesplit *s)
{
    s->len = 0;
    s->discarding = 0;
}

void sr_linesplit_free(struct sr_linesplit *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

size_t sr_linesplit_pending(const struct sr_linesplit *s)
{
    return s->len;
}

static void emit(struct sr_linesplit *s, const char *line, size_t len, sr_linesplit_cb cb,
                 void *arg)
{
    while (len > 0 && line[0] == 0x1e) {
        line++;
        len--;
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return;
    s->lines++;
    cb(line, len, arg);
}

/* Appends to the partial line; returns -1 (and starts discarding) when the
 * line would go over the cap. */
static int keep(struct sr_linesplit *s, const char *data, size_t n)
{
    if (n > s->max - s->len) {
        s->len = 0;
        s->discarding = 1;
        s->dropped++;
        return -1;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n)
            cap *= 2;
        s->buf = sr_realloc(s->buf, cap);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    return 0;
}

void sr_linesplit_feed(struct sr_linesplit *s, const char *data, size_t len, sr_linesplit_cb cb,
                       void *arg)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - data) : len;
        if (s->discarding) {
            /* the rest of an over-long line: skip up to its end */
        } else if (s->len == 0 && nl != NULL) {
            if (n <= s->max)
                emit(s, data, n, cb, arg);
            else
                s->dropped++;
        } else if (keep(s, data, n) == 0 && nl != NULL) {
            size_t total = s->len;
            s->len = 0;
            emit(s, s->buf, total, cb, arg);
        }
        if (nl == NULL)
            return;
        s->discarding = 0;
        data = nl + 1;
        len -= n + 1;
    }
}
