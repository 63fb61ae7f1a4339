/* POST /api/meters/test and /api/meters/scan (docs/api.md): the commissioning page's "Test read"
 * of a node's meter before the configuration is saved, and its "Scan a Modbus gateway", which
 * asks a range of unit ids behind a gateway with every map through the same test reads. The meter
 * object is validated by the config parser inside a minimal one-node config, so its errors are the
 * ones a save would give; a Modbus or MQTT meter is then read once by its transport and answered
 * later (pw_web_defer), a LAN or DEFA meter, which sends on its own, is answered from the last
 * reading the core holds. One test read at a time per appliance; nothing is saved and nothing
 * reaches the balancer. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

#define TEST_NODE             "test"
#define PW_API_SCAN_MAX_UNITS 32    /* unit ids one scan may ask */
#define PW_API_SCAN_MAX_MS    45000 /* no new read after this: the answer must beat web's minute */

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

/* ---- POST /api/meters/scan: which unit ids answer behind a gateway, and with which map ---- */

/* One test read per (unit, map), one at a time through the transport's test_read: a unit is
 * asked with each map name the config knows (SunSpec discovery first, then the fixed maps; not
 * "generic", which needs registers), and a unit that does not answer the first read at all is
 * not asked again. Holds app->meter_test for the whole scan. */
typedef struct meter_scan {
    pw_app *app;
    pw_web_pending *pending;
    pw_cfg_link link; /* host and port; unit is the one being asked */
    uint8_t last;     /* the last unit id to ask */
    size_t map;       /* index into scan_maps of the read in flight */
    json_t *units;    /* the units that answered: [{unit, maps, map, line_a, serial}] */
    json_t *cur;      /* this unit's entry while it answers, else NULL */
    uint64_t start_ns;
    unsigned reads;
} meter_scan;

/* The maps a scan tries, in order: the config's names with SunSpec first and without
 * "generic". */
static size_t scan_maps(const char **out, size_t max)
{
    size_t n = 0;
    out[n++] = "sunspec";
    for (size_t i = 0; pw_cfg_modbus_map_name(i) && n < max; i++) {
        const char *name = pw_cfg_modbus_map_name(i);
        if (strcmp(name, "sunspec") != 0 && strcmp(name, "generic") != 0)
            out[n++] = name;
    }
    return n;
}

static void scan_finish(meter_scan *x, const char *error)
{
    pw_app *app = x->app;
    app->meter_test = false;
    char gw[96];
    snprintf(gw, sizeof gw, "%s:%u", x->link.host, x->link.port);
    json_t *doc = json_pack(
        "{s:b, s:s, s:o, s:I, s:i}", "ok", error == NULL, "gateway", gw, "units", x->units,
        "elapsed_ms", (json_int_t)((uv_hrtime() - x->start_ns) / 1000000u), "reads", (int)x->reads);
    if (error)
        json_object_set_new(doc, "error", json_string(error));
    if (x->cur) /* a unit cut short: what it answered so far */
        json_array_append_new(x->units, x->cur);
    pw_web_response resp = {0};
    pw_api_set_json(&resp, 200, doc);
    pw_web_complete(x->pending, &resp);
    free(x);
}

static void on_scan_read(void *ud, const pw_transport_test_result *r);

/* Starts the read of x->link.unit with map x->map. Returns 0, or -1 when none can start. */
static int scan_start(meter_scan *x)
{
    const char *maps[16];
    scan_maps(maps, PW_ARRAY_LEN(maps));
    pw_cfg_meter_opts opts = {.interval_ms = 1000, .timeout_ms = 1000};
    pw_strlcpy(opts.map, maps[x->map], sizeof opts.map);
    pw_transport *tr = NULL;
    for (size_t k = 0; k < x->app->n_tr && !tr && !x->app->stopping; k++)
        if (x->app->tr[k]->ops->kind == PW_CFG_LINK_MODBUS && x->app->tr[k]->ops->test_read)
            tr = x->app->tr[k];
    if (!tr || tr->ops->test_read(tr, &x->link, &opts, on_scan_read, x) != 0)
        return -1;
    x->reads++;
    return 0;
}

/* The next read, or the answer when there is none to make. */
static void scan_read(meter_scan *x)
{
    char why[96];
    uint64_t ms = (uv_hrtime() - x->start_ns) / 1000000u;
    if (ms > PW_API_SCAN_MAX_MS) {
        /* Deferred answers wait a minute at most: what was found so far, and where to go on. */
        snprintf(why, sizeof why, "stopped after %u s before unit %u: scan fewer units at once",
                 (unsigned)(ms / 1000), x->link.unit);
        scan_finish(x, why);
    } else if (scan_start(x) != 0) {
        scan_finish(x, "the appliance is shutting down");
    }
}

