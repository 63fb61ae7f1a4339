/* The static allocation of one run: admit minimums in priority and rotation order, then share
 * what is left by weighted water-filling within each priority class (highest first), then raise
 * anyone who can still be raised alone. Everything happens on the constraint rows of bal_int.h. */
#include "bal_int.h"

#include <math.h>
#include <string.h>

/* freeze_row tests eight chargers in one word, byte i of memory being bits 8i..8i+7. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bal_alloc.c assumes a little-endian machine"
#endif

/* Lists group g (pw_bal.grp_list) unless it is listed already, which it is once it has members.
 * Without a branch: whether a charger is its group's first is a coin toss, and grp_list has a
 * spare slot for the write that does not count. */
static void grp_list_add(pw_bal *b, size_t g, bool listed)
{
    b->grp_list[b->n_grp] = (uint32_t)g;
    b->n_grp += !listed;
}

/* Whether adding amount at the lines of mask to charger k's path keeps every row it tightens
 * (the rows it loads) within its cap. On failure *block is the first row that refused. */
static bool fits(const pw_bal *b, size_t k, uint8_t mask, double amount, int *block)
{
    const bal_row *rows = b->rows;
    BAL_FOR_POS(b, BAL_GROUP(b, k, mask), p)
    {
        const bal_row *r = &rows[*p];
        if (r->a + amount > r->cap + 1e-9) {
            *block = (int)*p;
            return false;
        }
    }
    return true;
}

/* Adds amount along group g's path rows: loaded rows take it, unloaded rows (coefficient -1)
 * give it up; exactly what adding the coefficient times amount gives. */
static void add_group(pw_bal *b, size_t g, double amount)
{
    bal_row *rows = b->rows;
    BAL_FOR_POS(b, g, p)
    rows[*p].a += amount;
    BAL_FOR_NEG(b, g, p)
    rows[*p].a -= amount;
}

/* add_group for charger k at the lines of mask. */
static void add_load(pw_bal *b, size_t k, uint8_t mask, double amount)
{
    add_group(b, BAL_GROUP(b, k, mask), amount);
}

/* add_load() for admission. The reference (tests only) also adds to ref_a, its rows' loads
 * without the minimums admit_safe holds until admission ends, which adm_flush starts from. */
static void adm_add(pw_bal *b, size_t k, uint8_t mask, double amount)
{
    add_load(b, k, mask, amount);
    if (b->reference) {
        size_t g = BAL_GROUP(b, k, mask);
        BAL_FOR_POS(b, g, p)
        b->ref_a[*p] += amount;
        BAL_FOR_NEG(b, g, p)
        b->ref_a[*p] -= amount;
    }
}

/* fits() and, when it does, adm_add(). The rows are distinct, so checking each before adding
 * to any refuses at the same row as adding along the path would. */
