/* Payload layouts of the five v1 messages (PROTOCOL.md, "Messages"): one reader, one writer and
 * one range check per type. All multi-byte integers are big-endian; offsets are from the start of
 * the payload. */
#include "proto_int.h"

#include <string.h>

#define ANNOUNCE_LEN       58
#define STATUS_LEN         40
#define METER_LEN          38
#define ALLOC_FIXED_LEN    10
#define ALLOC_ENTRY_LEN    9
#define HEARTBEAT_LEN      11
#define ANNOUNCE_CAP_PHASE 0x01u /* capability bit: can switch between 1 and 3 phases */

/* --- range checks shared by encoder and decoder --- */

static int current_ok(uint32_t ma)
{
    return ma <= PW_PROTO_MAX_CURRENT_MA;
}

/* An offered limit: paused, or what IEC 61851 signalling can offer. */
static int limit_ok(uint32_t ma)
{
    return ma == 0 || (ma >= PW_PROTO_MIN_LIMIT_MA && ma <= PW_PROTO_MAX_CURRENT_MA);
}

static int lines_ok(const uint32_t current_ma[3], const uint16_t voltage_dv[3])
{
    for (int i = 0; i < 3; i++) {
        if (!current_ok(current_ma[i]) || voltage_dv[i] > PW_PROTO_MAX_VOLTAGE_DV)
            return 0;
    }
    return 1;
}

/* A NUL-terminated text of at most PW_PROTO_TEXT_LEN - 1 printable characters. */
static int text_ok(const char *s)
{
    size_t n = strnlen(s, PW_PROTO_TEXT_LEN);
    if (n == PW_PROTO_TEXT_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!pw_proto__printable((uint8_t)s[i]))
            return 0;
    }
    return 1;
}

/* Every terminal maps to a grid line 1..3 or is unwired, no line twice, at least one wired. */
static int wiring_ok(const uint8_t w[3])
{
    unsigned seen = 0;
    for (int i = 0; i < 3; i++) {
        if (w[i] > 3)
            return 0;
        if (w[i] == 0)
            continue;
        if (seen & (1u << w[i]))
            return 0;
        seen |= 1u << w[i];
    }
    return seen != 0;
}

static int announce_ok(const pw_msg_announce *a)
{
    if (!text_ok(a->model) || !text_ok(a->firmware) || !wiring_ok(a->wiring))
        return 0;
    if (a->max_current_ma < PW_PROTO_MIN_LIMIT_MA || !current_ok(a->max_current_ma))
        return 0;
    if (a->link > PW_LINK_CELLULAR || a->rssi_dbm > 0)
        return 0;
    return a->link == PW_LINK_WIFI || a->rssi_dbm == 0;
}

static int status_ok(const pw_msg_status *s)
{
    return s->iec_state <= PW_IEC_F && lines_ok(s->current_ma, s->voltage_dv) &&
           limit_ok(s->applied_limit_ma) && s->applied_phases <= 3;
}

static int meter_ok(const pw_msg_meter *m)
{
    if (!lines_ok(m->current_ma, m->voltage_dv))
        return 0;
    for (int i = 0; i < 3; i++) {
        if (m->power_w[i] > PW_PROTO_MAX_POWER_W || m->power_w[i] < -PW_PROTO_MAX_POWER_W)
            return 0;
    }
    return 1;
}

static int entry_ok(const pw_alloc_entry *e)
{
    return e->charger_id != 0 && limit_ok(e->limit_ma) &&
           (e->phases == 0 || e->phases == 1 || e->phases == 3);
}

/* A charger must find at most one limit for itself in a datagram. The quadratic scan costs at
 * most 8128 comparisons for a full datagram, less than its HMAC. */
static int entries_distinct(const pw_alloc_entry *e, unsigned count)
{
    for (unsigned i = 1; i < count; i++) {
        for (unsigned j = 0; j < i; j++) {
            if (e[i].charger_id == e[j].charger_id)
                return 0;
        }
    }
    return 1;
}

static int allocation_ok(const pw_msg_allocation *a)
{
    if (a->lease_ms == 0 || a->lease_ms > PW_PROTO_MAX_LEASE_MS ||
        a->count > PW_PROTO_ALLOC_PER_DATAGRAM)
        return 0;
    for (unsigned i = 0; i < a->count; i++) {
        if (!entry_ok(&a->entries[i]))
            return 0;
    }
    return entries_distinct(a->entries, a->count);
}

static int heartbeat_ok(const pw_msg_heartbeat *h)
{
    return h->state <= PW_HB_DEGRADED;
}

/* --- wire helpers --- */

static void text_write(uint8_t *p, const char *s)
{
    size_t n = strnlen(s, PW_PROTO_TEXT_LEN - 1);
    memcpy(p, s, n);
    memset(p + n, 0, PW_PROTO_TEXT_LEN - n);
}

