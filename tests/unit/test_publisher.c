/* publisher without a broker: RABBITMQ_URL checks, the bodies it builds
 * itself (health.check, publish payloads, the resync services.updated; the
 * service and metrics events come ready-made from the cache's feed, tested
 * in test_cache), outbox bookkeeping (bound, confirms, resends), backoff,
 * and the cache's event listener feeding a publisher whose thread never
 * started. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/util.h"
#include "publisher/publisher.h"
#include "publisher/publisher_internal.h"
#include "tap.h"

static struct sr_svc *svc(const char *id, const char *name, int replicas)
{
    return sr_svc_new(json_pack("{s:s, s:s, s:s, s:{s:i}, s:{s:s}}", "id", id, "name", name,
                                "image", "local/busybox:1", "replicas", "desired", replicas,
                                "labels", "autoscaler.enabled", "true"));
}

/* ---- URL ------------------------------------------------------------------ */

static void test_url(void)
{
    char err[256];
    is_int(sr_publisher_check_url(NULL, err, sizeof(err)), 0, "NULL URL: valid (disabled)");
    is_int(sr_publisher_check_url("", err, sizeof(err)), 0, "empty URL: valid (disabled)");
    is_int(sr_publisher_check_url("amqp://u:p@rabbit:5672/v", err, sizeof(err)), 0,
           "full URL is valid");
    is_int(sr_publisher_check_url("amqp://rabbit", err, sizeof(err)), 0, "host only is valid");
    is_int(sr_publisher_check_url("amqp://[::1]:5673/", err, sizeof(err)), 0, "IPv6 host");

    struct sr_pub_url u;
    char disp[256];
    is_int(
        sr_publisher__url_parse("amqp://us%40r:p%3Aw@rabbit:5673/my%2Fvhost", &u, err, sizeof(err)),
        0, "percent-encoded parts parse");
    is_str(u.user, "us@r", "user decoded");
    is_str(u.password, "p:w", "password decoded");
    is_str(u.host, "rabbit", "host");
    is_int(u.port, 5673, "port");
    is_str(u.vhost, "my/vhost", "vhost decoded");
    sr_publisher__url_display(&u, disp, sizeof(disp));
    is_str(disp, "amqp://us@r@rabbit:5673/my%2Fvhost", "display has no password");
    sr_publisher__url_free(&u);

    is_int(sr_publisher__url_parse("amqp://u:p@h:5672/", &u, err, sizeof(err)), 0,
           "trailing slash");
    is_str(u.vhost, "/", "empty vhost means /");
    sr_publisher__url_display(&u, disp, sizeof(disp));
    is_str(disp, "amqp://u@h:5672/%2F", "display of the default vhost");
    sr_publisher__url_free(&u);
    is_int(sr_publisher__url_parse("amqp://h", &u, err, sizeof(err)), 0, "defaults");
    is_str(u.user, "guest", "default user");
    is_int(u.port, 5672, "default port");
    is_str(u.vhost, "/", "default vhost");
    sr_publisher__url_free(&u);

    static const char *bad[] = {
        "http://u:s3cret@h/",         "amqps://u:s3cret@h/",
        "amqp://u:s3cret@h:99999/",   "amqp://u:s3cret@h:0/",
        "amqp://u:s3cret@h:abc/",     "amqp://u:s3cret@:5672/",
        "amqp://u:s3cret@/",          "amqp://",
        "amqp://:s3cret@h/",          "amqp://u:s3cret@h/a/b",
        "amqp://u:s3cret@h/%zz",      "amqp://u:s3cret@h /v",
        "amqp://u:s3cret@h:5672?x=1", "s3cret",
        "amqp://u:s3cret:x@h/",       " amqp://u:s3cret@h/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[160];
        err[0] = '\0';
        int rc = sr_publisher_check_url(bad[i], err, sizeof(err));
        snprintf(name, sizeof(name), "rejected: \"%s\"", bad[i]);
        is_int(rc, -1, name);
        snprintf(name, sizeof(name), "reason for \"%s\" is one line without the password", bad[i]);
        if (!ok(err[0] != '\0' && strstr(err, "s3cret") == NULL && strchr(err, '\n') == NULL, name))
            printf("#   err: %s\n", err);
    }
    sr_publisher_check_url("amqps://h/", err, sizeof(err));
    ok(strstr(err, "TLS") != NULL, "amqps: says TLS is not supported");
    sr_publisher_check_url("amqp://u:p@h:0/", err, sizeof(err));
    ok(strstr(err, "1-65535") != NULL, "port 0: names the range");
    sr_publisher_check_url("amqp://u:p@:5672/", err, sizeof(err));
    ok(strstr(err, "no host") != NULL, "empty host: says so");
    static const char *const ports[] = {"amqp://u:p@h:+5672/", "amqp://u:p@h:05x/",
                                        "amqp://u:p@h:/", "amqp://u:p@[::1]:+1/"};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        char name[96];
        err[0] = '\0';
        snprintf(name, sizeof(name), "port in \"%s\": digits only", ports[i]);
        ok(sr_publisher_check_url(ports[i], err, sizeof(err)) == -1 && strstr(err, "digits"),
           name);
    }
    is_int(sr_publisher_check_url("amqp://u:p@[::1]:5673/v", err, sizeof(err)), 0,
           "an IPv6 literal with a port: accepted");

    struct sr_cache *c = sr_cache_new();
    struct sr_publisher_opts o = {.url = "amqp://u:s3cret@h:70000/"};
    struct sr_publisher *p = sr_publisher_new(&o, c, err, sizeof(err));
    ok(p == NULL, "sr_publisher_new refuses a bad URL");
    ok(strncmp(err, "RABBITMQ_URL: ", 14) == 0 && strstr(err, "s3cret") == NULL,
       "... naming the variable, not the password");
    sr_cache_free(c);
}

