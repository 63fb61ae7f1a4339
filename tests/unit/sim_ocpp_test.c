/* Tests for the simulator's OCPP 1.6J charge point (pw_simocpp): the charging-profile stack
 * (stack levels, replacement by id and by purpose + stack level, TxProfile over
 * TxDefaultProfile, ChargePointMaxProfile as a cap, W to A, schedules in time), TxProfile only
 * with its transaction, each quirk mode, the configuration keys, and the conversation in fake
 * time: boot, statuses, transactions, MeterValues with the configured measurands, triggers and
 * a dropped connection. A fake central system answers every call with hand-written frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "pw_simocpp.h"

#define WALL0    1767225600000LL /* 2026-01-01T00:00:00Z */
#define MAX_SENT 256

/* ---- a fake central system ---------------------------------------------------------------- */

typedef struct fake_cs {
    char *sent[MAX_SENT]; /* frames the charge point sent, in order */
    size_t n_sent;
    size_t answered; /* frames before this index were looked at */
    int next_tx;
} fake_cs;

static void on_send(void *ud, const char *text, size_t len)
{
    fake_cs *cs = ud;
    assert_true(cs->n_sent < MAX_SENT);
    cs->sent[cs->n_sent] = malloc(len + 1);
    memcpy(cs->sent[cs->n_sent], text, len);
    cs->sent[cs->n_sent][len] = '\0';
    cs->n_sent++;
}

static void cs_free(fake_cs *cs)
{
    for (size_t i = 0; i < cs->n_sent; i++)
        free(cs->sent[i]);
    memset(cs, 0, sizeof(*cs));
}

typedef struct fixture {
    fake_cs cs;
    pw_simocpp *cp;
    uint64_t now;
    int64_t wall;
} fixture;

static pw_simocpp_opts opts_for(enum pw_simocpp_quirk q, size_t n_connectors)
{
    pw_simocpp_opts o;
    memset(&o, 0, sizeof(o));
    strcpy(o.cp_id, "CP-T1");
    o.quirk = q;
    o.n_connectors = n_connectors;
    for (size_t c = 0; c < n_connectors; c++) {
        pw_simocpp_connector_cfg *cc = &o.connectors[c];
        cc->present = true;
        cc->max_a = 32.0;
        cc->wiring[0] = 1;
        cc->wiring[1] = 2;
        cc->wiring[2] = 3;
        cc->phase_ln = c == 1;
        strcpy(cc->tags[0], "TAG-A");
        strcpy(cc->tags[1], "TAG-B");
        strcpy(cc->tags[2], "TAG-C");
    }
    return o;
}

static fixture *fx_new(enum pw_simocpp_quirk q, size_t n_connectors)
{
    fixture *f = calloc(1, sizeof(*f));
    pw_simocpp_opts o = opts_for(q, n_connectors);
    pw_simocpp_sink sink = {.ud = &f->cs, .send = on_send};
    f->cp = pw_simocpp_new(&o, &sink);
    f->now = 1000;
    f->wall = WALL0;
    f->cs.next_tx = 100;
    return f;
}

static void fx_free(fixture *f)
{
    pw_simocpp_free(f->cp);
    cs_free(&f->cs);
    free(f);
}

static json_t *frame_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    assert_true(json_is_array(j));
    return j;
}

static void deliver(fixture *f, const char *text)
{
    pw_simocpp_receive(f->cp, text, strlen(text), f->now, f->wall);
}

/* Answers every CALL the charge point sent and not yet answered, as a central system that
 * accepts everything; repeats until it sends nothing new, or leaves the first call of action
 * stop (if not NULL) unanswered. */
static void cs_answer_until(fixture *f, const char *stop)
{
    while (f->cs.answered < f->cs.n_sent) {
        json_t *j = frame_json(f->cs.sent[f->cs.answered++]);
        if (json_integer_value(json_array_get(j, 0)) != 2) {
            json_decref(j);
            continue;
        }
        const char *id = json_string_value(json_array_get(j, 1));
        const char *action = json_string_value(json_array_get(j, 2));
        if (stop && strcmp(action, stop) == 0) {
            json_decref(j);
            return;
        }
        char reply[256];
        if (strcmp(action, "BootNotification") == 0)
            snprintf(reply, sizeof(reply),
                     "[3,\"%s\",{\"status\":\"Accepted\",\"currentTime\":"
                     "\"2026-01-01T00:00:00Z\",\"interval\":300}]",
                     id);
        else if (strcmp(action, "StartTransaction") == 0)
            snprintf(reply, sizeof(reply),
                     "[3,\"%s\",{\"transactionId\":%d,\"idTagInfo\":{\"status\":\"Accepted\"}}]",
                     id, f->cs.next_tx++);
        else if (strcmp(action, "Heartbeat") == 0)
            snprintf(reply, sizeof(reply), "[3,\"%s\",{\"currentTime\":\"2026-01-01T00:00:00Z\"}]",
                     id);
        else
            snprintf(reply, sizeof(reply), "[3,\"%s\",{}]", id);
        json_decref(j);
        deliver(f, reply);
    }
}

