/* One simulated OCPP 1.6J charge point (phasewise-sim's chargers whose link is ocpp): what it
 * says and answers on its WebSocket, its transactions, and the charging profiles it holds,
 * stacked as OCPP 1.6 section 3.13 says, giving the limit each connector applies at a time.
 *
 * Pure: no sockets, no clock. The shell passes now (monotonic ms, for intervals and timeouts)
 * and wall (Unix ms, for timestamps and profile schedules) into every call, sends the frames
 * handed to sink.send, feeds each connector's state from the model with pw_simocpp_update and
 * applies pw_simocpp_limit to the model. Messages are built and read with the codec
 * (pw_ocpp.h). */
#ifndef PW_SIMOCPP_H
#define PW_SIMOCPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_ocpp.h"

#define PW_SIMOCPP_MAX_CONNECTORS 8
#define PW_SIMOCPP_MAX_PROFILES   16    /* MaxChargingProfilesInstalled */
#define PW_SIMOCPP_MAX_STACK      8     /* ChargeProfileMaxStackLevel ("stack0": 0) */
#define PW_SIMOCPP_VOLTAGE_V      230.0 /* per phase: W limits to A */
#define PW_SIMOCPP_CALL_TIMEOUT   30000 /* ms an unanswered call waits before it is given up */
#define PW_SIMOCPP_FINISHING_MS   1000  /* Finishing lasts this long after the car left */
#define PW_SIMOCPP_VENDOR         "phasewise-sim"

/* How a charge point deviates from the spec's full smart charging, to exercise phasewise's
 * quirk handling. Its BootNotification model is "sim-<name>". */
enum pw_simocpp_quirk {
    PW_SIMOCPP_DEFAULT = 0,
    PW_SIMOCPP_TX_DEFAULT_ONLY, /* "tx-default-only": rejects TxProfile */
    PW_SIMOCPP_STACK0,          /* "stack0": rejects stack levels above 0 */
    PW_SIMOCPP_WHOLE_AMPS,      /* "whole-amps": rejects limits with decimals */
    PW_SIMOCPP_IGNORE,          /* "ignore": accepts profiles, never applies them */
    PW_SIMOCPP_NO_OFFERED,      /* "no-offered": does not support Current.Offered */
    PW_SIMOCPP_QUIRKS
};

/* Parses a quirk name. Returns 0 or -1. */
int pw_simocpp_quirk_parse(const char *text, enum pw_simocpp_quirk *out);
/* The quirk's name ("default", ...); static storage. */
const char *pw_simocpp_quirk_name(enum pw_simocpp_quirk q);

/* Measurands a simulated charge point can sample (MeterValuesSampledData), as bits. */
enum {
    PW_SIMOCPP_M_CURRENT = 1, /* Current.Import per phase */
    PW_SIMOCPP_M_OFFERED = 2, /* Current.Offered */
    PW_SIMOCPP_M_ENERGY = 4,  /* Energy.Active.Import.Register, Wh */
    PW_SIMOCPP_M_POWER = 8,   /* Power.Active.Import, W */
};

/* One connector: the charger of the facility behind it. */
typedef struct pw_simocpp_connector_cfg {
    bool present;      /* false: a connector number the config does not use (always Available) */
    double max_a;      /* the charger's maximum: its limit while no profile is in force */
    uint8_t wiring[3]; /* grid line (1..3) of terminal L1..L3, 0 = not wired (as pw_bal) */
    bool phase_ln;     /* phase labels "L1-N" instead of "L1" (lenient parsing is exercised) */
    char tags[3][PW_OCPP_TAG_LEN]; /* idTags its sessions use in turn */
} pw_simocpp_connector_cfg;

typedef struct pw_simocpp_opts {
    char cp_id[49];
    enum pw_simocpp_quirk quirk;
    size_t n_connectors; /* 1..PW_SIMOCPP_MAX_CONNECTORS; connectors[0] is connector 1 */
    pw_simocpp_connector_cfg connectors[PW_SIMOCPP_MAX_CONNECTORS];
} pw_simocpp_opts;

/* What a connector's charger is doing now, from the model. */
typedef struct pw_simocpp_view {
    uint32_t session_id; /* the car's session; 0 = no car plugged in */
    bool charging;       /* the car draws current (IEC 61851 state C) */
    double current_a[3]; /* per charger terminal L1..L3 */
    double offered_a;    /* what the pilot offers now (0 = paused) */
    double energy_wh;    /* the charger's energy register */
} pw_simocpp_view;

/* Where output goes: one whole text frame to send now (borrowed for the call). */
typedef struct pw_simocpp_sink {
    void *ud;
    void (*send)(void *ud, const char *text, size_t len);
} pw_simocpp_sink;

typedef struct pw_simocpp pw_simocpp;

/* A charge point, not connected, with no profiles and no transactions (opts and sink copied).
 * Free with pw_simocpp_free. Never NULL. */
pw_simocpp *pw_simocpp_new(const pw_simocpp_opts *opts, const pw_simocpp_sink *sink);
void pw_simocpp_free(pw_simocpp *cp);

/* The WebSocket opened: BootNotification goes out; statuses, unfinished transaction messages
 * and heartbeats follow once the central system accepts it. */
void pw_simocpp_connected(pw_simocpp *cp, uint64_t now, int64_t wall);
/* The WebSocket is gone: calls in flight and queued are dropped, except transaction messages,
 * which go out again after the next boot (as a charge point's offline queue). Profiles stay. */
