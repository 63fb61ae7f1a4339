/* The Modbus TCP transport: polls energy meters behind RS485-to-TCP gateways and hands their
 * per-line currents to the core. One connection per gateway and one request in flight on it (a
 * gateway serialises its RS485 bus), each meter read at its own interval; framing and register
 * maps are the pure modbus/ codec, this file only moves bytes and keeps time. Meters only. A
 * commissioning test read gets a gateway of its own (not in the list that is polled), read once
 * through the same code, its errors going to its answer instead of the log. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pw_modbus.h"
#include "pw_modbus_map.h"
#include "pw_transport.h"
#include "pw_util.h"

/* A gateway that is back must be read again well within a meter's stale timeout (15 s by
 * default), so the backoff stops doubling at 5 s: one connection attempt per 5 s costs nothing. */
#define BACKOFF_MIN_MS      1000
#define BACKOFF_MAX_MS      5000
#define DEFAULT_INTERVAL_MS 1000
#define DEFAULT_TIMEOUT_MS  1000
#define TEXT_LEN            224
#define TEST_RESOLVE_MS     5000 /* a test read's name lookup; the poller's lookups just wait */

enum gw_state { GW_DOWN, GW_RESOLVING, GW_CONNECTING, GW_READY, GW_CLOSING };

typedef struct mb mb;
typedef struct gateway gateway;

/* A test read in flight: its answer is delivered once its gateway's timer has closed. */
typedef struct mb_test {
    pw_transport_test_done done;
    void *ud;
    uint64_t start_ns;
    pw_transport_test_result r;
} mb_test;

typedef struct meter {
    size_t node;
    uint8_t unit;
    pw_cfg_meter_opts opts;
    const pw_modbus_map *map; /* built-in, or &own (generic, discovered SunSpec); NULL: none */
    pw_modbus_map own;
    bool sunspec;     /* map found by discovery after each connect */
    bool discovering; /* disc holds a discovery in progress */
    pw_modbus_sunspec disc;
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    size_t n_reqs, next_read;
    pw_modbus_answer answers[PW_MODBUS_MAP_READS];
    uint64_t due_ms;
    bool has_serial, serial_refused; /* refused: a changed serial, until the config is saved */
    uint32_t serial;
    char problem[TEXT_LEN]; /* why it is not read, "" when it is; logged once per change */
} meter;

struct gateway {
    mb *t;
    gateway *next;
    char host[64];
    uint16_t port;
    enum gw_state state;
    uv_timer_t timer; /* backoff, connect timeout, answer timeout or next poll, by state */
    uv_tcp_t tcp;
    bool tcp_open; /* initialised and its close callback not yet run */
    uv_getaddrinfo_t gai;
    bool gai_pending;
    uv_connect_t conn;
    int holds;    /* open handles and pending requests: freed at 0 once removed */
    bool removed; /* no longer configured, or the transport stops */
    bool keep;    /* reconfigure: still configured */
    meter *meters;
    size_t n_meters;
    int cur; /* meter whose reading is in progress; -1: none (an answer in flight is dropped) */
    bool in_flight, req_discovery;
    pw_modbus_request req;
    uint16_t tid;
    uint32_t backoff_ms;
    uint8_t rbuf[2 * PW_MODBUS_MAX_ADU];
    size_t rlen;
    uint8_t answer_unit; /* the unit id of the answer being handled */
    char problem[TEXT_LEN];
    mb_test *test; /* a test read's own gateway (one meter, read once); NULL when polled */
};

struct mb {
    pw_transport super;
    pw_transport_env env;
    const pw_cfg *cfg;
    gateway *gws;
    gateway *test; /* the test read in flight, not in gws; NULL if none */
    size_t live;   /* gateways not yet freed, the test reads' included */
    bool stopping;
    pw_transport_stats st;
};

typedef struct write_req {
    uv_write_t req;
    uint8_t buf[16];
} write_req;

static void pump(gateway *g);
static void on_timer(uv_timer_t *timer);
static void gw_connect(gateway *g);
static void gw_remove(gateway *g);
static void test_end(gateway *g, const char *error);

static void mb_free(mb *t)
{
    free(t);
}

static const char *node_id(const mb *t, const meter *m)
{
    return m->node < t->cfg->n_nodes ? t->cfg->nodes[m->node].id : "";
}

static void event(mb *t, const char *kind, const char *subject, const char *detail)
{
    if (t->env.log_event)
        t->env.log_event(t->env.ud, kind, subject, detail);
}

