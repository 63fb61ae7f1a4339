/* The two baseline allocators of the day run (pw_simbase.h): a static split and a worst-phase
 * water-filling balancer. Deliberately simple, like the products they stand for. */
#include "pw_simbase.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define EPS 1e-9

struct pw_base_wp {
    pw_bal_node_spec *nodes;
    size_t n_nodes;
    pw_bal_charger_spec *chargers;
    size_t n_chargers;
    double (*meter)[PW_LINES]; /* per node, valid where has_meter */
    bool *has_meter;
    pw_bal_measure *meas;
    uint64_t *paused_until; /* per charger: a pause lasts at least min_pause_ms */
    uint32_t min_pause_ms;
    /* scratch, sized once */
    double (*ev)[PW_LINES];
    double *budget, *used, *x;
    size_t *unfrozen_below;
    bool *active, *frozen;
};

static double smallest_line(const double v[PW_LINES])
{
    return fmin(v[0], fmin(v[1], v[2]));
}

void pw_base_static_limits(const pw_bal_facility *f, double *limits_a)
{
    size_t *below = pw_xcalloc(f->n_nodes, sizeof(*below));
    for (size_t c = 0; c < f->n_chargers; c++) {
        for (int n = f->chargers[c].node; n >= 0; n = f->nodes[n].parent)
            below[n]++;
    }
    for (size_t c = 0; c < f->n_chargers; c++) {
        const pw_bal_charger_spec *ch = &f->chargers[c];
        double share = ch->max_a;
        for (int n = ch->node; n >= 0; n = f->nodes[n].parent) {
            double avail = smallest_line(f->nodes[n].limit_a) - f->nodes[n].margin_a;
            share = fmin(share, avail / (double)below[n]);
        }
        limits_a[c] = share >= ch->min_a ? share : 0.0;
    }
    free(below);
}

pw_base_wp *pw_base_wp_new(const pw_bal_facility *f)
{
    pw_base_wp *b = pw_xcalloc(1, sizeof(*b));
    b->n_nodes = f->n_nodes;
    b->n_chargers = f->n_chargers;
    b->nodes = pw_xmalloc(f->n_nodes * sizeof(*b->nodes));
    memcpy(b->nodes, f->nodes, f->n_nodes * sizeof(*b->nodes));
    b->chargers = pw_xmalloc(f->n_chargers * sizeof(*b->chargers));
    memcpy(b->chargers, f->chargers, f->n_chargers * sizeof(*b->chargers));
    b->meter = pw_xcalloc(f->n_nodes, sizeof(*b->meter));
    b->has_meter = pw_xcalloc(f->n_nodes, sizeof(*b->has_meter));
    b->meas = pw_xcalloc(f->n_chargers, sizeof(*b->meas));
    b->paused_until = pw_xcalloc(f->n_chargers, sizeof(*b->paused_until));
    b->min_pause_ms = f->params.min_pause_ms;
    b->ev = pw_xcalloc(f->n_nodes, sizeof(*b->ev));
    b->budget = pw_xcalloc(f->n_nodes, sizeof(*b->budget));
    b->used = pw_xcalloc(f->n_nodes, sizeof(*b->used));
    b->unfrozen_below = pw_xcalloc(f->n_nodes, sizeof(*b->unfrozen_below));
    b->x = pw_xcalloc(f->n_chargers, sizeof(*b->x));
    b->active = pw_xcalloc(f->n_chargers, sizeof(*b->active));
    b->frozen = pw_xcalloc(f->n_chargers, sizeof(*b->frozen));
    return b;
}

void pw_base_wp_free(pw_base_wp *b)
{
    if (b == NULL)
        return;
    free(b->nodes);
    free(b->chargers);
    free(b->meter);
    free(b->has_meter);
    free(b->meas);
    free(b->paused_until);
    free(b->ev);
    free(b->budget);
    free(b->used);
    free(b->unfrozen_below);
    free(b->x);
    free(b->active);
    free(b->frozen);
    free(b);
}

void pw_base_wp_set_meter(pw_base_wp *b, size_t node, const double line_a[PW_LINES])
{
    memcpy(b->meter[node], line_a, sizeof(b->meter[node]));
    b->has_meter[node] = true;
}

void pw_base_wp_set_charger(pw_base_wp *b, size_t charger, const pw_bal_measure *m)
{
    b->meas[charger] = *m;
}

