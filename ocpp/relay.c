/* The local controller's relay for one charge point (pw_ocpp_relay.h): which frame goes where,
 * message ids and transaction ids mapped both ways, and the CSMS's charging profiles turned
 * into caps instead of reaching the charge point, followed over their schedules. */
#include "pw_ocpp_relay.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define MAX_TX       16      /* transactions of one charge point known at once */
#define MAX_PENDING  16      /* CSMS calls waiting for the charge point's answer */
#define MAX_PROFILES 16      /* CSMS profiles held */
#define DOWN_PREFIX  "csms-" /* ids of CSMS calls toward the charge point */
#define MAX_ASKED    4       /* Authorize calls the charge point waits on the CSMS for */
#define ASK_QUEUE    8       /* beyond this many calls waiting, no answer would come in time */
#define MAX_VERDICTS 32      /* the CSMS's latest verdicts, by tag */
#define VERDICT_MS   3600000 /* how long one is used for a StartTransaction's tag */

/* A transaction as both sides know it. */
typedef struct tx {
    bool used;
    int connector;
    char cp_call[PW_OCPP_ID_LEN]; /* the charge point's StartTransaction id, until answered */
    char local[PW_OCPP_TXID_LEN]; /* phasewise's id, "" until its answer is seen */
    char csms[PW_OCPP_TXID_LEN];  /* the CSMS's id, "" until its answer */
    bool ended;                   /* StopTransaction sent up: freed at its answer */
    uint64_t start_seq;           /* its StartTransaction's call number */
    bool stopped;                 /* the charge point stopped it (caps: no longer running) */
    int64_t start_ms;             /* its StartTransaction's timestamp (Relative TxProfiles) */
} tx;

/* A charge point call waiting to go up. */
typedef struct item {
    char action[PW_OCPP_ACTION_LEN];
    json_t *payload; /* owned */
    int tx;          /* StartTransaction / StopTransaction: its slot; -1 */
    bool mapped;     /* its transactionId is the CSMS's already (it was sent before) */
    uint64_t seq;    /* its number: the order, and its message id up */
    bool kept;       /* reported through sink.keep (a boot put first is not) */
} item;

/* A CSMS call sent down, waiting for the charge point's answer. */
typedef struct pending {
    bool used;
    char down_id[PW_OCPP_ID_LEN];
    char csms_id[PW_OCPP_ID_LEN];
    char action[PW_OCPP_ACTION_LEN];
    uint64_t at;
} pending;

/* A CSMS profile held as a cap: its whole schedule, followed as a charge point would. */
typedef struct profile {
    bool used;
    int id, connector, stack_level;
    enum pw_ocpp_purpose purpose;
    char tx_local[PW_OCPP_TXID_LEN]; /* TxProfile: phasewise's transaction id */
    pw_ocpp_profile s;               /* as decoded: kind, start, duration, periods, unit */
    int64_t origin;               /* Unix ms a Relative schedule (or one without a start) starts */
    int64_t valid_from, valid_to; /* Unix ms; INT64_MIN / INT64_MAX when absent */
    json_t *raw; /* {connectorId, csChargingProfiles} as the CSMS sent them (the dump); owned */
} profile;

/* An Authorize the charge point waits on the CSMS's verdict for (authorize_csms). */
typedef struct asked {
    bool used;
    uint64_t seq; /* the call that carries it up */
    char cp_id[PW_OCPP_ID_LEN];
    char tag[PW_OCPP_TAG_LEN];
    uint64_t until; /* then the fallback answers */
} asked;

/* The CSMS's last verdict on a tag. */
typedef struct verdict {
    char tag[PW_OCPP_TAG_LEN];
    enum pw_ocpp_answer status;
    uint64_t at;
} verdict;

enum boot_state { UP_DOWN, UP_BOOTING, UP_READY };

struct pw_ocpp_relay {
    pw_ocpp_relay_opts o;
    pw_ocpp_relay_sink sink;
    enum boot_state up;
    uint64_t boot_retry_at; /* UP_BOOTING with nothing in flight: send the boot again then */
    json_t *boot;           /* the charge point's last BootNotification payload */
    item *q;                /* ring of o.max_queue */
    size_t q_head, q_len;
    bool in_flight; /* q[q_head] was sent */
    char flight_id[PW_OCPP_ID_LEN];
    uint64_t flight_at;
    uint64_t seq, seq_down; /* the last call number given; CSMS calls sent down */
    tx tx[MAX_TX];
    pending pend[MAX_PENDING];
    profile prof[MAX_PROFILES];
    asked ask[MAX_ASKED];
    verdict verd[MAX_VERDICTS];
    double cap_sent[PW_OCPP_MAX_CONNECTORS];
    int64_t wall;        /* the latest wall time seen (profiles are followed at it) */
    int64_t next_change; /* wall time a held profile may next change a cap; INT64_MAX: none */
    bool clock_known;    /* polled once: poll_now and wall_at_poll relate the two clocks */
    uint64_t poll_now;
    int64_t wall_at_poll;
    bool loading; /* pw_ocpp_relay_profiles_load: profiles_changed is not called */
    pw_ocpp_relay_stats st;
};

void pw_ocpp_relay_default_opts(pw_ocpp_relay_opts *o)
{
    *o = (pw_ocpp_relay_opts){
        .call_timeout_ms = 30000, .max_queue = 1000, .volts = 230.0, .authorize_wait_ms = 5000};
}

__attribute__((format(printf, 3, 4))) static void dropped(pw_ocpp_relay *r, const char *reason,
                                                          const char *fmt, ...)
{
    char text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->st.dropped++;
    if (r->sink.dropped)
        r->sink.dropped(r->sink.ud, reason, text);
}

static void keep(pw_ocpp_relay *r, pw_ocpp_relay_keep k)
{
    if (r->sink.keep)
        r->sink.keep(r->sink.ud, &k);
}

/* A transaction's pair is forgotten: here and in what is kept. */
static void tx_free(pw_ocpp_relay *r, struct tx *t)
{
    if (t->used && t->local[0])
        keep(r, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_TX_DONE, .local_tx = t->local});
    *t = (struct tx){0};
}

/* ---- sending ----------------------------------------------------------------------------------
 */

static void send_text(pw_ocpp_relay *r, bool up, char *text, size_t len)
{
    if (!text)
        return;
    if (up)
        r->sink.to_csms(r->sink.ud, text, len);
    else
        r->sink.to_cp(r->sink.ud, text, len);
    free(text);
}

static void result_up(pw_ocpp_relay *r, const char *csms_id, json_t *payload)
{
    size_t len;
    char *text = pw_ocpp_result_text(csms_id, payload, &len);
    send_text(r, true, text, len);
}

static void error_up(pw_ocpp_relay *r, const char *csms_id, enum pw_ocpp_error code,
                     const char *why)
{
    size_t len;
    char *text = pw_ocpp_error_text(csms_id, code, why, &len);
    send_text(r, true, text, len);
}

static json_t *status_payload(const char *status)
{
    return json_pack("{s:s}", "status", status);
}

/* ---- transactions ------------------------------------------------------------------------------
 */

static tx *tx_by_local(pw_ocpp_relay *r, const char *local)
{
    for (size_t i = 0; local[0] && i < MAX_TX; i++)
        if (r->tx[i].used && strcmp(r->tx[i].local, local) == 0)
            return &r->tx[i];
    return NULL;
}

static tx *tx_by_csms(pw_ocpp_relay *r, const char *csms)
{
    for (size_t i = 0; csms[0] && i < MAX_TX; i++)
        if (r->tx[i].used && !r->tx[i].ended && strcmp(r->tx[i].csms, csms) == 0)
            return &r->tx[i];
    return NULL;
}

/* The running transaction on a connector (phasewise's id known, not stopped), or NULL. */
static tx *tx_on(pw_ocpp_relay *r, int connector)
{
    for (size_t i = 0; i < MAX_TX; i++)
        if (r->tx[i].used && !r->tx[i].ended && !r->tx[i].stopped &&
            r->tx[i].connector == connector && r->tx[i].local[0])
            return &r->tx[i];
    return NULL;
}

