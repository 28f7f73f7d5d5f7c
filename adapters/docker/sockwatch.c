/* inotify watch of one socket file, by name in its directory: dockerd
 * unlinks and re-creates the socket when it starts, which is the moment a
 * retry can succeed. */
#include "adapters/docker/sockwatch.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cache/log.h"
#include "cache/util.h"

struct sr_sockwatch {
    int fd;
    struct event *ev;
    char *name; /* the socket's file name in the watched directory */
    sr_sockwatch_cb cb;
    void *arg;
};

static void on_readable(evutil_socket_t fd, short kind, void *arg)
{
    struct sr_sockwatch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    (void)kind;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EAGAIN: drained */
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ie = (const struct inotify_event *)p;
            if (ie->len > 0 && strcmp(ie->name, w->name) == 0)
                hit = true;
            p += sizeof(*ie) + ie->len;
        }
    }
    if (hit)
        w->cb(w->arg);
}

struct sr_sockwatch *sr_sockwatch_new(struct event_base *base, const char *path, sr_sockwatch_cb cb,
                                      void *arg)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash[1] == '\0')
        return NULL;
    char *dir = slash == path ? sr_strdup("/") : sr_strndup(path, (size_t)(slash - path));
    struct sr_sockwatch *w = sr_calloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->name = sr_strdup(slash + 1);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || inotify_add_watch(w->fd, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
        sr_log(SR_LOG_DEBUG, "docker", "no inotify watch on %s: %s", dir, strerror(errno));
        goto fail;
    }
    w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0)
        goto fail;
    free(dir);
    return w;
fail:
    free(dir);
    sr_sockwatch_free(w);
    return NULL;
}

void sr_sockwatch_free(struct sr_sockwatch *w)
{
    if (w == NULL)
        return;
    if (w->ev != NULL)
        event_free(w->ev);
    if (w->fd >= 0)
        close(w->fd);
    free(w->name);
    free(w);
}
