/* The what-if planner (`phasewise plan`): the shipped examples plan to what they promise, the
 * output has the documented shape and never plans an overload, and bad scenarios are refused
 * with a message naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"

#define EXAMPLES PW_SOURCE_DIR "/config/examples/"

static json_t *plan_file(const char *path)
{
    json_error_t jerr;
    json_t *sc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!sc)
        fail_msg("%s: %s", path, jerr.text);
    char err[2304];
    json_t *out = pw_plan_scenario(sc, EXAMPLES, err, sizeof err);
    if (!out)
        fail_msg("%s: %s", path, err);
    json_decref(sc);
    return out;
}

static double num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static double line(const json_t *o, const char *key, size_t l)
{
    json_t *v = json_array_get(json_object_get(o, key), l);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static const json_t *by_id(const json_t *plan, const char *list, const char *id)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(plan, list), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "id")), id) == 0)
            return o;
    }
    fail_msg("no %s '%s' in the plan", list, id);
    return NULL;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    assert_non_null(s);
    return s;
}

/* Every charger has the documented fields; every node line where anything is planned is
 * within its limit; node EV loads add up from the chargers' line loads. */
static void check_shape(const json_t *plan)
{
    size_t i;
    json_t *c;
    double ev[3] = {0, 0, 0};
    json_array_foreach(json_object_get(plan, "chargers"), i, c)
    {
        double lim = num(c, "limit_a");
        int ph = (int)json_integer_value(json_object_get(c, "phases"));
        assert_true(ph == 1 || ph == 3);
        assert_true(lim == 0 || lim >= 6);
        assert_true(strlen(str(c, "reason")) > 0);
        assert_true(strlen(str(c, "reason_text")) > 0);
        for (size_t l = 0; l < 3; l++)
            ev[l] += line(c, "line_a", l);
    }
    json_t *n;
    json_array_foreach(json_object_get(plan, "nodes"), i, n)
    {
        for (size_t l = 0; l < 3; l++) {
            double planned = line(n, "planned_a", l), limit = line(n, "limit_a", l);
            assert_float_equal(planned, line(n, "non_ev_a", l) + line(n, "ev_a", l), 0.02);
            assert_float_equal(line(n, "headroom_a", l), limit - planned, 0.02);
            if (line(n, "ev_a", l) > 0 && planned > limit + 0.01)
                fail_msg("node %s L%zu planned %.2f over %.2f", str(n, "id"), l + 1, planned,
                         limit);
        }
        if (json_is_null(json_object_get(n, "parent")))
            for (size_t l = 0; l < 3; l++)
                assert_float_equal(line(n, "ev_a", l), ev[l], 0.05);
    }
}

/* Rotation spreads single-phase cars: bays 2 and 3 (wired L2L3L1, L3L1L2) get their maximum on
 * lines 2 and 3 while the cars on line 1 share it. */
static void test_example_tn_garage(void **state)
{
    (void)state;
    json_t *p = plan_file(EXAMPLES "tn-garage-rotation.json");
    check_shape(p);
    assert_string_equal(str(p, "grid"), "TN");
    const json_t *g02 = by_id(p, "chargers", "g02"), *g01 = by_id(p, "chargers", "g01");
    assert_float_equal(num(g02, "limit_a"), 16, 0.01);
    assert_float_equal(line(g02, "line_a", 1), 16, 0.01);
    assert_float_equal(line(g02, "line_a", 0), 0, 0.01);
    assert_string_equal(str(g01, "reason"), "node_limit");
    assert_string_equal(str(json_object_get(g01, "bound_by"), "node"), "garage");
    assert_string_equal(str(json_object_get(g01, "bound_by"), "line"), "L1");
    assert_float_equal(line(by_id(p, "nodes", "garage"), "headroom_a", 0), 0, 0.01);
    assert_string_equal(str(by_id(p, "chargers", "g11"), "reason"), "suspended");
    assert_string_equal(str(by_id(p, "chargers", "g10"), "reason"), "no_car");
    json_decref(p);
}

/* IT: a single-phase car loads the two grid lines of its terminal pair; a stale block meter
 * budgets its fallback and says so; a silent charger is budgeted at its failsafe. */
