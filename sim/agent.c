/* The simulator's protocol side: every simulated charger and meter gateway is its own sender
 * (sender id, boot id, sequence) on the facility's multicast group; allocations from the
 * balancer are authenticated, replay-checked and applied to the model; optional seeded packet
 * loss, duplication and reordering in both directions. */
#include <math.h>
#include <string.h>

#include "sim_int.h"
#include "pw_util.h"

#define VOLTAGE_DV 2300

/* ---- sending --------------------------------------------------------------------------------- */

/* A device in a --meter-outage or --silence window (meters are device 0 there). */
static bool silent(const sim_app *app, uint32_t device_id)
{
    return pw_sim_outage_active(app->o.outages, app->o.n_outages, device_id,
                                pw_sim_now(app->model));
}

/* Chargers on other links (OCPP) are simulated in ocpp_cp.c and say nothing on the LAN. */
static bool speaks_lan(const sim_app *app, size_t charger)
{
    return app->cfg->charger_links[charger].kind == PW_CFG_LINK_LAN;
}

static void deliver_out(void *ctx, const uint8_t *buf, size_t len)
{
    sim_app *app = ctx;
    if (pw_net_send(app->net, buf, len) == 0)
        app->c.tx++;
    else
        app->c.tx_errors++;
}

/* Encodes msg as sender s and sends it through the outgoing impairment. */
static void send_as(sim_app *app, sim_sender *s, pw_proto_msg *msg)
{
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    msg->hdr.sender_id = s->id;
    msg->hdr.boot_id = app->boot_id;
    msg->hdr.seq = ++s->seq;
    int n = pw_proto_encode(msg, app->key, buf, sizeof(buf));
    if (n < 0) {
        app->c.tx_errors++;
        pw_warn(SIM_COMP, "cannot encode a message of sender %u: %s", s->id, pw_proto_strerror(n));
        return;
    }
    pw_sim_impair_pass(&app->tx_imp, buf, (size_t)n, deliver_out, app);
}

static uint32_t to_ma(double amps)
{
    double ma = round(amps * 1000.0);
    return ma <= 0.0 ? 0u : ma >= PW_PROTO_MAX_CURRENT_MA ? PW_PROTO_MAX_CURRENT_MA : (uint32_t)ma;
}

/* Every third charger is on Wi-Fi with a signal that depends on the seed and the charger, so
 * the dashboard has weak links to show. */
static void link_of(const sim_app *app, size_t i, uint8_t *link, int8_t *rssi)
{
    *link = PW_LINK_ETHERNET;
    *rssi = 0;
    if (i % 3 == 2) {
        pw_sim_rng r;
        pw_sim_rng_seed(&r, app->o.model.seed ^ (0xa11ceull + i));
        *link = PW_LINK_WIFI;
        *rssi = (int8_t)(-48 - (int)(pw_sim_rng_next(&r) % 35));
    }
}

void sim_agent_send_announces(sim_app *app)
{
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        const pw_bal_charger_spec *spec = &app->cfg->chargers[i];
        if (!speaks_lan(app, i) || silent(app, app->chargers[i].s.id))
            continue;
        pw_proto_msg msg = {.hdr.type = PW_MSG_ANNOUNCE};
        pw_msg_announce *a = &msg.u.announce;
        pw_strlcpy(a->model, "phasewise-sim", sizeof(a->model));
        pw_strlcpy(a->firmware, PW_VERSION, sizeof(a->firmware));
        memcpy(a->wiring, spec->wiring, sizeof(a->wiring));
        a->max_current_ma = to_ma(spec->max_a);
        a->can_switch_phases = spec->can_switch_phases;
        link_of(app, i, &a->link, &a->rssi_dbm);
        send_as(app, &app->chargers[i].s, &msg);
    }
    app->last_announce_real = uv_now(&app->loop);
}

static void build_status(const sim_app *app, size_t i, const pw_sim_charger_view *v,
                         pw_msg_status *st)
{
    memset(st, 0, sizeof(*st));
    st->iec_state = (uint8_t)v->iec;
    for (int t = 0; t < PW_LINES; t++) {
        st->current_ma[t] = to_ma(v->current_a[t]);
        st->voltage_dv[t] = app->cfg->chargers[i].wiring[t] ? VOLTAGE_DV : 0;
    }
    st->energy_wh = (uint64_t)v->energy_wh;
    st->applied_limit_ma = to_ma(v->offered_a);
    st->applied_phases = v->phases;
    st->alloc_seq = v->alloc_seq;
    st->session_id = v->session_id;
}

