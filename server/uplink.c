/* The fleet uplink (docs/mqtt.md): what the site reports to a central broker (ended sessions,
 * 15-minute aggregates, events, alerts raised and cleared) is queued in the history database's
 * outbox in the same transaction as the history rows it mirrors, and delivered from there in id
 * order over a broker connection of its own, QoS 1, at most WINDOW messages in flight. A row is
 * deleted only once the broker has acknowledged it, so a lost link or a restart resends from the
 * first row not acknowledged. Reads and deletes run on a libuv worker, one job at a time, with a
 * connection of their own: the loop never waits on SQLite, and balancing never waits on this. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_mqtt_conn.h"
#include "pw_util.h"
#include "uplink_agg.h"

#define WINDOW       20           /* messages in flight */
#define READ_ROWS    (2 * WINDOW) /* rows read per job */
#define STATUS_MS    1000         /* the outbox's size read again at most this often */
#define TRIM_MS      60000        /* the bound enforced this often */
#define MAX_ACKS     4096         /* acknowledgements waiting for their delete */
#define ERROR_LOG_MS 60000

typedef struct inflight {
    int mid;
    int64_t id;
} inflight;

/* One worker job: deletes what was acknowledged, enforces the bound now and then, reads the next
 * rows and the outbox's size. The worker touches only the job and the outbox connection. */
typedef struct job {
    uv_work_t req;
    struct pw_uplink *uplink; /* loop side only */
    pw_store_outbox **outbox; /* the uplink's, opened by the first job */
    const char *db_path;
    unsigned generation; /* the connection the rows were read for */
    int64_t *acks;
    size_t n_acks;
    int64_t after_id;
    size_t want; /* rows to read, 0 = none */
    bool status, trim;
    int64_t wall;
    /* out */
    pw_store_outbox_msg *msgs;
    size_t n_msgs;
    pw_store_outbox_status st;
    uint64_t dropped;
    int rc;
    char error[256];
} job;

struct pw_uplink {
    pw_app *app;
    /* the connection */
    pw_mqtt_conn *conn;
    pw_cfg_uplink cfg; /* the settings conn was opened with */
    char site[PW_BAL_ID_LEN];
    char conn_error[256]; /* the connection could not be set up (a config problem) */
    unsigned generation;  /* bumped whenever what is in flight is forgotten */
    inflight fly[WINDOW];
    size_t n_fly;
    /* rows read, not yet published: buf[head..n) */
    pw_store_outbox_msg *buf;
    size_t buf_head, buf_n;
    int64_t last_read; /* the highest id read for this connection */
    bool read_wanted;  /* more rows may be waiting */
    int64_t acks[MAX_ACKS];
    size_t n_acks;
    /* the worker */
    char db_path[1100];
    pw_store_outbox *outbox; /* opened by the first job, on the worker */
    job job;
    bool job_running;
    uint64_t last_status_ms, last_trim_ms;
    char store_error[256];
    uint64_t last_error_log_ms;
    /* what is reported */
    pw_uplink_agg *agg;
    json_t *alerts; /* the state document's alerts last seen, NULL before the first */
    pw_uplink_stats stats;
};

static void pump(pw_uplink *u);

static bool enabled(const pw_cfg *cfg)
{
    return cfg->uplink.broker.host[0] != '\0';
}

static uint64_t now_ms(const pw_uplink *u)
{
    return uv_now(&u->app->loop);
}

/* ---- queueing (loop thread, into the history batch) ------------------------------------- */

static void queue_json(pw_uplink *u, int64_t ts, const char *kind, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(data);
    pw_history_outbox(u->app->history, ts, kind, text, 0);
    free(text);
}

void pw_uplink_session(pw_app *app, size_t i, const pw_ctl_session *s)
{
    pw_uplink *u = app->uplink;
    if (!u || !enabled(app->cfg) || !s->end_ms)
        return; /* a session is reported once, when it ends */
    const pw_bal_charger_spec *ch = &app->cfg->chargers[i];
    char start[32], end[32];
    pw_uplink_rfc3339(s->start_ms, start);
    pw_uplink_rfc3339(s->end_ms, end);
    bool known = s->register_start_wh != PW_CTL_ENERGY_UNKNOWN &&
                 s->register_wh != PW_CTL_ENERGY_UNKNOWN && s->register_wh >= s->register_start_wh;
    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:f, s:s, s:s}", "charger", ch->id, "name", ch->name,
        "start", start, "end", end, "start_ms", (json_int_t)s->start_ms, "end_ms",
        (json_int_t)s->end_ms, "energy_wh",
        known ? json_integer((json_int_t)(s->register_wh - s->register_start_wh)) : json_null(),
        "peak_a", s->peak_a, "ref", s->ref, "id_tag", s->id_tag);
    queue_json(u, s->end_ms, "session", data);
}

