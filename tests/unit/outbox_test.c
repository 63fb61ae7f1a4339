/* The fleet uplink's outbox (storage/outbox.c and the batch's outbox rows in store.c): rows come
 * back in id order, ids are never reused, an acknowledged row is gone and the rest survive a
 * restart, rows commit or fail together with the history rows of their batch, a quarter's
 * aggregate is queued once, and the bound drops the oldest rows. */
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

#define T0 1700000000000LL

typedef struct fixture {
    char dir[256];
    char path[300];
    pw_store *store;
    pw_store_outbox *ob;
} fixture;

static void open_both(fixture *f)
{
    char err[512] = "";
    assert_int_equal(pw_store_open(&f->store, f->path, err, sizeof(err)), 0);
    int rc = pw_store_outbox_open(&f->ob, f->path, err, sizeof(err));
    if (rc)
        print_message("outbox open: %s\n", err);
    assert_int_equal(rc, 0);
}

static void close_both(fixture *f)
{
    pw_store_outbox_close(f->ob);
    pw_store_close(f->store);
    f->ob = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    fixture *f = pw_xcalloc(1, sizeof(*f));
    st_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
    open_both(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_both(f);
    st_rmdir(f->dir);
    free(f);
    return 0;
}

/* Writes one batch: an event (so the outbox row rides with a history row) and n outbox rows whose
 * payload names their sequence number from first on. */
static int write_rows(fixture *f, int first, int n, const char *kind)
{
    pw_store_batch *b = pw_store_batch_new();
    pw_store_event ev = {.ts_ms = T0 + first};
    pw_strlcpy(ev.kind, "config_change", sizeof(ev.kind));
    pw_store_batch_add_event(b, &ev);
    for (int i = 0; i < n; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "{\"n\":%d}", first + i);
        pw_store_batch_add_outbox(b, T0 + 1000 * (first + i), kind, payload, 0);
    }
    int rc = pw_store_write(f->store, b);
    pw_store_batch_free(b);
    return rc;
}

static size_t read_all(fixture *f, int64_t after, pw_store_outbox_msg **msgs)
{
    size_t n = 0;
    assert_int_equal(pw_store_outbox_read(f->ob, after, 1000, msgs, &n), 0);
    return n;
}

static int payload_n(const pw_store_outbox_msg *m)
{
    int n = -1;
    assert_int_equal(sscanf(m->payload, "{\"n\":%d}", &n), 1);
    return n;
}

static uint64_t queued(fixture *f)
{
    pw_store_outbox_status st;
    assert_int_equal(pw_store_outbox_status_get(f->ob, &st), 0);
    return st.queued;
}

/* Rows come back in the order they were queued, with ids 1, 2, 3, ... and what was queued. */
static void rows_in_id_order(void **state)
{
    fixture *f = *state;
    assert_int_equal(write_rows(f, 0, 3, "event"), 0);
    assert_int_equal(write_rows(f, 3, 4, "session"), 0);
    pw_store_outbox_msg *m;
    size_t n = read_all(f, 0, &m);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(m[i].id, (int64_t)i + 1);
        assert_int_equal(payload_n(&m[i]), (int)i);
        assert_int_equal(m[i].ts_ms, T0 + 1000 * (int64_t)i);
        assert_string_equal(m[i].kind, i < 3 ? "event" : "session");
    }
    pw_store_outbox_msgs_free(m, n);
    /* A window: the next rows after the last one read, at most max. */
    assert_int_equal(pw_store_outbox_read(f->ob, 2, 3, &m, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].id, 3);
    assert_int_equal(m[2].id, 5);
    pw_store_outbox_msgs_free(m, n);
    assert_int_equal(pw_store_outbox_read(f->ob, 7, 10, &m, &n), 0);
    assert_int_equal(n, 0);
    assert_null(m);
}

/* An acknowledged row is deleted, whatever the order of the acknowledgements; the others stay
 * and the status counts them. */
