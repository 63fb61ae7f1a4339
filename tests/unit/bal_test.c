/* Balancer allocation rules, each checked against a hand computation: node limits with non-EV
 * load, water-filling with weights and priority classes, minimums and pauses, TN and IT phase
 * loads, phase switching, imbalance, stale meters, silent chargers, trimming, reasons and the
 * facility validation. These run in oneshot mode: one input, one plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bal_fx.h"

#define A_EQ(x, y) assert_float_equal((x), (y), 1e-6)

/* 32 A per line shared by three 3-phase cars: 32 / 3 each, bound by the node. */
static void test_equal_share(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 32, 3, "L1L2L3", 16);
    int n = 0;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    for (int k = 0; k < 3; k++) {
        A_EQ(fx_res(&x, k)->limit_a, 32.0 / 3);
        assert_int_equal(fx_res(&x, k)->reason, PW_REASON_NODE_LIMIT);
        assert_int_equal(fx_res(&x, k)->bind_node, n);
        fx_assert_text(fx_res(&x, k), "limited by node 'main' line L");
        assert_int_equal(fx_res(&x, k)->phases, 3);
    }
    A_EQ(fx_nres(&x, n)->headroom_a[0], 0);
    A_EQ(fx_nres(&x, n)->planned_a[1], 32);
    fx_free(&x);
}

/* Enough room: everyone at their own maximum, with headroom left on the node. */
static void test_at_max(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 63, 2, "L1L2L3", 16);
    x.ch[1].max_a = 32;
    int n = 0;
    fx_start(&x);
    fx_charging(&x, 0, 10, 10, 10, 0);
    fx_charging(&x, 1, 10, 10, 10, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    A_EQ(fx_res(&x, 1)->limit_a, 32);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_MAX);
    fx_assert_text(fx_res(&x, 0), "maximum 16 A");
    A_EQ(fx_nres(&x, n)->headroom_a[2], 63 - 48);
    fx_free(&x);
}

/* Weights 1 and 2 on 30 A: 10 and 20. A capped charger's share goes to the other. */
static void test_weights_and_caps(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 30, 3, "L1L2L3", 32);
    x.ch[2].max_a = 7;
    x.ch[1].weight = 2;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    /* c is capped at 7; 23 A left for weights 1:2. */
    A_EQ(fx_res(&x, 2)->limit_a, 7);
    A_EQ(fx_res(&x, 0)->limit_a, 23.0 / 3);
    A_EQ(fx_res(&x, 1)->limit_a, 46.0 / 3);
    fx_free(&x);
}

/* The higher class is filled first; the lower class keeps its reserved minimum. */
static void test_priority_classes(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 30, 3, "L1L2L3", 32);
    x.ch[2].max_a = 16;
    x.ch[2].priority = 5;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 2)->limit_a, 16); /* 30 - 2 x 6 = 18 would fit; its max is 16 */
    A_EQ(fx_res(&x, 0)->limit_a, 7);
    A_EQ(fx_res(&x, 1)->limit_a, 7);

    /* With 24 A the high class takes everything above the low minimums: 24 - 12 = 12. */
    fx_free(&x);
    x.nodes[0].limit_a[0] = x.nodes[0].limit_a[1] = x.nodes[0].limit_a[2] = 24;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 2)->limit_a, 12);
    A_EQ(fx_res(&x, 0)->limit_a, 6);
    A_EQ(fx_res(&x, 1)->limit_a, 6);
    fx_free(&x);
}

/* 16 A, three cars of min 6: two run at 8, one pauses (rotation: same class). */
static void test_pause_when_minimums_do_not_fit(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 16, 3, "L1L2L3", 16);
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 8);
    A_EQ(fx_res(&x, 1)->limit_a, 8);
    A_EQ(fx_res(&x, 2)->limit_a, 0);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_PAUSED_ROTATION);
    fx_assert_text(fx_res(&x, 2), "paused: rotation");
    fx_assert_text(fx_res(&x, 2), "node 'main'");
    fx_free(&x);
}

