/* The MQTT transport: node meters read from an MQTT broker (HAN/P1 bridges such as the AMS
 * reader) through Debian's libmosquitto 2.0, driven by the loop instead of its own thread: the
 * broker's name is resolved with uv_getaddrinfo and libmosquitto gets the numeric address, so
 * it never resolves on the loop; a uv_poll on its socket calls mosquitto_loop_read/_write, a
 * one-second timer calls mosquitto_loop_misc (keepalive). Payloads are parsed by the pure
 * mqtt_feed.c; this file only moves messages and keeps the connection up, reconnecting with
 * backoff. Meters only: it sends nothing to chargers. A commissioning test read subscribes to a
 * meter's topics on the same connection for up to TEST_WAIT_MS, takes one reading for its answer
 * (never for the core) and unsubscribes from what no configured meter uses. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <mosquitto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mqtt_feed.h"
#include "pw_transport.h"
#include "pw_util.h"

#define RETRY_FIRST_MS 500  /* first reconnect after a loss; doubles per failure ... */
#define RETRY_MAX_MS   8000 /* ... up to this: a meter's broker is on the LAN, retrying is cheap */
#define MISC_MS        1000 /* keepalive bookkeeping (mosquitto_loop_misc works in seconds) */
#define MAX_ADDRS      4
#define SYSTEM_CA_PATH "/etc/ssl/certs"
#define TEST_WAIT_MS   10000 /* a test read waits this long for a reading */

enum mq_state { MQ_OFF, MQ_RESOLVING, MQ_CONNECTING, MQ_CONNECTED, MQ_WAITING };

struct mqtt;

/* A test read in flight: freed, and answered, once its timer has closed. */
typedef struct mq_test {
    struct mqtt *t;
    uv_timer_t timer; /* the deadline */
    pw_mqtt_feed feed;
    bool held[PW_LINES]; /* its topic k was subscribed for the test (no configured meter's) */
    int mid[PW_LINES];   /* the SUBSCRIBE of topic k, to match the broker's SUBACK */
    bool retained;       /* a retained message came, and was not taken */
    bool ended;
    pw_transport_test_done done;
    void *ud;
    uint64_t start_ns;
    pw_transport_test_result r;
} mq_test;

typedef struct mqtt {
    pw_transport super;
    pw_transport_env env;
    const pw_cfg *cfg;  /* in force: the meters and their topics */
    pw_cfg_mqtt broker; /* as the appliance started: the connection is opened from it */
    char client_id[64];
    bool host_is_ip;
    bool timers_open, activated, lib_init, stopping;
    struct mosquitto *mosq;
    SSL_CTX *ssl_ctx;
    enum mq_state state;
    uv_timer_t retry, misc;
    uv_poll_t *poll;             /* on the current socket; NULL between connections */
    uv_getaddrinfo_t *resolving; /* the lookup in flight, NULL if none */
    int poll_events;
    bool tcp_up;  /* the current socket has been writable once: its TCP connect completed */
    bool refused; /* the broker answered the CONNECT with a refusal */
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    size_t n_addrs, next_addr;
    uint32_t backoff_ms;
    unsigned pending;    /* handles and requests not yet closed or finished */
    char problem[200];   /* the broker connection's problem for people, "" when connected */
    char logged[200];    /* the last problem logged: a failing retry is logged once */
    char tls_error[128]; /* why the last TLS handshake failed, from the verify callback */
    pw_mqtt_feed *feeds; /* parallel to cfg->nodes */
    bool *is_feed;       /* the node's meter is an MQTT feed that init accepted */
    char (*node_problem)[224];
    size_t n_nodes;
    mq_test *test; /* the test read in flight, NULL if none */
    pw_transport_stats st;
} mqtt;

static void start_resolve(mqtt *t);
static void connect_next(mqtt *t);
static void update_poll(mqtt *t);
static int activate(mqtt *t);

