/* Internal state of the balancer shared by its source files; not part of the public API. The
 * allocation is a set of linear constraint rows (one per node line, plus the pairwise line
 * differences of nodes with an imbalance limit) that the admission and water-filling passes fill.
 */
#ifndef PW_BAL_INT_H
#define PW_BAL_INT_H

#include "pw_bal.h"

#include <string.h>

#define BAL_EPS  1e-9
#define BAL_HIST 6 /* buckets of the stale-meter history, each meter_history_ms / BAL_HIST long */

/* The earliest level at which a row of a block of rows fills up, and that row. */
typedef struct bal_blk {
    double t;
    uint32_t row;
} bal_blk;

/* What a group of chargers with one node and line mask changes in their path rows at once: the
 * sum of their value changes, of their weights, and how many they are. */
typedef struct bal_grp {
    double dv, w;
    int n;
} bal_grp;

/* A sort key: ordered by key; idx rides along. */
typedef struct bal_key {
    uint64_t key;
    uint32_t idx;
} bal_key;

/* An admission order key (order_key in bal_run.c), high bits first: suspended (1 bit), priority
 * class rank (16 bits), rotation group (2 bits), time (BAL_KEY_TIME_BITS bits). */
#define BAL_KEY_TIME_BITS 45
#define BAL_KEY_CLS_SHIFT (BAL_KEY_TIME_BITS + 2)

/* Sorts a[0..n) by key, keeping the input order of equal keys (stable), using tmp[0..n) as
 * scratch; no allocation. */
void bal__sort(bal_key *a, bal_key *tmp, size_t n);
/* Maps a non-negative double to a key with the same order (inline: the water-filling makes two
 * per charger). Negative numbers and NaN map to 0's key. */
static inline uint64_t bal__dkey(double d)
{
    uint64_t k;
    if (!(d > 0))
        d = 0;
    memcpy(&k, &d, sizeof k);
    return k; /* non-negative IEEE doubles order like their bit patterns */
}

static inline double bal__keyd(uint64_t k)
{
    double d;
    memcpy(&d, &k, sizeof d);
    return d;
}

/* One constraint: load = a + b * level (during water-filling) must stay <= cap. A charger that
 * loads the grid lines in mask adds cm[mask] times its current. */
typedef struct bal_row {
    double cap;
    double base;    /* non-EV and silent-charger budget */
    double a, b;    /* current load, as a + b * level while chargers rise */
    double cls_top; /* load when the current priority class started admission */
    int node;
    int npos;                 /* rising chargers with a positive coefficient */
    int8_t cm[8];             /* coefficient per line mask */
    uint8_t line;             /* 1..3 for a line limit; 0 for an imbalance pair */
    uint8_t hi_line, lo_line; /* imbalance pair: load[hi_line] - load[lo_line] <= cap */
} bal_row;

typedef struct bal_hist {
    uint64_t id; /* bucket number: time / span */
    double max[PW_LINES];
    bool used;
} bal_hist;

typedef struct bal_node {
    pw_bal_node_spec spec;
    size_t name_len;    /* of its name as reasons show it (bal__node_name) */
    size_t lo, hi;      /* chargers below it are dfs_ch[lo..hi) */
    size_t row0, nrows; /* its constraint rows */
    bool has_meter;
    uint64_t meter_at;
    uint32_t meter_iv; /* time between its last two readings, at most its timeout */
    int slot; /* metered: its column in every charger's draw-at-reading table (bal_ch.at_meter),
                 the number of metered nodes above it; -1 unmetered */
    int mup;  /* the nearest metered node above it, -1 if none */
    double at_sum[PW_LINES]; /* metered: the sum of the at_meter columns of the chargers below */
    double meter_a[PW_LINES];
    bal_hist hist[BAL_HIST];
    /* per run */
    double meas_ev[PW_LINES];   /* metered: what online chargers below drew when it was read */
    uint32_t path_iv;           /* the longest meter interval of it and the metered nodes above */
    double fixed[PW_LINES];     /* budget of silent and faulty chargers below it */
    double sub[PW_LINES];       /* sum of the children's non-EV budgets */
    double own[PW_LINES];       /* non-EV load by its own meter (0 unmetered) */
    double non_ev[PW_LINES];    /* budgeted non-EV load */
    double in_flight[PW_LINES]; /* what chargers below may have dropped by following a pending
                                   cut before a reading, no status saying so yet */
    double non_ev_t[PW_LINES];  /* the non-EV budget raises rely on: with in_flight added, since
                                   such a drop hides in the reading as less non-EV load */
    double trans[PW_LINES];     /* load while cuts are still pending */
    bool stale;                 /* its own meter is stale */
    int stale_src;              /* node whose stale meter shaped this budget, -1 if none */
    int sub_stale;              /* a child's stale_src, -1 if none */
    /* Operator cap (pw_bal_set_node_cap): spec.limit_a is the limit in force, the smaller of
     * cfg_limit_a and op_cap_a (INFINITY when none). */
    double cfg_limit_a[PW_LINES], op_cap_a[PW_LINES];
} bal_node;