/* 10 A: only one minimum fits; the higher priority runs, the other is paused for priority. */
static void test_pause_by_priority(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 10, 2, "L1L2L3", 16);
    x.ch[1].priority = 1;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_PRIORITY);
    fx_assert_text(fx_res(&x, 0), "higher-priority");
    fx_free(&x);
}

/* Non-EV load = meter - what the chargers below draw. 40 A node, meter [20, 10, 10] while the
 * car draws 10 on each line: non-EV [10, 0, 0], so the car may take 30 on L1. */
static void test_non_ev_from_meter(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 40, 40, 40);
    fx_meter(&x, n, 10000, 0);
    fx_charger(&x, "a", n, "L1L2L3", 32);
    fx_start(&x);
    fx_charging(&x, 0, 10, 10, 10, 0);
    fx_meter_read(&x, n, 20, 10, 10, 0);
    fx_run(&x, 0);
    A_EQ(fx_nres(&x, n)->non_ev_a[0], 10);
    A_EQ(fx_nres(&x, n)->non_ev_a[1], 0);
    A_EQ(fx_res(&x, 0)->limit_a, 30);
    fx_assert_text(fx_res(&x, 0), "line L1");
    assert_int_equal(fx_res(&x, 0)->bind_line, 1);
    assert_false(fx_nres(&x, n)->meter_stale);

    /* A meter reading below the chargers' draw clamps non-EV at 0, never negative. */
    fx_meter_read(&x, n, 5, 5, 5, 0);
    fx_run(&x, 0);
    A_EQ(fx_nres(&x, n)->non_ev_a[0], 0);
    A_EQ(fx_res(&x, 0)->limit_a, 32);
    fx_free(&x);
}

/* Room for 4 A after the building's own load: a minimum of 6 does not fit. */
static void test_no_room(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 20, 20, 20);
    fx_meter(&x, n, 10000, 0);
    fx_charger(&x, "a", n, "L1L2L3", 16);
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meter_read(&x, n, 10, 16, 10, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_NO_ROOM);
    fx_assert_text(fx_res(&x, 0), "node 'main' line L2 has no room for the minimum 6 A");
    fx_free(&x);
}

/* A tree: sub-distribution A (20 A) under a 50 A main; A's two cars get 10 each (bound by A),
 * B's two share the main's remaining 30 (bound by main). An unmetered sub adds no non-EV load
 * of its own; a metered child's non-EV load counts at its parent too. */