/* The next address the broker's name gave, or a fresh lookup. */
static void on_retry(uv_timer_t *timer)
{
    connect_next(timer->data);
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void free_mqtt(mqtt *t)
{
    free(t->feeds);
    free(t->is_feed);
    free(t->node_problem);
    free(t);
}

/* Stopping ends once every handle is closed and every request has come back. */
static void unref(mqtt *t)
{
    if (--t->pending == 0 && t->stopping)
        free_mqtt(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    mqtt *t = h->data;
    if (h != (uv_handle_t *)&t->retry && h != (uv_handle_t *)&t->misc)
        free(h); /* a poll: one per connection */
    unref(t);
}

/* ---- problems, logged once per change ------------------------------------------------ */

/* A connection that failed before the broker answered goes on with the next address the
 * broker's name gave ("localhost": ::1, then 127.0.0.1), at once and without an error. */
static bool will_try_next(const mqtt *t)
{
    return t->state != MQ_CONNECTED && !t->refused && t->next_addr < t->n_addrs;
}

__attribute__((format(printf, 2, 3))) static void set_problem(mqtt *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->problem, sizeof t->problem, fmt, ap);
    va_end(ap);
    if (will_try_next(t))
        pw_debug("mqtt", "%s; trying the next address", t->problem);
    else if (strcmp(t->problem, t->logged) != 0) {
        pw_error("mqtt", "%s", t->problem);
        pw_strlcpy(t->logged, t->problem, sizeof t->logged);
    }
}

/* ---- the socket ------------------------------------------------------------------------ */

static void close_poll(mqtt *t)
{
    if (!t->poll)
        return;
    /* libmosquitto may already have closed the descriptor (it does before its disconnect
     * callback); the handle is closed at once so that it never watches a reused number. */
    uv_close((uv_handle_t *)t->poll, on_handle_closed);
    t->poll = NULL;
}

/* A TLS client that is still shaking hands. libmosquitto keeps its "want write" flag set from
 * the first WANT_WRITE of the handshake until its first write after it, so polling for
 * writable then would spin; reads drive the handshake (mosquitto_loop_read does it). */
static bool handshaking(mqtt *t)
{
    if (!t->ssl_ctx)
        return false;
    SSL *ssl = mosquitto_ssl_get(t->mosq);
    return ssl && !SSL_is_init_finished(ssl);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(mqtt *t)
{
    if (!t->poll)
        return;
    int events = UV_READABLE;
    if (!t->tcp_up || (mosquitto_want_write(t->mosq) && !handshaking(t)))
        events |= UV_WRITABLE;
    if (events != t->poll_events) {
        uv_poll_start(t->poll, events, on_poll);
        t->poll_events = events;
    }
}

/* The connection is gone (or never came up): close the poll and try again, the next address
 * at once (will_try_next), else after the backoff with a fresh lookup. */
static void lost(mqtt *t)
{
    close_poll(t);
    if (t->stopping || t->state == MQ_OFF)
        return;
    bool next = will_try_next(t);
    t->state = MQ_WAITING;
    if (next) {
        uv_timer_start(&t->retry, on_retry, 0, 0);
        return;
    }
    t->n_addrs = t->next_addr = 0; /* the next try looks the name up again */
    uv_timer_start(&t->retry, on_retry, t->backoff_ms, 0);
    t->backoff_ms = t->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : t->backoff_ms * 2;
}

/* After every libmosquitto call: a socket it closed without a callback (a failed TLS handshake
 * returns from mosquitto_loop_read that way) is a lost connection too. */
static void after_io(mqtt *t, int rc)
{
    if (!t->poll)
        return; /* the disconnect callback has dealt with it */
    if (mosquitto_socket(t->mosq) < 0 || rc != MOSQ_ERR_SUCCESS) {
        if (*t->tls_error)
            set_problem(t, "TLS with broker %s:%u failed: %s", t->broker.host, t->broker.port,
                        t->tls_error);
        else
            set_problem(t, "connection to broker %s:%u failed: %s", t->broker.host, t->broker.port,
                        mosquitto_strerror(rc));
        lost(t);
        return;
    }
    update_poll(t);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    mqtt *t = h->data;
    if (status < 0) {
        /* libuv reports a socket error (a reset, a refused connect) as UV_EBADF and stops
         * the handle; the socket says what it was. */
        int err = 0;
        socklen_t len = sizeof err;
        int fd = mosquitto_socket(t->mosq);
        if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = 0;
        set_problem(t, "%s broker %s:%u: %s",
                    t->state == MQ_CONNECTED ? "lost the connection to" : "cannot connect to",
                    t->broker.host, t->broker.port, err ? strerror(err) : uv_strerror(status));
        lost(t);
        return;
    }
    int rc = MOSQ_ERR_SUCCESS;
    if (events & UV_READABLE) {
        rc = mosquitto_loop_read(t->mosq, 1);
        after_io(t, rc);
    }
    if (t->poll && (events & UV_WRITABLE)) {
        bool first = !t->tcp_up;
        t->tcp_up = true;
        /* libmosquitto's own loop runs its handshake step when the socket turns writable;
         * mosquitto_loop_read is the public way in (it runs that step while one is due). */
        if (first && handshaking(t))
            rc = mosquitto_loop_read(t->mosq, 1);
        else
            rc = mosquitto_loop_write(t->mosq, 1);
        after_io(t, rc);
    }
}

static void on_misc(uv_timer_t *timer)
{
    mqtt *t = timer->data;
    if (!t->poll)
        return;
    after_io(t, mosquitto_loop_misc(t->mosq));
}

/* ---- connecting ------------------------------------------------------------------------ */

static void connect_next(mqtt *t)
{
    if (t->stopping)
        return;
    if (t->next_addr >= t->n_addrs) {
        start_resolve(t);
        return;
    }
    const char *addr = t->addrs[t->next_addr++];
    t->refused = false;
    t->tcp_up = false;
    *t->tls_error = '\0';
    errno = 0;
    int keepalive = t->broker.keepalive_s ? t->broker.keepalive_s : 30;
    int rc = mosquitto_connect_async(t->mosq, addr, t->broker.port, keepalive);
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(t->mosq) < 0) {
        set_problem(t, "cannot connect to broker %s:%u (%s): %s", t->broker.host, t->broker.port,
                    addr, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        t->state = MQ_CONNECTING;
        lost(t);
        return;
    }
    t->state = MQ_CONNECTING;
    t->poll = pw_xmalloc(sizeof *t->poll);
    t->poll_events = 0;
    if (uv_poll_init_socket(t->env.loop, t->poll, mosquitto_socket(t->mosq)) != 0) {
        free(t->poll);
        t->poll = NULL;
        set_problem(t, "cannot watch the broker connection's socket");
        lost(t);
        return;
    }
    t->poll->data = t;
    t->pending++;
    update_poll(t);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    mqtt *t = req->data;
    free(req);
    t->resolving = NULL;
    t->n_addrs = t->next_addr = 0;
    for (struct addrinfo *a = status == 0 ? res : NULL; a && t->n_addrs < MAX_ADDRS;
         a = a->ai_next) {
        char *out = t->addrs[t->n_addrs];
        if (a->ai_family == AF_INET &&
            uv_ip4_name((struct sockaddr_in *)a->ai_addr, out, INET6_ADDRSTRLEN) == 0)
            t->n_addrs++;
        else if (a->ai_family == AF_INET6 &&
                 uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, out, INET6_ADDRSTRLEN) == 0)
            t->n_addrs++;
    }
    uv_freeaddrinfo(res);
    if (!t->stopping) {
        if (status < 0 || !t->n_addrs) {
            t->state = MQ_RESOLVING;
            set_problem(t, "broker host %s not found: %s", t->broker.host,
                        status < 0 ? uv_strerror(status) : "no address");
            lost(t);
        } else {
            connect_next(t);
        }
    }
    unref(t);
}

static void start_resolve(mqtt *t)
{
    if (t->stopping)
        return;
    t->state = MQ_RESOLVING;
    uv_getaddrinfo_t *req = pw_xmalloc(sizeof *req);
    req->data = t;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(t->env.loop, req, on_resolved, t->broker.host, NULL, &hints);
    if (rc != 0) {
        free(req);
        set_problem(t, "cannot look up broker host %s: %s", t->broker.host, uv_strerror(rc));
        lost(t);
        return;
    }
    t->resolving = req;
    t->pending++;
}

/* ---- test reads ---------------------------------------------------------------------------- */

/* Whether a configured meter (of the config in force) reads topic. */
static bool configured(const mqtt *t, const char *topic)
{
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->is_feed[i] && pw_mqtt_feed_wants(&t->feeds[i], topic))
            return true;
    return false;
}

