/* Config module: the demo facility parses, every kind of bad input is reported against the field
 * it concerns, a saved config reads back identical, links in the new and the old form mean the
 * same, Modbus and MQTT meters and the broker are checked rule by rule, OCPP links, the ocpp
 * section, charge point passwords and tags likewise, restart-only changes are named, the
 * largest facility validates, and a node's static reserve and the status timing per charger
 * link kind are read, checked and written back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pw_cfg.h"

#define MINIMAL                                                                                    \
    "{\"grid\":\"TN\",\"nodes\":[{\"id\":\"main\",\"limit_a\":[63,63,50]}],"                       \
    "\"chargers\":[{\"id\":\"c1\",\"device_id\":7,\"node\":\"main\",\"wiring\":\"L2L3L1\"}]}"

/* Parses text expecting failure and returns whether some error names field and, if given,
 * mentions word in its message. */
static bool rejects(const char *text, const char *field, const char *word)
{
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_parse(text, strlen(text), &errs);
    if (cfg) {
        pw_cfg_free(cfg);
        return false;
    }
    for (size_t i = 0; i < errs.count && i < PW_CFG_MAX_ERRORS; i++)
        if (strcmp(errs.items[i].field, field) == 0 &&
            (!word || strstr(errs.items[i].message, word)))
            return true;
    char buf[4096];
    pw_cfg_errors_print(&errs, buf, sizeof buf);
    print_message("expected an error on %s, got:\n%s", field, buf);
    return false;
}

static void test_demo_parses(void **state)
{
    (void)state;
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_load(PW_SOURCE_DIR "/config/demo.json", &errs);
    if (!cfg) {
        char buf[4096];
        pw_cfg_errors_print(&errs, buf, sizeof buf);
        fail_msg("demo config rejected:\n%s", buf);
    }
    assert_true(cfg->n_chargers >= 12);
    assert_int_equal(cfg->n_nodes, 3);
    assert_int_equal(cfg->nodes[1].parent, 0);
    /* The main meter is the simulator's: a LAN meter gateway or, read over Modbus TCP, one of
     * its meter servers. */
    assert_true(cfg->nodes[0].metered);
    if (cfg->meters[0].kind == PW_CFG_LINK_MODBUS) {
        assert_true(cfg->meters[0].port > 0 && cfg->meters[0].unit > 0);
        assert_true(*cfg->meter_opts[0].map);
        assert_true(cfg->meter_opts[0].timeout_ms <= cfg->meter_opts[0].interval_ms);
    } else {
        assert_int_equal(cfg->meters[0].kind, PW_CFG_LINK_LAN);
        assert_int_equal(cfg->meters[0].device_id, 900);
    }
    assert_int_equal(cfg->meters[1].kind, PW_CFG_LINK_NONE);
    assert_int_equal(cfg->charger_links[0].kind, PW_CFG_LINK_LAN);
    assert_int_equal(cfg->charger_links[0].device_id, 1001);
    assert_string_equal(cfg->net.interface, "127.0.0.1");
    assert_int_equal(cfg->net.ttl, 1);
    pw_cfg_free(cfg);
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_parse(MINIMAL, strlen(MINIMAL), &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->chargers[0].wiring[0], 2);
    assert_int_equal(cfg->chargers[0].wiring[1], 3);
    assert_int_equal(cfg->chargers[0].wiring[2], 1);
    assert_true(cfg->chargers[0].min_a == 6);
    assert_true(cfg->nodes[0].limit_a[2] == 50);
    assert_string_equal(cfg->net.interface, "127.0.0.1"); /* never the LAN by default */
    assert_string_equal(cfg->http.addr, "127.0.0.1");
    pw_cfg_link seven = {.kind = PW_CFG_LINK_LAN, .device_id = 7};
    pw_cfg_link eight = {.kind = PW_CFG_LINK_LAN, .device_id = 8};
    pw_cfg_link defa7 = {.kind = PW_CFG_LINK_DEFA, .serial = "7"};
    assert_int_equal(pw_cfg_charger_by_link(cfg, &seven), 0);
    assert_int_equal(pw_cfg_charger_by_link(cfg, &eight), -1);
    assert_int_equal(pw_cfg_charger_by_link(cfg, &defa7), -1);
    pw_cfg_free(cfg);
}

static void test_field_errors(void **state)
{
    (void)state;
    assert_true(rejects("{", "(root)", "invalid JSON"));
    assert_true(rejects("[]", "(root)", NULL));
    assert_true(rejects("{\"grid\":\"XX\",\"nodes\":[{\"id\":\"m\",\"limit_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "grid", NULL));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limt_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "nodes[0].limt_a", "unknown"));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\"}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "nodes[0].limit_a", "required"));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limit_a\":[10,-1,10]}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "nodes[0].limit_a[1]", NULL));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limit_a\":10},"
                        "{\"id\":\"s\",\"parent\":\"nope\",\"limit_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "nodes[1].parent", "nope"));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limit_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\","
                        "\"wiring\":\"L1L1\"}]}",
                        "chargers[0].wiring", NULL));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limit_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\","
                        "\"min_a\":20,\"max_a\":16}]}",
                        "chargers[0].min_a", "max_a"));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limit_a\":100}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"},"
                        "{\"id\":\"d\",\"device_id\":1,\"node\":\"m\"}]}",
                        "chargers[1].device_id", "chargers[0]"));
    assert_true(rejects("{\"grid\":\"IT\",\"nodes\":[{\"id\":\"m\",\"limit_a\":100}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\","
                        "\"wiring\":\"L2\"}]}",
                        "chargers[0].wiring", "IT"));
    assert_true(rejects("{\"grid\":\"TN\",\"network\":{\"group\":\"10.0.0.1\"},"
                        "\"nodes\":[{\"id\":\"m\",\"limit_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "network.group", "multicast"));
    assert_true(rejects("{\"grid\":\"TN\",\"http\":{\"listen\":\"nowhere\"},"
                        "\"nodes\":[{\"id\":\"m\",\"limit_a\":10}],"
                        "\"chargers\":[{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}]}",
                        "http.listen", NULL));
    assert_true(rejects("{\"grid\":\"TN\",\"nodes\":[{\"id\":\"m\",\"limit_a\":10}],"
                        "\"chargers\":[]}",
                        "chargers", "non-empty"));
}

/* A facility from its node and charger arrays (JSON text without the brackets). */
static const char *facility(const char *nodes, const char *chargers)
{
    static char text[4096];
    int n = snprintf(text, sizeof text, "{\"grid\":\"TN\",\"nodes\":[%s],\"chargers\":[%s]}", nodes,
                     chargers);
    assert_true(n > 0 && (size_t)n < sizeof text);
    return text;
}

static pw_cfg *parse_ok(const char *text)
{
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_parse(text, strlen(text), &errs);
    if (!cfg) {
        char buf[4096];
        pw_cfg_errors_print(&errs, buf, sizeof buf);
        fail_msg("config rejected:\n%s", buf);
    }
    return cfg;
}

#define MAIN_NODE "{\"id\":\"m\",\"limit_a\":100}"
#define C1        "{\"id\":\"c\",\"device_id\":1,\"node\":\"m\"}"

/* The same facility with links in the new form and in the old keys. */
#define NEW_NODES                                                                                  \
    "{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":{\"lan\":{\"device_id\":900}},"             \
    "\"timeout_s\":10,\"fallback_a\":[30,30,20]}},"                                                \
    "{\"id\":\"a\",\"parent\":\"m\",\"limit_a\":50,"                                               \
    "\"meter\":{\"link\":{\"defa\":{\"serial\":\"ABC123\"}}}},"                                    \
    "{\"id\":\"b\",\"parent\":\"m\",\"limit_a\":40}"
#define NEW_CHARGERS                                                                               \
    "{\"id\":\"c1\",\"link\":{\"lan\":{\"device_id\":1001}},\"node\":\"a\"},"                      \
    "{\"id\":\"c2\",\"link\":{\"lan\":{\"device_id\":1002}},\"node\":\"b\"}"
#define OLD_NODES                                                                                  \
    "{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"device_id\":900,"                                  \
    "\"timeout_s\":10,\"fallback_a\":[30,30,20]}},"                                                \
    "{\"id\":\"a\",\"parent\":\"m\",\"limit_a\":50,\"meter\":{\"defa_serial\":\"ABC123\"}},"       \
    "{\"id\":\"b\",\"parent\":\"m\",\"limit_a\":40}"
#define OLD_CHARGERS                                                                               \
    "{\"id\":\"c1\",\"device_id\":1001,\"node\":\"a\"},"                                           \
    "{\"id\":\"c2\",\"device_id\":1002,\"node\":\"b\"}"

static void test_link_forms(void **state)
{
    (void)state;
    pw_cfg *a = parse_ok(facility(NEW_NODES, NEW_CHARGERS));
    pw_cfg *b = parse_ok(facility(OLD_NODES, OLD_CHARGERS));
    assert_int_equal(a->meters[0].kind, PW_CFG_LINK_LAN);
    assert_int_equal(a->meters[0].device_id, 900);
    assert_true(a->nodes[0].metered);
    assert_int_equal(a->nodes[0].meter_timeout_ms, 10000);
    assert_int_equal(a->meters[1].kind, PW_CFG_LINK_DEFA);
    assert_string_equal(a->meters[1].serial, "ABC123");
    assert_true(a->nodes[1].metered);
    assert_int_equal(a->meters[2].kind, PW_CFG_LINK_NONE);
    assert_false(a->nodes[2].metered);
    assert_int_equal(a->charger_links[1].kind, PW_CFG_LINK_LAN);
    assert_int_equal(a->charger_links[1].device_id, 1002);
    for (size_t i = 0; i < a->n_nodes; i++)
        assert_true(pw_cfg_link_equal(&a->meters[i], &b->meters[i]));
    for (size_t i = 0; i < a->n_chargers; i++)
        assert_true(pw_cfg_link_equal(&a->charger_links[i], &b->charger_links[i]));
    json_t *ja = pw_cfg_to_json(a), *jb = pw_cfg_to_json(b);
    assert_true(json_equal(ja, jb));
    json_decref(ja);
    json_decref(jb);
    pw_cfg_free(a);
    pw_cfg_free(b);
}

/* pw_cfg_to_json writes the link form, and that reads back to the same config. */
static void test_link_roundtrip(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(facility(OLD_NODES, OLD_CHARGERS));
    json_t *j = pw_cfg_to_json(cfg);
    json_t *ch = json_array_get(json_object_get(j, "chargers"), 0);
    assert_null(json_object_get(ch, "device_id"));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(ch, "link"), "lan"), "device_id")),
                     1001);
    json_t *m1 = json_object_get(json_array_get(json_object_get(j, "nodes"), 1), "meter");
    assert_null(json_object_get(m1, "defa_serial"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(m1, "link"), "defa"), "serial")),
                        "ABC123");
    assert_null(json_object_get(json_array_get(json_object_get(j, "nodes"), 2), "meter"));
    char *text = json_dumps(j, JSON_COMPACT);
    pw_cfg *back = parse_ok(text);
    json_t *j2 = pw_cfg_to_json(back);
    assert_true(json_equal(j, j2));
    free(text);
    json_decref(j);
    json_decref(j2);
    pw_cfg_free(back);
    pw_cfg_free(cfg);
}

static void test_link_errors(void **state)
{
    (void)state;
    /* Chargers. */
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"device_id\":1,"
                                            "\"link\":{\"lan\":{\"device_id\":1}},\"node\":\"m\"}"),
                        "chargers[0].device_id", "not both"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"node\":\"m\"}"), "chargers[0].link",
                        "required"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{},\"node\":\"m\"}"),
                        "chargers[0].link", "no kind"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":7,\"node\":\"m\"}"),
                        "chargers[0].link", "lan"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":{\"device_id\":1},"
                                            "\"defa\":{\"serial\":\"X\"}},\"node\":\"m\"}"),
                        "chargers[0].link", "2 kinds"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"wifi\":{\"ssid\":\"x\"}},"
                                            "\"node\":\"m\"}"),
                        "chargers[0].link.wifi", "unknown link kind"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"defa\":{\"serial\":\"X\"}},"
                                            "\"node\":\"m\"}"),
                        "chargers[0].link.defa", "meters only"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":{\"device_id\":1,"
                                            "\"port\":2}},\"node\":\"m\"}"),
                        "chargers[0].link.lan.port", "unknown"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":{}},\"node\":\"m\"}"),
                        "chargers[0].link.lan.device_id", "required"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":{\"device_id\":0}},"
                                            "\"node\":\"m\"}"),
                        "chargers[0].link.lan.device_id", "between"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":[1]},\"node\":\"m\"}"),
                        "chargers[0].link.lan", "object"));
    /* Meters. */
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"device_id\":9,"
                                 "\"link\":{\"lan\":{\"device_id\":9}}}}",
                                 C1),
                        "nodes[0].meter.device_id", "not both"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"defa_serial\":\"A\","
                                 "\"link\":{\"defa\":{\"serial\":\"A\"}}}}",
                                 C1),
                        "nodes[0].meter.defa_serial", "not both"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"defa_serial\":\"A\","
                                 "\"device_id\":9}}",
                                 C1),
                        "nodes[0].meter", "exactly one"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"timeout_s\":9}}", C1),
                        "nodes[0].meter.link", "required"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":{}}}", C1),
                        "nodes[0].meter.link", "no kind"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"zigbee\":{}}}}",
                                 C1),
                        "nodes[0].meter.link.zigbee", "lan, defa"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"defa\":{\"serial\":\"\"}}}}",
                                 C1),
                        "nodes[0].meter.link.defa.serial", "empty"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"defa\":{\"serial\":\"ABCDEFGHIJKL\"}}}}",
                                 C1),
                        "nodes[0].meter.link.defa.serial", "at most 11"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"defa\":{\"serial\":\"A\",\"id\":1}}}}",
                                 C1),
                        "nodes[0].meter.link.defa.id", "unknown"));
    assert_true(
        rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"defa_serial\":\"\"}}", C1),
                "nodes[0].meter.defa_serial", "empty"));
}

static void test_duplicates(void **state)
{
    (void)state;
    /* Charger links, new form, old form and both mixed: the field is where the file wrote it. */
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":{\"device_id\":5}},"
                                            "\"node\":\"m\"},"
                                            "{\"id\":\"d\",\"link\":{\"lan\":{\"device_id\":6}},"
                                            "\"node\":\"m\"},"
                                            "{\"id\":\"e\",\"link\":{\"lan\":{\"device_id\":5}},"
                                            "\"node\":\"m\"}"),
                        "chargers[2].link.lan.device_id", "lan device 5 is used by chargers[0]"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"device_id\":5,\"node\":\"m\"},"
                                            "{\"id\":\"d\",\"link\":{\"lan\":{\"device_id\":5}},"
                                            "\"node\":\"m\"}"),
                        "chargers[1].link.lan.device_id", "chargers[0]"));
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"lan\":{\"device_id\":5}},"
                                            "\"node\":\"m\"},"
                                            "{\"id\":\"d\",\"device_id\":5,\"node\":\"m\"}"),
                        "chargers[1].device_id", "chargers[0]"));
    /* Charger and node ids. */
    assert_true(rejects(facility(MAIN_NODE, C1 ",{\"id\":\"c\",\"device_id\":2,\"node\":\"m\"}"),
                        "chargers[1].id", "chargers[0]"));
    assert_true(rejects(facility(MAIN_NODE ",{\"id\":\"m\",\"parent\":\"m\",\"limit_a\":10}", C1),
                        "nodes[1].id", "nodes[0]"));
    /* LAN meters. */
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"lan\":{\"device_id\":900}}}},"
                                 "{\"id\":\"s\",\"parent\":\"m\",\"limit_a\":10,\"meter\":"
                                 "{\"link\":{\"lan\":{\"device_id\":900}}}}",
                                 C1),
                        "nodes[1].meter.link.lan.device_id", "the meter of nodes[0]"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"lan\":{\"device_id\":900}}}},"
                                 "{\"id\":\"s\",\"parent\":\"m\",\"limit_a\":10,\"meter\":"
                                 "{\"device_id\":900}}",
                                 C1),
                        "nodes[1].meter.device_id", "nodes[0]"));
    /* DEFA meters. */
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"defa\":{\"serial\":\"S1\"}}}},"
                                 "{\"id\":\"s\",\"parent\":\"m\",\"limit_a\":10,\"meter\":"
                                 "{\"link\":{\"defa\":{\"serial\":\"S1\"}}}}",
                                 C1),
                        "nodes[1].meter.link.defa.serial",
                        "defa meter S1 is the meter of nodes[0]"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"defa\":{\"serial\":\"S1\"}}}},"
                                 "{\"id\":\"s\",\"parent\":\"m\",\"limit_a\":10,\"meter\":"
                                 "{\"defa_serial\":\"S1\"}}",
                                 C1),
                        "nodes[1].meter.defa_serial", "nodes[0]"));
    /* A LAN meter answering to a charger's device id, in both forms. */
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                 "{\"lan\":{\"device_id\":1}}}}",
                                 C1),
                        "nodes[0].meter.link.lan.device_id", "chargers[0]"));
    assert_true(rejects(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"device_id\":1}}", C1),
                        "nodes[0].meter.device_id", "chargers[0]"));
    /* Different kinds never collide: DEFA serial "1" next to LAN device 1 is fine. */
    pw_cfg *cfg = parse_ok(facility("{\"id\":\"m\",\"limit_a\":100,\"meter\":{\"link\":"
                                    "{\"defa\":{\"serial\":\"1\"}}}}",
                                    C1));
    pw_cfg_free(cfg);
}

