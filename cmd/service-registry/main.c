/* service-registry: configuration, logging, signals, wiring and ordered
 * shutdown. No business logic lives here.
 *
 * Threads: main (signals only, via sigwait), docker (adapters/docker), api.
 * Signals are blocked before any thread starts, so only main receives them. */
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/docker/docker.h"
#include "api/api.h"
#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"
#include "cmd/service-registry/config.h"
#include "cmd/service-registry/healthcheck.h"
#include "publisher/publisher.h"

#define EXIT_CONFIG 2
#define SHUTDOWN_GRACE_MS 1000
#define PUBLISHER_FLUSH_MS 900 /* with the API grace, under 2 s in all */

static const char usage[] =
    "usage: service-registry [--help | --version | healthcheck]\n"
    "\n"
    "Docker Swarm discovery and metrics cache. Configured from the environment:\n"
    "  ROLE                          must be unset or service-registry\n"
    "  HOST                          listen address (default 0.0.0.0)\n"
    "  PORT                          listen port, 1-65535 (default 5001)\n"
    "  REFRESH_INTERVAL_SEC          full service refresh period (default 30)\n"
    "  METRICS_REFRESH_INTERVAL_SEC  metrics round period (default 60)\n"
    "  DOCKER_BASE_URL               unix:///path, tcp://host[:port] (port 2375) or\n"
    "                                http://host[:port] (port 80)\n"
    "                                (default unix:///var/run/docker.sock)\n"
    "  RABBITMQ_URL                  amqp://user:pass@host:port/vhost (default: off)\n"
    "  RABBITMQ_EXCHANGE             topic exchange (default service-registry)\n"
    "  RABBITMQ_OUTBOX_MAX           messages kept while the broker is away (default 10000)\n"
    "  RABBITMQ_LIMIT_RECHECK_SEC    re-check a learned broker message size limit (default 300)\n"
    "  HEALTH_PUBLISH_INTERVAL_SEC   period of health.check messages (default 30)\n"
    "  CHANGE_LOG_SIZE               recent changes kept for watchers (default 4096)\n"
    "  API_THREADS                   HTTP event-loop threads, 1-64 (default 1)\n"
    "  API_MAX_CONNECTIONS           open connections before refusing (default 1024)\n"
    "  API_MAX_CONCURRENT_STREAMS    HTTP/2 streams per connection (default 100)\n"
    "  API_IDLE_TIMEOUT_SEC          idle connection timeout (default 60)\n"
    "  API_HEADER_TIMEOUT_SEC        time to send a request head (default 10)\n"
    "  API_MAX_HEADER_BYTES          request header bytes (default 65536)\n"
    "  API_MAX_REQUEST_LINE          request line / :path bytes (default 8192)\n"
    "  API_SPIN_USEC                 busy-poll this long before sleeping under dense\n"
    "                                load, 0-1000, 0 = never (default 50)\n"
    "  SSE_HEARTBEAT_SEC             SSE heartbeat comment period (default 15)\n"
    "  SSE_BUFFER_BYTES              unsent bytes per SSE client (default 1048576)\n"
    "  LOG_LEVEL                     DEBUG, INFO, WARNING, ERROR, CRITICAL (default INFO)\n"
    "\n"
    "healthcheck: GET /health on 127.0.0.1:$PORT; exit 0 if healthy or degraded, else 1.\n";

