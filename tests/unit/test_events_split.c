/* The /events reader's pure parts: the line splitter (objects split across
 * reads, several per read, over-long lines, CR/RS framing) and the event
 * classifier, fed with tests/data/events.ndjson cut at every byte offset. */
#include <stdint.h>
#include <stdlib.h>

#include "adapters/docker/event.h"
#include "adapters/docker/linesplit.h"
#include "tests/unit/tap.h"

#define MAXLINES 64

struct collect {
    size_t n;
    char *lines[MAXLINES];
    size_t lens[MAXLINES];
};

static void on_line(const char *line, size_t len, void *arg)
{
    struct collect *c = arg;
    if (c->n < MAXLINES) {
        c->lines[c->n] = malloc(len + 1);
        memcpy(c->lines[c->n], line, len);
        c->lines[c->n][len] = '\0';
        c->lens[c->n] = len;
    }
    c->n++;
}

static void clear(struct collect *c)
{
    for (size_t i = 0; i < c->n && i < MAXLINES; i++)
        free(c->lines[i]);
    memset(c, 0, sizeof(*c));
}

static void feed(struct sr_linesplit *s, const char *text, struct collect *c)
{
    sr_linesplit_feed(s, text, strlen(text), on_line, c);
}

/* A compact signature of a classified event, to compare runs. */
static void sig(const struct sr_docker_event *ev, char *out, size_t len)
{
    snprintf(out, len, "%d|%s|%s|%s|%s|%lld", ev->kind, ev->type, ev->action, ev->actor_id,
             ev->service_id, (long long)ev->time_nano);
}

struct classify {
    size_t n, bad;
    char sigs[MAXLINES][256];
    int kinds[4];
};

static void on_event_line(const char *line, size_t len, void *arg)
{
    struct classify *c = arg;
    struct sr_docker_event ev;
    char err[128];
    if (sr_docker__event_parse(line, len, &ev, err, sizeof(err)) != 0) {
        c->bad++;
        return;
    }
    if (c->n < MAXLINES)
        sig(&ev, c->sigs[c->n], sizeof(c->sigs[0]));
    c->kinds[ev.kind]++;
    c->n++;
}

static int parse_ok(const char *text, struct sr_docker_event *ev)
{
    char err[128];
    return sr_docker__event_parse(text, strlen(text), ev, err, sizeof(err));
}