/* Sets (fmt) or clears (NULL) why a meter is not read; a change is logged once. */
static void meter_problem(gateway *g, meter *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void meter_problem(gateway *g, meter *m, const char *fmt, ...)
{
    mb *t = g->t;
    char text[TEXT_LEN] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
    }
    if (g->test) { /* the test read's answer says it */
        pw_strlcpy(m->problem, text, sizeof m->problem);
        return;
    }
    if (strcmp(text, m->problem) == 0)
        return;
    if (text[0]) {
        pw_warn("modbus", "node %s: %s", node_id(t, m), text);
        event(t, "meter_error", node_id(t, m), text);
    } else {
        char ok[TEXT_LEN];
        snprintf(ok, sizeof ok, "unit %u at %s:%u reads again", m->unit, g->host, g->port);
        pw_info("modbus", "node %s: %s", node_id(t, m), ok);
        event(t, "meter_ok", node_id(t, m), ok);
    }
    pw_strlcpy(m->problem, text, sizeof m->problem);
}

static void gw_problem(gateway *g, const char *text)
{
    if (g->test || strcmp(text, g->problem) == 0)
        return;
    char subject[80];
    snprintf(subject, sizeof subject, "%s:%u", g->host, g->port);
    if (text[0]) {
        pw_warn("modbus", "gateway %s: %s", subject, text);
        event(g->t, "modbus_gateway", subject, text);
    } else {
        pw_info("modbus", "gateway %s: connected", subject);
    }
    pw_strlcpy(g->problem, text, sizeof g->problem);
}

/* Refused input, counted by the core; a test read's is its answer only. */
static void reject(gateway *g, const char *reason, const char *text)
{
    if (!g->test)
        pw_ctl_rejected(g->t->env.ctl, "modbus", reason, text);
}

/* ---- maps --------------------------------------------------------------------------------- */

static enum pw_modbus_type generic_type(enum pw_cfg_reg_type type)
{
    switch (type) {
    case PW_CFG_REG_S16:
        return PW_MODBUS_S16;
    case PW_CFG_REG_U32:
        return PW_MODBUS_U32;
    case PW_CFG_REG_S32:
        return PW_MODBUS_S32;
    case PW_CFG_REG_F32:
        return PW_MODBUS_F32;
    default:
        return PW_MODBUS_U16;
    }
}

static void plan(gateway *g, meter *m)
{
    m->n_reqs = pw_modbus_map_plan(m->map, m->reqs, PW_MODBUS_MAP_READS);
    if (m->n_reqs == 0)
        meter_problem(g, m, "map '%s' reads no register", m->map->name);
}

/* The meter's map from its options: a built-in one, the generic one built from the config, or
 * none yet for SunSpec (discovered after connecting). */
static void setup_map(gateway *g, meter *m)
{
    m->map = NULL;
    m->sunspec = false;
    m->n_reqs = 0;
    if (strcmp(m->opts.map, "sunspec") == 0) {
        m->sunspec = true;
        return;
    }
    if (strcmp(m->opts.map, "generic") == 0) {
        m->own = (pw_modbus_map){.name = "generic", .title = "Generic Modbus meter"};
        for (size_t l = 0; l < 3; l++) {
            const pw_cfg_generic_reg *r = &m->opts.line[l];
            if (!r->present)
                continue;
            m->own.current[l] = (pw_modbus_field){
                .present = true,
                .function = m->opts.function ? m->opts.function : PW_MODBUS_FN_HOLDING,
                .address = r->address,
                .type = generic_type(r->type),
                .low_word_first = m->opts.low_word_first,
                .scale = r->scale != 0 ? r->scale : 1.0};
        }
        char why[160];
        if (pw_modbus_map_check(&m->own, why, sizeof why) != 0) {
            meter_problem(g, m, "generic map: %s", why);
            return;
        }
        m->map = &m->own;
    } else {
        m->map = pw_modbus_map_find(m->opts.map);
        if (!m->map) {
            meter_problem(g, m, "unknown meter map '%s'", m->opts.map);
            return;
        }
    }
    plan(g, m);
}

/* ---- connection --------------------------------------------------------------------------- */

static void gw_release(gateway *g)
{
    if (--g->holds > 0 || !g->removed)
        return;
    mb *t = g->t;
    free(g->meters);
    free(g->test);
    free(g);
    if (--t->live == 0 && t->stopping)
        mb_free(t);
}

static void backoff(gateway *g)
{
    g->state = GW_DOWN;
    uv_timer_start(&g->timer, on_timer, g->backoff_ms, 0);
    g->backoff_ms = g->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : g->backoff_ms * 2;
}

static void on_tcp_closed(uv_handle_t *h)
{
    gateway *g = h->data;
    g->tcp_open = false;
    if (!g->removed)
        backoff(g);
    gw_release(g);
}

/* The connection is lost or given up (why: for people, NULL when a meter's problem says it):
 * the reading in progress is missed, and a new connection follows after the backoff. */
