/* Event classification. Service labels are not in service events (NOTES §5),
 * so every service event means "re-GET that service"; container events only
 * matter when they change a task's running state: start and die (a kill,
 * stop, OOM or failed health check that ends the container ends in a die;
 * the Engine sends no task events), and destroy, which follows a die. */
#include "adapters/docker/event.h"

#include <jansson.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static void copy(char *dst, size_t size, const json_t *v)
{
    snprintf(dst, size, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static int is_one_of(const char *s, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(s, *set) == 0)
            return 1;
    return 0;
}

int sr_docker__event_parse(const char *line, size_t len, struct sr_docker_event *ev, char *err,
                           size_t errlen)
{
    static const char *const svc_actions[] = {"create", "update", "remove", NULL};
    static const char *const task_actions[] = {"start", "die", "destroy", NULL};
    json_error_t jerr;
    memset(ev, 0, sizeof(*ev));
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (o == NULL) {
        snprintf(err, errlen, "invalid JSON: %s", jerr.text);
        return -1;
    }
    const json_t *type = json_object_get(o, "Type");
    const json_t *action = json_object_get(o, "Action");
    if (!json_is_object(o) || !json_is_string(type) || !json_is_string(action)) {
        snprintf(err, errlen, "not an event object (no Type/Action)");
        json_decref(o);
        return -1;
    }
    const json_t *actor = json_object_get(o, "Actor");
    const json_t *id = json_object_get(actor, "ID");
    copy(ev->type, sizeof(ev->type), type);
    copy(ev->action, sizeof(ev->action), action);
    copy(ev->actor_id, sizeof(ev->actor_id), id);

    const json_t *tn = json_object_get(o, "timeNano"), *t = json_object_get(o, "time");
    if (json_is_integer(tn))
        ev->time_nano = (int64_t)json_integer_value(tn);
    else if (json_is_integer(t)) {
        /* Seconds to ns, saturating: a garbage "time" must not overflow. */
        json_int_t sec = json_integer_value(t);
        const json_int_t lim = INT64_MAX / 1000000000;
        ev->time_nano = sec > lim ? INT64_MAX : sec < -lim ? INT64_MIN : (int64_t)sec * 1000000000;
    }

    const char *ty = json_string_value(type), *ac = json_string_value(action);
    /* An ID that does not fit is not a Docker ID: never act on a prefix. */
    if (strcmp(ty, "service") == 0 && is_one_of(ac, svc_actions) && json_is_string(id) &&
        json_string_length(id) > 0 && json_string_length(id) < sizeof(ev->service_id)) {
        ev->kind = SR_DOCKER_EVENT_SERVICE;
        copy(ev->service_id, sizeof(ev->service_id), id);
    } else if (strcmp(ty, "container") == 0 && is_one_of(ac, task_actions)) {
        const json_t *sid =
            json_object_get(json_object_get(actor, "Attributes"), "com.docker.swarm.service.id");
        if (json_is_string(sid) && json_string_length(sid) > 0 &&
            json_string_length(sid) < sizeof(ev->service_id)) {
            ev->kind = SR_DOCKER_EVENT_TASK;
            copy(ev->service_id, sizeof(ev->service_id), sid);
        }
    } else if (strcmp(ty, "node") == 0) {
        ev->kind = SR_DOCKER_EVENT_NODE;
    }
    json_decref(o);
    return 0;
}
