/* cache: snapshots, diffs, versions, listeners, lookups. */
#include "cache/cache.h"

#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"

static struct sr_svc *svc(const char *id, const char *name, int replicas)
{
    return sr_svc_new(json_pack("{s:s, s:s, s:i}", "id", id, "name", name, "replicas", replicas));
}

struct seen {
    int calls;
    size_t added, updated, removed;
    uint64_t last_version;
    enum sr_commit_reason reason;
    int versions_grow;
};

static void on_change(const struct sr_change *ch, size_t n, enum sr_commit_reason reason,
                      const struct sr_snapshot *snap, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->reason = reason;
    for (size_t i = 0; i < n; i++) {
        if (ch[i].version <= s->last_version)
            s->versions_grow = 0;
        s->last_version = ch[i].version;
        if (ch[i].kind == SR_CHANGE_ADDED)
            s->added++;
        else if (ch[i].kind == SR_CHANGE_UPDATED)
            s->updated++;
        else
            s->removed++;
    }
    if (sr_snapshot_version(snap) < s->last_version)
        s->versions_grow = 0;
}

/* Event listeners record the order they were called in. */
struct heard {
    int *log;
    int *nlog;
    int tag;
};

static void on_events(struct sr_event *const *evs, size_t n, void *arg)
{
    (void)evs;
    (void)n;
    struct heard *h = arg;
    h->log[(*h->nlog)++] = h->tag;
}

/* A base version: revisions go on from it (the registry passes its start
 * time in µs, so a restart never reuses one). */
static void test_base_version(void)
{
    struct sr_cache *c = sr_cache_new();
    sr_cache_set_base_version(c, 1000);
    is_int(sr_cache_version(c), 1000, "an empty cache at the base");
    struct sr_snapshot *s = sr_cache_acquire(c);
    is_int(sr_snapshot_services_version(s), 1000, "services version at the base");
    size_t len;
    is_str(sr_snapshot_list_body(s, &len), "{\"services\":[],\"count\":0,\"cache_version\":1000}",
           "the empty list shows it");
    sr_snapshot_release(s);
    struct sr_svc *two[2] = {svc("v-1", "one", 1), svc("v-2", "two", 1)};
    sr_cache_replace(c, two, 2, NULL);
    is_int(sr_cache_version(c), 1003, "two adds and the services.updated: 1001..1003");
    sr_cache_set_metrics(c, "v-1", json_pack("{s:i}", "cpu", 1));
    s = sr_cache_acquire(c);
    is_int(sr_snapshot_version(s), 1004, "a metrics commit moves the version");
    is_int(sr_snapshot_services_version(s), 1003, "... not the services version");
    sr_snapshot_release(s);
    sr_cache_free(c);
}

