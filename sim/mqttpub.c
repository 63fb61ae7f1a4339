/* The simulator's MQTT meter feeds: every node whose meter link is MQTT publishes its reading
 * each meter interval to the config's broker, in the link's form (pw_sim_mqtt_messages). The
 * libmosquitto client runs on the simulator's loop, not on a thread of its own: a uv_poll_t on
 * its socket calls mosquitto_loop_read/write, a timer calls mosquitto_loop_misc (keepalive) and
 * reconnects with a backoff after the broker went away. Messages are QoS 0, not retained: a
 * reading that could not be sent is gone, as with a real bridge. */
#include <errno.h>
#include <mosquitto.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pw_simmeter.h"
#include "pw_util.h"
#include "sim_int.h"

#define MQ_MISC_MS        500
#define MQ_BACKOFF_MIN_MS 500
#define MQ_BACKOFF_MAX_MS 8000
#define MQ_CONNECT_MS     5000 /* TCP, TLS and CONNACK; the text in lost() says 5 s */

struct sim_mqtt {
    sim_app *app;
    struct mosquitto *mosq;
    uv_poll_t *poll; /* on the client's socket; NULL when there is none; freed when closed */
    int poll_fd;
    int poll_events;
    uv_timer_t misc;
    bool connected;  /* CONNACK accepted */
    bool connecting; /* a connect is under way */
    bool closing;
    uint32_t backoff_ms;
    uint64_t next_try;         /* loop time of the next connect attempt */
    uint64_t connect_deadline; /* loop time by which the attempt under way must have worked */
    uint64_t published, unsent;
};

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

static void poll_stop(sim_mqtt *mq)
{
    if (!mq->poll)
        return;
    uv_close((uv_handle_t *)mq->poll, on_poll_closed);
    mq->poll = NULL;
}

/* The connection (or the attempt) ended: the next attempt after a growing backoff. Called once
 * per connection: libmosquitto may report one loss both as an error and through on_disconnect. */
static void lost(sim_mqtt *mq, int rc)
{
    if (!mq->connected && !mq->connecting)
        return;
    const char *why = rc == MOSQ_ERR_ERRNO          ? strerror(errno)
                      : rc == MOSQ_ERR_TIMEOUT      ? "no connection within 5 s"
                      : rc == MOSQ_ERR_CONN_REFUSED ? "connection refused"
                                                    : mosquitto_strerror(rc);
    pw_warn(SIM_COMP, "mqtt: %s:%u: %s; trying again in %.1f s", mq->app->cfg->mqtt.host,
            mq->app->cfg->mqtt.port, why, mq->backoff_ms / 1000.0);
    mq->connected = mq->connecting = false;
    mq->next_try = uv_now(&mq->app->loop) + mq->backoff_ms;
    mq->backoff_ms =
        mq->backoff_ms * 2 > MQ_BACKOFF_MAX_MS ? MQ_BACKOFF_MAX_MS : mq->backoff_ms * 2;
}

static void on_poll(uv_poll_t *p, int status, int events);

/* Follows the client's socket after every call into libmosquitto: a closed socket stops the
 * poll before the descriptor can be reused, a new one is polled, and writable is asked for only
 * while the client has bytes to send. */
static void sync_poll(sim_mqtt *mq)
{
    int fd = mosquitto_socket(mq->mosq);
    bool wanted = fd >= 0 && !mq->closing && (mq->connected || mq->connecting);
    if (mq->poll && (mq->poll_fd != fd || !wanted))
        poll_stop(mq);
    if (!wanted)
        return;
    if (!mq->poll) {
        mq->poll = pw_xcalloc(1, sizeof(*mq->poll));
        if (uv_poll_init_socket(&mq->app->loop, mq->poll, fd) != 0) {
            free(mq->poll);
            mq->poll = NULL;
            return;
        }
        mq->poll->data = mq;
        mq->poll_fd = fd;
        mq->poll_events = 0;
    }
    int events = UV_READABLE | (mosquitto_want_write(mq->mosq) ? UV_WRITABLE : 0);
    if (events != mq->poll_events) {
        uv_poll_start(mq->poll, events, on_poll);
        mq->poll_events = events;
    }
}

