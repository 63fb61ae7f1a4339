/* MQTT meter feeds, the pure half (transport/mqtt_feed.h): each preset on the payloads its
 * bridges publish (the AMS reader's JSON as its firmware prints it, a JSON message with a path
 * per line, one number per topic), every way a message is refused (not JSON, not a number, a
 * line missing, too large) with nothing changed, how plain topics are joined within the
 * window, derive_l2, and the settings a feed refuses. Time is an explicit now. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_feed.h"
#include "pw_util.h"

#define A_EQ(x, y) assert_float_equal((x), (y), 1e-9)
#define T0         UINT64_C(5000000)

/* The AMS reader's list 3 message (amsreader-firmware JsonMqttHandler json3 template),
 * printed the way its firmware prints it. */
#define AMS_LIST3                                                                                  \
    "{\n    \"id\" : \"a4cf12f3c0de\",\n    \"name\" : \"ams-c0de\",\n    \"up\" : 86400,\n"       \
    "    \"t\" : 1700000000,\n    \"vcc\" : 3.286,\n    \"rssi\": -61,\n    \"temp\": 22.50,\n"    \
    "    \"data\" : {\n        \"lv\" : \"AIDON_V0001\",\n        \"id\" : "                       \
    "\"7359992890941742\",\n"                                                                      \
    "        \"type\" : \"6525\",\n        \"P\" : 7412,\n        \"Q\" : 0,\n"                    \
    "        \"PO\" : 0,\n        \"QO\" : 312,\n        \"I1\" : 12.34,\n"                        \
    "        \"I2\" : 8.10,\n        \"I3\" : 11.02,\n        \"U1\" : 231.20,\n"                  \
    "        \"U2\" : 230.80,\n        \"U3\" : 232.00,\n        \"tPI\" : 12345.678,\n"           \
    "        \"tPO\" : 0.000,\n        \"tQI\" : 12.100,\n        \"tQO\" : 3210.000,\n"           \
    "        \"rtc\" : 1700000000\n    },\n    \"realtime\" : {\n        \"h\" : 1.20,\n"          \
    "        \"d\" : 24.5,\n        \"t\" : 10,\n        \"x\" : 5.10,\n"                          \
    "        \"he\" : 0.00,\n        \"de\" : 0.0\n    }\n}\n"

/* List 1 (power only), published every 2 s between the lists with currents. */
#define AMS_LIST1                                                                                  \
    "{\"id\":\"a4cf12f3c0de\",\"name\":\"ams-c0de\",\"up\":86402,\"t\":1700000002,"                \
    "\"vcc\":3.286,\"rssi\":-61,\"temp\":22.50,\"data\":{\"P\":7398},"                             \
    "\"realtime\":{\"h\":1.20,\"d\":24.5,\"t\":10,\"x\":5.10,\"he\":0.00,\"de\":0.0}}"

static pw_cfg_link link_topic(const char *topic)
{
    pw_cfg_link l = {.kind = PW_CFG_LINK_MQTT};
    pw_strlcpy(l.topic, topic, sizeof l.topic);
    return l;
}

static void feed_ams(pw_mqtt_feed *f)
{
    pw_cfg_link l = link_topic("ams/meter");
    pw_cfg_meter_opts o = {.preset = "ams"};
    assert_int_equal(pw_mqtt_feed_init(f, &l, &o), 0);
}

static void feed_json(pw_mqtt_feed *f, const char *p1, const char *p2, const char *p3,
                      bool derive_l2)
{
    pw_cfg_link l = link_topic("tele/meter/SENSOR");
    pw_cfg_meter_opts o = {.preset = "json", .derive_l2 = derive_l2};
    pw_strlcpy(o.paths[0], p1, sizeof o.paths[0]);
    pw_strlcpy(o.paths[1], p2, sizeof o.paths[1]);
    pw_strlcpy(o.paths[2], p3, sizeof o.paths[2]);
    assert_int_equal(pw_mqtt_feed_init(f, &l, &o), 0);
}

static void feed_plain(pw_mqtt_feed *f, uint32_t interval_ms)
{
    pw_cfg_link l = link_topic("ams/meter/l1/current");
    pw_cfg_meter_opts o = {.preset = "plain", .interval_ms = interval_ms};
    pw_strlcpy(o.topics[0], "ams/meter/l1/current", sizeof o.topics[0]);
    pw_strlcpy(o.topics[1], "ams/meter/l2/current", sizeof o.topics[1]);
    pw_strlcpy(o.topics[2], "ams/meter/l3/current", sizeof o.topics[2]);
    assert_int_equal(pw_mqtt_feed_init(f, &l, &o), 0);
}

