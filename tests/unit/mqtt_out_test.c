/* State out on MQTT, the pure half (mqtt/pw_mqtt_out.h): the change table in explicit time (a
 * changed value only, at most once a second per topic with the latest value, everything again
 * after a reconnect, a topic that left cleared once and forgotten, bounded memory); the topics
 * and values made from a state document; the Home Assistant discovery payloads (valid JSON, the
 * right device classes, units and unique ids, control entities only for commands that are on,
 * re-sent when Home Assistant comes back); and the command parser on every form it accepts and
 * refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_mqtt_out.h"
#include "pw_util.h"

#define T0 UINT64_C(1000000)

/* ---- helpers ---- */

typedef struct sent_msg {
    char topic[PW_MQTT_OUT_TOPIC_LEN];
    char value[PW_MQTT_OUT_VALUE_MAX + 1];
} sent_msg;

static sent_msg msgs[512];

/* Publishes everything due at now; returns how many went. */
static size_t drain(pw_mqtt_out_table *t, uint64_t now)
{
    size_t n = 0;
    const char *topic, *value;
    while (pw_mqtt_out_table_next(t, now, &topic, &value)) {
        assert_true(n < PW_ARRAY_LEN(msgs));
        pw_strlcpy(msgs[n].topic, topic, sizeof msgs[n].topic);
        pw_strlcpy(msgs[n].value, value, sizeof msgs[n].value);
        pw_mqtt_out_table_sent(t, now);
        n++;
    }
    return n;
}

static const char *sent_value(size_t n, const char *topic)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(msgs[i].topic, topic) == 0)
            return msgs[i].value;
    return NULL;
}

/* ---- the change table ---- */

static void table_changes_only(void **state)
{
    (void)state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_new(0);
    assert_int_equal(pw_mqtt_out_table_deadline(t), UINT64_MAX);
    assert_int_equal(pw_mqtt_out_table_set(t, "p/s/a", "1"), 0);
    assert_int_equal(pw_mqtt_out_table_set(t, "p/s/b", "x"), 0);
    assert_int_equal(pw_mqtt_out_table_deadline(t), 0);
    assert_int_equal(drain(t, T0), 2);
    assert_string_equal(sent_value(2, "p/s/a"), "1");
    /* The same value again is not a change. */
    pw_mqtt_out_table_set(t, "p/s/a", "1");
    assert_int_equal(drain(t, T0 + 5000), 0);
    assert_int_equal(pw_mqtt_out_table_pending(t), 0);
    assert_int_equal(pw_mqtt_out_table_deadline(t), UINT64_MAX);
    /* A change a while later goes at once. */
    pw_mqtt_out_table_set(t, "p/s/a", "2");
    assert_int_equal(drain(t, T0 + 5000), 1);
    assert_string_equal(msgs[0].value, "2");
    assert_string_equal(pw_mqtt_out_table_get(t, "p/s/a"), "2");
    assert_null(pw_mqtt_out_table_get(t, "p/s/none"));
    pw_mqtt_out_table_free(t);
}

static void table_once_a_second(void **state)
{
    (void)state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_new(0);
    pw_mqtt_out_table_set(t, "a", "1");
    assert_int_equal(drain(t, T0), 1);
    /* Changes within the second wait for it to end; only the latest goes. */
    pw_mqtt_out_table_set(t, "a", "2");
    pw_mqtt_out_table_set(t, "a", "3");
    pw_mqtt_out_table_set(t, "b", "new"); /* another topic is not held up */
    assert_int_equal(pw_mqtt_out_table_deadline(t), 0);
    assert_int_equal(drain(t, T0 + 300), 1);
    assert_string_equal(msgs[0].topic, "b");
    assert_int_equal(pw_mqtt_out_table_deadline(t), T0 + PW_MQTT_OUT_MIN_GAP_MS);
    assert_int_equal(drain(t, T0 + 999), 0);
    assert_int_equal(drain(t, T0 + 1000), 1);
    assert_string_equal(msgs[0].value, "3");
    /* Back to the first value within the next second: still one message, a second later. */
    pw_mqtt_out_table_set(t, "a", "4");
    pw_mqtt_out_table_set(t, "a", "3");
    assert_int_equal(drain(t, T0 + 1500), 0);
    assert_int_equal(drain(t, T0 + 2000), 1);
    assert_string_equal(msgs[0].value, "3");
    /* A value that flips 100 times a second goes out at most once a second for 10 s. */
    size_t sent = 0;
    for (uint64_t ms = 0; ms < 10000; ms += 10) {
        char v[16];
        snprintf(v, sizeof v, "%u", (unsigned)ms);
        pw_mqtt_out_table_set(t, "a", v);
        sent += drain(t, T0 + 3000 + ms);
    }
    assert_true(sent >= 9 && sent <= 10);
    pw_mqtt_out_table_free(t);
}

