/* Storage module: opening and migrating (every path from an empty file and from each older
 * schema), refusing files it must not touch, the record codec, and batched writes. */
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

typedef struct fixture {
    char dir[256];
    char path[300];
} fixture;

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof(*f));
    st_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    st_rmdir(f->dir);
    free(f);
    return 0;
}

static pw_store *open_ok(const char *path)
{
    char err[512] = "";
    pw_store *s = NULL;
    int rc = pw_store_open(&s, path, err, sizeof(err));
    if (rc)
        print_message("open failed: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* Decodes the single-record blob of the tail row with the given rowid. */
static store__rec tail_record(sqlite3 *db, int64_t rowid)
{
    sqlite3_stmt *st = NULL;
    store__rec r = {0};
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT ts, v FROM tail WHERE id = ?", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, rowid);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    store__dec d;
    store__dec_init(&d, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                    sqlite3_column_int64(st, 0), PW_STORE__RAW_FIELDS);
    assert_int_equal(store__dec_next(&d, &r), 1);
    store__rec extra;
    assert_int_equal(store__dec_next(&d, &extra), 0);
    sqlite3_finalize(st);
    return r;
}

/* ---- migrations ---- */

/* What a database at schema version v looks like, written with that version's own SQL (never
 * with today's code), and a check that it survived the migration to the latest version. Each
 * new migration step adds an entry, which every_step_has_a_fixture insists on. */
static void check_v1_rows(sqlite3 *db)
{
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM series WHERE kind = 1 AND name = 'a01'"),
                     1);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM event WHERE kind = 'charger_online'"), 1);
    store__rec r = tail_record(db, 1);
    assert_int_equal(r.ts, 1700000000000);
    assert_int_equal(r.v[PW_STORE__F_I1], 1600);
    assert_int_equal(r.v[PW_STORE__F_I2], 0);
    assert_int_equal(r.v[PW_STORE__F_LIMIT], 1600);
    assert_int_equal(r.v[PW_STORE__F_STATE], 2);
    assert_int_equal(r.v[PW_STORE__F_PHASES], 1);
}

/* Today's code reads a series through the reader API: one point per sample here. */
static void check_series_readable(const char *path, int64_t t0, size_t samples)
{
    char err[256];
    pw_store_reader *r = NULL;
    assert_int_equal(pw_store_reader_open(&r, path, err, sizeof(err)), 0);
    pw_store_point *pts;
    size_t n;
    int64_t bucket;
    assert_int_equal(
        pw_store_query_series(r, PW_STORE_CHARGER, "a01", t0, t0 + 60000, 60, &pts, &n, &bucket),
        0);
    assert_int_equal(bucket, 1000);
    assert_int_equal(n, samples);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pts[i].ts_ms, t0 + 1000 * (int64_t)i);
        assert_float_equal(pts[i].current[0].avg, 16.0, 1e-6);
        assert_float_equal(pts[i].limit.max, 16.0, 1e-6);
        assert_int_equal(pts[i].state, 2);
    }
    free(pts);
    pw_store_reader_close(r);
}

static void check_v2_rows(sqlite3 *db)
{
    check_v1_rows(db);
    assert_int_equal(st_sql_int(db, "SELECT register_wh - register_start_wh FROM session"), 7400);
    assert_int_equal(st_sql_int(db, "SELECT limit_ca FROM limit_change"), 1000);
    assert_int_equal(st_sql_int(db, "SELECT value FROM meta WHERE key = 'built.m1'"),
                     1699999200000);
}

/* Rows of a version 2 database. */
static const char v2_rows[] =
    "INSERT INTO series (id, kind, name) VALUES (1, 1, 'a01');"
    "INSERT INTO tail (id, tier, series_id, ts, v)"
    "  VALUES (1, 0, 1, 1700000000000, X'72801980190402');"
    "INSERT INTO event (ts, kind, subject, detail)"
    "  VALUES (1700000000000, 'charger_online', 'a01', '');"
    /* The same sample at +1 s and +2 s: the second record only says "1 s later". */
    "INSERT INTO block (tier, series_id, t0, t1, n, v)"
    "  VALUES (0, 1, 1700000001000, 1700000002000, 2, X'7280198019040201D00F');"
    "INSERT INTO session (charger_id, start_ms, end_ms, register_start_wh, register_wh,"
    "  peak_ca, ref) VALUES (1, 1700000000000, NULL, 1000, 8400, 1600, '');"
    "INSERT INTO limit_change (ts, charger_id, limit_ca, phases, reason, text)"
    "  VALUES (1700000000000, 1, 1000, 3, 'node', 'limited by main, L1');"
    "INSERT INTO meta (key, value) VALUES ('built.m1', 1699999200000);";

