/* Simulated history for the demo (backfill.h): the fake-time day run of sim/dayrun.c over the 7
 * days before now, its core's records and a sample a minute fed to a pw_history of its own, which
 * writes them in one transaction through a store connection of its own marked as simulated. It
 * all runs on a libuv worker, so the loop keeps balancing meanwhile; SQLite's WAL lets the live
 * history writer and this connection take turns (the busy timeout covers the one long write). */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_int.h"
#include "pw_dayrun.h"
#include "pw_util.h"

#define DAY_MS                (24 * 3600 * 1000LL)
#define SAMPLE_EVERY_MS       60000u /* charts of days need no more; 7 days stay ~150,000 rows */
#define SIM_SEED              1
#define SIM_REF_PREFIX        "sim-"
#define PW_BACKFILL_DAYS_TEXT "7" /* PW_BACKFILL_DAYS, for string literals */
_Static_assert(PW_BACKFILL_DAYS == 7, "PW_BACKFILL_DAYS_TEXT must follow PW_BACKFILL_DAYS");

typedef struct backfill {
    uv_work_t req;
    char db_path[1024];
    pw_cfg *cfg;
    int64_t from_ms, to_ms;
    pw_history *h; /* the worker's, while it runs */
    /* written by the worker, read by the loop in after_work */
    int rc;
    char err[512];
    double seconds;
    pw_dayrun_result result;
    uint64_t rows;
} backfill;

int pw_backfill_db_empty(const char *db_path, bool *empty, char *err, size_t err_size)
{
    pw_store_reader *r = NULL;
    pw_store_session_row *rows = NULL;
    pw_store_event *events = NULL;
    size_t n_sessions = 0, n_events = 0;
    int rc = pw_store_reader_open(&r, db_path, err, err_size);
    if (rc != 0)
        return -1;
    pw_store_session_filter f = {.open = -1, .limit = 1};
    rc = pw_store_query_sessions(r, &f, &rows, &n_sessions);
    if (rc == 0)
        rc = pw_store_query_events(r, 0, INT64_MAX, NULL, NULL, 1, &events, &n_events);
    if (rc != 0)
        snprintf(err, err_size, "%s", pw_store_reader_errmsg(r));
    free(rows);
    free(events);
    pw_store_reader_close(r);
    *empty = n_sessions == 0 && n_events == 0;
    return rc == 0 ? 0 : -1;
}

/* ---- the core's records, as app.c's sink hands them to the history ------------------------ */

static void on_event(void *ud, int64_t wall, const char *kind, const char *subject,
                     const char *detail)
{
    backfill *b = ud;
    pw_history_event(b->h, wall, kind, subject, detail);
}

/* The ref says so too, so that a CSV export (which has no column for the flag) tells a simulated
 * session from a real one. */
static void on_session(void *ud, size_t i, const pw_ctl_session *s)
{
    backfill *b = ud;
    pw_ctl_session copy = *s;
    char ref[sizeof copy.ref + sizeof SIM_REF_PREFIX];
    snprintf(ref, sizeof ref, SIM_REF_PREFIX "%s", s->ref);
    pw_strlcpy(copy.ref, ref, sizeof copy.ref);
    pw_history_session(b->h, b->cfg->chargers[i].id, &copy);
}

static void on_limit(void *ud, size_t i, const pw_bal_result *r, int64_t wall)
{
    backfill *b = ud;
    pw_history_limit_change(b->h, b->cfg->chargers[i].id, r, wall);
}

static void on_tick(void *ud, const pw_sim *m, const pw_ctl *ctl, uint64_t now)
{
    backfill *b = ud;
    (void)m;
    pw_history_samples(b->h, ctl, b->from_ms + (int64_t)now);
}

/* The simulated cars still plugged in leave when the real demo begins: their sessions end there,
 * so no simulated session stays open beside the live ones. */
static void on_done(void *ud, const pw_sim *m, const pw_ctl *ctl, uint64_t end)
{
    backfill *b = ud;
    (void)m;
    for (size_t i = 0; i < b->cfg->n_chargers; i++) {
        const pw_ctl_charger_state *st = pw_ctl_charger(ctl, i);
        if (!st->in_session || st->session.end_ms)
            continue;
        pw_ctl_session s = st->session;
        s.end_ms = b->from_ms + (int64_t)end;
        on_session(b, i, &s);
    }
}

static void mark_span(backfill *b, int64_t wall, const char *detail)
{
    pw_history_event(b->h, wall, "simulated_history", "", detail);
}

