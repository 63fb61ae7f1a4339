/* The balancer's model: default parameters, facility validation, construction (all memory a run
 * needs is sized here) and the measurement inputs. */
#include "bal_int.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

void pw_bal_default_params(pw_bal_params *p)
{
    *p = (pw_bal_params){
        .reaction_ms = 5000,
        .min_run_ms = 15 * 60 * 1000,
        .min_pause_ms = 5 * 60 * 1000,
        .offline_ms = 90000,
        .status_min_ms = 1000,
        .status_max_ms = 30000,
        .status_delay_ms = 250,
        .hysteresis_a = 1.0,
        .trim_headroom_a = 2.0,
        .probe_ms = 5 * 60 * 1000,
        .max_phase_switches = 4,
        .active_phase_a = 1.0,
        .phase_hold_ms = 5 * 60 * 1000,
        .meter_history_ms = 10 * 60 * 1000,
        .oneshot = false,
    };
}

static int fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && err_size)
        vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -1;
}

static bool finite_nonneg(double x)
{
    return isfinite(x) && x >= 0;
}

static int validate_node(const pw_bal_facility *f, size_t i, char *err, size_t es)
{
    const pw_bal_node_spec *n = &f->nodes[i];
    if (!n->id[0])
        return fail(err, es, "nodes[%zu].id: must not be empty", i);
    if (i == 0 && n->parent != -1)
        return fail(err, es, "nodes[0].parent: the root has no parent");
    if (i > 0 && (n->parent < 0 || (size_t)n->parent >= f->n_nodes || (size_t)n->parent == i))
        return fail(err, es, "nodes[%zu].parent: must be the index of another node", i);
    for (size_t l = 0; l < PW_LINES; l++) {
        if (!finite_nonneg(n->limit_a[l]))
            return fail(err, es, "nodes[%zu].limit_a: must be a non-negative number", i);
        if (!finite_nonneg(n->meter_fallback_a[l]))
            return fail(err, es, "nodes[%zu].meter_fallback_a: must be a non-negative number", i);
        if (!finite_nonneg(n->reserve_a[l]))
            return fail(err, es, "nodes[%zu].reserve_a: must be a non-negative number", i);
        if (n->reserve_a[l] > 0 && n->reserve_a[l] >= n->limit_a[l])
            return fail(err, es,
                        "nodes[%zu].reserve_a: %.1f A on L%zu leaves nothing of its %.1f A limit",
                        i, n->reserve_a[l], l + 1, n->limit_a[l]);
    }
    if (!finite_nonneg(n->margin_a))
        return fail(err, es, "nodes[%zu].margin_a: must be a non-negative number", i);
    if (!finite_nonneg(n->max_imbalance_a))
        return fail(err, es, "nodes[%zu].max_imbalance_a: must be 0 (no limit) or positive", i);
    if (n->metered && n->meter_timeout_ms == 0)
        return fail(err, es, "nodes[%zu].meter_timeout_ms: a metered node needs a timeout", i);
    /* Walking up must reach the root within n_nodes steps, or the parents form a cycle. */
    int p = n->parent;
    for (size_t steps = 0; p > 0; steps++, p = f->nodes[p].parent)
        if (steps > f->n_nodes)
            return fail(err, es, "nodes[%zu].parent: the parents form a cycle", i);
    return 0;
}

static int validate_wiring(const pw_bal_facility *f, size_t i, char *err, size_t es)
{
    const uint8_t *w = f->chargers[i].wiring;
    uint8_t seen = 0;
    for (size_t t = 0; t < PW_LINES; t++) {
        if (w[t] > 3)
            return fail(err, es, "chargers[%zu].wiring: lines are 1..3 (0 = not wired)", i);
        if (w[t] && (seen & (1u << (w[t] - 1))))
            return fail(err, es, "chargers[%zu].wiring: line L%u is wired twice", i, w[t]);
        if (w[t] && t > 0 && !w[t - 1])
            return fail(err, es, "chargers[%zu].wiring: wire terminals in order from L1", i);
        if (w[t])
            seen |= (uint8_t)(1u << (w[t] - 1));
    }
    if (!w[0])
        return fail(err, es, "chargers[%zu].wiring: terminal L1 must be wired", i);
    if (f->grid == PW_GRID_IT && !w[1])
        return fail(err, es, "chargers[%zu].wiring: on an IT grid terminals L1 and L2 are needed",
                    i);
    if (f->chargers[i].can_switch_phases && !w[2])
        return fail(err, es,
                    "chargers[%zu].can_switch_phases: only a three-phase charger can switch", i);
    return 0;
}