static int input(pw_mqtt_feed *f, const char *topic, const char *payload, uint64_t now,
                 double out[PW_LINES])
{
    return pw_mqtt_feed_input(f, topic, payload, strlen(payload), now, out);
}

/* A refused message changes nothing but the note, and the note says something. */
static void assert_refused(pw_mqtt_feed *f, const char *topic, const char *payload, int want)
{
    pw_mqtt_feed before = *f;
    double out[PW_LINES] = {-1, -1, -1};
    assert_int_equal(input(f, topic, payload, T0 + 77, out), want);
    assert_true(f->note[0] != '\0');
    assert_string_equal(pw_mqtt_feed_reason(want),
                        want == PW_MQTT_FEED_E_SIZE ? "oversize" : "malformed");
    memcpy(before.note, f->note, sizeof before.note);
    assert_memory_equal(&before, f, sizeof before);
    A_EQ(out[0], -1); /* out untouched too */
}

/* ---- ams ----------------------------------------------------------------------------- */

static void ams_reading(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_ams(&f);
    assert_string_equal(f.line[0].path, "data.I1");
    assert_string_equal(f.line[2].path, "data.I3");
    const char *topics[PW_LINES];
    assert_int_equal(pw_mqtt_feed_topics(&f, topics), 1);
    assert_string_equal(topics[0], "ams/meter");
    assert_true(pw_mqtt_feed_wants(&f, "ams/meter"));
    assert_false(pw_mqtt_feed_wants(&f, "ams/meter/"));
    double out[PW_LINES];
    assert_int_equal(input(&f, "ams/meter", AMS_LIST3, T0, out), PW_MQTT_FEED_READING);
    A_EQ(out[0], 12.34);
    A_EQ(out[1], 8.10);
    A_EQ(out[2], 11.02);
    assert_string_equal(f.note, "");
    /* The next full list is a reading of its own. */
    assert_int_equal(input(&f, "ams/meter", AMS_LIST3, T0 + 10000, out), PW_MQTT_FEED_READING);
}

static void ams_messages_without_currents(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_ams(&f);
    double out[PW_LINES] = {-1, -1, -1};
    /* List 1, the system message, prices and temperatures share the topic: not refused. */
    const char *other[] = {
        AMS_LIST1,
        "{\"id\":\"a4cf12f3c0de\",\"name\":\"ams-c0de\",\"up\":60,\"vcc\":3.3,\"rssi\":-60,"
        "\"temp\":21.0,\"version\":\"2.2.12\"}",
        "{\"id\":\"a4cf12f3c0de\",\"prices\":{\"0\":1.2,\"1\":1.1,\"min\":0.9}}",
        "{\"temperatures\":{\"28ff6a2e62160484\":21.50}}",
    };
    for (size_t i = 0; i < PW_ARRAY_LEN(other); i++) {
        pw_mqtt_feed before = f;
        assert_int_equal(input(&f, "ams/meter", other[i], T0, out), PW_MQTT_FEED_IGNORED);
        assert_true(strstr(f.note, "without currents") != NULL);
        memcpy(before.note, f.note, sizeof f.note);
        assert_memory_equal(&before, &f, sizeof f);
    }
    A_EQ(out[0], -1);
    assert_int_equal(input(&f, "ams/meter", AMS_LIST3, T0 + 1, out), PW_MQTT_FEED_READING);
}

static void ams_malformed(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_ams(&f);
    /* Not JSON: cut short, a bare word, the "nan" a printf of a NaN gives, empty. */
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":12.3,\"I2\":1", PW_MQTT_FEED_E_SYNTAX);
    assert_refused(&f, "ams/meter", "hello", PW_MQTT_FEED_E_SYNTAX);
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":nan,\"I2\":1,\"I3\":2}}",
                   PW_MQTT_FEED_E_SYNTAX);
    assert_refused(&f, "ams/meter", "", PW_MQTT_FEED_E_SYNTAX);
    /* JSON but not an object. */
    assert_refused(&f, "ams/meter", "12.5", PW_MQTT_FEED_E_SYNTAX);
    /* A duplicate key makes the line ambiguous. */
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":1,\"I1\":90,\"I2\":1,\"I3\":2}}",
                   PW_MQTT_FEED_E_SYNTAX);
    /* Some currents but not all. */
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":12.3,\"I2\":4.0}}", PW_MQTT_FEED_E_MISSING);
    assert_true(strstr(f.note, "data.I3") != NULL);
    /* A current that is not a number. */
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":\"12.3\",\"I2\":4.0,\"I3\":1}}",
                   PW_MQTT_FEED_E_TYPE);
    assert_true(strstr(f.note, "data.I1") != NULL);
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":1,\"I2\":null,\"I3\":1}}",
                   PW_MQTT_FEED_E_TYPE);
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":1,\"I2\":true,\"I3\":1}}",
                   PW_MQTT_FEED_E_TYPE);
    /* A number JSON cannot hold as a double. */
    assert_refused(&f, "ams/meter", "{\"data\":{\"I1\":1e999,\"I2\":1,\"I3\":1}}",
                   PW_MQTT_FEED_E_SYNTAX);
}

