/* The control path: authenticated datagrams in, the balancer run on every meter reading and at
 * least every tick, allocations out with a lease, history rows collected for the writer. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

/* Renew leases well before they run out: a lost renewal or two must not let them lapse. */
#define LEASE_RENEW_FRACTION 3
#define REJECT_EVENT_MS      60000
#define SESSION_SAVE_MS      60000 /* an open session's energy is written once a minute */
/* A lower limit that no status has confirmed after this long goes out again (PROTOCOL.md 5.4):
 * a lost cut must not wait for the next renewal while a fuse is overloaded. */
#define CUT_CONFIRM_MS   2000
#define CUT_MAX_RESENDS  2
#define STATE_SLICE      50 /* chargers per slice of the state document, well under a ms */
#define STATE_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(8))

/* The control pass: runs the balancer and sends a plan that changed, a renewal that is due, or
 * the plan again for a cut no status confirmed. Returns the time the first allocation datagram
 * left (uv_hrtime ns), 0 if none did. */
static uint64_t control_pass(pw_app *app, uint64_t now);

void pw_control_log_event(pw_app *app, const char *kind, const char *subject, const char *fmt, ...)
{
    pw_store_event ev = {.ts_ms = pw_app_wall_ms()};
    pw_strlcpy(ev.kind, kind, sizeof ev.kind);
    pw_strlcpy(ev.subject, subject ? subject : "", sizeof ev.subject);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev.detail, sizeof ev.detail, fmt, ap);
    va_end(ap);
    pw_info("server", "event %s %s: %s", kind, ev.subject, ev.detail);
    pw_store_batch_add_event(app->filling, &ev);
}

static enum pw_car_state car_state(const pw_reg_charger *ch)
{
    switch (ch->status.iec_state) {
    case PW_IEC_A:
        return PW_CAR_NONE;
    case PW_IEC_B:
        return ch->drew_this_session ? PW_CAR_SUSPENDED : PW_CAR_CONNECTED;
    case PW_IEC_C:
    case PW_IEC_D:
        return PW_CAR_CHARGING;
    default:
        return PW_CAR_FAULT;
    }
}

static void save_session(pw_app *app, size_t i, int64_t end_ms, uint64_t now)
{
    pw_reg_charger *ch = &app->reg.chargers[i];
    pw_store_session s = {.start_ms = ch->session_start_ms,
                          .end_ms = end_ms,
                          .register_start_wh = ch->register_start_wh,
                          .register_wh = ch->status.energy_wh,
                          .peak_a = ch->session_peak_a};
    pw_strlcpy(s.charger, app->cfg->chargers[i].id, sizeof s.charger);
    if (ch->status.session_id)
        snprintf(s.ref, sizeof s.ref, "%u", ch->status.session_id);
    pw_store_batch_add_session(app->filling, &s);
    ch->session_saved_ms = now;
}

/* Sessions run from plug-in to unplug and are billed from the charger's own energy register. */
static void track_session(pw_app *app, size_t i, uint64_t now)
{
    pw_reg_charger *ch = &app->reg.chargers[i];
    bool plugged = ch->status.iec_state != PW_IEC_A;
    if (plugged && !ch->in_session) {
        ch->in_session = true;
        ch->session_start_ms = pw_app_wall_ms();
        ch->register_start_wh = ch->status.energy_wh;
        ch->session_peak_a = 0;
        save_session(app, i, 0, now);
    }
    if (!ch->in_session)
        return;
    for (size_t t = 0; t < PW_LINES; t++)
        if (ch->status.current_ma[t] / 1000.0f > ch->session_peak_a)
            ch->session_peak_a = ch->status.current_ma[t] / 1000.0f;
    if (!plugged) {
        ch->in_session = false;
        save_session(app, i, pw_app_wall_ms(), now);
    } else if (now - ch->session_saved_ms >= SESSION_SAVE_MS) {
        save_session(app, i, 0, now);
    }
}