static void test_tree(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int m = fx_node(&x, "main", -1, 50, 50, 50);
    int a = fx_node(&x, "A", m, 20, 20, 20);
    int b = fx_node(&x, "B", m, 32, 32, 32);
    fx_charger(&x, "a1", a, "L1L2L3", 32);
    fx_charger(&x, "a2", a, "L1L2L3", 32);
    fx_charger(&x, "b1", b, "L1L2L3", 32);
    fx_charger(&x, "b2", b, "L1L2L3", 32);
    fx_meter(&x, b, 10000, 0);
    fx_start(&x);
    for (int k = 0; k < 4; k++)
        fx_meas(&x, k, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    A_EQ(fx_res(&x, 2)->limit_a, 15);
    A_EQ(fx_res(&x, 3)->limit_a, 15);
    fx_assert_text(fx_res(&x, 0), "node 'A'");
    fx_assert_text(fx_res(&x, 2), "node 'main'");

    /* B's meter shows 4 A of lighting on L3: B's cars now share 26 on L3 at the main. */
    fx_meter_read(&x, b, 0, 0, 4, 0);
    fx_run(&x, 0);
    A_EQ(fx_nres(&x, m)->non_ev_a[2], 4);
    A_EQ(fx_res(&x, 2)->limit_a, 13);
    fx_assert_text(fx_res(&x, 2), "node 'main' line L3");
    fx_free(&x);
}

/* An unmetered node's reserve is non-EV load of its own that no meter sees: sub-distribution A
 * (20 A) with 4 A of lighting on L1 leaves 16 A there, and the main counts it too. A metered node
 * ignores its reserve (its meter sees that load); a stale meter budgets its fallback as before. */
static void test_reserve(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int m = fx_node(&x, "main", -1, 50, 50, 50);
    int a = fx_node(&x, "A", m, 20, 20, 20);
    int b = fx_node(&x, "B", m, 32, 32, 32);
    fx_charger(&x, "a1", a, "L1", 32);
    fx_charger(&x, "b1", b, "L1L2L3", 32);
    x.nodes[a].reserve_a[0] = 4;
    x.nodes[m].reserve_a[1] = 3; /* the main's own, unmetered: counts on L2 */
    x.nodes[b].reserve_a[2] = 9; /* metered: the meter sees it, ignored */
    fx_meter(&x, b, 10000, 2);
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meas(&x, 1, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meter_read(&x, b, 1, 1, 1, 0);
    fx_run(&x, 0);
    A_EQ(fx_nres(&x, a)->non_ev_a[0], 4);
    A_EQ(fx_nres(&x, a)->non_ev_a[1], 0);
    A_EQ(fx_nres(&x, b)->non_ev_a[2], 1);
    A_EQ(fx_nres(&x, m)->non_ev_a[0], 4 + 1);
    A_EQ(fx_nres(&x, m)->non_ev_a[1], 3 + 1);
    A_EQ(fx_nres(&x, m)->non_ev_a[2], 1);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_assert_text(fx_res(&x, 0), "node 'A' line L1");
    /* b1 on the main: L1 50 - 5 - 16, L2 50 - 4: 29 on L1 binds. */
    A_EQ(fx_res(&x, 1)->limit_a, 29);
    fx_assert_no_overload(&x);

    /* B's meter stale: its fallback, not its reserve; A's reserve stays. */
    fx_run(&x, 20000);
    assert_true(fx_nres(&x, b)->meter_stale);
    A_EQ(fx_nres(&x, b)->non_ev_a[2], 2);
    A_EQ(fx_nres(&x, a)->non_ev_a[0], 4);
    fx_free(&x);
}

/* TN phase rotation: single-phase cars on chargers wired L1L2L3, L2L3L1, L3L1L2 load three
 * different lines; on three chargers wired alike they all load L1. */
static void test_tn_rotation(void **state)
{
    (void)state;
    const char *rotated[3] = {"L1L2L3", "L2L3L1", "L3L1L2"};
    for (int variant = 0; variant < 2; variant++) {
        fx x;
        fx_init(&x, PW_GRID_TN, true);
        int n = fx_node(&x, "main", -1, 20, 20, 20);
        for (int i = 0; i < 3; i++)
            fx_charger(&x,
                       i == 0   ? "a"
                       : i == 1 ? "b"
                                : "c",
                       n, variant ? "L1L2L3" : rotated[i], 16);
        fx_start(&x);
        for (int k = 0; k < 3; k++)
            fx_charging(&x, k, 7, 0, 0, 0); /* 1-phase car on terminal L1 */
        fx_run(&x, 0);
        for (int k = 0; k < 3; k++)
            A_EQ(fx_res(&x, k)->limit_a, variant ? 20.0 / 3 : 16);
        A_EQ(fx_res(&x, 1)->line_a[variant ? 0 : 1], variant ? 20.0 / 3 : 16);
        A_EQ(fx_res(&x, 1)->line_a[2], 0);
        fx_free(&x);
    }
}

/* A car reported drawing only on a terminal that is not wired loads no grid line (mask 0): it
 * still rises with the level, and its cap stops it (its plan is its maximum, on no line) while a
 * row stops the car beside it. */
static void test_unwired_terminal_draw(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 10, 10, 10);
    fx_charger(&x, "a", n, "L1", 16);
    fx_charger(&x, "b", n, "L1L2L3", 16);
    fx_start(&x);
    fx_charging(&x, 0, 0, 7, 0, 0);
    fx_charging(&x, 1, 10, 10, 10, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    for (int l = 0; l < PW_LINES; l++)
        A_EQ(fx_res(&x, 0)->line_a[l], 0);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_NODE_LIMIT);
    fx_free(&x);
}

/* IT: a single-phase car draws between terminals L1 and L2 and loads both their grid lines.
 * Chargers wired L1L2L3 (lines 1+2) and L2L3L1 (lines 2+3) share line 2: 10 A each on 20. */
static void test_it_single_phase_pair(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_IT, true);
    int n = fx_node(&x, "main", -1, 20, 20, 20);
    fx_charger(&x, "a", n, "L1L2L3", 16);
    fx_charger(&x, "b", n, "L2L3L1", 16);
    fx_start(&x);
    fx_charging(&x, 0, 8, 8, 0, 0);
    fx_charging(&x, 1, 8, 8, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    A_EQ(fx_res(&x, 0)->line_a[0], 10);
    A_EQ(fx_res(&x, 0)->line_a[1], 10);
    A_EQ(fx_res(&x, 0)->line_a[2], 0);
    A_EQ(fx_res(&x, 1)->line_a[0], 0);
    fx_assert_text(fx_res(&x, 0), "line L2");
    /* An IT car seen on terminal L1 alone is still the L1-L2 pair. */
    fx_charging(&x, 1, 8, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 1)->line_a[1], 10);
    A_EQ(fx_res(&x, 1)->line_a[2], 10);
    /* A three-phase car on IT loads all three lines. */
    fx_charging(&x, 1, 8, 8, 8, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 1)->line_a[0], 10);
    fx_free(&x);
}

