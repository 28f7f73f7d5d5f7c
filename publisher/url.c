/* RABBITMQ_URL parsing. amqp_parse_url does the work; it rewrites its input
 * and points into it, so we parse a private copy that the result owns. Its
 * failures carry no detail, hence the few checks of our own first, so the
 * reason can say what is wrong without ever quoting the URL (it may hold a
 * password). */
#include "publisher/publisher_internal.h"

#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

#define EXPECTED "expected amqp://user:pass@host:port/vhost"
#define MAX_URL 4096

static int fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return -1;
}

/* The host part between "amqp://[userinfo@]" and the port, path or end. */
static int host_present(const char *rest)
{
    size_t auth = strcspn(rest, "/?#");
    const char *at = memchr(rest, '@', auth);
    const char *host = at ? at + 1 : rest;
    size_t left = auth - (size_t)(host - rest);
    return left > 0 && host[0] != ':';
}

/* A port, when the authority has one, is ASCII digits (as every number the
 * registry reads): amqp_parse_url would take "+5672" and "0x10". */
static int port_digits(const char *rest)
{
    size_t auth = strcspn(rest, "/?#");
    const char *at = NULL;
    for (const char *p = rest; p < rest + auth; p++)
        if (*p == '@')
            at = p; /* the last: a raw '@' in a password must not end the userinfo early */
    const char *host = at ? at + 1 : rest, *end = rest + auth;
    if (*host == '[') {
        host = memchr(host, ']', (size_t)(end - host));
        if (host == NULL)
            return 1; /* amqp_parse_url judges the literal */
    }
    const char *colon = memchr(host, ':', (size_t)(end - host));
    if (colon == NULL)
        return 1;
    if (colon + 1 == end)
        return 0;
    for (const char *p = colon + 1; p < end; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

int sr_publisher__url_parse(const char *url, struct sr_pub_url *out, char *err, size_t errlen)
{
    *out = (struct sr_pub_url){0};
    if (url == NULL || *url == '\0')
        return fail(err, errlen, "empty URL (" EXPECTED ")");
    size_t len = strlen(url);
    if (len > MAX_URL)
        return fail(err, errlen, "URL too long");
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return fail(err, errlen, "URL contains spaces or control characters");
    if (strncmp(url, "amqps://", 8) == 0)
        return fail(err, errlen, "amqps:// (TLS) is not supported; use amqp://");
    if (strncmp(url, "amqp://", 7) != 0)
        return fail(err, errlen, "not an amqp:// URL (" EXPECTED ")");
    if (!host_present(url + 7))
        return fail(err, errlen, "URL has no host (" EXPECTED ")");
    if (!port_digits(url + 7))
        return fail(err, errlen, "URL port must be digits, 1-65535 (none: 5672)");

    struct amqp_connection_info ci;
    char *buf = sr_strdup(url);
    if (amqp_parse_url(buf, &ci) != AMQP_STATUS_OK) {
        free(buf);
        return fail(err, errlen,
                    "malformed URL (" EXPECTED "; port 1-65535; vhost percent-encoded, "
                    "e.g. %2F for /)");
    }
    if (ci.port < 1 || ci.port > 65535) {
        free(buf);
        return fail(err, errlen, "URL port must be 1-65535");
    }
    if (ci.user[0] == '\0') {
        free(buf);
        return fail(err, errlen, "URL has an empty user name");
    }
    out->buf = buf;
    out->user = ci.user;
    out->password = ci.password;
    out->host = ci.host;
    out->port = ci.port;
    /* "amqp://host/" leaves an empty vhost, which no broker has: people mean
     * the default one, as pika and the RabbitMQ docs' examples read it. */
    out->vhost = ci.vhost[0] ? ci.vhost : "/";
    return 0;
}

void sr_publisher__url_free(struct sr_pub_url *u)
{
    free(u->buf);
    *u = (struct sr_pub_url){0};
}

void sr_publisher__url_display(const struct sr_pub_url *u, char *buf, size_t len)
{
    char vhost[3 * 256 + 1];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)u->vhost; *p && o + 4 < sizeof(vhost);
         p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            vhost[o++] = (char)*p;
        else
            o += (size_t)snprintf(vhost + o, sizeof(vhost) - o, "%%%02X", *p);
    }
    vhost[o] = '\0';
    int v6 = strchr(u->host, ':') != NULL;
    snprintf(buf, len, "amqp://%s@%s%s%s:%d/%s", u->user, v6 ? "[" : "", u->host, v6 ? "]" : "",
             u->port, vhost);
}

int sr_publisher_check_url(const char *url, char *err, size_t errlen)
{
    if (url == NULL || *url == '\0')
        return 0;
    struct sr_pub_url u;
    if (sr_publisher__url_parse(url, &u, err, errlen) != 0)
        return -1;
    sr_publisher__url_free(&u);
    return 0;
}
