/* One element of GET /services?status=true -> the API's service object.
 * Key order is fixed (jansson keeps insertion order) and documented in map.h;
 * a field Docker did not send maps to null rather than to a guess. */
#include "adapters/docker/map.h"

#include <string.h>

#include "adapters/docker/labels.h"

static const json_t *get2(const json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

static json_t *str_or_null(const json_t *v)
{
    return json_is_string(v) ? json_stringn(json_string_value(v), json_string_length(v))
                             : json_null();
}

static json_t *int_or_null(const json_t *v)
{
    return json_is_integer(v) ? json_integer(json_integer_value(v)) : json_null();
}

/* Spec.TaskTemplate.ContainerSpec.Image carries the resolved digest
 * ("busybox:1@sha256:..."): users recognise the tag, and the digest changes
 * on every re-pull, which would make the record change for nothing. */
static json_t *image(const json_t *spec)
{
    const json_t *v = get2(json_object_get(spec, "TaskTemplate"), "ContainerSpec", "Image");
    if (!json_is_string(v))
        return json_null();
    const char *s = json_string_value(v);
    const char *at = strchr(s, '@');
    return json_stringn(s, at != NULL ? (size_t)(at - s) : json_string_length(v));
}

/* Spec.Mode holds exactly one of these keys. */
static const char *mode_name(const json_t *mode)
{
    static const char *const keys[][2] = {
        {"Replicated", "replicated"},
        {"Global", "global"},
        {"ReplicatedJob", "replicated-job"},
        {"GlobalJob", "global-job"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (json_object_get(mode, keys[i][0]) != NULL)
            return keys[i][1];
    return NULL;
}

static json_t *replicas(const json_t *svc, const json_t *mode)
{
    const json_t *status = json_object_get(svc, "ServiceStatus");
    json_t *desired = int_or_null(json_object_get(status, "DesiredTasks"));
    /* Without status=true (or before API 1.41) only a replicated service
     * states its desired count; a global one depends on the node count. */
    if (json_is_null(desired)) {
        const json_t *n = get2(mode, "Replicated", "Replicas");
        if (json_is_integer(n)) {
            json_decref(desired);
            desired = json_integer(json_integer_value(n));
        }
    }
    json_t *r = json_object();
    json_object_set_new(r, "desired", desired);
    json_object_set_new(r, "running", int_or_null(json_object_get(status, "RunningTasks")));
    return r;
}

static json_t *autoscaler(const json_t *labels, json_t *errors)
{
    struct sr_autoscale a;
    sr_labels_parse(labels, &a, errors);
    json_t *o = json_object();
    json_object_set_new(o, "enabled", json_boolean(a.enabled));
    json_object_set_new(o, "metric", json_string(sr_metric_name(a.metric)));
    json_object_set_new(o, "cpu_threshold", json_integer(a.cpu_threshold));
    json_object_set_new(o, "memory_threshold", json_integer(a.memory_threshold));
    json_object_set_new(o, "min_replicas", json_integer(a.min_replicas));
    json_object_set_new(o, "max_replicas", json_integer(a.max_replicas));
    return o;
}

json_t *sr_docker_map_service(const json_t *svc)
{
    const json_t *id = json_object_get(svc, "ID");
    const json_t *spec = json_object_get(svc, "Spec");
    const json_t *name = json_object_get(spec, "Name");
    if (!json_is_string(id) || json_string_length(id) == 0 || !json_is_string(name) ||
        json_string_length(name) == 0)
        return NULL;
    const json_t *labels = json_object_get(spec, "Labels");
    const json_t *mode = json_object_get(spec, "Mode");
    const char *mname = mode_name(mode);

    json_t *out = json_object();
    json_object_set_new(out, "id", str_or_null(id));
    json_object_set_new(out, "name", str_or_null(name));
    json_object_set_new(out, "image", image(spec));
    json_object_set_new(out, "mode", mname != NULL ? json_string(mname) : json_null());
    json_object_set_new(out, "replicas", replicas(svc, mode));
    json_object_set_new(out, "labels",
                        json_is_object(labels) ? json_deep_copy(labels) : json_object());
    json_object_set_new(out, "stack",
                        str_or_null(json_object_get(labels, "com.docker.stack.namespace")));
    json_object_set_new(out, "created_at", str_or_null(json_object_get(svc, "CreatedAt")));
    json_object_set_new(out, "updated_at", str_or_null(json_object_get(svc, "UpdatedAt")));
    json_object_set_new(out, "version_index", int_or_null(get2(svc, "Version", "Index")));
    json_t *errors = json_array();
    json_object_set_new(out, "autoscaler", autoscaler(labels, errors));
    json_object_set_new(out, "config_errors", errors);
    return out;
}
