/* Unit tests of the Modbus module: request bytes against hand-computed vectors, streaming answer
 * parsing (split at every byte, back to back, foreign and broken frames), the server side, every
 * built-in map against register vectors computed by hand from the maker's table and in a round
 * trip, read planning, and SunSpec discovery against a simulated register space. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pw_modbus.h"
#include "pw_modbus_map.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- A register space: what a meter behind a gateway would answer ---- */

static struct {
    uint16_t regs[2][65536]; /* [function - 3][address] */
    bool valid[2][65536];    /* strict mode: registers that exist */
    bool strict;             /* reading a register that does not exist is exception 2 */
    uint16_t reads[128];     /* addresses read, in order */
    int n_reads;
} space;

static void space_reset(bool strict)
{
    memset(&space, 0, sizeof space);
    space.strict = strict;
}

static void space_set(uint8_t fn, uint32_t address, const uint16_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        space.regs[fn - 3][(address + i) & 0xFFFF] = w[i];
        space.valid[fn - 3][(address + i) & 0xFFFF] = true;
    }
}

static void space_valid(uint8_t fn, uint32_t address, size_t n)
{
    for (size_t i = 0; i < n; i++)
        space.valid[fn - 3][(address + i) & 0xFFFF] = true;
}

/* Serves one request through the real codec both ways: request bytes, server parse, answer
 * bytes, client parse. Returns the client's error (0, or E_EXCEPTION with a->exception). */
static int space_serve(const pw_modbus_request *req_in, pw_modbus_answer *a)
{
    pw_modbus_request req = *req_in, got;
    uint8_t buf[PW_MODBUS_MAX_ADU];
    req.tid = (uint16_t)(space.n_reads + 1);
    req.unit = 7;
    int n = pw_modbus_encode_request(&req, buf, sizeof buf);
    assert_int_equal(n, 12);
    int err = -99;
    assert_int_equal(pw_modbus_parse_request(buf, (size_t)n, &got, &err), 12);
    assert_int_equal(err, 0);
    if (space.n_reads < 128)
        space.reads[space.n_reads] = got.address;
    space.n_reads++;
    uint8_t exception = 0;
    for (uint32_t i = 0; i < got.count; i++) {
        if (space.strict && !space.valid[got.function - 3][(got.address + i) & 0xFFFF])
            exception = 2;
    }
    n = pw_modbus_encode_answer(&got, space.regs[got.function - 3] + got.address, exception, buf,
                                sizeof buf);
    assert_true(n > 0);
    assert_int_equal(pw_modbus_parse_answer(buf, (size_t)n, &req, a, &err), n);
    return err;
}

/* ---- Framing: requests ---- */

static void test_encode_request_vectors(void **state)
{
    (void)state;
    uint8_t out[16];
    /* SDM630 L1..L3 currents: tid 0x0102, unit 3, input registers from 0x0006, 6 of them. */
    pw_modbus_request r = {.tid = 0x0102, .unit = 3, .function = 4, .address = 6, .count = 6};
    static const uint8_t want1[] = {0x01, 0x02, 0x00, 0x00, 0x00, 0x06,
                                    0x03, 0x04, 0x00, 0x06, 0x00, 0x06};
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), 12);
    assert_memory_equal(out, want1, 12);
    /* SDM630 serial number: holding register 0xFC00, 2 of them, unit 247, tid 0xFFFF. */
    r = (pw_modbus_request){
        .tid = 0xFFFF, .unit = 247, .function = 3, .address = 0xFC00, .count = 2};
    static const uint8_t want2[] = {0xFF, 0xFF, 0x00, 0x00, 0x00, 0x06,
                                    0xF7, 0x03, 0xFC, 0x00, 0x00, 0x02};
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), 12);
    assert_memory_equal(out, want2, 12);
    /* The last 125 registers are fine; one more does not exist. */
    r = (pw_modbus_request){.function = 3, .address = 65536 - 125, .count = 125};
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), 12);
    r.address++;
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), PW_MODBUS_E_ARG);
    r = (pw_modbus_request){.function = 4, .address = 0, .count = 0};
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), PW_MODBUS_E_ARG);
    r.count = 126;
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), PW_MODBUS_E_ARG);
    r = (pw_modbus_request){.function = 6, .count = 1};
    assert_int_equal(pw_modbus_encode_request(&r, out, sizeof out), PW_MODBUS_E_ARG);
    r.function = 3;
    assert_int_equal(pw_modbus_encode_request(&r, out, 11), PW_MODBUS_E_ARG);
}

/* ---- Framing: answers ---- */

/* The answer to r1 below: 12.5 A (0x41480000) and 7.25 A (0x40E80000). */
static const uint8_t answer1[] = {0x01, 0x02, 0x00, 0x00, 0x00, 0x0B, 0x03, 0x04, 0x08,
                                  0x41, 0x48, 0x00, 0x00, 0x40, 0xE8, 0x00, 0x00};
static const pw_modbus_request r1 = {
    .tid = 0x0102, .unit = 3, .function = 4, .address = 6, .count = 4};

static void test_answer_split_at_every_byte(void **state)
{
    (void)state;
    pw_modbus_answer a;
    int err;
    /* Every prefix is "need more"; the whole frame parses. */
    for (size_t len = 0; len < sizeof answer1; len++) {
        err = -99;
        assert_int_equal(pw_modbus_parse_answer(answer1, len, &r1, &a, &err), PW_MODBUS_AGAIN);
        assert_int_equal(err, -99);
    }
    /* As a stream arriving in two pieces split at every boundary. */
    for (size_t cut = 0; cut <= sizeof answer1; cut++) {
        uint8_t buf[64];
        size_t have = 0;
        memcpy(buf, answer1, cut);
        have = cut;
        int n = pw_modbus_parse_answer(buf, have, &r1, &a, &err);
        if (cut < sizeof answer1) {
            assert_int_equal(n, PW_MODBUS_AGAIN);
            memcpy(buf + have, answer1 + cut, sizeof answer1 - cut);
            have = sizeof answer1;
            n = pw_modbus_parse_answer(buf, have, &r1, &a, &err);
        }
        assert_int_equal(n, (int)sizeof answer1);
        assert_int_equal(err, PW_MODBUS_OK);
        assert_int_equal(a.count, 4);
        assert_int_equal(a.regs[0], 0x4148);
        assert_int_equal(a.regs[1], 0x0000);
        assert_int_equal(a.regs[2], 0x40E8);
        assert_int_equal(a.regs[3], 0x0000);
        assert_int_equal(a.exception, 0);
    }
}