/* ---- bodies ----------------------------------------------------------------- */

static json_t *parse_event(const struct sr_event *ev)
{
    size_t len;
    const char *body = sr_event_body(ev, &len);
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    if (j == NULL)
        printf("#   bad JSON (%s): %.*s\n", je.text, (int)len, body);
    return j;
}

static int rfc3339_utc(const char *s)
{
    /* 2024-01-15T10:30:00.123Z */
    if (s == NULL || strlen(s) != 24)
        return 0;
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (int i = 0; i < 24; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return 0;
    }
    return 1;
}

static void test_bodies(void)
{
    size_t len;
    json_error_t je;
    char *b = sr_publisher__wrap("health.check", 1705314600.125, 42, "health",
                                 "{\"status\":\"healthy\"}", 20, &len);
    json_t *j = json_loadb(b, len, 0, &je);
    ok(json_is_object(j), "wrap: a JSON object");
    is_str(json_string_value(json_object_get(j, "event")), "health.check", "wrap: event");
    is_str(json_string_value(json_object_get(j, "timestamp")), "2024-01-15T10:30:00.125Z",
           "wrap: RFC 3339 UTC timestamp");
    is_int(json_integer_value(json_object_get(j, "cache_version")), 42, "wrap: cache_version");
    is_str(json_string_value(json_object_get(json_object_get(j, "health"), "status")), "healthy",
           "wrap: payload under its key");
    is_int(json_object_size(j), 4, "wrap: exactly four members");
    is_int(strlen(b), len, "wrap: length matches");
    ok(strncmp(b, "{\"event\":", 9) == 0, "wrap: event comes first");
    json_decref(j);
    free(b);

    /* Escaping comes from jansson, whatever the names hold. */
    b = sr_publisher__wrap("we\"ird\\", 0, 18446744073709551615ULL, "k\"ey", "[1,2]", 5, &len);
    j = json_loadb(b, len, 0, &je);
    ok(j != NULL, "wrap: escapes event and key");
    is_str(json_string_value(json_object_get(j, "event")), "we\"ird\\", "wrap: event round-trips");
    ok(json_is_array(json_object_get(j, "k\"ey")), "wrap: odd key round-trips");
    is_str(json_string_value(json_object_get(j, "timestamp")), "1970-01-01T00:00:00.000Z",
           "wrap: timestamp of 0");
    json_decref(j);
    free(b);
    ok(sr_publisher__wrap("bad\xff", 0, 0, "k", "1", 1, &len) == NULL,
       "wrap: non-UTF-8 event refused");

    /* services.updated from a real snapshot, laid out as the feed's own. */
    struct sr_cache *c = sr_cache_new();
    sr_cache_upsert(c, svc("id-b", "beta", 1));
    sr_cache_upsert(c, svc("id-a", "alpha", 2));
    struct sr_snapshot *snap = sr_cache_acquire(c);
    struct sr_event *ev = sr_snapshot_resync_event(snap);
    is_str(sr_event_key(ev), "services.updated", "full: routing key");
    is_int(sr_event_revision(ev), sr_snapshot_version(snap), "full: revision is the snapshot's");
    j = parse_event(ev);
    is_str(json_string_value(json_object_get(j, "event")), "services.updated", "full: event");
    ok(rfc3339_utc(json_string_value(json_object_get(j, "timestamp"))), "full: RFC 3339 UTC");
    is_int(json_integer_value(json_object_get(j, "count")), 2, "full: count");
    is_int(json_integer_value(json_object_get(j, "cache_version")), sr_snapshot_version(snap),
           "full: cache_version is the snapshot's");
    json_t *list = json_object_get(j, "services");
    is_int(json_array_size(list), 2, "full: every service");
    ok(json_equal(json_array_get(list, 0), (json_t *)sr_svc_doc(sr_snapshot_at(snap, 0))) &&
           json_equal(json_array_get(list, 1), (json_t *)sr_svc_doc(sr_snapshot_at(snap, 1))),
       "full: records as the API shows them, in name order");
    const char *keys[5];
    size_t nk = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) if (nk < 5) keys[nk++] = k;
    ok(nk == 5 && !strcmp(keys[0], "event") && !strcmp(keys[1], "timestamp") &&
           !strcmp(keys[2], "cache_version") && !strcmp(keys[3], "count") &&
           !strcmp(keys[4], "services"),
       "full: members in the feed's order");
    json_decref(j);
    sr_event_release(ev);
    sr_snapshot_release(snap);

    /* An empty cache still gives a valid message. */
    sr_cache_clear(c);
    snap = sr_cache_acquire(c);
    ev = sr_snapshot_resync_event(snap);
    j = parse_event(ev);
    is_int(json_array_size(json_object_get(j, "services")), 0, "full, empty cache: []");
    is_int(json_integer_value(json_object_get(j, "count")), 0, "full, empty cache: count 0");
    json_decref(j);
    sr_event_release(ev);
    sr_snapshot_release(snap);
    sr_cache_free(c);
}

