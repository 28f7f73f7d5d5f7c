/* Many readers and one writer swapping snapshots (run under TSan too).
 * Readers check that each snapshot is self-consistent and that the version
 * they see never goes down. Meanwhile another thread adds and removes event
 * listeners whose state it frees right after removal: a call after
 * sr_cache_remove_event_listener returned would be a use after free (ASan)
 * or a race on its plain counter (TSan). */
#include "cache/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"

#define READERS 4
#define ROUNDS 2000

static struct sr_cache *cache;
static atomic_int stop;
static atomic_int errors;
static atomic_long reads;

static atomic_long heard; /* listeners that heard at least one commit */
static atomic_long churns;
static atomic_int churn_quit;

struct counter {
    long calls; /* plain: written by the writer, read after removal */
};

static void on_events(struct sr_event *const *evs, size_t n, void *arg)
{
    (void)evs;
    struct counter *c = arg;
    c->calls += (long)n;
}

static void *churner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        struct counter *c = calloc(1, sizeof(*c));
        if (sr_cache_add_event_listener(cache, on_events, c) != 0) {
            atomic_fetch_add(&errors, 1);
            free(c);
            atomic_store(&churn_quit, 1);
            break;
        }
        /* Stay registered across a few commits. */
        uint64_t v0 = sr_cache_version(cache);
        while (!atomic_load(&stop) && sr_cache_version(cache) < v0 + 3)
            ;
        if (sr_cache_remove_event_listener(cache, on_events, c) != 0)
            atomic_fetch_add(&errors, 1);
        if (c->calls > 0)
            atomic_fetch_add(&heard, 1);
        free(c);
        atomic_fetch_add(&churns, 1);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    uint64_t last = 0;
    while (!atomic_load(&stop)) {
        struct sr_snapshot *s = sr_cache_acquire(cache);
        uint64_t v = sr_snapshot_version(s);
        if (v < last)
            atomic_fetch_add(&errors, 1);
        last = v;
        size_t len;
        const char *body = sr_snapshot_list_body(s, &len);
        char want[64];
        snprintf(want, sizeof(want), "\"count\":%zu,", sr_snapshot_count(s));
        if (memmem(body, len, want, strlen(want)) == NULL)
            atomic_fetch_add(&errors, 1);
        for (size_t i = 0; i < sr_snapshot_count(s); i++) {
            const struct sr_svc *x = sr_snapshot_at(s, i);
            if (sr_snapshot_find(s, sr_svc_name(x)) != x)
                atomic_fetch_add(&errors, 1);
        }
        sr_snapshot_release(s);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

int main(void)
{
    cache = sr_cache_new();
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, NULL);
    pthread_t ch;
    pthread_create(&ch, NULL, churner, NULL);

    /* Past ROUNDS, writes go on until the churner has done its part. */
    for (int r = 0; r < ROUNDS || (atomic_load(&churns) < 10 && !atomic_load(&churn_quit)); r++) {
        char id[32], name[32];
        snprintf(id, sizeof(id), "id-%d", r % 50);
        snprintf(name, sizeof(name), "svc-%d", r % 50);
        if (r % 7 == 0) {
            sr_cache_remove(cache, id);
        } else if (r % 100 == 99) {
            struct sr_svc *all[10];
            for (int k = 0; k < 10; k++) {
                snprintf(id, sizeof(id), "id-%d", k);
                snprintf(name, sizeof(name), "svc-%d", k);
                all[k] = sr_svc_new(json_pack("{s:s,s:s,s:i}", "id", id, "name", name, "r", r));
            }
            sr_cache_replace(cache, all, 10, NULL);
        } else {
            sr_cache_upsert(cache, sr_svc_new(json_pack("{s:s,s:s,s:i}", "id", id, "name", name,
                                                        "r", r)));
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    pthread_join(ch, NULL);

    is_int(atomic_load(&errors), 0, "readers saw consistent, monotonic snapshots; "
                                    "listeners added and removed cleanly");
    ok(atomic_load(&churns) > 0 && atomic_load(&heard) > 0,
       "listeners came and went while the writer ran, and heard commits");
    ok(atomic_load(&reads) > 0, "readers ran");
    struct sr_cache_stats st;
    sr_cache_get_stats(cache, &st);
    ok(st.version >= ROUNDS / 2, "versions advanced");
    sr_cache_free(cache);
    return tap_done();
}
