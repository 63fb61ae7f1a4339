/* The fleet uplink's side of the outbox: a connection of its own that reads the queued messages
 * in id order, deletes the ones the central broker acknowledged and keeps the outbox bounded.
 * Rows are queued by the history writer (pw_store_batch_add_outbox, store.c). */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

enum {
    OS_BEGIN,
    OS_COMMIT,
    OS_READ,
    OS_DEL,
    OS_STATUS,
    OS_LAST_ID,
    OS_TRIM_ROWS,
    OS_TRIM_AGE,
    OS_COUNT
};

static const char *const ostmt_sql[OS_COUNT] = {
    [OS_BEGIN] = "BEGIN IMMEDIATE",
    [OS_COMMIT] = "COMMIT",
    [OS_READ] = "SELECT id, ts, kind, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
    [OS_DEL] = "DELETE FROM outbox WHERE id = ?1",
    [OS_STATUS] = "SELECT count(*), (SELECT ts FROM outbox ORDER BY id LIMIT 1) FROM outbox",
    /* AUTOINCREMENT keeps the last id handed out here, also once its row is gone. */
    [OS_LAST_ID] = "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
    [OS_TRIM_ROWS] = "DELETE FROM outbox WHERE id <= (SELECT max(id) FROM outbox) - ?1",
    [OS_TRIM_AGE] = "DELETE FROM outbox WHERE ts < ?1",
};

struct pw_store_outbox {
    sqlite3 *db;
    sqlite3_stmt *stmt[OS_COUNT];
    char errmsg[256];
};

static void destroy(pw_store_outbox *o)
{
    pw_store__disconnect(o->db, o->stmt, OS_COUNT);
    free(o);
}

int pw_store_outbox_open(pw_store_outbox **out, const char *path, char *err, size_t err_size)
{
    *out = NULL;
    pw_store_outbox *o = pw_xcalloc(1, sizeof(*o));
    int ret =
        pw_store__side_open(&o->db, path, "outbox", ostmt_sql, o->stmt, OS_COUNT, err, err_size);
    if (ret) {
        destroy(o);
        return ret;
    }
    *out = o;
    return 0;
}

void pw_store_outbox_close(pw_store_outbox *o)
{
    if (o)
        destroy(o);
}

const char *pw_store_outbox_errmsg(const pw_store_outbox *o)
{
    return o->errmsg;
}

static int fail(pw_store_outbox *o, const char *what, int err)
{
    char prefixed[64];
    snprintf(prefixed, sizeof prefixed, "outbox %s", what);
    return pw_store__side_fail(o->db, o->errmsg, sizeof(o->errmsg), prefixed, err);
}

int pw_store_outbox_read(pw_store_outbox *o, int64_t after_id, size_t max,
                         pw_store_outbox_msg **msgs, size_t *count)
{
    o->errmsg[0] = '\0';
    *msgs = NULL;
    *count = 0;
    sqlite3_stmt *st = o->stmt[OS_READ];
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    pw_store_outbox_msg *out = max ? pw_xcalloc(max, sizeof(*out)) : NULL;
    size_t n = 0;
    int rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        pw_store_outbox_msg *m = &out[n++];
        m->id = sqlite3_column_int64(st, 0);
        m->ts_ms = sqlite3_column_int64(st, 1);
        const unsigned char *kind = sqlite3_column_text(st, 2);
        pw_strlcpy(m->kind, kind ? (const char *)kind : "", sizeof(m->kind));
        const unsigned char *payload = sqlite3_column_text(st, 3);
        m->payload = pw_xstrdup(payload ? (const char *)payload : "{}");
    }
    if (n == max)
        rc = SQLITE_DONE;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        pw_store_outbox_msgs_free(out, n);
        return fail(o, "read", PW_STORE_E_QUERY);
    }
    if (!n) {
        free(out);
        out = NULL;
    }
    *msgs = out;
    *count = n;
    return 0;
}

void pw_store_outbox_msgs_free(pw_store_outbox_msg *msgs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(msgs[i].payload);
    free(msgs);
}

int pw_store_outbox_ack(pw_store_outbox *o, const int64_t *ids, size_t n)
{
    o->errmsg[0] = '\0';
    if (!n)
        return 0;
    int rc = pw_store__step_done(o->stmt[OS_BEGIN]);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        sqlite3_bind_int64(o->stmt[OS_DEL], 1, ids[i]);
        rc = pw_store__step_done(o->stmt[OS_DEL]);
    }
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(o->stmt[OS_COMMIT]);
    return rc == SQLITE_OK ? 0 : fail(o, "delete", PW_STORE_E_WRITE);
}

/* The first column of st's single row as an integer (0 for none or NULL). */
static int one_int(sqlite3_stmt *st, int col, int64_t *out)
{
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, col) : 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int pw_store_outbox_status_get(pw_store_outbox *o, pw_store_outbox_status *out)
{
    o->errmsg[0] = '\0';
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = o->stmt[OS_STATUS];
    int64_t queued = 0;
    /* One read transaction: the count and the oldest row agree. */
    int rc = sqlite3_exec(o->db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        queued = sqlite3_column_int64(st, 0);
        out->oldest_ts_ms = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_OK) {
        rc = one_int(o->stmt[OS_LAST_ID], 0, &out->last_id);
        sqlite3_reset(o->stmt[OS_LAST_ID]);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(o->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(o, "status", PW_STORE_E_QUERY);
    out->queued = (uint64_t)queued;
    return 0;
}

int pw_store_outbox_trim(pw_store_outbox *o, int64_t now_ms, uint64_t max_rows, int64_t max_age_ms,
                         uint64_t *dropped)
{
    o->errmsg[0] = '\0';
    *dropped = 0;
    uint64_t n = 0;
    int rc = pw_store__step_done(o->stmt[OS_BEGIN]);
    if (rc == SQLITE_OK && max_rows) {
        sqlite3_bind_int64(o->stmt[OS_TRIM_ROWS], 1,
                           max_rows > INT64_MAX ? INT64_MAX : (sqlite3_int64)max_rows);
        rc = pw_store__step_done(o->stmt[OS_TRIM_ROWS]);
        n += (uint64_t)sqlite3_changes(o->db);
    }
    if (rc == SQLITE_OK && max_age_ms > 0) {
        sqlite3_bind_int64(o->stmt[OS_TRIM_AGE], 1, now_ms - max_age_ms);
        rc = pw_store__step_done(o->stmt[OS_TRIM_AGE]);
        n += (uint64_t)sqlite3_changes(o->db);
    }
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(o->stmt[OS_COMMIT]);
    if (rc != SQLITE_OK)
        return fail(o, "trim", PW_STORE_E_WRITE);
    *dropped = n;
    return 0;
}
