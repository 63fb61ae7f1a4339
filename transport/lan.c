/* The LAN transport: phasewise's own authenticated multicast protocol (protocol/PROTOCOL.md).
 * Datagrams in are decoded, replay-checked per sender and turned into core reports; the plan
 * goes out as allocation datagrams with a lease, and a heartbeat every 30 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_net.h"
#include "pw_proto.h"
#include "pw_transport.h"
#include "pw_util.h"

#define UNASSIGNED_LINKS 64

/* A device id and its charger or node index, sorted by device id: every datagram is looked up
 * by its sender, so a thousand chargers cost a binary search, not a walk. */
typedef struct lan_index {
    uint32_t device_id;
    uint32_t index;
} lan_index;

typedef struct lan_peer {
    uint32_t device_id;
    pw_proto_link link;
} lan_peer;

typedef struct lan {
    pw_transport super;
    pw_transport_env env;
    const pw_cfg *cfg;
    pw_net *net;
    uv_timer_t heartbeat;
    bool heartbeat_open;
    uint32_t seq;
    uint32_t config_generation;
    uint64_t start_ms;
    lan_index *chargers, *meters; /* sorted by device id */
    size_t n_chargers, n_meters;
    lan_peer *charger_peers; /* parallel to cfg->chargers (LAN ones used) */
    lan_peer *meter_peers;   /* parallel to cfg->nodes (LAN meters used) */
    lan_peer unassigned[UNASSIGNED_LINKS];
    size_t n_unassigned;
    uint64_t own_heard, foreign;
    uint64_t meter_arrival_ns; /* a meter reading arrived and no plan has gone out since */
    pw_transport_stats st;
    pw_latency react;
} lan;

static int index_cmp(const void *a, const void *b)
{
    uint32_t x = ((const lan_index *)a)->device_id, y = ((const lan_index *)b)->device_id;
    return (x > y) - (x < y);
}

static int index_find(const lan_index *idx, size_t n, uint32_t device_id)
{
    lan_index key = {.device_id = device_id};
    const lan_index *hit = n ? bsearch(&key, idx, n, sizeof *idx, index_cmp) : NULL;
    return hit ? (int)hit->index : -1;
}

/* Indexes the LAN devices of cfg; a device that stays keeps its link (replay, loss). */
static void build_index(lan *l, const pw_cfg *cfg)
{
    lan_index *oc = l->chargers, *om = l->meters;
    size_t onc = l->n_chargers, onm = l->n_meters;
    lan_peer *ocp = l->charger_peers, *omp = l->meter_peers;
    l->chargers = pw_xcalloc(cfg->n_chargers + 1, sizeof *l->chargers);
    l->charger_peers = pw_xcalloc(cfg->n_chargers + 1, sizeof *l->charger_peers);
    l->n_chargers = 0;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_cfg_link *k = &cfg->charger_links[i];
        if (k->kind != PW_CFG_LINK_LAN)
            continue;
        l->chargers[l->n_chargers++] = (lan_index){k->device_id, (uint32_t)i};
        int j = index_find(oc, onc, k->device_id);
        l->charger_peers[i] = j >= 0 ? ocp[j] : (lan_peer){.device_id = k->device_id};
    }
    qsort(l->chargers, l->n_chargers, sizeof *l->chargers, index_cmp);
    l->meters = pw_xcalloc(cfg->n_nodes + 1, sizeof *l->meters);
    l->meter_peers = pw_xcalloc(cfg->n_nodes + 1, sizeof *l->meter_peers);
    l->n_meters = 0;
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_cfg_link *k = &cfg->meters[n];
        if (k->kind != PW_CFG_LINK_LAN)
            continue;
        l->meters[l->n_meters++] = (lan_index){k->device_id, (uint32_t)n};
        int j = index_find(om, onm, k->device_id);
        l->meter_peers[n] = j >= 0 ? omp[j] : (lan_peer){.device_id = k->device_id};
    }
    qsort(l->meters, l->n_meters, sizeof *l->meters, index_cmp);
    /* Unassigned devices that are now configured start with their configured link. */
    size_t kept = 0;
    for (size_t u = 0; u < l->n_unassigned; u++)
        if (index_find(l->chargers, l->n_chargers, l->unassigned[u].device_id) < 0 &&
            index_find(l->meters, l->n_meters, l->unassigned[u].device_id) < 0)
            l->unassigned[kept++] = l->unassigned[u];
    l->n_unassigned = kept;
    l->cfg = cfg;
    free(oc);
    free(om);
    free(ocp);
    free(omp);
}

