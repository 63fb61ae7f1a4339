/* Operator commands (command.h): validated against the configuration in force like a web API
 * call, applied to the control core as overrides, logged as "command" events naming their
 * source, and kept in <data>/overrides.json so that a restart keeps them. Loop thread. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_int.h"
#include "command.h"
#include "pw_util.h"

#define OVERRIDES_FILE      "overrides.json"
#define PRIORITY_MIN        (-100) /* the range config.c allows for chargers[].priority */
#define PRIORITY_MAX        100
#define FACILITY_MAX_S      (24u * 3600u) /* a facility limit holds at most a day */
#define FACILITY_MAX_MS     ((int64_t)FACILITY_MAX_S * 1000)
#define OVERRIDES_FILE_MODE 0640

static int fail(const char **field, const char *name, char *err, size_t es, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(const char **field, const char *name, char *err, size_t es, const char *fmt, ...)
{
    if (field)
        *field = name;
    if (err && es) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, es, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static long charger_index(const pw_cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_chargers; i++)
        if (strcmp(cfg->chargers[i].id, id) == 0)
            return (long)i;
    return -1;
}

/* ---- validation ---------------------------------------------------------------------------- */

static int check_charger_cmd(const pw_cfg *cfg, const pw_command *cmd, const char **field,
                             char *err, size_t es)
{
    long i = charger_index(cfg, cmd->charger);
    if (i < 0)
        return fail(field, "charger", err, es, "charger: no charger '%s' in the configuration",
                    cmd->charger);
    const pw_bal_charger_spec *c = &cfg->chargers[i];
    if (cmd->kind == PW_CMD_MAX_CURRENT && !cmd->clear &&
        !(isfinite(cmd->max_a) && cmd->max_a >= c->min_a && cmd->max_a <= c->max_a))
        return fail(field, "max_current", err, es,
                    "max_current: must be between the charger's minimum %.1f A and maximum %.1f A "
                    "(pause it to offer nothing)",
                    c->min_a, c->max_a);
    if (cmd->kind == PW_CMD_PRIORITY && !cmd->clear &&
        (cmd->priority < PRIORITY_MIN || cmd->priority > PRIORITY_MAX))
        return fail(field, "priority", err, es, "priority: must be a whole number from %d to %d",
                    PRIORITY_MIN, PRIORITY_MAX);
    return 0;
}

/* A facility limit is a limit on node 0 per line: above 0 (a pause of the whole facility is not
 * a limit) and no higher than the connection's own. */
static int check_facility_cmd(const pw_cfg *cfg, const pw_command *cmd, const char **field,
                              char *err, size_t es)
{
    if (cmd->clear)
        return 0;
    const pw_bal_node_spec *main = &cfg->nodes[0];
    for (size_t l = 0; l < PW_LINES; l++) {
        double a = cmd->limit_a[l];
        if (!isfinite(a) || a <= 0 || a > main->limit_a[l])
            return fail(field, "facility_limit", err, es,
                        "facility_limit: L%zu must be above 0 and at most the %.1f A of '%s'",
                        l + 1, main->limit_a[l], main->name[0] ? main->name : main->id);
    }
    if (cmd->duration_s < 1 || cmd->duration_s > FACILITY_MAX_S)
        return fail(field, "duration_s", err, es,
                    "duration_s: the facility limit holds 1 s to 24 h (%u s)", FACILITY_MAX_S);
    return 0;
}

int pw_command_check(const pw_app *app, const pw_command *cmd, const char **field, char *err,
                     size_t err_size)
{
    switch (cmd->kind) {
    case PW_CMD_PAUSE:
    case PW_CMD_PRIORITY:
    case PW_CMD_MAX_CURRENT:
        return check_charger_cmd(app->cfg, cmd, field, err, err_size);
    case PW_CMD_FACILITY_LIMIT:
        return check_facility_cmd(app->cfg, cmd, field, err, err_size);
    }
    return fail(field, NULL, err, err_size, "not a command");
}

/* ---- the overrides file -------------------------------------------------------------------- */

static json_t *amps_json(double a)
{
    return json_real(round(a * 10.0) / 10.0);
}

static json_t *override_file_json(const pw_ctl_override *o)
{
    json_t *j = json_pack("{s:b, s:s}", "paused", o->paused, "source", o->source);
    if (o->has_priority)
        json_object_set_new(j, "priority", json_integer(o->priority));
    if (o->has_max)
        json_object_set_new(j, "max_a", amps_json(o->max_a));
    return j;
}

/* The overrides in force: per charger id, and the facility limit with its wall-clock end. */
static json_t *overrides_json(const pw_app *app)
{
    const pw_cfg *cfg = app->cfg;
    json_t *chargers = json_object();
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_ctl_override *o = pw_ctl_override_get(app->ctl, i);
        if (pw_ctl_override_active(o))
            json_object_set_new(chargers, cfg->chargers[i].id, override_file_json(o));
    }
    json_t *doc = json_pack("{s:i, s:o}", "version", 1, "chargers", chargers);
    const pw_ctl_facility_limit *fl = pw_ctl_facility_limit_get(app->ctl);
    if (fl->active) {
        uint64_t now = uv_now((uv_loop_t *)&app->loop);
        int64_t left = fl->until_ms > now ? (int64_t)(fl->until_ms - now) : 0;
        json_object_set_new(doc, "facility_limit",
                            json_pack("{s:[ooo], s:I, s:s}", "limit_a", amps_json(fl->limit_a[0]),
                                      amps_json(fl->limit_a[1]), amps_json(fl->limit_a[2]),
                                      "expires_ms", (json_int_t)(pw_wall_ms() + left), "source",
                                      fl->source));
    }
    return doc;
}

