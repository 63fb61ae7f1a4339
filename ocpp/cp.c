/* One charge point's OCPP 1.6J conversation as a pure state machine: answers its calls at once,
 * makes phasewise's own calls one at a time (cuts, the failsafe default, setup, raises, in that
 * order), and keeps what each connector does and may draw.
 *
 * Nothing is queued as frames: every entry point updates state and then pump() picks the most
 * urgent call that state asks for, so a newer wish always replaces an older one and the order
 * of priorities holds by construction. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pw_ocpp_cp.h"
#include "pw_util.h"

#define DAY_MS    UINT64_C(86400000)
#define NOBOOT_MS 5000u /* a connection that says something but does not boot: setup after this */
/* startSchedule of Absolute and Recurring defaults: 2020-01-01T00:00:00Z, a fixed past date so
 * the profile is in force whatever the charge point's clock says. */
#define DEFAULT_START_MS    INT64_C(1577836800000)
#define PROFILE_ID_DEFAULT0 1   /* failsafe default on connector 0 */
#define PROFILE_ID_DEFAULT  10  /* + connector: failsafe default on one connector */
#define PROFILE_ID_DYN      100 /* + connector: the dynamic limit */
#define IGNORE_MARGIN_A     1.0 /* drawing more than the accepted limit by this is not following */
#define CARRY_A             0.5 /* a phase with more than this carries current */
#define EPS                 1e-6
#define FLOOD_WINDOW_MS     10000u /* refused calls are counted over this long */
#define TRIG_DELAY_MS       1000u /* after an accepted cut, fresh meter values are asked this late */

static const char *const measurands[] = {
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Import.Register",
    "Power.Active.Import",
};
#define N_MEASURANDS (sizeof measurands / sizeof measurands[0])

static const char *const config_keys[] = {
    "MeterValuesSampledData",   "MeterValueSampleInterval",
    "ConnectorPhaseRotation",   "ChargeProfileMaxStackLevel",
    "NumberOfConnectors",       "ChargingScheduleAllowedChargingRateUnit",
    "SupportedFeatureProfiles",
};

enum call_kind {
    K_DEFAULT,   /* failsafe TxDefaultProfile (also its restore after a transaction) */
    K_GETCONF,   /* setup: GetConfiguration */
    K_MEAS,      /* setup: MeterValuesSampledData, one more measurand */
    K_INTERVAL,  /* setup: MeterValueSampleInterval */
    K_TRIG_MV,   /* setup: TriggerMessage MeterValues */
    K_TRIG_STAT, /* setup: TriggerMessage StatusNotification */
    K_PROFILE,   /* a dynamic limit */
    K_CLEAR,     /* ClearChargingProfile of the dynamic TxDefaultProfile after a transaction */
    K_TRIG_CUT,  /* TriggerMessage MeterValues after an accepted cut */
};

/* One configured connector (index = connector number; 0 is the whole charge point's status). */
typedef struct conn {
    bool used;
    pw_ocpp_connector_cfg cfg;
    pw_ocpp_evse e;
    pw_ocpp_evse reported; /* as last given to sink.evse */
    bool reported_valid;
    /* What the core wants. want_pending: not yet sent. */
    bool has_want, want_pending;
    double want_a;
    uint8_t want_ph;
    /* What the charge point holds: the last profile accepted or on its way. */
    bool has_held;
    double held_a;
    uint8_t held_ph;
    bool in_flight, in_flight_raise;
    double in_flight_a;
    bool has_last_profile;
    uint64_t last_profile_ms;
    /* Profiles written in the last 24 h: a ring of send times (capacity daily_writes). */
    uint64_t *writes;
    size_t writes_cap, writes_n, writes_head;
    size_t writes_max; /* the budget: the ring grows up to this many, as writes happen */
    /* The failsafe default on this connector (when not on connector 0). */
    bool def_pending, def_ok;
    /* tx-default-only: the dynamic TxDefaultProfile's limit while installed; negative: none. */
    double dyn_a;
    bool clear_pending, trig_pending;
    uint64_t trig_at; /* the confirming TriggerMessage goes out no sooner */
    bool has_offered_report;
    double offered_report;
    bool rejecting, ignoring, above;
    double unsure_a; /* a raise that timed out: it may have applied it; negative: none */
    uint64_t above_since;
    uint8_t told_ph;
    char last_stopped_tx[PW_OCPP_TXID_LEN];
    /* This connection knows what governs the connector: it saw it without a car, or saw its
     * transaction start or stop. Until then a car may run under an earlier connection's
     * profile (prior_of). */
    bool known;
} conn;

struct pw_ocpp_cp {
    pw_ocpp_cp_opts o;
    pw_ocpp_cp_sink sink;
    const pw_ocpp_quirks *q;
    pw_ocpp_boot boot;
    bool booted;
    bool seen_any;
    uint64_t noboot_at;
    bool active; /* setup started: phasewise may make calls */
    unsigned gen;
    conn c[PW_OCPP_MAX_CONNECTORS + 1];
    /* Setup. */
    bool def0_pending, def0_ok;
    bool s_getconf, s_meas, s_interval, s_trig_stat;
    uint32_t s_trig_mv; /* bit per connector number */
    size_t meas_i;
    char meas[160];
    bool ready;
    /* The one call of phasewise's that is outstanding. */
    struct {
        bool on;
        char id[PW_OCPP_ID_LEN];
        enum call_kind kind;
        enum pw_ocpp_action action;
        int connector;
        double limit_a;
        uint8_t phases;
        bool raise;
        unsigned gen;
        uint64_t deadline;
        char value[200];
    } out;
    uint64_t msg_seq;
    uint64_t tx_seq;
    /* Flood: milli-tokens, refilled at flood_per_s per ms. */
    uint64_t tokens, tokens_at, flood_refused, flood_since;
    pw_ocpp_cp_stats stats;
    uint64_t now;
    int64_t wall;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static void event(pw_ocpp_cp *cp, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void event(pw_ocpp_cp *cp, const char *kind, const char *fmt, ...)
{
    if (cp->sink.event == NULL) {
        return;
    }
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cp->sink.event(cp->sink.ud, kind, buf);
}

static void rejected(pw_ocpp_cp *cp, const char *reason, const char *text)
{
    cp->stats.refused++;
    if (cp->sink.rejected) {
        cp->sink.rejected(cp->sink.ud, reason, text);
    }
}

/* "6 A" or "6.5 A" */
static const char *amps(double a, char *buf, size_t n)
{
    if (fabs(a - round(a)) < EPS) {
        snprintf(buf, n, "%.0f A", a);
    } else {
        snprintf(buf, n, "%.1f A", a);
    }
    return buf;
}

static conn *conn_get(pw_ocpp_cp *cp, int connector)
{
    if (connector < 1 || connector > PW_OCPP_MAX_CONNECTORS || !cp->c[connector].used) {
        return NULL;
    }
    return &cp->c[connector];
}

static int dyn_level(const pw_ocpp_quirks *q)
{
    int l = q->default_stack_level + 1;
    if (l > q->max_stack_level) {
        l = q->max_stack_level;
    }
    return l < q->default_stack_level ? q->default_stack_level : l;
}

/* Without TxProfile and with one stack level, the dynamic TxDefaultProfile on a connector
 * replaces the failsafe one there: restore the failsafe after the transaction, not clear. */
static bool dyn_replaces_default(const pw_ocpp_quirks *q)
{
    return !q->tx_profile && !q->default_on_connector0 && dyn_level(q) == q->default_stack_level;
}

/* Rounded down to what the charge point takes; a positive limit below the minimum is 0. */
static double round_limit(const pw_ocpp_cp *cp, const pw_ocpp_connector_cfg *cfg, double a)
{
    if (!(a > 0)) {
        return 0;
    }
    if (a > cfg->max_a) {
        a = cfg->max_a;
    }
    double r = cp->q->whole_amps ? floor(a + EPS) : floor(a * 10 + EPS) / 10;
    if (r > 0 && r < cfg->min_a - EPS) {
        r = 0;
    }
    return r;
}

static double failsafe_of(const pw_ocpp_cp *cp, const conn *c)
{
    if (!cp->q->default_on_connector0) {
        return round_limit(cp, &c->cfg, c->cfg.failsafe_a);
    }
    double m = -1;
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        if (cp->c[i].used) {
            double f = round_limit(cp, &cp->c[i].cfg, cp->c[i].cfg.failsafe_a);
            if (m < 0 || f < m) {
                m = f;
            }
        }
    }
    return m < 0 ? 0 : m;
}

static bool any_connector(const pw_ocpp_cp *cp)
{
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        if (cp->c[i].used) {
            return true;
        }
    }
    return false;
}

