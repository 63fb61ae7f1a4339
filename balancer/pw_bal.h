/* Phase-aware allocation of charging current over a facility's circuit tree. Pure: no I/O, no
 * clock reads, no global state; time comes in as monotonic milliseconds. The contract is the
 * "Balancer contract" in DESIGN.md: never plan an overload, max-min fair within a priority class,
 * 0 or at least the minimum, conservative on stale data. */
#ifndef PW_BAL_H
#define PW_BAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_LINES          3
#define PW_BAL_ID_LEN     32 /* ids: short machine names, NUL-terminated */
#define PW_BAL_NAME_LEN   64 /* display names, NUL-terminated */
#define PW_BAL_REASON_LEN 128

enum pw_grid {
    PW_GRID_TN = 0, /* 230 V line-neutral: a 1-phase car loads one line */
    PW_GRID_IT = 1, /* 230 V line-line, no neutral: a 1-phase car loads two lines */
};

/* A node of the circuit tree: the main fuse (index 0, parent -1) or a sub-distribution. */
typedef struct pw_bal_node_spec {
    char id[PW_BAL_ID_LEN];
    char name[PW_BAL_NAME_LEN];
    int parent;                        /* index of the parent node; -1 only for node 0 */
    double limit_a[PW_LINES];          /* rated current per grid line L1..L3 */
    double margin_a;                   /* kept free on every line */
    double max_imbalance_a;            /* max difference between lines, 0 = no limit */
    bool metered;                      /* a meter reports this node's total per line */
    uint32_t meter_timeout_ms;         /* reading older than this is stale */
    double meter_fallback_a[PW_LINES]; /* non-EV load budgeted when stale and nothing worse seen */
    double reserve_a[PW_LINES];        /* non-EV load of the node's own (lighting, ventilation, a
                                          lift) budgeted on each line where no meter sees it: on
                                          an unmetered node; 0 = none */
} pw_bal_node_spec;

/* How a charger's transport reports: per charger, since a LAN charger sends a status every
 * 1-30 s and an OCPP charge point every 10-60 s. A zero field takes the facility's params. */
typedef struct pw_bal_timing {
    uint32_t status_min_ms;   /* a changed status comes at most this often */
    uint32_t status_max_ms;   /* and at least this often; a charger silent longer missed one */
    uint32_t status_delay_ms; /* how much older than its arrival a status may be */
    uint32_t offline_ms;      /* silent this long: offline */
    bool keeps_limit;         /* no lease: a silent charger keeps applying its last limit (OCPP
                                 profiles), so that is budgeted, not only its failsafe */
} pw_bal_timing;

/* A charger and how it is wired. */
typedef struct pw_bal_charger_spec {
    char id[PW_BAL_ID_LEN];
    char name[PW_BAL_NAME_LEN];
    int node;                 /* index of the node that feeds it */
    uint8_t wiring[PW_LINES]; /* grid line (1..3) of terminal L1..L3; 0 = terminal not wired */
    double min_a;             /* IEC 61851: never offer less, except 0 (default 6) */
    double max_a;             /* hardware or cable limit */
    double failsafe_a;        /* what it offers when its lease runs out */
    int priority;             /* higher classes are served first */
    double weight;            /* share within a class, > 0 (default 1) */
    bool can_switch_phases;   /* may be told to charge on 1 phase instead of 3 */
    pw_bal_timing timing;     /* its transport's timing; zero fields: the params' */
} pw_bal_charger_spec;

