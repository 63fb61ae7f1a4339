/* The simulator's Modbus TCP meters: every node whose meter link is Modbus TCP is a unit behind a
 * simulated gateway, one listening socket per port, answering reads from the node's register
 * image (pw_simmeter.h) as the protocol codec parses them from the stream. Faults for the tests:
 * answers held back by --modbus-delay-ms, gateways not listening during --modbus-down windows,
 * and no answers at all during a --meter-outage (a hung gateway). */
#include <string.h>

#include "pw_modbus.h"
#include "pw_simmeter.h"
#include "pw_util.h"
#include "sim_int.h"

#define MB_QUEUE     16 /* answers a connection may have waiting for --modbus-delay-ms */
#define MB_MAX_CONNS 16 /* clients per gateway; RS485 gateways take a few */
#define MB_SERIAL    23000000u

typedef struct mb_unit {
    uint8_t unit;
    size_t node;
    pw_sim_regimg img;
} mb_unit;

typedef struct mb_gw mb_gw;

typedef struct mb_conn {
    uv_tcp_t tcp;
    uv_timer_t delay;
    mb_gw *gw;
    struct mb_conn *next;
    int open_handles; /* freed when both handles are closed */
    bool closing;
    size_t in_len;
    uint8_t in[2 * PW_MODBUS_MAX_ADU];
    size_t q_head, q_len; /* answers held back, oldest first */
    struct {
        uint64_t due; /* loop time */
        uint16_t len;
        uint8_t buf[PW_MODBUS_MAX_ADU];
    } q[MB_QUEUE];
} mb_conn;

/* One simulated gateway: a port and the units behind it. */
struct mb_gw {
    sim_app *app;
    uint16_t port;
    uv_tcp_t *listener; /* NULL while down; freed in its close callback */
    bool bind_failed;   /* logged once until it listens again */
    mb_conn *conns;
    size_t n_conns;
    size_t n_units;
    mb_unit *units;
};

struct sim_modbus {
    mb_gw *gws;
    size_t n_gws;
    mb_unit **by_node; /* n_nodes; NULL for a node not served */
    bool down;         /* in a --modbus-down window */
    uint64_t answered, held, dropped;
};

typedef struct mb_write {
    uv_write_t req;
    uint8_t buf[PW_MODBUS_MAX_ADU];
} mb_write;

static const char *listen_address(const sim_app *app)
{
    return app->o.interface ? app->o.interface : "127.0.0.1";
}

/* ---- connections ----------------------------------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h)
{
    mb_conn *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

static void conn_close(mb_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    mb_gw *gw = c->gw;
    for (mb_conn **p = &gw->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    gw->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->delay, on_conn_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
    mb_write *w = req->data;
    mb_conn *c = req->handle->data;
    if (status != 0 && status != UV_ECANCELED) {
        pw_debug(SIM_COMP, "modbus port %u: write: %s", c->gw->port, uv_strerror(status));
        conn_close(c);
    }
    free(w);
}

static void conn_send(mb_conn *c, const uint8_t *buf, size_t len)
{
    mb_write *w = pw_xmalloc(sizeof(*w));
    memcpy(w->buf, buf, len);
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->gw->app->modbus->answered++;
}

/* Sends the held answers that are due and waits for the next one. */
static void on_delay(uv_timer_t *t)
{
    mb_conn *c = t->data;
    uint64_t now = uv_now(t->loop);
    while (c->q_len > 0 && !c->closing && c->q[c->q_head].due <= now) {
        conn_send(c, c->q[c->q_head].buf, c->q[c->q_head].len);
        c->q_head = (c->q_head + 1) % MB_QUEUE;
        c->q_len--;
    }
    if (c->q_len > 0 && !c->closing)
        uv_timer_start(&c->delay, on_delay, c->q[c->q_head].due - now, 0);
}

static void queue_answer(mb_conn *c, const uint8_t *buf, size_t len)
{
    sim_modbus *mb = c->gw->app->modbus;
    if (c->q_len == MB_QUEUE) {
        mb->dropped++;
        return;
    }
    size_t i = (c->q_head + c->q_len) % MB_QUEUE;
    c->q[i].due = uv_now(c->tcp.loop) + c->gw->app->o.modbus_delay_ms;
    c->q[i].len = (uint16_t)len;
    memcpy(c->q[i].buf, buf, len);
    c->q_len++;
    mb->held++;
    if (!uv_is_active((uv_handle_t *)&c->delay))
        uv_timer_start(&c->delay, on_delay, c->gw->app->o.modbus_delay_ms, 0);
}

