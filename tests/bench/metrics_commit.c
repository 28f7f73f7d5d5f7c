/* metrics_commit: what storing one metrics round costs the cache's writer
 * (the Docker thread), for N cached services, two ways:
 *   per_service  one sr_cache_set_metrics per service: one commit, and one
 *                snapshot rebuild, each (N^2 in all: what rounds used to do)
 *   batch        one sr_cache_set_metrics_batch for the round (what a
 *                periodic round does now, at most every 100 ms)
 * Prints the wall time of each (best of 3) and the ratio. Service records
 * are ~400 bytes, like a labelled Docker service's; metrics ~300 bytes.
 *
 * usage: metrics_commit [N...]      (default 100 1000 3000) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cache/cache.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *metrics_doc(size_t i)
{
    return json_pack("{s:f, s:f, s:I, s:I, s:i, s:i, s:s, s:[]}", "cpu_percent", (double)i / 7,
                     "memory_percent", 12.5, "memory_usage", (json_int_t)(i * 4096),
                     "memory_limit", (json_int_t)1 << 30, "containers_sampled", 1,
                     "tasks_running", 1, "sample_time", "2026-11-25T01:00:00.000Z", "errors");
}

static struct sr_cache *filled(size_t n, char (*ids)[32])
{
    struct sr_cache *c = sr_cache_new();
    struct sr_svc **v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(ids[i], 32, "id%024zu", i);
        snprintf(name, sizeof(name), "stack_svc-%05zu", i);
        v[i] = sr_svc_new(json_pack(
            "{s:s, s:s, s:s, s:i, s:{s:s, s:s, s:s, s:s}, s:s, s:s}", "id", ids[i], "name", name,
            "image", "local/busybox:1@sha256:0123456789abcdef0123456789abcdef", "replicas", 1,
            "labels", "autoscaler.enabled", "true", "autoscaler.metric", "cpu",
            "autoscaler.max", "5", "com.docker.stack.namespace", "stack", "mode", "replicated",
            "created_at", "2026-11-25T01:00:00.000000000Z"));
    }
    sr_cache_replace(c, v, n, NULL);
    free(v);
    return c;
}

static double per_service(size_t n)
{
    char(*ids)[32] = calloc(n, 32);
    struct sr_cache *c = filled(n, ids);
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        sr_cache_set_metrics(c, ids[i], metrics_doc(i));
    double t = now() - t0;
    sr_cache_free(c);
    free(ids);
    return t;
}

static double batch(size_t n)
{
    char(*ids)[32] = calloc(n, 32);
    struct sr_cache *c = filled(n, ids);
    struct sr_metrics_item *items = calloc(n, sizeof(*items));
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        items[i] = (struct sr_metrics_item){.service_id = ids[i], .doc = metrics_doc(i)};
    size_t stored = sr_cache_set_metrics_batch(c, items, n);
    double t = now() - t0;
    if (stored != n) {
        fprintf(stderr, "batch stored %zu of %zu\n", stored, n);
        exit(1);
    }
    sr_cache_free(c);
    free(items);
    free(ids);
    return t;
}

static double best(double (*f)(size_t), size_t n)
{
    double b = f(n);
    for (int i = 1; i < 3; i++) {
        double t = f(n);
        if (t < b)
            b = t;
    }
    return b;
}

int main(int argc, char **argv)
{
    size_t def[] = {100, 1000, 3000};
    size_t nn = argc > 1 ? (size_t)(argc - 1) : sizeof(def) / sizeof(def[0]);
    printf("%8s %16s %12s %8s\n", "services", "per_service_ms", "batch_ms", "ratio");
    for (size_t k = 0; k < nn; k++) {
        size_t n = argc > 1 ? strtoul(argv[k + 1], NULL, 10) : def[k];
        if (n == 0)
            continue;
        double a = best(per_service, n), b = best(batch, n);
        printf("%8zu %16.1f %12.2f %7.0fx\n", n, a * 1e3, b * 1e3, b > 0 ? a / b : 0);
    }
    return 0;
}
