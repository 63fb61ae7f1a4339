/* Internals shared by the protocol codec sources: byte-order helpers and the per-message payload
 * codec that envelope.c wraps in the authenticated envelope. Not installed, not public. */
#ifndef PW_PROTO_INT_H
#define PW_PROTO_INT_H

#include "pw_proto.h"

#include <stddef.h>
#include <stdint.h>

static inline uint16_t pw_proto__get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t pw_proto__get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t pw_proto__get64(const uint8_t *p)
{
    return (uint64_t)pw_proto__get32(p) << 32 | pw_proto__get32(p + 4);
}

static inline void pw_proto__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void pw_proto__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void pw_proto__put64(uint8_t *p, uint64_t v)
{
    pw_proto__put32(p, (uint32_t)(v >> 32));
    pw_proto__put32(p + 4, (uint32_t)v);
}

/* True for the printable ASCII range every text field of both formats is restricted to, so that
 * names from the network can be logged and shown in the web UI without escaping surprises. */
static inline int pw_proto__printable(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e;
}

/* Payload length msg encodes to (msg->hdr.type must be a known type), or PW_PROTO_E_SPACE when
 * an allocation has more entries than fit one datagram. */
int pw_proto__payload_len(const pw_proto_msg *msg);

/* 0 when every field of msg is in range, else PW_PROTO_E_RANGE. The decoder and the encoder
 * share it so that whatever is encoded decodes and vice versa. */
int pw_proto__payload_check(const pw_proto_msg *msg);

/* Writes msg's payload into p, which has room for pw_proto__payload_len(msg) bytes. */
void pw_proto__payload_write(const pw_proto_msg *msg, uint8_t *p);

/* Reads a payload of len bytes for msg->hdr.type into msg->u. Returns 0, PW_PROTO_E_SHORT or
 * PW_PROTO_E_LONG when len does not fit the type, or PW_PROTO_E_RANGE. */
int pw_proto__payload_read(const uint8_t *p, size_t len, pw_proto_msg *msg);

/* True when type is a message type this version knows. */
int pw_proto__type_known(int type);

#endif
