/* One MQTT client connection on the loop (pw_mqtt_conn.h): libmosquitto's socket watched by a
 * uv_poll, its keepalive by a timer, the broker's name resolved by uv_getaddrinfo, TLS through
 * an OpenSSL context of our own, and a lost connection retried with backoff. The meter
 * transport, the state publisher and the fleet uplink each open one. */
#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pw_mqtt_conn.h"
#include "pw_util.h"

#define RETRY_FIRST_MS 500  /* first reconnect after a loss; doubles per failure ... */
#define RETRY_MAX_MS   8000 /* ... up to this: a broker is on the LAN, retrying is cheap */
#define MISC_MS        1000 /* keepalive bookkeeping (mosquitto_loop_misc works in seconds) */
#define MAX_ADDRS      4
#define SYSTEM_CA_PATH "/etc/ssl/certs"
#define ID_MAX         23 /* the client id length every MQTT 3.1.1 broker must take */

enum state { ST_OFF, ST_RESOLVING, ST_CONNECTING, ST_CONNECTED, ST_WAITING };

struct pw_mqtt_conn {
    uv_loop_t *loop;
    const char *what, *section;
    pw_cfg_mqtt broker;
    char client_id[64];
    char *will_topic, *will_payload;
    pw_mqtt_conn_cb cb; /* all NULL once closing: nothing calls back after close */
    bool host_is_ip, closing, lib_init;
    unsigned in_io; /* libmosquitto calls on the stack: it is destroyed only at depth 0 */
    struct mosquitto *mosq;
    SSL_CTX *ssl_ctx;
    enum state state;
    uv_timer_t retry, misc;
    uv_poll_t *poll;             /* on the current socket; NULL between connections */
    uv_getaddrinfo_t *resolving; /* the lookup in flight, NULL if none */
    int poll_events;
    bool tcp_up;     /* the current socket has been writable once: its TCP connect completed */
    bool refused;    /* the broker answered the CONNECT with a refusal */
    bool cert_asked; /* the broker asked for a client certificate, and there is none */
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    size_t n_addrs, next_addr;
    uint32_t backoff_ms;
    unsigned pending;    /* handles and requests not yet closed or finished */
    char problem[200];   /* the connection's problem for people, "" when connected */
    char logged[200];    /* the last problem logged: a failing retry is logged once */
    char tls_error[128]; /* why the last TLS handshake failed, from the verify callback */
    char ssl_error[128]; /* OpenSSL's last error, as libmosquitto logged it */
    char tls_why[200];   /* tls_reason's answer */
    /* The QoS 1/2 publishes not yet acknowledged, by message id: libmosquitto also reports a
     * QoS 0 message once written (maybe inside mosquitto_publish), which is no acknowledgement. */
    uint8_t acked_wanted[65536 / 8];
    pw_mqtt_conn_stats st;
};

static void start_resolve(pw_mqtt_conn *c);
static void connect_next(pw_mqtt_conn *c);