static void ack_deletes_only_those(void **state)
{
    fixture *f = *state;
    assert_int_equal(write_rows(f, 0, 6, "event"), 0);
    assert_int_equal(queued(f), 6);
    int64_t acked[] = {2, 1, 5, 42 /* gone already: fine */};
    assert_int_equal(pw_store_outbox_ack(f->ob, acked, PW_ARRAY_LEN(acked)), 0);
    pw_store_outbox_msg *m;
    size_t n = read_all(f, 0, &m);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].id, 3);
    assert_int_equal(m[1].id, 4);
    assert_int_equal(m[2].id, 6);
    pw_store_outbox_msgs_free(m, n);
    pw_store_outbox_status st;
    assert_int_equal(pw_store_outbox_status_get(f->ob, &st), 0);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.oldest_ts_ms, T0 + 2000); /* row 3 */
    assert_int_equal(st.last_id, 6);
}

/* After a restart the first row not acknowledged comes first, and new rows continue the ids:
 * an id is never handed out twice, also once every row was delivered and deleted. */
static void restart_resumes_and_never_reuses_ids(void **state)
{
    fixture *f = *state;
    assert_int_equal(write_rows(f, 0, 5, "event"), 0);
    int64_t acked[] = {1, 2};
    assert_int_equal(pw_store_outbox_ack(f->ob, acked, 2), 0);
    close_both(f);
    open_both(f);
    pw_store_outbox_msg *m;
    size_t n = read_all(f, 0, &m);
    assert_int_equal(n, 3);
    assert_int_equal(m[0].id, 3);
    pw_store_outbox_msgs_free(m, n);

    int64_t rest[] = {3, 4, 5};
    assert_int_equal(pw_store_outbox_ack(f->ob, rest, 3), 0);
    assert_int_equal(queued(f), 0);
    close_both(f);
    open_both(f);
    assert_int_equal(write_rows(f, 5, 1, "event"), 0);
    n = read_all(f, 0, &m);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].id, 6);
    assert_int_equal(payload_n(&m[0]), 5);
    pw_store_outbox_msgs_free(m, n);
}

/* Installs a trigger that makes inserts into table fail when the condition on NEW holds. */
static void fail_insert(fixture *f, const char *table, const char *when)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER boom BEFORE INSERT ON %s WHEN %s "
             "BEGIN SELECT RAISE(ABORT, 'injected'); END",
             table, when);
    assert_int_equal(sqlite3_exec(pw_store__db(f->store), sql, NULL, NULL, NULL), SQLITE_OK);
}

static int64_t count(fixture *f, const char *table)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    return st_sql_int(pw_store__db(f->store), sql);
}

/* A batch is one transaction: when its outbox row cannot be queued, its history rows are not
 * written either, and the other way round; the same batch goes through once the cause is gone. */
static void same_transaction_as_history(void **state)
{
    fixture *f = *state;
    pw_store_batch *b = pw_store_batch_new();
    pw_store_session s = {.start_ms = T0, .end_ms = T0 + 60000, .register_wh = 500};
    pw_strlcpy(s.charger, "a01", sizeof(s.charger));
    pw_store_batch_add_session(b, &s);
    pw_store_batch_add_outbox(b, T0 + 60000, "session", "{\"charger\":\"a01\"}", 0);

    fail_insert(f, "outbox", "NEW.kind = 'session'");
    assert_int_equal(pw_store_write(f->store, b), PW_STORE_E_WRITE);
    assert_int_equal(count(f, "session"), 0);
    assert_int_equal(count(f, "outbox"), 0);
    assert_int_equal(sqlite3_exec(pw_store__db(f->store), "DROP TRIGGER boom", NULL, NULL, NULL),
                     SQLITE_OK);

    fail_insert(f, "session", "NEW.start_ms = 1700000000000");
    assert_int_equal(pw_store_write(f->store, b), PW_STORE_E_WRITE);
    assert_int_equal(count(f, "session"), 0);
    assert_int_equal(count(f, "outbox"), 0);
    assert_int_equal(sqlite3_exec(pw_store__db(f->store), "DROP TRIGGER boom", NULL, NULL, NULL),
                     SQLITE_OK);

    assert_int_equal(pw_store_write(f->store, b), 0);
    assert_int_equal(count(f, "session"), 1);
    assert_int_equal(count(f, "outbox"), 1);
    pw_store_batch_free(b);
}

