/* State out on the broker of "mqtt" (docs/mqtt.md): the shell around mqtt/pw_mqtt_out.h. Each
 * state document is fed in as it is built (its head, then its chargers slice by slice), the
 * change table says what is due, and a timer publishes it over a connection of our own (not the
 * meters': a slow publish must never delay a meter reading) with "<base>/status" as its last
 * will. Commands arrive on the same connection and go through pw_command_apply like the web
 * API's; the answer goes to "<base>/command/result". Nothing here waits on the broker: while it
 * is away the table just keeps the latest values, and a reconnect sends them all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "command.h"
#include "pw_mqtt_conn.h"
#include "pw_mqtt_out.h"
#include "pw_util.h"

#define DRAIN_MAX     200 /* messages per loop turn: the loop stays responsive after a reconnect */
#define MAX_FILTERS   4
#define REJECT_SOURCE "mqtt-cmd" /* the core's transport name is at most 11 characters */

typedef struct pw_mqtt_pub {
    pw_app *app;
    uv_timer_t drain;
    pw_mqtt_out *out;   /* NULL while publishing is off */
    pw_mqtt_conn *conn; /* NULL while off, or when the config cannot be set up */
    pw_cfg_mqtt broker; /* what conn was opened with */
    char problem[320];  /* why conn could not be set up at all */
    char filters[MAX_FILTERS][PW_MQTT_OUT_TOPIC_LEN];
    size_t n_filters;   /* subscribed on the current connection */
    bool in_round;      /* a document's head came in, its end not yet */
    uint64_t published; /* state messages sent */
    uint64_t accepted, refused;
} pw_mqtt_pub;

/* ---- publishing ---- */

static void on_drain(uv_timer_t *t);

/* Arms the drain timer for the table's next wish (at once: the next loop turn). */
static void schedule(pw_mqtt_pub *p)
{
    if (!p->out || !pw_mqtt_conn_up(p->conn)) {
        uv_timer_stop(&p->drain);
        return;
    }
    uint64_t now = uv_now(&p->app->loop);
    uint64_t at = pw_mqtt_out_table_deadline(pw_mqtt_out_table_of(p->out));
    if (at == UINT64_MAX)
        uv_timer_stop(&p->drain);
    else
        uv_timer_start(&p->drain, on_drain, at > now ? at - now : 0, 0);
}

/* Publishes what is due, at most DRAIN_MAX messages; the rest in the next turn. State topics
 * go with QoS 0, retained: each topic's latest value is all that matters, a lost one is
 * replaced by the next change, and a new connection sends everything again. */
static void on_drain(uv_timer_t *t)
{
    pw_mqtt_pub *p = t->data;
    if (!p->out)
        return;
    pw_mqtt_out_table *table = pw_mqtt_out_table_of(p->out);
    uint64_t now = uv_now(&p->app->loop);
    const char *topic, *value;
    for (int n = 0; n < DRAIN_MAX && pw_mqtt_out_table_next(table, now, &topic, &value); n++) {
        if (pw_mqtt_conn_publish(p->conn, topic, value, strlen(value), 0, true, NULL) != 0) {
            if (!pw_mqtt_conn_up(p->conn))
                return; /* the reconnect sends it */
            /* Refused by libmosquitto itself (a topic it will never take): skip, not stall. */
            pw_warn("mqtt publish", "cannot publish %s: skipped", topic);
        } else {
            p->published++;
        }
        pw_mqtt_out_table_sent(table, now);
    }
    schedule(p);
}

/* ---- commands ---- */

static void answer(pw_mqtt_pub *p, const char *topic, const void *payload, size_t len,
                   const char *error)
{
    char result[PW_MQTT_OUT_TOPIC_LEN];
    snprintf(result, sizeof result, "%s/command/result", pw_mqtt_out_opts_of(p->out)->base);
    char *text = pw_mqtt_out_command_result(topic, payload, len, error);
    if (text)
        pw_mqtt_conn_publish(p->conn, result, text, strlen(text), 1, false, NULL);
    free(text);
}

