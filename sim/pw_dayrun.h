/* A facility simulation in fake time: the simulated facility (pw_simmodel) driven by an
 * allocator in-process, no network, looping on the next deadline with an explicit now. Runs the
 * same seeded day under phasewise (the appliance's control core, pw_ctl, with its balancer) and
 * the two baselines (pw_simbase) and measures overload, energy, fairness, pauses and phase
 * switches. Pure: no I/O, no clock. */
#ifndef PW_DAYRUN_H
#define PW_DAYRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pw_bal.h"
#include "pw_cfg.h"
#include "pw_ctl.h"
#include "pw_simmodel.h"

enum pw_dayrun_alloc {
    PW_DAYRUN_PHASEWISE = 0,   /* the appliance's policy: pw_ctl and its balancer */
    PW_DAYRUN_STATIC = 1,      /* each node's limit divided among its chargers */
    PW_DAYRUN_WORST_PHASE = 2, /* every charger counted on every line at its largest phase */
    PW_DAYRUN_ALLOCATORS = 3
};

/* "phasewise", "static", "worst-phase"; static storage. */
const char *pw_dayrun_alloc_name(enum pw_dayrun_alloc a);

/* What a caller may watch during a run, besides the figures: the backfill of the demo's history
 * (server/backfill.c) and the export. Every callback runs inside pw_dayrun; any may be NULL. */
typedef struct pw_dayrun_hooks {
    void *ud;
    int64_t wall0_ms;  /* Unix ms of simulated time 0: the wall time the core's sessions, events
                          and limit changes carry (0: simulated time itself) */
    pw_ctl_sink sink;  /* phasewise: the core's records, as the appliance's history receives them
                          (copied into the core; its ud is its own) */
    uint32_t every_ms; /* call tick at every multiple of every_ms of simulated time; 0 = never */
    /* ctl is the core under phasewise, NULL under a baseline; both borrowed for the call. */
    void (*tick)(void *ud, const pw_sim *m, const pw_ctl *ctl, uint64_t now);
    /* Once, at the end of the run, before the model and the core are freed. */
    void (*done)(void *ud, const pw_sim *m, const pw_ctl *ctl, uint64_t end);
} pw_dayrun_hooks;

typedef struct pw_dayrun_opts {
    pw_sim_params model;     /* cars, pattern, seed, building load; reaction_ms is overwritten
                                with the facility's */
    uint64_t duration_ms;    /* simulated time to run */
    uint32_t meter_ms;       /* meter interval, 1000..10000 */
    uint32_t tick_offset_ms; /* baselines: phase of their control tick (the config's tick_ms)
                                against the meter readings; phasewise runs when its core asks */
    bool instant_status;     /* the allocator sees every charger as it is at every run, instead of
                                through statuses sent by the protocol's rules (pw_sim_status_due) */
    const pw_dayrun_hooks *hooks; /* NULL = none; borrowed for the call */
} pw_dayrun_opts;

/* Fills o with a one-day run, 1 s meters, the baselines' tick half a second after each reading,
 * statuses by the protocol's rules and the model's defaults. The lease and the tick are the
 * config's (lease_ms, tick_ms). */
void pw_dayrun_default_opts(pw_dayrun_opts *o);

typedef struct pw_dayrun_result {
    double over_s;              /* seconds above the limit, summed over every line of every node */
    double over_beyond_s;       /* of which beyond the reaction window of an overload episode */
    double worst_line_beyond_s; /* the largest over_beyond of a single node line */
    double max_over_a;          /* largest excess seen on any line */
    double requested_kwh;       /* energy the plugged-in cars asked for */
    double delivered_kwh;       /* energy they got before leaving or the end of the run */
    double jain;                /* Jain's index over cars of delivered / requested (capped at 1) */
    unsigned cars;              /* cars that plugged in */
    unsigned cars_turned_away;
    unsigned cars_unmet; /* left (or were still there at the end) with < 99 % of their request */
    unsigned pauses;     /* charging stopped for lack of current before the car was full */
    unsigned phase_switches;
    uint64_t allocator_runs; /* phasewise: pw_ctl_run calls; baselines: control ticks and
                                readings */
    uint64_t plans_sent;     /* times the chargers were sent their limits (every run for the
                                baselines; for phasewise when the core marked a command due) */
    uint64_t plans_changed;  /* phasewise: runs that changed some charger's command */
    uint64_t cut_resends;    /* phasewise: commands sent again for an unconfirmed cut */
} pw_dayrun_result;

/* Runs the day described by o at the facility of cfg (validated, borrowed for the call) under
 * allocator a; phasewise runs a pw_ctl on cfg, so its lease, tick and balancer parameters are the
 * appliance's. Returns 0, or a negative pw_sim_err with a message in err. */
int pw_dayrun(const pw_cfg *cfg, const pw_dayrun_opts *o, enum pw_dayrun_alloc a,
              pw_dayrun_result *out, char *err, size_t err_size);

/* Runs like pw_dayrun (o->hooks is ignored) and returns what the run was made of, for comparing
 * the delivered energy with an optimum computed elsewhere: the cars that plugged in (charger,
 * arrival, departure, requested energy, phases, maximum current, and what they got under a),
 * and each metered node's building load per minute (the model's load at that node and the
 * metered nodes below it, per line). Format in docs/plan.md. Returns a new reference (caller
 * decrefs) with the figures in *out, or NULL with a message in err. */
json_t *pw_dayrun_export(const pw_cfg *cfg, const pw_dayrun_opts *o, enum pw_dayrun_alloc a,
                         pw_dayrun_result *out, char *err, size_t err_size);

#endif