static void cs_answer_all(fixture *f)
{
    cs_answer_until(f, NULL);
}

/* The CALLs sent with that action from index from on; the payload of the last one (new
 * reference) in *last if wanted. */
static size_t count_calls(const fixture *f, size_t from, const char *action, json_t **last)
{
    size_t n = 0;
    if (last)
        *last = NULL;
    for (size_t i = from; i < f->cs.n_sent; i++) {
        json_t *j = frame_json(f->cs.sent[i]);
        if (json_integer_value(json_array_get(j, 0)) == 2 &&
            strcmp(json_string_value(json_array_get(j, 2)), action) == 0) {
            n++;
            if (last) {
                json_decref(*last);
                *last = json_incref(json_array_get(j, 3));
            }
        }
        json_decref(j);
    }
    return n;
}

/* The RESULT payload of the last frame sent (an answer to a call of ours); new reference. */
static json_t *last_result(const fixture *f)
{
    assert_true(f->cs.n_sent > 0);
    json_t *j = frame_json(f->cs.sent[f->cs.n_sent - 1]);
    assert_int_equal(json_integer_value(json_array_get(j, 0)), 3);
    json_t *p = json_incref(json_array_get(j, 2));
    json_decref(j);
    return p;
}

/* The status of the RESULT the charge point gave to a call sent as text. */
static const char *call_status(fixture *f, const char *call, char *buf, size_t size)
{
    size_t before = f->cs.n_sent;
    deliver(f, call);
    assert_true(f->cs.n_sent > before);
    json_t *j = frame_json(f->cs.sent[before]);
    assert_int_equal(json_integer_value(json_array_get(j, 0)), 3);
    snprintf(buf, size, "%s", json_string_value(json_object_get(json_array_get(j, 2), "status")));
    json_decref(j);
    return buf;
}

static void fx_boot(fixture *f)
{
    pw_simocpp_connected(f->cp, f->now, f->wall);
    cs_answer_all(f);
    assert_true(pw_simocpp_is_booted(f->cp));
}

static void fx_plug(fixture *f, int connector, uint32_t session, double energy)
{
    pw_simocpp_view v = {.session_id = session,
                         .charging = true,
                         .offered_a = 16.0,
                         .current_a = {15.0, 15.1, 14.9},
                         .energy_wh = energy};
    pw_simocpp_update(f->cp, connector, &v, f->now, f->wall);
    cs_answer_all(f);
}

static void fx_unplug(fixture *f, int connector, double energy)
{
    pw_simocpp_view v = {.energy_wh = energy};
    pw_simocpp_update(f->cp, connector, &v, f->now, f->wall);
    cs_answer_all(f);
}

/* A profile with one period. */
static pw_ocpp_profile profile(int connector, int id, int stack, enum pw_ocpp_purpose purpose,
                               double limit)
{
    pw_ocpp_profile p;
    memset(&p, 0, sizeof(p));
    p.connector = connector;
    p.id = id;
    p.stack_level = stack;
    p.purpose = purpose;
    p.kind = PW_OCPP_ABSOLUTE;
    p.n_periods = 1;
    p.periods[0].limit_a = limit;
    return p;
}

static double limit_now(const fixture *f, int connector)
{
    pw_simocpp_limit l;
    pw_simocpp_limit_at(f->cp, connector, f->wall, &l);
    return l.limit_a;
}

/* ---- the profile stack -------------------------------------------------------------------- */

static void test_no_profile_is_unconstrained(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_simocpp_limit l;
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_false(l.constrained);
    assert_float_equal(l.limit_a, 32.0, 1e-9);
    assert_int_equal(l.profile_id, 0);
    fx_free(f);
}

static void test_highest_stack_level_wins(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile low = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 16.0);
    pw_ocpp_profile high = profile(0, 2, 3, PW_OCPP_TX_DEFAULT, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &high, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &low, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 10.0, 1e-9);
    /* The higher one is lower here: stack level decides, not the smaller limit. */
    high.periods[0].limit_a = 20.0;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &high, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 20.0, 1e-9);
    pw_simocpp_clear cl = {.has_id = true, .id = 2};
    assert_int_equal(pw_simocpp_clear_profiles(f->cp, &cl), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 16.0, 1e-9);
    assert_int_equal(pw_simocpp_clear_profiles(f->cp, &cl), PW_OCPP_ANSWER_UNKNOWN);
    fx_free(f);
}

