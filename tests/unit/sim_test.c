/* Tests for the simulated facility model: cars follow offers after their delay, leases fall back
 * to the failsafe current, batteries taper and stop when full, rotated wiring loads the right
 * grid line on TN and IT, node totals add up, overload is accounted, and the same seed gives the
 * same trace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "pw_simimpair.h"
#include "pw_simmodel.h"

#define EPS 1e-9

/* A small facility: a metered main fuse, a metered and an unmetered sub-circuit. */
typedef struct facility {
    pw_bal_node_spec nodes[3];
    pw_bal_charger_spec chargers[6];
    pw_bal_facility f;
} facility;

static void set_node(pw_bal_node_spec *n, const char *id, int parent, double limit, bool metered)
{
    memset(n, 0, sizeof(*n));
    strcpy(n->id, id);
    strcpy(n->name, id);
    n->parent = parent;
    n->limit_a[0] = n->limit_a[1] = n->limit_a[2] = limit;
    n->metered = metered;
}

static void set_charger(pw_bal_charger_spec *c, int node, const char *wiring, double max_a,
                        bool can_switch)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->id, "c");
    c->node = node;
    for (int t = 0; t < PW_LINES; t++)
        c->wiring[t] = wiring[t] == '-' ? 0 : (uint8_t)(wiring[t] - '0');
    c->min_a = 6.0;
    c->max_a = max_a;
    c->failsafe_a = 6.0;
    c->weight = 1.0;
    c->can_switch_phases = can_switch;
}

/* One node, n chargers with the given wirings ("123", "231", ...). */
static void one_node(facility *fa, double limit, const char *const *wirings, size_t n)
{
    memset(fa, 0, sizeof(*fa));
    set_node(&fa->nodes[0], "main", -1, limit, true);
    for (size_t i = 0; i < n; i++)
        set_charger(&fa->chargers[i], 0, wirings[i], 32.0, true);
    fa->f = (pw_bal_facility){PW_GRID_TN, fa->nodes, 1, fa->chargers, n, {0}};
}

static void three_nodes(facility *fa)
{
    static const char *const wirings[] = {"123", "231", "312", "123", "231", "312"};
    memset(fa, 0, sizeof(*fa));
    set_node(&fa->nodes[0], "main", -1, 80.0, true);
    set_node(&fa->nodes[1], "a", 0, 50.0, true);
    set_node(&fa->nodes[2], "b", 0, 40.0, false);
    for (size_t i = 0; i < 6; i++)
        set_charger(&fa->chargers[i], i < 3 ? 1 : 2, wirings[i], i % 2 ? 16.0 : 32.0, true);
    fa->f = (pw_bal_facility){PW_GRID_TN, fa->nodes, 3, fa->chargers, 6, {0}};
}

/* Parameters for hand-made cases: no random cars, no building load, no noise. */
static pw_sim_params quiet_params(void)
{
    pw_sim_params p;
    pw_sim_default_params(&p);
    p.cars_per_day = 0;
    p.base_load_peak = 0.0;
    p.base_load_spikes = false;
    p.meter_noise_a = 0.0;
    return p;
}

static pw_sim *new_model(const facility *fa, const pw_sim_params *p)
{
    pw_sim *m = NULL;
    char err[128] = "";
    int rc = pw_sim_new(&fa->f, p, &m, err, sizeof(err));
    if (rc != 0)
        fail_msg("pw_sim_new: %s", err);
    return m;
}

static pw_sim_car_spec car_spec(uint8_t phases, double max_a, uint32_t follow_ms)
{
    return (pw_sim_car_spec){.phases = phases,
                             .max_a = max_a,
                             .min_start_a = 6.0,
                             .capacity_wh = 60000.0,
                             .arrival_soc = 0.2,
                             .target_soc = 0.8,
                             .follow_ms = follow_ms,
                             .depart_ms = UINT64_MAX};
}

static pw_sim_charger_view charger_at(pw_sim *m, size_t i, uint64_t t)
{
    pw_sim_charger_view v;
    pw_sim_step(m, t);
    pw_sim_charger(m, i, &v);
    return v;
}

