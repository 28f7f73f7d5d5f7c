/* Service metrics: the pure half of a metrics round (collect.c does the I/O).
 * GET /tasks answer -> running tasks; per task, the stats of its container
 * (stats.h); per service, the metrics document the API serves. No I/O, any
 * thread.
 *
 * THE DOCUMENT (README "Metrics"), keys always present, in this order:
 * {"service": name, "service_id": id,
 *  "sampled_at": RFC 3339 UTC of sample_time,
 *  "sample_time": Unix seconds (a number; the API adds "age_sec" from it),
 *  "interval_sec": METRICS_REFRESH_INTERVAL_SEC,
 *  "metric": "cpu"|"memory"           (autoscaler.metric),
 *  "thresholds": {"cpu": N, "memory": N}   (autoscaler.*.threshold),
 *  "tasks_running": tasks of the service in state running, on any node,
 *  "containers_sampled": local containers that gave numbers,
 *  "aggregate": {"cpu_percent_mean", "cpu_percent_max",
 *                "memory_percent_mean", "memory_percent_max":
 *                    over the sampled containers whose value is valid, two
 *                    decimals; null when there is none;
 *                "memory_bytes_total": sum of memory_bytes (0 when none)},
 *  "over_threshold": {"cpu": cpu_percent_mean > thresholds.cpu,
 *                     "memory": memory_percent_mean > thresholds.memory,
 *                     "scale_metric": the one named by "metric"}
 *                    (false when the mean is null),
 *  "containers": one entry per running task, by slot then task id:
 *      local and sampled: {"task_id", "container_id", "node_id",
 *                          "slot": N|null (null for global services),
 *                          "local": true, ...sr_stats_to_json fields}
 *      on another node:   {"task_id", "container_id": id|null, "node_id",
 *                          "slot", "local": false} -- no numbers: stats are
 *                          only served by the daemon that runs the container
 *                          (NOTES §7), so only this node's are sampled;
 *      local containers that vanished during the call (404, or a stats
 *      object without numbers) or whose call failed are left out; failures
 *      are in "errors".
 *  "errors": [strings], e.g. "container 3f2a...: HTTP 500: ..."}
 *
 * CPU % is docker stats' unit: 100 = one full core, up to online CPUs x 100.
 * The cpu threshold is compared with the mean in that unit, not normalised
 * by the number of CPUs: autoscaler.cpu.threshold=70 means "the containers
 * use 70 % of a core on average", the figure operators see in docker stats,
 * and it does not change meaning when a task lands on a bigger node. */
#ifndef SR_DOCKER_METRICS_H
#define SR_DOCKER_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "adapters/docker/stats.h"

enum sr_metrics_state {
    SR_METRICS_PENDING = 0, /* local, not sampled (yet) */
    SR_METRICS_SAMPLED = 1, /* local, stats has numbers */
    SR_METRICS_GONE = 2,    /* local, the container vanished: left out */
    SR_METRICS_FAILED = 3,  /* local, the call failed: left out, in errors */
    SR_METRICS_REMOTE = 4,  /* on another node: listed without numbers */
};

/* One running task. Ids are Docker's 25/64-char hex; longer ones are cut. */
struct sr_metrics_task {
    char service_id[72];
    char task_id[72];
    char container_id[72]; /* "" when the task reports none */
    char node_id[72];
    long long slot; /* 0 when none (global services) */
    enum sr_metrics_state state;
    struct sr_container_stats stats; /* SAMPLED only */
};

/* Picks the running tasks out of a GET /tasks answer (borrowed): elements
 * whose Status.State and DesiredState are "running" and that have an ID and
 * a ServiceID; when `service_id` is non-NULL, only that service's. A task is
 * local when its NodeID equals `local_node` (non-empty); local tasks start
 * PENDING, or GONE when they report no container; others are REMOTE. *out
 * (free()d by the caller, NULL when none) is sorted by service id, slot, task
 * id. Returns the count, or -1 when `tasks` is not an array (*out = NULL). */
long sr_metrics_tasks(const json_t *tasks, const char *local_node, const char *service_id,
                      struct sr_metrics_task **out);

/* Records one stats object (borrowed) for a PENDING task: SAMPLED when it
 * gives CPU or memory numbers, GONE when it has neither (a container that
 * stopped answers an object of zeros). */
void sr_metrics_set_stats(struct sr_metrics_task *t, const json_t *stats);

struct sr_metrics_input {
    const json_t *service;               /* the service's API doc (map.h): id, name, autoscaler */
    const struct sr_metrics_task *tasks; /* this service's running tasks */
    size_t ntasks;
    const json_t *errors; /* array of strings (borrowed), NULL = none */
    double sample_time;   /* Unix seconds */
    unsigned interval_sec;
};

/* Builds the metrics document above (new reference), or NULL when the
 * service doc lacks a string id or name. Missing autoscaler settings take
 * the label defaults (cpu, 70, 70). */
json_t *sr_metrics_build(const struct sr_metrics_input *in);

#endif
