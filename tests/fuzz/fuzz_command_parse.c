/* libFuzzer target: the body of POST /api/command (server/command_parse.c), the operator command
 * a logged-in admin or a script sends. Checked beyond "no crash": a refusal leaves the command
 * zeroed and says why; an accepted command is one kind with finite values, a charger id that is
 * a terminated string where one is needed, and parses the same when given again. Ranges (a
 * duration of 0, a limit above the fuse) are pw_command_check's, against the facility. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const pw_command *c)
{
    if ((unsigned)c->kind > PW_CMD_FACILITY_LIMIT)
        abort();
    if (!memchr(c->charger, 0, sizeof c->charger))
        abort();
    if (c->kind != PW_CMD_FACILITY_LIMIT && !c->charger[0])
        abort();
    if (c->kind == PW_CMD_MAX_CURRENT && !c->clear && !isfinite(c->max_a))
        abort();
    if (c->kind == PW_CMD_FACILITY_LIMIT && !c->clear) {
        for (size_t l = 0; l < PW_LINES; l++)
            if (!isfinite(c->limit_a[l]))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_command cmd, again;
    char field[64], err[256];
    static const pw_command zero;
    if (pw_command_parse((const char *)data, size, &cmd, field, sizeof field, err, sizeof err) !=
        0) {
        if (!err[0] || memcmp(&cmd, &zero, sizeof cmd) != 0 || !memchr(field, 0, sizeof field))
            abort();
        return 0;
    }
    check_accepted(&cmd);
    if (pw_command_parse((const char *)data, size, &again, field, sizeof field, err, sizeof err) !=
            0 ||
        memcmp(&cmd, &again, sizeof cmd) != 0)
        abort();
    return 0;
}