static void test_car_follows_within_its_delay(void **state)
{
    facility fa;
    static const char *const w[] = {"123"};
    pw_sim_params p = quiet_params();
    (void)state;
    one_node(&fa, 100.0, w, 1);
    pw_sim *m = new_model(&fa, &p);
    pw_sim_car_spec spec = car_spec(3, 32.0, 3000);
    assert_int_equal(pw_sim_plug_car(m, 0, &spec, 0), 0);

    /* No allocation yet: the charger offers its failsafe 6 A; the car starts after 3 s. */
    pw_sim_charger_view v = charger_at(m, 0, 2999);
    assert_int_equal(v.iec, PW_SIM_IEC_B);
    assert_int_equal(v.lease, PW_SIM_LEASE_NONE);
    assert_true(fabs(v.current_a[0]) < EPS);
    v = charger_at(m, 0, 3000);
    assert_int_equal(v.iec, PW_SIM_IEC_C);
    assert_true(fabs(v.current_a[0] - 6.0) < EPS);

    assert_int_equal(pw_sim_apply(m, 0, 20.0, 0, 60000, 7, 10000), 0);
    v = charger_at(m, 0, 12999);
    assert_true(fabs(v.offered_a - 20.0) < EPS);
    assert_int_equal(v.alloc_seq, 7);
    assert_true(fabs(v.current_a[0] - 6.0) < EPS); /* still the old offer */
    v = charger_at(m, 0, 13000);
    for (int t = 0; t < PW_LINES; t++)
        assert_true(fabs(v.current_a[t] - 20.0) < EPS);

    /* An offer above the charger's max is capped; the car's own 32 A is not the bound here. */
    assert_int_equal(pw_sim_apply(m, 0, 40.0, 0, 60000, 8, 20000), 0);
    v = charger_at(m, 0, 23000);
    assert_true(fabs(v.offered_a - 32.0) < EPS);
    assert_true(fabs(v.current_a[1] - 32.0) < EPS);
    pw_sim_free(m);
}

static void test_lease_expiry_falls_back_to_failsafe(void **state)
{
    facility fa;
    static const char *const w[] = {"123"};
    pw_sim_params p = quiet_params();
    (void)state;
    one_node(&fa, 100.0, w, 1);
    fa.chargers[0].failsafe_a = 8.0;
    pw_sim *m = new_model(&fa, &p);
    pw_sim_car_spec spec = car_spec(3, 32.0, 1000);
    assert_int_equal(pw_sim_plug_car(m, 0, &spec, 0), 0);

    assert_int_equal(pw_sim_apply(m, 0, 20.0, 0, 5000, 3, 10000), 0);
    pw_sim_charger_view v = charger_at(m, 0, 14999);
    assert_int_equal(v.lease, PW_SIM_LEASE_ACTIVE);
    assert_true(fabs(v.current_a[0] - 20.0) < EPS);
    v = charger_at(m, 0, 15000);
    assert_int_equal(v.lease, PW_SIM_LEASE_EXPIRED);
    assert_int_equal(v.alloc_seq, 0);
    assert_true(fabs(v.offered_a - 8.0) < EPS);
    v = charger_at(m, 0, 16000); /* the car follows the failsafe offer after its delay */
    assert_true(fabs(v.current_a[0] - 8.0) < EPS);

    /* A renewed allocation restarts the lease; renewing before expiry keeps it active. */
    assert_int_equal(pw_sim_apply(m, 0, 12.0, 0, 5000, 4, 20000), 0);
    assert_int_equal(pw_sim_apply(m, 0, 12.0, 0, 5000, 5, 24000), 0);
    v = charger_at(m, 0, 28999);
    assert_int_equal(v.lease, PW_SIM_LEASE_ACTIVE);
    assert_int_equal(v.alloc_seq, 5);
    assert_true(fabs(v.current_a[0] - 12.0) < EPS);
    v = charger_at(m, 0, 29000);
    assert_int_equal(v.lease, PW_SIM_LEASE_EXPIRED);
    pw_sim_free(m);
}

