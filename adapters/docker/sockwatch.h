/* Tells the docker thread when a unix socket file (re)appears, so a
 * restarted daemon is retried at once instead of at the end of a backoff
 * that may have grown to 30 s. Linux inotify on the socket's directory, read
 * from the owning event base. Internal to adapters/docker. */
#ifndef SR_DOCKER_SOCKWATCH_H
#define SR_DOCKER_SOCKWATCH_H

struct event_base;
struct sr_sockwatch;

typedef void (*sr_sockwatch_cb)(void *arg);

/* Watches `path` (copied). Returns NULL when inotify is unavailable (then
 * the caller just relies on its backoff). Base's thread only. */
struct sr_sockwatch *sr_sockwatch_new(struct event_base *base, const char *path, sr_sockwatch_cb cb,
                                      void *arg);
void sr_sockwatch_free(struct sr_sockwatch *w); /* NULL ok */

#endif
