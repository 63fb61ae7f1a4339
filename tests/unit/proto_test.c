/* Unit tests of the LAN protocol codec: round trips, the documented vectors, every rejection
 * path of the decoder and encoder, tag coverage of every bit, replay handling and DEFA frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto_vectors.h"
#include "pw_proto.h"
#include "pw_util.h"

#include <mbedtls/md.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD PW_PROTO_HDR_LEN /* offset of the payload in a datagram */

static const pw_proto_msg *vector_msg(int type)
{
    for (size_t i = 0; i < pw_test_vector_count; i++) {
        if (pw_test_vectors[i].msg.hdr.type == type)
            return &pw_test_vectors[i].msg;
    }
    fail_msg("no vector of type %d", type);
    return NULL;
}

static int encode(const pw_proto_msg *msg, uint8_t *buf)
{
    int n = pw_proto_encode(msg, pw_test_key, buf, PW_PROTO_MAX_DATAGRAM);
    assert_true(n > 0);
    return n;
}

/* Recomputes the tag of a datagram the test altered, independently of the codec, so that the
 * decoder's checks behind the tag can be reached. */
static void resign(uint8_t *buf, size_t len)
{
    uint8_t full[32];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    assert_int_equal(
        mbedtls_md_hmac(md, pw_test_key, PW_PROTO_KEY_LEN, buf, len - PW_PROTO_TAG_LEN, full), 0);
    memcpy(buf + len - PW_PROTO_TAG_LEN, full, PW_PROTO_TAG_LEN);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void assert_lines_equal(const uint32_t *ca, const uint16_t *va, const uint32_t *cb,
                               const uint16_t *vb)
{
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ca[i], cb[i]);
        assert_int_equal(va[i], vb[i]);
    }
}

static void assert_announce_equal(const pw_msg_announce *a, const pw_msg_announce *b)
{
    assert_string_equal(a->model, b->model);
    assert_string_equal(a->firmware, b->firmware);
    assert_memory_equal(a->wiring, b->wiring, sizeof a->wiring);
    assert_int_equal(a->max_current_ma, b->max_current_ma);
    assert_int_equal(a->link, b->link);
    assert_int_equal(a->rssi_dbm, b->rssi_dbm);
    assert_int_equal(a->can_switch_phases, b->can_switch_phases);
}

static void assert_status_equal(const pw_msg_status *a, const pw_msg_status *b)
{
    assert_int_equal(a->iec_state, b->iec_state);
    assert_lines_equal(a->current_ma, a->voltage_dv, b->current_ma, b->voltage_dv);
    assert_int_equal(a->energy_wh, b->energy_wh);
    assert_int_equal(a->applied_limit_ma, b->applied_limit_ma);
    assert_int_equal(a->applied_phases, b->applied_phases);
    assert_int_equal(a->alloc_seq, b->alloc_seq);
    assert_int_equal(a->session_id, b->session_id);
}

static void assert_meter_equal(const pw_msg_meter *a, const pw_msg_meter *b)
{
    assert_lines_equal(a->current_ma, a->voltage_dv, b->current_ma, b->voltage_dv);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a->power_w[i], b->power_w[i]);
    assert_int_equal(a->energy_wh, b->energy_wh);
}

static void assert_allocation_equal(const pw_msg_allocation *a, const pw_msg_allocation *b)
{
    assert_int_equal(a->alloc_seq, b->alloc_seq);
    assert_int_equal(a->lease_ms, b->lease_ms);
    assert_int_equal(a->count, b->count);
    for (unsigned i = 0; i < a->count; i++) {
        assert_int_equal(a->entries[i].charger_id, b->entries[i].charger_id);
        assert_int_equal(a->entries[i].limit_ma, b->entries[i].limit_ma);
        assert_int_equal(a->entries[i].phases, b->entries[i].phases);
    }
}

static void assert_heartbeat_equal(const pw_msg_heartbeat *a, const pw_msg_heartbeat *b)
{
    assert_int_equal(a->uptime_s, b->uptime_s);
    assert_int_equal(a->config_generation, b->config_generation);
    assert_int_equal(a->chargers_online, b->chargers_online);
    assert_int_equal(a->state, b->state);
}

/* Field by field, so that struct padding (left as the caller had it) does not matter. */
static void assert_msg_equal(const pw_proto_msg *a, const pw_proto_msg *b)
{
    assert_int_equal(a->hdr.type, b->hdr.type);
    assert_int_equal(a->hdr.flags, b->hdr.flags);
    assert_int_equal(a->hdr.sender_id, b->hdr.sender_id);
    assert_int_equal(a->hdr.boot_id, b->hdr.boot_id);
    assert_int_equal(a->hdr.seq, b->hdr.seq);
    switch (a->hdr.type) {
    case PW_MSG_ANNOUNCE:
        assert_announce_equal(&a->u.announce, &b->u.announce);
        break;
    case PW_MSG_STATUS:
        assert_status_equal(&a->u.status, &b->u.status);
        break;
    case PW_MSG_METER:
        assert_meter_equal(&a->u.meter, &b->u.meter);
        break;
    case PW_MSG_ALLOCATION:
        assert_allocation_equal(&a->u.allocation, &b->u.allocation);
        break;
    case PW_MSG_HEARTBEAT:
        assert_heartbeat_equal(&a->u.heartbeat, &b->u.heartbeat);
        break;
    default:
        fail_msg("unexpected type %d", a->hdr.type);
    }
}