/* Copies a NUL-padded text field. Returns 0 when the field is terminated and everything after
 * the first NUL is NUL too (one encoding per value), else PW_PROTO_E_RANGE. */
static int text_read(const uint8_t *p, char *s)
{
    const uint8_t *nul = memchr(p, 0, PW_PROTO_TEXT_LEN);
    if (!nul)
        return PW_PROTO_E_RANGE;
    for (const uint8_t *q = nul; q < p + PW_PROTO_TEXT_LEN; q++) {
        if (*q)
            return PW_PROTO_E_RANGE;
    }
    memcpy(s, p, PW_PROTO_TEXT_LEN);
    return 0;
}

static void lines_write(uint8_t *p, const uint32_t current_ma[3], const uint16_t voltage_dv[3])
{
    for (int i = 0; i < 3; i++)
        pw_proto__put32(p + 4 * i, current_ma[i]);
    for (int i = 0; i < 3; i++)
        pw_proto__put16(p + 12 + 2 * i, voltage_dv[i]);
}

static void lines_read(const uint8_t *p, uint32_t current_ma[3], uint16_t voltage_dv[3])
{
    for (int i = 0; i < 3; i++)
        current_ma[i] = pw_proto__get32(p + 4 * i);
    for (int i = 0; i < 3; i++)
        voltage_dv[i] = pw_proto__get16(p + 12 + 2 * i);
}

/* --- per-message layouts --- */

static void announce_write(const pw_msg_announce *a, uint8_t *p)
{
    text_write(p, a->model);
    text_write(p + 24, a->firmware);
    memcpy(p + 48, a->wiring, 3);
    pw_proto__put32(p + 51, a->max_current_ma);
    p[55] = a->link;
    p[56] = (uint8_t)a->rssi_dbm;
    p[57] = a->can_switch_phases ? ANNOUNCE_CAP_PHASE : 0;
}

static int announce_read(const uint8_t *p, pw_msg_announce *a)
{
    if (text_read(p, a->model) || text_read(p + 24, a->firmware) || (p[57] & ~ANNOUNCE_CAP_PHASE))
        return PW_PROTO_E_RANGE;
    memcpy(a->wiring, p + 48, 3);
    a->max_current_ma = pw_proto__get32(p + 51);
    a->link = p[55];
    a->rssi_dbm = (int8_t)p[56];
    a->can_switch_phases = p[57] & ANNOUNCE_CAP_PHASE;
    return 0;
}

static void status_write(const pw_msg_status *s, uint8_t *p)
{
    p[0] = s->iec_state;
    p[1] = s->applied_phases;
    lines_write(p + 2, s->current_ma, s->voltage_dv);
    pw_proto__put64(p + 20, s->energy_wh);
    pw_proto__put32(p + 28, s->applied_limit_ma);
    pw_proto__put32(p + 32, s->alloc_seq);
    pw_proto__put32(p + 36, s->session_id);
}

static void status_read(const uint8_t *p, pw_msg_status *s)
{
    s->iec_state = p[0];
    s->applied_phases = p[1];
    lines_read(p + 2, s->current_ma, s->voltage_dv);
    s->energy_wh = pw_proto__get64(p + 20);
    s->applied_limit_ma = pw_proto__get32(p + 28);
    s->alloc_seq = pw_proto__get32(p + 32);
    s->session_id = pw_proto__get32(p + 36);
}

/* Two's complement wire value to int32_t without relying on implementation-defined
 * conversion of out-of-range unsigned values. */
static int32_t from_twos(uint32_t v)
{
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)~v - 1;
}

static void meter_write(const pw_msg_meter *m, uint8_t *p)
{
    lines_write(p, m->current_ma, m->voltage_dv);
    for (int i = 0; i < 3; i++)
        pw_proto__put32(p + 18 + 4 * i, (uint32_t)m->power_w[i]);
    pw_proto__put64(p + 30, m->energy_wh);
}

static void meter_read(const uint8_t *p, pw_msg_meter *m)
{
    lines_read(p, m->current_ma, m->voltage_dv);
    for (int i = 0; i < 3; i++)
        m->power_w[i] = from_twos(pw_proto__get32(p + 18 + 4 * i));
    m->energy_wh = pw_proto__get64(p + 30);
}

static void allocation_write(const pw_msg_allocation *a, uint8_t *p)
{
    pw_proto__put32(p, a->alloc_seq);
    pw_proto__put32(p + 4, a->lease_ms);
    pw_proto__put16(p + 8, a->count);
    p += ALLOC_FIXED_LEN;
    for (unsigned i = 0; i < a->count; i++, p += ALLOC_ENTRY_LEN) {
        pw_proto__put32(p, a->entries[i].charger_id);
        pw_proto__put32(p + 4, a->entries[i].limit_ma);
        p[8] = a->entries[i].phases;
    }
}