static void test_example_it_coop(void **state)
{
    (void)state;
    json_t *p = plan_file(EXAMPLES "it-housing-coop.json");
    check_shape(p);
    assert_string_equal(str(p, "grid"), "IT");
    const json_t *a2 = by_id(p, "chargers", "a2"); /* wired L2L3L1: terminals L1, L2 on 2, 3 */
    assert_float_equal(line(a2, "line_a", 0), 0, 0.01);
    assert_float_equal(line(a2, "line_a", 1), num(a2, "limit_a"), 0.01);
    assert_float_equal(line(a2, "line_a", 2), num(a2, "limit_a"), 0.01);
    assert_string_equal(str(by_id(p, "chargers", "b1"), "reason"), "meter_stale");
    assert_true(json_is_true(json_object_get(by_id(p, "nodes", "block-b"), "meter_stale")));
    assert_float_equal(line(by_id(p, "nodes", "block-b"), "non_ev_a", 0), 12, 0.01);
    const json_t *b5 = by_id(p, "chargers", "b5");
    assert_string_equal(str(b5, "reason"), "offline");
    assert_float_equal(line(b5, "line_a", 2), 6, 0.01);
    json_decref(p);
}

/* Scarce: some cars pause, the priority class does not, the switchable car runs on one phase. */
static void test_example_scarce(void **state)
{
    (void)state;
    json_t *p = plan_file(EXAMPLES "scarce-pause.json");
    check_shape(p);
    json_t *summary = json_object_get(p, "summary");
    assert_true(json_integer_value(json_object_get(summary, "paused")) >= 2);
    assert_true(num(by_id(p, "chargers", "p1"), "limit_a") >= 6);
    assert_true(num(by_id(p, "chargers", "p2"), "limit_a") >= 6);
    const json_t *p7 = by_id(p, "chargers", "p7");
    assert_int_equal(json_integer_value(json_object_get(p7, "phases")), 1);
    assert_true(num(p7, "limit_a") >= 6);
    assert_non_null(strstr(str(by_id(p, "chargers", "p8"), "reason"), "paused_"));
    json_decref(p);
}

/* Plans inline text; returns the error message (static buffer) or NULL on success. */
static const char *plan_text(const char *text)
{
    static char err[2304];
    json_error_t jerr;
    json_t *sc = json_loads(text, 0, &jerr);
    if (!sc)
        fail_msg("test scenario does not parse: %s", jerr.text);
    json_t *out = pw_plan_scenario(sc, EXAMPLES, err, sizeof err);
    json_decref(sc);
    if (out) {
        json_decref(out);
        return NULL;
    }
    return err;
}

#define CFG                                                                                        \
    "\"config\":{\"grid\":\"TN\",\"nodes\":[{\"id\":\"main\",\"limit_a\":32,"                      \
    "\"meter\":{\"device_id\":9}},{\"id\":\"sub\",\"parent\":\"main\",\"limit_a\":20}],"           \
    "\"chargers\":[{\"id\":\"c1\",\"device_id\":7,\"node\":\"sub\"}]}"

static void expect_error(const char *text, const char *part)
{
    const char *err = plan_text(text);
    if (!err)
        fail_msg("accepted: %s", text);
    if (!strstr(err, part))
        fail_msg("error '%s' lacks '%s'", err, part);
}

static void test_errors_name_the_field(void **state)
{
    (void)state;
    assert_null(plan_text("{" CFG ",\"meters\":{\"main\":[1,2,3]},"
                          "\"chargers\":{\"c1\":{\"state\":\"charging\",\"current_a\":[8,8,8]}}}"));
    expect_error("{" CFG ",\"meter\":{}}", "scenario.meter: unknown key");
    expect_error("{" CFG ",\"meters\":{\"sub\":10}}", "meters.sub: node 'sub' has no meter");
    expect_error("{" CFG ",\"meters\":{\"x\":10}}", "meters.x: no node 'x'");
    expect_error("{" CFG ",\"meters\":{\"main\":[1,\"a\"]}}", "meters.main[1]");
    expect_error("{" CFG ",\"meters\":{\"main\":[1,2,3,4]}}", "meters.main");
    expect_error("{" CFG ",\"chargers\":{\"c9\":{}}}", "chargers.c9: no charger 'c9'");
    expect_error("{" CFG ",\"chargers\":{\"c1\":{\"state\":\"asleep\"}}}", "chargers.c1.state");
    expect_error("{" CFG ",\"chargers\":{\"c1\":{\"phases\":2}}}", "chargers.c1.phases");
    expect_error("{" CFG ",\"chargers\":{\"c1\":{\"current_a\":[-1]}}}", "chargers.c1.current_a");
    expect_error("{" CFG ",\"chargers\":{\"c1\":{\"amps\":3}}}", "chargers.c1.amps: unknown");
    expect_error("{\"chargers\":{}}", "config: must be");
    expect_error("{\"config\":{\"grid\":\"TN\",\"nodes\":[{\"id\":\"main\",\"limit_a\":32}],"
                 "\"chargers\":[{\"id\":\"c1\",\"device_id\":7,\"node\":\"main\",\"max_a\":99}]}}",
                 "chargers[0].max_a");
    expect_error("{\"config\":\"no-such-file.json\"}", "config:");
}

