/* watch_parse: the pure half of watching (no I/O, no globals, any thread):
 * Consul-style wait durations, query parameters, AMQP topic patterns for
 * the SSE ?types= filter, and Server-Sent Events framing.
 * tests/unit/test_watch.c drives all of it on plain strings. */
#include "api/api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

/* ---- wait= ------------------------------------------------------------------ */

/* Go's time.ParseDuration subset Consul users write: one or more
 * <decimal>[unit] terms, unit ms, s, m or h ("30s", "5m", "1m30s", "1.5s",
 * "250ms"); a lone number without a unit is seconds ("30"). */
/* One decimal number ("30", "1.5") at s[*i..len). */
static int number(const char *s, size_t len, size_t *i, double *out)
{
    double v = 0, scale = 1;
    bool digits = false, dot = false;
    for (; *i < len && ((s[*i] >= '0' && s[*i] <= '9') || s[*i] == '.'); (*i)++) {
        if (s[*i] == '.') {
            if (dot)
                return -1;
            dot = true;
        } else if (dot) {
            digits = true;
            scale /= 10;
            v += (s[*i] - '0') * scale;
        } else {
            digits = true;
            v = v * 10 + (s[*i] - '0');
        }
    }
    *out = v;
    return digits ? 0 : -1;
}

int sr_api__parse_wait(const char *s, size_t len, uint64_t *ms)
{
    if (len == 0 || len > 32)
        return -1;
    size_t i = 0;
    double v, total = 0;
    if (number(s, len, &i, &v) == 0 && i == len) {
        v *= 1000; /* plain seconds */
        *ms = v > 1e15 ? (uint64_t)1e15 : (uint64_t)(v + 0.5);
        return 0;
    }
    i = 0;
    while (i < len) {
        if (number(s, len, &i, &v) != 0 || i == len)
            return -1; /* every term of a duration has a unit */
        if (len - i >= 2 && s[i] == 'm' && s[i + 1] == 's') {
            i += 2;
        } else if (s[i] == 's') {
            v *= 1000;
            i++;
        } else if (s[i] == 'm') {
            v *= 60 * 1000;
            i++;
        } else if (s[i] == 'h') {
            v *= 3600 * 1000;
            i++;
        } else {
            return -1;
        }
        total += v;
    }
    /* Callers clamp to their maximum: only keep the cast defined. */
    *ms = total > 1e15 ? (uint64_t)1e15 : (uint64_t)(total + 0.5);
    return 0;
}

/* ---- query strings ------------------------------------------------------------ */

bool sr_api__query_next(const char *q, size_t qlen, size_t *pos, const char **key,
                        size_t *klen, const char **val, size_t *vlen)
{
    size_t i = *pos;
    if (i >= qlen)
        return false;
    size_t e = i;
    while (e < qlen && q[e] != '&')
        e++;
    const char *kv = q + i;
    size_t kvlen = e - i;
    *pos = e + 1;
    const char *eq = memchr(kv, '=', kvlen);
    *key = kv;
    *klen = eq ? (size_t)(eq - kv) : kvlen;
    *val = eq ? eq + 1 : kv + kvlen;
    *vlen = kvlen - (size_t)(*val - kv);
    return true;
}

bool sr_api__query_get(const char *q, size_t qlen, const char *name, const char **val,
                       size_t *vlen)
{
    size_t nlen = strlen(name), pos = 0, klen;
    const char *key;
    while (sr_api__query_next(q, qlen, &pos, &key, &klen, val, vlen))
        if (klen == nlen && memcmp(key, name, nlen) == 0)
            return true;
    return false;
}

int sr_api__parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* ---- topic patterns ------------------------------------------------------------ */

/* Words of a dot-separated string (empty words allowed, as AMQP does). */
struct words {
    const char *p[SR_API_TOPIC_MAX_WORDS];
    size_t n[SR_API_TOPIC_MAX_WORDS];
    size_t count;
};

static bool split(const char *s, struct words *w)
{
    w->count = 0;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (w->count == SR_API_TOPIC_MAX_WORDS)
            return false;
        w->p[w->count] = s;
        w->n[w->count++] = n;
        if (dot == NULL)
            return true;
        s = dot + 1;
    }
}

