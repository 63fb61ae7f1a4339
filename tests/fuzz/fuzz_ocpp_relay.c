/* libFuzzer target: the local controller's relay (ocpp/pw_ocpp_relay.h) on arbitrary
 * conversations. The input is lines; each line's first byte says what happens: 'c' a frame from
 * the charge point, 's' a frame from the CSMS, 'u' / 'd' the upstream up / down, 'g' the charge
 * point gone, 't' time passes (the next byte in seconds) and the relay polls; anything else is
 * a frame from the charge point. A StartTransaction the charge point sends is answered by a fake
 * phasewise with a transaction id. Beyond "no crash": every frame the relay sends either way
 * parses back; every call it sends the CSMS holds to its action's schema; every answer it sends
 * up names a message id the CSMS used; a cap is a number >= 0 or INFINITY; the next deadline is
 * never in the past after a poll. Try -dict=ocpp.dict. */
#include "pw_ocpp_relay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

typedef struct fz {
    pw_ocpp_relay *r;
    uint64_t tx_seq;
} fz;

static void parses(const char *text, size_t len, pw_ocpp_frame *f)
{
    pw_ocpp_fault fault;
    CHECK(pw_ocpp_frame_parse(text, len, f, &fault) == 0);
}

static void to_cp(void *ud, const char *text, size_t len)
{
    (void)ud;
    pw_ocpp_frame f;
    parses(text, len, &f);
    CHECK(f.kind == PW_OCPP_CALL); /* the relay only ever calls the charge point */
    pw_ocpp_frame_clear(&f);
}

static void to_csms(void *ud, const char *text, size_t len)
{
    (void)ud;
    pw_ocpp_frame f;
    parses(text, len, &f);
    if (f.kind == PW_OCPP_CALL) {
        pw_ocpp_fault fault;
        CHECK(pw_ocpp_check_payload(pw_ocpp_action_parse(f.action), false, f.payload, &fault) == 0);
    }
    CHECK(f.id[0] != '\0');
    pw_ocpp_frame_clear(&f);
}

static void cap(void *ud, int connector, double cap_a)
{
    (void)ud;
    CHECK(connector >= 1 && connector <= PW_OCPP_MAX_CONNECTORS);
    CHECK(isinf(cap_a) ? cap_a > 0 : cap_a >= 0);
}

static void dropped(void *ud, const char *reason, const char *detail)
{
    (void)ud;
    CHECK(reason[0] && detail);
}

/* phasewise answers a StartTransaction the charge point sent, as pw_ocpp_cp would. */
static void local_answer(fz *z, const char *text, size_t len)
{
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &f, &fault) == 0 && f.kind == PW_OCPP_CALL &&
        strcmp(f.action, "StartTransaction") == 0) {
        char tx[24];
        snprintf(tx, sizeof tx, "%llu", (unsigned long long)++z->tx_seq);
        size_t n;
        char *ans = pw_ocpp_result_text(f.id, pw_ocpp_start_conf(tx, PW_OCPP_ACCEPTED), &n);
        pw_ocpp_relay_local_to_cp(z->r, ans, n);
        free(ans);
    }
    pw_ocpp_frame_clear(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz z = {0};
    pw_ocpp_relay_opts o;
    pw_ocpp_relay_default_opts(&o);
    o.max_queue = 8;
    o.n_connectors = 2;
    o.connectors[0] = 1;
    o.connectors[1] = 2;
    o.max_a[0] = o.max_a[1] = 16;
    z.r = pw_ocpp_relay_new(
        &o, &(pw_ocpp_relay_sink){
                .ud = &z, .to_cp = to_cp, .to_csms = to_csms, .cap = cap, .dropped = dropped});
    uint64_t now = 1000000;
    int64_t wall = INT64_C(1790000000000);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - p);
        char op = len ? p[0] : 'c';
        const char *text = len ? p + 1 : p;
        size_t tlen = len ? len - 1 : 0;
        switch (op) {
        case 's':
            pw_ocpp_relay_from_csms(z.r, text, tlen, now, wall);
            break;
        case 'u':
        case 'd':
            pw_ocpp_relay_upstream(z.r, op == 'u', now);
            break;
        case 'g':
            pw_ocpp_relay_cp_gone(z.r);
            break;
        case 't': {
            uint64_t step = (tlen ? (uint8_t)text[0] : 1) * 1000u;
            now += step;
            wall += (int64_t)step;
            pw_ocpp_relay_poll(z.r, now);
            CHECK(pw_ocpp_relay_next_deadline(z.r) > now);
            break;
        }
        case 'c':
            if (pw_ocpp_relay_from_cp(z.r, text, tlen, now) == PW_OCPP_RELAY_LOCAL)
                local_answer(&z, text, tlen);
            break;
        default:
            if (pw_ocpp_relay_from_cp(z.r, p, len, now) == PW_OCPP_RELAY_LOCAL)
                local_answer(&z, p, len);
            break;
        }
        for (int c = 0; c <= 2; c++) {
            double v = pw_ocpp_relay_cap(z.r, c);
            CHECK(isinf(v) ? v > 0 : v >= 0);
        }
        p = nl ? nl + 1 : end;
    }
    CHECK(pw_ocpp_relay_stats_get(z.r)->queued <= 8);
    pw_ocpp_relay_free(z.r);
    return 0;
}
