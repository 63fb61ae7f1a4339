/* Reasons a person can read: each charger's result names the constraint that binds it ("limited
 * by node 'Garage B' line L2") or why it is paused, and when rotation will give it a turn. */
#include "bal_int.h"

#include <string.h>

/* A small text builder over PW_BAL_REASON_LEN bytes: reasons are written for every charger whose
 * reason changed, on every run, and printf with floating point would cost more than the
 * allocation itself. Output is truncated, never overrun; finish() ends it with a NUL. */
typedef struct text {
    char *p;
    size_t len;
} text;

static size_t room(const text *t)
{
    return PW_BAL_REASON_LEN - 1 - t->len;
}

static void put_n(text *t, const char *s, size_t n)
{
    size_t r = room(t);
    /* Copied in two branches so that, for a literal, the usual one copies a size known when
     * compiled (inline moves, not a call). */
    if (n <= r)
        memcpy(t->p + t->len, s, n);
    else
        memcpy(t->p + t->len, s, n = r);
    t->len += n;
}

/* A string literal, its length known when compiled. */
#define PUT(t, lit) put_n((t), "" lit, sizeof(lit) - 1)

static size_t digits(uint64_t v)
{
    size_t n = 1;
    for (; v >= 10; v /= 10)
        n++;
    return n;
}

/* Writes v in decimal, its last digit just before end; returns its first digit. */
static char *write_digits(char *end, uint64_t v)
{
    do
        *--end = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    return end;
}

/* Written in place, not copied from a scratch buffer, unless it would be cut. */
static void put_uint(text *t, uint64_t v)
{
    size_t n = digits(v);
    if (n <= room(t)) {
        write_digits(t->p + t->len + n, v);
        t->len += n;
        return;
    }
    char buf[20]; /* UINT64_MAX has 20 digits */
    const char *s = write_digits(buf + sizeof buf, v);
    put_n(t, s, (size_t)(buf + sizeof buf - s));
}

/* Amperes with one decimal ("10.7"), or none when whole ("16"). */
static void put_amps(text *t, double a)
{
    uint64_t tenths = (uint64_t)((a > 0 ? a : 0) * 10 + 0.5);
    put_uint(t, tenths / 10);
    if (tenths % 10) {
        char frac[2] = {'.', (char)('0' + tenths % 10)};
        put_n(t, frac, sizeof frac);
    }
}

/* Amperes given in tenths, v >= 0, as put_amps writes them. */
__attribute__((noinline)) static void put_tenths_any(text *t, uint64_t v)
{
    put_uint(t, v / 10);
    if (v % 10) {
        char frac[2] = {'.', (char)('0' + v % 10)};
        put_n(t, frac, sizeof frac);
    }
}

/* Amperes given in tenths (bal_why), as put_amps writes them. Inline: the usual case is a few
 * moves. */
static inline void put_tenths(text *t, int64_t tenths)
{
    uint64_t v = tenths > 0 ? (uint64_t)tenths : 0;
    if (v >= 1000 || room(t) < 4) {
        put_tenths_any(t, v);
        return;
    }
    /* The usual, under 100 A: written in place, at most "99.9" (the decimals are written in any
     * case, and counted only when not 0). */
    char *p = t->p + t->len;
    unsigned whole = (unsigned)v / 10, frac = (unsigned)v % 10;
    size_t n = whole >= 10;
    p[0] = (char)('0' + whole / 10); /* overwritten below when a single digit */
    p[n] = (char)('0' + whole % 10);
    p[n + 1] = '.';
    p[n + 2] = (char)('0' + frac);
    t->len += n + 1 + (frac ? 2 : 0);
}

static void put_line(text *t, unsigned line)
{
    char s[2] = {'L', (char)('0' + line)};
    put_n(t, s, sizeof s);
}

static void put_node(text *t, const pw_bal *b, int n)
{
    put_n(t, bal__node_name(b, n), b->nodes[n].name_len);
}