static void test_replacement_by_id_and_by_stack_level(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile a = profile(1, 7, 1, PW_OCPP_TX_DEFAULT, 12.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &a, f->wall), PW_OCPP_ACCEPTED);
    /* Same id at another stack level: the old one goes. */
    pw_ocpp_profile b = profile(1, 7, 2, PW_OCPP_TX_DEFAULT, 8.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &b, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_profile_count(f->cp), 1);
    assert_float_equal(limit_now(f, 1), 8.0, 1e-9);
    /* Another id, same connector, purpose and stack level: replaces it too. */
    pw_ocpp_profile c = profile(1, 9, 2, PW_OCPP_TX_DEFAULT, 14.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &c, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_profile_count(f->cp), 1);
    assert_float_equal(limit_now(f, 1), 14.0, 1e-9);
    /* Another purpose at that stack level is added beside it. */
    pw_ocpp_profile m = profile(0, 11, 2, PW_OCPP_CHARGE_POINT_MAX, 30.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &m, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_profile_count(f->cp), 2);
    /* Clearing by purpose leaves the other. */
    pw_simocpp_clear cl = {.has_purpose = true, .purpose = PW_OCPP_TX_DEFAULT};
    assert_int_equal(pw_simocpp_clear_profiles(f->cp, &cl), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_profile_count(f->cp), 1);
    assert_float_equal(limit_now(f, 1), 30.0, 1e-9);
    fx_free(f);
}

static void test_connector_default_wins_tie_with_connector0(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 2);
    pw_ocpp_profile all = profile(0, 1, 1, PW_OCPP_TX_DEFAULT, 16.0);
    pw_ocpp_profile one = profile(2, 2, 1, PW_OCPP_TX_DEFAULT, 9.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &one, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &all, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 16.0, 1e-9);
    assert_float_equal(limit_now(f, 2), 9.0, 1e-9);
    fx_free(f);
}

static void test_charge_point_max_caps_the_composite(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile max1 = profile(1, 1, 0, PW_OCPP_CHARGE_POINT_MAX, 12.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &max1, f->wall), PW_OCPP_REJECTED);
    pw_ocpp_profile max0 = profile(0, 1, 0, PW_OCPP_CHARGE_POINT_MAX, 12.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &max0, f->wall), PW_OCPP_ACCEPTED);
    pw_simocpp_limit l;
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_true(l.constrained);
    assert_float_equal(l.limit_a, 12.0, 1e-9);
    pw_ocpp_profile def = profile(0, 2, 0, PW_OCPP_TX_DEFAULT, 20.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &def, f->wall), PW_OCPP_ACCEPTED);
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_float_equal(l.limit_a, 12.0, 1e-9);
    assert_int_equal(l.profile_id, 2);
    def.periods[0].limit_a = 7.0;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &def, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 7.0, 1e-9);
    /* Never above the charger's own maximum. */
    max0.periods[0].limit_a = 63.0;
    def.periods[0].limit_a = 50.0;
    pw_simocpp_set_profile(f->cp, &max0, f->wall);
    pw_simocpp_set_profile(f->cp, &def, f->wall);
    assert_float_equal(limit_now(f, 1), 32.0, 1e-9);
    fx_free(f);
}

static void test_watts_to_amps(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile p = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 6900.0);
    p.watts = true;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    pw_simocpp_limit l;
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_float_equal(l.limit_a, 10.0, 1e-9); /* 6900 W / (230 V x 3) */
    assert_int_equal(l.phases, 3);
    p.periods[0].limit_a = 3680.0;
    p.periods[0].phases = 1;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_float_equal(l.limit_a, 16.0, 1e-9); /* 3680 W / 230 V on one phase */
    assert_int_equal(l.phases, 1);
    fx_free(f);
}

static void test_schedule_periods_and_duration(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile base = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 6.0);
    pw_ocpp_profile p = profile(0, 2, 1, PW_OCPP_TX_DEFAULT, 16.0);
    p.start_ms = WALL0 + 60000;
    p.duration_s = 600;
    p.n_periods = 2;
    p.periods[1].start_s = 300;
    p.periods[1].limit_a = 8.0;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &base, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    f->wall = WALL0 + 30000; /* not started yet: the stack level below */
    assert_float_equal(limit_now(f, 1), 6.0, 1e-9);
    f->wall = WALL0 + 60000 + 299000;
    assert_float_equal(limit_now(f, 1), 16.0, 1e-9);
    f->wall = WALL0 + 60000 + 300000;
    assert_float_equal(limit_now(f, 1), 8.0, 1e-9);
    f->wall = WALL0 + 60000 + 600000; /* its duration is over */
    assert_float_equal(limit_now(f, 1), 6.0, 1e-9);
    fx_free(f);
}

