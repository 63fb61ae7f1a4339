/* The appliance's control policy: what every device last said, what every charger was told and
 * when it must be told again (a new plan, a lease renewal, a cut no report confirmed), charging
 * sessions and events. Transports feed it reports in domain units (amperes, config indices);
 * the shell runs it and hands the commands it marks due back to the transports.
 *
 * Pure, like balancer/: no sockets, no uv.h, no clock reads, no globals. Every call takes now
 * (monotonic ms) and, where history needs it, wall (Unix ms). One thread (the loop's). */
#ifndef PW_CTL_H
#define PW_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"
#include "pw_cfg.h"

#define PW_CTL_TEXT_LEN         32
#define PW_CTL_REF_LEN          40
#define PW_CTL_TAG_LEN          21 /* an OCPP IdToken: up to 20 characters */
#define PW_CTL_MAX_UNASSIGNED   64
#define PW_CTL_MAX_REJECT_KINDS 32
#define PW_CTL_ENERGY_UNKNOWN   UINT64_MAX
#define PW_CTL_LEASE_RENEW_DIV  3     /* a lease is renewed after a third of it has passed */
#define PW_CTL_CUT_CONFIRM_MS   2000  /* a cut no report confirmed goes out again after this */
#define PW_CTL_CUT_MAX_RESENDS  2     /* ... at most this often; then the renewals carry it */
#define PW_CTL_SESSION_SAVE_MS  60000 /* an open session's row is written again this often */
#define PW_CTL_REJECT_EVENT_MS  60000 /* rejected input becomes at most one event a minute */
#define PW_CTL_RETRY_MS         1000  /* a due command no transport sent is marked due again */
/* After a start, planning waits at most this long for the chargers' first statuses (pw_ctl_run). */
#define PW_CTL_START_MAX_MS 30000

/* IEC 61851 pilot states; the core's own enum, so it needs no protocol header. */
enum pw_ctl_pilot {
    PW_CTL_PILOT_A = 0, /* no car */
    PW_CTL_PILOT_B = 1, /* car connected, not charging */
    PW_CTL_PILOT_C = 2, /* charging */
    PW_CTL_PILOT_D = 3, /* charging, ventilation */
    PW_CTL_PILOT_E = 4, /* error */
    PW_CTL_PILOT_F = 5, /* charger fault */
};

/* A charger's status, converted by its transport. */
typedef struct pw_ctl_report {
    uint8_t pilot;              /* enum pw_ctl_pilot */
    int8_t ev_suspended;        /* 1/0 when the protocol says whether the car paused itself (OCPP
                                   SuspendedEV), -1: derived (pilot B after drawing current) */
    double current_a[PW_LINES]; /* per charger terminal L1..L3 */
    double offered_a;           /* the limit the charger applies now */
    uint8_t phases;             /* phases it applies, 1 or 3; 0 unknown */
    uint64_t energy_wh;         /* its lifetime energy register, PW_CTL_ENERGY_UNKNOWN if none */
    char session_ref[PW_CTL_REF_LEN]; /* its own session id or transaction id, "" if none */
    char id_tag[PW_CTL_TAG_LEN];      /* the RFID tag (OCPP idTag) that started the running
                                         transaction, "" if none or not known */
} pw_ctl_report;

/* What a device says of itself (LAN announce, OCPP BootNotification). */
typedef struct pw_ctl_device_info {
    char model[PW_CTL_TEXT_LEN];
    char firmware[PW_CTL_TEXT_LEN];
    char link[12];    /* "ethernet", "wifi", "cellular"; "" unknown */
    int16_t rssi_dbm; /* Wi-Fi signal, 0 unknown */
} pw_ctl_device_info;

/* A message from a configured charger that the transport accepted (authentic, fresh). */
typedef struct pw_ctl_seen {
    const pw_ctl_device_info *info; /* NULL: the message carried none */
    const char *address;            /* how the transport knows it, for events ("device 1001") */
    const char *restarted;          /* NULL, or why the transport thinks it restarted */
    double loss_pct;                /* messages lost on its link as the transport counts them,
                                       negative if the transport cannot tell */
} pw_ctl_seen;

/* A charging session, from plug-in to unplug, billed from the charger's energy register.
 * ref and id_tag are taken from the report that opens the session, or from the first later
 * report that carries one (OCPP: StartTransaction comes after plug-in); once set they stay. A
 * report with a different non-empty ref is a new session (replugged between two reports); an
 * empty ref while plugged in (a transaction stopped before unplug) is not. */