static bool default_ok(const pw_ocpp_cp *cp, const conn *c)
{
    return cp->q->default_on_connector0 ? cp->def0_ok : c->def_ok;
}

/* What a connector may draw with no accepted profile of this transaction: the failsafe default
 * if installed, else its maximum; a dynamic TxDefaultProfile still installed counts too. */
static double fallback_of(const pw_ocpp_cp *cp, const conn *c)
{
    double f = default_ok(cp, c) ? failsafe_of(cp, c) : c->cfg.max_a;
    return c->dyn_a > f ? c->dyn_a : f;
}

/* ---- the write budget -------------------------------------------------------------------------
 */

static size_t budget_cap(const pw_ocpp_cp *cp)
{
    return cp->o.daily_writes == 0 ? 1 : cp->o.daily_writes;
}

/* The ring's storage, keeping the newest writes. */
static void writes_resize(conn *c, size_t cap)
{
    uint64_t *w = pw_xcalloc(cap ? cap : 1, sizeof *w);
    size_t keep = c->writes_n < cap ? c->writes_n : cap;
    for (size_t i = 0; i < keep && c->writes_cap; i++) {
        size_t from = (c->writes_head + c->writes_n - keep + i) % c->writes_cap;
        w[i] = c->writes[from];
    }
    free(c->writes);
    c->writes = w;
    c->writes_cap = cap;
    c->writes_n = keep;
    c->writes_head = 0;
}

/* A new budget: the ring never holds more than it. */
static void writes_limit(conn *c, size_t max)
{
    c->writes_max = max;
    if (c->writes_cap > max)
        writes_resize(c, max);
}

static void writes_add(conn *c, uint64_t now)
{
    /* Storage grows with use (a budget of 100,000 costs nothing until it is spent). */
    if (c->writes_n == c->writes_cap && c->writes_cap < c->writes_max) {
        size_t want = c->writes_cap ? 2 * c->writes_cap : 8;
        writes_resize(c, want < c->writes_max ? want : c->writes_max);
    }
    if (c->writes_n < c->writes_cap) {
        c->writes[(c->writes_head + c->writes_n) % c->writes_cap] = now;
        c->writes_n++;
    } else {
        c->writes[c->writes_head] = now;
        c->writes_head = (c->writes_head + 1) % c->writes_cap;
    }
}

/* When the budget allows the next raise: 0 = now. daily_writes 0 means no budget. */
static uint64_t budget_at(const pw_ocpp_cp *cp, const conn *c)
{
    if (cp->o.daily_writes == 0 || c->writes_n < c->writes_max) {
        return 0;
    }
    return c->writes[c->writes_head] + DAY_MS;
}

static uint32_t writes_today(const conn *c, uint64_t now)
{
    uint32_t n = 0;
    for (size_t i = 0; i < c->writes_n; i++) {
        uint64_t t = c->writes[(c->writes_head + i) % c->writes_cap];
        if (t + DAY_MS > now) {
            n++;
        }
    }
    return n;
}

/* ---- the connector's state in domain terms ----------------------------------------------------
 */

static bool same_as_held(const conn *c)
{
    return c->has_held && fabs(c->held_a - c->want_a) < EPS && c->held_ph == c->want_ph;
}

/* Recomputes offered_a, problem, phases and writes_today from the state. Conservative: a raise
 * counts from the moment it is sent, a cut only once accepted. */
/* A car is at the connector, possibly drawing under a profile phasewise cannot see. */
static bool car_there(const pw_ocpp_evse *e)
{
    return e->has_status && (e->status == PW_OCPP_CHARGING || e->status == PW_OCPP_SUSPENDED_EV ||
                             e->status == PW_OCPP_SUSPENDED_EVSE ||
                             e->status == PW_OCPP_PREPARING || e->status == PW_OCPP_FINISHING);
}

/* What a connector may apply from before this connection: the limit phasewise last knew it to
 * hold, or its maximum when nothing is known (after a restart of phasewise). */
static double prior_of(const conn *c)
{
    return c->cfg.prior_a >= 0 ? c->cfg.prior_a : c->cfg.max_a;
}

static void refresh(pw_ocpp_cp *cp, conn *c)
{
    pw_ocpp_evse *e = &c->e;
    double fb = fallback_of(cp, c);
    double off;
    char a[24];
    if (c->ignoring) {
        off = c->cfg.max_a;
    } else if (e->tx_id[0] == '\0') {
        /* Idle charge points report 0 offered; the next car starts at the default before they
         * say more, so Current.Offered is not taken outside a transaction. A car already there
         * when this connection opened may run under a profile of an earlier one. */
        off = car_there(e) && !c->known && e->sent_a < 0 ? fmax(fb, prior_of(c)) : fb;
    } else {
        if (c->rejecting) {
            off = e->sent_a > fb ? e->sent_a : fb;
            off = c->unsure_a > off ? c->unsure_a : off;
        } else if (c->has_offered_report) {
            off = c->offered_report;
        } else if (e->sent_a >= 0) {
            off = e->sent_a;
        } else {
            off = c->known ? fb : fmax(fb, prior_of(c));
        }
        if (c->in_flight && c->in_flight_raise && c->in_flight_a > off) {
            off = c->in_flight_a;
        }
    }
    e->offered_a = off;
    if (c->ignoring) {
        pw_strlcpy(e->problem, "ignores its charging profile: budgeted at max", sizeof e->problem);
    } else if (c->rejecting) {
        snprintf(e->problem, sizeof e->problem, "rejects %s: budgeted at %s",
                 cp->q->tx_profile ? "TxProfile" : "TxDefaultProfile", amps(off, a, sizeof a));
    } else {
        e->problem[0] = '\0';
    }
    e->writes_today = writes_today(c, cp->now);
}

