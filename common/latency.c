/* The latency histogram (pw_latency.h). */
#include "pw_latency.h"

#include <stddef.h>

const double pw_latency_bounds_us[PW_LATENCY_BUCKETS] = {50,   100,  200,  500,
                                                         1000, 2000, 5000, 10000};

void pw_latency_observe(pw_latency *h, uint64_t us)
{
    for (size_t i = 0; i < PW_LATENCY_BUCKETS; i++)
        if ((double)us <= pw_latency_bounds_us[i])
            h->bucket[i]++;
    h->count++;
    h->sum_us += us;
}