static int overrides_path(const pw_app *app, char *path, size_t size)
{
    int n = snprintf(path, size, "%s/%s", app->data_dir, OVERRIDES_FILE);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* Written like the config: a temporary file, fsync, rename. */
static void save_overrides(const pw_app *app)
{
    char path[1100], err[256];
    if (overrides_path(app, path, sizeof path) != 0) {
        pw_warn("command", "overrides not saved: the data folder's path is too long");
        return;
    }
    json_t *doc = overrides_json(app);
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(8));
    json_decref(doc);
    if (!text ||
        pw_write_file_atomic(path, text, strlen(text), OVERRIDES_FILE_MODE, err, sizeof err) != 0)
        pw_warn("command", "overrides not saved (they hold until a restart): %s",
                text ? err : "out of memory");
    free(text);
}

/* ---- applying ------------------------------------------------------------------------------ */

static void log_charger_cmd(pw_app *app, const pw_command *cmd, const char *source)
{
    const char *id = cmd->charger;
    switch (cmd->kind) {
    case PW_CMD_PAUSE:
        pw_app_event(app, "command", id, "%s by %s", cmd->pause ? "paused" : "resumed", source);
        break;
    case PW_CMD_PRIORITY:
        if (cmd->clear)
            pw_app_event(app, "command", id, "priority back to the configured one by %s", source);
        else
            pw_app_event(app, "command", id, "priority %d by %s", cmd->priority, source);
        break;
    case PW_CMD_MAX_CURRENT:
        if (cmd->clear)
            pw_app_event(app, "command", id, "max current back to the configured one by %s",
                         source);
        else
            pw_app_event(app, "command", id, "max current %.1f A by %s", cmd->max_a, source);
        break;
    case PW_CMD_FACILITY_LIMIT:
        break;
    }
}

/* A charger's override with cmd folded in; the latest command's source names it. */
static void apply_charger_cmd(pw_app *app, const pw_command *cmd, const char *source)
{
    size_t i = (size_t)charger_index(app->cfg, cmd->charger);
    pw_ctl_override o = *pw_ctl_override_get(app->ctl, i);
    if (cmd->kind == PW_CMD_PAUSE) {
        o.paused = cmd->pause;
    } else if (cmd->kind == PW_CMD_PRIORITY) {
        o.has_priority = !cmd->clear;
        o.priority = cmd->clear ? 0 : cmd->priority;
    } else {
        o.has_max = !cmd->clear;
        o.max_a = cmd->clear ? 0 : cmd->max_a;
    }
    pw_strlcpy(o.source, source, sizeof o.source);
    pw_ctl_set_override(app->ctl, i, &o, uv_now(&app->loop));
    log_charger_cmd(app, cmd, source);
}

static void apply_facility_cmd(pw_app *app, const pw_command *cmd, const char *source)
{
    uint64_t now = uv_now(&app->loop);
    if (cmd->clear) {
        pw_ctl_set_facility_limit(app->ctl, NULL, 0, source, now);
        pw_app_event(app, "command", "facility", "facility limit cleared by %s", source);
        return;
    }
    pw_ctl_set_facility_limit(app->ctl, cmd->limit_a, now + (uint64_t)cmd->duration_s * 1000,
                              source, now);
    const double *a = cmd->limit_a;
    pw_app_event(app, "command", "facility", "facility limit %.1f/%.1f/%.1f A for %u s by %s", a[0],
                 a[1], a[2], cmd->duration_s, source);
}

int pw_command_apply(pw_app *app, const pw_command *cmd, const char *source, char *err,
                     size_t err_size)
{
    if (pw_command_check(app, cmd, NULL, err, err_size) != 0)
        return -1;
    if (cmd->kind == PW_CMD_FACILITY_LIMIT)
        apply_facility_cmd(app, cmd, source);
    else
        apply_charger_cmd(app, cmd, source);
    save_overrides(app);
    return 0;
}

/* ---- restore at start ---------------------------------------------------------------------- */

/* One charger's saved override, each part checked as the command that set it. Returns 0 with o
 * filled, or -1 with the reason in err. */
