/* http1: a pure, incremental HTTP/1.1 request parser (RFC 9112) and the
 * response-head formatter. No I/O: http1_conn.c moves the bytes, and
 * tests/unit/test_http1.c drives this on plain buffers.
 *
 * The head (request line + header lines) is copied into the parser's own
 * buffer as it arrives, so a request may be split anywhere; it is parsed
 * in one pass once the empty line arrives. Caps are checked while bytes
 * accumulate, so an oversized head is refused before it is buffered. The
 * content (Content-Length only) is counted and skipped: no endpoint reads
 * a request body. */
#include "api/api_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/util.h"

enum {
    ST_LINE = 0, /* request line (after optional empty lines) */
    ST_HEADERS,  /* header lines, until the empty line */
    ST_BODY,     /* skipping Content-Length bytes */
};

void sr_api__h1_init_limits(struct sr_api__h1_parser *p, size_t max_line, size_t max_head)
{
    memset(p, 0, sizeof(*p));
    p->max_line = max_line ? max_line : SR_API_MAX_REQUEST_LINE;
    p->max_head = max_head ? max_head : SR_API_MAX_HEADER_BLOCK;
}

void sr_api__h1_init(struct sr_api__h1_parser *p)
{
    sr_api__h1_init_limits(p, 0, 0);
}

void sr_api__h1_free(struct sr_api__h1_parser *p)
{
    free(p->buf);
    p->buf = NULL;
}

bool sr_api__h1_idle(const struct sr_api__h1_parser *p)
{
    return p->error == 0 && p->state == ST_LINE && (p->len == 0 || p->reset);
}

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2 token characters. */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int append(struct sr_api__h1_parser *p, const char *data, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 1024;
        while (cap < p->len + n + 1)
            cap *= 2;
        p->buf = sr_realloc(p->buf, cap);
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, n);
    p->len += n;
    p->buf[p->len] = '\0';
    return 0;
}

/* Strips the line terminator of buf[start..end) (end is just past LF).
 * Returns the content length; -1 if a CR appears anywhere but before LF. */
static long line_content(char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\n')
        n--;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (memchr(s, '\r', n) != NULL)
        return -1;
    s[n] = '\0';
    return (long)n;
}

/* buf[0..len) then rest[0..n) spell "HEAD" (the method, split anywhere). */
static bool method_is_head(const char *buf, size_t len, const char *rest, size_t n)
{
    static const char head[] = "HEAD";
    if (len + n != 4)
        return false;
    for (size_t k = 0; k < 4; k++)
        if ((k < len ? buf[k] : rest[k - len]) != head[k])
            return false;
    return true;
}

static int parse_request_line(struct sr_api__h1_request *req, char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ' ')
        return -400;
    s[i++] = '\0';
    req->method = s;

    size_t t = i;
    while (i < n && (unsigned char)s[i] > 0x20 && s[i] != 0x7f)
        i++;
    if (i == t || i >= n || s[i] != ' ')
        return -400;
    s[i++] = '\0';
    req->target = s + t;

    const char *v = s + i;
    if (n - i != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1')
        return -505;
    /* A higher 1.x minor is answered as 1.1 (RFC 9110 §6.2). */
    req->minor = v[7] == '0' ? 0 : 1;
    return 0;
}

/* RFC 3986 §2.3 unreserved and §2.2 sub-delims. */
static bool is_unreserved_or_sub(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL);
}

/* The inside of an RFC 3986 IP-literal: an IPv6 address, or IPvFuture
 * ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )). */
