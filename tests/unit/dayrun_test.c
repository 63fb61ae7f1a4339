/* Tests for the fake-time day run and its baselines: hand-computed static split and worst-phase
 * shares, and a short simulated evening at the demo facility in which phasewise (the control
 * core) must never leave a line above its limit beyond the reaction window. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "pw_cfg.h"
#include "pw_ctl.h"
#include "pw_dayrun.h"
#include "pw_simbase.h"

#define EPS 1e-9

static void node(pw_bal_node_spec *n, int parent, double limit, double margin)
{
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->limit_a[0] = n->limit_a[1] = n->limit_a[2] = limit;
    n->margin_a = margin;
}

static void charger(pw_bal_charger_spec *c, int node_idx, uint8_t first_line, double max_a)
{
    memset(c, 0, sizeof(*c));
    c->node = node_idx;
    for (int t = 0; t < PW_LINES; t++)
        c->wiring[t] = (uint8_t)((first_line - 1 + t) % 3 + 1);
    c->min_a = 6.0;
    c->max_a = max_a;
    c->failsafe_a = 6.0;
    c->weight = 1.0;
}

static void test_static_split(void **state)
{
    pw_bal_node_spec nodes[3];
    pw_bal_charger_spec ch[5];
    double lim[5];
    (void)state;
    node(&nodes[0], -1, 40.0, 1.0);
    node(&nodes[1], 0, 25.0, 1.0);
    node(&nodes[2], 0, 16.0, 0.0);
    nodes[2].limit_a[1] = 10.0; /* the smallest line counts */
    for (int i = 0; i < 3; i++)
        charger(&ch[i], 1, 1, 32.0);
    charger(&ch[3], 2, 2, 32.0);
    charger(&ch[4], 2, 3, 4.0); /* its max is below anything it could get */
    pw_bal_facility f = {PW_GRID_TN, nodes, 3, ch, 5, {0}};
    pw_base_static_limits(&f, lim);
    /* main: 39 / 5 = 7.8; node 1: 24 / 3 = 8; node 2: 10 / 2 = 5 < min 6: paused. */
    for (int i = 0; i < 3; i++)
        assert_true(fabs(lim[i] - 7.8) < EPS);
    assert_true(fabs(lim[3]) < EPS);
    assert_true(fabs(lim[4]) < EPS);
}

static pw_bal_measure car_on(double amps, int terminals)
{
    pw_bal_measure m = {.car = PW_CAR_CHARGING, .applied_limit_a = 16.0, .applied_phases = 3};
    for (int t = 0; t < terminals; t++)
        m.current_a[t] = amps;
    return m;
}

static void test_worst_phase_counts_every_line(void **state)
{
    pw_bal_node_spec nodes[1];
    pw_bal_charger_spec ch[3];
    double lim[3];
    (void)state;
    node(&nodes[0], -1, 32.0, 0.0);
    nodes[0].metered = true;
    for (int i = 0; i < 3; i++)
        charger(&ch[i], 0, (uint8_t)(i + 1), 16.0);
    pw_bal_facility f = {PW_GRID_TN, nodes, 1, ch, 3, {0}};
    f.params.min_pause_ms = 60000;
    pw_base_wp *b = pw_base_wp_new(&f);

    /* Three 1-phase cars on rotated chargers, 10 A each, one per line; the meter sees exactly
     * them plus 2 A of building load on L1. */
    double meter[PW_LINES] = {12.0, 10.0, 10.0};
    pw_base_wp_set_meter(b, 0, meter);
    for (size_t i = 0; i < 3; i++) {
        pw_bal_measure m = car_on(10.0, 1);
        pw_base_wp_set_charger(b, i, &m);
    }
    pw_base_wp_run(b, 0, lim);
    /* Budget = min over lines (32 - non-EV) = 30, split three ways on every line: 10 A each,
     * although each car sits alone on its line and could have its full 16 A. */
    for (int i = 0; i < 3; i++)
        assert_true(fabs(lim[i] - 10.0) < EPS);

    /* Less room: 15 A / 3 = 5 A is below the minimum: the last charger pauses, the others get
     * 7.5 A, and the pause holds for min_pause_ms even when room comes back. */
    meter[0] = 10.0 + 17.0;
    pw_base_wp_set_meter(b, 0, meter);
    pw_base_wp_run(b, 1000, lim);
    assert_true(fabs(lim[0] - 7.5) < EPS && fabs(lim[1] - 7.5) < EPS);
    assert_true(fabs(lim[2]) < EPS);
    meter[0] = 10.0;
    pw_base_wp_set_meter(b, 0, meter);
    pw_base_wp_run(b, 2000, lim);
    assert_true(fabs(lim[2]) < EPS);
    assert_true(fabs(lim[0] - 16.0) < EPS);
    pw_base_wp_free(b);
}