/* The next address the broker's name gave, or a fresh lookup. */
static void on_retry(uv_timer_t *timer)
{
    connect_next(timer->data);
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void free_conn(pw_mqtt_conn *c)
{
    free(c->will_topic);
    free(c->will_payload);
    free(c);
}

/* Closing ends once every handle is closed and every request has come back. */
static void unref(pw_mqtt_conn *c)
{
    if (--c->pending == 0 && c->closing)
        free_conn(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    pw_mqtt_conn *c = h->data;
    if (h != (uv_handle_t *)&c->retry && h != (uv_handle_t *)&c->misc)
        free(h); /* a poll: one per connection */
    unref(c);
}

/* ---- problems, logged once per change ------------------------------------------------ */

/* A connection that failed before the broker answered goes on with the next address the
 * broker's name gave ("localhost": ::1, then 127.0.0.1), at once and without an error. */
static bool will_try_next(const pw_mqtt_conn *c)
{
    return c->state != ST_CONNECTED && !c->refused && c->next_addr < c->n_addrs;
}

__attribute__((format(printf, 2, 3))) static void set_problem(pw_mqtt_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->problem, sizeof c->problem, fmt, ap);
    va_end(ap);
    if (will_try_next(c))
        pw_debug(c->what, "%s; trying the next address", c->problem);
    else if (strcmp(c->problem, c->logged) != 0) {
        pw_error(c->what, "%s", c->problem);
        pw_strlcpy(c->logged, c->problem, sizeof c->logged);
    }
}

/* Why TLS failed, in words: the verify callback's reason for the broker's certificate, else
 * what the broker's alert says about ours. "" when TLS is not the reason. */
static const char *tls_reason(pw_mqtt_conn *c)
{
    char *why = c->tls_why;
    size_t size = sizeof c->tls_why;
    if (*c->tls_error)
        return c->tls_error;
    if (c->cert_asked) { /* mosquitto then closes without an alert, or sends one */
        snprintf(why, size, "the broker wants a client certificate (%s.cert_file, %s.key_file)",
                 c->section, c->section);
        return why;
    }
    if (!*c->ssl_error)
        return "";
    const char *e = c->ssl_error;
    if (strstr(e, "certificate required"))
        snprintf(why, size, "the broker wants a client certificate (%s.cert_file, %s.key_file)",
                 c->section, c->section);
    else if (strstr(e, "unknown ca") || strstr(e, "bad certificate") ||
             strstr(e, "certificate unknown") || strstr(e, "certificate expired"))
        snprintf(why, size, "the broker refused our client certificate (%s.cert_file): %s",
                 c->section, e);
    else
        snprintf(why, size, "%s", e);
    return why;
}

/* ---- the socket ------------------------------------------------------------------------ */

static void close_poll(pw_mqtt_conn *c)
{
    if (!c->poll)
        return;
    /* libmosquitto may already have closed the descriptor (it does before its disconnect
     * callback); the handle is closed at once so that it never watches a reused number. */
    uv_close((uv_handle_t *)c->poll, on_handle_closed);
    c->poll = NULL;
}

/* A TLS client that is still shaking hands. libmosquitto keeps its "want write" flag set from
 * the first WANT_WRITE of the handshake until its first write after it, so polling for
 * writable then would spin; reads drive the handshake (mosquitto_loop_read does it). */
static bool handshaking(pw_mqtt_conn *c)
{
    if (!c->ssl_ctx)
        return false;
    SSL *ssl = mosquitto_ssl_get(c->mosq);
    return ssl && !SSL_is_init_finished(ssl);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(pw_mqtt_conn *c)
{
    if (!c->poll)
        return;
    int events = UV_READABLE;
    if (!c->tcp_up || (mosquitto_want_write(c->mosq) && !handshaking(c)))
        events |= UV_WRITABLE;
    if (events != c->poll_events) {
        uv_poll_start(c->poll, events, on_poll);
        c->poll_events = events;
    }
}

/* The connection is gone (or never came up): close the poll and try again, the next address
 * at once (will_try_next), else after the backoff with a fresh lookup; the user hears why. */
static void lost(pw_mqtt_conn *c)
{
    close_poll(c);
    if (c->closing || c->state == ST_OFF)
        return;
    bool next = will_try_next(c);
    c->state = ST_WAITING;
    if (next) {
        uv_timer_start(&c->retry, on_retry, 0, 0);
        return;
    }
    c->n_addrs = c->next_addr = 0; /* the next try looks the name up again */
    uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->backoff_ms * 2;
    if (c->cb.down)
        c->cb.down(c->cb.ud, c->problem);
}

/* libmosquitto, its TLS context and its library state go, once nothing of it is on the stack.
 * A DISCONNECT goes first if the connection is up (written at once, it is small), so that the
 * broker does not publish the will; its callback only closes the poll. */
static void teardown(pw_mqtt_conn *c)
{
    if (c->mosq) {
        if (c->state == ST_CONNECTED && c->poll)
            mosquitto_disconnect(c->mosq);
        close_poll(c);
        mosquitto_destroy(c->mosq);
        c->mosq = NULL;
    }
    close_poll(c);
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    c->ssl_ctx = NULL;
    if (c->lib_init)
        mosquitto_lib_cleanup();
    c->lib_init = false;
    c->state = ST_OFF;
}

/* The connection failed or was lost: why, in words, and a retry. Before the broker's CONNACK a
 * TLS reason comes first (a broker that wants a client certificate may just reset the
 * connection). */
static void failed(pw_mqtt_conn *c, const char *why)
{
    const char *tls = c->state == ST_CONNECTED ? "" : tls_reason(c);
    if (*tls)
        set_problem(c, "TLS with broker %s:%u failed: %s", c->broker.host, c->broker.port, tls);
    else
        set_problem(c, "%s broker %s:%u: %s",
                    c->state == ST_CONNECTED ? "lost the connection to" : "cannot connect to",
                    c->broker.host, c->broker.port, why);
    lost(c);
}

/* After every libmosquitto call: a socket it closed without a callback (a failed TLS handshake
 * returns from mosquitto_loop_read that way) is a lost connection too. */
static void after_io(pw_mqtt_conn *c, int rc)
{
    if (c->closing) {
        if (c->in_io == 0)
            teardown(c); /* closed from one of its callbacks */
        return;
    }
    if (!c->poll)
        return; /* the disconnect callback has dealt with it */
    if (mosquitto_socket(c->mosq) < 0 || rc != MOSQ_ERR_SUCCESS) {
        const char *tls = tls_reason(c);
        if (*tls)
            set_problem(c, "TLS with broker %s:%u failed: %s", c->broker.host, c->broker.port, tls);
        else
            set_problem(c, "connection to broker %s:%u failed: %s", c->broker.host, c->broker.port,
                        mosquitto_strerror(rc));
        lost(c);
        return;
    }
    update_poll(c);
}

enum io { IO_READ, IO_WRITE, IO_MISC };

/* One libmosquitto step; its callbacks run inside it. libmosquitto asks SSL_get_error after a
 * failed SSL call, which reads the thread's OpenSSL error queue: it must start empty, not hold
 * what another connection or a refused key file left there. */
static void io(pw_mqtt_conn *c, enum io what)
{
    ERR_clear_error();
    c->in_io++;
    int rc = what == IO_READ    ? mosquitto_loop_read(c->mosq, 1)
             : what == IO_WRITE ? mosquitto_loop_write(c->mosq, 1)
                                : mosquitto_loop_misc(c->mosq);
    c->in_io--;
    after_io(c, rc);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pw_mqtt_conn *c = h->data;
    if (status < 0) {
        /* libuv reports a socket error (a reset, a refused connect) as UV_EBADF and stops
         * the handle; the socket says what it was. */
        int err = 0;
        socklen_t len = sizeof err;
        int fd = mosquitto_socket(c->mosq);
        if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = 0;
        failed(c, err ? strerror(err) : uv_strerror(status));
        return;
    }
    if (events & UV_READABLE)
        io(c, IO_READ);
    if (c->poll && !c->closing && (events & UV_WRITABLE)) {
        bool first = !c->tcp_up;
        c->tcp_up = true;
        /* libmosquitto's own loop runs its handshake step when the socket turns writable;
         * mosquitto_loop_read is the public way in (it runs that step while one is due). */
        io(c, first && handshaking(c) ? IO_READ : IO_WRITE);
    }
}

static void on_misc(uv_timer_t *timer)
{
    pw_mqtt_conn *c = timer->data;
    if (c->poll)
        io(c, IO_MISC);
}

/* ---- connecting ------------------------------------------------------------------------ */

static void connect_next(pw_mqtt_conn *c)
{
    if (c->closing)
        return;
    if (c->next_addr >= c->n_addrs) {
        start_resolve(c);
        return;
    }
    const char *addr = c->addrs[c->next_addr++];
    c->refused = false;
    c->tcp_up = false;
    c->cert_asked = false;
    *c->tls_error = *c->ssl_error = '\0';
    errno = 0;
    ERR_clear_error(); /* as in io() */
    int keepalive = c->broker.keepalive_s ? c->broker.keepalive_s : 30;
    int rc = mosquitto_connect_async(c->mosq, addr, c->broker.port, keepalive);
    c->state = ST_CONNECTING;
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(c->mosq) < 0) {
        const char *tls = tls_reason(c);
        if (*tls)
            set_problem(c, "TLS with broker %s:%u failed: %s", c->broker.host, c->broker.port, tls);
        else
            set_problem(c, "cannot connect to broker %s:%u (%s): %s", c->broker.host,
                        c->broker.port, addr,
                        rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        lost(c);
        return;
    }
    c->poll = pw_xmalloc(sizeof *c->poll);
    c->poll_events = 0;
    if (uv_poll_init_socket(c->loop, c->poll, mosquitto_socket(c->mosq)) != 0) {
        free(c->poll);
        c->poll = NULL;
        set_problem(c, "cannot watch the broker connection's socket");
        lost(c);
        return;
    }
    c->poll->data = c;
    c->pending++;
    update_poll(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pw_mqtt_conn *c = req->data;
    free(req);
    c->resolving = NULL;
    c->n_addrs = c->next_addr = 0;
    for (struct addrinfo *a = status == 0 ? res : NULL; a && c->n_addrs < MAX_ADDRS;
         a = a->ai_next) {
        char *out = c->addrs[c->n_addrs];
        if (a->ai_family == AF_INET &&
            uv_ip4_name((struct sockaddr_in *)a->ai_addr, out, INET6_ADDRSTRLEN) == 0)
            c->n_addrs++;
        else if (a->ai_family == AF_INET6 &&
                 uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, out, INET6_ADDRSTRLEN) == 0)
            c->n_addrs++;
    }
    uv_freeaddrinfo(res);
    if (!c->closing) {
        if (status < 0 || !c->n_addrs) {
            c->state = ST_RESOLVING;
            set_problem(c, "broker host %s not found: %s", c->broker.host,
                        status < 0 ? uv_strerror(status) : "no address");
            lost(c);
        } else {
            connect_next(c);
        }
    }
    unref(c);
}

static void start_resolve(pw_mqtt_conn *c)
{
    if (c->closing)
        return;
    c->state = ST_RESOLVING;
    uv_getaddrinfo_t *req = pw_xmalloc(sizeof *req);
    req->data = c;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(c->loop, req, on_resolved, c->broker.host, NULL, &hints);
    if (rc != 0) {
        free(req);
        set_problem(c, "cannot look up broker host %s: %s", c->broker.host, uv_strerror(rc));
        lost(c);
        return;
    }
    c->resolving = req;
    c->pending++;
}

/* ---- libmosquitto's callbacks (they run inside the mosquitto_loop_* calls above) -------- */

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags)
{
    (void)m;
    pw_mqtt_conn *c = ud;
    if (c->closing)
        return;
    if (rc != 0) {
        char hint[96] = ""; /* 4: bad user name or password, 5: not authorised */
        if (rc == 4 || rc == 5)
            snprintf(hint, sizeof hint, " Check %s.username and %s.password.", c->section,
                     c->section);
        c->refused = true;
        set_problem(c, "broker %s:%u refused the connection: %s%s", c->broker.host, c->broker.port,
                    mosquitto_connack_string(rc), hint);
        return; /* libmosquitto closes the connection and calls on_disconnect */
    }
    c->state = ST_CONNECTED;
    c->backoff_ms = RETRY_FIRST_MS;
    *c->problem = *c->logged = '\0';
    c->st.connects++;
    pw_debug(c->what, "connected to broker %s:%u%s as %s", c->broker.host, c->broker.port,
             c->ssl_ctx ? " over TLS" : "", c->client_id);
    if (c->cb.up)
        c->cb.up(c->cb.ud, (flags & 1) != 0);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    pw_mqtt_conn *c = ud;
    const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
    if (c->closing) {
        close_poll(c);
        return;
    }
    if (c->refused)
        lost(c); /* on_connect said why */
    else
        failed(c, why);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    pw_mqtt_conn *c = ud;
    if (c->closing || !msg->topic)
        return;
    c->st.rx++;
    if (c->cb.message)
        c->cb.message(c->cb.ud, msg->topic, msg->payload,
                      msg->payloadlen < 0 ? 0 : (size_t)msg->payloadlen, msg->retain);
}

static bool take_ack(pw_mqtt_conn *c, int mid)
{
    uint8_t *byte = &c->acked_wanted[(unsigned)mid / 8 % sizeof c->acked_wanted];
    uint8_t bit = (uint8_t)(1u << ((unsigned)mid % 8));
    bool wanted = (*byte & bit) != 0;
    *byte &= (uint8_t)~bit;
    return wanted;
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    pw_mqtt_conn *c = ud;
    if (take_ack(c, mid) && !c->closing && c->cb.published)
        c->cb.published(c->cb.ud, mid);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    pw_mqtt_conn *c = ud;
    if (!c->closing && c->cb.subscribed)
        c->cb.subscribed(c->cb.ud, mid, n, granted);
}

static void on_log(struct mosquitto *m, void *ud, int level, const char *text)
{
    (void)m;
    pw_mqtt_conn *c = ud;
    if (!(level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)))
        return;
    pw_debug(c->what, "libmosquitto: %s", text);
    /* "OpenSSL Error[0]: error:0A00045C:SSL routines::tlsv13 alert certificate required":
     * the broker's alert, kept for the problem text. */
    const char *e = strstr(text, "OpenSSL Error");
    const char *routines = e ? strstr(e, "routines::") : NULL;
    if (routines)
        pw_strlcpy(c->ssl_error, routines + strlen("routines::"), sizeof c->ssl_error);
    else if (e && !*c->ssl_error)
        pw_strlcpy(c->ssl_error, e, sizeof c->ssl_error);
}

