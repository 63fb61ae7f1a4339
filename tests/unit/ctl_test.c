/* The control core (control/pw_ctl.h) in fake time: the first plan goes out to every charger
 * heard, a
 * lease is renewed after a third of it, a lower budget is a cut that goes out again until a
 * report confirms it (twice at most), meter readings run at once and reports within the tick, a
 * command no transport sent is retried after a second, sessions open, save, close and resume
 * from history and carry the RFID tag (also one that comes after plug-in, as OCPP sends it), the
 * car-state and online rules, config changes carry state over, unassigned devices and rejected
 * input become few events, limit changes are recorded once, after a start a charger is told
 * nothing (never a pause) until its first status is heard, and an operator's overrides (pause,
 * maximum, facility limit) go out as cuts at once, stay across config changes, and the facility
 * limit ends by itself at its deadline with an event.
 *
 * Every test drives the core as the shell does: run at pw_ctl_next_deadline() with an explicit
 * now, hand the due commands to a fake transport that sends them at once, and look at what the
 * sink recorded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_ctl.h"

#define A_EQ(x, y) assert_float_equal((x), (y), 1e-6)

#define T0     UINT64_C(1000000)      /* monotonic start: 0 would read as "never" */
#define WALL0  INT64_C(1700000000000) /* wall = WALL0 + now */
#define LEASE  30000u                 /* lease_s 30 */
#define RENEW  (LEASE / PW_CTL_LEASE_RENEW_DIV)
#define TICK   1000u /* tick_ms */
#define MAXREC 1024

/* Chargers on the main node: 6-16 A, failsafe 6 A, three phases L1L2L3. */
#define CH(id, dev)                                                                                \
    "{\"id\":\"" id "\",\"device_id\":" #dev ",\"node\":\"main\",\"max_a\":16,\"failsafe_a\":6}"
#define TWO CH("a01", 1001) "," CH("a02", 1002)

typedef struct rec_event {
    uint64_t now;
    int64_t wall;
    char kind[32], subject[64], detail[256];
} rec_event;

typedef struct rec_session {
    uint64_t now;
    size_t charger;
    pw_ctl_session s;
} rec_session;

typedef struct rec_limit {
    uint64_t now;
    size_t charger;
    double limit_a;
    int64_t wall;
} rec_limit;

typedef struct rec_due {
    uint64_t now;
    size_t charger;
    pw_ctl_command cmd;
} rec_due;

/* A core, its config and everything its sink and the fake transport saw. */
typedef struct tx {
    pw_cfg *cfg;
    pw_ctl *ctl;
    uint64_t now;
    rec_event ev[MAXREC];
    size_t n_ev;
    rec_session ses[MAXREC];
    size_t n_ses;
    rec_limit lim[MAXREC];
    size_t n_lim;
    rec_due due[MAXREC]; /* every command a run marked due, in order */
    size_t n_due;
} tx;

static int64_t wall_of(uint64_t now)
{
    return WALL0 + (int64_t)now;
}

static void on_event(void *ud, int64_t wall, const char *kind, const char *subject,
                     const char *detail)
{
    tx *t = ud;
    assert_true(t->n_ev < MAXREC);
    rec_event *e = &t->ev[t->n_ev++];
    e->now = t->now;
    e->wall = wall;
    snprintf(e->kind, sizeof e->kind, "%s", kind ? kind : "");
    snprintf(e->subject, sizeof e->subject, "%s", subject ? subject : "");
    snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
}

static void on_session(void *ud, size_t charger, const pw_ctl_session *s)
{
    tx *t = ud;
    assert_true(t->n_ses < MAXREC);
    t->ses[t->n_ses++] = (rec_session){.now = t->now, .charger = charger, .s = *s};
}

static void on_limit(void *ud, size_t charger, const pw_bal_result *r, int64_t wall)
{
    tx *t = ud;
    assert_true(t->n_lim < MAXREC);
    t->lim[t->n_lim++] =
        (rec_limit){.now = t->now, .charger = charger, .limit_a = r->limit_a, .wall = wall};
}

/* A facility with one metered main node (meter device 900, stale after 60 s, no fallback) of
 * limit_a per line and the given chargers; lease 30 s, tick 1 s. */
static pw_cfg *facility(double limit_a, const char *chargers)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"grid\":\"TN\",\"balancer\":{\"lease_s\":30,\"tick_ms\":1000},"
             "\"nodes\":[{\"id\":\"main\",\"parent\":null,\"limit_a\":%g,"
             "\"meter\":{\"device_id\":900,\"timeout_s\":60,\"fallback_a\":0}}],"
             "\"chargers\":[%s]}",
             limit_a, chargers);
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_parse(text, strlen(text), &errs);
    if (!cfg) {
        char buf[4096];
        pw_cfg_errors_print(&errs, buf, sizeof buf);
        fail_msg("test facility rejected:\n%s", buf);
    }
    assert_int_equal(cfg->lease_ms, LEASE);
    assert_int_equal(cfg->tick_ms, TICK);
    return cfg;
}

/* The test's core, freed by the teardown too when an assertion ends the test early (so the
 * ASan build reports only real leaks). */
static tx *live;

static tx *tx_new_timing(double limit_a, const char *chargers, const pw_bal_timing *timing)
{
    tx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->cfg = facility(limit_a, chargers);
    t->now = T0;
    pw_ctl_sink sink = {
        .ud = t, .event = on_event, .session = on_session, .limit_change = on_limit};
    t->ctl = pw_ctl_new(t->cfg, timing, &sink);
    assert_non_null(t->ctl);
    live = t;
    return t;
}

/* Two chargers a01 (1001) and a02 (1002) under a 40 A main fuse. */
static tx *tx_new(void)
{
    return tx_new_timing(40, TWO, NULL);
}

static void tx_free(tx *t)
{
    pw_ctl_free(t->ctl);
    pw_cfg_free(t->cfg);
    free(t);
    live = NULL;
}

static int teardown(void **state)
{
    (void)state;
    if (live)
        tx_free(live);
    return 0;
}

static const pw_ctl_seen SEEN = {
    .info = NULL, .address = "device 1001", .restarted = NULL, .loss_pct = -1};

/* A report drawing amps on every terminal while offering offered. */
static pw_ctl_report rep(uint8_t pilot, double amps, double offered, uint64_t wh, const char *ref)
{
    pw_ctl_report r = {.pilot = pilot,
                       .ev_suspended = -1,
                       .current_a = {amps, amps, amps},
                       .offered_a = offered,
                       .phases = 3,
                       .energy_wh = wh};
    snprintf(r.session_ref, sizeof r.session_ref, "%s", ref);
    return r;
}

static void report(tx *t, size_t i, pw_ctl_report r)
{
    assert_int_equal(pw_ctl_charger_report(t->ctl, i, &SEEN, &r, t->now, wall_of(t->now)), 0);
}

static void report_pilot(tx *t, size_t i, uint8_t pilot)
{
    double amps = pilot == PW_CTL_PILOT_C || pilot == PW_CTL_PILOT_D ? 10 : 0;
    report(t, i, rep(pilot, amps, 16, PW_CTL_ENERGY_UNKNOWN, ""));
}

static int meter(tx *t, double a)
{
    double line[PW_LINES] = {a, a, a};
    return pw_ctl_meter_report(t->ctl, 0, line, t->now);
}

/* One run at t->now; due commands are logged and, if send, sent at once. Returns how many were
 * due, after checking that the count the run returned matches the due flags. */
static size_t run(tx *t, bool send)
{
    size_t n = pw_ctl_run(t->ctl, t->now, wall_of(t->now));
    const pw_ctl_command *cmds = pw_ctl_commands(t->ctl);
    size_t nc = pw_ctl_config(t->ctl)->n_chargers, due = 0;
    pw_ctl_command copy[16];
    assert_true(nc <= 16);
    memcpy(copy, cmds, nc * sizeof *copy);
    for (size_t i = 0; i < nc; i++) {
        if (!copy[i].due)
            continue;
        due++;
        assert_true(t->n_due < MAXREC);
        t->due[t->n_due++] = (rec_due){.now = t->now, .charger = i, .cmd = copy[i]};
    }
    assert_int_equal(n, due);
    if (send)
        for (size_t i = 0; i < nc; i++)
            if (copy[i].due)
                pw_ctl_sent(t->ctl, i, t->now, wall_of(t->now));
    return n;
}

/* Fake time: runs the core at each of its deadlines up to and including until (sending due
 * commands if send), then sets now to until. A deadline already past runs at now, as the
 * shell's timer would; a core that keeps asking for the same instant spins the shell's loop,
 * and that fails the test. */
static void advance(tx *t, uint64_t until, bool send)
{
    int same = 0;
    for (int guard = 0;; guard++) {
        assert_true(guard < 100000);
        uint64_t d = pw_ctl_next_deadline(t->ctl);
        if (d > until)
            break;
        if (d > t->now) {
            t->now = d;
            same = 0;
        } else if (++same > 3) {
            fail_msg("the core keeps asking to run at %llu (now %llu): it spins",
                     (unsigned long long)d, (unsigned long long)t->now);
        }
        run(t, send);
    }
    t->now = until;
}

static size_t count_events(const tx *t, size_t from, const char *kind)
{
    size_t n = 0;
    for (size_t i = from; i < t->n_ev; i++)
        n += strcmp(t->ev[i].kind, kind) == 0;
    return n;
}

/* Index of the first due record of charger i at or after record from, or -1. */
static long first_due(const tx *t, size_t from, size_t i)
{
    for (size_t k = from; k < t->n_due; k++)
        if (t->due[k].charger == i)
            return (long)k;
    return -1;
}

static size_t count_due(const tx *t, size_t from, size_t i)
{
    size_t n = 0;
    for (size_t k = from; k < t->n_due; k++)
        n += t->due[k].charger == i;
    return n;
}

