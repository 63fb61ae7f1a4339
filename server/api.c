/* The JSON API behind the dashboard (docs/api.md): live state, configuration, health and
 * metrics here; history in api_history.c, chargers, nodes, preview and pairing in
 * api_facility.c, the meter test read in api_meters.c, backup and restore in api_backup.c. Errors
 * are JSON objects with a message and the field. */
#include <stdio.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

void pw_api_set_json(pw_web_response *resp, int status, json_t *body)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(8));
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    json_decref(body);
}

void pw_api_set_error(pw_web_response *resp, int status, const char *field, const char *msg)
{
    json_t *err = json_pack("{s:s}", "error", msg);
    json_object_set_new(err, "field", field ? json_string(field) : json_null());
    pw_api_set_json(resp, status, err);
}

static json_t *errors_json(const pw_cfg_errors *errs)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < errs->count && i < PW_CFG_MAX_ERRORS; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "field", errs->items[i].field, "message",
                                             errs->items[i].message));
    return arr;
}

void pw_api_set_config_errors(pw_web_response *resp, const pw_cfg_errors *errs)
{
    json_t *body = json_pack("{s:s, s:o}", "error", "the configuration is not valid", "errors",
                             errors_json(errs));
    if (errs->count)
        json_object_set_new(body, "field", json_string(errs->items[0].field));
    pw_api_set_json(resp, 400, body);
}

/* A broker password never leaves the appliance: GET sends it as null (with "password_set"),
 * and a config put back with null (or without it) keeps the saved one. section: "mqtt" or
 * "uplink". */
static void hide_broker_password(json_t *doc, const char *section)
{
    json_t *mqtt = json_object_get(doc, section);
    const char *pw = json_string_value(json_object_get(mqtt, "password"));
    if (!mqtt || !pw)
        return;
    json_object_set_new(mqtt, "password_set", json_boolean(pw[0] != '\0'));
    json_object_set_new(mqtt, "password", json_null());
}

/* Nor does a charge point's password hash: GET sends "password_hash": null and
 * "password_set". */
static void hide_charge_point_passwords(json_t *doc)
{
    size_t i;
    json_t *cp;
    json_array_foreach(json_object_get(json_object_get(doc, "ocpp"), "charge_points"), i, cp)
    {
        const char *hash = json_string_value(json_object_get(cp, "password_hash"));
        json_object_set_new(cp, "password_set", json_boolean(hash && hash[0]));
        json_object_set_new(cp, "password_hash", json_null());
        /* The upstream CSMS's password is kept as given (it is sent): never shown either. */
        const char *up = json_string_value(json_object_get(cp, "upstream_password"));
        json_object_set_new(cp, "upstream_password_set", json_boolean(up && up[0]));
        json_object_set_new(cp, "upstream_password", json_null());
    }
}

/* A charge point entry put back: "password" (16..40 printable characters) becomes a new salted
 * hash, "" removes the password, and without either the saved hash is kept. A password that
 * cannot be hashed stays in the document, and the config check names it. */
static void keep_charge_point_password(const pw_app *app, json_t *cp)
{
    json_object_del(cp, "password_set");
    json_t *pw = json_object_get(cp, "password");
    const char *id = json_string_value(json_object_get(cp, "id"));
    /* The upstream password: null or absent keeps the saved one, a string replaces it. */
    json_object_del(cp, "upstream_password_set");
    json_t *up = json_object_get(cp, "upstream_password");
    if (!up || json_is_null(up)) {
        const pw_cfg_ocpp_cp *saved = id ? pw_cfg_ocpp_cp_find(app->cfg, id) : NULL;
        json_object_set_new(cp, "upstream_password",
                            json_string(saved ? saved->upstream_password : ""));
    }
    if (json_is_string(pw)) {
        const char *text = json_string_value(pw);
        uint8_t salt[16];
        char hash[sizeof((pw_cfg_ocpp_cp *)0)->password_hash];
        if (!text[0]) {
            json_object_set_new(cp, "password_hash", json_string(""));
        } else if (pw_random(salt, sizeof salt) != 0 ||
                   pw_cfg_ocpp_password_hash(text, salt, hash, sizeof hash) != 0) {
            return;
        } else {
            json_object_set_new(cp, "password_hash", json_string(hash));
        }
        json_object_del(cp, "password");
        return;
    }
    json_t *hash = json_object_get(cp, "password_hash");
    if (hash && !json_is_null(hash))
        return;
    const pw_cfg_ocpp_cp *saved = id ? pw_cfg_ocpp_cp_find(app->cfg, id) : NULL;
    json_object_set_new(cp, "password_hash", json_string(saved ? saved->password_hash : ""));
}

/* The saved password of a broker section ("mqtt", "uplink") where root has none. */
static void keep_broker_password(json_t *root, const char *section, const char *saved)
{
    json_t *broker = json_object_get(root, section);
    if (!json_is_object(broker))
        return;
    json_object_del(broker, "password_set");
    json_t *pw = json_object_get(broker, "password");
    if (!pw || json_is_null(pw))
        json_object_set_new(broker, "password", json_string(saved));
}

void pw_api_keep_secrets(const pw_app *app, json_t *root)
{
    size_t i;
    json_t *cp;
    json_array_foreach(json_object_get(json_object_get(root, "ocpp"), "charge_points"), i,
                       cp) if (json_is_object(cp)) keep_charge_point_password(app, cp);
    keep_broker_password(root, "mqtt", app->cfg->mqtt.password);
    keep_broker_password(root, "uplink", app->cfg->uplink.broker.password);
}

