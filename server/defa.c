/* DEFA Balancer meter frames: read them as a meter source for the nodes configured with a DEFA
 * serial, and optionally emit the main node's currents in the same format for existing
 * listeners. The frames carry no authentication, so anyone on the LAN can forge them: both
 * directions are off unless the config turns them on (protocol/PROTOCOL.md, section 8). */
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

/* The serial we emit under, so our own frames heard back through multicast loop are ignored. */
#define EMIT_SERIAL "PHASEWISE"

static int node_by_serial(const pw_cfg *cfg, const char *serial)
{
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (cfg->meters[i].kind == PW_METER_DEFA && strcmp(cfg->meters[i].defa_serial, serial) == 0)
            return (int)i;
    return -1;
}

static void on_frame(pw_net *net, const uint8_t *buf, size_t len, const struct sockaddr_in *from,
                     void *user)
{
    (void)net;
    (void)from;
    pw_app *app = user;
    uint64_t arrival_ns = uv_hrtime();
    if (app->stopping || !app->cfg->net.defa_meters)
        return;
    pw_defa_frame f;
    int rc = pw_defa_decode(buf, len, &f);
    if (rc != 0) {
        pw_control_count_reject(app, rc);
        return;
    }
    if (strcmp(f.serial, EMIT_SERIAL) == 0)
        return;
    int node = node_by_serial(app->cfg, f.serial);
    if (node < 0)
        return; /* another facility's DEFA meter on the same LAN: not ours to read */
    uint64_t now = arrival_ns / 1000000u;
    app->reg.meters[node].link.last_seen_ms = now;
    app->reg.meters[node].link.received++;
    pw_control_meter_reading(app, (size_t)node, f.current_ma, now, arrival_ns);
}

int pw_defa_start(pw_app *app)
{
    const pw_cfg_net *n = &app->cfg->net;
    if (!n->defa_meters && !n->defa_emit)
        return 0;
    pw_net_opts o = {.group = PW_DEFA_DEFAULT_GROUP,
                     .port = PW_DEFA_DEFAULT_PORT,
                     .interface = n->interface,
                     .ttl = n->ttl};
    if (pw_net_open(&app->loop, &o, on_frame, app, &app->defa_net) != 0)
        return -1;
    pw_warn("server",
            "DEFA meter frames %s%s%s on %s:%u: unauthenticated, anyone on the LAN "
            "can forge them",
            n->defa_meters ? "read" : "", n->defa_meters && n->defa_emit ? " and " : "",
            n->defa_emit ? "emitted" : "", o.group, o.port);
    return 0;
}

void pw_defa_emit(pw_app *app)
{
    if (!app->defa_net || !app->cfg->net.defa_emit)
        return;
    pw_defa_frame f = {.serial = EMIT_SERIAL, .firmware = "pw1"};
    const pw_bal_node_result *root = &pw_bal_node_results(app->bal)[0];
    const pw_reg_meter *m = &app->reg.meters[0];
    for (size_t l = 0; l < PW_LINES; l++) {
        /* The main meter if there is one, else the EV load we planned: never less than known. */
        double a = m->has_reading ? m->current_ma[l] / 1000.0 : root->planned_a[l];
        f.current_ma[l] = (uint32_t)(a * 1000.0 + 0.5);
    }
    uint8_t buf[PW_DEFA_FRAME_LEN];
    /* A frame that cannot carry the value (L1 above 65.5 A) is not sent rather than sent low. */
    if (pw_defa_encode(&f, buf) == PW_DEFA_FRAME_LEN &&
        pw_net_send(app->defa_net, buf, sizeof buf) == 0)
        app->counters.tx++;
    else
        app->counters.tx_errors++;
}

void pw_defa_stop(pw_app *app)
{
    if (app->defa_net) {
        pw_net_close(app->defa_net, NULL, NULL);
        app->defa_net = NULL;
    }
}