/* Gives every changed connector to sink.evse. */
static void flush(pw_ocpp_cp *cp)
{
    for (int i = 0; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (!c->used) {
            continue;
        }
        if (i > 0) {
            refresh(cp, c);
        }
        if (c->reported_valid && memcmp(&c->reported, &c->e, sizeof c->e) == 0) {
            continue;
        }
        memcpy(&c->reported, &c->e, sizeof c->e);
        c->reported_valid = true;
        if (cp->sink.evse) {
            cp->sink.evse(cp->sink.ud, i, &c->e);
        }
    }
}

static void conn_init(conn *c, const pw_ocpp_connector_cfg *cfg, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->used = true;
    c->cfg = *cfg;
    c->e.status = PW_OCPP_UNAVAILABLE;
    c->e.phases = 3;
    c->e.sent_a = -1;
    c->e.energy_wh = PW_OCPP_ENERGY_UNKNOWN;
    c->e.offered_a = cfg->max_a;
    c->dyn_a = -1;
    c->unsure_a = -1;
    c->writes = NULL;
    c->writes_cap = 0;
    c->writes_max = cap;
}

/* ---- sending ----------------------------------------------------------------------------------
 */

static void send_text(pw_ocpp_cp *cp, char *text, size_t len)
{
    if (text != NULL) {
        cp->sink.send(cp->sink.ud, text, len);
        free(text);
    }
}

static void answer(pw_ocpp_cp *cp, const char *id, json_t *payload)
{
    size_t len = 0;
    char *text = pw_ocpp_result_text(id, payload, &len);
    send_text(cp, text, len);
}

static void answer_error(pw_ocpp_cp *cp, const char *id, enum pw_ocpp_error code, const char *text)
{
    size_t len = 0;
    cp->stats.errors_out++;
    char *frame = pw_ocpp_error_text(id, code, text, &len);
    send_text(cp, frame, len);
}

static void send_call(pw_ocpp_cp *cp, enum call_kind kind, enum pw_ocpp_action action,
                      int connector, json_t *payload)
{
    size_t len = 0;
    cp->out.on = true;
    cp->out.kind = kind;
    cp->out.action = action;
    cp->out.connector = connector;
    cp->out.gen = cp->gen;
    cp->out.deadline = cp->now + cp->o.call_timeout_ms;
    snprintf(cp->out.id, sizeof cp->out.id, "%llu", (unsigned long long)++cp->msg_seq);
    cp->stats.calls_out++;
    char *text = pw_ocpp_call_text(cp->out.id, pw_ocpp_action_name(action), payload, &len);
    send_text(cp, text, len);
}

static void set_start(pw_ocpp_profile *p)
{
    if (p->kind == PW_OCPP_ABSOLUTE) {
        p->start_ms = DEFAULT_START_MS;
    } else if (p->kind == PW_OCPP_RECURRING) {
        p->start_ms = DEFAULT_START_MS;
        p->duration_s = 86400;
    }
}

/* The failsafe default on connector 0 (target 0) or on one connector. */
static void send_default(pw_ocpp_cp *cp, int target)
{
    pw_ocpp_profile p;
    memset(&p, 0, sizeof p);
    p.connector = target;
    p.id = target == 0 ? PROFILE_ID_DEFAULT0 : PROFILE_ID_DEFAULT + target;
    p.stack_level = cp->q->default_stack_level;
    p.purpose = PW_OCPP_TX_DEFAULT;
    p.kind = cp->q->default_kind;
    set_start(&p);
    p.n_periods = 1;
    conn *any = NULL;
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS && any == NULL; i++) {
        if (cp->c[i].used && (target == 0 || i == target)) {
            any = &cp->c[i];
        }
    }
    p.periods[0].limit_a = any ? failsafe_of(cp, any) : 0;
    send_call(cp, K_DEFAULT, PW_OCPP_A_SET_CHARGING_PROFILE, target, pw_ocpp_set_profile_req(&p));
    cp->out.limit_a = p.periods[0].limit_a;
}

static void send_profile(pw_ocpp_cp *cp, conn *c, bool raise)
{
    const pw_ocpp_quirks *q = cp->q;
    pw_ocpp_profile p;
    memset(&p, 0, sizeof p);
    p.connector = c->cfg.connector;
    p.id = PROFILE_ID_DYN + c->cfg.connector;
    p.stack_level = dyn_level(q);
    if (q->tx_profile) {
        p.purpose = PW_OCPP_TX;
        p.kind = PW_OCPP_RELATIVE;
        pw_strlcpy(p.tx_id, c->e.tx_id, sizeof p.tx_id);
    } else {
        p.purpose = PW_OCPP_TX_DEFAULT;
        p.kind = q->default_kind;
        set_start(&p);
    }
    p.n_periods = 1;
    p.periods[0].limit_a = c->want_a;
    p.periods[0].phases = c->want_ph;
    send_call(cp, K_PROFILE, PW_OCPP_A_SET_CHARGING_PROFILE, c->cfg.connector,
              pw_ocpp_set_profile_req(&p));
    cp->out.limit_a = c->want_a;
    cp->out.phases = c->want_ph;
    cp->out.raise = raise;
    c->has_held = true;
    c->held_a = c->want_a;
    c->held_ph = c->want_ph;
    c->want_pending = false;
    c->in_flight = true;
    c->in_flight_raise = raise;
    c->in_flight_a = c->want_a;
    c->has_last_profile = true;
    c->last_profile_ms = cp->now;
    c->above = false;
    writes_add(c, cp->now);
    cp->stats.profiles_sent++;
    if (!q->tx_profile && raise && c->want_a > c->dyn_a) {
        c->dyn_a = c->want_a; /* it may apply a raise before it answers */
    }
}

static void send_change(pw_ocpp_cp *cp, enum call_kind kind, const char *key, const char *value)
{
    send_call(cp, kind, PW_OCPP_A_CHANGE_CONFIGURATION, -1,
              pw_ocpp_change_configuration_req(key, value));
    pw_strlcpy(cp->out.value, value, sizeof cp->out.value);
}

/* A wish that can go out now: there is a transaction for it and it differs from what is held. */
static bool wish_open(const conn *c)
{
    return c->has_want && c->want_pending && c->e.tx_id[0] != '\0' && !same_as_held(c);
}

static bool wish_is_cut(const conn *c)
{
    return c->want_a < c->e.offered_a - EPS || (c->want_ph != 0 && c->want_ph < c->e.phases);
}

