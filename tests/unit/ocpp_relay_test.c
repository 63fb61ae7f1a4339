/* The local controller's relay (ocpp/pw_ocpp_relay.h) in fake time, wired to phasewise's real
 * conversation (pw_ocpp_cp) the way transport/ocpp.c wires them: every frame for the charge point
 * and for the CSMS is parsed back with the codec. Covers the boot and statuses sent when the
 * link comes up, one call in flight, transaction ids mapped both ways, CSMS calls down with fresh
 * ids and their answers up with the CSMS's, answers to phasewise's own calls kept local, charging
 * profiles turned into caps (A and W, purposes, stack levels, replace and clear, rejections as a
 * charge point would), schedules followed in fake time (periods, duration, validity, daily
 * recurrence, Relative origins), the ChargePointMaxProfile split among 1, 2 and 3 connectors,
 * GetCompositeSchedule, the profiles dumped and loaded (round trip, malformed dumps), managed
 * configuration keys, bad CSMS frames, the link down, timeouts and a boot the CSMS leaves
 * pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_ocpp_relay.h"
#include "pw_util.h"

#define T0    UINT64_C(1000000)
#define WALL0 INT64_C(1790000000000)
#define MAXF  256

typedef struct fr {
    enum pw_ocpp_frame_kind kind;
    char id[PW_OCPP_ID_LEN];
    char action[PW_OCPP_ACTION_LEN];
    json_t *payload;
    enum pw_ocpp_error error;
} fr;

typedef struct h {
    pw_ocpp_relay *r;
    pw_ocpp_cp *cp;
    uint64_t now;
    fr cp_in[MAXF], up[MAXF]; /* frames the charge point got, frames the CSMS got */
    size_t n_cp, n_up;
    double cap[PW_OCPP_MAX_CONNECTORS + 1];
    uint64_t cap_at[PW_OCPP_MAX_CONNECTORS + 1]; /* when each last changed */
    size_t n_cap;
    size_t n_changed; /* profiles_changed calls */
    char reasons[1024];
    unsigned cp_seq;
    struct kept *kept; /* what sink.keep wrote down, as the store would hold it */
    size_t n_conn;     /* connectors 1..n_conn */
    bool authorize_csms;
} h;

/* ---- what is kept across a restart, held as storage/ocppq.c holds it ------------------------- */

#define MAX_KEPT 64

typedef struct kept_call {
    uint64_t seq;
    char action[PW_OCPP_ACTION_LEN];
    char *payload;
    int connector;
    char local_tx[PW_OCPP_TXID_LEN];
} kept_call;

typedef struct kept {
    char *boot;
    kept_call calls[MAX_KEPT];
    size_t n_calls;
    struct {
        char local[PW_OCPP_TXID_LEN], csms[PW_OCPP_TXID_LEN];
        int connector;
    } tx[MAX_KEPT];
    size_t n_tx;
    size_t n_records;
} kept;

static kept_call *kept_find(kept *k, uint64_t seq)
{
    for (size_t i = 0; i < k->n_calls; i++)
        if (k->calls[i].seq == seq)
            return &k->calls[i];
    return NULL;
}

static void kept_tx_del(kept *k, const char *local)
{
    for (size_t i = 0; i < k->n_tx; i++)
        if (strcmp(k->tx[i].local, local) == 0) {
            k->tx[i] = k->tx[--k->n_tx];
            return;
        }
}

static void r_keep(void *ud, const pw_ocpp_relay_keep *r)
{
    kept *k = ((h *)ud)->kept;
    k->n_records++;
    kept_call *c;
    switch (r->kind) {
    case PW_OCPP_KEEP_CALL:
        assert_null(kept_find(k, r->seq));
        assert_true(k->n_calls < MAX_KEPT);
        assert_true(k->n_calls == 0 || k->calls[k->n_calls - 1].seq < r->seq); /* in order */
        c = &k->calls[k->n_calls++];
        *c = (kept_call){.seq = r->seq, .connector = r->connector};
        pw_strlcpy(c->action, r->action, sizeof c->action);
        c->payload = pw_xstrdup(r->payload);
        break;
    case PW_OCPP_KEEP_CALL_TX:
        c = kept_find(k, r->seq);
        assert_non_null(c);
        assert_string_equal(c->action, "StartTransaction");
        pw_strlcpy(c->local_tx, r->local_tx, sizeof c->local_tx);
        break;
    case PW_OCPP_KEEP_DONE:
        c = kept_find(k, r->seq);
        assert_non_null(c); /* only what was kept is done */
        free(c->payload);
        memmove(c, c + 1, (size_t)(&k->calls[k->n_calls] - (c + 1)) * sizeof *c);
        k->n_calls--;
        break;
    case PW_OCPP_KEEP_TX:
        kept_tx_del(k, r->local_tx);
        assert_true(k->n_tx < MAX_KEPT);
        pw_strlcpy(k->tx[k->n_tx].local, r->local_tx, sizeof k->tx->local);
        pw_strlcpy(k->tx[k->n_tx].csms, r->csms_tx, sizeof k->tx->csms);
        k->tx[k->n_tx++].connector = r->connector;
        break;
    case PW_OCPP_KEEP_TX_DONE:
        kept_tx_del(k, r->local_tx);
        break;
    case PW_OCPP_KEEP_BOOT:
        free(k->boot);
        k->boot = pw_xstrdup(r->payload);
        break;
    default:
        fail_msg("keep: unknown record %d", (int)r->kind);
    }
}

static void kept_free(kept *k)
{
    for (size_t i = 0; i < k->n_calls; i++)
        free(k->calls[i].payload);
    free(k->boot);
    free(k);
}

static void record(fr *list, size_t *n, const char *text, size_t len)
{
    assert_true(*n < MAXF);
    fr *f = &list[(*n)++];
    pw_ocpp_frame pf;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &pf, &fault) != 0)
        fail_msg("unreadable frame %.*s: %s", (int)len, text, fault.text);
    *f = (fr){.kind = pf.kind, .error = pf.error};
    pw_strlcpy(f->id, pf.id, sizeof f->id);
    pw_strlcpy(f->action, pf.action, sizeof f->action);
    f->payload = pf.payload ? json_incref(pf.payload) : NULL;
    pw_ocpp_frame_clear(&pf);
}

static void r_to_cp(void *ud, const char *text, size_t len)
{
    h *t = ud;
    record(t->cp_in, &t->n_cp, text, len);
}

static void r_to_csms(void *ud, const char *text, size_t len)
{
    h *t = ud;
    record(t->up, &t->n_up, text, len);
    /* Every frame the CSMS gets holds to the schema of what it is. */
    fr *f = &t->up[t->n_up - 1];
    pw_ocpp_fault fault;
    enum pw_ocpp_action a = pw_ocpp_action_parse(f->action);
    if (f->kind == PW_OCPP_CALL && pw_ocpp_check_payload(a, false, f->payload, &fault) != 0)
        fail_msg("the CSMS got %.*s: %s", (int)len, text, fault.text);
}

static void r_cap(void *ud, int connector, double cap)
{
    h *t = ud;
    assert_true(connector >= 1 && connector <= PW_OCPP_MAX_CONNECTORS);
    t->cap[connector] = cap;
    t->cap_at[connector] = t->now;
    t->n_cap++;
}

static void r_changed(void *ud)
{
    h *t = ud;
    t->n_changed++;
}

static void r_dropped(void *ud, const char *reason, const char *detail)
{
    h *t = ud;
    (void)detail;
    size_t n = strlen(t->reasons);
    snprintf(t->reasons + n, sizeof t->reasons - n, "%s ", reason);
}

/* phasewise's own conversation: what it sends the charge point passes the relay first. */
static void cp_send(void *ud, const char *text, size_t len)
{
    h *t = ud;
    pw_ocpp_relay_local_to_cp(t->r, text, len);
    record(t->cp_in, &t->n_cp, text, len);
}

static void new_relay(h *t, uint64_t first_seq)
{
    pw_ocpp_relay_opts ro;
    pw_ocpp_relay_default_opts(&ro);
    ro.n_connectors = t->n_conn;
    for (size_t k = 0; k < t->n_conn; k++) {
        ro.connectors[k] = (int)k + 1;
        ro.max_a[k] = 16;
    }
    ro.first_seq = first_seq;
    ro.authorize_csms = t->authorize_csms;
    t->r = pw_ocpp_relay_new(&ro, &(pw_ocpp_relay_sink){.ud = t,
                                                        .to_cp = r_to_cp,
                                                        .to_csms = r_to_csms,
                                                        .cap = r_cap,
                                                        .dropped = r_dropped,
                                                        .profiles_changed = r_changed,
                                                        .keep = r_keep});
}

static void new_cp(h *t)
{
    pw_ocpp_cp_opts co;
    pw_ocpp_cp_default_opts(&co);
    co.n_connectors = t->n_conn;
    for (int k = 0; k < (int)t->n_conn; k++)
        co.connectors[k] = (pw_ocpp_connector_cfg){
            .connector = k + 1, .min_a = 6, .max_a = 16, .failsafe_a = 6, .prior_a = -1};
    t->cp = pw_ocpp_cp_new(&co, &(pw_ocpp_cp_sink){.ud = t, .send = cp_send}, t->now);
}

/* A charge point with connectors 1..n of 16 A each. */
static h *setup_n(size_t n)
{
    h *t = pw_xcalloc(1, sizeof *t);
    t->now = T0;
    t->n_conn = n;
    for (size_t k = 0; k <= PW_OCPP_MAX_CONNECTORS; k++)
        t->cap[k] = INFINITY;
    t->kept = pw_xcalloc(1, sizeof *t->kept);
    new_relay(t, 0);
    new_cp(t);
    return t;
}

static h *setup_h(void)
{
    return setup_n(2);
}

/* phasewise restarts: a new relay and conversation, the relay given back what was kept in the
 * order the store reads it (boot, pairs, calls in order); the charge point and the CSMS stay. */
