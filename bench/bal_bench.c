/* Balancer benchmark: median and 90th-percentile CPU time of a full allocation (pw_bal_run on
 * live state, fresh measurements each round) for 10, 100, 1,000 and 10,000 chargers, and the memory
 * the balancer holds. Prints figures; it is not a timed test. Build with -O2 for real figures:
 * cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo, then run bal_bench [rounds [chargers]]; with a
 * charger count only that scenario runs (for a profiler). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pw_bal.h"
#include "pw_util.h"

typedef struct scenario {
    size_t chargers, nodes;
} scenario;

static uint64_t rng_state = 0x243f6a8885a308d3u;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rndf(double lo, double hi)
{
    return lo + (hi - lo) * (double)(rnd() >> 11) / 9007199254740992.0;
}

/* A garage: main fuse, a ring of sub-distributions under it and a second level under those;
 * chargers spread evenly with rotated wiring; limits tight enough that the main fuse and most
 * sub-distributions bind and some cars pause, the expensive case. */
static void build(const scenario *sc, pw_bal_node_spec *nodes, pw_bal_charger_spec *ch,
                  pw_bal_facility *f)
{
    static const uint8_t rot[3][3] = {{1, 2, 3}, {2, 3, 1}, {3, 1, 2}};
    memset(f, 0, sizeof *f);
    f->grid = PW_GRID_TN;
    f->nodes = nodes;
    f->chargers = ch;
    f->n_nodes = sc->nodes;
    f->n_chargers = sc->chargers;
    pw_bal_default_params(&f->params);
    size_t first_level = sc->nodes > 8 ? (sc->nodes - 1) / 4 : sc->nodes - 1;
    double per_node = (double)sc->chargers / (double)(sc->nodes > 1 ? sc->nodes - 1 : 1);
    for (size_t n = 0; n < sc->nodes; n++) {
        pw_bal_node_spec *d = &nodes[n];
        memset(d, 0, sizeof *d);
        snprintf(d->id, sizeof d->id, "n%zu", n);
        d->parent = n == 0 ? -1 : n <= first_level ? 0 : (int)(1 + (n - 1) % first_level);
        double share = n == 0 ? (double)sc->chargers * 9 : per_node * 14;
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
    for (size_t k = 0; k < sc->chargers; k++) {
        pw_bal_charger_spec *c = &ch[k];
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "c%zu", k);
        c->node = sc->nodes > 1 ? (int)(1 + k % (sc->nodes - 1)) : 0;
        memcpy(c->wiring, rot[k % 3], 3);
        c->min_a = 6;
        c->max_a = k % 4 == 0 ? 32 : 16;
        c->weight = 1;
        c->priority = k % 10 == 0 ? 1 : 0;
        c->can_switch_phases = k % 5 == 0;
    }
}

/* Fresh measurements: most cars charge on 1 or 3 phases at various currents. */
static void feed(pw_bal *b, const pw_bal_facility *f, uint64_t now)
{
    for (size_t k = 0; k < f->n_chargers; k++) {
        pw_bal_measure m = {0};
        uint64_t r = (k * 2654435761u) % 10;
        m.car = r < 2 ? PW_CAR_NONE : r < 3 ? PW_CAR_CONNECTED : PW_CAR_CHARGING;
        if (m.car == PW_CAR_CHARGING) {
            double a = rndf(5, 16);
            int phases = r % 3 == 0 ? 1 : 3;
            for (int t = 0; t < phases; t++)
                m.current_a[t] = a;
        }
        pw_bal_set_charger(b, k, &m, now);
    }
    for (size_t n = 0; n < f->n_nodes; n++) {
        if (!f->nodes[n].metered)
            continue;
        double line[3];
        for (size_t l = 0; l < 3; l++)
            line[l] = rndf(0, f->nodes[n].limit_a[l] * 0.2);
        pw_bal_set_meter(b, n, line, now);
    }
}

/* CPU time of this thread: on a shared machine wall time also counts other processes. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void run_scenario(const scenario *sc, int rounds)
{
    pw_bal_node_spec *nodes = pw_xcalloc(sc->nodes, sizeof *nodes);
    pw_bal_charger_spec *ch = pw_xcalloc(sc->chargers, sizeof *ch);
    pw_bal_facility f;
    build(sc, nodes, ch, &f);
    char err[256];
    if (pw_bal_validate(&f, err, sizeof err) != 0) {
        fprintf(stderr, "bal_bench: facility rejected: %s\n", err);
        exit(1);
    }
    struct mallinfo2 before = mallinfo2(); /* heap and mmapped blocks */
    pw_bal *b = pw_bal_new(&f);
    struct mallinfo2 after = mallinfo2();
    double *t = pw_xcalloc((size_t)rounds, sizeof *t);
    size_t running = 0, paused = 0;
    for (int i = 0; i < rounds; i++) {
        uint64_t now = 1000 * (uint64_t)(i + 1);
        feed(b, &f, now);
        double t0 = now_us();
        pw_bal_run(b, now);
        t[i] = now_us() - t0;
    }
    const pw_bal_result *r = pw_bal_results(b);
    for (size_t k = 0; k < sc->chargers; k++) {
        running += r[k].limit_a > 0;
        paused +=
            r[k].reason >= PW_REASON_PAUSED_PRIORITY && r[k].reason <= PW_REASON_PAUSED_NO_ROOM;
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp_double);
    printf("%9zu %6zu %11.1f %9.1f %11.1f %8zu %7zu\n", sc->chargers, sc->nodes, t[rounds / 2],
           t[rounds * 9 / 10],
           (double)(after.uordblks + after.hblkhd - before.uordblks - before.hblkhd) / 1024,
           running, paused);
    free(t);
    pw_bal_free(b);
    free(ch);
    free(nodes);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 201;
    if (rounds < 1)
        rounds = 1;
    static const scenario scenarios[] = {{10, 3}, {100, 10}, {1000, 50}, {10000, 200}};
    printf("full allocation (pw_bal_run), %d rounds each\n", rounds);
    printf(" chargers  nodes  median_us    p90_us  memory_KiB  running  paused\n");
    size_t only = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 0;
    for (size_t i = 0; i < PW_ARRAY_LEN(scenarios); i++)
        if (!only || scenarios[i].chargers == only)
            run_scenario(&scenarios[i], rounds);
    return 0;
}