/* What one run decides for a charger. */
enum bal_st {
    ST_IDLE,   /* not wanting current (no car, fault, offline) */
    ST_PAUSED, /* wanting, minimum refused */
    ST_FLOOR,  /* admitted, held at its minimum while the level rises */
    ST_RISE,   /* admitted, rising with the level */
    ST_FROZEN, /* admitted, value final */
};

typedef struct bal_plan {
    /* What the allocation reads and writes, in the first 64 bytes: it visits chargers in
     * admission order, not in memory order. */
    double lo, hi, w, val; /* minimum, cap (demand), weight, value */
    double floor, x;       /* water-filling: held at floor, then rises as x + w * level */
    uint32_t node;         /* the charger's node (a copy of its spec's, set by pw_bal_new) */
    int cls;               /* its priority class rank (bal_ch.cls), next to what a run reads */
    uint8_t mask3, mask1;  /* lines loaded at the car's own phases / switched to 1 phase */
    uint8_t mask;          /* lines loaded at the chosen mode */
    uint8_t mode, tmode;   /* final / target phase mode: 1 or 3 */
    uint8_t st;
    bool susp, imb_path; /* imb_path: bal_ch.imb_path, next to what a run reads */
    uint32_t pos;        /* its place in pw_bal.dfs_ch */
    int bind;            /* row that froze it, -1 */
    int block;           /* row that refused its minimum, -1 */
    uint8_t pause;       /* enum pw_bal_reason: a byte, so that a plan fills 3 cache lines */
    bool want, trimmed, online, can1, can3;
    bool overdue;  /* online, but a status is overdue: its offer is held and budgeted in fixed */
    bool held;     /* a raise is held until cuts are seen */
    bool own_wait; /* held until its own pending cut is seen */
    bool in_order; /* in pw_bal.order as build_order last left it */
    bool eta;      /* bal__rotation_eta set its result's next_turn_ms this run */
    double target; /* value before the dynamic rules */
    double line[PW_LINES];  /* final load on grid lines */
    double pend[PW_LINES];  /* draw above the final plan while its cut is pending */
    double rpend[PW_LINES]; /* and the offer of a raise its car has not been seen acting on:
                               counted for the others' raises, not for its own */
    double fixed[PW_LINES]; /* silent or faulty: what it may still draw */
} bal_plan;

/* The charger spec fields a run reads, packed (ids and names are not needed after new). */
typedef struct bal_spec {
    double min_a, max_a, failsafe_a, weight;
    int node, priority;
    uint8_t wiring[PW_LINES];
    bool can_switch_phases;
    pw_bal_timing timing; /* resolved: no zero fields */
} bal_spec;

/* A reason decided: its code and every value its sentence shows. Every field is 8 bytes: decide
 * writes them one by one just before same_why reads them back, and a read that spans two
 * narrower writes (which a compiler makes of adjacent fields) waits for them to drain. */
