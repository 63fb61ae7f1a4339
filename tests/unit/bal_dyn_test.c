/* Balancer rules that depend on time, checked in fake time: cuts at once and raises only after
 * the cuts are seen (or the reaction window passed), hysteresis, trimming and probing, rotation
 * with minimum run and pause times, phase switching with hold, hysteresis and a per-session cap,
 * the worst-recent budget of a stale meter, silent chargers, deadlines and oneshot mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pw_util.h"

#include "bal_fx.h"

#define A_EQ(x, y) assert_float_equal((x), (y), 1e-6)
#define MIN_MS     60000u

/* Two cars at 16 on 32 A; a third arrives. The two are cut to 32/3 at once; the newcomer waits
 * until their measurements show the cut, then gets its share. */
static void test_cut_now_raise_after_seen(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 32, 3, 16);
    fx_draws(&x, 0, 16, 0);
    fx_draws(&x, 1, 16, 0);
    fx_meas(&x, 2, PW_CAR_NONE, 0, 0, 0, 0, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 16);

    fx_meas(&x, 2, PW_CAR_CONNECTED, 0, 0, 0, 0, 1000);
    fx_run(&x, 1000);
    A_EQ(fx_res(&x, 0)->limit_a, 32.0 / 3);
    A_EQ(fx_res(&x, 1)->limit_a, 32.0 / 3);
    A_EQ(fx_res(&x, 2)->limit_a, 0);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_WAITING_CUTS);
    assert_int_equal(pw_bal_next_deadline(x.b), 1000 + 5000);

    fx_draws(&x, 0, 16, 1500); /* not followed yet */
    fx_run(&x, 2000);
    A_EQ(fx_res(&x, 2)->limit_a, 0);

    fx_draws(&x, 0, 10.6, 2500);
    fx_run(&x, 2600); /* b has not reported since the cut: still pending */
    A_EQ(fx_res(&x, 2)->limit_a, 0);
    fx_draws(&x, 1, 10.6, 2700);
    fx_run(&x, 2800);
    A_EQ(fx_res(&x, 2)->limit_a, 32.0 / 3);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_NODE_LIMIT);
    fx_free(&x);
}

/* The same arrival, but the chargers never report: after the reaction window the raise goes. */
static void test_raise_after_reaction_window(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 32, 3, 16);
    fx_draws(&x, 0, 16, 0);
    fx_draws(&x, 1, 16, 0);
    fx_meas(&x, 2, PW_CAR_CONNECTED, 0, 0, 0, 0, 1000);
    fx_run(&x, 0);
    /* First run: a and b are cut from what they offer; c waits for them. */
    A_EQ(fx_res(&x, 2)->limit_a, 0);
    fx_run(&x, 4999);
    A_EQ(fx_res(&x, 2)->limit_a, 0);
    fx_run(&x, 5000);
    A_EQ(fx_res(&x, 2)->limit_a, 32.0 / 3);
    fx_free(&x);
}

/* A raise waits only for as much as the pending cuts block: with room for part of it, the car
 * is raised part of the way at once. */
static void test_partial_raise(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 40, 2, 32);
    fx_draws(&x, 0, 30, 0);
    fx_draws(&x, 1, 10, 0);
    fx_run(&x, 0); /* target 20/20: a is cut 30 -> 20, b may rise 10 -> 20 */
    A_EQ(fx_res(&x, 0)->limit_a, 20);
    /* a still draws 30: b can only go to 40 - 30 = 10 now, which is no raise at all. */
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_WAITING_CUTS);
    fx_assert_text(fx_res(&x, 1), "raise to 20 A");
    fx_draws(&x, 0, 26, 1000); /* a on its way down */
    fx_run(&x, 1000);
    A_EQ(fx_res(&x, 1)->limit_a, 14);
    fx_draws(&x, 0, 20, 2000);
    fx_run(&x, 2000);
    A_EQ(fx_res(&x, 1)->limit_a, 20);
    fx_free(&x);
}

/* Held raises share the room the pending cuts leave in admission order: the higher class first,
 * though it comes later in charger order. a is cut 30 -> 9 but still draws 30; b (6 -> 9) and c
 * (higher class, 6 -> 32) wait, and 50 - 30 - 6 - 6 = 8 A is free: c rises to 14 at once, which
 * leaves b nothing worth a raise (b first would take it to 9 and leave c 11). */
