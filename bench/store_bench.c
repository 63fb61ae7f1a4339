/* Storage benchmarks; they print figures and assert nothing. Build with -O2 (RelWithDebInfo).
 *   store_bench rate  [chargers=1000] [seconds=3600]  sustained writes at 1 Hz, CPU share
 *   store_bench day   [chargers=50]                   bytes per charger per day, real write path
 *   store_bench year  [chargers=1000] [days=365]      facility size after a year, retention on
 *   store_bench query [chargers=100] [days=30]        query times over a month
 * Every run works in a fresh directory under $TMPDIR (or /tmp) and removes it at the end. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pw_store.h"
#include "pw_util.h"
#include "store_internal.h"

#define T0     1735689600000LL /* 2025-01-01T00:00:00Z */
#define DAY_S  86400
#define DAY_MS (DAY_S * 1000LL)

/* ---- clocks ---- */

static double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns its q-quantile (0..1). */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n ? v[(size_t)(q * (double)(n - 1))] : 0;
}

/* ---- a charger model ---- */

/* A day of one charger: most days one car arrives, charges a few hours at whatever the balancer
 * offers (changed every few minutes), with the ripple of a real measurement (+-0.15 A at 10 mA
 * resolution), tapers off and leaves. The rest of the day the charger is idle. */
typedef struct model {
    uint64_t rng;
    int arrive, start, stop, leave; /* seconds of the day; arrive = -1: no car today */
    int phases;
    int32_t car_max;   /* centiamperes the car takes at most */
    int32_t limit;     /* what the balancer offers, centiamperes */
    int next_change;   /* second of the next limit change */
    int limit_changes; /* today */
} model;

static uint32_t rnd(model *m)
{
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (uint32_t)((m->rng * 2685821657736338717ull) >> 32);
}

static int rnd_in(model *m, int lo, int hi)
{
    return lo + (int)(rnd(m) % (uint32_t)(hi - lo + 1));
}

static void model_day(model *m, int all_day)
{
    m->limit_changes = 0;
    if (all_day) {
        m->arrive = m->start = 0;
        m->stop = m->leave = DAY_S;
    } else if (rnd(m) % 10 < 7) {
        m->arrive = rnd_in(m, 6 * 3600, 22 * 3600);
        m->start = m->arrive + rnd_in(m, 5, 120);
        m->stop = m->start + rnd_in(m, 3600, 6 * 3600);
        if (m->stop > DAY_S - 600)
            m->stop = DAY_S - 600;
        m->leave = m->stop + rnd_in(m, 60, 3600);
        if (m->leave > DAY_S - 1)
            m->leave = DAY_S - 1;
    } else {
        m->arrive = -1;
    }
    m->phases = rnd(m) % 10 < 6 ? 3 : 1;
    m->car_max = rnd(m) % 2 ? 1600 : 3200;
    m->limit = 1600;
    m->next_change = m->start + rnd_in(m, 60, 600);
}

/* The sample at second s of the day: state, phases, limit and the three currents. */
static void model_sample(model *m, int s, store__rec *r)
{
    memset(r->v, 0, sizeof(r->v));
    if (m->arrive < 0 || s < m->arrive || s >= m->leave)
        return;                  /* state A, nothing connected */
    r->v[PW_STORE__F_STATE] = 1; /* B: connected */
    r->v[PW_STORE__F_PHASES] = m->phases;
    if (s >= m->next_change && s < m->stop) {
        m->limit = rnd_in(m, 600, 3200);
        m->next_change = s + rnd_in(m, 60, 600);
        m->limit_changes++;
    }
    r->v[PW_STORE__F_LIMIT] = m->limit;
    if (s < m->start || s >= m->stop)
        return;
    r->v[PW_STORE__F_STATE] = 2; /* C: charging */
    int32_t draw = m->limit < m->car_max ? m->limit : m->car_max;
    if (m->stop - s < 1800) /* taper */
        draw = draw * (m->stop - s) / 1800;
    for (int k = 0; k < m->phases; k++)
        r->v[PW_STORE__F_I1 + k] = draw - 30 + rnd_in(m, -15, 15);
}

/* ---- files ---- */