/* A free slot; the oldest ended one is reused when all are taken. */
static int tx_new(pw_ocpp_relay *r)
{
    for (size_t i = 0; i < MAX_TX; i++)
        if (!r->tx[i].used)
            return (int)i;
    for (size_t i = 0; i < MAX_TX; i++)
        if (r->tx[i].ended) {
            tx_free(r, &r->tx[i]);
            return (int)i;
        }
    return -1;
}

const char *pw_ocpp_relay_csms_tx(const pw_ocpp_relay *r, const char *local_tx)
{
    const tx *t = tx_by_local((pw_ocpp_relay *)r, local_tx);
    return t && t->csms[0] ? t->csms : NULL;
}

/* ---- caps
 * ---------------------------------------------------------------------------------------- */

#define DAY_MS        INT64_C(86400000)
#define MAX_TIME_MS   INT64_C(253402300800000) /* 10000-01-01: origins in a dump stay below */
#define MAX_COMPOSITE 48                       /* periods in a GetCompositeSchedule answer */
#define MAX_LOOKS     2048  /* boundaries it looks at: a long duration costs the loop no more */
#define MAX_WAKE_MS   60000 /* profiles are looked at again at least this often (a clock step) */

static bool configured(const pw_ocpp_relay *r, int connector)
{
    for (size_t k = 0; k < r->o.n_connectors; k++)
        if (r->o.connectors[k] == connector)
            return true;
    return false;
}

static void changed(pw_ocpp_relay *r)
{
    if (!r->loading && r->sink.profiles_changed)
        r->sink.profiles_changed(r->sink.ud);
}

