/* The control core (pw_ctl.h): reports in, the balancer run, commands marked due, sessions and
 * events out through the sink. Every rule about when a charger must be told again lives here. */
#include "pw_ctl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

/* What a charger was last told, and the clocks that say when it must be told again. */
typedef struct ctl_sent {
    double limit_a; /* -1: nothing sent yet, so the first plan always goes out */
    uint8_t phases;
    uint64_t sent_ms;    /* a transport last sent it then */
    uint64_t cut_ms;     /* a lower limit went out then and no report confirmed it; 0 = none */
    uint8_t cut_resends; /* times that cut was marked due again */
} ctl_sent;

/* A link and the index of its charger or node, sorted by link for carry-over. */
typedef struct ctl_link_index {
    const pw_cfg_link *link;
    size_t index;
} ctl_link_index;

struct pw_ctl {
    const pw_cfg *cfg;
    pw_ctl_sink sink;
    pw_bal *bal;
    pw_bal_timing *timing; /* per charger, resolved */
    pw_ctl_charger_state *ch;
    pw_ctl_meter_state *meter;
    ctl_sent *sent;
    pw_ctl_command *cmd;
    size_t n_due;      /* commands marked due and not sent yet */
    uint64_t run_at;   /* a report asked for a run at this time; UINT64_MAX = none */
    uint64_t last_run; /* time of the last run */
    uint64_t deadline; /* earliest own deadline as of the last run, lowered since */
    uint32_t plan_seq;
    bool started;      /* the core has been given a time */
    bool start_done;   /* the start window is over (see pw_ctl_run) */
    uint64_t start_ms; /* the first time the core was given */
    /* Inputs in the order the balancer took them, to tell whether a meter reading came after a
     * charger's first status (and so contains its draw, as the balancer reads it). */
    uint64_t input_seq;
    uint64_t first_status_seq; /* input_seq of the latest first status since the start */
    uint64_t *meter_seq;       /* per node: input_seq of its latest reading */
    pw_ctl_unassigned_dev unassigned[PW_CTL_MAX_UNASSIGNED];
    size_t n_unassigned;
    pw_ctl_reject rejects[PW_CTL_MAX_REJECT_KINDS];
    size_t n_rejects;
    bool rejects_pending;
    bool rejects_logged_once;
    uint64_t last_reject_event;
    pw_ctl_stats stats;
    pw_ctl_override *ovr;     /* per charger: the operator's overrides */
    double *csms_cap;         /* per charger: an upstream CSMS's cap (INFINITY: none) */
    pw_ctl_facility_limit fl; /* the operator's facility limit */
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void lower_deadline(pw_ctl *c, uint64_t t)
{
    c->deadline = min_u64(c->deadline, t);
}

static void event(pw_ctl *c, int64_t wall, const char *kind, const char *subject, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

static void event(pw_ctl *c, int64_t wall, const char *kind, const char *subject, const char *fmt,
                  ...)
{
    if (!c->sink.event)
        return;
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    c->sink.event(c->sink.ud, wall, kind, subject ? subject : "", detail);
}

/* The start window counts from the first time the core is given, whatever the call. */
static void note_time(pw_ctl *c, uint64_t now)
{
    if (!c->started) {
        c->started = true;
        c->start_ms = now;
    }
}

bool pw_ctl_starting(const pw_ctl *c)
{
    return !c->start_done;
}

/* ---- the rules ------------------------------------------------------------------------- */

enum pw_car_state pw_ctl_car_state(const pw_ctl *c, size_t i)
{
    const pw_ctl_charger_state *ch = &c->ch[i];
    if (!ch->has_report)
        return PW_CAR_NONE;
    const pw_ctl_report *r = &ch->report;
    switch (r->pilot) {
    case PW_CTL_PILOT_A:
        return PW_CAR_NONE;
    case PW_CTL_PILOT_B:
        /* A car back in B after drawing current has paused itself (full, timer), unless its
         * protocol says otherwise. */
        if (r->ev_suspended >= 0)
            return r->ev_suspended ? PW_CAR_SUSPENDED : PW_CAR_CONNECTED;
        return ch->drew ? PW_CAR_SUSPENDED : PW_CAR_CONNECTED;
    case PW_CTL_PILOT_C:
    case PW_CTL_PILOT_D:
        return r->ev_suspended == 1 ? PW_CAR_SUSPENDED : PW_CAR_CHARGING;
    default:
        return PW_CAR_FAULT;
    }
}

const char *pw_ctl_car_state_name(enum pw_car_state s)
{
    static const char *const names[] = {"none", "connected", "charging", "suspended", "fault"};
    return (unsigned)s < PW_ARRAY_LEN(names) ? names[s] : "fault";
}

bool pw_ctl_online(const pw_ctl *c, size_t i, uint64_t now)
{
    uint64_t seen = c->ch[i].last_seen_ms;
    return seen && now - seen < c->timing[i].offline_ms; /* as the balancer counts it */
}

static void measure(const pw_ctl *c, size_t i, pw_bal_measure *m)
{
    const pw_ctl_report *r = &c->ch[i].report;
    *m = (pw_bal_measure){.car = pw_ctl_car_state(c, i),
                          .applied_limit_a = r->offered_a,
                          .applied_phases = r->phases};
    memcpy(m->current_a, r->current_a, sizeof m->current_a);
}

/* Limits go out in whole milliamperes, rounded down (never above the plan): a change smaller
 * than that reaches no charger, so it is no new plan and no cut to wait for. */
static double command_amps(double limit_a)
{
    return floor(limit_a * 1000.0 + 1e-6) / 1000.0;
}

static bool differs(const ctl_sent *s, double limit_a, uint8_t phases)
{
    return fabs(command_amps(limit_a) - s->limit_a) > 1e-9 || phases != s->phases;
}

/* ---- sessions -------------------------------------------------------------------------- */

static void save_session(pw_ctl *c, size_t i, uint64_t now)
{
    pw_ctl_charger_state *ch = &c->ch[i];
    ch->session_saved_ms = now;
    lower_deadline(c, now + PW_CTL_SESSION_SAVE_MS);
    if (c->sink.session)
        c->sink.session(c->sink.ud, i, &ch->session);
}

static void close_session(pw_ctl *c, size_t i, uint64_t now, int64_t wall)
{
    pw_ctl_charger_state *ch = &c->ch[i];
    ch->in_session = false;
    ch->resumed = false;
    ch->session.end_ms = wall > ch->session.start_ms ? wall : ch->session.start_ms + 1;
    save_session(c, i, now);
}

static void open_session(pw_ctl *c, size_t i, uint64_t now, int64_t wall)
{
    pw_ctl_charger_state *ch = &c->ch[i];
    ch->in_session = true;
    ch->session = (pw_ctl_session){.start_ms = wall,
                                   .register_start_wh = ch->report.energy_wh,
                                   .register_wh = ch->report.energy_wh};
    pw_strlcpy(ch->session.ref, ch->report.session_ref, sizeof ch->session.ref);
    pw_strlcpy(ch->session.id_tag, ch->report.id_tag, sizeof ch->session.id_tag);
    save_session(c, i, now);
}

/* A different transaction on the same plug-in: both references known and not the same. */
static bool other_ref(const char *session_ref, const char *report_ref)
{
    return session_ref[0] && report_ref[0] && strcmp(session_ref, report_ref) != 0;
}

/* An OCPP charger reports the plug-in first and the transaction (its id and the tag that
 * started it) with StartTransaction: the open session takes what it did not know yet. Returns
 * whether it learned something, so the row is written at once, not a minute later. */
static bool adopt_ids(pw_ctl_session *s, const pw_ctl_report *r)
{
    bool learned = false;
    if (!s->ref[0] && r->session_ref[0]) {
        pw_strlcpy(s->ref, r->session_ref, sizeof s->ref);
        learned = true;
    }
    if (!s->id_tag[0] && r->id_tag[0]) {
        pw_strlcpy(s->id_tag, r->id_tag, sizeof s->id_tag);
        learned = true;
    }
    return learned;
}

/* Sessions run from plug-in to unplug. A session found open in history at start continues if
 * the charger still reports the same session reference; otherwise it ended while we were
 * away, and it is closed as of now (its energy is what the register said last). */
static void track_session(pw_ctl *c, size_t i, uint64_t now, int64_t wall)
{
    pw_ctl_charger_state *ch = &c->ch[i];
    const pw_ctl_report *r = &ch->report;
    bool plugged = r->pilot != PW_CTL_PILOT_A;
    bool learned = false;
    if (ch->resumed) {
        ch->resumed = false;
        if (!plugged || !r->session_ref[0] || strcmp(r->session_ref, ch->session.ref) != 0)
            close_session(c, i, now, wall);
    } else if (ch->in_session && plugged && other_ref(ch->session.ref, r->session_ref)) {
        close_session(c, i, now, wall); /* replugged between two reports */
    }
    if (plugged && !ch->in_session)
        open_session(c, i, now, wall);
    if (!ch->in_session)
        return;
    if (plugged)
        learned = adopt_ids(&ch->session, r);
    for (size_t t = 0; t < PW_LINES; t++)
        ch->session.peak_a = fmax(ch->session.peak_a, r->current_a[t]);
    if (r->energy_wh != PW_CTL_ENERGY_UNKNOWN) {
        if (ch->session.register_start_wh == PW_CTL_ENERGY_UNKNOWN)
            ch->session.register_start_wh = r->energy_wh;
        ch->session.register_wh = r->energy_wh;
    }
    if (!plugged)
        close_session(c, i, now, wall);
    else if (learned)
        save_session(c, i, now);
}

void pw_ctl_resume_session(pw_ctl *c, size_t i, const pw_ctl_session *s)
{
    if (i >= c->cfg->n_chargers || c->ch[i].has_report || s->end_ms)
        return;
    pw_ctl_charger_state *ch = &c->ch[i];
    ch->session = *s;
    ch->in_session = true;
    ch->resumed = true;
}

/* ---- inbox ----------------------------------------------------------------------------- */

static void request_run(pw_ctl *c, uint64_t at)
{
    c->run_at = min_u64(c->run_at, at);
}

void pw_ctl_charger_seen(pw_ctl *c, size_t i, const pw_ctl_seen *seen, uint64_t now, int64_t wall)
{
    note_time(c, now);
    if (i >= c->cfg->n_chargers)
        return;
    pw_ctl_charger_state *ch = &c->ch[i];
    const char *id = c->cfg->chargers[i].id;
    bool was_offline = !pw_ctl_online(c, i, now);
    ch->last_seen_ms = now ? now : 1;
    if (seen && seen->restarted)
        event(c, wall, "charger_reboot", id, "%s", seen->restarted);
    if (was_offline)
        event(c, wall, "charger_online", id, "%s", seen && seen->address ? seen->address : "");
    if (!seen)
        return;
    ch->loss_pct = seen->loss_pct;
    if (seen->info) {
        ch->info = *seen->info;
        ch->has_info = true;
    }
}

static bool report_valid(const pw_ctl_report *r)
{
    if (r->pilot > PW_CTL_PILOT_F || !isfinite(r->offered_a) || r->offered_a < 0)
        return false;
    for (size_t t = 0; t < PW_LINES; t++)
        if (!isfinite(r->current_a[t]))
            return false;
    return r->phases == 0 || r->phases == 1 || r->phases == 2 || r->phases == 3;
}

int pw_ctl_charger_report(pw_ctl *c, size_t i, const pw_ctl_seen *seen, const pw_ctl_report *r,
                          uint64_t now, int64_t wall)
{
    note_time(c, now);
    if (i >= c->cfg->n_chargers || !report_valid(r))
        return -1;
    pw_ctl_charger_seen(c, i, seen, now, wall);
    pw_ctl_charger_state *ch = &c->ch[i];
    bool had = ch->has_report;
    uint8_t old_pilot = ch->report.pilot;
    c->input_seq++;
    if (!had)
        c->first_status_seq = c->input_seq;
    if (!had || strcmp(r->session_ref, ch->report.session_ref) != 0 || r->pilot == PW_CTL_PILOT_A)
        ch->drew = false;
    ch->report = *r;
    ch->report.session_ref[sizeof ch->report.session_ref - 1] = '\0';
    ch->report.id_tag[sizeof ch->report.id_tag - 1] = '\0';
    ch->has_report = true;
    ch->report_ms = now;
    if (r->pilot == PW_CTL_PILOT_C || r->pilot == PW_CTL_PILOT_D)
        ch->drew = true;
    if (had && old_pilot != r->pilot)
        event(c, wall, "charger_state", c->cfg->chargers[i].id, "pilot %c -> %c", 'A' + old_pilot,
              'A' + r->pilot);
    track_session(c, i, now, wall);
    /* A charger that applies the lower limit confirms the cut (1 mA for rounding on the wire). */
    ctl_sent *s = &c->sent[i];
    if (s->cut_ms && r->offered_a <= s->limit_a + 0.0015)
        s->cut_ms = 0;
    pw_bal_measure m;
    measure(c, i, &m);
    pw_bal_set_charger(c->bal, i, &m, now);
    /* Statuses are many and rarely urgent: they are balanced at most once a tick. */
    request_run(c, c->last_run + c->cfg->tick_ms);
    return 0;
}

/* A 3-wire IT meter that reports only L1 and L3: the line currents sum to zero as phasors, so
 * |I2| = |I1 + I3| <= |I1| + |I3|. Without the phase angles that sum is the only bound that
 * never under-estimates L2. */
static double derived_l2(const double line_a[PW_LINES])
{
    return line_a[0] + line_a[2];
}

int pw_ctl_meter_report(pw_ctl *c, size_t node, const double line_a[PW_LINES], uint64_t now)
{
    note_time(c, now);
    if (node >= c->cfg->n_nodes)
        return -1;
    double amps[PW_LINES];
    memcpy(amps, line_a, sizeof amps);
    if (c->cfg->meter_opts && c->cfg->meter_opts[node].derive_l2 && isnan(amps[1]))
        amps[1] = derived_l2(amps);
    /* A reading ten times the fuse is a broken meter or the wrong register, not a load. */
    double plausible = 0;
    for (size_t l = 0; l < PW_LINES; l++)
        plausible = fmax(plausible, 10.0 * c->cfg->nodes[node].limit_a[l]);
    for (size_t l = 0; l < PW_LINES; l++) {
        if (!isfinite(amps[l]) || amps[l] < 0 || amps[l] > plausible) {
            c->stats.meter_rejected++;
            pw_ctl_rejected(c, "meter", "implausible",
                            "a reading not a number, negative or above ten times the fuse");
            return -1;
        }
    }
    pw_ctl_meter_state *m = &c->meter[node];
    c->meter_seq[node] = ++c->input_seq;
    m->last_seen_ms = now ? now : 1;
    m->has_reading = true;
    memcpy(m->line_a, amps, sizeof m->line_a);
    /* A fuse carrying more than its limit cannot wait for the chargers' statuses: plan now. */
    for (size_t l = 0; l < PW_LINES && !c->start_done; l++)
        if (amps[l] > c->cfg->nodes[node].limit_a[l])
            c->start_done = true;
    pw_bal_set_meter(c->bal, node, amps, now);
    request_run(c, now); /* cuts apply at once */
    return 0;
}

static bool link_configured(const pw_cfg *cfg, const pw_cfg_link *link)
{
    if (pw_cfg_charger_by_link(cfg, link) >= 0)
        return true;
    for (size_t n = 0; n < cfg->n_nodes; n++)
        if (pw_cfg_link_equal(&cfg->meters[n], link))
            return true;
    return false;
}

void pw_ctl_unassigned(pw_ctl *c, const pw_cfg_link *link, const char *model, uint64_t now,
                       int64_t wall)
{
    note_time(c, now);
    size_t oldest = 0;
    pw_ctl_unassigned_dev *d = NULL;
    for (size_t k = 0; k < c->n_unassigned && !d; k++) {
        if (pw_cfg_link_equal(&c->unassigned[k].link, link))
            d = &c->unassigned[k];
        else if (c->unassigned[k].last_seen_ms < c->unassigned[oldest].last_seen_ms)
            oldest = k;
    }
    if (!d) {
        d = &c->unassigned[c->n_unassigned < PW_CTL_MAX_UNASSIGNED ? c->n_unassigned++ : oldest];
        *d = (pw_ctl_unassigned_dev){.link = *link, .first_seen_ms = now};
        char text[64], subject[32];
        pw_cfg_link_format(link, text, sizeof text);
        if (link->kind == PW_CFG_LINK_LAN)
            snprintf(subject, sizeof subject, "%u", link->device_id);
        else
            pw_strlcpy(subject, text, sizeof subject);
        event(c, wall, "device_unassigned", subject, "%s speaks %s but is not configured", text,
              pw_cfg_link_kind_name(link->kind));
    }
    d->last_seen_ms = now;
    if (model)
        pw_strlcpy(d->model, model, sizeof d->model);
}

void pw_ctl_rejected(pw_ctl *c, const char *transport, const char *reason, const char *text)
{
    pw_ctl_reject *r = NULL;
    for (size_t k = 0; k < c->n_rejects && !r; k++)
        if (strcmp(c->rejects[k].transport, transport) == 0 &&
            strcmp(c->rejects[k].reason, reason) == 0)
            r = &c->rejects[k];
    if (!r && c->n_rejects < PW_CTL_MAX_REJECT_KINDS) {
        r = &c->rejects[c->n_rejects++];
        *r = (pw_ctl_reject){0};
        pw_strlcpy(r->transport, transport, sizeof r->transport);
        pw_strlcpy(r->reason, c->n_rejects < PW_CTL_MAX_REJECT_KINDS ? reason : "other",
                   sizeof r->reason);
        pw_strlcpy(r->text, c->n_rejects < PW_CTL_MAX_REJECT_KINDS ? text : "other reasons",
                   sizeof r->text);
    } else if (!r) {
        r = &c->rejects[PW_CTL_MAX_REJECT_KINDS - 1];
    }
    r->count++;
    c->rejects_pending = true;
    lower_deadline(c, c->rejects_logged_once ? c->last_reject_event + PW_CTL_REJECT_EVENT_MS : 0);
}

/* Refused input becomes one event per transport and reason per minute, not one row per
 * message: a flood must not flood the history too. */
static void log_rejects(pw_ctl *c, uint64_t now, int64_t wall)
{
    if (!c->rejects_pending ||
        (c->rejects_logged_once && now - c->last_reject_event < PW_CTL_REJECT_EVENT_MS))
        return;
    c->rejects_pending = false;
    c->rejects_logged_once = true;
    c->last_reject_event = now;
    for (size_t k = 0; k < c->n_rejects; k++) {
        pw_ctl_reject *r = &c->rejects[k];
        if (r->count == r->logged)
            continue;
        uint64_t n = r->count - r->logged;
        r->logged = r->count;
        event(c, wall, "datagram_rejected", r->reason, "%llu %s messages rejected: %s",
              (unsigned long long)n, r->transport, r->text);
    }
}

/* ---- operator overrides ---------------------------------------------------------------- */

bool pw_ctl_override_active(const pw_ctl_override *o)
{
    return o->paused || o->has_priority || o->has_max;
}

/* Charger i's override as the balancer takes it: a cap (0 pauses) and a priority. */
static void push_override(pw_ctl *c, size_t i)
{
    const pw_ctl_override *o = &c->ovr[i];
    double cap = o->paused ? 0 : o->has_max ? o->max_a : INFINITY;
    /* The CSMS's cap is independent of the operator's: the smaller holds. */
    cap = fmin(cap, c->csms_cap[i]);
    pw_bal_set_override(c->bal, i, cap,
                        o->has_priority ? o->priority : c->cfg->chargers[i].priority);
}

static void push_facility_limit(pw_ctl *c)
{
    static const double none[PW_LINES] = {INFINITY, INFINITY, INFINITY};
    pw_bal_set_node_cap(c->bal, 0, c->fl.active ? c->fl.limit_a : none);
}

int pw_ctl_set_override(pw_ctl *c, size_t i, const pw_ctl_override *o, uint64_t now)
{
    note_time(c, now);
    if (i >= c->cfg->n_chargers || (o && o->has_max && !(isfinite(o->max_a) && o->max_a > 0)))
        return -1;
    if (o && pw_ctl_override_active(o)) {
        c->ovr[i] = *o;
        c->ovr[i].source[PW_CTL_SOURCE_LEN - 1] = '\0';
    } else {
        c->ovr[i] = (pw_ctl_override){0};
    }
    push_override(c, i);
    request_run(c, now);
    return 0;
}

const pw_ctl_override *pw_ctl_override_get(const pw_ctl *c, size_t i)
{
    return &c->ovr[i];
}

int pw_ctl_set_csms_cap(pw_ctl *c, size_t i, double cap_a, uint64_t now)
{
    note_time(c, now);
    if (i >= c->cfg->n_chargers)
        return -1;
    double cap = isnan(cap_a) ? INFINITY : cap_a < 0 ? 0 : cap_a;
    if (cap == c->csms_cap[i])
        return 0;
    c->csms_cap[i] = cap;
    push_override(c, i);
    request_run(c, now);
    return 0;
}

double pw_ctl_csms_cap(const pw_ctl *c, size_t i)
{
    return i < c->cfg->n_chargers ? c->csms_cap[i] : INFINITY;
}

int pw_ctl_set_facility_limit(pw_ctl *c, const double *limit_a, uint64_t until_ms,
                              const char *source, uint64_t now)
{
    note_time(c, now);
    if (limit_a) {
        for (size_t l = 0; l < PW_LINES; l++)
            if (!isfinite(limit_a[l]) || limit_a[l] < 0)
                return -1;
        if (until_ms <= now)
            return -1;
        c->fl = (pw_ctl_facility_limit){.active = true, .until_ms = until_ms};
        memcpy(c->fl.limit_a, limit_a, sizeof c->fl.limit_a);
        pw_strlcpy(c->fl.source, source ? source : "", sizeof c->fl.source);
        lower_deadline(c, until_ms);
    } else {
        c->fl = (pw_ctl_facility_limit){0};
    }
    push_facility_limit(c);
    request_run(c, now);
    return 0;
}

const pw_ctl_facility_limit *pw_ctl_facility_limit_get(const pw_ctl *c)
{
    return &c->fl;
}

/* A facility limit ends by itself at its time, with an event: the raise it allows follows the
 * usual rules in this run. */
static void expire_facility_limit(pw_ctl *c, uint64_t now, int64_t wall)
{
    if (!c->fl.active || now < c->fl.until_ms)
        return;
    const double *a = c->fl.limit_a;
    event(c, wall, "command", "facility", "facility limit %.1f/%.1f/%.1f A (%s) expired", a[0],
          a[1], a[2], c->fl.source);
    c->fl = (pw_ctl_facility_limit){0};
    push_facility_limit(c);
}

/* ---- decide ---------------------------------------------------------------------------- */

static uint64_t renew_ms(const pw_ctl *c)
{
    return c->cfg->lease_ms / PW_CTL_LEASE_RENEW_DIV;
}

/* Whether charger i must be told its command again although the plan did not change. */
static bool due_again(pw_ctl *c, size_t i, uint64_t now)
{
    ctl_sent *s = &c->sent[i];
    if (s->cut_ms && now - s->cut_ms >= PW_CTL_CUT_CONFIRM_MS) {
        /* A charger that never confirms is left to the renewals after a few tries. */
        if (s->cut_resends >= PW_CTL_CUT_MAX_RESENDS) {
            s->cut_ms = 0;
        } else {
            s->cut_resends++;
            s->cut_ms = now;
            c->stats.cut_resends++;
            return true;
        }
    }
    return now - s->sent_ms >= renew_ms(c);
}

/* The earliest of the balancer's wishes (if planning), renewals, cut confirmations, session
 * saves and the next reject event. */
static uint64_t own_deadline(const pw_ctl *c, bool planning)
{
    uint64_t d = planning ? pw_bal_next_deadline(c->bal) : UINT64_MAX;
    for (size_t i = 0; i < c->cfg->n_chargers; i++) {
        const ctl_sent *s = &c->sent[i];
        /* A due command's renewal counts from when it is sent (pw_ctl_sent); a held one has
         * none. */
        if (s->limit_a >= 0 && !c->cmd[i].due && !c->cmd[i].held)
            d = min_u64(d, s->sent_ms + renew_ms(c));
        if (s->cut_ms)
            d = min_u64(d, s->cut_ms + PW_CTL_CUT_CONFIRM_MS);
        if (c->ch[i].in_session && !c->ch[i].resumed)
            d = min_u64(d, c->ch[i].session_saved_ms + PW_CTL_SESSION_SAVE_MS);
    }
    if (c->rejects_pending)
        d = min_u64(d, c->last_reject_event + PW_CTL_REJECT_EVENT_MS);
    if (c->fl.active) /* it ends by itself */
        d = min_u64(d, c->fl.until_ms);
    return d;
}

/* What charger i was last told; before anything went out since the start, what it reported
 * applying (a lease from the run before); -1 if neither is known. A command below it is a cut. */
static double applied_a(const pw_ctl *c, size_t i)
{
    if (c->sent[i].limit_a >= 0)
        return c->sent[i].limit_a;
    return c->ch[i].has_report ? c->ch[i].report.offered_a : -1;
}

/* How long charger i may stay silent while it is alive, as the start window waits for it. */
static uint64_t start_wait_ms(const pw_ctl *c, size_t i)
{
    uint64_t w = (uint64_t)c->timing[i].status_max_ms + c->timing[i].status_delay_ms;
    return w < PW_CTL_START_MAX_MS ? w : PW_CTL_START_MAX_MS;
}

/* Whether every metered node has been read since the latest first status: the balancer takes a
 * reading to contain only the draws of the chargers heard before it, so a charger heard after
 * the last reading would count twice (in the reading and again by its status). */
static bool meters_after_statuses(const pw_ctl *c)
{
    for (size_t n = 0; n < c->cfg->n_nodes; n++)
        if (c->cfg->nodes[n].metered && c->meter_seq[n] < c->first_status_seq)
            return false;
    return true;
}

/* Whether planning still waits after the start (pw_ctl_run): for the chargers not heard yet,
 * each at most as long as it may stay silent, then for a reading of every meter that contains
 * them, never beyond PW_CTL_START_MAX_MS. If so, *until is when it stops waiting at the latest. */
static bool start_waiting(pw_ctl *c, uint64_t now, uint64_t *until)
{
    if (c->start_done)
        return false;
    uint64_t end = 0, bound = c->start_ms + PW_CTL_START_MAX_MS;
    bool all_heard = true;
    for (size_t i = 0; i < c->cfg->n_chargers; i++) {
        if (c->ch[i].has_report)
            continue;
        all_heard = false;
        end = end > c->start_ms + start_wait_ms(c, i) ? end : c->start_ms + start_wait_ms(c, i);
    }
    if (now >= bound || (all_heard ? meters_after_statuses(c) : now >= end)) {
        c->start_done = true;
        return false;
    }
    *until = all_heard ? bound : end;
    return true;
}

/* A charger not heard since this core started may still hold a lease from the run before a
 * restart, or sit at its failsafe: a plan made without its status (0 A for "no car") would pause
 * a car that is charging. It is planned from its first status; until then it is told nothing,
 * and a transport that must send something finds the failsafe current it falls back to anyway,
 * which the balancer budgets for a silent charger and which fits every fuse. */
static bool held(const pw_ctl *c, size_t i)
{
    return !c->ch[i].has_report;
}

static void hold_command(const pw_ctl *c, size_t i, pw_ctl_command *cmd)
{
    *cmd = (pw_ctl_command){.limit_a = command_amps(c->cfg->chargers[i].failsafe_a),
                            .phases = 0,
                            .lease_ms = c->cfg->lease_ms,
                            .plan_seq = c->plan_seq,
                            .held = true};
}

size_t pw_ctl_run(pw_ctl *c, uint64_t now, int64_t wall)
{
    const pw_cfg *cfg = c->cfg;
    note_time(c, now);
    c->run_at = UINT64_MAX;
    c->last_run = now;
    expire_facility_limit(c, now, wall);
    log_rejects(c, now, wall);
    for (size_t i = 0; i < cfg->n_chargers; i++)
        if (c->ch[i].in_session && !c->ch[i].resumed &&
            now - c->ch[i].session_saved_ms >= PW_CTL_SESSION_SAVE_MS)
            save_session(c, i, now);
    uint64_t until;
    if (start_waiting(c, now, &until)) {
        /* Every command is still held as size_for made it: nothing is due. */
        c->n_due = 0;
        c->deadline = min_u64(own_deadline(c, false), until);
        return 0;
    }
    c->stats.runs++;
    pw_bal_run(c->bal, now);
    const pw_bal_result *res = pw_bal_results(c->bal);
    bool changed = false;
    for (size_t i = 0; i < cfg->n_chargers && !changed; i++)
        changed = !held(c, i) && differs(&c->sent[i], res[i].limit_a, res[i].phases);
    if (changed) {
        c->plan_seq++;
        c->stats.plans++;
    }
    c->n_due = 0;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const ctl_sent *s = &c->sent[i];
        pw_ctl_command *cmd = &c->cmd[i];
        if (held(c, i)) {
            hold_command(c, i, cmd);
            continue;
        }
        bool new_limit = differs(s, res[i].limit_a, res[i].phases);
        double limit_a = command_amps(res[i].limit_a);
        *cmd = (pw_ctl_command){.limit_a = limit_a,
                                .phases = res[i].phases,
                                .lease_ms = cfg->lease_ms,
                                .plan_seq = c->plan_seq,
                                .cut = limit_a < applied_a(c, i) - 1e-9};
        cmd->due = new_limit || due_again(c, i, now);
        cmd->cut |= cmd->due && !new_limit && s->cut_ms == now;
        c->n_due += cmd->due;
    }
    c->deadline = own_deadline(c, true);
    return c->n_due;
}

const pw_ctl_command *pw_ctl_commands(const pw_ctl *c)
{
    return c->cmd;
}

void pw_ctl_sent(pw_ctl *c, size_t i, uint64_t now, int64_t wall)
{
    if (i >= c->cfg->n_chargers)
        return;
    ctl_sent *s = &c->sent[i];
    pw_ctl_command *cmd = &c->cmd[i];
    if (differs(s, cmd->limit_a, cmd->phases) && !cmd->held) {
        if (c->sink.limit_change)
            c->sink.limit_change(c->sink.ud, i, &pw_bal_results(c->bal)[i], wall);
        if (cmd->limit_a < applied_a(c, i) - 1e-9) {
            s->cut_ms = now;
            s->cut_resends = 0;
            lower_deadline(c, now + PW_CTL_CUT_CONFIRM_MS);
        }
    }
    s->limit_a = cmd->limit_a;
    s->phases = cmd->phases;
    s->sent_ms = now;
    if (!cmd->held)
        lower_deadline(c, now + renew_ms(c));
    if (cmd->due) {
        cmd->due = false;
        c->n_due--;
    }
}

uint64_t pw_ctl_next_deadline(const pw_ctl *c)
{
    uint64_t d = min_u64(c->run_at, c->deadline);
    /* A due command no transport took is offered again shortly, not in a busy loop. */
    if (c->n_due)
        d = min_u64(d, c->last_run + PW_CTL_RETRY_MS);
    return d;
}

/* ---- configuration --------------------------------------------------------------------- */

static void resolve_timing(const pw_cfg *cfg, const pw_bal_timing *in, pw_bal_timing *out)
{
    const pw_bal_params *p = &cfg->params;
    *out = in ? *in : (pw_bal_timing){0};
    if (!out->status_min_ms)
        out->status_min_ms = p->status_min_ms;
    if (!out->status_max_ms)
        out->status_max_ms = p->status_max_ms;
    if (!out->status_delay_ms)
        out->status_delay_ms = p->status_delay_ms;
    if (!out->offline_ms)
        out->offline_ms = p->offline_ms;
}

static pw_bal *new_balancer(const pw_cfg *cfg, const pw_bal_timing *timing)
{
    pw_bal_facility f;
    pw_cfg_facility(cfg, &f);
    pw_bal_charger_spec *specs = pw_xcalloc(cfg->n_chargers + 1, sizeof *specs);
    memcpy(specs, cfg->chargers, cfg->n_chargers * sizeof *specs);
    for (size_t i = 0; i < cfg->n_chargers; i++)
        specs[i].timing = timing[i];
    f.chargers = specs;
    pw_bal *b = pw_bal_new(&f);
    free(specs);
    return b;
}

/* Everything sized for cfg, nothing known yet. */
static void size_for(pw_ctl *c, const pw_cfg *cfg, const pw_bal_timing *timing)
{
    size_t n = cfg->n_chargers + 1; /* never a zero-size allocation */
    c->cfg = cfg;
    c->timing = pw_xcalloc(n, sizeof *c->timing);
    for (size_t i = 0; i < cfg->n_chargers; i++)
        resolve_timing(cfg, timing ? &timing[i] : NULL, &c->timing[i]);
    c->ch = pw_xcalloc(n, sizeof *c->ch);
    c->sent = pw_xcalloc(n, sizeof *c->sent);
    c->cmd = pw_xcalloc(n, sizeof *c->cmd);
    c->meter = pw_xcalloc(cfg->n_nodes + 1, sizeof *c->meter);
    c->meter_seq = pw_xcalloc(cfg->n_nodes + 1, sizeof *c->meter_seq);
    c->ovr = pw_xcalloc(n, sizeof *c->ovr);
    c->csms_cap = pw_xcalloc(n, sizeof *c->csms_cap);
    for (size_t i = 0; i < n; i++)
        c->csms_cap[i] = INFINITY;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        c->sent[i].limit_a = -1;
        c->ch[i].loss_pct = -1;
        hold_command(c, i, &c->cmd[i]); /* nothing is known before the first run */
    }
    c->bal = new_balancer(cfg, c->timing);
    c->n_due = 0;
    c->run_at = 0; /* the first plan goes out at the first chance */
    c->deadline = UINT64_MAX;
}

