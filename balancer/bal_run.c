/* One balancer run: turn measurements into budgets (non-EV load per node, silent chargers, trimmed
 * demands), allocate, then apply the dynamic rules (cuts at once, raises only into room that the
 * measurements show, hysteresis) and remember what was decided for the next run. */
#include "bal_int.h"

#include <math.h>
#include <string.h>

static uint64_t age(uint64_t now, uint64_t t)
{
    return now > t ? now - t : 0;
}

static int popcount3(uint8_t m)
{
    return (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1);
}

/* Grid lines the car loads at full phases, by the terminals measured active (a table built by
 * pw_bal_new: bal_ch.car_lines). */
static uint8_t car_lines(const bal_ch *c, uint8_t terms)
{
    return c->car_lines[terms & 7];
}

static uint8_t terms_active(const pw_bal *b, const pw_bal_measure *m)
{
    uint8_t t = 0;
    for (size_t i = 0; i < PW_LINES; i++)
        if (m->current_a[i] > b->p.active_phase_a)
            t |= (uint8_t)(1u << i);
    return t;
}

static double max_draw(const pw_bal_measure *m)
{
    double d = 0;
    for (size_t t = 0; t < PW_LINES; t++)
        if (m->current_a[t] > d)
            d = m->current_a[t];
    return d;
}

/* A car drawing clearly less than offered is offered its draw plus headroom, so the rest goes to
 * others; after probe_ms the cap is lifted to see whether it wants more. Returns the demand. */
static double trimmed_demand(pw_bal *b, size_t k, uint64_t now)
{
    bal_ch *c = &b->ch[k];
    bal_plan *pl = &b->plan[k];
    const pw_bal_params *p = &b->p;
    double draw = max_draw(&c->m), cap = 0;
    double want = draw + p->trim_headroom_a;
    if (p->oneshot) {
        double offered = c->m.applied_limit_a;
        if (c->m.car == PW_CAR_CHARGING && offered > 0 && want + p->hysteresis_a <= offered)
            cap = want;
    } else {
        if (c->trim_cap > 0) {
            if (age(now, c->trim_at) >= p->probe_ms || draw > c->trim_cap - p->trim_headroom_a / 2)
                c->trim_cap = 0; /* probe upward, or the car is using what it has */
            else if (want + p->hysteresis_a < c->trim_cap)
                c->trim_cap = want; /* its draw fell further */
        } else if (/* first what fails most while offers move: the reaction window */
                   c->meas_at >= c->offer_since && c->meas_at - c->offer_since >= p->reaction_ms &&
                   c->have_prev && c->prev_limit > 0 && want + p->hysteresis_a <= c->prev_limit) {
            c->trim_cap = want;
            c->trim_at = now;
        }
        cap = c->trim_cap;
    }
    if (cap > 0 && cap < c->spec.max_a) {
        pl->trimmed = true;
        return cap < pl->lo ? pl->lo : cap;
    }
    return c->spec.max_a;
}

/* Phase modes open to a wanting car this run. */
static void phase_options(pw_bal *b, size_t k, uint64_t now)
{
    bal_ch *c = &b->ch[k];
    bal_plan *pl = &b->plan[k];
    bool oneshot = b->p.oneshot;
    uint8_t terms =
        oneshot ? (c->m.car == PW_CAR_CHARGING ? terms_active(b, &c->m) : 0) : c->car_terms;
    pl->mask3 = car_lines(c, terms);
    pl->mask1 = c->one;
    bool useful = c->spec.can_switch_phases && popcount3(pl->mask3) > popcount3(pl->mask1);
    bool budget = oneshot || c->switches < b->p.max_phase_switches;
    pl->mode = useful && !oneshot && c->mode == 1 ? 1 : 3;
    pl->can1 = useful && (pl->mode == 1 || budget);
    pl->can3 = pl->mode == 3 || (budget && age(now, c->mode_since) >= b->p.phase_hold_ms);
}

/* The first time a charger is planned, what it offers now is the previous plan. */
static void init_prev(pw_bal *b, size_t k, uint64_t now)
{
    bal_ch *c = &b->ch[k];
    c->have_prev = true;
    c->prev_limit = c->m.applied_limit_a;
    c->prev_mode = c->m.applied_phases == 1 ? 1 : 3;
    uint8_t mask = c->prev_mode == 1 ? c->one : car_lines(c, c->car_terms);
    for (size_t l = 0; l < PW_LINES; l++)
        c->prev_line[l] = (mask & (1u << l)) ? c->prev_limit : 0;
    c->offer_since = now;
    c->running = c->prev_limit > 0;
    c->run_since = now;
}

/* A cut may still be unseen within the reaction window plus the longest meter interval above
 * the charger (bal_node.path_iv, as of this run). Without a branch: whether a cut has expired
 * is a coin toss from one charger to the next. */
static void cut_expiry(const pw_bal *b, bal_ch *c, uint64_t now)
{
    c->cut_until = c->cut_at + b->p.reaction_ms + b->nodes[c->spec.node].path_iv;
    c->cut_pending = c->cut_pending & (now < c->cut_until);
}

/* A silent charger may still draw its last current, or its failsafe once its lease ends; one
 * whose status is only overdue, or one that has no lease and keeps its last limit, may also
 * still draw what it was last offered. */
static void silent_budget(const bal_ch *c, bool overdue, double fixed[PW_LINES])
{
    bool offered = overdue || c->spec.timing.keeps_limit;
    for (size_t l = 0; l < PW_LINES; l++) {
        double fs = (c->wired & (1u << l)) ? c->spec.failsafe_a : 0;
        double last = c->has_meas ? c->meas_line[l] : 0;
        fixed[l] = last > fs ? last : fs;
        if (offered && c->prev_line[l] > fixed[l])
            fixed[l] = c->prev_line[l];
    }
}