static void on_test_closed(uv_handle_t *h)
{
    mq_test *x = h->data;
    mqtt *t = x->t;
    x->done(x->ud, &x->r);
    free(x);
    unref(t);
}

/* The test read is over: the reading it took, else error. Its own subscriptions go (unless a
 * meter saved meanwhile reads them); the answer goes out once the timer has closed. */
static void test_end(mqtt *t, const char *error)
{
    mq_test *x = t->test;
    if (!x || x->ended)
        return;
    x->ended = true;
    t->test = NULL;
    x->r.elapsed_ms = (uint32_t)((uv_hrtime() - x->start_ns) / 1000000u);
    if (!x->r.ok)
        pw_strlcpy(x->r.error, error ? error : "no reading", sizeof x->r.error);
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    bool sent = false;
    for (size_t k = 0; k < n; k++) {
        if (x->held[k] && !t->stopping && t->state == MQ_CONNECTED && !configured(t, topics[k])) {
            mosquitto_unsubscribe(t->mosq, NULL, topics[k]);
            sent = true;
        }
    }
    if (sent)
        update_poll(t);
    pw_debug("mqtt", "test read of %s: %s (%u ms)", n ? topics[0] : "no topic",
             x->r.ok ? "read" : x->r.error, x->r.elapsed_ms);
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, on_test_closed);
}

