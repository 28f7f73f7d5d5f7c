/* The cache the HTTP fuzz targets route against. */
#ifndef SR_FUZZ_FIXTURE_H
#define SR_FUZZ_FIXTURE_H

#include <stdint.h>

#include "cache/cache.h"

/* (Re)fills `cache` with three services (labels, a stack, label errors, a
 * non-ASCII name) and metrics for "web"; returns the cache version it left.
 * A target calls it again when the version moved: POST /cache/clear in one
 * input must not leave the next ones with nothing to serve. */
uint64_t sr_fuzz_fill(struct sr_cache *cache);

#endif
