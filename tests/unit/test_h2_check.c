/* HTTP/2 request header rules (api/h2_check.c), field by field. */
#include <string.h>

#include "api/api_internal.h"
#include "tests/unit/tap.h"

struct field {
    const char *name, *value;
};

/* Feeds the fields (and, after a NULL name, trailers); returns 1 when the
 * request passes, 0 when a field is refused, -1 when the block is
 * incomplete. */
static int check(const struct field *f, struct sr_api__h2_check *c)
{
    sr_api__h2_check_init(c);
    bool trailer = false;
    for (; f->name != NULL || f->value != NULL; f++) {
        if (f->name == NULL) {
            if (!sr_api__h2_check_request(c))
                return -1;
            trailer = true;
            continue;
        }
        if (!sr_api__h2_check_field(c, (const uint8_t *)f->name, strlen(f->name),
                                    (const uint8_t *)f->value, strlen(f->value), trailer))
            return 0;
    }
    return trailer || sr_api__h2_check_request(c) ? 1 : -1;
}

#define REQ(...) ((const struct field[]){__VA_ARGS__, {NULL, NULL}})
#define GET {":method", "GET"}, {":scheme", "http"}, {":path", "/health"}, {":authority", "h"}

static void test_fields(void)
{
    struct sr_api__h2_check c;
    is_int(check(REQ(GET), &c), 1, "a plain GET passes");
    is_int(check(REQ(GET, {"accept", "*/*"}, {"x-empty", ""}, {"x-in", "a \tb"}), &c), 1,
           "regular fields, empty and inner-whitespace values pass");
    is_int(check(REQ(GET, {"X-Up", "1"}), &c), 0, "uppercase name");
    is_int(check(REQ(GET, {"x@y", "1"}), &c), 0, "non-tchar name");
    is_int(check(REQ(GET, {"", "1"}), &c), 0, "empty name");
    is_int(check(REQ(GET, {"x", " v"}), &c), 0, "leading space");
    is_int(check(REQ(GET, {"x", "v\t"}), &c), 0, "trailing tab");
    is_int(check(REQ(GET, {"x", "a\nb"}), &c), 0, "LF in a value");
    is_int(check(REQ(GET, {"x", "a\x7f"}), &c), 0, "DEL in a value");
    is_int(check(REQ(GET, {"x", "caf\xc3\xa9"}), &c), 1, "obs-text in a value");
    is_int(check(REQ(GET, {"connection", "close"}), &c), 0, "connection");
    is_int(check(REQ(GET, {"keep-alive", "1"}), &c), 0, "keep-alive");
    is_int(check(REQ(GET, {"proxy-connection", "1"}), &c), 0, "proxy-connection");
    is_int(check(REQ(GET, {"transfer-encoding", "chunked"}), &c), 0, "transfer-encoding");
    is_int(check(REQ(GET, {"upgrade", "h2c"}), &c), 0, "upgrade");
    is_int(check(REQ(GET, {"te", "TRAILERS"}), &c), 1, "te: trailers (any case)");
    is_int(check(REQ(GET, {"te", "gzip"}), &c), 0, "te: gzip");
    is_int(check(REQ(GET, {"host", "h"}), &c), 1, "one host");
    is_int(check(REQ(GET, {"host", "h"}, {"host", "h"}), &c), 0, "two hosts");
    is_int(check(REQ(GET, {"host", ""}), &c), 0, "empty host");
    is_int(check(REQ(GET, {"host", "a b"}), &c), 0, "space in host");
}

