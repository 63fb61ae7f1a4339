/* Facility configuration: JSON in, validated struct out, and back. Every field is checked and
 * every problem is reported with the JSON path of the field, so an installer can fix the file or
 * the form without guessing. */
#include "pw_cfg.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pw_util.h"

#define DEFAULT_KEY_FILE  "facility.key"
#define DEFAULT_TLS_CERT  "tls-cert.pem"
#define DEFAULT_TLS_KEY   "tls-key.pem"
#define DEFAULT_OCPP_PORT 8887

/* One entry of a uniqueness check or a lookup: an id or a link, and where it is in the file.
 * Sorting entries by key and then by place puts equal keys next to each other, the first one
 * written leading, so every check is O(n log n) and names the earlier entry. */
typedef struct entry {
    const char *id;          /* the key if set, else link */
    const pw_cfg_link *link; /* borrowed from the config being parsed */
    uint32_t at;             /* index in its array */
    bool nocase;             /* id compared ignoring ASCII letter case (OCPP idTags) */
} entry;

#define PATH_DEPTH 6 /* nodes[i].meter.link.modbus.lines[k] is the deepest object read */

/* One step of a JSON path: "nodes[3]" (index >= 0) or "meter" (index -1). */
typedef struct step {
    const char *key; /* static or borrowed from the JSON being read */
    long index;
} step;

/* Parsing context: the error list, the JSON path of the object being read, and what the
 * facility checks need from the parse. The path is a stack of steps formatted only for an
 * error: a facility of 10,000 chargers must not print 30,000 paths to be found valid. */
typedef struct ctx {
    pw_cfg_errors *errs;
    step path[PATH_DEPTH];
    size_t depth;
    bool *charger_old_key; /* n_chargers: the link was written as the old "device_id" */
    bool *meter_old_key;   /* n_nodes: the meter's link was "device_id" or "defa_serial" */
    entry *nodes_by_id;    /* n_nodes_by_id nodes with an id, sorted */
    size_t n_nodes_by_id;
} ctx;

static void add_error(ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the path and, if given, the field under it ("chargers[3].wiring") into out (at least 4
 * bytes); "(root)" for neither. */
static void format_field(const ctx *c, const char *field, char *out, size_t size)
{
    size_t used = 0;
    for (size_t d = 0; d <= c->depth; d++) {
        const char *key = d < c->depth ? c->path[d].key : field;
        long index = d < c->depth ? c->path[d].index : -1;
        if (!key || !*key)
            continue;
        const char *dot = used ? "." : "";
        int n = index >= 0 ? snprintf(out + used, size - used, "%s%s[%ld]", dot, key, index)
                           : snprintf(out + used, size - used, "%s%s", dot, key);
        if (n < 0 || (size_t)n >= size - used) { /* deeper than the buffer: show that it was cut */
            memcpy(out + size - 4, "...", 4);
            return;
        }
        used += (size_t)n;
    }
    if (!used)
        pw_strlcpy(out, "(root)", size);
}

static void add_error(ctx *c, const char *field, const char *fmt, ...)
{
    size_t i = c->errs->count++;
    if (i >= PW_CFG_MAX_ERRORS)
        return;
    pw_cfg_error *e = &c->errs->items[i];
    format_field(c, field, e->field, sizeof e->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* Enters "<key>[i]" or "<key>" (i < 0); key must outlive the step. */
static void push_path(ctx *c, const char *key, long i)
{
    assert(c->depth < PATH_DEPTH);
    c->path[c->depth++] = (step){key, i};
}

static void pop_path(ctx *c)
{
    assert(c->depth > 0);
    c->depth--;
}

/* Reports every key of obj not in allowed (NULL-terminated): a misspelt key must not be
 * silently ignored, or a limit the installer thinks is set would not be. */
static void check_keys(ctx *c, const json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        /* The first letter settles most comparisons; this runs for every key of every
         * charger, up to 120,000 times a parse. */
        size_t i = 0;
        while (allowed[i] && (allowed[i][0] != key[0] || strcmp(allowed[i], key) != 0))
            i++;
        if (!allowed[i])
            add_error(c, key, "unknown setting");
    }
}

/* Reads an optional number in [lo, hi]; absent leaves *out unchanged. Returns false on error. */
static bool get_number(ctx *c, const json_t *obj, const char *key, double lo, double hi,
                       double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_number(v)) {
        add_error(c, key, "must be a number");
        return false;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) {
        add_error(c, key, "must be between %g and %g (got %g)", lo, hi, d);
        return false;
    }
    *out = d;
    return true;
}

static bool get_u32(ctx *c, const json_t *obj, const char *key, double lo, double hi, uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_integer(v)) {
        add_error(c, key, "must be a whole number");
        return false;
    }
    double d = *out;
    if (!get_number(c, obj, key, lo, hi, &d))
        return false;
    *out = (uint32_t)d;
    return true;
}

/* Seconds in the file, milliseconds in the struct. */
static void get_seconds_ms(ctx *c, const json_t *obj, const char *key, double lo, double hi,
                           uint32_t *out_ms)
{
    double s = *out_ms / 1000.0;
    if (get_number(c, obj, key, lo, hi, &s))
        *out_ms = (uint32_t)llround(s * 1000.0);
}

static void get_bool(ctx *c, const json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return;
    if (!json_is_boolean(v))
        add_error(c, key, "must be true or false");
    else
        *out = json_is_true(v);
}

/* Reads an optional string into out (size bytes); too long is an error. */
static bool get_string(ctx *c, const json_t *obj, const char *key, char *out, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_string(v)) {
        add_error(c, key, "must be a string");
        return false;
    }
    if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v)) {
        add_error(c, key, "must be at most %zu characters, without NUL", size - 1);
        return false;
    }
    pw_strlcpy(out, json_string_value(v), size);
    return true;
}

/* Ids are short machine names used in URLs, logs and the database. */
static bool valid_id(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static void get_id(ctx *c, const json_t *obj, char out[PW_BAL_ID_LEN])
{
    if (!json_object_get(obj, "id")) {
        add_error(c, "id", "is required");
        return;
    }
    if (get_string(c, obj, "id", out, PW_BAL_ID_LEN) && !valid_id(out))
        add_error(c, "id", "may contain only letters, digits, '-', '_' and '.'");
}

/* A per-line current: one number for all three lines, or [L1, L2, L3]. */
static void get_lines(ctx *c, const json_t *obj, const char *key, double lo, double hi,
                      double out[PW_LINES])
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return;
    if (json_is_number(v)) {
        double d = 0;
        if (get_number(c, obj, key, lo, hi, &d))
            out[0] = out[1] = out[2] = d;
        return;
    }
    if (!json_is_array(v) || json_array_size(v) != PW_LINES) {
        add_error(c, key, "must be a number or an array of 3 numbers [L1, L2, L3]");
        return;
    }
    for (size_t i = 0; i < PW_LINES; i++) {
        json_t *x = json_array_get(v, i);
        double d = json_is_number(x) ? json_number_value(x) : NAN;
        if (!isfinite(d) || d < lo || d > hi) {
            char field[48];
            snprintf(field, sizeof field, "%s[%zu]", key, i);
            add_error(c, field, "must be a number between %g and %g", lo, hi);
            continue;
        }
        out[i] = d;
    }
}

int pw_cfg_wiring_parse(const char *text, uint8_t wiring[PW_LINES])
{
    size_t len = strlen(text);
    if (len < 2 || len > 6 || len % 2)
        return -1;
    uint8_t seen = 0;
    memset(wiring, 0, PW_LINES);
    for (size_t t = 0; t < len / 2; t++) {
        if ((text[2 * t] != 'L' && text[2 * t] != 'l') || text[2 * t + 1] < '1' ||
            text[2 * t + 1] > '3')
            return -1;
        uint8_t line = (uint8_t)(text[2 * t + 1] - '0');
        if (seen & (1u << line))
            return -1;
        seen |= (uint8_t)(1u << line);
        wiring[t] = line;
    }
    return 0;
}

void pw_cfg_wiring_format(const uint8_t wiring[PW_LINES], char out[8])
{
    char *p = out;
    for (size_t t = 0; t < PW_LINES && wiring[t]; t++) {
        *p++ = 'L';
        *p++ = (char)('0' + wiring[t]);
    }
    *p = '\0';
}

static bool parse_ipv4(const char *s, struct in_addr *a)
{
    return inet_pton(AF_INET, s, a) == 1;
}

/* A Modbus gateway or MQTT broker: an IPv4 dotted quad, or a host name of letters, digits, '-'
 * and '.' in non-empty labels that neither start nor end with '-'. All digits and dots is
 * neither: "10.0.0.256" is a mistyped address, not a name to look up. */
static bool valid_host(const char *s)
{
    struct in_addr a;
    if (parse_ipv4(s, &a))
        return true;
    if (!*s || strlen(s) > 63)
        return false;
    bool numeric = true;
    const char *label = s;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (p == label || *label == '-' || p[-1] == '-')
                return false;
            if (*p == '\0')
                break;
            label = p + 1;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-') {
            numeric = false;
        } else if (!(*p >= '0' && *p <= '9')) {
            return false;
        }
    }
    return !numeric;
}

#define HOST_RULE "must be an IPv4 address or a host name of letters, digits, '.' and '-'"

static void parse_network(ctx *c, const json_t *net, pw_cfg_net *out)
{
    static const char *const keys[] = {"group",    "port",        "interface", "ttl",
                                       "key_file", "defa_meters", "defa_emit", NULL};
    push_path(c, "network", -1);
    if (!json_is_object(net)) {
        add_error(c, NULL, "must be an object");
        pop_path(c);
        return;
    }
    check_keys(c, net, keys);
    struct in_addr a;
    if (get_string(c, net, "group", out->group, sizeof out->group) &&
        (!parse_ipv4(out->group, &a) || (ntohl(a.s_addr) >> 28) != 0xE))
        add_error(c, "group", "must be an IPv4 multicast address (224.0.0.0 to 239.255.255.255)");
    uint32_t port = out->port, ttl = out->ttl;
    if (get_u32(c, net, "port", 1, 65535, &port))
        out->port = (uint16_t)port;
    if (get_string(c, net, "interface", out->interface, sizeof out->interface) &&
        !parse_ipv4(out->interface, &a))
        add_error(c, "interface", "must be the IPv4 address of a local interface");
    if (get_u32(c, net, "ttl", 1, 8, &ttl))
        out->ttl = (uint8_t)ttl;
    if (get_string(c, net, "key_file", out->key_file, sizeof out->key_file) && !*out->key_file)
        add_error(c, "key_file", "must not be empty");
    get_bool(c, net, "defa_meters", &out->defa_meters);
    get_bool(c, net, "defa_emit", &out->defa_emit);
    pop_path(c);
}

static void parse_tls(ctx *c, const json_t *tls, pw_cfg_tls *out)
{
    static const char *const keys[] = {"enabled", "cert_file", "key_file", NULL};
    push_path(c, "tls", -1);
    if (!json_is_object(tls)) {
        add_error(c, NULL, "must be an object");
        pop_path(c);
        return;
    }
    check_keys(c, tls, keys);
    get_bool(c, tls, "enabled", &out->enabled);
    if (get_string(c, tls, "cert_file", out->cert_file, sizeof out->cert_file) && !*out->cert_file)
        add_error(c, "cert_file", "must not be empty");
    if (get_string(c, tls, "key_file", out->key_file, sizeof out->key_file) && !*out->key_file)
        add_error(c, "key_file", "must not be empty");
    if (!strcmp(out->cert_file, out->key_file))
        add_error(c, "key_file", "must be another file than cert_file");
    pop_path(c);
}

static void parse_http(ctx *c, const json_t *http, pw_cfg_http *out)
{
    static const char *const keys[] = {"listen", "dashboard_login", "tls", NULL};
    push_path(c, "http", -1);
    if (!json_is_object(http)) {
        add_error(c, NULL, "must be an object");
        pop_path(c);
        return;
    }
    check_keys(c, http, keys);
    char listen[80] = "";
    if (get_string(c, http, "listen", listen, sizeof listen) && *listen &&
        pw_cfg_parse_listen(listen, out->addr, sizeof out->addr, &out->port) != 0)
        add_error(c, "listen", "must be ADDRESS:PORT, e.g. 127.0.0.1:8080");
    get_bool(c, http, "dashboard_login", &out->dashboard_login);
    if (json_object_get(http, "tls"))
        parse_tls(c, json_object_get(http, "tls"), &out->tls);
    pop_path(c);
}

int pw_cfg_parse_listen(const char *text, char *addr, size_t addr_size, uint16_t *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= addr_size)
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    char host[64];
    if ((size_t)(colon - text) >= sizeof host)
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    struct in_addr a;
    if (strcmp(host, "localhost") != 0 && !parse_ipv4(host, &a))
        return -1;
    pw_strlcpy(addr, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, addr_size);
    *port = (uint16_t)p;
    return 0;
}

/* The broker MQTT meter feeds are read from; no host: none. section: "mqtt", or "uplink" for
 * the fleet uplink's broker (the same settings). */
static void parse_mqtt_broker(ctx *c, const json_t *v, const char *section, pw_cfg_mqtt *out)
{
    static const char *const keys[] = {"host",      "port",        "username", "password",
                                       "client_id", "tls",         "ca_file",  "cert_file",
                                       "key_file",  "keepalive_s", NULL};
    push_path(c, section, -1);
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object: {\"host\": \"...\", \"port\": 1883, ...}");
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    if (get_string(c, v, "host", out->host, sizeof out->host) && *out->host &&
        !valid_host(out->host))
        add_error(c, "host",
                  "must be the broker's IPv4 address or host name (letters, digits, '.', '-'), "
                  "or \"\" for no broker");
    get_bool(c, v, "tls", &out->tls);
    uint32_t port = out->tls ? 8883 : 1883, keepalive = out->keepalive_s;
    if (get_u32(c, v, "port", 1, 65535, &port))
        out->port = (uint16_t)port;
    if (get_u32(c, v, "keepalive_s", 5, 600, &keepalive))
        out->keepalive_s = (uint16_t)keepalive;
    get_string(c, v, "username", out->username, sizeof out->username);
    get_string(c, v, "password", out->password, sizeof out->password);
    if (*out->password && !*out->username)
        add_error(c, "password", "needs a username: MQTT 3.1.1 sends a password only with one");
    if (get_string(c, v, "client_id", out->client_id, sizeof out->client_id) && *out->client_id &&
        !valid_id(out->client_id))
        add_error(c, "client_id",
                  "may contain only letters, digits, '-', '_' and '.' (\"\" = phasewise-<site>)");
    if (get_string(c, v, "ca_file", out->ca_file, sizeof out->ca_file) && *out->ca_file &&
        !out->tls)
        add_error(c, "ca_file", "is only used with \"tls\": true");
    /* A client certificate for brokers that ask for one; whether the files can be read is
     * checked when the connection is set up at start (the meter or uplink says so). */
    bool cert = get_string(c, v, "cert_file", out->cert_file, sizeof out->cert_file);
    bool key = get_string(c, v, "key_file", out->key_file, sizeof out->key_file);
    if (cert && key && !*out->cert_file != !*out->key_file)
        add_error(c, *out->cert_file ? "key_file" : "cert_file",
                  "must be set together with %s (a PEM client certificate and its private key)",
                  *out->cert_file ? "cert_file" : "key_file");
    else if (*out->cert_file && !out->tls)
        add_error(c, "cert_file", "is only used with \"tls\": true");
    pop_path(c);
}

