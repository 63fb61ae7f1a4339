/* The benchmark garage (bal_garage.h). */
#include "bal_garage.h"

#include <stdio.h>
#include <string.h>

uint64_t bal_garage_rnd(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

double bal_garage_rndf(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * (double)(bal_garage_rnd(state) >> 11) / 9007199254740992.0;
}

void bal_garage_build(size_t n_chargers, size_t n_nodes, pw_bal_node_spec *nodes,
                      pw_bal_charger_spec *ch, pw_bal_facility *f)
{
    static const uint8_t rot[3][3] = {{1, 2, 3}, {2, 3, 1}, {3, 1, 2}};
    memset(f, 0, sizeof *f);
    f->grid = PW_GRID_TN;
    f->nodes = nodes;
    f->chargers = ch;
    f->n_nodes = n_nodes;
    f->n_chargers = n_chargers;
    pw_bal_default_params(&f->params);
    size_t first_level = n_nodes > 8 ? (n_nodes - 1) / 4 : n_nodes - 1;
    double per_node = (double)n_chargers / (double)(n_nodes > 1 ? n_nodes - 1 : 1);
    for (size_t n = 0; n < n_nodes; n++) {
        pw_bal_node_spec *d = &nodes[n];
        memset(d, 0, sizeof *d);
        snprintf(d->id, sizeof d->id, "n%zu", n);
        d->parent = n == 0 ? -1 : n <= first_level ? 0 : (int)(1 + (n - 1) % first_level);
        double share = n == 0 ? (double)n_chargers * 9 : per_node * 14;
        if (n > 0 && n <= first_level)
            share *= 3;
        for (size_t l = 0; l < 3; l++)
            d->limit_a[l] = share < 16 ? 16 : share;
        d->margin_a = 1;
        d->metered = n % 3 == 0;
        d->meter_timeout_ms = 15000;
        if (n % 7 == 3)
            d->max_imbalance_a = 20;
    }
    for (size_t k = 0; k < n_chargers; k++) {
        pw_bal_charger_spec *c = &ch[k];
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "c%zu", k);
        c->node = n_nodes > 1 ? (int)(1 + k % (n_nodes - 1)) : 0;
        memcpy(c->wiring, rot[k % 3], 3);
        c->min_a = 6;
        c->max_a = k % 4 == 0 ? 32 : 16;
        c->weight = 1;
        c->priority = k % 10 == 0 ? 1 : 0;
        c->can_switch_phases = k % 5 == 0;
    }
}

void bal_garage_status(size_t k, uint64_t *state, pw_bal_measure *m)
{
    *m = (pw_bal_measure){0};
    uint64_t r = (k * 2654435761u) % 10;
    m->car = r < 2 ? PW_CAR_NONE : r < 3 ? PW_CAR_CONNECTED : PW_CAR_CHARGING;
    if (m->car == PW_CAR_CHARGING) {
        double a = bal_garage_rndf(state, 5, 16);
        int phases = r % 3 == 0 ? 1 : 3;
        for (int t = 0; t < phases; t++)
            m->current_a[t] = a;
    }
}

void bal_garage_reading(const pw_bal_node_spec *n, uint64_t *state, double line[PW_LINES])
{
    for (size_t l = 0; l < PW_LINES; l++)
        line[l] = bal_garage_rndf(state, 0, n->limit_a[l] * 0.2);
}