/* Subscribes to the test's topics that no configured meter has subscribed already. */
static void test_subscribe(mqtt *t)
{
    mq_test *x = t->test;
    if (!x || t->state != MQ_CONNECTED)
        return;
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t k = 0; k < n; k++) {
        x->mid[k] = -1;
        if (configured(t, topics[k]))
            continue;
        int rc = mosquitto_subscribe(t->mosq, &x->mid[k], topics[k], 0);
        if (rc != MOSQ_ERR_SUCCESS) {
            char why[sizeof x->r.error];
            snprintf(why, sizeof why, "cannot subscribe to %.160s: %s", topics[k],
                     mosquitto_strerror(rc));
            test_end(t, why);
            return;
        }
        x->held[k] = true;
    }
    update_poll(t);
}

/* A topic no longer configured that the test still reads: kept subscribed for it, and
 * unsubscribed when it ends. */
static bool test_keeps(mqtt *t, const char *topic)
{
    mq_test *x = t->test;
    if (!x)
        return false;
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t k = 0; k < n; k++) {
        if (strcmp(topics[k], topic) == 0) {
            x->held[k] = true;
            return true;
        }
    }
    return false;
}

/* A message on the test's topics: a reading ends the test, a refused message too (that is
 * what would happen to it), a message without currents (AMS list 1) or one line of several
 * waits for more. Retained messages are no readings, as for the meters. */
static void test_message(mqtt *t, const struct mosquitto_message *msg)
{
    mq_test *x = t->test;
    if (!pw_mqtt_feed_wants(&x->feed, msg->topic))
        return;
    if (msg->retain) {
        x->retained = true;
        return;
    }
    double amps[PW_LINES];
    int rc = pw_mqtt_feed_input(&x->feed, msg->topic, msg->payload,
                                msg->payloadlen < 0 ? 0 : (size_t)msg->payloadlen,
                                uv_now(t->env.loop), amps);
    if (rc == PW_MQTT_FEED_READING) {
        x->r.ok = true;
        memcpy(x->r.line_a, amps, sizeof x->r.line_a);
        test_end(t, NULL);
    } else if (rc < 0) {
        char why[sizeof x->r.error];
        snprintf(why, sizeof why, "topic %.128s: %s", msg->topic, x->feed.note);
        test_end(t, why);
    }
}

/* The broker's SUBACK: 0x80 is a refusal (its ACL does not let this user read the topic). */
static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    mqtt *t = ud;
    mq_test *x = t->test;
    if (!x || n < 1 || granted[0] != 0x80)
        return;
    const char *topics[PW_LINES];
    size_t k = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t i = 0; i < k; i++) {
        if (x->held[i] && x->mid[i] == mid) {
            char why[sizeof x->r.error];
            snprintf(why, sizeof why,
                     "broker %.64s:%u refused the subscription to %.80s: user \"%.63s\" is not "
                     "authorised to read it (the broker's ACL)",
                     t->broker.host, t->broker.port, topics[i], t->broker.username);
            test_end(t, why);
            return;
        }
    }
}

