/* `service-registry healthcheck`: the image's HEALTHCHECK (the image has no
 * curl). GET /health on the local port; exit 0 when the body says healthy or
 * degraded (HTTP 200), 1 otherwise. Blocking, with a short timeout: it runs
 * as its own short-lived process, never inside the server. */
#ifndef SR_HEALTHCHECK_H
#define SR_HEALTHCHECK_H

/* host: where to connect ("127.0.0.1" when the server listens on a wildcard
 * address); port: the server's port. Returns the process exit status. */
int sr_healthcheck_run(const char *host, unsigned port, unsigned timeout_ms);

#endif
