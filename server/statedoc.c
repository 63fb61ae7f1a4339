/* The live state document (docs/state.md): what the dashboard shows and /api/state returns. */
#include <math.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

/* One decimal is what a person reads on a dashboard, and it keeps the document small. */
static json_t *amps(double a)
{
    return json_real(round(a * 10.0) / 10.0);
}

static json_t *amps3(const double a[PW_LINES])
{
    return json_pack("[ooo]", amps(a[0]), amps(a[1]), amps(a[2]));
}

static bool is_online(const pw_app *app, const pw_reg_link *link, uint64_t now)
{
    return link->last_seen_ms && now - link->last_seen_ms <= app->cfg->params.offline_ms;
}

/* A charger's terminal currents mapped onto the grid lines it is wired to. */
static void charger_line_amps(const pw_reg_charger *ch, const pw_bal_charger_spec *spec,
                              double line[PW_LINES])
{
    memset(line, 0, sizeof(double) * PW_LINES);
    if (!ch->has_status)
        return;
    for (size_t t = 0; t < PW_LINES; t++)
        if (spec->wiring[t])
            line[spec->wiring[t] - 1] += ch->status.current_ma[t] / 1000.0;
}

static bool node_is_below(const pw_cfg *cfg, int node, size_t ancestor)
{
    for (; node >= 0; node = cfg->nodes[node].parent)
        if ((size_t)node == ancestor)
            return true;
    return false;
}

static const char *link_name(uint8_t link)
{
    switch (link) {
    case PW_LINK_WIFI:
        return "wifi";
    case PW_LINK_CELLULAR:
        return "cellular";
    default:
        return "ethernet";
    }
}

json_t *pw_statedoc_charger(const pw_app *app, size_t i, uint64_t now)
{
    const pw_bal_result *res = pw_bal_results(app->bal);
    const pw_bal_charger_spec *spec = &app->cfg->chargers[i];
    const pw_reg_charger *ch = &app->reg.chargers[i];
    bool online = is_online(app, &ch->link, now);
    double terminal[PW_LINES] = {0}, line[PW_LINES];
    for (size_t t = 0; t < PW_LINES && ch->has_status; t++)
        terminal[t] = ch->status.current_ma[t] / 1000.0;
    charger_line_amps(ch, spec, line);
    char wiring[8], state[2] = "?";
    pw_cfg_wiring_format(spec->wiring, wiring);
    if (online && ch->has_status)
        state[0] = (char)('A' + ch->status.iec_state);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:s, s:o, s:o, s:o, s:i, s:s, s:s}", "id",
                  spec->id, "name", spec->name, "node", app->cfg->nodes[spec->node].id, "device_id",
                  (json_int_t)app->cfg->charger_device_ids[i], "wiring", wiring, "online", online,
                  "state", state, "current_a", amps3(terminal), "line_a", amps3(line), "limit_a",
                  amps(res[i].limit_a), "phases", res[i].phases, "reason",
                  pw_bal_reason_name(res[i].reason), "reason_text", res[i].reason_text);
    json_object_set_new(o, "last_seen_ms",
                        ch->link.last_seen_ms
                            ? json_integer((json_int_t)(now - ch->link.last_seen_ms))
                            : json_null());
    json_object_set_new(o, "link",
                        json_string(ch->announced ? link_name(ch->announce.link) : "unknown"));
    json_object_set_new(o, "rssi_dbm", json_integer(ch->announced ? ch->announce.rssi_dbm : 0));
    json_object_set_new(o, "loss_pct", amps(pw_reg_link_loss_pct(&ch->link)));
    if (ch->announced) {
        json_object_set_new(o, "model", json_string(ch->announce.model));
        json_object_set_new(o, "firmware", json_string(ch->announce.firmware));
    }
    return o;
}

