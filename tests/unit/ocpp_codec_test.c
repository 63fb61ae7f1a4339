/* Unit tests of the OCPP 1.6J codec (ocpp/codec.c): frames, the schema checker's rules and error
 * codes with their field paths, the typed readers (MeterValues reduction, phases, units), time,
 * and every builder held to the same schema tables the decoders use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pw_ocpp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static int parse(const char *text, pw_ocpp_frame *f, pw_ocpp_fault *fault)
{
    return pw_ocpp_frame_parse(text, strlen(text), f, fault);
}

/* Decodes a CALL from a charge point; the frame is released (no borrowed pointers kept). */
static int call(const char *text, pw_ocpp_call *c, pw_ocpp_fault *fault)
{
    pw_ocpp_frame f;
    int rc = parse(text, &f, fault);
    assert_int_equal(rc, 0);
    rc = pw_ocpp_decode_call(&f, c, fault);
    pw_ocpp_frame_clear(&f);
    return rc;
}

static int cs_call(const char *text, pw_ocpp_cs_call *c, pw_ocpp_fault *fault)
{
    pw_ocpp_frame f;
    int rc = parse(text, &f, fault);
    assert_int_equal(rc, 0);
    rc = pw_ocpp_decode_cs_call(&f, c, fault);
    pw_ocpp_frame_clear(&f);
    return rc;
}

static void call_ok(const char *text, pw_ocpp_call *c)
{
    pw_ocpp_fault fault = {0};
    int rc = call(text, c, &fault);
    if (rc != 0)
        fail_msg("refused: %s", fault.text);
}

/* A CALL refused with this code and a fault text that starts with prefix. */
static void call_refused(const char *text, enum pw_ocpp_error code, const char *prefix)
{
    pw_ocpp_call c;
    pw_ocpp_fault fault = {0};
    assert_int_equal(call(text, &c, &fault), -1);
    if (fault.code != code || strncmp(fault.text, prefix, strlen(prefix)) != 0)
        fail_msg("%s\n  got %s: %s\n  want %s: %s...", text, pw_ocpp_error_name(fault.code),
                 fault.text, pw_ocpp_error_name(code), prefix);
}

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("bad test JSON: %s", err.text);
    return j;
}

/* Checks a payload of ours against an action's schema; takes the reference. */
static void schema_ok(enum pw_ocpp_action a, bool conf, json_t *payload)
{
    assert_non_null(payload);
    pw_ocpp_fault fault = {0};
    int rc = pw_ocpp_check_payload(a, conf, payload, &fault);
    if (rc != 0) {
        char *t = json_dumps(payload, JSON_COMPACT);
        fail_msg("%s%s does not hold to its schema: %s\n%s", pw_ocpp_action_name(a),
                 conf ? ".conf" : "", fault.text, t);
    }
    json_decref(payload);
}

static void result_refused(enum pw_ocpp_action a, const char *payload, enum pw_ocpp_error code,
                           const char *prefix)
{
    json_t *j = load(payload);
    enum pw_ocpp_answer st = PW_OCPP_ACCEPTED;
    pw_ocpp_fault fault = {0};
    assert_int_equal(pw_ocpp_decode_result(a, j, &st, NULL, &fault), -1);
    if (fault.code != code || strncmp(fault.text, prefix, strlen(prefix)) != 0)
        fail_msg("%s\n  got %s: %s\n  want %s: %s...", payload, pw_ocpp_error_name(fault.code),
                 fault.text, pw_ocpp_error_name(code), prefix);
    json_decref(j);
}

static enum pw_ocpp_answer result_status(enum pw_ocpp_action a, const char *payload)
{
    json_t *j = load(payload);
    enum pw_ocpp_answer st = (enum pw_ocpp_answer) - 1;
    pw_ocpp_fault fault = {0};
    if (pw_ocpp_decode_result(a, j, &st, NULL, &fault) != 0)
        fail_msg("%s: %s", payload, fault.text);
    json_decref(j);
    return st;
}

/* Field by field: padding bytes of these structs are unspecified, so no memcmp. */
static void status_equal(const pw_ocpp_status_note *a, const pw_ocpp_status_note *b)
{
    assert_int_equal(a->connector, b->connector);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->error_code, b->error_code);
    assert_string_equal(a->info, b->info);
    assert_string_equal(a->vendor_error, b->vendor_error);
    assert_int_equal(a->timestamp_ms, b->timestamp_ms);
}

static void meter_equal(const pw_ocpp_meter *a, const pw_ocpp_meter *b)
{
    assert_int_equal(a->connector, b->connector);
    assert_string_equal(a->tx_id, b->tx_id);
    assert_int_equal(a->timestamp_ms, b->timestamp_ms);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a->has_current[i], b->has_current[i]);
        assert_true(a->current_a[i] == b->current_a[i]);
    }
    assert_int_equal(a->has_current_total, b->has_current_total);
    assert_true(a->current_total_a == b->current_total_a);
    assert_int_equal(a->has_offered, b->has_offered);
    assert_true(a->offered_a == b->offered_a);
    assert_int_equal(a->has_energy, b->has_energy);
    assert_int_equal(a->energy_wh, b->energy_wh);
    assert_int_equal(a->has_power, b->has_power);
    assert_true(a->power_w == b->power_w);
    assert_int_equal(a->skipped, b->skipped);
}

static void start_equal(const pw_ocpp_start_tx *a, const pw_ocpp_start_tx *b)
{
    assert_int_equal(a->connector, b->connector);
    assert_string_equal(a->id_tag, b->id_tag);
    assert_int_equal(a->meter_start_wh, b->meter_start_wh);
    assert_int_equal(a->has_reservation, b->has_reservation);
    assert_int_equal(a->reservation_id, b->reservation_id);
    assert_int_equal(a->timestamp_ms, b->timestamp_ms);
}

static void stop_equal(const pw_ocpp_stop_tx *a, const pw_ocpp_stop_tx *b)
{
    assert_string_equal(a->tx_id, b->tx_id);
    assert_string_equal(a->id_tag, b->id_tag);
    assert_int_equal(a->meter_stop_wh, b->meter_stop_wh);
    assert_int_equal(a->timestamp_ms, b->timestamp_ms);
    assert_string_equal(a->reason, b->reason);
}

static void profile_equal(const pw_ocpp_profile *a, const pw_ocpp_profile *b)
{
    assert_int_equal(a->connector, b->connector);
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->stack_level, b->stack_level);
    assert_int_equal(a->purpose, b->purpose);
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->tx_id, b->tx_id);
    assert_int_equal(a->start_ms, b->start_ms);
    assert_int_equal(a->duration_s, b->duration_s);
    assert_int_equal(a->n_periods, b->n_periods);
    for (size_t i = 0; i < a->n_periods; i++) {
        assert_int_equal(a->periods[i].start_s, b->periods[i].start_s);
        assert_true(a->periods[i].limit_a == b->periods[i].limit_a);
        assert_int_equal(a->periods[i].phases, b->periods[i].phases);
    }
    assert_int_equal(a->watts, b->watts);
}

/* ---- names --------------------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    for (int a = 1; a < PW_OCPP_A_COUNT; a++)
        assert_int_equal(pw_ocpp_action_parse(pw_ocpp_action_name((enum pw_ocpp_action)a)), a);
    assert_int_equal(pw_ocpp_action_parse("bootnotification"), PW_OCPP_A_UNKNOWN);
    assert_string_equal(pw_ocpp_action_name(PW_OCPP_A_REMOTE_START), "RemoteStartTransaction");

    for (int e = PW_OCPP_NOT_IMPLEMENTED; e <= PW_OCPP_GENERIC_ERROR; e++)
        assert_int_equal(pw_ocpp_error_parse(pw_ocpp_error_name((enum pw_ocpp_error)e)), e);
    assert_string_equal(pw_ocpp_error_name(PW_OCPP_OCCURENCE_CONSTRAINT),
                        "OccurenceConstraintViolation");
    assert_string_equal(pw_ocpp_error_name(PW_OCPP_FORMATION_VIOLATION), "FormationViolation");
    /* OCPP 2.0 spellings some 1.6 stacks send. */
    assert_int_equal(pw_ocpp_error_parse("FormatViolation"), PW_OCPP_FORMATION_VIOLATION);
    assert_int_equal(pw_ocpp_error_parse("OccurrenceConstraintViolation"),
                     PW_OCPP_OCCURENCE_CONSTRAINT);
    assert_int_equal(pw_ocpp_error_parse("Nonsense"), PW_OCPP_GENERIC_ERROR);

    for (int s = PW_OCPP_AVAILABLE; s <= PW_OCPP_FAULTED; s++)
        assert_int_equal(pw_ocpp_status_parse(pw_ocpp_status_name((enum pw_ocpp_status)s)), s);
    assert_string_equal(pw_ocpp_status_name(PW_OCPP_SUSPENDED_EVSE), "SuspendedEVSE");
    assert_int_equal(pw_ocpp_status_parse("Charged"), -1);

    for (int a = PW_OCPP_ACCEPTED; a <= PW_OCPP_UNLOCK_FAILED; a++)
        assert_int_equal(pw_ocpp_answer_parse(pw_ocpp_answer_name((enum pw_ocpp_answer)a)), a);
    assert_string_equal(pw_ocpp_answer_name(PW_OCPP_UNKNOWN_VENDOR_ID), "UnknownVendorId");
    assert_int_equal(pw_ocpp_answer_parse("accepted"), -1);
}

/* ---- frames -------------------------------------------------------------------------------- */

