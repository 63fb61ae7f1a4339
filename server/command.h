/* Operator commands: what a person or an integration may change at run time without editing
 * the facility's config. One path for every source (the web API, MQTT): each command is
 * validated the same way, applied to the control core, logged as an event naming its source,
 * kept across a restart, and shown on the dashboard. A command that fails validation changes
 * nothing and says why. Loop thread. */
#ifndef PW_COMMAND_H
#define PW_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"

struct pw_app;

enum pw_command_kind {
    PW_CMD_PAUSE,          /* pause (true) or resume (false) a charger */
    PW_CMD_PRIORITY,       /* a charger's priority class instead of the config's */
    PW_CMD_MAX_CURRENT,    /* a charger's maximum current below the config's */
    PW_CMD_FACILITY_LIMIT, /* a temporary limit on the facility connection (node 0) per line */
};

typedef struct pw_command {
    enum pw_command_kind kind;
    char charger[PW_BAL_ID_LEN]; /* the charger's id (not the facility limit) */
    bool pause;                  /* PW_CMD_PAUSE */
    bool clear;                  /* PRIORITY, MAX_CURRENT, FACILITY_LIMIT: back to the config's */
    int priority;                /* PW_CMD_PRIORITY */
    double max_a;                /* PW_CMD_MAX_CURRENT */
    double limit_a[PW_LINES];    /* PW_CMD_FACILITY_LIMIT: amperes per grid line L1..L3 */
    uint32_t duration_s;         /* PW_CMD_FACILITY_LIMIT: it expires after this (required) */
} pw_command;

/* The source names commands are logged with. */
#define PW_COMMAND_SOURCE_WEB  "web"
#define PW_COMMAND_SOURCE_MQTT "mqtt"

/* Validates cmd against the facility in force, applies it and logs an event "command" naming
 * source. Returns 0, or -1 with a sentence naming the field in err and nothing changed. The
 * overrides in force are then saved to <data>/overrides.json (a failed save is logged: the
 * command holds until a restart). */
int pw_command_apply(struct pw_app *app, const pw_command *cmd, const char *source, char *err,
                     size_t err_size);

/* pw_command_apply's validation alone (nothing changes): 0, or -1 with the sentence in err and
 * the request field at fault in *field ("charger", "max_current", "priority",
 * "facility_limit", "duration_s"; static storage). */
int pw_command_check(const struct pw_app *app, const pw_command *cmd, const char **field, char *err,
                     size_t err_size);

/* Parses one command from JSON text (server/command_parse.c; pure): an object with exactly one
 * of "pause" (bool), "max_current" (A or null), "priority" (integer or null) with "charger"
 * (id), or "facility_limit" ([L1, L2, L3] A, one number for all, or null) with "duration_s"
 * when set (docs/api.md, POST /api/command). Unknown keys, wrong types and two commands are
 * refused. Returns 0, or -1 with cmd zeroed, the key at fault in field ("" when none) and a
 * sentence in err. */
int pw_command_parse(const char *text, size_t len, pw_command *cmd, char *field, size_t field_size,
                     char *err, size_t err_size);

/* At start, after the core exists: the overrides saved before the restart, each checked like a
 * command (a paused charger stays paused; a facility limit keeps its wall-clock end and is
 * dropped if it has passed). A missing file is no overrides; a broken one, or an entry for a
 * charger no longer configured or with values out of range, is logged and left out. */
void pw_command_restore(struct pw_app *app);

#endif