/* Encodes msg, decodes the result and checks that nothing changed. Returns the length. */
static int round_trip(const pw_proto_msg *msg)
{
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    pw_proto_msg out;
    int n = encode(msg, buf);
    memset(&out, 0xa5, sizeof out);
    assert_int_equal(pw_proto_decode(buf, (size_t)n, pw_test_key, &out), 0);
    assert_msg_equal(msg, &out);
    return n;
}

/* --- round trips and vectors --- */

static void test_round_trip_every_type(void **state)
{
    (void)state;
    static const int expected_len[] = {0, 94, 76, 74, 73, 47};
    for (size_t i = 0; i < pw_test_vector_count; i++) {
        const pw_proto_msg *m = &pw_test_vectors[i].msg;
        assert_int_equal(round_trip(m), expected_len[m->hdr.type]);
    }
}

static void test_round_trip_extremes(void **state)
{
    (void)state;
    pw_proto_msg m = *vector_msg(PW_MSG_METER);
    for (int i = 0; i < 3; i++) {
        m.u.meter.current_ma[i] = PW_PROTO_MAX_CURRENT_MA;
        m.u.meter.voltage_dv[i] = PW_PROTO_MAX_VOLTAGE_DV;
    }
    m.u.meter.power_w[0] = -PW_PROTO_MAX_POWER_W;
    m.u.meter.power_w[1] = PW_PROTO_MAX_POWER_W;
    m.u.meter.power_w[2] = -1;
    m.u.meter.energy_wh = UINT64_MAX;
    m.hdr.boot_id = UINT32_MAX;
    m.hdr.seq = UINT32_MAX;
    m.hdr.sender_id = UINT32_MAX;
    round_trip(&m);

    pw_proto_msg a = *vector_msg(PW_MSG_ANNOUNCE);
    memset(a.u.announce.model, 'x', PW_PROTO_TEXT_LEN - 1);
    a.u.announce.model[PW_PROTO_TEXT_LEN - 1] = '\0';
    a.u.announce.firmware[0] = '\0';
    a.u.announce.wiring[0] = 0;
    a.u.announce.wiring[2] = 0; /* single-phase charger on line 3 */
    a.u.announce.link = PW_LINK_ETHERNET;
    a.u.announce.rssi_dbm = 0;
    a.u.announce.can_switch_phases = false;
    round_trip(&a);
}

/* A plan of 300 chargers split into datagrams of at most 128 entries, as PROTOCOL.md says the
 * balancer does: every part fits 1200 bytes and each charger finds its own entry. */
static void test_allocation_split(void **state)
{
    (void)state;
    enum { N = 300 };
    static pw_alloc_entry plan[N];
    for (unsigned i = 0; i < N; i++)
        plan[i] = (pw_alloc_entry){.charger_id = 5000 + i, .limit_ma = 6000 + i * 10, .phases = 3};
    unsigned found = 0, parts = 0;
    for (unsigned first = 0; first < N; first += PW_PROTO_ALLOC_PER_DATAGRAM, parts++) {
        static pw_proto_msg m, out;
        m.hdr = (pw_proto_hdr){.type = PW_MSG_ALLOCATION, .seq = parts};
        m.u.allocation.alloc_seq = 9;
        m.u.allocation.lease_ms = PW_PROTO_LEASE_MS;
        unsigned count =
            N - first < PW_PROTO_ALLOC_PER_DATAGRAM ? N - first : PW_PROTO_ALLOC_PER_DATAGRAM;
        m.u.allocation.count = (uint16_t)count;
        memcpy(m.u.allocation.entries, plan + first, count * sizeof plan[0]);
        uint8_t buf[PW_PROTO_MAX_DATAGRAM];
        int n = encode(&m, buf);
        assert_true(n <= PW_PROTO_MAX_DATAGRAM);
        assert_int_equal(pw_proto_decode(buf, (size_t)n, pw_test_key, &out), 0);
        for (unsigned i = 0; i < out.u.allocation.count; i++) {
            const pw_alloc_entry *e = &out.u.allocation.entries[i];
            assert_int_equal(e->limit_ma, plan[e->charger_id - 5000].limit_ma);
            found++;
        }
    }
    assert_int_equal(parts, 3);
    assert_int_equal(found, N);
}

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < pw_test_vector_count; i++) {
        const struct pw_test_vector *v = &pw_test_vectors[i];
        uint8_t want[PW_PROTO_MAX_DATAGRAM], got[PW_PROTO_MAX_DATAGRAM];
        int wn = pw_test_unhex(v->hex, want, sizeof want);
        assert_true(wn >= PW_PROTO_OVERHEAD);
        int gn = encode(&v->msg, got);
        assert_int_equal(gn, wn);
        assert_memory_equal(got, want, (size_t)wn);
        pw_proto_msg out;
        assert_int_equal(pw_proto_decode(want, (size_t)wn, pw_test_key, &out), 0);
        assert_msg_equal(&v->msg, &out);
    }
    uint8_t frame[PW_DEFA_FRAME_LEN], want[PW_DEFA_FRAME_LEN];
    assert_int_equal(pw_test_unhex(pw_test_defa_hex, want, sizeof want), PW_DEFA_FRAME_LEN);
    assert_int_equal(pw_defa_encode(&pw_test_defa_frame, frame), PW_DEFA_FRAME_LEN);
    assert_memory_equal(frame, want, sizeof want);
}