/* True if a socket still connecting has failed. A refused TLS connection is otherwise never
 * reported: libmosquitto takes the handshake's failed write for "try again" and the socket
 * stays readable, so the loop would spin until the connect deadline. Peeking does not take the
 * broker's first bytes from the handshake. */
static bool connect_failed(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sim_mqtt *mq = p->data;
    int rc = MOSQ_ERR_SUCCESS;
    if (status == 0 && mq->connecting && connect_failed(mosquitto_socket(mq->mosq)))
        status = UV_ECONNREFUSED;
    if (status < 0) { /* an error on the socket (libuv may have stopped polling it) */
        lost(mq, status == UV_ECONNREFUSED ? MOSQ_ERR_CONN_REFUSED : MOSQ_ERR_CONN_LOST);
        sync_poll(mq);
        return;
    }
    if (events & UV_READABLE)
        rc = mosquitto_loop_read(mq->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_WRITABLE))
        rc = mosquitto_loop_write(mq->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS)
        lost(mq, rc);
    sync_poll(mq);
}

static void on_connect(struct mosquitto *mosq, void *user, int rc)
{
    sim_mqtt *mq = user;
    (void)mosq;
    if (rc != 0) {
        pw_warn(SIM_COMP, "mqtt: the broker refused the connection: %s",
                mosquitto_connack_string(rc));
        return; /* libmosquitto closes the socket and reports the loss */
    }
    mq->connecting = false;
    mq->connected = true;
    mq->backoff_ms = MQ_BACKOFF_MIN_MS;
    pw_info(SIM_COMP, "mqtt: connected to %s:%u", mq->app->cfg->mqtt.host, mq->app->cfg->mqtt.port);
}

static void on_disconnect(struct mosquitto *mosq, void *user, int rc)
{
    sim_mqtt *mq = user;
    (void)mosq;
    if (!mq->closing)
        lost(mq, rc ? rc : MOSQ_ERR_CONN_LOST);
}

static void try_connect(sim_mqtt *mq)
{
    const pw_cfg_mqtt *c = &mq->app->cfg->mqtt;
    /* A host name is resolved by libmosquitto itself (getaddrinfo); the tests and the demo give
     * an address, which costs no lookup. */
    pw_debug(SIM_COMP, "mqtt: connecting to %s:%u", c->host, c->port);
    mq->connecting = true;
    mq->connect_deadline = uv_now(&mq->app->loop) + MQ_CONNECT_MS;
    int rc =
        mosquitto_connect_async(mq->mosq, c->host, c->port, c->keepalive_s ? c->keepalive_s : 30);
    if (rc != MOSQ_ERR_SUCCESS)
        lost(mq, rc);
    sync_poll(mq);
}

/* Keepalive while connected; an attempt that takes too long ends (a refused TLS connection is
 * never reported by libmosquitto: it keeps waiting for the handshake); the next attempt when
 * the backoff is over. mosquitto_connect_async closes the old socket itself, so the poll on it
 * is stopped first. */
static void on_misc(uv_timer_t *t)
{
    sim_mqtt *mq = t->data;
    uint64_t now = uv_now(t->loop);
    if (mq->connected) {
        int rc = mosquitto_loop_misc(mq->mosq);
        if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(mq->mosq) < 0)
            lost(mq, rc != MOSQ_ERR_SUCCESS ? rc : MOSQ_ERR_CONN_LOST);
    } else if (mq->connecting) {
        if (mosquitto_socket(mq->mosq) < 0 || now >= mq->connect_deadline)
            lost(mq, mosquitto_socket(mq->mosq) < 0 ? MOSQ_ERR_CONN_LOST : MOSQ_ERR_TIMEOUT);
    } else if (now >= mq->next_try) {
        poll_stop(mq);
        try_connect(mq);
    }
    sync_poll(mq);
}

static bool has_feeds(const pw_cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (cfg->meters[i].kind == PW_CFG_LINK_MQTT)
            return true;
    }
    return false;
}

