/* Authentication core of web/: the admin password record (PBKDF2-SHA256, stored atomically
 * with mode 0600), login sessions with CTR-DRBG tokens, login rate limiting, and the cookie
 * and Origin checks. No sockets, no clock reads: web.c passes `now` (monotonic ms) in.
 * Internal to web/ (and its unit test). */
#ifndef PW_WEB_AUTH_H
#define PW_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_web.h"

#define WEB_AUTH_COOKIE       "pw_session"
#define WEB_AUTH_FILE         PW_WEB_PASSWORD_FILE
#define WEB_AUTH_SALT_LEN     16
#define WEB_AUTH_HASH_LEN     32
#define WEB_AUTH_TOKEN_HEX    64
#define WEB_AUTH_MIN_PASSWORD 10
#define WEB_AUTH_MAX_PASSWORD 1024
#define WEB_AUTH_ITERATIONS   600000 /* OWASP 2023 figure for PBKDF2-HMAC-SHA256 */
#define WEB_AUTH_MAX_SESSIONS 16
#define WEB_AUTH_IDLE_MS      (12 * 3600 * 1000ull)
#define WEB_AUTH_LIFETIME_MS  (7 * 24 * 3600 * 1000ull)
#define WEB_AUTH_FREE_FAILS   3      /* failed logins per client before delays start */
#define WEB_AUTH_MAX_DELAY_MS 300000 /* the longest wait between two attempts */
#define WEB_AUTH_FORGET_MS    900000 /* a client's failures are forgotten after this */
#define WEB_AUTH_RATE_CLIENTS 64

/* The stored admin password. */
typedef struct web_pw_record {
    bool set;
    unsigned iterations;
    unsigned char salt[WEB_AUTH_SALT_LEN];
    unsigned char hash[WEB_AUTH_HASH_LEN];
} web_pw_record;

typedef struct web_auth web_auth;

/* Creates the auth state for the password file in data_dir (loaded now if it exists; a
 * corrupt one is an error, since starting without it would reopen setup to anyone). Returns
 * NULL with a message in err. Free with web__auth_free. */
web_auth *web__auth_new(const char *data_dir, unsigned iterations, char *err, size_t err_size);
void web__auth_free(web_auth *a);

/* True until an admin password has been set. */
bool web__auth_setup_required(const web_auth *a);

/* The current record (borrowed) and the directory it lives in. */
const web_pw_record *web__auth_record(const web_auth *a);
const char *web__auth_dir(const web_auth *a);

/* Starts a new record for password setup: fresh salt from the DRBG, the configured iteration
 * count, no hash yet. Returns 0 or -1 if the DRBG failed. */
int web__auth_new_record(web_auth *a, web_pw_record *rec);

/* Installs rec (hash filled in) as the admin password in memory. */
void web__auth_install(web_auth *a, const web_pw_record *rec);

/* PBKDF2-HMAC-SHA256 of password under rec's salt and iterations into out. Thread-safe (runs
 * on the libuv thread pool). Returns 0 or -1. */
int web__auth_derive(const web_pw_record *rec, const char *password, size_t len,
                     unsigned char out[WEB_AUTH_HASH_LEN]);

/* True when password matches rec (constant-time compare). Thread-safe. */
bool web__auth_verify(const web_pw_record *rec, const char *password, size_t len);

/* Writes rec to dir/admin-password atomically (temporary file, fsync, rename, fsync of the
 * directory) with mode 0600. Thread-safe. Returns 0, or -1 with a message in err. */
int web__auth_store(const char *dir, const web_pw_record *rec, char *err, size_t err_size);

/* Reads dir/admin-password into rec (rec->set false when there is none). Returns 0, or -1
 * with a message in err when the file exists but cannot be used. */
int web__auth_load(const char *dir, web_pw_record *rec, char *err, size_t err_size);

/* Opens a session; writes its token (hex, NUL-terminated) to token. The oldest session is
 * dropped when the table is full. Returns 0 or -1 if the DRBG failed. */
int web__auth_session_open(web_auth *a, uint64_t now, char token[WEB_AUTH_TOKEN_HEX + 1]);

/* True when the Cookie header carries a live session token; refreshes its idle timer. */
bool web__auth_session_check(web_auth *a, const char *cookie_header, uint64_t now);

/* Ends the session named by the Cookie header, if any. */
void web__auth_session_close(web_auth *a, const char *cookie_header);

/* Number of live sessions (expired ones are not counted). */
size_t web__auth_sessions(web_auth *a, uint64_t now);

/* Milliseconds client (an IP address) must still wait before its next login attempt. */
uint64_t web__auth_rate_wait(web_auth *a, const char *client, uint64_t now);

/* Records the outcome of a login attempt by client. */
void web__auth_rate_note(web_auth *a, const char *client, bool success, uint64_t now);

/* True when origin (an Origin header) names the site the request was sent to: scheme plus
 * host equal to "http(s)://" + host_header, or one of extra (NULL-terminated, may be NULL).
 * An empty origin never matches. */
bool web__origin_ok(const char *origin, const char *host_header, bool tls,
                    const char *const *extra);

/* Finds cookie name in a Cookie header; copies the n-th such value (0-based) to out. Returns
 * its length or -1 when absent or too long. */
int web__cookie_get(const char *header, const char *name, unsigned nth, char *out, size_t size);

#endif