static void test_link_helpers(void **state)
{
    (void)state;
    pw_cfg_link lan = {.kind = PW_CFG_LINK_LAN, .device_id = 1001};
    pw_cfg_link defa = {.kind = PW_CFG_LINK_DEFA, .serial = "ABC123"};
    pw_cfg_link none = {.kind = PW_CFG_LINK_NONE};
    pw_cfg_link lan2 = lan, defa2 = defa;
    char text[48];
    assert_string_equal(pw_cfg_link_kind_name(PW_CFG_LINK_LAN), "lan");
    assert_string_equal(pw_cfg_link_kind_name(PW_CFG_LINK_DEFA), "defa");
    assert_string_equal(pw_cfg_link_kind_name(PW_CFG_LINK_NONE), "");
    pw_cfg_link_format(&lan, text, sizeof text);
    assert_string_equal(text, "lan device 1001");
    pw_cfg_link_format(&defa, text, sizeof text);
    assert_string_equal(text, "defa meter ABC123");
    assert_true(pw_cfg_link_equal(&lan, &lan2));
    assert_true(pw_cfg_link_equal(&defa, &defa2));
    lan2.device_id = 1002;
    defa2.serial[0] = 'X';
    assert_false(pw_cfg_link_equal(&lan, &lan2));
    assert_false(pw_cfg_link_equal(&defa, &defa2));
    assert_false(pw_cfg_link_equal(&lan, &none));
    json_t *j = pw_cfg_link_to_json(&lan);
    json_t *want = json_pack("{s:{s:i}}", "lan", "device_id", 1001);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    j = pw_cfg_link_to_json(&defa);
    want = json_pack("{s:{s:s}}", "defa", "serial", "ABC123");
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    j = pw_cfg_link_to_json(&none);
    assert_true(json_is_null(j));
    json_decref(j);

    /* Modbus: host (any letter case), port and unit are the identity; MQTT: the topic. */
    pw_cfg_link mb = {.kind = PW_CFG_LINK_MODBUS, .host = "10.0.0.5", .port = 502, .unit = 3};
    pw_cfg_link mq = {.kind = PW_CFG_LINK_MQTT, .topic = "ams/meter"};
    pw_cfg_link mb2 = mb, mq2 = mq;
    assert_string_equal(pw_cfg_link_kind_name(PW_CFG_LINK_MODBUS), "modbus");
    assert_string_equal(pw_cfg_link_kind_name(PW_CFG_LINK_MQTT), "mqtt");
    pw_cfg_link_format(&mb, text, sizeof text);
    assert_string_equal(text, "modbus 10.0.0.5:502 unit 3");
    pw_cfg_link_format(&mq, text, sizeof text);
    assert_string_equal(text, "mqtt topic ams/meter");
    assert_true(pw_cfg_link_equal(&mb, &mb2));
    assert_true(pw_cfg_link_equal(&mq, &mq2));
    mb2.unit = 4;
    assert_false(pw_cfg_link_equal(&mb, &mb2));
    mb2 = mb;
    mb2.port = 503;
    assert_false(pw_cfg_link_equal(&mb, &mb2));
    mb2 = mb;
    strcpy(mb2.host, "10.0.0.6");
    assert_false(pw_cfg_link_equal(&mb, &mb2));
    pw_cfg_link gw1 = {.kind = PW_CFG_LINK_MODBUS, .host = "GW1", .port = 502, .unit = 1};
    pw_cfg_link gw1b = {.kind = PW_CFG_LINK_MODBUS, .host = "gw1", .port = 502, .unit = 1};
    assert_true(pw_cfg_link_equal(&gw1, &gw1b));
    strcpy(mq2.topic, "ams/Meter");
    assert_false(pw_cfg_link_equal(&mq, &mq2)); /* MQTT topics are case-sensitive */
    pw_cfg_link lan502 = {.kind = PW_CFG_LINK_LAN, .device_id = 0};
    pw_cfg_link mqtt_empty = {.kind = PW_CFG_LINK_MQTT};
    assert_false(pw_cfg_link_equal(&lan502, &mqtt_empty)); /* kinds never meet */
    j = pw_cfg_link_to_json(&mb);
    want = json_pack("{s:{s:s, s:i, s:i}}", "modbus", "host", "10.0.0.5", "port", 502, "unit", 3);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    j = pw_cfg_link_to_json(&mq);
    want = json_pack("{s:{s:s}}", "mqtt", "topic", "ams/meter");
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    /* The longest identity is cut, not overrun. */
    pw_cfg_link longest = {.kind = PW_CFG_LINK_MODBUS, .port = 65535, .unit = 247};
    memset(longest.host, 'h', sizeof longest.host - 1);
    char small[16];
    pw_cfg_link_format(&longest, small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* ---- Modbus and MQTT meters ---- */

/* JSON text from a test literal written with ' for " (readable nesting). Rotates four static
 * buffers so that a test can hold a few at once. */
static const char *J(const char *fmt, ...)
{
    static char bufs[4][8192];
    static size_t next;
    char *b = bufs[next++ % 4];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof bufs[0]);
    for (char *p = b; *p; p++)
        if (*p == '\'')
            *p = '"';
    return b;
}

#define BROKER ",'mqtt':{'host':'broker.local'}"

/* A facility on grid whose main node has the meter given (JSON with '), with top-level
 * members top (", 'mqtt': {...}" or ""). */
static const char *metered(const char *grid, const char *top, const char *meter)
{
    return J("{'grid':'%s'%s,'nodes':[{'id':'m','limit_a':100,'meter':%s}],"
             "'chargers':[{'id':'c','device_id':1,'node':'m'}]}",
             grid, top, meter);
}

/* The same with a main meter and a sub-panel meter, to test identities. */
static const char *two_meters(const char *top, const char *meter0, const char *meter1)
{
    return J("{'grid':'TN'%s,'nodes':[{'id':'m','limit_a':100,'meter':%s},"
             "{'id':'s','parent':'m','limit_a':50,'meter':%s}],"
             "'chargers':[{'id':'c','device_id':1,'node':'m'}]}",
             top, meter0, meter1);
}

/* A Modbus meter of main on a TN grid, its modbus body given (with '). */
static const char *modbus_meter(const char *body)
{
    return metered("TN", "", J("{'link':{'modbus':{%s}}}", body));
}

#define MB "nodes[0].meter.link.modbus."

static void test_modbus_meter(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(modbus_meter("'host':'10.0.0.5','port':502,'unit':3,'map':'sdm630',"
                                        "'interval_ms':1000,'timeout_ms':1000"));
    assert_int_equal(cfg->meters[0].kind, PW_CFG_LINK_MODBUS);
    assert_string_equal(cfg->meters[0].host, "10.0.0.5");
    assert_int_equal(cfg->meters[0].port, 502);
    assert_int_equal(cfg->meters[0].unit, 3);
    assert_string_equal(cfg->meter_opts[0].map, "sdm630");
    assert_int_equal(cfg->meter_opts[0].interval_ms, 1000);
    assert_int_equal(cfg->meter_opts[0].timeout_ms, 1000);
    assert_false(cfg->meter_opts[0].derive_l2);
    assert_true(cfg->nodes[0].metered);
    pw_cfg_free(cfg);

    /* Defaults: port 502, unit 1, 1 s polls, a timeout of 1 s or the interval if shorter. */
    cfg = parse_ok(modbus_meter("'host':'gw-1.site.local','map':'em340'"));
    assert_int_equal(cfg->meters[0].port, 502);
    assert_int_equal(cfg->meters[0].unit, 1);
    assert_int_equal(cfg->meter_opts[0].interval_ms, 1000);
    assert_int_equal(cfg->meter_opts[0].timeout_ms, 1000);
    pw_cfg_free(cfg);
    cfg = parse_ok(modbus_meter("'host':'GW1','map':'sunspec','interval_ms':500"));
    assert_int_equal(cfg->meter_opts[0].timeout_ms, 500);
    pw_cfg_free(cfg);
    cfg = parse_ok(modbus_meter("'host':'gw','map':'abb_b2x','interval_ms':5000,"
                                "'timeout_ms':3000,'port':1502,'unit':247"));
    assert_int_equal(cfg->meter_opts[0].timeout_ms, 3000);
    assert_int_equal(cfg->meters[0].port, 1502);
    assert_int_equal(cfg->meters[0].unit, 247);
    pw_cfg_free(cfg);
    /* Every map name is accepted, and the list ends. */
    size_t maps = 0;
    for (const char *name; (name = pw_cfg_modbus_map_name(maps)) != NULL; maps++) {
        if (strcmp(name, "generic") == 0)
            continue;
        if (strcmp(name, "sdm72v1") == 0) { /* no per-line currents: cannot measure a node */
            assert_true(rejects(modbus_meter("'host':'gw','map':'sdm72v1'"), MB "map",
                                "no per-line current"));
            continue;
        }
        cfg = parse_ok(modbus_meter(J("'host':'gw','map':'%s'", name)));
        assert_string_equal(cfg->meter_opts[0].map, name);
        pw_cfg_free(cfg);
    }
    assert_int_equal(maps, 9);
    assert_string_equal(pw_cfg_modbus_map_name(0), "sdm630");
    assert_string_equal(pw_cfg_modbus_map_name(8), "generic");

    /* Errors, each on its field. */
    assert_true(rejects(modbus_meter("'map':'sdm630'"), MB "host", "required"));
    static const char *const bad_hosts[] = {
        "10.0.0.256", "gw_1",
        "-gw",        "gw-",
        "a..b",       "",
        ".gw",        "gw.",
        "1.2.3",      "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++)
        assert_true(
            rejects(modbus_meter(J("'host':'%s','map':'sdm630'", bad_hosts[i])), MB "host", NULL));
    assert_true(rejects(modbus_meter("'host':'gw_1','map':'sdm630'"), MB "host", "host name"));
    assert_true(rejects(modbus_meter("'host':7,'map':'sdm630'"), MB "host", "string"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','port':0"), MB "port", "1"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','port':65536"), MB "port", NULL));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','unit':0"), MB "unit", "247"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','unit':248"), MB "unit", "247"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','unit':1.5"), MB "unit", "whole"));
    assert_true(rejects(modbus_meter("'host':'gw'"), MB "map", "required: one of sdm630"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm999'"), MB "map", "em24eth"));
    assert_true(rejects(modbus_meter("'host':'gw','map':3"), MB "map", "one of"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','interval_ms':199"),
                        MB "interval_ms", "200"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','interval_ms':60001"),
                        MB "interval_ms", "60000"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','timeout_ms':99"), MB "timeout_ms",
                        "100"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','interval_ms':20000,"
                                     "'timeout_ms':10001"),
                        MB "timeout_ms", "10000"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','timeout_ms':2000"),
                        MB "timeout_ms", "must not exceed interval_ms (1000 ms)"));
    assert_true(
        rejects(modbus_meter("'host':'gw','map':'sdm630','baud':9600"), MB "baud", "unknown"));
    assert_true(rejects(metered("TN", "", "{'link':{'modbus':'10.0.0.5'}}"),
                        "nodes[0].meter.link.modbus", "object"));
    /* Register settings belong to the generic map only. */
    assert_true(rejects(modbus_meter("'host':'gw','map':'sdm630','function':3"), MB "function",
                        "only for map \"generic\""));
    assert_true(rejects(modbus_meter("'host':'gw','map':'em24','lines':[null,null,null]"),
                        MB "lines", "generic"));
    assert_true(rejects(modbus_meter("'host':'gw','map':'em24','low_word_first':true"),
                        MB "low_word_first", "generic"));
    /* Only meters are read over Modbus. */
    assert_true(rejects(facility(MAIN_NODE, "{\"id\":\"c\",\"link\":{\"modbus\":"
                                            "{\"host\":\"gw\",\"map\":\"sdm630\"}},"
                                            "\"node\":\"m\"}"),
                        "chargers[0].link.modbus", "meters only"));
}

#define GENERIC(lines) "'host':'gw','map':'generic','lines':" lines

static void test_modbus_generic(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(
        modbus_meter("'host':'gw','map':'generic','function':3,'low_word_first':true,'lines':["
                     "{'address':6,'type':'f32'},{'address':8,'type':'u32'},"
                     "{'address':10,'type':'s32','scale':0.001}]"));
    const pw_cfg_meter_opts *o = &cfg->meter_opts[0];
    assert_int_equal(o->function, 3);
    assert_true(o->low_word_first);
    assert_true(o->line[0].present);
    assert_int_equal(o->line[0].address, 6);
    assert_int_equal(o->line[0].type, PW_CFG_REG_F32);
    assert_true(o->line[0].scale == 1);
    assert_true(o->line[1].present);
    assert_int_equal(o->line[1].type, PW_CFG_REG_U32);
    assert_int_equal(o->line[2].type, PW_CFG_REG_S32);
    assert_true(o->line[2].scale == 0.001);
    pw_cfg_free(cfg);
    /* Defaults: input registers, high word first. */
    cfg = parse_ok(modbus_meter(GENERIC("[{'address':0,'type':'u16'},{'address':65535,"
                                        "'type':'s16','scale':-0.1},{'address':2,'type':'u16'}]")));
    assert_int_equal(cfg->meter_opts[0].function, 4);
    assert_false(cfg->meter_opts[0].low_word_first);
    assert_int_equal(cfg->meter_opts[0].line[1].address, 65535);
    assert_true(cfg->meter_opts[0].line[1].scale == -0.1);
    pw_cfg_free(cfg);

    assert_true(rejects(modbus_meter("'host':'gw','map':'generic'"), MB "lines", "required"));
    assert_true(rejects(modbus_meter(GENERIC("{'address':1}")), MB "lines", "3 entries"));
    assert_true(rejects(modbus_meter(GENERIC("[null,null]")), MB "lines", "3 entries"));
    assert_true(rejects(modbus_meter(GENERIC("[null,null,null]")), MB "lines", "no line"));
    assert_true(rejects(modbus_meter(GENERIC("[7,null,null]")), MB "lines[0]", "or null"));
    assert_true(rejects(modbus_meter(GENERIC("[null,{'type':'f32'},null]")), MB "lines[1].address",
                        "required"));
    assert_true(rejects(modbus_meter(GENERIC("[null,{'address':65536,'type':'f32'},null]")),
                        MB "lines[1].address", "65535"));
    assert_true(rejects(modbus_meter(GENERIC("[null,null,{'address':-1,'type':'f32'}]")),
                        MB "lines[2].address", NULL));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':65535,'type':'f32'},null,null]")),
                        MB "lines[0].address", "two registers"));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1},null,null]")), MB "lines[0].type",
                        "required"));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1,'type':'f64'},null,null]")),
                        MB "lines[0].type", "u16"));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1,'type':'f32','scale':0},null,null]")),
                        MB "lines[0].scale", "other than 0"));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1,'type':'f32','scale':'x'},null,"
                                             "null]")),
                        MB "lines[0].scale", NULL));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1,'type':'f32','word':1},null,null]")),
                        MB "lines[0].word", "unknown"));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1,'type':'f32'},null,null],"
                                             "'function':6")),
                        MB "function", "3 (holding registers) or 4"));
    assert_true(rejects(modbus_meter(GENERIC("[{'address':1,'type':'f32'},null,null],"
                                             "'low_word_first':'yes'")),
                        MB "low_word_first", "true or false"));
}