/* ---- TLS --------------------------------------------------------------------------------- */

static int on_verify(int ok, X509_STORE_CTX *x)
{
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
        pw_mqtt_conn *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
        int err = X509_STORE_CTX_get_error(x);
        bool name = err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH;
        snprintf(c->tls_error, sizeof c->tls_error, "the broker's certificate is refused: %s%s%s%s",
                 X509_verify_cert_error_string(err), name ? " (it is not for " : "",
                 name ? c->section : "", name ? ".host)" : "");
    }
    return ok;
}

/* libmosquitto names the numeric address we hand it as the TLS server name; the broker's real
 * name goes in before the client hello is built. */
static void on_tls_info(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if (!(where & SSL_CB_HANDSHAKE_START))
        return;
    pw_mqtt_conn *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!c->host_is_ip)
        SSL_set_tlsext_host_name((SSL *)ssl, c->broker.host);
}

/* The broker asks for a client certificate and none is configured: the handshake goes on
 * without one (the broker decides), and a failure is explained. */
static int on_cert_asked(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)x509;
    (void)pkey;
    pw_mqtt_conn *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    c->cert_asked = true;
    return 0;
}

/* An encrypted private key would make OpenSSL ask for its pass phrase on the terminal: it
 * fails instead (the appliance has nobody to ask). */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)ud;
    return 0;
}

