/* libFuzzer target: MQTT meter feed payloads (transport/mqtt_feed.c) on arbitrary bytes,
 * through every preset. The input is a run of messages, each a header byte and a payload up to
 * the next NUL byte: the header's low two bits pick the feed (ams, json with paths, plain,
 * plain without L2), the next two the topic (one of the feed's lines, or none of its), the high
 * four how far time moves on (x 100 ms). Checked after every message: the result is one the
 * header names; a refused or ignored message changed nothing but the note; a reading has a
 * finite value exactly for the lines the meter reports and NaN for the others; the lines
 * waiting for a set are lines the meter reports. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_feed.h"
#include "pw_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_FEEDS 4

static void setup(pw_mqtt_feed feeds[N_FEEDS])
{
    pw_cfg_link ams = {.kind = PW_CFG_LINK_MQTT, .topic = "ams"};
    pw_cfg_meter_opts ao = {.preset = "ams"};
    pw_cfg_link json = {.kind = PW_CFG_LINK_MQTT, .topic = "j"};
    pw_cfg_meter_opts jo = {.preset = "json", .paths = {"a.b", "c.0", "d"}};
    pw_cfg_link plain = {.kind = PW_CFG_LINK_MQTT, .topic = "p1"};
    pw_cfg_meter_opts po = {.preset = "plain", .topics = {"p1", "p2", "p3"}, .interval_ms = 700};
    pw_cfg_meter_opts it = {.preset = "plain", .topics = {"p1", "", "p3"}, .derive_l2 = true};
    if (pw_mqtt_feed_init(&feeds[0], &ams, &ao) || pw_mqtt_feed_init(&feeds[1], &json, &jo) ||
        pw_mqtt_feed_init(&feeds[2], &plain, &po) || pw_mqtt_feed_init(&feeds[3], &plain, &it))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_mqtt_feed feeds[N_FEEDS];
    setup(feeds);
    uint64_t now = 1000;
    size_t i = 0;
    while (i < size) {
        uint8_t h = data[i++];
        const uint8_t *payload = data + i;
        const uint8_t *end = memchr(payload, 0, size - i);
        size_t len = end ? (size_t)(end - payload) : size - i;
        i += len + (end != NULL);
        now += (uint64_t)(h >> 4) * 100;

        pw_mqtt_feed *f = &feeds[h & 3];
        size_t sel = (h >> 2) & 3;
        const char *topic = sel < PW_LINES && f->line[sel].reported ? f->line[sel].topic : "x";
        pw_mqtt_feed before = *f;
        double out[PW_LINES] = {-1, -1, -1};
        int rc = pw_mqtt_feed_input(f, topic, payload, len, now, out);

        if (pw_mqtt_feed_wants(f, topic) != (rc != PW_MQTT_FEED_E_TOPIC))
            abort();
        if (rc < PW_MQTT_FEED_E_TYPE || rc > PW_MQTT_FEED_IGNORED)
            abort();
        if (rc < 0 || rc == PW_MQTT_FEED_IGNORED) {
            memcpy(before.note, f->note, sizeof before.note);
            if (memcmp(&before, f, sizeof before) != 0 || out[0] != -1 || !f->note[0])
                abort();
            if (rc < 0 && !strcmp(pw_mqtt_feed_reason(rc), "ok"))
                abort();
        } else if (rc == PW_MQTT_FEED_READING) {
            for (size_t l = 0; l < PW_LINES; l++)
                if ((f->want & 1u << l) ? !isfinite(out[l]) : !isnan(out[l]))
                    abort();
            if (f->fresh != 0)
                abort();
        }
        if ((f->fresh & ~f->want) != 0 || (rc >= 0 && rc != PW_MQTT_FEED_IGNORED && f->note[0]))
            abort();
        if (f->preset != PW_MQTT_FEED_PLAIN && rc == PW_MQTT_FEED_PARTIAL)
            abort(); /* one JSON message holds all of an ams or json meter's lines */
    }
    return 0;
}