/* Whether text contains value as a whole number. */
static bool has_number(const char *text, unsigned long long value)
{
    for (const char *p = text; *p;) {
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (v == value)
            return true;
        p = end;
    }
    return false;
}

static bool mentions(const rec_event *e, const char *word)
{
    return strstr(e->kind, word) || strstr(e->subject, word) || strstr(e->detail, word);
}

/* a01 charging at 16 A (offering 16), a02 without a car (offering 0, so the balancer has no cut
 * of its own to wait for), the main meter reading 16 A: both planned and sent at T0. a01's plan
 * is 16 A (its maximum), a02's 0. */
static void one_charging(tx *t)
{
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1"));
    report(t, 1, rep(PW_CTL_PILOT_A, 0, 0, 500, ""));
    assert_int_equal(meter(t, 16), 0);
    advance(t, t->now, true);
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 16);
    A_EQ(pw_ctl_commands(t->ctl)[1].limit_a, 0);
}

/* The main meter shows 30 A more building load: a01 is cut from 16 to 10 A at once. Returns
 * the index of the cut's due record. */
static size_t cut_a01(tx *t)
{
    size_t from = t->n_due;
    assert_int_equal(meter(t, 16 + 30), 0);
    advance(t, t->now, true);
    long k = first_due(t, from, 0);
    assert_true(k >= 0);
    A_EQ(t->due[k].cmd.limit_a, 10);
    assert_true(t->due[k].cmd.cut);
    return (size_t)k;
}

/* ---- 1. the first plan goes out to every charger ------------------------------------------ */

static void test_first_run_all_due_then_nothing(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1"));
    report(t, 1, rep(PW_CTL_PILOT_A, 0, 16, 500, ""));
    assert_int_equal(meter(t, 16), 0);
    assert_int_equal(run(t, false), 2); /* a02 has no car, but was never told anything either */
    const pw_ctl_command *c = pw_ctl_commands(t->ctl);
    assert_true(c[0].due && c[1].due);
    A_EQ(c[0].limit_a, 16);
    A_EQ(c[1].limit_a, 0);
    assert_int_equal(c[0].lease_ms, LEASE);
    pw_ctl_sent(t->ctl, 0, t->now, wall_of(t->now));
    pw_ctl_sent(t->ctl, 1, t->now, wall_of(t->now));
    assert_int_equal(run(t, false), 0);
    c = pw_ctl_commands(t->ctl);
    assert_false(c[0].due);
    assert_false(c[1].due);
    tx_free(t);
}

/* ---- 2. renewal after a third of the lease ----------------------------------------------- */

/* The core's next deadline is want (offsets from T0 in the message). */
static void deadline_is(const tx *t, uint64_t want, const char *what)
{
    uint64_t d = pw_ctl_next_deadline(t->ctl);
    if (d != want)
        fail_msg("%s: next deadline %s%lld ms, expected +%llu", what,
                 d == UINT64_MAX ? "never " : "+", d == UINT64_MAX ? 0LL : (long long)(d - T0),
                 (unsigned long long)(want - T0));
}

static void test_renewal_after_third_of_lease(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    uint32_t seq = pw_ctl_commands(t->ctl)[0].plan_seq;
    deadline_is(t, T0 + RENEW, "after the first plan went out");
    size_t from = t->n_due;
    t->now = T0 + RENEW - 1; /* the shell may run early: nothing is due yet */
    assert_int_equal(run(t, true), 0);
    deadline_is(t, T0 + RENEW, "after an early run");
    t->now = T0 + RENEW;
    run(t, true);
    long k = first_due(t, from, 0);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, T0 + RENEW);
    A_EQ(t->due[k].cmd.limit_a, 16);
    assert_false(t->due[k].cmd.cut);
    assert_int_equal(t->due[k].cmd.plan_seq, seq);
    /* and again a third of the lease after the renewal went out, with no run asked for before */
    deadline_is(t, T0 + 2 * RENEW, "after the renewal went out");
    from = t->n_due;
    advance(t, T0 + 2 * RENEW, true);
    k = first_due(t, from, 0);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, T0 + 2 * RENEW);
    assert_int_equal(count_due(t, from, 0), 1);
    tx_free(t);
}

/* ---- 3. a lower budget is a new plan that cuts the affected chargers ---------------------- */

static void test_lower_budget_new_plan_cuts_affected(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    uint32_t seq = pw_ctl_commands(t->ctl)[0].plan_seq;
    uint64_t plans = pw_ctl_stats_get(t->ctl)->plans;
    t->now += 1000;
    assert_int_equal(meter(t, 16 + 30), 0);
    assert_int_equal(run(t, false), 1); /* a02 (no car, 0 A) is not affected */
    const pw_ctl_command *c = pw_ctl_commands(t->ctl);
    assert_true(c[0].due);
    assert_true(c[0].cut);
    A_EQ(c[0].limit_a, 10);
    assert_true(c[0].plan_seq > seq);
    assert_false(c[1].due);
    assert_true(pw_ctl_stats_get(t->ctl)->plans > plans);
    tx_free(t);
}

/* After a confirmed cut, more room is a raise: due, a new plan, but not a cut. */
static void test_raise_is_not_a_cut(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 1000;
    size_t k = cut_a01(t);
    uint32_t seq = t->due[k].cmd.plan_seq;
    t->now += 500;
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 10, 1010, "s1"));
    advance(t, t->now + 500, true);
    assert_int_equal(meter(t, 10), 0); /* the building load is gone */
    size_t from = t->n_due;
    for (int i = 0; i < 20 && first_due(t, from, 0) < 0; i++) { /* a reading every second */
        advance(t, t->now + 1000, true);
        assert_int_equal(meter(t, 10), 0);
    }
    advance(t, t->now, true);
    long r = first_due(t, from, 0);
    assert_true(r >= 0);
    assert_true(t->due[r].cmd.limit_a > 10);
    assert_false(t->due[r].cmd.cut);
    assert_true(t->due[r].cmd.plan_seq > seq);
    tx_free(t);
}

/* ---- 4. cut confirmation ----------------------------------------------------------------- */

/* Nobody confirms the cut: it goes out again 2 s after each send, twice, and then only with the
 * renewal a third of the lease after the last send. */
static void test_cut_unconfirmed_resent_twice_then_renewals(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 1000;
    uint64_t tc = t->now;
    size_t k = cut_a01(t);
    uint32_t seq = t->due[k].cmd.plan_seq;
    size_t from = t->n_due;
    advance(t, tc + PW_CTL_CUT_CONFIRM_MS - 1, true);
    assert_int_equal(count_due(t, from, 0), 0);
    advance(t, tc + 20000, true);
    uint64_t want[] = {tc + PW_CTL_CUT_CONFIRM_MS, tc + 2 * PW_CTL_CUT_CONFIRM_MS,
                       tc + 2 * PW_CTL_CUT_CONFIRM_MS + RENEW};
    assert_int_equal(PW_CTL_CUT_MAX_RESENDS, 2);
    assert_int_equal(count_due(t, from, 0), 3);
    for (size_t n = 0, i = from; i < t->n_due; i++) {
        if (t->due[i].charger != 0)
            continue;
        if (t->due[i].now != want[n])
            fail_msg("a01 due #%zu at +%llu ms after the cut, expected +%llu", n,
                     (unsigned long long)(t->due[i].now - tc), (unsigned long long)(want[n] - tc));
        A_EQ(t->due[i].cmd.limit_a, 10);
        assert_int_equal(t->due[i].cmd.plan_seq, seq);
        n++;
    }
    assert_int_equal(pw_ctl_stats_get(t->ctl)->cut_resends, PW_CTL_CUT_MAX_RESENDS);
    tx_free(t);
}

/* A report offering the new limit confirms the cut: only the renewal follows. */
static void test_cut_confirmed_by_report_not_resent(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 1000;
    uint64_t tc = t->now;
    cut_a01(t);
    size_t from = t->n_due;
    t->now = tc + 500;
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 10, 1010, "s1"));
    advance(t, tc + RENEW - 1, true);
    assert_int_equal(count_due(t, from, 0), 0);
    assert_int_equal(pw_ctl_stats_get(t->ctl)->cut_resends, 0);
    advance(t, tc + RENEW, true);
    assert_int_equal(count_due(t, from, 0), 1);
    tx_free(t);
}

/* A report still offering the old limit does not confirm it. */
static void test_cut_report_above_limit_does_not_confirm(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 1000;
    uint64_t tc = t->now;
    cut_a01(t);
    size_t from = t->n_due;
    t->now = tc + 500;
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1010, "s1"));
    advance(t, tc + PW_CTL_CUT_CONFIRM_MS, true);
    long k = first_due(t, from, 0);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, tc + PW_CTL_CUT_CONFIRM_MS);
    A_EQ(t->due[k].cmd.limit_a, 10);
    assert_int_equal(pw_ctl_stats_get(t->ctl)->cut_resends, 1);
    tx_free(t);
}

/* ---- 5. when input asks for a run ------------------------------------------------------- */

static void test_meter_reading_asks_run_now(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 3000;
    assert_true(pw_ctl_next_deadline(t->ctl) > t->now);
    assert_int_equal(meter(t, 16), 0);
    assert_int_equal(pw_ctl_next_deadline(t->ctl), t->now);
    tx_free(t);
}

static void test_report_asks_run_within_tick(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 3000;
    uint64_t before = pw_ctl_next_deadline(t->ctl);
    assert_true(before > t->now + TICK);
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1005, "s1"));
    assert_true(pw_ctl_next_deadline(t->ctl) <= t->now + TICK);
    tx_free(t);
}

/* A broken reading changes no meter state and plans nothing (a run the core may ask for, e.g.
 * to log the refused input, keeps the plan and marks nothing due). */