/* The client certificate and its key, for brokers that ask for one. */
static int load_client_pair(pw_mqtt_conn *c, SSL_CTX *ctx, char *err, size_t err_size)
{
    const pw_cfg_mqtt *b = &c->broker;
    if (!*b->cert_file && !*b->key_file) {
        SSL_CTX_set_client_cert_cb(ctx, on_cert_asked);
        return 0;
    }
    if (!*b->cert_file || !*b->key_file) {
        snprintf(err, err_size, "%s.cert_file and %s.key_file must be set together", c->section,
                 c->section);
        return -1;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, b->cert_file) != 1) {
        snprintf(err, err_size, "cannot load the client certificate from %.160s (%s.cert_file)",
                 b->cert_file, c->section);
        return -1;
    }
    bool loaded = SSL_CTX_use_PrivateKey_file(ctx, b->key_file, SSL_FILETYPE_PEM) == 1;
    /* OpenSSL 3 checks the pair as it loads the key; SSL_CTX_check_private_key says it too. */
    if (loaded ? SSL_CTX_check_private_key(ctx) != 1
               : ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        snprintf(err, err_size, "the key in %.160s is not the client certificate's (%s.key_file)",
                 b->key_file, c->section);
        return -1;
    }
    if (!loaded) {
        snprintf(err, err_size,
                 "cannot load the private key from %.160s (%s.key_file; PEM without a pass "
                 "phrase)",
                 b->key_file, c->section);
        return -1;
    }
    return 0;
}