static void test_recurring_daily(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile p = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 10.0);
    p.kind = PW_OCPP_RECURRING;
    p.start_ms = WALL0 + 17 * 3600000LL; /* 17:00 */
    p.duration_s = 4 * 3600;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    f->wall = WALL0 + 86400000LL * 3 + 18 * 3600000LL; /* three days later, 18:00 */
    assert_float_equal(limit_now(f, 1), 10.0, 1e-9);
    f->wall = WALL0 + 86400000LL * 3 + 22 * 3600000LL; /* 22:00: outside the window */
    assert_float_equal(limit_now(f, 1), 32.0, 1e-9);
    fx_free(f);
}

static void test_set_profile_rejections(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_ocpp_profile p = profile(2, 1, 0, PW_OCPP_TX_DEFAULT, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_REJECTED); /* no c2 */
    p = profile(1, 1, PW_SIMOCPP_MAX_STACK + 1, PW_OCPP_TX_DEFAULT, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_REJECTED);
    p = profile(1, 1, PW_SIMOCPP_MAX_STACK, PW_OCPP_TX_DEFAULT, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    /* More than MaxChargingProfilesInstalled. */
    for (int i = 0; i < PW_SIMOCPP_MAX_PROFILES - 1; i++) {
        p = profile(i % 2, 100 + i, i / 2, PW_OCPP_TX_DEFAULT, 10.0);
        assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    }
    assert_int_equal(pw_simocpp_profile_count(f->cp), PW_SIMOCPP_MAX_PROFILES);
    p = profile(0, 999, 0, PW_OCPP_CHARGE_POINT_MAX, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_REJECTED);
    fx_free(f);
}

/* ---- quirks ------------------------------------------------------------------------------- */

static void test_quirk_stack0(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_STACK0, 1);
    pw_ocpp_profile p = profile(0, 1, 1, PW_OCPP_TX_DEFAULT, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_REJECTED);
    p.stack_level = 0;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 10.0, 1e-9);
    fx_free(f);
}

static void test_quirk_whole_amps(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_WHOLE_AMPS, 1);
    pw_ocpp_profile p = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 10.5);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_REJECTED);
    assert_float_equal(limit_now(f, 1), 32.0, 1e-9);
    p.periods[0].limit_a = 10.0;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 10.0, 1e-9);
    fx_free(f);
}

static void test_quirk_ignore(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_IGNORE, 1);
    pw_ocpp_profile p = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 8.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &p, f->wall), PW_OCPP_ACCEPTED);
    pw_simocpp_limit l;
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_false(l.constrained);
    assert_float_equal(l.limit_a, 32.0, 1e-9);
    fx_free(f);
}

static void test_quirk_names(void **state)
{
    (void)state;
    for (int q = 0; q < PW_SIMOCPP_QUIRKS; q++) {
        enum pw_simocpp_quirk back;
        assert_int_equal(pw_simocpp_quirk_parse(pw_simocpp_quirk_name(q), &back), 0);
        assert_int_equal(back, q);
    }
    enum pw_simocpp_quirk x;
    assert_int_equal(pw_simocpp_quirk_parse("Default", &x), -1);
}

/* ---- configuration ------------------------------------------------------------------------ */

static const char *config_value(const pw_ocpp_config_answer *a, const char *key)
{
    for (size_t i = 0; i < a->n_keys; i++) {
        if (strcmp(a->keys[i].key, key) == 0)
            return a->keys[i].value;
    }
    return NULL;
}

static void test_get_configuration(void **state)
{
    (void)state;
    pw_simocpp_opts o = opts_for(PW_SIMOCPP_STACK0, 2);
    o.connectors[1].wiring[0] = 2;
    o.connectors[1].wiring[1] = 3;
    o.connectors[1].wiring[2] = 1;
    fake_cs cs = {0};
    pw_simocpp_sink sink = {.ud = &cs, .send = on_send};
    pw_simocpp *cp = pw_simocpp_new(&o, &sink);
    pw_ocpp_config_answer *a = malloc(sizeof(*a));
    const char *keys[] = {"ConnectorPhaseRotation", "ChargeProfileMaxStackLevel",
                          "NumberOfConnectors", "NoSuchKey", "SupportedFeatureProfiles"};
    pw_simocpp_get_config(cp, keys, 5, a);
    assert_int_equal(a->n_keys, 4);
    assert_string_equal(config_value(a, "ConnectorPhaseRotation"), "0.RST, 1.RST, 2.STR");
    assert_string_equal(config_value(a, "ChargeProfileMaxStackLevel"), "0");
    assert_string_equal(config_value(a, "NumberOfConnectors"), "2");
    assert_non_null(strstr(config_value(a, "SupportedFeatureProfiles"), "SmartCharging"));
    assert_int_equal(a->n_unknown, 1);
    assert_string_equal(a->unknown[0], "NoSuchKey");
    pw_simocpp_get_config(cp, NULL, 0, a); /* all */
    assert_non_null(config_value(a, "MeterValuesSampledData"));
    assert_non_null(config_value(a, "MeterValueSampleInterval"));
    assert_int_equal(a->n_unknown, 0);
    free(a);
    pw_simocpp_free(cp);
    cs_free(&cs);

    char rot[64];
    o = opts_for(PW_SIMOCPP_DEFAULT, 1);
    o.connectors[0].wiring[1] = o.connectors[0].wiring[2] = 0;
    pw_simocpp_rotation(&o, rot, sizeof(rot));
    assert_string_equal(rot, "0.RST, 1.NotApplicable");
}

