/* The OCPP 1.6J transport: phasewise as the central system of charge points that connect over
 * WebSocket (web/pw_web_ws.h). Each connection runs one pw_ocpp_cp, the pure conversation of
 * ocpp/; this file matches identities to the config's chargers, checks passwords at the
 * upgrade, turns connector states into core reports and hands the core's limits over.
 *
 * As a local controller (ocpp.upstream.url set) it also opens, for each connected assigned
 * charge point, a WebSocket client to the operator's CSMS under the charge point's identity,
 * and lets the pure relay (ocpp/pw_ocpp_relay.h, one per charge point id, kept across its
 * reconnects) decide what goes up, what comes down and which CSMS profile becomes a cap in the
 * core. The upstream reconnects with a backoff and never holds local control up. What each relay
 * must not lose in a restart is kept in the history database (ocpp_keep.h); frames for a charge
 * point wait the moment it takes to write down the calls they answer. */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocpp_keep.h"
#include "pw_ocpp_cp.h"
#include "pw_ocpp_relay.h"
#include "pw_transport.h"
#include "pw_util.h"
#include "pw_web_ws.h"

#define MAX_UNASSIGNED_CONNS 64 /* charge points not in the config connected at once */

/* A charge point the config names, with the chargers on its connectors; sorted by id. */
typedef struct station {
    char id[PW_CFG_CP_ID_LEN];
    size_t n;
    int connector[PW_OCPP_MAX_CONNECTORS];
    uint32_t charger[PW_OCPP_MAX_CONNECTORS];
    struct conn *live;
} station;

/* The relay of one charge point id (local controller), kept across its connections. */
typedef struct rel {
    struct ocpp *o;
    char id[PW_CFG_CP_ID_LEN];
    pw_ocpp_relay *r;
    struct conn *live;   /* the charge point's connection now, or NULL */
    uint64_t queue_full; /* calls lost to the relay's full queue */
    struct rel *next;
} rel;

/* One upstream client connection; freed in its closed callback (it may outlive its conn). */
typedef struct upl {
    struct conn *c; /* NULL once the charge point's connection is gone */
    pw_web_ws *ws;
    bool open;
} upl;

/* A frame for the charge point waiting until the changes made before it are written. */
typedef struct held {
    char *text;
    size_t len;
    uint64_t after; /* pw_ocpp_keep_queued when it was sent */
} held;

/* One WebSocket connection and its conversation. */
typedef struct conn {
    struct ocpp *o;
    pw_web_ws *ws;
    pw_ocpp_cp *cp;
    rel *rel;               /* local controller: the relay; NULL when there is no upstream */
    upl *up;                /* the upstream client now, or NULL (waiting for up_retry_at) */
    uint64_t up_retry_at;   /* when to connect upstream again */
    uint32_t up_backoff_ms; /* doubles per failure, 1 s .. 60 s */
    char up_url[320];       /* the URL the upstream client uses */
    char up_why[160];       /* why the upstream is down, for the state document */
    char id[PW_CFG_CP_ID_LEN];
    char address[80]; /* "charge point CP-17 (127.0.0.1)" */
    station *st;      /* NULL: not in the config (unassigned) */
    uint64_t reported_ms;
    held *held; /* in order */
    size_t n_held, cap_held;
    struct conn *prev, *next;
} conn;

typedef struct ocpp {
    pw_transport super;
    pw_transport_env env;
    const pw_cfg *cfg;
    pw_web_ws_ep *ep;
    station *stations;
    size_t n_stations;
    conn *conns;
    size_t n_unassigned;
    uv_timer_t timer;
    bool timer_open;
    pw_transport_stats st;
    uint64_t tx_seq;    /* transaction ids, unique over every charge point */
    rel *relays;        /* local controller: one per charge point id seen */
    pw_ocpp_keep *keep; /* what the relays keep across a restart; NULL: nothing is */
} ocpp;

static int station_cmp(const void *a, const void *b)
{
    return strcmp(((const station *)a)->id, ((const station *)b)->id);
}

static station *station_find(const ocpp *o, const char *id)
{
    station key;
    pw_strlcpy(key.id, id, sizeof key.id);
    return o->n_stations ? bsearch(&key, o->stations, o->n_stations, sizeof key, station_cmp)
                         : NULL;
}

/* The config's wiring as the rotation a charge point reports: terminal L1 on grid line 1 is R. */
static void wiring_rotation(const uint8_t wiring[PW_LINES], char out[4])
{
    static const char letter[] = "?RST";
    out[0] = '\0';
    if (!wiring[1] || !wiring[2])
        return;
    for (size_t t = 0; t < PW_LINES; t++)
        out[t] = letter[wiring[t] <= 3 ? wiring[t] : 0];
    out[3] = '\0';
}

static void cp_opts(ocpp *o, const station *s, pw_ocpp_cp_opts *out)
{
    const pw_cfg *cfg = o->cfg;
    pw_ocpp_cp_default_opts(out);
    out->tx_seq = &o->tx_seq;
    out->meter_interval_s = cfg->ocpp.meter_interval_s;
    out->heartbeat_s = cfg->ocpp.heartbeat_s;
    out->min_interval_ms = cfg->ocpp.min_interval_s * 1000u;
    out->daily_writes = cfg->ocpp.daily_writes;
    if (!s)
        return; /* unassigned: no connector may be given current */
    const pw_cfg_ocpp_cp *cc = pw_cfg_ocpp_cp_find(cfg, s->id);
    if (cc && cc->quirks[0])
        out->quirks = cc->quirks; /* borrowed: opts are copied by the state machine */
    for (size_t k = 0; k < s->n; k++) {
        const pw_bal_charger_spec *ch = &cfg->chargers[s->charger[k]];
        pw_ocpp_connector_cfg *c = &out->connectors[out->n_connectors++];
        /* What it may still apply from an earlier connection: the offer last reported; unknown
         * (its maximum) after a restart of phasewise. */
        const pw_ctl_charger_state *st = pw_ctl_charger(o->env.ctl, s->charger[k]);
        *c = (pw_ocpp_connector_cfg){.connector = s->connector[k],
                                     .min_a = ch->min_a,
                                     .max_a = ch->max_a,
                                     .failsafe_a = ch->failsafe_a,
                                     .can_switch_phases = ch->can_switch_phases,
                                     .prior_a = st && st->has_report ? st->report.offered_a : -1};
        wiring_rotation(ch->wiring, c->rotation);
    }
}