/* Our own TLS context instead of mosquitto_tls_set: libmosquitto checks the certificate
 * against the host it connects to, and that is the numeric address (so that it never
 * resolves on the loop), not the name in the config. Here OpenSSL checks the chain against the
 * CA file (or the system's CAs) and the configured name or address, and the handshake fails
 * otherwise; libmosquitto is told to use the context as it is (it takes a reference). */
static int setup_tls(pw_mqtt_conn *c, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, err_size, "cannot create a TLS context");
        return -1;
    }
    c->ssl_ctx = ctx;
    SSL_CTX_set_app_data(ctx, c);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
    SSL_CTX_set_info_callback(ctx, on_tls_info);
    const char *ca = *c->broker.ca_file ? c->broker.ca_file : NULL;
    if (SSL_CTX_load_verify_locations(ctx, ca, ca ? NULL : SYSTEM_CA_PATH) != 1) {
        /* A long path is cut to what the message has room for. */
        snprintf(err, err_size, "cannot load the CA certificates from %.160s (%s.ca_file)",
                 ca ? ca : SYSTEM_CA_PATH, c->section);
        return -1;
    }
    if (load_client_pair(c, ctx, err, err_size) != 0)
        return -1;
    X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = c->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, c->broker.host)
                           : X509_VERIFY_PARAM_set1_host(p, c->broker.host, 0);
    if (ok != 1 || mosquitto_int_option(c->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) ||
        mosquitto_void_option(c->mosq, MOSQ_OPT_SSL_CTX, ctx)) {
        snprintf(err, err_size, "cannot set up TLS for broker %s", c->broker.host);
        return -1;
    }
    return 0;
}