/* Every hex vector appears verbatim in PROTOCOL.md, so the document cannot drift from the code. */
static void test_vectors_in_document(void **state)
{
    (void)state;
    FILE *f = fopen(PW_SOURCE_DIR "/protocol/PROTOCOL.md", "r");
    assert_non_null(f);
    static char doc[256 * 1024];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    /* The document wraps long hex over lines; compare with whitespace removed. */
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (doc[r] != ' ' && doc[r] != '\n')
            doc[w++] = doc[r];
    }
    doc[w] = '\0';
    for (size_t i = 0; i < pw_test_vector_count; i++)
        assert_non_null(strstr(doc, pw_test_vectors[i].hex));
    assert_non_null(strstr(doc, pw_test_defa_hex));
}

/* --- framing rejections --- */

static void test_reject_framing(void **state)
{
    (void)state;
    uint8_t buf[PW_PROTO_MAX_DATAGRAM + 8];
    pw_proto_msg out;
    int n = encode(vector_msg(PW_MSG_STATUS), buf);

    for (size_t len = 0; len < PW_PROTO_OVERHEAD; len++)
        assert_int_equal(pw_proto_decode(buf, len, pw_test_key, &out), PW_PROTO_E_SHORT);
    /* Truncated anywhere after the header: shorter than the declared payload. */
    for (size_t len = PW_PROTO_OVERHEAD; len < (size_t)n; len++)
        assert_int_equal(pw_proto_decode(buf, len, pw_test_key, &out), PW_PROTO_E_SHORT);
    assert_int_equal(pw_proto_decode(buf, (size_t)n + 1, pw_test_key, &out), PW_PROTO_E_LONG);
    assert_int_equal(pw_proto_decode(buf, PW_PROTO_MAX_DATAGRAM + 1, pw_test_key, &out),
                     PW_PROTO_E_LONG);

    uint8_t bad[PW_PROTO_MAX_DATAGRAM];
    memcpy(bad, buf, (size_t)n);
    bad[1] = 'X';
    assert_int_equal(pw_proto_decode(bad, (size_t)n, pw_test_key, &out), PW_PROTO_E_MAGIC);

    memcpy(bad, buf, (size_t)n);
    bad[2] = 2;
    resign(bad, (size_t)n);
    assert_int_equal(pw_proto_decode(bad, (size_t)n, pw_test_key, &out), PW_PROTO_E_VERSION);
    bad[2] = 0;
    resign(bad, (size_t)n);
    assert_int_equal(pw_proto_decode(bad, (size_t)n, pw_test_key, &out), PW_PROTO_E_VERSION);
}

static void test_reject_auth(void **state)
{
    (void)state;
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    uint8_t other_key[PW_PROTO_KEY_LEN];
    pw_proto_msg out;
    int n = encode(vector_msg(PW_MSG_ALLOCATION), buf);
    memcpy(other_key, pw_test_key, sizeof other_key);
    other_key[31] ^= 1;
    assert_int_equal(pw_proto_decode(buf, (size_t)n, other_key, &out), PW_PROTO_E_AUTH);
    memset(buf + n - PW_PROTO_TAG_LEN, 0, PW_PROTO_TAG_LEN);
    assert_int_equal(pw_proto_decode(buf, (size_t)n, pw_test_key, &out), PW_PROTO_E_AUTH);
}

/* The expected result of decoding buf after one bit at offset off was flipped: the framing
 * checks that come before the tag catch magic, version and payload length; everything else,
 * the tag itself included, must fail authentication. */
static int flip_expected(const uint8_t *buf, size_t off, size_t len)
{
    if (off < 2)
        return PW_PROTO_E_MAGIC;
    if (off == 2)
        return PW_PROTO_E_VERSION;
    if (off == 6 || off == 7) {
        size_t plen = (size_t)buf[6] << 8 | buf[7];
        return PW_PROTO_OVERHEAD + plen > len ? PW_PROTO_E_SHORT : PW_PROTO_E_LONG;
    }
    return PW_PROTO_E_AUTH;
}

static void test_every_bit_flip_rejected(void **state)
{
    (void)state;
    for (size_t v = 0; v < pw_test_vector_count; v++) {
        uint8_t buf[PW_PROTO_MAX_DATAGRAM];
        int n = encode(&pw_test_vectors[v].msg, buf);
        for (size_t off = 0; off < (size_t)n; off++) {
            for (int bit = 0; bit < 8; bit++) {
                pw_proto_msg out;
                buf[off] ^= (uint8_t)(1u << bit);
                int err = pw_proto_decode(buf, (size_t)n, pw_test_key, &out);
                int want = flip_expected(buf, off, (size_t)n);
                if (err != want)
                    fail_msg("%s: bit %d of byte %zu: got %s, want %s", pw_test_vectors[v].name,
                             bit, off, pw_proto_err_name(err), pw_proto_err_name(want));
                buf[off] ^= (uint8_t)(1u << bit);
            }
        }
        pw_proto_msg out;
        assert_int_equal(pw_proto_decode(buf, (size_t)n, pw_test_key, &out), 0);
    }
}

