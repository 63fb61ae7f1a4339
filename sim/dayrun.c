/* The fake-time day run (pw_dayrun.h): steps the facility model from deadline to deadline and
 * feeds the allocator what the appliance would receive. Under phasewise the allocator is the
 * appliance's control core (pw_ctl): statuses and readings go in as reports, the loop steps to
 * the core's next deadline, and whenever a command is due the whole plan goes to every charger,
 * as the LAN transport sends it. The baselines run on a fixed control tick and apply their limits
 * at every run. */
#include "pw_dayrun.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_ctl.h"
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
    o->tick_offset_ms = 500;
}

typedef struct run {
    const pw_cfg *cfg;
    pw_bal_facility f;
    const pw_dayrun_opts *o;
    pw_sim *m;
    pw_ctl *ctl; /* phasewise */
    pw_base_wp *wp;
    double *limits; /* baselines: the limits of the last run */
    uint8_t *phases;
    uint32_t *session;             /* per charger: session of the last report (baselines) */
    bool *drew;                    /* per charger: the car drew current in this session */
    pw_sim_charger_view *reported; /* per charger: its last status */
    uint64_t *reported_at;         /* per charger: when it went out; UINT64_MAX = never */
    uint32_t seq;
    uint64_t runs, sends;
} run;

/* The sim has no calendar: wall time for the core's sessions and events is the simulated time,
 * shifted to the caller's calendar when it gave one. */
static int64_t wall_of(const run *r, uint64_t now)
{
    return (r->o->hooks ? r->o->hooks->wall0_ms : 0) + (int64_t)now;
}

/* What a baseline is told by a charger's status. It reads the car state as the core does
 * (pw_ctl_car_state: pilot B after drawing current is a suspended car), so that the comparison
 * is between allocators and not between interpretations. */
static void baseline_measure(run *r, size_t i, const pw_sim_charger_view *v, pw_bal_measure *out)
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

/* A simulated charger's status as its transport hands it to the core. */
static void ctl_report(const pw_sim_charger_view *v, pw_ctl_report *out)
{
    memset(out, 0, sizeof(*out));
    out->pilot = v->iec == PW_SIM_IEC_A   ? PW_CTL_PILOT_A
                 : v->iec == PW_SIM_IEC_B ? PW_CTL_PILOT_B
                                          : PW_CTL_PILOT_C;
    out->ev_suspended = -1; /* the LAN protocol does not say: the core derives it */
    memcpy(out->current_a, v->current_a, sizeof(out->current_a));
    out->offered_a = v->offered_a;
    out->phases = v->phases;
    out->energy_wh = v->energy_wh >= 0.0 ? (uint64_t)v->energy_wh : PW_CTL_ENERGY_UNKNOWN;
    if (v->session_id)
        snprintf(out->session_ref, sizeof(out->session_ref), "%u", (unsigned)v->session_id);
}

/* Chargers whose status is due report to the allocator, as they would over the network. */
static void feed_statuses(run *r, uint64_t now)
{
    for (size_t i = 0; i < r->f.n_chargers; i++) {
        pw_sim_charger_view v;
        pw_sim_charger(r->m, i, &v);
        bool never = r->reported_at[i] == UINT64_MAX;
        if (!r->o->instant_status &&
            !pw_sim_status_due(never ? NULL : &r->reported[i], &v, now - r->reported_at[i]))
            continue;
        r->reported[i] = v;
        r->reported_at[i] = now;
        if (r->ctl) {
            pw_ctl_report rep;
            ctl_report(&v, &rep);
            pw_ctl_charger_report(r->ctl, i, NULL, &rep, now, wall_of(r, now));
        } else if (r->wp) {
            pw_bal_measure me;
            baseline_measure(r, i, &v, &me);
            pw_base_wp_set_charger(r->wp, i, &me);
        }
    }
}

static void feed_meters(run *r, uint64_t now)
{
    for (size_t n = 0; n < r->f.n_nodes; n++) {
        double amps[PW_LINES];
        if (!r->f.nodes[n].metered)
            continue;
        pw_sim_meter_reading(r->m, n, amps);
        if (r->ctl)
            pw_ctl_meter_report(r->ctl, n, amps, now);
        else if (r->wp)
            pw_base_wp_set_meter(r->wp, n, amps);
    }
}

/* Phasewise: the core runs when its deadline has come; when any command is due, every charger
 * that has been heard receives its command and the core is told it went out (transport/lan.c,
 * lan_send). */
static void control_ctl(run *r, uint64_t now)
{
    if (pw_ctl_next_deadline(r->ctl) > now)
        return;
    r->runs++;
    if (pw_ctl_run(r->ctl, now, wall_of(r, now)) == 0)
        return;
    const pw_ctl_command *cmd = pw_ctl_commands(r->ctl);
    for (size_t i = 0; i < r->f.n_chargers; i++) {
        if (cmd[i].held)
            continue; /* not heard yet: left out of the plan, as lan_send does */
        pw_sim_apply(r->m, i, cmd[i].limit_a, cmd[i].phases, cmd[i].lease_ms, cmd[i].plan_seq, now);
        pw_ctl_sent(r->ctl, i, now, wall_of(r, now));
    }
    r->sends++;
}