static void test_meter_rejects_nan_and_negative(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 3000;
    const pw_ctl_meter_state *m = pw_ctl_meter(t->ctl, 0);
    uint64_t seen = m->last_seen_ms;
    uint64_t rejected = pw_ctl_stats_get(t->ctl)->meter_rejected;
    double non_ev = pw_bal_node_results(pw_ctl_balancer(t->ctl))[0].non_ev_a[0];
    double bad[][PW_LINES] = {{NAN, 46, 46}, {46, -1, 46}, {46, 46, INFINITY}, {NAN, NAN, NAN}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pw_ctl_meter_report(t->ctl, 0, bad[i], t->now), -1);
        m = pw_ctl_meter(t->ctl, 0);
        assert_int_equal(m->last_seen_ms, seen);
        A_EQ(m->line_a[0], 16);
        A_EQ(m->line_a[1], 16);
        A_EQ(m->line_a[2], 16);
    }
    assert_int_equal(pw_ctl_stats_get(t->ctl)->meter_rejected, rejected + 4);
    /* 46 A on the good lines would cut a01 to 10 A if any of it reached the balancer */
    size_t from = t->n_due;
    advance(t, t->now + TICK, true);
    assert_int_equal(count_due(t, from, 0), 0);
    A_EQ(pw_bal_results(pw_ctl_balancer(t->ctl))[0].limit_a, 16);
    A_EQ(pw_bal_node_results(pw_ctl_balancer(t->ctl))[0].non_ev_a[0], non_ev);
    tx_free(t);
}

/* A reading above ten times the fuse is a broken meter or a wrong register, not a load. */
static void test_meter_rejects_implausible(void **state)
{
    (void)state;
    tx *t = tx_new(); /* 40 A fuse */
    double ok[PW_LINES] = {399, 0, 0}, bad[PW_LINES] = {401, 0, 0};
    assert_int_equal(pw_ctl_meter_report(t->ctl, 0, ok, t->now), 0);
    assert_int_equal(pw_ctl_meter_report(t->ctl, 0, bad, t->now + 1), -1);
    A_EQ(pw_ctl_meter(t->ctl, 0)->line_a[0], 399);
    assert_int_equal(pw_ctl_reject_count(t->ctl, "meter", "implausible"), 1);
    tx_free(t);
}

/* A 3-wire IT meter without L2: L2 is L1 + L3, the bound that never under-estimates it; a meter
 * not configured so gets no L2 made up (NaN stays a refused reading). */
static void test_meter_derives_l2_when_configured(void **state)
{
    (void)state;
    tx *t = tx_new();
    double l1l3[PW_LINES] = {10, NAN, 7};
    assert_int_equal(pw_ctl_meter_report(t->ctl, 0, l1l3, t->now), -1);
    assert_non_null(t->cfg->meter_opts);
    t->cfg->meter_opts[0].derive_l2 = true;
    assert_int_equal(pw_ctl_meter_report(t->ctl, 0, l1l3, t->now), 0);
    A_EQ(pw_ctl_meter(t->ctl, 0)->line_a[1], 17);
    double all[PW_LINES] = {10, 3, 7}; /* a reported L2 is taken as it is */
    assert_int_equal(pw_ctl_meter_report(t->ctl, 0, all, t->now + 1), 0);
    A_EQ(pw_ctl_meter(t->ctl, 0)->line_a[1], 3);
    tx_free(t);
}

/* A report that cannot be true is refused and changes nothing. */
static void test_impossible_report_rejected(void **state)
{
    (void)state;
    tx *t = tx_new();
    pw_ctl_report bad[3] = {rep(7, 0, 16, 100, ""), rep(PW_CTL_PILOT_C, 10, 16, 100, "s1"),
                            rep(PW_CTL_PILOT_C, 10, -1, 100, "s1")};
    bad[1].current_a[1] = NAN;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(pw_ctl_charger_report(t->ctl, 0, &SEEN, &bad[i], t->now, wall_of(t->now)),
                         -1);
    const pw_ctl_charger_state *ch = pw_ctl_charger(t->ctl, 0);
    assert_false(ch->has_report);
    assert_int_equal(ch->last_seen_ms, 0);
    assert_false(ch->in_session);
    assert_int_equal(t->n_ses, 0);
    tx_free(t);
}

/* ---- 6. a due command nobody sent ------------------------------------------------------- */

static void test_unsent_command_due_again_after_retry(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1"));
    report(t, 1, rep(PW_CTL_PILOT_A, 0, 16, 500, ""));
    assert_int_equal(meter(t, 16), 0);
    assert_int_equal(run(t, false), 2);
    uint64_t d = pw_ctl_next_deadline(t->ctl);
    assert_true(d > T0);
    assert_true(d <= T0 + PW_CTL_RETRY_MS);
    size_t from = t->n_due;
    advance(t, T0 + PW_CTL_RETRY_MS, false); /* the transport is still down */
    long k = first_due(t, from, 0);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, T0 + PW_CTL_RETRY_MS);
    A_EQ(t->due[k].cmd.limit_a, 16);
    assert_true(first_due(t, from, 1) >= 0);
    tx_free(t);
}

/* ---- 7. sessions ----------------------------------------------------------------------- */

static void test_session_opens_when_pilot_leaves_a(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_A, 0, 16, 5000, ""));
    assert_int_equal(t->n_ses, 0);
    assert_false(pw_ctl_charger(t->ctl, 0)->in_session);
    t->now += 2000;
    report(t, 0, rep(PW_CTL_PILOT_B, 0, 16, 5000, "s1"));
    assert_int_equal(t->n_ses, 1);
    const rec_session *s = &t->ses[0];
    assert_int_equal(s->charger, 0);
    assert_int_equal(s->s.start_ms, wall_of(t->now));
    assert_int_equal(s->s.end_ms, 0);
    assert_int_equal(s->s.register_start_wh, 5000);
    assert_string_equal(s->s.ref, "s1");
    assert_true(pw_ctl_charger(t->ctl, 0)->in_session);
    tx_free(t);
}

/* One charger whose renewals (after a cut at +3 s) never fall on a whole minute: only the
 * session's own deadline can save it at +60 s and +120 s. */
static void test_session_saved_every_minute_without_report(void **state)
{
    (void)state;
    tx *t = tx_new_timing(40, CH("a01", 1001), NULL);
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 5000, "s1"));
    assert_int_equal(meter(t, 16), 0);
    advance(t, T0, true);
    assert_int_equal(t->n_ses, 1);
    int64_t start = t->ses[0].s.start_ms;
    t->now = T0 + 3000;
    assert_int_equal(meter(t, 16 + 30), 0);
    advance(t, t->now, true);
    t->now += 500;
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 10, 5010, "s1")); /* confirms; then silent */
    advance(t, T0 + 2 * PW_CTL_SESSION_SAVE_MS + TICK, true);
    assert_int_equal(t->n_ses, 3);
    for (size_t i = 1; i < 3; i++) {
        uint64_t due = T0 + i * PW_CTL_SESSION_SAVE_MS;
        if (t->ses[i].now < due || t->ses[i].now > due + TICK)
            fail_msg("save #%zu at +%llu ms, expected +%llu", i,
                     (unsigned long long)(t->ses[i].now - T0), (unsigned long long)(due - T0));
        assert_int_equal(t->ses[i].s.start_ms, start);
        assert_int_equal(t->ses[i].s.end_ms, 0);
    }
    tx_free(t);
}

static void test_session_closes_at_a_with_peak(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_B, 0, 16, 5000, "s1"));
    int64_t start = wall_of(t->now);
    t->now += 1000;
    pw_ctl_report r = rep(PW_CTL_PILOT_C, 0, 16, 6000, "s1");
    r.current_a[0] = 10, r.current_a[1] = 14, r.current_a[2] = 12;
    report(t, 0, r);
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_C, 8, 16, 7000, "s1"));
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_A, 0, 16, 7500, ""));
    const rec_session *s = &t->ses[t->n_ses - 1];
    assert_int_equal(s->s.start_ms, start);
    assert_int_equal(s->s.end_ms, wall_of(t->now));
    assert_int_equal(s->s.register_start_wh, 5000);
    assert_int_equal(s->s.register_wh, 7500);
    A_EQ(s->s.peak_a, 14);
    assert_false(pw_ctl_charger(t->ctl, 0)->in_session);
    tx_free(t);
}

static void test_session_new_ref_splits(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 16, 5000, "s1"));
    int64_t start = wall_of(t->now);
    t->now += 5000;
    size_t from = t->n_ses;
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 16, 6000, "s2"));
    bool closed = false, opened = false;
    for (size_t i = from; i < t->n_ses; i++) {
        const pw_ctl_session *s = &t->ses[i].s;
        if (s->start_ms == start && strcmp(s->ref, "s1") == 0 && s->end_ms == wall_of(t->now))
            closed = true;
        if (s->start_ms == wall_of(t->now) && strcmp(s->ref, "s2") == 0 && s->end_ms == 0)
            opened = true;
    }
    assert_true(closed);
    assert_true(opened);
    const pw_ctl_charger_state *ch = pw_ctl_charger(t->ctl, 0);
    assert_true(ch->in_session);
    assert_int_equal(ch->session.start_ms, wall_of(t->now));
    tx_free(t);
}

/* ---- 8. sessions open at a restart ------------------------------------------------------ */

#define S_START (WALL0 - 3600000)

static void resume_77(tx *t)
{
    pw_ctl_session s = {.start_ms = S_START,
                        .end_ms = 0,
                        .register_start_wh = 4000,
                        .register_wh = 4500,
                        .peak_a = 10};
    snprintf(s.ref, sizeof s.ref, "77");
    pw_ctl_resume_session(t->ctl, 0, &s);
    assert_true(pw_ctl_charger(t->ctl, 0)->resumed);
}