static void tmp_dir(char *dir, size_t size)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, size, "%s/pw-store-bench-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d))) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static pw_store *open_store(const char *path)
{
    char err[512];
    pw_store *s;
    if (pw_store_open(&s, path, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return s;
}

/* A new store in a new temporary directory (dir: 256 bytes, path: 300), default policy. */
static pw_store *fresh_store(char *dir, char *path, pw_store_policy *policy)
{
    tmp_dir(dir, 256);
    snprintf(path, 300, "%s/history.db", dir);
    pw_store_policy_default(policy);
    return open_store(path);
}

static void maintain_all(pw_store *s, int64_t now, const pw_store_policy *p)
{
    int rc;
    while ((rc = pw_store_maintain(s, now, p)) == 1)
        ;
    if (rc < 0) {
        fprintf(stderr, "maintenance: %s\n", pw_store_errmsg(s));
        exit(1);
    }
}

/* Prints the space each table and index takes, from SQLite's dbstat table. */
static void print_space(sqlite3 *db, double per)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT name, sum(pgsize), sum(pgsize - unused) FROM dbstat "
                           "GROUP BY name ORDER BY 2 DESC",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    printf("  %-22s %14s %14s %12s\n", "table/index", "bytes", "payload+hdr", "per unit");
    while (sqlite3_step(st) == SQLITE_ROW)
        printf("  %-22s %14lld %14lld %12.0f\n", (const char *)sqlite3_column_text(st, 0),
               sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
               (double)sqlite3_column_int64(st, 1) / per);
    sqlite3_finalize(st);
}

static void sample_of(const store__rec *r, int c, int64_t ts, pw_store_charger_sample *out)
{
    memset(out, 0, sizeof(*out));
    out->ts_ms = ts;
    snprintf(out->charger, sizeof(out->charger), "c%04d", c);
    out->state = (uint8_t)r->v[PW_STORE__F_STATE];
    out->phases = (uint8_t)r->v[PW_STORE__F_PHASES];
    out->limit_a = (float)r->v[PW_STORE__F_LIMIT] / 100.0f;
    for (int k = 0; k < 3; k++)
        out->current_a[k] = (float)r->v[PW_STORE__F_I1 + k] / 100.0f;
}

/* ---- rate: 1,000 chargers at 1 Hz ---- */

static void bench_rate(int chargers, int seconds)
{
    char dir[256], path[300];
    pw_store_policy policy;
    pw_store *s = fresh_store(dir, path, &policy);
    model *m = pw_xcalloc((size_t)chargers, sizeof(*m));
    for (int c = 0; c < chargers; c++) {
        m[c].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1);
        model_day(&m[c], 0);
        /* Start in the evening peak, when most cars are charging. */
    }
    pw_store_batch *b = pw_store_batch_new();
    double *fill_us = pw_xmalloc((size_t)seconds * sizeof(double));
    double *write_ms = pw_xmalloc((size_t)seconds * sizeof(double));
    double *maint_ms = pw_xmalloc((size_t)seconds * sizeof(double));
    size_t nmaint = 0;
    long long rows = 0;
    int start_s = 18 * 3600;
    pw_store_charger_sample *tick = pw_xmalloc((size_t)chargers * sizeof(*tick));
    double model_cpu = 0;
    double w0 = wall_s(), c0 = cpu_s();
    for (int t = 0; t < seconds; t++) {
        int sec = (start_s + t) % DAY_S;
        int64_t ts = T0 + (int64_t)(start_s + t) * 1000;
        /* The chargers' reports (the model): not storage work, timed apart and left out. */
        double m0 = thread_cpu_s();
        for (int c = 0; c < chargers; c++) {
            store__rec r;
            model_sample(&m[c], sec, &r);
            sample_of(&r, c, ts, &tick[c]);
        }
        model_cpu += thread_cpu_s() - m0;
        /* What the control loop spends on storage per tick: filling the batch. */
        double f0 = wall_s();
        pw_store_batch_clear(b);
        for (int c = 0; c < chargers; c++)
            pw_store_batch_add_charger(b, &tick[c]);
        pw_store_node_sample node = {.ts_ms = ts, .node = "main", .current_a = {200, 190, 210}};
        pw_store_batch_add_node(b, &node);
        double f1 = wall_s();
        fill_us[t] = (f1 - f0) * 1e6;
        if (pw_store_write(s, b)) {
            fprintf(stderr, "write: %s\n", pw_store_errmsg(s));
            exit(1);
        }
        double f2 = wall_s();
        write_ms[t] = (f2 - f1) * 1e3;
        rows += (long long)pw_store_batch_rows(b);
        if (t % 5 == 4) { /* the server's maintenance timer: every 5 s */
            double g0 = wall_s();
            if (pw_store_maintain(s, ts, &policy) < 0) {
                fprintf(stderr, "maintain: %s\n", pw_store_errmsg(s));
                exit(1);
            }
            maint_ms[nmaint++] = (wall_s() - g0) * 1e3;
        }
    }
    double wall = wall_s() - w0, cpu = cpu_s() - c0 - model_cpu;
    free(tick);
    printf("rate: %d chargers at 1 Hz, %d simulated seconds (%.1f h), file %s\n", chargers, seconds,
           seconds / 3600.0, path);
    printf("  rows written            %lld in %.2f s wall: %.0f rows/s sustained "
           "(%.1fx real time, writes and maintenance back to back)\n",
           rows, wall, (double)rows / wall, seconds / wall);
    printf("  CPU                     %.2f s for %d s of data: %.2f%% of one core at 1 Hz "
           "(user+sys, model excluded)\n",
           cpu, seconds, 100.0 * cpu / seconds);
    printf("  loop: batch fill/tick   p50 %.0f us  p99 %.0f us  max %.0f us\n",
           quantile(fill_us, (size_t)seconds, 0.5), quantile(fill_us, (size_t)seconds, 0.99),
           quantile(fill_us, (size_t)seconds, 1.0));
    printf("  worker: write/tick      p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
           quantile(write_ms, (size_t)seconds, 0.5), quantile(write_ms, (size_t)seconds, 0.99),
           quantile(write_ms, (size_t)seconds, 1.0));
    printf("  worker: maintain/5 s    p50 %.2f ms  p99 %.2f ms  max %.2f ms (%zu calls)\n",
           quantile(maint_ms, nmaint, 0.5), quantile(maint_ms, nmaint, 0.99),
           quantile(maint_ms, nmaint, 1.0), nmaint);
    char wal[320];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    printf("  file                    %lld bytes (+ WAL %lld)\n", file_size(path), file_size(wal));
    free(fill_us);
    free(write_ms);
    free(maint_ms);
    free(m);
    pw_store_batch_free(b);
    pw_store_close(s);
    rm_dir(dir);
}