static void on_scan_read(void *ud, const pw_transport_test_result *r)
{
    meter_scan *x = ud;
    const char *maps[16];
    size_t n_maps = scan_maps(maps, PW_ARRAY_LEN(maps));
    if (x->app->stopping || !pw_web_pending_alive(x->pending)) {
        scan_finish(x, "the appliance is shutting down, or the client went away");
        return;
    }
    if (!r->connected) { /* the gateway itself: no unit behind it can answer */
        scan_finish(x, r->error);
        return;
    }
    if (r->answered && !x->cur)
        x->cur = json_pack("{s:i, s:[], s:n, s:n, s:n}", "unit", x->link.unit, "maps", "map",
                           "line_a", "serial");
    if (r->ok) {
        json_array_append_new(json_object_get(x->cur, "maps"), json_string(maps[x->map]));
        if (json_is_null(json_object_get(x->cur, "map"))) { /* the first map that read */
            json_object_set_new(x->cur, "map", json_string(maps[x->map]));
            json_object_set_new(x->cur, "title", json_string(r->map));
            json_object_set_new(x->cur, "line_a", lines_json(r->line_a));
            json_object_set_new(x->cur, "serial",
                                r->has_serial ? json_integer(r->serial) : json_null());
        }
    }
    /* The next map for a unit that answered, else the next unit. */
    if (x->cur && x->map + 1 < n_maps) {
        x->map++;
        scan_read(x);
        return;
    }
    if (x->cur) {
        json_array_append_new(x->units, x->cur);
        x->cur = NULL;
    }
    if (x->link.unit >= x->last) {
        scan_finish(x, NULL);
        return;
    }
    x->link.unit++;
    x->map = 0;
    scan_read(x);
}

static json_int_t int_or(const json_t *v, json_int_t dflt)
{
    return v ? (json_is_integer(v) ? json_integer_value(v) : -1) : dflt;
}

static void scan_gateway(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        pw_api_set_error(resp, 400, NULL,
                         "the body must be a JSON object {\"host\": \"10.0.0.5\", \"port\": 502, "
                         "\"units\": [1, 10]}");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "host") != 0 && strcmp(key, "port") != 0 && strcmp(key, "units") != 0) {
            pw_api_set_error(resp, 400, key,
                             "unknown key: the body takes \"host\", \"port\" and \"units\"");
            json_decref(body);
            return;
        }
    }
    const json_t *units = json_object_get(body, "units");
    json_int_t from = int_or(json_array_get(units, 0), -1),
               to = int_or(json_array_get(units, 1), -1);
    if (!json_is_array(units) || json_array_size(units) != 2 || from < 1 || to > 247 || from > to ||
        to - from + 1 > PW_API_SCAN_MAX_UNITS) {
        json_decref(body);
        pw_api_set_error(resp, 400, "units",
                         "must be [first, last]: unit ids 1-247, first <= last, at most 32 of "
                         "them");
        return;
    }
    /* The gateway's address checked as a meter link would be, with the errors' fields as the
     * request names them ("host", "port"). */
    json_t *host = json_object_get(body, "host"), *port = json_object_get(body, "port");
    json_t *meter = json_pack(
        "{s:{s:{s:O, s:o, s:I, s:s}}}", "link", "modbus", "host", host ? host : json_null(), "port",
        port ? json_incref(port) : json_integer(502), "unit", from, "map", "sdm630");
    json_decref(body);
    json_t *grid = json_string("TN");
    pw_cfg *cfg = meter_config(meter, grid, resp);
    json_decref(grid);
    json_decref(meter);
    if (!cfg) {
        json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);
        free(resp->body);
        resp->body = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(doc, "errors"), i, e)
        {
            const char *f = json_string_value(json_object_get(e, "field"));
            const char *last = f ? strrchr(f, '.') : NULL;
            json_object_set_new(e, "field", json_string(last ? last + 1 : ""));
        }
        const char *first = json_string_value(
            json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "field"));
        json_object_set_new(doc, "field", first ? json_string(first) : json_null());
        json_object_set_new(doc, "error", json_string("the gateway's address is not valid"));
        pw_api_set_json(resp, 400, doc);
        return;
    }
    pw_cfg_link link = cfg->meters[0];
    pw_cfg_free(cfg);
    if (app->meter_test) {
        pw_api_set_error(resp, 429, NULL,
                         "another test read or scan is running: try again when it has answered");
        return;
    }
    meter_scan *x = pw_xcalloc(1, sizeof *x);
    x->app = app;
    x->link = link;
    x->link.unit = (uint8_t)from;
    x->last = (uint8_t)to;
    x->units = json_array();
    x->start_ns = uv_hrtime();
    /* done never runs inside test_read, so the request is deferred only once the read has
     * started. */
    if (scan_start(x) != 0) {
        json_decref(x->units);
        free(x);
        pw_api_set_error(resp, 503, NULL, "no transport can read Modbus meters now");
        return;
    }
    app->meter_test = true;
    x->pending = pw_web_defer(req);
}

bool pw_api_meters_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    bool scan = strcmp(req->path, "/api/meters/scan") == 0;
    if (strcmp(req->path, "/api/meters/test") != 0 && !scan)
        return false;
    if (strcmp(req->method, "POST") != 0)
        pw_api_set_error(resp, 405, NULL,
                         scan ? "use POST with {\"host\": \"10.0.0.5\", \"port\": 502, \"units\": "
                                "[1, 10]}"
                              : "use POST with {\"meter\": {...}, \"grid\": \"TN\"}");
    else if (scan)
        scan_gateway(app, req, resp);
    else
        test_meter(app, req, resp);
    return true;
}
