/* The read connection for the UI and API, and downsampled time series: each query reads the
 * coarsest tier that is still finer than a bucket, and fills the parts that tier lacks (the
 * newest minutes, history past its retention) from the tiers next to it. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define PW_STORE__MAX_TS     (INT64_C(1) << 53) /* far beyond any clock; keeps sums exact */
#define PW_STORE__MAX_POINTS 100000

static const char *const rstmt_sql[RS_COUNT] = {
    [RS_BEGIN] = "BEGIN",
    [RS_COMMIT] = "COMMIT",
    [RS_SERIES_FIND] = "SELECT id FROM series WHERE kind = ?1 AND name = ?2",
    [RS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [RS_BLOCK_RANGE] = PW_STORE__SQL_BLOCK_RANGE,
    [RS_BLOCK_OLDEST] = "SELECT min(t0) FROM block WHERE tier = ?1 AND series_id = ?2",
    [RS_TAIL_RANGE] = "SELECT ts, v FROM tail WHERE tier = 0 AND ts >= ?2 AND ts < ?3 "
                      "AND series_id = ?1",
    [RS_TAIL_OLDEST] = "SELECT min(ts) FROM tail WHERE tier = 0",
    [RS_SESSIONS] =
        "SELECT se.id, s.name, se.start_ms, se.end_ms, se.register_start_wh, se.register_wh, "
        "se.peak_ca, se.ref, max(0, se.register_wh - se.register_start_wh), se.id_tag, "
        "se.simulated "
        "FROM session se JOIN series s ON s.id = se.charger_id "
        "WHERE (?1 IS NULL OR s.name = ?1) AND (?2 IS NULL OR se.ref = ?2) "
        "AND (?9 IS NULL OR se.id_tag = ?9) "
        "AND se.start_ms >= ?3 AND se.start_ms < ?4 AND (?5 < 0 OR (se.end_ms IS NULL) = ?5) "
        "AND max(0, se.register_wh - se.register_start_wh) >= ?6 "
        "ORDER BY se.start_ms DESC, se.id DESC LIMIT ?7 OFFSET ?8",
    [RS_ENERGY] =
        "SELECT s.name, strftime(?1, se.start_ms / 1000, 'unixepoch', 'localtime') AS period, "
        "count(*), sum(max(0, se.register_wh - se.register_start_wh)) "
        "FROM session se JOIN series s ON s.id = se.charger_id "
        "WHERE se.start_ms >= ?2 AND se.start_ms < ?3 AND (?4 IS NULL OR s.name = ?4) "
        "GROUP BY period, s.name ORDER BY period, s.name",
    /* Months in UTC: a tag's bill is the same wherever the appliance's clock is set. Tags group
     * ignoring case (the column's collation); the row shows one spelling, always the same. */
    [RS_TAG_ENERGY] = "SELECT strftime('%Y-%m', se.start_ms / 1000, 'unixepoch') AS month, "
                      "min(se.id_tag COLLATE BINARY), "
                      "count(*), sum(max(0, se.register_wh - se.register_start_wh)) "
                      "FROM session se WHERE se.start_ms >= ?1 AND se.start_ms < ?2 "
                      "GROUP BY month, se.id_tag ORDER BY month, se.id_tag",
    [RS_EVENTS] = "SELECT ts, kind, subject, detail, simulated FROM event WHERE ts >= ?1 AND "
                  "ts < ?2 "
                  "AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR subject = ?4) "
                  "ORDER BY ts DESC, id DESC LIMIT ?5",
    [RS_LIMITS] = "SELECT lc.ts, s.name, lc.limit_ca, lc.phases, lc.reason, lc.text "
                  "FROM limit_change lc JOIN series s ON s.id = lc.charger_id "
                  "WHERE lc.ts >= ?1 AND lc.ts < ?2 AND (?3 IS NULL OR s.name = ?3) "
                  "ORDER BY lc.ts DESC, lc.id DESC LIMIT ?4",
};

/* ---- opening ---- */

static void reader_destroy(pw_store_reader *r)
{
    pw_store__disconnect(r->db, r->stmt, RS_COUNT);
    free(r);
}

/* The reader changes nothing: the file must already be a current, WAL-mode phasewise database. */
static int reader_check(sqlite3 *db, const char *path, char *err, size_t err_size)
{
    int version = 0;
    char mode[16];
    int ret = pw_store__check_file(db, path, &version, err, err_size);
    if (ret)
        return ret;
    if (version != pw_store__schema_latest()) {
        snprintf(err, err_size,
                 "%s has schema version %d, not %d: open it with the writer first, which migrates "
                 "it",
                 path, version, pw_store__schema_latest());
        return PW_STORE_E_OPEN;
    }
    if (pw_store__pragma_text(db, "PRAGMA journal_mode", mode, sizeof(mode)) != SQLITE_OK ||
        strcmp(mode, "wal") != 0) {
        snprintf(err, err_size, "%s is not in WAL mode (\"%s\"): a reader would block the writer",
                 path, mode);
        return PW_STORE_E_WAL;
    }
    return 0;
}

int pw_store_reader_open(pw_store_reader **out, const char *path, char *err, size_t err_size)
{
    *out = NULL;
    pw_store_reader *r = pw_xcalloc(1, sizeof(*r));
    int ret;
    /* Read-write without create: WAL readers need the shared-memory index, and a missing file
     * must stay missing. query_only keeps this connection from ever writing. */
    if ((ret = pw_store__connect(&r->db, path, SQLITE_OPEN_READWRITE, err, err_size)) ||
        (ret = reader_check(r->db, path, err, err_size)))
        goto fail;
    ret = PW_STORE_E_OPEN;
    if (sqlite3_exec(r->db, "PRAGMA query_only = 1; PRAGMA cache_size = -8192", NULL, NULL, NULL) !=
        SQLITE_OK) {
        snprintf(err, err_size, "cannot configure a reader: %s", sqlite3_errmsg(r->db));
        goto fail;
    }
    if ((ret = pw_store__prepare(r->db, rstmt_sql, r->stmt, RS_COUNT, err, err_size)))
        goto fail;
    *out = r;
    return 0;
fail:
    reader_destroy(r);
    return ret;
}

void pw_store_reader_close(pw_store_reader *r)
{
    if (r)
        reader_destroy(r);
}

const char *pw_store_reader_errmsg(const pw_store_reader *r)
{
    return r->errmsg;
}

int pw_store__reader_fail(pw_store_reader *r, const char *what)
{
    snprintf(r->errmsg, sizeof(r->errmsg), "%s: %s", what, sqlite3_errmsg(r->db));
    if (!sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return PW_STORE_E_QUERY;
}

void pw_store__bind_opt(sqlite3_stmt *st, int col, const char *s)
{
    if (s)
        sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

int pw_store__collect(pw_store_reader *r, sqlite3_stmt *st, size_t item_size,
                      void (*fill)(sqlite3_stmt *st, void *item), void **items, size_t *count)
{
    char *out = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            out = pw_xrealloc(out, cap * item_size);
        }
        memset(out + n * item_size, 0, item_size);
        fill(st, out + n * item_size);
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        free(out);
        return pw_store__reader_fail(r, "query");
    }
    *items = out;
    *count = n;
    return 0;
}

/* ---- downsampled series ---- */

typedef struct series_query {
    pw_store_reader *r;
    int64_t series;
    int64_t start; /* of bucket 0 */
    int64_t width; /* of a bucket */
    size_t nbuckets;
    store__acc *acc; /* one per bucket */
} series_query;

/* Runs a one-value query; a NULL or missing value gives fallback. */
static int one_value(sqlite3_stmt *st, int64_t fallback, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
               ? sqlite3_column_int64(st, 0)
               : fallback;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void add_record(series_query *q, int tier, const store__rec *rec, int64_t lo, int64_t hi)
{
    if (rec->ts < lo || rec->ts >= hi)
        return;
    int64_t b = (rec->ts - q->start) / q->width;
    if (b >= 0 && (size_t)b < q->nbuckets)
        store__acc_add(&q->acc[b], tier, rec);
}

/* Adds the series' records of one tier in [lo, hi) to the buckets. */
static int read_tier(series_query *q, int tier, int64_t lo, int64_t hi)
{
    const store__tier *t = &pw_store__tiers[tier];
    sqlite3_stmt *st = q->r->stmt[RS_BLOCK_RANGE];
    sqlite3_bind_int(st, 1, tier);
    sqlite3_bind_int64(st, 2, q->series);
    sqlite3_bind_int64(st, 3, lo - t->span_ms); /* a block never spans more than its period */
    sqlite3_bind_int64(st, 4, hi);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store__dec d;
        store__rec rec;
        store__dec_init(&d, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
                        sqlite3_column_int64(st, 0), t->nfields);
        while (store__dec_next(&d, &rec) == 1) /* a corrupt block ends early */
            add_record(q, tier, &rec, lo, hi);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE || tier != PW_STORE__TIER_RAW)
        return rc == SQLITE_DONE ? SQLITE_OK : rc;

    st = q->r->stmt[RS_TAIL_RANGE];
    sqlite3_bind_int64(st, 1, q->series);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store__dec d;
        store__rec rec;
        int64_t ts = sqlite3_column_int64(st, 0);
        store__dec_init(&d, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), ts,
                        t->nfields);
        if (store__dec_next(&d, &rec) == 1)
            add_record(q, tier, &rec, lo, hi);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Where each tier has data for the series: [from, to). The aggregate tiers end where building
 * has got to; the raw tier reaches to now through the tail. */
static int coverage(series_query *q, int64_t from[PW_STORE__TIERS], int64_t to[PW_STORE__TIERS])
{
    static const char *const built_key[PW_STORE__TIERS] = {NULL, "built.m1", "built.m15"};
    pw_store_reader *r = q->r;
    int rc = SQLITE_OK;
    for (int t = 0; rc == SQLITE_OK && t < PW_STORE__TIERS; t++) {
        sqlite3_stmt *st = r->stmt[RS_BLOCK_OLDEST];
        sqlite3_bind_int(st, 1, t);
        sqlite3_bind_int64(st, 2, q->series);
        rc = one_value(st, INT64_MAX, &from[t]);
        to[t] = INT64_MAX;
        if (rc == SQLITE_OK && t == PW_STORE__TIER_RAW) {
            /* Pending samples count too; late ones may be older than the first block. */
            int64_t tail;
            rc = one_value(r->stmt[RS_TAIL_OLDEST], INT64_MAX, &tail);
            if (tail < from[t])
                from[t] = tail;
        }
        if (rc == SQLITE_OK && built_key[t]) {
            st = r->stmt[RS_META_GET];
            sqlite3_bind_text(st, 1, built_key[t], -1, SQLITE_STATIC);
            rc = one_value(st, INT64_MIN, &to[t]);
        }
    }
    return rc;
}

typedef struct range {
    int64_t lo, hi;
} range;

/* Reads [q->start, end) tier by tier: first the chosen tier, then finer ones (they hold what is
 * newer than the chosen tier is built), then coarser ones (older than the chosen tier keeps). Each
 * time span is read from exactly one tier. */
static int fill(series_query *q, int chosen, int64_t end)
{
    int64_t cov_from[PW_STORE__TIERS], cov_to[PW_STORE__TIERS];
    int rc = coverage(q, cov_from, cov_to);
    int order[PW_STORE__TIERS], n = 0;
    for (int t = chosen; t >= 0; t--)
        order[n++] = t;
    for (int t = chosen + 1; t < PW_STORE__TIERS; t++)
        order[n++] = t;

    /* A tier's coverage is one interval, so cutting it out of disjoint ranges leaves at most one
     * more range than before: the list grows by at most one per tier. */
    range todo[PW_STORE__TIERS + 1] = {{q->start, end}};
    int ntodo = 1;
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        int t = order[i];
        int nold = ntodo;
        for (int j = 0; rc == SQLITE_OK && j < nold; j++) {
            range u = todo[j];
            int64_t lo = u.lo > cov_from[t] ? u.lo : cov_from[t];
            int64_t hi = u.hi < cov_to[t] ? u.hi : cov_to[t];
            if (lo >= hi)
                continue;
            rc = read_tier(q, t, lo, hi);
            todo[j] = (range){u.lo, lo}; /* what is left on either side */
            if (hi < u.hi) { /* only the range holding the end of this tier's coverage */
                assert(ntodo < (int)PW_ARRAY_LEN(todo));
                todo[ntodo++] = (range){hi, u.hi};
            }
        }
    }
    return rc;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

static void to_stat(pw_store_stat *out, const store__acc *a, int m)
{
    out->min = (float)a->min[m] / 100.0f;
    out->max = (float)a->max[m] / 100.0f;
    out->avg = (float)((double)a->sum[m] / a->n / 100.0);
}

int pw_store_query_series(pw_store_reader *r, enum pw_store_kind kind, const char *name,
                          int64_t from_ms, int64_t to_ms, size_t max_points,
                          pw_store_point **points, size_t *count, int64_t *bucket_ms)
{
    *points = NULL;
    *count = 0;
    r->errmsg[0] = '\0';
    if (!name || from_ms < 0 || from_ms >= to_ms || to_ms > PW_STORE__MAX_TS || max_points == 0 ||
        max_points > PW_STORE__MAX_POINTS || (kind != PW_STORE_CHARGER && kind != PW_STORE_NODE)) {
        snprintf(r->errmsg, sizeof(r->errmsg), "series query: bad range or point count");
        return PW_STORE_E_ARG;
    }
    /* The coarsest tier whose records are no wider than a bucket. */
    int64_t want = ceil_div(to_ms - from_ms, (int64_t)max_points);
    int chosen = PW_STORE__TIER_RAW;
    for (int t = PW_STORE__TIER_M1; t < PW_STORE__TIERS; t++)
        if (pw_store__tiers[t].res_ms <= want)
            chosen = t;
    int64_t res = pw_store__tiers[chosen].res_ms;

    series_query q = {.r = r};
    q.start = from_ms / res * res;
    q.width = ceil_div(ceil_div(to_ms - q.start, (int64_t)max_points), res) * res;
    q.nbuckets = (size_t)ceil_div(to_ms - q.start, q.width);
    *bucket_ms = q.width;

    int rc = pw_store__step_done(r->stmt[RS_BEGIN]);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = r->stmt[RS_SERIES_FIND];
        sqlite3_bind_int(st, 1, kind);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        rc = one_value(st, 0, &q.series);
    }
    if (rc == SQLITE_OK && q.series) {
        q.acc = pw_xcalloc(q.nbuckets, sizeof(*q.acc));
        rc = fill(&q, chosen, to_ms);
    }
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(r->stmt[RS_COMMIT]);
    if (rc != SQLITE_OK) {
        free(q.acc);
        return pw_store__reader_fail(r, "series query");
    }
    size_t n = 0;
    for (size_t b = 0; b < q.nbuckets && q.acc; b++)
        n += q.acc[b].n > 0;
    pw_store_point *out = n ? pw_xcalloc(n, sizeof(*out)) : NULL;
    n = 0;
    for (size_t b = 0; b < q.nbuckets && q.acc; b++) {
        const store__acc *a = &q.acc[b];
        if (!a->n)
            continue;
        pw_store_point *p = &out[n++];
        p->ts_ms = q.start + (int64_t)b * q.width;
        p->samples = a->n;
        for (int m = 0; m < 3; m++)
            to_stat(&p->current[m], a, PW_STORE__F_I1 + m);
        to_stat(&p->limit, a, PW_STORE__F_LIMIT);
        p->state = (uint8_t)a->state;
        p->phases = (uint8_t)a->phases;
    }
    free(q.acc);
    *points = out;
    *count = n;
    return 0;
}
