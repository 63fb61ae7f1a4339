/* Storage history: sealing, 1- and 15-minute aggregates checked against values computed by hand,
 * retention and the size cap, downsampled series, sessions, energy reports and CSV. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "pw_store.h"
#include "pw_util.h"
#include "store_internal.h"
#include "store_testutil.h"

#define T0     1763769600000LL /* 2025-11-22T00:00:00Z, a UTC day boundary */
#define MIN_MS 60000LL
#define HOUR   3600000LL
#define DAY    86400000LL

typedef struct fixture {
    char dir[256];
    char path[300];
    pw_store *s;
    pw_store_reader *r;
    pw_store_policy policy;
} fixture;

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof(*f));
    char err[512];
    st_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
    if (pw_store_open(&f->s, f->path, err, sizeof(err)) ||
        pw_store_reader_open(&f->r, f->path, err, sizeof(err))) {
        print_error("%s\n", err);
        return -1;
    }
    pw_store_policy_default(&f->policy);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pw_store_reader_close(f->r);
    pw_store_close(f->s);
    st_rmdir(f->dir);
    free(f);
    return 0;
}

/* Runs maintenance until it reports nothing left, with a small budget so that the work is
 * spread over many calls; returns the number of calls. */
static int maintain_all(fixture *f, int64_t now, uint32_t work)
{
    pw_store_policy p = f->policy;
    p.work = work;
    int calls = 0, rc;
    do {
        rc = pw_store_maintain(f->s, now, &p);
        assert_true(rc >= 0);
        assert_true(++calls < 100000);
    } while (rc == 1);
    return calls;
}

/* Second s of the test day for charger "a": a pattern whose aggregates are easy to compute.
 * L1 ramps 0.0 .. 5.9 A within every minute, L2 is 8 A in the first half of the day, L3 is
 * 0.1 A per minute of the hour, the state alternates B/C per minute. */
static pw_store_charger_sample pattern(int s)
{
    pw_store_charger_sample c = {.ts_ms = T0 + 1000LL * s, .charger = "a", .phases = 3};
    c.current_a[0] = (float)(s % 60) * 0.1f;
    c.current_a[1] = s < 43200 ? 8.0f : 0.0f;
    c.current_a[2] = (float)((s / 60) % 60) * 0.1f;
    c.limit_a = 16.0f;
    c.state = (s / 60) % 2 ? 2 : 1;
    return c;
}

/* Writes seconds [from, to) of the pattern, one batch per simulated minute, plus node "main"
 * at 10x the L1 current. */
static void write_pattern(fixture *f, int from, int to)
{
    pw_store_batch *b = pw_store_batch_new();
    for (int s = from; s < to; s++) {
        pw_store_charger_sample c = pattern(s);
        pw_store_batch_add_charger(b, &c);
        pw_store_node_sample n = {.ts_ms = c.ts_ms, .node = "main"};
        n.current_a[0] = c.current_a[0] * 10;
        pw_store_batch_add_node(b, &n);
        if (s % 60 == 59 || s == to - 1) {
            assert_int_equal(pw_store_write(f->s, b), 0);
            pw_store_batch_clear(b);
        }
    }
    pw_store_batch_free(b);
}

static void series(fixture *f, enum pw_store_kind kind, const char *name, int64_t from, int64_t to,
                   size_t max, pw_store_point **pts, size_t *n, int64_t *bucket)
{
    int rc = pw_store_query_series(f->r, kind, name, from, to, max, pts, n, bucket);
    if (rc)
        print_error("%s\n", pw_store_reader_errmsg(f->r));
    assert_int_equal(rc, 0);
    assert_true(*n <= max);
}

static int64_t count(fixture *f, const char *sql)
{
    return st_sql_int(pw_store__db(f->s), sql);
}

/* ---- sealing ---- */

static void sealing_changes_no_answer(void **state)
{
    fixture *f = *state;
    write_pattern(f, 0, 200);
    pw_store_point *before, *after;
    size_t nb, na;
    int64_t bucket;
    series(f, PW_STORE_CHARGER, "a", T0, T0 + 200000, 1000, &before, &nb, &bucket);
    assert_int_equal(nb, 200);
    assert_int_equal(bucket, 1000);
    assert_float_equal(before[61].current[0].avg, 0.1, 1e-6);
    assert_float_equal(before[61].current[2].avg, 0.1, 1e-6);
    assert_int_equal(before[61].state, 2);

    /* Three whole minutes are past the grace period; the fourth is still being written. */
    maintain_all(f, T0 + 200000 + f->policy.grace_ms, 1000000);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 0"), 2 * 3);
    assert_int_equal(count(f, "SELECT count(*) FROM tail"), 2 * 20);
    assert_int_equal(count(f, "SELECT min(ts) FROM tail"), T0 + 180000);
    series(f, PW_STORE_CHARGER, "a", T0, T0 + 200000, 1000, &after, &na, &bucket);
    assert_int_equal(na, nb);
    assert_memory_equal(after, before, nb * sizeof(*before));
    free(before);
    free(after);

    /* A full-resolution block of an idle-ish charger is small: 60 samples in well under 5 bytes
     * each. */
    assert_true(count(f, "SELECT max(length(v)) FROM block WHERE tier = 0") < 60 * 5);
}