static void prof_free(profile *q)
{
    json_decref(q->raw);
    *q = (profile){0};
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The limit in amperes profile q sets at wall time t, NAN when it sets none then (not valid yet
 * or any more, before its start, past its duration, before its first period). *next is the
 * first time after t at which that can change, INT64_MAX: never. */
static double prof_at(const pw_ocpp_relay *r, const profile *q, int64_t t, int64_t *next)
{
    *next = INT64_MAX;
    if (t < q->valid_from) {
        *next = q->valid_from;
        return NAN;
    }
    if (t >= q->valid_to)
        return NAN;
    *next = q->valid_to;
    const pw_ocpp_profile *s = &q->s;
    int64_t start = s->kind != PW_OCPP_RELATIVE && s->start_ms ? s->start_ms : q->origin;
    int64_t cycle = s->kind == PW_OCPP_RECURRING          ? DAY_MS
                    : s->kind == PW_OCPP_RECURRING_WEEKLY ? 7 * DAY_MS
                                                          : 0;
    int64_t el = t - start; /* both are bounded times (validated): no overflow */
    if (el < 0 && !cycle) {
        *next = min64(*next, start);
        return NAN;
    }
    if (cycle) {
        el = (el % cycle + cycle) % cycle;
        *next = min64(*next, t - el + cycle);
    }
    int64_t begin = t - el; /* this run (or this day's, this week's) of the schedule */
    if (s->duration_s > 0) {
        int64_t dur = (int64_t)s->duration_s * 1000;
        if (el >= dur)
            return NAN;
        *next = min64(*next, begin + dur);
    }
    const pw_ocpp_period *in = NULL;
    for (size_t i = 0; i < s->n_periods; i++) {
        int64_t at = (int64_t)s->periods[i].start_s * 1000;
        if (at <= el && (!in || s->periods[i].start_s >= in->start_s))
            in = &s->periods[i];
        else if (at > el)
            *next = min64(*next, begin + at);
    }
    if (!in)
        return NAN;
    double v = in->limit_a;
    if (s->watts) /* numberPhases only matters here: A = W / (V * phases) */
        v /= r->o.volts * (in->phases ? in->phases : 3);
    return v;
}

/* The limit of the highest stack level among the profiles of a purpose on a connector that set
 * one at t; NAN when none does. *next as in prof_at, over all of them. */
static double stack_top(const pw_ocpp_relay *r, enum pw_ocpp_purpose p, int connector, int64_t t,
                        int64_t *next)
{
    int level = -1;
    double limit = NAN;
    for (size_t i = 0; i < MAX_PROFILES; i++) {
        const profile *q = &r->prof[i];
        if (!q->used || q->purpose != p || q->connector != connector)
            continue;
        int64_t nx;
        double v = prof_at(r, q, t, &nx);
        *next = min64(*next, nx);
        if (!isnan(v) && q->stack_level > level) {
            level = q->stack_level;
            limit = v;
        }
    }
    return limit;
}

/* A connector's own cap at t (OCPP 1.6 section 3.13.2): a TxProfile in force outranks the
 * TxDefaultProfiles, those on the connector before those on connector 0. */
static double own_cap(const pw_ocpp_relay *r, int connector, int64_t t, int64_t *next)
{
    double lim = stack_top(r, PW_OCPP_TX, connector, t, next);
    if (isnan(lim))
        lim = stack_top(r, PW_OCPP_TX_DEFAULT, connector, t, next);
    if (isnan(lim))
        lim = stack_top(r, PW_OCPP_TX_DEFAULT, 0, t, next);
    return isnan(lim) ? INFINITY : lim;
}

/* Water-filling: *left amperes shared evenly among the connectors in `in`, none above its own
 * cap (want), what one cannot use going to the others; shares are rounded down to 0.01 A so
 * that they never add up to more than *left, which is reduced by what was given. */
static void fill(size_t n, const bool *in, const double *want, double *out, double *left)
{
    bool fixed[PW_OCPP_MAX_CONNECTORS] = {0};
    for (;;) {
        size_t open = 0;
        for (size_t k = 0; k < n; k++)
            open += in[k] && !fixed[k];
        if (!open)
            return;
        double fair = floor(*left / (double)open * 100.0) / 100.0;
        bool any = false;
        for (size_t k = 0; k < n; k++)
            if (in[k] && !fixed[k] && want[k] <= fair) {
                out[k] = want[k];
                *left -= want[k];
                fixed[k] = any = true;
            }
        if (any)
            continue;
        for (size_t k = 0; k < n; k++)
            if (in[k] && !fixed[k]) {
                out[k] = fair;
                *left -= fair;
                fixed[k] = true;
            }
        return;
    }
}

/* Every configured connector's cap at t, with the transactions running now; returns the
 * ChargePointMaxProfile's limit (INFINITY: none). A charge point's maximum is for all of its
 * connectors together: it is split evenly among the connectors with a running transaction,
 * each under its own cap, and what is left among the others (all of them when none runs), so
 * that the caps never add up to more. */
static double caps_at(pw_ocpp_relay *r, int64_t t, double *cap, int64_t *next)
{
    size_t n = r->o.n_connectors;
    double cp_max = stack_top(r, PW_OCPP_CHARGE_POINT_MAX, 0, t, next);
    bool run[PW_OCPP_MAX_CONNECTORS], idle[PW_OCPP_MAX_CONNECTORS];
    for (size_t k = 0; k < n; k++) {
        cap[k] = own_cap(r, r->o.connectors[k], t, next);
        run[k] = tx_on(r, r->o.connectors[k]) != NULL;
        idle[k] = !run[k];
    }
    if (isnan(cp_max))
        return INFINITY;
    double want[PW_OCPP_MAX_CONNECTORS], left = cp_max;
    memcpy(want, cap, n * sizeof *cap);
    fill(n, run, want, cap, &left);
    fill(n, idle, want, cap, &left);
    return cp_max;
}

/* OCPP 1.6 section 3.13.2 at the latest wall time seen; connector 0: the ChargePointMaxProfile.
 */
double pw_ocpp_relay_cap(const pw_ocpp_relay *r, int connector)
{
    pw_ocpp_relay *m = (pw_ocpp_relay *)r; /* tx_on takes it writable; nothing changes */
    double cap[PW_OCPP_MAX_CONNECTORS];
    int64_t next = INT64_MAX;
    double cp_max = caps_at(m, r->wall, cap, &next);
    if (connector == 0)
        return cp_max;
    for (size_t k = 0; k < r->o.n_connectors; k++)
        if (r->o.connectors[k] == connector)
            return cap[k];
    return fmin(own_cap(r, connector, r->wall, &next), cp_max);
}

/* Reports the caps in force at r->wall that changed (all: every one), and when they next may. */
static void report_caps(pw_ocpp_relay *r, bool all)
{
    double cap[PW_OCPP_MAX_CONNECTORS];
    r->next_change = INT64_MAX;
    caps_at(r, r->wall, cap, &r->next_change);
    for (size_t k = 0; k < r->o.n_connectors; k++) {
        if (!all && (cap[k] == r->cap_sent[k] || (isinf(cap[k]) && isinf(r->cap_sent[k]))))
            continue;
        r->cap_sent[k] = cap[k];
        if (r->sink.cap)
            r->sink.cap(r->sink.ud, r->o.connectors[k], cap[k]);
    }
}

/* Profiles that will never set a limit again (validTo or their end passed) go. */
static void profiles_expire(pw_ocpp_relay *r)
{
    bool any = false;
    for (size_t i = 0; i < MAX_PROFILES; i++) {
        profile *q = &r->prof[i];
        int64_t next;
        if (q->used && isnan(prof_at(r, q, r->wall, &next)) && next == INT64_MAX) {
            prof_free(q);
            any = true;
        }
    }
    if (any)
        changed(r);
}

/* The monotonic time the held profiles next want a look; UINT64_MAX: never. */
static uint64_t profiles_deadline(const pw_ocpp_relay *r)
{
    bool held = false;
    for (size_t i = 0; i < MAX_PROFILES && !held; i++)
        held = r->prof[i].used;
    if (!held)
        return UINT64_MAX;
    if (!r->clock_known)
        return 0; /* the first poll tells the wall time */
    uint64_t at = r->poll_now + MAX_WAKE_MS;
    if (r->next_change != INT64_MAX) {
        int64_t in = r->next_change - r->wall_at_poll;
        uint64_t d = r->poll_now + (uint64_t)(in > 1 ? in : 1);
        at = d < at ? d : at;
    }
    return at;
}

/* An RFC 3339 time of the profile, or dflt when absent. */
static int64_t time_of(const json_t *o, const char *key, int64_t dflt)
{
    int64_t ms;
    const char *s = json_string_value(json_object_get(o, key));
    return s && pw_ocpp_time_parse(s, &ms) == 0 ? ms : dflt;
}

/* SetChargingProfile from the CSMS (payload: its csChargingProfiles and connectorId, kept for
 * the dump), answered as a charge point would: Rejected for a connector it does not have, a
 * purpose that does not fit the connector, a TxProfile without a running transaction (or for
 * another one), a limit that is not a number, or too many profiles. A Relative schedule starts
 * at origin, a TxProfile's at its transaction's start. */
static const char *set_profile(pw_ocpp_relay *r, const pw_ocpp_profile *p, const json_t *payload,
                               int64_t origin, char *why, size_t why_size)
{
    if (p->connector != 0 && !configured(r, p->connector)) {
        snprintf(why, why_size, "connector %d is not configured", p->connector);
        return "Rejected";
    }
    if ((p->purpose == PW_OCPP_CHARGE_POINT_MAX) != (p->connector == 0) &&
        p->purpose != PW_OCPP_TX_DEFAULT) {
        snprintf(why, why_size, "%s on connector %d",
                 p->purpose == PW_OCPP_TX ? "TxProfile" : "ChargePointMaxProfile", p->connector);
        return "Rejected";
    }
    tx *t = NULL;
    if (p->purpose == PW_OCPP_TX) {
        t = tx_on(r, p->connector);
        if (!t || (p->tx_id[0] && strcmp(p->tx_id, t->csms) != 0)) {
            snprintf(why, why_size, "TxProfile: no such transaction running on connector %d",
                     p->connector);
            return "Rejected";
        }
        if (t->start_ms > 0 && t->start_ms < origin)
            origin = t->start_ms;
    }
    for (size_t i = 0; i < p->n_periods; i++)
        if (!isfinite(p->periods[i].limit_a) || p->periods[i].limit_a < 0) {
            snprintf(why, why_size, "period %zu: a limit that is not a number >= 0", i);
            return "Rejected";
        }
    if (p->start_ms < -MAX_TIME_MS || p->start_ms >= MAX_TIME_MS) {
        snprintf(why, why_size, "startSchedule out of range");
        return "Rejected";
    }
    const json_t *cs = json_object_get(payload, "csChargingProfiles");
    int64_t from = time_of(cs, "validFrom", INT64_MIN), to = time_of(cs, "validTo", INT64_MAX);
    /* The same id, or the same connector, purpose and stack level, is replaced (5.16.2). */
    profile *slot = NULL;
    for (size_t i = 0; i < MAX_PROFILES; i++) {
        profile *q = &r->prof[i];
        if (q->used &&
            (q->id == p->id || (q->connector == p->connector && q->purpose == p->purpose &&
                                q->stack_level == p->stack_level))) {
            prof_free(q);
            slot = slot ? slot : q;
        }
    }
    for (size_t i = 0; !slot && i < MAX_PROFILES; i++)
        if (!r->prof[i].used)
            slot = &r->prof[i];
    if (!slot) {
        snprintf(why, why_size, "%d profiles held already", MAX_PROFILES);
        return "Rejected";
    }
    *slot = (profile){.used = true,
                      .id = p->id,
                      .connector = p->connector,
                      .stack_level = p->stack_level,
                      .purpose = p->purpose,
                      .s = *p,
                      .origin = origin,
                      .valid_from = from,
                      .valid_to = to,
                      .raw = json_pack("{s:O, s:O}", "connectorId",
                                       json_object_get(payload, "connectorId"),
                                       "csChargingProfiles", cs)};
    if (t)
        pw_strlcpy(slot->tx_local, t->local, sizeof slot->tx_local);
    report_caps(r, false);
    changed(r);
    return "Accepted";
}

static const char *clear_profiles(pw_ocpp_relay *r, const pw_ocpp_cs_call *c)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_PROFILES; i++) {
        profile *q = &r->prof[i];
        if (!q->used)
            continue;
        bool match =
            c->u.clear.has_id
                ? q->id == c->u.clear.id
                : (!c->u.clear.has_connector || q->connector == c->u.clear.connector) &&
                      (!c->u.clear.has_purpose || q->purpose == c->u.clear.purpose) &&
                      (!c->u.clear.has_stack_level || q->stack_level == c->u.clear.stack_level);
        if (match) {
            prof_free(q);
            n++;
        }
    }
    report_caps(r, false);
    if (n)
        changed(r);
    return n ? "Accepted" : "Unknown";
}

/* A transaction ended: its TxProfiles go with it (3.13.4), and a ChargePointMaxProfile is
 * split again among the others. */
static void tx_profiles_end(pw_ocpp_relay *r, const char *local)
{
    bool any = false;
    for (size_t i = 0; i < MAX_PROFILES; i++)
        if (r->prof[i].used && r->prof[i].purpose == PW_OCPP_TX &&
            strcmp(r->prof[i].tx_local, local) == 0) {
            prof_free(&r->prof[i]);
            any = true;
        }
    for (size_t i = 0; i < MAX_TX; i++)
        if (r->tx[i].used && strcmp(r->tx[i].local, local) == 0)
            r->tx[i].stopped = true;
    report_caps(r, false);
    if (any)
        changed(r);
}

/* What connector c may draw at t for GetCompositeSchedule: its cap under its maximum; for 0,
 * the charge point's whole, under the ChargePointMaxProfile. */
static double composite_at(pw_ocpp_relay *r, json_int_t c, int64_t t, int64_t *next)
{
    double cap[PW_OCPP_MAX_CONNECTORS], sum = 0;
    double cp_max = caps_at(r, t, cap, next);
    for (size_t k = 0; k < r->o.n_connectors; k++) {
        double v = fmin(cap[k], r->o.max_a[k]);
        if (r->o.connectors[k] == c)
            return v;
        sum += v;
    }
    return fmin(sum, cp_max);
}