/* An alert's identity: its level and text without their figures, so "5 datagrams rejected"
 * becoming "6 datagrams rejected" is the same alert, not a clear and a raise. */
static bool same_alert(const json_t *a, const json_t *b)
{
    const char *la = json_string_value(json_object_get(a, "level"));
    const char *lb = json_string_value(json_object_get(b, "level"));
    const char *p = json_string_value(json_object_get(a, "text"));
    const char *q = json_string_value(json_object_get(b, "text"));
    if (!la || !lb || !p || !q || strcmp(la, lb) != 0)
        return false;
    for (;; p++, q++) {
        while (*p >= '0' && *p <= '9')
            p++;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*p != *q)
            return false;
        if (!*p)
            return true;
    }
}

static bool listed(const json_t *alerts, size_t n, const json_t *alert)
{
    for (size_t i = 0; i < n; i++)
        if (same_alert(json_array_get(alerts, i), alert))
            return true;
    return false;
}

/* Queues the alerts of alerts that are not in others as state ("raised", "cleared"). */
static void queue_alerts(pw_uplink *u, const json_t *alerts, const json_t *others,
                         const char *state)
{
    size_t n = json_array_size(alerts);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(alerts, i);
        if (listed(others, json_array_size(others), a) || listed(alerts, i, a))
            continue;
        json_t *data = json_pack("{s:s, s:O?, s:O?}", "state", state, "level",
                                 json_object_get(a, "level"), "text", json_object_get(a, "text"));
        queue_json(u, pw_wall_ms(), "alert", data);
    }
}

void pw_uplink_alerts(pw_app *app, const json_t *alerts)
{
    pw_uplink *u = app->uplink;
    if (!u || !enabled(app->cfg) || !json_is_array(alerts))
        return;
    json_t *empty = json_array();
    json_t *before = u->alerts ? u->alerts : empty;
    queue_alerts(u, alerts, before, "raised");
    queue_alerts(u, before, alerts, "cleared");
    json_decref(empty);
    json_decref(u->alerts);
    u->alerts = json_deep_copy(alerts);
}

/* One sample per tick for the 15-minute aggregates; an ended quarter is queued with its mark. */
static void sample(pw_uplink *u, int64_t wall)
{
    const pw_ctl *ctl = u->app->ctl;
    const pw_cfg *cfg = pw_ctl_config(ctl);
    pw_uplink_agg_charger *ch = pw_xcalloc(cfg->n_chargers + 1, sizeof *ch);
    pw_uplink_agg_node *nd = pw_xcalloc(cfg->n_nodes + 1, sizeof *nd);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_ctl_charger_state *st = pw_ctl_charger(ctl, i);
        ch[i] = (pw_uplink_agg_charger){.id = cfg->chargers[i].id,
                                        .name = cfg->chargers[i].name,
                                        .has_report = st->has_report,
                                        .energy_wh = st->report.energy_wh};
        for (int t = 0; t < 3; t++)
            ch[i].current_a[t] = st->report.current_a[t];
    }
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_ctl_meter_state *m = pw_ctl_meter(ctl, n);
        nd[n] = (pw_uplink_agg_node){
            .id = cfg->nodes[n].id, .name = cfg->nodes[n].name, .has_reading = m->has_reading};
        for (int l = 0; l < 3; l++)
            nd[n].line_a[l] = m->line_a[l];
    }
    int64_t quarter = 0;
    char *ended =
        pw_uplink_agg_sample(u->agg, wall, ch, cfg->n_chargers, nd, cfg->n_nodes, &quarter);
    if (ended)
        pw_history_outbox(u->app->history, quarter + PW_UPLINK_QUARTER_MS, "aggregate", ended,
                          quarter);
    free(ended);
    free(ch);
    free(nd);
}

/* ---- the worker ------------------------------------------------------------------------ */