static void test_answers_back_to_back(void **state)
{
    (void)state;
    uint8_t buf[64];
    memcpy(buf, answer1, sizeof answer1);
    /* The next poll's answer: tid 0x0103, one register 0x1234. */
    static const uint8_t answer2[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x05,
                                      0x03, 0x04, 0x02, 0x12, 0x34};
    memcpy(buf + sizeof answer1, answer2, sizeof answer2);
    pw_modbus_request r2 = {.tid = 0x0103, .unit = 3, .function = 4, .address = 0, .count = 1};
    pw_modbus_answer a;
    int err;
    size_t len = sizeof answer1 + sizeof answer2;
    int n = pw_modbus_parse_answer(buf, len, &r1, &a, &err);
    assert_int_equal(n, (int)sizeof answer1);
    assert_int_equal(err, 0);
    n = pw_modbus_parse_answer(buf + n, len - (size_t)n, &r2, &a, &err);
    assert_int_equal(n, (int)sizeof answer2);
    assert_int_equal(err, 0);
    assert_int_equal(a.count, 1);
    assert_int_equal(a.regs[0], 0x1234);
}

static void test_foreign_answers_are_consumed(void **state)
{
    (void)state;
    pw_modbus_answer a;
    int err;
    uint8_t buf[sizeof answer1];
    struct {
        size_t at;
        uint8_t value;
        int err;
    } cases[] = {
        {1, 0x01, PW_MODBUS_E_TID},      /* a late answer to the previous poll */
        {6, 0x04, PW_MODBUS_E_UNIT},     /* another meter answered (libmodbus 3.1.6 takes it) */
        {7, 0x03, PW_MODBUS_E_FUNCTION}, /* holding instead of input */
        {8, 0x06, PW_MODBUS_E_COUNT},    /* byte count not 2 x 4 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(buf, answer1, sizeof buf);
        buf[cases[i].at] = cases[i].value;
        err = -99;
        assert_int_equal(pw_modbus_parse_answer(buf, sizeof buf, &r1, &a, &err), sizeof buf);
        assert_int_equal(err, cases[i].err);
        assert_int_equal(a.count, 0);
        assert_string_not_equal(pw_modbus_strerror(err), pw_modbus_strerror(12345));
    }
    /* A byte count that is right for the request but not for the MBAP length. */
    memcpy(buf, answer1, sizeof buf);
    buf[5] = 0x09; /* MBAP says 9 bytes follow, the PDU claims 8 data bytes */
    assert_int_equal(pw_modbus_parse_answer(buf, sizeof buf, &r1, &a, &err), 15);
    assert_int_equal(err, PW_MODBUS_E_COUNT);
}

static void test_exception_answers(void **state)
{
    (void)state;
    /* "illegal data address" for a read of input registers on unit 3. */
    static const uint8_t exc[] = {0x01, 0x02, 0x00, 0x00, 0x00, 0x03, 0x03, 0x84, 0x02};
    pw_modbus_answer a;
    int err;
    for (size_t len = 0; len < sizeof exc; len++)
        assert_int_equal(pw_modbus_parse_answer(exc, len, &r1, &a, &err), PW_MODBUS_AGAIN);
    assert_int_equal(pw_modbus_parse_answer(exc, sizeof exc, &r1, &a, &err), 9);
    assert_int_equal(err, PW_MODBUS_E_EXCEPTION);
    assert_int_equal(a.exception, 2);
    assert_non_null(strstr(pw_modbus_exception_text(a.exception), "wrong meter model or map"));
    /* The gateway's own exceptions. */
    uint8_t gw[sizeof exc];
    memcpy(gw, exc, sizeof gw);
    gw[8] = 0x0B;
    assert_int_equal(pw_modbus_parse_answer(gw, sizeof gw, &r1, &a, &err), 9);
    assert_int_equal(a.exception, 11);
    assert_non_null(strstr(pw_modbus_exception_text(11), "unit id, wiring and baud rate"));
    assert_non_null(strstr(pw_modbus_exception_text(10), "gateway path unavailable"));
    /* An exception for another function is a foreign answer, not this read's exception. */
    gw[7] = 0x83;
    assert_int_equal(pw_modbus_parse_answer(gw, sizeof gw, &r1, &a, &err), 9);
    assert_int_equal(err, PW_MODBUS_E_FUNCTION);
    /* An exception PDU with a trailing byte cannot be a Modbus answer. */
    static const uint8_t long_exc[] = {0x01, 0x02, 0x00, 0x00, 0x00, 0x04, 0x03, 0x84, 0x02, 0x00};
    assert_int_equal(pw_modbus_parse_answer(long_exc, sizeof long_exc, &r1, &a, &err),
                     PW_MODBUS_E_PROTOCOL);
    static const uint8_t codes[] = {1, 2, 3, 4, 5, 6, 8, 10, 11};
    for (size_t i = 0; i < sizeof codes; i++) {
        const char *t = pw_modbus_exception_text(codes[i]);
        assert_true(strlen(t) > 20);
        assert_string_not_equal(t, pw_modbus_exception_text(200));
    }
}

static void test_garbage_is_protocol_error(void **state)
{
    (void)state;
    pw_modbus_answer a;
    int err;
    /* Someone pointed the meter at a web server. */
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(pw_modbus_parse_answer((const uint8_t *)http, strlen(http), &r1, &a, &err),
                     PW_MODBUS_E_PROTOCOL);
    /* ...and it is known after 3 bytes, not after a length that never comes. */
    assert_int_equal(pw_modbus_parse_answer((const uint8_t *)http, 3, &r1, &a, &err),
                     PW_MODBUS_E_PROTOCOL);
    uint8_t buf[sizeof answer1];
    static const struct {
        size_t at;
        uint8_t value;
    } bad[] = {{2, 0x01}, {3, 0x01}, {4, 0x01}, {5, 0x02}, {5, 0x00}, {5, 0xFE}, {5, 0xFF}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(buf, answer1, sizeof buf);
        buf[bad[i].at] = bad[i].value;
        assert_int_equal(pw_modbus_parse_answer(buf, sizeof buf, &r1, &a, &err),
                         PW_MODBUS_E_PROTOCOL);
    }
    /* Length 253 (the largest register answer) is framed, 254 is not. */
    memcpy(buf, answer1, sizeof buf);
    buf[5] = 0xFD;
    assert_int_equal(pw_modbus_parse_answer(buf, sizeof buf, &r1, &a, &err), PW_MODBUS_AGAIN);
}

/* ---- Framing: server side ---- */

static void test_server_side(void **state)
{
    (void)state;
    pw_modbus_request req = {.tid = 9, .unit = 2, .function = 3, .address = 0x5B0C, .count = 6};
    pw_modbus_request got;
    uint8_t buf[PW_MODBUS_MAX_ADU];
    int err, n = pw_modbus_encode_request(&req, buf, sizeof buf);
    for (int len = 0; len < n; len++)
        assert_int_equal(pw_modbus_parse_request(buf, (size_t)len, &got, &err), PW_MODBUS_AGAIN);
    assert_int_equal(pw_modbus_parse_request(buf, (size_t)n, &got, &err), 12);
    assert_int_equal(err, 0);
    assert_memory_equal(&got, &req, sizeof req);

    /* The answer, as bytes and back. */
    uint16_t regs[6] = {0, 1250, 0, 725, 0, 50};
    n = pw_modbus_encode_answer(&req, regs, 0, buf, sizeof buf);
    static const uint8_t want[] = {0x00, 0x09, 0x00, 0x00, 0x00, 0x0F, 0x02, 0x03, 0x0C, 0x00, 0x00,
                                   0x04, 0xE2, 0x00, 0x00, 0x02, 0xD5, 0x00, 0x00, 0x00, 0x32};
    assert_int_equal(n, (int)sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    pw_modbus_answer a;
    assert_int_equal(pw_modbus_parse_answer(buf, (size_t)n, &req, &a, &err), n);
    assert_int_equal(err, 0);
    assert_memory_equal(a.regs, regs, sizeof regs);
    assert_int_equal(pw_modbus_encode_answer(&req, regs, 0, buf, (size_t)n - 1), PW_MODBUS_E_ARG);

    /* Write multiple registers (16) is framed and refused as a function, so the server can
     * answer "illegal function". */
    static const uint8_t write16[] = {0x00, 0x0A, 0x00, 0x00, 0x00, 0x0B, 0x02, 0x10, 0x00,
                                      0x0A, 0x00, 0x02, 0x04, 0x40, 0x40, 0x00, 0x00};
    assert_int_equal(pw_modbus_parse_request(write16, sizeof write16, &got, &err), 17);
    assert_int_equal(err, PW_MODBUS_E_FUNCTION);
    assert_int_equal(got.function, 16);
    assert_int_equal(got.tid, 10);
    n = pw_modbus_encode_answer(&got, NULL, 1, buf, sizeof buf);
    static const uint8_t exc[] = {0x00, 0x0A, 0x00, 0x00, 0x00, 0x03, 0x02, 0x90, 0x01};
    assert_int_equal(n, 9);
    assert_memory_equal(buf, exc, 9);

    /* Count 0 and 126 are framed with E_COUNT (exception 3 "illegal data value"). */
    uint8_t bad[12];
    req.count = 1;
    assert_int_equal(pw_modbus_encode_request(&req, bad, sizeof bad), 12);
    bad[11] = 0;
    assert_int_equal(pw_modbus_parse_request(bad, sizeof bad, &got, &err), 12);
    assert_int_equal(err, PW_MODBUS_E_COUNT);
    bad[11] = 126;
    assert_int_equal(pw_modbus_parse_request(bad, sizeof bad, &got, &err), 12);
    assert_int_equal(err, PW_MODBUS_E_COUNT);
    bad[2] = 1; /* protocol id 0x0100 */
    assert_int_equal(pw_modbus_parse_request(bad, sizeof bad, &got, &err), PW_MODBUS_E_PROTOCOL);
}

/* ---- Maps ---- */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void text_regs(const char *s, uint16_t *w, size_t words)
{
    char t[64] = {0};
    snprintf(t, sizeof t, "%s", s);
    for (size_t i = 0; i < words; i++)
        w[i] = (uint16_t)((uint8_t)t[2 * i] << 8 | (uint8_t)t[2 * i + 1]);
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Plans the map's reads, serves them from the register space and decodes the reading. */
static int read_map(const pw_modbus_map *m, pw_modbus_reading *r)
{
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    pw_modbus_answer answers[PW_MODBUS_MAP_READS];
    size_t n = pw_modbus_map_plan(m, reqs, PW_MODBUS_MAP_READS);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(space_serve(&reqs[i], &answers[i]), 0);
    return pw_modbus_map_decode(m, reqs, answers, n, r);
}

static void assert_plan(const pw_modbus_map *m, const pw_modbus_request *want, size_t n_want)
{
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    size_t n = pw_modbus_map_plan(m, reqs, PW_MODBUS_MAP_READS);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reqs[i].function, want[i].function);
        assert_int_equal(reqs[i].address, want[i].address);
        assert_int_equal(reqs[i].count, want[i].count);
    }
}

#define REQ(fn, a, c)                                                                              \
    {                                                                                              \
        .function = (fn), .address = (a), .count = (c)                                             \
    }

/* Eastron SDM630 and SDM72D-M v2, from the protocol tables: 30007 (wire 6) L1 current as a
 * float high word first, 30009 (8) L2, 30011 (10) L3, 30073 (0x48) import kWh; holding 464513
 * (0xFC00) serial number as uint32. */
static void eastron_vector(void)
{
    space_reset(false);
    uint16_t cur[6] = {0x4148, 0x0000, 0x40E8, 0x0000, 0x3F00, 0x0000}; /* 12.5, 7.25, 0.5 A */
    uint16_t kwh[2] = {0x449A, 0x5000};                                 /* 1234.5 kWh */
    uint16_t sn[2] = {0x00BC, 0x614E};                                  /* 12345678 */
    space_set(4, 0x0006, cur, 6);
    space_set(4, 0x0048, kwh, 2);
    space_set(3, 0xFC00, sn, 2);
    /* Decoys: what a wrong function or an off-by-one address would read. */
    uint16_t junk[2] = {0x4479, 0x8000}; /* 998 */
    space_set(3, 0x0006, junk, 2);
    space_set(4, 0x0004, junk, 2);
    space_set(4, 0x0046, junk, 2);
}

static void assert_reading(const pw_modbus_reading *r, const double a[3], bool serial, uint32_t sn,
                           uint64_t wh)
{
    for (int l = 0; l < 3; l++) {
        assert_int_equal(r->has_line[l], !isnan(a[l]));
        if (!isnan(a[l]))
            assert_true(fabs(r->line_a[l] - a[l]) < 1e-9);
    }
    assert_int_equal(r->has_serial, serial);
    if (serial)
        assert_int_equal(r->serial, sn);
    assert_true(r->has_energy);
    assert_int_equal(r->energy_wh, wh);
}

static void test_map_sdm630_vector(void **state)
{
    (void)state;
    const pw_modbus_map *m = pw_modbus_map_find("sdm630");
    assert_non_null(m);
    eastron_vector();
    /* One read for the currents and the energy (68 registers, within the meter's 80). */
    const pw_modbus_request plan[] = {REQ(3, 0xFC00, 2), REQ(4, 0x0006, 68)};
    assert_plan(m, plan, 2);
    pw_modbus_reading r;
    assert_int_equal(read_map(m, &r), 0);
    assert_reading(&r, (double[]){12.5, 7.25, 0.5}, true, 12345678, 1234500);
}

static void test_map_sdm72_vectors(void **state)
{
    (void)state;
    const pw_modbus_map *m = pw_modbus_map_find("sdm72v2");
    assert_non_null(m);
    eastron_vector();
    /* 30 parameters per request at most: the currents and the energy are two reads. */
    const pw_modbus_request plan[] = {REQ(3, 0xFC00, 2), REQ(4, 0x0006, 6), REQ(4, 0x0048, 2)};
    assert_plan(m, plan, 3);
    pw_modbus_reading r;
    assert_int_equal(read_map(m, &r), 0);
    assert_reading(&r, (double[]){12.5, 7.25, 0.5}, true, 12345678, 1234500);

    /* v1 has no phase currents: the energy only, and no line for the balancer. */
    m = pw_modbus_map_find("sdm72v1");
    assert_non_null(m);
    const pw_modbus_request plan1[] = {REQ(4, 0x0048, 2)};
    assert_plan(m, plan1, 1);
    assert_int_equal(read_map(m, &r), 0);
    assert_reading(&r, (double[]){NAN, NAN, NAN}, false, 0, 1234500);
}

/* Carlo Gavazzi: INT32 least significant word first, A x 1000 and kWh x 10. L3 is above
 * 65.535 A so that its high word is not 0, and the energy too. */
static void gavazzi_vector(uint16_t energy_at, uint16_t serial_at, const char *serial)
{
    space_reset(false);
    uint16_t cur[6] = {0x30D4, 0x0000, 0x1C52, 0x0000, 0x1170, 0x0001}; /* 12500 7250 70000 */
    uint16_t kwh10[2] = {0x1206, 0x000F};                               /* 987654 */
    uint16_t sn[7];
    text_regs(serial, sn, 7);
    space_set(4, 0x000C, cur, 6);
    space_set(4, energy_at, kwh10, 2);
    space_set(4, serial_at, sn, 7);
}

static void test_map_em340_vector(void **state)
{
    (void)state;
    static const char *const names[] = {"em340", "em24eth"};
    for (size_t i = 0; i < 2; i++) {
        const pw_modbus_map *m = pw_modbus_map_find(names[i]);
        assert_non_null(m);
        gavazzi_vector(0x0034, 0x5000, "BL219010003001");
        const pw_modbus_request plan[] = {REQ(4, 0x000C, 42), REQ(4, 0x5000, 7)};
        assert_plan(m, plan, 2);
        pw_modbus_reading r;
        assert_int_equal(read_map(m, &r), 0);
        /* A serial number with letters reads as its hash. */
        assert_reading(&r, (double[]){12.5, 7.25, 70.0}, true, fnv1a("BL219010003001"), 98765400);
        /* A serial number of digits reads as its number. */
        gavazzi_vector(0x0034, 0x5000, "00123456");
        assert_int_equal(read_map(m, &r), 0);
        assert_int_equal(r.serial, 123456);
    }
}

static void test_map_em24_vector(void **state)
{
    (void)state;
    const pw_modbus_map *m = pw_modbus_map_find("em24");
    assert_non_null(m);
    gavazzi_vector(0x003E, 0x1300, "AB12345678901");
    /* The EM340's energy register is PF L3 on the classic EM24: a wrong map reads nonsense. */
    uint16_t pf[2] = {0x03E8, 0x0000};
    space_set(4, 0x0034, pf, 2);
    /* At most 11 registers per read. */
    const pw_modbus_request plan[] = {REQ(4, 0x000C, 6), REQ(4, 0x003E, 2), REQ(4, 0x1300, 7)};
    assert_plan(m, plan, 3);
    pw_modbus_reading r;
    assert_int_equal(read_map(m, &r), 0);
    assert_reading(&r, (double[]){12.5, 7.25, 70.0}, true, fnv1a("AB12345678901"), 98765400);
}

/* ABB B23/B24: holding registers, unsigned big-endian, 0.01 A and 0.01 kWh (64-bit). */
static void test_map_abb_vector(void **state)
{
    (void)state;
    const pw_modbus_map *m = pw_modbus_map_find("abb_b2x");
    assert_non_null(m);
    space_reset(false);
    uint16_t cur[6] = {0x0000, 0x04E2, 0x0000, 0x02D5, 0x0001, 0x1170}; /* 1250 725 70000 */
    uint16_t e[4] = {0x0000, 0x0000, 0x0096, 0xB43C};                   /* 9876540 */
    uint16_t sn[2] = {0x00BC, 0x614E};
    space_set(3, 0x5B0C, cur, 6);
    space_set(3, 0x5000, e, 4);
    space_set(3, 0x8900, sn, 2);
    space_set(4, 0x5B0C, e, 4); /* decoy under the wrong function */
    const pw_modbus_request plan[] = {REQ(3, 0x5000, 4), REQ(3, 0x5B0C, 6), REQ(3, 0x8900, 2)};
    assert_plan(m, plan, 3);
    pw_modbus_reading r;
    assert_int_equal(read_map(m, &r), 0);
    assert_reading(&r, (double[]){12.5, 7.25, 700.0}, true, 12345678, 98765400);
}

/* SunSpec 203 at header 40070: AphA..AphC at +3..+5 with A_SF at +6, TotWhImp (acc32) at +46
 * with TotWh_SF at +54. */
static void test_map_sunspec_int_vector(void **state)
{
    (void)state;
    pw_modbus_map m;
    assert_int_equal(pw_modbus_map_sunspec(203, 40070, &m), 0);
    space_reset(false);
    uint16_t cur[4] = {1250, 725, 50, 0xFFFE}; /* A_SF -2 */
    uint16_t wh[2] = {0x0001, 0xE23A};         /* 123450 */
    uint16_t wh_sf = 1;
    space_set(3, 40073, cur, 4);
    space_set(3, 40116, wh, 2);
    space_set(3, 40124, &wh_sf, 1);
    const pw_modbus_request plan[] = {REQ(3, 40073, 52)};
    assert_plan(&m, plan, 1);
    pw_modbus_reading r;
    assert_int_equal(read_map(&m, &r), 0);
    assert_reading(&r, (double[]){12.5, 7.25, 0.5}, false, 0, 1234500);

    /* A phase the meter does not implement is NaN (rejected), not 0 A... */
    uint16_t no = 0x8000;
    space_set(3, 40074, &no, 1);
    assert_int_equal(read_map(&m, &r), 0);
    assert_true(r.has_line[1] && isnan(r.line_a[1]));
    assert_true(fabs(r.line_a[0] - 12.5) < 1e-9);
    /* ...and so is every phase without a current scale factor. */
    space_set(3, 40076, &no, 1);
    assert_int_equal(read_map(&m, &r), 0);
    assert_true(isnan(r.line_a[0]) && isnan(r.line_a[2]));

    /* Model 201 is single phase: L2 and L3 are not read at all. */
    assert_int_equal(pw_modbus_map_sunspec(201, 40070, &m), 0);
    assert_true(m.current[0].present && !m.current[1].present && !m.current[2].present);
    assert_int_equal(pw_modbus_map_sunspec(202, 40070, &m), 0);
    assert_true(m.current[1].present && !m.current[2].present);
    assert_int_equal(pw_modbus_map_sunspec(101, 40070, &m), PW_MODBUS_E_ARG);
    assert_int_equal(pw_modbus_map_sunspec(203, 65535 - 100, &m), PW_MODBUS_E_ARG);
}

/* SunSpec 213: float AphA/AphB/AphC at +4/+6/+8, TotWhImp at +68, in Wh. */
static void test_map_sunspec_float_vector(void **state)
{
    (void)state;
    pw_modbus_map m;
    assert_int_equal(pw_modbus_map_sunspec(213, 40070, &m), 0);
    space_reset(false);
    uint16_t cur[6] = {0x4148, 0x0000, 0x40E8, 0x0000, 0x3F00, 0x0000};
    uint32_t b = fbits(1234500.0f); /* Wh, not kWh */
    uint16_t wh[2] = {(uint16_t)(b >> 16), (uint16_t)b};
    space_set(3, 40074, cur, 6);
    space_set(3, 40138, wh, 2);
    const pw_modbus_request plan[] = {REQ(3, 40074, 66)};
    assert_plan(&m, plan, 1);
    pw_modbus_reading r;
    assert_int_equal(read_map(&m, &r), 0);
    assert_reading(&r, (double[]){12.5, 7.25, 0.5}, false, 0, 1234500);
}

/* Every built-in map and every SunSpec model: the simulator's registers read back as written. */
static void round_trip(const pw_modbus_map *m)
{
    pw_modbus_reading in = {.line_a = {12.5, 7.25, 70.0},
                            .has_line = {true, true, true},
                            .has_serial = true,
                            .serial = 12345678,
                            .has_energy = true,
                            .energy_wh = 12345500}; /* exact as kWh in a float, kWh x 10 */
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    pw_modbus_answer answers[PW_MODBUS_MAP_READS];
    char why[160];
    assert_int_equal(pw_modbus_map_check(m, why, sizeof why), 0);
    size_t n = pw_modbus_map_plan(m, reqs, PW_MODBUS_MAP_READS);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        unsigned limit = m->max_regs ? m->max_regs : PW_MODBUS_MAX_REGS;
        assert_true(reqs[i].count >= 1 && reqs[i].count <= limit);
        memset(&answers[i], 0, sizeof answers[i]);
        pw_modbus_map_encode(m, &in, reqs[i].function, reqs[i].address, reqs[i].count,
                             answers[i].regs);
        answers[i].count = reqs[i].count;
    }
    pw_modbus_reading out;
    assert_int_equal(pw_modbus_map_decode(m, reqs, answers, n, &out), 0);
    for (int l = 0; l < 3; l++) {
        assert_int_equal(out.has_line[l], m->current[l].present);
        if (out.has_line[l])
            assert_true(fabs(out.line_a[l] - in.line_a[l]) < 1e-6);
    }
    assert_int_equal(out.has_serial, m->serial.present);
    if (out.has_serial)
        assert_int_equal(out.serial, in.serial);
    assert_true(out.has_energy);
    assert_int_equal(out.energy_wh, in.energy_wh);
    /* An answer that does not cover the map's registers is refused. */
    answers[n - 1].count = 0;
    assert_int_equal(pw_modbus_map_decode(m, reqs, answers, n, &out), PW_MODBUS_E_COUNT);
}