/* "node 'Garage B' line L2" or "node 'Garage B' imbalance limit (L1 over L3 by at most 20 A)". */
static void write_row(text *t, const pw_bal *b, int j)
{
    const bal_row *row = &b->rows[j];
    PUT(t, "node '");
    put_node(t, b, row->node);
    PUT(t, "' ");
    if (row->line) {
        PUT(t, "line ");
        put_line(t, row->line);
        return;
    }
    PUT(t, "imbalance limit (");
    put_line(t, row->hi_line);
    PUT(t, " over ");
    put_line(t, row->lo_line);
    PUT(t, " by at most ");
    put_amps(t, b->nodes[row->node].spec.max_imbalance_a); /* the row's cap in every run */
    PUT(t, " A)");
}

#define LIMITED_BY "limited by "

/* Row j's name, row_txt_len[j] bytes. */
static const char *row_name(const pw_bal *b, int j)
{
    return b->row_txt + (size_t)j * BAL_ROW_TXT_LEN;
}

/* The sentence "limited by <row j>", NUL-terminated in PW_BAL_REASON_LEN bytes. */
static const char *row_limited(const pw_bal *b, int j)
{
    return row_name(b, j) + PW_BAL_REASON_LEN;
}

static size_t row_limited_len(const pw_bal *b, int j)
{
    size_t n = sizeof LIMITED_BY - 1 + b->row_txt_len[j];
    return n < PW_BAL_REASON_LEN - 1 ? n : PW_BAL_REASON_LEN - 1;
}

void bal__row_texts(pw_bal *b)
{
    for (size_t j = 0; j < b->n_rows; j++) {
        char *name = b->row_txt + j * BAL_ROW_TXT_LEN;
        /* Cut, like a sentence, at PW_BAL_REASON_LEN - 1 characters: the most one can show. */
        text t = {name, 0};
        write_row(&t, b, (int)j);
        b->row_txt_len[j] = (uint8_t)t.len;
        text s = {name + PW_BAL_REASON_LEN, 0};
        PUT(&s, LIMITED_BY);
        put_n(&s, name, t.len);
        s.p[s.len] = '\0';
    }
}

/* With an operator's cap on the row's line, the cap: " (facility limit 40 A)". */
static void put_cap(text *t, const pw_bal *b, const bal_why *w)
{
    if (w->cap < 0)
        return;
    if (b->rows[w->row].node == 0)
        PUT(t, " (facility limit ");
    else
        PUT(t, " (operator limit ");
    put_tenths(t, w->cap);
    PUT(t, " A)");
}

/* The row of a reason by its name: half of the sentences name one, so it is written once
 * (bal__row_texts), then its cap if any. */
static void put_row(text *t, const pw_bal *b, const bal_why *w)
{
    put_n(t, row_name(b, w->row), b->row_txt_len[w->row]);
    put_cap(t, b, w);
}

/* Amperes as shown: in tenths, rounded as put_amps rounds them. */
static int64_t tenths(double a)
{
    return (int64_t)(a * 10 + 0.5);
}

/* An operator's cap in force on node n's line (1..3), in tenths of amperes; -1 if none. */
static int64_t line_cap(const bal_node *n, unsigned line)
{
    size_t l = line - 1u;
    return n->op_cap_a[l] < n->cfg_limit_a[l] ? tenths(n->op_cap_a[l]) : -1;
}

/* An operator's cap in force on row j's line, in tenths of amperes; -1 if none (or not a line
 * row). */
static int64_t row_cap(const pw_bal *b, int j)
{
    if (j < 0 || !b->rows[j].line)
        return -1;
    return line_cap(&b->nodes[b->rows[j].node], b->rows[j].line);
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
    BAL_FOR_POS(b, BAL_GROUP(b, k, pl->mask), p)
    {
        const bal_row *r = &b->rows[*p];
        if (r->cap - r->a <= tight)
            return (int)*p;
    }
    return -1;
}

static double largest(const double a[PW_LINES])
{
    double m = 0;
    for (size_t l = 0; l < PW_LINES; l++)
        m = a[l] > m ? a[l] : m;
    return m;
}

/* What bounds the target of a running charger: its own demand (its maximum, or its draw plus
 * headroom when trimmed) or a full row. */
