/* The local controller's keeper (transport/ocpp_keep.c) on a real loop and a real database:
 * changes are written in order by a worker and read back into a new relay after a "restart"
 * (the keeper closed and opened again), which then sends the kept boot and calls in their order
 * under their own numbers; what waits when the keeper closes is written before it goes; a batch
 * that cannot be written lets the frames waiting for it go, is counted, and is written by a
 * later try once the database works again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocpp_keep.h"
#include "pw_store.h"
#include "pw_util.h"
#include "store_testutil.h"

#define BOOT "{\"chargePointVendor\":\"Acme\",\"chargePointModel\":\"W2\"}"
#define START                                                                                      \
    "{\"connectorId\":1,\"idTag\":\"T1\",\"meterStart\":5,\"timestamp\":\"2026-12-06T04:00:00Z\"}"

typedef struct fixture {
    char dir[256], path[300];
    pw_store *store;
    uv_loop_t loop;
    pw_ocpp_keep *k;
    unsigned written_calls;
    char up[8][200]; /* frames the relay sent the CSMS */
    size_t n_up;
} fixture;

static void on_written(void *ud)
{
    ((fixture *)ud)->written_calls++;
}

static void open_keep(fixture *f)
{
    char err[256] = "";
    f->k = pw_ocpp_keep_open(&f->loop, f->path, on_written, f, err, sizeof err);
    if (!f->k)
        fail_msg("keep: %s", err);
}

/* Runs the loop until every change queued is attempted (at most 10 s). */
static void settle(fixture *f)
{
    for (int i = 0; i < 1000 && pw_ocpp_keep_written(f->k) < pw_ocpp_keep_queued(f->k); i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_sleep(10);
    }
    assert_int_equal(pw_ocpp_keep_written(f->k), pw_ocpp_keep_queued(f->k));
}

static void close_keep(fixture *f)
{
    pw_ocpp_keep_close(f->k);
    f->k = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until it has written what waits and freed itself */
}

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof *f);
    st_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/history.db", f->dir);
    char err[256];
    assert_int_equal(pw_store_open(&f->store, f->path, err, sizeof err), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_keep(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->k)
        close_keep(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pw_store_close(f->store);
    st_rmdir(f->dir);
    free(f);
    return 0;
}

static void add(fixture *f, pw_ocpp_relay_keep c)
{
    pw_ocpp_keep_add(f->k, "CP-1", &c, INT64_C(1790000000000));
}

static void call(fixture *f, uint64_t seq, const char *action, const char *payload)
{
    add(f, (pw_ocpp_relay_keep){
               .kind = PW_OCPP_KEEP_CALL, .seq = seq, .action = action, .payload = payload});
}

static void to_csms(void *ud, const char *text, size_t len)
{
    fixture *f = ud;
    assert_true(f->n_up < 8 && len < sizeof f->up[0]);
    memcpy(f->up[f->n_up], text, len);
    f->up[f->n_up++][len] = '\0';
}

static void to_cp(void *ud, const char *text, size_t len)
{
    (void)ud, (void)text, (void)len;
}

/* A relay as phasewise makes it after a restart, given back what was kept of CP-1. */
static pw_ocpp_relay *restored_relay(fixture *f, int *queued)
{
    pw_ocpp_relay_opts o;
    pw_ocpp_relay_default_opts(&o);
    o.n_connectors = 1;
    o.connectors[0] = 1;
    o.max_a[0] = 16;
    o.first_seq = 1000;
    pw_ocpp_relay *r =
        pw_ocpp_relay_new(&o, &(pw_ocpp_relay_sink){.ud = f, .to_cp = to_cp, .to_csms = to_csms});
    char err[256] = "";
    *queued = pw_ocpp_keep_restore(f->k, "CP-1", r, INT64_C(1790000000000), err, sizeof err);
    return r;
}

static void written_in_order_and_restored(void **state)
{
    fixture *f = *state;
    add(f, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_BOOT, .payload = BOOT});
    call(f, 7, "StartTransaction", START);
    add(f, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_CALL_TX, .seq = 7, .local_tx = "41"});
    call(f, 8, "Heartbeat", "{}");
    call(f, 9, "Heartbeat", "{}");
    add(f, (pw_ocpp_relay_keep){.kind = PW_OCPP_KEEP_DONE, .seq = 8});
    settle(f);
    assert_true(f->written_calls >= 1);
    pw_ocpp_keep_stats st;
    pw_ocpp_keep_stats_get(f->k, &st);
    assert_int_equal(st.written, 6);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.failures, 0);
    close_keep(f);
    open_keep(f); /* the restart */
    int queued = -1;
    pw_ocpp_relay *r = restored_relay(f, &queued);
    assert_int_equal(queued, 2);
    pw_ocpp_relay_upstream(r, true, 1000);
    assert_int_equal(f->n_up, 1);
    assert_non_null(strstr(f->up[0], "\"BootNotification\""));
    char boot_id[64];
    assert_int_equal(sscanf(f->up[0], "[2,\"%63[^\"]\"", boot_id), 1);
    char answer[160];
    snprintf(answer, sizeof answer,
             "[3,\"%s\",{\"status\":\"Accepted\",\"currentTime\":\"2026-12-06T04:00:00Z\","
             "\"interval\":300}]",
             boot_id);
    pw_ocpp_relay_from_csms(r, answer, strlen(answer), 1000, 0);
    assert_int_equal(f->n_up, 2);
    assert_non_null(strstr(f->up[1], "[2,\"pw-7\",\"StartTransaction\""));
    snprintf(answer, sizeof answer,
             "[3,\"pw-7\",{\"idTagInfo\":{\"status\":\"Accepted\"},\"transactionId\":5}]");
    pw_ocpp_relay_from_csms(r, answer, strlen(answer), 1000, 0);
    assert_int_equal(f->n_up, 3);
    assert_non_null(strstr(f->up[2], "[2,\"pw-9\",\"Heartbeat\""));
    assert_string_equal(pw_ocpp_relay_csms_tx(r, "41"), "5"); /* the start's local id came back */
    pw_ocpp_relay_free(r);
}