/* Sessions and events written before version 5 were real: not simulated once migrated. */
static void check_not_simulated(sqlite3 *db)
{
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM session WHERE simulated = 0"), 1);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM event WHERE simulated = 0"), 1);
}

/* Sessions written before version 4 have no tag once migrated. */
static void check_v3_rows(sqlite3 *db)
{
    check_v2_rows(db);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM session WHERE id_tag = ''"), 1);
    check_not_simulated(db);
}

static void check_v4_rows(sqlite3 *db)
{
    check_v2_rows(db);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM session WHERE id_tag = 'TAG-1'"), 1);
    check_not_simulated(db);
}

/* A version 5 file keeps its simulated marks. */
static void check_v5_rows(sqlite3 *db)
{
    check_v2_rows(db);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM session WHERE simulated = 1"), 1);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM event WHERE simulated = 1"), 1);
}

/* Rows of a version 4 database: the v2 rows, and the session's RFID tag. */
static const char v4_rows[] = "INSERT INTO series (id, kind, name) VALUES (1, 1, 'a01');"
                              "INSERT INTO tail (id, tier, series_id, ts, v)"
                              "  VALUES (1, 0, 1, 1700000000000, X'72801980190402');"
                              "INSERT INTO event (ts, kind, subject, detail)"
                              "  VALUES (1700000000000, 'charger_online', 'a01', '');"
                              "INSERT INTO block (tier, series_id, t0, t1, n, v)"
                              "  VALUES (0, 1, 1700000001000, 1700000002000, 2, "
                              "X'7280198019040201D00F');"
                              "INSERT INTO session (charger_id, start_ms, end_ms, "
                              "register_start_wh, register_wh, peak_ca, ref, id_tag)"
                              "  VALUES (1, 1700000000000, NULL, 1000, 8400, 1600, '', 'TAG-1');"
                              "INSERT INTO limit_change (ts, charger_id, limit_ca, phases, reason, "
                              "text)"
                              "  VALUES (1700000000000, 1, 1000, 3, 'node', 'limited by main, L1');"
                              "INSERT INTO meta (key, value) VALUES ('built.m1', 1699999200000);";

/* Rows of a version 5 database: simulated demo history (a flag on the session and the event). */
static const char v5_rows[] = "INSERT INTO series (id, kind, name) VALUES (1, 1, 'a01');"
                              "INSERT INTO tail (id, tier, series_id, ts, v)"
                              "  VALUES (1, 0, 1, 1700000000000, X'72801980190402');"
                              "INSERT INTO event (ts, kind, subject, detail, simulated)"
                              "  VALUES (1700000000000, 'charger_online', 'a01', '', 1);"
                              "INSERT INTO block (tier, series_id, t0, t1, n, v)"
                              "  VALUES (0, 1, 1700000001000, 1700000002000, 2, "
                              "X'7280198019040201D00F');"
                              "INSERT INTO session (charger_id, start_ms, end_ms, "
                              "register_start_wh, register_wh, peak_ca, ref, id_tag, simulated)"
                              "  VALUES (1, 1700000000000, NULL, 1000, 8400, 1600, '', '', 1);"
                              "INSERT INTO limit_change (ts, charger_id, limit_ca, phases, reason, "
                              "text)"
                              "  VALUES (1700000000000, 1, 1000, 3, 'node', 'limited by main, L1');"
                              "INSERT INTO meta (key, value) VALUES ('built.m1', 1699999200000);";

