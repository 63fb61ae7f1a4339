/* The benchmark garage shared by bal_bench, bal_pair and bal_fingerprint: a facility shaped like
 * a large garage, the random numbers that feed it, and bal_bench's statuses and readings. Bench
 * code only. */
#ifndef PW_BAL_GARAGE_H
#define PW_BAL_GARAGE_H

#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"

/* splitmix64: the next number of the stream in *state. */
uint64_t bal_garage_rnd(uint64_t *state);
/* Uniform in [lo, hi). */
double bal_garage_rndf(uint64_t *state, double lo, double hi);

/* Fills f (with nodes[0..n_nodes) and ch[0..n_chargers)) with the garage: main fuse, a ring of
 * sub-distributions under it and a second level under those; chargers spread evenly with
 * rotated wiring; limits tight enough that the main fuse and most sub-distributions bind and
 * some cars pause, the expensive case. Every third node is metered, every seventh has an
 * imbalance limit. */
void bal_garage_build(size_t n_chargers, size_t n_nodes, pw_bal_node_spec *nodes,
                      pw_bal_charger_spec *ch, pw_bal_facility *f);

/* The bench's status of charger k into *m: no car, a car connected, or (most) a car charging on
 * 1 or 3 phases at a random current (random numbers from *state). */
void bal_garage_status(size_t k, uint64_t *state, pw_bal_measure *m);

/* The bench's reading of metered node n into line: random building load up to a fifth of its
 * limits. */
void bal_garage_reading(const pw_bal_node_spec *n, uint64_t *state, double line[PW_LINES]);

#endif
