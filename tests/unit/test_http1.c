/* HTTP/1.1 request parser (api/http1.c) on plain buffers: no sockets. */
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "tests/unit/tap.h"

/* Feeds `s` in pieces of `step` bytes (0 = all at once), the way a socket
 * would hand them over, and collects every request seen. */
struct seen {
    int n;
    int error;
    int head; /* p.head at the error: a HEAD's answer has no content */
    char method[8][16];
    char target[8][256];
    int minor[8];
    int keep[8];
    int expect[8];
    unsigned long long cl[8];
    char host[8][64];
    size_t nheaders[8];
};

static void feed(const char *s, size_t len, size_t step, struct seen *out)
{
    struct sr_api__h1_parser p;
    sr_api__h1_init(&p);
    memset(out, 0, sizeof(*out));
    size_t off = 0;
    while (off < len && out->error == 0) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        const char *chunk = s + off;
        size_t left = n;
        while (left > 0 || n == 0) {
            size_t used = 0;
            int rc = sr_api__h1_parse(&p, chunk, left, &used);
            if (rc < 0) {
                out->error = rc;
                out->head = p.head;
                break;
            }
            if (rc == SR_API_H1_REQUEST && out->n < 8) {
                int i = out->n++;
                snprintf(out->method[i], sizeof(out->method[i]), "%s", p.req.method);
                snprintf(out->target[i], sizeof(out->target[i]), "%s", p.req.target);
                out->minor[i] = p.req.minor;
                out->keep[i] = p.req.keep_alive;
                out->expect[i] = p.req.expect_continue;
                out->cl[i] = p.req.content_length;
                const char *h = sr_api__h1_header(&p.req, "host");
                snprintf(out->host[i], sizeof(out->host[i]), "%s", h ? h : "");
                out->nheaders[i] = p.req.nheaders;
            }
            chunk += used;
            left -= used;
            if (rc == SR_API_H1_AGAIN)
                break;
        }
        off += n;
    }
    sr_api__h1_free(&p);
}

static int parse_status(const char *s)
{
    struct seen r;
    feed(s, strlen(s), 0, &r);
    return r.error ? -r.error : r.n;
}

static void test_simple(void)
{
    const char *req = "GET /services HTTP/1.1\r\nHost: localhost:5001\r\nUser-Agent: t\r\n"
                      "Accept: */*\r\n\r\n";
    struct seen r;
    feed(req, strlen(req), 0, &r);
    is_int(r.n, 1, "simple GET: one request");
    is_int(r.error, 0, "simple GET: no error");
    is_str(r.method[0], "GET", "simple GET: method");
    is_str(r.target[0], "/services", "simple GET: target");
    is_int(r.minor[0], 1, "simple GET: HTTP/1.1");
    is_int(r.keep[0], 1, "simple GET: keep-alive by default");
    is_str(r.host[0], "localhost:5001", "simple GET: Host value, OWS trimmed");
    is_int(r.nheaders[0], 3, "simple GET: three header fields");

    /* Bare LF line endings are accepted (RFC 9112 §2.2). */
    feed("GET /x HTTP/1.1\nHost: a\n\n", 26, 0, &r);
    is_int(r.n, 1, "bare LF endings accepted");
    is_str(r.target[0], "/x", "bare LF: target");

    /* Empty lines before the request line are skipped. */
    feed("\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n", 33, 0, &r);
    is_int(r.n, 1, "leading CRLFs skipped");
    is_str(r.target[0], "/y", "leading CRLFs: target");
}