static const pw_sim_regimg *image_of(const mb_gw *gw, uint8_t unit)
{
    for (size_t i = 0; i < gw->n_units; i++) {
        if (gw->units[i].unit == unit)
            return &gw->units[i].img;
    }
    return NULL;
}

static void on_request(mb_conn *c, const pw_modbus_request *req, int err)
{
    sim_app *app = c->gw->app;
    uint8_t out[PW_MODBUS_MAX_ADU];
    /* While the meters are out, the gateway stays silent (hung). */
    if (pw_sim_outage_active(app->o.outages, app->o.n_outages, 0, pw_sim_now(app->model))) {
        app->modbus->dropped++;
        return;
    }
    int n = pw_sim_modbus_answer(req, err, image_of(c->gw, req->unit), out, sizeof(out));
    if (n <= 0)
        return;
    if (app->o.modbus_delay_ms > 0)
        queue_answer(c, out, (size_t)n);
    else
        conn_send(c, out, (size_t)n);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mb_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof(c->in) - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mb_conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    while (!c->closing) {
        pw_modbus_request req;
        int err = 0;
        int rc = pw_modbus_parse_request(c->in, c->in_len, &req, &err);
        if (rc == PW_MODBUS_AGAIN && c->in_len < sizeof(c->in))
            break;
        if (rc <= 0) { /* not Modbus TCP: a real gateway drops the connection too */
            pw_debug(SIM_COMP, "modbus port %u: %s; closing the connection", c->gw->port,
                     pw_modbus_strerror(rc == PW_MODBUS_AGAIN ? PW_MODBUS_E_PROTOCOL : rc));
            conn_close(c);
            break;
        }
        on_request(c, &req, err);
        memmove(c->in, c->in + rc, c->in_len - (size_t)rc);
        c->in_len -= (size_t)rc;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    mb_gw *gw = server->data;
    if (status != 0)
        return;
    mb_conn *c = pw_xcalloc(1, sizeof(*c));
    c->gw = gw;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->delay);
    c->tcp.data = c->delay.data = c;
    c->open_handles = 2;
    c->next = gw->conns;
    gw->conns = c;
    gw->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || gw->n_conns > MB_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- gateways -------------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    free(h);
}

static void gw_stop(mb_gw *gw)
{
    if (gw->listener)
        uv_close((uv_handle_t *)gw->listener, on_listener_closed);
    gw->listener = NULL;
    while (gw->conns)
        conn_close(gw->conns);
}

/* Starts listening. Returns 0 or a libuv error (logged once until it works again). */
static int gw_listen(mb_gw *gw)
{
    sim_app *app = gw->app;
    struct sockaddr_in sa;
    int rc = uv_ip4_addr(listen_address(app), gw->port, &sa);
    uv_tcp_t *l = pw_xcalloc(1, sizeof(*l));
    uv_tcp_init(&app->loop, l);
    l->data = gw;
    if (rc == 0)
        rc = uv_tcp_bind(l, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)l, 8, on_connection);
    if (rc != 0) {
        uv_close((uv_handle_t *)l, on_listener_closed);
        if (!gw->bind_failed)
            pw_error(SIM_COMP, "modbus: cannot listen on %s:%u: %s", listen_address(app), gw->port,
                     uv_strerror(rc));
        gw->bind_failed = true;
        return rc;
    }
    gw->bind_failed = false;
    gw->listener = l;
    return 0;
}

static mb_gw *gw_for_port(sim_modbus *mb, sim_app *app, uint16_t port)
{
    for (size_t i = 0; i < mb->n_gws; i++) {
        if (mb->gws[i].port == port)
            return &mb->gws[i];
    }
    mb_gw *gw = &mb->gws[mb->n_gws++];
    gw->app = app;
    gw->port = port;
    gw->units = pw_xcalloc(app->cfg->n_nodes, sizeof(*gw->units));
    return gw;
}