/* ---- json ---------------------------------------------------------------------------- */

static void json_paths(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    /* Tasmota's SDM630 driver: ENERGY.Current is an array [L1, L2, L3]. */
    feed_json(&f, "ENERGY.Current.0", "ENERGY.Current.1", "ENERGY.Current.2", false);
    double out[PW_LINES];
    assert_int_equal(input(&f, "tele/meter/SENSOR",
                           "{\"Time\":\"2024-01-01T00:00:00\",\"ENERGY\":{\"Total\":1.5,"
                           "\"Current\":[10.5,0,7]}}",
                           T0, out),
                     PW_MQTT_FEED_READING);
    A_EQ(out[0], 10.5);
    A_EQ(out[1], 0);
    A_EQ(out[2], 7);

    feed_json(&f, "current.l1", "current.l2", "current.l3", false);
    assert_int_equal(input(&f, "tele/meter/SENSOR",
                           "{\"current\":{\"l1\":1,\"l2\":2.25,\"l3\":-0.0},\"extra\":[1,2]}", T0,
                           out),
                     PW_MQTT_FEED_READING);
    A_EQ(out[1], 2.25);
    /* A negative value is passed on: the core refuses it as implausible and counts it. */
    assert_int_equal(
        input(&f, "tele/meter/SENSOR", "{\"current\":{\"l1\":-3,\"l2\":2,\"l3\":1}}", T0, out),
        PW_MQTT_FEED_READING);
    A_EQ(out[0], -3);
}

static void json_line_not_reported(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    /* A single-phase meter: only L1. */
    feed_json(&f, "a", "", "", false);
    assert_int_equal(f.want, 1u);
    double out[PW_LINES];
    assert_int_equal(input(&f, "tele/meter/SENSOR", "{\"a\":4.5}", T0, out), PW_MQTT_FEED_READING);
    A_EQ(out[0], 4.5);
    assert_true(isnan(out[1]) && isnan(out[2]));
    /* derive_l2: L2 is not read even when the bridge prints one (0.00 on a 3-wire meter). */
    feed_json(&f, "i.1", "i.2", "i.3", true);
    assert_int_equal(f.want, 5u);
    assert_int_equal(input(&f, "tele/meter/SENSOR", "{\"i\":{\"1\":9,\"2\":0,\"3\":8}}", T0, out),
                     PW_MQTT_FEED_READING);
    A_EQ(out[0], 9);
    assert_true(isnan(out[1]));
    A_EQ(out[2], 8);
}

static void json_malformed(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_json(&f, "ENERGY.Current.0", "ENERGY.Current.1", "ENERGY.Current.2", false);
    const char *t = "tele/meter/SENSOR";
    assert_refused(&f, t, "{\"ENERGY\":", PW_MQTT_FEED_E_SYNTAX);
    assert_refused(&f, t, "[1,2,3] trailing", PW_MQTT_FEED_E_SYNTAX);
    /* A path that is not there: a member missing, an index past the end, a name on an array,
     * an index into an object, a step below a number. */
    assert_refused(&f, t, "{\"ENERGY\":{\"Total\":1}}", PW_MQTT_FEED_E_MISSING);
    assert_refused(&f, t, "{\"ENERGY\":{\"Current\":[1,2]}}", PW_MQTT_FEED_E_MISSING);
    assert_true(strstr(f.note, "ENERGY.Current.2") != NULL);
    assert_refused(&f, t, "{\"ENERGY\":[1,2,3]}", PW_MQTT_FEED_E_MISSING);
    assert_refused(&f, t, "{\"ENERGY\":{\"Current\":{\"x\":1}}}", PW_MQTT_FEED_E_MISSING);
    assert_refused(&f, t, "{\"ENERGY\":5}", PW_MQTT_FEED_E_MISSING);
    /* Values that are not numbers. */
    assert_refused(&f, t, "{\"ENERGY\":{\"Current\":[1,\"2\",3]}}", PW_MQTT_FEED_E_TYPE);
    assert_refused(&f, t, "{\"ENERGY\":{\"Current\":[1,[2],3]}}", PW_MQTT_FEED_E_TYPE);
    assert_refused(&f, t, "{\"ENERGY\":{\"Current\":[1,{},3]}}", PW_MQTT_FEED_E_TYPE);
    /* A string root is not an object. */
    assert_refused(&f, t, "\"12\"", PW_MQTT_FEED_E_SYNTAX);
}

