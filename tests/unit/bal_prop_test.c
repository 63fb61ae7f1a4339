/* Property tests of the balancer over random facilities (depth <= 4, up to 200 chargers, 1-, 2-
 * and 3-phase cars, TN and IT, meters fresh and stale, priorities, weights, switching, trims,
 * imbalance limits). An independent checker recomputes every load from the specs and results and
 * asserts: no constraint violated; every charger 0 or within [min, demand <= max]; Pareto
 * efficiency; weighted max-min fairness within a class; no needless pause; priority respected.
 * A second test drives random facilities through time and checks the safety properties at each
 * run. About a quarter of the facilities also get operator overrides (a charger's cap, pause or
 * priority, a node's lower limit): the checker then judges the plan against the limits in force,
 * as if the config said so, and a paused charger must stay at 0 with its own reason. Seeds are
 * deterministic and printed on failure: rerun one with
 * `bal_prop_test SEED` (or `bal_prop_test --count N` for a longer run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bal_int.h" /* pw_bal.reference: the run without shortcuts, to compare with */
#include "pw_bal.h"
#include "pw_util.h"

#define MAX_NODES 12
#define MAX_CH    200
#define EPS       1e-6
#define N_CLS     5 /* priorities -1..2 give ranks 0..3; suspended cars rank last */
#define SUSP_CLS  (N_CLS - 1)

static uint64_t prop_count = 10000;
static uint64_t prop_seed = 0x9e3779b97f4a7c15u;
static bool single_seed;

/* splitmix64: small, good enough and identical everywhere. */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rndf(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static int rndi(uint64_t *s, int lo, int hi) /* inclusive */
{
    return lo + (int)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static bool chance(uint64_t *s, double p)
{
    return rndf(s, 0, 1) < p;
}

typedef struct world {
    uint64_t seed;
    pw_bal_facility f;
    pw_bal_node_spec nodes[MAX_NODES];
    pw_bal_charger_spec ch[MAX_CH];
    int depth[MAX_NODES];
    /* inputs */
    bool meter_read[MAX_NODES];
    double meter[MAX_NODES][PW_LINES];
    bool measured[MAX_CH];
    pw_bal_measure m[MAX_CH];
    /* operator overrides (gen_overrides): what the balancer is told */
    double op_cap[MAX_CH]; /* INFINITY: none */
    int op_prio[MAX_CH];
    double node_cap[MAX_NODES][PW_LINES];
    /* the limits in force that follow from them (effective) */
    bool op_paused[MAX_CH];
} world;

/* Node limits scale with the number of chargers (about 2 to 16 A per charger at the root) so
 * that plenty, scarcity and everything between come up. */
static void gen_nodes(world *w, uint64_t *s, size_t n_chargers)
{
    size_t n = (size_t)rndi(s, 1, MAX_NODES);
    for (size_t i = 0; i < n; i++) {
        pw_bal_node_spec *nd = &w->nodes[i];
        memset(nd, 0, sizeof *nd);
        snprintf(nd->id, sizeof nd->id, "n%zu", i);
        if (i == 0) {
            nd->parent = -1;
            w->depth[i] = 1;
        } else {
            do
                nd->parent = rndi(s, 0, (int)i - 1);
            while (w->depth[nd->parent] >= 4);
            w->depth[i] = w->depth[nd->parent] + 1;
        }
        double per = rndf(s, 3, 24) * (double)(n_chargers + 2);
        double base = i == 0 ? rndf(s, 16, 16 + per)
                             : fmax(10, rndf(s, 0.3, 1) * w->nodes[nd->parent].limit_a[0]);
        for (size_t l = 0; l < PW_LINES; l++)
            nd->limit_a[l] = chance(s, 0.7) ? base : rndf(s, 10, base * 1.2);
        nd->margin_a = chance(s, 0.5) ? rndf(s, 0, 3) : 0;
        nd->max_imbalance_a = chance(s, 0.15) ? rndf(s, 8, 30) : 0;
        if (chance(s, 0.5)) {
            nd->metered = true;
            nd->meter_timeout_ms = 10000;
            for (size_t l = 0; l < PW_LINES; l++)
                nd->meter_fallback_a[l] = rndf(s, 0, 10);
        }
    }
    w->f.n_nodes = n;
}

/* Static non-EV reserves: about 30 % of the unmetered nodes get 0-5 A per line (and a few metered
 * ones too, where the reserve must be ignored). Drawn from a stream of their own so the rest of
 * each world is what it was without them. A reserve too large for the failsafe check of
 * pw_bal_validate (the reserves of the unmetered nodes in a subtree must fit its limit minus
 * margin) is halved on that line below the node until it fits. */
static void gen_reserves(world *w, uint64_t seed)
{
    uint64_t s = seed ^ 0x2545f4914f6cdd1du;
    size_t n = w->f.n_nodes;
    for (size_t i = 0; i < n; i++)
        if (chance(&s, w->nodes[i].metered ? 0.1 : 0.3))
            for (size_t l = 0; l < PW_LINES; l++)
                w->nodes[i].reserve_a[l] = rndf(&s, 0, 5);
    for (bool fits = false; !fits;) {
        double sum[MAX_NODES][PW_LINES] = {{0}};
        for (size_t i = 0; i < n; i++)
            for (int up = (int)i; up >= 0 && !w->nodes[i].metered; up = w->nodes[up].parent)
                for (size_t l = 0; l < PW_LINES; l++)
                    sum[up][l] += w->nodes[i].reserve_a[l];
        fits = true;
        for (size_t i = 0; i < n; i++)
            for (size_t l = 0; l < PW_LINES; l++) {
                if (sum[i][l] <= w->nodes[i].limit_a[l] - w->nodes[i].margin_a)
                    continue;
                fits = false;
                for (size_t j = 0; j < n; j++) /* j is below i (or i itself): halve it */
                    for (int up = (int)j; up >= 0; up = w->nodes[up].parent)
                        if ((size_t)up == i)
                            w->nodes[j].reserve_a[l] /= 2;
            }
    }
}

static const char *const wirings3[3] = {"123", "231", "312"};

static void gen_chargers(world *w, uint64_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pw_bal_charger_spec *c = &w->ch[i];
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "c%zu", i);
        c->node = rndi(s, 0, (int)w->f.n_nodes - 1);
        const char *wr = wirings3[rndi(s, 0, 2)];
        size_t wired = chance(s, 0.8) ? 3 : (w->f.grid == PW_GRID_IT ? 2 : 1);
        for (size_t t = 0; t < wired; t++)
            c->wiring[t] = (uint8_t)(wr[t] - '0');
        c->min_a = chance(s, 0.8) ? 6 : rndf(s, 6, 8);
        c->max_a = c->min_a + (chance(s, 0.1) ? 0 : rndf(s, 0, 26));
        c->weight = chance(s, 0.7) ? 1 : rndf(s, 0.5, 3);
        c->priority = chance(s, 0.6) ? 0 : rndi(s, -1, 2);
        c->can_switch_phases = wired == 3 && chance(s, 0.3);
    }
    w->f.n_chargers = n;
}