/* A topic level of the fleet uplink: lower-case letters, digits, '-' and '_'. */
static bool valid_site(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    return true;
}

/* A topic prefix: levels of printable ASCII without wildcards, '$' first or empty levels. */
static bool valid_prefix(const char *s)
{
    if (!*s || *s == '$' || *s == '/')
        return false;
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '+' || *p == '#' || (*p == '/' && p[1] == '/'))
            return false;
    return s[strlen(s) - 1] != '/';
}

/* "uplink": the fleet broker (the settings of "mqtt"), the site's topic level and the prefix. */
static void parse_uplink(ctx *c, const json_t *v, pw_cfg *cfg)
{
    pw_cfg_uplink *up = &cfg->uplink;
    json_t *broker = json_is_object(v) ? json_copy((json_t *)v) : json_incref((json_t *)v);
    json_object_del(broker, "site");
    json_object_del(broker, "prefix");
    parse_mqtt_broker(c, broker, "uplink", &up->broker);
    json_decref(broker);
    if (!json_is_object(v))
        return;
    push_path(c, "uplink", -1);
    if (get_string(c, v, "site", up->site, sizeof up->site) && *up->site && !valid_site(up->site))
        add_error(c, "site",
                  "must be 1..%zu lower-case letters, digits, '-' or '_' (one topic level), or "
                  "\"\" for one made from the site's name",
                  sizeof up->site - 1);
    if (get_string(c, v, "prefix", up->prefix, sizeof up->prefix) && !valid_prefix(up->prefix))
        add_error(c, "prefix",
                  "must be MQTT topic levels without '+', '#', empty levels or a leading '$' "
                  "(\"phasewise/fleet\")");
    char site[PW_BAL_ID_LEN];
    pw_cfg_site_id(cfg, site, sizeof site);
    if (*up->broker.host && !valid_site(site))
        add_error(c, "site", "is needed: the site's name gives no topic level to report under");
    pop_path(c);
}

/* "mqtt": {"publish": {...}}: state out and Home Assistant discovery (docs/mqtt.md). */
static void parse_mqtt_publish(ctx *c, const json_t *v, const pw_cfg_mqtt *broker,
                               pw_cfg_mqtt_publish *out)
{
    static const char *const keys[] = {"enabled", "prefix", "home_assistant", "discovery_prefix",
                                       NULL};
    static const char rule[] = "must be MQTT topic levels without '+', '#', empty levels, a "
                               "leading '$' or a '/' at either end";
    push_path(c, "publish", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object: {\"enabled\": true, \"prefix\": \"phasewise\"}");
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    get_bool(c, v, "enabled", &out->enabled);
    get_bool(c, v, "home_assistant", &out->home_assistant);
    if (get_string(c, v, "prefix", out->prefix, sizeof out->prefix) && !valid_prefix(out->prefix))
        add_error(c, "prefix", "%s (\"phasewise\")", rule);
    if (get_string(c, v, "discovery_prefix", out->discovery_prefix, sizeof out->discovery_prefix) &&
        !valid_prefix(out->discovery_prefix))
        add_error(c, "discovery_prefix", "%s (\"homeassistant\")", rule);
    if (out->enabled && !*broker->host)
        add_error(c, "enabled", "needs a broker: set mqtt.host (and port, login)");
    pop_path(c);
}

/* "mqtt": {"commands": {...}}: each command accepted on the broker, off unless true. */
static void parse_mqtt_commands(ctx *c, const json_t *v, pw_cfg_mqtt_commands *out)
{
    static const char *const keys[] = {"pause", "priority", "max_current", "facility_limit", NULL};
    push_path(c, "commands", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object: {\"pause\": true, \"priority\": false, ...}");
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    get_bool(c, v, "pause", &out->pause);
    get_bool(c, v, "priority", &out->priority);
    get_bool(c, v, "max_current", &out->max_current);
    get_bool(c, v, "facility_limit", &out->facility_limit);
    pop_path(c);
}

/* "mqtt": the broker, and within it what is published there and which commands it may send. */
static void parse_mqtt(ctx *c, const json_t *v, pw_cfg *cfg)
{
    json_t *broker = json_is_object(v) ? json_copy((json_t *)v) : json_incref((json_t *)v);
    json_object_del(broker, "publish");
    json_object_del(broker, "commands");
    parse_mqtt_broker(c, broker, "mqtt", &cfg->mqtt);
    json_decref(broker);
    if (!json_is_object(v))
        return;
    push_path(c, "mqtt", -1);
    if (json_object_get(v, "publish"))
        parse_mqtt_publish(c, json_object_get(v, "publish"), &cfg->mqtt, &cfg->mqtt_publish);
    if (json_object_get(v, "commands"))
        parse_mqtt_commands(c, json_object_get(v, "commands"), &cfg->mqtt_commands);
    if ((cfg->mqtt_commands.pause || cfg->mqtt_commands.priority ||
         cfg->mqtt_commands.max_current || cfg->mqtt_commands.facility_limit) &&
        !cfg->mqtt_publish.enabled)
        add_error(c, "commands", "are received by the state publisher: set publish.enabled");
    pop_path(c);
}

static void parse_balancer(ctx *c, const json_t *b, pw_cfg *cfg)
{
    static const char *const keys[] = {"reaction_s",      "min_run_s",
                                       "min_pause_s",     "offline_s",
                                       "hysteresis_a",    "trim_headroom_a",
                                       "probe_s",         "max_phase_switches",
                                       "active_phase_a",  "phase_hold_s",
                                       "meter_history_s", "lease_s",
                                       "tick_ms",         NULL};
    push_path(c, "balancer", -1);
    if (!json_is_object(b)) {
        add_error(c, NULL, "must be an object");
        pop_path(c);
        return;
    }
    check_keys(c, b, keys);
    pw_bal_params *p = &cfg->params;
    get_seconds_ms(c, b, "reaction_s", 1, 60, &p->reaction_ms);
    get_seconds_ms(c, b, "min_run_s", 0, 3600, &p->min_run_ms);
    get_seconds_ms(c, b, "min_pause_s", 0, 3600, &p->min_pause_ms);
    get_seconds_ms(c, b, "offline_s", 5, 600, &p->offline_ms);
    get_number(c, b, "hysteresis_a", 0, 10, &p->hysteresis_a);
    get_number(c, b, "trim_headroom_a", 0.5, 32, &p->trim_headroom_a);
    get_seconds_ms(c, b, "probe_s", 5, 3600, &p->probe_ms);
    get_u32(c, b, "max_phase_switches", 0, 100, &p->max_phase_switches);
    get_number(c, b, "active_phase_a", 0.1, 6, &p->active_phase_a);
    get_seconds_ms(c, b, "phase_hold_s", 0, 3600, &p->phase_hold_ms);
    get_seconds_ms(c, b, "meter_history_s", 10, 86400, &p->meter_history_ms);
    get_seconds_ms(c, b, "lease_s", 5, 600, &cfg->lease_ms);
    get_u32(c, b, "tick_ms", 100, 1000, &cfg->tick_ms);
    /* A lease shorter than two ticks would expire between renewals. */
    if (cfg->lease_ms < 2 * cfg->tick_ms)
        add_error(c, "lease_s", "must be at least two control ticks (%u ms)", 2 * cfg->tick_ms);
    pop_path(c);
}

/* ---- status timing per charger link kind ---- */

#define TIMING_SLACK_MS 5000 /* OCPP: a status repeated every meter interval may be this late */

void pw_cfg_timing_default(const pw_cfg *cfg, enum pw_cfg_link_kind kind, pw_bal_timing *out)
{
    const pw_bal_params *p = &cfg->params;
    uint32_t every = cfg->ocpp.meter_interval_s * 1000u;
    switch (kind) {
    case PW_CFG_LINK_LAN:
        *out = (pw_bal_timing){.status_min_ms = p->status_min_ms,
                               .status_max_ms = p->status_max_ms,
                               .status_delay_ms = p->status_delay_ms,
                               .offline_ms = p->offline_ms};
        break;
    case PW_CFG_LINK_OCPP:
        *out = (pw_bal_timing){.status_min_ms = every,
                               .status_max_ms = 2 * every + TIMING_SLACK_MS,
                               .status_delay_ms = p->status_delay_ms + 1000,
                               .offline_ms = 3 * every + 60000,
                               .keeps_limit = true};
        break;
    default:
        *out = (pw_bal_timing){0};
        break;
    }
}

void pw_cfg_timing_apply(const pw_cfg *cfg, enum pw_cfg_link_kind kind, pw_bal_timing *t)
{
    if ((unsigned)kind >= PW_CFG_LINK_KINDS)
        return;
    const pw_bal_timing *o = &cfg->timing_by_kind[kind];
    if (o->status_min_ms)
        t->status_min_ms = o->status_min_ms;
    if (o->status_max_ms)
        t->status_max_ms = o->status_max_ms;
    if (o->status_delay_ms)
        t->status_delay_ms = o->status_delay_ms;
    if (o->offline_ms)
        t->offline_ms = o->offline_ms;
}

void pw_cfg_timing_in_force(const pw_cfg *cfg, enum pw_cfg_link_kind kind, pw_bal_timing *out)
{
    pw_cfg_timing_default(cfg, kind, out);
    pw_cfg_timing_apply(cfg, kind, out);
}

/* The charger link kinds, in the order the file and the API list them. */
static const enum pw_cfg_link_kind timing_kinds[] = {PW_CFG_LINK_LAN, PW_CFG_LINK_OCPP};

static json_t *timing_json(const pw_bal_timing *t, bool all)
{
    json_t *o = json_object();
    const struct {
        const char *key;
        uint32_t v;
    } f[] = {{"status_min_ms", t->status_min_ms},
             {"status_max_ms", t->status_max_ms},
             {"status_delay_ms", t->status_delay_ms},
             {"offline_ms", t->offline_ms}};
    for (size_t i = 0; i < PW_ARRAY_LEN(f); i++)
        if (all || f[i].v)
            json_object_set_new(o, f[i].key, json_integer(f[i].v));
    return o;
}

json_t *pw_cfg_timing_in_force_json(const pw_cfg *cfg)
{
    json_t *root = json_object();
    for (size_t k = 0; k < PW_ARRAY_LEN(timing_kinds); k++) {
        pw_bal_timing t;
        pw_cfg_timing_in_force(cfg, timing_kinds[k], &t);
        json_object_set_new(root, pw_cfg_link_kind_name(timing_kinds[k]), timing_json(&t, true));
    }
    return root;
}

/* Names a value in an error: the file's, or the transport's default the file left alone. */
static const char *timing_origin(uint32_t given)
{
    return given ? "" : ", the default";
}

/* The rules the timing in force must keep, checked once the whole file is read (the defaults
 * depend on balancer and ocpp): a status cannot be due less often than it may come, its delay
 * must be shorter than the interval, and a charger must be able to miss a status (be overdue)
 * before it counts as offline. An error names a field the file gave. */
static void check_timing(ctx *c, const pw_cfg *cfg, enum pw_cfg_link_kind kind)
{
    const pw_bal_timing *o = &cfg->timing_by_kind[kind];
    pw_bal_timing t;
    pw_cfg_timing_in_force(cfg, kind, &t);
    push_path(c, "timing", -1);
    push_path(c, pw_cfg_link_kind_name(kind), -1);
    if (t.status_min_ms > t.status_max_ms)
        add_error(c, o->status_min_ms ? "status_min_ms" : "status_max_ms",
                  "status_min_ms (%" PRIu32 " ms%s) must not exceed status_max_ms (%" PRIu32
                  " ms%s)",
                  t.status_min_ms, timing_origin(o->status_min_ms), t.status_max_ms,
                  timing_origin(o->status_max_ms));
    if (t.status_delay_ms >= t.status_max_ms)
        add_error(c, o->status_delay_ms ? "status_delay_ms" : "status_max_ms",
                  "status_delay_ms (%" PRIu32 " ms%s) must be less than status_max_ms (%" PRIu32
                  " ms%s)",
                  t.status_delay_ms, timing_origin(o->status_delay_ms), t.status_max_ms,
                  timing_origin(o->status_max_ms));
    else if ((uint64_t)t.status_max_ms + t.status_delay_ms >= t.offline_ms)
        add_error(c,
                  o->offline_ms      ? "offline_ms"
                  : o->status_max_ms ? "status_max_ms"
                                     : "status_delay_ms",
                  "offline_ms (%" PRIu32
                  " ms%s) must exceed status_max_ms + status_delay_ms (%" PRIu32 " + %" PRIu32
                  " ms): a charger misses a status before it is offline",
                  t.offline_ms, timing_origin(o->offline_ms), t.status_max_ms, t.status_delay_ms);
    pop_path(c);
    pop_path(c);
}

static void parse_timing_kind(ctx *c, const json_t *v, pw_bal_timing *out)
{
    static const char *const keys[] = {"status_min_ms", "status_max_ms", "status_delay_ms",
                                       "offline_ms", NULL};
    if (!json_is_object(v)) {
        add_error(c, NULL,
                  "must be an object: {\"status_min_ms\", \"status_max_ms\", "
                  "\"status_delay_ms\", \"offline_ms\"}, each optional");
        return;
    }
    check_keys(c, v, keys);
    /* Zero is "the transport's own value" in the struct: the file gives that by leaving the
     * field out, so every range starts above zero. */
    get_u32(c, v, "status_min_ms", 100, 3600000, &out->status_min_ms);
    get_u32(c, v, "status_max_ms", 1000, 3600000, &out->status_max_ms);
    get_u32(c, v, "status_delay_ms", 1, 600000, &out->status_delay_ms);
    get_u32(c, v, "offline_ms", 5000, 10800000, &out->offline_ms);
}

/* "timing": {"lan": {...}, "ocpp": {...}}. */
static void parse_timing(ctx *c, const json_t *v, pw_cfg *cfg)
{
    push_path(c, "timing", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL,
                  "must be an object keyed by charger link kind: {\"lan\": {...}, "
                  "\"ocpp\": {...}}");
        pop_path(c);
        return;
    }
    const char *key;
    json_t *body;
    json_object_foreach((json_t *)v, key, body)
    {
        enum pw_cfg_link_kind kind = PW_CFG_LINK_NONE;
        for (size_t k = 0; k < PW_ARRAY_LEN(timing_kinds); k++)
            if (strcmp(key, pw_cfg_link_kind_name(timing_kinds[k])) == 0)
                kind = timing_kinds[k];
        if (kind == PW_CFG_LINK_NONE) {
            bool meter_kind =
                !strcmp(key, "defa") || !strcmp(key, "modbus") || !strcmp(key, "mqtt");
            add_error(c, key,
                      "%s: the timing of chargers is set per charger link kind, \"lan\" "
                      "or \"ocpp\"",
                      meter_kind ? "no charger speaks it" : "unknown setting");
            continue;
        }
        push_path(c, key, -1);
        parse_timing_kind(c, body, &cfg->timing_by_kind[kind]);
        pop_path(c);
    }
    pop_path(c);
}

/* ---- uniqueness and lookups by sorting ---- */

/* Orders links by kind, then by their identity within the kind. */
static int link_cmp(const pw_cfg_link *a, const pw_cfg_link *b)
{
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    switch (a->kind) {
    case PW_CFG_LINK_LAN:
        return (a->device_id > b->device_id) - (a->device_id < b->device_id);
    case PW_CFG_LINK_DEFA:
        return strncmp(a->serial, b->serial, sizeof a->serial);
    case PW_CFG_LINK_MODBUS: {
        /* Host names are case-insensitive; "GW1" and "gw1" are the same gateway. */
        int d = strncasecmp(a->host, b->host, sizeof a->host);
        if (d)
            return d < 0 ? -1 : 1;
        if (a->port != b->port)
            return a->port < b->port ? -1 : 1;
        return (a->unit > b->unit) - (a->unit < b->unit);
    }
    case PW_CFG_LINK_MQTT: {
        int d = strncmp(a->topic, b->topic, sizeof a->topic);
        return (d > 0) - (d < 0);
    }
    case PW_CFG_LINK_OCPP: {
        /* The identity is the last part of the URL the charge point connects to, and the
         * transport matches it as sent: letter case counts. */
        int d = strncmp(a->cp_id, b->cp_id, sizeof a->cp_id);
        if (d)
            return d < 0 ? -1 : 1;
        return (a->connector > b->connector) - (a->connector < b->connector);
    }
    default:
        return 0;
    }
}

/* strcmp ignoring ASCII letter case, whatever the locale: OCPP's CiString compares so. */
static int ascii_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        x += x >= 'A' && x <= 'Z' ? 'a' - 'A' : 0;
        y += y >= 'A' && y <= 'Z' ? 'a' - 'A' : 0;
        if (x != y || !x)
            return (x > y) - (x < y);
    }
}

