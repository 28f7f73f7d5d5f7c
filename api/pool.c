/* pool: a free-list allocator for one worker's small, short-lived blocks.
 *
 * An HTTP/2 request makes about ten small allocations (nghttp2's stream,
 * outbound item and header copy; our stream and response holder), all
 * freed within a loop turn or two. glibc's tcache keeps 7 blocks of a size,
 * fewer than one turn of `h2load -m 10` frees at once, so most of them went
 * through _int_malloc/_int_free: a tenth of the instructions per request.
 *
 * A worker's connections are touched by one thread at a time (its own, or
 * main's after the join), so the lists need no lock.
 *
 * Blocks up to POOL_MAX bytes come in power-of-two classes behind a header
 * the size of max_align_t (so payloads keep malloc's alignment); bigger
 * ones are plain malloc behind the same header. Freed blocks are kept up
 * to POOL_KEEP bytes in all, the rest go back to malloc (all of them in
 * sanitizer builds). */
#include "api/api_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/util.h"

#define POOL_MIN_SHIFT 5 /* 32 bytes */
#define POOL_CLASSES 7   /* 32 .. 2048 bytes */
#define POOL_MAX ((size_t)1 << (POOL_MIN_SHIFT + POOL_CLASSES - 1))
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define POOL_KEEP 0 /* every block goes back to malloc: the sanitizers see its life */
#else
#define POOL_KEEP (128 * 1024)
#endif
#define LARGE UINT32_MAX

union hdr {
    struct {
        uint32_t cls; /* class, or LARGE */
        size_t size;  /* LARGE: the payload size */
    } h;
    max_align_t align;
};

struct free_block {
    struct free_block *next;
};

struct sr_api__pool {
    struct free_block *free[POOL_CLASSES]; /* payloads, linked in place */
    size_t kept;                           /* bytes on the lists */
};

struct sr_api__pool *sr_api__pool_new(void)
{
    return sr_calloc(1, sizeof(struct sr_api__pool));
}

void sr_api__pool_free(struct sr_api__pool *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < POOL_CLASSES; i++) {
        while (p->free[i] != NULL) {
            struct free_block *b = p->free[i];
            p->free[i] = b->next;
            free((union hdr *)(void *)b - 1);
        }
    }
    free(p);
}

static inline unsigned class_of(size_t n)
{
    if (n <= (size_t)1 << POOL_MIN_SHIFT)
        return 0;
    return (unsigned)(sizeof(unsigned long) * 8 - (size_t)__builtin_clzl(n - 1)) - POOL_MIN_SHIFT;
}

static inline size_t class_size(unsigned cls)
{
    return (size_t)1 << (POOL_MIN_SHIFT + cls);
}

void *sr_api__pool_alloc(struct sr_api__pool *p, size_t n)
{
    union hdr *h;
    if (n > POOL_MAX) {
        h = sr_malloc(sizeof(*h) + n);
        h->h.cls = LARGE;
        h->h.size = n;
        return h + 1;
    }
    unsigned cls = class_of(n);
    struct free_block *b = p->free[cls];
    if (b != NULL) {
        p->free[cls] = b->next;
        p->kept -= class_size(cls);
        return b;
    }
    h = sr_malloc(sizeof(*h) + class_size(cls));
    h->h.cls = cls;
    return h + 1;
}

void *sr_api__pool_calloc(struct sr_api__pool *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        abort(); /* what calloc would refuse; nothing asks for that */
    void *q = sr_api__pool_alloc(p, nmemb * size);
    memset(q, 0, nmemb * size);
    return q;
}

void sr_api__pool_release(struct sr_api__pool *p, void *ptr)
{
    if (ptr == NULL)
        return;
    union hdr *h = (union hdr *)ptr - 1;
    uint32_t cls = h->h.cls;
    if (cls == LARGE || p->kept + class_size(cls) > POOL_KEEP) {
        free(h);
        return;
    }
    struct free_block *b = ptr;
    b->next = p->free[cls];
    p->free[cls] = b;
    p->kept += class_size(cls);
}

void *sr_api__pool_realloc(struct sr_api__pool *p, void *ptr, size_t n)
{
    if (ptr == NULL)
        return sr_api__pool_alloc(p, n);
    union hdr *h = (union hdr *)ptr - 1;
    size_t old = h->h.cls == LARGE ? h->h.size : class_size(h->h.cls);
    if (n <= old && (h->h.cls != LARGE || n > POOL_MAX))
        return ptr; /* still fits (a large block stays large) */
    void *q = sr_api__pool_alloc(p, n);
    memcpy(q, ptr, old < n ? old : n);
    sr_api__pool_release(p, ptr);
    return q;
}