static void test_change_configuration(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValuesSampledData",
                                              "Current.Import, Current.Offered,"
                                              "Energy.Active.Import.Register,Power.Active.Import",
                                              f->now),
                     PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_measurands(f->cp), PW_SIMOCPP_M_CURRENT | PW_SIMOCPP_M_OFFERED |
                                                       PW_SIMOCPP_M_ENERGY | PW_SIMOCPP_M_POWER);
    assert_int_equal(
        pw_simocpp_change_config(f->cp, "MeterValuesSampledData", "Current.Import,Voltage", f->now),
        PW_OCPP_REJECTED);
    assert_int_equal(pw_simocpp_measurands(f->cp), PW_SIMOCPP_M_CURRENT | PW_SIMOCPP_M_OFFERED |
                                                       PW_SIMOCPP_M_ENERGY | PW_SIMOCPP_M_POWER);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValueSampleInterval", "0", f->now),
                     PW_OCPP_REJECTED);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValueSampleInterval", "3601", f->now),
                     PW_OCPP_REJECTED);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValueSampleInterval", "1x", f->now),
                     PW_OCPP_REJECTED);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValueSampleInterval", "15", f->now),
                     PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_sample_interval_s(f->cp), 15);
    assert_int_equal(pw_simocpp_change_config(f->cp, "NumberOfConnectors", "3", f->now),
                     PW_OCPP_REJECTED);
    assert_int_equal(pw_simocpp_change_config(f->cp, "Whatever", "3", f->now),
                     PW_OCPP_ANSWER_NOT_SUPPORTED);
    fx_free(f);
}

static void test_quirk_no_offered(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_NO_OFFERED, 1);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValuesSampledData",
                                              "Current.Import,Current.Offered", f->now),
                     PW_OCPP_REJECTED);
    assert_int_equal(pw_simocpp_change_config(f->cp, "MeterValuesSampledData",
                                              "Current.Import,Energy.Active.Import.Register",
                                              f->now),
                     PW_OCPP_ACCEPTED);
    fx_free(f);
}

/* ---- the conversation --------------------------------------------------------------------- */

static void test_boot_and_statuses(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_TX_DEFAULT_ONLY, 2);
    pw_simocpp_connected(f->cp, f->now, f->wall);
    assert_int_equal(f->cs.n_sent, 1); /* nothing but the boot before it is accepted */
    json_t *boot;
    assert_int_equal(count_calls(f, 0, "BootNotification", &boot), 1);
    assert_string_equal(json_string_value(json_object_get(boot, "chargePointVendor")),
                        "phasewise-sim");
    assert_string_equal(json_string_value(json_object_get(boot, "chargePointModel")),
                        "sim-tx-default-only");
    json_decref(boot);
    cs_answer_all(f);
    assert_int_equal(count_calls(f, 0, "StatusNotification", NULL), 3); /* connectors 0, 1, 2 */
    assert_int_equal(pw_simocpp_status(f->cp, 2), PW_OCPP_AVAILABLE);
    /* Heartbeat at the boot's interval (300 s). */
    assert_int_equal(pw_simocpp_next_deadline(f->cp), f->now + 300000);
    f->now += 300000;
    pw_simocpp_poll(f->cp, f->now, f->wall);
    cs_answer_all(f);
    assert_int_equal(count_calls(f, 0, "Heartbeat", NULL), 1);
    fx_free(f);
}

static void test_boot_pending_is_retried(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    pw_simocpp_connected(f->cp, f->now, f->wall);
    deliver(f, "[3,\"1\",{\"status\":\"Pending\",\"currentTime\":\"2026-01-01T00:00:00Z\","
               "\"interval\":20}]");
    f->cs.answered = f->cs.n_sent;
    assert_false(pw_simocpp_is_booted(f->cp));
    assert_int_equal(pw_simocpp_next_deadline(f->cp), f->now + 20000);
    f->now += 20000;
    pw_simocpp_poll(f->cp, f->now, f->wall);
    assert_int_equal(count_calls(f, 0, "BootNotification", NULL), 2);
    cs_answer_all(f);
    assert_true(pw_simocpp_is_booted(f->cp));
    fx_free(f);
}

