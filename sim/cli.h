/* Command-line helpers shared by phasewise-sim and phasewise-dayrun. */
#ifndef PW_SIM_CLI_H
#define PW_SIM_CLI_H

/* Parses text as a number within [lo, hi] into *out. Returns 0, or -1 after logging
 * "--opt: 'text' is not a number within lo..hi" under component comp. */
int sim_cli_number(const char *comp, const char *opt, const char *text, double lo, double hi,
                   double *out);

#endif