static void on_status(pw_app *app, size_t i, const pw_msg_status *st, uint64_t now)
{
    pw_reg_charger *ch = &app->reg.chargers[i];
    bool had = ch->has_status;
    uint8_t old_state = ch->status.iec_state;
    if (!had || st->session_id != ch->status.session_id || st->iec_state == PW_IEC_A)
        ch->drew_this_session = false;
    ch->status = *st;
    ch->has_status = true;
    if (st->iec_state == PW_IEC_C || st->iec_state == PW_IEC_D)
        ch->drew_this_session = true;
    if (had && old_state != st->iec_state)
        pw_control_log_event(app, "charger_state", app->cfg->chargers[i].id, "pilot %c -> %c",
                             'A' + old_state, 'A' + st->iec_state);

    track_session(app, i, now);
    pw_sent_alloc *sent = &app->sent[i];
    if (sent->cut_ms && st->applied_limit_ma <= (uint32_t)lround(sent->limit_a * 1000.0) + 1)
        sent->cut_ms = 0;
    pw_bal_measure m = {.car = car_state(ch),
                        .applied_limit_a = st->applied_limit_ma / 1000.0,
                        .applied_phases = st->applied_phases};
    for (size_t t = 0; t < PW_LINES; t++)
        m.current_a[t] = st->current_ma[t] / 1000.0;
    pw_bal_set_charger(app->bal, i, &m, now);
}

void pw_control_count_reject(pw_app *app, int err)
{
    int slot = -err;
    if (slot <= 0 || slot >= PW_REJECT_SLOTS)
        slot = -PW_PROTO_E_INVALID;
    app->counters.rejected[slot]++;
}

/* A device that is not in the configuration: listed for the installer, never given current. */
static void on_unassigned(pw_app *app, const pw_proto_msg *msg, uint64_t now)
{
    pw_reg_unassigned *u = pw_reg_unassigned_get(&app->reg, msg->hdr.sender_id);
    bool first = u->link.last_seen_ms == 0;
    if (pw_reg_link_accept(&u->link, &msg->hdr, now) != 0) {
        pw_control_count_reject(app, PW_PROTO_E_REPLAY);
        return;
    }
    u->last_type = msg->hdr.type;
    if (msg->hdr.type == PW_MSG_ANNOUNCE)
        pw_strlcpy(u->model, msg->u.announce.model, sizeof u->model);
    if (first) {
        char id[16];
        snprintf(id, sizeof id, "%u", msg->hdr.sender_id);
        pw_control_log_event(app, "device_unassigned", id,
                             "device %u speaks the protocol but is not configured",
                             msg->hdr.sender_id);
    }
}

static void on_charger_msg(pw_app *app, size_t i, const pw_proto_msg *msg, uint64_t now)
{
    pw_reg_charger *ch = &app->reg.chargers[i];
    bool was_offline =
        ch->link.last_seen_ms == 0 || now - ch->link.last_seen_ms > app->cfg->params.offline_ms;
    uint32_t reboots = ch->link.reboots;
    if (pw_reg_link_accept(&ch->link, &msg->hdr, now) != 0) {
        pw_control_count_reject(app, PW_PROTO_E_REPLAY);
        return;
    }
    app->counters.rx_accepted++;
    const char *id = app->cfg->chargers[i].id;
    if (ch->link.reboots != reboots)
        pw_control_log_event(app, "charger_reboot", id, "new boot id %u", msg->hdr.boot_id);
    if (was_offline)
        pw_control_log_event(app, "charger_online", id, "device %u", msg->hdr.sender_id);
    if (msg->hdr.type == PW_MSG_ANNOUNCE) {
        ch->announce = msg->u.announce;
        ch->announced = true;
    } else if (msg->hdr.type == PW_MSG_STATUS) {
        on_status(app, i, &msg->u.status, now);
    }
}

void pw_control_meter_reading(pw_app *app, size_t node, const uint32_t current_ma[PW_LINES],
                              uint64_t now, uint64_t arrival_ns)
{
    pw_reg_meter *m = &app->reg.meters[node];
    app->counters.rx_accepted++;
    memcpy(m->current_ma, current_ma, sizeof m->current_ma);
    m->has_reading = true;
    double amps[PW_LINES];
    for (size_t l = 0; l < PW_LINES; l++)
        amps[l] = m->current_ma[l] / 1000.0;
    pw_bal_set_meter(app->bal, node, amps, now);
    /* A fresh reading is the moment to react: the design's cuts apply at once. Only the control
     * pass runs here; history and the state document wait for the timer. */
    if (app->stopping)
        return;
    uint64_t sent_ns = control_pass(app, now);
    if (sent_ns)
        pw_latency_observe(&app->counters.meter_to_send,
                           sent_ns > arrival_ns ? (sent_ns - arrival_ns) / 1000u : 0);
}