/* ---- day: bytes per charger per day through the real write path ---- */

static void day_run(int chargers, int all_day, const char *label)
{
    char dir[256], path[300];
    pw_store_policy policy;
    pw_store *s = fresh_store(dir, path, &policy);
    model *m = pw_xcalloc((size_t)chargers, sizeof(*m));
    long long changes = 0;
    for (int c = 0; c < chargers; c++) {
        m[c].rng = 0xD1B54A32D192ED03ull * (uint64_t)(c + 7);
        model_day(&m[c], all_day);
    }
    pw_store_batch *b = pw_store_batch_new();
    double w0 = wall_s();
    for (int sec = 0; sec < DAY_S; sec++) {
        int64_t ts = T0 + (int64_t)sec * 1000;
        pw_store_batch_clear(b);
        for (int c = 0; c < chargers; c++) {
            store__rec r;
            pw_store_charger_sample cs;
            int before = m[c].limit_changes;
            model_sample(&m[c], sec, &r);
            sample_of(&r, c, ts, &cs);
            pw_store_batch_add_charger(b, &cs);
            if (m[c].limit_changes != before) {
                pw_store_limit_change lc = {.ts_ms = ts,
                                            .limit_a = cs.limit_a,
                                            .phases = 3,
                                            .reason = "fair_share",
                                            .text = "fair share of Garage B, L2"};
                pw_strlcpy(lc.charger, cs.charger, sizeof(lc.charger));
                pw_store_batch_add_limit_change(b, &lc);
                changes++;
            }
        }
        if (pw_store_write(s, b)) {
            fprintf(stderr, "write: %s\n", pw_store_errmsg(s));
            exit(1);
        }
        if (sec % 10 == 9)
            maintain_all(s, ts, &policy);
    }
    maintain_all(s, T0 + DAY_MS + 3600 * 1000, &policy);
    double wall = wall_s() - w0;
    pw_store_close(s); /* checkpoint: the file is all there is */
    sqlite3 *db;
    sqlite3_open(path, &db);
    long long total = file_size(path);
    printf("day (%s): %d chargers x 86,400 samples at 1 Hz, %lld limit changes, real write "
           "path, %.1f s\n",
           label, chargers, changes, wall);
    printf("  file after the day, every tier:  %lld bytes = %.0f bytes per charger per day\n",
           total, (double)total / chargers);
    print_space(db, chargers);
    sqlite3_exec(db, "DELETE FROM block WHERE tier > 0; DELETE FROM limit_change; VACUUM", NULL,
                 NULL, NULL);
    sqlite3_close(db);
    printf("  full resolution only (aggregates and limit changes deleted, VACUUM): %.0f bytes "
           "per charger per day\n",
           (double)file_size(path) / chargers);
    free(m);
    pw_store_batch_free(b);
    rm_dir(dir);
}