static void gw_drop(gateway *g, const char *why)
{
    pw_debug("modbus", "gateway %s:%u: closing (%s)", g->host, g->port, why ? why : "timeout");
    if (g->test) { /* no reconnecting: the test read has its answer */
        char text[TEXT_LEN + 80];
        if (why)
            snprintf(text, sizeof text, "gateway %s:%u: %s", g->host, g->port, why);
        test_end(g, why ? text : NULL);
        return;
    }
    if (why)
        gw_problem(g, why);
    g->in_flight = false;
    g->cur = -1;
    uv_timer_stop(&g->timer);
    if (g->tcp_open && !uv_is_closing((uv_handle_t *)&g->tcp)) {
        g->state = GW_CLOSING;
        uv_close((uv_handle_t *)&g->tcp, on_tcp_closed);
    } else if (!g->tcp_open) {
        backoff(g);
    }
}

static uint32_t gw_timeout(const gateway *g)
{
    uint32_t ms = 0;
    for (size_t i = 0; i < g->n_meters; i++)
        ms = g->meters[i].opts.timeout_ms > ms ? g->meters[i].opts.timeout_ms : ms;
    return ms ? ms : DEFAULT_TIMEOUT_MS;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    gateway *g = h->data;
    buf->base = (char *)g->rbuf + g->rlen;
    buf->len = sizeof g->rbuf - g->rlen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_connected(uv_connect_t *req, int status)
{
    gateway *g = req->handle->data;
    if (status == UV_ECANCELED || g->state != GW_CONNECTING)
        return; /* closed meanwhile */
    if (status < 0) {
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
        g->t->st.tx_errors++;
        gw_drop(g, why);
        return;
    }
    pw_debug("modbus", "gateway %s:%u: connected", g->host, g->port);
    uv_timer_stop(&g->timer);
    g->state = GW_READY;
    g->rlen = 0;
    g->in_flight = false;
    g->cur = -1;
    /* Another gateway or meter may answer at this address now: discover SunSpec again. */
    for (size_t i = 0; i < g->n_meters; i++) {
        meter *m = &g->meters[i];
        if (m->sunspec) {
            m->map = NULL;
            m->discovering = false;
        }
    }
    int rc = uv_read_start((uv_stream_t *)&g->tcp, on_alloc, on_read);
    if (rc != 0) {
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "cannot read: %s", uv_strerror(rc));
        gw_drop(g, why);
        return;
    }
    gw_problem(g, "");
    if (g->test)
        g->test->r.connected = true;
    pump(g);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gateway *g = req->data;
    g->gai_pending = false;
    if (g->removed) {
        uv_freeaddrinfo(res);
        gw_release(g);
        return;
    }
    char why[TEXT_LEN];
    if (status != 0) {
        snprintf(why, sizeof why, "cannot resolve %s: %s", g->host, uv_strerror(status));
        g->t->st.tx_errors++;
        gw_drop(g, why);
        gw_release(g);
        return;
    }
    uv_tcp_init(g->t->env.loop, &g->tcp);
    g->tcp.data = g;
    g->tcp_open = true;
    g->holds++;
    uv_tcp_nodelay(&g->tcp, 1);
    int rc = uv_tcp_connect(&g->conn, &g->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(rc));
        g->t->st.tx_errors++;
        gw_drop(g, why);
    } else {
        g->state = GW_CONNECTING;
        uv_timer_start(&g->timer, on_timer, gw_timeout(g), 0);
    }
    gw_release(g);
}

/* Resolves the gateway's name on a libuv worker (never blocking the loop), then connects. */
static void gw_connect(gateway *g)
{
    char port[8];
    snprintf(port, sizeof port, "%u", g->port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    pw_debug("modbus", "gateway %s:%u: connecting", g->host, g->port);
    g->gai.data = g;
    g->state = GW_RESOLVING;
    int rc = uv_getaddrinfo(g->t->env.loop, &g->gai, on_resolved, g->host, port, &hints);
    if (rc != 0) {
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "cannot resolve %s: %s", g->host, uv_strerror(rc));
        g->t->st.tx_errors++;
        gw_drop(g, why);
        return;
    }
    g->gai_pending = true;
    g->holds++;
    if (g->test)
        uv_timer_start(&g->timer, on_timer, TEST_RESOLVE_MS, 0);
}

/* ---- test reads ---------------------------------------------------------------------------- */

/* The test read on g is over: its answer is the reading test_reading kept, else error, else the
 * meter's problem. Its connection closes; the answer goes out once the timer has closed. */
