/* Docker JSON -> the registry's service representation. Pure, any thread. */
#ifndef SR_DOCKER_MAP_H
#define SR_DOCKER_MAP_H

#include <jansson.h>

/* Maps one element of GET /services (with status=true) into the API's
 * service object (new reference), or NULL when the element lacks an ID or
 * Spec.Name. Shape (documented in README):
 * {"id","name","image","mode","replicas":{"desired","running"},"labels":{},
 *  "stack","created_at","updated_at","version_index",
 *  "autoscaler":{"enabled","metric","cpu_threshold","memory_threshold",
 *                "min_replicas","max_replicas"},
 *  "config_errors":[...]} */
json_t *sr_docker_map_service(const json_t *svc);

#endif