/* When a raise may go out: the connector's minimum interval and its write budget. */
static uint64_t raise_at(const pw_ocpp_cp *cp, const conn *c)
{
    uint64_t t = 0;
    if (c->has_last_profile) {
        t = c->last_profile_ms + cp->o.min_interval_ms;
    }
    uint64_t b = budget_at(cp, c);
    return b > t ? b : t;
}

/* Sends the most urgent call the state asks for, if none is outstanding. */
static void pump(pw_ocpp_cp *cp)
{
    if (cp->out.on || !cp->active) {
        return;
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used) {
            refresh(cp, c);
        }
    }
    /* 1. Cuts, never held back. */
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used && wish_open(c) && wish_is_cut(c)) {
            send_profile(cp, c, false);
            return;
        }
    }
    /* 2. The failsafe default (and its restore after a transaction), clears back to it. */
    if (cp->def0_pending && (cp->q->default_on_connector0 || !any_connector(cp))) {
        send_default(cp, 0);
        return;
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used && c->def_pending && !cp->q->default_on_connector0) {
            send_default(cp, i);
            return;
        }
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used && c->clear_pending) {
            send_call(
                cp, K_CLEAR, PW_OCPP_A_CLEAR_CHARGING_PROFILE, i,
                pw_ocpp_clear_profile_req(PROFILE_ID_DYN + i, i, false, PW_OCPP_TX_DEFAULT, -1));
            return;
        }
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used && c->trig_pending && cp->now >= c->trig_at) {
            c->trig_pending = false;
            send_call(cp, K_TRIG_CUT, PW_OCPP_A_TRIGGER_MESSAGE, i,
                      pw_ocpp_trigger_req("MeterValues", i));
            return;
        }
    }
    /* 3. Setup steps, in order. */
    if (cp->s_getconf) {
        send_call(cp, K_GETCONF, PW_OCPP_A_GET_CONFIGURATION, -1,
                  pw_ocpp_get_configuration_req(config_keys, PW_ARRAY_LEN(config_keys)));
        return;
    }
    if (cp->s_meas) {
        char v[sizeof cp->meas + 40];
        if (cp->meas[0]) {
            snprintf(v, sizeof v, "%s,%s", cp->meas, measurands[cp->meas_i]);
        } else {
            pw_strlcpy(v, measurands[cp->meas_i], sizeof v);
        }
        send_change(cp, K_MEAS, "MeterValuesSampledData", v);
        return;
    }
    if (cp->s_interval) {
        char v[16];
        snprintf(v, sizeof v, "%u", (unsigned)cp->o.meter_interval_s);
        send_change(cp, K_INTERVAL, "MeterValueSampleInterval", v);
        return;
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        if (cp->s_trig_mv & (1u << i)) {
            cp->s_trig_mv &= ~(1u << i);
            send_call(cp, K_TRIG_MV, PW_OCPP_A_TRIGGER_MESSAGE, i,
                      pw_ocpp_trigger_req("MeterValues", i));
            return;
        }
    }
    if (cp->s_trig_stat) {
        cp->s_trig_stat = false;
        send_call(cp, K_TRIG_STAT, PW_OCPP_A_TRIGGER_MESSAGE, -1,
                  pw_ocpp_trigger_req("StatusNotification", -1));
        return;
    }
    cp->ready = true;
    /* 4. Raises, after their interval and within the budget. */
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used && wish_open(c) && !wish_is_cut(c) && raise_at(cp, c) <= cp->now) {
            send_profile(cp, c, true);
            return;
        }
    }
}

/* Setup from the start: after a boot, or when a connection that did not boot said something. */
static void start_setup(pw_ocpp_cp *cp)
{
    cp->active = true;
    cp->gen++;
    cp->ready = false;
    /* No connector configured (a charge point not assigned yet): it is given no current at all,
     * a 0 A default on connector 0, since its draw would be a load no budget holds. */
    cp->def0_pending = cp->q->default_on_connector0 || !any_connector(cp);
    cp->s_getconf = cp->s_meas = cp->s_interval = cp->s_trig_stat = true;
    cp->s_trig_mv = 0;
    cp->meas_i = 0;
    cp->meas[0] = '\0';
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        if (cp->c[i].used) {
            cp->c[i].def_pending = !cp->q->default_on_connector0;
            cp->s_trig_mv |= 1u << i;
        }
    }
}

static void choose_quirks(pw_ocpp_cp *cp)
{
    const pw_ocpp_quirks *q = pw_ocpp_quirks_by_name(cp->o.quirks);
    cp->q = q ? q : pw_ocpp_quirks_find(cp->boot.vendor, cp->boot.model);
}

/* ---- answers to phasewise's calls -------------------------------------------------------------
 */

/* ConnectorPhaseRotation ("0.RST, 1.RST, 2.STR", or a bare "RST") against the config. */
static void check_rotation(pw_ocpp_cp *cp, const char *value)
{
    char rot[PW_OCPP_MAX_CONNECTORS + 1][16];
    char all[16] = "";
    memset(rot, 0, sizeof rot);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        const char *s = p;
        while (*p && *p != ',') {
            p++;
        }
        size_t n = (size_t)(p - s);
        while (n > 0 && s[n - 1] == ' ') {
            n--;
        }
        if (n == 0 || n >= 32) {
            continue;
        }
        char tok[32];
        memcpy(tok, s, n);
        tok[n] = '\0';
        char *dot = strchr(tok, '.');
        const char *r = dot ? dot + 1 : tok;
        if (strcasecmp(r, "NotApplicable") == 0 || strcasecmp(r, "Unknown") == 0) {
            continue;
        }
        if (dot == NULL) {
            pw_strlcpy(all, r, sizeof all);
            continue;
        }
        *dot = '\0';
        char *end = NULL;
        long k = strtol(tok, &end, 10);
        if (end != tok && *end == '\0' && k >= 0 && k <= PW_OCPP_MAX_CONNECTORS) {
            pw_strlcpy(rot[k], r, sizeof rot[k]);
        }
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (!c->used || c->cfg.rotation[0] == '\0') {
            continue;
        }
        const char *r = rot[i][0] ? rot[i] : rot[0][0] ? rot[0] : all;
        if (r[0] && strcasecmp(r, c->cfg.rotation) != 0) {
            event(cp, "ocpp_rotation",
                  "connector %d reports %s, the config's wiring says %s: phasewise uses the "
                  "config's wiring and does not apply the charge point's rotation again",
                  i, r, c->cfg.rotation);
        }
    }
}