/* ---- plain --------------------------------------------------------------------------- */

static void plain_joined(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_plain(&f, 0);
    assert_int_equal(f.window_ms, PW_MQTT_FEED_WINDOW_MS);
    const char *topics[PW_LINES];
    assert_int_equal(pw_mqtt_feed_topics(&f, topics), 3);
    double out[PW_LINES];
    assert_int_equal(input(&f, "ams/meter/l1/current", "12.5", T0, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l2/current", " 3\n", T0 + 5, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l3/current", "4.75", T0 + 9, out), PW_MQTT_FEED_READING);
    A_EQ(out[0], 12.5);
    A_EQ(out[1], 3);
    A_EQ(out[2], 4.75);
    /* The set starts again: one line alone is no reading. */
    assert_int_equal(input(&f, "ams/meter/l3/current", "4.8", T0 + 1000, out),
                     PW_MQTT_FEED_PARTIAL);
    /* A line that arrives twice keeps its newest value. */
    assert_int_equal(input(&f, "ams/meter/l1/current", "1", T0 + 1001, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l1/current", "2", T0 + 1002, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l2/current", "1e1", T0 + 1003, out),
                     PW_MQTT_FEED_READING);
    A_EQ(out[0], 2);
    A_EQ(out[1], 10);
    A_EQ(out[2], 4.8);
}