static int entry_key_cmp(const entry *a, const entry *b)
{
    if (!a->id)
        return link_cmp(a->link, b->link);
    return a->nocase ? ascii_casecmp(a->id, b->id) : strcmp(a->id, b->id);
}

static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int d = entry_key_cmp(a, b);
    return d ? d : (a->at > b->at) - (a->at < b->at);
}

/* The first of the sorted entries v[0..n) with key's key, or NULL. */
static const entry *lower_bound(const entry *v, size_t n, const entry *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entry_key_cmp(&v[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && entry_key_cmp(&v[lo], key) == 0 ? &v[lo] : NULL;
}

/* An entry whose key an earlier entry has, and that first one. */
typedef struct repeat {
    uint32_t at, first;
} repeat;

static int repeat_cmp(const void *pa, const void *pb)
{
    const repeat *a = pa, *b = pb;
    return (a->at > b->at) - (a->at < b->at);
}

/* Sorts v by key and place and returns the entries that repeat an earlier key, in file order
 * (NULL if none), their number in *n_repeats; caller frees. The caller formats an error for
 * these only, so a valid facility costs no formatting at all. */
static repeat *find_repeats(entry *v, size_t n, size_t *n_repeats)
{
    repeat *d = NULL;
    size_t k = 0;
    if (n > 1)
        qsort(v, n, sizeof *v, entry_cmp);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (entry_key_cmp(&v[i], &v[first]) != 0) {
            first = i;
            continue;
        }
        if (!d)
            d = pw_xcalloc(n, sizeof *d);
        d[k++] = (repeat){v[i].at, v[first].at};
    }
    if (k > 1)
        qsort(d, k, sizeof *d, repeat_cmp);
    *n_repeats = k;
    return d;
}

/* Node lookup while parsing chargers, by the sorted ids: the first node with that id, as
 * pw_cfg_node_by_id gives, in O(log n) for each of up to 10,000 chargers. */
static int node_by_id(const ctx *c, const char *id)
{
    entry key = {.id = id};
    const entry *e = lower_bound(c->nodes_by_id, c->n_nodes_by_id, &key);
    return e ? (int)e->at : -1;
}

/* Reports nodes that repeat an earlier node's id and keeps the sorted ids for node_by_id. */
static void index_nodes(ctx *c, const pw_cfg *cfg)
{
    c->nodes_by_id = pw_xcalloc(cfg->n_nodes, sizeof *c->nodes_by_id);
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (*cfg->nodes[i].id)
            c->nodes_by_id[c->n_nodes_by_id++] = (entry){.id = cfg->nodes[i].id, .at = (uint32_t)i};
    size_t n_repeats;
    repeat *d = find_repeats(c->nodes_by_id, c->n_nodes_by_id, &n_repeats);
    for (size_t k = 0; k < n_repeats; k++) {
        char field[48];
        snprintf(field, sizeof field, "nodes[%" PRIu32 "].id", d[k].at);
        add_error(c, field, "'%s' is used by nodes[%" PRIu32 "] too", cfg->nodes[d[k].at].id,
                  d[k].first);
    }
    free(d);
}

/* ---- links ---- */

#define LAN_EXAMPLE    "{\"lan\": {\"device_id\": N}}"
#define DEFA_EXAMPLE   "{\"defa\": {\"serial\": \"...\"}}"
#define MODBUS_EXAMPLE "{\"modbus\": {\"host\": \"...\", \"map\": \"...\"}}"
#define MQTT_EXAMPLE   "{\"mqtt\": {\"preset\": \"...\", ...}}"
#define CHARGER_KINDS                                                                              \
    LAN_EXAMPLE " or {\"ocpp\": {\"id\": \"...\", \"connector\": N}} (docs/config.md)"
/* Four full examples would not fit an error message: the kinds, each by its shape. */
#define METER_KINDS                                                                                \
    "{\"lan\": {...}}, {\"defa\": {...}}, {\"modbus\": {...}} or {\"mqtt\": {...}} "               \
    "(docs/config.md)"

/* The register maps a Modbus meter may name. The maps themselves live in modbus/
 * (pw_modbus_map_find); config does not link against modbus/, so their names are kept here
 * and must stay in step with it. "generic" takes its registers from the link itself. */
static const char *const modbus_maps[] = {"sdm630",  "sdm72v1", "sdm72v2", "em340",   "em24",
                                          "em24eth", "abb_b2x", "sunspec", "generic", NULL};

const char *pw_cfg_modbus_map_name(size_t i)
{
    return i < sizeof modbus_maps / sizeof modbus_maps[0] ? modbus_maps[i] : NULL;
}

/* The OCPP quirk table's entries a charge point may name. The table lives in ocpp/quirks.c
 * (pw_ocpp_quirks_by_name); config does not link against ocpp/, so the names are kept here and
 * must stay in step with it. */
static const char *const ocpp_quirks[] = {"default",      "tx-default-only", "stack0", "whole-amps",
                                          "abb-terra-ac", "wallbox",         NULL};

const char *pw_cfg_ocpp_quirk_name(size_t i)
{
    return i < sizeof ocpp_quirks / sizeof ocpp_quirks[0] ? ocpp_quirks[i] : NULL;
}

/* The AMS reader's JSON (UtilitechAS/amsreader-firmware, lib/JsonMqttHandler/json/json2.json
 * to json4.json, published on its MQTT publish topic): the per-line currents in A are "I1",
 * "I2" and "I3" inside the "data" object. Messages without them (list 1: power only) carry no
 * currents. */
static const char *const ams_paths[PW_LINES] = {"data.I1", "data.I2", "data.I3"};

static const char *const reg_types[] = {
    [PW_CFG_REG_U16] = "u16", [PW_CFG_REG_S16] = "s16", [PW_CFG_REG_U32] = "u32",
    [PW_CFG_REG_S32] = "s32", [PW_CFG_REG_F32] = "f32", NULL,
};

/* Index of name in the NULL-terminated table, or -1. */
static int find_name(const char *const *table, const char *name)
{
    for (int i = 0; table[i]; i++)
        if (strcmp(table[i], name) == 0)
            return i;
    return -1;
}

/* One topic name, no filter: a feed names the topic its meter is published on. */
static const char *topic_problem(const char *t)
{
    if (!*t)
        return "must not be empty";
    if (strpbrk(t, "+#"))
        return "must name one topic: the wildcards '+' and '#' are not allowed";
    return NULL;
}

/* A dotted path into a JSON message: "current.l1", segments of letters, digits and '_'. */
static bool valid_json_path(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        bool word = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_';
        if (!word && !(*p == '.' && p != s && p[-1] != '.' && p[1] != '\0'))
            return false;
    }
    return true;
}

/* Reads an object {key: ...} of one link kind; false (with an error) if it is not one. */
static bool link_body(ctx *c, const json_t *v, const char *const *keys, const char *key)
{
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object");
        return false;
    }
    check_keys(c, v, keys);
    if (!json_object_get(v, key)) {
        add_error(c, key, "is required");
        return false;
    }
    return true;
}

static void parse_lan(ctx *c, const json_t *v, pw_cfg_link *out)
{
    static const char *const keys[] = {"device_id", NULL};
    push_path(c, "lan", -1);
    uint32_t id = 0;
    if (link_body(c, v, keys, "device_id") && get_u32(c, v, "device_id", 1, 4294967295.0, &id))
        *out = (pw_cfg_link){.kind = PW_CFG_LINK_LAN, .device_id = id};
    pop_path(c);
}

static void parse_defa(ctx *c, const json_t *v, pw_cfg_link *out)
{
    static const char *const keys[] = {"serial", NULL};
    push_path(c, "defa", -1);
    pw_cfg_link l = {.kind = PW_CFG_LINK_DEFA};
    if (link_body(c, v, keys, "serial") && get_string(c, v, "serial", l.serial, sizeof l.serial)) {
        if (!*l.serial)
            add_error(c, "serial", "must not be empty");
        else
            *out = l;
    }
    pop_path(c);
}

/* An OCPP charge point identity: the last part of the URL it connects to, ws://host/ocpp/CP-17.
 * Characters that need no escaping in a URL path and read well in logs. */
static bool valid_cp_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == ':'))
            return false;
    }
    return n >= 1 && n < PW_CFG_CP_ID_LEN;
}

#define CP_ID_RULE                                                                                 \
    "must be 1 to 48 characters of A-Z, a-z, 0-9, '.', '_', '-' and ':' (the charge point's "      \
    "identity, the last part of its URL)"

/* The required "id" of an ocpp link or a charge point entry. Returns false after an error. */
static bool get_cp_id(ctx *c, const json_t *obj, char out[PW_CFG_CP_ID_LEN])
{
    const json_t *v = json_object_get(obj, "id");
    if (!v) {
        add_error(c, "id", "is required: the charge point's identity, e.g. \"CP-17\"");
        return false;
    }
    if (!json_is_string(v) || json_string_length(v) >= PW_CFG_CP_ID_LEN ||
        strlen(json_string_value(v)) != json_string_length(v) ||
        !valid_cp_id(json_string_value(v))) {
        add_error(c, "id", CP_ID_RULE);
        return false;
    }
    pw_strlcpy(out, json_string_value(v), PW_CFG_CP_ID_LEN);
    return true;
}

/* {"ocpp": {"id": "CP-17", "connector": 1}}: one connector of an OCPP charge point. */
static void parse_ocpp_link(ctx *c, const json_t *v, pw_cfg_link *out)
{
    static const char *const keys[] = {"id", "connector", NULL};
    push_path(c, "ocpp", -1);
    pw_cfg_link l = {.kind = PW_CFG_LINK_OCPP, .connector = 1};
    uint32_t connector = l.connector;
    if (link_body(c, v, keys, "id")) {
        bool id_ok = get_cp_id(c, v, l.cp_id);
        if (get_u32(c, v, "connector", 1, PW_CFG_OCPP_MAX_CONNECTOR, &connector) && id_ok) {
            l.connector = (uint8_t)connector;
            *out = l;
        }
    }
    pop_path(c);
}

/* One line of a generic map: null (not read) or {"address", "type", "scale"}. */
static void parse_generic_reg(ctx *c, const json_t *v, pw_cfg_generic_reg *out)
{
    static const char *const keys[] = {"address", "type", "scale", NULL};
    *out = (pw_cfg_generic_reg){.scale = 1};
    if (json_is_null(v))
        return;
    if (!json_is_object(v)) {
        add_error(c, NULL,
                  "must be {\"address\": N, \"type\": \"f32\", \"scale\": 1} or null (the line "
                  "is not read)");
        return;
    }
    check_keys(c, v, keys);
    uint32_t address = 0;
    char type[8] = "";
    if (!json_object_get(v, "address"))
        add_error(c, "address", "is required: the register's 0-based address on the wire");
    else
        get_u32(c, v, "address", 0, 65535, &address);
    if (!json_object_get(v, "type"))
        add_error(c, "type", "is required: \"u16\", \"s16\", \"u32\", \"s32\" or \"f32\"");
    else if (get_string(c, v, "type", type, sizeof type) && find_name(reg_types, type) < 0)
        add_error(c, "type", "must be \"u16\", \"s16\", \"u32\", \"s32\" or \"f32\"");
    json_t *scale = json_object_get(v, "scale");
    if (scale && (!json_is_number(scale) || !isfinite(json_number_value(scale)) ||
                  json_number_value(scale) == 0))
        add_error(c, "scale", "must be a number other than 0 (register value x scale = A)");
    else if (scale)
        out->scale = json_number_value(scale);
    int t = find_name(reg_types, type);
    if (t >= PW_CFG_REG_U32 && address == 65535)
        add_error(c, "address", "a 32-bit value takes two registers: 65535 is the last one");
    out->present = true;
    out->address = (uint16_t)address;
    out->type = t < 0 ? PW_CFG_REG_U16 : (enum pw_cfg_reg_type)t;
}

/* The generic map's registers, inside the modbus link. */
static void parse_generic(ctx *c, const json_t *v, pw_cfg_meter_opts *o)
{
    json_t *fn = json_object_get(v, "function");
    o->function = 4;
    if (fn &&
        (!json_is_integer(fn) || (json_integer_value(fn) != 3 && json_integer_value(fn) != 4)))
        add_error(c, "function", "must be 3 (holding registers) or 4 (input registers)");
    else if (fn)
        o->function = (uint8_t)json_integer_value(fn);
    get_bool(c, v, "low_word_first", &o->low_word_first);
    json_t *lines = json_object_get(v, "lines");
    if (!lines) {
        add_error(c, "lines",
                  "is required for the generic map: [L1, L2, L3], each {\"address\": N, "
                  "\"type\": \"f32\"} or null");
        return;
    }
    if (!json_is_array(lines) || json_array_size(lines) != PW_LINES) {
        add_error(c, "lines", "must be an array of 3 entries [L1, L2, L3], each an object or null");
        return;
    }
    size_t errs = c->errs->count, present = 0;
    for (size_t l = 0; l < PW_LINES; l++) {
        push_path(c, "lines", (long)l);
        parse_generic_reg(c, json_array_get(lines, l), &o->line[l]);
        present += o->line[l].present;
        pop_path(c);
    }
    if (!present && c->errs->count == errs)
        add_error(c, "lines", "reads no line: give the register of at least one");
}

/* {"modbus": {"host", "port", "unit", "map", "interval_ms", "timeout_ms"}} and, for the generic
 * map, "function", "low_word_first" and "lines". */