static void test_held_raises_in_admission_order(void **state)
{
    (void)state;
    fx x;
    fx_garage(&x, PW_GRID_TN, false, 50, 3, "L1L2L3", 32);
    x.ch[2].priority = 1;
    fx_start(&x);
    fx_draws(&x, 0, 30, 0);
    fx_draws(&x, 1, 6, 0);
    fx_draws(&x, 2, 6, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 9);
    A_EQ(fx_res(&x, 2)->limit_a, 14);
    A_EQ(fx_res(&x, 1)->limit_a, 6);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_WAITING_CUTS);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_WAITING_CUTS);
    fx_assert_no_overload(&x);
    fx_free(&x);
}

/* A raise below the hysteresis stays unsent while other raises wait for cuts: releasing the
 * held raises passes it by. d (under a 10.5 A sub-node, offered 10) would rise by 0.5 A; a is cut
 * 30 -> 19.75 and b waits to rise 6 -> 19.75, which the 50 - 46 = 4 A free lets go to 10. */
static void test_small_raise_stays_while_raises_wait(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, false);
    int main = fx_node(&x, "main", -1, 50, 50, 50);
    int sub = fx_node(&x, "sub", main, 10.5, 10.5, 10.5);
    fx_charger(&x, "a", main, "L1L2L3", 32);
    fx_charger(&x, "d", sub, "L1L2L3", 32);
    fx_charger(&x, "b", main, "L1L2L3", 32);
    fx_start(&x);
    fx_draws(&x, 0, 30, 0);
    fx_draws(&x, 1, 10, 0);
    fx_draws(&x, 2, 6, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 19.75);
    A_EQ(fx_res(&x, 1)->limit_a, 10);
    A_EQ(fx_res(&x, 2)->limit_a, 10);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_WAITING_CUTS);
    fx_free(&x);
}

/* Raises below the hysteresis are not sent; cuts always are. */
static void test_hysteresis(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, false);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_meter(&x, n, 10000, 0);
    fx_charger(&x, "a", n, "L1L2L3", 32);
    fx_start(&x);
    const double non_ev[] = {10, 9.5, 10.5, 10.1, 9.0};
    const double expect[] = {22, 22, 21.5, 21.5, 23};
    double lim = 0;
    for (size_t i = 0; i < PW_ARRAY_LEN(non_ev); i++) {
        uint64_t t = i * 1000;
        fx_draws(&x, 0, lim, t);
        fx_meter_read(&x, n, non_ev[i] + lim, non_ev[i] + lim, non_ev[i] + lim, t);
        fx_run(&x, t);
        lim = fx_res(&x, 0)->limit_a;
        A_EQ(lim, expect[i]);
    }
    fx_free(&x);
}

/* A car drawing 8 of its 16 is trimmed to 10 once the reaction window has passed; the other
 * car gets the freed 6. After probe_ms the trim is lifted to see if it wants more. */
