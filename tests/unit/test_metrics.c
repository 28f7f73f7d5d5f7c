/* Metrics documents: the running tasks out of a real GET /tasks capture and
 * constructed ones, stats -> sampled/gone, and the per-service aggregation
 * (means, maxima, totals, over_threshold, nulls when nothing was sampled,
 * tasks on other nodes). */
#include "adapters/docker/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"
#include "tests/unit/tap_data.h"

#define LOCAL "ihb5wrru5khbz8j27jvecwptz" /* tasks.json's node */


/* A cgroup v1 style stats object: CPU% = cpu_ns / sys_ns * 2 * 100 on 2
 * CPUs; memory used = usage - total_inactive_file. */
static json_t *stats_obj(long long cpu_ns, long long sys_ns, long long usage, long long inactive,
                         long long limit)
{
    return json_pack("{s:{s:{s:I}, s:I, s:i}, s:{s:{s:I}, s:I, s:i},"
                     " s:{s:I, s:I, s:{s:I}}, s:{s:{s:I, s:I}}, s:{s:I}}",
                     "cpu_stats", "cpu_usage", "total_usage", 5000000000LL + cpu_ns,
                     "system_cpu_usage", 900000000000LL + sys_ns, "online_cpus", 2, "precpu_stats",
                     "cpu_usage", "total_usage", 5000000000LL, "system_cpu_usage", 900000000000LL,
                     "online_cpus", 2, "memory_stats", "usage", usage, "limit", limit, "stats",
                     "total_inactive_file", inactive, "networks", "eth0", "rx_bytes", 10LL,
                     "tx_bytes", 20LL, "pids_stats", "current", 1LL);
}

static struct sr_metrics_task task(const char *svc, const char *id, const char *cid,
                                   const char *node, long long slot, enum sr_metrics_state st)
{
    struct sr_metrics_task t;
    memset(&t, 0, sizeof(t));
    snprintf(t.service_id, sizeof(t.service_id), "%s", svc);
    snprintf(t.task_id, sizeof(t.task_id), "%s", id);
    snprintf(t.container_id, sizeof(t.container_id), "%s", cid);
    snprintf(t.node_id, sizeof(t.node_id), "%s", node);
    t.slot = slot;
    t.state = st;
    return t;
}

static json_t *service_doc(const char *metric, int cpu, int mem)
{
    return json_pack("{s:s, s:s, s:{s:b, s:s, s:i, s:i, s:i, s:i}}", "id", "svc1", "name", "web",
                     "autoscaler", "enabled", 1, "metric", metric, "cpu_threshold", cpu,
                     "memory_threshold", mem, "min_replicas", 1, "max_replicas", 5);
}

