/* The OCPP local controller's relay state in SQLite (storage/ocppq.c): calls come back per charge
 * point in the relay's order, a call goes only with its DONE, what was not done survives a
 * restart (reopening the file) with the transaction id it got, transaction pairs and kept values
 * are set, replaced and deleted, and a batch goes whole or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_store.h"
#include "pw_util.h"
#include "store_testutil.h"

#define T0 1700000000000LL

typedef struct fixture {
    char dir[256];
    char path[300];
    pw_store *store;
    pw_store_ocppq *q;
} fixture;

static void open_both(fixture *f)
{
    char err[512] = "";
    assert_int_equal(pw_store_open(&f->store, f->path, err, sizeof(err)), 0);
    int rc = pw_store_ocppq_open(&f->q, f->path, err, sizeof(err));
    if (rc)
        print_message("ocppq open: %s\n", err);
    assert_int_equal(rc, 0);
}

static void close_both(fixture *f)
{
    pw_store_ocppq_close(f->q);
    pw_store_close(f->store);
    f->q = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof(*f));
    st_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
    open_both(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_both(f);
    st_rmdir(f->dir);
    free(f);
    return 0;
}

static pw_store_ocppq_op op(enum pw_store_ocppq_kind kind, const char *cp, int64_t seq)
{
    pw_store_ocppq_op o = {.kind = kind, .seq = seq, .ts_ms = T0 + seq, .connector = 1};
    pw_strlcpy(o.cp, cp, sizeof(o.cp));
    return o;
}

/* Applies one call of cp at seq whose payload names seq. */
static void call(fixture *f, const char *cp, const char *action, int64_t seq)
{
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"n\":%lld}", (long long)seq);
    pw_store_ocppq_op o = op(PW_STORE_OCPPQ_CALL, cp, seq);
    pw_strlcpy(o.action, action, sizeof(o.action));
    o.text = payload;
    assert_int_equal(pw_store_ocppq_apply(f->q, &o, 1), 0);
}

static void apply1(fixture *f, pw_store_ocppq_op o)
{
    assert_int_equal(pw_store_ocppq_apply(f->q, &o, 1), 0);
}

/* The seq of every call of cp kept, in order, into out; returns how many. Checks each payload
 * is the one written with it. */
static size_t calls(fixture *f, const char *cp, int64_t *out, size_t max)
{
    pw_store_ocppq_saved s;
    assert_int_equal(pw_store_ocppq_load(f->q, cp, &s), 0);
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.ops[i].kind != PW_STORE_OCPPQ_CALL)
            continue;
        assert_true(n < max);
        assert_string_equal(s.ops[i].cp, cp);
        long long p = -1;
        assert_int_equal(sscanf(s.ops[i].text, "{\"n\":%lld}", &p), 1);
        assert_int_equal(p, s.ops[i].seq);
        out[n++] = s.ops[i].seq;
    }
    pw_store_ocppq_saved_free(&s);
    return n;
}

static void order_per_charge_point(void **state)
{
    fixture *f = *state;
    /* Written out of order across charge points, read back in seq order per charge point. */
    int64_t seqs[] = {30, 11, 10, 31, 12, 29};
    for (size_t i = 0; i < 6; i++)
        call(f, seqs[i] < 20 ? "CP-1" : "CP-2", "MeterValues", seqs[i]);
    int64_t got[16];
    assert_int_equal(calls(f, "CP-1", got, 16), 3);
    assert_int_equal(got[0], 10);
    assert_int_equal(got[1], 11);
    assert_int_equal(got[2], 12);
    assert_int_equal(calls(f, "CP-2", got, 16), 3);
    assert_int_equal(got[0], 29);
    assert_int_equal(got[2], 31);
    assert_int_equal(calls(f, "CP-3", got, 16), 0);
    uint64_t n = 0;
    assert_int_equal(pw_store_ocppq_count(f->q, "CP-2", &n), 0);
    assert_int_equal(n, 3);
}

/* A call goes only with its DONE; what was not done is there after a reopen, in order, with the
 * transaction id a StartTransaction got after it was queued. */