/* ---- reports to the core --------------------------------------------------------------------- */

static void to_report(const pw_ocpp_evse *e, pw_ctl_report *r)
{
    static const uint8_t pilot[] = {
        [PW_OCPP_AVAILABLE] = PW_CTL_PILOT_A,    [PW_OCPP_PREPARING] = PW_CTL_PILOT_B,
        [PW_OCPP_CHARGING] = PW_CTL_PILOT_C,     [PW_OCPP_SUSPENDED_EVSE] = PW_CTL_PILOT_B,
        [PW_OCPP_SUSPENDED_EV] = PW_CTL_PILOT_B, [PW_OCPP_FINISHING] = PW_CTL_PILOT_B,
        [PW_OCPP_RESERVED] = PW_CTL_PILOT_A,     [PW_OCPP_UNAVAILABLE] = PW_CTL_PILOT_A,
        [PW_OCPP_FAULTED] = PW_CTL_PILOT_F,
    };
    *r = (pw_ctl_report){
        .pilot = (size_t)e->status < PW_ARRAY_LEN(pilot) ? pilot[e->status] : PW_CTL_PILOT_F,
        .ev_suspended = e->status == PW_OCPP_SUSPENDED_EV     ? 1
                        : e->status == PW_OCPP_SUSPENDED_EVSE ? 0
                        : e->status == PW_OCPP_CHARGING       ? 0
                                                              : -1,
        .offered_a = e->offered_a,
        .phases = e->phases,
        .energy_wh = e->energy_wh == PW_OCPP_ENERGY_UNKNOWN ? PW_CTL_ENERGY_UNKNOWN : e->energy_wh,
    };
    if (e->has_current)
        memcpy(r->current_a, e->current_a, sizeof r->current_a);
    pw_strlcpy(r->session_ref, e->tx_id, sizeof r->session_ref);
    pw_strlcpy(r->id_tag, e->id_tag, sizeof r->id_tag);
}

static int charger_of(const conn *c, int connector)
{
    if (!c->st)
        return -1;
    for (size_t k = 0; k < c->st->n; k++)
        if (c->st->connector[k] == connector)
            return (int)c->st->charger[k];
    return -1;
}

static void report(conn *c, int connector, const pw_ocpp_evse *e, uint64_t now)
{
    int i = charger_of(c, connector);
    if (i < 0 || !e->has_status)
        return;
    pw_ctl_seen seen = {.address = c->address, .loss_pct = -1};
    if (e->status == PW_OCPP_CHARGING && !e->has_current) {
        /* Charging, but this connection has no meter values yet (a charge point back after a
         * network blip says Charging first): a draw of 0 A would be a car drawing less than it
         * may, and its room would go to others while it still holds its limit. The core keeps
         * what it last knew until the draw comes; the charger is only seen. */
        pw_ctl_charger_seen(c->o->env.ctl, (size_t)i, &seen, now, pw_wall_ms());
        return;
    }
    pw_ctl_report r;
    to_report(e, &r);
    pw_ctl_charger_report(c->o->env.ctl, (size_t)i, &seen, &r, now, pw_wall_ms());
}

/* A live connection means the last state still holds (a charge point sends every change): say
 * so to the core once a meter interval, so an idle charge point that only sends heartbeats is
 * not taken for a silent one. */
static void report_all(conn *c, uint64_t now)
{
    c->reported_ms = now;
    for (size_t k = 0; c->st && k < c->st->n; k++) {
        const pw_ocpp_evse *e = pw_ocpp_cp_evse(c->cp, c->st->connector[k]);
        if (e)
            report(c, c->st->connector[k], e, now);
    }
}

/* ---- sending to a charge point ----------------------------------------------------------------
 */

static void ws_send(conn *c, const char *text, size_t len)
{
    if (c->ws && pw_web_ws_send(c->ws, text, len) == 0)
        c->o->st.tx++;
    else
        c->o->st.tx_errors++;
}

/* An OCPP-J CALL ("[2, ..."), as opposed to an answer. */
static bool is_call(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == '[' || text[i] == ' ' || text[i] == '\t' || text[i] == '\n'))
        i++;
    return i < len && text[i] == '2';
}

/* A charge point with a relay gets no answer before the changes made so far are written: the
 * answer to a call is its promise that the call will reach the CSMS. phasewise's own calls (a
 * cut among them) never wait for the disk. */
static void cp_send(conn *c, const char *text, size_t len)
{
    const pw_ocpp_keep *k = c->o->keep;
    uint64_t after = k && c->rel && !is_call(text, len) ? pw_ocpp_keep_queued(k) : 0;
    if (!after || (!c->n_held && pw_ocpp_keep_written(k) >= after)) {
        ws_send(c, text, len);
        return;
    }
    if (c->n_held == c->cap_held) {
        c->cap_held = c->cap_held ? c->cap_held * 2 : 8;
        c->held = pw_xrealloc(c->held, c->cap_held * sizeof *c->held);
    }
    char *copy = pw_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    c->held[c->n_held++] = (held){.text = copy, .len = len, .after = after};
}