/* ---- outbox ----------------------------------------------------------------- */

static struct sr_pub_msg *msg(uint64_t seq)
{
    char key[32];
    snprintf(key, sizeof(key), "k.%llu", (unsigned long long)seq);
    struct sr_pub_msg *m = sr_publisher__msg_new(sr_event_new(seq, key, "{}", 2), 0);
    m->seq = seq;
    return m;
}

/* Sends everything the window allows; returns the seqs sent, as "1,2,3". */
static const char *send_all(struct sr_pub_outbox *ob, uint64_t *next_tag)
{
    static char out[256];
    out[0] = '\0';
    struct sr_pub_msg *m;
    while ((m = sr_publisher__outbox_next(ob)) != NULL) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof(out) - l, "%s%llu", l ? "," : "", (unsigned long long)m->seq);
        sr_publisher__outbox_sent(ob, m, (*next_tag)++);
    }
    return out;
}

static const char *contents(const struct sr_pub_outbox *ob)
{
    static char out[256];
    out[0] = '\0';
    for (const struct sr_pub_msg *m = ob->head; m; m = m->next) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof(out) - l, "%s%llu", l ? "," : "", (unsigned long long)m->seq);
    }
    return out;
}

static void test_outbox(void)
{
    struct sr_pub_outbox ob;
    uint64_t tag = 1;

    sr_publisher__outbox_init(&ob, 2, 10);
    is_int(ob.window, 1, "window is at most half the bound");
    is_int(sr_publisher__outbox_push(&ob, msg(1), false), 0, "push 1: no drop");
    is_int(sr_publisher__outbox_push(&ob, msg(2), false), 0, "push 2: no drop");
    ok(!ob.resync, "no resync before any drop");
    is_int(sr_publisher__outbox_push(&ob, msg(3), false), 1,
           "push 3 onto a full outbox: drops one");
    is_str(contents(&ob), "2,3", "the oldest went");
    is_int(ob.dropped, 1, "dropped counted");
    ok(ob.resync, "a drop asks for a resync");
    is_int(sr_publisher__outbox_push(&ob, msg(4), true), 0, "forced push: no drop");
    is_int(ob.count, 3, "forced push may exceed the bound");
    is_str(send_all(&ob, &tag), "2", "sent in order, one in flight");
    is_int(sr_publisher__outbox_push(&ob, msg(5), false), 2, "back to the bound");
    is_str(contents(&ob), "2,5", "the in-flight one stays, the oldest queued ones go");
    is_int(ob.nsent, 1, "still one in flight");
    is_int(sr_publisher__outbox_ack(&ob, 1, false), 1, "its confirm");
    is_str(contents(&ob), "5", "confirmed message leaves");
    is_str(send_all(&ob, &tag), "5", "the new one is sent");
    is_int(sr_publisher__outbox_ack(&ob, tag - 1, true), 1, "confirmed");
    is_int(ob.count, 0, "empty");
    is_int(ob.confirmed, 2, "confirmed counted");
    is_int(ob.dropped, 3, "drops counted");
    sr_publisher__outbox_clear(&ob);

    /* A message to send again is older than any new one: it goes first. */
    sr_publisher__outbox_init(&ob, 3, 10);
    tag = 1;
    for (uint64_t i = 1; i <= 3; i++)
        sr_publisher__outbox_push(&ob, msg(i), false);
    is_str(send_all(&ob, &tag), "1", "window 1 of a bound of 3");
    sr_publisher__outbox_reset(&ob);
    is_int(sr_publisher__outbox_push(&ob, msg(4), false), 1, "overflow");
    is_str(contents(&ob), "2,3,4", "the unconfirmed resend was the oldest: dropped");
    sr_publisher__outbox_clear(&ob);

    /* Confirms: multiple, out of order, nack, reset. */
    sr_publisher__outbox_init(&ob, 100, 100);
    tag = 1;
    for (uint64_t i = 1; i <= 6; i++)
        sr_publisher__outbox_push(&ob, msg(i), false);
    is_str(send_all(&ob, &tag), "1,2,3,4,5,6", "six sent, tags 1-6");
    is_int(sr_publisher__outbox_ack(&ob, 2, false), 1, "ack tag 2 alone");
    is_str(contents(&ob), "1,3,4,5,6", "... it leaves at once");
    is_int(sr_publisher__outbox_ack(&ob, 3, true), 2, "ack multiple up to 3: tags 1 and 3");
    is_str(contents(&ob), "4,5,6", "order kept");
    is_int(sr_publisher__outbox_nack(&ob, 5, false), 1, "nack tag 5");
    is_str(send_all(&ob, &tag), "5", "the nacked one is sent again (tag 7)");
    is_int(sr_publisher__outbox_ack(&ob, 6, true), 2, "ack multiple up to 6: tags 4 and 6");
    is_str(contents(&ob), "5", "5 waits for its new tag");
    is_int(sr_publisher__outbox_ack(&ob, 6, false), 0, "a stale tag matches nothing");
    is_int(sr_publisher__outbox_ack(&ob, 7, false), 1, "ack of the resend");
    is_int(ob.count, 0, "empty");
    is_int(ob.confirmed, 6, "six confirmed, none twice");

    /* Channel lost with messages in flight and queued. */
    for (uint64_t i = 10; i <= 13; i++)
        sr_publisher__outbox_push(&ob, msg(i), false);
    tag = 1;
    sr_publisher__outbox_sent(&ob, sr_publisher__outbox_next(&ob), tag++);
    sr_publisher__outbox_sent(&ob, sr_publisher__outbox_next(&ob), tag++);
    is_int(sr_publisher__outbox_ack(&ob, 2, false), 1, "11 confirmed, 10 not");
    sr_publisher__outbox_reset(&ob);
    is_int(ob.nsent, 0, "reset: nothing in flight");
    tag = 1; /* a new channel numbers from 1 again */
    is_str(send_all(&ob, &tag), "10,12,13",
           "reset: unconfirmed ones again, in order, "
           "not the confirmed one");
    is_int(sr_publisher__outbox_ack(&ob, 0, true), 3, "ack multiple with tag 0: everything");
    is_int(ob.count, 0, "all gone");
    ok(ob.head == NULL && ob.tail == NULL && ob.unsent == NULL, "list pointers reset");
    sr_publisher__outbox_clear(&ob);

    /* Window. */
    sr_publisher__outbox_init(&ob, 100, 2);
    tag = 1;
    for (uint64_t i = 1; i <= 5; i++)
        sr_publisher__outbox_push(&ob, msg(i), false);
    is_str(send_all(&ob, &tag), "1,2", "window of 2");
    sr_publisher__outbox_ack(&ob, 1, false);
    is_str(send_all(&ob, &tag), "3", "one confirm opens one slot");
    sr_publisher__outbox_nack(&ob, 2, false);
    is_str(send_all(&ob, &tag), "2", "a nacked message takes a free slot first");
    sr_publisher__outbox_push(&ob, msg(6), false);
    is_str(contents(&ob), "2,3,4,5,6", "tail append after resends");
    sr_publisher__outbox_clear(&ob);
    is_int(ob.count, 0, "clear empties");
}