static void restart(h *t, uint64_t first_seq)
{
    pw_ocpp_cp_free(t->cp);
    pw_ocpp_relay_free(t->r);
    new_relay(t, first_seq);
    new_cp(t);
    kept *k = t->kept;
    size_t before = k->n_records;
    if (k->boot)
        assert_int_equal(
            pw_ocpp_relay_restore(
                t->r, &(pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_BOOT, .payload = k->boot}),
            0);
    for (size_t i = 0; i < k->n_tx; i++)
        assert_int_equal(
            pw_ocpp_relay_restore(t->r, &(pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_TX,
                                                              .local_tx = k->tx[i].local,
                                                              .csms_tx = k->tx[i].csms,
                                                              .connector = k->tx[i].connector}),
            0);
    for (size_t i = 0; i < k->n_calls; i++) {
        const kept_call *c = &k->calls[i];
        assert_int_equal(
            pw_ocpp_relay_restore(t->r, &(pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_CALL,
                                                              .seq = c->seq,
                                                              .action = c->action,
                                                              .payload = c->payload,
                                                              .connector = c->connector,
                                                              .local_tx = c->local_tx}),
            0);
    }
    assert_int_equal(k->n_records, before); /* nothing restored is kept again */
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, k->n_calls);
}

static void free_frames(fr *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(list[i].payload);
}

static void teardown_h(h *t)
{
    pw_ocpp_cp_free(t->cp);
    pw_ocpp_relay_free(t->r);
    kept_free(t->kept);
    free_frames(t->cp_in, t->n_cp);
    free_frames(t->up, t->n_up);
    free(t);
}

/* ---- the two ends ---------------------------------------------------------------------------- */

/* A frame from the charge point, handled as the shell does. */
static void from_cp_text(h *t, const char *text)
{
    if (pw_ocpp_relay_from_cp(t->r, text, strlen(text), t->now) == PW_OCPP_RELAY_LOCAL)
        pw_ocpp_cp_receive(t->cp, text, strlen(text), t->now, WALL0 + (int64_t)t->now);
}

/* A call from the charge point (payload stolen); returns its id. */
static const char *cp_call(h *t, const char *action, json_t *payload)
{
    static char id[16];
    snprintf(id, sizeof id, "c%u", ++t->cp_seq);
    char *text = pw_ocpp_call_text(id, action, payload, NULL);
    assert_non_null(text);
    from_cp_text(t, text);
    free(text);
    return id;
}

static void cp_answer(h *t, const char *id, json_t *payload)
{
    char *text = pw_ocpp_result_text(id, payload, NULL);
    from_cp_text(t, text);
    free(text);
}

static void csms_text(h *t, const char *text)
{
    pw_ocpp_relay_from_csms(t->r, text, strlen(text), t->now, WALL0 + (int64_t)t->now);
}

static void csms_call(h *t, const char *id, const char *action, json_t *payload)
{
    char *text = pw_ocpp_call_text(id, action, payload, NULL);
    csms_text(t, text);
    free(text);
}

static void csms_answer(h *t, const char *id, json_t *payload)
{
    char *text = pw_ocpp_result_text(id, payload, NULL);
    csms_text(t, text);
    free(text);
}

/* The last frame the CSMS got. */
static fr *last_up(h *t)
{
    assert_true(t->n_up > 0);
    return &t->up[t->n_up - 1];
}

/* The CSMS answers the call in flight like a plain central system. */
static void csms_answers(h *t)
{
    fr *f = last_up(t);
    assert_int_equal(f->kind, PW_OCPP_CALL);
    json_t *p;
    if (strcmp(f->action, "BootNotification") == 0)
        p = pw_ocpp_boot_conf(PW_OCPP_ACCEPTED, WALL0, 300);
    else if (strcmp(f->action, "StartTransaction") == 0)
        p = pw_ocpp_start_conf("777", PW_OCPP_ACCEPTED);
    else if (strcmp(f->action, "StopTransaction") == 0)
        p = pw_ocpp_stop_conf(PW_OCPP_ACCEPTED);
    else if (strcmp(f->action, "Authorize") == 0)
        p = pw_ocpp_authorize_conf(PW_OCPP_ACCEPTED);
    else if (strcmp(f->action, "Heartbeat") == 0)
        p = pw_ocpp_heartbeat_conf(WALL0);
    else
        p = pw_ocpp_empty_conf();
    char id[PW_OCPP_ID_LEN];
    pw_strlcpy(id, f->id, sizeof id);
    csms_answer(t, id, p);
}

/* Answers every call in flight until none is left. */
static void csms_drain(h *t)
{
    for (int i = 0; i < 64 && t->n_up && last_up(t)->kind == PW_OCPP_CALL &&
                    pw_ocpp_relay_stats_get(t->r)->queued;
         i++)
        csms_answers(t);
}

static json_t *boot_payload(void)
{
    pw_ocpp_boot b = {0};
    pw_strlcpy(b.vendor, "Acme", sizeof b.vendor);
    pw_strlcpy(b.model, "Wallbox 2", sizeof b.model);
    return pw_ocpp_boot_req(&b);
}

static json_t *status_payload(int connector, enum pw_ocpp_status s)
{
    pw_ocpp_status_note n = {.connector = connector, .status = s};
    pw_strlcpy(n.error_code, "NoError", sizeof n.error_code);
    return pw_ocpp_status_req(&n);
}

/* The last frame of an action the charge point got from the relay or from phasewise. */
static fr *cp_got(h *t, const char *action)
{
    for (size_t i = t->n_cp; i-- > 0;)
        if (t->cp_in[i].kind == PW_OCPP_CALL && strcmp(t->cp_in[i].action, action) == 0)
            return &t->cp_in[i];
    return NULL;
}

static size_t up_count(h *t, const char *action)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_up; i++)
        n += t->up[i].kind == PW_OCPP_CALL && strcmp(t->up[i].action, action) == 0;
    return n;
}

/* phasewise's answer to the charge point's call id. */
static fr *local_answer(h *t, const char *id)
{
    for (size_t i = t->n_cp; i-- > 0;)
        if (t->cp_in[i].kind != PW_OCPP_CALL && strcmp(t->cp_in[i].id, id) == 0)
            return &t->cp_in[i];
    return NULL;
}

/* Booted with the upstream up and everything answered; a car on connector 1 charging under
 * phasewise's transaction id, which the CSMS knows as 777. */
static void booted_with_tx(h *t, char *local_tx)
{
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    pw_ocpp_start_tx s = {.connector = 1, .meter_start_wh = 1000, .timestamp_ms = WALL0};
    pw_strlcpy(s.id_tag, "TAG1", sizeof s.id_tag);
    char id[16];
    pw_strlcpy(id, cp_call(t, "StartTransaction", pw_ocpp_start_req(&s)), sizeof id);
    fr *a = local_answer(t, id);
    assert_non_null(a);
    snprintf(local_tx, PW_OCPP_TXID_LEN, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(a->payload, "transactionId")));
    assert_string_equal(last_up(t)->action, "StartTransaction");
    csms_answers(t);
    assert_string_equal(pw_ocpp_relay_csms_tx(t->r, local_tx), "777");
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* The status of the frame the CSMS got at i. */
static const char *status_at(h *t, size_t i)
{
    return json_string_value(json_object_get(t->up[i].payload, "status"));
}

static void test_calls_made_while_down_go_up_in_order(void **state)
{
    (void)state;
    h *t = setup_h();
    /* Down: phasewise answers, the calls wait. */
    char id[16];
    pw_strlcpy(id, cp_call(t, "BootNotification", boot_payload()), sizeof id);
    assert_non_null(local_answer(t, id));
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_PREPARING));
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_CHARGING));
    cp_call(t, "StatusNotification", status_payload(2, PW_OCPP_AVAILABLE));
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req());
    assert_int_equal(t->n_up, 0);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 4);
    /* Up: the boot alone first, then every call in the order it was made, one at a time. */
    pw_ocpp_relay_upstream(t->r, true, t->now);
    assert_int_equal(t->n_up, 1);
    assert_string_equal(t->up[0].action, "BootNotification");
    assert_string_equal(json_string_value(json_object_get(t->up[0].payload, "chargePointVendor")),
                        "Acme");
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req());
    assert_int_equal(t->n_up, 1); /* waits for the boot's answer */
    csms_answers(t);
    assert_int_equal(t->n_up, 2);
    assert_string_equal(status_at(t, 1), "Preparing");
    assert_string_not_equal(t->up[0].id, t->up[1].id);
    csms_answers(t);
    assert_string_equal(status_at(t, 2), "Charging");
    csms_answers(t);
    assert_string_equal(status_at(t, 3), "Available");
    csms_answers(t);
    assert_string_equal(t->up[4].action, "Heartbeat");
    csms_answers(t);
    assert_string_equal(t->up[5].action, "Heartbeat");
    csms_answers(t);
    assert_int_equal(t->n_up, 6);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 0);
    /* A call in flight when the link goes is sent again once it is back, after the boot. */
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_FINISHING));
    assert_int_equal(t->n_up, 7);
    pw_ocpp_relay_upstream(t->r, false, t->now);
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req());
    assert_int_equal(t->n_up, 7);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 2);
    pw_ocpp_relay_upstream(t->r, true, t->now);
    assert_string_equal(t->up[7].action, "BootNotification");
    csms_answers(t);
    assert_string_equal(status_at(t, 8), "Finishing");
    /* Under the same message id: a CSMS can tell the call is sent again. */
    assert_string_equal(t->up[6].id, t->up[8].id);
    assert_string_not_equal(t->up[7].id, t->up[8].id);
    csms_answers(t);
    assert_string_equal(t->up[9].action, "Heartbeat");
    csms_answers(t);
    assert_int_equal(t->n_up, 10);
    assert_int_equal(up_count(t, "StatusNotification"), 5);
    teardown_h(t);
}

/* The queue is bounded: StatusNotification and MeterValues give way to transactions. */
static void test_queue_bound(void **state)
{
    (void)state;
    h *t = setup_h();
    pw_ocpp_relay_opts ro;
    pw_ocpp_relay_default_opts(&ro);
    ro.max_queue = 3;
    pw_ocpp_relay_free(t->r);
    t->r = pw_ocpp_relay_new(
        &ro, &(pw_ocpp_relay_sink){.ud = t, .to_cp = r_to_cp, .to_csms = r_to_csms});
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_PREPARING));
    pw_ocpp_start_tx s = {.connector = 1, .meter_start_wh = 5, .timestamp_ms = WALL0};
    pw_strlcpy(s.id_tag, "TAG1", sizeof s.id_tag);
    cp_call(t, "StartTransaction", pw_ocpp_start_req(&s));
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_CHARGING));
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req()); /* Preparing goes */
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 3);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->dropped, 1);
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req()); /* Charging goes */
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req()); /* nothing minor left: this one is lost */
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->dropped, 3);
    pw_ocpp_relay_upstream(t->r, true, t->now);
    assert_string_equal(t->up[0].action, "StartTransaction");
    csms_drain(t);
    assert_int_equal(t->n_up, 3);
    assert_int_equal(up_count(t, "StatusNotification"), 0);
    teardown_h(t);
}

