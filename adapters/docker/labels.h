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
    bool enabled;          /* autoscaler.enabled, default false */
    enum sr_metric metric; /* autoscaler.metric, default cpu */
    int cpu_threshold;     /* autoscaler.cpu.threshold, 1..100, default 70 */
    int memory_threshold;  /* autoscaler.memory.threshold, 1..100, default 70 */
    int min_replicas;      /* autoscaler.min, 0..INT_MAX, default 1 */
    int max_replicas;      /* autoscaler.max, 1..INT_MAX, default 2, >= min */
};

/* Parses `labels` (a JSON object of string values, or NULL) into *out.
 * A bad value falls back to its default; for each, an object
 *   {"label": "...", "value": "...", "error": "...", "used": <default>}
 * is appended to `errors` (a JSON array, borrowed; NULL = don't report).
 * Never fails, whatever the input (non-object labels count as none).
 *
 * Rules (README "Labels"):
 * - autoscaler.enabled is true iff the value is "true", case-insensitively.
 *   "false" (any case) and a missing label mean false; anything else ("1",
 *   "yes", "") also means false and is reported. The adapter lists services
 *   with the label *present* and filters with this function, so a full
 *   refresh and a per-service refresh always agree.
 * - autoscaler.metric: "cpu" or "memory", case-insensitively.
 * - thresholds, min, max: plain decimal integers (sr_parse_int): ASCII
 *   digits only, so "55.5", "80%", " 5", "+5" and "-0" are errors; leading
 *   zeros are read as decimal ("050" is 50). min and max go up to INT_MAX
 *   (2147483647); the error text gives the range.
 * - min > max (after the per-field fallbacks): max is raised to min, and the
 *   entry is reported on autoscaler.max ("value" is null when that label is
 *   absent). Raising max never lets the autoscaler go below the floor the
 *   user asked for, nor above any number the user wrote; falling back to
 *   1..2 could scale a service with min=5 down to 2.
 * - A non-string value is an error; "value" then holds its compact JSON.
 * Entries come in label order: enabled, metric, cpu.threshold,
 * memory.threshold, min, max. "used" is the value finally in *out. */
void sr_labels_parse(const json_t *labels, struct sr_autoscale *out, json_t *errors);

const char *sr_metric_name(enum sr_metric m);

#endif
