/* Reasons a person can read: each charger's result names the constraint that binds it ("limited
 * by node 'Garage B' line L2") or why it is paused, and when rotation will give it a turn. */
#include "bal_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void say(pw_bal_result *r, enum pw_bal_reason code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(pw_bal_result *r, enum pw_bal_reason code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason_text, sizeof r->reason_text, fmt, ap);
    va_end(ap);
    r->reason = code;
}

/* "node 'Garage B' line L2" or "node 'Garage B' imbalance limit (L1 over L3 by at most 20 A)". */
static void describe_row(const pw_bal *b, int j, char *out, size_t size)
{
    const bal_row *row = &b->rows[j];
    const char *name = bal__node_name(b, row->node);
    if (row->line)
        snprintf(out, size, "node '%s' line L%u", name, row->line);
    else
        snprintf(out, size, "node '%s' imbalance limit (L%u over L%u by at most %.0f A)", name,
                 row->hi_line, row->lo_line, row->cap);
}

/* The row that binds a charger below its demand: where it froze if that row is still full,
 * else any full row on its path that it loads. */
static int binding_row(const pw_bal *b, size_t k)
{
    const bal_plan *pl = &b->plan[k];
    const double tight = 1e-6;
    if (pl->bind >= 0) {
        const bal_row *r = &b->rows[pl->bind];
        if (r->cm[pl->mask] > 0 && r->cap - r->a <= tight)
            return pl->bind;
    }
    BAL_FOR_PATH_ROWS(b, k, j)
    {
        const bal_row *r = &b->rows[j];
        if (r->cm[pl->mask] > 0 && r->cap - r->a <= tight)
            return (int)j;
    }
    return -1;
}

static void set_bind(const pw_bal *b, pw_bal_result *r, int j)
{
    if (j < 0)
        return;
    r->bind_node = b->rows[j].node;
    r->bind_line = b->rows[j].line;
}

static void offline_reason(const pw_bal *b, size_t k, uint64_t now, pw_bal_result *r)
{
    const bal_ch *c = &b->ch[k];
    double budget = 0;
    for (size_t l = 0; l < PW_LINES; l++)
        if (b->plan[k].fixed[l] > budget)
            budget = b->plan[k].fixed[l];
    if (c->has_meas)
        say(r, PW_REASON_OFFLINE, "charger silent for %llu s: budgeted at %.1f A",
            (unsigned long long)((now > c->meas_at ? now - c->meas_at : 0) / 1000), budget);
    else
        say(r, PW_REASON_OFFLINE, "charger not heard from yet: budgeted at %.1f A", budget);
}

static void paused_reason(const pw_bal *b, size_t k, uint64_t now, pw_bal_result *r)
{
    const bal_plan *pl = &b->plan[k];
    char where[96];
    describe_row(b, pl->block, where, sizeof where);
    set_bind(b, r, pl->block);
    if (pl->susp) {
        say(r, PW_REASON_SUSPENDED, "car paused itself; no room at %s to hold its minimum %.0f A",
            where, pl->lo);
        return;
    }
    switch (pl->pause) {
    case PW_REASON_PAUSED_PRIORITY:
        say(r, pl->pause, "paused: higher-priority cars use %s", where);
        break;
    case PW_REASON_PAUSED_ROTATION:
        if (r->next_turn_ms > now) {
            uint64_t min = (r->next_turn_ms - now + 59999) / 60000;
            say(r, pl->pause, "paused: rotation, next turn in ~%llu min (%s is full)",
                (unsigned long long)min, where);
        } else {
            say(r, pl->pause, "paused: rotation, minimums do not all fit at %s", where);
        }
        break;
    default:
        say(r, PW_REASON_PAUSED_NO_ROOM, "paused: %s has no room for the minimum %.0f A", where,
            pl->lo);
        break;
    }
}

static void limited_reason(const pw_bal *b, size_t k, pw_bal_result *r)
{
    const bal_plan *pl = &b->plan[k];
    int j = binding_row(b, k);
    if (j < 0) { /* only a hysteresis hold leaves a charger below demand with room left */
        say(r, PW_REASON_NODE_LIMIT, "kept at %.1f A: a raise under %.1f A is not sent", pl->val,
            b->p.hysteresis_a);
        return;
    }
    char where[96];
    describe_row(b, j, where, sizeof where);
    set_bind(b, r, j);
    int stale = b->nodes[b->rows[j].node].stale_src;
    if (stale >= 0 && b->rows[j].line)
        say(r, PW_REASON_METER_STALE, "limited by %s; meter '%s' stale: conservative budget", where,
            bal__node_name(b, stale));
    else
        say(r, b->rows[j].line ? PW_REASON_NODE_LIMIT : PW_REASON_IMBALANCE, "limited by %s",
            where);
}