/* A metrics batch is one commit, with one change (and event) per item. */
static void test_metrics_batch(void)
{
    struct sr_cache *c = sr_cache_new();
    struct sr_svc *three[3] = {svc("b-1", "one", 1), svc("b-2", "two", 1), svc("b-3", "three", 1)};
    sr_cache_replace(c, three, 3, NULL); /* revisions 1..3, services.updated 4 */
    is_int(sr_cache_set_metrics(c, "b-3", json_pack("{s:i}", "cpu", 3)), 1, "b-3 has metrics");
    struct seen seen = {.versions_grow = 1};
    sr_cache_add_listener(c, on_change, &seen);
    struct sr_metrics_item items[] = {
        {"b-1", json_pack("{s:i}", "cpu", 10), 7},
        {"gone", json_pack("{s:i}", "cpu", 11), 7},
        {"b-2", json_pack("[i]", 12), 7},
        {"b-2", json_pack("{s:i}", "cpu", 13), 7},
        {"b-1", json_pack("{s:i}", "cpu", 14), 7},
    };
    is_int(sr_cache_set_metrics_batch(c, items, 5), 3, "three of five stored");
    is_int(items[0].result, 1, "item 0 stored");
    is_int(items[1].result, 0, "an unknown service: 0");
    is_int(items[2].result, -1, "not an object: -1");
    is_int(items[3].result, 1, "item 3 stored");
    ok(items[0].doc == NULL && items[1].doc == NULL && items[4].doc == NULL, "docs stolen");
    is_int(seen.calls, 1, "one commit for the batch");
    is_int(seen.reason, SR_COMMIT_METRICS, "reason metrics");
    is_int(seen.last_version, 8, "one revision per stored item (6, 7, 8)");
    struct sr_snapshot *s = sr_cache_acquire(c);
    is_int(sr_snapshot_version(s), 8, "snapshot at the last revision");
    is_int(sr_snapshot_metrics_count(s), 3, "three metrics entries");
    is_str(sr_svc_body(sr_snapshot_metrics(s, "one"), NULL), "{\"cpu\":14}",
           "the later item of an id stays");
    is_str(sr_svc_body(sr_snapshot_metrics(s, "two"), NULL), "{\"cpu\":13}", "two stored");
    is_str(sr_svc_body(sr_snapshot_metrics(s, "three"), NULL), "{\"cpu\":3}",
           "an entry the batch does not name is kept");
    sr_snapshot_release(s);
    struct sr_event *evs[8];
    uint64_t oldest;
    size_t n = sr_cache_events_since(c, 5, evs, 8, &oldest);
    is_int(n, 3, "three events");
    is_str(sr_event_key(evs[0]), "metrics.one", "events in item order (0)");
    is_str(sr_event_key(evs[1]), "metrics.two", "events in item order (1)");
    is_str(sr_event_key(evs[2]), "metrics.one", "events in item order (2)");
    for (size_t i = 0; i < n; i++)
        sr_event_release(evs[i]);
    struct sr_metrics_item none[] = {{"gone", json_pack("{s:i}", "cpu", 1), 7}};
    is_int(sr_cache_set_metrics_batch(c, none, 1), 0, "nothing stored");
    is_int(sr_cache_set_metrics_batch(c, NULL, 0), 0, "empty batch");
    is_int(seen.calls, 1, "no commit when nothing is stored");
    is_int(sr_cache_version(c), 8, "version unchanged");
    sr_cache_free(c);
}

static void test_event_listener_removal(void)
{
    struct sr_cache *c = sr_cache_new();
    int log[16], nlog = 0;
    struct heard a = {log, &nlog, 1}, b = {log, &nlog, 2}, d = {log, &nlog, 3};
    ok(sr_cache_add_event_listener(c, on_events, &a) == 0 &&
           sr_cache_add_event_listener(c, on_events, &b) == 0 &&
           sr_cache_add_event_listener(c, on_events, &d) == 0,
       "three event listeners registered");
    sr_cache_upsert(c, svc("l-1", "one", 1));
    ok(nlog == 3 && log[0] == 1 && log[1] == 2 && log[2] == 3,
       "each heard the commit, in registration order");
    is_int(sr_cache_event_listener_count(c), 3, "three counted");
    ok(sr_cache_remove_event_listener(c, on_events, &b) == 0, "the middle one removed");
    is_int(sr_cache_event_listener_count(c), 2, "two counted");
    is_int(sr_cache_remove_event_listener(c, on_events, &b), -1, "removing it again: -1");
    is_int(sr_cache_remove_event_listener(c, on_events, NULL), -1, "same cb, other arg: -1");
    nlog = 0;
    sr_cache_upsert(c, svc("l-2", "two", 1));
    ok(nlog == 2 && log[0] == 1 && log[1] == 3, "the others still hear, in order");
    ok(sr_cache_remove_event_listener(c, on_events, &a) == 0 &&
           sr_cache_remove_event_listener(c, on_events, &d) == 0,
       "the rest removed");
    nlog = 0;
    sr_cache_upsert(c, svc("l-3", "three", 1));
    is_int(nlog, 0, "nobody hears once all are removed");
    int added = 0;
    struct heard many = {log, &nlog, 0};
    while (sr_cache_add_event_listener(c, on_events, &many) == 0 && added < 64)
        added++;
    ok(added > 0 && added < 64, "the listener table is bounded");
    ok(sr_cache_remove_event_listener(c, on_events, &many) == 0 &&
           sr_cache_add_event_listener(c, on_events, &many) == 0,
       "a removal frees a slot");
    sr_cache_free(c);
}

