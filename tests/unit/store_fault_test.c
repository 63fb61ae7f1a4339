/* Storage faults: a full disk, a file system gone read-only (every write an I/O error) and a
 * file that opens read-only. pw_store_write and pw_store_maintain report the error and write
 * nothing half-way, the file stays sound, and writing resumes once the fault is gone. Faults come
 * from a small SQLite VFS that wraps the default one (store_fault_vfs.c). */
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
#include "store_internal.h"
#include "store_fault_vfs.h"
#include "store_testutil.h"

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

/* ---- fixture ---- */

typedef struct fixture {
    char dir[256];
    char path[300];
    pw_store *s;
} fixture;

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

#define T0 1763769600000LL

/* A tick of 200 chargers at second `tick`, plus an event and a session update. */
static void fill_tick(pw_store_batch *b, int tick)
{
    pw_store_batch_clear(b);
    for (int c = 0; c < 200; c++) {
        pw_store_charger_sample s = {.ts_ms = T0 + tick * 1000LL,
                                     .state = 2,
                                     .phases = 3,
                                     .limit_a = 16.0f,
                                     .current_a = {(float)(tick % 160) / 10}};
        snprintf(s.charger, sizeof(s.charger), "c%03d", c);
        pw_store_batch_add_charger(b, &s);
    }
    pw_store_event e = {.ts_ms = T0 + tick * 1000LL, .kind = "tick"};
    snprintf(e.detail, sizeof(e.detail), "%d", tick);
    pw_store_batch_add_event(b, &e);
    pw_store_session se = {.charger = "c000", .start_ms = T0, .register_wh = (uint64_t)tick};
    pw_store_batch_add_session(b, &se);
}

/* Opens a plain connection (through the fault VFS, which is the default now) and checks that the
 * file is sound and holds exactly the ticks [0, ticks). */
static void expect_ticks(fixture *f, int ticks)
{
    sqlite3 *db = st_sql_open(f->path);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM pragma_integrity_check "
                                    "WHERE integrity_check <> 'ok'"),
                     0);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM event"), ticks);
    assert_int_equal(st_sql_int(db, "SELECT (SELECT count(*) FROM tail) + "
                                    "(SELECT coalesce(sum(n), 0) FROM block WHERE tier = 0)"),
                     200 * ticks);
    assert_int_equal(st_sql_int(db, "SELECT coalesce(max(register_wh), -1) FROM session"),
                     ticks - 1);
    sqlite3_close(db);
}

/* ---- tests ---- */

static void full_disk_fails_cleanly_and_resumes(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    int tick = 0;
    for (; tick < 5; tick++) {
        fill_tick(b, tick);
        assert_int_equal(pw_store_write(f->s, b), 0);
    }
    /* The disk fills up: some more ticks fit, then writes fail. */
    store_faults.quota = 256 * 1024;
    int rc = 0;
    for (; tick < 10000 && rc == 0; tick++) {
        fill_tick(b, tick);
        rc = pw_store_write(f->s, b);
    }
    tick--; /* the one that failed */
    assert_int_equal(rc, PW_STORE_E_WRITE);
    assert_true(tick > 5);
    assert_non_null(strstr(pw_store_errmsg(f->s), "full"));
    /* Retrying on a full disk keeps failing, and maintenance fails the same clean way. */
    assert_int_equal(pw_store_write(f->s, b), PW_STORE_E_WRITE);
    store_faults.quota = 0;
    pw_store_policy p;
    pw_store_policy_default(&p);
    rc = pw_store_maintain(f->s, T0 + 3600 * 1000, &p);
    assert_true(rc == PW_STORE_E_WRITE || rc >= 0); /* may find nothing needing new space */
    expect_ticks(f, tick);

    /* Space again: the same batch goes through, and so does everything after it. */
    store_faults.quota = -1;
    assert_int_equal(pw_store_write(f->s, b), 0);
    assert_string_equal(pw_store_errmsg(f->s), "");
    for (int i = 0; i < 3; i++) {
        fill_tick(b, ++tick);
        assert_int_equal(pw_store_write(f->s, b), 0);
    }
    while ((rc = pw_store_maintain(f->s, T0 + 3600 * 1000, &p)) == 1)
        ;
    assert_int_equal(rc, 0);
    expect_ticks(f, tick + 1);
    pw_store_batch_free(b);
}

static void io_errors_fail_cleanly_and_resume(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    int tick = 0;
    for (; tick < 3; tick++) {
        fill_tick(b, tick);
        assert_int_equal(pw_store_write(f->s, b), 0);
    }
    store_faults.eio = 1; /* the file system went read-only under us */
    for (int i = 0; i < 3; i++) {
        fill_tick(b, tick);
        assert_int_equal(pw_store_write(f->s, b), PW_STORE_E_WRITE);
        assert_non_null(strstr(pw_store_errmsg(f->s), "I/O"));
    }
    pw_store_policy p;
    pw_store_policy_default(&p);
    store_faults.eio = 0;
    expect_ticks(f, tick);
    store_faults.eio = 1;
    assert_int_equal(pw_store_maintain(f->s, T0 + 3600 * 1000, &p), PW_STORE_E_WRITE);

    store_faults.eio = 0; /* remounted read-write */
    for (int i = 0; i < 3; i++, tick++) {
        fill_tick(b, tick);
        assert_int_equal(pw_store_write(f->s, b), 0);
    }
    int rc;
    while ((rc = pw_store_maintain(f->s, T0 + 3600 * 1000, &p)) == 1)
        ;
    assert_int_equal(rc, 0);
    expect_ticks(f, tick);
    pw_store_batch_free(b);
}

/* Closing while the disk is full cannot checkpoint; nothing committed is lost for it. */
static void close_on_full_disk_loses_nothing(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    for (int tick = 0; tick < 50; tick++) {
        fill_tick(b, tick);
        assert_int_equal(pw_store_write(f->s, b), 0);
    }
    pw_store_batch_free(b);
    store_faults.quota = 0;
    pw_store_close(f->s);
    store_faults.quota = -1;
    char err[512];
    assert_int_equal(pw_store_open(&f->s, f->path, err, sizeof(err)), 0);
    expect_ticks(f, 50);
}

static void read_only_file_is_refused_until_writable(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    fill_tick(b, 0);
    assert_int_equal(pw_store_write(f->s, b), 0);
    pw_store_close(f->s);
    f->s = NULL;

    store_faults.readonly = 1;
    char err[512];
    assert_int_equal(pw_store_open(&f->s, f->path, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_null(f->s);
    assert_non_null(strstr(err, "read-only"));
    store_faults.readonly = 0;
    assert_int_equal(pw_store_open(&f->s, f->path, err, sizeof(err)), 0);
    fill_tick(b, 1);
    assert_int_equal(pw_store_write(f->s, b), 0);
    expect_ticks(f, 2);
    pw_store_batch_free(b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(full_disk_fails_cleanly_and_resumes),
        T(io_errors_fail_cleanly_and_resume),
        T(close_on_full_disk_loses_nothing),
        T(read_only_file_is_refused_until_writable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
