/* Metrics rounds on the docker thread (metrics.h has the document).
 *
 * A round lists the running tasks in one GET /tasks (desired-state running;
 * every service for a periodic round, one for sr_docker_collect_metrics),
 * keeps the cached services' ones, and GETs /containers/{id}/stats?stream=false
 * for each task on this node, all at once on the multi handle: the daemon
 * answers each after two of its ~1 s collection cycles, so N calls in
 * parallel cost about one call, N in a row N seconds. SR_DOCKER_STATS_FLIGHT
 * caps the calls in flight over all rounds (more wait for a free slot); each
 * has its own SR_DOCKER_STATS_TIMEOUT. A service's document is stored once
 * its last call answered: at once for a single-service round; for a periodic
 * round, with the others that are ready, in one cache commit at most every
 * SR_DOCKER_METRICS_BATCH seconds (and when the round ends). One commit per
 * service would rebuild the snapshot N times a round: N^2 for N services.
 *
 * Periodic rounds never overlap: the next one is armed when one ends, for
 * metrics_sec after it began (at once if it took longer). Requests for the
 * same service that arrive before its task list came back share a round. */
#include <event2/event.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/docker/client.h"
#include "adapters/docker/docker_internal.h"
#include "adapters/docker/metrics.h"
#include "cache/log.h"
#include "cache/util.h"

#define LOGGER "docker"

struct call {
    struct sr_docker__round *r;
    size_t task, svc;
    struct sr_http_req *req;
};

struct rsvc {
    struct sr_svc *svc; /* a reference taken at listing time */
    size_t first, n;    /* its tasks in round->tasks */
    size_t left;        /* stats calls not answered */
    json_t *errors;
};

struct sr_docker__round {
    struct sr_docker *d;
    struct sr_docker__round *next;
    bool full;
    char service_id[72];                    /* single-service round */
    struct sr_docker__collect_req *waiters; /* single-service round: to answer */
    struct sr_http_req *tasks_req;
    bool listed; /* the task list came back and was applied */
    double t0;   /* sr_mono() at start */
    struct sr_metrics_task *tasks;
    struct call *calls;             /* one per task */
    size_t ntasks, next_task, left; /* next_task: next one to start */
    struct rsvc *svcs;
    size_t nsvcs;
    size_t sampled, errors;
    int status; /* single-service round: what the waiters get */
    /* Periodic round: documents waiting for the next batch commit. */
    struct sr_metrics_item *batch;
    size_t nbatch, batch_cap;
    struct event *batch_timer;
    double batch_last; /* sr_mono() of the last commit */
};

static struct timeval tv_of(double sec)
{
    if (sec < 0)
        sec = 0;
    struct timeval tv = {.tv_sec = (time_t)sec,
                         .tv_usec = (suseconds_t)((sec - (double)(time_t)sec) * 1e6)};
    return tv;
}

void sr_docker__collect_answer(struct sr_docker__collect_req *list, int status)
{
    while (list != NULL) {
        struct sr_docker__collect_req *next = list->next;
        if (list->cb != NULL)
            list->cb(status, list->arg);
        free(list);
        list = next;
    }
}

static void round_free(struct sr_docker__round *r)
{
    for (size_t i = 0; i < r->nbatch; i++) /* not stored: Docker went away */
        json_decref(r->batch[i].doc);
    free(r->batch);
    if (r->batch_timer != NULL)
        event_free(r->batch_timer);
    for (size_t i = 0; i < r->nsvcs; i++) {
        sr_svc_release(r->svcs[i].svc);
        json_decref(r->svcs[i].errors);
    }
    free(r->svcs);
    free(r->tasks);
    free(r->calls);
    free(r);
}

static void arm_next(struct sr_docker *d, double delay)
{
    struct timeval tv = tv_of(delay);
    evtimer_add(d->metrics_timer, &tv);
}

/* A periodic round could not list the tasks: log once per reason. */
static void full_failed(struct sr_docker *d, const char *why)
{
    if (strcmp(why, d->metrics_error) != 0)
        sr_log(SR_LOG_WARNING, LOGGER, "metrics round failed: %s (next in %u s)", why,
               d->metrics_sec);
    else
        sr_log(SR_LOG_DEBUG, LOGGER, "metrics round failed: %s", why);
    snprintf(d->metrics_error, sizeof(d->metrics_error), "%s", why);
}