static void decide_bound(const pw_bal *b, size_t k, bal_why *w, double *x, double *y)
{
    const bal_plan *pl = &b->plan[k];
    if (pl->target >= pl->hi - 1e-6) {
        const bal_ch *c = &b->ch[k];
        *x = pl->hi;
        if (pl->trimmed) {
            w->code = PW_REASON_CAR_DRAW;
            /* The draw the trim was made for (it follows the draw down by whole amperes), so
             * that the sentence does not change with every small move of the current. */
            *y = b->p.oneshot ? largest(c->m.current_a) : c->trim_cap - b->p.trim_headroom_a;
            w->variant = pl->hi <= pl->lo + 1e-6; /* trimmed to the minimum */
        } else {
            w->code = PW_REASON_MAX;
            w->variant = c->op_cap_a < c->cfg_max_a; /* the operator's maximum */
        }
    } else if ((w->row = binding_row(b, k)) < 0) {
        w->code = PW_REASON_NODE_LIMIT; /* only a hysteresis hold leaves room unused */
        w->variant = 1;
        *x = pl->val;
    } else {
        const bal_row *row = &b->rows[w->row];
        if (!row->line) {
            w->code = PW_REASON_IMBALANCE;
            return;
        }
        const bal_node *n = &b->nodes[row->node];
        w->stale = n->stale_src;
        w->code = w->stale >= 0 ? PW_REASON_METER_STALE : PW_REASON_NODE_LIMIT;
        w->cap = line_cap(n, row->line);
    }
}

/* The reason of a charger that wants current: prepare_charger sets want only for one online, on
 * time, without a fault, with a car and not paused by the operator. */
static void decide_wanting(const pw_bal *b, size_t k, uint64_t now, bal_why *w)
{
    const bal_plan *pl = &b->plan[k];
    double x = 0, y = 0; /* amperes shown */
    if (pl->held) {
        w->code = PW_REASON_WAITING_CUTS;
        w->variant = pl->own_wait ? 2 : pl->val > 0;
        x = pl->target;
    } else if (pl->val <= 0) {
        uint64_t turn = b->res[k].next_turn_ms;
        w->row = pl->block;
        w->cap = row_cap(b, w->row);
        w->code = pl->susp ? PW_REASON_SUSPENDED : pl->pause;
        w->variant = pl->susp ? 0 : turn > now;
        x = pl->lo;
        w->n = turn > now ? (turn - now + 59999) / 60000 : 0;
    } else if (pl->susp) {
        w->code = PW_REASON_SUSPENDED;
        w->variant = 1;
        x = pl->lo;
    } else {
        /* A raise to the charger's own limit is never held back by the hysteresis
         * (dynamics_one in bal_run.c), so a charger bound by its own demand is at it. */
        decide_bound(b, k, w, &x, &y);
    }
    w->one_phase = (pl->val > 0) & (pl->mode == 1);
    /* Amperes are shown to a tenth: a change below that is no new sentence. (A draw of 0 or
     * less shows as 0 either way.) */
    w->x = tenths(x);
    w->y = y > 0 ? tenths(y) : 0;
}

/* The reason of a charger that wants nothing and is heard on time: a code, and a sentence that
 * shows nothing else. */
static enum pw_bal_reason idle_code(const bal_ch *c)
{
    if (c->m.car == PW_CAR_FAULT)
        return PW_REASON_FAULT;
    return c->op_paused ? PW_REASON_PAUSED_OPERATOR : PW_REASON_NO_CAR;
}

/* Decides the reason of charger k into *w: the code and everything its sentence shows. */
static void decide(const pw_bal *b, size_t k, uint64_t now, bal_why *w)
{
    const bal_plan *pl = &b->plan[k];
    *w = (bal_why){.row = -1, .stale = -1, .cap = -1};
    if (pl->want) {
        decide_wanting(b, k, now, w);
        return;
    }
    const bal_ch *c = &b->ch[k];
    if (!pl->online || pl->overdue) {
        w->code = PW_REASON_OFFLINE;
        w->variant = pl->overdue ? 2 : c->has_meas;
        w->n = c->has_meas ? (now > c->meas_at ? now - c->meas_at : 0) / 1000 : 0;
        w->x = tenths(largest(pl->fixed));
        w->y = pl->overdue && c->prev_limit > 0 ? tenths(c->prev_limit) : 0;
    } else {
        w->code = idle_code(c);
    }
}

