/* The live state document (docs/state.md): what the dashboard shows and /api/state returns. It
 * reads the control core, the transports' counters and the history writer; it changes nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

/* Wi-Fi weaker than this is what the vendors call a problem worth showing (docs/state.md). */
#define WEAK_WIFI_DBM (-75)

/* The one amperes-to-JSON rule of this document: one decimal is what a person reads on a
 * dashboard, and it keeps the document small. */
static json_t *amps(double a)
{
    return json_real(round(a * 10.0) / 10.0);
}

static json_t *amps3(const double a[PW_LINES])
{
    return json_pack("[ooo]", amps(a[0]), amps(a[1]), amps(a[2]));
}

/* Milliseconds since a device was last heard, null if never. */
static json_t *age_json(uint64_t now, uint64_t seen)
{
    if (!seen)
        return json_null();
    return json_integer((json_int_t)(now > seen ? now - seen : 0));
}

/* A string a device sent, in a fixed-size field: "" rather than a document that fails to build
 * if it is not UTF-8. */
static json_t *device_text(const char *s, size_t size)
{
    json_t *t = json_stringn(s, strnlen(s, size));
    return t ? t : json_string("");
}

static void alert(json_t *alerts, const char *level, const char *text)
{
    json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", level, "text", text));
}

/* What the charger's transport knows beyond the core's report (OCPP: connection, model, whether
 * it takes its limits), as "ocpp": {...}; nothing for transports that say nothing. */
static void transport_info(const pw_app *app, size_t i, const pw_cfg_link *link, json_t *o)
{
    for (size_t k = 0; k < app->n_tr; k++) {
        const pw_transport *t = app->tr[k];
        pw_transport_charger_info ti;
        if (t->ops->kind != link->kind || !t->ops->charger_info || !t->ops->charger_info(t, i, &ti))
            continue;
        json_t *d = json_pack(
            "{s:b, s:o, s:o, s:o, s:s, s:o, s:b, s:o, s:o, s:o, s:I}", "connected", ti.connected,
            "vendor", device_text(ti.vendor, sizeof ti.vendor), "model",
            device_text(ti.model, sizeof ti.model), "firmware",
            device_text(ti.firmware, sizeof ti.firmware), "profile", ti.profile, "problem",
            device_text(ti.problem, sizeof ti.problem), "default_profile", ti.default_profile,
            "measurands", device_text(ti.measurands, sizeof ti.measurands), "tx_id",
            device_text(ti.tx_id, sizeof ti.tx_id), "id_tag",
            device_text(ti.id_tag, sizeof ti.id_tag), "writes_today", (json_int_t)ti.writes_today);
        if (ti.upstream[0]) {
            json_object_set_new(d, "upstream", json_string(ti.upstream));
            json_object_set_new(d, "upstream_queued", json_integer((json_int_t)ti.upstream_queued));
        }
        json_object_set_new(o, t->ops->name, d);
    }
}

/* Before the first plan after a start, and for a charger not heard since, there is no plan to
 * show: say what the charger is doing instead of "0 A, no car". */
static void starting(const pw_ctl *ctl, size_t i, json_t *o)
{
    const pw_ctl_charger_state *ch = pw_ctl_charger(ctl, i);
    const char *text = NULL;
    if (pw_ctl_commands(ctl)[i].held)
        text = "no status heard since phasewise started: it keeps its last limit";
    else if (pw_ctl_starting(ctl))
        text = "phasewise started: it plans once every charger and meter has spoken; until then "
               "each keeps what it was doing";
    if (!text)
        return;
    json_object_set_new(o, "limit_a", ch->has_report ? amps(ch->report.offered_a) : json_null());
    json_object_set_new(o, "reason", json_string("starting"));
    json_object_set_new(o, "reason_text", json_string(text));
}

/* ---- operator overrides (server/command.c) ---- */

json_t *pw_statedoc_override(const pw_app *app, size_t i)
{
    const pw_ctl_override *o = pw_ctl_override_get(app->ctl, i);
    if (!pw_ctl_override_active(o))
        return json_null();
    json_t *j = json_pack("{s:b, s:s}", "paused", o->paused, "source", o->source);
    if (o->has_priority)
        json_object_set_new(j, "priority", json_integer(o->priority));
    if (o->has_max)
        json_object_set_new(j, "max_a", amps(o->max_a));
    return j;
}