static void test_boot_pending_is_retried(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_AVAILABLE));
    pw_ocpp_relay_upstream(t->r, true, t->now);
    assert_int_equal(t->n_up, 1);
    csms_answer(t, t->up[0].id, pw_ocpp_boot_conf(PW_OCPP_PENDING, WALL0, 20));
    assert_int_equal(t->n_up, 1);
    assert_int_equal(pw_ocpp_relay_next_deadline(t->r), t->now + 20000);
    t->now += 20000;
    pw_ocpp_relay_poll(t->r, t->now, WALL0 + (int64_t)t->now);
    assert_int_equal(t->n_up, 2);
    assert_string_equal(t->up[1].action, "BootNotification");
    csms_answers(t);
    assert_string_equal(last_up(t)->action, "StatusNotification");
    teardown_h(t);
}

static void test_transaction_ids_mapped(void **state)
{
    (void)state;
    h *t = setup_h();
    char local[PW_OCPP_TXID_LEN];
    booted_with_tx(t, local);
    assert_string_not_equal(local, "777");
    /* MeterValues and StopTransaction go up under the CSMS's id. */
    pw_ocpp_meter m = {
        .connector = 1, .timestamp_ms = WALL0, .has_energy = true, .energy_wh = 2500};
    pw_strlcpy(m.tx_id, local, sizeof m.tx_id);
    cp_call(t, "MeterValues", pw_ocpp_meter_req(&m));
    assert_string_equal(last_up(t)->action, "MeterValues");
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "transactionId")),
                     777);
    csms_answers(t);
    /* RemoteStopTransaction for 777 reaches the charge point for phasewise's id, under an id
     * of the relay's; its answer goes up under the CSMS's id. */
    csms_call(t, "uuid-1", "RemoteStopTransaction", json_pack("{s:i}", "transactionId", 777));
    fr *down = cp_got(t, "RemoteStopTransaction");
    assert_non_null(down);
    assert_string_not_equal(down->id, "uuid-1");
    assert_int_equal(json_integer_value(json_object_get(down->payload, "transactionId")),
                     strtoll(local, NULL, 10));
    char down_id[PW_OCPP_ID_LEN];
    pw_strlcpy(down_id, down->id, sizeof down_id);
    size_t before = t->n_up;
    cp_answer(t, down_id, json_pack("{s:s}", "status", "Accepted"));
    assert_int_equal(t->n_up, before + 1);
    assert_int_equal(last_up(t)->kind, PW_OCPP_RESULT);
    assert_string_equal(last_up(t)->id, "uuid-1");
    /* Unknown transaction: Rejected, as a charge point would. */
    csms_call(t, "uuid-2", "RemoteStopTransaction", json_pack("{s:i}", "transactionId", 5));
    assert_string_equal(last_up(t)->id, "uuid-2");
    assert_string_equal(json_string_value(json_object_get(last_up(t)->payload, "status")),
                        "Rejected");
    pw_ocpp_stop_tx s = {.meter_stop_wh = 3000, .timestamp_ms = WALL0};
    pw_strlcpy(s.tx_id, local, sizeof s.tx_id);
    cp_call(t, "StopTransaction", pw_ocpp_stop_req(&s));
    assert_string_equal(last_up(t)->action, "StopTransaction");
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "transactionId")),
                     777);
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "meterStop")), 3000);
    csms_answers(t);
    assert_null(pw_ocpp_relay_csms_tx(t->r, local));
    teardown_h(t);
}

static void test_meter_values_wait_for_the_start_answer(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    pw_ocpp_start_tx s = {.connector = 2, .meter_start_wh = 10, .timestamp_ms = WALL0};
    pw_strlcpy(s.id_tag, "TAG2", sizeof s.id_tag);
    char id[16];
    pw_strlcpy(id, cp_call(t, "StartTransaction", pw_ocpp_start_req(&s)), sizeof id);
    char local[PW_OCPP_TXID_LEN];
    snprintf(local, sizeof local, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(local_answer(t, id)->payload, "transactionId")));
    pw_ocpp_meter m = {.connector = 2, .timestamp_ms = WALL0, .has_energy = true, .energy_wh = 20};
    pw_strlcpy(m.tx_id, local, sizeof m.tx_id);
    cp_call(t, "MeterValues", pw_ocpp_meter_req(&m));
    assert_string_equal(last_up(t)->action, "StartTransaction"); /* one call in flight */
    csms_answers(t);
    assert_string_equal(last_up(t)->action, "MeterValues");
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "transactionId")),
                     777);
    teardown_h(t);
}

static void test_csms_calls_down_and_answers_up(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    csms_call(t, "ab-1", "ChangeConfiguration",
              json_pack("{s:s, s:s}", "key", "ConnectionTimeOut", "value", "90"));
    fr *down = cp_got(t, "ChangeConfiguration");
    assert_non_null(down);
    assert_string_equal(json_string_value(json_object_get(down->payload, "key")),
                        "ConnectionTimeOut");
    char down_id[PW_OCPP_ID_LEN];
    pw_strlcpy(down_id, down->id, sizeof down_id);
    size_t before = t->n_up;
    cp_answer(t, down_id, json_pack("{s:s}", "status", "Accepted"));
    assert_int_equal(t->n_up, before + 1);
    assert_string_equal(last_up(t)->id, "ab-1");
    /* A second answer to the same id is not forwarded again. */
    cp_answer(t, down_id, json_pack("{s:s}", "status", "Accepted"));
    assert_int_equal(t->n_up, before + 1);
    /* Answers to phasewise's own calls (setup after boot) stay local. */
    fr *own = cp_got(t, "SetChargingProfile"); /* the failsafe default, first of the setup */
    assert_non_null(own);
    assert_null(strstr(own->id, "csms"));
    uint64_t results = pw_ocpp_cp_stats_get(t->cp)->results_in;
    cp_answer(t, own->id, json_pack("{s:s}", "status", "Accepted"));
    assert_int_equal(t->n_up, before + 1);
    assert_int_equal(pw_ocpp_cp_stats_get(t->cp)->results_in, results + 1); /* phasewise's */
    /* A key phasewise sets itself is refused, not forwarded. */
    size_t n_cp = t->n_cp;
    csms_call(t, "ab-2", "ChangeConfiguration",
              json_pack("{s:s, s:s}", "key", "MeterValueSampleInterval", "value", "900"));
    assert_int_equal(t->n_cp, n_cp);
    assert_string_equal(json_string_value(json_object_get(last_up(t)->payload, "status")),
                        "Rejected");
    /* A RemoteStartTransaction goes down without its profile. */
    csms_call(t, "ab-3", "RemoteStartTransaction",
              json_pack("{s:s, s:i, s:{s:i, s:i, s:s, s:s, s:{s:s, s:[{s:i, s:f}]}}}", "idTag",
                        "TAG9", "connectorId", 1, "chargingProfile", "chargingProfileId", 9,
                        "stackLevel", 0, "chargingProfilePurpose", "TxProfile",
                        "chargingProfileKind", "Relative", "chargingSchedule", "chargingRateUnit",
                        "A", "chargingSchedulePeriod", "startPeriod", 0, "limit", 10.0));
    down = cp_got(t, "RemoteStartTransaction");
    assert_non_null(down);
    assert_null(json_object_get(down->payload, "chargingProfile"));
    assert_string_equal(json_string_value(json_object_get(down->payload, "idTag")), "TAG9");
    assert_non_null(strstr(t->reasons, "profile_removed"));
    /* A CALLERROR from the charge point goes up as one. */
    pw_strlcpy(down_id, down->id, sizeof down_id);
    char *err = pw_ocpp_error_text(down_id, PW_OCPP_NOT_SUPPORTED, "no", NULL);
    from_cp_text(t, err);
    free(err);
    assert_int_equal(last_up(t)->kind, PW_OCPP_ERROR);
    assert_string_equal(last_up(t)->id, "ab-3");
    assert_int_equal(last_up(t)->error, PW_OCPP_NOT_SUPPORTED);
    teardown_h(t);
}

static json_t *profile_req(int connector, int id, int level, const char *purpose, const char *unit,
                           double limit, int phases)
{
    json_t *period = json_pack("{s:i, s:f}", "startPeriod", 0, "limit", limit);
    if (phases)
        json_object_set_new(period, "numberPhases", json_integer(phases));
    return json_pack("{s:i, s:{s:i, s:i, s:s, s:s, s:{s:s, s:[o]}}}", "connectorId", connector,
                     "csChargingProfiles", "chargingProfileId", id, "stackLevel", level,
                     "chargingProfilePurpose", purpose, "chargingProfileKind", "Relative",
                     "chargingSchedule", "chargingRateUnit", unit, "chargingSchedulePeriod",
                     period);
}

static const char *up_status(h *t, const char *id)
{
    fr *f = last_up(t);
    assert_string_equal(f->id, id);
    assert_int_equal(f->kind, PW_OCPP_RESULT);
    return json_string_value(json_object_get(f->payload, "status"));
}

/* Whether the relay ever sent the charge point a profile (phasewise's own have numeric ids). */
static bool relay_sent_profile(h *t)
{
    for (size_t i = 0; i < t->n_cp; i++)
        if (t->cp_in[i].kind == PW_OCPP_CALL &&
            strcmp(t->cp_in[i].action, "SetChargingProfile") == 0 && strstr(t->cp_in[i].id, "csms"))
            return true;
    return false;
}

