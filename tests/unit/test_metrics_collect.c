/* Metrics collection through the real adapter (thread, curl multi, cache)
 * against a fake Docker on a unix socket, for what the real engine cannot
 * produce on demand: stats calls answering 404, 500, garbage or zeros, tasks
 * on other nodes and of uncached services, many slow containers (calls must
 * run concurrently, at most SR_DOCKER_STATS_FLIGHT at once), requests sharing
 * a round, Docker going away, and stopping with a call in flight. */
#include <curl/curl.h>
#include <errno.h>
#include <event2/thread.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "adapters/docker/docker.h"
#include "adapters/docker/docker_internal.h"
#include "cache/cache.h"
#include "cache/log.h"
#include "tests/unit/tap.h"

#define NSLOW 70 /* more than SR_DOCKER_STATS_FLIGHT */

/* ---- the fake engine ------------------------------------------------------ */

static char sock_path[108];
static int listen_fd = -1;
static atomic_int down;       /* close every connection, refuse new ones */
static atomic_int hang;       /* c-hang's stats never answers */
static atomic_int tasks_reqs; /* GET /tasks seen */
static atomic_int hold_tasks; /* GET /tasks waits (up to 5 s) while set */
static atomic_int stats_now, stats_max;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *req_log; /* every request target, one a line */
static size_t req_log_len;

static void log_req(const char *target)
{
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(target);
    req_log = realloc(req_log, req_log_len + n + 2);
    memcpy(req_log + req_log_len, target, n);
    req_log_len += n;
    req_log[req_log_len++] = '\n';
    req_log[req_log_len] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static bool logged(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool yes = req_log != NULL && strstr(req_log, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return yes;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int respond(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     status, strlen(body));
    return send_all(fd, head, (size_t)n) == 0 && send_all(fd, body, strlen(body)) == 0 ? 0 : -1;
}

static const char *service_json(const char *id, const char *name, const char *extra_label)
{
    static __thread char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"ID\":\"%s\",\"Version\":{\"Index\":5},\"Spec\":{\"Name\":\"%s\",\"Labels\":{"
             "\"autoscaler.enabled\":\"true\"%s},\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":"
             "\"local/busybox:1\"}},\"Mode\":{\"Replicated\":{\"Replicas\":1}}},\"ServiceStatus\":{"
             "\"RunningTasks\":1,\"DesiredTasks\":1}}",
             id, name, extra_label);
    return buf;
}

static char *services_body(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fprintf(f, "[%s,", service_json("s1", "web", ",\"autoscaler.metric\":\"memory\""));
    fprintf(f, "%s,", service_json("s2", "empty", ""));
    fprintf(f, "%s,", service_json("s4", "slow", ""));
    fprintf(f, "%s]", service_json("s5", "hang", ""));
    fclose(f);
    return out;
}

static void task_json(FILE *f, const char *id, const char *svc, const char *node, int slot,
                      const char *state, const char *cid)
{
    fprintf(f,
            "{\"ID\":\"%s\",\"ServiceID\":\"%s\",\"NodeID\":\"%s\",\"Slot\":%d,\"DesiredState\":"
            "\"running\",\"Status\":{\"State\":\"%s\"",
            id, svc, node, slot, state);
    if (cid != NULL)
        fprintf(f, ",\"ContainerStatus\":{\"ContainerID\":\"%s\"}", cid);
    fprintf(f, "}},");
}

static char *tasks_body(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fputc('[', f);
    task_json(f, "t1", "s1", "me", 1, "running", "c-ok1");
    task_json(f, "t2", "s1", "me", 2, "running", "c-ok2");
    task_json(f, "t3", "s1", "me", 3, "running", "c-404");
    task_json(f, "t4", "s1", "me", 4, "running", "c-500");
    task_json(f, "t5", "s1", "me", 5, "running", "c-zero");
    task_json(f, "t6", "s1", "me", 6, "running", "c-garbage");
    task_json(f, "t7", "s1", "other", 7, "running", "c-remote");
    task_json(f, "t8", "s1", "me", 8, "preparing", NULL);
    task_json(f, "t9", "s3", "me", 1, "running", "c-uncached");
    task_json(f, "th", "s5", "me", 1, "running", "c-hang");
    for (int i = 0; i < NSLOW; i++) {
        char id[16], cid[16];
        snprintf(id, sizeof(id), "ts%02d", i);
        snprintf(cid, sizeof(cid), "c-slow%02d", i);
        task_json(f, id, "s4", "me", i + 1, "running", cid);
    }
    fseek(f, -1, SEEK_CUR); /* the last comma */
    fputc(']', f);
    fclose(f);
    return out;
}

/* CPU% = cpu / 1e9 * 2 * 100; memory = usage - total_inactive_file of 100 MiB. */
static void stats_body(char *buf, size_t len, long long cpu, long long usage, long long inactive)
{
    snprintf(
        buf, len,
        "{\"read\":\"2026-01-01T00:00:01Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":%lld},"
        "\"system_cpu_usage\":%lld,\"online_cpus\":2},\"precpu_stats\":{\"cpu_usage\":{"
        "\"total_usage\":1000000000},\"system_cpu_usage\":500000000000,\"online_cpus\":2},"
        "\"memory_stats\":{\"usage\":%lld,\"limit\":104857600,\"stats\":{"
        "\"total_inactive_file\":%lld}},\"pids_stats\":{\"current\":1}}",
        1000000000LL + cpu, 501000000000LL, usage, inactive);
}

