/* libFuzzer: bytes from a client, through what an HTTP/1.1 connection does
 * with them: the request parser (fed in chunks the input's first byte
 * picks), the router (against a cache with services, metrics and label
 * errors), parked requests answered as their hooks would, and the response
 * head. Any crash, leak or sanitizer report is a bug. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "cache/cache.h"
#include "cache/util.h"
#include "tests/fuzz/fixture.h"

static struct sr_cache *cache;
static struct sr_api__router rt;

static uint64_t filled_at; /* the cache version sr_fuzz_fill() left */

static void setup(void)
{
    cache = sr_cache_new();
    filled_at = sr_fuzz_fill(cache);
    rt = (struct sr_api__router){.cache = cache, .refresh_interval_sec = 30,
                                 .started_mono = sr_mono(), .can_refresh = true,
                                 .can_collect = true};
}

static void answer(const struct sr_api__h1_request *req, struct sr_api__health_cache *hc)
{
    struct sr_api__request rq = {
        .method = req->method,
        .target = req->target,
        .if_none_match = sr_api__h1_header(req, "if-none-match"),
        .last_event_id = sr_api__h1_header(req, "last-event-id"),
        .health_cache = hc,
    };
    struct sr_api__response r;
    struct sr_api__park park;
    if (sr_api__route(&rt, &rq, &r, &park) == SR_API_ROUTE_PARK) {
        if (park.kind == SR_API_PARK_WATCH) { /* woken: routed again */
            rq.no_wait = true;
            sr_api__park_clear(&park);
            if (sr_api__route(&rt, &rq, &r, &park) == SR_API_ROUTE_PARK) {
                sr_api__park_clear(&park);
                return;
            }
        } else if (park.kind == SR_API_PARK_STREAM) {
            sr_api__park_clear(&park);
            return;
        } else {
            sr_api__park_response(&rt, &park, req->nheaders % 2 ? -1 : 0, &r);
            sr_api__park_clear(&park);
        }
    }
    char head[4096];
    sr_api__h1_format_head(head, sizeof(head), &r, req->keep_alive, req->minor,
                           "Sun, 06 Nov 1994 08:49:37 GMT");
    sr_api__response_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cache == NULL)
        setup();
    if (sr_cache_version(cache) != filled_at)
        filled_at = sr_fuzz_fill(cache); /* an input wrote to the cache */
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    struct sr_api__h1_parser p;
    sr_api__h1_init_limits(&p, 512, 2048);
    struct sr_api__health_cache hc = {0};
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t used = 0;
        int rc = sr_api__h1_parse(&p, (const char *)data + off, n, &used);
        off += used;
        if (rc == SR_API_H1_REQUEST)
            answer(&p.req, &hc);
        else if (rc < 0)
            break;
        else if (used == 0 && rc == SR_API_H1_AGAIN && n > 0)
            break; /* would loop: the parser took nothing */
    }
    sr_api__h1_free(&p);
    sr_api__frame_unref(hc.body);
    return 0;
}