static void on_command(pw_mqtt_pub *p, const char *topic, const void *payload, size_t len,
                       bool retained)
{
    const pw_mqtt_out_opts *opts = pw_mqtt_out_opts_of(p->out);
    pw_command cmd;
    char err[320];
    int rc = pw_mqtt_out_command_parse(opts->base, &p->app->cfg->mqtt_commands, topic, payload, len,
                                       retained, &cmd, err, sizeof err);
    if (rc == 0 && pw_command_apply(p->app, &cmd, PW_COMMAND_SOURCE_MQTT, err, sizeof err) == 0) {
        p->accepted++;
        answer(p, topic, payload, len, NULL);
        return;
    }
    p->refused++;
    /* Refused before it reached the core: counted like any refused input. The core's own
     * refusals (an unknown charger, a value the facility does not allow) are events already. */
    if (rc != 0)
        pw_ctl_rejected(p->app->ctl, REJECT_SOURCE, pw_mqtt_out_command_reason(rc), err);
    pw_info("mqtt publish", "command on %s refused: %s", topic, err);
    answer(p, topic, payload, len, err);
}

/* ---- the connection ---- */

static void subscribe(pw_mqtt_pub *p)
{
    const pw_mqtt_out_opts *opts = pw_mqtt_out_opts_of(p->out);
    p->n_filters = pw_mqtt_out_command_filters(opts->base, &p->app->cfg->mqtt_commands, p->filters,
                                               MAX_FILTERS);
    /* QoS 1: a command sent while we reconnect is not lost between broker and us. */
    for (size_t k = 0; k < p->n_filters; k++)
        if (pw_mqtt_conn_subscribe(p->conn, p->filters[k], 1, NULL) != 0)
            pw_warn("mqtt publish", "cannot subscribe to %s", p->filters[k]);
    if (opts->home_assistant) {
        char ha[PW_MQTT_OUT_TOPIC_LEN];
        pw_mqtt_out_ha_status_topic(opts, ha, sizeof ha);
        pw_mqtt_conn_subscribe(p->conn, ha, 0, NULL);
    }
}

static void on_up(void *ud, bool session_present)
{
    (void)session_present; /* a clean session: subscribe again every time */
    pw_mqtt_pub *p = ud;
    pw_info("mqtt publish", "connected to %s:%u as %s; publishing under %s/", p->broker.host,
            p->broker.port, pw_mqtt_conn_client_id(p->conn), pw_mqtt_out_opts_of(p->out)->base);
    subscribe(p);
    pw_mqtt_out_table_reconnected(pw_mqtt_out_table_of(p->out));
    schedule(p);
}

static void on_down(void *ud, const char *problem)
{
    pw_mqtt_pub *p = ud;
    pw_warn("mqtt publish", "%s", problem);
    uv_timer_stop(&p->drain);
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    pw_mqtt_pub *p = ud;
    char ha[PW_MQTT_OUT_TOPIC_LEN];
    pw_mqtt_out_ha_status_topic(pw_mqtt_out_opts_of(p->out), ha, sizeof ha);
    if (strcmp(topic, ha) == 0) {
        /* Home Assistant (re)started and lost what it knew: discovery again. */
        if (len == 6 && memcmp(payload, "online", 6) == 0) {
            pw_mqtt_out_ha_online(p->out);
            schedule(p);
        }
        return;
    }
    on_command(p, topic, payload, len, retained);
}

/* The settings state out runs with, from cfg. */
static void out_opts(const pw_cfg *cfg, pw_mqtt_out_opts *o)
{
    *o = (pw_mqtt_out_opts){.home_assistant = cfg->mqtt_publish.home_assistant,
                            .commands = cfg->mqtt_commands};
    pw_cfg_site_id(cfg, o->site, sizeof o->site);
    snprintf(o->base, sizeof o->base, "%s/%s", cfg->mqtt_publish.prefix, o->site);
    pw_strlcpy(o->discovery_prefix, cfg->mqtt_publish.discovery_prefix, sizeof o->discovery_prefix);
    pw_strlcpy(o->version, PW_VERSION, sizeof o->version);
}

