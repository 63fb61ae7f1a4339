/* The facility configuration: load it from JSON, validate every field with messages that name
 * the field, turn it back into JSON and save it atomically. Pure apart from file reads and
 * writes: no sockets, no clock. The file format is documented in docs/config.md. */
#ifndef PW_CFG_H
#define PW_CFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_bal.h"

#define PW_CFG_MAX_NODES         256
#define PW_CFG_MAX_CHARGERS      10000
#define PW_CFG_MAX_TAGS          10000
#define PW_CFG_MAX_CHARGE_POINTS PW_CFG_MAX_CHARGERS
#define PW_CFG_MAX_ERRORS        32
#define PW_CFG_MAX_FILE          (4u << 20)      /* a config larger than 4 MiB is refused */
#define PW_CFG_DEFAULT_GROUP     "239.255.80.87" /* same as PW_PROTO_DEFAULT_GROUP */
#define PW_CFG_DEFAULT_PORT      48870

typedef struct pw_cfg_error {
    char field[96];    /* JSON path: "chargers[3].max_a" */
    char message[160]; /* what is wrong and what is allowed */
} pw_cfg_error;

typedef struct pw_cfg_errors {
    size_t count; /* may exceed PW_CFG_MAX_ERRORS; only the first ones are kept */
    pw_cfg_error items[PW_CFG_MAX_ERRORS];
} pw_cfg_errors;

/* How a device is reached: the transport it speaks and its identity there. In the file it is
 * {"lan": {"device_id": 1001}}, {"defa": {"serial": "..."}}, {"modbus": {"host": "10.0.0.5",
 * "port": 502, "unit": 3, "map": "sdm630", ...}}, {"mqtt": {"topic": "...", ...}} or (chargers
 * only) {"ocpp": {"id": "CP-17", "connector": 1}}. */
enum pw_cfg_link_kind {
    PW_CFG_LINK_NONE = 0,   /* not reached at all (an unmetered node) */
    PW_CFG_LINK_LAN = 1,    /* phasewise LAN protocol, by device id */
    PW_CFG_LINK_DEFA = 2,   /* DEFA Balancer meter frame, by serial number (meters only) */
    PW_CFG_LINK_MODBUS = 3, /* Modbus TCP, by gateway and unit id (meters only) */
    PW_CFG_LINK_MQTT = 4,   /* MQTT feed on the configured broker, by topic (meters only) */
    PW_CFG_LINK_OCPP = 5,   /* OCPP 1.6J charge point, by its identity and connector (chargers) */
    PW_CFG_LINK_KINDS
};

#define PW_CFG_CP_ID_LEN          49 /* an OCPP identity: 1..48 of A-Z a-z 0-9 . _ - : */
#define PW_CFG_OCPP_MAX_CONNECTOR 8  /* same as PW_OCPP_MAX_CONNECTORS */

/* The identity of a device; what else a meter link says is in pw_cfg_meter_opts. */
typedef struct pw_cfg_link {
    enum pw_cfg_link_kind kind;
    uint32_t device_id;           /* lan */
    char serial[12];              /* defa */
    char host[64];                /* modbus: the gateway's IPv4 address or host name */
    uint16_t port;                /* modbus: its TCP port (502) */
    uint8_t unit;                 /* modbus: the meter's unit id behind it (1..247) */
    char topic[128];              /* mqtt: the topic (plain form: the L1 topic) */
    char cp_id[PW_CFG_CP_ID_LEN]; /* ocpp: the charge point's identity (its URL's last part) */
    uint8_t connector;            /* ocpp: its connector, 1..PW_CFG_OCPP_MAX_CONNECTOR (1) */
} pw_cfg_link;

/* Register value types of a generic Modbus map. */
enum pw_cfg_reg_type {
    PW_CFG_REG_U16 = 0,
    PW_CFG_REG_S16,
    PW_CFG_REG_U32,
    PW_CFG_REG_S32,
    PW_CFG_REG_F32,
};