static int serve_stats(int fd, const char *cid)
{
    char body[1024];
    const long long MiB = 1048576;
    if (strcmp(cid, "c-ok1") == 0) {
        stats_body(body, sizeof(body), 300000000, 50 * MiB, 10 * MiB); /* 60 %, 40 MiB */
        return respond(fd, 200, body);
    }
    if (strcmp(cid, "c-ok2") == 0) {
        stats_body(body, sizeof(body), 450000000, 30 * MiB, 0); /* 90 %, 30 MiB */
        return respond(fd, 200, body);
    }
    if (strcmp(cid, "c-404") == 0)
        return respond(fd, 404, "{\"message\":\"No such container: c-404\"}");
    if (strcmp(cid, "c-500") == 0)
        return respond(fd, 500, "{\"message\":\"boom\"}");
    if (strcmp(cid, "c-zero") == 0)
        return respond(fd, 200,
                       "{\"read\":\"0001-01-01T00:00:00Z\",\"cpu_stats\":{\"cpu_usage\":{"
                       "\"total_usage\":0}},\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":0}},"
                       "\"memory_stats\":{},\"id\":\"c-zero\"}");
    if (strcmp(cid, "c-garbage") == 0)
        return respond(fd, 200, "not json at all");
    if (strcmp(cid, "c-hang") == 0 && hang) {
        while (!down)
            sleep_ms(20);
        return -1;
    }
    if (strncmp(cid, "c-slow", 6) == 0) {
        int now = atomic_fetch_add(&stats_now, 1) + 1;
        int max = atomic_load(&stats_max);
        while (now > max && !atomic_compare_exchange_weak(&stats_max, &max, now))
            ;
        sleep_ms(500);
        atomic_fetch_sub(&stats_now, 1);
    }
    stats_body(body, sizeof(body), 10000000, 2 * MiB, 0); /* 2 %, 2 MiB */
    return respond(fd, 200, body);
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192];
    size_t have = 0;
    while (!down) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end == NULL) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 50) <= 0)
                continue;
            ssize_t r = recv(fd, buf + have, sizeof(buf) - have - 1, 0);
            if (r <= 0)
                break;
            have += (size_t)r;
            continue;
        }
        size_t used = (size_t)(end + 4 - buf);
        char target[2048] = "";
        sscanf(buf, "GET %2047s", target);
        memmove(buf, buf + used, have - used);
        have -= used;
        log_req(target);
        char *path = target;
        if (strncmp(path, "/v1.41", 6) == 0)
            path += 6;
        int rc;
        if (strcmp(path, "/_ping") == 0) {
            rc = respond(fd, 200, "OK");
        } else if (strcmp(path, "/version") == 0) {
            rc = respond(fd, 200, "{\"Version\":\"fake\",\"ApiVersion\":\"1.41\"}");
        } else if (strcmp(path, "/info") == 0) {
            rc = respond(fd, 200,
                         "{\"Swarm\":{\"NodeID\":\"me\",\"LocalNodeState\":\"active\","
                         "\"ControlAvailable\":true}}");
        } else if (strncmp(path, "/services?", 10) == 0) {
            char *b = services_body();
            rc = respond(fd, 200, b);
            free(b);
        } else if (strncmp(path, "/events", 7) == 0) {
            const char *h = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: "
                            "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            send_all(fd, h, strlen(h));
            while (!down)
                sleep_ms(20);
            break;
        } else if (strncmp(path, "/tasks?", 7) == 0) {
            atomic_fetch_add(&tasks_reqs, 1);
            for (int i = 0; i < 1000 && atomic_load(&hold_tasks); i++)
                sleep_ms(5);
            char *b = tasks_body();
            rc = respond(fd, 200, b);
            free(b);
        } else if (strncmp(path, "/containers/", 12) == 0) {
            char cid[64] = "";
            sscanf(path + 12, "%63[^/]", cid);
            rc = serve_stats(fd, cid);
        } else {
            rc = respond(fd, 404, "{\"message\":\"page not found\"}");
        }
        if (rc != 0)
            break;
    }
    close(fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    (void)arg;
    while (!down) {
        struct pollfd p = {.fd = listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, conn_main, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&a);
    }
    close(listen_fd);
    return NULL;
}