static int allocation_read(const uint8_t *p, size_t len, pw_msg_allocation *a)
{
    if (len < ALLOC_FIXED_LEN)
        return PW_PROTO_E_SHORT;
    a->alloc_seq = pw_proto__get32(p);
    a->lease_ms = pw_proto__get32(p + 4);
    a->count = pw_proto__get16(p + 8);
    if (a->count > PW_PROTO_ALLOC_PER_DATAGRAM)
        return PW_PROTO_E_RANGE;
    size_t want = ALLOC_FIXED_LEN + (size_t)a->count * ALLOC_ENTRY_LEN;
    if (len != want)
        return len < want ? PW_PROTO_E_SHORT : PW_PROTO_E_LONG;
    p += ALLOC_FIXED_LEN;
    for (unsigned i = 0; i < a->count; i++, p += ALLOC_ENTRY_LEN) {
        a->entries[i].charger_id = pw_proto__get32(p);
        a->entries[i].limit_ma = pw_proto__get32(p + 4);
        a->entries[i].phases = p[8];
    }
    return 0;
}

static void heartbeat_write(const pw_msg_heartbeat *h, uint8_t *p)
{
    pw_proto__put32(p, h->uptime_s);
    pw_proto__put32(p + 4, h->config_generation);
    pw_proto__put16(p + 8, h->chargers_online);
    p[10] = h->state;
}

static void heartbeat_read(const uint8_t *p, pw_msg_heartbeat *h)
{
    h->uptime_s = pw_proto__get32(p);
    h->config_generation = pw_proto__get32(p + 4);
    h->chargers_online = pw_proto__get16(p + 8);
    h->state = p[10];
}

/* --- dispatch --- */

int pw_proto__type_known(int type)
{
    return type >= PW_MSG_ANNOUNCE && type <= PW_MSG_HEARTBEAT;
}

/* Payload length of the fixed-size types; 0 for allocation, whose length follows its count. */
static size_t fixed_len(int type)
{
    switch (type) {
    case PW_MSG_ANNOUNCE:
        return ANNOUNCE_LEN;
    case PW_MSG_STATUS:
        return STATUS_LEN;
    case PW_MSG_METER:
        return METER_LEN;
    case PW_MSG_HEARTBEAT:
        return HEARTBEAT_LEN;
    default:
        return 0;
    }
}

int pw_proto__payload_len(const pw_proto_msg *msg)
{
    if (msg->hdr.type != PW_MSG_ALLOCATION)
        return (int)fixed_len(msg->hdr.type);
    if (msg->u.allocation.count > PW_PROTO_ALLOC_PER_DATAGRAM)
        return PW_PROTO_E_SPACE;
    return ALLOC_FIXED_LEN + msg->u.allocation.count * ALLOC_ENTRY_LEN;
}

int pw_proto__payload_check(const pw_proto_msg *msg)
{
    int ok = 0;
    switch (msg->hdr.type) {
    case PW_MSG_ANNOUNCE:
        ok = announce_ok(&msg->u.announce);
        break;
    case PW_MSG_STATUS:
        ok = status_ok(&msg->u.status);
        break;
    case PW_MSG_METER:
        ok = meter_ok(&msg->u.meter);
        break;
    case PW_MSG_ALLOCATION:
        ok = allocation_ok(&msg->u.allocation);
        break;
    case PW_MSG_HEARTBEAT:
        ok = heartbeat_ok(&msg->u.heartbeat);
        break;
    }
    return ok ? 0 : PW_PROTO_E_RANGE;
}

void pw_proto__payload_write(const pw_proto_msg *msg, uint8_t *p)
{
    switch (msg->hdr.type) {
    case PW_MSG_ANNOUNCE:
        announce_write(&msg->u.announce, p);
        break;
    case PW_MSG_STATUS:
        status_write(&msg->u.status, p);
        break;
    case PW_MSG_METER:
        meter_write(&msg->u.meter, p);
        break;
    case PW_MSG_ALLOCATION:
        allocation_write(&msg->u.allocation, p);
        break;
    case PW_MSG_HEARTBEAT:
        heartbeat_write(&msg->u.heartbeat, p);
        break;
    }
}

int pw_proto__payload_read(const uint8_t *p, size_t len, pw_proto_msg *msg)
{
    int type = msg->hdr.type;
    int err = 0;
    if (type != PW_MSG_ALLOCATION && len != fixed_len(type))
        return len < fixed_len(type) ? PW_PROTO_E_SHORT : PW_PROTO_E_LONG;
    switch (type) {
    case PW_MSG_ANNOUNCE:
        err = announce_read(p, &msg->u.announce);
        break;
    case PW_MSG_STATUS:
        status_read(p, &msg->u.status);
        break;
    case PW_MSG_METER:
        meter_read(p, &msg->u.meter);
        break;
    case PW_MSG_ALLOCATION:
        err = allocation_read(p, len, &msg->u.allocation);
        break;
    case PW_MSG_HEARTBEAT:
        heartbeat_read(p, &msg->u.heartbeat);
        break;
    }
    return err ? err : pw_proto__payload_check(msg);
}
