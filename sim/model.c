/* The simulated facility: chargers, cars, building load and ground truth, advanced in steps of at
 * most one second and at every event. Everything random is drawn when a simulated day is
 * generated, from a generator seeded by (seed, day), so the trace does not depend on how often
 * the caller steps between events. */
#include "pw_simmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define HOUR_MS       3600000.0
#define STEP_MS       1000u /* longest internal step: energy and taper are integrated per step */
#define FOLLOW_QUEUE  8     /* offer changes a car has seen but not yet acted on */
#define IEC_MIN_A     6.0   /* IEC 61851: no offer below this */
#define TAPER_SOC     0.8   /* cars taper above this state of charge */
#define TAPER_FLOOR   0.15  /* share of the car's max it still draws just before full */
#define PEAKS_PER_DAY 6
#define PEAK_RAMP_MS  60000.0 /* appliance peaks ramp up and down over a minute */
#define NO_EPISODE    UINT64_MAX

/* ---- deterministic randomness ---------------------------------------------------------------- */

/* splitmix64: a good 64-bit mixer, used both as hash and to seed the generator. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void pw_sim_rng_seed(pw_sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed = mix64(seed);
        r->s[i] = seed;
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
uint64_t pw_sim_rng_next(pw_sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double pw_sim_rng_unit(pw_sim_rng *r)
{
    return (double)(pw_sim_rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_range(pw_sim_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * pw_sim_rng_unit(r);
}

/* Normal(mean, sd) clamped to [lo, hi] (Box-Muller). */
static double rng_normal(pw_sim_rng *r, double mean, double sd, double lo, double hi)
{
    double u1 = 1.0 - pw_sim_rng_unit(r);
    double u2 = pw_sim_rng_unit(r);
    double v = mean + sd * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    return v < lo ? lo : v > hi ? hi : v;
}

/* Uniform in [-1, 1) from a hash of the key: noise that depends only on where and when. */
static double hash_noise(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix64(seed ^ mix64(a ^ mix64(b ^ mix64(c))));
    return (double)(h >> 11) * 0x1.0p-52 - 1.0;
}

/* ---- state ----------------------------------------------------------------------------------- */

typedef struct follow_step {
    uint64_t at_ms;
    double offered_a;
    uint8_t phases;
} follow_step;

typedef struct sim_car {
    pw_sim_car_view v;
    uint32_t pref;   /* picks among the free chargers at arrival */
    double follow_a; /* the offer the car acts on (seen follow_ms ago) */
    uint8_t follow_phases;
    follow_step queue[FOLLOW_QUEUE];
    unsigned queued;
    bool charging;
} sim_car;

typedef struct sim_charger {
    pw_bal_charger_spec spec;
    double offered_a;
    uint8_t phases;
    enum pw_sim_lease lease;
    uint64_t lease_until_ms;
    uint32_t alloc_seq;
    int car;
    double energy_wh;
    uint32_t session_id;
    double current_a[PW_LINES];
    double line_a[PW_LINES];
    double power_w;
} sim_charger;

typedef struct sim_node {
    pw_bal_node_spec spec;
    double own_peak_a; /* this node's own building load at the profile's peak */
    double line_factor[PW_LINES];
    double own_base_a[PW_LINES];
    pw_sim_node_view v;
    uint64_t episode_start[PW_LINES];
} sim_node;

/* A short appliance load on one node, on one line or all three. */
typedef struct sim_peak {
    size_t node;
    uint8_t line_mask;
    uint64_t start_ms, end_ms;
    double amp_a;
} sim_peak;

struct pw_sim {
    pw_sim_params p;
    enum pw_grid grid;
    sim_node *nodes;
    size_t n_nodes;
    sim_charger *chargers;
    size_t n_chargers;
    sim_car *cars;
    size_t n_cars, cap_cars, next_arrival;
    sim_peak *peaks;
    size_t n_peaks, cap_peaks;
    int64_t next_day;  /* first simulated day not generated yet */
    int64_t offset_ms; /* time of day at t = 0 */
    uint64_t now;
    uint32_t sessions;
    size_t *free_list; /* scratch for arrivals, n_chargers */
};

/* ---- names and parameters -------------------------------------------------------------------- */

static const char *const pattern_names[] = {"uniform", "evening", "office"};

int pw_sim_pattern_parse(const char *text, enum pw_sim_pattern *out)
{
    for (size_t i = 0; i < PW_ARRAY_LEN(pattern_names); i++) {
        if (strcmp(text, pattern_names[i]) == 0) {
            *out = (enum pw_sim_pattern)i;
            return 0;
        }
    }
    return -1;
}

const char *pw_sim_pattern_name(enum pw_sim_pattern pattern)
{
    return (unsigned)pattern < PW_ARRAY_LEN(pattern_names) ? pattern_names[pattern] : "?";
}

