/* HTTPS certificate for the dashboard: use the pair the installer supplies, or generate a
 * self-signed one with mbedTLS on first start. */
#ifndef PW_TLS_H
#define PW_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* Makes sure cert_path and key_path hold a certificate and its private key (PEM). When neither
 * file exists, generates an EC P-256 key (written with mode 0600) and a self-signed
 * certificate valid for ten years, naming "localhost", this host's name and, unless it is a
 * wildcard, listen_addr (an IPv4 address; may be NULL) as subject alternative names; *created
 * tells whether that happened. Existing files are checked, never replaced: both must parse and
 * the key must match the certificate. Returns 0, or -1 with a message a person can act on in
 * err. */
int pw_tls_ensure(const char *cert_path, const char *key_path, const char *listen_addr,
                  bool *created, char *err, size_t err_size);

#endif
