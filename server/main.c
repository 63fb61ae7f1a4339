/* phasewise command line: serve the appliance, check a config file, plan a what-if scenario,
 * back the appliance up and restore it. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "backup.h"
#include "pw_cfg.h"
#include "pw_util.h"
#include "plan.h"

static const char usage[] =
    "phasewise " PW_VERSION " - phase-aware load balancer for EV chargers\n"
    "\n"
    "usage:\n"
    "  phasewise serve [--config FILE] [--db FILE] [--data DIR] [--http ADDR:PORT] [--demo]\n"
    "                  [--lan IFADDR[:PORT]] [--ocpp ADDR:PORT] [--sim PATH]\n"
    "                  [--log-level debug|info|warn|error]\n"
    "      Run the appliance until SIGINT/SIGTERM. --data holds the config, database and key\n"
    "      (default ./data). Without a config it starts in commissioning mode: the web UI\n"
    "      builds the facility from what it discovers; --lan and --ocpp say where it listens\n"
    "      for chargers until then (default loopback). --demo also runs the simulated\n"
    "      facility (phasewise-sim) on loopback multicast, and writes the demo facility as\n"
    "      the config if there is none.\n"
    "  phasewise check-config FILE\n"
    "      Validate a facility config; exit 0, or 1 with one line per problem.\n"
    "  phasewise plan FILE\n"
    "      What-if: print the allocation for a scenario (docs/plan.md) as JSON.\n"
    "  phasewise backup [--config FILE] [--data DIR] [--db FILE] FILE\n"
    "      Write one archive (tar, mode 0600) of config, facility key, admin password hash,\n"
    "      HTTPS pair and a snapshot of the history; works while the appliance runs.\n"
    "  phasewise restore [--config FILE] [--data DIR] [--db FILE] FILE\n"
    "      Put a backup back on a stopped appliance; a broken or foreign archive is refused\n"
    "      and nothing changes.\n"
    "  phasewise --help | --version\n";

static int check_config(const char *path)
{
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_load(path, &errs);
    if (!cfg) {
        char msg[8192];
        pw_cfg_errors_print(&errs, msg, sizeof msg);
        fprintf(stderr, "%s: invalid configuration\n%s", path, msg);
        return 1;
    }
    printf("%s: ok (%s grid, %zu nodes, %zu chargers)\n", path,
           cfg->grid == PW_GRID_IT ? "IT" : "TN", cfg->n_nodes, cfg->n_chargers);
    pw_cfg_free(cfg);
    return 0;
}

/* The simulator is installed beside the phasewise binary. */
static void default_sim_path(char *out, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        pw_strlcpy(out, "phasewise-sim", size);
        return;
    }
    self[n] = '\0';
    snprintf(out, size, "%s/phasewise-sim", dirname(self));
}

static int parse_level(const char *s, enum pw_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum pw_log_level)i;
            return 0;
        }
    return -1;
}

static int serve(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"db", required_argument, NULL, 'b'},
                                             {"data", required_argument, NULL, 'd'},
                                             {"http", required_argument, NULL, 'H'},
                                             {"demo", no_argument, NULL, 'D'},
                                             {"sim", required_argument, NULL, 's'},
                                             {"lan", required_argument, NULL, 'L'},
                                             {"ocpp", required_argument, NULL, 'O'},
                                             {"log-level", required_argument, NULL, 'l'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    pw_app_opts opts = {0};
    char sim[PATH_MAX];
    default_sim_path(sim, sizeof sim);
    opts.sim_path = sim;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        enum pw_log_level level;
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case 'b':
            opts.db_path = optarg;
            break;
        case 'd':
            opts.data_dir = optarg;
            break;
        case 'H':
            opts.http = optarg;
            break;
        case 'D':
            opts.demo = true;
            break;
        case 's':
            opts.sim_path = optarg;
            break;
        case 'L':
            opts.lan = optarg;
            break;
        case 'O':
            opts.ocpp = optarg;
            break;
        case 'l':
            if (parse_level(optarg, &level) != 0) {
                fprintf(stderr, "--log-level: expected debug, info, warn or error\n");
                return 2;
            }
            pw_log_set_level(level);
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "serve: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    return pw_app_run(&opts);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("phasewise %s\n", PW_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return serve(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: phasewise check-config FILE\n");
            return 2;
        }
        return check_config(argv[2]);
    }
    if (strcmp(cmd, "plan") == 0)
        return pw_plan_main(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0)
        return pw_backup_main(argc - 1, argv + 1);
    if (strcmp(cmd, "restore") == 0)
        return pw_restore_main(argc - 1, argv + 1);
    fprintf(stderr, "phasewise: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
