/* hpack: the HPACK (RFC 7541) encoder for our HTTP/2 response headers.
 *
 * Why our own: nghttp2's encoder never indexes content-length or etag, so
 * every response carried both as Huffman literals that the client decoded
 * again each time. This one indexes every field it can: once a response
 * has gone out, a repeat of it costs one byte per field. nghttp2 still does
 * the framing; http2.c swaps this block into each HEADERS frame as nghttp2
 * sends it, so blocks are encoded in wire order.
 *
 * Literals are not Huffman coded: a new value goes out once and is then
 * indexed, and a plain literal is the cheaper one for the client to read.
 *
 * The dynamic table is an array, oldest entry first. Entries are numbered
 * in insertion order (seq), so the live ones are the last n numbers and an
 * entry's HPACK index follows from its number. A per-key hint remembers the
 * entry last used, so a repeated field is found without a scan. */
#include "api/api_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

#define ENTRY_OVERHEAD 32 /* RFC 7541 §4.1 */
#define STATIC_COUNT 61   /* dynamic indexes start after these */

static const struct {
    const char *name;
    size_t len;
    unsigned static_index; /* of the name in RFC 7541 Appendix A, or 0 */
} names[SR_API_H__COUNT] = {
#define NAME(key, name, index) [key] = {name, sizeof(name) - 1, index}
    NAME(SR_API_H_STATUS, ":status", 8),
    NAME(SR_API_H_CONTENT_TYPE, "content-type", 31),
    NAME(SR_API_H_CONTENT_LENGTH, "content-length", 28),
    NAME(SR_API_H_DATE, "date", 33),
    NAME(SR_API_H_SERVER, "server", 54),
    NAME(SR_API_H_CACHE_CONTROL, "cache-control", 24),
    NAME(SR_API_H_ETAG, "etag", 34),
    NAME(SR_API_H_ALLOW, "allow", 22),
    NAME(SR_API_H_REGISTRY_INDEX, "x-registry-index", 0),
#undef NAME
};

/* Fields of the static table that are whole name-value pairs we send. */
static unsigned static_status(const char *v, size_t len)
{
    static const char codes[][4] = {"200", "204", "206", "304", "400", "404", "500"};
    if (len != 3)
        return 0;
    for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (memcmp(v, codes[i], 3) == 0)
            return 8 + i;
    return 0;
}

void sr_api__hpack_init(struct sr_api__hpack *e)
{
    memset(e, 0, sizeof(*e));
    e->max = SR_API_HPACK_TABLE_MAX;
    e->low = SIZE_MAX;
}

void sr_api__hpack_clear(struct sr_api__hpack *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->ent[i].value);
    free(e->ent);
    sr_api__hpack_init(e);
}

static size_t entry_size(const struct sr_api__hpack_entry *en)
{
    return names[en->key].len + en->len + ENTRY_OVERHEAD;
}

/* Drops the oldest entries until the table fits `max` with `room` more. */
static void evict(struct sr_api__hpack *e, size_t max, size_t room)
{
    size_t k = 0;
    while (k < e->n && e->size + room > max) {
        e->size -= entry_size(&e->ent[k]);
        free(e->ent[k].value);
        k++;
    }
    if (k > 0) {
        memmove(e->ent, e->ent + k, (e->n - k) * sizeof(e->ent[0]));
        e->n -= k;
    }
}

void sr_api__hpack_limit(struct sr_api__hpack *e, uint32_t peer_max)
{
    size_t m = peer_max < SR_API_HPACK_TABLE_MAX ? peer_max : SR_API_HPACK_TABLE_MAX;
    if (m == e->max && !e->resize)
        return;
    /* §4.2: a decrease and a rise before the next block signal both, the
     * smallest first; the table must have been emptied down to it. */
    if (m < e->low)
        e->low = m;
    e->max = m;
    e->resize = true;
    evict(e, m, 0);
}

/* RFC 7541 §5.1: v with an n-bit prefix, the first byte's high bits in
 * `first`. Returns the bytes written, or 0 when cap is too small. */
static size_t put_int(uint8_t *out, size_t cap, uint8_t first, unsigned n, size_t v)
{
    size_t lim = ((size_t)1 << n) - 1, k = 0;
    if (cap == 0)
        return 0;
    if (v < lim) {
        out[0] = (uint8_t)(first | v);
        return 1;
    }
    out[k++] = (uint8_t)(first | lim);
    for (v -= lim; v >= 128; v >>= 7) {
        if (k == cap)
            return 0;
        out[k++] = (uint8_t)(0x80 | (v & 0x7f));
    }
    if (k == cap)
        return 0;
    out[k++] = (uint8_t)v;
    return k;
}

