/* The simulator's OCPP 1.6J charge points on the loop: chargers whose config link is ocpp are
 * grouped by charge point identity, each charge point is one WebSocket client (web/, on the
 * simulator's libuv loop) that connects to the central system, reconnects with a backoff of
 * 1 s growing to 5 s, and runs its conversation in pw_simocpp; the composite limit of each
 * connector's profiles is applied to the model, whose car follows it after its own delay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_simocpp.h"
#include "pw_util.h"
#include "pw_web_ws.h"
#include "sim_int.h"

#define OCPP_BACKOFF_MIN_MS 1000
#define OCPP_BACKOFF_MAX_MS 5000
#define OCPP_LEASE_MS       UINT32_MAX /* profiles have no lease: applied "for ever" ... */
#define OCPP_RENEW_MS       86400000u  /* ... and renewed a simulated day before it ends */

typedef struct sim_ocpp_cp {
    sim_ocpp *o;
    char id[PW_CFG_CP_ID_LEN];
    pw_simocpp *sm;
    size_t n_connectors;
    int charger[PW_SIMOCPP_MAX_CONNECTORS]; /* connector c is charger[c - 1]; -1 = none */
    bool applied[PW_SIMOCPP_MAX_CONNECTORS];
    pw_simocpp_limit last[PW_SIMOCPP_MAX_CONNECTORS]; /* what the model was last given */
    char url[512];
    const char *password; /* borrowed from argv; NULL = no HTTP Basic */
    pw_web_ws *ws;        /* the open connection; NULL otherwise */
    bool connecting;
    bool failed_once;  /* a failure was logged; later ones are debug until it opens */
    uint64_t retry_at; /* loop time of the next connect attempt */
    uint32_t backoff_ms;
} sim_ocpp_cp;

struct sim_ocpp {
    sim_app *app;
    pw_web *web;
    sim_ocpp_cp *cps;
    size_t n_cps;
    bool closing;
};

/* The value given for cp_id in a repeatable CP_ID=VALUE option, or NULL. */
static const char *kv_find(const sim_kv *kv, size_t n, const char *cp_id)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(cp_id) == kv[i].key_len && strncmp(kv[i].key, cp_id, kv[i].key_len) == 0)
            return kv[i].value;
    }
    return NULL;
}

/* A charge point inside one of its --ocpp-drop windows (simulated time): no connection. */
static bool dropped(const sim_app *app, const sim_ocpp_cp *cp)
{
    for (size_t i = 0; i < app->o.n_ocpp_drops; i++) {
        const sim_kv *kv = &app->o.ocpp_drops[i];
        pw_sim_outage w;
        if (strlen(cp->id) == kv->key_len && strncmp(kv->key, cp->id, kv->key_len) == 0 &&
            pw_sim_outage_parse(kv->value, 0, &w) == 0 &&
            pw_sim_outage_active(&w, 1, 0, pw_sim_now(app->model)))
            return true;
    }
    return false;
}

/* ---- the connection -------------------------------------------------------------------------- */

static void on_send(void *ud, const char *text, size_t len)
{
    sim_ocpp_cp *cp = ud;
    pw_debug(SIM_COMP, "ocpp %s > %.*s", cp->id, (int)len, text);
    if (cp->ws && pw_web_ws_send(cp->ws, text, len) != 0)
        pw_warn(SIM_COMP, "ocpp %s: cannot send; the connection is closing", cp->id);
}

static void on_open(void *ud, void *conn_ud, pw_web_ws *ws)
{
    (void)ud;
    sim_ocpp_cp *cp = conn_ud;
    sim_app *app = cp->o->app;
    cp->ws = ws;
    cp->connecting = false;
    cp->failed_once = false;
    cp->backoff_ms = OCPP_BACKOFF_MIN_MS;
    pw_info(SIM_COMP, "ocpp %s: connected to %s", cp->id, cp->url);
    pw_simocpp_connected(cp->sm, uv_now(&app->loop), pw_wall_ms());
}

static void apply_limits(sim_ocpp_cp *cp);

static void on_message(void *ud, void *conn_ud, const char *text, size_t len)
{
    (void)ud;
    sim_ocpp_cp *cp = conn_ud;
    sim_app *app = cp->o->app;
    pw_debug(SIM_COMP, "ocpp %s < %.*s", cp->id, (int)len, text);
    pw_simocpp_receive(cp->sm, text, len, uv_now(&app->loop), pw_wall_ms());
    apply_limits(cp); /* a new profile takes effect now, not at the next tick */
}

