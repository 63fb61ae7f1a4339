/* Operator overrides in the balancer (pw_bal_set_override, pw_bal_set_node_cap): a charger's cap
 * below its maximum and below its minimum (a pause), a changed priority class, a lower limit on
 * a node; each honoured like the config's limits, named in the reason, a lower one a cut at the
 * next run and its removal a raise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "bal_fx.h"

#define A_EQ(x, y) assert_float_equal((x), (y), 1e-6)

static const double NO_CAP[PW_LINES] = {INFINITY, INFINITY, INFINITY};

/* A cap under the charger's maximum is its maximum, named as the operator's; clearing it gives
 * the config's back. */
static void test_cap_below_max(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 100, 2, "L1L2L3", 16);
    fx_start(&x);
    fx_all_connected(&x, 0);
    pw_bal_set_override(x.b, 0, 10, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    A_EQ(fx_res(&x, 0)->demand_a, 10);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_MAX);
    fx_assert_text(fx_res(&x, 0), "at the operator's maximum 10 A");
    A_EQ(fx_res(&x, 1)->limit_a, 16);
    fx_assert_text(fx_res(&x, 1), "at the charger's maximum 16 A");
    /* A cap above the charger's own maximum changes nothing. */
    pw_bal_set_override(x.b, 1, 25, 0);
    pw_bal_set_override(x.b, 0, INFINITY, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_assert_text(fx_res(&x, 0), "at the charger's maximum 16 A");
    A_EQ(fx_res(&x, 1)->limit_a, 16);
    fx_assert_text(fx_res(&x, 1), "at the charger's maximum 16 A");
    /* NaN is no cap either. */
    pw_bal_set_override(x.b, 0, NAN, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_free(&x);
}

/* The capped charger's share goes to the others, as a config maximum's would. */
static void test_cap_frees_room(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 30, 3, "L1L2L3", 32);
    fx_start(&x);
    fx_all_connected(&x, 0);
    pw_bal_set_override(x.b, 2, 7, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 2)->limit_a, 7);
    A_EQ(fx_res(&x, 0)->limit_a, 11.5);
    A_EQ(fx_res(&x, 1)->limit_a, 11.5);
    fx_free(&x);
}

/* A cap below the minimum pauses the charger with a reason of its own, car or no car; the
 * room goes to the others. */
static void test_pause(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 20, 2, "L1L2L3", 16);
    fx_start(&x);
    fx_charging(&x, 0, 10, 10, 10, 0);
    fx_meas(&x, 1, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    pw_bal_set_override(x.b, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_OPERATOR);
    assert_string_equal(pw_bal_reason_name(PW_REASON_PAUSED_OPERATOR), "paused_operator");
    assert_string_equal(fx_res(&x, 0)->reason_text, "paused by operator");
    for (size_t l = 0; l < PW_LINES; l++)
        A_EQ(fx_res(&x, 0)->line_a[l], 0);
    A_EQ(fx_res(&x, 1)->limit_a, 16);
    /* 5.9 A is below the 6 A minimum: still a pause; exactly the minimum is not. */
    pw_bal_set_override(x.b, 0, 5.9, 0);
    fx_run(&x, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_OPERATOR);
    pw_bal_set_override(x.b, 0, 6, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 6);
    /* Paused with no car: the operator's pause is what the next driver needs to know. */
    pw_bal_set_override(x.b, 1, 0, 0);
    fx_meas(&x, 1, PW_CAR_NONE, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_PAUSED_OPERATOR);
    /* Out of range: ignored. */
    pw_bal_set_override(x.b, 2, 0, 0);
    pw_bal_set_node_cap(x.b, 5, NO_CAP);
    fx_free(&x);
}

/* Live: a pause is a cut at the next run, not held by any rule; a resume is a raise that comes
 * back (the car is not guarded by the minimum pause time: the balancer did not pause it). */
static void test_pause_live(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 100, 1, 16);
    uint64_t t = 1000;
    fx_draws(&x, 0, 0, t);
    fx_run(&x, t);
    for (int i = 0; i < 10; i++, t += 1000) {
        fx_draws(&x, 0, fx_res(&x, 0)->limit_a, t);
        fx_run(&x, t);
    }
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    pw_bal_set_override(x.b, 0, 0, 0);
    fx_run(&x, t);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_OPERATOR);
    for (int i = 0; i < 10; i++, t += 1000) {
        fx_draws(&x, 0, 0, t);
        fx_run(&x, t);
        A_EQ(fx_res(&x, 0)->limit_a, 0);
    }
    pw_bal_set_override(x.b, 0, INFINITY, 0);
    bool back = false;
    for (int i = 0; i < 20 && !back; i++, t += 1000) {
        fx_draws(&x, 0, fx_res(&x, 0)->limit_a, t);
        fx_run(&x, t);
        back = fx_res(&x, 0)->limit_a >= 16 - 1e-9;
    }
    assert_true(back);
    fx_free(&x);
}

/* A node cap binds like the node's limit and is named as the facility limit at the root; a new
 * cap gives a new sentence. */