static void gen_inputs(world *w, uint64_t *s)
{
    for (size_t n = 0; n < w->f.n_nodes; n++) {
        w->meter_read[n] = w->nodes[n].metered && chance(s, 0.8);
        for (size_t l = 0; l < PW_LINES; l++)
            w->meter[n][l] = rndf(s, 0, w->nodes[n].limit_a[l] * (chance(s, 0.8) ? 0.3 : 0.9));
    }
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        pw_bal_measure *m = &w->m[k];
        memset(m, 0, sizeof *m);
        w->measured[k] = chance(s, 0.95);
        double r = rndf(s, 0, 1);
        m->car = r < 0.12   ? PW_CAR_NONE
                 : r < 0.3  ? PW_CAR_CONNECTED
                 : r < 0.9  ? PW_CAR_CHARGING
                 : r < 0.95 ? PW_CAR_SUSPENDED
                            : PW_CAR_FAULT;
        if (m->car == PW_CAR_CHARGING || m->car == PW_CAR_FAULT) {
            /* 1-, 2- or 3-phase car, sometimes drawing too little to show its phases yet. */
            int phases = rndi(s, 1, 3);
            double a = chance(s, 0.1) ? rndf(s, 0, 1) : rndf(s, 2, w->ch[k].max_a);
            for (int t = 0; t < phases; t++)
                m->current_a[t] = a;
            if (w->f.grid == PW_GRID_IT && phases == 1)
                m->current_a[1] = a; /* between terminals L1 and L2 */
            if (chance(s, 0.15))
                m->applied_limit_a = a + rndf(s, 0, 20);
        }
    }
}

/* Adds the metered nodes' readings on top of what the chargers below them draw, so that the
 * non-EV part is what gen_inputs drew. */
static void meters_include_chargers(world *w)
{
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        if (!w->measured[k])
            continue;
        for (int n = w->ch[k].node; n >= 0; n = w->nodes[n].parent)
            for (size_t t = 0; t < PW_LINES; t++)
                if (w->ch[k].wiring[t])
                    w->meter[n][w->ch[k].wiring[t] - 1] += w->m[k].current_a[t];
    }
}

/* No overrides: every cap INFINITY, every priority the config's. */
static void clear_overrides(world *w)
{
    for (size_t k = 0; k < MAX_CH; k++) {
        w->op_cap[k] = INFINITY;
        w->op_prio[k] = w->ch[k].priority;
    }
    for (size_t n = 0; n < MAX_NODES; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            w->node_cap[n][l] = INFINITY;
}

/* Random overrides from the stream s: caps from 0 (a pause) to above the maximum, priorities of
 * the generator's range, node caps from a fifth of the limit to above it. */
static void gen_overrides(world *w, uint64_t *s)
{
    clear_overrides(w);
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        if (chance(s, 0.15))
            w->op_cap[k] = chance(s, 0.3) ? 0 : rndf(s, 0, w->ch[k].max_a + 4);
        if (chance(s, 0.1))
            w->op_prio[k] = rndi(s, -1, 2);
    }
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES && chance(s, 0.2); l++)
            w->node_cap[n][l] = rndf(s, 0.2, 1.1) * w->nodes[n].limit_a[l];
}

static void apply_overrides(pw_bal *b, const world *w)
{
    for (size_t k = 0; k < w->f.n_chargers; k++)
        pw_bal_set_override(b, k, w->op_cap[k], w->op_prio[k]);
    for (size_t n = 0; n < w->f.n_nodes; n++)
        pw_bal_set_node_cap(b, n, w->node_cap[n]);
}

/* The world as the checker sees it: the specs with the overrides' limits in force, as if the
 * config said so, and which chargers are paused by the operator. */
static void effective(const world *w, world *eff)
{
    *eff = *w;
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        eff->op_paused[k] = w->op_cap[k] < w->ch[k].min_a;
        if (!eff->op_paused[k])
            eff->ch[k].max_a = fmin(w->ch[k].max_a, w->op_cap[k]);
        eff->ch[k].priority = w->op_prio[k];
    }
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            eff->nodes[n].limit_a[l] = fmin(w->nodes[n].limit_a[l], w->node_cap[n][l]);
}

static void gen_world(world *w, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->seed = seed;
    uint64_t s = seed;
    w->f.grid = chance(&s, 0.5) ? PW_GRID_TN : PW_GRID_IT;
    w->f.nodes = w->nodes;
    w->f.chargers = w->ch;
    pw_bal_default_params(&w->f.params);
    w->f.params.oneshot = true;
    size_t n = (size_t)rndi(&s, 0, MAX_CH);
    if (chance(&s, 0.3))
        n = (size_t)rndi(&s, 0, 12); /* small ones find different corner cases */
    gen_nodes(w, &s, n);
    gen_reserves(w, seed);
    gen_chargers(w, &s, n);
    gen_inputs(w, &s);
    meters_include_chargers(w);
    /* A stream of their own, so the rest of each world is what it was without them. */
    uint64_t os = seed ^ 0x6a09e667f3bcc908u;
    if (chance(&os, 0.25))
        gen_overrides(w, &os);
    else
        clear_overrides(w);
}

