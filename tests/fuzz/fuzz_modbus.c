/* libFuzzer target: the Modbus module on arbitrary bytes. The input is read as a byte stream by
 * the client (pw_modbus_parse_answer, for a request taken from its first bytes) and by the
 * server (pw_modbus_parse_request), as a series of answers to SunSpec discovery, and as register
 * contents for every built-in map. Beyond "no crash": every frame consumed is within the input,
 * a frame one byte short is "need more", and whatever parses encodes back to the same bytes. */
#include "pw_modbus.h"
#include "pw_modbus_map.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* A reader over the input that yields zeros once it runs out. */
typedef struct src {
    const uint8_t *p;
    size_t n, at;
} src;

static uint8_t byte(src *s)
{
    return s->at < s->n ? s->p[s->at++] : 0;
}

static uint16_t word(src *s)
{
    uint16_t hi = byte(s);
    return (uint16_t)(hi << 8 | byte(s));
}

static void client_stream(const uint8_t *buf, size_t len, const pw_modbus_request *req)
{
    while (len > 0) {
        pw_modbus_answer a;
        int err = -99;
        int n = pw_modbus_parse_answer(buf, len, req, &a, &err);
        if (n == PW_MODBUS_AGAIN || n == PW_MODBUS_E_PROTOCOL)
            return;
        CHECK(n >= 9 && (size_t)n <= len && n <= PW_MODBUS_MAX_ADU);
        CHECK(err <= 0 && err >= PW_MODBUS_E_EXCEPTION && err != PW_MODBUS_AGAIN);
        /* The same frame one byte short is incomplete, never an error or a frame. */
        int err2 = -99;
        pw_modbus_answer b;
        CHECK(pw_modbus_parse_answer(buf, (size_t)n - 1, req, &b, &err2) == PW_MODBUS_AGAIN);
        uint8_t again[PW_MODBUS_MAX_ADU];
        if (err == PW_MODBUS_OK) {
            CHECK(a.count == req->count && a.exception == 0);
            CHECK(pw_modbus_encode_answer(req, a.regs, 0, again, sizeof again) == n);
            CHECK(memcmp(again, buf, (size_t)n) == 0);
        } else if (err == PW_MODBUS_E_EXCEPTION) {
            CHECK(a.count == 0);
            if (a.exception != 0) {
                CHECK(pw_modbus_encode_answer(req, NULL, a.exception, again, sizeof again) == n);
                CHECK(memcmp(again, buf, (size_t)n) == 0);
            }
            CHECK(pw_modbus_exception_text(a.exception) != NULL);
        } else {
            CHECK(a.count == 0);
        }
        CHECK(pw_modbus_strerror(err) != NULL);
        buf += n;
        len -= (size_t)n;
    }
}

static void server_stream(const uint8_t *buf, size_t len)
{
    while (len > 0) {
        pw_modbus_request r;
        int err = -99;
        int n = pw_modbus_parse_request(buf, len, &r, &err);
        if (n == PW_MODBUS_AGAIN || n == PW_MODBUS_E_PROTOCOL)
            return;
        CHECK(n >= 8 && (size_t)n <= len && n <= 6 + 254);
        CHECK(err == PW_MODBUS_OK || err == PW_MODBUS_E_FUNCTION || err == PW_MODBUS_E_COUNT);
        pw_modbus_request r2;
        int err2;
        CHECK(pw_modbus_parse_request(buf, (size_t)n - 1, &r2, &err2) == PW_MODBUS_AGAIN);
        uint8_t out[PW_MODBUS_MAX_ADU];
        if (err == PW_MODBUS_OK) {
            CHECK(n == 12);
            int m = pw_modbus_encode_request(&r, out, sizeof out);
            CHECK(m == 12 || (m == PW_MODBUS_E_ARG && (uint32_t)r.address + r.count > 65536u));
            if (m == 12)
                CHECK(memcmp(out, buf, 12) == 0);
        }
        /* Whatever was asked, an exception answer can always be framed (function < 0x80). */
        if (!(r.function & 0x80))
            CHECK(pw_modbus_encode_answer(&r, NULL, 1, out, sizeof out) == 9);
        buf += n;
        len -= (size_t)n;
    }
}