static void on_closed(void *ud, void *conn_ud, const char *why)
{
    (void)ud;
    sim_ocpp_cp *cp = conn_ud;
    sim_app *app = cp->o->app;
    bool was_open = cp->ws != NULL;
    cp->ws = NULL;
    cp->connecting = false;
    pw_simocpp_disconnected(cp->sm);
    if (cp->o->closing)
        return;
    cp->retry_at = uv_now(&app->loop) + cp->backoff_ms;
    if (was_open || !cp->failed_once)
        pw_warn(SIM_COMP, "ocpp %s: %s %s (%s); again in %.0f s", cp->id,
                was_open ? "connection to" : "cannot connect to", cp->url, why,
                cp->backoff_ms / 1000.0);
    else
        pw_debug(SIM_COMP, "ocpp %s: cannot connect (%s)", cp->id, why);
    cp->failed_once = true;
    cp->backoff_ms =
        cp->backoff_ms * 2 > OCPP_BACKOFF_MAX_MS ? OCPP_BACKOFF_MAX_MS : cp->backoff_ms * 2;
}

static void try_connect(sim_ocpp_cp *cp)
{
    sim_app *app = cp->o->app;
    char err[256];
    pw_web_ws_client_opts co = {
        .url = cp->url,
        .subprotocol = PW_OCPP_SUBPROTOCOL,
        .user = cp->password ? cp->id : NULL,
        .password = cp->password,
        .ca_file = app->o.ocpp_ca,
        .handlers = {.ud = cp->o, .open = on_open, .message = on_message, .closed = on_closed},
        .conn_ud = cp,
    };
    cp->connecting = true;
    if (pw_web_ws_connect(cp->o->web, &co, err, sizeof(err)) != 0) {
        cp->connecting = false;
        cp->retry_at = uv_now(&app->loop) + OCPP_BACKOFF_MAX_MS;
        pw_warn(SIM_COMP, "ocpp %s: %s", cp->id, err);
    }
}

/* ---- the model's side ------------------------------------------------------------------------ */

/* Gives the model each connector's composite limit when it changed (and renews the lease the
 * model's chargers have, which an OCPP charger does not). */
static void apply_limits(sim_ocpp_cp *cp)
{
    sim_app *app = cp->o->app;
    uint64_t sim_ms = pw_sim_now(app->model);
    int64_t wall = pw_wall_ms();
    for (size_t c = 1; c <= cp->n_connectors; c++) {
        int ci = cp->charger[c - 1];
        if (ci < 0)
            continue;
        pw_simocpp_limit l;
        pw_sim_charger_view v;
        pw_simocpp_limit_at(cp->sm, (int)c, wall, &l);
        pw_sim_charger(app->model, (size_t)ci, &v);
        const pw_simocpp_limit *last = &cp->last[c - 1];
        bool renew = v.lease != PW_SIM_LEASE_ACTIVE || v.lease_until_ms < sim_ms + OCPP_RENEW_MS;
        if (cp->applied[c - 1] && !renew && last->limit_a == l.limit_a &&
            last->phases == l.phases && last->profile_id == l.profile_id)
            continue;
        /* The profile in force stands where a LAN charger's allocation sequence would. */
        pw_sim_apply(app->model, (size_t)ci, l.limit_a, l.phases, OCPP_LEASE_MS,
                     (uint32_t)(l.profile_id > 0 ? l.profile_id : 0), sim_ms);
        if (cp->applied[c - 1] && last->limit_a != l.limit_a)
            pw_debug(SIM_COMP, "ocpp %s/%zu: limit %.1f -> %.1f A (profile %d)", cp->id, c,
                     last->limit_a, l.limit_a, l.profile_id);
        cp->last[c - 1] = l;
        cp->applied[c - 1] = true;
    }
}