/* ---- aggregates by hand ---- */

/* Decodes every record of a tier for series name, in time order. */
static size_t tier_records(fixture *f, int tier, const char *name, store__rec *out, size_t max)
{
    sqlite3_stmt *st;
    sqlite3 *db = pw_store__db(f->s);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT b.t0, b.v FROM block b JOIN series s ON "
                                        "s.id = b.series_id WHERE b.tier = ?1 AND s.name = ?2 "
                                        "ORDER BY b.t0",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, tier);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        store__dec d;
        store__dec_init(&d, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                        sqlite3_column_int64(st, 0), pw_store__tiers[tier].nfields);
        while (n < max && store__dec_next(&d, &out[n]) == 1)
            n++;
    }
    sqlite3_finalize(st);
    return n;
}

static void expect_stat(const int32_t *v, int m, int32_t min, int32_t avg, int32_t max)
{
    const int32_t *st = &v[PW_STORE__A_STATS + 3 * m];
    assert_int_equal(st[0], min);
    assert_int_equal(st[1], avg);
    assert_int_equal(st[2], max);
}

/* A day of the pattern at 1 Hz, sealed and aggregated, is built once (group_setup) and copied
 * into each test that needs it. */
static char day_template[300];

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void write_day_and_aggregate(fixture *f)
{
    char err[512];
    pw_store_reader_close(f->r);
    pw_store_close(f->s);
    copy_file(day_template, f->path);
    assert_int_equal(pw_store_open(&f->s, f->path, err, sizeof(err)), 0);
    assert_int_equal(pw_store_reader_open(&f->r, f->path, err, sizeof(err)), 0);
}

static int group_setup(void **state)
{
    (void)state;
    fixture *f;
    if (setup((void **)&f))
        return -1;
    write_pattern(f, 0, 86400);
    /* A small budget: many calls, each bounded. */
    int calls = maintain_all(f, T0 + DAY + HOUR, 20000);
    assert_true(calls > 10);
    pw_store_reader_close(f->r);
    pw_store_close(f->s); /* checkpoints: the template is one file */
    f->r = NULL;
    f->s = NULL;
    snprintf(day_template, sizeof(day_template), "%s.day", f->dir);
    copy_file(f->path, day_template);
    st_rmdir(f->dir);
    free(f);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(day_template);
    return 0;
}

static void aggregates_match_hand_computed_values(void **state)
{
    fixture *f = *state;
    write_day_and_aggregate(f);
    assert_int_equal(count(f, "SELECT count(*) FROM tail"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 1"), 2 * 24);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 2"), 2 * 1);
    assert_int_equal(count(f, "SELECT value FROM meta WHERE key = 'built.m1'"), T0 + DAY);
    assert_int_equal(count(f, "SELECT value FROM meta WHERE key = 'built.m15'"), T0 + DAY);

    static store__rec recs[1500];
    assert_int_equal(tier_records(f, PW_STORE__TIER_M1, "a", recs, 1500), 1440);
    for (int m = 0; m < 1440; m++) {
        const int32_t *v = recs[m].v;
        assert_int_equal(recs[m].ts, T0 + m * MIN_MS);
        assert_int_equal(v[PW_STORE__A_N], 60);
        expect_stat(v, 0, 0, 295, 590); /* (0 + 10 + ... + 590) / 60 */
        expect_stat(v, 1, m < 720 ? 800 : 0, m < 720 ? 800 : 0, m < 720 ? 800 : 0);
        expect_stat(v, 2, 10 * (m % 60), 10 * (m % 60), 10 * (m % 60));
        expect_stat(v, 3, 1600, 1600, 1600);
        assert_int_equal(v[PW_STORE__A_STATE], m % 2 ? 2 : 1);
        assert_int_equal(v[PW_STORE__A_PHASES], 3);
    }
    assert_int_equal(tier_records(f, PW_STORE__TIER_M15, "a", recs, 1500), 96);
    for (int q = 0; q < 96; q++) {
        const int32_t *v = recs[q].v;
        int qh = q % 4; /* quarter of the hour: L3 runs over minutes 15qh .. 15qh + 14 */
        assert_int_equal(recs[q].ts, T0 + q * 15 * MIN_MS);
        assert_int_equal(v[PW_STORE__A_N], 900);
        expect_stat(v, 0, 0, 295, 590);
        expect_stat(v, 2, 150 * qh, 150 * qh + 70, 150 * qh + 140);
        /* The last minute of a quarter, 15q + 14, has the parity of q. */
        assert_int_equal(v[PW_STORE__A_STATE], q % 2 ? 2 : 1);
    }
    /* The node's L1 is ten times the charger's. */
    assert_int_equal(tier_records(f, PW_STORE__TIER_M15, "main", recs, 1500), 96);
    expect_stat(recs[5].v, 0, 0, 2950, 5900);
    expect_stat(recs[5].v, 3, 0, 0, 0);
}

