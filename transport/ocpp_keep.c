/* The local controller's relays kept across a restart (ocpp_keep.h): changes queued on the loop,
 * written by one worker job at a time on a connection of their own. */
#include "ocpp_keep.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_store.h"
#include "pw_util.h"

#define MAX_WAITING  100000 /* changes held while the disk fails; beyond, the oldest go */
#define RETRY_MS     1000
#define ERROR_LOG_MS 60000

typedef struct job {
    uv_work_t req;
    struct pw_ocpp_keep *k;
    pw_store_ocppq *q;
    pw_store_ocppq_op *ops;
    size_t n;
    uint64_t last; /* the number of the last change in it */
    int rc;
    char error[256];
} job;

struct pw_ocpp_keep {
    uv_loop_t *loop;
    pw_store_ocppq *q;
    pw_ocpp_keep_written_cb written_cb;
    void *ud;
    pw_store_ocppq_op *ops; /* waiting, in order */
    size_t n, cap;
    uint64_t queued, attempted;
    job job;
    bool running, closing;
    uv_timer_t retry;
    uint64_t last_error_log;
    pw_ocpp_keep_stats st;
};

static void ops_free(pw_store_ocppq_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ops[i].text);
    free(ops);
}

static void job_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    job *j = req->data;
    j->rc = pw_store_ocppq_apply(j->q, j->ops, j->n);
    if (j->rc)
        pw_strlcpy(j->error, pw_store_ocppq_errmsg(j->q), sizeof j->error);
}

static void kick(pw_ocpp_keep *k);

/* A failed batch goes back before what was queued meanwhile, to be tried again. */
static void put_back(pw_ocpp_keep *k, job *j)
{
    size_t n = k->n + j->n;
    if (n > k->cap) {
        k->cap = n;
        k->ops = pw_xrealloc(k->ops, k->cap * sizeof *k->ops);
    }
    memmove(k->ops + j->n, k->ops, k->n * sizeof *k->ops);
    memcpy(k->ops, j->ops, j->n * sizeof *k->ops);
    k->n = n;
    free(j->ops);
}

static void on_retry(uv_timer_t *t)
{
    kick(t->data);
}

static void free_keep(uv_handle_t *h)
{
    pw_ocpp_keep *k = h->data;
    ops_free(k->ops, k->n);
    pw_store_ocppq_close(k->q);
    free(k);
}

/* Closing: what waits is written here, on the loop (the appliance is stopping), then freed. */
static void finish(pw_ocpp_keep *k)
{
    if (k->n && pw_store_ocppq_apply(k->q, k->ops, k->n) != 0)
        pw_error("ocpp", "the local controller's queue: %s: %zu changes not written",
                 pw_store_ocppq_errmsg(k->q), k->n);
    uv_close((uv_handle_t *)&k->retry, free_keep);
}

static void job_done(uv_work_t *req, int status)
{
    job *j = req->data;
    pw_ocpp_keep *k = j->k;
    k->running = false;
    if (status != 0 && !j->rc) {
        j->rc = -1;
        snprintf(j->error, sizeof j->error, "%s", uv_strerror(status));
    }
    k->attempted = j->last; /* frames waiting for it go either way */
    if (j->rc) {
        k->st.failures++;
        uint64_t now = uv_now(k->loop);
        if (!k->last_error_log || now - k->last_error_log >= ERROR_LOG_MS) {
            k->last_error_log = now;
            pw_error("ocpp", "the local controller's queue cannot be written: %s; retrying",
                     j->error);
        }
        put_back(k, j);
        if (!k->closing)
            uv_timer_start(&k->retry, on_retry, RETRY_MS, 0);
    } else {
        k->st.written += j->n;
        ops_free(j->ops, j->n);
    }
    j->ops = NULL;
    j->n = 0;
    if (k->closing) {
        finish(k);
        return;
    }
    if (k->written_cb)
        k->written_cb(k->ud);
    if (!uv_is_active((uv_handle_t *)&k->retry))
        kick(k);
}

