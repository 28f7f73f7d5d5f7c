/* publish_throughput: confirmed messages per second through the registry's
 * publisher (cache change -> feed event -> inbox -> outbox -> broker confirm)
 * next to a plain librabbitmq publisher sending the same bodies, in the same
 * run, against the same broker. Not a test: tests/bench/publish_throughput.sh
 * starts a private broker and runs it.
 *
 * usage: publish_throughput [-n N] [-s SERVICES] [-r ROUNDS] [-w WINDOW]
 *                           [-d DUMPFILE] AMQP_URL
 *   N         messages per phase (default 20000)
 *   SERVICES  distinct services the changes cycle over (default 20): the first
 *             SERVICES changes are service.added, the rest service.updated,
 *             every body distinct (version_index, autoscaler.max, updated_at)
 *   ROUNDS    rounds of both phases, order alternating (default 5); the
 *             summary gives the medians
 *   WINDOW    unconfirmed messages the reference keeps in flight (default
 *             1024, the publisher's own window)
 *   DUMPFILE  writes the N bodies as "<routing key>\t<body>" lines, for other
 *             reference publishers (publish_throughput.sh's pika one)
 *
 * Both phases publish to one durable topic exchange with one durable queue
 * bound with "#", so every message is persistent, routed and written by the
 * broker before it is confirmed; after each phase the queue is purged and
 * must hold exactly what was confirmed.
 *
 * Phase "outbox": a fresh cache and publisher (outbox_max = N, so nothing is
 * dropped; health.check every hour). Once it is connected and its first
 * health.check is confirmed, the clock starts; N sr_cache_upsert calls (each
 * builds its service document, as the Docker adapter does), then
 * sr_publisher_get_status is polled every 0.5 ms until N more messages are
 * confirmed. Peak RSS = VmHWM over the phase (reset through
 * /proc/self/clear_refs), next to VmRSS when it began (which holds the
 * captured bodies, ~N x 700 B). The summary's figure is round 1's, whose
 * outbox phase runs first in a fresh heap; later phases reuse freed memory.
 *
 * Phase "librabbitmq": one connection, confirm mode, the same N bodies
 * (captured beforehand from a cache without a publisher) with the same AMQP
 * properties, at most WINDOW unconfirmed; clock from the first publish to the
 * last confirm (connecting excluded, as for the outbox). */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/log.h"
#include "cache/util.h"
#include "publisher/publisher.h"

#define CH 1

static unsigned n_msgs = 20000, n_svcs = 20, rounds = 5, window = 1024;
static const char *dump_path;
static char exchange[64], queue[64];
static struct amqp_connection_info url;

/* ---- helpers ---------------------------------------------------------------- */

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "publish_throughput: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* CPU seconds (user + system) this process used so far, every thread. */
static double cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* kB from a /proc/self/status line ("VmHWM:", "VmRSS:"). */
static long proc_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0) {
            kb = strtol(line + fl, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return kb;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0). */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
    double *c = malloc(n * sizeof(*c));
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_double);
    double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    free(c);
    return m;
}

/* The j-th change: a service record as GET /services shows it (README), on
 * service j % n_svcs, with fields that make every body distinct. */
static struct sr_svc *change_doc(unsigned j)
{
    unsigned s = j % n_svcs;
    char id[32], name[64], updated[40], max[16];
    snprintf(id, sizeof(id), "srbench%018u", s);
    snprintf(name, sizeof(name), "srbench-svc-%04u", s);
    snprintf(updated, sizeof(updated), "2026-01-01T00:%02u:%02u.%09uZ", (j / 60) % 60, j % 60, j);
    snprintf(max, sizeof(max), "%u", 2 + j % 50);
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:{s:s, s:s, s:s, s:s}, s:n, s:s, s:s, s:I,"
        " s:{s:b, s:s, s:i, s:i, s:i, s:i}, s:[]}",
        "id", id, "name", name, "image", "local/busybox:1@sha256:0123456789abcdef", "mode",
        "replicated", "replicas", "desired", (int)(j % 4), "running", (int)(j % 3), "labels",
        "autoscaler.enabled", "true", "autoscaler.max", max, "autoscaler.metric", "cpu", "tier",
        "web", "stack", "created_at", "2026-01-01T00:00:00.000000000Z", "updated_at", updated,
        "version_index", (json_int_t)(1000 + j), "autoscaler", "enabled", 1, "metric", "cpu",
        "cpu_threshold", 70, "memory_threshold", 70, "min_replicas", 1, "max_replicas",
        (int)(2 + j % 50), "config_errors");
    struct sr_svc *svc = sr_svc_new(doc);
    if (svc == NULL)
        die("%s", "cannot build a service document");
    return svc;
}

