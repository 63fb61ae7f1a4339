/* POST /api/mqtt/test (docs/api.md): the commissioning page's "Test connection" for a broker
 * before it is saved, the state publisher's ("target": "mqtt") or the fleet uplink's
 * ("uplink"). The broker object is checked by the config parser inside the saved config, so its
 * errors are the ones a save would give; then a connection of its own is opened (the running
 * ones are not touched) and the answer comes when the broker accepts it, refuses it, or after
 * 10 s (pw_web_defer). A missing password is the saved one. One test at a time; nothing is
 * saved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_mqtt_conn.h"
#include "pw_util.h"

#define TEST_TIMEOUT_MS 10000

typedef struct pw_mqtt_test {
    pw_app *app;
    pw_web_pending *pending;
    pw_mqtt_conn *conn;
    uv_timer_t timer;
    uint64_t t0;
    char broker[96]; /* "host:port" for the answer */
} pw_mqtt_test;

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Answers, closes the connection and frees the test once its timer has closed. */
static void finish(pw_mqtt_test *x, const char *error)
{
    pw_app *app = x->app;
    uint64_t elapsed = uv_now(&app->loop) - x->t0;
    json_t *doc = json_pack("{s:b, s:s, s:I}", "ok", error == NULL, "broker", x->broker,
                            "elapsed_ms", (json_int_t)elapsed);
    if (error)
        json_object_set_new(doc, "error", json_string(error));
    pw_web_response resp = {0};
    pw_api_set_json(&resp, 200, doc);
    pw_web_complete(x->pending, &resp);
    pw_mqtt_conn_close(x->conn);
    app->mqtt_test = NULL;
    uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

static void on_up(void *ud, bool session_present)
{
    (void)session_present;
    finish(ud, NULL);
}

static void on_down(void *ud, const char *problem)
{
    finish(ud, problem);
}

static void on_timeout(uv_timer_t *t)
{
    pw_mqtt_test *x = t->data;
    const char *problem = pw_mqtt_conn_problem(x->conn);
    char text[400];
    snprintf(text, sizeof text, "no answer from %s within %d s%s%s", x->broker,
             TEST_TIMEOUT_MS / 1000, *problem ? ": " : "", problem);
    finish(x, text);
}

void pw_api_mqtt_stop(pw_app *app)
{
    if (app->mqtt_test)
        finish(app->mqtt_test, "the appliance is shutting down");
}

/* ---- validation ---- */

/* The broker inside the saved config, parsed as a save would: the broker's settings, or NULL
 * with a 400 in resp whose fields name the request's keys ("broker.port"). */
static bool parse_broker(const pw_app *app, const char *target, json_t *broker, pw_cfg_mqtt *out,
                         pw_web_response *resp)
{
    bool uplink = strcmp(target, "uplink") == 0;
    const pw_cfg_mqtt *saved = uplink ? &app->cfg->uplink.broker : &app->cfg->mqtt;
    json_t *pw = json_object_get(broker, "password");
    if (!pw || json_is_null(pw))
        json_object_set_new(broker, "password", json_string(saved->password));
    json_object_del(broker, "password_set");
    json_t *root = pw_cfg_to_json(app->cfg);
    if (app->cfg->commissioning) { /* a first start has no charger the parser would take */
        json_object_set_new(json_array_get(json_object_get(root, "nodes"), 0), "limit_a",
                            json_real(10000));
        json_object_set_new(root, "chargers",
                            json_pack("[{s:s, s:{s:{s:i}}, s:s}]", "id", "test", "link", "lan",
                                      "device_id", 1, "node", "main"));
    }
    if (uplink) { /* the site and prefix stay as saved: they are not the connection's */
        json_t *old = json_object_get(root, "uplink");
        json_object_set(broker, "site", json_object_get(old, "site"));
        json_object_set(broker, "prefix", json_object_get(old, "prefix"));
    }
    json_object_set(root, target, broker);
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_from_json(root, &errs);
    json_decref(root);
    if (cfg) {
        *out = uplink ? cfg->uplink.broker : cfg->mqtt;
        pw_cfg_free(cfg);
        return true;
    }
    size_t n = strlen(target);
    for (size_t i = 0; i < errs.count && i < PW_CFG_MAX_ERRORS; i++) {
        char field[sizeof errs.items[i].field];
        const char *f = errs.items[i].field;
        if (strncmp(f, target, n) == 0 && (f[n] == '.' || f[n] == '\0'))
            snprintf(field, sizeof field, "broker%.*s", (int)(sizeof field - 8), f + n);
        else
            pw_strlcpy(field, f, sizeof field);
        pw_strlcpy(errs.items[i].field, field, sizeof errs.items[i].field);
    }
    pw_api_set_config_errors(resp, &errs);
    return false;
}

/* The body {"target": "mqtt"|"uplink", "broker": {...}}: target and broker (a new
 * reference), or false with a 400 in resp. */
static bool parse_body(const pw_web_request *req, const char **target, json_t **broker,
                       pw_web_response *resp, json_t **body)
{
    json_error_t jerr;
    *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(*body)) {
        pw_api_set_error(resp, 400, NULL,
                         "the body must be a JSON object {\"target\": \"mqtt\", \"broker\": "
                         "{\"host\": ..., \"port\": ...}}");
        return false;
    }
    const char *key;
    json_t *value;
    json_object_foreach(*body, key, value)
    {
        if (strcmp(key, "target") != 0 && strcmp(key, "broker") != 0) {
            pw_api_set_error(resp, 400, key,
                             "unknown key: the body takes \"target\" and \"broker\"");
            return false;
        }
    }
    *target = json_string_value(json_object_get(*body, "target"));
    if (!*target)
        *target = "mqtt";
    if (strcmp(*target, "mqtt") != 0 && strcmp(*target, "uplink") != 0) {
        pw_api_set_error(resp, 400, "target", "must be \"mqtt\" or \"uplink\"");
        return false;
    }
    const json_t *b = json_object_get(*body, "broker");
    const char *host = json_string_value(json_object_get(b, "host"));
    if (!json_is_object(b) || !host || !*host) {
        pw_api_set_error(resp, 400, json_is_object(b) ? "broker.host" : "broker",
                         "is required: the broker to test, {\"host\": \"...\", \"port\": 1883}");
        return false;
    }
    *broker = json_deep_copy(b);
    return true;
}