json_t *pw_statedoc_facility_limit(const pw_app *app, uint64_t now)
{
    const pw_ctl_facility_limit *fl = pw_ctl_facility_limit_get(app->ctl);
    if (!fl->active)
        return json_null();
    uint64_t left = fl->until_ms > now ? fl->until_ms - now : 0;
    return json_pack("{s:o, s:I, s:s}", "limit_a", amps3(fl->limit_a), "expires_in_s",
                     (json_int_t)((left + 999) / 1000), "source", fl->source);
}

json_t *pw_statedoc_charger(const pw_app *app, size_t i, uint64_t now)
{
    const pw_ctl *ctl = app->ctl;
    const pw_cfg *cfg = pw_ctl_config(ctl);
    const pw_bal_result *res = &pw_bal_results(pw_ctl_balancer(ctl))[i];
    const pw_bal_charger_spec *spec = &cfg->chargers[i];
    const pw_cfg_link *link = &cfg->charger_links[i];
    const pw_ctl_charger_state *ch = pw_ctl_charger(ctl, i);
    const pw_ctl_device_info *info = ch->has_info ? &ch->info : NULL;
    bool online = pw_ctl_online(ctl, i, now);

    static const double no_current[PW_LINES];
    double line[PW_LINES];
    pw_ctl_charger_lines(ctl, i, line);
    char wiring[8], state[2] = "?";
    pw_cfg_wiring_format(spec->wiring, wiring);
    if (online && ch->has_report)
        state[0] = (char)('A' + ch->report.pilot);

    json_t *o = json_pack("{s:s, s:s, s:s}", "id", spec->id, "name", spec->name, "node",
                          cfg->nodes[spec->node].id);
    if (link->kind == PW_CFG_LINK_LAN)
        json_object_set_new(o, "device_id", json_integer(link->device_id));
    json_object_set_new(o, "device_link", pw_cfg_link_to_json(link));
    json_object_update_new(
        o, json_pack("{s:s, s:b, s:o, s:s, s:o, s:o, s:o, s:i, s:s, s:s}", "wiring", wiring,
                     "online", online, "last_seen_ms", age_json(now, ch->last_seen_ms), "state",
                     state, "current_a", amps3(ch->has_report ? ch->report.current_a : no_current),
                     "line_a", amps3(line), "limit_a", amps(res->limit_a), "phases", res->phases,
                     "reason", pw_bal_reason_name(res->reason), "reason_text", res->reason_text));
    json_object_set_new(o, "link", json_string(info && info->link[0] ? info->link : "unknown"));
    json_object_set_new(o, "rssi_dbm", json_integer(info ? info->rssi_dbm : 0));
    json_object_set_new(o, "loss_pct", amps(ch->loss_pct > 0 ? ch->loss_pct : 0));
    if (info) {
        json_object_set_new(o, "model", device_text(info->model, sizeof info->model));
        json_object_set_new(o, "firmware", device_text(info->firmware, sizeof info->firmware));
    }
    starting(ctl, i, o);
    if (pw_ctl_override_active(pw_ctl_override_get(ctl, i)))
        json_object_set_new(o, "override", pw_statedoc_override(app, i));
    /* An upstream CSMS's cap (OCPP local controller), apart from the operator's override. */
    double csms = pw_ctl_csms_cap(ctl, i);
    if (isfinite(csms))
        json_object_set_new(o, "csms_cap_a", amps(csms));
    transport_info(app, i, link, o);
    return o;
}

/* The chargers' draw per node and grid line: every charger counts at its node and at each node
 * above it. n_nodes * PW_LINES entries; caller frees. */
static double *chargers_load(const pw_ctl *ctl)
{
    const pw_cfg *cfg = pw_ctl_config(ctl);
    double *load = pw_xcalloc(cfg->n_nodes ? cfg->n_nodes * PW_LINES : 1, sizeof *load);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        double line[PW_LINES];
        pw_ctl_charger_lines(ctl, i, line);
        for (int n = cfg->chargers[i].node; n >= 0; n = cfg->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES; l++)
                load[(size_t)n * PW_LINES + l] += line[l];
    }
    return load;
}

