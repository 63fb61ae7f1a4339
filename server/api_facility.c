/* Facility endpoints of the JSON API (docs/api.md): chargers and nodes with their configuration
 * and live state, the pairing text of the facility key, and the config preview, which runs a
 * fresh oneshot balancer on the submitted config with the measurements the appliance holds now
 * and changes nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "plan.h"
#include "pw_keyfile.h"
#include "pw_util.h"

/* A current larger than any fuse is a broken report; the plan refuses it, so it is capped. */
#define PREVIEW_MAX_A 10000.0

/* ---- chargers and nodes: configuration merged into the live state ---- */

/* Adds every key of each cfg[i] that live[i] lacks (the arrays are parallel: both follow the
 * configuration's order). */
static void merge_config(json_t *live, const json_t *cfg)
{
    for (size_t i = 0; i < json_array_size(live) && i < json_array_size(cfg); i++) {
        json_t *l = json_array_get(live, i), *c = json_array_get(cfg, i);
        json_t *lm = json_object_get(l, "meter"), *cm = json_object_get(c, "meter");
        if (json_is_object(lm) && json_is_object(cm))
            json_object_update_missing(lm, cm);
        json_object_update_missing(l, c);
    }
}

static json_t *facility_doc(const pw_app *app, const char *what)
{
    json_t *state = pw_statedoc_build(app, uv_now(&app->loop));
    /* The config the state document was built from, so that the arrays are parallel. */
    json_t *cfg = pw_cfg_to_json(pw_ctl_config(app->ctl));
    json_t *list = json_object_get(state, what);
    merge_config(list, json_object_get(cfg, what));
    json_t *doc = json_pack("{s:O}", what, list);
    if (strcmp(what, "chargers") == 0)
        json_object_set(doc, "unassigned", json_object_get(state, "unassigned"));
    json_decref(cfg);
    json_decref(state);
    return doc;
}

/* ---- pairing ---- */

static void pairing(const pw_app *app, pw_web_response *resp)
{
    char hex[PW_KEYFILE_HEX_LEN + 1];
    pw_keyfile_to_hex(app->key, hex);
    /* Groups of eight, as an installer reads them aloud or types them into a charger. */
    char grouped[PW_KEYFILE_HEX_LEN + PW_KEYFILE_HEX_LEN / 8];
    size_t n = 0;
    for (size_t i = 0; i < PW_KEYFILE_HEX_LEN; i++) {
        if (i && i % 8 == 0)
            grouped[n++] = ' ';
        grouped[n++] = hex[i];
    }
    grouped[n] = '\0';
    /* The key in use was read at start: name that file, not one a saved config names for the
     * next restart. */
    const pw_cfg *boot = app->boot_cfg ? app->boot_cfg : app->cfg;
    pw_api_set_json(resp, 200,
                    json_pack("{s:s, s:s, s:s}", "pairing", hex, "grouped", grouped, "key_file",
                              boot->net.key_file));
    explicit_bzero(hex, sizeof hex);
    explicit_bzero(grouped, sizeof grouped);
}

/* ---- preview ---- */

/* A charger's latest report as the plan format names it, taken on the loop thread. */
typedef struct snap_charger {
    pw_cfg_link link;
    bool known;        /* reported a status since start */
    bool offline;      /* silent for longer than its offline time */
    const char *state; /* pw_ctl_car_state_name: static */
    double current_a[PW_LINES];
    double offered_a;
    uint8_t phases;
} snap_charger;

typedef struct snap_meter {
    pw_cfg_link link;
    bool fresh; /* a reading younger than its node's meter timeout */
    double a[PW_LINES];
} snap_meter;

typedef struct preview_args {
    json_t *config;
    snap_charger *chargers;
    size_t n_chargers;
    snap_meter *meters;
    size_t n_meters;
} preview_args;

static void preview_args_free(void *arg)
{
    preview_args *p = arg;
    json_decref(p->config);
    free(p->chargers);
    free(p->meters);
    free(p);
}

/* A current the plan accepts: 0 to PREVIEW_MAX_A. */
static double capped(double a)
{
    return a > 0 ? (a < PREVIEW_MAX_A ? a : PREVIEW_MAX_A) : 0;
}

static void snapshot(const pw_app *app, preview_args *p)
{
    const pw_ctl *ctl = app->ctl;
    const pw_cfg *cfg = pw_ctl_config(ctl);
    uint64_t now = uv_now(&app->loop);
    p->chargers = pw_xcalloc(cfg->n_chargers ? cfg->n_chargers : 1, sizeof *p->chargers);
    p->n_chargers = cfg->n_chargers;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_ctl_charger_state *ch = pw_ctl_charger(ctl, i);
        snap_charger *s = &p->chargers[i];
        s->link = cfg->charger_links[i];
        s->known = ch->has_report;
        s->offline = !pw_ctl_online(ctl, i, now);
        if (!ch->has_report)
            continue;
        s->state = pw_ctl_car_state_name(pw_ctl_car_state(ctl, i));
        for (size_t t = 0; t < PW_LINES; t++)
            s->current_a[t] = capped(ch->report.current_a[t]);
        s->offered_a = capped(ch->report.offered_a);
        s->phases = ch->report.phases;
    }
    p->meters = pw_xcalloc(cfg->n_nodes ? cfg->n_nodes : 1, sizeof *p->meters);
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_ctl_meter_state *m = pw_ctl_meter(ctl, n);
        if (cfg->meters[n].kind == PW_CFG_LINK_NONE)
            continue;
        snap_meter *s = &p->meters[p->n_meters++];
        s->link = cfg->meters[n];
        s->fresh = m->has_reading && m->last_seen_ms &&
                   now - m->last_seen_ms <= cfg->nodes[n].meter_timeout_ms;
        for (size_t l = 0; l < PW_LINES; l++)
            s->a[l] = capped(m->line_a[l]);
    }
}