static void test_taper_and_full(void **state)
{
    facility fa;
    static const char *const w[] = {"123"};
    pw_sim_params p = quiet_params();
    (void)state;
    one_node(&fa, 100.0, w, 1);
    pw_sim *m = new_model(&fa, &p);
    pw_sim_car_spec spec = car_spec(3, 16.0, 1000);
    spec.capacity_wh = 2000.0;
    spec.arrival_soc = 0.7;
    spec.target_soc = 1.0;
    int car = pw_sim_plug_car(m, 0, &spec, 0);
    assert_true(car >= 0);
    assert_int_equal(pw_sim_apply(m, 0, 32.0, 0, UINT32_MAX, 1, 0), 0);

    pw_sim_car_view cv;
    pw_sim_step(m, 2000);
    pw_sim_car(m, (size_t)car, &cv);
    assert_true(fabs(cv.current_a - 16.0) < EPS); /* below 80 %: the car's own max */

    /* Above 80 % the draw falls monotonically; it stops once the target is reached. */
    double last = cv.current_a;
    bool tapered = false;
    uint64_t t = 2000;
    while (!cv.full && t < 3600000) {
        t += 1000;
        pw_sim_step(m, t);
        pw_sim_car(m, (size_t)car, &cv);
        assert_true(cv.current_a <= last + EPS);
        if (!cv.full && cv.soc > 0.9 && cv.soc < 0.95) {
            /* Linear from the car's max at 80 % down to 15 % of it at 100 %. */
            double expect = 16.0 * (1.0 - 0.85 * (cv.soc - 0.8) / 0.2);
            assert_true(fabs(cv.current_a - expect) < 0.3);
            tapered = true;
        }
        last = cv.current_a;
    }
    assert_true(tapered);
    assert_true(cv.full);
    assert_true(cv.soc >= 1.0 - 1e-6);
    assert_true(fabs(cv.delivered_wh - 600.0) < 5.0); /* 30 % of 2 kWh */
    pw_sim_charger_view v = charger_at(m, 0, t + 1000);
    assert_int_equal(v.iec, PW_SIM_IEC_B); /* suspended by the car, offer still there */
    assert_true(v.offered_a > 6.0);
    assert_true(fabs(v.current_a[0]) < EPS);
    assert_int_equal(cv.pauses, 0); /* being full is not a pause */
    pw_sim_free(m);
}

static void test_one_phase_car_on_rotated_charger(void **state)
{
    facility fa;
    static const char *const w[] = {"231", "312"};
    pw_sim_params p = quiet_params();
    (void)state;
    one_node(&fa, 100.0, w, 2);
    pw_sim *m = new_model(&fa, &p);
    pw_sim_car_spec spec = car_spec(1, 16.0, 1000);
    assert_int_equal(pw_sim_plug_car(m, 0, &spec, 0), 0);
    assert_int_equal(pw_sim_plug_car(m, 1, &spec, 0), 1);
    pw_sim_apply(m, 0, 16.0, 0, UINT32_MAX, 1, 0);
    pw_sim_apply(m, 1, 16.0, 0, UINT32_MAX, 1, 0);

    /* Terminal L1 of an L2L3L1 charger is grid line L2; of an L3L1L2 charger, L3. */
    pw_sim_charger_view v = charger_at(m, 0, 5000);
    assert_true(fabs(v.current_a[0] - 16.0) < EPS);
    assert_true(fabs(v.current_a[1]) < EPS);
    assert_true(fabs(v.line_a[0]) < EPS && fabs(v.line_a[1] - 16.0) < EPS);
    assert_true(fabs(v.line_a[2]) < EPS);
    pw_sim_charger(m, 1, &v);
    assert_true(fabs(v.line_a[2] - 16.0) < EPS);

    pw_sim_node_view nv;
    pw_sim_node(m, 0, &nv);
    assert_true(fabs(nv.load_a[0]) < EPS);
    assert_true(fabs(nv.load_a[1] - 16.0) < EPS);
    assert_true(fabs(nv.load_a[2] - 16.0) < EPS);
    pw_sim_free(m);

    /* IT: a 1-phase car sits between terminals L1 and L2, here grid lines L2 and L3. */
    fa.f.grid = PW_GRID_IT;
    m = new_model(&fa, &p);
    assert_int_equal(pw_sim_plug_car(m, 0, &spec, 0), 0);
    pw_sim_apply(m, 0, 10.0, 0, UINT32_MAX, 1, 0);
    v = charger_at(m, 0, 5000);
    assert_true(fabs(v.line_a[0]) < EPS);
    assert_true(fabs(v.line_a[1] - 10.0) < EPS);
    assert_true(fabs(v.line_a[2] - 10.0) < EPS);
    pw_sim_free(m);
}