/* What the transport that reads node's meter says is wrong with it, as "problem" and an alert. */
static void meter_problem(const pw_app *app, size_t n, json_t *meter, json_t *alerts)
{
    const pw_cfg *cfg = pw_ctl_config(app->ctl);
    char problem[200];
    for (size_t k = 0; k < app->n_tr; k++) {
        const pw_transport *t = app->tr[k];
        if (t->ops->kind != cfg->meters[n].kind || !t->ops->meter_problem ||
            !t->ops->meter_problem(t, n, problem, sizeof problem))
            continue;
        json_object_set_new(meter, "problem", json_string(problem));
        char text[300];
        snprintf(text, sizeof text, "meter of '%s': %s", cfg->nodes[n].name, problem);
        alert(alerts, "warn", text);
    }
}

static json_t *node_json(const pw_app *app, size_t n, const double charger_load[PW_LINES],
                         uint64_t now, json_t *alerts)
{
    const pw_cfg *cfg = pw_ctl_config(app->ctl);
    const pw_bal_node_spec *spec = &cfg->nodes[n];
    const pw_bal_node_result *nr = &pw_bal_node_results(pw_ctl_balancer(app->ctl))[n];
    const pw_cfg_link *meter = &cfg->meters[n];
    const pw_ctl_meter_state *m = pw_ctl_meter(app->ctl, n);
    /* Without a reading, what the chargers below the node draw is what we know of its load. */
    const double *measured =
        meter->kind != PW_CFG_LINK_NONE && m->has_reading ? m->line_a : charger_load;
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
            alert(alerts, "error", text);
        }
    }
    if (meter->kind != PW_CFG_LINK_NONE) {
        json_object_set_new(o, "meter",
                            json_pack("{s:s, s:b, s:o}", "kind", pw_cfg_link_kind_name(meter->kind),
                                      "stale", nr->meter_stale, "age_ms",
                                      age_json(now, m->last_seen_ms)));
        if (nr->meter_stale) {
            char text[160];
            snprintf(text, sizeof text, "meter of '%s' stale: conservative budget", spec->name);
            alert(alerts, "warn", text);
        }
        meter_problem(app, n, json_object_get(o, "meter"), alerts);
    }
    return o;
}

static json_t *unassigned_json(const pw_ctl *ctl, uint64_t now)
{
    size_t n;
    const pw_ctl_unassigned_dev *d = pw_ctl_unassigned_list(ctl, &n);
    json_t *list = json_array();
    for (size_t u = 0; u < n; u++) {
        json_t *o = json_pack("{s:o}", "link", pw_cfg_link_to_json(&d[u].link));
        if (d[u].link.kind == PW_CFG_LINK_LAN)
            json_object_set_new(o, "device_id", json_integer(d[u].link.device_id));
        json_object_set_new(o, "model", device_text(d[u].model, sizeof d[u].model));
        json_object_set_new(o, "last_seen_ms", age_json(now, d[u].last_seen_ms));
        json_array_append_new(list, o);
    }
    return list;
}

/* Every transport's traffic summed, and refused input by reason name (docs/state.md). */
static json_t *counters_json(const pw_app *app)
{
    pw_transport_stats sum = {0};
    for (size_t k = 0; k < app->n_tr; k++) {
        pw_transport_stats st;
        app->tr[k]->ops->stats(app->tr[k], &st);
        sum.rx += st.rx;
        sum.rx_accepted += st.rx_accepted;
        sum.tx += st.tx;
        sum.tx_errors += st.tx_errors;
    }
    /* Every refusal the core counted, so that these add up to the alert's total: the LAN
     * protocol's reasons always (zero included), any other reason (the core's "implausible",
     * OCPP's, Modbus', MQTT's) once it happened, each summed over the transports. */
    json_t *rej = json_object();
    for (int slot = 1; slot <= PW_PROTO_E_COUNT; slot++)
        json_object_set_new(rej, pw_proto_err_name(-slot), json_integer(0));
    size_t n;
    const pw_ctl_reject *r = pw_ctl_rejects(app->ctl, &n);
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_object_get(rej, r[k].reason);
        json_int_t count = (v ? json_integer_value(v) : 0) + (json_int_t)r[k].count;
        json_object_set_new(rej, r[k].reason, json_integer(count));
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:I}", "rx", (json_int_t)sum.rx, "accepted",
                     (json_int_t)sum.rx_accepted, "tx", (json_int_t)sum.tx, "tx_errors",
                     (json_int_t)sum.tx_errors, "rejected", rej, "store_errors",
                     (json_int_t)pw_history_stats_get(app->history)->errors);
}

