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
    json_t *state = pw_statedoc_build(app, pw_app_now_ms());
    json_t *cfg = pw_cfg_to_json(app->cfg);
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
    pw_api_set_json(resp, 200,
                    json_pack("{s:s, s:s, s:s}", "pairing", hex, "grouped", grouped, "key_file",
                              app->cfg->net.key_file));
    explicit_bzero(hex, sizeof hex);
    explicit_bzero(grouped, sizeof grouped);
}

/* ---- preview ---- */

/* A charger's latest report as the plan format names it, taken on the loop thread. */
typedef struct snap_charger {
    uint32_t device_id;
    bool known;   /* reported a status since start */
    bool offline; /* silent for longer than the running config's offline time */
    const char *state;
    double current_a[PW_LINES];
    double offered_a;
    uint8_t phases;
} snap_charger;

typedef struct snap_meter {
    pw_cfg_meter id;
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

static double capped(double a)
{
    return a < PREVIEW_MAX_A ? a : PREVIEW_MAX_A;
}

/* The pilot state as the balancer reads it: state B after the car drew current means it paused
 * itself (suspended), not that it waits to start. */
static const char *snap_state(const pw_reg_charger *ch)
{
    switch (ch->status.iec_state) {
    case PW_IEC_A:
        return "none";
    case PW_IEC_B:
        return ch->drew_this_session ? "suspended" : "connected";
    case PW_IEC_C:
    case PW_IEC_D:
        return "charging";
    default:
        return "fault";
    }
}

static void snapshot(const pw_app *app, preview_args *p)
{
    const pw_cfg *cfg = app->cfg;
    uint64_t now = pw_app_now_ms();
    p->chargers = pw_xcalloc(cfg->n_chargers ? cfg->n_chargers : 1, sizeof *p->chargers);
    p->n_chargers = cfg->n_chargers;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_reg_charger *ch = &app->reg.chargers[i];
        snap_charger *s = &p->chargers[i];
        s->device_id = cfg->charger_device_ids[i];
        s->known = ch->has_status;
        s->offline = !ch->link.last_seen_ms || now - ch->link.last_seen_ms > cfg->params.offline_ms;
        if (!ch->has_status)
            continue;
        s->state = snap_state(ch);
        for (size_t t = 0; t < PW_LINES; t++)
            s->current_a[t] = capped(ch->status.current_ma[t] / 1000.0);
        s->offered_a = capped(ch->status.applied_limit_ma / 1000.0);
        s->phases = ch->status.applied_phases;
    }
    p->meters = pw_xcalloc(cfg->n_nodes ? cfg->n_nodes : 1, sizeof *p->meters);
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_reg_meter *m = &app->reg.meters[n];
        if (cfg->meters[n].kind == PW_METER_NONE)
            continue;
        snap_meter *s = &p->meters[p->n_meters++];
        s->id = cfg->meters[n];
        s->fresh = m->has_reading && m->link.last_seen_ms &&
                   now - m->link.last_seen_ms <= cfg->nodes[n].meter_timeout_ms;
        for (size_t l = 0; l < PW_LINES; l++)
            s->a[l] = capped(m->current_ma[l] / 1000.0);
    }
}

static json_t *lines_json(const double a[PW_LINES])
{
    json_t *arr = json_array();
    for (size_t l = 0; l < PW_LINES; l++)
        json_array_append_new(arr, json_real(round(a[l] * 100) / 100));
    return arr;
}

/* The measurements in the `phasewise plan` scenario format, keyed by the new config's ids:
 * chargers by device id, meters by their identity, exactly as a config change carries them
 * over. A stale meter is left out so the plan budgets conservatively, as the live balancer
 * does. */
static json_t *scenario_inputs(const preview_args *p, const pw_cfg *cfg, json_t **meters)
{
    json_t *chargers = json_object();
    *meters = json_object();
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const snap_charger *s = NULL;
        for (size_t j = 0; j < p->n_chargers && !s; j++)
            if (p->chargers[j].device_id == cfg->charger_device_ids[i])
                s = &p->chargers[j];
        if (!s || (!s->known && !s->offline))
            continue;
        json_t *o = s->offline ? json_pack("{s:s}", "state", "offline")
                               : json_pack("{s:s, s:o, s:f}", "state", s->state, "current_a",
                                           lines_json(s->current_a), "offered_a",
                                           round(s->offered_a * 100) / 100);
        if (!s->offline && (s->phases == 1 || s->phases == 3))
            json_object_set_new(o, "phases", json_integer(s->phases));
        json_object_set_new(chargers, cfg->chargers[i].id, o);
    }
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_cfg_meter *m = &cfg->meters[n];
        for (size_t j = 0; j < p->n_meters && m->kind != PW_METER_NONE; j++) {
            const snap_meter *s = &p->meters[j];
            if (s->fresh && s->id.kind == m->kind && s->id.device_id == m->device_id &&
                strcmp(s->id.defa_serial, m->defa_serial) == 0) {
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
    preview_args *p = pw_xcalloc(1, sizeof *p);
    p->config = config;
    snapshot(app, p);
    pw_api_submit(app, req, resp, false, preview_run, p, preview_args_free);
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
