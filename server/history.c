/* History batching: the loop collects rows (samples, events, sessions, limit changes) into one
 * batch while a libuv worker writes the other into SQLite, then they swap. The loop never waits
 * on SQLite. Only the fields marked "writer" are touched by the worker, and only while
 * in_flight; the loop reads them again after the worker's after-work callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

#define MAINTAIN_EVERY_MS 5000
#define MAINTAIN_STEPS    4 /* bounded work per write; the rest waits for the next one */
/* Rows whose write failed stay in `writing` and are retried first; rows collected meanwhile
 * wait in `filling`, up to a bound, so a full disk costs history but never memory. */
#define MAX_PENDING_ROWS 2000000
#define ERROR_LOG_MS     60000

struct pw_history {
    uv_loop_t *loop;
    uv_work_t req;
    bool in_flight;
    pw_store_batch *filling; /* loop */
    char error[256];         /* loop: why history is not being written, "" when it is */
    uint64_t last_error_log_ms;
    pw_history_stats stats;
    /* writer */
    pw_store *store;
    pw_store_batch *writing;
    int write_rc;
    uint64_t write_ns;
    char write_error[256];
    pw_store_policy policy;
    int64_t last_maintain_ms;
    bool outbox; /* loop: the fleet uplink is on, events are mirrored into its outbox */
};

pw_history *pw_history_new(uv_loop_t *loop, pw_store *store)
{
    pw_history *h = pw_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->store = store;
    h->filling = pw_store_batch_new();
    h->writing = pw_store_batch_new();
    pw_store_policy_default(&h->policy);
    h->req.data = h;
    return h;
}

void pw_history_event(pw_history *h, int64_t wall, const char *kind, const char *subject,
                      const char *detail)
{
    pw_store_event ev = {.ts_ms = wall};
    pw_strlcpy(ev.kind, kind, sizeof ev.kind);
    pw_strlcpy(ev.subject, subject ? subject : "", sizeof ev.subject);
    pw_strlcpy(ev.detail, detail, sizeof ev.detail);
    pw_store_batch_add_event(h->filling, &ev);
    if (h->outbox) {
        json_t *data = json_pack("{s:s, s:s, s:s}", "kind", ev.kind, "subject", ev.subject,
                                 "detail", ev.detail);
        char *text = json_dumps(data, JSON_COMPACT);
        pw_history_outbox(h, wall, "event", text, 0);
        free(text);
        json_decref(data);
    }
}

/* ---- the fleet uplink's outbox (uplink.c) ---- */

void pw_history_set_outbox(pw_history *h, bool on)
{
    h->outbox = on;
}

void pw_history_outbox(pw_history *h, int64_t ts_ms, const char *kind, const char *payload,
                       int64_t quarter_ms)
{
    pw_store_batch_add_outbox(h->filling, ts_ms, kind, payload, quarter_ms);
}

static uint64_t known_wh(uint64_t wh)
{
    return wh == PW_CTL_ENERGY_UNKNOWN ? 0 : wh;
}

void pw_history_session(pw_history *h, const char *charger, const pw_ctl_session *s)
{
    pw_store_session row = {.start_ms = s->start_ms,
                            .end_ms = s->end_ms,
                            .register_start_wh = known_wh(s->register_start_wh),
                            .register_wh = known_wh(s->register_wh),
                            .peak_a = (float)s->peak_a};
    pw_strlcpy(row.charger, charger, sizeof row.charger);
    pw_strlcpy(row.ref, s->ref, sizeof row.ref);
    pw_strlcpy(row.id_tag, s->id_tag, sizeof row.id_tag);
    pw_store_batch_add_session(h->filling, &row);
}

void pw_history_limit_change(pw_history *h, const char *charger, const pw_bal_result *r,
                             int64_t wall)
{
    pw_store_limit_change c = {.ts_ms = wall, .limit_a = (float)r->limit_a, .phases = r->phases};
    pw_strlcpy(c.charger, charger, sizeof c.charger);
    pw_strlcpy(c.reason, pw_bal_reason_name(r->reason), sizeof c.reason);
    pw_strlcpy(c.text, r->reason_text, sizeof c.text);
    pw_store_batch_add_limit_change(h->filling, &c);
}