static void test_trim_and_probe(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 32, 2, 32);
    fx_draws(&x, 0, 16, 0);
    fx_draws(&x, 1, 16, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_meas(&x, 0, PW_CAR_CHARGING, 8, 8, 8, 16, 4000);
    fx_run(&x, 4000); /* too early: the car may still be ramping */
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_meas(&x, 0, PW_CAR_CHARGING, 8, 8, 8, 16, 5000);
    fx_run(&x, 5000);
    A_EQ(fx_res(&x, 0)->limit_a, 10);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_CAR_DRAW);
    A_EQ(fx_res(&x, 1)->limit_a, 22);
    uint64_t probe = 5000 + x.f.params.probe_ms;
    assert_true(pw_bal_next_deadline(x.b) <= probe);

    /* Its draw falls further: the trim follows it down. */
    fx_meas(&x, 0, PW_CAR_CHARGING, 5, 5, 5, 10, 6000);
    fx_run(&x, 6000);
    A_EQ(fx_res(&x, 0)->limit_a, 7);

    /* Probe: the trim is lifted and b is cut to the fair share at once; a's raise waits until
     * b is seen to follow. */
    fx_draws(&x, 1, 25, probe);
    fx_meas(&x, 0, PW_CAR_CHARGING, 5, 5, 5, 7, probe);
    fx_run(&x, probe);
    A_EQ(fx_res(&x, 1)->limit_a, 16);
    A_EQ(fx_res(&x, 0)->limit_a, 7);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_WAITING_CUTS);
    fx_draws(&x, 1, 16, probe + 1000);
    fx_run(&x, probe + 1000);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    /* Still drawing 5 a reaction window after the raise: trimmed again. */
    fx_meas(&x, 0, PW_CAR_CHARGING, 5, 5, 5, 16, probe + 5999);
    fx_run(&x, probe + 5999);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_meas(&x, 0, PW_CAR_CHARGING, 5, 5, 5, 16, probe + 6000);
    fx_run(&x, probe + 6000);
    A_EQ(fx_res(&x, 0)->limit_a, 7);

    /* The car uses what it has (6.5 of 7): the trim is lifted at once. */
    fx_meas(&x, 0, PW_CAR_CHARGING, 6.5, 6.5, 6.5, 7, probe + 7000);
    fx_run(&x, probe + 7000);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_free(&x);
}

/* Three cars, room for two minimums: they take turns. Over four hours every car gets a fair
 * part of the time, nobody flaps faster than the minimum run and pause times, the limit is
 * never exceeded, and the paused car is told when its turn comes. */
static void test_rotation(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 16, 3, 16);
    const pw_bal_params *p = &x.f.params;
    double lim[3] = {0, 0, 0}, energy[3] = {0, 0, 0};
    uint64_t changed[3] = {0, 0, 0};
    int turns[3] = {0, 0, 0};
    bool saw_eta = false;
    const uint64_t step = 10000, end = 4 * 60 * MIN_MS;
    for (uint64_t t = 0; t <= end; t += step) {
        for (int k = 0; k < 3; k++)
            fx_draws(&x, k, lim[k], t); /* cars follow within one step */
        fx_run(&x, t);
        int running = 0;
        for (int k = 0; k < 3; k++) {
            const pw_bal_result *r = fx_res(&x, k);
            running += r->limit_a > 0;
            energy[k] += lim[k] * step / 1000.0;
            if ((r->limit_a > 0) != (lim[k] > 0)) {
                uint64_t hold = lim[k] > 0 ? p->min_run_ms : p->min_pause_ms;
                if (t > 0 && changed[k] > 0 && t - changed[k] < hold)
                    fail_msg("car %d flapped at %llu after %llu ms", k, (unsigned long long)t,
                             (unsigned long long)(t - changed[k]));
                changed[k] = t;
                turns[k] += r->limit_a > 0;
            }
            if (r->reason == PW_REASON_PAUSED_ROTATION) {
                assert_true(r->next_turn_ms > t);
                fx_assert_text(r, "next turn in ~");
                saw_eta = true;
            }
            lim[k] = r->limit_a;
        }
        assert_true(running <= 2);
    }
    assert_true(saw_eta);
    double total = energy[0] + energy[1] + energy[2];
    for (int k = 0; k < 3; k++) {
        if (energy[k] < total / 3 * 0.75)
            fail_msg("car %d got %.0f of %.0f A*s", k, energy[k], total);
        assert_true(turns[k] >= 3);
    }
    fx_free(&x);
}

/* The estimate: a car paused now waits its minimum pause when a running car is already past
 * its minimum run. */