static void queries_downsample_by_hand(void **state)
{
    fixture *f = *state;
    write_day_and_aggregate(f);
    pw_store_point *p;
    size_t n;
    int64_t bucket;

    /* 96 points over the day: one per 15-minute record. */
    series(f, PW_STORE_CHARGER, "a", T0, T0 + DAY, 96, &p, &n, &bucket);
    assert_int_equal(bucket, 15 * MIN_MS);
    assert_int_equal(n, 96);
    assert_int_equal(p[7].ts_ms, T0 + 7 * 15 * MIN_MS);
    assert_int_equal(p[7].samples, 900);
    assert_float_equal(p[7].current[0].min, 0.0, 1e-6);
    assert_float_equal(p[7].current[0].avg, 2.95, 1e-6);
    assert_float_equal(p[7].current[0].max, 5.9, 1e-6);
    assert_float_equal(p[7].current[2].avg, 5.2, 1e-6); /* quarter 3 of its hour: 450 + 70 */
    assert_float_equal(p[7].current[1].avg, 8.0, 1e-6);
    assert_float_equal(p[60].current[1].avg, 0.0, 1e-6);
    assert_float_equal(p[7].limit.avg, 16.0, 1e-6);
    free(p);

    /* 7 points over 70 minutes: 1-minute records in 10-minute buckets. Bucket 0 holds minutes
     * 10..19 of the day: L3 from 1.0 to 1.9 A, average 1.45 A. */
    series(f, PW_STORE_CHARGER, "a", T0 + 10 * MIN_MS, T0 + 80 * MIN_MS, 7, &p, &n, &bucket);
    assert_int_equal(bucket, 10 * MIN_MS);
    assert_int_equal(n, 7);
    assert_int_equal(p[0].ts_ms, T0 + 10 * MIN_MS);
    assert_int_equal(p[0].samples, 600);
    assert_float_equal(p[0].current[2].min, 1.0, 1e-6);
    assert_float_equal(p[0].current[2].avg, 1.45, 1e-6);
    assert_float_equal(p[0].current[2].max, 1.9, 1e-6);
    /* Bucket 5 is minutes 60..69, the next hour: L3 starts again at 0. */
    assert_float_equal(p[5].current[2].avg, 0.45, 1e-6);
    assert_int_equal(p[6].state, 2); /* minute 79 is odd */
    free(p);

    /* 25 points over a 13-hour range that starts off the grid: buckets are whole multiples of the
     * 15-minute records (here 45 minutes), starting at the quarter that holds from. */
    series(f, PW_STORE_CHARGER, "a", T0 + 7 * MIN_MS, T0 + 13 * HOUR, 25, &p, &n, &bucket);
    assert_int_equal(bucket, 45 * MIN_MS);
    assert_int_equal(p[0].ts_ms, T0);
    assert_int_equal(p[0].samples, 3 * 900);
    assert_float_equal(p[0].current[2].avg, (0.7 + 2.2 + 3.7) / 3, 1e-5);
    /* 12:00 falls inside bucket 16 (12:00-12:45): L2 was 8 A until then, 0 from then on. */
    assert_float_equal(p[15].current[1].avg, 8.0, 1e-6);
    assert_float_equal(p[16].current[1].avg, 0.0, 1e-6);
    free(p);

    /* Full resolution over five seconds of minute 2: raw samples, 0.0 .. 0.4 A. */
    series(f, PW_STORE_CHARGER, "a", T0 + 120000, T0 + 125000, 100, &p, &n, &bucket);
    assert_int_equal(bucket, 1000);
    assert_int_equal(n, 5);
    assert_float_equal(p[4].current[0].avg, 0.4, 1e-6);
    assert_int_equal(p[4].samples, 1);
    free(p);

    /* Unknown series: no points; bad arguments: an error. */
    series(f, PW_STORE_NODE, "a", T0, T0 + DAY, 10, &p, &n, &bucket);
    assert_int_equal(n, 0);
    assert_null(p);
    assert_int_equal(
        pw_store_query_series(f->r, PW_STORE_CHARGER, "a", T0, T0, 10, &p, &n, &bucket),
        PW_STORE_E_ARG);
    assert_int_equal(
        pw_store_query_series(f->r, PW_STORE_CHARGER, "a", T0, T0 + 1, 0, &p, &n, &bucket),
        PW_STORE_E_ARG);
}

/* The newest minutes are not aggregated yet: a 1-minute query takes them from the raw tier. */
static void recent_data_comes_from_finer_tiers(void **state)
{
    fixture *f = *state;
    write_pattern(f, 0, 2 * 3600 + 300); /* two hours and five minutes */
    maintain_all(f, T0 + 2 * HOUR + 300000 + f->policy.grace_ms, 1000000);
    assert_int_equal(count(f, "SELECT value FROM meta WHERE key = 'built.m1'"), T0 + 2 * HOUR);
    pw_store_point *p;
    size_t n;
    int64_t bucket;
    series(f, PW_STORE_CHARGER, "a", T0, T0 + 3 * HOUR, 180, &p, &n, &bucket);
    assert_int_equal(bucket, MIN_MS);
    assert_int_equal(n, 125);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p[i].samples, 60);
        assert_float_equal(p[i].current[2].avg, (float)(i % 60) * 0.1f, 1e-5);
    }
    free(p);
}

/* ---- retention ---- */