const char *pw_sim_lease_name(enum pw_sim_lease lease)
{
    switch (lease) {
    case PW_SIM_LEASE_NONE:
        return "none";
    case PW_SIM_LEASE_ACTIVE:
        return "active";
    case PW_SIM_LEASE_EXPIRED:
        return "expired";
    }
    return "?";
}

void pw_sim_default_params(pw_sim_params *p)
{
    memset(p, 0, sizeof(*p));
    p->seed = 1;
    p->cars_per_day = -1;
    p->pattern = PW_SIM_EVENING;
    p->start_hour = -1.0;
    p->base_load_peak = 0.3;
    p->base_load_spikes = true;
    p->reaction_ms = 5000;
    p->follow_min_ms = 1000;
    p->follow_max_ms = 5000;
    p->meter_noise_a = 0.2;
}

static int check_params(const pw_sim_params *p, char *err, size_t err_size)
{
    const char *bad = NULL;
    if (p->cars_per_day > 100000)
        bad = "cars_per_day: at most 100000";
    else if (p->start_hour >= 24.0)
        bad = "start_hour: must be below 24 (or negative for the pattern's default)";
    else if (!(p->base_load_peak >= 0.0 && p->base_load_peak <= 1.0))
        bad = "base_load_peak: must be within 0..1";
    else if (p->follow_min_ms > p->follow_max_ms || p->follow_max_ms > 60000)
        bad = "follow_min_ms/follow_max_ms: need min <= max <= 60000";
    else if (!(p->meter_noise_a >= 0.0 && p->meter_noise_a <= 10.0))
        bad = "meter_noise_a: must be within 0..10";
    else if ((unsigned)p->pattern >= PW_ARRAY_LEN(pattern_names))
        bad = "pattern: unknown";
    if (bad)
        snprintf(err, err_size, "%s", bad);
    return bad ? PW_SIM_E_PARAM : PW_SIM_OK;
}

/* Checks that parents lead to node 0 without loops and chargers sit on existing nodes. */
static int check_facility(const pw_bal_facility *f, char *err, size_t err_size)
{
    if (f->n_nodes == 0 || f->n_chargers == 0) {
        snprintf(err, err_size, "facility: needs at least one node and one charger");
        return PW_SIM_E_FACILITY;
    }
    for (size_t i = 0; i < f->n_nodes; i++) {
        int n = (int)i;
        size_t hops = 0;
        while (n > 0 && hops++ <= f->n_nodes)
            n = f->nodes[n].parent < (int)f->n_nodes ? f->nodes[n].parent : -2;
        if (n != 0) {
            snprintf(err, err_size, "nodes[%zu].parent: does not lead to node 0", i);
            return PW_SIM_E_FACILITY;
        }
    }
    for (size_t i = 0; i < f->n_chargers; i++) {
        if (f->chargers[i].node < 0 || (size_t)f->chargers[i].node >= f->n_nodes) {
            snprintf(err, err_size, "chargers[%zu].node: no such node", i);
            return PW_SIM_E_FACILITY;
        }
    }
    return PW_SIM_OK;
}

static double default_start_hour(enum pw_sim_pattern pattern)
{
    switch (pattern) {
    case PW_SIM_EVENING:
        return 16.0;
    case PW_SIM_OFFICE:
        return 6.0;
    case PW_SIM_UNIFORM:
        break;
    }
    return 0.0;
}

/* ---- building load --------------------------------------------------------------------------- */

static double min_line(const double v[PW_LINES])
{
    return fmin(v[0], fmin(v[1], v[2]));
}

/* A bump of height 1 at centre_h with width sd_h, on the 24 h circle. */
static double bump(double h, double centre_h, double sd_h)
{
    double d = fabs(h - centre_h);
    d = fmin(d, 24.0 - d);
    return exp(-0.5 * (d / sd_h) * (d / sd_h));
}

/* The daily building load profile in [0, 1] at hour of day h. */
static double base_profile(enum pw_sim_pattern pattern, double h)
{
    double v;
    switch (pattern) {
    case PW_SIM_EVENING: /* homes: low at night, small morning peak, large evening peak */
        v = 0.25 + 0.25 * bump(h, 7.5, 1.0) + 0.75 * bump(h, 18.5, 2.0);
        break;
    case PW_SIM_OFFICE: /* offices: a working-day plateau with soft edges */
        v = 0.2 + 0.8 * fmin(1.0, fmax(0.0, fmin(h - 7.0, 18.0 - h)));
        break;
    default:
        v = 0.4 + 0.6 * bump(h, 12.0, 4.0);
        break;
    }
    return fmin(v, 1.0);
}

/* The nearest metered node strictly above node i, or -1. */
static int metered_ancestor(const pw_sim *m, size_t i)
{
    int a = m->nodes[i].spec.parent;
    while (a >= 0 && !m->nodes[a].spec.metered)
        a = m->nodes[a].spec.parent;
    return a;
}

static size_t node_depth(const pw_sim *m, size_t i)
{
    size_t d = 0;
    for (int a = m->nodes[i].spec.parent; a >= 0; a = m->nodes[a].spec.parent)
        d++;
    return d;
}

