/* Configuration parsing: defaults and every bad case from the issue. */
#include "cmd/service-registry/config.h"

#include <string.h>

#include "tests/unit/tap.h"

/* A tiny environment: NULL-terminated name/value pairs. */
static const char *table_get(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0] != NULL; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static int load(const char **env, struct sr_config *cfg, char *err)
{
    return sr_config_load(cfg, table_get, env, err, 512);
}

static void bad(const char *name, const char *value, const char *must_mention)
{
    const char *env[] = {name, value, NULL};
    struct sr_config cfg;
    char err[512] = "";
    char title[128];
    snprintf(title, sizeof(title), "%s=%s is refused", name, value);
    ok(load(env, &cfg, err) == -1, title);
    snprintf(title, sizeof(title), "%s=%s: message names the variable", name, value);
    ok(strstr(err, name) != NULL, title);
    snprintf(title, sizeof(title), "%s=%s: message gives accepted values", name, value);
    if (!ok(strstr(err, must_mention) != NULL, title))
        printf("#   message: %s\n", err);
    ok(strchr(err, '\n') == NULL, "one line");
}

int main(void)
{
    struct sr_config cfg;
    char err[512];
    const char *none[] = {NULL};
    ok(load(none, &cfg, err) == 0, "defaults load");
    is_str(cfg.host, "0.0.0.0", "HOST default");
    is_int(cfg.port, 5001, "PORT default");
    is_int(cfg.refresh_interval_sec, 30, "REFRESH_INTERVAL_SEC default");
    is_int(cfg.metrics_refresh_interval_sec, 60, "METRICS_REFRESH_INTERVAL_SEC default");
    is_str(cfg.docker_base_url, "unix:///var/run/docker.sock", "DOCKER_BASE_URL default");
    is_str(cfg.rabbitmq_url, "", "RABBITMQ_URL default (off)");
    is_str(cfg.rabbitmq_exchange, "service-registry", "RABBITMQ_EXCHANGE default");
    is_int(cfg.log_level, SR_LOG_INFO, "LOG_LEVEL default");
    is_int(cfg.rabbitmq_outbox_max, 10000, "RABBITMQ_OUTBOX_MAX default");
    is_int(cfg.health_publish_interval_sec, 30, "HEALTH_PUBLISH_INTERVAL_SEC default");
    is_int(cfg.rabbitmq_limit_recheck_sec, 300, "RABBITMQ_LIMIT_RECHECK_SEC default");
    is_int(cfg.change_log_size, 4096, "CHANGE_LOG_SIZE default");
    is_int(cfg.api_threads, 1, "API_THREADS default");
    is_int(cfg.api_spin_usec, 50, "API_SPIN_USEC default");
    is_int(cfg.api_max_connections, 1024, "API_MAX_CONNECTIONS default");
    is_int(cfg.api_header_timeout_sec, 10, "API_HEADER_TIMEOUT_SEC default");
    is_int(cfg.sse_heartbeat_sec, 15, "SSE_HEARTBEAT_SEC default");

    const char *set[] = {"PORT", "8080", "HOST", "127.0.0.1", "REFRESH_INTERVAL_SEC", "5",
                         "LOG_LEVEL", "debug", "DOCKER_BASE_URL", "tcp://127.0.0.1:2375",
                         "ROLE", "service-registry", NULL};
    ok(load(set, &cfg, err) == 0, "explicit values load");
    is_int(cfg.port, 8080, "PORT parsed");
    is_str(cfg.host, "127.0.0.1", "HOST parsed");
    is_int(cfg.refresh_interval_sec, 5, "REFRESH_INTERVAL_SEC parsed");
    is_int(cfg.log_level, SR_LOG_DEBUG, "LOG_LEVEL case-insensitive");

    static const char *const hosts[] = {"127.0.0.1", "::", "::1", "fe80::1", "localhost",
                                        "service-registry", "registry.example.org.", "a1",
                                        "fe80::1%lo"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        const char *env[] = {"HOST", hosts[i], NULL};
        char title[128];
        snprintf(title, sizeof(title), "HOST=%s is accepted", hosts[i]);
        ok(load(env, &cfg, err) == 0 && strcmp(cfg.host, hosts[i]) == 0, title);
    }
    bad("HOST", "0.0.0.0:5001", "IPv4 or IPv6 address or a host name");
    bad("HOST", "1.2.3.300", "IPv4 or IPv6 address or a host name");
    bad("HOST", "http://registry", "IPv4 or IPv6 address or a host name");
    bad("HOST", "-registry", "IPv4 or IPv6 address or a host name");
    bad("HOST", "a..b", "IPv4 or IPv6 address or a host name");
    bad("HOST", ".", "IPv4 or IPv6 address or a host name");
    bad("HOST", "[::1]", "IPv4 or IPv6 address or a host name");
    bad("HOST", "10.0.0.1%lo", "IPv4 or IPv6 address or a host name");
    bad("HOST", "fe80::1%", "IPv4 or IPv6 address or a host name");
    bad("PORT", "abc", "1 to 65535");
    bad("PORT", "70000", "1 to 65535");
    bad("PORT", "0", "1 to 65535");
    bad("PORT", "80x", "1 to 65535");
    bad("PORT", "+80", "1 to 65535");
    bad("REFRESH_INTERVAL_SEC", "+5", "1 to");
    bad("API_SPIN_USEC", "-0", "0 to 1000");
    bad("REFRESH_INTERVAL_SEC", "0", "1 to");
    bad("REFRESH_INTERVAL_SEC", "-1", "1 to");
    bad("METRICS_REFRESH_INTERVAL_SEC", "ten", "1 to");
    bad("LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL");
    bad("DOCKER_BASE_URL", "ftp://x", "unix://");
    bad("ROLE", "autoscaler", "service-registry");
    bad("RABBITMQ_OUTBOX_MAX", "0", "1 to");
    bad("HEALTH_PUBLISH_INTERVAL_SEC", "never", "1 to");
    bad("RABBITMQ_LIMIT_RECHECK_SEC", "0", "1 to");
    bad("CHANGE_LOG_SIZE", "-5", "1 to");
    bad("API_THREADS", "0", "1 to 64");
    bad("API_MAX_CONNECTIONS", "lots", "1 to");
    bad("API_HEADER_TIMEOUT_SEC", "0", "1 to");
    bad("API_MAX_HEADER_BYTES", "100", "1024 to");
    bad("SSE_HEARTBEAT_SEC", "0", "1 to");
    bad("API_SPIN_USEC", "1001", "0 to 1000");

    ok(sr_config_check_role(NULL, err, sizeof(err)) == 0, "ROLE unset is fine");
    ok(sr_config_check_role("", err, sizeof(err)) == 0, "ROLE empty is fine");
    return tap_done();
}
