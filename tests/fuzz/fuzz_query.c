/* libFuzzer: the small parsers of query strings and watch parameters:
 * sr_api__query_get, index (sr_api__parse_u64), wait (sr_api__parse_wait)
 * and topic patterns (sr_api__topic_match), each on text a client sends.
 * Input: "<query>\n<pattern>\n<key>". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl1 = memchr(s, '\n', size);
    size_t qlen = nl1 ? (size_t)(nl1 - s) : size;
    const char *v;
    size_t vlen;
    uint64_t u;
    static const char *const names[] = {"index", "wait", "since", "types", "label", "stack", "metric"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (sr_api__query_get(s, qlen, names[i], &v, &vlen)) {
            sr_api__parse_u64(v, vlen, &u);
            sr_api__parse_wait(v, vlen, &u);
        }
    }
    sr_api__parse_u64(s, qlen, &u);
    sr_api__parse_wait(s, qlen, &u);
    if (nl1 != NULL) {
        const char *rest = nl1 + 1;
        size_t rlen = size - qlen - 1;
        const char *nl2 = memchr(rest, '\n', rlen);
        size_t plen = nl2 ? (size_t)(nl2 - rest) : rlen;
        char *pattern = dup_range(rest, plen);
        char *key = nl2 ? dup_range(nl2 + 1, rlen - plen - 1) : dup_range("", 0);
        sr_api__topic_match(pattern, key);
        free(pattern);
        free(key);
    }
    return 0;
}