/* GetCompositeSchedule: {connectorId, duration, chargingRateUnit?}, answered with the caps over
 * the duration from now, a period each time they change (at most MAX_COMPOSITE, and no further
 * than MAX_LOOKS boundaries: the duration then ends there). Transactions are taken as running
 * as they do now. */
static json_t *composite(pw_ocpp_relay *r, const json_t *p, int64_t wall, enum pw_ocpp_error *err,
                         const char **why)
{
    const json_t *conn = json_object_get(p, "connectorId"), *dur = json_object_get(p, "duration");
    const json_t *unit = json_object_get(p, "chargingRateUnit");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)p, key, v)
    {
        if (strcmp(key, "connectorId") != 0 && strcmp(key, "duration") != 0 &&
            strcmp(key, "chargingRateUnit") != 0) {
            *err = PW_OCPP_OCCURENCE_CONSTRAINT;
            *why = "GetCompositeSchedule: unknown field";
            return NULL;
        }
    }
    if (!conn || !dur) {
        *err = PW_OCPP_OCCURENCE_CONSTRAINT;
        *why = "GetCompositeSchedule: connectorId and duration are required";
        return NULL;
    }
    if (!json_is_integer(conn) || !json_is_integer(dur) || (unit && !json_is_string(unit))) {
        *err = PW_OCPP_TYPE_CONSTRAINT;
        *why = "GetCompositeSchedule: connectorId and duration are integers";
        return NULL;
    }
    bool watts = unit && strcmp(json_string_value(unit), "W") == 0;
    if (unit && !watts && strcmp(json_string_value(unit), "A") != 0) {
        *err = PW_OCPP_PROPERTY_CONSTRAINT;
        *why = "GetCompositeSchedule.chargingRateUnit: not A or W";
        return NULL;
    }
    json_int_t c = json_integer_value(conn), d = json_integer_value(dur);
    if (c < 0 || (c != 0 && !configured(r, (int)c)) || d < 0 || d > INT32_MAX)
        return status_payload("Rejected");
    int64_t end = wall + (int64_t)d * 1000, t = wall;
    json_t *periods = json_array();
    double last = NAN;
    json_int_t last_at = -1;
    for (int looks = 0; t < end || t == wall; looks++) {
        if (looks == MAX_LOOKS) {
            d = (t - wall) / 1000; /* said as far as it was looked at */
            break;
        }
        int64_t next = INT64_MAX;
        double lim = composite_at(r, c, t, &next);
        if (watts)
            lim *= r->o.volts * 3;
        lim = floor(lim * 10.0) / 10.0;
        json_int_t at = (t - wall) / 1000;
        if (!isfinite(lim)) {
            json_decref(periods);
            *err = PW_OCPP_INTERNAL_ERROR;
            *why = "GetCompositeSchedule: the connector has no maximum";
            return NULL;
        }
        if (lim != last) {
            if (at == last_at) /* two changes within a second: the later holds */
                json_array_remove(periods, json_array_size(periods) - 1);
            else if (json_array_size(periods) == MAX_COMPOSITE) {
                d = at;
                break;
            }
            json_array_append_new(periods,
                                  json_pack("{s:I, s:f}", "startPeriod", at, "limit", lim));
            last = lim;
            last_at = at;
        }
        if (next <= t || next == INT64_MAX)
            break;
        t = next;
    }
    char start[32];
    pw_ocpp_time_format(wall, start, sizeof start);
    return json_pack("{s:s, s:I, s:s, s:{s:I, s:s, s:o}}", "status", "Accepted", "connectorId", c,
                     "scheduleStart", start, "chargingSchedule", "duration", d, "chargingRateUnit",
                     watts ? "W" : "A", "chargingSchedulePeriod", periods);
}

/* ---- the CSMS's profiles kept across a restart
 * ---------------------------------------------------- */

json_t *pw_ocpp_relay_profiles_dump(const pw_ocpp_relay *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < MAX_PROFILES; i++) {
        const profile *q = &r->prof[i];
        if (!q->used)
            continue;
        json_t *el = json_deep_copy(q->raw);
        json_object_set_new(el, "origin", json_integer(q->origin));
        json_array_append_new(a, el);
    }
    return a;
}

/* One element of a dump, taken as its SetChargingProfile would be; 0 when held. */
static int load_one(pw_ocpp_relay *r, size_t i, const json_t *el, int64_t wall)
{
    const json_t *origin = json_object_get(el, "origin");
    const char *key;
    const json_t *v;
    int64_t at = wall;
    if (!json_is_object(el)) {
        dropped(r, "profile_load", "element %zu: not an object", i);
        return -1;
    }
    json_object_foreach((json_t *)el, key, v)
    {
        if (strcmp(key, "connectorId") != 0 && strcmp(key, "csChargingProfiles") != 0 &&
            strcmp(key, "origin") != 0) {
            dropped(r, "profile_load", "element %zu: unknown field", i);
            return -1;
        }
    }
    if (origin) {
        if (!json_is_integer(origin) || json_integer_value(origin) < 0 ||
            json_integer_value(origin) >= MAX_TIME_MS) {
            dropped(r, "profile_load", "element %zu: origin is not a time in ms", i);
            return -1;
        }
        at = json_integer_value(origin);
    }
    pw_ocpp_frame f = {.kind = PW_OCPP_CALL, .id = "load", .action = "SetChargingProfile"};
    f.payload = json_deep_copy(el);
    json_object_del(f.payload, "origin");
    pw_ocpp_cs_call c;
    pw_ocpp_fault fault;
    char why[120] = "";
    int rc = -1;
    if (pw_ocpp_decode_cs_call(&f, &c, &fault) != 0)
        dropped(r, "profile_load", "element %zu: %s", i, fault.text);
    else if (strcmp(set_profile(r, &c.u.profile, f.payload, at, why, sizeof why), "Accepted"))
        dropped(r, "profile_load", "element %zu: %s", i, why);
    else
        rc = 0;
    json_decref(f.payload);
    return rc;
}

int pw_ocpp_relay_profiles_load(pw_ocpp_relay *r, const json_t *dump, int64_t wall)
{
    if (!json_is_array(dump)) {
        dropped(r, "profile_load", "the profiles kept are not an array");
        return -1;
    }
    r->wall = wall;
    r->loading = true;
    int skipped = 0;
    for (size_t i = 0; i < json_array_size(dump); i++)
        skipped += load_one(r, i, json_array_get(dump, i), wall) != 0;
    r->loading = false;
    report_caps(r, false);
    return skipped;
}

/* ---- the queue up
 * -------------------------------------------------------------------------------- */

static item *q_at(pw_ocpp_relay *r, size_t i)
{
    return &r->q[(r->q_head + i) % r->o.max_queue];
}

/* The item leaves the queue: so does its kept copy. */
static void q_forget(pw_ocpp_relay *r, const item *it)
{
    if (it->kept)
        keep(r, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_DONE, .seq = it->seq});
}

static void q_pop(pw_ocpp_relay *r)
{
    item *it = q_at(r, 0);
    q_forget(r, it);
    json_decref(it->payload);
    *it = (item){.tx = -1};
    r->q_head = (r->q_head + 1) % r->o.max_queue;
    r->q_len--;
    r->in_flight = false;
}

/* The relay goes: what is kept stays kept. */
static void q_clear(pw_ocpp_relay *r)
{
    for (size_t i = 0; i < r->q_len; i++)
        json_decref(q_at(r, i)->payload);
    r->q_len = 0;
}

/* Removes the item at i (not the one in flight), keeping the order of the rest. */
static void q_remove(pw_ocpp_relay *r, size_t i)
{
    q_forget(r, q_at(r, i));
    json_decref(q_at(r, i)->payload);
    for (; i + 1 < r->q_len; i++)
        *q_at(r, i) = *q_at(r, i + 1);
    *q_at(r, i) = (item){.tx = -1};
    r->q_len--;
}

static bool minor_action(const char *action)
{
    return strcmp(action, "StatusNotification") == 0 || strcmp(action, "MeterValues") == 0;
}

/* Makes room for one more call when the queue is full: the oldest StatusNotification or
 * MeterValues not in flight goes (a later status supersedes it; a transaction's energy is in its
 * StopTransaction). False when every call waiting is of another kind. */
