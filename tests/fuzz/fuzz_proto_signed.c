/* libFuzzer target: the payload decoders behind the tag. The input is a datagram whose framing
 * (magic, version, payload length) and tag this target fixes before decoding, so the fuzzer
 * explores the type, range and layout checks that only authentic datagrams reach. Checks that
 * whatever decodes re-encodes to the same bytes and passes the replay check exactly once. */
#include "proto_vectors.h"

#include <mbedtls/md.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PW_PROTO_OVERHEAD || size > PW_PROTO_MAX_DATAGRAM)
        return 0;
    uint8_t buf[PW_PROTO_MAX_DATAGRAM], full[32];
    size_t plen = size - PW_PROTO_OVERHEAD;
    memcpy(buf, data, size);
    buf[0] = 'P';
    buf[1] = 'W';
    buf[2] = PW_PROTO_VERSION;
    buf[6] = (uint8_t)(plen >> 8);
    buf[7] = (uint8_t)plen;
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (mbedtls_md_hmac(md, pw_test_key, PW_PROTO_KEY_LEN, buf, size - PW_PROTO_TAG_LEN, full))
        abort();
    memcpy(buf + size - PW_PROTO_TAG_LEN, full, PW_PROTO_TAG_LEN);

    pw_proto_msg msg;
    int err = pw_proto_decode(buf, size, pw_test_key, &msg);
    if (err == PW_PROTO_E_AUTH || err == PW_PROTO_E_MAGIC || err == PW_PROTO_E_VERSION)
        abort(); /* the tag and framing were made right above */
    if (err != 0)
        return 0;
    uint8_t out[PW_PROTO_MAX_DATAGRAM];
    int n = pw_proto_encode(&msg, pw_test_key, out, sizeof out);
    if (n != (int)size || memcmp(out, buf, size) != 0)
        abort();
    pw_proto_replay st = {0};
    if (pw_proto_replay_check(&st, &msg.hdr) != 0 ||
        pw_proto_replay_check(&st, &msg.hdr) != PW_PROTO_E_REPLAY)
        abort();
    return 0;
}