/* Sends the frames whose changes are written, in order. */
static void cp_release(conn *c)
{
    uint64_t written = c->o->keep ? pw_ocpp_keep_written(c->o->keep) : UINT64_MAX;
    size_t i = 0;
    for (; i < c->n_held && c->held[i].after <= written; i++) {
        ws_send(c, c->held[i].text, c->held[i].len);
        free(c->held[i].text);
    }
    memmove(c->held, c->held + i, (c->n_held - i) * sizeof *c->held);
    c->n_held -= i;
}

static void on_kept(void *ud)
{
    ocpp *o = ud;
    for (conn *c = o->conns; c; c = c->next)
        if (c->n_held)
            cp_release(c);
}

/* ---- the state machine's sink ------------------------------------------------------------------
 */

static void sink_send(void *ud, const char *text, size_t len)
{
    conn *c = ud;
    if (c->rel) /* it reads phasewise's transaction ids from the answers */
        pw_ocpp_relay_local_to_cp(c->rel->r, text, len);
    cp_send(c, text, len);
}

/* "Vendor Model" in the core's 32 bytes; a long vendor name gives way to the model. */
static void model_text(const pw_ocpp_boot *b, char out[PW_CTL_TEXT_LEN])
{
    int room = PW_CTL_TEXT_LEN - 2 - (int)strnlen(b->model, sizeof b->model);
    snprintf(out, PW_CTL_TEXT_LEN, "%.*s %s", room > 0 ? room : 0, b->vendor, b->model);
}

static void sink_booted(void *ud, const pw_ocpp_boot *b, const pw_ocpp_quirks *q)
{
    conn *c = ud;
    uint64_t now = uv_now(c->o->env.loop);
    if (!c->st) {
        char model[PW_CTL_TEXT_LEN];
        model_text(b, model);
        pw_cfg_link link = {.kind = PW_CFG_LINK_OCPP, .connector = 1};
        pw_strlcpy(link.cp_id, c->id, sizeof link.cp_id);
        pw_ctl_unassigned(c->o->env.ctl, &link, model, now, pw_wall_ms());
        return;
    }
    pw_ctl_device_info info = {0};
    model_text(b, info.model);
    pw_strlcpy(info.firmware, b->firmware, sizeof info.firmware);
    pw_ctl_seen seen = {.info = &info, .address = c->address, .loss_pct = -1};
    for (size_t k = 0; k < c->st->n; k++)
        pw_ctl_charger_seen(c->o->env.ctl, c->st->charger[k], &seen, now, pw_wall_ms());
    pw_info("ocpp", "%s booted: %s %s, firmware %s, quirks %s", c->address, b->vendor, b->model,
            b->firmware, q->name);
}

static void sink_evse(void *ud, int connector, const pw_ocpp_evse *e)
{
    conn *c = ud;
    report(c, connector, e, uv_now(c->o->env.loop));
}

/* How phasewise itself decides on a tag. A local controller: the CSMS's last verdict on it
 * (authorize "csms"), the tag list ("local"), or the charger's own list and cache. */
static enum pw_ocpp_answer authorize(const ocpp *o, const struct rel *r, const char *id_tag)
{
    const pw_cfg_ocpp *oc = &o->cfg->ocpp;
    enum pw_ocpp_answer verdict;
    if (oc->upstream.url[0] && oc->upstream.authorize_csms && r &&
        pw_ocpp_relay_verdict(r->r, id_tag, uv_now(o->env.loop), &verdict))
        return verdict;
    bool local = oc->upstream.url[0] ? oc->upstream.authorize_local : oc->local_authorize;
    if (!local)
        return PW_OCPP_ACCEPTED;
    return pw_cfg_tag_find(o->cfg, id_tag) ? PW_OCPP_ACCEPTED : PW_OCPP_INVALID;
}

static enum pw_ocpp_answer sink_authorize(void *ud, const char *id_tag)
{
    const conn *c = ud;
    return authorize(c->o, c->rel, id_tag);
}

static void sink_event(void *ud, const char *kind, const char *detail)
{
    conn *c = ud;
    if (c->o->env.log_event)
        c->o->env.log_event(c->o->env.ud, kind, c->address, detail);
}

static void sink_rejected(void *ud, const char *reason, const char *text)
{
    conn *c = ud;
    pw_ctl_rejected(c->o->env.ctl, "ocpp", reason, text);
}

/* ---- the local controller: relays and upstream clients ------------------------------------------
 */

static void arm_timer(ocpp *o);
static void arm_timer_for(ocpp *o, const struct conn *c);

static bool upstream_on(const ocpp *o)
{
    return o->cfg->ocpp.upstream.url[0] != '\0';
}

static void rel_to_cp(void *ud, const char *text, size_t len)
{
    rel *r = ud;
    if (r->live)
        cp_send(r->live, text, len);
    else
        r->o->st.tx_errors++;
}

static enum pw_ocpp_answer rel_authorize(void *ud, const char *id_tag)
{
    const rel *r = ud;
    return authorize(r->o, r, id_tag);
}

static void rel_keep(void *ud, const pw_ocpp_relay_keep *k)
{
    rel *r = ud;
    if (r->o->keep)
        pw_ocpp_keep_add(r->o->keep, r->id, k, pw_wall_ms());
}

/* A charge point keeps its profiles across a reboot; phasewise keeps the CSMS's. */
static void rel_profiles(void *ud)
{
    rel *r = ud;
    if (!r->o->keep)
        return;
    json_t *dump = pw_ocpp_relay_profiles_dump(r->r);
    char *text = json_array_size(dump) ? json_dumps(dump, JSON_COMPACT) : NULL;
    pw_ocpp_keep_value(r->o->keep, r->id, "profiles", text ? text : "", pw_wall_ms());
    free(text);
    json_decref(dump);
}

