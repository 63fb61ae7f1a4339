/* The JSON API behind the dashboard (docs/api.md). Errors are JSON objects with a message. */
#include <stdio.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

static void reply_json(pw_web_response *resp, int status, json_t *body)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(8));
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    json_decref(body);
}

static void reply_error(pw_web_response *resp, int status, const char *field, const char *msg)
{
    json_t *err = json_pack("{s:s}", "error", msg);
    if (field)
        json_object_set_new(err, "field", json_string(field));
    reply_json(resp, status, err);
}

void pw_api_handle(void *ud, const pw_web_request *req, pw_web_response *resp)
{
    pw_app *app = ud;
    bool get = strcmp(req->method, "GET") == 0;
    if (strcmp(req->path, "/api/state") == 0 && get) {
        json_t *doc = app->state_doc ? json_loads(app->state_doc, 0, NULL)
                                     : pw_statedoc_build(app, pw_app_now_ms());
        reply_json(resp, 200, doc);
    } else if (strcmp(req->path, "/api/config") == 0 && get) {
        reply_json(resp, 200, pw_cfg_to_json(app->cfg));
    } else if (strcmp(req->path, "/metrics") == 0 && get) {
        resp->status = 200;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        resp->body = pw_metrics_render(app, pw_app_now_ms(), &resp->body_len);
    } else if (strcmp(req->path, "/api/health") == 0 && get) {
        reply_json(resp, 200,
                   json_pack("{s:s, s:s, s:I}", "status", "ok", "version", PW_VERSION, "uptime_s",
                             (json_int_t)((pw_app_now_ms() - app->start_ms) / 1000)));
    } else {
        reply_error(resp, 404, NULL, "no such API endpoint or method");
    }
}
