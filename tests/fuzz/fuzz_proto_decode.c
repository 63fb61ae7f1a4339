/* libFuzzer target: pw_proto_decode on arbitrary bytes under a fixed key. Nearly every input
 * stops at the framing checks or the tag; that is the path an attacker without the key reaches.
 * Whatever decodes must re-encode to the very same bytes. */
#include "proto_vectors.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_proto_msg msg;
    if (pw_proto_decode(data, size, pw_test_key, &msg) != 0)
        return 0;
    uint8_t out[PW_PROTO_MAX_DATAGRAM];
    int n = pw_proto_encode(&msg, pw_test_key, out, sizeof out);
    if (n != (int)size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
