/* State out on MQTT, the pure half (docs/mqtt.md): the live state document turned into retained
 * topics, one value per topic; Home Assistant device-based discovery payloads; the change table
 * that decides what goes out when (a changed value only, at most once a second per topic, all
 * again after a reconnect, an empty retained payload for a topic that left); and the parser of
 * commands that arrive on the broker. No sockets, no clock: the shell (server/mqtt_publish.c)
 * passes now in and publishes what the table hands it. */
#ifndef PW_MQTT_OUT_H
#define PW_MQTT_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"
#include "pw_cfg.h"

#define PW_MQTT_OUT_TOPIC_LEN  256   /* a topic, NUL included */
#define PW_MQTT_OUT_VALUE_MAX  16384 /* the longest value kept (a discovery payload) */
#define PW_MQTT_OUT_MIN_GAP_MS 1000  /* one message per topic per second at most */
/* The most bytes a command payload may have: a facility limit's JSON fits many times over. */
#define PW_MQTT_OUT_CMD_MAX 512

/* ---- the change table --------------------------------------------------------------------- */

/* Every topic the appliance keeps retained on the broker, with its latest value, whether the
 * broker has it, and when it last went out. Memory is bounded by max_topics entries of at most
 * PW_MQTT_OUT_VALUE_MAX bytes each. */
typedef struct pw_mqtt_out_table pw_mqtt_out_table;

/* Caller frees with pw_mqtt_out_table_free (NULL is fine). */
pw_mqtt_out_table *pw_mqtt_out_table_new(size_t max_topics);
void pw_mqtt_out_table_free(pw_mqtt_out_table *t);

/* Sets topic's value (copied). A value that differs from the one the broker holds is due: at
 * once, or when the topic's last message is a second old (only the latest value goes then).
 * Returns 0, or -1 when the table is full or topic or value is too long (nothing kept). */
int pw_mqtt_out_table_set(pw_mqtt_out_table *t, const char *topic, const char *value);
/* The value kept for topic, NULL if none; borrowed until the table changes. */
const char *pw_mqtt_out_table_get(const pw_mqtt_out_table *t, const char *topic);
size_t pw_mqtt_out_table_count(const pw_mqtt_out_table *t);

/* A round is one whole state document: a topic not set between begin and end has left (its
 * charger or node is gone from the config) and is cleared with an empty retained payload, then
 * forgotten. end returns how many topics left. */
void pw_mqtt_out_table_round_begin(pw_mqtt_out_table *t);
size_t pw_mqtt_out_table_round_end(pw_mqtt_out_table *t);

/* Every topic beginning with prefix is due again, paced as usual (Home Assistant came back and
 * wants its discovery payloads). */
void pw_mqtt_out_table_resend(pw_mqtt_out_table *t, const char *prefix);
/* A new connection: the broker may hold nothing of ours, so everything is due at once. */
void pw_mqtt_out_table_reconnected(pw_mqtt_out_table *t);

/* The next message due at now: true with topic and value (borrowed until the next call on the
 * table); the caller publishes it (retained) and then calls sent. The same message comes back
 * until sent is called. */
bool pw_mqtt_out_table_next(pw_mqtt_out_table *t, uint64_t now, const char **topic,
                            const char **value);
void pw_mqtt_out_table_sent(pw_mqtt_out_table *t, uint64_t now);
/* When next may have something: now or earlier when something is due, UINT64_MAX never. */
uint64_t pw_mqtt_out_table_deadline(const pw_mqtt_out_table *t);
/* Topics whose current value the broker does not have yet. */
size_t pw_mqtt_out_table_pending(const pw_mqtt_out_table *t);

/* ---- state topics and Home Assistant discovery -------------------------------------------- */

typedef struct pw_mqtt_out_opts {
    char base[160];           /* "<prefix>/<site id>": every state topic starts with it */
    char site[PW_BAL_ID_LEN]; /* the site id (pw_cfg_site_id), for unique ids */
    bool home_assistant;
    char discovery_prefix[64];
    pw_cfg_mqtt_commands commands; /* which control entities discovery offers */
    char version[32];              /* phasewise's version, for "o" and the site device */
    size_t max_topics;             /* 0: room for a large facility (16384) */
} pw_mqtt_out_opts;

typedef struct pw_mqtt_out pw_mqtt_out;

