/* libFuzzer target: the local controller's relay (ocpp/pw_ocpp_relay.h) on arbitrary
 * conversations. The input is lines; each line's first byte says what happens: 'c' a frame from
 * the charge point, 's' a frame from the CSMS, 'u' / 'd' the upstream up / down, 'g' the charge
 * point gone, 't' time passes (the next byte in seconds; 'T': in hours) and the relay polls,
 * 'l' the rest of the line is a dump of kept profiles to load, 'r' puts back a record kept
 * before a restart: 'rb' + a boot payload, 'rx' + "local csms" (a transaction pair), 'rc' +
 * "seq action payload" (a call); anything else is a frame from the charge point. A
 * StartTransaction the charge point sends is answered by a fake phasewise with a transaction id.
 * Beyond "no crash": every frame the relay sends either way parses back; every call it sends the
 * CSMS holds to its action's schema; every answer it sends up names a message id the CSMS used;
 * a cap is a number >= 0 or INFINITY; the connectors' caps never add up to more than the
 * ChargePointMaxProfile; the next deadline is never in the past after a poll; what is kept is
 * numbered in order and only a kept (or restored) call is ever done; at the end the profiles
 * held dump, and load into a fresh relay, every one but the TxProfiles (their transactions do
 * not run there). Try -dict=ocpp.dict. */
#include "pw_ocpp_relay.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

#define MAX_SEQS 64

typedef struct fz {
    pw_ocpp_relay *r;
    uint64_t tx_seq;
    uint64_t kept[MAX_SEQS]; /* calls kept and not done, as the store would hold them */
    size_t n_kept;
} fz;

static bool kept_has(const fz *z, uint64_t seq)
{
    for (size_t i = 0; i < z->n_kept; i++)
        if (z->kept[i] == seq)
            return true;
    return false;
}

static bool kept_drop(fz *z, uint64_t seq)
{
    for (size_t i = 0; i < z->n_kept; i++)
        if (z->kept[i] == seq) {
            z->kept[i] = z->kept[--z->n_kept];
            return true;
        }
    return false;
}

static void keep(void *ud, const pw_ocpp_relay_keep *k)
{
    fz *z = ud;
    switch (k->kind) {
    case PW_OCPP_KEEP_CALL:
        CHECK(k->seq > 0 && k->action && k->payload);
        for (size_t i = 0; i < z->n_kept; i++)
            CHECK(z->kept[i] < k->seq); /* numbers only grow */
        if (z->n_kept < MAX_SEQS)
            z->kept[z->n_kept++] = k->seq;
        break;
    case PW_OCPP_KEEP_DONE:
        CHECK(kept_drop(z, k->seq) || z->n_kept == MAX_SEQS);
        break;
    case PW_OCPP_KEEP_CALL_TX:
    case PW_OCPP_KEEP_TX:
    case PW_OCPP_KEEP_TX_DONE:
        CHECK(k->local_tx && k->local_tx[0]);
        break;
    case PW_OCPP_KEEP_BOOT:
        CHECK(k->payload && k->payload[0] == '{');
        break;
    default:
        CHECK(0);
    }
}

/* 'r' lines: a record kept before a restart, put back. */
static void restore(fz *z, const char *text, size_t len)
{
    char buf[4096];
    if (len < 1 || len >= sizeof buf)
        return;
    memcpy(buf, text + 1, len - 1);
    buf[len - 1] = '\0';
    pw_ocpp_relay_keep k = {.payload = buf};
    char *sp = strchr(buf, ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
    switch (text[0]) {
    case 'b':
        k.kind = PW_OCPP_KEEP_BOOT;
        break;
    case 'x':
        if (!sp)
            return;
        *sp = '\0';
        k = (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_TX, .local_tx = buf, .csms_tx = sp + 1};
        break;
    case 'c':
        if (!sp || !sp2)
            return;
        *sp = *sp2 = '\0';
        k = (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_CALL,
                                 .seq = strtoull(buf, NULL, 10),
                                 .action = sp + 1,
                                 .payload = sp2 + 1};
        if (k.seq == 0 || kept_has(z, k.seq) || z->n_kept == MAX_SEQS)
            return; /* the store holds one call per number */
        z->kept[z->n_kept++] = k.seq;
        break;
    default:
        k.kind = (enum pw_ocpp_relay_keep_kind)text[0];
        break;
    }
    if (pw_ocpp_relay_restore(z->r, &k) != 0 && k.kind == PW_OCPP_KEEP_CALL)
        kept_drop(z, k.seq);
}

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

/* The profiles held, dumped as the store would keep them, load into a fresh relay. */
static void round_trip(const pw_ocpp_relay_opts *o, const pw_ocpp_relay_sink *sink,
                       const pw_ocpp_relay *r, int64_t wall)
{
    json_t *dump = pw_ocpp_relay_profiles_dump(r);
    CHECK(json_is_array(dump));
    char *text = json_dumps(dump, JSON_COMPACT);
    json_t *back = json_loads(text, 0, NULL);
    CHECK(back && json_equal(back, dump));
    size_t not_tx = 0;
    for (size_t i = 0; i < json_array_size(dump); i++) {
        const char *purpose = json_string_value(
            json_object_get(json_object_get(json_array_get(dump, i), "csChargingProfiles"),
                            "chargingProfilePurpose"));
        CHECK(purpose);
        not_tx += strcmp(purpose, "TxProfile") != 0;
    }
    pw_ocpp_relay *fresh = pw_ocpp_relay_new(o, sink);
    int skipped = pw_ocpp_relay_profiles_load(fresh, back, wall);
    CHECK(skipped >= 0 && (size_t)skipped == json_array_size(dump) - not_tx);
    json_t *again = pw_ocpp_relay_profiles_dump(fresh);
    CHECK(json_array_size(again) == not_tx);
    json_decref(again);
    pw_ocpp_relay_free(fresh);
    json_decref(back);
    json_decref(dump);
    free(text);
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
    pw_ocpp_relay_sink sink = {
        .ud = &z, .to_cp = to_cp, .to_csms = to_csms, .cap = cap, .dropped = dropped, .keep = keep};
    z.r = pw_ocpp_relay_new(&o, &sink);
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
        case 'r':
            restore(&z, text, tlen);
            break;
        case 't':
        case 'T': {
            uint64_t step = (tlen ? (uint8_t)text[0] : 1) * (op == 't' ? 1000u : 3600000u);
            now += step;
            wall += (int64_t)step;
            pw_ocpp_relay_poll(z.r, now, wall);
            CHECK(pw_ocpp_relay_next_deadline(z.r) > now);
            break;
        }
        case 'l': {
            json_t *dump = json_loadb(text, tlen, 0, NULL);
            int skipped = pw_ocpp_relay_profiles_load(z.r, dump, wall);
            CHECK(json_is_array(dump) ? skipped >= 0 && (size_t)skipped <= json_array_size(dump)
                                      : skipped == -1);
            json_decref(dump);
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
        double sum = 0;
        for (int c = 0; c <= 2; c++) {
            double v = pw_ocpp_relay_cap(z.r, c);
            CHECK(isinf(v) ? v > 0 : v >= 0);
            sum += c ? v : 0;
        }
        CHECK(sum <= pw_ocpp_relay_cap(z.r, 0) + 1e-9);
        p = nl ? nl + 1 : end;
    }
    CHECK(pw_ocpp_relay_stats_get(z.r)->queued <= 8);
    round_trip(&o, &sink, z.r, wall);
    pw_ocpp_relay_free(z.r);
    return 0;
}
