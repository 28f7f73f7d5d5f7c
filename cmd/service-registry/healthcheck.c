#include "cmd/service-registry/healthcheck.h"

#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int sr_healthcheck_run(const char *host, unsigned port, unsigned timeout_ms)
{
    char portstr[16], req[256], resp[8192];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int fd = -1, rc = 1;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0) {
        fprintf(stderr, "healthcheck: cannot resolve %s\n", host);
        return 1;
    }
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0)
        goto out;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "healthcheck: cannot connect to %s:%u\n", host, port);
        goto out;
    }
    /* An IPv6 address goes in brackets (RFC 9112 §3.2, RFC 3986 §3.2.2),
     * without a zone ID (fe80::1%eth0), which a Host cannot carry. */
    bool v6 = strchr(host, ':') != NULL;
    int hlen = (int)strcspn(host, "%");
    int n = snprintf(req, sizeof(req),
                     "GET /health HTTP/1.1\r\nHost: %s%.*s%s:%u\r\nConnection: close\r\n\r\n",
                     v6 ? "[" : "", v6 ? hlen : (int)strlen(host), host, v6 ? "]" : "", port);
    if (write(fd, req, (size_t)n) != n)
        goto out;
    size_t len = 0;
    ssize_t r;
    while (len < sizeof(resp) - 1 && (r = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
        len += (size_t)r;
    resp[len] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "healthcheck: no HTTP answer\n");
        goto out;
    }
    const char *body = strstr(resp, "\r\n\r\n");
    printf("%s\n", body ? body + 4 : "");
    json_t *doc = body ? json_loads(body + 4, 0, NULL) : NULL;
    const char *st = json_string_value(json_object_get(doc, "status"));
    if (status == 200 && st != NULL && (strcmp(st, "healthy") == 0 || strcmp(st, "degraded") == 0))
        rc = 0;
    json_decref(doc);
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}
