/* Tests of web/'s authentication core in fake time: the password file (PBKDF2-SHA256, mode
 * 0600, atomic), sessions, login rate limiting, cookie parsing and the Origin rule. */
#include "pw_util.h"
#include "web_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define FAST_ITER 1000

typedef struct tmpdir {
    char path[64];
} tmpdir;

static void tmpdir_make(tmpdir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/pw-auth-test-XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static void file_in(const tmpdir *d, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", d->path, name);
}

static void tmpdir_remove(tmpdir *d)
{
    char p[128];
    file_in(d, WEB_AUTH_FILE, p, sizeof(p));
    unlink(p);
    file_in(d, WEB_AUTH_FILE ".tmp", p, sizeof(p));
    unlink(p);
    assert_int_equal(rmdir(d->path), 0);
}

static void write_file(const tmpdir *d, const char *text, mode_t mode)
{
    char p[128];
    file_in(d, WEB_AUTH_FILE, p, sizeof(p));
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
}

/* A record for password set through the same steps web_login.c takes. */
static web_auth *auth_with_password(const tmpdir *d, const char *password)
{
    char err[256] = "";
    web_auth *a = web__auth_new(d->path, FAST_ITER, err, sizeof(err));
    assert_non_null(a);
    assert_true(web__auth_setup_required(a));
    web_pw_record rec;
    assert_int_equal(web__auth_new_record(a, &rec), 0);
    assert_int_equal(rec.iterations, FAST_ITER);
    assert_int_equal(web__auth_derive(&rec, password, strlen(password), rec.hash), 0);
    assert_int_equal(web__auth_store(d->path, &rec, err, sizeof(err)), 0);
    web__auth_install(a, &rec);
    assert_false(web__auth_setup_required(a));
    return a;
}

static void test_password_file(void **state)
{
    (void)state;
    tmpdir d;
    tmpdir_make(&d);
    web_auth *a = auth_with_password(&d, "correct horse battery");
    const web_pw_record *rec = web__auth_record(a);
    assert_true(web__auth_verify(rec, "correct horse battery", 21));
    assert_false(web__auth_verify(rec, "correct horse batterx", 21));
    assert_false(web__auth_verify(rec, "correct horse battery ", 22));

    /* Mode 0600, no temporary file left, and the documented one-line format. */
    char p[128], line[256];
    file_in(&d, WEB_AUTH_FILE, p, sizeof(p));
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    file_in(&d, WEB_AUTH_FILE ".tmp", line, sizeof(line));
    assert_int_not_equal(access(line, F_OK), 0);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_int_equal(strncmp(line, "pbkdf2-sha256$1000$", 19), 0);
    assert_int_equal(strlen(line), 19 + 32 + 1 + 64 + 1);
    assert_null(strstr(line, "correct"));

    /* A restart reads it back: same salt, same hash, the password still works. */
    char err[256];
    web_auth *b = web__auth_new(d.path, 0, err, sizeof(err));
    assert_non_null(b);
    assert_false(web__auth_setup_required(b));
    assert_memory_equal(web__auth_record(b)->salt, rec->salt, WEB_AUTH_SALT_LEN);
    assert_memory_equal(web__auth_record(b)->hash, rec->hash, WEB_AUTH_HASH_LEN);
    assert_true(web__auth_verify(web__auth_record(b), "correct horse battery", 21));
    web__auth_free(b);

    /* Two installs get different salts, so equal passwords do not give equal hashes. */
    web_pw_record r2;
    assert_int_equal(web__auth_new_record(a, &r2), 0);
    assert_memory_not_equal(r2.salt, rec->salt, WEB_AUTH_SALT_LEN);
    web__auth_free(a);
    tmpdir_remove(&d);
}

static void test_password_file_damaged(void **state)
{
    (void)state;
    tmpdir d;
    tmpdir_make(&d);
    char err[256] = "";
    static const char *bad[] = {
        "",
        "garbage\n",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$00\n",
        "md5$1000$00112233445566778899aabbccddeeff$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "pbkdf2-sha256$10$00112233445566778899aabbccddeeff$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff$x\n",
    };
    for (size_t i = 0; i < PW_ARRAY_LEN(bad); i++) {
        write_file(&d, bad[i], 0600);
        err[0] = '\0';
        assert_null(web__auth_new(d.path, FAST_ITER, err, sizeof(err)));
        assert_non_null(strstr(err, "remove it"));
    }
    /* A valid file that others could read is accepted and tightened to 0600. */
    write_file(&d,
               "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$"
               "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
               0644);
    web_auth *a = web__auth_new(d.path, FAST_ITER, err, sizeof(err));
    assert_non_null(a);
    assert_false(web__auth_setup_required(a));
    web__auth_free(a);
    char p[128];
    struct stat st;
    file_in(&d, WEB_AUTH_FILE, p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A data folder that does not exist cannot take the password. */
    web_pw_record rec = {.iterations = FAST_ITER};
    assert_int_equal(web__auth_store("/nonexistent/dir", &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    tmpdir_remove(&d);
}

static void cookie_for(const char *token, char *out, size_t size)
{
    snprintf(out, size, "theme=dark; " WEB_AUTH_COOKIE "=%s; other=1", token);
}

static void test_sessions(void **state)
{
    (void)state;
    tmpdir d;
    tmpdir_make(&d);
    char err[256];
    web_auth *a = web__auth_new(d.path, FAST_ITER, err, sizeof(err));
    assert_non_null(a);
    uint64_t t = 1000;
    char tok1[WEB_AUTH_TOKEN_HEX + 1], tok2[WEB_AUTH_TOKEN_HEX + 1], c1[160], c2[160];
    assert_int_equal(web__auth_session_open(a, t, tok1), 0);
    assert_int_equal(web__auth_session_open(a, t, tok2), 0);
    assert_int_equal(strlen(tok1), WEB_AUTH_TOKEN_HEX);
    assert_string_not_equal(tok1, tok2);
    cookie_for(tok1, c1, sizeof(c1));
    cookie_for(tok2, c2, sizeof(c2));
    assert_true(web__auth_session_check(a, c1, t));
    assert_true(web__auth_session_check(a, c2, t));
    assert_false(web__auth_session_check(a, "", t));
    assert_false(web__auth_session_check(a, WEB_AUTH_COOKIE "=abc", t));
    /* One changed character is another token. */
    char forged[160];
    pw_strlcpy(forged, c1, sizeof(forged));
    char *p = strstr(forged, "=") + 1;
    p = strstr(p, WEB_AUTH_COOKIE "=") + strlen(WEB_AUTH_COOKIE "=");
    *p = *p == '0' ? '1' : '0';
    assert_false(web__auth_session_check(a, forged, t));
    assert_int_equal(web__auth_sessions(a, t), 2);

    /* Use keeps a session alive; idleness ends it. */
    t += WEB_AUTH_IDLE_MS - 1;
    assert_true(web__auth_session_check(a, c1, t));
    t += WEB_AUTH_IDLE_MS - 1;
    assert_true(web__auth_session_check(a, c1, t));
    assert_false(web__auth_session_check(a, c2, t));
    /* ...but never beyond its lifetime. */
    while (t < 1000 + WEB_AUTH_LIFETIME_MS - WEB_AUTH_IDLE_MS / 2) {
        t += WEB_AUTH_IDLE_MS / 2;
        assert_true(web__auth_session_check(a, c1, t));
    }
    t = 1000 + WEB_AUTH_LIFETIME_MS;
    assert_false(web__auth_session_check(a, c1, t));

    /* Logout ends exactly that session; a stale cookie before a good one still counts. */
    assert_int_equal(web__auth_session_open(a, t, tok1), 0);
    assert_int_equal(web__auth_session_open(a, t, tok2), 0);
    cookie_for(tok1, c1, sizeof(c1));
    snprintf(c2, sizeof(c2), WEB_AUTH_COOKIE "=%064d; " WEB_AUTH_COOKIE "=%s", 0, tok2);
    assert_true(web__auth_session_check(a, c2, t));
    web__auth_session_close(a, c1);
    assert_false(web__auth_session_check(a, c1, t));
    assert_true(web__auth_session_check(a, c2, t));

    /* A full table drops the least recently used session. */
    char first[WEB_AUTH_TOKEN_HEX + 1], tok[WEB_AUTH_TOKEN_HEX + 1];
    assert_int_equal(web__auth_session_open(a, t, first), 0);
    for (int i = 0; i < WEB_AUTH_MAX_SESSIONS; i++) {
        t++;
        assert_true(web__auth_session_check(a, c2, t));
        assert_int_equal(web__auth_session_open(a, t, tok), 0);
    }
    cookie_for(first, c1, sizeof(c1));
    assert_false(web__auth_session_check(a, c1, t));
    assert_true(web__auth_session_check(a, c2, t));
    assert_int_equal(web__auth_sessions(a, t), WEB_AUTH_MAX_SESSIONS);
    web__auth_free(a);
    tmpdir_remove(&d);
}

static void test_rate_limit(void **state)
{
    (void)state;
    tmpdir d;
    tmpdir_make(&d);
    char err[256];
    web_auth *a = web__auth_new(d.path, FAST_ITER, err, sizeof(err));
    uint64_t t = 5000;
    const char *ip = "192.0.2.7", *other = "192.0.2.8";
    for (int i = 0; i < WEB_AUTH_FREE_FAILS - 1; i++) {
        assert_int_equal(web__auth_rate_wait(a, ip, t), 0);
        web__auth_rate_note(a, ip, false, t);
    }
    /* Each further failure doubles the wait: 1 s, 2 s, 4 s, ... */
    uint64_t expect = 1000;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(web__auth_rate_wait(a, ip, t), 0);
        web__auth_rate_note(a, ip, false, t);
        assert_int_equal(web__auth_rate_wait(a, ip, t), expect);
        assert_int_equal(web__auth_rate_wait(a, ip, t + expect - 1), 1);
        assert_int_equal(web__auth_rate_wait(a, other, t), 0);
        t += expect;
        expect *= 2;
    }
    /* The wait stops growing at the cap. */
    for (int i = 0; i < 20; i++) {
        t += web__auth_rate_wait(a, ip, t);
        web__auth_rate_note(a, ip, false, t);
    }
    assert_int_equal(web__auth_rate_wait(a, ip, t), WEB_AUTH_MAX_DELAY_MS);
    /* A success wipes the slate. */
    t += WEB_AUTH_MAX_DELAY_MS;
    web__auth_rate_note(a, ip, true, t);
    web__auth_rate_note(a, ip, false, t);
    assert_int_equal(web__auth_rate_wait(a, ip, t), 0);
    /* Failures are forgotten after a quiet spell. */
    for (int i = 0; i < WEB_AUTH_FREE_FAILS; i++)
        web__auth_rate_note(a, other, false, t);
    assert_true(web__auth_rate_wait(a, other, t) > 0);
    t += WEB_AUTH_FORGET_MS;
    web__auth_rate_note(a, other, false, t);
    assert_int_equal(web__auth_rate_wait(a, other, t), 0);
    /* Many clients cannot push a blocked one out of the table by filling it. */
    for (int i = 0; i < WEB_AUTH_FREE_FAILS; i++)
        web__auth_rate_note(a, ip, false, t);
    char addr[32];
    for (int i = 0; i < WEB_AUTH_RATE_CLIENTS - 1; i++) {
        snprintf(addr, sizeof(addr), "198.51.100.%d", i);
        web__auth_rate_note(a, addr, false, t + 1 + (uint64_t)i);
    }
    assert_true(web__auth_rate_wait(a, ip, t + 100) > 0);
    web__auth_free(a);
    tmpdir_remove(&d);
}

static void test_cookie_get(void **state)
{
    (void)state;
    char v[16];
    assert_int_equal(web__cookie_get("a=1; pw_session=xyz; b=2", "pw_session", 0, v, sizeof(v)), 3);
    assert_string_equal(v, "xyz");
    assert_int_equal(
        web__cookie_get("pw_session=one;pw_session=two", "pw_session", 1, v, sizeof(v)), 3);
    assert_string_equal(v, "two");
    assert_int_equal(web__cookie_get("pw_session=one", "pw_session", 1, v, sizeof(v)), -1);
    assert_int_equal(web__cookie_get("xpw_session=1; pw_sessionx=2", "pw_session", 0, v, sizeof(v)),
                     -1);
    assert_int_equal(
        web__cookie_get("pw_session=0123456789abcdefgh", "pw_session", 0, v, sizeof(v)), -1);
    assert_int_equal(web__cookie_get("", "pw_session", 0, v, sizeof(v)), -1);
}

static void test_origin(void **state)
{
    (void)state;
    const char *extra[] = {"https://phasewise.example", NULL};
    assert_true(web__origin_ok("http://10.0.0.5:8080", "10.0.0.5:8080", false, NULL));
    assert_true(web__origin_ok("HTTP://Garage.local", "garage.local", false, NULL));
    assert_false(web__origin_ok("http://10.0.0.5:8081", "10.0.0.5:8080", false, NULL));
    assert_false(web__origin_ok("http://evil.example", "10.0.0.5", false, NULL));
    assert_false(web__origin_ok("http://10.0.0.5.evil.example", "10.0.0.5", false, NULL));
    assert_false(web__origin_ok("https://10.0.0.5", "10.0.0.5", false, NULL));
    assert_true(web__origin_ok("https://10.0.0.5", "10.0.0.5", true, NULL));
    assert_false(web__origin_ok("", "10.0.0.5", false, NULL));
    assert_false(web__origin_ok("null", "10.0.0.5", false, NULL));
    assert_false(web__origin_ok("http://10.0.0.5", "", false, NULL));
    assert_true(web__origin_ok("https://phasewise.example", "10.0.0.5", false, extra));
    assert_false(web__origin_ok("https://phasewise.example.evil", "10.0.0.5", false, extra));
}

int main(void)
{
    pw_log_set_level(PW_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_file), cmocka_unit_test(test_password_file_damaged),
        cmocka_unit_test(test_sessions),      cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_cookie_get),    cmocka_unit_test(test_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
