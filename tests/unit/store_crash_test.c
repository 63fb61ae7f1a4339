/* Durability: a writer killed with SIGKILL at random moments, over and over, never corrupts the
 * database and never loses a batch it reported committed; the history stays gap-free and in
 * order. Usage: store_crash_test [kills] (default 20; the soak run uses many more). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pw_store.h"
#include "pw_util.h"
#include "store_crash.h"
#include "store_testutil.h"

static int kills = 20;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Reads acknowledged sequence numbers from fd until `enough` have come (0: no limit), the
 * deadline (monotonic ms) passes or the file ends; *last is the highest. Returns how many were
 * read, -1 at end of file. */
static int read_acks(int fd, int enough, int64_t deadline, int64_t *last)
{
    int got = 0;
    while (!enough || got < enough) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, left > 0 ? (int)left : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return got;
        int64_t seq;
        ssize_t n = read(fd, &seq, sizeof(seq));
        if (n == 0)
            return got ? got : -1;
        if (n != (ssize_t)sizeof(seq))
            return got;
        *last = seq;
        got++;
    }
    return got;
}

/* Starts the writer with its stdout on a pipe; returns its pid and the pipe's read end. */
static pid_t start_writer(const char *db, int *fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execl(STORE_CRASH_WRITER, STORE_CRASH_WRITER, db, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* The history in the file: sound, in order, with nothing acknowledged missing and at most the
 * one batch that was being committed beyond it. Returns the last sequence number stored. */
static int64_t check_history(const char *db_path, int64_t acked)
{
    sqlite3 *db = st_sql_open(db_path);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM pragma_integrity_check "
                                    "WHERE integrity_check <> 'ok'"),
                     0);
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    int64_t last = st_sql_int(db, "SELECT max(CAST(detail AS INTEGER)) FROM event");
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM event"), last + 1);
    /* Each event is one more than the one written before it. */
    assert_int_equal(st_sql_int(db, "SELECT count(*) FROM (SELECT CAST(detail AS INTEGER) - "
                                    "lag(CAST(detail AS INTEGER), 1, -1) OVER (ORDER BY id) AS d "
                                    "FROM event) WHERE d <> 1"),
                     0);
    assert_int_equal(st_sql_int(db, "SELECT register_wh FROM session"), last);
    sqlite3_close(db);
    assert_true(last >= acked);
    assert_true(last <= acked + 1);

    char err[512];
    pw_store_reader *r;
    assert_int_equal(pw_store_reader_open(&r, db_path, err, sizeof(err)), 0);
    const char *names[] = {"c0", "c39"};
    for (size_t i = 0; i < PW_ARRAY_LEN(names); i++) {
        pw_store_point *p;
        size_t n;
        int64_t bucket;
        assert_int_equal(pw_store_query_series(r, PW_STORE_CHARGER, names[i], CRASH_T0,
                                               CRASH_T0 + (last + 1) * CRASH_STEP_MS,
                                               (size_t)last + 1, &p, &n, &bucket),
                         0);
        assert_int_equal(bucket, CRASH_STEP_MS);
        assert_int_equal(n, last + 1);
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(p[k].ts_ms, CRASH_T0 + (int64_t)k * CRASH_STEP_MS);
            assert_int_equal(p[k].samples, 1);
            assert_int_equal((int32_t)(p[k].current[0].avg * 100.0f + 0.5f), crash_value(k));
        }
        free(p);
    }
    pw_store_reader_close(r);
    return last;
}

static void killed_writer_never_corrupts(void **state)
{
    (void)state;
    char dir[256], db[300];
    st_tmpdir(dir, sizeof(dir));
    snprintf(db, sizeof(db), "%s/history.db", dir);
    unsigned seed = 12345;
    int64_t acked = -1;
    int64_t total_ms = 0;
    for (int i = 0; i < kills; i++) {
        int fd;
        int64_t start = now_ms();
        pid_t pid = start_writer(db, &fd);
        /* Wait for it to be writing, let it run a random while, then pull the plug. */
        assert_int_equal(read_acks(fd, 1, now_ms() + 10000, &acked), 1);
        read_acks(fd, 0, now_ms() + (int64_t)(rand_r(&seed) % 60), &acked);
        assert_int_equal(kill(pid, SIGKILL), 0);
        read_acks(fd, 0, now_ms() + 5000, &acked); /* what it reported before dying counts */
        close(fd);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        acked = check_history(db, acked);
        total_ms += now_ms() - start;
    }
    print_message("%d kills, %lld batches survived, %lld ms\n", kills, (long long)acked + 1,
                  (long long)total_ms);
    assert_true(acked > kills); /* it did get work done between kills */
    st_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        kills = atoi(argv[1]);
    const struct CMUnitTest tests[] = {cmocka_unit_test(killed_writer_never_corrupts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