typedef struct bal_why {
    int64_t code;      /* enum pw_bal_reason */
    int64_t row;       /* binding or blocking row, -1 */
    int64_t stale;     /* node whose stale meter is named, -1 */
    int64_t variant;   /* which sentence of the code */
    int64_t one_phase; /* 0 or 1 */
    int64_t x;         /* amperes shown, in tenths */
    int64_t y;         /* a car's draw, in tenths; 0 when none */
    uint64_t n;        /* seconds or minutes shown */
    int64_t cap; /* an operator's cap on the row's line in tenths of amperes, shown with it; -1 */
} bal_why;

/* What the balancer remembers about a charger between runs. What the prepare pass reads comes
 * first, what only the dynamic rules and the reasons read last: the prepare pass, which visits
 * every charger, then reads about 5 of its cache lines rather than all 8. */
typedef struct bal_ch {
    bal_spec spec;
    int cls;              /* priority class rank, 0 = highest */
    uint8_t wired;        /* grid lines of all wired terminals */
    uint8_t one;          /* grid lines loaded when switched to 1 phase */
    uint8_t car_lines[8]; /* grid lines loaded at full phases, by the terminals seen active */
    uint8_t car_terms;    /* terminals seen active this session */
    uint8_t mode;         /* 1 or 3 */
    bool has_meas;
    uint64_t meas_at;
    pw_bal_measure m;
    double meas_line[PW_LINES]; /* measured current per grid line */
    uint64_t mode_since;
    uint32_t switches; /* this session */
    bool have_prev;
    uint8_t prev_mode;
    bool susp_believed; /* its car's "suspended" was believed: held until it changes state */
    bool running, paused_by_us;
    bool op_paused; /* op_cap_a is below min_a (operator override, see cfg_max_a) */
    double prev_limit;
    double prev_line[PW_LINES];
    uint64_t offer_since; /* prev_limit unchanged since */
    uint64_t run_since, paused_at, waiting_since;
    double trim_cap; /* 0 = not trimmed */
    uint64_t trim_at;
    /* A cut whose freed room may not be seen yet: until then raises count the charger at what
     * it was last seen to draw, by its status and by every meter above it (with a slow meter
     * the non-EV load is only as new as the reading). After the reaction window plus one meter
     * interval the cut is taken as followed. */
    bool cut_pending;
    uint64_t cut_at, cut_until; /* the last cut; pending until cut_until */
    double low_line[PW_LINES];  /* the lowest offer per grid line while cuts pend */
    /* A raise its car may not have acted on yet: until a status measured after the reaction
     * window since the raise (or one showing the car drawing it) is in, the car may still rise
     * to the offer even once it is cut again, so a pending cut budgets it at that offer. Time
     * alone is not enough: the car may have followed at the end of the window with no status
     * saying so yet. */
    bool raise_unseen;
    uint64_t raise_at;           /* the last raise */
    double raise_line[PW_LINES]; /* the highest offer per grid line since the raise went unseen */
    /* When its statuses first showed the applied limit it reports now (m.applied_limit_a): once
     * the reaction window has passed since then, the car draws no more than that limit, whatever
     * its last status says. A status only follows a current change of about 1 A or more, so a
     * car that followed a small cut keeps reporting its old draw. */
    uint64_t limit_seen_at;
    /* What it drew per grid line when each metered node above it was last read, column by the
     * node's slot: never more than any status that may describe that moment reported, so that
     * meter minus chargers never under-estimates the non-EV load. n_slots x PW_LINES, in
     * pw_bal.at_meter. */
    double *at_meter;
    double at_max[PW_LINES]; /* the most any of those readings has it drawing */
    bool imb_path;           /* a node on its path has an imbalance limit */
    int metered; /* the nearest metered node at or above its node, -1 if none; the next ones
                    up follow bal_node.mup */
    bal_why why; /* reason of the last run, to write its sentence only when it changes */
    /* Operator override (pw_bal_set_override): spec.max_a and spec.priority are the ones in
     * force, cfg_max_a the config's maximum; op_cap_a INFINITY when none. */
    double cfg_max_a, op_cap_a;
    /* To 512 bytes (on a 64-bit build): each charger then starts at the same place in a cache
     * line, and the prepare pass reads the same 5 lines of each. Measured: 496 bytes without it
     * gained nothing; with it, about 1 % of a run. */
    uint8_t pad[16];
} bal_ch;
_Static_assert(sizeof(void *) != 8 || sizeof(bal_ch) == 512, "bal_ch: adjust its pad");