/* --- rejections behind the tag: authentic but invalid --- */

struct patch {
    const char *what;
    int type;     /* vector to start from */
    size_t off;   /* offset in the datagram */
    uint8_t byte; /* new value of that byte (or of the 4 bytes below) */
    int use32;    /* write value32 big-endian at off instead */
    uint32_t value32;
    int want;
};

static const struct patch patches[] = {
    {"unknown type 0", PW_MSG_STATUS, 3, 0, 0, 0, PW_PROTO_E_TYPE},
    {"unknown type 6", PW_MSG_STATUS, 3, 6, 0, 0, PW_PROTO_E_TYPE},
    {"unknown type 255", PW_MSG_STATUS, 3, 255, 0, 0, PW_PROTO_E_TYPE},
    {"flags set", PW_MSG_STATUS, 4, 1, 0, 0, PW_PROTO_E_RANGE},
    {"reserved set", PW_MSG_STATUS, 5, 0x80, 0, 0, PW_PROTO_E_RANGE},
    {"status from the balancer's id", PW_MSG_STATUS, 8, 0, 1, PW_PROTO_BALANCER_ID,
     PW_PROTO_E_RANGE},
    {"allocation from a charger's id", PW_MSG_ALLOCATION, 8, 0, 1, 1001, PW_PROTO_E_RANGE},
    {"heartbeat from a charger's id", PW_MSG_HEARTBEAT, 8, 0, 1, 1001, PW_PROTO_E_RANGE},
    /* A type whose payload length differs from what the datagram carries. */
    {"status as meter", PW_MSG_STATUS, 3, PW_MSG_METER, 0, 0, PW_PROTO_E_LONG},
    {"meter as status", PW_MSG_METER, 3, PW_MSG_STATUS, 0, 0, PW_PROTO_E_SHORT},
    {"status as announce", PW_MSG_STATUS, 3, PW_MSG_ANNOUNCE, 0, 0, PW_PROTO_E_SHORT},
    {"allocation as heartbeat", PW_MSG_ALLOCATION, 3, PW_MSG_HEARTBEAT, 0, 0, PW_PROTO_E_LONG},
    /* 11 bytes read as an allocation: count 12 (chargers online) needs 118 bytes. */
    {"heartbeat as allocation", PW_MSG_HEARTBEAT, 3, PW_MSG_ALLOCATION, 0, 0, PW_PROTO_E_SHORT},
    /* A charger's datagram relabelled as a balancer's type. */
    {"status as heartbeat", PW_MSG_STATUS, 3, PW_MSG_HEARTBEAT, 0, 0, PW_PROTO_E_RANGE},
    /* status */
    {"iec state G", PW_MSG_STATUS, PAYLOAD + 0, 6, 0, 0, PW_PROTO_E_RANGE},
    {"iec state 255", PW_MSG_STATUS, PAYLOAD + 0, 255, 0, 0, PW_PROTO_E_RANGE},
    {"4 phases", PW_MSG_STATUS, PAYLOAD + 1, 4, 0, 0, PW_PROTO_E_RANGE},
    {"L1 1000.001 A", PW_MSG_STATUS, PAYLOAD + 2, 0, 1, 1000001, PW_PROTO_E_RANGE},
    {"L3 current 'negative'", PW_MSG_STATUS, PAYLOAD + 10, 0, 1, 0xffffff00u, PW_PROTO_E_RANGE},
    {"L2 1000.1 V", PW_MSG_STATUS, PAYLOAD + 16, 0x27, 0, 0, PW_PROTO_E_RANGE},
    {"limit 5.999 A", PW_MSG_STATUS, PAYLOAD + 28, 0, 1, 5999, PW_PROTO_E_RANGE},
    {"limit 1000.001 A", PW_MSG_STATUS, PAYLOAD + 28, 0, 1, 1000001, PW_PROTO_E_RANGE},
    /* meter */
    {"meter L2 1001 A", PW_MSG_METER, PAYLOAD + 4, 0, 1, 1001000, PW_PROTO_E_RANGE},
    {"meter power > 1 MW", PW_MSG_METER, PAYLOAD + 18, 0, 1, 1000001, PW_PROTO_E_RANGE},
    {"meter power < -1 MW", PW_MSG_METER, PAYLOAD + 26, 0, 1, (uint32_t)-1000001, PW_PROTO_E_RANGE},
    {"meter power INT32_MIN", PW_MSG_METER, PAYLOAD + 22, 0, 1, 0x80000000u, PW_PROTO_E_RANGE},
    /* announce */
    {"model unterminated", PW_MSG_ANNOUNCE, PAYLOAD + 23, 'x', 0, 0, PW_PROTO_E_RANGE},
    {"model control char", PW_MSG_ANNOUNCE, PAYLOAD + 0, '\n', 0, 0, PW_PROTO_E_RANGE},
    {"model non-ASCII", PW_MSG_ANNOUNCE, PAYLOAD + 1, 0xc3, 0, 0, PW_PROTO_E_RANGE},
    {"firmware garbage after NUL", PW_MSG_ANNOUNCE, PAYLOAD + 24 + 20, 'x', 0, 0, PW_PROTO_E_RANGE},
    {"wiring line 4", PW_MSG_ANNOUNCE, PAYLOAD + 48, 4, 0, 0, PW_PROTO_E_RANGE},
    {"wiring line twice", PW_MSG_ANNOUNCE, PAYLOAD + 49, 2, 0, 0, PW_PROTO_E_RANGE},
    {"max current 5 A", PW_MSG_ANNOUNCE, PAYLOAD + 51, 0, 1, 5000, PW_PROTO_E_RANGE},
    {"max current 1001 A", PW_MSG_ANNOUNCE, PAYLOAD + 51, 0, 1, 1001000, PW_PROTO_E_RANGE},
    {"link 3", PW_MSG_ANNOUNCE, PAYLOAD + 55, 3, 0, 0, PW_PROTO_E_RANGE},
    {"ethernet with rssi", PW_MSG_ANNOUNCE, PAYLOAD + 55, PW_LINK_ETHERNET, 0, 0, PW_PROTO_E_RANGE},
    {"positive rssi", PW_MSG_ANNOUNCE, PAYLOAD + 56, 5, 0, 0, PW_PROTO_E_RANGE},
    {"capability reserved bit", PW_MSG_ANNOUNCE, PAYLOAD + 57, 0x03, 0, 0, PW_PROTO_E_RANGE},
    /* allocation (vector: 3 entries) */
    {"lease 0", PW_MSG_ALLOCATION, PAYLOAD + 4, 0, 1, 0, PW_PROTO_E_RANGE},
    {"lease 10 min + 1 ms", PW_MSG_ALLOCATION, PAYLOAD + 4, 0, 1, 600001, PW_PROTO_E_RANGE},
    {"count 129", PW_MSG_ALLOCATION, PAYLOAD + 9, 129, 0, 0, PW_PROTO_E_RANGE},
    {"count 4 for 3 entries", PW_MSG_ALLOCATION, PAYLOAD + 9, 4, 0, 0, PW_PROTO_E_SHORT},
    {"count 2 for 3 entries", PW_MSG_ALLOCATION, PAYLOAD + 9, 2, 0, 0, PW_PROTO_E_LONG},
    {"entry charger 0", PW_MSG_ALLOCATION, PAYLOAD + 10 + 9, 0, 1, 0, PW_PROTO_E_RANGE},
    {"entry duplicate charger", PW_MSG_ALLOCATION, PAYLOAD + 10 + 18, 0, 1, 1001, PW_PROTO_E_RANGE},
    {"entry limit 3 A", PW_MSG_ALLOCATION, PAYLOAD + 10 + 4, 0, 1, 3000, PW_PROTO_E_RANGE},
    {"entry 2 phases", PW_MSG_ALLOCATION, PAYLOAD + 10 + 8, 2, 0, 0, PW_PROTO_E_RANGE},
    /* heartbeat */
    {"heartbeat state 2", PW_MSG_HEARTBEAT, PAYLOAD + 10, 2, 0, 0, PW_PROTO_E_RANGE},
};

