/* `phasewise plan FILE`: the installer's what-if tool. Reads a scenario (a facility config plus
 * charger and meter measurements, docs/plan.md), runs the balancer once on it (oneshot: no hold
 * times from any past) and prints the allocation as JSON. */
#ifndef PW_PLAN_H
#define PW_PLAN_H

#include <jansson.h>
#include <stddef.h>

/* Plans a parsed scenario. base_dir resolves a "config" given as a relative path (NULL: the
 * current directory). Returns the allocation document (caller owns the reference), or NULL with
 * a message naming the offending field in err. */
json_t *pw_plan_scenario(const json_t *scenario, const char *base_dir, char *err, size_t err_size);

/* The subcommand: argv[0] is "plan", argv[1] the scenario file ("-" for stdin). Prints the
 * allocation on stdout; returns the exit code: 0, 1 for a bad scenario, 2 for bad usage. */
int pw_plan_main(int argc, char **argv);

#endif