static void test_end(gateway *g, const char *error)
{
    mb_test *x = g->test;
    if (g->removed)
        return; /* already ended */
    x->r.elapsed_ms = (uint32_t)((uv_hrtime() - x->start_ns) / 1000000u);
    const char *problem = g->n_meters ? g->meters[0].problem : "";
    if (!x->r.ok) {
        pw_strlcpy(x->r.error,
                   error      ? error
                   : *problem ? problem
                              : "the meter gave no reading",
                   sizeof x->r.error);
    }
    pw_debug("modbus", "test read of unit %u at %s:%u: %s (%u ms)",
             g->n_meters ? g->meters[0].unit : 0, g->host, g->port, x->r.ok ? "read" : x->r.error,
             x->r.elapsed_ms);
    if (g->t->test == g)
        g->t->test = NULL;
    g->state = GW_CLOSING;
    g->in_flight = false;
    g->cur = -1;
    gw_remove(g);
}

static void test_reading(gateway *g, meter *m, const pw_modbus_reading *r)
{
    pw_transport_test_result *out = &g->test->r;
    out->ok = true;
    for (size_t l = 0; l < PW_LINES; l++)
        out->line_a[l] = r->has_line[l] ? r->line_a[l] : NAN;
    out->has_serial = r->has_serial;
    out->serial = r->serial;
    out->has_energy = r->has_energy;
    out->energy_wh = r->energy_wh;
    pw_strlcpy(out->map, m->map->title[0] ? m->map->title : m->map->name, sizeof out->map);
}

/* An answer from another unit or for another function: the poller waits for the right one
 * (and times out), a test read says at once what came. */
static void test_wrong_answer(gateway *g, int err)
{
    const meter *m = &g->meters[0];
    char why[TEXT_LEN];
    if (err == PW_MODBUS_E_UNIT)
        snprintf(why, sizeof why,
                 "asked unit %u at %s:%u, the answer came from unit %u: two meters with the same "
                 "address on the bus, or a gateway that rewrites it (refused)",
                 m->unit, g->host, g->port, g->answer_unit);
    else
        snprintf(why, sizeof why,
                 "unit %u at %s:%u answered for another function code than %u (refused)", m->unit,
                 g->host, g->port, g->req.function);
    test_end(g, why);
}

/* ---- requests and answers ----------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    gateway *g = req->handle->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED && g->state == GW_READY) {
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "cannot send: %s", uv_strerror(status));
        gw_drop(g, why);
    }
}

/* Sends req for meter m; the answer timeout starts. Returns 0, or -1 when the request cannot be
 * encoded (the reading is given up) or the connection was dropped. */
static int send_request(gateway *g, meter *m, pw_modbus_request *req, bool discovery)
{
    req->unit = m->unit;
    req->tid = ++g->tid;
    write_req *w = pw_xmalloc(sizeof *w);
    int n = pw_modbus_encode_request(req, w->buf, sizeof w->buf);
    if (n < 0) {
        free(w);
        meter_problem(g, m, "cannot ask unit %u for %u registers at 0x%04x: %s", m->unit,
                      req->count, req->address, pw_modbus_strerror(n));
        return -1;
    }
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&g->tcp, &b, 1, on_written);
    if (rc != 0) {
        free(w);
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "cannot send: %s", uv_strerror(rc));
        gw_drop(g, why);
        return -1;
    }
    g->req = *req;
    g->req_discovery = discovery;
    g->in_flight = true;
    g->t->st.tx++;
    uv_timer_start(&g->timer, on_timer, m->opts.timeout_ms, 0);
    return 0;
}

/* The next read of m's reading: 1 with req filled, 0 when the reading is complete, -1 when it
 * cannot be made (discovery failed). */
static int next_request(gateway *g, meter *m, pw_modbus_request *req, bool *discovery)
{
    *discovery = false;
    if (m->sunspec && !m->map) {
        if (!m->discovering) {
            pw_modbus_sunspec_init(&m->disc);
            m->discovering = true;
        }
        int rc = pw_modbus_sunspec_next(&m->disc, req);
        if (rc > 0) {
            *discovery = true;
            return 1;
        }
        m->discovering = false;
        if (rc < 0) {
            meter_problem(g, m, "SunSpec discovery on unit %u at %s:%u: %s", m->unit, g->host,
                          g->port, m->disc.error);
            return -1;
        }
        m->own = m->disc.map;
        m->map = &m->own;
        if (!g->test)
            pw_info("modbus", "node %s: SunSpec meter model %u at register %u on unit %u at %s:%u",
                    node_id(g->t, m), m->disc.model, m->disc.base, m->unit, g->host, g->port);
        plan(g, m);
    }
    if (m->next_read < m->n_reqs) {
        *req = m->reqs[m->next_read];
        return 1;
    }
    return 0;
}

static const char *line_missing(const meter *m, const pw_modbus_reading *r, size_t *line)
{
    for (size_t l = 0; l < PW_LINES; l++) {
        if (!r->has_line[l] && !(l == 1 && m->opts.derive_l2)) {
            *line = l;
            return m->map->name;
        }
    }
    return NULL;
}

