/* Fingerprint of the balancer's plans: a hash of every result (limit, phases, reason and its
 * text, line loads, demand, binding row, next turn), every node result and the next deadline over
 * many runs of 20 varied facilities (live and oneshot; TN and IT; weights; overrides and node
 * caps; silent chargers, faults, suspended cars, stale meters; tight limits; 10 to 10,000
 * chargers). A change meant to make the balancer faster, not different, must leave every line of
 * its output as it was: run it before and after.
 *
 *   bal_fingerprint > before.txt; (change, rebuild); bal_fingerprint | diff before.txt -
 *
 * A change that adds the same loads in another order changes the last bits of some sums: with
 * --micro, amperes count rounded to a micro-ampere instead (a value next to a rounding edge may
 * still show; look at it before calling it a difference).
 *
 * Prints one line per facility; it is not a test (the figures have no expected value of their
 * own), and it is deterministic: same source, same output, whatever the build type. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bal_garage.h"
#include "pw_bal.h"
#include "pw_util.h"

/* Facility kinds: the bench's garage live; the same oneshot; an IT grid with weights, two-phase
 * wiring, silent chargers and operator overrides; tight limits with reserves, OCPP-like chargers
 * that keep their limits, faults and suspended cars; the same where most cars draw just what
 * they are offered and the building load drifts slowly. */
enum kind { LIVE, ONESHOT, IT_WEIGHTS, TIGHT, STEADY, N_KINDS };

static uint64_t rng;

static uint64_t rnd(void)
{
    return bal_garage_rnd(&rng);
}

static double rndf(double lo, double hi)
{
    return bal_garage_rndf(&rng, lo, hi);
}

static uint64_t hash;

static void mix(const void *p, size_t n) /* FNV-1a */
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        hash = (hash ^ c[i]) * 1099511628211u;
}

/* The bench's garage (bal_garage.h) as the kind wants it. */
static void build(enum kind kind, pw_bal_node_spec *nodes, size_t nn, pw_bal_charger_spec *ch,
                  size_t nch, pw_bal_facility *f)
{
    bal_garage_build(nch, nn, nodes, ch, f);
    f->grid = kind == IT_WEIGHTS ? PW_GRID_IT : PW_GRID_TN;
    f->params.oneshot = kind == ONESHOT;
    for (size_t n = 0; n < nn; n++) {
        pw_bal_node_spec *d = &nodes[n];
        for (size_t l = 0; l < PW_LINES; l++) {
            d->limit_a[l] *= kind >= TIGHT ? 0.6 : 1;
            d->meter_fallback_a[l] = 3;
            d->reserve_a[l] = !d->metered && n % 4 == 1 && l != 1 ? 2 : 0;
        }
    }
    for (size_t k = 0; k < nch; k++) {
        pw_bal_charger_spec *c = &ch[k];
        if (kind == IT_WEIGHTS && k % 7 == 1)
            c->wiring[2] = 0; /* a two-terminal charger */
        c->failsafe_a = k % 6 == 0 ? 6 : 0;
        c->weight = kind >= IT_WEIGHTS ? (double)(1 + k % 3) : 1;
        c->can_switch_phases = c->can_switch_phases && c->wiring[2] != 0;
        c->timing.keeps_limit = kind >= TIGHT && k % 8 == 1;
    }
}

/* One round of reports: the bench's fixed car states in the first two kinds, random ones (with
 * suspended cars and faults) in the others, where a car draws no more than it was offered, some
 * chargers miss a status or fall silent for a minute (overdue, then offline) and some meters
 * miss readings. In the steady kind most cars draw just what they are offered and the building
 * load drifts slowly. */
static void feed(pw_bal *b, enum kind kind, const pw_bal_facility *f, int round, uint64_t now)
{
    const pw_bal_result *prev = pw_bal_results(b);
    bool rough = kind >= IT_WEIGHTS;
    for (size_t k = 0; k < f->n_chargers; k++) {
        if (rough && (rnd() % 23 == 0 || ((size_t)round / 40 + k) % 11 == 0))
            continue;
        uint64_t r = rough ? rnd() % 12 : (k * 2654435761u) % 10;
        pw_bal_measure m = {0};
        m.car = r < 2     ? PW_CAR_NONE
                : r < 3   ? PW_CAR_CONNECTED
                : r == 10 ? PW_CAR_SUSPENDED
                : r == 11 ? PW_CAR_FAULT
                          : PW_CAR_CHARGING;
        m.applied_limit_a = round ? prev[k].limit_a : 0;
        m.applied_phases = round ? prev[k].phases : 0;
        if (m.car == PW_CAR_CHARGING) {
            double a = rndf(5, 16);
            if (round && kind != LIVE && prev[k].limit_a > 0 && a > prev[k].limit_a)
                a = prev[k].limit_a;
            if (round && kind == STEADY && k % 4 != 0 && prev[k].limit_a > 0)
                a = prev[k].limit_a; /* the car follows its offer */
            for (size_t t = 0; t < (r % 3 == 0 ? 1u : 3u); t++)
                m.current_a[t] = a;
        }
        pw_bal_set_charger(b, k, &m, now);
    }
    for (size_t n = 0; n < f->n_nodes; n++) {
        if (!f->nodes[n].metered || (rough && rnd() % 9 == 0))
            continue;
        double line[PW_LINES];
        for (size_t l = 0; l < PW_LINES; l++)
            line[l] = kind == TIGHT
                          ? f->nodes[n].limit_a[l] * (0.1 + 0.05 * sin(round / 7.0 + n + l))
                          : rndf(0, f->nodes[n].limit_a[l] * 0.2);
        pw_bal_set_meter(b, n, line, now);
    }
    if (rough && round % 5 == 2) {
        pw_bal_set_override(b, rnd() % f->n_chargers, rnd() % 2 ? 4.0 : 10.0, 1);
        double cap[PW_LINES] = {f->nodes[0].limit_a[0] * 0.9, INFINITY, INFINITY};
        pw_bal_set_node_cap(b, 0, cap);
    }
}