/* Sends a status for every charger that the reporting rule (pw_sim_status_due) says is due. */
static void send_statuses(sim_app *app)
{
    uint64_t now = uv_now(&app->loop);
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        sim_charger_tx *tx = &app->chargers[i];
        if (!speaks_lan(app, i) || silent(app, tx->s.id))
            continue;
        pw_sim_charger_view v;
        pw_sim_charger(app->model, i, &v);
        if (!pw_sim_status_due(tx->sent ? &tx->last : NULL, &v, now - tx->last_real))
            continue;
        pw_proto_msg msg = {.hdr.type = PW_MSG_STATUS};
        build_status(app, i, &v, &msg.u.status);
        send_as(app, &tx->s, &msg);
        tx->last = v;
        tx->last_real = now;
        tx->sent = true;
    }
}

static void send_defa(sim_app *app, size_t node, const double amps[PW_LINES])
{
    pw_defa_frame f;
    uint8_t buf[PW_DEFA_FRAME_LEN];
    memset(&f, 0, sizeof(f));
    pw_strlcpy(f.serial, app->cfg->meters[node].serial, sizeof(f.serial));
    pw_strlcpy(f.firmware, "sim", sizeof(f.firmware));
    for (int l = 0; l < PW_LINES; l++)
        f.current_ma[l] = to_ma(amps[l]);
    int n = pw_defa_encode(&f, buf);
    if (n > 0 && pw_net_send(app->defa_net, buf, (size_t)n) == 0)
        app->c.tx++;
    else
        app->c.tx_errors++;
}

static void send_lan_meter(sim_app *app, size_t node, const double amps[PW_LINES])
{
    pw_proto_msg msg = {.hdr.type = PW_MSG_METER};
    pw_msg_meter *mt = &msg.u.meter;
    for (int l = 0; l < PW_LINES; l++) {
        mt->current_ma[l] = to_ma(amps[l]);
        mt->voltage_dv[l] = VOLTAGE_DV;
        mt->power_w[l] = (int32_t)lround(amps[l] * PW_SIM_VOLTAGE_V);
    }
    mt->energy_wh = (uint64_t)app->meter_energy_wh[node];
    send_as(app, &app->meters[node], &msg);
}

/* One reading from every simulated meter, whichever way it reaches the appliance: a datagram
 * (LAN, DEFA), the registers the next Modbus read finds, or an MQTT message. A --meter-outage
 * silences them all (Modbus gateways keep the reading and leave requests unanswered). */
static void send_meters(sim_app *app)
{
    for (size_t i = 0; i < app->cfg->n_nodes; i++) {
        enum pw_cfg_link_kind kind = app->cfg->meters[i].kind;
        double amps[PW_LINES];
        if (kind == PW_CFG_LINK_NONE)
            continue;
        pw_sim_meter_reading(app->model, i, amps);
        for (int l = 0; l < PW_LINES; l++)
            app->meter_energy_wh[i] += amps[l] * PW_SIM_VOLTAGE_V * app->o.meter_ms / 3.6e6;
        if (kind == PW_CFG_LINK_MODBUS) {
            sim_modbus_update(app, i, amps, app->meter_energy_wh[i]);
            continue;
        }
        if (silent(app, 0))
            continue;
        if (kind == PW_CFG_LINK_DEFA)
            send_defa(app, i, amps);
        else if (kind == PW_CFG_LINK_MQTT)
            sim_mqtt_publish(app, i, amps, app->meter_energy_wh[i]);
        else
            send_lan_meter(app, i, amps);
    }
}

void sim_agent_advance(sim_app *app, uint64_t sim_ms)
{
    for (;;) {
        uint64_t t = sim_ms;
        t = app->next_meter_ms < t ? app->next_meter_ms : t;
        t = app->report && app->next_report_ms < t ? app->next_report_ms : t;
        pw_sim_step(app->model, t);
        if (t == app->next_meter_ms) {
            send_meters(app);
            app->next_meter_ms += app->o.meter_ms;
        }
        if (app->report && t == app->next_report_ms) {
            if (sim_report_write(app) != 0) {
                pw_error(SIM_COMP, "cannot write the report %s; reporting stopped", app->o.report);
                fclose(app->report);
                app->report = NULL;
            }
            app->next_report_ms += app->o.report_ms;
        }
        if (t == sim_ms)
            break;
    }
    send_statuses(app);
    if (uv_now(&app->loop) - app->last_announce_real >= PW_PROTO_ANNOUNCE_INTERVAL_MS)
        sim_agent_send_announces(app);
}

/* ---- receiving ------------------------------------------------------------------------------- */

/* The replay state for a balancer, making room by forgetting the oldest one. */
static pw_proto_replay *replay_for(sim_app *app, uint32_t sender)
{
    for (size_t i = 0; i < SIM_REPLAY_SENDERS; i++) {
        if (app->replay[i].seen && app->replay_ids[i] == sender)
            return &app->replay[i];
    }
    memmove(app->replay + 1, app->replay, (SIM_REPLAY_SENDERS - 1) * sizeof(app->replay[0]));
    memmove(app->replay_ids + 1, app->replay_ids,
            (SIM_REPLAY_SENDERS - 1) * sizeof(app->replay_ids[0]));
    memset(&app->replay[0], 0, sizeof(app->replay[0]));
    app->replay_ids[0] = sender;
    return &app->replay[0];
}