/* ---- synthetic history: blocks generated directly with the real codec ---- */

typedef struct gen {
    pw_store *s;
    sqlite3 *db;
    sqlite3_stmt *block, *session, *limit, *event;
    store__enc enc;
    int chargers;
} gen;

static void gen_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, msg);
        exit(1);
    }
}

static void gen_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
}

static void gen_block(gen *g, int tier, int64_t series, const store__rec *r, int n)
{
    store__enc_init(&g->enc, r[0].ts, pw_store__tiers[tier].nfields);
    for (int i = 0; i < n; i++)
        store__enc_add(&g->enc, &r[i]);
    sqlite3_bind_int(g->block, 1, tier);
    sqlite3_bind_int64(g->block, 2, series);
    sqlite3_bind_int64(g->block, 3, r[0].ts);
    sqlite3_bind_int64(g->block, 4, r[n - 1].ts);
    sqlite3_bind_int(g->block, 5, n);
    sqlite3_bind_blob(g->block, 6, g->enc.out.p, (int)g->enc.out.len, SQLITE_STATIC);
    if (pw_store__step_done(g->block) != SQLITE_OK) {
        fprintf(stderr, "block: %s\n", sqlite3_errmsg(g->db));
        exit(1);
    }
}

/* One minute of a charger as its 1-minute record, without generating the 60 samples: the model's
 * state at the minute's start with the ripple's typical spread (the faster model the year needs;
 * `day` measures the real path). */
static void minute_record(model *m, int minute, int64_t ts, store__rec *out)
{
    store__rec r;
    model_sample(m, minute * 60, &r);
    memset(out, 0, sizeof(*out));
    out->ts = ts;
    out->v[PW_STORE__A_N] = 60;
    for (int k = 0; k < PW_STORE__MEASURED; k++) {
        int32_t v = r.v[k], *st = &out->v[PW_STORE__A_STATS + 3 * k];
        int ripple = v && k < 3;
        st[0] = v - (ripple ? 13 + (int32_t)(rnd(m) % 3) : 0);
        st[1] = v + (ripple ? (int32_t)(rnd(m) % 5) - 2 : 0);
        st[2] = v + (ripple ? 13 + (int32_t)(rnd(m) % 3) : 0);
    }
    out->v[PW_STORE__A_STATE] = r.v[PW_STORE__F_STATE];
    out->v[PW_STORE__A_PHASES] = r.v[PW_STORE__F_PHASES];
}

/* Day d of charger c: 1-minute blocks per hour always, full-resolution blocks per minute when
 * `raw`, and the day's session, limit changes and events. */
