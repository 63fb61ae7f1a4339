/* The fleet uplink's 15-minute aggregates: per charger the energy its register counted and the
 * mean and peak of its highest terminal current, per metered node the mean and peak load of each
 * line; from the same per-tick values the history records. Pure: time comes in as wall. */
#include "uplink_agg.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pw_util.h"

#define NO_WH UINT64_MAX

typedef struct acc_charger {
    char id[32], name[64];
    uint32_t n;
    double sum_a, peak_a;
    uint64_t reg_first, reg_last; /* this quarter's first and last reading, NO_WH if none */
    uint64_t reg_base;            /* the last reading of the quarter before, NO_WH if none */
} acc_charger;

typedef struct acc_node {
    char id[32], name[64];
    uint32_t n;
    double sum[3], peak[3];
} acc_node;

struct pw_uplink_agg {
    int64_t quarter; /* start of the quarter being collected; -1 before the first sample */
    int64_t last_wall;
    bool complete; /* collecting since the quarter began (the one before was collected too) */
    uint32_t ticks;
    acc_charger *ch;
    size_t n_ch;
    acc_node *nd;
    size_t n_nd;
};

pw_uplink_agg *pw_uplink_agg_new(void)
{
    pw_uplink_agg *a = pw_xcalloc(1, sizeof *a);
    a->quarter = -1;
    return a;
}

void pw_uplink_agg_free(pw_uplink_agg *a)
{
    if (!a)
        return;
    free(a->ch);
    free(a->nd);
    free(a);
}

void pw_uplink_rfc3339(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms - (int64_t)s * 1000));
}

/* Finds the entry with id in an array of items of item_size whose first member is the id, at
 * hint first (the config's index: the usual case), appending a zeroed one if there is none
 * (*created says so). */
static void *find(void **items, size_t *n, size_t item_size, size_t hint, const char *id,
                  bool *created)
{
    *created = false;
    char *base = *items;
    if (hint < *n && strcmp(base + hint * item_size, id) == 0)
        return base + hint * item_size;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(base + i * item_size, id) == 0)
            return base + i * item_size;
    *items = base = pw_xrealloc(base, (*n + 1) * item_size);
    char *item = base + (*n)++ * item_size;
    memset(item, 0, item_size);
    *created = true;
    pw_strlcpy(item, id, 32);
    return item;
}

static double round2(double a)
{
    return round(a * 100.0) / 100.0;
}

static json_t *charger_json(const acc_charger *c)
{
    uint64_t base = c->reg_base != NO_WH ? c->reg_base : c->reg_first;
    json_t *energy = c->reg_last != NO_WH && base != NO_WH && c->reg_last >= base
                         ? json_integer((json_int_t)(c->reg_last - base))
                         : json_null(); /* no register, or it went backwards (a new charger) */
    return json_pack("{s:s, s:s, s:o, s:f, s:f, s:i}", "id", c->id, "name", c->name, "energy_wh",
                     energy, "mean_a", round2(c->sum_a / c->n), "peak_a", round2(c->peak_a),
                     "samples", (int)c->n);
}

static json_t *node_json(const acc_node *nd)
{
    json_t *mean = json_array(), *peak = json_array();
    for (int l = 0; l < 3; l++) {
        json_array_append_new(mean, json_real(round2(nd->sum[l] / nd->n)));
        json_array_append_new(peak, json_real(round2(nd->peak[l])));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:i}", "id", nd->id, "name", nd->name, "mean_a", mean,
                     "peak_a", peak, "samples", (int)nd->n);
}

/* The ended quarter as JSON text; then every accumulator starts over, a charger's last reading
 * becoming the base of its next quarter's energy. */