/* Each metered node's own building load at peak, so that a metered node's total (its own plus
 * the metered nodes below it) is base_load_peak of its smallest line limit where the nodes below
 * leave room for it. Deepest nodes first, so every node sees its children's totals. */
static void size_base_load(pw_sim *m)
{
    double *below = pw_xcalloc(m->n_nodes, sizeof(*below));
    size_t max_depth = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        size_t d = node_depth(m, i);
        max_depth = d > max_depth ? d : max_depth;
    }
    for (size_t depth = max_depth + 1; depth-- > 0;) {
        for (size_t i = 0; i < m->n_nodes; i++) {
            sim_node *n = &m->nodes[i];
            if (!n->spec.metered || node_depth(m, i) != depth)
                continue;
            double want = m->p.base_load_peak * min_line(n->spec.limit_a);
            n->own_peak_a = fmax(0.0, want - below[i]);
            int up = metered_ancestor(m, i);
            if (up >= 0)
                below[up] += n->own_peak_a + below[i];
        }
    }
    free(below);
}

static double peak_shape(const sim_peak *pk, uint64_t t)
{
    if (t < pk->start_ms || t >= pk->end_ms)
        return 0.0;
    double up = (double)(t - pk->start_ms) / PEAK_RAMP_MS;
    double down = (double)(pk->end_ms - t) / PEAK_RAMP_MS;
    return fmin(1.0, fmin(up, down));
}

/* Recomputes every metered node's own building load at the model's time. */
static void update_base_load(pw_sim *m)
{
    double h = fmod(((double)m->offset_ms + (double)m->now) / HOUR_MS, 24.0);
    double profile = base_profile(m->p.pattern, h);
    for (size_t i = 0; i < m->n_nodes; i++) {
        sim_node *n = &m->nodes[i];
        for (int l = 0; l < PW_LINES; l++)
            n->own_base_a[l] = n->own_peak_a * n->line_factor[l] * profile;
    }
    for (size_t k = 0; k < m->n_peaks; k++) {
        const sim_peak *pk = &m->peaks[k];
        double s = peak_shape(pk, m->now);
        for (int l = 0; l < PW_LINES && s > 0.0; l++) {
            if (pk->line_mask & (1u << l))
                m->nodes[pk->node].own_base_a[l] += s * pk->amp_a;
        }
    }
}

/* ---- generating days ------------------------------------------------------------------------- */

typedef struct car_type {
    uint8_t phases;
    double max_a;
    double capacity_kwh;
    double share;
} car_type;

/* A plausible European fleet mix: small 1-phase cars, 1-phase 32 A cars, 2-phase cars, the common
 * 11 kW 3-phase cars and some 22 kW ones. */
static const car_type car_types[] = {
    {1, 16.0, 40.0, 0.15}, {1, 32.0, 64.0, 0.15}, {2, 16.0, 58.0, 0.10},
    {3, 16.0, 77.0, 0.45}, {3, 32.0, 52.0, 0.15},
};

static const car_type *pick_car_type(pw_sim_rng *r)
{
    double u = pw_sim_rng_unit(r);
    for (size_t i = 0; i < PW_ARRAY_LEN(car_types); i++) {
        if (u < car_types[i].share)
            return &car_types[i];
        u -= car_types[i].share;
    }
    return &car_types[PW_ARRAY_LEN(car_types) - 1];
}

/* Arrival hour of day and stay in hours for one car of the pattern. */
static void pick_stay(pw_sim_rng *r, enum pw_sim_pattern pattern, double *arrive_h, double *stay_h)
{
    switch (pattern) {
    case PW_SIM_EVENING:
        if (pw_sim_rng_unit(r) < 0.8) {
            *arrive_h = rng_normal(r, 17.5, 1.5, 12.0, 23.5);
            *stay_h = 24.0 - *arrive_h + rng_normal(r, 7.5, 1.0, 5.0, 11.0);
        } else {
            *arrive_h = rng_range(r, 8.0, 20.0);
            *stay_h = rng_range(r, 1.0, 4.0);
        }
        return;
    case PW_SIM_OFFICE:
        if (pw_sim_rng_unit(r) < 0.85) {
            *arrive_h = rng_normal(r, 8.5, 1.0, 6.0, 12.0);
            *stay_h = rng_normal(r, 8.5, 1.0, 2.0, 11.0);
        } else {
            *arrive_h = rng_range(r, 9.0, 16.0);
            *stay_h = rng_range(r, 0.5, 3.0);
        }
        return;
    case PW_SIM_UNIFORM:
        break;
    }
    *arrive_h = rng_range(r, 0.0, 24.0);
    *stay_h = rng_range(r, 1.0, 10.0);
}

static int64_t day_start_ms(const pw_sim *m, int64_t day)
{
    return day * (int64_t)PW_SIM_DAY_MS - m->offset_ms;
}

