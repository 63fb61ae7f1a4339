/* A device transport: speaks one protocol on the loop, turns what devices say into pw_ctl reports
 * and sends what pw_ctl marks due. One file per protocol, like chrony's refclock drivers; the
 * codec stays pure in its own folder (protocol/ for the LAN and DEFA frames). Identity, units,
 * replay and timing of a protocol stay inside its driver: the core sees config indices and
 * amperes. Everything here runs on the loop thread. */
#ifndef PW_TRANSPORT_H
#define PW_TRANSPORT_H

#include <stdint.h>
#include <uv.h>

#include "pw_bal.h"
#include "pw_cfg.h"
#include "pw_ctl.h"
#include "pw_latency.h"

typedef struct pw_transport pw_transport;

/* Lent by the shell for the transport's lifetime. */
typedef struct pw_transport_env {
    uv_loop_t *loop;
    pw_ctl *ctl;        /* inbox, and the commands to send */
    const pw_cfg *cfg;  /* the config the appliance started with: sockets are opened from it;
                           later configs arrive through reconfigure */
    const uint8_t *key; /* the facility key (PW_PROTO_KEY_LEN bytes) */
    uint32_t boot_id;   /* the appliance's boot id as a sender */
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
    /* Closes every handle; the memory is freed once they are closed. */
    void (*stop)(pw_transport *t);
} pw_transport_ops;

/* Each driver embeds this as its first member. */
struct pw_transport {
    const pw_transport_ops *ops;
};

pw_transport *pw_tr_lan_new(void);
pw_transport *pw_tr_defa_new(void);

#endif