static bool ip_literal_ok(const char *s, size_t n)
{
    if (n > 0 && (s[0] | 0x20) == 'v') {
        size_t i = 1;
        while (i < n && sr_api__hexval(s[i]) >= 0)
            i++;
        if (i == 1 || i + 1 >= n || s[i] != '.')
            return false;
        for (i++; i < n; i++)
            if (!is_unreserved_or_sub(s[i]) && s[i] != ':')
                return false;
        return true;
    }
    char a[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (n == 0 || n >= sizeof(a))
        return false;
    memcpy(a, s, n);
    a[n] = '\0';
    return inet_pton(AF_INET6, a, bin) == 1;
}

bool sr_api__host_ok(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        const char *end = memchr(v, ']', n);
        if (end == NULL || !ip_literal_ok(v + 1, (size_t)(end - v - 1)))
            return false;
        i = (size_t)(end - v) + 1;
    } else {
        while (i < n && v[i] != ':') {
            if (v[i] == '%' && i + 2 < n && sr_api__hexval(v[i + 1]) >= 0 &&
                sr_api__hexval(v[i + 2]) >= 0)
                i += 3;
            else if (is_unreserved_or_sub(v[i]))
                i++;
            else
                return false;
        }
    }
    if (i < n && v[i] == ':')
        for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++)
            ;
    return i == n;
}

bool sr_api__has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *s = value;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - s) == tl && strncasecmp(s, token, tl) == 0)
            return true;
        s = e;
    }
    return false;
}

/* The codings of a Transfer-Encoding value (RFC 9112 §6.1): sets *chunked
 * when "chunked" is one, *other when another is named. Parameters and
 * empty list members are skipped. */
static void te_codings(const char *v, bool *chunked, bool *other)
{
    while (*v) {
        v += strspn(v, " \t,");
        size_t member = strcspn(v, ","), name = strcspn(v, " \t;,");
        if (name == 7 && strncasecmp(v, "chunked", 7) == 0)
            *chunked = true;
        else if (member > 0)
            *other = true;
        v += member;
    }
}

