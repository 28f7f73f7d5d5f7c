/* Small helpers shared by every module: allocation that aborts on OOM, time.
 * All functions are thread-safe. */
#ifndef SR_UTIL_H
#define SR_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation failures are not recoverable here: log and abort (see STYLE §5). */
void *sr_malloc(size_t n);
void *sr_calloc(size_t n, size_t size);
void *sr_realloc(void *p, size_t n);
char *sr_strdup(const char *s);
char *sr_strndup(const char *s, size_t n);

/* A growable byte buffer for assembling bodies from pre-serialised parts.
 * Zero-initialise it; `p` is malloc'd, NUL-terminated, and the caller's to
 * free (or to keep) when done. */
struct sr_buf {
    char *p;
    size_t len, cap;
};

void sr_buf_put(struct sr_buf *b, const char *s, size_t n);
void sr_buf_puts(struct sr_buf *b, const char *s);

/* Wall clock as Unix seconds with a fraction. */
double sr_now(void);
/* Monotonic clock in seconds (for intervals and deadlines). */
double sr_mono(void);
/* The same clock, a few milliseconds coarse (the kernel's last tick) and
 * much cheaper to read: for per-request deadlines counted in seconds. */
double sr_mono_coarse(void);

/* Formats Unix seconds as RFC 3339 UTC ("2024-01-15T10:30:00.123Z") into buf
 * (at least 32 bytes). Returns buf. */
char *sr_format_time(double t, char *buf, size_t len);

/* Checked decimal parse of a whole string into [min, max]: ASCII digits only
 * (no sign, no spaces), leading zeros allowed and read as decimal ("050" is
 * 50). Returns 0 or -1. */
int sr_parse_int(const char *s, long long min, long long max, long long *out);

/* A JSON string of s, whatever bytes it holds: bytes that start no valid
 * UTF-8 sequence become U+FFFD. jansson refuses invalid UTF-8 (json_string
 * returns NULL), and text from a peer, or cut to fit a fixed buffer, can be
 * invalid. */
json_t *sr_json_text(const char *s);

#endif
