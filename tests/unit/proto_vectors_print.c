/* Prints the test vectors of PROTOCOL.md from the real encoder, or writes them as fuzz seeds:
 *   proto_vectors_print             one line per vector: name, length, hex
 *   proto_vectors_print --markdown  the hex blocks of PROTOCOL.md's "Test vectors"
 *   proto_vectors_print --corpus DIR  one file per vector (and the DEFA frame) in DIR
 * Used to regenerate the document's vectors and by tests/fuzz to seed the fuzzers. */
#include "proto_vectors.h"

#include <stdio.h>
#include <string.h>

enum mode { MODE_LINES, MODE_MARKDOWN, MODE_CORPUS };

/* Sixteen bytes per line, separated by spaces, as the document shows them. */
static void print_block(const char *name, const uint8_t *buf, size_t len)
{
    printf("%s (%zu bytes):\n\n```\n", name, len);
    for (size_t i = 0; i < len; i++)
        printf("%02x%s", buf[i], (i % 16 == 15 || i + 1 == len) ? "\n" : " ");
    printf("```\n\n");
}

static int write_seed(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        perror(path);
        if (f)
            fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

static int emit(enum mode mode, const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char hex[2 * PW_PROTO_MAX_DATAGRAM + 1];
    switch (mode) {
    case MODE_LINES:
        pw_test_hex(buf, len, hex);
        printf("%s %zu %s\n", name, len, hex);
        return 0;
    case MODE_MARKDOWN:
        print_block(name, buf, len);
        return 0;
    case MODE_CORPUS:
        return write_seed(dir, name, buf, len);
    }
    return 1;
}

int main(int argc, char **argv)
{
    enum mode mode = MODE_LINES;
    const char *dir = NULL;
    if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
        mode = MODE_MARKDOWN;
    } else if (argc == 3 && strcmp(argv[1], "--corpus") == 0) {
        mode = MODE_CORPUS;
        dir = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--markdown | --corpus DIR]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < pw_test_vector_count; i++) {
        uint8_t buf[PW_PROTO_MAX_DATAGRAM];
        int n = pw_proto_encode(&pw_test_vectors[i].msg, pw_test_key, buf, sizeof buf);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", pw_test_vectors[i].name, pw_proto_strerror(n));
            return 1;
        }
        if (emit(mode, dir, pw_test_vectors[i].name, buf, (size_t)n))
            return 1;
    }
    uint8_t frame[PW_DEFA_FRAME_LEN];
    if (pw_defa_encode(&pw_test_defa_frame, frame) != PW_DEFA_FRAME_LEN)
        return 1;
    return emit(mode, dir, "defa", frame, sizeof frame);
}
