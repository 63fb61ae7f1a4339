/* The state document as retained topics, one plain value per topic (docs/mqtt.md): the layout
 * people know from evcc. Numbers are text with a fixed number of decimals (amperes one, energy
 * two), booleans "true"/"false", an unknown value the empty payload (which also removes the
 * retained message, so a late subscriber sees "unknown" rather than a stale value). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out_int.h"
#include "pw_util.h"

#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(8))

const char *mqtt_out__str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static double num(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Fixed decimals, "" for unknown, never "-0.0". */
static void fmt_num(char *out, size_t size, double v, int decimals)
{
    if (!isfinite(v)) {
        out[0] = '\0';
        return;
    }
    double unit = decimals == 0 ? 0.5 : decimals == 1 ? 0.05 : 0.005;
    snprintf(out, size, "%.*f", decimals, fabs(v) < unit ? 0.0 : v);
}

/* Sets "<base>/<kind>/<id>/<what>" (kind and id may be NULL: "<base>/<what>"). */
static void put(pw_mqtt_out *o, const char *kind, const char *id, const char *what,
                const char *value)
{
    char topic[PW_MQTT_OUT_TOPIC_LEN];
    if (kind && id)
        snprintf(topic, sizeof topic, "%s/%s/%s/%s", o->opts.base, kind, id, what);
    else
        snprintf(topic, sizeof topic, "%s/%s/%s", o->opts.base, kind ? kind : "site", what);
    pw_mqtt_out_table_set(o->t, topic, value);
}

static void put_num(pw_mqtt_out *o, const char *kind, const char *id, const char *what, double v,
                    int decimals)
{
    char text[48];
    fmt_num(text, sizeof text, v, decimals);
    put(o, kind, id, what, text);
}

static void put_bool(pw_mqtt_out *o, const char *kind, const char *id, const char *what, bool v)
{
    put(o, kind, id, what, v ? "true" : "false");
}

/* A JSON value as its compact text, "" for absent or null. */
static void put_json(pw_mqtt_out *o, const char *kind, const char *id, const char *what,
                     const json_t *v)
{
    char *text = v && !json_is_null(v) ? json_dumps(v, JSON_FLAGS | JSON_ENCODE_ANY) : NULL;
    put(o, kind, id, what, text ? text : "");
    free(text);
}

/* "<what>_l1".."_l3" from a [L1, L2, L3] array. */
static void put_lines(pw_mqtt_out *o, const char *kind, const char *id, const char *what,
                      const json_t *arr)
{
    for (size_t l = 0; l < PW_LINES; l++) {
        char name[48];
        snprintf(name, sizeof name, "%s_l%zu", what, l + 1);
        put_num(o, kind, id, name, num(json_array_get(arr, l)), 1);
    }
}

/* ---- the object ---- */

pw_mqtt_out *pw_mqtt_out_new(const pw_mqtt_out_opts *opts)
{
    pw_mqtt_out *o = pw_xcalloc(1, sizeof *o);
    o->opts = *opts;
    o->t = pw_mqtt_out_table_new(opts->max_topics);
    return o;
}

static void caches_free(pw_mqtt_out *o)
{
    for (size_t i = 0; i < o->n_chargers; i++)
        mqtt_out__disc_clear(&o->chargers[i]);
    for (size_t n = 0; n < o->n_nodes; n++)
        mqtt_out__disc_clear(&o->nodes[n]);
    mqtt_out__disc_clear(&o->site);
    free(o->chargers);
    free(o->nodes);
    o->chargers = o->nodes = NULL;
    o->n_chargers = o->n_nodes = 0;
}

void pw_mqtt_out_free(pw_mqtt_out *o)
{
    if (!o)
        return;
    caches_free(o);
    pw_mqtt_out_table_free(o->t);
    free(o);
}

pw_mqtt_out_table *pw_mqtt_out_table_of(pw_mqtt_out *o)
{
    return o->t;
}

const pw_mqtt_out_opts *pw_mqtt_out_opts_of(const pw_mqtt_out *o)
{
    return &o->opts;
}

void pw_mqtt_out_set_config(pw_mqtt_out *o, const pw_mqtt_out_opts *opts, const pw_cfg *cfg)
{
    /* The table stays: topics the new settings no longer set (another prefix, discovery off,
     * a charger gone) leave at the end of the next round and are cleared on the broker. */
    if (opts) {
        size_t max = o->opts.max_topics;
        o->opts = *opts;
        o->opts.max_topics = max;
    }
    caches_free(o);
    o->cfg = cfg;
    o->n_chargers = cfg ? cfg->n_chargers : 0;
    o->n_nodes = cfg ? cfg->n_nodes : 0;
    o->chargers = pw_xcalloc(o->n_chargers ? o->n_chargers : 1, sizeof *o->chargers);
    o->nodes = pw_xcalloc(o->n_nodes ? o->n_nodes : 1, sizeof *o->nodes);
}

/* ---- one state document ---- */