/* Hands everything waiting to a worker, unless a job runs or a retry is due. */
static void kick(pw_ocpp_keep *k)
{
    if (k->running || !k->n || k->closing || uv_is_active((uv_handle_t *)&k->retry))
        return;
    job *j = &k->job;
    *j = (job){.k = k, .q = k->q, .ops = k->ops, .n = k->n, .last = k->queued};
    j->req.data = j;
    k->ops = NULL;
    k->n = k->cap = 0;
    k->running = true;
    int rc = uv_queue_work(k->loop, &j->req, job_work, job_done);
    if (rc != 0) {
        k->running = false;
        pw_error("ocpp", "the local controller's queue: no worker: %s", uv_strerror(rc));
        put_back(k, j);
        j->ops = NULL;
        j->n = 0;
        k->attempted = k->queued;
        uv_timer_start(&k->retry, on_retry, RETRY_MS, 0);
    }
}

pw_ocpp_keep *pw_ocpp_keep_open(uv_loop_t *loop, const char *db_path,
                                pw_ocpp_keep_written_cb written, void *ud, char *err,
                                size_t err_size)
{
    pw_store_ocppq *q;
    if (pw_store_ocppq_open(&q, db_path, err, err_size) != 0)
        return NULL;
    pw_ocpp_keep *k = pw_xcalloc(1, sizeof *k);
    k->loop = loop;
    k->q = q;
    k->written_cb = written;
    k->ud = ud;
    uv_timer_init(loop, &k->retry);
    k->retry.data = k;
    return k;
}

static enum pw_store_ocppq_kind store_kind(enum pw_ocpp_relay_keep_kind kind)
{
    switch (kind) {
    case PW_OCPP_KEEP_CALL:
        return PW_STORE_OCPPQ_CALL;
    case PW_OCPP_KEEP_CALL_TX:
        return PW_STORE_OCPPQ_CALL_TX;
    case PW_OCPP_KEEP_DONE:
        return PW_STORE_OCPPQ_DONE;
    case PW_OCPP_KEEP_TX:
        return PW_STORE_OCPPQ_TX;
    case PW_OCPP_KEEP_TX_DONE:
        return PW_STORE_OCPPQ_TX_DONE;
    case PW_OCPP_KEEP_BOOT:
        break;
    }
    return PW_STORE_OCPPQ_KEPT;
}

/* Room for one more change at the end of what waits. */
static pw_store_ocppq_op *push(pw_ocpp_keep *k)
{
    if (k->n == MAX_WAITING) { /* the disk has failed for long: the oldest change goes */
        free(k->ops[0].text);
        memmove(k->ops, k->ops + 1, --k->n * sizeof *k->ops);
        if (k->st.lost++ == 0)
            pw_error("ocpp",
                     "the local controller's queue: %d changes wait for the disk; the "
                     "oldest are lost (a call may reach the CSMS twice or not at all after a "
                     "restart)",
                     MAX_WAITING);
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->ops = pw_xrealloc(k->ops, k->cap * sizeof *k->ops);
    }
    k->queued++;
    return &k->ops[k->n++];
}

void pw_ocpp_keep_add(pw_ocpp_keep *k, const char *cp, const pw_ocpp_relay_keep *c, int64_t wall)
{
    pw_store_ocppq_op *op = push(k);
    *op = (pw_store_ocppq_op){.kind = store_kind(c->kind),
                              .seq = (int64_t)c->seq,
                              .ts_ms = wall,
                              .connector = c->connector};
    pw_strlcpy(op->cp, cp, sizeof op->cp);
    pw_strlcpy(op->local_tx, c->local_tx ? c->local_tx : "", sizeof op->local_tx);
    pw_strlcpy(op->csms_tx, c->csms_tx ? c->csms_tx : "", sizeof op->csms_tx);
    if (c->kind == PW_OCPP_KEEP_BOOT) {
        pw_strlcpy(op->action, "boot", sizeof op->action);
        op->text = pw_xstrdup(c->payload ? c->payload : "");
    } else {
        pw_strlcpy(op->action, c->action ? c->action : "", sizeof op->action);
        op->text = c->payload ? pw_xstrdup(c->payload) : NULL;
    }
    kick(k);
}