static void close_writes_what_waits(void **state)
{
    fixture *f = *state;
    for (uint64_t s = 1; s <= 50; s++)
        call(f, s, "Heartbeat", "{}");
    close_keep(f); /* at once, with a batch running or not */
    open_keep(f);
    int queued = -1;
    pw_ocpp_relay *r = restored_relay(f, &queued);
    assert_int_equal(queued, 50);
    pw_ocpp_relay_free(r);
}

static void failed_batch_tried_again(void **state)
{
    fixture *f = *state;
    sqlite3 *db = st_sql_open(f->path);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE ocpp_queue", NULL, NULL, NULL), SQLITE_OK);
    call(f, 1, "Heartbeat", "{}");
    call(f, 2, "Heartbeat", "{}");
    settle(f); /* attempted: frames waiting for it may go */
    pw_ocpp_keep_stats st;
    pw_ocpp_keep_stats_get(f->k, &st);
    assert_true(st.failures >= 1);
    assert_int_equal(st.written, 0);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE ocpp_queue (cp TEXT NOT NULL, seq INTEGER NOT NULL,"
                                  " ts INTEGER NOT NULL, connector INTEGER NOT NULL,"
                                  " local_tx TEXT NOT NULL DEFAULT '', action TEXT NOT NULL,"
                                  " payload TEXT NOT NULL, PRIMARY KEY (cp, seq)) WITHOUT ROWID",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    for (int i = 0; i < 300 && st.waiting; i++) { /* the retry comes a second later */
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_sleep(10);
        pw_ocpp_keep_stats_get(f->k, &st);
    }
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.written, 2);
    close_keep(f);
    open_keep(f);
    int queued = -1;
    pw_ocpp_relay *r = restored_relay(f, &queued);
    assert_int_equal(queued, 2);
    pw_ocpp_relay_free(r);
}

/* The CSMS's profiles come back after the calls and pairs; a kept value that is not a dump is
 * left out and deleted. */
static void profiles_restored(void **state)
{
    fixture *f = *state;
    pw_ocpp_keep_value(f->k, "CP-1", "profiles",
                       "[{\"connectorId\":0,\"origin\":1790000000000,\"csChargingProfiles\":"
                       "{\"chargingProfileId\":3,\"stackLevel\":0,\"chargingProfilePurpose\":"
                       "\"ChargePointMaxProfile\",\"chargingProfileKind\":\"Relative\","
                       "\"chargingSchedule\":{\"chargingRateUnit\":\"A\","
                       "\"chargingSchedulePeriod\":[{\"startPeriod\":0,\"limit\":10}]}}}]",
                       0);
    pw_ocpp_keep_value(f->k, "CP-2", "profiles", "not a dump", 0);
    settle(f);
    close_keep(f);
    open_keep(f);
    int queued = -1;
    pw_ocpp_relay *r = restored_relay(f, &queued);
    assert_int_equal(queued, 0);
    assert_true(pw_ocpp_relay_cap(r, 1) == 10.0);
    pw_ocpp_relay_free(r);
    pw_ocpp_relay_opts o;
    pw_ocpp_relay_default_opts(&o);
    r = pw_ocpp_relay_new(&o, &(pw_ocpp_relay_sink){.ud = f, .to_cp = to_cp, .to_csms = to_csms});
    char err[256] = "";
    assert_int_equal(pw_ocpp_keep_restore(f->k, "CP-2", r, 0, err, sizeof err), 0);
    settle(f); /* the bad value is deleted */
    pw_ocpp_relay_free(r);
    sqlite3 *db = st_sql_open(f->path);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM ocpp_kept WHERE cp = 'CP-2'"), 0);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM ocpp_kept WHERE cp = 'CP-1'"), 1);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(written_in_order_and_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(close_writes_what_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_batch_tried_again, setup, teardown),
        cmocka_unit_test_setup_teardown(profiles_restored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