static void table_reconnect_and_resend(void **state)
{
    (void)state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_new(0);
    pw_mqtt_out_table_set(t, "p/a", "1");
    pw_mqtt_out_table_set(t, "p/b", "2");
    pw_mqtt_out_table_set(t, "ha/device/x/config", "{}");
    assert_int_equal(drain(t, T0), 3);
    /* A new connection: everything at once, even what went a moment ago. */
    pw_mqtt_out_table_reconnected(t);
    assert_int_equal(pw_mqtt_out_table_pending(t), 3);
    assert_int_equal(drain(t, T0 + 10), 3);
    /* Home Assistant came back: only the topics under the prefix, paced as usual. */
    pw_mqtt_out_table_resend(t, "ha/");
    assert_int_equal(drain(t, T0 + 20), 0);
    assert_int_equal(drain(t, T0 + 1010), 1);
    assert_string_equal(msgs[0].topic, "ha/device/x/config");
    pw_mqtt_out_table_free(t);
}

static void table_rounds_clear_what_left(void **state)
{
    (void)state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_new(0);
    pw_mqtt_out_table_round_begin(t);
    pw_mqtt_out_table_set(t, "c/1/x", "1");
    pw_mqtt_out_table_set(t, "c/2/x", "2");
    assert_int_equal(pw_mqtt_out_table_round_end(t), 0);
    assert_int_equal(drain(t, T0), 2);
    /* Charger 2 left: its topic is cleared with an empty payload once, then forgotten. */
    pw_mqtt_out_table_round_begin(t);
    pw_mqtt_out_table_set(t, "c/1/x", "1");
    assert_int_equal(pw_mqtt_out_table_round_end(t), 1);
    assert_null(pw_mqtt_out_table_get(t, "c/2/x"));
    assert_int_equal(drain(t, T0 + 5000), 1);
    assert_string_equal(msgs[0].topic, "c/2/x");
    assert_string_equal(msgs[0].value, "");
    assert_int_equal(pw_mqtt_out_table_count(t), 1);
    pw_mqtt_out_table_round_begin(t);
    pw_mqtt_out_table_set(t, "c/1/x", "1");
    assert_int_equal(pw_mqtt_out_table_round_end(t), 0);
    assert_int_equal(drain(t, T0 + 9000), 0);
    /* A topic that comes back before its clearing went out is sent with its value. */
    pw_mqtt_out_table_round_begin(t);
    assert_int_equal(pw_mqtt_out_table_round_end(t), 1);
    pw_mqtt_out_table_round_begin(t);
    pw_mqtt_out_table_set(t, "c/1/x", "1");
    pw_mqtt_out_table_round_end(t);
    assert_int_equal(drain(t, T0 + 20000), 1);
    assert_string_equal(msgs[0].value, "1");
    assert_int_equal(pw_mqtt_out_table_count(t), 1);
    pw_mqtt_out_table_free(t);
}

static void table_bounded(void **state)
{
    (void)state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_new(100);
    char topic[64];
    for (int i = 0; i < 100; i++) {
        snprintf(topic, sizeof topic, "t/%d", i);
        assert_int_equal(pw_mqtt_out_table_set(t, topic, "v"), 0);
    }
    assert_int_equal(pw_mqtt_out_table_set(t, "t/one-too-many", "v"), -1);
    assert_int_equal(pw_mqtt_out_table_set(t, "t/5", "changed"), 0); /* a kept one still can */
    char *big = pw_xmalloc(PW_MQTT_OUT_VALUE_MAX + 2);
    memset(big, 'x', PW_MQTT_OUT_VALUE_MAX + 1);
    big[PW_MQTT_OUT_VALUE_MAX + 1] = '\0';
    assert_int_equal(pw_mqtt_out_table_set(t, "t/5", big), -1);
    assert_string_equal(pw_mqtt_out_table_get(t, "t/5"), "changed");
    free(big);
    assert_int_equal(pw_mqtt_out_table_set(t, "", "v"), -1);
    assert_int_equal(pw_mqtt_out_table_count(t), 100);
    /* Many topics: the hash grows, every one is found. */
    pw_mqtt_out_table *big_t = pw_mqtt_out_table_new(0);
    for (int i = 0; i < 5000; i++) {
        snprintf(topic, sizeof topic, "x/%d", i);
        pw_mqtt_out_table_set(big_t, topic, topic);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(topic, sizeof topic, "x/%d", i);
        assert_string_equal(pw_mqtt_out_table_get(big_t, topic), topic);
    }
    pw_mqtt_out_table_free(big_t);
    pw_mqtt_out_table_free(t);
}

/* ---- state topics ---- */

static const char CONFIG[] =
    "{\"site\": \"Garage Nord 2\", \"grid\": \"TN\","
    " \"nodes\": [{\"id\": \"main\", \"name\": \"Main fuse\", \"limit_a\": 63,"
    "              \"meter\": {\"link\": {\"lan\": {\"device_id\": 9}}}},"
    "             {\"id\": \"garage-b\", \"name\": \"Garage B\", \"parent\": \"main\","
    "              \"limit_a\": 40}],"
    " \"chargers\": [{\"id\": \"b03\", \"name\": \"Garage B 03\", \"node\": \"garage-b\","
    "                 \"link\": {\"lan\": {\"device_id\": 1}}, \"min_a\": 6, \"max_a\": 16,"
    "                 \"priority\": 2},"
    "                {\"id\": \"b04\", \"name\": \"Garage B 04\", \"node\": \"garage-b\","
    "                 \"link\": {\"lan\": {\"device_id\": 2}}, \"min_a\": 6, \"max_a\": 32}]}";