struct pw_bal {
    enum pw_grid grid;
    pw_bal_params p;
    size_t n_nodes, n_ch, n_rows, n_cls;
    bal_node *nodes;
    bal_ch *ch;
    double *at_meter;  /* n_ch x n_slots x PW_LINES, see bal_ch.at_meter */
    double *acc;       /* n_nodes x PW_LINES scratch for sums over subtrees */
    double *trans_acc; /* the same, for the transitional loads (finish in bal_run.c) */
    double *ev_acc;    /* the same, for the planned EV loads the node results show */
    size_t n_slots;    /* the most metered nodes on any path from a node to the root */
    bal_plan *plan;
    bal_row *rows;
    /* Per node and line mask (a group, g = node * 8 + mask), the rows of its path that the mask
     * loads (coefficient 1), then those it unloads (-1, imbalance rows), each in path order: the
     * node's own first, then up to the root. Runs walk a flat array of row numbers instead of the
     * tree, skip the rows a car's phases do not touch, and add or subtract without reading a
     * coefficient. Group g's rows are [path_at[g], path_neg[g]) and [path_neg[g], path_at[g + 1]).
     */
    uint32_t *path_rows;
    uint32_t *path_at;  /* n_nodes * 8 + 1 offsets */
    uint32_t *path_neg; /* n_nodes * 8: where the unloaded rows start */
    size_t *dfs_node;   /* nodes in depth-first preorder */
    uint32_t *dfs_ch;   /* chargers in the depth-first order of their nodes */
    uint8_t *rising;    /* by dfs_ch position: BAL_RISING and the charger's line mask while it is
                           ST_FLOOR or ST_RISE, else 0, so that a full row finds the chargers below
                           its node that it stops without reading every plan */
    bal_key *order;     /* admission order of the wanting chargers */
    size_t n_order;
    /* Scratch, each array used by one phase of a run at a time (pw_bal_run: prepare, allocate,
     * finish): */
    bal_key *events; /* prepare: admission keys by charger; water-filling: floor ends [0, n_ch),
                        caps [n_ch, 2 n_ch); finish: sort scratch of bal__rotation_eta */
    bal_key *tmp;    /* sort scratch */
    bal_key *cand;   /* admission: the paused chargers; a refill's chargers; finish: the held
                        raises release_raises may let go */
    bal_key *imb;    /* allocation: the wanting chargers below an imbalance limit, in admission
                        order; finish: the chargers settled after the pass */
    uint32_t *hits;  /* prepare: the chargers new to the order; water-filling: the chargers a full
                        row stops, by dfs_ch position; finish: the held raises, 1 by charger */
    /* Water-filling: the level at which each row fills up (row_t), and for blocks of about
     * sqrt(n_rows) rows their earliest (blk), so that the next row to fill is found without
     * scanning every row at every step: a changed row rescans its block, a query the blocks.
     * (Independent compares over two short arrays: faster than a tournament tree, whose levels
     * wait for each other.) */
    double *row_t;
    bal_blk *blk;
    bool *blk_dirty;
    size_t blk_size, n_blk;
    uint32_t *dirty; /* rows touched since row_t was last brought up to date */
    size_t n_dirty;
    bool all_dirty; /* every row may have changed: bring them all up to date */
    bool *is_dirty;
    /* Each row as reasons name it, written once by pw_bal_new: BAL_ROW_TXT_LEN bytes per row,
     * its name ("node 'Garage B' line L2", row_txt_len[j] bytes, no NUL), then from
     * PW_BAL_REASON_LEN on the most common sentence, "limited by " and the name, with a NUL. */
    char *row_txt;
    uint8_t *row_txt_len;
    /* Water-filling: chargers that start rising or freeze together are summed per node and line
     * mask (a group shares its path rows), then each group's path is walked once. By group
     * (n_nodes * 8): the sums and the count; grp_list holds the groups in use. */
    bal_grp *grp;
    uint32_t *grp_list;
    size_t n_grp;
    /* Admission (bal_alloc.c), per node: the most the wanting chargers below it can put on each
     * of its lines while minimums are admitted (adm_need: its own chargers' from the prepare
     * pass, then summed up the tree), and whether every line row from it up
     * to the root holds that beside its base (adm_safe). By row, for the reference only: the
     * load without the minimums admit_safe holds until admission ends (ref_a, see adm_add). */
    double *adm_need;
    bool *adm_safe;
    double *ref_a;
    pw_bal_result *res;
    pw_bal_node_result *nres;
    uint64_t deadline;
    bool has_imbalance;
    bool rotating; /* the last run paused a car for rotation */
    /* Tests only (bal_prop_test): no shortcuts (admit_safe checks every row, smallest_first),
     * every decision as the plain algorithm takes it, so that a run with them can be compared
     * with one without. */
    bool reference;
};

