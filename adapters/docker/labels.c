/* autoscaler.* labels -> struct sr_autoscale, with the spec's defaults and a
 * config_errors entry for every value we could not use (rules in labels.h). */
#include "adapters/docker/labels.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/util.h"

#define DEF_METRIC SR_METRIC_CPU
#define DEF_THRESHOLD 70
#define DEF_MIN 1
#define DEF_MAX 2

enum field { F_ENABLED, F_METRIC, F_CPU, F_MEM, F_MIN, F_MAX, F_COUNT };

static const char *const label_names[F_COUNT] = {
    "autoscaler.enabled",          "autoscaler.metric", "autoscaler.cpu.threshold",
    "autoscaler.memory.threshold", "autoscaler.min",    "autoscaler.max",
};

/* One pending config error; emitted at the end so the min/max rule can
 * amend the entry of a field that already failed on its own. */
struct pending {
    bool set;
    json_t *value; /* owned: the raw value as a JSON string, or null */
    char error[160];
};

const char *sr_metric_name(enum sr_metric m)
{
    return m == SR_METRIC_MEMORY ? "memory" : "cpu";
}

/* The raw value as the API shows it: the string itself, or the compact JSON
 * of a non-string value. */
static json_t *raw_value(const json_t *v)
{
    if (v == NULL)
        return json_null();
    if (json_is_string(v))
        return json_stringn(json_string_value(v), json_string_length(v));
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *s = json_string(text != NULL ? text : "?");
    free(text);
    return s != NULL ? s : json_null(); /* json_string fails on bad UTF-8 */
}

static void fail(struct pending *p, const json_t *v, const char *error)
{
    json_decref(p->value);
    p->set = true;
    p->value = raw_value(v);
    snprintf(p->error, sizeof(p->error), "%s", error);
}

/* Returns the label's string value, or NULL when absent or not a string (a
 * non-string also records an error). Embedded NULs count as not a string:
 * strcmp-based parsing would otherwise see a prefix. */
static const char *get_str(const json_t *labels, enum field f, struct pending *errs)
{
    const json_t *v = json_object_get(labels, label_names[f]);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        fail(&errs[f], v, "must be a string");
        return NULL;
    }
    return json_string_value(v);
}

static int parse_int_field(const json_t *labels, enum field f, long long lo, long long hi, int def,
                           struct pending *errs)
{
    const char *s = get_str(labels, f, errs);
    long long v;
    if (s == NULL)
        return def;
    if (sr_parse_int(s, lo, hi, &v) != 0) {
        char why[80];
        snprintf(why, sizeof(why), "must be an integer from %lld to %lld", lo, hi);
        fail(&errs[f], json_object_get(labels, label_names[f]), why);
        return def;
    }
    return (int)v;
}

static json_t *used_value(const struct sr_autoscale *a, enum field f)
{
    switch (f) {
    case F_ENABLED:
        return json_boolean(a->enabled);
    case F_METRIC:
        return json_string(sr_metric_name(a->metric));
    case F_CPU:
        return json_integer(a->cpu_threshold);
    case F_MEM:
        return json_integer(a->memory_threshold);
    case F_MIN:
        return json_integer(a->min_replicas);
    case F_MAX:
    default:
        return json_integer(a->max_replicas);
    }
}

void sr_labels_parse(const json_t *labels, struct sr_autoscale *out, json_t *errors)
{
    struct pending errs[F_COUNT];
    memset(errs, 0, sizeof(errs));
    if (!json_is_object(labels))
        labels = NULL;

    out->enabled = false;
    const char *s = get_str(labels, F_ENABLED, errs);
    if (s != NULL) {
        if (strcasecmp(s, "true") == 0)
            out->enabled = true;
        else if (strcasecmp(s, "false") != 0)
            fail(&errs[F_ENABLED], json_object_get(labels, label_names[F_ENABLED]),
                 "must be true or false");
    }

    out->metric = DEF_METRIC;
    s = get_str(labels, F_METRIC, errs);
    if (s != NULL) {
        if (strcasecmp(s, "cpu") == 0)
            out->metric = SR_METRIC_CPU;
        else if (strcasecmp(s, "memory") == 0)
            out->metric = SR_METRIC_MEMORY;
        else
            fail(&errs[F_METRIC], json_object_get(labels, label_names[F_METRIC]),
                 "must be cpu or memory");
    }

    out->cpu_threshold = parse_int_field(labels, F_CPU, 1, 100, DEF_THRESHOLD, errs);
    out->memory_threshold = parse_int_field(labels, F_MEM, 1, 100, DEF_THRESHOLD, errs);
    out->min_replicas = parse_int_field(labels, F_MIN, 0, INT_MAX, DEF_MIN, errs);
    out->max_replicas = parse_int_field(labels, F_MAX, 1, INT_MAX, DEF_MAX, errs);

    if (out->min_replicas > out->max_replicas) {
        struct pending *p = &errs[F_MAX];
        char why[400];
        snprintf(why, sizeof(why),
                 "%.150s%sautoscaler.max %d is less than autoscaler.min %d: raised to %d",
                 p->set ? p->error : "", p->set ? "; then " : "", out->max_replicas,
                 out->min_replicas, out->min_replicas);
        if (!p->set)
            p->value = raw_value(json_object_get(labels, label_names[F_MAX]));
        p->set = true;
        snprintf(p->error, sizeof(p->error), "%.159s", why);
        out->max_replicas = out->min_replicas;
    }

    for (int f = 0; f < F_COUNT; f++) {
        if (!errs[f].set)
            continue;
        if (json_is_array(errors)) {
            json_t *e = json_object();
            json_object_set_new(e, "label", json_string(label_names[f]));
            json_object_set_new(e, "value", errs[f].value);
            json_object_set_new(e, "error", sr_json_text(errs[f].error));
            json_object_set_new(e, "used", used_value(out, (enum field)f));
            json_array_append_new(errors, e);
        } else {
            json_decref(errs[f].value);
        }
        errs[f].value = NULL;
    }
}
