/* Facility key file: load, or generate with CTR-DRBG and create atomically with mode 0600; and
 * the hex pairing text. The file holds 64 hex characters and a newline so that an installer can
 * read it as the pairing text and a person can tell at a glance that it is intact. */
#include "pw_keyfile.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_LEN (PW_KEYFILE_HEX_LEN + 1) /* hex and the newline */
/* Mixed into the DRBG seed so that this use is distinct from any other in the process. */
static const char drbg_personalization[] = "phasewise facility key v1";

/* Formats a message into err and returns code, so that failures are one line each. */
static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err_size > 0)
        vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return code;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool all_zero(const uint8_t key[PW_KEYFILE_KEY_LEN])
{
    uint8_t acc = 0;
    for (int i = 0; i < PW_KEYFILE_KEY_LEN; i++)
        acc |= key[i];
    return acc == 0;
}

void pw_keyfile_to_hex(const uint8_t key[PW_KEYFILE_KEY_LEN], char out[PW_KEYFILE_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < PW_KEYFILE_KEY_LEN; i++) {
        out[2 * i] = digits[key[i] >> 4];
        out[2 * i + 1] = digits[key[i] & 15];
    }
    out[PW_KEYFILE_HEX_LEN] = '\0';
}

int pw_keyfile_from_hex(const char *text, uint8_t key[PW_KEYFILE_KEY_LEN])
{
    int digits = 0;
    for (const char *p = text; *p; p++) {
        int d = hex_digit(*p);
        if (d < 0) {
            if (strchr(" \t\r\n-:", *p))
                continue;
            return PW_KEYFILE_E_FORMAT;
        }
        if (digits == PW_KEYFILE_HEX_LEN)
            return PW_KEYFILE_E_FORMAT;
        if (digits % 2 == 0)
            key[digits / 2] = (uint8_t)(d << 4);
        else
            key[digits / 2] |= (uint8_t)d;
        digits++;
    }
    if (digits != PW_KEYFILE_HEX_LEN || all_zero(key))
        return PW_KEYFILE_E_FORMAT;
    return 0;
}

/* The file's exact content: 64 hex digits, optionally one newline, nothing else. Stricter than
 * the pairing text on purpose: a file that differs was not written by us or was damaged. */
static int parse_file(const char *buf, size_t len, uint8_t key[PW_KEYFILE_KEY_LEN])
{
    if (len == FILE_LEN && buf[PW_KEYFILE_HEX_LEN] == '\n')
        len--;
    if (len != PW_KEYFILE_HEX_LEN)
        return PW_KEYFILE_E_FORMAT;
    for (size_t i = 0; i < len; i++) {
        if (hex_digit(buf[i]) < 0)
            return PW_KEYFILE_E_FORMAT;
    }
    char text[PW_KEYFILE_HEX_LEN + 1];
    memcpy(text, buf, len);
    text[len] = '\0';
    return pw_keyfile_from_hex(text, key);
}

/* Reads at most size bytes; returns the count or -1 with errno set. */
static ssize_t read_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int check_file(const char *path, int fd, char *err, size_t err_size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return fail(err, err_size, PW_KEYFILE_E_IO, "cannot stat key file %s: %s", path,
                    strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(err, err_size, PW_KEYFILE_E_MODE, "key file %s is not a regular file", path);
    if (st.st_mode & 0177)
        return fail(err, err_size, PW_KEYFILE_E_MODE,
                    "key file %s has mode %04o: anyone but its owner may read or change the "
                    "facility key; run chmod 600 %s",
                    path, (unsigned)(st.st_mode & 07777), path);
    return 0;
}

int pw_keyfile_load(const char *path, uint8_t key[PW_KEYFILE_KEY_LEN], char *err, size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return fail(err, err_size, PW_KEYFILE_E_MISSING, "key file %s does not exist", path);
        return fail(err, err_size, PW_KEYFILE_E_IO, "cannot open key file %s: %s", path,
                    strerror(errno));
    }
    char buf[FILE_LEN + 1]; /* one more than valid, to tell a longer file */
    int rc = check_file(path, fd, err, err_size);
    ssize_t n = rc ? 0 : read_all(fd, buf, sizeof buf);
    if (!rc && n < 0)
        rc = fail(err, err_size, PW_KEYFILE_E_IO, "cannot read key file %s: %s", path,
                  strerror(errno));
    close(fd);
    if (!rc && parse_file(buf, (size_t)n, key) != 0)
        rc = fail(err, err_size, PW_KEYFILE_E_FORMAT,
                  "key file %s is damaged: it must hold exactly 64 hex characters (a non-zero "
                  "32-byte key) and a newline",
                  path);
    mbedtls_platform_zeroize(buf, sizeof buf);
    return rc;
}

