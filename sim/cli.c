/* Command-line helpers shared by the simulator's programs. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

#include "pw_util.h"

int sim_cli_number(const char *comp, const char *opt, const char *text, double lo, double hi,
                   double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        pw_error(comp, "--%s: '%s' is not a number within %g..%g", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}
