/* autoscaler.* label parsing: defaults, valid values, every bad value (falls
 * back, and says so in config_errors), min > max, non-string values,
 * sr_docker_check_url, and which /metrics endpoint a Docker API path counts
 * under. */
#include "adapters/docker/docker.h"
#include "adapters/docker/labels.h"
#include "adapters/docker/url.h"
#include "tests/unit/tap.h"

/* Parses a labels object given as JSON text. */
static json_t *parse(const char *labels_json, struct sr_autoscale *a)
{
    json_t *labels = labels_json ? json_loads(labels_json, 0, NULL) : NULL;
    json_t *errors = json_array();
    memset(a, 0x5a, sizeof(*a)); /* garbage: every field must be written */
    sr_labels_parse(labels, a, errors);
    json_decref(labels);
    return errors;
}

static const json_t *err_for(const json_t *errors, const char *label)
{
    size_t i;
    const json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "label")), label) == 0)
            return e;
    }
    return NULL;
}

static void check_defaults(const struct sr_autoscale *a, const char *what)
{
    char name[160];
    snprintf(name, sizeof(name), "%s: defaults", what);
    ok(!a->enabled && a->metric == SR_METRIC_CPU && a->cpu_threshold == 70 &&
           a->memory_threshold == 70 && a->min_replicas == 1 && a->max_replicas == 2,
       name);
}

/* One bad value: default used, and exactly one entry with these contents. */
static void bad(const char *label, const char *labels_json, const char *want_value,
                const char *used_json)
{
    struct sr_autoscale a;
    json_t *errors = parse(labels_json, &a);
    char name[256];
    const json_t *e = err_for(errors, label);
    snprintf(name, sizeof(name), "%s: one config error", labels_json);
    is_int(json_array_size(errors), 1, name);
    snprintf(name, sizeof(name), "%s: entry names %s", labels_json, label);
    ok(e != NULL, name);
    snprintf(name, sizeof(name), "%s: entry value", labels_json);
    is_str(json_string_value(json_object_get(e, "value")), want_value, name);
    snprintf(name, sizeof(name), "%s: entry has an error text", labels_json);
    ok(json_is_string(json_object_get(e, "error")) &&
           json_string_length(json_object_get(e, "error")) > 5,
       name);
    json_t *want_used = json_loads(used_json, JSON_DECODE_ANY, NULL);
    snprintf(name, sizeof(name), "%s: used %s", labels_json, used_json);
    ok(json_equal(json_object_get(e, "used"), want_used), name);
    snprintf(name, sizeof(name), "%s: entry has exactly 4 keys", labels_json);
    is_int(json_object_size(e), 4, name);
    json_decref(want_used);
    json_decref(errors);
}