/* ---- the independent checker ---- */

typedef struct check {
    const world *w;
    const pw_bal_result *r;
    const pw_bal_node_result *nr;
    int cls[MAX_CH]; /* rank, suspended cars last */
    /* per node and line: running chargers' minimum loads per class, and for fairness the largest
     * weighted share per class among chargers that could give (above their minimum) */
    double min_by_cls[MAX_NODES][PW_LINES][N_CLS];
    double top_level[MAX_NODES][PW_LINES][N_CLS];
    int lowest_giver[MAX_NODES][PW_LINES]; /* largest class rank above its minimum, -1 */
    uint8_t mask[MAX_CH], mask3[MAX_CH], mask1[MAX_CH];
    bool want[MAX_CH], fixed_load[MAX_CH];
    double demand[MAX_CH];
    double base[MAX_NODES][PW_LINES];   /* non-EV + silent/faulty budgets */
    double total[MAX_NODES][PW_LINES];  /* base + planned */
    double at_min[MAX_NODES][PW_LINES]; /* base + running chargers at their minimum */
    bool imb_path[MAX_CH];
} check;

static uint8_t lines_of(const pw_bal_charger_spec *c, uint8_t terms)
{
    uint8_t m = 0;
    for (size_t t = 0; t < PW_LINES; t++)
        if ((terms & (1u << t)) && c->wiring[t])
            m |= (uint8_t)(1u << (c->wiring[t] - 1));
    return m;
}

static void fail_seed(const world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_seed(const world *w, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_msg("seed %llu (%s, %zu nodes, %zu chargers): %s", (unsigned long long)w->seed,
             w->f.grid == PW_GRID_IT ? "IT" : "TN", w->f.n_nodes, w->f.n_chargers, msg);
}

/* Which lines each charger loads, what it may demand, and the class order. */
static void derive_chargers(check *c)
{
    const world *w = c->w;
    const pw_bal_params *p = &w->f.params;
    int prios[MAX_CH + 1], np = 0;
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        bool seen = false;
        for (int i = 0; i < np; i++)
            seen = seen || prios[i] == w->ch[k].priority;
        if (!seen)
            prios[np++] = w->ch[k].priority;
    }
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_charger_spec *s = &w->ch[k];
        const pw_bal_measure *m = &w->m[k];
        int higher = 0;
        for (int i = 0; i < np; i++)
            higher += prios[i] > s->priority;
        c->cls[k] = m->car == PW_CAR_SUSPENDED ? SUSP_CLS : higher;
        c->want[k] =
            w->measured[k] && m->car != PW_CAR_NONE && m->car != PW_CAR_FAULT && !w->op_paused[k];
        c->fixed_load[k] = !w->measured[k] || m->car == PW_CAR_FAULT;
        uint8_t terms = 0;
        for (size_t t = 0; t < PW_LINES && m->car == PW_CAR_CHARGING; t++)
            if (m->current_a[t] > p->active_phase_a)
                terms |= (uint8_t)(1u << t);
        uint8_t wired = lines_of(s, 7);
        uint8_t it_pair = lines_of(s, 3);
        if (!terms)
            c->mask3[k] = wired;
        else if (w->f.grid == PW_GRID_IT)
            c->mask3[k] = (terms & 4) ? wired : it_pair;
        else
            c->mask3[k] = lines_of(s, terms);
        c->mask1[k] = w->f.grid == PW_GRID_IT ? it_pair : lines_of(s, 1);
        c->mask[k] = c->r[k].phases == 1 ? c->mask1[k] : c->mask3[k];
        double draw = fmax(m->current_a[0], fmax(m->current_a[1], m->current_a[2]));
        double want = draw + p->trim_headroom_a;
        c->demand[k] = s->max_a;
        if (m->car == PW_CAR_SUSPENDED)
            c->demand[k] = s->min_a;
        else if (m->car == PW_CAR_CHARGING && m->applied_limit_a > 0 &&
                 want + p->hysteresis_a <= m->applied_limit_a && want < s->max_a)
            c->demand[k] = fmax(s->min_a, want);
        c->imb_path[k] = false;
        for (int n = s->node; n >= 0; n = w->nodes[n].parent)
            c->imb_path[k] = c->imb_path[k] || w->nodes[n].max_imbalance_a > 0;
    }
}

/* Non-EV budget per node, computed from the definitions; compared with the balancer's. */
static void derive_nodes(check *c)
{
    const world *w = c->w;
    double ev[MAX_NODES][PW_LINES] = {{0}}, sub[MAX_NODES][PW_LINES] = {{0}};
    double non_ev[MAX_NODES][PW_LINES];
    for (size_t k = 0; k < w->f.n_chargers; k++)
        for (int n = w->ch[k].node; n >= 0 && w->measured[k]; n = w->nodes[n].parent)
            for (size_t t = 0; t < PW_LINES; t++)
                if (w->ch[k].wiring[t])
                    ev[n][w->ch[k].wiring[t] - 1] += w->m[k].current_a[t];
    /* Children have larger indices than their parents: walk backwards. */
    for (size_t i = w->f.n_nodes; i-- > 0;) {
        const pw_bal_node_spec *nd = &w->nodes[i];
        for (size_t l = 0; l < PW_LINES; l++) {
            double own = 0;
            if (nd->metered)
                own =
                    w->meter_read[i] ? fmax(0, w->meter[i][l] - ev[i][l]) : nd->meter_fallback_a[l];
            /* An unmetered node adds its own reserve; a metered one sees its own load. */
            non_ev[i][l] = nd->metered ? fmax(own, sub[i][l]) : sub[i][l] + nd->reserve_a[l];
            if (i > 0)
                sub[nd->parent][l] += non_ev[i][l];
            if (fabs(non_ev[i][l] - c->nr[i].non_ev_a[l]) > EPS)
                fail_seed(w, "node %zu L%zu non-EV %.4f, expected %.4f", i, l + 1,
                          c->nr[i].non_ev_a[l], non_ev[i][l]);
            if (nd->metered && c->nr[i].meter_stale == w->meter_read[i])
                fail_seed(w, "node %zu meter_stale wrong", i);
        }
    }
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            c->base[n][l] = c->total[n][l] = c->at_min[n][l] = non_ev[n][l];
}

