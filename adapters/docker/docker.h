/* adapters/docker: the Docker Engine API client.
 *
 * DESIGN
 * - One thread, started by sr_docker_start, owns an event base and a curl
 *   multi handle driven through the multi socket API (curl's hiperfifo
 *   pattern). Nothing on that thread blocks: every Docker call is a transfer
 *   on the multi handle.
 * - It negotiates the API version (GET /_ping, then /version), checks that the
 *   node is an active swarm manager (GET /info), lists the services labelled
 *   autoscaler.enabled=true (GET /services?filters=...&status=true), maps each
 *   into the cache's representation and commits a full refresh to the cache
 *   every refresh_interval_sec.
 * - Failures never stop the thread: the source status in the cache says what
 *   is wrong (unreachable, not a manager, bad answers) and the next attempt
 *   comes after a capped exponential backoff (1 s doubling to 30 s, jittered).
 */
#ifndef SR_DOCKER_H
#define SR_DOCKER_H

#include <stddef.h>
#include <stdint.h>

struct sr_cache;
struct sr_docker;

struct sr_docker_opts {
    /* "unix:///path/to.sock", "tcp://host:port" or "http://host:port". */
    const char *base_url;
    unsigned refresh_interval_sec;         /* full refresh period, >= 1 */
    unsigned metrics_refresh_interval_sec; /* metrics round period, >= 1 */
};

/* Checks a DOCKER_BASE_URL value. Returns 0, or -1 with a one-line reason in
 * err (errlen bytes). Pure; used by config parsing. */
int sr_docker_check_url(const char *url, char *err, size_t errlen);

/* Creates the adapter (no thread, no I/O yet). `cache` is borrowed and must
 * outlive it. Returns NULL with a reason in err on a bad option. */
struct sr_docker *sr_docker_new(const struct sr_docker_opts *opts, struct sr_cache *cache,
                                char *err, size_t errlen);

/* Starts the adapter's thread. Returns 0 or -1. Main thread only. */
int sr_docker_start(struct sr_docker *d);

/* Completion of a request made from another thread. Runs on the docker
 * thread: it must not block, and must hand the result to its own thread. */
typedef void (*sr_docker_done_cb)(int status, void *arg);

/* Asks for a full resync as soon as possible; `cb` (may be NULL) runs on the
 * docker thread when it has been committed (status 0) or has failed
 * (status < 0). Any thread. Returns 0, or -1 if the adapter is stopping. */
int sr_docker_request_resync(struct sr_docker *d, sr_docker_done_cb cb, void *arg);

/* Stops the thread (aborting transfers) and joins it. Main thread only;
 * idempotent. */
void sr_docker_stop(struct sr_docker *d);
void sr_docker_free(struct sr_docker *d); /* stops first if needed; NULL ok */

#endif