static void parse_modbus(ctx *c, const json_t *v, pw_cfg_link *out, pw_cfg_meter_opts *opts)
{
    static const char *const keys[] = {"host",        "port",       "unit",     "map",
                                       "interval_ms", "timeout_ms", "function", "low_word_first",
                                       "lines",       NULL};
    static const char *const generic_keys[] = {"function", "low_word_first", "lines", NULL};
    push_path(c, "modbus", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object: " MODBUS_EXAMPLE);
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    size_t errs = c->errs->count;
    pw_cfg_link l = {.kind = PW_CFG_LINK_MODBUS, .port = 502, .unit = 1};
    pw_cfg_meter_opts o = {.interval_ms = 1000, .derive_l2 = opts->derive_l2};
    if (!json_object_get(v, "host"))
        add_error(c, "host", "is required: the gateway's IPv4 address or host name");
    else if (get_string(c, v, "host", l.host, sizeof l.host) && !valid_host(l.host))
        add_error(c, "host", HOST_RULE);
    uint32_t port = l.port, unit = l.unit;
    if (get_u32(c, v, "port", 1, 65535, &port))
        l.port = (uint16_t)port;
    if (get_u32(c, v, "unit", 1, 247, &unit))
        l.unit = (uint8_t)unit;

    char names[128] = "";
    for (size_t i = 0; modbus_maps[i]; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 modbus_maps[i]);
    json_t *map = json_object_get(v, "map");
    if (!map)
        add_error(c, "map", "is required: one of %s", names);
    else if (!json_is_string(map) || find_name(modbus_maps, json_string_value(map)) < 0)
        add_error(c, "map", "must be one of %s", names);
    else
        pw_strlcpy(o.map, json_string_value(map), sizeof o.map);

    bool interval_ok = get_u32(c, v, "interval_ms", 200, 60000, &o.interval_ms);
    o.timeout_ms = o.interval_ms < 1000 ? o.interval_ms : 1000;
    if (get_u32(c, v, "timeout_ms", 100, 10000, &o.timeout_ms) && interval_ok &&
        o.timeout_ms > o.interval_ms)
        add_error(c, "timeout_ms",
                  "must not exceed interval_ms (%" PRIu32 " ms): a poll must have its answer or "
                  "time out before the next is due",
                  o.interval_ms);

    if (strcmp(o.map, "generic") == 0) {
        parse_generic(c, v, &o);
    } else if (*o.map) {
        for (size_t i = 0; generic_keys[i]; i++)
            if (json_object_get(v, generic_keys[i]))
                add_error(c, generic_keys[i],
                          "is only for map \"generic\": map \"%s\" has its registers built in",
                          o.map);
    }
    if (c->errs->count == errs) {
        *out = l;
        *opts = o;
    }
    pop_path(c);
}

/* Three line entries: a string ("" = not reported) or null each, as topics or as JSON paths.
 * Returns how many lines are reported, or -1 after an error. */
static int parse_line_strings(ctx *c, const json_t *v, const char *key, bool topics, char *out,
                              size_t size)
{
    json_t *a = json_object_get(v, key);
    const char *what = topics ? "topic" : "dotted JSON path (\"current.l1\")";
    if (!json_is_array(a) || json_array_size(a) != PW_LINES) {
        add_error(c, key,
                  "must be an array of 3 entries [L1, L2, L3], each a %s, or \"\" or null "
                  "for a line not reported",
                  what);
        return -1;
    }
    int reported = 0;
    bool ok = true;
    for (size_t l = 0; l < PW_LINES; l++) {
        json_t *x = json_array_get(a, l);
        char field[24], *dst = out + l * size;
        snprintf(field, sizeof field, "%s[%zu]", key, l);
        *dst = '\0';
        if (json_is_null(x))
            continue;
        if (!json_is_string(x) || json_string_length(x) >= size ||
            strlen(json_string_value(x)) != json_string_length(x)) {
            add_error(c, field, "must be a %s of at most %zu characters, or \"\" or null", what,
                      size - 1);
            ok = false;
            continue;
        }
        const char *s = json_string_value(x);
        if (!*s)
            continue;
        const char *problem = topics               ? topic_problem(s)
                              : valid_json_path(s) ? NULL
                                                   : "must be a dotted path of letters, digits "
                                                     "and '_', e.g. \"current.l1\"";
        if (problem) {
            add_error(c, field, "%s", problem);
            ok = false;
            continue;
        }
        pw_strlcpy(dst, s, size);
        reported++;
    }
    if (ok && !reported)
        add_error(c, key, "reports no line: give at least one");
    return ok && reported ? reported : -1;
}

/* {"mqtt": {"preset": "ams"|"json"|"plain", ...}}: the AMS reader's JSON on "topic"; a JSON
 * message on "topic" with a path per line ("paths"); or one number per topic ("topics"). */
static void parse_mqtt_feed(ctx *c, const json_t *v, pw_cfg_link *out, pw_cfg_meter_opts *opts)
{
    static const char *const keys[] = {"preset", "topic", "paths", "topics", NULL};
    static const char *const presets[] = {"ams", "json", "plain", NULL};
    push_path(c, "mqtt", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object: " MQTT_EXAMPLE);
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    size_t errs = c->errs->count;
    pw_cfg_link l = {.kind = PW_CFG_LINK_MQTT};
    pw_cfg_meter_opts o = {.derive_l2 = opts->derive_l2};
    json_t *preset = json_object_get(v, "preset");
    if (!json_is_string(preset) || find_name(presets, json_string_value(preset)) < 0) {
        add_error(c, "preset",
                  "%s: \"ams\" (the AMS reader's JSON), \"json\" (a JSON path per line) or "
                  "\"plain\" (one topic per line)",
                  preset ? "must be" : "is required");
        pop_path(c);
        return;
    }
    pw_strlcpy(o.preset, json_string_value(preset), sizeof o.preset);
    bool plain = strcmp(o.preset, "plain") == 0, ams = strcmp(o.preset, "ams") == 0;

    if (plain && json_object_get(v, "topic"))
        add_error(c, "topic", "is not for preset plain: give \"topics\", one per line");
    else if (!plain && !json_object_get(v, "topic"))
        add_error(c, "topic", "is required: the topic the meter's JSON is published on");
    else if (!plain && get_string(c, v, "topic", l.topic, sizeof l.topic) && topic_problem(l.topic))
        add_error(c, "topic", "%s", topic_problem(l.topic));

    if (!plain && json_object_get(v, "topics"))
        add_error(c, "topics", "is only for preset plain");
    else if (plain && !json_object_get(v, "topics"))
        add_error(c, "topics", "is required: [L1, L2, L3] topics, \"\" for a line not reported");
    else if (plain && parse_line_strings(c, v, "topics", true, o.topics[0], PW_CFG_TOPIC_LEN) > 0)
        for (size_t i = PW_LINES; i-- > 0;)
            if (*o.topics[i])
                pw_strlcpy(l.topic, o.topics[i], sizeof l.topic); /* the first one named */

    if (ams && json_object_get(v, "paths"))
        add_error(c, "paths", "is fixed by preset ams (data.I1, data.I2, data.I3)");
    else if (plain && json_object_get(v, "paths"))
        add_error(c, "paths", "is only for preset json");
    else if (!ams && !plain && !json_object_get(v, "paths"))
        add_error(c, "paths",
                  "is required: [L1, L2, L3] paths such as \"current.l1\", null for a "
                  "line not reported");
    else if (!ams && !plain)
        parse_line_strings(c, v, "paths", false, o.paths[0], PW_CFG_PATH_LEN);
    if (ams)
        for (size_t i = 0; i < PW_LINES; i++)
            pw_strlcpy(o.paths[i], ams_paths[i], sizeof o.paths[i]);

    if (c->errs->count == errs) {
        *out = l;
        *opts = o;
    }
    pop_path(c);
}

/* A "link" member: an object naming exactly one kind. Only meters may be DEFA frames, Modbus
 * meters or MQTT feeds: they carry currents, they cannot take an allocation. Only chargers may
 * be OCPP charge points: one reports its own draw, not a node's. opts is the meter's options
 * (NULL for a charger). */
static void parse_link(ctx *c, const json_t *v, pw_cfg_meter_opts *opts, pw_cfg_link *out)
{
    bool meter = opts != NULL;
    const char *kinds = meter ? METER_KINDS : CHARGER_KINDS;
    push_path(c, "link", -1);
    if (!json_is_object(v))
        add_error(c, NULL, "must name one way to reach the device: %s", kinds);
    else if (json_object_size(v) == 0)
        add_error(c, NULL, "names no kind; give one: %s", kinds);
    else if (json_object_size(v) > 1)
        add_error(c, NULL, "names %zu kinds; give exactly one: %s", json_object_size(v), kinds);
    else {
        const char *kind = json_object_iter_key(json_object_iter((json_t *)v));
        const json_t *body = json_object_get(v, kind);
        bool meter_kind = !strcmp(kind, "defa") || !strcmp(kind, "modbus") || !strcmp(kind, "mqtt");
        if (strcmp(kind, "lan") == 0)
            parse_lan(c, body, out);
        else if (strcmp(kind, "ocpp") == 0 && meter)
            add_error(c, kind,
                      "ocpp links are for chargers only: a charge point reports its own draw, not "
                      "a node's; read the meter over lan, defa, modbus or mqtt");
        else if (strcmp(kind, "ocpp") == 0)
            parse_ocpp_link(c, body, out);
        else if (meter_kind && !meter)
            add_error(c, kind,
                      "a charger is reached over lan or ocpp; %s links are for meters only", kind);
        else if (strcmp(kind, "defa") == 0)
            parse_defa(c, body, out);
        else if (strcmp(kind, "modbus") == 0)
            parse_modbus(c, body, out, opts);
        else if (strcmp(kind, "mqtt") == 0)
            parse_mqtt_feed(c, body, out, opts);
        else
            add_error(c, kind, "unknown link kind (known: %s)",
                      meter ? "lan, defa, modbus, mqtt" : "lan, ocpp");
    }
    pop_path(c);
}

/* A meter's link: "link", or one of the old keys "device_id" (a LAN meter) and "defa_serial". */
static void parse_meter_link(ctx *c, const json_t *m, pw_cfg_link *meter, pw_cfg_meter_opts *opts,
                             bool *old_key)
{
    const json_t *link = json_object_get(m, "link");
    bool has_dev = json_object_get(m, "device_id"), has_defa = json_object_get(m, "defa_serial");
    *old_key = has_dev || has_defa;
    if (link && *old_key) {
        const char *old = has_dev ? "device_id" : "defa_serial";
        add_error(c, old, "give link or %s, not both (%s is the old form of link.%s)", old, old,
                  has_dev ? "lan.device_id" : "defa.serial");
    } else if (has_dev && has_defa) {
        add_error(c, NULL, "needs exactly one of device_id or defa_serial");
    } else if (link) {
        parse_link(c, link, opts, meter);
    } else if (has_dev) {
        uint32_t id = 0;
        if (get_u32(c, m, "device_id", 1, 4294967295.0, &id))
            *meter = (pw_cfg_link){.kind = PW_CFG_LINK_LAN, .device_id = id};
    } else if (has_defa) {
        pw_cfg_link l = {.kind = PW_CFG_LINK_DEFA};
        if (get_string(c, m, "defa_serial", l.serial, sizeof l.serial)) {
            if (!*l.serial)
                add_error(c, "defa_serial", "must not be empty");
            else
                *meter = l;
        }
    } else {
        add_error(c, "link", "is required: " METER_KINDS);
    }
}

/* derive_l2 stands for a 3-wire meter on an IT grid that reports L1 and L3 only: the core then
 * derives L2 from them (docs/config.md). Anywhere else it would hide a line that is measured,
 * or invent one that is not. */
static void check_derive_l2(ctx *c, enum pw_grid grid, const pw_cfg_link *meter,
                            const pw_cfg_meter_opts *o)
{
    bool has[PW_LINES] = {true, true, true};
    bool generic = meter->kind == PW_CFG_LINK_MODBUS && strcmp(o->map, "generic") == 0;
    bool ams = meter->kind == PW_CFG_LINK_MQTT && strcmp(o->preset, "ams") == 0;
    bool feed = meter->kind == PW_CFG_LINK_MQTT && !ams;
    bool plain = feed && strcmp(o->preset, "plain") == 0;
    /* The AMS reader publishes an I2 on 3-wire IT meters too (Kaifa MA304T3), which is not a
     * measurement: with derive_l2 the feed leaves it unread. */
    if (ams) {
        if (grid != PW_GRID_IT)
            add_error(c, "derive_l2",
                      "is only for an IT grid: with a neutral, L2 carries a load of its own that "
                      "L1 and L3 do not tell");
        return;
    }
    for (size_t l = 0; l < PW_LINES; l++) {
        if (generic)
            has[l] = o->line[l].present;
        else if (feed)
            has[l] = plain ? *o->topics[l] != '\0' : *o->paths[l] != '\0';
    }
    if (grid != PW_GRID_IT)
        add_error(c, "derive_l2",
                  "is only for an IT grid: with a neutral, L2 carries a load of its own that L1 "
                  "and L3 do not tell");
    else if (!generic && !feed)
        add_error(c, "derive_l2",
                  "is only for a meter that reports no L2: a generic Modbus map with lines[1] "
                  "null, or a json or plain MQTT feed without L2");
    else if (has[1])
        add_error(c, "derive_l2",
                  "this meter reports L2 (%s); derive_l2 is for a 3-wire meter without it",
                  generic ? "lines[1] is set"
                  : plain ? "topics[1] is set"
                          : "paths[1] is set");
    else if (!has[0] || !has[2])
        add_error(c, "derive_l2", "needs L1 and L3, which L2 is derived from");
}

/* A node's budget needs every line: a meter that reports fewer (unless L2 is derived) would
 * be refused at every reading and the node would run on its stale budget for ever. */
static void check_lines_complete(ctx *c, const pw_cfg_link *meter, const pw_cfg_meter_opts *o)
{
    bool generic = meter->kind == PW_CFG_LINK_MODBUS && strcmp(o->map, "generic") == 0;
    bool feed = meter->kind == PW_CFG_LINK_MQTT && strcmp(o->preset, "ams") != 0;
    bool plain = feed && strcmp(o->preset, "plain") == 0;
    if (meter->kind == PW_CFG_LINK_MODBUS && strcmp(o->map, "sdm72v1") == 0) {
        add_error(c, "link.modbus.map",
                  "sdm72v1 has no per-line current registers, so it cannot measure a node's "
                  "lines: use an SDM72D-M-2 (map sdm72v2) or another three-phase meter");
        return;
    }
    if (!generic && !feed)
        return;
    for (size_t l = 0; l < PW_LINES; l++) {
        bool has = generic ? o->line[l].present
                   : plain ? *o->topics[l] != '\0'
                           : *o->paths[l] != '\0';
        if (!has && !(l == 1 && o->derive_l2)) {
            add_error(c,
                      generic ? "link.modbus.lines"
                      : plain ? "link.mqtt.topics"
                              : "link.mqtt.paths",
                      "L%zu is not reported: a node's meter must report every line (on an IT "
                      "grid a 3-wire meter may leave out L2 with derive_l2)",
                      l + 1);
            return;
        }
    }
}

static void parse_meter(ctx *c, const json_t *m, enum pw_grid grid, pw_bal_node_spec *node,
                        pw_cfg_link *meter, pw_cfg_meter_opts *opts, bool *old_key)
{
    static const char *const keys[] = {"link",       "device_id", "defa_serial", "timeout_s",
                                       "fallback_a", "derive_l2", NULL};
    push_path(c, "meter", -1);
    if (!json_is_object(m)) {
        add_error(c, NULL, "must be an object with a link");
        pop_path(c);
        return;
    }
    check_keys(c, m, keys);
    get_bool(c, m, "derive_l2", &opts->derive_l2);
    parse_meter_link(c, m, meter, opts, old_key);
    node->metered = true;
    get_seconds_ms(c, m, "timeout_s", 2, 600, &node->meter_timeout_ms);
    get_lines(c, m, "fallback_a", 0, 10000, node->meter_fallback_a);
    if (opts->derive_l2 && meter->kind != PW_CFG_LINK_NONE)
        check_derive_l2(c, grid, meter, opts);
    else if (meter->kind != PW_CFG_LINK_NONE)
        check_lines_complete(c, meter, opts);
    pop_path(c);
}

static void parse_node(ctx *c, const json_t *n, pw_cfg *cfg, size_t i)
{
    static const char *const keys[] = {"id",       "name",      "parent",          "limit_a",
                                       "margin_a", "reserve_a", "max_imbalance_a", "meter",
                                       NULL};
    pw_bal_node_spec *node = &cfg->nodes[i];
    check_keys(c, n, keys);
    get_id(c, n, node->id);
    pw_strlcpy(node->name, node->id, sizeof node->name);
    get_string(c, n, "name", node->name, sizeof node->name);

    json_t *parent = json_object_get(n, "parent");
    node->parent = -1;
    if (i == 0) {
        if (parent && !json_is_null(parent))
            add_error(c, "parent", "the first node is the main fuse and has no parent");
    } else if (!json_is_string(parent)) {
        add_error(c, "parent", "must name an earlier node (only the first node has none)");
    } else {
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->nodes[j].id, json_string_value(parent)) == 0)
                node->parent = (int)j;
        if (node->parent < 0)
            add_error(c, "parent", "'%s' is not an earlier node", json_string_value(parent));
    }

    if (!json_object_get(n, "limit_a"))
        add_error(c, "limit_a", "is required (the fuse rating per line, in A)");
    get_lines(c, n, "limit_a", 1, 10000, node->limit_a);
    get_number(c, n, "margin_a", 0, 1000, &node->margin_a);
    get_number(c, n, "max_imbalance_a", 0, 10000, &node->max_imbalance_a);
    for (size_t l = 0; l < PW_LINES; l++)
        if (node->limit_a[l] > 0 && node->margin_a >= node->limit_a[l])
            add_error(c, "margin_a", "must be smaller than every line's limit");
    /* The node's own non-EV load: a reserve that fills the fuse leaves no room for any car,
     * which is a mistake in the file, not a plan. On a metered node the meter's reading takes
     * its place (docs/config.md); it is accepted there so a meter can come and go. */
    get_lines(c, n, "reserve_a", 0, 10000, node->reserve_a);
    for (size_t l = 0; l < PW_LINES; l++)
        if (node->limit_a[l] > 0 && node->margin_a < node->limit_a[l] &&
            node->reserve_a[l] >= node->limit_a[l] - node->margin_a) {
            add_error(c, "reserve_a",
                      "must be below limit_a minus margin_a on every line (L%zu: %g A)", l + 1,
                      node->limit_a[l] - node->margin_a);
            break;
        }
    json_t *meter = json_object_get(n, "meter");
    if (meter && !json_is_null(meter))
        parse_meter(c, meter, cfg->grid, node, &cfg->meters[i], &cfg->meter_opts[i],
                    &c->meter_old_key[i]);
}

