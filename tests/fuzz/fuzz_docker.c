/* libFuzzer: answers from the Docker Engine API, as the adapter reads them:
 * a GET /services list (each element mapped, labels checked, stored as a
 * cache entry and, with stats from the same input, a metrics document), a
 * GET /tasks list, a stats object, and /events lines. Docker is trusted
 * less than it seems: labels are anyone's text. Any crash, leak or
 * sanitizer report is a bug. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/docker/event.h"
#include "adapters/docker/linesplit.h"
#include "adapters/docker/map.h"
#include "adapters/docker/metrics.h"
#include "adapters/docker/stats.h"
#include "cache/cache.h"

static void on_line(const char *line, size_t len, void *arg)
{
    (void)arg;
    struct sr_docker_event ev;
    char err[128];
    sr_docker__event_parse(line, len, &ev, err, sizeof(err));
}

static void one_service(const json_t *el, const json_t *all)
{
    json_t *doc = sr_docker_map_service(el);
    if (doc == NULL)
        return;
    struct sr_metrics_task *tasks = NULL;
    long n = sr_metrics_tasks(all, "node-1", json_string_value(json_object_get(doc, "id")), &tasks);
    for (long i = 0; i < n; i++)
        if (tasks[i].state == SR_METRICS_PENDING)
            sr_metrics_set_stats(&tasks[i], el);
    json_t *errors = json_pack("[s]", "container x: \xff cut");
    struct sr_metrics_input in = {.service = doc, .tasks = tasks, .ntasks = n > 0 ? (size_t)n : 0,
                                  .errors = errors, .sample_time = 1700000000.25,
                                  .interval_sec = 60};
    json_t *m = sr_metrics_build(&in);
    json_decref(m);
    json_decref(errors);
    free(tasks);
    struct sr_svc *svc = sr_svc_new(doc); /* steals doc */
    sr_svc_release(svc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (json_is_array(j)) {
        size_t i;
        json_t *el;
        json_array_foreach(j, i, el) one_service(el, j);
    } else if (json_is_object(j)) {
        one_service(j, NULL);
        struct sr_container_stats st;
        sr_stats_compute(j, &st);
        json_decref(sr_stats_to_json(&st));
    }
    json_decref(j);

    struct sr_linesplit ls;
    sr_linesplit_init(&ls, 4096);
    sr_linesplit_feed(&ls, (const char *)data, size, on_line, NULL);
    sr_linesplit_free(&ls);
    return 0;
}