static void node_topics(pw_mqtt_out *o, size_t n, const json_t *node)
{
    const char *id = mqtt_out__str(node, "id");
    if (!*id)
        return;
    put(o, "node", id, "name", mqtt_out__str(node, "name"));
    put_lines(o, "node", id, "load", json_object_get(node, "measured_a"));
    put_lines(o, "node", id, "limit", json_object_get(node, "limit_a"));
    put_lines(o, "node", id, "headroom", json_object_get(node, "headroom_a"));
    /* An unmetered node has no meter to go stale. */
    put_bool(o, "node", id, "meter_stale",
             json_is_true(json_object_get(json_object_get(node, "meter"), "stale")));
    if (o->opts.home_assistant)
        mqtt_out__ha_node(o, n, node);
}

void pw_mqtt_out_head(pw_mqtt_out *o, const json_t *head)
{
    pw_mqtt_out_table_round_begin(o->t);
    o->online = 0;
    char status[PW_MQTT_OUT_TOPIC_LEN];
    pw_mqtt_out_status_topic(&o->opts, status, sizeof status);
    pw_mqtt_out_table_set(o->t, status, "online"); /* the round must not clear it */
    put(o, NULL, NULL, "name", mqtt_out__str(head, "site"));
    put(o, NULL, NULL, "version", mqtt_out__str(head, "version"));
    const json_t *alerts = json_object_get(head, "alerts");
    put_json(o, NULL, NULL, "alerts", json_is_array(alerts) ? alerts : NULL);
    put_num(o, NULL, NULL, "alert_count", (double)json_array_size(alerts), 0);
    put_json(o, NULL, NULL, "facility_limit", json_object_get(head, "facility_limit"));
    size_t n;
    const json_t *node;
    json_array_foreach(json_object_get(head, "nodes"), n, node) node_topics(o, n, node);
    if (o->opts.home_assistant)
        mqtt_out__ha_site(o, head);
}

/* The operator's override (docs/state.md "override"), as the values control entities show:
 * paused, and the priority and maximum current in force. */
static void override_topics(pw_mqtt_out *o, size_t i, const char *id, const json_t *ov)
{
    const pw_bal_charger_spec *spec =
        o->cfg && i < o->cfg->n_chargers ? &o->cfg->chargers[i] : NULL;
    put_json(o, "charger", id, "override", json_is_object(ov) && json_object_size(ov) ? ov : NULL);
    const json_t *paused = json_object_get(ov, "pause");
    if (!paused)
        paused = json_object_get(ov, "paused");
    put_bool(o, "charger", id, "paused", json_is_true(paused));
    double prio = num(json_object_get(ov, "priority"));
    if (!isfinite(prio) && spec)
        prio = spec->priority;
    put_num(o, "charger", id, "priority", prio, 0);
    double max = num(json_object_get(ov, "max_current_a"));
    if (!isfinite(max))
        max = num(json_object_get(ov, "max_a"));
    if (!isfinite(max) && spec)
        max = spec->max_a;
    put_num(o, "charger", id, "max_current", max, 1);
}

void pw_mqtt_out_charger(pw_mqtt_out *o, size_t i, const json_t *ch, double session_kwh)
{
    const char *id = mqtt_out__str(ch, "id");
    if (!*id)
        return;
    bool online = json_is_true(json_object_get(ch, "online"));
    o->online += online;
    put(o, "charger", id, "name", mqtt_out__str(ch, "name"));
    put(o, "charger", id, "state", mqtt_out__str(ch, "state"));
    put_bool(o, "charger", id, "online", online);
    const json_t *cur = json_object_get(ch, "current_a");
    put_lines(o, "charger", id, "current", cur);
    double sum = 0;
    for (size_t l = 0; l < PW_LINES; l++)
        sum += num(json_array_get(cur, l));
    put_num(o, "charger", id, "current", sum, 1);
    put_num(o, "charger", id, "limit", num(json_object_get(ch, "limit_a")), 1);
    put_num(o, "charger", id, "phases", num(json_object_get(ch, "phases")), 0);
    put(o, "charger", id, "reason", mqtt_out__str(ch, "reason"));
    put(o, "charger", id, "reason_text", mqtt_out__str(ch, "reason_text"));
    put_num(o, "charger", id, "session_energy", session_kwh, 2);
    override_topics(o, i, id, json_object_get(ch, "override"));
    if (o->opts.home_assistant)
        mqtt_out__ha_charger(o, i, ch);
}

void pw_mqtt_out_end(pw_mqtt_out *o)
{
    put_num(o, NULL, NULL, "chargers_online", (double)o->online, 0);
    pw_mqtt_out_table_round_end(o->t);
}

void pw_mqtt_out_status_topic(const pw_mqtt_out_opts *opts, char *out, size_t size)
{
    snprintf(out, size, "%s/status", opts->base);
}

void pw_mqtt_out_ha_status_topic(const pw_mqtt_out_opts *opts, char *out, size_t size)
{
    snprintf(out, size, "%s/status", opts->discovery_prefix);
}