/* Caller frees with pw_mqtt_out_free (NULL is fine). opts is copied. */
pw_mqtt_out *pw_mqtt_out_new(const pw_mqtt_out_opts *opts);
void pw_mqtt_out_free(pw_mqtt_out *o);
/* The table behind o: the shell drains it (borrowed, lives as long as o). */
pw_mqtt_out_table *pw_mqtt_out_table_of(pw_mqtt_out *o);
const pw_mqtt_out_opts *pw_mqtt_out_opts_of(const pw_mqtt_out *o);

/* The settings (opts copied; NULL keeps them; max_topics stays as created) and the facility in
 * force (cfg borrowed until the next call or pw_mqtt_out_free: charger limits and priorities for
 * the control entities). Discovery payloads are built again after it; topics the new settings
 * no longer set (another prefix, discovery off, a charger gone) are cleared at the end of the
 * next round. Call once before the first round. */
void pw_mqtt_out_set_config(pw_mqtt_out *o, const pw_mqtt_out_opts *opts, const pw_cfg *cfg);

/* One state document, in the order the shell builds it (docs/state.md): head (everything but
 * the chargers) begins a round, then each charger i with its open session's energy (kWh, NaN
 * when its charger has no energy register), then end, which sets the counts over chargers and
 * clears the topics of chargers and nodes that left. JSON borrowed for the call. */
void pw_mqtt_out_head(pw_mqtt_out *o, const json_t *head);
void pw_mqtt_out_charger(pw_mqtt_out *o, size_t i, const json_t *charger, double session_kwh);
void pw_mqtt_out_end(pw_mqtt_out *o);

/* The status topic ("<base>/status", "online"/"offline"; the last will) and Home Assistant's
 * ("<discovery prefix>/status"). */
void pw_mqtt_out_status_topic(const pw_mqtt_out_opts *opts, char *out, size_t size);
void pw_mqtt_out_ha_status_topic(const pw_mqtt_out_opts *opts, char *out, size_t size);
/* Home Assistant said "online" on its status topic: every discovery payload is due again. */
void pw_mqtt_out_ha_online(pw_mqtt_out *o);

/* A discovery object id (and unique id part) from an id: letters, digits, '_' and '-' kept,
 * anything else '_'. */
void pw_mqtt_out_object_id(const char *id, char *out, size_t size);

/* ---- commands ----------------------------------------------------------------------------- */

enum pw_mqtt_cmd_err {
    PW_MQTT_CMD_E_TOPIC = -1,    /* not one of our command topics */
    PW_MQTT_CMD_E_OFF = -2,      /* a command that mqtt.commands leaves off */
    PW_MQTT_CMD_E_RETAINED = -3, /* a retained message: a command is an act, not a state */
    PW_MQTT_CMD_E_SIZE = -4,     /* payload longer than PW_MQTT_OUT_CMD_MAX */
    PW_MQTT_CMD_E_PAYLOAD = -5,  /* payload not what the command takes */
};

/* The topic filters to subscribe to for base and the commands on: none when every command is
 * off; otherwise one per command kind (also those off, so that a command sent while off is
 * answered on the result topic instead of going unheard). Returns how many were written. */
size_t pw_mqtt_out_command_filters(const char *base, const pw_cfg_mqtt_commands *on,
                                   char out[][PW_MQTT_OUT_TOPIC_LEN], size_t max);

/* Turns a message on a command topic into a command for pw_command_apply:
 *   <base>/charger/<id>/pause/set        true/false, ON/OFF, on/off, 1/0
 *   <base>/charger/<id>/priority/set     an integer -100..100, or "" / "clear"
 *   <base>/charger/<id>/max_current/set  amperes 0..1000, or "" / "clear"
 *   <base>/site/facility_limit/set       {"limit_a": A or [L1, L2, L3], "duration_s": s} or
 *                                        "clear"
 * Returns 0 with out filled, or a negative enum pw_mqtt_cmd_err with a sentence in err. The
 * charger's existence and the values against the facility are pw_command_apply's to check. */
int pw_mqtt_out_command_parse(const char *base, const pw_cfg_mqtt_commands *on, const char *topic,
                              const void *payload, size_t len, bool retained, pw_command *out,
                              char *err, size_t err_size);
/* The reason name a refused command is counted under ("topic", "off", "retained", "size",
 * "payload"). */
const char *pw_mqtt_out_command_reason(int rc);
/* The answer on "<base>/command/result": {"topic", "ok", "error"?, "payload"?} (the payload
 * echoed when it is short UTF-8 text without NUL). error NULL: ok. Caller frees. */
char *pw_mqtt_out_command_result(const char *topic, const void *payload, size_t len,
                                 const char *error);

#endif