static void on_test_timer(uv_timer_t *timer)
{
    mq_test *x = timer->data;
    mqtt *t = x->t;
    char why[sizeof x->r.error];
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    char list[200] = "";
    for (size_t k = 0; k < n; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", topics[k]);
    if (t->state != MQ_CONNECTED)
        snprintf(why, sizeof why, "not connected to broker %s:%u within %u s%s%s", t->broker.host,
                 t->broker.port, TEST_WAIT_MS / 1000, *t->problem ? ": " : "", t->problem);
    else if (x->feed.fresh)
        snprintf(why, sizeof why,
                 "not every line arrived within %u s (topics %s): a reading needs them all "
                 "within %u ms of each other",
                 TEST_WAIT_MS / 1000, list, x->feed.window_ms);
    else
        snprintf(why, sizeof why, "no message on %s %s within %u s%s", n > 1 ? "topics" : "topic",
                 list, TEST_WAIT_MS / 1000,
                 x->retained ? " (only a retained message, which may be hours old: the bridge "
                               "must publish while phasewise listens)"
                             : "");
    test_end(t, why);
}

/* ---- libmosquitto's callbacks (they run inside the mosquitto_loop_* calls above) -------- */

static void subscribe_all(mqtt *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_nodes; i++) {
        if (!t->is_feed[i])
            continue;
        const char *topics[PW_LINES];
        size_t k = pw_mqtt_feed_topics(&t->feeds[i], topics);
        /* QoS 0: a lost reading is replaced by the next one; the stale budget covers a gap. */
        for (size_t j = 0; j < k; j++, n++)
            if (mosquitto_subscribe(t->mosq, NULL, topics[j], 0) != MOSQ_ERR_SUCCESS)
                pw_warn("mqtt", "cannot subscribe to %s", topics[j]);
    }
    pw_info("mqtt", "connected to broker %s:%u%s as %s; %zu meter topic%s", t->broker.host,
            t->broker.port, t->ssl_ctx ? " over TLS" : "", t->client_id, n, n == 1 ? "" : "s");
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    mqtt *t = ud;
    if (rc != 0) {
        t->refused = true;
        set_problem(t, "broker %s:%u refused the connection: %s%s", t->broker.host, t->broker.port,
                    mosquitto_connack_string(rc),
                    rc == 4 || rc == 5 ? " Check mqtt.username and mqtt.password." : "");
        return; /* libmosquitto closes the connection and calls on_disconnect */
    }
    t->state = MQ_CONNECTED;
    t->backoff_ms = RETRY_FIRST_MS;
    *t->problem = *t->logged = '\0';
    subscribe_all(t);
    test_subscribe(t); /* a new session: the broker has forgotten them */
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    mqtt *t = ud;
    const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
    if (t->stopping) {
        close_poll(t);
        return;
    }
    if (!t->refused)
        set_problem(t, "%s broker %s:%u: %s",
                    t->state == MQ_CONNECTED ? "lost the connection to" : "cannot connect to",
                    t->broker.host, t->broker.port, why);
    lost(t);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    mqtt *t = ud;
    t->st.rx++;
    if (t->test && msg->topic)
        test_message(t, msg);
    /* A retained message is the last one the broker kept, maybe from hours ago: taken as a
     * reading it would hide a meter that has gone silent. Live ones arrive with retain 0. */
    if (msg->retain || !msg->topic)
        return;
    uint64_t now = uv_now(t->env.loop);
    bool taken = false;
    for (size_t i = 0; i < t->n_nodes; i++) {
        pw_mqtt_feed *f = &t->feeds[i];
        if (!t->is_feed[i] || !pw_mqtt_feed_wants(f, msg->topic))
            continue;
        double amps[PW_LINES];
        int rc = pw_mqtt_feed_input(f, msg->topic, msg->payload,
                                    msg->payloadlen < 0 ? 0 : (size_t)msg->payloadlen, now, amps);
        if (rc == PW_MQTT_FEED_READING) {
            *t->node_problem[i] = '\0';
            taken |= pw_ctl_meter_report(t->env.ctl, i, amps, now) == 0;
        } else if (rc == PW_MQTT_FEED_PARTIAL) {
            taken = true;
        } else if (rc < 0) {
            snprintf(t->node_problem[i], sizeof t->node_problem[i], "topic %.96s: %s", msg->topic,
                     f->note);
            pw_ctl_rejected(t->env.ctl, "mqtt", pw_mqtt_feed_reason(rc), f->note);
        }
    }
    t->st.rx_accepted += taken;
}

static void on_log(struct mosquitto *m, void *ud, int level, const char *text)
{
    (void)m;
    (void)ud;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        pw_debug("mqtt", "libmosquitto: %s", text);
}

/* ---- TLS --------------------------------------------------------------------------------- */

static int on_verify(int ok, X509_STORE_CTX *x)
{
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
        mqtt *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
        int err = X509_STORE_CTX_get_error(x);
        snprintf(t->tls_error, sizeof t->tls_error, "the broker's certificate is refused: %s%s",
                 X509_verify_cert_error_string(err),
                 err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH
                     ? " (it is not for mqtt.host)"
                     : "");
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
    mqtt *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!t->host_is_ip)
        SSL_set_tlsext_host_name((SSL *)ssl, t->broker.host);
}