/* Per-charger result checks, and the node totals from the results. */
static void check_chargers(check *c)
{
    const world *w = c->w;
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_result *r = &c->r[k];
        const pw_bal_charger_spec *s = &w->ch[k];
        if (!r->reason_text[0])
            fail_seed(w, "charger %zu has no reason text", k);
        double load[PW_LINES];
        if (c->fixed_load[k]) {
            /* Oneshot: a silent charger was never heard, so its failsafe (0 here) on each
             * wired line; a faulty one its measured draw. */
            for (size_t l = 0; l < PW_LINES; l++)
                load[l] = 0;
            for (size_t t = 0; t < PW_LINES && w->measured[k]; t++)
                if (s->wiring[t])
                    load[s->wiring[t] - 1] += w->m[k].current_a[t];
            if (r->limit_a != 0)
                fail_seed(w, "charger %zu offline/faulty but offered %.3f", k, r->limit_a);
        } else {
            if (r->limit_a != 0 && (r->limit_a < s->min_a - EPS || r->limit_a > s->max_a + EPS))
                fail_seed(w, "charger %zu limit %.4f outside [%.2f, %.2f]", k, r->limit_a, s->min_a,
                          s->max_a);
            if (!c->want[k] && r->limit_a != 0)
                fail_seed(w, "charger %zu has no car but %.3f A", k, r->limit_a);
            if (w->op_paused[k] && r->reason != PW_REASON_PAUSED_OPERATOR)
                fail_seed(w, "charger %zu paused by the operator with reason %s", k,
                          pw_bal_reason_name(r->reason));
            if (c->want[k] && fabs(r->demand_a - c->demand[k]) > EPS)
                fail_seed(w, "charger %zu demand %.4f, expected %.4f", k, r->demand_a,
                          c->demand[k]);
            if (r->limit_a > c->demand[k] + EPS)
                fail_seed(w, "charger %zu limit %.4f above its demand", k, r->limit_a);
            if (r->phases == 1 && !s->can_switch_phases)
                fail_seed(w, "charger %zu switched without permission", k);
            for (size_t l = 0; l < PW_LINES; l++)
                load[l] = (c->mask[k] & (1u << l)) ? r->limit_a : 0;
        }
        for (size_t l = 0; l < PW_LINES; l++)
            if (fabs(load[l] - r->line_a[l]) > EPS)
                fail_seed(w, "charger %zu line L%zu load %.4f, expected %.4f", k, l + 1,
                          r->line_a[l], load[l]);
        for (int n = s->node; n >= 0; n = w->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES; l++) {
                c->total[n][l] += load[l];
                if (c->fixed_load[k])
                    c->base[n][l] += load[l];
                c->at_min[n][l] += c->fixed_load[k]                ? load[l]
                                   : r->limit_a > 0 && load[l] > 0 ? s->min_a
                                                                   : 0;
            }
    }
}

/* Per node and line aggregates of the running chargers for the fairness and pause checks. */
static void aggregate(check *c)
{
    const world *w = c->w;
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++) {
            c->lowest_giver[n][l] = -1;
            for (size_t r = 0; r < N_CLS; r++)
                c->min_by_cls[n][l][r] = c->top_level[n][l][r] = 0;
        }
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_result *r = &c->r[k];
        if (r->limit_a <= 0 || c->fixed_load[k])
            continue;
        int cls = c->cls[k];
        bool gives = r->limit_a > w->ch[k].min_a + EPS;
        double lev = r->limit_a / w->ch[k].weight;
        for (int n = w->ch[k].node; n >= 0; n = w->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES; l++) {
                if (!(c->mask[k] & (1u << l)))
                    continue;
                c->min_by_cls[n][l][cls] += w->ch[k].min_a;
                if (gives && lev > c->top_level[n][l][cls])
                    c->top_level[n][l][cls] = lev;
                if (gives && cls > c->lowest_giver[n][l])
                    c->lowest_giver[n][l] = cls;
            }
    }
}

static double cap_of(const world *w, size_t n, size_t l)
{
    return w->nodes[n].limit_a[l] - w->nodes[n].margin_a;
}

/* Every line within its limit (unless the non-EV load alone is over it and nothing is planned
 * there), every imbalance within its limit or no worse than the non-EV load makes it. */
static void check_constraints(check *c)
{
    const world *w = c->w;
    for (size_t n = 0; n < w->f.n_nodes; n++) {
        for (size_t l = 0; l < PW_LINES; l++) {
            bool planned = c->total[n][l] > c->base[n][l] + EPS;
            if (planned && c->total[n][l] > cap_of(w, n, l) + EPS)
                fail_seed(w, "node %zu L%zu planned %.4f over %.4f", n, l + 1, c->total[n][l],
                          cap_of(w, n, l));
            if (fabs(c->nr[n].planned_a[l] - c->total[n][l]) > EPS)
                fail_seed(w, "node %zu L%zu planned_a %.4f, expected %.4f", n, l + 1,
                          c->nr[n].planned_a[l], c->total[n][l]);
        }
        double imb = w->nodes[n].max_imbalance_a;
        for (size_t a = 0; a < PW_LINES && imb > 0; a++)
            for (size_t b = 0; b < PW_LINES; b++) {
                double d = c->total[n][a] - c->total[n][b];
                double d0 = c->base[n][a] - c->base[n][b];
                if (a != b && d > fmax(imb, d0) + EPS)
                    fail_seed(w, "node %zu L%zu-L%zu = %.4f over imbalance %.4f", n, a + 1, b + 1,
                              d, imb);
            }
    }
}