void pw_simocpp_disconnected(pw_simocpp *cp);
bool pw_simocpp_is_booted(const pw_simocpp *cp); /* connected and BootNotification accepted */

/* One text frame from the central system: its calls are answered (CALLERROR for what the codec
 * refuses or the charge point does not implement), results of our calls taken. */
void pw_simocpp_receive(pw_simocpp *cp, const char *text, size_t len, uint64_t now, int64_t wall);

/* The connector's charger as the model has it now (connector 1..n): a new session starts a
 * transaction (Preparing, StartTransaction), its end stops it (StopTransaction reason
 * EVDisconnected, Finishing, Available, TxProfiles removed), statuses follow the state. */
void pw_simocpp_update(pw_simocpp *cp, int connector, const pw_simocpp_view *v, uint64_t now,
                       int64_t wall);

/* Time passes: heartbeats, MeterValues, boot retries, Finishing -> Available, call timeouts.
 * Call at pw_simocpp_next_deadline (or more often). */
void pw_simocpp_poll(pw_simocpp *cp, uint64_t now, int64_t wall);
/* When pw_simocpp_poll next has work; UINT64_MAX if none. */
uint64_t pw_simocpp_next_deadline(const pw_simocpp *cp);

/* The limit a connector applies at wall time. */
typedef struct pw_simocpp_limit {
    double limit_a;   /* per phase; the connector's max_a when unconstrained */
    uint8_t phases;   /* numberPhases of the profile that set it (3 when it gives none) */
    bool constrained; /* some profile is in force (and the charge point applies profiles) */
    int profile_id;   /* the TxProfile / TxDefaultProfile in force, else the
                         ChargePointMaxProfile's; 0 = none */
} pw_simocpp_limit;

/* The composite limit of connector (1..n) at wall: within each purpose the highest stack level
 * in force wins (a connector's own TxDefaultProfile wins a tie with connector 0's); a TxProfile
 * of the running transaction overrides TxDefaultProfile; ChargePointMaxProfile caps the result
 * (the simulator caps each connector at it; a real charge point shares it). W limits become A
 * with 230 V per phase and numberPhases (3 when absent). No profile at all, or the "ignore"
 * quirk: the connector's max_a. Always capped at max_a. */
void pw_simocpp_limit_at(const pw_simocpp *cp, int connector, int64_t wall, pw_simocpp_limit *out);

/* The typed handlers behind pw_simocpp_receive, for tests and tools. */

/* SetChargingProfile (p->connector is the request's connectorId): Accepted (stored, replacing
 * a profile with the same id or the same connector, purpose and stack level) or Rejected:
 * connector out of range, ChargePointMaxProfile not on 0, TxProfile on 0, without a running
 * transaction or for another one, stack level beyond ChargeProfileMaxStackLevel, no periods,
 * too many profiles, or refused by the quirk. */
enum pw_ocpp_answer pw_simocpp_set_profile(pw_simocpp *cp, const pw_ocpp_profile *p, int64_t wall);

/* ClearChargingProfile's criteria (absent fields match anything; with an id only the id). */
typedef struct pw_simocpp_clear {
    bool has_id, has_connector, has_purpose, has_stack_level;
    int id, connector, stack_level;
    enum pw_ocpp_purpose purpose;
} pw_simocpp_clear;
/* Removes the matching profiles: Accepted if any, else PW_OCPP_ANSWER_UNKNOWN. */
enum pw_ocpp_answer pw_simocpp_clear_profiles(pw_simocpp *cp, const pw_simocpp_clear *c);

/* ChangeConfiguration: Accepted (MeterValuesSampledData of supported measurands,
 * MeterValueSampleInterval 1..3600), Rejected (other values, other known keys) or
 * PW_OCPP_ANSWER_NOT_SUPPORTED (unknown keys). */
enum pw_ocpp_answer pw_simocpp_change_config(pw_simocpp *cp, const char *key, const char *value,
                                             uint64_t now);
/* GetConfiguration of keys (n = 0: all) into out; unknown keys in out->unknown. */
void pw_simocpp_get_config(const pw_simocpp *cp, const char *const *keys, size_t n,
                           pw_ocpp_config_answer *out);

/* Read side. */
unsigned pw_simocpp_measurands(const pw_simocpp *cp); /* PW_SIMOCPP_M_* bits configured */
uint32_t pw_simocpp_sample_interval_s(const pw_simocpp *cp);
size_t pw_simocpp_profile_count(const pw_simocpp *cp);
/* The connector's running transaction id as the central system gave it; "" if none. */
const char *pw_simocpp_tx_id(const pw_simocpp *cp, int connector);
/* The status last sent (or due) for connector 0..n. */
enum pw_ocpp_status pw_simocpp_status(const pw_simocpp *cp, int connector);

/* The MeterValues of connector (1..n) for view v at wall, with exactly the configured
 * measurands (per-phase currents only on wired terminals); tx_id "" outside a transaction. */
void pw_simocpp_meter(const pw_simocpp *cp, int connector, const pw_simocpp_view *v, int64_t wall,
                      pw_ocpp_meter *out);

/* ConnectorPhaseRotation for the opts' connectors ("0.RST, 1.STR"; "NotApplicable" for a
 * 1-phase charger) into out. */
void pw_simocpp_rotation(const pw_simocpp_opts *o, char *out, size_t out_size);

#endif
