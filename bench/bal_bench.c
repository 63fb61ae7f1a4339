/* Balancer benchmark: median, 90th- and 99th-percentile CPU time of a full allocation (pw_bal_run
 * on live state, fresh measurements each round) for 10, 100, 1,000 and 10,000 chargers, and the
 * memory the balancer holds. Prints figures; it is not a timed test. Build with -O2 for real
 * figures: cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo, then run bal_bench [rounds [chargers]]; with a
 * charger count only that scenario runs (for a profiler).
 *
 * bal_bench --scenario FILE [rounds] times the allocation of any planner scenario (the input of
 * `phasewise plan`, docs/plan.md) instead: the same oneshot balancer on the same reports, median
 * and p99 over many runs, so one facility can be timed beside another solver. */
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bal_garage.h"
#include "plan.h"
#include "pw_bal.h"
#include "pw_cfg.h"
#include "pw_util.h"

typedef struct scenario {
    size_t chargers, nodes;
} scenario;

static uint64_t rng_state = 0x243f6a8885a308d3u;

/* Fresh measurements: most cars charge on 1 or 3 phases at various currents. */
static void feed(pw_bal *b, const pw_bal_facility *f, uint64_t now)
{
    for (size_t k = 0; k < f->n_chargers; k++) {
        pw_bal_measure m;
        bal_garage_status(k, &rng_state, &m);
        pw_bal_set_charger(b, k, &m, now);
    }
    for (size_t n = 0; n < f->n_nodes; n++) {
        if (!f->nodes[n].metered)
            continue;
        double line[PW_LINES];
        bal_garage_reading(&f->nodes[n], &rng_state, line);
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
    bal_garage_build(sc->chargers, sc->nodes, nodes, ch, &f);
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
    printf("%9zu %6zu %11.1f %9.1f %9.1f %11.1f %8zu %7zu\n", sc->chargers, sc->nodes,
           t[rounds / 2], t[rounds * 9 / 10], t[(size_t)((rounds - 1) * 0.99)],
           (double)(after.uordblks + after.hblkhd - before.uordblks - before.hblkhd) / 1024,
           running, paused);
    free(t);
    pw_bal_free(b);
    free(ch);
    free(nodes);
}

/* ---- --scenario FILE ---------------------------------------------------------------------- */

/* A planner scenario's reports, read once: what pw_plan_scenario feeds its balancer (server/plan.c
 * validates the file first, so the reading here need not). */
typedef struct reports {
    pw_bal_measure *chargers;
    bool *silent; /* "offline": no report, budgeted at the failsafe */
    double (*meters)[PW_LINES];
    bool *metered;
} reports;

static void scenario_lines(const json_t *v, double out[PW_LINES])
{
    for (size_t l = 0; l < PW_LINES; l++)
        out[l] = json_is_number(v) ? json_number_value(v) : 0;
    for (size_t l = 0; json_is_array(v) && l < json_array_size(v) && l < PW_LINES; l++)
        out[l] = json_number_value(json_array_get(v, l));
}

static void read_reports(const json_t *sc, const pw_cfg *cfg, reports *r)
{
    static const char *const states[] = {"none", "connected", "charging", "suspended", "fault"};
    r->chargers = pw_xcalloc(cfg->n_chargers + 1, sizeof *r->chargers);
    r->silent = pw_xcalloc(cfg->n_chargers + 1, sizeof *r->silent);
    r->meters = pw_xcalloc(cfg->n_nodes + 1, sizeof *r->meters);
    r->metered = pw_xcalloc(cfg->n_nodes + 1, sizeof *r->metered);
    for (size_t k = 0; k < cfg->n_chargers; k++) {
        const json_t *v = json_object_get(json_object_get(sc, "chargers"), cfg->chargers[k].id);
        pw_bal_measure *m = &r->chargers[k];
        m->car = v ? PW_CAR_CONNECTED : PW_CAR_NONE;
        if (!v)
            continue;
        const char *st = json_string_value(json_object_get(v, "state"));
        r->silent[k] = st && strcmp(st, "offline") == 0;
        for (size_t i = 0; st && i < PW_ARRAY_LEN(states); i++)
            if (strcmp(st, states[i]) == 0)
                m->car = (enum pw_car_state)i;
        scenario_lines(json_object_get(v, "current_a"), m->current_a);
        m->applied_limit_a = json_number_value(json_object_get(v, "offered_a"));
        m->applied_phases = (uint8_t)json_integer_value(json_object_get(v, "phases"));
    }
    const char *id;
    json_t *v;
    json_object_foreach(json_object_get(sc, "meters"), id, v)
    {
        int n = pw_cfg_node_by_id(cfg, id);
        r->metered[n] = true;
        scenario_lines(v, r->meters[n]);
    }
}

static void free_reports(reports *r)
{
    free(r->chargers);
    free(r->silent);
    free(r->meters);
    free(r->metered);
}

static int run_file(const char *path, int rounds)
{
    json_error_t jerr;
    char err[2048], dir[PATH_MAX];
    json_t *sc = json_load_file(path, 0, &jerr);
    if (!sc) {
        fprintf(stderr, "bal_bench: %s:%d: %s\n", path, jerr.line, jerr.text);
        return 1;
    }
    pw_strlcpy(dir, path, sizeof dir);
    /* The planner's own checks, with its messages: a file it refuses is not timed. */
    json_t *plan = pw_plan_scenario(sc, dirname(dir), err, sizeof err);
    if (!plan) {
        fprintf(stderr, "bal_bench: %s: %s\n", path, err);
        json_decref(sc);
        return 1;
    }
    const json_t *c = json_object_get(sc, "config");
    pw_cfg_errors errs;
    char cfg_path[PATH_MAX * 2];
    if (json_is_string(c))
        snprintf(cfg_path, sizeof cfg_path, "%s/%s", dir, json_string_value(c));
    pw_cfg *cfg =
        json_is_string(c)
            ? pw_cfg_load(json_string_value(c)[0] == '/' ? json_string_value(c) : cfg_path, &errs)
            : pw_cfg_from_json(c, &errs);
    pw_bal_facility f;
    pw_cfg_facility(cfg, &f);
    f.params.oneshot = true; /* as `phasewise plan`: every run plans from the input alone */
    reports rep;
    read_reports(sc, cfg, &rep);
    pw_bal *b = pw_bal_new(&f);
    double *t = pw_xcalloc((size_t)rounds, sizeof *t);
    for (int i = 0; i < rounds; i++) {
        /* Fresh reports each round, as the appliance gives them, outside the timed part. */
        uint64_t now = 1000000u + 1000u * (uint64_t)i;
        for (size_t k = 0; k < f.n_chargers; k++)
            if (!rep.silent[k])
                pw_bal_set_charger(b, k, &rep.chargers[k], now);
        for (size_t n = 0; n < f.n_nodes; n++)
            if (rep.metered[n])
                pw_bal_set_meter(b, n, rep.meters[n], now);
        double t0 = now_us();
        pw_bal_run(b, now);
        t[i] = now_us() - t0;
    }
    const pw_bal_result *r = pw_bal_results(b);
    size_t running = 0, differ = 0;
    for (size_t k = 0; k < f.n_chargers; k++) {
        running += r[k].limit_a > 0;
        /* What was timed must be what `phasewise plan` answers for the file. */
        json_t *pc = json_array_get(json_object_get(plan, "chargers"), k);
        differ += fabs(json_number_value(json_object_get(pc, "limit_a")) - r[k].limit_a) > 0.006;
    }
    json_decref(plan);
    if (differ) {
        fprintf(stderr,
                "bal_bench: %s: %zu chargers got another limit than `phasewise plan` gives\n", path,
                differ);
        rounds = 0;
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp_double);
    if (rounds == 0)
        goto done;
    printf("scenario %s (%s): %zu chargers, %zu nodes, %zu running\n", path, cfg->site_name,
           f.n_chargers, f.n_nodes, running);
    printf("full allocation (pw_bal_run, oneshot), %d runs: median %.1f us, p99 %.1f us, max "
           "%.1f us\n",
           rounds, t[rounds / 2], t[(size_t)((rounds - 1) * 0.99)], t[rounds - 1]);
done:
    free(t);
    pw_bal_free(b);
    free_reports(&rep);
    pw_cfg_free(cfg);
    json_decref(sc);
    return rounds == 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: bal_bench [rounds [chargers]]\n"
               "       bal_bench --scenario FILE [rounds]\n\n"
               "Times full allocations (CPU time of pw_bal_run): synthetic garages of 10 to "
               "10,000 chargers (median, p90, p99, memory), or the planner scenario FILE "
               "(docs/plan.md, "
               "the input of `phasewise plan`; median and p99, 1001 runs by default). Build with "
               "-O2 (RelWithDebInfo) for real figures.\n");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--scenario") == 0) {
        if (argc < 3 || argc > 4) {
            fprintf(stderr, "usage: bal_bench --scenario FILE [rounds]\n");
            return 2;
        }
        int n = argc > 3 ? atoi(argv[3]) : 1001;
        return run_file(argv[2], n < 1 ? 1 : n);
    }
    int rounds = argc > 1 ? atoi(argv[1]) : 201;
    if (rounds < 1)
        rounds = 1;
    static const scenario scenarios[] = {{10, 3}, {100, 10}, {1000, 50}, {10000, 200}};
    printf("full allocation (pw_bal_run), %d rounds each\n", rounds);
    printf(" chargers  nodes  median_us    p90_us    p99_us  memory_KiB  running  paused\n");
    size_t only = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 0;
    for (size_t i = 0; i < PW_ARRAY_LEN(scenarios); i++)
        if (!only || scenarios[i].chargers == only)
            run_scenario(&scenarios[i], rounds);
    return 0;
}