/* A charger that keeps its limits without the appliance (OCPP: no lease) lets a car that plugs
 * in draw its failsafe default at once, also while the appliance is away and the others keep
 * what they were last offered: so an idle one is budgeted at its failsafe on its wired lines. */
static void idle_budget(const bal_ch *c, double fixed[PW_LINES])
{
    if (!c->spec.timing.keeps_limit)
        return;
    for (size_t l = 0; l < PW_LINES; l++)
        fixed[l] = (c->wired & (1u << l)) ? c->spec.failsafe_a : 0;
}

/* A car that stopped drawing is reported as suspended, but it may have stopped because it was
 * offered too little: believe it paused itself only once it has been offered at least its
 * minimum for the reaction window, and then until it changes state. */
static bool suspended_itself(pw_bal *b, bal_ch *c)
{
    if (b->p.oneshot || c->susp_believed)
        return true;
    double min = c->spec.min_a - 1e-9;
    c->susp_believed = c->m.applied_limit_a >= min && c->prev_limit >= min &&
                       c->meas_at >= c->offer_since &&
                       c->meas_at - c->offer_since >= b->p.reaction_ms;
    return c->susp_believed;
}

#define TIME_MAX ((UINT64_C(1) << BAL_KEY_TIME_BITS) - 1)

static uint64_t clip_age(uint64_t now, uint64_t t)
{
    uint64_t a = age(now, t);
    return a > TIME_MAX ? TIME_MAX : a;
}

/* Admission order: suspended cars last, then priority class, then a rotation group, then time.
 * Groups: 0 running within its minimum run time; 1 waiting (longest first); 2 running past its
 * minimum run (most recently started first, so the longest running yields); 3 paused within its
 * minimum pause. In oneshot mode there is no past: charger index order within a class. */
static uint64_t order_key(const pw_bal *b, size_t k, uint64_t now)
{
    const bal_ch *c = &b->ch[k];
    uint64_t group = 1, t = 0;
    if (!b->p.oneshot) {
        if (c->running && age(now, c->run_since) < b->p.min_run_ms) {
            group = 0;
            t = TIME_MAX - clip_age(now, c->run_since);
        } else if (c->running) {
            group = 2;
            t = clip_age(now, c->run_since);
        } else {
            bool guarded = c->paused_by_us && age(now, c->paused_at) < b->p.min_pause_ms;
            group = guarded ? 3 : 1;
            t = TIME_MAX - clip_age(now, c->waiting_since);
        }
    }
    return ((uint64_t)b->plan[k].susp << 63) | ((uint64_t)c->cls << BAL_KEY_CLS_SHIFT) |
           (group << BAL_KEY_TIME_BITS) | t;
}

/* Charger k's plan before the allocation, and its admission key into *key when it wants
 * current (*key is left alone otherwise). */
static void prepare_charger(pw_bal *b, size_t k, uint64_t now, bal_key *key)
{
    bal_ch *c = &b->ch[k];
    bal_plan *pl = &b->plan[k];
    pl->val = pl->lo = pl->hi = 0;
    pl->mask = 0;
    pl->st = ST_IDLE;
    pl->want = pl->susp = pl->trimmed = pl->held = pl->overdue = pl->own_wait = pl->eta = false;
    pl->bind = pl->block = -1;
    pl->mode = pl->tmode = 3;
    memset(pl->fixed, 0, sizeof pl->fixed);
    pl->online = c->has_meas && (b->p.oneshot || age(now, c->meas_at) < c->spec.timing.offline_ms);
    if (c->cut_pending)
        cut_expiry(b, c, now);
    if (!pl->online) {
        silent_budget(c, false, pl->fixed);
        return;
    }
    if (!c->have_prev && !b->p.oneshot)
        init_prev(b, k, now);
    /* A charger that missed a status may have lost the appliance too and fall back to its
     * failsafe when its lease ends: budget that, and hold its offer (if it hears us, nothing
     * changes for its car) until it is heard again or goes offline. */
    if (!b->p.oneshot && age(now, c->meas_at) > (uint64_t)c->spec.timing.status_max_ms +
                                                    c->spec.timing.status_delay_ms) {
        pl->overdue = true;
        silent_budget(c, true, pl->fixed);
        return;
    }
    if (c->m.car == PW_CAR_FAULT) {
        memcpy(pl->fixed, c->meas_line, sizeof pl->fixed);
        return;
    }
    if (c->m.car == PW_CAR_NONE) {
        idle_budget(c, pl->fixed);
        return;
    }
    /* Operator override: a paused charger wants nothing (a cut at once, like an unplug); its
     * trim is forgotten, so that a resume starts from its maximum. */
    if (c->op_paused) {
        c->trim_cap = 0;
        return;
    }
    pl->want = true;
    pl->susp = c->m.car == PW_CAR_SUSPENDED && suspended_itself(b, c);
    pl->lo = c->spec.min_a;
    pl->w = c->spec.weight;
    pl->hi = pl->susp ? pl->lo : trimmed_demand(b, k, now);
    phase_options(b, k, now);
    *key = (bal_key){order_key(b, k, now), (uint32_t)k};
}

/* Worst non-EV load per line seen within meter_history_ms. */
static void hist_record(pw_bal *b, bal_node *n, uint64_t now, const double v[PW_LINES])
{
    uint64_t span = b->p.meter_history_ms / BAL_HIST ? b->p.meter_history_ms / BAL_HIST : 1;
    uint64_t id = now / span;
    bal_hist *h = &n->hist[id % BAL_HIST];
    if (!h->used || h->id != id) {
        h->used = true;
        h->id = id;
        memcpy(h->max, v, sizeof h->max);
        return;
    }
    for (size_t l = 0; l < PW_LINES; l++)
        if (v[l] > h->max[l])
            h->max[l] = v[l];
}