static int validate_charger(const pw_bal_facility *f, size_t i, char *err, size_t es)
{
    const pw_bal_charger_spec *c = &f->chargers[i];
    if (!c->id[0])
        return fail(err, es, "chargers[%zu].id: must not be empty", i);
    if (c->node < 0 || (size_t)c->node >= f->n_nodes)
        return fail(err, es, "chargers[%zu].node: must be the index of a node", i);
    if (!isfinite(c->min_a) || c->min_a < 6)
        return fail(err, es, "chargers[%zu].min_a: IEC 61851 cannot offer less than 6 A", i);
    if (!isfinite(c->max_a) || c->max_a < c->min_a)
        return fail(err, es, "chargers[%zu].max_a: must be at least min_a (%g A)", i, c->min_a);
    if (!finite_nonneg(c->failsafe_a) || c->failsafe_a > c->max_a ||
        (c->failsafe_a > 0 && c->failsafe_a < c->min_a))
        return fail(err, es, "chargers[%zu].failsafe_a: must be 0 or between min_a and max_a", i);
    if (!isfinite(c->weight) || c->weight <= 0)
        return fail(err, es, "chargers[%zu].weight: must be positive", i);
    return validate_wiring(f, i, err, es);
}

static int cmp_id(const void *x, const void *y)
{
    const char *const *a = x, *const *b = y;
    return strcmp(*a, *b);
}

/* Ids must be unique among nodes and among chargers: results and the API name them by id. */
static int validate_unique(const char **ids, size_t n, const char *what, char *err, size_t es)
{
    qsort(ids, n, sizeof *ids, cmp_id);
    for (size_t i = 1; i < n; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            return fail(err, es, "%s: id '%s' is used twice", what, ids[i]);
    return 0;
}

static int validate_ids(const pw_bal_facility *f, char *err, size_t es)
{
    size_t n = f->n_nodes > f->n_chargers ? f->n_nodes : f->n_chargers;
    const char **ids = pw_xcalloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < f->n_nodes; i++)
        ids[i] = f->nodes[i].id;
    int rc = validate_unique(ids, f->n_nodes, "nodes", err, es);
    for (size_t i = 0; rc == 0 && i < f->n_chargers; i++)
        ids[i] = f->chargers[i].id;
    if (rc == 0)
        rc = validate_unique(ids, f->n_chargers, "chargers", err, es);
    free(ids);
    return rc;
}

/* The failsafe currents of all chargers below a node, on every wired line, must fit it: when the
 * appliance is gone every charger falls back to its failsafe at once. The non-EV reserves of the
 * unmetered nodes at and below it are there too (a metered node's own load is not known when the
 * configuration is saved, and its reserve is not used). */
static int validate_failsafe(const pw_bal_facility *f, char *err, size_t es)
{
    double *sum = pw_xcalloc(f->n_nodes * PW_LINES, sizeof *sum);
    double *res = pw_xcalloc(f->n_nodes * PW_LINES, sizeof *res);
    for (size_t i = 0; i < f->n_chargers; i++) {
        const pw_bal_charger_spec *c = &f->chargers[i];
        for (int n = c->node; n >= 0; n = f->nodes[n].parent)
            for (size_t t = 0; t < PW_LINES; t++)
                if (c->wiring[t])
                    sum[(size_t)n * PW_LINES + c->wiring[t] - 1] += c->failsafe_a;
    }
    for (size_t i = 0; i < f->n_nodes; i++) {
        if (f->nodes[i].metered)
            continue;
        for (int n = (int)i; n >= 0; n = f->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES; l++)
                res[(size_t)n * PW_LINES + l] += f->nodes[i].reserve_a[l];
    }
    int rc = 0;
    for (size_t n = 0; n < f->n_nodes && rc == 0; n++) {
        const pw_bal_node_spec *s = &f->nodes[n];
        for (size_t l = 0; l < PW_LINES && rc == 0; l++) {
            double fs = sum[n * PW_LINES + l], r = res[n * PW_LINES + l];
            if (fs + r <= s->limit_a[l] - s->margin_a + 1e-9)
                continue;
            if (r > 0)
                rc = fail(err, es,
                          "nodes[%zu].limit_a: failsafe currents below '%s' add up to %.1f A on "
                          "L%zu, with %.1f A of non-EV reserve more than its %.1f A limit minus "
                          "margin",
                          n, s->id, fs, l + 1, r, s->limit_a[l] - s->margin_a);
            else
                rc = fail(err, es,
                          "nodes[%zu].limit_a: failsafe currents below '%s' add up to %.1f A on "
                          "L%zu, more than its %.1f A limit minus margin",
                          n, s->id, fs, l + 1, s->limit_a[l] - s->margin_a);
        }
    }
    free(res);
    free(sum);
    return rc;
}

static int validate_params(const pw_bal_params *p, char *err, size_t es)
{
    if (!finite_nonneg(p->hysteresis_a))
        return fail(err, es, "params.hysteresis_a: must be a non-negative number");
    if (!isfinite(p->trim_headroom_a) || p->trim_headroom_a <= 0)
        return fail(err, es, "params.trim_headroom_a: must be positive");
    if (!isfinite(p->active_phase_a) || p->active_phase_a <= 0)
        return fail(err, es, "params.active_phase_a: must be positive");
    if (p->offline_ms == 0)
        return fail(err, es, "params.offline_ms: must be positive");
    if (p->status_max_ms == 0)
        return fail(err, es, "params.status_max_ms: must be positive");
    return 0;
}