static void test_resume_same_ref_continues_row(void **state)
{
    (void)state;
    tx *t = tx_new();
    resume_77(t);
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 16, 4800, "77"));
    const pw_ctl_charger_state *ch = pw_ctl_charger(t->ctl, 0);
    assert_true(ch->in_session);
    assert_false(ch->resumed);
    assert_int_equal(ch->session.start_ms, S_START);
    assert_int_equal(ch->session.register_start_wh, 4000);
    advance(t, T0 + 10000, true);
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_A, 0, 16, 5200, ""));
    assert_true(t->n_ses >= 1);
    for (size_t i = 0; i < t->n_ses; i++) /* one row throughout */
        assert_int_equal(t->ses[i].s.start_ms, S_START);
    const rec_session *last = &t->ses[t->n_ses - 1];
    assert_int_equal(last->s.end_ms, wall_of(t->now));
    assert_int_equal(last->s.register_start_wh, 4000);
    assert_int_equal(last->s.register_wh, 5200);
    tx_free(t);
}

static void test_resume_other_ref_closes_and_opens(void **state)
{
    (void)state;
    tx *t = tx_new();
    resume_77(t);
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 16, 6000, "88"));
    bool closed = false, opened = false;
    for (size_t i = 0; i < t->n_ses; i++) {
        const pw_ctl_session *s = &t->ses[i].s;
        if (s->start_ms == S_START && strcmp(s->ref, "77") == 0 && s->end_ms != 0)
            closed = true;
        if (s->start_ms == wall_of(t->now) && strcmp(s->ref, "88") == 0 && s->end_ms == 0)
            opened = true;
    }
    assert_true(closed);
    assert_true(opened);
    assert_int_equal(pw_ctl_charger(t->ctl, 0)->session.start_ms, wall_of(t->now));
    tx_free(t);
}

static void test_resume_unplugged_closes(void **state)
{
    (void)state;
    tx *t = tx_new();
    resume_77(t);
    report(t, 0, rep(PW_CTL_PILOT_A, 0, 16, 6000, ""));
    assert_true(t->n_ses >= 1);
    const rec_session *last = &t->ses[t->n_ses - 1];
    assert_int_equal(last->s.start_ms, S_START);
    assert_true(last->s.end_ms != 0);
    assert_false(pw_ctl_charger(t->ctl, 0)->in_session);
    tx_free(t);
}

/* ---- 8b. RFID tags (OCPP idTag) in sessions ---------------------------------------------- */

/* A report as rep() with the tag that started the running transaction. */
static pw_ctl_report rep_tag(uint8_t pilot, double amps, uint64_t wh, const char *ref,
                             const char *tag)
{
    pw_ctl_report r = rep(pilot, amps, 16, wh, ref);
    snprintf(r.id_tag, sizeof r.id_tag, "%s", tag);
    return r;
}

#define TAG20 "04A2B3C4D5E6F7A8B9C0" /* the longest IdToken: 20 characters */

static void test_session_tag_copied_at_open(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep_tag(PW_CTL_PILOT_B, 0, 5000, "41", TAG20));
    assert_int_equal(t->n_ses, 1);
    assert_string_equal(t->ses[0].s.id_tag, TAG20);
    assert_string_equal(t->ses[0].s.ref, "41");
    assert_string_equal(pw_ctl_charger(t->ctl, 0)->session.id_tag, TAG20);
    t->now += 1000;
    report(t, 0, rep_tag(PW_CTL_PILOT_A, 0, 5300, "", ""));
    const rec_session *last = &t->ses[t->n_ses - 1];
    assert_true(last->s.end_ms != 0);
    assert_string_equal(last->s.id_tag, TAG20); /* the closing row still names who charged */
    tx_free(t);
}

/* OCPP: plug-in (Preparing) comes before StartTransaction, which brings the transaction id and
 * the tag; StopTransaction can come before the unplug. All of it is one session, one row. */
static void test_session_learns_tag_after_plug_in(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep_tag(PW_CTL_PILOT_B, 0, 5000, "", ""));
    assert_int_equal(t->n_ses, 1);
    int64_t start = t->ses[0].s.start_ms;
    assert_string_equal(t->ses[0].s.id_tag, "");
    t->now += 3000;
    size_t from = t->n_ses;
    report(t, 0, rep_tag(PW_CTL_PILOT_B, 0, 5000, "17", "TAG-A"));
    /* Written at once with what it learned, not a minute later, and not as a new session. */
    assert_int_equal(t->n_ses, from + 1);
    assert_int_equal(t->ses[from].s.start_ms, start);
    assert_int_equal(t->ses[from].s.end_ms, 0);
    assert_string_equal(t->ses[from].s.id_tag, "TAG-A");
    assert_string_equal(t->ses[from].s.ref, "17");
    t->now += 1000;
    from = t->n_ses;
    report(t, 0, rep_tag(PW_CTL_PILOT_C, 10, 5200, "17", "TAG-A"));
    assert_int_equal(t->n_ses, from); /* nothing new: no extra row */
    /* A later, different tag on the same transaction does not rewrite who started it. */
    t->now += 1000;
    report(t, 0, rep_tag(PW_CTL_PILOT_C, 10, 5300, "17", "TAG-B"));
    assert_string_equal(pw_ctl_charger(t->ctl, 0)->session.id_tag, "TAG-A");
    /* StopTransaction while the car is still plugged in: the session stays open. */
    t->now += 1000;
    report(t, 0, rep_tag(PW_CTL_PILOT_B, 0, 5400, "", ""));
    const pw_ctl_charger_state *ch = pw_ctl_charger(t->ctl, 0);
    assert_true(ch->in_session);
    assert_int_equal(ch->session.start_ms, start);
    assert_string_equal(ch->session.id_tag, "TAG-A");
    assert_string_equal(ch->session.ref, "17");
    t->now += 1000;
    report(t, 0, rep_tag(PW_CTL_PILOT_A, 0, 5400, "", ""));
    for (size_t i = 0; i < t->n_ses; i++)
        assert_int_equal(t->ses[i].s.start_ms, start);
    const rec_session *last = &t->ses[t->n_ses - 1];
    assert_true(last->s.end_ms != 0);
    assert_int_equal(last->s.register_wh - last->s.register_start_wh, 400);
    assert_string_equal(last->s.id_tag, "TAG-A");
    tx_free(t);
}

/* A second transaction on the same plug-in (another tag swiped) is a session of its own. */
static void test_session_new_transaction_new_tag(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep_tag(PW_CTL_PILOT_C, 10, 5000, "17", "TAG-A"));
    int64_t first = wall_of(t->now);
    t->now += 5000;
    report(t, 0, rep_tag(PW_CTL_PILOT_C, 10, 6000, "18", "TAG-B"));
    bool closed = false, opened = false;
    for (size_t i = 0; i < t->n_ses; i++) {
        const pw_ctl_session *s = &t->ses[i].s;
        closed |= s->start_ms == first && s->end_ms && strcmp(s->id_tag, "TAG-A") == 0;
        opened |= s->start_ms == wall_of(t->now) && !s->end_ms && strcmp(s->id_tag, "TAG-B") == 0;
    }
    assert_true(closed);
    assert_true(opened);
    tx_free(t);
}

/* A session resumed from history keeps its tag; one resumed without a tag learns it. */
static void test_resume_keeps_or_learns_tag(void **state)
{
    (void)state;
    tx *t = tx_new();
    resume_77(t); /* no tag in history */
    pw_ctl_session kept = {.start_ms = S_START + 1, .register_start_wh = 100, .register_wh = 200};
    snprintf(kept.ref, sizeof kept.ref, "99");
    snprintf(kept.id_tag, sizeof kept.id_tag, "CARD-1");
    pw_ctl_resume_session(t->ctl, 1, &kept);
    report(t, 0, rep_tag(PW_CTL_PILOT_C, 10, 4800, "77", "TAG-77"));
    report(t, 1, rep_tag(PW_CTL_PILOT_C, 10, 300, "99", "CARD-2"));
    assert_int_equal(pw_ctl_charger(t->ctl, 0)->session.start_ms, S_START);
    assert_string_equal(pw_ctl_charger(t->ctl, 0)->session.id_tag, "TAG-77");
    assert_int_equal(pw_ctl_charger(t->ctl, 1)->session.start_ms, S_START + 1);
    assert_string_equal(pw_ctl_charger(t->ctl, 1)->session.id_tag, "CARD-1");
    bool saved = false; /* the learned tag reached the history row at once */
    for (size_t i = 0; i < t->n_ses; i++)
        saved |= t->ses[i].charger == 0 && t->ses[i].s.start_ms == S_START &&
                 strcmp(t->ses[i].s.id_tag, "TAG-77") == 0;
    assert_true(saved);
    tx_free(t);
}

/* ---- 9. the car-state rule --------------------------------------------------------------- */

static void test_car_state_connected_before_drawing(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_B, 0, 16, 100, "s1"));
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_CONNECTED);
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 16, 100, "s1"));
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_CHARGING);
    tx_free(t);
}

/* B after C in the same session: the car paused itself; after an unplug B is connected again. */
static void test_car_state_suspended_after_drawing(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_B, 0, 16, 100, "s1"));
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_C, 10, 16, 100, "s1"));
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_B, 0, 16, 100, "s1"));
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_SUSPENDED);
    assert_true(pw_ctl_charger(t->ctl, 0)->drew);
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_A, 0, 16, 100, ""));
    t->now += 1000;
    report(t, 0, rep(PW_CTL_PILOT_B, 0, 16, 100, "s2"));
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_CONNECTED);
    tx_free(t);
}

static void test_car_state_ev_suspended_flag(void **state)
{
    (void)state;
    tx *t = tx_new();
    pw_ctl_report r = rep(PW_CTL_PILOT_B, 0, 16, 100, "tx1");
    r.ev_suspended = 1; /* never drew, but the protocol says the car paused itself */
    report(t, 0, r);
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_SUSPENDED);
    tx_free(t);
}

