/* POST /api/meters/test (docs/api.md): the commissioning page's "Test read" of a node's meter
 * before the configuration is saved. The meter object is validated by the config parser inside
 * a minimal one-node config, so its errors are the ones a save would give; a Modbus or MQTT
 * meter is then read once by its transport and answered later (pw_web_defer), a LAN or DEFA
 * meter, which sends on its own, is answered from the last reading the core holds. One test
 * read at a time per appliance; nothing is saved and nothing reaches the balancer. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

#define TEST_NODE "test"

/* A test read the transport answers later. */
typedef struct meter_test {
    pw_app *app;
    pw_web_pending *pending;
    char source[160]; /* the link for people: "modbus 10.0.0.5:502 unit 3" */
} meter_test;

/* [L1, L2, L3] in amperes to the milliampere (a float32 register's 21.200001 is 21.2), null
 * for a line that was not read or is not a number. */
static json_t *lines_json(const double a[PW_LINES])
{
    json_t *arr = json_array();
    for (size_t l = 0; l < PW_LINES; l++)
        json_array_append_new(arr,
                              isfinite(a[l]) ? json_real(round(a[l] * 1000) / 1000) : json_null());
    return arr;
}

static json_t *result_json(const pw_transport_test_result *r, const char *source)
{
    json_t *doc = json_pack("{s:b, s:s, s:I}", "ok", r->ok, "source", source, "elapsed_ms",
                            (json_int_t)r->elapsed_ms);
    json_object_set_new(doc, "map", r->map[0] ? json_string(r->map) : json_null());
    if (!r->ok) {
        json_object_set_new(doc, "error", json_string(r->error));
        return doc;
    }
    json_object_set_new(doc, "line_a", lines_json(r->line_a));
    json_object_set_new(doc, "serial", r->has_serial ? json_integer(r->serial) : json_null());
    json_object_set_new(doc, "energy_wh",
                        r->has_energy && r->energy_wh <= INT64_MAX
                            ? json_integer((json_int_t)r->energy_wh)
                            : json_null());
    return doc;
}

static void on_test_done(void *ud, const pw_transport_test_result *r)
{
    meter_test *x = ud;
    x->app->meter_test = false;
    pw_web_response resp = {0};
    pw_api_set_json(&resp, 200, result_json(r, x->source));
    pw_web_complete(x->pending, &resp);
    free(x);
}

/* ---- validation ---- */

/* The parser's field for the wrapper's node, "nodes[0].meter.link.modbus.host", as the request
 * named it: "meter.link.modbus.host". */
static void request_field(const char *field, char *out, size_t size)
{
    static const char prefix[] = "nodes[0].meter";
    size_t n = sizeof prefix - 1;
    if (strncmp(field, prefix, n) == 0 && (field[n] == '\0' || field[n] == '.'))
        snprintf(out, size, "meter%s", field + n);
    else
        pw_strlcpy(out, field, size);
}

/* The meter inside the smallest config the parser takes: one node with a huge fuse, one
 * charger on a LAN device id the meter does not use, a broker (the test reads through the
 * running connection, whatever the draft says about it). Returns the config, or NULL with a
 * 400 in resp. */
static pw_cfg *meter_config(const json_t *meter, const json_t *grid, pw_web_response *resp)
{
    const json_t *link = json_object_get(meter, "link");
    json_int_t used =
        json_integer_value(json_object_get(json_object_get(link, "lan"), "device_id"));
    if (!used)
        used = json_integer_value(json_object_get(meter, "device_id"));
    json_t *root =
        json_pack("{s:s, s:O, s:[{s:s, s:f, s:O}], s:[{s:s, s:{s:{s:I}}, s:s}], s:{s:s}}", "site",
                  "test read", "grid", grid, "nodes", "id", TEST_NODE, "limit_a", 10000.0, "meter",
                  meter, "chargers", "id", TEST_NODE, "link", "lan", "device_id",
                  (json_int_t)(used == 1 ? 2 : 1), "node", TEST_NODE, "mqtt", "host", "broker");
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_from_json(root, &errs);
    json_decref(root);
    if (cfg)
        return cfg;
    for (size_t i = 0; i < errs.count && i < PW_CFG_MAX_ERRORS; i++) {
        char field[sizeof errs.items[i].field];
        request_field(errs.items[i].field, field, sizeof field);
        pw_strlcpy(errs.items[i].field, field, sizeof errs.items[i].field);
    }
    pw_api_set_config_errors(resp, &errs);
    return NULL;
}

/* ---- LAN and DEFA meters: the live state ---- */

static void live_answer(pw_web_response *resp, const char *source, const char *map,
                        const double *line_a, uint64_t age_ms, const char *error)
{
    pw_transport_test_result r = {.ok = error == NULL};
    pw_strlcpy(r.map, map, sizeof r.map);
    if (error)
        pw_strlcpy(r.error, error, sizeof r.error);
    else
        memcpy(r.line_a, line_a, sizeof r.line_a);
    json_t *doc = result_json(&r, source);
    if (!error)
        json_object_set_new(doc, "age_ms", json_integer((json_int_t)age_ms));
    pw_api_set_json(resp, 200, doc);
}

/* What the transport that reads link says is wrong with node's meter, or "". */
static void meter_problem(const pw_app *app, const pw_cfg_link *link, size_t node, char *out,
                          size_t size)
{
    *out = '\0';
    for (size_t k = 0; k < app->n_tr; k++) {
        const pw_transport *t = app->tr[k];
        if (t->ops->kind == link->kind && t->ops->meter_problem &&
            t->ops->meter_problem(t, node, out, size))
            return;
    }
}

