/* The fleet uplink's 15-minute aggregates (server/uplink_agg.c), in fake time: a quarter is
 * reported once a sample of a later quarter arrives, with the energy of each charger's register
 * (from the last reading of the quarter before), the mean and peak currents, and whether the
 * appliance saw the whole quarter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "uplink_agg.h"

#define Q     PW_UPLINK_QUARTER_MS
#define START (1700000000000LL / Q * Q) /* a quarter's start */

static pw_uplink_agg_charger charger(double a, uint64_t wh)
{
    return (pw_uplink_agg_charger){.id = "a01",
                                   .name = "Bay 1",
                                   .has_report = true,
                                   .current_a = {a, a / 2, 0},
                                   .energy_wh = wh};
}

/* One tick at wall with charger a01 at a amperes and register wh, node main at line currents. */
static json_t *tick(pw_uplink_agg *agg, int64_t wall, double a, uint64_t wh, double main_l1,
                    int64_t *quarter)
{
    pw_uplink_agg_charger ch = charger(a, wh);
    pw_uplink_agg_node nd = {
        .id = "main", .name = "Main", .has_reading = true, .line_a = {main_l1, 1, 2}};
    *quarter = -1;
    char *text = pw_uplink_agg_sample(agg, wall, &ch, 1, &nd, 1, quarter);
    if (!text)
        return NULL;
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    free(text);
    assert_non_null(doc);
    return doc;
}

static double num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* Nothing until the quarter ends; then one aggregate with the right figures; energy runs from
 * the last reading of the quarter before in the next one, which is complete. */
static void quarters(void **state)
{
    (void)state;
    pw_uplink_agg *agg = pw_uplink_agg_new();
    int64_t q;
    /* Starts mid-quarter: incomplete, energy from its first reading. */
    assert_null(tick(agg, START + 60000, 10, 1000, 20, &q));
    assert_null(tick(agg, START + 120000, 20, 1100, 30, &q));
    assert_null(tick(agg, START + Q - 1, 30, 1200, 40, &q));
    json_t *doc = tick(agg, START + Q, 16, 1250, 10, &q);
    assert_non_null(doc);
    assert_int_equal(q, START);
    assert_false(json_is_true(json_object_get(doc, "complete")));
    assert_int_equal((int)num(doc, "samples"), 3);
    json_t *ch = json_array_get(json_object_get(doc, "chargers"), 0);
    assert_string_equal(json_string_value(json_object_get(ch, "id")), "a01");
    assert_string_equal(json_string_value(json_object_get(ch, "name")), "Bay 1");
    assert_int_equal((int)num(ch, "energy_wh"), 200);
    assert_float_equal(num(ch, "mean_a"), 20.0, 1e-9);
    assert_float_equal(num(ch, "peak_a"), 30.0, 1e-9);
    json_t *nd = json_array_get(json_object_get(doc, "nodes"), 0);
    assert_float_equal(json_number_value(json_array_get(json_object_get(nd, "mean_a"), 0)), 30.0,
                       1e-9);
    assert_float_equal(json_number_value(json_array_get(json_object_get(nd, "peak_a"), 0)), 40.0,
                       1e-9);
    assert_float_equal(json_number_value(json_array_get(json_object_get(nd, "peak_a"), 2)), 2.0,
                       1e-9);
    json_decref(doc);

    /* The next quarter: its energy counts from 1200 (the last reading before it). */
    assert_null(tick(agg, START + Q + 1000, 16, 1300, 10, &q));
    doc = tick(agg, START + 2 * Q + 5, 0, 1300, 10, &q);
    assert_non_null(doc);
    assert_int_equal(q, START + Q);
    assert_true(json_is_true(json_object_get(doc, "complete")));
    ch = json_array_get(json_object_get(doc, "chargers"), 0);
    assert_int_equal((int)num(ch, "energy_wh"), 100);
    assert_string_equal(json_string_value(json_object_get(doc, "from")),
                        "2023-11-14T22:15:00.000Z");
    json_decref(doc);
    pw_uplink_agg_free(agg);
}

/* A clock stepped back changes nothing; a gap of whole quarters makes the next one incomplete
 * and its energy starts from its own first reading; a register going backwards has no energy. */
static void gaps_and_odd_registers(void **state)
{
    (void)state;
    pw_uplink_agg *agg = pw_uplink_agg_new();
    int64_t q;
    assert_null(tick(agg, START, 10, 5000, 0, &q));
    assert_null(tick(agg, START - 10 * Q, 10, 5000, 0, &q)); /* stepped back: ignored */
    json_t *doc = tick(agg, START + 3 * Q, 10, 6000, 0, &q);
    assert_non_null(doc);
    assert_int_equal(q, START);
    assert_true(json_is_false(json_object_get(doc, "complete"))); /* the first one seen */
    json_decref(doc);
    /* 6000 Wh at the gap's end, then 100 Wh: a replaced charger, whose energy is unknown. */
    assert_null(tick(agg, START + 3 * Q + 1000, 10, 100, 0, &q));
    doc = tick(agg, START + 4 * Q, 10, 100, 0, &q);
    assert_false(json_is_true(json_object_get(doc, "complete")));
    json_t *ch = json_array_get(json_object_get(doc, "chargers"), 0);
    assert_true(json_is_null(json_object_get(ch, "energy_wh")));
    json_decref(doc);
    pw_uplink_agg_free(agg);
}

/* A charger without a register has energy null; one without reports is left out. */
static void unknown_registers(void **state)
{
    (void)state;
    pw_uplink_agg *agg = pw_uplink_agg_new();
    int64_t q;
    assert_null(tick(agg, START, 10, UINT64_MAX, 0, &q));
    json_t *doc = tick(agg, START + Q, 10, UINT64_MAX, 0, &q);
    json_t *ch = json_array_get(json_object_get(doc, "chargers"), 0);
    assert_true(json_is_null(json_object_get(ch, "energy_wh")));
    json_decref(doc);
    pw_uplink_agg_charger none = {.id = "a01", .name = "Bay 1"};
    assert_null(pw_uplink_agg_sample(agg, START + Q + 10, &none, 1, NULL, 0, &q));
    char *text = pw_uplink_agg_sample(agg, START + 2 * Q, &none, 1, NULL, 0, &q);
    doc = json_loads(text, 0, NULL);
    free(text);
    /* Only the tick at START + Q had a report in that quarter. */
    ch = json_array_get(json_object_get(doc, "chargers"), 0);
    assert_int_equal((int)num(ch, "samples"), 1);
    json_decref(doc);
    pw_uplink_agg_free(agg);
}

static void rfc3339(void **state)
{
    (void)state;
    char out[32];
    pw_uplink_rfc3339(1700000000123LL, out);
    assert_string_equal(out, "2023-11-14T22:13:20.123Z");
    pw_uplink_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quarters),
        cmocka_unit_test(gaps_and_odd_registers),
        cmocka_unit_test(unknown_registers),
        cmocka_unit_test(rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