static void test_modbus_identity(void **state)
{
    (void)state;
    const char *a = "{'link':{'modbus':{'host':'10.0.0.5','unit':3,'map':'sdm630'}}}";
    assert_true(rejects(two_meters("", a, a), "nodes[1].meter.link.modbus",
                        "modbus 10.0.0.5:502 unit 3 is the meter of nodes[0]"));
    /* The default port is port 502; host names in any letter case are one gateway. */
    assert_true(rejects(two_meters("", a,
                                   "{'link':{'modbus':{'host':'10.0.0.5','port':502,'unit':3,"
                                   "'map':'em340'}}}"),
                        "nodes[1].meter.link.modbus", "nodes[0]"));
    assert_true(rejects(two_meters("", "{'link':{'modbus':{'host':'GW','map':'em24'}}}",
                                   "{'link':{'modbus':{'host':'gw','map':'em24'}}}"),
                        "nodes[1].meter.link.modbus", "nodes[0]"));
    /* Another unit or port behind the same gateway is another meter. */
    pw_cfg *cfg = parse_ok(
        two_meters("", a, "{'link':{'modbus':{'host':'10.0.0.5','unit':4,'map':'sdm630'}}}"));
    pw_cfg_free(cfg);
    cfg = parse_ok(two_meters(
        "", a, "{'link':{'modbus':{'host':'10.0.0.5','port':503,'unit':3,'map':'sdm630'}}}"));
    pw_cfg_free(cfg);
}

#define MQ "nodes[0].meter.link.mqtt."

/* An MQTT meter of main on grid (broker configured), its mqtt body given (with '). */
static const char *mqtt_meter(const char *grid, const char *body)
{
    return metered(grid, BROKER, J("{'link':{'mqtt':{%s}}}", body));
}

static void test_mqtt_meter(void **state)
{
    (void)state;
    /* The AMS reader's JSON: one topic, the fields fixed by the preset. */
    pw_cfg *cfg = parse_ok(mqtt_meter("TN", "'preset':'ams','topic':'ams/meter'"));
    const pw_cfg_meter_opts *o = &cfg->meter_opts[0];
    assert_int_equal(cfg->meters[0].kind, PW_CFG_LINK_MQTT);
    assert_string_equal(cfg->meters[0].topic, "ams/meter");
    assert_string_equal(o->preset, "ams");
    assert_string_equal(o->paths[0], "data.I1");
    assert_string_equal(o->paths[1], "data.I2");
    assert_string_equal(o->paths[2], "data.I3");
    json_t *j = pw_cfg_to_json(cfg);
    json_t *want = json_pack("{s:{s:s, s:s}}", "mqtt", "preset", "ams", "topic", "ams/meter");
    json_t *meter = json_object_get(json_array_get(json_object_get(j, "nodes"), 0), "meter");
    assert_true(json_equal(json_object_get(meter, "link"), want));
    json_decref(want);
    json_decref(j);
    pw_cfg_free(cfg);

    /* JSON with a path per line; "" and null: the line is not reported, which only a 3-wire
     * IT meter may do, for L2. */
    cfg = parse_ok(metered("IT", BROKER,
                           "{'link':{'mqtt':{'preset':'json','topic':'p1/reading',"
                           "'paths':['current.l1',null,'phases.3.A_x']}},'derive_l2':true}"));
    o = &cfg->meter_opts[0];
    assert_string_equal(cfg->meters[0].topic, "p1/reading");
    assert_string_equal(o->paths[0], "current.l1");
    assert_string_equal(o->paths[1], "");
    assert_string_equal(o->paths[2], "phases.3.A_x");
    pw_cfg_free(cfg);
    assert_true(rejects(mqtt_meter("TN", "'preset':'json','topic':'t','paths':['','I2','']"),
                        MQ "paths", "L1 is not reported"));
    assert_true(rejects(mqtt_meter("IT", "'preset':'json','topic':'t','paths':['a',null,'c']"),
                        MQ "paths", "L2 is not reported"));

    /* One value per topic: the L1 topic is the identity. */
    cfg =
        parse_ok(mqtt_meter("TN", "'preset':'plain','topics':['meter/l1','meter/l2','meter/l3']"));
    o = &cfg->meter_opts[0];
    assert_string_equal(cfg->meters[0].topic, "meter/l1");
    assert_string_equal(o->topics[1], "meter/l2");
    assert_string_equal(o->topics[2], "meter/l3");
    pw_cfg_free(cfg);
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain','topics':['','meter/l2','meter/l3']"),
                        MQ "topics", "L1 is not reported"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain','topics':['a/1','a/2',null]"),
                        MQ "topics", "L3 is not reported"));

    /* Presets and their members. */
    assert_true(rejects(mqtt_meter("TN", "'topic':'t'"), MQ "preset", "required"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'xml','topic':'t'"), MQ "preset", "plain"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'ams'"), MQ "topic", "required"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'ams','topic':'t','paths':['a','b','c']"),
                        MQ "paths", "fixed by preset ams (data.I1"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'ams','topic':'t','topics':['a','b','c']"),
                        MQ "topics", "only for preset plain"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'json','topic':'t'"), MQ "paths", "required"));
    assert_true(
        rejects(mqtt_meter("TN", "'preset':'json','paths':['a','b','c']"), MQ "topic", "required"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain'"), MQ "topics", "required"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain','topic':'t','topics':['a','b','c']"),
                        MQ "topic", "topics"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain','topics':['a','b','c'],"
                                         "'paths':['a','b','c']"),
                        MQ "paths", "only for preset json"));
    assert_true(
        rejects(mqtt_meter("TN", "'preset':'ams','topic':'t','qos':1"), MQ "qos", "unknown"));
    assert_true(rejects(metered("TN", BROKER, "{'link':{'mqtt':'t'}}"), "nodes[0].meter.link.mqtt",
                        "object"));

    /* Topics: one topic of 1 to 127 characters, no wildcard. */
    assert_true(rejects(mqtt_meter("TN", "'preset':'ams','topic':''"), MQ "topic", "empty"));
    assert_true(
        rejects(mqtt_meter("TN", "'preset':'ams','topic':'ams/#'"), MQ "topic", "wildcards"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'json','topic':'a/+/b','paths':['x',null,"
                                         "null]"),
                        MQ "topic", "wildcards"));
    char long_topic[129];
    memset(long_topic, 't', 128);
    long_topic[128] = '\0';
    assert_true(rejects(mqtt_meter("TN", J("'preset':'ams','topic':'%s'", long_topic)), MQ "topic",
                        "at most 127"));
    long_topic[127] = '\0';
    cfg = parse_ok(mqtt_meter("TN", J("'preset':'ams','topic':'%s'", long_topic)));
    pw_cfg_free(cfg);
    /* A NUL inside a topic (JSON text refuses it already; a document built in code may not). */
    json_t *root = json_loads(mqtt_meter("TN", "'preset':'ams','topic':'x'"), 0, NULL);
    json_t *feed = json_object_get(
        json_object_get(
            json_object_get(
                json_object_get(json_array_get(json_object_get(root, "nodes"), 0), "meter"),
                "link"),
            "mqtt"),
        "topic");
    assert_int_equal(json_string_setn(feed, "a\0b", 3), 0);
    pw_cfg_errors errs;
    assert_null(pw_cfg_from_json(root, &errs));
    assert_string_equal(errs.items[0].field, MQ "topic");
    assert_non_null(strstr(errs.items[0].message, "NUL"));
    json_decref(root);
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain','topics':['m/+','b','c']"),
                        MQ "topics[0]", "wildcards"));
    assert_true(rejects(mqtt_meter("TN", J("'preset':'plain','topics':['a','%s','c']", "x#")),
                        MQ "topics[1]", "wildcards"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'plain','topics':['','',null]"), MQ "topics",
                        "no line"));
    assert_true(
        rejects(mqtt_meter("TN", "'preset':'plain','topics':['a','b']"), MQ "topics", "3 entries"));
    assert_true(
        rejects(mqtt_meter("TN", "'preset':'plain','topics':['a',2,'c']"), MQ "topics[1]", NULL));

    /* Paths: dotted, letters, digits and '_'. */
    static const char *const bad_paths[] = {"current..l1", ".a", "a.", "a-b", "a b", "a[0]", "ä"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++)
        assert_true(rejects(mqtt_meter("TN", J("'preset':'json','topic':'t','paths':['%s',"
                                               "'ok',null]",
                                               bad_paths[i])),
                            MQ "paths[0]", "dotted path"));
    char long_path[65];
    memset(long_path, 'p', 64);
    long_path[64] = '\0';
    assert_true(rejects(
        mqtt_meter("TN", J("'preset':'json','topic':'t','paths':[null,'%s',null]", long_path)),
        MQ "paths[1]", "at most 63"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'json','topic':'t','paths':[null,'',null]"),
                        MQ "paths", "no line"));
    assert_true(rejects(mqtt_meter("TN", "'preset':'json','topic':'t','paths':'a'"), MQ "paths",
                        "3 entries"));

    /* A feed needs the broker. */
    assert_true(rejects(metered("TN", "", "{'link':{'mqtt':{'preset':'ams','topic':'t'}}}"),
                        "nodes[0].meter.link.mqtt", "mqtt.host"));
    assert_true(rejects(
        metered("TN", ",'mqtt':{'host':''}", "{'link':{'mqtt':{'preset':'ams','topic':'t'}}}"),
        "nodes[0].meter.link.mqtt", "mqtt.host"));
    /* Only meters are MQTT feeds. */
    assert_true(rejects(J("{'grid':'TN'" BROKER ",'nodes':[{'id':'m','limit_a':100}],"
                          "'chargers':[{'id':'c','link':{'mqtt':{'topic':'x'}},'node':'m'}]}"),
                        "chargers[0].link.mqtt", "meters only"));
    assert_true(rejects(metered("TN", BROKER, "{'link':{'zigbee':{}}}"),
                        "nodes[0].meter.link.zigbee", "lan, defa, modbus, mqtt"));
}

static void test_mqtt_identity(void **state)
{
    (void)state;
    assert_true(rejects(two_meters(BROKER, "{'link':{'mqtt':{'preset':'ams','topic':'m/1'}}}",
                                   "{'link':{'mqtt':{'preset':'json','topic':'m/1',"
                                   "'paths':['a','b','c']}}}"),
                        "nodes[1].meter.link.mqtt.topic",
                        "mqtt topic m/1 is the meter of nodes[0]"));
    assert_true(rejects(two_meters(BROKER, "{'link':{'mqtt':{'preset':'ams','topic':'m/1'}}}",
                                   "{'link':{'mqtt':{'preset':'plain','topics':['m/1','y','x']}}}"),
                        "nodes[1].meter.link.mqtt.topics", "nodes[0]"));
    pw_cfg *cfg = parse_ok(two_meters(BROKER, "{'link':{'mqtt':{'preset':'ams','topic':'m/1'}}}",
                                      "{'link':{'mqtt':{'preset':'ams','topic':'m/2'}}}"));
    pw_cfg_free(cfg);
    /* An MQTT topic and a DEFA serial that read alike are different devices. */
    cfg = parse_ok(two_meters(BROKER, "{'link':{'mqtt':{'preset':'ams','topic':'S1'}}}",
                              "{'link':{'defa':{'serial':'S1'}}}"));
    pw_cfg_free(cfg);
}

#define DL "nodes[0].meter.derive_l2"

static void test_derive_l2(void **state)
{
    (void)state;
    /* A 3-wire IT meter that reports L1 and L3 only. */
    pw_cfg *cfg = parse_ok(metered(
        "IT", "",
        "{'link':{'modbus':{" GENERIC("[{'address':0,'type':'f32'},null,"
                                      "{'address':4,'type':'f32'}]") "}},'derive_l2':true}"));
    assert_true(cfg->meter_opts[0].derive_l2);
    pw_cfg_free(cfg);
    cfg = parse_ok(metered("IT", BROKER,
                           "{'derive_l2':true,'link':{'mqtt':{'preset':'plain','topics':['m/1',"
                           "'','m/3']}}}"));
    assert_true(cfg->meter_opts[0].derive_l2);
    pw_cfg_free(cfg);
    cfg = parse_ok(metered("IT", BROKER,
                           "{'link':{'mqtt':{'preset':'json','topic':'t','paths':['data.I1',null,"
                           "'data.I3']}},'derive_l2':true}"));
    assert_true(cfg->meter_opts[0].derive_l2);
    pw_cfg_free(cfg);
    /* false is allowed anywhere. */
    cfg = parse_ok(metered("TN", "", "{'link':{'lan':{'device_id':9}},'derive_l2':false}"));
    assert_false(cfg->meter_opts[0].derive_l2);
    pw_cfg_free(cfg);

    const char *generic_13 = "{'link':{'modbus':{" GENERIC(
        "[{'address':0,'type':'f32'},null,{'address':4,'type':'f32'}]") "}},'derive_l2':true}";
    assert_true(rejects(metered("TN", "", generic_13), DL, "only for an IT grid"));
    assert_true(rejects(metered("IT", "",
                                "{'link':{'modbus':{'host':'gw','map':'sdm630'}},"
                                "'derive_l2':true}"),
                        DL, "reports no L2"));
    assert_true(rejects(metered("IT", "", "{'link':{'lan':{'device_id':9}},'derive_l2':true}"), DL,
                        "reports no L2"));
    assert_true(
        rejects(metered("IT", "", "{'device_id':9,'derive_l2':true}"), DL, "reports no L2"));
    /* The AMS reader publishes an unmeasured I2 on 3-wire IT meters: derive_l2 ignores it. */
    pw_cfg *ams = parse_ok(
        metered("IT", BROKER, "{'link':{'mqtt':{'preset':'ams','topic':'t'}},'derive_l2':true}"));
    assert_true(ams->meter_opts[0].derive_l2);
    pw_cfg_free(ams);
    assert_true(rejects(
        metered("TN", BROKER, "{'link':{'mqtt':{'preset':'ams','topic':'t'}},'derive_l2':true}"),
        DL, "only for an IT grid"));
    assert_true(rejects(metered("IT", "",
                                "{'link':{'modbus':{" GENERIC(
                                    "[{'address':0,'type':'f32'},"
                                    "{'address':2,'type':'f32'},null]") "}},'derive_l2':true}"),
                        DL, "lines[1] is set"));
    assert_true(rejects(metered("IT", BROKER,
                                "{'link':{'mqtt':{'preset':'plain','topics':['a','b','c']}},"
                                "'derive_l2':true}"),
                        DL, "topics[1] is set"));
    assert_true(rejects(metered("IT", BROKER,
                                "{'link':{'mqtt':{'preset':'json','topic':'t','paths':['a','b',"
                                "null]}},'derive_l2':true}"),
                        DL, "paths[1] is set"));
    assert_true(rejects(metered("IT", "",
                                "{'link':{'modbus':{" GENERIC("[null,null,{'address':4,'type':"
                                                              "'f32'}]") "}},'derive_l2':true}"),
                        DL, "needs L1 and L3"));
    assert_true(rejects(metered("IT", "", "{'link':{'lan':{'device_id':9}},'derive_l2':1}"), DL,
                        "true or false"));
}