typedef struct pw_ctl_session {
    int64_t start_ms; /* Unix ms; with the charger, the session's identity in history */
    int64_t end_ms;   /* 0 while open */
    uint64_t register_start_wh, register_wh; /* PW_CTL_ENERGY_UNKNOWN if the charger has none */
    double peak_a;
    char ref[PW_CTL_REF_LEN];    /* the charger's session id / transaction id, "" unknown */
    char id_tag[PW_CTL_TAG_LEN]; /* who charged (OCPP idTag), "" unknown */
} pw_ctl_session;

/* Where the core's records go. Each callback runs inside the pw_ctl call that caused it; any
 * may be NULL. Strings are borrowed for the call. */
typedef struct pw_ctl_sink {
    void *ud;
    void (*event)(void *ud, int64_t wall, const char *kind, const char *subject,
                  const char *detail);
    void (*session)(void *ud, size_t charger, const pw_ctl_session *s);
    /* A limit different from the one the charger held went out (the plan's reason with it). */
    void (*limit_change)(void *ud, size_t charger, const pw_bal_result *r, int64_t wall);
} pw_ctl_sink;

typedef struct pw_ctl pw_ctl;

/* A core for cfg (borrowed until the next pw_ctl_set_config or pw_ctl_free) with each charger's
 * timing as its transport reports it (timing: n_chargers entries, copied; NULL or zero fields:
 * the facility's params). The sink is copied. Never NULL (aborts on OOM). */
pw_ctl *pw_ctl_new(const pw_cfg *cfg, const pw_bal_timing *timing, const pw_ctl_sink *sink);
void pw_ctl_free(pw_ctl *c);

/* A new facility (same contract as pw_ctl_new). Devices that stay, matched by their link, keep
 * their reports, what they were told and their sessions; devices now configured leave the
 * unassigned list. Logs a config_change event. */
void pw_ctl_set_config(pw_ctl *c, const pw_cfg *cfg, const pw_bal_timing *timing, uint64_t now,
                       int64_t wall);

/* ---- inbox: what transports heard, already mapped to config indices -------------------- */

void pw_ctl_charger_seen(pw_ctl *c, size_t charger, const pw_ctl_seen *seen, uint64_t now,
                         int64_t wall);
/* A status (implies seen). Confirms a cut the charger now applies, opens or closes its session,
 * and asks for a run within the facility's tick. Returns -1 and changes nothing for a report
 * that cannot be true (pilot out of range, a current not finite, a negative offer). */
int pw_ctl_charger_report(pw_ctl *c, size_t charger, const pw_ctl_seen *seen,
                          const pw_ctl_report *r, uint64_t now, int64_t wall);
/* A node meter's reading per grid line; asks for a run at once (cuts apply at once). A meter
 * configured with derive_l2 (3-wire IT) passes NaN for L2, and L2 is taken as L1 + L3, the one
 * bound that never under-estimates it. A reading with a value that is not finite, negative or above
 * ten times the node's fuse is refused (returns -1): the meter keeps its last reading and ages into
 * the stale budget; the refusal is counted as rejected input (transport "meter", reason
 * "implausible"). */
int pw_ctl_meter_report(pw_ctl *c, size_t node, const double line_a[PW_LINES], uint64_t now);
/* A device that speaks a protocol but is not in the config, identified by its link: listed
 * for the installer (the first sight logs an event), never given current. model may be NULL. */
void pw_ctl_unassigned(pw_ctl *c, const pw_cfg_link *link, const char *model, uint64_t now,
                       int64_t wall);
/* Input a transport refused (forged, replayed, malformed), by a short reason name: counted and
 * logged as one event per transport and reason per minute at most. */
void pw_ctl_rejected(pw_ctl *c, const char *transport, const char *reason, const char *text);

/* Open sessions found in history at start: a report carrying the same session reference while
 * the car is still plugged in continues the row instead of opening a new one. Call before the
 * charger's first report. */
void pw_ctl_resume_session(pw_ctl *c, size_t charger, const pw_ctl_session *s);

/* ---- decide and send -------------------------------------------------------------------- */

