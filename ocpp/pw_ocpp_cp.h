/* One OCPP 1.6J charge point as phasewise, its central system, sees it: a pure state machine per
 * WebSocket connection. It answers the charge point's calls, makes its own calls one at a time
 * with a timeout (setup after boot, the failsafe default profile, limits as charging profiles),
 * and keeps what each connector is doing in domain terms for the transport to report.
 *
 * Pure like the rest of ocpp/: the shell passes every message and now (monotonic ms) and wall
 * (Unix ms) in, sends the frames handed to sink.send, and calls pw_ocpp_cp_poll again at
 * pw_ocpp_cp_next_deadline. Limits follow DESIGN.md "Real devices": a default profile at the
 * failsafe current before any session; cuts go out at once and before raises; a raise waits for
 * the per-connector minimum interval and the daily write budget; what a connector may draw is
 * what it confirmed, never what it was asked. */
#ifndef PW_OCPP_CP_H
#define PW_OCPP_CP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_ocpp.h"

#define PW_OCPP_MAX_CONNECTORS 8
#define PW_OCPP_ENERGY_UNKNOWN UINT64_MAX

/* What one charger model accepts, chosen by BootNotification vendor and model, or named in the
 * config. One table in quirks.c; docs/ocpp.md lists it. */
typedef struct pw_ocpp_quirks {
    const char *name;   /* "default", "tx-default-only", ... */
    const char *vendor; /* prefix of chargePointVendor, case ignored; NULL = any */
    const char *model;  /* prefix of chargePointModel, case ignored; NULL = any */
    const char *note;   /* why, for docs and the dashboard */
    bool tx_profile;    /* takes TxProfile for a running transaction; else the dynamic limit is a
                           TxDefaultProfile one stack level above the failsafe one */
    int default_stack_level; /* the failsafe TxDefaultProfile's stack level (the lowest: 0) */
    int max_stack_level;     /* the highest stack level it takes */
    enum pw_ocpp_profile_kind default_kind; /* kind of the failsafe default profile */
    bool default_on_connector0; /* failsafe default on connector 0 (all connectors), else on each */
    bool whole_amps;            /* limits rounded down to whole amperes, not 0.1 A */
    bool number_phases;         /* honours numberPhases (1p/3p switching) */
} pw_ocpp_quirks;

/* The table's entry for a vendor and model: the first that matches; the "default" entry if
 * none. Never NULL. */
const pw_ocpp_quirks *pw_ocpp_quirks_find(const char *vendor, const char *model);
/* The entry of that name, or NULL. */
const pw_ocpp_quirks *pw_ocpp_quirks_by_name(const char *name);
/* The i-th entry, or NULL past the last (for docs, the UI and config checks). */
const pw_ocpp_quirks *pw_ocpp_quirks_at(size_t i);

/* One connector the config assigns to a charger. */
typedef struct pw_ocpp_connector_cfg {
    int connector; /* 1..PW_OCPP_MAX_CONNECTORS */
    double min_a, max_a, failsafe_a;
    bool can_switch_phases;
    char rotation[4]; /* expected ConnectorPhaseRotation from the config's wiring: "RST", "STR",
                         ...; "" for a 1-phase charger (nothing to compare) */
    double prior_a;   /* what it may apply from before this connection (a profile phasewise sent
                         over an earlier one); negative: unknown, taken as max_a. Budgeted while a
                         car is there and this connection has not seen its transaction begin or
                         end, nor a profile of its own accepted */
} pw_ocpp_connector_cfg;