static void test_split_everywhere(void)
{
    const char *req =
        "POST /cache/refresh?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        "Connection: keep-alive, close\r\n\r\nhelloGET /health HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(req);
    int all_ok = 1;
    for (size_t step = 1; step <= len; step++) {
        struct seen r;
        feed(req, len, step, &r);
        if (r.n != 2 || r.error || strcmp(r.method[0], "POST") ||
            strcmp(r.target[0], "/cache/refresh?x=1") || r.cl[0] != 5 || r.keep[0] != 0 ||
            strcmp(r.method[1], "GET") || strcmp(r.target[1], "/health") || r.keep[1] != 1) {
            all_ok = 0;
            printf("# split at %zu: n=%d error=%d\n", step, r.n, r.error);
            break;
        }
    }
    ok(all_ok, "same two requests whatever the split size (1..len)");

    /* And one byte at a time, through a fresh copy each call so the parser
     * cannot keep pointers into the caller's buffer. */
    struct sr_api__h1_parser p;
    sr_api__h1_init(&p);
    int got = 0, unconsumed = 0;
    for (size_t i = 0; i < len; i++) {
        char *b = malloc(1);
        b[0] = req[i];
        size_t used = 0;
        int rc = sr_api__h1_parse(&p, b, 1, &used);
        free(b);
        if (rc == SR_API_H1_REQUEST) {
            got++;
            if (got == 1)
                is_str(p.req.target, "/cache/refresh?x=1", "byte-by-byte: first target");
        }
        unconsumed += used != 1;
    }
    is_int(got, 2, "byte-by-byte: two requests");
    is_int(unconsumed, 0, "byte-by-byte: every byte consumed");
    ok(sr_api__h1_idle(&p), "idle after the last request");
    sr_api__h1_free(&p);
}

static void test_pipelined(void)
{
    const char *req = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                      "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
                      "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                      "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    struct seen r;
    feed(req, strlen(req), 0, &r);
    is_int(r.n, 4, "pipelined: four requests in one buffer");
    is_str(r.target[0], "/a", "pipelined: 1st");
    is_str(r.method[1], "HEAD", "pipelined: HEAD method");
    is_str(r.target[1], "/b", "pipelined: 2nd");
    is_int(r.cl[2], 3, "pipelined: 3rd has a body");
    is_str(r.target[3], "/d", "pipelined: body skipped, 4th parsed");
    is_int(r.keep[3], 0, "pipelined: Connection: close honoured");

    /* consumed stops at the end of the head; the body comes next call. */
    struct sr_api__h1_parser p;
    sr_api__h1_init(&p);
    const char *one = "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET";
    size_t used = 0;
    int rc = sr_api__h1_parse(&p, one, strlen(one), &used);
    is_int(rc, SR_API_H1_REQUEST, "head returned");
    is_int(used, strlen(one) - 6, "consumed = the head only");
    ok(!sr_api__h1_idle(&p), "not idle while the body is pending");
    rc = sr_api__h1_parse(&p, one + used, 6, &used);
    is_int(rc, SR_API_H1_AGAIN, "body + partial next request: again");
    is_int(used, 6, "all consumed");
    ok(!sr_api__h1_idle(&p), "not idle with a partial request buffered");
    sr_api__h1_free(&p);
}

static void test_versions(void)
{
    struct seen r;
    const char *a = "GET / HTTP/1.0\r\n\r\n";
    feed(a, strlen(a), 0, &r);
    is_int(r.n, 1, "HTTP/1.0 without Host is fine");
    is_int(r.minor[0], 0, "HTTP/1.0: minor 0");
    is_int(r.keep[0], 0, "HTTP/1.0 closes by default");

    const char *b = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    feed(b, strlen(b), 0, &r);
    is_int(r.keep[0], 1, "HTTP/1.0 + Connection: keep-alive keeps");

    const char *c = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n";
    feed(c, strlen(c), 0, &r);
    is_int(r.keep[0], 0, "HTTP/1.1 + Connection: Close (any case) closes");

    const char *d = "GET / HTTP/1.9\r\nHost: h\r\n\r\n";
    feed(d, strlen(d), 0, &r);
    is_int(r.minor[0], 1, "HTTP/1.9 is answered as 1.1");

    is_int(parse_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505, "HTTP/2.0 request line: 505");
    is_int(parse_status("GET / HTTP/3.0\r\n\r\n"), 505, "HTTP/3.0: 505");

    const char *e =
        "POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
    feed(e, strlen(e), 0, &r);
    is_int(r.expect[0], 1, "Expect: 100-continue seen");
}

