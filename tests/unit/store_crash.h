/* What store_crash_writer writes and store_crash_test checks: batch n holds, at time
 * CRASH_T0 + n * CRASH_STEP_MS, a sample of every charger whose L1 current encodes n. */
#ifndef STORE_CRASH_H
#define STORE_CRASH_H

#include <stdint.h>

#define CRASH_T0       1763769600000LL
#define CRASH_STEP_MS  20000 /* simulated time per batch: hours pass, aggregates get built */
#define CRASH_CHARGERS 40

/* L1 of every charger in batch seq, in centiamperes. */
static inline int32_t crash_value(int64_t seq)
{
    return (int32_t)(seq % 30000);
}

#endif