static bool q_room(pw_ocpp_relay *r, const char *action)
{
    if (r->q_len < r->o.max_queue)
        return true;
    for (size_t i = r->in_flight ? 1 : 0; i < r->q_len; i++)
        if (minor_action(q_at(r, i)->action)) {
            dropped(r, "queue_full", "%s dropped for a %s: %zu calls wait for the CSMS already",
                    q_at(r, i)->action, action, r->q_len);
            q_remove(r, i);
            return true;
        }
    dropped(r, "queue_full", "%s: %zu calls wait for the CSMS already", action, r->q_len);
    return false;
}

static int connector_of(const json_t *payload)
{
    json_int_t c = json_integer_value(json_object_get(payload, "connectorId"));
    return c > 0 && c <= INT32_MAX ? (int)c : 0;
}

/* Queues a call for the CSMS behind the others (payload stolen) as number seq; a new one (not
 * restored) is reported through sink.keep. Its item, or NULL when there was no room. */
static item *q_push(pw_ocpp_relay *r, const char *action, json_t *payload, int tx_slot,
                    uint64_t seq, bool restored)
{
    if (!q_room(r, action)) {
        json_decref(payload);
        if (restored) /* it is not kept any more either */
            keep(r, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_DONE, .seq = seq});
        return NULL;
    }
    item *it = q_at(r, r->q_len++);
    *it = (item){.payload = payload, .tx = tx_slot, .seq = seq, .kept = true};
    pw_strlcpy(it->action, action, sizeof it->action);
    if (!restored) {
        char *text = json_dumps(payload, JSON_COMPACT);
        keep(r, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_CALL,
                                     .seq = seq,
                                     .action = action,
                                     .payload = text ? text : "{}",
                                     .connector = connector_of(payload)});
        free(text);
    }
    return it;
}

/* Puts a call before all others (payload stolen); nothing is in flight. */
static void q_push_front(pw_ocpp_relay *r, const char *action, json_t *payload)
{
    if (!q_room(r, action)) {
        /* Only transaction calls wait: the newest gives way to the boot, which must go first. */
        q_remove(r, r->q_len - 1);
    }
    r->q_head = (r->q_head + r->o.max_queue - 1) % r->o.max_queue;
    r->q_len++;
    item *it = q_at(r, 0);
    *it = (item){.tx = -1, .payload = payload, .seq = ++r->seq};
    pw_strlcpy(it->action, action, sizeof it->action);
}

/* Sends the head of the queue when nothing is in flight, mapping phasewise's transaction ids to
 * the CSMS's; calls that cannot be mapped are dropped (or sent without the optional id). */
static void pump(pw_ocpp_relay *r, uint64_t now)
{
    while (r->up != UP_DOWN && r->q_len && !r->in_flight) {
        item *it = q_at(r, 0);
        bool boot = strcmp(it->action, "BootNotification") == 0;
        if (r->up == UP_BOOTING && (!boot || now < r->boot_retry_at))
            return;
        json_t *txid = json_object_get(it->payload, "transactionId");
        if (txid && !it->mapped && strcmp(it->action, "StartTransaction") != 0) {
            char local[PW_OCPP_TXID_LEN];
            snprintf(local, sizeof local, "%" JSON_INTEGER_FORMAT, json_integer_value(txid));
            tx *t = tx_by_local(r, local);
            if (t && t->csms[0]) {
                json_object_set_new(it->payload, "transactionId",
                                    json_integer(strtoll(t->csms, NULL, 10)));
                it->mapped = true;
                if (strcmp(it->action, "StopTransaction") == 0)
                    t->ended = true;
            } else if (strcmp(it->action, "MeterValues") == 0) {
                json_object_del(it->payload, "transactionId");
            } else {
                dropped(r, "unknown_tx",
                        "%s of transaction %s: the CSMS never got its start (it began while the "
                        "upstream was down)",
                        it->action, local);
                if (t)
                    tx_free(r, t);
                q_pop(r);
                continue;
            }
        }
        /* A call keeps its number when sent again; a boot sent again is a new call. */
        if (!it->kept)
            it->seq = ++r->seq;
        snprintf(r->flight_id, sizeof r->flight_id, "pw-%llu", (unsigned long long)it->seq);
        size_t len;
        char *text = pw_ocpp_call_text(r->flight_id, it->action, json_incref(it->payload), &len);
        r->in_flight = true;
        r->flight_at = now;
        r->st.up_calls++;
        send_text(r, true, text, len);
    }
}

/* ---- the CSMS's verdict on a tag (authorize_csms) -------------------------------------------- */

static enum pw_ocpp_answer fallback(pw_ocpp_relay *r, const char *tag)
{
    return r->sink.authorize ? r->sink.authorize(r->sink.ud, tag) : PW_OCPP_ACCEPTED;
}

/* The charge point gets its answer: the CSMS's, or the fallback's. */
static void ask_answer(pw_ocpp_relay *r, asked *q, enum pw_ocpp_answer status)
{
    size_t len;
    char *text = pw_ocpp_result_text(q->cp_id, pw_ocpp_authorize_conf(status), &len);
    send_text(r, false, text, len);
    q->used = false;
}

static void ask_fallback_all(pw_ocpp_relay *r)
{
    for (size_t i = 0; i < MAX_ASKED; i++)
        if (r->ask[i].used)
            ask_answer(r, &r->ask[i], fallback(r, r->ask[i].tag));
}

static void verdict_set(pw_ocpp_relay *r, const char *tag, enum pw_ocpp_answer status, uint64_t now)
{
    verdict *v = &r->verd[0];
    for (size_t i = 0; i < MAX_VERDICTS; i++) {
        if (strcmp(r->verd[i].tag, tag) == 0) {
            v = &r->verd[i];
            break;
        }
        if (r->verd[i].at < v->at)
            v = &r->verd[i]; /* the oldest goes */
    }
    pw_strlcpy(v->tag, tag, sizeof v->tag);
    v->status = status;
    v->at = now ? now : 1;
}

bool pw_ocpp_relay_verdict(const pw_ocpp_relay *r, const char *tag, uint64_t now,
                           enum pw_ocpp_answer *out)
{
    for (size_t i = 0; tag[0] && i < MAX_VERDICTS; i++)
        if (r->verd[i].at && strcmp(r->verd[i].tag, tag) == 0 && now - r->verd[i].at < VERDICT_MS) {
            *out = r->verd[i].status;
            return true;
        }
    return false;
}

/* The CSMS answered a charge point's Authorize (ok false: with an error). */
static void authorize_answered(pw_ocpp_relay *r, const item *it, bool ok,
                               enum pw_ocpp_answer status, uint64_t now)
{
    const char *tag = json_string_value(json_object_get(it->payload, "idTag"));
    if (ok && tag)
        verdict_set(r, tag, status, now);
    for (size_t i = 0; i < MAX_ASKED; i++)
        if (r->ask[i].used && r->ask[i].seq == it->seq)
            ask_answer(r, &r->ask[i], ok ? status : fallback(r, r->ask[i].tag));
}