static void test_phase_switch_and_pause(void **state)
{
    facility fa;
    static const char *const w[] = {"312"};
    pw_sim_params p = quiet_params();
    (void)state;
    one_node(&fa, 100.0, w, 1);
    pw_sim *m = new_model(&fa, &p);
    pw_sim_car_spec spec = car_spec(3, 16.0, 2000);
    int car = pw_sim_plug_car(m, 0, &spec, 0);
    pw_sim_apply(m, 0, 10.0, 3, 60000, 1, 0);
    pw_sim_charger_view v = charger_at(m, 0, 3000);
    assert_true(fabs(v.line_a[0] - 10.0) < EPS && fabs(v.line_a[1] - 10.0) < EPS);

    /* Told to use one phase: only terminal L1 (grid L3) carries current, after the delay. */
    pw_sim_apply(m, 0, 10.0, 1, 60000, 2, 5000);
    v = charger_at(m, 0, 7000);
    assert_int_equal(v.phases, 1);
    assert_true(fabs(v.line_a[2] - 10.0) < EPS);
    assert_true(fabs(v.line_a[0]) < EPS && fabs(v.line_a[1]) < EPS);

    /* Paused while it still needs energy: counted; the car waits in state B. */
    pw_sim_apply(m, 0, 0.0, 0, 60000, 3, 10000);
    v = charger_at(m, 0, 12000);
    assert_int_equal(v.iec, PW_SIM_IEC_B);
    pw_sim_car_view cv;
    pw_sim_car(m, (size_t)car, &cv);
    assert_int_equal(cv.pauses, 1);
    assert_int_equal(cv.phase_switches, 1);

    /* A car that needs 7 A does not start on a 6 A offer. */
    pw_sim_free(m);
    m = new_model(&fa, &p);
    spec.min_start_a = 7.0;
    assert_int_equal(pw_sim_plug_car(m, 0, &spec, 0), 0);
    pw_sim_apply(m, 0, 6.0, 0, 60000, 1, 0);
    assert_int_equal(charger_at(m, 0, 10000).iec, PW_SIM_IEC_B);
    pw_sim_apply(m, 0, 7.0, 0, 60000, 2, 10000);
    assert_int_equal(charger_at(m, 0, 12000).iec, PW_SIM_IEC_C);
    pw_sim_free(m);
}

static void test_meter_totals_add_up(void **state)
{
    facility fa;
    pw_sim_params p;
    (void)state;
    three_nodes(&fa);
    pw_sim_default_params(&p);
    p.cars_per_day = 20;
    p.pattern = PW_SIM_UNIFORM;
    pw_sim *m = new_model(&fa, &p);
    bool saw_cars = false;

    for (uint64_t t = 0; t <= 6 * 3600000ull; t += 7 * 60000) {
        pw_sim_step(m, t);
        double ev[3][PW_LINES] = {{0}};
        for (size_t c = 0; c < 6; c++) {
            pw_sim_charger_view v;
            pw_sim_charger(m, c, &v);
            for (int l = 0; l < PW_LINES; l++) {
                ev[0][l] += v.line_a[l];
                ev[fa.chargers[c].node][l] += v.line_a[l];
                saw_cars |= v.line_a[l] > 0.0;
            }
        }
        pw_sim_node_view n[3];
        for (size_t i = 0; i < 3; i++)
            pw_sim_node(m, i, &n[i]);
        for (int l = 0; l < PW_LINES; l++) {
            for (size_t i = 0; i < 3; i++) {
                assert_true(fabs(n[i].ev_a[l] - ev[i][l]) < 1e-6);
                assert_true(fabs(n[i].load_a[l] - n[i].base_a[l] - ev[i][l]) < 1e-6);
            }
            /* Building load sits at metered nodes; the main meter sees sub-circuit a's too. */
            assert_true(n[1].base_a[l] > 0.0);
            assert_true(n[0].base_a[l] > n[1].base_a[l]);
            assert_true(fabs(n[2].base_a[l]) < EPS);
            double meter[PW_LINES];
            pw_sim_meter_reading(m, 0, meter);
            assert_true(fabs(meter[l] - n[0].load_a[l]) <= p.meter_noise_a + EPS);
        }
    }
    assert_true(saw_cars);
    pw_sim_free(m);
}