#define BR "mqtt."

/* A facility with a LAN main meter and the top-level members top (with '). */
static const char *with_top(const char *top)
{
    return J("{'grid':'TN',%s,'nodes':[{'id':'m','limit_a':100}],"
             "'chargers':[{'id':'c','device_id':1,'node':'m'}]}",
             top);
}

static void test_mqtt_broker(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(MINIMAL);
    assert_string_equal(cfg->mqtt.host, "");
    assert_int_equal(cfg->mqtt.port, 1883);
    assert_int_equal(cfg->mqtt.keepalive_s, 30);
    assert_false(cfg->mqtt.tls);
    pw_cfg_free(cfg);
    cfg = parse_ok(with_top("'mqtt':{'host':'10.0.0.9','username':'pw','password':'s3cret',"
                            "'client_id':'phasewise-a','keepalive_s':60}"));
    assert_string_equal(cfg->mqtt.host, "10.0.0.9");
    assert_int_equal(cfg->mqtt.port, 1883);
    assert_string_equal(cfg->mqtt.username, "pw");
    assert_string_equal(cfg->mqtt.password, "s3cret");
    assert_string_equal(cfg->mqtt.client_id, "phasewise-a");
    assert_int_equal(cfg->mqtt.keepalive_s, 60);
    pw_cfg_free(cfg);
    /* TLS moves the default port to 8883; a port given stays. */
    cfg = parse_ok(with_top("'mqtt':{'host':'broker','tls':true,'ca_file':'/etc/ca.pem'}"));
    assert_int_equal(cfg->mqtt.port, 8883);
    assert_true(cfg->mqtt.tls);
    assert_string_equal(cfg->mqtt.ca_file, "/etc/ca.pem");
    pw_cfg_free(cfg);
    cfg = parse_ok(with_top("'mqtt':{'port':1883,'host':'broker','tls':true}"));
    assert_int_equal(cfg->mqtt.port, 1883);
    pw_cfg_free(cfg);

    assert_true(rejects(with_top("'mqtt':{'host':'bro ker'}"), BR "host", "host name"));
    assert_true(rejects(with_top("'mqtt':{'host':'300.1.1.1'}"), BR "host", NULL));
    assert_true(rejects(with_top("'mqtt':{'host':'b','port':0}"), BR "port", NULL));
    assert_true(rejects(with_top("'mqtt':{'host':'b','keepalive_s':4}"), BR "keepalive_s", "5"));
    assert_true(
        rejects(with_top("'mqtt':{'host':'b','keepalive_s':601}"), BR "keepalive_s", "600"));
    assert_true(
        rejects(with_top("'mqtt':{'host':'b','password':'x'}"), BR "password", "needs a username"));
    assert_true(rejects(with_top("'mqtt':{'host':'b','ca_file':'ca.pem'}"), BR "ca_file", "tls"));
    /* A client certificate: with its key, and only over TLS. */
    cfg = parse_ok(with_top("'mqtt':{'host':'b','tls':true,'cert_file':'/etc/c.pem',"
                            "'key_file':'/etc/c.key'}"));
    assert_string_equal(cfg->mqtt.cert_file, "/etc/c.pem");
    assert_string_equal(cfg->mqtt.key_file, "/etc/c.key");
    pw_cfg_free(cfg);
    assert_true(rejects(with_top("'mqtt':{'host':'b','tls':true,'cert_file':'c.pem'}"),
                        BR "key_file", "together with cert_file"));
    assert_true(rejects(with_top("'mqtt':{'host':'b','tls':true,'key_file':'c.key'}"),
                        BR "cert_file", "together with key_file"));
    assert_true(rejects(with_top("'mqtt':{'host':'b','tls':true,'cert_file':'c.pem',"
                                 "'key_file':''}"),
                        BR "key_file", "together"));
    assert_true(rejects(with_top("'mqtt':{'host':'b','cert_file':'c.pem','key_file':'c.key'}"),
                        BR "cert_file", "tls"));
    assert_true(
        rejects(with_top("'mqtt':{'host':'b','client_id':'a b'}"), BR "client_id", "letters"));
    assert_true(rejects(with_top("'mqtt':{'host':'b','tls':'yes'}"), BR "tls", "true or false"));
    assert_true(rejects(with_top("'mqtt':{'host':'b','qos':1}"), BR "qos", "unknown"));
    assert_true(rejects(with_top("'mqtt':'broker'"), "mqtt", "object"));
    char user[65];
    memset(user, 'u', 64);
    user[64] = '\0';
    assert_true(rejects(with_top(J("'mqtt':{'host':'b','username':'%s'}", user)), BR "username",
                        "at most 63"));
}

/* Every meter kind and the broker, written back and read again. */
static void test_meter_roundtrip(void **state)
{
    (void)state;
    const char *text =
        J("{'grid':'IT','mqtt':{'host':'broker.local','port':8883,'tls':true,'username':'u',"
          "'password':'p w','ca_file':'ca.pem','client_id':'pw1','keepalive_s':45,"
          "'cert_file':'/etc/pw/c.pem','key_file':'/etc/pw/c.key'},"
          "'nodes':[{'id':'m','limit_a':100,'meter':{'link':{'modbus':{'host':'10.0.0.5',"
          "'unit':3,'map':'sdm630','interval_ms':2000,'timeout_ms':1500}}}},"
          "{'id':'a','parent':'m','limit_a':50,'meter':{'derive_l2':true,'link':{'modbus':{"
          "'host':'gw2','map':'generic','function':3,'low_word_first':true,'lines':["
          "{'address':6,'type':'f32','scale':0.5},null,{'address':65534,'type':'u32',"
          "'scale':0.001}]}}}},"
          "{'id':'b','parent':'m','limit_a':40,'meter':{'link':{'mqtt':{'preset':'ams',"
          "'topic':'ams/main'}}}},"
          "{'id':'d','parent':'m','limit_a':40,'meter':{'derive_l2':true,'link':{'mqtt':{"
          "'preset':'json','topic':'p1','paths':['c.l1','','c.l3']}}}},"
          "{'id':'e','parent':'m','limit_a':40,'meter':{'link':{'mqtt':{'preset':'plain',"
          "'topics':['e/1','e/2','e/3']}}}},"
          "{'id':'f','parent':'m','limit_a':40,'meter':{'link':{'defa':{'serial':'S1'}}}},"
          "{'id':'g','parent':'m','limit_a':40}],"
          "'chargers':[{'id':'c','link':{'lan':{'device_id':1}},'node':'a'}]}");
    pw_cfg *cfg = parse_ok(text);
    json_t *j = pw_cfg_to_json(cfg);
    char *dumped = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    pw_cfg *back = parse_ok(dumped);
    json_t *j2 = pw_cfg_to_json(back);
    assert_true(json_equal(j, j2));
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        assert_true(pw_cfg_link_equal(&cfg->meters[i], &back->meters[i]));
        assert_memory_equal(&cfg->meter_opts[i], &back->meter_opts[i], sizeof cfg->meter_opts[i]);
    }
    assert_memory_equal(&cfg->mqtt, &back->mqtt, sizeof cfg->mqtt);
    assert_string_equal(back->mqtt.key_file, "/etc/pw/c.key");
    /* What the file looks like. */
    json_t *nodes = json_object_get(j, "nodes");
    json_t *want =
        json_pack("{s:{s:s, s:i, s:i, s:s, s:i, s:i}}", "modbus", "host", "10.0.0.5", "port", 502,
                  "unit", 3, "map", "sdm630", "interval_ms", 2000, "timeout_ms", 1500);
    assert_true(json_equal(
        json_object_get(json_object_get(json_array_get(nodes, 0), "meter"), "link"), want));
    json_decref(want);
    json_t *lines = json_object_get(
        json_object_get(json_object_get(json_object_get(json_array_get(nodes, 1), "meter"), "link"),
                        "modbus"),
        "lines");
    assert_true(json_is_null(json_array_get(lines, 1)));
    assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 2), "type")),
                        "u32");
    json_t *paths = json_object_get(
        json_object_get(json_object_get(json_object_get(json_array_get(nodes, 3), "meter"), "link"),
                        "mqtt"),
        "paths");
    assert_true(json_is_null(json_array_get(paths, 1)));
    assert_true(json_is_true(
        json_object_get(json_object_get(json_array_get(nodes, 3), "meter"), "derive_l2")));
    json_t *broker = json_object_get(j, "mqtt");
    assert_string_equal(json_string_value(json_object_get(broker, "password")), "p w");
    assert_int_equal(json_integer_value(json_object_get(broker, "port")), 8883);
    free(dumped);
    json_decref(j);
    json_decref(j2);
    pw_cfg_free(back);
    pw_cfg_free(cfg);
}

/* The demo config with one change made by edit; NULL edit: unchanged. */
static pw_cfg *demo_with(void (*edit)(json_t *root))
{
    json_error_t jerr;
    json_t *root = json_load_file(PW_SOURCE_DIR "/config/demo.json", 0, &jerr);
    assert_non_null(root);
    if (edit)
        edit(root);
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_from_json(root, &errs);
    json_decref(root);
    assert_non_null(cfg);
    return cfg;
}

static json_t *section_of(json_t *root, const char *key)
{
    if (!json_object_get(root, key))
        json_object_set_new(root, key, json_object());
    return json_object_get(root, key);
}

static void edit_chargers(json_t *root)
{
    json_t *ch = json_object_get(root, "chargers");
    json_object_set_new(json_array_get(ch, 0), "max_a", json_integer(10));
    json_array_remove(ch, 1);
    json_object_set_new(root, "site", json_string("Renamed"));
    json_object_set_new(section_of(root, "balancer"), "reaction_s", json_integer(7));
    json_object_set_new(section_of(root, "network"), "interface", json_string("127.0.0.2"));
    json_object_set_new(section_of(root, "http"), "dashboard_login", json_true());
}

static void edit_port(json_t *root)
{
    json_object_set_new(section_of(root, "network"), "port", json_integer(48999));
}

static void edit_all_restart(json_t *root)
{
    json_t *net = section_of(root, "network"), *http = section_of(root, "http");
    json_object_set_new(net, "group", json_string("239.255.80.88"));
    json_object_set_new(net, "port", json_integer(48999));
    json_object_set_new(net, "ttl", json_integer(2));
    json_object_set_new(net, "key_file", json_string("other.key"));
    json_object_set_new(net, "defa_meters", json_true());
    json_object_set_new(net, "defa_emit", json_true());
    json_object_set_new(http, "listen", json_string("127.0.0.1:8443"));
    json_object_set_new(
        http, "tls",
        json_pack("{s:b, s:s, s:s}", "enabled", 1, "cert_file", "c.pem", "key_file", "k.pem"));
    json_object_set_new(root, "mqtt",
                        json_pack("{s:s, s:i, s:b, s:s, s:s, s:s, s:s, s:s, s:s}", "host", "broker",
                                  "port", 8884, "tls", 1, "ca_file", "ca.pem", "username", "u",
                                  "password", "p", "client_id", "pw2", "cert_file", "c.pem",
                                  "key_file", "c.key"));
    json_object_set_new(root, "ocpp", json_pack("{s:s, s:b}", "listen", "0.0.0.0:8887", "tls", 1));
}

/* OCPP turned on: its listener waits for a restart. */
/* The demo without OCPP: its OCPP chargers on the LAN protocol, no central system. */
static void edit_ocpp_off(json_t *root)
{
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(root, "chargers"), i,
                       ch) if (json_object_get(json_object_get(ch, "link"), "ocpp"))
        json_object_set_new(ch, "link",
                            json_pack("{s:{s:I}}", "lan", "device_id", (json_int_t)(3000 + i)));
    json_object_del(root, "ocpp");
}

static void edit_ocpp_on(json_t *root)
{
    edit_ocpp_off(root);
    json_object_set_new(root, "ocpp", json_object());
}

/* OCPP on, with everything that applies at once changed against edit_ocpp_on. */
static void edit_ocpp_live(json_t *root)
{
    json_object_set_new(root, "ocpp",
                        json_pack("{s:i, s:i, s:i, s:i, s:s, s:[{s:s, s:s}]}", "meter_interval_s",
                                  30, "heartbeat_s", 600, "min_interval_s", 20, "daily_writes", 100,
                                  "authorize", "local_list", "charge_points", "id", "CP-1",
                                  "quirks", "stack0"));
    json_object_set_new(root, "tags", json_pack("[{s:s, s:s}]", "id", "AB12", "name", "Anna"));
}

static void edit_ocpp_port(json_t *root)
{
    json_object_set_new(root, "ocpp", json_pack("{s:s}", "listen", "127.0.0.1:8900"));
}

/* Modbus and MQTT meters, the MQTT keepalive: applied at once. */
static void edit_meters_live(json_t *root)
{
    json_t *main_node = json_array_get(json_object_get(root, "nodes"), 0);
    json_object_set_new(
        main_node, "meter",
        json_pack("{s:{s:{s:s, s:s}}}", "link", "modbus", "host", "10.0.0.5", "map", "sdm630"));
    json_object_set_new(section_of(root, "mqtt"), "keepalive_s", json_integer(90));
}

static void edit_defa_meters(json_t *root)
{
    json_object_set_new(section_of(root, "network"), "defa_meters", json_true());
}

static void edit_defa_emit(json_t *root)
{
    json_object_set_new(section_of(root, "network"), "defa_emit", json_true());
}

static void test_restart_fields(void **state)
{
    (void)state;
    const char *out[PW_CFG_RESTART_FIELDS_MAX];
    pw_cfg *base = demo_with(NULL);
    pw_cfg *same = demo_with(NULL);
    assert_int_equal(pw_cfg_restart_fields(base, same, out, PW_CFG_RESTART_FIELDS_MAX), 0);

    pw_cfg *chargers = demo_with(edit_chargers); /* all of it applies at once */
    assert_int_equal(pw_cfg_restart_fields(base, chargers, out, PW_CFG_RESTART_FIELDS_MAX), 0);

    pw_cfg *port = demo_with(edit_port);
    assert_int_equal(pw_cfg_restart_fields(base, port, out, PW_CFG_RESTART_FIELDS_MAX), 1);
    assert_string_equal(out[0], "network.port");

    pw_cfg *all = demo_with(edit_all_restart);
    static const char *const want[] = {
        "network.group",     "network.port",        "network.ttl",
        "network.key_file",  "network.defa_meters", "network.defa_emit",
        "http.listen",       "http.tls.enabled",    "http.tls.cert_file",
        "http.tls.key_file", "mqtt.host",           "mqtt.port",
        "mqtt.tls",          "mqtt.ca_file",        "mqtt.username",
        "mqtt.password",     "mqtt.client_id",      "mqtt.cert_file",
        "mqtt.key_file",     "ocpp.listen",         "ocpp.tls",
    };
    _Static_assert(sizeof want / sizeof want[0] == PW_CFG_RESTART_FIELDS_MAX, "every field");
    assert_int_equal(pw_cfg_restart_fields(base, all, out, PW_CFG_RESTART_FIELDS_MAX),
                     PW_CFG_RESTART_FIELDS_MAX);
    for (size_t i = 0; i < PW_CFG_RESTART_FIELDS_MAX; i++)
        assert_string_equal(out[i], want[i]);
    assert_int_equal(pw_cfg_restart_fields(all, base, out, 2), 2); /* cut at max */
    assert_string_equal(out[1], "network.port");

    /* DEFA frames: only turning them on or off as a whole waits for a restart. */
    pw_cfg *meters = demo_with(edit_defa_meters), *emit = demo_with(edit_defa_emit);
    assert_int_equal(pw_cfg_restart_fields(base, meters, out, PW_CFG_RESTART_FIELDS_MAX), 1);
    assert_string_equal(out[0], "network.defa_meters");
    assert_int_equal(pw_cfg_restart_fields(meters, emit, out, PW_CFG_RESTART_FIELDS_MAX), 0);
    assert_int_equal(pw_cfg_restart_fields(emit, base, out, PW_CFG_RESTART_FIELDS_MAX), 1);
    assert_string_equal(out[0], "network.defa_emit");

    pw_cfg *live = demo_with(edit_meters_live);
    assert_int_equal(pw_cfg_restart_fields(base, live, out, PW_CFG_RESTART_FIELDS_MAX), 0);

    /* OCPP: turning it on or off and moving its port wait; charge points, intervals, the write
     * budget, authorization and tags apply at once. */
    pw_cfg *ocpp_off = demo_with(edit_ocpp_off), *ocpp_on = demo_with(edit_ocpp_on);
    pw_cfg *ocpp_live = demo_with(edit_ocpp_live), *ocpp_port = demo_with(edit_ocpp_port);
    assert_int_equal(pw_cfg_restart_fields(ocpp_off, ocpp_on, out, PW_CFG_RESTART_FIELDS_MAX), 1);
    assert_string_equal(out[0], "ocpp.listen");
    assert_int_equal(pw_cfg_restart_fields(ocpp_on, ocpp_off, out, PW_CFG_RESTART_FIELDS_MAX), 1);
    assert_string_equal(out[0], "ocpp.listen");
    assert_int_equal(pw_cfg_restart_fields(ocpp_on, ocpp_live, out, PW_CFG_RESTART_FIELDS_MAX), 0);
    assert_int_equal(pw_cfg_restart_fields(ocpp_on, ocpp_port, out, PW_CFG_RESTART_FIELDS_MAX), 1);
    assert_string_equal(out[0], "ocpp.listen");

    pw_cfg *list[] = {base, same, chargers, port,    all,       meters,
                      emit, live, ocpp_off, ocpp_on, ocpp_live, ocpp_port};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        pw_cfg_free(list[i]);
}