/* The CSMS answered the call in flight. */
static void up_answer(pw_ocpp_relay *r, const pw_ocpp_frame *f, uint64_t now)
{
    item *it = q_at(r, 0);
    enum pw_ocpp_action a = pw_ocpp_action_parse(it->action);
    tx *t = it->tx >= 0 ? &r->tx[it->tx] : NULL;
    if (f->kind == PW_OCPP_ERROR) {
        dropped(r, "csms_error", "%s: the CSMS answered %s %s", it->action,
                pw_ocpp_error_name(f->error), f->error_text);
        if (a == PW_OCPP_A_BOOT_NOTIFICATION)
            r->boot_retry_at = now + 10000;
        else if (a == PW_OCPP_A_START_TRANSACTION && t)
            t->csms[0] = '\0';
        else if (a == PW_OCPP_A_AUTHORIZE)
            authorize_answered(r, it, false, PW_OCPP_ACCEPTED, now);
    } else {
        r->st.up_answered++;
        enum pw_ocpp_answer status = PW_OCPP_ACCEPTED;
        int interval = 0;
        char csms_tx[PW_OCPP_TXID_LEN] = "";
        pw_ocpp_fault fault;
        if (pw_ocpp_decode_cp_result(a, f->payload, &status, &interval, csms_tx, &fault) != 0) {
            dropped(r, "csms_answer", "%s: %s", it->action, fault.text);
            status = PW_OCPP_REJECTED;
        }
        if (a == PW_OCPP_A_BOOT_NOTIFICATION) {
            if (status == PW_OCPP_ACCEPTED) {
                r->up = UP_READY;
            } else {
                int s = interval < 10 ? 10 : interval > 300 ? 300 : interval;
                r->boot_retry_at = now + (uint64_t)s * 1000u;
            }
        } else if (a == PW_OCPP_A_AUTHORIZE) {
            authorize_answered(r, it, true, status, now);
        } else if (a == PW_OCPP_A_START_TRANSACTION && t && csms_tx[0]) {
            pw_strlcpy(t->csms, csms_tx, sizeof t->csms);
            if (t->local[0])
                keep(r, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_TX,
                                             .local_tx = t->local,
                                             .csms_tx = t->csms,
                                             .connector = t->connector});
        }
    }
    if (a == PW_OCPP_A_STOP_TRANSACTION && t && t->ended) /* not a slot reused since */
        tx_free(r, t);
    if (a == PW_OCPP_A_BOOT_NOTIFICATION && r->up == UP_BOOTING) {
        /* Sent again at boot_retry_at: keep it at the head, not in flight. */
        r->in_flight = false;
        return;
    }
    q_pop(r);
}

/* ---- frames from the charge point
 * ---------------------------------------------------------------- */

static bool forwarded_up(enum pw_ocpp_action a)
{
    return a >= PW_OCPP_A_AUTHORIZE && a <= PW_OCPP_A_STOP_TRANSACTION;
}

/* The charge point answered a CSMS call: back up with the CSMS's id. */
static void down_answer(pw_ocpp_relay *r, pw_ocpp_frame *f)
{
    pending *p = NULL;
    for (size_t i = 0; i < MAX_PENDING && !p; i++)
        if (r->pend[i].used && strcmp(r->pend[i].down_id, f->id) == 0)
            p = &r->pend[i];
    if (!p) {
        dropped(r, "late_answer", "answer %s to a CSMS call no longer waiting", f->id);
        return;
    }
    p->used = false;
    if (r->up == UP_DOWN) {
        dropped(r, "upstream_down", "%s answer: the upstream is down", p->action);
        return;
    }
    if (f->kind == PW_OCPP_ERROR) {
        error_up(r, p->csms_id, f->error, f->error_text);
        return;
    }
    enum pw_ocpp_action a = pw_ocpp_action_parse(p->action);
    pw_ocpp_fault fault;
    if (a != PW_OCPP_A_UNKNOWN && pw_ocpp_check_payload(a, true, f->payload, &fault) != 0) {
        dropped(r, "cp_answer", "%s answer: %s", p->action, fault.text);
        error_up(r, p->csms_id, PW_OCPP_GENERIC_ERROR,
                 "the charge point's answer broke its schema");
        return;
    }
    result_up(r, p->csms_id, json_incref(f->payload));
}

enum pw_ocpp_relay_verdict pw_ocpp_relay_from_cp(pw_ocpp_relay *r, const char *text, size_t len,
                                                 uint64_t now)
{
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0) {
        pw_ocpp_frame_clear(&f);
        return PW_OCPP_RELAY_LOCAL; /* answered (or not) by phasewise's conversation */
    }
    if (f.kind != PW_OCPP_CALL) {
        bool ours = strncmp(f.id, DOWN_PREFIX, strlen(DOWN_PREFIX)) == 0;
        if (ours)
            down_answer(r, &f);
        pw_ocpp_frame_clear(&f);
        return ours ? PW_OCPP_RELAY_TAKEN : PW_OCPP_RELAY_LOCAL;
    }
    pw_ocpp_call call;
    enum pw_ocpp_action a = pw_ocpp_action_parse(f.action);
    if (!forwarded_up(a) || pw_ocpp_decode_call(&f, &call, &fault) != 0) {
        pw_ocpp_frame_clear(&f); /* phasewise refuses it; the CSMS never sees it */
        return PW_OCPP_RELAY_LOCAL;
    }
    /* The boot goes first each time the link comes back. */
    if (a == PW_OCPP_A_BOOT_NOTIFICATION) {
        json_decref(r->boot);
        r->boot = json_incref(f.payload);
        char *boot = json_dumps(r->boot, JSON_COMPACT);
        if (boot)
            keep(r, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_BOOT, .payload = boot});
        free(boot);
    }
    int slot = -1;
    if (a == PW_OCPP_A_START_TRANSACTION) {
        slot = tx_new(r);
        if (slot >= 0)
            r->tx[slot] = (tx){.used = true,
                               .connector = call.u.start.connector,
                               .start_ms = call.u.start.timestamp_ms};
        if (slot >= 0)
            pw_strlcpy(r->tx[slot].cp_call, f.id, sizeof r->tx[slot].cp_call);
    } else if (a == PW_OCPP_A_STOP_TRANSACTION) {
        tx *t = tx_by_local(r, call.u.stop.tx_id);
        if (t) {
            slot = (int)(t - r->tx);
            tx_profiles_end(r, t->local);
        }
    }
    bool ask = false;
    if (r->up == UP_DOWN && a == PW_OCPP_A_BOOT_NOTIFICATION) {
        /* Kept as r->boot: it goes first when the link is back. */
    } else if (a == PW_OCPP_A_BOOT_NOTIFICATION && r->up == UP_BOOTING && r->q_len &&
               strcmp(q_at(r, 0)->action, "BootNotification") == 0) {
        /* The boot at the head goes with the newest payload. */
        json_decref(q_at(r, 0)->payload);
        q_at(r, 0)->payload = json_incref(f.payload);
    } else {
        /* The CSMS decides on a tag when it can answer in time: the relay answers then. */
        ask = a == PW_OCPP_A_AUTHORIZE && r->o.authorize_csms && r->up == UP_READY &&
              r->q_len < ASK_QUEUE;
        item *it = q_push(r, f.action, json_incref(f.payload), slot, ++r->seq, false);
        if (it && a == PW_OCPP_A_START_TRANSACTION && slot >= 0)
            r->tx[slot].start_seq = it->seq;
        asked *q = NULL;
        for (size_t i = 0; ask && it && !q && i < MAX_ASKED; i++)
            if (!r->ask[i].used)
                q = &r->ask[i];
        if (q) {
            *q = (asked){.used = true, .seq = it->seq, .until = now + r->o.authorize_wait_ms};
            pw_strlcpy(q->cp_id, f.id, sizeof q->cp_id);
            pw_strlcpy(q->tag, call.u.id_tag, sizeof q->tag);
        }
        ask = q != NULL;
    }
    pw_ocpp_frame_clear(&f);
    pump(r, now);
    return ask ? PW_OCPP_RELAY_TAKEN : PW_OCPP_RELAY_LOCAL;
}

void pw_ocpp_relay_local_to_cp(pw_ocpp_relay *r, const char *text, size_t len)
{
    /* Only StartTransaction answers matter: skip the parse for everything else cheaply. */
    bool waiting = false;
    for (size_t i = 0; i < MAX_TX && !waiting; i++)
        waiting = r->tx[i].used && r->tx[i].cp_call[0];
    if (!waiting || len < 2 || text[1] != '3')
        return;
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0 || f.kind != PW_OCPP_RESULT) {
        pw_ocpp_frame_clear(&f);
        return;
    }
    for (size_t i = 0; i < MAX_TX; i++) {
        tx *t = &r->tx[i];
        if (!t->used || !t->cp_call[0] || strcmp(t->cp_call, f.id) != 0)
            continue;
        json_t *id = json_object_get(f.payload, "transactionId");
        if (json_is_integer(id))
            snprintf(t->local, sizeof t->local, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        t->cp_call[0] = '\0';
        if (t->local[0] && t->start_seq)
            keep(r, (pw_ocpp_relay_keep){
                        .kind = PW_OCPP_KEEP_CALL_TX, .seq = t->start_seq, .local_tx = t->local});
    }
    pw_ocpp_frame_clear(&f);
    report_caps(r, false); /* a transaction runs: the ChargePointMaxProfile is split again */
}