static const char HEAD[] =
    "{\"type\": \"state\", \"version\": \"1.4.0\", \"site\": \"Garage Nord 2\","
    " \"nodes\": [{\"id\": \"main\", \"name\": \"Main fuse\", \"parent\": null,"
    "   \"limit_a\": [63, 63, 63], \"measured_a\": [20.04, 7.5, 0], \"planned_a\": [1, 2, 3],"
    "   \"headroom_a\": [41, -0.01, 63], \"meter\": {\"kind\": \"lan\", \"stale\": true}},"
    "  {\"id\": \"garage-b\", \"name\": \"Garage B\", \"parent\": \"main\","
    "   \"limit_a\": [40, 40, 40], \"measured_a\": [16, 0, 0], \"planned_a\": [16, 0, 0],"
    "   \"headroom_a\": [24, 40, 40]}],"
    " \"alerts\": [{\"level\": \"warn\", \"text\": \"meter of 'Main fuse' stale\"}]}";

static const char CHARGER[] =
    "{\"id\": \"b03\", \"name\": \"Garage B 03\", \"node\": \"garage-b\", \"online\": true,"
    " \"state\": \"C\", \"current_a\": [15.96, 0.04, 0], \"line_a\": [15.96, 0, 0],"
    " \"limit_a\": 16, \"phases\": 1, \"reason\": \"max\", \"reason_text\": \"at its maximum\","
    " \"model\": \"PW-CH1\"}";

static const char CHARGER_B04[] =
    "{\"id\": \"b04\", \"name\": \"Garage B 04\", \"online\": false, \"state\": \"?\","
    " \"current_a\": [0, 0, 0], \"limit_a\": null, \"phases\": 3, \"reason\": \"starting\","
    " \"reason_text\": \"phasewise started\","
    " \"ocpp\": {\"vendor\": \"Alfen BV\", \"model\": \"NG910\"},"
    " \"override\": {\"pause\": true, \"max_current_a\": 10}}";

typedef struct fixture {
    pw_cfg *cfg;
    pw_mqtt_out *o;
    pw_mqtt_out_opts opts;
} fixture;

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof *f);
    pw_cfg_errors errs;
    f->cfg = pw_cfg_parse(CONFIG, strlen(CONFIG), &errs);
    if (!f->cfg) {
        fprintf(stderr, "%s: %s\n", errs.items[0].field, errs.items[0].message);
        free(f);
        return -1;
    }
    pw_strlcpy(f->opts.base, "phasewise/garage-nord-2", sizeof f->opts.base);
    pw_strlcpy(f->opts.site, "garage-nord-2", sizeof f->opts.site);
    f->opts.home_assistant = true;
    pw_strlcpy(f->opts.discovery_prefix, "homeassistant", sizeof f->opts.discovery_prefix);
    pw_strlcpy(f->opts.version, "1.4.0", sizeof f->opts.version);
    f->o = pw_mqtt_out_new(&f->opts);
    pw_mqtt_out_set_config(f->o, NULL, f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pw_mqtt_out_free(f->o);
    pw_cfg_free(f->cfg);
    free(f);
    return 0;
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("test JSON: %s at %d", e.text, e.position);
    return j;
}

/* One whole document: head, both chargers (b03 with 1.234 kWh, b04 without a register). */
static void document(fixture *f, bool with_b04)
{
    json_t *head = load(HEAD), *c1 = load(CHARGER), *c2 = load(CHARGER_B04);
    pw_mqtt_out_head(f->o, head);
    pw_mqtt_out_charger(f->o, 0, c1, 1.234);
    if (with_b04)
        pw_mqtt_out_charger(f->o, 1, c2, NAN);
    pw_mqtt_out_end(f->o);
    json_decref(head);
    json_decref(c1);
    json_decref(c2);
}