/* Field by field, as decide wrote them: a memcmp reads 16 or 32 bytes at once, and a read that
 * spans several stores just made waits for them to drain. */
static bool same_why(const bal_why *x, const bal_why *y)
{
    return (x->code == y->code) & (x->row == y->row) & (x->stale == y->stale) &
           (x->variant == y->variant) & (x->one_phase == y->one_phase) & (x->x == y->x) &
           (x->y == y->y) & (x->n == y->n) & (x->cap == y->cap);
}

/* Ends a sentence: ", on 1 phase" for a car switched to one, then the NUL. */
static void finish(text *t, const bal_why *w)
{
    if (w->one_phase)
        PUT(t, ", on 1 phase");
    t->p[t->len] = '\0';
}

/* A car paused for want of room, or one that paused itself and has none for its minimum. */
static void render_paused(const pw_bal *b, const bal_why *w, char *out)
{
    text t = {out, 0};
    switch (w->code) {
    case PW_REASON_SUSPENDED:
        PUT(&t, "car paused itself; no room at ");
        put_row(&t, b, w);
        PUT(&t, " to hold its minimum ");
        put_tenths(&t, w->x);
        PUT(&t, " A");
        break;
    case PW_REASON_PAUSED_PRIORITY:
        PUT(&t, "paused: higher-priority cars use ");
        put_row(&t, b, w);
        break;
    case PW_REASON_PAUSED_ROTATION:
        if (w->variant) {
            PUT(&t, "paused: rotation, next turn in ~");
            put_uint(&t, w->n);
            PUT(&t, " min (");
            put_row(&t, b, w);
            PUT(&t, " is full)");
        } else {
            PUT(&t, "paused: rotation, minimums do not all fit at ");
            put_row(&t, b, w);
        }
        break;
    default:
        PUT(&t, "paused: ");
        put_row(&t, b, w);
        PUT(&t, " has no room for the minimum ");
        put_tenths(&t, w->x);
        PUT(&t, " A");
        break;
    }
    finish(&t, w);
}

/* A car that paused itself, its minimum held: "car paused itself; holding the minimum 6 A so it
 * can resume". */
static void render_holding(const bal_why *w, char *out)
{
    text t = {out, 0};
    PUT(&t, "car paused itself; holding the minimum ");
    put_tenths(&t, w->x);
    PUT(&t, " A so it can resume");
    finish(&t, w);
}

/* A charger that wants nothing: "no car connected", "paused by operator", "charger reports a
 * fault". */
static void render_idle(const pw_bal *b, const bal_why *w, char *out)
{
    (void)b; /* the signature of the table (render) */
    text t = {out, 0};
    if (w->code == PW_REASON_FAULT)
        PUT(&t, "charger reports a fault");
    else if (w->code == PW_REASON_PAUSED_OPERATOR)
        PUT(&t, "paused by operator");
    else
        PUT(&t, "no car connected");
    finish(&t, w);
}

/* A start or raise held until cuts are seen. */
static void render_waiting(const pw_bal *b, const bal_why *w, char *out)
{
    (void)b; /* the signature of the table (render) */
    text t = {out, 0};
    if (!w->variant) {
        PUT(&t, "starts once other chargers have followed their cuts");
    } else {
        PUT(&t, "raise to ");
        put_tenths(&t, w->x);
        if (w->variant == 2)
            PUT(&t, " A waits until the car has followed its last cut");
        else
            PUT(&t, " A waits until other chargers follow cuts");
    }
    finish(&t, w);
}

/* A charger bound by its own demand: the charger's maximum, or a car drawing less than offered
 * (its draw and the trimmed offer). */