static void parse_charger(ctx *c, const json_t *ch, pw_cfg *cfg, size_t i)
{
    static const char *const keys[] = {
        "id",         "name",     "link",   "device_id",       "node", "wiring", "min_a", "max_a",
        "failsafe_a", "priority", "weight", "phase_switching", NULL};
    pw_bal_charger_spec *spec = &cfg->chargers[i];
    check_keys(c, ch, keys);
    get_id(c, ch, spec->id);
    pw_strlcpy(spec->name, spec->id, sizeof spec->name);
    get_string(c, ch, "name", spec->name, sizeof spec->name);

    const json_t *link = json_object_get(ch, "link");
    c->charger_old_key[i] = json_object_get(ch, "device_id") != NULL;
    uint32_t id = 0;
    if (link && c->charger_old_key[i])
        add_error(c, "device_id",
                  "give link or device_id, not both (device_id is the old form of "
                  "link.lan.device_id)");
    else if (link)
        parse_link(c, link, NULL, &cfg->charger_links[i]);
    else if (!c->charger_old_key[i])
        add_error(c, "link", "is required: how the charger is reached, " CHARGER_KINDS);
    else if (get_u32(c, ch, "device_id", 1, 4294967295.0, &id))
        cfg->charger_links[i] = (pw_cfg_link){.kind = PW_CFG_LINK_LAN, .device_id = id};

    char node[PW_BAL_ID_LEN] = "";
    spec->node = -1;
    if (!json_object_get(ch, "node"))
        add_error(c, "node", "is required");
    else if (get_string(c, ch, "node", node, sizeof node) && (spec->node = node_by_id(c, node)) < 0)
        add_error(c, "node", "'%s' is not a node", node);

    char wiring[8] = "L1L2L3";
    if (get_string(c, ch, "wiring", wiring, sizeof wiring) &&
        pw_cfg_wiring_parse(wiring, spec->wiring) != 0)
        add_error(c, "wiring",
                  "must give the grid line of each wired terminal in order, e.g. "
                  "\"L2L3L1\", or \"L3\" for a single-phase charger");
    get_number(c, ch, "min_a", 6, 80, &spec->min_a);
    get_number(c, ch, "max_a", 6, 80, &spec->max_a);
    get_number(c, ch, "failsafe_a", 0, 80, &spec->failsafe_a);
    double prio = spec->priority;
    if (get_number(c, ch, "priority", -100, 100, &prio))
        spec->priority = (int)prio;
    get_number(c, ch, "weight", 0.01, 100, &spec->weight);
    get_bool(c, ch, "phase_switching", &spec->can_switch_phases);
    if (spec->min_a > spec->max_a)
        add_error(c, "min_a", "must not exceed max_a (%g A)", spec->max_a);
    if (spec->failsafe_a > 0 && (spec->failsafe_a < spec->min_a || spec->failsafe_a > spec->max_a))
        add_error(c, "failsafe_a", "must be 0 or between min_a and max_a");
}

/* ---- OCPP and tags ---- */

/* One entry of ocpp.charge_points: {"id", "password_hash", "quirks"}. */
static void parse_ocpp_cp(ctx *c, const json_t *v, pw_cfg_ocpp_cp *out)
{
    /* "password" is listed to be refused with a message, not as unknown. */
    static const char *const keys[] = {"id",       "password_hash",     "quirks",
                                       "password", "upstream_password", NULL};
    if (!json_is_object(v)) {
        add_error(c, NULL,
                  "must be an object: {\"id\": \"CP-17\", \"password_hash\": \"sha256:...\", "
                  "\"quirks\": \"...\"}");
        return;
    }
    check_keys(c, v, keys);
    bool id_ok = get_cp_id(c, v, out->id);
    if (json_object_get(v, "password"))
        add_error(c, "password",
                  "the file keeps only password_hash: set the password in the web UI (PUT "
                  "/api/config with \"password\"), which stores its hash");
    if (get_string(c, v, "password_hash", out->password_hash, sizeof out->password_hash) &&
        *out->password_hash && !pw_cfg_ocpp_password_hash_valid(out->password_hash))
        add_error(c, "password_hash",
                  "must be \"sha256:<32 hex digits of salt>:<64 hex digits of hash>\" as the web "
                  "UI writes it, or \"\" for no password");
    /* HTTP Basic splits "user:password" at the first ':' (RFC 7617): an identity with one
     * could never log in. */
    if (id_ok && *out->password_hash && strchr(out->id, ':'))
        add_error(c, "id",
                  "has a ':', which HTTP Basic authentication cannot carry in a user name: a "
                  "charge point with a password needs an id without ':'");
    if (get_string(c, v, "upstream_password", out->upstream_password,
                   sizeof out->upstream_password) &&
        *out->upstream_password) {
        bool printable = true;
        for (const char *p = out->upstream_password; *p; p++)
            printable = printable && *p >= ' ' && *p <= '~';
        if (!printable)
            add_error(
                c, "upstream_password",
                "must be printable ASCII (the CSMS's AuthorizationKey for this charge point)");
        else if (id_ok && strchr(out->id, ':'))
            add_error(c, "id",
                      "has a ':', which HTTP Basic authentication cannot carry in a user name: a "
                      "charge point with an upstream password needs an id without ':'");
    }
    if (get_string(c, v, "quirks", out->quirks, sizeof out->quirks) && *out->quirks &&
        find_name(ocpp_quirks, out->quirks) < 0) {
        char names[96] = "";
        for (size_t i = 0; ocpp_quirks[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     ocpp_quirks[i]);
        add_error(c, "quirks", "must be one of %s, or \"\" to choose by vendor and model", names);
    }
}

static int ocpp_cp_cmp(const void *pa, const void *pb)
{
    return strcmp(((const pw_cfg_ocpp_cp *)pa)->id, ((const pw_cfg_ocpp_cp *)pb)->id);
}

/* Reports charge point entries that repeat an earlier id and sorts the rest by id for
 * pw_cfg_ocpp_cp_find, which runs at every WebSocket upgrade. */
static void index_charge_points(ctx *c, pw_cfg_ocpp *o)
{
    size_t n = o->n_charge_points, n_ids = 0, n_repeats;
    entry *v = pw_xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        if (*o->charge_points[i].id) /* an id in error has been reported already */
            v[n_ids++] = (entry){.id = o->charge_points[i].id, .at = (uint32_t)i};
    repeat *d = find_repeats(v, n_ids, &n_repeats);
    for (size_t k = 0; k < n_repeats; k++) {
        char field[64];
        snprintf(field, sizeof field, "ocpp.charge_points[%" PRIu32 "].id", d[k].at);
        add_error(c, field, "'%s' is used by ocpp.charge_points[%" PRIu32 "] too",
                  o->charge_points[d[k].at].id, d[k].first);
    }
    free(d);
    free(v);
    if (n > 1)
        qsort(o->charge_points, n, sizeof *o->charge_points, ocpp_cp_cmp);
}

/* "upstream": {"url", "ca_file", "authorize"}: the local controller's CSMS; no url: off. */
static void parse_ocpp_upstream(ctx *c, const json_t *v, pw_cfg_ocpp_upstream *out)
{
    static const char *const keys[] = {"url", "ca_file", "authorize", NULL};
    push_path(c, "upstream", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL,
                  "must be an object: {\"url\": \"ws://10.0.0.5:9000/ocpp\", \"authorize\": "
                  "\"charge_point\"}");
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    if (get_string(c, v, "url", out->url, sizeof out->url) && *out->url) {
        bool wss = strncmp(out->url, "wss://", 6) == 0;
        const char *host = wss ? out->url + 6 : out->url + 5;
        bool ok = wss || strncmp(out->url, "ws://", 5) == 0;
        for (const char *p = out->url; ok && *p; p++)
            ok = *p > ' ' && *p <= '~';
        if (!ok || !*host || *host == '/' || *host == ':')
            add_error(c, "url",
                      "must be the CSMS's ws:// or wss:// URL without the charge point id, e.g. "
                      "ws://10.0.0.5:9000/ocpp (a numeric address: a host name is resolved "
                      "while everything waits), or \"\" for none");
    }
    if (get_string(c, v, "ca_file", out->ca_file, sizeof out->ca_file) && *out->ca_file &&
        strncmp(out->url, "wss://", 6) != 0)
        add_error(c, "ca_file", "is only used with a wss:// url");
    json_t *auth = json_object_get(v, "authorize");
    const char *mode = json_string_value(auth);
    if (auth && (!mode || (strcmp(mode, "local") != 0 && strcmp(mode, "charge_point") != 0 &&
                           strcmp(mode, "csms") != 0)))
        add_error(c, "authorize",
                  "must be \"csms\" (the CSMS's verdict while it answers), \"local\" (the tags "
                  "in \"tags\") or \"charge_point\" (the charger's own authorization list and "
                  "cache)");
    else if (auth) {
        out->authorize_local = strcmp(mode, "local") == 0;
        out->authorize_csms = strcmp(mode, "csms") == 0;
    }
    pop_path(c);
}

/* "ocpp": the OCPP 1.6J central system. Present: on (the listener on 127.0.0.1:8887 unless
 * "listen" says otherwise); absent: off. */
static void parse_ocpp(ctx *c, const json_t *v, pw_cfg_ocpp *o)
{
    static const char *const keys[] = {
        "listen",       "tls",       "meter_interval_s", "heartbeat_s", "min_interval_s",
        "daily_writes", "authorize", "charge_points",    "upstream",    NULL};
    push_path(c, "ocpp", -1);
    if (!json_is_object(v)) {
        add_error(c, NULL,
                  "must be an object: {\"listen\": \"0.0.0.0:8887\", ...}; leave it out to "
                  "turn OCPP off");
        pop_path(c);
        return;
    }
    check_keys(c, v, keys);
    o->listen_port = DEFAULT_OCPP_PORT;
    char listen[80] = "", addr[sizeof o->listen_addr];
    uint16_t port = 0;
    if (get_string(c, v, "listen", listen, sizeof listen) && json_object_get(v, "listen")) {
        /* Port 0 stands for "off" in the struct: off is no section at all. */
        if (pw_cfg_parse_listen(listen, addr, sizeof addr, &port) != 0 || port == 0)
            add_error(c, "listen",
                      "must be ADDRESS:PORT with an IPv4 address or localhost and a port "
                      "1-65535, e.g. 0.0.0.0:8887 (leave out \"ocpp\" to turn OCPP off)");
        else {
            pw_strlcpy(o->listen_addr, addr, sizeof o->listen_addr);
            o->listen_port = port;
        }
    }
    get_bool(c, v, "tls", &o->tls);
    get_u32(c, v, "meter_interval_s", 1, 900, &o->meter_interval_s);
    get_u32(c, v, "heartbeat_s", 10, 86400, &o->heartbeat_s);
    get_u32(c, v, "min_interval_s", 0, 3600, &o->min_interval_s);
    get_u32(c, v, "daily_writes", 1, 100000, &o->daily_writes);
    json_t *auth = json_object_get(v, "authorize");
    if (auth && (!json_is_string(auth) || (strcmp(json_string_value(auth), "local_list") != 0 &&
                                           strcmp(json_string_value(auth), "accept") != 0)))
        add_error(c, "authorize",
                  "must be \"local_list\" (only the tags in \"tags\") or \"accept\" (every "
                  "tag)");
    else if (auth)
        o->local_authorize = strcmp(json_string_value(auth), "local_list") == 0;

    if (json_object_get(v, "upstream"))
        parse_ocpp_upstream(c, json_object_get(v, "upstream"), &o->upstream);

    json_t *cps = json_object_get(v, "charge_points");
    if (cps && !json_is_array(cps))
        add_error(c, "charge_points", "must be an array of {\"id\": \"CP-17\", ...}");
    else if (cps && json_array_size(cps) > PW_CFG_MAX_CHARGE_POINTS)
        add_error(c, "charge_points", "at most %d entries are supported", PW_CFG_MAX_CHARGE_POINTS);
    else if (cps) {
        o->n_charge_points = json_array_size(cps);
        o->charge_points = pw_xcalloc(o->n_charge_points, sizeof *o->charge_points);
        for (size_t i = 0; i < o->n_charge_points; i++) {
            push_path(c, "charge_points", (long)i);
            parse_ocpp_cp(c, json_array_get(cps, i), &o->charge_points[i]);
            pop_path(c);
        }
    }
    pop_path(c);
    index_charge_points(c, o);
}

/* An IdToken as the charge point reads it from a card: printable ASCII without space. */
static bool valid_tag_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] < '!' || s[n] > '~')
            return false;
    return n >= 1 && n < sizeof((pw_cfg_tag *)0)->id;
}