static void rel_to_csms(void *ud, const char *text, size_t len)
{
    rel *r = ud;
    upl *u = r->live ? r->live->up : NULL;
    if (u && u->open && pw_web_ws_send(u->ws, text, len) == 0)
        r->o->st.tx++;
    else
        r->o->st.tx_errors++;
}

/* A CSMS profile's cap on a connector goes to the core as the charger's CSMS cap. */
static void rel_cap(void *ud, int connector, double cap_a)
{
    rel *r = ud;
    const station *s = station_find(r->o, r->id);
    for (size_t k = 0; s && k < s->n; k++)
        if (s->connector[k] == connector) {
            pw_ctl_set_csms_cap(r->o->env.ctl, s->charger[k], cap_a, uv_now(r->o->env.loop));
            pw_info("ocpp", "charge point %s connector %d: the CSMS's cap is %s%.1f A", r->id,
                    connector, isinf(cap_a) ? "none, was " : "", isinf(cap_a) ? 0.0 : cap_a);
        }
}

static void rel_dropped(void *ud, const char *reason, const char *detail)
{
    rel *r = ud;
    if (strcmp(reason, "queue_full") == 0) {
        /* One per call while the CSMS stays away: the 1st, 10th, 100th, ... are logged. */
        uint64_t n = ++r->queue_full;
        while (n % 10 == 0)
            n /= 10;
        if (n == 1)
            pw_warn("ocpp", "charge point %s, upstream: %" PRIu64 " calls lost, queue full: %s",
                    r->id, r->queue_full, detail);
        return;
    }
    if (strcmp(reason, "upstream_down") != 0) /* one per message while down: not logged */
        pw_info("ocpp", "charge point %s, upstream: %s (%s)", r->id, detail, reason);
}

static void relay_opts(const ocpp *o, const station *s, pw_ocpp_relay_opts *out)
{
    pw_ocpp_relay_default_opts(out);
    out->authorize_csms = o->cfg->ocpp.upstream.authorize_csms;
    for (size_t k = 0; s && k < s->n; k++) {
        out->connectors[out->n_connectors] = s->connector[k];
        out->max_a[out->n_connectors++] = o->cfg->chargers[s->charger[k]].max_a;
    }
}

/* A new relay gets back what it kept before a restart. This reads the database on the loop (a
 * few indexed rows): at start for every charge point, before anything is served; later only for
 * one the config adds, or when a config change turns the upstream on. */
static void restore(ocpp *o, rel *r)
{
    char err[256];
    int n = o->keep ? pw_ocpp_keep_restore(o->keep, r->id, r->r, pw_wall_ms(), err, sizeof err) : 0;
    if (n < 0)
        pw_error("ocpp", "charge point %s: its kept upstream queue cannot be read: %s", r->id, err);
    else if (n > 0)
        pw_info("ocpp", "charge point %s: %d calls kept for the CSMS from before the restart",
                r->id, n);
}

/* The relay of a charge point id, made on first use. */
static rel *rel_get(ocpp *o, const station *s)
{
    for (rel *r = o->relays; r; r = r->next)
        if (strcmp(r->id, s->id) == 0)
            return r;
    rel *r = pw_xcalloc(1, sizeof *r);
    r->o = o;
    pw_strlcpy(r->id, s->id, sizeof r->id);
    pw_ocpp_relay_opts ro;
    relay_opts(o, s, &ro);
    /* Call numbers from the wall clock keep increasing across restarts. */
    int64_t wall = pw_wall_ms();
    ro.first_seq = wall > 0 ? (uint64_t)wall : 1;
    r->r = pw_ocpp_relay_new(&ro, &(pw_ocpp_relay_sink){.ud = r,
                                                        .to_cp = rel_to_cp,
                                                        .to_csms = rel_to_csms,
                                                        .cap = rel_cap,
                                                        .dropped = rel_dropped,
                                                        .profiles_changed = rel_profiles,
                                                        .authorize = rel_authorize,
                                                        .keep = rel_keep});
    r->next = o->relays;
    o->relays = r;
    restore(o, r);
    return r;
}

static void up_open(void *ud, void *conn_ud, pw_web_ws *ws)
{
    (void)ud;
    upl *u = conn_ud;
    u->open = true;
    u->ws = ws; /* a client's handle comes with its opening */
    conn *c = u->c;
    if (!c) { /* the charge point went while this was connecting */
        pw_web_ws_close(ws, 1000, "the charge point disconnected");
        return;
    }
    c->up_backoff_ms = 0;
    c->up_why[0] = '\0';
    pw_info("ocpp", "%s: upstream connected to %s", c->address, c->up_url);
    pw_ocpp_relay_upstream(c->rel->r, true, uv_now(c->o->env.loop));
    arm_timer_for(c->o, c);
}

static void up_message(void *ud, void *conn_ud, const char *text, size_t len)
{
    (void)ud;
    upl *u = conn_ud;
    conn *c = u->c;
    if (!c || !c->rel)
        return;
    c->o->st.rx++;
    pw_ocpp_relay_from_csms(c->rel->r, text, len, uv_now(c->o->env.loop), pw_wall_ms());
    arm_timer_for(c->o, c);
}

/* Why the upstream went down, in words an installer can act on: the TLS library's own text for
 * a refused certificate says nothing of where to look. */
static void up_down_text(const char *why, char *out, size_t size)
{
    if (strstr(why, "SSL") || strstr(why, "certificate") || strstr(why, "tls"))
        snprintf(out, size,
                 "down: TLS failed: is the CSMS's certificate from the CA in "
                 "ocpp.upstream.ca_file (or the system's), for this address? (%.39s)",
                 why);
    else
        snprintf(out, size, "down: %s", why);
}