/* Admission of minimums in b->order, then weighted water-filling per class, then a pass that
 * raises anyone who can still be raised alone. Reads plan lo/hi/w/mask3/mask1/can1/can3 and the
 * rows' base; writes plan mode/mask/val/st/bind/block/pause and rows a. */
void bal__allocate(pw_bal *b);

/* In pw_bal.rising: the charger rises (its mask may be 0, a car seen on unwired terminals). */
#define BAL_RISING 0x80

/* Charger k's group at line mask m (pw_bal.path_rows). */
#define BAL_GROUP(b, k, m) ((size_t)(b)->plan[k].node * 8 + (m))

/* The rows group g loads (coefficient 1), in path order, as const uint32_t *p. */
#define BAL_FOR_POS(b, g, p)                                                                       \
    for (const uint32_t *p = (b)->path_rows + (b)->path_at[g],                                     \
                        *p##_end_ = (b)->path_rows + (b)->path_neg[g];                             \
         p < p##_end_; p++)

/* The rows group g unloads (coefficient -1), as const uint32_t *p. */
#define BAL_FOR_NEG(b, g, p)                                                                       \
    for (const uint32_t *p = (b)->path_rows + (b)->path_neg[g],                                    \
                        *p##_end_ = (b)->path_rows + (b)->path_at[(g) + 1];                        \
         p < p##_end_; p++)

/* The metered nodes on charger k's path, nearest first. */
#define BAL_FOR_PATH_METERS(b, k, n) for (int n = (b)->ch[k].metered; n >= 0; n = (b)->nodes[n].mup)

/* Human-readable name of a node / charger: its name, or its id when unnamed. */
const char *bal__node_name(const pw_bal *b, int n);

/* Bytes per row in pw_bal.row_txt: its name, then its "limited by" sentence. */
#define BAL_ROW_TXT_LEN (2 * PW_BAL_REASON_LEN)

/* Writes every row's name and "limited by" sentence into row_txt (after the rows are built). */
void bal__row_texts(pw_bal *b);

/* Fills the reason code and text of charger k's result (a car waiting for a turn: after
 * bal__rotation_eta). */
void bal__reason(pw_bal *b, size_t k, uint64_t now);

/* bal__reason for a charger that wants nothing and is heard on time (not offline or overdue):
 * the same, but the usual case, a reason kept from the last run, is known without deciding it. */
void bal__reason_idle(pw_bal *b, size_t k, uint64_t now);

/* A wanting car paused by rotation waits for a turn. The pause reason first: it is rarely
 * rotation, and it is an integer. */
static inline bool bal_waits_turn(const bal_plan *pl)
{
    return pl->pause == PW_REASON_PAUSED_ROTATION && pl->val <= 0 && !pl->held;
}

/* Fills next_turn_ms of the wanting cars that wait for a turn and marks them (bal_plan.eta); the
 * results of the others are zeroed when they are written. Live mode only, once every running
 * car's plan is final; a run where no car waits need not call it. */
void bal__rotation_eta(pw_bal *b, uint64_t now);

#endif
