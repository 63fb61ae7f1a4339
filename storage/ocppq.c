/* The OCPP local controller's relay state (pw_store.h): a connection of its own that writes down
 * the relay's changes (calls queued and answered, transaction pairs, kept values) a batch per
 * transaction, on a worker like the outbox's, and reads them back at start. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

enum {
    QS_BEGIN,
    QS_COMMIT,
    QS_CALL,
    QS_CALL_TX,
    QS_DONE,
    QS_TX,
    QS_TX_DONE,
    QS_KEPT,
    QS_UNKEEP,
    QS_READ_KEPT,
    QS_READ_TX,
    QS_READ_CALLS,
    QS_COUNT,
    QS_N
};

static const char *const qstmt_sql[QS_N] = {
    [QS_BEGIN] = "BEGIN IMMEDIATE",
    [QS_COMMIT] = "COMMIT",
    [QS_CALL] = "INSERT OR REPLACE INTO ocpp_queue"
                " (cp, seq, ts, connector, local_tx, action, payload)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [QS_CALL_TX] = "UPDATE ocpp_queue SET local_tx = ?3 WHERE cp = ?1 AND seq = ?2",
    [QS_DONE] = "DELETE FROM ocpp_queue WHERE cp = ?1 AND seq = ?2",
    [QS_TX] = "INSERT OR REPLACE INTO ocpp_tx (cp, local_tx, csms_tx, connector)"
              " VALUES (?1, ?2, ?3, ?4)",
    [QS_TX_DONE] = "DELETE FROM ocpp_tx WHERE cp = ?1 AND local_tx = ?2",
    [QS_KEPT] = "INSERT OR REPLACE INTO ocpp_kept (cp, name, value) VALUES (?1, ?2, ?3)",
    [QS_UNKEEP] = "DELETE FROM ocpp_kept WHERE cp = ?1 AND name = ?2",
    [QS_READ_KEPT] = "SELECT name, value FROM ocpp_kept WHERE cp = ?1 ORDER BY name",
    [QS_READ_TX] = "SELECT local_tx, csms_tx, connector FROM ocpp_tx WHERE cp = ?1",
    [QS_READ_CALLS] = "SELECT seq, ts, connector, local_tx, action, payload FROM ocpp_queue"
                      " WHERE cp = ?1 ORDER BY seq",
    [QS_COUNT] = "SELECT count(*) FROM ocpp_queue WHERE cp = ?1",
};

struct pw_store_ocppq {
    sqlite3 *db;
    sqlite3_stmt *stmt[QS_N];
    char errmsg[256];
};

static void destroy(pw_store_ocppq *q)
{
    pw_store__disconnect(q->db, q->stmt, QS_N);
    free(q);
}

int pw_store_ocppq_open(pw_store_ocppq **out, const char *path, char *err, size_t err_size)
{
    *out = NULL;
    pw_store_ocppq *q = pw_xcalloc(1, sizeof(*q));
    int ret =
        pw_store__side_open(&q->db, path, "OCPP queue", qstmt_sql, q->stmt, QS_N, err, err_size);
    if (ret) {
        destroy(q);
        return ret;
    }
    *out = q;
    return 0;
}

void pw_store_ocppq_close(pw_store_ocppq *q)
{
    if (q)
        destroy(q);
}

const char *pw_store_ocppq_errmsg(const pw_store_ocppq *q)
{
    return q->errmsg;
}

static int fail(pw_store_ocppq *q, const char *what, int err)
{
    char prefixed[64];
    snprintf(prefixed, sizeof prefixed, "OCPP queue %s", what);
    return pw_store__side_fail(q->db, q->errmsg, sizeof(q->errmsg), prefixed, err);
}

static const char *text_or_empty(const char *t)
{
    return t ? t : "";
}

/* Binds op's fields to the statement of its kind and runs it. */
static int apply_one(pw_store_ocppq *q, const pw_store_ocppq_op *op)
{
    sqlite3_stmt *st;
    switch (op->kind) {
    case PW_STORE_OCPPQ_CALL:
        st = q->stmt[QS_CALL];
        sqlite3_bind_int64(st, 3, op->ts_ms);
        sqlite3_bind_int(st, 4, op->connector);
        sqlite3_bind_text(st, 5, op->local_tx, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, op->action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, op->text ? op->text : "{}", -1, SQLITE_STATIC);
        break;
    case PW_STORE_OCPPQ_CALL_TX:
        st = q->stmt[QS_CALL_TX];
        sqlite3_bind_text(st, 3, op->local_tx, -1, SQLITE_STATIC);
        break;
    case PW_STORE_OCPPQ_DONE:
        st = q->stmt[QS_DONE];
        break;
    case PW_STORE_OCPPQ_TX:
        st = q->stmt[QS_TX];
        sqlite3_bind_text(st, 2, op->local_tx, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, op->csms_tx, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, op->connector);
        break;
    case PW_STORE_OCPPQ_TX_DONE:
        st = q->stmt[QS_TX_DONE];
        sqlite3_bind_text(st, 2, op->local_tx, -1, SQLITE_STATIC);
        break;
    case PW_STORE_OCPPQ_KEPT:
        st = q->stmt[op->text && op->text[0] ? QS_KEPT : QS_UNKEEP];
        sqlite3_bind_text(st, 2, op->action, -1, SQLITE_STATIC);
        if (op->text && op->text[0])
            sqlite3_bind_text(st, 3, op->text, -1, SQLITE_STATIC);
        break;
    default:
        return SQLITE_MISUSE;
    }
    sqlite3_bind_text(st, 1, op->cp, -1, SQLITE_STATIC);
    if (op->kind == PW_STORE_OCPPQ_CALL || op->kind == PW_STORE_OCPPQ_CALL_TX ||
        op->kind == PW_STORE_OCPPQ_DONE)
        sqlite3_bind_int64(st, 2, op->seq);
    int rc = pw_store__step_done(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int pw_store_ocppq_apply(pw_store_ocppq *q, const pw_store_ocppq_op *ops, size_t n)
{
    q->errmsg[0] = '\0';
    int rc = pw_store__step_done(q->stmt[QS_BEGIN]);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
        rc = apply_one(q, &ops[i]);
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(q->stmt[QS_COMMIT]);
    return rc == SQLITE_OK ? 0 : fail(q, "write", PW_STORE_E_WRITE);
}

static pw_store_ocppq_op *saved_add(pw_store_ocppq_saved *s, size_t *cap,
                                    enum pw_store_ocppq_kind kind, const char *cp)
{
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        s->ops = pw_xrealloc(s->ops, *cap * sizeof *s->ops);
    }
    pw_store_ocppq_op *op = &s->ops[s->n++];
    *op = (pw_store_ocppq_op){.kind = kind};
    pw_strlcpy(op->cp, cp, sizeof op->cp);
    return op;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return text_or_empty((const char *)sqlite3_column_text(st, i));
}

/* Reads the rows of one statement (cp bound) as ops of kind; SQLITE_DONE when all went well. */
static int load_rows(pw_store_ocppq *q, int which, enum pw_store_ocppq_kind kind, const char *cp,
                     pw_store_ocppq_saved *s, size_t *cap)
{
    sqlite3_stmt *st = q->stmt[which];
    sqlite3_bind_text(st, 1, cp, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pw_store_ocppq_op *op = saved_add(s, cap, kind, cp);
        if (kind == PW_STORE_OCPPQ_KEPT) {
            pw_strlcpy(op->action, col_text(st, 0), sizeof op->action);
            op->text = pw_xstrdup(col_text(st, 1));
        } else if (kind == PW_STORE_OCPPQ_TX) {
            pw_strlcpy(op->local_tx, col_text(st, 0), sizeof op->local_tx);
            pw_strlcpy(op->csms_tx, col_text(st, 1), sizeof op->csms_tx);
            op->connector = sqlite3_column_int(st, 2);
        } else {
            op->seq = sqlite3_column_int64(st, 0);
            op->ts_ms = sqlite3_column_int64(st, 1);
            op->connector = sqlite3_column_int(st, 2);
            pw_strlcpy(op->local_tx, col_text(st, 3), sizeof op->local_tx);
            pw_strlcpy(op->action, col_text(st, 4), sizeof op->action);
            op->text = pw_xstrdup(col_text(st, 5));
        }
    }
    sqlite3_reset(st);
    return rc;
}

int pw_store_ocppq_load(pw_store_ocppq *q, const char *cp, pw_store_ocppq_saved *out)
{
    q->errmsg[0] = '\0';
    *out = (pw_store_ocppq_saved){0};
    size_t cap = 0;
    int rc = load_rows(q, QS_READ_KEPT, PW_STORE_OCPPQ_KEPT, cp, out, &cap);
    if (rc == SQLITE_DONE)
        rc = load_rows(q, QS_READ_TX, PW_STORE_OCPPQ_TX, cp, out, &cap);
    if (rc == SQLITE_DONE)
        rc = load_rows(q, QS_READ_CALLS, PW_STORE_OCPPQ_CALL, cp, out, &cap);
    if (rc != SQLITE_DONE) {
        pw_store_ocppq_saved_free(out);
        return fail(q, "read", PW_STORE_E_QUERY);
    }
    return 0;
}

void pw_store_ocppq_saved_free(pw_store_ocppq_saved *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ops[i].text);
    free(s->ops);
    *s = (pw_store_ocppq_saved){0};
}

int pw_store_ocppq_count(pw_store_ocppq *q, const char *cp, uint64_t *count)
{
    q->errmsg[0] = '\0';
    sqlite3_stmt *st = q->stmt[QS_COUNT];
    sqlite3_bind_text(st, 1, cp, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    *count = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : fail(q, "count", PW_STORE_E_QUERY);
}