static lan_peer *unassigned_peer(lan *l, uint32_t device_id)
{
    size_t oldest = 0;
    for (size_t u = 0; u < l->n_unassigned; u++) {
        if (l->unassigned[u].device_id == device_id)
            return &l->unassigned[u];
        if (l->unassigned[u].link.last_seen_ms < l->unassigned[oldest].link.last_seen_ms)
            oldest = u;
    }
    size_t slot = l->n_unassigned < UNASSIGNED_LINKS ? l->n_unassigned++ : oldest;
    l->unassigned[slot] = (lan_peer){.device_id = device_id};
    return &l->unassigned[slot];
}

static void reject(lan *l, int err)
{
    pw_ctl_rejected(l->env.ctl, "lan", pw_proto_err_name(err), pw_proto_strerror(err));
}

static const char *link_name(uint8_t link)
{
    switch (link) {
    case PW_LINK_WIFI:
        return "wifi";
    case PW_LINK_CELLULAR:
        return "cellular";
    default:
        return "ethernet";
    }
}

static void to_report(const pw_msg_status *st, pw_ctl_report *r)
{
    *r = (pw_ctl_report){.pilot = st->iec_state,
                         .ev_suspended = -1,
                         .offered_a = pw_proto_amps(st->applied_limit_ma),
                         .phases = st->applied_phases,
                         .energy_wh = st->energy_wh};
    for (size_t t = 0; t < PW_LINES; t++)
        r->current_a[t] = pw_proto_amps(st->current_ma[t]);
    if (st->session_id)
        snprintf(r->session_ref, sizeof r->session_ref, "%u", st->session_id);
}

static void on_charger(lan *l, size_t i, const pw_proto_msg *msg, uint64_t now)
{
    pw_proto_link *link = &l->charger_peers[i].link;
    uint32_t reboots = link->reboots;
    if (pw_proto_link_accept(link, &msg->hdr, now) != 0) {
        reject(l, PW_PROTO_E_REPLAY);
        return;
    }
    l->st.rx_accepted++;
    char address[24], restarted[32];
    snprintf(address, sizeof address, "device %u", msg->hdr.sender_id);
    snprintf(restarted, sizeof restarted, "new boot id %u", msg->hdr.boot_id);
    pw_ctl_device_info info = {0};
    pw_ctl_seen seen = {.address = address,
                        .restarted = link->reboots != reboots ? restarted : NULL,
                        .loss_pct = pw_proto_link_loss_pct(link)};
    int64_t wall = pw_wall_ms();
    if (msg->hdr.type == PW_MSG_ANNOUNCE) {
        const pw_msg_announce *a = &msg->u.announce;
        pw_strlcpy(info.model, a->model, sizeof info.model);
        pw_strlcpy(info.firmware, a->firmware, sizeof info.firmware);
        pw_strlcpy(info.link, link_name(a->link), sizeof info.link);
        info.rssi_dbm = a->rssi_dbm;
        seen.info = &info;
        pw_ctl_charger_seen(l->env.ctl, i, &seen, now, wall);
    } else {
        pw_ctl_report r;
        to_report(&msg->u.status, &r);
        pw_ctl_charger_report(l->env.ctl, i, &seen, &r, now, wall);
    }
}

static void on_meter(lan *l, size_t node, const pw_proto_msg *msg, uint64_t now,
                     uint64_t arrival_ns)
{
    if (pw_proto_link_accept(&l->meter_peers[node].link, &msg->hdr, now) != 0) {
        reject(l, PW_PROTO_E_REPLAY);
        return;
    }
    double amps[PW_LINES];
    for (size_t k = 0; k < PW_LINES; k++)
        amps[k] = pw_proto_amps(msg->u.meter.current_ma[k]);
    if (pw_ctl_meter_report(l->env.ctl, node, amps, now) != 0)
        return;
    l->st.rx_accepted++;
    l->meter_arrival_ns = arrival_ns;
}

static void on_unassigned(lan *l, const pw_proto_msg *msg, uint64_t now)
{
    lan_peer *p = unassigned_peer(l, msg->hdr.sender_id);
    if (pw_proto_link_accept(&p->link, &msg->hdr, now) != 0) {
        reject(l, PW_PROTO_E_REPLAY);
        return;
    }
    pw_cfg_link link = {.kind = PW_CFG_LINK_LAN, .device_id = msg->hdr.sender_id};
    pw_ctl_unassigned(l->env.ctl, &link,
                      msg->hdr.type == PW_MSG_ANNOUNCE ? msg->u.announce.model : NULL, now,
                      pw_wall_ms());
}