/* Until a car draws, every wired phase is budgeted; once charging, only the measured ones. */
static void test_unknown_phases_are_all_wired(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 40, 40, 40);
    fx_charger(&x, "a", n, "L1L2L3", 32);
    fx_charger(&x, "b", n, "L2", 32); /* single-phase charger on grid line 2 */
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meas(&x, 1, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->line_a[2], 20);
    A_EQ(fx_res(&x, 1)->line_a[1], 20);
    A_EQ(fx_res(&x, 1)->line_a[0], 0);
    /* Charging on terminals L1 and L2 only (a 2-phase car): line 3 is free, 32 max. */
    fx_charging(&x, 0, 10, 10, 0.5, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->line_a[2], 0);
    A_EQ(fx_res(&x, 0)->limit_a, 20);
    A_EQ(fx_res(&x, 1)->limit_a, 20);
    fx_free(&x);
}

/* The building leaves 4 A on L2 and L3: three phases of 6 A do not fit, one phase on L1 does.
 * A switchable charger goes to one phase; one that cannot switch pauses. */
static void test_phase_switch_instead_of_pause(void **state)
{
    (void)state;
    for (int can = 0; can < 2; can++) {
        fx x;
        fx_init(&x, PW_GRID_TN, true);
        int n = fx_node(&x, "main", -1, 32, 32, 32);
        fx_meter(&x, n, 10000, 0);
        fx_charger(&x, "a", n, "L1L2L3", 16);
        x.ch[0].can_switch_phases = can;
        fx_start(&x);
        fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
        fx_meter_read(&x, n, 0, 28, 28, 0);
        fx_run(&x, 0);
        if (can) {
            A_EQ(fx_res(&x, 0)->limit_a, 16);
            assert_int_equal(fx_res(&x, 0)->phases, 1);
            A_EQ(fx_res(&x, 0)->line_a[0], 16);
            A_EQ(fx_res(&x, 0)->line_a[1], 0);
            fx_assert_text(fx_res(&x, 0), "on 1 phase");
        } else {
            A_EQ(fx_res(&x, 0)->limit_a, 0);
            assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_NO_ROOM);
        }
        fx_free(&x);
    }
}