/* Our own TLS context instead of mosquitto_tls_set: libmosquitto checks the certificate
 * against the host it connects to, and that is the numeric address (so that it never
 * resolves on the loop), not the name in mqtt.host. Here OpenSSL checks the chain against the
 * CA file (or the system's CAs) and the name or address in mqtt.host, and the handshake fails
 * otherwise; libmosquitto is told to use the context as it is. */
static int setup_tls(mqtt *t, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, err_size, "cannot create a TLS context");
        return -1;
    }
    t->ssl_ctx = ctx;
    SSL_CTX_set_app_data(ctx, t);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
    SSL_CTX_set_info_callback(ctx, on_tls_info);
    const char *ca = *t->broker.ca_file ? t->broker.ca_file : NULL;
    if (SSL_CTX_load_verify_locations(ctx, ca, ca ? NULL : SYSTEM_CA_PATH) != 1) {
        /* A long path is cut to what the message has room for. */
        snprintf(err, err_size, "cannot load the CA certificates from %.160s (mqtt.ca_file)",
                 ca ? ca : SYSTEM_CA_PATH);
        return -1;
    }
    X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = t->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, t->broker.host)
                           : X509_VERIFY_PARAM_set1_host(p, t->broker.host, 0);
    if (ok != 1 || mosquitto_int_option(t->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) ||
        mosquitto_void_option(t->mosq, MOSQ_OPT_SSL_CTX, ctx)) {
        snprintf(err, err_size, "cannot set up TLS for broker %s", t->broker.host);
        return -1;
    }
    return 0;
}

/* ---- the client -------------------------------------------------------------------------- */

static bool has_feeds(const mqtt *t)
{
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->is_feed[i])
            return true;
    return false;
}

static void make_client_id(mqtt *t, const pw_cfg *cfg)
{
    if (*cfg->mqtt.client_id) {
        pw_strlcpy(t->client_id, cfg->mqtt.client_id, sizeof t->client_id);
        return;
    }
    /* MQTT 3.1.1 brokers must take 23 letters and digits; more is their choice. */
    size_t n = (size_t)snprintf(t->client_id, sizeof t->client_id, "phasewise-");
    for (const char *s = cfg->site_name; *s && n < 23; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
            t->client_id[n++] = *s;
    t->client_id[n] = '\0';
}

/* libmosquitto's library state is set up here and torn down in stop, once each. That is safe
 * because mosquitto_lib_init/cleanup, which are not thread-safe, run on the loop thread only
 * and before any other libmosquitto call / after the last one; in 2.0 they count references,
 * and nothing else in this process uses libmosquitto (the simulator is a program of its own). */
static int activate(mqtt *t)
{
    char err[256];
    struct in6_addr a6;
    struct in_addr a4;
    t->host_is_ip = inet_pton(AF_INET, t->broker.host, &a4) == 1 ||
                    inet_pton(AF_INET6, t->broker.host, &a6) == 1;
    t->activated = true; /* once: a failure below is reported, not retried at each reload */
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        set_problem(t, "cannot initialise libmosquitto");
        return -1;
    }
    t->lib_init = true;
    make_client_id(t, t->env.cfg);
    t->mosq = mosquitto_new(t->client_id, true, t);
    if (!t->mosq) {
        set_problem(t, "cannot create an MQTT client: %s", strerror(errno));
        return -1;
    }
    mosquitto_connect_callback_set(t->mosq, on_connect);
    mosquitto_disconnect_callback_set(t->mosq, on_disconnect);
    mosquitto_message_callback_set(t->mosq, on_message);
    mosquitto_subscribe_callback_set(t->mosq, on_subscribe);
    mosquitto_log_callback_set(t->mosq, on_log);
    if (*t->broker.username &&
        mosquitto_username_pw_set(t->mosq, t->broker.username,
                                  *t->broker.password ? t->broker.password : NULL) != 0) {
        set_problem(t, "cannot set the MQTT user name");
        return -1;
    }
    if (t->broker.tls && setup_tls(t, err, sizeof err) != 0) {
        set_problem(t, "%s", err);
        return -1;
    }
    t->backoff_ms = RETRY_FIRST_MS;
    uv_timer_start(&t->misc, on_misc, MISC_MS, MISC_MS);
    pw_info("mqtt", "meter feeds from broker %s:%u%s", t->broker.host, t->broker.port,
            t->broker.tls ? " over TLS" : "");
    start_resolve(t);
    return 0;
}