int pw_bal_validate(const pw_bal_facility *f, char *err, size_t err_size)
{
    if (f->n_nodes == 0 || !f->nodes)
        return fail(err, err_size, "nodes: a facility needs at least its main fuse");
    if (f->n_chargers && !f->chargers)
        return fail(err, err_size, "chargers: missing");
    if (f->grid != PW_GRID_TN && f->grid != PW_GRID_IT)
        return fail(err, err_size, "grid: must be TN or IT");
    int rc = validate_params(&f->params, err, err_size);
    for (size_t i = 0; rc == 0 && i < f->n_nodes; i++)
        rc = validate_node(f, i, err, err_size);
    for (size_t i = 0; rc == 0 && i < f->n_chargers; i++)
        rc = validate_charger(f, i, err, err_size);
    if (rc == 0)
        rc = validate_ids(f, err, err_size);
    if (rc == 0)
        rc = validate_failsafe(f, err, err_size);
    return rc;
}

static uint8_t terms_lines(const uint8_t wiring[PW_LINES], uint8_t terms)
{
    uint8_t m = 0;
    for (size_t t = 0; t < PW_LINES; t++)
        if ((terms & (1u << t)) && wiring[t])
            m |= (uint8_t)(1u << (wiring[t] - 1));
    return m;
}

/* Depth-first preorder of the nodes, and for each node the range of chargers below it in a
 * charger order that follows the same walk, so that "every charger below n" is a slice. */
static void build_tree_order(pw_bal *b)
{
    size_t *stack = pw_xmalloc(b->n_nodes * sizeof *stack);
    size_t *first_child = pw_xmalloc(b->n_nodes * sizeof *first_child);
    size_t *next_sib = pw_xmalloc(b->n_nodes * sizeof *next_sib);
    for (size_t n = 0; n < b->n_nodes; n++)
        first_child[n] = next_sib[n] = SIZE_MAX;
    for (size_t n = b->n_nodes; n-- > 1;) { /* reversed so children keep their config order */
        size_t p = (size_t)b->nodes[n].spec.parent;
        next_sib[n] = first_child[p];
        first_child[p] = n;
    }
    size_t *ch_count = pw_xcalloc(b->n_nodes, sizeof *ch_count);
    for (size_t k = 0; k < b->n_ch; k++)
        ch_count[b->ch[k].spec.node]++;
    size_t *ch_start = pw_xmalloc(b->n_nodes * sizeof *ch_start);

    /* Preorder walk; a node's own chargers come first, then its children's subtrees. */
    size_t sp = 0, out = 0, pos = 0;
    stack[sp++] = 0;
    while (sp) {
        size_t n = stack[--sp];
        b->dfs_node[out++] = n;
        ch_start[n] = pos;
        pos += ch_count[n];
        /* Push children in reverse so the first child is visited first. */
        size_t cnt = 0;
        for (size_t c = first_child[n]; c != SIZE_MAX; c = next_sib[c])
            cnt++;
        for (size_t i = cnt; i-- > 0;) {
            size_t c = first_child[n];
            for (size_t s = 0; s < i; s++)
                c = next_sib[c];
            stack[sp++] = c;
        }
    }
    size_t *fill = pw_xcalloc(b->n_nodes, sizeof *fill);
    for (size_t k = 0; k < b->n_ch; k++) {
        size_t n = (size_t)b->ch[k].spec.node;
        b->dfs_ch[ch_start[n] + fill[n]++] = (uint32_t)k;
    }
    /* A subtree ends where the preorder leaves it: compute ranges bottom-up. */
    for (size_t i = b->n_nodes; i-- > 0;) {
        size_t n = b->dfs_node[i];
        b->nodes[n].lo = ch_start[n];
        if (b->nodes[n].hi < ch_start[n] + ch_count[n])
            b->nodes[n].hi = ch_start[n] + ch_count[n];
        if (n > 0) {
            bal_node *p = &b->nodes[b->nodes[n].spec.parent];
            if (p->hi < b->nodes[n].hi)
                p->hi = b->nodes[n].hi;
        }
    }
    free(fill);
    free(ch_start);
    free(ch_count);
    free(next_sib);
    free(first_child);
    free(stack);
}

static void init_row(bal_row *r, int node, const int8_t coef[PW_LINES])
{
    r->node = node;
    for (unsigned m = 0; m < 8; m++) {
        int c = 0;
        for (size_t l = 0; l < PW_LINES; l++)
            if (m & (1u << l))
                c += coef[l];
        r->cm[m] = (int8_t)c;
    }
}

/* Three line rows per node, and six ordered line pairs for a node with an imbalance limit. */
static void build_rows(pw_bal *b)
{
    size_t j = 0;
    for (size_t n = 0; n < b->n_nodes; n++) {
        bal_node *node = &b->nodes[n];
        node->row0 = j;
        for (uint8_t l = 0; l < PW_LINES; l++, j++) {
            int8_t coef[PW_LINES] = {0, 0, 0};
            coef[l] = 1;
            init_row(&b->rows[j], (int)n, coef);
            b->rows[j].line = (uint8_t)(l + 1);
        }
        if (node->spec.max_imbalance_a > 0) {
            b->has_imbalance = true;
            for (uint8_t hi = 0; hi < PW_LINES; hi++)
                for (uint8_t lo = 0; lo < PW_LINES; lo++) {
                    if (hi == lo)
                        continue;
                    int8_t coef[PW_LINES] = {0, 0, 0};
                    coef[hi] = 1;
                    coef[lo] = -1;
                    init_row(&b->rows[j], (int)n, coef);
                    b->rows[j].hi_line = (uint8_t)(hi + 1);
                    b->rows[j].lo_line = (uint8_t)(lo + 1);
                    j++;
                }
        }
        node->nrows = j - node->row0;
    }
    b->n_rows = j;
}

