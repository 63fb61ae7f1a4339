/* One MQTT client connection on the appliance's loop: Debian's libmosquitto 2.0 driven by uv
 * instead of a thread of its own. The broker's name is resolved with uv_getaddrinfo (libmosquitto
 * gets the numeric address, so it never resolves on the loop); a uv_poll on its socket calls
 * mosquitto_loop_read/_write and a one-second timer mosquitto_loop_misc (keepalive). A lost or
 * refused connection is retried with backoff, for ever, until pw_mqtt_conn_close.
 *
 * Shared by every MQTT user of the appliance, each with a connection of its own: the meter
 * transport (transport/mqtt.c), the state publisher with Home Assistant discovery and commands
 * (server/mqtt_publish.c) and the fleet uplink (server/uplink.c). Nothing here waits: a publish
 * while the connection is down is refused at once, never queued for later. Loop thread only. */
#ifndef PW_MQTT_CONN_H
#define PW_MQTT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "pw_cfg.h"

typedef struct pw_mqtt_conn pw_mqtt_conn;

typedef struct pw_mqtt_conn_opts {
    /* Who this connection is for: the log tag and the start of every problem text ("mqtt",
     * "mqtt publish", "uplink"); also the config section a problem points at ("mqtt.host",
     * "uplink.host"). Static strings. */
    const char *what;
    const char *section;
    pw_cfg_mqtt broker; /* host, port, login, TLS (CA, client pair), keepalive; copied */
    /* "" = broker.client_id, and if that is "" too, one libmosquitto makes up (a clean session
     * only). Two connections to one broker need two ids, or the broker throws the older out:
     * make them with pw_mqtt_conn_client_id_for and a suffix of each user's own. */
    char client_id[64];
    bool clean_session; /* false: the broker keeps the session (QoS 1 subscriptions, in-flight
                           messages) across a reconnect of the same client id */
    /* The last will, published by the broker when the connection is lost without a DISCONNECT
     * ("offline" on a status topic); NULL topic = none. Copied. */
    const char *will_topic;
    const char *will_payload;
    int will_qos;
    bool will_retain;
    unsigned max_inflight; /* QoS 1/2 messages in flight at once; 0 = libmosquitto's (20) */
} pw_mqtt_conn_opts;

/* Called on the loop thread, never from inside pw_mqtt_conn_new or pw_mqtt_conn_close, and
 * never after pw_mqtt_conn_close. Any may be NULL. Each may call pw_mqtt_conn_close (the
 * connection is torn down once libmosquitto has returned) and publish or subscribe. */
typedef struct pw_mqtt_conn_cb {
    void *ud;
    /* The broker accepted the connection: a new session unless session_present (subscribe
     * again, publish retained state again). */
    void (*up)(void *ud, bool session_present);
    /* The connection failed, was refused or was lost; problem says why in words a person can
     * act on (borrowed for the call). A retry follows by itself: 0.5 s, doubling to 8 s. Not
     * called when the next of several addresses of the broker's name is tried at once. */
    void (*down)(void *ud, const char *problem);
    /* A message on a subscribed topic; payload need not be NUL-terminated. */
    void (*message)(void *ud, const char *topic, const void *payload, size_t len, bool retained);
    /* The broker acknowledged a QoS 1/2 publish (PUBACK/PUBCOMP) by its message id; never for
     * QoS 0. A message in flight when the connection was lost is sent again by libmosquitto
     * after the reconnect and acknowledged then. */
    void (*published)(void *ud, int mid);
    /* The broker answered a SUBSCRIBE: granted[k] is the QoS of its k-th topic, 128 = refused
     * (an ACL said no). */
    void (*subscribed)(void *ud, int mid, int n, const int *granted);
} pw_mqtt_conn_cb;

/* Starts connecting to opts->broker.host, from the loop (the first attempt runs on its next
 * turn). Returns NULL with err set when the client cannot be set up at all: no host, a CA,
 * client certificate or key file that cannot be loaded, a key that is not the certificate's,
 * a certificate without TLS. That is a config problem, not a broker one, and is not retried; err
 * names the field ("<section>.cert_file"). Never NULL otherwise. Each connection holds a
 * reference to libmosquitto's library state (mosquitto_lib_init) until it is freed. */
pw_mqtt_conn *pw_mqtt_conn_new(uv_loop_t *loop, const pw_mqtt_conn_opts *opts,
                               const pw_mqtt_conn_cb *cb, char *err, size_t err_size);

/* Sends a DISCONNECT if connected (the broker then does not publish the will), stops every
 * callback at once and frees the connection once its handles have closed (the loop must run
 * on for that). Safe from inside its own callbacks. NULL is fine. */
void pw_mqtt_conn_close(pw_mqtt_conn *c);

/* Connected and accepted by the broker. */
bool pw_mqtt_conn_up(const pw_mqtt_conn *c);
/* Why it is not connected ("" when it is, or while a first attempt is still running); borrowed. */
const char *pw_mqtt_conn_problem(const pw_mqtt_conn *c);
/* The client id in use. */
const char *pw_mqtt_conn_client_id(const pw_mqtt_conn *c);

/* Publishes; mid (may be NULL) gets the message id a QoS 1/2 acknowledgement will carry.
 * Returns 0, or -1 when not connected or libmosquitto refuses (too large, bad topic): nothing is
 * queued for later, the caller decides what to keep. Written at once as far as the socket
 * takes it; payload is copied. */
int pw_mqtt_conn_publish(pw_mqtt_conn *c, const char *topic, const void *payload, size_t len,
                         int qos, bool retain, int *mid);
/* Subscribes to a topic filter; 0 or -1 (not connected, bad filter). mid may be NULL. */
int pw_mqtt_conn_subscribe(pw_mqtt_conn *c, const char *filter, int qos, int *mid);
int pw_mqtt_conn_unsubscribe(pw_mqtt_conn *c, const char *filter);

/* Messages published (tx: taken by pw_mqtt_conn_publish; tx_errors: refused by it) and
 * received, connections the broker accepted, for the state document and /metrics. Borrowed,
 * valid until pw_mqtt_conn_close. */
typedef struct pw_mqtt_conn_stats {
    uint64_t tx, tx_errors, rx, connects;
} pw_mqtt_conn_stats;
const pw_mqtt_conn_stats *pw_mqtt_conn_stats_get(const pw_mqtt_conn *c);

/* A client id from a site name: "phasewise-", the name's letters and digits, and suffix (may be
 * NULL; "-pub"), 23 characters in all at most (what every MQTT 3.1.1 broker must take): the
 * name is cut, never the suffix. */
void pw_mqtt_conn_client_id_for(const char *site_name, const char *suffix, char *out,
                                size_t out_size);

#endif
