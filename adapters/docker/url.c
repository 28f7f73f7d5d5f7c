/* DOCKER_BASE_URL parsing. Strict on purpose: the value ends up in a libcurl
 * URL, so anything we do not understand (userinfo, paths, queries, https) is
 * rejected at start rather than half-working at run time. */
#include "adapters/docker/url.h"

#include <stdio.h>
#include <string.h>

#include "adapters/docker/docker.h"
#include "cache/util.h"

#define ACCEPTED "expected unix:///path/to.sock, tcp://host[:port] or http://host[:port]"

static int reject(char *err, size_t errlen, const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s; %s", why, ACCEPTED);
    return -1;
}

static int host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* host[:port][/] -> "http://host:port". */
static int parse_hostport(const char *s, const char *def_port, struct sr_docker__endpoint *ep,
                          char *err, size_t errlen)
{
    const char *h = s, *end;
    size_t hlen;
    if (*s == '[') {
        end = strchr(s, ']');
        if (end == NULL || end == s + 1)
            return reject(err, errlen, "bad IPv6 address");
        for (const char *p = s + 1; p < end; p++)
            if (!(host_char(*p) || *p == ':') || *p == '_')
                return reject(err, errlen, "bad IPv6 address");
        end++;
    } else {
        end = s;
        while (host_char(*end))
            end++;
    }
    hlen = (size_t)(end - h);
    if (hlen == 0)
        return reject(err, errlen, "missing host");
    if (hlen > 253)
        return reject(err, errlen, "host name too long");
    const char *port = def_port;
    char portbuf[8];
    if (*end == ':') {
        const char *p = end + 1, *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        long long v;
        if (q == p || (size_t)(q - p) >= sizeof(portbuf))
            return reject(err, errlen, "bad port");
        memcpy(portbuf, p, (size_t)(q - p));
        portbuf[q - p] = '\0';
        if (sr_parse_int(portbuf, 1, 65535, &v) != 0)
            return reject(err, errlen, "port must be 1-65535");
        port = portbuf;
        end = q;
    }
    if (*end == '/')
        end++;
    if (*end != '\0')
        return reject(err, errlen, "unexpected characters after host[:port]");
    if (ep != NULL) {
        ep->unix_path[0] = '\0';
        snprintf(ep->http_base, sizeof(ep->http_base), "http://%.*s:%s", (int)hlen, h, port);
    }
    return 0;
}

int sr_docker__parse_url(const char *url, struct sr_docker__endpoint *ep, char *err, size_t errlen)
{
    if (url == NULL || *url == '\0')
        return reject(err, errlen, "empty URL");
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        if (path[0] != '/' || path[1] == '\0')
            return reject(err, errlen, "unix:// needs an absolute socket path");
        if (strlen(path) >= sizeof(ep->unix_path))
            return reject(err, errlen, "socket path too long (max 107 bytes)");
        if (ep != NULL) {
            snprintf(ep->unix_path, sizeof(ep->unix_path), "%s", path);
            snprintf(ep->http_base, sizeof(ep->http_base), "http://localhost");
        }
        return 0;
    }
    if (strncmp(url, "tcp://", 6) == 0)
        return parse_hostport(url + 6, "2375", ep, err, errlen);
    if (strncmp(url, "http://", 7) == 0)
        return parse_hostport(url + 7, "80", ep, err, errlen);
    if (strncmp(url, "https://", 8) == 0)
        return reject(err, errlen, "TLS (https://) is not supported");
    return reject(err, errlen, "unsupported scheme");
}

int sr_docker_check_url(const char *url, char *err, size_t errlen)
{
    return sr_docker__parse_url(url, NULL, err, errlen);
}

enum sr_source_call sr_docker__call_kind(const char *path)
{
    static const struct {
        const char *prefix;
        enum sr_source_call kind;
    } kinds[] = {
        {"/_ping", SR_CALL_PING},       {"/version", SR_CALL_VERSION},
        {"/info", SR_CALL_INFO},        {"/services", SR_CALL_SERVICES},
        {"/tasks", SR_CALL_TASKS},      {"/containers/", SR_CALL_CONTAINER_STATS},
        {"/events", SR_CALL_EVENTS},
    };
    if (path == NULL)
        return SR_CALL_OTHER;
    /* Skip the "/v1.41" version prefix, if any. */
    if (path[0] == '/' && path[1] == 'v' && path[2] >= '0' && path[2] <= '9') {
        const char *p = path + 2;
        while ((*p >= '0' && *p <= '9') || *p == '.')
            p++;
        if (*p == '/')
            path = p;
    }
    size_t end = strcspn(path, "?");
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (end < n || strncmp(path, kinds[i].prefix, n) != 0)
            continue;
        if (kinds[i].kind == SR_CALL_CONTAINER_STATS) {
            /* /containers/{id}/stats only */
            const char *slash = memchr(path + n, '/', end - n);
            if (slash == NULL || (size_t)(path + end - slash) != 6 || strncmp(slash, "/stats", 6))
                return SR_CALL_OTHER;
            return SR_CALL_CONTAINER_STATS;
        }
        /* Whole segment: "/services" or "/services/...", not "/servicesx". */
        if (end == n || path[n] == '/')
            return kinds[i].kind;
    }
    return SR_CALL_OTHER;
}
