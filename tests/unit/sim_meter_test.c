/* Tests for the simulator's meters as real meters show them: the register image of a known
 * reading under each served map (read back through the appliance's own decoder), the SunSpec
 * layout register by register and found by SunSpec discovery, the exceptions a gateway answers,
 * and the MQTT messages of each feed form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "pw_modbus.h"
#include "pw_modbus_map.h"
#include "pw_simmeter.h"

#define SERIAL 23000042u

static const double amps[3] = {12.5, 3.25, 0.0};
static const double energy_wh = 123456.0;

/* The image's registers for the reads the map plans, decoded as the appliance decodes them. */
static pw_modbus_reading read_back(const pw_sim_regimg *img, const pw_modbus_map *m)
{
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    pw_modbus_answer answers[PW_MODBUS_MAP_READS];
    pw_modbus_reading r;
    size_t n = pw_modbus_map_plan(m, reqs, PW_MODBUS_MAP_READS);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        answers[i].exception = 0;
        answers[i].count = reqs[i].count;
        assert_int_equal(pw_sim_regimg_read(img, reqs[i].function, reqs[i].address, reqs[i].count,
                                            answers[i].regs),
                         0);
    }
    assert_int_equal(pw_modbus_map_decode(m, reqs, answers, n, &r), 0);
    return r;
}

static uint16_t reg(const pw_sim_regimg *img, uint8_t fn, uint16_t address)
{
    uint16_t v = 0xdead;
    assert_int_equal(pw_sim_regimg_read(img, fn, address, 1, &v), 0);
    return v;
}

static float f32_at(const pw_sim_regimg *img, uint8_t fn, uint16_t address)
{
    uint32_t bits = (uint32_t)reg(img, fn, address) << 16 | reg(img, fn, (uint16_t)(address + 1));
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static void test_sdm630_image(void **state)
{
    static pw_sim_regimg img;
    (void)state;
    assert_int_equal(pw_sim_regimg_init(&img, "sdm630", 1, SERIAL), 0);
    pw_sim_regimg_set(&img, amps, energy_wh);
    /* Input registers 30007/30009/30011 (wire 0x0006...) hold float32 amperes, high word first;
     * 30073 (0x0048) the import energy in kWh; holding 0xFC00 the serial number as uint32. */
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x0006), 0x4148); /* 12.5f = 0x41480000 */
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x0007), 0x0000);
    assert_true(f32_at(&img, PW_MODBUS_FN_INPUT, 0x0008) == 3.25f);
    assert_true(f32_at(&img, PW_MODBUS_FN_INPUT, 0x000A) == 0.0f);
    assert_true(fabsf(f32_at(&img, PW_MODBUS_FN_INPUT, 0x0048) - 123.456f) < 1e-4f);
    assert_int_equal(reg(&img, PW_MODBUS_FN_HOLDING, 0xFC00), SERIAL >> 16);
    assert_int_equal(reg(&img, PW_MODBUS_FN_HOLDING, 0xFC01), SERIAL & 0xffff);

    pw_modbus_reading r = read_back(&img, pw_modbus_map_find("sdm630"));
    for (int l = 0; l < 3; l++) {
        assert_true(r.has_line[l]);
        assert_true(fabs(r.line_a[l] - amps[l]) < 1e-6);
    }
    assert_true(r.has_serial);
    assert_int_equal(r.serial, SERIAL);
    assert_true(r.has_energy);
    assert_int_equal(r.energy_wh, 123456);
}

static void test_em340_image(void **state)
{
    static pw_sim_regimg img;
    (void)state;
    assert_int_equal(pw_sim_regimg_init(&img, "em340", 2, SERIAL), 0);
    pw_sim_regimg_set(&img, amps, energy_wh);
    /* A L1 at 0x000C: INT32, least significant word first, in mA; kWh (+) TOT at 0x0034 in
     * tenths of kWh; the serial number at 0x5000 as ASCII. */
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x000C), 12500);
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x000D), 0);
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x000E), 3250);
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x0010), 0);
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x0034), 1235); /* 123.456 kWh */
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x0035), 0);
    assert_int_equal(reg(&img, PW_MODBUS_FN_INPUT, 0x5000), '2' << 8 | '3');

    pw_modbus_reading r = read_back(&img, pw_modbus_map_find("em340"));
    for (int l = 0; l < 3; l++)
        assert_true(r.has_line[l] && fabs(r.line_a[l] - amps[l]) < 1e-6);
    assert_true(r.has_serial);
    assert_int_equal(r.serial, SERIAL);
    assert_int_equal(r.energy_wh, 123500); /* the register's resolution: 0.1 kWh */
}

