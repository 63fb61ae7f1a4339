/* Paired timing of two builds of the balancer in one process (bench/bal_pair.sh builds it): both
 * get the bench's garage (bal_garage.c) and the same measurements, and run in turn, alternating
 * which goes first, so that the machine's drift, which moves timings by a tenth on a shared
 * machine, falls on both alike. Prints the median of the per-run ratios B/A (below 1: B faster)
 * with its quartiles, and each build's median in TSC ticks. The two copies' symbols carry the
 * prefixes A_ and B_. */
#include "bal_garage.h"
#include "pw_bal.h"

#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>

#define DECLARE(P)                                                                                 \
    pw_bal *P##pw_bal_new(const pw_bal_facility *f);                                               \
    void P##pw_bal_free(pw_bal *b);                                                                \
    int P##pw_bal_run(pw_bal *b, uint64_t now_ms);                                                 \
    void P##pw_bal_set_charger(pw_bal *b, size_t k, const pw_bal_measure *m, uint64_t now_ms);     \
    void P##pw_bal_set_meter(pw_bal *b, size_t n, const double line_a[PW_LINES], uint64_t now_ms);
DECLARE(A_)
DECLARE(B_)

typedef struct build {
    pw_bal *(*make)(const pw_bal_facility *f);
    void (*drop)(pw_bal *b);
    int (*run)(pw_bal *b, uint64_t now_ms);
    void (*charger)(pw_bal *b, size_t k, const pw_bal_measure *m, uint64_t now_ms);
    void (*meter)(pw_bal *b, size_t n, const double line_a[PW_LINES], uint64_t now_ms);
} build;

static const build builds[2] = {
    {A_pw_bal_new, A_pw_bal_free, A_pw_bal_run, A_pw_bal_set_charger, A_pw_bal_set_meter},
    {B_pw_bal_new, B_pw_bal_free, B_pw_bal_run, B_pw_bal_set_charger, B_pw_bal_set_meter},
};

/* bal_bench's statuses and readings, into build u's balancer. */
static void feed(const build *u, pw_bal *b, const pw_bal_facility *f, uint64_t now, uint64_t *rng)
{
    for (size_t k = 0; k < f->n_chargers; k++) {
        pw_bal_measure m;
        bal_garage_status(k, rng, &m);
        u->charger(b, k, &m, now);
    }
    for (size_t n = 0; n < f->n_nodes; n++) {
        if (!f->nodes[n].metered)
            continue;
        double line[PW_LINES];
        bal_garage_reading(&f->nodes[n], rng, line);
        u->meter(b, n, line, now);
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3001;
    size_t n_ch = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    size_t n_nodes = argc > 3 ? strtoul(argv[3], NULL, 10) : 50;
    if (runs < 1 || n_ch < 1 || n_nodes < 1) {
        fprintf(stderr, "usage: bal_pair [runs [chargers [nodes]]]\n");
        return 2;
    }
    pw_bal_node_spec *nodes = calloc(n_nodes, sizeof *nodes);
    pw_bal_charger_spec *ch = calloc(n_ch, sizeof *ch);
    double *ratio = calloc((size_t)runs, sizeof *ratio);
    double *t[2] = {calloc((size_t)runs, sizeof(double)), calloc((size_t)runs, sizeof(double))};
    if (!nodes || !ch || !ratio || !t[0] || !t[1])
        return 1;
    pw_bal_facility f;
    bal_garage_build(n_ch, n_nodes, nodes, ch, &f);
    pw_bal *b[2] = {builds[0].make(&f), builds[1].make(&f)};
    uint64_t rng[2] = {0x243f6a8885a308d3u, 0x243f6a8885a308d3u};
    for (int i = 0; i < runs; i++) {
        uint64_t now = 1000 * (uint64_t)(i + 1);
        for (int s = 0; s < 2; s++) {
            int w = i & 1 ? 1 - s : s; /* who goes first alternates */
            feed(&builds[w], b[w], &f, now, &rng[w]);
            uint64_t t0 = __rdtsc();
            builds[w].run(b[w], now);
            t[w][i] = (double)(__rdtsc() - t0);
        }
        ratio[i] = t[1][i] / t[0][i];
    }
    qsort(ratio, (size_t)runs, sizeof *ratio, cmp_double);
    qsort(t[0], (size_t)runs, sizeof(double), cmp_double);
    qsort(t[1], (size_t)runs, sizeof(double), cmp_double);
    printf("B/A %.4f (quartiles %.4f %.4f), medians A %.0f B %.0f ticks, %d runs\n",
           ratio[runs / 2], ratio[runs / 4], ratio[runs * 3 / 4], t[0][runs / 2], t[1][runs / 2],
           runs);
    builds[0].drop(b[0]);
    builds[1].drop(b[1]);
    free(t[0]);
    free(t[1]);
    free(ratio);
    free(ch);
    free(nodes);
    return 0;
}