typedef struct pw_cfg_generic_reg {
    bool present; /* false: this line is not read (e.g. L2 on a 3-wire IT meter) */
    uint16_t address;
    enum pw_cfg_reg_type type;
    double scale; /* register value x scale = amperes */
} pw_cfg_generic_reg;

#define PW_CFG_MAP_LEN   16
#define PW_CFG_TOPIC_LEN 128
#define PW_CFG_PATH_LEN  64

/* How a meter is read beyond its identity, parallel to cfg->meters. */
typedef struct pw_cfg_meter_opts {
    /* modbus */
    char map[PW_CFG_MAP_LEN];   /* "sdm630", "sdm72v1", "sdm72v2", "em340", "em24", "em24eth",
                                   "abb_b2x", "sunspec", "generic" */
    uint32_t interval_ms;       /* poll interval (1000) */
    uint32_t timeout_ms;        /* an answer later than this is a timeout (1000) */
    uint8_t function;           /* generic: 3 (holding) or 4 (input registers) */
    bool low_word_first;        /* generic: 32-bit values with the low word first */
    pw_cfg_generic_reg line[3]; /* generic: the current of each grid line */
    /* mqtt */
    char preset[8];                   /* "ams" (AMS reader JSON), "json" (a path per line), "plain"
                                         (one value per topic) */
    char topics[3][PW_CFG_TOPIC_LEN]; /* plain: one topic per line ("" = not reported) */
    char paths[3][PW_CFG_PATH_LEN];   /* json: a dotted path per line ("" = not reported) */
    /* any */
    bool derive_l2; /* a 3-wire IT meter reporting only L1 and L3: L2 derived (docs/meters.md) */
} pw_cfg_meter_opts;

/* The MQTT broker meter feeds come from (off when host is ""). */
typedef struct pw_cfg_mqtt {
    char host[64];
    uint16_t port; /* 1883, or 8883 with TLS */
    char username[64];
    char password[128];
    char client_id[64]; /* "" = "phasewise-<site>" */
    bool tls;
    char ca_file[256];   /* PEM CA to check the broker with; "" = the system's */
    char cert_file[256]; /* PEM client certificate for brokers that ask for one; "" = none */
    char key_file[256];  /* its private key (PEM); set together with cert_file */
    uint16_t keepalive_s;
} pw_cfg_mqtt;

/* State out on the mqtt broker (docs/mqtt.md): retained topics under prefix, Home Assistant
 * discovery. Off unless enabled. */
typedef struct pw_cfg_mqtt_publish {
    bool enabled;
    char prefix[64];           /* "phasewise": topics are "<prefix>/<site id>/..." */
    bool home_assistant;       /* device-based discovery under discovery_prefix */
    char discovery_prefix[64]; /* "homeassistant" */
} pw_cfg_mqtt_publish;

/* Commands accepted on the mqtt broker, each off unless set (docs/mqtt.md). */
typedef struct pw_cfg_mqtt_commands {
    bool pause;          /* pause / resume a charger */
    bool priority;       /* a charger's priority */
    bool max_current;    /* a charger's maximum current */
    bool facility_limit; /* a temporary limit on the facility's connection, with an expiry */
} pw_cfg_mqtt_commands;

/* The fleet uplink (docs/mqtt.md): a second, independent broker connection that sends the
 * site's sessions, 15-minute aggregates, events and alerts to a central broker from an outbox
 * in SQLite. Off when broker.host is "". */
typedef struct pw_cfg_uplink {
    pw_cfg_mqtt broker;       /* TLS on by default (port 8883), the broker's certificate checked */
    char site[PW_BAL_ID_LEN]; /* the site's id in topics; "" = made from site_name */
    char prefix[64];          /* "phasewise/fleet": topics are "<prefix>/<site>/..." */
} pw_cfg_uplink;