static void test_rotation_eta(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 16, 3, 16);
    const pw_bal_params *p = &x.f.params;
    for (int k = 0; k < 3; k++)
        fx_draws(&x, k, 0, 0);
    fx_run(&x, 0);
    /* a and b run; c waits for the first of them to end its minimum run. */
    assert_int_equal(fx_res(&x, 2)->next_turn_ms, p->min_run_ms);
    fx_assert_text(fx_res(&x, 2), "next turn in ~15 min");
    const uint64_t t = p->min_run_ms;
    fx_draws(&x, 0, 8, t - 1000);
    fx_draws(&x, 1, 8, t - 1000);
    fx_draws(&x, 2, 0, t - 1000);
    fx_run(&x, t - 1000);
    assert_int_equal(pw_bal_next_deadline(x.b), t); /* a's and b's minimum run ends */
    fx_run(&x, t);
    /* c takes a turn; of a and b, equally long running, b yields by order and waits its
     * minimum pause; c starts once b is seen to stop. */
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_PAUSED_ROTATION);
    assert_int_equal(fx_res(&x, 1)->next_turn_ms, t + p->min_pause_ms);
    fx_assert_text(fx_res(&x, 1), "next turn in ~5 min");
    A_EQ(fx_res(&x, 0)->limit_a, 8);
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_WAITING_CUTS);
    fx_draws(&x, 1, 0, t + 1000);
    fx_run(&x, t + 1000);
    A_EQ(fx_res(&x, 2)->limit_a, 8);
    fx_free(&x);
}

/* Cars waiting for a turn get the turns in their admission order, each the next running car's
 * end: a plugs in first, then b, c and d a minute apart each. */
static void test_rotation_eta_order(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 16, 4, 16);
    double lim[4] = {0, 0, 0, 0};
    for (uint64_t t = 0; t <= 4 * MIN_MS; t += 10000) {
        for (int k = 0; k < 4; k++) {
            uint64_t plugged = k == 0 ? 0 : (uint64_t)k * MIN_MS;
            if (t < plugged)
                fx_meas(&x, k, PW_CAR_NONE, 0, 0, 0, 0, t);
            else
                fx_draws(&x, k, lim[k], t); /* cars follow within one step */
        }
        fx_run(&x, t);
        for (int k = 0; k < 4; k++)
            lim[k] = fx_res(&x, k)->limit_a;
    }
    /* c follows a, which runs since 0; d follows b, which started later (once a's cut was
     * seen). */
    assert_int_equal(fx_res(&x, 2)->reason, PW_REASON_PAUSED_ROTATION);
    assert_int_equal(fx_res(&x, 3)->reason, PW_REASON_PAUSED_ROTATION);
    assert_int_equal(fx_res(&x, 2)->next_turn_ms, x.f.params.min_run_ms);
    assert_true(fx_res(&x, 3)->next_turn_ms > fx_res(&x, 2)->next_turn_ms);
    fx_free(&x);
}

/* Feeds the phase-switching car its meter: non-EV load (n1, n23, n23) plus its own draw. */
static void switch_step(fx *x, double n1, double n23, uint64_t t, double *lim, uint8_t *phases)
{
    double d = *lim;
    bool three = *phases == 3;
    fx_meas(x, 0, d > 0 ? PW_CAR_CHARGING : PW_CAR_CONNECTED, d, three ? d : 0, three ? d : 0, d,
            t);
    fx_meter_read(x, 0, n1 + d, n23 + (three ? d : 0), n23 + (three ? d : 0), t);
    fx_run(x, t);
    *lim = fx_res(x, 0)->limit_a;
    *phases = fx_res(x, 0)->phases;
}

/* 3 phases where they fit, 1 phase where only one line has room; back to 3 only after the hold
 * time and with room for min + hysteresis; at most max_phase_switches per session. */