static void test_maps_round_trip(void **state)
{
    (void)state;
    size_t n;
    const pw_modbus_map *all = pw_modbus_map_all(&n);
    assert_int_equal(n, 7);
    static const char *const names[] = {"sdm630", "sdm72v1", "sdm72v2", "em340",
                                        "em24",   "em24eth", "abb_b2x"};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(all[i].name, names[i]);
        assert_ptr_equal(pw_modbus_map_find(names[i]), &all[i]);
        round_trip(&all[i]);
    }
    assert_null(pw_modbus_map_find("sunspec"));
    assert_null(pw_modbus_map_find("generic"));
    assert_null(pw_modbus_map_find(NULL));
    static const uint16_t models[] = {201, 202, 203, 204, 211, 212, 213, 214};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        pw_modbus_map m;
        assert_int_equal(pw_modbus_map_sunspec(models[i], 40070, &m), 0);
        round_trip(&m);
    }
    /* The simulator chooses the SunSpec scale factor from the values: 400 A does not fit an
     * int16 in mA or cA, so it goes to dA. */
    pw_modbus_map m;
    assert_int_equal(pw_modbus_map_sunspec(203, 40070, &m), 0);
    pw_modbus_reading big = {.line_a = {400.0, 1.0, 2.0}, .has_line = {true, true, true}};
    uint16_t regs[4];
    pw_modbus_map_encode(&m, &big, 3, 40073, 4, regs);
    assert_int_equal(regs[0], 4000);
    assert_int_equal(regs[3], (uint16_t)-1);
}

