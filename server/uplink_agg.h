/* The fleet uplink's 15-minute aggregates (docs/mqtt.md), pure: the shell hands in one sample of
 * every charger and metered node per tick with the wall-clock time, and gets back the
 * aggregate of each quarter-hour once a sample of a later quarter shows it has ended. No clock,
 * no loop, no database: unit-tested on its own (tests/unit/uplink_agg_test.c). */
#ifndef PW_UPLINK_AGG_H
#define PW_UPLINK_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_UPLINK_QUARTER_MS (15 * 60 * 1000)

/* One charger at one tick. Strings are borrowed for the call. */
typedef struct pw_uplink_agg_charger {
    const char *id, *name;
    bool has_report;     /* false: no sample of it in this tick */
    double current_a[3]; /* per terminal */
    uint64_t energy_wh;  /* lifetime register; UINT64_MAX when the charger has none */
} pw_uplink_agg_charger;

/* One metered node at one tick. */
typedef struct pw_uplink_agg_node {
    const char *id, *name;
    bool has_reading;
    double line_a[3];
} pw_uplink_agg_node;

typedef struct pw_uplink_agg pw_uplink_agg;

pw_uplink_agg *pw_uplink_agg_new(void);
void pw_uplink_agg_free(pw_uplink_agg *a); /* NULL is fine */

/* Adds the samples taken at wall (Unix ms; samples come in time order, an older one is ignored).
 * When wall lies in a later quarter than the samples collected so far, that quarter has ended:
 * returns its aggregate as a JSON object text (caller frees with free()) and its start in
 * *quarter_ms, before the new samples start the next quarter; NULL otherwise. */
char *pw_uplink_agg_sample(pw_uplink_agg *a, int64_t wall, const pw_uplink_agg_charger *chargers,
                           size_t n_chargers, const pw_uplink_agg_node *nodes, size_t n_nodes,
                           int64_t *quarter_ms);

/* Unix ms as RFC 3339 in UTC with milliseconds ("2026-03-01T10:15:00.000Z"). */
void pw_uplink_rfc3339(int64_t ms, char out[32]);

#endif