static void test_overload_accounting(void **state)
{
    facility fa;
    static const char *const w[] = {"1--"};
    pw_sim_params p = quiet_params();
    (void)state;
    one_node(&fa, 10.0, w, 1);
    pw_sim *m = new_model(&fa, &p);
    pw_sim_car_spec spec = car_spec(1, 16.0, 1000);
    pw_sim_plug_car(m, 0, &spec, 0);
    pw_sim_apply(m, 0, 16.0, 0, UINT32_MAX, 1, 0);    /* 16 A on a 10 A line from t = 1 s */
    pw_sim_apply(m, 0, 8.0, 0, UINT32_MAX, 2, 20000); /* back under from t = 21 s */
    pw_sim_step(m, 30000);
    pw_sim_node_view nv;
    pw_sim_node(m, 0, &nv);
    assert_true(fabs(nv.over_ms[0] - 20000.0) < EPS);
    assert_true(fabs(nv.over_beyond_ms[0] - 15000.0) < EPS);
    assert_true(fabs(nv.max_over_a[0] - 6.0) < EPS);
    assert_true(fabs(nv.over_ms[1]) < EPS);
    pw_sim_free(m);
}

/* Steps two models through an hour with the same allocations and compares everything. */
static bool same_trace(uint64_t seed_a, uint64_t seed_b)
{
    facility fa;
    pw_sim_params p;
    three_nodes(&fa);
    pw_sim_default_params(&p);
    p.cars_per_day = 30;
    p.pattern = PW_SIM_UNIFORM;
    p.seed = seed_a;
    pw_sim *a = new_model(&fa, &p);
    p.seed = seed_b;
    pw_sim *b = new_model(&fa, &p);
    bool same = pw_sim_car_count(a) == pw_sim_car_count(b);

    for (uint64_t t = 0; t < 3600000 && same; t += 1000) {
        if (t % 60000 == 0) {
            for (size_t c = 0; c < 6; c++) {
                double lim = (double)((t / 60000 + c) % 4) * 6.0;
                pw_sim_apply(a, c, lim, 0, 30000, (uint32_t)(t / 1000), t);
                pw_sim_apply(b, c, lim, 0, 30000, (uint32_t)(t / 1000), t);
            }
        }
        pw_sim_step(a, t);
        pw_sim_step(b, t);
        for (size_t c = 0; c < 6; c++) {
            pw_sim_charger_view va, vb;
            pw_sim_charger(a, c, &va);
            pw_sim_charger(b, c, &vb);
            same &= memcmp(&va, &vb, sizeof(va)) == 0;
        }
        for (size_t i = 0; i < 3; i++) {
            double ma[PW_LINES], mb[PW_LINES];
            pw_sim_meter_reading(a, i, ma);
            pw_sim_meter_reading(b, i, mb);
            same &= memcmp(ma, mb, sizeof(ma)) == 0;
        }
    }
    pw_sim_free(a);
    pw_sim_free(b);
    return same;
}

static void test_determinism(void **state)
{
    (void)state;
    assert_true(same_trace(42, 42));
    assert_false(same_trace(42, 43));
}