/* ---- backoff ----------------------------------------------------------------- */

static void test_backoff(void)
{
    is_dbl(sr_publisher__backoff(0, 0), 0.25, 1e-9, "first retry: at least 0.25 s");
    is_dbl(sr_publisher__backoff(0, 0.999999), 0.5, 1e-5, "first retry: at most 0.5 s");
    is_dbl(sr_publisher__backoff(1, 0.999999), 1.0, 1e-5, "doubles");
    is_dbl(sr_publisher__backoff(5, 0.999999), 16.0, 1e-4, "16 s at the 6th");
    is_dbl(sr_publisher__backoff(6, 0.999999), 30.0, 1e-4, "capped at 30 s");
    is_dbl(sr_publisher__backoff(1000000, 0.999999), 30.0, 1e-4, "still capped, no overflow");
    is_dbl(sr_publisher__backoff(1000000, 0), 15.0, 1e-9, "jitter keeps half the ceiling");
    /* Dropped soon after connecting (the broker took the login, then closed
     * the channel): the backoff goes on growing; after a good connection it
     * starts again. */
    is_int(sr_publisher__attempt_after(5, 0.3), 5, "a connection that died at once: keep backing off");
    is_int(sr_publisher__attempt_after(5, SR_PUB_HEALTHY_SEC - 0.1), 5, "... just under the healthy time");
    is_int(sr_publisher__attempt_after(5, SR_PUB_HEALTHY_SEC), 0, "a connection that lived: start over");
    is_dbl(sr_publisher__backoff(0, -1), 0.25, 1e-9, "a bad random number is clamped");
}

