/* Maintenance, in bounded steps: seal pending samples into per-minute blocks, build 1-minute
 * records per hour and 15-minute records per day from the tier below, drop what the retention
 * policy no longer keeps, and keep the file under its size cap. Each step commits on its own,
 * so an interrupted run leaves consistent data and the next call carries on. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define DAY_MS (24 * 3600 * 1000LL)

#define TAIL_CHUNK     100000 /* tail rows per sealing transaction */
#define SERIES_PER_TXN 256    /* series per aggregation transaction */
#define DELETE_CHUNK   1000   /* rows per retention or cap transaction */
#define DELETE_COST    64     /* a deleted row counts as this many records of work */
#define VACUUM_PAGES   2048   /* pages handed back to the file system per call */
#define CAP_TARGET_PCT 90     /* once over the cap, trim down to this share of it */

/* Meta keys: every period of the tier before built.X is complete; cursor.X is the last series
 * done within the period built.X while it is being built (0 = none yet). */
static const char *const built_key[PW_STORE__TIERS] = {NULL, "built.m1", "built.m15"};
static const char *const cursor_key[PW_STORE__TIERS] = {NULL, "cursor.m1", "cursor.m15"};

typedef struct maint {
    pw_store *s;
    const pw_store_policy *p;
    int64_t now;
    int64_t budget; /* records of work left in this call */
    int more;       /* a step stopped for lack of budget */
} maint;

void pw_store_policy_default(pw_store_policy *p)
{
    *p = (pw_store_policy){
        .raw_keep_ms = 7 * DAY_MS,
        .m1_keep_ms = 730 * DAY_MS,
        .m15_keep_ms = 730 * DAY_MS,
        .limit_keep_ms = 90 * DAY_MS,
        .max_bytes = 1024ull * 1024 * 1024,
        .cap_keep_raw_ms = 24 * 3600 * 1000LL,
        .grace_ms = 5000,
        .work = 200000,
    };
}

static int64_t floor_to(int64_t t, int64_t unit)
{
    int64_t q = t / unit;
    return (q - (t % unit < 0)) * unit;
}

static int meta_get(pw_store *s, const char *key, int64_t *out)
{
    sqlite3_stmt *st = s->stmt[ST_META_GET];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int meta_set(pw_store *s, const char *key, int64_t v)
{
    sqlite3_stmt *st = s->stmt[ST_META_SET];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    return pw_store__step_done(st);
}

/* Runs a one-value query; *found tells whether it returned a non-NULL value. */
static int query_int(sqlite3_stmt *st, int64_t *out, int *found)
{
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    *out = *found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int write_block(pw_store *s, int tier, int64_t series, const store__rec *recs, size_t n)
{
    store__enc_init(&s->enc, recs[0].ts, pw_store__tiers[tier].nfields);
    for (size_t i = 0; i < n; i++)
        store__enc_add(&s->enc, &recs[i]);
    sqlite3_stmt *st = s->stmt[ST_BLOCK_ADD];
    sqlite3_bind_int(st, 1, tier);
    sqlite3_bind_int64(st, 2, series);
    sqlite3_bind_int64(st, 3, recs[0].ts);
    sqlite3_bind_int64(st, 4, recs[n - 1].ts);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)n);
    sqlite3_bind_blob(st, 6, s->enc.out.p, (int)s->enc.out.len, SQLITE_STATIC);
    return pw_store__step_done(st);
}

int pw_store__rebuild_from(pw_store *s, int64_t from_ms)
{
    int rc = SQLITE_OK;
    for (int tier = PW_STORE__TIER_M1; rc == SQLITE_OK && tier < PW_STORE__TIERS; tier++) {
        int64_t built, cursor, start = floor_to(from_ms, pw_store__tiers[tier].span_ms);
        rc = meta_get(s, built_key[tier], &built);
        if (rc == SQLITE_OK)
            rc = meta_get(s, cursor_key[tier], &cursor);
        /* Nothing built at or past start yet: maintenance gets there in order. */
        if (rc != SQLITE_OK || built < start || (built == start && cursor == 0))
            continue;
        /* A period being built (cursor) is at or after start too: it starts over. */
        sqlite3_stmt *st = s->stmt[ST_AGG_DEL_FROM];
        sqlite3_bind_int(st, 1, tier);
        sqlite3_bind_int64(st, 2, start);
        rc = pw_store__step_done(st);
        if (rc == SQLITE_OK)
            rc = meta_set(s, built_key[tier], start);
        if (rc == SQLITE_OK)
            rc = meta_set(s, cursor_key[tier], 0);
    }
    return rc;
}