static void gen_charger_day(gen *g, model *m, int c, int d, int raw)
{
    int64_t series = c + 1, day0 = T0 + (int64_t)d * DAY_MS;
    model_day(m, 0);
    model mm = *m; /* the raw pass replays the same day */
    static store__rec recs[60];
    for (int h = 0; h < 24; h++) {
        for (int i = 0; i < 60; i++)
            minute_record(m, h * 60 + i, day0 + (int64_t)(h * 60 + i) * 60000, &recs[i]);
        gen_block(g, PW_STORE__TIER_M1, series, recs, 60);
    }
    if (raw) {
        for (int minute = 0; minute < 1440; minute++) {
            for (int i = 0; i < 60; i++) {
                int s = minute * 60 + i;
                model_sample(&mm, s, &recs[i]);
                recs[i].ts = day0 + (int64_t)s * 1000;
            }
            gen_block(g, PW_STORE__TIER_RAW, series, recs, 60);
        }
    }
    if (m->arrive >= 0) {
        sqlite3_bind_int64(g->session, 1, series);
        sqlite3_bind_int64(g->session, 2, day0 + m->start * 1000LL);
        sqlite3_bind_int64(g->session, 3, day0 + m->stop * 1000LL);
        sqlite3_bind_int64(g->session, 4, (int64_t)d * 40000);
        sqlite3_bind_int64(g->session, 5,
                           (int64_t)d * 40000 + (m->stop - m->start) * m->phases * 230 * 16 / 3600);
        pw_store__step_done(g->session);
        for (int k = 0; k < 4; k++) { /* connected, charging, stopped, disconnected */
            static const char *const kinds[] = {"car_connected", "charging_started",
                                                "charging_stopped", "car_disconnected"};
            const int at[] = {m->arrive, m->start, m->stop, m->leave};
            sqlite3_bind_int64(g->event, 1, day0 + at[k] * 1000LL);
            sqlite3_bind_text(g->event, 2, kinds[k], -1, SQLITE_STATIC);
            sqlite3_bind_int(g->event, 3, c);
            pw_store__step_done(g->event);
        }
    }
    for (int k = 0; k < m->limit_changes; k++) {
        sqlite3_bind_int64(g->limit, 1, day0 + (m->start + k * 300) * 1000LL);
        sqlite3_bind_int64(g->limit, 2, series);
        sqlite3_bind_int(g->limit, 3, rnd_in(m, 600, 3200));
        pw_store__step_done(g->limit);
    }
}

/* Builds `days` days of history for `chargers`, the last raw_days of them at full resolution,
 * running the real maintenance (15-minute aggregates, retention, cap) at the end of every day as
 * the server would. */
static void generate(const char *path, int chargers, int days, int raw_days,
                     const pw_store_policy *policy, int verbose)
{
    gen g = {.chargers = chargers};
    g.s = open_store(path);
    g.db = pw_store__db(g.s);
    gen_exec(g.db, "PRAGMA cache_size = -262144");
    gen_prepare(g.db,
                "INSERT INTO block (tier, series_id, t0, t1, n, v) VALUES (?1,?2,?3,?4,?5,?6)",
                &g.block);
    gen_prepare(g.db,
                "INSERT INTO session (charger_id, start_ms, end_ms, register_start_wh, "
                "register_wh, peak_ca, ref) VALUES (?1, ?2, ?3, ?4, ?5, 3200, '')",
                &g.session);
    gen_prepare(g.db,
                "INSERT INTO limit_change (ts, charger_id, limit_ca, phases, reason, text) "
                "VALUES (?1, ?2, ?3, 3, 'fair_share', 'fair share of Garage B, L2')",
                &g.limit);
    gen_prepare(g.db,
                "INSERT INTO event (ts, kind, subject, detail) VALUES (?1, ?2, 'c' || ?3, '')",
                &g.event);
    gen_exec(g.db, "BEGIN");
    for (int c = 0; c < chargers; c++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO series (id, kind, name) VALUES (%d, 1, 'c%04d')",
                 c + 1, c);
        gen_exec(g.db, sql);
    }
    gen_exec(g.db, "COMMIT");
    model *m = pw_xcalloc((size_t)chargers, sizeof(*m));
    for (int c = 0; c < chargers; c++)
        m[c].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1);
    double w0 = wall_s();
    for (int d = 0; d < days; d++) {
        gen_exec(g.db, "BEGIN");
        for (int c = 0; c < chargers; c++)
            gen_charger_day(&g, &m[c], c, d, d >= days - raw_days);
        char sql[128];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO meta (key, value) VALUES ('built.m1', %lld) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (long long)(T0 + (d + 1) * DAY_MS));
        gen_exec(g.db, sql);
        gen_exec(g.db, "COMMIT");
        maintain_all(g.s, T0 + (d + 1) * DAY_MS + 3600 * 1000, policy);
        if (verbose && (d % 30 == 29 || d == days - 1))
            printf("  day %3d: file %lld bytes, %.0f s\n", d + 1, file_size(path), wall_s() - w0);
        fflush(stdout);
    }
    sqlite3_finalize(g.block);
    sqlite3_finalize(g.session);
    sqlite3_finalize(g.limit);
    sqlite3_finalize(g.event);
    store__buf_free(&g.enc.out);
    free(m);
    pw_store_close(g.s);
}

