/* Balancer test fixture: small facilities built in a few calls (see bal_fx.h). */
#include "bal_fx.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pw_util.h"

void fx_init(fx *x, enum pw_grid grid, bool oneshot)
{
    memset(x, 0, sizeof *x);
    x->f.grid = grid;
    x->f.nodes = x->nodes;
    x->f.chargers = x->ch;
    pw_bal_default_params(&x->f.params);
    x->f.params.oneshot = oneshot;
}

int fx_node(fx *x, const char *id, int parent, double l1, double l2, double l3)
{
    assert_true(x->f.n_nodes < FX_MAX_NODES);
    int n = (int)x->f.n_nodes++;
    pw_bal_node_spec *s = &x->nodes[n];
    pw_strlcpy(s->id, id, sizeof s->id);
    pw_strlcpy(s->name, id, sizeof s->name);
    s->parent = parent;
    s->limit_a[0] = l1;
    s->limit_a[1] = l2;
    s->limit_a[2] = l3;
    return n;
}

void fx_meter(fx *x, int n, uint32_t timeout_ms, double fallback)
{
    pw_bal_node_spec *s = &x->nodes[n];
    s->metered = true;
    s->meter_timeout_ms = timeout_ms;
    for (size_t l = 0; l < PW_LINES; l++)
        s->meter_fallback_a[l] = fallback;
}

int fx_charger(fx *x, const char *id, int node, const char *wiring, double max_a)
{
    assert_true(x->f.n_chargers < FX_MAX_CHARGERS);
    int k = (int)x->f.n_chargers++;
    pw_bal_charger_spec *c = &x->ch[k];
    pw_strlcpy(c->id, id, sizeof c->id);
    pw_strlcpy(c->name, id, sizeof c->name);
    c->node = node;
    for (size_t t = 0; t < PW_LINES && wiring[2 * t]; t++)
        c->wiring[t] = (uint8_t)(wiring[2 * t + 1] - '0');
    c->min_a = 6;
    c->max_a = max_a;
    c->weight = 1;
    return k;
}

void fx_garage(fx *x, enum pw_grid grid, bool oneshot, double limit, int n, const char *wiring,
               double max_a)
{
    fx_init(x, grid, oneshot);
    int m = fx_node(x, "main", -1, limit, limit, limit);
    for (int i = 0; i < n; i++) {
        char id[2] = {(char)('a' + i), '\0'};
        fx_charger(x, id, m, wiring, max_a);
    }
}

void fx_live_garage(fx *x, double limit, int n, double max_a)
{
    fx_garage(x, PW_GRID_TN, false, limit, n, "L1L2L3", max_a);
    fx_start(x);
}

void fx_draws(fx *x, int k, double a, uint64_t now)
{
    fx_meas(x, k, a > 0 ? PW_CAR_CHARGING : PW_CAR_CONNECTED, a, a, a, a, now);
}

void fx_assert_text(const pw_bal_result *r, const char *part)
{
    if (!strstr(r->reason_text, part))
        fail_msg("reason '%s' lacks '%s'", r->reason_text, part);
}

void fx_all_connected(fx *x, uint64_t now)
{
    for (size_t k = 0; k < x->f.n_chargers; k++)
        fx_meas(x, (int)k, PW_CAR_CONNECTED, 0, 0, 0, 0, now);
}

void fx_start(fx *x)
{
    char err[256];
    if (pw_bal_validate(&x->f, err, sizeof err) != 0)
        fail_msg("facility rejected: %s", err);
    x->b = pw_bal_new(&x->f);
}

void fx_free(fx *x)
{
    pw_bal_free(x->b);
    x->b = NULL;
}

void fx_meas(fx *x, int k, enum pw_car_state car, double t1, double t2, double t3, double applied,
             uint64_t now)
{
    pw_bal_measure m = {.car = car, .current_a = {t1, t2, t3}, .applied_limit_a = applied};
    pw_bal_set_charger(x->b, (size_t)k, &m, now);
}

void fx_charging(fx *x, int k, double t1, double t2, double t3, uint64_t now)
{
    fx_meas(x, k, PW_CAR_CHARGING, t1, t2, t3, 0, now);
}

void fx_meter_read(fx *x, int n, double l1, double l2, double l3, uint64_t now)
{
    double a[PW_LINES] = {l1, l2, l3};
    pw_bal_set_meter(x->b, (size_t)n, a, now);
}

void fx_run(fx *x, uint64_t now)
{
    assert_int_equal(pw_bal_run(x->b, now), 0);
    fx_assert_no_overload(x);
}

const pw_bal_result *fx_res(fx *x, int k)
{
    return &pw_bal_results(x->b)[k];
}

const pw_bal_node_result *fx_nres(fx *x, int n)
{
    return &pw_bal_node_results(x->b)[n];
}

void fx_assert_no_overload(fx *x)
{
    const pw_bal_result *r = pw_bal_results(x->b);
    for (size_t n = 0; n < x->f.n_nodes; n++) {
        /* Planned loads of controlled chargers, and budgets of silent or faulty ones. */
        double ev[PW_LINES] = {0, 0, 0}, fixed[PW_LINES] = {0, 0, 0};
        for (size_t k = 0; k < x->f.n_chargers; k++) {
            bool below = false;
            for (int p = x->ch[k].node; p >= 0 && !below; p = x->nodes[p].parent)
                below = (size_t)p == n;
            bool ctrl = r[k].reason != PW_REASON_OFFLINE && r[k].reason != PW_REASON_FAULT;
            for (size_t l = 0; below && l < PW_LINES; l++)
                (ctrl ? ev : fixed)[l] += r[k].line_a[l];
        }
        const pw_bal_node_result *nr = fx_nres(x, (int)n);
        for (size_t l = 0; l < PW_LINES; l++) {
            double cap = x->nodes[n].limit_a[l] - x->nodes[n].margin_a;
            double total = ev[l] + fixed[l] + nr->non_ev_a[l];
            /* Where the building alone is over the limit, nothing may be planned there. */
            if (ev[l] > 1e-9 && total > cap + 1e-6)
                fail_msg("node %s L%zu planned %.3f + budgets %.3f + non-EV %.3f over %.3f",
                         x->nodes[n].id, l + 1, ev[l], fixed[l], nr->non_ev_a[l], cap);
            assert_float_equal(nr->ev_a[l], ev[l] + fixed[l], 1e-6);
        }
    }
}