/* ---- a message the broker refused for its size ----------------------------------- */

static void test_refused_limit(void)
{
    const char *t = "PRECONDITION_FAILED - message size 3000 is larger than configured max size 2048";
    is_int(sr_publisher__refused_limit(406, t, strlen(t)), 2048, "RabbitMQ's max_message_size text");
    t = "PRECONDITION_FAILED - message size 600000000 is larger than max size 536870912";
    is_int(sr_publisher__refused_limit(406, t, strlen(t)), 536870912, "... and its hard cap's");
    is_int(sr_publisher__refused_limit(406, t, 20), 0, "a cut text: no limit");
    t = "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x'";
    is_int(sr_publisher__refused_limit(406, t, strlen(t)), 0, "another 406: no limit");
    t = "NOT_FOUND - message size 10 is larger than configured max size 5";
    is_int(sr_publisher__refused_limit(404, t, strlen(t)), 0, "another code: no limit");
    t = "PRECONDITION_FAILED - message size 10 is larger than configured max size x";
    is_int(sr_publisher__refused_limit(406, t, strlen(t)), 0, "no number: no limit");

    /* The outbox gives up one message without counting it as a drop. */
    struct sr_pub_outbox ob;
    sr_publisher__outbox_init(&ob, 8, 4);
    for (int i = 1; i <= 3; i++)
        sr_publisher__outbox_push(&ob, sr_publisher__msg_new(sr_event_new((uint64_t)i, "k", "{}", 2), 0),
                                  false);
    struct sr_pub_msg *m = sr_publisher__outbox_next(&ob);
    sr_publisher__outbox_sent(&ob, m, 1);
    sr_publisher__outbox_reset(&ob); /* the channel closed: 1 will be resent */
    m = sr_publisher__outbox_next(&ob);
    is_int(sr_event_revision(m->ev), 1, "the resend comes first");
    sr_publisher__outbox_remove(&ob, m);
    is_int(ob.count, 2, "removed");
    is_int(ob.dropped, 0, "not counted as an outbox drop");
    ok(!ob.resync, "no resync for it");
    m = sr_publisher__outbox_next(&ob);
    is_int(sr_event_revision(m->ev), 2, "the next one follows");
    sr_publisher__outbox_clear(&ob);
}