/* Fills the answers to a plan from the input and decodes them. */
static void decode_from(const pw_modbus_map *m, src *s)
{
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    static pw_modbus_answer answers[PW_MODBUS_MAP_READS];
    size_t n = pw_modbus_map_plan(m, reqs, PW_MODBUS_MAP_READS);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(reqs[i].count >= 1 && reqs[i].count <= PW_MODBUS_MAX_REGS);
        answers[i].count = reqs[i].count;
        for (unsigned k = 0; k < reqs[i].count; k++)
            answers[i].regs[k] = word(s);
    }
    pw_modbus_reading r;
    CHECK(pw_modbus_map_decode(m, reqs, answers, n, &r) == 0);
    /* What the simulator writes for that reading reads back to it (finite values only). */
    for (int l = 0; l < 3; l++) {
        if (r.has_line[l] && !(r.line_a[l] > -1e6 && r.line_a[l] < 1e6))
            return;
    }
    for (size_t i = 0; i < n; i++)
        pw_modbus_map_encode(m, &r, reqs[i].function, reqs[i].address, reqs[i].count,
                             answers[i].regs);
    pw_modbus_reading back;
    CHECK(pw_modbus_map_decode(m, reqs, answers, n, &back) == 0);
    for (int l = 0; l < 3; l++)
        CHECK(back.has_line[l] == r.has_line[l]);
}

static void sunspec(src *s)
{
    pw_modbus_sunspec d;
    pw_modbus_sunspec_init(&d);
    static const int errs[] = {PW_MODBUS_OK,     PW_MODBUS_OK,          PW_MODBUS_OK,
                               PW_MODBUS_OK,     PW_MODBUS_E_EXCEPTION, PW_MODBUS_E_TID,
                               PW_MODBUS_E_UNIT, PW_MODBUS_E_COUNT};
    int rc;
    for (int step = 0; step < 200; step++) {
        pw_modbus_request req;
        rc = pw_modbus_sunspec_next(&d, &req);
        if (rc != 1)
            break;
        CHECK(req.function == 3 && req.count == 2);
        uint8_t sel = byte(s);
        pw_modbus_answer a = {.count = (uint16_t)(sel & 0x80 ? 1 : 2)};
        int err = errs[sel & 7];
        /* Bias the first answer towards the marker, so that the walk is reached. */
        a.regs[0] = sel & 0x40 ? 0x5375 : word(s);
        a.regs[1] = sel & 0x40 ? 0x6E53 : word(s);
        if (err == PW_MODBUS_E_EXCEPTION)
            a.exception = byte(s);
        pw_modbus_sunspec_feed(&d, err, sel & 0x20 && step > 0 ? NULL : &a);
    }
    rc = pw_modbus_sunspec_next(&d, &(pw_modbus_request){0});
    CHECK(memchr(d.error, '\0', sizeof d.error) != NULL);
    if (rc == 0) {
        CHECK(d.error[0] == '\0');
        CHECK(pw_modbus_map_check(&d.map, NULL, 0) == 0);
        decode_from(&d.map, s);
    } else {
        CHECK(rc == -1 && d.error[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    pw_modbus_request req = {.tid = (uint16_t)(data[0] << 8 | data[1]),
                             .unit = data[2],
                             .function = (uint8_t)(3 + (data[3] & 1)),
                             .address = (uint16_t)(data[4] << 8 | data[5]),
                             .count = (uint16_t)(1 + data[6] % PW_MODBUS_MAX_REGS)};
    client_stream(data + 8, size - 8, &req);
    server_stream(data + 8, size - 8);

    src s = {data + 8, size - 8, 0};
    sunspec(&s);
    size_t n;
    const pw_modbus_map *all = pw_modbus_map_all(&n);
    src regs = {data, size, 0};
    decode_from(&all[data[7] % n], &regs);
    return 0;
}