/* AMQP 0-9-1 topic matching: '*' is exactly one word, '#' zero or more.
 * Dynamic programming over (pattern word, key word), so a pattern of many
 * '#' costs O(p * k), never exponential backtracking. */
bool sr_api__topic_match(const char *pattern, const char *key)
{
    struct words pw, kw;
    if (!split(pattern, &pw) || !split(key, &kw))
        return false;
    /* m[j]: the first i pattern words match the first j key words. */
    bool m[SR_API_TOPIC_MAX_WORDS + 1], next[SR_API_TOPIC_MAX_WORDS + 1];
    memset(m, 0, sizeof(m));
    m[0] = true;
    for (size_t i = 0; i < pw.count; i++) {
        bool hash = pw.n[i] == 1 && pw.p[i][0] == '#';
        bool star = pw.n[i] == 1 && pw.p[i][0] == '*';
        memset(next, 0, sizeof(next));
        for (size_t j = 0; j <= kw.count; j++) {
            if (hash) /* zero words, or one more word for the same '#' */
                next[j] = m[j] || (j > 0 && next[j - 1]);
            else if (j > 0 && m[j - 1])
                next[j] = star || (pw.n[i] == kw.n[j - 1] &&
                                   memcmp(pw.p[i], kw.p[j - 1], pw.n[i]) == 0);
        }
        memcpy(m, next, sizeof(m));
    }
    return m[kw.count];
}

void sr_api__types_free(struct sr_api__types *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

int sr_api__types_parse(const char *list, struct sr_api__types *t)
{
    memset(t, 0, sizeof(*t));
    if (list == NULL)
        return 0;
    const char *s = list;
    for (;;) {
        size_t n = strcspn(s, ",");
        /* Surrounding blanks are not part of a pattern ("a.*, b.#"). */
        const char *b = s;
        size_t bn = n;
        while (bn > 0 && (*b == ' ' || *b == '\t')) {
            b++;
            bn--;
        }
        while (bn > 0 && (b[bn - 1] == ' ' || b[bn - 1] == '\t'))
            bn--;
        if (bn > 0) {
            if (t->n == SR_API_SSE_MAX_TYPES || bn > SR_API_TOPIC_MAX_LEN) {
                sr_api__types_free(t);
                return -1;
            }
            char *p = sr_strndup(b, bn);
            struct words w;
            if (!split(p, &w)) {
                free(p);
                sr_api__types_free(t);
                return -1;
            }
            t->v = sr_realloc(t->v, (t->n + 1) * sizeof(*t->v));
            t->v[t->n++] = p;
        }
        if (s[n] == '\0')
            return 0;
        s += n + 1;
    }
}

bool sr_api__types_match(const struct sr_api__types *t, const char *key)
{
    if (t->n == 0)
        return true;
    for (size_t i = 0; i < t->n; i++)
        if (sr_api__topic_match(t->v[i], key))
            return true;
    return false;
}

/* ---- SSE framing ------------------------------------------------------------- */

/* WHATWG HTML "Server-sent events" §9.2.6: a field line ends at CRLF, LF or
 * CR, so each line of the payload gets its own "data:" field and the
 * client joins them with LF; a blank line dispatches the event. The event
 * name must be a single line: line breaks in it become spaces. */
void sr_api__sse_frame(struct sr_buf *b, bool with_id, uint64_t id, const char *event,
                       const char *data, size_t len)
{
    char tmp[48];
    if (with_id) {
        snprintf(tmp, sizeof(tmp), "id: %llu\n", (unsigned long long)id);
        sr_buf_puts(b, tmp);
    }
    if (event != NULL) {
        sr_buf_puts(b, "event: ");
        for (const char *e = event; *e; e++)
            sr_buf_put(b, (*e == '\r' || *e == '\n') ? " " : e, 1);
        sr_buf_puts(b, "\n");
    }
    for (size_t i = 0;;) {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        sr_buf_puts(b, "data: ");
        sr_buf_put(b, data + i, j - i);
        sr_buf_puts(b, "\n");
        if (j == len)
            break;
        if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    sr_buf_puts(b, "\n");
}