static int by_arrival(const void *a, const void *b)
{
    const sim_car *x = a, *y = b;
    if (x->v.arrive_ms != y->v.arrive_ms)
        return x->v.arrive_ms < y->v.arrive_ms ? -1 : 1;
    return x->pref < y->pref ? -1 : x->pref > y->pref;
}

static void make_car(pw_sim *m, pw_sim_rng *r, int64_t day, sim_car *c)
{
    double arrive_h, stay_h;
    const car_type *t = pick_car_type(r);
    pick_stay(r, m->p.pattern, &arrive_h, &stay_h);
    int64_t arrive = day_start_ms(m, day) + (int64_t)(arrive_h * HOUR_MS);
    int64_t depart = arrive + (int64_t)(stay_h * HOUR_MS);
    double u = pw_sim_rng_unit(r);

    memset(c, 0, sizeof(*c));
    c->v.state = PW_SIM_CAR_COMING;
    c->v.phases = t->phases;
    c->v.max_a = t->max_a;
    c->v.capacity_wh = t->capacity_kwh * 1000.0;
    c->v.min_start_a = pw_sim_rng_unit(r) < 0.25 ? 7.0 : IEC_MIN_A;
    c->v.arrival_soc = rng_range(r, 0.15, 0.6);
    c->v.target_soc = u < 0.55 ? 0.8 : u < 0.7 ? 0.9 : 1.0;
    c->v.soc = c->v.arrival_soc;
    c->v.need_wh = (c->v.target_soc - c->v.arrival_soc) * c->v.capacity_wh;
    c->v.follow_ms = (uint32_t)rng_range(r, m->p.follow_min_ms, m->p.follow_max_ms + 1.0);
    c->v.charger = -1;
    c->pref = (uint32_t)pw_sim_rng_next(r);
    /* Cars of the day before the start that are still parked arrive at t = 0. */
    c->v.arrive_ms = arrive < 0 ? 0 : (uint64_t)arrive;
    c->v.depart_ms = depart < 0 ? 0 : (uint64_t)depart;
}

static void make_peaks(pw_sim *m, pw_sim_rng *r, int64_t day)
{
    for (size_t i = 0; i < m->n_nodes; i++) {
        const sim_node *n = &m->nodes[i];
        if (!m->p.base_load_spikes || n->own_peak_a <= 0.0)
            continue;
        for (int k = 0; k < PEAKS_PER_DAY; k++) {
            int64_t start = day_start_ms(m, day) + (int64_t)rng_range(r, 0.0, PW_SIM_DAY_MS);
            int64_t end = start + (int64_t)(rng_range(r, 3.0, 30.0) * 60000.0);
            double amp = rng_range(r, 0.04, 0.12) * min_line(n->spec.limit_a);
            uint8_t mask =
                pw_sim_rng_unit(r) < 0.3 ? 7u : (uint8_t)(1u << (pw_sim_rng_next(r) % 3));
            if (end <= 0)
                continue;
            if (m->n_peaks == m->cap_peaks) {
                m->cap_peaks = m->cap_peaks ? 2 * m->cap_peaks : 16;
                m->peaks = pw_xrealloc(m->peaks, m->cap_peaks * sizeof(*m->peaks));
            }
            m->peaks[m->n_peaks++] =
                (sim_peak){i, mask, start < 0 ? 0 : (uint64_t)start, (uint64_t)end, amp};
        }
    }
}

/* Drops appliance peaks that are over, so evaluating the building load stays cheap. */
static void prune_peaks(pw_sim *m)
{
    size_t kept = 0;
    for (size_t k = 0; k < m->n_peaks; k++) {
        if (m->peaks[k].end_ms > m->now)
            m->peaks[kept++] = m->peaks[k];
    }
    m->n_peaks = kept;
}

static unsigned cars_per_day(const pw_sim *m)
{
    if (m->p.cars_per_day >= 0)
        return (unsigned)m->p.cars_per_day;
    return (unsigned)((m->n_chargers * 3 + 1) / 2);
}

/* Generates day `day`: its cars (sorted by arrival, appended) and its appliance peaks. */
static void generate_day(pw_sim *m, int64_t day)
{
    pw_sim_rng r;
    unsigned n = cars_per_day(m);
    size_t first = m->n_cars;

    pw_sim_rng_seed(&r, m->p.seed ^ mix64((uint64_t)day + 0x5eedull));
    if (m->n_cars + n > m->cap_cars) {
        m->cap_cars = (m->n_cars + n) * 2;
        m->cars = pw_xrealloc(m->cars, m->cap_cars * sizeof(*m->cars));
    }
    for (unsigned i = 0; i < n; i++) {
        sim_car c;
        make_car(m, &r, day, &c);
        if (c.v.depart_ms > c.v.arrive_ms) /* gone before the start: not part of this run */
            m->cars[m->n_cars++] = c;
    }
    if (m->n_cars > first)
        qsort(m->cars + first, m->n_cars - first, sizeof(*m->cars), by_arrival);
    make_peaks(m, &r, day);
}