static const char *env_get(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

static int hook_resync(void *ctx, sr_api_done_cb done, void *arg)
{
    return sr_docker_request_resync(ctx, done, arg);
}

static int hook_collect(void *ctx, const char *service_id, sr_api_done_cb done, void *arg)
{
    return sr_docker_collect_metrics(ctx, service_id, done, arg);
}

/* The publisher's health.check body is the /health document. The API
 * exists only after the publisher (which must hook the cache before any
 * writer starts), hence the indirection. */
struct health_ctx {
    struct sr_api *api;
};

static json_t *publisher_health(void *arg)
{
    const struct health_ctx *h = arg;
    return h->api ? sr_api_health(h->api, NULL) : NULL;
}

static json_t *hook_publisher_status(void *pub_ctx)
{
    return sr_publisher_status_json(pub_ctx);
}

static int run(const struct sr_config *cfg)
{
    char err[512];
    int rc = 1;
    struct sr_docker *docker = NULL;
    struct sr_api *api = NULL;
    struct sr_publisher *publisher = NULL;
    struct health_ctx hctx = {0};
    struct sr_cache *cache = sr_cache_new();
    sr_cache_set_log_size(cache, cfg->change_log_size);
    /* Revisions unique across restarts (µs since the epoch: < 2^53, so
     * exact as a JSON number anywhere). */
    sr_cache_set_base_version(cache, (uint64_t)(sr_now() * 1e6));

    struct sr_docker_opts dopts = {
        .base_url = cfg->docker_base_url,
        .refresh_interval_sec = cfg->refresh_interval_sec,
        .metrics_refresh_interval_sec = cfg->metrics_refresh_interval_sec,
    };
    struct sr_publisher_opts popts = {
        .url = cfg->rabbitmq_url,
        .exchange = cfg->rabbitmq_exchange,
        .outbox_max = cfg->rabbitmq_outbox_max,
        .limit_recheck_sec = cfg->rabbitmq_limit_recheck_sec,
        .health_interval_sec = cfg->health_publish_interval_sec,
        .health = publisher_health,
        .health_arg = &hctx,
    };
    publisher = sr_publisher_new(&popts, cache, err, sizeof(err));
    if (publisher == NULL) {
        sr_log(SR_LOG_CRITICAL, "main", "publisher: %s", err);
        goto out;
    }
    docker = sr_docker_new(&dopts, cache, err, sizeof(err));
    if (docker == NULL) {
        sr_log(SR_LOG_CRITICAL, "main", "docker adapter: %s", err);
        goto out;
    }
    struct sr_api_opts aopts = {
        .host = cfg->host,
        .port = cfg->port,
        .refresh_interval_sec = cfg->refresh_interval_sec,
        .threads = cfg->api_threads,
        .max_connections = cfg->api_max_connections,
        .max_concurrent_streams = cfg->api_max_concurrent_streams,
        .idle_timeout_sec = cfg->api_idle_timeout_sec,
        .header_timeout_sec = cfg->api_header_timeout_sec,
        .max_header_bytes = cfg->api_max_header_bytes,
        .max_request_line = cfg->api_max_request_line,
        .spin_usec = cfg->api_spin_usec,
        .sse_heartbeat_sec = cfg->sse_heartbeat_sec,
        .sse_buffer_bytes = cfg->sse_buffer_bytes,
    };
    struct sr_api_hooks hooks = {.resync = hook_resync,
                                 .collect_metrics = hook_collect,
                                 .ctx = docker,
                                 .publisher_status = hook_publisher_status,
                                 .pub_ctx = publisher};
    api = sr_api_new(&aopts, &hooks, cache, err, sizeof(err));
    if (api == NULL) {
        sr_log(SR_LOG_CRITICAL, "main", "%s", err);
        goto out;
    }
    hctx.api = api;
    if (sr_publisher_start(publisher) != 0 || sr_api_start(api) != 0 ||
        sr_docker_start(docker) != 0) {
        sr_log(SR_LOG_CRITICAL, "main", "cannot start threads");
        goto out;
    }
    sr_log(SR_LOG_INFO, "main", "service registry initialized: listening on %s:%u, docker %s",
           cfg->host, sr_api_port(api), cfg->docker_base_url);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    sr_log(SR_LOG_INFO, "main", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;

out:
    /* Reverse order of start: stop serving first, then the producer. */
    if (api != NULL)
        sr_api_stop(api, SHUTDOWN_GRACE_MS);
    if (docker != NULL)
        sr_docker_stop(docker);
    /* No cache writer is left: flush what is queued to the broker, then
     * close. Before sr_api_free: its health.check calls sr_api_health. */
    sr_publisher_stop(publisher, PUBLISHER_FLUSH_MS);
    sr_publisher_free(publisher);
    sr_api_free(api);
    sr_docker_free(docker);
    sr_cache_free(cache);
    if (rc == 0)
        sr_log(SR_LOG_INFO, "main", "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[1], "--version") == 0) {
            printf("service-registry %s\n", SR_VERSION);
            return 0;
        }
        if (strcmp(argv[1], "healthcheck") != 0) {
            fprintf(stderr, "service-registry: unknown argument '%s' (try --help)\n", argv[1]);
            return EXIT_CONFIG;
        }
    }

    struct sr_config cfg;
    char err[512];
    if (sr_config_load(&cfg, env_get, NULL, err, sizeof(err)) != 0) {
        /* The message quotes the bad value: keep it one line whatever it holds. */
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        fprintf(stderr, "service-registry: %s\n", err);
        return EXIT_CONFIG;
    }
    if (argc > 1) { /* healthcheck: talk to the local server, wildcard -> loopback */
        const char *host = cfg.host;
        if (strcmp(host, "0.0.0.0") == 0)
            host = "127.0.0.1";
        else if (strcmp(host, "::") == 0)
            host = "::1";
        return sr_healthcheck_run(host, cfg.port, 3000);
    }
    sr_log_set_level(cfg.log_level);

    /* Process-wide setup, before any thread exists. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(0);
#ifdef __GLIBC__
    /* glibc gives a thread arena's free top back with madvise(MADV_DONTNEED)
     * once it exceeds M_TRIM_THRESHOLD (128 KiB). Every write of a batch of
     * API responses frees that much in evbuffer chains, so each writev was
     * followed by a madvise and the next batch by page faults on the same
     * memory (strace: one madvise per writev). Keeping up to 1 MiB per
     * arena costs little RSS and removes both. Setting it also pins the
     * mmap threshold (glibc stops adapting it), to 256 KiB here. */
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    if (evthread_use_pthreads() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "service-registry: cannot initialise libevent/libcurl\n");
        return 1;
    }
    int rc = run(&cfg);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}