static void close_conn(pw_mqtt_pub *p, bool say_offline)
{
    if (!p->conn)
        return;
    /* A clean stop sends no will: say it ourselves before the DISCONNECT. */
    if (say_offline && pw_mqtt_conn_up(p->conn)) {
        char status[PW_MQTT_OUT_TOPIC_LEN];
        pw_mqtt_out_status_topic(pw_mqtt_out_opts_of(p->out), status, sizeof status);
        pw_mqtt_conn_publish(p->conn, status, "offline", 7, 1, true, NULL);
    }
    pw_mqtt_conn_close(p->conn);
    p->conn = NULL;
    p->n_filters = 0;
    uv_timer_stop(&p->drain);
}

static void open_conn(pw_mqtt_pub *p, const pw_cfg *cfg)
{
    const pw_mqtt_out_opts *opts = pw_mqtt_out_opts_of(p->out);
    char status[PW_MQTT_OUT_TOPIC_LEN];
    pw_mqtt_out_status_topic(opts, status, sizeof status);
    pw_mqtt_conn_opts o = {.what = "mqtt publish",
                           .section = "mqtt",
                           .broker = cfg->mqtt,
                           .clean_session = true,
                           .will_topic = status,
                           .will_payload = "offline",
                           .will_qos = 1,
                           .will_retain = true};
    /* Not the meters' client id: two connections with one id would throw each other out. */
    if (*cfg->mqtt.client_id)
        snprintf(o.client_id, sizeof o.client_id, "%.59s-pub", cfg->mqtt.client_id);
    else
        pw_mqtt_conn_client_id_for(cfg->site_name, "-pub", o.client_id, sizeof o.client_id);
    pw_mqtt_conn_cb cb = {.ud = p, .up = on_up, .down = on_down, .message = on_message};
    p->broker = cfg->mqtt;
    p->problem[0] = '\0';
    p->conn = pw_mqtt_conn_new(&p->app->loop, &o, &cb, p->problem, sizeof p->problem);
    if (!p->conn)
        pw_error("mqtt publish", "%s", p->problem);
}

static bool same_broker(const pw_cfg_mqtt *a, const pw_cfg_mqtt *b)
{
    return !strcmp(a->host, b->host) && a->port == b->port && !strcmp(a->username, b->username) &&
           !strcmp(a->password, b->password) && !strcmp(a->client_id, b->client_id) &&
           a->tls == b->tls && !strcmp(a->ca_file, b->ca_file) &&
           !strcmp(a->cert_file, b->cert_file) && !strcmp(a->key_file, b->key_file) &&
           a->keepalive_s == b->keepalive_s;
}

static bool same_filters(pw_mqtt_pub *p, const pw_mqtt_out_opts *opts, const pw_cfg *cfg)
{
    char f[MAX_FILTERS][PW_MQTT_OUT_TOPIC_LEN];
    size_t n = pw_mqtt_out_command_filters(opts->base, &cfg->mqtt_commands, f, MAX_FILTERS);
    if (n != p->n_filters)
        return false;
    for (size_t k = 0; k < n; k++)
        if (strcmp(f[k], p->filters[k]) != 0)
            return false;
    return true;
}

void pw_mqtt_pub_reconfigure(pw_app *app, const pw_cfg *cfg)
{
    pw_mqtt_pub *p = app->mqtt_pub;
    if (!p)
        return;
    p->in_round = false; /* the document being built describes the old facility */
    if (!cfg->mqtt_publish.enabled || !*cfg->mqtt.host) {
        close_conn(p, true);
        pw_mqtt_out_free(p->out);
        p->out = NULL;
        return;
    }
    pw_mqtt_out_opts opts;
    out_opts(cfg, &opts);
    if (!p->out) {
        p->out = pw_mqtt_out_new(&opts);
        pw_mqtt_out_set_config(p->out, NULL, cfg);
        open_conn(p, cfg);
        return;
    }
    const pw_mqtt_out_opts *old = pw_mqtt_out_opts_of(p->out);
    /* Another broker or another status topic (the will is set at connect): connect again. */
    bool reconnect = !same_broker(&p->broker, &cfg->mqtt) || strcmp(old->base, opts.base) != 0;
    bool resubscribe = !same_filters(p, &opts, cfg) || old->home_assistant != opts.home_assistant ||
                       strcmp(old->discovery_prefix, opts.discovery_prefix) != 0;
    if (reconnect)
        close_conn(p, true);
    else if (resubscribe && pw_mqtt_conn_up(p->conn)) {
        for (size_t k = 0; k < p->n_filters; k++)
            pw_mqtt_conn_unsubscribe(p->conn, p->filters[k]);
        char ha[PW_MQTT_OUT_TOPIC_LEN];
        pw_mqtt_out_ha_status_topic(old, ha, sizeof ha);
        pw_mqtt_conn_unsubscribe(p->conn, ha);
    }
    pw_mqtt_out_set_config(p->out, &opts, cfg);
    if (reconnect || !p->conn)
        open_conn(p, cfg);
    else if (resubscribe && pw_mqtt_conn_up(p->conn))
        subscribe(p);
}