/* The feeds of cfg's MQTT meters; a meter whose settings report no line is logged. */
static void build_feeds(mqtt *t, const pw_cfg *cfg)
{
    free(t->feeds);
    free(t->is_feed);
    free(t->node_problem);
    t->n_nodes = cfg->n_nodes;
    t->feeds = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->feeds);
    t->is_feed = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->is_feed);
    t->node_problem = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->node_problem);
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (cfg->meters[i].kind != PW_CFG_LINK_MQTT || !cfg->meter_opts)
            continue;
        int rc = pw_mqtt_feed_init(&t->feeds[i], &cfg->meters[i], &cfg->meter_opts[i]);
        t->is_feed[i] = rc == 0;
        if (rc != 0) {
            snprintf(t->node_problem[i], sizeof t->node_problem[i], "%s", t->feeds[i].note);
            pw_error("mqtt", "meter of node '%s': %s", cfg->nodes[i].name, t->feeds[i].note);
        }
    }
    t->cfg = cfg;
}

/* ---- ops --------------------------------------------------------------------------------- */

static int mqtt_start(pw_transport *t_, const pw_transport_env *env, char *err, size_t err_size)
{
    (void)err;
    (void)err_size;
    mqtt *t = (mqtt *)t_;
    t->env = *env;
    t->broker = env->cfg->mqtt;
    uv_timer_init(env->loop, &t->retry);
    uv_timer_init(env->loop, &t->misc);
    t->retry.data = t->misc.data = t;
    t->timers_open = true;
    t->pending = 2;
    build_feeds(t, env->cfg);
    if (!*t->broker.host) {
        if (has_feeds(t))
            set_problem(t, "MQTT meters are configured but no broker (mqtt.host)");
        return 0;
    }
    /* A broker that cannot be reached or a bad CA file leaves these meters stale (the nodes
     * are budgeted conservatively) and says so; it is no reason to stop balancing. */
    if (has_feeds(t))
        activate(t);
    return 0;
}

static void mqtt_timing(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out)
{
    (void)t;
    (void)cfg;
    *out = (pw_bal_timing){0}; /* no chargers speak it */
}

static void topic_set(const mqtt *t, const char **out, size_t *n, size_t max)
{
    *n = 0;
    for (size_t i = 0; i < t->n_nodes; i++) {
        const char *k[PW_LINES];
        size_t m = t->is_feed[i] ? pw_mqtt_feed_topics(&t->feeds[i], k) : 0;
        for (size_t j = 0; j < m && *n < max; j++)
            out[(*n)++] = k[j];
    }
}

static bool in_set(const char *const *set, size_t n, const char *topic)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], topic) == 0)
            return true;
    return false;
}

/* Meters may come, go or change topics at once; the broker settings stay as started. */
static void mqtt_reconfigure(pw_transport *t_, const pw_cfg *cfg)
{
    mqtt *t = (mqtt *)t_;
    size_t max = PW_LINES * (t->n_nodes > cfg->n_nodes ? t->n_nodes : cfg->n_nodes) + 1;
    char(*old)[PW_CFG_TOPIC_LEN] = pw_xcalloc(max, sizeof *old);
    const char **oldp = pw_xcalloc(max, sizeof *oldp), **newp = pw_xcalloc(max, sizeof *newp);
    size_t n_old, n_new;
    topic_set(t, oldp, &n_old, max);
    for (size_t i = 0; i < n_old; i++) {
        pw_strlcpy(old[i], oldp[i], sizeof old[i]);
        oldp[i] = old[i];
    }
    build_feeds(t, cfg);
    topic_set(t, newp, &n_new, max);
    if (t->state == MQ_CONNECTED) {
        for (size_t i = 0; i < n_old; i++)
            if (!in_set(newp, n_new, oldp[i]) && !test_keeps(t, oldp[i]))
                mosquitto_unsubscribe(t->mosq, NULL, oldp[i]);
        for (size_t i = 0; i < n_new; i++)
            if (!in_set(oldp, n_old, newp[i]))
                mosquitto_subscribe(t->mosq, NULL, newp[i], 0);
        update_poll(t);
    } else if (!t->activated && *t->broker.host && n_new && !t->stopping && t->timers_open) {
        activate(t);
    }
    free(old);
    free(oldp);
    free(newp);
}

static void mqtt_stats(const pw_transport *t, pw_transport_stats *out)
{
    *out = ((const mqtt *)t)->st;
    out->react = NULL;
}

