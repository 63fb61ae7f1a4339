/* OCPP charge point passwords (Security Profile 1 and 2, HTTP Basic): the config keeps a salted
 * SHA-256 of each one, never the password, and the transport checks the password a charge point
 * sends at every WebSocket upgrade against it. */
#include "pw_cfg.h"

#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <string.h>

#define HASH_PREFIX "sha256:"
#define PREFIX_LEN  (sizeof HASH_PREFIX - 1)
#define SALT_HEX    (2 * PW_CFG_OCPP_SALT_LEN)
#define DIGEST_LEN  32
#define DIGEST_HEX  (2 * DIGEST_LEN)

/* Why one SHA-256 and not PBKDF2 as for the web logins: an OCPP password is an
 * AuthorizationKey of 16..40 characters that the installer or the central system generates, not
 * something a person chose and remembers, so there is no small space of likely guesses that
 * key stretching would protect. The check runs on the event loop at every WebSocket upgrade,
 * and after a power cut 1,000 charge points reconnect at once: at ~100 ms of PBKDF2 each that
 * would stall the loop for minutes, at one hash each it costs well under a millisecond in all.
 * The salt keeps equal keys from having equal hashes and precomputed tables from applying. */

static bool password_ok(const char *password)
{
    size_t n = strlen(password);
    if (n < PW_CFG_OCPP_PASSWORD_MIN || n > PW_CFG_OCPP_PASSWORD_MAX)
        return false;
    for (const char *p = password; *p; p++)
        if (*p < '!' || *p > '~') /* printable ASCII without space */
            return false;
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes exactly 2 * n hex digits at s into out; false if any is not one. */
static bool hex_decode(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Splits "sha256:<salt hex>:<digest hex>" into its salt and digest; false if malformed. */
static bool hash_parse(const char *hash, uint8_t salt[PW_CFG_OCPP_SALT_LEN],
                       uint8_t digest[DIGEST_LEN])
{
    if (strlen(hash) != PW_CFG_OCPP_HASH_LEN || strncmp(hash, HASH_PREFIX, PREFIX_LEN) != 0 ||
        hash[PREFIX_LEN + SALT_HEX] != ':')
        return false;
    return hex_decode(hash + PREFIX_LEN, salt, PW_CFG_OCPP_SALT_LEN) &&
           hex_decode(hash + PREFIX_LEN + SALT_HEX + 1, digest, DIGEST_LEN);
}

/* SHA-256 of salt || password into digest; the password is checked by the caller. */
static int digest_of(const uint8_t salt[PW_CFG_OCPP_SALT_LEN], const char *password,
                     uint8_t digest[DIGEST_LEN])
{
    uint8_t buf[PW_CFG_OCPP_SALT_LEN + PW_CFG_OCPP_PASSWORD_MAX];
    size_t n = strlen(password);
    memcpy(buf, salt, PW_CFG_OCPP_SALT_LEN);
    memcpy(buf + PW_CFG_OCPP_SALT_LEN, password, n);
    int rc = mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), buf, PW_CFG_OCPP_SALT_LEN + n,
                        digest);
    mbedtls_platform_zeroize(buf, sizeof buf);
    return rc == 0 ? 0 : -1;
}

int pw_cfg_ocpp_password_hash(const char *password, const uint8_t salt[PW_CFG_OCPP_SALT_LEN],
                              char *out, size_t out_size)
{
    uint8_t digest[DIGEST_LEN];
    if (out_size < PW_CFG_OCPP_HASH_LEN + 1 || !password_ok(password) ||
        digest_of(salt, password, digest) != 0)
        return -1;
    memcpy(out, HASH_PREFIX, PREFIX_LEN);
    char *p = out + PREFIX_LEN;
    for (size_t i = 0; i < PW_CFG_OCPP_SALT_LEN; i++)
        p += snprintf(p, 3, "%02x", salt[i]);
    *p++ = ':';
    for (size_t i = 0; i < DIGEST_LEN; i++)
        p += snprintf(p, 3, "%02x", digest[i]);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return 0;
}

bool pw_cfg_ocpp_password_hash_valid(const char *hash)
{
    uint8_t salt[PW_CFG_OCPP_SALT_LEN], digest[DIGEST_LEN];
    return hash_parse(hash, salt, digest);
}

bool pw_cfg_ocpp_password_check(const char *hash, const char *password)
{
    uint8_t salt[PW_CFG_OCPP_SALT_LEN], want[DIGEST_LEN], got[DIGEST_LEN];
    /* A password outside the rules cannot have been hashed: no need to hide that. */
    if (!hash_parse(hash, salt, want) || !password_ok(password) ||
        digest_of(salt, password, got) != 0)
        return false;
    /* Every byte is compared whatever the first difference, so the time taken tells an
     * attacker nothing about how much of a guess was right. */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < DIGEST_LEN; i++)
        diff |= (uint8_t)(want[i] ^ got[i]);
    mbedtls_platform_zeroize(got, sizeof got);
    return diff == 0;
}
