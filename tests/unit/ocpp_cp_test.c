/* One charge point's OCPP conversation (ocpp/pw_ocpp_cp.h) in fake time, against a tiny fake
 * charge point built on the codec: it answers phasewise's calls as each test configures
 * (Accepted, Rejected, NotSupported, a CALLERROR, silence, or held until released), and every
 * frame phasewise sends is parsed back with the codec. The tests cover the boot answer, setup
 * order and the measurand fallback, the failsafe default before any session, priorities (cuts
 * before setup before raises), the minimum interval and the daily budget for raises only, rounding,
 * numberPhases, TxProfile held until a transaction, the TxDefaultProfile quirks and what they do
 * at the end of a transaction, rejected and ignored profiles, Current.Offered, the rotation
 * warning, timeouts, unexpected ids, bad payloads, floods, reconfiguration and a connection
 * that never boots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_cfg.h"
#include "pw_ocpp_cp.h"
#include "pw_util.h"

#define A_EQ(x, y) assert_float_equal((x), (y), 1e-6)
#define T0         UINT64_C(1000000)      /* monotonic start */
#define WALL0      INT64_C(1790000000000) /* wall = WALL0 + now */
#define MAXREC     1024
#define MAXEV      128

enum mode { M_ACCEPT, M_REJECT, M_NOTSUPP, M_ERROR, M_SILENT, M_UNKNOWN };

/* One frame phasewise sent, parsed back. */
typedef struct rec {
    enum pw_ocpp_frame_kind kind;
    char id[PW_OCPP_ID_LEN];
    enum pw_ocpp_action action; /* CALL */
    pw_ocpp_cs_call cs;         /* CALL, decoded as a charge point reads it */
    json_t *payload;            /* RESULT */
    enum pw_ocpp_error error;   /* ERROR */
    uint64_t now;
} rec;

typedef struct ev {
    char kind[32];
    char detail[320];
} ev;

typedef struct h {
    pw_ocpp_cp *cp;
    pw_ocpp_cp_opts o;
    uint64_t now;
    rec sent[MAXREC];
    size_t n_sent, n_seen;
    /* The fake charge point. */
    enum mode m_tx, m_txdef, m_getconf, m_change, m_trigger, m_clear;
    const char *reject_measurand;
    const char *rotation;
    bool hold;
    size_t held[64];
    size_t n_held;
    unsigned cp_seq;
    /* The sink. */
    ev ev[MAXEV];
    size_t n_ev;
    ev rej[MAXEV];
    size_t n_rej;
    size_t n_evse[PW_OCPP_MAX_CONNECTORS + 1];
    size_t n_stopped;
    int stopped_connector;
    size_t n_booted;
    const pw_ocpp_quirks *booted_q;
    enum pw_ocpp_answer auth;
} h;

static int64_t wall_of(uint64_t now)
{
    return WALL0 + (int64_t)now;
}

/* ---- the sink ------------------------------------------------------------------------------- */

static void s_send(void *ud, const char *text, size_t len)
{
    h *t = ud;
    assert_true(t->n_sent < MAXREC);
    rec *r = &t->sent[t->n_sent++];
    memset(r, 0, sizeof *r);
    r->now = t->now;
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0) {
        fail_msg("phasewise sent %.*s: %s", (int)len, text, fault.text);
    }
    r->kind = f.kind;
    pw_strlcpy(r->id, f.id, sizeof r->id);
    if (f.kind == PW_OCPP_CALL) {
        r->action = pw_ocpp_action_parse(f.action);
        if (pw_ocpp_decode_cs_call(&f, &r->cs, &fault) != 0) {
            fail_msg("phasewise sent %.*s: %s", (int)len, text, fault.text);
        }
    } else if (f.kind == PW_OCPP_RESULT) {
        r->payload = json_incref(f.payload);
    } else {
        r->error = f.error;
    }
    pw_ocpp_frame_clear(&f);
}

static void s_booted(void *ud, const pw_ocpp_boot *b, const pw_ocpp_quirks *q)
{
    h *t = ud;
    (void)b;
    t->n_booted++;
    t->booted_q = q;
}

static void s_evse(void *ud, int connector, const pw_ocpp_evse *e)
{
    h *t = ud;
    (void)e;
    assert_true(connector >= 0 && connector <= PW_OCPP_MAX_CONNECTORS);
    t->n_evse[connector]++;
}

static void s_stopped(void *ud, int connector, const pw_ocpp_stop_tx *s)
{
    h *t = ud;
    (void)s;
    t->n_stopped++;
    t->stopped_connector = connector;
}

static enum pw_ocpp_answer s_authorize(void *ud, const char *tag)
{
    h *t = ud;
    return strcmp(tag, "BAD") == 0 ? PW_OCPP_BLOCKED : t->auth;
}

static void s_event(void *ud, const char *kind, const char *detail)
{
    h *t = ud;
    assert_true(t->n_ev < MAXEV);
    snprintf(t->ev[t->n_ev].kind, sizeof t->ev[0].kind, "%s", kind);
    snprintf(t->ev[t->n_ev].detail, sizeof t->ev[0].detail, "%s", detail);
    t->n_ev++;
}

static void s_rejected(void *ud, const char *reason, const char *text)
{
    h *t = ud;
    if (t->n_rej < MAXEV) {
        snprintf(t->rej[t->n_rej].kind, sizeof t->rej[0].kind, "%s", reason);
        snprintf(t->rej[t->n_rej].detail, sizeof t->rej[0].detail, "%s", text);
    }
    t->n_rej++;
}

/* ---- the fake charge point ---------------------------------------------------------------- */

static const char *mode_status(enum mode m)
{
    switch (m) {
    case M_ACCEPT:
        return "Accepted";
    case M_REJECT:
        return "Rejected";
    case M_NOTSUPP:
        return "NotSupported";
    case M_UNKNOWN:
        return "Unknown";
    default:
        return "Accepted";
    }
}

static json_t *config_answer(const h *t, const pw_ocpp_cs_call *cs)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < cs->u.get_config.n; i++) {
        const char *k = cs->u.get_config.keys[i];
        const char *v = "1";
        if (strcmp(k, "ConnectorPhaseRotation") == 0) {
            if (t->rotation == NULL) {
                continue;
            }
            v = t->rotation;
        } else if (strcmp(k, "MeterValuesSampledData") == 0) {
            v = "Energy.Active.Import.Register";
        } else if (strcmp(k, "SupportedFeatureProfiles") == 0) {
            v = "Core,SmartCharging,RemoteTrigger";
        }
        json_array_append_new(keys,
                              json_pack("{s:s,s:b,s:s}", "key", k, "readonly", 0, "value", v));
    }
    return json_pack("{s:o}", "configurationKey", keys);
}

/* Answers the call phasewise sent as sent[i], as configured. */
static void fake_answer(h *t, size_t i)
{
    char id[PW_OCPP_ID_LEN];
    pw_ocpp_cs_call cs = t->sent[i].cs; /* copied: receiving appends to sent */
    pw_strlcpy(id, t->sent[i].id, sizeof id);
    enum mode m = M_ACCEPT;
    json_t *payload = NULL;
    switch (t->sent[i].action) {
    case PW_OCPP_A_SET_CHARGING_PROFILE:
        m = cs.u.profile.purpose == PW_OCPP_TX ? t->m_tx : t->m_txdef;
        break;
    case PW_OCPP_A_GET_CONFIGURATION:
        m = t->m_getconf;
        if (m == M_ACCEPT) {
            payload = config_answer(t, &cs);
        }
        break;
    case PW_OCPP_A_CHANGE_CONFIGURATION:
        m = t->m_change;
        if (t->reject_measurand && strcmp(cs.u.change_config.key, "MeterValuesSampledData") == 0 &&
            strstr(cs.u.change_config.value, t->reject_measurand)) {
            m = M_NOTSUPP;
        }
        break;
    case PW_OCPP_A_TRIGGER_MESSAGE:
        m = t->m_trigger;
        break;
    case PW_OCPP_A_CLEAR_CHARGING_PROFILE:
        m = t->m_clear;
        break;
    default:
        fail_msg("phasewise sent an unexpected action %d", t->sent[i].action);
    }
    char *text = NULL;
    size_t len = 0;
    if (m == M_SILENT) {
        json_decref(payload);
        return;
    }
    if (m == M_ERROR) {
        json_decref(payload);
        text = pw_ocpp_error_text(id, PW_OCPP_INTERNAL_ERROR, "boom", &len);
    } else {
        if (payload == NULL) {
            payload = json_pack("{s:s}", "status", mode_status(m));
        }
        text = pw_ocpp_result_text(id, payload, &len);
    }
    assert_int_equal(pw_ocpp_cp_receive(t->cp, text, len, t->now, wall_of(t->now)), 0);
    free(text);
}

