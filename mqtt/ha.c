/* Home Assistant device-based MQTT discovery (docs/mqtt.md): one retained payload per device on
 * "<discovery prefix>/device/<object id>/config" with the device ("dev"), the origin ("o"), the
 * availability on our status topic and every entity in "cmps". Devices: the site, each circuit
 * (node) and each charger, named as in the config so that a person recognises them ("Garage B
 * 03"); entity names are short ("Current L1") because Home Assistant puts the device's name in
 * front. unique_id: "phasewise_<site>_<charger id>_<what>" (nodes "..._node_<id>_<what>", the
 * site "..._site_<what>"), stable across restarts and renames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out_int.h"
#include "pw_util.h"

#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(8))

void mqtt_out__disc_clear(mqtt_out__disc *d)
{
    free(d->key);
    free(d->payload);
    d->key = d->payload = NULL;
}

void pw_mqtt_out_object_id(const char *id, char *out, size_t size)
{
    size_t n = 0;
    for (; *id && n + 1 < size; id++) {
        char c = *id;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
        out[n++] = keep ? c : '_';
    }
    out[n] = '\0';
}

/* What one device's entities share: where their topics start and how their ids start. */
typedef struct dev_ctx {
    const pw_mqtt_out *o;
    char topic[192]; /* "<base>/charger/<id>" */
    char uid[128];   /* "phasewise_<site>_<id>" */
    json_t *cmps;
} dev_ctx;

static json_t *component(dev_ctx *d, const char *key, const char *platform, const char *name,
                         const char *what)
{
    char uid[256], topic[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(uid, sizeof uid, "%s_%s", d->uid, key);
    snprintf(topic, sizeof topic, "%s/%s", d->topic, what);
    json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "p", platform, "name", name, "unique_id", uid,
                          "state_topic", topic);
    json_object_set_new(d->cmps, key, c);
    return c;
}

/* A sensor in amperes: device class current, one decimal. */
static void amps(dev_ctx *d, const char *key, const char *name)
{
    json_t *c = component(d, key, "sensor", name, key);
    json_object_update_new(c, json_pack("{s:s, s:s, s:s, s:i}", "device_class", "current",
                                        "unit_of_measurement", "A", "state_class", "measurement",
                                        "suggested_display_precision", 1));
}

static void amps_lines(dev_ctx *d, const char *what, const char *name)
{
    for (int l = 1; l <= PW_LINES; l++) {
        char key[48], label[64];
        snprintf(key, sizeof key, "%s_l%d", what, l);
        snprintf(label, sizeof label, "%s L%d", name, l);
        amps(d, key, label);
    }
}

static void count(dev_ctx *d, const char *key, const char *name)
{
    json_t *c = component(d, key, "sensor", name, key);
    json_object_set_new(c, "state_class", json_string("measurement"));
}

/* A binary sensor on a "true"/"false" topic. */
static void flag(dev_ctx *d, const char *key, const char *name, const char *device_class)
{
    json_t *c = component(d, key, "binary_sensor", name, key);
    json_object_update_new(c, json_pack("{s:s, s:s, s:s}", "device_class", device_class,
                                        "payload_on", "true", "payload_off", "false"));
}