static void test_reject_authentic_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < PW_ARRAY_LEN(patches); i++) {
        const struct patch *p = &patches[i];
        uint8_t buf[PW_PROTO_MAX_DATAGRAM];
        pw_proto_msg out;
        int n = encode(vector_msg(p->type), buf);
        if (p->use32)
            put32(buf + p->off, p->value32);
        else
            buf[p->off] = p->byte;
        resign(buf, (size_t)n);
        int err = pw_proto_decode(buf, (size_t)n, pw_test_key, &out);
        if (err != p->want)
            fail_msg("%s: got %s, want %s", p->what, pw_proto_err_name(err),
                     pw_proto_err_name(p->want));
    }
}

/* A declared payload length of zero with a valid tag still fails on the type's layout. */
static void test_reject_empty_payload(void **state)
{
    (void)state;
    for (int type = PW_MSG_ANNOUNCE; type <= PW_MSG_HEARTBEAT; type++) {
        uint8_t buf[PW_PROTO_MAX_DATAGRAM];
        pw_proto_msg out;
        encode(vector_msg(type), buf); /* only the header is kept */
        buf[6] = buf[7] = 0;
        resign(buf, PW_PROTO_OVERHEAD);
        assert_int_equal(pw_proto_decode(buf, PW_PROTO_OVERHEAD, pw_test_key, &out),
                         PW_PROTO_E_SHORT);
    }
}

/* --- encoder rejections --- */