static void test_transaction_lifecycle(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    fx_boot(f);
    size_t mark = f->cs.n_sent;
    fx_plug(f, 1, 1, 5000.4);
    json_t *start, *st;
    assert_int_equal(count_calls(f, mark, "StartTransaction", &start), 1);
    assert_int_equal(json_integer_value(json_object_get(start, "meterStart")), 5000);
    assert_string_equal(json_string_value(json_object_get(start, "idTag")), "TAG-A");
    assert_int_equal(json_integer_value(json_object_get(start, "connectorId")), 1);
    json_decref(start);
    /* Preparing before the transaction, Charging once it has its id. */
    assert_int_equal(count_calls(f, mark, "StatusNotification", &st), 2);
    assert_string_equal(json_string_value(json_object_get(st, "status")), "Charging");
    json_decref(st);
    assert_string_equal(pw_simocpp_tx_id(f->cp, 1), "100");
    /* The offer drops to 0: SuspendedEVSE; the car stops by itself: SuspendedEV. */
    pw_simocpp_view v = {.session_id = 1, .charging = false, .offered_a = 0.0, .energy_wh = 5100.0};
    pw_simocpp_update(f->cp, 1, &v, f->now, f->wall);
    cs_answer_all(f);
    assert_int_equal(pw_simocpp_status(f->cp, 1), PW_OCPP_SUSPENDED_EVSE);
    v.offered_a = 16.0;
    pw_simocpp_update(f->cp, 1, &v, f->now, f->wall);
    cs_answer_all(f);
    assert_int_equal(pw_simocpp_status(f->cp, 1), PW_OCPP_SUSPENDED_EV);
    mark = f->cs.n_sent;
    fx_unplug(f, 1, 5200.9);
    json_t *stop;
    assert_int_equal(count_calls(f, mark, "StopTransaction", &stop), 1);
    assert_int_equal(json_integer_value(json_object_get(stop, "transactionId")), 100);
    assert_int_equal(json_integer_value(json_object_get(stop, "meterStop")), 5200);
    assert_string_equal(json_string_value(json_object_get(stop, "reason")), "EVDisconnected");
    json_decref(stop);
    assert_int_equal(pw_simocpp_status(f->cp, 1), PW_OCPP_FINISHING);
    assert_string_equal(pw_simocpp_tx_id(f->cp, 1), "");
    f->now += PW_SIMOCPP_FINISHING_MS;
    pw_simocpp_poll(f->cp, f->now, f->wall);
    cs_answer_all(f);
    assert_int_equal(pw_simocpp_status(f->cp, 1), PW_OCPP_AVAILABLE);
    /* The next session takes the next tag. */
    mark = f->cs.n_sent;
    fx_plug(f, 1, 2, 5200.9);
    assert_int_equal(count_calls(f, mark, "StartTransaction", &start), 1);
    assert_string_equal(json_string_value(json_object_get(start, "idTag")), "TAG-B");
    json_decref(start);
    fx_free(f);
}

static void test_tx_profile_only_with_its_transaction(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    fx_boot(f);
    pw_ocpp_profile def = profile(0, 1, 0, PW_OCPP_TX_DEFAULT, 10.0);
    pw_ocpp_profile tx = profile(1, 2, 0, PW_OCPP_TX, 20.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &def, f->wall), PW_OCPP_ACCEPTED);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &tx, f->wall), PW_OCPP_REJECTED); /* no tx */
    fx_plug(f, 1, 1, 0.0);
    strcpy(tx.tx_id, "999");
    assert_int_equal(pw_simocpp_set_profile(f->cp, &tx, f->wall), PW_OCPP_REJECTED);
    strcpy(tx.tx_id, "100");
    assert_int_equal(pw_simocpp_set_profile(f->cp, &tx, f->wall), PW_OCPP_ACCEPTED);
    /* TxProfile overrides TxDefaultProfile, even at a lower stack level and a higher limit. */
    def.stack_level = 5;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &def, f->wall), PW_OCPP_ACCEPTED);
    pw_simocpp_limit l;
    pw_simocpp_limit_at(f->cp, 1, f->wall, &l);
    assert_float_equal(l.limit_a, 20.0, 1e-9);
    assert_int_equal(l.profile_id, 2);
    tx.id = 3;
    tx.tx_id[0] = '\0'; /* without an id it is the running transaction's */
    tx.periods[0].limit_a = 14.0;
    assert_int_equal(pw_simocpp_set_profile(f->cp, &tx, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 14.0, 1e-9); /* same stack level: replaced */
    /* The transaction ends: its TxProfile goes with it, the default is in force again. */
    size_t before = pw_simocpp_profile_count(f->cp);
    fx_unplug(f, 1, 100.0);
    assert_int_equal(pw_simocpp_profile_count(f->cp), before - 1);
    assert_float_equal(limit_now(f, 1), 10.0, 1e-9);
    fx_free(f);
}