/* ---- Plans ---- */

static pw_modbus_field f32_at(uint8_t fn, uint16_t address)
{
    return (pw_modbus_field){
        .present = true, .function = fn, .address = address, .type = PW_MODBUS_F32, .scale = 1};
}

static void test_plan_merges_and_limits(void **state)
{
    (void)state;
    pw_modbus_map m = {.name = "generic"};
    m.current[0] = f32_at(4, 0);
    m.current[1] = f32_at(4, 123); /* ends at 125: one read of 125 */
    m.current[2] = f32_at(4, 10);
    const pw_modbus_request one[] = {REQ(4, 0, 125)};
    assert_plan(&m, one, 1);
    m.current[1].address = 124; /* 126 registers: two reads */
    const pw_modbus_request two[] = {REQ(4, 0, 12), REQ(4, 124, 2)};
    assert_plan(&m, two, 2);
    /* Functions are never mixed, whatever the addresses. */
    m.current[1] = f32_at(3, 2);
    const pw_modbus_request fns[] = {REQ(3, 2, 2), REQ(4, 0, 12)};
    assert_plan(&m, fns, 2);
    /* The meter's own limit. */
    m.current[1] = f32_at(4, 20);
    m.max_regs = 11;
    const pw_modbus_request small[] = {REQ(4, 0, 2), REQ(4, 10, 2), REQ(4, 20, 2)};
    assert_plan(&m, small, 3);
    m.max_regs = 12;
    const pw_modbus_request twelve[] = {REQ(4, 0, 12), REQ(4, 20, 2)};
    assert_plan(&m, twelve, 2);
    /* Overlapping and duplicate values are read once. */
    m.max_regs = 0;
    m.current[1] = f32_at(4, 0);
    m.current[2] = f32_at(4, 1);
    const pw_modbus_request dup[] = {REQ(4, 0, 3)};
    assert_plan(&m, dup, 1);

    /* Five values 1000 registers apart need five reads: more than a reading may take. */
    m.current[1] = f32_at(4, 1000);
    m.current[2] = f32_at(4, 2000);
    m.serial = f32_at(4, 3000);
    m.energy_wh = f32_at(4, 4000);
    pw_modbus_request reqs[8];
    assert_int_equal(pw_modbus_map_plan(&m, reqs, PW_MODBUS_MAP_READS), 0);
    assert_int_equal(pw_modbus_map_plan(&m, reqs, 8), 5);
    char why[160];
    assert_int_equal(pw_modbus_map_check(&m, why, sizeof why), PW_MODBUS_E_ARG);
    assert_non_null(strstr(why, "too far apart"));
    /* A 32-bit value cannot start at the last register. */
    m.serial.present = m.energy_wh.present = false;
    m.current[2] = f32_at(4, 65535);
    assert_int_equal(pw_modbus_map_check(&m, why, sizeof why), PW_MODBUS_E_ARG);
    assert_non_null(strstr(why, "current L3"));
    m.current[2] = f32_at(5, 50);
    assert_int_equal(pw_modbus_map_check(&m, why, sizeof why), PW_MODBUS_E_ARG);
    assert_non_null(strstr(why, "function 5"));
    m.current[2] = f32_at(4, 50);
    m.current[2].scale = 0;
    assert_int_equal(pw_modbus_map_check(&m, why, sizeof why), PW_MODBUS_E_ARG);
    m.current[2].scale = 0.1;
    assert_int_equal(pw_modbus_map_check(&m, why, sizeof why), 0);
    assert_string_equal(why, "");
    pw_modbus_map empty = {.name = "generic"};
    assert_int_equal(pw_modbus_map_check(&empty, why, sizeof why), PW_MODBUS_E_ARG);
    assert_int_equal(pw_modbus_map_plan(&empty, reqs, 8), 0);
}