static char *close_quarter(pw_uplink_agg *a)
{
    char from[32], to[32];
    pw_uplink_rfc3339(a->quarter, from);
    pw_uplink_rfc3339(a->quarter + PW_UPLINK_QUARTER_MS, to);
    json_t *chargers = json_array(), *nodes = json_array();
    for (size_t i = 0; i < a->n_ch; i++) {
        acc_charger *c = &a->ch[i];
        if (c->n)
            json_array_append_new(chargers, charger_json(c));
        c->reg_base = c->reg_last != NO_WH ? c->reg_last : c->reg_base;
        c->reg_first = c->reg_last = NO_WH;
        c->n = 0;
        c->sum_a = c->peak_a = 0;
    }
    for (size_t i = 0; i < a->n_nd; i++) {
        acc_node *nd = &a->nd[i];
        if (nd->n)
            json_array_append_new(nodes, node_json(nd));
        memset(nd->sum, 0, sizeof nd->sum);
        memset(nd->peak, 0, sizeof nd->peak);
        nd->n = 0;
    }
    json_t *doc =
        json_pack("{s:s, s:s, s:b, s:i, s:o, s:o}", "from", from, "to", to, "complete", a->complete,
                  "samples", (int)a->ticks, "chargers", chargers, "nodes", nodes);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(doc);
    return text;
}

static void add_charger(pw_uplink_agg *a, size_t i, const pw_uplink_agg_charger *in)
{
    bool created;
    acc_charger *c = find((void **)&a->ch, &a->n_ch, sizeof *c, i, in->id, &created);
    if (created)
        c->reg_first = c->reg_last = c->reg_base = NO_WH;
    pw_strlcpy(c->name, in->name ? in->name : "", sizeof c->name);
    double top = 0;
    for (int t = 0; t < 3; t++)
        if (isfinite(in->current_a[t]) && in->current_a[t] > top)
            top = in->current_a[t];
    c->sum_a += top;
    if (top > c->peak_a)
        c->peak_a = top;
    c->n++;
    if (in->energy_wh != NO_WH) {
        if (c->reg_first == NO_WH)
            c->reg_first = in->energy_wh;
        c->reg_last = in->energy_wh;
    }
}

static void add_node(pw_uplink_agg *a, size_t i, const pw_uplink_agg_node *in)
{
    bool created;
    acc_node *nd = find((void **)&a->nd, &a->n_nd, sizeof *nd, i, in->id, &created);
    pw_strlcpy(nd->name, in->name ? in->name : "", sizeof nd->name);
    for (int l = 0; l < 3; l++) {
        double v = isfinite(in->line_a[l]) ? in->line_a[l] : 0;
        nd->sum[l] += v;
        if (v > nd->peak[l])
            nd->peak[l] = v;
    }
    nd->n++;
}

char *pw_uplink_agg_sample(pw_uplink_agg *a, int64_t wall, const pw_uplink_agg_charger *chargers,
                           size_t n_chargers, const pw_uplink_agg_node *nodes, size_t n_nodes,
                           int64_t *quarter_ms)
{
    if (a->quarter >= 0 && wall < a->last_wall)
        return NULL; /* the clock stepped back: keep the quarter as it is */
    int64_t quarter =
        wall - ((wall % PW_UPLINK_QUARTER_MS) + PW_UPLINK_QUARTER_MS) % PW_UPLINK_QUARTER_MS;
    char *ended = NULL;
    if (a->quarter >= 0 && quarter > a->quarter) {
        ended = close_quarter(a);
        *quarter_ms = a->quarter;
        bool next = quarter == a->quarter + PW_UPLINK_QUARTER_MS;
        a->complete = next;
        if (!next) /* a gap of whole quarters: the last reading is no base any more */
            for (size_t i = 0; i < a->n_ch; i++)
                a->ch[i].reg_base = NO_WH;
        a->ticks = 0;
    }
    if (a->quarter < 0 || quarter > a->quarter)
        a->quarter = quarter;
    a->last_wall = wall;
    a->ticks++;
    for (size_t i = 0; i < n_chargers; i++)
        if (chargers[i].has_report)
            add_charger(a, i, &chargers[i]);
    for (size_t i = 0; i < n_nodes; i++)
        if (nodes[i].has_reading)
            add_node(a, i, &nodes[i]);
    return ended;
}
