#include "adapters/docker/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int cmp_task(const void *a, const void *b)
{
    const struct sr_metrics_task *x = a, *y = b;
    int c = strcmp(x->service_id, y->service_id);
    if (c != 0)
        return c;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return strcmp(x->task_id, y->task_id);
}

long sr_metrics_tasks(const json_t *tasks, const char *local_node, const char *service_id,
                      struct sr_metrics_task **out)
{
    *out = NULL;
    if (!json_is_array(tasks))
        return -1;
    size_t n = json_array_size(tasks), k = 0;
    struct sr_metrics_task *v = n ? sr_calloc(n, sizeof(*v)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tasks, i);
        const json_t *status = json_object_get(t, "Status");
        const char *id = str_at(t, "ID"), *sid = str_at(t, "ServiceID");
        /* desired-state=running also lists tasks still being scheduled or
         * started (new, pending, assigned, preparing, starting): they have
         * no container to sample yet. */
        if (strcmp(str_at(status, "State"), "running") != 0 ||
            strcmp(str_at(t, "DesiredState"), "running") != 0 || !id[0] || !sid[0])
            continue;
        if (service_id != NULL && strcmp(sid, service_id) != 0)
            continue;
        struct sr_metrics_task *m = &v[k++];
        snprintf(m->service_id, sizeof(m->service_id), "%s", sid);
        snprintf(m->task_id, sizeof(m->task_id), "%s", id);
        snprintf(m->container_id, sizeof(m->container_id), "%s",
                 str_at(json_object_get(status, "ContainerStatus"), "ContainerID"));
        snprintf(m->node_id, sizeof(m->node_id), "%s", str_at(t, "NodeID"));
        const json_t *slot = json_object_get(t, "Slot");
        m->slot =
            json_is_integer(slot) && json_integer_value(slot) > 0 ? json_integer_value(slot) : 0;
        bool local = local_node != NULL && local_node[0] && strcmp(m->node_id, local_node) == 0;
        m->state = !local               ? SR_METRICS_REMOTE
                   : m->container_id[0] ? SR_METRICS_PENDING
                                        : SR_METRICS_GONE;
    }
    if (k == 0) {
        free(v);
        return 0;
    }
    qsort(v, k, sizeof(*v), cmp_task);
    *out = v;
    return (long)k;
}

void sr_metrics_set_stats(struct sr_metrics_task *t, const json_t *stats)
{
    if (sr_stats_compute(stats, &t->stats) == 0 && (t->stats.cpu_valid || t->stats.mem_valid))
        t->state = SR_METRICS_SAMPLED;
    else
        t->state = SR_METRICS_GONE;
}

/* ---- the document ---------------------------------------------------------- */

struct agg {
    size_t n;
    double sum, max;
};

static void agg_add(struct agg *a, double v)
{
    if (!isfinite(v))
        return;
    if (a->n == 0 || v > a->max)
        a->max = v;
    a->sum += v;
    a->n++;
}

static double round2(double v)
{
    return round(v * 100.0) / 100.0;
}

/* Rounded like the per-container values, so mean and max compare with them. */
static json_t *agg_mean(const struct agg *a)
{
    return a->n ? json_real(round2(a->sum / (double)a->n)) : json_null();
}

static json_t *agg_max(const struct agg *a)
{
    return a->n ? json_real(round2(a->max)) : json_null();
}

static json_t *container_entry(const struct sr_metrics_task *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "task_id", json_string(t->task_id));
    json_object_set_new(o, "container_id",
                        t->container_id[0] ? json_string(t->container_id) : json_null());
    json_object_set_new(o, "node_id", json_string(t->node_id));
    json_object_set_new(o, "slot", t->slot > 0 ? json_integer(t->slot) : json_null());
    json_object_set_new(o, "local", json_boolean(t->state != SR_METRICS_REMOTE));
    if (t->state == SR_METRICS_SAMPLED) {
        json_t *nums = sr_stats_to_json(&t->stats);
        json_object_update(o, nums);
        json_decref(nums);
    }
    return o;
}

static int threshold_of(const json_t *as, const char *key)
{
    const json_t *v = json_object_get(as, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : 70;
}

json_t *sr_metrics_build(const struct sr_metrics_input *in)
{
    const json_t *svc = in->service;
    const json_t *id = json_object_get(svc, "id"), *name = json_object_get(svc, "name");
    if (!json_is_string(id) || !json_is_string(name))
        return NULL;
    const json_t *as = json_object_get(svc, "autoscaler");
    const json_t *metric = json_object_get(as, "metric");
    bool mem_metric = json_is_string(metric) && strcmp(json_string_value(metric), "memory") == 0;
    int cpu_th = threshold_of(as, "cpu_threshold"), mem_th = threshold_of(as, "memory_threshold");

    struct agg cpu = {0}, mem = {0};
    uint64_t mem_total = 0;
    size_t sampled = 0;
    json_t *containers = json_array();
    for (size_t i = 0; i < in->ntasks; i++) {
        const struct sr_metrics_task *t = &in->tasks[i];
        if (t->state != SR_METRICS_SAMPLED && t->state != SR_METRICS_REMOTE)
            continue;
        json_array_append_new(containers, container_entry(t));
        if (t->state != SR_METRICS_SAMPLED)
            continue;
        sampled++;
        if (t->stats.cpu_valid)
            agg_add(&cpu, t->stats.cpu_percent);
        if (t->stats.mem_valid) {
            agg_add(&mem, t->stats.mem_percent);
            sr_stats_add_sat(&mem_total, t->stats.mem_used);
        }
    }
    /* Compare the rounded means the document shows, so a reader can check
     * over_threshold against them. */
    bool cpu_over = cpu.n > 0 && round2(cpu.sum / (double)cpu.n) > (double)cpu_th;
    bool mem_over = mem.n > 0 && round2(mem.sum / (double)mem.n) > (double)mem_th;
    char when[40];
    sr_format_time(in->sample_time, when, sizeof(when));
    json_t *errors = json_is_array(in->errors) ? json_deep_copy(in->errors) : json_array();
    return json_pack("{s:O, s:O, s:s, s:f, s:I, s:s, s:{s:i, s:i}, s:I, s:I,"
                     " s:{s:o, s:o, s:o, s:o, s:I}, s:{s:b, s:b, s:b}, s:o, s:o}",
                     "service", name, "service_id", id, "sampled_at", when, "sample_time",
                     round(in->sample_time * 1000.0) / 1000.0, "interval_sec",
                     (json_int_t)in->interval_sec, "metric", mem_metric ? "memory" : "cpu",
                     "thresholds", "cpu", cpu_th, "memory", mem_th, "tasks_running",
                     (json_int_t)in->ntasks, "containers_sampled", (json_int_t)sampled, "aggregate",
                     "cpu_percent_mean", agg_mean(&cpu), "cpu_percent_max", agg_max(&cpu),
                     "memory_percent_mean", agg_mean(&mem), "memory_percent_max", agg_max(&mem),
                     "memory_bytes_total", sr_stats_json_u64(mem_total), "over_threshold", "cpu", cpu_over,
                     "memory", mem_over, "scale_metric", mem_metric ? mem_over : cpu_over,
                     "containers", containers, "errors", errors);
}