static void job_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    job *j = req->data;
    j->rc = 0;
    j->error[0] = '\0';
    if (!*j->outbox &&
        (j->rc = pw_store_outbox_open(j->outbox, j->db_path, j->error, sizeof j->error)) != 0)
        return;
    pw_store_outbox *o = *j->outbox;
    if (j->n_acks && (j->rc = pw_store_outbox_ack(o, j->acks, j->n_acks)) != 0)
        goto fail;
    j->n_acks = 0; /* deleted */
    if (j->trim && (j->rc = pw_store_outbox_trim(o, j->wall, PW_STORE_OUTBOX_MAX_ROWS,
                                                 PW_STORE_OUTBOX_MAX_AGE_MS, &j->dropped)) != 0)
        goto fail;
    if (j->want && (j->rc = pw_store_outbox_read(o, j->after_id, j->want, &j->msgs, &j->n_msgs)))
        goto fail;
    if (j->status && (j->rc = pw_store_outbox_status_get(o, &j->st)) != 0)
        goto fail;
    return;
fail:
    pw_strlcpy(j->error, pw_store_outbox_errmsg(o), sizeof j->error);
}

static void set_store_error(pw_uplink *u, const char *error)
{
    if (!error[0]) {
        if (u->store_error[0])
            pw_info("uplink", "the outbox works again");
        u->store_error[0] = '\0';
        return;
    }
    pw_strlcpy(u->store_error, error, sizeof u->store_error);
    uint64_t now = now_ms(u);
    if (!u->last_error_log_ms || now - u->last_error_log_ms > ERROR_LOG_MS) {
        u->last_error_log_ms = now;
        pw_error("uplink", "%s; retrying", error);
    }
}

/* Takes the rows a job read for the current connection, leaving out any acknowledged while the
 * job ran (their delete is still to come). */
static void take_rows(pw_uplink *u, job *j)
{
    size_t keep = 0;
    for (size_t i = 0; i < j->n_msgs; i++) {
        bool acked = false;
        for (size_t k = 0; k < u->n_acks && !acked; k++)
            acked = u->acks[k] == j->msgs[i].id;
        if (acked || j->msgs[i].id <= u->last_read) {
            free(j->msgs[i].payload);
            continue;
        }
        j->msgs[keep++] = j->msgs[i];
    }
    u->read_wanted = j->n_msgs == j->want;
    if (keep)
        u->last_read = j->msgs[keep - 1].id;
    pw_store_outbox_msgs_free(u->buf, u->buf_n); /* every one of them was published */
    u->buf = j->msgs;
    u->buf_n = keep;
    u->buf_head = 0;
    j->msgs = NULL;
    j->n_msgs = 0;
}

static void job_done(uv_work_t *req, int status)
{
    job *j = req->data;
    pw_uplink *u = j->uplink;
    u->job_running = false;
    if (status != 0 && !j->rc) {
        snprintf(j->error, sizeof j->error, "outbox job: %s", uv_strerror(status));
        j->rc = -1;
    }
    if (j->n_acks) { /* not deleted: again with the next job */
        for (size_t k = 0; k < j->n_acks && u->n_acks < MAX_ACKS; k++)
            u->acks[u->n_acks++] = j->acks[k];
    }
    free(j->acks);
    j->acks = NULL;
    j->n_acks = 0;
    set_store_error(u, j->rc ? j->error : "");
    if (j->dropped) {
        u->stats.dropped += j->dropped;
        pw_app_event(u->app, "uplink_dropped", "",
                     "the fleet uplink's outbox was full: its %llu oldest messages were dropped",
                     (unsigned long long)j->dropped);
        j->dropped = 0;
    }
    if (j->status && !j->rc) {
        u->stats.queued = j->st.queued;
        u->stats.oldest_ms = j->st.oldest_ts_ms;
    }
    if (j->generation == u->generation && !j->rc && j->want)
        take_rows(u, j);
    pw_store_outbox_msgs_free(j->msgs, j->n_msgs);
    j->msgs = NULL;
    j->n_msgs = 0;
    if (!u->app->stopping)
        pump(u);
}