/* Stores a periodic round's waiting documents in one commit. The entries
 * their service ids point into are the round's own references. */
static void batch_commit(struct sr_docker__round *r)
{
    if (r->batch_timer != NULL)
        evtimer_del(r->batch_timer);
    r->batch_last = sr_mono();
    if (r->nbatch == 0)
        return;
    /* An id the cache no longer holds: that service left meanwhile, and its
     * metrics go with it. */
    sr_cache_set_metrics_batch(r->d->cache, r->batch, r->nbatch);
    r->nbatch = 0;
}

static void on_batch_timer(int fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    batch_commit(arg);
}

static void batch_add(struct sr_docker__round *r, const char *service_id, json_t *doc)
{
    if (r->nbatch == r->batch_cap) {
        r->batch_cap = r->batch_cap ? r->batch_cap * 2 : 16;
        r->batch = sr_realloc(r->batch, r->batch_cap * sizeof(*r->batch));
    }
    r->batch[r->nbatch++] = (struct sr_metrics_item){.service_id = service_id, .doc = doc};
    if (r->batch_timer == NULL)
        r->batch_timer = evtimer_new(r->d->base, on_batch_timer, r);
    if (!evtimer_pending(r->batch_timer, NULL)) {
        /* Whatever else is ready by then shares the commit. */
        struct timeval tv = tv_of(r->batch_last + SR_DOCKER_METRICS_BATCH - sr_mono());
        evtimer_add(r->batch_timer, &tv);
    }
}

/* Ends a round that has been unlinked from d->rounds. */
static void round_end(struct sr_docker__round *r, const char *failure)
{
    struct sr_docker *d = r->d;
    double ms = (sr_mono() - r->t0) * 1000.0;
    if (r->full) {
        batch_commit(r);
        d->full_round = false;
        if (failure != NULL) {
            full_failed(d, failure);
        } else {
            if (d->metrics_error[0])
                sr_log(SR_LOG_INFO, LOGGER, "metrics rounds work again");
            d->metrics_error[0] = '\0';
            sr_log(SR_LOG_INFO, LOGGER,
                   "metrics round: %zu containers in %.0f ms (%zu services, %zu tasks, %zu errors)",
                   r->sampled, ms, r->nsvcs, r->ntasks, r->errors);
        }
        arm_next(d, (double)d->metrics_sec - ms / 1000.0);
    } else {
        if (failure != NULL) {
            r->status = -1;
            sr_log(SR_LOG_WARNING, LOGGER, "metrics of service %s: %s", r->service_id, failure);
        } else {
            sr_log(SR_LOG_DEBUG, LOGGER, "metrics of service %s: %zu containers in %.0f ms%s",
                   r->service_id, r->sampled, ms,
                   r->status == 0 ? "" : " (service left the cache)");
        }
        struct sr_docker__collect_req *w = r->waiters;
        r->waiters = NULL;
        sr_docker__collect_answer(w, r->status);
    }
    round_free(r);
}

static void unlink_round(struct sr_docker *d, struct sr_docker__round *r)
{
    struct sr_docker__round **p = &d->rounds;
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    r->next = NULL;
}

/* ---- stats calls ------------------------------------------------------------- */

static void store_svc(struct sr_docker__round *r, struct rsvc *s)
{
    struct sr_metrics_input in = {
        .service = sr_svc_doc(s->svc),
        .tasks = r->tasks + s->first,
        .ntasks = s->n,
        .errors = s->errors,
        .sample_time = sr_now(),
        .interval_sec = r->d->metrics_sec,
    };
    for (size_t i = 0; i < s->n; i++)
        r->sampled += in.tasks[i].state == SR_METRICS_SAMPLED;
    json_t *doc = sr_metrics_build(&in);
    if (r->full && doc != NULL) {
        batch_add(r, sr_svc_id(s->svc), doc);
        return;
    }
    /* A periodic round's waiting documents are older than this one: store
     * them first, so they cannot land on top of it. */
    for (struct sr_docker__round *o = r->d->rounds; o != NULL; o = o->next)
        if (o->full && o->nbatch > 0)
            batch_commit(o);
    /* 0: the service left the cache meanwhile; its metrics go with it. */
    if (doc == NULL || sr_cache_set_metrics(r->d->cache, sr_svc_id(s->svc), doc) != 1)
        r->status = -1;
}

