/* A cumulative latency histogram in microseconds, Prometheus style: the shell and the transports
 * observe into it on the loop thread, /metrics renders it. */
#ifndef PW_LATENCY_H
#define PW_LATENCY_H

#include <stdint.h>

#define PW_LATENCY_BUCKETS 8
extern const double pw_latency_bounds_us[PW_LATENCY_BUCKETS];

typedef struct pw_latency {
    uint64_t bucket[PW_LATENCY_BUCKETS]; /* observations <= pw_latency_bounds_us[i] */
    uint64_t count;
    uint64_t sum_us;
} pw_latency;

void pw_latency_observe(pw_latency *h, uint64_t us);

#endif
