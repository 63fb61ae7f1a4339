/* Prints the test vectors of PROTOCOL.md from the real encoder, or writes them as a fuzz seed
 * corpus: proto_vectors_print [--corpus DIR]. Used to regenerate the document's vector section
 * and by tests/fuzz to seed the fuzzers. */
#include "proto_vectors.h"

#include <stdio.h>
#include <string.h>

static int print_vectors(void)
{
    for (size_t i = 0; i < pw_test_vector_count; i++) {
        uint8_t buf[PW_PROTO_MAX_DATAGRAM];
        char hex[2 * PW_PROTO_MAX_DATAGRAM + 1];
        int n = pw_proto_encode(&pw_test_vectors[i].msg, pw_test_key, buf, sizeof buf);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", pw_test_vectors[i].name, pw_proto_strerror(n));
            return 1;
        }
        pw_test_hex(buf, (size_t)n, hex);
        printf("%s %d %s\n", pw_test_vectors[i].name, n, hex);
    }
    uint8_t frame[PW_DEFA_FRAME_LEN];
    char hex[2 * PW_DEFA_FRAME_LEN + 1];
    if (pw_defa_encode(&pw_test_defa_frame, frame) != PW_DEFA_FRAME_LEN)
        return 1;
    pw_test_hex(frame, sizeof frame, hex);
    printf("defa %d %s\n", PW_DEFA_FRAME_LEN, hex);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return print_vectors();
}