static bool fits_add(pw_bal *b, size_t k, uint8_t mask, double amount, int *block)
{
    if (!fits(b, k, mask, amount, block))
        return false;
    adm_add(b, k, mask, amount);
    return true;
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
    bool added = true; /* by fits_add; only a return to three phases checks with more */
    if (pl->mode == 1) {
        if (pl->can3 && fits(b, k, pl->mask3, pl->lo + b->p.hysteresis_a, &block)) {
            mode = 3;
            added = false;
        } else if (tried = pl->mask1, fits_add(b, k, pl->mask1, pl->lo, &block))
            mode = 1;
    } else if (fits_add(b, k, pl->mask3, pl->lo, &block)) {
        mode = 3;
    } else if (pl->can1 && (tried = pl->mask1, fits_add(b, k, pl->mask1, pl->lo, &block))) {
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
    if (!added)
        adm_add(b, k, pl->mask, pl->lo);
    return true;
}

/* The greatest admission order key of key's class. Suspended cars form one last class after
 * every priority class; the key holds both, so the plan is not read. Lists in admission order
 * are sorted by key: a walk in one enters the next class at the first key above this, one
 * compare a charger. */
static uint64_t class_last_key(uint64_t key)
{
    return key >> 63 ? UINT64_MAX : (((key >> BAL_KEY_CLS_SHIFT) + 1) << BAL_KEY_CLS_SHIFT) - 1;
}

/* ---- admission without checks where none can refuse ---- */

/* Sets adm_safe: whether the line rows from each node up to the root hold, beside their base,
 * every wanting charger below the node at its minimum on every line, plus the hysteresis of each
 * car on one phase that may return to three (admit_one checks that return with it). Admission
 * adds each charger's minimum to a line at most once, so no check of any charger can refuse on
 * such a row, whatever was admitted before it, nor depend on its load. */
static void admission_safety(pw_bal *b)
{
    /* Each node's own wanting chargers are in already: the prepare pass summed them
     * (charger_sums in bal_run.c, in memory order; the margin below covers the sum's order). */
    double *need = b->adm_need;
    for (size_t i = b->n_nodes; i-- > 1;) { /* children before parents */
        size_t n = b->dfs_node[i];
        need[b->nodes[n].spec.parent] += need[n];
    }
    for (size_t i = 0; i < b->n_nodes; i++) { /* parents before children */
        size_t n = b->dfs_node[i];
        const bal_node *node = &b->nodes[n];
        bool safe = n == 0 || b->adm_safe[node->spec.parent];
        for (size_t j = node->row0; j < node->row0 + PW_LINES; j++) { /* its line rows */
            /* The margin covers the rounding of sums taken in another order than the
             * admission's, also at large currents. */
            const bal_row *r = &b->rows[j];
            safe = safe && r->base + need[n] <= r->cap - 1e-6 * (1 + fabs(r->cap));
        }
        b->adm_safe[n] = safe;
    }
}

/* Charger k where no row of its path can refuse its minimum at full phases: its line rows are
 * safe, and it loads no imbalance row (it has none above it, or its car loads all three lines,
 * which leaves every line difference as it is). Admitted as admit_one would, without checks.
 * Not a car on one phase: its return to three is checked with room to spare. Its minimum waits
 * in the group of its node and line mask (pw_bal.grp) until admission ends: only safe rows take
 * it, and no check depends on a safe row's load, so each group's path is walked once
 * (adm_flush) instead of once per charger. The reference (tests only) checks and adds it all
 * the same, as the plain algorithm does: a flaw in the safety argument shows as a plan that
 * differs. It holds the minimum in the group too, so that both end with the rows summed in the
 * same order (adm_flush). Returns whether it was admitted. */
static bool admit_safe(pw_bal *b, size_t k)
{
    bal_plan *pl = &b->plan[k];
    int block;
    if (pl->mode == 1 || !b->adm_safe[pl->node] || (pl->imb_path && pl->mask3 != 7) ||
        (b->reference && !fits(b, k, pl->mask3, pl->lo, &block)))
        return false;
    /* Everything read before the plan is written: to the compiler its byte fields could be
     * anything, which a read after them would load again. */
    double lo = pl->lo;
    uint8_t mask = pl->mask3;
    bal_grp *q = &b->grp[BAL_GROUP(b, k, mask)];
    if (b->reference)
        add_load(b, k, mask, lo);
    grp_list_add(b, BAL_GROUP(b, k, mask), q->n++);
    q->dv += lo;
    pl->tmode = 3;
    pl->mask = mask;
    pl->st = ST_FROZEN;
    pl->val = lo;
    pl->block = -1;
    return true;
}

/* The minimums admit_safe holds per group go into their rows; the groups are emptied. The
 * reference's rows hold them already, in admission order: they start again from ref_a. */
static void adm_flush(pw_bal *b)
{
    if (b->reference)
        for (size_t j = 0; j < b->n_rows; j++)
            b->rows[j].a = b->ref_a[j];
    for (size_t i = 0; i < b->n_grp; i++) {
        size_t g = b->grp_list[i];
        add_group(b, g, b->grp[g].dv);
        b->grp[g] = (bal_grp){0, 0, 0};
    }
    b->n_grp = 0;
}

/* Admits minimums in the admission order: the chargers no row can refuse without checks (above),
 * the others checked row by row. Lists the wanting chargers below an imbalance limit in b->imb,
 * in admission order, while their plans are read anyway; returns how many. */
static size_t admit(pw_bal *b)
{
    for (size_t j = 0; j < b->n_rows; j++) {
        b->rows[j].a = b->rows[j].base;
        b->rows[j].b = 0;
        b->rows[j].npos = 0;
        if (b->reference)
            b->ref_a[j] = b->rows[j].base;
    }
    admission_safety(b);
    uint64_t cls_last = 0;
    size_t paused = 0, n_imb = 0;
    const bal_key *order = b->order; /* copies: admission writes plans' byte fields */
    for (size_t i = 0, n = b->n_order; i < n; i++) {
        if (i == 0 || order[i].key > cls_last) {
            cls_last = class_last_key(order[i].key);
            /* Held minimums wait on no row that can refuse, the only rows whose cls_top is
             * read (pause_reason). */
            for (size_t j = 0; j < b->n_rows; j++)
                b->rows[j].cls_top = b->rows[j].a;
        }
        size_t k = order[i].idx;
        b->imb[n_imb] = order[i];
        n_imb += b->plan[k].imb_path;
        if (!admit_safe(b, k) && !admit_one(b, k))
            b->cand[paused++] = order[i];
    }
    adm_flush(b);
    /* An imbalance row can gain room when a charger on its other line is admitted, so a paused
     * charger may fit after all: retry, in admission order, until nothing changes. Without
     * imbalance rows loads only grow and a refused minimum stays refused. */
    bool changed = b->has_imbalance;
    while (changed && paused) {
        changed = false;
        size_t still = 0;
        for (size_t i = 0; i < paused; i++) {
            if (admit_one(b, b->cand[i].idx))
                changed = true;
            else
                b->cand[still++] = b->cand[i];
        }
        paused = still;
    }
    return n_imb;
}

/* ---- which row fills up next ---- */

/* The level at which row j is full, or infinity while nothing that loads it rises. */
static double row_full_at(const bal_row *r)
{
    return r->npos > 0 && r->b > BAL_EPS ? (r->cap - r->a) / r->b : INFINITY;
}

/* Block k's earliest row again. Strictly earlier only: at one level the lower row wins, as a
 * scan of all rows would find it; a block of rows that never fill holds infinity. */
static void blk_fix(pw_bal *b, size_t k)
{
    size_t lo = k * b->blk_size, hi = lo + b->blk_size;
    hi = hi < b->n_rows ? hi : b->n_rows;
    double t = INFINITY;
    uint32_t row = (uint32_t)b->n_rows;
    for (size_t j = lo; j < hi; j++) { /* selects, not branches: which row wins is a coin toss */
        bool earlier = b->row_t[j] < t;
        t = earlier ? b->row_t[j] : t;
        row = earlier ? (uint32_t)j : row;
    }
    b->blk[k] = (bal_blk){t, row};
}

/* Brings every row of block k up to date: where one stored level was early, others of the
 * block, which loaded the same chargers, usually are too. */
static void blk_refresh(pw_bal *b, size_t k)
{
    size_t lo = k * b->blk_size, hi = lo + b->blk_size;
    hi = hi < b->n_rows ? hi : b->n_rows;
    for (size_t j = lo; j < hi; j++)
        b->row_t[j] = row_full_at(&b->rows[j]);
    blk_fix(b, k);
}

/* At the start of a class nothing rises (npos and b are 0 on every row): no row fills, and
 * fill_class asks for none before its first floor ends. Every row is brought up to date at the
 * first question, once chargers rise. */
static void levels_reset(pw_bal *b)
{
    for (size_t i = 0; i < b->n_dirty; i++) /* left over from the previous class */
        b->is_dirty[b->dirty[i]] = false;
    b->n_dirty = 0;
    b->all_dirty = true;
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
 * not touched (see grp_apply): their stored level is early, never late, so the earliest stored
 * level is checked against its row and fixed (with its block) until it is exact. */
static int next_full_row(pw_bal *b, double t, double *t_row)
{
    if (b->all_dirty) {
        for (size_t i = 0; i < b->n_dirty; i++)
            b->is_dirty[b->dirty[i]] = false;
        for (size_t j = 0; j < b->n_rows; j++)
            b->row_t[j] = row_full_at(&b->rows[j]);
        for (size_t k = 0; k < b->n_blk; k++)
            blk_fix(b, k);
        b->all_dirty = false;
    } else {
        /* Each block once, however many of its rows changed; all its rows, as they are read
         * anyway and early ones are likely among them. */
        for (size_t i = 0; i < b->n_dirty; i++) {
            size_t j = b->dirty[i];
            b->is_dirty[j] = false;
            b->blk_dirty[j / b->blk_size] = true;
        }
        for (size_t i = 0; i < b->n_dirty; i++) {
            size_t k = b->dirty[i] / b->blk_size;
            if (b->blk_dirty[k]) {
                b->blk_dirty[k] = false;
                blk_refresh(b, k);
            }
        }
    }
    b->n_dirty = 0;
    for (;;) {
        double top = INFINITY;
        uint32_t j = (uint32_t)b->n_rows;
        for (size_t k = 0; k < b->n_blk; k++) { /* selects, as in blk_fix */
            bool earlier = b->blk[k].t < top;
            top = earlier ? b->blk[k].t : top;
            j = earlier ? b->blk[k].row : j;
        }
        if (j >= b->n_rows || top == INFINITY)
            return -1;
        double exact = row_full_at(&b->rows[j]);
        if (exact != top) {
            blk_refresh(b, j / b->blk_size);
            continue;
        }
        *t_row = exact < t ? t : exact;
        return (int)j;
    }
}

/* Freezes charger k's plan at level t; bind is the row that stopped it, -1 for its own cap. A
 * rising charger holds x + w t, clamped to [floor, hi]: returns true and in *dv how far it moved
 * from x, which its rows still have to take (with its weight leaving their slope). A floored
 * charger's floor is already in the rows: false. */
static bool freeze_plan(pw_bal *b, size_t k, double t, int bind, double *dv)
{
    bal_plan *pl = &b->plan[k];
    bool rose = pl->st == ST_RISE;
    if (rose) {
        double v = pl->x + pl->w * t;
        v = v < pl->floor ? pl->floor : v > pl->hi ? pl->hi : v;
        *dv = v - pl->x;
        pl->val = v;
    } else {
        pl->val = pl->floor;
    }
    pl->st = ST_FROZEN;
    pl->bind = bind;
    b->rising[pl->pos] = 0;
    return rose;
}

/* The group of a plan's node and line mask (BAL_GROUP, from the plan). */
static size_t plan_group(const bal_plan *pl)
{
    return (size_t)pl->node * 8 + pl->mask;
}

/* A charger's change (dv) and its weight, into group sums q. */
static void grp_sum(bal_grp *q, const bal_plan *pl, double dv)
{
    q->dv += dv;
    q->w += pl->w;
    q->n++;
}

/* Adds charger k's change (dv, its weight) to the group of its node and line mask. */
static void grp_add(pw_bal *b, const bal_plan *pl, double dv)
{
    size_t g = plan_group(pl);
    bal_grp *q = &b->grp[g];
    grp_list_add(b, g, q->n);
    grp_sum(q, pl, dv);
}

/* A group's sums held in locals while the chargers added to it follow each other (freeze_row
 * finds them by dfs_ch position: mostly a node's and one mask's in a row): the same additions
 * in the same order as grp_add's, without storing the sums and loading them back each time. */
typedef struct grp_run {
    size_t g; /* SIZE_MAX: none yet */
    bal_grp s;
} grp_run;

static void run_flush(pw_bal *b, const grp_run *r)
{
    if (r->g != SIZE_MAX)
        b->grp[r->g] = r->s;
}

/* grp_add through run r. */
static void run_add(pw_bal *b, grp_run *r, const bal_plan *pl, double dv)
{
    size_t g = plan_group(pl);
    if (g != r->g) {
        run_flush(b, r);
        r->g = g;
        r->s = b->grp[g];
        grp_list_add(b, g, r->s.n);
    }
    grp_sum(&r->s, pl, dv);
}

/* Applies the groups to their path rows and empties them: frozen (sign 1: their values go into
 * the load, their weights out of the slope; only rows they unload fill up sooner, and those are
 * touched) or starting to rise (sign -1, as start_rising with every row to be brought up to date).
 * Sums in another order than charger by charger: the rows differ in the last bits at most. */
static void grp_apply(pw_bal *b, int sign)
{
    bal_row *rows = b->rows;
    for (size_t i = 0; i < b->n_grp; i++) {
        size_t g = b->grp_list[i];
        bal_grp *q = &b->grp[g];
        double dv = sign * q->dv, w = sign * q->w;
        int n = sign * q->n;
        BAL_FOR_POS(b, g, p)
        {
            bal_row *r = &rows[*p];
            r->a += dv;
            r->b -= w;
            r->npos -= n;
        }
        BAL_FOR_NEG(b, g, p)
        {
            bal_row *r = &rows[*p];
            r->a -= dv;
            r->b += w;
            if (sign > 0)
                touch(b, *p);
        }
        *q = (bal_grp){0, 0, 0};
    }
    b->n_grp = 0;
}

/* The level reached (floor - x) / w: the charger starts rising with the others. The rows it
 * loads are touched (only they fill up sooner). */
static void start_rising(pw_bal *b, size_t k)
{
    bal_plan *pl = &b->plan[k];
    /* Copies: a store to a row could be to the plan as far as the compiler knows. */
    double dv = pl->floor - pl->x, w = pl->w;
    bal_row *rows = b->rows;
    size_t g = BAL_GROUP(b, k, pl->mask);
    BAL_FOR_POS(b, g, p)
    {
        bal_row *r = &rows[*p];
        r->a -= dv;
        r->b += w;
        r->npos++;
        touch(b, *p);
    }
    BAL_FOR_NEG(b, g, p)
    {
        bal_row *r = &rows[*p];
        r->a += dv;
        r->b -= w;
    }
    pl->st = ST_RISE;
}

/* Row j is full: freeze every active charger below its node that loads it. */
static size_t freeze_row(pw_bal *b, size_t j, double t)
{
    bal_row *r = &b->rows[j];
    const bal_node *n = &b->nodes[r->node];
    /* The ones to stop are listed first, then stopped in the same order, their rows updated per
     * group. rising holds each charger's mask (with BAL_RISING; 0 when not rising): the row loads a
     * mask that has its line (pos) and not the line it unloads (neg; bit 3, never set, for a line
     * row). Eight chargers are tested at once, one bit a byte, and only those found are visited
     * (most have stopped rising, and which ones rise is a coin toss). */
    unsigned pos = r->line ? r->line - 1u : r->hi_line - 1u;
    unsigned neg = r->line ? 3u : r->lo_line - 1u;
    const uint64_t ones = 0x0101010101010101u;
    size_t frozen = 0;
    uint32_t *hit = b->hits;
    for (size_t i = n->lo; i < n->hi; i += 8) {
        uint64_t eight;
        memcpy(&eight, b->rising + i, sizeof eight);
        uint64_t sel = (eight >> pos) & ~(eight >> neg) & ones;
        if (n->hi - i < 8) /* the bytes past the node's chargers are others' */
            sel &= ~(UINT64_MAX << 8 * (n->hi - i));
        for (; sel; sel &= sel - 1)
            hit[frozen++] = (uint32_t)(i + (size_t)__builtin_ctzll(sel) / 8);
    }
    grp_run run = {SIZE_MAX, {0, 0, 0}};
    for (size_t q = 0; q < frozen; q++) {
        size_t k = b->dfs_ch[hit[q]];
        double dv;
        if (freeze_plan(b, k, t, (int)j, &dv))
            run_add(b, &run, &b->plan[k], dv);
    }
    run_flush(b, &run);
    grp_apply(b, 1);
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

/* v / w; most weights are 1, and v / 1 is exactly v without a division. */
static double per_weight(double v, double w)
{
    return w == 1 ? v : v / w;
}

/* The caps of fill_class are ordered lazily: those the level may reach next are sorted apart,
 * in ready[0, n), the others (the rest, unsorted, in list order) stay in caps[0, *n_rest), all
 * above them. When the ready ones are used up, moves the rest's caps at levels <= upto to ready,
 * sorted, drops the caps of frozen chargers (the level would pass over them) and returns the
 * lowest level left in the rest (INFINITY when none). Most chargers freeze at a full row long
 * before their cap: their caps are never sorted. Splitting by level keeps equal caps together
 * and the sort is stable, so caps come in the order one sort of them all gives. A cap holds the
 * charger's dfs_ch position, not its index: its rising byte tells whether it still rises without
 * reading its plan (a cache miss, as caps are in list order). */
static double caps_extend(pw_bal *b, bal_key *caps, size_t *n_rest, bal_key *ready, size_t *n,
                          double upto)
{
    size_t m = 0, left = 0;
    double low = INFINITY;
    for (size_t i = 0; i < *n_rest; i++) {
        if (!b->rising[caps[i].idx])
            continue;
        double c = bal__keyd(caps[i].key);
        if (c <= upto) {
            ready[m++] = caps[i];
        } else {
            caps[left++] = caps[i];
            low = c < low ? c : low;
        }
    }
    bal__sort(ready, b->tmp, m);
    *n_rest = left;
    *n = m;
    return low;
}

/* Progressive filling of one class: the level t rises, charger k holds max(floor, x + w t)
 * capped at hi, and whoever loads a row that fills up freezes. Events are the kinks of each
 * charger (its floor ends at (floor - x) / w, its cap at (hi - x) / w) and rows filling up.
 * The first fill starts everyone from their minimum (x = 0: shares grow in proportion to the
 * weights); a refill lets chargers below an imbalance limit rise together from where they are
 * (x = floor = their value). */
static void fill_class(pw_bal *b, const bal_key *list, size_t n, bool refill)
{
    /* list NULL: the class is every admitted charger (n = n_ch), taken in memory order, which
     * the cache fetches ahead, instead of the admission order's (a miss each). Only the order of
     * equal floors and caps differs, hence the order of some sums. */
    /* Floor ends and caps are sorted apart (caps only as far as the level gets, see caps_extend)
     * and merged as the level rises. Floor ends are usually all alike (the minimum over the
     * weight; 0 in a refill): the chargers whose floor ends where the first one's does (the bulk)
     * are summed by group here, where their plans are read anyway, and marked rising, which they
     * are from their first event on. That holds when no other floor ends before theirs; else they
     * go back to the floors. However few they are (a refill): every row is brought up to date at
     * the first event anyway (levels_reset). The groups are empty here: every event applies what
     * it sums. */
    bal_key *floors = b->events, *caps = b->events + b->n_ch;
    size_t nf = 0, nc = 0, active = 0, n_bulk = 0;
    uint64_t bulk = 0, other = UINT64_MAX; /* the bulk's floor end, the lowest other */
    double rest = INFINITY;                /* the lowest cap not yet sorted */
    for (size_t i = 0; i < n; i++) {
        size_t k = list ? list[i].idx : i;
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
        b->rising[pl->pos] = BAL_RISING | pl->mask;
        active++;
        uint64_t end = bal__dkey(per_weight(pl->floor - pl->x, pl->w));
        bulk = n_bulk ? bulk : end;
        if (end == bulk) {
            n_bulk++;
            grp_add(b, pl, pl->floor - pl->x);
            pl->st = ST_RISE;
        } else {
            floors[nf++] = (bal_key){end, (uint32_t)k};
            other = end < other ? end : other;
            pl->st = ST_FLOOR;
        }
        caps[nc++] = (bal_key){bal__dkey(per_weight(pl->hi - pl->x, pl->w)), pl->pos};
        double cap = bal__keyd(caps[nc - 1].key);
        rest = cap < rest ? cap : rest;
    }
    if (n_bulk && other < bulk) {
        for (size_t i = 0; i < n; i++) { /* the bulk is what rises so far */
            size_t k = list ? list[i].idx : i;
            bal_plan *pl = &b->plan[k];
            if (pl->st == ST_RISE) {
                pl->st = ST_FLOOR;
                floors[nf++] = (bal_key){bulk, (uint32_t)k}; /* after the others: stable sort */
            }
        }
        for (size_t i = 0; i < b->n_grp; i++)
            b->grp[b->grp_list[i]] = (bal_grp){0, 0, 0};
        b->n_grp = 0;
        n_bulk = 0;
    }
    bal__sort(floors, b->tmp, nf);
    levels_reset(b);
    bal_key *ready = b->tmp + b->n_ch; /* below it the sort's scratch */
    size_t ef = 0, ec = 0, nr = 0;     /* ready[ec, nr) are the caps next in order */
    double t = 0, t_bulk = n_bulk ? bal__keyd(bulk) : INFINITY;
    bool started = false; /* none rises before a floor ends */
    while (active > 0) {
        double t_row;
        int j = started ? next_full_row(b, t, &t_row) : -1;
        double tf = ef < nf ? bal__keyd(floors[ef].key) : INFINITY;
        tf = t_bulk < tf ? t_bulk : tf;
        double next = j >= 0 && t_row < tf ? t_row : tf;
        if (ec == nr && nc && next >= rest) { /* the rest may hold the next event */
            /* At least as far as the next event (levels are >= 0), so that no cap before it
             * stays in the rest; half as far again as the next row: most chargers still rise
             * after a row fills, so looking no further would pass over the rest at each row. */
            rest = caps_extend(b, caps, &nc, ready, &nr, 1.5 * (j >= 0 ? t_row : tf));
            ec = 0;
        }
        double tc = ec < nr ? bal__keyd(ready[ec].key) : INFINITY;
        double t_ev = tf < tc ? tf : tc;
        if (j >= 0 && t_row <= t_ev) {
            t = t_row;
            active -= freeze_row(b, (size_t)j, t);
            continue;
        }
        if (t_ev == INFINITY) { /* cannot happen: every active charger has a cap event left */
            for (size_t i = 0; i < n; i++)
                b->rising[b->plan[list ? list[i].idx : i].pos] = 0;
            break;
        }
        t = t_ev;
        /* At one level, floors end before caps are reached. When many start rising at once
         * (at the start everyone does), every row is brought up to date in one pass instead of
         * touching each; so too when it is anyway (before the first question). */
        bool bulk_now = t_bulk <= t_ev; /* its sums wait in the groups */
        t_bulk = bulk_now ? INFINITY : t_bulk;
        size_t ef_end = ef;
        while (ef_end < nf && bal__keyd(floors[ef_end].key) <= t_ev)
            ef_end++;
        bool many = (ef_end - ef) * 4 > b->n_rows || b->all_dirty;
        b->all_dirty = b->all_dirty || many || bulk_now;
        for (; ef < ef_end; ef++) {
            bal_plan *pl = &b->plan[floors[ef].idx];
            if (pl->st != ST_FLOOR)
                continue;
            if (many) { /* by group: every row is brought up to date anyway */
                grp_add(b, pl, pl->floor - pl->x);
                pl->st = ST_RISE;
            } else {
                start_rising(b, floors[ef].idx);
            }
        }
        grp_apply(b, -1);
        started = started || ef > 0 || bulk_now;
        for (; ec < nr && bal__keyd(ready[ec].key) <= t_ev; ec++) { /* by group, as rows do */
            size_t k = b->dfs_ch[ready[ec].idx];
            bal_plan *pl = &b->plan[k];
            double dv;
            if (pl->st == ST_FLOOR || pl->st == ST_RISE) {
                if (freeze_plan(b, k, t, -1, &dv))
                    grp_add(b, pl, dv);
                active--;
            }
        }
        grp_apply(b, 1);
    }
}

/* Raises charger k alone as far as its rows allow; returns by how much. */
static double raise_alone(pw_bal *b, size_t k)
{
    bal_plan *pl = &b->plan[k];
    if (pl->st != ST_FROZEN || pl->val >= pl->hi - 1e-9)
        return 0;
    /* The row that froze it is one of the path's below: most are still full, and then the walk
     * would find no room either. */
    if (pl->bind >= 0 && b->rows[pl->bind].cap - b->rows[pl->bind].a <= 1e-9)
        return 0;
    double room = pl->hi - pl->val;
    BAL_FOR_POS(b, BAL_GROUP(b, k, pl->mask), p)
    {
        /* The coefficient is 1: the room is the row's, with no division. */
        const bal_row *r = &b->rows[*p];
        double left = r->cap - r->a;
        room = left < room ? left : room;
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
        uint64_t last = class_last_key(list[from].key);
        size_t to = list[n - 1].key <= last ? n : from + 1; /* usually all in one class */
        while (to < n && list[to].key <= last)
            to++;
        if (from == 0 && to == n && !refill) /* one class: every admitted charger */
            fill_class(b, NULL, b->n_ch, false);
        else
            fill_class(b, list + from, to - from, refill);
        for (size_t j = 0; j < b->n_rows; j++) { /* drop rounding residue of the class */
            b->rows[j].b = 0;
            b->rows[j].npos = 0; /* already, unless the class stopped early (fill_class) */
        }
        from = to;
    }
}

/* One refill: the chargers stopped by an imbalance row rise together again. Returns by how
 * much they rose in all. */
static double refill(pw_bal *b, size_t n_imb)
{
    size_t n = 0;
    double before = 0, after = 0;
    for (size_t i = 0; i < n_imb; i++) { /* only they can be stopped by an imbalance row */
        const bal_plan *pl = &b->plan[b->imb[i].idx];
        if (pl->st == ST_FROZEN && imbalance_bound(b, pl)) {
            b->cand[n++] = b->imb[i];
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

/* Where passes start: x = val for the chargers below an imbalance limit (x, the water-filling's,
 * is free between refills, which set it again). */
static void mark_start(pw_bal *b, size_t n_imb)
{
    for (size_t i = 0; i < n_imb; i++) {
        bal_plan *pl = &b->plan[b->imb[i].idx];
        pl->x = pl->val;
    }
}

/* Whether group g loads row j. */
static bool loads_row(const pw_bal *b, size_t g, size_t j)
{
    BAL_FOR_POS(b, g, p)
    if (*p == j)
        return true;
    return false;
}

/* How far (in multiples of the move val - x) the chargers below an imbalance limit can go on
 * along the line of their last passes: to the first demand or row on the way (a full row admits
 * rounding, as fits does). *full is that row if it is full already, else -1. */
static double line_room(pw_bal *b, size_t n_imb, int *full)
{
    bal_row *rows = b->rows;
    double s = INFINITY;
    for (size_t i = 0; i < n_imb; i++) {
        size_t k = b->imb[i].idx;
        const bal_plan *pl = &b->plan[k];
        double d = pl->val - pl->x;
        if (!(d > 0))
            continue;
        size_t g = BAL_GROUP(b, k, pl->mask);
        BAL_FOR_POS(b, g, p)
        rows[*p].b += d;
        BAL_FOR_NEG(b, g, p)
        rows[*p].b -= d;
        double to_hi = (pl->hi - pl->val) / d;
        s = to_hi < s ? to_hi : s;
    }
    *full = -1;
    for (size_t j = 0; j < b->n_rows; j++) {
        const bal_row *r = &rows[j];
        if (r->b > 0 && (r->cap + BAL_EPS - r->a) / r->b < s) {
            s = (r->cap + BAL_EPS - r->a) / r->b;
            *full = r->cap - r->a <= BAL_EPS ? (int)j : -1;
        }
        rows[j].b = 0; /* as fill_classes leaves it */
    }
    return s > 0 ? s : 0;
}

/* Moves the chargers below an imbalance limit on along the line from where their last passes
 * started (x) to where they ended (val), as far as every row and every demand allow. Both ends
 * fit every row and the rows are linear, so every point on the line up to the first row that
 * fills does too: one step reaches what passes repeating the same move would reach in many.
 * Chargers at their demand leave the line, and so do those that load a row already full on it
 * (they moved into it): it would not let the others go on. */
static void extrapolate(pw_bal *b, size_t n_imb)
{
    for (size_t i = 0; i < n_imb; i++) {
        bal_plan *pl = &b->plan[b->imb[i].idx];
        if (pl->val >= pl->hi - BAL_EPS)
            pl->x = pl->val;
    }
    int full;
    double s = line_room(b, n_imb, &full);
    for (int round = 0; full >= 0 && round < 8; round++) {
        for (size_t i = 0; i < n_imb; i++) {
            size_t k = b->imb[i].idx;
            bal_plan *pl = &b->plan[k];
            if (pl->val > pl->x && loads_row(b, BAL_GROUP(b, k, pl->mask), (size_t)full))
                pl->x = pl->val;
        }
        s = line_room(b, n_imb, &full);
    }
    if (full >= 0 || s < 1 || s == INFINITY) /* passes reach as far: not worth a step */
        return;
    for (size_t i = 0; i < n_imb; i++) {
        size_t k = b->imb[i].idx;
        bal_plan *pl = &b->plan[k];
        if (!(pl->val > pl->x))
            continue;
        double v = pl->val + s * (pl->val - pl->x);
        v = v > pl->hi ? pl->hi : v;
        add_load(b, k, pl->mask, v - pl->val);
        pl->val = v;
        if (v >= pl->hi - BAL_EPS)
            pl->bind = -1;
    }
}

/* One pass over the chargers below an imbalance limit: a refill, or raising each alone. Returns
 * by how much they rose in all. */
static double leftover_pass(pw_bal *b, size_t n_imb, bool alone)
{
    if (!alone)
        return refill(b, n_imb);
    double moved = 0;
    for (size_t i = 0; i < n_imb; i++)
        moved += raise_alone(b, b->imb[i].idx);
    return moved;
}

/* With imbalance rows, freezing a charger at a line difference is premature when chargers on
 * the other line keep rising: the difference may shrink again. Two imbalance limits can block
 * two chargers in turn, so raising one at a time would crawl; instead the chargers stopped by an
 * imbalance row rise together again from where they are until nothing moves, and last passes
 * raise each alone. Refills too can crawl: chargers on different lines under two nested
 * imbalance limits free, at each step, exactly the room the next step uses, so that passes repeat
 * one move, or shrink it slowly. From the third pass on, the chargers therefore go on along the
 * line of each two passes as far as the rows allow (extrapolate): a crawl that repeats one move
 * ends in one step. (One that shrinks slowly mostly does not: its line runs into a full row.)
 * Line rows only fill up, so for everyone else water-filling left nothing to raise (the property
 * tests check exactly that). The n_imb chargers below an imbalance limit are in b->imb (admit). */
static void raise_leftovers(pw_bal *b, size_t n_imb)
{
    if (!b->has_imbalance)
        return;
    for (int alone = 0; alone < 2; alone++) {
        double still = alone ? 1e-7 : 1e-9; /* moved less: done */
        int passes = alone ? 64 : 100;
        for (int pass = 0; pass < passes; pass++) {
            bool jump = pass >= 2 && pass + 1 < passes;
            if (jump)
                mark_start(b, n_imb);
            if (leftover_pass(b, n_imb, alone) <= still)
                break;
            if (jump) {
                pass++;
                if (leftover_pass(b, n_imb, alone) <= still)
                    break;
                extrapolate(b, n_imb);
            }
        }
    }
}

void bal__allocate(pw_bal *b)
{
    size_t n_imb = admit(b);
    fill_classes(b, b->order, b->n_order, false);
    raise_leftovers(b, n_imb);
}
