#include "tests/fuzz/fixture.h"

#include <jansson.h>

uint64_t sr_fuzz_fill(struct sr_cache *cache)
{
    struct sr_svc *v[3] = {
        sr_svc_new(json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:{s:b, s:s}, s:[]}", "id", "id-web",
                             "name", "web", "image", "nginx:1", "labels", "autoscaler.enabled",
                             "true", "tier", "front", "stack", "shop", "autoscaler", "enabled", 1,
                             "metric", "cpu", "config_errors")),
        sr_svc_new(json_pack("{s:s, s:s, s:s, s:{s:s}, s:n, s:[s]}", "id", "id-db", "name", "db",
                             "image", "pg:15", "labels", "autoscaler.metric", "memory", "stack",
                             "config_errors", "autoscaler.max: not a number")),
        sr_svc_new(json_pack("{s:s, s:s, s:s, s:{s:s}}", "id", "id-\xc3\xa9", "name",
                             "caf\xc3\xa9.x", "image", "x", "labels", "autoscaler.metrics.port",
                             "9100")),
    };
    sr_cache_replace(cache, v, 3, NULL);
    sr_cache_set_metrics(cache, "id-web",
                         json_pack("{s:s, s:f, s:i, s:[]}", "service", "web", "sample_time",
                                   1700000000.5, "containers_sampled", 0, "containers"));
    return sr_cache_version(cache);
}