static void on_meter_msg(pw_app *app, size_t node, const pw_proto_msg *msg, uint64_t now,
                         uint64_t arrival_ns)
{
    if (pw_reg_link_accept(&app->reg.meters[node].link, &msg->hdr, now) != 0) {
        pw_control_count_reject(app, PW_PROTO_E_REPLAY);
        return;
    }
    pw_control_meter_reading(app, node, msg->u.meter.current_ma, now, arrival_ns);
}

void pw_control_on_datagram(pw_net *net, const uint8_t *buf, size_t len,
                            const struct sockaddr_in *from, void *user)
{
    (void)net;
    (void)from;
    pw_app *app = user;
    uint64_t arrival_ns = uv_hrtime();
    if (app->stopping)
        return;
    app->counters.rx++;
    pw_proto_msg msg;
    int rc = pw_proto_decode(buf, len, app->key, &msg);
    if (rc != 0) {
        pw_control_count_reject(app, rc);
        return;
    }
    uint64_t now = pw_app_now_ms();
    if (msg.hdr.type == PW_MSG_ALLOCATION || msg.hdr.type == PW_MSG_HEARTBEAT) {
        if (msg.hdr.sender_id == PW_PROTO_BALANCER_ID && msg.hdr.boot_id == app->boot_id) {
            app->counters.rx_own++;
        } else {
            /* Two balancers commanding the same chargers would fight: make it visible. */
            if (app->counters.foreign_balancer++ == 0)
                pw_control_log_event(app, "foreign_balancer", "",
                                     "another balancer (boot %u) sends on the group",
                                     msg.hdr.boot_id);
        }
        return;
    }
    int ci = pw_registry_charger(&app->reg, msg.hdr.sender_id);
    int ni =
        msg.hdr.type == PW_MSG_METER ? pw_registry_meter_node(&app->reg, msg.hdr.sender_id) : -1;
    if (ci >= 0 && (msg.hdr.type == PW_MSG_ANNOUNCE || msg.hdr.type == PW_MSG_STATUS))
        on_charger_msg(app, (size_t)ci, &msg, now);
    else if (ni >= 0)
        on_meter_msg(app, (size_t)ni, &msg, now, arrival_ns);
    else
        on_unassigned(app, &msg, now);
}

static int send_msg(pw_app *app, pw_proto_msg *msg)
{
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    msg->hdr.sender_id = PW_PROTO_BALANCER_ID;
    msg->hdr.boot_id = app->boot_id;
    msg->hdr.seq = ++app->seq;
    int n = pw_proto_encode(msg, app->key, buf, sizeof buf);
    if (n < 0 || pw_net_send(app->net, buf, (size_t)n) != 0) {
        app->counters.tx_errors++;
        return -1;
    }
    app->counters.tx++;
    return 0;
}

static bool limit_differs(const pw_sent_alloc *sent, const pw_bal_result *res)
{
    return fabs(res->limit_a - sent->limit_a) > 1e-6 || res->phases != sent->phases;
}

/* Records a limit change for history and remembers a cut until a status confirms it. */
static void note_change(pw_app *app, size_t i, const pw_bal_result *res, int64_t wall, uint64_t now)
{
    pw_store_limit_change c = {
        .ts_ms = wall, .limit_a = (float)res->limit_a, .phases = res->phases};
    pw_strlcpy(c.charger, app->cfg->chargers[i].id, sizeof c.charger);
    pw_strlcpy(c.reason, pw_bal_reason_name(res->reason), sizeof c.reason);
    pw_strlcpy(c.text, res->reason_text, sizeof c.text);
    pw_store_batch_add_limit_change(app->filling, &c);
    if (res->limit_a < app->sent[i].limit_a - 1e-6) {
        app->sent[i].cut_ms = now;
        app->sent[i].cut_resends = 0;
    }
}

