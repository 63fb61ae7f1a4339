/* MQTT meter feeds, the pure half (mqtt_feed.h): a message's payload parsed with jansson, the
 * lines it carries taken out by path and joined into readings. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mqtt_feed.h"
#include "pw_util.h"

/* The AMS reader's JSON (amsreader-firmware, JsonMqttHandler json2..json4 templates): the
 * per-line currents are "I1".."I3" inside "data". A config normally carries these (config.c
 * fills them for preset ams); they are the fallback for one put together by hand. */
static const char *const ams_paths[PW_LINES] = {"data.I1", "data.I2", "data.I3"};

int pw_mqtt_feed_init(pw_mqtt_feed *f, const pw_cfg_link *link, const pw_cfg_meter_opts *opts)
{
    *f =
        (pw_mqtt_feed){.window_ms = opts->interval_ms ? opts->interval_ms : PW_MQTT_FEED_WINDOW_MS};
    if (strcmp(opts->preset, "ams") == 0)
        f->preset = PW_MQTT_FEED_AMS;
    else if (strcmp(opts->preset, "json") == 0)
        f->preset = PW_MQTT_FEED_JSON;
    else if (strcmp(opts->preset, "plain") == 0)
        f->preset = PW_MQTT_FEED_PLAIN;
    else {
        snprintf(f->note, sizeof f->note, "unknown preset \"%.16s\" (ams, json or plain)",
                 opts->preset);
        return PW_MQTT_FEED_E_CONFIG;
    }
    for (size_t l = 0; l < PW_LINES; l++) {
        pw_mqtt_feed_line *ln = &f->line[l];
        if (f->preset == PW_MQTT_FEED_PLAIN) {
            pw_strlcpy(ln->topic, opts->topics[l], sizeof ln->topic);
        } else {
            pw_strlcpy(ln->topic, link->topic, sizeof ln->topic);
            const char *path = opts->paths[l];
            if (!*path && f->preset == PW_MQTT_FEED_AMS)
                path = ams_paths[l];
            pw_strlcpy(ln->path, path, sizeof ln->path);
        }
        /* A 3-wire IT meter's L2 is derived by the core from L1 and L3; what a bridge prints
         * for it (the AMS reader prints 0.00) must not stand in for it. */
        ln->reported = *ln->topic && (f->preset == PW_MQTT_FEED_PLAIN || *ln->path) &&
                       !(l == 1 && opts->derive_l2);
        if (!ln->reported)
            *ln->topic = *ln->path = '\0';
        else
            f->want |= 1u << l;
    }
    if (!f->want) {
        snprintf(f->note, sizeof f->note, "reports no line: no topic%s given",
                 f->preset == PW_MQTT_FEED_PLAIN ? "" : " or no path");
        return PW_MQTT_FEED_E_CONFIG;
    }
    return 0;
}

size_t pw_mqtt_feed_topics(const pw_mqtt_feed *f, const char *out[PW_LINES])
{
    size_t n = 0;
    for (size_t l = 0; l < PW_LINES; l++) {
        if (!f->line[l].reported)
            continue;
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], f->line[l].topic) == 0;
        if (!seen)
            out[n++] = f->line[l].topic;
    }
    return n;
}

bool pw_mqtt_feed_wants(const pw_mqtt_feed *f, const char *topic)
{
    for (size_t l = 0; l < PW_LINES; l++)
        if (f->line[l].reported && strcmp(f->line[l].topic, topic) == 0)
            return true;
    return false;
}

/* The value at a dotted path: object members by name, array elements by a number segment. */
static const json_t *lookup(const json_t *v, const char *path)
{
    const char *p = path;
    while (v && *p) {
        size_t n = strcspn(p, ".");
        if (json_is_object(v)) {
            v = json_object_getn(v, p, n);
        } else if (json_is_array(v) && n > 0 && n <= 6 && strspn(p, "0123456789") >= n) {
            size_t i = 0;
            for (size_t k = 0; k < n; k++)
                i = i * 10 + (size_t)(p[k] - '0');
            v = json_array_get(v, i);
        } else {
            v = NULL;
        }
        p += n;
        if (*p == '.')
            p++;
    }
    return v;
}

/* Sets the note and returns rc. */
__attribute__((format(printf, 3, 4))) static int refuse(pw_mqtt_feed *f, int rc, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->note, sizeof f->note, fmt, ap);
    va_end(ap);
    return rc;
}

