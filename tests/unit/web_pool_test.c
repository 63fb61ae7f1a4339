/* Tests of the API worker pool (server/api_pool.c) behind real deferred HTTP answers: never
 * more queries in flight than its workers, a bounded queue answered 503 beyond its length, a
 * queued request whose client left is dropped without running, read connections opened on the
 * worker, and a clean shutdown (uv_loop_close() == 0) while a job still runs. */
#include "app_int.h"
#include "pw_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define QUEUE_LEN 32 /* the pool's documented queue bound */
#define EXTRA     6  /* requests beyond the queue: answered 503 at once */

typedef struct fixture {
    uv_loop_t loop;
    pw_api_pool *pool;
    pw_web *web;
    uint16_t port;
    uv_async_t wake;
    char dir[64];

    atomic_int api_calls;
    atomic_int runs, in_flight, max_in_flight;
    atomic_bool gate_open;
    atomic_bool reader_seen;
    atomic_bool close_now;
    bool closed;
} fixture;

static fixture *the_fixture;

/* A job that holds its worker until the client opens the gate. */
static void gated_fn(void *arg, pw_store_reader *reader, pw_web_response *resp)
{
    (void)arg;
    (void)reader;
    fixture *f = the_fixture;
    int now = atomic_fetch_add(&f->in_flight, 1) + 1;
    int max = atomic_load(&f->max_in_flight);
    while (now > max && !atomic_compare_exchange_weak(&f->max_in_flight, &max, now))
        ;
    atomic_fetch_add(&f->runs, 1);
    while (!atomic_load(&f->gate_open))
        usleep(1000);
    atomic_fetch_sub(&f->in_flight, 1);
    resp->body = pw_xstrdup("{\"ran\":true}");
    resp->body_len = strlen(resp->body);
}

/* A job that reads the database through the worker's own connection. */
static void query_fn(void *arg, pw_store_reader *reader, pw_web_response *resp)
{
    (void)arg;
    pw_store_point *p = NULL;
    size_t n = 0;
    int64_t bucket = 0;
    bool ok = reader && pw_store_query_series(reader, PW_STORE_CHARGER, "nobody", 0, 1000, 10, &p,
                                              &n, &bucket) == 0;
    free(p);
    atomic_store(&the_fixture->reader_seen, ok);
    resp->status = ok ? 200 : 500;
    resp->body = pw_xstrdup(ok ? "{\"points\":0}" : "{}");
    resp->body_len = strlen(resp->body);
}

static void test_api(void *ud, const pw_web_request *req, pw_web_response *resp)
{
    fixture *f = ud;
    bool query = strcmp(req->path, "/api/query") == 0;
    pw_api_submit(f->pool, req, resp, query, query ? query_fn : gated_fn, NULL, NULL);
    atomic_fetch_add(&f->api_calls, 1);
}

static void on_web_closed(void *ud)
{
    fixture *f = ud;
    f->closed = true;
    uv_close((uv_handle_t *)&f->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    fixture *f = a->data;
    if (atomic_exchange(&f->close_now, false))
        pw_web_close(f->web, on_web_closed, f);
}

/* ---- client side (its own thread; never asserts) ---- */

static int client_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void client_send(int fd, const char *path)
{
    char req[128];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        fprintf(stderr, "send failed\n");
}

/* The status of the response on fd, or -1. */
static int client_status(int fd)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 12)
        return -1;
    buf[n] = '\0';
    return atoi(buf + 9);
}

static bool wait_calls(fixture *f, int n)
{
    for (int i = 0; i < 5000 && atomic_load(&f->api_calls) < n; i++)
        usleep(1000);
    return atomic_load(&f->api_calls) >= n;
}

typedef struct results {
    int total;
    int status[64];
    int query_status;
    int gone; /* the index of the connection closed while queued */
} results;

static results res;

static void *client(void *arg)
{
    fixture *f = arg;
    int fds[64];
    int total = res.total;
    /* One at a time, each seen by the handler before the next, so the order is known. */
    for (int i = 0; i < total; i++) {
        fds[i] = client_connect(f->port);
        client_send(fds[i], "/api/slow");
        if (!wait_calls(f, i + 1))
            fprintf(stderr, "request %d not handled\n", i);
    }
    /* The refused ones are answered at once, before any job finished. */
    for (int i = total - EXTRA; i < total; i++)
        res.status[i] = client_status(fds[i]);
    /* A queued client leaves; then the jobs may finish. */
    close(fds[res.gone]);
    fds[res.gone] = -1;
    usleep(20000);
    atomic_store(&f->gate_open, true);
    for (int i = 0; i < total - EXTRA; i++)
        if (fds[i] >= 0)
            res.status[i] = client_status(fds[i]);
    for (int i = 0; i < total; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    int q = client_connect(f->port);
    client_send(q, "/api/query");
    res.query_status = client_status(q);
    close(q);
    /* Close while a gated job runs: web must wait for its answer. */
    atomic_store(&f->gate_open, false);
    int last = client_connect(f->port);
    client_send(last, "/api/slow");
    wait_calls(f, total + 2);
    while (atomic_load(&f->in_flight) == 0)
        usleep(1000);
    atomic_store(&f->close_now, true);
    uv_async_send(&f->wake);
    usleep(50000);
    atomic_store(&f->gate_open, true);
    close(last);
    return NULL;
}

static void test_pool(void **state)
{
    (void)state;
    fixture *f = pw_xcalloc(1, sizeof *f);
    the_fixture = f;
    snprintf(f->dir, sizeof f->dir, "/tmp/pw-pool-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char db[128], err[512];
    snprintf(db, sizeof db, "%s/history.db", f->dir);
    pw_store *store;
    assert_int_equal(pw_store_open(&store, db, err, sizeof err), 0);

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->wake, on_wake), 0);
    f->wake.data = f;
    f->pool = pw_api_pool_new(&f->loop, db);
    pw_web_opts o = {.addr = "127.0.0.1", .api = test_api, .api_ud = f};
    assert_int_equal(pw_web_new(&f->web, &f->loop, &o, err, sizeof err), 0);
    f->port = pw_web_port(f->web);

    int workers = uv_available_parallelism() > 2 ? 2 : 1;
    res.total = workers + QUEUE_LEN + EXTRA;
    res.gone = workers + 3; /* queued, not running */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client, f), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    pthread_join(t, NULL);
    assert_true(f->closed);
    pw_api_pool_free(f->pool);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pw_store_close(store);

    for (int i = res.total - EXTRA; i < res.total; i++)
        assert_int_equal(res.status[i], 503);
    for (int i = 0; i < res.total - EXTRA; i++)
        if (i != res.gone)
            assert_int_equal(res.status[i], 200);
    assert_int_equal(atomic_load(&f->max_in_flight), workers);
    /* Everything queued ran except the one whose client left, plus the last one at close. */
    assert_int_equal(atomic_load(&f->runs), workers + QUEUE_LEN - 1 + 1);
    assert_int_equal(res.query_status, 200);
    assert_true(atomic_load(&f->reader_seen));

    char path[160];
    static const char *const files[] = {"history.db", "history.db-wal", "history.db-shm"};
    for (size_t i = 0; i < PW_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
}

int main(void)
{
    pw_log_set_level(PW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