/* All reads of m's reading are in: decode, check the serial, hand it to the core. */
static void finish_reading(gateway *g, meter *m)
{
    mb *t = g->t;
    pw_modbus_reading r;
    int rc = pw_modbus_map_decode(m->map, m->reqs, m->answers, m->n_reqs, &r);
    if (rc != 0) {
        reject(g, "count", "answers that do not cover the registers of the meter's map");
        meter_problem(g, m, "unit %u at %s:%u: answers do not cover map '%s': %s", m->unit, g->host,
                      g->port, m->map->name, pw_modbus_strerror(rc));
        return;
    }
    if (g->test) {
        test_reading(g, m, &r);
        return;
    }
    /* A different meter at the same address must not be taken as the one configured. A serial
     * number of 0 is no identity (a meter not yet programmed, or still starting): not kept. */
    if (r.has_serial && r.serial != 0) {
        if (!m->serial_refused && m->has_serial && r.serial != m->serial) {
            m->serial_refused = true;
            meter_problem(g, m,
                          "unit %u at %s:%u now reports serial number %u instead of %u: a "
                          "different meter? Its readings are refused until the configuration "
                          "is saved again",
                          m->unit, g->host, g->port, r.serial, m->serial);
        }
        if (m->serial_refused) {
            reject(g, "serial_changed", "a meter whose serial number changed");
            return;
        }
        m->has_serial = true;
        m->serial = r.serial;
    }
    double amps[PW_LINES];
    for (size_t l = 0; l < PW_LINES; l++)
        amps[l] = r.has_line[l] ? r.line_a[l] : NAN;
    if (pw_ctl_meter_report(t->env.ctl, m->node, amps, uv_now(t->env.loop)) == 0) {
        t->st.rx_accepted++;
        meter_problem(g, m, NULL);
        return;
    }
    size_t line;
    const char *map = line_missing(m, &r, &line);
    if (map)
        meter_problem(g, m,
                      "map '%s' reads no current for L%zu, so every reading is refused (a "
                      "3-wire IT meter needs derive_l2)",
                      map, line + 1);
    else
        meter_problem(g, m,
                      "unit %u at %s:%u read L1 %.1f A, L2 %.1f A, L3 %.1f A: refused as "
                      "implausible (wrong map or scale?)",
                      m->unit, g->host, g->port, amps[0], amps[1], amps[2]);
}

/* Sends the next request the gateway owes: the next read of the reading in progress, else the
 * first read of the meter most overdue; else arms the timer for the next one due. */
static void pump(gateway *g)
{
    if (g->state != GW_READY || g->in_flight)
        return;
    uint64_t now = uv_now(g->t->env.loop);
    for (;;) {
        if (g->cur < 0) {
            int best = -1;
            for (size_t i = 0; i < g->n_meters; i++) {
                const meter *m = &g->meters[i];
                if ((m->map || m->sunspec) && (best < 0 || m->due_ms < g->meters[best].due_ms))
                    best = (int)i;
            }
            if (best < 0) {
                uv_timer_stop(&g->timer);
                return;
            }
            meter *m = &g->meters[best];
            if (m->due_ms > now) {
                uv_timer_start(&g->timer, on_timer, m->due_ms - now, 0);
                return;
            }
            /* The next slot; one missed by more than an interval is not made up. */
            m->due_ms += m->opts.interval_ms;
            if (m->due_ms <= now)
                m->due_ms = now + m->opts.interval_ms;
            m->next_read = 0;
            g->cur = best;
        }
        meter *m = &g->meters[g->cur];
        pw_modbus_request req;
        bool discovery;
        int rc = next_request(g, m, &req, &discovery);
        if (rc > 0 && send_request(g, m, &req, discovery) == 0)
            return;
        if (g->state != GW_READY)
            return; /* the send dropped the connection */
        if (rc == 0)
            finish_reading(g, m);
        g->cur = -1;
        if (g->test) { /* read once: the reading, or why there is none */
            test_end(g, NULL);
            return;
        }
    }
}

static void on_exception(gateway *g, meter *m, const pw_modbus_answer *a)
{
    const pw_modbus_request *q = &g->req;
    char text[TEXT_LEN];
    snprintf(text, sizeof text,
             "unit %u at %s:%u refused registers 0x%04x-0x%04x (function %u) with exception %u, "
             "%s",
             m->unit, g->host, g->port, q->address, (unsigned)(q->address + q->count - 1),
             q->function, a->exception, pw_modbus_exception_text(a->exception));
    reject(g, "exception", text);
    meter_problem(g, m, "%s", text);
}