/* Sends every configured charger its limit, split over as many datagrams as needed, then records
 * what changed: the datagrams leave first, the bookkeeping for history can wait a moment.
 * Returns the time the first datagram left (uv_hrtime ns), or 0 if none could be sent. */
static uint64_t send_allocations(pw_app *app, const pw_bal_result *res, uint64_t now)
{
    pw_proto_msg msg = {.hdr.type = PW_MSG_ALLOCATION};
    pw_msg_allocation *a = &msg.u.allocation;
    a->alloc_seq = app->alloc_seq;
    a->lease_ms = app->cfg->lease_ms;
    uint64_t first_ns = 0;
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        a->entries[a->count++] = (pw_alloc_entry){
            .charger_id = app->cfg->charger_device_ids[i],
            .limit_ma = (uint32_t)lround(res[i].limit_a * 1000.0),
            .phases = res[i].phases,
        };
        if (a->count == PW_PROTO_ALLOC_PER_DATAGRAM || i + 1 == app->cfg->n_chargers) {
            if (send_msg(app, &msg) == 0 && !first_ns)
                first_ns = uv_hrtime();
            a->count = 0;
        }
    }
    int64_t wall = pw_app_wall_ms();
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        if (limit_differs(&app->sent[i], &res[i]))
            note_change(app, i, &res[i], wall, now);
        app->sent[i].limit_a = res[i].limit_a;
        app->sent[i].phases = res[i].phases;
    }
    app->last_alloc_send_ms = now;
    return first_ns;
}

static bool plan_changed(const pw_app *app, const pw_bal_result *res)
{
    for (size_t i = 0; i < app->cfg->n_chargers; i++)
        if (limit_differs(&app->sent[i], &res[i]))
            return true;
    return false;
}

/* True if a cut has waited CUT_CONFIRM_MS for a status and may still be sent again; those cuts
 * start waiting anew. A charger that never confirms is left to the renewals after a few tries. */
static bool cuts_unconfirmed(pw_app *app, uint64_t now)
{
    bool again = false;
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        pw_sent_alloc *s = &app->sent[i];
        if (!s->cut_ms || now - s->cut_ms < CUT_CONFIRM_MS)
            continue;
        if (s->cut_resends >= CUT_MAX_RESENDS) {
            s->cut_ms = 0;
            continue;
        }
        s->cut_resends++;
        s->cut_ms = now;
        again = true;
    }
    return again;
}

static void send_heartbeat(pw_app *app, uint64_t now)
{
    pw_proto_msg msg = {.hdr.type = PW_MSG_HEARTBEAT};
    uint16_t online = 0;
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        uint64_t seen = app->reg.chargers[i].link.last_seen_ms;
        online += seen && now - seen <= app->cfg->params.offline_ms;
    }
    bool degraded = false;
    const pw_bal_node_result *nres = pw_bal_node_results(app->bal);
    for (size_t n = 0; n < app->cfg->n_nodes; n++)
        degraded |= nres[n].meter_stale;
    msg.u.heartbeat = (pw_msg_heartbeat){.uptime_s = (uint32_t)((now - app->start_ms) / 1000),
                                         .config_generation = app->config_generation,
                                         .chargers_online = online,
                                         .state = degraded ? PW_HB_DEGRADED : PW_HB_BALANCING};
    send_msg(app, &msg);
    app->last_heartbeat_ms = now;
}

static void collect_samples(pw_app *app, const pw_bal_result *res)
{
    int64_t wall = pw_app_wall_ms();
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        const pw_reg_charger *ch = &app->reg.chargers[i];
        if (!ch->has_status)
            continue;
        pw_store_charger_sample s = {.ts_ms = wall,
                                     .state = ch->status.iec_state,
                                     .limit_a = (float)res[i].limit_a,
                                     .phases = res[i].phases};
        pw_strlcpy(s.charger, app->cfg->chargers[i].id, sizeof s.charger);
        for (size_t t = 0; t < PW_LINES; t++)
            s.current_a[t] = (float)(ch->status.current_ma[t] / 1000.0);
        pw_store_batch_add_charger(app->filling, &s);
    }
    for (size_t n = 0; n < app->cfg->n_nodes; n++) {
        const pw_reg_meter *m = &app->reg.meters[n];
        if (!m->has_reading)
            continue;
        pw_store_node_sample s = {.ts_ms = wall};
        pw_strlcpy(s.node, app->cfg->nodes[n].id, sizeof s.node);
        for (size_t l = 0; l < PW_LINES; l++)
            s.current_a[l] = (float)(m->current_ma[l] / 1000.0);
        pw_store_batch_add_node(app->filling, &s);
    }
}

