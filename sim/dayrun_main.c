/* phasewise-dayrun: simulates days of charging at a facility in fake time under phasewise (the
 * appliance's control core) and the two baselines and prints overload, energy, fairness, pauses
 * and phase switches for each; phasewise once with statuses as the protocol sends them and once
 * with instant statuses. --export writes the cars and building load of the run as JSON. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pw_cfg.h"
#include "pw_dayrun.h"
#include "pw_util.h"

#define COMP "dayrun"

static const char usage[] =
    "usage: phasewise-dayrun --config FILE [options]\n"
    "\n"
    "Runs the facility's day in fake time (no network) under phasewise, a static split and a\n"
    "worst-phase balancer, with the same seeded cars and building load, and prints the figures.\n"
    "\n"
    "  --days N | --hours H  simulated time (default 1 day)\n"
    "  --seed N              model seed (default 1)\n"
    "  --cars N              car arrivals per day (default 1.5 per charger)\n"
    "  --arrivals P          evening | office | uniform (default evening)\n"
    "  --start-hour H        time of day at start (default: the pattern's busy hour)\n"
    "  --base-load F         building load at its daily peak, share of a metered node's limit\n"
    "  --meter-interval S    seconds between meter readings, 1..10 (default 1)\n"
    "  --allocator A         phasewise | static | worst-phase | all (default all)\n"
    "  --instant-status      the allocator sees every charger as it is at every run, instead of\n"
    "                        through statuses sent by the protocol's rules (at most 1/s); without\n"
    "                        it phasewise runs both ways, in the rows \"phasewise\" and\n"
    "                        \"phasewise (instant statuses)\"\n"
    "  --check               exit 1 if phasewise leaves any line above its limit beyond the\n"
    "                        reaction window\n"
    "  --export FILE         write the run's cars (charger, arrival, departure, requested\n"
    "                        energy, phases, maximum current, delivered energy) and each metered\n"
    "                        node's building load per minute as JSON (docs/plan.md), for\n"
    "                        comparing with an optimum computed elsewhere; the run exported is\n"
    "                        phasewise's, or --allocator's when it names one\n"
    "  --help\n";

typedef struct cli {
    const char *config;
    const char *export_path;
    pw_dayrun_opts run;
    int only; /* allocator index, -1 = all */
    bool check;
} cli;

static int number(const char *opt, const char *text, double lo, double hi, double *out)
{
    return sim_cli_number(COMP, opt, text, lo, hi, out);
}

static int pick_allocator(const char *text, int *out)
{
    *out = -1;
    if (strcmp(text, "all") == 0)
        return 0;
    for (int a = 0; a < PW_DAYRUN_ALLOCATORS; a++) {
        if (strcmp(text, pw_dayrun_alloc_name((enum pw_dayrun_alloc)a)) == 0) {
            *out = a;
            return 0;
        }
    }
    pw_error(COMP, "--allocator: '%s' is not phasewise, static, worst-phase or all", text);
    return -1;
}

