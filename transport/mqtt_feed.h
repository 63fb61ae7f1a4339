/* MQTT meter feeds, the pure half: one node's meter as its MQTT messages carry it. Given the
 * meter's preset, topics and JSON paths from the config, each message (topic + payload) either
 * completes a reading of the meter's lines, adds to one, carries nothing for us, or is refused
 * with a reason; a refused message changes nothing. No sockets, no clock (now is a parameter),
 * no allocation that outlives a call: the MQTT transport (transport/mqtt.c) feeds it, the unit
 * tests and the fuzzer drive it directly.
 *
 * Presets (docs/meters.md, "MQTT meter feeds"):
 *   "ams"   the AMS reader's JSON on one topic, currents in data.I1, data.I2, data.I3; its
 *           messages without currents (list 1: power only, prices, temperatures, system info)
 *           are ignored, not refused;
 *   "json"  one JSON message on one topic, a dotted path per line ("ENERGY.Current.0": a
 *           number segment indexes an array);
 *   "plain" one topic per line whose payload is a number ("12.5").
 * A reading goes out when every line the meter reports has arrived since the last reading, all
 * within the meter's window (interval_ms, default PW_MQTT_FEED_WINDOW_MS) of each other: a
 * JSON message that holds all lines is a reading at once; plain topics are joined. A line not
 * reported is NaN in the reading (the core derives L2 for a derive_l2 meter). */
#ifndef PW_MQTT_FEED_H
#define PW_MQTT_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_cfg.h"

#define PW_MQTT_FEED_MAX_PAYLOAD 4096 /* a larger message is refused unread */
#define PW_MQTT_FEED_WINDOW_MS   1000 /* plain topics: a line older than this is not joined */

/* What pw_mqtt_feed_input made of a message. */
enum pw_mqtt_feed_rc {
    PW_MQTT_FEED_PARTIAL = 0,    /* taken; the meter's other lines have not all arrived yet */
    PW_MQTT_FEED_READING = 1,    /* out holds a complete reading */
    PW_MQTT_FEED_IGNORED = 2,    /* one of the meter's messages that carries no currents */
    PW_MQTT_FEED_E_TOPIC = -1,   /* not a topic of this feed */
    PW_MQTT_FEED_E_SIZE = -2,    /* larger than PW_MQTT_FEED_MAX_PAYLOAD */
    PW_MQTT_FEED_E_SYNTAX = -3,  /* not JSON, or (plain) not a number */
    PW_MQTT_FEED_E_MISSING = -4, /* a line's path is not in the message */
    PW_MQTT_FEED_E_TYPE = -5,    /* the value for a line is not a number */
    PW_MQTT_FEED_E_CONFIG = -6,  /* init: unknown preset, or no line reported */
};

enum pw_mqtt_feed_preset { PW_MQTT_FEED_AMS, PW_MQTT_FEED_JSON, PW_MQTT_FEED_PLAIN };

typedef struct pw_mqtt_feed_line {
    bool reported;
    char topic[PW_CFG_TOPIC_LEN];
    char path[PW_CFG_PATH_LEN]; /* "" = the payload itself is the number */
} pw_mqtt_feed_line;

/* A plain value struct: copy it, keep it in an array; nothing to free. */
typedef struct pw_mqtt_feed {
    enum pw_mqtt_feed_preset preset;
    pw_mqtt_feed_line line[PW_LINES];
    uint32_t window_ms;
    unsigned want;  /* bit per reported line */
    unsigned fresh; /* bit per line arrived since the last reading */
    double value[PW_LINES];
    uint64_t at[PW_LINES];
    /* Why the last message was refused or ignored, for logs and the meter's problem; "" after
     * a message that was taken. */
    char note[112];
} pw_mqtt_feed;

/* Sets f up for one meter from its link (topic) and options (preset, topics, paths,
 * derive_l2, interval_ms). Returns 0, or PW_MQTT_FEED_E_CONFIG with f->note saying why. */
int pw_mqtt_feed_init(pw_mqtt_feed *f, const pw_cfg_link *link, const pw_cfg_meter_opts *opts);

/* The distinct topics to subscribe to: up to PW_LINES pointers into f (valid while f is
 * unchanged) stored in out; returns how many. */
size_t pw_mqtt_feed_topics(const pw_mqtt_feed *f, const char *out[PW_LINES]);

/* Whether topic is one of the feed's. */
bool pw_mqtt_feed_wants(const pw_mqtt_feed *f, const char *topic);

/* One message received at now (monotonic ms). payload need not be NUL-terminated. Returns a
 * pw_mqtt_feed_rc; on PW_MQTT_FEED_READING out[] holds the reading in amperes, NaN for a line
 * not reported. On an error nothing in f changes but its note. */
int pw_mqtt_feed_input(pw_mqtt_feed *f, const char *topic, const void *payload, size_t len,
                       uint64_t now, double out[PW_LINES]);

/* A short reason name for pw_ctl_rejected ("malformed", "oversize") and a sentence for people.
 * Static strings. */
const char *pw_mqtt_feed_reason(int rc);
const char *pw_mqtt_feed_strerror(int rc);

#endif