/* A profile for a connector was answered: status, or failed (why: "CALLERROR ...", "timeout"). */
static void profile_done(pw_ocpp_cp *cp, conn *c, bool answered, bool accepted, const char *why)
{
    char a[24];
    c->in_flight = false;
    if (cp->q->tx_profile && c->e.tx_id[0] == '\0') {
        return; /* its transaction ended meanwhile, and the TxProfile with it */
    }
    if (accepted) {
        c->rejecting = false;
        c->unsure_a = -1;
        c->has_offered_report = false; /* older than this profile; a fresh one is asked for */
        c->e.sent_a = cp->out.limit_a;
        c->told_ph = cp->out.phases;
        if (c->told_ph) {
            c->e.phases = c->told_ph;
        }
        if (!cp->q->tx_profile) {
            c->dyn_a = cp->out.limit_a;
        }
        if (!cp->out.raise) {
            /* Asked a little later, so a plan's wave of profiles to every charge point is not
             * slowed by a wave of meter values coming back. */
            c->trig_pending = true;
            c->trig_at = cp->now + TRIG_DELAY_MS;
        }
        return;
    }
    cp->stats.profiles_rejected++;
    c->has_held = false;
    c->rejecting = true;
    /* Unanswered, a raise may have been applied all the same: keep it in the budget. */
    if (!answered && strcmp(why, "timeout") == 0 && cp->out.raise &&
        cp->out.limit_a > c->unsure_a) {
        c->unsure_a = cp->out.limit_a;
    }
    refresh(cp, c);
    event(cp, "ocpp_profile", "connector %d %s %s (%s): budgeted at %s", c->cfg.connector,
          answered ? "rejects" : "did not confirm",
          cp->q->tx_profile ? "TxProfile" : "TxDefaultProfile", why,
          amps(c->e.offered_a, a, sizeof a));
}

/* The outstanding call ended: answered with status (ok), with an error, or timed out. */
static void call_done(pw_ocpp_cp *cp, bool ok, enum pw_ocpp_answer status,
                      const pw_ocpp_config_answer *config, const char *why)
{
    char a[24];
    bool accepted = ok && (status == PW_OCPP_ACCEPTED || status == PW_OCPP_REBOOT_REQUIRED);
    bool stale = cp->out.gen != cp->gen; /* a setup call of a setup since restarted */
    cp->out.on = false;
    conn *c = conn_get(cp, cp->out.connector);
    switch (cp->out.kind) {
    case K_PROFILE:
        if (c) {
            profile_done(cp, c, ok, accepted, why);
        }
        break;
    case K_DEFAULT:
        /* A default answered for a setup since restarted is recorded but sent again. */
        if (cp->out.connector == 0) {
            cp->def0_pending = cp->def0_pending && stale;
            cp->def0_ok = accepted;
        } else if (c) {
            c->def_pending = c->def_pending && stale;
            c->def_ok = accepted;
            if (accepted && dyn_replaces_default(cp->q) && c->e.tx_id[0] == '\0') {
                c->dyn_a = -1; /* the failsafe is back in place of the dynamic one */
            }
        }
        if (!accepted) {
            event(cp, "ocpp_setup",
                  "the failsafe default profile (TxDefaultProfile %s on connector %d) was "
                  "refused (%s): without a central system it may charge at its maximum",
                  amps(cp->out.limit_a, a, sizeof a), cp->out.connector, why);
        }
        break;
    case K_CLEAR:
        if (c) {
            c->clear_pending = false;
            if (ok && (accepted || status == PW_OCPP_ANSWER_UNKNOWN)) {
                c->dyn_a = -1;
            } else {
                event(cp, "ocpp_profile",
                      "connector %d: clearing the dynamic TxDefaultProfile failed (%s): "
                      "budgeted at its last limit",
                      cp->out.connector, why);
            }
        }
        break;
    case K_TRIG_CUT:
        break;
    case K_GETCONF:
        if (stale) {
            break;
        }
        cp->s_getconf = false;
        if (!ok) {
            event(cp, "ocpp_setup", "GetConfiguration failed (%s)", why);
            break;
        }
        for (size_t i = 0; config && i < config->n_keys; i++) {
            if (strcasecmp(config->keys[i].key, "ConnectorPhaseRotation") == 0 &&
                config->keys[i].has_value) {
                check_rotation(cp, config->keys[i].value);
            }
        }
        break;
    case K_MEAS:
        if (stale) {
            break;
        }
        if (accepted) {
            pw_strlcpy(cp->meas, cp->out.value, sizeof cp->meas);
        } else {
            event(cp, "ocpp_setup", "MeterValuesSampledData: %s refused (%s), measured without it",
                  measurands[cp->meas_i], why);
        }
        if (++cp->meas_i >= N_MEASURANDS) {
            cp->s_meas = false;
        }
        break;
    case K_INTERVAL:
        if (stale) {
            break;
        }
        cp->s_interval = false;
        if (!accepted) {
            event(cp, "ocpp_setup", "MeterValueSampleInterval %s refused (%s)", cp->out.value, why);
        }
        break;
    case K_TRIG_MV:
    case K_TRIG_STAT:
        if (!stale && !accepted) {
            if (cp->out.kind == K_TRIG_MV) {
                event(cp, "ocpp_setup", "TriggerMessage MeterValues on connector %d refused (%s)",
                      cp->out.connector, why);
            } else {
                event(cp, "ocpp_setup", "TriggerMessage StatusNotification refused (%s)", why);
            }
        }
        break;
    }
}

static void handle_answer(pw_ocpp_cp *cp, const pw_ocpp_frame *f, const char *text)
{
    if (f->kind == PW_OCPP_RESULT) {
        cp->stats.results_in++;
    } else {
        cp->stats.errors_in++;
    }
    if (!cp->out.on || strcmp(f->id, cp->out.id) != 0) {
        rejected(cp, "unexpected_id", text);
        return;
    }
    if (f->kind == PW_OCPP_ERROR) {
        char why[200];
        snprintf(why, sizeof why, "CALLERROR %s %s", pw_ocpp_error_name(f->error), f->error_text);
        event(cp, "ocpp_error", "%s: %s %s", pw_ocpp_action_name(cp->out.action),
              pw_ocpp_error_name(f->error), f->error_text);
        call_done(cp, false, PW_OCPP_REJECTED, NULL, why);
        return;
    }
    enum pw_ocpp_answer status = PW_OCPP_REJECTED;
    pw_ocpp_fault fault;
    memset(&fault, 0, sizeof fault);
    pw_ocpp_config_answer *config = NULL;
    if (cp->out.kind == K_GETCONF) {
        config = pw_xcalloc(1, sizeof *config);
    }
    if (pw_ocpp_decode_result(cp->out.action, f->payload, &status, config, &fault) != 0) {
        rejected(cp, "schema", fault.text);
        call_done(cp, false, PW_OCPP_REJECTED, NULL, "invalid answer");
    } else {
        call_done(cp, true, status, config, pw_ocpp_answer_name(status));
    }
    free(config);
}

/* ---- the charge point's calls -----------------------------------------------------------------
 */

