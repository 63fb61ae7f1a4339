/* `phasewise plan FILE`: parse a what-if scenario (docs/plan.md), feed it to a oneshot balancer
 * and print the allocation as JSON: per charger its limit, phases and reason; per node and line
 * the planned load, the limit, the headroom and the static reserve for non-EV load. */
#include "plan.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_bal.h"
#include "pw_cfg.h"
#include "pw_util.h"

/* Any time works in oneshot mode; measurements and the run share it so nothing is stale. */
#define PLAN_NOW_MS 1000000u

static json_t *fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_t *fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return NULL;
}

/* Rejects keys the format does not know, so a misspelt field is never silently ignored. */
static bool known_keys(const json_t *obj, const char *const *keys, const char *where, char *err,
                       size_t size)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; keys[i] && !ok; i++)
            ok = strcmp(keys[i], key) == 0;
        if (!ok) {
            fail(err, size, "%s.%s: unknown key", where, key);
            return false;
        }
    }
    return true;
}

/* A current per line: one number for every line, or an array of up to three. */
static bool read_lines(const json_t *v, double out[PW_LINES], const char *where, char *err,
                       size_t size)
{
    for (size_t l = 0; l < PW_LINES; l++)
        out[l] = json_is_number(v) ? json_number_value(v) : 0;
    if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= PW_LINES) {
        for (size_t l = 0; l < json_array_size(v); l++) {
            json_t *x = json_array_get(v, l);
            if (!json_is_number(x)) {
                fail(err, size, "%s[%zu]: must be a number of amperes", where, l);
                return false;
            }
            out[l] = json_number_value(x);
        }
    } else if (!json_is_number(v)) {
        fail(err, size, "%s: must be a number or an array of up to 3 numbers (A)", where);
        return false;
    }
    for (size_t l = 0; l < PW_LINES; l++)
        if (!isfinite(out[l]) || out[l] < 0 || out[l] > 10000) {
            fail(err, size, "%s: currents are 0-10000 A", where);
            return false;
        }
    return true;
}

/* The facility part: an object in the config format, or the path of a config file. */
static pw_cfg *load_config(const json_t *scenario, const char *base_dir, char *err, size_t size)
{
    json_t *c = json_object_get(scenario, "config");
    pw_cfg_errors errs;
    pw_cfg *cfg = NULL;
    if (json_is_string(c)) {
        const char *p = json_string_value(c);
        char path[PATH_MAX];
        if (p[0] == '/' || !base_dir)
            pw_strlcpy(path, p, sizeof path);
        else
            snprintf(path, sizeof path, "%s/%s", base_dir, p);
        cfg = pw_cfg_load(path, &errs);
    } else if (json_is_object(c)) {
        cfg = pw_cfg_from_json(c, &errs);
    } else {
        fail(err, size, "config: must be the facility config (an object) or a path to one");
        return NULL;
    }
    if (!cfg) {
        char msg[2048];
        pw_cfg_errors_print(&errs, msg, sizeof msg);
        size_t n = strlen(msg);
        if (n && msg[n - 1] == '\n')
            msg[n - 1] = '\0';
        fail(err, size, "config: %s", msg);
    }
    return cfg;
}

static bool apply_meters(const json_t *meters, const pw_cfg *cfg, pw_bal *b, char *err, size_t size)
{
    if (!meters)
        return true;
    if (!json_is_object(meters)) {
        fail(err, size, "meters: must map node ids to currents");
        return false;
    }
    const char *id;
    json_t *v;
    json_object_foreach((json_t *)meters, id, v)
    {
        char where[96];
        snprintf(where, sizeof where, "meters.%s", id);
        int n = pw_cfg_node_by_id(cfg, id);
        if (n < 0) {
            fail(err, size, "%s: no node '%s' in the config", where, id);
            return false;
        }
        if (!cfg->nodes[n].metered) {
            fail(err, size, "%s: node '%s' has no meter in the config", where, id);
            return false;
        }
        double a[PW_LINES];
        if (!read_lines(v, a, where, err, size))
            return false;
        pw_bal_set_meter(b, (size_t)n, a, PLAN_NOW_MS);
    }
    return true;
}

