/* The admin password (PBKDF2-SHA256 with a per-install salt, kept in a 0600 file written
 * atomically), login sessions named by CTR-DRBG tokens, per-client login rate limiting and the
 * cookie and Origin checks that web.c applies before anything reaches the server. */
#include "web_auth.h"

#include "pw_util.h"

#include <errno.h>
#include <fcntl.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_LOG         "web"
#define AUTH_SCHEME      "pbkdf2-sha256"
#define AUTH_TOKEN_BYTES (WEB_AUTH_TOKEN_HEX / 2)

typedef struct auth_session {
    bool used;
    unsigned char token_hash[WEB_AUTH_HASH_LEN]; /* SHA-256 of the token, never the token */
    uint64_t created, last_used;
} auth_session;

typedef struct auth_client {
    char addr[64]; /* "" = free slot */
    unsigned failures;
    uint64_t last_failure, next_allowed;
} auth_client;

struct web_auth {
    char *dir;
    unsigned iterations;
    web_pw_record rec;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    auth_session sessions[WEB_AUTH_MAX_SESSIONS];
    auth_client clients[WEB_AUTH_RATE_CLIENTS];
};

/* ---- small helpers ---- */

static bool ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes exactly 2n lowercase hex digits from in. Returns 0 or -1. */
static int hex_decode(const char *in, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(in[2 * i]), lo = hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void sha256(const void *in, size_t n, unsigned char out[WEB_AUTH_HASH_LEN])
{
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), in, n, out);
}

static char *auth_path(const char *dir, const char *suffix)
{
    size_t n = strlen(dir) + strlen(WEB_AUTH_FILE) + strlen(suffix) + 2;
    char *p = pw_xmalloc(n);
    snprintf(p, n, "%s/%s%s", dir, WEB_AUTH_FILE, suffix);
    return p;
}

/* ---- life cycle ---- */

web_auth *web__auth_new(const char *data_dir, unsigned iterations, char *err, size_t err_size)
{
    static const char pers[] = "phasewise web auth";
    web_auth *a = pw_xcalloc(1, sizeof(*a));
    a->dir = pw_xstrdup(data_dir);
    a->iterations = iterations ? iterations : WEB_AUTH_ITERATIONS;
    mbedtls_entropy_init(&a->entropy);
    mbedtls_ctr_drbg_init(&a->drbg);
    int rc = mbedtls_ctr_drbg_seed(&a->drbg, mbedtls_entropy_func, &a->entropy,
                                   (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        snprintf(err, err_size, "cannot seed the random generator (mbedTLS error -0x%04x)",
                 (unsigned)-rc);
        goto fail;
    }
    if (web__auth_load(a->dir, &a->rec, err, err_size))
        goto fail;
    return a;
fail:
    web__auth_free(a);
    return NULL;
}

void web__auth_free(web_auth *a)
{
    if (!a)
        return;
    mbedtls_ctr_drbg_free(&a->drbg);
    mbedtls_entropy_free(&a->entropy);
    free(a->dir);
    explicit_bzero(a, sizeof(*a));
    free(a);
}

bool web__auth_setup_required(const web_auth *a)
{
    return !a->rec.set;
}

const web_pw_record *web__auth_record(const web_auth *a)
{
    return &a->rec;
}

const char *web__auth_dir(const web_auth *a)
{
    return a->dir;
}

/* ---- the password ---- */

int web__auth_new_record(web_auth *a, web_pw_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->iterations = a->iterations;
    return mbedtls_ctr_drbg_random(&a->drbg, rec->salt, sizeof(rec->salt)) ? -1 : 0;
}

void web__auth_install(web_auth *a, const web_pw_record *rec)
{
    a->rec = *rec;
    a->rec.set = true;
}

int web__auth_derive(const web_pw_record *rec, const char *password, size_t len,
                     unsigned char out[WEB_AUTH_HASH_LEN])
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (rc == 0)
        rc = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)password, len, rec->salt,
                                       sizeof(rec->salt), rec->iterations, WEB_AUTH_HASH_LEN, out);
    mbedtls_md_free(&md);
    return rc ? -1 : 0;
}

bool web__auth_verify(const web_pw_record *rec, const char *password, size_t len)
{
    unsigned char h[WEB_AUTH_HASH_LEN];
    bool ok = rec->set && web__auth_derive(rec, password, len, h) == 0 &&
              ct_equal(h, rec->hash, sizeof(h));
    explicit_bzero(h, sizeof(h));
    return ok;
}