void sim_ocpp_tick(sim_app *app)
{
    sim_ocpp *o = app->ocpp;
    if (!o || o->closing)
        return;
    uint64_t now = uv_now(&app->loop);
    int64_t wall = pw_wall_ms();
    for (size_t i = 0; i < o->n_cps; i++) {
        sim_ocpp_cp *cp = &o->cps[i];
        if (dropped(app, cp)) {
            if (cp->ws) {
                pw_info(SIM_COMP, "ocpp %s: connection lost (--ocpp-drop)", cp->id);
                pw_web_ws_close(cp->ws, 1001, "connection lost");
            }
        } else if (!cp->ws && !cp->connecting && now >= cp->retry_at) {
            try_connect(cp);
        }
        for (size_t c = 1; c <= cp->n_connectors; c++) {
            int ci = cp->charger[c - 1];
            if (ci < 0)
                continue;
            pw_sim_charger_view v;
            pw_sim_charger(app->model, (size_t)ci, &v);
            pw_simocpp_view sv = {.session_id = v.car >= 0 ? v.session_id : 0,
                                  .charging = v.iec == PW_SIM_IEC_C,
                                  .offered_a = v.offered_a,
                                  .energy_wh = v.energy_wh};
            memcpy(sv.current_a, v.current_a, sizeof(sv.current_a));
            pw_simocpp_update(cp->sm, (int)c, &sv, now, wall);
        }
        if (pw_simocpp_next_deadline(cp->sm) <= now)
            pw_simocpp_poll(cp->sm, now, wall);
        apply_limits(cp);
    }
}

/* ---- setting up ------------------------------------------------------------------------------ */

/* The URL the charge points' identities are appended to. Returns 0 or -1 (logged). */
static int base_url(const sim_app *app, char *out, size_t size)
{
    const pw_cfg_ocpp *oc = &app->cfg->ocpp;
    if (app->o.ocpp_url) {
        pw_strlcpy(out, app->o.ocpp_url, size);
        return 0;
    }
    if (oc->listen_port == 0) {
        pw_error(SIM_COMP, "the config has OCPP chargers but no OCPP central system "
                           "(ocpp.listen); give --ocpp-url");
        return -1;
    }
    /* A central system listening on every address is reached on loopback. */
    const char *host = !oc->listen_addr[0] || strcmp(oc->listen_addr, "0.0.0.0") == 0
                           ? "127.0.0.1"
                           : oc->listen_addr;
    snprintf(out, size, "%s://%s:%u/ocpp/", oc->tls ? "wss" : "ws", host, oc->listen_port);
    return 0;
}

/* The idTags a charger's sessions use in turn: the config's tags if it lists any (so that a
 * central system answering from its tag list accepts them), else made from the charger's id. */
static void charger_tags(const sim_app *app, size_t ci, pw_simocpp_connector_cfg *cc)
{
    for (size_t k = 0; k < 3; k++) {
        if (app->cfg->n_tags > 0)
            pw_strlcpy(cc->tags[k], app->cfg->tags[(ci * 3 + k) % app->cfg->n_tags].id,
                       sizeof(cc->tags[k]));
        else
            snprintf(cc->tags[k], sizeof(cc->tags[k]), "%.16s-%zu", app->cfg->chargers[ci].id,
                     k + 1);
    }
}

static sim_ocpp_cp *cp_find(sim_ocpp *o, const char *id)
{
    for (size_t i = 0; i < o->n_cps; i++) {
        if (strcmp(o->cps[i].id, id) == 0)
            return &o->cps[i];
    }
    return NULL;
}

/* Groups the OCPP chargers by charge point. Returns 0 or -1 (logged). */
static int group_chargers(sim_ocpp *o)
{
    const pw_cfg *cfg = o->app->cfg;
    o->cps = pw_xcalloc(cfg->n_chargers, sizeof(*o->cps));
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_cfg_link *l = &cfg->charger_links[i];
        if (l->kind != PW_CFG_LINK_OCPP)
            continue;
        if (l->connector < 1 || l->connector > PW_SIMOCPP_MAX_CONNECTORS) {
            pw_error(SIM_COMP, "charger '%s': OCPP connector %u is not 1..%d", cfg->chargers[i].id,
                     l->connector, PW_SIMOCPP_MAX_CONNECTORS);
            return -1;
        }
        sim_ocpp_cp *cp = cp_find(o, l->cp_id);
        if (!cp) {
            cp = &o->cps[o->n_cps++];
            cp->o = o;
            pw_strlcpy(cp->id, l->cp_id, sizeof(cp->id));
            for (size_t c = 0; c < PW_SIMOCPP_MAX_CONNECTORS; c++)
                cp->charger[c] = -1;
        }
        if (cp->charger[l->connector - 1] >= 0) {
            pw_error(SIM_COMP, "charge point %s connector %u is assigned twice", cp->id,
                     l->connector);
            return -1;
        }
        cp->charger[l->connector - 1] = (int)i;
        if (l->connector > cp->n_connectors)
            cp->n_connectors = l->connector;
    }
    return 0;
}