/* An OCPP charge point the installer assigned (chargers name it by cp_id in their links). */
typedef struct pw_cfg_ocpp_cp {
    char id[PW_CFG_CP_ID_LEN];
    /* Security profile 1/2: the HTTP Basic password's hash, "sha256:<salt hex>:<hash hex>" (a
     * salted SHA-256 of a high-entropy key of 16..40 characters, as OCPP's AuthorizationKey);
     * "" = none required (profile 0, trusted LAN). The file never holds the password itself. */
    char password_hash[112];
    char quirks[24]; /* a quirk table entry overriding the vendor/model choice; "" = automatic */
    /* The HTTP Basic password phasewise sends the upstream CSMS for this charge point (local
     * controller; user = the charge point's id). Kept as given, since it is sent, like
     * mqtt.password; GET /api/config never shows it. "" = none. */
    char upstream_password[64];
} pw_cfg_ocpp_cp;

/* The OCPP local controller: an operator's CSMS that phasewise connects to on behalf of each
 * assigned charge point (off when url is ""). */
typedef struct pw_cfg_ocpp_upstream {
    char url[256];        /* "ws://10.0.0.5:9000/ocpp": the charge point's id is appended */
    char ca_file[256];    /* wss://: PEM CA to check the CSMS with; "" = the system's */
    bool authorize_local; /* "authorize": "local": phasewise answers Authorize from "tags";
                             "charge_point" (false): Accepted, the charger's own authorization
                             list and cache decide */
    bool authorize_csms;  /* "authorize": "csms": the CSMS's verdict while it answers in time,
                             otherwise as "charge_point" */
} pw_cfg_ocpp_upstream;

/* The OCPP 1.6J central system (off when listen_port is 0). */
typedef struct pw_cfg_ocpp {
    char listen_addr[64];          /* "127.0.0.1" by default: the LAN only when named */
    uint16_t listen_port;          /* 0 = off; "listen": "ADDRESS:PORT" in the file */
    bool tls;                      /* wss:// with the appliance's certificate (http.tls's pair) */
    uint32_t meter_interval_s;     /* MeterValueSampleInterval set on every charge point (10) */
    uint32_t heartbeat_s;          /* heartbeat interval given at boot (300) */
    uint32_t min_interval_s;       /* a raise goes out no sooner than this after the last (10) */
    uint32_t daily_writes;         /* profiles per connector per 24 h before raises wait (500) */
    bool local_authorize;          /* Authorize answered from the tag list (unknown tags Invalid);
                                      false: every tag Accepted */
    pw_cfg_ocpp_cp *charge_points; /* n_charge_points, sorted by id (pw_cfg_ocpp_cp_find) */
    size_t n_charge_points;
    pw_cfg_ocpp_upstream upstream;
} pw_cfg_ocpp;

/* An RFID tag (OCPP idTag) and who it belongs to: a person or a car. OCPP 1.6 compares idTags
 * as CiString20, ignoring letter case: so does the config ("04a2b3c4" is "04A2B3C4"). */
typedef struct pw_cfg_tag {
    char id[21]; /* IdToken: 1..20 printable ASCII characters without space, as written */
    char name[PW_BAL_NAME_LEN];
} pw_cfg_tag;

typedef struct pw_cfg_net {
    char group[16]; /* IPv4 multicast group, dotted quad */
    uint16_t port;
    char interface[16]; /* IPv4 address of the interface to join on; 127.0.0.1 for loopback */
    uint8_t ttl;
    char key_file[256]; /* facility key; relative paths are relative to the data folder */
    bool defa_meters;   /* listen for DEFA Balancer meter frames (unauthenticated) */
    bool defa_emit;     /* emit the main node's currents as DEFA frames (unauthenticated) */
} pw_cfg_net;

/* HTTPS for the dashboard and API. Relative paths are relative to the data folder; when
 * neither file exists the appliance generates a self-signed pair there on start. */
typedef struct pw_cfg_tls {
    bool enabled;
    char cert_file[256]; /* PEM certificate (chain) */
    char key_file[256];  /* PEM private key, mode 0600 */
} pw_cfg_tls;

typedef struct pw_cfg_http {
    char addr[64];
    uint16_t port;
    bool dashboard_login; /* the read-only dashboard needs a login too */
    pw_cfg_tls tls;
} pw_cfg_http;