static const char *val(fixture *f, const char *rest)
{
    char topic[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(topic, sizeof topic, "phasewise/garage-nord-2/%s", rest);
    const char *v = pw_mqtt_out_table_get(pw_mqtt_out_table_of(f->o), topic);
    if (!v)
        fail_msg("no topic %s", topic);
    return v;
}

static void state_values(void **state)
{
    fixture *f = *state;
    document(f, true);
    assert_string_equal(val(f, "status"), "online");
    assert_string_equal(val(f, "site/name"), "Garage Nord 2");
    assert_string_equal(val(f, "site/version"), "1.4.0");
    assert_string_equal(val(f, "site/alert_count"), "1");
    json_t *alerts = load(val(f, "site/alerts"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(alerts, 0), "text")),
                        "meter of 'Main fuse' stale");
    json_decref(alerts);
    assert_string_equal(val(f, "site/facility_limit"), "");
    assert_string_equal(val(f, "site/chargers_online"), "1");
    /* Nodes: one decimal, never "-0.0"; a stale meter says so, an unmetered node is not stale. */
    assert_string_equal(val(f, "node/main/name"), "Main fuse");
    assert_string_equal(val(f, "node/main/load_l1"), "20.0");
    assert_string_equal(val(f, "node/main/load_l2"), "7.5");
    assert_string_equal(val(f, "node/main/limit_l3"), "63.0");
    assert_string_equal(val(f, "node/main/headroom_l2"), "0.0");
    assert_string_equal(val(f, "node/main/meter_stale"), "true");
    assert_string_equal(val(f, "node/garage-b/meter_stale"), "false");
    /* Chargers. */
    assert_string_equal(val(f, "charger/b03/name"), "Garage B 03");
    assert_string_equal(val(f, "charger/b03/state"), "C");
    assert_string_equal(val(f, "charger/b03/online"), "true");
    assert_string_equal(val(f, "charger/b03/current_l1"), "16.0");
    assert_string_equal(val(f, "charger/b03/current_l2"), "0.0");
    assert_string_equal(val(f, "charger/b03/current"), "16.0");
    assert_string_equal(val(f, "charger/b03/limit"), "16.0");
    assert_string_equal(val(f, "charger/b03/phases"), "1");
    assert_string_equal(val(f, "charger/b03/reason"), "max");
    assert_string_equal(val(f, "charger/b03/reason_text"), "at its maximum");
    assert_string_equal(val(f, "charger/b03/session_energy"), "1.23");
    assert_string_equal(val(f, "charger/b03/override"), "");
    assert_string_equal(val(f, "charger/b03/paused"), "false");
    assert_string_equal(val(f, "charger/b03/priority"), "2");       /* the config's */
    assert_string_equal(val(f, "charger/b03/max_current"), "16.0"); /* the config's */
    /* Unknown values are empty; an override shows in force. */
    assert_string_equal(val(f, "charger/b04/limit"), "");
    assert_string_equal(val(f, "charger/b04/session_energy"), "");
    assert_string_equal(val(f, "charger/b04/online"), "false");
    assert_string_equal(val(f, "charger/b04/paused"), "true");
    assert_string_equal(val(f, "charger/b04/max_current"), "10.0");
    json_t *ov = load(val(f, "charger/b04/override"));
    assert_true(json_is_true(json_object_get(ov, "pause")));
    json_decref(ov);
}

static void state_facility_limit_and_removal(void **state)
{
    fixture *f = *state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_of(f->o);
    document(f, true);
    drain(t, T0);
    /* A facility limit in the document is published as JSON. */
    json_t *head = load(HEAD), *c1 = load(CHARGER), *c2 = load(CHARGER_B04);
    json_object_set_new(head, "facility_limit", load("{\"limit_a\": [32, 32, 32]}"));
    pw_mqtt_out_head(f->o, head);
    pw_mqtt_out_charger(f->o, 0, c1, 1.234);
    pw_mqtt_out_charger(f->o, 1, c2, NAN);
    pw_mqtt_out_end(f->o);
    json_decref(head);
    json_decref(c1);
    json_decref(c2);
    assert_string_equal(val(f, "site/facility_limit"), "{\"limit_a\":[32,32,32]}");
    assert_int_equal(drain(t, T0 + 2000), 1);
    /* The limit ended and b04 left the config: every topic of b04's own is cleared once,
     * b03's stay as they are. */
    document(f, false);
    size_t n = drain(t, T0 + 5000);
    size_t cleared = 0;
    for (size_t i = 0; i < n; i++) {
        if (strstr(msgs[i].topic, "/charger/b04/") ||
            strstr(msgs[i].topic, "phasewise_garage-nord-2_b04")) {
            assert_string_equal(msgs[i].value, "");
            cleared++;
        }
        assert_null(strstr(msgs[i].topic, "/charger/b03/name"));
    }
    assert_int_equal(cleared, 17); /* 16 state topics and the discovery payload */
    assert_string_equal(val(f, "site/facility_limit"), "");
    assert_string_equal(val(f, "charger/b03/name"), "Garage B 03");
    assert_int_equal(drain(t, T0 + 10000), 0);
}

/* ---- Home Assistant discovery ---- */