static void test_short_evening_at_the_demo_facility(void **state)
{
    pw_cfg_errors errs;
    char err[256] = "";
    (void)state;
    pw_cfg *cfg = pw_cfg_load(PW_SOURCE_DIR "/config/demo.json", &errs);
    assert_non_null(cfg);
    pw_dayrun_opts o;
    pw_dayrun_default_opts(&o);
    o.duration_ms = 3 * 3600000ull; /* 16:00 to 19:00, through the evening peak */
    o.model.seed = 3;
    o.model.cars_per_day = 30; /* more cars than chargers: the circuits are the bottleneck */
    pw_dayrun_result r[PW_DAYRUN_ALLOCATORS];
    for (int a = 0; a < PW_DAYRUN_ALLOCATORS; a++)
        assert_int_equal(pw_dayrun(cfg, &o, (enum pw_dayrun_alloc)a, &r[a], err, sizeof(err)), 0);

    /* The design target: no line above its limit beyond the reaction window. */
    assert_true(r[PW_DAYRUN_PHASEWISE].over_beyond_s == 0.0);
    /* The same seeded day for everyone. */
    for (int a = 1; a < PW_DAYRUN_ALLOCATORS; a++) {
        assert_int_equal(r[a].cars, r[0].cars);
        assert_true(fabs(r[a].requested_kwh - r[0].requested_kwh) < 1e-6);
    }
    for (int a = 0; a < PW_DAYRUN_ALLOCATORS; a++) {
        assert_true(r[a].cars > 5);
        assert_true(r[a].delivered_kwh > 0.0);
        assert_true(r[a].delivered_kwh <= r[a].requested_kwh * 1.01);
        assert_true(r[a].jain > 0.0 && r[a].jain <= 1.0 + EPS);
        assert_true(r[a].allocator_runs >= 3 * 3600);
    }
    /* Phasewise runs the appliance's control core: the plan goes out when a command is due, so
     * at least at every lease renewal (lease / 3) and not at every run. */
    const pw_dayrun_result *pw = &r[PW_DAYRUN_PHASEWISE];
    assert_true(pw->plans_sent >= o.duration_ms / (cfg->lease_ms / PW_CTL_LEASE_RENEW_DIV));
    assert_true(pw->plans_sent < pw->allocator_runs);
    assert_true(pw->plans_changed > 0 && pw->plans_changed <= pw->plans_sent);
    /* Sharing by measurement beats a fixed split of the fuse. */
    assert_true(r[PW_DAYRUN_PHASEWISE].delivered_kwh > r[PW_DAYRUN_STATIC].delivered_kwh);
    pw_cfg_free(cfg);
}

/* The export describes the run it came from: the same cars (count, requested energy, what they
 * got), one building-load row per minute per metered node, and no rows for unmetered nodes. */
static void test_export_matches_the_run(void **state)
{
    pw_cfg_errors errs;
    char err[256] = "";
    (void)state;
    pw_cfg *cfg = pw_cfg_load(PW_SOURCE_DIR "/config/demo.json", &errs);
    assert_non_null(cfg);
    pw_dayrun_opts o;
    pw_dayrun_default_opts(&o);
    o.duration_ms = 2 * 3600000ull + 30000; /* two hours and a half minute */
    o.model.seed = 5;
    o.model.cars_per_day = 40;
    pw_dayrun_result plain, r;
    assert_int_equal(pw_dayrun(cfg, &o, PW_DAYRUN_PHASEWISE, &plain, err, sizeof(err)), 0);
    json_t *doc = pw_dayrun_export(cfg, &o, PW_DAYRUN_PHASEWISE, &r, err, sizeof(err));
    assert_non_null(doc);
    /* Watching the run does not change it. */
    assert_int_equal(r.cars, plain.cars);
    assert_true(fabs(r.delivered_kwh - plain.delivered_kwh) < 1e-9);

    json_t *cars = json_object_get(doc, "cars");
    assert_true(r.cars > 3);
    assert_int_equal(json_array_size(cars), r.cars);
    double req = 0.0, got = 0.0;
    size_t i;
    json_t *car;
    json_array_foreach(cars, i, car)
    {
        const char *id = json_string_value(json_object_get(car, "charger"));
        assert_non_null(id);
        bool known = false;
        for (size_t k = 0; k < cfg->n_chargers; k++)
            known |= strcmp(cfg->chargers[k].id, id) == 0;
        assert_true(known);
        json_int_t arrive = json_integer_value(json_object_get(car, "arrive_ms"));
        assert_true(arrive >= 0 && (uint64_t)arrive < o.duration_ms);
        assert_true(json_integer_value(json_object_get(car, "depart_ms")) > arrive);
        json_int_t ph = json_integer_value(json_object_get(car, "phases"));
        assert_true(ph >= 1 && ph <= 3);
        assert_true(json_real_value(json_object_get(car, "max_a")) >= 6.0);
        req += json_real_value(json_object_get(car, "requested_kwh"));
        got += json_real_value(json_object_get(car, "delivered_kwh"));
    }
    /* Each figure is rounded to a watt-hour. */
    assert_true(fabs(req - r.requested_kwh) < 0.001 * (double)r.cars);
    assert_true(fabs(got - r.delivered_kwh) < 0.001 * (double)r.cars);

    json_t *load = json_object_get(json_object_get(doc, "building_load"), "nodes");
    size_t metered = 0;
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        json_t *rows = json_object_get(load, cfg->nodes[n].id);
        if (!cfg->nodes[n].metered) {
            assert_null(rows);
            continue;
        }
        metered++;
        /* Minutes 0..120 of a run that ends half a minute after minute 120. */
        assert_int_equal(json_array_size(rows), 121);
        json_t *row = json_array_get(rows, 60);
        assert_int_equal(json_array_size(row), 3);
        assert_true(json_real_value(json_array_get(row, 0)) > 0.0); /* building load at 30 % */
    }
    assert_true(metered > 0);
    assert_int_equal(json_object_size(load), metered);
    json_decref(doc);
    pw_cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_split),
        cmocka_unit_test(test_worst_phase_counts_every_line),
        cmocka_unit_test(test_short_evening_at_the_demo_facility),
        cmocka_unit_test(test_export_matches_the_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