/* A baseline runs and the chargers receive their limits. */
static void control_baseline(run *r, uint64_t now)
{
    if (r->wp)
        pw_base_wp_run(r->wp, now, r->limits);
    r->seq++;
    for (size_t i = 0; i < r->f.n_chargers; i++)
        pw_sim_apply(r->m, i, r->limits[i], r->phases[i], r->cfg->lease_ms, r->seq, now);
    r->runs++;
    r->sends++;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void loop(run *r)
{
    const pw_dayrun_hooks *h = r->o->hooks;
    uint64_t end = r->o->duration_ms, t = 0;
    uint64_t next_meter = 0, next_tick = r->o->tick_offset_ms;
    uint64_t next_watch = h && h->tick && h->every_ms ? 0 : UINT64_MAX;
    while (t < end) {
        /* As on the wire: the meter gateway's reading sets off a run at once, the chargers'
         * statuses reach the allocator when the protocol's rules let them out (or, with
         * instant statuses, before every run). */
        if (r->o->instant_status)
            feed_statuses(r, t);
        bool reading = t >= next_meter;
        if (reading) {
            feed_meters(r, t);
            next_meter += r->o->meter_ms;
        }
        uint64_t next;
        if (r->ctl) {
            /* The core decides when it runs: at once after a reading, within its tick after a
             * status, and at its own deadlines (renewals, cut resends, hold times). */
            control_ctl(r, t);
            feed_statuses(r, t);
            control_ctl(r, t);
            next = pw_ctl_next_deadline(r->ctl);
            next = next > t ? next : UINT64_MAX; /* a past deadline is met at the next step */
        } else {
            if (reading)
                control_baseline(r, t);
            feed_statuses(r, t);
            if (t >= next_tick) {
                next_tick += r->cfg->tick_ms;
                control_baseline(r, t);
            }
            next = next_tick;
        }
        /* Statuses go out as things change: look again at least every status interval. */
        next = min_u64(next, min_u64(pw_sim_next_event(r->m), next_meter));
        next = min_u64(next, t + PW_SIM_STATUS_MIN_MS);
        /* The watcher sees the facility after this step's control, as a tick of the appliance
         * sees it after the core's run. */
        if (t >= next_watch) {
            h->tick(h->ud, r->m, r->ctl, t);
            next_watch += h->every_ms;
        }
        next = min_u64(next, min_u64(next_watch, end));
        pw_sim_step(r->m, next);
        t = next;
    }
}

static void collect(const run *r, pw_dayrun_result *out)
{
    double sum_x = 0.0, sum_x2 = 0.0;
    unsigned n_x = 0;
    memset(out, 0, sizeof(*out));
    for (size_t n = 0; n < r->f.n_nodes; n++) {
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
    out->plans_sent = r->sends;
    if (r->ctl) {
        const pw_ctl_stats *st = pw_ctl_stats_get(r->ctl);
        out->plans_changed = st->plans;
        out->cut_resends = st->cut_resends;
    }
}

int pw_dayrun(const pw_cfg *cfg, const pw_dayrun_opts *o, enum pw_dayrun_alloc a,
              pw_dayrun_result *out, char *err, size_t err_size)
{
    pw_sim_params mp = o->model;
    run r = {.cfg = cfg, .o = o};

    if (o->meter_ms < 1000 || o->meter_ms > 10000 || cfg->tick_ms == 0 || cfg->lease_ms == 0 ||
        (unsigned)a >= PW_DAYRUN_ALLOCATORS) {
        snprintf(err, err_size, "meter_ms must be 1000..10000, tick_ms and lease_ms positive");
        return PW_SIM_E_PARAM;
    }
    pw_cfg_facility(cfg, &r.f);
    mp.reaction_ms = r.f.params.reaction_ms ? r.f.params.reaction_ms : 5000;
    int rc = pw_sim_new(&r.f, &mp, &r.m, err, err_size);
    if (rc != 0)
        return rc;
    size_t n = r.f.n_chargers + 1; /* never a zero-size allocation */
    r.limits = pw_xcalloc(n, sizeof(*r.limits));
    r.phases = pw_xcalloc(n, sizeof(*r.phases));
    r.session = pw_xcalloc(n, sizeof(*r.session));
    r.drew = pw_xcalloc(n, sizeof(*r.drew));
    r.reported = pw_xcalloc(n, sizeof(*r.reported));
    r.reported_at = pw_xmalloc(n * sizeof(*r.reported_at));
    for (size_t i = 0; i < n; i++)
        r.reported_at[i] = UINT64_MAX;
    if (a == PW_DAYRUN_PHASEWISE)
        r.ctl = pw_ctl_new(cfg, NULL, o->hooks ? &o->hooks->sink : NULL);
    else if (a == PW_DAYRUN_WORST_PHASE)
        r.wp = pw_base_wp_new(&r.f);
    else
        pw_base_static_limits(&r.f, r.limits);

    loop(&r);
    collect(&r, out);
    if (o->hooks && o->hooks->done)
        o->hooks->done(o->hooks->ud, r.m, r.ctl, o->duration_ms);

    pw_ctl_free(r.ctl);
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

/* ---- export ------------------------------------------------------------------------------- */

#define EXPORT_EVERY_MS 60000u

typedef struct exporter {
    const pw_cfg *cfg;
    const pw_dayrun_opts *o;
    json_t *load; /* node id -> [[L1, L2, L3], ...], one per minute */
    json_t *cars;
} exporter;

/* Amperes and kWh to a thousandth: enough for any comparison, no binary noise in the file. */
static json_t *rounded(double v)
{
    return json_real(round(v * 1000.0) / 1000.0);
}

static void export_tick(void *ud, const pw_sim *m, const pw_ctl *ctl, uint64_t now)
{
    exporter *x = ud;
    (void)ctl;
    (void)now;
    for (size_t n = 0; n < x->cfg->n_nodes; n++) {
        if (!x->cfg->nodes[n].metered)
            continue;
        pw_sim_node_view v;
        pw_sim_node(m, n, &v);
        json_t *lines = json_array();
        for (int l = 0; l < PW_LINES; l++)
            json_array_append_new(lines, rounded(v.base_a[l]));
        json_array_append_new(json_object_get(x->load, x->cfg->nodes[n].id), lines);
    }
}

/* The cars counted in the figures (collect): those that plugged in during the run. */
static void export_done(void *ud, const pw_sim *m, const pw_ctl *ctl, uint64_t end)
{
    exporter *x = ud;
    (void)ctl;
    for (size_t i = 0; i < pw_sim_car_count(m); i++) {
        pw_sim_car_view c;
        pw_sim_car(m, i, &c);
        if (c.arrive_ms >= end || c.state == PW_SIM_CAR_COMING ||
            c.state == PW_SIM_CAR_TURNED_AWAY || c.charger < 0)
            continue;
        json_array_append_new(
            x->cars,
            json_pack("{s:s,s:I,s:I,s:o,s:i,s:o,s:o}", "charger", x->cfg->chargers[c.charger].id,
                      "arrive_ms", (json_int_t)c.arrive_ms, "depart_ms", (json_int_t)c.depart_ms,
                      "requested_kwh", rounded(c.need_wh / 1000.0), "phases", (int)c.phases,
                      "max_a", rounded(c.max_a), "delivered_kwh",
                      rounded(c.delivered_wh / 1000.0)));
    }
}

json_t *pw_dayrun_export(const pw_cfg *cfg, const pw_dayrun_opts *o, enum pw_dayrun_alloc a,
                         pw_dayrun_result *out, char *err, size_t err_size)
{
    exporter x = {.cfg = cfg, .o = o, .load = json_object(), .cars = json_array()};
    for (size_t n = 0; n < cfg->n_nodes; n++)
        if (cfg->nodes[n].metered)
            json_object_set_new(x.load, cfg->nodes[n].id, json_array());
    pw_dayrun_hooks hooks = {
        .ud = &x, .every_ms = EXPORT_EVERY_MS, .tick = export_tick, .done = export_done};
    pw_dayrun_opts run_opts = *o;
    run_opts.hooks = &hooks;
    if (pw_dayrun(cfg, &run_opts, a, out, err, err_size) != 0) {
        json_decref(x.load);
        json_decref(x.cars);
        return NULL;
    }
    json_t *chargers = json_array();
    for (size_t i = 0; i < cfg->n_chargers; i++)
        json_array_append_new(chargers, json_string(cfg->chargers[i].id));
    json_t *summary =
        json_pack("{s:i,s:i,s:o,s:o,s:f,s:i}", "cars", (int)out->cars, "cars_turned_away",
                  (int)out->cars_turned_away, "requested_kwh", rounded(out->requested_kwh),
                  "delivered_kwh", rounded(out->delivered_kwh), "over_beyond_s", out->over_beyond_s,
                  "pauses", (int)out->pauses);
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:s,s:o,s:o,s:{s:i,s:o},s:o}", "site",
                     cfg->site_name, "allocator", pw_dayrun_alloc_name(a), "statuses",
                     o->instant_status ? "instant" : "protocol", "seed", (json_int_t)o->model.seed,
                     "duration_ms", (json_int_t)o->duration_ms, "start_hour", o->model.start_hour,
                     "arrivals", pw_sim_pattern_name(o->model.pattern), "chargers", chargers,
                     "cars", x.cars, "building_load", "interval_ms", (int)EXPORT_EVERY_MS, "nodes",
                     x.load, "result", summary);
}