static void task_finished(struct sr_docker__round *r, size_t svc)
{
    struct rsvc *s = &r->svcs[svc];
    r->left--;
    if (--s->left == 0)
        store_svc(r, s);
}

static void add_error(struct sr_docker__round *r, size_t svc, const char *container,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_error(struct sr_docker__round *r, size_t svc, const char *container,
                      const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[340];
    snprintf(line, sizeof(line), "container %.12s: %s", container, msg);
    json_array_append_new(r->svcs[svc].errors, sr_json_text(line));
    r->errors++;
    sr_log(SR_LOG_DEBUG, LOGGER, "metrics of service %s: %s", sr_svc_name(r->svcs[svc].svc), line);
}

static void progress(struct sr_docker *d);

static void on_stats(const struct sr_http_result *res, void *arg)
{
    struct call *c = arg;
    struct sr_docker__round *r = c->r;
    struct sr_docker *d = r->d;
    struct sr_metrics_task *t = &r->tasks[c->task];
    c->req = NULL;
    d->stats_flight--;
    if (!res->transport_ok) {
        t->state = SR_METRICS_FAILED;
        add_error(r, c->svc, t->container_id, "%s", res->error);
    } else if (res->status == 404) {
        t->state = SR_METRICS_GONE; /* removed since the task list: not an error */
    } else if (res->status != 200) {
        char msg[200];
        sr_docker__error_text(res->body, res->len, msg, sizeof(msg));
        t->state = SR_METRICS_FAILED;
        add_error(r, c->svc, t->container_id, "HTTP %ld: %s", res->status, msg);
    } else {
        json_t *o = json_loadb(res->body, res->len, JSON_ALLOW_NUL, NULL);
        if (json_is_object(o)) {
            sr_metrics_set_stats(t, o);
        } else {
            t->state = SR_METRICS_FAILED;
            add_error(r, c->svc, t->container_id, "stats answer is not a JSON object");
        }
        json_decref(o);
    }
    task_finished(r, c->svc);
    progress(d);
}

/* Starts calls while slots are free, oldest round first. Never ends a
 * round itself (a failed start only finishes its task). */
static void pump(struct sr_docker *d)
{
    for (struct sr_docker__round *r = d->rounds; r != NULL; r = r->next) {
        while (r->listed && r->next_task < r->ntasks && d->stats_flight < SR_DOCKER_STATS_FLIGHT) {
            size_t i = r->next_task++;
            struct sr_metrics_task *t = &r->tasks[i];
            if (t->state != SR_METRICS_PENDING)
                continue;
            char path[160];
            snprintf(path, sizeof(path), "/v%s/containers/%s/stats?stream=false", d->api,
                     t->container_id);
            struct call *c = &r->calls[i];
            c->req = d->http != NULL
                         ? sr_http_get_timeout(d->http, path, SR_DOCKER_STATS_TIMEOUT, on_stats, c)
                         : NULL;
            if (c->req == NULL) {
                t->state = SR_METRICS_FAILED;
                add_error(r, c->svc, t->container_id, "could not start GET %s", path);
                task_finished(r, c->svc);
                continue;
            }
            d->stats_flight++;
        }
    }
}

/* Starts what can start, then ends the rounds that are complete. */
static void progress(struct sr_docker *d)
{
    pump(d);
    struct sr_docker__round **p = &d->rounds;
    while (*p != NULL) {
        struct sr_docker__round *r = *p;
        if (r->listed && r->left == 0) {
            *p = r->next;
            round_end(r, NULL);
        } else {
            p = &r->next;
        }
    }
}

/* ---- the task list ------------------------------------------------------------ */

/* First index in the sorted tasks whose service id is >= id. */
static size_t lower_bound(const struct sr_metrics_task *v, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid].service_id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Takes the cached services (all, or the round's one) and their tasks out of
 * the full list. Returns 0, or -1 when a single round's service is gone. */
static int apply_tasks(struct sr_docker__round *r, struct sr_metrics_task *all, size_t nall)
{
    struct sr_snapshot *snap = sr_cache_acquire(r->d->cache);
    size_t nsvc = r->full ? sr_snapshot_count(snap) : 1;
    r->svcs = sr_calloc(nsvc ? nsvc : 1, sizeof(*r->svcs));
    r->tasks = sr_calloc(nall ? nall : 1, sizeof(*r->tasks));
    for (size_t i = 0; i < nsvc; i++) {
        const struct sr_svc *svc =
            r->full ? sr_snapshot_at(snap, i) : sr_snapshot_find_id(snap, r->service_id);
        if (svc == NULL)
            break;
        struct rsvc *s = &r->svcs[r->nsvcs++];
        /* Entries are immutable and refcounted: keeping one past the
         * snapshot is what incref is for. */
        s->svc = sr_svc_incref((struct sr_svc *)svc);
        s->errors = json_array();
        s->first = r->ntasks;
        size_t j = lower_bound(all, nall, sr_svc_id(svc));
        for (; j < nall && strcmp(all[j].service_id, sr_svc_id(svc)) == 0; j++)
            r->tasks[r->ntasks++] = all[j];
        s->n = r->ntasks - s->first;
    }
    sr_snapshot_release(snap);
    if (!r->full && r->nsvcs == 0)
        return -1;
    r->calls = sr_calloc(r->ntasks ? r->ntasks : 1, sizeof(*r->calls));
    for (size_t i = 0; i < r->nsvcs; i++) {
        struct rsvc *s = &r->svcs[i];
        for (size_t k = s->first; k < s->first + s->n; k++) {
            r->calls[k].r = r;
            r->calls[k].task = k;
            r->calls[k].svc = i;
            if (r->tasks[k].state == SR_METRICS_PENDING) {
                s->left++;
                r->left++;
            }
        }
        if (s->left == 0)
            store_svc(r, s); /* nothing to sample here: store the empty sample now */
    }
    r->listed = true;
    return 0;
}

static void on_tasks(const struct sr_http_result *res, void *arg)
{
    struct sr_docker__round *r = arg;
    struct sr_docker *d = r->d;
    r->tasks_req = NULL;
    char why[300] = "";
    json_t *arr = NULL;
    if (!res->transport_ok) {
        snprintf(why, sizeof(why), "GET /tasks: %s", res->error);
    } else if (res->status != 200) {
        char msg[200];
        sr_docker__error_text(res->body, res->len, msg, sizeof(msg));
        snprintf(why, sizeof(why), "GET /tasks answered HTTP %ld: %s", res->status, msg);
    } else {
        arr = json_loadb(res->body, res->len, JSON_ALLOW_NUL, NULL);
        if (!json_is_array(arr))
            snprintf(why, sizeof(why), "GET /tasks: not a JSON array");
    }
    if (why[0] == '\0') {
        struct sr_metrics_task *all = NULL;
        long n = sr_metrics_tasks(arr, d->node_id, r->full ? NULL : r->service_id, &all);
        if (apply_tasks(r, all, n > 0 ? (size_t)n : 0) != 0)
            snprintf(why, sizeof(why), "no longer cached");
        free(all);
    }
    json_decref(arr);
    if (why[0] != '\0') {
        unlink_round(d, r);
        round_end(r, why);
        return;
    }
    progress(d);
}

/* Starts a round; on failure ends it (answering its waiters). */
static void round_start(struct sr_docker *d, struct sr_docker__round *r)
{
    r->d = d;
    r->t0 = sr_mono();
    if (d->http == NULL || d->api[0] == '\0') {
        round_end(r, "Docker not connected yet");
        return;
    }
    json_t *f =
        r->full ? json_pack("{s:[s]}", "desired-state", "running")
                : json_pack("{s:[s], s:[s]}", "desired-state", "running", "service", r->service_id);
    char *text = json_dumps(f, JSON_COMPACT);
    char *filters = sr_http_escape(text);
    char path[512];
    snprintf(path, sizeof(path), "/v%s/tasks?filters=%s", d->api, filters);
    free(filters);
    free(text);
    json_decref(f);
    r->tasks_req = sr_http_get(d->http, path, on_tasks, r);
    if (r->tasks_req == NULL) {
        round_end(r, "could not start GET /tasks");
        return;
    }
    /* Appended, so older rounds get stats slots first. */
    struct sr_docker__round **p = &d->rounds;
    while (*p != NULL)
        p = &(*p)->next;
    *p = r;
}

/* ---- periodic rounds and requests ------------------------------------------- */

void sr_docker__on_metrics_timer(int fd, short kind, void *arg)
{
    struct sr_docker *d = arg;
    (void)fd;
    (void)kind;
    if (d->full_round)
        return; /* re-armed when it ends */
    struct sr_snapshot *snap = sr_cache_acquire(d->cache);
    size_t n = sr_snapshot_count(snap);
    sr_snapshot_release(snap);
    if (n == 0) { /* nothing to measure: no need to ask Docker */
        arm_next(d, d->metrics_sec);
        return;
    }
    struct sr_docker__round *r = sr_calloc(1, sizeof(*r));
    r->full = true;
    d->full_round = true;
    round_start(d, r);
}

void sr_docker__metrics_synced(struct sr_docker *d)
{
    if (d->metrics_begun)
        return;
    d->metrics_begun = true;
    arm_next(d, 0);
}

void sr_docker__metrics_requests(struct sr_docker *d, struct sr_docker__collect_req *list)
{
    while (list != NULL) {
        struct sr_docker__collect_req *q = list;
        list = q->next;
        q->next = NULL;
        /* Not listed yet: the stats calls have not started, so its numbers
         * are as fresh as a new round's. */
        struct sr_docker__round *r;
        for (r = d->rounds; r != NULL; r = r->next)
            if (!r->full && !r->listed && strcmp(r->service_id, q->service_id) == 0)
                break;
        if (r != NULL) {
            q->next = r->waiters;
            r->waiters = q;
            continue;
        }
        struct sr_snapshot *snap = sr_cache_acquire(d->cache);
        bool known = sr_snapshot_find_id(snap, q->service_id) != NULL;
        sr_snapshot_release(snap);
        if (!known) {
            sr_log(SR_LOG_DEBUG, LOGGER, "metrics of service %s: not cached", q->service_id);
            sr_docker__collect_answer(q, -1);
            continue;
        }
        r = sr_calloc(1, sizeof(*r));
        snprintf(r->service_id, sizeof(r->service_id), "%s", q->service_id);
        r->waiters = q;
        round_start(d, r);
    }
}

int sr_docker_collect_metrics(struct sr_docker *d, const char *service_id, sr_docker_done_cb cb,
                              void *arg)
{
    if (d == NULL || service_id == NULL || service_id[0] == '\0')
        return -1;
    struct sr_docker__collect_req *q = sr_calloc(1, sizeof(*q));
    if ((size_t)snprintf(q->service_id, sizeof(q->service_id), "%s", service_id) >=
        sizeof(q->service_id)) {
        free(q); /* no Docker id is this long */
        return -1;
    }
    q->cb = cb;
    q->arg = arg;
    if (!sr_docker__queue_lock(d)) {
        free(q);
        return -1;
    }
    q->next = d->mqueue;
    d->mqueue = q;
    sr_docker__queue_wake_unlock(d);
    return 0;
}

void sr_docker__metrics_teardown(struct sr_docker *d)
{
    /* The transfers went with sr_http_free. */
    while (d->rounds != NULL) {
        struct sr_docker__round *r = d->rounds;
        d->rounds = r->next;
        struct sr_docker__collect_req *w = r->waiters;
        r->waiters = NULL;
        round_free(r);
        sr_docker__collect_answer(w, -1);
    }
    d->stats_flight = 0;
    d->full_round = false;
    pthread_mutex_lock(&d->mu);
    struct sr_docker__collect_req *q = d->mqueue;
    d->mqueue = NULL;
    pthread_mutex_unlock(&d->mu);
    sr_docker__collect_answer(q, -1);
}