/* The device's command topic for what ("<base>/charger/<id>/pause/set"). */
static json_t *command_topic(const dev_ctx *d, const char *what)
{
    char topic[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(topic, sizeof topic, "%s/%s/set", d->topic, what);
    return json_string(topic);
}

/* The payload around the entities: device, origin, availability on our status topic. */
static char *device_payload(dev_ctx *d, json_t *dev)
{
    const pw_mqtt_out_opts *opts = &d->o->opts;
    char status[PW_MQTT_OUT_TOPIC_LEN];
    pw_mqtt_out_status_topic(opts, status, sizeof status);
    json_object_set_new(dev, "ids", json_pack("[s]", d->uid));
    json_t *doc = json_pack("{s:o, s:{s:s, s:s}, s:s, s:s, s:s, s:i, s:o}", "dev", dev, "o", "name",
                            "phasewise", "sw", opts->version, "availability_topic", status,
                            "payload_available", "online", "payload_not_available", "offline",
                            "qos", 0, "cmps", d->cmps);
    char *text = json_dumps(doc, JSON_FLAGS);
    json_decref(doc);
    return text;
}

/* Sets the device's discovery topic from the cache, or from build when key changed. */
static void publish_device(pw_mqtt_out *o, mqtt_out__disc *cache, const char *object_id,
                           const char *key, char *(*build)(pw_mqtt_out *, const void *),
                           const void *arg)
{
    if (!cache->key || strcmp(cache->key, key) != 0) {
        mqtt_out__disc_clear(cache);
        cache->payload = build(o, arg);
        if (!cache->payload)
            return;
        cache->key = pw_xstrdup(key);
    }
    char topic[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(topic, sizeof topic, "%s/device/%s/config", o->opts.discovery_prefix, object_id);
    pw_mqtt_out_table_set(o->t, topic, cache->payload);
}

static void dev_init(dev_ctx *d, const pw_mqtt_out *o, const char *kind, const char *id)
{
    char obj[PW_BAL_ID_LEN], site[PW_BAL_ID_LEN];
    d->o = o;
    d->cmps = json_object();
    pw_mqtt_out_object_id(o->opts.site, site, sizeof site);
    pw_mqtt_out_object_id(id ? id : "", obj, sizeof obj);
    if (!kind) {
        snprintf(d->topic, sizeof d->topic, "%s/site", o->opts.base);
        snprintf(d->uid, sizeof d->uid, "phasewise_%s", site);
    } else {
        snprintf(d->topic, sizeof d->topic, "%s/%s/%s", o->opts.base, kind, id);
        snprintf(d->uid, sizeof d->uid, "phasewise_%s%s%s_%s", site,
                 strcmp(kind, "node") == 0 ? "_" : "", strcmp(kind, "node") == 0 ? "node" : "",
                 obj);
    }
}

/* The site's own id as the devices' via_device. */
static void site_uid(const pw_mqtt_out *o, char *out, size_t size)
{
    char site[PW_BAL_ID_LEN];
    pw_mqtt_out_object_id(o->opts.site, site, sizeof site);
    snprintf(out, size, "phasewise_%s", site);
}

/* ---- the site ---- */

static char *build_site(pw_mqtt_out *o, const void *arg)
{
    const json_t *head = arg;
    dev_ctx d;
    dev_init(&d, o, NULL, NULL);
    /* The site's entities carry "site" in their unique ids, like the topics do. */
    char site[PW_BAL_ID_LEN];
    pw_mqtt_out_object_id(o->opts.site, site, sizeof site);
    snprintf(d.uid, sizeof d.uid, "phasewise_%s_site", site);
    count(&d, "alert_count", "Alerts");
    count(&d, "chargers_online", "Chargers online");
    json_t *version = component(&d, "version", "sensor", "Version", "version");
    json_object_set_new(version, "entity_category", json_string("diagnostic"));
    site_uid(o, d.uid, sizeof d.uid);
    char name[PW_BAL_NAME_LEN + 16];
    snprintf(name, sizeof name, "%s", mqtt_out__str(head, "site"));
    json_t *dev = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "mf", "phasewise", "mdl",
                            "load balancer", "sw", o->opts.version);
    return device_payload(&d, dev);
}

void mqtt_out__ha_site(pw_mqtt_out *o, const json_t *head)
{
    char key[PW_BAL_NAME_LEN + 64], obj[160];
    snprintf(key, sizeof key, "%s\x1f%s", mqtt_out__str(head, "site"), o->opts.version);
    site_uid(o, obj, sizeof obj);
    publish_device(o, &o->site, obj, key, build_site, head);
}

/* ---- a circuit (node) ---- */

static char *build_node(pw_mqtt_out *o, const void *arg)
{
    const json_t *node = arg;
    dev_ctx d;
    dev_init(&d, o, "node", mqtt_out__str(node, "id"));
    amps_lines(&d, "load", "Load");
    amps_lines(&d, "limit", "Limit");
    amps_lines(&d, "headroom", "Headroom");
    if (json_object_get(node, "meter"))
        flag(&d, "meter_stale", "Meter stale", "problem");
    char via[160];
    site_uid(o, via, sizeof via);
    json_t *dev = json_pack("{s:s, s:s, s:s, s:s}", "name", mqtt_out__str(node, "name"), "mf",
                            "phasewise", "mdl", "circuit", "via_device", via);
    return device_payload(&d, dev);
}

void mqtt_out__ha_node(pw_mqtt_out *o, size_t n, const json_t *node)
{
    if (n >= o->n_nodes)
        return;
    char key[256];
    dev_ctx d; /* for the object id only */
    snprintf(key, sizeof key, "%s\x1f%s\x1f%d", mqtt_out__str(node, "id"),
             mqtt_out__str(node, "name"), json_object_get(node, "meter") != NULL);
    dev_init(&d, o, "node", mqtt_out__str(node, "id"));
    json_decref(d.cmps);
    publish_device(o, &o->nodes[n], d.uid, key, build_node, node);
}

/* ---- a charger ---- */

/* What the charger says it is: OCPP's vendor and model, else the model a LAN charger
 * announces. */
static void charger_model(const json_t *ch, const char **vendor, const char **model)
{
    const json_t *ocpp = json_object_get(ch, "ocpp");
    *vendor = mqtt_out__str(ocpp, "vendor");
    *model = mqtt_out__str(ocpp, "model");
    if (!**model)
        *model = mqtt_out__str(ch, "model");
}

/* The enum sensor's options: every reason the balancer gives, and "starting". */
static json_t *reason_options(void)
{
    json_t *arr = json_array();
    for (int r = 0; r < PW_REASON_COUNT; r++)
        json_array_append_new(arr, json_string(pw_bal_reason_name((enum pw_bal_reason)r)));
    json_array_append_new(arr, json_string("starting"));
    return arr;
}

static void charger_controls(dev_ctx *d, const pw_bal_charger_spec *spec)
{
    const pw_cfg_mqtt_commands *on = &d->o->opts.commands;
    if (on->pause) {
        json_t *c = component(d, "pause", "switch", "Pause", "paused");
        json_object_update_new(c, json_pack("{s:o, s:s, s:s, s:s, s:s, s:s}", "command_topic",
                                            command_topic(d, "pause"), "payload_on", "ON",
                                            "payload_off", "OFF", "state_on", "true", "state_off",
                                            "false", "icon", "mdi:pause-circle"));
    }
    if (on->max_current && spec) {
        json_t *c = component(d, "max_current", "number", "Maximum current", "max_current");
        json_object_update_new(c, json_pack("{s:o, s:f, s:f, s:f, s:s, s:s, s:s}", "command_topic",
                                            command_topic(d, "max_current"), "min", spec->min_a,
                                            "max", spec->max_a, "step", 1.0, "unit_of_measurement",
                                            "A", "device_class", "current", "mode", "box"));
    }
    if (on->priority) {
        json_t *c = component(d, "priority", "number", "Priority", "priority");
        json_object_update_new(c, json_pack("{s:o, s:i, s:i, s:i, s:s}", "command_topic",
                                            command_topic(d, "priority"), "min", -100, "max", 100,
                                            "step", 1, "mode", "box"));
    }
}

typedef struct charger_arg {
    const json_t *ch;
    const pw_bal_charger_spec *spec;
} charger_arg;

static char *build_charger(pw_mqtt_out *o, const void *arg)
{
    const charger_arg *a = arg;
    dev_ctx d;
    dev_init(&d, o, "charger", mqtt_out__str(a->ch, "id"));
    amps(&d, "current", "Current");
    amps_lines(&d, "current", "Current");
    amps(&d, "limit", "Limit");
    count(&d, "phases", "Phases");
    json_t *st = component(&d, "state", "sensor", "State", "state");
    json_object_update_new(st, json_pack("{s:s, s:[s,s,s,s,s,s,s]}", "device_class", "enum",
                                         "options", "A", "B", "C", "D", "E", "F", "?"));
    json_t *reason = component(&d, "reason", "sensor", "Reason", "reason");
    json_object_update_new(
        reason, json_pack("{s:s, s:o}", "device_class", "enum", "options", reason_options()));
    json_t *energy = component(&d, "session_energy", "sensor", "Session energy", "session_energy");
    json_object_update_new(energy, json_pack("{s:s, s:s, s:s, s:i}", "device_class", "energy",
                                             "unit_of_measurement", "kWh", "state_class",
                                             "total_increasing", "suggested_display_precision", 2));
    flag(&d, "online", "Online", "connectivity");
    charger_controls(&d, a->spec);
    const char *vendor, *model;
    charger_model(a->ch, &vendor, &model);
    char via[160];
    site_uid(o, via, sizeof via);
    json_t *dev = json_pack("{s:s, s:s, s:s}", "name", mqtt_out__str(a->ch, "name"), "via_device",
                            via, "mf", *vendor ? vendor : "phasewise");
    json_object_set_new(dev, "mdl", json_string(*model ? model : "charger"));
    return device_payload(&d, dev);
}

void mqtt_out__ha_charger(pw_mqtt_out *o, size_t i, const json_t *ch)
{
    if (i >= o->n_chargers)
        return;
    const char *vendor, *model;
    charger_model(ch, &vendor, &model);
    char key[512];
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s\x1f%s", mqtt_out__str(ch, "id"),
             mqtt_out__str(ch, "name"), vendor, model);
    charger_arg a = {.ch = ch, .spec = o->cfg ? &o->cfg->chargers[i] : NULL};
    dev_ctx d;
    dev_init(&d, o, "charger", mqtt_out__str(ch, "id"));
    json_decref(d.cmps);
    publish_device(o, &o->chargers[i], d.uid, key, build_charger, &a);
}

void pw_mqtt_out_ha_online(pw_mqtt_out *o)
{
    if (!o->opts.home_assistant)
        return;
    char prefix[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(prefix, sizeof prefix, "%s/device/", o->opts.discovery_prefix);
    pw_mqtt_out_table_resend(o->t, prefix);
}