/* A car at its maximum, switched to one phase at the same current: the reason and its amperes stay,
 * but the sentence must now say so (a reason is rewritten only when something it shows changes). */
static void test_phase_switch_same_reason_rewritten(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_meter(&x, n, 10000, 0);
    fx_charger(&x, "a", n, "L1L2L3", 16);
    x.ch[0].can_switch_phases = true;
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meter_read(&x, n, 0, 0, 0, 0);
    fx_run(&x, 0);
    assert_int_equal(fx_res(&x, 0)->phases, 3);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_MAX);
    assert_null(strstr(fx_res(&x, 0)->reason_text, "on 1 phase"));
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 1000);
    fx_meter_read(&x, n, 0, 28, 28, 1000);
    fx_run(&x, 1000);
    assert_int_equal(fx_res(&x, 0)->phases, 1);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_MAX);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_assert_text(fx_res(&x, 0), "16 A, on 1 phase");
    fx_free(&x);
}

/* IT switching: one phase is the L1-L2 pair, so it helps only when line 3 is the full one. */
static void test_phase_switch_it(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_IT, true);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_meter(&x, n, 10000, 0);
    fx_charger(&x, "a", n, "L2L3L1", 16); /* terminals L1, L2 on grid lines 2, 3 */
    x.ch[0].can_switch_phases = true;
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meter_read(&x, n, 28, 0, 0, 0); /* grid line 1 is full: the pair on lines 2+3 fits */
    fx_run(&x, 0);
    assert_int_equal(fx_res(&x, 0)->phases, 1);
    A_EQ(fx_res(&x, 0)->line_a[0], 0);
    A_EQ(fx_res(&x, 0)->line_a[1], 16);
    A_EQ(fx_res(&x, 0)->line_a[2], 16);
    fx_meter_read(&x, n, 0, 28, 0, 0); /* grid line 2 full: the pair does not fit either */
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    fx_free(&x);
}

/* Imbalance limit 20 A: two single-phase cars on L1 may take 20 together above L2 and L3. */
static void test_imbalance(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 63, 63, 63);
    x.nodes[n].max_imbalance_a = 20;
    fx_charger(&x, "a", n, "L1", 32);
    fx_charger(&x, "b", n, "L1", 32);
    fx_charger(&x, "c", n, "L2", 32);
    fx_start(&x);
    fx_charging(&x, 0, 10, 0, 0, 0);
    fx_charging(&x, 1, 10, 0, 0, 0);
    fx_meas(&x, 2, PW_CAR_NONE, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_IMBALANCE);
    fx_assert_text(fx_res(&x, 0), "imbalance limit (L1 over L");

    /* A car on L2 lifts L1's allowance: L1 - L3 <= 20 still binds the L1 cars at 10 each, and
     * the L2 car may rise to 20 over L3. */
    fx_charging(&x, 2, 10, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    A_EQ(fx_res(&x, 2)->limit_a, 20);
    fx_free(&x);
}

/* Margin is kept free on every line. */
static void test_margin(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 32, 2, "L1L2L3", 32);
    x.nodes[0].margin_a = 2;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 15);
    A_EQ(fx_nres(&x, 0)->limit_a[0], 30);
    fx_free(&x);
}

/* A meter never heard from budgets its fallback: 32 - 10 = 22 for the car, reason names it. */
static void test_stale_meter_fallback(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_meter(&x, n, 10000, 10);
    fx_charger(&x, "a", n, "L1L2L3", 32);
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 22);
    assert_true(fx_nres(&x, n)->meter_stale);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_METER_STALE);
    fx_assert_text(fx_res(&x, 0), "meter 'main' stale: conservative budget");
    /* A reading older than the timeout is stale too. */
    fx_meter_read(&x, n, 0, 0, 0, 0);
    fx_run(&x, 10000);
    A_EQ(fx_res(&x, 0)->limit_a, 22);
    fx_run(&x, 9999);
    A_EQ(fx_res(&x, 0)->limit_a, 32);
    fx_free(&x);
}