/* The fake charge point reads what phasewise sent and answers calls (or holds them). */
static void fake_run(h *t)
{
    while (t->n_seen < t->n_sent) {
        size_t i = t->n_seen++;
        if (t->sent[i].kind != PW_OCPP_CALL) {
            continue;
        }
        if (t->hold) {
            assert_true(t->n_held < 64);
            t->held[t->n_held++] = i;
        } else {
            fake_answer(t, i);
        }
    }
}

/* Answers the oldest held call. */
static void release(h *t)
{
    assert_true(t->n_held > 0);
    size_t i = t->held[0];
    memmove(t->held, t->held + 1, (t->n_held - 1) * sizeof t->held[0]);
    t->n_held--;
    fake_answer(t, i);
    fake_run(t);
}

/* A call of the charge point's; returns phasewise's answer (NULL: none). */
static rec *cp_call_rc(h *t, const char *action, json_t *payload, int *rc)
{
    char id[32];
    snprintf(id, sizeof id, "cp-%u", ++t->cp_seq);
    size_t len = 0;
    char *text = pw_ocpp_call_text(id, action, payload, &len);
    size_t before = t->n_sent;
    *rc = pw_ocpp_cp_receive(t->cp, text, len, t->now, wall_of(t->now));
    free(text);
    rec *ans = NULL;
    for (size_t i = before; i < t->n_sent && ans == NULL; i++) {
        if (t->sent[i].kind != PW_OCPP_CALL && strcmp(t->sent[i].id, id) == 0) {
            ans = &t->sent[i];
        }
    }
    fake_run(t);
    return ans;
}

static rec *cp_call(h *t, const char *action, json_t *payload)
{
    int rc = 0;
    rec *r = cp_call_rc(t, action, payload, &rc);
    assert_int_equal(rc, 0);
    return r;
}

static const char *status_of(const rec *r, enum pw_ocpp_action a)
{
    enum pw_ocpp_answer st;
    pw_ocpp_fault fault;
    assert_non_null(r);
    assert_int_equal(r->kind, PW_OCPP_RESULT);
    assert_int_equal(pw_ocpp_decode_cp_result(a, r->payload, &st, NULL, NULL, &fault), 0);
    return pw_ocpp_answer_name(st);
}

/* Time passes to end, the state machine polled at each of its deadlines. */
static void run_until(h *t, uint64_t end)
{
    for (int guard = 0; guard < 10000; guard++) {
        uint64_t d = pw_ocpp_cp_next_deadline(t->cp);
        if (d > end) {
            break;
        }
        if (d > t->now) {
            t->now = d;
        }
        pw_ocpp_cp_poll(t->cp, t->now, wall_of(t->now));
        fake_run(t);
        /* Never a busy loop: a deadline not in the future after a poll means work left. */
        assert_true(pw_ocpp_cp_next_deadline(t->cp) > t->now);
    }
    t->now = end;
}

static void advance(h *t, uint64_t ms)
{
    run_until(t, t->now + ms);
}

/* The core's wish for a connector; the fake charge point then answers what was sent. */
static bool limit(h *t, int connector, double a, uint8_t phases, uint64_t now)
{
    bool ok = pw_ocpp_cp_set_limit(t->cp, connector, a, phases, now);
    fake_run(t);
    return ok;
}

/* ---- calls of the charge point's ------------------------------------------------------------ */

static rec *boot_as(h *t, const char *vendor, const char *model)
{
    pw_ocpp_boot b;
    memset(&b, 0, sizeof b);
    snprintf(b.vendor, sizeof b.vendor, "%s", vendor);
    snprintf(b.model, sizeof b.model, "%s", model);
    return cp_call(t, "BootNotification", pw_ocpp_boot_req(&b));
}

static rec *status_note(h *t, int connector, enum pw_ocpp_status s)
{
    pw_ocpp_status_note n;
    memset(&n, 0, sizeof n);
    n.connector = connector;
    n.status = s;
    snprintf(n.error_code, sizeof n.error_code, "NoError");
    return cp_call(t, "StatusNotification", pw_ocpp_status_req(&n));
}

/* StartTransaction; returns the transaction id phasewise gave (static buffer). */
static const char *start_tx(h *t, int connector, const char *tag)
{
    static char tx[PW_OCPP_TXID_LEN];
    pw_ocpp_start_tx s;
    memset(&s, 0, sizeof s);
    s.connector = connector;
    snprintf(s.id_tag, sizeof s.id_tag, "%s", tag);
    s.meter_start_wh = 1000;
    s.timestamp_ms = wall_of(t->now);
    rec *r = cp_call(t, "StartTransaction", pw_ocpp_start_req(&s));
    enum pw_ocpp_answer st;
    pw_ocpp_fault fault;
    assert_non_null(r);
    assert_int_equal(
        pw_ocpp_decode_cp_result(PW_OCPP_A_START_TRANSACTION, r->payload, &st, NULL, tx, &fault),
        0);
    return tx;
}

static void stop_tx(h *t, const char *tx)
{
    pw_ocpp_stop_tx s;
    memset(&s, 0, sizeof s);
    snprintf(s.tx_id, sizeof s.tx_id, "%s", tx);
    s.meter_stop_wh = 5000;
    s.timestamp_ms = wall_of(t->now);
    rec *r = cp_call(t, "StopTransaction", pw_ocpp_stop_req(&s));
    assert_non_null(r);
    assert_int_equal(r->kind, PW_OCPP_RESULT);
}

/* MeterValues: per-phase currents (negative: absent), Current.Offered (negative: absent). */
static void meter(h *t, int connector, double l1, double l2, double l3, double offered)
{
    pw_ocpp_meter m;
    memset(&m, 0, sizeof m);
    m.connector = connector;
    m.timestamp_ms = wall_of(t->now);
    double l[3] = {l1, l2, l3};
    for (int k = 0; k < 3; k++) {
        if (l[k] >= 0) {
            m.has_current[k] = true;
            m.current_a[k] = l[k];
        }
    }
    if (offered >= 0) {
        m.has_offered = true;
        m.offered_a = offered;
    }
    m.has_energy = true;
    m.energy_wh = 4242;
    rec *r = cp_call(t, "MeterValues", pw_ocpp_meter_req(&m));
    assert_non_null(r);
    assert_int_equal(r->kind, PW_OCPP_RESULT);
}

/* ---- looking at what phasewise sent --------------------------------------------------------- */

static size_t n_calls(const h *t, size_t from, enum pw_ocpp_action a)
{
    size_t n = 0;
    for (size_t i = from; i < t->n_sent; i++) {
        n += t->sent[i].kind == PW_OCPP_CALL && t->sent[i].action == a;
    }
    return n;
}

/* The index of the k-th call (any action) from index from; fails if none. */
static size_t call_at(const h *t, size_t from, size_t k)
{
    for (size_t i = from; i < t->n_sent; i++) {
        if (t->sent[i].kind == PW_OCPP_CALL && k-- == 0) {
            return i;
        }
    }
    fail_msg("fewer calls than expected");
    return 0;
}