static void retention_keeps_aggregates_sessions_and_events(void **state)
{
    fixture *f = *state;
    write_day_and_aggregate(f);
    pw_store_batch *b = pw_store_batch_new();
    pw_store_event ev = {.ts_ms = T0 + 5, .kind = "charger_online", .subject = "a"};
    pw_store_session se = {.charger = "a",
                           .start_ms = T0 + 1000,
                           .end_ms = T0 + 2 * HOUR,
                           .register_start_wh = 100,
                           .register_wh = 5100,
                           .peak_a = 5.9f};
    pw_store_limit_change lc = {.ts_ms = T0 + 7,
                                .charger = "a",
                                .limit_a = 16,
                                .phases = 3,
                                .reason = "max",
                                .text = "at the charger's maximum 16 A"};
    pw_store_batch_add_event(b, &ev);
    pw_store_batch_add_session(b, &se);
    pw_store_batch_add_limit_change(b, &lc);
    assert_int_equal(pw_store_write(f->s, b), 0);
    pw_store_batch_free(b);

    pw_store_point *day, *later;
    size_t n, n2;
    int64_t bucket;
    series(f, PW_STORE_CHARGER, "a", T0, T0 + DAY, 1440, &day, &n, &bucket);
    assert_int_equal(n, 1440);

    /* Eight days on, full resolution is gone (and the limit change, kept 90 days, is not)... */
    maintain_all(f, T0 + 8 * DAY, 20000);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 0"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 1"), 48);
    assert_int_equal(count(f, "SELECT count(*) FROM limit_change"), 1);
    /* ...so the same question gets the same answer from the 1-minute tier, and a question at
     * full resolution falls back to it too. */
    series(f, PW_STORE_CHARGER, "a", T0, T0 + DAY, 1440, &later, &n2, &bucket);
    assert_int_equal(n2, n);
    assert_memory_equal(later, day, n * sizeof(*day));
    free(later);
    series(f, PW_STORE_CHARGER, "a", T0 + HOUR, T0 + HOUR + 10 * MIN_MS, 600, &later, &n2, &bucket);
    assert_int_equal(bucket, 1000);
    assert_int_equal(n2, 10);
    assert_int_equal(later[3].samples, 60);
    assert_int_equal(later[3].ts_ms, T0 + HOUR + 3 * MIN_MS);
    free(later);
    free(day);

    maintain_all(f, T0 + 100 * DAY, 20000);
    assert_int_equal(count(f, "SELECT count(*) FROM limit_change"), 0);
    pw_store_policy bad = f->policy;
    bad.raw_keep_ms = -1;
    assert_int_equal(pw_store_maintain(f->s, T0 + 100 * DAY, &bad), PW_STORE_E_ARG);

    /* Past two years everything but sessions and events has gone. */
    maintain_all(f, T0 + 731 * DAY, 20000);
    assert_int_equal(count(f, "SELECT count(*) FROM block"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM session"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM event"), 1);
}

/* Raw data is dropped only once it is aggregated, whatever the clock says. */
static void retention_waits_for_aggregation(void **state)
{
    fixture *f = *state;
    write_pattern(f, 0, 3 * 3600);
    pw_store_policy p = f->policy;
    p.work = 5000; /* far too little to aggregate three hours in one call */
    assert_int_equal(pw_store_maintain(f->s, T0 + 30 * DAY, &p), 1);
    /* Partly sealed, nothing aggregated yet, and every sample still there. */
    assert_true(count(f, "SELECT count(*) FROM tail") > 0);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 1"), 0);
    assert_int_equal(count(f, "SELECT (SELECT coalesce(sum(n), 0) FROM block WHERE tier = 0) + "
                              "(SELECT count(*) FROM tail)"),
                     2 * 3 * 3600);
    maintain_all(f, T0 + 30 * DAY, 5000);
    static store__rec recs[200];
    assert_int_equal(tier_records(f, PW_STORE__TIER_M1, "a", recs, 200), 180);
    for (int i = 0; i < 180; i++)
        assert_int_equal(recs[i].v[PW_STORE__A_N], 60);
}

/* ---- size cap ---- */

static void size_cap_drops_oldest_fine_data_first(void **state)
{
    fixture *f = *state;
    write_day_and_aggregate(f);
    pw_store_batch *b = pw_store_batch_new();
    pw_store_session se = {.charger = "a", .start_ms = T0, .register_wh = 10};
    pw_store_batch_add_session(b, &se);
    for (int i = 0; i < 2000; i++) {
        pw_store_limit_change lc = {.ts_ms = T0 + i * 1000, .charger = "a", .limit_a = 6};
        snprintf(lc.text, sizeof(lc.text), "limited by main, L%d (change %d)", i % 3 + 1, i);
        pw_store_batch_add_limit_change(b, &lc);
    }
    assert_int_equal(pw_store_write(f->s, b), 0);
    pw_store_batch_free(b);
    sqlite3 *db = pw_store__db(f->s);
    int64_t page = st_sql_int(db, "PRAGMA page_size");
    int64_t used =
        (st_sql_int(db, "PRAGMA page_count") - st_sql_int(db, "PRAGMA freelist_count")) * page;
    int64_t raw_blocks = count(f, "SELECT count(*) FROM block WHERE tier = 0");

    /* A cap a little under the current size, no protected window: only the oldest raw blocks
     * go. */
    f->policy.max_bytes = (uint64_t)(used * 95 / 100);
    f->policy.cap_keep_raw_ms = 0;
    maintain_all(f, T0 + DAY + HOUR, 20000);
    int64_t left = count(f, "SELECT count(*) FROM block WHERE tier = 0");
    assert_true(left > 0 && left < raw_blocks);
    assert_int_equal(count(f, "SELECT min(t0) FROM block WHERE tier = 0") >= T0 + HOUR, 1);
    assert_int_equal(count(f, "SELECT max(t1) FROM block WHERE tier = 0"), T0 + DAY - 1000);
    assert_int_equal(count(f, "SELECT count(*) FROM limit_change"), 2000);
    assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 1"), 48);
    int64_t now_used =
        (st_sql_int(db, "PRAGMA page_count") - st_sql_int(db, "PRAGMA freelist_count")) * page;
    assert_true(now_used <= (int64_t)f->policy.max_bytes);
    /* The file itself shrank below the cap too. */
    assert_true(st_sql_int(db, "PRAGMA page_count") * page <= (int64_t)f->policy.max_bytes);

    /* A tiny cap: raw, limit changes, 1-minute, then 15-minute data go; sessions stay. */
    f->policy.max_bytes = 4096;
    maintain_all(f, T0 + DAY + HOUR, 20000);
    assert_int_equal(count(f, "SELECT count(*) FROM block"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM limit_change"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM session"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM pragma_integrity_check WHERE "
                              "integrity_check <> 'ok'"),
                     0);
}

