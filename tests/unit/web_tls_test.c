/* Tests of the dashboard's HTTPS certificate (server/tls.c): a self-signed pair generated on
 * first start with the names a browser checks, the key readable by its owner only, an existing
 * pair kept, and every broken pair refused with a message naming the file. */
#include "pw_util.h"
#include "tls.h"

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct pair {
    char dir[64];
    char cert[96];
    char key[96];
} pair;

static void pair_make(pair *p)
{
    snprintf(p->dir, sizeof p->dir, "/tmp/pw-tls-test-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->cert, sizeof p->cert, "%s/cert.pem", p->dir);
    snprintf(p->key, sizeof p->key, "%s/key.pem", p->dir);
}

static void pair_remove(pair *p)
{
    unlink(p->cert);
    unlink(p->key);
    assert_int_equal(rmdir(p->dir), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = pw_xcalloc(1, 16384);
    size_t n = fread(buf, 1, 16383, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* True when the certificate names the IPv4 address a.b.c.d (tag [7]) or the DNS name (tag [2]). */
static bool san_has(const mbedtls_x509_crt *crt, unsigned char tag, const void *v, size_t n)
{
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next)
        if ((s->buf.tag & 0x1f) == tag && s->buf.len == n && memcmp(s->buf.p, v, n) == 0)
            return true;
    return false;
}

static void test_generate(void **state)
{
    (void)state;
    pair p;
    pair_make(&p);
    char err[512] = "";
    bool created = false;
    assert_int_equal(pw_tls_ensure(p.cert, p.key, "192.168.7.5", &created, err, sizeof err), 0);
    assert_true(created);

    struct stat st;
    assert_int_equal(stat(p.key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, p.cert), 0);
    assert_int_equal(mbedtls_pk_parse_keyfile(&key, p.key, NULL), 0);
    assert_int_equal(mbedtls_pk_check_pair(&crt.pk, &key), 0);
    assert_true(mbedtls_pk_can_do(&key, MBEDTLS_PK_ECKEY));
    /* Self-signed: the certificate verifies under its own key. */
    uint32_t flags = 0;
    assert_int_equal(mbedtls_x509_crt_verify(&crt, &crt, NULL, NULL, &flags, NULL, NULL), 0);
    assert_true(mbedtls_x509_time_is_past(&crt.valid_from));
    assert_true(mbedtls_x509_time_is_future(&crt.valid_to));
    assert_true(crt.valid_to.year - crt.valid_from.year >= 9);
    assert_int_equal(crt.ca_istrue, 0);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
                         &crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                     0);
    const unsigned char lan[4] = {192, 168, 7, 5}, lo[4] = {127, 0, 0, 1};
    assert_true(san_has(&crt, 7, lan, 4));
    assert_true(san_has(&crt, 7, lo, 4));
    assert_true(san_has(&crt, 2, "localhost", 9));
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&crt);

    /* A second start keeps the pair as it is. */
    char *cert_before = slurp(p.cert), *key_before = slurp(p.key);
    assert_int_equal(pw_tls_ensure(p.cert, p.key, "0.0.0.0", &created, err, sizeof err), 0);
    assert_false(created);
    char *cert_after = slurp(p.cert), *key_after = slurp(p.key);
    assert_string_equal(cert_before, cert_after);
    assert_string_equal(key_before, key_after);
    free(cert_before);
    free(cert_after);
    free(key_before);
    free(key_after);
    pair_remove(&p);
}

static void test_wildcard_listen_has_no_ip_of_its_own(void **state)
{
    (void)state;
    pair p;
    pair_make(&p);
    char err[512] = "";
    bool created = false;
    assert_int_equal(pw_tls_ensure(p.cert, p.key, "0.0.0.0", &created, err, sizeof err), 0);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, p.cert), 0);
    const unsigned char any[4] = {0, 0, 0, 0}, lo[4] = {127, 0, 0, 1};
    assert_false(san_has(&crt, 7, any, 4));
    assert_true(san_has(&crt, 7, lo, 4));
    mbedtls_x509_crt_free(&crt);
    pair_remove(&p);
}

static void test_broken_pairs_refused(void **state)
{
    (void)state;
    pair a, b;
    pair_make(&a);
    pair_make(&b);
    char err[512] = "";
    bool created = false;
    assert_int_equal(pw_tls_ensure(a.cert, a.key, NULL, &created, err, sizeof err), 0);
    assert_int_equal(pw_tls_ensure(b.cert, b.key, NULL, &created, err, sizeof err), 0);

    /* Half a pair: never completed behind the installer's back. */
    unlink(b.key);
    assert_int_equal(pw_tls_ensure(b.cert, b.key, NULL, &created, err, sizeof err), -1);
    assert_false(created);
    assert_non_null(strstr(err, "exists but"));
    assert_non_null(strstr(err, b.key));
    assert_int_equal(access(b.key, F_OK), -1);

    /* Another pair's key. */
    char *other = slurp(a.key);
    spit(b.key, other);
    free(other);
    assert_int_equal(pw_tls_ensure(b.cert, b.key, NULL, &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not belong"));

    /* Not PEM at all. */
    spit(b.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    assert_int_equal(pw_tls_ensure(b.cert, b.key, NULL, &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a usable PEM certificate"));
    char *good = slurp(a.cert);
    spit(b.cert, good);
    free(good);
    spit(b.key, "garbage\n");
    assert_int_equal(pw_tls_ensure(b.cert, b.key, NULL, &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a usable PEM private key"));
    pair_remove(&a);
    pair_remove(&b);
}

/* A folder that cannot be written (here: one that does not exist, which stops root too): the
 * error says which file could not be written and nothing is left half-made. */
static void test_unwritable_folder(void **state)
{
    (void)state;
    char err[512] = "";
    bool created = true;
    assert_int_equal(pw_tls_ensure("/nonexistent-pw/cert.pem", "/nonexistent-pw/key.pem", NULL,
                                   &created, err, sizeof err),
                     -1);
    assert_false(created);
    assert_non_null(strstr(err, "cannot write the HTTPS key"));
}

int main(void)
{
    pw_log_set_level(PW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_wildcard_listen_has_no_ip_of_its_own),
        cmocka_unit_test(test_broken_pairs_refused),
        cmocka_unit_test(test_unwritable_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