/* A LAN or DEFA meter sends by itself: its last reading, if the running config reads it. */
static void live_reading(const pw_app *app, const pw_cfg_link *link, const char *source,
                         pw_web_response *resp)
{
    const pw_cfg *cfg = pw_ctl_config(app->ctl);
    uint64_t now = uv_now(&app->loop);
    const char *map =
        link->kind == PW_CFG_LINK_DEFA ? "DEFA Balancer meter frame" : "phasewise LAN meter";
    char why[640]; /* room for the longest sentence with a whole source and problem */
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        if (!pw_cfg_link_equal(&cfg->meters[n], link))
            continue;
        const pw_ctl_meter_state *m = pw_ctl_meter(app->ctl, n);
        uint32_t window = cfg->nodes[n].meter_timeout_ms;
        if (m->has_reading && m->last_seen_ms && now - m->last_seen_ms <= window) {
            live_answer(resp, source, map, m->line_a, now - m->last_seen_ms, NULL);
            return;
        }
        char problem[224];
        meter_problem(app, link, n, problem, sizeof problem);
        snprintf(why, sizeof why, "no reading from %s in the last %" PRIu32 " s%s%.224s", source,
                 window / 1000, *problem ? ": " : "", problem);
        live_answer(resp, source, map, NULL, 0, why);
        return;
    }
    const pw_cfg *boot = app->boot_cfg ? app->boot_cfg : cfg;
    if (link->kind == PW_CFG_LINK_DEFA && !boot->net.defa_meters) {
        live_answer(resp, source, map, NULL, 0,
                    "DEFA meter frames are not read: network.defa_meters is off (it takes effect "
                    "after a restart)");
        return;
    }
    size_t n_un = 0;
    const pw_ctl_unassigned_dev *un = pw_ctl_unassigned_list(app->ctl, &n_un);
    for (size_t i = 0; i < n_un; i++) {
        if (!pw_cfg_link_equal(&un[i].link, link))
            continue;
        snprintf(why, sizeof why,
                 "%s was heard %" PRIu64 " s ago, but the running configuration has no node "
                 "whose meter it is, so its readings are not kept: save the configuration, "
                 "then they show on the dashboard",
                 source, (now - un[i].last_seen_ms) / 1000);
        live_answer(resp, source, map, NULL, 0, why);
        return;
    }
    snprintf(why, sizeof why,
             "no reading from %s: the running configuration has no node whose meter it is and it "
             "has not been heard since the appliance started (check the %s, the facility key "
             "and the network)",
             source, link->kind == PW_CFG_LINK_DEFA ? "serial number" : "device id");
    live_answer(resp, source, map, NULL, 0, why);
}

/* ---- the endpoint ---- */

static void test_meter(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "the body must be a JSON object {\"meter\": {...}, \"grid\": \"TN\"}%s%s",
                 body ? "" : ": ", body ? "" : jerr.text);
        json_decref(body);
        pw_api_set_error(resp, 400, NULL, msg);
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "meter") != 0 && strcmp(key, "grid") != 0) {
            pw_api_set_error(resp, 400, key, "unknown key: the body takes \"meter\" and \"grid\"");
            json_decref(body);
            return;
        }
    }
    const json_t *meter = json_object_get(body, "meter");
    if (!json_is_object(meter)) {
        pw_api_set_error(resp, 400, "meter",
                         "is required: a node's meter as in the configuration, e.g. {\"link\": "
                         "{\"modbus\": {\"host\": \"10.0.0.5\", \"map\": \"sdm630\"}}}");
        json_decref(body);
        return;
    }
    json_t *grid = json_object_get(body, "grid");
    json_t *own_grid = grid ? NULL : json_string(app->cfg->grid == PW_GRID_IT ? "IT" : "TN");
    pw_cfg *cfg = meter_config(meter, grid ? grid : own_grid, resp);
    json_decref(own_grid);
    json_decref(body);
    if (!cfg)
        return;
    const pw_cfg_link link = cfg->meters[0];
    const pw_cfg_meter_opts opts = cfg->meter_opts[0];
    pw_cfg_free(cfg);
    char source[160];
    pw_cfg_link_format(&link, source, sizeof source);
    if (link.kind == PW_CFG_LINK_LAN || link.kind == PW_CFG_LINK_DEFA) {
        live_reading(app, &link, source, resp);
        return;
    }
    pw_transport *tr = NULL;
    for (size_t k = 0; k < app->n_tr && !tr; k++)
        if (app->tr[k]->ops->kind == link.kind && app->tr[k]->ops->test_read)
            tr = app->tr[k];
    if (!tr || app->stopping) {
        pw_api_set_error(resp, 503, "meter.link", "no transport can read this meter now");
        return;
    }
    if (app->meter_test) {
        pw_api_set_error(resp, 429, NULL,
                         "another test read is running: try again when it has answered");
        return;
    }
    meter_test *x = pw_xcalloc(1, sizeof *x);
    x->app = app;
    pw_strlcpy(x->source, source, sizeof x->source);
    /* done never runs inside test_read, so the request is deferred only once the read has
     * started. */
    if (tr->ops->test_read(tr, &link, &opts, on_test_done, x) != 0) {
        free(x);
        pw_api_set_error(resp, 429, NULL,
                         "another test read is running: try again when it has answered");
        return;
    }
    x->pending = pw_web_defer(req);
    app->meter_test = true;
}

bool pw_api_meters_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    if (strcmp(req->path, "/api/meters/test") != 0)
        return false;
    if (strcmp(req->method, "POST") != 0)
        pw_api_set_error(resp, 405, NULL, "use POST with {\"meter\": {...}, \"grid\": \"TN\"}");
    else
        test_meter(app, req, resp);
    return true;
}