static void expect_invalid(const pw_proto_msg *m)
{
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    assert_int_equal(pw_proto_encode(m, pw_test_key, buf, sizeof buf), PW_PROTO_E_INVALID);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    pw_proto_msg m = *vector_msg(PW_MSG_STATUS);
    m.hdr.type = 9;
    expect_invalid(&m);
    m = *vector_msg(PW_MSG_STATUS);
    m.hdr.flags = 1;
    expect_invalid(&m);
    m = *vector_msg(PW_MSG_STATUS);
    m.hdr.sender_id = PW_PROTO_BALANCER_ID;
    expect_invalid(&m);
    m = *vector_msg(PW_MSG_HEARTBEAT);
    m.hdr.sender_id = 1;
    expect_invalid(&m);
    m = *vector_msg(PW_MSG_STATUS);
    m.u.status.current_ma[1] = PW_PROTO_MAX_CURRENT_MA + 1;
    expect_invalid(&m);
    m = *vector_msg(PW_MSG_STATUS);
    m.u.status.iec_state = PW_IEC_F + 1;
    expect_invalid(&m);

    m = *vector_msg(PW_MSG_ANNOUNCE);
    memset(m.u.announce.model, 'a', sizeof m.u.announce.model); /* not terminated */
    expect_invalid(&m);
    m = *vector_msg(PW_MSG_ANNOUNCE);
    m.u.announce.wiring[0] = m.u.announce.wiring[1] = m.u.announce.wiring[2] = 0;
    expect_invalid(&m);

    m = *vector_msg(PW_MSG_ALLOCATION);
    m.u.allocation.entries[2].charger_id = m.u.allocation.entries[0].charger_id;
    expect_invalid(&m);

    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    m = *vector_msg(PW_MSG_ALLOCATION);
    m.u.allocation.count = PW_PROTO_ALLOC_PER_DATAGRAM + 1;
    assert_int_equal(pw_proto_encode(&m, pw_test_key, buf, sizeof buf), PW_PROTO_E_SPACE);

    m = *vector_msg(PW_MSG_STATUS);
    int n = encode(&m, buf);
    assert_int_equal(pw_proto_encode(&m, pw_test_key, buf, (size_t)n - 1), PW_PROTO_E_SPACE);
    assert_int_equal(pw_proto_encode(&m, pw_test_key, buf, (size_t)n), n);
}

/* The largest allocation fits the datagram limit exactly as documented. */
static void test_full_allocation_fits(void **state)
{
    (void)state;
    static pw_proto_msg m;
    m.hdr = (pw_proto_hdr){.type = PW_MSG_ALLOCATION, .sender_id = PW_PROTO_BALANCER_ID};
    m.u.allocation.lease_ms = PW_PROTO_LEASE_MS;
    m.u.allocation.count = PW_PROTO_ALLOC_PER_DATAGRAM;
    for (unsigned i = 0; i < PW_PROTO_ALLOC_PER_DATAGRAM; i++)
        m.u.allocation.entries[i] = (pw_alloc_entry){i + 1, 32000, 1};
    int n = round_trip(&m);
    assert_int_equal(n, PW_PROTO_OVERHEAD + 10 + 9 * PW_PROTO_ALLOC_PER_DATAGRAM);
    assert_true(n <= PW_PROTO_MAX_DATAGRAM);
}

/* --- replay --- */

static int replay(pw_proto_replay *st, uint32_t boot, uint32_t seq)
{
    pw_proto_hdr h = {.type = PW_MSG_STATUS, .sender_id = 1001, .boot_id = boot, .seq = seq};
    return pw_proto_replay_check(st, &h);
}

static void test_replay_duplicate_and_reorder(void **state)
{
    (void)state;
    pw_proto_replay st = {0};
    assert_int_equal(replay(&st, 5, 100), 0);
    assert_int_equal(replay(&st, 5, 100), PW_PROTO_E_REPLAY); /* duplicate */
    assert_int_equal(replay(&st, 5, 103), 0);                 /* 101, 102 late */
    assert_int_equal(replay(&st, 5, 102), 0);                 /* reordered: accepted once */
    assert_int_equal(replay(&st, 5, 101), 0);
    assert_int_equal(replay(&st, 5, 102), PW_PROTO_E_REPLAY);
    assert_int_equal(replay(&st, 5, 101), PW_PROTO_E_REPLAY);
    assert_int_equal(replay(&st, 5, 103), PW_PROTO_E_REPLAY);
    /* Older than the first datagram seen from this boot: treated as seen, because a receiver
     * that just started cannot tell which of them it missed and which an attacker recorded. */
    assert_int_equal(replay(&st, 5, 99), PW_PROTO_E_REPLAY);
    assert_int_equal(replay(&st, 5, 40), PW_PROTO_E_REPLAY);
    assert_int_equal(st.top_seq, 103);
}

static void test_replay_window_edges(void **state)
{
    (void)state;
    pw_proto_replay st = {0};
    assert_int_equal(replay(&st, 1, 1000), 0);
    assert_int_equal(replay(&st, 1, 1000 + 63), 0);
    assert_int_equal(replay(&st, 1, 1001), 0);                 /* 62 behind: in the window */
    assert_int_equal(replay(&st, 1, 1000), PW_PROTO_E_REPLAY); /* 63 behind, already seen */
    assert_int_equal(replay(&st, 1, 1064), 0);
    assert_int_equal(replay(&st, 1, 1000), PW_PROTO_E_REPLAY); /* 64 behind: too old */
    assert_int_equal(replay(&st, 1, 1002), 0);                 /* 62 behind, never seen */
    /* A jump of the window's size or more forgets everything before it. */
    assert_int_equal(replay(&st, 1, 1064 + 64), 0);
    assert_int_equal(replay(&st, 1, 1064 + 1), 0);
    assert_int_equal(replay(&st, 1, 1064), PW_PROTO_E_REPLAY);
    assert_int_equal(replay(&st, 1, UINT32_MAX), 0);
    assert_int_equal(replay(&st, 1, UINT32_MAX - 63), 0);
    assert_int_equal(replay(&st, 1, UINT32_MAX - 64), PW_PROTO_E_REPLAY);
}