typedef struct pw_bal_params {
    uint32_t reaction_ms;        /* how long a car may take to follow a new limit (5 s) */
    uint32_t min_run_ms;         /* a started car keeps running at least this long (15 min) */
    uint32_t min_pause_ms;       /* a paused car stays paused at least this long (5 min) */
    uint32_t offline_ms;         /* a charger silent this long is offline (90 s: three of the
                                    protocol's 30 s status intervals, so one lost status never
                                    marks an idle charger offline) */
    uint32_t status_min_ms;      /* chargers send a changed status at most this often (1 s,
                                    PW_PROTO_STATUS_MIN_INTERVAL_MS) */
    uint32_t status_max_ms;      /* and at least this often (30 s, PW_PROTO_STATUS_MAX_INTERVAL_MS):
                                    a charger silent longer has missed a status and is budgeted
                                    at no less than its failsafe current until it is heard again */
    uint32_t status_delay_ms;    /* how much older than its arrival a status or a meter reading
                                    may be (250 ms) */
    double hysteresis_a;         /* raises smaller than this are not sent (1 A) */
    double trim_headroom_a;      /* a car drawing less is trimmed to its draw plus this (2 A) */
    uint32_t probe_ms;           /* trimmed offers are probed upward again after this (5 min) */
    uint32_t max_phase_switches; /* per charging session (4) */
    double active_phase_a;       /* a terminal above this current is an active phase (1 A) */
    uint32_t phase_hold_ms;      /* a car switched to 1 phase stays there this long (5 min) */
    uint32_t meter_history_ms;   /* a stale meter budgets the worst non-EV load seen this long
                                    (10 min) */
    bool oneshot;                /* plan from this input alone: no hold times from the past */
} pw_bal_params;

typedef struct pw_bal_facility {
    enum pw_grid grid;
    const pw_bal_node_spec *nodes; /* nodes[0] is the root */
    size_t n_nodes;
    const pw_bal_charger_spec *chargers;
    size_t n_chargers;
    pw_bal_params params;
} pw_bal_facility;

/* Fills p with the defaults noted on each field (oneshot off). */
void pw_bal_default_params(pw_bal_params *p);

/* Checks a facility for consistency (tree shape, limits, wiring, min <= max, failsafe sums fit
 * each node). Returns 0, or -1 with a message naming the field ("chargers[3].min_a: ...") in
 * err. */
int pw_bal_validate(const pw_bal_facility *f, char *err, size_t err_size);

typedef struct pw_bal pw_bal;

/* Creates a balancer for a validated facility; copies everything it needs from f and sizes all
 * memory a run needs (pw_bal_run allocates nothing). Never returns NULL (aborts on OOM). Free
 * with pw_bal_free (NULL is fine). */
pw_bal *pw_bal_new(const pw_bal_facility *f);
void pw_bal_free(pw_bal *b);

enum pw_car_state {
    PW_CAR_NONE = 0,      /* nothing plugged in */
    PW_CAR_CONNECTED = 1, /* plugged in, not drawing yet */
    PW_CAR_CHARGING = 2,
    PW_CAR_SUSPENDED = 3, /* the car paused itself (full, schedule) */
    PW_CAR_FAULT = 4,
};

/* A charger's latest report. */
typedef struct pw_bal_measure {
    enum pw_car_state car;
    double current_a[PW_LINES]; /* per charger terminal L1..L3 */
    double applied_limit_a;     /* what the charger currently offers */
    uint8_t applied_phases;     /* 1 or 3, 0 = unknown */
} pw_bal_measure;

/* Feed measurements as they arrive, in time order; they are copied. now_ms is monotonic, node
 * and charger are indices into the facility (out of range: ignored). A reading with a non-finite
 * current is ignored, so that a broken input ages into the conservative budget instead of
 * reading as 0 A; a charger's negative current counts as 0. A meter reading is taken to contain
 * what the chargers below it had reported by then: a status arriving later describes the draw
 * after it, unless it may predate it (held back by status_min_ms, or within status_delay_ms),
 * and then it can only lower the draw the reading is taken to contain. */
void pw_bal_set_meter(pw_bal *b, size_t node, const double line_a[PW_LINES], uint64_t now_ms);
void pw_bal_set_charger(pw_bal *b, size_t charger, const pw_bal_measure *m, uint64_t now_ms);

