/* The DEFA transport: DEFA Balancer meter frames, read as the meter of the nodes whose link is
 * a DEFA serial, and optionally emitted with the main node's currents for existing listeners.
 * The frames carry no authentication, so anyone on the LAN can forge them: both directions are
 * off unless the config turns them on, and turning them on or off takes a restart
 * (protocol/PROTOCOL.md, section 8). */
#include <stdio.h>
#include <string.h>

#include "pw_net.h"
#include "pw_proto.h"
#include "pw_transport.h"
#include "pw_util.h"

/* The serial we emit under, so our own frames heard back through multicast loop are ignored. */
#define EMIT_SERIAL "PHASEWISE"

typedef struct defa {
    pw_transport super;
    pw_transport_env env;
    const pw_cfg *cfg;
    pw_net *net;
    bool read, emit; /* as the appliance started */
    pw_transport_stats st;
} defa;

static int node_by_serial(const pw_cfg *cfg, const char *serial)
{
    pw_cfg_link link = {.kind = PW_CFG_LINK_DEFA};
    pw_strlcpy(link.serial, serial, sizeof link.serial);
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (pw_cfg_link_equal(&cfg->meters[i], &link))
            return (int)i;
    return -1;
}

static void reject(defa *d, int err)
{
    pw_ctl_rejected(d->env.ctl, "defa", pw_proto_err_name(err), pw_proto_strerror(err));
}

static void on_frame(pw_net *net, const uint8_t *buf, size_t len, const struct sockaddr_in *from,
                     void *user)
{
    (void)net;
    (void)from;
    defa *d = user;
    if (!d->read)
        return;
    d->st.rx++;
    pw_defa_frame f;
    int rc = pw_defa_decode(buf, len, &f);
    if (rc != 0) {
        reject(d, rc);
        return;
    }
    if (strcmp(f.serial, EMIT_SERIAL) == 0)
        return;
    int node = node_by_serial(d->cfg, f.serial);
    if (node < 0)
        return; /* another facility's DEFA meter on the same LAN: not ours to read */
    double amps[PW_LINES];
    for (size_t l = 0; l < PW_LINES; l++)
        amps[l] = pw_proto_amps(f.current_ma[l]);
    if (pw_ctl_meter_report(d->env.ctl, (size_t)node, amps, uv_now(d->env.loop)) == 0)
        d->st.rx_accepted++;
}

/* Longer than the socket takes: not a 54-byte frame either, so "long" like a 55-byte one. */
static void on_oversize(pw_net *net, size_t len, const struct sockaddr_in *from, void *user)
{
    (void)net;
    (void)len;
    (void)from;
    defa *d = user;
    if (!d->read)
        return;
    d->st.rx++;
    reject(d, PW_PROTO_E_LONG);
}

static int defa_start(pw_transport *t, const pw_transport_env *env, char *err, size_t err_size)
{
    defa *d = (defa *)t;
    d->env = *env;
    d->cfg = env->cfg;
    const pw_cfg_net *n = &env->cfg->net;
    d->read = n->defa_meters;
    d->emit = n->defa_emit;
    if (!d->read && !d->emit)
        return 0;
    pw_net_opts o = {.group = PW_DEFA_DEFAULT_GROUP,
                     .port = PW_DEFA_DEFAULT_PORT,
                     .interface = n->interface,
                     .ttl = n->ttl,
                     .oversize_cb = on_oversize};
    int rc = pw_net_open(env->loop, &o, on_frame, d, &d->net);
    if (rc != 0) {
        snprintf(err, err_size, "DEFA frames on %s:%u: %s", o.group, o.port, pw_net_strerror(rc));
        return -1;
    }
    pw_warn("defa",
            "DEFA meter frames %s%s%s on %s:%u: unauthenticated, anyone on the LAN can forge them",
            d->read ? "read" : "", d->read && d->emit ? " and " : "", d->emit ? "emitted" : "",
            o.group, o.port);
    return 0;
}

/* The main node's currents once a tick: its meter if it has a reading, else the load we
 * planned there, never less than what is known. */
static void defa_tick(pw_transport *t, uint64_t now)
{
    (void)now;
    defa *d = (defa *)t;
    if (!d->net || !d->emit)
        return;
    pw_defa_frame f = {.serial = EMIT_SERIAL, .firmware = "pw1"};
    const pw_bal_node_result *root = &pw_bal_node_results(pw_ctl_balancer(d->env.ctl))[0];
    const pw_ctl_meter_state *m = pw_ctl_meter(d->env.ctl, 0);
    /* Without a reading the frame carries the plan; before the first plan there is none, and a
     * frame saying 0 A would tell other balancers the fuse is free. */
    if (!m->has_reading && pw_ctl_starting(d->env.ctl))
        return;
    for (size_t l = 0; l < PW_LINES; l++)
        f.current_ma[l] = pw_proto_milliamps(m->has_reading ? m->line_a[l] : root->planned_a[l]);
    uint8_t buf[PW_DEFA_FRAME_LEN];
    /* A frame that cannot carry the value (L1 above 65.5 A) is not sent rather than sent low. */
    if (pw_defa_encode(&f, buf) == PW_DEFA_FRAME_LEN && pw_net_send(d->net, buf, sizeof buf) == 0)
        d->st.tx++;
    else
        d->st.tx_errors++;
}

static void defa_timing(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out)
{
    (void)t;
    (void)cfg;
    *out = (pw_bal_timing){0}; /* no chargers speak it */
}

static void defa_reconfigure(pw_transport *t, const pw_cfg *cfg)
{
    ((defa *)t)->cfg = cfg;
}

static int defa_net_changed(pw_transport *t, const char *addr)
{
    defa *d = (defa *)t;
    if (!d->net)
        return 0;
    if (pw_net_rejoin(d->net, addr) != 0)
        return -1;
    d->st.rejoins++;
    return 0;
}

static void defa_stats(const pw_transport *t, pw_transport_stats *out)
{
    const defa *d = (const defa *)t;
    *out = d->st;
    out->react = NULL;
}

static void on_net_closed(void *ud)
{
    free(ud);
}

static void defa_stop(pw_transport *t)
{
    defa *d = (defa *)t;
    if (d->net)
        pw_net_close(d->net, on_net_closed, d);
    else
        free(d);
}

static const pw_transport_ops defa_ops = {
    .name = "defa",
    .kind = PW_CFG_LINK_DEFA,
    .start = defa_start,
    .timing = defa_timing,
    .tick = defa_tick,
    .reconfigure = defa_reconfigure,
    .net_changed = defa_net_changed,
    .stats = defa_stats,
    .stop = defa_stop,
};

pw_transport *pw_tr_defa_new(void)
{
    defa *d = pw_xcalloc(1, sizeof *d);
    d->super.ops = &defa_ops;
    return &d->super;
}