/* Whether raising charger k by a tiny amount would break a constraint on its path. */
static bool blocked(const check *c, size_t k, int *bind_node, int *bind_line)
{
    const world *w = c->w;
    for (int n = w->ch[k].node; n >= 0; n = w->nodes[n].parent) {
        for (size_t l = 0; l < PW_LINES; l++)
            if ((c->mask[k] & (1u << l)) && c->total[n][l] >= cap_of(w, n, l) - EPS) {
                *bind_node = n;
                *bind_line = (int)l;
                return true;
            }
        double imb = w->nodes[n].max_imbalance_a;
        for (size_t a = 0; a < PW_LINES && imb > 0; a++)
            for (size_t b = 0; b < PW_LINES; b++)
                if ((c->mask[k] & (1u << a)) && !(c->mask[k] & (1u << b)) &&
                    c->total[n][a] - c->total[n][b] >= imb - EPS) {
                    *bind_node = n;
                    *bind_line = -1;
                    return true;
                }
    }
    return false;
}

/* Pareto: a running charger below its demand is held by a full constraint. */
static void check_pareto(const check *c)
{
    const world *w = c->w;
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_result *r = &c->r[k];
        int bn, bl;
        if (r->limit_a <= 0 || r->limit_a >= c->demand[k] - EPS)
            continue;
        if (!blocked(c, k, &bn, &bl))
            fail_seed(w, "charger %zu at %.4f of %.4f could be raised", k, r->limit_a,
                      c->demand[k]);
        if (r->bind_node < 0)
            fail_seed(w, "charger %zu limited but names no constraint: %s", k, r->reason_text);
    }
}

/* Max-min fairness within a class: a running charger k below its demand has a full line at
 * some node where no charger of its class that could give (above its minimum) has a larger
 * weighted share, and no lower-class charger has more than its minimum. */
static void check_fairness(const check *c)
{
    const world *w = c->w;
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_result *r = &c->r[k];
        if (r->limit_a <= 0 || r->limit_a >= c->demand[k] - EPS || c->imb_path[k])
            continue;
        double lev = r->limit_a / w->ch[k].weight;
        int cls = c->cls[k];
        bool ok = false;
        for (int n = w->ch[k].node; n >= 0 && !ok; n = w->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES && !ok; l++)
                ok = (c->mask[k] & (1u << l)) && c->total[n][l] >= cap_of(w, n, l) - EPS &&
                     c->top_level[n][l][cls] <= lev + EPS && c->lowest_giver[n][l] <= cls;
        if (!ok)
            fail_seed(w, "charger %zu at %.4f (class %d) is not max-min fair", k, r->limit_a, cls);
    }
}

/* Whether charger k's minimum fits at mask with running chargers at their minimums, counting
 * only chargers of class <= max_cls. */
static bool min_fits(const check *c, size_t k, uint8_t mask, int max_cls, bool line_rows_only)
{
    const world *w = c->w;
    for (int n = w->ch[k].node; n >= 0; n = w->nodes[n].parent) {
        double load[PW_LINES];
        for (size_t l = 0; l < PW_LINES; l++) {
            load[l] = c->at_min[n][l];
            for (int r = max_cls + 1; r < N_CLS; r++) /* leave out lower classes */
                load[l] -= c->min_by_cls[n][l][r];
        }
        double add = w->ch[k].min_a;
        for (size_t l = 0; l < PW_LINES; l++)
            if ((mask & (1u << l)) && load[l] + add > cap_of(w, (size_t)n, l) + 1e-9)
                return false;
        double imb = w->nodes[n].max_imbalance_a;
        for (size_t a = 0; a < PW_LINES && imb > 0 && !line_rows_only; a++)
            for (size_t b = 0; b < PW_LINES; b++) {
                int coef = !!(mask & (1u << a)) - !!(mask & (1u << b));
                if (coef > 0 && load[a] - load[b] + add > imb + 1e-9)
                    return false;
            }
    }
    return true;
}

/* No needless pause: a paused wanting charger's minimum does not fit next to the running ones
 * at their minimums; and priority: it does not fit even without the lower classes. */
static void check_pauses(const check *c)
{
    const world *w = c->w;
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        if (!c->want[k] || c->r[k].limit_a > 0)
            continue;
        bool sw = w->ch[k].can_switch_phases;
        if (min_fits(c, k, c->mask3[k], SUSP_CLS, false) ||
            (sw && min_fits(c, k, c->mask1[k], SUSP_CLS, false)))
            fail_seed(w, "charger %zu paused needlessly: %s", k, c->r[k].reason_text);
        if (c->imb_path[k] || c->cls[k] == SUSP_CLS)
            continue;
        if (min_fits(c, k, c->mask3[k], c->cls[k], true) ||
            (sw && min_fits(c, k, c->mask1[k], c->cls[k], true)))
            fail_seed(w, "charger %zu paused although only lower classes are in the way: %s", k,
                      c->r[k].reason_text);
        enum pw_bal_reason why = c->r[k].reason;
        if (why != PW_REASON_PAUSED_NO_ROOM && why != PW_REASON_PAUSED_PRIORITY &&
            why != PW_REASON_PAUSED_ROTATION && why != PW_REASON_SUSPENDED)
            fail_seed(w, "charger %zu paused with reason %s", k, pw_bal_reason_name(why));
    }
}

static void feed(pw_bal *b, const world *w, uint64_t now)
{
    for (size_t n = 0; n < w->f.n_nodes; n++)
        if (w->meter_read[n])
            pw_bal_set_meter(b, n, w->meter[n], now);
    for (size_t k = 0; k < w->f.n_chargers; k++)
        if (w->measured[k])
            pw_bal_set_charger(b, k, &w->m[k], now);
}

/* How often the interesting cases came up, so a generator change cannot hollow the test out. */
static uint64_t seen[PW_REASON_COUNT], seen_switched, seen_chargers, seen_reserve_bound;
static uint64_t seen_op_max, seen_node_cap;