/* One complete answer frame, err as the codec judged it. */
static void on_answer(gateway *g, int err, const pw_modbus_answer *a)
{
    mb *t = g->t;
    t->st.rx++;
    if (g->test && (err == PW_MODBUS_E_UNIT || err == PW_MODBUS_E_FUNCTION)) {
        test_wrong_answer(g, err);
        return;
    }
    switch (err) {
    case PW_MODBUS_E_UNIT: /* never a reading: the meter asked for may still answer */
        reject(g, "wrong_unit", "an answer carrying another unit id than asked");
        return;
    case PW_MODBUS_E_TID:
        reject(g, "wrong_tid", "an answer to another request (transaction id)");
        return;
    case PW_MODBUS_E_FUNCTION:
        reject(g, "wrong_function", "an answer for another function code than asked");
        return;
    default:
        break;
    }
    uv_timer_stop(&g->timer);
    g->in_flight = false;
    if (g->cur < 0) { /* asked for a meter the config has since changed */
        pump(g);
        return;
    }
    meter *m = &g->meters[g->cur];
    if (err == 0)
        g->backoff_ms = BACKOFF_MIN_MS;
    /* The gateway's own exceptions say the unit behind it did not answer. */
    if (g->test &&
        (err == 0 || (err == PW_MODBUS_E_EXCEPTION && a->exception != 10 && a->exception != 11)))
        g->test->r.answered = true;
    if (g->req_discovery) {
        pw_modbus_sunspec_feed(&m->disc, err, a);
    } else if (err == 0) {
        m->answers[m->next_read++] = *a;
    } else {
        if (err == PW_MODBUS_E_EXCEPTION) {
            on_exception(g, m, a);
        } else {
            reject(g, "count", "an answer whose byte count does not match the registers asked");
            meter_problem(g, m, "unit %u at %s:%u: %s", m->unit, g->host, g->port,
                          pw_modbus_strerror(err));
        }
        g->cur = -1;
    }
    if (g->test && g->cur < 0) {
        test_end(g, NULL);
        return;
    }
    pump(g);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    gateway *g = s->data;
    if (nread < 0) {
        if (g->state == GW_READY) {
            char why[TEXT_LEN];
            snprintf(why, sizeof why, "connection lost: %s",
                     nread == UV_EOF ? "closed by the gateway" : uv_strerror((int)nread));
            gw_drop(g, why);
        }
        return;
    }
    g->rlen += (size_t)nread;
    while (g->rlen > 0 && g->state == GW_READY) {
        if (!g->in_flight) {
            reject(g, "unsolicited", "bytes from a gateway that was asked nothing");
            gw_drop(g, "sent bytes nobody asked for: reconnecting to stay in step");
            return;
        }
        pw_modbus_answer a;
        int err = 0;
        int rc = pw_modbus_parse_answer(g->rbuf, g->rlen, &g->req, &a, &err);
        if (rc == PW_MODBUS_AGAIN)
            return;
        if (rc < 0) {
            reject(g, "protocol", "bytes that are no Modbus TCP frame");
            gw_drop(g, "sent bytes that are no Modbus TCP answer: reconnecting");
            return;
        }
        g->answer_unit = g->rbuf[6]; /* MBAP: tid, protocol, length, unit */
        g->rlen -= (size_t)rc;
        memmove(g->rbuf, g->rbuf + rc, g->rlen);
        on_answer(g, err, &a);
    }
}

static void on_timer(uv_timer_t *timer)
{
    gateway *g = timer->data;
    mb *t = g->t;
    switch (g->state) {
    case GW_DOWN:
        gw_connect(g);
        break;
    case GW_RESOLVING: { /* armed for a test read only */
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "cannot resolve %s within %u ms", g->host, TEST_RESOLVE_MS);
        gw_drop(g, why);
        break;
    }
    case GW_CONNECTING: {
        char why[TEXT_LEN];
        snprintf(why, sizeof why, "no connection within %u ms", gw_timeout(g));
        t->st.tx_errors++;
        gw_drop(g, why);
        break;
    }
    case GW_READY:
        if (!g->in_flight) {
            pump(g);
            break;
        }
        /* A late answer would desynchronise the stream: start a new one. */
        t->st.tx_errors++;
        if (g->cur >= 0) {
            meter *m = &g->meters[g->cur];
            meter_problem(g, m, "unit %u at %s:%u did not answer within %u ms", m->unit, g->host,
                          g->port, m->opts.timeout_ms);
        }
        gw_drop(g, NULL);
        break;
    default:
        break;
    }
}

/* ---- configuration ------------------------------------------------------------------------ */

static gateway *gw_find(mb *t, const char *host, uint16_t port)
{
    for (gateway *g = t->gws; g; g = g->next)
        if (g->port == port && strcasecmp(g->host, host) == 0)
            return g;
    return NULL;
}