/* The last SetChargingProfile from index from, or NULL. */
static const pw_ocpp_profile *last_profile(const h *t, size_t from)
{
    const pw_ocpp_profile *p = NULL;
    for (size_t i = from; i < t->n_sent; i++) {
        if (t->sent[i].kind == PW_OCPP_CALL &&
            t->sent[i].action == PW_OCPP_A_SET_CHARGING_PROFILE) {
            p = &t->sent[i].cs.u.profile;
        }
    }
    return p;
}

static size_t n_events(const h *t, const char *kind, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_ev; i++) {
        n +=
            strcmp(t->ev[i].kind, kind) == 0 && (needle == NULL || strstr(t->ev[i].detail, needle));
    }
    return n;
}

static const pw_ocpp_evse *evse(const h *t, int connector)
{
    const pw_ocpp_evse *e = pw_ocpp_cp_evse(t->cp, connector);
    assert_non_null(e);
    return e;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static void add_connector(pw_ocpp_cp_opts *o, int k, double min_a, double max_a, double fs,
                          bool switch_phases, const char *rotation)
{
    pw_ocpp_connector_cfg *c = &o->connectors[o->n_connectors++];
    memset(c, 0, sizeof *c);
    c->connector = k;
    c->min_a = min_a;
    c->max_a = max_a;
    c->failsafe_a = fs;
    c->can_switch_phases = switch_phases;
    snprintf(c->rotation, sizeof c->rotation, "%s", rotation);
}

/* Two connectors, 6-16 A, failsafe 8 A and 6 A; 1p/3p switching on connector 1. */
static h *new_h(const char *quirks)
{
    h *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->now = T0;
    t->auth = PW_OCPP_ACCEPTED;
    pw_ocpp_cp_default_opts(&t->o);
    t->o.quirks = quirks;
    add_connector(&t->o, 1, 6, 16, 8, true, "RST");
    add_connector(&t->o, 2, 6, 16, 6, false, "RST");
    return t;
}

static void open_h(h *t)
{
    pw_ocpp_cp_sink sink = {.ud = t,
                            .send = s_send,
                            .booted = s_booted,
                            .evse = s_evse,
                            .tx_stopped = s_stopped,
                            .authorize = s_authorize,
                            .event = s_event,
                            .rejected = s_rejected};
    t->cp = pw_ocpp_cp_new(&t->o, &sink, t->now);
    assert_non_null(t->cp);
}

/* Opened, booted and through setup. */
static h *ready_h(const char *quirks)
{
    h *t = new_h(quirks);
    open_h(t);
    boot_as(t, "Acme", "Box");
    assert_true(pw_ocpp_cp_ready(t->cp));
    return t;
}

static void free_h(h *t)
{
    pw_ocpp_cp_free(t->cp);
    for (size_t i = 0; i < t->n_sent; i++) {
        json_decref(t->sent[i].payload);
    }
    free(t);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* BootNotification: Accepted with the heartbeat interval and the current time; the quirks are
 * chosen by vendor and model; the other calls of a charge point are answered as they should. */
static void test_boot_and_answers(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->o.heartbeat_s = 123;
    open_h(t);
    rec *r = boot_as(t, "abb", "CDT_TACW22::NET_WIFI");
    enum pw_ocpp_answer st;
    int interval = 0;
    pw_ocpp_fault fault;
    assert_int_equal(pw_ocpp_decode_cp_result(PW_OCPP_A_BOOT_NOTIFICATION, r->payload, &st,
                                              &interval, NULL, &fault),
                     0);
    assert_int_equal(st, PW_OCPP_ACCEPTED);
    assert_int_equal(interval, 123);
    int64_t ct = 0;
    assert_int_equal(
        pw_ocpp_time_parse(json_string_value(json_object_get(r->payload, "currentTime")), &ct), 0);
    assert_true(llabs(ct - wall_of(t->now)) < 1000);
    assert_int_equal(t->n_booted, 1);
    assert_string_equal(t->booted_q->name, "abb-terra-ac");
    assert_true(pw_ocpp_cp_booted(t->cp));
    assert_string_equal(pw_ocpp_cp_boot(t->cp)->vendor, "abb");

    r = cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req());
    assert_int_equal(r->kind, PW_OCPP_RESULT);
    assert_non_null(json_object_get(r->payload, "currentTime"));
    assert_string_equal(
        status_of(cp_call(t, "Authorize", pw_ocpp_authorize_req("BAD")), PW_OCPP_A_AUTHORIZE),
        "Blocked");
    assert_string_equal(
        status_of(cp_call(t, "Authorize", pw_ocpp_authorize_req("GOOD")), PW_OCPP_A_AUTHORIZE),
        "Accepted");
    r = cp_call(t, "DataTransfer", json_pack("{s:s}", "vendorId", "com.example"));
    assert_string_equal(status_of(r, PW_OCPP_A_DATA_TRANSFER), "UnknownVendorId");
    r = cp_call(t, "FirmwareStatusNotification", json_pack("{s:s}", "status", "Idle"));
    assert_int_equal(r->kind, PW_OCPP_RESULT);
    r = cp_call(t, "DiagnosticsStatusNotification", json_pack("{s:s}", "status", "Idle"));
    assert_int_equal(r->kind, PW_OCPP_RESULT);

    /* Connector 0 is the whole charge point; connector 5 is not configured: answered,
     * ignored. */
    status_note(t, 0, PW_OCPP_FAULTED);
    assert_int_equal(evse(t, 0)->status, PW_OCPP_FAULTED);
    r = status_note(t, 5, PW_OCPP_CHARGING);
    assert_int_equal(r->kind, PW_OCPP_RESULT);
    assert_null(pw_ocpp_cp_evse(t->cp, 5));
    status_note(t, 1, PW_OCPP_PREPARING);
    assert_true(evse(t, 1)->has_status);
    assert_int_equal(evse(t, 1)->status, PW_OCPP_PREPARING);
    assert_false(evse(t, 2)->has_status);
    assert_int_equal(t->n_rej, 0);

    /* Start and stop: a tx id of digits, the tag's status, the history hook. */
    const char *tx = start_tx(t, 1, "GOOD");
    assert_true(strlen(tx) > 0 && strspn(tx, "0123456789") == strlen(tx));
    assert_string_equal(evse(t, 1)->tx_id, tx);
    assert_string_equal(evse(t, 1)->id_tag, "GOOD");
    char tx1[PW_OCPP_TXID_LEN];
    snprintf(tx1, sizeof tx1, "%s", tx);
    const char *tx2 = start_tx(t, 2, "GOOD");
    assert_true(strtoull(tx2, NULL, 10) > strtoull(tx1, NULL, 10));
    stop_tx(t, tx1);
    assert_int_equal(t->n_stopped, 1);
    assert_int_equal(t->stopped_connector, 1);
    assert_string_equal(evse(t, 1)->tx_id, "");
    free_h(t);
}

/* Setup after boot, in order: the failsafe default on connector 0 at the smallest failsafe
 * current, GetConfiguration, the measurands one by one (a refused one left out), the sample
 * interval, TriggerMessage MeterValues per connector and StatusNotification. */
static void test_setup_order_and_measurands(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->o.meter_interval_s = 15;
    t->reject_measurand = "Current.Offered";
    open_h(t);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    boot_as(t, "Acme", "Box");
    size_t i = call_at(t, 0, 0);
    assert_int_equal(t->sent[i].action, PW_OCPP_A_SET_CHARGING_PROFILE);
    const pw_ocpp_profile *p = &t->sent[i].cs.u.profile;
    assert_int_equal(p->purpose, PW_OCPP_TX_DEFAULT);
    assert_int_equal(p->connector, 0);
    assert_int_equal(p->stack_level, 0);
    assert_int_equal(p->kind, PW_OCPP_ABSOLUTE);
    assert_true(p->start_ms > 0 && p->start_ms < wall_of(t->now) - INT64_C(86400000) * 365);
    A_EQ(p->periods[0].limit_a, 6); /* the smaller of 8 and 6 */

    i = call_at(t, 0, 1);
    assert_int_equal(t->sent[i].action, PW_OCPP_A_GET_CONFIGURATION);
    const char *want_keys[] = {"MeterValuesSampledData",  "MeterValueSampleInterval",
                               "ConnectorPhaseRotation",  "ChargeProfileMaxStackLevel",
                               "NumberOfConnectors",      "ChargingScheduleAllowedChargingRateUnit",
                               "SupportedFeatureProfiles"};
    assert_int_equal(t->sent[i].cs.u.get_config.n, 7);
    for (size_t k = 0; k < 7; k++) {
        assert_string_equal(t->sent[i].cs.u.get_config.keys[k], want_keys[k]);
    }
    const char *want_meas[] = {
        "Current.Import",
        "Current.Import,Current.Offered",
        "Current.Import,Energy.Active.Import.Register",
        "Current.Import,Energy.Active.Import.Register,Power.Active.Import",
    };
    for (size_t k = 0; k < 4; k++) {
        i = call_at(t, 0, 2 + k);
        assert_int_equal(t->sent[i].action, PW_OCPP_A_CHANGE_CONFIGURATION);
        assert_string_equal(t->sent[i].cs.u.change_config.key, "MeterValuesSampledData");
        assert_string_equal(t->sent[i].cs.u.change_config.value, want_meas[k]);
    }
    i = call_at(t, 0, 6);
    assert_string_equal(t->sent[i].cs.u.change_config.key, "MeterValueSampleInterval");
    assert_string_equal(t->sent[i].cs.u.change_config.value, "15");
    for (int k = 0; k < 2; k++) {
        i = call_at(t, 0, 7 + (size_t)k);
        assert_int_equal(t->sent[i].action, PW_OCPP_A_TRIGGER_MESSAGE);
        assert_string_equal(t->sent[i].cs.u.trigger.message, "MeterValues");
        assert_int_equal(t->sent[i].cs.u.trigger.connector, k + 1);
    }
    i = call_at(t, 0, 9);
    assert_string_equal(t->sent[i].cs.u.trigger.message, "StatusNotification");
    for (size_t k = i + 1; k < t->n_sent; k++) {
        assert_int_not_equal(t->sent[k].kind, PW_OCPP_CALL);
    }
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE) +
                         n_calls(t, 0, PW_OCPP_A_GET_CONFIGURATION) +
                         n_calls(t, 0, PW_OCPP_A_CHANGE_CONFIGURATION) +
                         n_calls(t, 0, PW_OCPP_A_TRIGGER_MESSAGE),
                     10);
    assert_true(pw_ocpp_cp_ready(t->cp));
    assert_true(pw_ocpp_cp_default_installed(t->cp));
    assert_string_equal(pw_ocpp_cp_measurands(t->cp),
                        "Current.Import,Energy.Active.Import.Register,Power.Active.Import");
    assert_int_equal(n_events(t, "ocpp_setup", "Current.Offered"), 1);
    assert_int_equal(pw_ocpp_cp_next_deadline(t->cp), UINT64_MAX);
    free_h(t);
}