/* The path rows of every node and line mask (pw_bal.path_rows): counted, then filled, the
 * rows with coefficient 1 before those with -1. */
static void build_paths(pw_bal *b)
{
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        total = 0;
        for (size_t g = 0; g < b->n_nodes * 8; g++) {
            if (pass)
                b->path_at[g] = (uint32_t)total;
            for (int sign = 1; sign >= -1; sign -= 2) {
                if (pass && sign < 0)
                    b->path_neg[g] = (uint32_t)total;
                for (int up = (int)(g / 8); up >= 0; up = b->nodes[up].spec.parent) {
                    const bal_node *node = &b->nodes[up];
                    for (size_t j = node->row0; j < node->row0 + node->nrows; j++) {
                        int c = b->rows[j].cm[g % 8];
                        assert(c >= -1 && c <= 1); /* the walks add or subtract the amount */
                        if (c == sign && pass)
                            b->path_rows[total] = (uint32_t)j;
                        total += c == sign;
                    }
                }
            }
        }
        if (!pass)
            b->path_rows = pw_xcalloc(total ? total : 1, sizeof *b->path_rows);
    }
    b->path_at[b->n_nodes * 8] = (uint32_t)total;
}

/* The nearest metered node at or above node n, -1 if none. */
static int metered_at_or_above(const pw_bal *b, int n)
{
    while (n >= 0 && !b->nodes[n].spec.metered)
        n = b->nodes[n].spec.parent;
    return n;
}

/* Columns of the draw-at-reading table: a metered node's slot is the number of metered nodes
 * above it, so the metered nodes on one path have distinct slots. Also the chain of metered
 * nodes up every path, so that runs visit only those. */
static void build_slots(pw_bal *b)
{
    b->n_slots = 0;
    for (size_t n = 0; n < b->n_nodes; n++) {
        bal_node *node = &b->nodes[n];
        node->mup = metered_at_or_above(b, node->spec.parent);
        node->slot = -1;
        if (!node->spec.metered)
            continue;
        int above = 0;
        for (int p = node->mup; p >= 0; p = b->nodes[p].mup)
            above++;
        node->slot = above;
        if ((size_t)above + 1 > b->n_slots)
            b->n_slots = (size_t)above + 1;
    }
    size_t nk = b->n_ch ? b->n_ch : 1, ns = b->n_slots ? b->n_slots : 1;
    b->at_meter = pw_xcalloc(nk * ns * PW_LINES, sizeof *b->at_meter);
    for (size_t k = 0; k < b->n_ch; k++) {
        b->ch[k].at_meter = b->at_meter + k * ns * PW_LINES;
        b->ch[k].metered = metered_at_or_above(b, b->ch[k].spec.node);
    }
}

/* Class rank per charger: 0 for the highest priority present, 1 for the next, ... Sorted with
 * the run's scratch (events, tmp), so that a changed priority (pw_bal_set_override) allocates
 * nothing; the plans get their copy of the rank. */
static void build_classes(pw_bal *b)
{
    bal_key *keys = b->events;
    for (size_t k = 0; k < b->n_ch; k++) /* a higher priority, a smaller key */
        keys[k] = (bal_key){(uint64_t)((int64_t)INT_MAX - b->ch[k].spec.priority), (uint32_t)k};
    bal__sort(keys, b->tmp, b->n_ch);
    size_t distinct = 0;
    for (size_t i = 0; i < b->n_ch; i++) {
        distinct += i == 0 || keys[i].key != keys[i - 1].key;
        b->ch[keys[i].idx].cls = (int)distinct - 1;
        b->plan[keys[i].idx].cls = (int)distinct - 1;
    }
    b->n_cls = distinct;
}

/* A charger's timing as its transport gave it, the facility's params where it gave none. */
static pw_bal_timing resolve_timing(const pw_bal_timing *t, const pw_bal_params *p)
{
    return (pw_bal_timing){
        .status_min_ms = t->status_min_ms ? t->status_min_ms : p->status_min_ms,
        .status_max_ms = t->status_max_ms ? t->status_max_ms : p->status_max_ms,
        .status_delay_ms = t->status_delay_ms ? t->status_delay_ms : p->status_delay_ms,
        .offline_ms = t->offline_ms ? t->offline_ms : p->offline_ms,
        .keeps_limit = t->keeps_limit,
    };
}

