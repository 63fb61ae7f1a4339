/* Storage faults: a full disk, a file system gone read-only (every write an I/O error) and a
 * file that opens read-only. pw_store_write and pw_store_maintain report the error and write
 * nothing half-way, the file stays sound, and writing resumes once the fault is gone. Faults come
 * from a small SQLite VFS that wraps the default one (SQLite's own seam for this). */
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
#include "store_testutil.h"

/* ---- the fault VFS ---- */

static struct {
    int64_t quota; /* bytes any file may still grow by; < 0 = no limit (a disk with space) */
    int eio;       /* every write and sync fails, as on a file system remounted read-only */
    int readonly;  /* main database files open read-only */
} faults = {.quota = -1};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;

typedef struct fault_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} fault_file;

#define REAL(f) (((fault_file *)(f))->real)

static int f_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int f_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int f_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    if (faults.eio)
        return SQLITE_IOERR_WRITE;
    sqlite3_int64 size = 0;
    int rc = REAL(f)->pMethods->xFileSize(REAL(f), &size);
    if (rc != SQLITE_OK)
        return rc;
    int64_t growth = off + amt > size ? off + amt - size : 0;
    if (faults.quota >= 0) {
        if (growth > faults.quota)
            return SQLITE_FULL;
        faults.quota -= growth;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return faults.eio ? SQLITE_IOERR_TRUNCATE : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
    return faults.eio ? SQLITE_IOERR_FSYNC : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int f_unlock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int f_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, p);
}

static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: WAL needs the shared-memory methods; memory mapping (version 3) stays off. */
static const sqlite3_io_methods fault_io = {
    2,          f_close,       f_read,       f_write,   f_truncate, f_sync,   f_size,
    f_lock,     f_unlock,      f_check_lock, f_control, f_sector,   f_device, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap,  NULL,      NULL,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    fault_file *ff = (fault_file *)file;
    ff->real = (sqlite3_file *)(ff + 1);
    if (faults.readonly && (flags & SQLITE_OPEN_MAIN_DB))
        flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    file->pMethods = rc == SQLITE_OK ? &fault_io : NULL;
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    real_vfs = sqlite3_vfs_find(NULL);
    fault_vfs = *real_vfs;
    fault_vfs.zName = "fault";
    fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
    fault_vfs.xOpen = f_open;
    fault_vfs.pNext = NULL;
    return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sqlite3_vfs_unregister(&fault_vfs);
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
    faults.quota = -1;
    faults.eio = faults.readonly = 0;
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
    faults.quota = -1;
    faults.eio = faults.readonly = 0;
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
    faults.quota = 256 * 1024;
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
    faults.quota = 0;
    pw_store_policy p;
    pw_store_policy_default(&p);
    rc = pw_store_maintain(f->s, T0 + 3600 * 1000, &p);
    assert_true(rc == PW_STORE_E_WRITE || rc >= 0); /* may find nothing needing new space */
    expect_ticks(f, tick);

    /* Space again: the same batch goes through, and so does everything after it. */
    faults.quota = -1;
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
    faults.eio = 1; /* the file system went read-only under us */
    for (int i = 0; i < 3; i++) {
        fill_tick(b, tick);
        assert_int_equal(pw_store_write(f->s, b), PW_STORE_E_WRITE);
        assert_non_null(strstr(pw_store_errmsg(f->s), "I/O"));
    }
    pw_store_policy p;
    pw_store_policy_default(&p);
    faults.eio = 0;
    expect_ticks(f, tick);
    faults.eio = 1;
    assert_int_equal(pw_store_maintain(f->s, T0 + 3600 * 1000, &p), PW_STORE_E_WRITE);

    faults.eio = 0; /* remounted read-write */
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
    faults.quota = 0;
    pw_store_close(f->s);
    faults.quota = -1;
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

    faults.readonly = 1;
    char err[512];
    assert_int_equal(pw_store_open(&f->s, f->path, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_null(f->s);
    assert_non_null(strstr(err, "read-only"));
    faults.readonly = 0;
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