static void test_bad_requests(void)
{
    is_int(parse_status("GET /\r\n\r\n"), 400, "HTTP/0.9 style line: 400");
    is_int(parse_status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, "double space: 400");
    is_int(parse_status("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400, "trailing space: 400");
    is_int(parse_status("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, "non-token method: 400");
    is_int(parse_status("GET / HTTX/1.1\r\nHost: h\r\n\r\n"), 400, "bad protocol name: 400");
    is_int(parse_status("GET / HTTP/1.x\r\nHost: h\r\n\r\n"), 400, "bad version digit: 400");
    is_int(parse_status("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n"), 400, "bare CR in line: 400");
    is_int(parse_status("GET / HTTP/1.1\r\n\r\n"), 400, "HTTP/1.1 without Host: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, "two Hosts: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400, "space before colon: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400, "obs-fold: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), 400, "no colon: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"), 400, "empty name: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n"), 400,
           "control char in value: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n"), 400,
           "non-numeric Content-Length: 400");
    is_int(parse_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), 400,
           "negative Content-Length: 400");
    is_int(
        parse_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        400, "conflicting Content-Lengths: 400");
    is_int(
        parse_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
        1, "repeated equal Content-Length: accepted");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 411,
           "chunked body: 411");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Content-Length: 3\r\n\r\n"),
           400, "Transfer-Encoding + Content-Length: 400");
    /* A coding the server does not know: 501 (RFC 9112 §6.1). */
    static const struct {
        const char *te;
        int status;
    } te[] = {
        {"gzip", 501},
        {"gzip, chunked", 501},
        {"identity", 501},
        {"x-custom;q=1, chunked", 501},
        {"chunked\r\nTransfer-Encoding: gzip", 501},
        {"Chunked", 411},
        {", chunked ,", 411},
        {"chunked\r\nTransfer-Encoding: chunked", 411},
        {"", 400},
        {" , ", 400},
    };
    for (size_t i = 0; i < sizeof(te) / sizeof(te[0]); i++) {
        char req[160], name[96];
        snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n",
                 te[i].te);
        snprintf(name, sizeof(name), "Transfer-Encoding: %s: %d", te[i].te, te[i].status);
        for (char *c = name; *c; c++)
            if (*c == '\r' || *c == '\n')
                *c = ' '; /* two field lines, on one TAP line */
        is_int(parse_status(req), te[i].status, name);
    }
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                        "Content-Length: 3\r\n\r\n"),
           400, "unknown Transfer-Encoding + Content-Length: 400 (framing first)");

    /* Host must be RFC 3986 host [":" port] (RFC 9112 §3.2). */
    static const char *const bad_hosts[] = {
        "a b", "a/b", "<script>", "a@b", "a:b:c", "a:80x", "h\"", "h\\x", "a?b", "a#b",
        "[::1", "::1", "[::1]x", "[zz::1]", "[::1]:8o", "[v1]", "[vx.a]", "%zz.a", "a%2",
        "\xc3\xa9.example", "a\tb",
    };
    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        char req[128], name[96];
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad_hosts[i]);
        snprintf(name, sizeof(name), "Host: %s: 400", bad_hosts[i]);
        is_int(parse_status(req), 400, name);
    }
    static const char *const good_hosts[] = {
        "", "h", "localhost:5001", "127.0.0.1", "127.0.0.1:", "[::1]", "[::1]:5001",
        "[2001:db8::8a2e:370:7334]", "[::ffff:192.0.2.1]:80", "[v1.fe80::a+en1]",
        "xn--bcher-kva.example", "_srv.Example.COM", "a%20b", "a-b~c!$&'()*+,;=", ":80",
    };
    for (size_t i = 0; i < sizeof(good_hosts) / sizeof(good_hosts[0]); i++) {
        char req[128], name[96];
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good_hosts[i]);
        snprintf(name, sizeof(name), "Host: '%s': accepted", good_hosts[i]);
        is_int(parse_status(req), 1, name);
    }
    is_int(parse_status("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), 400,
           "HTTP/1.0 with an invalid Host: 400 too");

    /* A TLS ClientHello has no line end to wait for: refused at once. */
    {
        struct sr_api__h1_parser p;
        sr_api__h1_init(&p);
        size_t used;
        const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        is_int(sr_api__h1_parse(&p, hello, sizeof(hello) - 1, &used), -400,
               "TLS ClientHello: 400 without waiting for a line end");
        sr_api__h1_free(&p);
        sr_api__h1_init(&p);
        is_int(sr_api__h1_parse(&p, "GE", 2, &used), SR_API_H1_AGAIN, "partial method: wait");
        is_int(sr_api__h1_parse(&p, "T /\x01", 4, &used), SR_API_H1_AGAIN,
               "odd byte in the target: judged at the line end");
        sr_api__h1_free(&p);
    }

    /* The error is sticky: nothing after it is parsed. */
    struct sr_api__h1_parser p;
    sr_api__h1_init(&p);
    size_t used;
    const char *bad = "BAD\r\n\r\n";
    int rc = sr_api__h1_parse(&p, bad, strlen(bad), &used);
    is_int(rc, -400, "bad line: -400");
    rc = sr_api__h1_parse(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &used);
    is_int(rc, -400, "error is sticky");
    is_int(used, 0, "nothing consumed after an error");
    ok(!sr_api__h1_idle(&p), "not idle after an error");
    sr_api__h1_free(&p);
}

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