/* Raw blocks ending in [from, to). */
static int64_t raw_blocks(fixture *f, int64_t from, int64_t to)
{
    char sql[128];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM block WHERE tier = 0 AND t1 >= %lld AND "
             "t1 < %lld",
             (long long)from, (long long)to);
    return count(f, sql);
}

/* Whatever the cap, the order holds: raw samples older than the protected window, then
 * 1-minute aggregates, then the protected raw samples, then 15-minute aggregates. Tight and loose
 * caps between them reach every stage. */
static void size_cap_order(void **state)
{
    fixture *f = *state;
    const int64_t now = T0 + DAY + HOUR, protect = now - 12 * HOUR;
    const double share[] = {0.9, 0.5, 0.3, 0.1, 0.01};
    int reached[4] = {0};
    for (size_t i = 0; i < PW_ARRAY_LEN(share); i++) {
        write_day_and_aggregate(f);
        sqlite3 *db = pw_store__db(f->s);
        int64_t page = st_sql_int(db, "PRAGMA page_size");
        int64_t used =
            (st_sql_int(db, "PRAGMA page_count") - st_sql_int(db, "PRAGMA freelist_count")) * page;
        int64_t old_raw = raw_blocks(f, 0, protect), new_raw = raw_blocks(f, protect, INT64_MAX);

        f->policy.max_bytes = (uint64_t)((double)used * share[i]);
        f->policy.cap_keep_raw_ms = 12 * HOUR;
        maintain_all(f, now, 20000);

        int gone[4] = {raw_blocks(f, 0, protect) < old_raw,
                       count(f, "SELECT count(*) FROM block WHERE tier = 1") < 48,
                       raw_blocks(f, protect, INT64_MAX) < new_raw,
                       count(f, "SELECT count(*) FROM block WHERE tier = 2") < 2};
        /* A stage only starts once every earlier stage has nothing left. */
        if (gone[1])
            assert_int_equal(raw_blocks(f, 0, protect), 0);
        if (gone[2])
            assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier = 1"), 0);
        if (gone[3])
            assert_int_equal(count(f, "SELECT count(*) FROM block WHERE tier < 2"), 0);
        assert_true(gone[0]);
        int64_t left =
            (st_sql_int(db, "PRAGMA page_count") - st_sql_int(db, "PRAGMA freelist_count")) * page;
        assert_true(left <= (int64_t)f->policy.max_bytes || gone[3]);
        for (int k = 0; k < 4; k++)
            reached[k] |= gone[k];
    }
    for (int k = 0; k < 4; k++)
        assert_true(reached[k]);
}

/* ---- sessions, energy, CSV ---- */