static void test_pseudo(void)
{
    struct sr_api__h2_check c;
    is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":path", "/"}), &c), -1,
           "no :authority and no host");
    is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h"}), &c),
           1, "host instead of :authority");
    is_int(check(REQ({":scheme", "http"}, {":path", "/"}, {":authority", "h"}), &c), -1,
           "no :method");
    is_int(check(REQ({":method", "GET"}, {":path", "/"}, {":authority", "h"}), &c), -1,
           "no :scheme");
    is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":authority", "h"}), &c), -1,
           "no :path");
    is_int(check(REQ(GET, {":path", "/x"}), &c), 0, "repeated :path");
    is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {"accept", "*"}, {":path", "/"},
                     {":authority", "h"}),
                 &c),
           0, "a pseudo-header after a regular field");
    is_int(check(REQ(GET, {":foo", "1"}), &c), 0, "unknown pseudo-header");
    is_int(check(REQ(GET, {":status", "200"}), &c), 0, ":status in a request");
    is_int(check(REQ(GET, {":protocol", "websocket"}), &c), 0, ":protocol");
    is_int(check(REQ(GET, {":", "x"}), &c), 0, "a bare colon");
    is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":path", ""}, {":authority", "h"}),
                 &c),
           0, "empty :path");
    is_int(check(REQ({":method", "G T"}, {":scheme", "http"}, {":path", "/"}, {":authority", "h"}),
                 &c),
           0, "space in :method");
    is_int(check(REQ({":method", "GET"}, {":scheme", "h~p"}, {":path", "/"}, {":authority", "h"}),
                 &c),
           0, "bad :scheme character");
    is_int(check(REQ({":method", "GET"}, {":scheme", "foo+bar"}, {":path", "x"},
                     {":authority", "h"}),
                 &c),
           1, "another scheme: any :path form");
    is_int(check(REQ({":method", "GET"}, {":scheme", "HTTPS"}, {":path", "x"}, {":authority", "h"}),
                 &c),
           -1, "https (any case): :path must start with /");
    is_int(check(REQ({":method", "OPTIONS"}, {":scheme", "http"}, {":path", "*"},
                     {":authority", "h"}),
                 &c),
           1, "OPTIONS *");
    is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":path", "*"}, {":authority", "h"}),
                 &c),
           -1, "GET *");
    is_int(check(REQ({":method", "CONNECT"}, {":authority", "h:443"}), &c), 1, "CONNECT h:443");
    is_int(check(REQ({":method", "CONNECT"}), &c), -1, "CONNECT without :authority");
    is_int(check(REQ({":method", "CONNECT"}, {":authority", "h:1"}, {":path", "/"}), &c), -1,
           "CONNECT with :path");
    is_int(check(REQ(GET, {":authority", "h"}), &c), 0, "repeated :authority");
    /* :authority and host: RFC 3986 host[:port], as HTTP/1.1's Host. */
    static const char *const good[] = {"h", "h:8080", "127.0.0.1:5001", "[::1]:5001",
                                       "a-b.c_d~e", "%41b", "h:"};
    static const char *const bad[] = {"[", "a@b", "a:b:c", "[zz]", "a b", "a/b", "<x>"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), ":authority %s: accepted", good[i]);
        is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                         {":authority", good[i]}),
                     &c),
               1, name);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), ":authority %s: malformed", bad[i]);
        is_int(check(REQ({":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                         {":authority", bad[i]}),
                     &c),
               0, name);
        snprintf(name, sizeof(name), "host %s: malformed", bad[i]);
        is_int(check(REQ(GET, {"host", bad[i]}), &c), 0, name);
    }
}

static void test_content_length_and_trailers(void)
{
    struct sr_api__h2_check c;
    is_int(check(REQ(GET, {"content-length", "42"}), &c), 1, "content-length 42");
    is_int((int)c.content_length, 42, "... is kept");
    is_int(check(REQ(GET), &c), 1, "no content-length");
    is_int((int)c.content_length, -1, "... is -1");
    is_int(check(REQ(GET, {"content-length", "9223372036854775807"}), &c), 1,
           "content-length INT64_MAX");
    is_int(check(REQ(GET, {"content-length", "9223372036854775808"}), &c), 0,
           "content-length over INT64_MAX");
    is_int(check(REQ(GET, {"content-length", ""}), &c), 0, "empty content-length");
    is_int(check(REQ(GET, {"content-length", "-1"}), &c), 0, "negative content-length");
    is_int(check(REQ(GET, {"content-length", "1"}, {"content-length", "1"}), &c), 0,
           "two content-length fields");
    is_int(check(REQ({":method", "CONNECT"}, {":authority", "h:1"}, {"content-length", "5"}), &c),
           1, "CONNECT with content-length");
    is_int((int)c.content_length, -1, "... forgets it");
    is_int(check(REQ(GET, {NULL, ""}, {"x-trailer", "1"}), &c), 1, "a trailer field");
    is_int(check(REQ(GET, {NULL, ""}, {":path", "/"}), &c), 0, "a pseudo-header in trailers");
}

/* Long values go eight bytes at a time: a bad byte anywhere is found, a
 * good one (HTAB, obs-text) anywhere is kept. */
static void test_wide(void)
{
    char v[40], p[41];
    bool found = true, kept = true, path_found = true;
    struct sr_api__h2_check c;
    for (size_t len = 1; len < sizeof(v); len++) {
        for (size_t at = 1; at + 1 < len; at++) {
            static const unsigned char bad[] = {0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f};
            static const unsigned char good[] = {0x09, 0x20, 0x21, 0x7e, 0x80, 0xff};
            for (size_t k = 0; k < sizeof(bad); k++) {
                memset(v, 'a', len);
                v[at] = (char)bad[k];
                sr_api__h2_check_init(&c);
                found &= !sr_api__h2_check_field(&c, (const uint8_t *)"x", 1, (const uint8_t *)v,
                                                 len, false);
                memset(v, 'a', len);
                v[at] = (char)good[k];
                sr_api__h2_check_init(&c);
                kept &= sr_api__h2_check_field(&c, (const uint8_t *)"x", 1, (const uint8_t *)v, len,
                                               false);
            }
            p[0] = '/';
            memset(p + 1, 'a', len);
            p[1 + at] = at % 2 ? ' ' : 0x09;
            sr_api__h2_check_init(&c);
            path_found &= !sr_api__h2_check_field(&c, (const uint8_t *)":path", 5,
                                                  (const uint8_t *)p, len + 1, false);
        }
    }
    ok(found, "a control byte or DEL at any place of a long value is refused");
    ok(kept, "HTAB, SP, VCHAR and obs-text at any place of a long value pass");
    ok(path_found, "SP or HTAB at any place of a long :path is refused");
}

int main(void)
{
    test_wide();
    test_fields();
    test_pseudo();
    test_content_length_and_trailers();
    return tap_done();
}