typedef struct pw_ocpp_cp_opts {
    uint32_t meter_interval_s; /* MeterValueSampleInterval to set (10) */
    uint32_t heartbeat_s;      /* interval given in BootNotification.conf (300) */
    uint32_t call_timeout_ms;  /* an unanswered call of phasewise's is given up after (30000) */
    uint32_t min_interval_ms;  /* a raise goes out no sooner than this after the connector's last
                                  profile (10000); cuts are never held back */
    uint32_t daily_writes;     /* profiles per connector per 24 h before raises wait (500); cuts
                                  count too but never wait; 0 = no budget */
    uint32_t ignore_ms;        /* a connector drawing above its accepted limit this long after
                                  it ignores profiles (15000) */
    uint32_t flood_per_s;      /* calls per second a charge point may make on average (20); more
                                  are refused, and the connection is closed after a burst of 5
                                  seconds' worth */
    const char *quirks;        /* a name from the table overriding the vendor/model choice, or
                                  NULL */
    uint64_t *tx_seq; /* the central system's transaction id counter, shared by all its charge
                         points so ids are unique (borrowed; NULL: one of this connection's) */
    size_t n_connectors;
    pw_ocpp_connector_cfg connectors[PW_OCPP_MAX_CONNECTORS];
} pw_ocpp_cp_opts;

/* Fills o with the defaults noted on each field (no connectors). */
void pw_ocpp_cp_default_opts(pw_ocpp_cp_opts *o);

/* What one connector is doing, in domain terms (the transport maps it to pw_ctl_report). */
typedef struct pw_ocpp_evse {
    bool has_status; /* a StatusNotification was received since the connection opened */
    enum pw_ocpp_status status;
    char error_code[32];
    bool has_current;
    double current_a[3]; /* measured per charger terminal L1..L3 (unphased: on L1) */
    uint8_t phases;      /* phases it is told to use: 1 or 3 */
    double offered_a;    /* what it may draw now: Current.Offered when reported; else the limit
                            it accepted; its failsafe default outside a transaction; its maximum
                            when it rejects or ignores profiles */
    double sent_a;       /* the limit of the last profile accepted; negative: none */
    uint64_t energy_wh;  /* energy register, PW_OCPP_ENERGY_UNKNOWN if never reported */
    char tx_id[PW_OCPP_TXID_LEN]; /* running transaction, "" if none */
    char id_tag[PW_OCPP_TAG_LEN];
    int64_t tx_start_ms;
    int64_t tx_meter_start_wh;
    char problem[128];     /* why its limits do not take, for the dashboard; "" when they do */
    uint32_t writes_today; /* profiles written in the last 24 h */
} pw_ocpp_evse;

/* Where the state machine's output goes. Each callback runs inside the pw_ocpp_cp call that
 * caused it; strings are borrowed for the call; any but send may be NULL. */
typedef struct pw_ocpp_cp_sink {
    void *ud;
    /* A frame to send now (text, len bytes). Must not call back into the pw_ocpp_cp. */
    void (*send)(void *ud, const char *text, size_t len);
    /* BootNotification accepted: what the charge point says of itself and the quirks chosen. */
    void (*booted)(void *ud, const pw_ocpp_boot *b, const pw_ocpp_quirks *q);
    /* Connector's pw_ocpp_evse changed (status, meter values, transaction, offer, problem).
     * Connector 0 is the whole charge point: only its status and error_code mean anything. */
    void (*evse)(void *ud, int connector, const pw_ocpp_evse *e);
    /* A transaction ended (the evse already shows none): for the session's history. Connector 0
     * when the transaction began on an earlier connection and this one never learnt it (a
     * transaction id is learnt from StartTransaction or from MeterValues that carry one). */
    void (*tx_stopped)(void *ud, int connector, const pw_ocpp_stop_tx *s);
    /* Authorize / StartTransaction: the idTag's status (the local tag list); NULL = Accepted. */
    enum pw_ocpp_answer (*authorize)(void *ud, const char *id_tag);
    /* Something for the event log: "ocpp_rotation" (the charge point's ConnectorPhaseRotation
     * disagrees with the config), "ocpp_setup" (a setting it refused), "ocpp_profile" (a profile
     * rejected or ignored), "ocpp_error" (a CALLERROR it sent us). */
    void (*event)(void *ud, const char *kind, const char *detail);
    /* Input refused (malformed frame, schema violation, flood): counted by reason. */
    void (*rejected)(void *ud, const char *reason, const char *text);
} pw_ocpp_cp_sink;