static void test_arrivals_over_a_day(void **state)
{
    facility fa;
    pw_sim_params p;
    (void)state;
    three_nodes(&fa);
    pw_sim_default_params(&p);
    p.cars_per_day = 40; /* more than 6 chargers can take: some are turned away */
    p.pattern = PW_SIM_OFFICE;
    p.start_hour = 0.0;
    pw_sim *m = new_model(&fa, &p);
    size_t plugged_at_9 = 0;

    for (uint64_t t = 0; t <= PW_SIM_DAY_MS; t += 60000) {
        pw_sim_step(m, t);
        if (t == 9 * 3600000ull) {
            for (size_t c = 0; c < 6; c++) {
                pw_sim_charger_view v;
                pw_sim_charger(m, c, &v);
                plugged_at_9 += v.car >= 0;
            }
        }
    }
    size_t turned_away = 0, served = 0;
    for (size_t i = 0; i < pw_sim_car_count(m); i++) {
        pw_sim_car_view cv;
        pw_sim_car(m, i, &cv);
        if (cv.arrive_ms >= PW_SIM_DAY_MS)
            continue; /* generated ahead for the next day */
        turned_away += cv.state == PW_SIM_CAR_TURNED_AWAY;
        served += cv.charger >= 0;
        assert_true(cv.phases >= 1 && cv.phases <= 3);
        assert_true(cv.need_wh >= 0.0 && cv.delivered_wh <= cv.need_wh + 1.0);
    }
    assert_int_equal(turned_away + served, 40);
    assert_true(turned_away > 0);
    assert_int_equal(plugged_at_9, 6); /* the office is full in the morning */
    pw_sim_free(m);
}

static void test_rejects_bad_params(void **state)
{
    facility fa;
    pw_sim_params p;
    pw_sim *m = (pw_sim *)1;
    char err[128] = "";
    (void)state;
    three_nodes(&fa);
    pw_sim_default_params(&p);
    p.base_load_peak = 2.0;
    assert_int_equal(pw_sim_new(&fa.f, &p, &m, err, sizeof(err)), PW_SIM_E_PARAM);
    assert_null(m);
    assert_non_null(strstr(err, "base_load_peak"));
    pw_sim_default_params(&p);
    fa.chargers[2].node = 7;
    assert_int_equal(pw_sim_new(&fa.f, &p, &m, err, sizeof(err)), PW_SIM_E_FACILITY);
    assert_non_null(strstr(err, "chargers[2].node"));

    enum pw_sim_pattern pat;
    assert_int_equal(pw_sim_pattern_parse("office", &pat), 0);
    assert_int_equal(pat, PW_SIM_OFFICE);
    assert_int_equal(pw_sim_pattern_parse("night", &pat), -1);
}

static void test_status_reporting_rule(void **state)
{
    pw_sim_charger_view last = {.iec = PW_SIM_IEC_C,
                                .current_a = {10.0, 10.0, 10.0},
                                .offered_a = 16.0,
                                .phases = 3,
                                .alloc_seq = 4};
    pw_sim_charger_view cur = last;
    (void)state;
    assert_true(pw_sim_status_due(NULL, &cur, 0)); /* the first one always goes */
    assert_false(pw_sim_status_due(&last, &cur, 5000));
    assert_true(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_KEEPALIVE_MS));
    cur.current_a[2] = 10.1; /* taper-sized drift waits for the keepalive */
    assert_false(pw_sim_status_due(&last, &cur, 5000));
    cur.current_a[2] = 12.0;
    assert_false(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_MIN_MS - 1));
    assert_true(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_MIN_MS));
    cur = last;
    /* A new allocation that leaves the limit as it was is no change by itself (PROTOCOL.md
     * 5.2): it rides along in the next status, or every charger would answer every plan. */
    cur.alloc_seq = 5;
    assert_false(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_MIN_MS));
    cur.offered_a = 12.0; /* a new limit is */
    assert_true(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_MIN_MS));
    cur = last;
    cur.alloc_seq = 0; /* falling back to the failsafe is */
    assert_true(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_MIN_MS));
    last.alloc_seq = 0; /* and leaving it */
    cur.alloc_seq = 6;
    assert_true(pw_sim_status_due(&last, &cur, PW_SIM_STATUS_MIN_MS));
}

typedef struct trace {
    uint8_t got[64];
    size_t n;
} trace;

static void record(void *ctx, const uint8_t *buf, size_t len)
{
    trace *t = ctx;
    assert_int_equal(len, 1);
    if (t->n < sizeof(t->got))
        t->got[t->n] = buf[0];
    t->n++;
}

static void pass_all(pw_sim_impair *im, trace *t, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        uint8_t b = (uint8_t)i;
        pw_sim_impair_pass(im, &b, 1, record, t);
    }
    pw_sim_impair_flush(im, record, t);
}