/* GET /api/config adds restart_pending; a PUT of what it returned must be accepted. */
static void test_restart_pending_accepted(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok("{\"grid\":\"TN\",\"restart_pending\":[\"network.port\"],"
                           "\"nodes\":[" MAIN_NODE "],\"chargers\":[" C1 "]}");
    json_t *j = pw_cfg_to_json(cfg);
    assert_null(json_object_get(j, "restart_pending"));
    json_decref(j);
    pw_cfg_free(cfg);
    cfg = parse_ok("{\"grid\":\"TN\",\"restart_pending\":[],"
                   "\"nodes\":[" MAIN_NODE "],\"chargers\":[" C1 "]}");
    pw_cfg_free(cfg);
}

/* PW_CFG_MAX_CHARGERS chargers under 200 circuits; dup adds a charger that repeats one. */
static char *large_facility(size_t chargers, bool dup)
{
    size_t cap = 256 * (chargers + 300), len = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    len += (size_t)snprintf(t + len, cap - len,
                            "{\"grid\":\"TN\",\"nodes\":[{\"id\":\"main\",\"limit_a\":10000,"
                            "\"meter\":{\"link\":{\"lan\":{\"device_id\":900000}}}}");
    for (size_t n = 1; n < 200; n++)
        len += (size_t)snprintf(t + len, cap - len,
                                ",{\"id\":\"n%03zu\",\"parent\":\"main\",\"limit_a\":400,"
                                "\"meter\":{\"link\":{\"defa\":{\"serial\":\"D%05zu\"}}}}",
                                n, n);
    len += (size_t)snprintf(t + len, cap - len, "],\"chargers\":[");
    for (size_t i = 0; i < chargers + dup; i++)
        len += (size_t)snprintf(t + len, cap - len,
                                "%s{\"id\":\"c%05zu\",\"link\":{\"lan\":{\"device_id\":%zu}},"
                                "\"node\":\"n%03zu\"}",
                                i ? "," : "", i, 100000 + (i < chargers ? i : 1234), 1 + i % 199);
    len += (size_t)snprintf(t + len, cap - len, "]}");
    assert_true(len < cap);
    return t;
}

static void test_largest_facility(void **state)
{
    (void)state;
    char *text = large_facility(PW_CFG_MAX_CHARGERS, false);
    pw_cfg *cfg = parse_ok(text);
    assert_int_equal(cfg->n_chargers, PW_CFG_MAX_CHARGERS);
    assert_int_equal(cfg->n_nodes, 200);
    assert_int_equal(cfg->chargers[9999].node, 1 + 9999 % 199);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        pw_cfg_link l = {.kind = PW_CFG_LINK_LAN, .device_id = (uint32_t)(100000 + i)};
        assert_int_equal(pw_cfg_charger_by_link(cfg, &l), (int)i);
    }
    pw_cfg_link stranger = {.kind = PW_CFG_LINK_LAN, .device_id = 99};
    assert_int_equal(pw_cfg_charger_by_link(cfg, &stranger), -1);
    /* A config whose links were changed after parsing still finds every charger. */
    pw_cfg_link t = cfg->charger_links[0];
    cfg->charger_links[0] = cfg->charger_links[9999];
    cfg->charger_links[9999] = t;
    assert_int_equal(pw_cfg_charger_by_link(cfg, &t), 9999);
    pw_cfg_free(cfg);
    free(text);

    text = large_facility(PW_CFG_MAX_CHARGERS - 1, true);
    assert_true(rejects(text, "chargers[9999].link.lan.device_id", "chargers[1234]"));
    free(text);
    text = large_facility(PW_CFG_MAX_CHARGERS, true);
    assert_true(rejects(text, "chargers", "at most 10000"));
    free(text);
}

static void test_save_roundtrip(void **state)
{
    (void)state;
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_load(PW_SOURCE_DIR "/config/demo.json", &errs);
    assert_non_null(cfg);
    char dir[] = "/tmp/pw-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(pw_cfg_save(cfg, path, &errs), 0);
    pw_cfg *back = pw_cfg_load(path, &errs);
    assert_non_null(back);
    json_t *a = pw_cfg_to_json(cfg), *b = pw_cfg_to_json(back);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* no temp file left behind */
    unlink(path);
    rmdir(dir);
    pw_cfg_free(back);
    pw_cfg_free(cfg);
}

static void test_wiring_text(void **state)
{
    (void)state;
    uint8_t w[3];
    char out[8];
    assert_int_equal(pw_cfg_wiring_parse("L3L1L2", w), 0);
    pw_cfg_wiring_format(w, out);
    assert_string_equal(out, "L3L1L2");
    assert_int_equal(pw_cfg_wiring_parse("L2", w), 0);
    assert_int_equal(w[0], 2);
    assert_int_equal(w[1], 0);
    assert_int_equal(pw_cfg_wiring_parse("L4", w), -1);
    assert_int_equal(pw_cfg_wiring_parse("", w), -1);
    assert_int_equal(pw_cfg_wiring_parse("L1L2L3L1", w), -1);
}

/* ---- OCPP ---- */

/* A facility with top-level members top (with ', e.g. ",'ocpp':{}") and the chargers given. */
static const char *ocpp_facility(const char *top, const char *chargers)
{
    return J("{'grid':'TN'%s,'nodes':[{'id':'m','limit_a':100}],'chargers':[%s]}", top, chargers);
}

#define OCPP_ON ",'ocpp':{}"

/* A charger c<n> reached by the ocpp link body given (with '). */
static const char *ocpp_charger(int n, const char *body)
{
    return J("{'id':'c%d','node':'m','link':{'ocpp':{%s}}}", n, body);
}

static void test_ocpp_link(void **state)
{
    (void)state;
    char chargers[512];
    snprintf(chargers, sizeof chargers, "%s,", ocpp_charger(1, "'id':'CP-17'"));
    snprintf(chargers + strlen(chargers), sizeof chargers - strlen(chargers), "%s,",
             ocpp_charger(2, "'id':'CP-17','connector':2"));
    snprintf(chargers + strlen(chargers), sizeof chargers - strlen(chargers), "%s,%s",
             ocpp_charger(3, "'id':'cp-17'"), ocpp_charger(4, "'id':'a.b_c:d-9','connector':8"));
    pw_cfg *cfg = parse_ok(ocpp_facility(OCPP_ON, chargers));
    assert_int_equal(cfg->charger_links[0].kind, PW_CFG_LINK_OCPP);
    assert_string_equal(cfg->charger_links[0].cp_id, "CP-17");
    assert_int_equal(cfg->charger_links[0].connector, 1); /* the default */
    assert_int_equal(cfg->charger_links[1].connector, 2);
    assert_string_equal(cfg->charger_links[3].cp_id, "a.b_c:d-9");
    assert_int_equal(cfg->charger_links[3].connector, 8);
    /* The lookup index orders ocpp links too: id, then connector; letter case counts. */
    for (size_t i = 0; i < cfg->n_chargers; i++)
        assert_int_equal(pw_cfg_charger_by_link(cfg, &cfg->charger_links[i]), (int)i);
    pw_cfg_link miss = {.kind = PW_CFG_LINK_OCPP, .cp_id = "CP-17", .connector = 3};
    assert_int_equal(pw_cfg_charger_by_link(cfg, &miss), -1);
    pw_cfg_link lower = {.kind = PW_CFG_LINK_OCPP, .cp_id = "cp-17", .connector = 1};
    assert_int_equal(pw_cfg_charger_by_link(cfg, &lower), 2);
    pw_cfg_free(cfg);

    /* Helpers. */
    pw_cfg_link a = {.kind = PW_CFG_LINK_OCPP, .cp_id = "CP-17", .connector = 1}, b = a;
    char text[64];
    assert_string_equal(pw_cfg_link_kind_name(PW_CFG_LINK_OCPP), "ocpp");
    pw_cfg_link_format(&a, text, sizeof text);
    assert_string_equal(text, "ocpp CP-17 connector 1");
    assert_true(pw_cfg_link_equal(&a, &b));
    b.connector = 2;
    assert_false(pw_cfg_link_equal(&a, &b));
    b = a;
    strcpy(b.cp_id, "cp-17");
    assert_false(pw_cfg_link_equal(&a, &b));
    pw_cfg_link lan = {.kind = PW_CFG_LINK_LAN, .device_id = 1};
    assert_false(pw_cfg_link_equal(&a, &lan));
    json_t *j = pw_cfg_link_to_json(&a);
    json_t *want = json_pack("{s:{s:s, s:i}}", "ocpp", "id", "CP-17", "connector", 1);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    /* The longest identity is cut, not overrun. */
    pw_cfg_link longest = {.kind = PW_CFG_LINK_OCPP, .connector = 8};
    memset(longest.cp_id, 'x', sizeof longest.cp_id - 1);
    pw_cfg_link_format(&longest, text, sizeof text);
    assert_int_equal(strlen(text), sizeof text - 1);
}

#define OL "chargers[0].link.ocpp"

static void test_ocpp_link_errors(void **state)
{
    (void)state;
    assert_true(
        rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'connector':1")), OL ".id", "required"));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':''")), OL ".id", "1 to 48"));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':'CP 17'")), OL ".id",
                        "A-Z, a-z, 0-9, '.', '_', '-' and ':'"));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':'CP/17'")), OL ".id", NULL));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':17")), OL ".id", "1 to 48"));
    char id48[49], id49[50];
    memset(id48, 'A', 48);
    id48[48] = '\0';
    memset(id49, 'A', 49);
    id49[49] = '\0';
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, J("'id':'%s'", id49))), OL ".id",
                        "1 to 48"));
    pw_cfg *cfg = parse_ok(ocpp_facility(OCPP_ON, ocpp_charger(1, J("'id':'%s'", id48))));
    assert_string_equal(cfg->charger_links[0].cp_id, id48);
    pw_cfg_free(cfg);
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':'CP','connector':0")),
                        OL ".connector", "between 1 and 8"));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':'CP','connector':9")),
                        OL ".connector", "between 1 and 8"));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':'CP','connector':1.5")),
                        OL ".connector", "whole"));
    assert_true(rejects(ocpp_facility(OCPP_ON, ocpp_charger(1, "'id':'CP','evse':1")), OL ".evse",
                        "unknown"));
    assert_true(rejects(ocpp_facility(OCPP_ON, "{'id':'c','node':'m','link':{'ocpp':'CP'}}"), OL,
                        "object"));
    /* Chargers only. */
    assert_true(rejects(J("{'grid':'TN'" OCPP_ON ",'nodes':[{'id':'m','limit_a':100,'meter':"
                          "{'link':{'ocpp':{'id':'CP'}}}}],'chargers':[" C1 "]}"),
                        "nodes[0].meter.link.ocpp", "chargers only"));
    assert_true(rejects(ocpp_facility(OCPP_ON, "{'id':'c','node':'m','link':{'wifi':{}}}"),
                        "chargers[0].link.wifi", "lan, ocpp"));
    assert_true(
        rejects(ocpp_facility(OCPP_ON, "{'id':'c','node':'m'}"), "chargers[0].link", "ocpp"));
    /* Two chargers on one connector; the same id on another connector is another charger. */
    char two[256];
    snprintf(two, sizeof two, "%s,", ocpp_charger(1, "'id':'CP-17'"));
    snprintf(two + strlen(two), sizeof two - strlen(two), "%s",
             ocpp_charger(2, "'id':'CP-17','connector':1"));
    assert_true(rejects(ocpp_facility(OCPP_ON, two), "chargers[1].link.ocpp",
                        "ocpp CP-17 connector 1 is used by chargers[0]"));
    /* A charger on an ocpp link needs the central system. */
    assert_true(
        rejects(ocpp_facility("", ocpp_charger(1, "'id':'CP-17'")), OL, "\"ocpp\" section"));
}

