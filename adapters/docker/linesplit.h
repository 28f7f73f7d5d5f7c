/* Splits a byte stream into '\n'-terminated lines, whatever the slices it
 * arrives in (the /events framing, NOTES §5). Pure, no I/O; one splitter is
 * used by one thread at a time. Internal to adapters/docker. */
#ifndef SR_DOCKER_LINESPLIT_H
#define SR_DOCKER_LINESPLIT_H

#include <stddef.h>
#include <stdint.h>

#define SR_LINESPLIT_MAX (1u << 20) /* default line cap: 1 MiB */

struct sr_linesplit {
    char *buf; /* the unfinished line (owned) */
    size_t len, cap;
    size_t max;       /* longest line kept, without its '\n' */
    int discarding;   /* inside a line that went over max */
    uint64_t lines;   /* lines delivered */
    uint64_t dropped; /* lines dropped for length; bumped when the cap is hit */
};

/* Called for each complete line, without its '\n', a trailing '\r' or leading
 * RS (0x1E, RFC 7464 framing); empty lines are skipped. `line` is valid
 * during the call only and is not NUL-terminated. */
typedef void (*sr_linesplit_cb)(const char *line, size_t len, void *arg);

void sr_linesplit_init(struct sr_linesplit *s, size_t max);
/* Forgets any partial line (a new connection starts clean). */
void sr_linesplit_reset(struct sr_linesplit *s);
void sr_linesplit_free(struct sr_linesplit *s);
/* Feeds `len` bytes; calls cb for each line completed by them. */
void sr_linesplit_feed(struct sr_linesplit *s, const char *data, size_t len, sr_linesplit_cb cb,
                       void *arg);
/* Bytes of the unfinished line held (0 while discarding). */
size_t sr_linesplit_pending(const struct sr_linesplit *s);

#endif
