/* The autoscaler.* labels of a service, parsed with the spec's defaults.
 * Pure functions, no I/O, any thread. */
#ifndef SR_DOCKER_LABELS_H
#define SR_DOCKER_LABELS_H

#include <jansson.h>
#include <stdbool.h>

enum sr_metric {
    SR_METRIC_CPU = 0,
    SR_METRIC_MEMORY = 1,
};

struct sr_autoscale {
    bool enabled;           /* autoscaler.enabled, default false */
    enum sr_metric metric;  /* autoscaler.metric, default cpu */
    int cpu_threshold;      /* autoscaler.cpu.threshold, 1..100, default 70 */
    int memory_threshold;   /* autoscaler.memory.threshold, 1..100, default 70 */
    int min_replicas;       /* autoscaler.min, >= 0, default 1 */
    int max_replicas;       /* autoscaler.max, >= 1, default 2, >= min */
};

/* Parses `labels` (a JSON object of string values, or NULL) into *out.
 * A bad value falls back to its default; for each, an object
 *   {"label": "...", "value": "...", "error": "...", "used": <default>}
 * is appended to `errors` (a JSON array, borrowed). Never fails. */
void sr_labels_parse(const json_t *labels, struct sr_autoscale *out, json_t *errors);

const char *sr_metric_name(enum sr_metric m);

#endif