static void test_phase_switching(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, false);
    int n = fx_node(&x, "main", -1, 32, 32, 32);
    fx_meter(&x, n, 60000, 0);
    fx_charger(&x, "a", n, "L1L2L3", 16);
    x.ch[0].can_switch_phases = true;
    fx_start(&x);
    const uint64_t hold = x.f.params.phase_hold_ms;
    double lim = 0;
    uint8_t ph = 3;
    uint64_t t = 0;
    switch_step(&x, 0, 28, t, &lim, &ph); /* switch 1: only L1 has room */
    assert_int_equal(ph, 1);
    A_EQ(lim, 16);
    switch_step(&x, 0, 0, t += 10000, &lim, &ph); /* room again, but within the hold */
    assert_int_equal(ph, 1);
    assert_true(pw_bal_next_deadline(x.b) <= hold);
    switch_step(&x, 0, 25.5, t = hold, &lim, &ph); /* 6.5 A free: 6 fits, 6 + 1 does not */
    assert_int_equal(ph, 1);
    switch_step(&x, 0, 0, t += 1000, &lim, &ph); /* switch 2 */
    assert_int_equal(ph, 3);
    A_EQ(lim, 16);
    switch_step(&x, 0, 25.5, t += 1000, &lim, &ph); /* 3 x 6 still fits: no switch, just less */
    assert_int_equal(ph, 3);
    A_EQ(lim, 6.5);
    switch_step(&x, 0, 28, t += 1000, &lim, &ph); /* switch 3 */
    assert_int_equal(ph, 1);
    switch_step(&x, 0, 0, t += hold, &lim, &ph); /* switch 4 */
    assert_int_equal(ph, 3);
    switch_step(&x, 0, 28, t += 1000, &lim, &ph); /* the cap is reached: pause instead */
    A_EQ(lim, 0);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_PAUSED_NO_ROOM);
    /* A new session may switch again. */
    fx_meas(&x, 0, PW_CAR_NONE, 0, 0, 0, 0, t += 1000);
    fx_run(&x, t);
    switch_step(&x, 0, 28, t += 1000, &lim, &ph);
    assert_int_equal(ph, 1);
    A_EQ(lim, 16);
    fx_free(&x);
}

/* A switch from 1 phase to 3 at a lower current is a raise on the two lines the car did not
 * load: it waits, like any raise, until a cut pending on them is seen. Car a (16 A, switchable)
 * is on L1 alone while L3 is full; car b (on L2) draws 16. Then L3 frees and L2's non-EV load
 * rises to 16: the plan is a on 3 phases and b, each at (40 - 16) / 2 = 12 on L2. b still draws
 * 16, so a 12 A on L2 now would put 16 + 16 + 12 = 44 on its 40 A: a is held at 12 on L1. */
static void test_phase_switch_up_waits_for_cuts(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, false);
    int n = fx_node(&x, "main", -1, 40, 40, 40);
    fx_meter(&x, n, 60000, 0);
    fx_charger(&x, "a", n, "L1L2L3", 16);
    fx_charger(&x, "b", n, "L2", 16);
    x.ch[0].can_switch_phases = true;
    fx_start(&x);
    const uint64_t hold = x.f.params.phase_hold_ms;
    fx_meas(&x, 0, PW_CAR_CONNECTED, 0, 0, 0, 0, 0);
    fx_meas(&x, 1, PW_CAR_CHARGING, 16, 0, 0, 16, 0);
    fx_meter_read(&x, n, 0, 16, 36, 0);
    fx_run(&x, 0);
    assert_int_equal(fx_res(&x, 0)->phases, 1);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    A_EQ(fx_res(&x, 1)->limit_a, 16);

    fx_meas(&x, 0, PW_CAR_CHARGING, 16, 0, 0, 16, hold);
    fx_meas(&x, 1, PW_CAR_CHARGING, 16, 0, 0, 16, hold);
    fx_meter_read(&x, n, 16, 32, 0, hold);
    fx_run(&x, hold);
    A_EQ(fx_res(&x, 1)->limit_a, 12); /* the cut goes at once */
    assert_int_equal(fx_res(&x, 0)->phases, 1);
    A_EQ(fx_res(&x, 0)->limit_a, 12);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_WAITING_CUTS);

    fx_meas(&x, 0, PW_CAR_CHARGING, 12, 0, 0, 12, hold + 1000); /* both followed their cuts */
    fx_meas(&x, 1, PW_CAR_CHARGING, 12, 0, 0, 12, hold + 1000);
    fx_meter_read(&x, n, 12, 28, 0, hold + 1000);
    fx_run(&x, hold + 1000);
    assert_int_equal(fx_res(&x, 0)->phases, 3);
    A_EQ(fx_res(&x, 0)->limit_a, 12);
    fx_free(&x);
}

/* A stale meter budgets the worst non-EV load of the recent history (or the fallback if
 * larger), never the last reading; once the history is older than meter_history_ms only the
 * fallback is left. */