static void test_sunspec_layout(void **state)
{
    static pw_sim_regimg img;
    const uint8_t fn = PW_MODBUS_FN_HOLDING;
    (void)state;
    assert_int_equal(pw_sim_regimg_init(&img, "sunspec", 7, SERIAL), 0);
    pw_sim_regimg_set(&img, amps, energy_wh);
    /* "SunS", then model 1 (L 66) with Mn, SN and DA, then model 213 (L 124), then the end. */
    assert_int_equal(reg(&img, fn, 40000), 0x5375);
    assert_int_equal(reg(&img, fn, 40001), 0x6e53);
    assert_int_equal(reg(&img, fn, 40002), 1);
    assert_int_equal(reg(&img, fn, 40003), 66);
    assert_int_equal(reg(&img, fn, 40004), 'p' << 8 | 'h');
    assert_int_equal(reg(&img, fn, 40052), '2' << 8 | '3'); /* SN */
    assert_int_equal(reg(&img, fn, 40068), 7);              /* DA: the unit id */
    assert_int_equal(reg(&img, fn, 40070), 213);
    assert_int_equal(reg(&img, fn, 40071), 124);
    assert_int_equal(reg(&img, fn, 40196), 0xffff);
    assert_int_equal(reg(&img, fn, 40197), 0);
    /* Model 213 points, float32 from 40072: A, AphA..AphC, ..., Hz at +24, TotWhImp at +66. */
    assert_true(f32_at(&img, fn, 40072) == 15.75f);
    assert_true(f32_at(&img, fn, 40074) == 12.5f);
    assert_true(f32_at(&img, fn, 40076) == 3.25f);
    assert_true(f32_at(&img, fn, 40078) == 0.0f);
    assert_true(f32_at(&img, fn, 40082) == 230.0f);
    assert_true(f32_at(&img, fn, 40096) == 50.0f);
    assert_true(f32_at(&img, fn, 40138) == 123456.0f);
    assert_true(isnan(f32_at(&img, fn, 40106))); /* VA: not implemented */
    /* Input registers and anything past the end marker are not there. */
    uint16_t v;
    assert_int_equal(pw_sim_regimg_read(&img, PW_MODBUS_FN_INPUT, 40000, 2, &v),
                     PW_SIM_MODBUS_BAD_ADDR);
    assert_int_equal(pw_sim_regimg_read(&img, fn, 40197, 2, &v), PW_SIM_MODBUS_BAD_ADDR);
}

