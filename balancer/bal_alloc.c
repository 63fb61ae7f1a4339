/* The static allocation of one run: admit minimums in priority and rotation order, then share
 * what is left by weighted water-filling within each priority class (highest first), then raise
 * anyone who can still be raised alone. Everything happens on the constraint rows of bal_int.h. */
#include "bal_int.h"

#include <math.h>

/* Whether adding amount at the lines of mask to charger k's path keeps every row it tightens
 * within its cap. On failure *block is the first row that refused. */
static bool fits(const pw_bal *b, size_t k, uint8_t mask, double amount, int *block)
{
    BAL_FOR_PATH_ROWS(b, k, j)
    {
        const bal_row *r = &b->rows[j];
        int c = r->cm[mask];
        if (c > 0 && r->a + c * amount > r->cap + 1e-9) {
            *block = (int)j;
            return false;
        }
    }
    return true;
}

static void add_load(pw_bal *b, size_t k, uint8_t mask, double amount)
{
    BAL_FOR_PATH_ROWS(b, k, j)
    {
        bal_row *r = &b->rows[j];
        r->a += r->cm[mask] * amount;
    }
}

/* Why a minimum did not fit on row j: the facility itself has no room, higher classes took it,
 * or chargers of the same class were ahead in the rotation. */
static enum pw_bal_reason pause_reason(const bal_row *r, int c, double amount)
{
    if (r->base + c * amount > r->cap + 1e-9)
        return PW_REASON_PAUSED_NO_ROOM;
    if (r->cls_top + c * amount > r->cap + 1e-9)
        return PW_REASON_PAUSED_PRIORITY;
    return PW_REASON_PAUSED_ROTATION;
}

/* Tries to admit charger k at its minimum, choosing its phase mode: a car on three phases goes
 * to one phase only where three do not fit; a switched car returns to three phases only with room
 * to spare (hysteresis), so it does not flip-flop. */
static bool admit_one(pw_bal *b, size_t k)
{
    bal_plan *pl = &b->plan[k];
    int block = -1;
    uint8_t mode = 0, tried = pl->mask3;
    if (pl->mode == 1) {
        if (pl->can3 && fits(b, k, pl->mask3, pl->lo + b->p.hysteresis_a, &block))
            mode = 3;
        else if (tried = pl->mask1, fits(b, k, pl->mask1, pl->lo, &block))
            mode = 1;
    } else if (fits(b, k, pl->mask3, pl->lo, &block)) {
        mode = 3;
    } else if (pl->can1 && (tried = pl->mask1, fits(b, k, pl->mask1, pl->lo, &block))) {
        mode = 1;
    }
    if (!mode) {
        const bal_row *r = &b->rows[block];
        pl->st = ST_PAUSED;
        pl->block = block;
        pl->pause = pause_reason(r, r->cm[tried], pl->lo);
        return false;
    }
    pl->tmode = mode;
    pl->mask = mode == 1 ? pl->mask1 : pl->mask3;
    pl->st = ST_FROZEN;
    pl->val = pl->lo;
    pl->block = -1;
    add_load(b, k, pl->mask, pl->lo);
    return true;
}

/* Suspended cars form one last class after every priority class. */
static int key_class(const pw_bal *b, const bal_key *key)
{
    return b->plan[key->idx].susp ? (int)b->n_cls : b->ch[key->idx].cls;
}

static void admit(pw_bal *b)
{
    for (size_t j = 0; j < b->n_rows; j++) {
        b->rows[j].a = b->rows[j].base;
        b->rows[j].b = 0;
        b->rows[j].npos = 0;
    }
    int cls = -1;
    size_t paused = 0;
    for (size_t i = 0; i < b->n_order; i++) {
        if (key_class(b, &b->order[i]) != cls) {
            cls = key_class(b, &b->order[i]);
            for (size_t j = 0; j < b->n_rows; j++)
                b->rows[j].cls_top = b->rows[j].a;
        }
        paused += !admit_one(b, b->order[i].idx);
    }
    /* An imbalance row can gain room when a charger on its other line is admitted, so a paused
     * charger may fit after all: retry until nothing changes. Without imbalance rows loads only
     * grow and a refused minimum stays refused. */
    bool changed = b->has_imbalance;
    while (changed && paused) {
        changed = false;
        for (size_t i = 0; i < b->n_order; i++) {
            size_t k = b->order[i].idx;
            if (b->plan[k].st == ST_PAUSED && admit_one(b, k)) {
                changed = true;
                paused--;
            }
        }
    }
}