static void hist_worst(const pw_bal *b, const bal_node *n, uint64_t now, double out[PW_LINES])
{
    uint64_t span = b->p.meter_history_ms / BAL_HIST ? b->p.meter_history_ms / BAL_HIST : 1;
    uint64_t id = now / span;
    for (size_t i = 0; i < BAL_HIST; i++) {
        const bal_hist *h = &n->hist[i];
        if (!h->used || h->id + BAL_HIST <= id)
            continue;
        for (size_t l = 0; l < PW_LINES; l++)
            if (h->max[l] > out[l])
                out[l] = h->max[l];
    }
}

/* What the metered nodes' readings contained of charger k, where it does not count: in live
 * mode each reading holds the draws its chargers had reported when it was taken (at_sum), so a
 * car ramping up after it does not make building load vanish; a silent charger is taken out
 * again, as it is budgeted on its own (counting it twice errs on the safe side). In oneshot mode
 * the online chargers count as measured. */
static void meter_draws(pw_bal *b, size_t k)
{
    const bal_ch *c = &b->ch[k];
    double sign = b->p.oneshot ? 1 : -1;
    const double *d = c->meas_line;
    BAL_FOR_PATH_METERS(b, k, ni)
    {
        bal_node *n = &b->nodes[ni];
        if (!b->p.oneshot)
            d = c->at_meter + (size_t)n->slot * PW_LINES;
        for (size_t l = 0; l < PW_LINES; l++)
            n->meas_ev[l] += sign * d[l];
    }
}

/* Non-EV budget of one node, its children's already summed into sub. A metered node's own
 * reading covers everything below it; an unmetered node knows its children's budgets and its
 * configured reserve for the load of its own that no meter sees. */
static void node_budget(pw_bal *b, size_t ni, uint64_t now)
{
    bal_node *n = &b->nodes[ni];
    const pw_bal_node_spec *s = &n->spec;
    double *own = n->own;
    memset(n->own, 0, sizeof n->own);
    if (s->metered) {
        if (!n->stale) {
            for (size_t l = 0; l < PW_LINES; l++) {
                double v = n->meter_a[l] - n->meas_ev[l];
                own[l] = v > 0 ? v : 0;
            }
            if (!b->p.oneshot)
                hist_record(b, n, now, own);
        } else {
            /* Never the last value: the worst seen lately, or the fallback if that is larger. */
            memcpy(own, s->meter_fallback_a, sizeof n->own);
            if (!b->p.oneshot)
                hist_worst(b, n, now, own);
        }
    }
    n->stale_src = n->stale ? (int)ni : -1;
    for (size_t l = 0; l < PW_LINES; l++) {
        bool from_sub = n->sub[l] > own[l];
        n->non_ev[l] = !s->metered ? n->sub[l] + s->reserve_a[l] : from_sub ? n->sub[l] : own[l];
        if (n->stale_src < 0 && (from_sub || !s->metered))
            n->stale_src = n->sub_stale;
    }
}

/* Which meters are stale, and the longest interval of the fresh meters on each node's path. */
static void prepare_meters(pw_bal *b, uint64_t now)
{
    for (size_t i = 0; i < b->n_nodes; i++) { /* parents before children: preorder */
        bal_node *n = &b->nodes[b->dfs_node[i]];
        n->stale =
            n->spec.metered && (!n->has_meter || age(now, n->meter_at) >= n->spec.meter_timeout_ms);
        uint32_t up = n->spec.parent >= 0 ? b->nodes[n->spec.parent].path_iv : 0;
        uint32_t own = n->slot >= 0 && !n->stale ? n->meter_iv : 0;
        n->path_iv = own > up ? own : up;
    }
}

/* The per-node sums of a run start empty (or at the readings' contents, at_sum). */
static void clear_nodes(pw_bal *b)
{
    for (size_t i = 0; i < b->n_nodes; i++) { /* parents before children: preorder */
        bal_node *n = &b->nodes[b->dfs_node[i]];
        if (n->slot >= 0 && !b->p.oneshot)
            memcpy(n->meas_ev, n->at_sum, sizeof n->meas_ev);
        else
            memset(n->meas_ev, 0, sizeof n->meas_ev);
        memset(n->fixed, 0, sizeof n->fixed);
        memset(n->sub, 0, sizeof n->sub);
        n->sub_stale = -1;
        memset(n->in_flight, 0, sizeof n->in_flight);
    }
    memset(b->adm_need, 0, b->n_nodes * sizeof *b->adm_need);
}

/* Charger k's part of its node's sums (after prepare_charger): its minimum if it wants current
 * (adm_need, which admission sums up the tree), its silent budget, and what the meters above it
 * read of it where that does not count. */
static void charger_sums(pw_bal *b, size_t k)
{
    const bal_plan *pl = &b->plan[k];
    if (pl->want) /* a car on one phase may return to three, with the hysteresis to spare */
        b->adm_need[pl->node] += pl->lo + (pl->mode == 1 && pl->can3 ? b->p.hysteresis_a : 0);
    /* Live: the readings hold every charger already (at_sum), the silent ones come out;
     * oneshot: the online ones go in. */
    bool adjust = b->p.oneshot ? pl->online : !pl->online;
    if (pl->want && !adjust)
        return; /* most of them: a wanting charger has no silent budget (fixed is 0) */
    bal_node *n = &b->nodes[pl->node];
    for (size_t l = 0; l < PW_LINES; l++)
        n->fixed[l] += pl->fixed[l];
    if (b->ch[k].has_meas && adjust)
        meter_draws(b, k);
}