static void up_closed(void *ud, void *conn_ud, const char *why)
{
    (void)ud;
    upl *u = conn_ud;
    conn *c = u->c;
    free(u);
    if (!c)
        return;
    c->up = NULL;
    uint64_t now = uv_now(c->o->env.loop);
    c->up_backoff_ms = c->up_backoff_ms ? c->up_backoff_ms * 2 : 1000;
    if (c->up_backoff_ms > 60000)
        c->up_backoff_ms = 60000;
    c->up_retry_at = now + c->up_backoff_ms;
    up_down_text(why, c->up_why, sizeof c->up_why);
    pw_info("ocpp", "%s: upstream down (%s); again in %u s", c->address, why,
            c->up_backoff_ms / 1000);
    pw_ocpp_relay_upstream(c->rel->r, false, now);
    arm_timer(c->o);
}

/* The CSMS URL for a charge point: the configured one with its identity appended. */
static void up_url_for(const pw_cfg *cfg, const char *id, char out[320])
{
    const char *base = cfg->ocpp.upstream.url;
    size_t n = pw_strlcpy(out, base, 320);
    if (n && n < 319 && base[n - 1] != '/')
        out[n++] = '/', out[n] = '\0';
    if (n < 320)
        pw_strlcpy(out + n, id, 320 - n);
}

/* Opens the charge point's upstream connection, under its identity and password. */
static void up_connect(conn *c)
{
    ocpp *o = c->o;
    const pw_cfg_ocpp_upstream *up = &o->cfg->ocpp.upstream;
    up_url_for(o->cfg, c->id, c->up_url);
    const pw_cfg_ocpp_cp *cc = pw_cfg_ocpp_cp_find(o->cfg, c->id);
    upl *u = pw_xcalloc(1, sizeof *u);
    u->c = c;
    u->ws = NULL;
    pw_web_ws_client_opts co = {
        .url = c->up_url,
        .subprotocol = PW_OCPP_SUBPROTOCOL,
        .user = cc && cc->upstream_password[0] ? c->id : NULL,
        .password = cc && cc->upstream_password[0] ? cc->upstream_password : NULL,
        .ca_file = up->ca_file[0] ? up->ca_file : NULL,
        .limits = {.max_message = PW_OCPP_MAX_FRAME},
        .handlers = {.ud = o, .open = up_open, .message = up_message, .closed = up_closed},
        .conn_ud = u};
    char err[200];
    c->up = u; /* open or closed follow on later loop turns */
    if (!o->env.web || pw_web_ws_connect(o->env.web, &co, err, sizeof err) != 0) {
        c->up = NULL;
        free(u);
        c->up_backoff_ms = c->up_backoff_ms ? c->up_backoff_ms * 2 : 1000;
        if (c->up_backoff_ms > 60000)
            c->up_backoff_ms = 60000;
        c->up_retry_at = uv_now(o->env.loop) + c->up_backoff_ms;
        snprintf(c->up_why, sizeof c->up_why, "down: %.50s", o->env.web ? err : "no web front");
        pw_warn("ocpp", "%s: upstream %s: %s", c->address, c->up_url, c->up_why);
        return;
    }
    snprintf(c->up_why, sizeof c->up_why, "connecting");
}

/* The charge point's connection is gone: so is its upstream one (the relay stays). */
static void up_drop(conn *c)
{
    if (c->up) {
        c->up->c = NULL;
        if (c->up->ws)
            pw_web_ws_close(c->up->ws, 1000, "the charge point disconnected");
        c->up = NULL;
    }
    if (c->rel && c->rel->live == c) { /* not a connection replaced already */
        pw_ocpp_relay_cp_gone(c->rel->r);
        pw_ocpp_relay_upstream(c->rel->r, false, uv_now(c->o->env.loop));
        c->rel->live = NULL;
    }
    c->rel = NULL;
}

/* ---- connections -------------------------------------------------------------------------------
 */

static bool identity_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= PW_CFG_CP_ID_LEN)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == ':'))
            return false;
    return true;
}

/* Security profiles 1 and 2: a charge point with a password in the config must present it, with
 * its own identity as the user name. One with none (profile 0, or not assigned yet) needs none. */
static bool password_ok(const ocpp *o, const pw_web_ws_hello *h)
{
    const pw_cfg_ocpp_cp *cc = pw_cfg_ocpp_cp_find(o->cfg, h->identity);
    if (!cc || !cc->password_hash[0])
        return true;
    return h->has_basic && strcmp(h->user, h->identity) == 0 &&
           pw_cfg_ocpp_password_check(cc->password_hash, h->password);
}