static void on_status(pw_ocpp_cp *cp, const pw_ocpp_status_note *s)
{
    if (s->connector < 0 || s->connector > PW_OCPP_MAX_CONNECTORS) {
        return;
    }
    conn *c = &cp->c[s->connector];
    if (!c->used) {
        return; /* a connector the config does not name: answered, ignored */
    }
    c->e.has_status = true;
    c->e.status = s->status;
    pw_strlcpy(c->e.error_code, s->error_code, sizeof c->e.error_code);
    /* Only a charging car draws: meter values stop outside a transaction, so the last reading
     * must not stay on the books after the car stopped or left. */
    if (s->status != PW_OCPP_CHARGING) {
        memset(c->e.current_a, 0, sizeof c->e.current_a);
    }
    if (s->status == PW_OCPP_AVAILABLE || s->status == PW_OCPP_UNAVAILABLE ||
        s->status == PW_OCPP_RESERVED) {
        c->known = true;
    }
}

static void on_meter(pw_ocpp_cp *cp, const pw_ocpp_meter *m)
{
    conn *c = conn_get(cp, m->connector);
    if (c == NULL) {
        return;
    }
    pw_ocpp_evse *e = &c->e;
    /* A transaction that began before this connection: learn its id from its meter values. */
    if (m->tx_id[0] && e->tx_id[0] == '\0' && strcmp(m->tx_id, c->last_stopped_tx) != 0) {
        pw_strlcpy(e->tx_id, m->tx_id, sizeof e->tx_id);
    }
    bool phased = m->has_current[0] || m->has_current[1] || m->has_current[2];
    if (phased || m->has_current_total) {
        for (int k = 0; k < 3; k++) {
            e->current_a[k] = phased ? (m->has_current[k] ? m->current_a[k] : 0) : 0;
        }
        if (!phased) {
            e->current_a[0] = m->current_total_a;
        }
        e->has_current = true;
        if (c->told_ph) {
            e->phases = c->told_ph;
        } else if (e->current_a[1] > CARRY_A || e->current_a[2] > CARRY_A) {
            e->phases = 3;
        } else if (e->current_a[0] > CARRY_A) {
            e->phases = 1;
        }
        /* Does it follow its accepted limit? Judged only while no new profile is on its way;
         * a reading within the limit ends both the watch and the verdict. */
        double top = fmax(e->current_a[0], fmax(e->current_a[1], e->current_a[2]));
        if (e->tx_id[0] && e->sent_a >= 0) {
            if (top <= e->sent_a + IGNORE_MARGIN_A) {
                c->above = false;
                c->ignoring = false;
            } else if (!c->in_flight && !c->above) {
                c->above = true;
                c->above_since = cp->now;
            }
        }
    }
    if (m->has_energy) {
        e->energy_wh = m->energy_wh;
    }
    if (m->has_offered && e->tx_id[0]) {
        c->has_offered_report = true;
        c->offered_report = m->offered_a;
    }
}

static void tx_reset(conn *c)
{
    c->e.sent_a = -1;
    c->has_held = false;
    c->has_last_profile = false;
    c->rejecting = c->ignoring = c->above = false;
    c->unsure_a = -1;
    c->has_offered_report = false;
    c->told_ph = 0;
}

static void on_start(pw_ocpp_cp *cp, const char *id, const pw_ocpp_start_tx *s)
{
    enum pw_ocpp_answer st =
        cp->sink.authorize ? cp->sink.authorize(cp->sink.ud, s->id_tag) : PW_OCPP_ACCEPTED;
    /* Transaction ids: the central system's counter when it shares one (unique over all its
     * charge points), started at the Unix second of the first one, so ids keep increasing across
     * reconnects and restarts too (1.6 wants an integer). */
    uint64_t *seq = cp->o.tx_seq ? cp->o.tx_seq : &cp->tx_seq;
    if (*seq == 0) {
        *seq = cp->wall > 0 ? (uint64_t)(cp->wall / 1000) % 2000000000u : 0;
    }
    char tx[PW_OCPP_TXID_LEN];
    snprintf(tx, sizeof tx, "%llu", (unsigned long long)++*seq);
    answer(cp, id, pw_ocpp_start_conf(tx, st));
    conn *c = conn_get(cp, s->connector);
    if (c == NULL) {
        return;
    }
    pw_strlcpy(c->e.tx_id, tx, sizeof c->e.tx_id);
    c->known = true;
    pw_strlcpy(c->e.id_tag, s->id_tag, sizeof c->e.id_tag);
    c->e.tx_start_ms = s->timestamp_ms;
    c->e.tx_meter_start_wh = s->meter_start_wh;
    tx_reset(c);
    /* A new dynamic profile replaces the old one by id: no clear needed any more. */
    c->clear_pending = false;
    if (c->has_want) {
        c->want_pending = true;
    }
}

static void on_stop(pw_ocpp_cp *cp, const char *id, const pw_ocpp_stop_tx *s)
{
    int st = -1;
    if (s->id_tag[0]) {
        st = cp->sink.authorize ? (int)cp->sink.authorize(cp->sink.ud, s->id_tag)
                                : (int)PW_OCPP_ACCEPTED;
    }
    answer(cp, id, pw_ocpp_stop_conf(st));
    conn *c = NULL;
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS && c == NULL; i++) {
        if (cp->c[i].used && strcmp(cp->c[i].e.tx_id, s->tx_id) == 0) {
            c = &cp->c[i];
        }
    }
    if (c == NULL) {
        /* Started on an earlier connection and never seen on this one. */
        if (cp->sink.tx_stopped) {
            cp->sink.tx_stopped(cp->sink.ud, 0, s);
        }
        return;
    }
    pw_strlcpy(c->last_stopped_tx, c->e.tx_id, sizeof c->last_stopped_tx);
    c->known = true; /* its TxProfile ended with the transaction */
    c->e.tx_id[0] = '\0';
    c->e.id_tag[0] = '\0';
    c->e.tx_start_ms = 0;
    c->e.tx_meter_start_wh = 0;
    tx_reset(c);
    if (!cp->q->tx_profile && c->dyn_a >= 0) {
        /* Back to the failsafe default so the next session starts there. */
        if (dyn_replaces_default(cp->q)) {
            c->def_pending = true;
        } else {
            c->clear_pending = true;
        }
    }
    flush(cp);
    if (cp->sink.tx_stopped) {
        cp->sink.tx_stopped(cp->sink.ud, c->cfg.connector, s);
    }
}

