#include "cmd/service-registry/config.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "adapters/docker/docker.h"
#include "cache/util.h"
#include "publisher/publisher.h"

static const char *get_or(sr_getenv_fn get, void *arg, const char *name, const char *def)
{
    const char *v = get(name, arg);
    return (v == NULL || *v == '\0') ? def : v;
}

static int get_uint(sr_getenv_fn get, void *arg, const char *name, const char *def, long long min,
                    long long max, unsigned *out, char *err, size_t errlen)
{
    const char *v = get_or(get, arg, name, def);
    long long x;
    if (sr_parse_int(v, min, max, &x) != 0) {
        snprintf(err, errlen, "invalid %s=\"%s\": expected an integer from %lld to %lld", name, v,
                 min, max);
        return -1;
    }
    *out = (unsigned)x;
    return 0;
}

static int get_str(sr_getenv_fn get, void *arg, const char *name, const char *def, char *out,
                   size_t outlen, char *err, size_t errlen)
{
    const char *v = get_or(get, arg, name, def);
    if (strlen(v) >= outlen) {
        snprintf(err, errlen, "invalid %s: longer than %zu characters", name, outlen - 1);
        return -1;
    }
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* HOST: an IPv4 or IPv6 address, or a host name (RFC 1123 labels). A name
 * made only of digits and dots is a mistyped address, not a name. Whether
 * a name resolves is seen when the API binds. */
static bool host_ok(const char *h)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1)
        return true;
    size_t n = strlen(h);
    /* A link-local IPv6 address with its zone: fe80::1%eth0. */
    const char *pct = strchr(h, '%');
    if (pct != NULL && pct[1] != '\0' && (size_t)(pct - h) < 64 &&
        strspn(pct + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
            strlen(pct + 1)) {
        char addr[64];
        memcpy(addr, h, (size_t)(pct - h));
        addr[pct - h] = '\0';
        return inet_pton(AF_INET6, addr, buf) == 1;
    }
    if (n == 0 || n > 253)
        return false;
    bool alpha = false;
    const char *label = h;
    for (const char *p = h;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t len = (size_t)(p - label);
            if (len == 0 ? *p == '.' || p == h : len > 63 || label[0] == '-' || p[-1] == '-')
                return false;
            if (*p == '\0')
                break;
            label = p + 1;
            continue;
        }
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-')
            alpha = true;
        else if (*p < '0' || *p > '9')
            return false;
    }
    return alpha;
}

int sr_config_check_role(const char *role, char *err, size_t errlen)
{
    if (role == NULL || *role == '\0' || strcmp(role, "service-registry") == 0)
        return 0;
    snprintf(err, errlen, "invalid ROLE=\"%s\": this binary only runs ROLE=service-registry", role);
    return -1;
}

int sr_config_load(struct sr_config *cfg, sr_getenv_fn get, void *arg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (sr_config_check_role(get("ROLE", arg), err, errlen) != 0)
        return -1;
    if (get_str(get, arg, "HOST", "0.0.0.0", cfg->host, sizeof(cfg->host), err, errlen) != 0)
        return -1;
    if (!host_ok(cfg->host)) {
        snprintf(err, errlen,
                 "invalid HOST=\"%s\": must be an IPv4 or IPv6 address or a host name", cfg->host);
        return -1;
    }
    if (get_uint(get, arg, "PORT", "5001", 1, 65535, &cfg->port, err, errlen) != 0)
        return -1;
    if (get_uint(get, arg, "REFRESH_INTERVAL_SEC", "30", 1, 86400, &cfg->refresh_interval_sec, err,
                 errlen) != 0)
        return -1;
    if (get_uint(get, arg, "METRICS_REFRESH_INTERVAL_SEC", "60", 1, 86400,
                 &cfg->metrics_refresh_interval_sec, err, errlen) != 0)
        return -1;
    if (get_str(get, arg, "DOCKER_BASE_URL", "unix:///var/run/docker.sock", cfg->docker_base_url,
                sizeof(cfg->docker_base_url), err, errlen) != 0)
        return -1;
    char why[256];
    if (sr_docker_check_url(cfg->docker_base_url, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "invalid DOCKER_BASE_URL=\"%s\": %s", cfg->docker_base_url, why);
        return -1;
    }
    if (get_str(get, arg, "RABBITMQ_URL", "", cfg->rabbitmq_url, sizeof(cfg->rabbitmq_url), err,
                errlen) != 0)
        return -1;
    /* The URL holds a password: name the variable, never echo its value. */
    if (sr_publisher_check_url(cfg->rabbitmq_url, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "invalid RABBITMQ_URL: %s", why);
        return -1;
    }
    if (get_str(get, arg, "RABBITMQ_EXCHANGE", "service-registry", cfg->rabbitmq_exchange,
                sizeof(cfg->rabbitmq_exchange), err, errlen) != 0)
        return -1;
    if (get_uint(get, arg, "RABBITMQ_OUTBOX_MAX", "10000", 1, 10000000, &cfg->rabbitmq_outbox_max,
                 err, errlen) != 0)
        return -1;
    if (get_uint(get, arg, "RABBITMQ_LIMIT_RECHECK_SEC", "300", 1, 86400,
                 &cfg->rabbitmq_limit_recheck_sec, err, errlen) != 0)
        return -1;
    if (get_uint(get, arg, "HEALTH_PUBLISH_INTERVAL_SEC", "30", 1, 86400,
                 &cfg->health_publish_interval_sec, err, errlen) != 0)
        return -1;
    if (get_uint(get, arg, "CHANGE_LOG_SIZE", "4096", 1, 1048576, &cfg->change_log_size, err,
                 errlen) != 0)
        return -1;
    /* Unsigned settings with their defaults and ranges, in one table. */
    const struct {
        const char *name, *def;
        long long min, max;
        unsigned *out;
    } limits[] = {
        {"API_THREADS", "1", 1, 64, &cfg->api_threads},
        {"API_MAX_CONNECTIONS", "1024", 1, 1000000, &cfg->api_max_connections},
        {"API_MAX_CONCURRENT_STREAMS", "100", 1, 10000, &cfg->api_max_concurrent_streams},
        {"API_IDLE_TIMEOUT_SEC", "60", 1, 86400, &cfg->api_idle_timeout_sec},
        {"API_HEADER_TIMEOUT_SEC", "10", 1, 3600, &cfg->api_header_timeout_sec},
        {"API_MAX_HEADER_BYTES", "65536", 1024, 1048576, &cfg->api_max_header_bytes},
        {"API_MAX_REQUEST_LINE", "8192", 256, 1048576, &cfg->api_max_request_line},
        {"API_SPIN_USEC", "50", 0, 1000, &cfg->api_spin_usec},
        {"SSE_HEARTBEAT_SEC", "15", 1, 3600, &cfg->sse_heartbeat_sec},
        {"SSE_BUFFER_BYTES", "1048576", 4096, 1073741824, &cfg->sse_buffer_bytes},
    };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        if (get_uint(get, arg, limits[i].name, limits[i].def, limits[i].min, limits[i].max,
                     limits[i].out, err, errlen) != 0)
            return -1;
    const char *lvl = get_or(get, arg, "LOG_LEVEL", "INFO");
    if (sr_log_parse_level(lvl, &cfg->log_level) != 0) {
        snprintf(err, errlen,
                 "invalid LOG_LEVEL=\"%s\": expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
                 lvl);
        return -1;
    }
    return 0;
}