/* Parses the complete head in buf. Pointers in p->req point into buf. */
static int parse_head(struct sr_api__h1_parser *p, size_t line_end)
{
    struct sr_api__h1_request *req = &p->req;
    memset(req, 0, sizeof(*req));

    long n = line_content(p->buf, line_end);
    if (n < 0)
        return -400;
    int rc = parse_request_line(req, p->buf, (size_t)n);
    if (rc != 0)
        return rc;

    bool conn_close = false, conn_keep = false, has_cl = false, has_te = false;
    bool te_chunked = false, te_other = false;
    unsigned hosts = 0;
    const char *host = NULL;
    uint64_t cl = 0;
    size_t pos = line_end;
    while (pos < p->len) {
        char *line = p->buf + pos;
        char *lf = memchr(line, '\n', p->len - pos);
        size_t raw = (size_t)(lf - line) + 1;
        pos += raw;
        long len = line_content(line, raw);
        if (len < 0)
            return -400;
        if (len == 0)
            break; /* the empty line ending the head */
        /* obs-fold is refused (RFC 9112 §5.2). */
        if (line[0] == ' ' || line[0] == '\t')
            return -400;
        long i = 0;
        while (i < len && is_tchar((unsigned char)line[i]))
            i++;
        /* No whitespace between name and colon (RFC 9112 §5.1). */
        if (i == 0 || i >= len || line[i] != ':')
            return -400;
        line[i++] = '\0';
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        long e = len;
        while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t'))
            e--;
        line[e] = '\0';
        for (long k = i; k < e; k++) {
            unsigned char c = (unsigned char)line[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return -400;
        }
        const char *name = line, *value = line + i;
        if (req->nheaders == SR_API_MAX_HEADERS)
            return -431;
        req->headers[req->nheaders].name = name;
        req->headers[req->nheaders].value = value;
        req->nheaders++;

        if (strcasecmp(name, "content-length") == 0) {
            if (*value == '\0' || strspn(value, "0123456789") != strlen(value))
                return -400;
            /* Saturating: any length past the cap is refused the same way,
             * and leading zeros are allowed (RFC 9110 §8.6: 1*DIGIT). */
            uint64_t v = 0;
            for (const char *d = value; *d; d++)
                v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(*d - '0');
            if (has_cl && v != cl)
                return -400;
            has_cl = true;
            cl = v;
        } else if (strcasecmp(name, "transfer-encoding") == 0) {
            has_te = true;
            te_codings(value, &te_chunked, &te_other);
        } else if (strcasecmp(name, "host") == 0) {
            hosts++;
            host = value;
        } else if (strcasecmp(name, "connection") == 0) {
            conn_close |= sr_api__has_token(value, "close");
            conn_keep |= sr_api__has_token(value, "keep-alive");
        } else if (strcasecmp(name, "expect") == 0) {
            req->expect_continue = sr_api__has_token(value, "100-continue");
        }
    }

    /* Both framings at once is a smuggling vector (RFC 9112 §6.3). */
    if (has_te && has_cl)
        return -400;
    /* A coding we do not know: 501 (RFC 9112 §6.1). Chunked we know, but
     * do not take for requests: ask for a length. No coding at all: 400. */
    if (te_other)
        return -501;
    if (has_te)
        return te_chunked ? -411 : -400;
    if (req->minor == 1 && hosts != 1)
        return -400;
    if (hosts > 1)
        return -400;
    /* An invalid Host gets 400 (RFC 9112 §3.2). */
    if (host != NULL && !sr_api__host_ok(host, strlen(host)))
        return -400;
    if (cl > SR_API_MAX_BODY)
        return -413;
    req->content_length = cl;
    req->has_body = cl > 0;
    req->keep_alive = req->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    return 0;
}

int sr_api__h1_parse(struct sr_api__h1_parser *p, const char *data, size_t len, size_t *consumed)
{
    size_t i = 0;
    *consumed = 0;
    if (p->error)
        return p->error;
    if (p->reset) {
        p->reset = false;
        p->len = 0;
        p->line_start = 0;
        p->head_bytes = 0;
        p->nlines = 0;
        p->head = false;
        memset(&p->req, 0, sizeof(p->req));
    }

    while (i < len) {
        if (p->state == ST_BODY) {
            size_t n = len - i;
            if (n > p->body_left)
                n = (size_t)p->body_left;
            i += n;
            p->body_left -= n;
            if (p->body_left == 0)
                p->state = ST_LINE;
            continue;
        }
        /* Empty lines before a request line are ignored (RFC 9112 §2.2). */
        if (p->state == ST_LINE && p->len == 0 && (data[i] == '\r' || data[i] == '\n')) {
            i++;
            continue;
        }

        /* Refuse an oversized line or block before buffering it; the
         * exact check (CR or not) happens once the line is complete. */
        const char *lf = memchr(data + i, '\n', len - i);
        size_t seg = (lf ? (size_t)(lf - data) + 1 : len) - i;
        /* Refuse a non-token method byte at once (a TLS ClientHello, say)
         * instead of waiting for a line end that may never come. */
        if (p->state == ST_LINE && !memchr(p->buf ? p->buf : "", ' ', p->len)) {
            size_t k = i;
            for (; k < i + seg && data[k] != ' '; k++)
                if (!is_tchar((unsigned char)data[k]) && data[k] != '\r' && data[k] != '\n')
                    return p->error = -400;
            /* The method is whole: a HEAD's error answer has no content. */
            if (k < i + seg)
                p->head = method_is_head(p->buf, p->len, data + i, k - i);
        }
        if (p->state == ST_LINE && p->len - p->line_start + seg > p->max_line + 2)
            return p->error = -414;
        if (p->state == ST_HEADERS && p->head_bytes + seg > p->max_head + 2)
            return p->error = -431;
        append(p, data + i, seg);
        i += seg;
        if (p->state == ST_HEADERS)
            p->head_bytes += seg;
        if (!lf)
            continue;

        size_t raw = p->len - p->line_start;
        size_t content = raw - 1 - (raw >= 2 && p->buf[p->len - 2] == '\r');
        p->line_start = p->len;
        if (p->state == ST_LINE) {
            if (content > p->max_line)
                return p->error = -414;
            p->line_end = p->len;
            p->state = ST_HEADERS;
            continue;
        }
        if (content > 0) {
            if (++p->nlines > SR_API_MAX_HEADERS || p->head_bytes > p->max_head)
                return p->error = -431;
            continue;
        }

        int rc = parse_head(p, p->line_end);
        if (rc != 0)
            return p->error = rc;
        *consumed = i;
        p->body_left = p->req.content_length;
        p->state = p->body_left ? ST_BODY : ST_LINE;
        p->reset = true;
        return SR_API_H1_REQUEST;
    }
    *consumed = i;
    return SR_API_H1_AGAIN;
}

const char *sr_api__h1_header(const struct sr_api__h1_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *sr_api__h1_header_list(const struct sr_api__h1_request *req, const char *name,
                                   char **joined)
{
    const char *first = NULL, *only = NULL;
    size_t n = 0, len = 0;
    *joined = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *v = req->headers[i].value;
        if (strcasecmp(req->headers[i].name, name) != 0)
            continue;
        if (first == NULL)
            first = v;
        if (*v == '\0')
            continue; /* an empty field adds no member */
        only = v;
        n++;
        len += strlen(v) + 2;
    }
    if (n <= 1)
        return only ? only : first;
    char *s = sr_malloc(len), *o = s;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *v = req->headers[i].value;
        if (*v == '\0' || strcasecmp(req->headers[i].name, name) != 0)
            continue;
        if (o != s) {
            *o++ = ',';
            *o++ = ' ';
        }
        size_t l = strlen(v);
        memcpy(o, v, l);
        o += l;
    }
    *o = '\0';
    return *joined = s;
}

