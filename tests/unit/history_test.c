/* Tests of the history batching (server/history.c) when the database fails: at shutdown,
 * pw_history_close writes both the rows a failed write left behind and the rows collected after
 * it, each exactly once (review defect D4), and a database that keeps failing costs those rows
 * but never a hang, a crash or a leak. Write faults come from the fault VFS (store_fault_vfs.c).
 * Also: a core's session reaches its row with its ref and RFID tag. */
#include "app_int.h"
#include "pw_store.h"
#include "pw_util.h"
#include "store_fault_vfs.h"
#include "store_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define T0    1763769600000LL
#define ROUND 5 /* events added per round */

typedef struct fixture {
    char dir[256];
    char path[300];
    pw_store *s;
    uv_loop_t loop;
} fixture;

static int group_setup(void **state)
{
    (void)state;
    return store_fault_vfs_register();
}

static int group_teardown(void **state)
{
    (void)state;
    store_fault_vfs_unregister();
    return 0;
}

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof(*f));
    char err[512];
    store_faults_clear();
    st_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
    if (pw_store_open(&f->s, f->path, err, sizeof(err))) {
        print_error("%s\n", err);
        return -1;
    }
    if (uv_loop_init(&f->loop) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_faults_clear();
    pw_store_close(f->s);
    st_rmdir(f->dir);
    free(f);
    return 0;
}

static void event_fields(int i, char *subject, size_t subject_size, char *detail,
                         size_t detail_size)
{
    snprintf(subject, subject_size, "c%03d", i);
    snprintf(detail, detail_size, "event %d of the test", i);
}

/* Adds events [first, first + n), one second apart. */
static void add_events(pw_history *h, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char subject[32], detail[64];
        event_fields(i, subject, sizeof(subject), detail, sizeof(detail));
        pw_history_event(h, T0 + i * 1000LL, "test_event", subject, detail);
    }
}

/* Checks through a read connection that the database holds events [0, n), each exactly once and
 * with its kind, subject and detail, and nothing else. */
static void expect_events(const fixture *f, int n)
{
    pw_store_reader *r = NULL;
    char err[512];
    assert_int_equal(pw_store_reader_open(&r, f->path, err, sizeof(err)), 0);
    pw_store_event *rows = NULL;
    size_t count = 0;
    assert_int_equal(
        pw_store_query_events(r, T0 - 3600000LL, T0 + 3600000LL, NULL, NULL, 0, &rows, &count), 0);
    assert_int_equal(count, n);
    for (int i = 0; i < n; i++) {
        char subject[32], detail[64];
        event_fields(i, subject, sizeof(subject), detail, sizeof(detail));
        int seen = 0;
        for (size_t k = 0; k < count; k++) {
            if (rows[k].ts_ms != T0 + i * 1000LL)
                continue;
            seen++;
            assert_string_equal(rows[k].kind, "test_event");
            assert_string_equal(rows[k].subject, subject);
            assert_string_equal(rows[k].detail, detail);
        }
        assert_int_equal(seen, 1);
    }
    free(rows);
    pw_store_reader_close(r);
}

/* Adds a round of events, flushes them into a write that fails with an I/O error and runs the
 * loop until the worker is done; then adds a second round, which waits in the other batch. */
static void fail_one_write(fixture *f, pw_history *h)
{
    store_faults.eio = 1; /* the file system went read-only under us */
    add_events(h, 0, ROUND);
    pw_history_flush(h);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_string_not_equal(pw_history_error(h), "");
    assert_non_null(strstr(pw_history_error(h), "I/O"));
    const pw_history_stats *st = pw_history_stats_get(h);
    assert_true(st->errors >= 1);
    assert_int_equal(st->rows_written, 0);
    add_events(h, ROUND, ROUND);
}

/* D4: the rows of the failed write and the rows collected after it both reach the database when
 * the writes work again by shutdown. */
static void close_writes_failed_and_pending_rows(void **state)
{
    fixture *f = *state;
    pw_history *h = pw_history_new(&f->loop, f->s);
    fail_one_write(f, h);
    store_faults.eio = 0; /* remounted read-write */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    pw_history_close(h);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    expect_events(f, 2 * ROUND);
}

/* A database that refuses every write: close tries each batch a bounded number of times, writes
 * nothing, logs the lost rows and returns. */
static void close_on_failing_database_writes_nothing(void **state)
{
    fixture *f = *state;
    pw_history *h = pw_history_new(&f->loop, f->s);
    fail_one_write(f, h);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    pw_history_close(h);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    expect_events(f, 0); /* read with the fault still in force */
}

/* The core's session as the sink hands it over: the row keeps its ref and RFID tag, a later
 * save without them does not erase them, and an unknown register is stored as 0. */
static void session_rows_carry_ref_and_tag(void **state)
{
    fixture *f = *state;
    pw_history *h = pw_history_new(&f->loop, f->s);
    pw_ctl_session s = {.start_ms = T0,
                        .register_start_wh = 1000,
                        .register_wh = 1800,
                        .peak_a = 15.5,
                        .ref = "4711",
                        .id_tag = "04A2B3C4D5E6F7A8B9C0"};
    pw_history_session(h, "a01", &s);
    pw_history_flush(h);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    pw_ctl_session later = {.start_ms = T0,
                            .end_ms = T0 + 60000,
                            .register_start_wh = 1000,
                            .register_wh = PW_CTL_ENERGY_UNKNOWN,
                            .peak_a = 15.5};
    pw_history_session(h, "a01", &later);
    pw_history_close(h);
    assert_int_equal(uv_loop_close(&f->loop), 0);

    pw_store_reader *r = NULL;
    char err[512];
    assert_int_equal(pw_store_reader_open(&r, f->path, err, sizeof(err)), 0);
    pw_store_session_filter by_tag = {.open = -1, .id_tag = "04A2B3C4D5E6F7A8B9C0"};
    pw_store_session_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(pw_store_query_sessions(r, &by_tag, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].s.charger, "a01");
    assert_string_equal(rows[0].s.ref, "4711");
    assert_string_equal(rows[0].s.id_tag, "04A2B3C4D5E6F7A8B9C0");
    assert_int_equal(rows[0].s.end_ms, T0 + 60000);
    assert_int_equal(rows[0].s.register_wh, 0);
    free(rows);
    pw_store_reader_close(r);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(close_writes_failed_and_pending_rows),
        T(close_on_failing_database_writes_nothing),
        T(session_rows_carry_ref_and_tag),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
