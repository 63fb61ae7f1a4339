/* A device transport: speaks one protocol on the loop, turns what devices say into pw_ctl reports
 * and sends what pw_ctl marks due. One file per protocol, like chrony's refclock drivers; the
 * codec stays pure in its own folder (protocol/ for the LAN and DEFA frames). Identity, units,
 * replay and timing of a protocol stay inside its driver: the core sees config indices and
 * amperes. Everything here runs on the loop thread. */
#ifndef PW_TRANSPORT_H
#define PW_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pw_bal.h"
#include "pw_cfg.h"
#include "pw_ctl.h"
#include "pw_latency.h"
#include "pw_web.h"

typedef struct pw_transport pw_transport;

/* Lent by the shell for the transport's lifetime. */
typedef struct pw_transport_env {
    uv_loop_t *loop;
    pw_ctl *ctl;        /* inbox, and the commands to send */
    const pw_cfg *cfg;  /* the config the appliance started with: sockets are opened from it;
                           later configs arrive through reconfigure */
    const uint8_t *key; /* the facility key (PW_PROTO_KEY_LEN bytes) */
    uint32_t boot_id;   /* the appliance's boot id as a sender */
    pw_web *web;        /* the web front, for WebSocket endpoints (OCPP); may be NULL */
    /* The appliance's certificate pair (PEM files) for wss://; NULL when HTTPS is off. */
    const char *tls_cert, *tls_key;
    /* The history database (migrated), for what a transport keeps across a restart (the OCPP
     * local controller's queue); NULL: nothing is kept. */
    const char *db_path;
    /* Events of the transport's own (another balancer on the group, ...). */
    void (*log_event)(void *ud, const char *kind, const char *subject, const char *detail);
    void *ud;
} pw_transport_env;

/* Counters for /metrics and the state document, per transport. */
typedef struct pw_transport_stats {
    uint64_t rx;          /* messages received */
    uint64_t rx_accepted; /* authentic, fresh, from a configured device, and used */
    uint64_t tx;
    uint64_t tx_errors;
    uint64_t rejoins;        /* joined again after an address or link change */
    uint64_t foreign;        /* messages from another controller commanding the same devices */
    const pw_latency *react; /* meter reading in -> first command out; NULL if not measured */
} pw_transport_stats;

/* What a one-shot test read found (the commissioning page's "Test read"). Filled by the
 * transport; borrowed by the done callback for the call. */
typedef struct pw_transport_test_result {
    bool ok;
    double line_a[PW_LINES]; /* amperes per grid line; NaN for a line the meter does not read */
    bool has_serial;
    uint32_t serial;
    bool has_energy;
    uint64_t energy_wh;
    uint32_t elapsed_ms; /* from the start of the test to its answer */
    /* Polled meters (Modbus): the connection to the gateway was made; the device itself
     * answered something (a reading, or an exception of its own: not the gateway's 10 "path
     * unavailable" or 11 "target device failed to respond", not a timeout). A scan of unit ids
     * tells a unit that is there but reads another map from one that is not there. */
    bool connected;
    bool answered;
    char map[64];    /* what was read, for people ("Eastron SDM630 (v2)"); "" if nothing */
    char error[320]; /* when !ok: what failed, in words a person can act on */
} pw_transport_test_result;

/* What a transport knows of one of its chargers beyond the core's report (OCPP: the connection,
 * what the charge point says of itself, whether it takes its limits). */
typedef struct pw_transport_charger_info {
    bool connected;
    char vendor[24], model[24], firmware[52];
    char profile[12]; /* "accepted", "rejected", "ignored", "waiting", "none" */
    char problem[128];
    bool default_profile; /* the failsafe default is installed */
    char measurands[128];
    char tx_id[24], id_tag[24];
    uint32_t writes_today;
    /* Local controller: the upstream CSMS link, "connected", "connecting" or why it is down;
     * "" without an upstream. */
    char upstream[160];
    size_t upstream_queued; /* the charge point's calls waiting for the CSMS */
} pw_transport_charger_info;

typedef void (*pw_transport_test_done)(void *ud, const pw_transport_test_result *r);

#define PW_TRANSPORT_TEST_BUSY (-1) /* test_read: a test read is already in flight */

typedef struct pw_transport_ops {
    const char *name;           /* "lan", "defa": the metrics' transport label */
    enum pw_cfg_link_kind kind; /* the links it serves */
    /* Opens its sockets from env->cfg. Returns 0, or -1 with a message a person can act on. */
    int (*start)(pw_transport *t, const pw_transport_env *env, char *err, size_t err_size);
    /* How chargers on this transport report (pw_bal_timing), for cfg. */
    void (*timing)(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out);
    /* Sends the due commands of its chargers (a transport may send more, a whole plan) and
     * confirms each with pw_ctl_sent. Called after every run. NULL for meter-only ones. */
    void (*send)(pw_transport *t, uint64_t now, int64_t wall);
    /* Once per tick, outside the reaction path (DEFA emits its frame). May be NULL. */
    void (*tick)(pw_transport *t, uint64_t now);
    /* A new config is in force: re-index devices (state of devices that stay is kept). */
    void (*reconfigure)(pw_transport *t, const pw_cfg *cfg);
    /* The LAN address changed (net/watch): join again on addr. Returns 0 or -1. May be NULL. */
    int (*net_changed)(pw_transport *t, const char *addr);
    void (*stats)(const pw_transport *t, pw_transport_stats *out);
    /* Why node's meter is not being read, for people ("register 0x0006 not available on unit
     * 3: wrong meter model?"): 1 with text in out, 0 when there is nothing to say. May be
     * NULL. */
    int (*meter_problem)(const pw_transport *t, size_t node, char *out, size_t out_size);
    /* A one-shot read of the meter at link with opts, for commissioning: apart from the
     * meters it polls (they are not disturbed) and never fed to the core. Returns 0 when the
     * read started: done(ud, r) is then called exactly once on the loop, never from inside
     * test_read, soon after the read's own timeout at the latest; stop() ends a read in flight
     * ("shutting down") and its done follows from a close callback while the loop runs on.
     * Returns PW_TRANSPORT_TEST_BUSY, and done is never called, while another test read is in
     * flight (or the transport is stopping). link and opts are copied. May be NULL. */
    int (*test_read)(pw_transport *t, const pw_cfg_link *link, const pw_cfg_meter_opts *opts,
                     pw_transport_test_done done, void *ud);
    /* Details of charger i for the state document: 1 with out filled, 0 if none. May be NULL. */
    int (*charger_info)(const pw_transport *t, size_t charger, pw_transport_charger_info *out);
    /* Closes every handle (a test read in flight is ended, see test_read); the memory is freed
     * once they are closed. */
    void (*stop)(pw_transport *t);
} pw_transport_ops;

/* Each driver embeds this as its first member. */
struct pw_transport {
    const pw_transport_ops *ops;
};

pw_transport *pw_tr_lan_new(void);
pw_transport *pw_tr_defa_new(void);
pw_transport *pw_tr_mqtt_new(void);
pw_transport *pw_tr_modbus_new(void);
pw_transport *pw_tr_ocpp_new(void);

#endif