static void release(pw_ctl *c)
{
    pw_bal_free(c->bal);
    free(c->timing);
    free(c->ch);
    free(c->sent);
    free(c->cmd);
    free(c->meter);
    free(c->meter_seq);
    free(c->ovr);
    free(c->csms_cap);
}

pw_ctl *pw_ctl_new(const pw_cfg *cfg, const pw_bal_timing *timing, const pw_ctl_sink *sink)
{
    pw_ctl *c = pw_xcalloc(1, sizeof *c);
    if (sink)
        c->sink = *sink;
    size_for(c, cfg, timing);
    return c;
}

void pw_ctl_free(pw_ctl *c)
{
    if (!c)
        return;
    release(c);
    free(c);
}

static int link_cmp(const pw_cfg_link *a, const pw_cfg_link *b)
{
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->device_id != b->device_id)
        return a->device_id < b->device_id ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    if (a->unit != b->unit)
        return a->unit < b->unit ? -1 : 1;
    int d = strcmp(a->serial, b->serial);
    if (!d)
        d = strcmp(a->host, b->host);
    return d ? d : strcmp(a->topic, b->topic);
}

static int index_cmp(const void *x, const void *y)
{
    return link_cmp(((const ctl_link_index *)x)->link, ((const ctl_link_index *)y)->link);
}