static void count_cases(const check *c)
{
    for (size_t k = 0; k < c->w->f.n_chargers; k++) {
        seen[c->r[k].reason]++;
        seen_switched += c->r[k].limit_a > 0 && c->r[k].phases == 1;
    }
    seen_chargers += c->w->f.n_chargers;
    /* Chargers limited at a line whose budget holds a reserve: reserves change allocations. */
    for (size_t k = 0; k < c->w->f.n_chargers; k++) {
        const pw_bal_result *r = &c->r[k];
        const pw_bal_node_spec *nd = r->bind_node >= 0 ? &c->w->nodes[r->bind_node] : NULL;
        seen_reserve_bound += nd && !nd->metered && r->bind_line > 0 &&
                              r->reason == PW_REASON_NODE_LIMIT &&
                              nd->reserve_a[r->bind_line - 1] > 0;
        seen_op_max += r->reason == PW_REASON_MAX && strstr(r->reason_text, "operator's") != NULL;
        seen_node_cap += strstr(r->reason_text, " limit ") && strstr(r->reason_text, " A)") &&
                         (strstr(r->reason_text, "(facility limit") ||
                          strstr(r->reason_text, "(operator limit"));
    }
}

/* With a single seed on the command line the facility and its plan are printed first. */
static void dump_world(const world *w, const pw_bal_result *r, const pw_bal_node_result *nr)
{
    for (size_t n = 0; n < w->f.n_nodes; n++) {
        const pw_bal_node_spec *d = &w->nodes[n];
        printf("node %zu parent %d limit %.2f/%.2f/%.2f margin %.2f imb %.2f metered %d read %d "
               "meter %.2f/%.2f/%.2f | non-EV %.2f/%.2f/%.2f planned %.2f/%.2f/%.2f\n",
               n, d->parent, d->limit_a[0], d->limit_a[1], d->limit_a[2], d->margin_a,
               d->max_imbalance_a, d->metered, w->meter_read[n], w->meter[n][0], w->meter[n][1],
               w->meter[n][2], nr[n].non_ev_a[0], nr[n].non_ev_a[1], nr[n].non_ev_a[2],
               nr[n].planned_a[0], nr[n].planned_a[1], nr[n].planned_a[2]);
    }
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_charger_spec *c = &w->ch[k];
        const pw_bal_measure *m = &w->m[k];
        printf("ch %zu node %d wiring %u%u%u min %.2f max %.2f w %.2f prio %d sw %d | meas %d car "
               "%d cur %.2f/%.2f/%.2f applied %.2f | limit %.3f ph %u lines %.2f/%.2f/%.2f %s\n",
               k, c->node, c->wiring[0], c->wiring[1], c->wiring[2], c->min_a, c->max_a, c->weight,
               c->priority, c->can_switch_phases, w->measured[k], m->car, m->current_a[0],
               m->current_a[1], m->current_a[2], m->applied_limit_a, r[k].limit_a, r[k].phases,
               r[k].line_a[0], r[k].line_a[1], r[k].line_a[2], r[k].reason_text);
    }
}

static void check_world(world *w)
{
    char err[256];
    if (pw_bal_validate(&w->f, err, sizeof err) != 0)
        fail_seed(w, "generated facility rejected: %s", err);
    pw_bal *b = pw_bal_new(&w->f);
    apply_overrides(b, w);
    feed(b, w, 1000);
    assert_int_equal(pw_bal_run(b, 1000), 0);
    static check c; /* large: keep it off the stack */
    static world eff;
    effective(w, &eff);
    memset(&c, 0, sizeof c);
    c.w = &eff;
    c.r = pw_bal_results(b);
    c.nr = pw_bal_node_results(b);
    if (single_seed)
        dump_world(w, c.r, c.nr);
    derive_chargers(&c);
    derive_nodes(&c);
    check_chargers(&c);
    check_constraints(&c);
    check_pareto(&c);
    aggregate(&c);
    check_fairness(&c);
    check_pauses(&c);
    count_cases(&c);
    pw_bal_free(b);
}

/* Facilities beyond the default count that once failed, checked in every run: refills that
 * crawled under two nested imbalance limits (raise_leftovers). */
static const uint64_t known_seeds[] = {11400714819323223208u};

static void test_random_facilities(void **state)
{
    (void)state;
    static world w;
    uint64_t count = single_seed ? 1 : prop_count;
    for (uint64_t i = 0; i < count; i++) {
        gen_world(&w, prop_seed + i);
        check_world(&w);
    }
    for (size_t i = 0; i < sizeof known_seeds / sizeof *known_seeds && !single_seed; i++) {
        gen_world(&w, known_seeds[i]);
        check_world(&w);
    }
    print_message(
        "%llu random facilities, %llu chargers: %llu node-limited, %llu at max, "
        "%llu imbalance-limited, %llu trimmed, %llu paused (%llu rotation, %llu "
        "priority, %llu no room), %llu on 1 phase, %llu stale-meter-limited, %llu limited "
        "at an unmetered line with a reserve\n",
        (unsigned long long)count, (unsigned long long)seen_chargers,
        (unsigned long long)seen[PW_REASON_NODE_LIMIT], (unsigned long long)seen[PW_REASON_MAX],
        (unsigned long long)seen[PW_REASON_IMBALANCE], (unsigned long long)seen[PW_REASON_CAR_DRAW],
        (unsigned long long)(seen[PW_REASON_PAUSED_ROTATION] + seen[PW_REASON_PAUSED_PRIORITY] +
                             seen[PW_REASON_PAUSED_NO_ROOM]),
        (unsigned long long)seen[PW_REASON_PAUSED_ROTATION],
        (unsigned long long)seen[PW_REASON_PAUSED_PRIORITY],
        (unsigned long long)seen[PW_REASON_PAUSED_NO_ROOM], (unsigned long long)seen_switched,
        (unsigned long long)seen[PW_REASON_METER_STALE], (unsigned long long)seen_reserve_bound);
    if (count >= 1000) /* every rule must have been exercised */
        for (enum pw_bal_reason r = PW_REASON_MAX; r <= PW_REASON_SUSPENDED; r++)
            if (r != PW_REASON_WAITING_CUTS && !seen[r])
                fail_msg("no charger ended with reason %s", pw_bal_reason_name(r));
    if (count >= 1000 && !seen_reserve_bound)
        fail_msg("no charger was limited at an unmetered line with a reserve");
    print_message("overrides: %llu paused by the operator, %llu at the operator's maximum, %llu "
                  "bound by an operator's node limit\n",
                  (unsigned long long)seen[PW_REASON_PAUSED_OPERATOR],
                  (unsigned long long)seen_op_max, (unsigned long long)seen_node_cap);
    if (count >= 1000 && (!seen[PW_REASON_PAUSED_OPERATOR] || !seen_op_max || !seen_node_cap))
        fail_msg("the overrides were not all exercised");
}

