#include "cache/util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/log.h"

static void oom(size_t n)
{
    sr_log_write(SR_LOG_CRITICAL, "main", "out of memory allocating %zu bytes", n);
    abort();
}

void *sr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *sr_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *sr_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *sr_strdup(const char *s)
{
    return sr_strndup(s, strlen(s));
}

char *sr_strndup(const char *s, size_t n)
{
    char *p = sr_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sr_buf_put(struct sr_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = sr_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sr_buf_puts(struct sr_buf *b, const char *s)
{
    sr_buf_put(b, s, strlen(s));
}

double sr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sr_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sr_mono_coarse(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return sr_mono(); /* a kernel without it */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *sr_format_time(double t, char *buf, size_t len)
{
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);
    if (ms < 0)
        ms = 0;
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, ms);
    return buf;
}

int sr_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    for (const char *p = s; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The UTF-8 sequence at p, n bytes available (RFC 3629: no overlong forms,
 * no surrogates, at most U+10FFFF): its length with *ok set, or, with *ok
 * cleared, the length of its "maximal subpart" (Unicode §3.9, what WHATWG
 * decoders replace with one U+FFFD): the start of a valid sequence cut
 * short, or 1. The second byte's range (Unicode table 3-7) is what rules
 * out overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_scan(const unsigned char *p, size_t n, bool *ok)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    *ok = true;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
    else
        len = 0;
    size_t i = 1;
    if (len > 0 && i < n && p[i] >= lo && p[i] <= hi)
        for (i++; i < len && i < n && (p[i] & 0xc0) == 0x80; i++)
            ;
    *ok = i == len;
    return i;
}

/* A JSON string of s whatever bytes it holds: a request target can carry
 * any, and a fixed buffer may have cut a character in two. jansson refuses
 * invalid UTF-8, so each maximal subpart of an ill-formed sequence (a cut
 * character, or a byte that starts none) becomes one U+FFFD. */
json_t *sr_json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    size_t n = strlen(s), k = 0;
    char *out = sr_malloc(3 * n + 1);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        bool ok;
        size_t len = utf8_scan(p + i, n - i, &ok);
        if (!ok) {
            memcpy(out + k, "\xef\xbf\xbd", 3);
            k += 3;
            i += len;
        } else {
            memcpy(out + k, p + i, len);
            k += len;
            i += len;
        }
    }
    j = json_stringn(out, k);
    free(out);
    return j;
}
