/* libFuzzer target: MQTT commands (mqtt/command.c) on arbitrary topics and payloads, and the
 * state topics and discovery payloads (mqtt/state_topics.c, ha.c) made from arbitrary JSON. The
 * first byte picks the commands that are on (low four bits), the retain flag (bit 4) and the
 * mode (bit 5: JSON as a state document's head and as a charger); the topic is what follows up
 * to the first NUL (or, when it starts with '~', the site's base joined to the rest), the
 * payload the remainder. Checked: the result is one of the enum's; an accepted command is of a
 * kind that is on, with finite values in their ranges; a refusal has a sentence and a reason;
 * the answer on the result topic is JSON naming the topic; a state round never leaves a topic
 * without a value and clears nothing that was set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_mqtt_out.h"
#include "pw_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE "phasewise/site"

static void check_command(const pw_cfg_mqtt_commands *on, const pw_command *c)
{
    bool kind_on[] = {on->pause, on->priority, on->max_current, on->facility_limit};
    if ((unsigned)c->kind > PW_CMD_FACILITY_LIMIT || !kind_on[c->kind])
        abort();
    if (c->kind != PW_CMD_FACILITY_LIMIT &&
        (!c->charger[0] || !memchr(c->charger, 0, sizeof c->charger)))
        abort();
    if (c->kind == PW_CMD_PRIORITY && !c->clear && (c->priority < -100 || c->priority > 100))
        abort();
    if (c->kind == PW_CMD_MAX_CURRENT && !c->clear && !(c->max_a >= 0 && c->max_a <= 1000))
        abort();
    if (c->kind == PW_CMD_FACILITY_LIMIT && !c->clear) {
        for (size_t l = 0; l < PW_LINES; l++)
            if (!(c->limit_a[l] >= 0 && c->limit_a[l] <= 1000))
                abort();
        if (c->duration_s < 1)
            abort();
    }
}

static void command(uint8_t flags, const char *topic, const uint8_t *payload, size_t len)
{
    pw_cfg_mqtt_commands on = {flags & 1, (flags >> 1) & 1, (flags >> 2) & 1, (flags >> 3) & 1};
    bool retained = (flags >> 4) & 1;
    pw_command cmd;
    char err[256];
    int rc =
        pw_mqtt_out_command_parse(BASE, &on, topic, payload, len, retained, &cmd, err, sizeof err);
    if (rc < PW_MQTT_CMD_E_PAYLOAD || rc > 0)
        abort();
    if (rc == 0)
        check_command(&on, &cmd);
    else if (!err[0] || strcmp(pw_mqtt_out_command_reason(rc), "ok") == 0)
        abort();
    char *answer = pw_mqtt_out_command_result(topic, payload, len, rc ? err : NULL);
    json_error_t jerr;
    json_t *j = answer ? json_loads(answer, 0, &jerr) : NULL;
    if (!j || !json_is_boolean(json_object_get(j, "ok")) ||
        json_is_true(json_object_get(j, "ok")) != (rc == 0))
        abort();
    json_decref(j);
    free(answer);
}

static void state(const uint8_t *payload, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)payload, len, 0, &jerr);
    if (!doc)
        return;
    pw_mqtt_out_opts opts = {.base = BASE,
                             .site = "site",
                             .home_assistant = true,
                             .discovery_prefix = "homeassistant",
                             .version = "0"};
    opts.commands = (pw_cfg_mqtt_commands){true, true, true, true};
    pw_mqtt_out *o = pw_mqtt_out_new(&opts);
    pw_cfg cfg = {0}; /* no chargers: control entities without limits */
    pw_mqtt_out_set_config(o, NULL, &cfg);
    pw_mqtt_out_head(o, doc);
    pw_mqtt_out_charger(o, 0, doc, NAN);
    json_t *arr = json_object_get(doc, "chargers");
    size_t i;
    json_t *ch;
    json_array_foreach(arr, i, ch) pw_mqtt_out_charger(o, i, ch, 1.5);
    pw_mqtt_out_end(o);
    pw_mqtt_out_table *t = pw_mqtt_out_table_of(o);
    size_t count = pw_mqtt_out_table_count(t), sent = 0;
    const char *topic, *value;
    while (pw_mqtt_out_table_next(t, 0, &topic, &value)) {
        if (!topic[0] || strlen(topic) >= PW_MQTT_OUT_TOPIC_LEN || !value)
            abort();
        pw_mqtt_out_table_sent(t, 0);
        sent++;
    }
    if (sent != count || pw_mqtt_out_table_pending(t) != 0)
        abort(); /* a first round sends every topic once and clears none */
    pw_mqtt_out_free(o);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++, size--;
    if (flags & 0x20) {
        state(data, size);
        return 0;
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char topic[PW_MQTT_OUT_TOPIC_LEN * 2];
    if (tlen > PW_MQTT_OUT_TOPIC_LEN)
        return 0;
    if (tlen && data[0] == '~')
        snprintf(topic, sizeof topic, BASE "/%.*s", (int)tlen - 1, (const char *)data + 1);
    else
        snprintf(topic, sizeof topic, "%.*s", (int)tlen, (const char *)data);
    size_t skip = nul ? tlen + 1 : tlen;
    command(flags, topic, data + skip, size - skip);
    return 0;
}
