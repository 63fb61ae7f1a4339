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
 * source. Returns 0, or -1 with a sentence naming the field in err and nothing changed. */
int pw_command_apply(struct pw_app *app, const pw_command *cmd, const char *source, char *err,
                     size_t err_size);

#endif