static void test_quirk_tx_default_only(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_TX_DEFAULT_ONLY, 1);
    fx_boot(f);
    fx_plug(f, 1, 1, 0.0);
    pw_ocpp_profile tx = profile(1, 2, 0, PW_OCPP_TX, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &tx, f->wall), PW_OCPP_REJECTED);
    pw_ocpp_profile def = profile(1, 3, 1, PW_OCPP_TX_DEFAULT, 10.0);
    assert_int_equal(pw_simocpp_set_profile(f->cp, &def, f->wall), PW_OCPP_ACCEPTED);
    assert_float_equal(limit_now(f, 1), 10.0, 1e-9);
    fx_free(f);
}

static void test_meter_values_measurands_and_interval(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 2);
    fx_boot(f);
    char buf[32];
    assert_string_equal(
        call_status(f,
                    "[2,\"c1\",\"ChangeConfiguration\",{\"key\":\"MeterValuesSampledData\","
                    "\"value\":\"Current.Import,Current.Offered\"}]",
                    buf, sizeof(buf)),
        "Accepted");
    assert_string_equal(call_status(f,
                                    "[2,\"c2\",\"ChangeConfiguration\",{\"key\":"
                                    "\"MeterValueSampleInterval\",\"value\":\"10\"}]",
                                    buf, sizeof(buf)),
                        "Accepted");
    fx_plug(f, 2, 1, 0.0); /* connector 2 labels its phases "L1-N" */
    size_t mark = f->cs.n_sent;
    /* Fake time: step to the next deadline until 35 s have passed. */
    uint64_t end = f->now + 35000;
    while (pw_simocpp_next_deadline(f->cp) <= end) {
        f->now = pw_simocpp_next_deadline(f->cp);
        pw_simocpp_poll(f->cp, f->now, f->wall);
        cs_answer_all(f);
    }
    json_t *mv;
    assert_int_equal(count_calls(f, mark, "MeterValues", &mv), 3); /* at 10, 20, 30 s */
    assert_int_equal(json_integer_value(json_object_get(mv, "connectorId")), 2);
    assert_int_equal(json_integer_value(json_object_get(mv, "transactionId")), 100);
    json_t *sv =
        json_object_get(json_array_get(json_object_get(mv, "meterValue"), 0), "sampledValue");
    size_t i;
    json_t *s;
    int currents = 0, offered = 0;
    json_array_foreach(sv, i, s)
    {
        const char *m = json_string_value(json_object_get(s, "measurand"));
        assert_non_null(m);
        if (strcmp(m, "Current.Import") == 0) {
            const char *ph = json_string_value(json_object_get(s, "phase"));
            assert_non_null(ph);
            assert_non_null(strstr(ph, "-N"));
            currents++;
        } else if (strcmp(m, "Current.Offered") == 0) {
            offered++;
        } else {
            fail_msg("measurand %s was not configured", m);
        }
    }
    assert_int_equal(currents, 3);
    assert_int_equal(offered, 1);
    json_decref(mv);
    fx_free(f);
}

static void test_trigger_message(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    fx_boot(f);
    char buf[32];
    size_t mark = f->cs.n_sent;
    assert_string_equal(call_status(f,
                                    "[2,\"t1\",\"TriggerMessage\",{\"requestedMessage\":"
                                    "\"StatusNotification\",\"connectorId\":1}]",
                                    buf, sizeof(buf)),
                        "Accepted");
    /* The answer first, then the triggered message. */
    json_t *first = frame_json(f->cs.sent[mark]);
    assert_int_equal(json_integer_value(json_array_get(first, 0)), 3);
    json_decref(first);
    assert_int_equal(count_calls(f, mark, "StatusNotification", NULL), 1);
    cs_answer_all(f);
    assert_string_equal(call_status(f,
                                    "[2,\"t2\",\"TriggerMessage\",{\"requestedMessage\":"
                                    "\"MeterValues\",\"connectorId\":1}]",
                                    buf, sizeof(buf)),
                        "Accepted");
    assert_int_equal(count_calls(f, mark, "MeterValues", NULL), 1);
    cs_answer_all(f);
    assert_string_equal(call_status(f,
                                    "[2,\"t3\",\"TriggerMessage\",{\"requestedMessage\":"
                                    "\"DiagnosticsStatusNotification\"}]",
                                    buf, sizeof(buf)),
                        "NotImplemented");
    assert_string_equal(call_status(f,
                                    "[2,\"t4\",\"TriggerMessage\",{\"requestedMessage\":"
                                    "\"Heartbeat\",\"connectorId\":5}]",
                                    buf, sizeof(buf)),
                        "Rejected");
    fx_free(f);
}

