/* Stats formulas against real captures (cgroup v1) and a constructed v2
 * sample, compared with values computed by hand from the same JSON. */
#include "adapters/docker/stats.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/unit/tap.h"
#include "tests/unit/tap_data.h"


int main(void)
{
    struct sr_container_stats s;

    /* Busy loop, 2 CPUs: cpu_delta = 3038780785 - 2047760530 = 991020255 ns,
     * system_delta = 1982780000000 - 1980820000000 = 1960000000 ns,
     * CPU% = 991020255 / 1960000000 * 2 * 100 = 101.1245... */
    json_t *busy = tap_load_json("stats-stream-false-busy.json");
    ok(busy != NULL, "busy capture loads");
    is_int(sr_stats_compute(busy, &s), 0, "busy: computed");
    ok(s.cpu_valid, "busy: cpu valid");
    is_dbl(s.cpu_percent, 101.1245, 0.001, "busy: CPU % as docker stats shows");
    is_int(s.online_cpus, 2, "busy: online cpus");
    ok(s.mem_valid, "busy: memory valid");
    is_int(s.mem_used, 1204224, "busy: memory used (total_inactive_file 0)");
    is_int(s.mem_limit, 25276510208LL, "busy: limit = host RAM when unlimited");
    is_dbl(s.mem_percent, 1204224.0 / 25276510208.0 * 100.0, 1e-9, "busy: memory %");
    is_int(s.net_rx, 656, "busy: rx bytes");
    is_int(s.net_tx, 0, "busy: tx bytes");
    is_int(s.pids, 3, "busy: pids");
    json_t *j = sr_stats_to_json(&s);
    is_dbl(json_real_value(json_object_get(j, "cpu_percent")), 101.12, 1e-9, "json: cpu rounded");
    is_int(json_integer_value(json_object_get(j, "memory_bytes")), 1204224, "json: memory bytes");
    json_decref(j);
    json_decref(busy);

    /* Idle: total_usage did not move -> 0 %, a real zero. */
    json_t *idle = tap_load_json("stats-stream-false.json");
    sr_stats_compute(idle, &s);
    ok(s.cpu_valid, "idle: cpu valid");
    is_dbl(s.cpu_percent, 0.0, 1e-12, "idle: 0 %");
    is_int(s.mem_used, 323584, "idle: memory used");
    is_int(s.net_rx, 1462, "idle: rx bytes");
    json_decref(idle);

    /* one-shot has no precpu: CPU cannot be computed, and must not be guessed. */
    json_t *one = tap_load_json("stats-one-shot.json");
    sr_stats_compute(one, &s);
    ok(!s.cpu_valid, "one-shot: cpu not valid without precpu");
    j = sr_stats_to_json(&s);
    ok(json_is_null(json_object_get(j, "cpu_percent")), "one-shot: cpu_percent is null");
    json_decref(j);
    json_decref(one);

    /* cgroup v2 (constructed): no percpu_usage, inactive_file, op read/write.
     * used = 104857600 - 20971520 = 83886080; 83886080 / 209715200 = 40 %.
     * CPU: 500000000 / 2000000000 * 4 * 100 = 100 %. */
    json_t *v2 = json_loads(
        "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1500000000},\"system_cpu_usage\":"
        "12000000000,\"online_cpus\":4},\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":"
        "1000000000},\"system_cpu_usage\":10000000000,\"online_cpus\":4},\"memory_stats\":{"
        "\"usage\":104857600,\"limit\":209715200,\"stats\":{\"anon\":60000000,\"inactive_file\":"
        "20971520}},\"networks\":{\"eth0\":{\"rx_bytes\":100,\"tx_bytes\":7},\"eth1\":{"
        "\"rx_bytes\":23,\"tx_bytes\":3}},\"blkio_stats\":{\"io_service_bytes_recursive\":[{"
        "\"major\":8,\"minor\":0,\"op\":\"read\",\"value\":4096},{\"major\":8,\"minor\":0,\"op\":"
        "\"write\",\"value\":8192},{\"major\":8,\"minor\":16,\"op\":\"read\",\"value\":1}]},"
        "\"pids_stats\":{\"current\":5}}",
        0, NULL);
    sr_stats_compute(v2, &s);
    is_dbl(s.cpu_percent, 100.0, 1e-9, "v2: CPU % with online_cpus");
    is_int(s.mem_used, 83886080, "v2: usage minus inactive_file");
    is_dbl(s.mem_percent, 40.0, 1e-9, "v2: memory %");
    is_int(s.net_rx, 123, "v2: rx summed over interfaces");
    is_int(s.net_tx, 10, "v2: tx summed over interfaces");
    is_int(s.blk_read, 4097, "v2: block read summed");
    is_int(s.blk_write, 8192, "v2: block write");
    is_int(s.pids, 5, "v2: pids");
    json_decref(v2);

    /* Both keys, the v1 one not below usage: the CLI falls through to the
     * v2 one (calculateMemUsageUnixNoCache). */
    json_t *both = json_loads("{\"memory_stats\":{\"usage\":1000,\"limit\":4000,\"stats\":{"
                              "\"total_inactive_file\":1000,\"inactive_file\":200}}}",
                              0, NULL);
    sr_stats_compute(both, &s);
    is_int(s.mem_used, 800, "total_inactive_file not below usage: inactive_file is used");
    json_decref(both);

    /* cgroup v1 ops are capitalised and include Total, which must not count. */
    json_t *v1 = json_loads(
        "{\"blkio_stats\":{\"io_service_bytes_recursive\":[{\"op\":\"Read\",\"value\":10},{\"op\":"
        "\"Write\",\"value\":20},{\"op\":\"Sync\",\"value\":30},{\"op\":\"Total\",\"value\":30}]},"
        "\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":10,\"percpu_usage\":[5,5]},"
        "\"system_cpu_usage\":100},\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":0},"
        "\"system_cpu_usage\":50}}",
        0, NULL);
    sr_stats_compute(v1, &s);
    is_int(s.blk_read, 10, "v1: Read counted");
    is_int(s.blk_write, 20, "v1: Write counted, Total not");
    is_int(s.online_cpus, 2, "v1: ncpu from percpu_usage when online_cpus is absent");
    is_dbl(s.cpu_percent, 10.0 / 50.0 * 2 * 100, 1e-9, "v1: CPU % with percpu count");
    ok(!s.mem_valid, "no memory_stats: memory not valid");
    j = sr_stats_to_json(&s);
    ok(json_is_null(json_object_get(j, "memory_percent")), "json: memory null when not valid");
    json_decref(j);
    json_decref(v1);

    /* A container that died mid-call: only id, name and zeros. */
    json_t *dead = json_loads("{\"id\":\"x\",\"name\":\"/x\",\"cpu_stats\":{\"cpu_usage\":{"
                              "\"total_usage\":0},\"system_cpu_usage\":0},\"precpu_stats\":{},"
                              "\"memory_stats\":{}}",
                              0, NULL);
    is_int(sr_stats_compute(dead, &s), 0, "dead container: computed");
    ok(!s.cpu_valid && !s.mem_valid, "dead container: nothing valid, no garbage");
    json_decref(dead);

    /* Counters near 2^63 on two NICs: the sum saturates, never wraps or
     * turns negative in JSON. */
    json_t *big = json_loads("{\"networks\":{\"eth0\":{\"rx_bytes\":9223372036854775807,"
                             "\"tx_bytes\":1},\"eth1\":{\"rx_bytes\":9223372036854775807,"
                             "\"tx_bytes\":2}},\"blkio_stats\":{\"io_service_bytes_recursive\":"
                             "[{\"op\":\"read\",\"value\":9223372036854775807},"
                             "{\"op\":\"read\",\"value\":9223372036854775807},"
                             "{\"op\":\"read\",\"value\":9223372036854775807}]}}",
                             0, NULL);
    sr_stats_compute(big, &s);
    ok(s.net_rx == UINT64_MAX - 1, "two counters at 2^63-1 add up without wrapping");
    ok(s.blk_read == UINT64_MAX, "three saturate at 2^64-1");
    is_int(s.net_tx, 3, "small counters add as usual");
    j = sr_stats_to_json(&s);
    ok(json_integer_value(json_object_get(j, "network_rx_bytes")) == INT64_MAX,
       "json: a sum over 2^63 shows as 2^63-1, not negative");
    ok(json_integer_value(json_object_get(j, "block_read_bytes")) == INT64_MAX, "json: block read too");
    json_decref(j);
    json_decref(big);

    json_t *arr = json_array();
    is_int(sr_stats_compute(arr, &s), -1, "not an object: -1");
    json_decref(arr);
    return tap_done();
}