/* Keeps one simulated day of arrivals generated ahead, so arrivals stay in time order. */
static void ensure_days(pw_sim *m)
{
    bool any = false;
    while (day_start_ms(m, m->next_day) <= (int64_t)(m->now + PW_SIM_DAY_MS)) {
        generate_day(m, m->next_day++);
        any = true;
    }
    if (any)
        prune_peaks(m);
}

/* ---- cars and chargers ----------------------------------------------------------------------- */

/* The car hears about a new offer now and acts on it follow_ms later. */
static void car_notice(pw_sim *m, sim_car *c, double offered_a, uint8_t phases)
{
    follow_step s = {m->now + c->v.follow_ms, offered_a, phases};
    if (c->queued == FOLLOW_QUEUE) {
        /* Changes faster than the car can follow: the newest replaces the last queued one. */
        c->queue[FOLLOW_QUEUE - 1].offered_a = offered_a;
        c->queue[FOLLOW_QUEUE - 1].phases = phases;
        return;
    }
    c->queue[c->queued++] = s;
}

/* The charger's offer or phase count changed: its car, if any, will follow. */
static void charger_changed(pw_sim *m, sim_charger *ch)
{
    if (ch->car >= 0)
        car_notice(m, &m->cars[ch->car], ch->offered_a, ch->phases);
}

static void set_offer(pw_sim *m, sim_charger *ch, double offered_a, uint8_t phases)
{
    if (offered_a == ch->offered_a && phases == ch->phases)
        return;
    ch->offered_a = offered_a;
    ch->phases = phases;
    charger_changed(m, ch);
}

int pw_sim_apply(pw_sim *m, size_t charger, double limit_a, uint8_t phases, uint32_t lease_ms,
                 uint32_t alloc_seq, uint64_t now_ms)
{
    if (charger >= m->n_chargers || !(limit_a >= 0.0))
        return PW_SIM_E_PARAM;
    pw_sim_step(m, now_ms);
    sim_charger *ch = &m->chargers[charger];
    double offer = fmin(limit_a, ch->spec.max_a);
    if (offer < IEC_MIN_A)
        offer = 0.0;
    uint8_t ph = ch->phases;
    if (ch->spec.can_switch_phases && (phases == 1 || phases == 3))
        ph = phases;
    ch->lease = PW_SIM_LEASE_ACTIVE;
    ch->lease_until_ms = m->now + lease_ms;
    ch->alloc_seq = alloc_seq;
    set_offer(m, ch, offer, ph);
    return PW_SIM_OK;
}

/* Lease ran out: fall back to the failsafe current. The phase count stays as it was, because
 * switching a 1-phase session back to 3 phases would add load to lines nobody budgeted. */
static void expire_lease(pw_sim *m, sim_charger *ch)
{
    ch->lease = PW_SIM_LEASE_EXPIRED;
    ch->alloc_seq = 0;
    set_offer(m, ch, ch->spec.failsafe_a < IEC_MIN_A ? 0.0 : ch->spec.failsafe_a, ch->phases);
}

static void plug_in(pw_sim *m, size_t car_idx, size_t charger)
{
    sim_car *c = &m->cars[car_idx];
    sim_charger *ch = &m->chargers[charger];
    c->v.state = PW_SIM_CAR_PLUGGED;
    c->v.charger = (int)charger;
    c->follow_a = 0.0;
    c->follow_phases = ch->phases;
    ch->car = (int)car_idx;
    ch->session_id = ++m->sessions;
    car_notice(m, c, ch->offered_a, ch->phases);
}

static void arrive(pw_sim *m, size_t car_idx)
{
    size_t n_free = 0;
    for (size_t i = 0; i < m->n_chargers; i++) {
        if (m->chargers[i].car < 0)
            m->free_list[n_free++] = i;
    }
    if (n_free == 0) {
        m->cars[car_idx].v.state = PW_SIM_CAR_TURNED_AWAY;
        return;
    }
    plug_in(m, car_idx, m->free_list[m->cars[car_idx].pref % n_free]);
}

static void depart(pw_sim *m, sim_charger *ch)
{
    sim_car *c = &m->cars[ch->car];
    c->v.state = PW_SIM_CAR_LEFT;
    c->v.current_a = 0.0;
    c->queued = 0;
    ch->car = -1;
    ch->session_id = 0;
}

/* Applies the queued offers whose time has come. */
static void car_follow(sim_car *c, uint64_t now)
{
    unsigned done = 0;
    while (done < c->queued && c->queue[done].at_ms <= now) {
        const follow_step *s = &c->queue[done++];
        if (s->phases != c->follow_phases && c->v.phases > 1 && c->v.current_a > 0.0)
            c->v.phase_switches++;
        c->follow_a = s->offered_a;
        c->follow_phases = s->phases;
    }
    if (done) {
        memmove(c->queue, c->queue + done, (c->queued - done) * sizeof(c->queue[0]));
        c->queued -= done;
    }
}