/* The v1 fixture holds one pending sample, the v2 fixture adds a sealed block of two more. */
static const struct {
    const char *rows;
    void (*check)(sqlite3 *db);
    size_t samples; /* of charger a01 from 1700000000000 on */
} at_version[] = {
    [0] = {NULL, NULL, 0}, /* an empty file */
    [1] = {"INSERT INTO series (id, kind, name) VALUES (1, 1, 'a01');"
           /* i1 = 16.00 A, limit 16.00 A, state C, 1 phase */
           "INSERT INTO tail (id, tier, series_id, ts, v)"
           "  VALUES (1, 0, 1, 1700000000000, X'72801980190402');"
           "INSERT INTO event (ts, kind, subject, detail)"
           "  VALUES (1700000000000, 'charger_online', 'a01', '');",
           check_v1_rows, 1},
    [2] = {v2_rows, check_v3_rows, 3},
    /* Version 3 only changed an index: the same rows. */
    [3] = {v2_rows, check_v3_rows, 3},
    /* Version 4 added the session's RFID tag. */
    [4] = {v4_rows, check_v4_rows, 3},
    /* Version 5 marks simulated sessions and events. */
    [5] = {v5_rows, check_v5_rows, 3},
    /* Version 6 added the uplink's outbox: an empty one, the same history rows. */
    [6] = {v5_rows, check_v5_rows, 3},
    /* Version 7 added the OCPP upstream queue and transaction map: empty, the same rows. */
    [7] = {v5_rows, check_v5_rows, 3},
};

static void every_step_has_a_fixture(void **state)
{
    (void)state;
    assert_int_equal(PW_ARRAY_LEN(at_version), pw_store__schema_latest() + 1);
}

/* Builds a database at schema version v the way that version's code left it (WAL, its tables,
 * its rows). */