static void put_session_tag(fixture *f, const char *charger, const char *start_utc, int minutes,
                            uint64_t reg0, uint64_t wh, const char *ref, const char *tag)
{
    struct tm tm = {0};
    assert_int_equal(sscanf(start_utc, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    pw_store_session s = {.start_ms = (int64_t)timegm(&tm) * 1000,
                          .register_start_wh = reg0,
                          .register_wh = reg0 + wh,
                          .peak_a = 16.0f};
    s.end_ms = minutes ? s.start_ms + minutes * MIN_MS : 0;
    pw_strlcpy(s.charger, charger, sizeof(s.charger));
    pw_strlcpy(s.ref, ref, sizeof(s.ref));
    pw_strlcpy(s.id_tag, tag, sizeof(s.id_tag));
    pw_store_batch *b = pw_store_batch_new();
    pw_store_batch_add_session(b, &s);
    assert_int_equal(pw_store_write(f->s, b), 0);
    pw_store_batch_free(b);
}

static void put_session(fixture *f, const char *charger, const char *start_utc, int minutes,
                        uint64_t reg0, uint64_t wh, const char *ref)
{
    put_session_tag(f, charger, start_utc, minutes, reg0, wh, ref, "");
}

static void session_updates_merge(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    pw_store_session s = {.charger = "a",
                          .start_ms = T0,
                          .register_start_wh = 1000,
                          .register_wh = 1000,
                          .ref = "tx-7",
                          .id_tag = "04A2B3C4"};
    pw_store_batch_add_session(b, &s);
    s.register_wh = 5000;
    s.peak_a = 16.0f;
    s.ref[0] = '\0'; /* an update without the ids keeps them */
    s.id_tag[0] = '\0';
    pw_store_batch_add_session(b, &s);
    assert_int_equal(pw_store_write(f->s, b), 0);

    pw_store_session_filter open = {.open = 1};
    pw_store_session_row *rows;
    size_t n;
    assert_int_equal(pw_store_query_sessions(f->r, &open, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].energy_wh, 4000);
    assert_int_equal(rows[0].s.end_ms, 0);
    assert_string_equal(rows[0].s.ref, "tx-7");
    assert_string_equal(rows[0].s.id_tag, "04A2B3C4");
    free(rows);

    pw_store_batch_clear(b);
    s.end_ms = T0 + HOUR;
    s.register_wh = 8400;
    s.peak_a = 10.0f; /* lower than seen: the peak stays */
    pw_store_batch_add_session(b, &s);
    assert_int_equal(pw_store_write(f->s, b), 0);
    pw_store_batch_free(b);
    assert_int_equal(pw_store_query_sessions(f->r, &open, &rows, &n), 0);
    assert_int_equal(n, 0);
    free(rows);
    pw_store_session_filter closed = {.open = 0};
    assert_int_equal(pw_store_query_sessions(f->r, &closed, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].energy_wh, 7400);
    assert_int_equal(rows[0].s.register_start_wh, 1000);
    assert_int_equal(rows[0].s.end_ms, T0 + HOUR);
    assert_float_equal(rows[0].s.peak_a, 16.0, 1e-6);
    assert_string_equal(rows[0].s.ref, "tx-7");
    assert_string_equal(rows[0].s.id_tag, "04A2B3C4");
    free(rows);
}

/* Central European time: UTC+1 in winter, UTC+2 in summer. */
static void use_cet(void)
{
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
}

static void write_billing_sessions(fixture *f)
{
    use_cet();
    /* 23:30 UTC on 31 January is 00:30 on 1 February in Oslo: it bills in February per charger
     * (local months) but in January per tag (UTC months). */
    put_session_tag(f, "a01", "2025-01-31T23:30:00", 120, 1000, 12345, "", "TAG,1");
    /* The same tag in other letter case: OCPP idTags ignore case. */
    put_session_tag(f, "a01", "2025-01-15T08:00:00", 60, 500, 4000, "tag \"7\"", "tag,1");
    put_session(f, "b,2", "2025-01-15T09:00:00", 30, 0, 2500, "");
    put_session_tag(f, "a01", "2025-02-10T17:00:00", 0, 20000, 750, "", "C\"AR"); /* charging */
    put_session(f, "b,2", "2025-03-01T12:00:00", 45, 9000, 8000, "");
}

static void energy_per_day_and_month(void **state)
{
    fixture *f = *state;
    write_billing_sessions(f);
    pw_store_energy_row *rows;
    size_t n;
    assert_int_equal(pw_store_query_energy(f->r, PW_STORE_MONTH, NULL, 0, INT64_MAX, &rows, &n), 0);
    assert_int_equal(n, 4);
    const struct {
        const char *period, *charger;
        uint32_t sessions;
        uint64_t wh;
    } want[] = {{"2025-01", "a01", 1, 4000},
                {"2025-01", "b,2", 1, 2500},
                {"2025-02", "a01", 2, 12345 + 750},
                {"2025-03", "b,2", 1, 8000}};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].period, want[i].period);
        assert_string_equal(rows[i].charger, want[i].charger);
        assert_int_equal(rows[i].sessions, want[i].sessions);
        assert_int_equal(rows[i].energy_wh, want[i].wh);
    }
    free(rows);

    assert_int_equal(pw_store_query_energy(f->r, PW_STORE_DAY, "a01", 0, INT64_MAX, &rows, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].period, "2025-01-15");
    assert_string_equal(rows[1].period, "2025-02-01");
    assert_int_equal(rows[1].energy_wh, 12345);
    assert_string_equal(rows[2].period, "2025-02-10");
    free(rows);
}

