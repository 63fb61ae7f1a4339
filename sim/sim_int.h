/* Internals of phasewise-sim shared by its files: the options, the running simulator (model,
 * sockets, protocol senders, impairment) and the functions each file provides. */
#ifndef PW_SIM_INT_H
#define PW_SIM_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "pw_cfg.h"
#include "pw_net.h"
#include "pw_proto.h"
#include "pw_simimpair.h"
#include "pw_simmodel.h"

#define SIM_COMP           "sim"
#define SIM_TICK_MS        50 /* real time between model advances */
#define SIM_REPLAY_SENDERS 4  /* balancers whose replay state is kept */
#define SIM_KEY_WAIT_MS    10000
#define SIM_KEY_RETRY_MS   250
#define SIM_MAX_KV         64 /* --ocpp-password / --ocpp-quirk entries */

/* One CP_ID=VALUE option; both point into argv. */
typedef struct sim_kv {
    const char *key;
    size_t key_len;
    const char *value;
} sim_kv;

typedef struct sim_opts {
    const char *config;
    const char *key_file;
    const char *report;
    const char *group;         /* NULL = the config's */
    int port;                  /* 0 = the config's */
    const char *interface;     /* NULL = the config's */
    double speed;              /* simulated ms per real ms */
    double duration_s;         /* simulated seconds; 0 = until a signal */
    uint32_t meter_ms;         /* meter interval, simulated */
    uint32_t report_ms;        /* report line interval, simulated */
    double loss, dup, reorder; /* packet impairment probabilities, both directions */
    pw_sim_outage outages[PW_SIM_MAX_OUTAGES]; /* silent meters and chargers */
    size_t n_outages;
    uint32_t modbus_delay_ms;                      /* real ms before a Modbus answer goes out */
    pw_sim_outage modbus_down[PW_SIM_MAX_OUTAGES]; /* Modbus gateways not listening */
    size_t n_modbus_down;
    const char *ocpp_url; /* base the charge point identity is appended to; NULL = the config's */
    const char *ocpp_ca;  /* wss: PEM CA to check the central system with; NULL = the system's */
    sim_kv ocpp_passwords[SIM_MAX_KV]; /* HTTP Basic password per charge point */
    size_t n_ocpp_passwords;
    sim_kv ocpp_quirks[SIM_MAX_KV]; /* quirk mode per charge point */
    size_t n_ocpp_quirks;
    sim_kv ocpp_drops[SIM_MAX_KV]; /* START:SECONDS a charge point's connection is lost */
    size_t n_ocpp_drops;
    pw_sim_params model;
} sim_opts;

/* One device speaking the protocol: a charger or a meter gateway. */
typedef struct sim_sender {
    uint32_t id;
    uint32_t seq;
} sim_sender;

typedef struct sim_charger_tx {
    sim_sender s;
    pw_sim_charger_view last; /* what was last sent */
    uint64_t last_real;       /* loop time of that send */
    bool sent;
} sim_charger_tx;

typedef struct sim_counters {
    uint64_t tx, tx_errors;
    uint64_t rx, rx_alloc, rx_heartbeat, rx_rejected, rx_replay, rx_unknown_charger;
} sim_counters;

typedef struct sim_modbus sim_modbus; /* mbserver.c */
typedef struct sim_mqtt sim_mqtt;     /* mqttpub.c */
typedef struct sim_ocpp sim_ocpp;     /* ocpp_cp.c */

typedef struct sim_app {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_timer_t key_retry;
    uv_signal_t sig_int, sig_term;
    sim_opts o;
    pw_cfg *cfg;
    pw_sim *model;
    uint8_t key[PW_PROTO_KEY_LEN];
    uint64_t key_wait_start;
    pw_net *net;      /* the phasewise group */
    pw_net *defa_net; /* DEFA meter frames, only if a node has a DEFA meter */
    uint32_t boot_id;
    sim_charger_tx *chargers; /* n_chargers */
    sim_sender *meters;       /* n_nodes; id 0 = no phasewise meter at that node */
    double *meter_energy_wh;  /* n_nodes, import registers */
    sim_modbus *modbus;       /* meters served over Modbus TCP; NULL if none */
    sim_mqtt *mqtt;           /* meters published to an MQTT broker; NULL if none */
    sim_ocpp *ocpp;           /* OCPP charge points; NULL before start */
    pw_proto_replay replay[SIM_REPLAY_SENDERS];
    uint32_t replay_ids[SIM_REPLAY_SENDERS];
    pw_sim_impair tx_imp, rx_imp; /* to the network / from it */
    FILE *report;
    uint64_t t0_real; /* loop time at simulated time 0 */
    uint64_t last_announce_real;
    uint64_t next_meter_ms, next_report_ms;
    bool running; /* network up, ticking */
    bool stopping;
    int exit_code;
    sim_counters c;
} sim_app;

/* agent.c: the protocol side. */
int sim_agent_start(sim_app *app);  /* opens sockets and announces; 0 or -1 (logged) */
void sim_agent_close(sim_app *app); /* closes the sockets */
/* Advances the model to simulated time sim_ms, sending what falls due on the way. */
void sim_agent_advance(sim_app *app, uint64_t sim_ms);
/* Delivers datagrams held back for reordering. */
void sim_agent_flush(sim_app *app);
void sim_agent_send_announces(sim_app *app);

/* mbserver.c: meters on Modbus TCP links served as Modbus TCP servers, one per port, on the
 * interface's address (127.0.0.1 unless --interface). start: 0 or -1 (logged); update: the
 * node's new reading; tick: opens and closes the listeners for --modbus-down; close: closes every
 * handle; free: after the loop has run dry. */
int sim_modbus_start(sim_app *app);
void sim_modbus_update(sim_app *app, size_t node, const double amps[PW_LINES], double energy_wh);
void sim_modbus_tick(sim_app *app, uint64_t sim_ms);
void sim_modbus_close(sim_app *app);
void sim_modbus_free(sim_app *app);

/* mqttpub.c: meters on MQTT links published to the config's broker, driven on the loop.
 * start: 0 or -1 (logged); publish: one reading of the node; close/free as for modbus. */
int sim_mqtt_start(sim_app *app);
void sim_mqtt_publish(sim_app *app, size_t node, const double amps[PW_LINES], double energy_wh);
void sim_mqtt_close(sim_app *app);
void sim_mqtt_free(sim_app *app);

/* ocpp_cp.c: chargers on OCPP links as OCPP 1.6J charge points, one WebSocket client each
 * (grouped by charge point identity). start: 0 or -1 (logged); tick: connects, feeds the model's
 * state to each charge point and applies their profiles' limits to the model; close: closes the
 * connections; free: after the loop has run dry. */
int sim_ocpp_start(sim_app *app);
void sim_ocpp_tick(sim_app *app);
void sim_ocpp_close(sim_app *app);
void sim_ocpp_free(sim_app *app);

/* report.c: one JSON line of ground truth; returns 0 or -1 on a write error. */
int sim_report_write(sim_app *app);

/* main.c: simulated time now, from the loop clock. */
uint64_t sim_now_ms(sim_app *app);

#endif