/* Links sorted for lookup, so carrying a 10,000-charger facility over is not quadratic. */
static ctl_link_index *sort_links(const pw_cfg_link *links, size_t n)
{
    ctl_link_index *idx = pw_xcalloc(n + 1, sizeof *idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = (ctl_link_index){&links[i], i};
    qsort(idx, n, sizeof *idx, index_cmp);
    return idx;
}

static long find_link(const ctl_link_index *idx, size_t n, const pw_cfg_link *link)
{
    if (link->kind == PW_CFG_LINK_NONE)
        return -1;
    ctl_link_index key = {link, 0};
    const ctl_link_index *hit = n ? bsearch(&key, idx, n, sizeof *idx, index_cmp) : NULL;
    return hit ? (long)hit->index : -1;
}

/* The overrides of chargers that are no longer configured go with them, each with an event. */
static void drop_overrides(pw_ctl *c, const pw_ctl *old, const bool *stays, int64_t wall)
{
    for (size_t j = 0; j < old->cfg->n_chargers; j++)
        if (!stays[j] && pw_ctl_override_active(&old->ovr[j]))
            event(c, wall, "command", old->cfg->chargers[j].id,
                  "override dropped: the charger is no longer configured");
}

void pw_ctl_set_config(pw_ctl *c, const pw_cfg *cfg, const pw_bal_timing *timing, uint64_t now,
                       int64_t wall)
{
    note_time(c, now);
    pw_ctl old = *c;
    size_for(c, cfg, timing);
    ctl_link_index *idx = sort_links(old.cfg->charger_links, old.cfg->n_chargers);
    bool *stays = pw_xcalloc(old.cfg->n_chargers + 1, sizeof *stays);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        long j = find_link(idx, old.cfg->n_chargers, &cfg->charger_links[i]);
        if (j < 0)
            continue;
        c->ch[i] = old.ch[j];
        c->sent[i] = old.sent[j];
        c->ovr[i] = old.ovr[j];
        c->csms_cap[i] = old.csms_cap[j];
        stays[j] = true;
        push_override(c, i);
        /* Replay the latest report so the new balancer starts from what is known. */
        if (c->ch[i].has_report) {
            pw_bal_measure m;
            measure(c, i, &m);
            pw_bal_set_charger(c->bal, i, &m, c->ch[i].report_ms);
        }
    }
    free(idx);
    drop_overrides(c, &old, stays, wall);
    free(stays);
    push_facility_limit(c);
    idx = sort_links(old.cfg->meters, old.cfg->n_nodes);
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        long j = find_link(idx, old.cfg->n_nodes, &cfg->meters[n]);
        if (j < 0)
            continue;
        c->meter[n] = old.meter[j];
        c->meter_seq[n] = old.meter_seq[j];
        if (c->meter[n].has_reading)
            pw_bal_set_meter(c->bal, n, c->meter[n].line_a, c->meter[n].last_seen_ms);
    }
    free(idx);
    /* Devices that were unassigned and are now configured start fresh; the rest stay listed. */
    c->n_unassigned = 0;
    for (size_t k = 0; k < old.n_unassigned; k++)
        if (!link_configured(cfg, &old.unassigned[k].link))
            c->unassigned[c->n_unassigned++] = old.unassigned[k];
    release(&old);
    c->run_at = now;
    event(c, wall, "config_change", "", "%zu nodes, %zu chargers", cfg->n_nodes, cfg->n_chargers);
}