/* ---- the client -------------------------------------------------------------------------- */

/* The libmosquitto client with everything set before its first CONNECT. */
static int setup_client(pw_mqtt_conn *c, const pw_mqtt_conn_opts *o, char *err, size_t err_size)
{
    c->mosq = mosquitto_new(*c->client_id ? c->client_id : NULL, o->clean_session, c);
    if (!c->mosq) {
        snprintf(err, err_size, "cannot create an MQTT client: %s",
                 errno == EINVAL ? "a session kept by the broker needs a client id"
                                 : strerror(errno));
        return -1;
    }
    mosquitto_connect_with_flags_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_message_callback_set(c->mosq, on_message);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
    mosquitto_log_callback_set(c->mosq, on_log);
    if (*c->broker.username &&
        mosquitto_username_pw_set(c->mosq, c->broker.username,
                                  *c->broker.password ? c->broker.password : NULL) != 0) {
        snprintf(err, err_size, "cannot set the MQTT user name (%s.username)", c->section);
        return -1;
    }
    if (c->will_topic &&
        mosquitto_will_set(c->mosq, c->will_topic, (int)strlen(c->will_payload), c->will_payload,
                           o->will_qos, o->will_retain) != MOSQ_ERR_SUCCESS) {
        snprintf(err, err_size, "cannot set the last will on topic %.120s", c->will_topic);
        return -1;
    }
    if (o->max_inflight &&
        mosquitto_int_option(c->mosq, MOSQ_OPT_SEND_MAXIMUM, (int)o->max_inflight) != 0) {
        snprintf(err, err_size, "cannot set %u messages in flight", o->max_inflight);
        return -1;
    }
    if (c->broker.tls)
        return setup_tls(c, err, err_size);
    if (*c->broker.cert_file || *c->broker.key_file) {
        snprintf(err, err_size, "a client certificate (%s.cert_file) needs %s.tls", c->section,
                 c->section);
        return -1;
    }
    return 0;
}

pw_mqtt_conn *pw_mqtt_conn_new(uv_loop_t *loop, const pw_mqtt_conn_opts *opts,
                               const pw_mqtt_conn_cb *cb, char *err, size_t err_size)
{
    pw_mqtt_conn *c = pw_xcalloc(1, sizeof *c);
    c->loop = loop;
    c->what = opts->what ? opts->what : "mqtt";
    c->section = opts->section ? opts->section : "mqtt";
    c->broker = opts->broker;
    c->cb = cb ? *cb : (pw_mqtt_conn_cb){0};
    pw_strlcpy(c->client_id, *opts->client_id ? opts->client_id : opts->broker.client_id,
               sizeof c->client_id);
    if (opts->will_topic) {
        c->will_topic = pw_xstrdup(opts->will_topic);
        c->will_payload = pw_xstrdup(opts->will_payload ? opts->will_payload : "");
    }
    struct in6_addr a6;
    struct in_addr a4;
    c->host_is_ip = inet_pton(AF_INET, c->broker.host, &a4) == 1 ||
                    inet_pton(AF_INET6, c->broker.host, &a6) == 1;
    c->backoff_ms = RETRY_FIRST_MS;
    /* Counted in libmosquitto 2.0: each connection holds one reference, dropped in teardown.
     * Loop thread only, as libmosquitto's library state is not thread-safe. */
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        snprintf(err, err_size, "cannot initialise libmosquitto");
        goto fail;
    }
    c->lib_init = true;
    if (!*c->broker.host) {
        snprintf(err, err_size, "no broker (%s.host)", c->section);
        goto fail;
    }
    if (setup_client(c, opts, err, err_size) != 0)
        goto fail;
    uv_timer_init(loop, &c->retry);
    uv_timer_init(loop, &c->misc);
    c->retry.data = c->misc.data = c;
    c->pending = 2;
    uv_timer_start(&c->misc, on_misc, MISC_MS, MISC_MS);
    /* The first attempt starts from the loop, so that no callback runs inside new. */
    uv_timer_start(&c->retry, on_retry, 0, 0);
    return c;