/* What the car draws per phase given the offer it acts on, its state of charge and limits. */
static double car_draw(const sim_car *c)
{
    if (c->v.soc >= c->v.target_soc)
        return 0.0;
    /* A car that is not charging needs its start current; one that is keeps going down to 6 A. */
    double needed = c->charging ? IEC_MIN_A : fmax(IEC_MIN_A, c->v.min_start_a);
    if (c->follow_a < needed)
        return 0.0;
    double taper = 1.0;
    if (c->v.soc > TAPER_SOC)
        taper = fmax(TAPER_FLOOR,
                     1.0 - (1.0 - TAPER_FLOOR) * (c->v.soc - TAPER_SOC) / (1.0 - TAPER_SOC));
    return fmin(c->follow_a, c->v.max_a * taper);
}

/* Sets the charger's terminal and line currents and power from its car's draw. On TN each used
 * terminal carries the phase current. On IT a 1-phase car sits between two terminals and both
 * carry its current; a 2- or 3-phase car loads all wired terminals. */
static void charger_currents(pw_sim *m, sim_charger *ch, const sim_car *c, double amps)
{
    int wired[PW_LINES], n_wired = 0;
    memset(ch->current_a, 0, sizeof(ch->current_a));
    memset(ch->line_a, 0, sizeof(ch->line_a));
    ch->power_w = 0.0;
    if (c == NULL || amps <= 0.0)
        return;
    for (int t = 0; t < PW_LINES; t++) {
        if (ch->spec.wiring[t] >= 1 && ch->spec.wiring[t] <= PW_LINES)
            wired[n_wired++] = t;
    }
    int phases = c->v.phases < c->follow_phases ? c->v.phases : c->follow_phases;
    int loaded = phases < n_wired ? phases : n_wired;
    if (m->grid == PW_GRID_IT)
        loaded = phases == 1 && n_wired >= 2 ? 2 : n_wired;
    for (int k = 0; k < loaded; k++) {
        ch->current_a[wired[k]] = amps;
        ch->line_a[ch->spec.wiring[wired[k]] - 1] += amps;
    }
    if (m->grid == PW_GRID_IT)
        ch->power_w = PW_SIM_VOLTAGE_V * amps * (loaded >= 3 ? sqrt(3.0) : 1.0);
    else
        ch->power_w = PW_SIM_VOLTAGE_V * amps * loaded;
}

static void update_car(pw_sim *m, sim_charger *ch)
{
    sim_car *c = ch->car >= 0 ? &m->cars[ch->car] : NULL;
    double amps = 0.0;
    if (c) {
        car_follow(c, m->now);
        amps = car_draw(c);
        c->v.full = c->v.soc >= c->v.target_soc;
        if (c->charging && amps <= 0.0 && !c->v.full)
            c->v.pauses++;
        c->charging = amps > 0.0;
        c->v.current_a = amps;
    }
    charger_currents(m, ch, c, amps);
}

/* Recomputes the ground truth per node: building load plus every charger below. */
static void update_nodes(pw_sim *m)
{
    update_base_load(m);
    for (size_t i = 0; i < m->n_nodes; i++) {
        memset(m->nodes[i].v.base_a, 0, sizeof(m->nodes[i].v.base_a));
        memset(m->nodes[i].v.ev_a, 0, sizeof(m->nodes[i].v.ev_a));
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        for (int n = (int)i; n >= 0; n = m->nodes[n].spec.parent) {
            for (int l = 0; l < PW_LINES; l++)
                m->nodes[n].v.base_a[l] += m->nodes[i].own_base_a[l];
        }
    }
    for (size_t c = 0; c < m->n_chargers; c++) {
        for (int n = m->chargers[c].spec.node; n >= 0; n = m->nodes[n].spec.parent) {
            for (int l = 0; l < PW_LINES; l++)
                m->nodes[n].v.ev_a[l] += m->chargers[c].line_a[l];
        }
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        for (int l = 0; l < PW_LINES; l++)
            m->nodes[i].v.load_a[l] = m->nodes[i].v.base_a[l] + m->nodes[i].v.ev_a[l];
    }
}

/* Handles everything due at the model's time, then recomputes currents and loads. */
static void process_events(pw_sim *m)
{
    ensure_days(m);
    for (size_t i = 0; i < m->n_chargers; i++) {
        sim_charger *ch = &m->chargers[i];
        if (ch->lease == PW_SIM_LEASE_ACTIVE && ch->lease_until_ms <= m->now)
            expire_lease(m, ch);
        if (ch->car >= 0 && m->cars[ch->car].v.depart_ms <= m->now)
            depart(m, ch);
    }
    while (m->next_arrival < m->n_cars && m->cars[m->next_arrival].v.arrive_ms <= m->now)
        arrive(m, m->next_arrival++);
    for (size_t i = 0; i < m->n_chargers; i++)
        update_car(m, &m->chargers[i]);
    update_nodes(m);
}