/* Per node: the per-phase budget left for chargers counted on every line. */
static void compute_budgets(pw_base_wp *b)
{
    double(*ev)[PW_LINES] = b->ev;
    memset(ev, 0, b->n_nodes * sizeof(*ev));
    for (size_t c = 0; c < b->n_chargers; c++) {
        for (int n = b->chargers[c].node; n >= 0; n = b->nodes[n].parent) {
            for (int t = 0; t < PW_LINES; t++) {
                uint8_t line = b->chargers[c].wiring[t];
                if (line >= 1 && line <= PW_LINES)
                    ev[n][line - 1] += b->meas[c].current_a[t];
            }
        }
    }
    for (size_t n = 0; n < b->n_nodes; n++) {
        double budget = DBL_MAX;
        for (int l = 0; l < PW_LINES; l++) {
            double non_ev = b->has_meter[n] ? fmax(0.0, b->meter[n][l] - ev[n][l]) : 0.0;
            budget = fmin(budget, b->nodes[n].limit_a[l] - b->nodes[n].margin_a - non_ev);
        }
        b->budget[n] = fmax(0.0, budget);
    }
}

/* Sums the shares and counts the unfrozen chargers below every node. */
static void tally(pw_base_wp *b)
{
    memset(b->used, 0, b->n_nodes * sizeof(*b->used));
    memset(b->unfrozen_below, 0, b->n_nodes * sizeof(*b->unfrozen_below));
    for (size_t c = 0; c < b->n_chargers; c++) {
        for (int n = b->chargers[c].node; n >= 0; n = b->nodes[n].parent) {
            b->used[n] += b->x[c];
            b->unfrozen_below[n] += !b->frozen[c];
        }
    }
}

/* True if a node above charger c has no budget left. */
static bool blocked(const pw_base_wp *b, size_t c)
{
    for (int n = b->chargers[c].node; n >= 0; n = b->nodes[n].parent) {
        if (b->budget[n] - b->used[n] <= EPS)
            return true;
    }
    return false;
}

/* Water-filling: raise every unfrozen charger's share equally until a node's budget or the
 * charger's max stops it. Each round freezes at least one charger. */
static void water_fill(pw_base_wp *b)
{
    for (size_t c = 0; c < b->n_chargers; c++) {
        b->x[c] = 0.0;
        b->frozen[c] = !b->active[c];
    }
    for (;;) {
        tally(b);
        double step = DBL_MAX;
        for (size_t n = 0; n < b->n_nodes; n++) {
            if (b->unfrozen_below[n])
                step = fmin(step, (b->budget[n] - b->used[n]) / (double)b->unfrozen_below[n]);
        }
        if (step == DBL_MAX)
            return; /* nobody left to raise */
        for (size_t c = 0; c < b->n_chargers; c++) {
            if (!b->frozen[c])
                step = fmin(step, b->chargers[c].max_a - b->x[c]);
        }
        step = fmax(step, 0.0);
        for (size_t c = 0; c < b->n_chargers; c++)
            b->x[c] += b->frozen[c] ? 0.0 : step;
        tally(b);
        for (size_t c = 0; c < b->n_chargers; c++) {
            if (!b->frozen[c] && (b->x[c] >= b->chargers[c].max_a - EPS || blocked(b, c)))
                b->frozen[c] = true;
        }
    }
}

void pw_base_wp_run(pw_base_wp *b, uint64_t now_ms, double *limits_a)
{
    compute_budgets(b);
    for (size_t c = 0; c < b->n_chargers; c++) {
        enum pw_car_state s = b->meas[c].car;
        if (s == PW_CAR_NONE)
            b->paused_until[c] = 0; /* a new car starts without the old one's pause */
        b->active[c] =
            (s == PW_CAR_CONNECTED || s == PW_CAR_CHARGING) && b->paused_until[c] <= now_ms;
    }
    for (;;) {
        water_fill(b);
        size_t pause = SIZE_MAX;
        for (size_t c = 0; c < b->n_chargers; c++) {
            if (b->active[c] && b->x[c] < b->chargers[c].min_a - EPS)
                pause = c; /* the last one below its minimum */
        }
        if (pause == SIZE_MAX)
            break;
        b->active[pause] = false;
        b->paused_until[pause] = now_ms + b->min_pause_ms;
    }
    for (size_t c = 0; c < b->n_chargers; c++)
        limits_a[c] = b->active[c] ? b->x[c] : 0.0;
}
