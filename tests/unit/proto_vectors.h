/* The protocol test vectors of PROTOCOL.md: one sample message per type, the fixed test key, and
 * the datagram each encodes to. Shared by the unit tests, the fuzz seed generator and the
 * program that prints the document's vector section. */
#ifndef PW_PROTO_VECTORS_H
#define PW_PROTO_VECTORS_H

#include "pw_proto.h"

#include <stddef.h>
#include <stdint.h>

struct pw_test_vector {
    const char *name;
    pw_proto_msg msg;
    const char *hex; /* the encoded datagram, lowercase hex without separators */
};

/* The documented test key: bytes 0x00, 0x01, ..., 0x1f. Never use it in a facility. */
extern const uint8_t pw_test_key[PW_PROTO_KEY_LEN];
extern const struct pw_test_vector pw_test_vectors[];
extern const size_t pw_test_vector_count;

/* The sample DEFA Balancer frame and its 54 bytes in hex. */
extern const pw_defa_frame pw_test_defa_frame;
extern const char pw_test_defa_hex[];

/* Parses lowercase or uppercase hex into out (at most out_size bytes). Returns the byte count,
 * or -1 for an odd length, a non-hex character or too little room. */
int pw_test_unhex(const char *hex, uint8_t *out, size_t out_size);

/* Writes 2 * len lowercase hex characters and a NUL into out (2 * len + 1 bytes). */
void pw_test_hex(const uint8_t *buf, size_t len, char *out);

#endif