static void test_replay_boot_id(void **state)
{
    (void)state;
    pw_proto_replay st = {0};
    assert_int_equal(replay(&st, 10, 500), 0);
    /* A restarted sender starts its sequence again under a higher boot id. */
    assert_int_equal(replay(&st, 11, 0), 0);
    assert_int_equal(replay(&st, 11, 1), 0);
    /* Anything from the previous boot is now a replay, however new its sequence looks. */
    pw_proto_replay before = st;
    assert_int_equal(replay(&st, 10, 501), PW_PROTO_E_REPLAY);
    assert_int_equal(replay(&st, 10, UINT32_MAX), PW_PROTO_E_REPLAY);
    assert_int_equal(replay(&st, 0, 2), PW_PROTO_E_REPLAY);
    assert_memory_equal(&st, &before, sizeof st); /* rejections leave the state alone */
    assert_int_equal(replay(&st, 11, 2), 0);
    assert_int_equal(replay(&st, UINT32_MAX, 0), 0);
    assert_int_equal(st.boot_id, UINT32_MAX);
}

/* Replay protection on real datagrams: a captured datagram replayed after newer ones, and a
 * stream delivered shuffled, as a receiver sees them. */
static void test_replay_datagrams(void **state)
{
    (void)state;
    enum { N = 40 };
    uint8_t dg[N][PW_PROTO_MAX_DATAGRAM];
    int len[N];
    pw_proto_msg m = *vector_msg(PW_MSG_STATUS);
    for (int i = 0; i < N; i++) {
        m.hdr.seq = (uint32_t)i;
        len[i] = encode(&m, dg[i]);
    }
    /* Deterministic shuffle; every datagram delivered twice. */
    int order[2 * N];
    for (int i = 0; i < N; i++)
        order[i] = order[N + i] = i;
    uint32_t rng = 12345;
    for (int i = 2 * N - 1; i > 0; i--) {
        rng = rng * 1103515245u + 12345u;
        int j = (int)((rng >> 8) % (uint32_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    pw_proto_replay st = {0};
    int accepted[N] = {0}, rejected = 0;
    for (int k = 0; k < 2 * N; k++) {
        pw_proto_msg out;
        int i = order[k];
        assert_int_equal(pw_proto_decode(dg[i], (size_t)len[i], pw_test_key, &out), 0);
        if (pw_proto_replay_check(&st, &out.hdr) == 0)
            accepted[i]++;
        else
            rejected++;
    }
    /* All N sequences lie within one window. Those older than the first datagram delivered
     * count as seen (a new window starts full); every other one is accepted exactly once, in
     * whatever order it arrives, and its second copy is refused. */
    int first = order[0];
    for (int i = 0; i < N; i++)
        assert_int_equal(accepted[i], i >= first ? 1 : 0);
    assert_int_equal(rejected, 2 * N - (N - first));
    assert_int_equal(st.top_seq, N - 1);
}

/* --- DEFA frames --- */

/* Builds a frame byte by byte from the observed layout, independently of pw_defa_encode. */
static void defa_build(uint8_t f[PW_DEFA_FRAME_LEN], const char *serial, uint32_t l1, uint32_t l2,
                       uint32_t l3, const char *fw, uint8_t filler)
{
    memset(f, filler, PW_DEFA_FRAME_LEN);
    memset(f, 0, 11);
    memcpy(f, serial, strlen(serial));
    f[20] = (uint8_t)l1;
    f[21] = (uint8_t)(l1 >> 8);
    f[23] = (uint8_t)l2;
    f[24] = (uint8_t)(l2 >> 8);
    f[25] = (uint8_t)(l2 >> 16);
    f[26] = (uint8_t)l3;
    f[27] = (uint8_t)(l3 >> 8);
    f[28] = (uint8_t)(l3 >> 16);
    memset(f + 33, 0, 5);
    memcpy(f + 33, fw, strlen(fw));
}

static void test_defa_decode(void **state)
{
    (void)state;
    uint8_t f[PW_DEFA_FRAME_LEN];
    pw_defa_frame d;
    /* Unknown bytes full of 0xee must not matter. */
    defa_build(f, "DB000123456", 15900, 0x012345, 16000, "1.2.3", 0xee);
    assert_int_equal(pw_defa_decode(f, sizeof f, &d), 0);
    assert_string_equal(d.serial, "DB000123456");
    assert_string_equal(d.firmware, "1.2.3");
    assert_int_equal(d.current_ma[0], 15900);
    assert_int_equal(d.current_ma[1], 0x012345);
    assert_int_equal(d.current_ma[2], 16000);

    defa_build(f, "S1", 65535, 0, 1000000, "", 0);
    assert_int_equal(pw_defa_decode(f, sizeof f, &d), 0);
    assert_string_equal(d.serial, "S1");
    assert_string_equal(d.firmware, "");
    assert_int_equal(d.current_ma[0], 65535);
    assert_int_equal(d.current_ma[2], 1000000);
}

static void test_defa_reject(void **state)
{
    (void)state;
    uint8_t f[PW_DEFA_FRAME_LEN + 1];
    pw_defa_frame d;
    defa_build(f, "DB000123456", 1000, 2000, 3000, "1.2.3", 0);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN - 1, &d), PW_PROTO_E_SHORT);
    assert_int_equal(pw_defa_decode(f, 0, &d), PW_PROTO_E_SHORT);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN + 1, &d), PW_PROTO_E_LONG);

    defa_build(f, "DB000123456", 1000, 1000001, 3000, "1.2.3", 0);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN, &d), PW_PROTO_E_RANGE);
    defa_build(f, "DB000123456", 1000, 2000, 0xffffff, "1.2.3", 0);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN, &d), PW_PROTO_E_RANGE);
    defa_build(f, "", 1000, 2000, 3000, "1.2.3", 0);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN, &d), PW_PROTO_E_RANGE);
    defa_build(f, "DB\x01", 1000, 2000, 3000, "1.2.3", 0);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN, &d), PW_PROTO_E_RANGE);
    defa_build(f, "DB1", 1000, 2000, 3000, "1.2\xff", 0);
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN, &d), PW_PROTO_E_RANGE);
    defa_build(f, "DB1", 1000, 2000, 3000, "1.2", 0);
    f[5] = 'x'; /* text after the serial's NUL padding */
    assert_int_equal(pw_defa_decode(f, PW_DEFA_FRAME_LEN, &d), PW_PROTO_E_RANGE);
}

