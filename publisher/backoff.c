/* Reconnect delays. A broker that is down for long costs one attempt per
 * 30 s at most; the jitter spreads the reconnects of many registries after
 * a broker restart. */
#include "publisher/publisher_internal.h"

unsigned sr_publisher__attempt_after(unsigned attempt, double lived)
{
    return lived >= SR_PUB_HEALTHY_SEC ? 0 : attempt;
}

double sr_publisher__backoff(unsigned attempt, double rand01)
{
    double ceiling = SR_PUB_BACKOFF_MIN;
    for (unsigned i = 0; i < attempt && ceiling < SR_PUB_BACKOFF_MAX; i++)
        ceiling *= 2;
    if (ceiling > SR_PUB_BACKOFF_MAX)
        ceiling = SR_PUB_BACKOFF_MAX;
    if (rand01 < 0 || rand01 >= 1)
        rand01 = 0;
    return ceiling / 2 + rand01 * ceiling / 2;
}