fail:
    ERR_clear_error(); /* what OpenSSL said is in err */
    teardown(c);
    free_conn(c);
    return NULL;
}

void pw_mqtt_conn_close(pw_mqtt_conn *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->cb = (pw_mqtt_conn_cb){0};
    if (c->in_io == 0)
        teardown(c); /* else after_io does, once libmosquitto has returned */
    /* A lookup in flight comes back with UV_ECANCELED, or with its answer if a worker has it
     * already: either way on_resolved drops its reference. */
    if (c->resolving)
        uv_cancel((uv_req_t *)c->resolving);
    uv_close((uv_handle_t *)&c->retry, on_handle_closed);
    uv_close((uv_handle_t *)&c->misc, on_handle_closed);
}

bool pw_mqtt_conn_up(const pw_mqtt_conn *c)
{
    return c && !c->closing && c->state == ST_CONNECTED;
}

const char *pw_mqtt_conn_problem(const pw_mqtt_conn *c)
{
    return c->state == ST_CONNECTED ? "" : c->problem;
}

const char *pw_mqtt_conn_client_id(const pw_mqtt_conn *c)
{
    return c->client_id;
}

/* libmosquitto writes at once what fits; the rest waits for the socket to turn writable. A
 * write error surfaces at the next read or keepalive, as a lost connection. */
static int sent(pw_mqtt_conn *c, int rc)
{
    if (c->closing) { /* closed by a callback inside the call */
        if (c->in_io == 0)
            teardown(c);
        return -1;
    }
    if (rc != MOSQ_ERR_SUCCESS)
        return -1;
    if (c->in_io == 0)
        update_poll(c);
    return 0;
}

int pw_mqtt_conn_publish(pw_mqtt_conn *c, const char *topic, const void *payload, size_t len,
                         int qos, bool retain, int *mid)
{
    int rc = MOSQ_ERR_NO_CONN, id = 0;
    if (pw_mqtt_conn_up(c) && len <= INT32_MAX) {
        c->in_io++;
        rc = mosquitto_publish(c->mosq, &id, topic, (int)len, payload, qos, retain);
        c->in_io--;
    }
    if (rc == MOSQ_ERR_SUCCESS && qos > 0)
        c->acked_wanted[(unsigned)id / 8 % sizeof c->acked_wanted] |= (uint8_t)(1u << (id % 8));
    if (sent(c, rc) != 0) {
        c->st.tx_errors++;
        return -1;
    }
    if (mid)
        *mid = id;
    c->st.tx++;
    return 0;
}

int pw_mqtt_conn_subscribe(pw_mqtt_conn *c, const char *filter, int qos, int *mid)
{
    if (!pw_mqtt_conn_up(c))
        return -1;
    c->in_io++;
    int rc = mosquitto_subscribe(c->mosq, mid, filter, qos);
    c->in_io--;
    return sent(c, rc);
}

int pw_mqtt_conn_unsubscribe(pw_mqtt_conn *c, const char *filter)
{
    if (!pw_mqtt_conn_up(c))
        return -1;
    c->in_io++;
    int rc = mosquitto_unsubscribe(c->mosq, NULL, filter);
    c->in_io--;
    return sent(c, rc);
}

const pw_mqtt_conn_stats *pw_mqtt_conn_stats_get(const pw_mqtt_conn *c)
{
    return &c->st;
}

void pw_mqtt_conn_client_id_for(const char *site_name, const char *suffix, char *out,
                                size_t out_size)
{
    if (!out_size)
        return;
    static const char head[] = "phasewise-";
    size_t tail = suffix ? strlen(suffix) : 0;
    size_t room = ID_MAX > sizeof head - 1 + tail ? ID_MAX - tail : sizeof head - 1;
    size_t n = pw_strlcpy(out, head, out_size);
    for (const char *s = site_name ? site_name : ""; *s && n < room && n + 1 < out_size; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
            out[n++] = *s;
    out[n < out_size ? n : out_size - 1] = '\0';
    if (suffix)
        pw_strlcpy(out + strlen(out), suffix, out_size - strlen(out));
}