/* A silent charger is budgeted at the larger of its last draw and its failsafe current, on its
 * wired lines; it is offered nothing. */
static void test_silent_charger_budget(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, false);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_charger(&x, "a", n, "L1L2L3", 32);
    fx_charger(&x, "b", n, "L1L2L3", 16);
    x.ch[1].failsafe_a = 10;
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_run(&x, 0); /* b never heard from: failsafe 10 */
    A_EQ(fx_res(&x, 0)->limit_a, 22);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_OFFLINE);
    A_EQ(fx_res(&x, 1)->line_a[0], 10);
    A_EQ(fx_res(&x, 1)->limit_a, 0);
    /* b reported 14 A on L1 and went silent: L1 budget 14, L2 and L3 its failsafe 10. */
    fx_charging(&x, 1, 14, 0, 0, 1000);
    uint64_t t = 1000 + x.f.params.offline_ms;
    fx_charging(&x, 0, 22, 22, 22, t);
    fx_run(&x, t);
    A_EQ(fx_res(&x, 1)->line_a[0], 14);
    A_EQ(fx_res(&x, 1)->line_a[1], 10);
    A_EQ(fx_res(&x, 0)->limit_a, 18);
    char text[64];
    snprintf(text, sizeof text, "silent for %u s: budgeted at 14 A", x.f.params.offline_ms / 1000);
    fx_assert_text(fx_res(&x, 1), text);
    fx_free(&x);
}

/* A car drawing clearly less than offered is trimmed to its draw plus headroom; the freed
 * current goes to the other car. Offered 16, draws 8: trimmed to 10 (headroom 2). */
static void test_trim_oneshot(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 32, 2, "L1L2L3", 32);
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_CHARGING, 8, 8, 8, 16, 0);
    fx_meas(&x, 1, PW_CAR_CHARGING, 16, 16, 16, 16, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    A_EQ(fx_res(&x, 0)->demand_a, 10);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_CAR_DRAW);
    fx_assert_text(fx_res(&x, 0), "car draws 8 A, less than offered: offer trimmed to 10 A");
    A_EQ(fx_res(&x, 1)->limit_a, 22);
    fx_free(&x);
}

/* No car, fault and a car that paused itself: each says so; a suspended car holds its min. */
static void test_states(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 32, 4, "L1L2L3", 32);
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_NONE, 0, 0, 0, 0, 0);
    fx_meas(&x, 1, PW_CAR_FAULT, 3, 3, 3, 0, 0);
    fx_meas(&x, 2, PW_CAR_SUSPENDED, 0, 0, 0, 16, 0);
    fx_meas(&x, 3, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_NO_CAR);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_FAULT);
    A_EQ(fx_res(&x, 1)->line_a[0], 3); /* a faulty charger's draw is still budgeted */
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_SUSPENDED);
    A_EQ(fx_res(&x, 2)->limit_a, 6);
    A_EQ(fx_res(&x, 3)->limit_a, 32 - 3 - 6);
    assert_string_equal(pw_bal_reason_name(PW_REASON_SUSPENDED), "suspended");
    fx_free(&x);
}

/* Reasons write amperes of any size in full, with the tenth when there is one: 100 A and more as
 * well as the usual few (the sentence writer has a short way for those under 100 A). */
