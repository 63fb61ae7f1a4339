/* Operator commands from JSON (server/command_parse.c, pw_command_parse): every command form of
 * docs/api.md parses into the pw_command it means; unknown keys, wrong types, two commands, a
 * missing or misplaced charger or duration are refused naming the field, with cmd zeroed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "command.h"

static int parse(const char *text, pw_command *cmd, char *field)
{
    char err[256];
    return pw_command_parse(text, strlen(text), cmd, field, 64, err, sizeof err);
}

static void test_forms(void **state)
{
    (void)state;
    pw_command c;
    char f[64];
    assert_int_equal(parse("{\"charger\": \"a01\", \"pause\": true}", &c, f), 0);
    assert_int_equal(c.kind, PW_CMD_PAUSE);
    assert_true(c.pause);
    assert_string_equal(c.charger, "a01");
    assert_int_equal(parse("{\"pause\": false, \"charger\": \"a01\"}", &c, f), 0);
    assert_false(c.pause);
    assert_int_equal(parse("{\"charger\": \"a01\", \"max_current\": 10.5}", &c, f), 0);
    assert_int_equal(c.kind, PW_CMD_MAX_CURRENT);
    assert_false(c.clear);
    assert_float_equal(c.max_a, 10.5, 1e-9);
    assert_int_equal(parse("{\"charger\": \"a01\", \"max_current\": 16}", &c, f), 0);
    assert_float_equal(c.max_a, 16, 1e-9);
    assert_int_equal(parse("{\"charger\": \"a01\", \"max_current\": null}", &c, f), 0);
    assert_true(c.clear);
    assert_int_equal(parse("{\"charger\": \"a01\", \"priority\": -2}", &c, f), 0);
    assert_int_equal(c.kind, PW_CMD_PRIORITY);
    assert_int_equal(c.priority, -2);
    assert_int_equal(parse("{\"charger\": \"a01\", \"priority\": null}", &c, f), 0);
    assert_true(c.clear);
    assert_int_equal(parse("{\"facility_limit\": [32, 25.5, 30], \"duration_s\": 900}", &c, f), 0);
    assert_int_equal(c.kind, PW_CMD_FACILITY_LIMIT);
    assert_float_equal(c.limit_a[1], 25.5, 1e-9);
    assert_int_equal(c.duration_s, 900);
    assert_int_equal(parse("{\"duration_s\": 60, \"facility_limit\": 20}", &c, f), 0);
    assert_float_equal(c.limit_a[2], 20, 1e-9);
    assert_int_equal(parse("{\"facility_limit\": null}", &c, f), 0);
    assert_true(c.clear);
    assert_int_equal(c.kind, PW_CMD_FACILITY_LIMIT);
}

/* Each refusal names its field ("" when none) and leaves cmd zeroed. */
static void refused(const char *text, const char *field)
{
    pw_command c;
    char f[64], err[256];
    memset(&c, 0x5a, sizeof c);
    if (pw_command_parse(text, strlen(text), &c, f, sizeof f, err, sizeof err) == 0)
        fail_msg("accepted: %s", text);
    if (strcmp(f, field) != 0)
        fail_msg("%s: field '%s', expected '%s' (%s)", text, f, field, err);
    assert_true(err[0] != '\0');
    pw_command zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&c, &zero, sizeof c);
}

static void test_refused(void **state)
{
    (void)state;
    refused("", "");
    refused("[1]", "");
    refused("{\"charger\": \"a01\"", "");
    refused("{}", "");
    refused("{\"charger\": \"a01\"}", "");
    refused("{\"charger\": \"a01\", \"pause\": 1}", "pause");
    refused("{\"charger\": \"a01\", \"pause\": \"yes\"}", "pause");
    refused("{\"charger\": \"a01\", \"max_current\": \"10\"}", "max_current");
    refused("{\"charger\": \"a01\", \"priority\": 1.5}", "priority");
    refused("{\"charger\": \"a01\", \"priority\": 99999999999}", "priority");
    refused("{\"charger\": \"a01\", \"pause\": true, \"max_current\": 10}", "max_current");
    refused("{\"charger\": \"a01\", \"pause\": true, \"pause\": false}", "");
    refused("{\"charger\": \"a01\", \"pause\": true, \"colour\": 1}", "colour");
    refused("{\"pause\": true}", "charger");
    refused("{\"charger\": 7, \"pause\": true}", "charger");
    refused("{\"charger\": \"\", \"pause\": true}", "charger");
    refused("{\"charger\": \"0123456789012345678901234567890123\", \"pause\": true}", "charger");
    refused("{\"charger\": \"a01\", \"pause\": true, \"duration_s\": 5}", "duration_s");
    refused("{\"facility_limit\": [32, 32], \"duration_s\": 5}", "facility_limit");
    refused("{\"facility_limit\": [32, \"x\", 32], \"duration_s\": 5}", "facility_limit");
    refused("{\"facility_limit\": {\"l1\": 3}, \"duration_s\": 5}", "facility_limit");
    refused("{\"facility_limit\": [32, 32, 32]}", "duration_s");
    refused("{\"facility_limit\": [32, 32, 32], \"duration_s\": 1.5}", "duration_s");
    refused("{\"facility_limit\": [32, 32, 32], \"duration_s\": -1}", "duration_s");
    refused("{\"facility_limit\": null, \"duration_s\": 60}", "duration_s");
    refused("{\"facility_limit\": 20, \"duration_s\": 60, \"charger\": \"a01\"}", "charger");
    refused("{\"facility_limit\": 20, \"duration_s\": 60, \"pause\": true}", "pause");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