/* Rejected datagrams become one event per reason per minute, not one row per datagram: a
 * flood must not flood the database too. */
static void log_rejects(pw_app *app, uint64_t now)
{
    if (now - app->last_reject_event_ms < REJECT_EVENT_MS && app->last_reject_event_ms)
        return;
    app->last_reject_event_ms = now;
    for (int slot = 1; slot < PW_REJECT_SLOTS; slot++) {
        uint64_t n = app->counters.rejected[slot] - app->rejects_logged[slot];
        if (!n)
            continue;
        app->rejects_logged[slot] = app->counters.rejected[slot];
        pw_control_log_event(app, "datagram_rejected", pw_proto_err_name(-slot),
                             "%llu datagrams rejected: %s", (unsigned long long)n,
                             pw_proto_strerror(-slot));
    }
}

/* ---- the state document, a slice at a time ------------------------------------------------ */

/* With a thousand chargers the document takes milliseconds to build and dump; built in one go
 * it would hold up every datagram that arrives meanwhile, meter readings included. So the
 * chargers' entries are built in slices from an idle handle, with the loop polling the sockets
 * in between, and spliced into the rest of the document when the last slice is done. */
struct pw_publisher {
    uv_idle_t idle;
    pw_app *app;
    uint64_t now; /* the document's time */
    size_t next;  /* next charger to add */
    char *head;   /* the document without its chargers, dumped; NULL when idle */
    char *text;   /* the chargers' entries so far, comma separated */
    size_t len, cap;
};

static void text_append(pw_publisher *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n + 1) * 2;
        p->text = pw_xrealloc(p->text, p->cap);
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = '\0';
}

static void publish_reset(pw_publisher *p)
{
    free(p->head);
    p->head = NULL;
    p->len = 0;
    p->next = 0;
    if (!uv_is_closing((uv_handle_t *)&p->idle))
        uv_idle_stop(&p->idle);
}

/* Adds the next slice of chargers. Returns true when every charger is in. */
static bool publish_slice(pw_publisher *p)
{
    const pw_app *app = p->app;
    size_t end = p->next + STATE_SLICE;
    if (end > app->cfg->n_chargers)
        end = app->cfg->n_chargers;
    if (p->next == end)
        return true;
    json_t *arr = json_array();
    for (size_t i = p->next; i < end; i++)
        json_array_append_new(arr, pw_statedoc_charger(app, i, p->now));
    char *s = json_dumps(arr, STATE_JSON_FLAGS);
    json_decref(arr);
    if (s) {
        size_t n = strlen(s); /* "[...]": the brackets are not copied */
        if (p->len)
            text_append(p, ",", 1);
        text_append(p, s + 1, n - 2);
        free(s);
    }
    p->next = end;
    return end == app->cfg->n_chargers;
}

static void publish_finish(pw_publisher *p)
{
    pw_app *app = p->app;
    static const char open[] = ",\"chargers\":[", close[] = "]}";
    size_t head = strlen(p->head) - 1; /* without the closing brace */
    size_t total = head + sizeof open - 1 + p->len + sizeof close - 1;
    char *doc = pw_xmalloc(total + 1);
    memcpy(doc, p->head, head);
    memcpy(doc + head, open, sizeof open - 1);
    memcpy(doc + head + sizeof open - 1, p->text ? p->text : "", p->len);
    memcpy(doc + total - (sizeof close - 1), close, sizeof close);
    free(app->state_doc);
    app->state_doc = doc;
    app->state_len = total;
    if (app->web)
        pw_web_broadcast(app->web, doc, total);
    publish_reset(p);
}