static void test_source_calls(void)
{
    struct sr_cache *c = sr_cache_new();
    sr_cache_count_source_call(c, SR_CALL_SERVICES, false, 0.003);
    sr_cache_count_source_call(c, SR_CALL_SERVICES, true, 0.2);
    sr_cache_count_source_call(c, SR_CALL_SERVICES, false, 30);
    sr_cache_count_source_call(c, SR_CALL_EVENTS, true, -1);
    sr_cache_count_source_call(c, SR_CALL_COUNT, false, 0.001);
    struct sr_cache_stats st;
    sr_cache_get_stats(c, &st);
    const struct sr_source_calls *k = &st.calls;
    ok(k->calls[SR_CALL_SERVICES] == 3 && k->errors[SR_CALL_SERVICES] == 1,
       "calls and errors counted by kind");
    ok(k->timed[SR_CALL_SERVICES] == 3 && k->seconds[SR_CALL_SERVICES] > 30.2 &&
           k->seconds[SR_CALL_SERVICES] < 30.21,
       "durations summed");
    /* Buckets are cumulative: 0.003 s is in every bucket from 0.005 s up,
     * 0.2 s from 0.25 s up, and 30 s only in +Inf (timed). */
    int bad = 0;
    for (int i = 0; i < SR_CALL_BUCKETS; i++) {
        double le = sr_source_call_bounds[i];
        uint64_t want = (le >= 0.003) + (le >= 0.2);
        bad += k->le[SR_CALL_SERVICES][i] != want;
        if (i > 0 && sr_source_call_bounds[i] <= sr_source_call_bounds[i - 1])
            bad++;
    }
    is_int(bad, 0, "histogram buckets cumulative, bounds increasing");
    ok(k->calls[SR_CALL_EVENTS] == 1 && k->errors[SR_CALL_EVENTS] == 1 &&
           k->timed[SR_CALL_EVENTS] == 0,
       "a stream is counted without a duration");
    ok(k->calls[SR_CALL_OTHER] == 1 && k->timed[SR_CALL_OTHER] == 1, "an unknown kind is other");
    sr_cache_free(c);
}