static void make_version(const char *path, int v)
{
    sqlite3 *db = st_sql_open(path);
    char err[256];
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(pw_store__migrate(db, v, err, sizeof(err)), 0);
    if (at_version[v].rows)
        assert_int_equal(sqlite3_exec(db, at_version[v].rows, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(st_sql_int(db, "PRAGMA user_version"), v);
    sqlite3_close(db);
}

static void migrates_from_every_version(void **state)
{
    fixture *f = *state;
    /* Up to and including the latest version: opening a current file must change nothing. */
    for (int v = 0; v <= pw_store__schema_latest(); v++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/v%d.db", f->dir, v);
        if (v > 0)
            make_version(path, v);
        pw_store_close(open_ok(path));

        sqlite3 *db = st_sql_open(path);
        assert_int_equal(st_sql_int(db, "PRAGMA user_version"), pw_store__schema_latest());
        assert_int_equal(st_sql_int(db, "PRAGMA application_id"), PW_STORE__APP_ID);
        assert_int_equal(st_sql_int(db, "SELECT count(*) FROM pragma_integrity_check "
                                        "WHERE integrity_check <> 'ok'"),
                         0);
        if (at_version[v].check)
            at_version[v].check(db);
        sqlite3_close(db);
        if (at_version[v].samples)
            check_series_readable(path, 1700000000000, at_version[v].samples);
    }
}

/* Sessions of a version 3 database (no tag column) after the migration to tags: old rows read
 * back with no tag and are billed under "", an open one learns its tag from the next write
 * without losing its ref or energy, and new rows carry theirs. */
static void version3_sessions_gain_tags(void **state)
{
    fixture *f = *state;
    make_version(f->path, 3); /* a01's open session from 1700000000000, ref '' */
    sqlite3 *db = st_sql_open(f->path);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO session (charger_id, start_ms, end_ms, register_start_wh,"
                     "  register_wh, peak_ca, ref) VALUES"
                     "  (1, 1699000000000, 1699003600000, 100, 2100, 1600, 'tx-1'),"
                     "  (1, 1701500000000, NULL, 9000, 9500, 1000, 'tx-2')",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    pw_store *s = open_ok(f->path);
    /* The charger's next report of the open session carries the tag (OCPP StartTransaction). */
    pw_store_session up = {.charger = "a01",
                           .start_ms = 1701500000000,
                           .register_start_wh = 9000,
                           .register_wh = 9700,
                           .peak_a = 10.0f,
                           .id_tag = "04A2B3C4"};
    pw_store_session fresh = {.charger = "a01",
                              .start_ms = 1701600000000,
                              .end_ms = 1701603600000,
                              .register_start_wh = 9700,
                              .register_wh = 10700,
                              .ref = "tx-3",
                              .id_tag = "04A2B3C4"};
    pw_store_batch *b = pw_store_batch_new();
    pw_store_batch_add_session(b, &up);
    pw_store_batch_add_session(b, &fresh);
    assert_int_equal(pw_store_write(s, b), 0);
    pw_store_batch_free(b);
    pw_store_close(s);

    char err[256];
    pw_store_reader *r = NULL;
    assert_int_equal(pw_store_reader_open(&r, f->path, err, sizeof(err)), 0);
    pw_store_session_row *rows;
    size_t n;
    pw_store_session_filter untagged = {.open = -1, .id_tag = ""};
    assert_int_equal(pw_store_query_sessions(r, &untagged, &rows, &n), 0);
    assert_int_equal(n, 2); /* 1700000000000 and 1699000000000, newest first */
    assert_int_equal(rows[0].s.start_ms, 1700000000000);
    assert_int_equal(rows[1].s.start_ms, 1699000000000);
    assert_string_equal(rows[1].s.ref, "tx-1");
    assert_string_equal(rows[1].s.id_tag, "");
    free(rows);
    pw_store_session_filter tagged = {.open = -1, .id_tag = "04A2B3C4"};
    assert_int_equal(pw_store_query_sessions(r, &tagged, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[1].s.ref, "tx-2"); /* kept although the update had none */
    assert_string_equal(rows[1].s.id_tag, "04A2B3C4");
    assert_int_equal(rows[1].s.end_ms, 0);
    assert_int_equal(rows[1].energy_wh, 700);
    assert_string_equal(rows[0].s.ref, "tx-3");
    free(rows);

    /* 2023-11: the old sessions of 1699000000000 (Nov 3) and 1700000000000 (Nov 14) untagged;
     * 2023-12: both tagged ones (Dec 2 and Dec 3, UTC). */
    pw_store_tag_energy_row *te;
    assert_int_equal(pw_store_query_tag_energy(r, 0, INT64_MAX, &te, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(te[0].month, "2023-11");
    assert_string_equal(te[0].id_tag, "");
    assert_int_equal(te[0].sessions, 2);
    assert_int_equal(te[0].energy_wh, 2000 + 7400);
    assert_string_equal(te[1].month, "2023-12");
    assert_string_equal(te[1].id_tag, "04A2B3C4");
    assert_int_equal(te[1].sessions, 2);
    assert_int_equal(te[1].energy_wh, 700 + 1000);
    free(te);
    pw_store_reader_close(r);
}

static void new_file_is_configured(void **state)
{
    fixture *f = *state;
    pw_store *s = open_ok(f->path);
    sqlite3 *db = pw_store__db(s);
    char mode[16] = "";
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    pw_strlcpy(mode, (const char *)sqlite3_column_text(st, 0), sizeof(mode));
    sqlite3_finalize(st);
    assert_string_equal(mode, "wal");
    assert_int_equal(st_sql_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(st_sql_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(st_sql_int(db, "PRAGMA auto_vacuum"), 2); /* INCREMENTAL */
    pw_store_close(s);
}

static void memory_database_fails_the_wal_check(void **state)
{
    (void)state;
    char err[512] = "";
    pw_store *s = (pw_store *)&err; /* must be reset to NULL */
    assert_int_equal(pw_store_open(&s, ":memory:", err, sizeof(err)), PW_STORE_E_WAL);
    assert_null(s);
    assert_non_null(strstr(err, "WAL"));
}

static void newer_database_is_refused_untouched(void **state)
{
    fixture *f = *state;
    sqlite3 *db = st_sql_open(f->path);
    char sql[128];
    snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             PW_STORE__APP_ID, pw_store__schema_latest() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    char err[512] = "";
    pw_store *s = NULL;
    assert_int_equal(pw_store_open(&s, f->path, err, sizeof(err)), PW_STORE_E_NEWER);
    assert_null(s);
    assert_non_null(strstr(err, "newer phasewise"));
    assert_non_null(strstr(err, f->path));

    db = st_sql_open(f->path);
    assert_int_equal(st_sql_int(db, "PRAGMA user_version"), pw_store__schema_latest() + 1);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
    assert_int_equal(st_sql_int(db, "SELECT journal_mode = 'delete' FROM pragma_journal_mode"), 1);
    sqlite3_close(db);
}

static void foreign_files_are_refused(void **state)
{
    fixture *f = *state;
    char err[512] = "";
    pw_store *s = NULL;

    sqlite3 *db = st_sql_open(f->path);
    assert_int_equal(
        sqlite3_exec(db, "PRAGMA application_id = 42; CREATE TABLE t (x);", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(pw_store_open(&s, f->path, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_non_null(strstr(err, "another program"));

    char junk[400];
    snprintf(junk, sizeof(junk), "%s/junk.db", f->dir);
    FILE *fp = fopen(junk, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database file ", fp);
    fclose(fp);
    assert_int_equal(pw_store_open(&s, junk, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_null(s);

    snprintf(junk, sizeof(junk), "%s/missing-dir/history.db", f->dir);
    assert_int_equal(pw_store_open(&s, junk, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_non_null(strstr(err, "missing-dir"));
}

/* A step that fails leaves the file at the version before it, with nothing of the step. */
static void failed_step_rolls_back(void **state)
{
    fixture *f = *state;
    sqlite3 *db = st_sql_open(f->path);
    /* An unrelated table with a name step 1 needs makes step 1 fail half-way. */
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE event (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    char err[512] = "";
    pw_store *s = NULL;
    assert_int_equal(pw_store_open(&s, f->path, err, sizeof(err)), PW_STORE_E_MIGRATE);
    assert_non_null(strstr(err, "schema version 0"));
    db = st_sql_open(f->path);
    assert_int_equal(st_sql_int(db, "PRAGMA user_version"), 0);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'series'"), 0);
    sqlite3_close(db);
}

/* ---- codec ---- */

static void codec_round_trips_and_rejects_garbage(void **state)
{
    (void)state;
    enum { N = 500, K = 15 };
    static store__rec recs[N];
    uint32_t x = 12345;
    int64_t ts = 1700000000000;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        ts += (i % 7 == 0) ? (int64_t)(x % 5000) - 1000 : 1000; /* also steps backwards */
        recs[i].ts = ts;
        for (int k = 0; k < K; k++)
            recs[i].v[k] = (i % 3 == 0) ? recs[i > 0 ? i - 1 : 0].v[k]
                                        : (int32_t)((x >> (k % 16)) % 4000) - 2000;
    }
    recs[10].v[3] = INT32_MIN;
    recs[11].v[3] = INT32_MAX;

    store__enc e = {0};
    store__enc_init(&e, recs[0].ts, K);
    for (int i = 0; i < N; i++)
        store__enc_add(&e, &recs[i]);
    assert_int_equal(e.count, N);

    store__dec d;
    store__rec r;
    store__dec_init(&d, e.out.p, e.out.len, recs[0].ts, K);
    for (int i = 0; i < N; i++) {
        assert_int_equal(store__dec_next(&d, &r), 1);
        assert_int_equal(r.ts, recs[i].ts);
        assert_memory_equal(r.v, recs[i].v, sizeof(int32_t) * K);
    }
    assert_int_equal(store__dec_next(&d, &r), 0);

    /* Truncated data ends in an error, never in a read past the end. */
    store__dec_init(&d, e.out.p, e.out.len - 1, recs[0].ts, K);
    int rc;
    while ((rc = store__dec_next(&d, &r)) == 1)
        ;
    assert_int_equal(rc, -1);
    /* A mask naming more fields than the tier has is corrupt. */
    const uint8_t bad_mask[] = {0xff, 0x7f};
    store__dec_init(&d, bad_mask, sizeof(bad_mask), 0, 6);
    assert_int_equal(store__dec_next(&d, &r), -1);
    store__buf_free(&e.out);
}

static void idle_samples_cost_one_byte(void **state)
{
    (void)state;
    store__enc e = {0};
    store__rec r = {.ts = 1000};
    store__enc_init(&e, r.ts, PW_STORE__RAW_FIELDS);
    for (int i = 0; i < 60; i++, r.ts += 1000)
        store__enc_add(&e, &r);
    /* The first record costs 1 byte, the second 3 (the interval appears), the rest 1 each. */
    assert_int_equal(e.out.len, 1 + 3 + 58);
    store__buf_free(&e.out);
}

/* ---- batches and writes ---- */

static pw_store_charger_sample charger(const char *id, int64_t ts, float i1, float limit)
{
    pw_store_charger_sample c = {.ts_ms = ts, .state = 2, .limit_a = limit, .phases = 3};
    pw_strlcpy(c.charger, id, sizeof(c.charger));
    c.current_a[0] = i1;
    c.current_a[1] = i1 / 2;
    c.current_a[2] = -0.004f;
    return c;
}

static void batch_counts_and_clears(void **state)
{
    (void)state;
    pw_store_batch *b = pw_store_batch_new();
    assert_int_equal(pw_store_batch_rows(b), 0);
    for (int i = 0; i < 100; i++) {
        pw_store_charger_sample c = charger("c", i, 1, 6);
        pw_store_batch_add_charger(b, &c);
    }
    pw_store_node_sample n = {.ts_ms = 1, .node = "main"};
    pw_store_batch_add_node(b, &n);
    pw_store_event e = {.ts_ms = 1, .kind = "config_change"};
    pw_store_batch_add_event(b, &e);
    assert_int_equal(pw_store_batch_rows(b), 102);
    pw_store_batch_clear(b);
    assert_int_equal(pw_store_batch_rows(b), 0);
    pw_store_batch_free(b);
    pw_store_batch_free(NULL);
}

static void writes_a_batch_in_one_transaction(void **state)
{
    fixture *f = *state;
    pw_store *s = open_ok(f->path);
    pw_store_batch *b = pw_store_batch_new();
    assert_int_equal(pw_store_write(s, b), 0); /* empty: nothing to do */

    const int64_t t0 = 1763800000000;
    for (int tick = 0; tick < 3; tick++) {
        pw_store_batch_clear(b);
        for (int c = 0; c < 4; c++) {
            char id[8];
            snprintf(id, sizeof(id), "c%d", c);
            pw_store_charger_sample cs = charger(id, t0 + tick * 1000, 10.0f + c + tick, 16);
            pw_store_batch_add_charger(b, &cs);
        }
        pw_store_node_sample n = {
            .ts_ms = t0 + tick * 1000, .node = "main", .current_a = {40.25f, 30.5f, 20.0f}};
        pw_store_batch_add_node(b, &n);
        assert_int_equal(pw_store_write(s, b), 0);
        assert_string_equal(pw_store_errmsg(s), "");
    }
    pw_store_event ev = {.ts_ms = t0 + 5, .kind = "config_change", .subject = "main"};
    pw_strlcpy(ev.detail, "limit_a L1 63 -> 50", sizeof(ev.detail));
    pw_store_batch_clear(b);
    pw_store_batch_add_event(b, &ev);
    assert_int_equal(pw_store_write(s, b), 0);

    sqlite3 *db = pw_store__db(s);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM series WHERE kind = 1"), 4);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM series WHERE kind = 2"), 1);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM tail"), 15);
    /* Tick 2 of charger c3: 10 + 3 + 2 = 15 A, half of it on L2, the tiny negative rounds to 0. */
    int64_t row = st_sql_int(db, "SELECT t.id FROM tail t JOIN series s ON s.id = t.series_id "
                                 "WHERE s.name = 'c3' ORDER BY t.ts DESC LIMIT 1");
    store__rec r = tail_record(db, row);
    assert_int_equal(r.ts, t0 + 2000);
    assert_int_equal(r.v[PW_STORE__F_I1], 1500);
    assert_int_equal(r.v[PW_STORE__F_I2], 750);
    assert_int_equal(r.v[PW_STORE__F_I3], 0);
    assert_int_equal(r.v[PW_STORE__F_LIMIT], 1600);
    assert_int_equal(r.v[PW_STORE__F_STATE], 2);
    assert_int_equal(r.v[PW_STORE__F_PHASES], 3);
    row = st_sql_int(db, "SELECT t.id FROM tail t JOIN series s ON s.id = t.series_id "
                         "WHERE s.name = 'main' ORDER BY t.ts LIMIT 1");
    r = tail_record(db, row);
    assert_int_equal(r.v[PW_STORE__F_I1], 4025);
    assert_int_equal(r.v[PW_STORE__F_I2], 3050);
    assert_int_equal(r.v[PW_STORE__F_I3], 2000);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM event WHERE kind = 'config_change' AND "
                                    "subject = 'main' AND detail = 'limit_a L1 63 -> 50'"),
                     1);
    pw_store_close(s);

    /* After a reopen the same names map to the same series. */
    s = open_ok(f->path);
    pw_store_batch_clear(b);
    pw_store_charger_sample cs = charger("c0", t0 + 3000, 1, 6);
    pw_store_batch_add_charger(b, &cs);
    assert_int_equal(pw_store_write(s, b), 0);
    db = pw_store__db(s);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM series"), 5);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM tail t JOIN series s ON "
                                    "s.id = t.series_id WHERE s.name = 'c0'"),
                     4);
    pw_store_batch_free(b);
    pw_store_close(s);
    /* Closing folded the WAL into the file. */
    char wal[400];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    FILE *fp = fopen(wal, "rb");
    if (fp) {
        fseek(fp, 0, SEEK_END);
        assert_int_equal(ftell(fp), 0);
        fclose(fp);
    }
}

/* A write that hits a full database changes nothing, and the next one after space is freed
 * goes through. */
static void full_database_fails_whole_batch_then_recovers(void **state)
{
    fixture *f = *state;
    pw_store *s = open_ok(f->path);
    sqlite3 *db = pw_store__db(s);
    pw_store_batch *b = pw_store_batch_new();
    pw_store_charger_sample cs = charger("c0", 1, 1, 6);
    pw_store_batch_add_charger(b, &cs);
    assert_int_equal(pw_store_write(s, b), 0);

    int64_t pages = st_sql_int(db, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)pages);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    pw_store_batch_clear(b);
    for (int i = 0; i < 5000; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%d", i); /* new series too, so the cache must forget them */
        cs = charger(id, 2 + i, 1, 6);
        pw_store_batch_add_charger(b, &cs);
    }
    assert_int_equal(pw_store_write(s, b), PW_STORE_E_WRITE);
    assert_non_null(strstr(pw_store_errmsg(s), "full"));
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM tail"), 1);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM series"), 1);

    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(pw_store_write(s, b), 0);
    assert_string_equal(pw_store_errmsg(s), "");
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM tail"), 5001);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM series"), 5001);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM tail t LEFT JOIN series s ON "
                                    "s.id = t.series_id WHERE s.id IS NULL"),
                     0);
    pw_store_batch_free(b);
    pw_store_close(s);
}

/* ---- simulated history (pw_store_mark_simulated) ---- */

#define HOUR_MS 3600000LL

static void add_sample(pw_store_batch *b, int64_t ts)
{
    pw_store_charger_sample c = {.ts_ms = ts, .state = 2, .current_a = {10, 10, 10}, .limit_a = 16};
    pw_strlcpy(c.charger, "a01", sizeof(c.charger));
    pw_store_batch_add_charger(b, &c);
}

/* A simulated store flags every session and event it writes, a later real write of the same
 * session does not clear the flag, and the reader returns it; a normal store writes 0. */
static void simulated_store_flags_sessions_and_events(void **state)
{
    fixture *f = *state;
    pw_store *live = open_ok(f->path), *sim = open_ok(f->path);
    pw_store_mark_simulated(sim, 1700000000000);
    pw_store_batch *b = pw_store_batch_new();
    pw_store_session ses = {.start_ms = 1700000000000, .register_wh = 5000};
    pw_strlcpy(ses.charger, "a01", sizeof(ses.charger));
    pw_store_event ev = {.ts_ms = 1700000000000};
    pw_strlcpy(ev.kind, "charger_online", sizeof(ev.kind));
    pw_store_batch_add_session(b, &ses);
    pw_store_batch_add_event(b, &ev);
    assert_int_equal(pw_store_write(sim, b), 0);
    pw_store_batch_clear(b);
    ses.start_ms += 3600000; /* a real session and event */
    ev.ts_ms += 3600000;
    pw_store_batch_add_session(b, &ses);
    pw_store_batch_add_event(b, &ev);
    ses.start_ms -= 3600000; /* the simulated one again, as a real write would send it */
    ses.end_ms = 1700000100000;
    pw_store_batch_add_session(b, &ses);
    assert_int_equal(pw_store_write(live, b), 0);

    char err[256];
    pw_store_reader *r = NULL;
    assert_int_equal(pw_store_reader_open(&r, f->path, err, sizeof(err)), 0);
    pw_store_session_filter sf = {.open = -1};
    pw_store_session_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(pw_store_query_sessions(r, &sf, &rows, &n), 0);
    assert_int_equal(n, 2); /* newest first */
    assert_int_equal(rows[0].s.simulated, 0);
    assert_int_equal(rows[1].s.simulated, 1);
    assert_int_equal(rows[1].s.end_ms, 1700000100000);
    free(rows);
    pw_store_event *evs = NULL;
    assert_int_equal(pw_store_query_events(r, 0, INT64_MAX / 2, NULL, NULL, 0, &evs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(evs[0].simulated, 0);
    assert_int_equal(evs[1].simulated, 1);
    free(evs);
    pw_store_reader_close(r);
    pw_store_batch_free(b);
    pw_store_close(sim);
    pw_store_close(live);
}

/* Counts the 1-minute aggregate blocks of hour h. */
static int64_t m1_blocks_in_hour(const char *path, int64_t h)
{
    char sql[160];
    sqlite3 *db = st_sql_open(path);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM block WHERE tier = 1 AND t0 >= %lld AND "
             "t0 < %lld",
             (long long)h, (long long)(h + HOUR_MS));
    int64_t n = st_sql_int(db, sql);
    sqlite3_close(db);
    return n;
}

/* Simulated rows older than what the live writer has already aggregated still get their
 * 1-minute aggregates: the simulated write moves maintenance back. Without the mark they would
 * stay full-resolution only (checked first, so the test shows what the mark changes). */
static void simulated_past_is_aggregated(void **state)
{
    fixture *f = *state;
    const int64_t h0 = 1700002800000; /* an hour boundary */
    pw_store_policy p;
    pw_store_policy_default(&p);
    p.raw_keep_ms = p.m1_keep_ms = p.m15_keep_ms = 3650 * 24 * HOUR_MS;
    pw_store *live = open_ok(f->path), *plain = open_ok(f->path), *sim = open_ok(f->path);
    pw_store_batch *b = pw_store_batch_new();
    /* The live writer: hour h0 + 3 written and aggregated. */
    add_sample(b, h0 + 3 * HOUR_MS + 60000);
    assert_int_equal(pw_store_write(live, b), 0);
    while (pw_store_maintain(live, h0 + 5 * HOUR_MS, &p) == 1)
        ;
    assert_int_equal(m1_blocks_in_hour(f->path, h0 + 3 * HOUR_MS), 1);

    /* Past rows by a plain store: maintenance has moved on, hour h0 + 1 is never aggregated. */
    pw_store_batch_clear(b);
    add_sample(b, h0 + HOUR_MS + 60000);
    assert_int_equal(pw_store_write(plain, b), 0);
    while (pw_store_maintain(live, h0 + 5 * HOUR_MS, &p) == 1)
        ;
    assert_int_equal(m1_blocks_in_hour(f->path, h0 + HOUR_MS), 0);

    /* The same through a simulated store from h0 on: hours h0 + 1 and h0 + 2 (new) are built,
     * and hour h0 + 3 is built again once, not twice. */
    pw_store_mark_simulated(sim, h0);
    pw_store_batch_clear(b);
    add_sample(b, h0 + 2 * HOUR_MS + 60000);
    assert_int_equal(pw_store_write(sim, b), 0);
    while (pw_store_maintain(live, h0 + 5 * HOUR_MS, &p) == 1)
        ;
    assert_int_equal(m1_blocks_in_hour(f->path, h0 + HOUR_MS), 1);
    assert_int_equal(m1_blocks_in_hour(f->path, h0 + 2 * HOUR_MS), 1);
    assert_int_equal(m1_blocks_in_hour(f->path, h0 + 3 * HOUR_MS), 1);
    pw_store_batch_free(b);
    pw_store_close(sim);
    pw_store_close(plain);
    pw_store_close(live);
}

static void strerror_names_every_code(void **state)
{
    (void)state;
    for (int e = PW_STORE_E_QUERY; e <= 0; e++)
        assert_string_not_equal(pw_store_strerror(e), pw_store_strerror(1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_step_has_a_fixture),
        cmocka_unit_test_setup_teardown(migrates_from_every_version, setup, teardown),
        cmocka_unit_test_setup_teardown(version3_sessions_gain_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(new_file_is_configured, setup, teardown),
        cmocka_unit_test(memory_database_fails_the_wal_check),
        cmocka_unit_test_setup_teardown(newer_database_is_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_files_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_step_rolls_back, setup, teardown),
        cmocka_unit_test(codec_round_trips_and_rejects_garbage),
        cmocka_unit_test(idle_samples_cost_one_byte),
        cmocka_unit_test(batch_counts_and_clears),
        cmocka_unit_test_setup_teardown(writes_a_batch_in_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(full_database_fails_whole_batch_then_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(simulated_store_flags_sessions_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(simulated_past_is_aggregated, setup, teardown),
        cmocka_unit_test(strerror_names_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