static void on_publish_idle(uv_idle_t *idle)
{
    pw_publisher *p = idle->data;
    if (p->app->stopping) {
        publish_reset(p);
        return;
    }
    if (publish_slice(p))
        publish_finish(p);
}

/* Starts the next document; the first slice is built at once, so a small facility's document
 * is done in this call. A document still in progress is started over. */
static void publish_state(pw_app *app, uint64_t now)
{
    pw_publisher *p = app->publisher;
    publish_reset(p);
    json_t *head = pw_statedoc_build_head(app, now);
    p->head = json_dumps(head, STATE_JSON_FLAGS);
    json_decref(head);
    if (!p->head)
        return;
    p->now = now;
    if (publish_slice(p))
        publish_finish(p);
    else
        uv_idle_start(&p->idle, on_publish_idle);
}

static void on_publisher_closed(uv_handle_t *h)
{
    pw_publisher *p = h->data;
    free(p->text);
    free(p);
}

/* ---- control and periodic passes --------------------------------------------------------------
 */

static uint64_t control_pass(pw_app *app, uint64_t now)
{
    uint64_t t0 = uv_hrtime();
    app->counters.ticks++;
    app->last_run_ms = now;
    pw_bal_run(app->bal, now);
    const pw_bal_result *res = pw_bal_results(app->bal);
    bool changed = plan_changed(app, res);
    bool resend = !changed && cuts_unconfirmed(app, now);
    uint64_t sent_ns = 0;
    if (changed) {
        app->alloc_seq++;
        app->counters.plans++;
    }
    app->counters.cut_resends += resend;
    if (changed || resend ||
        now - app->last_alloc_send_ms >= app->cfg->lease_ms / LEASE_RENEW_FRACTION)
        sent_ns = send_allocations(app, res, now);
    if (now - app->last_heartbeat_ms >= PW_PROTO_HEARTBEAT_INTERVAL_MS)
        send_heartbeat(app, now);
    pw_latency_observe(&app->counters.tick_time, (uv_hrtime() - t0) / 1000u);
    return sent_ns;
}

/* Once per tick period, never on a meter reading's path: history rows, reject events, the state
 * document and DEFA frames. */
static void periodic_pass(pw_app *app, uint64_t now)
{
    app->last_tick_ms = now;
    uint64_t s0 = uv_hrtime();
    collect_samples(app, pw_bal_results(app->bal));
    pw_control_flush_history(app);
    pw_latency_observe(&app->counters.store_loop, (uv_hrtime() - s0) / 1000u);
    log_rejects(app, now);
    publish_state(app, now);
    pw_defa_emit(app);
}

void pw_control_tick(pw_app *app)
{
    if (app->stopping)
        return;
    uint64_t now = pw_app_now_ms();
    control_pass(app, now);
    periodic_pass(app, now);
}

static void on_tick_timer(uv_timer_t *t)
{
    pw_app *app = t->data;
    uint64_t now = pw_app_now_ms();
    /* A meter reading may have run the control pass just now; don't run twice in a row. */
    if (now - app->last_run_ms + 50 >= app->cfg->tick_ms)
        control_pass(app, now);
    if (now - app->last_tick_ms >= app->cfg->tick_ms || !app->last_tick_ms)
        periodic_pass(app, now);
}

void pw_control_start(pw_app *app)
{
    app->sent = pw_xcalloc(app->cfg->n_chargers, sizeof *app->sent);
    for (size_t i = 0; i < app->cfg->n_chargers; i++)
        app->sent[i].limit_a = -1; /* nothing sent yet: the first plan always goes out */
    pw_publisher *p = pw_xcalloc(1, sizeof *p);
    p->app = app;
    uv_idle_init(&app->loop, &p->idle);
    p->idle.data = p;
    app->publisher = p;
    uv_timer_init(&app->loop, &app->tick_timer);
    app->tick_timer.data = app;
    uv_timer_start(&app->tick_timer, on_tick_timer, 0, app->cfg->tick_ms / 4);
}

void pw_control_stop(pw_app *app)
{
    if (!app->publisher)
        return;
    publish_reset(app->publisher);
    uv_close((uv_handle_t *)&app->publisher->idle, on_publisher_closed);
    app->publisher = NULL;
}