/* ---- sealing the tail into raw blocks ---- */

typedef struct tail_row {
    int64_t id, series;
    store__rec rec;
} tail_row;

static int cmp_tail_row(const void *a, const void *b)
{
    const tail_row *x = a, *y = b;
    if (x->series != y->series)
        return x->series < y->series ? -1 : 1;
    if (x->rec.ts != y->rec.ts)
        return x->rec.ts < y->rec.ts ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Reads up to limit tail rows older than cutoff, oldest first. A row whose value does not decode
 * is kept with zeros rather than blocking the tail forever; the count is returned in *bad. */
static int read_tail(pw_store *s, int64_t cutoff, int64_t limit, tail_row *rows, size_t *n,
                     size_t *bad)
{
    sqlite3_stmt *st = s->stmt[ST_TAIL_OLDEST];
    sqlite3_bind_int64(st, 1, cutoff);
    sqlite3_bind_int64(st, 2, limit);
    int rc;
    *n = *bad = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tail_row *r = &rows[(*n)++];
        r->id = sqlite3_column_int64(st, 0);
        r->series = sqlite3_column_int64(st, 1);
        int64_t ts = sqlite3_column_int64(st, 2);
        store__dec d;
        store__dec_init(&d, sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3), ts,
                        PW_STORE__RAW_FIELDS);
        if (store__dec_next(&d, &r->rec) != 1) {
            memset(&r->rec, 0, sizeof(r->rec));
            r->rec.ts = ts;
            ++*bad;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Encodes sorted rows as one block per series and minute and deletes them from the tail: every
 * row before `before` in one range delete when the rows are exactly those, else one by one. */
static int seal_rows(pw_store *s, tail_row *rows, size_t n, int64_t before)
{
    int rc = SQLITE_OK;
    store__rec *recs = pw_xmalloc(n * sizeof(*recs));
    for (size_t i = 0; rc == SQLITE_OK && i < n;) {
        int64_t minute = floor_to(rows[i].rec.ts, pw_store__tiers[PW_STORE__TIER_RAW].span_ms);
        size_t j = i, k = 0;
        while (j < n && rows[j].series == rows[i].series &&
               floor_to(rows[j].rec.ts, pw_store__tiers[PW_STORE__TIER_RAW].span_ms) == minute)
            recs[k++] = rows[j++].rec;
        rc = write_block(s, PW_STORE__TIER_RAW, rows[i].series, recs, k);
        i = j;
    }
    free(recs);
    if (before != INT64_MIN) {
        sqlite3_stmt *range = s->stmt[ST_TAIL_DEL_BEFORE];
        sqlite3_bind_int64(range, 1, before);
        return rc == SQLITE_OK ? pw_store__step_done(range) : rc;
    }
    sqlite3_stmt *del = s->stmt[ST_TAIL_DEL];
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        sqlite3_bind_int64(del, 1, rows[i].id);
        rc = pw_store__step_done(del);
    }
    return rc;
}

/* Seals every tail row from before the last complete minute (minus the grace period). */
static int seal_tail(maint *m)
{
    pw_store *s = m->s;
    int64_t cutoff = floor_to(m->now - m->p->grace_ms, pw_store__tiers[0].span_ms);
    int64_t limit = m->budget < TAIL_CHUNK ? m->budget : TAIL_CHUNK;
    if (limit <= 0)
        return SQLITE_OK;
    tail_row *rows = pw_xmalloc((size_t)limit * sizeof(*rows));
    int rc = SQLITE_OK, full = 1;
    while (rc == SQLITE_OK && full && m->budget > 0) {
        size_t n = 0, bad = 0;
        rc = pw_store__step_done(s->stmt[ST_BEGIN]);
        if (rc == SQLITE_OK)
            rc = read_tail(s, cutoff, limit, rows, &n, &bad);
        full = n == (size_t)limit; /* else everything before the cutoff is in hand */
        int64_t before = cutoff;
        if (full) {
            /* Leave the chunk's last minute whole for the next chunk, unless that is all (then
             * rows of one timestamp may straddle chunks: delete them by id). */
            before = floor_to(rows[n - 1].rec.ts, pw_store__tiers[0].span_ms);
            size_t keep = n;
            while (keep > 0 && rows[keep - 1].rec.ts >= before)
                keep--;
            n = keep ? keep : n;
            before = keep ? before : INT64_MIN;
        }
        if (bad)
            pw_warn("store", "%zu pending samples did not decode and were sealed as zeros", bad);
        if (rc == SQLITE_OK && n) {
            qsort(rows, n, sizeof(*rows), cmp_tail_row);
            rc = seal_rows(s, rows, n, before);
        }
        if (rc == SQLITE_OK)
            rc = pw_store__step_done(s->stmt[ST_COMMIT]);
        m->budget -= (int64_t)n;
    }
    free(rows);
    if (rc == SQLITE_OK && full)
        m->more = 1;
    return rc;
}

/* ---- building aggregate tiers ---- */

/* Whether the period [start, end) of the tier below `tier` is complete: raw samples must be
 * past the grace period and sealed, an aggregate tier must be built past it. */
static int source_complete(maint *m, int tier, int64_t end, int *complete)
{
    if (tier - 1 == PW_STORE__TIER_RAW) {
        *complete = 0;
        if (m->now - m->p->grace_ms < end)
            return SQLITE_OK;
        int64_t v;
        int pending;
        sqlite3_stmt *st = m->s->stmt[ST_TAIL_ANY_BEFORE];
        sqlite3_bind_int64(st, 1, end);
        int rc = query_int(st, &v, &pending);
        *complete = !pending;
        return rc;
    }
    int64_t built;
    int rc = meta_get(m->s, built_key[tier - 1], &built);
    *complete = built >= end;
    return rc;
}

/* Aggregates one series' source records of [start, start + span) into records of `tier`, one
 * per res_ms, and writes them as one block. Adds the records read to *work. */
static int build_series(pw_store *s, int tier, int64_t series, int64_t start, int64_t *work)
{
    const store__tier *t = &pw_store__tiers[tier];
    int src = tier - 1;
    size_t nb = (size_t)(t->span_ms / t->res_ms);
    store__acc *acc = pw_xcalloc(nb, sizeof(*acc));
    sqlite3_stmt *st = s->stmt[ST_BLOCK_RANGE];
    sqlite3_bind_int(st, 1, src);
    sqlite3_bind_int64(st, 2, series);
    sqlite3_bind_int64(st, 3, start);
    sqlite3_bind_int64(st, 4, start + t->span_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store__dec d;
        store__rec r;
        store__dec_init(&d, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
                        sqlite3_column_int64(st, 0), pw_store__tiers[src].nfields);
        int got;
        while ((got = store__dec_next(&d, &r)) == 1) {
            ++*work;
            int64_t b = floor_to(r.ts - start, t->res_ms) / t->res_ms;
            if (b >= 0 && (size_t)b < nb)
                store__acc_add(&acc[b], src, &r);
        }
        if (got < 0)
            pw_warn("store", "a block of series %lld at %lld is corrupt; aggregating what decodes",
                    (long long)series, (long long)sqlite3_column_int64(st, 0));
    }
    sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;

    store__rec *out = pw_xmalloc(nb * sizeof(*out));
    size_t n = 0;
    for (size_t b = 0; b < nb; b++)
        if (acc[b].n)
            store__acc_record(&acc[b], start + (int64_t)b * t->res_ms, &out[n++]);
    if (rc == SQLITE_OK && n)
        rc = write_block(s, tier, series, out, n);
    free(out);
    free(acc);
    return rc;
}

/* Finds the next period of `tier` to build: the period of the first source data at or after
 * built. *start is 0 when there is none or it is not complete yet. */
static int next_period(maint *m, int tier, int64_t built, int64_t *start)
{
    sqlite3_stmt *st = m->s->stmt[ST_BLOCK_NEXT];
    sqlite3_bind_int(st, 1, tier - 1);
    sqlite3_bind_int64(st, 2, built);
    int64_t next;
    int found, complete = 0;
    int rc = query_int(st, &next, &found);
    *start = 0;
    if (rc != SQLITE_OK || !found)
        return rc;
    int64_t p = floor_to(next, pw_store__tiers[tier].span_ms);
    if (p < built)
        p = built;
    rc = source_complete(m, tier, p + pw_store__tiers[tier].span_ms, &complete);
    if (rc == SQLITE_OK && complete)
        *start = p;
    return rc;
}

/* Builds the next series of the current period of `tier`, in transactions of a bounded number of
 * series, until the budget is spent or nothing complete is left. */
static int build_tier(maint *m, int tier)
{
    pw_store *s = m->s;
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && m->budget > 0) {
        int64_t built, cursor, start = 0, work = 0;
        rc = pw_store__step_done(s->stmt[ST_BEGIN]);
        if (rc == SQLITE_OK)
            rc = meta_get(s, built_key[tier], &built);
        if (rc == SQLITE_OK)
            rc = meta_get(s, cursor_key[tier], &cursor);
        if (rc == SQLITE_OK && cursor == 0)
            rc = next_period(m, tier, built, &start);
        else
            start = built;
        if (rc != SQLITE_OK || !start) {
            if (rc == SQLITE_OK)
                rc = pw_store__step_done(s->stmt[ST_COMMIT]);
            return rc;
        }
        int found = 1;
        for (int i = 0; rc == SQLITE_OK && i < SERIES_PER_TXN && m->budget - work > 0; i++) {
            sqlite3_stmt *st = s->stmt[ST_SERIES_AFTER];
            sqlite3_bind_int64(st, 1, cursor);
            int64_t next;
            rc = query_int(st, &next, &found);
            if (rc != SQLITE_OK || !found)
                break;
            rc = build_series(s, tier, next, start, &work);
            cursor = next;
        }
        if (rc == SQLITE_OK && !found) { /* every series done: the period is complete */
            start += pw_store__tiers[tier].span_ms;
            cursor = 0;
        }
        if (rc == SQLITE_OK)
            rc = meta_set(s, built_key[tier], start);
        if (rc == SQLITE_OK)
            rc = meta_set(s, cursor_key[tier], cursor);
        if (rc == SQLITE_OK)
            rc = pw_store__step_done(s->stmt[ST_COMMIT]);
        m->budget -= work + 1;
    }
    if (rc == SQLITE_OK && m->budget <= 0)
        m->more = 1;
    return rc;
}