static void test_profiles_become_caps(void **state)
{
    (void)state;
    h *t = setup_h();
    char local[PW_OCPP_TXID_LEN];
    booted_with_tx(t, local);
    csms_call(t, "p1", "SetChargingProfile", profile_req(1, 11, 1, "TxDefaultProfile", "A", 8, 0));
    assert_string_equal(up_status(t, "p1"), "Accepted");
    assert_float_equal(t->cap[1], 8, 1e-9);
    assert_true(isinf(t->cap[2]));
    /* 6.9 kW on three phases over the whole charge point: 6900 / 690 = 10 A for both
     * connectors together; connector 1 charges and takes its own 8 A, idle 2 gets the rest. */
    csms_call(t, "p2", "SetChargingProfile",
              profile_req(0, 12, 0, "ChargePointMaxProfile", "W", 6900, 3));
    assert_string_equal(up_status(t, "p2"), "Accepted");
    assert_float_equal(t->cap[1], 8, 1e-9);
    assert_float_equal(t->cap[2], 2, 1e-9);
    /* A TxProfile outranks the TxDefaultProfile, and belongs to the running transaction. */
    csms_call(t, "p3", "SetChargingProfile", profile_req(1, 13, 0, "TxProfile", "A", 9.5, 0));
    assert_string_equal(up_status(t, "p3"), "Accepted");
    assert_float_equal(t->cap[1], 9.5, 1e-9);
    assert_float_equal(t->cap[2], 0.5, 1e-9);
    /* As a charge point would: no transaction on 2, connector 5 absent, purposes misplaced. */
    csms_call(t, "p4", "SetChargingProfile", profile_req(2, 14, 0, "TxProfile", "A", 7, 0));
    assert_string_equal(up_status(t, "p4"), "Rejected");
    csms_call(t, "p5", "SetChargingProfile", profile_req(5, 15, 0, "TxDefaultProfile", "A", 7, 0));
    assert_string_equal(up_status(t, "p5"), "Rejected");
    csms_call(t, "p6", "SetChargingProfile",
              profile_req(1, 16, 0, "ChargePointMaxProfile", "A", 7, 0));
    assert_string_equal(up_status(t, "p6"), "Rejected");
    csms_call(t, "p7", "SetChargingProfile", profile_req(0, 17, 0, "TxProfile", "A", 7, 0));
    assert_string_equal(up_status(t, "p7"), "Rejected");
    /* GetCompositeSchedule from the cap. */
    csms_call(t, "g1", "GetCompositeSchedule",
              json_pack("{s:i, s:i}", "connectorId", 1, "duration", 3600));
    fr *g = last_up(t);
    assert_string_equal(g->id, "g1");
    json_t *per = json_array_get(
        json_object_get(json_object_get(g->payload, "chargingSchedule"), "chargingSchedulePeriod"),
        0);
    assert_float_equal(json_real_value(json_object_get(per, "limit")), 9.5, 1e-9);
    csms_call(t, "g2", "GetCompositeSchedule",
              json_pack("{s:i, s:i}", "connectorId", 4, "duration", 60));
    assert_string_equal(up_status(t, "g2"), "Rejected");
    /* The transaction ends: its TxProfile goes, the default holds again. */
    pw_ocpp_stop_tx s = {.meter_stop_wh = 3000, .timestamp_ms = WALL0};
    pw_strlcpy(s.tx_id, local, sizeof s.tx_id);
    cp_call(t, "StopTransaction", pw_ocpp_stop_req(&s));
    assert_float_equal(t->cap[1], 5, 1e-9); /* nothing runs: the 10 A split between both */
    assert_float_equal(t->cap[2], 5, 1e-9);
    csms_answers(t);
    /* Replaced by the same connector, purpose and stack level. */
    csms_call(t, "p8", "SetChargingProfile", profile_req(1, 18, 1, "TxDefaultProfile", "A", 4, 0));
    assert_float_equal(t->cap[1], 4, 1e-9); /* its own 4 A; the 6 A it leaves go to 2 */
    assert_float_equal(t->cap[2], 6, 1e-9);
    csms_call(t, "p9", "SetChargingProfile", profile_req(1, 18, 1, "TxDefaultProfile", "A", 12, 0));
    assert_float_equal(t->cap[1], 5, 1e-9);
    /* Clear by id, then by purpose; clearing nothing is Unknown. */
    csms_call(t, "c1", "ClearChargingProfile", json_pack("{s:i}", "id", 12));
    assert_string_equal(up_status(t, "c1"), "Accepted");
    assert_float_equal(t->cap[1], 12, 1e-9);
    assert_true(isinf(pw_ocpp_relay_cap(t->r, 0)));
    assert_true(isinf(t->cap[2]));
    csms_call(t, "c2", "ClearChargingProfile",
              json_pack("{s:s}", "chargingProfilePurpose", "TxDefaultProfile"));
    assert_string_equal(up_status(t, "c2"), "Accepted");
    assert_true(isinf(t->cap[1]));
    csms_call(t, "c3", "ClearChargingProfile", json_pack("{}"));
    assert_string_equal(up_status(t, "c3"), "Unknown");
    /* The charge point never got a profile of the CSMS's. */
    assert_false(relay_sent_profile(t));
    assert_true(pw_ocpp_relay_stats_get(t->r)->local >= 12);
    teardown_h(t);
}

static void test_profile_periods(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    /* Absolute, started 100 s ago: the period from 60 s holds; one starting in the future
     * holds nothing yet. */
    char start[32];
    pw_ocpp_time_format(WALL0 + (int64_t)t->now - 100000, start, sizeof start);
    csms_call(t, "a1", "SetChargingProfile",
              json_pack("{s:i, s:{s:i, s:i, s:s, s:s, s:{s:s, s:s, s:[{s:i, s:f}, {s:i, "
                        "s:f}, {s:i, s:f}]}}}",
                        "connectorId", 2, "csChargingProfiles", "chargingProfileId", 21,
                        "stackLevel", 0, "chargingProfilePurpose", "TxDefaultProfile",
                        "chargingProfileKind", "Absolute", "chargingSchedule", "startSchedule",
                        start, "chargingRateUnit", "A", "chargingSchedulePeriod", "startPeriod", 0,
                        "limit", 16.0, "startPeriod", 60, "limit", 7.0, "startPeriod", 200, "limit",
                        12.0));
    assert_string_equal(up_status(t, "a1"), "Accepted");
    assert_float_equal(t->cap[2], 7, 1e-9);
    pw_ocpp_time_format(WALL0 + (int64_t)t->now + 100000, start, sizeof start);
    csms_call(t, "a2", "SetChargingProfile",
              json_pack("{s:i, s:{s:i, s:i, s:s, s:s, s:{s:s, s:s, s:[{s:i, s:f}]}}}",
                        "connectorId", 2, "csChargingProfiles", "chargingProfileId", 21,
                        "stackLevel", 0, "chargingProfilePurpose", "TxDefaultProfile",
                        "chargingProfileKind", "Absolute", "chargingSchedule", "startSchedule",
                        start, "chargingRateUnit", "A", "chargingSchedulePeriod", "startPeriod", 0,
                        "limit", 6.0));
    assert_string_equal(up_status(t, "a2"), "Accepted");
    assert_true(isinf(t->cap[2]));
    /* W on one phase: 2300 W / 230 V = 10 A. */
    csms_call(t, "a3", "SetChargingProfile",
              profile_req(1, 22, 0, "TxDefaultProfile", "W", 2300, 1));
    assert_float_equal(t->cap[1], 10, 1e-9);
    teardown_h(t);
}

/* ---- schedules followed, ChargePointMaxProfile split, profiles kept ------------------------ */

static int64_t wall_now(const h *t)
{
    return WALL0 + (int64_t)t->now;
}

/* Fake time: the relay polls at each of its deadlines up to until (wall = WALL0 + now). */
static void run_until(h *t, uint64_t until)
{
    for (int i = 0; i < 100000; i++) {
        uint64_t d = pw_ocpp_relay_next_deadline(t->r);
        if (d > until) {
            t->now = until;
            return;
        }
        if (d > t->now)
            t->now = d;
        pw_ocpp_relay_poll(t->r, t->now, wall_now(t));
    }
    fail_msg("the relay's deadline does not move on");
}

/* A profile with a schedule: periods as {startPeriod, limit} pairs, n of them; start 0 and
 * duration 0 are left out; kind "Recurring" is daily. */
static json_t *sched_req(int connector, int id, int level, const char *purpose, const char *kind,
                         int64_t start, int duration, const double (*per)[2], size_t n)
{
    json_t *periods = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            periods, json_pack("{s:i, s:f}", "startPeriod", (int)per[i][0], "limit", per[i][1]));
    json_t *sched =
        json_pack("{s:s, s:o}", "chargingRateUnit", "A", "chargingSchedulePeriod", periods);
    if (start) {
        char text[32];
        pw_ocpp_time_format(start, text, sizeof text);
        json_object_set_new(sched, "startSchedule", json_string(text));
    }
    if (duration)
        json_object_set_new(sched, "duration", json_integer(duration));
    json_t *prof = json_pack("{s:i, s:i, s:s, s:s, s:o}", "chargingProfileId", id, "stackLevel",
                             level, "chargingProfilePurpose", purpose, "chargingProfileKind", kind,
                             "chargingSchedule", sched);
    if (strcmp(kind, "Recurring") == 0)
        json_object_set_new(prof, "recurrencyKind", json_string("Daily"));
    return json_pack("{s:i, s:o}", "connectorId", connector, "csChargingProfiles", prof);
}

static void set_ok(h *t, json_t *req)
{
    csms_call(t, "sp", "SetChargingProfile", req);
    assert_string_equal(up_status(t, "sp"), "Accepted");
}

static void booted(h *t)
{
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
}

/* A transaction starts on a connector (the CSMS calls it 777); phasewise's id in local. */
static void start_tx(h *t, int connector, int64_t timestamp, char *local)
{
    pw_ocpp_start_tx s = {.connector = connector, .meter_start_wh = 1, .timestamp_ms = timestamp};
    pw_strlcpy(s.id_tag, "TAG1", sizeof s.id_tag);
    char id[16];
    pw_strlcpy(id, cp_call(t, "StartTransaction", pw_ocpp_start_req(&s)), sizeof id);
    fr *a = local_answer(t, id);
    assert_non_null(a);
    snprintf(local, PW_OCPP_TXID_LEN, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(a->payload, "transactionId")));
    csms_drain(t);
}