static void test_car_state_none_and_fault(void **state)
{
    (void)state;
    tx *t = tx_new();
    report_pilot(t, 0, PW_CTL_PILOT_A);
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_NONE);
    t->now += 1000;
    report_pilot(t, 0, PW_CTL_PILOT_E);
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_FAULT);
    t->now += 1000;
    report_pilot(t, 0, PW_CTL_PILOT_F);
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_FAULT);
    t->now += 1000;
    report_pilot(t, 0, PW_CTL_PILOT_D);
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_CHARGING);
    tx_free(t);
}

/* ---- 10. the online rule and silence, by each charger's own timing ---------------------- */

/* a01 on the LAN (offline after 90 s), a02 an OCPP charge point (status every 60 s, offline
 * after 180 s). */
static const pw_bal_timing LAN_OCPP[2] = {
    {.offline_ms = 90000},
    {.status_max_ms = 60000, .offline_ms = 180000},
};

static void test_online_uses_charger_offline_time(void **state)
{
    (void)state;
    tx *t = tx_new_timing(40, TWO, LAN_OCPP);
    assert_int_equal(pw_ctl_timing(t->ctl, 0)->offline_ms, 90000);
    assert_int_equal(pw_ctl_timing(t->ctl, 1)->offline_ms, 180000);
    assert_int_equal(pw_ctl_timing(t->ctl, 1)->status_max_ms, 60000);
    assert_true(pw_ctl_timing(t->ctl, 0)->status_max_ms > 0); /* resolved from the params */
    assert_false(pw_ctl_online(t->ctl, 0, T0));               /* never heard */
    report_pilot(t, 0, PW_CTL_PILOT_A);
    report_pilot(t, 1, PW_CTL_PILOT_A);
    assert_true(pw_ctl_online(t->ctl, 0, T0 + 1000));
    assert_true(pw_ctl_online(t->ctl, 1, T0 + 1000));
    assert_int_equal(pw_ctl_online_count(t->ctl, T0 + 1000), 2);
    advance(t, T0 + 100000, true);
    assert_false(pw_ctl_online(t->ctl, 0, t->now));
    assert_true(pw_ctl_online(t->ctl, 1, t->now));
    assert_int_equal(pw_ctl_online_count(t->ctl, t->now), 1);
    assert_false(pw_ctl_online(t->ctl, 1, T0 + 180001));
    tx_free(t);
}

/* Both without a car and silent: the LAN charger missed its 30 s status and is budgeted at its
 * failsafe (its lease may lapse); the OCPP charge point silent 45 s is within its 60 s and is
 * still balanced on its report (0 A). */
static void test_silence_budget_uses_charger_status_time(void **state)
{
    (void)state;
    tx *t = tx_new_timing(40, TWO, LAN_OCPP);
    report_pilot(t, 0, PW_CTL_PILOT_A);
    report_pilot(t, 1, PW_CTL_PILOT_A);
    assert_int_equal(meter(t, 0), 0);
    advance(t, T0 + 29000, true);
    const pw_bal_result *r = pw_bal_results(pw_ctl_balancer(t->ctl));
    for (size_t l = 0; l < PW_LINES; l++)
        A_EQ(r[0].line_a[l], 0);
    advance(t, T0 + 45000, true);
    r = pw_bal_results(pw_ctl_balancer(t->ctl));
    for (size_t l = 0; l < PW_LINES; l++) {
        if (r[0].line_a[l] < 6 - 1e-6)
            fail_msg("LAN charger silent 45 s: line %zu budgets %.2f A, expected its failsafe 6",
                     l + 1, r[0].line_a[l]);
        if (r[1].line_a[l] > 1e-6)
            fail_msg("OCPP charger silent 45 s (status_max 60 s): line %zu budgets %.2f A, "
                     "expected its report's 0 A (reason %s)",
                     l + 1, r[1].line_a[l], pw_bal_reason_name(r[1].reason));
    }
    tx_free(t);
}

static void test_charger_online_event_after_offline(void **state)
{
    (void)state;
    tx *t = tx_new();
    report_pilot(t, 0, PW_CTL_PILOT_A);
    advance(t, T0 + 10000, true);
    size_t from = t->n_ev;
    report_pilot(t, 0, PW_CTL_PILOT_A); /* online all along */
    advance(t, T0 + 11000, true);
    assert_int_equal(count_events(t, from, "charger_online"), 0);
    advance(t, T0 + 10000 + pw_ctl_timing(t->ctl, 0)->offline_ms + 1000, true);
    assert_false(pw_ctl_online(t->ctl, 0, t->now));
    from = t->n_ev;
    report_pilot(t, 0, PW_CTL_PILOT_A);
    advance(t, t->now + TICK, true);
    assert_int_equal(count_events(t, from, "charger_online"), 1);
    for (size_t i = from; i < t->n_ev; i++)
        if (strcmp(t->ev[i].kind, "charger_online") == 0)
            assert_true(mentions(&t->ev[i], "a01") || mentions(&t->ev[i], "1001"));
    tx_free(t);
}

/* ---- 11. config changes carry state over -------------------------------------------------- */

static const pw_cfg_link LAN1003 = {.kind = PW_CFG_LINK_LAN, .device_id = 1003};
static const pw_cfg_link LAN1004 = {.kind = PW_CFG_LINK_LAN, .device_id = 1004};

/* a01 and a02 charging at 16 A under an 80 A fuse, sent at T0; devices 1003 and 1004 heard but
 * not configured. */
static tx *two_charging(void)
{
    tx *t = tx_new_timing(80, TWO, NULL);
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1"));
    report(t, 1, rep(PW_CTL_PILOT_C, 16, 16, 2000, "s2"));
    pw_ctl_unassigned(t->ctl, &LAN1003, "X", t->now, wall_of(t->now));
    pw_ctl_unassigned(t->ctl, &LAN1004, "Y", t->now, wall_of(t->now));
    assert_int_equal(meter(t, 32), 0);
    advance(t, t->now, true);
    A_EQ(pw_ctl_commands(t->ctl)[1].limit_a, 16);
    return t;
}

static void set_config(tx *t, double limit_a, const char *chargers)
{
    pw_cfg *cfg = facility(limit_a, chargers);
    pw_ctl_set_config(t->ctl, cfg, NULL, t->now, wall_of(t->now));
    pw_cfg_free(t->cfg);
    t->cfg = cfg;
}

/* a01 (1001) removed; a02's device 1002 stays under a new id and moves from index 1 to 0; a new
 * a03 (1003) takes index 1. */
static void test_config_change_carries_over_staying_charger(void **state)
{
    (void)state;
    tx *t = two_charging();
    int64_t start = pw_ctl_charger(t->ctl, 1)->session.start_ms;
    size_t ev0 = t->n_ev, due0 = t->n_due;
    t->now += 1000;
    set_config(t, 80, CH("b02", 1002) "," CH("a03", 1003));
    assert_int_equal(count_events(t, ev0, "config_change"), 1);
    const pw_ctl_charger_state *kept = pw_ctl_charger(t->ctl, 0);
    assert_true(kept->has_report);
    assert_string_equal(kept->report.session_ref, "s2");
    assert_true(kept->in_session);
    assert_int_equal(kept->session.start_ms, start);
    const pw_ctl_charger_state *fresh = pw_ctl_charger(t->ctl, 1);
    assert_false(fresh->has_report);
    assert_int_equal(fresh->last_seen_ms, 0);
    assert_false(fresh->in_session);
    /* a02's plan is unchanged (16 A): nothing to send until its renewal from T0 */
    advance(t, T0 + RENEW - 1, true);
    assert_int_equal(count_due(t, due0, 0), 0);
    /* a03 is told nothing before its first status (what it applies is unknown) */
    assert_int_equal(count_due(t, due0, 1), 0);
    assert_true(pw_ctl_commands(t->ctl)[1].held);
    advance(t, T0 + RENEW, true);
    long k = first_due(t, due0, 0);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, T0 + RENEW);
    A_EQ(t->due[k].cmd.limit_a, 16);
    tx_free(t);
}

static void test_config_change_drops_removed_charger(void **state)
{
    (void)state;
    tx *t = two_charging();
    t->now += 1000;
    set_config(t, 80, CH("a01", 1005) "," CH("a02", 1002)); /* same id, another device */
    const pw_ctl_charger_state *ch = pw_ctl_charger(t->ctl, 0);
    assert_false(ch->has_report);
    assert_int_equal(ch->last_seen_ms, 0);
    assert_false(ch->in_session);
    assert_int_equal(pw_ctl_car_state(t->ctl, 0), PW_CAR_NONE);
    assert_true(pw_ctl_charger(t->ctl, 1)->has_report);
    advance(t, t->now, true);
    t->now += 1000;
    set_config(t, 80, TWO); /* device 1001 is back: its old state was dropped */
    ch = pw_ctl_charger(t->ctl, 0);
    assert_false(ch->has_report);
    assert_int_equal(ch->last_seen_ms, 0);
    assert_false(ch->in_session);
    assert_true(pw_ctl_charger(t->ctl, 1)->has_report);
    tx_free(t);
}

static void test_config_change_unassigned_now_configured(void **state)
{
    (void)state;
    tx *t = two_charging();
    size_t n;
    pw_ctl_unassigned_list(t->ctl, &n);
    assert_int_equal(n, 2);
    t->now += 1000;
    set_config(t, 80, TWO "," CH("a03", 1003));
    const pw_ctl_unassigned_dev *u = pw_ctl_unassigned_list(t->ctl, &n);
    assert_int_equal(n, 1);
    assert_true(pw_cfg_link_equal(&u[0].link, &LAN1004));
    assert_string_equal(u[0].model, "Y");
    tx_free(t);
}

/* ---- 12. unassigned devices ------------------------------------------------------------- */