/* Parses and validates a config from a request body; on failure replies 400 with every error
 * by field and returns NULL. */
static pw_cfg *config_from_body(const pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    pw_cfg_errors errs;
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) { /* the parser's own message, with the position */
        pw_cfg *none = pw_cfg_parse(req->body, req->body_len, &errs);
        pw_cfg_free(none);
        pw_api_set_config_errors(resp, &errs);
        return NULL;
    }
    pw_api_keep_secrets(app, root);
    pw_cfg *cfg = pw_cfg_from_json(root, &errs);
    json_decref(root);
    if (!cfg)
        pw_api_set_config_errors(resp, &errs);
    return cfg;
}

/* The saved settings that take effect only at a restart, as field paths. */
static json_t *restart_pending(const pw_app *app)
{
    const char *fields[PW_CFG_RESTART_FIELDS_MAX];
    size_t n = pw_app_restart_pending(app, fields, PW_ARRAY_LEN(fields));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(fields[i]));
    return arr;
}

/* The config exactly as saved, and which of its settings wait for a restart. */
static void get_config(const pw_app *app, pw_web_response *resp)
{
    json_t *doc = pw_cfg_to_json(app->cfg);
    hide_broker_password(doc, "mqtt");
    hide_broker_password(doc, "uplink");
    hide_charge_point_passwords(doc);
    json_object_set_new(doc, "restart_pending", restart_pending(app));
    json_object_set_new(doc, "timing_in_force", pw_cfg_timing_in_force_json(app->cfg));
    /* A first start's main fuse has no rating yet: the installer must give it, never accept
     * a placeholder. */
    if (app->cfg->commissioning)
        json_object_del(json_array_get(json_object_get(doc, "nodes"), 0), "limit_a");
    pw_api_set_json(resp, 200, doc);
}

/* The latest state document as it was published: no parse and dump per request. */
static void get_state(const pw_app *app, pw_web_response *resp)
{
    if (!app->state_doc) {
        pw_api_set_json(resp, 200, pw_statedoc_build(app, uv_now(&app->loop)));
        return;
    }
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = pw_xmalloc(app->state_len + 1);
    memcpy(resp->body, app->state_doc, app->state_len + 1);
    resp->body_len = app->state_len;
}

/* Validates, saves atomically, then applies between two ticks; the running config stays in
 * force if any step fails. */
static void put_config(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    pw_cfg *cfg = config_from_body(app, req, resp);
    if (!cfg)
        return;
    pw_cfg_errors errs;
    if (pw_cfg_save(cfg, app->config_path, &errs) != 0) {
        pw_cfg_free(cfg);
        pw_api_set_error(resp, 500, NULL, errs.items[0].message);
        return;
    }
    pw_app_apply_config(app, cfg); /* a first start's first config: balancing starts now */
    pw_api_set_json(resp, 200,
                    json_pack("{s:b, s:o}", "ok", 1, "restart_pending", restart_pending(app)));
}

void pw_api_handle(void *ud, const pw_web_request *req, pw_web_response *resp)
{
    pw_app *app = ud;
    bool get = strcmp(req->method, "GET") == 0;
    if (strcmp(req->path, "/api/state") == 0 && get) {
        get_state(app, resp);
    } else if (strcmp(req->path, "/api/config") == 0 && get) {
        get_config(app, resp);
    } else if (strcmp(req->path, "/api/config/validate") == 0 && strcmp(req->method, "POST") == 0) {
        pw_cfg *cfg = config_from_body(app, req, resp);
        if (cfg) {
            pw_cfg_free(cfg);
            pw_api_set_json(resp, 200, json_pack("{s:b, s:[]}", "ok", 1, "errors"));
        }
    } else if (strcmp(req->path, "/api/config") == 0 && strcmp(req->method, "PUT") == 0) {
        put_config(app, req, resp);
    } else if (strcmp(req->path, "/metrics") == 0 && get) {
        resp->status = 200;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        resp->body = pw_metrics_render(app, uv_now(&app->loop), &resp->body_len);
    } else if (strcmp(req->path, "/api/health") == 0 && get) {
        pw_api_set_json(resp, 200,
                        json_pack("{s:s, s:s, s:I}", "status", "ok", "version", PW_VERSION,
                                  "uptime_s",
                                  (json_int_t)((uv_now(&app->loop) - app->start_ms) / 1000)));
    } else if (!pw_api_history_handle(app, req, resp) && !pw_api_facility_handle(app, req, resp) &&
               !pw_api_meters_handle(app, req, resp) && !pw_api_command_handle(app, req, resp) &&
               !pw_api_mqtt_handle(app, req, resp) && !pw_api_backup_handle(app, req, resp)) {
        pw_api_set_error(resp, 404, NULL, "no such API endpoint or method");
    }
}

pw_web_access pw_api_access(void *ud, const char *method, const char *path)
{
    (void)ud;
    /* Health checks (Docker, monitoring) never log in. */
    if (strcmp(path, "/api/health") == 0)
        return PW_WEB_PUBLIC;
    /* Billing data, the facility key and backups (which hold it) are not dashboard data. */
    if (strncmp(path, "/api/export/", 12) == 0 || strcmp(path, "/api/config/pairing") == 0 ||
        strcmp(path, "/api/backup") == 0)
        return PW_WEB_ADMIN;
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? PW_WEB_READ : PW_WEB_ADMIN;
}
