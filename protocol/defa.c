/* DEFA Balancer meter frames (PROTOCOL.md, "DEFA Balancer meter frames"): the 54-byte,
 * unauthenticated multicast frames whose layout was observed on the wire. Only the fields below
 * are known; every other byte is ignored on reading and zero on writing. */
#include "proto_int.h"

#include <string.h>

#define SERIAL_OFF   0
#define SERIAL_LEN   11
#define L1_OFF       20 /* uint16 little-endian mA */
#define L2_OFF       23 /* uint24 little-endian mA */
#define L3_OFF       26 /* uint24 little-endian mA */
#define FIRMWARE_OFF 33
#define FIRMWARE_LEN 5
#define L1_MAX_MA    0xffffu

_Static_assert(sizeof(((pw_defa_frame *)0)->serial) == SERIAL_LEN + 1, "serial size");
_Static_assert(sizeof(((pw_defa_frame *)0)->firmware) == FIRMWARE_LEN + 1, "firmware size");

/* Reads an ASCII field of n bytes: printable characters, then only NUL padding. Returns 0 and
 * the text NUL-terminated in out (n + 1 bytes), or PW_PROTO_E_RANGE. */
static int ascii_read(const uint8_t *p, size_t n, char *out)
{
    size_t len = 0;
    while (len < n && p[len] != 0) {
        if (!pw_proto__printable(p[len]))
            return PW_PROTO_E_RANGE;
        len++;
    }
    for (size_t i = len; i < n; i++) {
        if (p[i] != 0)
            return PW_PROTO_E_RANGE;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

/* Printable text of at most n characters, NUL-terminated within n + 1 bytes. */
static int ascii_ok(const char *s, size_t n)
{
    size_t len = strnlen(s, n + 1);
    if (len > n)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!pw_proto__printable((uint8_t)s[i]))
            return 0;
    }
    return 1;
}

static uint32_t get24le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static void put24le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
}

int pw_defa_decode(const uint8_t *buf, size_t len, pw_defa_frame *out)
{
    if (len != PW_DEFA_FRAME_LEN)
        return len < PW_DEFA_FRAME_LEN ? PW_PROTO_E_SHORT : PW_PROTO_E_LONG;
    if (ascii_read(buf + SERIAL_OFF, SERIAL_LEN, out->serial) ||
        ascii_read(buf + FIRMWARE_OFF, FIRMWARE_LEN, out->firmware) || out->serial[0] == '\0')
        return PW_PROTO_E_RANGE;
    out->current_ma[0] = (uint32_t)buf[L1_OFF] | (uint32_t)buf[L1_OFF + 1] << 8;
    out->current_ma[1] = get24le(buf + L2_OFF);
    out->current_ma[2] = get24le(buf + L3_OFF);
    for (int i = 1; i < 3; i++) {
        if (out->current_ma[i] > PW_PROTO_MAX_CURRENT_MA)
            return PW_PROTO_E_RANGE;
    }
    return 0;
}

int pw_defa_encode(const pw_defa_frame *frame, uint8_t out[PW_DEFA_FRAME_LEN])
{
    if (!ascii_ok(frame->serial, SERIAL_LEN) || frame->serial[0] == '\0' ||
        !ascii_ok(frame->firmware, FIRMWARE_LEN) || frame->current_ma[0] > L1_MAX_MA ||
        frame->current_ma[1] > PW_PROTO_MAX_CURRENT_MA ||
        frame->current_ma[2] > PW_PROTO_MAX_CURRENT_MA)
        return PW_PROTO_E_INVALID;
    memset(out, 0, PW_DEFA_FRAME_LEN);
    memcpy(out + SERIAL_OFF, frame->serial, strlen(frame->serial));
    memcpy(out + FIRMWARE_OFF, frame->firmware, strlen(frame->firmware));
    out[L1_OFF] = (uint8_t)frame->current_ma[0];
    out[L1_OFF + 1] = (uint8_t)(frame->current_ma[0] >> 8);
    put24le(out + L2_OFF, frame->current_ma[1]);
    put24le(out + L3_OFF, frame->current_ma[2]);
    return PW_DEFA_FRAME_LEN;
}