static void test_ocpp_section(void **state)
{
    (void)state;
    /* Absent: off. Present and empty: on, on loopback, with the defaults. */
    pw_cfg *cfg = parse_ok(ocpp_facility("", C1));
    assert_int_equal(cfg->ocpp.listen_port, 0);
    json_t *j = pw_cfg_to_json(cfg);
    assert_null(json_object_get(j, "ocpp"));
    assert_null(json_object_get(j, "tags"));
    json_decref(j);
    pw_cfg_free(cfg);
    cfg = parse_ok(ocpp_facility(OCPP_ON, C1));
    assert_string_equal(cfg->ocpp.listen_addr, "127.0.0.1");
    assert_int_equal(cfg->ocpp.listen_port, 8887);
    assert_false(cfg->ocpp.tls);
    assert_int_equal(cfg->ocpp.meter_interval_s, 10);
    assert_int_equal(cfg->ocpp.heartbeat_s, 300);
    assert_int_equal(cfg->ocpp.min_interval_s, 10);
    assert_int_equal(cfg->ocpp.daily_writes, 500);
    assert_false(cfg->ocpp.local_authorize);
    assert_int_equal(cfg->ocpp.n_charge_points, 0);
    pw_cfg_free(cfg);
    cfg = parse_ok(ocpp_facility(",'ocpp':{'listen':'0.0.0.0:9000','tls':true,"
                                 "'meter_interval_s':900,'heartbeat_s':86400,'min_interval_s':0,"
                                 "'daily_writes':100000,'authorize':'local_list'}",
                                 C1));
    assert_string_equal(cfg->ocpp.listen_addr, "0.0.0.0");
    assert_int_equal(cfg->ocpp.listen_port, 9000);
    assert_true(cfg->ocpp.tls);
    assert_int_equal(cfg->ocpp.meter_interval_s, 900);
    assert_int_equal(cfg->ocpp.heartbeat_s, 86400);
    assert_int_equal(cfg->ocpp.min_interval_s, 0);
    assert_int_equal(cfg->ocpp.daily_writes, 100000);
    assert_true(cfg->ocpp.local_authorize);
    pw_cfg_free(cfg);
    cfg = parse_ok(ocpp_facility(",'ocpp':{'listen':'localhost:8887','meter_interval_s':1,"
                                 "'heartbeat_s':10,'min_interval_s':3600,'daily_writes':1,"
                                 "'authorize':'accept'}",
                                 C1));
    assert_string_equal(cfg->ocpp.listen_addr, "127.0.0.1");
    assert_int_equal(cfg->ocpp.meter_interval_s, 1);
    assert_int_equal(cfg->ocpp.heartbeat_s, 10);
    assert_int_equal(cfg->ocpp.min_interval_s, 3600);
    assert_int_equal(cfg->ocpp.daily_writes, 1);
    pw_cfg_free(cfg);

    /* Every range, both ends. */
    static const struct {
        const char *member, *field, *word;
    } bad[] = {
        {"'meter_interval_s':0", "ocpp.meter_interval_s", "between 1 and 900"},
        {"'meter_interval_s':901", "ocpp.meter_interval_s", "between 1 and 900"},
        {"'meter_interval_s':2.5", "ocpp.meter_interval_s", "whole"},
        {"'heartbeat_s':9", "ocpp.heartbeat_s", "between 10 and 86400"},
        {"'heartbeat_s':86401", "ocpp.heartbeat_s", "between 10 and 86400"},
        {"'min_interval_s':-1", "ocpp.min_interval_s", "between 0 and 3600"},
        {"'min_interval_s':3601", "ocpp.min_interval_s", "between 0 and 3600"},
        {"'daily_writes':0", "ocpp.daily_writes", "between 1 and 100000"},
        {"'daily_writes':100001", "ocpp.daily_writes", "between 1 and 100000"},
        {"'listen':'nowhere'", "ocpp.listen", "ADDRESS:PORT"},
        {"'listen':'ocpp.example:8887'", "ocpp.listen", "IPv4"},
        {"'listen':'0.0.0.0:0'", "ocpp.listen", "1-65535"},
        {"'listen':'0.0.0.0:65536'", "ocpp.listen", NULL},
        {"'listen':''", "ocpp.listen", NULL},
        {"'listen':8887", "ocpp.listen", "string"},
        {"'tls':'yes'", "ocpp.tls", "true or false"},
        {"'authorize':'maybe'", "ocpp.authorize", "local_list"},
        {"'authorize':true", "ocpp.authorize", "accept"},
        {"'heartbeat':300", "ocpp.heartbeat", "unknown"},
        {"'charge_points':{}", "ocpp.charge_points", "array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!rejects(ocpp_facility(J(",'ocpp':{%s}", bad[i].member), C1), bad[i].field,
                     bad[i].word))
            fail_msg("not refused: %s", bad[i].member);
    }
    assert_true(rejects(ocpp_facility(",'ocpp':true", C1), "ocpp", "turn OCPP off"));
    /* Not the web front's port: on the same address or on all of them. */
    assert_true(rejects(ocpp_facility(",'http':{'listen':'127.0.0.1:8887'}" OCPP_ON, C1),
                        "ocpp.listen", "http.listen"));
    assert_true(rejects(ocpp_facility(",'http':{'listen':'127.0.0.1:8080'},"
                                      "'ocpp':{'listen':'0.0.0.0:8080'}",
                                      C1),
                        "ocpp.listen", "http.listen"));
    cfg = parse_ok(ocpp_facility(",'http':{'listen':'127.0.0.1:8887'},"
                                 "'ocpp':{'listen':'127.0.0.2:8887'}",
                                 C1));
    pw_cfg_free(cfg);
}

#define HASH_A                                                                                     \
    "sha256:000102030405060708090a0b0c0d0e0f:"                                                     \
    "6dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa59959"
#define PASSWORD_A "phasewise-OCPP-key-1"

/* ocpp with the charge point entries given (with '). */
static const char *with_cps(const char *cps)
{
    return ocpp_facility(J(",'ocpp':{'charge_points':[%s]}", cps), C1);
}

#define CP0 "ocpp.charge_points[0]."

/* ocpp.upstream: the local controller's CSMS, its validation by field, and the upstream
 * passwords kept as given; both written back by pw_cfg_to_json and read again the same. */
static void test_ocpp_upstream(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(
        ocpp_facility(",'ocpp':{'upstream':{'url':'ws://10.0.0.5:9000/ocpp','authorize':'local'},"
                      "'charge_points':[{'id':'CP-17','upstream_password':'key with: colon'}]}",
                      C1));
    assert_string_equal(cfg->ocpp.upstream.url, "ws://10.0.0.5:9000/ocpp");
    assert_true(cfg->ocpp.upstream.authorize_local);
    assert_string_equal(pw_cfg_ocpp_cp_find(cfg, "CP-17")->upstream_password, "key with: colon");
    json_t *j = pw_cfg_to_json(cfg);
    char *text = json_dumps(j, JSON_COMPACT);
    pw_cfg *back = parse_ok(text);
    json_t *j2 = pw_cfg_to_json(back);
    assert_true(json_equal(j, j2));
    assert_string_equal(back->ocpp.upstream.url, "ws://10.0.0.5:9000/ocpp");
    assert_string_equal(pw_cfg_ocpp_cp_find(back, "CP-17")->upstream_password, "key with: colon");
    free(text);
    json_decref(j);
    json_decref(j2);
    pw_cfg_free(back);
    pw_cfg_free(cfg);
    /* Off without a url; the default is the charge point's own authorization. */
    cfg = parse_ok(ocpp_facility(",'ocpp':{'upstream':{'url':''}}", C1));
    assert_string_equal(cfg->ocpp.upstream.url, "");
    assert_false(cfg->ocpp.upstream.authorize_local);
    json_t *off = pw_cfg_to_json(cfg);
    assert_null(json_object_get(json_object_get(off, "ocpp"), "upstream"));
    json_decref(off);
    pw_cfg_free(cfg);
    cfg = parse_ok(ocpp_facility(",'ocpp':{'upstream':{'url':'wss://csms.example:443/o',"
                                 "'ca_file':'/etc/ca.pem','authorize':'charge_point'}}",
                                 C1));
    assert_string_equal(cfg->ocpp.upstream.ca_file, "/etc/ca.pem");
    assert_false(cfg->ocpp.upstream.authorize_csms);
    pw_cfg_free(cfg);
    /* The CSMS's verdict, written back as it was given. */
    cfg = parse_ok(ocpp_facility(",'ocpp':{'upstream':{'url':'ws://10.0.0.5/o',"
                                 "'authorize':'csms'}}",
                                 C1));
    assert_true(cfg->ocpp.upstream.authorize_csms);
    assert_false(cfg->ocpp.upstream.authorize_local);
    json_t *csms = pw_cfg_to_json(cfg);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(csms, "ocpp"), "upstream"), "authorize")),
        "csms");
    json_decref(csms);
    pw_cfg_free(cfg);
    static const struct {
        const char *upstream, *field, *says;
    } bad[] = {
        {"{'url':'http://10.0.0.5/ocpp'}", "ocpp.upstream.url", "ws:// or wss://"},
        {"{'url':'ws://'}", "ocpp.upstream.url", "ws:// or wss://"},
        {"{'url':'ws://10.0.0.5/o p'}", "ocpp.upstream.url", "numeric address"},
        {"{'url':7}", "ocpp.upstream.url", "string"},
        {"{'url':'ws://10.0.0.5/o','ca_file':'/ca.pem'}", "ocpp.upstream.ca_file", "wss://"},
        {"{'url':'ws://10.0.0.5/o','authorize':'accept'}", "ocpp.upstream.authorize",
         "charge_point"},
        {"{'url':'ws://10.0.0.5/o','user':'x'}", "ocpp.upstream.user", "unknown"},
        {"'ws://10.0.0.5/o'", "ocpp.upstream", "must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!rejects(ocpp_facility(J(",'ocpp':{'upstream':%s}", bad[i].upstream), C1), bad[i].field,
                     bad[i].says))
            fail_msg("not refused as %s: %s", bad[i].field, bad[i].upstream);
    assert_true(
        rejects(with_cps("{'id':'CP:17','upstream_password':'abc'}"), CP0 "id", "HTTP Basic"));
    assert_true(rejects(with_cps("{'id':'CP-17','upstream_password':'a\\tb'}"),
                        CP0 "upstream_password", "printable"));
}

