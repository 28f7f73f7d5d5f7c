/* adapters/docker: the Docker Engine API client.
 *
 * DESIGN
 * - One thread, started by sr_docker_start, owns an event base and a curl
 *   multi handle driven through the multi socket API (curl's hiperfifo
 *   pattern, client.c). Nothing on that thread blocks: every Docker call is a
 *   transfer on the multi handle (connect timeout 5 s, total 30 s except for
 *   the /events stream, bodies capped at 64 MiB).
 * - A full sync (docker.c): negotiate the API version (GET /_ping: min(the
 *   daemon's Api-Version, 1.47), below 1.41 is an error; GET /version), check
 *   that the node is an active swarm manager (GET /info: LocalNodeState
 *   "active" and ControlAvailable; a 503 from /services counts too), open
 *   GET /events if it is down, then list the services carrying the
 *   autoscaler.enabled label (GET /services?filters={"label":
 *   {"autoscaler.enabled":true}}&status=true), keep those labels.h calls
 *   enabled ("true", any case), map them (map.h) and commit them with
 *   sr_cache_replace. The handshake is skipped while all is well; a full sync
 *   runs every refresh_interval_sec and on sr_docker_request_resync.
 * - The live cache (events.c): /events (service, container, node) is read as
 *   a stream and split into lines (linesplit.c, 1 MiB cap). A service
 *   create/update/remove re-GETs that one service (list endpoint filtered by
 *   id, so ServiceStatus is there) and upserts or removes it; container
 *   start/die/destroy of a cached service's task does the same; both then
 *   poll that service a few times (0.5..8 s) until running == desired, since
 *   RunningTasks lags the container events. Node events trigger one full
 *   sync (1 s debounce). One refresh in flight per service id, re-run once if
 *   more events came. When the stream drops, the next sync reopens it with
 *   since=<last timeNano> (replays deduped) and lists again.
 * - Metrics (collect.c, document in metrics.h): a round every
 *   metrics_refresh_interval_sec, the first right after the first successful
 *   full sync. One GET /tasks (desired-state running, all services) gives
 *   the cached services' running tasks; the tasks on this node (NodeID =
 *   /info Swarm.NodeID, kept from the handshake) get their container's
 *   GET /containers/{id}/stats?stream=false, all concurrently on the multi
 *   handle (at most 64 in flight, 10 s each), so a round takes about one
 *   stats call (~1-2 s, the daemon waits for two collection cycles), not N.
 *   Tasks on other nodes are listed without numbers (only their own daemon
 *   serves their stats). Each service's document is stored once its last
 *   call answers, with the others ready by then in one
 *   sr_cache_set_metrics_batch at most every 100 ms; a container that
 *   vanished meanwhile (404, or an object without numbers) is left out, not
 *   an error. Rounds never overlap; a failed task list is logged once and
 *   retried at the next period. "metrics round: N containers in X ms" is
 *   logged at INFO after each round.
 * - Failures never stop the thread: the source status in the cache says what
 *   is wrong (unreachable, not a manager, bad answers; logged once per
 *   change, logger "docker") and the next attempt comes after a capped
 *   exponential backoff (1 s doubling to 30 s, +-20% jitter), reset when the
 *   kind of failure changes. For a unix socket, an inotify watch retries at
 *   once when the socket file is re-created (a restarted dockerd).
 *
 * PROCESS SETUP (main, once, before any thread starts):
 *   evthread_use_pthreads();            other threads event_active() our base
 *   curl_global_init(CURL_GLOBAL_DEFAULT);  this module never calls it
 *   json_object_seed(0);
 * and curl_global_cleanup() after sr_docker_free.
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
 * thread (or, for requests still queued when the adapter is freed without
 * ever having started, on the caller of sr_docker_free): it must not block,
 * and must hand the result to its own thread. */
typedef void (*sr_docker_done_cb)(int status, void *arg);

/* Asks for a full resync as soon as possible; `cb` (may be NULL) runs on the
 * docker thread when it has been committed (status 0) or has failed
 * (status < 0). Requests queued before a sync starts are answered by that
 * sync; requests arriving while one runs share the next one, which starts as
 * soon as it ends (whatever the backoff). sr_docker_stop answers pending
 * requests with -1. Any thread; never blocks (a mutex held for a few
 * instructions). Returns 0, or -1 if the adapter is stopping (cb not
 * called). */
int sr_docker_request_resync(struct sr_docker *d, sr_docker_done_cb cb, void *arg);

/* Collects the metrics of one cached service now: its running tasks
 * (GET /tasks filtered by service) and the stats of its containers on this
 * node, stored at once with sr_cache_set_metrics; then `cb`
 * (may be NULL) runs on the docker thread with 0, or < 0 when the service is
 * not cached (or left meanwhile), Docker was never reached, or the task list
 * failed. Failed stats calls of single containers are not a failure: they
 * are in the document's "errors". Requests for the same service made while
 * one is still listing its tasks share it. Any thread; never blocks.
 * Returns 0 (cb runs exactly once, with -1 if the adapter stops first), or
 * -1 (cb is never called) when the adapter is stopping or `service_id` is
 * empty or longer than any Docker id. */
int sr_docker_collect_metrics(struct sr_docker *d, const char *service_id, sr_docker_done_cb cb,
                              void *arg);

/* Stops the thread (aborting transfers, answering pending resync and
 * metrics requests with -1) and joins it. Main thread only; idempotent;
 * returns within milliseconds (nothing on the docker thread blocks). */
void sr_docker_stop(struct sr_docker *d);
void sr_docker_free(struct sr_docker *d); /* stops first if needed; NULL ok */

#endif