/* ---- which row fills up next ---- */

/* The level at which row j is full, or infinity while nothing that loads it rises. */
static double row_full_at(const bal_row *r)
{
    return r->npos > 0 && r->b > BAL_EPS ? (r->cap - r->a) / r->b : INFINITY;
}

static uint32_t earlier(const pw_bal *b, uint32_t x, uint32_t y)
{
    return b->row_t[y] < b->row_t[x] || (b->row_t[y] == b->row_t[x] && y < x) ? y : x;
}

static void seg_fix(pw_bal *b, size_t j)
{
    b->row_t[j] = row_full_at(&b->rows[j]);
    for (size_t i = (b->seg_leaves + j) / 2; i >= 1; i /= 2)
        b->seg[i] = earlier(b, b->seg[2 * i], b->seg[2 * i + 1]);
}

static void seg_build(pw_bal *b)
{
    size_t n = b->seg_leaves;
    b->row_t[b->n_rows] = INFINITY; /* sentinel for the unused leaves */
    for (size_t j = 0; j < n; j++) {
        size_t row = j < b->n_rows ? j : b->n_rows;
        if (j < b->n_rows)
            b->row_t[j] = row_full_at(&b->rows[j]);
        b->seg[n + j] = (uint32_t)row;
    }
    for (size_t i = n - 1; i >= 1; i--)
        b->seg[i] = earlier(b, b->seg[2 * i], b->seg[2 * i + 1]);
    for (size_t i = 0; i < b->n_dirty; i++) /* left over from the previous class */
        b->is_dirty[b->dirty[i]] = false;
    b->n_dirty = 0;
}

static void touch(pw_bal *b, size_t j)
{
    if (!b->is_dirty[j]) {
        b->is_dirty[j] = true;
        b->dirty[b->n_dirty++] = (uint32_t)j;
    }
}

/* The earliest level >= t at which a row with rising chargers becomes full; -1 if none.
 * Touched rows are brought up to date first. Changes that can only make a row fill later are
 * not touched (see freeze): their stored level is early, never late, so the earliest stored
 * level is checked against its row and fixed until it is exact. */
static int next_full_row(pw_bal *b, double t, double *t_row)
{
    for (size_t i = 0; i < b->n_dirty; i++) {
        b->is_dirty[b->dirty[i]] = false;
        seg_fix(b, b->dirty[i]);
    }
    b->n_dirty = 0;
    for (;;) {
        uint32_t j = b->seg[1];
        if (j >= b->n_rows || b->row_t[j] == INFINITY)
            return -1;
        double exact = row_full_at(&b->rows[j]);
        if (exact != b->row_t[j]) {
            seg_fix(b, j);
            continue;
        }
        *t_row = exact < t ? t : exact;
        return (int)j;
    }
}

/* Freezes charger k at level t; bind is the row that stopped it, -1 for its own cap. A rising
 * charger holds x + w t, clamped to [floor, hi]. */
static void freeze(pw_bal *b, size_t k, double t, int bind)
{
    bal_plan *pl = &b->plan[k];
    if (pl->st == ST_RISE) {
        double v = pl->x + pl->w * t;
        v = v < pl->floor ? pl->floor : v > pl->hi ? pl->hi : v;
        BAL_FOR_PATH_ROWS(b, k, j)
        {
            bal_row *r = &b->rows[j];
            int c = r->cm[pl->mask];
            if (!c)
                continue;
            r->a += c * (v - pl->x);
            r->b -= c * pl->w;
            r->npos -= c > 0;
            if (c < 0) /* only a row it unloads fills up sooner */
                touch(b, j);
        }
        pl->val = v;
    } else {
        pl->val = pl->floor; /* a floored charger's floor is already in the rows */
    }
    pl->st = ST_FROZEN;
    pl->bind = bind;
}