/* The non-EV budgets and row bases, once every charger's sums are in (charger_sums). */
static void prepare_nodes(pw_bal *b, uint64_t now)
{
    /* Children before parents: reverse preorder. */
    for (size_t i = b->n_nodes; i-- > 0;) {
        size_t ni = b->dfs_node[i];
        bal_node *n = &b->nodes[ni];
        node_budget(b, ni, now);
        if (ni == 0)
            continue;
        bal_node *p = &b->nodes[n->spec.parent];
        for (size_t l = 0; l < PW_LINES; l++) {
            p->fixed[l] += n->fixed[l];
            p->sub[l] += n->non_ev[l];
        }
        if (p->sub_stale < 0)
            p->sub_stale = n->stale_src;
    }
    for (size_t ni = 0; ni < b->n_nodes; ni++) {
        bal_node *n = &b->nodes[ni];
        double tot[PW_LINES];
        for (size_t l = 0; l < PW_LINES; l++)
            tot[l] = n->non_ev[l] + n->fixed[l];
        for (size_t j = n->row0; j < n->row0 + n->nrows; j++) {
            bal_row *r = &b->rows[j];
            if (r->line) {
                r->base = tot[r->line - 1];
                r->cap = n->spec.limit_a[r->line - 1] - n->spec.margin_a;
            } else {
                r->base = tot[r->hi_line - 1] - tot[r->lo_line - 1];
                r->cap = n->spec.max_imbalance_a;
            }
        }
    }
}

#define NO_KEY UINT32_MAX /* build_order's keys: the charger does not want current */

/* Key, then charger index: the order a stable sort of the chargers in index order gives. */
static bool key_less(bal_key x, bal_key y)
{
    return x.key < y.key || (x.key == y.key && x.idx < y.idx);
}

/* Sorts a[0..n) by key_less by insertion, giving up (leaving a unusable) after about n moves:
 * for an input that is sorted but for a few chargers that moved. Returns whether it sorted. */
static bool sort_nearly_sorted(bal_key *a, size_t n)
{
    size_t budget = n + 64;
    for (size_t i = 1; i < n; i++) {
        bal_key v = a[i];
        size_t j = i;
        for (; j > 0 && key_less(v, a[j - 1]); j--) {
            if (budget-- == 0)
                return false;
            a[j] = a[j - 1];
        }
        a[j] = v;
    }
    return true;
}

/* The admission order, from keys[k] (by charger: its admission key, idx NO_KEY when it does not
 * want current; from the prepare pass, so that the walk of the last order reads a small array
 * rather than plans in random order). Keys move together as time passes, so the last run's
 * order, with the chargers that stopped wanting taken out and the new ones (fresh[0..n_fresh),
 * from the prepare pass) added, is sorted already but for the few that changed group: sorting it
 * by insertion costs a pass over it. Only when that does not work are the keys sorted afresh.
 * key_less orders by key and index, so either way gives one and the same order. */
static void build_order(pw_bal *b, const bal_key *keys, const uint32_t *fresh, size_t n_fresh)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_order; i++) {
        size_t k = b->order[i].idx;
        if (keys[k].idx != NO_KEY)
            b->order[n++] = keys[k];
        else
            b->plan[k].in_order = false;
    }
    for (size_t i = 0; i < n_fresh; i++) {
        size_t k = fresh[i];
        b->order[n++] = keys[k];
        b->plan[k].in_order = true;
    }
    b->n_order = n;
    if (sort_nearly_sorted(b->order, n))
        return;
    n = 0;
    for (size_t k = 0; k < b->n_ch; k++)
        if (keys[k].idx != NO_KEY)
            b->order[n++] = keys[k];
    bal__sort(b->order, b->tmp, n);
}

/* Per line mask, all ones on the lines it loads and zeros on the others (set_lines). */
static const uint64_t lane[8][PW_LINES] = {
    {0, 0, 0},     {~0ull, 0, 0},     {0, ~0ull, 0},     {~0ull, ~0ull, 0},
    {0, 0, ~0ull}, {~0ull, 0, ~0ull}, {0, ~0ull, ~0ull}, {~0ull, ~0ull, ~0ull},
};

/* v if on, else 0, by masking its bits (with lane[][] a mask per line): without a branch, which
 * a compiler may make of a select. Where it is used, whether on holds is a coin toss from one
 * charger to the next, and a mispredicted branch costs more than this. */
static double masked(double v, uint64_t on)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= on;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* v on the lines in mask, 0 on the others (masked). */
static void set_lines(double line[PW_LINES], uint8_t mask, double v)
{
    for (size_t l = 0; l < PW_LINES; l++)
        line[l] = masked(v, lane[mask & 7][l]);
}

/* Per-line amounts added at each charger's node, summed over every node's subtree: the sums over
 * all chargers below each node in one walk of the tree instead of one per charger. Empties acc
 * (n_nodes x PW_LINES, a value per node) and returns it. */
static double *subtree_begin(const pw_bal *b, double *acc)
{
    memset(acc, 0, b->n_nodes * PW_LINES * sizeof *acc);
    return acc;
}

/* Sums acc (n_nodes x PW_LINES, a value per node) over every node's subtree. */
static void subtree_sum(const pw_bal *b, double *acc)
{
    for (size_t i = b->n_nodes; i-- > 1;) { /* children before parents; the root has none */
        size_t ni = b->dfs_node[i];
        double *up = acc + (size_t)b->nodes[ni].spec.parent * PW_LINES;
        for (size_t l = 0; l < PW_LINES; l++)
            up[l] += acc[ni * PW_LINES + l];
    }
}

/* A charger's transitional load on line l: its plan, or more while a cut is not yet followed
 * (what it was seen drawing, or a raise it has not been seen acting on). */
static double trans_load(const bal_plan *pl, size_t l)
{
    double v = pl->line[l] > pl->pend[l] ? pl->line[l] : pl->pend[l];
    return v > pl->rpend[l] ? v : pl->rpend[l];
}

/* A charger's transitional load per line (trans_load). */
static void trans_loads(const bal_plan *pl, double load[PW_LINES])
{
    for (size_t l = 0; l < PW_LINES; l++)
        load[l] = trans_load(pl, l);
}

/* Room for a load on the lines of mask along charger pl's path, given the transitional loads
 * with its own (own) taken out. */