pw_bal *pw_bal_new(const pw_bal_facility *f)
{
    pw_bal *b = pw_xcalloc(1, sizeof *b);
    b->grid = f->grid;
    b->p = f->params;
    b->n_nodes = f->n_nodes;
    b->n_ch = f->n_chargers;
    size_t nk = b->n_ch ? b->n_ch : 1;
    b->nodes = pw_xcalloc(b->n_nodes, sizeof *b->nodes);
    b->ch = pw_xcalloc(nk, sizeof *b->ch);
    b->plan = pw_xcalloc(nk, sizeof *b->plan);
    b->rows = pw_xcalloc(b->n_nodes * 9, sizeof *b->rows);
    b->dfs_node = pw_xcalloc(b->n_nodes, sizeof *b->dfs_node);
    b->dfs_ch = pw_xcalloc(nk, sizeof *b->dfs_ch);
    b->rising = pw_xcalloc(nk + 8, sizeof *b->rising); /* + 8: read 8 at a time */
    b->order = pw_xcalloc(nk, sizeof *b->order);
    b->events = pw_xcalloc(2 * nk, sizeof *b->events);
    b->tmp = pw_xcalloc(2 * nk, sizeof *b->tmp);
    b->cand = pw_xcalloc(nk, sizeof *b->cand);
    b->imb = pw_xcalloc(nk, sizeof *b->imb);
    b->hits = pw_xcalloc(nk, sizeof *b->hits);
    b->res = pw_xcalloc(nk, sizeof *b->res);
    b->nres = pw_xcalloc(b->n_nodes, sizeof *b->nres);
    b->acc = pw_xcalloc(b->n_nodes * PW_LINES, sizeof *b->acc);
    b->trans_acc = pw_xcalloc(b->n_nodes * PW_LINES, sizeof *b->trans_acc);
    b->ev_acc = pw_xcalloc(b->n_nodes * PW_LINES, sizeof *b->ev_acc);
    b->grp = pw_xcalloc(b->n_nodes * 8, sizeof *b->grp);
    b->grp_list = pw_xcalloc(b->n_nodes * 8 + 1, sizeof *b->grp_list); /* + grp_list_add's spare */
    b->adm_need = pw_xcalloc(b->n_nodes, sizeof *b->adm_need);
    b->adm_safe = pw_xcalloc(b->n_nodes, sizeof *b->adm_safe);
    b->deadline = UINT64_MAX;
    size_t max_rows = b->n_nodes * 9;
    b->ref_a = pw_xcalloc(max_rows, sizeof *b->ref_a);
    b->row_t = pw_xcalloc(max_rows, sizeof *b->row_t);
    b->dirty = pw_xcalloc(max_rows, sizeof *b->dirty);
    b->is_dirty = pw_xcalloc(max_rows, sizeof *b->is_dirty);
    for (size_t n = 0; n < b->n_nodes; n++) {
        b->nodes[n].spec = f->nodes[n];
        /* Ids and names need not be terminated within their arrays: terminate the copies. */
        b->nodes[n].spec.id[PW_BAL_ID_LEN - 1] = '\0';
        b->nodes[n].spec.name[PW_BAL_NAME_LEN - 1] = '\0';
        b->nodes[n].name_len = strlen(bal__node_name(b, (int)n));
        for (size_t l = 0; l < PW_LINES; l++) {
            b->nodes[n].cfg_limit_a[l] = f->nodes[n].limit_a[l];
            b->nodes[n].op_cap_a[l] = INFINITY;
        }
    }
    for (size_t k = 0; k < b->n_ch; k++) {
        bal_ch *c = &b->ch[k];
        const pw_bal_charger_spec *s = &f->chargers[k];
        c->spec = (bal_spec){.min_a = s->min_a,
                             .max_a = s->max_a,
                             .failsafe_a = s->failsafe_a,
                             .weight = s->weight,
                             .node = s->node,
                             .priority = s->priority,
                             .can_switch_phases = s->can_switch_phases};
        memcpy(c->spec.wiring, s->wiring, sizeof c->spec.wiring);
        c->spec.timing = resolve_timing(&s->timing, &b->p);
        c->wired = terms_lines(c->spec.wiring, 7);
        /* A charger switched to one phase uses terminal L1; on IT that phase is the L1-L2 pair. */
        c->one = terms_lines(c->spec.wiring, b->grid == PW_GRID_IT ? 3 : 1);
        /* Grid lines a car loads at full phases, by the terminals it was seen active on: every
         * wired line until that is known. On IT a single-phase car sits between terminals L1
         * and L2, so anything seen on those two alone means that pair; anything else is taken
         * as all wired lines. */
        for (uint8_t t = 0; t < 8; t++)
            c->car_lines[t] = !t                      ? c->wired
                              : b->grid != PW_GRID_IT ? terms_lines(c->spec.wiring, t)
                              : (t & 4)               ? c->wired
                                                      : c->one;
        c->mode = 3;
        c->prev_mode = 3;
        c->cfg_max_a = s->max_a;
        c->op_cap_a = INFINITY;
        b->plan[k].node = (uint32_t)s->node;
    }
    build_tree_order(b);
    build_rows(b);
    b->row_txt = pw_xcalloc(b->n_rows ? b->n_rows : 1, BAL_ROW_TXT_LEN);
    b->row_txt_len = pw_xcalloc(b->n_rows ? b->n_rows : 1, sizeof *b->row_txt_len);
    bal__row_texts(b);
    /* Blocks of about sqrt(n_rows) rows, at least 8. */
    b->blk_size = 8;
    while (b->blk_size * b->blk_size < b->n_rows)
        b->blk_size++;
    size_t n_blk = (b->n_rows + b->blk_size - 1) / b->blk_size;
    b->n_blk = n_blk;
    b->blk = pw_xcalloc(n_blk ? n_blk : 1, sizeof *b->blk);
    b->blk_dirty = pw_xcalloc(n_blk ? n_blk : 1, sizeof *b->blk_dirty);
    b->path_at = pw_xcalloc(b->n_nodes * 8 + 1, sizeof *b->path_at);
    b->path_neg = pw_xcalloc(b->n_nodes * 8, sizeof *b->path_neg);
    build_paths(b);
    build_slots(b);
    for (size_t k = 0; k < b->n_ch; k++)
        for (int n = b->ch[k].spec.node; n >= 0; n = b->nodes[n].spec.parent)
            b->ch[k].imb_path = b->ch[k].imb_path || b->nodes[n].spec.max_imbalance_a > 0;
    build_classes(b);
    for (size_t k = 0; k < b->n_ch; k++)
        b->plan[k].imb_path = b->ch[k].imb_path;
    for (size_t i = 0; i < b->n_ch; i++)
        b->plan[b->dfs_ch[i]].pos = (uint32_t)i;
    return b;
}

