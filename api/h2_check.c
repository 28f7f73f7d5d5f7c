/* h2_check: the request header rules of RFC 9113 §8.2-8.3 for h2 streams.
 *
 * nghttp2 can enforce these itself ("HTTP messaging"), but that costs
 * about a tenth of the instructions of a small GET (callgrind: 1.3k of
 * 13k), most of it in generic dispatch around the character checks. The
 * server turns it off (nghttp2_option_set_no_http_messaging) and applies
 * the same rules here, in one pass over each field, with nghttp2 1.52's
 * character classes and its verdicts. The request is malformed (stream
 * error PROTOCOL_ERROR, §8.1.1) on:
 *   - a name that is not lowercase tchars (§8.2.1 names uppercase, and
 *     nghttp2 refuses any non-tchar), a value with characters outside
 *     HTAB/SP/VCHAR/obs-text or with leading or trailing whitespace;
 *   - a bad pseudo-header: unknown, repeated, empty, bad characters for
 *     its kind, after a regular field, in trailers (§8.3); :authority and
 *     host go by HTTP/1.1's Host rule (sr_api__host_ok: no userinfo,
 *     §8.3.1), stricter than nghttp2's character class;
 *   - a connection-specific field (connection, keep-alive,
 *     proxy-connection, transfer-encoding, upgrade), "te" other than
 *     "trailers" (§8.2.2); a repeated or empty host; a bad or repeated
 *     content-length;
 *   - at the end of the header block, missing pieces: :method, :scheme and
 *     :path (only :authority for CONNECT), :authority or host, and for
 *     http(s) a :path that starts with '/' (or "*" for OPTIONS).
 * The transport checks content-length against the DATA it gets. */
#include "api/api_internal.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

enum {
    C_NAME = 1,       /* tchar, lowercase only (field names) */
    C_VALUE = 2,      /* HTAB, SP, VCHAR, obs-text (field values) */
    C_METHOD = 4,     /* tchar (methods) */
    C_PATH = 8,       /* VCHAR and obs-text */
    C_AUTHORITY = 16, /* nghttp2's :authority class (sr_api__host_ok is used) */
    C_SCHEME = 32,    /* ALPHA DIGIT + - . */
};

/* Generated from nghttp2 1.52's VALID_*_CHARS tables (lib/nghttp2_helper.c),
 * plus the scheme characters of RFC 3986 §3.1. */
static const unsigned char cls[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x1f, 0x0a, 0x0f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1a, 0x1a, 0x1f, 0x3f, 0x1a, 0x3f, 0x3f, 0x0a,
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x1a, 0x1a, 0x0a, 0x1a, 0x0a, 0x0a,
    0x1a, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e,
    0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x1a, 0x0a, 0x1a, 0x0f, 0x1f,
    0x0f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x0a, 0x0f, 0x0a, 0x1f, 0x00,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
};

/* Seen so far (flags of struct sr_api__h2_check). */
enum {
    F_METHOD = 1 << 0,
    F_SCHEME = 1 << 1,
    F_AUTHORITY = 1 << 2,
    F_PATH = 1 << 3,
    F_HOST = 1 << 4,
    F_REGULAR = 1 << 5, /* a regular field: no pseudo-header may follow */
    F_CONNECT = 1 << 6,
    F_OPTIONS = 1 << 7,
    F_SCHEME_HTTP = 1 << 8,
    F_PATH_SLASH = 1 << 9,
    F_PATH_STAR = 1 << 10,
};

static bool all(const uint8_t *p, size_t n, unsigned char c)
{
    for (size_t i = 0; i < n; i++)
        if (!(cls[p[i]] & c))
            return false;
    return true;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* all() for the classes that only refuse bytes below `low` and DEL
 * (C_VALUE: low 0x20, C_PATH: low 0x21), eight bytes at a time: the word
 * test may flag a good byte (HTAB, or after a borrow), never miss a bad
 * one; a flagged word goes to the byte loop. */
static bool all_wide(const uint8_t *p, size_t n, uint64_t low, unsigned char c)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, del;
        memcpy(&x, p + i, 8);
        del = x ^ (0x7f * ONES);
        if ((((x - low * ONES) & ~x) | ((del - ONES) & ~del)) & HIGHS)
            break;
    }
    return all(p + i, n - i, c);
}

static bool lit(const uint8_t *name, size_t namelen, const char *l, size_t llen)
{
    return namelen == llen && memcmp(name, l, llen) == 0;
}
#define IS(l) lit(name, namelen, l, sizeof(l) - 1)

/* The value is `l`, in any case. */
#define IEQ(l) (valuelen == sizeof(l) - 1 && strncasecmp((const char *)value, l, valuelen) == 0)