/* Starts a job if none runs and there is something to do. */
static void kick(pw_uplink *u)
{
    if (u->job_running || u->app->stopping)
        return;
    uint64_t now = now_ms(u);
    bool need_rows = u->conn && pw_mqtt_conn_up(u->conn) && u->buf_head == u->buf_n &&
                     u->n_fly < WINDOW && u->read_wanted;
    bool status = !u->last_status_ms || now - u->last_status_ms >= STATUS_MS;
    bool trim = !u->last_trim_ms || now - u->last_trim_ms >= TRIM_MS;
    if (!need_rows && !u->n_acks && !status && !trim)
        return;
    job *j = &u->job;
    *j = (job){.req.data = j,
               .uplink = u,
               .outbox = &u->outbox,
               .db_path = u->db_path,
               .generation = u->generation,
               .after_id = u->last_read,
               .want = need_rows ? READ_ROWS : 0,
               .status = status,
               .trim = trim,
               .wall = pw_wall_ms()};
    if (u->n_acks) {
        j->acks = pw_xmalloc(u->n_acks * sizeof *j->acks);
        memcpy(j->acks, u->acks, u->n_acks * sizeof *j->acks);
        j->n_acks = u->n_acks;
        u->n_acks = 0;
    }
    if (status)
        u->last_status_ms = now;
    if (trim)
        u->last_trim_ms = now;
    if (need_rows)
        u->read_wanted = false; /* until the job says whether more wait */
    u->job_running = true;
    int rc = uv_queue_work(&u->app->loop, &j->req, job_work, job_done);
    if (rc != 0) {
        u->job_running = false;
        set_store_error(u, uv_strerror(rc));
    }
}

/* ---- delivery (loop thread) -------------------------------------------------------------- */

static void topic(const pw_uplink *u, const char *leaf, char *out, size_t size)
{
    snprintf(out, size, "%s/%s/%s", u->cfg.prefix, u->site, leaf);
}

/* Publishes one row as {"id", "site", "kind", "at", "data"}; false when the link refused it. */
static bool publish_row(pw_uplink *u, const pw_store_outbox_msg *m)
{
    char at[32], t[160];
    pw_uplink_rfc3339(m->ts_ms, at);
    topic(u, m->kind, t, sizeof t);
    size_t size = strlen(m->payload) + sizeof u->site + 160;
    char *msg = pw_xmalloc(size);
    int len = snprintf(msg, size,
                       "{\"id\":%lld,\"site\":\"%s\",\"kind\":\"%s\",\"at\":\"%s\",\"data\":%s}",
                       (long long)m->id, u->site, m->kind, at, m->payload);
    int mid = 0;
    int rc = pw_mqtt_conn_publish(u->conn, t, msg, (size_t)len, 1, false, &mid);
    free(msg);
    if (rc != 0)
        return false;
    u->fly[u->n_fly++] = (inflight){.mid = mid, .id = m->id};
    return true;
}

static void pump(pw_uplink *u)
{
    if (u->conn && pw_mqtt_conn_up(u->conn)) {
        while (u->n_fly < WINDOW && u->buf_head < u->buf_n && publish_row(u, &u->buf[u->buf_head]))
            u->buf_head++;
    }
    kick(u);
}

/* Forgets what was read and what is in flight: the next rows read start at the first one not
 * acknowledged, so nothing is skipped (a row may go out twice: the consumer's id rule). */
static void forget(pw_uplink *u)
{
    u->generation++;
    pw_store_outbox_msgs_free(u->buf, u->buf_n);
    u->buf = NULL;
    u->buf_n = u->buf_head = 0;
    u->n_fly = 0;
    u->last_read = 0;
    u->read_wanted = true;
}

static void on_up(void *ud, bool session_present)
{
    (void)session_present;
    pw_uplink *u = ud;
    char t[160];
    topic(u, "status", t, sizeof t);
    pw_mqtt_conn_publish(u->conn, t, "online", 6, 1, true, NULL);
    pw_info("uplink", "connected to %s:%u as site %s", u->cfg.broker.host, u->cfg.broker.port,
            u->site);
    forget(u);
    pump(u);
}

static void on_down(void *ud, const char *problem)
{
    (void)problem; /* the connection logs it, the state document shows it */
    forget(ud);
}

static void on_published(void *ud, int mid)
{
    pw_uplink *u = ud;
    for (size_t i = 0; i < u->n_fly; i++) {
        if (u->fly[i].mid != mid)
            continue;
        if (u->n_acks < MAX_ACKS)
            u->acks[u->n_acks++] = u->fly[i].id;
        u->stats.sent++;
        u->fly[i] = u->fly[--u->n_fly];
        pump(u);
        return;
    }
}

static void close_conn(pw_uplink *u)
{
    pw_mqtt_conn_close(u->conn);
    u->conn = NULL;
    forget(u);
}

