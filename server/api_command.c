/* POST /api/command (docs/api.md): an operator's command from the dashboard or an integration,
 * with an admin login like PUT /api/config. The body is parsed by pw_command_parse and checked
 * and applied by pw_command_apply, the path MQTT commands take too; a refused command changes
 * nothing and answers 400 with the field at fault. */
#include <string.h>

#include "app_int.h"
#include "command.h"

/* What the command changed, as the state document shows it. */
static json_t *answer(const pw_app *app, const pw_command *cmd)
{
    json_t *doc = json_pack("{s:b}", "ok", 1);
    if (cmd->kind == PW_CMD_FACILITY_LIMIT) {
        json_object_set_new(doc, "facility_limit",
                            pw_statedoc_facility_limit(app, uv_now((uv_loop_t *)&app->loop)));
        return doc;
    }
    for (size_t i = 0; i < app->cfg->n_chargers; i++)
        if (strcmp(app->cfg->chargers[i].id, cmd->charger) == 0)
            json_object_set_new(doc, "override", pw_statedoc_override(app, i));
    return doc;
}

static void post_command(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    pw_command cmd;
    char field[64], err[256];
    if (pw_command_parse(req->body ? req->body : "", req->body_len, &cmd, field, sizeof field, err,
                         sizeof err) != 0) {
        pw_api_set_error(resp, 400, field[0] ? field : NULL, err);
        return;
    }
    const char *bad = NULL;
    if (pw_command_check(app, &cmd, &bad, err, sizeof err) != 0 ||
        pw_command_apply(app, &cmd, PW_COMMAND_SOURCE_WEB, err, sizeof err) != 0) {
        pw_api_set_error(resp, 400, bad, err);
        return;
    }
    pw_api_set_json(resp, 200, answer(app, &cmd));
}

bool pw_api_command_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    if (strcmp(req->path, "/api/command") != 0 || strcmp(req->method, "POST") != 0)
        return false;
    post_command(app, req, resp);
    return true;
}