static void test_reason_amperes(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int m = fx_node(&x, "main", -1, 2000, 2000, 2000);
    fx_charger(&x, "a", m, "L1L2L3", 125.5);
    fx_charger(&x, "b", m, "L1L2L3", 100);
    fx_charger(&x, "c", m, "L1L2L3", 16);
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    assert_string_equal(fx_res(&x, 0)->reason_text, "at the charger's maximum 125.5 A");
    assert_string_equal(fx_res(&x, 1)->reason_text, "at the charger's maximum 100 A");
    assert_string_equal(fx_res(&x, 2)->reason_text, "at the charger's maximum 16 A");
    /* An operator's cap of 200.5 A on L1: c keeps its 16 A, a and b share the rest. */
    const double cap[PW_LINES] = {200.5, INFINITY, INFINITY};
    pw_bal_set_node_cap(x.b, 0, cap);
    fx_run(&x, 0);
    for (int k = 0; k < 2; k++)
        assert_string_equal(fx_res(&x, k)->reason_text,
                            "limited by node 'main' line L1 (facility limit 200.5 A)");
    fx_free(&x);
}

/* Suspended cars are paused first when minimums do not fit, whatever their priority. */
static void test_suspended_yield_first(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 10, 2, "L1L2L3", 32);
    x.ch[0].priority = 3;
    fx_start(&x);
    fx_meas(&x, 0, PW_CAR_SUSPENDED, 0, 0, 0, 0, 0);
    fx_meas(&x, 1, PW_CAR_CHARGING, 5, 5, 5, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_SUSPENDED);
    fx_assert_text(fx_res(&x, 0), "no room");
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    fx_free(&x);
}

/* Broken readings are ignored rather than read as 0 A: a NaN meter stays stale (fallback), a
 * NaN charger report leaves the charger unheard (failsafe budget); out-of-range indices do
 * nothing; a negative charger current counts as none. */
static void test_bad_input_ignored(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_meter(&x, n, 10000, 10);
    fx_charger(&x, "a", n, "L1L2L3", 32);
    fx_charger(&x, "b", n, "L1L2L3", 16);
    x.ch[1].failsafe_a = 6;
    fx_start(&x);
    fx_meter_read(&x, n, 0, NAN, 0, 0);
    fx_meas(&x, 0, PW_CAR_CHARGING, -5, 0, 0, 0, 0);
    fx_meas(&x, 1, PW_CAR_CHARGING, 10, INFINITY, 10, 0, 0);
    fx_meas(&x, 7, PW_CAR_CHARGING, 10, 10, 10, 0, 0);
    fx_meter_read(&x, 5, 99, 99, 99, 0);
    fx_run(&x, 0);
    assert_true(fx_nres(&x, n)->meter_stale);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_OFFLINE);
    A_EQ(fx_res(&x, 0)->line_a[0], 32 - 10 - 6);
    A_EQ(fx_nres(&x, n)->non_ev_a[0], 10);
    fx_free(&x);
}

static bool rejected(fx *x, const char *field)
{
    char err[256];
    if (pw_bal_validate(&x->f, err, sizeof err) == 0)
        return false;
    if (!strstr(err, field))
        fail_msg("error '%s' does not name %s", err, field);
    return true;
}

