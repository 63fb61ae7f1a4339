/* Config module: the demo facility parses, every kind of bad input is reported against the field
 * it concerns, and a saved config reads back identical. */
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
    assert_int_equal(cfg->meters[0].kind, PW_METER_PW);
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
    assert_int_equal(pw_cfg_charger_by_device(cfg, 7), 0);
    assert_int_equal(pw_cfg_charger_by_device(cfg, 8), -1);
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
        cmocka_unit_test(test_demo_parses),  cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_field_errors), cmocka_unit_test(test_save_roundtrip),
        cmocka_unit_test(test_wiring_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
