/* Baseline allocators the fake-time day run compares phasewise with: a static split of each
 * node's limit among its chargers, and a worst-phase balancer that counts every charger as
 * loading every line with its largest phase current, as several popular balancers do. Pure: no
 * I/O, no clock, no global state. */
#ifndef PW_SIMBASE_H
#define PW_SIMBASE_H

#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"

/* Fills limits_a[n_chargers] with the static split: for every charger the smallest, over the
 * nodes above it, of (the node's smallest line limit - margin) / chargers below that node; 0 when
 * that is below the charger's minimum. Building load is not considered, as in installations
 * sized from the fuse rating alone. */
void pw_base_static_limits(const pw_bal_facility *f, double *limits_a);

typedef struct pw_base_wp pw_base_wp;

/* A worst-phase balancer for facility f (copied). Never returns NULL; free with
 * pw_base_wp_free. */
pw_base_wp *pw_base_wp_new(const pw_bal_facility *f);
void pw_base_wp_free(pw_base_wp *b);

/* Latest meter reading per line for a metered node / latest report of a charger. */
void pw_base_wp_set_meter(pw_base_wp *b, size_t node, const double line_a[PW_LINES]);
void pw_base_wp_set_charger(pw_base_wp *b, size_t charger, const pw_bal_measure *m);

/* Computes limits_a[n_chargers] at now_ms: per node, budget = min over lines of (limit - margin -
 * non-EV load), shared by water-filling among chargers with a car that wants current, each
 * counted on all three lines; chargers whose share would fall below their minimum are paused,
 * the last ones first, for at least the facility's min_pause_ms (no rotation). */
void pw_base_wp_run(pw_base_wp *b, uint64_t now_ms, double *limits_a);

#endif