static int mqtt_meter_problem(const pw_transport *t_, size_t node, char *out, size_t out_size)
{
    const mqtt *t = (const mqtt *)t_;
    if (node >= t->n_nodes || (!t->is_feed[node] && !*t->node_problem[node]))
        return 0;
    if (*t->problem && t->state != MQ_CONNECTED)
        snprintf(out, out_size, "%s", t->problem);
    else if (*t->node_problem[node])
        snprintf(out, out_size, "%s", t->node_problem[node]);
    else
        return 0;
    return 1;
}

/* One reading from the meter's topics through the broker connection in use (opened now if no
 * meter needed it yet), within TEST_WAIT_MS. */
static int mqtt_test_read(pw_transport *t_, const pw_cfg_link *link, const pw_cfg_meter_opts *opts,
                          pw_transport_test_done done, void *ud)
{
    mqtt *t = (mqtt *)t_;
    if (t->test || t->stopping || !t->timers_open)
        return PW_TRANSPORT_TEST_BUSY;
    mq_test *x = pw_xcalloc(1, sizeof *x);
    x->t = t;
    x->done = done;
    x->ud = ud;
    x->start_ns = uv_hrtime();
    for (size_t l = 0; l < PW_LINES; l++)
        x->r.line_a[l] = NAN;
    snprintf(x->r.map, sizeof x->r.map, "MQTT feed, preset %s", opts->preset);
    uv_timer_init(t->env.loop, &x->timer);
    x->timer.data = x;
    t->pending++;
    t->test = x;
    char why[sizeof x->r.error];
    if (pw_mqtt_feed_init(&x->feed, link, opts) != 0) {
        test_end(t, x->feed.note);
        return 0;
    }
    if (!*t->broker.host) {
        test_end(t, "no MQTT broker is configured (mqtt.host): the broker connection is opened "
                    "at start, so save the broker settings and restart first");
        return 0;
    }
    if (!t->activated)
        activate(t); /* no meter needed the broker yet */
    if (!t->mosq) {
        snprintf(why, sizeof why, "no MQTT client: %s", *t->problem ? t->problem : "not set up");
        test_end(t, why);
        return 0;
    }
    if (t->state == MQ_CONNECTED) {
        test_subscribe(t);
    } else if (*t->problem) {
        snprintf(why, sizeof why, "not connected to the broker: %s", t->problem);
        test_end(t, why);
    }
    if (!x->ended)
        uv_timer_start(&x->timer, on_test_timer, TEST_WAIT_MS, 0);
    return 0;
}

static void mqtt_stop(pw_transport *t_)
{
    mqtt *t = (mqtt *)t_;
    if (!t->timers_open) { /* never started */
        free_mqtt(t);
        return;
    }
    t->stopping = true;
    if (t->test)
        test_end(t, "the appliance is shutting down");
    if (t->mosq) {
        /* A clean DISCONNECT if the connection is up (written at once, it is small); its
         * callback closes the poll. */
        if (t->state == MQ_CONNECTED && t->poll)
            mosquitto_disconnect(t->mosq);
        close_poll(t);
        mosquitto_destroy(t->mosq);
        t->mosq = NULL;
    }
    if (t->ssl_ctx)
        SSL_CTX_free(t->ssl_ctx);
    t->ssl_ctx = NULL;
    if (t->lib_init)
        mosquitto_lib_cleanup();
    t->lib_init = false;
    t->state = MQ_OFF;
    /* A lookup in flight comes back with UV_ECANCELED, or with its answer if a worker has it
     * already: either way on_resolved drops its reference. */
    if (t->resolving)
        uv_cancel((uv_req_t *)t->resolving);
    uv_close((uv_handle_t *)&t->retry, on_handle_closed);
    uv_close((uv_handle_t *)&t->misc, on_handle_closed);
}

static const pw_transport_ops mqtt_ops = {
    .name = "mqtt",
    .kind = PW_CFG_LINK_MQTT,
    .start = mqtt_start,
    .timing = mqtt_timing,
    .send = NULL, /* meters only */
    .reconfigure = mqtt_reconfigure,
    .stats = mqtt_stats,
    .meter_problem = mqtt_meter_problem,
    .test_read = mqtt_test_read,
    .stop = mqtt_stop,
};

pw_transport *pw_tr_mqtt_new(void)
{
    mqtt *t = pw_xcalloc(1, sizeof *t);
    t->super.ops = &mqtt_ops;
    return &t->super;
}