void pw_ocpp_keep_value(pw_ocpp_keep *k, const char *cp, const char *name, const char *text,
                        int64_t wall)
{
    pw_store_ocppq_op *op = push(k);
    *op = (pw_store_ocppq_op){.kind = PW_STORE_OCPPQ_KEPT, .ts_ms = wall};
    pw_strlcpy(op->cp, cp, sizeof op->cp);
    pw_strlcpy(op->action, name, sizeof op->action);
    op->text = pw_xstrdup(text);
    kick(k);
}

/* A record the relay refused is removed from the file too, so it is not read again. */
static void forget_bad(pw_ocpp_keep *k, const pw_store_ocppq_op *op)
{
    pw_ocpp_relay_keep c = {.seq = (uint64_t)op->seq, .local_tx = op->local_tx};
    switch (op->kind) {
    case PW_STORE_OCPPQ_CALL:
        c.kind = PW_OCPP_KEEP_DONE;
        break;
    case PW_STORE_OCPPQ_TX:
        c.kind = PW_OCPP_KEEP_TX_DONE;
        break;
    default:
        pw_ocpp_keep_value(k, op->cp, op->action, "", 0);
        return;
    }
    pw_ocpp_keep_add(k, op->cp, &c, 0);
}

/* The CSMS's profiles, after the transactions their TxProfiles belong to. */
static void load_profiles(pw_ocpp_keep *k, const pw_store_ocppq_op *op, pw_ocpp_relay *r,
                          int64_t wall)
{
    json_error_t je;
    json_t *dump = json_loads(op->text, JSON_REJECT_DUPLICATES, &je);
    int skipped = pw_ocpp_relay_profiles_load(r, dump, wall);
    if (skipped < 0)
        forget_bad(k, op);
    else if (skipped > 0)
        pw_warn("ocpp",
                "charge point %s: %d of the CSMS's kept profiles left out after the "
                "restart (expired, or their transaction is gone)",
                op->cp, skipped);
    json_decref(dump);
}

int pw_ocpp_keep_restore(pw_ocpp_keep *k, const char *cp, pw_ocpp_relay *r, int64_t wall, char *err,
                         size_t err_size)
{
    pw_store_ocppq_saved s;
    if (pw_store_ocppq_load(k->q, cp, &s) != 0) {
        snprintf(err, err_size, "%s", pw_store_ocppq_errmsg(k->q));
        return -1;
    }
    const pw_store_ocppq_op *profiles = NULL;
    for (size_t i = 0; i < s.n; i++) {
        const pw_store_ocppq_op *op = &s.ops[i];
        pw_ocpp_relay_keep c = {.seq = (uint64_t)op->seq,
                                .action = op->action,
                                .payload = op->text,
                                .connector = op->connector,
                                .local_tx = op->local_tx,
                                .csms_tx = op->csms_tx};
        if (op->kind == PW_STORE_OCPPQ_CALL)
            c.kind = PW_OCPP_KEEP_CALL;
        else if (op->kind == PW_STORE_OCPPQ_TX)
            c.kind = PW_OCPP_KEEP_TX;
        else if (strcmp(op->action, "boot") == 0)
            c.kind = PW_OCPP_KEEP_BOOT;
        else if (strcmp(op->action, "profiles") == 0) {
            profiles = op;
            continue;
        } else
            continue; /* a value kept by a later version: left alone */
        if (pw_ocpp_relay_restore(r, &c) != 0)
            forget_bad(k, op);
    }
    if (profiles)
        load_profiles(k, profiles, r, wall);
    pw_store_ocppq_saved_free(&s);
    return (int)pw_ocpp_relay_stats_get(r)->queued;
}

uint64_t pw_ocpp_keep_queued(const pw_ocpp_keep *k)
{
    return k->queued;
}

uint64_t pw_ocpp_keep_written(const pw_ocpp_keep *k)
{
    return k->attempted;
}

void pw_ocpp_keep_stats_get(const pw_ocpp_keep *k, pw_ocpp_keep_stats *out)
{
    *out = k->st;
    out->waiting = k->n + (k->running ? k->job.n : 0);
}

void pw_ocpp_keep_close(pw_ocpp_keep *k)
{
    if (!k)
        return;
    k->closing = true;
    k->written_cb = NULL;
    uv_timer_stop(&k->retry);
    if (!k->running)
        finish(k);
}