static void test_limits(void)
{
    /* Request line: 8 KiB exactly is fine, one more byte is 414. */
    size_t fixed = strlen("GET /") + strlen(" HTTP/1.1");
    char *s = repeat("GET /", 'a', SR_API_MAX_REQUEST_LINE - fixed, " HTTP/1.1\r\nHost: h\r\n\r\n");
    is_int(parse_status(s), 1, "request line of exactly 8 KiB: accepted");
    free(s);
    s = repeat("GET /", 'a', SR_API_MAX_REQUEST_LINE - fixed + 1, " HTTP/1.1\r\nHost: h\r\n\r\n");
    is_int(parse_status(s), 414, "request line of 8 KiB + 1: 414");
    free(s);
    /* Refused before the line ends: no need to buffer an endless line. */
    s = repeat("GET /", 'a', 20000, "");
    is_int(parse_status(s), 414, "endless request line: 414 before its end");
    free(s);

    /* Header count: 100 fields fine, 101 is 431. */
    char *h = malloc(64 * 1024);
    size_t n = (size_t)sprintf(h, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < SR_API_MAX_HEADERS; i++)
        n += (size_t)sprintf(h + n, "X-%d: v\r\n", i);
    strcpy(h + n, "\r\n");
    is_int(parse_status(h), 1, "100 header fields: accepted");
    strcpy(h + n, "X-Last: v\r\n\r\n");
    is_int(parse_status(h), 431, "101 header fields: 431");
    free(h);

    /* Header block: 64 KiB is the cap. */
    s = repeat("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', SR_API_MAX_HEADER_BLOCK, "\r\n\r\n");
    is_int(parse_status(s), 431, "header block over 64 KiB: 431");
    free(s);
    s = repeat("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', 60000, "\r\n\r\n");
    is_int(parse_status(s), 1, "a 60 KB header: accepted");
    free(s);

    /* Body: 1 MiB is the cap, decided from Content-Length. */
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n"), 1,
           "Content-Length 1 MiB: accepted");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n"), 413,
           "Content-Length 1 MiB + 1: 413");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 000000001\r\n\r\n"), 1,
           "Content-Length with leading zeros (1*DIGIT): its value, accepted");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0001048577\r\n\r\n"), 413,
           "leading zeros, over 1 MiB: 413");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\n"
                        "Content-Length: 99999999999999999999999999\r\n\r\n"),
           413, "Content-Length past 2^64: 413");
    is_int(parse_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                        "Content-Length: 01\r\n\r\n"),
           1, "Content-Length 1 and 01: the same value, accepted");
    is_int(parse_status(
               "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
           413, "Content-Length that overflows: 413");
}