static double trans_room(const pw_bal *b, const bal_plan *pl, uint8_t mask,
                         const double own[PW_LINES])
{
    double room = INFINITY;
    for (int n = (int)pl->node; n >= 0; n = b->nodes[n].spec.parent) {
        const bal_node *node = &b->nodes[n];
        for (size_t l = 0; l < PW_LINES; l++) {
            if (!(mask & (1u << l)))
                continue;
            double cap = node->spec.limit_a[l] - node->spec.margin_a;
            double r = cap - (node->trans[l] - own[l]);
            if (pl->pend[l] > r)
                return 0; /* its own pending draw already fills the line */
            if (r < room)
                room = r;
        }
    }
    return room;
}

/* Replaces a charger's transitional load along its path: was out, now in. One walk, with the
 * sums of taking it out and then adding it. */
static void trans_swap(pw_bal *b, const bal_plan *pl, const double was[PW_LINES],
                       const double now[PW_LINES])
{
    for (int n = (int)pl->node; n >= 0; n = b->nodes[n].spec.parent)
        for (size_t l = 0; l < PW_LINES; l++)
            b->nodes[n].trans[l] = (b->nodes[n].trans[l] - was[l]) + now[l];
}

/* The lines of the previous offer with what is known about the car now: a car seen on a new
 * phase was already drawing there, so learning it is no raise. */
static uint8_t prev_mask_now(const bal_ch *c, const bal_plan *pl)
{
    return c->prev_mode == 1 ? pl->mask1 : pl->mask3;
}

/* Held: what charger k offers until its raise is allowed. The held load must exceed neither
 * the previous offer (that would be a raise) nor the target (that could overload) on any line:
 * the smaller current, in whichever of the two phase modes satisfies both, else nothing. Line
 * by line as in is_raise, by masks: a line the previous offer did not load allows 0. */
static void hold_prev(pw_bal *b, size_t k)
{
    const bal_ch *c = &b->ch[k];
    bal_plan *pl = &b->plan[k];
    double v = c->prev_limit < pl->target ? c->prev_limit : pl->target;
    uint8_t modes[2] = {c->prev_mode, pl->tmode};
    uint8_t was = prev_mask_now(c, pl) & 7;
    pl->val = 0;
    pl->mode = pl->tmode;
    memset(pl->line, 0, sizeof pl->line);
    if (v < pl->lo)
        return;
    for (size_t i = 0; i < 2; i++) {
        uint8_t mask = (modes[i] == 1 ? pl->mask1 : pl->mask3) & 7;
        bool ok = (!(mask & ~was) || v <= 1e-9) && (!(mask & was) || v <= c->prev_limit + 1e-9) &&
                  (v == 0 || !(mask & ~pl->mask));
        if (ok) {
            pl->val = v;
            pl->mode = modes[i];
            set_lines(pl->line, mask, v);
            return;
        }
    }
}

/* Whether charger k's plan (its value on the lines of its mask) is a raise on a line over the
 * previous offer (prev_limit on prev_mask_now), as line loads compared line by line, without
 * building them: a line it newly loads rises from 0, which is no more than prev_limit. */
static bool is_raise(const bal_ch *c, const bal_plan *pl)
{
    uint8_t on = pl->mask & 7, was = prev_mask_now(c, pl) & 7;
    double from = (on & ~was) ? 0 : c->prev_limit;
    return (on != 0) & (pl->val > from + 1e-9); /* not &&: a branch on a coin toss */
}

/* What charger k may still draw per grid line while a cut is pending: the most its status and
 * the readings above it show (at_max); dynamics_one adds a raise its car has not been seen
 * acting on (rpend). A drop its status shows is seen only once a meter read after it agrees. And
 * the other way round: the car may have followed a pending cut before a reading, down to its lowest
 * offer, with no status saying so yet (a late or lost status); that drop hides in the reading as
 * less non-EV load, which in_flight gives back to the raise rule. */
static void pending_draw(pw_bal *b, size_t k, double d[PW_LINES])
{
    const bal_ch *c = &b->ch[k];
    double *flight = b->nodes[c->spec.node].in_flight;
    for (size_t l = 0; l < PW_LINES; l++) {
        double at = c->at_max[l];
        d[l] = at > c->meas_line[l] ? at : c->meas_line[l];
        double low = c->cut_pending ? c->low_line[l] : at;
        if (at > low) /* mostly not: the car is seen at or below its lowest offer */
            flight[l] += at - low;
    }
}

/* The non-EV budget raises rely on (non_ev_t): a fresh metered node's own with the in_flight of
 * the chargers below added, or its children's if larger, as for non_ev. */
static void raise_budgets(pw_bal *b)
{
    double *acc = subtree_begin(b, b->acc);
    for (size_t i = b->n_nodes; i-- > 0;) { /* children before parents: sums are complete */
        size_t ni = b->dfs_node[i];
        bal_node *n = &b->nodes[ni];
        bal_node *up = ni > 0 ? &b->nodes[n->spec.parent] : NULL;
        bool fresh = n->slot >= 0 && !n->stale;
        for (size_t l = 0; l < PW_LINES; l++) {
            double t = n->own[l] + (fresh ? n->in_flight[l] : 0);
            double sub = acc[ni * PW_LINES + l];
            if (n->slot < 0) /* unmetered: its children's and its own reserve, as for non_ev */
                n->non_ev_t[l] = sub + n->spec.reserve_a[l];
            else
                n->non_ev_t[l] = sub > t ? sub : t;
            if (up) {
                acc[(size_t)n->spec.parent * PW_LINES + l] += n->non_ev_t[l];
                up->in_flight[l] += n->in_flight[l];
            }
        }
    }
}

/* Lets held raises go as far as the measured reality allows, in admission order: the chargers
 * whose raise waits on others' cuts (held[k] 1, by charger, from finish), picked from
 * b->order into cand without a branch and without reading their plans, which lie in random
 * order there. trans_acc holds every charger's transitional load at its node. */