static void test_unassigned_logged_once_never_commanded(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    size_t from = t->n_ev;
    const pw_cfg_link dev = {.kind = PW_CFG_LINK_LAN, .device_id = 2001};
    uint64_t first = t->now;
    for (int i = 0; i < 5; i++, t->now += 1000)
        pw_ctl_unassigned(t->ctl, &dev, "EVX 11", t->now, wall_of(t->now));
    assert_int_equal(count_events(t, from, "device_unassigned"), 1);
    size_t n;
    const pw_ctl_unassigned_dev *u = pw_ctl_unassigned_list(t->ctl, &n);
    assert_int_equal(n, 1);
    assert_true(pw_cfg_link_equal(&u[0].link, &dev));
    assert_string_equal(u[0].model, "EVX 11");
    assert_int_equal(u[0].first_seen_ms, first);
    assert_int_equal(u[0].last_seen_ms, first + 4000);
    /* a second device is another first sight */
    const pw_cfg_link dev2 = {.kind = PW_CFG_LINK_LAN, .device_id = 2002};
    pw_ctl_unassigned(t->ctl, &dev2, NULL, t->now, wall_of(t->now));
    assert_int_equal(count_events(t, from, "device_unassigned"), 2);
    /* the plan still covers the two configured chargers only (run checks the due count) */
    advance(t, t->now + RENEW, true);
    assert_int_equal(pw_ctl_config(t->ctl)->n_chargers, 2);
    for (size_t k = 0; k < t->n_due; k++)
        assert_true(t->due[k].charger < 2);
    tx_free(t);
}

/* ---- 13. rejected input ----------------------------------------------------------------- */

static bool is_reject_event(const rec_event *e)
{
    return mentions(e, "replay") || mentions(e, "bad_mac") || mentions(e, "bad_frame");
}

static size_t count_reject_events(const tx *t, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < t->n_ev; i++)
        n += is_reject_event(&t->ev[i]);
    return n;
}

static const rec_event *reject_event(const tx *t, size_t from, const char *reason)
{
    const rec_event *found = NULL;
    for (size_t i = from; i < t->n_ev; i++) {
        if (!mentions(&t->ev[i], reason))
            continue;
        if (found)
            fail_msg("two events for reason %s", reason);
        found = &t->ev[i];
    }
    return found;
}

static void test_rejects_one_event_per_kind_per_minute(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 500;
    size_t from = t->n_ev;
    for (int i = 0; i < 7; i++)
        pw_ctl_rejected(t->ctl, "lan", "replay", "device 1001 seq 5");
    for (int i = 0; i < 3; i++)
        pw_ctl_rejected(t->ctl, "lan", "bad_mac", "from 10.0.0.9");
    for (int i = 0; i < 2; i++)
        pw_ctl_rejected(t->ctl, "ocpp", "bad_frame", "[2,\"x\"");
    assert_int_equal(pw_ctl_reject_count(t->ctl, "lan", "replay"), 7);
    assert_int_equal(pw_ctl_reject_count(t->ctl, "lan", "bad_mac"), 3);
    assert_int_equal(pw_ctl_reject_count(t->ctl, "ocpp", "bad_frame"), 2);
    assert_int_equal(pw_ctl_reject_count(t->ctl, "ocpp", "replay"), 0);
    assert_int_equal(count_reject_events(t, from), 0); /* logged when the core runs */
    run(t, true);
    assert_int_equal(count_reject_events(t, from), 3);
    const rec_event *e = reject_event(t, from, "replay");
    assert_non_null(e);
    assert_true(has_number(e->detail, 7));
    uint64_t logged_at = e->now;
    e = reject_event(t, from, "bad_mac");
    assert_non_null(e);
    assert_true(has_number(e->detail, 3));
    e = reject_event(t, from, "bad_frame");
    assert_non_null(e);
    assert_true(has_number(e->detail, 2));
    /* four more replays ten seconds later: quiet until a minute after the last event */
    t->now = logged_at + 10000;
    from = t->n_ev;
    for (int i = 0; i < 4; i++)
        pw_ctl_rejected(t->ctl, "lan", "replay", "device 1001 seq 5");
    advance(t, logged_at + PW_CTL_REJECT_EVENT_MS - 1, true);
    assert_int_equal(count_reject_events(t, from), 0);
    advance(t, logged_at + PW_CTL_REJECT_EVENT_MS + TICK, true);
    assert_int_equal(count_reject_events(t, from), 1);
    e = reject_event(t, from, "replay");
    assert_non_null(e);
    if (!has_number(e->detail, 4))
        fail_msg("second replay event should count the 4 new rejects: \"%s\"", e->detail);
    assert_true(e->now >= logged_at + PW_CTL_REJECT_EVENT_MS);
    assert_int_equal(pw_ctl_reject_count(t->ctl, "lan", "replay"), 11);
    tx_free(t);
}

/* The first rejects of a minute are a pending event: the core asks to run for them. */
static void test_reject_event_is_a_deadline(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 500;
    assert_true(pw_ctl_next_deadline(t->ctl) > t->now);
    pw_ctl_rejected(t->ctl, "lan", "replay", "device 1001 seq 5");
    uint64_t d = pw_ctl_next_deadline(t->ctl);
    if (d > t->now)
        fail_msg("a pending reject event asks for a run at +%llu ms, expected now",
                 (unsigned long long)(d - t->now));
    tx_free(t);
}

static void test_reject_kinds_overflow_to_other(void **state)
{
    (void)state;
    tx *t = tx_new();
    for (int i = 0; i < PW_CTL_MAX_REJECT_KINDS + 8; i++) {
        char reason[16];
        snprintf(reason, sizeof reason, "r%d", i);
        pw_ctl_rejected(t->ctl, "lan", reason, "x");
    }
    size_t n;
    const pw_ctl_reject *r = pw_ctl_rejects(t->ctl, &n);
    assert_true(n <= PW_CTL_MAX_REJECT_KINDS);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += r[i].count;
    assert_int_equal(total, PW_CTL_MAX_REJECT_KINDS + 8);
    assert_true(pw_ctl_reject_count(t->ctl, "lan", "other") >= 8);
    assert_int_equal(pw_ctl_reject_count(t->ctl, "lan", "r0"), 1);
    tx_free(t);
}

/* ---- 14. state and limit-change records -------------------------------------------------- */

static void test_charger_state_event_on_pilot_change(void **state)
{
    (void)state;
    tx *t = tx_new();
    report_pilot(t, 0, PW_CTL_PILOT_A);
    size_t from = t->n_ev;
    t->now += 1000;
    report_pilot(t, 0, PW_CTL_PILOT_B);
    assert_int_equal(count_events(t, from, "charger_state"), 1);
    t->now += 1000;
    report_pilot(t, 0, PW_CTL_PILOT_B);
    assert_int_equal(count_events(t, from, "charger_state"), 1);
    t->now += 1000;
    report_pilot(t, 0, PW_CTL_PILOT_C);
    assert_int_equal(count_events(t, from, "charger_state"), 2);
    for (size_t i = from; i < t->n_ev; i++)
        if (strcmp(t->ev[i].kind, "charger_state") == 0)
            assert_string_equal(t->ev[i].subject, "a01");
    tx_free(t);
}

static void test_limit_change_only_when_sent_limit_differs(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    size_t from = t->n_lim, due0 = t->n_due;
    advance(t, T0 + 5000, true);
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1")); /* still at 16 A */
    advance(t, T0 + RENEW, true);
    assert_int_equal(count_due(t, due0, 0), 1); /* a renewal of the same 16 A went out */
    assert_int_equal(t->n_lim, from);
    t->now += 1000;
    assert_int_equal(meter(t, 16 + 30), 0);
    assert_int_equal(run(t, false), 1);
    assert_int_equal(t->n_lim, from); /* marked due, not sent yet */
    pw_ctl_sent(t->ctl, 0, t->now, wall_of(t->now));
    assert_int_equal(t->n_lim, from + 1);
    assert_int_equal(t->lim[from].charger, 0);
    A_EQ(t->lim[from].limit_a, 10);
    assert_int_equal(t->lim[from].wall, wall_of(t->now));
    advance(t, t->now + 3 * PW_CTL_CUT_CONFIRM_MS, true); /* resends of the same 10 A */
    assert_true(pw_ctl_stats_get(t->ctl)->cut_resends > 0);
    assert_int_equal(t->n_lim, from + 1);
    tx_free(t);
}

/* ---- 15. a start resumes from what the chargers do (issue 15, item 7) ---------------------- */

static size_t count_limits(const tx *t, size_t from, size_t i)
{
    size_t n = 0;
    for (size_t k = from; k < t->n_lim; k++)
        n += t->lim[k].charger == i;
    return n;
}

/* A due record of charger i from record from on, or -1. */
static long first_due_limit(const tx *t, size_t from, size_t i, double *limit_a)
{
    long k = first_due(t, from, i);
    if (k >= 0)
        *limit_a = t->due[k].cmd.limit_a;
    return k;
}

/* The longest the start waits for a charger on the facility's default timing. */
#define START_WAIT PW_CTL_START_MAX_MS

static void no_due_before(const tx *t, size_t from, const char *when)
{
    for (size_t k = from; k < t->n_due; k++)
        fail_msg("charger %zu told %.1f A at +%llu ms, %s", t->due[k].charger,
                 t->due[k].cmd.limit_a, (unsigned long long)(t->due[k].now - T0), when);
}

/* A restarted appliance: the meter is heard before any charger (a01's car charges at its 6 A
 * failsafe, a02's lease from the run before the restart may still hold). Nothing goes out before
 * a charger's status is heard, above all not 0 A (a pause); while a02 may still report, a01
 * keeps what it does; then a01 is planned from its report, and a02, still unheard, stays untold
 * through a01's renewals until its own status comes. */
