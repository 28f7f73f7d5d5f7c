/* Docker JSON -> service records, on real captures (tests/data, from Docker
 * 20.10): services-status.json (status=true) and services.json (without). */
#include <stdlib.h>

#include "adapters/docker/map.h"
#include "tests/unit/tap.h"
#include "tests/unit/tap_data.h"


static const json_t *by_id(const json_t *arr, const char *id)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "ID")), id) == 0)
            return e;
    }
    return NULL;
}

static const char *s(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long i(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static json_t *map_text(const char *text)
{
    json_t *in = json_loads(text, 0, NULL);
    json_t *out = sr_docker_map_service(in);
    json_decref(in);
    return out;
}

int main(void)
{
    json_t *status = tap_load_json("services-status.json");
    json_t *plain = tap_load_json("services.json");
    ok(json_is_array(status) && json_array_size(status) == 5, "services-status.json loaded");
    ok(json_is_array(plain) && json_array_size(plain) == 5, "services.json loaded");

    /* web1: replicated 2/2, min 1 max 5 */
    json_t *web = sr_docker_map_service(by_id(status, "fr89lge0dihbhbcj40c1dzskv"));
    ok(web != NULL, "web1 mapped");
    is_str(s(web, "id"), "fr89lge0dihbhbcj40c1dzskv", "web1 id");
    is_str(s(web, "name"), "web1", "web1 name");
    is_str(s(web, "image"), "local/busybox:1", "web1 image");
    is_str(s(web, "mode"), "replicated", "web1 mode");
    is_int(i(json_object_get(web, "replicas"), "desired"), 2, "web1 desired 2");
    is_int(i(json_object_get(web, "replicas"), "running"), 2, "web1 running 2");
    is_str(s(json_object_get(web, "labels"), "autoscaler.max"), "5", "web1 labels carried");
    is_int(json_object_size(json_object_get(web, "labels")), 3, "web1 has 3 labels");
    ok(json_is_null(json_object_get(web, "stack")), "web1 stack null");
    is_str(s(web, "created_at"), "2026-11-22T08:33:42.255816872Z", "web1 created_at as is");
    is_str(s(web, "updated_at"), "2026-11-22T08:34:17.23177305Z", "web1 updated_at as is");
    is_int(i(web, "version_index"), 18, "web1 version_index");
    const json_t *as = json_object_get(web, "autoscaler");
    ok(json_is_true(json_object_get(as, "enabled")), "web1 enabled");
    is_str(s(as, "metric"), "cpu", "web1 metric default cpu");
    is_int(i(as, "cpu_threshold"), 70, "web1 cpu threshold default");
    is_int(i(as, "memory_threshold"), 70, "web1 memory threshold default");
    is_int(i(as, "min_replicas"), 1, "web1 min");
    is_int(i(as, "max_replicas"), 5, "web1 max");
    is_int(json_array_size(json_object_get(web, "config_errors")), 0, "web1 no config errors");

    /* key order is part of the contract */
    char *text = json_dumps(web, JSON_COMPACT);
    const char *order[] = {
        "\"id\"",         "\"name\"",          "\"image\"",      "\"mode\"",
        "\"replicas\"",   "\"labels\"",        "\"stack\"",      "\"created_at\"",
        "\"updated_at\"", "\"version_index\"", "\"autoscaler\"", "\"config_errors\""};
    const char *prev = text;
    int in_order = 1;
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        const char *p = strstr(text, order[k]);
        if (p == NULL || p < prev)
            in_order = 0;
        prev = p ? p : prev;
    }
    ok(in_order, "keys in the documented order");
    is_int(json_object_size(web), 12, "exactly 12 keys");
    ok(strstr(text, "\"autoscaler\":{\"enabled\":true,\"metric\":\"cpu\",\"cpu_threshold\":70,"
                    "\"memory_threshold\":70,\"min_replicas\":1,\"max_replicas\":5}") != NULL,
       "autoscaler keys in order");
    free(text);
    json_decref(web);

    /* pyreg-lab: memory metric, 3 replicas, one bad threshold (55.5) */
    json_t *lab = sr_docker_map_service(by_id(status, "qtqyqevgjjdgj3lo072wfqvmf"));
    as = json_object_get(lab, "autoscaler");
    is_str(s(lab, "name"), "pyreg-lab", "pyreg-lab name");
    is_str(s(as, "metric"), "memory", "pyreg-lab metric memory");
    is_int(i(as, "memory_threshold"), 80, "pyreg-lab memory threshold 80");
    is_int(i(as, "cpu_threshold"), 70, "pyreg-lab cpu threshold 55.5 -> 70");
    ok(i(as, "min_replicas") == 2 && i(as, "max_replicas") == 9, "pyreg-lab min 2 max 9");
    is_int(i(json_object_get(lab, "replicas"), "running"), 3, "pyreg-lab running 3");
    const json_t *errs = json_object_get(lab, "config_errors");
    is_int(json_array_size(errs), 1, "pyreg-lab one config error");
    const json_t *e0 = json_array_get(errs, 0);
    is_str(s(e0, "label"), "autoscaler.cpu.threshold", "pyreg-lab error label");
    is_str(s(e0, "value"), "55.5", "pyreg-lab error value");
    is_int(i(e0, "used"), 70, "pyreg-lab error used");
    json_decref(lab);

    /* pyreg-bad: two bad labels */
    json_t *badsvc = sr_docker_map_service(by_id(status, "azdxl2ujeevnxj0n7yfdp0zut"));
    errs = json_object_get(badsvc, "config_errors");
    is_int(json_array_size(errs), 2, "pyreg-bad two config errors");
    is_str(s(json_array_get(errs, 0), "label"), "autoscaler.cpu.threshold", "pyreg-bad first");
    is_str(s(json_array_get(errs, 1), "label"), "autoscaler.min", "pyreg-bad second");
    is_int(i(json_object_get(badsvc, "autoscaler"), "min_replicas"), 1, "pyreg-bad min default");
    json_decref(badsvc);

    /* pyreg-off / pyreg-nolabel: mapped, but not enabled */
    json_t *off = sr_docker_map_service(by_id(status, "v0hsb6sf3jatwepk489y7pvs0"));
    ok(json_is_false(json_object_get(json_object_get(off, "autoscaler"), "enabled")),
       "pyreg-off disabled");
    json_decref(off);
    json_t *nolab = sr_docker_map_service(by_id(status, "xat9hl4co73noh1wmzv8fyky3"));
    ok(json_is_object(json_object_get(nolab, "labels")) &&
           json_object_size(json_object_get(nolab, "labels")) == 0,
       "pyreg-nolabel labels {}");
    ok(json_is_false(json_object_get(json_object_get(nolab, "autoscaler"), "enabled")),
       "pyreg-nolabel disabled");
    json_decref(nolab);

    /* without status=true: desired from Spec.Mode.Replicated, running null */
    json_t *web_plain = sr_docker_map_service(by_id(plain, "fr89lge0dihbhbcj40c1dzskv"));
    is_int(i(json_object_get(web_plain, "replicas"), "desired"), 2,
           "no ServiceStatus: desired from Spec.Mode.Replicated.Replicas");
    ok(json_is_null(json_object_get(json_object_get(web_plain, "replicas"), "running")),
       "no ServiceStatus: running null");
    json_decref(web_plain);

    /* every element of both captures maps, and does not modify its input */
    json_t *copy = json_deep_copy(status);
    size_t k;
    json_t *el;
    int all = 1;
    json_array_foreach(status, k, el)
    {
        json_t *m = sr_docker_map_service(el);
        all &= m != NULL;
        json_decref(m);
    }
    json_array_foreach(plain, k, el)
    {
        json_t *m = sr_docker_map_service(el);
        all &= m != NULL;
        json_decref(m);
    }
    ok(all, "every captured element maps");
    ok(json_equal(copy, status), "input left unmodified");
    json_decref(copy);

    /* service.json (GET /services/{id}) maps too */
    json_t *one = tap_load_json("service.json");
    json_t *m = sr_docker_map_service(one);
    is_str(s(m, "name"), "web1", "service.json maps");
    json_decref(m);
    json_decref(one);

    /* ---- synthetic cases ---- */
    ok(sr_docker_map_service(NULL) == NULL, "NULL -> NULL");
    ok(map_text("{\"Spec\":{\"Name\":\"x\"}}") == NULL, "no ID -> NULL");
    ok(map_text("{\"ID\":\"abc\",\"Spec\":{}}") == NULL, "no Spec.Name -> NULL");
    ok(map_text("{\"ID\":\"abc\"}") == NULL, "no Spec -> NULL");
    ok(map_text("{\"ID\":\"\",\"Spec\":{\"Name\":\"x\"}}") == NULL, "empty ID -> NULL");
    ok(map_text("{\"ID\":\"abc\",\"Spec\":{\"Name\":\"\"}}") == NULL, "empty name -> NULL");
    ok(map_text("{\"ID\":7,\"Spec\":{\"Name\":\"x\"}}") == NULL, "numeric ID -> NULL");
    ok(map_text("[1,2]") == NULL, "array -> NULL");

    m = map_text("{\"ID\":\"g1\",\"Spec\":{\"Name\":\"glob\",\"Mode\":{\"Global\":{}},"
                 "\"Labels\":{\"com.docker.stack.namespace\":\"st\"},\"TaskTemplate\":"
                 "{\"ContainerSpec\":{\"Image\":\"reg:5000/a/b:1.2@sha256:0123abcd\"}}},"
                 "\"ServiceStatus\":{\"RunningTasks\":3,\"DesiredTasks\":4}}");
    is_str(s(m, "mode"), "global", "global mode");
    is_str(s(m, "image"), "reg:5000/a/b:1.2", "digest stripped, registry port and tag kept");
    is_str(s(m, "stack"), "st", "stack from com.docker.stack.namespace");
    is_int(i(json_object_get(m, "replicas"), "desired"), 4, "global desired from status");
    is_int(i(json_object_get(m, "replicas"), "running"), 3, "global running from status");
    ok(json_is_null(json_object_get(m, "created_at")) &&
           json_is_null(json_object_get(m, "version_index")),
       "missing timestamps and version -> null");
    json_decref(m);

    m = map_text("{\"ID\":\"g2\",\"Spec\":{\"Name\":\"g\",\"Mode\":{\"Global\":{}}}}");
    ok(json_is_null(json_object_get(json_object_get(m, "replicas"), "desired")),
       "global without status: desired null");
    ok(json_is_null(json_object_get(m, "image")) && json_is_null(json_object_get(m, "stack")),
       "no image, no stack -> null");
    json_decref(m);

    m = map_text("{\"ID\":\"j1\",\"Spec\":{\"Name\":\"j\",\"Mode\":{\"ReplicatedJob\":"
                 "{\"MaxConcurrent\":1,\"TotalCompletions\":1}}}}");
    is_str(s(m, "mode"), "replicated-job", "replicated-job mode");
    json_decref(m);
    m = map_text("{\"ID\":\"j2\",\"Spec\":{\"Name\":\"j\",\"Mode\":{\"GlobalJob\":{}}}}");
    is_str(s(m, "mode"), "global-job", "global-job mode");
    json_decref(m);
    m = map_text("{\"ID\":\"u\",\"Spec\":{\"Name\":\"u\",\"Mode\":{\"Weird\":{}},"
                 "\"Labels\":[1]},\"ServiceStatus\":\"x\",\"Version\":{\"Index\":\"1\"}}");
    ok(m != NULL && json_is_null(json_object_get(m, "mode")), "unknown mode -> null");
    ok(json_object_size(json_object_get(m, "labels")) == 0, "non-object labels -> {}");
    ok(json_is_null(json_object_get(m, "version_index")), "string Version.Index -> null");
    json_decref(m);

    json_decref(status);
    json_decref(plain);
    return tap_done();
}