/* ---- a restart --------------------------------------------------------------------------------
 */

static int restore_fail(pw_ocpp_relay *r, const char *what, uint64_t seq, const char *why)
{
    dropped(r, "restore", "%s %llu left out after the restart: %s", what, (unsigned long long)seq,
            why);
    return -1;
}

/* A kept call back in the queue: checked like one from the charge point (the file is not
 * trusted more than the network), its transaction slot made or found again. */
static int restore_call(pw_ocpp_relay *r, const pw_ocpp_relay_keep *k)
{
    enum pw_ocpp_action a = k->action ? pw_ocpp_action_parse(k->action) : PW_OCPP_A_UNKNOWN;
    if (!forwarded_up(a) || a == PW_OCPP_A_BOOT_NOTIFICATION || !k->seq)
        return restore_fail(r, "call", k->seq, "not a call that is sent up");
    json_error_t je;
    json_t *p = k->payload ? json_loads(k->payload, JSON_REJECT_DUPLICATES, &je) : NULL;
    pw_ocpp_fault fault;
    if (!json_is_object(p) || pw_ocpp_check_payload(a, false, p, &fault) != 0) {
        json_decref(p);
        return restore_fail(r, k->action, k->seq, "its payload is not a valid call");
    }
    int slot = -1;
    if (a == PW_OCPP_A_START_TRANSACTION) {
        slot = tx_new(r);
        if (slot >= 0) {
            r->tx[slot] =
                (struct tx){.used = true, .connector = connector_of(p), .start_seq = k->seq};
            const char *ts = json_string_value(json_object_get(p, "timestamp"));
            if (ts && pw_ocpp_time_parse(ts, &r->tx[slot].start_ms) != 0)
                r->tx[slot].start_ms = 0;
            pw_strlcpy(r->tx[slot].local, k->local_tx ? k->local_tx : "", sizeof r->tx->local);
        }
    } else if (a == PW_OCPP_A_STOP_TRANSACTION) {
        char local[PW_OCPP_TXID_LEN];
        snprintf(local, sizeof local, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(p, "transactionId")));
        struct tx *t = tx_by_local(r, local);
        slot = t ? (int)(t - r->tx) : -1;
        if (t)
            t->stopped = true; /* no longer running for the caps */
    }
    if (k->seq > r->seq)
        r->seq = k->seq;
    return q_push(r, k->action, p, slot, k->seq, true) ? 0 : -1;
}

int pw_ocpp_relay_restore(pw_ocpp_relay *r, const pw_ocpp_relay_keep *k)
{
    json_error_t je;
    switch (k->kind) {
    case PW_OCPP_KEEP_BOOT: {
        json_t *p = k->payload ? json_loads(k->payload, JSON_REJECT_DUPLICATES, &je) : NULL;
        pw_ocpp_fault fault;
        if (!json_is_object(p) ||
            pw_ocpp_check_payload(PW_OCPP_A_BOOT_NOTIFICATION, false, p, &fault) != 0) {
            json_decref(p);
            return restore_fail(r, "BootNotification", 0, "not a valid BootNotification");
        }
        json_decref(r->boot);
        r->boot = p;
        return 0;
    }
    case PW_OCPP_KEEP_TX: {
        int slot = tx_new(r);
        if (!k->local_tx || !k->csms_tx || !k->local_tx[0] || !k->csms_tx[0] || slot < 0 ||
            strlen(k->local_tx) >= PW_OCPP_TXID_LEN || strlen(k->csms_tx) >= PW_OCPP_TXID_LEN)
            return restore_fail(r, "transaction", 0, "an id missing, too long, or no room");
        struct tx *t = &r->tx[slot];
        *t = (struct tx){.used = true, .connector = k->connector};
        pw_strlcpy(t->local, k->local_tx, sizeof t->local);
        pw_strlcpy(t->csms, k->csms_tx, sizeof t->csms);
        return 0;
    }
    case PW_OCPP_KEEP_CALL:
        return restore_call(r, k);
    default:
        return restore_fail(r, "record", k->seq, "not one that is restored");
    }
}

/* ---- frames from the CSMS ----------------------------------------------------------------------
 */

/* Calls a central system makes that the relay sends down without a reader of its own (the
 * codec checks the schema of those in its action list). */
static bool down_other(const char *action)
{
    static const char *const names[] = {"CancelReservation",   "ClearCache", "GetDiagnostics",
                                        "GetLocalListVersion", "ReserveNow", "SendLocalList",
                                        "UpdateFirmware",      NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcmp(action, names[i]) == 0)
            return true;
    return false;
}

/* Configuration keys phasewise sets itself (its measurements depend on them). */
static bool managed_key(const char *key)
{
    return strcmp(key, "MeterValuesSampledData") == 0 ||
           strcmp(key, "MeterValueSampleInterval") == 0;
}

static void answer_local(pw_ocpp_relay *r, const char *csms_id, json_t *payload)
{
    r->st.local++;
    result_up(r, csms_id, payload);
}

static void forward_down(pw_ocpp_relay *r, pw_ocpp_frame *f, uint64_t now)
{
    pending *p = NULL;
    for (size_t i = 0; i < MAX_PENDING && !p; i++)
        if (!r->pend[i].used)
            p = &r->pend[i];
    if (!p) {
        dropped(r, "busy", "%s: %d CSMS calls wait for the charge point already", f->action,
                MAX_PENDING);
        error_up(r, f->id, PW_OCPP_INTERNAL_ERROR, "too many calls waiting for the charge point");
        return;
    }
    *p = (pending){.used = true, .at = now};
    snprintf(p->down_id, sizeof p->down_id, DOWN_PREFIX "%llu", (unsigned long long)++r->seq_down);
    pw_strlcpy(p->csms_id, f->id, sizeof p->csms_id);
    pw_strlcpy(p->action, f->action, sizeof p->action);
    size_t len;
    char *text = pw_ocpp_call_text(p->down_id, f->action, json_incref(f->payload), &len);
    r->st.down_calls++;
    send_text(r, false, text, len);
}

static void csms_call(pw_ocpp_relay *r, pw_ocpp_frame *f, uint64_t now, int64_t wall)
{
    pw_ocpp_fault fault;
    enum pw_ocpp_action a = pw_ocpp_action_parse(f->action);
    if (strcmp(f->action, "GetCompositeSchedule") == 0) {
        enum pw_ocpp_error err = PW_OCPP_OK;
        const char *why = "";
        json_t *ans = composite(r, f->payload, wall, &err, &why);
        if (ans)
            answer_local(r, f->id, ans);
        else
            error_up(r, f->id, err, why);
        return;
    }
    bool down = a >= PW_OCPP_A_CHANGE_AVAILABILITY || a == PW_OCPP_A_DATA_TRANSFER;
    if (!down && !down_other(f->action)) {
        bool known = a != PW_OCPP_A_UNKNOWN;
        error_up(r, f->id, known ? PW_OCPP_NOT_SUPPORTED : PW_OCPP_NOT_IMPLEMENTED,
                 known ? "a charge point does not take this call" : "not an OCPP 1.6 action");
        r->st.local++;
        return;
    }
    if (down && pw_ocpp_check_payload(a, false, f->payload, &fault) != 0) {
        error_up(r, f->id, fault.code, fault.text);
        r->st.local++;
        return;
    }
    char why[120] = "";
    switch (a) {
    case PW_OCPP_A_SET_CHARGING_PROFILE:
    case PW_OCPP_A_CLEAR_CHARGING_PROFILE: {
        pw_ocpp_cs_call c;
        if (pw_ocpp_decode_cs_call(f, &c, &fault) != 0) {
            error_up(r, f->id, fault.code, fault.text);
            r->st.local++;
            return;
        }
        r->wall = wall;
        const char *status = a == PW_OCPP_A_SET_CHARGING_PROFILE
                                 ? set_profile(r, &c.u.profile, f->payload, wall, why, sizeof why)
                                 : clear_profiles(r, &c);
        if (why[0])
            dropped(r, "profile_rejected", "SetChargingProfile: %s", why);
        answer_local(r, f->id, status_payload(status));
        return;
    }
    case PW_OCPP_A_CHANGE_CONFIGURATION: {
        const char *key = json_string_value(json_object_get(f->payload, "key"));
        if (key && managed_key(key)) {
            dropped(r, "managed_key", "ChangeConfiguration %s: phasewise sets it", key);
            answer_local(r, f->id, status_payload("Rejected"));
            return;
        }
        break;
    }
    case PW_OCPP_A_REMOTE_STOP: {
        char csms[PW_OCPP_TXID_LEN];
        snprintf(csms, sizeof csms, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(f->payload, "transactionId")));
        tx *t = tx_by_csms(r, csms);
        if (!t || !t->local[0]) {
            answer_local(r, f->id, status_payload("Rejected"));
            return;
        }
        json_object_set_new(f->payload, "transactionId", json_integer(strtoll(t->local, NULL, 10)));
        break;
    }
    case PW_OCPP_A_REMOTE_START:
        /* The charge point only ever gets phasewise's profiles. */
        if (json_object_get(f->payload, "chargingProfile")) {
            json_object_del(f->payload, "chargingProfile");
            dropped(r, "profile_removed",
                    "RemoteStartTransaction: its chargingProfile was left out");
        }
        break;
    default:
        break;
    }
    forward_down(r, f, now);
}