static void test_profiles_over_the_wire(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    fx_boot(f);
    char buf[32];
    assert_string_equal(
        call_status(f,
                    "[2,\"p1\",\"SetChargingProfile\",{\"connectorId\":0,\"csChargingProfiles\":{"
                    "\"chargingProfileId\":4,\"stackLevel\":1,\"chargingProfilePurpose\":"
                    "\"TxDefaultProfile\",\"chargingProfileKind\":\"Relative\","
                    "\"chargingSchedule\":{\"chargingRateUnit\":\"A\",\"chargingSchedulePeriod\":"
                    "[{\"startPeriod\":0,\"limit\":11.5}]}}}]",
                    buf, sizeof(buf)),
        "Accepted");
    assert_float_equal(limit_now(f, 1), 11.5, 1e-9);
    assert_string_equal(
        call_status(f, "[2,\"p2\",\"ClearChargingProfile\",{\"id\":4}]", buf, sizeof(buf)),
        "Accepted");
    assert_string_equal(
        call_status(f, "[2,\"p3\",\"ClearChargingProfile\",{\"id\":4}]", buf, sizeof(buf)),
        "Unknown");
    assert_float_equal(limit_now(f, 1), 32.0, 1e-9);
    /* GetConfiguration over the wire: known keys and unknownKey. */
    deliver(f, "[2,\"g1\",\"GetConfiguration\",{\"key\":[\"NumberOfConnectors\",\"Foo\"]}]");
    json_t *conf = last_result(f);
    json_t *k0 = json_array_get(json_object_get(conf, "configurationKey"), 0);
    assert_string_equal(json_string_value(json_object_get(k0, "key")), "NumberOfConnectors");
    assert_string_equal(json_string_value(json_object_get(k0, "value")), "1");
    assert_true(json_is_true(json_object_get(k0, "readonly")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(conf, "unknownKey"), 0)),
                        "Foo");
    json_decref(conf);
    /* An action the simulator does not implement gets a CALLERROR. */
    deliver(f, "[2,\"r1\",\"Reset\",{\"type\":\"Soft\"}]");
    json_t *err = frame_json(f->cs.sent[f->cs.n_sent - 1]);
    assert_int_equal(json_integer_value(json_array_get(err, 0)), 4);
    assert_string_equal(json_string_value(json_array_get(err, 1)), "r1");
    json_decref(err);
    fx_free(f);
}

static void test_transaction_survives_a_dropped_connection(void **state)
{
    (void)state;
    fixture *f = fx_new(PW_SIMOCPP_DEFAULT, 1);
    fx_boot(f);
    /* The car plugs in while the StartTransaction cannot be answered: the link drops. */
    pw_simocpp_view v = {.session_id = 1, .charging = true, .offered_a = 16.0, .energy_wh = 42.0};
    pw_simocpp_update(f->cp, 1, &v, f->now, f->wall);
    cs_answer_until(f, "StartTransaction");
    assert_int_equal(count_calls(f, 0, "StartTransaction", NULL), 1);
    pw_simocpp_disconnected(f->cp);
    f->cs.answered = f->cs.n_sent;
    /* The car leaves while offline. */
    fx_unplug(f, 1, 80.0);
    size_t mark = f->cs.n_sent;
    assert_int_equal(mark, f->cs.answered); /* nothing is sent while offline */
    fx_boot(f);
    /* After the boot: the Start again, then its Stop with the id the central system gave. */
    json_t *stop;
    assert_int_equal(count_calls(f, mark, "StartTransaction", NULL), 1);
    assert_int_equal(count_calls(f, mark, "StopTransaction", &stop), 1);
    assert_int_equal(json_integer_value(json_object_get(stop, "transactionId")), 100);
    assert_int_equal(json_integer_value(json_object_get(stop, "meterStop")), 80);
    json_decref(stop);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_profile_is_unconstrained),
        cmocka_unit_test(test_highest_stack_level_wins),
        cmocka_unit_test(test_replacement_by_id_and_by_stack_level),
        cmocka_unit_test(test_connector_default_wins_tie_with_connector0),
        cmocka_unit_test(test_charge_point_max_caps_the_composite),
        cmocka_unit_test(test_watts_to_amps),
        cmocka_unit_test(test_schedule_periods_and_duration),
        cmocka_unit_test(test_recurring_daily),
        cmocka_unit_test(test_set_profile_rejections),
        cmocka_unit_test(test_quirk_stack0),
        cmocka_unit_test(test_quirk_whole_amps),
        cmocka_unit_test(test_quirk_ignore),
        cmocka_unit_test(test_quirk_names),
        cmocka_unit_test(test_get_configuration),
        cmocka_unit_test(test_change_configuration),
        cmocka_unit_test(test_quirk_no_offered),
        cmocka_unit_test(test_boot_and_statuses),
        cmocka_unit_test(test_boot_pending_is_retried),
        cmocka_unit_test(test_transaction_lifecycle),
        cmocka_unit_test(test_tx_profile_only_with_its_transaction),
        cmocka_unit_test(test_quirk_tx_default_only),
        cmocka_unit_test(test_meter_values_measurands_and_interval),
        cmocka_unit_test(test_trigger_message),
        cmocka_unit_test(test_profiles_over_the_wire),
        cmocka_unit_test(test_transaction_survives_a_dropped_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