static void parse_tag(ctx *c, const json_t *v, pw_cfg_tag *t)
{
    static const char *const keys[] = {"id", "name", NULL};
    if (!json_is_object(v)) {
        add_error(c, NULL, "must be an object: {\"id\": \"04A2B3C4\", \"name\": \"...\"}");
        return;
    }
    check_keys(c, v, keys);
    const json_t *id = json_object_get(v, "id");
    if (!id)
        add_error(c, "id", "is required: the idTag the charge point reads from the card");
    else if (!json_is_string(id) || json_string_length(id) >= sizeof t->id ||
             strlen(json_string_value(id)) != json_string_length(id) ||
             !valid_tag_id(json_string_value(id)))
        add_error(c, "id", "must be 1 to 20 printable ASCII characters without spaces");
    else
        pw_strlcpy(t->id, json_string_value(id), sizeof t->id);
    if (!json_object_get(v, "name"))
        add_error(c, "name", "is required: whose tag it is, a person or a car");
    else if (get_string(c, v, "name", t->name, sizeof t->name) && !*t->name)
        add_error(c, "name", "must not be empty");
}

static int tag_cmp(const void *pa, const void *pb)
{
    return ascii_casecmp(((const pw_cfg_tag *)pa)->id, ((const pw_cfg_tag *)pb)->id);
}

/* "tags": the RFID tags (OCPP idTags) the facility knows, unique ignoring letter case. */
static void parse_tags(ctx *c, const json_t *v, pw_cfg *cfg)
{
    if (!json_is_array(v)) {
        add_error(c, "tags", "must be an array of {\"id\": \"04A2B3C4\", \"name\": \"...\"}");
        return;
    }
    if (json_array_size(v) > PW_CFG_MAX_TAGS) {
        add_error(c, "tags", "at most %d tags are supported", PW_CFG_MAX_TAGS);
        return;
    }
    size_t n = json_array_size(v), n_repeats;
    cfg->n_tags = n;
    cfg->tags = pw_xcalloc(n, sizeof *cfg->tags);
    for (size_t i = 0; i < n; i++) {
        push_path(c, "tags", (long)i);
        parse_tag(c, json_array_get(v, i), &cfg->tags[i]);
        pop_path(c);
    }
    entry *e = pw_xcalloc(n, sizeof *e);
    size_t n_ids = 0;
    for (size_t i = 0; i < n; i++)
        if (*cfg->tags[i].id)
            e[n_ids++] = (entry){.id = cfg->tags[i].id, .at = (uint32_t)i, .nocase = true};
    repeat *d = find_repeats(e, n_ids, &n_repeats);
    for (size_t k = 0; k < n_repeats; k++) {
        char field[48];
        snprintf(field, sizeof field, "tags[%" PRIu32 "].id", d[k].at);
        add_error(c, field,
                  "'%s' is used by tags[%" PRIu32 "] too (letter case does not count: OCPP "
                  "idTags are case-insensitive)",
                  cfg->tags[d[k].at].id, d[k].first);
    }
    free(d);
    free(e);
    if (n > 1)
        qsort(cfg->tags, n, sizeof *cfg->tags, tag_cmp);
}

/* Cross-section OCPP rules: a charger on an ocpp link needs the central system, and the
 * central system cannot share the web front's port (the second bind would fail at start). */
static void check_ocpp(ctx *c, const pw_cfg *cfg)
{
    const pw_cfg_ocpp *o = &cfg->ocpp;
    for (size_t i = 0; i < cfg->n_chargers && !o->listen_port; i++) {
        if (cfg->charger_links[i].kind == PW_CFG_LINK_OCPP) {
            char field[48];
            snprintf(field, sizeof field, "chargers[%zu].link.ocpp", i);
            add_error(c, field,
                      "is reached through the OCPP central system: add an \"ocpp\" section "
                      "(docs/config.md)");
        }
    }
    bool any_a = !strcmp(o->listen_addr, "0.0.0.0") || !strcmp(cfg->http.addr, "0.0.0.0");
    if (o->listen_port && o->listen_port == cfg->http.port &&
        (any_a || !strcmp(o->listen_addr, cfg->http.addr)))
        add_error(c, "ocpp.listen", "port %u is http.listen's: give OCPP a port of its own",
                  o->listen_port);
}

static void set_defaults(pw_cfg *cfg)
{
    pw_strlcpy(cfg->site_name, "phasewise", sizeof cfg->site_name);
    cfg->grid = PW_GRID_TN;
    pw_bal_default_params(&cfg->params);
    cfg->lease_ms = 30000;
    cfg->tick_ms = 1000;
    pw_strlcpy(cfg->net.group, PW_CFG_DEFAULT_GROUP, sizeof cfg->net.group);
    cfg->net.port = PW_CFG_DEFAULT_PORT;
    /* Loopback unless the installer names the LAN interface: a default must never reach it. */
    pw_strlcpy(cfg->net.interface, "127.0.0.1", sizeof cfg->net.interface);
    cfg->net.ttl = 1;
    pw_strlcpy(cfg->net.key_file, DEFAULT_KEY_FILE, sizeof cfg->net.key_file);
    pw_strlcpy(cfg->http.addr, "127.0.0.1", sizeof cfg->http.addr);
    cfg->http.port = 8080;
    pw_strlcpy(cfg->http.tls.cert_file, DEFAULT_TLS_CERT, sizeof cfg->http.tls.cert_file);
    pw_strlcpy(cfg->http.tls.key_file, DEFAULT_TLS_KEY, sizeof cfg->http.tls.key_file);
    cfg->mqtt.port = 1883; /* 8883 when the file turns TLS on and names no port */
    cfg->mqtt.keepalive_s = 30;
    /* State out is off; once on, Home Assistant finds it where it looks by default. */
    pw_strlcpy(cfg->mqtt_publish.prefix, "phasewise", sizeof cfg->mqtt_publish.prefix);
    cfg->mqtt_publish.home_assistant = true;
    pw_strlcpy(cfg->mqtt_publish.discovery_prefix, "homeassistant",
               sizeof cfg->mqtt_publish.discovery_prefix);
    /* The fleet uplink leaves the site: TLS with the broker's certificate checked by default. */
    cfg->uplink.broker.tls = true;
    cfg->uplink.broker.port = 8883; /* 1883 when the file turns TLS off and names no port */
    cfg->uplink.broker.keepalive_s = 30;
    pw_strlcpy(cfg->uplink.prefix, "phasewise/fleet", sizeof cfg->uplink.prefix);
    /* OCPP is off (port 0) until the file has an "ocpp" section. */
    pw_strlcpy(cfg->ocpp.listen_addr, "127.0.0.1", sizeof cfg->ocpp.listen_addr);
    cfg->ocpp.meter_interval_s = 10;
    cfg->ocpp.heartbeat_s = 300;
    cfg->ocpp.min_interval_s = 10;
    cfg->ocpp.daily_writes = 500;
}

static void set_node_defaults(pw_bal_node_spec *n)
{
    n->meter_timeout_ms = 15000;
}

static void set_charger_defaults(pw_bal_charger_spec *ch)
{
    ch->min_a = 6;
    ch->max_a = 16;
    ch->weight = 1;
    pw_cfg_wiring_parse("L1L2L3", ch->wiring);
}

/* Reads an array member into a freshly sized table; returns its length or 0 on error. */
static size_t array_member(ctx *c, const json_t *root, const char *key, size_t max)
{
    json_t *a = json_object_get(root, key);
    if (!json_is_array(a) || json_array_size(a) == 0) {
        add_error(c, key, "must be a non-empty array");
        return 0;
    }
    if (json_array_size(a) > max) {
        add_error(c, key, "at most %zu entries are supported", max);
        return 0;
    }
    return json_array_size(a);
}

/* The field of a charger's or a meter's link as the file wrote it, for an error message. An
 * ocpp link's id and connector together are the identity. */
static void charger_link_field(const ctx *c, const pw_cfg *cfg, size_t i, char *out, size_t size)
{
    snprintf(out, size, "chargers[%zu].%s", i,
             cfg->charger_links[i].kind == PW_CFG_LINK_OCPP ? "link.ocpp"
             : c->charger_old_key[i]                        ? "device_id"
                                                            : "link.lan.device_id");
}

static void meter_link_field(const ctx *c, const pw_cfg *cfg, size_t i, char *out, size_t size)
{
    const char *key = "link";
    switch (cfg->meters[i].kind) {
    case PW_CFG_LINK_LAN:
        key = c->meter_old_key[i] ? "device_id" : "link.lan.device_id";
        break;
    case PW_CFG_LINK_DEFA:
        key = c->meter_old_key[i] ? "defa_serial" : "link.defa.serial";
        break;
    case PW_CFG_LINK_MODBUS: /* host, port and unit together are the identity */
        key = "link.modbus";
        break;
    case PW_CFG_LINK_MQTT:
        key = strcmp(cfg->meter_opts[i].preset, "plain") == 0 ? "link.mqtt.topics"
                                                              : "link.mqtt.topic";
        break;
    default:
        break;
    }
    snprintf(out, size, "nodes[%zu].meter.%s", i, key);
}

/* Cross-field rules that need the whole facility. Uniqueness is checked by sorting, so that a
 * facility of PW_CFG_MAX_CHARGERS validates in milliseconds: it runs on the event loop. */
static void check_facility(ctx *c, pw_cfg *cfg)
{
    size_t n = cfg->n_chargers, n_repeats;
    char field[64], text[160];
    entry *v = pw_xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (entry){.id = cfg->chargers[i].id, .at = (uint32_t)i};
    repeat *d = find_repeats(v, n, &n_repeats);
    for (size_t k = 0; k < n_repeats; k++) {
        snprintf(field, sizeof field, "chargers[%" PRIu32 "].id", d[k].at);
        add_error(c, field, "'%s' is used by chargers[%" PRIu32 "] too", cfg->chargers[d[k].at].id,
                  d[k].first);
    }
    free(d);

    for (size_t i = 0; i < n; i++)
        v[i] = (entry){.link = &cfg->charger_links[i], .at = (uint32_t)i};
    d = find_repeats(v, n, &n_repeats);
    for (size_t k = 0; k < n_repeats; k++) {
        charger_link_field(c, cfg, d[k].at, field, sizeof field);
        pw_cfg_link_format(&cfg->charger_links[d[k].at], text, sizeof text);
        add_error(c, field, "%s is used by chargers[%" PRIu32 "] too", text, d[k].first);
    }
    free(d);
    /* v stays sorted by link: it is the lookup index, and the meters are checked against it. */
    cfg->charger_order = pw_xcalloc(n, sizeof *cfg->charger_order);
    for (size_t i = 0; i < n; i++)
        cfg->charger_order[i] = v[i].at;

    for (size_t i = 0; i < n; i++) {
        if (cfg->grid == PW_GRID_IT && cfg->chargers[i].wiring[1] == 0) {
            snprintf(field, sizeof field, "chargers[%zu].wiring", i);
            add_error(c, field, "on an IT grid a charger needs at least two lines");
        }
    }

    entry *m = pw_xcalloc(cfg->n_nodes, sizeof *m);
    size_t n_meters = 0;
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (cfg->meters[i].kind != PW_CFG_LINK_NONE)
            m[n_meters++] = (entry){.link = &cfg->meters[i], .at = (uint32_t)i};
    d = find_repeats(m, n_meters, &n_repeats);
    for (size_t k = 0; k < n_repeats; k++) {
        meter_link_field(c, cfg, d[k].at, field, sizeof field);
        pw_cfg_link_format(&cfg->meters[d[k].at], text, sizeof text);
        add_error(c, field, "%s is the meter of nodes[%" PRIu32 "] too", text, d[k].first);
    }
    free(d);
    free(m);
    /* A meter must not answer to a charger's link either: its readings would be taken for the
     * charger's reports, or the other way round. */
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        entry key = {.link = &cfg->meters[i]};
        const entry *hit = cfg->meters[i].kind != PW_CFG_LINK_NONE ? lower_bound(v, n, &key) : NULL;
        if (hit) {
            meter_link_field(c, cfg, i, field, sizeof field);
            pw_cfg_link_format(&cfg->meters[i], text, sizeof text);
            add_error(c, field, "%s is the link of chargers[%" PRIu32 "] too", text, hit->at);
        }
    }
    free(v);
    if (c->errs->count)
        return; /* the balancer's checks assume a structurally sound facility */
    pw_bal_facility f;
    pw_cfg_facility(cfg, &f);
    pw_cfg_error *e = c->errs->count < PW_CFG_MAX_ERRORS ? &c->errs->items[c->errs->count] : NULL;
    char msg[sizeof e->field + sizeof e->message];
    if (pw_bal_validate(&f, msg, sizeof msg) != 0) {
        /* The balancer reports "field: message"; split it so forms can show it by the field. */
        char *sep = strstr(msg, ": ");
        c->errs->count++;
        if (!e)
            return;
        if (sep) {
            *sep = '\0';
            pw_strlcpy(e->field, msg, sizeof e->field);
            pw_strlcpy(e->message, sep + 2, sizeof e->message);
        } else {
            pw_strlcpy(e->field, "(facility)", sizeof e->field);
            pw_strlcpy(e->message, msg, sizeof e->message);
        }
    }
}