static void apply_allocation(sim_app *app, const pw_msg_allocation *a, uint64_t sim_ms)
{
    /* The balancer renews leases in real time; in a sped-up simulation they must last as long
     * in real time, so they are stretched into simulated time. */
    double stretched = (double)a->lease_ms * app->o.speed;
    uint32_t lease_sim_ms = stretched >= UINT32_MAX ? UINT32_MAX : (uint32_t)stretched;
    for (uint16_t k = 0; k < a->count; k++) {
        const pw_alloc_entry *e = &a->entries[k];
        pw_cfg_link link = {.kind = PW_CFG_LINK_LAN, .device_id = e->charger_id};
        int ci = pw_cfg_charger_by_link(app->cfg, &link);
        if (ci < 0) {
            app->c.rx_unknown_charger++;
            continue;
        }
        if (silent(app, e->charger_id))
            continue;
        pw_sim_charger_view before;
        pw_sim_charger(app->model, (size_t)ci, &before);
        pw_sim_apply(app->model, (size_t)ci, e->limit_ma / 1000.0, e->phases, lease_sim_ms,
                     a->alloc_seq, sim_ms);
        if (fabs(before.offered_a - e->limit_ma / 1000.0) >= 0.05)
            pw_debug(SIM_COMP, "t=%.1f s charger %u: offer %.1f -> %.1f A (allocation %u)",
                     sim_ms / 1000.0, e->charger_id, before.offered_a, e->limit_ma / 1000.0,
                     a->alloc_seq);
    }
}

static void deliver_in(void *ctx, const uint8_t *buf, size_t len)
{
    sim_app *app = ctx;
    pw_proto_msg msg;
    int rc = pw_proto_decode(buf, len, app->key, &msg);
    if (rc != 0) {
        app->c.rx_rejected++;
        return;
    }
    if (msg.hdr.type == PW_MSG_HEARTBEAT) {
        app->c.rx_heartbeat++;
        return;
    }
    if (msg.hdr.type != PW_MSG_ALLOCATION)
        return; /* statuses and meters, ours included: nothing for a charger to do */
    pw_proto_replay *rs = replay_for(app, msg.hdr.sender_id);
    if (pw_proto_replay_check(rs, &msg.hdr) != 0) {
        app->c.rx_replay++;
        return;
    }
    app->c.rx_alloc++;
    uint64_t now = sim_now_ms(app);
    /* Bring the model (and what it sends) up to the moment of reception first. */
    sim_agent_advance(app, now);
    apply_allocation(app, &msg.u.allocation, now);
}

static void on_datagram(pw_net *net, const uint8_t *buf, size_t len, const struct sockaddr_in *from,
                        void *user)
{
    sim_app *app = user;
    (void)net;
    (void)from;
    if (!app->running || app->stopping)
        return;
    app->c.rx++;
    pw_sim_impair_pass(&app->rx_imp, buf, len, deliver_in, app);
}

/* DEFA frames are only sent; whatever arrives on that group is not for the simulator. */
static void on_defa_datagram(pw_net *net, const uint8_t *buf, size_t len,
                             const struct sockaddr_in *from, void *user)
{
    (void)net;
    (void)buf;
    (void)len;
    (void)from;
    (void)user;
}

void sim_agent_flush(sim_app *app)
{
    pw_sim_impair_flush(&app->tx_imp, deliver_out, app);
    pw_sim_impair_flush(&app->rx_imp, deliver_in, app);
}

static bool has_defa_meter(const pw_cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (cfg->meters[i].kind == PW_CFG_LINK_DEFA)
            return true;
    }
    return false;
}

int sim_agent_start(sim_app *app)
{
    const pw_cfg_net *cn = &app->cfg->net;
    pw_net_opts no = {.group = app->o.group ? app->o.group : cn->group,
                      .port = (uint16_t)(app->o.port ? app->o.port : cn->port),
                      .interface = app->o.interface ? app->o.interface : cn->interface,
                      .ttl = cn->ttl};
    if (pw_net_open(&app->loop, &no, on_datagram, app, &app->net) != 0)
        return -1;
    if (has_defa_meter(app->cfg)) {
        pw_net_opts dn = no;
        dn.group = PW_DEFA_DEFAULT_GROUP;
        dn.port = PW_DEFA_DEFAULT_PORT;
        if (pw_net_open(&app->loop, &dn, on_defa_datagram, app, &app->defa_net) != 0)
            return -1;
    }
    sim_agent_send_announces(app);
    return 0;
}

void sim_agent_close(sim_app *app)
{
    if (app->net)
        pw_net_close(app->net, NULL, NULL);
    if (app->defa_net)
        pw_net_close(app->defa_net, NULL, NULL);
    app->net = app->defa_net = NULL;
}
