/* Commands that arrive on the broker (docs/mqtt.md): a topic and a payload, both untrusted,
 * turned into a pw_command or a sentence saying what is wrong. Strict: a payload is one of the
 * forms the command takes, whole, or it is refused; nothing is guessed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_mqtt_out.h"
#include "pw_util.h"

#define MAX_AMPS       1000.0
#define MAX_DURATION_S (24u * 3600) /* as POST /api/command takes */

static const char *const kinds[] = {"pause", "priority", "max_current", "facility_limit"};

static bool kind_on(const pw_cfg_mqtt_commands *on, enum pw_command_kind k)
{
    switch (k) {
    case PW_CMD_PAUSE:
        return on->pause;
    case PW_CMD_PRIORITY:
        return on->priority;
    case PW_CMD_MAX_CURRENT:
        return on->max_current;
    case PW_CMD_FACILITY_LIMIT:
        return on->facility_limit;
    }
    return false;
}

size_t pw_mqtt_out_command_filters(const char *base, const pw_cfg_mqtt_commands *on,
                                   char out[][PW_MQTT_OUT_TOPIC_LEN], size_t max)
{
    if (!on->pause && !on->priority && !on->max_current && !on->facility_limit)
        return 0;
    size_t n = 0;
    for (size_t k = 0; k < PW_ARRAY_LEN(kinds) && n < max; k++) {
        if (k == PW_CMD_FACILITY_LIMIT)
            snprintf(out[n++], PW_MQTT_OUT_TOPIC_LEN, "%s/site/%s/set", base, kinds[k]);
        else
            snprintf(out[n++], PW_MQTT_OUT_TOPIC_LEN, "%s/charger/+/%s/set", base, kinds[k]);
    }
    return n;
}

/* ---- the topic ---- */

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* "<base>/charger/<id>/<kind>/set" or "<base>/site/facility_limit/set": the kind and the
 * charger's id, or -1. */
static int parse_topic(const char *base, const char *topic, char id[PW_BAL_ID_LEN])
{
    size_t n = strlen(base);
    if (strncmp(topic, base, n) != 0 || topic[n] != '/')
        return -1;
    const char *rest = topic + n + 1;
    id[0] = '\0';
    if (strcmp(rest, "site/facility_limit/set") == 0)
        return PW_CMD_FACILITY_LIMIT;
    if (strncmp(rest, "charger/", 8) != 0)
        return -1;
    rest += 8;
    size_t len = 0;
    while (id_char(rest[len]))
        len++;
    if (len == 0 || len >= PW_BAL_ID_LEN || rest[len] != '/')
        return -1;
    memcpy(id, rest, len);
    id[len] = '\0';
    rest += len + 1;
    for (int k = PW_CMD_PAUSE; k <= PW_CMD_MAX_CURRENT; k++) {
        size_t kl = strlen(kinds[k]);
        if (strncmp(rest, kinds[k], kl) == 0 && strcmp(rest + kl, "/set") == 0)
            return k;
    }
    return -1;
}

/* ---- payloads ---- */

static bool is_clear(const char *s)
{
    return !*s || strcmp(s, "clear") == 0;
}