static enum pw_web_ws_verdict on_accept(void *ud, const pw_web_ws_hello *h, pw_web_ws *ws,
                                        void **conn_ud)
{
    ocpp *o = ud;
    char text[160];
    if (!identity_ok(h->identity)) {
        snprintf(text, sizeof text,
                 "a charge point identity must be 1..48 of A-Z a-z 0-9 . _ - :"
                 " (from %s)",
                 h->peer);
        pw_ctl_rejected(o->env.ctl, "ocpp", "identity", text);
        return PW_WEB_WS_NOT_FOUND;
    }
    if (!password_ok(o, h)) {
        snprintf(text, sizeof text, "charge point %s from %s: wrong or missing password",
                 h->identity, h->peer);
        pw_ctl_rejected(o->env.ctl, "ocpp", "password", text);
        return PW_WEB_WS_UNAUTHORIZED;
    }
    station *s = station_find(o, h->identity);
    if (!s && o->n_unassigned >= MAX_UNASSIGNED_CONNS) {
        pw_ctl_rejected(o->env.ctl, "ocpp", "unassigned", "too many unassigned charge points");
        return PW_WEB_WS_FORBIDDEN;
    }
    uint64_t now = uv_now(o->env.loop);
    conn *c = pw_xcalloc(1, sizeof *c);
    c->o = o;
    c->ws = ws;
    c->st = s;
    pw_strlcpy(c->id, h->identity, sizeof c->id);
    snprintf(c->address, sizeof c->address, "charge point %s (%s)", c->id, h->peer);
    if (s) {
        /* A charge point that reconnects before its old connection is noticed dead. */
        if (s->live && s->live->ws)
            pw_web_ws_close(s->live->ws, 1000, "replaced by a new connection");
        if (s->live)
            up_drop(s->live);
        s->live = c;
        if (upstream_on(o)) {
            c->rel = rel_get(o, s);
            c->rel->live = c;
        }
    } else {
        o->n_unassigned++;
        pw_cfg_link link = {.kind = PW_CFG_LINK_OCPP, .connector = 1};
        pw_strlcpy(link.cp_id, c->id, sizeof link.cp_id);
        pw_ctl_unassigned(o->env.ctl, &link, NULL, now, pw_wall_ms());
    }
    pw_ocpp_cp_opts opts;
    cp_opts(o, s, &opts);
    pw_ocpp_cp_sink sink = {.ud = c,
                            .send = sink_send,
                            .booted = sink_booted,
                            .evse = sink_evse,
                            .authorize = sink_authorize,
                            .event = sink_event,
                            .rejected = sink_rejected};
    c->cp = pw_ocpp_cp_new(&opts, &sink, now);
    c->next = o->conns;
    if (o->conns)
        o->conns->prev = c;
    o->conns = c;
    c->reported_ms = now;
    *conn_ud = c;
    if (c->rel)
        up_connect(c);
    pw_info("ocpp", "%s connected%s", c->address, s ? "" : " (not assigned to a charger)");
    arm_timer(o);
    return PW_WEB_WS_ACCEPT;
}

static void on_message(void *ud, void *conn_ud, const char *text, size_t len)
{
    ocpp *o = ud;
    conn *c = conn_ud;
    o->st.rx++;
    uint64_t now = uv_now(o->env.loop);
    if (c->rel && pw_ocpp_relay_from_cp(c->rel->r, text, len, now) == PW_OCPP_RELAY_TAKEN) {
        o->st.rx_accepted++; /* an answer to a CSMS call: sent up */
    } else if (pw_ocpp_cp_receive(c->cp, text, len, now, pw_wall_ms()) != 0 && c->ws) {
        pw_warn("ocpp", "%s: closing a connection that floods us with calls", c->address);
        pw_web_ws_close(c->ws, 1008, "too many calls");
    } else {
        o->st.rx_accepted++;
    }
    arm_timer_for(o, c); /* c lives on: closing it is reported later, from the loop */
}

static void on_closed(void *ud, void *conn_ud, const char *why)
{
    ocpp *o = ud;
    conn *c = conn_ud;
    pw_info("ocpp", "%s disconnected: %s", c->address, why);
    up_drop(c);
    if (c->st && c->st->live == c)
        c->st->live = NULL;
    if (!c->st)
        o->n_unassigned--;
    if (c->prev)
        c->prev->next = c->next;
    else
        o->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    for (size_t i = 0; i < c->n_held; i++) /* the calls they answer are written or not: the
                                              charge point sends them again either way */
        free(c->held[i].text);
    free(c->held);
    pw_ocpp_cp_free(c->cp);
    free(c);
}

/* ---- time
 * ---------------------------------------------------------------------------------------- */

static uint64_t report_every(const ocpp *o)
{
    return (uint64_t)o->cfg->ocpp.meter_interval_s * 1000u;
}

static void on_timer(uv_timer_t *t)
{
    ocpp *o = t->data;
    uint64_t now = uv_now(o->env.loop);
    int64_t wall = pw_wall_ms();
    for (conn *c = o->conns; c; c = c->next) {
        if (pw_ocpp_cp_next_deadline(c->cp) <= now)
            pw_ocpp_cp_poll(c->cp, now, wall);
        if (c->rel && pw_ocpp_relay_next_deadline(c->rel->r) <= now)
            pw_ocpp_relay_poll(c->rel->r, now, wall);
        if (c->rel && !c->up && c->up_retry_at <= now)
            up_connect(c);
        if (now - c->reported_ms >= report_every(o))
            report_all(c, now);
    }
    arm_timer(o);
}

/* A connection's earliest deadline: its conversation's, its relay's, its upstream retry. */
static uint64_t conn_deadline(const conn *c)
{
    uint64_t d = pw_ocpp_cp_next_deadline(c->cp);
    if (c->rel) {
        uint64_t r = pw_ocpp_relay_next_deadline(c->rel->r);
        d = r < d ? r : d;
        if (!c->up && c->up_retry_at < d)
            d = c->up_retry_at;
    }
    return d;
}

static void arm_timer(ocpp *o)
{
    if (!o->timer_open)
        return;
    uint64_t now = uv_now(o->env.loop), next = UINT64_MAX;
    for (const conn *c = o->conns; c; c = c->next) {
        uint64_t d = conn_deadline(c), r = c->reported_ms + report_every(o);
        next = d < next ? d : next;
        next = r < next ? r : next;
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&o->timer);
    else
        uv_timer_start(&o->timer, on_timer, next > now ? next - now : 0, 0);
}

/* One connection's deadlines can only bring the timer forward: O(1) per message instead of a scan
 * of every connection (on_timer scans them all when it fires). */