/* --micro: amperes count rounded to a micro-ampere, so that a change that only sums in another
 * order (the last bits of a double) leaves the output as it was. */
static bool micro;

static void mix_amps(const double *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!micro) {
            mix(&a[i], sizeof a[i]);
            continue;
        }
        long long u = llround(a[i] * 1e6);
        mix(&u, sizeof u);
    }
}

static void mix_results(const pw_bal *b, const pw_bal_facility *f)
{
    const pw_bal_result *r = pw_bal_results(b);
    for (size_t k = 0; k < f->n_chargers; k++) {
        mix_amps(&r[k].limit_a, 1);
        mix(&r[k].phases, sizeof r[k].phases);
        mix(&r[k].reason, sizeof r[k].reason);
        mix(r[k].reason_text, strlen(r[k].reason_text));
        mix_amps(r[k].line_a, PW_LINES);
        mix_amps(&r[k].demand_a, 1);
        mix(&r[k].bind_node, sizeof r[k].bind_node);
        mix(&r[k].bind_line, sizeof r[k].bind_line);
        mix(&r[k].next_turn_ms, sizeof r[k].next_turn_ms);
    }
    const pw_bal_node_result *nr = pw_bal_node_results(b);
    for (size_t n = 0; n < f->n_nodes; n++) {
        mix_amps(nr[n].non_ev_a, PW_LINES);
        mix_amps(nr[n].planned_a, PW_LINES);
        mix_amps(nr[n].headroom_a, PW_LINES);
    }
    uint64_t d = pw_bal_next_deadline(b);
    mix(&d, sizeof d);
}

static uint64_t fingerprint(enum kind kind, size_t nch, size_t nn, int rounds)
{
    pw_bal_node_spec *nodes = pw_xcalloc(nn, sizeof *nodes);
    pw_bal_charger_spec *ch = pw_xcalloc(nch, sizeof *ch);
    pw_bal_facility f;
    build(kind, nodes, nn, ch, nch, &f);
    char err[256];
    if (pw_bal_validate(&f, err, sizeof err) != 0) {
        fprintf(stderr, "bal_fingerprint: facility rejected: %s\n", err);
        exit(1);
    }
    pw_bal *b = pw_bal_new(&f);
    hash = 14695981039346656037u;
    uint64_t now = 1000;
    for (int i = 0; i < rounds; i++) {
        /* About a second between runs, and now and then minutes: hold times end, rotation turns. */
        now += i % 17 == 5 ? 400000 : 1000 + rnd() % 1500;
        feed(b, kind, &f, i, now);
        pw_bal_run(b, now);
        mix_results(b, &f);
    }
    pw_bal_free(b);
    free(ch);
    free(nodes);
    return hash;
}

int main(int argc, char **argv)
{
    micro = argc > 1 && strcmp(argv[1], "--micro") == 0;
    if (argc > 2 || (argc > 1 && !micro)) {
        printf("usage: bal_fingerprint [--micro]\n"
               "Prints a hash of every plan over many runs of 20 facilities; compare before and "
               "after a change that must not change plans. --micro: amperes rounded to a "
               "micro-ampere (for a change that sums in another order).\n");
        return argc > 1 && strcmp(argv[1], "--help") != 0;
    }
    static const char *const names[] = {"live", "oneshot", "it_weights", "tight", "steady"};
    static const size_t sizes[][2] = {{10, 4}, {100, 10}, {1000, 50}, {10000, 200}};
    for (int kind = 0; kind < N_KINDS; kind++) {
        for (size_t s = 0; s < PW_ARRAY_LEN(sizes); s++) {
            rng = 0x243f6a8885a308d3u + (uint64_t)kind * 7 + s;
            uint64_t h = fingerprint((enum kind)kind, sizes[s][0], sizes[s][1], s == 3 ? 15 : 80);
            printf("%-10s %6zu chargers  %016" PRIx64 "\n", names[kind], sizes[s][0], h);
        }
    }
    return 0;
}