/* The appliance's SunSpec discovery walks the simulator's image to model 213 and reads it. */
static void test_sunspec_discovery(void **state)
{
    static pw_sim_regimg img;
    pw_modbus_sunspec s;
    pw_modbus_request req;
    (void)state;
    assert_int_equal(pw_sim_regimg_init(&img, "sunspec", 1, SERIAL), 0);
    pw_sim_regimg_set(&img, amps, energy_wh);
    pw_modbus_sunspec_init(&s);
    int steps = 0, rc;
    while ((rc = pw_modbus_sunspec_next(&s, &req)) == 1) {
        pw_modbus_answer a = {.count = req.count};
        a.exception = pw_sim_regimg_read(&img, req.function, req.address, req.count, a.regs);
        pw_modbus_sunspec_feed(&s, a.exception ? PW_MODBUS_E_EXCEPTION : 0, &a);
        assert_true(++steps < 10);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(s.base, 40000);
    assert_int_equal(s.model, 213);
    pw_modbus_reading r = read_back(&img, &s.map);
    for (int l = 0; l < 3; l++)
        assert_true(r.has_line[l] && fabs(r.line_a[l] - amps[l]) < 1e-6);
    assert_int_equal(r.energy_wh, 123456);
    assert_true(r.has_serial);
    assert_int_equal(r.serial, SERIAL);
}

static void test_unserved_maps(void **state)
{
    static pw_sim_regimg img;
    (void)state;
    assert_int_equal(pw_sim_regimg_init(&img, "generic", 1, SERIAL), -1);
    assert_int_equal(pw_sim_regimg_init(&img, "em24", 1, SERIAL), -1);
    assert_int_equal(pw_sim_regimg_init(&img, "nonsense", 1, SERIAL), -1);
}

/* A request through the gateway's answer: bytes out, parsed back as the client parses them. */
static int ask(const pw_sim_regimg *img, pw_modbus_request req, int parse_err, pw_modbus_answer *a)
{
    uint8_t buf[PW_MODBUS_MAX_ADU];
    int err = -99;
    int n = pw_sim_modbus_answer(&req, parse_err, img, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(pw_modbus_parse_answer(buf, (size_t)n, &req, a, &err), n);
    return err;
}

static void test_answers_and_exceptions(void **state)
{
    static pw_sim_regimg img;
    pw_modbus_answer a;
    (void)state;
    assert_int_equal(pw_sim_regimg_init(&img, "sdm630", 3, SERIAL), 0);
    pw_sim_regimg_set(&img, amps, energy_wh);
    pw_modbus_request req = {.tid = 9, .unit = 3, .function = 4, .address = 0x0006, .count = 6};
    assert_int_equal(ask(&img, req, 0, &a), 0);
    assert_int_equal(a.count, 6);
    assert_int_equal(a.regs[0], 0x4148);
    /* Registers outside the image: illegal data address. */
    req.address = 0x0300;
    assert_int_equal(ask(&img, req, 0, &a), PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 2);
    req.address = 0xFBFF; /* one register before the serial number */
    req.function = 3;
    req.count = 2;
    assert_int_equal(ask(&img, req, 0, &a), PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 2);
    /* No meter with that unit id behind the gateway. */
    req.address = 0xFC00;
    req.unit = 4;
    assert_int_equal(ask(NULL, req, 0, &a), PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 11);
    /* More than an SDM630 answers in one read (80 registers). */
    req = (pw_modbus_request){.tid = 1, .unit = 3, .function = 4, .address = 0, .count = 100};
    assert_int_equal(ask(&img, req, 0, &a), PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 3);
    /* What the codec could not accept: a function we do not serve, a bad count. */
    req.count = 2;
    assert_int_equal(ask(&img, req, PW_MODBUS_E_FUNCTION, &a), PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 1);
    assert_int_equal(ask(&img, req, PW_MODBUS_E_COUNT, &a), PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 3);
}

static void test_mqtt_messages(void **state)
{
    pw_cfg_link link = {.kind = PW_CFG_LINK_MQTT};
    pw_cfg_meter_opts o;
    pw_sim_mqtt_msg m[3];
    (void)state;

    memset(&o, 0, sizeof(o));
    strcpy(link.topic, "ams/meter");
    strcpy(o.preset, "ams");
    assert_int_equal(pw_sim_mqtt_messages(&link, &o, amps, energy_wh, m), 1);
    assert_string_equal(m[0].topic, "ams/meter");
    assert_non_null(strstr(m[0].payload, "\"data\":{"));
    assert_non_null(strstr(m[0].payload, "\"I1\":12.5"));
    assert_non_null(strstr(m[0].payload, "\"I2\":3.25"));
    assert_non_null(strstr(m[0].payload, "\"I3\":0"));
    assert_non_null(strstr(m[0].payload, "\"tPI\":123.456"));

    memset(&o, 0, sizeof(o));
    strcpy(link.topic, "site/meter");
    strcpy(o.preset, "json");
    strcpy(o.paths[0], "current.l1");
    strcpy(o.paths[2], "current.l3");
    assert_int_equal(pw_sim_mqtt_messages(&link, &o, amps, energy_wh, m), 1);
    assert_string_equal(m[0].topic, "site/meter");
    assert_string_equal(m[0].payload, "{\"current\":{\"l1\":12.5,\"l3\":0.0}}");

    memset(&o, 0, sizeof(o));
    strcpy(link.topic, "p1/l2"); /* config.c: the first topic named; plain uses topics[] */
    strcpy(o.preset, "plain");
    strcpy(o.topics[1], "p1/l2");
    strcpy(o.topics[2], "p1/l3");
    assert_int_equal(pw_sim_mqtt_messages(&link, &o, amps, energy_wh, m), 2);
    assert_string_equal(m[0].topic, "p1/l2");
    assert_string_equal(m[0].payload, "3.250");
    assert_string_equal(m[1].topic, "p1/l3");
    assert_string_equal(m[1].payload, "0.000");

    strcpy(o.preset, "other");
    assert_int_equal(pw_sim_mqtt_messages(&link, &o, amps, energy_wh, m), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdm630_image),   cmocka_unit_test(test_em340_image),
        cmocka_unit_test(test_sunspec_layout), cmocka_unit_test(test_sunspec_discovery),
        cmocka_unit_test(test_unserved_maps),  cmocka_unit_test(test_answers_and_exceptions),
        cmocka_unit_test(test_mqtt_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