static void test_ocpp_charge_points(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(with_cps("{'id':'CP-9','quirks':'whole-amps'},"
                                    "{'id':'CP-17','password_hash':'" HASH_A "'},"
                                    "{'id':'A:1','quirks':''},{'id':'cp-17','password_hash':''}"));
    assert_int_equal(cfg->ocpp.n_charge_points, 4);
    /* Sorted by id (byte order), whatever the file's order. */
    assert_string_equal(cfg->ocpp.charge_points[0].id, "A:1");
    assert_string_equal(cfg->ocpp.charge_points[1].id, "CP-17");
    assert_string_equal(cfg->ocpp.charge_points[2].id, "CP-9");
    assert_string_equal(cfg->ocpp.charge_points[3].id, "cp-17");
    const pw_cfg_ocpp_cp *cp = pw_cfg_ocpp_cp_find(cfg, "CP-17");
    assert_non_null(cp);
    assert_string_equal(cp->password_hash, HASH_A);
    assert_true(pw_cfg_ocpp_password_check(cp->password_hash, PASSWORD_A));
    cp = pw_cfg_ocpp_cp_find(cfg, "CP-9");
    assert_non_null(cp);
    assert_string_equal(cp->quirks, "whole-amps");
    assert_string_equal(cp->password_hash, "");
    cp = pw_cfg_ocpp_cp_find(cfg, "cp-17"); /* letter case counts: another charge point */
    assert_non_null(cp);
    assert_string_equal(cp->id, "cp-17");
    assert_string_equal(cp->password_hash, "");
    assert_null(pw_cfg_ocpp_cp_find(cfg, "CP-1"));
    assert_null(pw_cfg_ocpp_cp_find(cfg, "Cp-9"));
    assert_null(pw_cfg_ocpp_cp_find(cfg, ""));
    char long_id[80];
    memset(long_id, 'C', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_null(pw_cfg_ocpp_cp_find(cfg, long_id));
    pw_cfg_free(cfg);
    /* No entries and OCPP off: nothing found. */
    cfg = parse_ok(ocpp_facility("", C1));
    assert_null(pw_cfg_ocpp_cp_find(cfg, "CP-17"));
    pw_cfg_free(cfg);

    /* A charger whose charge point has no entry is fine (no password: profile 0). */
    cfg = parse_ok(
        ocpp_facility(",'ocpp':{'charge_points':[{'id':'CP-1'}]}", ocpp_charger(1, "'id':'CP-2'")));
    assert_null(pw_cfg_ocpp_cp_find(cfg, "CP-2"));
    pw_cfg_free(cfg);

    assert_true(rejects(with_cps("{'id':'CP-17','password':'0123456789abcdef'}"), CP0 "password",
                        "only password_hash"));
    assert_true(rejects(with_cps("{'id':'CP-17','password':'0123456789abcdef'}"), CP0 "password",
                        "PUT /api/config"));
    static const char *const bad_hashes[] = {
        /* sha1:, salt one digit short, a non-hex digit in the hash, no ':' between, upper-case
         * prefix, the hash one digit long, plain text. */
        "sha1:000102030405060708090a0b0c0d0e0f:"
        "6dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa59959",
        "sha256:000102030405060708090a0b0c0d0e0:"
        "6dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa59959",
        "sha256:000102030405060708090a0b0c0d0e0f:"
        "6dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa5995g",
        "sha256:000102030405060708090a0b0c0d0e0f6"
        "dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa59959",
        "SHA256:000102030405060708090a0b0c0d0e0f:"
        "6dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa59959",
        "sha256:000102030405060708090a0b0c0d0e0f:"
        "6dc8be2df8d05a99773182f5586c5442f153bf5f7d745b946dd85c70baa599590",
        "hunter2hunter2hunter2",
    };
    for (size_t i = 0; i < sizeof bad_hashes / sizeof bad_hashes[0]; i++) {
        assert_false(pw_cfg_ocpp_password_hash_valid(bad_hashes[i]));
        assert_true(rejects(with_cps(J("{'id':'CP-17','password_hash':'%s'}", bad_hashes[i])),
                            CP0 "password_hash", "sha256:<32 hex digits of salt>"));
    }
    assert_true(
        rejects(with_cps("{'id':'CP:17','password_hash':'" HASH_A "'}"), CP0 "id", "HTTP Basic"));
    assert_true(rejects(with_cps("{'id':'CP-17','quirks':'fast'}"), CP0 "quirks",
                        "default, tx-default-only, stack0, whole-amps"));
    assert_true(rejects(with_cps("{'id':'CP-17','quirks':7}"), CP0 "quirks", "string"));
    assert_true(rejects(with_cps("{'quirks':'stack0'}"), CP0 "id", "required"));
    assert_true(rejects(with_cps("{'id':'CP 17'}"), CP0 "id", "1 to 48"));
    assert_true(rejects(with_cps("{'id':'CP-17','vendor':'x'}"), CP0 "vendor", "unknown"));
    assert_true(rejects(with_cps("'CP-17'"), "ocpp.charge_points[0]", "object"));
    assert_true(rejects(with_cps("{'id':'CP-1'},{'id':'CP-2'},{'id':'CP-1'}"),
                        "ocpp.charge_points[2].id", "'CP-1' is used by ocpp.charge_points[0]"));

    /* At most PW_CFG_MAX_CHARGE_POINTS entries. */
    json_t *root = json_pack("{s:s, s:[{s:s, s:i}], s:[{s:s, s:i, s:s}], s:{s:[]}}", "grid", "TN",
                             "nodes", "id", "m", "limit_a", 100, "chargers", "id", "c", "device_id",
                             1, "node", "m", "ocpp", "charge_points");
    json_t *cps = json_object_get(json_object_get(root, "ocpp"), "charge_points");
    for (size_t i = 0; i <= PW_CFG_MAX_CHARGE_POINTS; i++) {
        char id[16];
        snprintf(id, sizeof id, "CP-%zu", i);
        json_array_append_new(cps, json_pack("{s:s}", "id", id));
    }
    pw_cfg_errors errs;
    assert_null(pw_cfg_from_json(root, &errs));
    assert_string_equal(errs.items[0].field, "ocpp.charge_points");
    json_array_remove(cps, 0);
    cfg = pw_cfg_from_json(root, &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->ocpp.n_charge_points, PW_CFG_MAX_CHARGE_POINTS);
    assert_non_null(pw_cfg_ocpp_cp_find(cfg, "CP-10000"));
    assert_non_null(pw_cfg_ocpp_cp_find(cfg, "CP-5000"));
    assert_null(pw_cfg_ocpp_cp_find(cfg, "CP-0"));
    pw_cfg_free(cfg);
    json_decref(root);
}

static void test_ocpp_quirk_names(void **state)
{
    (void)state;
    static const char *const want[] = {"default",    "tx-default-only", "stack0",
                                       "whole-amps", "abb-terra-ac",    "wallbox"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_non_null(pw_cfg_ocpp_quirk_name(i));
        assert_string_equal(pw_cfg_ocpp_quirk_name(i), want[i]);
        /* Each name the list gives is one the config takes. */
        pw_cfg *cfg = parse_ok(with_cps(J("{'id':'CP-1','quirks':'%s'}", want[i])));
        assert_string_equal(cfg->ocpp.charge_points[0].quirks, want[i]);
        pw_cfg_free(cfg);
    }
    assert_null(pw_cfg_ocpp_quirk_name(sizeof want / sizeof want[0]));
}

static void test_ocpp_password(void **state)
{
    (void)state;
    /* Known vectors, from Python: hashlib.sha256(salt + password).hexdigest(). */
    uint8_t salt[PW_CFG_OCPP_SALT_LEN];
    for (size_t i = 0; i < sizeof salt; i++)
        salt[i] = (uint8_t)i;
    char out[PW_CFG_OCPP_HASH_LEN + 1];
    assert_int_equal(pw_cfg_ocpp_password_hash(PASSWORD_A, salt, out, sizeof out), 0);
    assert_string_equal(out, HASH_A);
    assert_int_equal(strlen(out), PW_CFG_OCPP_HASH_LEN);
    assert_true(pw_cfg_ocpp_password_hash_valid(out));
    memset(salt, 0xa5, sizeof salt);
    const char *key40 = "0123456789ABCDEF0123456789abcdef01234567";
    assert_int_equal(pw_cfg_ocpp_password_hash(key40, salt, out, sizeof out), 0);
    assert_string_equal(out, "sha256:a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5:"
                             "edce6ac194f42b99e07390f56498a8bfcec378972a7b12cede14ead5f72528d3");

    /* Right and wrong. */
    assert_true(pw_cfg_ocpp_password_check(out, key40));
    assert_true(pw_cfg_ocpp_password_check(HASH_A, PASSWORD_A));
    assert_false(pw_cfg_ocpp_password_check(HASH_A, "phasewise-OCPP-key-2"));
    assert_false(pw_cfg_ocpp_password_check(HASH_A, "Phasewise-OCPP-key-1"));
    assert_false(pw_cfg_ocpp_password_check(HASH_A, PASSWORD_A "x"));
    assert_false(pw_cfg_ocpp_password_check(out, PASSWORD_A));
    /* The hash in upper-case hex is the same hash. */
    char upper[sizeof out];
    strcpy(upper, HASH_A);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_true(pw_cfg_ocpp_password_check(upper, PASSWORD_A));
    /* Another salt, another hash: the salt is part of what is hashed. */
    char salted[sizeof out];
    strcpy(salted, HASH_A);
    salted[7] = '1';
    assert_true(pw_cfg_ocpp_password_hash_valid(salted));
    assert_false(pw_cfg_ocpp_password_check(salted, PASSWORD_A));
    /* A malformed hash never matches. */
    assert_false(pw_cfg_ocpp_password_check("", PASSWORD_A));
    assert_false(pw_cfg_ocpp_password_check(HASH_A "0", PASSWORD_A));
    assert_false(pw_cfg_ocpp_password_check("sha256:" PASSWORD_A, PASSWORD_A));

    /* Length 16..40, printable ASCII without space; nothing written when refused. */
    memset(salt, 0, sizeof salt);
    static const char *const refused[] = {
        "0123456789abcde",                           /* 15 */
        "0123456789ABCDEF0123456789abcdef012345678", /* 41 */
        "0123456789 abcdef",                         /* a space */
        "0123456789\tabcdef",                        /* a control character */
        "0123456789abcd\xc3\xa9",                    /* not ASCII */
        "",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        memset(out, '#', sizeof out);
        assert_int_equal(pw_cfg_ocpp_password_hash(refused[i], salt, out, sizeof out), -1);
        assert_int_equal(out[0], '#');
        assert_int_equal(out[sizeof out - 1], '#');
        assert_false(pw_cfg_ocpp_password_check(HASH_A, refused[i]));
    }
    assert_int_equal(pw_cfg_ocpp_password_hash("0123456789abcdef", salt, out, sizeof out), 0);
    assert_true(pw_cfg_ocpp_password_check(out, "0123456789abcdef"));
    assert_int_equal(pw_cfg_ocpp_password_hash("!~0123456789abcd", salt, out, sizeof out), 0);
    /* out too small for the hash and its NUL: refused, nothing written. */
    memset(out, '#', sizeof out);
    assert_int_equal(pw_cfg_ocpp_password_hash(PASSWORD_A, salt, out, sizeof out - 1), -1);
    assert_int_equal(out[0], '#');
}

/* tags with the entries given (with '). */
static const char *with_tags(const char *tags)
{
    return ocpp_facility(J(",'tags':[%s]", tags), C1);
}

static void test_tags(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(with_tags("{'id':'04A2B3C4','name':'Anna\\u0027s Golf'},"
                                     "{'id':'ff00','name':'Ben'},{'id':'0001','name':'Car 1'},"
                                     "{'id':'!~#aZ','name':'Odd'}"));
    assert_int_equal(cfg->n_tags, 4);
    /* Sorted ignoring letter case, written as given. */
    assert_string_equal(cfg->tags[0].id, "!~#aZ");
    assert_string_equal(cfg->tags[1].id, "0001");
    assert_string_equal(cfg->tags[2].id, "04A2B3C4");
    assert_string_equal(cfg->tags[3].id, "ff00");
    const pw_cfg_tag *t = pw_cfg_tag_find(cfg, "04a2b3c4");
    assert_non_null(t);
    assert_string_equal(t->name, "Anna's Golf");
    assert_non_null(pw_cfg_tag_find(cfg, "04A2B3C4"));
    assert_string_equal(pw_cfg_tag_find(cfg, "FF00")->name, "Ben");
    assert_string_equal(pw_cfg_tag_find(cfg, "!~#Az")->name, "Odd");
    assert_null(pw_cfg_tag_find(cfg, "04A2B3C5"));
    assert_null(pw_cfg_tag_find(cfg, "04A2B3C"));
    assert_null(pw_cfg_tag_find(cfg, ""));
    assert_null(pw_cfg_tag_find(cfg, "0001000100010001000100010001"));
    pw_cfg_free(cfg);
    cfg = parse_ok(with_tags(""));
    assert_int_equal(cfg->n_tags, 0);
    assert_null(pw_cfg_tag_find(cfg, "0001"));
    pw_cfg_free(cfg);

    assert_true(rejects(with_tags("{'name':'Anna'}"), "tags[0].id", "required"));
    assert_true(rejects(with_tags("{'id':'','name':'Anna'}"), "tags[0].id", "1 to 20"));
    assert_true(rejects(with_tags("{'id':'04 A2','name':'Anna'}"), "tags[0].id", "without spaces"));
    assert_true(rejects(with_tags("{'id':'04\\u00e9','name':'Anna'}"), "tags[0].id", "ASCII"));
    assert_true(rejects(with_tags("{'id':'04\\u0001','name':'Anna'}"), "tags[0].id", "ASCII"));
    assert_true(rejects(with_tags("{'id':4,'name':'Anna'}"), "tags[0].id", "1 to 20"));
    assert_true(rejects(with_tags("{'id':'123456789012345678901','name':'Anna'}"), "tags[0].id",
                        "1 to 20"));
    cfg = parse_ok(with_tags("{'id':'12345678901234567890','name':'Anna'}"));
    pw_cfg_free(cfg);
    assert_true(rejects(with_tags("{'id':'AB'}"), "tags[0].name", "required"));
    assert_true(rejects(with_tags("{'id':'AB','name':''}"), "tags[0].name", "empty"));
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    assert_true(
        rejects(with_tags(J("{'id':'AB','name':'%s'}", name64)), "tags[0].name", "at most 63"));
    name64[63] = '\0';
    cfg = parse_ok(with_tags(J("{'id':'AB','name':'%s'}", name64)));
    pw_cfg_free(cfg);
    assert_true(
        rejects(with_tags("{'id':'AB','name':'A','car':'Golf'}"), "tags[0].car", "unknown"));
    assert_true(rejects(with_tags("'AB'"), "tags[0]", "object"));
    assert_true(rejects(ocpp_facility(",'tags':{}", C1), "tags", "array"));
    /* Unique ignoring letter case. */
    assert_true(rejects(with_tags("{'id':'04A2B3C4','name':'A'},{'id':'X','name':'B'},"
                                  "{'id':'04a2b3c4','name':'C'}"),
                        "tags[2].id", "'04a2b3c4' is used by tags[0] too (letter case"));

    /* At most PW_CFG_MAX_TAGS. */
    json_t *root =
        json_pack("{s:s, s:[{s:s, s:i}], s:[{s:s, s:i, s:s}], s:[]}", "grid", "TN", "nodes", "id",
                  "m", "limit_a", 100, "chargers", "id", "c", "device_id", 1, "node", "m", "tags");
    json_t *tags = json_object_get(root, "tags");
    for (size_t i = 0; i <= PW_CFG_MAX_TAGS; i++) {
        char id[16];
        snprintf(id, sizeof id, "%08zX", i * 7919);
        json_array_append_new(tags, json_pack("{s:s, s:s}", "id", id, "name", "n"));
    }
    pw_cfg_errors errs;
    assert_null(pw_cfg_from_json(root, &errs));
    assert_string_equal(errs.items[0].field, "tags");
    assert_non_null(strstr(errs.items[0].message, "at most 10000"));
    json_array_remove(tags, 0);
    cfg = pw_cfg_from_json(root, &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_tags, PW_CFG_MAX_TAGS);
    for (size_t i = 1; i <= PW_CFG_MAX_TAGS; i++) {
        char id[16];
        snprintf(id, sizeof id, "%08zx", i * 7919); /* looked up in the other letter case */
        assert_non_null(pw_cfg_tag_find(cfg, id));
    }
    assert_null(pw_cfg_tag_find(cfg, "00000000"));
    pw_cfg_free(cfg);
    json_decref(root);
}

static void test_ocpp_roundtrip(void **state)
{
    (void)state;
    char chargers[512];
    snprintf(chargers, sizeof chargers, "%s,%s,%s", ocpp_charger(1, "'id':'CP-17','connector':2"),
             ocpp_charger(2, "'id':'CP-9'"),
             "{'id':'c3','node':'m','link':{'lan':{'device_id':3}}}");
    const char *text = ocpp_facility(
        J(",'ocpp':{'listen':'0.0.0.0:8887','tls':true,'meter_interval_s':15,'heartbeat_s':600,"
          "'min_interval_s':30,'daily_writes':200,'authorize':'local_list','charge_points':["
          "{'id':'CP-9','quirks':'tx-default-only'},{'id':'CP-17','password_hash':'%s'},"
          "{'id':'spare'}]},'tags':[{'id':'ff00','name':'Ben'},{'id':'04A2B3C4','name':'Anna'}]",
          HASH_A),
        chargers);
    pw_cfg *cfg = parse_ok(text);
    json_t *j = pw_cfg_to_json(cfg);
    char *dumped = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    pw_cfg *back = parse_ok(dumped);
    json_t *j2 = pw_cfg_to_json(back);
    assert_true(json_equal(j, j2));
    for (size_t i = 0; i < cfg->n_chargers; i++)
        assert_true(pw_cfg_link_equal(&cfg->charger_links[i], &back->charger_links[i]));
    assert_string_equal(back->ocpp.listen_addr, "0.0.0.0");
    assert_int_equal(back->ocpp.listen_port, 8887);
    assert_true(back->ocpp.tls);
    assert_int_equal(back->ocpp.meter_interval_s, 15);
    assert_int_equal(back->ocpp.heartbeat_s, 600);
    assert_int_equal(back->ocpp.min_interval_s, 30);
    assert_int_equal(back->ocpp.daily_writes, 200);
    assert_true(back->ocpp.local_authorize);
    assert_int_equal(back->ocpp.n_charge_points, 3);
    assert_memory_equal(cfg->ocpp.charge_points, back->ocpp.charge_points,
                        3 * sizeof *cfg->ocpp.charge_points);
    assert_int_equal(back->n_tags, 2);
    assert_memory_equal(cfg->tags, back->tags, 2 * sizeof *cfg->tags);
    /* What the file looks like: the hash is kept, an absent hash or quirks is not written. */
    json_t *o = json_object_get(j, "ocpp");
    assert_string_equal(json_string_value(json_object_get(o, "listen")), "0.0.0.0:8887");
    assert_string_equal(json_string_value(json_object_get(o, "authorize")), "local_list");
    json_t *cps = json_object_get(o, "charge_points");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cps, 0), "id")), "CP-17");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cps, 0), "password_hash")),
                        HASH_A);
    assert_null(json_object_get(json_array_get(cps, 0), "quirks"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(cps, 1), "quirks")),
                        "tx-default-only");
    assert_null(json_object_get(json_array_get(cps, 2), "password_hash"));
    json_t *link = json_object_get(json_array_get(json_object_get(j, "chargers"), 0), "link");
    json_t *want = json_pack("{s:{s:s, s:i}}", "ocpp", "id", "CP-17", "connector", 2);
    assert_true(json_equal(link, want));
    json_decref(want);
    want = json_pack("[{s:s, s:s}, {s:s, s:s}]", "id", "04A2B3C4", "name", "Anna", "id", "ff00",
                     "name", "Ben");
    assert_true(json_equal(json_object_get(j, "tags"), want));
    json_decref(want);
    free(dumped);
    json_decref(j);
    json_decref(j2);
    pw_cfg_free(back);
    pw_cfg_free(cfg);
}

/* The shipped OCPP example's config parses and says what the docs say. */
static void test_ocpp_example(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *sc = json_load_file(PW_SOURCE_DIR "/config/examples/ocpp-garage.json", 0, &jerr);
    assert_non_null(sc);
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_from_json(json_object_get(sc, "config"), &errs);
    if (!cfg) {
        char buf[4096];
        pw_cfg_errors_print(&errs, buf, sizeof buf);
        fail_msg("example rejected:\n%s", buf);
    }
    assert_true(cfg->ocpp.listen_port > 0);
    size_t ocpp_links = 0;
    for (size_t i = 0; i < cfg->n_chargers; i++)
        ocpp_links += cfg->charger_links[i].kind == PW_CFG_LINK_OCPP;
    assert_true(ocpp_links >= 2);
    assert_true(cfg->n_tags >= 1);
    assert_true(cfg->ocpp.n_charge_points >= 1);
    pw_cfg_free(cfg);
    json_decref(sc);
}

/* ---- issue 15: a node's static reserve, status timing per charger link kind ---- */

/* A facility whose nodes are given (JSON with '): a main node m and maybe more. */
static const char *with_nodes(const char *top, const char *nodes)
{
    return J("{'grid':'TN'%s,'nodes':[%s],'chargers':[{'id':'c','device_id':1,'node':'m'}]}", top,
             nodes);
}

static void test_node_reserve(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(MINIMAL);
    for (size_t l = 0; l < PW_LINES; l++)
        assert_true(cfg->nodes[0].reserve_a[l] == 0);
    json_t *j = pw_cfg_to_json(cfg);
    /* None set: the file stays as it was, without a reserve of 0. */
    assert_null(json_object_get(json_array_get(json_object_get(j, "nodes"), 0), "reserve_a"));
    json_decref(j);
    pw_cfg_free(cfg);

    /* One number for every line, or [L1, L2, L3]; a metered node takes one too (its meter's
     * reading replaces it, docs/config.md). */
    cfg = parse_ok(with_nodes("", "{'id':'m','limit_a':100,'reserve_a':5,"
                                  "'meter':{'link':{'lan':{'device_id':9}}}},"
                                  "{'id':'g','parent':'m','limit_a':[63,63,50],'margin_a':2,"
                                  "'reserve_a':[4,0,2.5]}"));
    for (size_t l = 0; l < PW_LINES; l++)
        assert_true(cfg->nodes[0].reserve_a[l] == 5);
    assert_true(cfg->nodes[1].reserve_a[0] == 4 && cfg->nodes[1].reserve_a[1] == 0 &&
                cfg->nodes[1].reserve_a[2] == 2.5);
    /* Round trip: written as it was read, and read back the same. */
    j = pw_cfg_to_json(cfg);
    json_t *nodes = json_object_get(j, "nodes");
    assert_true(json_number_value(json_object_get(json_array_get(nodes, 0), "reserve_a")) == 5);
    json_t *want = json_pack("[f,f,f]", 4.0, 0.0, 2.5);
    assert_true(json_equal(json_object_get(json_array_get(nodes, 1), "reserve_a"), want));
    json_decref(want);
    char *dumped = json_dumps(j, JSON_COMPACT);
    pw_cfg *back = parse_ok(dumped);
    for (size_t n = 0; n < 2; n++)
        assert_memory_equal(back->nodes[n].reserve_a, cfg->nodes[n].reserve_a,
                            sizeof cfg->nodes[n].reserve_a);
    free(dumped);
    json_decref(j);
    pw_cfg_free(back);
    pw_cfg_free(cfg);

    /* Each error names the field. */
    assert_true(rejects(with_nodes("", "{'id':'m','limit_a':100,'reserve_a':-1}"),
                        "nodes[0].reserve_a", "between 0"));
    assert_true(rejects(with_nodes("", "{'id':'m','limit_a':100,'reserve_a':'5'}"),
                        "nodes[0].reserve_a", "array of 3"));
    assert_true(rejects(with_nodes("", "{'id':'m','limit_a':100,'reserve_a':[1,2]}"),
                        "nodes[0].reserve_a", "array of 3"));
    assert_true(rejects(with_nodes("", "{'id':'m','limit_a':100,'reserve_a':[1,null,2]}"),
                        "nodes[0].reserve_a[1]", "between 0"));
    /* It must leave room under the limit minus the margin, on the line that breaks it. */
    assert_true(rejects(with_nodes("", "{'id':'m','limit_a':100,'margin_a':2,'reserve_a':98}"),
                        "nodes[0].reserve_a", "L1: 98 A"));
    assert_true(rejects(with_nodes("", "{'id':'m','limit_a':100},{'id':'g','parent':'m',"
                                       "'limit_a':[63,63,50],'reserve_a':[40,40,50]}"),
                        "nodes[1].reserve_a", "L3: 50 A"));
    cfg = parse_ok(with_nodes("", "{'id':'m','limit_a':100,'margin_a':2,'reserve_a':97.5}"));
    pw_cfg_free(cfg);
}