/* Credentials and TLS as the config gives them. Returns 0 or -1 (logged). */
static int configure(sim_mqtt *mq)
{
    const pw_cfg_mqtt *c = &mq->app->cfg->mqtt;
    int rc = MOSQ_ERR_SUCCESS;
    if (c->username[0])
        rc = mosquitto_username_pw_set(mq->mosq, c->username, c->password[0] ? c->password : NULL);
    if (rc == MOSQ_ERR_SUCCESS && c->tls) {
        if (c->ca_file[0])
            rc = mosquitto_tls_set(mq->mosq, c->ca_file, NULL, NULL, NULL, NULL);
        else
            rc = mosquitto_int_option(mq->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        pw_error(SIM_COMP, "mqtt: %s%s%s", mosquitto_strerror(rc), c->ca_file[0] ? ": " : "",
                 c->ca_file);
        return -1;
    }
    return 0;
}

int sim_mqtt_start(sim_app *app)
{
    const pw_cfg *cfg = app->cfg;
    if (!has_feeds(cfg))
        return 0;
    if (!cfg->mqtt.host[0]) {
        pw_error(SIM_COMP,
                 "mqtt: meters on MQTT links, but the config names no broker (mqtt.host)");
        return -1;
    }
    mosquitto_lib_init();
    sim_mqtt *mq = app->mqtt = pw_xcalloc(1, sizeof(*mq));
    mq->app = app;
    mq->backoff_ms = MQ_BACKOFF_MIN_MS;
    uv_timer_init(&app->loop, &mq->misc);
    mq->misc.data = mq;
    /* Not the appliance's client id: a broker drops the older of two clients with one id. */
    char id[64];
    snprintf(id, sizeof(id), "phasewise-sim-%ld", (long)getpid());
    mq->mosq = mosquitto_new(id, true, mq);
    if (!mq->mosq) {
        pw_error(SIM_COMP, "mqtt: cannot create the client");
        return -1;
    }
    mosquitto_connect_callback_set(mq->mosq, on_connect);
    mosquitto_disconnect_callback_set(mq->mosq, on_disconnect);
    if (configure(mq) != 0)
        return -1;
    pw_info(SIM_COMP, "mqtt: publishing meters to %s:%u%s", cfg->mqtt.host, cfg->mqtt.port,
            cfg->mqtt.tls ? " (TLS)" : "");
    try_connect(mq);
    uv_timer_start(&mq->misc, on_misc, MQ_MISC_MS, MQ_MISC_MS);
    return 0;
}

void sim_mqtt_publish(sim_app *app, size_t node, const double amps[PW_LINES], double energy_wh)
{
    sim_mqtt *mq = app->mqtt;
    pw_sim_mqtt_msg msgs[3];
    if (!mq || mq->closing)
        return;
    int n = pw_sim_mqtt_messages(&app->cfg->meters[node], &app->cfg->meter_opts[node], amps,
                                 energy_wh, msgs);
    if (n < 0) {
        mq->unsent++;
        return;
    }
    for (int k = 0; k < n; k++) {
        if (!mq->connected) {
            mq->unsent++;
            continue;
        }
        int rc = mosquitto_publish(mq->mosq, NULL, msgs[k].topic, (int)strlen(msgs[k].payload),
                                   msgs[k].payload, 0, false);
        if (rc == MOSQ_ERR_SUCCESS)
            mq->published++;
        else
            mq->unsent++;
    }
    sync_poll(mq);
}

void sim_mqtt_close(sim_app *app)
{
    sim_mqtt *mq = app->mqtt;
    if (!mq || mq->closing)
        return;
    mq->closing = true;
    if (mq->connected)
        mosquitto_disconnect(mq->mosq); /* best effort: the DISCONNECT may not get out */
    poll_stop(mq);
    uv_close((uv_handle_t *)&mq->misc, NULL);
    pw_info(SIM_COMP, "mqtt: %llu messages published, %llu not sent",
            (unsigned long long)mq->published, (unsigned long long)mq->unsent);
}

void sim_mqtt_free(sim_app *app)
{
    sim_mqtt *mq = app->mqtt;
    if (!mq)
        return;
    if (mq->mosq)
        mosquitto_destroy(mq->mosq); /* closes the socket, no longer polled */
    free(mq);
    app->mqtt = NULL;
    mosquitto_lib_cleanup();
}