static int make_charge_point(sim_ocpp *o, sim_ocpp_cp *cp, const char *base)
{
    sim_app *app = o->app;
    pw_simocpp_opts so;
    memset(&so, 0, sizeof(so));
    pw_strlcpy(so.cp_id, cp->id, sizeof(so.cp_id));
    const char *quirk = kv_find(app->o.ocpp_quirks, app->o.n_ocpp_quirks, cp->id);
    if (quirk && pw_simocpp_quirk_parse(quirk, &so.quirk) != 0) {
        pw_error(SIM_COMP, "--ocpp-quirk %s=%s: not a quirk mode", cp->id, quirk);
        return -1;
    }
    so.n_connectors = cp->n_connectors;
    for (size_t c = 0; c < cp->n_connectors; c++) {
        pw_simocpp_connector_cfg *cc = &so.connectors[c];
        int ci = cp->charger[c];
        if (ci < 0)
            continue;
        const pw_bal_charger_spec *spec = &app->cfg->chargers[ci];
        cc->present = true;
        cc->max_a = spec->max_a;
        memcpy(cc->wiring, spec->wiring, sizeof(cc->wiring));
        cc->phase_ln = ci % 2 == 1; /* half the chargers say "L1-N" */
        charger_tags(app, (size_t)ci, cc);
    }
    if (snprintf(cp->url, sizeof(cp->url), "%s%s", base, cp->id) >= (int)sizeof(cp->url)) {
        pw_error(SIM_COMP, "--ocpp-url: too long");
        return -1;
    }
    cp->password = kv_find(app->o.ocpp_passwords, app->o.n_ocpp_passwords, cp->id);
    cp->backoff_ms = OCPP_BACKOFF_MIN_MS;
    cp->retry_at = uv_now(&app->loop);
    pw_simocpp_sink sink = {.ud = cp, .send = on_send};
    cp->sm = pw_simocpp_new(&so, &sink);
    pw_info(SIM_COMP, "ocpp %s: %zu connector%s, quirk %s, %s", cp->id, cp->n_connectors,
            cp->n_connectors == 1 ? "" : "s", pw_simocpp_quirk_name(so.quirk), cp->url);
    return 0;
}

/* Options naming a charge point the config does not have are probably typing mistakes. */
static void warn_unknown(sim_ocpp *o, const sim_kv *kv, size_t n, const char *opt)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < o->n_cps && !found; k++)
            found = strlen(o->cps[k].id) == kv[i].key_len &&
                    strncmp(o->cps[k].id, kv[i].key, kv[i].key_len) == 0;
        if (!found)
            pw_warn(SIM_COMP, "%s: no OCPP charge point '%.*s' in the config", opt,
                    (int)kv[i].key_len, kv[i].key);
    }
}

int sim_ocpp_start(sim_app *app)
{
    char base[400], err[256];
    sim_ocpp *o = pw_xcalloc(1, sizeof(*o));
    o->app = app;
    app->ocpp = o;
    if (group_chargers(o) != 0)
        return -1;
    warn_unknown(o, app->o.ocpp_quirks, app->o.n_ocpp_quirks, "--ocpp-quirk");
    warn_unknown(o, app->o.ocpp_passwords, app->o.n_ocpp_passwords, "--ocpp-password");
    if (o->n_cps == 0)
        return 0;
    if (base_url(app, base, sizeof(base)) != 0)
        return -1;
    for (size_t i = 0; i < o->n_cps; i++) {
        if (make_charge_point(o, &o->cps[i], base) != 0)
            return -1;
    }
    if (pw_web_new_bare(&o->web, &app->loop, err, sizeof(err)) != 0) {
        pw_error(SIM_COMP, "ocpp: %s", err);
        return -1;
    }
    /* No profile yet: every OCPP charger offers its maximum, not a LAN charger's failsafe. */
    for (size_t i = 0; i < o->n_cps; i++)
        apply_limits(&o->cps[i]);
    return 0;
}

void sim_ocpp_close(sim_app *app)
{
    sim_ocpp *o = app->ocpp;
    if (!o || o->closing)
        return;
    o->closing = true;
    if (o->web)
        pw_web_close(o->web, NULL, NULL); /* each connection's closed callback follows */
    o->web = NULL;
}

void sim_ocpp_free(sim_app *app)
{
    sim_ocpp *o = app->ocpp;
    if (!o)
        return;
    for (size_t i = 0; i < o->n_cps; i++)
        pw_simocpp_free(o->cps[i].sm);
    free(o->cps);
    free(o);
    app->ocpp = NULL;
}