typedef struct pw_cfg {
    char site_name[PW_BAL_NAME_LEN];
    enum pw_grid grid;
    pw_bal_node_spec *nodes;       /* n_nodes, nodes[0] is the root */
    pw_cfg_link *meters;           /* n_nodes, parallel to nodes: each node's meter, kind NONE if
                                      unmetered */
    pw_cfg_meter_opts *meter_opts; /* n_nodes, parallel to meters */
    size_t n_nodes;
    pw_bal_charger_spec *chargers; /* n_chargers */
    pw_cfg_link *charger_links;    /* n_chargers, parallel to chargers */
    size_t n_chargers;
    pw_bal_params params;
    uint32_t lease_ms; /* how long a sent allocation holds without renewal */
    uint32_t tick_ms;  /* control loop period when no meter reading arrives */
    pw_cfg_net net;
    pw_cfg_http http;
    pw_cfg_mqtt mqtt;
    pw_cfg_mqtt_publish mqtt_publish;   /* "mqtt": {"publish": {...}} */
    pw_cfg_mqtt_commands mqtt_commands; /* "mqtt": {"commands": {...}} */
    pw_cfg_uplink uplink;
    pw_cfg_ocpp ocpp;
    pw_cfg_tag *tags; /* n_tags, sorted by id ignoring letter case (pw_cfg_tag_find) */
    size_t n_tags;
    /* Not yet commissioned: the empty facility of a first start (pw_cfg_commissioning_new), a
     * root node and no chargers. The parser never sets it and it is never saved. */
    bool commissioning;
    /* "timing": how chargers of each link kind report, overriding their transport's values
     * field by field; a zero field keeps the transport's (pw_cfg_timing_default). Only the
     * charger kinds (LAN, OCPP) can be set; keeps_limit is the transport's and never set. */
    pw_bal_timing timing_by_kind[PW_CFG_LINK_KINDS];
    /* n_chargers charger indices ordered by link, built by the parser so that
     * pw_cfg_charger_by_link need not scan; NULL in a config put together by hand. */
    uint32_t *charger_order;
} pw_cfg;

/* Parses and validates a configuration. Returns a new config (free with pw_cfg_free) or NULL
 * with errs filled. */
pw_cfg *pw_cfg_from_json(const json_t *root, pw_cfg_errors *errs);
pw_cfg *pw_cfg_parse(const char *text, size_t len, pw_cfg_errors *errs);
pw_cfg *pw_cfg_load(const char *path, pw_cfg_errors *errs);

/* Where an appliance with no configuration listens until its first one is saved (serve --http,
 * --lan, --ocpp); NULL keeps the default (loopback, as in a file that leaves them out). */
typedef struct pw_cfg_first_start {
    const char *http; /* "ADDRESS:PORT" */
    const char *lan;  /* "INTERFACE-ADDRESS" or "INTERFACE-ADDRESS:PORT" (the group's port) */
    const char *ocpp; /* "ADDRESS:PORT" */
} pw_cfg_first_start;

/* The facility of a first start, commissioning mode (docs/install.md): every default of a file,
 * the listen addresses of fs (may be NULL), one root node "main" with a limit of 0 A, no meter
 * and no chargers, and the OCPP central system on (so charge points can connect and be listed).
 * commissioning is set. Its JSON (pw_cfg_to_json) has "chargers": [], which the parser refuses:
 * it is a starting point for a draft, never a file. Returns a new config (free with
 * pw_cfg_free), or NULL with errs naming the option ("--lan") that does not parse. */
pw_cfg *pw_cfg_commissioning_new(const pw_cfg_first_start *fs, pw_cfg_errors *errs);

/* The config as JSON in the documented format; caller owns the reference. */
json_t *pw_cfg_to_json(const pw_cfg *cfg);

/* Writes the config to path atomically: temp file, fsync, rename, fsync of the folder. Returns
 * 0 or -1 with errs filled. */
int pw_cfg_save(const pw_cfg *cfg, const char *path, pw_cfg_errors *errs);

void pw_cfg_free(pw_cfg *cfg);

/* A balancer view of the config; borrowed, valid while cfg lives. */
void pw_cfg_facility(const pw_cfg *cfg, pw_bal_facility *out);

