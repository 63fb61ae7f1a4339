/* The fake-time day run (pw_dayrun.h): steps the facility model from deadline to deadline (the
 * model's next event, the next meter reading, the next control tick, the balancer's own next
 * deadline), feeds the allocator what the appliance would receive and applies its limits as the
 * chargers would. */
#include "pw_dayrun.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_simbase.h"
#include "pw_util.h"

static const char *const alloc_names[] = {"phasewise", "static", "worst-phase"};

const char *pw_dayrun_alloc_name(enum pw_dayrun_alloc a)
{
    return (unsigned)a < PW_ARRAY_LEN(alloc_names) ? alloc_names[a] : "?";
}

void pw_dayrun_default_opts(pw_dayrun_opts *o)
{
    memset(o, 0, sizeof(*o));
    pw_sim_default_params(&o->model);
    o->duration_ms = PW_SIM_DAY_MS;
    o->meter_ms = 1000;
    o->tick_ms = 1000;
    o->tick_offset_ms = 500;
    o->lease_ms = 30000;
}

typedef struct run {
    const pw_bal_facility *f;
    const pw_dayrun_opts *o;
    enum pw_dayrun_alloc a;
    pw_sim *m;
    pw_bal *bal;
    pw_base_wp *wp;
    double *limits;
    uint8_t *phases;
    uint32_t *session;             /* per charger: session of the last report */
    bool *drew;                    /* per charger: the car drew current in this session */
    pw_sim_charger_view *reported; /* per charger: its last status */
    uint64_t *reported_at;         /* per charger: when it went out; UINT64_MAX = never */
    uint32_t seq;
    uint64_t runs;
} run;

/* What a charger's status tells the appliance, interpreted as the server does: a car in state
 * B that drew current in this session has suspended itself. */
static void measure(run *r, size_t i, const pw_sim_charger_view *v, pw_bal_measure *out)
{
    if (v->session_id != r->session[i] || v->iec == PW_SIM_IEC_A) {
        r->session[i] = v->session_id;
        r->drew[i] = false;
    }
    r->drew[i] |= v->iec == PW_SIM_IEC_C;
    memset(out, 0, sizeof(*out));
    out->car = v->iec == PW_SIM_IEC_A   ? PW_CAR_NONE
               : v->iec == PW_SIM_IEC_C ? PW_CAR_CHARGING
               : r->drew[i]             ? PW_CAR_SUSPENDED
                                        : PW_CAR_CONNECTED;
    memcpy(out->current_a, v->current_a, sizeof(out->current_a));
    out->applied_limit_a = v->offered_a;
    out->applied_phases = v->phases;
}

/* Chargers whose status is due report to the allocator, as they would over the network. */
static void feed_statuses(run *r, uint64_t now)
{
    for (size_t i = 0; i < r->f->n_chargers; i++) {
        pw_sim_charger_view v;
        pw_bal_measure me;
        pw_sim_charger(r->m, i, &v);
        bool never = r->reported_at[i] == UINT64_MAX;
        if (!r->o->instant_status &&
            !pw_sim_status_due(never ? NULL : &r->reported[i], &v, now - r->reported_at[i]))
            continue;
        r->reported[i] = v;
        r->reported_at[i] = now;
        measure(r, i, &v, &me);
        if (r->a == PW_DAYRUN_PHASEWISE)
            pw_bal_set_charger(r->bal, i, &me, now);
        else if (r->a == PW_DAYRUN_WORST_PHASE)
            pw_base_wp_set_charger(r->wp, i, &me);
    }
}

static void feed_meters(run *r, uint64_t now)
{
    for (size_t n = 0; n < r->f->n_nodes; n++) {
        double amps[PW_LINES];
        if (!r->f->nodes[n].metered)
            continue;
        pw_sim_meter_reading(r->m, n, amps);
        if (r->a == PW_DAYRUN_PHASEWISE)
            pw_bal_set_meter(r->bal, n, amps, now);
        else if (r->a == PW_DAYRUN_WORST_PHASE)
            pw_base_wp_set_meter(r->wp, n, amps);
    }
}