/* A plain decimal number ("16", "-3", "10.5", "1e1"): no hex, inf, nan, spaces or '+'. */
static bool parse_number(const char *s, double *out)
{
    if (!*s || strspn(s, "0123456789.-eE") != strlen(s) || *s == '.')
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    const char *d = *s == '-' ? s + 1 : s;
    if (!*d || strspn(d, "0123456789") != strlen(d) || strlen(d) > 6)
        return false;
    long v = strtol(s, NULL, 10);
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int parse_pause(const char *s, pw_command *cmd, char *err, size_t size)
{
    static const char *const yes[] = {"true", "ON", "on", "1"}, *const no[] = {"false", "OFF",
                                                                               "off", "0"};
    for (size_t i = 0; i < PW_ARRAY_LEN(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            cmd->pause = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    snprintf(err, size, "pause takes true or false (also ON/OFF, on/off, 1/0)");
    return PW_MQTT_CMD_E_PAYLOAD;
}

static int parse_priority(const char *s, pw_command *cmd, char *err, size_t size)
{
    if (is_clear(s)) {
        cmd->clear = true;
        return 0;
    }
    if (parse_int(s, -100, 100, &cmd->priority))
        return 0;
    snprintf(err, size, "priority takes a whole number from -100 to 100, or \"clear\"");
    return PW_MQTT_CMD_E_PAYLOAD;
}

static int parse_max_current(const char *s, pw_command *cmd, char *err, size_t size)
{
    if (is_clear(s)) {
        cmd->clear = true;
        return 0;
    }
    if (parse_number(s, &cmd->max_a) && cmd->max_a >= 0 && cmd->max_a <= MAX_AMPS)
        return 0;
    snprintf(err, size, "max_current takes amperes as a number (e.g. 16), or \"clear\"");
    return PW_MQTT_CMD_E_PAYLOAD;
}

static bool amps_ok(const json_t *v, double *out)
{
    if (!json_is_number(v))
        return false;
    double a = json_number_value(v);
    if (!isfinite(a) || a < 0 || a > MAX_AMPS)
        return false;
    *out = a;
    return true;
}

/* {"limit_a": 32 or [32, 32, 25], "duration_s": 900}, nothing else. */
static int parse_facility(const char *s, size_t len, pw_command *cmd, char *err, size_t size)
{
    static const char form[] =
        "facility_limit takes {\"limit_a\": amperes or [L1, L2, L3], \"duration_s\": seconds} "
        "or \"clear\"";
    if (strcmp(s, "clear") == 0) {
        cmd->clear = true;
        return 0;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *limit = json_object_get(doc, "limit_a");
    const json_t *dur = json_object_get(doc, "duration_s");
    bool ok = json_is_object(doc) && json_object_size(doc) == 2 && limit && dur;
    if (ok && json_is_array(limit)) {
        ok = json_array_size(limit) == PW_LINES;
        for (size_t l = 0; ok && l < PW_LINES; l++)
            ok = amps_ok(json_array_get(limit, l), &cmd->limit_a[l]);
    } else if (ok) {
        ok = amps_ok(limit, &cmd->limit_a[0]);
        cmd->limit_a[1] = cmd->limit_a[2] = cmd->limit_a[0];
    }
    json_int_t d = json_is_integer(dur) ? json_integer_value(dur) : 0;
    if (ok && (d < 1 || d > MAX_DURATION_S)) {
        snprintf(err, size, "duration_s must be a whole number of seconds from 1 to %u",
                 MAX_DURATION_S);
        json_decref(doc);
        return PW_MQTT_CMD_E_PAYLOAD;
    }
    json_decref(doc);
    if (!ok) {
        snprintf(err, size, "%s; amperes from 0 to %.0f", form, MAX_AMPS);
        return PW_MQTT_CMD_E_PAYLOAD;
    }
    cmd->duration_s = (uint32_t)d;
    return 0;
}

/* The payload as a C string without surrounding white space; false if it holds a NUL. */
static bool payload_text(const void *payload, size_t len, char *out, size_t *out_len)
{
    const char *p = len ? payload : ""; /* an empty message may come as NULL */
    if (memchr(p, '\0', len))
        return false;
    while (len && strchr(" \t\r\n", p[0]))
        p++, len--;
    while (len && strchr(" \t\r\n", p[len - 1]))
        len--;
    memcpy(out, p, len);
    out[len] = '\0';
    *out_len = len;
    return true;
}

int pw_mqtt_out_command_parse(const char *base, const pw_cfg_mqtt_commands *on, const char *topic,
                              const void *payload, size_t len, bool retained, pw_command *out,
                              char *err, size_t err_size)
{
    pw_command cmd = {0};
    err[0] = '\0';
    int kind = parse_topic(base, topic, cmd.charger);
    if (kind < 0) {
        snprintf(err, err_size, "not a command topic of this site");
        return PW_MQTT_CMD_E_TOPIC;
    }
    cmd.kind = (enum pw_command_kind)kind;
    if (!kind_on(on, cmd.kind)) {
        snprintf(err, err_size, "the %s command is off: enable mqtt.commands.%s in the config",
                 kinds[kind], kinds[kind]);
        return PW_MQTT_CMD_E_OFF;
    }
    if (retained) {
        snprintf(err, err_size,
                 "a retained message is not a command (it would act again on every reconnect): "
                 "publish without the retain flag");
        return PW_MQTT_CMD_E_RETAINED;
    }
    if (len > PW_MQTT_OUT_CMD_MAX) {
        snprintf(err, err_size, "the payload has %zu bytes; a command takes at most %d", len,
                 PW_MQTT_OUT_CMD_MAX);
        return PW_MQTT_CMD_E_SIZE;
    }
    char text[PW_MQTT_OUT_CMD_MAX + 1];
    size_t text_len;
    if (!payload_text(payload, len, text, &text_len)) {
        snprintf(err, err_size, "the payload holds a NUL byte");
        return PW_MQTT_CMD_E_PAYLOAD;
    }
    int rc = 0;
    switch (cmd.kind) {
    case PW_CMD_PAUSE:
        rc = parse_pause(text, &cmd, err, err_size);
        break;
    case PW_CMD_PRIORITY:
        rc = parse_priority(text, &cmd, err, err_size);
        break;
    case PW_CMD_MAX_CURRENT:
        rc = parse_max_current(text, &cmd, err, err_size);
        break;
    case PW_CMD_FACILITY_LIMIT:
        rc = parse_facility(text, text_len, &cmd, err, err_size);
        break;
    }
    if (rc == 0)
        *out = cmd;
    return rc;
}

const char *pw_mqtt_out_command_reason(int rc)
{
    switch (rc) {
    case PW_MQTT_CMD_E_TOPIC:
        return "topic";
    case PW_MQTT_CMD_E_OFF:
        return "off";
    case PW_MQTT_CMD_E_RETAINED:
        return "retained";
    case PW_MQTT_CMD_E_SIZE:
        return "size";
    case PW_MQTT_CMD_E_PAYLOAD:
        return "payload";
    default:
        return "ok";
    }
}

char *pw_mqtt_out_command_result(const char *topic, const void *payload, size_t len,
                                 const char *error)
{
    json_t *doc = json_pack("{s:s, s:b}", "topic", topic, "ok", error == NULL);
    if (!doc) /* a topic that is not UTF-8 (the broker refuses those; be safe anyway) */
        doc = json_pack("{s:s, s:b}", "topic", "", "ok", error == NULL);
    if (error)
        json_object_set_new(doc, "error", json_string(error));
    /* Echoed for people: short UTF-8 text only (a NUL would be "\u0000", which many JSON
     * readers refuse). */
    const char *text = len ? payload : "";
    json_t *echo =
        len <= PW_MQTT_OUT_CMD_MAX && !memchr(text, '\0', len) ? json_stringn(text, len) : NULL;
    if (echo)
        json_object_set_new(doc, "payload", echo);
    char *answer = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return answer;
}
