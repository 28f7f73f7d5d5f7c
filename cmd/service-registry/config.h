/* Configuration from the environment (the spec's variables and defaults).
 * Pure: reads through a getenv-like function so tests can feed it a table. */
#ifndef SR_CONFIG_H
#define SR_CONFIG_H

#include <stddef.h>

#include "cache/log.h"

struct sr_config {
    char host[256];
    unsigned port;
    unsigned refresh_interval_sec;
    unsigned metrics_refresh_interval_sec;
    char docker_base_url[1024];
    char rabbitmq_url[1024]; /* "" = publishing off */
    char rabbitmq_exchange[256];
    enum sr_log_level log_level;
    unsigned rabbitmq_outbox_max;         /* RABBITMQ_OUTBOX_MAX */
    unsigned rabbitmq_limit_recheck_sec;  /* RABBITMQ_LIMIT_RECHECK_SEC */
    unsigned health_publish_interval_sec; /* HEALTH_PUBLISH_INTERVAL_SEC */
    unsigned change_log_size;             /* CHANGE_LOG_SIZE */
    /* HTTP server limits (api.h documents each). */
    unsigned api_threads;
    unsigned api_max_connections;
    unsigned api_max_concurrent_streams;
    unsigned api_idle_timeout_sec;
    unsigned api_header_timeout_sec;
    unsigned api_max_header_bytes;
    unsigned api_max_request_line;
    unsigned api_spin_usec;
    unsigned sse_heartbeat_sec;
    unsigned sse_buffer_bytes;
};

typedef const char *(*sr_getenv_fn)(const char *name, void *arg);

/* Fills *cfg from the environment. Returns 0, or -1 with one line in err
 * naming the variable, the bad value and the accepted values. */
int sr_config_load(struct sr_config *cfg, sr_getenv_fn get, void *arg, char *err, size_t errlen);

/* ROLE must be unset, empty or "service-registry". Returns 0 or -1 + err. */
int sr_config_check_role(const char *role, char *err, size_t errlen);

#endif