/* Local time of day at from_ms, so the simulated evening peak falls on real evenings. */
static double local_hour(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0.0;
    return tm.tm_hour + tm.tm_min / 60.0 + tm.tm_sec / 3600.0;
}

/* ---- the worker ------------------------------------------------------------------------------ */

static void run(backfill *b)
{
    pw_store *store = NULL;
    uv_loop_t loop; /* pw_history's: this thread's own, running only the write it queues */
    b->rc = pw_store_open(&store, b->db_path, b->err, sizeof b->err);
    if (b->rc != 0)
        return;
    pw_store_mark_simulated(store, b->from_ms);
    b->rc = uv_loop_init(&loop);
    if (b->rc != 0) {
        snprintf(b->err, sizeof b->err, "%s", uv_strerror(b->rc));
        pw_store_close(store);
        return;
    }
    b->h = pw_history_new(&loop, store);

    pw_dayrun_hooks hooks = {
        .ud = b,
        .wall0_ms = b->from_ms,
        .sink = {.ud = b, .event = on_event, .session = on_session, .limit_change = on_limit},
        .every_ms = SAMPLE_EVERY_MS,
        .tick = on_tick,
        .done = on_done};
    pw_dayrun_opts o;
    pw_dayrun_default_opts(&o);
    o.duration_ms = (uint64_t)(b->to_ms - b->from_ms);
    o.model.seed = SIM_SEED;
    o.model.start_hour = local_hour(b->from_ms);
    o.hooks = &hooks;
    b->rc = pw_dayrun(b->cfg, &o, PW_DAYRUN_PHASEWISE, &b->result, b->err, sizeof b->err);
    if (b->rc == 0) {
        mark_span(b, b->from_ms,
                  "simulated history (demo) begins: the " PW_BACKFILL_DAYS_TEXT
                  " days up to the demo's first start were simulated in fake time through the "
                  "real control core");
        mark_span(b, b->to_ms,
                  "simulated history (demo) ends: the live demo facility from here on");
        /* The same hand-over as the live writer's, on this thread's own loop: one batch, one
         * transaction, all of it or (if the disk refuses) none of it; then, as after any first
         * write, a few bounded maintenance steps start sealing and aggregating it. */
        pw_history_flush(b->h);
        uv_run(&loop, UV_RUN_DEFAULT);
        b->rows = pw_history_stats_get(b->h)->rows_written;
        if (pw_history_error(b->h)[0]) {
            snprintf(b->err, sizeof b->err, "%s", pw_history_error(b->h));
            b->rc = -1;
        }
    }
    pw_history_close(b->h); /* anything left is tried once more, and logged if lost */
    b->h = NULL;
    pw_store_close(store);
    uv_loop_close(&loop);
}

static void work(uv_work_t *req)
{
    backfill *b = req->data;
    uint64_t t0 = uv_hrtime();
    run(b);
    b->seconds = (double)(uv_hrtime() - t0) / 1e9;
}

static void after_work(uv_work_t *req, int status)
{
    backfill *b = req->data;
    if (status != 0)
        pw_warn("demo", "simulated history not written: %s", uv_strerror(status));
    else if (b->rc != 0)
        pw_warn("demo", "simulated history not written: %s", b->err);
    else
        pw_info("demo",
                "simulated history: %d days before the start filled in %.2f s (%llu rows, %u "
                "cars, %.1f of %.1f kWh delivered), marked simulated",
                PW_BACKFILL_DAYS, b->seconds, (unsigned long long)b->rows, b->result.cars,
                b->result.delivered_kwh, b->result.requested_kwh);
    pw_cfg_free(b->cfg);
    free(b);
}

int pw_backfill_start(uv_loop_t *loop, const char *db_path, pw_cfg *cfg, int64_t now_wall)
{
    backfill *b = pw_xcalloc(1, sizeof *b);
    pw_strlcpy(b->db_path, db_path, sizeof b->db_path);
    b->cfg = cfg;
    b->to_ms = now_wall;
    b->from_ms = now_wall - PW_BACKFILL_DAYS * DAY_MS;
    b->req.data = b;
    int rc = uv_queue_work(loop, &b->req, work, after_work);
    if (rc != 0) {
        pw_warn("demo", "simulated history not started: %s", uv_strerror(rc));
        pw_cfg_free(cfg);
        free(b);
        return -1;
    }
    pw_info("demo", "empty history: simulating the %d days before now on a worker",
            PW_BACKFILL_DAYS);
    return 0;
}