void pw_ocpp_relay_from_csms(pw_ocpp_relay *r, const char *text, size_t len, uint64_t now,
                             int64_t wall)
{
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0) {
        if (f.kind == PW_OCPP_CALL && f.id[0])
            error_up(r, f.id, fault.code, fault.text);
        dropped(r, "csms_frame", "%s", fault.text);
        pw_ocpp_frame_clear(&f);
        return;
    }
    if (f.kind == PW_OCPP_CALL) {
        csms_call(r, &f, now, wall);
    } else if (r->in_flight && strcmp(f.id, r->flight_id) == 0) {
        up_answer(r, &f, now);
        pump(r, now);
    } else {
        dropped(r, "late_answer", "CSMS answer %s to no call in flight", f.id);
    }
    pw_ocpp_frame_clear(&f);
}

/* ---- link and time
 * ------------------------------------------------------------------------------- */

void pw_ocpp_relay_upstream(pw_ocpp_relay *r, bool up, uint64_t now)
{
    for (size_t i = 0; i < MAX_PENDING; i++)
        r->pend[i].used = false;
    /* The call in flight was not answered: it is sent again, under a new id. */
    r->in_flight = false;
    /* A boot still queued goes: the newest one goes first below. */
    for (size_t i = 0; i < r->q_len;)
        if (strcmp(q_at(r, i)->action, "BootNotification") == 0)
            q_remove(r, i);
        else
            i++;
    if (!up) {
        r->up = UP_DOWN;
        ask_fallback_all(r); /* no verdict is coming */
        return;
    }
    r->up = r->boot ? UP_BOOTING : UP_READY;
    r->boot_retry_at = now;
    if (r->boot)
        q_push_front(r, "BootNotification", json_incref(r->boot));
    pump(r, now);
}

bool pw_ocpp_relay_is_up(const pw_ocpp_relay *r)
{
    return r->up != UP_DOWN;
}

void pw_ocpp_relay_cp_gone(pw_ocpp_relay *r)
{
    for (size_t i = 0; i < MAX_PENDING; i++)
        r->pend[i].used = false;
    for (size_t i = 0; i < MAX_ASKED; i++) /* its next connection asks again */
        r->ask[i].used = false;
}

void pw_ocpp_relay_poll(pw_ocpp_relay *r, uint64_t now, int64_t wall)
{
    /* The CSMS's schedules move on: caps that changed since are reported. */
    r->wall = wall;
    r->clock_known = true;
    r->poll_now = now;
    r->wall_at_poll = wall;
    profiles_expire(r);
    report_caps(r, false);
    if (r->in_flight && now - r->flight_at >= r->o.call_timeout_ms) {
        item *it = q_at(r, 0);
        dropped(r, "csms_timeout", "%s: no answer from the CSMS in %u ms", it->action,
                r->o.call_timeout_ms);
        if (strcmp(it->action, "BootNotification") == 0) {
            r->in_flight = false;
            r->boot_retry_at = now + 10000;
        } else {
            q_pop(r);
        }
    }
    for (size_t i = 0; i < MAX_PENDING; i++)
        if (r->pend[i].used && now - r->pend[i].at >= r->o.call_timeout_ms)
            r->pend[i].used = false;
    for (size_t i = 0; i < MAX_ASKED; i++)
        if (r->ask[i].used && now >= r->ask[i].until) {
            dropped(r, "authorize_late", "Authorize %s: no verdict from the CSMS in %u ms",
                    r->ask[i].tag, r->o.authorize_wait_ms);
            ask_answer(r, &r->ask[i], fallback(r, r->ask[i].tag));
        }
    pump(r, now);
}

uint64_t pw_ocpp_relay_next_deadline(const pw_ocpp_relay *r)
{
    uint64_t next = UINT64_MAX;
    if (r->in_flight)
        next = r->flight_at + r->o.call_timeout_ms;
    else if (r->up == UP_BOOTING && r->q_len)
        next = r->boot_retry_at;
    for (size_t i = 0; i < MAX_PENDING; i++)
        if (r->pend[i].used && r->pend[i].at + r->o.call_timeout_ms < next)
            next = r->pend[i].at + r->o.call_timeout_ms;
    for (size_t i = 0; i < MAX_ASKED; i++)
        if (r->ask[i].used && r->ask[i].until < next)
            next = r->ask[i].until;
    uint64_t prof = profiles_deadline(r);
    return prof < next ? prof : next;
}

const pw_ocpp_relay_stats *pw_ocpp_relay_stats_get(const pw_ocpp_relay *r)
{
    ((pw_ocpp_relay *)r)->st.queued = r->q_len;
    return &r->st;
}

/* ---- life
 * ------------------------------------------------------------------------------------------ */

static void set_opts(pw_ocpp_relay *r, const pw_ocpp_relay_opts *o)
{
    size_t old_queue = r->o.max_queue;
    r->o = *o;
    if (r->o.n_connectors > PW_OCPP_MAX_CONNECTORS)
        r->o.n_connectors = PW_OCPP_MAX_CONNECTORS;
    if (!r->o.max_queue)
        r->o.max_queue = 1000;
    if (!r->o.call_timeout_ms)
        r->o.call_timeout_ms = 30000;
    if (!(r->o.volts > 0))
        r->o.volts = 230.0;
    r->o.max_queue = old_queue ? old_queue : r->o.max_queue; /* the ring keeps its size */
}

pw_ocpp_relay *pw_ocpp_relay_new(const pw_ocpp_relay_opts *opts, const pw_ocpp_relay_sink *sink)
{
    pw_ocpp_relay *r = pw_xcalloc(1, sizeof *r);
    set_opts(r, opts);
    r->sink = *sink;
    r->q = pw_xcalloc(r->o.max_queue, sizeof *r->q);
    r->seq = opts->first_seq ? opts->first_seq - 1 : 0;
    for (size_t i = 0; i < r->o.max_queue; i++)
        r->q[i].tx = -1;
    for (size_t k = 0; k < PW_OCPP_MAX_CONNECTORS; k++)
        r->cap_sent[k] = INFINITY;
    return r;
}

void pw_ocpp_relay_reconfigure(pw_ocpp_relay *r, const pw_ocpp_relay_opts *opts)
{
    set_opts(r, opts);
    report_caps(r, true);
}

void pw_ocpp_relay_free(pw_ocpp_relay *r)
{
    if (!r)
        return;
    q_clear(r);
    free(r->q);
    for (size_t i = 0; i < MAX_PROFILES; i++)
        prof_free(&r->prof[i]);
    json_decref(r->boot);
    free(r);
}