/* ---- the bodies, captured from a cache without a publisher ------------------- */

static char **bodies, **keys;
static size_t *body_lens;
static unsigned captured;

static void capture_cb(struct sr_event *const *events, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n && captured < n_msgs; i++) {
        size_t len;
        const char *b = sr_event_body(events[i], &len);
        bodies[captured] = sr_strndup(b, len);
        body_lens[captured] = len;
        keys[captured] = sr_strdup(sr_event_key(events[i]));
        captured++;
    }
}

/* Returns the producer's time alone: N upserts into a cache with no publisher. */
static double capture(void)
{
    bodies = sr_calloc(n_msgs, sizeof(*bodies));
    keys = sr_calloc(n_msgs, sizeof(*keys));
    body_lens = sr_calloc(n_msgs, sizeof(*body_lens));
    struct sr_cache *c = sr_cache_new();
    sr_cache_add_event_listener(c, capture_cb, NULL);
    double t0 = sr_mono();
    for (unsigned j = 0; j < n_msgs; j++)
        if (sr_cache_upsert(c, change_doc(j)) != 1)
            die("%s", "an upsert did not change the cache");
    double dt = sr_mono() - t0;
    sr_cache_free(c);
    if (captured != n_msgs)
        die("%s", "the cache produced fewer events than changes");
    if (dump_path) {
        FILE *f = fopen(dump_path, "w");
        if (!f)
            die("cannot write %s", dump_path);
        for (unsigned i = 0; i < n_msgs; i++)
            fprintf(f, "%s\t%.*s\n", keys[i], (int)body_lens[i], bodies[i]);
        fclose(f);
    }
    return dt;
}

/* ---- AMQP (librabbitmq) --------------------------------------------------------- */

static void check_rpc(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        die("%s failed", what);
}

static amqp_connection_state_t amqp_open(bool confirms)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (!s || amqp_socket_open(s, url.host, url.port) != AMQP_STATUS_OK)
        die("cannot connect to %s", url.host);
    amqp_rpc_reply_t r = amqp_login(c, url.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                                    AMQP_SASL_METHOD_PLAIN, url.user, url.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        die("%s", "login failed");
    amqp_channel_open(c, CH);
    check_rpc(c, "channel.open");
    if (confirms) {
        amqp_confirm_select(c, CH);
        check_rpc(c, "confirm.select");
    }
    return c;
}