/* A generic map with the word order of a Carlo Gavazzi meter: the order changes the value. */
static void test_generic_word_order(void **state)
{
    (void)state;
    pw_modbus_map m = {.name = "generic"};
    m.current[0] = (pw_modbus_field){.present = true,
                                     .function = 3,
                                     .address = 100,
                                     .type = PW_MODBUS_S32,
                                     .low_word_first = true,
                                     .scale = 0.001};
    m.current[1] = m.current[0];
    m.current[1].address = 102;
    m.current[1].low_word_first = false;
    m.current[2] = (pw_modbus_field){
        .present = true, .function = 3, .address = 104, .type = PW_MODBUS_S16, .scale = 0.1};
    space_reset(false);
    uint16_t w[5] = {0x1170, 0x0001, 0x0001, 0x1170, 0xFF9C}; /* 70000, 70000, -100 */
    space_set(3, 100, w, 5);
    pw_modbus_reading r;
    assert_int_equal(read_map(&m, &r), 0);
    assert_true(fabs(r.line_a[0] - 70.0) < 1e-9);
    assert_true(fabs(r.line_a[1] - 70.0) < 1e-9);
    assert_true(fabs(r.line_a[2] + 10.0) < 1e-9); /* negative: returned as read */
    w[0] = 0xFFFF, w[1] = 0xFFFF;                 /* -1 mA with the low word first */
    space_set(3, 100, w, 2);
    assert_int_equal(read_map(&m, &r), 0);
    assert_true(fabs(r.line_a[0] + 0.001) < 1e-12);
}