static void done_and_restart(void **state)
{
    fixture *f = *state;
    call(f, "CP-1", "StartTransaction", 1);
    call(f, "CP-1", "MeterValues", 2);
    call(f, "CP-1", "StopTransaction", 3);
    call(f, "CP-2", "StatusNotification", 1);
    pw_store_ocppq_op tx = op(PW_STORE_OCPPQ_CALL_TX, "CP-1", 1);
    pw_strlcpy(tx.local_tx, "1700000001", sizeof(tx.local_tx));
    apply1(f, tx);
    apply1(f, op(PW_STORE_OCPPQ_DONE, "CP-1", 2));
    apply1(f, op(PW_STORE_OCPPQ_DONE, "CP-1", 2)); /* gone already: fine */
    apply1(f, op(PW_STORE_OCPPQ_DONE, "CP-1", 9)); /* never there: fine */
    close_both(f);
    open_both(f);
    pw_store_ocppq_saved s;
    assert_int_equal(pw_store_ocppq_load(f->q, "CP-1", &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ops[0].kind, PW_STORE_OCPPQ_CALL);
    assert_int_equal(s.ops[0].seq, 1);
    assert_string_equal(s.ops[0].action, "StartTransaction");
    assert_string_equal(s.ops[0].local_tx, "1700000001");
    assert_int_equal(s.ops[0].ts_ms, T0 + 1);
    assert_int_equal(s.ops[0].connector, 1);
    assert_int_equal(s.ops[1].seq, 3);
    assert_string_equal(s.ops[1].action, "StopTransaction");
    assert_string_equal(s.ops[1].local_tx, "");
    pw_store_ocppq_saved_free(&s);
    int64_t got[4];
    assert_int_equal(calls(f, "CP-2", got, 4), 1);
}

/* Transaction pairs and kept values: set, replaced, deleted, and read before the calls. */
static void pairs_and_kept(void **state)
{
    fixture *f = *state;
    call(f, "CP-1", "MeterValues", 5);
    pw_store_ocppq_op t = op(PW_STORE_OCPPQ_TX, "CP-1", 0);
    pw_strlcpy(t.local_tx, "100", sizeof(t.local_tx));
    pw_strlcpy(t.csms_tx, "7", sizeof(t.csms_tx));
    t.connector = 2;
    apply1(f, t);
    pw_strlcpy(t.local_tx, "101", sizeof(t.local_tx));
    pw_strlcpy(t.csms_tx, "8", sizeof(t.csms_tx));
    apply1(f, t);
    pw_strlcpy(t.csms_tx, "9", sizeof(t.csms_tx)); /* replaces 101's */
    apply1(f, t);
    pw_store_ocppq_op gone = op(PW_STORE_OCPPQ_TX_DONE, "CP-1", 0);
    pw_strlcpy(gone.local_tx, "100", sizeof(gone.local_tx));
    apply1(f, gone);
    pw_store_ocppq_op k = op(PW_STORE_OCPPQ_KEPT, "CP-1", 0);
    pw_strlcpy(k.action, "boot", sizeof(k.action));
    k.text = "{\"chargePointVendor\":\"A\",\"chargePointModel\":\"B\"}";
    apply1(f, k);
    pw_strlcpy(k.action, "profiles", sizeof(k.action));
    k.text = "[1]";
    apply1(f, k);
    k.text = ""; /* deleted */
    apply1(f, k);
    close_both(f);
    open_both(f);
    pw_store_ocppq_saved s;
    assert_int_equal(pw_store_ocppq_load(f->q, "CP-1", &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ops[0].kind, PW_STORE_OCPPQ_KEPT);
    assert_string_equal(s.ops[0].action, "boot");
    assert_string_equal(s.ops[0].text, "{\"chargePointVendor\":\"A\",\"chargePointModel\":\"B\"}");
    assert_int_equal(s.ops[1].kind, PW_STORE_OCPPQ_TX);
    assert_string_equal(s.ops[1].local_tx, "101");
    assert_string_equal(s.ops[1].csms_tx, "9");
    assert_int_equal(s.ops[1].connector, 2);
    assert_int_equal(s.ops[2].kind, PW_STORE_OCPPQ_CALL);
    assert_int_equal(s.ops[2].seq, 5);
    pw_store_ocppq_saved_free(&s);
    assert_int_equal(pw_store_ocppq_load(f->q, "CP-2", &s), 0);
    assert_int_equal(s.n, 0);
    pw_store_ocppq_saved_free(&s);
}

/* A batch goes whole or not at all: a bad op in the middle leaves the file as it was. */
static void batch_all_or_none(void **state)
{
    fixture *f = *state;
    call(f, "CP-1", "MeterValues", 1);
    pw_store_ocppq_op ops[3] = {op(PW_STORE_OCPPQ_DONE, "CP-1", 1),
                                op((enum pw_store_ocppq_kind)99, "CP-1", 2),
                                op(PW_STORE_OCPPQ_CALL, "CP-1", 3)};
    pw_strlcpy(ops[2].action, "MeterValues", sizeof(ops[2].action));
    ops[2].text = "{\"n\":3}";
    assert_int_equal(pw_store_ocppq_apply(f->q, ops, 3), PW_STORE_E_WRITE);
    assert_true(strlen(pw_store_ocppq_errmsg(f->q)) > 0);
    int64_t got[4];
    assert_int_equal(calls(f, "CP-1", got, 4), 1);
    assert_int_equal(got[0], 1);
    /* The connection works on after the failure. */
    assert_int_equal(pw_store_ocppq_apply(f->q, ops, 1), 0);
    assert_int_equal(calls(f, "CP-1", got, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(order_per_charge_point, setup, teardown),
        cmocka_unit_test_setup_teardown(done_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(pairs_and_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_all_or_none, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