int pw_mqtt_feed_input(pw_mqtt_feed *f, const char *topic, const void *payload, size_t len,
                       uint64_t now, double out[PW_LINES])
{
    unsigned hit = 0;
    for (size_t l = 0; l < PW_LINES; l++)
        if (f->line[l].reported && strcmp(f->line[l].topic, topic) == 0)
            hit |= 1u << l;
    if (!hit)
        return refuse(f, PW_MQTT_FEED_E_TOPIC, "not a topic of this meter: %.80s", topic);
    if (len > PW_MQTT_FEED_MAX_PAYLOAD)
        return refuse(f, PW_MQTT_FEED_E_SIZE, "a message of %zu bytes, above %d", len,
                      PW_MQTT_FEED_MAX_PAYLOAD);

    /* A plain payload is a JSON number too: the same strict, locale-free parser for both, and
     * "nan", "12,5", "0x10" or "" are refused. Duplicate keys would make a line ambiguous. */
    json_error_t jerr;
    json_t *root = json_loadb(payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return refuse(f, PW_MQTT_FEED_E_SYNTAX,
                      f->preset == PW_MQTT_FEED_PLAIN ? "payload is not a number: %.60s"
                                                      : "payload is not JSON: %.60s",
                      jerr.text);
    int rc = PW_MQTT_FEED_PARTIAL;
    double v[PW_LINES] = {0};
    unsigned missing = 0;
    const char *bad = NULL;
    if (f->preset != PW_MQTT_FEED_PLAIN && !json_is_object(root) && !json_is_array(root)) {
        rc = refuse(f, PW_MQTT_FEED_E_SYNTAX, "payload is not a JSON object");
        goto done;
    }
    for (size_t l = 0; l < PW_LINES; l++) {
        if (!(hit & 1u << l))
            continue;
        const json_t *x = lookup(root, f->line[l].path);
        if (!x) {
            missing |= 1u << l;
            bad = bad ? bad : f->line[l].path;
        } else if (!json_is_number(x)) {
            if (f->preset == PW_MQTT_FEED_PLAIN)
                rc = refuse(f, PW_MQTT_FEED_E_TYPE, "payload is not a number");
            else
                rc = refuse(f, PW_MQTT_FEED_E_TYPE, "%.64s is not a number", f->line[l].path);
            goto done;
        } else {
            v[l] = json_number_value(x);
        }
    }
    /* The AMS reader publishes more than currents on its topic: a message with none of them is
     * one of those, not a broken reading. One with only some of them is broken. */
    if (missing == hit && f->preset == PW_MQTT_FEED_AMS) {
        rc = refuse(f, PW_MQTT_FEED_IGNORED, "message without currents (%s...)", ams_paths[0]);
        goto done;
    }
    if (missing) {
        rc = refuse(f, PW_MQTT_FEED_E_MISSING, "%.64s not in the message", bad);
        goto done;
    }
    f->note[0] = '\0';
    for (size_t l = 0; l < PW_LINES; l++) {
        if (hit & 1u << l) {
            f->value[l] = v[l];
            f->at[l] = now;
        }
    }
    f->fresh |= hit;
    /* A line that came too long before the one completing the set would date the reading. */
    for (size_t l = 0; l < PW_LINES; l++)
        if ((f->fresh & 1u << l) && now - f->at[l] > f->window_ms)
            f->fresh &= ~(1u << l);
    if ((f->fresh & f->want) == f->want) {
        for (size_t l = 0; l < PW_LINES; l++)
            out[l] = f->want & 1u << l ? f->value[l] : NAN;
        f->fresh = 0;
        rc = PW_MQTT_FEED_READING;
    }
done:
    json_decref(root);
    return rc;
}

const char *pw_mqtt_feed_reason(int rc)
{
    switch (rc) {
    case PW_MQTT_FEED_E_SIZE:
        return "oversize";
    case PW_MQTT_FEED_E_SYNTAX:
    case PW_MQTT_FEED_E_MISSING:
    case PW_MQTT_FEED_E_TYPE:
        return "malformed";
    case PW_MQTT_FEED_E_TOPIC:
        return "topic";
    case PW_MQTT_FEED_E_CONFIG:
        return "config";
    default:
        return "ok";
    }
}

const char *pw_mqtt_feed_strerror(int rc)
{
    switch (rc) {
    case PW_MQTT_FEED_PARTIAL:
        return "taken, waiting for the meter's other lines";
    case PW_MQTT_FEED_READING:
        return "a complete reading";
    case PW_MQTT_FEED_IGNORED:
        return "a message of the meter's without currents";
    case PW_MQTT_FEED_E_TOPIC:
        return "not a topic of this meter";
    case PW_MQTT_FEED_E_SIZE:
        return "message larger than 4096 bytes";
    case PW_MQTT_FEED_E_SYNTAX:
        return "payload is not JSON or not a number";
    case PW_MQTT_FEED_E_MISSING:
        return "a line's value is missing from the message";
    case PW_MQTT_FEED_E_TYPE:
        return "a line's value is not a number";
    case PW_MQTT_FEED_E_CONFIG:
        return "the meter's feed settings report no usable line";
    default:
        return "unknown";
    }
}