static void device_alerts(const pw_app *app, json_t *alerts)
{
    const pw_cfg *cfg = pw_ctl_config(app->ctl);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_ctl_charger_state *ch = pw_ctl_charger(app->ctl, i);
        if (ch->has_info && strcmp(ch->info.link, "wifi") == 0 &&
            ch->info.rssi_dbm < WEAK_WIFI_DBM) {
            char text[160];
            snprintf(text, sizeof text, "charger '%s' Wi-Fi signal %d dBm is weaker than %d dBm",
                     cfg->chargers[i].name, ch->info.rssi_dbm, WEAK_WIFI_DBM);
            alert(alerts, "warn", text);
        }
    }
    size_t n;
    const pw_ctl_reject *rej = pw_ctl_rejects(app->ctl, &n);
    uint64_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += rej[k].count;
    if (total) {
        char text[128];
        snprintf(text, sizeof text, "%llu datagrams rejected (see counters)",
                 (unsigned long long)total);
        alert(alerts, "warn", text);
    }
    const char *store_error = pw_history_error(app->history);
    if (store_error[0]) {
        char text[320];
        snprintf(text, sizeof text, "history is not being written: %s", store_error);
        alert(alerts, "error", text);
    }
}

json_t *pw_statedoc_build_head(const pw_app *app, uint64_t now)
{
    const pw_cfg *cfg = pw_ctl_config(app->ctl);
    json_t *alerts = json_array();
    json_t *nodes = json_array();
    double *load = chargers_load(app->ctl);
    for (size_t n = 0; n < cfg->n_nodes; n++)
        json_array_append_new(nodes, node_json(app, n, &load[n * PW_LINES], now, alerts));
    free(load);
    if (cfg->commissioning)
        alert(alerts, "warn",
              "not commissioned yet: nothing is balanced and every charger stays at its "
              "failsafe current until a facility is saved on the Commissioning page");
    device_alerts(app, alerts);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "type", "state", "version", PW_VERSION, "site",
                  cfg->site_name, "grid", cfg->grid == PW_GRID_IT ? "IT" : "TN", "time_ms",
                  (json_int_t)pw_wall_ms(), "uptime_s",
                  (json_int_t)(now > app->start_ms ? (now - app->start_ms) / 1000 : 0));
    /* Right after a start nothing is planned until the chargers and meters have spoken. */
    json_object_set_new(doc, "starting", json_boolean(pw_ctl_starting(app->ctl)));
    /* No facility saved yet (a first start): the UI sends the installer to commissioning. */
    json_object_set_new(doc, "commissioning", json_boolean(cfg->commissioning));
    json_object_set_new(doc, "facility_limit", pw_statedoc_facility_limit(app, now));
    json_object_set_new(doc, "nodes", nodes);
    json_object_set_new(doc, "unassigned", unassigned_json(app->ctl, now));
    json_object_set_new(doc, "alerts", alerts);
    json_object_set_new(doc, "counters", counters_json(app));
    json_object_set_new(doc, "uplink", pw_uplink_status_json(app));
    json_object_set_new(doc, "mqtt_publish", pw_mqtt_pub_status_json(app, alerts));
    return doc;
}

json_t *pw_statedoc_build(const pw_app *app, uint64_t now)
{
    json_t *doc = pw_statedoc_build_head(app, now);
    json_t *chargers = json_array();
    size_t n = pw_ctl_config(app->ctl)->n_chargers;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(chargers, pw_statedoc_charger(app, i, now));
    json_object_set_new(doc, "chargers", chargers);
    return doc;
}