/* The parts of a new config that live in sockets: the interface can be rejoined at once; the
 * group, port, key and listening address keep their running values until a restart. */
static void apply_network(pw_app *app, pw_cfg *cfg)
{
    const pw_cfg *old = app->cfg;
    if (strcmp(cfg->net.group, old->net.group) || cfg->net.port != old->net.port ||
        strcmp(cfg->net.key_file, old->net.key_file) || cfg->net.ttl != old->net.ttl ||
        strcmp(cfg->http.addr, old->http.addr) || cfg->http.port != old->http.port ||
        (cfg->net.defa_meters || cfg->net.defa_emit) != (app->defa_net != NULL))
        pw_warn("server", "network group, port, TTL, key file, listen address and turning DEFA "
                          "frames on or off take effect after a restart");
    if (strcmp(cfg->net.interface, old->net.interface) != 0 && app->net &&
        pw_net_rejoin(app->net, cfg->net.interface) != 0)
        pw_strlcpy(cfg->net.interface, old->net.interface, sizeof cfg->net.interface);
    bool login = cfg->http.dashboard_login;
    cfg->net = (pw_cfg_net){
        .ttl = old->net.ttl, .defa_meters = cfg->net.defa_meters, .defa_emit = cfg->net.defa_emit};
    pw_strlcpy(cfg->net.group, old->net.group, sizeof cfg->net.group);
    cfg->net.port = old->net.port;
    pw_strlcpy(cfg->net.interface, app->net ? pw_net_interface(app->net) : old->net.interface,
               sizeof cfg->net.interface);
    pw_strlcpy(cfg->net.key_file, old->net.key_file, sizeof cfg->net.key_file);
    cfg->http = old->http;
    cfg->http.dashboard_login = login;
    if (app->web)
        pw_web_set_dashboard_login(app->web, login);
}

void pw_control_apply_config(pw_app *app, pw_cfg *cfg)
{
    apply_network(app, cfg);
    pw_registry reg;
    pw_registry_init(&reg, cfg);
    pw_registry_carry_over(&reg, cfg, &app->reg, app->cfg);
    pw_bal_facility f;
    pw_cfg_facility(cfg, &f);
    pw_bal *bal = pw_bal_new(&f);
    /* Replay the latest measurements into the new balancer so it starts from what is known. */
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        pw_reg_charger *ch = &reg.chargers[i];
        if (ch->has_status) {
            pw_bal_measure m = {.car = car_state(ch),
                                .applied_limit_a = ch->status.applied_limit_ma / 1000.0,
                                .applied_phases = ch->status.applied_phases};
            for (size_t t = 0; t < PW_LINES; t++)
                m.current_a[t] = ch->status.current_ma[t] / 1000.0;
            pw_bal_set_charger(bal, i, &m, ch->link.last_seen_ms);
        }
    }
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        pw_reg_meter *m = &reg.meters[n];
        if (m->has_reading) {
            double amps[PW_LINES];
            for (size_t l = 0; l < PW_LINES; l++)
                amps[l] = m->current_ma[l] / 1000.0;
            pw_bal_set_meter(bal, n, amps, m->link.last_seen_ms);
        }
    }
    pw_sent_alloc *sent = pw_xcalloc(cfg->n_chargers, sizeof *sent);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        int j = pw_registry_charger(&app->reg, cfg->charger_device_ids[i]);
        sent[i] = j >= 0 ? app->sent[j] : (pw_sent_alloc){.limit_a = -1};
    }
    /* A half-built state document describes the old facility. */
    if (app->publisher)
        publish_reset(app->publisher);
    pw_bal_free(app->bal);
    pw_registry_close(&app->reg);
    pw_cfg_free(app->cfg);
    free(app->sent);
    app->bal = bal;
    app->reg = reg;
    app->cfg = cfg;
    app->sent = sent;
    uv_timer_set_repeat(&app->tick_timer, cfg->tick_ms / 4);
    app->config_generation++;
    pw_control_log_event(app, "config_change", "", "%zu nodes, %zu chargers", cfg->n_nodes,
                         cfg->n_chargers);
    pw_control_tick(app);
}
