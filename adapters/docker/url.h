/* DOCKER_BASE_URL -> what libcurl needs. Pure, any thread. Internal to
 * adapters/docker. */
#ifndef SR_DOCKER_URL_H
#define SR_DOCKER_URL_H

#include <stddef.h>

#include "cache/cache.h"

struct sr_docker__endpoint {
    char unix_path[108]; /* "" unless unix:// (sizeof sun_path) */
    char http_base[300]; /* "http://localhost" for a socket, else "http://host:port" */
};

/* Accepted: unix:///abs/path (path <= 107 bytes), tcp://host[:port] (port
 * defaults to 2375, Docker's plain-HTTP port) and http://host[:port] (80),
 * with host a name, an IPv4 address or a [bracketed] IPv6 address, and at
 * most a trailing "/". Returns 0 and fills *ep (may be NULL), or -1 with a
 * one-line reason in err. */
int sr_docker__parse_url(const char *url, struct sr_docker__endpoint *ep, char *err, size_t errlen);

/* What a Docker API request path ("/v1.41/services?filters=...", "/_ping")
 * is for, for /metrics. */
enum sr_source_call sr_docker__call_kind(const char *path);

#endif
