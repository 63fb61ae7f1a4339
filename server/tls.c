/* The dashboard's HTTPS certificate: an installer's own pair is checked and used as it is;
 * without one, an EC P-256 key and a self-signed certificate are generated with mbedTLS (CTR-DRBG
 * seeded from the system's entropy) and kept in the data folder, the key with mode 0600. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pw_util.h"

#define TLS_PEM_MAX      4096
#define TLS_VALID_YEARS  10
#define TLS_SERIAL_BYTES 16
#define TLS_SUBJECT      "CN=phasewise,O=phasewise appliance"

typedef struct tls_gen {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context key;
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
} tls_gen;

static int tls_fail(char *err, size_t err_size, int mbed_rc, const char *what)
{
    char msg[128] = "";
    if (mbed_rc)
        mbedtls_strerror(mbed_rc, msg, sizeof msg);
    snprintf(err, err_size, "%s%s%s", what, mbed_rc ? ": " : "", msg);
    return -1;
}

/* Appends one GeneralName (tag [n], primitive) to an ASN.1 buffer being written backwards.
 * Returns the bytes written or a negative mbedTLS error. */
static int tls_general_name(unsigned char **p, unsigned char *start, unsigned char tag,
                            const void *data, size_t n)
{
    int ret;
    size_t len = 0;
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, data, n));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, n));
    MBEDTLS_ASN1_CHK_ADD(len,
                         mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | tag));
    return (int)len;
}

/* Browsers match a certificate only against its subjectAltName: the names a person may type. */
static int tls_set_san(mbedtls_x509write_cert *crt, const char *listen_addr)
{
    unsigned char buf[512], *p = buf + sizeof buf;
    int ret;
    size_t len = 0;
    struct in_addr ip;
    if (listen_addr && inet_pton(AF_INET, listen_addr, &ip) == 1 && ip.s_addr != INADDR_ANY &&
        ip.s_addr != htonl(INADDR_LOOPBACK))
        MBEDTLS_ASN1_CHK_ADD(len, tls_general_name(&p, buf, 7, &ip, 4));
    ip.s_addr = htonl(INADDR_LOOPBACK);
    MBEDTLS_ASN1_CHK_ADD(len, tls_general_name(&p, buf, 7, &ip, 4));
    char host[64];
    if (gethostname(host, sizeof host) == 0 && host[0] && strcmp(host, "localhost") != 0 &&
        strnlen(host, sizeof host) < sizeof host)
        MBEDTLS_ASN1_CHK_ADD(len, tls_general_name(&p, buf, 2, host, strlen(host)));
    MBEDTLS_ASN1_CHK_ADD(len, tls_general_name(&p, buf, 2, "localhost", 9));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p,
                                               len);
}

/* extendedKeyUsage = serverAuth: what the certificate is for, as current browsers expect. */
static int tls_set_server_auth(mbedtls_x509write_cert *crt)
{
    unsigned char buf[32], *p = buf + sizeof buf;
    int ret;
    size_t len = 0;
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
    MBEDTLS_ASN1_CHK_ADD(
        len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
                                               p, len);
}

/* "YYYYMMDDhhmmss" in UTC, the form mbedtls_x509write_crt_set_validity takes. */
static void tls_time(time_t t, char out[16])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

static int tls_set_validity(mbedtls_x509write_cert *crt)
{
    char from[16], to[16];
    time_t now = time(NULL);
    /* A day of slack for a clock that is a little behind the browser's. */
    tls_time(now - 86400, from);
    tls_time(now + (time_t)TLS_VALID_YEARS * 365 * 86400, to);
    return mbedtls_x509write_crt_set_validity(crt, from, to);
}

static int tls_set_serial(tls_gen *g)
{
    unsigned char raw[TLS_SERIAL_BYTES];
    int rc = mbedtls_ctr_drbg_random(&g->drbg, raw, sizeof raw);
    if (rc)
        return rc;
    raw[0] &= 0x7f; /* serial numbers are positive */
    raw[0] |= 0x01; /* and never shorter than they look */
    if ((rc = mbedtls_mpi_read_binary(&g->serial, raw, sizeof raw)) != 0)
        return rc;
    return mbedtls_x509write_crt_set_serial(&g->crt, &g->serial);
}

