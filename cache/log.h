/* Logging shared by every module.
 *
 * One line per record, in the spec's format, written to stderr with a single
 * write(2) so lines from different threads never interleave:
 *   2024-01-15T10:30:00+00:00 INFO role=service-registry logger=main message
 * The level check happens before any formatting (sr_log is a macro).
 * All functions are safe to call from any thread, but not from a signal handler. */
#ifndef SR_LOG_H
#define SR_LOG_H

enum sr_log_level {
    SR_LOG_DEBUG = 0,
    SR_LOG_INFO = 1,
    SR_LOG_WARNING = 2,
    SR_LOG_ERROR = 3,
    SR_LOG_CRITICAL = 4,
};

/* Current threshold; records below it are dropped. Default SR_LOG_INFO. */
extern int sr_log_threshold;

void sr_log_set_level(enum sr_log_level level);

/* Parses DEBUG, INFO, WARNING (or WARN), ERROR, CRITICAL, case-insensitively.
 * Returns 0 and sets *out, or -1 for anything else. */
int sr_log_parse_level(const char *s, enum sr_log_level *out);

void sr_log_write(enum sr_log_level level, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sr_log(level, logger, ...)                                                                 \
    do {                                                                                           \
        if ((int)(level) >= sr_log_threshold)                                                      \
            sr_log_write((level), (logger), __VA_ARGS__);                                          \
    } while (0)

#endif