static pthread_t fake_start(void)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/sr-metrics-test-%d.sock", (int)getpid());
    unlink(sock_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(listen_fd, 256) != 0) {
        perror("fake docker");
        exit(1);
    }
    pthread_t t;
    pthread_create(&t, NULL, accept_main, NULL);
    return t;
}

/* ---- completions -------------------------------------------------------------- */

struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, status;
    double at; /* mono() of the first call */
};

static void done_init(struct done *d)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
}

static void on_done(int status, void *arg)
{
    struct done *d = arg;
    pthread_mutex_lock(&d->mu);
    if (d->calls++ == 0)
        d->at = mono();
    d->status = status;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Waits up to `sec` for the first call; returns the number of calls. */
static int wait_done(struct done *d, double sec)
{
    double end = mono() + sec;
    pthread_mutex_lock(&d->mu);
    while (d->calls == 0 && mono() < end) {
        pthread_mutex_unlock(&d->mu);
        sleep_ms(5);
        pthread_mutex_lock(&d->mu);
    }
    int n = d->calls;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static int calls_of(struct done *d)
{
    pthread_mutex_lock(&d->mu);
    int n = d->calls;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* A new reference to the metrics doc of service `name`, or NULL. */
static json_t *metrics_of(struct sr_cache *c, const char *name)
{
    struct sr_snapshot *snap = sr_cache_acquire(c);
    const struct sr_svc *m = sr_snapshot_metrics(snap, name);
    json_t *doc = m != NULL ? json_deep_copy(sr_svc_doc(m)) : NULL;
    sr_snapshot_release(snap);
    return doc;
}

static size_t metrics_count(struct sr_cache *c)
{
    struct sr_snapshot *snap = sr_cache_acquire(c);
    size_t n = sr_snapshot_metrics_count(snap);
    sr_snapshot_release(snap);
    return n;
}

static bool wait_metrics(struct sr_cache *c, size_t n, double sec)
{
    double end = mono() + sec;
    while (metrics_count(c) < n && mono() < end)
        sleep_ms(10);
    return metrics_count(c) >= n;
}

static struct sr_docker *adapter(struct sr_cache *c, unsigned metrics_sec)
{
    char url[160], err[256];
    snprintf(url, sizeof(url), "unix://%s", sock_path);
    struct sr_docker_opts o = {
        .base_url = url, .refresh_interval_sec = 3600, .metrics_refresh_interval_sec = metrics_sec};
    struct sr_docker *d = sr_docker_new(&o, c, err, sizeof(err));
    if (d == NULL)
        printf("# sr_docker_new: %s\n", err);
    return d;
}

static const json_t *container(const json_t *doc, const char *task)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(doc, "containers"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "task_id")), task) == 0)
            return c;
    }
    return NULL;
}