void pw_bal_free(pw_bal *b)
{
    if (!b)
        return;
    free(b->nodes);
    free(b->ch);
    free(b->at_meter);
    free(b->acc);
    free(b->trans_acc);
    free(b->ev_acc);
    free(b->plan);
    free(b->rows);
    free(b->path_rows);
    free(b->path_at);
    free(b->path_neg);
    free(b->dfs_node);
    free(b->dfs_ch);
    free(b->rising);
    free(b->order);
    free(b->events);
    free(b->tmp);
    free(b->cand);
    free(b->imb);
    free(b->hits);
    free(b->row_t);
    free(b->blk);
    free(b->blk_dirty);
    free(b->dirty);
    free(b->is_dirty);
    free(b->row_txt);
    free(b->row_txt_len);
    free(b->grp);
    free(b->grp_list);
    free(b->adm_need);
    free(b->adm_safe);
    free(b->ref_a);
    free(b->res);
    free(b->nres);
    free(b);
}

static bool all_finite(const double a[PW_LINES])
{
    return isfinite(a[0]) && isfinite(a[1]) && isfinite(a[2]);
}

/* A charger draws, it never feeds in: a negative current is read as none. */
static double clean_current(double a)
{
    return a > 0 ? a : 0;
}

/* The most any reading above charger k has it drawing, per line. */
static void update_at_max(pw_bal *b, size_t k)
{
    bal_ch *c = &b->ch[k];
    memset(c->at_max, 0, sizeof c->at_max);
    BAL_FOR_PATH_METERS(b, k, n)
    {
        const double *at = c->at_meter + (size_t)b->nodes[n].slot * PW_LINES;
        for (size_t l = 0; l < PW_LINES; l++)
            c->at_max[l] = at[l] > c->at_max[l] ? at[l] : c->at_max[l];
    }
}

/* The most charger c can draw per terminal at now by the limit it applies: that limit once the
 * car has had the reaction window to follow it, else no bound. Lowering what a reading is taken
 * to contain of a charger only raises the non-EV load derived from it: the safe side. */
static double draw_cap(const pw_bal *b, const bal_ch *c, uint64_t now)
{
    if (!c->has_meas || b->p.oneshot || now < c->limit_seen_at ||
        now - c->limit_seen_at < b->p.reaction_ms)
        return INFINITY;
    return c->m.applied_limit_a;
}

void pw_bal_set_meter(pw_bal *b, size_t node, const double line_a[PW_LINES], uint64_t now_ms)
{
    if (node >= b->n_nodes || !all_finite(line_a))
        return;
    bal_node *n = &b->nodes[node];
    /* A negative (exporting) line is kept: non-EV load is clamped at 0 after subtracting the
     * chargers, which errs on the safe side either way. */
    for (size_t l = 0; l < PW_LINES; l++)
        n->meter_a[l] = line_a[l];
    if (n->has_meter && now_ms > n->meter_at) {
        uint64_t iv = now_ms - n->meter_at;
        n->meter_iv = (uint32_t)(iv < n->spec.meter_timeout_ms ? iv : n->spec.meter_timeout_ms);
    }
    n->has_meter = true;
    n->meter_at = now_ms;
    if (n->slot < 0)
        return;
    /* The reading includes what the chargers below draw now: remember it as the statuses known
     * so far tell it. A charger not heard from yet counts as drawing nothing (the safe side). */
    memset(n->at_sum, 0, sizeof n->at_sum);
    for (size_t i = n->lo; i < n->hi; i++) {
        const bal_ch *c = &b->ch[b->dfs_ch[i]];
        double *at = c->at_meter + (size_t)n->slot * PW_LINES;
        double cap = draw_cap(b, c, now_ms);
        for (size_t l = 0; l < PW_LINES; l++) {
            at[l] = c->has_meas ? c->meas_line[l] : 0;
            at[l] = at[l] > cap ? cap : at[l];
            n->at_sum[l] += at[l];
        }
        update_at_max(b, b->dfs_ch[i]);
    }
}