static void stop_tx(h *t, const char *local)
{
    pw_ocpp_stop_tx s = {.meter_stop_wh = 2, .timestamp_ms = wall_now(t)};
    pw_strlcpy(s.tx_id, local, sizeof s.tx_id);
    cp_call(t, "StopTransaction", pw_ocpp_stop_req(&s));
}

/* GetCompositeSchedule's periods as {startPeriod, limit} pairs; returns how many. */
static size_t composite_of(h *t, int connector, int duration, const char *unit, double (*out)[2])
{
    json_t *req = json_pack("{s:i, s:i}", "connectorId", connector, "duration", duration);
    if (unit)
        json_object_set_new(req, "chargingRateUnit", json_string(unit));
    csms_call(t, "gc", "GetCompositeSchedule", req);
    assert_string_equal(up_status(t, "gc"), "Accepted");
    json_t *sched = json_object_get(last_up(t)->payload, "chargingSchedule");
    json_t *per = json_object_get(sched, "chargingSchedulePeriod");
    assert_true(json_is_integer(json_object_get(sched, "duration")));
    assert_true(json_array_size(per) > 0);
    for (size_t i = 0; i < json_array_size(per); i++) {
        json_t *at = json_object_get(json_array_get(per, i), "startPeriod");
        json_t *lim = json_object_get(json_array_get(per, i), "limit");
        assert_true(json_is_integer(at) && json_is_number(lim));
        out[i][0] = (double)json_integer_value(at);
        out[i][1] = json_number_value(lim);
        /* The schedule's periods start at 0, in order, each a change. */
        assert_true(i ? out[i][0] > out[i - 1][0] && out[i][1] != out[i - 1][1] : out[i][0] == 0);
    }
    return json_array_size(per);
}

/* A schedule's later periods, its duration, validity and a daily recurrence are followed: the
 * cap changes exactly at each boundary (the relay wakes there), a lower stack level holds
 * where the higher sets nothing, and GetCompositeSchedule tells the same story ahead. */
static void test_schedules_followed(void **state)
{
    (void)state;
    h *t = setup_h();
    booted(t);
    uint64_t t0 = t->now;
    /* Level 0 on the whole charge point: 10 A, Relative from receipt. */
    set_ok(t, sched_req(0, 1, 0, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, 10}}, 1));
    /* Level 1 on connector 2: 16 A, 7 A after 30 s, 12 A after 100 s, for 150 s. */
    set_ok(t, sched_req(2, 2, 1, "TxDefaultProfile", "Absolute", wall_now(t), 150,
                        (double[][2]){{0, 16}, {30, 7}, {100, 12}}, 3));
    assert_float_equal(t->cap[1], 10, 1e-9);
    assert_float_equal(t->cap[2], 16, 1e-9);
    double per[MAXF][2];
    assert_int_equal(composite_of(t, 2, 200, NULL, per), 4);
    const double want[][2] = {{0, 16}, {30, 7}, {100, 12}, {150, 10}};
    assert_memory_equal(per, want, sizeof want);
    assert_int_equal(composite_of(t, 0, 40, NULL, per), 2); /* both, under 16 A each */
    assert_float_equal(per[0][1], 26, 1e-9);
    assert_float_equal(per[1][1], 17, 1e-9);
    assert_int_equal(composite_of(t, 2, 20, "W", per), 1);
    assert_float_equal(per[0][1], 16 * 690, 1e-9);
    run_until(t, t0 + 29999);
    assert_float_equal(t->cap[2], 16, 1e-9);
    run_until(t, t0 + 30000);
    assert_float_equal(t->cap[2], 7, 1e-9);
    assert_int_equal(t->cap_at[2], t0 + 30000); /* woken at the boundary, not later */
    run_until(t, t0 + 100000);
    assert_float_equal(t->cap[2], 12, 1e-9);
    assert_int_equal(t->cap_at[2], t0 + 100000);
    size_t changed = t->n_changed;
    run_until(t, t0 + 150000);
    assert_float_equal(t->cap[2], 10, 1e-9); /* its duration is over: level 0 again */
    assert_int_equal(t->cap_at[2], t0 + 150000);
    assert_int_equal(t->n_changed, changed + 1); /* and it is let go */
    json_t *dump = pw_ocpp_relay_profiles_dump(t->r);
    assert_int_equal(json_array_size(dump), 1);
    json_decref(dump);

    /* validFrom / validTo: level 2 on connector 1 at 6 A from 10 s to 20 s from now. */
    uint64_t t1 = t->now;
    json_t *req =
        sched_req(1, 3, 2, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, 6}}, 1);
    char from[32], to[32];
    pw_ocpp_time_format(wall_now(t) + 10000, from, sizeof from);
    pw_ocpp_time_format(wall_now(t) + 20000, to, sizeof to);
    json_t *cs = json_object_get(req, "csChargingProfiles");
    json_object_set_new(cs, "validFrom", json_string(from));
    json_object_set_new(cs, "validTo", json_string(to));
    set_ok(t, req);
    assert_float_equal(t->cap[1], 10, 1e-9);
    run_until(t, t1 + 10000);
    assert_float_equal(t->cap[1], 6, 1e-9);
    assert_int_equal(t->cap_at[1], t1 + 10000);
    run_until(t, t1 + 20000);
    assert_float_equal(t->cap[1], 10, 1e-9);
    assert_int_equal(t->cap_at[1], t1 + 20000);

    /* Daily from 3 days and 1 hour ago: 8 A, 9 A from the 2nd hour of each day; a
     * minChargingRate changes nothing. */
    uint64_t t2 = t->now;
    req = sched_req(1, 4, 3, "TxDefaultProfile", "Recurring", wall_now(t) - 3 * 86400000 - 3600000,
                    0, (double[][2]){{0, 8}, {7200, 9}}, 2);
    json_object_set_new(
        json_object_get(json_object_get(req, "csChargingProfiles"), "chargingSchedule"),
        "minChargingRate", json_real(7.5));
    set_ok(t, req);
    assert_float_equal(t->cap[1], 8, 1e-9);
    run_until(t, t2 + 3600000);
    assert_float_equal(t->cap[1], 9, 1e-9);
    assert_int_equal(t->cap_at[1], t2 + 3600000);
    run_until(t, t2 + 23 * 3600000 - 1);
    assert_float_equal(t->cap[1], 9, 1e-9);
    run_until(t, t2 + 23 * 3600000);
    assert_float_equal(t->cap[1], 8, 1e-9); /* a new day */
    assert_int_equal(t->cap_at[1], t2 + 23 * 3600000);
    teardown_h(t);
}

/* Relative: a TxProfile from its transaction's start, a TxDefaultProfile from receipt; the
 * next deadline is the next boundary. */
static void test_relative_origins(void **state)
{
    (void)state;
    h *t = setup_h();
    booted(t);
    char local[PW_OCPP_TXID_LEN];
    start_tx(t, 1, wall_now(t) - 1000000, local); /* begun 1000 s ago */
    uint64_t t0 = t->now;
    size_t changes = t->n_changed;
    set_ok(t, sched_req(1, 5, 0, "TxProfile", "Relative", 0, 0,
                        (double[][2]){{0, 6}, {900, 10}, {1200, 14}}, 3));
    assert_int_equal(t->n_changed, changes + 1);
    csms_call(t, "x", "SetChargingProfile", profile_req(5, 7, 0, "TxDefaultProfile", "A", 7, 0));
    assert_string_equal(up_status(t, "x"), "Rejected");
    csms_call(t, "y", "ClearChargingProfile", json_pack("{s:i}", "id", 99));
    assert_string_equal(up_status(t, "y"), "Unknown");
    assert_int_equal(t->n_changed, changes + 1); /* nothing changed */
    assert_float_equal(t->cap[1], 10, 1e-9);
    set_ok(t, sched_req(2, 6, 0, "TxDefaultProfile", "Relative", 0, 0,
                        (double[][2]){{0, 6}, {900, 10}}, 2));
    assert_float_equal(t->cap[2], 6, 1e-9);
    pw_ocpp_relay_poll(t->r, t->now, wall_now(t));
    assert_int_equal(pw_ocpp_relay_next_deadline(t->r), t0 + 60000); /* at most 60 s */
    run_until(t, t0 + 199999);
    assert_float_equal(t->cap[1], 10, 1e-9);
    assert_int_equal(pw_ocpp_relay_next_deadline(t->r), t0 + 200000);
    run_until(t, t0 + 200000);
    assert_float_equal(t->cap[1], 14, 1e-9);
    run_until(t, t0 + 900000);
    assert_float_equal(t->cap[2], 10, 1e-9);
    assert_int_equal(t->cap_at[2], t0 + 900000);
    /* The transaction ends: its TxProfile goes, and so does the need to wake for it. */
    size_t changed = t->n_changed;
    stop_tx(t, local);
    csms_drain(t);
    assert_int_equal(t->n_changed, changed + 1);
    assert_true(isinf(t->cap[1]));
    csms_call(t, "c", "ClearChargingProfile", json_pack("{}"));
    assert_int_equal(t->n_changed, changed + 2);
    assert_int_equal(pw_ocpp_relay_next_deadline(t->r), UINT64_MAX);
    teardown_h(t);
}

/* The caps of all connectors added up, checked never above the charge point's maximum. */
static void assert_within(h *t, size_t n, double max)
{
    double sum = 0;
    for (size_t k = 1; k <= n; k++) {
        assert_float_equal(pw_ocpp_relay_cap(t->r, (int)k), t->cap[k], 1e-9);
        sum += t->cap[k];
    }
    assert_true(sum <= max + 1e-9);
}

/* ChargePointMaxProfile is for the whole charge point: with 1, 2 and 3 connectors the caps
 * never add up to more, split among the running transactions (again the moment one starts or
 * stops), each under its own cap, what one leaves going to the others. */