/* The allocator runs and the chargers receive their limits. */
static void control(run *r, uint64_t now)
{
    if (r->a == PW_DAYRUN_PHASEWISE) {
        pw_bal_run(r->bal, now);
        const pw_bal_result *res = pw_bal_results(r->bal);
        for (size_t i = 0; i < r->f->n_chargers; i++) {
            r->limits[i] = res[i].limit_a;
            r->phases[i] = res[i].phases;
        }
    } else if (r->a == PW_DAYRUN_WORST_PHASE) {
        pw_base_wp_run(r->wp, now, r->limits);
    }
    r->seq++;
    for (size_t i = 0; i < r->f->n_chargers; i++)
        pw_sim_apply(r->m, i, r->limits[i], r->phases[i], r->o->lease_ms, r->seq, now);
    r->runs++;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void loop(run *r)
{
    uint64_t end = r->o->duration_ms, t = 0;
    uint64_t next_meter = 0, next_tick = r->o->tick_offset_ms;
    while (t < end) {
        /* As on the wire: the meter gateway's reading sets off a run at once, the chargers'
         * statuses reach the allocator when the protocol's rules let them out (or, with
         * instant statuses, before every run). */
        if (r->o->instant_status)
            feed_statuses(r, t);
        if (t >= next_meter) {
            feed_meters(r, t);
            next_meter += r->o->meter_ms;
            control(r, t);
        }
        feed_statuses(r, t);
        bool due = false;
        if (t >= next_tick) {
            next_tick += r->o->tick_ms;
            due = true;
        }
        uint64_t bal_next = r->bal ? pw_bal_next_deadline(r->bal) : UINT64_MAX;
        if (due || bal_next <= t)
            control(r, t);
        if (r->bal)
            bal_next = pw_bal_next_deadline(r->bal);
        /* Statuses go out as things change: look again at least every status interval. */
        uint64_t next = min_u64(pw_sim_next_event(r->m), min_u64(next_meter, next_tick));
        next = min_u64(next, t + PW_SIM_STATUS_MIN_MS);
        if (bal_next > t)
            next = min_u64(next, bal_next);
        next = min_u64(next, end);
        pw_sim_step(r->m, next);
        t = next;
    }
}

static void collect(const run *r, pw_dayrun_result *out)
{
    double sum_x = 0.0, sum_x2 = 0.0;
    unsigned n_x = 0;
    memset(out, 0, sizeof(*out));
    for (size_t n = 0; n < r->f->n_nodes; n++) {
        pw_sim_node_view v;
        pw_sim_node(r->m, n, &v);
        for (int l = 0; l < PW_LINES; l++) {
            out->over_s += v.over_ms[l] / 1000.0;
            out->over_beyond_s += v.over_beyond_ms[l] / 1000.0;
            out->worst_line_beyond_s = fmax(out->worst_line_beyond_s, v.over_beyond_ms[l] / 1000.0);
            out->max_over_a = fmax(out->max_over_a, v.max_over_a[l]);
        }
    }
    for (size_t i = 0; i < pw_sim_car_count(r->m); i++) {
        pw_sim_car_view c;
        pw_sim_car(r->m, i, &c);
        if (c.arrive_ms >= r->o->duration_ms || c.state == PW_SIM_CAR_COMING)
            continue;
        if (c.state == PW_SIM_CAR_TURNED_AWAY) {
            out->cars_turned_away++;
            continue;
        }
        out->cars++;
        out->requested_kwh += c.need_wh / 1000.0;
        out->delivered_kwh += c.delivered_wh / 1000.0;
        out->cars_unmet += c.delivered_wh < 0.99 * c.need_wh;
        out->pauses += c.pauses;
        out->phase_switches += c.phase_switches;
        if (c.need_wh > 0.0) {
            double x = fmin(1.0, c.delivered_wh / c.need_wh);
            sum_x += x;
            sum_x2 += x * x;
            n_x++;
        }
    }
    out->jain = sum_x2 > 0.0 ? sum_x * sum_x / (n_x * sum_x2) : 0.0;
    out->allocator_runs = r->runs;
}

int pw_dayrun(const pw_bal_facility *f, const pw_dayrun_opts *o, enum pw_dayrun_alloc a,
              pw_dayrun_result *out, char *err, size_t err_size)
{
    pw_sim_params mp = o->model;
    run r = {.f = f, .o = o, .a = a};

    if (o->meter_ms < 1000 || o->meter_ms > 10000 || o->tick_ms == 0 || o->lease_ms == 0 ||
        (unsigned)a >= PW_DAYRUN_ALLOCATORS) {
        snprintf(err, err_size, "meter_ms must be 1000..10000, tick_ms and lease_ms positive");
        return PW_SIM_E_PARAM;
    }
    mp.reaction_ms = f->params.reaction_ms ? f->params.reaction_ms : 5000;
    int rc = pw_sim_new(f, &mp, &r.m, err, err_size);
    if (rc != 0)
        return rc;
    r.limits = pw_xcalloc(f->n_chargers, sizeof(*r.limits));
    r.phases = pw_xcalloc(f->n_chargers, sizeof(*r.phases));
    r.session = pw_xcalloc(f->n_chargers, sizeof(*r.session));
    r.drew = pw_xcalloc(f->n_chargers, sizeof(*r.drew));
    r.reported = pw_xcalloc(f->n_chargers, sizeof(*r.reported));
    r.reported_at = pw_xmalloc(f->n_chargers * sizeof(*r.reported_at));
    for (size_t i = 0; i < f->n_chargers; i++)
        r.reported_at[i] = UINT64_MAX;
    if (a == PW_DAYRUN_PHASEWISE)
        r.bal = pw_bal_new(f);
    else if (a == PW_DAYRUN_WORST_PHASE)
        r.wp = pw_base_wp_new(f);
    else
        pw_base_static_limits(f, r.limits);

    loop(&r);
    collect(&r, out);

    pw_bal_free(r.bal);
    pw_base_wp_free(r.wp);
    pw_sim_free(r.m);
    free(r.limits);
    free(r.phases);
    free(r.session);
    free(r.drew);
    free(r.reported);
    free(r.reported_at);
    return 0;
}