static json_t *discovery(fixture *f, const char *object_id)
{
    char topic[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(topic, sizeof topic, "homeassistant/device/%s/config", object_id);
    const char *v = pw_mqtt_out_table_get(pw_mqtt_out_table_of(f->o), topic);
    if (!v)
        fail_msg("no discovery topic %s", topic);
    return load(v);
}

static json_t *cmp(json_t *doc, const char *key)
{
    json_t *c = json_object_get(json_object_get(doc, "cmps"), key);
    if (!c)
        fail_msg("no component %s", key);
    return c;
}

static const char *s(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "(none)";
}

static void ha_charger_device(void **state)
{
    fixture *f = *state;
    document(f, true);
    json_t *d = discovery(f, "phasewise_garage-nord-2_b03");
    json_t *dev = json_object_get(d, "dev");
    assert_string_equal(s(dev, "name"), "Garage B 03");
    assert_string_equal(s(dev, "mdl"), "PW-CH1");
    assert_string_equal(s(dev, "via_device"), "phasewise_garage-nord-2");
    assert_string_equal(json_string_value(json_array_get(json_object_get(dev, "ids"), 0)),
                        "phasewise_garage-nord-2_b03");
    assert_string_equal(s(json_object_get(d, "o"), "name"), "phasewise");
    assert_string_equal(s(json_object_get(d, "o"), "sw"), "1.4.0");
    assert_string_equal(s(d, "availability_topic"), "phasewise/garage-nord-2/status");
    json_t *c = cmp(d, "current_l2");
    assert_string_equal(s(c, "p"), "sensor");
    assert_string_equal(s(c, "device_class"), "current");
    assert_string_equal(s(c, "unit_of_measurement"), "A");
    assert_string_equal(s(c, "unique_id"), "phasewise_garage-nord-2_b03_current_l2");
    assert_string_equal(s(c, "state_topic"), "phasewise/garage-nord-2/charger/b03/current_l2");
    assert_string_equal(s(c, "name"), "Current L2");
    c = cmp(d, "session_energy");
    assert_string_equal(s(c, "device_class"), "energy");
    assert_string_equal(s(c, "unit_of_measurement"), "kWh");
    assert_string_equal(s(c, "state_class"), "total_increasing");
    c = cmp(d, "online");
    assert_string_equal(s(c, "p"), "binary_sensor");
    assert_string_equal(s(c, "device_class"), "connectivity");
    assert_string_equal(s(c, "payload_on"), "true");
    c = cmp(d, "state");
    assert_string_equal(s(c, "device_class"), "enum");
    c = cmp(d, "reason");
    assert_string_equal(s(c, "device_class"), "enum");
    bool has_max = false, has_starting = false;
    size_t k;
    json_t *opt;
    json_array_foreach(json_object_get(c, "options"), k, opt)
    {
        has_max |= strcmp(json_string_value(opt), "max") == 0;
        has_starting |= strcmp(json_string_value(opt), "starting") == 0;
    }
    assert_true(has_max && has_starting);
    /* Every command off: no control entity. */
    assert_null(json_object_get(json_object_get(d, "cmps"), "pause"));
    assert_null(json_object_get(json_object_get(d, "cmps"), "max_current"));
    assert_null(json_object_get(json_object_get(d, "cmps"), "priority"));
    json_decref(d);
    /* An OCPP charger's vendor and model. */
    d = discovery(f, "phasewise_garage-nord-2_b04");
    assert_string_equal(s(json_object_get(d, "dev"), "mf"), "Alfen BV");
    assert_string_equal(s(json_object_get(d, "dev"), "mdl"), "NG910");
    json_decref(d);
}

static void ha_controls_when_on(void **state)
{
    fixture *f = *state;
    f->opts.commands = (pw_cfg_mqtt_commands){.pause = true, .max_current = true};
    pw_mqtt_out_set_config(f->o, &f->opts, f->cfg);
    document(f, true);
    json_t *d = discovery(f, "phasewise_garage-nord-2_b04");
    json_t *c = cmp(d, "pause");
    assert_string_equal(s(c, "p"), "switch");
    assert_string_equal(s(c, "command_topic"), "phasewise/garage-nord-2/charger/b04/pause/set");
    assert_string_equal(s(c, "state_topic"), "phasewise/garage-nord-2/charger/b04/paused");
    assert_string_equal(s(c, "state_on"), "true");
    c = cmp(d, "max_current");
    assert_string_equal(s(c, "p"), "number");
    assert_true(json_number_value(json_object_get(c, "min")) == 6);
    assert_true(json_number_value(json_object_get(c, "max")) == 32); /* b04's max_a */
    assert_string_equal(s(c, "command_topic"),
                        "phasewise/garage-nord-2/charger/b04/max_current/set");
    assert_null(json_object_get(json_object_get(d, "cmps"), "priority"));
    json_decref(d);
}

static void ha_site_and_nodes(void **state)
{
    fixture *f = *state;
    document(f, true);
    json_t *d = discovery(f, "phasewise_garage-nord-2");
    assert_string_equal(s(json_object_get(d, "dev"), "name"), "Garage Nord 2");
    assert_string_equal(s(cmp(d, "alert_count"), "unique_id"),
                        "phasewise_garage-nord-2_site_alert_count");
    assert_string_equal(s(cmp(d, "chargers_online"), "state_topic"),
                        "phasewise/garage-nord-2/site/chargers_online");
    json_decref(d);
    d = discovery(f, "phasewise_garage-nord-2_node_main");
    assert_string_equal(s(json_object_get(d, "dev"), "name"), "Main fuse");
    json_t *c = cmp(d, "meter_stale");
    assert_string_equal(s(c, "p"), "binary_sensor");
    assert_string_equal(s(c, "device_class"), "problem");
    assert_string_equal(s(cmp(d, "headroom_l3"), "unit_of_measurement"), "A");
    json_decref(d);
    /* An unmetered circuit has no meter to be stale. */
    d = discovery(f, "phasewise_garage-nord-2_node_garage-b");
    assert_null(json_object_get(json_object_get(d, "cmps"), "meter_stale"));
    json_decref(d);
}

static void ha_online_and_off(void **state)
{
    fixture *f = *state;
    pw_mqtt_out_table *t = pw_mqtt_out_table_of(f->o);
    document(f, true);
    size_t first = drain(t, T0);
    assert_true(first > 50);
    /* Home Assistant says "online": the five discovery payloads again, nothing else. */
    document(f, true);
    assert_int_equal(drain(t, T0 + 2000), 0);
    pw_mqtt_out_ha_online(f->o);
    size_t n = drain(t, T0 + 4000);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_non_null(strstr(msgs[i].topic, "homeassistant/device/"));
    /* Discovery turned off: its payloads are cleared at the end of the next document. */
    f->opts.home_assistant = false;
    pw_mqtt_out_set_config(f->o, &f->opts, f->cfg);
    document(f, true);
    n = drain(t, T0 + 8000);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(msgs[i].value, "");
    pw_mqtt_out_ha_online(f->o);
    assert_int_equal(drain(t, T0 + 12000), 0);
}

static void object_ids(void **state)
{
    (void)state;
    char out[32];
    pw_mqtt_out_object_id("a.b-c_d/é", out, sizeof out);
    assert_string_equal(out, "a_b-c_d___");
}

/* ---- commands ---- */

#define BASE "phasewise/site"

static pw_cfg_mqtt_commands all_on = {true, true, true, true};

static int parse(const pw_cfg_mqtt_commands *on, const char *topic, const char *payload,
                 bool retained, pw_command *cmd, char *err)
{
    return pw_mqtt_out_command_parse(BASE, on, topic, payload, strlen(payload), retained, cmd, err,
                                     256);
}

static void command_pause(void **state)
{
    (void)state;
    pw_command c;
    char err[256];
    static const char *const yes[] = {"true", "ON", "on", "1", " true\n"};
    static const char *const no[] = {"false", "OFF", "off", "0"};
    for (size_t i = 0; i < PW_ARRAY_LEN(yes); i++) {
        assert_int_equal(parse(&all_on, BASE "/charger/b03/pause/set", yes[i], false, &c, err), 0);
        assert_int_equal(c.kind, PW_CMD_PAUSE);
        assert_string_equal(c.charger, "b03");
        assert_true(c.pause);
    }
    for (size_t i = 0; i < PW_ARRAY_LEN(no); i++) {
        assert_int_equal(parse(&all_on, BASE "/charger/b03/pause/set", no[i], false, &c, err), 0);
        assert_false(c.pause);
    }
    static const char *const bad[] = {"", "yes", "True", "2", "true false", "{\"pause\":true}"};
    for (size_t i = 0; i < PW_ARRAY_LEN(bad); i++) {
        assert_int_equal(parse(&all_on, BASE "/charger/b03/pause/set", bad[i], false, &c, err),
                         PW_MQTT_CMD_E_PAYLOAD);
        assert_non_null(strstr(err, "true or false"));
    }
}

static void command_numbers(void **state)
{
    (void)state;
    pw_command c;
    char err[256];
    assert_int_equal(parse(&all_on, BASE "/charger/x.1/priority/set", "-5", false, &c, err), 0);
    assert_int_equal(c.kind, PW_CMD_PRIORITY);
    assert_int_equal(c.priority, -5);
    assert_false(c.clear);
    assert_int_equal(parse(&all_on, BASE "/charger/x.1/priority/set", "clear", false, &c, err), 0);
    assert_true(c.clear);
    static const char *const bad_prio[] = {"1.5", "101", "-101", "+3", "0x10", "3 ", "a", "--1"};
    for (size_t i = 0; i < PW_ARRAY_LEN(bad_prio); i++)
        if (strcmp(bad_prio[i], "3 ") != 0) /* white space around is trimmed */
            assert_int_equal(
                parse(&all_on, BASE "/charger/x/priority/set", bad_prio[i], false, &c, err),
                PW_MQTT_CMD_E_PAYLOAD);
    assert_int_equal(parse(&all_on, BASE "/charger/b03/max_current/set", "10.5", false, &c, err),
                     0);
    assert_int_equal(c.kind, PW_CMD_MAX_CURRENT);
    assert_true(c.max_a == 10.5);
    assert_int_equal(parse(&all_on, BASE "/charger/b03/max_current/set", "", false, &c, err), 0);
    assert_true(c.clear);
    static const char *const bad_a[] = {"nan", "inf", "-1", "1e9", "0x10", "16A", ".5", "1,5"};
    for (size_t i = 0; i < PW_ARRAY_LEN(bad_a); i++)
        assert_int_equal(
            parse(&all_on, BASE "/charger/b03/max_current/set", bad_a[i], false, &c, err),
            PW_MQTT_CMD_E_PAYLOAD);
}

static void command_facility_limit(void **state)
{
    (void)state;
    pw_command c;
    char err[256];
    const char *topic = BASE "/site/facility_limit/set";
    assert_int_equal(
        parse(&all_on, topic, "{\"limit_a\": 32, \"duration_s\": 900}", false, &c, err), 0);
    assert_int_equal(c.kind, PW_CMD_FACILITY_LIMIT);
    assert_true(c.limit_a[0] == 32 && c.limit_a[1] == 32 && c.limit_a[2] == 32);
    assert_int_equal(c.duration_s, 900);
    assert_int_equal(
        parse(&all_on, topic, "{\"duration_s\": 60, \"limit_a\": [32, 25.5, 0]}", false, &c, err),
        0);
    assert_true(c.limit_a[1] == 25.5 && c.limit_a[2] == 0);
    assert_int_equal(parse(&all_on, topic, "clear", false, &c, err), 0);
    assert_true(c.clear);
    static const char *const bad[] = {
        "",
        "32",
        "{\"limit_a\": 32}",
        "{\"limit_a\": 32, \"duration_s\": 0}",
        "{\"limit_a\": 32, \"duration_s\": 1.5}",
        "{\"limit_a\": 32, \"duration_s\": 900, \"x\": 1}",
        "{\"limit_a\": [32, 32], \"duration_s\": 900}",
        "{\"limit_a\": [32, 32, \"x\"], \"duration_s\": 900}",
        "{\"limit_a\": -1, \"duration_s\": 900}",
        "{\"limit_a\": 32, \"duration_s\": 900, \"limit_a\": 16}",
        "{\"limit_a\": 32, \"duration_s\": 99999999}",
        "[32, 900]",
    };
    for (size_t i = 0; i < PW_ARRAY_LEN(bad); i++) {
        assert_int_equal(parse(&all_on, topic, bad[i], false, &c, err), PW_MQTT_CMD_E_PAYLOAD);
        assert_true(err[0] != '\0');
    }
}

static void command_refused(void **state)
{
    (void)state;
    pw_command c;
    char err[256];
    pw_cfg_mqtt_commands only_prio = {.priority = true};
    /* Off: named, with the setting that turns it on. */
    assert_int_equal(parse(&only_prio, BASE "/charger/b03/pause/set", "true", false, &c, err),
                     PW_MQTT_CMD_E_OFF);
    assert_non_null(strstr(err, "mqtt.commands.pause"));
    assert_int_equal(parse(&only_prio, BASE "/site/facility_limit/set", "clear", false, &c, err),
                     PW_MQTT_CMD_E_OFF);
    /* Retained: never applied. */
    assert_int_equal(parse(&all_on, BASE "/charger/b03/pause/set", "true", true, &c, err),
                     PW_MQTT_CMD_E_RETAINED);
    /* Not ours. */
    static const char *const topics[] = {"phasewise/other/charger/b03/pause/set",
                                         BASE "/charger/b03/pause",
                                         BASE "/charger//pause/set",
                                         BASE "/charger/b 3/pause/set",
                                         BASE "/charger/b03/pause/set/x",
                                         BASE "/charger/b03/limit/set",
                                         BASE "/site/pause/set",
                                         BASE "x/charger/b03/pause/set",
                                         BASE
                                         "/charger/012345678901234567890123456789012/pause/set"};
    for (size_t i = 0; i < PW_ARRAY_LEN(topics); i++)
        assert_int_equal(parse(&all_on, topics[i], "true", false, &c, err), PW_MQTT_CMD_E_TOPIC);
    /* Too large, or a NUL inside. */
    char big[PW_MQTT_OUT_CMD_MAX + 2];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(parse(&all_on, BASE "/charger/b03/priority/set", big, false, &c, err),
                     PW_MQTT_CMD_E_SIZE);
    assert_int_equal(pw_mqtt_out_command_parse(BASE, &all_on, BASE "/charger/b03/pause/set", "1\0",
                                               2, false, &c, err, sizeof err),
                     PW_MQTT_CMD_E_PAYLOAD);
    assert_string_equal(pw_mqtt_out_command_reason(PW_MQTT_CMD_E_OFF), "off");
    assert_string_equal(pw_mqtt_out_command_reason(PW_MQTT_CMD_E_PAYLOAD), "payload");
}

static void command_filters_and_result(void **state)
{
    (void)state;
    char f[8][PW_MQTT_OUT_TOPIC_LEN];
    pw_cfg_mqtt_commands none = {0}, one = {.pause = true};
    assert_int_equal(pw_mqtt_out_command_filters(BASE, &none, f, 8), 0);
    assert_int_equal(pw_mqtt_out_command_filters(BASE, &one, f, 8), 4);
    assert_string_equal(f[0], BASE "/charger/+/pause/set");
    assert_string_equal(f[3], BASE "/site/facility_limit/set");
    char *r = pw_mqtt_out_command_result("t/x", "yes", 3, "pause takes true or false");
    json_t *j = load(r);
    assert_string_equal(s(j, "topic"), "t/x");
    assert_true(json_is_false(json_object_get(j, "ok")));
    assert_string_equal(s(j, "error"), "pause takes true or false");
    assert_string_equal(s(j, "payload"), "yes");
    json_decref(j);
    free(r);
    r = pw_mqtt_out_command_result("t/x", "\xff\xfe", 2, NULL); /* not UTF-8: not echoed */
    j = load(r);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_null(json_object_get(j, "payload"));
    assert_null(json_object_get(j, "error"));
    json_decref(j);
    free(r);
}

/* ---- the config: "mqtt": {"publish", "commands"} ---- */

static pw_cfg *parse_mqtt(const char *mqtt, pw_cfg_errors *errs)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"site\": \"S\", \"grid\": \"TN\", \"nodes\": [{\"id\": \"m\", "
             "\"limit_a\": 40}], \"chargers\": [{\"id\": \"c\", \"node\": \"m\", "
             "\"link\": {\"lan\": {\"device_id\": 1}}}], \"mqtt\": %s}",
             mqtt);
    return pw_cfg_parse(text, strlen(text), errs);
}