static void test_frame_shapes(void **state)
{
    (void)state;
    pw_ocpp_frame f;
    pw_ocpp_fault fault;

    assert_int_equal(parse("[2,\"19223201\",\"Heartbeat\",{}]", &f, &fault), 0);
    assert_int_equal(f.kind, PW_OCPP_CALL);
    assert_string_equal(f.id, "19223201");
    assert_string_equal(f.action, "Heartbeat");
    assert_true(json_is_object(f.payload));
    pw_ocpp_frame_clear(&f);
    assert_null(f.payload);

    assert_int_equal(parse(" [3, \"a\", {\"status\": \"Accepted\"}] ", &f, &fault), 0);
    assert_int_equal(f.kind, PW_OCPP_RESULT);
    assert_string_equal(f.id, "a");
    assert_string_equal(json_string_value(json_object_get(f.payload, "status")), "Accepted");
    pw_ocpp_frame_clear(&f);

    assert_int_equal(parse("[4,\"7\",\"FormatViolation\",\"bad limit\",{\"x\":1}]", &f, &fault), 0);
    assert_int_equal(f.kind, PW_OCPP_ERROR);
    assert_int_equal(f.error, PW_OCPP_FORMATION_VIOLATION);
    assert_string_equal(f.error_text, "bad limit");
    assert_int_equal(json_integer_value(json_object_get(f.payload, "x")), 1);
    pw_ocpp_frame_clear(&f);

    /* An id of 36 characters is the longest taken. */
    const char *id36 = "[2,\"123456789012345678901234567890123456\",\"Heartbeat\",{}]";
    assert_int_equal(parse(id36, &f, &fault), 0);
    assert_int_equal(strlen(f.id), 36);
    pw_ocpp_frame_clear(&f);

    /* Refused, and nobody to answer. */
    static const char *const unanswerable[] = {
        "",
        "not json",
        "{\"a\":1}",
        "[]",
        "[\"2\",\"1\",\"Heartbeat\",{}]",
        "[5,\"1\",\"Heartbeat\",{}]",
        "[2.0,\"1\",\"Heartbeat\",{}]",
        "[2,1,\"Heartbeat\",{}]",
        "[2,\"\",\"Heartbeat\",{}]",
        "[2,\"1234567890123456789012345678901234567\",\"Heartbeat\",{}]",
        "[3,\"1\",[]]",
        "[3,\"1\",{},{}]",
        "[3,\"1\"]",
        "[4,\"1\",\"GenericError\",\"\"]",
        "[4,\"1\",\"GenericError\",7,{}]",
        "[4,\"1\",\"GenericError\",\"x\",null]",
        "[2,\"1\",\"Heartbeat\",{}] x",
    };
    for (size_t i = 0; i < sizeof unanswerable / sizeof *unanswerable; i++) {
        memset(&f, 0x5a, sizeof f);
        fault.code = PW_OCPP_OK;
        if (parse(unanswerable[i], &f, &fault) != -1)
            fail_msg("taken: %s", unanswerable[i]);
        assert_int_equal(fault.code, PW_OCPP_FORMATION_VIOLATION);
        assert_string_equal(f.id, "");
        assert_int_not_equal(f.kind, PW_OCPP_CALL);
        assert_null(f.payload);
        assert_true(fault.text[0] != '\0');
    }

    /* A CALL of the wrong shape keeps its id so it can be answered. */
    static const char *const answerable[] = {
        "[2,\"m-1\",\"Heartbeat\"]",
        "[2,\"m-1\",\"Heartbeat\",{},{}]",
        "[2,\"m-1\",\"Heartbeat\",[]]",
        "[2,\"m-1\",\"Heartbeat\",null]",
        "[2,\"m-1\",7,{}]",
        "[2,\"m-1\",\"Heartbeat\",{\"a\":1,\"a\":2}]",
    };
    for (size_t i = 0; i < sizeof answerable / sizeof *answerable; i++) {
        fault.code = PW_OCPP_OK;
        if (parse(answerable[i], &f, &fault) != -1)
            fail_msg("taken: %s", answerable[i]);
        /* Duplicate keys fail in jansson's parser, before the id is read. */
        if (strstr(answerable[i], "\"a\":2")) {
            assert_string_equal(f.id, "");
            continue;
        }
        assert_int_equal(fault.code, PW_OCPP_FORMATION_VIOLATION);
        assert_int_equal(f.kind, PW_OCPP_CALL);
        assert_string_equal(f.id, "m-1");
        assert_null(f.payload);
    }

    /* An action no name is that long: NotImplemented, answerable. */
    assert_int_equal(parse("[2,\"9\",\"ThisIsNoActionOfOcppOneSixAtAllReallyNot\",{}]", &f, &fault),
                     -1);
    assert_int_equal(fault.code, PW_OCPP_NOT_IMPLEMENTED);
    assert_string_equal(f.id, "9");
    assert_int_equal(f.kind, PW_OCPP_CALL);

    /* Too long: refused before parsing, even if it is valid JSON. */
    size_t big = PW_OCPP_MAX_FRAME + 1;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, ' ', big);
    memcpy(text, "[2,\"1\",\"Heartbeat\",{}]", 22);
    text[big] = '\0';
    assert_int_equal(pw_ocpp_frame_parse(text, big, &f, &fault), -1);
    assert_int_equal(fault.code, PW_OCPP_FORMATION_VIOLATION);
    assert_non_null(strstr(fault.text, "65537 bytes"));
    assert_string_equal(f.id, "");
    /* One byte less is taken. */
    assert_int_equal(pw_ocpp_frame_parse(text, big - 1, &f, &fault), 0);
    pw_ocpp_frame_clear(&f);
    free(text);

    /* Not NUL-terminated: only len bytes are read. */
    const char *longer = "[2,\"1\",\"Heartbeat\",{}]garbage";
    assert_int_equal(pw_ocpp_frame_parse(longer, 22, &f, &fault), 0);
    pw_ocpp_frame_clear(&f);
}

static void test_frame_text(void **state)
{
    (void)state;
    size_t len = 0;
    json_t *p = json_object();
    json_object_set_new(p, "limit", json_real(13.7));
    json_object_set_new(p, "x", json_real(0.1 + 0.2));
    json_object_set_new(p, "y", json_real(1.23456));
    char *t = pw_ocpp_call_text("abc-1", "Foo", p, &len);
    assert_string_equal(t, "[2,\"abc-1\",\"Foo\",{\"limit\":13.7,\"x\":0.3,\"y\":1.235}]");
    assert_int_equal(len, strlen(t));
    free(t);

    t = pw_ocpp_result_text("id\"7", json_object(), NULL);
    assert_string_equal(t, "[3,\"id\\\"7\",{}]");
    /* The id echoes back through the parser. */
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    assert_int_equal(parse(t, &f, &fault), 0);
    assert_string_equal(f.id, "id\"7");
    pw_ocpp_frame_clear(&f);
    free(t);

    t = pw_ocpp_error_text("42", PW_OCPP_PROPERTY_CONSTRAINT, "limit: too high", &len);
    assert_string_equal(t, "[4,\"42\",\"PropertyConstraintViolation\",\"limit: too high\",{}]");
    assert_int_equal(parse(t, &f, &fault), 0);
    assert_int_equal(f.kind, PW_OCPP_ERROR);
    assert_string_equal(f.id, "42");
    assert_int_equal(f.error, PW_OCPP_PROPERTY_CONSTRAINT);
    assert_string_equal(f.error_text, "limit: too high");
    pw_ocpp_frame_clear(&f);
    free(t);

    /* NULL description; a description that is not UTF-8 still gives valid JSON. */
    t = pw_ocpp_error_text("1", PW_OCPP_NOT_IMPLEMENTED, NULL, NULL);
    assert_string_equal(t, "[4,\"1\",\"NotImplemented\",\"\",{}]");
    free(t);
    t = pw_ocpp_error_text("1", PW_OCPP_GENERIC_ERROR, "bad \xff byte", NULL);
    assert_int_equal(parse(t, &f, &fault), 0);
    assert_string_equal(f.error_text, "bad ? byte");
    pw_ocpp_frame_clear(&f);
    free(t);

    /* A builder's NULL (bad input) passes through as NULL. */
    assert_null(pw_ocpp_result_text("1", NULL, NULL));
    assert_null(pw_ocpp_call_text("1", "Foo", NULL, NULL));
}

/* ---- time ---------------------------------------------------------------------------------- */

static int64_t ms_of(const char *text)
{
    int64_t ms = -1;
    if (pw_ocpp_time_parse(text, &ms) != 0)
        fail_msg("refused: %s", text);
    return ms;
}