/* Before a default is installed a connector may draw its maximum; once it is, the failsafe.
 * Without a transaction a limit is held: true for a raise over the default, false for a cut;
 * nothing is sent until StartTransaction, and then the held limit goes out as a TxProfile. */
static void test_default_and_held_until_start(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    open_h(t);
    A_EQ(evse(t, 1)->offered_a, 16);
    assert_false(pw_ocpp_cp_default_installed(t->cp));
    boot_as(t, "Acme", "Box");
    assert_true(pw_ocpp_cp_default_installed(t->cp));
    A_EQ(evse(t, 1)->offered_a, 6);
    A_EQ(evse(t, 2)->offered_a, 6);
    size_t mark = t->n_sent;
    assert_false(limit(t, 1, 0, 3, t->now)); /* a cut cannot be held */
    assert_true(limit(t, 1, 12, 3, t->now));
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    assert_int_equal(pw_ocpp_cp_next_deadline(t->cp), UINT64_MAX);
    advance(t, 60000);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 0);

    const char *tx = start_tx(t, 1, "GOOD");
    const pw_ocpp_profile *p = last_profile(t, mark);
    assert_non_null(p);
    assert_int_equal(p->purpose, PW_OCPP_TX);
    assert_string_equal(p->tx_id, tx);
    assert_int_equal(p->connector, 1);
    assert_int_equal(p->stack_level, 1);
    assert_int_equal(p->kind, PW_OCPP_RELATIVE);
    A_EQ(p->periods[0].limit_a, 12);
    A_EQ(evse(t, 1)->sent_a, 12);
    A_EQ(evse(t, 1)->offered_a, 12);
    assert_true(limit(t, 1, 12, 3, t->now)); /* held: nothing sent */
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    free_h(t);
}

/* While a call is outstanding, wishes wait; then a cut goes before the setup steps, which go
 * before a raise. */
static void test_cut_before_setup_before_raise(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    open_h(t);
    t->hold = true;
    boot_as(t, "Acme", "Box");
    assert_int_equal(t->n_held, 1); /* the default, unanswered */
    start_tx(t, 1, "GOOD");
    start_tx(t, 2, "GOOD");
    assert_false(limit(t, 1, 16, 3, t->now)); /* a raise: waits */
    assert_false(limit(t, 2, 0, 3, t->now));  /* a cut: waits for answer */
    assert_int_equal(t->n_held, 1);
    size_t mark = t->n_sent;
    t->hold = false;
    release(t);
    size_t first = call_at(t, mark, 0);
    assert_int_equal(t->sent[first].action, PW_OCPP_A_SET_CHARGING_PROFILE);
    assert_int_equal(t->sent[first].cs.u.profile.connector, 2);
    A_EQ(t->sent[first].cs.u.profile.periods[0].limit_a, 0);
    /* Then setup (the confirmation of the accepted cut waits a second), then the raise last. */
    assert_int_equal(t->sent[call_at(t, mark, 1)].action, PW_OCPP_A_GET_CONFIGURATION);
    size_t last = 0;
    for (size_t i = mark; i < t->n_sent; i++) {
        if (t->sent[i].kind == PW_OCPP_CALL) {
            last = i;
        }
    }
    assert_int_equal(t->sent[last].action, PW_OCPP_A_SET_CHARGING_PROFILE);
    assert_int_equal(t->sent[last].cs.u.profile.connector, 1);
    A_EQ(t->sent[last].cs.u.profile.periods[0].limit_a, 16);
    A_EQ(evse(t, 2)->offered_a, 0);
    A_EQ(evse(t, 1)->offered_a, 16);
    free_h(t);
}

/* A raise waits for the connector's minimum interval and goes out at that deadline; what it may
 * draw goes up the moment it is sent. A cut goes at once, also right after a profile. */
static void test_min_interval(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 10, 3, t->now));
    uint64_t sent_at = t->now;
    advance(t, 1000);
    size_t mark = t->n_sent;
    assert_false(limit(t, 1, 13, 3, t->now));
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    A_EQ(evse(t, 1)->offered_a, 10);
    assert_int_equal(pw_ocpp_cp_next_deadline(t->cp), sent_at + t->o.min_interval_ms);
    /* A newer wish replaces the waiting one. */
    assert_false(limit(t, 1, 14, 3, t->now));
    advance(t, t->o.min_interval_ms);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    size_t i = call_at(t, mark, 0);
    assert_int_equal(t->sent[i].now, sent_at + t->o.min_interval_ms);
    A_EQ(t->sent[i].cs.u.profile.periods[0].limit_a, 14);
    A_EQ(evse(t, 1)->offered_a, 14);

    /* A cut right after: at once. */
    mark = t->n_sent;
    assert_true(limit(t, 1, 7, 3, t->now));
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    A_EQ(last_profile(t, mark)->periods[0].limit_a, 7);
    A_EQ(evse(t, 1)->offered_a, 7);
    free_h(t);
}

/* A cut lowers what a connector may draw only once accepted (and asks for fresh meter values);
 * a raise raises it as soon as it is sent. */
