/* The simulated facility behind phasewise-sim and the fake-time day run: chargers that apply
 * leased limits, cars that plug in, follow the offered current with a delay, taper and leave,
 * building load per metered node, and the ground truth per node and line. Pure: no sockets, no
 * clock, no global state; time is a parameter (ms since the start of the simulation) and the same
 * seed and the same calls give the same trace. */
#ifndef PW_SIMMODEL_H
#define PW_SIMMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"

#define PW_SIM_DAY_MS    86400000ull
#define PW_SIM_VOLTAGE_V 230.0 /* per phase on TN, between lines on IT */

enum pw_sim_err {
    PW_SIM_OK = 0,
    PW_SIM_E_PARAM = -1,    /* a simulation parameter is out of range */
    PW_SIM_E_FACILITY = -2, /* the facility is not a tree or a charger's node is unknown */
};

/* When cars arrive over a day. */
enum pw_sim_pattern {
    PW_SIM_UNIFORM = 0, /* all day long, stays of 1-10 h */
    PW_SIM_EVENING = 1, /* residential: home around 17:30, leave around 07:30, some short visits */
    PW_SIM_OFFICE = 2,  /* workplace: arrive around 08:30, stay about 8.5 h */
};

/* Parses "uniform" | "evening" | "office". Returns 0 or -1. */
int pw_sim_pattern_parse(const char *text, enum pw_sim_pattern *out);
/* The pattern's name; static storage. */
const char *pw_sim_pattern_name(enum pw_sim_pattern pattern);

typedef struct pw_sim_params {
    uint64_t seed;
    int cars_per_day; /* random arrivals per simulated day; < 0 = 1.5 per charger, 0 = none
                         (cars come only from pw_sim_plug_car) */
    enum pw_sim_pattern pattern;
    double start_hour;      /* time of day at t = 0, [0, 24); < 0 = the pattern's busy hour */
    double base_load_peak;  /* building load at its daily peak, share of a metered node's
                               limit (including the metered nodes below it); 0..1 */
    bool base_load_spikes;  /* short appliance peaks on top of the daily profile */
    uint32_t reaction_ms;   /* overload lasting longer than this counts as "beyond" */
    uint32_t follow_min_ms; /* each car follows a new offer after a delay in [min, max] */
    uint32_t follow_max_ms;
    double meter_noise_a; /* +- noise on meter readings */
} pw_sim_params;

/* Fills p with the defaults: seed 1, 1.5 cars per charger and day, evening pattern from its busy
 * hour, building load peaking at 30 % of each metered node, spikes on, reaction 5 s, cars
 * following in 1-5 s, meter noise 0.2 A. */
void pw_sim_default_params(pw_sim_params *p);

typedef struct pw_sim pw_sim;

/* Creates the model at time 0 for facility f (copied; f's nodes and chargers are as validated by
 * pw_bal_validate). Returns 0 and *out (free with pw_sim_free), or a negative pw_sim_err with a
 * message naming the parameter in err. */
int pw_sim_new(const pw_bal_facility *f, const pw_sim_params *p, pw_sim **out, char *err,
               size_t err_size);
void pw_sim_free(pw_sim *m);

/* Advances the model to now_ms (earlier times are ignored): arrivals, departures, cars following
 * their offers, battery energy, lease expiries, building load and overload accounting. */
void pw_sim_step(pw_sim *m, uint64_t now_ms);

/* The model's current time in ms. */
uint64_t pw_sim_now(const pw_sim *m);

/* The latest time the model should next be stepped to stay exact: the next arrival, departure,
 * car reaction or lease expiry, and at most one second ahead. */
uint64_t pw_sim_next_event(const pw_sim *m);

/* The charger receives an allocation at now_ms (the model is stepped there first): it offers
 * limit_a (capped at its max; 0 < limit < 6 A counts as a pause, IEC 61851 offers nothing below
 * 6 A) until now + lease_ms, then falls back to its failsafe current. phases 1 or 3 switches a
 * charger that can switch; 0 leaves it as is. alloc_seq is echoed in its status. Returns 0 or
 * PW_SIM_E_PARAM for an unknown charger. */
int pw_sim_apply(pw_sim *m, size_t charger, double limit_a, uint8_t phases, uint32_t lease_ms,
                 uint32_t alloc_seq, uint64_t now_ms);

/* IEC 61851 pilot states as the simulated charger reports them; same numbers as pw_iec_state. */
enum pw_sim_iec { PW_SIM_IEC_A = 0, PW_SIM_IEC_B = 1, PW_SIM_IEC_C = 2 };

enum pw_sim_lease {
    PW_SIM_LEASE_NONE = 0,    /* never received an allocation: failsafe */
    PW_SIM_LEASE_ACTIVE = 1,  /* applying an allocation */
    PW_SIM_LEASE_EXPIRED = 2, /* the lease ran out: failsafe */
};

/* Name of a lease state ("none", "active", "expired"); static storage. */
const char *pw_sim_lease_name(enum pw_sim_lease lease);