static void test_validate(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    int s = fx_node(&x, "sub", n, 16, 16, 16);
    fx_charger(&x, "a", s, "L1L2L3", 16);
    char err[256];
    assert_int_equal(pw_bal_validate(&x.f, err, sizeof err), 0);

    x.ch[0].min_a = 5;
    assert_true(rejected(&x, "chargers[0].min_a"));
    x.ch[0].min_a = 20;
    assert_true(rejected(&x, "chargers[0].max_a"));
    x.ch[0].min_a = 6;
    x.ch[0].wiring[1] = 1;
    assert_true(rejected(&x, "chargers[0].wiring"));
    x.ch[0].wiring[1] = 2;
    x.ch[0].failsafe_a = 3;
    assert_true(rejected(&x, "chargers[0].failsafe_a"));
    x.ch[0].failsafe_a = 16;
    x.nodes[s].limit_a[1] = 10; /* failsafe 16 does not fit a 10 A line */
    assert_true(rejected(&x, "nodes[1].limit_a"));
    x.nodes[s].limit_a[1] = 16;
    x.nodes[n].parent = 1; /* root with a parent */
    assert_true(rejected(&x, "nodes[0].parent"));
    x.nodes[n].parent = -1;
    x.nodes[s].parent = 1; /* its own parent */
    assert_true(rejected(&x, "nodes[1].parent"));
    x.nodes[s].parent = 0;
    x.ch[0].node = 7;
    assert_true(rejected(&x, "chargers[0].node"));
    x.ch[0].node = s;
    x.f.grid = PW_GRID_IT;
    x.ch[0].wiring[1] = 0;
    x.ch[0].wiring[2] = 0;
    assert_true(rejected(&x, "chargers[0].wiring"));
    x.f.grid = PW_GRID_TN;
    x.ch[0].can_switch_phases = true;
    assert_true(rejected(&x, "chargers[0].can_switch_phases"));
    x.ch[0].can_switch_phases = false;
    x.ch[0].weight = 0;
    assert_true(rejected(&x, "chargers[0].weight"));
    x.ch[0].weight = 1;
    x.nodes[s].reserve_a[2] = NAN;
    assert_true(rejected(&x, "nodes[1].reserve_a"));
    x.nodes[s].reserve_a[2] = -1;
    assert_true(rejected(&x, "nodes[1].reserve_a"));
    x.nodes[s].reserve_a[2] = 16; /* nothing left of the 16 A line */
    assert_true(rejected(&x, "nodes[1].reserve_a"));
    x.nodes[s].reserve_a[2] = 0;
    /* The failsafe check includes the reserves of unmetered nodes: the charger, now wired on L1
     * only, falls back to 16 A there, and 16 + 1 does not fit the sub's 16 A line. */
    x.nodes[s].reserve_a[0] = 1;
    assert_true(rejected(&x, "nodes[1].limit_a"));
    x.nodes[s].reserve_a[0] = 0;
    x.ch[0].failsafe_a = 6;
    x.nodes[s].reserve_a[0] = 9; /* 6 + 9 fits the sub's 16 */
    assert_int_equal(pw_bal_validate(&x.f, err, sizeof err), 0);
    x.nodes[n].reserve_a[0] = 18; /* the main: 6 + 9 + 18 > 32 */
    assert_true(rejected(&x, "nodes[0].limit_a"));
    x.nodes[n].metered = true; /* a metered node's reserve is not used */
    x.nodes[n].meter_timeout_ms = 10000;
    assert_int_equal(pw_bal_validate(&x.f, err, sizeof err), 0);
    x.nodes[n].metered = false;
    x.nodes[n].reserve_a[0] = 0;
    x.ch[0].failsafe_a = 16;
    x.nodes[s].reserve_a[0] = 0;
    memcpy(x.nodes[s].id, "main", 5);
    assert_true(rejected(&x, "'main' is used twice"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_share),
        cmocka_unit_test(test_at_max),
        cmocka_unit_test(test_weights_and_caps),
        cmocka_unit_test(test_priority_classes),
        cmocka_unit_test(test_pause_when_minimums_do_not_fit),
        cmocka_unit_test(test_pause_by_priority),
        cmocka_unit_test(test_non_ev_from_meter),
        cmocka_unit_test(test_no_room),
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_tn_rotation),
        cmocka_unit_test(test_unwired_terminal_draw),
        cmocka_unit_test(test_it_single_phase_pair),
        cmocka_unit_test(test_unknown_phases_are_all_wired),
        cmocka_unit_test(test_phase_switch_instead_of_pause),
        cmocka_unit_test(test_phase_switch_same_reason_rewritten),
        cmocka_unit_test(test_phase_switch_it),
        cmocka_unit_test(test_imbalance),
        cmocka_unit_test(test_margin),
        cmocka_unit_test(test_stale_meter_fallback),
        cmocka_unit_test(test_silent_charger_budget),
        cmocka_unit_test(test_trim_oneshot),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_reason_amperes),
        cmocka_unit_test(test_suspended_yield_first),
        cmocka_unit_test(test_bad_input_ignored),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