/* ---- the endpoint ---- */

static void test_broker(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    const char *target = NULL;
    json_t *body = NULL, *broker = NULL;
    pw_cfg_mqtt settings;
    bool ok = parse_body(req, &target, &broker, resp, &body) &&
              parse_broker(app, target, broker, &settings, resp);
    bool uplink = ok && strcmp(target, "uplink") == 0;
    json_decref(broker);
    json_decref(body);
    if (!ok)
        return;
    if (app->mqtt_test || app->stopping) {
        pw_api_set_error(resp, 409, NULL,
                         "another connection test is running: try again when it has answered");
        return;
    }
    pw_mqtt_test *x = pw_xcalloc(1, sizeof *x);
    x->app = app;
    x->t0 = uv_now(&app->loop);
    snprintf(x->broker, sizeof x->broker, "%s:%u", settings.host, settings.port);
    pw_mqtt_conn_opts o = {.what = "mqtt test",
                           .section = uplink ? "uplink" : "mqtt",
                           .broker = settings,
                           .clean_session = true};
    /* Never a running connection's id: the broker would throw that one out. */
    if (*settings.client_id)
        snprintf(o.client_id, sizeof o.client_id, "%.58s-test", settings.client_id);
    else
        pw_mqtt_conn_client_id_for(app->cfg->site_name, "-test", o.client_id, sizeof o.client_id);
    pw_mqtt_conn_cb cb = {.ud = x, .up = on_up, .down = on_down};
    char err[320];
    x->conn = pw_mqtt_conn_new(&app->loop, &o, &cb, err, sizeof err);
    if (!x->conn) { /* a certificate or key file that cannot be loaded: answered at once */
        json_t *doc = json_pack("{s:b, s:s, s:s, s:I}", "ok", 0, "broker", x->broker, "error", err,
                                "elapsed_ms", (json_int_t)0);
        free(x);
        pw_api_set_json(resp, 200, doc);
        return;
    }
    uv_timer_init(&app->loop, &x->timer);
    x->timer.data = x;
    uv_timer_start(&x->timer, on_timeout, TEST_TIMEOUT_MS, 0);
    x->pending = pw_web_defer(req);
    app->mqtt_test = x;
}

bool pw_api_mqtt_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    if (strcmp(req->path, "/api/mqtt/test") != 0)
        return false;
    if (strcmp(req->method, "POST") != 0)
        pw_api_set_error(resp, 405, NULL,
                         "use POST with {\"target\": \"mqtt\", \"broker\": {...}}");
    else
        test_broker(app, req, resp);
    return true;
}
