/* The authenticated envelope of every v1 datagram (PROTOCOL.md, "Envelope"): framing checks,
 * the truncated HMAC-SHA256 tag, and the error names. Payloads are left to payload.c. */
#include "proto_int.h"
#include "pw_util.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>

#include <string.h>

#define OFF_MAGIC   0
#define OFF_VERSION 2
#define OFF_TYPE    3
#define OFF_FLAGS   4
#define OFF_RSVD    5
#define OFF_PLEN    6
#define OFF_SENDER  8
#define OFF_BOOT    12
#define OFF_SEQ     16

static const uint8_t magic[2] = {'P', 'W'};

struct err_text {
    const char *name;
    const char *text;
};

/* Indexed by -err. */
static const struct err_text err_texts[] = {
    {"ok", "success"},
    {"short", "datagram shorter than its header, tag or declared payload"},
    {"long", "datagram longer than 1200 bytes or than its declared payload"},
    {"magic", "not a phasewise datagram (bad magic)"},
    {"version", "unknown protocol version"},
    {"type", "unknown message type"},
    {"auth", "authentication tag does not match (wrong key or altered datagram)"},
    {"replay", "replayed or too old: boot id lower or sequence already seen"},
    {"range", "a field is out of range (current, voltage, state, text, reserved bits)"},
    {"space", "output buffer too small or too many allocation entries"},
    {"invalid", "message cannot be encoded: a field is out of range"},
};

static const struct err_text *err_lookup(int err)
{
    /* Compared on the negative side: -INT_MIN would overflow. */
    if (err > 0 || err <= -(int)PW_ARRAY_LEN(err_texts))
        return NULL;
    return &err_texts[-err];
}

const char *pw_proto_strerror(int err)
{
    const struct err_text *e = err_lookup(err);
    return e ? e->text : "unknown protocol error";
}

const char *pw_proto_err_name(int err)
{
    const struct err_text *e = err_lookup(err);
    return e ? e->name : "unknown";
}

const char *pw_proto_type_name(int type)
{
    static const char *const names[] = {NULL,    "announce",   "status",
                                        "meter", "allocation", "heartbeat"};
    return pw_proto__type_known(type) ? names[type] : "unknown";
}

/* The first PW_PROTO_TAG_LEN bytes of HMAC-SHA256(key, buf[0..len)). */
static void tag_compute(const uint8_t key[PW_PROTO_KEY_LEN], const uint8_t *buf, size_t len,
                        uint8_t tag[PW_PROTO_TAG_LEN])
{
    uint8_t full[32];
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    /* Only fails on allocation failure inside mbedTLS; a zero tag then fails verification,
     * which is the safe outcome. */
    if (mbedtls_md_hmac(sha256, key, PW_PROTO_KEY_LEN, buf, len, full) != 0)
        memset(full, 0, sizeof full);
    memcpy(tag, full, PW_PROTO_TAG_LEN);
}

/* Allocations and heartbeats come from the balancer's id, everything else from another one, so
 * that a charger can never be mistaken for the balancer by its id. */
static int sender_ok(const pw_proto_hdr *h)
{
    bool from_balancer = h->type == PW_MSG_ALLOCATION || h->type == PW_MSG_HEARTBEAT;
    return from_balancer == (h->sender_id == PW_PROTO_BALANCER_ID);
}

int pw_proto_encode(const pw_proto_msg *msg, const uint8_t key[PW_PROTO_KEY_LEN], uint8_t *out,
                    size_t out_size)
{
    const pw_proto_hdr *h = &msg->hdr;
    if (!pw_proto__type_known(h->type) || h->flags != 0 || !sender_ok(h))
        return PW_PROTO_E_INVALID;
    int plen = pw_proto__payload_len(msg);
    if (plen < 0)
        return plen;
    if (pw_proto__payload_check(msg) != 0)
        return PW_PROTO_E_INVALID;
    size_t total = PW_PROTO_OVERHEAD + (size_t)plen;
    if (total > out_size)
        return PW_PROTO_E_SPACE;

    memcpy(out + OFF_MAGIC, magic, sizeof magic);
    out[OFF_VERSION] = PW_PROTO_VERSION;
    out[OFF_TYPE] = h->type;
    out[OFF_FLAGS] = 0;
    out[OFF_RSVD] = 0;
    pw_proto__put16(out + OFF_PLEN, (uint16_t)plen);
    pw_proto__put32(out + OFF_SENDER, h->sender_id);
    pw_proto__put32(out + OFF_BOOT, h->boot_id);
    pw_proto__put32(out + OFF_SEQ, h->seq);
    pw_proto__payload_write(msg, out + PW_PROTO_HDR_LEN);
    tag_compute(key, out, PW_PROTO_HDR_LEN + (size_t)plen, out + PW_PROTO_HDR_LEN + plen);
    return (int)total;
}

/* Checks everything that can be checked without the key. On 0, *plen is the payload length. */
static int frame_check(const uint8_t *buf, size_t len, size_t *plen)
{
    if (len < PW_PROTO_OVERHEAD)
        return PW_PROTO_E_SHORT;
    if (len > PW_PROTO_MAX_DATAGRAM)
        return PW_PROTO_E_LONG;
    if (memcmp(buf + OFF_MAGIC, magic, sizeof magic) != 0)
        return PW_PROTO_E_MAGIC;
    if (buf[OFF_VERSION] != PW_PROTO_VERSION)
        return PW_PROTO_E_VERSION;
    *plen = pw_proto__get16(buf + OFF_PLEN);
    size_t want = PW_PROTO_OVERHEAD + *plen;
    if (len != want)
        return len < want ? PW_PROTO_E_SHORT : PW_PROTO_E_LONG;
    return 0;
}

int pw_proto_decode(const uint8_t *buf, size_t len, const uint8_t key[PW_PROTO_KEY_LEN],
                    pw_proto_msg *msg)
{
    size_t plen;
    int err = frame_check(buf, len, &plen);
    if (err)
        return err;
    uint8_t tag[PW_PROTO_TAG_LEN];
    tag_compute(key, buf, PW_PROTO_HDR_LEN + plen, tag);
    if (mbedtls_ct_memcmp(tag, buf + PW_PROTO_HDR_LEN + plen, PW_PROTO_TAG_LEN) != 0)
        return PW_PROTO_E_AUTH;

    pw_proto_hdr *h = &msg->hdr;
    h->type = buf[OFF_TYPE];
    h->flags = buf[OFF_FLAGS];
    h->sender_id = pw_proto__get32(buf + OFF_SENDER);
    h->boot_id = pw_proto__get32(buf + OFF_BOOT);
    h->seq = pw_proto__get32(buf + OFF_SEQ);
    if (!pw_proto__type_known(h->type))
        return PW_PROTO_E_TYPE;
    if (h->flags != 0 || buf[OFF_RSVD] != 0 || !sender_ok(h))
        return PW_PROTO_E_RANGE;
    return pw_proto__payload_read(buf + PW_PROTO_HDR_LEN, plen, msg);
}