enum pw_bal_reason {
    PW_REASON_NO_CAR = 0,
    PW_REASON_MAX,        /* at the charger's own maximum */
    PW_REASON_NODE_LIMIT, /* bound by a node line limit */
    PW_REASON_IMBALANCE,  /* bound by a node's imbalance limit */
    PW_REASON_CAR_DRAW,   /* trimmed: car draws less than offered */
    PW_REASON_PAUSED_PRIORITY,
    PW_REASON_PAUSED_ROTATION,
    PW_REASON_PAUSED_NO_ROOM,
    PW_REASON_WAITING_CUTS, /* raise held until dependent cuts are seen */
    PW_REASON_METER_STALE,  /* budget conservative because a meter is stale */
    PW_REASON_OFFLINE,
    PW_REASON_FAULT,
    PW_REASON_SUSPENDED,       /* the car paused itself; its minimum is held so it can resume */
    PW_REASON_PAUSED_OPERATOR, /* paused by an operator's command (pw_bal_set_override) */
    PW_REASON_COUNT
};

typedef struct pw_bal_result {
    double limit_a; /* 0 = paused, else >= min_a */
    uint8_t phases; /* phase count to use: 1 or 3 */
    enum pw_bal_reason reason;
    char reason_text[PW_BAL_REASON_LEN]; /* "limited by node 'Garage B' line L2" */
    double line_a[PW_LINES]; /* load budgeted on grid lines L1..L3: the plan, or for a silent or
                                faulty charger what it may still draw */
    double demand_a;         /* the most it could use now: max_a, or draw + headroom when trimmed */
    int bind_node;           /* node of the binding constraint, -1 if none */
    uint8_t bind_line;       /* its grid line 1..3; 0 for an imbalance limit or none */
    uint64_t next_turn_ms;   /* paused by rotation: estimated resume time; else 0 */
} pw_bal_result;

typedef struct pw_bal_node_result {
    double non_ev_a[PW_LINES];  /* budgeted non-EV load */
    double ev_a[PW_LINES];      /* planned EV load, including what silent chargers may draw */
    double planned_a[PW_LINES]; /* non-EV + planned EV load */
    double limit_a[PW_LINES];   /* limit minus margin */
    double headroom_a[PW_LINES];
    bool meter_stale;
} pw_bal_node_result;

/* Computes a new plan for time now_ms. Returns 0. Results stay valid until the next run or
 * free (borrowed). */
int pw_bal_run(pw_bal *b, uint64_t now_ms);
const pw_bal_result *pw_bal_results(const pw_bal *b);           /* n_chargers entries */
const pw_bal_node_result *pw_bal_node_results(const pw_bal *b); /* n_nodes entries */

/* The earliest time the balancer wants to run again (a hold time ends, a probe is due);
 * UINT64_MAX if none. */
uint64_t pw_bal_next_deadline(const pw_bal *b);

/* ---- operator overrides: run-time caps the balancer honours like the config's limits ---- */

/* Charger's cap and priority class instead of the config's. cap_a: INFINITY (or NaN) for none;
 * below the charger's min_a it pauses the charger (reason PW_REASON_PAUSED_OPERATOR), else it
 * offers at most min(max_a, cap_a) (reason "max", naming the operator's maximum). priority:
 * the config's to go back to it. A lower cap is a cut and applies at the next run; a higher one
 * (or none) is a raise under the usual rules. Out of range: ignored. No allocation. */
void pw_bal_set_override(pw_bal *b, size_t charger, double cap_a, int priority);

/* A lower limit per grid line for node, on top of its configured one: the limit in force is the
 * smaller (INFINITY or NaN: none; negative counts as 0). Reasons name it where it binds ("the
 * facility limit" at node 0). Same rules as pw_bal_set_override. */
void pw_bal_set_node_cap(pw_bal *b, size_t node, const double cap_a[PW_LINES]);

/* Short machine name of a reason ("node_limit"); static storage. */
const char *pw_bal_reason_name(enum pw_bal_reason r);

#endif