/* The plan's inputs keep two decimals (10 mA): what the devices said, not a display value. */
static json_t *amps(double a)
{
    return json_real(round(a * 100) / 100);
}

static json_t *lines_json(const double a[PW_LINES])
{
    return json_pack("[ooo]", amps(a[0]), amps(a[1]), amps(a[2]));
}

/* The measurements in the `phasewise plan` scenario format, keyed by the new config's ids:
 * chargers and meters by their link, exactly as a config change carries them over. A stale
 * meter is left out so the plan budgets conservatively, as the live balancer does. */
static json_t *scenario_inputs(const preview_args *p, const pw_cfg *cfg, json_t **meters)
{
    /* Each running charger found in the new config by its link (a lookup, not a scan: a
     * facility may have thousands), then listed in the new config's order. */
    const snap_charger **found = pw_xcalloc(cfg->n_chargers ? cfg->n_chargers : 1, sizeof *found);
    for (size_t j = 0; j < p->n_chargers; j++) {
        int i = pw_cfg_charger_by_link(cfg, &p->chargers[j].link);
        if (i >= 0)
            found[i] = &p->chargers[j];
    }
    json_t *chargers = json_object();
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const snap_charger *s = found[i];
        if (!s || (!s->known && !s->offline))
            continue;
        json_t *o = s->offline
                        ? json_pack("{s:s}", "state", "offline")
                        : json_pack("{s:s, s:o, s:o}", "state", s->state, "current_a",
                                    lines_json(s->current_a), "offered_a", amps(s->offered_a));
        if (!s->offline && (s->phases == 1 || s->phases == 3))
            json_object_set_new(o, "phases", json_integer(s->phases));
        json_object_set_new(chargers, cfg->chargers[i].id, o);
    }
    free(found);
    *meters = json_object();
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_cfg_link *m = &cfg->meters[n];
        for (size_t j = 0; j < p->n_meters && m->kind != PW_CFG_LINK_NONE; j++) {
            const snap_meter *s = &p->meters[j];
            if (s->fresh && pw_cfg_link_equal(&s->link, m)) {
                json_object_set_new(*meters, cfg->nodes[n].id, lines_json(s->a));
                break;
            }
        }
    }
    return chargers;
}

/* On a worker: validate the config (errors by field, as /api/config/validate gives them) and
 * plan it. */
static void preview_run(void *arg, pw_store_reader *reader, pw_web_response *resp)
{
    (void)reader;
    preview_args *p = arg;
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_from_json(p->config, &errs);
    if (!cfg) {
        pw_api_set_config_errors(resp, &errs);
        return;
    }
    json_t *meters, *chargers = scenario_inputs(p, cfg, &meters);
    pw_cfg_free(cfg);
    json_t *scenario =
        json_pack("{s:O, s:o, s:o}", "config", p->config, "meters", meters, "chargers", chargers);
    char err[2304];
    json_t *plan = pw_plan_scenario(scenario, NULL, err, sizeof err);
    if (!plan) {
        json_decref(scenario);
        pw_api_set_error(resp, 400, NULL, err);
        return;
    }
    /* The inputs too, so the same what-if can be run again with `phasewise plan`. */
    json_object_del(scenario, "config");
    json_object_set_new(plan, "inputs", scenario);
    pw_api_set_json(resp, 200, plan);
}

static void preview(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    json_error_t jerr;
    json_t *config = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(config)) {
        json_decref(config);
        pw_api_set_error(resp, 400, NULL,
                         config ? "the body must be a configuration object" : jerr.text);
        return;
    }
    pw_api_keep_secrets(app, config);
    preview_args *p = pw_xcalloc(1, sizeof *p);
    p->config = config;
    snapshot(app, p);
    pw_api_submit(app->api_pool, req, resp, false, preview_run, p, preview_args_free);
}

bool pw_api_facility_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    if (strcmp(req->path, "/api/chargers") == 0 && get)
        pw_api_set_json(resp, 200, facility_doc(app, "chargers"));
    else if (strcmp(req->path, "/api/nodes") == 0 && get)
        pw_api_set_json(resp, 200, facility_doc(app, "nodes"));
    else if (strcmp(req->path, "/api/config/pairing") == 0 && get)
        pairing(app, resp);
    else if (strcmp(req->path, "/api/config/preview") == 0 && post)
        preview(app, req, resp);
    else
        return false;
    return true;
}