static void test_offered_conservative(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 12, 3, t->now));
    advance(t, t->o.min_interval_ms);
    t->hold = true;
    size_t mark = t->n_sent;
    assert_true(limit(t, 1, 8, 3, t->now)); /* on its way */
    A_EQ(evse(t, 1)->offered_a, 12);
    t->hold = false;
    release(t);
    A_EQ(evse(t, 1)->offered_a, 8);
    A_EQ(evse(t, 1)->sent_a, 8);
    /* Fresh meter values are asked for a second later, not in the middle of a plan's wave. */
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_TRIGGER_MESSAGE), 0);
    advance(t, 1000);
    size_t i = call_at(t, mark, 1);
    assert_int_equal(t->sent[i].action, PW_OCPP_A_TRIGGER_MESSAGE);
    assert_string_equal(t->sent[i].cs.u.trigger.message, "MeterValues");
    assert_int_equal(t->sent[i].cs.u.trigger.connector, 1);
    advance(t, t->o.min_interval_ms);
    t->hold = true;
    assert_true(limit(t, 1, 15, 3, t->now));
    A_EQ(evse(t, 1)->offered_a, 15); /* before the answer */
    A_EQ(evse(t, 1)->sent_a, 8);
    t->hold = false;
    release(t);
    A_EQ(evse(t, 1)->sent_a, 15);
    free_h(t);
}

/* The daily write budget holds raises back (until the oldest write is 24 h old), never cuts. */
static void test_daily_budget(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->o.daily_writes = 3;
    t->o.min_interval_ms = 1000;
    open_h(t);
    boot_as(t, "Acme", "Box");
    start_tx(t, 1, "GOOD");
    uint64_t first = t->now;
    assert_true(limit(t, 1, 7, 3, t->now));
    advance(t, 1000);
    assert_true(limit(t, 1, 8, 3, t->now));
    advance(t, 1000);
    assert_true(limit(t, 1, 9, 3, t->now));
    assert_int_equal(evse(t, 1)->writes_today, 3);
    advance(t, 5000);
    size_t mark = t->n_sent;
    assert_false(limit(t, 1, 10, 3, t->now));
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    assert_int_equal(pw_ocpp_cp_next_deadline(t->cp), first + UINT64_C(86400000));
    /* A cut still goes out at once. */
    assert_true(limit(t, 1, 6, 3, t->now));
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    A_EQ(last_profile(t, mark)->periods[0].limit_a, 6);
    assert_false(limit(t, 1, 10, 3, t->now));
    /* The cut was a write too: the raise waits until only two remain in the last 24 h. */
    mark = t->n_sent;
    run_until(t, first + 1000 + UINT64_C(86400000) - 1);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    advance(t, 1);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    A_EQ(last_profile(t, mark)->periods[0].limit_a, 10);
    free_h(t);
}

/* Limits are rounded down to 0.1 A, or to whole amperes with the whole-amps quirk; a positive
 * limit below the minimum becomes 0. */
static void test_rounding(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    start_tx(t, 1, "GOOD");
    size_t mark = t->n_sent;
    assert_true(limit(t, 1, 7.39, 3, t->now));
    A_EQ(last_profile(t, mark)->periods[0].limit_a, 7.3);
    assert_true(limit(t, 1, 7.3, 3, t->now)); /* the same: nothing sent */
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    assert_true(limit(t, 1, 4.5, 3, t->now));
    A_EQ(last_profile(t, mark)->periods[0].limit_a, 0);
    free_h(t);

    t = ready_h("whole-amps");
    start_tx(t, 1, "GOOD");
    mark = t->n_sent;
    assert_true(limit(t, 1, 7.99, 3, t->now));
    A_EQ(last_profile(t, mark)->periods[0].limit_a, 7);
    free_h(t);
}

/* numberPhases only on a connector that can switch phases. */
static void test_number_phases(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    start_tx(t, 1, "GOOD");
    start_tx(t, 2, "GOOD");
    size_t mark = t->n_sent;
    assert_true(limit(t, 1, 10, 1, t->now));
    assert_int_equal(last_profile(t, mark)->periods[0].phases, 1);
    assert_int_equal(evse(t, 1)->phases, 1);
    mark = t->n_sent;
    assert_true(limit(t, 2, 10, 1, t->now));
    assert_int_equal(last_profile(t, mark)->connector, 2);
    assert_int_equal(last_profile(t, mark)->periods[0].phases, 0);
    free_h(t);
}

/* tx-default-only: the dynamic limit is a TxDefaultProfile one level up, cleared when the
 * transaction ends so the next session starts at the failsafe default. */
static void test_tx_default_quirk(void **state)
{
    (void)state;
    h *t = ready_h("tx-default-only");
    const char *tx = start_tx(t, 1, "GOOD");
    char txid[PW_OCPP_TXID_LEN];
    snprintf(txid, sizeof txid, "%s", tx);
    size_t mark = t->n_sent;
    assert_true(limit(t, 1, 14, 3, t->now));
    const pw_ocpp_profile *p = last_profile(t, mark);
    assert_int_equal(p->purpose, PW_OCPP_TX_DEFAULT);
    assert_int_equal(p->stack_level, 1);
    assert_int_equal(p->connector, 1);
    int id = p->id;
    mark = t->n_sent;
    stop_tx(t, txid);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_CLEAR_CHARGING_PROFILE), 1);
    size_t i = call_at(t, mark, 0);
    assert_int_equal(t->sent[i].action, PW_OCPP_A_CLEAR_CHARGING_PROFILE);
    assert_true(t->sent[i].cs.u.clear.has_id);
    assert_int_equal(t->sent[i].cs.u.clear.id, id);
    A_EQ(evse(t, 1)->offered_a, 6);
    A_EQ(evse(t, 1)->sent_a, -1);
    free_h(t);
}

/* A model with stack level 0 only and no TxProfile (ABB Terra AC): the failsafe default on the
 * connector; the dynamic TxDefaultProfile replaces it at level 0, so the failsafe is sent again
 * when the transaction ends. */
static void test_stack0_tx_default_restores(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    open_h(t);
    boot_as(t, "ABB", "CDT_TACW11::NET_WIFI");
    const pw_ocpp_profile *p = &t->sent[call_at(t, 0, 0)].cs.u.profile;
    assert_int_equal(p->connector, 1);
    assert_int_equal(p->stack_level, 0);
    A_EQ(p->periods[0].limit_a, 8); /* its own failsafe */
    p = &t->sent[call_at(t, 0, 1)].cs.u.profile;
    assert_int_equal(p->connector, 2);
    A_EQ(p->periods[0].limit_a, 6);
    const char *tx = start_tx(t, 1, "GOOD");
    char txid[PW_OCPP_TXID_LEN];
    snprintf(txid, sizeof txid, "%s", tx);
    size_t mark = t->n_sent;
    assert_true(limit(t, 1, 12, 3, t->now));
    p = last_profile(t, mark);
    assert_int_equal(p->purpose, PW_OCPP_TX_DEFAULT);
    assert_int_equal(p->stack_level, 0);
    mark = t->n_sent;
    stop_tx(t, txid);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_CLEAR_CHARGING_PROFILE), 0);
    p = last_profile(t, mark);
    assert_non_null(p);
    assert_int_equal(p->stack_level, 0);
    assert_int_equal(p->connector, 1);
    A_EQ(p->periods[0].limit_a, 8);
    A_EQ(evse(t, 1)->offered_a, 8);
    free_h(t);
}

/* The stack0 quirk: the dynamic TxProfile on the failsafe's level 0 (a different purpose). */
static void test_stack0(void **state)
{
    (void)state;
    h *t = ready_h("stack0");
    start_tx(t, 1, "GOOD");
    size_t mark = t->n_sent;
    assert_true(limit(t, 1, 12, 3, t->now));
    assert_int_equal(last_profile(t, mark)->purpose, PW_OCPP_TX);
    assert_int_equal(last_profile(t, mark)->stack_level, 0);
    free_h(t);
}

/* Rejected, CALLERROR and unanswered profiles: a problem for the dashboard and the connector
 * budgeted at its failsafe default (its maximum when the default did not take). */
