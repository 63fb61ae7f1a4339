/* Seeded packet impairment for the simulator's links: drop, duplicate, or hold a datagram back
 * so that it arrives after the next one. Pure: the caller delivers through a callback. */
#ifndef PW_SIMIMPAIR_H
#define PW_SIMIMPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "pw_simmodel.h"

#define PW_SIM_IMPAIR_MAX 2048 /* larger datagrams are never held back */

typedef void (*pw_sim_deliver_fn)(void *ctx, const uint8_t *buf, size_t len);

/* One direction of a link. Caller-allocated; nothing to free. */
typedef struct pw_sim_impair {
    double loss, dup, reorder; /* probabilities per datagram */
    pw_sim_rng rng;
    int holding;
    size_t held_len;
    uint8_t held[PW_SIM_IMPAIR_MAX];
    uint64_t dropped, duplicated, reordered;
} pw_sim_impair;

void pw_sim_impair_init(pw_sim_impair *im, double loss, double dup, double reorder, uint64_t seed);

/* Passes one datagram: dropped with probability loss; else held back with probability reorder
 * (when nothing is held yet) and delivered after the next one; else delivered, a second time with
 * probability dup, followed by a held one if any. buf is borrowed for the call. */
void pw_sim_impair_pass(pw_sim_impair *im, const uint8_t *buf, size_t len, pw_sim_deliver_fn fn,
                        void *ctx);

/* Delivers a held datagram, if any (the end of a tick, so nothing is held for long). */
void pw_sim_impair_flush(pw_sim_impair *im, pw_sim_deliver_fn fn, void *ctx);

/* A device that goes silent for a while: it sends nothing and hears nothing from start_ms to
 * end_ms (simulated time), as with a cable pulled or a meter gateway hung. */
typedef struct pw_sim_outage {
    uint32_t device_id; /* a charger's device id; 0 = every phasewise meter gateway */
    uint64_t start_ms, end_ms;
} pw_sim_outage;

#define PW_SIM_MAX_OUTAGES 8

/* Parses "START:SECONDS" (device_id 0) or, with_device, "DEVICE:START:SECONDS"; times in
 * seconds, fractions allowed. Returns 0 and fills out, or -1 if text is not of that form. */
int pw_sim_outage_parse(const char *text, int with_device, pw_sim_outage *out);

/* True if any of the n outages covers device_id at sim_ms. */
int pw_sim_outage_active(const pw_sim_outage *o, size_t n, uint32_t device_id, uint64_t sim_ms);

#endif