typedef struct pw_sim_charger_view {
    enum pw_sim_iec iec;
    double current_a[PW_LINES]; /* per charger terminal L1..L3 */
    double line_a[PW_LINES];    /* the same mapped to grid lines by the wiring */
    double offered_a;           /* what the pilot offers now (0 = paused) */
    uint8_t phases;             /* phase count the charger is told to use: 1 or 3 */
    enum pw_sim_lease lease;
    uint64_t lease_until_ms; /* meaningful while the lease is active */
    uint32_t alloc_seq;      /* allocation the offer came from; 0 = failsafe */
    double energy_wh;        /* lifetime register */
    uint32_t session_id;     /* 0 = no car */
    int car;                 /* index for pw_sim_car, -1 = none */
} pw_sim_charger_view;

/* Fills out for charger i (index into the facility's chargers). */
void pw_sim_charger(const pw_sim *m, size_t i, pw_sim_charger_view *out);

/* How a simulated charger reports (protocol "Timing"): a status on change (a new allocation
 * sequence that leaves the limit as it was is none, PROTOCOL.md 5.2), at most once per
 * PW_SIM_STATUS_MIN_MS, and at least every PW_SIM_STATUS_KEEPALIVE_MS; current changes smaller
 * than PW_SIM_STATUS_TOLERANCE_A (taper) wait for the keepalive. The keepalive stays well inside
 * the balancer's default offline time (90 s) and the protocol's budget of 1 MB a charger a day. */
#define PW_SIM_STATUS_MIN_MS       1000
#define PW_SIM_STATUS_KEEPALIVE_MS 10000
#define PW_SIM_STATUS_TOLERANCE_A  0.2

/* True if a status is due for a charger now: last is the view it last reported (NULL: never),
 * cur the view now, since_ms the time since that report. */
bool pw_sim_status_due(const pw_sim_charger_view *last, const pw_sim_charger_view *cur,
                       uint64_t since_ms);

typedef struct pw_sim_node_view {
    double load_a[PW_LINES];         /* true total per grid line: building load + chargers below */
    double base_a[PW_LINES];         /* building load at this node and the metered nodes below it */
    double ev_a[PW_LINES];           /* chargers below this node */
    double limit_a[PW_LINES];        /* rated limit from the facility */
    double over_ms[PW_LINES];        /* total time the line was above its limit */
    double over_beyond_ms[PW_LINES]; /* of which beyond reaction_ms into an overload episode */
    double max_over_a[PW_LINES];     /* largest excess seen */
} pw_sim_node_view;

/* Fills out for node i. */
void pw_sim_node(const pw_sim *m, size_t i, pw_sim_node_view *out);

/* What a meter at node i reads now: the true load plus a little deterministic noise, never
 * negative. */
void pw_sim_meter_reading(const pw_sim *m, size_t node, double out[PW_LINES]);

enum pw_sim_car_state {
    PW_SIM_CAR_COMING = 0,      /* arrives later */
    PW_SIM_CAR_PLUGGED = 1,     /* at a charger */
    PW_SIM_CAR_LEFT = 2,        /* has left */
    PW_SIM_CAR_TURNED_AWAY = 3, /* found no free charger */
};

typedef struct pw_sim_car_view {
    enum pw_sim_car_state state;
    uint8_t phases;     /* 1, 2 or 3 */
    double max_a;       /* the car's own limit per phase */
    double min_start_a; /* offer it needs to start charging (6 or 7 A) */
    double capacity_wh;
    double arrival_soc, target_soc, soc;
    double need_wh;      /* requested: (target - arrival state of charge) x capacity */
    double delivered_wh; /* from the grid */
    uint64_t arrive_ms, depart_ms;
    uint32_t follow_ms; /* its reaction delay */
    int charger;        /* charger index while plugged or after; -1 never plugged */
    double current_a;   /* per active phase now */
    bool full;          /* reached its target and suspended itself */
    unsigned pauses;    /* times its charging stopped for lack of an offer before it was full */
    unsigned phase_switches;
} pw_sim_car_view;

/* A car to plug in by hand (tests, what-if runs). */
typedef struct pw_sim_car_spec {
    uint8_t phases;     /* 1, 2 or 3 */
    double max_a;       /* per phase */
    double min_start_a; /* 6 or more */
    double capacity_wh;
    double arrival_soc, target_soc; /* 0..1, arrival <= target */
    uint32_t follow_ms;             /* reaction delay */
    uint64_t depart_ms;             /* leaves at this time; UINT64_MAX = stays */
} pw_sim_car_spec;

/* Plugs a car into the free charger at now_ms (the model is stepped there first). Returns the
 * car's index (>= 0, stable) or PW_SIM_E_PARAM if the charger is busy or unknown or the spec is
 * out of range. */
int pw_sim_plug_car(pw_sim *m, size_t charger, const pw_sim_car_spec *spec, uint64_t now_ms);

/* Cars generated so far (grows as simulated days begin; those still to come are COMING). */
size_t pw_sim_car_count(const pw_sim *m);
/* Fills out for car i < pw_sim_car_count(). */
void pw_sim_car(const pw_sim *m, size_t i, pw_sim_car_view *out);

/* The model's seeded generator (xoshiro256**), for the shell's own randomness such as packet
 * impairment, so that it too is reproducible from a seed. Caller-allocated, no cleanup. */
typedef struct pw_sim_rng {
    uint64_t s[4];
} pw_sim_rng;

void pw_sim_rng_seed(pw_sim_rng *r, uint64_t seed);
uint64_t pw_sim_rng_next(pw_sim_rng *r);
/* Uniform in [0, 1). */
double pw_sim_rng_unit(pw_sim_rng *r);

#endif