/* The config may be a path relative to the scenario; a silent charger and unlisted chargers. */
static void test_config_path_and_defaults(void **state)
{
    (void)state;
    const char *cfg_path = "/tmp/bal_plan_test_cfg.json";
    FILE *f = fopen(cfg_path, "w");
    assert_non_null(f);
    fputs("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"main\",\"limit_a\":30}],\"chargers\":["
          "{\"id\":\"a\",\"device_id\":1,\"node\":\"main\",\"failsafe_a\":10},"
          "{\"id\":\"b\",\"device_id\":2,\"node\":\"main\",\"max_a\":32},"
          "{\"id\":\"c\",\"device_id\":3,\"node\":\"main\"}]}",
          f);
    fclose(f);
    json_t *sc = json_pack("{s:s,s:{s:{s:s},s:{s:s}}}", "config", "bal_plan_test_cfg.json",
                           "chargers", "a", "state", "offline", "b", "state", "connected");
    char err[512];
    json_t *out = pw_plan_scenario(sc, "/tmp", err, sizeof err);
    if (!out)
        fail_msg("%s", err);
    check_shape(out);
    /* a is silent: budgeted at its failsafe 10; b takes the other 20; c has no car. */
    assert_float_equal(num(by_id(out, "chargers", "b"), "limit_a"), 20, 0.01);
    assert_string_equal(str(by_id(out, "chargers", "a"), "reason"), "offline");
    assert_string_equal(str(by_id(out, "chargers", "c"), "reason"), "no_car");
    json_decref(out);
    json_decref(sc);
    unlink(cfg_path);
}

/* The subcommand: usage errors exit 2, a missing file 1, an example 0. */
static void test_main_exit_codes(void **state)
{
    (void)state;
    char *no_args[] = {"plan", NULL};
    assert_int_equal(pw_plan_main(1, no_args), 2);
    char *missing[] = {"plan", "/nonexistent/scenario.json", NULL};
    assert_int_equal(pw_plan_main(2, missing), 1);
    char *ok[] = {"plan", EXAMPLES "scarce-pause.json", NULL};
    fflush(stdout); /* the plan goes to stdout: send it to /dev/null for the test */
    int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    dup2(null, STDOUT_FILENO);
    int rc = pw_plan_main(2, ok);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(null);
    assert_int_equal(rc, 0);
}

/* An unmetered garage's own load (8 A on L1, 2 A on L2 and L3) is budgeted as its non-EV load;
 * the metered main fuse budgets its reading and not the reserve a second time. */
static void test_example_subpanel_reserve(void **state)
{
    (void)state;
    json_t *p = plan_file(EXAMPLES "subpanel-reserve.json");
    check_shape(p);
    const json_t *g = by_id(p, "nodes", "garage"), *m = by_id(p, "nodes", "main");
    const double reserve[3] = {8, 2, 2};
    for (size_t l = 0; l < 3; l++) {
        assert_float_equal(line(g, "reserve_a", l), reserve[l], 0.01);
        assert_float_equal(line(g, "non_ev_a", l), reserve[l], 0.01);
    }
    assert_null(json_object_get(g, "reserve_used"));
    assert_null(json_object_get(m, "reserve_a"));
    assert_float_equal(line(m, "non_ev_a", 0), 20, 0.01);
    const char *const ids[] = {"p1", "p2", "p3"};
    for (size_t i = 0; i < 3; i++) {
        const json_t *c = by_id(p, "chargers", ids[i]);
        assert_float_equal(num(c, "limit_a"), 8, 0.01);
        assert_string_equal(str(json_object_get(c, "bound_by"), "node"), "garage");
    }
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_tn_garage),
        cmocka_unit_test(test_example_it_coop),
        cmocka_unit_test(test_example_scarce),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_config_path_and_defaults),
        cmocka_unit_test(test_main_exit_codes),
        cmocka_unit_test(test_example_subpanel_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
