/* Config module: the demo facility parses, every kind of bad input is reported against the field
 * it concerns, a saved config reads back identical, links in the new and the old form mean the
 * same, restart-only changes are named, and the largest facility validates. */
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
    assert_int_equal(cfg->meters[0].kind, PW_CFG_LINK_LAN);
    assert_int_equal(cfg->meters[0].device_id, 900);
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
        "network.group",       "network.port",      "network.ttl", "network.key_file",
        "network.defa_meters", "network.defa_emit", "http.listen", "http.tls.enabled",
        "http.tls.cert_file",  "http.tls.key_file",
    };
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

    pw_cfg *list[] = {base, same, chargers, port, all, meters, emit};
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_parses),      cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_field_errors),     cmocka_unit_test(test_link_forms),
        cmocka_unit_test(test_link_roundtrip),   cmocka_unit_test(test_link_errors),
        cmocka_unit_test(test_duplicates),       cmocka_unit_test(test_link_helpers),
        cmocka_unit_test(test_restart_fields),   cmocka_unit_test(test_restart_pending_accepted),
        cmocka_unit_test(test_largest_facility), cmocka_unit_test(test_save_roundtrip),
        cmocka_unit_test(test_wiring_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