/* Index of the charger reached by that link / node with that id, or -1. A charger lookup takes
 * O(log n) for a parsed config; a link that is no charger's costs one scan. */
int pw_cfg_charger_by_link(const pw_cfg *cfg, const pw_cfg_link *link);
int pw_cfg_node_by_id(const pw_cfg *cfg, const char *id);

/* Links: the same device; the kind's name in the file ("lan", "defa"; "" for NONE); a short
 * text for people ("lan device 1001", "defa meter ABC123"); the file's JSON object (caller
 * owns the reference; null for NONE).
 * An ocpp link is the same device when the charge point id (letter case counts: it is the last
 * part of the URL the charge point connects to) and the connector agree; formatted "ocpp CP-17
 * connector 1", written {"ocpp": {"id": "CP-17", "connector": 1}}.
 * A modbus link is the same device when host (letter case ignored), port and unit agree, an
 * mqtt link when the topic does; formatted "modbus 10.0.0.5:502 unit 3", "mqtt topic ams/meter".
 * For these two pw_cfg_link_to_json gives the identity only ({"modbus": {"host", "port",
 * "unit"}}, {"mqtt": {"topic"}}); pw_cfg_to_json adds the meter's pw_cfg_meter_opts. */
bool pw_cfg_link_equal(const pw_cfg_link *a, const pw_cfg_link *b);
const char *pw_cfg_link_kind_name(enum pw_cfg_link_kind kind);
void pw_cfg_link_format(const pw_cfg_link *link, char *out, size_t out_size);
json_t *pw_cfg_link_to_json(const pw_cfg_link *link);

/* The settings that take effect only at a restart (sockets opened at start: LAN group, port,
 * TTL, key file, DEFA frames on or off, HTTP address, port and TLS; the MQTT broker connection:
 * host, port, TLS, CA file, user name, password, client id; the OCPP listener: address or
 * port, including turning OCPP on or off, and TLS) that differ between the running and the
 * saved config, as field paths ("network.port", "mqtt.host", "ocpp.listen") into out; returns
 * how many (at most max). Modbus meters, MQTT meter feeds, OCPP charge points and intervals and
 * tags apply at once. */
size_t pw_cfg_restart_fields(const pw_cfg *running, const pw_cfg *saved, const char **out,
                             size_t max);
/* How many fields pw_cfg_restart_fields can name at most: an out array this long never cuts.
 * The names it returns are static strings. */
#define PW_CFG_RESTART_FIELDS_MAX 21

/* The i-th Modbus register map name a meter link may give ("sdm630", ..., "generic"), or NULL
 * past the last. Static strings. config does not link modbus/: the list is kept in config.c
 * and must stay in step with the maps modbus/ knows (pw_modbus_map_find); a modbus test can
 * check it with this. */
const char *pw_cfg_modbus_map_name(size_t i);

/* The i-th OCPP quirk table name a charge point entry may give ("default", "tx-default-only",
 * ...), or NULL past the last. Static strings. config does not link ocpp/: the list is kept in
 * config.c and must stay in step with the table in ocpp/quirks.c (pw_ocpp_quirks_by_name); an
 * ocpp test can check it with this. */
const char *pw_cfg_ocpp_quirk_name(size_t i);

/* The assigned charge point with that id (letter case counts), or NULL; the tag with that id,
 * letter case ignored (OCPP idTags are CiString20), or NULL. Both O(log n): they bsearch the
 * sorted arrays, so a config put together by hand must keep them sorted. Borrowed from cfg. */
const pw_cfg_ocpp_cp *pw_cfg_ocpp_cp_find(const pw_cfg *cfg, const char *id);
const pw_cfg_tag *pw_cfg_tag_find(const pw_cfg *cfg, const char *id);

/* OCPP charge point passwords (config/ocpp_password.c). The password is an AuthorizationKey of
 * PW_CFG_OCPP_PASSWORD_MIN..MAX printable ASCII characters without space; the file keeps only
 * "sha256:<32 hex digits of salt>:<64 hex digits of SHA-256(salt || password)>". One salted
 * SHA-256, not PBKDF2: the keys are generated, high-entropy strings, and the check runs on the
 * loop at every WebSocket upgrade (1,000 charge points reconnecting at once must not cost
 * seconds). */