static void on_call(pw_ocpp_cp *cp, const pw_ocpp_frame *f, const char *text)
{
    pw_ocpp_call call;
    pw_ocpp_fault fault;
    memset(&fault, 0, sizeof fault);
    cp->stats.calls_in++;
    if (pw_ocpp_decode_call(f, &call, &fault) != 0) {
        answer_error(cp, f->id, fault.code, fault.text);
        rejected(cp, "schema", fault.text[0] ? fault.text : text);
        return;
    }
    switch (call.action) {
    case PW_OCPP_A_BOOT_NOTIFICATION:
        answer(cp, f->id, pw_ocpp_boot_conf(PW_OCPP_ACCEPTED, cp->wall, (int)cp->o.heartbeat_s));
        cp->boot = call.u.boot;
        cp->booted = true;
        choose_quirks(cp);
        if (cp->sink.booted) {
            cp->sink.booted(cp->sink.ud, &cp->boot, cp->q);
        }
        start_setup(cp);
        break;
    case PW_OCPP_A_HEARTBEAT:
        answer(cp, f->id, pw_ocpp_heartbeat_conf(cp->wall));
        break;
    case PW_OCPP_A_STATUS_NOTIFICATION:
        answer(cp, f->id, pw_ocpp_empty_conf());
        on_status(cp, &call.u.status);
        break;
    case PW_OCPP_A_METER_VALUES:
        answer(cp, f->id, pw_ocpp_empty_conf());
        on_meter(cp, &call.u.meter);
        break;
    case PW_OCPP_A_START_TRANSACTION:
        on_start(cp, f->id, &call.u.start);
        break;
    case PW_OCPP_A_STOP_TRANSACTION:
        on_stop(cp, f->id, &call.u.stop);
        break;
    case PW_OCPP_A_AUTHORIZE:
        answer(cp, f->id,
               pw_ocpp_authorize_conf(cp->sink.authorize
                                          ? cp->sink.authorize(cp->sink.ud, call.u.id_tag)
                                          : PW_OCPP_ACCEPTED));
        break;
    case PW_OCPP_A_DATA_TRANSFER:
        answer(cp, f->id, pw_ocpp_data_transfer_conf(PW_OCPP_UNKNOWN_VENDOR_ID));
        break;
    case PW_OCPP_A_DIAGNOSTICS_STATUS:
    case PW_OCPP_A_FIRMWARE_STATUS:
        answer(cp, f->id, pw_ocpp_empty_conf());
        break;
    default:
        /* The codec refuses central-system actions; anything else is not ours to take. */
        answer_error(cp, f->id, PW_OCPP_NOT_SUPPORTED, "not taken by a central system");
        rejected(cp, "schema", text);
        break;
    }
}

/* A token bucket: flood_per_s on average, a burst of 5 seconds' worth. */
static bool flood_take(pw_ocpp_cp *cp, uint64_t now)
{
    if (cp->o.flood_per_s == 0) {
        return true;
    }
    uint64_t cap = (uint64_t)cp->o.flood_per_s * 5u * 1000u;
    if (now > cp->tokens_at) {
        uint64_t add = (now - cp->tokens_at) * cp->o.flood_per_s;
        cp->tokens = cp->tokens + add > cap ? cap : cp->tokens + add;
    }
    cp->tokens_at = now;
    if (cp->tokens >= 1000) {
        cp->tokens -= 1000;
        return true;
    }
    return false;
}

/* ---- public -----------------------------------------------------------------------------------
 */

void pw_ocpp_cp_default_opts(pw_ocpp_cp_opts *o)
{
    memset(o, 0, sizeof *o);
    o->meter_interval_s = 10;
    o->heartbeat_s = 300;
    o->call_timeout_ms = 30000;
    o->min_interval_ms = 10000;
    o->daily_writes = 500;
    o->ignore_ms = 15000;
    o->flood_per_s = 20;
}

pw_ocpp_cp *pw_ocpp_cp_new(const pw_ocpp_cp_opts *opts, const pw_ocpp_cp_sink *sink, uint64_t now)
{
    pw_ocpp_cp *cp = pw_xcalloc(1, sizeof *cp);
    cp->o = *opts;
    cp->o.quirks = NULL; /* borrowed strings are not kept: the entry is */
    cp->sink = *sink;
    cp->q = pw_ocpp_quirks_by_name(opts->quirks);
    if (cp->q == NULL) {
        cp->q = pw_ocpp_quirks_find(NULL, NULL);
    } else {
        cp->o.quirks = cp->q->name;
    }
    cp->now = now;
    cp->tokens = (uint64_t)opts->flood_per_s * 5u * 1000u;
    cp->tokens_at = now;
    cp->c[0].used = true;
    cp->c[0].e.status = PW_OCPP_UNAVAILABLE;
    cp->c[0].e.phases = 3;
    cp->c[0].e.sent_a = -1;
    cp->c[0].e.energy_wh = PW_OCPP_ENERGY_UNKNOWN;
    cp->c[0].reported = cp->c[0].e;
    cp->c[0].reported_valid = true;
    for (size_t i = 0; i < opts->n_connectors && i < PW_OCPP_MAX_CONNECTORS; i++) {
        int k = opts->connectors[i].connector;
        if (k >= 1 && k <= PW_OCPP_MAX_CONNECTORS && !cp->c[k].used) {
            conn_init(&cp->c[k], &opts->connectors[i], budget_cap(cp));
            refresh(cp, &cp->c[k]);
            cp->c[k].reported = cp->c[k].e;
            cp->c[k].reported_valid = true;
        }
    }
    return cp;
}

void pw_ocpp_cp_free(pw_ocpp_cp *cp)
{
    if (cp == NULL) {
        return;
    }
    for (int i = 0; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        free(cp->c[i].writes);
    }
    free(cp);
}

void pw_ocpp_cp_reconfigure(pw_ocpp_cp *cp, const pw_ocpp_cp_opts *opts, uint64_t now)
{
    cp->now = now;
    pw_ocpp_cp_opts old = cp->o;
    const pw_ocpp_quirks *old_q = cp->q;
    double old_fs[PW_OCPP_MAX_CONNECTORS + 1];
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        old_fs[i] = cp->c[i].used ? failsafe_of(cp, &cp->c[i]) : -1;
    }
    cp->o = *opts;
    cp->o.quirks = NULL;
    const pw_ocpp_quirks *named = pw_ocpp_quirks_by_name(opts->quirks);
    if (named) {
        cp->o.quirks = named->name;
    }
    choose_quirks(cp);
    bool seen[PW_OCPP_MAX_CONNECTORS + 1] = {false};
    for (size_t i = 0; i < opts->n_connectors && i < PW_OCPP_MAX_CONNECTORS; i++) {
        int k = opts->connectors[i].connector;
        if (k < 1 || k > PW_OCPP_MAX_CONNECTORS || seen[k]) {
            continue;
        }
        seen[k] = true;
        if (cp->c[k].used) {
            cp->c[k].cfg = opts->connectors[i]; /* limits held stay */
        } else {
            conn_init(&cp->c[k], &opts->connectors[i], budget_cap(cp));
            if (cp->active) {
                /* A connector assigned while connected (a charge point added at
                 * commissioning): its status and draw are asked for, not waited for. */
                cp->s_trig_mv |= 1u << k;
                cp->s_trig_stat = true;
            }
        }
    }
    for (int k = 1; k <= PW_OCPP_MAX_CONNECTORS; k++) {
        conn *c = &cp->c[k];
        if (c->used && !seen[k]) {
            free(c->writes);
            memset(c, 0, sizeof *c);
        } else if (c->used && c->writes_max != budget_cap(cp)) {
            writes_limit(c, budget_cap(cp));
        }
    }
    if (cp->active) {
        /* A changed failsafe current or connector set needs the default again. */
        bool changed = old_q != cp->q;
        for (int k = 1; k <= PW_OCPP_MAX_CONNECTORS; k++) {
            conn *c = &cp->c[k];
            double fs = c->used ? failsafe_of(cp, c) : -1;
            if (fabs(fs - old_fs[k]) > EPS) {
                changed = true;
                if (c->used && !cp->q->default_on_connector0) {
                    c->def_pending = true;
                }
            }
        }
        bool any = false;
        for (int k = 1; k <= PW_OCPP_MAX_CONNECTORS; k++) {
            any = any || cp->c[k].used;
        }
        if (changed && any && cp->q->default_on_connector0) {
            cp->def0_pending = true;
        }
        if (old_q != cp->q && !cp->q->default_on_connector0) {
            for (int k = 1; k <= PW_OCPP_MAX_CONNECTORS; k++) {
                cp->c[k].def_pending = cp->c[k].used;
            }
        }
        if (old.meter_interval_s != cp->o.meter_interval_s) {
            cp->s_interval = true;
        }
    }
    pump(cp);
    flush(cp);
}

