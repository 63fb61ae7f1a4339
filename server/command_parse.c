/* Operator commands from JSON (command.h, pw_command_parse): the body of POST /api/command and
 * an MQTT command's payload. Pure: text in, a pw_command or the field at fault out; whether the
 * values fit the facility is pw_command_apply's to say. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "command.h"

/* The keys that each name a command; a request carries exactly one. */
static const char *const COMMAND_KEYS[] = {"pause", "max_current", "priority", "facility_limit"};

typedef struct parse_out {
    char *field, *err;
    size_t field_size, err_size;
} parse_out;

static int fail(const parse_out *o, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const parse_out *o, const char *field, const char *fmt, ...)
{
    if (o->field && o->field_size)
        snprintf(o->field, o->field_size, "%s", field ? field : "");
    if (o->err && o->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->err, o->err_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_command_key(const char *key)
{
    for (size_t i = 0; i < sizeof COMMAND_KEYS / sizeof COMMAND_KEYS[0]; i++)
        if (strcmp(key, COMMAND_KEYS[i]) == 0)
            return true;
    return false;
}

/* A number of amperes, the same on every line, or one per line L1..L3. */
static int parse_limit(const json_t *v, double out[PW_LINES], const parse_out *o)
{
    if (json_is_number(v)) {
        for (size_t l = 0; l < PW_LINES; l++)
            out[l] = json_number_value(v);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) != PW_LINES)
        return fail(o, "facility_limit",
                    "facility_limit: amperes per line [L1, L2, L3], one "
                    "number for all three, or null to clear it");
    for (size_t l = 0; l < PW_LINES; l++) {
        const json_t *a = json_array_get(v, l);
        if (!json_is_number(a))
            return fail(o, "facility_limit", "facility_limit: L%zu is not a number", l + 1);
        out[l] = json_number_value(a);
    }
    return 0;
}

/* The command named by key with its value v into cmd. */
static int parse_command(const char *key, const json_t *v, pw_command *cmd, const parse_out *o)
{
    if (strcmp(key, "pause") == 0) {
        if (!json_is_boolean(v))
            return fail(o, key, "pause: true to pause the charger, false to resume it");
        cmd->kind = PW_CMD_PAUSE;
        cmd->pause = json_is_true(v);
        return 0;
    }
    cmd->clear = json_is_null(v);
    if (strcmp(key, "max_current") == 0) {
        cmd->kind = PW_CMD_MAX_CURRENT;
        if (!cmd->clear && !json_is_number(v))
            return fail(o, key, "max_current: amperes, or null for the configured maximum");
        cmd->max_a = cmd->clear ? 0 : json_number_value(v);
        return 0;
    }
    if (strcmp(key, "priority") == 0) {
        cmd->kind = PW_CMD_PRIORITY;
        json_int_t p = json_integer_value(v);
        if (!cmd->clear && (!json_is_integer(v) || p < INT_MIN || p > INT_MAX))
            return fail(o, key, "priority: a whole number, or null for the configured one");
        cmd->priority = (int)p;
        return 0;
    }
    cmd->kind = PW_CMD_FACILITY_LIMIT;
    return cmd->clear ? 0 : parse_limit(v, cmd->limit_a, o);
}

/* The keys beside the command: a charger for a charger's command, a duration for a facility
 * limit that is set, nothing else. */
static int check_companions(const json_t *charger, const json_t *duration, pw_command *cmd,
                            const parse_out *o)
{
    bool facility = cmd->kind == PW_CMD_FACILITY_LIMIT;
    if (facility && charger)
        return fail(o, "charger", "charger: the facility limit is for the whole facility");
    if (!facility && !charger)
        return fail(o, "charger", "charger: which charger (its id) the command is for");
    if (charger) {
        const char *id = json_string_value(charger);
        if (!id || !id[0] || strlen(id) >= sizeof cmd->charger)
            return fail(o, "charger", "charger: a charger's id (1 to %zu characters)",
                        sizeof cmd->charger - 1);
        memcpy(cmd->charger, id, strlen(id) + 1);
    }
    if (duration && !(facility && !cmd->clear))
        return fail(o, "duration_s", "duration_s: only with a facility limit being set");
    if (facility && !cmd->clear) {
        json_int_t d = json_integer_value(duration);
        if (!json_is_integer(duration) || d < 0 || d > UINT32_MAX)
            return fail(o, "duration_s",
                        "duration_s: how long the facility limit holds, in whole seconds");
        cmd->duration_s = (uint32_t)d;
    }
    return 0;
}

static int parse_object(const json_t *root, pw_command *cmd, const parse_out *o)
{
    const json_t *charger = NULL, *duration = NULL;
    const char *named = NULL, *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "charger") == 0) {
            charger = v;
        } else if (strcmp(key, "duration_s") == 0) {
            duration = v;
        } else if (!is_command_key(key)) {
            return fail(o, key,
                        "%s: not a command field (pause, max_current, priority, "
                        "facility_limit, charger, duration_s)",
                        key);
        } else if (named) {
            return fail(o, key, "%s: one command per request (this one also has %s)", key, named);
        } else {
            named = key;
            if (parse_command(key, v, cmd, o) != 0)
                return -1;
        }
    }
    if (!named)
        return fail(o, NULL,
                    "the request names no command (pause, max_current, priority or "
                    "facility_limit)");
    return check_companions(charger, duration, cmd, o);
}

int pw_command_parse(const char *text, size_t len, pw_command *cmd, char *field, size_t field_size,
                     char *err, size_t err_size)
{
    parse_out o = {field, err, field_size, err_size};
    *cmd = (pw_command){0};
    if (field && field_size)
        field[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(&o, NULL, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
    int rc = json_is_object(root) ? parse_object(root, cmd, &o)
                                  : fail(&o, NULL, "a command is a JSON object");
    json_decref(root);
    if (rc != 0)
        *cmd = (pw_command){0};
    return rc;
}