static int charger_by_id(const pw_cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_chargers; i++)
        if (strcmp(cfg->chargers[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* "offline" is no state a charger reports: it means the charger is silent, so the balancer
 * budgets what it may still draw (its failsafe current). */
static bool parse_state(const char *s, enum pw_car_state *car, bool *offline)
{
    static const char *const names[] = {"none", "connected", "charging", "suspended", "fault"};
    *offline = strcmp(s, "offline") == 0;
    for (size_t i = 0; i < PW_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *car = (enum pw_car_state)i;
            return true;
        }
    return *offline;
}

static bool apply_charger(const char *id, const json_t *v, const pw_cfg *cfg, pw_bal *b, bool *seen,
                          char *err, size_t size)
{
    static const char *const keys[] = {"state", "current_a", "offered_a", "phases", NULL};
    char where[96];
    snprintf(where, sizeof where, "chargers.%s", id);
    int k = charger_by_id(cfg, id);
    if (k < 0) {
        fail(err, size, "%s: no charger '%s' in the config", where, id);
        return false;
    }
    if (!json_is_object(v)) {
        fail(err, size, "%s: must be an object", where);
        return false;
    }
    if (!known_keys(v, keys, where, err, size))
        return false;
    seen[k] = true;
    pw_bal_measure m = {.car = PW_CAR_CONNECTED};
    bool offline = false;
    json_t *state = json_object_get(v, "state");
    if (state &&
        (!json_is_string(state) || !parse_state(json_string_value(state), &m.car, &offline))) {
        fail(err, size, "%s.state: one of none, connected, charging, suspended, fault, offline",
             where);
        return false;
    }
    json_t *cur = json_object_get(v, "current_a");
    char sub[128];
    snprintf(sub, sizeof sub, "%s.current_a", where);
    if (cur && !read_lines(cur, m.current_a, sub, err, size))
        return false;
    json_t *offered = json_object_get(v, "offered_a");
    if (offered && (!json_is_number(offered) || json_number_value(offered) < 0)) {
        fail(err, size, "%s.offered_a: must be a current in A", where);
        return false;
    }
    m.applied_limit_a = offered ? json_number_value(offered) : 0;
    json_t *ph = json_object_get(v, "phases");
    if (ph &&
        (!json_is_integer(ph) || (json_integer_value(ph) != 1 && json_integer_value(ph) != 3))) {
        fail(err, size, "%s.phases: 1 or 3", where);
        return false;
    }
    m.applied_phases = ph ? (uint8_t)json_integer_value(ph) : 0;
    if (!offline)
        pw_bal_set_charger(b, (size_t)k, &m, PLAN_NOW_MS);
    return true;
}

static bool apply_chargers(const json_t *chargers, const pw_cfg *cfg, pw_bal *b, char *err,
                           size_t size)
{
    if (chargers && !json_is_object(chargers)) {
        fail(err, size, "chargers: must map charger ids to measurements");
        return false;
    }
    bool *seen = pw_xcalloc(cfg->n_chargers, sizeof *seen);
    bool ok = true;
    const char *id;
    json_t *v;
    if (chargers)
        json_object_foreach((json_t *)chargers, id, v)
        {
            ok = apply_charger(id, v, cfg, b, seen, err, size);
            if (!ok)
                break;
        }
    /* Chargers the scenario leaves out report no car. */
    pw_bal_measure none = {.car = PW_CAR_NONE};
    for (size_t k = 0; ok && k < cfg->n_chargers; k++)
        if (!seen[k])
            pw_bal_set_charger(b, k, &none, PLAN_NOW_MS);
    free(seen);
    return ok;
}

/* Amperes to a hundredth: enough for a person, no binary noise. */
static json_t *amps(double a)
{
    double r = round(a * 100) / 100;
    return json_real(r == 0 ? 0 : r); /* never "-0.0" */
}

static json_t *lines(const double a[PW_LINES])
{
    return json_pack("[o,o,o]", amps(a[0]), amps(a[1]), amps(a[2]));
}

static json_t *charger_json(const pw_cfg *cfg, size_t k, const pw_bal_result *r)
{
    const pw_bal_charger_spec *c = &cfg->chargers[k];
    json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:i,s:o,s:o,s:s,s:s}", "id", c->id, "name", c->name,
                          "node", cfg->nodes[c->node].id, "limit_a", amps(r->limit_a), "phases",
                          r->phases, "line_a", lines(r->line_a), "demand_a", amps(r->demand_a),
                          "reason", pw_bal_reason_name(r->reason), "reason_text", r->reason_text);
    if (r->bind_node >= 0) {
        char line[3] = {'L', (char)('0' + r->bind_line % 10), '\0'};
        json_object_set_new(o, "bound_by",
                            json_pack("{s:s,s:s}", "node", cfg->nodes[r->bind_node].id, "line",
                                      r->bind_line ? line : "imbalance"));
    }
    return o;
}

static json_t *node_json(const pw_cfg *cfg, size_t n, const pw_bal_node_result *r)
{
    const pw_bal_node_spec *s = &cfg->nodes[n];
    json_t *o =
        json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "id", s->id, "name", s->name, "parent",
                  s->parent >= 0 ? json_string(cfg->nodes[s->parent].id) : json_null(), "limit_a",
                  lines(r->limit_a), "non_ev_a", lines(r->non_ev_a), "ev_a", lines(r->ev_a),
                  "planned_a", lines(r->planned_a), "headroom_a", lines(r->headroom_a));
    if (s->metered)
        json_object_set_new(o, "meter_stale", json_boolean(r->meter_stale));
    /* The static reserve (config reserve_a) is part of non_ev_a where no meter sees the node's
     * own load; on a metered node the reading replaces it, which is said so nobody counts it
     * twice. */
    bool reserved = s->reserve_a[0] > 0 || s->reserve_a[1] > 0 || s->reserve_a[2] > 0;
    if (!s->metered || reserved)
        json_object_set_new(o, "reserve_a", lines(s->reserve_a));
    if (s->metered && reserved)
        json_object_set_new(o, "reserve_used", json_false());
    return o;
}