/* ---- SunSpec discovery ---- */

/* Lays out "SunS" at base and the given models (id, length) after it, then the end marker.
 * Model 1 gets an SN. Returns the header address of the model at index `want`. */
static uint16_t sunspec_layout(uint16_t base, const uint16_t (*models)[2], size_t n, size_t want)
{
    uint16_t suns[2] = {0x5375, 0x6E53};
    space_set(3, base, suns, 2);
    uint32_t at = base + 2u, found = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t hdr[2] = {models[i][0], models[i][1]};
        space_set(3, at, hdr, 2);
        space_valid(3, at + 2, models[i][1]);
        if (models[i][0] == 1) {
            uint16_t sn[16];
            text_regs("PW-SIM-0042", sn, 16);
            space_set(3, at + 50, sn, 16);
        }
        if (i == want)
            found = at;
        at += 2u + models[i][1];
    }
    uint16_t end[2] = {0xFFFF, 0};
    space_set(3, at, end, 2);
    return (uint16_t)found;
}

/* Runs discovery against the register space. Returns next()'s final answer (0 or -1). */
static int discover(pw_modbus_sunspec *s)
{
    pw_modbus_sunspec_init(s);
    for (int i = 0; i < 200; i++) {
        pw_modbus_request req;
        int rc = pw_modbus_sunspec_next(s, &req);
        if (rc != 1)
            return rc;
        assert_int_equal(req.function, 3);
        assert_int_equal(req.count, 2);
        pw_modbus_answer a;
        int err = space_serve(&req, &a);
        pw_modbus_sunspec_feed(s, err, &a);
    }
    fail_msg("discovery did not finish");
    return -2;
}