static void open_conn(pw_uplink *u, const pw_cfg *cfg)
{
    u->cfg = cfg->uplink;
    u->conn_error[0] = '\0';
    pw_cfg_site_id(cfg, u->site, sizeof u->site);
    char will[160];
    topic(u, "status", will, sizeof will);
    pw_mqtt_conn_opts o = {.what = "uplink",
                           .section = "uplink.host",
                           .broker = cfg->uplink.broker,
                           .clean_session = true,
                           .will_topic = will,
                           .will_payload = "offline",
                           .will_qos = 1,
                           .will_retain = true,
                           .max_inflight = WINDOW};
    if (*cfg->uplink.broker.client_id)
        pw_strlcpy(o.client_id, cfg->uplink.broker.client_id, sizeof o.client_id);
    else
        pw_mqtt_conn_client_id_for(u->site, "-up", o.client_id, sizeof o.client_id);
    pw_mqtt_conn_cb cb = {.ud = u, .up = on_up, .down = on_down, .published = on_published};
    u->conn = pw_mqtt_conn_new(&u->app->loop, &o, &cb, u->conn_error, sizeof u->conn_error);
    if (!u->conn)
        pw_error("uplink", "%s", u->conn_error);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

pw_uplink *pw_uplink_new(pw_app *app)
{
    pw_uplink *u = pw_xcalloc(1, sizeof *u);
    u->app = app;
    u->agg = pw_uplink_agg_new();
    u->read_wanted = true;
    pw_strlcpy(u->db_path, app->db_path, sizeof u->db_path);
    pw_history_set_outbox(app->history, enabled(app->cfg));
    if (enabled(app->cfg))
        open_conn(u, app->cfg);
    return u;
}

static bool same_link(const pw_uplink *u, const pw_cfg *cfg)
{
    char site[PW_BAL_ID_LEN];
    pw_cfg_site_id(cfg, site, sizeof site);
    return memcmp(&u->cfg, &cfg->uplink, sizeof u->cfg) == 0 && strcmp(site, u->site) == 0;
}

void pw_uplink_reconfigure(pw_app *app, const pw_cfg *cfg)
{
    pw_uplink *u = app->uplink;
    if (!u)
        return;
    pw_history_set_outbox(app->history, enabled(cfg));
    if ((u->conn || u->conn_error[0]) && enabled(cfg) && same_link(u, cfg))
        return;
    if (u->conn)
        close_conn(u);
    u->conn_error[0] = '\0';
    if (enabled(cfg))
        open_conn(u, cfg);
}

void pw_uplink_tick(pw_app *app, int64_t wall)
{
    pw_uplink *u = app->uplink;
    if (!u || !enabled(app->cfg))
        return;
    sample(u, wall);
    u->read_wanted = true; /* the history writer may have queued rows since */
    pump(u);
}

void pw_uplink_stop(pw_app *app)
{
    pw_uplink *u = app->uplink;
    if (u && u->conn)
        close_conn(u);
}

void pw_uplink_free(pw_app *app)
{
    pw_uplink *u = app->uplink;
    if (!u)
        return;
    /* The loop has ended: what the broker acknowledged is deleted now, on this thread, so a
     * restart does not send it again. */
    if (u->n_acks && u->outbox && pw_store_outbox_ack(u->outbox, u->acks, u->n_acks) != 0)
        pw_warn("uplink", "%s", pw_store_outbox_errmsg(u->outbox));
    pw_store_outbox_close(u->outbox);
    pw_store_outbox_msgs_free(u->buf, u->buf_n);
    json_decref(u->alerts);
    pw_uplink_agg_free(u->agg);
    free(u);
    app->uplink = NULL;
}

/* ---- status -------------------------------------------------------------------------------- */

const pw_uplink_stats *pw_uplink_stats_get(const pw_app *app)
{
    return app->uplink ? &app->uplink->stats : NULL;
}

json_t *pw_uplink_status_json(const pw_app *app)
{
    const pw_uplink *u = app->uplink;
    if (!u || !enabled(app->cfg))
        return json_null();
    bool up = u->conn && pw_mqtt_conn_up(u->conn);
    const char *problem = u->conn_error[0]    ? u->conn_error
                          : u->store_error[0] ? u->store_error
                          : u->conn           ? pw_mqtt_conn_problem(u->conn)
                                              : "";
    int64_t oldest = u->stats.queued && u->stats.oldest_ms ? pw_wall_ms() - u->stats.oldest_ms : 0;
    return json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:s}", "connected", up, "problem", problem,
                     "queued", (json_int_t)u->stats.queued, "sent", (json_int_t)u->stats.sent,
                     "oldest_queued_s", (json_int_t)(oldest > 0 ? oldest / 1000 : 0), "dropped",
                     (json_int_t)u->stats.dropped, "site", u->site);
}