static json_t *node_json(const pw_app *app, size_t n, const pw_bal_node_result *nr, uint64_t now,
                         json_t *alerts)
{
    const pw_cfg *cfg = app->cfg;
    const pw_bal_node_spec *spec = &cfg->nodes[n];
    const pw_reg_meter *m = &app->reg.meters[n];
    double measured[PW_LINES] = {0};
    if (cfg->meters[n].kind != PW_METER_NONE && m->has_reading) {
        for (size_t l = 0; l < PW_LINES; l++)
            measured[l] = m->current_ma[l] / 1000.0;
    } else {
        /* Unmetered: what the chargers below it draw is what we know of its load. */
        for (size_t i = 0; i < cfg->n_chargers; i++) {
            if (!node_is_below(cfg, cfg->chargers[i].node, n))
                continue;
            double line[PW_LINES];
            charger_line_amps(&app->reg.chargers[i], &cfg->chargers[i], line);
            for (size_t l = 0; l < PW_LINES; l++)
                measured[l] += line[l];
        }
    }
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id", spec->id, "name", spec->name,
                          "parent",
                          spec->parent < 0 ? json_null() : json_string(cfg->nodes[spec->parent].id),
                          "limit_a", amps3(spec->limit_a), "measured_a", amps3(measured),
                          "planned_a", amps3(nr->planned_a), "headroom_a", amps3(nr->headroom_a));
    for (size_t l = 0; l < PW_LINES; l++) {
        if (measured[l] > spec->limit_a[l]) {
            char text[160];
            snprintf(text, sizeof text, "node '%s' line L%zu at %.1f A, above its %.0f A limit",
                     spec->name, l + 1, measured[l], spec->limit_a[l]);
            json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", "error", "text", text));
        }
    }
    if (cfg->meters[n].kind != PW_METER_NONE) {
        json_t *meter =
            json_pack("{s:s, s:b}", "kind", cfg->meters[n].kind == PW_METER_PW ? "pw" : "defa",
                      "stale", nr->meter_stale);
        json_object_set_new(meter, "age_ms",
                            m->link.last_seen_ms
                                ? json_integer((json_int_t)(now - m->link.last_seen_ms))
                                : json_null());
        json_object_set_new(o, "meter", meter);
        if (nr->meter_stale) {
            char text[160];
            snprintf(text, sizeof text, "meter of '%s' stale: conservative budget", spec->name);
            json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", "warn", "text", text));
        }
    }
    return o;
}

static json_t *counters_json(const pw_app *app)
{
    json_t *rej = json_object();
    for (int slot = 1; slot < PW_REJECT_SLOTS; slot++)
        json_object_set_new(rej, pw_proto_err_name(-slot),
                            json_integer((json_int_t)app->counters.rejected[slot]));
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:I}", "rx", (json_int_t)app->counters.rx,
                     "accepted", (json_int_t)app->counters.rx_accepted, "tx",
                     (json_int_t)app->counters.tx, "tx_errors", (json_int_t)app->counters.tx_errors,
                     "rejected", rej, "store_errors", (json_int_t)app->counters.store_errors);
}

static void reject_alerts(const pw_app *app, json_t *alerts)
{
    uint64_t total = 0;
    for (int slot = 1; slot < PW_REJECT_SLOTS; slot++)
        total += app->counters.rejected[slot];
    if (total) {
        char text[128];
        snprintf(text, sizeof text, "%llu datagrams rejected (see counters)",
                 (unsigned long long)total);
        json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", "warn", "text", text));
    }
}

json_t *pw_statedoc_build_head(const pw_app *app, uint64_t now)
{
    const pw_cfg *cfg = app->cfg;
    const pw_bal_node_result *nres = pw_bal_node_results(app->bal);
    json_t *alerts = json_array();
    json_t *nodes = json_array();
    for (size_t n = 0; n < cfg->n_nodes; n++)
        json_array_append_new(nodes, node_json(app, n, &nres[n], now, alerts));
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_reg_charger *ch = &app->reg.chargers[i];
        if (ch->announced && ch->announce.link == PW_LINK_WIFI && ch->announce.rssi_dbm < -75) {
            char text[160];
            snprintf(text, sizeof text, "charger '%s' Wi-Fi signal %d dBm is weaker than -75 dBm",
                     cfg->chargers[i].name, ch->announce.rssi_dbm);
            json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", "warn", "text", text));
        }
    }
    json_t *unassigned = json_array();
    for (size_t u = 0; u < app->reg.n_unassigned; u++) {
        const pw_reg_unassigned *d = &app->reg.unassigned[u];
        json_array_append_new(unassigned,
                              json_pack("{s:I, s:s, s:I}", "device_id", (json_int_t)d->device_id,
                                        "model", d->model, "last_seen_ms",
                                        (json_int_t)(now - d->link.last_seen_ms)));
    }
    reject_alerts(app, alerts);
    if (app->store_error[0]) {
        char text[320];
        snprintf(text, sizeof text, "history is not being written: %s", app->store_error);
        json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", "error", "text", text));
    }
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I}", "type", "state", "version", PW_VERSION, "site",
        cfg->site_name, "grid", cfg->grid == PW_GRID_IT ? "IT" : "TN", "time_ms",
        (json_int_t)pw_app_wall_ms(), "uptime_s", (json_int_t)((now - app->start_ms) / 1000));
    json_object_set_new(doc, "nodes", nodes);
    json_object_set_new(doc, "unassigned", unassigned);
    json_object_set_new(doc, "alerts", alerts);
    json_object_set_new(doc, "counters", counters_json(app));
    return doc;
}

json_t *pw_statedoc_build(const pw_app *app, uint64_t now)
{
    json_t *doc = pw_statedoc_build_head(app, now);
    json_t *chargers = json_array();
    for (size_t i = 0; i < app->cfg->n_chargers; i++)
        json_array_append_new(chargers, pw_statedoc_charger(app, i, now));
    json_object_set_new(doc, "chargers", chargers);
    return doc;
}