int main(void)
{
    test_event_listener_removal();
    test_source_calls();
    struct sr_cache *c = sr_cache_new();
    struct seen seen = {.versions_grow = 1};
    ok(sr_cache_add_listener(c, on_change, &seen) == 0, "listener registered");

    struct sr_snapshot *s0 = sr_cache_acquire(c);
    is_int(sr_snapshot_version(s0), 0, "empty cache has version 0");
    is_int(sr_snapshot_count(s0), 0, "empty cache has no services");
    size_t len;
    is_str(sr_snapshot_list_body(s0, &len), "{\"services\":[],\"count\":0,\"cache_version\":0}",
           "empty list body");

    ok(sr_svc_new(json_pack("{s:s}", "id", "x")) == NULL, "svc without name is refused");
    ok(sr_svc_new(json_pack("{s:s,s:s}", "id", "", "name", "n")) == NULL, "empty id refused");

    struct sr_svc *batch[3] = {svc("id-b", "web", 1), svc("id-a", "api", 1), svc("id-c", "db", 1)};
    struct sr_cache_diff d;
    is_int(sr_cache_replace(c, batch, 3, &d), 3, "first refresh: 3 changes");
    is_int(d.added, 3, "3 added");
    is_int(seen.calls, 1, "listener called once per commit");
    is_int(seen.reason, SR_COMMIT_FULL_REFRESH, "reason full refresh");

    is_int(sr_snapshot_version(s0), 0, "an old snapshot never changes");
    sr_snapshot_release(s0);

    struct sr_snapshot *s1 = sr_cache_acquire(c);
    is_int(sr_snapshot_version(s1), 4, "version counts every change, and the refresh itself");
    is_str(sr_svc_name(sr_snapshot_at(s1, 0)), "api", "sorted by name (0)");
    is_str(sr_svc_name(sr_snapshot_at(s1, 2)), "web", "sorted by name (2)");
    ok(sr_snapshot_find(s1, "db") != NULL, "find by name");
    ok(sr_snapshot_find(s1, "d") == NULL, "no prefix match");
    ok(sr_snapshot_find(s1, "zzz") == NULL, "unknown name");
    is_str(sr_svc_id(sr_snapshot_find_id(s1, "id-c")), "id-c", "find by id");
    const char *body = sr_snapshot_list_body(s1, &len);
    json_error_t jerr;
    json_t *parsed = json_loadb(body, len, 0, &jerr);
    ok(parsed != NULL, "list body is JSON");
    is_int(json_integer_value(json_object_get(parsed, "count")), 3, "list body count");
    is_int(json_integer_value(json_object_get(parsed, "cache_version")), 4, "list body version");
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(parsed, "services"), 0),
                                             "name")),
           "api", "list body first service");
    json_decref(parsed);

    /* Same content again: no change, same entries kept. */
    const struct sr_svc *api_before = sr_snapshot_find(s1, "api");
    struct sr_svc *same[3] = {svc("id-a", "api", 1), svc("id-b", "web", 1), svc("id-c", "db", 1)};
    is_int(sr_cache_replace(c, same, 3, &d), 0, "identical refresh: no change");
    is_int(seen.calls, 1, "no listener call without change");
    struct sr_snapshot *s2 = sr_cache_acquire(c);
    ok(s2 == s1, "identical refresh keeps the snapshot");
    ok(sr_snapshot_find(s2, "api") == api_before, "entries are shared");
    sr_snapshot_release(s2);

    /* Update one, remove one, add one. */
    struct sr_svc *next[3] = {svc("id-a", "api", 2), svc("id-b", "web", 1), svc("id-d", "cache", 1)};
    is_int(sr_cache_replace(c, next, 3, &d), 3, "mixed refresh: 3 changes");
    ok(d.added == 1 && d.updated == 1 && d.removed == 1, "diff counts 1/1/1");
    struct sr_snapshot *s3 = sr_cache_acquire(c);
    is_int(sr_snapshot_version(s3), 8, "version 8 (3 changes + the refresh)");
    ok(sr_snapshot_find(s3, "db") == NULL, "removed service gone");
    ok(sr_snapshot_find(s3, "web") == sr_snapshot_find(s1, "web"), "unchanged entry shared");
    is_int(json_integer_value(json_object_get(sr_svc_doc(sr_snapshot_find(s3, "api")), "replicas")),
           2, "updated entry has new content");
    ok(sr_snapshot_find(s1, "db") != NULL, "old snapshot still intact");
    sr_snapshot_release(s1);
    sr_snapshot_release(s3);

    /* Single-service writes. */
    is_int(sr_cache_upsert(c, svc("id-a", "api", 2)), 0, "upsert identical: no change");
    is_int(sr_cache_upsert(c, svc("id-a", "api", 5)), 1, "upsert changed");
    is_int(seen.reason, SR_COMMIT_EVENT, "reason event");
    is_int(sr_cache_upsert(c, svc("id-e", "new", 1)), 1, "upsert new");
    is_int(sr_cache_remove(c, "id-zzz"), 0, "remove unknown: no change");
    is_int(sr_cache_remove(c, "id-b"), 1, "remove known");
    struct sr_cache_stats st;
    sr_cache_get_stats(c, &st);
    is_int(st.version, 11, "stats version");
    is_int(st.services, 3, "stats services");
    is_int(st.added, 5, "stats added");
    is_int(st.updated, 2, "stats updated");
    is_int(st.removed, 2, "stats removed");
    is_int(st.refreshes, 3, "stats refreshes");
    ok(st.last_refresh > 0, "last refresh recorded");

    is_int(sr_cache_clear(c), 3, "clear returns count");
    is_int(seen.reason, SR_COMMIT_CLEAR, "reason clear");
    sr_cache_get_stats(c, &st);
    is_int(st.services, 0, "cleared");
    is_int(st.version, 14, "clear bumps version per service");
    is_int(st.clears, 1, "clears counted");
    is_int(sr_cache_clear(c), 0, "clear of empty cache");
    ok(seen.versions_grow, "versions seen by listener only grow");
    is_int(seen.added + seen.updated + seen.removed, 12, "listener saw every change");

    struct sr_source_status src = {.state = SR_SOURCE_UNREACHABLE};
    strcpy(src.reason, "connect failed");
    sr_cache_set_source(c, &src);
    sr_cache_get_stats(c, &st);
    is_int(st.source.state, SR_SOURCE_UNREACHABLE, "source state stored");
    is_str(st.source.reason, "connect failed", "source reason stored");

    sr_cache_free(c);

    /* Metrics follow their service. */
    c = sr_cache_new();
    struct sr_svc *two[2] = {svc("m-1", "alpha", 1), svc("m-2", "beta", 1)};
    sr_cache_replace(c, two, 2, NULL);
    is_int(sr_cache_set_metrics(c, "nope", json_pack("{s:i}", "cpu", 1)), 0,
           "metrics for an unknown service are dropped");
    is_int(sr_cache_set_metrics(c, "m-1", json_pack("{s:i}", "cpu", 42)), 1, "metrics stored");
    is_int(sr_cache_set_metrics(c, "m-2", json_pack("{s:i}", "cpu", 7)), 1, "metrics stored (2)");
    struct sr_snapshot *ms = sr_cache_acquire(c);
    is_int(sr_snapshot_version(ms), 5, "each metrics update is a change");
    is_int(sr_snapshot_metrics_count(ms), 2, "two metrics entries");
    const struct sr_svc *m = sr_snapshot_metrics(ms, "alpha");
    ok(m != NULL, "metrics found by service name");
    is_str(sr_svc_body(m, NULL), "{\"cpu\":42}", "metrics body");
    is_str(sr_svc_id(m), "m-1", "metrics entry carries the service id");
    ok(sr_snapshot_metrics(ms, "gamma") == NULL, "no metrics for unknown name");
    sr_snapshot_release(ms);
    sr_cache_upsert(c, svc("m-2", "beta", 3));
    ms = sr_cache_acquire(c);
    ok(sr_snapshot_metrics(ms, "alpha") != NULL && sr_snapshot_metrics(ms, "beta") != NULL,
       "metrics survive an update of the service");
    sr_snapshot_release(ms);
    sr_cache_remove(c, "m-1");
    ms = sr_cache_acquire(c);
    ok(sr_snapshot_metrics(ms, "alpha") == NULL, "metrics leave with their service");
    is_int(sr_snapshot_metrics_count(ms), 1, "one metrics entry left");
    sr_snapshot_release(ms);
    sr_cache_get_stats(c, &st);
    is_int(st.metrics, 1, "stats count metrics entries");
    is_int(st.metrics_updates, 2, "stats count metrics updates");
    struct sr_svc *none[1];
    sr_cache_replace(c, none, 0, NULL);
    sr_cache_get_stats(c, &st);
    is_int(st.metrics, 0, "a full refresh without the service drops its metrics");
    struct sr_svc *back[1] = {svc("m-2", "beta", 3)};
    sr_cache_replace(c, back, 1, NULL);
    sr_cache_set_metrics(c, "m-2", json_pack("{s:i}", "cpu", 1));
    sr_cache_clear(c);
    sr_cache_get_stats(c, &st);
    is_int(st.metrics, 0, "clear drops metrics");
    sr_cache_free(c);

    test_metrics_batch();
    test_base_version();

    /* The change feed. */
    c = sr_cache_new();
    sr_cache_set_log_size(c, 4);
    struct sr_svc *f3[3] = {svc("f-1", "one", 1), svc("f-2", "two", 1), svc("f-3", "three", 1)};
    sr_cache_replace(c, f3, 3, NULL); /* revisions 1..3 + services.updated 4 */
    struct sr_event *evs[16];
    uint64_t oldest;
    size_t n = sr_cache_events_since(c, 0, evs, 16, &oldest);
    is_int(n, 4, "ring holds 4 events");
    is_int(oldest, 1, "oldest revision 1");
    is_str(sr_event_key(evs[0]), "service.added", "first event key");
    is_str(sr_event_key(evs[3]), "services.updated", "full refresh ends with services.updated");
    is_int(sr_event_revision(evs[3]), 4, "services.updated has its own revision");
    json_t *eb = json_loads(sr_event_body(evs[0], NULL), 0, NULL);
    ok(eb != NULL, "event body is JSON");
    is_str(json_string_value(json_object_get(eb, "event")), "service.added", "body.event");
    is_int(json_integer_value(json_object_get(eb, "cache_version")), 1, "body.cache_version");
    ok(json_string_value(json_object_get(eb, "timestamp")) != NULL, "body.timestamp");
    is_str(json_string_value(json_object_get(json_object_get(eb, "service"), "name")), "one",
           "body.service is the record");
    json_decref(eb);
    eb = json_loads(sr_event_body(evs[3], NULL), 0, NULL);
    is_int(json_integer_value(json_object_get(eb, "count")), 3, "services.updated count");
    is_int(json_array_size(json_object_get(eb, "services")), 3, "services.updated list");
    json_decref(eb);
    for (size_t k = 0; k < n; k++)
        sr_event_release(evs[k]);
    sr_cache_set_metrics(c, "f-1", json_pack("{s:f}", "sample_time", 1.5)); /* 5 */
    sr_cache_remove(c, "f-2");                                              /* 6 */
    n = sr_cache_events_since(c, 4, evs, 16, &oldest);
    is_int(n, 2, "events since 4");
    is_str(sr_event_key(evs[0]), "metrics.one", "metrics event key");
    eb = json_loads(sr_event_body(evs[0], NULL), 0, NULL);
    is_str(json_string_value(json_object_get(eb, "service")), "one", "metrics body names service");
    ok(json_is_object(json_object_get(eb, "metrics")), "metrics body carries the doc");
    json_decref(eb);
    is_str(sr_event_key(evs[1]), "service.removed", "removed event");
    eb = json_loads(sr_event_body(evs[1], NULL), 0, NULL);
    ok(json_object_get(eb, "cause") == NULL, "a removal from the swarm has no cause member");
    json_decref(eb);
    for (size_t k = 0; k < n; k++)
        sr_event_release(evs[k]);
    /* POST /cache/clear: each record leaves the cache, marked as such. */
    sr_cache_clear(c); /* 7, 8 */
    is_int(sr_cache_events_since(c, 6, evs, 16, &oldest), 2, "a clear: one event per record");
    for (size_t k = 0; k < 2; k++) {
        eb = json_loads(sr_event_body(evs[k], NULL), 0, NULL);
        is_str(json_string_value(json_object_get(eb, "event")), "service.removed",
               "a clear: service.removed");
        is_str(json_string_value(json_object_get(eb, "cause")), "cache_cleared",
               "... with \"cause\":\"cache_cleared\"");
        json_decref(eb);
        sr_event_release(evs[k]);
    }
    n = sr_cache_events_since(c, 0, evs, 16, &oldest);
    is_int(n, 4, "ring is bounded");
    is_int(oldest, 5, "oldest moved on: a client at 1 must resync");
    for (size_t k = 0; k < n; k++)
        sr_event_release(evs[k]);
    is_int(sr_cache_events_since(c, 8, evs, 16, &oldest), 0, "nothing after the newest");
    is_int(sr_cache_version(c), 8, "sr_cache_version");
    sr_cache_free(c);
    return tap_done();
}