/* A string literal without Huffman coding (§5.2). */
static size_t put_str(uint8_t *out, size_t cap, const char *s, size_t len)
{
    size_t k = put_int(out, cap, 0, 7, len);
    if (k == 0 || cap - k < len)
        return 0;
    memcpy(out + k, s, len);
    return k + len;
}

static bool live_match(const struct sr_api__hpack *e, uint32_t seq, enum sr_api__hkey key,
                       const char *v, size_t len, size_t *index)
{
    uint32_t oldest = e->seq - (uint32_t)e->n;
    if (seq - oldest >= e->n) /* evicted (or never was) */
        return false;
    const struct sr_api__hpack_entry *en = &e->ent[seq - oldest];
    if (en->key != key || en->len != len || memcmp(en->value, v, len) != 0)
        return false;
    *index = STATIC_COUNT + (e->seq - seq); /* the newest is 62 */
    return true;
}

/* The dynamic index of (key, v), or 0. */
static size_t find(struct sr_api__hpack *e, enum sr_api__hkey key, const char *v, size_t len)
{
    size_t index;
    uint32_t hint = e->hint[key];
    if (hint != 0 && live_match(e, hint - 1, key, v, len, &index))
        return index;
    for (size_t i = e->n; i-- > 0;) {
        uint32_t seq = e->seq - (uint32_t)(e->n - i);
        if (live_match(e, seq, key, v, len, &index)) {
            e->hint[key] = seq + 1;
            return index;
        }
    }
    return 0;
}

static void insert(struct sr_api__hpack *e, enum sr_api__hkey key, const char *v, size_t len)
{
    struct sr_api__hpack_entry en = {.key = key, .len = len};
    size_t size = entry_size(&en);
    evict(e, e->max, size);
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 16;
        e->ent = sr_realloc(e->ent, e->cap * sizeof(e->ent[0]));
    }
    en.value = sr_malloc(len ? len : 1);
    memcpy(en.value, v, len);
    e->ent[e->n++] = en;
    e->size += size;
    e->hint[key] = ++e->seq; /* seq + 1 of the new entry */
}

static size_t encode_field(struct sr_api__hpack *e, const struct sr_api__hfield *f, uint8_t *out,
                           size_t cap)
{
    size_t index = f->key == SR_API_H_STATUS ? static_status(f->value, f->len) : 0;
    if (index == 0)
        index = find(e, f->key, f->value, f->len);
    if (index != 0)
        return put_int(out, cap, 0x80, 7, index); /* §6.1 indexed field */

    /* §6.2.1 with incremental indexing, unless the entry would crowd out
     * most of the table (then §6.2.2 without indexing). */
    size_t room = names[f->key].len + f->len + ENTRY_OVERHEAD;
    bool add = room <= e->max / 4 * 3;
    unsigned name = names[f->key].static_index;
    size_t k = add ? put_int(out, cap, 0x40, 6, name) : put_int(out, cap, 0x00, 4, name);
    if (k == 0)
        return 0;
    if (name == 0) {
        size_t m = put_str(out + k, cap - k, names[f->key].name, names[f->key].len);
        if (m == 0)
            return 0;
        k += m;
    }
    size_t m = put_str(out + k, cap - k, f->value, f->len);
    if (m == 0)
        return 0;
    if (add)
        insert(e, f->key, f->value, f->len);
    return k + m;
}

ssize_t sr_api__hpack_encode(struct sr_api__hpack *e, const struct sr_api__hfield *f, size_t n,
                             uint8_t *out, size_t cap)
{
    size_t k = 0;
    if (e->resize) { /* §4.2, §6.3: at the start of the block */
        if (e->low < e->max) {
            size_t m = put_int(out, cap, 0x20, 5, e->low);
            if (m == 0)
                return -1;
            k += m;
        }
        size_t m = put_int(out + k, cap - k, 0x20, 5, e->max);
        if (m == 0)
            return -1;
        k += m;
        e->resize = false;
        e->low = SIZE_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        size_t m = encode_field(e, &f[i], out + k, cap - k);
        if (m == 0)
            return -1;
        k += m;
    }
    return (ssize_t)k;
}
