/* The facility key file: the 32-byte HMAC key of the LAN protocol, generated with mbedTLS's
 * CTR-DRBG on first start and kept as 64 hex characters in a file of mode 0600, plus the hex form
 * an installer copies into a charger when pairing it (PROTOCOL.md, "Pairing"). Separate from the
 * pure pw_proto library because it does file I/O and gathers entropy. */
#ifndef PW_KEYFILE_H
#define PW_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_KEYFILE_KEY_LEN 32
#define PW_KEYFILE_HEX_LEN 64 /* characters, without the NUL */

enum pw_keyfile_err {
    PW_KEYFILE_OK = 0,
    PW_KEYFILE_E_MISSING = -1, /* no file at that path (pw_keyfile_load only) */
    PW_KEYFILE_E_IO = -2,      /* open, read, write or sync failed; see the message */
    PW_KEYFILE_E_MODE = -3,    /* not a regular file, or readable/writable beyond its owner */
    PW_KEYFILE_E_FORMAT = -4,  /* not exactly 64 hex characters (and a newline), or all zero */
    PW_KEYFILE_E_RANDOM = -5,  /* the entropy source or CTR-DRBG failed */
};

/* Loads the key from path, or when there is no file there, generates one and creates the file
 * with mode 0600 atomically (it appears complete or not at all, and an existing file is never
 * replaced). *created tells which happened. Returns 0 or a negative pw_keyfile_err with a
 * message a person can act on in err (err_size bytes, always terminated). A file that exists but
 * is wrong is refused, never overwritten: the chargers paired with it would stop listening. */
int pw_keyfile_load_or_create(const char *path, uint8_t key[PW_KEYFILE_KEY_LEN], bool *created,
                              char *err, size_t err_size);

/* Loads the key from path; never creates it (the simulator, a charger after pairing). Returns 0
 * or a negative pw_keyfile_err, PW_KEYFILE_E_MISSING when there is no file, with a message in
 * err. */
int pw_keyfile_load(const char *path, uint8_t key[PW_KEYFILE_KEY_LEN], char *err, size_t err_size);

/* Writes the key as 64 lowercase hex characters and a NUL into out: the pairing text. */
void pw_keyfile_to_hex(const uint8_t key[PW_KEYFILE_KEY_LEN], char out[PW_KEYFILE_HEX_LEN + 1]);

/* Parses a pairing text as typed by an installer: 64 hex digits in either case, optionally
 * grouped with spaces, tabs, newlines, '-' or ':'. Returns 0, or PW_KEYFILE_E_FORMAT for any
 * other character, a different number of digits or an all-zero key (key is then undefined). */
int pw_keyfile_from_hex(const char *text, uint8_t key[PW_KEYFILE_KEY_LEN]);

#endif