static int generate(uint8_t key[PW_KEYFILE_KEY_LEN], char *err, size_t err_size)
{
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                   (const unsigned char *)drbg_personalization,
                                   sizeof drbg_personalization - 1);
    if (rc == 0)
        rc = mbedtls_ctr_drbg_random(&drbg, key, PW_KEYFILE_KEY_LEN);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    if (rc != 0)
        return fail(err, err_size, PW_KEYFILE_E_RANDOM,
                    "cannot generate the facility key: mbedTLS random generator error -0x%04x",
                    (unsigned)-rc);
    /* Astronomically unlikely, but an all-zero key would be refused when loaded. */
    if (all_zero(key))
        return fail(err, err_size, PW_KEYFILE_E_RANDOM, "random generator returned zeros");
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes the new directory entry durable: without this a power cut right after start could lose
 * a key that chargers were already paired with. */
static void sync_dir(const char *path)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir)
        return;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes the key to a temporary file next to path, then links it into place. link() fails if
 * path exists, so a key file someone else created meanwhile is never replaced; and path is
 * either absent or complete, never half-written. Returns 0, 1 when path appeared meanwhile, or
 * a negative pw_keyfile_err. */
static int create_file(const char *path, const uint8_t key[PW_KEYFILE_KEY_LEN], char *err,
                       size_t err_size)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return fail(err, err_size, PW_KEYFILE_E_IO, "key file path too long: %s", path);
    int fd = mkstemp(tmp); /* mode 0600 whatever the umask allows beyond it */
    if (fd < 0)
        return fail(err, err_size, PW_KEYFILE_E_IO, "cannot create key file %s: %s", tmp,
                    strerror(errno));
    char text[FILE_LEN + 1];
    pw_keyfile_to_hex(key, text);
    text[PW_KEYFILE_HEX_LEN] = '\n';
    int rc = 0;
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, FILE_LEN) != 0 || fsync(fd) != 0)
        rc = fail(err, err_size, PW_KEYFILE_E_IO, "cannot write key file %s: %s", tmp,
                  strerror(errno));
    mbedtls_platform_zeroize(text, sizeof text);
    if (close(fd) != 0 && rc == 0)
        rc = fail(err, err_size, PW_KEYFILE_E_IO, "cannot write key file %s: %s", tmp,
                  strerror(errno));
    if (rc == 0 && link(tmp, path) != 0) {
        rc = errno == EEXIST ? 1
                             : fail(err, err_size, PW_KEYFILE_E_IO, "cannot create key file %s: %s",
                                    path, strerror(errno));
    }
    unlink(tmp);
    if (rc == 0)
        sync_dir(path);
    return rc;
}

int pw_keyfile_load_or_create(const char *path, uint8_t key[PW_KEYFILE_KEY_LEN], bool *created,
                              char *err, size_t err_size)
{
    *created = false;
    int rc = pw_keyfile_load(path, key, err, err_size);
    if (rc != PW_KEYFILE_E_MISSING)
        return rc;
    rc = generate(key, err, err_size);
    if (rc == 0)
        rc = create_file(path, key, err, err_size);
    if (rc == 1) /* another process created it first: use theirs */
        return pw_keyfile_load(path, key, err, err_size);
    *created = rc == 0;
    return rc;
}