/* The level reached (floor - x) / w: the charger starts rising with the others. */
static void start_rising(pw_bal *b, size_t k)
{
    bal_plan *pl = &b->plan[k];
    BAL_FOR_PATH_ROWS(b, k, j)
    {
        bal_row *r = &b->rows[j];
        int c = r->cm[pl->mask];
        if (!c)
            continue;
        r->a -= c * (pl->floor - pl->x);
        r->b += c * pl->w;
        r->npos += c > 0;
        if (c > 0) /* only a row it loads fills up sooner */
            touch(b, j);
    }
    pl->st = ST_RISE;
}

/* Row j is full: freeze every active charger below its node that loads it. */
static size_t freeze_row(pw_bal *b, size_t j, double t)
{
    bal_row *r = &b->rows[j];
    const bal_node *n = &b->nodes[r->node];
    size_t frozen = 0;
    for (size_t i = n->lo; i < n->hi; i++) {
        size_t k = b->dfs_ch[i];
        bal_plan *pl = &b->plan[k];
        if ((pl->st == ST_FLOOR || pl->st == ST_RISE) && r->cm[pl->mask] > 0) {
            freeze(b, k, t, (int)j);
            frozen++;
        }
    }
    if (!frozen) { /* only rounding left it looking tight */
        r->npos = 0;
        touch(b, j);
    }
    return frozen;
}

/* Stopped by an imbalance row: the only kind of stop that can lift again, when chargers on the
 * other line of the pair rise (line rows only fill up; caps stay). */
static bool imbalance_bound(const pw_bal *b, const bal_plan *pl)
{
    return pl->bind >= 0 && b->rows[pl->bind].line == 0;
}

/* Progressive filling of one class: the level t rises, charger k holds max(floor, x + w t)
 * capped at hi, and whoever loads a row that fills up freezes. Events are the kinks of each
 * charger (its floor ends at (floor - x) / w, its cap at (hi - x) / w) and rows filling up.
 * The first fill starts everyone from their minimum (x = 0: shares grow in proportion to the
 * weights); a refill lets chargers below an imbalance limit rise together from where they are
 * (x = floor = their value). */
static void fill_class(pw_bal *b, const bal_key *list, size_t n, bool refill)
{
    /* Floor ends and caps are sorted apart (floor ends are usually all alike, which sorts for
     * free) and merged as the level rises. */
    bal_key *floors = b->events, *caps = b->events + b->n_ch;
    size_t nf = 0, nc = 0, active = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = list[i].idx;
        bal_plan *pl = &b->plan[k];
        if (pl->st != ST_FROZEN)
            continue;
        pl->floor = refill ? pl->val : pl->lo;
        pl->x = refill ? pl->val : 0;
        if (pl->hi <= pl->floor + BAL_EPS) {
            if (!refill)
                pl->bind = -1;
            continue;
        }
        pl->st = ST_FLOOR;
        active++;
        floors[nf++] = (bal_key){bal__dkey((pl->floor - pl->x) / pl->w), (uint32_t)k};
        caps[nc++] = (bal_key){bal__dkey((pl->hi - pl->x) / pl->w), (uint32_t)k};
    }
    bal__sort(floors, b->tmp, nf);
    bal__sort(caps, b->tmp, nc);
    seg_build(b);
    size_t ef = 0, ec = 0;
    double t = 0;
    while (active > 0) {
        double tf = ef < nf ? bal__keyd(floors[ef].key) : INFINITY;
        double tc = ec < nc ? bal__keyd(caps[ec].key) : INFINITY;
        double t_row, t_ev = tf < tc ? tf : tc;
        int j = next_full_row(b, t, &t_row);
        if (j >= 0 && t_row <= t_ev) {
            t = t_row;
            active -= freeze_row(b, (size_t)j, t);
            continue;
        }
        if (t_ev == INFINITY)
            break; /* cannot happen: every active charger has a cap event left */
        t = t_ev;
        /* At one level, floors end before caps are reached. */
        for (; ef < nf && bal__keyd(floors[ef].key) <= t_ev; ef++)
            if (b->plan[floors[ef].idx].st == ST_FLOOR)
                start_rising(b, floors[ef].idx);
        for (; ec < nc && bal__keyd(caps[ec].key) <= t_ev; ec++) {
            bal_plan *pl = &b->plan[caps[ec].idx];
            if (pl->st == ST_FLOOR || pl->st == ST_RISE) {
                freeze(b, caps[ec].idx, t, -1);
                active--;
            }
        }
    }
}