/* ---- retention and the size cap ---- */

/* Deletes up to `chunk` of the oldest rows of one kind older than cut in one transaction;
 * *deleted says how many went. what: a tier, or -1 for limit changes. */
static int delete_oldest(maint *m, int what, int64_t cut, int64_t chunk, int64_t *deleted)
{
    pw_store *s = m->s;
    sqlite3_stmt *st = s->stmt[what < 0 ? ST_LIMIT_DEL_OLD : ST_BLOCK_DEL_OLD];
    int col = 1;
    if (what >= 0)
        sqlite3_bind_int(st, col++, what);
    sqlite3_bind_int64(st, col++, cut);
    sqlite3_bind_int64(st, col, chunk);
    int rc = pw_store__step_done(s->stmt[ST_BEGIN]);
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(st);
    *deleted = rc == SQLITE_OK ? sqlite3_changes(s->db) : 0;
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(s->stmt[ST_COMMIT]);
    m->budget -= DELETE_COST * (*deleted + 1);
    return rc;
}

/* How far back each kind of data may be dropped: never data that is not aggregated yet. */
static int drop_limits(maint *m, int64_t cut[PW_STORE__TIERS], int64_t *limit_cut)
{
    int64_t built_m1 = 0, built_m15 = 0;
    int rc = meta_get(m->s, built_key[PW_STORE__TIER_M1], &built_m1);
    if (rc == SQLITE_OK)
        rc = meta_get(m->s, built_key[PW_STORE__TIER_M15], &built_m15);
    cut[PW_STORE__TIER_RAW] = built_m1;
    cut[PW_STORE__TIER_M1] = built_m15;
    cut[PW_STORE__TIER_M15] = INT64_MAX;
    *limit_cut = INT64_MAX;
    return rc;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int retention(maint *m)
{
    int64_t cut[PW_STORE__TIERS], limit_cut;
    int rc = drop_limits(m, cut, &limit_cut);
    if (rc != SQLITE_OK)
        return rc;
    const int64_t keep[PW_STORE__TIERS] = {m->p->raw_keep_ms, m->p->m1_keep_ms, m->p->m15_keep_ms};
    for (int what = -1; rc == SQLITE_OK && what < PW_STORE__TIERS; what++) {
        int64_t c = what < 0 ? m->now - m->p->limit_keep_ms : min64(cut[what], m->now - keep[what]);
        int64_t deleted = DELETE_CHUNK;
        while (rc == SQLITE_OK && deleted == DELETE_CHUNK && m->budget > 0)
            rc = delete_oldest(m, what, c, DELETE_CHUNK, &deleted);
        if (rc == SQLITE_OK && deleted == DELETE_CHUNK)
            m->more = 1;
    }
    return rc;
}

static int page_stats(sqlite3 *db, int64_t *pages, int64_t *free_pages, int64_t *page_size)
{
    char v[32];
    int rc = pw_store__pragma_text(db, "PRAGMA page_count", v, sizeof(v));
    *pages = atoll(v);
    if (rc == SQLITE_OK)
        rc = pw_store__pragma_text(db, "PRAGMA freelist_count", v, sizeof(v));
    *free_pages = atoll(v);
    if (rc == SQLITE_OK)
        rc = pw_store__pragma_text(db, "PRAGMA page_size", v, sizeof(v));
    *page_size = atoll(v);
    return rc;
}

/* Over the cap: drops the oldest fine-grained data first until the used size is back under
 * CAP_TARGET_PCT of the cap, then hands free pages back to the file system. */
static int size_cap(maint *m)
{
    if (!m->p->max_bytes)
        return SQLITE_OK;
    int64_t pages, free_pages, page_size, cut[PW_STORE__TIERS], limit_cut;
    int rc = page_stats(m->s->db, &pages, &free_pages, &page_size);
    if (rc != SQLITE_OK)
        return rc;
    uint64_t used = (uint64_t)((pages - free_pages) * page_size);
    if (used > m->p->max_bytes) {
        uint64_t target = m->p->max_bytes / 100 * CAP_TARGET_PCT;
        rc = drop_limits(m, cut, &limit_cut);
        /* Raw samples older than the protected window, limit changes, 1-minute aggregates, the
         * protected raw samples, then 15-minute aggregates; each oldest first. */
        const int order[] = {PW_STORE__TIER_RAW, -1, PW_STORE__TIER_M1, PW_STORE__TIER_RAW,
                             PW_STORE__TIER_M15};
        int64_t protect = m->now - m->p->cap_keep_raw_ms;
        for (size_t i = 0; rc == SQLITE_OK && i < PW_ARRAY_LEN(order) && used > target; i++) {
            int64_t deleted = 1;
            int64_t c = order[i] < 0 ? limit_cut : cut[order[i]];
            if (i == 0)
                c = min64(c, protect);
            while (rc == SQLITE_OK && deleted && used > target && m->budget > 0) {
                rc = delete_oldest(m, order[i], c, DELETE_CHUNK, &deleted);
                if (rc == SQLITE_OK)
                    rc = page_stats(m->s->db, &pages, &free_pages, &page_size);
                used = (uint64_t)((pages - free_pages) * page_size);
            }
        }
        if (rc == SQLITE_OK && used > target && m->budget > 0 && !m->s->cap_warned) {
            pw_warn("store",
                    "database uses %llu bytes, over its cap of %llu, with nothing "
                    "left to drop but sessions and events",
                    (unsigned long long)used, (unsigned long long)m->p->max_bytes);
            m->s->cap_warned = 1;
        } else if (used <= target) {
            m->s->cap_warned = 0;
        }
        if (used > target && m->budget <= 0)
            m->more = 1;
    }
    if (rc == SQLITE_OK && (uint64_t)(pages * page_size) > m->p->max_bytes && free_pages > 0) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", VACUUM_PAGES);
        rc = sqlite3_exec(m->s->db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK && free_pages > VACUUM_PAGES)
            m->more = 1;
    }
    return rc;
}