pw_cfg *pw_cfg_from_json(const json_t *root, pw_cfg_errors *errs)
{
    /* restart_pending is what GET /api/config adds (docs/config.md): the web UI puts back
     * what it got, so it is accepted and ignored. */
    static const char *const keys[] = {"version",
                                       "site",
                                       "grid",
                                       "network",
                                       "http",
                                       "mqtt",
                                       "ocpp",
                                       "balancer",
                                       "timing",
                                       "nodes",
                                       "chargers",
                                       "tags",
                                       "restart_pending",
                                       "timing_in_force",
                                       "uplink",
                                       NULL};
    ctx c = {.errs = errs};
    memset(errs, 0, sizeof *errs);
    if (!json_is_object(root)) {
        add_error(&c, NULL, "the configuration must be a JSON object");
        return NULL;
    }
    pw_cfg *cfg = pw_xcalloc(1, sizeof *cfg);
    set_defaults(cfg);
    check_keys(&c, root, keys);

    uint32_t version = 1;
    if (get_u32(&c, root, "version", 1, 1000, &version) && version != 1)
        add_error(&c, "version", "this phasewise reads version 1 only");
    get_string(&c, root, "site", cfg->site_name, sizeof cfg->site_name);
    json_t *grid = json_object_get(root, "grid");
    if (!json_is_string(grid) ||
        (strcmp(json_string_value(grid), "TN") && strcmp(json_string_value(grid), "IT")))
        add_error(&c, "grid", "must be \"TN\" (230 V line-neutral) or \"IT\" (no neutral)");
    else
        cfg->grid = strcmp(json_string_value(grid), "IT") == 0 ? PW_GRID_IT : PW_GRID_TN;
    if (json_object_get(root, "network"))
        parse_network(&c, json_object_get(root, "network"), &cfg->net);
    if (json_object_get(root, "http"))
        parse_http(&c, json_object_get(root, "http"), &cfg->http);
    if (json_object_get(root, "mqtt"))
        parse_mqtt(&c, json_object_get(root, "mqtt"), cfg);
    if (json_object_get(root, "ocpp"))
        parse_ocpp(&c, json_object_get(root, "ocpp"), &cfg->ocpp);
    if (json_object_get(root, "uplink")) /* after "site": its id may come from the name */
        parse_uplink(&c, json_object_get(root, "uplink"), cfg);
    if (json_object_get(root, "tags"))
        parse_tags(&c, json_object_get(root, "tags"), cfg);
    if (json_object_get(root, "balancer"))
        parse_balancer(&c, json_object_get(root, "balancer"), cfg);
    if (json_object_get(root, "timing")) {
        size_t before = errs->count;
        parse_timing(&c, json_object_get(root, "timing"), cfg);
        /* The rules need the defaults, which need balancer and ocpp read without error. */
        for (size_t k = 0; k < PW_ARRAY_LEN(timing_kinds) && errs->count == before; k++) {
            const pw_bal_timing *t = &cfg->timing_by_kind[timing_kinds[k]];
            if (t->status_min_ms || t->status_max_ms || t->status_delay_ms || t->offline_ms)
                check_timing(&c, cfg, timing_kinds[k]);
        }
    }

    cfg->n_nodes = array_member(&c, root, "nodes", PW_CFG_MAX_NODES);
    cfg->nodes = pw_xcalloc(cfg->n_nodes, sizeof *cfg->nodes);
    cfg->meters = pw_xcalloc(cfg->n_nodes, sizeof *cfg->meters);
    cfg->meter_opts = pw_xcalloc(cfg->n_nodes, sizeof *cfg->meter_opts);
    c.meter_old_key = pw_xcalloc(cfg->n_nodes, sizeof *c.meter_old_key);
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        json_t *n = json_array_get(json_object_get(root, "nodes"), i);
        push_path(&c, "nodes", (long)i);
        set_node_defaults(&cfg->nodes[i]);
        if (json_is_object(n))
            parse_node(&c, n, cfg, i);
        else
            add_error(&c, NULL, "must be an object");
        pop_path(&c);
    }
    /* A feed is read from the broker: without one it would never be read. */
    for (size_t i = 0; i < cfg->n_nodes && !*cfg->mqtt.host; i++) {
        if (cfg->meters[i].kind == PW_CFG_LINK_MQTT) {
            char field[48];
            snprintf(field, sizeof field, "nodes[%zu].meter.link.mqtt", i);
            add_error(&c, field, "is read from an MQTT broker: set mqtt.host (and port, login)");
        }
    }
    index_nodes(&c, cfg);
    cfg->n_chargers = array_member(&c, root, "chargers", PW_CFG_MAX_CHARGERS);
    cfg->chargers = pw_xcalloc(cfg->n_chargers, sizeof *cfg->chargers);
    cfg->charger_links = pw_xcalloc(cfg->n_chargers, sizeof *cfg->charger_links);
    c.charger_old_key = pw_xcalloc(cfg->n_chargers, sizeof *c.charger_old_key);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        json_t *ch = json_array_get(json_object_get(root, "chargers"), i);
        push_path(&c, "chargers", (long)i);
        set_charger_defaults(&cfg->chargers[i]);
        if (json_is_object(ch))
            parse_charger(&c, ch, cfg, i);
        else
            add_error(&c, NULL, "must be an object");
        pop_path(&c);
    }
    check_ocpp(&c, cfg);
    if (!errs->count)
        check_facility(&c, cfg);
    free(c.meter_old_key);
    free(c.charger_old_key);
    free(c.nodes_by_id);
    if (errs->count) {
        pw_cfg_free(cfg);
        return NULL;
    }
    return cfg;
}

pw_cfg *pw_cfg_parse(const char *text, size_t len, pw_cfg_errors *errs)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        ctx c = {.errs = errs};
        memset(errs, 0, sizeof *errs);
        add_error(&c, NULL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                  jerr.text);
        return NULL;
    }
    pw_cfg *cfg = pw_cfg_from_json(root, errs);
    json_decref(root);
    return cfg;
}

/* "IFADDR" or "IFADDR:PORT" (port 1-65535). Returns 0 or -1. */
static int parse_lan_option(const char *text, char *addr, size_t addr_size, uint16_t *port)
{
    struct in_addr a;
    if (!strchr(text, ':')) {
        if (!parse_ipv4(text, &a) || strlen(text) >= addr_size)
            return -1;
        pw_strlcpy(addr, text, addr_size);
        return 0;
    }
    uint16_t p = 0;
    if (pw_cfg_parse_listen(text, addr, addr_size, &p) != 0 || p == 0)
        return -1;
    *port = p;
    return 0;
}

pw_cfg *pw_cfg_commissioning_new(const pw_cfg_first_start *fs, pw_cfg_errors *errs)
{
    ctx c = {.errs = errs};
    memset(errs, 0, sizeof *errs);
    pw_cfg *cfg = pw_xcalloc(1, sizeof *cfg);
    set_defaults(cfg);
    cfg->commissioning = true;
    /* OCPP is on at its default address: a charge point that connects is listed (and held at
     * 0 A) for the installer to add. */
    cfg->ocpp.listen_port = DEFAULT_OCPP_PORT;
    uint16_t port = 0;
    if (fs && fs->http &&
        (pw_cfg_parse_listen(fs->http, cfg->http.addr, sizeof cfg->http.addr, &port) != 0 ||
         port == 0))
        add_error(&c, "--http", "expected ADDRESS:PORT, e.g. 0.0.0.0:8080");
    else if (fs && fs->http)
        cfg->http.port = port;
    if (fs && fs->lan &&
        parse_lan_option(fs->lan, cfg->net.interface, sizeof cfg->net.interface, &cfg->net.port) !=
            0)
        add_error(&c, "--lan",
                  "expected the IPv4 address of the LAN interface, optionally with the group's "
                  "port: 192.168.1.20 or 192.168.1.20:48870");
    port = 0;
    if (fs && fs->ocpp &&
        (pw_cfg_parse_listen(fs->ocpp, cfg->ocpp.listen_addr, sizeof cfg->ocpp.listen_addr,
                             &port) != 0 ||
         port == 0))
        add_error(&c, "--ocpp", "expected ADDRESS:PORT, e.g. 0.0.0.0:8887");
    else if (fs && fs->ocpp)
        cfg->ocpp.listen_port = port;
    if (cfg->ocpp.listen_port == cfg->http.port &&
        (strcmp(cfg->ocpp.listen_addr, cfg->http.addr) == 0 ||
         strcmp(cfg->ocpp.listen_addr, "0.0.0.0") == 0 || strcmp(cfg->http.addr, "0.0.0.0") == 0))
        add_error(&c, "--ocpp", "port %u is the web front's: give OCPP a port of its own",
                  cfg->ocpp.listen_port);
    if (errs->count) {
        pw_cfg_free(cfg);
        return NULL;
    }
    cfg->n_nodes = 1;
    cfg->nodes = pw_xcalloc(1, sizeof *cfg->nodes);
    cfg->meters = pw_xcalloc(1, sizeof *cfg->meters);
    cfg->meter_opts = pw_xcalloc(1, sizeof *cfg->meter_opts);
    set_node_defaults(&cfg->nodes[0]);
    pw_strlcpy(cfg->nodes[0].id, "main", sizeof cfg->nodes[0].id);
    pw_strlcpy(cfg->nodes[0].name, "Main fuse", sizeof cfg->nodes[0].name);
    cfg->nodes[0].parent = -1; /* limit 0 A: nothing could be planned, were there chargers */
    cfg->chargers = pw_xcalloc(1, sizeof *cfg->chargers);
    cfg->charger_links = pw_xcalloc(1, sizeof *cfg->charger_links);
    return cfg;
}

pw_cfg *pw_cfg_load(const char *path, pw_cfg_errors *errs)
{
    ctx c = {.errs = errs};
    memset(errs, 0, sizeof *errs);
    FILE *f = fopen(path, "rb");
    if (!f) {
        add_error(&c, NULL, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = pw_xmalloc(PW_CFG_MAX_FILE + 1);
    size_t len = fread(buf, 1, PW_CFG_MAX_FILE + 1, f);
    bool failed = ferror(f);
    fclose(f);
    pw_cfg *cfg = NULL;
    if (failed)
        add_error(&c, NULL, "cannot read %s", path);
    else if (len > PW_CFG_MAX_FILE)
        add_error(&c, NULL, "%s is larger than %u bytes", path, PW_CFG_MAX_FILE);
    else
        cfg = pw_cfg_parse(buf, len, errs);
    free(buf);
    return cfg;
}

static json_t *lines_json(const double v[PW_LINES])
{
    if (v[0] == v[1] && v[1] == v[2])
        return json_real(v[0]);
    return json_pack("[fff]", v[0], v[1], v[2]);
}

/* Three line entries as the file has them: a string, or null for a line not reported. */
static json_t *line_strings_json(const char *v, size_t size)
{
    json_t *a = json_array();
    for (size_t l = 0; l < PW_LINES; l++)
        json_array_append_new(a, v[l * size] ? json_string(v + l * size) : json_null());
    return a;
}

/* A meter's link with what the file says beside its identity; opts NULL: identity only. */
static json_t *meter_link_json(const pw_cfg_link *l, const pw_cfg_meter_opts *o)
{
    if (!o || (l->kind != PW_CFG_LINK_MODBUS && l->kind != PW_CFG_LINK_MQTT))
        return pw_cfg_link_to_json(l);
    json_t *body;
    if (l->kind == PW_CFG_LINK_MODBUS) {
        body = json_pack("{s:s, s:i, s:i, s:s, s:I, s:I}", "host", l->host, "port", l->port, "unit",
                         l->unit, "map", o->map, "interval_ms", (json_int_t)o->interval_ms,
                         "timeout_ms", (json_int_t)o->timeout_ms);
        if (strcmp(o->map, "generic") == 0) {
            json_t *lines = json_array();
            for (size_t i = 0; i < PW_LINES; i++) {
                const pw_cfg_generic_reg *r = &o->line[i];
                json_array_append_new(
                    lines, r->present ? json_pack("{s:i, s:s, s:f}", "address", r->address, "type",
                                                  reg_types[r->type], "scale", r->scale)
                                      : json_null());
            }
            json_object_set_new(body, "function", json_integer(o->function));
            json_object_set_new(body, "low_word_first", json_boolean(o->low_word_first));
            json_object_set_new(body, "lines", lines);
        }
        return json_pack("{s:o}", "modbus", body);
    }
    body = json_pack("{s:s}", "preset", o->preset);
    if (strcmp(o->preset, "plain") == 0)
        json_object_set_new(body, "topics", line_strings_json(o->topics[0], PW_CFG_TOPIC_LEN));
    else
        json_object_set_new(body, "topic", json_string(l->topic));
    if (strcmp(o->preset, "json") == 0)
        json_object_set_new(body, "paths", line_strings_json(o->paths[0], PW_CFG_PATH_LEN));
    return json_pack("{s:o}", "mqtt", body);
}

json_t *pw_cfg_to_json(const pw_cfg *cfg)
{
    const pw_bal_params *p = &cfg->params;
    char listen[96];
    snprintf(listen, sizeof listen, "%s:%u", cfg->http.addr, cfg->http.port);
    json_t *root = json_pack(
        "{s:i, s:s, s:s, s:{s:s, s:i, s:s, s:i, s:s, s:b, s:b}, s:{s:s, s:b, s:{s:b, s:s, s:s}}}",
        "version", 1, "site", cfg->site_name, "grid", cfg->grid == PW_GRID_IT ? "IT" : "TN",
        "network", "group", cfg->net.group, "port", cfg->net.port, "interface", cfg->net.interface,
        "ttl", cfg->net.ttl, "key_file", cfg->net.key_file, "defa_meters", cfg->net.defa_meters,
        "defa_emit", cfg->net.defa_emit, "http", "listen", listen, "dashboard_login",
        cfg->http.dashboard_login, "tls", "enabled", cfg->http.tls.enabled, "cert_file",
        cfg->http.tls.cert_file, "key_file", cfg->http.tls.key_file);
    const pw_cfg_mqtt *mq = &cfg->mqtt;
    json_object_set_new(root, "mqtt",
                        json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:s, s:i}", "host", mq->host,
                                  "port", mq->port, "username", mq->username, "password",
                                  mq->password, "client_id", mq->client_id, "tls", mq->tls,
                                  "ca_file", mq->ca_file, "keepalive_s", mq->keepalive_s));
    if (*mq->cert_file) /* only brokers that ask for a client certificate have one */
        json_object_set_new(json_object_get(root, "mqtt"), "cert_file", json_string(mq->cert_file));
    if (*mq->key_file)
        json_object_set_new(json_object_get(root, "mqtt"), "key_file", json_string(mq->key_file));
    const pw_cfg_mqtt_publish *pub = &cfg->mqtt_publish;
    const pw_cfg_mqtt_commands *cmd = &cfg->mqtt_commands;
    json_object_set_new(json_object_get(root, "mqtt"), "publish",
                        json_pack("{s:b, s:s, s:b, s:s}", "enabled", pub->enabled, "prefix",
                                  pub->prefix, "home_assistant", pub->home_assistant,
                                  "discovery_prefix", pub->discovery_prefix));
    json_object_set_new(json_object_get(root, "mqtt"), "commands",
                        json_pack("{s:b, s:b, s:b, s:b}", "pause", cmd->pause, "priority",
                                  cmd->priority, "max_current", cmd->max_current, "facility_limit",
                                  cmd->facility_limit));
    const pw_cfg_uplink *up = &cfg->uplink;
    json_t *uplink = json_pack(
        "{s:s, s:i, s:b, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "host", up->broker.host, "port",
        up->broker.port, "tls", up->broker.tls, "ca_file", up->broker.ca_file, "username",
        up->broker.username, "password", up->broker.password, "client_id", up->broker.client_id,
        "keepalive_s", up->broker.keepalive_s, "site", up->site, "prefix", up->prefix);
    if (*up->broker.cert_file) /* a client certificate instead of (or with) a password */
        json_object_set_new(uplink, "cert_file", json_string(up->broker.cert_file));
    if (*up->broker.key_file)
        json_object_set_new(uplink, "key_file", json_string(up->broker.key_file));
    json_object_set_new(root, "uplink", uplink);
    const pw_cfg_ocpp *oc = &cfg->ocpp;
    if (oc->listen_port) { /* no section: OCPP off */
        snprintf(listen, sizeof listen, "%s:%u", oc->listen_addr, oc->listen_port);
        json_t *cps = json_array();
        for (size_t i = 0; i < oc->n_charge_points; i++) {
            const pw_cfg_ocpp_cp *cp = &oc->charge_points[i];
            json_t *o = json_pack("{s:s}", "id", cp->id);
            if (*cp->password_hash)
                json_object_set_new(o, "password_hash", json_string(cp->password_hash));
            if (*cp->quirks)
                json_object_set_new(o, "quirks", json_string(cp->quirks));
            if (*cp->upstream_password)
                json_object_set_new(o, "upstream_password", json_string(cp->upstream_password));
            json_array_append_new(cps, o);
        }
        json_object_set_new(
            root, "ocpp",
            json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:s, s:o}", "listen", listen, "tls", oc->tls,
                      "meter_interval_s", (json_int_t)oc->meter_interval_s, "heartbeat_s",
                      (json_int_t)oc->heartbeat_s, "min_interval_s", (json_int_t)oc->min_interval_s,
                      "daily_writes", (json_int_t)oc->daily_writes, "authorize",
                      oc->local_authorize ? "local_list" : "accept", "charge_points", cps));
        if (*oc->upstream.url)
            json_object_set_new(json_object_get(root, "ocpp"), "upstream",
                                json_pack("{s:s, s:s, s:s}", "url", oc->upstream.url, "ca_file",
                                          oc->upstream.ca_file, "authorize",
                                          oc->upstream.authorize_csms    ? "csms"
                                          : oc->upstream.authorize_local ? "local"
                                                                         : "charge_point"));
    }
    json_object_set_new(
        root, "balancer",
        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:f, s:i}", "reaction_s",
                  p->reaction_ms / 1000.0, "min_run_s", p->min_run_ms / 1000.0, "min_pause_s",
                  p->min_pause_ms / 1000.0, "offline_s", p->offline_ms / 1000.0, "hysteresis_a",
                  p->hysteresis_a, "trim_headroom_a", p->trim_headroom_a, "probe_s",
                  p->probe_ms / 1000.0, "max_phase_switches", (int)p->max_phase_switches,
                  "active_phase_a", p->active_phase_a, "phase_hold_s", p->phase_hold_ms / 1000.0,
                  "meter_history_s", p->meter_history_ms / 1000.0, "lease_s",
                  cfg->lease_ms / 1000.0, "tick_ms", (int)cfg->tick_ms));
    json_t *timing = json_object();
    for (size_t k = 0; k < PW_ARRAY_LEN(timing_kinds); k++) {
        const pw_bal_timing *t = &cfg->timing_by_kind[timing_kinds[k]];
        if (t->status_min_ms || t->status_max_ms || t->status_delay_ms || t->offline_ms)
            json_object_set_new(timing, pw_cfg_link_kind_name(timing_kinds[k]),
                                timing_json(t, false));
    }
    if (json_object_size(timing)) /* no section: every kind keeps its transport's timing */
        json_object_set_new(root, "timing", timing);
    else
        json_decref(timing);
    json_t *nodes = json_array();
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        const pw_bal_node_spec *n = &cfg->nodes[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:o, s:o, s:f, s:f}", "id", n->id, "name", n->name, "parent",
            n->parent < 0 ? json_null() : json_string(cfg->nodes[n->parent].id), "limit_a",
            lines_json(n->limit_a), "margin_a", n->margin_a, "max_imbalance_a", n->max_imbalance_a);
        if (n->reserve_a[0] || n->reserve_a[1] || n->reserve_a[2])
            json_object_set_new(o, "reserve_a", lines_json(n->reserve_a));
        const pw_cfg_link *m = &cfg->meters[i];
        const pw_cfg_meter_opts *mo = cfg->meter_opts ? &cfg->meter_opts[i] : NULL;
        if (m->kind != PW_CFG_LINK_NONE)
            json_object_set_new(o, "meter",
                                json_pack("{s:o, s:f, s:o, s:b}", "link", meter_link_json(m, mo),
                                          "timeout_s", n->meter_timeout_ms / 1000.0, "fallback_a",
                                          lines_json(n->meter_fallback_a), "derive_l2",
                                          mo && mo->derive_l2));
        json_array_append_new(nodes, o);
    }
    json_object_set_new(root, "nodes", nodes);
    json_t *chargers = json_array();
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_bal_charger_spec *ch = &cfg->chargers[i];
        char wiring[8];
        pw_cfg_wiring_format(ch->wiring, wiring);
        json_array_append_new(
            chargers,
            json_pack("{s:s, s:s, s:o, s:s, s:s, s:f, s:f, s:f, s:i, s:f, s:b}", "id", ch->id,
                      "name", ch->name, "link", pw_cfg_link_to_json(&cfg->charger_links[i]), "node",
                      cfg->nodes[ch->node].id, "wiring", wiring, "min_a", ch->min_a, "max_a",
                      ch->max_a, "failsafe_a", ch->failsafe_a, "priority", ch->priority, "weight",
                      ch->weight, "phase_switching", ch->can_switch_phases));
    }
    json_object_set_new(root, "chargers", chargers);
    if (cfg->n_tags) {
        json_t *tags = json_array();
        for (size_t i = 0; i < cfg->n_tags; i++)
            json_array_append_new(
                tags, json_pack("{s:s, s:s}", "id", cfg->tags[i].id, "name", cfg->tags[i].name));
        json_object_set_new(root, "tags", tags);
    }
    return root;
}