/* The error a HEAD request gets, and whether the parser knew it was a
 * HEAD (its answer then has no content), fed in pieces of `step`. */
static int head_error(const char *s, size_t step, int *head)
{
    struct seen r;
    feed(s, strlen(s), step, &r);
    *head = r.head;
    return -r.error;
}

static void test_head_errors(void)
{
    static const struct {
        const char *req;
        int status, head;
    } cases[] = {
        {"HEAD /health HTTP/1.1\r\n\r\n", 400, 1},
        {"HEAD  /health HTTP/1.1\r\nHost: h\r\n\r\n", 400, 1},
        {"HEAD / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 1},
        {"HEAD / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413, 1},
        {"HEAD / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 411, 1},
        {"HEAD / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 1},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 0},
        {"head / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 0},
        {"HEADS / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 0},
        {"HEA / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 0},
        {"HEAD\r\n\r\n", 400, 0},
        /* pipelined: the flag belongs to the request that failed */
        {"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/2.0\r\n\r\n", 505, 0},
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/2.0\r\n\r\n", 505, 1},
        {"\r\nHEAD / HTTP/2.0\r\n\r\n", 505, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int all = 1;
        for (size_t step = 0; step <= 7; step++) {
            int head = -1;
            int st = head_error(cases[i].req, step, &head);
            all &= st == cases[i].status && head == cases[i].head;
        }
        char name[160];
        snprintf(name, sizeof(name), "%d, %s: %.*s (any split)", cases[i].status,
                 cases[i].head ? "a HEAD" : "not a HEAD",
                 (int)strcspn(cases[i].req, "\r"), cases[i].req);
        ok(all, name);
    }
    /* Refused before the line or the head is complete. */
    int head = 0;
    char *s = repeat("HEAD /", 'a', 20000, "");
    is_int(head_error(s, 0, &head), 414, "endless HEAD request line: 414");
    ok(head, "... known to be a HEAD");
    free(s);
    s = repeat("HEAD / HTTP/1.1\r\nHost: h\r\nX-Big: ", 'b', SR_API_MAX_HEADER_BLOCK, "");
    is_int(head_error(s, 0, &head), 431, "HEAD with a header section over 64 KiB: 431");
    ok(head, "... known to be a HEAD");
    free(s);
}

static void test_format(void)
{
    struct sr_api__response r = {.status = 405,
                                 .content_type = "application/json",
                                 .allow = "GET, HEAD",
                                 .body = "{}",
                                 .len = 2};
    char buf[512];
    size_t n =
        sr_api__h1_format_head(buf, sizeof(buf), &r, false, 1, "Sun, 06 Nov 1994 08:49:37 GMT");
    ok(n > 0, "head formatted");
    ok(strncmp(buf, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0, "status line");
    ok(strstr(buf, "\r\nContent-Length: 2\r\n") != NULL, "Content-Length");
    ok(strstr(buf, "\r\nAllow: GET, HEAD\r\n") != NULL, "Allow");
    ok(strstr(buf, "\r\nConnection: close\r\n") != NULL, "Connection: close");
    ok(strstr(buf, "\r\nServer: swarm-registry/") != NULL, "Server");
    ok(strstr(buf, "\r\nCache-Control: no-cache\r\n") != NULL, "Cache-Control");
    ok(strstr(buf, "\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n") != NULL, "Date");
    ok(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0, "ends with an empty line");

    r.status = 200;
    r.allow = NULL;
    n = sr_api__h1_format_head(buf, sizeof(buf), &r, true, 0, "x");
    ok(strstr(buf, "Connection: keep-alive\r\n") != NULL, "1.0 keep-alive says so");
    ok(strstr(buf, "Allow") == NULL, "no Allow on 200");
    n = sr_api__h1_format_head(buf, sizeof(buf), &r, true, 1, "x");
    ok(strstr(buf, "Connection") == NULL, "1.1 keep-alive: no Connection header");
    is_int(sr_api__h1_format_head(buf, 16, &r, true, 1, "x"), 0, "too small a buffer: 0");

    char date[32];
    is_str(sr_api__http_date(784111777, date, sizeof(date)), "Sun, 06 Nov 1994 08:49:37 GMT",
           "IMF-fixdate (RFC 9110 §5.6.7 example)");
}

static void test_format_conditional(void)
{
    char buf[768];
    struct sr_api__response r = {.status = 200, .content_type = "application/json",
                                 .body = "{\"a\":1", .len = 6, .tail = "}", .tail_len = 1};
    snprintf(r.etag, sizeof(r.etag), "\"v7-services\"");
    size_t n = sr_api__h1_format_head(buf, sizeof(buf), &r, true, 1, "x");
    ok(n > 0 && strstr(buf, "ETag: \"v7-services\"\r\n") != NULL, "ETag header");
    ok(strstr(buf, "Content-Length: 7\r\n") != NULL, "Content-Length counts body + tail");
    ok(strstr(buf, "Cache-Control: no-cache\r\n") != NULL, "Cache-Control: no-cache");
    ok(strstr(buf, "Server: swarm-registry/") != NULL, "Server with the version");

    struct sr_api__response nm = {.status = 304};
    snprintf(nm.etag, sizeof(nm.etag), "W/\"v7-metrics\"");
    n = sr_api__h1_format_head(buf, sizeof(buf), &nm, true, 1, "Sun, 06 Nov 1994 08:49:37 GMT");
    ok(n > 0 && strncmp(buf, "HTTP/1.1 304 Not Modified\r\n", 27) == 0, "304 status line");
    ok(strstr(buf, "Content-Length") == NULL && strstr(buf, "Content-Type") == NULL,
       "304: no Content-Length, no Content-Type");
    ok(strstr(buf, "ETag: W/\"v7-metrics\"\r\n") != NULL, "304: ETag kept");
    ok(strstr(buf, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n") != NULL, "304: Date");

    struct sr_api__response none = {.status = 400, .content_type = "application/json"};
    n = sr_api__h1_format_head(buf, sizeof(buf), &none, false, 1, "x");
    ok(n > 0 && strstr(buf, "ETag") == NULL, "no ETag when there is none");
}

static void test_configured_limits(void)
{
    struct sr_api__h1_parser p;
    size_t used;
    sr_api__h1_init_limits(&p, 32, 64);
    const char *ok_req = "GET /0123456789 HTTP/1.1\r\nHost: h\r\n\r\n";
    is_int(sr_api__h1_parse(&p, ok_req, strlen(ok_req), &used), SR_API_H1_REQUEST,
           "configured limits: a small request passes");
    sr_api__h1_free(&p);

    sr_api__h1_init_limits(&p, 32, 64);
    const char *long_line = "GET /0123456789012345678901234567890 HTTP/1.1\r\nHost: h\r\n\r\n";
    is_int(sr_api__h1_parse(&p, long_line, strlen(long_line), &used), -414,
           "configured request line limit: 414");
    sr_api__h1_free(&p);

    sr_api__h1_init_limits(&p, 32, 64);
    const char *big_head = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 0123456789012345678901234567890123"
                           "456789\r\nX-B: 0123456789\r\n\r\n";
    is_int(sr_api__h1_parse(&p, big_head, strlen(big_head), &used), -431,
           "configured header section limit: 431");
    sr_api__h1_free(&p);

    /* Fed a byte at a time, the cap is hit before the head completes. */
    sr_api__h1_init_limits(&p, 32, 64);
    int rc = SR_API_H1_AGAIN;
    size_t fed = 0;
    const char *endless = "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (; endless[fed] && rc == SR_API_H1_AGAIN; fed++)
        rc = sr_api__h1_parse(&p, endless + fed, 1, &used);
    is_int(rc, -431, "an endless header line is refused at the cap");
    ok(fed < strlen(endless), "... before it is all buffered");
    sr_api__h1_free(&p);
}

static void test_upgrade_helpers(void)
{
    unsigned char out[64];
    /* "AAMAAABkAAQAoAAAAAIAAAAA": curl's HTTP2-Settings (3:100, 4:10485760, 2:0). */
    long n = sr_api__base64url_decode("AAMAAABkAAQAoAAAAAIAAAAA", 24, out);
    is_int(n, 18, "base64url: 24 chars -> 18 bytes");
    ok(n == 18 && out[1] == 3 && out[5] == 100 && out[7] == 4 && out[13] == 2,
       "base64url: SETTINGS entries decoded");
    is_int(sr_api__base64url_decode("", 0, out), 0, "base64url: empty is an empty SETTINGS");
    is_int(sr_api__base64url_decode("AAM", 3, out), 2, "base64url: no padding needed");
    is_int(sr_api__base64url_decode("AAM=", 4, out), 2, "base64url: padding accepted");
    is_int(sr_api__base64url_decode("-_8", 3, out), 2, "base64url: - and _");
    ok(out[0] == 0xfb && out[1] == 0xff, "base64url: - is 62, _ is 63");
    is_int(sr_api__base64url_decode("AA+A", 4, out), -1, "base64url: + is not base64url");
    is_int(sr_api__base64url_decode("A", 1, out), -1, "base64url: a lone char is garbage");

    ok(sr_api__has_token("Upgrade, HTTP2-Settings", "http2-settings"), "token: case-insensitive");
    ok(sr_api__has_token("keep-alive,upgrade", "upgrade"), "token: no spaces");
    ok(!sr_api__has_token("upgraded", "upgrade"), "token: whole tokens only");

    struct seen r;
    const char *req = "GET / HTTP/1.1\r\nHost: h\r\nHTTP2-Settings: a\r\nhttp2-settings: b\r\n"
                      "Content-Length: 3\r\n\r\nabc";
    struct sr_api__h1_parser p;
    size_t used;
    sr_api__h1_init(&p);
    is_int(sr_api__h1_parse(&p, req, strlen(req), &used), SR_API_H1_REQUEST, "parsed");
    is_int(sr_api__h1_header_count(&p.req, "HTTP2-Settings"), 2, "header_count: both fields");
    ok(p.req.has_body, "has_body with Content-Length 3");
    sr_api__h1_free(&p);
    (void)r;
}

/* sr_api__h1_header_list on the request `s`: the joined value ("(null)"
 * when absent) and whether it had to be joined. */
static void list_of(const char *s, const char *name, char *out, size_t cap, bool *was_joined)
{
    struct sr_api__h1_parser p;
    size_t used;
    sr_api__h1_init(&p);
    snprintf(out, cap, "(not parsed)");
    if (sr_api__h1_parse(&p, s, strlen(s), &used) == SR_API_H1_REQUEST) {
        char *joined;
        const char *v = sr_api__h1_header_list(&p.req, name, &joined);
        snprintf(out, cap, "%s", v ? v : "(null)");
        *was_joined = joined != NULL;
        free(joined);
    }
    sr_api__h1_free(&p);
}

static void test_header_list(void)
{
    static const struct {
        const char *req, *want;
        bool joined;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "(null)", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\n\r\n", "\"a\"", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\", W/\"b\"\r\nX: y\r\n"
         "if-none-match: \"c\"\r\n\r\n",
         "\"a\", W/\"b\", \"c\"", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match:\r\nIf-None-Match: \"c\"\r\n\r\n", "\"c\"",
         false},
        {"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match:\r\n\r\n", "", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[128], name[96];
        bool joined = false;
        list_of(cases[i].req, "If-None-Match", got, sizeof(got), &joined);
        snprintf(name, sizeof(name), "header_list #%zu: %s", i, cases[i].want);
        is_str(got, cases[i].want, name);
        snprintf(name, sizeof(name), "header_list #%zu: %s", i,
                 cases[i].joined ? "joined (malloc'd)" : "in the request buffer");
        is_int(joined, cases[i].joined, name);
    }
}

int main(void)
{
    test_simple();
    test_split_everywhere();
    test_pipelined();
    test_versions();
    test_bad_requests();
    test_limits();
    test_head_errors();
    test_format();
    test_format_conditional();
    test_configured_limits();
    test_upgrade_helpers();
    test_header_list();
    return tap_done();
}