/* Adds node i as a unit of its port's gateway. Returns 0, or -1 when it is skipped (logged). */
static int add_unit(sim_app *app, size_t i)
{
    sim_modbus *mb = app->modbus;
    const pw_cfg_link *link = &app->cfg->meters[i];
    const char *map = app->cfg->meter_opts[i].map;
    const char *node = app->cfg->nodes[i].id;
    mb_gw *gw = gw_for_port(mb, app, link->port);
    if (image_of(gw, link->unit)) {
        pw_warn(SIM_COMP, "node '%s': unit %u on port %u is taken by another meter; not served",
                node, link->unit, link->port);
        return -1;
    }
    mb_unit *u = &gw->units[gw->n_units];
    if (pw_sim_regimg_init(&u->img, map, link->unit, MB_SERIAL + (uint32_t)i) != 0) {
        pw_warn(SIM_COMP,
                "node '%s': the simulator serves the sdm630, em340 and sunspec maps, not '%s'; "
                "its meter is not simulated",
                node, map);
        return -1;
    }
    /* The reading at the start, so that the first request finds one. */
    double amps[PW_LINES];
    pw_sim_meter_reading(app->model, i, amps);
    pw_sim_regimg_set(&u->img, amps, app->meter_energy_wh[i]);
    u->unit = link->unit;
    u->node = i;
    gw->n_units++;
    mb->by_node[i] = u;
    pw_info(SIM_COMP, "node '%s': %s meter, unit %u on %s:%u", node, map, link->unit,
            listen_address(app), link->port);
    return 0;
}

int sim_modbus_start(sim_app *app)
{
    const pw_cfg *cfg = app->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_nodes; i++)
        n += cfg->meters[i].kind == PW_CFG_LINK_MODBUS;
    if (n == 0)
        return 0;
    sim_modbus *mb = app->modbus = pw_xcalloc(1, sizeof(*mb));
    mb->gws = pw_xcalloc(n, sizeof(*mb->gws));
    mb->by_node = pw_xcalloc(cfg->n_nodes, sizeof(*mb->by_node));
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (cfg->meters[i].kind == PW_CFG_LINK_MODBUS)
            add_unit(app, i);
    }
    /* A port another program holds would let the appliance read someone else's meter: that
     * is an error at start, not a warning. */
    for (size_t g = 0; g < mb->n_gws; g++) {
        if (mb->gws[g].n_units > 0 && gw_listen(&mb->gws[g]) != 0)
            return -1;
    }
    return 0;
}

void sim_modbus_update(sim_app *app, size_t node, const double amps[PW_LINES], double energy_wh)
{
    sim_modbus *mb = app->modbus;
    if (!mb || !mb->by_node[node])
        return;
    pw_sim_regimg_set(&mb->by_node[node]->img, amps, energy_wh);
}

void sim_modbus_tick(sim_app *app, uint64_t sim_ms)
{
    sim_modbus *mb = app->modbus;
    if (!mb)
        return;
    bool down = pw_sim_outage_active(app->o.modbus_down, app->o.n_modbus_down, 0, sim_ms);
    if (down != mb->down)
        pw_info(SIM_COMP, "t=%.1f s: modbus gateways %s", sim_ms / 1000.0,
                down ? "down" : "back up");
    mb->down = down;
    for (size_t g = 0; g < mb->n_gws; g++) {
        mb_gw *gw = &mb->gws[g];
        if (down && gw->listener)
            gw_stop(gw);
        else if (!down && !gw->listener && gw->n_units > 0)
            gw_listen(gw);
    }
}

void sim_modbus_close(sim_app *app)
{
    sim_modbus *mb = app->modbus;
    if (!mb)
        return;
    for (size_t g = 0; g < mb->n_gws; g++)
        gw_stop(&mb->gws[g]);
    if (mb->answered + mb->dropped > 0)
        pw_info(SIM_COMP, "modbus: %llu answers (%llu held back), %llu requests unanswered",
                (unsigned long long)mb->answered, (unsigned long long)mb->held,
                (unsigned long long)mb->dropped);
}

void sim_modbus_free(sim_app *app)
{
    sim_modbus *mb = app->modbus;
    if (!mb)
        return;
    for (size_t g = 0; g < mb->n_gws; g++)
        free(mb->gws[g].units);
    free(mb->gws);
    free(mb->by_node);
    free(mb);
    app->modbus = NULL;
}