int pw_store_maintain(pw_store *s, int64_t now_ms, const pw_store_policy *p)
{
    maint m = {.s = s, .p = p, .now = now_ms, .budget = p->work ? p->work : 1};
    s->errmsg[0] = '\0';
    if (p->raw_keep_ms < 0 || p->m1_keep_ms < 0 || p->m15_keep_ms < 0 || p->limit_keep_ms < 0 ||
        p->cap_keep_raw_ms < 0 || p->grace_ms < 0) {
        snprintf(s->errmsg, sizeof(s->errmsg), "maintenance: negative period in the policy");
        return PW_STORE_E_ARG;
    }
    int rc = seal_tail(&m);
    if (rc == SQLITE_OK)
        rc = build_tier(&m, PW_STORE__TIER_M1);
    if (rc == SQLITE_OK)
        rc = build_tier(&m, PW_STORE__TIER_M15);
    if (rc == SQLITE_OK)
        rc = retention(&m);
    if (rc == SQLITE_OK)
        rc = size_cap(&m);
    if (rc != SQLITE_OK) {
        pw_store__abort_txn(s, "maintenance");
        if (s->failed_maint++ == 0)
            pw_warn("store", "maintenance failed, will retry: %s", s->errmsg);
        return PW_STORE_E_WRITE;
    }
    s->failed_maint = 0;
    return m.more;
}