static bool has_error(const pw_cfg_errors *errs, const char *field)
{
    for (size_t i = 0; i < errs->count && i < PW_CFG_MAX_ERRORS; i++)
        if (strcmp(errs->items[i].field, field) == 0)
            return true;
    return false;
}

static void config_defaults_and_round_trip(void **state)
{
    (void)state;
    pw_cfg_errors errs;
    pw_cfg *cfg = parse_mqtt("{\"host\": \"\"}", &errs);
    assert_non_null(cfg);
    assert_false(cfg->mqtt_publish.enabled);
    assert_string_equal(cfg->mqtt_publish.prefix, "phasewise");
    assert_true(cfg->mqtt_publish.home_assistant);
    assert_string_equal(cfg->mqtt_publish.discovery_prefix, "homeassistant");
    assert_false(cfg->mqtt_commands.pause || cfg->mqtt_commands.priority ||
                 cfg->mqtt_commands.max_current || cfg->mqtt_commands.facility_limit);
    pw_cfg_free(cfg);
    cfg = parse_mqtt("{\"host\": \"b\", \"publish\": {\"enabled\": true, \"prefix\": "
                     "\"a/b\", \"home_assistant\": false, \"discovery_prefix\": \"ha\"}, "
                     "\"commands\": {\"pause\": true, \"facility_limit\": true}}",
                     &errs);
    assert_non_null(cfg);
    json_t *j = pw_cfg_to_json(cfg);
    pw_cfg *again = pw_cfg_from_json(j, &errs);
    json_decref(j);
    assert_non_null(again);
    assert_true(again->mqtt_publish.enabled);
    assert_string_equal(again->mqtt_publish.prefix, "a/b");
    assert_false(again->mqtt_publish.home_assistant);
    assert_string_equal(again->mqtt_publish.discovery_prefix, "ha");
    assert_true(again->mqtt_commands.pause && again->mqtt_commands.facility_limit);
    assert_false(again->mqtt_commands.priority || again->mqtt_commands.max_current);
    assert_string_equal(again->mqtt.host, "b");
    pw_cfg_free(again);
    pw_cfg_free(cfg);
}