static void test_charge_point_max_split(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 3; n++) {
        h *t = setup_n(n);
        booted(t);
        set_ok(t, sched_req(0, 1, 0, "ChargePointMaxProfile", "Relative", 0, 0,
                            (double[][2]){{0, 30}}, 1));
        assert_float_equal(pw_ocpp_relay_cap(t->r, 0), 30, 1e-9);
        for (size_t k = 1; k <= n; k++) /* nothing runs: evenly among all */
            assert_float_equal(t->cap[k], n == 3 ? 10 : 30.0 / (double)n, 1e-9);
        assert_within(t, n, 30);
        char tx1[PW_OCPP_TXID_LEN], tx2[PW_OCPP_TXID_LEN], tx3[PW_OCPP_TXID_LEN];
        start_tx(t, 1, wall_now(t), tx1);
        assert_float_equal(t->cap[1], 30, 1e-9);
        for (size_t k = 2; k <= n; k++)
            assert_float_equal(t->cap[k], 0, 1e-9);
        assert_within(t, n, 30);
        if (n == 1) {
            /* Its own cap is lower: that holds. */
            set_ok(t, sched_req(1, 2, 0, "TxDefaultProfile", "Relative", 0, 0,
                                (double[][2]){{0, 6}}, 1));
            assert_float_equal(t->cap[1], 6, 1e-9);
            teardown_h(t);
            continue;
        }
        /* A second transaction: the moment phasewise answers its start, both get half. */
        pw_ocpp_start_tx s = {.connector = 2, .meter_start_wh = 1, .timestamp_ms = wall_now(t)};
        pw_strlcpy(s.id_tag, "TAG2", sizeof s.id_tag);
        const char *id = cp_call(t, "StartTransaction", pw_ocpp_start_req(&s));
        assert_non_null(local_answer(t, id));
        assert_float_equal(t->cap[1], 15, 1e-9);
        assert_float_equal(t->cap[2], 15, 1e-9);
        assert_within(t, n, 30);
        snprintf(
            tx2, sizeof tx2, "%" JSON_INTEGER_FORMAT,
            json_integer_value(json_object_get(local_answer(t, id)->payload, "transactionId")));
        csms_drain(t);
        /* Connector 1 may have 6 A only: the 24 A it leaves go to connector 2. */
        set_ok(t,
               sched_req(1, 2, 0, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, 6}}, 1));
        assert_float_equal(t->cap[1], 6, 1e-9);
        assert_float_equal(t->cap[2], 24, 1e-9);
        if (n == 3)
            assert_float_equal(t->cap[3], 0, 1e-9);
        assert_within(t, n, 30);
        if (n == 3) {
            start_tx(t, 3, wall_now(t), tx3);
            assert_float_equal(t->cap[1], 6, 1e-9);
            assert_float_equal(t->cap[2], 12, 1e-9);
            assert_float_equal(t->cap[3], 12, 1e-9);
            assert_within(t, n, 30);
        }
        /* The second one stops: the others share again at once. */
        stop_tx(t, tx2);
        assert_float_equal(t->cap[1], 6, 1e-9);
        if (n == 3) { /* 3 runs: it has the 24 A */
            assert_float_equal(t->cap[2], 0, 1e-9);
            assert_float_equal(t->cap[3], 24, 1e-9);
        } else { /* nothing else runs: idle 2 has what 1 leaves */
            assert_float_equal(t->cap[2], 24, 1e-9);
        }
        assert_within(t, n, 30);
        /* A lower maximum later in the schedule is split the same way. */
        set_ok(t, sched_req(0, 1, 0, "ChargePointMaxProfile", "Relative", 0, 0,
                            (double[][2]){{0, 30}, {60, 10}}, 2));
        run_until(t, t->now + 60000);
        assert_within(t, n, 10);
        assert_float_equal(t->cap[1], n == 3 ? 5 : 6, 1e-9); /* 1 and 3 share 10 A */
        teardown_h(t);
    }
    /* Three idle connectors under 10 A: 3.33 A each, never 10.000001 together. */
    h *t = setup_n(3);
    booted(t);
    set_ok(t, sched_req(0, 1, 0, "ChargePointMaxProfile", "Relative", 0, 0, (double[][2]){{0, 10}},
                        1));
    assert_float_equal(t->cap[1], 3.33, 1e-9);
    assert_within(t, 3, 10);
    teardown_h(t);
}

/* The same composite schedules from two relays, then the same caps at several wall times. */
static void assert_same_caps(h *a, h *b, uint64_t until)
{
    size_t total = 0;
    for (int c = 0; c <= 2; c++) {
        double pa[MAXF][2], pb[MAXF][2];
        size_t na = composite_of(a, c, 86400, NULL, pa);
        assert_int_equal(composite_of(b, c, 86400, NULL, pb), na);
        assert_memory_equal(pa, pb, na * sizeof pa[0]);
        total += na;
    }
    assert_true(total > 6); /* the schedules do change over the day */
    while (a->now < until) {
        uint64_t step = a->now + 7000 < until ? a->now + 7000 : until;
        run_until(a, step);
        run_until(b, step);
        for (int c = 0; c <= 2; c++) {
            double x = pw_ocpp_relay_cap(a->r, c), y = pw_ocpp_relay_cap(b->r, c);
            assert_true(x == y || (isinf(x) && isinf(y)));
        }
    }
}

/* The profiles held survive a dump and a load into a fresh relay (as after a restart): the
 * same caps at every wall time, a Relative one still counted from its first receipt. */
static void test_dump_load_round_trip(void **state)
{
    (void)state;
    h *a = setup_h();
    booted(a);
    char tx_a[PW_OCPP_TXID_LEN], tx_b[PW_OCPP_TXID_LEN];
    int64_t began = wall_now(a) - 500000;
    start_tx(a, 1, began, tx_a);
    /* High enough that idle connector 2 shows its own caps beside connector 1's 11 A. */
    set_ok(a, sched_req(0, 1, 0, "ChargePointMaxProfile", "Absolute", wall_now(a) - 5000, 0,
                        (double[][2]){{0, 30}, {40, 25}}, 2));
    set_ok(a,
           sched_req(1, 2, 0, "TxProfile", "Relative", 0, 0, (double[][2]){{0, 8}, {530, 11}}, 2));
    set_ok(a, sched_req(0, 3, 0, "TxDefaultProfile", "Relative", 0, 0,
                        (double[][2]){{0, 12}, {100, 9}}, 2));
    /* On connector 2 for 20 s of each day, then 10 A for a minute, then connector 0's. */
    set_ok(a, sched_req(2, 4, 1, "TxDefaultProfile", "Recurring", wall_now(a) - 50000, 70,
                        (double[][2]){{0, 5}, {60, 7}}, 2));
    json_t *w = profile_req(2, 5, 2, "TxDefaultProfile", "W", 2300, 1);
    json_object_set_new(
        json_object_get(json_object_get(w, "csChargingProfiles"), "chargingSchedule"), "duration",
        json_integer(80));
    set_ok(a, w);
    /* Time passes before the dump: the Relative ones keep counting from their receipt. */
    run_until(a, a->now + 12000);
    json_t *dump = pw_ocpp_relay_profiles_dump(a->r);
    assert_int_equal(json_array_size(dump), 5);
    char *text = json_dumps(dump, JSON_COMPACT); /* as the store keeps it */
    json_decref(dump);
    json_t *back = json_loads(text, 0, NULL);
    free(text);

    h *b = setup_h();
    b->now = a->now;
    booted(b);
    start_tx(b, 1, began, tx_b);
    size_t changed = b->n_changed;
    assert_int_equal(pw_ocpp_relay_profiles_load(b->r, back, wall_now(b)), 0);
    assert_int_equal(b->n_changed, changed); /* loading is not a change to keep */
    assert_same_caps(a, b, a->now + 200000);
    /* Both let the W one go at its end, and hold the same four. */
    json_t *d1 = pw_ocpp_relay_profiles_dump(a->r), *d2 = pw_ocpp_relay_profiles_dump(b->r);
    assert_int_equal(json_array_size(d2), 4);
    assert_true(json_equal(d1, d2));
    json_decref(d1);
    json_decref(d2);

    /* Without its transaction the TxProfile is skipped, as its SetChargingProfile would be. */
    h *c = setup_h();
    c->now = b->now;
    b->reasons[0] = '\0';
    assert_int_equal(pw_ocpp_relay_profiles_load(c->r, back, wall_now(c)), 1);
    assert_non_null(strstr(c->reasons, "profile_load"));
    json_decref(back);
    teardown_h(a);
    teardown_h(b);
    teardown_h(c);
}

/* A dump that is not one, bad elements and too many: each bad element is skipped with a
 * reason, nothing else changes, nothing crashes. */