void pw_history_samples(pw_history *h, const pw_ctl *ctl, int64_t wall)
{
    const pw_cfg *cfg = pw_ctl_config(ctl);
    const pw_bal_result *res = pw_bal_results(pw_ctl_balancer(ctl));
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_ctl_charger_state *ch = pw_ctl_charger(ctl, i);
        if (!ch->has_report)
            continue;
        pw_store_charger_sample s = {.ts_ms = wall,
                                     .state = ch->report.pilot,
                                     .limit_a = (float)res[i].limit_a,
                                     .phases = res[i].phases};
        pw_strlcpy(s.charger, cfg->chargers[i].id, sizeof s.charger);
        for (size_t t = 0; t < PW_LINES; t++)
            s.current_a[t] = (float)ch->report.current_a[t];
        pw_store_batch_add_charger(h->filling, &s);
    }
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_ctl_meter_state *m = pw_ctl_meter(ctl, n);
        if (!m->has_reading)
            continue;
        pw_store_node_sample s = {.ts_ms = wall};
        pw_strlcpy(s.node, cfg->nodes[n].id, sizeof s.node);
        for (size_t l = 0; l < PW_LINES; l++)
            s.current_a[l] = (float)m->line_a[l];
        pw_store_batch_add_node(h->filling, &s);
    }
}

/* Runs on a libuv worker: the batch, then (every few seconds) a bounded step of retention and
 * aggregation. */
static void write_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    pw_history *h = req->data;
    uint64_t t0 = uv_hrtime();
    h->write_rc = pw_store_write(h->store, h->writing);
    h->write_ns = uv_hrtime() - t0;
    if (h->write_rc != 0)
        pw_strlcpy(h->write_error, pw_store_errmsg(h->store), sizeof h->write_error);
    int64_t wall = pw_wall_ms();
    if (h->write_rc != 0 || wall - h->last_maintain_ms < MAINTAIN_EVERY_MS)
        return;
    h->last_maintain_ms = wall;
    for (int i = 0; i < MAINTAIN_STEPS; i++)
        if (pw_store_maintain(h->store, wall, &h->policy) != 1)
            break;
}

static void after_write(uv_work_t *req, int status)
{
    pw_history *h = req->data;
    h->in_flight = false;
    pw_latency_observe(&h->stats.write_time, h->write_ns / 1000u);
    if (status == 0 && h->write_rc == 0) {
        if (h->error[0])
            pw_info("storage", "history writes work again");
        h->error[0] = '\0';
        h->stats.rows_written += pw_store_batch_rows(h->writing);
        pw_store_batch_clear(h->writing);
        return;
    }
    /* Copied here, on the loop thread, so the state document never reads a worker's buffer. */
    pw_strlcpy(h->error, status != 0 ? uv_strerror(status) : h->write_error, sizeof h->error);
    h->stats.errors++;
    uint64_t now = uv_now(h->loop);
    if (now - h->last_error_log_ms > ERROR_LOG_MS || !h->last_error_log_ms) {
        h->last_error_log_ms = now;
        pw_error("storage", "history write failed (%s); balancing continues, retrying", h->error);
    }
    if (pw_store_batch_rows(h->filling) > MAX_PENDING_ROWS) {
        pw_error("storage", "dropping %zu history rows that could not be written",
                 pw_store_batch_rows(h->filling));
        pw_store_batch_clear(h->filling);
    }
}

/* An empty `writing` batch means the last write succeeded: hand over the new rows. */
static bool hand_over(pw_history *h)
{
    if (pw_store_batch_rows(h->writing) == 0) {
        pw_store_batch *tmp = h->writing;
        h->writing = h->filling;
        h->filling = tmp;
    }
    return pw_store_batch_rows(h->writing) > 0;
}

void pw_history_flush(pw_history *h)
{
    if (h->in_flight)
        return;
    uint64_t t0 = uv_hrtime();
    if (!hand_over(h))
        return;
    h->in_flight = true;
    if (uv_queue_work(h->loop, &h->req, write_work, after_write) != 0) {
        write_work(&h->req);
        after_write(&h->req, 0);
    }
    pw_latency_observe(&h->stats.loop_time, (uv_hrtime() - t0) / 1000u);
}

void pw_history_close(pw_history *h)
{
    if (!h)
        return;
    /* The loop is done: write on this thread, the rows a failed write left first, then the
     * rest; a database that refuses a batch is not asked again. */
    while (hand_over(h)) {
        write_work(&h->req);
        after_write(&h->req, 0);
        if (h->write_rc != 0)
            break;
    }
    size_t lost = pw_store_batch_rows(h->writing) + pw_store_batch_rows(h->filling);
    if (lost)
        pw_error("storage", "%zu history rows could not be written at shutdown: %s", lost,
                 h->error);
    pw_store_batch_free(h->filling);
    pw_store_batch_free(h->writing);
    free(h);
}

const char *pw_history_error(const pw_history *h)
{
    return h->error;
}

const pw_history_stats *pw_history_stats_get(const pw_history *h)
{
    return &h->stats;
}