static void release_raises(pw_bal *b, const uint32_t *held)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_order; i++) {
        b->cand[n] = b->order[i];
        n += held[b->order[i].idx];
    }
    raise_budgets(b);
    double *acc = b->trans_acc;
    subtree_sum(b, acc);
    for (size_t ni = 0; ni < b->n_nodes; ni++)
        for (size_t l = 0; l < PW_LINES; l++)
            b->nodes[ni].trans[l] =
                b->nodes[ni].non_ev_t[l] + b->nodes[ni].fixed[l] + acc[ni * PW_LINES + l];
    for (size_t i = 0; i < n; i++) {
        size_t k = b->cand[i].idx;
        bal_plan *pl = &b->plan[k];
        double was[PW_LINES], now[PW_LINES];
        trans_loads(pl, was);
        double room = trans_room(b, pl, pl->mask, was);
        double v = pl->mode == pl->tmode ? (room < pl->target ? room : pl->target) : 0;
        if (pl->mode != pl->tmode && room >= pl->target)
            v = pl->target; /* a phase change goes all at once */
        if (v >= pl->target - 1e-9) {
            pl->val = pl->target;
            pl->mode = pl->tmode;
            pl->held = false;
        } else if (v >= pl->lo && v >= pl->val + b->p.hysteresis_a && pl->mode == pl->tmode) {
            pl->val = v;
        }
        set_lines(pl->line, pl->val > 0 ? (pl->mode == 1 ? pl->mask1 : pl->mask3) : 0, pl->val);
        trans_loads(pl, now);
        trans_swap(b, pl, was, now);
    }
}

/* Whether charger k's pending cut is not seen yet: no status since, or its status or a meter
 * above it (d, from pending_draw) still shows it above its offer. Taking the cut back before
 * then would make the car chase commands, down and up every second while a reading and the
 * statuses disagree for a moment; and a drop the car made before a reading but reported only
 * later (a late or lost status) would read as building load gone, room the raise would take. */
static bool cut_unseen(const pw_bal *b, size_t k, const double d[PW_LINES])
{
    const bal_ch *c = &b->ch[k];
    if (!c->cut_pending)
        return false;
    if (c->meas_at <= c->cut_at)
        return true;
    for (size_t l = 0; l < PW_LINES; l++)
        if (d[l] > c->prev_line[l] + b->p.active_phase_a)
            return true;
    return false;
}

/* The plan the dynamic rules start from: the allocation's value (the target) on its lines, and
 * nothing pending. */
static void plan_as_allocated(bal_plan *pl)
{
    pl->target = pl->val;
    pl->mode = pl->tmode;
    set_lines(pl->line, pl->val > 0 ? pl->mask : 0, pl->val);
    memset(pl->pend, 0, sizeof pl->pend);
    memset(pl->rpend, 0, sizeof pl->rpend);
}

/* Cuts apply at once; a raise waits until the cuts it depends on are seen (cut_pending);
 * raises smaller than the hysteresis are not sent. Charger k's part; returns whether its raise
 * is held. */
static bool dynamics_one(pw_bal *b, size_t k)
{
    const pw_bal_params *p = &b->p;
    bal_ch *c = &b->ch[k];
    bal_plan *pl = &b->plan[k];
    plan_as_allocated(pl);
    if (p->oneshot || !pl->online || pl->overdue)
        return false;
    /* Until a cut is seen, the charger may still draw what it drew before: a cut made now
     * is as pending as an earlier one. */
    bool cutting = (pl->line[0] < c->prev_line[0] - 1e-9) | (pl->line[1] < c->prev_line[1] - 1e-9) |
                   (pl->line[2] < c->prev_line[2] - 1e-9);
    double d[PW_LINES] = {0, 0, 0};
    if (c->cut_pending || cutting) {
        pending_draw(b, k, d);
        for (size_t l = 0; l < PW_LINES; l++) { /* selects rather than branches */
            pl->pend[l] = d[l] > pl->line[l] + p->active_phase_a ? d[l] : 0;
            /* The car may still rise to a raise it has not been seen acting on before it
             * follows the cut (issue 15: a raise counts at the offered value until seen). */
            bool unseen = c->raise_unseen & (c->raise_line[l] > pl->line[l] + 1e-9);
            pl->rpend[l] = masked(c->raise_line[l], -(uint64_t)unseen);
        }
    }
    if (!pl->want)
        return false;
    if (!is_raise(c, pl))
        return false;
    /* Too small a raise to be worth sending, unless it takes the car to its own limit: the
     * allocation found nothing else that wants the room, and the car would stay below its
     * maximum for good. */
    if (c->prev_limit >= pl->lo && pl->tmode == c->prev_mode && pl->target > c->prev_limit &&
        pl->target - c->prev_limit < p->hysteresis_a && pl->target < pl->hi - 1e-9) {
        pl->val = c->prev_limit;
        set_lines(pl->line, pl->mask, pl->val);
        return false;
    }
    hold_prev(b, k);
    pl->held = true;
    pl->own_wait = cut_unseen(b, k, d);
    return true;
}

/* The node results, with acc holding the planned EV load of every node's subtree. */
static void node_results(pw_bal *b, const double *acc)
{
    for (size_t ni = 0; ni < b->n_nodes; ni++) {
        pw_bal_node_result *r = &b->nres[ni];
        const bal_node *n = &b->nodes[ni];
        const pw_bal_node_spec *s = &n->spec;
        memset(r, 0, sizeof *r);
        r->meter_stale = n->stale;
        for (size_t l = 0; l < PW_LINES; l++) {
            r->non_ev_a[l] = n->non_ev[l];
            r->ev_a[l] = n->fixed[l] + acc[ni * PW_LINES + l];
            r->planned_a[l] = r->non_ev_a[l] + r->ev_a[l];
            r->limit_a[l] = s->limit_a[l] - s->margin_a;
            r->headroom_a[l] = r->limit_a[l] - r->planned_a[l];
        }
    }
}