static void render_own_limit(const pw_bal *b, const bal_why *w, char *out)
{
    (void)b; /* the signature of the table (render) */
    text t = {out, 0};
    if (w->code == PW_REASON_MAX) {
        if (w->variant)
            PUT(&t, "at the operator's maximum ");
        else
            PUT(&t, "at the charger's maximum ");
        put_tenths(&t, w->x);
    } else {
        PUT(&t, "car draws ");
        put_tenths(&t, w->y);
        PUT(&t, " A, less than offered: offer trimmed to ");
        if (w->variant)
            PUT(&t, "its minimum ");
        put_tenths(&t, w->x);
    }
    PUT(&t, " A");
    finish(&t, w);
}

/* "charger silent for 42 s: budgeted at 6 A", "no status for 42 s: offer 16 A held, budgeted at
 * 6 A" or "charger not heard from yet: budgeted at 6 A". */
static void render_offline(const pw_bal *b, const bal_why *w, char *out)
{
    (void)b; /* the signature of the table (render) */
    text t = {out, 0};
    if (!w->variant) {
        PUT(&t, "charger not heard from yet: budgeted at ");
    } else {
        if (w->variant == 2)
            PUT(&t, "no status for ");
        else
            PUT(&t, "charger silent for ");
        put_uint(&t, w->n);
        PUT(&t, " s");
        if (w->variant == 2) {
            PUT(&t, ": offer ");
            put_tenths(&t, w->y);
            PUT(&t, " A held, budgeted at ");
        } else {
            PUT(&t, ": budgeted at ");
        }
    }
    put_tenths(&t, w->x);
    PUT(&t, " A");
    finish(&t, w);
}

/* A raise too small to send, or "limited by <row>" and more: its cap, its stale meter. Out of
 * line, so that the usual path of render_limited saves no registers. */
__attribute__((noinline)) static void render_limited_more(const pw_bal *b, const bal_why *w,
                                                          char *out)
{
    text t = {out, 0};
    if (w->variant) {
        PUT(&t, "kept at ");
        put_tenths(&t, w->x);
        PUT(&t, " A: a raise under ");
        put_amps(&t, b->p.hysteresis_a);
        PUT(&t, " A is not sent");
    } else {
        put_n(&t, row_limited(b, w->row), row_limited_len(b, w->row));
        put_cap(&t, b, w);
        if (w->stale >= 0) {
            PUT(&t, "; meter '");
            put_node(&t, b, w->stale);
            PUT(&t, "' stale: conservative budget");
        }
    }
    finish(&t, w);
}

/* A charger bound by a row: "limited by <row>", written once per row (bal__row_texts) and copied
 * whole with its NUL. */
static void render_limited(const pw_bal *b, const bal_why *w, char *out)
{
    if (w->variant || w->cap >= 0 || w->stale >= 0 || w->one_phase)
        render_limited_more(b, w, out);
    else
        memcpy(out, row_limited(b, w->row), PW_BAL_REASON_LEN);
}

/* A car that paused itself: holding its minimum, or no room for it. */
static void render_suspended(const pw_bal *b, const bal_why *w, char *out)
{
    if (w->variant)
        render_holding(w, out);
    else
        render_paused(b, w, out);
}

/* The sentence writer of each code (every code has one). Called through the table, out of line:
 * most chargers keep their sentence, and the run's path for them stays short. */
static void (*const render[PW_REASON_COUNT])(const pw_bal *b, const bal_why *w, char *out) = {
    [PW_REASON_NO_CAR] = render_idle,
    [PW_REASON_MAX] = render_own_limit,
    [PW_REASON_NODE_LIMIT] = render_limited,
    [PW_REASON_IMBALANCE] = render_limited,
    [PW_REASON_CAR_DRAW] = render_own_limit,
    [PW_REASON_PAUSED_PRIORITY] = render_paused,
    [PW_REASON_PAUSED_ROTATION] = render_paused,
    [PW_REASON_PAUSED_NO_ROOM] = render_paused,
    [PW_REASON_WAITING_CUTS] = render_waiting,
    [PW_REASON_METER_STALE] = render_limited,
    [PW_REASON_OFFLINE] = render_offline,
    [PW_REASON_FAULT] = render_idle,
    [PW_REASON_SUSPENDED] = render_suspended,
    [PW_REASON_PAUSED_OPERATOR] = render_idle,
};

