/* The response HPACK encoder (api/hpack.c), checked against nghttp2's
 * decoder: every block must decode to exactly the fields encoded, with the
 * decoder's table kept across blocks as a client's is. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"
#include "tests/unit/tap.h"

static const char *const key_names[SR_API_H__COUNT] = {
    ":status", "content-type", "content-length", "date", "server",
    "cache-control", "etag", "allow", "x-registry-index",
};

/* Decodes block and compares it with f. Returns 1 when they match. */
static int decodes_to(nghttp2_hd_inflater *inf, const uint8_t *in, size_t len,
                      const struct sr_api__hfield *f, size_t n)
{
    size_t got = 0;
    int ok = 1;
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t k = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, len, 1);
        if (k < 0) {
            printf("#   decoder: %s\n", nghttp2_strerror((int)k));
            return 0;
        }
        in += k;
        len -= (size_t)k;
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
            const char *name = got < n ? key_names[f[got].key] : "";
            if (got >= n || nv.namelen != strlen(name) || memcmp(nv.name, name, nv.namelen) ||
                nv.valuelen != f[got].len || memcmp(nv.value, f[got].value, nv.valuelen)) {
                printf("#   field %zu: got %.*s: %.*s\n", got, (int)nv.namelen, nv.name,
                     (int)nv.valuelen, nv.value);
                ok = 0;
            }
            got++;
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            break;
        }
        if (k == 0 && len == 0)
            break;
    }
    return ok && got == n;
}

#define F(k, v) ((struct sr_api__hfield){(k), (v), strlen(v)})

static void test_repeat(void)
{
    struct sr_api__hpack e;
    sr_api__hpack_init(&e);
    nghttp2_hd_inflater *inf;
    nghttp2_hd_inflate_new(&inf);
    struct sr_api__hfield f[] = {
        F(SR_API_H_STATUS, "200"),
        F(SR_API_H_CONTENT_TYPE, "application/json"),
        F(SR_API_H_CONTENT_LENGTH, "765"),
        F(SR_API_H_DATE, "Tue, 24 Nov 2026 16:24:47 GMT"),
        F(SR_API_H_SERVER, "swarm-registry/0.1.0"),
        F(SR_API_H_CACHE_CONTROL, "no-cache"),
        F(SR_API_H_ETAG, "\"v0-d4c03ba3\""),
        F(SR_API_H_REGISTRY_INDEX, "0"),
    };
    size_t n = sizeof(f) / sizeof(f[0]);
    uint8_t buf[1024];
    ssize_t k = sr_api__hpack_encode(&e, f, n, buf, sizeof(buf));
    ok(k > 0 && decodes_to(inf, buf, (size_t)k, f, n), "a first response decodes");
    is_int(buf[0], 0x88, ":status 200 is the static table's entry 8");
    ok(memchr(buf, 'x', (size_t)k) != NULL, "x-registry-index (no static name) is sent literally");
    k = sr_api__hpack_encode(&e, f, n, buf, sizeof(buf));
    is_int(k, (long)n, "a repeated response is one byte per field");
    ok(decodes_to(inf, buf, (size_t)k, f, n), "and decodes");

    /* Some fields change: the rest stay indexed, the new values are added. */
    f[2] = F(SR_API_H_CONTENT_LENGTH, "43");
    f[6] = F(SR_API_H_ETAG, "\"v0-services\"");
    k = sr_api__hpack_encode(&e, f, n, buf, sizeof(buf));
    ok(k > 0 && decodes_to(inf, buf, (size_t)k, f, n), "changed fields decode");
    f[2] = F(SR_API_H_CONTENT_LENGTH, "765");
    f[6] = F(SR_API_H_ETAG, "\"v0-d4c03ba3\"");
    k = sr_api__hpack_encode(&e, f, n, buf, sizeof(buf));
    is_int(k, (long)n, "going back to an older answer finds its entries");
    ok(decodes_to(inf, buf, (size_t)k, f, n), "and decodes");

    struct sr_api__hfield s405[] = {F(SR_API_H_STATUS, "405"), F(SR_API_H_ALLOW, "GET, HEAD")};
    k = sr_api__hpack_encode(&e, s405, 2, buf, sizeof(buf));
    ok(k > 2 && decodes_to(inf, buf, (size_t)k, s405, 2), "a status without a static entry");
    k = sr_api__hpack_encode(&e, s405, 2, buf, sizeof(buf));
    is_int(k, 2, "is indexed the second time");
    ok(decodes_to(inf, buf, (size_t)k, s405, 2), "and decodes");

    ok(sr_api__hpack_encode(&e, f, n, buf, 5) < 0, "a block larger than the buffer fails");
    nghttp2_hd_inflate_del(inf);
    sr_api__hpack_clear(&e);
}

/* Many distinct values: entries are evicted, indexes pass 127 (multi-byte
 * integers), and old entries are found by scanning. The decoder errs on any
 * index the encoder's table and its own disagree on. */