static void plain_window(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_plain(&f, 0);
    double out[PW_LINES];
    /* L1 at 0, L2 at 500, L3 at 1600: L1 is older than the window when the set would close. */
    assert_int_equal(input(&f, "ams/meter/l1/current", "1", T0, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l2/current", "2", T0 + 500, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l3/current", "3", T0 + 1600, out), PW_MQTT_FEED_PARTIAL);
    /* A new L1 at 1700: L2 (500) is too old by now. */
    assert_int_equal(input(&f, "ams/meter/l1/current", "1.5", T0 + 1700, out),
                     PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l2/current", "2.5", T0 + 1800, out),
                     PW_MQTT_FEED_READING);
    A_EQ(out[0], 1.5);
    A_EQ(out[1], 2.5);
    A_EQ(out[2], 3);
    /* Exactly the window apart still joins; the meter's own interval sets the window. */
    feed_plain(&f, 200);
    assert_int_equal(input(&f, "ams/meter/l1/current", "1", T0, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l2/current", "1", T0 + 100, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l3/current", "1", T0 + 200, out), PW_MQTT_FEED_READING);
    assert_int_equal(input(&f, "ams/meter/l1/current", "1", T0 + 300, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l2/current", "1", T0 + 400, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "ams/meter/l3/current", "1", T0 + 501, out), PW_MQTT_FEED_PARTIAL);
}

static void plain_malformed(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_plain(&f, 0);
    double out[PW_LINES];
    assert_int_equal(input(&f, "ams/meter/l1/current", "7", T0, out), PW_MQTT_FEED_PARTIAL);
    const char *t = "ams/meter/l2/current";
    /* Not numbers as JSON writes them: a comma, hex, "nan", words, a plus sign, a leading
     * dot, units, two numbers, nothing. Refusing them leaves the L1 already taken alone. */
    const char *syntax[] = {"12,5", "0x10", "nan", "NaN", "inf", "abc",   "+1",
                            ".5",   "5A",   "1 2", "",    " ",   "1e999", "-"};
    for (size_t i = 0; i < PW_ARRAY_LEN(syntax); i++)
        assert_refused(&f, t, syntax[i], PW_MQTT_FEED_E_SYNTAX);
    /* JSON, but not a number. */
    const char *type[] = {"\"12.5\"", "true", "null", "[12.5]", "{\"v\":12.5}"};
    for (size_t i = 0; i < PW_ARRAY_LEN(type); i++)
        assert_refused(&f, t, type[i], PW_MQTT_FEED_E_TYPE);
    assert_int_equal(f.fresh, 1u);
    /* A payload with a NUL inside is not a number either. */
    pw_mqtt_feed before = f;
    assert_int_equal(pw_mqtt_feed_input(&f, t,
                                        "1\0"
                                        "2",
                                        3, T0, out),
                     PW_MQTT_FEED_E_SYNTAX);
    memcpy(before.note, f.note, sizeof f.note);
    assert_memory_equal(&before, &f, sizeof f);
}

/* ---- every preset ---------------------------------------------------------------------- */

static void oversize(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_json(&f, "a", "b", "c", false);
    /* Valid JSON, but one byte over the bound: refused unread. */
    size_t n = PW_MQTT_FEED_MAX_PAYLOAD + 1;
    char *big = pw_xmalloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"a\":1,\"b\":2,\"c\":3}", 19);
    big[n] = '\0';
    assert_refused(&f, "tele/meter/SENSOR", big, PW_MQTT_FEED_E_SIZE);
    /* At the bound it is read. */
    double out[PW_LINES];
    assert_int_equal(pw_mqtt_feed_input(&f, "tele/meter/SENSOR", big, n - 1, T0, out),
                     PW_MQTT_FEED_READING);
    free(big);
    feed_plain(&f, 0);
    char num[PW_MQTT_FEED_MAX_PAYLOAD + 2];
    memset(num, '1', sizeof num - 1);
    num[sizeof num - 1] = '\0';
    assert_refused(&f, "ams/meter/l1/current", num, PW_MQTT_FEED_E_SIZE);
}

static void other_topics(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    feed_ams(&f);
    double out[PW_LINES];
    assert_int_equal(input(&f, "ams/other", AMS_LIST3, T0, out), PW_MQTT_FEED_E_TOPIC);
    assert_int_equal(input(&f, "", AMS_LIST3, T0, out), PW_MQTT_FEED_E_TOPIC);
    assert_int_equal(f.fresh, 0u);
}

static void init_refused(void **state)
{
    (void)state;
    pw_mqtt_feed f;
    pw_cfg_link l = link_topic("x");
    pw_cfg_meter_opts o = {.preset = "p1"};
    assert_int_equal(pw_mqtt_feed_init(&f, &l, &o), PW_MQTT_FEED_E_CONFIG);
    assert_true(strstr(f.note, "p1") != NULL);
    /* json without a path, plain without a topic, a json feed without a topic. */
    pw_cfg_meter_opts j = {.preset = "json"};
    assert_int_equal(pw_mqtt_feed_init(&f, &l, &j), PW_MQTT_FEED_E_CONFIG);
    pw_cfg_meter_opts p = {.preset = "plain"};
    assert_int_equal(pw_mqtt_feed_init(&f, &l, &p), PW_MQTT_FEED_E_CONFIG);
    pw_cfg_link none = link_topic("");
    pw_cfg_meter_opts a = {.preset = "ams"};
    assert_int_equal(pw_mqtt_feed_init(&f, &none, &a), PW_MQTT_FEED_E_CONFIG);
    /* plain with only L1 and L3 (a 3-wire meter): L2 is NaN in every reading. */
    pw_cfg_meter_opts it = {.preset = "plain", .derive_l2 = true};
    pw_strlcpy(it.topics[0], "m/l1", sizeof it.topics[0]);
    pw_strlcpy(it.topics[2], "m/l3", sizeof it.topics[2]);
    assert_int_equal(pw_mqtt_feed_init(&f, &l, &it), 0);
    double out[PW_LINES];
    assert_int_equal(input(&f, "m/l1", "5", T0, out), PW_MQTT_FEED_PARTIAL);
    assert_int_equal(input(&f, "m/l3", "6", T0, out), PW_MQTT_FEED_READING);
    assert_true(isnan(out[1]));
    assert_true(strcmp(pw_mqtt_feed_strerror(PW_MQTT_FEED_E_TYPE), "unknown") != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ams_reading),
        cmocka_unit_test(ams_messages_without_currents),
        cmocka_unit_test(ams_malformed),
        cmocka_unit_test(json_paths),
        cmocka_unit_test(json_line_not_reported),
        cmocka_unit_test(json_malformed),
        cmocka_unit_test(plain_joined),
        cmocka_unit_test(plain_window),
        cmocka_unit_test(plain_malformed),
        cmocka_unit_test(oversize),
        cmocka_unit_test(other_topics),
        cmocka_unit_test(init_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
