/* Unit tests of the facility key file: creation with mode 0600, reloading, refusal of damaged
 * or exposed files, never creating on plain load, and the hex pairing text. Each test works in
 * its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pw_keyfile.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
    char dir[64];
    char path[128];
    char err[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/pw-keyfile-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/facility.key", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static int dir_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_create_then_load(void **state)
{
    struct fixture *f = *state;
    uint8_t key[PW_KEYFILE_KEY_LEN], again[PW_KEYFILE_KEY_LEN];
    bool created = false;
    assert_int_equal(pw_keyfile_load_or_create(f->path, key, &created, f->err, sizeof f->err), 0);
    assert_true(created);

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, PW_KEYFILE_HEX_LEN + 1);
    assert_int_equal(dir_entries(f->dir), 1); /* no temporary file left behind */

    /* The file is the pairing text and a newline. */
    char text[PW_KEYFILE_HEX_LEN + 2] = {0}, hex[PW_KEYFILE_HEX_LEN + 1];
    FILE *fp = fopen(f->path, "r");
    assert_non_null(fp);
    assert_int_equal(fread(text, 1, sizeof text - 1, fp), PW_KEYFILE_HEX_LEN + 1);
    fclose(fp);
    pw_keyfile_to_hex(key, hex);
    assert_memory_equal(text, hex, PW_KEYFILE_HEX_LEN);
    assert_int_equal(text[PW_KEYFILE_HEX_LEN], '\n');

    assert_int_equal(pw_keyfile_load_or_create(f->path, again, &created, f->err, sizeof f->err), 0);
    assert_false(created);
    assert_memory_equal(key, again, sizeof key);
    memset(again, 0, sizeof again);
    assert_int_equal(pw_keyfile_load(f->path, again, f->err, sizeof f->err), 0);
    assert_memory_equal(key, again, sizeof key);
}

static void test_keys_differ(void **state)
{
    struct fixture *f = *state;
    uint8_t a[PW_KEYFILE_KEY_LEN], b[PW_KEYFILE_KEY_LEN];
    bool created;
    char other[160];
    snprintf(other, sizeof other, "%s/second.key", f->dir);
    assert_int_equal(pw_keyfile_load_or_create(f->path, a, &created, f->err, sizeof f->err), 0);
    assert_int_equal(pw_keyfile_load_or_create(other, b, &created, f->err, sizeof f->err), 0);
    assert_true(created);
    assert_memory_not_equal(a, b, sizeof a);
}

static void test_load_never_creates(void **state)
{
    struct fixture *f = *state;
    uint8_t key[PW_KEYFILE_KEY_LEN];
    assert_int_equal(pw_keyfile_load(f->path, key, f->err, sizeof f->err), PW_KEYFILE_E_MISSING);
    assert_non_null(strstr(f->err, "does not exist"));
    assert_int_equal(access(f->path, F_OK), -1);
}

static void test_refuse_exposed(void **state)
{
    struct fixture *f = *state;
    uint8_t key[PW_KEYFILE_KEY_LEN];
    bool created = true;
    static const mode_t bad[] = {0644, 0640, 0604, 0660, 0700, 0666};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(f->path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
                   bad[i]);
        assert_int_equal(pw_keyfile_load_or_create(f->path, key, &created, f->err, sizeof f->err),
                         PW_KEYFILE_E_MODE);
        assert_false(created);
        assert_non_null(strstr(f->err, "chmod 600"));
        /* Refused, not replaced. */
        struct stat st;
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, bad[i]);
    }
    /* Narrower than 0600 is fine. */
    write_file(f->path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0400);
    assert_int_equal(pw_keyfile_load(f->path, key, f->err, sizeof f->err), 0);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[5], 0x55);
    assert_int_equal(key[31], 0xff);
}