static void test_start_tells_unheard_chargers_nothing(void **state)
{
    (void)state;
    tx *t = tx_new();
    assert_int_equal(meter(t, 6), 0);
    advance(t, T0 + 500, true); /* the first half second, before any status */
    no_due_before(t, 0, "before any status was heard");
    const pw_ctl_command *c = pw_ctl_commands(t->ctl);
    for (size_t i = 0; i < 2; i++) {
        assert_true(c[i].held);
        assert_false(c[i].due);
        A_EQ(c[i].limit_a, 6); /* a whole-plan transport would send the failsafe, not a pause */
    }
    report(t, 0, rep(PW_CTL_PILOT_C, 6, 6, 1000, "s1"));
    for (uint64_t at = t->now + 1000; at < T0 + START_WAIT; at += 1000) {
        t->now = at;
        assert_int_equal(meter(t, 6), 0);
        advance(t, at, true);
    }
    advance(t, T0 + START_WAIT - 1, true);
    no_due_before(t, 0, "while a02 may still report after the start");
    size_t from = t->n_due;
    advance(t, T0 + START_WAIT, true);
    double limit = -1;
    assert_true(first_due_limit(t, from, 0, &limit) >= 0);
    if (limit < 6)
        fail_msg("a01, charging at its failsafe, was told %.1f A after the start", limit);
    assert_false(pw_ctl_commands(t->ctl)[0].held);
    advance(t, t->now + 3 * RENEW, true); /* a01's renewals go; a02 still unheard */
    assert_true(count_due(t, from, 0) >= 3);
    assert_int_equal(count_due(t, from, 1), 0);
    assert_true(pw_ctl_commands(t->ctl)[1].held);
    report(t, 1, rep(PW_CTL_PILOT_A, 0, 6, 500, ""));
    from = t->n_due;
    advance(t, t->now + TICK, true);
    assert_true(first_due_limit(t, from, 1, &limit) >= 0);
    A_EQ(limit, 0); /* no car: now it is planned from its report */
    assert_false(pw_ctl_commands(t->ctl)[1].held);
    tx_free(t);
}

/* The start waits only until every charger has been heard and the meter read after the last
 * of them (a reading before a charger's first status does not hold its draw as the balancer
 * reads it); the plan starts from what the chargers apply (no pause of a01, whose car charges at
 * the 16 A its earlier lease allows). */
static void test_start_plans_once_all_heard(void **state)
{
    (void)state;
    tx *t = tx_new();
    assert_int_equal(meter(t, 16), 0);
    advance(t, T0 + 300, true);
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1"));
    advance(t, T0 + 2000, true);
    t->now = T0 + 2000;
    report(t, 1, rep(PW_CTL_PILOT_A, 0, 6, 500, ""));
    advance(t, T0 + 2900, true);
    no_due_before(t, 0, "before a reading after both statuses");
    t->now = T0 + 3000;
    assert_int_equal(meter(t, 16), 0);
    advance(t, t->now, true);
    double limit = -1;
    long k = first_due_limit(t, 0, 0, &limit);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, T0 + 3000);
    A_EQ(limit, 16);
    assert_true(first_due_limit(t, 0, 1, &limit) >= 0);
    A_EQ(limit, 0);
    tx_free(t);
}

/* An overload does not wait for chargers not heard yet: a reading above the fuse plans at once,
 * and cuts a01. */
static void test_start_overload_plans_at_once(void **state)
{
    (void)state;
    tx *t = tx_new();
    report(t, 0, rep(PW_CTL_PILOT_C, 16, 16, 1000, "s1"));
    assert_int_equal(meter(t, 36), 0);
    advance(t, T0 + 1000, true);
    no_due_before(t, 0, "with the fuse within its limit");
    t->now = T0 + 1000;
    assert_int_equal(meter(t, 46), 0); /* 40 A fuse */
    advance(t, t->now, true);
    double limit = -1;
    long k = first_due_limit(t, 0, 0, &limit);
    assert_true(k >= 0);
    assert_int_equal(t->due[k].now, T0 + 1000);
    assert_true(limit < 16);
    assert_true(t->due[k].cmd.cut);
    assert_int_equal(count_due(t, 0, 1), 0); /* a02 is still held */
    tx_free(t);
}

/* A transport that sends whole plans (every charger's entry whenever one is due) also sends
 * the held command, its failsafe: that is remembered as sent without a limit change or a renewal
 * of its own, and the first plan from its report that is lower counts as a cut. */
static void test_held_command_sent_anyway(void **state)
{
    (void)state;
    tx *t = tx_new_timing(12, TWO, NULL);
    report(t, 0, rep(PW_CTL_PILOT_C, 6, 6, 1000, "s1"));
    assert_int_equal(meter(t, 6), 0);
    t->now = T0 + START_WAIT; /* a02 is not waited for any more */
    assert_int_equal(meter(t, 6), 0);
    size_t from = t->n_due, lim0 = t->n_lim;
    assert_int_equal(run(t, false), 1);
    for (size_t i = 0; i < 2; i++) /* as lan_send does */
        pw_ctl_sent(t->ctl, i, t->now, wall_of(t->now));
    assert_int_equal(t->n_lim, lim0 + 1);
    assert_int_equal(t->lim[lim0].charger, 0);
    advance(t, t->now + 2 * RENEW, true);
    assert_int_equal(count_due(t, from, 1), 0);
    assert_int_equal(count_limits(t, lim0, 1), 0);
    /* a02 reports no car: its plan, 0 A, is lower than the 6 A it was sent */
    report(t, 1, rep(PW_CTL_PILOT_A, 0, 6, 500, ""));
    advance(t, t->now + TICK, true);
    double limit = -1;
    long k = first_due_limit(t, from, 1, &limit);
    assert_true(k >= 0);
    A_EQ(limit, 0);
    assert_true(t->due[k].cmd.cut);
    assert_int_equal(count_limits(t, lim0, 1), 1);
    tx_free(t);
}

/* ---- operator overrides ------------------------------------------------------------------ */

static pw_ctl_override paused_by(const char *source)
{
    pw_ctl_override o = {.paused = true};
    snprintf(o.source, sizeof o.source, "%s", source);
    return o;
}

/* A pause is a cut that goes out in the run it asks for (now); a resume brings the plan back. */
static void test_override_pause_cut_at_once(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 5000;
    size_t due0 = t->n_due;
    pw_ctl_override o = paused_by("web");
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &o, t->now), 0);
    assert_int_equal(pw_ctl_next_deadline(t->ctl), t->now);
    advance(t, t->now, true);
    long k = first_due(t, due0, 0);
    assert_true(k >= 0);
    A_EQ(t->due[k].cmd.limit_a, 0);
    assert_true(t->due[k].cmd.cut);
    assert_int_equal(pw_bal_results(pw_ctl_balancer(t->ctl))[0].reason, PW_REASON_PAUSED_OPERATOR);
    assert_true(pw_ctl_override_get(t->ctl, 0)->paused);
    assert_string_equal(pw_ctl_override_get(t->ctl, 0)->source, "web");
    /* The car follows; resumed, it is offered its maximum again within a few seconds. */
    for (int i = 0; i < 10; i++) {
        t->now += 1000;
        report(t, 0, rep(PW_CTL_PILOT_B, 0, 0, 1000, "s1"));
        advance(t, t->now, true);
    }
    due0 = t->n_due;
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, NULL, t->now), 0);
    assert_false(pw_ctl_override_active(pw_ctl_override_get(t->ctl, 0)));
    for (int i = 0; i < 10 && pw_ctl_commands(t->ctl)[0].limit_a < 16; i++) {
        advance(t, t->now, true);
        t->now += 1000;
        report(t, 0, rep(PW_CTL_PILOT_B, 0, pw_ctl_commands(t->ctl)[0].limit_a, 1000, "s1"));
    }
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 16);
    tx_free(t);
}

/* A maximum below the config's is a cut to it; cleared, the config's is back. */
static void test_override_max_current(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 1000;
    pw_ctl_override o = {.has_max = true, .max_a = 10, .source = "mqtt"};
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &o, t->now), 0);
    size_t due0 = t->n_due;
    advance(t, t->now, true);
    long k = first_due(t, due0, 0);
    assert_true(k >= 0);
    A_EQ(t->due[k].cmd.limit_a, 10);
    assert_true(t->due[k].cmd.cut);
    pw_ctl_override none = {.source = "web"};
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &none, t->now), 0);
    assert_false(pw_ctl_override_get(t->ctl, 0)->has_max);
    for (int i = 0; i < 10 && pw_ctl_commands(t->ctl)[0].limit_a < 16; i++) {
        t->now += 1000;
        report(t, 0, rep(PW_CTL_PILOT_C, 10, 10, 1000, "s1"));
        advance(t, t->now, true);
    }
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 16);
    tx_free(t);
}

/* A CSMS's cap and the operator's maximum are independent: the smaller binds, clearing one
 * leaves the other; the CSMS's cap stays across a config change. */
static void test_csms_cap_with_override(void **state)
{
    (void)state;
    tx *t = tx_new();
    one_charging(t);
    t->now += 1000;
    assert_int_equal(pw_ctl_set_csms_cap(t->ctl, 0, 8, t->now), 0);
    assert_int_equal(pw_ctl_set_csms_cap(t->ctl, 5, 8, t->now), -1);
    advance(t, t->now, true);
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 8);
    pw_ctl_override o = {.has_max = true, .max_a = 10, .source = "web"};
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &o, t->now), 0);
    advance(t, t->now, true);
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 8); /* the CSMS's is smaller */
    o.max_a = 7;
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &o, t->now), 0);
    advance(t, t->now, true);
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 7);
    pw_ctl_override none = {.source = "web"};
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &none, t->now), 0);
    for (int i = 0; i < 10; i++) { /* a raise: it waits for the draw to follow */
        t->now += 1000;
        report(t, 0, rep(PW_CTL_PILOT_C, 7, 7, 1000, "s1"));
        advance(t, t->now, true);
    }
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 8); /* the CSMS's cap was not lost */
    A_EQ(pw_ctl_csms_cap(t->ctl, 0), 8);
    assert_int_equal(pw_ctl_set_csms_cap(t->ctl, 0, INFINITY, t->now), 0);
    for (int i = 0; i < 10 && pw_ctl_commands(t->ctl)[0].limit_a < 16; i++) {
        t->now += 1000;
        report(t, 0, rep(PW_CTL_PILOT_C, 8, 8, 1000, "s1"));
        advance(t, t->now, true);
    }
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 16);
    tx_free(t);
}