void bal__reason(pw_bal *b, size_t k, uint64_t now)
{
    pw_bal_result *r = &b->res[k];
    bal_ch *c = &b->ch[k];
    bal_why w;
    decide(b, k, now, &w);
    r->reason = w.code;
    r->bind_node = w.row >= 0 ? b->rows[w.row].node : -1;
    r->bind_line = w.row >= 0 ? b->rows[w.row].line : 0;
    /* Most chargers keep their reason from run to run: write the sentence only when it changes
     * (every sentence has a character: an empty text has not been written yet). */
    if (r->reason_text[0] && same_why(&w, &c->why))
        return;
    c->why = w; /* kept first and written from: the call is the last thing done */
    render[w.code](b, &c->why, r->reason_text);
}

void bal__reason_idle(pw_bal *b, size_t k, uint64_t now)
{
    /* Its last reason is kept whole (its code is one only idle_code gives, whose sentence shows
     * nothing else), and so are its result's code and binding: nothing to decide. */
    if (b->res[k].reason_text[0] && b->ch[k].why.code == idle_code(&b->ch[k]))
        return;
    bal__reason(b, k, now);
}

/* Puts the m smallest keys of a[0..n) first, in ascending order (m <= n); the rest are left in
 * any order. For a few waiting cars among many running ones: a pass, not a sort of them all. */
static void smallest_first(bal_key *a, size_t n, size_t m)
{
    for (size_t i = 1; i < n; i++) {
        if (i >= m && a[i].key >= a[m - 1].key)
            continue;
        bal_key v = a[i];
        size_t j = i < m ? i : m - 1;
        if (i >= m)
            a[i] = a[m - 1]; /* the largest of the first m drops out */
        for (; j > 0 && v.key < a[j - 1].key; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

/* Estimated resume time of cars paused by rotation: the running cars of the class leave in the
 * order their minimum run ends, one turn per car, and a car just paused waits its minimum pause. */
void bal__rotation_eta(pw_bal *b, uint64_t now)
{
    for (size_t from = 0; from < b->n_order;) {
        size_t to = from;
        /* A class and whether suspended, as the order key holds them (bal_int.h). */
        uint64_t cls = b->order[from].key >> BAL_KEY_CLS_SHIFT;
        size_t running = 0, waiting = 0;
        bal_key *wait = b->tmp + b->n_ch; /* the class's waiting cars, in admission order; the
                                             running ones take tmp[0, n_ch) */
        for (; to < b->n_order && b->order[to].key >> BAL_KEY_CLS_SHIFT == cls; to++)
            if (bal_waits_turn(&b->plan[b->order[to].idx]))
                wait[waiting++] = b->order[to];
        if (!waiting) { /* nobody of the class waits for a turn */
            from = to;
            continue;
        }
        for (size_t i = from; i < to; i++) {
            size_t k = b->order[i].idx;
            const bal_ch *c = &b->ch[k];
            if (b->plan[k].val <= 0)
                continue;
            uint64_t end = (c->running ? c->run_since : now) + b->p.min_run_ms;
            b->tmp[running++] = (bal_key){end > now ? end : now, (uint32_t)k};
        }
        /* Turns go to the running cars by their ends, so only the first `waiting` of them are
         * read. */
        if (waiting < running && waiting <= 32 && !b->reference)
            smallest_first(b->tmp, running, waiting);
        else
            bal__sort(b->tmp, b->events, running);
        for (size_t p = 0; p < waiting && running; p++) {
            size_t k = wait[p].idx;
            const bal_ch *c = &b->ch[k];
            uint64_t eta = b->tmp[p % running].key + (p / running) * (uint64_t)b->p.min_run_ms;
            uint64_t guard = c->running        ? now + b->p.min_pause_ms
                             : c->paused_by_us ? c->paused_at + b->p.min_pause_ms
                                               : 0;
            b->res[k].next_turn_ms = eta > guard ? eta : guard;
            b->plan[k].eta = true;
        }
        from = to;
    }
}