typedef struct pw_ctl_command {
    double limit_a;    /* 0 = pause; whole milliamperes, rounded down from the plan */
    uint8_t phases;    /* 1 or 3; 0 (leave as it is) when held */
    uint32_t lease_ms; /* how long the charger may hold it */
    uint32_t plan_seq; /* grows with every plan that changed something; renewals repeat it */
    bool due;          /* a new limit, a renewal, or a cut to send again */
    bool cut;          /* lower than what the charger was last told (before anything went out
                          since the start: than what it reported applying) */
    bool held;         /* no status heard from it since this core started: what it applies now
                          (an earlier run's lease, or its failsafe) is unknown, so it is told
                          nothing and never due. A transport that sends whole plans leaves it out
                          (PROTOCOL.md 5.4: it keeps its last limit until its lease runs out);
                          one that cannot finds limit_a = its failsafe current, what it falls
                          back to anyway, never a pause unless that failsafe is 0. */
} pw_ctl_command;

/* Runs the balancer if a report or a deadline asks for it and marks the commands due. Returns
 * how many are due.
 *
 * A restart resumes from what the chargers are doing. From the core's first call, nothing is
 * planned until every charger has sent a status and every metered node has been read after the
 * last of them, or until a charger not heard has been silent since then for longer than its
 * status interval allows (status_max_ms + status_delay_ms), or PW_CTL_START_MAX_MS has passed,
 * or a meter reads a line above its node's limit. Meanwhile the chargers keep the limits of the
 * run before (or their failsafe currents), which fit the fuses, instead of being planned from a
 * picture with chargers missing: a charger not heard yet, or heard after the last reading, is
 * budgeted on top of the reading that already holds its draw, and cars would be paused for room
 * they have. After that, a charger still not heard stays held (see pw_ctl_command) until its
 * first status. */
size_t pw_ctl_run(pw_ctl *c, uint64_t now, int64_t wall);
/* True while the start window is open (nothing planned yet, see pw_ctl_run). */
bool pw_ctl_starting(const pw_ctl *c);
/* n_chargers entries, borrowed until the next run or set_config. */
const pw_ctl_command *pw_ctl_commands(const pw_ctl *c);
/* A transport sent charger's current command (due or not: a transport may send a whole plan).
 * The renewal and cut-confirmation clocks start now; a changed limit is recorded. A held
 * command that went out anyway is remembered as sent, but it is no plan: no limit_change. */
void pw_ctl_sent(pw_ctl *c, size_t charger, uint64_t now, int64_t wall);
/* The earliest time pw_ctl_run should be called: now after a meter reading, within the tick
 * after a status, else the balancer's own deadline, a renewal, a cut confirmation, a session
 * save or a pending reject event; UINT64_MAX if none. */
uint64_t pw_ctl_next_deadline(const pw_ctl *c);

/* ---- operator overrides (server/command.c validates them against the config) ---------- */

#define PW_CTL_SOURCE_LEN 8 /* who gave a command: "web", "mqtt" */

/* What an operator changed of one charger at run time, instead of its config. */
typedef struct pw_ctl_override {
    bool paused;       /* offered nothing until resumed */
    bool has_priority; /* priority instead of the config's */
    int priority;
    bool has_max; /* max_a (> 0) instead of the config's maximum, when lower */
    double max_a;
    char source[PW_CTL_SOURCE_LEN]; /* who changed it last */
} pw_ctl_override;

/* A temporary lower limit on the facility's connection (node 0) per grid line, e.g. a grid
 * operator's dimming signal; it ends by itself at until_ms. */
typedef struct pw_ctl_facility_limit {
    bool active;
    double limit_a[PW_LINES];
    uint64_t until_ms; /* monotonic */
    char source[PW_CTL_SOURCE_LEN];
} pw_ctl_facility_limit;

/* Whether o changes anything (an override with nothing set is none). */
bool pw_ctl_override_active(const pw_ctl_override *o);
/* Replaces charger's override with o (copied; NULL or one with nothing set: none) and asks for a
 * run now: a pause or a lower maximum is a cut, taken back a raise. It stays across
 * pw_ctl_set_config while the charger stays (matched by its link, like its reports); a charger
 * that went takes it along, with a "command" event. Returns -1 and changes nothing for an index
 * out of range or a maximum that is not a positive number. */
int pw_ctl_set_override(pw_ctl *c, size_t charger, const pw_ctl_override *o, uint64_t now);
/* Charger's override (all false when none); borrowed until the next set_config. */
const pw_ctl_override *pw_ctl_override_get(const pw_ctl *c, size_t charger);
/* An upstream CSMS's cap on charger (OCPP local controller: its charging profiles become
 * this), apart from the operator's override so that neither hides the other: the balancer gets
 * the smaller. INFINITY or NaN: none; negative counts as 0. Asks for a run when it changes;
 * kept across pw_ctl_set_config while the charger stays. Returns -1 for an index out of range. */