static void test_rejected_profile(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    t->m_tx = M_REJECT;
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 12, 3, t->now));
    assert_string_equal(evse(t, 1)->problem, "rejects TxProfile: budgeted at 6 A");
    A_EQ(evse(t, 1)->offered_a, 6);
    assert_int_equal(n_events(t, "ocpp_profile", "connector 1"), 1);
    assert_int_equal(pw_ocpp_cp_stats_get(t->cp)->profiles_rejected, 1);
    /* Asked again later it tries again; accepted, the problem goes. */
    t->m_tx = M_ACCEPT;
    advance(t, t->o.min_interval_ms);
    assert_true(limit(t, 1, 12, 3, t->now));
    assert_string_equal(evse(t, 1)->problem, "");
    A_EQ(evse(t, 1)->offered_a, 12);
    free_h(t);

    /* Neither the default nor the profile taken: budgeted at the maximum. */
    t = new_h(NULL);
    t->m_tx = M_ERROR;
    t->m_txdef = M_REJECT;
    open_h(t);
    boot_as(t, "Acme", "Box");
    assert_false(pw_ocpp_cp_default_installed(t->cp));
    assert_int_equal(n_events(t, "ocpp_setup", "failsafe default"), 1);
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 0, 3, t->now));
    assert_string_equal(evse(t, 1)->problem, "rejects TxProfile: budgeted at 16 A");
    A_EQ(evse(t, 1)->offered_a, 16);
    assert_int_equal(n_events(t, "ocpp_error", "SetChargingProfile"), 1);
    free_h(t);

    /* Silence: given up after the call timeout, counted, likewise budgeted. */
    t = ready_h(NULL);
    t->m_tx = M_SILENT;
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 10, 3, t->now));
    A_EQ(evse(t, 1)->offered_a, 10);
    advance(t, t->o.call_timeout_ms - 1);
    assert_int_equal(pw_ocpp_cp_stats_get(t->cp)->timeouts, 0);
    advance(t, 1);
    assert_int_equal(pw_ocpp_cp_stats_get(t->cp)->timeouts, 1);
    /* It may have applied the raise without answering: still budgeted at it. */
    assert_string_equal(evse(t, 1)->problem, "rejects TxProfile: budgeted at 10 A");
    A_EQ(evse(t, 1)->offered_a, 10);
    free_h(t);
}

/* Accepted but the measured current stays above limit + 1 A for ignore_ms: it ignores its
 * profile and is budgeted at its maximum until a reading is within the limit again. */
static void test_ignored_profile(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 8, 3, t->now));
    meter(t, 1, 10, 10, 10, -1);
    advance(t, t->o.ignore_ms - 1);
    assert_string_equal(evse(t, 1)->problem, "");
    A_EQ(evse(t, 1)->offered_a, 8);
    advance(t, 1);
    assert_string_equal(evse(t, 1)->problem, "ignores its charging profile: budgeted at max");
    A_EQ(evse(t, 1)->offered_a, 16);
    assert_int_equal(n_events(t, "ocpp_profile", "ignores"), 1);
    meter(t, 1, 8.5, 8.5, 8.5, -1);
    assert_string_equal(evse(t, 1)->problem, "");
    A_EQ(evse(t, 1)->offered_a, 8);
    /* Within limit + 1 A never counts. */
    meter(t, 1, 8.9, 8.9, 8.9, -1);
    advance(t, t->o.ignore_ms * 2);
    assert_string_equal(evse(t, 1)->problem, "");
    free_h(t);
}

/* Current.Offered in MeterValues is what the charger says it offers: it overrides. Meter values
 * fill the currents (unphased on L1), the phases in use (connector 2 is never told any) and the
 * energy register. */
static void test_current_offered_and_meter(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    assert_int_equal(evse(t, 2)->energy_wh, PW_OCPP_ENERGY_UNKNOWN);
    start_tx(t, 2, "GOOD");
    assert_true(limit(t, 2, 10, 3, t->now));
    size_t before = t->n_evse[2];
    meter(t, 2, 7, 7, 7, 7);
    assert_true(t->n_evse[2] > before);
    A_EQ(evse(t, 2)->offered_a, 7);
    assert_true(evse(t, 2)->has_current);
    A_EQ(evse(t, 2)->current_a[1], 7);
    assert_int_equal(evse(t, 2)->phases, 3);
    assert_int_equal(evse(t, 2)->energy_wh, 4242);
    meter(t, 2, 6, 0, 0, 11);
    A_EQ(evse(t, 2)->offered_a, 11);
    assert_int_equal(evse(t, 2)->phases, 1);
    /* Unphased current: on L1. */
    pw_ocpp_meter m;
    memset(&m, 0, sizeof m);
    m.connector = 2;
    m.timestamp_ms = wall_of(t->now);
    m.has_current_total = true;
    m.current_total_a = 9;
    cp_call(t, "MeterValues", pw_ocpp_meter_req(&m));
    A_EQ(evse(t, 2)->current_a[0], 9);
    A_EQ(evse(t, 2)->current_a[1], 0);
    free_h(t);
}

/* ConnectorPhaseRotation that disagrees with the config's wiring: one event per connector. */
static void test_rotation_warning(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->rotation = "0.RST, 1.RST, 2.STR";
    open_h(t);
    boot_as(t, "Acme", "Box");
    assert_int_equal(n_events(t, "ocpp_rotation", NULL), 1);
    assert_int_equal(n_events(t, "ocpp_rotation",
                              "connector 2 reports STR, the config's wiring says RST: phasewise "
                              "uses the config's wiring and does not apply the charge point's "
                              "rotation again"),
                     1);
    free_h(t);

    const char *quiet[] = {"RST", "NotApplicable", "Unknown", "0.Unknown, 1.RST, 2.RST"};
    for (size_t k = 0; k < 4; k++) {
        t = new_h(NULL);
        t->rotation = quiet[k];
        open_h(t);
        boot_as(t, "Acme", "Box");
        assert_int_equal(n_events(t, "ocpp_rotation", NULL), 0);
        free_h(t);
    }
    t = new_h(NULL);
    t->rotation = "TSR";
    open_h(t);
    boot_as(t, "Acme", "Box");
    assert_int_equal(n_events(t, "ocpp_rotation", NULL), 2);
    free_h(t);
}

/* A setup call nobody answers is given up after call_timeout_ms; setup goes on. */
static void test_timeouts(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->m_getconf = M_SILENT;
    open_h(t);
    boot_as(t, "Acme", "Box");
    size_t mark = t->n_sent;
    assert_int_equal(pw_ocpp_cp_next_deadline(t->cp), t->now + t->o.call_timeout_ms);
    advance(t, t->o.call_timeout_ms - 1);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_CHANGE_CONFIGURATION), 0);
    advance(t, 1);
    assert_int_equal(pw_ocpp_cp_stats_get(t->cp)->timeouts, 1);
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_CHANGE_CONFIGURATION), 5);
    assert_true(pw_ocpp_cp_ready(t->cp));
    assert_int_equal(n_events(t, "ocpp_setup", "GetConfiguration"), 1);
    free_h(t);
}

/* A RESULT or ERROR for another id is refused and the outstanding call stays outstanding;
 * message ids are unique on the connection. */
static void test_unexpected_id(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    open_h(t);
    t->hold = true;
    boot_as(t, "Acme", "Box");
    assert_int_equal(t->n_held, 1);
    size_t len = 0;
    char *text = pw_ocpp_result_text("nope", json_pack("{s:s}", "status", "Accepted"), &len);
    assert_int_equal(pw_ocpp_cp_receive(t->cp, text, len, t->now, wall_of(t->now)), 0);
    free(text);
    text = pw_ocpp_error_text("nope2", PW_OCPP_GENERIC_ERROR, "x", &len);
    assert_int_equal(pw_ocpp_cp_receive(t->cp, text, len, t->now, wall_of(t->now)), 0);
    free(text);
    assert_int_equal(t->n_rej, 2);
    assert_string_equal(t->rej[0].kind, "unexpected_id");
    assert_string_equal(t->rej[1].kind, "unexpected_id");
    assert_false(pw_ocpp_cp_default_installed(t->cp));
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_GET_CONFIGURATION), 0);
    t->hold = false;
    release(t);
    assert_true(pw_ocpp_cp_default_installed(t->cp));
    assert_true(pw_ocpp_cp_ready(t->cp));
    for (size_t i = 0; i < t->n_sent; i++) {
        for (size_t j = i + 1; j < t->n_sent; j++) {
            if (t->sent[i].kind == PW_OCPP_CALL && t->sent[j].kind == PW_OCPP_CALL) {
                assert_string_not_equal(t->sent[i].id, t->sent[j].id);
            }
        }
    }
    free_h(t);
}