int web__auth_store(const char *dir, const web_pw_record *rec, char *err, size_t err_size)
{
    char line[256], salt[2 * WEB_AUTH_SALT_LEN + 1], hash[2 * WEB_AUTH_HASH_LEN + 1];
    hex_encode(rec->salt, sizeof(rec->salt), salt);
    hex_encode(rec->hash, sizeof(rec->hash), hash);
    int n = snprintf(line, sizeof(line), "%s$%u$%s$%s\n", AUTH_SCHEME, rec->iterations, salt, hash);
    char *path = auth_path(dir, "");
    int rc = pw_write_file_atomic(path, line, (size_t)n, 0600, err, err_size);
    explicit_bzero(line, sizeof(line));
    free(path);
    return rc;
}

static int parse_record(char *line, web_pw_record *rec)
{
    char *fields[4], *save = NULL;
    line[strcspn(line, "\r\n")] = '\0';
    for (int i = 0; i < 4; i++) {
        fields[i] = strtok_r(i ? NULL : line, "$", &save);
        if (!fields[i])
            return -1;
    }
    if (strtok_r(NULL, "$", &save) || strcmp(fields[0], AUTH_SCHEME) != 0)
        return -1;
    char *end;
    unsigned long it = strtoul(fields[1], &end, 10);
    if (*end || it < 1000 || it > 100000000)
        return -1;
    rec->iterations = (unsigned)it;
    if (hex_decode(fields[2], strlen(fields[2]), rec->salt, sizeof(rec->salt)) ||
        hex_decode(fields[3], strlen(fields[3]), rec->hash, sizeof(rec->hash)))
        return -1;
    rec->set = true;
    return 0;
}

int web__auth_load(const char *dir, web_pw_record *rec, char *err, size_t err_size)
{
    memset(rec, 0, sizeof(*rec));
    char *path = auth_path(dir, "");
    char line[256];
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = 0; /* not set up yet */
        else
            snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
        pw_warn(AUTH_LOG, "%s was readable by others; restricting it to mode 0600", path);
        if (fchmod(fd, 0600))
            pw_warn(AUTH_LOG, "cannot chmod %s: %s", path, strerror(errno));
    }
    ssize_t n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    line[n] = '\0';
    if (parse_record(line, rec)) {
        memset(rec, 0, sizeof(*rec));
        snprintf(err, err_size,
                 "%s is not a valid password file; remove it to set the admin password again",
                 path);
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(line, sizeof(line));
    free(path);
    return rc;
}

/* ---- sessions ---- */

static bool session_live(const auth_session *s, uint64_t now)
{
    return s->used && now - s->last_used < WEB_AUTH_IDLE_MS &&
           now - s->created < WEB_AUTH_LIFETIME_MS;
}

int web__auth_session_open(web_auth *a, uint64_t now, char token[WEB_AUTH_TOKEN_HEX + 1])
{
    unsigned char raw[AUTH_TOKEN_BYTES];
    if (mbedtls_ctr_drbg_random(&a->drbg, raw, sizeof(raw)))
        return -1;
    hex_encode(raw, sizeof(raw), token);
    explicit_bzero(raw, sizeof(raw));

    auth_session *slot = &a->sessions[0];
    for (size_t i = 0; i < WEB_AUTH_MAX_SESSIONS; i++) {
        auth_session *s = &a->sessions[i];
        if (!session_live(s, now)) {
            slot = s;
            break;
        }
        if (s->last_used < slot->last_used)
            slot = s;
    }
    slot->used = true;
    slot->created = slot->last_used = now;
    sha256(token, WEB_AUTH_TOKEN_HEX, slot->token_hash);
    return 0;
}

/* The used session with this token hash, live or not, or NULL. */
static auth_session *session_by_hash(web_auth *a, const unsigned char h[WEB_AUTH_HASH_LEN])
{
    for (size_t i = 0; i < WEB_AUTH_MAX_SESSIONS; i++)
        if (a->sessions[i].used && ct_equal(a->sessions[i].token_hash, h, WEB_AUTH_HASH_LEN))
            return &a->sessions[i];
    return NULL;
}

/* Hashes the nth pw_session cookie of the header into h. Returns 1, 0 for a cookie that cannot
 * be a token, -1 when there is no nth cookie. */
static int cookie_token_hash(const char *header, unsigned nth, unsigned char h[WEB_AUTH_HASH_LEN])
{
    char token[WEB_AUTH_TOKEN_HEX + 2];
    int n = web__cookie_get(header, WEB_AUTH_COOKIE, nth, token, sizeof(token));
    if (n < 0)
        return -1;
    if (n != WEB_AUTH_TOKEN_HEX)
        return 0;
    sha256(token, (size_t)n, h);
    return 1;
}