static void arm_timer_for(ocpp *o, const conn *c)
{
    if (!o->timer_open)
        return;
    uint64_t now = uv_now(o->env.loop), next = conn_deadline(c);
    uint64_t r = c->reported_ms + report_every(o);
    next = r < next ? r : next;
    if (next == UINT64_MAX)
        return;
    uint64_t in = next > now ? next - now : 0;
    if (!uv_is_active((uv_handle_t *)&o->timer) || in < uv_timer_get_due_in(&o->timer))
        uv_timer_start(&o->timer, on_timer, in, 0);
}

/* ---- the transport's ops -----------------------------------------------------------------------
 */

/* An OCPP charger's link, to group the chargers by charge point id (then config order). */
typedef struct link_ref {
    const char *cp_id;
    uint32_t charger;
    int connector;
} link_ref;

static int link_ref_cmp(const void *a, const void *b)
{
    const link_ref *x = a, *y = b;
    int c = strcmp(x->cp_id, y->cp_id);
    return c ? c : (x->charger > y->charger) - (x->charger < y->charger);
}

static void build_stations(ocpp *o, const pw_cfg *cfg)
{
    link_ref *refs = pw_xcalloc(cfg->n_chargers + 1, sizeof *refs);
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_cfg_link *l = &cfg->charger_links[i];
        if (l->kind == PW_CFG_LINK_OCPP)
            refs[n++] =
                (link_ref){.cp_id = l->cp_id, .charger = (uint32_t)i, .connector = l->connector};
    }
    qsort(refs, n, sizeof *refs, link_ref_cmp);
    free(o->stations);
    o->stations = pw_xcalloc(n + 1, sizeof *o->stations);
    o->n_stations = 0;
    for (size_t k = 0; k < n; k++) {
        station *s = o->n_stations ? &o->stations[o->n_stations - 1] : NULL;
        if (!s || strcmp(s->id, refs[k].cp_id) != 0) {
            s = &o->stations[o->n_stations++];
            pw_strlcpy(s->id, refs[k].cp_id, sizeof s->id);
        }
        if (s->n < PW_OCPP_MAX_CONNECTORS) {
            s->connector[s->n] = refs[k].connector;
            s->charger[s->n++] = refs[k].charger;
        }
    }
    free(refs);
    /* Connections open now belong to the new stations (or none). */
    o->n_unassigned = 0;
    uint64_t now = uv_now(o->env.loop);
    for (rel *r = o->relays; r; r = r->next) {
        pw_ocpp_relay_opts ro;
        relay_opts(o, station_find(o, r->id), &ro);
        pw_ocpp_relay_reconfigure(r->r, &ro);
    }
    for (conn *c = o->conns; c; c = c->next) {
        c->st = station_find(o, c->id);
        if (c->st)
            c->st->live = c;
        else
            o->n_unassigned++;
        /* The upstream follows the config: on, off, or another URL (connects again). */
        char url[sizeof c->up_url];
        up_url_for(cfg, c->id, url);
        bool on = cfg->ocpp.upstream.url[0] != '\0';
        if (c->rel && (!c->st || !on || strcmp(url, c->up_url) != 0))
            up_drop(c);
        if (!c->rel && c->st && on && o->timer_open) {
            c->rel = rel_get(o, c->st);
            c->rel->live = c;
            c->up_retry_at = 0; /* at the next timer */
        }
        pw_ocpp_cp_opts opts;
        cp_opts(o, c->st, &opts);
        pw_ocpp_cp_reconfigure(c->cp, &opts, now);
        report_all(c, now);
    }
}

/* The keeper, and the relays given back what they kept before a restart. Without it (no
 * database, or it cannot be opened) the relays keep their queues in memory only. */
static void open_keep(ocpp *o)
{
    char err[256];
    if (!o->env.db_path)
        return;
    o->keep = pw_ocpp_keep_open(o->env.loop, o->env.db_path, on_kept, o, err, sizeof err);
    if (!o->keep) {
        pw_error("ocpp", "the local controller's queue is kept in memory only: %s", err);
        return;
    }
    for (size_t k = 0; upstream_on(o) && k < o->n_stations; k++)
        rel_get(o, &o->stations[k]); /* what waits goes up once the charge point is back */
}

static int ocpp_start(pw_transport *t, const pw_transport_env *env, char *err, size_t err_size)
{
    ocpp *o = (ocpp *)t;
    o->env = *env;
    o->cfg = env->cfg;
    uv_timer_init(env->loop, &o->timer);
    o->timer.data = o;
    o->timer_open = true;
    build_stations(o, env->cfg);
    open_keep(o);
    const pw_cfg_ocpp *oc = &env->cfg->ocpp;
    if (!oc->listen_port)
        return 0; /* OCPP is off */
    if (!env->web) {
        snprintf(err, err_size, "OCPP needs the web front, which is not running");
        return -1;
    }
    if (oc->tls && !env->tls_cert) {
        snprintf(err, err_size, "ocpp.tls needs the appliance's certificate: turn on http.tls");
        return -1;
    }
    pw_web_ws_ep_opts eo = {
        .addr = oc->listen_addr,
        .port = oc->listen_port,
        .tls_cert = oc->tls ? env->tls_cert : NULL,
        .tls_key = oc->tls ? env->tls_key : NULL,
        .path_prefix = "/ocpp/",
        .subprotocol = PW_OCPP_SUBPROTOCOL,
        .limits = {.max_message = PW_OCPP_MAX_FRAME},
        .handlers = {.ud = o, .accept = on_accept, .message = on_message, .closed = on_closed}};
    char why[256];
    if (pw_web_ws_listen(env->web, &eo, &o->ep, why, sizeof why) != 0) {
        snprintf(err, err_size, "OCPP on %s:%u: %s", oc->listen_addr, oc->listen_port, why);
        return -1;
    }
    pw_info("ocpp", "central system at %s://%s:%u/ocpp/<charge point id>", oc->tls ? "wss" : "ws",
            oc->listen_addr, pw_web_ws_ep_port(o->ep));
    return 0;
}