/* ---- the same facilities through time ---- */

/* Safety at every run of a live balancer: controlled chargers get 0 or [min, max] on the lines
 * of their phase mode, and planned loads plus budgets stay within every line where anything is
 * planned. The non-EV budgets are the balancer's own (their rules are unit-tested). */
static void check_live(const world *w, pw_bal *b, uint64_t now)
{
    const pw_bal_result *r = pw_bal_results(b);
    const pw_bal_node_result *nr = pw_bal_node_results(b);
    double ev[MAX_NODES][PW_LINES] = {{0}}, all[MAX_NODES][PW_LINES] = {{0}};
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        const pw_bal_charger_spec *c = &w->ch[k];
        bool ctrl = r[k].reason != PW_REASON_OFFLINE && r[k].reason != PW_REASON_FAULT;
        if (ctrl && w->op_paused[k] &&
            (r[k].limit_a != 0 || r[k].line_a[0] != 0 || r[k].line_a[1] != 0 ||
             r[k].line_a[2] != 0))
            fail_seed(w, "t=%llu charger %zu paused by the operator but offered %.4f",
                      (unsigned long long)now, k, r[k].limit_a);
        if (ctrl && r[k].limit_a != 0 &&
            (r[k].limit_a < c->min_a - EPS || r[k].limit_a > c->max_a + EPS))
            fail_seed(w, "t=%llu charger %zu limit %.4f outside [min, max]",
                      (unsigned long long)now, k, r[k].limit_a);
        for (size_t l = 0; l < PW_LINES && ctrl; l++)
            if (r[k].line_a[l] != 0 && fabs(r[k].line_a[l] - r[k].limit_a) > EPS)
                fail_seed(w, "t=%llu charger %zu line load %.4f but limit %.4f",
                          (unsigned long long)now, k, r[k].line_a[l], r[k].limit_a);
        for (int n = c->node; n >= 0; n = w->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES; l++) {
                all[n][l] += r[k].line_a[l];
                if (ctrl)
                    ev[n][l] += r[k].line_a[l];
            }
    }
    /* An unmetered node budgets its children's non-EV load and its own reserve, which no meter
     * sees: without it the limit check below would trust a budget missing the reserve. */
    double sub[MAX_NODES][PW_LINES] = {{0}};
    for (size_t n = 1; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            sub[w->nodes[n].parent][l] += nr[n].non_ev_a[l];
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES && !w->nodes[n].metered; l++)
            if (fabs(nr[n].non_ev_a[l] - sub[n][l] - w->nodes[n].reserve_a[l]) > EPS)
                fail_seed(
                    w, "t=%llu unmetered node %zu L%zu non-EV %.4f, expected %.4f + reserve %.4f",
                    (unsigned long long)now, n, l + 1, nr[n].non_ev_a[l], sub[n][l],
                    w->nodes[n].reserve_a[l]);
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            if (ev[n][l] > EPS && all[n][l] + nr[n].non_ev_a[l] > cap_of(w, n, l) + EPS &&
                (!single_seed || (dump_world(w, r, nr), true)))
                fail_seed(w, "t=%llu node %zu L%zu planned %.4f + non-EV %.4f over %.4f",
                          (unsigned long long)now, n, l + 1, all[n][l], nr[n].non_ev_a[l],
                          cap_of(w, n, l));
}

/* One step of the world: cars follow their limits (or not yet), come and go, go silent; the
 * building load wanders; meters sometimes miss readings. */
static void evolve(world *w, uint64_t *s, const pw_bal_result *r)
{
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        pw_bal_measure *m = &w->m[k];
        w->measured[k] = chance(s, 0.97);
        if (chance(s, 0.01))
            m->car = m->car == PW_CAR_NONE ? PW_CAR_CONNECTED : PW_CAR_NONE;
        if (m->car == PW_CAR_CONNECTED && r[k].limit_a > 0)
            m->car = PW_CAR_CHARGING;
        if (m->car != PW_CAR_CHARGING) {
            memset(m->current_a, 0, sizeof m->current_a);
            continue;
        }
        if (chance(s, 0.6)) { /* follows the limit, some cars want less */
            double a = fmin(r[k].limit_a, chance(s, 0.2) ? rndf(s, 3, 12) : r[k].limit_a);
            for (size_t t = 0; t < PW_LINES; t++)
                if (m->current_a[t] > 0.5 || t == 0 || (r[k].phases == 3 && chance(s, 0.05)))
                    m->current_a[t] = a;
            if (r[k].phases == 1)
                m->current_a[2] = w->f.grid == PW_GRID_IT ? 0 : (m->current_a[1] = 0);
            m->applied_limit_a = r[k].limit_a;
            m->applied_phases = r[k].phases;
        }
    }
    for (size_t n = 0; n < w->f.n_nodes; n++) {
        w->meter_read[n] = w->nodes[n].metered && chance(s, 0.9);
        for (size_t l = 0; l < PW_LINES; l++)
            w->meter[n][l] = fmax(0, w->meter[n][l] * 0.3 + rndf(s, -3, 3) +
                                         0.7 * rndf(s, 0, w->nodes[n].limit_a[l] * 0.3));
    }
    meters_include_chargers(w);
}