#define PW_CFG_OCPP_PASSWORD_MIN 16
#define PW_CFG_OCPP_PASSWORD_MAX 40
#define PW_CFG_OCPP_SALT_LEN     16
#define PW_CFG_OCPP_HASH_LEN     (7 + 32 + 1 + 64) /* strlen of a hash, without the NUL */

/* Writes the hash of password with salt (PW_CFG_OCPP_SALT_LEN random bytes from the caller's
 * generator) into out, NUL-terminated; out_size must be more than PW_CFG_OCPP_HASH_LEN. Returns
 * 0, or -1 with nothing written when the password breaks the rules or out is too small. */
int pw_cfg_ocpp_password_hash(const char *password, const uint8_t salt[PW_CFG_OCPP_SALT_LEN],
                              char *out, size_t out_size);
/* Whether hash has the shape pw_cfg_ocpp_password_hash writes (hex digits in either case). */
bool pw_cfg_ocpp_password_hash_valid(const char *hash);
/* Whether password matches hash, compared in constant time; false for a malformed hash or a
 * password outside the rules. */
bool pw_cfg_ocpp_password_check(const char *hash, const char *password);

/* Status timing per charger link kind. The timing of a LAN charger by default is the LAN
 * protocol's (PROTOCOL.md 5, carried in cfg->params: a changed status at most every 1 s, one at
 * least every 30 s, 250 ms delay, offline after balancer.offline_s); an OCPP charge point's
 * follows ocpp.meter_interval_s (status_min = the interval, status_max = twice it + 5 s,
 * delay = params' + 1 s, offline = three intervals + 60 s). pw_cfg_timing_default writes that
 * default into out (all zero for a kind no charger speaks); it must stay in step with the
 * transports' timing ops (transport/lan.c, transport/ocpp.c), which config does not link.
 * pw_cfg_timing_apply overwrites the fields of *t that the file's "timing" sets for kind and
 * leaves the others (and keeps_limit) alone: the shell calls it after the transport's timing
 * op. pw_cfg_timing_in_force is the default with the file's fields applied: what the chargers
 * of that kind are held to. */
void pw_cfg_timing_default(const pw_cfg *cfg, enum pw_cfg_link_kind kind, pw_bal_timing *out);
void pw_cfg_timing_apply(const pw_cfg *cfg, enum pw_cfg_link_kind kind, pw_bal_timing *t);
void pw_cfg_timing_in_force(const pw_cfg *cfg, enum pw_cfg_link_kind kind, pw_bal_timing *out);

/* {"lan": {"status_min_ms": ..., "status_max_ms": ..., "status_delay_ms": ...,
 * "offline_ms": ...}, "ocpp": {...}}: the timing in force for each charger link kind, every
 * field given, for people (GET /api/config may add it as "timing_in_force", which the parser
 * accepts and ignores like restart_pending). Caller owns the reference. */
json_t *pw_cfg_timing_in_force_json(const pw_cfg *cfg);

/* Prints errors one per line as "field: message" into out (for logs and the CLI). */
void pw_cfg_errors_print(const pw_cfg_errors *errs, char *out, size_t out_size);

/* Parses "ADDRESS:PORT" (IPv4 or "localhost"). Returns 0 or -1. */
int pw_cfg_parse_listen(const char *text, char *addr, size_t addr_size, uint16_t *port);

/* Wiring as text ("L2L3L1", "L1") and back. Returns 0 or -1. */
int pw_cfg_wiring_parse(const char *text, uint8_t wiring[PW_LINES]);
void pw_cfg_wiring_format(const uint8_t wiring[PW_LINES], char out[8]);

/* The site's id in MQTT topics (state out and fleet uplink): uplink.site when set, else the
 * site's name in lower case with '-' between words ("Garage Nord 2" -> "garage-nord-2"). */
void pw_cfg_site_id(const pw_cfg *cfg, char *out, size_t out_size);

#endif