static int write_quarter(fixture *f, int64_t quarter, int copies)
{
    pw_store_batch *b = pw_store_batch_new();
    for (int i = 0; i < copies; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "{\"n\":%lld}", (long long)(quarter / 900000));
        pw_store_batch_add_outbox(b, quarter + 900000, "aggregate", payload, quarter);
    }
    int rc = pw_store_write(f->store, b);
    pw_store_batch_free(b);
    return rc;
}

/* A quarter's aggregate is queued once: twice in a batch, again in a later batch, again after a
 * restart, or a quarter older than one queued (a clock stepped back) is left out. */
static void aggregate_never_twice(void **state)
{
    fixture *f = *state;
    const int64_t q = 1700000100000LL / 900000 * 900000;
    assert_int_equal(write_quarter(f, q, 2), 0);
    assert_int_equal(write_quarter(f, q, 1), 0);
    close_both(f);
    open_both(f);
    assert_int_equal(write_quarter(f, q, 1), 0);
    assert_int_equal(write_quarter(f, q - 900000, 1), 0);
    assert_int_equal(count(f, "outbox"), 1);
    /* Even once delivered and deleted. */
    int64_t one = 1;
    assert_int_equal(pw_store_outbox_ack(f->ob, &one, 1), 0);
    assert_int_equal(write_quarter(f, q, 1), 0);
    assert_int_equal(count(f, "outbox"), 0);
    assert_int_equal(write_quarter(f, q + 900000, 1), 0);
    pw_store_outbox_msg *m;
    size_t n = read_all(f, 0, &m);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].id, 2);
    assert_int_equal(m[0].ts_ms, q + 2 * 900000);
    pw_store_outbox_msgs_free(m, n);
}

/* The bound: at most max_rows, the oldest go first, and the count says how many went; rows older
 * than the age bound go too. */
static void bound_drops_oldest(void **state)
{
    fixture *f = *state;
    assert_int_equal(write_rows(f, 0, 25, "event"), 0);
    uint64_t dropped = 99;
    assert_int_equal(pw_store_outbox_trim(f->ob, T0 + 25000, 100, 0, &dropped), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(pw_store_outbox_trim(f->ob, T0 + 25000, 10, 0, &dropped), 0);
    assert_int_equal(dropped, 15);
    pw_store_outbox_msg *m;
    size_t n = read_all(f, 0, &m);
    assert_int_equal(n, 10);
    assert_int_equal(m[0].id, 16);
    assert_int_equal(m[9].id, 25);
    pw_store_outbox_msgs_free(m, n);
    /* Rows describing a time before now - 5 s: 16..19 (T0 + 15 s .. T0 + 18 s). */
    assert_int_equal(pw_store_outbox_trim(f->ob, T0 + 24000, 0, 5000, &dropped), 0);
    assert_int_equal(dropped, 4);
    assert_int_equal(queued(f), 6);
}

/* Rows queued while the outbox's own connection reads and deletes: the writer and the outbox
 * connection do not lock each other out for good, and nothing is lost. */
static void writer_and_outbox_interleave(void **state)
{
    fixture *f = *state;
    int64_t next_read = 0;
    uint64_t seen = 0;
    for (int round = 0; round < 50; round++) {
        assert_int_equal(write_rows(f, round * 3, 3, "event"), 0);
        pw_store_outbox_msg *m;
        size_t n = 0;
        assert_int_equal(pw_store_outbox_read(f->ob, next_read, 2, &m, &n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(m[i].id, (int64_t)seen + 1);
            assert_int_equal(pw_store_outbox_ack(f->ob, &m[i].id, 1), 0);
            next_read = m[i].id;
            seen++;
        }
        pw_store_outbox_msgs_free(m, n);
    }
    assert_int_equal(queued(f), 150 - seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rows_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(ack_deletes_only_those, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_resumes_and_never_reuses_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(same_transaction_as_history, setup, teardown),
        cmocka_unit_test_setup_teardown(aggregate_never_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(bound_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_and_outbox_interleave, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