/* Energy into the cars and overload time over [m->now, t1), with the state as it is now. */
static void integrate(pw_sim *m, uint64_t t1)
{
    double dt = (double)(t1 - m->now);
    for (size_t i = 0; i < m->n_chargers; i++) {
        sim_charger *ch = &m->chargers[i];
        double wh = ch->power_w * dt / HOUR_MS;
        ch->energy_wh += wh;
        if (ch->car >= 0) {
            sim_car *c = &m->cars[ch->car];
            c->v.delivered_wh += wh;
            c->v.soc = fmin(1.0, c->v.soc + wh / c->v.capacity_wh);
        }
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        sim_node *n = &m->nodes[i];
        for (int l = 0; l < PW_LINES; l++) {
            double excess = n->v.load_a[l] - n->v.limit_a[l];
            if (excess <= 1e-9) {
                n->episode_start[l] = NO_EPISODE;
                continue;
            }
            if (n->episode_start[l] == NO_EPISODE)
                n->episode_start[l] = m->now;
            uint64_t grace = n->episode_start[l] + m->p.reaction_ms;
            n->v.over_ms[l] += dt;
            if (t1 > grace)
                n->v.over_beyond_ms[l] += (double)(t1 - (grace > m->now ? grace : m->now));
            n->v.max_over_a[l] = fmax(n->v.max_over_a[l], excess);
        }
    }
}

/* The next time something happens on its own, not counting the one-second grid. */
static uint64_t next_internal_event(const pw_sim *m)
{
    uint64_t t = UINT64_MAX;
    if (m->next_arrival < m->n_cars)
        t = m->cars[m->next_arrival].v.arrive_ms;
    for (size_t i = 0; i < m->n_chargers; i++) {
        const sim_charger *ch = &m->chargers[i];
        if (ch->lease == PW_SIM_LEASE_ACTIVE && ch->lease_until_ms < t)
            t = ch->lease_until_ms;
        if (ch->car < 0)
            continue;
        const sim_car *c = &m->cars[ch->car];
        if (c->v.depart_ms < t)
            t = c->v.depart_ms;
        if (c->queued && c->queue[0].at_ms < t)
            t = c->queue[0].at_ms;
    }
    return t;
}

uint64_t pw_sim_next_event(const pw_sim *m)
{
    uint64_t grid = (m->now / STEP_MS + 1) * STEP_MS;
    uint64_t t = next_internal_event(m);
    return t < grid ? (t > m->now ? t : m->now) : grid;
}

void pw_sim_step(pw_sim *m, uint64_t now_ms)
{
    while (m->now < now_ms) {
        uint64_t t1 = pw_sim_next_event(m);
        if (t1 <= m->now || t1 > now_ms)
            t1 = t1 <= m->now ? m->now + 1 : now_ms;
        integrate(m, t1);
        m->now = t1;
        process_events(m);
    }
}

uint64_t pw_sim_now(const pw_sim *m)
{
    return m->now;
}