static void test_time(void **state)
{
    (void)state;
    /* Checked against `date -u -d ... +%s`. */
    assert_int_equal(ms_of("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ms_of("2026-12-05T21:20:51Z"), INT64_C(1796505651000));
    assert_int_equal(ms_of("2026-12-05T21:20:51.5Z"), INT64_C(1796505651500));
    assert_int_equal(ms_of("2026-12-05T21:20:51.123456789Z"), INT64_C(1796505651123));
    assert_int_equal(ms_of("2026-12-05t21:20:51.12z"), INT64_C(1796505651120));
    assert_int_equal(ms_of("2026-12-05 22:20:51+01:00"), INT64_C(1796505651000));
    assert_int_equal(ms_of("2026-12-05T16:50:51-0430"), INT64_C(1796505651000));
    assert_int_equal(ms_of("2026-12-06T00:20:51+03"), INT64_C(1796505651000));
    assert_int_equal(ms_of("2024-02-29T12:00:00Z"), INT64_C(1709208000000));
    assert_int_equal(ms_of("2000-02-29T00:00:00Z"), INT64_C(951782400000));
    assert_int_equal(ms_of("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(ms_of("0000-01-01T00:00:00Z"), INT64_C(-62167219200000));
    assert_int_equal(ms_of("9999-12-31T23:59:59.999Z"), INT64_C(253402300799999));
    /* A leap second is taken at 23:59 UTC only, as the second before it. */
    assert_int_equal(ms_of("2016-12-31T23:59:60Z"), ms_of("2016-12-31T23:59:59Z"));
    assert_int_equal(ms_of("2017-01-01T00:59:60+01:00"), ms_of("2016-12-31T23:59:59Z"));

    static const char *const bad[] = {
        "",
        "2023-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* century, not a leap year */
        "2024-02-30T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T12:00:60Z", /* leap second not at 23:59 UTC */
        "2024-01-01T23:59:60+01:00",
        "2024-01-01T12:00:00", /* no zone */
        "2024-01-01T12:00:00+01:",
        "2024-01-01T12:00:00+24:00",
        "2024-01-01T12:00:00+01:60",
        "2024-01-01T12:00:00.Z",
        "2024-01-01T12:00:00ZZ",
        "2024-01-01X12:00:00Z",
        "2024-1-01T12:00:00Z",
        "24-01-01T12:00:00Z",
        "2024-01-01T12:00Z",
        "2024-01-01",
        "+2024-01-01T12:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 42;
        if (pw_ocpp_time_parse(bad[i], &ms) != -1)
            fail_msg("taken: \"%s\"", bad[i]);
        assert_int_equal(ms, 42);
    }

    char buf[32];
    pw_ocpp_time_format(INT64_C(1796505651000), buf, sizeof buf);
    assert_string_equal(buf, "2026-12-05T21:20:51.000Z");
    pw_ocpp_time_format(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    pw_ocpp_time_format(INT64_MAX, buf, sizeof buf);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    pw_ocpp_time_format(INT64_MIN, buf, sizeof buf);
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    char small[25];
    pw_ocpp_time_format(INT64_C(951782400123), small, sizeof small);
    assert_string_equal(small, "2000-02-29T00:00:00.123Z");

    /* Round trips over 0000..9999, days and milliseconds, in a time zone with DST: libc's TZ
     * state must not matter. */
    setenv("TZ", "America/New_York", 1);
    tzset();
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x % UINT64_C(315537897600000)) - INT64_C(62167219200000);
        pw_ocpp_time_format(ms, buf, sizeof buf);
        int64_t back;
        assert_int_equal(pw_ocpp_time_parse(buf, &back), 0);
        assert_int_equal(back, ms);
    }
    assert_int_equal(ms_of("2026-07-01T12:00:00Z"), INT64_C(1782907200000));
    unsetenv("TZ");
    tzset();
}

/* ---- charge point calls: the spec's examples ----------------------------------------------- */

static void test_boot_and_simple_calls(void **state)
{
    (void)state;
    pw_ocpp_call c;
    call_ok("[2,\"1\",\"BootNotification\",{\"chargePointVendor\":\"VendorX\","
            "\"chargePointModel\":\"SingleSocketCharger\",\"chargePointSerialNumber\":\"cp-1\","
            "\"chargeBoxSerialNumber\":\"box-1\",\"firmwareVersion\":\"1.2.3\","
            "\"iccid\":\"8931\",\"imsi\":\"2040\",\"meterType\":\"ABB B23\","
            "\"meterSerialNumber\":\"m-77\"}]",
            &c);
    assert_int_equal(c.action, PW_OCPP_A_BOOT_NOTIFICATION);
    assert_string_equal(c.u.boot.vendor, "VendorX");
    assert_string_equal(c.u.boot.model, "SingleSocketCharger");
    assert_string_equal(c.u.boot.serial, "cp-1");
    assert_string_equal(c.u.boot.box_serial, "box-1");
    assert_string_equal(c.u.boot.firmware, "1.2.3");
    assert_string_equal(c.u.boot.meter_type, "ABB B23");
    assert_string_equal(c.u.boot.meter_serial, "m-77");

    /* 20 characters of 2 bytes each: valid (maxLength counts characters); the name is kept cut
     * at a character boundary. */
    call_ok("[2,\"1\",\"BootNotification\",{\"chargePointVendor\":"
            "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\","
            "\"chargePointModel\":\"M\"}]",
            &c);
    assert_int_equal(strlen(c.u.boot.vendor), 20);
    assert_memory_equal(c.u.boot.vendor, "\xc3\xa9\xc3\xa9", 4);

    call_ok("[2,\"2\",\"Heartbeat\",{}]", &c);
    assert_int_equal(c.action, PW_OCPP_A_HEARTBEAT);

    call_ok("[2,\"3\",\"Authorize\",{\"idTag\":\"04E2A1B2C3D4E5F60718\"}]", &c);
    assert_int_equal(c.action, PW_OCPP_A_AUTHORIZE);
    assert_string_equal(c.u.id_tag, "04E2A1B2C3D4E5F60718");

    call_ok("[2,\"4\",\"StatusNotification\",{\"connectorId\":1,\"errorCode\":\"NoError\","
            "\"info\":\"ok\",\"status\":\"SuspendedEVSE\",\"timestamp\":\"2026-12-05T21:20:51Z\","
            "\"vendorId\":\"acme\",\"vendorErrorCode\":\"E0\"}]",
            &c);
    assert_int_equal(c.u.status.connector, 1);
    assert_int_equal(c.u.status.status, PW_OCPP_SUSPENDED_EVSE);
    assert_string_equal(c.u.status.error_code, "NoError");
    assert_string_equal(c.u.status.info, "ok");
    assert_string_equal(c.u.status.vendor_error, "E0");
    assert_int_equal(c.u.status.timestamp_ms, INT64_C(1796505651000));
    call_ok("[2,\"4\",\"StatusNotification\",{\"connectorId\":0,\"errorCode\":\"GroundFailure\","
            "\"status\":\"Faulted\"}]",
            &c);
    assert_int_equal(c.u.status.connector, 0);
    assert_int_equal(c.u.status.status, PW_OCPP_FAULTED);
    assert_int_equal(c.u.status.timestamp_ms, 0);

    call_ok("[2,\"5\",\"StartTransaction\",{\"connectorId\":2,\"idTag\":\"TAG1\","
            "\"meterStart\":12345,\"reservationId\":7,\"timestamp\":\"2026-12-05T21:20:51Z\"}]",
            &c);
    assert_int_equal(c.u.start.connector, 2);
    assert_string_equal(c.u.start.id_tag, "TAG1");
    assert_int_equal(c.u.start.meter_start_wh, 12345);
    assert_true(c.u.start.has_reservation);
    assert_int_equal(c.u.start.reservation_id, 7);
    assert_int_equal(c.u.start.timestamp_ms, INT64_C(1796505651000));
    /* A register past 32 bits is kept. */
    call_ok("[2,\"5\",\"StartTransaction\",{\"connectorId\":1,\"idTag\":\"T\","
            "\"meterStart\":5000000000,\"timestamp\":\"2026-12-05T21:20:51Z\"}]",
            &c);
    assert_int_equal(c.u.start.meter_start_wh, INT64_C(5000000000));
    assert_false(c.u.start.has_reservation);

    call_ok("[2,\"6\",\"StopTransaction\",{\"idTag\":\"TAG1\",\"meterStop\":20000,"
            "\"timestamp\":\"2026-12-05T22:00:00Z\",\"transactionId\":1234567,"
            "\"reason\":\"EVDisconnected\",\"transactionData\":[{\"timestamp\":"
            "\"2026-12-05T22:00:00Z\",\"sampledValue\":[{\"value\":\"20000\"}]}]}]",
            &c);
    assert_string_equal(c.u.stop.tx_id, "1234567");
    assert_string_equal(c.u.stop.id_tag, "TAG1");
    assert_int_equal(c.u.stop.meter_stop_wh, 20000);
    assert_string_equal(c.u.stop.reason, "EVDisconnected");
    call_ok("[2,\"6\",\"StopTransaction\",{\"meterStop\":1,\"timestamp\":\"2026-12-05T22:00:00Z\","
            "\"transactionId\":-3}]",
            &c);
    assert_string_equal(c.u.stop.tx_id, "-3");
    assert_string_equal(c.u.stop.id_tag, "");
    assert_string_equal(c.u.stop.reason, "");

    call_ok("[2,\"7\",\"DiagnosticsStatusNotification\",{\"status\":\"Uploaded\"}]", &c);
    assert_string_equal(c.u.text, "Uploaded");
    call_ok("[2,\"8\",\"FirmwareStatusNotification\",{\"status\":\"InstallationFailed\"}]", &c);
    assert_string_equal(c.u.text, "InstallationFailed");

    /* DataTransfer's data is borrowed from the frame. */
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    assert_int_equal(parse("[2,\"9\",\"DataTransfer\",{\"vendorId\":\"com.acme\","
                           "\"messageId\":\"hello\",\"data\":\"{\\\"a\\\":1}\"}]",
                           &f, &fault),
                     0);
    assert_int_equal(pw_ocpp_decode_call(&f, &c, &fault), 0);
    assert_string_equal(c.u.data.vendor_id, "com.acme");
    assert_string_equal(c.u.data.message_id, "hello");
    assert_string_equal(c.u.data.data, "{\"a\":1}");
    pw_ocpp_frame_clear(&f);
    call_ok("[2,\"9\",\"DataTransfer\",{\"vendorId\":\"v\"}]", &c);
    assert_null(c.u.data.data);
    assert_string_equal(c.u.data.message_id, "");
}

/* ---- schema violations --------------------------------------------------------------------- */

static void test_violations(void **state)
{
    (void)state;
    const enum pw_ocpp_error occ = PW_OCPP_OCCURENCE_CONSTRAINT, prop = PW_OCPP_PROPERTY_CONSTRAINT,
                             type = PW_OCPP_TYPE_CONSTRAINT, form = PW_OCPP_FORMATION_VIOLATION;
    /* Missing required. */
    call_refused("[2,\"1\",\"BootNotification\",{\"chargePointVendor\":\"V\"}]", occ,
                 "BootNotification.chargePointModel: required, missing");
    call_refused("[2,\"1\",\"StopTransaction\",{\"meterStop\":1,\"timestamp\":"
                 "\"2026-12-05T22:00:00Z\"}]",
                 occ, "StopTransaction.transactionId: required, missing");
    /* additionalProperties false, at the top and nested. */
    call_refused("[2,\"1\",\"Heartbeat\",{\"x\":1}]", occ,
                 "Heartbeat.x: not a property of this message");
    call_refused("[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":[{\"timestamp\":"
                 "\"2026-12-05T22:00:00Z\",\"sampledValue\":[{\"value\":\"1\",\"Unit\":\"W\"}]}]}]",
                 occ, "MeterValues.meterValue[0].sampledValue[0].Unit: not a property");
    /* Wrong JSON type of a scalar. */
    call_refused("[2,\"1\",\"Authorize\",{\"idTag\":42}]", type,
                 "Authorize.idTag: a string is due, not an integer");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":\"1\",\"errorCode\":"
                 "\"NoError\",\"status\":\"Available\"}]",
                 type, "StatusNotification.connectorId: an integer is due, not a string");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":1.5,\"errorCode\":"
                 "\"NoError\",\"status\":\"Available\"}]",
                 type, "StatusNotification.connectorId: an integer is due, not a number");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":true,\"errorCode\":"
                 "\"NoError\",\"status\":\"Available\"}]",
                 type, "StatusNotification.connectorId: an integer is due, not a boolean");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":1,\"errorCode\":null,"
                 "\"status\":\"Available\"}]",
                 type, "StatusNotification.errorCode: a string is due, not null");
    /* JSON Schema's integer: 1.0 is one. */
    pw_ocpp_call c;
    call_ok("[2,\"1\",\"StatusNotification\",{\"connectorId\":1.0,\"errorCode\":\"NoError\","
            "\"status\":\"Available\"}]",
            &c);
    assert_int_equal(c.u.status.connector, 1);
    /* Enum, length, format, range. */
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":1,\"errorCode\":\"NoError\","
                 "\"status\":\"Charged\"}]",
                 prop,
                 "StatusNotification.status: \"Charged\" is not one of Available, Preparing, "
                 "Charging, SuspendedEVSE");
    call_refused("[2,\"1\",\"Authorize\",{\"idTag\":\"123456789012345678901\"}]", prop,
                 "Authorize.idTag: 21 characters, at most 20 are allowed");
    call_refused("[2,\"1\",\"StartTransaction\",{\"connectorId\":1,\"idTag\":\"T\","
                 "\"meterStart\":0,\"timestamp\":\"2026-02-29T00:00:00Z\"}]",
                 prop, "StartTransaction.timestamp: \"2026-02-29T00:00:00Z\" is not an RFC 3339");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":-1,\"errorCode\":\"NoError\","
                 "\"status\":\"Available\"}]",
                 prop, "StatusNotification.connectorId: -1 is not in 0..2147483647");
    call_refused("[2,\"1\",\"StartTransaction\",{\"connectorId\":0,\"idTag\":\"T\","
                 "\"meterStart\":0,\"timestamp\":\"2026-02-28T00:00:00Z\"}]",
                 prop, "StartTransaction.connectorId: 0 is not in 1..2147483647");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":4294967296,\"errorCode\":"
                 "\"NoError\",\"status\":\"Available\"}]",
                 prop, "StatusNotification.connectorId: 4294967296 is not in");
    call_refused("[2,\"1\",\"StatusNotification\",{\"connectorId\":1e300,\"errorCode\":"
                 "\"NoError\",\"status\":\"Available\"}]",
                 prop, "StatusNotification.connectorId: 1.0000000000000001e+300 is not in");
    /* Objects and arrays of the wrong type: the structure is wrong. */
    call_refused("[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":{}}]", form,
                 "MeterValues.meterValue: an array is due, not an object");
    call_refused("[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":[7]}]", form,
                 "MeterValues.meterValue[0]: an object is due, not an integer");
    call_refused("[2,\"1\",\"Authorize\",{\"idTag\":\"T\",\"x\":{}}]", occ, "Authorize.x");
    /* The path of a sample deep in the message. */
    call_refused("[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":[{\"timestamp\":"
                 "\"2026-12-05T22:00:00Z\",\"sampledValue\":[{\"value\":\"1\"},{\"value\":\"2\"},"
                 "{\"value\":\"3\",\"unit\":\"Amp\"}]}]}]",
                 prop,
                 "MeterValues.meterValue[0].sampledValue[2].unit: \"Amp\" is not one of Wh, kWh");
    /* The value of a sample is a string in the schema. */
    call_refused("[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":[{\"timestamp\":"
                 "\"2026-12-05T22:00:00Z\",\"sampledValue\":[{\"value\":16.5}]}]}]",
                 type, "MeterValues.meterValue[0].sampledValue[0].value: a string is due");
    /* StopTransaction's transactionData follows the same rules. */
    call_refused("[2,\"1\",\"StopTransaction\",{\"meterStop\":1,\"timestamp\":"
                 "\"2026-12-05T22:00:00Z\",\"transactionId\":1,\"transactionData\":[{"
                 "\"sampledValue\":[]}]}]",
                 occ, "StopTransaction.transactionData[0].timestamp: required, missing");
    /* A 21-character idTag of multi-byte characters is too long; 20 of them fit the schema
     * but not phasewise's 20-byte field: refused, never cut. */
    call_refused("[2,\"1\",\"Authorize\",{\"idTag\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}]",
                 prop, "Authorize.idTag: 40 bytes of UTF-8, phasewise keeps at most 20");
    /* Fault texts do not carry control characters from the peer. */
    pw_ocpp_fault fault;
    assert_int_equal(call("[2,\"1\",\"Reset\\n\\u0007\",{}]", &c, &fault), -1);
    assert_int_equal(fault.code, PW_OCPP_NOT_IMPLEMENTED);
    assert_null(strchr(fault.text, '\n'));
    assert_null(strchr(fault.text, '\a'));
    assert_string_equal(fault.text, "\"Reset??\" is not an OCPP 1.6 action");
}

static void test_actions(void **state)
{
    (void)state;
    call_refused("[2,\"1\",\"Foo\",{}]", PW_OCPP_NOT_IMPLEMENTED,
                 "\"Foo\" is not an OCPP 1.6 action");
    call_refused("[2,\"1\",\"heartbeat\",{}]", PW_OCPP_NOT_IMPLEMENTED, "\"heartbeat\"");
    call_refused("[2,\"1\",\"\",{}]", PW_OCPP_NOT_IMPLEMENTED, "\"\" is not");
    /* Known to OCPP 1.6 but not a charge point's to send: NotSupported. */
    call_refused("[2,\"1\",\"SetChargingProfile\",{}]", PW_OCPP_NOT_SUPPORTED,
                 "SetChargingProfile is not taken here");
    call_refused("[2,\"1\",\"GetDiagnostics\",{}]", PW_OCPP_NOT_SUPPORTED, "GetDiagnostics");
    call_refused("[2,\"1\",\"SecurityEventNotification\",{}]", PW_OCPP_NOT_SUPPORTED, "Security");

    pw_ocpp_cs_call c;
    pw_ocpp_fault fault;
    assert_int_equal(cs_call("[2,\"1\",\"BootNotification\",{}]", &c, &fault), -1);
    assert_int_equal(fault.code, PW_OCPP_NOT_SUPPORTED);
    assert_int_equal(cs_call("[2,\"1\",\"Reset\",{\"type\":\"Hard\"}]", &c, &fault), -1);
    assert_int_equal(fault.code, PW_OCPP_NOT_SUPPORTED);
    assert_int_equal(cs_call("[2,\"1\",\"Bar\",{}]", &c, &fault), -1);
    assert_int_equal(fault.code, PW_OCPP_NOT_IMPLEMENTED);

    /* Only a CALL decodes as one. */
    pw_ocpp_frame f;
    assert_int_equal(parse("[3,\"1\",{}]", &f, &fault), 0);
    pw_ocpp_call cc;
    assert_int_equal(pw_ocpp_decode_call(&f, &cc, &fault), -1);
    assert_int_equal(pw_ocpp_decode_cs_call(&f, &c, &fault), -1);
    pw_ocpp_frame_clear(&f);
}

/* ---- MeterValues --------------------------------------------------------------------------- */

#define MV_HEAD "[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":[{\"timestamp\":"
#define TS      "\"2026-12-05T22:00:00Z\""

static void test_meter_phases(void **state)
{
    (void)state;
    pw_ocpp_call c;
    call_ok(MV_HEAD TS ",\"sampledValue\":["
                       "{\"value\":\"16.1\",\"measurand\":\"Current.Import\",\"phase\":\"L1\","
                       "\"unit\":\"A\"},"
                       "{\"value\":\"15.2\",\"measurand\":\"Current.Import\",\"phase\":\"L2-N\"},"
                       "{\"value\":\"14.3\",\"measurand\":\"Current.Import\",\"phase\":\"L3\"},"
                       "{\"value\":\"3.0\",\"measurand\":\"Current.Import\",\"phase\":\"N\"},"
                       "{\"value\":\"9\",\"measurand\":\"Current.Import\",\"phase\":\"L1-L2\"},"
                       "{\"value\":\"230\",\"measurand\":\"Voltage\",\"phase\":\"L1-N\"}"
                       "]}]}]",
            &c);
    const pw_ocpp_meter *m = &c.u.meter;
    assert_int_equal(m->connector, 1);
    assert_string_equal(m->tx_id, "");
    assert_int_equal(m->timestamp_ms, ms_of("2026-12-05T22:00:00Z"));
    assert_true(m->has_current[0] && m->has_current[1] && m->has_current[2]);
    assert_true(m->current_a[0] == 16.1 && m->current_a[1] == 15.2 && m->current_a[2] == 14.3);
    assert_false(m->has_current_total);
    assert_false(m->has_energy);
    /* N, L1-L2 and the voltage were not used. */
    assert_int_equal(m->skipped, 3);

    /* Without a phase: the unphased total, nothing per phase. */
    call_ok(MV_HEAD TS ",\"sampledValue\":[{\"value\":\"10\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"16\",\"measurand\":\"Current.Offered\",\"unit\":\"A\"}]}]}]",
            &c);
    assert_true(m->has_current_total);
    assert_true(m->current_total_a == 10.0);
    assert_false(m->has_current[0] || m->has_current[1] || m->has_current[2]);
    assert_true(m->has_offered);
    assert_true(m->offered_a == 16.0);
    assert_int_equal(m->skipped, 0);
}

static void test_meter_units(void **state)
{
    (void)state;
    pw_ocpp_call c;
    const pw_ocpp_meter *m = &c.u.meter;
    /* No measurand: Energy.Active.Import.Register; no unit: Wh. */
    call_ok(MV_HEAD TS ",\"sampledValue\":[{\"value\":\"1234.6\"}]}]}]", &c);
    assert_true(m->has_energy);
    assert_int_equal(m->energy_wh, 1235);
    call_ok(MV_HEAD TS ",\"sampledValue\":[{\"value\":\"12.345\",\"unit\":\"kWh\"},"
                       "{\"value\":\"7.4\",\"measurand\":\"Power.Active.Import\",\"unit\":\"kW\"}"
                       "]}]}]",
            &c);
    assert_int_equal(m->energy_wh, 12345);
    assert_true(m->has_power);
    assert_true(fabs(m->power_w - 7400.0) < 1e-9);
    call_ok(MV_HEAD TS ",\"sampledValue\":[{\"value\":\"3680\",\"measurand\":"
                       "\"Power.Active.Import\",\"unit\":\"W\"}]}]}]",
            &c);
    assert_true(m->power_w == 3680.0);
    /* Energy and power only per phase: summed. */
    call_ok(MV_HEAD TS ",\"sampledValue\":["
                       "{\"value\":\"100\",\"phase\":\"L1\"},{\"value\":\"200\",\"phase\":\"L2\"},"
                       "{\"value\":\"1\",\"measurand\":\"Power.Active.Import\",\"unit\":\"kW\","
                       "\"phase\":\"L1-N\"},"
                       "{\"value\":\"2\",\"measurand\":\"Power.Active.Import\",\"unit\":\"kW\","
                       "\"phase\":\"L3-N\"}]}]}]",
            &c);
    assert_int_equal(m->energy_wh, 300);
    assert_true(m->power_w == 3000.0);
    /* Units that do not fit the measurand, signed data, garbage and non-finite values are
     * skipped and counted. */
    call_ok(MV_HEAD TS ",\"sampledValue\":["
                       "{\"value\":\"5\",\"measurand\":\"Current.Import\",\"unit\":\"W\"},"
                       "{\"value\":\"5\",\"unit\":\"varh\"},"
                       "{\"value\":\"5\",\"measurand\":\"Power.Active.Import\",\"unit\":\"A\"},"
                       "{\"value\":\"ABCD\",\"format\":\"SignedData\"},"
                       "{\"value\":\"abc\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"nan\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"inf\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"1e999\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"0x10\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"\",\"measurand\":\"Current.Import\"},"
                       "{\"value\":\"-5\"},"
                       "{\"value\":\" 6.5 \",\"measurand\":\"Current.Import\",\"phase\":\"L2\"}"
                       "]}]}]",
            &c);
    assert_int_equal(m->skipped, 11);
    assert_false(m->has_energy || m->has_power || m->has_current_total || m->has_current[0]);
    assert_true(m->has_current[1] && m->current_a[1] == 6.5);
}

static void test_meter_newest(void **state)
{
    (void)state;
    pw_ocpp_call c;
    const pw_ocpp_meter *m = &c.u.meter;
    /* Out of order: the newest entry wins, whatever its place. */
    call_ok("[2,\"1\",\"MeterValues\",{\"connectorId\":2,\"transactionId\":99,\"meterValue\":["
            "{\"timestamp\":\"2026-12-05T22:00:10Z\",\"sampledValue\":[{\"value\":\"300\"}]},"
            "{\"timestamp\":\"2026-12-05T22:00:30+00:00\",\"sampledValue\":[{\"value\":\"500\"}]},"
            "{\"timestamp\":\"2026-12-05T22:00:20Z\",\"sampledValue\":[{\"value\":\"400\"}]}]}]",
            &c);
    assert_int_equal(m->connector, 2);
    assert_string_equal(m->tx_id, "99");
    assert_int_equal(m->energy_wh, 500);
    assert_int_equal(m->timestamp_ms, ms_of("2026-12-05T22:00:30Z"));
    /* Equal timestamps: the later one. */
    call_ok("[2,\"1\",\"MeterValues\",{\"connectorId\":1,\"meterValue\":["
            "{\"timestamp\":" TS ",\"sampledValue\":[{\"value\":\"1\"}]},"
            "{\"timestamp\":" TS ",\"sampledValue\":[{\"value\":\"2\"}]}]}]",
            &c);
    assert_int_equal(m->energy_wh, 2);
    /* No entries at all is valid and says nothing. */
    call_ok("[2,\"1\",\"MeterValues\",{\"connectorId\":0,\"meterValue\":[]}]", &c);
    assert_false(m->has_energy);
    assert_int_equal(m->timestamp_ms, 0);
}

/* ---- results of phasewise's calls ---------------------------------------------------------- */

static void test_results(void **state)
{
    (void)state;
    assert_int_equal(
        result_status(PW_OCPP_A_CHANGE_CONFIGURATION, "{\"status\":\"RebootRequired\"}"),
        PW_OCPP_REBOOT_REQUIRED);
    assert_int_equal(result_status(PW_OCPP_A_SET_CHARGING_PROFILE, "{\"status\":\"NotSupported\"}"),
                     PW_OCPP_ANSWER_NOT_SUPPORTED);
    assert_int_equal(result_status(PW_OCPP_A_CLEAR_CHARGING_PROFILE, "{\"status\":\"Unknown\"}"),
                     PW_OCPP_ANSWER_UNKNOWN);
    assert_int_equal(result_status(PW_OCPP_A_TRIGGER_MESSAGE, "{\"status\":\"NotImplemented\"}"),
                     PW_OCPP_ANSWER_NOT_IMPLEMENTED);
    assert_int_equal(result_status(PW_OCPP_A_CHANGE_AVAILABILITY, "{\"status\":\"Scheduled\"}"),
                     PW_OCPP_SCHEDULED);
    assert_int_equal(result_status(PW_OCPP_A_REMOTE_START, "{\"status\":\"Rejected\"}"),
                     PW_OCPP_REJECTED);
    assert_int_equal(result_status(PW_OCPP_A_REMOTE_STOP, "{\"status\":\"Accepted\"}"),
                     PW_OCPP_ACCEPTED);
    assert_int_equal(result_status(PW_OCPP_A_RESET, "{\"status\":\"Rejected\"}"), PW_OCPP_REJECTED);
    assert_int_equal(result_status(PW_OCPP_A_UNLOCK_CONNECTOR, "{\"status\":\"UnlockFailed\"}"),
                     PW_OCPP_UNLOCK_FAILED);
    assert_int_equal(result_status(PW_OCPP_A_STATUS_NOTIFICATION, "{}"), PW_OCPP_ACCEPTED);

    /* Each status is only valid for its own action. */
    result_refused(PW_OCPP_A_SET_CHARGING_PROFILE, "{\"status\":\"RebootRequired\"}",
                   PW_OCPP_PROPERTY_CONSTRAINT,
                   "SetChargingProfile.conf.status: \"RebootRequired\" is not one of Accepted, "
                   "Rejected, NotSupported");
    result_refused(PW_OCPP_A_CHANGE_CONFIGURATION, "{}", PW_OCPP_OCCURENCE_CONSTRAINT,
                   "ChangeConfiguration.conf.status: required, missing");
    result_refused(PW_OCPP_A_TRIGGER_MESSAGE, "{\"status\":\"Accepted\",\"extra\":1}",
                   PW_OCPP_OCCURENCE_CONSTRAINT, "TriggerMessage.conf.extra: not a property");
    result_refused(PW_OCPP_A_UNLOCK_CONNECTOR, "{\"status\":1}", PW_OCPP_TYPE_CONSTRAINT,
                   "UnlockConnector.conf.status: a string is due");
    result_refused(PW_OCPP_A_GET_CONFIGURATION, "[]", PW_OCPP_FORMATION_VIOLATION,
                   "GetConfiguration.conf: an object is due, not an array");
    result_refused(PW_OCPP_A_GET_CONFIGURATION,
                   "{\"configurationKey\":[{\"key\":\"K\",\"readonly\":\"no\"}]}",
                   PW_OCPP_TYPE_CONSTRAINT,
                   "GetConfiguration.conf.configurationKey[0].readonly: a boolean is due");
    result_refused(PW_OCPP_A_GET_CONFIGURATION, "{\"configurationKey\":[{\"key\":\"K\"}]}",
                   PW_OCPP_OCCURENCE_CONSTRAINT,
                   "GetConfiguration.conf.configurationKey[0].readonly: required, missing");
    result_refused(PW_OCPP_A_GET_CONFIGURATION, "{\"unknownKey\":[1]}", PW_OCPP_TYPE_CONSTRAINT,
                   "GetConfiguration.conf.unknownKey[0]: a string is due");
    json_t *j = load("{}");
    pw_ocpp_fault fault;
    assert_int_equal(pw_ocpp_decode_result(PW_OCPP_A_UNKNOWN, j, NULL, NULL, &fault), -1);
    json_decref(j);
}

static void test_get_configuration_answer(void **state)
{
    (void)state;
    /* 66 keys (Key1 of 50 two-byte characters: valid, but more bytes than a key holds here) and
     * 10 unknown keys. */
    json_t *keys = json_array();
    for (int i = 0; i < 66; i++) {
        char k[128];
        if (i == 1) {
            k[0] = '\0';
            for (int n = 0; n < 50; n++)
                strcat(k, "\xc3\xa9");
        } else {
            snprintf(k, sizeof k, "Key%d", i);
        }
        json_t *o = json_pack("{s:s, s:b}", "key", k, "readonly", i % 2);
        if (i % 3 == 0)
            json_object_set_new(o, "value", json_string(i == 0 ? "" : "v"));
        json_array_append_new(keys, o);
    }
    json_t *unknown = json_array();
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "U%d", i);
        json_array_append_new(unknown, json_string(k));
    }
    json_t *p = json_pack("{s:o, s:o}", "configurationKey", keys, "unknownKey", unknown);
    pw_ocpp_config_answer *a = malloc(sizeof *a);
    assert_non_null(a);
    enum pw_ocpp_answer st;
    pw_ocpp_fault fault;
    assert_int_equal(pw_ocpp_decode_result(PW_OCPP_A_GET_CONFIGURATION, p, &st, a, &fault), 0);
    assert_int_equal(st, PW_OCPP_ACCEPTED);
    assert_int_equal(a->n_keys, PW_OCPP_MAX_KEYS);
    /* Dropped: Key1, the one past 64 keys, and the 2 unknown past 8. */
    assert_int_equal(a->n_dropped, 1 + 1 + 2);
    assert_string_equal(a->keys[0].key, "Key0");
    assert_true(a->keys[0].has_value);
    assert_string_equal(a->keys[0].value, "");
    assert_false(a->keys[0].readonly);
    assert_string_equal(a->keys[1].key, "Key2");
    assert_true(a->keys[1].readonly == false);
    assert_false(a->keys[1].has_value);
    assert_string_equal(a->keys[2].key, "Key3");
    assert_true(a->keys[2].readonly);
    assert_true(a->keys[2].has_value);
    assert_string_equal(a->keys[2].value, "v");
    assert_int_equal(a->n_unknown, 8);
    assert_string_equal(a->unknown[7], "U7");
    json_decref(p);

    /* An empty answer is valid. */
    p = load("{}");
    assert_int_equal(pw_ocpp_decode_result(PW_OCPP_A_GET_CONFIGURATION, p, NULL, a, &fault), 0);
    assert_int_equal(a->n_keys, 0);
    json_decref(p);
    free(a);
}

static void test_cp_results(void **state)
{
    (void)state;
    enum pw_ocpp_answer st;
    int interval = 0;
    char tx[PW_OCPP_TXID_LEN] = "";
    pw_ocpp_fault fault;
    json_t *p = load("{\"status\":\"Pending\",\"currentTime\":\"2026-12-05T21:20:51Z\","
                     "\"interval\":300}");
    assert_int_equal(
        pw_ocpp_decode_cp_result(PW_OCPP_A_BOOT_NOTIFICATION, p, &st, &interval, tx, &fault), 0);
    assert_int_equal(st, PW_OCPP_PENDING);
    assert_int_equal(interval, 300);
    json_decref(p);

    p = load("{\"idTagInfo\":{\"status\":\"ConcurrentTx\",\"parentIdTag\":\"P\","
             "\"expiryDate\":\"2027-01-01T00:00:00Z\"},\"transactionId\":424242}");
    assert_int_equal(
        pw_ocpp_decode_cp_result(PW_OCPP_A_START_TRANSACTION, p, &st, NULL, tx, &fault), 0);
    assert_int_equal(st, PW_OCPP_CONCURRENT_TX);
    assert_string_equal(tx, "424242");
    json_decref(p);

    p = load("{}");
    st = PW_OCPP_BLOCKED;
    assert_int_equal(
        pw_ocpp_decode_cp_result(PW_OCPP_A_STOP_TRANSACTION, p, &st, NULL, NULL, &fault), 0);
    assert_int_equal(st, PW_OCPP_ACCEPTED);
    json_decref(p);

    p = load("{\"idTagInfo\":{\"status\":\"Blocked\"}}");
    assert_int_equal(pw_ocpp_decode_cp_result(PW_OCPP_A_AUTHORIZE, p, &st, NULL, NULL, &fault), 0);
    assert_int_equal(st, PW_OCPP_BLOCKED);
    json_decref(p);

    p = load("{\"status\":\"UnknownVendorId\",\"data\":\"x\"}");
    assert_int_equal(pw_ocpp_decode_cp_result(PW_OCPP_A_DATA_TRANSFER, p, &st, NULL, NULL, &fault),
                     0);
    assert_int_equal(st, PW_OCPP_UNKNOWN_VENDOR_ID);
    json_decref(p);

    /* Violations. */
    static const struct {
        enum pw_ocpp_action a;
        const char *payload;
        enum pw_ocpp_error code;
        const char *prefix;
    } bad[] = {
        {PW_OCPP_A_BOOT_NOTIFICATION,
         "{\"status\":\"Accepted\",\"currentTime\":\"2026-12-05T21:20:51Z\",\"interval\":\"300\"}",
         PW_OCPP_TYPE_CONSTRAINT, "BootNotification.conf.interval: an integer is due"},
        {PW_OCPP_A_BOOT_NOTIFICATION, "{\"status\":\"Accepted\",\"interval\":300}",
         PW_OCPP_OCCURENCE_CONSTRAINT, "BootNotification.conf.currentTime: required"},
        {PW_OCPP_A_HEARTBEAT, "{\"currentTime\":\"yesterday\"}", PW_OCPP_PROPERTY_CONSTRAINT,
         "Heartbeat.conf.currentTime: \"yesterday\" is not an RFC 3339"},
        {PW_OCPP_A_START_TRANSACTION,
         "{\"idTagInfo\":{\"status\":\"Accepted\"},"
         "\"transactionId\":\"1\"}",
         PW_OCPP_TYPE_CONSTRAINT, "StartTransaction.conf.transactionId: an integer is due"},
        {PW_OCPP_A_AUTHORIZE, "{\"idTagInfo\":{}}", PW_OCPP_OCCURENCE_CONSTRAINT,
         "Authorize.conf.idTagInfo.status: required, missing"},
        {PW_OCPP_A_AUTHORIZE, "{\"idTagInfo\":\"Accepted\"}", PW_OCPP_FORMATION_VIOLATION,
         "Authorize.conf.idTagInfo: an object is due, not a string"},
        {PW_OCPP_A_STATUS_NOTIFICATION, "{\"status\":\"Accepted\"}", PW_OCPP_OCCURENCE_CONSTRAINT,
         "StatusNotification.conf.status: not a property"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = load(bad[i].payload);
        fault.code = PW_OCPP_OK;
        assert_int_equal(pw_ocpp_decode_cp_result(bad[i].a, p, &st, NULL, NULL, &fault), -1);
        if (fault.code != bad[i].code ||
            strncmp(fault.text, bad[i].prefix, strlen(bad[i].prefix)) != 0)
            fail_msg("%s: got %s %s", bad[i].payload, pw_ocpp_error_name(fault.code), fault.text);
        json_decref(p);
    }
}

/* ---- the charge point side: a central system's calls --------------------------------------- */

static void test_cs_calls(void **state)
{
    (void)state;
    pw_ocpp_cs_call c;
    pw_ocpp_fault fault;
    /* The spec's example of a TxProfile, with everything. */
    const char *set =
        "[2,\"1\",\"SetChargingProfile\",{\"connectorId\":1,\"csChargingProfiles\":{"
        "\"chargingProfileId\":158798,\"transactionId\":7,\"stackLevel\":1,"
        "\"chargingProfilePurpose\":\"TxProfile\",\"chargingProfileKind\":"
        "\"Recurring\",\"recurrencyKind\":\"Weekly\",\"validFrom\":"
        "\"2026-01-01T00:00:00Z\",\"validTo\":\"2027-01-01T00:00:00Z\","
        "\"chargingSchedule\":{\"duration\":86400,\"startSchedule\":"
        "\"2026-12-05T00:00:00Z\",\"chargingRateUnit\":\"W\",\"chargingSchedulePeriod\":"
        "[{\"startPeriod\":0,\"limit\":11000.0,\"numberPhases\":3},"
        "{\"startPeriod\":28800,\"limit\":6000.5,\"numberPhases\":1}],"
        "\"minChargingRate\":1400.0}}}]";
    assert_int_equal(cs_call(set, &c, &fault), 0);
    assert_int_equal(c.action, PW_OCPP_A_SET_CHARGING_PROFILE);
    const pw_ocpp_profile *p = &c.u.profile;
    assert_int_equal(p->connector, 1);
    assert_int_equal(p->id, 158798);
    assert_int_equal(p->stack_level, 1);
    assert_int_equal(p->purpose, PW_OCPP_TX);
    assert_int_equal(p->kind, PW_OCPP_RECURRING_WEEKLY);
    assert_string_equal(p->tx_id, "7");
    assert_int_equal(p->start_ms, ms_of("2026-12-05T00:00:00Z"));
    assert_int_equal(p->duration_s, 86400);
    assert_true(p->watts);
    assert_int_equal(p->n_periods, 2);
    assert_int_equal(p->periods[1].start_s, 28800);
    assert_true(p->periods[1].limit_a == 6000.5);
    assert_int_equal(p->periods[1].phases, 1);

    static const struct {
        const char *text;
        enum pw_ocpp_error code;
        const char *prefix;
    } bad[] = {
        {"[2,\"1\",\"SetChargingProfile\",{\"connectorId\":1,\"csChargingProfiles\":{"
         "\"chargingProfileId\":1,\"stackLevel\":0,\"chargingProfilePurpose\":\"TxDefaultProfile\","
         "\"chargingProfileKind\":\"Relative\",\"chargingSchedule\":{\"chargingRateUnit\":\"A\","
         "\"chargingSchedulePeriod\":[{\"startPeriod\":0,\"limit\":13.75}]}}}]",
         PW_OCPP_PROPERTY_CONSTRAINT,
         "SetChargingProfile.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit: "
         "13.75 is not a multiple of 0.1"},
        {"[2,\"1\",\"SetChargingProfile\",{\"connectorId\":1,\"csChargingProfiles\":{"
         "\"chargingProfileId\":1,\"stackLevel\":0,\"chargingProfilePurpose\":\"TxDefaultProfile\","
         "\"chargingProfileKind\":\"Relative\",\"chargingSchedule\":{\"chargingRateUnit\":\"A\","
         "\"chargingSchedulePeriod\":[{\"startPeriod\":0,\"limit\":6,\"numberPhases\":4}]}}}]",
         PW_OCPP_PROPERTY_CONSTRAINT,
         "SetChargingProfile.csChargingProfiles.chargingSchedule."
         "chargingSchedulePeriod[0].numberPhases: 4 is not in 1..3"},
        {"[2,\"1\",\"SetChargingProfile\",{\"connectorId\":1,\"csChargingProfiles\":{"
         "\"chargingProfileId\":1,\"stackLevel\":0,\"chargingProfilePurpose\":\"TxDefaultProfile\","
         "\"chargingProfileKind\":\"Relative\",\"chargingSchedule\":{"
         "\"chargingSchedulePeriod\":[]}}}]",
         PW_OCPP_OCCURENCE_CONSTRAINT,
         "SetChargingProfile.csChargingProfiles.chargingSchedule.chargingRateUnit: required"},
        {"[2,\"1\",\"SetChargingProfile\",{\"connectorId\":1,\"csChargingProfiles\":{"
         "\"chargingProfileId\":1,\"stackLevel\":0,\"chargingProfilePurpose\":\"TxDefaultProfile\","
         "\"chargingProfileKind\":\"Relative\",\"chargingSchedule\":{\"chargingRateUnit\":\"A\","
         "\"chargingSchedulePeriod\":[{\"startPeriod\":0,\"limit\":1},{\"startPeriod\":1,\"limit\":"
         "1},"
         "{\"startPeriod\":2,\"limit\":1},{\"startPeriod\":3,\"limit\":1},{\"startPeriod\":4,"
         "\"limit\":1},"
         "{\"startPeriod\":5,\"limit\":1},{\"startPeriod\":6,\"limit\":1},{\"startPeriod\":7,"
         "\"limit\":1},"
         "{\"startPeriod\":8,\"limit\":1}]}}}]",
         PW_OCPP_OCCURENCE_CONSTRAINT,
         "SetChargingProfile.csChargingProfiles.chargingSchedule."
         "chargingSchedulePeriod: 9 periods, at most 8"},
        {"[2,\"1\",\"ClearChargingProfile\",{\"chargingProfilePurpose\":\"Tx\"}]",
         PW_OCPP_PROPERTY_CONSTRAINT, "ClearChargingProfile.chargingProfilePurpose: \"Tx\""},
        {"[2,\"1\",\"GetConfiguration\",{\"key\":\"HeartbeatInterval\"}]",
         PW_OCPP_FORMATION_VIOLATION, "GetConfiguration.key: an array is due, not a string"},
        {"[2,\"1\",\"ChangeConfiguration\",{\"key\":\"HeartbeatInterval\",\"value\":300}]",
         PW_OCPP_TYPE_CONSTRAINT, "ChangeConfiguration.value: a string is due"},
        {"[2,\"1\",\"TriggerMessage\",{\"requestedMessage\":\"StartTransaction\"}]",
         PW_OCPP_PROPERTY_CONSTRAINT, "TriggerMessage.requestedMessage: \"StartTransaction\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fault.code = PW_OCPP_OK;
        assert_int_equal(cs_call(bad[i].text, &c, &fault), -1);
        if (fault.code != bad[i].code ||
            strncmp(fault.text, bad[i].prefix, strlen(bad[i].prefix)) != 0)
            fail_msg("%s\n got %s: %s", bad[i].text, pw_ocpp_error_name(fault.code), fault.text);
    }

    assert_int_equal(cs_call("[2,\"1\",\"ClearChargingProfile\",{}]", &c, &fault), 0);
    assert_false(c.u.clear.has_id || c.u.clear.has_connector || c.u.clear.has_purpose ||
                 c.u.clear.has_stack_level);
    assert_int_equal(cs_call("[2,\"1\",\"ClearChargingProfile\",{\"id\":5,\"connectorId\":0,"
                             "\"chargingProfilePurpose\":\"ChargePointMaxProfile\","
                             "\"stackLevel\":2}]",
                             &c, &fault),
                     0);
    assert_true(c.u.clear.has_id && c.u.clear.has_connector && c.u.clear.has_purpose &&
                c.u.clear.has_stack_level);
    assert_int_equal(c.u.clear.id, 5);
    assert_int_equal(c.u.clear.connector, 0);
    assert_int_equal(c.u.clear.purpose, PW_OCPP_CHARGE_POINT_MAX);
    assert_int_equal(c.u.clear.stack_level, 2);

    assert_int_equal(cs_call("[2,\"1\",\"GetConfiguration\",{\"key\":[\"A\",\"B\"]}]", &c, &fault),
                     0);
    assert_int_equal(c.u.get_config.n, 2);
    assert_string_equal(c.u.get_config.keys[1], "B");
    assert_int_equal(cs_call("[2,\"1\",\"GetConfiguration\",{}]", &c, &fault), 0);
    assert_int_equal(c.u.get_config.n, 0);

    assert_int_equal(
        cs_call("[2,\"1\",\"ChangeConfiguration\",{\"key\":\"MeterValueSampleInterval\","
                "\"value\":\"10\"}]",
                &c, &fault),
        0);
    assert_string_equal(c.u.change_config.key, "MeterValueSampleInterval");
    assert_string_equal(c.u.change_config.value, "10");

    assert_int_equal(cs_call("[2,\"1\",\"TriggerMessage\",{\"requestedMessage\":\"MeterValues\","
                             "\"connectorId\":2}]",
                             &c, &fault),
                     0);
    assert_string_equal(c.u.trigger.message, "MeterValues");
    assert_int_equal(c.u.trigger.connector, 2);
    assert_int_equal(
        cs_call("[2,\"1\",\"TriggerMessage\",{\"requestedMessage\":\"Heartbeat\"}]", &c, &fault),
        0);
    assert_int_equal(c.u.trigger.connector, -1);
}

/* ---- builders against the schemas ---------------------------------------------------------- */

/* The checker is not vacuous: each kind of drift from a schema is caught. */
static void test_checker_catches_drift(void **state)
{
    (void)state;
    pw_ocpp_fault fault;
    static const struct {
        enum pw_ocpp_action a;
        bool conf;
        const char *payload;
        enum pw_ocpp_error code;
    } bad[] = {
        {PW_OCPP_A_HEARTBEAT, true, "{\"currentTime\":\"2026-12-05T21:20:51.000Z\",\"x\":1}",
         PW_OCPP_OCCURENCE_CONSTRAINT},
        {PW_OCPP_A_BOOT_NOTIFICATION, true,
         "{\"status\":\"Accepted\",\"currentTime\":\"2026-12-05T21:20:51.000Z\",\"interval\":300."
         "5}",
         PW_OCPP_TYPE_CONSTRAINT},
        {PW_OCPP_A_START_TRANSACTION, true, "{\"idTagInfo\":{\"status\":\"Accepted\"}}",
         PW_OCPP_OCCURENCE_CONSTRAINT},
        {PW_OCPP_A_SET_CHARGING_PROFILE, false,
         "{\"connectorId\":1,\"csChargingProfiles\":{\"chargingProfileId\":1,\"stackLevel\":0,"
         "\"chargingProfilePurpose\":\"TxDefaultProfile\",\"chargingProfileKind\":\"Absolute\","
         "\"chargingSchedule\":{\"chargingRateUnit\":\"A\",\"chargingSchedulePeriod\":"
         "[{\"startPeriod\":0,\"limit\":13.699999999999999}]}}}",
         PW_OCPP_OK /* within ocpp-rpc's 1e-6: taken */},
        {PW_OCPP_A_SET_CHARGING_PROFILE, false,
         "{\"connectorId\":1,\"csChargingProfiles\":{\"chargingProfileId\":1,\"stackLevel\":0,"
         "\"chargingProfilePurpose\":\"TxDefaultProfile\",\"chargingProfileKind\":\"Absolute\","
         "\"chargingSchedule\":{\"chargingRateUnit\":\"A\",\"chargingSchedulePeriod\":"
         "[{\"startPeriod\":0,\"limit\":13.72}]}}}",
         PW_OCPP_PROPERTY_CONSTRAINT},
        {PW_OCPP_A_TRIGGER_MESSAGE, false, "{\"requestedMessage\":\"Reset\"}",
         PW_OCPP_PROPERTY_CONSTRAINT},
        {PW_OCPP_A_CHANGE_CONFIGURATION, false,
         "{\"key\":\"123456789012345678901234567890123456789012345678901\",\"value\":\"\"}",
         PW_OCPP_PROPERTY_CONSTRAINT},
        {PW_OCPP_A_GET_CONFIGURATION, false, "{\"key\":[]}", PW_OCPP_OK},
        {PW_OCPP_A_STOP_TRANSACTION, true, "{\"idTagInfo\":{\"status\":\"Pending\"}}",
         PW_OCPP_PROPERTY_CONSTRAINT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = load(bad[i].payload);
        fault.code = PW_OCPP_OK;
        int rc = pw_ocpp_check_payload(bad[i].a, bad[i].conf, j, &fault);
        if (rc != (bad[i].code == PW_OCPP_OK ? 0 : -1) || fault.code != bad[i].code)
            fail_msg("%s: rc %d, %s %s", bad[i].payload, rc, pw_ocpp_error_name(fault.code),
                     fault.text);
        json_decref(j);
    }
    json_t *j = json_object();
    assert_int_equal(pw_ocpp_check_payload(PW_OCPP_A_UNKNOWN, false, j, &fault), -1);
    assert_int_equal(fault.code, PW_OCPP_NOT_IMPLEMENTED);
    json_decref(j);
}

static void test_cs_builders_hold_to_schema(void **state)
{
    (void)state;
    const int64_t now = INT64_C(1796505651000);
    /* Every combination of purpose and kind, periods with and without phases. */
    for (int purpose = PW_OCPP_CHARGE_POINT_MAX; purpose <= PW_OCPP_TX; purpose++) {
        for (int kind = PW_OCPP_ABSOLUTE; kind <= PW_OCPP_RECURRING_WEEKLY; kind++) {
            pw_ocpp_profile p = {.connector = purpose == PW_OCPP_CHARGE_POINT_MAX ? 0 : 2,
                                 .id = 100 + kind,
                                 .stack_level = purpose,
                                 .purpose = (enum pw_ocpp_purpose)purpose,
                                 .kind = (enum pw_ocpp_profile_kind)kind,
                                 .tx_id = "1234",
                                 .start_ms = kind == PW_OCPP_RELATIVE ? 0 : now,
                                 .duration_s = kind == PW_OCPP_ABSOLUTE ? 3600 : 0,
                                 .n_periods = 3,
                                 .periods = {{0, 13.7, 3}, {600, 6.04, 1}, {1200, 0, 0}}};
            schema_ok(PW_OCPP_A_SET_CHARGING_PROFILE, false, pw_ocpp_set_profile_req(&p));
        }
    }
    /* One decimal, written as such: 13.7 stays 13.7, 6.04 becomes 6.0. */
    pw_ocpp_profile p = {.connector = 1,
                         .id = 1,
                         .purpose = PW_OCPP_TX_DEFAULT,
                         .kind = PW_OCPP_RELATIVE,
                         .n_periods = 2,
                         .periods = {{0, 13.7, 0}, {60, 6.04, 1}}};
    char *t = pw_ocpp_call_text("1", "SetChargingProfile", pw_ocpp_set_profile_req(&p), NULL);
    assert_string_equal(t,
                        "[2,\"1\",\"SetChargingProfile\",{\"connectorId\":1,\"csChargingProfiles\":"
                        "{\"chargingProfileId\":1,\"stackLevel\":0,\"chargingProfilePurpose\":"
                        "\"TxDefaultProfile\",\"chargingProfileKind\":\"Relative\","
                        "\"chargingSchedule\":{\"chargingRateUnit\":\"A\","
                        "\"chargingSchedulePeriod\":[{\"startPeriod\":0,\"limit\":13.7},"
                        "{\"startPeriod\":60,\"limit\":6.0,\"numberPhases\":1}]}}}]");
    free(t);
    /* A TxProfile's transaction id must be an integer on the wire. */
    pw_ocpp_profile bad = {.purpose = PW_OCPP_TX, .tx_id = "tx-1", .n_periods = 1};
    assert_null(pw_ocpp_set_profile_req(&bad));

    schema_ok(PW_OCPP_A_CLEAR_CHARGING_PROFILE, false,
              pw_ocpp_clear_profile_req(-1, -1, false, PW_OCPP_TX, -1));
    schema_ok(PW_OCPP_A_CLEAR_CHARGING_PROFILE, false,
              pw_ocpp_clear_profile_req(7, 1, true, PW_OCPP_TX_DEFAULT, 1));
    json_t *j = pw_ocpp_clear_profile_req(-1, 2, true, PW_OCPP_TX, -1);
    assert_null(json_object_get(j, "id"));
    assert_null(json_object_get(j, "stackLevel"));
    assert_int_equal(json_integer_value(json_object_get(j, "connectorId")), 2);
    json_decref(j);

    static const char *const keys[] = {"MeterValueSampleInterval", "ConnectorPhaseRotation"};
    schema_ok(PW_OCPP_A_GET_CONFIGURATION, false, pw_ocpp_get_configuration_req(NULL, 0));
    schema_ok(PW_OCPP_A_GET_CONFIGURATION, false, pw_ocpp_get_configuration_req(keys, 2));
    schema_ok(PW_OCPP_A_CHANGE_CONFIGURATION, false,
              pw_ocpp_change_configuration_req("MeterValuesSampledData",
                                               "Current.Import,Current.Offered,"
                                               "Energy.Active.Import.Register"));
    static const char *const triggers[] = {"BootNotification",
                                           "DiagnosticsStatusNotification",
                                           "FirmwareStatusNotification",
                                           "Heartbeat",
                                           "MeterValues",
                                           "StatusNotification"};
    for (size_t i = 0; i < 6; i++) {
        schema_ok(PW_OCPP_A_TRIGGER_MESSAGE, false, pw_ocpp_trigger_req(triggers[i], -1));
        schema_ok(PW_OCPP_A_TRIGGER_MESSAGE, false, pw_ocpp_trigger_req(triggers[i], 1));
    }
    assert_null(pw_ocpp_trigger_req("StartTransaction", 1));

    /* Answers to a charge point's calls. */
    for (int s = PW_OCPP_ACCEPTED; s <= PW_OCPP_PENDING; s++) {
        if (s == PW_OCPP_ACCEPTED || s == PW_OCPP_REJECTED || s == PW_OCPP_PENDING)
            schema_ok(PW_OCPP_A_BOOT_NOTIFICATION, true,
                      pw_ocpp_boot_conf((enum pw_ocpp_answer)s, now, 300));
    }
    schema_ok(PW_OCPP_A_HEARTBEAT, true, pw_ocpp_heartbeat_conf(now));
    schema_ok(PW_OCPP_A_HEARTBEAT, true, pw_ocpp_heartbeat_conf(0));
    static const enum pw_ocpp_action empty_ones[] = {
        PW_OCPP_A_STATUS_NOTIFICATION, PW_OCPP_A_METER_VALUES, PW_OCPP_A_DIAGNOSTICS_STATUS,
        PW_OCPP_A_FIRMWARE_STATUS};
    for (size_t i = 0; i < 4; i++)
        schema_ok(empty_ones[i], true, pw_ocpp_empty_conf());
    static const enum pw_ocpp_answer id_status[] = {
        PW_OCPP_ACCEPTED, PW_OCPP_BLOCKED, PW_OCPP_EXPIRED, PW_OCPP_INVALID, PW_OCPP_CONCURRENT_TX};
    for (size_t i = 0; i < 5; i++) {
        schema_ok(PW_OCPP_A_AUTHORIZE, true, pw_ocpp_authorize_conf(id_status[i]));
        schema_ok(PW_OCPP_A_START_TRANSACTION, true, pw_ocpp_start_conf("17", id_status[i]));
        schema_ok(PW_OCPP_A_STOP_TRANSACTION, true, pw_ocpp_stop_conf((int)id_status[i]));
    }
    schema_ok(PW_OCPP_A_STOP_TRANSACTION, true, pw_ocpp_stop_conf(-1));
    /* Every answer value, also those an action's schema does not have, gives a valid payload:
     * a local tag list's "Rejected" goes out as idTagInfo's "Invalid". */
    for (int a = PW_OCPP_ACCEPTED; a <= PW_OCPP_UNLOCK_FAILED; a++) {
        enum pw_ocpp_answer s = (enum pw_ocpp_answer)a;
        schema_ok(PW_OCPP_A_AUTHORIZE, true, pw_ocpp_authorize_conf(s));
        schema_ok(PW_OCPP_A_START_TRANSACTION, true, pw_ocpp_start_conf("1", s));
        schema_ok(PW_OCPP_A_STOP_TRANSACTION, true, pw_ocpp_stop_conf(a));
        schema_ok(PW_OCPP_A_BOOT_NOTIFICATION, true, pw_ocpp_boot_conf(s, now, 60));
        schema_ok(PW_OCPP_A_DATA_TRANSFER, true, pw_ocpp_data_transfer_conf(s));
    }
    json_t *inv = pw_ocpp_authorize_conf(PW_OCPP_REJECTED);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(inv, "idTagInfo"), "status")), "Invalid");
    json_decref(inv);
    assert_null(pw_ocpp_start_conf("17a", PW_OCPP_ACCEPTED));
    assert_null(pw_ocpp_start_conf("", PW_OCPP_ACCEPTED));
    static const enum pw_ocpp_answer dt_status[] = {
        PW_OCPP_ACCEPTED, PW_OCPP_REJECTED, PW_OCPP_UNKNOWN_MESSAGE_ID, PW_OCPP_UNKNOWN_VENDOR_ID};
    for (size_t i = 0; i < 4; i++)
        schema_ok(PW_OCPP_A_DATA_TRANSFER, true, pw_ocpp_data_transfer_conf(dt_status[i]));

    /* What a boot answer and a start answer read back as. */
    json_t *b = pw_ocpp_boot_conf(PW_OCPP_ACCEPTED, now, 300);
    assert_string_equal(json_string_value(json_object_get(b, "currentTime")),
                        "2026-12-05T21:20:51.000Z");
    json_decref(b);
    json_t *s = pw_ocpp_start_conf("-17", PW_OCPP_ACCEPTED);
    char tx[PW_OCPP_TXID_LEN];
    enum pw_ocpp_answer st;
    pw_ocpp_fault fault;
    assert_int_equal(
        pw_ocpp_decode_cp_result(PW_OCPP_A_START_TRANSACTION, s, &st, NULL, tx, &fault), 0);
    assert_string_equal(tx, "-17");
    json_decref(s);
}

/* A charge point's call through text and back. */
static void round_trip(enum pw_ocpp_action a, json_t *payload, pw_ocpp_call *out)
{
    assert_non_null(payload);
    json_incref(payload);
    schema_ok(a, false, payload);
    char *t = pw_ocpp_call_text("rt", pw_ocpp_action_name(a), payload, NULL);
    call_ok(t, out);
    assert_int_equal(out->action, a);
    free(t);
}

static void test_cp_builders_round_trip(void **state)
{
    (void)state;
    pw_ocpp_call c;
    const int64_t now = INT64_C(1796505651123);

    pw_ocpp_boot b = {.vendor = "phasewise",
                      .model = "sim-3p",
                      .serial = "s1",
                      .firmware = "0.1.0",
                      .meter_type = "virtual"};
    round_trip(PW_OCPP_A_BOOT_NOTIFICATION, pw_ocpp_boot_req(&b), &c);
    assert_memory_equal(&c.u.boot, &b, sizeof b);
    pw_ocpp_boot minimal = {.vendor = "v", .model = "m"};
    round_trip(PW_OCPP_A_BOOT_NOTIFICATION, pw_ocpp_boot_req(&minimal), &c);
    assert_memory_equal(&c.u.boot, &minimal, sizeof minimal);

    round_trip(PW_OCPP_A_HEARTBEAT, pw_ocpp_heartbeat_req(), &c);

    for (int s = PW_OCPP_AVAILABLE; s <= PW_OCPP_FAULTED; s++) {
        pw_ocpp_status_note n = {.connector = s % 3,
                                 .status = (enum pw_ocpp_status)s,
                                 .error_code = "NoError",
                                 .timestamp_ms = s % 2 ? now : 0};
        if (s == PW_OCPP_FAULTED) {
            strcpy(n.error_code, "OverCurrentFailure");
            strcpy(n.info, "tripped");
            strcpy(n.vendor_error, "E42");
        }
        round_trip(PW_OCPP_A_STATUS_NOTIFICATION, pw_ocpp_status_req(&n), &c);
        status_equal(&c.u.status, &n);
    }
    /* An empty error code is written as NoError; no timestamp, none written. */
    pw_ocpp_status_note n0 = {.connector = 1, .status = PW_OCPP_CHARGING};
    json_t *sj = pw_ocpp_status_req(&n0);
    assert_null(json_object_get(sj, "timestamp"));
    assert_null(json_object_get(sj, "info"));
    json_decref(sj);
    round_trip(PW_OCPP_A_STATUS_NOTIFICATION, pw_ocpp_status_req(&n0), &c);
    assert_string_equal(c.u.status.error_code, "NoError");

    pw_ocpp_meter m = {.connector = 1,
                       .tx_id = "77",
                       .timestamp_ms = now,
                       .has_current = {true, true, true},
                       .current_a = {16.1, 0, 13.75},
                       .has_offered = true,
                       .offered_a = 16,
                       .has_energy = true,
                       .energy_wh = UINT64_C(123456789),
                       .has_power = true,
                       .power_w = 7012.5};
    round_trip(PW_OCPP_A_METER_VALUES, pw_ocpp_meter_req(&m), &c);
    meter_equal(&c.u.meter, &m);
    pw_ocpp_meter m2 = {
        .connector = 2, .timestamp_ms = now, .has_current_total = true, .current_total_a = 6.5};
    round_trip(PW_OCPP_A_METER_VALUES, pw_ocpp_meter_req(&m2), &c);
    meter_equal(&c.u.meter, &m2);
    pw_ocpp_meter m3 = {.connector = 1, .tx_id = "x"};
    assert_null(pw_ocpp_meter_req(&m3));

    pw_ocpp_start_tx s = {.connector = 1,
                          .id_tag = "04E2A1B2C3D4E5F60718",
                          .meter_start_wh = 1000,
                          .has_reservation = true,
                          .reservation_id = 3,
                          .timestamp_ms = now};
    round_trip(PW_OCPP_A_START_TRANSACTION, pw_ocpp_start_req(&s), &c);
    start_equal(&c.u.start, &s);

    pw_ocpp_stop_tx st = {.tx_id = "77",
                          .id_tag = "T",
                          .meter_stop_wh = 9000,
                          .timestamp_ms = now,
                          .reason = "Local"};
    round_trip(PW_OCPP_A_STOP_TRANSACTION, pw_ocpp_stop_req(&st), &c);
    stop_equal(&c.u.stop, &st);
    pw_ocpp_stop_tx st2 = {.tx_id = "1", .timestamp_ms = now};
    round_trip(PW_OCPP_A_STOP_TRANSACTION, pw_ocpp_stop_req(&st2), &c);
    stop_equal(&c.u.stop, &st2);
    pw_ocpp_stop_tx st3 = {.tx_id = ""};
    assert_null(pw_ocpp_stop_req(&st3));

    round_trip(PW_OCPP_A_AUTHORIZE, pw_ocpp_authorize_req("TAG-9"), &c);
    assert_string_equal(c.u.id_tag, "TAG-9");
}

/* What phasewise sends, read by the charge point side (the simulator), reads back the same. */
static void test_profile_round_trip(void **state)
{
    (void)state;
    pw_ocpp_profile p = {.connector = 2,
                         .id = 9,
                         .stack_level = 3,
                         .purpose = PW_OCPP_TX,
                         .kind = PW_OCPP_ABSOLUTE,
                         .tx_id = "31337",
                         .start_ms = INT64_C(1796505651000),
                         .duration_s = 900,
                         .n_periods = 2,
                         .periods = {{0, 13.7, 3}, {300, 6.0, 1}}};
    char *t = pw_ocpp_call_text("p", "SetChargingProfile", pw_ocpp_set_profile_req(&p), NULL);
    pw_ocpp_cs_call c;
    pw_ocpp_fault fault;
    if (cs_call(t, &c, &fault) != 0)
        fail_msg("%s", fault.text);
    free(t);
    profile_equal(&c.u.profile, &p);

    t = pw_ocpp_call_text("q", "ClearChargingProfile",
                          pw_ocpp_clear_profile_req(4, 1, true, PW_OCPP_TX_DEFAULT, 0), NULL);
    assert_int_equal(cs_call(t, &c, &fault), 0);
    free(t);
    assert_true(c.u.clear.has_id && c.u.clear.id == 4 && c.u.clear.connector == 1 &&
                c.u.clear.purpose == PW_OCPP_TX_DEFAULT && c.u.clear.has_stack_level &&
                c.u.clear.stack_level == 0);

    t = pw_ocpp_call_text("r", "TriggerMessage", pw_ocpp_trigger_req("StatusNotification", 0),
                          NULL);
    assert_int_equal(cs_call(t, &c, &fault), 0);
    free(t);
    assert_string_equal(c.u.trigger.message, "StatusNotification");
    assert_int_equal(c.u.trigger.connector, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_frame_shapes),
        cmocka_unit_test(test_frame_text),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_boot_and_simple_calls),
        cmocka_unit_test(test_violations),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_meter_phases),
        cmocka_unit_test(test_meter_units),
        cmocka_unit_test(test_meter_newest),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_get_configuration_answer),
        cmocka_unit_test(test_cp_results),
        cmocka_unit_test(test_cs_calls),
        cmocka_unit_test(test_checker_catches_drift),
        cmocka_unit_test(test_cs_builders_hold_to_schema),
        cmocka_unit_test(test_cp_builders_round_trip),
        cmocka_unit_test(test_profile_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