void pw_mqtt_pub_start(pw_app *app)
{
    pw_mqtt_pub *p = pw_xcalloc(1, sizeof *p);
    p->app = app;
    uv_timer_init(&app->loop, &p->drain);
    p->drain.data = p;
    app->mqtt_pub = p;
    pw_mqtt_pub_reconfigure(app, app->cfg);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pw_mqtt_pub_stop(pw_app *app)
{
    pw_mqtt_pub *p = app->mqtt_pub;
    if (!p)
        return;
    app->mqtt_pub = NULL;
    close_conn(p, true);
    pw_mqtt_out_free(p->out);
    uv_close((uv_handle_t *)&p->drain, on_closed);
}

/* ---- the state document ---- */

/* The open session's energy in kWh; 0 without a session, NaN when the charger has no
 * register. */
static double session_kwh(const pw_app *app, size_t i)
{
    const pw_ctl_charger_state *ch = pw_ctl_charger(app->ctl, i);
    if (!ch->in_session)
        return ch->has_report && ch->report.energy_wh != PW_CTL_ENERGY_UNKNOWN ? 0.0 : NAN;
    const pw_ctl_session *s = &ch->session;
    if (s->register_wh == PW_CTL_ENERGY_UNKNOWN || s->register_start_wh == PW_CTL_ENERGY_UNKNOWN ||
        s->register_wh < s->register_start_wh)
        return NAN;
    return (double)(s->register_wh - s->register_start_wh) / 1000.0;
}

void pw_mqtt_pub_head(pw_app *app, const json_t *head)
{
    pw_mqtt_pub *p = app->mqtt_pub;
    if (!p || !p->out)
        return;
    pw_mqtt_out_head(p->out, head);
    p->in_round = true;
}

void pw_mqtt_pub_charger(pw_app *app, size_t i, const json_t *charger)
{
    pw_mqtt_pub *p = app->mqtt_pub;
    if (!p || !p->out || !p->in_round || i >= app->cfg->n_chargers)
        return;
    pw_mqtt_out_charger(p->out, i, charger, session_kwh(app, i));
}

void pw_mqtt_pub_done(pw_app *app)
{
    pw_mqtt_pub *p = app->mqtt_pub;
    /* Only a whole document ends a round: a topic missing from half a one has not left. */
    if (!p || !p->out || !p->in_round)
        return;
    p->in_round = false;
    pw_mqtt_out_end(p->out);
    schedule(p);
}

json_t *pw_mqtt_pub_status_json(const pw_app *app, json_t *alerts)
{
    const pw_mqtt_pub *p = app->mqtt_pub;
    if (!p || !p->out)
        return json_null();
    const char *problem = p->conn ? pw_mqtt_conn_problem(p->conn) : p->problem;
    bool up = pw_mqtt_conn_up(p->conn);
    if (!up && *problem) {
        char text[400];
        snprintf(text, sizeof text, "MQTT state out: %s", problem);
        json_array_append_new(alerts, json_pack("{s:s, s:s}", "level", "warn", "text", text));
    }
    return json_pack("{s:b, s:s, s:I, s:I, s:{s:I, s:I}}", "connected", up, "problem", problem,
                     "published", (json_int_t)p->published, "pending",
                     (json_int_t)pw_mqtt_out_table_pending(pw_mqtt_out_table_of(p->out)),
                     "commands", "accepted", (json_int_t)p->accepted, "refused",
                     (json_int_t)p->refused);
}