bool web__auth_session_check(web_auth *a, const char *cookie_header, uint64_t now)
{
    /* A browser may send several pw_session cookies (old paths): any live one counts. */
    unsigned char h[WEB_AUTH_HASH_LEN];
    int rc;
    for (unsigned nth = 0; (rc = cookie_token_hash(cookie_header, nth, h)) >= 0; nth++) {
        auth_session *s = rc ? session_by_hash(a, h) : NULL;
        if (s && session_live(s, now)) {
            s->last_used = now;
            return true;
        }
    }
    return false;
}

void web__auth_session_close(web_auth *a, const char *cookie_header)
{
    unsigned char h[WEB_AUTH_HASH_LEN];
    int rc;
    for (unsigned nth = 0; (rc = cookie_token_hash(cookie_header, nth, h)) >= 0; nth++) {
        auth_session *s = rc ? session_by_hash(a, h) : NULL;
        if (s)
            memset(s, 0, sizeof(*s));
    }
}

size_t web__auth_sessions(web_auth *a, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < WEB_AUTH_MAX_SESSIONS; i++)
        n += session_live(&a->sessions[i], now);
    return n;
}

/* ---- rate limiting ---- */

/* Whether c should give way before victim when a slot is needed: clients that are not being
 * held back go first, so filling the table from many addresses cannot free a blocked one. */
static bool client_evict_before(const auth_client *c, const auth_client *victim)
{
    if (c->next_allowed != victim->next_allowed)
        return c->next_allowed < victim->next_allowed;
    return c->last_failure < victim->last_failure;
}

/* The record of client, forgetting records that have gone quiet. With create, a missing one
 * is made in a free slot or in place of the record that matters least. */
static auth_client *client_find(web_auth *a, const char *addr, uint64_t now, bool create)
{
    auth_client *free_slot = NULL, *victim = NULL;
    for (size_t i = 0; i < WEB_AUTH_RATE_CLIENTS; i++) {
        auth_client *c = &a->clients[i];
        if (c->addr[0] && now - c->last_failure >= WEB_AUTH_FORGET_MS && now >= c->next_allowed)
            memset(c, 0, sizeof(*c));
        if (!c->addr[0]) {
            free_slot = free_slot ? free_slot : c;
            continue;
        }
        if (strcmp(c->addr, addr) == 0)
            return c;
        if (!victim || client_evict_before(c, victim))
            victim = c;
    }
    if (!create)
        return NULL;
    auth_client *c = free_slot ? free_slot : victim;
    memset(c, 0, sizeof(*c));
    pw_strlcpy(c->addr, addr, sizeof(c->addr));
    return c;
}

uint64_t web__auth_rate_wait(web_auth *a, const char *client, uint64_t now)
{
    auth_client *c = client_find(a, client, now, false);
    return c && c->next_allowed > now ? c->next_allowed - now : 0;
}

void web__auth_rate_note(web_auth *a, const char *client, bool success, uint64_t now)
{
    auth_client *c = client_find(a, client, now, !success);
    if (success) {
        if (c)
            memset(c, 0, sizeof(*c));
        return;
    }
    c->failures++;
    c->last_failure = now;
    if (c->failures >= WEB_AUTH_FREE_FAILS) {
        unsigned shift = c->failures - WEB_AUTH_FREE_FAILS;
        uint64_t delay = shift >= 9 ? WEB_AUTH_MAX_DELAY_MS : 1000ull << shift;
        c->next_allowed = now + (delay < WEB_AUTH_MAX_DELAY_MS ? delay : WEB_AUTH_MAX_DELAY_MS);
    }
}

/* ---- cookies and origins ---- */

int web__cookie_get(const char *header, const char *name, unsigned nth, char *out, size_t size)
{
    size_t name_len = strlen(name);
    for (const char *p = header; p && *p;) {
        p += strspn(p, " \t;");
        size_t pair = strcspn(p, ";");
        if (pair > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            if (nth-- == 0) {
                size_t n = pair - name_len - 1;
                while (n && (p[name_len + 1 + n - 1] == ' ' || p[name_len + 1 + n - 1] == '\t'))
                    n--;
                if (n >= size)
                    return -1;
                memcpy(out, p + name_len + 1, n);
                out[n] = '\0';
                return (int)n;
            }
        }
        p += pair;
    }
    return -1;
}

bool web__origin_ok(const char *origin, const char *host_header, bool tls, const char *const *extra)
{
    if (!origin || !origin[0])
        return false;
    for (size_t i = 0; extra && extra[i]; i++)
        if (strcasecmp(origin, extra[i]) == 0)
            return true;
    const char *scheme = tls ? "https://" : "http://";
    size_t sl = strlen(scheme);
    return host_header && host_header[0] && strncasecmp(origin, scheme, sl) == 0 &&
           strcasecmp(origin + sl, host_header) == 0;
}