/* A gateway with its timer, not yet in any list. */
static gateway *gw_alloc(mb *t, const char *host, uint16_t port)
{
    gateway *g = pw_xcalloc(1, sizeof *g);
    g->t = t;
    pw_strlcpy(g->host, host, sizeof g->host);
    g->port = port;
    g->cur = -1;
    g->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(t->env.loop, &g->timer);
    g->timer.data = g;
    g->holds = 1;
    t->live++;
    return g;
}

static gateway *gw_new(mb *t, const char *host, uint16_t port)
{
    gateway *g = gw_alloc(t, host, port);
    g->next = t->gws;
    t->gws = g;
    return g;
}

static void on_timer_closed(uv_handle_t *h)
{
    gateway *g = h->data;
    /* A test read answers once its timer has closed: never from inside test_read, and once. */
    if (g->test && g->test->done) {
        g->test->done(g->test->ud, &g->test->r);
        g->test->done = NULL;
    }
    gw_release(g);
}

/* Closes everything of g; it is freed when the last handle and request are done. */
static void gw_remove(gateway *g)
{
    g->removed = true;
    uv_timer_stop(&g->timer);
    uv_close((uv_handle_t *)&g->timer, on_timer_closed);
    if (g->tcp_open && !uv_is_closing((uv_handle_t *)&g->tcp))
        uv_close((uv_handle_t *)&g->tcp, on_tcp_closed);
    if (g->gai_pending)
        uv_cancel((uv_req_t *)&g->gai);
}

/* The same meter as far as reading it goes (its timing may change). */
static bool same_reading(const meter *m, uint8_t unit, const pw_cfg_meter_opts *o)
{
    const pw_cfg_meter_opts *p = &m->opts;
    return m->unit == unit && strcmp(p->map, o->map) == 0 &&
           (strcmp(o->map, "generic") != 0 ||
            (p->function == o->function && p->low_word_first == o->low_word_first &&
             memcmp(p->line, o->line, sizeof p->line) == 0));
}

static pw_cfg_meter_opts with_defaults(pw_cfg_meter_opts o)
{
    if (!o.map[0])
        pw_strlcpy(o.map, "sdm630", sizeof o.map);
    if (!o.interval_ms)
        o.interval_ms = DEFAULT_INTERVAL_MS;
    if (!o.timeout_ms)
        o.timeout_ms = DEFAULT_TIMEOUT_MS;
    return o;
}

static pw_cfg_meter_opts meter_opts(const pw_cfg *cfg, size_t n)
{
    return with_defaults(cfg->meter_opts ? cfg->meter_opts[n] : (pw_cfg_meter_opts){0});
}

/* g's meters from cfg; meters that stay keep their schedule, discovered map and problem, but
 * not their serial: saving the config is how an installer accepts a replaced meter. */
static void gw_set_meters(gateway *g, const pw_cfg *cfg, uint64_t now)
{
    size_t n = 0;
    for (size_t k = 0; k < cfg->n_nodes; k++) {
        const pw_cfg_link *l = &cfg->meters[k];
        n += l->kind == PW_CFG_LINK_MODBUS && l->port == g->port &&
             strcasecmp(l->host, g->host) == 0;
    }
    meter *old = g->meters;
    size_t n_old = g->n_meters;
    g->meters = pw_xcalloc(n + 1, sizeof *g->meters);
    g->n_meters = 0;
    for (size_t k = 0; k < cfg->n_nodes; k++) {
        const pw_cfg_link *l = &cfg->meters[k];
        if (l->kind != PW_CFG_LINK_MODBUS || l->port != g->port ||
            strcasecmp(l->host, g->host) != 0)
            continue;
        meter *m = &g->meters[g->n_meters++];
        pw_cfg_meter_opts o = meter_opts(cfg, k);
        const meter *prev = NULL;
        for (size_t j = 0; j < n_old && !prev; j++)
            if (same_reading(&old[j], l->unit, &o))
                prev = &old[j];
        if (prev) {
            *m = *prev;
            if (m->map == &prev->own)
                m->map = &m->own;
            if (m->serial_refused)
                m->problem[0] = '\0';
            m->has_serial = m->serial_refused = false;
        } else {
            m->unit = l->unit;
            m->due_ms = now;
        }
        m->node = k;
        m->opts = o;
        m->discovering = false; /* an answer to a discovery read in flight is dropped */
        if (!prev)
            setup_map(g, m);
    }
    /* A reading in progress belongs to the old list: its answer is dropped. */
    g->cur = -1;
    free(old);
}