static void assert_timing(const pw_bal_timing *t, uint32_t min, uint32_t max, uint32_t delay,
                          uint32_t offline)
{
    assert_int_equal(t->status_min_ms, min);
    assert_int_equal(t->status_max_ms, max);
    assert_int_equal(t->status_delay_ms, delay);
    assert_int_equal(t->offline_ms, offline);
}

/* Without a "timing" section every kind has its transport's timing: LAN the protocol's (from
 * the balancer params), OCPP the one that follows its meter interval. */
static void test_timing_defaults(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(MINIMAL);
    for (size_t k = 0; k < PW_CFG_LINK_KINDS; k++)
        assert_timing(&cfg->timing_by_kind[k], 0, 0, 0, 0);
    pw_bal_timing t;
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_LAN, &t);
    assert_timing(&t, 1000, 30000, 250, 90000);
    assert_false(t.keeps_limit);
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_OCPP, &t);
    assert_timing(&t, 10000, 25000, 1250, 90000);
    assert_true(t.keeps_limit);
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_DEFA, &t);
    assert_timing(&t, 0, 0, 0, 0);
    json_t *j = pw_cfg_to_json(cfg);
    assert_null(json_object_get(j, "timing"));
    json_decref(j);
    /* What an installer is shown: every field of every charger kind. */
    j = pw_cfg_timing_in_force_json(cfg);
    json_t *want = json_pack("{s:{s:i,s:i,s:i,s:i},s:{s:i,s:i,s:i,s:i}}", "lan", "status_min_ms",
                             1000, "status_max_ms", 30000, "status_delay_ms", 250, "offline_ms",
                             90000, "ocpp", "status_min_ms", 10000, "status_max_ms", 25000,
                             "status_delay_ms", 1250, "offline_ms", 90000);
    assert_true(json_equal(j, want));
    json_decref(want);
    json_decref(j);
    pw_cfg_free(cfg);

    /* The defaults follow the settings they come from. */
    cfg = parse_ok(with_top("'balancer':{'offline_s':120},'ocpp':{'meter_interval_s':30}"));
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_LAN, &t);
    assert_timing(&t, 1000, 30000, 250, 120000);
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_OCPP, &t);
    assert_timing(&t, 30000, 65000, 1250, 150000);
    pw_cfg_free(cfg);

    /* GET /api/config may carry the timing in force: put back, it is ignored. */
    cfg = parse_ok(with_top("'timing_in_force':{'lan':{'status_min_ms':1}}"));
    assert_timing(&cfg->timing_by_kind[PW_CFG_LINK_LAN], 0, 0, 0, 0);
    pw_cfg_free(cfg);
}

static void test_timing_set(void **state)
{
    (void)state;
    pw_cfg *cfg = parse_ok(with_top("'ocpp':{'meter_interval_s':30},'timing':{"
                                    "'lan':{'status_min_ms':500,'status_max_ms':10000,"
                                    "'status_delay_ms':400,'offline_ms':40000},"
                                    "'ocpp':{'status_delay_ms':2000}}"));
    assert_timing(&cfg->timing_by_kind[PW_CFG_LINK_LAN], 500, 10000, 400, 40000);
    assert_timing(&cfg->timing_by_kind[PW_CFG_LINK_OCPP], 0, 0, 2000, 0);
    pw_bal_timing t;
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_LAN, &t);
    assert_timing(&t, 500, 10000, 400, 40000);
    /* A field left out keeps following the transport (here the 30 s meter interval). */
    pw_cfg_timing_in_force(cfg, PW_CFG_LINK_OCPP, &t);
    assert_timing(&t, 30000, 65000, 2000, 150000);
    assert_true(t.keeps_limit);
    /* Apply overwrites only what the file sets, over whatever the transport gave. */
    t = (pw_bal_timing){.status_min_ms = 1,
                        .status_max_ms = 2,
                        .status_delay_ms = 3,
                        .offline_ms = 4,
                        .keeps_limit = true};
    pw_cfg_timing_apply(cfg, PW_CFG_LINK_OCPP, &t);
    assert_timing(&t, 1, 2, 2000, 4);
    assert_true(t.keeps_limit);
    pw_cfg_timing_apply(cfg, PW_CFG_LINK_MODBUS, &t); /* no charger kind: nothing to apply */
    assert_timing(&t, 1, 2, 2000, 4);
    pw_cfg_timing_apply(cfg, PW_CFG_LINK_KINDS, &t);
    assert_timing(&t, 1, 2, 2000, 4);

    /* Round trip: only the fields the file gave are written, so the rest keeps following the
     * transport after a save. */
    json_t *j = pw_cfg_to_json(cfg);
    json_t *want = json_pack("{s:{s:i,s:i,s:i,s:i},s:{s:i}}", "lan", "status_min_ms", 500,
                             "status_max_ms", 10000, "status_delay_ms", 400, "offline_ms", 40000,
                             "ocpp", "status_delay_ms", 2000);
    assert_true(json_equal(json_object_get(j, "timing"), want));
    json_decref(want);
    char *dumped = json_dumps(j, JSON_COMPACT);
    pw_cfg *back = parse_ok(dumped);
    assert_memory_equal(back->timing_by_kind, cfg->timing_by_kind, sizeof cfg->timing_by_kind);
    json_t *j2 = pw_cfg_to_json(back);
    assert_true(json_equal(j, j2));
    json_decref(j2);
    free(dumped);
    json_decref(j);
    pw_cfg_free(back);
    pw_cfg_free(cfg);
}

static void test_timing_errors(void **state)
{
    (void)state;
    assert_true(rejects(with_top("'timing':5"), "timing", "keyed by charger link kind"));
    assert_true(rejects(with_top("'timing':{'defa':{}}"), "timing.defa", "no charger speaks"));
    assert_true(rejects(with_top("'timing':{'modbus':{}}"), "timing.modbus", "no charger"));
    assert_true(rejects(with_top("'timing':{'wifi':{}}"), "timing.wifi", "unknown setting"));
    assert_true(rejects(with_top("'timing':{'lan':3}"), "timing.lan", "must be an object"));
    assert_true(
        rejects(with_top("'timing':{'lan':{'status_ms':1}}"), "timing.lan.status_ms", "unknown"));
    /* Zero is not a value: leaving the field out is how the file keeps the transport's. */
    assert_true(rejects(with_top("'timing':{'lan':{'status_min_ms':0}}"),
                        "timing.lan.status_min_ms", "between 100"));
    assert_true(rejects(with_top("'timing':{'ocpp':{'status_max_ms':500}}"),
                        "timing.ocpp.status_max_ms", "between 1000"));
    assert_true(rejects(with_top("'timing':{'ocpp':{'status_delay_ms':0}}"),
                        "timing.ocpp.status_delay_ms", "between 1"));
    assert_true(rejects(with_top("'timing':{'lan':{'offline_ms':4999}}"), "timing.lan.offline_ms",
                        "between 5000"));
    assert_true(rejects(with_top("'timing':{'lan':{'offline_ms':1e8}}"), "timing.lan.offline_ms",
                        "whole number"));
    assert_true(rejects(with_top("'timing':{'lan':{'status_max_ms':2000.5}}"),
                        "timing.lan.status_max_ms", "whole number"));
    /* The rules hold for the timing in force: a field given against the defaults left. */
    assert_true(rejects(with_top("'timing':{'lan':{'status_min_ms':40000}}"),
                        "timing.lan.status_min_ms", "(30000 ms, the default)"));
    assert_true(rejects(with_top("'timing':{'lan':{'status_max_ms':800000}}"),
                        "timing.lan.status_max_ms", "offline_ms (90000 ms, the default)"));
    assert_true(rejects(with_top("'timing':{'lan':{'status_max_ms':5000,'status_delay_ms':5000}}"),
                        "timing.lan.status_delay_ms", "less than status_max_ms (5000 ms)"));
    assert_true(rejects(with_top("'timing':{'lan':{'offline_ms':30250}}"), "timing.lan.offline_ms",
                        "30000 + 250"));
    assert_true(rejects(with_top("'timing':{'ocpp':{'offline_ms':26000}}"),
                        "timing.ocpp.offline_ms", "25000 + 1250"));
    assert_true(rejects(with_top("'timing':{'ocpp':{'status_min_ms':30000}}"),
                        "timing.ocpp.status_min_ms", "must not exceed status_max_ms"));
    /* The defaults come from the settings beside: a longer meter interval lifts OCPP's. */
    pw_cfg *cfg = parse_ok(with_top("'ocpp':{'meter_interval_s':20},"
                                    "'timing':{'ocpp':{'status_min_ms':30000}}"));
    pw_cfg_free(cfg);
    assert_true(rejects(with_top("'balancer':{'offline_s':60},"
                                 "'timing':{'lan':{'status_max_ms':60000}}"),
                        "timing.lan.status_max_ms", "offline_ms (60000 ms, the default)"));
    /* Just inside every rule. */
    cfg = parse_ok(with_top("'timing':{'lan':{'status_min_ms':30000,'status_delay_ms':29999,"
                            "'offline_ms':60000}}"));
    pw_cfg_free(cfg);
}

/* A first start's facility: defaults on loopback, one root node of 0 A, no chargers, OCPP on;
 * serve's options move the listeners; its JSON is a draft the parser refuses as a file. */
static void test_commissioning(void **state)
{
    (void)state;
    pw_cfg_errors errs;
    pw_cfg *c = pw_cfg_commissioning_new(NULL, &errs);
    assert_non_null(c);
    assert_true(c->commissioning);
    assert_int_equal(c->n_nodes, 1);
    assert_int_equal(c->n_chargers, 0);
    assert_string_equal(c->nodes[0].id, "main");
    assert_int_equal(c->nodes[0].parent, -1);
    assert_true(c->nodes[0].limit_a[0] == 0 && c->nodes[0].limit_a[2] == 0);
    assert_int_equal(c->meters[0].kind, PW_CFG_LINK_NONE);
    assert_string_equal(c->net.interface, "127.0.0.1"); /* never a real LAN by default */
    assert_int_equal(c->net.port, PW_CFG_DEFAULT_PORT);
    assert_string_equal(c->http.addr, "127.0.0.1");
    assert_string_equal(c->ocpp.listen_addr, "127.0.0.1");
    assert_int_equal(c->ocpp.listen_port, 8887);
    pw_bal_facility f;
    pw_cfg_facility(c, &f);
    char why[256];
    assert_int_equal(pw_bal_validate(&f, why, sizeof why), 0);
    json_t *j = pw_cfg_to_json(c);
    assert_int_equal(json_array_size(json_object_get(j, "chargers")), 0);
    pw_cfg *again = pw_cfg_from_json(j, &errs);
    assert_null(again); /* a draft, never a file: no charger and no fuse rating */
    bool no_chargers = false;
    for (size_t i = 0; i < errs.count && i < PW_CFG_MAX_ERRORS; i++)
        no_chargers = no_chargers || strcmp(errs.items[i].field, "chargers") == 0;
    assert_true(no_chargers);
    /* The installer's config with the commissioning listeners waits for no restart. */
    json_object_set_new(json_array_get(json_object_get(j, "nodes"), 0), "limit_a",
                        json_integer(63));
    json_object_set_new(j, "chargers",
                        json_pack("[{s:s, s:i, s:s}]", "id", "c", "device_id", 1, "node", "main"));
    pw_cfg *saved = pw_cfg_from_json(j, &errs);
    assert_non_null(saved);
    assert_false(saved->commissioning);
    const char *out[PW_CFG_RESTART_FIELDS_MAX];
    assert_int_equal(pw_cfg_restart_fields(c, saved, out, PW_CFG_RESTART_FIELDS_MAX), 0);
    pw_cfg_free(saved);
    json_decref(j);
    pw_cfg_free(c);

    pw_cfg_first_start fs = {
        .http = "0.0.0.0:8080", .lan = "10.0.0.2:40000", .ocpp = "0.0.0.0:8887"};
    c = pw_cfg_commissioning_new(&fs, &errs);
    assert_non_null(c);
    assert_string_equal(c->http.addr, "0.0.0.0");
    assert_int_equal(c->http.port, 8080);
    assert_string_equal(c->net.interface, "10.0.0.2");
    assert_int_equal(c->net.port, 40000);
    assert_string_equal(c->ocpp.listen_addr, "0.0.0.0");
    pw_cfg_free(c);
    fs = (pw_cfg_first_start){.lan = "10.0.0.3"}; /* the group's port stays */
    c = pw_cfg_commissioning_new(&fs, &errs);
    assert_non_null(c);
    assert_string_equal(c->net.interface, "10.0.0.3");
    assert_int_equal(c->net.port, PW_CFG_DEFAULT_PORT);
    pw_cfg_free(c);

    static const struct {
        pw_cfg_first_start fs;
        const char *field;
    } bad[] = {
        {{.lan = "eth0"}, "--lan"},
        {{.lan = "10.0.0.2:0"}, "--lan"},
        {{.http = "8080"}, "--http"},
        {{.ocpp = "127.0.0.1:x"}, "--ocpp"},
        {{.http = "127.0.0.1:9000", .ocpp = "0.0.0.0:9000"}, "--ocpp"}, /* one port, two uses */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(pw_cfg_commissioning_new(&bad[i].fs, &errs));
        assert_string_equal(errs.items[0].field, bad[i].field);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_parses),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_link_forms),
        cmocka_unit_test(test_link_roundtrip),
        cmocka_unit_test(test_link_errors),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_link_helpers),
        cmocka_unit_test(test_restart_fields),
        cmocka_unit_test(test_restart_pending_accepted),
        cmocka_unit_test(test_largest_facility),
        cmocka_unit_test(test_save_roundtrip),
        cmocka_unit_test(test_wiring_text),
        cmocka_unit_test(test_modbus_meter),
        cmocka_unit_test(test_modbus_generic),
        cmocka_unit_test(test_modbus_identity),
        cmocka_unit_test(test_mqtt_meter),
        cmocka_unit_test(test_mqtt_identity),
        cmocka_unit_test(test_derive_l2),
        cmocka_unit_test(test_mqtt_broker),
        cmocka_unit_test(test_meter_roundtrip),
        cmocka_unit_test(test_ocpp_link),
        cmocka_unit_test(test_ocpp_link_errors),
        cmocka_unit_test(test_ocpp_section),
        cmocka_unit_test(test_ocpp_charge_points),
        cmocka_unit_test(test_ocpp_upstream),
        cmocka_unit_test(test_ocpp_quirk_names),
        cmocka_unit_test(test_ocpp_password),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_ocpp_roundtrip),
        cmocka_unit_test(test_ocpp_example),
        cmocka_unit_test(test_node_reserve),
        cmocka_unit_test(test_timing_defaults),
        cmocka_unit_test(test_timing_set),
        cmocka_unit_test(test_timing_errors),
        cmocka_unit_test(test_commissioning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
