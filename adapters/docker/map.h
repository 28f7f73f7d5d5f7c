/* Docker JSON -> the registry's service representation. Pure, any thread. */
#ifndef SR_DOCKER_MAP_H
#define SR_DOCKER_MAP_H

#include <jansson.h>

/* Maps one element of GET /services (with status=true) into the API's
 * service object (new reference), or NULL when the element lacks an ID or
 * Spec.Name (missing, empty or not a string). `svc` is borrowed and never
 * modified. Shape, keys always present and in this order (documented in
 * README):
 * {"id":          ID,
 *  "name":        Spec.Name,
 *  "image":       Spec.TaskTemplate.ContainerSpec.Image without "@sha256:..."
 *                 (the tag stays), or null,
 *  "mode":        "replicated"|"global"|"replicated-job"|"global-job", or null,
 *  "replicas":    {"desired": ServiceStatus.DesiredTasks, falling back to
 *                  Spec.Mode.Replicated.Replicas, else null;
 *                  "running": ServiceStatus.RunningTasks, else null},
 *  "labels":      Spec.Labels as is ({} when absent),
 *  "stack":       label com.docker.stack.namespace, or null,
 *  "created_at", "updated_at": Docker's RFC 3339 strings as is, or null,
 *  "version_index": Version.Index, or null,
 *  "autoscaler":  {"enabled","metric","cpu_threshold","memory_threshold",
 *                  "min_replicas","max_replicas"} (labels.h rules),
 *  "config_errors": [{"label","value","error","used"}...], [] when fine} */
json_t *sr_docker_map_service(const json_t *svc);

#endif