/* Charger k's result; returns whether it is paused for rotation. */
static bool charger_result(pw_bal *b, size_t k, uint64_t now)
{
    const bal_plan *pl = &b->plan[k];
    pw_bal_result *r = &b->res[k];
    if (!pl->eta) /* the others were set by bal__rotation_eta */
        r->next_turn_ms = 0;
    if (pl->want) { /* the plan (an overdue charger never wants) */
        r->limit_a = pl->val;
        r->phases = pl->mode == 1 ? 1 : 3;
        r->demand_a = pl->hi;
        memcpy(r->line_a, pl->line, sizeof r->line_a);
    } else {
        /* An overdue charger keeps its offer (budgeted in fixed, so not as a plan). */
        const bal_ch *c = &b->ch[k];
        r->limit_a = pl->overdue ? c->prev_limit : pl->val;
        r->phases = (pl->overdue ? c->prev_mode : pl->mode) == 1 ? 1 : 3;
        r->demand_a = 0;
        memcpy(r->line_a, pl->fixed, sizeof r->line_a);
    }
    bal__reason(b, k, now);
    return r->reason == PW_REASON_PAUSED_ROTATION;
}

/* A cut starts or extends the pending period; while it lasts, the lowest offer is kept. */
static void track_cuts(const pw_bal *b, bal_ch *c, const double line[PW_LINES], uint64_t now)
{
    bool cut = (line[0] < c->prev_line[0] - 1e-9) | (line[1] < c->prev_line[1] - 1e-9) |
               (line[2] < c->prev_line[2] - 1e-9);
    if (!cut && !c->cut_pending)
        return;
    for (size_t l = 0; l < PW_LINES; l++) {
        double from = c->cut_pending ? c->low_line[l] : c->prev_line[l];
        c->low_line[l] = line[l] < from ? line[l] : from;
    }
    if (cut) {
        c->cut_pending = true;
        c->cut_at = now;
        cut_expiry(b, c, now);
    }
}

/* A raise makes the new offer count until the car is seen acting on it (bal_ch.raise_unseen);
 * raises while one is unseen keep the highest offer per line. */
static void track_raises(bal_ch *c, const double line[PW_LINES], uint64_t now)
{
    bool raise = (line[0] > c->prev_line[0] + 1e-9) | (line[1] > c->prev_line[1] + 1e-9) |
                 (line[2] > c->prev_line[2] + 1e-9);
    if (!raise)
        return;
    for (size_t l = 0; l < PW_LINES; l++) {
        double was = c->raise_unseen ? c->raise_line[l] : 0;
        c->raise_line[l] = line[l] > was ? line[l] : was;
    }
    c->raise_unseen = true;
    c->raise_at = now;
}

/* Remembers the decision for charger k: cuts (for the raise rule), offer changes (for
 * trimming), run and pause times (for rotation), phase switches (for their cap). */
static void update_state(pw_bal *b, size_t k, uint64_t now)
{
    bal_ch *c = &b->ch[k];
    const bal_plan *pl = &b->plan[k];
    if (!pl->online || pl->overdue)
        return;
    /* Most offers stay as they were: no cut and no raise then, and a pending cut's lowest offer
     * is no higher than the offer it kept. */
    if (memcmp(pl->line, c->prev_line, sizeof c->prev_line) != 0) {
        track_cuts(b, c, pl->line, now);
        track_raises(c, pl->line, now);
    }
    c->offer_since = fabs(pl->val - c->prev_limit) > 1e-9 ? now : c->offer_since; /* a select */
    if (pl->want && pl->val > 0 && pl->mode != c->mode) {
        c->mode = pl->mode;
        c->mode_since = now;
        c->switches++;
    }
    bool run = pl->val > 0;
    if (run && !c->running) {
        c->run_since = now;
        c->paused_by_us = false;
    } else if (!run && c->running) {
        c->paused_at = now;
        c->waiting_since = now;
        c->paused_by_us = pl->want;
    }
    if (!pl->want) {
        c->waiting_since = now;
        c->paused_by_us = false;
    }
    c->running = run;
    c->prev_limit = pl->val;
    c->prev_mode = pl->mode;
    memcpy(c->prev_line, pl->line, sizeof c->prev_line);
}

static void earliest(uint64_t *d, uint64_t now, uint64_t t)
{
    if (t > now && t < *d)
        *d = t;
}

/* When charger c's status becomes overdue, or it goes offline, into *d. */
static void status_deadline(const bal_ch *c, uint64_t now, uint64_t *d)
{
    if (c->has_meas) {
        const pw_bal_timing *t = &c->spec.timing;
        uint64_t overdue = c->meas_at + t->status_max_ms + t->status_delay_ms + 1;
        uint64_t offline = c->meas_at + t->offline_ms;
        earliest(d, now, overdue > now && overdue < offline ? overdue : offline);
    }
}

/* When charger k's state can decide something new without a new measurement, into *d; the
 * end of its minimum run into *d_rot, which counts only when a car is paused for rotation. */
static void charger_deadline(const pw_bal *b, size_t k, uint64_t now, uint64_t *d, uint64_t *d_rot)
{
    const pw_bal_params *p = &b->p;
    const bal_ch *c = &b->ch[k];
    const bal_plan *pl = &b->plan[k];
    status_deadline(c, now, d);
    earliest(d, now, c->cut_pending ? c->cut_until : UINT64_MAX);
    if (!pl->want)
        return;
    if (c->trim_cap > 0)
        earliest(d, now, c->trim_at + p->probe_ms);
    if (c->running)
        earliest(d_rot, now, c->run_since + p->min_run_ms);
    if (c->paused_by_us)
        earliest(d, now, c->paused_at + p->min_pause_ms);
    if (c->mode == 1)
        earliest(d, now, c->mode_since + p->phase_hold_ms);
}