static void session_filters(void **state)
{
    fixture *f = *state;
    write_billing_sessions(f);
    pw_store_session_row *rows;
    size_t n;
    pw_store_session_filter all = {.open = -1};
    assert_int_equal(pw_store_query_sessions(f->r, &all, &rows, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 1; i < n; i++) /* newest first */
        assert_true(rows[i - 1].s.start_ms >= rows[i].s.start_ms);
    free(rows);

    pw_store_session_filter by_charger = {.open = -1, .charger = "b,2"};
    assert_int_equal(pw_store_query_sessions(f->r, &by_charger, &rows, &n), 0);
    assert_int_equal(n, 2);
    free(rows);
    pw_store_session_filter by_ref = {.open = -1, .ref = "tag \"7\""};
    assert_int_equal(pw_store_query_sessions(f->r, &by_ref, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].energy_wh, 4000);
    free(rows);
    pw_store_session_filter by_tag = {.open = -1, .id_tag = "TAG,1"};
    assert_int_equal(pw_store_query_sessions(f->r, &by_tag, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].energy_wh, 12345);
    assert_string_equal(rows[0].s.id_tag, "TAG,1");
    assert_int_equal(rows[1].energy_wh, 4000);
    assert_string_equal(rows[1].s.id_tag, "tag,1"); /* as the charger spelled it */
    free(rows);
    pw_store_session_filter no_tag = {.open = -1, .id_tag = ""};
    assert_int_equal(pw_store_query_sessions(f->r, &no_tag, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].s.charger, "b,2");
    assert_string_equal(rows[1].s.charger, "b,2");
    free(rows);
    pw_store_session_filter big = {.open = -1, .min_energy_wh = 5000};
    assert_int_equal(pw_store_query_sessions(f->r, &big, &rows, &n), 0);
    assert_int_equal(n, 2);
    free(rows);
    /* Started from 15 January to 1 March 2025 (UTC), newest first, the second page of one:
     * 10 Feb, then 31 Jan 23:30. */
    pw_store_session_filter page = {
        .open = -1, .from_ms = 1736899200000LL, .to_ms = 1740787200000LL, .limit = 1, .offset = 1};
    assert_int_equal(pw_store_query_sessions(f->r, &page, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].s.start_ms, 1738366200000LL);
    free(rows);
}

/* Energy per tag per UTC month: the session at 23:30 UTC on 31 January is January's, unlike in
 * the per-charger report in local time; sessions without a tag are one "" row per month. */
static void energy_per_tag_and_month(void **state)
{
    fixture *f = *state;
    write_billing_sessions(f);
    pw_store_tag_energy_row *rows;
    size_t n;
    assert_int_equal(pw_store_query_tag_energy(f->r, 0, INT64_MAX, &rows, &n), 0);
    const struct {
        const char *month, *tag;
        uint32_t sessions;
        uint64_t wh;
    } want[] = {{"2025-01", "", 1, 2500},
                {"2025-01", "TAG,1", 2, 12345 + 4000},
                {"2025-02", "C\"AR", 1, 750},
                {"2025-03", "", 1, 8000}};
    assert_int_equal(n, PW_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].month, want[i].month);
        assert_string_equal(rows[i].id_tag, want[i].tag);
        assert_int_equal(rows[i].sessions, want[i].sessions);
        assert_int_equal(rows[i].energy_wh, want[i].wh);
    }
    free(rows);
    /* The range is on the start, in [from, to): from 31 January 23:30 UTC to 1 March 12:00. */
    assert_int_equal(pw_store_query_tag_energy(f->r, 1738366200000LL, 1740830400000LL, &rows, &n),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].energy_wh, 12345);
    assert_string_equal(rows[1].id_tag, "C\"AR");
    free(rows);
    assert_int_equal(pw_store_query_tag_energy(f->r, 5, 5, &rows, &n), PW_STORE_E_ARG);
    assert_null(rows);
}

/* Names for the exports, as the server finds them in the config. */
static const char *test_tag_name(void *ud, const char *id_tag)
{
    int *calls = ud;
    (*calls)++;
    return strcasecmp(id_tag, "TAG,1") == 0 ? "Anna, car" : NULL;
}

static void csv_exports(void **state)
{
    fixture *f = *state;
    write_billing_sessions(f);
    char *csv;
    assert_int_equal(pw_store_csv_monthly_energy(f->r, 0, INT64_MAX, &csv), 0);
    assert_string_equal(csv, "month,charger,sessions,energy_kwh\r\n"
                             "2025-01,a01,1,4.000\r\n"
                             "2025-01,\"b,2\",1,2.500\r\n"
                             "2025-02,a01,2,13.095\r\n"
                             "2025-03,\"b,2\",1,8.000\r\n");
    free(csv);

    pw_store_session_filter jan = {.open = -1, .to_ms = 1737000000000LL};
    int calls = 0;
    assert_int_equal(pw_store_csv_sessions_named(f->r, &jan, test_tag_name, &calls, &csv), 0);
    assert_string_equal(
        csv, "session,charger,ref,start,end,duration_min,energy_kwh,register_start_kwh,"
             "register_end_kwh,peak_a,id_tag,tag_name\r\n"
             "3,\"b,2\",,2025-01-15T10:00:00+01:00,2025-01-15T10:30:00+01:00,30.0,2.500,0.000,"
             "2.500,16.00,,\r\n"
             "2,a01,\"tag \"\"7\"\"\",2025-01-15T09:00:00+01:00,2025-01-15T10:00:00+01:00,60.0,"
             "4.000,0.500,4.500,16.00,\"tag,1\",\"Anna, car\"\r\n");
    free(csv);
    assert_int_equal(calls, 1); /* a session without a tag needs no name */

    assert_int_equal(pw_store_csv_tag_energy(f->r, 0, INT64_MAX, test_tag_name, &calls, &csv), 0);
    assert_string_equal(csv, "month,id_tag,name,sessions,energy_kwh\r\n"
                             "2025-01,,,1,2.500\r\n"
                             "2025-01,\"TAG,1\",\"Anna, car\",2,16.345\r\n"
                             "2025-02,\"C\"\"AR\",,1,0.750\r\n"
                             "2025-03,,,1,8.000\r\n");
    free(csv);
    /* Without a name lookup the names are empty. */
    assert_int_equal(pw_store_csv_tag_energy(f->r, 0, INT64_MAX, NULL, NULL, &csv), 0);
    assert_non_null(strstr(csv, "2025-01,\"TAG,1\",,2,16.345\r\n"));
    free(csv);

    /* An open session has no end and no duration; summer time shows +02:00. */
    put_session(f, "c", "2025-07-01T10:00:00", 0, 0, 1, "");
    pw_store_session_filter open = {.open = 1, .charger = "c"};
    assert_int_equal(pw_store_csv_sessions(f->r, &open, &csv), 0); /* no names asked for */
    assert_non_null(strstr(csv, ",c,,2025-07-01T12:00:00+02:00,,,0.001,0.000,0.001,16.00,,\r\n"));
    free(csv);
}