/* OCPP charge points send a status at once on change, but their draw only with MeterValues, every
 * meter interval: that is how late a change of draw may be heard. While the connection lives the
 * transport repeats the last state each interval; one that drops is silent after two. They keep
 * their last profile without phasewise (keeps_limit). The figures are the config's defaults
 * (pw_cfg_timing_default), which the file's "timing" may override. */
static void ocpp_timing(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out)
{
    (void)t;
    pw_cfg_timing_default(cfg, PW_CFG_LINK_OCPP, out);
}

static void ocpp_send(pw_transport *t, uint64_t now, int64_t wall)
{
    ocpp *o = (ocpp *)t;
    const pw_ctl_command *cmd = pw_ctl_commands(o->env.ctl);
    /* Cuts before raises, over every charge point: a raise may need the room a cut frees. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < o->n_stations; k++) {
            station *s = &o->stations[k];
            for (size_t j = 0; j < s->n; j++) {
                const pw_ctl_command *c = &cmd[s->charger[j]];
                if (!c->due || c->cut != (pass == 0) || !s->live)
                    continue;
                if (pw_ocpp_cp_set_limit(s->live->cp, s->connector[j], c->limit_a, c->phases, now))
                    pw_ctl_sent(o->env.ctl, s->charger[j], now, wall);
            }
        }
    arm_timer(o);
}

static void ocpp_reconfigure(pw_transport *t, const pw_cfg *cfg)
{
    ocpp *o = (ocpp *)t;
    o->cfg = cfg;
    build_stations(o, cfg);
    arm_timer(o);
}

static void ocpp_stats(const pw_transport *t, pw_transport_stats *out)
{
    *out = ((const ocpp *)t)->st;
}

static const char *profile_state(const pw_ocpp_evse *e, bool default_installed)
{
    if (strstr(e->problem, "ignores"))
        return "ignored";
    if (e->problem[0])
        return "rejected";
    if (e->sent_a >= 0)
        return "accepted";
    return default_installed ? "waiting" : "none";
}

static int ocpp_charger_info(const pw_transport *t, size_t charger, pw_transport_charger_info *out)
{
    const ocpp *o = (const ocpp *)t;
    if (charger >= o->cfg->n_chargers)
        return 0;
    const pw_cfg_link *l = &o->cfg->charger_links[charger];
    if (l->kind != PW_CFG_LINK_OCPP)
        return 0;
    *out = (pw_transport_charger_info){0};
    const station *s = station_find(o, l->cp_id);
    const conn *c = s ? s->live : NULL;
    pw_strlcpy(out->profile, "none", sizeof out->profile);
    if (!c)
        return 1;
    out->connected = true;
    const pw_ocpp_boot *b = pw_ocpp_cp_boot(c->cp);
    pw_strlcpy(out->vendor, b->vendor, sizeof out->vendor);
    pw_strlcpy(out->model, b->model, sizeof out->model);
    pw_strlcpy(out->firmware, b->firmware, sizeof out->firmware);
    out->default_profile = pw_ocpp_cp_default_installed(c->cp);
    if (c->rel) {
        pw_strlcpy(out->upstream,
                   pw_ocpp_relay_is_up(c->rel->r) ? "connected"
                   : c->up_why[0]                 ? c->up_why
                                                  : "down",
                   sizeof out->upstream);
        out->upstream_queued = pw_ocpp_relay_stats_get(c->rel->r)->queued;
    }
    pw_strlcpy(out->measurands, pw_ocpp_cp_measurands(c->cp), sizeof out->measurands);
    const pw_ocpp_evse *e = pw_ocpp_cp_evse(c->cp, l->connector);
    if (e) {
        pw_strlcpy(out->profile, profile_state(e, out->default_profile), sizeof out->profile);
        pw_strlcpy(out->problem, e->problem, sizeof out->problem);
        pw_strlcpy(out->tx_id, e->tx_id, sizeof out->tx_id);
        pw_strlcpy(out->id_tag, e->id_tag, sizeof out->id_tag);
        out->writes_today = e->writes_today;
    }
    return 1;
}

static void free_ocpp(ocpp *o)
{
    while (o->relays) {
        rel *r = o->relays;
        o->relays = r->next;
        pw_ocpp_relay_free(r->r);
        free(r);
    }
    free(o->stations);
    free(o);
}

static void on_timer_closed(uv_handle_t *h)
{
    free_ocpp(h->data);
}

static void ocpp_stop(pw_transport *t)
{
    ocpp *o = (ocpp *)t;
    if (o->ep) {
        pw_web_ws_ep_close(o->ep); /* every connection's closed callback runs */
        o->ep = NULL;
    }
    /* pw_web_ws_ep_close reports every connection closed before it returns. */
    assert(o->conns == NULL);
    pw_ocpp_keep_close(o->keep); /* writes what waits, then frees itself */
    o->keep = NULL;
    if (o->timer_open) {
        o->timer_open = false;
        uv_close((uv_handle_t *)&o->timer, on_timer_closed);
    } else {
        free_ocpp(o);
    }
}

static const pw_transport_ops ocpp_ops = {
    .name = "ocpp",
    .kind = PW_CFG_LINK_OCPP,
    .start = ocpp_start,
    .timing = ocpp_timing,
    .send = ocpp_send,
    .reconfigure = ocpp_reconfigure,
    .stats = ocpp_stats,
    .charger_info = ocpp_charger_info,
    .stop = ocpp_stop,
};

pw_transport *pw_tr_ocpp_new(void)
{
    ocpp *o = pw_xcalloc(1, sizeof *o);
    o->super.ops = &ocpp_ops;
    return &o->super;
}