int pw_cfg_save(const pw_cfg *cfg, const char *path, pw_cfg_errors *errs)
{
    ctx c = {.errs = errs};
    memset(errs, 0, sizeof *errs);
    json_t *root = pw_cfg_to_json(cfg);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(root);
    char msg[sizeof errs->items[0].message];
    int rc = pw_write_file_atomic(path, text, strlen(text), 0640, msg, sizeof msg);
    if (rc != 0)
        add_error(&c, NULL, "%s", msg);
    free(text);
    return rc;
}

void pw_cfg_free(pw_cfg *cfg)
{
    if (!cfg)
        return;
    free(cfg->nodes);
    free(cfg->meters);
    free(cfg->meter_opts);
    free(cfg->chargers);
    free(cfg->charger_links);
    free(cfg->charger_order);
    free(cfg->ocpp.charge_points);
    free(cfg->tags);
    free(cfg);
}

void pw_cfg_facility(const pw_cfg *cfg, pw_bal_facility *out)
{
    *out = (pw_bal_facility){.grid = cfg->grid,
                             .nodes = cfg->nodes,
                             .n_nodes = cfg->n_nodes,
                             .chargers = cfg->chargers,
                             .n_chargers = cfg->n_chargers,
                             .params = cfg->params};
}

int pw_cfg_charger_by_link(const pw_cfg *cfg, const pw_cfg_link *link)
{
    size_t lo = 0, hi = cfg->charger_order ? cfg->n_chargers : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = link_cmp(&cfg->charger_links[cfg->charger_order[mid]], link);
        if (d == 0)
            return (int)cfg->charger_order[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* A config put together by hand has no index, and one changed after parsing may have moved
     * its links: scan before saying that no charger has it. */
    for (size_t i = 0; i < cfg->n_chargers; i++)
        if (pw_cfg_link_equal(&cfg->charger_links[i], link))
            return (int)i;
    return -1;
}

bool pw_cfg_link_equal(const pw_cfg_link *a, const pw_cfg_link *b)
{
    return link_cmp(a, b) == 0;
}

const char *pw_cfg_link_kind_name(enum pw_cfg_link_kind kind)
{
    switch (kind) {
    case PW_CFG_LINK_LAN:
        return "lan";
    case PW_CFG_LINK_DEFA:
        return "defa";
    case PW_CFG_LINK_MODBUS:
        return "modbus";
    case PW_CFG_LINK_MQTT:
        return "mqtt";
    case PW_CFG_LINK_OCPP:
        return "ocpp";
    default:
        return "";
    }
}

void pw_cfg_link_format(const pw_cfg_link *link, char *out, size_t out_size)
{
    switch (link->kind) {
    case PW_CFG_LINK_LAN:
        snprintf(out, out_size, "lan device %" PRIu32, link->device_id);
        break;
    case PW_CFG_LINK_DEFA:
        snprintf(out, out_size, "defa meter %.*s", (int)sizeof link->serial, link->serial);
        break;
    case PW_CFG_LINK_MODBUS:
        snprintf(out, out_size, "modbus %.*s:%u unit %u", (int)sizeof link->host, link->host,
                 link->port, link->unit);
        break;
    case PW_CFG_LINK_MQTT:
        snprintf(out, out_size, "mqtt topic %.*s", (int)sizeof link->topic, link->topic);
        break;
    case PW_CFG_LINK_OCPP:
        snprintf(out, out_size, "ocpp %.*s connector %u", (int)sizeof link->cp_id, link->cp_id,
                 link->connector);
        break;
    default:
        snprintf(out, out_size, "no link");
        break;
    }
}

json_t *pw_cfg_link_to_json(const pw_cfg_link *link)
{
    switch (link->kind) {
    case PW_CFG_LINK_LAN:
        return json_pack("{s:{s:I}}", "lan", "device_id", (json_int_t)link->device_id);
    case PW_CFG_LINK_DEFA:
        return json_pack("{s:{s:s#}}", "defa", "serial", link->serial,
                         (int)strnlen(link->serial, sizeof link->serial));
    case PW_CFG_LINK_MODBUS:
        return json_pack("{s:{s:s#, s:i, s:i}}", "modbus", "host", link->host,
                         (int)strnlen(link->host, sizeof link->host), "port", link->port, "unit",
                         link->unit);
    case PW_CFG_LINK_MQTT:
        return json_pack("{s:{s:s#}}", "mqtt", "topic", link->topic,
                         (int)strnlen(link->topic, sizeof link->topic));
    case PW_CFG_LINK_OCPP:
        return json_pack("{s:{s:s#, s:i}}", "ocpp", "id", link->cp_id,
                         (int)strnlen(link->cp_id, sizeof link->cp_id), "connector",
                         link->connector);
    default:
        return json_null();
    }
}

size_t pw_cfg_restart_fields(const pw_cfg *running, const pw_cfg *saved, const char **out,
                             size_t max)
{
    const pw_cfg_net *a = &running->net, *b = &saved->net;
    const pw_cfg_http *ha = &running->http, *hb = &saved->http;
    const pw_cfg_mqtt *ma = &running->mqtt, *mb = &saved->mqtt;
    const pw_cfg_ocpp *oa = &running->ocpp, *ob = &saved->ocpp;
    /* The DEFA socket is opened at start if either flag is set: only turning DEFA frames on or
     * off as a whole waits for a restart, so a flag counts only when that changes. */
    bool defa_flip = (a->defa_meters || a->defa_emit) != (b->defa_meters || b->defa_emit);
    const struct {
        bool differs;
        const char *field;
    } f[] = {
        {strcmp(a->group, b->group) != 0, "network.group"},
        {a->port != b->port, "network.port"},
        {a->ttl != b->ttl, "network.ttl"},
        {strcmp(a->key_file, b->key_file) != 0, "network.key_file"},
        {defa_flip && a->defa_meters != b->defa_meters, "network.defa_meters"},
        {defa_flip && a->defa_emit != b->defa_emit, "network.defa_emit"},
        {strcmp(ha->addr, hb->addr) != 0 || ha->port != hb->port, "http.listen"},
        {ha->tls.enabled != hb->tls.enabled, "http.tls.enabled"},
        {strcmp(ha->tls.cert_file, hb->tls.cert_file) != 0, "http.tls.cert_file"},
        {strcmp(ha->tls.key_file, hb->tls.key_file) != 0, "http.tls.key_file"},
        /* The broker connection is set up once, at start. Feeds (topics, paths) apply at once. */
        {strcmp(ma->host, mb->host) != 0, "mqtt.host"},
        {ma->port != mb->port, "mqtt.port"},
        {ma->tls != mb->tls, "mqtt.tls"},
        {strcmp(ma->ca_file, mb->ca_file) != 0, "mqtt.ca_file"},
        {strcmp(ma->username, mb->username) != 0, "mqtt.username"},
        {strcmp(ma->password, mb->password) != 0, "mqtt.password"},
        {strcmp(ma->client_id, mb->client_id) != 0, "mqtt.client_id"},
        {strcmp(ma->cert_file, mb->cert_file) != 0, "mqtt.cert_file"},
        {strcmp(ma->key_file, mb->key_file) != 0, "mqtt.key_file"},
        /* The OCPP listener too (turning OCPP on or off changes its port); charge points,
         * intervals, the write budget and authorization apply at once. */
        {strcmp(oa->listen_addr, ob->listen_addr) != 0 || oa->listen_port != ob->listen_port,
         "ocpp.listen"},
        {oa->tls != ob->tls, "ocpp.tls"},
    };
    _Static_assert(sizeof f / sizeof f[0] == PW_CFG_RESTART_FIELDS_MAX, "header's count");
    size_t n = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0] && n < max; i++)
        if (f[i].differs)
            out[n++] = f[i].field;
    return n;
}

const pw_cfg_ocpp_cp *pw_cfg_ocpp_cp_find(const pw_cfg *cfg, const char *id)
{
    pw_cfg_ocpp_cp key;
    /* bsearch must not see a NULL array, even an empty one (OCPP off: none). */
    if (!cfg->ocpp.n_charge_points || pw_strlcpy(key.id, id, sizeof key.id) >= sizeof key.id)
        return NULL; /* none, or longer than any identity */
    return bsearch(&key, cfg->ocpp.charge_points, cfg->ocpp.n_charge_points,
                   sizeof *cfg->ocpp.charge_points, ocpp_cp_cmp);
}

const pw_cfg_tag *pw_cfg_tag_find(const pw_cfg *cfg, const char *id)
{
    pw_cfg_tag key;
    if (!cfg->n_tags || pw_strlcpy(key.id, id, sizeof key.id) >= sizeof key.id)
        return NULL;
    return bsearch(&key, cfg->tags, cfg->n_tags, sizeof *cfg->tags, tag_cmp);
}

int pw_cfg_node_by_id(const pw_cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (strcmp(cfg->nodes[i].id, id) == 0)
            return (int)i;
    return -1;
}

void pw_cfg_errors_print(const pw_cfg_errors *errs, char *out, size_t out_size)
{
    size_t used = 0;
    out[0] = '\0';
    size_t shown = errs->count < PW_CFG_MAX_ERRORS ? errs->count : PW_CFG_MAX_ERRORS;
    for (size_t i = 0; i < shown && used < out_size; i++) {
        int n = snprintf(out + used, out_size - used, "%s: %s\n", errs->items[i].field,
                         errs->items[i].message);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (errs->count > shown && used < out_size)
        snprintf(out + used, out_size - used, "(%zu more errors not shown)\n", errs->count - shown);
}

void pw_cfg_site_id(const pw_cfg *cfg, char *out, size_t out_size)
{
    if (*cfg->uplink.site) {
        pw_strlcpy(out, cfg->uplink.site, out_size);
        return;
    }
    /* The site's name as a topic level: lower-case letters and digits, '-' for a run of
     * anything else ("Garage Nord 2" -> "garage-nord-2"). */
    size_t n = 0;
    bool dash = false;
    for (const char *s = cfg->site_name; *s && n + 2 < out_size; s++) {
        char ch = *s;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            if (dash && n > 0)
                out[n++] = '-';
            out[n++] = ch;
            dash = false;
        } else {
            dash = true;
        }
    }
    if (n == 0 && out_size > 4)
        n = (size_t)snprintf(out, out_size, "site");
    out[n] = '\0';
}