static void test_node_cap(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 100, 3, "L1L2L3", 32);
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 32);
    double cap[PW_LINES] = {30, 45, 30};
    pw_bal_set_node_cap(x.b, 0, cap);
    fx_run(&x, 0);
    for (int k = 0; k < 3; k++) {
        A_EQ(fx_res(&x, k)->limit_a, 10);
        assert_int_equal(fx_res(&x, k)->reason, PW_REASON_NODE_LIMIT);
        assert_int_equal(fx_res(&x, k)->bind_node, 0);
        fx_assert_text(fx_res(&x, k), "(facility limit 30 A)");
    }
    A_EQ(fx_nres(&x, 0)->limit_a[0], 30);
    A_EQ(fx_nres(&x, 0)->limit_a[1], 45);
    A_EQ(fx_nres(&x, 0)->planned_a[2], 30);
    fx_assert_no_overload(&x);
    cap[0] = cap[2] = 24.5;
    pw_bal_set_node_cap(x.b, 0, cap);
    fx_run(&x, 0);
    fx_assert_text(fx_res(&x, 0), "(facility limit 24.5 A)");
    /* A cap above the configured limit does not raise it. */
    double high[PW_LINES] = {200, 200, 200};
    pw_bal_set_node_cap(x.b, 0, high);
    fx_run(&x, 0);
    A_EQ(fx_nres(&x, 0)->limit_a[0], 100);
    A_EQ(fx_res(&x, 0)->limit_a, 32);
    fx_assert_text(fx_res(&x, 0), "at the charger's maximum");
    /* A cap too low for any minimum pauses them as a full fuse would. */
    double low[PW_LINES] = {5, 5, 5};
    pw_bal_set_node_cap(x.b, 0, low);
    fx_run(&x, 0);
    for (int k = 0; k < 3; k++)
        A_EQ(fx_res(&x, k)->limit_a, 0);
    fx_assert_text(fx_res(&x, 0), "(facility limit 5 A)");
    pw_bal_set_node_cap(x.b, 0, NO_CAP);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 32);
    fx_free(&x);
}

/* Below the root a cap is an operator limit; the margin still applies under it. */
static void test_sub_node_cap(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, true);
    int main = fx_node(&x, "main", -1, 100, 100, 100);
    int sub = fx_node(&x, "sub", main, 50, 50, 50);
    x.nodes[sub].margin_a = 2;
    fx_charger(&x, "a", sub, "L1L2L3", 32);
    fx_charger(&x, "b", sub, "L1L2L3", 32);
    fx_start(&x);
    fx_all_connected(&x, 0);
    double cap[PW_LINES] = {22, 22, 22};
    pw_bal_set_node_cap(x.b, (size_t)sub, cap);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    fx_assert_text(fx_res(&x, 0), "node 'sub' line L1 (operator limit 22 A)");
    fx_assert_no_overload(&x);
    fx_free(&x);
}

/* Live: a lower node cap is a cut at the next run (no line above the cap in any plan); its
 * removal a raise that the usual rules let through. */
static void test_node_cap_live(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, false, 100, 3, "L1L2L3", 16);
    fx_meter(&x, 0, 10000, 10);
    fx_start(&x);
    uint64_t t = 1000;
    for (int i = 0; i < 10; i++, t += 1000) {
        for (int k = 0; k < 3; k++)
            fx_draws(&x, k, i ? fx_res(&x, k)->limit_a : 0, t);
        fx_meter_read(&x, 0, 3 * 16, 3 * 16, 3 * 16, t);
        fx_run(&x, t);
    }
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    double cap[PW_LINES] = {30, 30, 30};
    pw_bal_set_node_cap(x.b, 0, cap);
    fx_run(&x, t);
    double sum = 0;
    for (int k = 0; k < 3; k++)
        sum += fx_res(&x, k)->line_a[0];
    assert_true(sum + fx_nres(&x, 0)->non_ev_a[0] <= 30 + 1e-9);
    assert_true(fx_nres(&x, 0)->planned_a[0] <= 30 + 1e-9);
    pw_bal_set_node_cap(x.b, 0, NO_CAP);
    bool back = false;
    for (int i = 0; i < 30 && !back; i++, t += 1000) {
        double lines = 0;
        for (int k = 0; k < 3; k++) {
            fx_draws(&x, k, fx_res(&x, k)->limit_a, t);
            lines += fx_res(&x, k)->limit_a;
        }
        fx_meter_read(&x, 0, lines, lines, lines, t);
        fx_run(&x, t);
        back = fx_res(&x, 0)->limit_a >= 16 - 1e-9 && fx_res(&x, 2)->limit_a >= 16 - 1e-9;
    }
    assert_true(back);
    fx_free(&x);
}

/* Room for one minimum: the config's order admits a; a higher priority for b by override puts
 * b first and pauses a for priority; the config's priority back restores the order. The ranks
 * are recomputed, so a third class in between is placed right too. */
static void test_priority_override(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, true, 10, 3, "L1L2L3", 16);
    x.ch[2].priority = 1;
    x.ch[2].min_a = 6;
    fx_start(&x);
    fx_all_connected(&x, 0);
    fx_meas(&x, 2, PW_CAR_NONE, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    assert_true(fx_res(&x, 0)->limit_a > 0);
    A_EQ(fx_res(&x, 1)->limit_a, 0);
    pw_bal_set_override(x.b, 1, INFINITY, 5);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_PRIORITY);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    /* c (priority 1) plugs in: b (5) still first, c next, a (0) last. */
    fx_meas(&x, 2, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    A_EQ(fx_res(&x, 2)->limit_a, 0);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_PAUSED_PRIORITY);
    /* b back to the config's 0: c (1) is now the highest class. */
    pw_bal_set_override(x.b, 1, INFINITY, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 2)->limit_a, 10);
    A_EQ(fx_res(&x, 0)->limit_a, 0);
    A_EQ(fx_res(&x, 1)->limit_a, 0);
    fx_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_below_max), cmocka_unit_test(test_cap_frees_room),
        cmocka_unit_test(test_pause),         cmocka_unit_test(test_pause_live),
        cmocka_unit_test(test_node_cap),      cmocka_unit_test(test_sub_node_cap),
        cmocka_unit_test(test_node_cap_live), cmocka_unit_test(test_priority_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