static void test_defa_encode(void **state)
{
    (void)state;
    uint8_t want[PW_DEFA_FRAME_LEN], got[PW_DEFA_FRAME_LEN];
    pw_defa_frame d = {
        .serial = "PW00000001", .firmware = "0.1.0", .current_ma = {41200, 38000, 40100}};
    defa_build(want, d.serial, 41200, 38000, 40100, d.firmware, 0);
    assert_int_equal(pw_defa_encode(&d, got), PW_DEFA_FRAME_LEN);
    assert_memory_equal(got, want, sizeof want);
    pw_defa_frame back;
    assert_int_equal(pw_defa_decode(got, sizeof got, &back), 0);
    assert_string_equal(back.serial, d.serial);
    assert_string_equal(back.firmware, d.firmware);
    assert_memory_equal(back.current_ma, d.current_ma, sizeof d.current_ma);

    /* L1 has only 16 bits: a larger current is refused, never truncated or clamped. */
    d.current_ma[0] = 65536;
    assert_int_equal(pw_defa_encode(&d, got), PW_PROTO_E_INVALID);
    d.current_ma[0] = 0;
    d.current_ma[1] = PW_PROTO_MAX_CURRENT_MA + 1;
    assert_int_equal(pw_defa_encode(&d, got), PW_PROTO_E_INVALID);
    d.current_ma[1] = 0;
    memcpy(d.firmware, "123456", 6); /* 6 characters, not terminated within the field */
    assert_int_equal(pw_defa_encode(&d, got), PW_PROTO_E_INVALID);
    memcpy(d.firmware, "1.0", 4);
    d.serial[0] = '\0';
    assert_int_equal(pw_defa_encode(&d, got), PW_PROTO_E_INVALID);
}

/* --- error names --- */

static void test_error_names(void **state)
{
    (void)state;
    const char *names[PW_PROTO_E_COUNT + 1];
    for (int e = 0; e <= PW_PROTO_E_COUNT; e++) {
        names[e] = pw_proto_err_name(-e);
        assert_string_not_equal(names[e], "unknown");
        assert_string_not_equal(pw_proto_strerror(-e), "unknown protocol error");
        for (int j = 0; j < e; j++)
            assert_string_not_equal(names[e], names[j]);
    }
    assert_string_equal(pw_proto_err_name(PW_PROTO_E_AUTH), "auth");
    assert_string_equal(pw_proto_err_name(PW_PROTO_E_REPLAY), "replay");
    assert_string_equal(pw_proto_err_name(-PW_PROTO_E_COUNT - 1), "unknown");
    assert_string_equal(pw_proto_err_name(1), "unknown");
    assert_string_equal(pw_proto_err_name(INT_MIN), "unknown");
    assert_string_equal(pw_proto_strerror(INT_MAX), "unknown protocol error");
    assert_string_equal(pw_proto_type_name(PW_MSG_ALLOCATION), "allocation");
    assert_string_equal(pw_proto_type_name(0), "unknown");
    assert_string_equal(pw_proto_type_name(6), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_round_trip_extremes),
        cmocka_unit_test(test_allocation_split),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_vectors_in_document),
        cmocka_unit_test(test_reject_framing),
        cmocka_unit_test(test_reject_auth),
        cmocka_unit_test(test_every_bit_flip_rejected),
        cmocka_unit_test(test_reject_authentic_invalid),
        cmocka_unit_test(test_reject_empty_payload),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_full_allocation_fits),
        cmocka_unit_test(test_replay_duplicate_and_reorder),
        cmocka_unit_test(test_replay_window_edges),
        cmocka_unit_test(test_replay_boot_id),
        cmocka_unit_test(test_replay_datagrams),
        cmocka_unit_test(test_defa_decode),
        cmocka_unit_test(test_defa_reject),
        cmocka_unit_test(test_defa_encode),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