static void amqp_close(amqp_connection_state_t c)
{
    amqp_channel_close(c, CH, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* Empties the bench queue; returns how many messages it held. */
static unsigned purge(amqp_connection_state_t admin)
{
    amqp_queue_purge_ok_t *ok = amqp_queue_purge(admin, CH, amqp_cstring_bytes(queue));
    if (!ok)
        die("%s", "queue.purge failed");
    return ok->message_count;
}

/* Plain librabbitmq: the same bodies and properties, WINDOW in flight.
 * Returns the seconds from the first publish to the last confirm. */
static double run_reference(double *cpu)
{
    amqp_connection_state_t c = amqp_open(true);
    bool *acked = sr_calloc(n_msgs + 1, 1);
    uint64_t published = 0, confirmed = 0, low = 1; /* low: lowest tag not yet acked */
    char id[48];
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.app_id = amqp_cstring_bytes("service-registry");

    double t0 = sr_mono(), c0 = cpu_secs();
    while (confirmed < n_msgs) {
        while (published < n_msgs && published - confirmed < window) {
            const unsigned i = (unsigned)published;
            snprintf(id, sizeof(id), "0123456789abcdef-%u", i + 1);
            props.message_id = amqp_cstring_bytes(id);
            props.timestamp = (uint64_t)time(NULL);
            amqp_bytes_t body = {body_lens[i], bodies[i]};
            if (amqp_basic_publish(c, CH, amqp_cstring_bytes(exchange), amqp_cstring_bytes(keys[i]),
                                   0, 0, &props, body) != AMQP_STATUS_OK)
                die("%s", "basic.publish failed");
            published++;
        }
        /* Block for the next frame when the window is full (or all is sent),
         * then take whatever else already arrived. */
        bool block = published == n_msgs || published - confirmed >= window;
        for (;;) {
            amqp_frame_t f;
            struct timeval tv = {block ? 30 : 0, 0};
            int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
            if (rc == AMQP_STATUS_TIMEOUT) {
                if (block)
                    die("%s", "no confirm within 30 s");
                break;
            }
            if (rc != AMQP_STATUS_OK)
                die("%s", "connection lost");
            block = false;
            if (f.frame_type != AMQP_FRAME_METHOD)
                continue;
            if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
                die("%s", "the broker nacked a message");
            if (f.payload.method.id != AMQP_BASIC_ACK_METHOD)
                die("%s", "unexpected method from the broker");
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            uint64_t tag = a->delivery_tag;
            if (a->multiple) {
                for (; low <= tag; low++)
                    if (!acked[low]) {
                        acked[low] = true;
                        confirmed++;
                    }
            } else if (tag <= n_msgs && !acked[tag]) {
                acked[tag] = true;
                confirmed++;
            }
            while (low <= n_msgs && acked[low])
                low++;
        }
        amqp_maybe_release_buffers(c);
    }
    double dt = sr_mono() - t0;
    *cpu = cpu_secs() - c0;
    free(acked);
    amqp_close(c);
    return dt;
}

/* ---- the registry's publisher ------------------------------------------------------ */

struct outbox_result {
    double secs, enqueue_secs, cpu;
    long rss_start_kb, rss_peak_kb;
    uint64_t published, confirmed, dropped;
};

static bool wait_status(struct sr_publisher *p, struct sr_publisher_status *st, double timeout,
                        bool (*done)(const struct sr_publisher_status *, uint64_t), uint64_t arg)
{
    double deadline = sr_mono() + timeout;
    for (;;) {
        sr_publisher_get_status(p, st);
        if (done(st, arg))
            return true;
        if (sr_mono() > deadline)
            return false;
        sleep_us(500);
    }
}

static bool ready(const struct sr_publisher_status *st, uint64_t unused)
{
    (void)unused;
    return st->state == SR_PUBLISHER_CONNECTED && st->confirmed >= 1 && st->queued == 0;
}

static bool reached(const struct sr_publisher_status *st, uint64_t target)
{
    return st->confirmed >= target;
}

static struct outbox_result run_outbox(const char *amqp_url)
{
    struct outbox_result res = {0};
    reset_peak_rss();
    res.rss_start_kb = proc_kb("VmRSS:");
    struct sr_cache *cache = sr_cache_new();
    char err[256];
    struct sr_publisher_opts o = {
        .url = amqp_url, .exchange = exchange, .outbox_max = n_msgs, .health_interval_sec = 3600};
    struct sr_publisher *p = sr_publisher_new(&o, cache, err, sizeof(err));
    if (!p)
        die("sr_publisher_new: %s", err);
    if (sr_publisher_start(p) != 0)
        die("%s", "sr_publisher_start failed");
    struct sr_publisher_status st;
    if (!wait_status(p, &st, 15, ready, 0))
        die("publisher not ready: %s", st.last_error);
    uint64_t base = st.confirmed, base_pub = st.published;

    double t0 = sr_mono(), c0 = cpu_secs();
    for (unsigned j = 0; j < n_msgs; j++)
        sr_cache_upsert(cache, change_doc(j));
    res.enqueue_secs = sr_mono() - t0;
    if (!wait_status(p, &st, 120, reached, base + n_msgs))
        die("not every message was confirmed within 120 s: %s", st.last_error);
    res.secs = sr_mono() - t0;
    res.cpu = cpu_secs() - c0;
    res.rss_peak_kb = proc_kb("VmHWM:");
    res.published = st.published - base_pub;
    res.confirmed = st.confirmed - base;
    res.dropped = st.dropped;
    sr_publisher_stop(p, 2000);
    sr_publisher_free(p);
    sr_cache_free(cache);
    return res;
}

static _Noreturn void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-n N] [-s SERVICES] [-r ROUNDS] [-w WINDOW] [-d DUMPFILE] AMQP_URL\n",
            argv0);
    exit(2);
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "n:s:r:w:d:")) != -1) {
        long v = optarg ? strtol(optarg, NULL, 10) : 0;
        switch (opt) {
        case 'n':
            n_msgs = (unsigned)v;
            break;
        case 's':
            n_svcs = (unsigned)v;
            break;
        case 'r':
            rounds = (unsigned)v;
            break;
        case 'w':
            window = (unsigned)v;
            break;
        case 'd':
            dump_path = optarg;
            break;
        default:
            usage(argv[0]);
        }
    }
    if (optind != argc - 1 || n_msgs < 1 || n_svcs < 1 || n_svcs > n_msgs || rounds < 1 ||
        window < 1)
        usage(argv[0]);
    const char *amqp_url = argv[optind];

    /* Process setup, as publisher.h / docker.h ask (no curl or libevent here). */
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(0);
    sr_log_set_level(SR_LOG_WARNING);

    char err[256];
    if (sr_publisher_check_url(amqp_url, err, sizeof(err)) != 0 || !*amqp_url)
        die("bad AMQP URL: %s", err);
    char *url_copy = sr_strdup(amqp_url);
    amqp_default_connection_info(&url);
    if (amqp_parse_url(url_copy, &url) != AMQP_STATUS_OK)
        die("%s", "librabbitmq cannot parse the URL");
    snprintf(exchange, sizeof(exchange), "srbench-%d", (int)getpid());
    snprintf(queue, sizeof(queue), "srbench-%d-q", (int)getpid());

    double produce = capture();
    double avg_len = 0;
    for (unsigned i = 0; i < n_msgs; i++)
        avg_len += (double)body_lens[i] / n_msgs;

    amqp_connection_state_t admin = amqp_open(false);
    amqp_exchange_declare(admin, CH, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"), 0,
                          1, 0, 0, amqp_empty_table);
    check_rpc(admin, "exchange.declare");
    amqp_queue_declare(admin, CH, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    check_rpc(admin, "queue.declare");
    amqp_queue_bind(admin, CH, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    check_rpc(admin, "queue.bind");

    printf("# %u messages per phase (%u service.added, then service.updated; bodies %.0f B on "
           "average), exchange %s -> durable queue, persistent\n",
           n_msgs, n_svcs, avg_len, exchange);
    printf("# producer alone (building the service document, cache upsert, feed body; no "
           "publisher): %.0f changes/s\n",
           n_msgs / produce);

    double *ob = sr_calloc(rounds, sizeof(double)), *ref = sr_calloc(rounds, sizeof(double));
    long peak = 0, peak_start = 0; /* round 1's outbox phase: the first, in a fresh heap */
    for (unsigned r = 0; r < rounds; r++) {
        struct outbox_result o = {0};
        double rs = 0, rcpu = 0;
        unsigned in_q_o = 0, in_q_r = 0;
        for (int k = 0; k < 2; k++) {
            if ((k == 0) == (r % 2 == 0)) {
                o = run_outbox(amqp_url);
                in_q_o = purge(admin);
            } else {
                rs = run_reference(&rcpu);
                in_q_r = purge(admin);
            }
        }
        if (o.confirmed != n_msgs || o.dropped != 0 || in_q_o != n_msgs + 1 || in_q_r != n_msgs) {
            fprintf(stderr,
                    "publish_throughput: round %u: outbox confirmed %llu dropped %llu, queue held "
                    "%u (want %u + 1 health.check); reference queue held %u (want %u)\n",
                    r + 1, (unsigned long long)o.confirmed, (unsigned long long)o.dropped, in_q_o,
                    n_msgs, in_q_r, n_msgs);
            return 1;
        }
        ob[r] = n_msgs / o.secs;
        ref[r] = n_msgs / rs;
        if (r == 0) {
            peak = o.rss_peak_kb;
            peak_start = o.rss_start_kb;
        }
        printf("round %u: outbox %6.0f msg/s (%.3f s, CPU %.2f s, upserts done at %.3f s, %llu "
               "publishes, peak RSS %.1f MB from %.1f MB) | librabbitmq %6.0f msg/s (%.3f s, CPU "
               "%.2f s)\n",
               r + 1, ob[r], o.secs, o.cpu, o.enqueue_secs, (unsigned long long)o.published,
               o.rss_peak_kb / 1024.0, o.rss_start_kb / 1024.0, ref[r], rs, rcpu);
        fflush(stdout);
    }
    double mo = median(ob, rounds), mr = median(ref, rounds);
    printf("outbox_msgs_per_sec=%.0f\nreference_msgs_per_sec=%.0f\nratio=%.2f\n"
           "outbox_peak_rss_mb=%.1f\noutbox_rss_growth_mb=%.1f\n",
           mo, mr, mo / mr, peak / 1024.0, (peak - peak_start) / 1024.0);

    amqp_queue_delete(admin, CH, amqp_cstring_bytes(queue), 0, 0);
    amqp_exchange_delete(admin, CH, amqp_cstring_bytes(exchange), 0);
    amqp_close(admin);
    for (unsigned i = 0; i < n_msgs; i++) {
        free(bodies[i]);
        free(keys[i]);
    }
    free(bodies);
    free(keys);
    free(body_lens);
    free(ob);
    free(ref);
    free(url_copy);
    return 0;
}