char *sr_api__http_date(time_t t, char *buf, size_t len)
{
    /* Fixed English names: strftime's %a/%b follow the locale. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

size_t sr_api__h1_header_count(const struct sr_api__h1_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        n += strcasecmp(req->headers[i].name, name) == 0;
    return n;
}

long sr_api__base64url_decode(const char *src, size_t len, unsigned char *dst)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    while (len > 0 && src[len - 1] == '=')
        len--; /* padding is optional (RFC 7540 §3.2.1 omits it) */
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6) /* a lone trailing character carries no whole byte */
        return -1;
    return (long)o;
}

struct hbuf {
    char *p;
    size_t len, cap;
    bool over;
};

static void put(struct hbuf *b, const char *s, size_t n)
{
    if (b->over || n >= b->cap - b->len) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define PUTL(b, lit) put((b), (lit), sizeof(lit) - 1)
#define PUTS(b, s) put((b), (s), strlen(s))

static void put_u64(struct hbuf *b, uint64_t v)
{
    char d[24];
    put(b, d, sr_api__fmt_u64(d, v));
}

size_t sr_api__h1_format_head(char *buf, size_t cap, const struct sr_api__response *r,
                              bool keep_alive, int req_minor, const char *date)
{
    /* Built by hand: this runs for every response, and snprintf with
     * several %s costs more than the rest of the head together. */
    struct hbuf b = {.p = buf, .cap = cap};
    if (cap == 0)
        return 0;
    PUTL(&b, "HTTP/1.1 ");
    put_u64(&b, r->status >= 0 ? (uint64_t)r->status : 0);
    PUTL(&b, " ");
    PUTS(&b, sr_api__reason(r->status));
    PUTL(&b, "\r\n");
    /* A 304 carries neither type nor length (RFC 9110 §15.4.5, §8.6). */
    if (r->status != 304) {
        PUTL(&b, "Content-Type: ");
        PUTS(&b, r->content_type ? r->content_type : "");
        PUTL(&b, "\r\n");
        if (!r->unbounded) {
            PUTL(&b, "Content-Length: ");
            put_u64(&b, sr_api__response_length(r));
            PUTL(&b, "\r\n");
        }
    }
    PUTL(&b, "Date: ");
    PUTS(&b, date);
    PUTL(&b, "\r\nServer: " SR_API_SERVER_HEADER "\r\nCache-Control: no-cache\r\n");
    if (r->etag[0]) {
        PUTL(&b, "ETag: ");
        PUTS(&b, r->etag);
        PUTL(&b, "\r\n");
    }
    if (r->has_index) {
        PUTL(&b, "X-Registry-Index: ");
        put_u64(&b, r->index);
        PUTL(&b, "\r\n");
    }
    if (r->allow) {
        PUTL(&b, "Allow: ");
        PUTS(&b, r->allow);
        PUTL(&b, "\r\n");
    }
    if (!keep_alive)
        PUTL(&b, "Connection: close\r\n");
    else if (req_minor == 0)
        PUTL(&b, "Connection: keep-alive\r\n");
    PUTL(&b, "\r\n");
    if (b.over)
        return 0;
    buf[b.len] = '\0';
    return b.len;
}
