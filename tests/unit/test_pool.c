/* The worker's small-block pool (api/pool.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "tests/unit/tap.h"

static int aligned(const void *p)
{
    return ((uintptr_t)p % _Alignof(max_align_t)) == 0;
}

static void test_sizes(void)
{
    struct sr_api__pool *p = sr_api__pool_new();
    static const size_t sizes[] = {0, 1, 31, 32, 33, 64, 200, 511, 512, 2047, 2048, 2049, 100000};
    void *blocks[sizeof(sizes) / sizeof(sizes[0])];
    int all_aligned = 1, all_distinct = 1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        blocks[i] = sr_api__pool_alloc(p, sizes[i]);
        memset(blocks[i], (int)i + 1, sizes[i]); /* ASan: the whole size is usable */
        all_aligned &= aligned(blocks[i]);
        for (size_t j = 0; j < i; j++)
            all_distinct &= blocks[j] != blocks[i];
    }
    ok(all_aligned, "every block is aligned for any type");
    ok(all_distinct, "live blocks are distinct");
    int intact = 1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (size_t k = 0; k < sizes[i]; k++)
            intact &= ((unsigned char *)blocks[i])[k] == (unsigned char)(i + 1);
    ok(intact, "no block overlaps another");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        sr_api__pool_release(p, blocks[i]);
    sr_api__pool_release(p, NULL);
    sr_api__pool_free(p);
}

static void test_calloc_realloc(void)
{
    struct sr_api__pool *p = sr_api__pool_new();
    unsigned char *a = sr_api__pool_alloc(p, 100);
    memset(a, 0xab, 100);
    sr_api__pool_release(p, a);
    unsigned char *z = sr_api__pool_calloc(p, 25, 4);
    int zero = 1;
    for (int i = 0; i < 100; i++)
        zero &= z[i] == 0;
    ok(zero, "calloc zeroes a reused block");

    for (int i = 0; i < 100; i++)
        z[i] = (unsigned char)i;
    unsigned char *g = sr_api__pool_realloc(p, z, 3000); /* class -> large */
    int kept = 1;
    for (int i = 0; i < 100; i++)
        kept &= g[i] == (unsigned char)i;
    ok(kept, "realloc to a large block keeps the bytes");
    memset(g + 100, 7, 2900);
    unsigned char *h = sr_api__pool_realloc(p, g, 50000); /* large -> larger */
    ok(h[99] == 99 && h[2999] == 7, "realloc of a large block keeps the bytes");
    unsigned char *s = sr_api__pool_realloc(p, h, 10); /* large -> small class */
    ok(s[0] == 0 && s[9] == 9, "realloc down to a small block keeps the prefix");
    unsigned char *same = sr_api__pool_realloc(p, s, 20);
    ok(same == s, "realloc within the block's class keeps the block");
    unsigned char *fresh = sr_api__pool_realloc(p, NULL, 40);
    ok(fresh != NULL, "realloc(NULL) allocates");
    sr_api__pool_release(p, same);
    sr_api__pool_release(p, fresh);
    sr_api__pool_free(p);
}

static void test_reuse_and_bound(void)
{
    struct sr_api__pool *p = sr_api__pool_new();
    /* Far more than the pool keeps: the rest must go back to malloc (a
     * leak here shows under LeakSanitizer and valgrind). */
    enum { N = 4096 };
    void **v = malloc(N * sizeof(*v));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            v[i] = sr_api__pool_alloc(p, 1024);
        for (int i = 0; i < N; i++)
            sr_api__pool_release(p, v[i]);
    }
    void *a = sr_api__pool_alloc(p, 1000);
    sr_api__pool_release(p, a);
    void *b = sr_api__pool_alloc(p, 900);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    ok(1, "blocks go back to malloc in sanitizer builds");
#else
    ok(a == b, "a released block is handed out again for its class");
#endif
    sr_api__pool_release(p, b);
    free(v);
    sr_api__pool_free(p);
    sr_api__pool_free(NULL);
    ok(1, "pool freed with blocks kept and returned");
}

int main(void)
{
    test_sizes();
    test_calloc_realloc();
    test_reuse_and_bound();
    return tap_done();
}