static double num(const json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

static void test_tasks_capture(void)
{
    json_t *tasks = tap_load_json("tasks.json");
    ok(tasks != NULL, "tasks.json loads");
    struct sr_metrics_task *v;
    long n = sr_metrics_tasks(tasks, LOCAL, NULL, &v);
    is_int(n, 2, "capture: two running tasks");
    if (n == 2) {
        is_str(v[0].service_id, "fr89lge0dihbhbcj40c1dzskv", "capture: service id");
        is_int(v[0].slot, 1, "capture: sorted by slot (1)");
        is_int(v[1].slot, 2, "capture: sorted by slot (2)");
        is_str(v[0].task_id, "4pwjnc47ltt9o9ymnulm58ue2", "capture: task id");
        is_str(v[0].container_id,
               "efffd1a5da79e85858f9ae9032c01f781baa58f49f6b5fdc5cce30be8568c569",
               "capture: container id from Status.ContainerStatus");
        is_int(v[0].state, SR_METRICS_PENDING, "capture: local task waits for its stats");
        is_int(v[1].state, SR_METRICS_PENDING, "capture: second local task too");
    }
    free(v);
    n = sr_metrics_tasks(tasks, "someothernode", NULL, &v);
    ok(n == 2 && v[0].state == SR_METRICS_REMOTE && v[1].state == SR_METRICS_REMOTE,
       "capture: another node's tasks are remote");
    free(v);
    n = sr_metrics_tasks(tasks, "", NULL, &v);
    ok(n == 2 && v[0].state == SR_METRICS_REMOTE, "capture: unknown local node: all remote");
    free(v);
    n = sr_metrics_tasks(tasks, LOCAL, "fr89lge0dihbhbcj40c1dzskv", &v);
    is_int(n, 2, "capture: service filter keeps its tasks");
    free(v);
    n = sr_metrics_tasks(tasks, LOCAL, "fr89lge0dihbhbcj40c1dzsk", &v);
    ok(n == 0 && v == NULL, "capture: service filter is exact (no prefix match)");
    json_decref(tasks);

    json_t *obj = json_object();
    n = sr_metrics_tasks(obj, LOCAL, NULL, &v);
    ok(n == -1 && v == NULL, "not an array: -1");
    json_decref(obj);
}

static void test_tasks_constructed(void)
{
    json_t *tasks = json_loads(
        "[{\"ID\":\"t3\",\"ServiceID\":\"b\",\"NodeID\":\"me\",\"Slot\":3,\"DesiredState\":"
        "\"running\",\"Status\":{\"State\":\"running\",\"ContainerStatus\":{\"ContainerID\":\"c3\"}"
        "}},"
        " {\"ID\":\"t1\",\"ServiceID\":\"b\",\"NodeID\":\"other\",\"Slot\":1,\"DesiredState\":"
        "\"running\",\"Status\":{\"State\":\"running\",\"ContainerStatus\":{\"ContainerID\":\"c1\"}"
        "}},"
        " {\"ID\":\"t2\",\"ServiceID\":\"b\",\"NodeID\":\"me\",\"Slot\":2,\"DesiredState\":"
        "\"running\",\"Status\":{\"State\":\"preparing\"}},"
        " {\"ID\":\"t4\",\"ServiceID\":\"b\",\"NodeID\":\"me\",\"Slot\":4,\"DesiredState\":"
        "\"shutdown\",\"Status\":{\"State\":\"running\",\"ContainerStatus\":{\"ContainerID\":"
        "\"c4\"}}},"
        " {\"ID\":\"g1\",\"ServiceID\":\"a\",\"NodeID\":\"me\",\"DesiredState\":\"running\","
        "\"Status\":{\"State\":\"running\"}},"
        " {\"ID\":\"x\",\"NodeID\":\"me\",\"DesiredState\":\"running\",\"Status\":{\"State\":"
        "\"running\"}}, 7, null]",
        0, NULL);
    ok(tasks != NULL, "constructed tasks parse");
    struct sr_metrics_task *v;
    long n = sr_metrics_tasks(tasks, "me", NULL, &v);
    is_int(n, 3, "only running tasks desired running, with ID and ServiceID");
    if (n == 3) {
        is_str(v[0].task_id, "g1", "sorted by service id first");
        is_int(v[0].slot, 0, "global task: no slot");
        is_int(v[0].state, SR_METRICS_GONE, "running task without container: nothing to sample");
        is_str(v[1].task_id, "t1", "then by slot");
        is_int(v[1].state, SR_METRICS_REMOTE, "other node: remote");
        is_str(v[1].container_id, "c1", "remote task keeps its container id");
        is_str(v[2].task_id, "t3", "slot 3 last");
        is_int(v[2].state, SR_METRICS_PENDING, "local with container: pending");
    }
    free(v);
    json_decref(tasks);
}

static void test_set_stats(void)
{
    struct sr_metrics_task t = task("s", "t", "c", LOCAL, 1, SR_METRICS_PENDING);
    json_t *busy = tap_load_json("stats-stream-false-busy.json");
    sr_metrics_set_stats(&t, busy);
    is_int(t.state, SR_METRICS_SAMPLED, "busy capture: sampled");
    is_dbl(t.stats.cpu_percent, 101.1245, 0.001, "busy capture: CPU % kept");
    json_decref(busy);

    /* What a container that stopped meanwhile answers with stream=false
     * (NOTES §6): id, name and zeros. */
    json_t *gone = json_loads(
        "{\"read\":\"0001-01-01T00:00:00Z\",\"preread\":\"0001-01-01T00:00:00Z\",\"pids_stats\":{},"
        "\"blkio_stats\":{\"io_service_bytes_recursive\":null},\"num_procs\":0,\"storage_stats\":{}"
        ","
        "\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":0,\"usage_in_kernelmode\":0,"
        "\"usage_in_usermode\":0},\"throttling_data\":{\"periods\":0,\"throttled_periods\":0,"
        "\"throttled_time\":0}},\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":0,"
        "\"usage_in_kernelmode\":0,\"usage_in_usermode\":0},\"throttling_data\":{\"periods\":0,"
        "\"throttled_periods\":0,\"throttled_time\":0}},\"memory_stats\":{},\"name\":\"/x.1.t\","
        "\"id\":\"c\"}",
        0, NULL);
    t.state = SR_METRICS_PENDING;
    sr_metrics_set_stats(&t, gone);
    is_int(t.state, SR_METRICS_GONE, "stopped container (zeros): gone, not numbers");
    json_decref(gone);

    json_t *one = tap_load_json("stats-one-shot.json");
    t.state = SR_METRICS_PENDING;
    sr_metrics_set_stats(&t, one);
    ok(t.state == SR_METRICS_SAMPLED && !t.stats.cpu_valid && t.stats.mem_valid,
       "no precpu: sampled, memory only");
    json_decref(one);
}

static void test_build(void)
{
    /* Three local containers, one on another node, one gone, one failed.
     * CPU: 0.30 * 200 = 60 %, 0.45 * 200 = 90 %, 0.05 * 200 = 10 %:
     *   mean 53.33, max 90.
     * Memory (limit 100 MiB): (50-10) = 40 %, (30-0) = 30 %, 20 %:
     *   mean 30, max 40, total (40+30+20) MiB. */
    const long long MiB = 1048576, SYS = 1000000000;
    struct sr_metrics_task v[6] = {
        task("svc1", "ta", "ca", LOCAL, 1, SR_METRICS_PENDING),
        task("svc1", "tb", "cb", LOCAL, 2, SR_METRICS_PENDING),
        task("svc1", "tc", "cc", LOCAL, 3, SR_METRICS_PENDING),
        task("svc1", "td", "cd", "node2", 4, SR_METRICS_REMOTE),
        task("svc1", "te", "ce", LOCAL, 5, SR_METRICS_GONE),
        task("svc1", "tf", "cf", LOCAL, 6, SR_METRICS_FAILED),
    };
    json_t *s;
    s = stats_obj(SYS * 30 / 100, SYS, 50 * MiB, 10 * MiB, 100 * MiB);
    sr_metrics_set_stats(&v[0], s);
    json_decref(s);
    s = stats_obj(SYS * 45 / 100, SYS, 30 * MiB, 0, 100 * MiB);
    sr_metrics_set_stats(&v[1], s);
    json_decref(s);
    s = stats_obj(SYS * 5 / 100, SYS, 20 * MiB, 0, 100 * MiB);
    sr_metrics_set_stats(&v[2], s);
    json_decref(s);
    is_dbl(v[0].stats.cpu_percent, 60.0, 1e-9, "constructed stats: 60 %");

    json_t *svc = service_doc("cpu", 50, 35);
    json_t *errors = json_pack("[s]", "container cf: HTTP 500: boom");
    struct sr_metrics_input in = {.service = svc,
                                  .tasks = v,
                                  .ntasks = 6,
                                  .errors = errors,
                                  .sample_time = 1795000000.1234,
                                  .interval_sec = 60};
    json_t *doc = sr_metrics_build(&in);
    ok(json_is_object(doc), "document built");
    char *text = json_dumps(doc, JSON_COMPACT);
    printf("# %s\n", text);
    const char *keys[] = {
        "service",        "service_id", "sampled_at",    "sample_time",        "interval_sec",
        "metric",         "thresholds", "tasks_running", "containers_sampled", "aggregate",
        "over_threshold", "containers", "errors"};
    const char *k;
    json_t *val;
    size_t i = 0;
    bool order = json_object_size(doc) == sizeof(keys) / sizeof(keys[0]);
    json_object_foreach(doc, k, val)
    {
        if (i >= sizeof(keys) / sizeof(keys[0]) || strcmp(k, keys[i]) != 0)
            order = false;
        i++;
    }
    ok(order, "keys present, in the documented order");
    ok(text[strlen(text) - 1] == '}', "an object body (the API splices age_sec before '}')");
    free(text);
    is_str(json_string_value(json_object_get(doc, "service")), "web", "service name");
    is_str(json_string_value(json_object_get(doc, "service_id")), "svc1", "service id");
    is_str(json_string_value(json_object_get(doc, "sampled_at")), "2026-11-18T11:06:40.123Z",
           "sampled_at is RFC 3339 UTC of sample_time");
    ok(json_is_real(json_object_get(doc, "sample_time")), "sample_time is a number");
    is_dbl(json_number_value(json_object_get(doc, "sample_time")), 1795000000.123, 1e-6,
           "sample_time: Unix seconds, ms precision");
    is_int(json_integer_value(json_object_get(doc, "interval_sec")), 60, "interval_sec");
    is_str(json_string_value(json_object_get(doc, "metric")), "cpu", "metric from autoscaler");
    is_dbl(num(doc, "thresholds", "cpu"), 50, 0, "cpu threshold from autoscaler");
    is_dbl(num(doc, "thresholds", "memory"), 35, 0, "memory threshold from autoscaler");
    is_int(json_integer_value(json_object_get(doc, "tasks_running")), 6,
           "tasks_running counts every running task");
    is_int(json_integer_value(json_object_get(doc, "containers_sampled")), 3,
           "containers_sampled: local ones with numbers");
    is_dbl(num(doc, "aggregate", "cpu_percent_mean"), 53.33, 1e-9, "cpu mean (two decimals)");
    is_dbl(num(doc, "aggregate", "cpu_percent_max"), 90, 1e-9, "cpu max");
    is_dbl(num(doc, "aggregate", "memory_percent_mean"), 30, 1e-9, "memory mean");
    is_dbl(num(doc, "aggregate", "memory_percent_max"), 40, 1e-9, "memory max");
    is_int(json_integer_value(
               json_object_get(json_object_get(doc, "aggregate"), "memory_bytes_total")),
           90 * MiB, "memory bytes total (usage without page cache)");
    const json_t *over = json_object_get(doc, "over_threshold");
    ok(json_is_true(json_object_get(over, "cpu")), "53.33 > 50: cpu over");
    ok(json_is_false(json_object_get(over, "memory")), "30 <= 35: memory not over");
    ok(json_is_true(json_object_get(over, "scale_metric")), "scale_metric follows metric=cpu");

    const json_t *cs = json_object_get(doc, "containers");
    is_int(json_array_size(cs), 4, "containers: 3 sampled + 1 remote; gone and failed left out");
    const json_t *c0 = json_array_get(cs, 0);
    is_str(json_string_value(json_object_get(c0, "task_id")), "ta", "container 0 task");
    is_str(json_string_value(json_object_get(c0, "container_id")), "ca", "container 0 id");
    is_str(json_string_value(json_object_get(c0, "node_id")), LOCAL, "container 0 node");
    is_int(json_integer_value(json_object_get(c0, "slot")), 1, "container 0 slot");
    ok(json_is_true(json_object_get(c0, "local")), "container 0 local");
    is_dbl(json_number_value(json_object_get(c0, "cpu_percent")), 60, 1e-9,
           "container 0 cpu_percent (stats fields)");
    is_int(json_integer_value(json_object_get(c0, "memory_bytes")), 40 * MiB,
           "container 0 memory_bytes");
    is_int(json_integer_value(json_object_get(c0, "network_tx_bytes")), 20,
           "container 0 network_tx_bytes");
    const json_t *c3 = json_array_get(cs, 3);
    is_str(json_string_value(json_object_get(c3, "task_id")), "td", "remote task listed");
    ok(json_is_false(json_object_get(c3, "local")), "remote: local false");
    is_str(json_string_value(json_object_get(c3, "node_id")), "node2", "remote: its node");
    is_str(json_string_value(json_object_get(c3, "container_id")), "cd", "remote: container id");
    is_int(json_integer_value(json_object_get(c3, "slot")), 4, "remote: slot");
    ok(json_object_get(c3, "cpu_percent") == NULL && json_object_get(c3, "memory_bytes") == NULL,
       "remote: no numbers at all");
    is_int(json_object_size(c3), 5, "remote: exactly task_id, container_id, node_id, slot, local");
    const json_t *errs = json_object_get(doc, "errors");
    ok(json_array_size(errs) == 1 &&
           strcmp(json_string_value(json_array_get(errs, 0)), "container cf: HTTP 500: boom") == 0,
       "errors copied");
    json_decref(doc);

    /* metric=memory: scale_metric follows memory; memory mean 30 > 25. */
    json_decref(svc);
    svc = service_doc("memory", 95, 25);
    in.service = svc;
    doc = sr_metrics_build(&in);
    over = json_object_get(doc, "over_threshold");
    ok(json_is_false(json_object_get(over, "cpu")), "53.33 <= 95: cpu not over");
    ok(json_is_true(json_object_get(over, "memory")), "30 > 25: memory over");
    ok(json_is_true(json_object_get(over, "scale_metric")), "scale_metric follows metric=memory");
    is_str(json_string_value(json_object_get(doc, "metric")), "memory", "metric memory");
    json_decref(doc);

    /* Exactly at the threshold is not over it. */
    json_decref(svc);
    svc = service_doc("memory", 90, 30);
    in.service = svc;
    doc = sr_metrics_build(&in);
    over = json_object_get(doc, "over_threshold");
    ok(json_is_false(json_object_get(over, "memory")) &&
           json_is_false(json_object_get(over, "scale_metric")),
       "mean == threshold: not over");
    json_decref(doc);
    json_decref(svc);
    json_decref(errors);
}

static void test_empty(void)
{
    json_t *svc = service_doc("cpu", 1, 1);
    struct sr_metrics_input in = {.service = svc, .sample_time = 1795000000, .interval_sec = 5};
    json_t *doc = sr_metrics_build(&in);
    ok(json_is_object(doc), "no tasks: document built");
    const json_t *agg = json_object_get(doc, "aggregate");
    ok(json_is_null(json_object_get(agg, "cpu_percent_mean")) &&
           json_is_null(json_object_get(agg, "cpu_percent_max")) &&
           json_is_null(json_object_get(agg, "memory_percent_mean")) &&
           json_is_null(json_object_get(agg, "memory_percent_max")),
       "no tasks: means and maxima are null");
    is_int(json_integer_value(json_object_get(agg, "memory_bytes_total")), 0,
           "no tasks: memory total 0");
    is_int(json_integer_value(json_object_get(doc, "containers_sampled")), 0,
           "no tasks: containers_sampled 0");
    is_int(json_integer_value(json_object_get(doc, "tasks_running")), 0, "no tasks: 0 running");
    const json_t *over = json_object_get(doc, "over_threshold");
    ok(json_is_false(json_object_get(over, "cpu")) &&
           json_is_false(json_object_get(over, "memory")) &&
           json_is_false(json_object_get(over, "scale_metric")),
       "no numbers: nothing is over a threshold of 1");
    ok(json_array_size(json_object_get(doc, "containers")) == 0 &&
           json_array_size(json_object_get(doc, "errors")) == 0,
       "no tasks: empty containers and errors");
    json_decref(doc);

    /* Only tasks elsewhere, or gone: listed, nothing sampled. */
    struct sr_metrics_task v[2] = {
        task("svc1", "ta", "", "node2", 1, SR_METRICS_REMOTE),
        task("svc1", "tb", "cb", LOCAL, 2, SR_METRICS_GONE),
    };
    in.tasks = v;
    in.ntasks = 2;
    doc = sr_metrics_build(&in);
    is_int(json_integer_value(json_object_get(doc, "containers_sampled")), 0,
           "remote and gone: 0 sampled");
    is_int(json_integer_value(json_object_get(doc, "tasks_running")), 2,
           "remote and gone: 2 running");
    const json_t *cs = json_object_get(doc, "containers");
    ok(json_array_size(cs) == 1 &&
           json_is_null(json_object_get(json_array_get(cs, 0), "container_id")),
       "remote task without a container id: container_id null");
    ok(json_is_null(json_object_get(json_object_get(doc, "aggregate"), "cpu_percent_mean")),
       "remote only: cpu mean null");
    json_decref(doc);

    /* Memory-only sample (no precpu): cpu null, memory numbers. */
    struct sr_metrics_task m = task("svc1", "tm", "cm", LOCAL, 0, SR_METRICS_PENDING);
    json_t *one = tap_load_json("stats-one-shot.json");
    sr_metrics_set_stats(&m, one);
    json_decref(one);
    in.tasks = &m;
    in.ntasks = 1;
    doc = sr_metrics_build(&in);
    const json_t *c0 = json_array_get(json_object_get(doc, "containers"), 0);
    ok(json_is_null(json_object_get(c0, "slot")), "global task: slot null");
    ok(json_is_null(json_object_get(c0, "cpu_percent")), "no precpu: container cpu null");
    agg = json_object_get(doc, "aggregate");
    ok(json_is_null(json_object_get(agg, "cpu_percent_mean")) &&
           json_is_number(json_object_get(agg, "memory_percent_mean")),
       "no precpu: cpu mean null, memory mean a number");
    ok(json_is_false(json_object_get(json_object_get(doc, "over_threshold"), "cpu")),
       "cpu null: not over");
    json_decref(doc);
    json_decref(svc);

    /* No autoscaler settings: the label defaults. */
    svc = json_pack("{s:s, s:s}", "id", "x", "name", "y");
    in.service = svc;
    doc = sr_metrics_build(&in);
    ok(doc != NULL && strcmp(json_string_value(json_object_get(doc, "metric")), "cpu") == 0 &&
           num(doc, "thresholds", "cpu") == 70 && num(doc, "thresholds", "memory") == 70,
       "defaults: cpu, 70, 70");
    json_decref(doc);
    json_decref(svc);
    svc = json_pack("{s:s}", "id", "x");
    in.service = svc;
    ok(sr_metrics_build(&in) == NULL, "service doc without a name: NULL");
    json_decref(svc);
}

int main(void)
{
    test_tasks_capture();
    test_tasks_constructed();
    test_set_stats();
    test_build();
    test_empty();
    return tap_done();
}