static json_t *summary_json(const pw_cfg *cfg, const pw_bal_result *res)
{
    size_t charging = 0, paused = 0, idle = 0;
    double offered = 0;
    for (size_t k = 0; k < cfg->n_chargers; k++) {
        const pw_bal_result *r = &res[k];
        bool is_paused = r->reason == PW_REASON_PAUSED_PRIORITY ||
                         r->reason == PW_REASON_PAUSED_ROTATION ||
                         r->reason == PW_REASON_PAUSED_NO_ROOM ||
                         (r->reason == PW_REASON_SUSPENDED && r->limit_a <= 0) ||
                         (r->reason == PW_REASON_WAITING_CUTS && r->limit_a <= 0);
        charging += r->limit_a > 0;
        paused += is_paused;
        idle += r->limit_a <= 0 && !is_paused;
        offered += r->line_a[0] + r->line_a[1] + r->line_a[2];
    }
    return json_pack("{s:I,s:I,s:I,s:o}", "running", (json_int_t)charging, "paused",
                     (json_int_t)paused, "idle", (json_int_t)idle, "ev_line_a_total",
                     amps(offered));
}

json_t *pw_plan_scenario(const json_t *scenario, const char *base_dir, char *err, size_t err_size)
{
    static const char *const keys[] = {"config", "meters", "chargers", "comment", NULL};
    if (!json_is_object(scenario))
        return fail(err, err_size, "scenario: must be a JSON object");
    if (!known_keys(scenario, keys, "scenario", err, err_size))
        return NULL;
    pw_cfg *cfg = load_config(scenario, base_dir, err, err_size);
    if (!cfg)
        return NULL;
    pw_bal_facility f;
    pw_cfg_facility(cfg, &f);
    f.params.oneshot = true;
    pw_bal *b = pw_bal_new(&f);
    json_t *out = NULL;
    if (apply_meters(json_object_get(scenario, "meters"), cfg, b, err, err_size) &&
        apply_chargers(json_object_get(scenario, "chargers"), cfg, b, err, err_size)) {
        pw_bal_run(b, PLAN_NOW_MS);
        const pw_bal_result *res = pw_bal_results(b);
        const pw_bal_node_result *nres = pw_bal_node_results(b);
        json_t *chargers = json_array(), *nodes = json_array();
        for (size_t k = 0; k < cfg->n_chargers; k++)
            json_array_append_new(chargers, charger_json(cfg, k, &res[k]));
        for (size_t n = 0; n < cfg->n_nodes; n++)
            json_array_append_new(nodes, node_json(cfg, n, &nres[n]));
        out = json_pack("{s:s,s:s,s:o,s:o,s:o}", "site", cfg->site_name, "grid",
                        cfg->grid == PW_GRID_IT ? "IT" : "TN", "summary", summary_json(cfg, res),
                        "chargers", chargers, "nodes", nodes);
    }
    pw_bal_free(b);
    pw_cfg_free(cfg);
    return out;
}

int pw_plan_main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: phasewise plan FILE   (a scenario, see docs/plan.md; - = stdin)\n");
        return 2;
    }
    const char *path = argv[1];
    json_error_t jerr;
    json_t *scenario = strcmp(path, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                              : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!scenario) {
        fprintf(stderr, "%s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
        return 1;
    }
    char dir[PATH_MAX];
    pw_strlcpy(dir, path, sizeof dir);
    char err[2304];
    json_t *plan =
        pw_plan_scenario(scenario, strcmp(path, "-") == 0 ? NULL : dirname(dir), err, sizeof err);
    json_decref(scenario);
    if (!plan) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    json_dumpf(plan, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    json_decref(plan);
    return 0;
}