static void test_sunspec_at_40000(void **state)
{
    (void)state;
    space_reset(true);
    static const uint16_t models[][2] = {{1, 66}, {203, 105}};
    uint16_t hdr = sunspec_layout(40000, models, 2, 1);
    assert_int_equal(hdr, 40070);
    pw_modbus_sunspec s;
    assert_int_equal(discover(&s), 0);
    assert_int_equal(s.base, 40000);
    assert_int_equal(s.model, 203);
    assert_string_equal(s.error, "");
    assert_int_equal(space.n_reads, 3);
    assert_int_equal(space.reads[0], 40000);
    assert_int_equal(space.reads[1], 40002);
    assert_int_equal(space.reads[2], 40070);
    assert_string_equal(s.map.name, "sunspec");
    assert_int_equal(s.map.current[0].address, 40073);
    assert_int_equal(s.map.current[0].sf_address, 40076);
    assert_int_equal(s.map.energy_wh.address, 40116);
    /* The common model's SN is the serial number. */
    assert_true(s.map.serial.present);
    assert_int_equal(s.map.serial.address, 40052);
    /* The discovered map reads the meter: a reading written by the simulator comes back. */
    pw_modbus_reading in = {.line_a = {16.0, 0.25, 31.5},
                            .has_line = {true, true, true},
                            .has_energy = true,
                            .energy_wh = 4242};
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    size_t n = pw_modbus_map_plan(&s.map, reqs, PW_MODBUS_MAP_READS);
    assert_int_equal(n, 1); /* SN, currents and energy in one read */
    pw_modbus_map_encode(&s.map, &in, 3, reqs[0].address, reqs[0].count,
                         space.regs[0] + reqs[0].address);
    pw_modbus_reading out;
    assert_int_equal(read_map(&s.map, &out), 0);
    assert_true(fabs(out.line_a[2] - 31.5) < 1e-9);
    assert_int_equal(out.energy_wh, 4242);
    assert_true(out.has_serial);
    assert_int_equal(out.serial, fnv1a("PW-SIM-0042"));
    /* Done stays done. */
    pw_modbus_request req;
    assert_int_equal(pw_modbus_sunspec_next(&s, &req), 0);
}