/* ---- read side ------------------------------------------------------------------------- */

const pw_cfg *pw_ctl_config(const pw_ctl *c)
{
    return c->cfg;
}

const pw_ctl_charger_state *pw_ctl_charger(const pw_ctl *c, size_t i)
{
    return &c->ch[i];
}

const pw_ctl_meter_state *pw_ctl_meter(const pw_ctl *c, size_t node)
{
    return &c->meter[node];
}

size_t pw_ctl_online_count(const pw_ctl *c, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < c->cfg->n_chargers; i++)
        n += pw_ctl_online(c, i, now);
    return n;
}

void pw_ctl_charger_lines(const pw_ctl *c, size_t i, double line_a[PW_LINES])
{
    memset(line_a, 0, sizeof(double) * PW_LINES);
    const pw_ctl_charger_state *ch = &c->ch[i];
    const uint8_t *wiring = c->cfg->chargers[i].wiring;
    for (size_t t = 0; t < PW_LINES && ch->has_report; t++)
        if (wiring[t])
            line_a[wiring[t] - 1] += ch->report.current_a[t];
}

const pw_bal_timing *pw_ctl_timing(const pw_ctl *c, size_t i)
{
    return &c->timing[i];
}

const pw_ctl_unassigned_dev *pw_ctl_unassigned_list(const pw_ctl *c, size_t *n)
{
    *n = c->n_unassigned;
    return c->unassigned;
}

const pw_bal *pw_ctl_balancer(const pw_ctl *c)
{
    return c->bal;
}

const pw_ctl_stats *pw_ctl_stats_get(const pw_ctl *c)
{
    return &c->stats;
}

const pw_ctl_reject *pw_ctl_rejects(const pw_ctl *c, size_t *n)
{
    *n = c->n_rejects;
    return c->rejects;
}

uint64_t pw_ctl_reject_count(const pw_ctl *c, const char *transport, const char *reason)
{
    for (size_t k = 0; k < c->n_rejects; k++)
        if (strcmp(c->rejects[k].transport, transport) == 0 &&
            strcmp(c->rejects[k].reason, reason) == 0)
            return c->rejects[k].count;
    return 0;
}