int pw_sim_plug_car(pw_sim *m, size_t charger, const pw_sim_car_spec *spec, uint64_t now_ms)
{
    bool ok = charger < m->n_chargers && spec->phases >= 1 && spec->phases <= 3 &&
              spec->max_a >= IEC_MIN_A && spec->min_start_a >= IEC_MIN_A &&
              spec->capacity_wh > 0.0 && spec->arrival_soc >= 0.0 &&
              spec->arrival_soc <= spec->target_soc && spec->target_soc <= 1.0;
    pw_sim_step(m, now_ms);
    if (!ok || m->chargers[charger].car >= 0 || spec->depart_ms <= m->now)
        return PW_SIM_E_PARAM;
    if (m->n_cars == m->cap_cars) {
        m->cap_cars = m->cap_cars ? 2 * m->cap_cars : 16;
        m->cars = pw_xrealloc(m->cars, m->cap_cars * sizeof(*m->cars));
    }
    /* Insert before the cars still to come: indices of arrived cars do not move, and neither
     * does this one later, since every later insertion lands after it. */
    size_t at = m->next_arrival++;
    memmove(m->cars + at + 1, m->cars + at, (m->n_cars - at) * sizeof(*m->cars));
    m->n_cars++;
    sim_car *c = &m->cars[at];
    memset(c, 0, sizeof(*c));
    c->v.phases = spec->phases;
    c->v.max_a = spec->max_a;
    c->v.min_start_a = spec->min_start_a;
    c->v.capacity_wh = spec->capacity_wh;
    c->v.arrival_soc = c->v.soc = spec->arrival_soc;
    c->v.target_soc = spec->target_soc;
    c->v.need_wh = (spec->target_soc - spec->arrival_soc) * spec->capacity_wh;
    c->v.follow_ms = spec->follow_ms;
    c->v.arrive_ms = m->now;
    c->v.depart_ms = spec->depart_ms;
    plug_in(m, at, charger);
    update_car(m, &m->chargers[charger]);
    update_nodes(m);
    return (int)at;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

int pw_sim_new(const pw_bal_facility *f, const pw_sim_params *p, pw_sim **out, char *err,
               size_t err_size)
{
    int rc = check_params(p, err, err_size);
    if (rc == 0)
        rc = check_facility(f, err, err_size);
    *out = NULL;
    if (rc != 0)
        return rc;

    pw_sim *m = pw_xcalloc(1, sizeof(*m));
    pw_sim_rng r;
    m->p = *p;
    m->grid = f->grid;
    double start_h = p->start_hour >= 0.0 ? p->start_hour : default_start_hour(p->pattern);
    m->offset_ms = (int64_t)(start_h * HOUR_MS);
    m->n_nodes = f->n_nodes;
    m->nodes = pw_xcalloc(f->n_nodes, sizeof(*m->nodes));
    pw_sim_rng_seed(&r, p->seed ^ 0x10adull);
    for (size_t i = 0; i < f->n_nodes; i++) {
        sim_node *n = &m->nodes[i];
        n->spec = f->nodes[i];
        for (int l = 0; l < PW_LINES; l++) {
            n->line_factor[l] = rng_range(&r, 0.85, 1.15);
            n->v.limit_a[l] = n->spec.limit_a[l];
            n->episode_start[l] = NO_EPISODE;
        }
    }
    m->n_chargers = f->n_chargers;
    m->chargers = pw_xcalloc(f->n_chargers, sizeof(*m->chargers));
    m->free_list = pw_xcalloc(f->n_chargers, sizeof(*m->free_list));
    for (size_t i = 0; i < f->n_chargers; i++) {
        sim_charger *ch = &m->chargers[i];
        ch->spec = f->chargers[i];
        ch->car = -1;
        ch->phases = 3;
        ch->lease = PW_SIM_LEASE_NONE;
        ch->offered_a = ch->spec.failsafe_a < IEC_MIN_A ? 0.0 : ch->spec.failsafe_a;
    }
    size_base_load(m);
    m->next_day = -1;
    process_events(m);
    *out = m;
    return PW_SIM_OK;
}

void pw_sim_free(pw_sim *m)
{
    if (m == NULL)
        return;
    free(m->nodes);
    free(m->chargers);
    free(m->free_list);
    free(m->cars);
    free(m->peaks);
    free(m);
}

/* ---- views ----------------------------------------------------------------------------------- */

void pw_sim_charger(const pw_sim *m, size_t i, pw_sim_charger_view *out)
{
    const sim_charger *ch = &m->chargers[i];
    memset(out, 0, sizeof(*out));
    out->iec = ch->car < 0 ? PW_SIM_IEC_A : m->cars[ch->car].charging ? PW_SIM_IEC_C : PW_SIM_IEC_B;
    memcpy(out->current_a, ch->current_a, sizeof(out->current_a));
    memcpy(out->line_a, ch->line_a, sizeof(out->line_a));
    out->offered_a = ch->offered_a;
    out->phases = ch->phases;
    out->lease = ch->lease;
    out->lease_until_ms = ch->lease_until_ms;
    out->alloc_seq = ch->alloc_seq;
    out->energy_wh = ch->energy_wh;
    out->session_id = ch->session_id;
    out->car = ch->car;
}

/* PROTOCOL.md 5.2: a new allocation sequence alone is no change (it rides along in the next
 * status), falling back to the failsafe (sequence 0) or leaving it is. */
static bool status_changed(const pw_sim_charger_view *a, const pw_sim_charger_view *b)
{
    if (a->iec != b->iec || fabs(a->offered_a - b->offered_a) >= 0.05 || a->phases != b->phases ||
        (a->alloc_seq == 0) != (b->alloc_seq == 0) || a->session_id != b->session_id)
        return true;
    for (int t = 0; t < PW_LINES; t++) {
        if (fabs(a->current_a[t] - b->current_a[t]) > PW_SIM_STATUS_TOLERANCE_A)
            return true;
    }
    return false;
}

bool pw_sim_status_due(const pw_sim_charger_view *last, const pw_sim_charger_view *cur,
                       uint64_t since_ms)
{
    return last == NULL || since_ms >= PW_SIM_STATUS_KEEPALIVE_MS ||
           (since_ms >= PW_SIM_STATUS_MIN_MS && status_changed(last, cur));
}

void pw_sim_node(const pw_sim *m, size_t i, pw_sim_node_view *out)
{
    *out = m->nodes[i].v;
}

void pw_sim_meter_reading(const pw_sim *m, size_t node, double out[PW_LINES])
{
    for (int l = 0; l < PW_LINES; l++) {
        double noise = m->p.meter_noise_a * hash_noise(m->p.seed, node, (uint64_t)l, m->now);
        out[l] = fmax(0.0, m->nodes[node].v.load_a[l] + noise);
    }
}

size_t pw_sim_car_count(const pw_sim *m)
{
    return m->n_cars;
}

void pw_sim_car(const pw_sim *m, size_t i, pw_sim_car_view *out)
{
    *out = m->cars[i].v;
}
