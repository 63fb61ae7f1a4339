/* Helper for store_crash_test: writes numbered batches to a store as fast as it can, reporting
 * each committed sequence number on stdout, until it is killed. Carries on from the last number
 * in the database, so every run continues the same history. Usage: store_crash_writer DB. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pw_store.h"
#include "store_crash.h"

/* The next sequence number: one past the newest "seq" event, or 0 for a new database. */
static int64_t next_seq(const char *path)
{
    char err[512];
    pw_store_reader *r;
    if (pw_store_reader_open(&r, path, err, sizeof(err))) {
        fprintf(stderr, "crash writer: %s\n", err);
        exit(3);
    }
    pw_store_event *ev;
    size_t n;
    if (pw_store_query_events(r, 0, INT64_MAX, "seq", NULL, 1, &ev, &n)) {
        fprintf(stderr, "crash writer: %s\n", pw_store_reader_errmsg(r));
        exit(3);
    }
    int64_t next = n ? atoll(ev[0].detail) + 1 : 0;
    free(ev);
    pw_store_reader_close(r);
    return next;
}

static void fill_batch(pw_store_batch *b, int64_t seq)
{
    int64_t ts = CRASH_T0 + seq * CRASH_STEP_MS;
    for (int c = 0; c < CRASH_CHARGERS; c++) {
        pw_store_charger_sample s = {.ts_ms = ts, .state = 2, .limit_a = 16, .phases = 3};
        snprintf(s.charger, sizeof(s.charger), "c%d", c);
        s.current_a[0] = (float)crash_value(seq) / 100.0f;
        s.current_a[1] = (float)c / 100.0f;
        pw_store_batch_add_charger(b, &s);
    }
    pw_store_node_sample n = {.ts_ms = ts, .node = "main"};
    n.current_a[0] = (float)crash_value(seq) / 100.0f;
    pw_store_batch_add_node(b, &n);
    pw_store_event e = {.ts_ms = ts, .kind = "seq"};
    snprintf(e.detail, sizeof(e.detail), "%lld", (long long)seq);
    pw_store_batch_add_event(b, &e);
    pw_store_session se = {.charger = "c0", .start_ms = CRASH_T0, .register_wh = (uint64_t)seq};
    pw_store_batch_add_session(b, &se);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DB\n", argv[0]);
        return 2;
    }
    char err[512];
    pw_store *s;
    if (pw_store_open(&s, argv[1], err, sizeof(err))) {
        fprintf(stderr, "crash writer: %s\n", err);
        return 3;
    }
    pw_store_policy policy;
    pw_store_policy_default(&policy);
    policy.work = 5000; /* small steps, so kills land in the middle of maintenance too */
    policy.raw_keep_ms = 365LL * 24 * 3600 * 1000; /* the test reads back every sample */
    pw_store_batch *b = pw_store_batch_new();
    for (int64_t seq = next_seq(argv[1]);; seq++) {
        pw_store_batch_clear(b);
        fill_batch(b, seq);
        if (pw_store_write(s, b)) {
            fprintf(stderr, "crash writer: %s\n", pw_store_errmsg(s));
            return 4;
        }
        /* Reported only after the commit: the test may count on everything it has read. */
        if (write(STDOUT_FILENO, &seq, sizeof(seq)) != (ssize_t)sizeof(seq))
            return 5;
        if (seq % 8 == 0 &&
            pw_store_maintain(s, CRASH_T0 + seq * CRASH_STEP_MS + 1000, &policy) < 0) {
            fprintf(stderr, "crash writer: %s\n", pw_store_errmsg(s));
            return 4;
        }
    }
}