/* A pseudo-header's first (and only) time, with a value. */
static bool once(struct sr_api__h2_check *c, unsigned flag, size_t valuelen)
{
    if ((c->flags & flag) || valuelen == 0)
        return false;
    c->flags |= flag;
    return true;
}

static bool parse_length(const uint8_t *p, size_t n, int64_t *out)
{
    if (n == 0)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || v > (INT64_MAX - (p[i] - '0')) / 10)
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

void sr_api__h2_check_init(struct sr_api__h2_check *c)
{
    c->flags = 0;
    c->content_length = -1;
}

/* A pseudo-header: which one, its value, its place (§8.3). */
static bool pseudo_field(struct sr_api__h2_check *c, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen, bool trailer)
{
    if (trailer || (c->flags & F_REGULAR))
        return false; /* pseudo-headers come first, and only in the head */
    if (IS(":path")) {
        if (!once(c, F_PATH, valuelen) || !all_wide(value, valuelen, 0x21, C_PATH))
            return false;
        if (value[0] == '/')
            c->flags |= F_PATH_SLASH;
        else if (valuelen == 1 && value[0] == '*')
            c->flags |= F_PATH_STAR;
    } else if (IS(":method")) {
        if (!once(c, F_METHOD, valuelen) || !all(value, valuelen, C_METHOD))
            return false;
        if (valuelen == 7 && memcmp(value, "CONNECT", 7) == 0)
            c->flags |= F_CONNECT;
        else if (valuelen == 7 && memcmp(value, "OPTIONS", 7) == 0)
            c->flags |= F_OPTIONS;
    } else if (IS(":scheme")) {
        if (!once(c, F_SCHEME, valuelen) || (value[0] | 0x20) < 'a' || (value[0] | 0x20) > 'z' ||
            !all(value + 1, valuelen - 1, C_SCHEME))
            return false; /* RFC 3986 §3.1: a letter, then letters, digits, + - . */
        if (IEQ("http") || IEQ("https"))
            c->flags |= F_SCHEME_HTTP;
    } else if (IS(":authority")) {
        if (!once(c, F_AUTHORITY, valuelen) || !sr_api__host_ok((const char *)value, valuelen))
            return false;
    } else {
        return false; /* unknown, or :protocol (no RFC 8441 here) */
    }
    return true;
}

bool sr_api__h2_check_field(struct sr_api__h2_check *c, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen, bool trailer)
{
    if (namelen == 0)
        return false;
    if (name[0] == ':')
        return pseudo_field(c, name, namelen, value, valuelen, trailer);
    c->flags |= F_REGULAR;
    if (!all(name, namelen, C_NAME))
        return false; /* lowercase tchars only (§8.2.1: no uppercase) */
    switch (namelen) {
    case 2:
        if (IS("te") && !IEQ("trailers"))
            return false;
        break;
    case 4:
        if (IS("host"))
            return once(c, F_HOST, valuelen) && sr_api__host_ok((const char *)value, valuelen);
        break;
    case 7:
        if (IS("upgrade"))
            return false;
        break;
    case 10:
        if (IS("connection") || IS("keep-alive"))
            return false;
        break;
    case 14:
        if (IS("content-length"))
            return c->content_length == -1 && parse_length(value, valuelen, &c->content_length);
        break;
    case 16:
        if (IS("proxy-connection"))
            return false;
        break;
    case 17:
        if (IS("transfer-encoding"))
            return false;
        break;
    default:
        break;
    }
    /* §8.2.1: no NUL, CR, LF (nor other controls), no whitespace at the ends. */
    return valuelen == 0 ||
           (value[0] != ' ' && value[0] != '\t' && value[valuelen - 1] != ' ' &&
            value[valuelen - 1] != '\t' && all_wide(value, valuelen, 0x20, C_VALUE));
}

bool sr_api__h2_check_request(struct sr_api__h2_check *c)
{
    unsigned f = c->flags;
    if (f & F_CONNECT) {
        if ((f & (F_SCHEME | F_PATH)) || !(f & F_AUTHORITY))
            return false;
        c->content_length = -1; /* CONNECT carries a tunnel, not content */
        return true;
    }
    if ((f & (F_METHOD | F_SCHEME | F_PATH)) != (F_METHOD | F_SCHEME | F_PATH) ||
        !(f & (F_AUTHORITY | F_HOST)))
        return false;
    /* http(s): an origin-form :path, or "*" for OPTIONS (§8.3.1). */
    return !(f & F_SCHEME_HTTP) || (f & F_PATH_SLASH) || ((f & F_OPTIONS) && (f & F_PATH_STAR));
}