static void mb_reconfigure(pw_transport *tp, const pw_cfg *cfg)
{
    mb *t = (mb *)tp;
    t->cfg = cfg;
    uint64_t now = uv_now(t->env.loop);
    for (gateway *g = t->gws; g; g = g->next)
        g->keep = false;
    for (size_t k = 0; k < cfg->n_nodes; k++) {
        const pw_cfg_link *l = &cfg->meters[k];
        if (l->kind != PW_CFG_LINK_MODBUS)
            continue;
        gateway *g = gw_find(t, l->host, l->port);
        if (!g) {
            g = gw_new(t, l->host, l->port);
            g->keep = true;
            gw_set_meters(g, cfg, now);
            gw_connect(g);
        } else if (!g->keep) {
            g->keep = true;
            gw_set_meters(g, cfg, now);
        }
    }
    for (gateway **p = &t->gws; *p;) {
        gateway *g = *p;
        if (g->keep) {
            p = &g->next;
            continue;
        }
        *p = g->next;
        pw_info("modbus", "gateway %s:%u is no longer configured", g->host, g->port);
        gw_remove(g);
    }
    for (gateway *g = t->gws; g; g = g->next)
        pump(g); /* new meters are due now */
}

/* ---- ops ---------------------------------------------------------------------------------- */

/* A connection of its own to the gateway, one reading (SunSpec discovered first), closed. */
static int mb_test_read(pw_transport *tp, const pw_cfg_link *link, const pw_cfg_meter_opts *opts,
                        pw_transport_test_done done, void *ud)
{
    mb *t = (mb *)tp;
    if (t->test || t->stopping)
        return PW_TRANSPORT_TEST_BUSY;
    gateway *g = gw_alloc(t, link->host, link->port);
    g->test = pw_xcalloc(1, sizeof *g->test);
    g->test->done = done;
    g->test->ud = ud;
    g->test->start_ns = uv_hrtime();
    for (size_t l = 0; l < PW_LINES; l++)
        g->test->r.line_a[l] = NAN;
    g->meters = pw_xcalloc(1, sizeof *g->meters);
    g->n_meters = 1;
    meter *m = &g->meters[0];
    m->node = SIZE_MAX;
    m->unit = link->unit;
    m->opts = with_defaults(*opts);
    m->due_ms = uv_now(t->env.loop);
    t->test = g;
    setup_map(g, m);
    if (!m->map && !m->sunspec)
        test_end(g, NULL); /* the map's problem; answered once the timer has closed */
    else
        gw_connect(g);
    return 0;
}

static int mb_start(pw_transport *tp, const pw_transport_env *env, char *err, size_t err_size)
{
    (void)err;
    (void)err_size;
    mb *t = (mb *)tp;
    t->env = *env;
    mb_reconfigure(tp, env->cfg);
    size_t n = 0;
    for (gateway *g = t->gws; g; g = g->next)
        n += g->n_meters;
    if (n)
        pw_info("modbus", "%zu meters behind %zu gateways", n, t->live);
    return 0;
}

static void mb_timing(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out)
{
    (void)t;
    (void)cfg;
    *out = (pw_bal_timing){0}; /* no chargers speak it */
}

static void mb_stats(const pw_transport *tp, pw_transport_stats *out)
{
    const mb *t = (const mb *)tp;
    *out = t->st;
    out->react = NULL; /* the allocation leaves through another transport: see bench/ */
}

/* The gateway's problem while it is not connected, else the meter's own. */
static int mb_meter_problem(const pw_transport *tp, size_t node, char *out, size_t out_size)
{
    const mb *t = (const mb *)tp;
    for (const gateway *g = t->gws; g; g = g->next) {
        for (size_t i = 0; i < g->n_meters; i++) {
            const meter *m = &g->meters[i];
            if (m->node != node)
                continue;
            if (g->state != GW_READY && g->problem[0])
                snprintf(out, out_size, "gateway %s:%u: %s", g->host, g->port, g->problem);
            else if (m->problem[0])
                snprintf(out, out_size, "%s", m->problem);
            else
                return 0;
            return 1;
        }
    }
    return 0;
}

static void mb_stop(pw_transport *tp)
{
    mb *t = (mb *)tp;
    if (t->test)
        test_end(t->test, "the appliance is shutting down");
    t->stopping = true;
    while (t->gws) {
        gateway *g = t->gws;
        t->gws = g->next;
        gw_remove(g);
    }
    if (t->live == 0)
        mb_free(t);
}

static const pw_transport_ops modbus_ops = {
    .name = "modbus",
    .kind = PW_CFG_LINK_MODBUS,
    .start = mb_start,
    .timing = mb_timing,
    .reconfigure = mb_reconfigure,
    .stats = mb_stats,
    .meter_problem = mb_meter_problem,
    .test_read = mb_test_read,
    .stop = mb_stop,
};

pw_transport *pw_tr_modbus_new(void)
{
    mb *t = pw_xcalloc(1, sizeof *t);
    t->super.ops = &modbus_ops;
    return &t->super;
}
