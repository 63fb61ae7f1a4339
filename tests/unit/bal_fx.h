/* Test fixture for the balancer: build a small facility in a few lines, feed measurements and
 * run it, so each test reads like the hand computation it checks. */
#ifndef BAL_FX_H
#define BAL_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"

#define FX_MAX_NODES    16
#define FX_MAX_CHARGERS 32

typedef struct fx {
    pw_bal_node_spec nodes[FX_MAX_NODES];
    pw_bal_charger_spec ch[FX_MAX_CHARGERS];
    pw_bal_facility f;
    pw_bal *b;
} fx;

/* A facility with no nodes yet, default params (oneshot as given). */
void fx_init(fx *x, enum pw_grid grid, bool oneshot);
/* Adds a node named id with per-line limits; parent -1 for the root. Returns its index. */
int fx_node(fx *x, const char *id, int parent, double l1, double l2, double l3);
/* Makes node n metered with a timeout and fallback per line. */
void fx_meter(fx *x, int n, uint32_t timeout_ms, double fallback);
/* Adds a charger (min 6, weight 1, priority 0, failsafe 0) with wiring like "L2L3L1" or "L1".
 * Returns its index. */
int fx_charger(fx *x, const char *id, int node, const char *wiring, double max_a);
/* One main fuse "main" of limit A per line with n chargers "a", "b", ... wired alike
 * with max max_a; not started, so a test can adjust specs before fx_start. */
void fx_garage(fx *x, enum pw_grid grid, bool oneshot, double limit, int n, const char *wiring,
               double max_a);
/* Reports every charger as connected (plugged in, not drawing). */
void fx_all_connected(fx *x, uint64_t now);
/* Validates (failing the test on error) and creates the balancer. */
void fx_start(fx *x);
void fx_free(fx *x);

/* Reports a charger state with terminal currents and the offered limit. */
void fx_meas(fx *x, int k, enum pw_car_state car, double t1, double t2, double t3, double applied,
             uint64_t now);
/* A car plugged in and charging at its terminals' currents. */
void fx_charging(fx *x, int k, double t1, double t2, double t3, uint64_t now);
void fx_meter_read(fx *x, int n, double l1, double l2, double l3, uint64_t now);
void fx_run(fx *x, uint64_t now);
const pw_bal_result *fx_res(fx *x, int k);
const pw_bal_node_result *fx_nres(fx *x, int n);

/* A started garage in live mode: one main fuse "main" of limit A per line, n 3-phase chargers
 * "a", "b", ... of max max_a. */
void fx_live_garage(fx *x, double limit, int n, double max_a);
/* A 3-phase car on charger k reporting that it draws a on every terminal and is offered a
 * (connected, not charging, when a is 0). */
void fx_draws(fx *x, int k, double a, uint64_t now);
/* Fails the test unless the result's reason text contains part. */
void fx_assert_text(const pw_bal_result *r, const char *part);

/* Checks the planned EV + non-EV load of every node line against limit minus margin. */
void fx_assert_no_overload(fx *x);

#endif