int pw_ocpp_cp_receive(pw_ocpp_cp *cp, const char *text, size_t len, uint64_t now, int64_t wall)
{
    cp->now = now;
    cp->wall = wall;
    if (!flood_take(cp, now)) {
        rejected(cp, "flood", "");
        /* More refused calls within 10 s than a whole burst: a flood, not a hiccup; close. A
         * call let through now and then (the bucket refills) does not reset the count. */
        if (now - cp->flood_since > FLOOD_WINDOW_MS) {
            cp->flood_since = now;
            cp->flood_refused = 0;
        }
        if (++cp->flood_refused >= (uint64_t)cp->o.flood_per_s * 5u) {
            return -1;
        }
        return 0;
    }
    if (!cp->seen_any) {
        cp->seen_any = true;
        cp->noboot_at = now + NOBOOT_MS;
    }
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    memset(&fault, 0, sizeof fault);
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0) {
        if (f.kind == PW_OCPP_CALL && f.id[0]) {
            answer_error(cp, f.id, fault.code, fault.text);
        }
        rejected(cp, "malformed", fault.text);
        pw_ocpp_frame_clear(&f);
        pump(cp);
        flush(cp);
        return 0;
    }
    if (f.kind == PW_OCPP_CALL) {
        on_call(cp, &f, text);
    } else {
        handle_answer(cp, &f, text);
    }
    pw_ocpp_frame_clear(&f);
    pump(cp);
    flush(cp);
    return 0;
}

bool pw_ocpp_cp_set_limit(pw_ocpp_cp *cp, int connector, double limit_a, uint8_t phases,
                          uint64_t now)
{
    cp->now = now;
    conn *c = conn_get(cp, connector);
    if (c == NULL) {
        return false;
    }
    c->has_want = true;
    c->want_a = round_limit(cp, &c->cfg, limit_a);
    c->want_ph = cp->q->number_phases && c->cfg.can_switch_phases && (phases == 1 || phases == 3)
                     ? phases
                     : 0;
    bool ok;
    if (same_as_held(c)) {
        c->want_pending = false;
        ok = true;
    } else if (c->e.tx_id[0] == '\0') {
        /* Held for the next transaction; true only if the connector may draw no more than
         * wanted already (a cut that cannot be sent yet is not held). */
        c->want_pending = true;
        refresh(cp, c);
        ok = c->want_a >= c->e.offered_a - EPS;
    } else {
        c->want_pending = true;
        pump(cp);
        ok = !c->want_pending && same_as_held(c);
    }
    flush(cp);
    return ok;
}

void pw_ocpp_cp_poll(pw_ocpp_cp *cp, uint64_t now, int64_t wall)
{
    cp->now = now;
    cp->wall = wall;
    if (cp->out.on && now >= cp->out.deadline) {
        cp->stats.timeouts++;
        call_done(cp, false, PW_OCPP_REJECTED, NULL, "timeout");
    }
    if (!cp->active && cp->seen_any && now >= cp->noboot_at) {
        start_setup(cp);
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        conn *c = &cp->c[i];
        if (c->used && c->above && !c->ignoring && now >= c->above_since + cp->o.ignore_ms) {
            char a[24];
            c->ignoring = true;
            event(cp, "ocpp_profile",
                  "connector %d ignores its charging profile: it draws more than %s for %u s, "
                  "budgeted at its maximum",
                  i, amps(c->e.sent_a + IGNORE_MARGIN_A, a, sizeof a),
                  (unsigned)(cp->o.ignore_ms / 1000));
        }
    }
    pump(cp);
    flush(cp);
}

uint64_t pw_ocpp_cp_next_deadline(const pw_ocpp_cp *cp)
{
    uint64_t d = UINT64_MAX;
    if (cp->out.on && cp->out.deadline < d) {
        d = cp->out.deadline;
    }
    if (!cp->active && cp->seen_any && cp->noboot_at < d) {
        d = cp->noboot_at;
    }
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        const conn *c = &cp->c[i];
        if (!c->used) {
            continue;
        }
        if (c->above && !c->ignoring && c->above_since + cp->o.ignore_ms < d) {
            d = c->above_since + cp->o.ignore_ms;
        }
        if (!cp->out.on && c->trig_pending && c->trig_at < d) {
            d = c->trig_at;
        }
        /* A held raise: only while no call is outstanding (its answer pumps anyway). */
        if (!cp->out.on && cp->active && wish_open(c) && !wish_is_cut(c)) {
            uint64_t t = raise_at(cp, c);
            if (t < d) {
                d = t;
            }
        }
    }
    return d;
}

const pw_ocpp_evse *pw_ocpp_cp_evse(const pw_ocpp_cp *cp, int connector)
{
    if (connector < 0 || connector > PW_OCPP_MAX_CONNECTORS || !cp->c[connector].used) {
        return NULL;
    }
    return &cp->c[connector].e;
}

bool pw_ocpp_cp_booted(const pw_ocpp_cp *cp)
{
    return cp->booted;
}

const pw_ocpp_boot *pw_ocpp_cp_boot(const pw_ocpp_cp *cp)
{
    return &cp->boot;
}

const pw_ocpp_quirks *pw_ocpp_cp_quirks(const pw_ocpp_cp *cp)
{
    return cp->q;
}

bool pw_ocpp_cp_ready(const pw_ocpp_cp *cp)
{
    return cp->ready;
}

const char *pw_ocpp_cp_measurands(const pw_ocpp_cp *cp)
{
    return cp->meas;
}

bool pw_ocpp_cp_default_installed(const pw_ocpp_cp *cp)
{
    if (cp->q->default_on_connector0) {
        return cp->def0_ok;
    }
    bool any = false;
    for (int i = 1; i <= PW_OCPP_MAX_CONNECTORS; i++) {
        if (cp->c[i].used) {
            if (!cp->c[i].def_ok) {
                return false;
            }
            any = true;
        }
    }
    return any;
}

const pw_ocpp_cp_stats *pw_ocpp_cp_stats_get(const pw_ocpp_cp *cp)
{
    return &cp->stats;
}
