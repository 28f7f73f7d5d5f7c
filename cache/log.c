#include "cache/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int sr_log_threshold = SR_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};

void sr_log_set_level(enum sr_log_level level)
{
    sr_log_threshold = (int)level;
}

int sr_log_parse_level(const char *s, enum sr_log_level *out)
{
    for (int i = 0; i < 5; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum sr_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "WARN") == 0) {
        *out = SR_LOG_WARNING;
        return 0;
    }
    return -1;
}

void sr_log_write(enum sr_log_level level, const char *logger, const char *fmt, ...)
{
    char line[2048];
    struct tm tm;
    time_t now = time(NULL);
    gmtime_r(&now, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    int w = snprintf(line + n, sizeof(line) - n, " %s role=service-registry logger=%s ",
                     level_names[level < 0 || level > 4 ? 1 : level], logger);
    if (w > 0)
        n += (size_t)w;
    if (n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}