/* Returns 0 to run, 1 for --help, -1 on a usage error. */
static int parse(int argc, char **argv, cli *c)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"days", required_argument, NULL, 'd'},
        {"hours", required_argument, NULL, 'H'},
        {"seed", required_argument, NULL, 's'},
        {"cars", required_argument, NULL, 'n'},
        {"arrivals", required_argument, NULL, 'a'},
        {"start-hour", required_argument, NULL, 'S'},
        {"base-load", required_argument, NULL, 'b'},
        {"meter-interval", required_argument, NULL, 'm'},
        {"allocator", required_argument, NULL, 'A'},
        {"check", no_argument, NULL, 'k'},
        {"instant-status", no_argument, NULL, 'i'},
        {"export", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double v;
    int o;
    memset(c, 0, sizeof(*c));
    pw_dayrun_default_opts(&c->run);
    c->only = -1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (o) {
        case 'c':
            c->config = optarg;
            break;
        case 'd':
            rc = number("days", optarg, 0.001, 365, &v);
            c->run.duration_ms = (uint64_t)(v * PW_SIM_DAY_MS);
            break;
        case 'H':
            rc = number("hours", optarg, 0.01, 8760, &v);
            c->run.duration_ms = (uint64_t)(v * 3600000.0);
            break;
        case 's':
            rc = number("seed", optarg, 0, 1e18, &v);
            c->run.model.seed = (uint64_t)v;
            break;
        case 'n':
            rc = number("cars", optarg, 0, 100000, &v);
            c->run.model.cars_per_day = (int)v;
            break;
        case 'a':
            rc = pw_sim_pattern_parse(optarg, &c->run.model.pattern);
            if (rc)
                pw_error(COMP, "--arrivals: '%s' is not evening, office or uniform", optarg);
            break;
        case 'S':
            rc = number("start-hour", optarg, 0, 23.999, &c->run.model.start_hour);
            break;
        case 'b':
            rc = number("base-load", optarg, 0, 1, &c->run.model.base_load_peak);
            break;
        case 'm':
            rc = number("meter-interval", optarg, 1, 10, &v);
            c->run.meter_ms = (uint32_t)lround(v * 1000.0);
            break;
        case 'A':
            rc = pick_allocator(optarg, &c->only);
            break;
        case 'k':
            c->check = true;
            break;
        case 'i':
            c->run.instant_status = true;
            break;
        case 'x':
            c->export_path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        default:
            fputs(usage, stderr);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (!c->config || optind < argc) {
        pw_error(COMP, "--config FILE is required (and nothing else on the command line)");
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void print_header(const cli *c, const pw_cfg *cfg)
{
    printf("facility '%s': %zu nodes, %zu chargers, %s grid\n", cfg->site_name, cfg->n_nodes,
           cfg->n_chargers, cfg->grid == PW_GRID_IT ? "IT" : "TN");
    printf("simulated %.2f h, seed %llu, %s arrivals, meters every %.0f s, statuses %s, reaction "
           "window %.1f s, lease %.0f s, tick %u ms\n\n",
           c->run.duration_ms / 3600000.0, (unsigned long long)c->run.model.seed,
           pw_sim_pattern_name(c->run.model.pattern), c->run.meter_ms / 1000.0,
           c->run.instant_status ? "instant" : "by protocol rules",
           cfg->params.reaction_ms / 1000.0, cfg->lease_ms / 1000.0, (unsigned)cfg->tick_ms);
    printf("%-28s %10s %10s %9s %9s %9s %7s %6s %5s %6s %7s %7s %8s %8s %8s\n", "allocator",
           "over s", "beyond s", "max A", "req kWh", "got kWh", "got %", "Jain", "cars", "unmet",
           "pauses", "1p/3p", "runs", "sends", "run s");
}

static void print_row(const char *label, const pw_dayrun_result *r, double secs)
{
    double pct = r->requested_kwh > 0 ? 100.0 * r->delivered_kwh / r->requested_kwh : 0.0;
    printf("%-28s %10.1f %10.1f %9.1f %9.1f %9.1f %7.1f %6.3f %5u %6u %7u %7u %8llu %8llu "
           "%8.2f\n",
           label, r->over_s, r->over_beyond_s, r->max_over_a, r->requested_kwh, r->delivered_kwh,
           pct, r->jain, r->cars, r->cars_unmet, r->pauses, r->phase_switches,
           (unsigned long long)r->allocator_runs, (unsigned long long)r->plans_sent, secs);
}

/* One row: runs the day (exporting it to c->export_path when asked) and prints its figures.
 * Returns 0 or -1 (logged). */
static int run_one(const cli *c, const pw_cfg *cfg, const pw_dayrun_opts *o, enum pw_dayrun_alloc a,
                   bool exporting, const char *label, pw_dayrun_result *r)
{
    char err[512];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!exporting) {
        if (pw_dayrun(cfg, o, a, r, err, sizeof err) != 0) {
            pw_error(COMP, "%s", err);
            return -1;
        }
        print_row(label, r, seconds_since(&t0));
        return 0;
    }
    json_t *doc = pw_dayrun_export(cfg, o, a, r, err, sizeof err);
    if (!doc) {
        pw_error(COMP, "%s", err);
        return -1;
    }
    print_row(label, r, seconds_since(&t0));
    int rc = json_dump_file(doc, c->export_path, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(doc);
    if (rc != 0) {
        pw_error(COMP, "cannot write %s", c->export_path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli c;
    pw_cfg_errors errs;
    char text[2048];
    int rc = parse(argc, argv, &c);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    pw_cfg *cfg = pw_cfg_load(c.config, &errs);
    if (!cfg) {
        pw_cfg_errors_print(&errs, text, sizeof(text));
        pw_error(COMP, "config %s:\n%s", c.config, text);
        return 1;
    }
    print_header(&c, cfg);

    int status = 0;
    pw_dayrun_result realistic = {0}, instant = {0};
    bool both = false;
    for (int a = 0; a < PW_DAYRUN_ALLOCATORS && status == 0; a++) {
        if (c.only >= 0 && a != c.only)
            continue;
        /* Phasewise once more with instant statuses, so the cost of status timing (pauses
         * above all) shows in the same table. */
        int variants = a == PW_DAYRUN_PHASEWISE && !c.run.instant_status ? 2 : 1;
        for (int v = 0; v < variants && status == 0; v++) {
            pw_dayrun_opts o = c.run;
            pw_dayrun_result r;
            char label[40];
            o.instant_status = c.run.instant_status || v == 1;
            snprintf(label, sizeof label, "%s%s", pw_dayrun_alloc_name((enum pw_dayrun_alloc)a),
                     v == 1 ? " (instant statuses)" : "");
            bool exporting = c.export_path && v == 0 && (c.only >= 0 || a == PW_DAYRUN_PHASEWISE);
            if (run_one(&c, cfg, &o, (enum pw_dayrun_alloc)a, exporting, label, &r) != 0) {
                status = 1;
                break;
            }
            if (a == PW_DAYRUN_PHASEWISE)
                *(v == 0 ? &realistic : &instant) = r;
            both |= v == 1;
            if (c.check && a == PW_DAYRUN_PHASEWISE && r.over_beyond_s > 0.0) {
                pw_error(COMP,
                         "%s left a line above its limit for %.1f s beyond the reaction window",
                         label, r.over_beyond_s);
                status = 1;
            }
        }
    }
    if (both)
        printf("\nphasewise pauses with statuses by protocol rules / with instant statuses: %u / "
               "%u = %.2f\n",
               realistic.pauses, instant.pauses,
               instant.pauses ? (double)realistic.pauses / instant.pauses : 0.0);
    printf("\nover s: seconds above the limit summed over every line of every node; beyond s: of "
           "which past the reaction window of each overload; got %%: delivered / requested "
           "energy; Jain: fairness of delivered/requested over cars; unmet: cars below 99 %% of "
           "their request; 1p/3p: phase switches; runs: allocator runs (phasewise: the control "
           "core's); sends: times the chargers were sent their limits (phasewise: a command was "
           "due: new plan, lease renewal or cut resend)\n");
    pw_cfg_free(cfg);
    return status;
}
