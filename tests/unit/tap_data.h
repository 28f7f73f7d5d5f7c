/* Test data for unit tests: the captured Docker answers in tests/data
 * (meson passes the directory in SR_TEST_DATA). */
#ifndef SR_TAP_DATA_H
#define SR_TAP_DATA_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* Loads tests/data/<name> as JSON (new reference), or NULL with a TAP note. */
static inline json_t *tap_load_json(const char *name)
{
    char path[1024];
    const char *dir = getenv("SR_TEST_DATA");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data", name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (j == NULL)
        printf("# cannot load %s: %s\n", path, err.text);
    return j;
}

#endif