/* What settling the chargers gathers: the planned EV load at each node (acc), whether a car is
 * paused for rotation, and the next deadlines. */
typedef struct settle_sums {
    double *acc;
    bool live, rotating;
    uint64_t d, d_rot;
} settle_sums;

/* Charger k's plan is final: its result and reason, its planned load at its node, and in live
 * mode the state kept for the next run and when it can decide something new. */
static void settle(pw_bal *b, size_t k, uint64_t now, settle_sums *s)
{
    s->rotating |= charger_result(b, k, now);
    const bal_plan *pl = &b->plan[k];
    double *a = s->acc + (size_t)pl->node * PW_LINES;
    for (size_t l = 0; l < PW_LINES; l++)
        a[l] += pl->line[l];
    if (s->live) {
        update_state(b, k, now);
        charger_deadline(b, k, now, &s->d, &s->d_rot);
    }
}

/* Whether charger k stays idle: it wants nothing, is heard on time, was offered nothing (not
 * running: its last offer was 0, on every line) and has no cut pending. The dynamic rules then
 * leave it as it is, and settling it changes little (settle_idle). */
static bool stays_idle(const pw_bal *b, size_t k)
{
    const bal_ch *c = &b->ch[k];
    const bal_plan *pl = &b->plan[k];
    return !pl->want && pl->online && !pl->overdue && !c->cut_pending && !c->running;
}

/* dynamics_one and settle for a charger that stays idle (about one in five at 1,000 chargers in
 * bal_bench; most at night), with only what they change for it: a plan and result of nothing, its
 * reason, the time it has waited and its status's deadline. The reference (tests only) takes the
 * full path, so that a difference shows. */
static void settle_idle(pw_bal *b, size_t k, uint64_t now, settle_sums *s)
{
    bal_ch *c = &b->ch[k];
    plan_as_allocated(&b->plan[k]); /* which the dynamic rules leave as it is */
    pw_bal_result *r = &b->res[k];  /* as charger_result writes it for one wanting nothing */
    r->next_turn_ms = 0;
    r->limit_a = 0;
    r->phases = 3;
    r->demand_a = 0;
    memcpy(r->line_a, b->plan[k].fixed, sizeof r->line_a);
    bal__reason_idle(b, k, now);
    if (s->live) { /* what update_state changes for it: its offer and lines stay 0 */
        c->waiting_since = now;
        c->paused_by_us = false;
        c->prev_mode = b->plan[k].mode;
        status_deadline(c, now, &s->d);
    }
}

/* After the allocation: the dynamic rules and the end of the run, in one pass over the chargers
 * that applies the rules and settles every charger whose plan they leave final, so that a
 * charger's state is read once (a second pass over it costs more than the work; so does one for
 * the chargers that stay idle, which settle_idle settles on the pass). Two kinds wait
 * (listed in imb, free after the allocation): the raises held until cuts are seen, which
 * release_raises then lets go as far as the transitional loads gathered on the pass allow (they
 * are marked by charger in hits, free too); and the cars waiting for a turn, whose resume time
 * (bal__rotation_eta) depends on every running car's final plan. */
static void finish(pw_bal *b, uint64_t now)
{
    settle_sums s = {subtree_begin(b, b->ev_acc), !b->p.oneshot, false, UINT64_MAX, UINT64_MAX};
    double *trans = subtree_begin(b, b->trans_acc);
    size_t n_held = 0, n_turn = 0, n_later = 0;
    for (size_t k = 0; k < b->n_ch; k++) {
        if (!b->reference && stays_idle(b, k)) {
            b->hits[k] = 0;
            settle_idle(b, k, now, &s);
            continue;
        }
        bool held = dynamics_one(b, k);
        const bal_plan *pl = &b->plan[k];
        double *t = trans + (size_t)pl->node * PW_LINES;
        for (size_t l = 0; l < PW_LINES; l++)
            t[l] += trans_load(pl, l);
        b->hits[k] = held && !pl->own_wait;
        bool turn = s.live && pl->want && bal_waits_turn(pl);
        n_held += b->hits[k];
        n_turn += turn;
        if (b->hits[k] || turn)
            b->imb[n_later++].idx = (uint32_t)k;
        else
            settle(b, k, now, &s);
    }
    if (n_held)
        release_raises(b, b->hits);
    if (n_turn)
        bal__rotation_eta(b, now);
    for (size_t i = 0; i < n_later; i++)
        settle(b, b->imb[i].idx, now, &s);
    subtree_sum(b, s.acc);
    node_results(b, s.acc);
    b->rotating = s.rotating;
    if (s.live && s.rotating)
        earliest(&s.d, now, s.d_rot);
    for (size_t ni = 0; ni < b->n_nodes && s.live; ni++) {
        const bal_node *n = &b->nodes[ni];
        if (n->spec.metered && n->has_meter)
            earliest(&s.d, now, n->meter_at + n->spec.meter_timeout_ms);
    }
    b->deadline = s.d;
}

int pw_bal_run(pw_bal *b, uint64_t now_ms)
{
    prepare_meters(b, now_ms);
    clear_nodes(b);
    /* One pass: each charger's state is read once. Chargers that want current and are not in
     * the last order are listed (in hits, free until the allocation) for build_order, and the
     * admission keys are set out by charger (in events, free until then too). */
    size_t n_fresh = 0;
    for (size_t k = 0; k < b->n_ch; k++) {
        b->events[k].idx = NO_KEY;
        prepare_charger(b, k, now_ms, &b->events[k]);
        charger_sums(b, k);
        b->hits[n_fresh] = (uint32_t)k;
        n_fresh += b->plan[k].want && !b->plan[k].in_order;
    }
    prepare_nodes(b, now_ms);
    build_order(b, b->events, b->hits, n_fresh);
    bal__allocate(b);
    finish(b, now_ms);
    return 0;
}