static bool has_error(const json_t *doc, const char *needle)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(doc, "errors"), i, e)
    {
        if (strstr(json_string_value(e), needle) != NULL)
            return true;
    }
    return false;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_object_seed(0);
    sr_log_set_level(getenv("SR_TEST_DEBUG") ? SR_LOG_DEBUG : SR_LOG_CRITICAL);
    pthread_t fake = fake_start();

    struct sr_cache *cache = sr_cache_new();
    struct sr_docker *d = adapter(cache, 3600);
    ok(d != NULL, "adapter created");

    /* A request before start is answered at free when it never starts. */
    {
        struct sr_cache *c2 = sr_cache_new();
        struct sr_docker *d2 = adapter(c2, 60);
        struct done w;
        done_init(&w);
        is_int(sr_docker_collect_metrics(d2, "s1", on_done, &w), 0, "queued before start: 0");
        sr_docker_free(d2);
        ok(w.calls == 1 && w.status < 0, "never started: answered -1 at free");
        sr_cache_free(c2);
    }

    is_int(sr_docker_start(d), 0, "adapter started");
    /* The first round runs right after the first sync, whatever the period. */
    ok(wait_metrics(cache, 4, 10), "first round after the first sync: all 4 services have metrics");

    json_t *doc = metrics_of(cache, "web");
    ok(doc != NULL, "web: metrics stored");
    char *text = json_dumps(doc, JSON_COMPACT);
    printf("# %s\n", text ? text : "(null)");
    free(text);
    is_int(json_integer_value(json_object_get(doc, "tasks_running")), 7,
           "web: 7 running tasks (the preparing one is not running)");
    is_int(json_integer_value(json_object_get(doc, "containers_sampled")), 2,
           "web: the two good containers sampled");
    is_int(json_array_size(json_object_get(doc, "containers")), 3,
           "web: listed = 2 sampled + 1 remote");
    const json_t *agg = json_object_get(doc, "aggregate");
    is_dbl(json_number_value(json_object_get(agg, "cpu_percent_mean")), 75, 1e-9, "web: cpu mean");
    is_dbl(json_number_value(json_object_get(agg, "cpu_percent_max")), 90, 1e-9, "web: cpu max");
    is_dbl(json_number_value(json_object_get(agg, "memory_percent_mean")), 35, 1e-9,
           "web: memory mean");
    is_int(json_integer_value(json_object_get(agg, "memory_bytes_total")), 70 * 1048576,
           "web: memory total");
    is_str(json_string_value(json_object_get(doc, "metric")), "memory", "web: metric label");
    ok(json_is_false(json_object_get(json_object_get(doc, "over_threshold"), "scale_metric")),
       "web: 35 % memory is under 70");
    ok(has_error(doc, "container c-500: HTTP 500: boom"), "web: the 500 is in errors");
    ok(has_error(doc, "container c-garbage: stats answer is not a JSON object"),
       "web: the garbage answer is in errors");
    is_int(json_array_size(json_object_get(doc, "errors")), 2, "web: 404 and zeros are no errors");
    ok(container(doc, "t3") == NULL && container(doc, "t5") == NULL,
       "web: vanished containers (404, zeros) left out");
    const json_t *remote = container(doc, "t7");
    ok(remote != NULL && json_is_false(json_object_get(remote, "local")) &&
           json_object_get(remote, "cpu_percent") == NULL,
       "web: the other node's task listed without numbers");
    ok(!logged("/containers/c-remote/"), "no stats call for the other node's container");
    ok(!logged("/containers/c-uncached/"), "no stats call for an uncached service's container");
    json_decref(doc);
    doc = metrics_of(cache, "empty");
    ok(doc != NULL && json_integer_value(json_object_get(doc, "containers_sampled")) == 0 &&
           json_is_null(json_object_get(json_object_get(doc, "aggregate"), "cpu_percent_mean")),
       "a service without tasks gets an empty sample");
    json_decref(doc);
    doc = metrics_of(cache, "slow");
    is_int(json_integer_value(json_object_get(doc, "containers_sampled")), NSLOW,
           "slow: every container sampled");
    json_decref(doc);
    ok(logged("/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D"),
       "one task list for all services, desired-state running");

    /* A forced collection: stored, then cb(0) exactly once. */
    struct done w;
    done_init(&w);
    json_t *tmp = metrics_of(cache, "web");
    double before = json_number_value(json_object_get(tmp, "sample_time"));
    json_decref(tmp);
    sleep_ms(20);
    is_int(sr_docker_collect_metrics(d, "s1", on_done, &w), 0, "collect s1: accepted");
    ok(wait_done(&w, 10) == 1 && w.status == 0, "collect s1: cb(0)");
    tmp = metrics_of(cache, "web");
    ok(json_number_value(json_object_get(tmp, "sample_time")) > before,
       "collect s1: a fresh document was stored before cb");
    json_decref(tmp);
    ok(logged("%22service%22%3A%5B%22s1%22%5D"), "collect s1: task list filtered by service");

    /* Unknown service, bad ids. */
    struct done u;
    done_init(&u);
    is_int(sr_docker_collect_metrics(d, "nosuch", on_done, &u), 0, "unknown: accepted");
    ok(wait_done(&u, 5) == 1 && u.status < 0, "unknown: cb(-1)");
    is_int(sr_docker_collect_metrics(d, "", on_done, &u), -1, "empty id: -1, no cb");
    char longid[200];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    is_int(sr_docker_collect_metrics(d, longid, on_done, &u), -1, "over-long id: -1, no cb");

    /* Requests for one service made together share its round. */
    struct done a, b;
    done_init(&a);
    done_init(&b);
    int t0 = atomic_load(&tasks_reqs);
    /* The engine holds the task list, so the second request surely comes
     * before it: the adapter takes its queue within microseconds, the hold
     * leaves it 100 ms (under ASan on a loaded machine, the unheld list
     * sometimes came back first). */
    atomic_store(&hold_tasks, 1);
    sr_docker_collect_metrics(d, "s1", on_done, &a);
    sr_docker_collect_metrics(d, "s1", on_done, &b);
    double until = mono() + 5;
    while (atomic_load(&tasks_reqs) == t0 && mono() < until)
        sleep_ms(5);
    sleep_ms(100);
    atomic_store(&hold_tasks, 0);
    ok(wait_done(&a, 10) == 1 && wait_done(&b, 10) == 1 && a.status == 0 && b.status == 0,
       "two requests together: both cb(0)");
    is_int(atomic_load(&tasks_reqs) - t0, 1, "two requests together: one task list");

    /* 70 containers whose stats take 0.5 s each: concurrent, capped at 64. */
    struct done s;
    done_init(&s);
    atomic_store(&stats_max, 0);
    double t_start = mono();
    sr_docker_collect_metrics(d, "s4", on_done, &s);
    ok(wait_done(&s, 20) == 1 && s.status == 0, "slow: cb(0)");
    double took = s.at - t_start;
    printf("# %d slow containers (0.5 s each) in %.2f s, %d calls at most in flight\n", NSLOW, took,
           atomic_load(&stats_max));
    ok(took < 2.5, "slow: concurrent (2 waves of 0.5 s, not 35 s in a row)");
    is_int(atomic_load(&stats_max), SR_DOCKER_STATS_FLIGHT, "slow: at most 64 calls in flight");

    /* cb exactly once. */
    sleep_ms(100);
    ok(calls_of(&w) == 1 && calls_of(&u) == 1 && calls_of(&a) == 1 && calls_of(&b) == 1 &&
           calls_of(&s) == 1,
       "every callback ran exactly once");

    /* Stopping with a stats call in flight: cb(-1), promptly. */
    atomic_store(&hang, 1);
    struct done h;
    done_init(&h);
    sr_docker_collect_metrics(d, "s5", on_done, &h);
    double end = mono() + 5;
    while (!logged("/containers/c-hang/stats") && mono() < end)
        sleep_ms(5);
    sleep_ms(50);
    ok(calls_of(&h) == 0, "hanging call: no answer yet");
    double st = mono();
    sr_docker_stop(d);
    ok(mono() - st < 1.0, "stop returns promptly with a call in flight");
    ok(calls_of(&h) == 1 && h.status < 0, "stop answers the pending collection with -1");
    is_int(sr_docker_collect_metrics(d, "s1", on_done, &u), -1, "after stop: -1, no cb");
    sr_docker_free(d);

    /* Docker going away: a new adapter, then the engine stops answering. */
    atomic_store(&hang, 0);
    struct sr_cache *c3 = sr_cache_new();
    struct sr_docker *d3 = adapter(c3, 3600);
    sr_docker_start(d3);
    ok(wait_metrics(c3, 4, 10), "second adapter: first round done");
    atomic_store(&down, 1);
    pthread_join(fake, NULL);
    unlink(sock_path);
    struct done x;
    done_init(&x);
    is_int(sr_docker_collect_metrics(d3, "s1", on_done, &x), 0, "docker down: accepted");
    ok(wait_done(&x, 10) == 1 && x.status < 0, "docker down: cb(-1)");
    sr_docker_free(d3);
    sr_cache_free(c3);

    sr_cache_free(cache);
    sleep_ms(100); /* connection threads see `down` and exit */
    free(req_log);
    curl_global_cleanup();
    return tap_done();
}