static void config_refused(void **state)
{
    (void)state;
    static const struct {
        const char *mqtt, *field;
    } bad[] = {
        {"{\"host\": \"b\", \"publish\": {\"prefix\": \"a/+/b\"}}", "mqtt.publish.prefix"},
        {"{\"host\": \"b\", \"publish\": {\"prefix\": \"a/#\"}}", "mqtt.publish.prefix"},
        {"{\"host\": \"b\", \"publish\": {\"prefix\": \"\"}}", "mqtt.publish.prefix"},
        {"{\"host\": \"b\", \"publish\": {\"prefix\": \"/a\"}}", "mqtt.publish.prefix"},
        {"{\"host\": \"b\", \"publish\": {\"prefix\": \"a/\"}}", "mqtt.publish.prefix"},
        {"{\"host\": \"b\", \"publish\": {\"discovery_prefix\": \"h//a\"}}",
         "mqtt.publish.discovery_prefix"},
        {"{\"host\": \"\", \"publish\": {\"enabled\": true}}", "mqtt.publish.enabled"},
        {"{\"host\": \"b\", \"publish\": {\"x\": 1}}", "mqtt.publish.x"},
        {"{\"host\": \"b\", \"publish\": {\"enabled\": 1}}", "mqtt.publish.enabled"},
        {"{\"host\": \"b\", \"commands\": {\"pause\": true}}", "mqtt.commands"},
        {"{\"host\": \"b\", \"commands\": {\"reboot\": true}}", "mqtt.commands.reboot"},
        {"{\"host\": \"b\", \"commands\": []}", "mqtt.commands"},
    };
    for (size_t i = 0; i < PW_ARRAY_LEN(bad); i++) {
        pw_cfg_errors errs;
        pw_cfg *cfg = parse_mqtt(bad[i].mqtt, &errs);
        if (cfg || !has_error(&errs, bad[i].field))
            fail_msg("%s: expected an error on %s, got %s", bad[i].mqtt, bad[i].field,
                     cfg ? "none" : errs.items[0].field);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_changes_only),
        cmocka_unit_test(table_once_a_second),
        cmocka_unit_test(table_reconnect_and_resend),
        cmocka_unit_test(table_rounds_clear_what_left),
        cmocka_unit_test(table_bounded),
        cmocka_unit_test_setup_teardown(state_values, setup, teardown),
        cmocka_unit_test_setup_teardown(state_facility_limit_and_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(ha_charger_device, setup, teardown),
        cmocka_unit_test_setup_teardown(ha_controls_when_on, setup, teardown),
        cmocka_unit_test_setup_teardown(ha_site_and_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(ha_online_and_off, setup, teardown),
        cmocka_unit_test(object_ids),
        cmocka_unit_test(command_pause),
        cmocka_unit_test(command_numbers),
        cmocka_unit_test(command_facility_limit),
        cmocka_unit_test(command_refused),
        cmocka_unit_test(command_filters_and_result),
        cmocka_unit_test(config_defaults_and_round_trip),
        cmocka_unit_test(config_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