/* Fills the certificate's fields for g->key; returns 0 or an mbedTLS error. */
static int tls_build(tls_gen *g, const char *listen_addr)
{
    int rc;
    mbedtls_x509write_crt_set_version(&g->crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&g->crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&g->crt, &g->key);
    mbedtls_x509write_crt_set_issuer_key(&g->crt, &g->key);
    if ((rc = mbedtls_x509write_crt_set_subject_name(&g->crt, TLS_SUBJECT)) ||
        (rc = mbedtls_x509write_crt_set_issuer_name(&g->crt, TLS_SUBJECT)) ||
        (rc = tls_set_serial(g)) || (rc = tls_set_validity(&g->crt)) ||
        (rc = mbedtls_x509write_crt_set_basic_constraints(&g->crt, 0, -1)) ||
        (rc = mbedtls_x509write_crt_set_subject_key_identifier(&g->crt)) ||
        (rc = mbedtls_x509write_crt_set_authority_key_identifier(&g->crt)) ||
        (rc = mbedtls_x509write_crt_set_key_usage(&g->crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) ||
        (rc = tls_set_server_auth(&g->crt)) || (rc = tls_set_san(&g->crt, listen_addr)))
        return rc;
    return 0;
}

static int tls_generate(const char *cert_path, const char *key_path, const char *listen_addr,
                        char *err, size_t err_size)
{
    static const char personal[] = "phasewise-tls";
    tls_gen g;
    unsigned char key_pem[TLS_PEM_MAX], crt_pem[TLS_PEM_MAX];
    int ret = -1, rc;
    mbedtls_entropy_init(&g.entropy);
    mbedtls_ctr_drbg_init(&g.drbg);
    mbedtls_pk_init(&g.key);
    mbedtls_x509write_crt_init(&g.crt);
    mbedtls_mpi_init(&g.serial);

    if ((rc = mbedtls_ctr_drbg_seed(&g.drbg, mbedtls_entropy_func, &g.entropy,
                                    (const unsigned char *)personal, sizeof personal - 1))) {
        tls_fail(err, err_size, rc, "cannot seed the random generator");
        goto out;
    }
    if ((rc = mbedtls_pk_setup(&g.key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) ||
        (rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(g.key),
                                  mbedtls_ctr_drbg_random, &g.drbg)) ||
        (rc = mbedtls_pk_write_key_pem(&g.key, key_pem, sizeof key_pem))) {
        tls_fail(err, err_size, rc, "cannot generate the HTTPS key");
        goto out;
    }
    if ((rc = tls_build(&g, listen_addr)) ||
        (rc = mbedtls_x509write_crt_pem(&g.crt, crt_pem, sizeof crt_pem, mbedtls_ctr_drbg_random,
                                        &g.drbg))) {
        tls_fail(err, err_size, rc, "cannot create the self-signed certificate");
        goto out;
    }
    /* The key first: a certificate without its key would block the next start. */
    char why[256];
    if (pw_write_file_atomic(key_path, key_pem, strlen((char *)key_pem), 0600, why, sizeof why)) {
        snprintf(err, err_size, "cannot write the HTTPS key: %s", why);
        goto out;
    }
    if (pw_write_file_atomic(cert_path, crt_pem, strlen((char *)crt_pem), 0644, why, sizeof why)) {
        snprintf(err, err_size, "cannot write the HTTPS certificate: %s", why);
        unlink(key_path);
        goto out;
    }
    ret = 0;
out:
    explicit_bzero(key_pem, sizeof key_pem);
    mbedtls_mpi_free(&g.serial);
    mbedtls_x509write_crt_free(&g.crt);
    mbedtls_pk_free(&g.key);
    mbedtls_ctr_drbg_free(&g.drbg);
    mbedtls_entropy_free(&g.entropy);
    return ret;
}

/* An installer's pair, or ours from an earlier start: it must be usable before lws gets it,
 * so that a mistake is reported by file name rather than as a failed listen. */
static int tls_check(const char *cert_path, const char *key_path, char *err, size_t err_size)
{
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    int ret = -1, rc;
    char what[1100];
    if ((rc = mbedtls_x509_crt_parse_file(&crt, cert_path)) != 0) {
        snprintf(what, sizeof what, "%s is not a usable PEM certificate", cert_path);
        tls_fail(err, err_size, rc, what);
    } else if ((rc = mbedtls_pk_parse_keyfile(&key, key_path, NULL)) != 0) {
        snprintf(what, sizeof what,
                 "%s is not a usable PEM private key (a key protected by a passphrase is not "
                 "supported)",
                 key_path);
        tls_fail(err, err_size, rc, what);
    } else if ((rc = mbedtls_pk_check_pair(&crt.pk, &key)) != 0) {
        snprintf(what, sizeof what, "the key %s does not belong to the certificate %s", key_path,
                 cert_path);
        tls_fail(err, err_size, rc, what);
    } else {
        ret = 0;
    }
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&crt);
    return ret;
}

int pw_tls_ensure(const char *cert_path, const char *key_path, const char *listen_addr,
                  bool *created, char *err, size_t err_size)
{
    *created = false;
    bool have_cert = access(cert_path, F_OK) == 0, have_key = access(key_path, F_OK) == 0;
    if (have_cert != have_key) {
        snprintf(err, err_size,
                 "%s exists but %s does not: supply both, or remove the one there to have a "
                 "self-signed pair generated",
                 have_cert ? cert_path : key_path, have_cert ? key_path : cert_path);
        return -1;
    }
    if (!have_cert) {
        if (tls_generate(cert_path, key_path, listen_addr, err, err_size) != 0)
            return -1;
        *created = true;
    }
    return tls_check(cert_path, key_path, err, err_size);
}