static void bench_year(int chargers, int days, int capped)
{
    char dir[256], path[300];
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/history.db", dir);
    pw_store_policy policy;
    pw_store_policy_default(&policy);
    if (!capped)
        policy.max_bytes = 0;
    printf("year: %d chargers, %d days, full resolution for the last 7 days, size cap %s\n",
           chargers, days, capped ? "1 GiB (default)" : "off");
    double w0 = wall_s();
    generate(path, chargers, days, 7, &policy, 1);
    sqlite3 *db;
    sqlite3_open(path, &db);
    printf("  after %d days: %lld bytes (%.2f GiB) in %.0f s; per charger %.0f bytes\n", days,
           file_size(path), (double)file_size(path) / (1 << 30), wall_s() - w0,
           (double)file_size(path) / chargers);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db,
                       "SELECT tier, count(*), sum(n), min(t0), max(t1), sum(length(v)) "
                       "FROM block GROUP BY tier",
                       -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW)
        printf("  tier %d: %lld blocks, %lld records, %lld bytes of encoded records, "
               "%.1f days from day %.1f\n",
               sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
               sqlite3_column_int64(st, 5),
               (double)(sqlite3_column_int64(st, 4) - sqlite3_column_int64(st, 3)) / DAY_MS,
               (double)(sqlite3_column_int64(st, 3) - T0) / DAY_MS);
    sqlite3_finalize(st);
    print_space(db, chargers);
    sqlite3_close(db);
    rm_dir(dir);
}

/* ---- query: a month of a 100-charger facility ---- */

typedef struct timing {
    const char *what;
    double ms[21];
} timing;

static void report(timing *t, size_t runs, size_t rows)
{
    printf("  %-52s median %7.2f ms  max %7.2f ms  (%zu rows)\n", t->what,
           quantile(t->ms, runs, 0.5), quantile(t->ms, runs, 1.0), rows);
}

static size_t q_series(pw_store_reader *r, const char *name, int kind, int64_t from, int64_t to,
                       size_t n)
{
    pw_store_point *p;
    size_t count;
    int64_t bucket;
    if (pw_store_query_series(r, kind, name, from, to, n, &p, &count, &bucket)) {
        fprintf(stderr, "%s\n", pw_store_reader_errmsg(r));
        exit(1);
    }
    free(p);
    return count;
}