int main(void)
{
    struct sr_linesplit s;
    struct collect c = {0};

    /* ---- splitter ---- */
    sr_linesplit_init(&s, 0);
    is_int(s.max, SR_LINESPLIT_MAX, "default cap is 1 MiB");
    feed(&s, "{\"a\":", &c);
    is_int(c.n, 0, "half an object: no line yet");
    is_int(sr_linesplit_pending(&s), 5, "half an object is kept");
    feed(&s, "1}", &c);
    is_int(c.n, 0, "still no newline");
    feed(&s, "\n", &c);
    is_int(c.n, 1, "object split across three reads: one line");
    is_str(c.lines[0], "{\"a\":1}", "... reassembled");
    is_int(sr_linesplit_pending(&s), 0, "nothing pending after the newline");
    clear(&c);

    feed(&s, "{\"b\":1}\n{\"b\":2}\n{\"b\":3}\n{\"b\"", &c);
    is_int(c.n, 3, "three objects in one read");
    is_str(c.lines[2], "{\"b\":3}", "third object");
    feed(&s, ":4}\n", &c);
    is_int(c.n, 4, "tail completed by the next read");
    is_str(c.lines[3], "{\"b\":4}", "tail object");
    clear(&c);

    feed(&s, "\n\r\n\x1e{\"c\":1}\r\n\n", &c);
    is_int(c.n, 1, "empty lines skipped, CRLF and RS stripped");
    is_str(c.lines[0], "{\"c\":1}", "... the object");
    clear(&c);

    feed(&s, "{\"d\":", &c);
    sr_linesplit_reset(&s);
    feed(&s, "{\"e\":1}\n", &c);
    is_int(c.n, 1, "reset drops the partial line");
    is_str(c.lines[0], "{\"e\":1}", "... and the next line is whole");
    clear(&c);
    sr_linesplit_free(&s);

    /* over-long lines with a small cap: in one read, and across reads */
    sr_linesplit_init(&s, 16);
    feed(&s, "0123456789abcdef\n", &c);
    is_int(c.n, 1, "a line of exactly the cap is kept");
    feed(&s, "0123456789abcdefX\nok1\n", &c);
    is_int(c.n, 2, "a line over the cap in one read is dropped");
    is_str(c.lines[1], "ok1", "the next line survives");
    is_int(s.dropped, 1, "dropped counted");
    feed(&s, "0123456789", &c);
    feed(&s, "0123456789", &c);
    is_int(s.dropped, 2, "over the cap across reads: counted when the cap is hit");
    is_int(sr_linesplit_pending(&s), 0, "nothing kept while discarding");
    feed(&s, "more garbage without newline", &c);
    feed(&s, "end\nok2\n", &c);
    is_int(c.n, 3, "discarding stops at the newline");
    is_str(c.lines[2], "ok2", "the line after the long one");
    is_int(s.dropped, 2, "one long line counted once");
    clear(&c);
    sr_linesplit_free(&s);

    /* the real cap: a 1.5 MiB line, fed in 64 KiB slices, then a good one */
    sr_linesplit_init(&s, 0);
    size_t big = 3u << 19;
    char *huge = malloc(big);
    memset(huge, 'x', big);
    for (size_t off = 0; off < big; off += 65536)
        sr_linesplit_feed(&s, huge + off, big - off < 65536 ? big - off : 65536, on_line, &c);
    feed(&s, "\n{\"f\":1}\n", &c);
    is_int(c.n, 1, "1.5 MiB line dropped");
    is_str(c.n ? c.lines[0] : NULL, "{\"f\":1}", "... the next line is delivered");
    is_int(s.dropped, 1, "... and counted");
    ok(s.cap <= (2u << 20), "the buffer never grew past the cap");
    clear(&c);
    free(huge);
    sr_linesplit_free(&s);

    /* ---- event classification ---- */
    struct sr_docker_event ev;
    ok(parse_ok("this is not json", &ev) == -1, "garbage: rejected");
    ok(parse_ok("[1,2]", &ev) == -1, "array: rejected");
    ok(parse_ok("{}", &ev) == -1, "object without Type/Action: rejected");
    ok(parse_ok("{\"Type\":1,\"Action\":\"x\"}", &ev) == -1, "non-string Type: rejected");
    ok(parse_ok("{\"Type\":\"service\",\"Action\":\"upd", &ev) == -1, "cut object: rejected");
    is_int(parse_ok("{\"Type\":\"service\",\"Action\":\"update\",\"Actor\":{\"ID\":\"abc\"},"
                    "\"time\":5}",
                    &ev),
           0, "service update parsed");
    ok(ev.kind == SR_DOCKER_EVENT_SERVICE && strcmp(ev.service_id, "abc") == 0,
       "service update -> refresh abc");
    is_int(ev.time_nano, 5000000000LL, "time without timeNano");
    parse_ok("{\"Type\":\"node\",\"Action\":\"update\",\"time\":9223372036854775807}", &ev);
    ok(ev.time_nano == INT64_MAX, "a time too large for ns saturates (found by fuzz_docker)");
    parse_ok("{\"Type\":\"node\",\"Action\":\"update\",\"time\":-9223372036854775807}", &ev);
    ok(ev.time_nano == INT64_MIN, "... and a negative one too");
    parse_ok("{\"Type\":\"service\",\"Action\":\"update\",\"Actor\":{}}", &ev);
    is_int(ev.kind, SR_DOCKER_EVENT_OTHER, "service event without an ID: nothing to do");
    parse_ok("{\"Type\":\"node\",\"Action\":\"update\",\"Actor\":{\"ID\":\"n\"}}", &ev);
    is_int(ev.kind, SR_DOCKER_EVENT_NODE, "node event -> full resync");
    parse_ok("{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"c\"}}", &ev);
    is_int(ev.kind, SR_DOCKER_EVENT_OTHER, "plain container start: nothing to do");
    parse_ok("{\"Type\":\"container\",\"Action\":\"kill\",\"Actor\":{\"ID\":\"c\",\"Attributes\":"
             "{\"com.docker.swarm.service.id\":\"s1\"}}}",
             &ev);
    is_int(ev.kind, SR_DOCKER_EVENT_OTHER, "task container kill: nothing to do");
    parse_ok("{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"c\",\"Attributes\":"
             "{\"com.docker.swarm.service.id\":\"s1\"}}}",
             &ev);
    ok(ev.kind == SR_DOCKER_EVENT_TASK && strcmp(ev.service_id, "s1") == 0,
       "task container die -> refresh s1");

    /* ---- events.ndjson at every cut ---- */
    const char *dir = getenv("SR_TEST_DATA");
    char path[512];
    snprintf(path, sizeof(path), "%s/events.ndjson", dir ? dir : "tests/data");
    size_t len = 0;
    char *data = tap_slurp(path, &len);
    ok(data != NULL && len > 1000, "events.ndjson loaded");
    if (data == NULL)
        return tap_done();

    struct classify ref;
    memset(&ref, 0, sizeof(ref));
    sr_linesplit_init(&s, 0);
    sr_linesplit_feed(&s, data, len, on_event_line, &ref);
    sr_linesplit_free(&s);
    is_int(ref.n, 25, "whole file: 25 events");
    is_int(ref.bad, 0, "whole file: no bad line");
    is_int(ref.kinds[SR_DOCKER_EVENT_SERVICE], 4, "4 service events (create, 2 updates, remove)");
    is_int(ref.kinds[SR_DOCKER_EVENT_TASK], 6,
           "6 task container events (2 start, 2 die, 2 destroy)");
    is_int(ref.kinds[SR_DOCKER_EVENT_NODE], 0, "no node event");
    ok(strncmp(ref.sigs[0],
               "1|service|create|zora6l2ewq198m62gmvdub1ph|zora6l2ewq198m62gmvdub1ph|"
               "1795337046032774491",
               50) == 0,
       "first event: service create of zora6l2...");
    ok(strncmp(ref.sigs[3], "2|container|start|4118b8808a63", 30) == 0,
       "fourth event: task container start");

    /* Cuts change only the framing: the lines must be byte-identical to the
     * whole-file run's (whose 25 lines parse into the reference events). */
    struct collect whole = {0};
    sr_linesplit_init(&s, 0);
    sr_linesplit_feed(&s, data, len, on_line, &whole);
    sr_linesplit_free(&s);
    int cuts_ok = whole.n == 25;
    for (size_t cut = 0; cut <= len && cuts_ok; cut++) {
        struct collect got_lines = {0};
        sr_linesplit_init(&s, 0);
        sr_linesplit_feed(&s, data, cut, on_line, &got_lines);
        sr_linesplit_feed(&s, data + cut, len - cut, on_line, &got_lines);
        sr_linesplit_free(&s);
        cuts_ok = got_lines.n == whole.n;
        for (size_t i = 0; cuts_ok && i < whole.n; i++)
            cuts_ok = got_lines.lens[i] == whole.lens[i] &&
                      memcmp(got_lines.lines[i], whole.lines[i], whole.lens[i]) == 0;
        if (!cuts_ok)
            printf("# cut at %zu: %zu lines\n", cut, got_lines.n);
        clear(&got_lines);
    }
    clear(&whole);
    ok(cuts_ok, "two reads cut at every byte offset give the same 25 events");

    /* every byte its own read, and three-way cuts on a coarse grid */
    struct classify got;
    memset(&got, 0, sizeof(got));
    sr_linesplit_init(&s, 0);
    for (size_t i = 0; i < len; i++)
        sr_linesplit_feed(&s, data + i, 1, on_event_line, &got);
    sr_linesplit_free(&s);
    int same = got.n == ref.n;
    for (size_t i = 0; same && i < ref.n; i++)
        same = strcmp(got.sigs[i], ref.sigs[i]) == 0;
    ok(same, "one byte per read: same 25 events");

    int three_ok = 1;
    for (size_t a = 0; a <= len && three_ok; a += 397) {
        for (size_t b = a; b <= len && three_ok; b += 389) {
            memset(&got, 0, sizeof(got));
            sr_linesplit_init(&s, 0);
            sr_linesplit_feed(&s, data, a, on_event_line, &got);
            sr_linesplit_feed(&s, data + a, b - a, on_event_line, &got);
            sr_linesplit_feed(&s, data + b, len - b, on_event_line, &got);
            sr_linesplit_free(&s);
            three_ok = got.n == ref.n && got.bad == 0;
        }
    }
    ok(three_ok, "three reads at many cut pairs: 25 events");

    /* a garbage line and a cut object in the middle don't hide the others */
    size_t glen = len + 64;
    char *g = malloc(glen);
    int n = snprintf(g, glen, "this is not json\n{\"Type\":\"serv\n");
    memcpy(g + n, data, len);
    memset(&got, 0, sizeof(got));
    sr_linesplit_init(&s, 0);
    sr_linesplit_feed(&s, g, (size_t)n + len, on_event_line, &got);
    sr_linesplit_free(&s);
    is_int(got.bad, 2, "garbage and cut object: two bad lines");
    is_int(got.n, 25, "... and the 25 events after them");
    free(g);
    free(data);
    return tap_done();
}