/* Two balancers commanding the same chargers would fight: make it visible. */
static void on_balancer(lan *l, const pw_proto_msg *msg)
{
    if (msg->hdr.sender_id == PW_PROTO_BALANCER_ID && msg->hdr.boot_id == l->env.boot_id) {
        l->own_heard++;
        return;
    }
    if (l->foreign++ == 0 && l->env.log_event) {
        char detail[64];
        snprintf(detail, sizeof detail, "another balancer (boot %u) sends on the group",
                 msg->hdr.boot_id);
        l->env.log_event(l->env.ud, "foreign_balancer", "", detail);
    }
}

static void on_datagram(pw_net *net, const uint8_t *buf, size_t len, const struct sockaddr_in *from,
                        void *user)
{
    (void)net;
    (void)from;
    lan *l = user;
    uint64_t arrival_ns = uv_hrtime();
    l->st.rx++;
    pw_proto_msg msg;
    int rc = pw_proto_decode(buf, len, l->env.key, &msg);
    if (rc != 0) {
        reject(l, rc);
        return;
    }
    uint64_t now = uv_now(l->env.loop);
    uint8_t type = msg.hdr.type;
    if (type == PW_MSG_ALLOCATION || type == PW_MSG_HEARTBEAT) {
        on_balancer(l, &msg);
        return;
    }
    int ci = index_find(l->chargers, l->n_chargers, msg.hdr.sender_id);
    int ni = type == PW_MSG_METER ? index_find(l->meters, l->n_meters, msg.hdr.sender_id) : -1;
    if (ci >= 0 && (type == PW_MSG_ANNOUNCE || type == PW_MSG_STATUS))
        on_charger(l, (size_t)ci, &msg, now);
    else if (ni >= 0)
        on_meter(l, (size_t)ni, &msg, now, arrival_ns);
    else
        on_unassigned(l, &msg, now);
}

/* A datagram over PW_NET_MAX_DATAGRAM is refused input like any other: the protocol
 * names it "long" (PROTOCOL.md, check 2), whatever its length. */
static void on_oversize(pw_net *net, size_t len, const struct sockaddr_in *from, void *user)
{
    (void)net;
    (void)len;
    (void)from;
    lan *l = user;
    l->st.rx++;
    reject(l, PW_PROTO_E_LONG);
}

static int send_msg(lan *l, pw_proto_msg *msg)
{
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    msg->hdr.sender_id = PW_PROTO_BALANCER_ID;
    msg->hdr.boot_id = l->env.boot_id;
    msg->hdr.seq = ++l->seq;
    int n = pw_proto_encode(msg, l->env.key, buf, sizeof buf);
    if (n < 0 || pw_net_send(l->net, buf, (size_t)n) != 0) {
        l->st.tx_errors++;
        return -1;
    }
    l->st.tx++;
    return 0;
}

/* The protocol's plan is one sequence for all chargers: when any LAN charger is due, every
 * LAN charger gets its entry, split over as many datagrams as needed, and the renewals of all
 * stay in step. */
static void lan_send(pw_transport *t, uint64_t now, int64_t wall)
{
    lan *l = (lan *)t;
    const pw_ctl_command *cmd = pw_ctl_commands(l->env.ctl);
    bool due = false;
    for (size_t k = 0; k < l->n_chargers && !due; k++)
        due = cmd[l->chargers[k].index].due;
    uint64_t meter_ns = l->meter_arrival_ns;
    l->meter_arrival_ns = 0;
    if (!due || !l->net)
        return;
    pw_proto_msg msg = {.hdr.type = PW_MSG_ALLOCATION};
    pw_msg_allocation *a = &msg.u.allocation;
    uint64_t first_ns = 0;
    for (size_t k = 0; k < l->n_chargers; k++) {
        const pw_ctl_command *c = &cmd[l->chargers[k].index];
        /* A charger not heard since the start keeps its last lease or falls back to its
         * failsafe on its own (PROTOCOL.md 5.4): it is left out of the plan, not told a limit. */
        if (c->held)
            continue;
        a->alloc_seq = c->plan_seq;
        a->lease_ms = c->lease_ms;
        a->entries[a->count++] = (pw_alloc_entry){.charger_id = l->chargers[k].device_id,
                                                  .limit_ma = pw_proto_milliamps(c->limit_a),
                                                  .phases = c->phases};
        if (a->count == PW_PROTO_ALLOC_PER_DATAGRAM) {
            if (send_msg(l, &msg) == 0 && !first_ns)
                first_ns = uv_hrtime();
            a->count = 0;
        }
    }
    if (a->count && send_msg(l, &msg) == 0 && !first_ns)
        first_ns = uv_hrtime();
    if (first_ns && meter_ns)
        pw_latency_observe(&l->react, first_ns > meter_ns ? (first_ns - meter_ns) / 1000u : 0);
    /* The bookkeeping waits until the datagrams are out. */
    for (size_t k = 0; k < l->n_chargers; k++)
        if (!cmd[l->chargers[k].index].held)
            pw_ctl_sent(l->env.ctl, l->chargers[k].index, now, wall);
}