/* Whether a status arriving at now, after one at prev, may report a change that happened before
 * a meter reading at read: the change came after the previous status was measured, and either
 * the status was held back by the protocol's minimum interval (the change may be up to that
 * old) or it arrived within the delay of the reading. */
static bool may_predate(const pw_bal_timing *p, uint64_t read, uint64_t prev, uint64_t now)
{
    if (now < read || prev > read + p->status_delay_ms)
        return false;
    return now - prev < (uint64_t)p->status_min_ms + p->status_delay_ms ||
           now <= read + p->status_delay_ms;
}

/* A status that may describe the moment a meter above the charger was read lowers the draw
 * remembered for that reading where it is lower: the meter may already have seen the drop. */
static void lower_at_meter(pw_bal *b, size_t k, bool had, uint64_t prev, uint64_t now)
{
    bal_ch *c = &b->ch[k];
    bool lowered = false;
    BAL_FOR_PATH_METERS(b, k, n)
    {
        bal_node *node = &b->nodes[n];
        if (!node->has_meter)
            continue;
        /* Not heard from before: the reading already counted it as drawing nothing. */
        if (!had || !may_predate(&c->spec.timing, node->meter_at, prev, now))
            continue;
        double *at = c->at_meter + (size_t)node->slot * PW_LINES;
        for (size_t l = 0; l < PW_LINES; l++)
            if (c->meas_line[l] < at[l]) {
                node->at_sum[l] -= at[l] - c->meas_line[l];
                at[l] = c->meas_line[l];
                lowered = true;
            }
    }
    if (lowered)
        update_at_max(b, k);
}

void pw_bal_set_charger(pw_bal *b, size_t charger, const pw_bal_measure *m, uint64_t now_ms)
{
    if (charger >= b->n_ch || !all_finite(m->current_a) || !isfinite(m->applied_limit_a))
        return;
    bal_ch *c = &b->ch[charger];
    if (!c->has_meas) /* first report: trust the phase mode the charger is in */
        c->mode = m->applied_phases == 1 ? 1 : 3;
    if (!c->has_meas || fabs(clean_current(m->applied_limit_a) - c->m.applied_limit_a) > 1e-9)
        c->limit_seen_at = now_ms;
    c->m = *m;
    if ((unsigned)c->m.car > PW_CAR_FAULT)
        c->m.car = PW_CAR_FAULT;
    c->m.applied_limit_a = clean_current(m->applied_limit_a);
    for (size_t l = 0; l < PW_LINES; l++) {
        c->m.current_a[l] = clean_current(m->current_a[l]);
        c->meas_line[l] = 0;
    }
    uint8_t active = 0;
    for (size_t t = 0; t < PW_LINES; t++) {
        if (!c->spec.wiring[t])
            continue;
        c->meas_line[c->spec.wiring[t] - 1] += c->m.current_a[t];
        if (c->m.current_a[t] > b->p.active_phase_a)
            active |= (uint8_t)(1u << t);
    }
    if (c->m.car != PW_CAR_SUSPENDED)
        c->susp_believed = false;
    if (c->m.car == PW_CAR_NONE) { /* the session ended: forget what we learned about the car */
        c->car_terms = 0;
        c->switches = 0;
        c->mode = 3;
        c->trim_cap = 0;
    } else if (c->m.car == PW_CAR_CHARGING && c->mode == 3 && m->applied_phases != 1 &&
               (b->p.oneshot || c->switches == 0 || now_ms < c->mode_since ||
                now_ms - c->mode_since >= b->p.reaction_ms)) {
        /* Phases only grow within a session: a phase dipping under the threshold for a moment
         * must not make the plan forget the load it will carry again. Only a car that has had
         * the reaction window to follow a switch back to three phases shows its phases: one
         * still on the single phase it was switched to would read as a single-phase car. */
        c->car_terms |= active;
    }
    lower_at_meter(b, charger, c->has_meas, c->meas_at, now_ms);
    c->has_meas = true;
    c->meas_at = now_ms;
    if (c->raise_unseen) {
        /* Measured after the reaction window since the raise (it may be status_delay_ms older
         * than its arrival), drawing the raised offer, or no car at all: what the car does with
         * it is seen. */
        uint64_t after = c->raise_at + b->p.reaction_ms + c->spec.timing.status_delay_ms;
        bool acting = true;
        for (size_t l = 0; l < PW_LINES; l++)
            acting = acting && c->meas_line[l] >= c->raise_line[l] - b->p.active_phase_a;
        if (now_ms >= after || acting || c->m.car == PW_CAR_NONE)
            c->raise_unseen = false;
    }
}

/* An operator's cap as the balancer keeps it: none (INFINITY) for NaN, 0 for below 0. */
static double clean_cap(double a)
{
    return isnan(a) ? INFINITY : a < 0 ? 0 : a;
}