static int restore_charger(const pw_app *app, const char *id, const json_t *j, pw_ctl_override *o,
                           char *err, size_t es)
{
    const json_t *paused = json_object_get(j, "paused"), *prio = json_object_get(j, "priority");
    const json_t *max = json_object_get(j, "max_a"), *source = json_object_get(j, "source");
    if (!json_is_object(j) || !json_is_boolean(paused) || (prio && !json_is_integer(prio)) ||
        (max && !json_is_number(max)) || !json_is_string(source))
        return fail(NULL, NULL, err, es, "not an override");
    *o = (pw_ctl_override){.paused = json_is_true(paused)};
    pw_command cmd = {.kind = PW_CMD_PAUSE};
    pw_strlcpy(cmd.charger, id, sizeof cmd.charger);
    if (strlen(id) >= sizeof cmd.charger || pw_command_check(app, &cmd, NULL, err, es) != 0)
        return fail(NULL, NULL, err, es, "no such charger in the configuration");
    if (prio) {
        json_int_t p = json_integer_value(prio);
        cmd.kind = PW_CMD_PRIORITY;
        cmd.priority = p < PRIORITY_MIN || p > PRIORITY_MAX ? PRIORITY_MAX + 1 : (int)p;
        if (pw_command_check(app, &cmd, NULL, err, es) != 0)
            return -1;
        o->has_priority = true;
        o->priority = cmd.priority;
    }
    if (max) {
        cmd.kind = PW_CMD_MAX_CURRENT;
        cmd.max_a = json_number_value(max);
        if (pw_command_check(app, &cmd, NULL, err, es) != 0)
            return -1;
        o->has_max = true;
        o->max_a = cmd.max_a;
    }
    pw_strlcpy(o->source, json_string_value(source), sizeof o->source);
    return 0;
}

static void restore_chargers(pw_app *app, const json_t *chargers)
{
    const char *id;
    json_t *j;
    json_object_foreach((json_t *)chargers, id, j)
    {
        pw_ctl_override o;
        char err[256];
        if (restore_charger(app, id, j, &o, err, sizeof err) != 0) {
            pw_warn("command", "saved override of charger '%s' dropped: %s", id, err);
            continue;
        }
        pw_ctl_set_override(app->ctl, (size_t)charger_index(app->cfg, id), &o, uv_now(&app->loop));
        pw_info("command", "charger '%s': override restored (%s%s%s, by %s)", id,
                o.paused ? "paused" : "running", o.has_max ? ", max current set" : "",
                o.has_priority ? ", priority set" : "", o.source);
    }
}

/* The saved facility limit with its wall-clock end: what is left of it now, if anything. */
static void restore_facility(pw_app *app, const json_t *j)
{
    const json_t *lim = json_object_get(j, "limit_a"), *exp = json_object_get(j, "expires_ms");
    const char *source = json_string_value(json_object_get(j, "source"));
    pw_command cmd = {.kind = PW_CMD_FACILITY_LIMIT};
    char err[256];
    bool ok =
        json_is_array(lim) && json_array_size(lim) == PW_LINES && json_is_integer(exp) && source;
    for (size_t l = 0; ok && l < PW_LINES; l++) {
        ok = json_is_number(json_array_get(lim, l));
        cmd.limit_a[l] = json_number_value(json_array_get(lim, l));
    }
    if (!ok) {
        pw_warn("command", "saved facility limit dropped: not a facility limit");
        return;
    }
    int64_t left = (int64_t)json_integer_value(exp) - (int64_t)pw_wall_ms();
    if (left <= 0) {
        pw_info("command", "saved facility limit dropped: it ended while phasewise was stopped");
        return;
    }
    if (left > FACILITY_MAX_MS) /* the clock went back: a day at most, as when it was set */
        left = FACILITY_MAX_MS;
    cmd.duration_s = (uint32_t)((left + 999) / 1000);
    if (pw_command_check(app, &cmd, NULL, err, sizeof err) != 0) {
        pw_warn("command", "saved facility limit dropped: %s", err);
        return;
    }
    uint64_t now = uv_now(&app->loop);
    pw_ctl_set_facility_limit(app->ctl, cmd.limit_a, now + (uint64_t)left, source, now);
    pw_info("command", "facility limit %.1f/%.1f/%.1f A restored for another %lld s",
            cmd.limit_a[0], cmd.limit_a[1], cmd.limit_a[2], (long long)(left / 1000));
}

void pw_command_restore(pw_app *app)
{
    char path[1100];
    if (overrides_path(app, path, sizeof path) != 0)
        return;
    if (access(path, F_OK) != 0) /* never saved: no overrides */
        return;
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        pw_warn("command", "%s ignored, no overrides restored: %s", path, jerr.text);
        return;
    }
    const json_t *chargers = json_object_get(doc, "chargers");
    const json_t *fl = json_object_get(doc, "facility_limit");
    if (!json_is_object(doc) || !json_is_object(chargers) || (fl && !json_is_object(fl))) {
        pw_warn("command", "%s ignored, no overrides restored: not an overrides file", path);
        json_decref(doc);
        return;
    }
    restore_chargers(app, chargers);
    if (fl)
        restore_facility(app, fl);
    json_decref(doc);
}
