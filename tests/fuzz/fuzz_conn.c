/* libFuzzer: a whole connection, as a client's bytes reach the server: the
 * protocol detection, HTTP/1.1 or (when the first input byte is odd, after
 * the client preface) HTTP/2 on the nghttp2 session with our header rules,
 * HPACK encoder, flow control, limits and half-close handling, the router,
 * parked requests, long-polls and event streams. The input is written to
 * one end of a socket pair served by worker 0 of a real sr_api, then the
 * write side is shut, and the loop runs until the server has closed. Any
 * crash, leak, sanitizer report or connection that never ends is a bug. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "cache/cache.h"
#include "cache/log.h"
#include "tests/fuzz/fixture.h"

static struct sr_cache *cache;
static struct sr_api *api;

/* Hook completions are held, then released a few loop turns after the
 * client's half-close, so a request still waiting for its hook meets the
 * EOF (as POST /cache/refresh does against a real Docker). */
struct held {
    sr_api_done_cb done;
    void *arg;
    int status;
};
static struct held held[64];
static size_t nheld;

static int hold(sr_api_done_cb done, void *arg, int status)
{
    if (nheld == sizeof(held) / sizeof(held[0]))
        return -1; /* refused: the API answers 503 */
    held[nheld++] = (struct held){done, arg, status};
    return 0;
}

static void release(void)
{
    size_t n = nheld;
    nheld = 0;
    for (size_t i = 0; i < n; i++)
        held[i].done(held[i].status, held[i].arg);
}

static int hook_resync(void *ctx, sr_api_done_cb done, void *arg)
{
    (void)ctx;
    return hold(done, arg, 0);
}

static int hook_metrics(void *ctx, const char *id, sr_api_done_cb done, void *arg)
{
    (void)ctx;
    return hold(done, arg, id[0] == 'i' ? 0 : -1);
}

static uint64_t filled_at; /* the cache version sr_fuzz_fill() left */

static void setup(void)
{
    sr_log_set_level(SR_LOG_CRITICAL);
    /* A connection the server writes to after its client closed must be
     * reported as such, not kill the run with SIGPIPE (and lose the input). */
    signal(SIGPIPE, SIG_IGN);
    cache = sr_cache_new();
    filled_at = sr_fuzz_fill(cache);
    struct sr_api_opts o = {.host = "127.0.0.1", .port = 0, .max_header_bytes = 4096,
                            .max_request_line = 1024, .max_concurrent_streams = 8,
                            .sse_buffer_bytes = 4096};
    struct sr_api_hooks h = {.resync = hook_resync, .collect_metrics = hook_metrics};
    char err[256];
    api = sr_api_new(&o, &h, cache, err, sizeof(err));
    if (api == NULL) {
        fprintf(stderr, "sr_api_new: %s\n", err);
        abort();
    }
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (api == NULL)
        setup();
    if (sr_cache_version(cache) != filled_at)
        filled_at = sr_fuzz_fill(cache); /* an input wrote to the cache */
    if (size == 0 || size > 60000)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    if (data[0] & 1) {
        if (write(sv[0], preface, 24) != 24)
            abort();
    }
    data++;
    size--;
    size_t off = 0;
    sr_api__test_attach(api, sv[1]);
    /* Write what fits, let the server read, repeat. */
    for (int i = 0; off < size && i < 10000; i++) {
        ssize_t n = write(sv[0], data + off, size - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN)
            break;
        sr_api__test_step(api);
        drain(sv[0]);
    }
    shutdown(sv[0], SHUT_WR);
    size_t open = 1;
    for (int i = 0; i < 2000 && (open > 0 || nheld > 0); i++) {
        if (i == 3)
            release();
        open = sr_api__test_step(api);
        drain(sv[0]);
    }
    release();
    close(sv[0]);
    for (int i = 0; i < 100 && open > 0; i++)
        open = sr_api__test_step(api);
    if (open > 0) {
        fprintf(stderr, "the connection is still open after its client closed\n");
        abort();
    }
    return 0;
}