int pw_ctl_set_csms_cap(pw_ctl *c, size_t charger, double cap_a, uint64_t now);
/* The CSMS's cap in force (INFINITY: none). */
double pw_ctl_csms_cap(const pw_ctl *c, size_t charger);
/* Sets the facility limit (limit_a: per line, finite, >= 0) until until_ms (> now), or clears it
 * (limit_a NULL), and asks for a run now. The core's deadline includes its end; the run at or
 * after until_ms drops it and logs a "command" event. Kept across pw_ctl_set_config. Returns -1
 * and changes nothing for values out of range. */
int pw_ctl_set_facility_limit(pw_ctl *c, const double *limit_a, uint64_t until_ms,
                              const char *source, uint64_t now);
/* The facility limit in force (active false when none); borrowed. */
const pw_ctl_facility_limit *pw_ctl_facility_limit_get(const pw_ctl *c);

/* ---- read side: state document, metrics, API, history (borrowed, loop thread) ----------- */

typedef struct pw_ctl_charger_state {
    uint64_t last_seen_ms; /* 0 = never */
    bool has_report;
    pw_ctl_report report;
    uint64_t report_ms;
    bool has_info;
    pw_ctl_device_info info;
    double loss_pct; /* negative: unknown */
    bool drew;       /* the car drew current in this session (pilot B now means suspended) */
    bool in_session;
    pw_ctl_session session;
    uint64_t session_saved_ms;
    bool resumed; /* session came from history and no report has joined it yet */
} pw_ctl_charger_state;

typedef struct pw_ctl_meter_state {
    uint64_t last_seen_ms; /* 0 = never */
    bool has_reading;
    double line_a[PW_LINES];
} pw_ctl_meter_state;

typedef struct pw_ctl_unassigned_dev {
    pw_cfg_link link;
    char model[PW_CTL_TEXT_LEN];
    uint64_t first_seen_ms, last_seen_ms;
} pw_ctl_unassigned_dev;

typedef struct pw_ctl_stats {
    uint64_t runs;        /* balancer runs */
    uint64_t plans;       /* runs that changed some charger's command */
    uint64_t cut_resends; /* commands sent again because a cut was not confirmed in time */
    uint64_t meter_rejected;
} pw_ctl_stats;

const pw_cfg *pw_ctl_config(const pw_ctl *c);
const pw_ctl_charger_state *pw_ctl_charger(const pw_ctl *c, size_t i);
const pw_ctl_meter_state *pw_ctl_meter(const pw_ctl *c, size_t node);
/* The one online rule: heard within the charger's offline time. */
bool pw_ctl_online(const pw_ctl *c, size_t i, uint64_t now);
size_t pw_ctl_online_count(const pw_ctl *c, uint64_t now);
/* The one car-state rule (what the balancer is told). */
enum pw_car_state pw_ctl_car_state(const pw_ctl *c, size_t i);
const char *pw_ctl_car_state_name(enum pw_car_state s);
/* The charger's reported draw mapped through its wiring onto grid lines L1..L3. */
void pw_ctl_charger_lines(const pw_ctl *c, size_t i, double line_a[PW_LINES]);
/* The timing in force for charger i (resolved: no zero fields). */
const pw_bal_timing *pw_ctl_timing(const pw_ctl *c, size_t i);
const pw_ctl_unassigned_dev *pw_ctl_unassigned_list(const pw_ctl *c, size_t *n);
const pw_bal *pw_ctl_balancer(const pw_ctl *c);
const pw_ctl_stats *pw_ctl_stats_get(const pw_ctl *c);

/* Refused input by transport and reason (at most PW_CTL_MAX_REJECT_KINDS kinds; later kinds
 * count under reason "other"). */
typedef struct pw_ctl_reject {
    char transport[12];
    char reason[32];
    char text[96];
    uint64_t count;
    uint64_t logged; /* count at the last event */
} pw_ctl_reject;

const pw_ctl_reject *pw_ctl_rejects(const pw_ctl *c, size_t *n);
uint64_t pw_ctl_reject_count(const pw_ctl *c, const char *transport, const char *reason);

#endif