static void test_impairment(void **state)
{
    pw_sim_impair im;
    trace t = {0};
    (void)state;
    pw_sim_impair_init(&im, 0.0, 0.0, 0.0, 1);
    pass_all(&im, &t, 4);
    assert_int_equal(t.n, 4);
    assert_memory_equal(t.got, ((uint8_t[]){0, 1, 2, 3}), 4);

    memset(&t, 0, sizeof(t));
    pw_sim_impair_init(&im, 0.0, 0.0, 1.0, 1); /* every other one is held back */
    pass_all(&im, &t, 5);
    assert_int_equal(t.n, 5);
    assert_memory_equal(t.got, ((uint8_t[]){1, 0, 3, 2, 4}), 5);

    memset(&t, 0, sizeof(t));
    pw_sim_impair_init(&im, 0.0, 1.0, 0.0, 1);
    pass_all(&im, &t, 3);
    assert_memory_equal(t.got, ((uint8_t[]){0, 0, 1, 1, 2, 2}), 6);

    /* 30 % loss over 10,000 datagrams, reproducibly from the seed. */
    pw_sim_impair a, b;
    trace ta = {0}, tb = {0};
    pw_sim_impair_init(&a, 0.3, 0.0, 0.0, 99);
    pw_sim_impair_init(&b, 0.3, 0.0, 0.0, 99);
    pass_all(&a, &ta, 10000);
    pass_all(&b, &tb, 10000);
    assert_true(a.dropped > 2700 && a.dropped < 3300);
    assert_int_equal(ta.n, 10000 - a.dropped);
    assert_int_equal(a.dropped, b.dropped);
    assert_memory_equal(ta.got, tb.got, sizeof(ta.got));
}

static void test_outages(void **state)
{
    pw_sim_outage o[2];
    (void)state;
    assert_int_equal(pw_sim_outage_parse("30:120", 0, &o[0]), 0);
    assert_int_equal(o[0].device_id, 0);
    assert_int_equal(o[0].start_ms, 30000);
    assert_int_equal(o[0].end_ms, 150000);
    assert_int_equal(pw_sim_outage_parse("1003:2.5:10", 1, &o[1]), 0);
    assert_int_equal(o[1].device_id, 1003);
    assert_int_equal(o[1].start_ms, 2500);
    assert_int_equal(o[1].end_ms, 12500);
    /* Malformed: missing parts, zero length, a device where none is expected, negative. */
    pw_sim_outage bad;
    const char *const wrong[] = {"30", "30:", ":5", "30:0", "1:2:3", "-1:5", "30:5x"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        assert_int_equal(pw_sim_outage_parse(wrong[i], 0, &bad), -1);
    assert_int_equal(pw_sim_outage_parse("0:1:5", 1, &bad), -1);
    assert_int_equal(pw_sim_outage_parse("7:5", 1, &bad), -1);

    /* The window is [start, end) and belongs to its device only. */
    assert_false(pw_sim_outage_active(o, 2, 0, 29999));
    assert_true(pw_sim_outage_active(o, 2, 0, 30000));
    assert_true(pw_sim_outage_active(o, 2, 0, 149999));
    assert_false(pw_sim_outage_active(o, 2, 0, 150000));
    assert_true(pw_sim_outage_active(o, 2, 1003, 2500));
    assert_false(pw_sim_outage_active(o, 2, 1004, 2500));
    assert_false(pw_sim_outage_active(o, 2, 1003, 12500));
    assert_false(pw_sim_outage_active(o, 0, 0, 40000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_car_follows_within_its_delay),
        cmocka_unit_test(test_lease_expiry_falls_back_to_failsafe),
        cmocka_unit_test(test_taper_and_full),
        cmocka_unit_test(test_one_phase_car_on_rotated_charger),
        cmocka_unit_test(test_phase_switch_and_pause),
        cmocka_unit_test(test_meter_totals_add_up),
        cmocka_unit_test(test_overload_accounting),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_arrivals_over_a_day),
        cmocka_unit_test(test_rejects_bad_params),
        cmocka_unit_test(test_status_reporting_rule),
        cmocka_unit_test(test_impairment),
        cmocka_unit_test(test_outages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