static void test_dump_load_malformed(void **state)
{
    (void)state;
    h *t = setup_h();
    booted(t);
    set_ok(t, sched_req(1, 1, 0, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, 9}}, 1));
    json_t *before = pw_ocpp_relay_profiles_dump(t->r);
    size_t n_cap = t->n_cap;
    json_t *not_arrays[] = {json_object(), json_string("[]"), json_null(), json_integer(1)};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pw_ocpp_relay_profiles_load(t->r, not_arrays[i], wall_now(t)), -1);
        json_decref(not_arrays[i]);
    }
    assert_int_equal(pw_ocpp_relay_profiles_load(t->r, NULL, wall_now(t)), -1);
    json_t *good =
        sched_req(2, 7, 0, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, 5}}, 1);
    json_t *bad = json_pack(
        "[i, s, {}, {s:i}, {s:i, s:{}}, o, o, o, o, o, o, o]", 3, "x", "connectorId", 1,
        "connectorId", 1, "csChargingProfiles",
        /* connector 9 is not configured */
        sched_req(9, 8, 0, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, 5}}, 1),
        /* a TxProfile with no transaction running */
        sched_req(1, 9, 0, "TxProfile", "Relative", 0, 0, (double[][2]){{0, 5}}, 1),
        /* a ChargePointMaxProfile on a connector */
        sched_req(1, 10, 0, "ChargePointMaxProfile", "Relative", 0, 0, (double[][2]){{0, 5}}, 1),
        /* a negative limit */
        sched_req(1, 11, 0, "TxDefaultProfile", "Relative", 0, 0, (double[][2]){{0, -5}}, 1),
        json_pack("{s:i, s:{s:s}}", "connectorId", 1, "csChargingProfiles", "x", "y"),
        json_pack("{s:i, s:s}", "connectorId", 1, "csChargingProfiles", "no"),
        json_pack("{s:i, s:s}", "connectorId", -1, "extra", "field"));
    assert_non_null(bad);
    /* The same good element with a bad origin, an unknown field: skipped too. */
    json_t *e = json_deep_copy(good);
    json_object_set_new(e, "origin", json_string("yesterday"));
    json_array_append_new(bad, e);
    e = json_deep_copy(good);
    json_object_set_new(e, "origin", json_integer(-5));
    json_array_append_new(bad, e);
    e = json_deep_copy(good);
    json_object_set_new(e, "origin", json_integer(INT64_MAX));
    json_array_append_new(bad, e);
    e = json_deep_copy(good);
    json_object_set_new(e, "stowaway", json_true());
    json_array_append_new(bad, e);
    size_t n_bad = json_array_size(bad);
    t->reasons[0] = '\0';
    assert_int_equal(pw_ocpp_relay_profiles_load(t->r, bad, wall_now(t)), (int)n_bad);
    assert_non_null(strstr(t->reasons, "profile_load"));
    assert_int_equal(t->n_cap, n_cap); /* no cap moved */
    json_t *after = pw_ocpp_relay_profiles_dump(t->r);
    assert_true(json_equal(before, after));
    json_decref(after);
    /* A good one among them is taken. */
    json_array_append(bad, good);
    assert_int_equal(pw_ocpp_relay_profiles_load(t->r, bad, wall_now(t)), (int)n_bad);
    assert_float_equal(t->cap[2], 5, 1e-9);
    assert_float_equal(t->cap[1], 9, 1e-9);
    json_decref(bad);
    json_decref(good);
    /* Too many: the relay holds 16, the rest are skipped. */
    json_t *many = json_array();
    for (int i = 0; i < 40; i++)
        json_array_append_new(many, sched_req(2, 100 + i, 10 + i, "TxDefaultProfile", "Relative", 0,
                                              0, (double[][2]){{0, 3 + i * 0.1}}, 1));
    assert_int_equal(pw_ocpp_relay_profiles_load(t->r, many, wall_now(t)), 40 - 14);
    json_decref(many);
    json_t *full = pw_ocpp_relay_profiles_dump(t->r);
    assert_int_equal(json_array_size(full), 16);
    json_decref(full);
    assert_float_equal(t->cap[2], 3 + 13 * 0.1, 1e-9); /* the highest level taken */
    json_decref(before);
    teardown_h(t);
}

static void test_bad_csms_frames(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    size_t n_cp = t->n_cp;
    csms_text(t, "[2,\"x1\",\"Reset\",{\"type\":\"Sideways\"}]");
    assert_int_equal(last_up(t)->kind, PW_OCPP_ERROR);
    assert_string_equal(last_up(t)->id, "x1");
    csms_text(t, "[2,\"x2\",\"NoSuchThing\",{}]");
    assert_int_equal(last_up(t)->error, PW_OCPP_NOT_IMPLEMENTED);
    csms_text(t, "[2,\"x3\",\"BootNotification\",{}]");
    assert_int_equal(last_up(t)->error, PW_OCPP_NOT_SUPPORTED);
    csms_text(t, "[2,\"x4\",\"GetCompositeSchedule\",{\"connectorId\":\"1\",\"duration\":1}]");
    assert_int_equal(last_up(t)->error, PW_OCPP_TYPE_CONSTRAINT);
    csms_text(t, "[2,\"x5\",\"SetChargingProfile\",{\"connectorId\":1}]");
    assert_int_equal(last_up(t)->kind, PW_OCPP_ERROR);
    size_t n_up = t->n_up;
    csms_text(t, "not json");
    csms_text(t, "[3,\"nobody\",{}]");
    assert_int_equal(t->n_up, n_up);
    assert_int_equal(t->n_cp, n_cp); /* none of it reached the charge point */
    assert_non_null(strstr(t->reasons, "late_answer"));
    teardown_h(t);
}

static void test_timeouts(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    cp_call(t, "Heartbeat", pw_ocpp_heartbeat_req());
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_FINISHING));
    assert_string_equal(last_up(t)->action, "Heartbeat");
    uint64_t d = pw_ocpp_relay_next_deadline(t->r);
    assert_int_equal(d, t->now + 30000);
    t->now = d;
    pw_ocpp_relay_poll(t->r, t->now, WALL0 + (int64_t)t->now);
    assert_string_equal(last_up(t)->action, "StatusNotification");
    assert_non_null(strstr(t->reasons, "csms_timeout"));
    /* A late answer to the heartbeat is not taken for the status's. */
    csms_answer(t, t->up[t->n_up - 2].id, pw_ocpp_heartbeat_conf(WALL0));
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 1);
    /* A CSMS call the charge point never answers is forgotten after the timeout. */
    csms_call(t, "r1", "Reset", json_pack("{s:s}", "type", "Soft"));
    fr *down = cp_got(t, "Reset");
    char down_id[PW_OCPP_ID_LEN];
    pw_strlcpy(down_id, down->id, sizeof down_id);
    t->now += 30000;
    pw_ocpp_relay_poll(t->r, t->now, WALL0 + (int64_t)t->now);
    size_t n_up = t->n_up;
    cp_answer(t, down_id, json_pack("{s:s}", "status", "Accepted"));
    assert_int_equal(t->n_up, n_up);
    teardown_h(t);
}

/* A transaction begun, metered and ended while the CSMS was away reaches it in order once the
 * link is back, each call once, the meter values and the stop under the CSMS's id. */
static void test_transaction_while_down(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_start_tx s = {.connector = 1, .meter_start_wh = 5, .timestamp_ms = WALL0};
    pw_strlcpy(s.id_tag, "TAG1", sizeof s.id_tag);
    char id[16];
    pw_strlcpy(id, cp_call(t, "StartTransaction", pw_ocpp_start_req(&s)), sizeof id);
    char local[PW_OCPP_TXID_LEN];
    snprintf(local, sizeof local, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(local_answer(t, id)->payload, "transactionId")));
    assert_string_not_equal(local, "777");
    pw_ocpp_meter m = {.connector = 1, .timestamp_ms = WALL0, .has_energy = true, .energy_wh = 9};
    pw_strlcpy(m.tx_id, local, sizeof m.tx_id);
    cp_call(t, "MeterValues", pw_ocpp_meter_req(&m));
    pw_ocpp_stop_tx st = {.meter_stop_wh = 50, .timestamp_ms = WALL0};
    pw_strlcpy(st.tx_id, local, sizeof st.tx_id);
    cp_call(t, "StopTransaction", pw_ocpp_stop_req(&st));
    assert_int_equal(t->n_up, 0);
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    assert_int_equal(t->n_up, 4);
    assert_string_equal(t->up[0].action, "BootNotification");
    assert_string_equal(t->up[1].action, "StartTransaction");
    assert_string_equal(t->up[2].action, "MeterValues");
    assert_int_equal(json_integer_value(json_object_get(t->up[2].payload, "transactionId")), 777);
    assert_string_equal(t->up[3].action, "StopTransaction");
    assert_int_equal(json_integer_value(json_object_get(t->up[3].payload, "transactionId")), 777);
    assert_null(strstr(t->reasons, "unknown_tx"));
    teardown_h(t);
}

/* The stop in flight when the link goes is sent again under the CSMS's id, not mapped twice. */
static void test_stop_in_flight_sent_again(void **state)
{
    (void)state;
    h *t = setup_h();
    char local[PW_OCPP_TXID_LEN];
    booted_with_tx(t, local);
    pw_ocpp_stop_tx st = {.meter_stop_wh = 50, .timestamp_ms = WALL0};
    pw_strlcpy(st.tx_id, local, sizeof st.tx_id);
    cp_call(t, "StopTransaction", pw_ocpp_stop_req(&st));
    assert_string_equal(last_up(t)->action, "StopTransaction");
    pw_ocpp_relay_upstream(t->r, false, t->now);
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    assert_int_equal(up_count(t, "StopTransaction"), 2);
    assert_string_equal(last_up(t)->action, "StopTransaction");
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "transactionId")),
                     777);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 0);
    teardown_h(t);
}

/* A call's number from its message id ("pw-N"). */
static unsigned long long seq_of(const fr *f)
{
    assert_memory_equal(f->id, "pw-", 3);
    return strtoull(f->id + 3, NULL, 10);
}

static void meter_call(h *t, const char *local, uint64_t wh)
{
    pw_ocpp_meter m = {.connector = 1, .timestamp_ms = WALL0, .has_energy = true, .energy_wh = wh};
    pw_strlcpy(m.tx_id, local, sizeof m.tx_id);
    cp_call(t, "MeterValues", pw_ocpp_meter_req(&m));
}

static void stop_call(h *t, const char *local, uint64_t wh)
{
    pw_ocpp_stop_tx st = {.meter_stop_wh = wh, .timestamp_ms = WALL0};
    pw_strlcpy(st.tx_id, local, sizeof st.tx_id);
    cp_call(t, "StopTransaction", pw_ocpp_stop_req(&st));
}

/* Calls made while the CSMS is away survive a restart of phasewise: after it the CSMS gets the
 * boot kept from before, then each call once and in order, the transaction (begun before the
 * restart, ended after it) under its own id; what is kept empties as the CSMS answers. */