static void bench_query(int chargers, int days)
{
    char dir[256], path[300], err[512];
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/history.db", dir);
    pw_store_policy policy;
    pw_store_policy_default(&policy);
    double w0 = wall_s();
    generate(path, chargers, days, 7, &policy, 0);
    /* The newest minutes come through the real write path: they sit in the tail. */
    pw_store *s = open_store(path);
    pw_store_batch *b = pw_store_batch_new();
    int64_t end = T0 + days * DAY_MS;
    for (int t = 0; t < 30; t++) {
        pw_store_batch_clear(b);
        for (int c = 0; c < chargers; c++) {
            pw_store_charger_sample cs = {.ts_ms = end + t * 1000,
                                          .state = 2,
                                          .limit_a = 16,
                                          .current_a = {15.9f, 15.8f, 16.0f}};
            snprintf(cs.charger, sizeof(cs.charger), "c%04d", c);
            pw_store_batch_add_charger(b, &cs);
        }
        pw_store_write(s, b);
    }
    pw_store_batch_free(b);
    pw_store_close(s);
    printf("query: %d chargers, %d days (last 7 at full resolution), %lld bytes, built in %.0f s\n",
           chargers, days, file_size(path), wall_s() - w0);

    pw_store_reader *r;
    if (pw_store_reader_open(&r, path, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    int64_t month = (int64_t)days * DAY_MS, from = end - month, to = end + 60000;
    enum { RUNS = 21 };
    static const char *const what[9] = {"series: 1 charger, month, 1000 points",
                                        "series: 1 charger, month, 10000 points (1-min)",
                                        "series: 1 charger, last 24 h, 86400 points (raw)",
                                        "series: 1 charger, last 7 d, 2000 points",
                                        "series: every charger, month, 500 points each",
                                        "sessions: month, all chargers",
                                        "energy: per charger per day, month",
                                        "CSV: sessions of the month",
                                        "CSV: monthly energy per charger"};
    timing t[9];
    for (int i = 0; i < 9; i++)
        t[i].what = what[i];
    size_t rows[9] = {0};
    for (int run = 0; run < RUNS; run++) {
        double a;
        int i = 0;
        a = wall_s();
        rows[i] = q_series(r, "c0042", PW_STORE_CHARGER, from, to, 1000);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        rows[i] = q_series(r, "c0042", PW_STORE_CHARGER, from, to, 10000);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        rows[i] = q_series(r, "c0042", PW_STORE_CHARGER, to - DAY_MS, to, 86400);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        rows[i] = q_series(r, "c0042", PW_STORE_CHARGER, to - 7 * DAY_MS, to, 2000);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        rows[i] = 0;
        for (int c = 0; c < chargers; c++) {
            char name[16];
            snprintf(name, sizeof(name), "c%04d", c);
            rows[i] += q_series(r, name, PW_STORE_CHARGER, from, to, 500);
        }
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        pw_store_session_filter f = {.open = -1, .from_ms = from, .to_ms = to};
        pw_store_session_row *sr;
        pw_store_query_sessions(r, &f, &sr, &rows[i]);
        free(sr);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        pw_store_energy_row *er;
        pw_store_query_energy(r, PW_STORE_DAY, NULL, from, to, &er, &rows[i]);
        free(er);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        char *csv;
        a = wall_s();
        pw_store_csv_sessions(r, &f, &csv);
        rows[i] = strlen(csv);
        free(csv);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
        a = wall_s();
        pw_store_csv_monthly_energy(r, from, to, &csv);
        rows[i] = strlen(csv);
        free(csv);
        t[i++].ms[run] = (wall_s() - a) * 1e3;
    }
    for (int i = 0; i < 9; i++)
        report(&t[i], RUNS, rows[i]);
    printf("  (CSV rows are bytes; %d runs each, page cache warm)\n", RUNS);
    pw_store_reader_close(r);
    rm_dir(dir);
}

static int arg(int argc, char **argv, int i, int def)
{
    return argc > i ? atoi(argv[i]) : def;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    setenv("TZ", "UTC0", 1);
    tzset();
    pw_log_set_level(PW_LOG_WARN);
    if (!strcmp(what, "rate")) {
        bench_rate(arg(argc, argv, 2, 1000), arg(argc, argv, 3, 3600));
    } else if (!strcmp(what, "day")) {
        day_run(arg(argc, argv, 2, 50), 0, "typical: 70% of chargers see one car a day");
        day_run(arg(argc, argv, 2, 50), 1, "worst case: charging all day");
    } else if (!strcmp(what, "year")) {
        bench_year(arg(argc, argv, 2, 1000), arg(argc, argv, 3, 365), arg(argc, argv, 4, 0));
    } else if (!strcmp(what, "query")) {
        bench_query(arg(argc, argv, 2, 100), arg(argc, argv, 3, 30));
    } else {
        fprintf(stderr, "usage: %s rate|day|year|query [count] [days|seconds] [capped]\n", argv[0]);
        return 2;
    }
    return 0;
}