/* A payload against the schema is answered with the CALLERROR the codec names, reported, and
 * changes nothing else. */
static void test_bad_payload(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    status_note(t, 1, PW_OCPP_AVAILABLE);
    pw_ocpp_evse before = *evse(t, 1);
    size_t n_evse = t->n_evse[1];
    const char *bad = "[2,\"x1\",\"StatusNotification\",{\"connectorId\":1,\"errorCode\":"
                      "\"NoError\",\"status\":\"Charged\"}]";
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    pw_ocpp_call call;
    assert_int_equal(pw_ocpp_frame_parse(bad, strlen(bad), &f, &fault), 0);
    assert_int_equal(pw_ocpp_decode_call(&f, &call, &fault), -1);
    pw_ocpp_frame_clear(&f);
    size_t mark = t->n_sent;
    assert_int_equal(pw_ocpp_cp_receive(t->cp, bad, strlen(bad), t->now, wall_of(t->now)), 0);
    assert_int_equal(t->n_sent, mark + 1);
    assert_int_equal(t->sent[mark].kind, PW_OCPP_ERROR);
    assert_string_equal(t->sent[mark].id, "x1");
    assert_int_equal(t->sent[mark].error, fault.code);
    assert_int_equal(t->n_rej, 1);
    assert_memory_equal(&before, evse(t, 1), sizeof before);
    assert_int_equal(t->n_evse[1], n_evse);
    assert_int_equal(pw_ocpp_cp_stats_get(t->cp)->errors_out, 1);

    /* Not even a frame: refused, no answer possible. */
    mark = t->n_sent;
    assert_int_equal(pw_ocpp_cp_receive(t->cp, "][", 2, t->now, wall_of(t->now)), 0);
    assert_int_equal(t->n_sent, mark);
    assert_int_equal(t->n_rej, 2);
    free_h(t);
}

/* More than flood_per_s on average: refused unanswered beyond the burst, and closed (-1) once
 * the bucket has stayed empty for a whole burst. */
static void test_flood(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->o.flood_per_s = 2; /* burst 10 */
    open_h(t);
    int rc = 0;
    for (int i = 0; i < 10; i++) {
        assert_non_null(cp_call_rc(t, "Heartbeat", pw_ocpp_heartbeat_req(), &rc));
        assert_int_equal(rc, 0);
    }
    assert_null(cp_call_rc(t, "Heartbeat", pw_ocpp_heartbeat_req(), &rc));
    assert_int_equal(rc, 0);
    assert_string_equal(t->rej[0].kind, "flood");
    /* Half a second later one token is back; the call let through does not forgive the
     * flood: ten refused within 10 s (a whole burst) close the connection. */
    t->now += 500;
    assert_non_null(cp_call_rc(t, "Heartbeat", pw_ocpp_heartbeat_req(), &rc));
    for (int i = 0; i < 8; i++) {
        assert_null(cp_call_rc(t, "Heartbeat", pw_ocpp_heartbeat_req(), &rc));
        assert_int_equal(rc, 0);
    }
    assert_null(cp_call_rc(t, "Heartbeat", pw_ocpp_heartbeat_req(), &rc));
    assert_int_equal(rc, -1);
    free_h(t);
}

/* Reconfiguration: a changed failsafe current installs the default again, a removed connector
 * is forgotten, a held limit stays held. */
static void test_reconfigure(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    start_tx(t, 1, "GOOD");
    assert_true(limit(t, 1, 12, 3, t->now));
    pw_ocpp_cp_opts o = t->o;
    o.n_connectors = 1;
    o.connectors[0].failsafe_a = 7; /* connector 1 only, failsafe 7 */
    size_t mark = t->n_sent;
    pw_ocpp_cp_reconfigure(t->cp, &o, t->now);
    t->o = o;
    fake_run(t);
    assert_null(pw_ocpp_cp_evse(t->cp, 2));
    const pw_ocpp_profile *p = last_profile(t, mark);
    assert_non_null(p);
    assert_int_equal(p->purpose, PW_OCPP_TX_DEFAULT);
    A_EQ(p->periods[0].limit_a, 7);
    mark = t->n_sent;
    assert_true(limit(t, 1, 12, 3, t->now));
    assert_int_equal(n_calls(t, mark, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    assert_false(limit(t, 2, 12, 3, t->now));
    /* Unchanged config: nothing sent. */
    pw_ocpp_cp_reconfigure(t->cp, &o, t->now);
    fake_run(t);
    assert_int_equal(t->n_sent, mark);
    free_h(t);
}

/* A charge point connected while unassigned (no connectors) and then added to the facility:
 * its new connector's status and draw are asked for at once (TriggerMessage), so it is balanced
 * without waiting for it to say something by itself. */
static void test_assigned_while_connected(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    pw_ocpp_cp_opts full = t->o;
    t->o.n_connectors = 0;
    open_h(t);
    boot_as(t, "Acme", "Box");
    fake_run(t);
    size_t mark = t->n_sent;
    full.n_connectors = 1;
    pw_ocpp_cp_reconfigure(t->cp, &full, t->now);
    t->o = full;
    fake_run(t);
    bool status = false, mv = false;
    for (size_t i = mark; i < t->n_sent; i++) {
        if (t->sent[i].kind != PW_OCPP_CALL || t->sent[i].action != PW_OCPP_A_TRIGGER_MESSAGE) {
            continue;
        }
        status = status || strcmp(t->sent[i].cs.u.trigger.message, "StatusNotification") == 0;
        mv = mv || (strcmp(t->sent[i].cs.u.trigger.message, "MeterValues") == 0 &&
                    t->sent[i].cs.u.trigger.connector == 1);
    }
    assert_true(status);
    assert_true(mv);
    free_h(t);
}

/* A reconnect without BootNotification: calls answered, setup a few seconds after the first
 * message; the boot, when it comes, is used (its quirks, setup again). */
static void test_no_boot(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    open_h(t);
    assert_int_equal(pw_ocpp_cp_next_deadline(t->cp), UINT64_MAX);
    rec *r = status_note(t, 1, PW_OCPP_CHARGING);
    assert_int_equal(r->kind, PW_OCPP_RESULT);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    uint64_t d = pw_ocpp_cp_next_deadline(t->cp);
    assert_true(d > t->now && d <= t->now + 10000);
    run_until(t, d - 1);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    advance(t, 1);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    assert_true(pw_ocpp_cp_ready(t->cp));
    assert_false(pw_ocpp_cp_booted(t->cp));
    size_t mark = t->n_sent;
    boot_as(t, "Wall Box Chargers", "PLP1-0-2-4");
    assert_string_equal(pw_ocpp_cp_quirks(t->cp)->name, "wallbox");
    const pw_ocpp_profile *p = &t->sent[call_at(t, mark, 0)].cs.u.profile;
    assert_int_equal(p->connector, 1);
    assert_int_equal(p->kind, PW_OCPP_RELATIVE);
    assert_true(pw_ocpp_cp_ready(t->cp));
    free_h(t);
}

/* Calls before a boot are answered but start nothing when a boot follows at once. */
static void test_boot_after_heartbeat(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    open_h(t);
    rec *r = cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req());
    assert_int_equal(r->kind, PW_OCPP_RESULT);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 0);
    advance(t, 1000);
    boot_as(t, "Acme", "Box");
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    advance(t, 20000);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    free_h(t);
}