static void test_queue_survives_restart(void **state)
{
    (void)state;
    h *t = setup_h();
    cp_call(t, "BootNotification", boot_payload());
    cp_call(t, "StatusNotification", status_payload(1, PW_OCPP_PREPARING));
    pw_ocpp_start_tx s = {.connector = 1, .meter_start_wh = 100, .timestamp_ms = WALL0};
    pw_strlcpy(s.id_tag, "TAG1", sizeof s.id_tag);
    char id[16], local[PW_OCPP_TXID_LEN];
    pw_strlcpy(id, cp_call(t, "StartTransaction", pw_ocpp_start_req(&s)), sizeof id);
    snprintf(local, sizeof local, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(local_answer(t, id)->payload, "transactionId")));
    meter_call(t, local, 300);
    assert_int_equal(t->kept->n_calls, 3);
    assert_string_equal(t->kept->calls[1].local_tx, local); /* the start got its id */
    restart(t, 5000);
    stop_call(t, local, 700); /* the charge point goes on with its transaction */
    assert_int_equal(t->n_up, 0);
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    assert_int_equal(t->n_up, 5);
    assert_string_equal(t->up[0].action, "BootNotification");
    assert_string_equal(json_string_value(json_object_get(t->up[0].payload, "chargePointVendor")),
                        "Acme");
    assert_string_equal(status_at(t, 1), "Preparing");
    assert_string_equal(t->up[2].action, "StartTransaction");
    assert_int_equal(json_integer_value(json_object_get(t->up[2].payload, "meterStart")), 100);
    assert_string_equal(t->up[3].action, "MeterValues");
    assert_int_equal(json_integer_value(json_object_get(t->up[3].payload, "transactionId")), 777);
    assert_string_equal(t->up[4].action, "StopTransaction");
    assert_int_equal(json_integer_value(json_object_get(t->up[4].payload, "transactionId")), 777);
    assert_int_equal(json_integer_value(json_object_get(t->up[4].payload, "meterStop")), 700);
    /* Numbers go on increasing: the calls from before the restart keep theirs. */
    assert_true(seq_of(&t->up[1]) < seq_of(&t->up[2]) && seq_of(&t->up[3]) < 5000);
    assert_true(seq_of(&t->up[4]) >= 5000);
    assert_null(strstr(t->reasons, "unknown_tx"));
    assert_int_equal(t->kept->n_calls, 0);
    assert_int_equal(t->kept->n_tx, 0);
    teardown_h(t);
}

/* A restart with a call in flight and a transaction the CSMS knows: the call goes again under
 * the same message id, and under the CSMS's transaction id, which the restart did not lose. */
static void test_restart_with_call_in_flight(void **state)
{
    (void)state;
    h *t = setup_h();
    char local[PW_OCPP_TXID_LEN];
    booted_with_tx(t, local);
    assert_int_equal(t->kept->n_tx, 1);
    assert_int_equal(t->kept->n_calls, 0);
    meter_call(t, local, 2000);
    char flight[PW_OCPP_ID_LEN];
    pw_strlcpy(flight, last_up(t)->id, sizeof flight);
    restart(t, 9000);
    assert_string_equal(pw_ocpp_relay_csms_tx(t->r, local), "777");
    size_t before = t->n_up;
    pw_ocpp_relay_upstream(t->r, true, t->now);
    assert_string_equal(last_up(t)->action, "BootNotification");
    csms_answers(t);
    assert_string_equal(last_up(t)->action, "MeterValues");
    assert_string_equal(last_up(t)->id, flight);
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "transactionId")),
                     777);
    csms_answers(t);
    stop_call(t, local, 2500);
    assert_int_equal(json_integer_value(json_object_get(last_up(t)->payload, "transactionId")),
                     777);
    csms_answers(t);
    assert_int_equal(t->n_up - before, 3);
    assert_int_equal(t->kept->n_calls, 0);
    assert_int_equal(t->kept->n_tx, 0);
    teardown_h(t);
}

/* What comes back from the file is checked like what comes from the network: a bad record is
 * left out, says why, and changes nothing. */
static void test_restore_refuses_bad_records(void **state)
{
    (void)state;
    h *t = setup_h();
    const pw_ocpp_relay_keep bad[] = {
        {.kind = PW_OCPP_KEEP_CALL, .seq = 1, .action = "Reset", .payload = "{}"},
        {.kind = PW_OCPP_KEEP_CALL, .seq = 2, .action = "MeterValues", .payload = "not json"},
        {.kind = PW_OCPP_KEEP_CALL,
         .seq = 3,
         .action = "StatusNotification",
         .payload = "{\"connectorId\":1}"},
        {.kind = PW_OCPP_KEEP_CALL, .seq = 0, .action = "Heartbeat", .payload = "{}"},
        {.kind = PW_OCPP_KEEP_CALL,
         .seq = 4,
         .action = "BootNotification",
         .payload = "{\"chargePointVendor\":\"A\",\"chargePointModel\":\"B\"}"},
        {.kind = PW_OCPP_KEEP_CALL, .seq = 5, .action = NULL, .payload = "{}"},
        {.kind = PW_OCPP_KEEP_BOOT, .payload = "[]"},
        {.kind = PW_OCPP_KEEP_TX, .local_tx = "", .csms_tx = "7"},
        {.kind = PW_OCPP_KEEP_TX, .local_tx = "1", .csms_tx = "123456789012345678901234567"},
        {.kind = PW_OCPP_KEEP_DONE, .seq = 1},
        {.kind = (enum pw_ocpp_relay_keep_kind)99},
    };
    for (size_t i = 0; i < PW_ARRAY_LEN(bad); i++)
        assert_int_equal(pw_ocpp_relay_restore(t->r, &bad[i]), -1);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 0);
    assert_int_equal(t->kept->n_records, 0);
    assert_non_null(strstr(t->reasons, "restore"));
    assert_int_equal(pw_ocpp_relay_restore(t->r, &(pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_CALL,
                                                                       .seq = 6,
                                                                       .action = "Heartbeat",
                                                                       .payload = "{}"}),
                     0);
    assert_int_equal(pw_ocpp_relay_stats_get(t->r)->queued, 1);
    pw_ocpp_relay_upstream(t->r, true, t->now); /* no boot kept: straight on */
    assert_string_equal(last_up(t)->action, "Heartbeat");
    assert_string_equal(last_up(t)->id, "pw-6");
    teardown_h(t);
}

/* How many answers the charge point got to its call id, and the status of the last. */
static size_t answers_to(h *t, const char *id, const char **status)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_cp; i++)
        if (t->cp_in[i].kind == PW_OCPP_RESULT && strcmp(t->cp_in[i].id, id) == 0) {
            n++;
            *status = json_string_value(
                json_object_get(json_object_get(t->cp_in[i].payload, "idTagInfo"), "status"));
        }
    return n;
}

static const char *authorize_call(h *t, const char *tag)
{
    return cp_call(t, "Authorize", json_pack("{s:s}", "idTag", tag));
}

static void csms_verdict(h *t, const char *status)
{
    char id[PW_OCPP_ID_LEN];
    assert_string_equal(last_up(t)->action, "Authorize");
    pw_strlcpy(id, last_up(t)->id, sizeof id);
    csms_answer(t, id, json_pack("{s:{s:s}}", "idTagInfo", "status", status));
}

/* authorize "csms": the CSMS's verdict reaches the charge point when it comes in time; late,
 * with the link down, or the CSMS failing, phasewise's own answer does; verdicts are
 * remembered for the StartTransaction that follows. */
static void test_authorize_by_csms(void **state)
{
    (void)state;
    h *t = setup_h();
    pw_ocpp_relay_free(t->r);
    t->authorize_csms = true;
    new_relay(t, 0);
    cp_call(t, "BootNotification", boot_payload());
    pw_ocpp_relay_upstream(t->r, true, t->now);
    csms_drain(t);
    const char *status = NULL;
    char id[16];
    /* In time: the CSMS's Invalid, and only it. */
    pw_strlcpy(id, authorize_call(t, "CARD-1"), sizeof id);
    assert_int_equal(answers_to(t, id, &status), 0); /* waits for the CSMS */
    csms_verdict(t, "Invalid");
    assert_int_equal(answers_to(t, id, &status), 1);
    assert_string_equal(status, "Invalid");
    enum pw_ocpp_answer v;
    assert_true(pw_ocpp_relay_verdict(t->r, "CARD-1", t->now, &v));
    assert_int_equal(v, PW_OCPP_INVALID);
    assert_false(pw_ocpp_relay_verdict(t->r, "CARD-2", t->now, &v));
    /* Late: phasewise's answer after the wait; the CSMS's later verdict is remembered, not
     * sent as a second answer. */
    pw_strlcpy(id, authorize_call(t, "CARD-2"), sizeof id);
    assert_true(pw_ocpp_relay_next_deadline(t->r) <= t->now + 5000);
    t->now += 5000;
    pw_ocpp_relay_poll(t->r, t->now, WALL0 + (int64_t)t->now);
    assert_int_equal(answers_to(t, id, &status), 1);
    assert_string_equal(status, "Accepted");
    assert_non_null(strstr(t->reasons, "authorize_late"));
    csms_verdict(t, "Blocked");
    assert_int_equal(answers_to(t, id, &status), 1);
    assert_true(pw_ocpp_relay_verdict(t->r, "CARD-2", t->now, &v));
    assert_int_equal(v, PW_OCPP_BLOCKED);
    /* The link goes while one waits: answered at once. */
    pw_strlcpy(id, authorize_call(t, "CARD-3"), sizeof id);
    pw_ocpp_relay_upstream(t->r, false, t->now);
    assert_int_equal(answers_to(t, id, &status), 1);
    assert_string_equal(status, "Accepted");
    /* Down: phasewise's conversation answers (LOCAL); the call still goes up later. */
    pw_strlcpy(id, authorize_call(t, "CARD-4"), sizeof id);
    assert_int_equal(answers_to(t, id, &status), 1);
    /* A verdict is used for an hour. */
    assert_false(pw_ocpp_relay_verdict(t->r, "CARD-1", t->now + 3600000, &v));
    teardown_h(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_made_while_down_go_up_in_order),
        cmocka_unit_test(test_queue_bound),
        cmocka_unit_test(test_boot_pending_is_retried),
        cmocka_unit_test(test_transaction_ids_mapped),
        cmocka_unit_test(test_meter_values_wait_for_the_start_answer),
        cmocka_unit_test(test_csms_calls_down_and_answers_up),
        cmocka_unit_test(test_profiles_become_caps),
        cmocka_unit_test(test_profile_periods),
        cmocka_unit_test(test_schedules_followed),
        cmocka_unit_test(test_relative_origins),
        cmocka_unit_test(test_charge_point_max_split),
        cmocka_unit_test(test_dump_load_round_trip),
        cmocka_unit_test(test_dump_load_malformed),
        cmocka_unit_test(test_bad_csms_frames),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_transaction_while_down),
        cmocka_unit_test(test_stop_in_flight_sent_again),
        cmocka_unit_test(test_queue_survives_restart),
        cmocka_unit_test(test_restart_with_call_in_flight),
        cmocka_unit_test(test_restore_refuses_bad_records),
        cmocka_unit_test(test_authorize_by_csms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