static void test_churn(void)
{
    struct sr_api__hpack e;
    sr_api__hpack_init(&e);
    nghttp2_hd_inflater *inf;
    nghttp2_hd_inflate_new(&inf);
    uint32_t x = 12345;
    int good = 0, rounds = 3000;
    char vals[4][200];
    for (int i = 0; i < rounds; i++) {
        x = x * 1103515245u + 12345u;
        /* A small set of values so that some repeat from deep in the table. */
        snprintf(vals[0], sizeof(vals[0]), "\"v%u\"", (x >> 8) % 160);
        snprintf(vals[1], sizeof(vals[1]), "%u", (x >> 4) % 7);
        /* Some long enough to need a multi-byte length. */
        memset(vals[2], 'a' + (int)(x % 26), 150);
        vals[2][(x >> 12) % 150] = '\0';
        snprintf(vals[3], sizeof(vals[3]), "%u", i);
        struct sr_api__hfield f[] = {
            F(SR_API_H_STATUS, (x & 1) ? "200" : "503"),
            F(SR_API_H_ETAG, vals[0]),
            F(SR_API_H_CONTENT_LENGTH, vals[1]),
            F(SR_API_H_ALLOW, vals[2]),
            F(SR_API_H_REGISTRY_INDEX, vals[3]),
        };
        uint8_t buf[1024];
        ssize_t k = sr_api__hpack_encode(&e, f, 5, buf, sizeof(buf));
        good += k > 0 && decodes_to(inf, buf, (size_t)k, f, 5);
        if (e.size > e.max)
            break;
    }
    is_int(good, rounds, "3000 blocks with evictions all decode");
    ok(e.size <= SR_API_HPACK_TABLE_MAX && e.n > 20, "the table stays within its maximum");
    nghttp2_hd_inflate_del(inf);
    sr_api__hpack_clear(&e);
}

/* SETTINGS_HEADER_TABLE_SIZE from the client (RFC 7541 §4.2). */
static void test_limits(void)
{
    struct sr_api__hpack e;
    sr_api__hpack_init(&e);
    nghttp2_hd_inflater *inf;
    nghttp2_hd_inflate_new(&inf);
    struct sr_api__hfield f[] = {F(SR_API_H_STATUS, "200"), F(SR_API_H_SERVER, "s/1"),
                                 F(SR_API_H_CACHE_CONTROL, "no-cache")};
    uint8_t buf[256];
    ssize_t k = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    ok(k > 3 && decodes_to(inf, buf, (size_t)k, f, 3), "fields are indexed at the default size");

    sr_api__hpack_limit(&e, 65536);
    k = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    is_int(k, 3, "a larger peer maximum changes nothing (no size update)");
    nghttp2_hd_inflate_change_table_size(inf, 65536);
    ok(decodes_to(inf, buf, (size_t)k, f, 3), "and decodes");

    sr_api__hpack_limit(&e, 0);
    nghttp2_hd_inflate_change_table_size(inf, 0);
    k = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    ok(k > 3 && buf[0] == 0x20, "a table size of 0: the block starts with a size update to 0");
    ok(decodes_to(inf, buf, (size_t)k, f, 3), "and decodes");
    ssize_t k2 = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    ok(k2 == k - 1 && decodes_to(inf, buf, (size_t)k2, f, 3),
       "with no table, fields stay literals (and the update is not repeated)");

    /* Down to 100 and back up to 4096 between two blocks: both are signalled,
     * the smaller first. */
    sr_api__hpack_limit(&e, 100);
    nghttp2_hd_inflate_change_table_size(inf, 100);
    sr_api__hpack_limit(&e, 4096);
    nghttp2_hd_inflate_change_table_size(inf, 4096);
    k = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    ok(k > 5 && buf[0] == 0x3f && buf[1] == 100 - 31 && buf[2] == 0x3f,
       "a decrease then an increase: two size updates, the smaller first");
    ok(decodes_to(inf, buf, (size_t)k, f, 3), "and decodes");
    k = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    is_int(k, 3, "fields are indexed again after");
    ok(decodes_to(inf, buf, (size_t)k, f, 3), "and decode");

    /* An entry bigger than 3/4 of the table is not added. */
    sr_api__hpack_limit(&e, 50);
    nghttp2_hd_inflate_change_table_size(inf, 50);
    k = sr_api__hpack_encode(&e, f, 3, buf, sizeof(buf));
    ok(k > 3 && decodes_to(inf, buf, (size_t)k, f, 3), "a 50-byte table takes no 41-byte entry");
    is_int(e.n, 0, "and holds none");
    nghttp2_hd_inflate_del(inf);
    sr_api__hpack_clear(&e);
}

int main(void)
{
    test_repeat();
    test_churn();
    test_limits();
    return tap_done();
}