/* Raises charger k alone as far as its rows allow; returns by how much. */
static double raise_alone(pw_bal *b, size_t k)
{
    bal_plan *pl = &b->plan[k];
    if (pl->st != ST_FROZEN || pl->val >= pl->hi - 1e-9)
        return 0;
    double room = pl->hi - pl->val;
    BAL_FOR_PATH_ROWS(b, k, j)
    {
        const bal_row *r = &b->rows[j];
        int c = r->cm[pl->mask];
        if (c > 0 && (r->cap - r->a) / c < room)
            room = (r->cap - r->a) / c;
    }
    if (room <= 1e-9)
        return 0;
    add_load(b, k, pl->mask, room);
    pl->val += room;
    return room;
}

/* Fills list (in admission order) one priority class after the other. */
static void fill_classes(pw_bal *b, const bal_key *list, size_t n, bool refill)
{
    for (size_t from = 0; from < n;) {
        size_t to = from + 1;
        while (to < n && key_class(b, &list[to]) == key_class(b, &list[from]))
            to++;
        fill_class(b, list + from, to - from, refill);
        for (size_t j = 0; j < b->n_rows; j++) /* drop rounding residue of the class */
            b->rows[j].b = 0;
        from = to;
    }
}

/* One refill: the chargers stopped by an imbalance row rise together again. Returns by how
 * much they rose in all. */
static double refill(pw_bal *b)
{
    size_t n = 0;
    double before = 0, after = 0;
    for (size_t i = 0; i < b->n_order; i++) {
        const bal_plan *pl = &b->plan[b->order[i].idx];
        if (pl->st == ST_FROZEN && imbalance_bound(b, pl)) {
            b->cand[n++] = b->order[i];
            before += pl->val;
        }
    }
    if (n < 2) /* one charger alone is raised by the last pass */
        return 0;
    fill_classes(b, b->cand, n, true);
    for (size_t i = 0; i < n; i++)
        after += b->plan[b->cand[i].idx].val;
    return after - before;
}

/* With imbalance rows, freezing a charger at a line difference is premature when chargers on
 * the other line keep rising: the difference may shrink again. Two imbalance limits can block
 * two chargers in turn, so raising one at a time would crawl; instead the chargers stopped by an
 * imbalance row rise together again from where they are until nothing moves (this converges
 * geometrically when the two sides rise at different rates), and a last pass raises each alone.
 * Line rows only fill up, so for everyone else water-filling left nothing to raise (the
 * property tests check exactly that). */
static void raise_leftovers(pw_bal *b)
{
    if (!b->has_imbalance)
        return;
    for (int pass = 0; pass < 100 && refill(b) > 1e-9; pass++)
        continue;
    for (int pass = 0; pass < 64; pass++) {
        double moved = 0;
        for (size_t i = 0; i < b->n_order; i++)
            if (b->ch[b->order[i].idx].imb_path)
                moved += raise_alone(b, b->order[i].idx);
        if (moved <= 1e-7)
            break;
    }
}

void bal__allocate(pw_bal *b)
{
    admit(b);
    fill_classes(b, b->order, b->n_order, false);
    raise_leftovers(b);
}
