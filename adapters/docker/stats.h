/* Container stats -> the numbers `docker stats` shows, with the docker CLI's
 * formulas (cli/command/container/stats_helpers.go; see
 * shared/docker-api/NOTES.md §6). Pure functions, any thread. */
#ifndef SR_DOCKER_STATS_H
#define SR_DOCKER_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct sr_container_stats {
    bool cpu_valid;        /* false when precpu is empty (first frame) or deltas are <= 0 */
    double cpu_percent;    /* 100 = one full core; max = online_cpus * 100 */
    unsigned online_cpus;
    bool mem_valid;        /* false when memory_stats is missing (container gone) */
    uint64_t mem_used;     /* usage minus inactive file pages (page cache) */
    uint64_t mem_limit;    /* cgroup limit, or host RAM when none */
    double mem_percent;    /* mem_used / mem_limit * 100, 0 when limit is 0 */
    uint64_t net_rx, net_tx;        /* sum over interfaces, bytes since start */
    uint64_t blk_read, blk_write;   /* sum of io_service_bytes_recursive */
    uint64_t pids;
};

/* Computes *out from one GET /containers/{id}/stats?stream=false object.
 * Returns 0, or -1 when the object is not a stats object at all (then *out
 * is zeroed). Missing fields give zeros and *_valid = false, never garbage. */
int sr_stats_compute(const json_t *stats, struct sr_container_stats *out);

/* The JSON the API shows for one container's numbers (new reference):
 * {"cpu_percent", "memory_bytes", "memory_limit_bytes", "memory_percent",
 *  "network_rx_bytes", "network_tx_bytes", "block_read_bytes",
 *  "block_write_bytes", "pids"}; cpu/memory values are null when not valid. */
json_t *sr_stats_to_json(const struct sr_container_stats *s);

/* Sums of counters saturate rather than wrap (a wrapped sum would read as a
 * small number), and JSON shows values over INT64_MAX as INT64_MAX (not as
 * a negative integer). */
void sr_stats_add_sat(uint64_t *acc, uint64_t v);
json_int_t sr_stats_json_u64(uint64_t v);

#endif