static void test_refuse_damaged(void **state)
{
    struct fixture *f = *state;
    uint8_t key[PW_KEYFILE_KEY_LEN];
    bool created;
    static const char *const bad[] = {
        "",
        "\n",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef\n",    /* 63 */
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0\n",  /* 65 */
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n", /* extra */
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeegg\n",   /* not hex */
        "0011 2233445566778899aabbccddeeff00112233445566778899aabbccddeef\n",   /* space */
        "0000000000000000000000000000000000000000000000000000000000000000\n",   /* zero */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(f->path, bad[i], 0600);
        assert_int_equal(pw_keyfile_load_or_create(f->path, key, &created, f->err, sizeof f->err),
                         PW_KEYFILE_E_FORMAT);
        assert_non_null(strstr(f->err, "damaged"));
        struct stat st;
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal((size_t)st.st_size, strlen(bad[i])); /* left as it was */
    }
    /* Without the newline, and in upper case, it is still the key. */
    write_file(f->path, "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF", 0600);
    assert_int_equal(pw_keyfile_load(f->path, key, f->err, sizeof f->err), 0);
    assert_int_equal(key[15], 0xff);
}

static void test_refuse_not_regular(void **state)
{
    struct fixture *f = *state;
    uint8_t key[PW_KEYFILE_KEY_LEN];
    bool created;
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(pw_keyfile_load_or_create(f->path, key, &created, f->err, sizeof f->err),
                     PW_KEYFILE_E_MODE);
    assert_non_null(strstr(f->err, "not a regular file"));
}

static void test_create_in_missing_dir(void **state)
{
    struct fixture *f = *state;
    uint8_t key[PW_KEYFILE_KEY_LEN];
    bool created = true;
    char path[200];
    snprintf(path, sizeof path, "%s/no/such/dir/facility.key", f->dir);
    assert_int_equal(pw_keyfile_load_or_create(path, key, &created, f->err, sizeof f->err),
                     PW_KEYFILE_E_IO);
    assert_false(created);
    assert_non_null(strstr(f->err, "cannot"));
}

static void test_hex_pairing_text(void **state)
{
    (void)state;
    uint8_t key[PW_KEYFILE_KEY_LEN], back[PW_KEYFILE_KEY_LEN];
    char hex[PW_KEYFILE_HEX_LEN + 1];
    for (int i = 0; i < PW_KEYFILE_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 37 + 11);
    pw_keyfile_to_hex(key, hex);
    assert_int_equal(strlen(hex), PW_KEYFILE_HEX_LEN);
    assert_int_equal(pw_keyfile_from_hex(hex, back), 0);
    assert_memory_equal(key, back, sizeof key);

    /* As an installer may type it: grouped, mixed case, trailing newline. */
    assert_int_equal(pw_keyfile_from_hex("0B30 557A 9FC4 E90E-3358 7DA2 C7EC 1136:5B80 A5CA EFF4 "
                                         "193E 6388 ADD2 F71C 4166\n",
                                         back),
                     0);
    assert_int_equal(back[0], 0x0b);
    assert_int_equal(back[31], 0x66);

    assert_int_equal(pw_keyfile_from_hex("", back), PW_KEYFILE_E_FORMAT);
    assert_int_equal(pw_keyfile_from_hex("0b30", back), PW_KEYFILE_E_FORMAT);
    char longer[PW_KEYFILE_HEX_LEN + 3];
    snprintf(longer, sizeof longer, "%s00", hex);
    assert_int_equal(pw_keyfile_from_hex(longer, back), PW_KEYFILE_E_FORMAT);
    hex[10] = 'x';
    assert_int_equal(pw_keyfile_from_hex(hex, back), PW_KEYFILE_E_FORMAT);
    char zero[PW_KEYFILE_HEX_LEN + 1];
    memset(zero, '0', PW_KEYFILE_HEX_LEN);
    zero[PW_KEYFILE_HEX_LEN] = '\0';
    assert_int_equal(pw_keyfile_from_hex(zero, back), PW_KEYFILE_E_FORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_then_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_never_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_exposed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_not_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_in_missing_dir, setup, teardown),
        cmocka_unit_test(test_hex_pairing_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