static void test_live_facilities(void **state)
{
    (void)state;
    static world w;
    uint64_t count = single_seed ? 1 : prop_count / 40, runs = 0;
    for (uint64_t i = 0; i < count; i++) {
        gen_world(&w, prop_seed + i);
        w.f.params.oneshot = false;
        w.f.params.min_run_ms = 60000;
        w.f.params.min_pause_ms = 30000;
        uint64_t s = w.seed ^ 0x5a5a5a5a5a5a5a5au;
        uint64_t os = w.seed ^ 0x3c6ef372fe94f82bu; /* overrides: a stream of their own */
        pw_bal *b = pw_bal_new(&w.f);
        static world eff;
        apply_overrides(b, &w);
        effective(&w, &eff);
        for (uint64_t t = 0; t < 400000; t += 2000, runs++) {
            /* Now and then the operator changes something: it holds from the next run on. */
            if (chance(&os, 0.03)) {
                if (chance(&os, 0.5))
                    gen_overrides(&w, &os);
                else
                    clear_overrides(&w);
                apply_overrides(b, &w);
                effective(&w, &eff);
            }
            feed(b, &w, t);
            assert_int_equal(pw_bal_run(b, t), 0);
            check_live(&eff, b, t);
            evolve(&w, &s, pw_bal_results(b));
        }
        pw_bal_free(b);
    }
    print_message("%llu live facilities, %llu runs\n", (unsigned long long)count,
                  (unsigned long long)runs);
}

/* Whether two balancers planned the same: equal decisions and texts, amperes within 1e-8 (the
 * shortcuts sum loads in another order, which may change the last bits). */
static void check_same(const world *w, const pw_bal *x, const pw_bal *y, uint64_t now)
{
    const double tol = 1e-8;
    const pw_bal_result *a = pw_bal_results(x), *b = pw_bal_results(y);
    for (size_t k = 0; k < w->f.n_chargers; k++) {
        bool same = fabs(a[k].limit_a - b[k].limit_a) <= tol && a[k].phases == b[k].phases &&
                    a[k].reason == b[k].reason && a[k].bind_node == b[k].bind_node &&
                    a[k].bind_line == b[k].bind_line && a[k].next_turn_ms == b[k].next_turn_ms &&
                    fabs(a[k].demand_a - b[k].demand_a) <= tol &&
                    strcmp(a[k].reason_text, b[k].reason_text) == 0;
        for (size_t l = 0; l < PW_LINES; l++)
            same = same && fabs(a[k].line_a[l] - b[k].line_a[l]) <= tol;
        if (!same)
            fail_seed(w,
                      "t=%llu charger %zu: %.9f A (%s, next turn %llu) with shortcuts, %.9f A (%s, "
                      "next turn %llu) without",
                      (unsigned long long)now, k, a[k].limit_a, a[k].reason_text,
                      (unsigned long long)a[k].next_turn_ms, b[k].limit_a, b[k].reason_text,
                      (unsigned long long)b[k].next_turn_ms);
    }
    const pw_bal_node_result *na = pw_bal_node_results(x), *nb = pw_bal_node_results(y);
    for (size_t n = 0; n < w->f.n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            if (fabs(na[n].planned_a[l] - nb[n].planned_a[l]) > tol ||
                fabs(na[n].non_ev_a[l] - nb[n].non_ev_a[l]) > tol)
                fail_seed(w, "t=%llu node %zu L%zu: %.9f A planned with shortcuts, %.9f without",
                          (unsigned long long)now, n, l + 1, na[n].planned_a[l],
                          nb[n].planned_a[l]);
    if (pw_bal_next_deadline(x) != pw_bal_next_deadline(y))
        fail_seed(w, "t=%llu next deadline %llu with shortcuts, %llu without",
                  (unsigned long long)now, (unsigned long long)pw_bal_next_deadline(x),
                  (unsigned long long)pw_bal_next_deadline(y));
}

/* The run's shortcuts (admission without checks where no row can refuse, the first few ends of
 * the running cars for the rotation estimate) against the plain algorithm: the same random
 * facilities driven through time, once each way, must plan the same at every run. */
static void test_shortcuts(void **state)
{
    (void)state;
    static world w;
    uint64_t count = single_seed ? 1 : prop_count / 40;
    for (uint64_t i = 0; i < count; i++) {
        gen_world(&w, prop_seed + i);
        w.f.params.oneshot = i % 4 == 0; /* oneshot as `phasewise plan` uses it, mostly live */
        w.f.params.min_run_ms = 60000;
        w.f.params.min_pause_ms = 30000;
        uint64_t s = w.seed ^ 0x5a5a5a5a5a5a5a5au;
        uint64_t os = w.seed ^ 0x3c6ef372fe94f82bu;
        pw_bal *fast = pw_bal_new(&w.f), *plain = pw_bal_new(&w.f);
        plain->reference = true;
        apply_overrides(fast, &w);
        apply_overrides(plain, &w);
        for (uint64_t t = 0; t < 400000; t += 2000) {
            if (chance(&os, 0.03)) {
                if (chance(&os, 0.5))
                    gen_overrides(&w, &os);
                else
                    clear_overrides(&w);
                apply_overrides(fast, &w);
                apply_overrides(plain, &w);
            }
            feed(fast, &w, t);
            feed(plain, &w, t);
            pw_bal_run(fast, t);
            pw_bal_run(plain, t);
            check_same(&w, fast, plain, t);
            evolve(&w, &s, pw_bal_results(fast));
        }
        pw_bal_free(fast);
        pw_bal_free(plain);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            prop_count = strtoull(argv[++i], NULL, 0);
        } else {
            prop_seed = strtoull(argv[i], NULL, 0);
            single_seed = true;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_facilities),
        cmocka_unit_test(test_live_facilities),
        cmocka_unit_test(test_shortcuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
