#include "adapters/docker/stats.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Docker encodes counters as JSON integers (uint64 that may exceed INT64_MAX
 * in hierarchical limits) or, rarely, reals. Both read as unsigned here. */
static uint64_t u64(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i < 0 ? 0 : (uint64_t)i;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d > 0 && d < 1.8e19 ? (uint64_t)d : 0;
    }
    return 0;
}

void sr_stats_add_sat(uint64_t *acc, uint64_t v)
{
    *acc = *acc > UINT64_MAX - v ? UINT64_MAX : *acc + v;
}

json_int_t sr_stats_json_u64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

static const json_t *path2(const json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

static void compute_cpu(const json_t *stats, struct sr_container_stats *out)
{
    const json_t *cpu = json_object_get(stats, "cpu_stats");
    const json_t *pre = json_object_get(stats, "precpu_stats");
    uint64_t total = u64(path2(cpu, "cpu_usage", "total_usage"));
    uint64_t pre_total = u64(path2(pre, "cpu_usage", "total_usage"));
    uint64_t sys = u64(json_object_get(cpu, "system_cpu_usage"));
    uint64_t pre_sys = u64(json_object_get(pre, "system_cpu_usage"));
    unsigned ncpu = (unsigned)u64(json_object_get(cpu, "online_cpus"));
    if (ncpu == 0)
        ncpu = (unsigned)json_array_size(path2(cpu, "cpu_usage", "percpu_usage"));
    out->online_cpus = ncpu;
    /* A zero precpu system time is the first streamed frame (or a container
     * that just started): the delta would be meaningless, so skip it. */
    if (pre_sys == 0 || sys <= pre_sys || total < pre_total || ncpu == 0)
        return;
    double cpu_delta = (double)(total - pre_total);
    double sys_delta = (double)(sys - pre_sys);
    out->cpu_percent = cpu_delta / sys_delta * (double)ncpu * 100.0;
    out->cpu_valid = true;
}

static void compute_memory(const json_t *stats, struct sr_container_stats *out)
{
    const json_t *mem = json_object_get(stats, "memory_stats");
    const json_t *usage = json_object_get(mem, "usage");
    if (!json_is_number(usage))
        return;
    uint64_t used = u64(usage);
    const json_t *st = json_object_get(mem, "stats");
    /* cgroup v1 reports total_inactive_file, v2 inactive_file. As the
     * CLI (calculateMemUsageUnixNoCache): v1's if present and below usage,
     * else v2's if below usage (a missing one counts as 0). */
    const json_t *v1 = json_object_get(st, "total_inactive_file");
    const json_t *v2 = json_object_get(st, "inactive_file");
    if (v1 != NULL && u64(v1) < used)
        used -= u64(v1);
    else if (v2 != NULL && u64(v2) < used)
        used -= u64(v2);
    out->mem_used = used;
    out->mem_limit = u64(json_object_get(mem, "limit"));
    out->mem_percent = out->mem_limit ? (double)used / (double)out->mem_limit * 100.0 : 0.0;
    out->mem_valid = true;
}

static void compute_io(const json_t *stats, struct sr_container_stats *out)
{
    const char *ifname;
    const json_t *nic;
    json_object_foreach((json_t *)json_object_get(stats, "networks"), ifname, nic) {
        sr_stats_add_sat(&out->net_rx, u64(json_object_get(nic, "rx_bytes")));
        sr_stats_add_sat(&out->net_tx, u64(json_object_get(nic, "tx_bytes")));
    }
    size_t i;
    const json_t *e;
    json_array_foreach(path2(stats, "blkio_stats", "io_service_bytes_recursive"), i, e) {
        const char *op = json_string_value(json_object_get(e, "op"));
        if (op == NULL)
            continue;
        if (op[0] == 'r' || op[0] == 'R')
            sr_stats_add_sat(&out->blk_read, u64(json_object_get(e, "value")));
        else if (op[0] == 'w' || op[0] == 'W')
            sr_stats_add_sat(&out->blk_write, u64(json_object_get(e, "value")));
    }
    out->pids = u64(path2(stats, "pids_stats", "current"));
}

int sr_stats_compute(const json_t *stats, struct sr_container_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(stats))
        return -1;
    compute_cpu(stats, out);
    compute_memory(stats, out);
    compute_io(stats, out);
    return 0;
}

static json_t *num_or_null(bool valid, double v)
{
    /* Two decimals are plenty for a percentage and keep bodies stable. */
    return valid && isfinite(v) ? json_real(round(v * 100.0) / 100.0) : json_null();
}

json_t *sr_stats_to_json(const struct sr_container_stats *s)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I}",
                     "cpu_percent", num_or_null(s->cpu_valid, s->cpu_percent),
                     "memory_bytes", s->mem_valid ? json_integer(sr_stats_json_u64(s->mem_used)) : json_null(),
                     "memory_limit_bytes",
                     s->mem_valid ? json_integer(sr_stats_json_u64(s->mem_limit)) : json_null(),
                     "memory_percent", num_or_null(s->mem_valid, s->mem_percent),
                     "network_rx_bytes", sr_stats_json_u64(s->net_rx),
                     "network_tx_bytes", sr_stats_json_u64(s->net_tx),
                     "block_read_bytes", sr_stats_json_u64(s->blk_read),
                     "block_write_bytes", sr_stats_json_u64(s->blk_write),
                     "pids", sr_stats_json_u64(s->pids));
}