void pw_bal_set_override(pw_bal *b, size_t charger, double cap_a, int priority)
{
    if (charger >= b->n_ch)
        return;
    bal_ch *c = &b->ch[charger];
    c->op_cap_a = clean_cap(cap_a);
    c->op_paused = c->op_cap_a < c->spec.min_a - BAL_EPS;
    /* The run reads the maximum in force from the spec, like the config's. */
    c->spec.max_a = c->op_paused || c->op_cap_a >= c->cfg_max_a ? c->cfg_max_a : c->op_cap_a;
    if (priority != c->spec.priority) {
        c->spec.priority = priority;
        build_classes(b); /* ranks are relative: every charger's may move */
    }
}

void pw_bal_set_node_cap(pw_bal *b, size_t node, const double cap_a[PW_LINES])
{
    if (node >= b->n_nodes)
        return;
    bal_node *n = &b->nodes[node];
    for (size_t l = 0; l < PW_LINES; l++) {
        n->op_cap_a[l] = clean_cap(cap_a[l]);
        n->spec.limit_a[l] = fmin(n->cfg_limit_a[l], n->op_cap_a[l]);
    }
}

const pw_bal_result *pw_bal_results(const pw_bal *b)
{
    return b->res;
}

const pw_bal_node_result *pw_bal_node_results(const pw_bal *b)
{
    return b->nres;
}

uint64_t pw_bal_next_deadline(const pw_bal *b)
{
    return b->deadline;
}

const char *pw_bal_reason_name(enum pw_bal_reason r)
{
    static const char *const names[PW_REASON_COUNT] = {
        [PW_REASON_NO_CAR] = "no_car",
        [PW_REASON_MAX] = "max",
        [PW_REASON_NODE_LIMIT] = "node_limit",
        [PW_REASON_IMBALANCE] = "imbalance",
        [PW_REASON_CAR_DRAW] = "car_draw",
        [PW_REASON_PAUSED_PRIORITY] = "paused_priority",
        [PW_REASON_PAUSED_ROTATION] = "paused_rotation",
        [PW_REASON_PAUSED_NO_ROOM] = "paused_no_room",
        [PW_REASON_WAITING_CUTS] = "waiting_cuts",
        [PW_REASON_METER_STALE] = "meter_stale",
        [PW_REASON_OFFLINE] = "offline",
        [PW_REASON_FAULT] = "fault",
        [PW_REASON_SUSPENDED] = "suspended",
        [PW_REASON_PAUSED_OPERATOR] = "paused_operator",
    };
    return (unsigned)r < PW_REASON_COUNT ? names[r] : "unknown";
}

const char *bal__node_name(const pw_bal *b, int n)
{
    const pw_bal_node_spec *s = &b->nodes[n].spec;
    return s->name[0] ? s->name : s->id;
}

/* Small arrays: insertion sort, stable. */
static void insertion_sort(bal_key *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        bal_key v = a[i];
        size_t j = i;
        for (; j > 0 && v.key < a[j - 1].key; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

/* Most-significant-digit radix sort, 8 bits a pass, stable: the keys are spread by the highest
 * byte in which they differ, then each bucket is sorted the same way on the bytes below, and a
 * small one by insertion. Keys of one run share their high bytes (classes, exponents) and most of
 * them are often equal (chargers at their maximum), so few passes are made over few keys, where
 * a least-significant-digit sort would make one pass over all keys for every byte in which any
 * two differ (all eight for fractional amperes). No allocation; recursion depth <= 8. */
static void msd_sort(bal_key *a, bal_key *tmp, size_t n)
{
    if (n < 32) {
        insertion_sort(a, n);
        return;
    }
    uint64_t differ = 0;
    for (size_t i = 1; i < n; i++)
        differ |= a[i].key ^ a[0].key;
    if (!differ)
        return;
    /* The digit is the 8 bits from the highest that differs down, not a byte: keys of one run
     * differ in few high bits (their exponents), which a byte would spread over few buckets. */
    unsigned top = 63;
    while (!(differ >> top))
        top--;
    unsigned shift = top >= 7 ? top - 7 : 0;
    /* Most keys often share their byte (chargers at one maximum): counted in two tables by
     * turns, and placed with the position of a run of one byte kept in a register, so that the
     * steps do not each wait for the last one's store to the same counter. */
    uint32_t start[257] = {0}, odd[256] = {0};
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        start[((a[i].key >> shift) & 0xff) + 1]++;
        odd[(a[i + 1].key >> shift) & 0xff]++;
    }
    if (i < n)
        start[((a[i].key >> shift) & 0xff) + 1]++;
    for (unsigned v = 0; v < 256; v++)
        start[v + 1] += start[v] + odd[v];
    uint32_t next[256];
    memcpy(next, start, sizeof next);
    unsigned run = (a[0].key >> shift) & 0xff;
    uint32_t at = next[run];
    for (i = 0; i < n; i++) {
        unsigned v = (a[i].key >> shift) & 0xff;
        if (v != run) {
            next[run] = at;
            run = v;
            at = next[v];
        }
        tmp[at++] = a[i];
    }
    memcpy(a, tmp, n * sizeof *a);
    for (unsigned v = 0; v < 256 && shift > 0; v++)
        if (start[v + 1] - start[v] > 1)
            msd_sort(a + start[v], tmp + start[v], start[v + 1] - start[v]);
}

void bal__sort(bal_key *a, bal_key *tmp, size_t n)
{
    msd_sort(a, tmp, n);
}