/* ---- the listener, with the thread never started ------------------------------- */

static void test_listener(void)
{
    char err[256];
    struct sr_cache *c = sr_cache_new();
    struct sr_publisher_opts o = {.url = "amqp://u:p@127.0.0.1:1/", .outbox_max = 3};
    struct sr_publisher *p = sr_publisher_new(&o, c, err, sizeof(err));
    ok(p != NULL, "publisher created (no I/O yet)");
    struct sr_publisher_status st;
    sr_publisher_get_status(p, &st);
    is_int(st.state, SR_PUBLISHER_CONNECTING, "state before start: connecting");
    is_str(st.broker, "amqp://u@127.0.0.1:1/%2F", "broker shown without password");
    is_str(st.exchange, "service-registry", "default exchange");

    json_t *j = sr_publisher_status_json(p);
    ok(json_is_true(json_object_get(j, "enabled")), "status JSON: enabled");
    is_str(json_string_value(json_object_get(j, "status")), "connecting", "status JSON: status");
    ok(json_is_false(json_object_get(j, "connected")), "status JSON: not connected");
    is_str(json_string_value(json_object_get(j, "broker")), "amqp://u@127.0.0.1:1/%2F",
           "status JSON: broker without password");
    ok(json_is_null(json_object_get(j, "last_error")), "status JSON: no error yet is null");
    is_int(json_integer_value(json_object_get(j, "outbox_max")), 3, "status JSON: outbox_max");
    json_decref(j);

    sr_cache_upsert(c, svc("id-1", "one", 1));
    sr_cache_upsert(c, svc("id-1", "one", 2));
    sr_cache_remove(c, "id-1");
    sr_publisher_get_status(p, &st);
    is_int(st.queued, 3, "added, updated, removed: three queued");
    is_int(st.dropped, 0, "nothing dropped yet");

    struct sr_svc *all[2] = {svc("id-2", "two", 1), svc("id-3", "three", 1)};
    sr_cache_replace(c, all, 2, NULL);
    sr_publisher_get_status(p, &st);
    is_int(st.queued, 3, "full refresh (2 adds + services.updated): still bounded to 3");
    is_int(st.dropped, 3, "three oldest dropped");

    struct sr_svc *same[2] = {svc("id-2", "two", 1), svc("id-3", "three", 1)};
    sr_cache_replace(c, same, 2, NULL);
    sr_publisher_get_status(p, &st);
    is_int(st.dropped, 3, "a refresh that changed nothing publishes nothing");

    sr_cache_set_metrics(c, "id-2", json_pack("{s:f}", "cpu_percent", 1.5));
    sr_publisher_get_status(p, &st);
    is_int(st.dropped, 4, "a metrics change is queued too (metrics.two)");

    sr_publisher_publish(p, "custom.event", 5, "payload", json_pack("{s:i}", "x", 1));
    sr_publisher_get_status(p, &st);
    is_int(st.dropped, 5, "sr_publisher_publish goes through the same bound");
    sr_publisher_publish(p, "", 5, "payload", json_pack("{s:i}", "x", 1));
    sr_publisher_get_status(p, &st);
    is_int(st.dropped, 5, "an empty event name is refused");

    sr_publisher_stop(p, 100); /* never started: nothing to join */
    is_int(sr_cache_event_listener_count(c), 1, "the publisher listens to the cache");
    sr_publisher_free(p);
    /* Its listener went with it, so this write reaches nothing freed (ASan). */
    is_int(sr_cache_event_listener_count(c), 0, "sr_publisher_free removes its listener");
    sr_cache_upsert(c, svc("id-after", "after", 1));
    sr_cache_free(c);

    /* Disabled. */
    c = sr_cache_new();
    o = (struct sr_publisher_opts){.url = "", .exchange = "ex"};
    p = sr_publisher_new(&o, c, err, sizeof(err));
    ok(p != NULL, "disabled publisher is an object");
    is_int(sr_publisher_start(p), 0, "start: no-op");
    sr_publisher_publish(p, "x", 1, "k", json_object());
    sr_cache_upsert(c, svc("id-1", "one", 1));
    sr_publisher_get_status(p, &st);
    is_int(st.state, SR_PUBLISHER_DISABLED, "state disabled");
    is_str(sr_publisher_state_name(st.state), "disabled", "state name");
    is_int(st.queued, 0, "nothing queued");
    is_str(st.exchange, "ex", "exchange still shown");
    j = sr_publisher_status_json(p);
    ok(json_is_false(json_object_get(j, "enabled")), "disabled status JSON: enabled false");
    is_str(json_string_value(json_object_get(j, "status")), "disabled", "... status disabled");
    ok(json_is_null(json_object_get(j, "broker")), "... broker null");
    is_str(json_string_value(json_object_get(j, "exchange")), "ex", "... exchange");
    json_decref(j);
    sr_publisher_stop(p, 0);
    sr_publisher_free(p);
    sr_publisher_free(NULL);
    sr_publisher_stop(NULL, 0);
    sr_cache_free(c);
}

int main(void)
{
    json_object_seed(0);
    test_url();
    test_bodies();
    test_outbox();
    test_backoff();
    test_refused_limit();
    test_listener();
    return tap_done();
}