static void on_heartbeat(uv_timer_t *timer)
{
    lan *l = timer->data;
    uint64_t now = uv_now(l->env.loop);
    const pw_bal_node_result *nres = pw_bal_node_results(pw_ctl_balancer(l->env.ctl));
    bool degraded = false;
    for (size_t n = 0; n < l->cfg->n_nodes; n++)
        degraded |= nres[n].meter_stale;
    size_t online = pw_ctl_online_count(l->env.ctl, now);
    pw_proto_msg msg = {.hdr.type = PW_MSG_HEARTBEAT};
    msg.u.heartbeat =
        (pw_msg_heartbeat){.uptime_s = (uint32_t)((now - l->start_ms) / 1000),
                           .config_generation = l->config_generation,
                           .chargers_online = (uint16_t)(online > UINT16_MAX ? UINT16_MAX : online),
                           .state = degraded ? PW_HB_DEGRADED : PW_HB_BALANCING};
    send_msg(l, &msg);
}

static int lan_start(pw_transport *t, const pw_transport_env *env, char *err, size_t err_size)
{
    lan *l = (lan *)t;
    l->env = *env;
    l->start_ms = uv_now(env->loop);
    build_index(l, env->cfg);
    const pw_cfg_net *n = &env->cfg->net;
    pw_net_opts no = {.group = n->group,
                      .port = n->port,
                      .interface = n->interface,
                      .ttl = n->ttl,
                      .oversize_cb = on_oversize};
    int rc = pw_net_open(env->loop, &no, on_datagram, l, &l->net);
    if (rc != 0) {
        snprintf(err, err_size, "LAN group %s port %u on %s: %s", no.group, no.port, no.interface,
                 pw_net_strerror(rc));
        return -1;
    }
    pw_info("lan", "group %s port %u on interface %s, ttl %u", no.group, no.port, no.interface,
            no.ttl);
    uv_timer_init(env->loop, &l->heartbeat);
    l->heartbeat.data = l;
    l->heartbeat_open = true;
    uv_timer_start(&l->heartbeat, on_heartbeat, 0, PW_PROTO_HEARTBEAT_INTERVAL_MS);
    return 0;
}

/* LAN chargers report as the protocol says (PROTOCOL.md 5): on change at most every second, at
 * least every 30 s; the facility's params carry those values and may tune them. */
static void lan_timing(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out)
{
    (void)t;
    pw_cfg_timing_default(cfg, PW_CFG_LINK_LAN, out);
}

static void lan_reconfigure(pw_transport *t, const pw_cfg *cfg)
{
    lan *l = (lan *)t;
    build_index(l, cfg);
    l->config_generation++;
}

static int lan_net_changed(pw_transport *t, const char *addr)
{
    lan *l = (lan *)t;
    if (!l->net || pw_net_rejoin(l->net, addr) != 0)
        return -1;
    l->st.rejoins++;
    return 0;
}

static void lan_stats(const pw_transport *t, pw_transport_stats *out)
{
    const lan *l = (const lan *)t;
    *out = l->st;
    out->foreign = l->foreign;
    out->react = &l->react;
}

static void free_lan(lan *l)
{
    free(l->chargers);
    free(l->meters);
    free(l->charger_peers);
    free(l->meter_peers);
    free(l);
}

static void on_heartbeat_closed(uv_handle_t *h)
{
    free_lan(h->data);
}

static void lan_stop(pw_transport *t)
{
    lan *l = (lan *)t;
    if (l->net) {
        pw_net_close(l->net, NULL, NULL);
        l->net = NULL;
    }
    if (l->heartbeat_open)
        uv_close((uv_handle_t *)&l->heartbeat, on_heartbeat_closed);
    else
        free_lan(l);
}

static const pw_transport_ops lan_ops = {
    .name = "lan",
    .kind = PW_CFG_LINK_LAN,
    .start = lan_start,
    .timing = lan_timing,
    .send = lan_send,
    .reconfigure = lan_reconfigure,
    .net_changed = lan_net_changed,
    .stats = lan_stats,
    .stop = lan_stop,
};

pw_transport *pw_tr_lan_new(void)
{
    lan *l = pw_xcalloc(1, sizeof *l);
    l->super.ops = &lan_ops;
    return &l->super;
}