void bal__reason(pw_bal *b, size_t k, uint64_t now)
{
    const bal_plan *pl = &b->plan[k];
    const bal_ch *c = &b->ch[k];
    pw_bal_result *r = &b->res[k];
    r->bind_node = -1;
    r->bind_line = 0;
    if (!pl->online) {
        offline_reason(b, k, now, r);
    } else if (c->m.car == PW_CAR_FAULT) {
        say(r, PW_REASON_FAULT, "charger reports a fault");
    } else if (!pl->want) {
        say(r, PW_REASON_NO_CAR, "no car connected");
    } else if (pl->held && pl->val <= 0) {
        say(r, PW_REASON_WAITING_CUTS, "starts once other chargers have followed their cuts");
    } else if (pl->held) {
        say(r, PW_REASON_WAITING_CUTS, "raise to %.1f A waits until other chargers follow cuts",
            pl->target);
    } else if (pl->val <= 0) {
        paused_reason(b, k, now, r);
    } else if (pl->susp) {
        say(r, PW_REASON_SUSPENDED,
            "car paused itself; holding the minimum %.0f A so it can resume", pl->lo);
    } else if (pl->target >= pl->hi - 1e-6 && pl->trimmed) {
        say(r, PW_REASON_CAR_DRAW, "car draws %.1f A, less than offered: offer trimmed to %.1f A",
            pl->hi - b->p.trim_headroom_a < 0 ? 0 : pl->hi - b->p.trim_headroom_a, pl->hi);
    } else if (pl->target >= pl->hi - 1e-6) {
        say(r, PW_REASON_MAX, "at the charger's maximum %.0f A", pl->hi);
    } else {
        limited_reason(b, k, r);
    }
    size_t len = strlen(r->reason_text);
    if (pl->want && pl->val > 0 && pl->mode == 1 && len + 16 < sizeof r->reason_text)
        snprintf(r->reason_text + len, sizeof r->reason_text - len, ", on 1 phase");
}

/* Estimated resume time of cars paused by rotation: the running cars of the class leave in the
 * order their minimum run ends, one turn per car, and a car just paused waits its minimum pause. */
void bal__rotation_eta(pw_bal *b, uint64_t now)
{
    for (size_t k = 0; k < b->n_ch; k++)
        b->res[k].next_turn_ms = 0;
    if (b->p.oneshot)
        return;
    for (size_t from = 0; from < b->n_order;) {
        size_t to = from;
        int cls = b->ch[b->order[from].idx].cls;
        bool susp = b->plan[b->order[from].idx].susp;
        size_t running = 0;
        for (; to < b->n_order && b->ch[b->order[to].idx].cls == cls &&
               b->plan[b->order[to].idx].susp == susp;
             to++) {
            size_t k = b->order[to].idx;
            const bal_ch *c = &b->ch[k];
            if (b->plan[k].val <= 0)
                continue;
            uint64_t end = (c->running ? c->run_since : now) + b->p.min_run_ms;
            b->tmp[running++] = (bal_key){end > now ? end : now, (uint32_t)k};
        }
        bal__sort(b->tmp, b->events, running);
        size_t p = 0;
        for (size_t i = from; i < to && running; i++) {
            size_t k = b->order[i].idx;
            const bal_plan *pl = &b->plan[k];
            const bal_ch *c = &b->ch[k];
            if (pl->val > 0 || pl->held || pl->pause != PW_REASON_PAUSED_ROTATION)
                continue;
            uint64_t eta = b->tmp[p % running].key + (p / running) * (uint64_t)b->p.min_run_ms;
            uint64_t guard = c->running        ? now + b->p.min_pause_ms
                             : c->paused_by_us ? c->paused_at + b->p.min_pause_ms
                                               : 0;
            b->res[k].next_turn_ms = eta > guard ? eta : guard;
            p++;
        }
        from = to;
    }
}
