/* One /events record -> what the registry must do about it. Pure, any
 * thread. Internal to adapters/docker. */
#ifndef SR_DOCKER_EVENT_H
#define SR_DOCKER_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum sr_docker_event_kind {
    SR_DOCKER_EVENT_OTHER = 0,   /* nothing to do (still counted) */
    SR_DOCKER_EVENT_SERVICE = 1, /* service create/update/remove: refresh service_id */
    SR_DOCKER_EVENT_TASK = 2,    /* container start/die/destroy of a swarm task:
                                    refresh service_id if it is cached (start
                                    and die: until the running count moves) */
    SR_DOCKER_EVENT_NODE = 3,    /* any node event: full resync (debounced) */
};

struct sr_docker_event {
    enum sr_docker_event_kind kind;
    int64_t time_nano;   /* timeNano, or time * 1e9; 0 when absent */
    char type[16];       /* Type, truncated */
    char action[48];     /* Action, truncated (exec_* carry a command) */
    char actor_id[72];   /* Actor.ID, truncated */
    char service_id[72]; /* the service to refresh, "" unless SERVICE/TASK */
};

/* Parses one line (not NUL-terminated). Returns 0 with *ev filled, or -1
 * with a short reason in err when the line is not a JSON object with string
 * Type and Action. */
int sr_docker__event_parse(const char *line, size_t len, struct sr_docker_event *ev, char *err,
                           size_t errlen);

#endif