static void test_sunspec_at_0_after_exception(void **state)
{
    (void)state;
    space_reset(true);
    /* Nothing at 40000 (exception 2); at 0 an inverter (101) comes before the meter. */
    static const uint16_t models[][2] = {{1, 66}, {101, 50}, {213, 124}};
    uint16_t hdr = sunspec_layout(0, models, 3, 2);
    assert_int_equal(hdr, 2 + 68 + 52);
    pw_modbus_sunspec s;
    assert_int_equal(discover(&s), 0);
    assert_int_equal(s.base, 0);
    assert_int_equal(s.model, 213);
    assert_int_equal(space.reads[0], 40000);
    assert_int_equal(space.reads[1], 0);
    assert_int_equal(space.n_reads, 5);
    assert_int_equal(s.map.current[0].address, hdr + 4);
    assert_int_equal(s.map.current[0].type, PW_MODBUS_F32);
    assert_int_equal(s.map.energy_wh.address, hdr + 68);
}

static void test_sunspec_at_50000(void **state)
{
    (void)state;
    space_reset(true);
    /* A wrong marker at 40000 is not SunSpec either. */
    uint16_t not_suns[2] = {0x5375, 0x6E54};
    space_set(3, 40000, not_suns, 2);
    static const uint16_t models[][2] = {{1, 60}, {201, 105}};
    sunspec_layout(50000, models, 2, 1);
    pw_modbus_sunspec s;
    assert_int_equal(discover(&s), 0);
    assert_int_equal(s.base, 50000);
    assert_int_equal(s.model, 201);
    /* A common model too short to hold the SN (it ends at +65): no serial. */
    assert_false(s.map.serial.present);
}

static void test_sunspec_failures(void **state)
{
    (void)state;
    pw_modbus_sunspec s;
    pw_modbus_request req;
    /* "SunS" nowhere. */
    space_reset(true);
    assert_int_equal(discover(&s), -1);
    assert_non_null(strstr(s.error, "\"SunS\""));
    assert_non_null(strstr(s.error, "40000"));
    assert_int_equal(space.n_reads, 3);
    assert_int_equal(pw_modbus_sunspec_next(&s, &req), -1);

    /* An inverter without a meter model. */
    space_reset(true);
    static const uint16_t inverter[][2] = {{1, 66}, {101, 50}, {120, 26}};
    sunspec_layout(40000, inverter, 3, 0);
    assert_int_equal(discover(&s), -1);
    assert_non_null(strstr(s.error, "no SunSpec meter model"));
    assert_non_null(strstr(s.error, "3 models"));

    /* A header that cannot be read. */
    space_reset(true);
    static const uint16_t gap[][2] = {{1, 66}};
    sunspec_layout(40000, gap, 1, 0);
    space.valid[0][40070] = false; /* the end marker is missing */
    assert_int_equal(discover(&s), -1);
    assert_non_null(strstr(s.error, "40070"));
    assert_non_null(strstr(s.error, "exception 2"));

    /* Endless empty models stop after 64 headers. */
    space_reset(true);
    uint16_t suns[2] = {0x5375, 0x6E53};
    space_set(3, 40000, suns, 2);
    for (uint32_t a = 40002; a < 40002 + 2 * 100; a += 2) {
        uint16_t hdr[2] = {64000, 0};
        space_set(3, a, hdr, 2);
    }
    assert_int_equal(discover(&s), -1);
    assert_non_null(strstr(s.error, "64 models"));
    assert_int_equal(space.n_reads, 1 + 64);

    /* A model length that runs past the last register. */
    space_reset(true);
    uint16_t huge[2] = {1, 30000};
    space_set(3, 40000, suns, 2);
    space_set(3, 40002, huge, 2);
    assert_int_equal(discover(&s), -1);
    assert_non_null(strstr(s.error, "runs past"));
    /* A meter model too close to the end of the register space. */
    space_reset(true);
    uint16_t late[2] = {213, 124};
    space_set(3, 50000, suns, 2);
    space_set(3, 50002, (uint16_t[]){1, 15446}, 2); /* the next header at 65450 */
    space_set(3, 65450, late, 2);
    assert_int_equal(discover(&s), -1);
    assert_non_null(strstr(s.error, "model 213"));

    /* Feeding without a read asked for changes nothing; a corrupted state fails safely. */
    pw_modbus_sunspec_init(&s);
    s.state = 99;
    assert_int_equal(pw_modbus_sunspec_next(&s, &req), -1);
    assert_true(strlen(s.error) > 0);
    pw_modbus_sunspec_feed(&s, 0, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_request_vectors),
        cmocka_unit_test(test_answer_split_at_every_byte),
        cmocka_unit_test(test_answers_back_to_back),
        cmocka_unit_test(test_foreign_answers_are_consumed),
        cmocka_unit_test(test_exception_answers),
        cmocka_unit_test(test_garbage_is_protocol_error),
        cmocka_unit_test(test_server_side),
        cmocka_unit_test(test_map_sdm630_vector),
        cmocka_unit_test(test_map_sdm72_vectors),
        cmocka_unit_test(test_map_em340_vector),
        cmocka_unit_test(test_map_em24_vector),
        cmocka_unit_test(test_map_abb_vector),
        cmocka_unit_test(test_map_sunspec_int_vector),
        cmocka_unit_test(test_map_sunspec_float_vector),
        cmocka_unit_test(test_maps_round_trip),
        cmocka_unit_test(test_plan_merges_and_limits),
        cmocka_unit_test(test_generic_word_order),
        cmocka_unit_test(test_sunspec_at_40000),
        cmocka_unit_test(test_sunspec_at_0_after_exception),
        cmocka_unit_test(test_sunspec_at_50000),
        cmocka_unit_test(test_sunspec_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