int main(void)
{
    struct sr_autoscale a;
    json_t *errors;

    /* ---- valid ---- */
    errors = parse("{\"autoscaler.enabled\":\"true\",\"autoscaler.metric\":\"memory\","
                   "\"autoscaler.cpu.threshold\":\"55\",\"autoscaler.memory.threshold\":\"80\","
                   "\"autoscaler.min\":\"2\",\"autoscaler.max\":\"9\",\"other\":\"x\"}",
                   &a);
    ok(a.enabled, "valid: enabled");
    is_int(a.metric, SR_METRIC_MEMORY, "valid: metric memory");
    is_int(a.cpu_threshold, 55, "valid: cpu threshold");
    is_int(a.memory_threshold, 80, "valid: memory threshold");
    is_int(a.min_replicas, 2, "valid: min");
    is_int(a.max_replicas, 9, "valid: max");
    is_int(json_array_size(errors), 0, "valid: no config errors");
    json_decref(errors);

    errors = parse("{\"autoscaler.enabled\":\"TRUE\",\"autoscaler.metric\":\"CPU\","
                   "\"autoscaler.cpu.threshold\":\"1\",\"autoscaler.memory.threshold\":\"100\","
                   "\"autoscaler.min\":\"0\",\"autoscaler.max\":\"1\"}",
                   &a);
    ok(a.enabled && a.metric == SR_METRIC_CPU, "case-insensitive true and CPU");
    ok(a.cpu_threshold == 1 && a.memory_threshold == 100, "thresholds at the bounds 1 and 100");
    ok(a.min_replicas == 0 && a.max_replicas == 1, "min 0, max 1 accepted");
    is_int(json_array_size(errors), 0, "bounds: no config errors");
    json_decref(errors);

    errors = parse("{\"autoscaler.min\":\"3\",\"autoscaler.max\":\"3\"}", &a);
    ok(a.min_replicas == 3 && a.max_replicas == 3 && json_array_size(errors) == 0,
       "min == max is fine");
    json_decref(errors);

    errors = parse("{\"autoscaler.enabled\":\"False\"}", &a);
    ok(!a.enabled && json_array_size(errors) == 0, "False: disabled, no error");
    json_decref(errors);

    /* ---- missing ---- */
    errors = parse(NULL, &a);
    check_defaults(&a, "NULL labels");
    is_int(json_array_size(errors), 0, "NULL labels: no errors");
    json_decref(errors);
    errors = parse("{}", &a);
    check_defaults(&a, "empty labels");
    json_decref(errors);
    errors = parse("[\"autoscaler.enabled=true\"]", &a);
    check_defaults(&a, "labels not an object");
    is_int(json_array_size(errors), 0, "labels not an object: no errors");
    json_decref(errors);
    errors = parse("{\"autoscaler.enabled\":\"true\"}", &a);
    ok(a.enabled && a.metric == SR_METRIC_CPU && a.cpu_threshold == 70 &&
           a.memory_threshold == 70 && a.min_replicas == 1 && a.max_replicas == 2,
       "only enabled: every other field is its default");
    json_decref(errors);

    /* ---- each bad value ---- */
    bad("autoscaler.max", "{\"autoscaler.max\":\"abc\"}", "abc", "2");
    bad("autoscaler.max", "{\"autoscaler.max\":\"0\"}", "0", "2");
    bad("autoscaler.max", "{\"autoscaler.max\":\"99999999999999999999\"}", "99999999999999999999",
        "2");
    bad("autoscaler.min", "{\"autoscaler.min\":\"-1\"}", "-1", "1");
    bad("autoscaler.min", "{\"autoscaler.min\":\"abc\"}", "abc", "1");
    bad("autoscaler.min", "{\"autoscaler.min\":\"\"}", "", "1");
    bad("autoscaler.min", "{\"autoscaler.min\":\" 1\"}", " 1", "1");
    bad("autoscaler.cpu.threshold", "{\"autoscaler.cpu.threshold\":\"0\"}", "0", "70");
    bad("autoscaler.cpu.threshold", "{\"autoscaler.cpu.threshold\":\"101\"}", "101", "70");
    bad("autoscaler.cpu.threshold", "{\"autoscaler.cpu.threshold\":\"55.5\"}", "55.5", "70");
    bad("autoscaler.cpu.threshold", "{\"autoscaler.cpu.threshold\":\"80%\"}", "80%", "70");
    bad("autoscaler.memory.threshold", "{\"autoscaler.memory.threshold\":\"150\"}", "150", "70");
    bad("autoscaler.memory.threshold", "{\"autoscaler.memory.threshold\":\"x\"}", "x", "70");
    bad("autoscaler.metric", "{\"autoscaler.metric\":\"disk\"}", "disk", "\"cpu\"");
    bad("autoscaler.metric", "{\"autoscaler.metric\":\"\"}", "", "\"cpu\"");
    bad("autoscaler.enabled", "{\"autoscaler.enabled\":\"yes\"}", "yes", "false");
    bad("autoscaler.enabled", "{\"autoscaler.enabled\":\"1\"}", "1", "false");
    /* plain integers: ASCII digits only, no sign */
    bad("autoscaler.cpu.threshold", "{\"autoscaler.cpu.threshold\":\"+50\"}", "+50", "70");
    bad("autoscaler.memory.threshold", "{\"autoscaler.memory.threshold\":\"+50\"}", "+50", "70");
    bad("autoscaler.max", "{\"autoscaler.max\":\"+3\"}", "+3", "2");
    bad("autoscaler.min", "{\"autoscaler.min\":\"+0\"}", "+0", "1");
    bad("autoscaler.min", "{\"autoscaler.min\":\"-0\"}", "-0", "1");

    /* the error states the real range */
    static const struct {
        const char *label, *labels_json, *error;
    } ranges[] = {
        {"autoscaler.min", "{\"autoscaler.min\":\"4294967297\"}",
         "must be an integer from 0 to 2147483647"},
        {"autoscaler.min", "{\"autoscaler.min\":\"-1\"}",
         "must be an integer from 0 to 2147483647"},
        {"autoscaler.max", "{\"autoscaler.max\":\"9007199254740993\"}",
         "must be an integer from 1 to 2147483647"},
        {"autoscaler.max", "{\"autoscaler.max\":\"0\"}", "must be an integer from 1 to 2147483647"},
        {"autoscaler.cpu.threshold", "{\"autoscaler.cpu.threshold\":\"+50\"}",
         "must be an integer from 1 to 100"},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        char name[200];
        errors = parse(ranges[i].labels_json, &a);
        snprintf(name, sizeof(name), "%s: error gives the range", ranges[i].labels_json);
        is_str(json_string_value(json_object_get(err_for(errors, ranges[i].label), "error")),
               ranges[i].error, name);
        json_decref(errors);
    }

    /* a bad field keeps the good ones */
    errors = parse("{\"autoscaler.enabled\":\"true\",\"autoscaler.max\":\"abc\","
                   "\"autoscaler.metric\":\"disk\",\"autoscaler.cpu.threshold\":\"150\","
                   "\"autoscaler.memory.threshold\":\"90\"}",
                   &a);
    ok(a.enabled && a.metric == SR_METRIC_CPU && a.cpu_threshold == 70 &&
           a.memory_threshold == 90 && a.max_replicas == 2,
       "several bad fields: each falls back, good ones kept");
    is_int(json_array_size(errors), 3, "several bad fields: three entries");
    is_str(json_string_value(json_object_get(json_array_get(errors, 0), "label")),
           "autoscaler.metric", "entries in label order (metric first)");
    is_str(json_string_value(json_object_get(json_array_get(errors, 2), "label")), "autoscaler.max",
           "entries in label order (max last)");
    json_decref(errors);

    /* ---- min > max ---- */
    errors = parse("{\"autoscaler.min\":\"5\",\"autoscaler.max\":\"2\"}", &a);
    is_int(a.min_replicas, 5, "min > max: min kept");
    is_int(a.max_replicas, 5, "min > max: max raised to min");
    is_int(json_array_size(errors), 1, "min > max: one entry");
    const json_t *e = err_for(errors, "autoscaler.max");
    ok(e != NULL, "min > max: entry on autoscaler.max");
    is_str(json_string_value(json_object_get(e, "value")), "2", "min > max: raw value 2");
    is_int(json_integer_value(json_object_get(e, "used")), 5, "min > max: used 5");
    ok(strstr(json_string_value(json_object_get(e, "error")), "autoscaler.min") != NULL,
       "min > max: error mentions autoscaler.min");
    json_decref(errors);

    errors = parse("{\"autoscaler.min\":\"3\"}", &a);
    ok(a.min_replicas == 3 && a.max_replicas == 3, "min 3 with default max: max raised to 3");
    e = err_for(errors, "autoscaler.max");
    ok(e != NULL && json_is_null(json_object_get(e, "value")),
       "min above the default max: entry with value null");
    json_decref(errors);

    errors = parse("{\"autoscaler.min\":\"4\",\"autoscaler.max\":\"x\"}", &a);
    ok(a.min_replicas == 4 && a.max_replicas == 4, "bad max and min 4: max ends at 4");
    is_int(json_array_size(errors), 1, "bad max and min 4: one entry for max");
    e = err_for(errors, "autoscaler.max");
    ok(e != NULL && json_integer_value(json_object_get(e, "used")) == 4,
       "bad max and min 4: used is the final value");
    is_str(json_string_value(json_object_get(e, "value")), "x", "bad max: raw value kept");
    json_decref(errors);

    /* ---- non-string values never crash ---- */
    errors = parse("{\"autoscaler.enabled\":true,\"autoscaler.max\":5,\"autoscaler.min\":null,"
                   "\"autoscaler.metric\":[\"cpu\"],\"autoscaler.cpu.threshold\":{\"a\":1},"
                   "\"autoscaler.memory.threshold\":1.5}",
                   &a);
    check_defaults(&a, "non-string values");
    is_int(json_array_size(errors), 6, "non-string values: one entry each");
    e = err_for(errors, "autoscaler.max");
    is_str(json_string_value(json_object_get(e, "value")), "5", "non-string value shown as JSON");
    e = err_for(errors, "autoscaler.enabled");
    is_str(json_string_value(json_object_get(e, "value")), "true", "bool value shown as JSON");
    ok(json_is_false(json_object_get(e, "used")), "bool value: used false");
    json_decref(errors);

    json_t *nul = json_object();
    json_object_set_new(nul, "autoscaler.enabled", json_stringn("true\0x", 6));
    errors = json_array();
    sr_labels_parse(nul, &a, errors);
    ok(!a.enabled && json_array_size(errors) == 1, "embedded NUL is not \"true\"");
    json_decref(errors);
    sr_labels_parse(nul, &a, NULL);
    ok(!a.enabled, "NULL errors array: parses, reports nothing");
    json_decref(nul);

    is_str(sr_metric_name(SR_METRIC_CPU), "cpu", "metric name cpu");
    is_str(sr_metric_name(SR_METRIC_MEMORY), "memory", "metric name memory");

    /* ---- sr_docker_check_url ---- */
    static const char *const good[] = {
        "unix:///var/run/docker.sock",
        "unix:///tmp/x.sock",
        "tcp://127.0.0.1:2375",
        "tcp://docker:2376",
        "http://localhost:2375",
        "http://127.0.0.1:2375/",
        "tcp://[::1]:2375",
        "tcp://host",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char err[256] = "";
        char name[200];
        snprintf(name, sizeof(name), "check_url accepts %s", good[i]);
        is_int(sr_docker_check_url(good[i], err, sizeof(err)), 0, name);
    }
    static const char *const badu[] = {
        "",
        "https://host:2376",
        "ftp://x",
        "/var/run/docker.sock",
        "unix://",
        "unix://relative.sock",
        "unix:///",
        "tcp://",
        "tcp://:2375",
        "tcp://host:0",
        "tcp://host:65536",
        "tcp://host:port",
        "tcp://host:2375/path",
        "http://user@host:2375",
        "http://host:2375?x=1",
        "unix:///"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
    };
    for (size_t i = 0; i < sizeof(badu) / sizeof(badu[0]); i++) {
        char err[256] = "";
        char name[300];
        int rc = sr_docker_check_url(badu[i], err, sizeof(err));
        snprintf(name, sizeof(name), "check_url rejects \"%.60s\"", badu[i]);
        is_int(rc, -1, name);
        snprintf(name, sizeof(name), "... with a one-line reason listing the schemes (%.60s)",
                 badu[i]);
        ok(strstr(err, "unix://") && strstr(err, "tcp://") && strstr(err, "http://") &&
               !strchr(err, '\n'),
           name);
    }
    ok(sr_docker_check_url(NULL, NULL, 0) == -1, "check_url(NULL) rejects without crashing");

    /* ---- sr_docker__call_kind: request paths -> /metrics endpoint label ---- */
    static const struct {
        const char *path;
        enum sr_source_call kind;
    } calls[] = {
        {"/_ping", SR_CALL_PING},
        {"/v1.41/version", SR_CALL_VERSION},
        {"/version", SR_CALL_VERSION},
        {"/v1.41/info", SR_CALL_INFO},
        {"/v1.41/services?filters=%7B%22label%22%3A%5B%22autoscaler.enabled%22%5D%7D&status=true",
         SR_CALL_SERVICES},
        {"/v1.41/services/abc", SR_CALL_SERVICES},
        {"/v1.41/tasks?filters=x", SR_CALL_TASKS},
        {"/v1.41/containers/0123abcd/stats?stream=false", SR_CALL_CONTAINER_STATS},
        {"/v1.41/containers/0123abcd/json", SR_CALL_OTHER},
        {"/v1.41/containers/0123abcd/statsx", SR_CALL_OTHER},
        {"/v1.41/events?filters=x&since=1.000000000", SR_CALL_EVENTS},
        {"/v1.41/servicesx", SR_CALL_OTHER},
        {"/v1.41/nodes", SR_CALL_OTHER},
        {"/vx/info", SR_CALL_OTHER},
        {"", SR_CALL_OTHER},
        {NULL, SR_CALL_OTHER},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        char name[200];
        snprintf(name, sizeof(name), "call kind of %.60s: %s", calls[i].path ? calls[i].path : "NULL",
                 sr_source_call_name(calls[i].kind));
        is_int(sr_docker__call_kind(calls[i].path), calls[i].kind, name);
    }
    is_str(sr_source_call_name(SR_CALL_CONTAINER_STATS), "container_stats", "call kind name");
    is_str(sr_source_call_name(SR_CALL_COUNT), "other", "out of range: other");
    return tap_done();
}