/* A charge point with no connector configured (not assigned yet) is set up but gets no default
 * profile: a 0 A default would stop a charger phasewise does not balance. */
static void test_unassigned_held_at_zero(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->o.n_connectors = 0;
    open_h(t);
    size_t from = 0;
    boot_as(t, "Acme", "Box");
    /* A charge point no charger is assigned to gets a 0 A default on connector 0: its draw
     * would be a load no budget holds. */
    assert_int_equal(n_calls(t, from, PW_OCPP_A_SET_CHARGING_PROFILE), 1);
    const pw_ocpp_profile *p = last_profile(t, from);
    assert_non_null(p);
    assert_int_equal(p->connector, 0);
    assert_int_equal(p->purpose, PW_OCPP_TX_DEFAULT);
    assert_float_equal(p->periods[0].limit_a, 0, 1e-9);
    assert_int_equal(n_calls(t, 0, PW_OCPP_A_GET_CONFIGURATION), 1);
    assert_true(pw_ocpp_cp_ready(t->cp));
    assert_true(pw_ocpp_cp_default_installed(t->cp));
    assert_false(limit(t, 1, 10, 3, t->now));
    free_h(t);
}

/* The quirk table: matched by case-insensitive prefixes, named entries, the default. */
static void test_quirks_table(void **state)
{
    (void)state;
    assert_string_equal(pw_ocpp_quirks_find("ABB", "CDT_TACW7::NET_WIFI")->name, "abb-terra-ac");
    assert_string_equal(pw_ocpp_quirks_find("wall box chargers", "CPB1-S-2-4")->name, "wallbox");
    assert_string_equal(pw_ocpp_quirks_find("ABB", "Terra 54")->name, "default");
    assert_string_equal(pw_ocpp_quirks_find(NULL, NULL)->name, "default");
    assert_non_null(pw_ocpp_quirks_by_name("stack0"));
    assert_non_null(pw_ocpp_quirks_by_name("tx-default-only"));
    assert_true(pw_ocpp_quirks_by_name("whole-amps")->whole_amps);
    assert_null(pw_ocpp_quirks_by_name("nope"));
    size_t n = 0;
    while (pw_ocpp_quirks_at(n)) {
        const pw_ocpp_quirks *q = pw_ocpp_quirks_at(n);
        assert_true(q->max_stack_level >= q->default_stack_level);
        assert_non_null(q->note);
        n++;
    }
    assert_true(n >= 6);
}

/* The config checks quirk names against its own copy of the list (config does not link ocpp/):
 * the two must name the same entries. */
static void test_quirk_names_match_config(void **state)
{
    (void)state;
    size_t n_cfg = 0, n_table = 0;
    for (const char *name; (name = pw_cfg_ocpp_quirk_name(n_cfg)); n_cfg++)
        assert_non_null(pw_ocpp_quirks_by_name(name));
    for (const pw_ocpp_quirks *q; (q = pw_ocpp_quirks_at(n_table)); n_table++) {
        bool found = false;
        for (size_t i = 0; pw_cfg_ocpp_quirk_name(i); i++)
            found |= strcmp(pw_cfg_ocpp_quirk_name(i), q->name) == 0;
        assert_true(found);
    }
    assert_int_equal(n_cfg, n_table);
}

/* A flood that lets a call through now and then (the bucket refills at its rate) is still a
 * flood: 1,000 calls a second for 2 s close the connection. */
static void test_flood_steady(void **state)
{
    (void)state;
    h *t = new_h(NULL);
    t->o.flood_per_s = 20;
    open_h(t);
    int rc = 0, closed_at = -1;
    for (int i = 0; i < 2000 && closed_at < 0; i++) {
        t->now += 1;
        rec *r = cp_call_rc(t, "Heartbeat", pw_ocpp_heartbeat_req(), &rc);
        (void)r;
        if (rc < 0)
            closed_at = i;
    }
    assert_true(closed_at > 0 && closed_at < 2000);
    free_h(t);
}

/* A car that stopped drawing: meter values stop outside a transaction, so a status other than
 * Charging clears the last reading. */
static void test_not_charging_draws_nothing(void **state)
{
    (void)state;
    h *t = ready_h(NULL);
    status_note(t, 1, PW_OCPP_CHARGING);
    start_tx(t, 1, "TAG1");
    meter(t, 1, 10, 10, 10, -1);
    assert_float_equal(evse(t, 1)->current_a[1], 10, 1e-9);
    status_note(t, 1, PW_OCPP_SUSPENDED_EV);
    for (int k = 0; k < 3; k++)
        assert_float_equal(evse(t, 1)->current_a[k], 0, 1e-9);
    free_h(t);
}

/* A connection that opens on a car already charging (phasewise or the link restarted): the car
 * may run under a profile of an earlier connection, so it is budgeted at what phasewise last
 * knew it to hold (or its maximum when nothing is known), not its failsafe default, until this
 * connection sees its transaction or gets a profile of its own accepted. */
static void test_reconnect_budgets_prior_profile(void **state)
{
    (void)state;
    double prior[] = {12, -1};
    double want[] = {12, 16};
    for (size_t k = 0; k < 2; k++) {
        h *t = new_h(NULL);
        t->o.connectors[0].prior_a = prior[k];
        open_h(t);
        boot_as(t, "Acme", "Box");
        status_note(t, 1, PW_OCPP_CHARGING);
        assert_float_equal(evse(t, 1)->offered_a, want[k], 1e-9);
        /* Seen without a car: what governs it now is known, the failsafe default (on connector
         * 0: the smaller failsafe of the two connectors, 6 A). */
        status_note(t, 1, PW_OCPP_AVAILABLE);
        status_note(t, 1, PW_OCPP_PREPARING);
        assert_float_equal(evse(t, 1)->offered_a, 6, 1e-9);
        free_h(t);
    }
}

/* Transaction ids come from the central system's counter: unique over its charge points. */
static void test_tx_ids_shared(void **state)
{
    (void)state;
    uint64_t seq = 0;
    h *a = new_h(NULL), *b = new_h(NULL);
    a->o.tx_seq = b->o.tx_seq = &seq;
    open_h(a);
    open_h(b);
    boot_as(a, "Acme", "Box");
    boot_as(b, "Acme", "Box");
    char first[PW_OCPP_TXID_LEN];
    snprintf(first, sizeof first, "%s", start_tx(a, 1, "TAG1"));
    const char *second = start_tx(b, 1, "TAG2");
    assert_string_not_equal(first, second);
    assert_true(strtoull(second, NULL, 10) == strtoull(first, NULL, 10) + 1);
    free_h(a);
    free_h(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_and_answers),
        cmocka_unit_test(test_setup_order_and_measurands),
        cmocka_unit_test(test_default_and_held_until_start),
        cmocka_unit_test(test_cut_before_setup_before_raise),
        cmocka_unit_test(test_min_interval),
        cmocka_unit_test(test_offered_conservative),
        cmocka_unit_test(test_daily_budget),
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_number_phases),
        cmocka_unit_test(test_tx_default_quirk),
        cmocka_unit_test(test_stack0_tx_default_restores),
        cmocka_unit_test(test_stack0),
        cmocka_unit_test(test_rejected_profile),
        cmocka_unit_test(test_ignored_profile),
        cmocka_unit_test(test_current_offered_and_meter),
        cmocka_unit_test(test_rotation_warning),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_unexpected_id),
        cmocka_unit_test(test_bad_payload),
        cmocka_unit_test(test_flood),
        cmocka_unit_test(test_reconfigure),
        cmocka_unit_test(test_assigned_while_connected),
        cmocka_unit_test(test_no_boot),
        cmocka_unit_test(test_boot_after_heartbeat),
        cmocka_unit_test(test_unassigned_held_at_zero),
        cmocka_unit_test(test_quirks_table),
        cmocka_unit_test(test_quirk_names_match_config),
        cmocka_unit_test(test_flood_steady),
        cmocka_unit_test(test_not_charging_draws_nothing),
        cmocka_unit_test(test_reconnect_budgets_prior_profile),
        cmocka_unit_test(test_tx_ids_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