typedef struct pw_ocpp_cp pw_ocpp_cp;

/* A new conversation on a connection that just opened (opts and sink copied). Never NULL. */
pw_ocpp_cp *pw_ocpp_cp_new(const pw_ocpp_cp_opts *opts, const pw_ocpp_cp_sink *sink, uint64_t now);
void pw_ocpp_cp_free(pw_ocpp_cp *cp);

/* The config changed for this charge point (connectors, intervals; opts copied). Limits held
 * stay; connectors no longer configured are forgotten. */
void pw_ocpp_cp_reconfigure(pw_ocpp_cp *cp, const pw_ocpp_cp_opts *opts, uint64_t now);

/* One text message from the charge point. Returns 0, or -1 when the connection should be closed
 * (a flood beyond its burst). Malformed input is answered (a CALLERROR when it can be) and
 * reported through sink.rejected; it changes nothing else. */
int pw_ocpp_cp_receive(pw_ocpp_cp *cp, const char *text, size_t len, uint64_t now, int64_t wall);

/* The limit phasewise wants for a connector now (0 = pause) and the phases to use. Sent when
 * the rules allow (see the file comment); returns true when the charge point holds this limit
 * or it is on its way (the caller may then count the command as sent), false while it waits
 * for its interval, its budget, a transaction, or an answer. Without a transaction (TxProfile
 * and TxDefaultProfile quirks alike) the wish is kept and sent at StartTransaction; true then
 * only if it is at least what the connector may draw already. A wish that was rejected is not
 * tried again until it is asked for again. */
bool pw_ocpp_cp_set_limit(pw_ocpp_cp *cp, int connector, double limit_a, uint8_t phases,
                          uint64_t now);

/* Time passes: gives up calls past their timeout, sends the next queued call, re-checks whether
 * connectors follow their limits. Call at pw_ocpp_cp_next_deadline (or later). */
void pw_ocpp_cp_poll(pw_ocpp_cp *cp, uint64_t now, int64_t wall);
/* When pw_ocpp_cp_poll next has work; UINT64_MAX if none. */
uint64_t pw_ocpp_cp_next_deadline(const pw_ocpp_cp *cp);

/* Read side (borrowed, valid until the next call into cp). */
/* Connector 0: the whole charge point's StatusNotification (status, error_code). */
const pw_ocpp_evse *pw_ocpp_cp_evse(const pw_ocpp_cp *cp, int connector); /* NULL if none */
bool pw_ocpp_cp_booted(const pw_ocpp_cp *cp);
const pw_ocpp_boot *pw_ocpp_cp_boot(const pw_ocpp_cp *cp); /* zeroed before boot */
const pw_ocpp_quirks *pw_ocpp_cp_quirks(const pw_ocpp_cp *cp);
/* Setup after boot is done (configuration read, measurands and interval set, default profile
 * installed). */
bool pw_ocpp_cp_ready(const pw_ocpp_cp *cp);
/* The measurands the charge point accepted ("Current.Import,Current.Offered,..."). */
const char *pw_ocpp_cp_measurands(const pw_ocpp_cp *cp);
/* Whether the failsafe default profile is installed (accepted). */
bool pw_ocpp_cp_default_installed(const pw_ocpp_cp *cp);

typedef struct pw_ocpp_cp_stats {
    uint64_t calls_in, calls_out, results_in, errors_in, errors_out, timeouts, refused;
    uint64_t profiles_sent, profiles_rejected;
} pw_ocpp_cp_stats;
const pw_ocpp_cp_stats *pw_ocpp_cp_stats_get(const pw_ocpp_cp *cp);

#endif