static void test_stale_meter_worst_recent(void **state)
{
    (void)state;
    fx x;
    fx_init(&x, PW_GRID_TN, false);
    int n = fx_node(&x, "main", -1, 40, 40, 40);
    fx_meter(&x, n, 10000, 5);
    fx_charger(&x, "a", n, "L1L2L3", 40);
    fx_start(&x);
    const double non_ev[] = {3, 12, 4};
    for (size_t i = 0; i < 3; i++) {
        fx_meas(&x, 0, PW_CAR_CHARGING, 20, 20, 20, 20, i * 1000);
        fx_meter_read(&x, n, 20 + non_ev[i], 20 + non_ev[i], 20 + non_ev[i], i * 1000);
        fx_run(&x, i * 1000);
    }
    A_EQ(fx_res(&x, 0)->limit_a, 36);
    fx_meas(&x, 0, PW_CAR_CHARGING, 36, 36, 36, 36, 12000);
    fx_run(&x, 12000);
    A_EQ(fx_nres(&x, n)->non_ev_a[0], 12);
    A_EQ(fx_res(&x, 0)->limit_a, 28);
    assert_int_equal(fx_res(&x, 0)->reason, PW_REASON_METER_STALE);
    uint64_t later = 2000 + x.f.params.meter_history_ms + x.f.params.meter_history_ms / 6;
    fx_meas(&x, 0, PW_CAR_CHARGING, 28, 28, 28, 28, later);
    fx_run(&x, later);
    A_EQ(fx_nres(&x, n)->non_ev_a[0], 5);
    fx_free(&x);
}

/* A charger that stops reporting is budgeted at its last draw (or failsafe) and offered
 * nothing; when it reports again it is planned normally. */
static void test_charger_goes_silent(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 32, 2, 32);
    x.ch[1].failsafe_a = 8;
    fx_free(&x);
    fx_start(&x);
    fx_draws(&x, 0, 16, 0);
    fx_draws(&x, 1, 16, 0);
    fx_run(&x, 0);
    A_EQ(fx_res(&x, 1)->limit_a, 16);
    uint64_t t = x.f.params.offline_ms;
    fx_draws(&x, 0, 16, t);
    fx_run(&x, t); /* b last reported at 0: silent, budgeted at its last 16 */
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_OFFLINE);
    A_EQ(fx_res(&x, 1)->line_a[2], 16);
    A_EQ(fx_res(&x, 0)->limit_a, 16);
    fx_draws(&x, 1, 16, t + 1000);
    fx_draws(&x, 0, 16, t + 1000);
    fx_run(&x, t + 1000);
    assert_int_equal(fx_res(&x, 1)->reason, PW_REASON_NODE_LIMIT);
    A_EQ(fx_res(&x, 1)->limit_a, 16);
    fx_free(&x);
}

/* Oneshot plans from the given input alone: no waiting for cuts, no rotation memory, no
 * hysteresis, and running it twice changes nothing. */
static void test_oneshot(void **state)
{
    (void)state;
    fx x;
    fx_live_garage(&x, 32, 3, 16);
    fx_free(&x);
    x.f.params.oneshot = true;
    fx_start(&x);
    fx_draws(&x, 0, 16, 0);
    fx_draws(&x, 1, 16, 0);
    fx_draws(&x, 2, 0, 0);
    for (int round = 0; round < 2; round++) {
        fx_run(&x, (uint64_t)round * 100);
        for (int k = 0; k < 3; k++)
            A_EQ(fx_res(&x, k)->limit_a, 32.0 / 3);
    }
    assert_int_equal(pw_bal_next_deadline(x.b), UINT64_MAX);
    fx_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_now_raise_after_seen),
        cmocka_unit_test(test_raise_after_reaction_window),
        cmocka_unit_test(test_partial_raise),
        cmocka_unit_test(test_held_raises_in_admission_order),
        cmocka_unit_test(test_small_raise_stays_while_raises_wait),
        cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_trim_and_probe),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_rotation_eta),
        cmocka_unit_test(test_rotation_eta_order),
        cmocka_unit_test(test_phase_switching),
        cmocka_unit_test(test_phase_switch_up_waits_for_cuts),
        cmocka_unit_test(test_stale_meter_worst_recent),
        cmocka_unit_test(test_charger_goes_silent),
        cmocka_unit_test(test_oneshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