/* ---- logs ---- */

static void events_and_limit_changes(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    const char *kinds[] = {"charger_online", "fault", "datagram_rejected", "login_failed"};
    for (int i = 0; i < 8; i++) {
        pw_store_event e = {.ts_ms = T0 + i * 1000};
        pw_strlcpy(e.kind, kinds[i % 4], sizeof(e.kind));
        pw_strlcpy(e.subject, i % 2 ? "a" : "b", sizeof(e.subject));
        snprintf(e.detail, sizeof(e.detail), "event %d", i);
        pw_store_batch_add_event(b, &e);
        pw_store_limit_change c = {.ts_ms = T0 + i * 1000, .limit_a = 6.0f + i, .phases = 1};
        pw_strlcpy(c.charger, i % 2 ? "a" : "b", sizeof(c.charger));
        pw_strlcpy(c.reason, "node", sizeof(c.reason));
        snprintf(c.text, sizeof(c.text), "limited by main, L%d", i % 3 + 1);
        pw_store_batch_add_limit_change(b, &c);
    }
    assert_int_equal(pw_store_write(f->s, b), 0);
    pw_store_batch_free(b);

    pw_store_event *ev;
    size_t n;
    assert_int_equal(pw_store_query_events(f->r, T0, T0 + DAY, NULL, NULL, 0, &ev, &n), 0);
    assert_int_equal(n, 8);
    assert_string_equal(ev[0].detail, "event 7");
    free(ev);
    assert_int_equal(pw_store_query_events(f->r, T0, T0 + DAY, "fault", "a", 0, &ev, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ev[0].detail, "event 5");
    assert_string_equal(ev[1].detail, "event 1");
    free(ev);
    assert_int_equal(pw_store_query_events(f->r, T0 + 2000, T0 + 4000, NULL, NULL, 1, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].detail, "event 3");
    free(ev);

    pw_store_limit_change *lc;
    assert_int_equal(pw_store_query_limit_changes(f->r, T0, T0 + DAY, "b", 0, &lc, &n), 0);
    assert_int_equal(n, 4);
    assert_float_equal(lc[0].limit_a, 12.0, 1e-6);
    assert_string_equal(lc[0].text, "limited by main, L1");
    assert_string_equal(lc[0].charger, "b");
    assert_int_equal(lc[0].phases, 1);
    free(lc);
}

/* ---- the reader ---- */

static void reader_refuses_what_it_cannot_read(void **state)
{
    fixture *f = *state;
    char err[512], path[400];
    pw_store_reader *r = NULL;
    snprintf(path, sizeof(path), "%s/missing.db", f->dir);
    assert_int_equal(pw_store_reader_open(&r, path, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_null(r);

    snprintf(path, sizeof(path), "%s/old.db", f->dir);
    sqlite3 *db = st_sql_open(path);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(pw_store__migrate(db, 1, err, sizeof(err)), 0);
    sqlite3_close(db);
    assert_int_equal(pw_store_reader_open(&r, path, err, sizeof(err)), PW_STORE_E_OPEN);
    assert_non_null(strstr(err, "writer first"));

    db = st_sql_open(path);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(pw_store_reader_open(&r, path, err, sizeof(err)), PW_STORE_E_NEWER);
}

/* A reader in the middle of a read never holds up the writer, and sees its own snapshot. */
static void readers_do_not_block_the_writer(void **state)
{
    fixture *f = *state;
    write_pattern(f, 0, 10);
    sqlite3 *other = st_sql_open(f->path);
    assert_int_equal(sqlite3_exec(other, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(st_sql_int(other, "SELECT count(*) FROM tail"), 20);
    write_pattern(f, 10, 20);
    maintain_all(f, T0 + 10 * MIN_MS, 1000000);
    assert_int_equal(st_sql_int(other, "SELECT count(*) FROM tail"), 20);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(st_sql_int(other, "SELECT count(*) FROM tail"), 0);
    sqlite3_close(other);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(sealing_changes_no_answer),
        T(aggregates_match_hand_computed_values),
        T(queries_downsample_by_hand),
        T(recent_data_comes_from_finer_tiers),
        T(retention_keeps_aggregates_sessions_and_events),
        T(retention_waits_for_aggregation),
        T(size_cap_drops_oldest_fine_data_first),
        T(size_cap_order),
        T(session_updates_merge),
        T(energy_per_day_and_month),
        T(session_filters),
        T(energy_per_tag_and_month),
        T(csv_exports),
        T(events_and_limit_changes),
        T(reader_refuses_what_it_cannot_read),
        T(readers_do_not_block_the_writer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