/* What the core cannot take changes nothing. */
static void test_override_refused(void **state)
{
    (void)state;
    tx *t = tx_new();
    pw_ctl_override o = paused_by("web");
    assert_int_equal(pw_ctl_set_override(t->ctl, 2, &o, t->now), -1);
    pw_ctl_override bad = {.has_max = true, .max_a = NAN};
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &bad, t->now), -1);
    bad.max_a = 0;
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &bad, t->now), -1);
    assert_false(pw_ctl_override_active(pw_ctl_override_get(t->ctl, 0)));
    double lim[PW_LINES] = {20, NAN, 20};
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, lim, t->now + 1000, "web", t->now), -1);
    lim[1] = -1;
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, lim, t->now + 1000, "web", t->now), -1);
    lim[1] = 20;
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, lim, t->now, "web", t->now), -1);
    assert_false(pw_ctl_facility_limit_get(t->ctl)->active);
    tx_free(t);
}

/* Overrides stay with the chargers that stay (matched by device, not index); the override of a
 * charger that went goes with it, with an event; the facility limit stays. */
static void test_override_across_config_change(void **state)
{
    (void)state;
    tx *t = two_charging();
    pw_ctl_override o = paused_by("mqtt");
    assert_int_equal(pw_ctl_set_override(t->ctl, 1, &o, t->now), 0);
    pw_ctl_override m = {.has_max = true, .max_a = 8, .source = "web"};
    assert_int_equal(pw_ctl_set_override(t->ctl, 0, &m, t->now), 0);
    double lim[PW_LINES] = {60, 60, 60};
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, lim, t->now + 60000, "web", t->now), 0);
    advance(t, t->now, true);
    size_t ev0 = t->n_ev;
    t->now += 1000;
    set_config(t, 80, CH("b02", 1002) "," CH("a03", 1003));
    assert_true(pw_ctl_override_get(t->ctl, 0)->paused);
    assert_string_equal(pw_ctl_override_get(t->ctl, 0)->source, "mqtt");
    assert_false(pw_ctl_override_active(pw_ctl_override_get(t->ctl, 1)));
    assert_int_equal(count_events(t, ev0, "command"), 1);
    bool named = false;
    for (size_t i = ev0; i < t->n_ev; i++)
        named = named || (strcmp(t->ev[i].kind, "command") == 0 &&
                          strcmp(t->ev[i].subject, "a01") == 0 && mentions(&t->ev[i], "dropped"));
    assert_true(named);
    assert_true(pw_ctl_facility_limit_get(t->ctl)->active);
    advance(t, t->now, true);
    A_EQ(pw_ctl_commands(t->ctl)[0].limit_a, 0);
    assert_int_equal(pw_bal_results(pw_ctl_balancer(t->ctl))[0].reason, PW_REASON_PAUSED_OPERATOR);
    A_EQ(pw_bal_node_results(pw_ctl_balancer(t->ctl))[0].limit_a[0], 60);
    tx_free(t);
}

/* The facility limit binds at once, is a deadline of the core, and ends by itself at it with an
 * event; clearing it early ends it too. */
static void test_facility_limit_expires(void **state)
{
    (void)state;
    tx *t = two_charging();
    t->now += 1000;
    double lim[PW_LINES] = {20, 20, 20};
    uint64_t until = t->now + 10000;
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, lim, until, "mqtt", t->now), 0);
    advance(t, t->now, true);
    const pw_ctl_command *cmd = pw_ctl_commands(t->ctl);
    assert_true(cmd[0].limit_a + cmd[1].limit_a <= 20 + 1e-9);
    assert_true(cmd[0].cut || cmd[1].cut);
    assert_true(pw_ctl_next_deadline(t->ctl) <= until);
    size_t ev0 = t->n_ev;
    advance(t, until - 1, true);
    assert_true(pw_ctl_facility_limit_get(t->ctl)->active);
    assert_int_equal(count_events(t, ev0, "command"), 0);
    advance(t, until, true);
    assert_false(pw_ctl_facility_limit_get(t->ctl)->active);
    assert_int_equal(count_events(t, ev0, "command"), 1);
    assert_string_equal(t->ev[t->n_ev - 1].subject, "facility");
    assert_true(mentions(&t->ev[t->n_ev - 1], "expired"));
    A_EQ(pw_bal_node_results(pw_ctl_balancer(t->ctl))[0].limit_a[0], 80);
    /* Set again and cleared: no expiry event later. */
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, lim, t->now + 5000, "web", t->now), 0);
    assert_int_equal(pw_ctl_set_facility_limit(t->ctl, NULL, 0, "web", t->now), 0);
    ev0 = t->n_ev;
    advance(t, t->now + 10000, true);
    assert_int_equal(count_events(t, ev0, "command"), 0);
    tx_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_first_run_all_due_then_nothing, teardown),
        cmocka_unit_test_teardown(test_renewal_after_third_of_lease, teardown),
        cmocka_unit_test_teardown(test_lower_budget_new_plan_cuts_affected, teardown),
        cmocka_unit_test_teardown(test_raise_is_not_a_cut, teardown),
        cmocka_unit_test_teardown(test_cut_unconfirmed_resent_twice_then_renewals, teardown),
        cmocka_unit_test_teardown(test_cut_confirmed_by_report_not_resent, teardown),
        cmocka_unit_test_teardown(test_cut_report_above_limit_does_not_confirm, teardown),
        cmocka_unit_test_teardown(test_meter_reading_asks_run_now, teardown),
        cmocka_unit_test_teardown(test_report_asks_run_within_tick, teardown),
        cmocka_unit_test_teardown(test_meter_rejects_nan_and_negative, teardown),
        cmocka_unit_test_teardown(test_meter_rejects_implausible, teardown),
        cmocka_unit_test_teardown(test_meter_derives_l2_when_configured, teardown),
        cmocka_unit_test_teardown(test_impossible_report_rejected, teardown),
        cmocka_unit_test_teardown(test_unsent_command_due_again_after_retry, teardown),
        cmocka_unit_test_teardown(test_session_opens_when_pilot_leaves_a, teardown),
        cmocka_unit_test_teardown(test_session_saved_every_minute_without_report, teardown),
        cmocka_unit_test_teardown(test_session_closes_at_a_with_peak, teardown),
        cmocka_unit_test_teardown(test_session_new_ref_splits, teardown),
        cmocka_unit_test_teardown(test_resume_same_ref_continues_row, teardown),
        cmocka_unit_test_teardown(test_resume_other_ref_closes_and_opens, teardown),
        cmocka_unit_test_teardown(test_resume_unplugged_closes, teardown),
        cmocka_unit_test_teardown(test_session_tag_copied_at_open, teardown),
        cmocka_unit_test_teardown(test_session_learns_tag_after_plug_in, teardown),
        cmocka_unit_test_teardown(test_session_new_transaction_new_tag, teardown),
        cmocka_unit_test_teardown(test_resume_keeps_or_learns_tag, teardown),
        cmocka_unit_test_teardown(test_car_state_connected_before_drawing, teardown),
        cmocka_unit_test_teardown(test_car_state_suspended_after_drawing, teardown),
        cmocka_unit_test_teardown(test_car_state_ev_suspended_flag, teardown),
        cmocka_unit_test_teardown(test_car_state_none_and_fault, teardown),
        cmocka_unit_test_teardown(test_online_uses_charger_offline_time, teardown),
        cmocka_unit_test_teardown(test_silence_budget_uses_charger_status_time, teardown),
        cmocka_unit_test_teardown(test_charger_online_event_after_offline, teardown),
        cmocka_unit_test_teardown(test_config_change_carries_over_staying_charger, teardown),
        cmocka_unit_test_teardown(test_config_change_drops_removed_charger, teardown),
        cmocka_unit_test_teardown(test_config_change_unassigned_now_configured, teardown),
        cmocka_unit_test_teardown(test_unassigned_logged_once_never_commanded, teardown),
        cmocka_unit_test_teardown(test_rejects_one_event_per_kind_per_minute, teardown),
        cmocka_unit_test_teardown(test_reject_event_is_a_deadline, teardown),
        cmocka_unit_test_teardown(test_reject_kinds_overflow_to_other, teardown),
        cmocka_unit_test_teardown(test_charger_state_event_on_pilot_change, teardown),
        cmocka_unit_test_teardown(test_limit_change_only_when_sent_limit_differs, teardown),
        cmocka_unit_test_teardown(test_start_tells_unheard_chargers_nothing, teardown),
        cmocka_unit_test_teardown(test_start_plans_once_all_heard, teardown),
        cmocka_unit_test_teardown(test_start_overload_plans_at_once, teardown),
        cmocka_unit_test_teardown(test_held_command_sent_anyway, teardown),
        cmocka_unit_test_teardown(test_override_pause_cut_at_once, teardown),
        cmocka_unit_test_teardown(test_override_max_current, teardown),
        cmocka_unit_test_teardown(test_override_refused, teardown),
        cmocka_unit_test_teardown(test_csms_cap_with_override, teardown),
        cmocka_unit_test_teardown(test_override_across_config_change, teardown),
        cmocka_unit_test_teardown(test_facility_limit_expires, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
