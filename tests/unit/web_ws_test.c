/* Tests of web/ws.c (pw_web_ws.h): endpoints and clients on a real libuv loop on 127.0.0.1. Our
 * own client talks to our own endpoint; refusals, fragments, pings and slow readers are checked
 * with raw RFC 6455 bytes from a blocking socket on a second thread, so they do not depend on our
 * client. Every test ends with uv_loop_close() == 0. */
#define _GNU_SOURCE /* strcasestr */
#include "pw_util.h"
#include "pw_web.h"
#include "pw_web_ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define SUBPROTO "ocpp1.6"
#define MAX_MSGS 1100
#define TICK_MS  5
#define WAIT_MS  5000

/* ---- raw client side (blocking, on the client thread; never asserts) ---- */

typedef struct conn {
    int fd;
    unsigned char buf[64 * 1024];
    size_t len;
} conn;

static bool conn_open(conn *c, uint16_t port, int rcvbuf)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static bool conn_send(conn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool conn_need(conn *c, size_t n)
{
    while (c->len < n) {
        if (c->len == sizeof(c->buf))
            return false;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (r <= 0)
            return false;
        c->len += (size_t)r;
    }
    return true;
}

static void conn_consume(conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads a response head; returns its status (0 on failure) and copies the head to head. */
static int http_head(conn *c, char *head, size_t size)
{
    for (;;) {
        for (size_t i = 3; i < c->len; i++)
            if (memcmp(c->buf + i - 3, "\r\n\r\n", 4) == 0) {
                size_t n = i + 1 < size ? i + 1 : size - 1;
                memcpy(head, c->buf, n);
                head[n] = '\0';
                conn_consume(c, i + 1);
                return atoi(head + 9);
            }
        if (!conn_need(c, c->len + 1))
            return 0;
    }
}

/* Sends an upgrade for path; protocols and auth ("Authorization: ..." value) may be NULL.
 * Returns the status of the answer. */
static int ws_upgrade(conn *c, uint16_t port, const char *path, const char *protocols,
                      const char *auth, char *head, size_t size, int rcvbuf)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s%s%s%s%s%s\r\n",
             path, port, protocols ? "Sec-WebSocket-Protocol: " : "", protocols ? protocols : "",
             protocols ? "\r\n" : "", auth ? "Authorization: " : "", auth ? auth : "",
             auth ? "\r\n" : "");
    if (!conn_open(c, port, rcvbuf) || !conn_send(c, req, strlen(req)))
        return 0;
    return http_head(c, head, size);
}

/* One request on a fresh connection; returns the status. */
static int raw_status(uint16_t port, const char *path, const char *protocols, const char *auth,
                      char *head, size_t size)
{
    conn *c = pw_xmalloc(sizeof(*c));
    int st = ws_upgrade(c, port, path, protocols, auth, head, size, 0);
    conn_close(c);
    free(c);
    return st;
}

/* Sends one masked frame (clients must mask). */
static bool ws_frame(conn *c, int first_byte, const void *data, size_t len)
{
    unsigned char *f = pw_xmalloc(len + 14), mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    f[h++] = (unsigned char)first_byte;
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        f[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    bool ok = conn_send(c, f, h + len);
    free(f);
    return ok;
}

/* Reads one frame; returns its opcode (-1 on error or EOF) and a malloc'd payload. */
static int ws_read(conn *c, char **payload, size_t *len)
{
    *payload = NULL;
    if (!conn_need(c, 2))
        return -1;
    int op = c->buf[0] & 0x0f;
    size_t n = c->buf[1] & 0x7f, h = 2;
    if (n == 126) {
        if (!conn_need(c, 4))
            return -1;
        n = (size_t)c->buf[2] << 8 | c->buf[3];
        h = 4;
    } else if (n == 127) {
        if (!conn_need(c, 10))
            return -1;
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | c->buf[i];
        h = 10;
    }
    if (n > sizeof(c->buf) - h || !conn_need(c, h + n))
        return -1;
    *payload = pw_xmalloc(n + 1);
    memcpy(*payload, c->buf + h, n);
    (*payload)[n] = '\0';
    *len = n;
    conn_consume(c, h + n);
    return op;
}

/* Reads frames until a close frame; returns its code (-1 when the socket ended without one). */
static int ws_read_close(conn *c)
{
    for (;;) {
        char *p;
        size_t n;
        int op = ws_read(c, &p, &n);
        if (op < 0)
            return -1;
        int code = op == 8 && n >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 0;
        free(p);
        if (op == 8)
            return code;
    }
}

/* ---- the loop side ---- */

typedef struct msg_log {
    char *text[MAX_MSGS];
    size_t len[MAX_MSGS];
    size_t n;
} msg_log;

typedef struct fx fx;

/* One side of a connection as the test sees it. */
typedef struct side {
    fx *f;
    int tag;
    pw_web_ws *ws;
    int opens, closes;
    char why[128];
    msg_log got;
} side;

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    pw_web *web;
    pw_web_ws_ep *ep;
    uint16_t port;
    bool web_done;

    /* Endpoint behaviour. */
    enum pw_web_ws_verdict verdict;
    bool check_basic;  /* 401 without Basic, 401 for a wrong password, 403 for another user */
    bool echo;         /* the endpoint echoes every message */
    bool close_on_bye; /* "bye please" -> send "bye", close 4000 "asked", then try to send */
    int send_after_close;
    bool close_ep_on_msg; /* the first message closes the whole endpoint */
    int accepts;
    char identity[256];
    bool has_basic;
    char user[64], password[64];
    side srv[8];
    int n_srv;

    side cli[8];

    /* The raw client thread. */
    pthread_t thread;
    atomic_bool thread_done;
    void (*scenario)(fx *f);
    int st[8];
    char head[8][1024];
    int codes[8];
    int ops[8];
    char *texts[8];
    size_t lens[8];
    atomic_bool release; /* the loop tells the thread it may go on */
    atomic_int srv_closed_atomic;

    /* Slow consumer. */
    uv_timer_t pump;
    int pumped;
    bool pump_refused;
    size_t queued_max;
};

static void log_add(msg_log *l, const char *text, size_t len)
{
    if (l->n == MAX_MSGS)
        return;
    l->text[l->n] = pw_xmalloc(len + 1);
    memcpy(l->text[l->n], text, len + 1);
    l->len[l->n++] = len;
}

static void log_free(msg_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->text[i]);
    l->n = 0;
}

static enum pw_web_ws_verdict srv_accept(void *ud, const pw_web_ws_hello *hello, pw_web_ws *ws,
                                         void **conn_ud)
{
    fx *f = ud;
    f->accepts++;
    pw_strlcpy(f->identity, hello->identity, sizeof(f->identity));
    f->has_basic = hello->has_basic;
    pw_strlcpy(f->user, hello->user, sizeof(f->user));
    pw_strlcpy(f->password, hello->password, sizeof(f->password));
    if (f->check_basic) {
        if (!hello->has_basic)
            return PW_WEB_WS_UNAUTHORIZED;
        if (strcmp(hello->user, "CP-1") != 0)
            return PW_WEB_WS_FORBIDDEN;
        if (strcmp(hello->password, "s3cret:x") != 0)
            return PW_WEB_WS_UNAUTHORIZED;
    }
    if (f->verdict != PW_WEB_WS_ACCEPT)
        return f->verdict;
    if (f->n_srv == (int)PW_ARRAY_LEN(f->srv))
        return PW_WEB_WS_FORBIDDEN;
    side *s = &f->srv[f->n_srv];
    s->f = f;
    s->tag = f->n_srv++;
    s->ws = ws;
    *conn_ud = s;
    return PW_WEB_WS_ACCEPT;
}

static void srv_message(void *ud, void *conn_ud, const char *text, size_t len)
{
    fx *f = ud;
    side *s = conn_ud;
    assert_int_equal(text[len], '\0');
    log_add(&s->got, text, len);
    if (f->close_on_bye && strcmp(text, "bye please") == 0) {
        pw_web_ws_send(s->ws, "bye", 3);
        pw_web_ws_close(s->ws, 4000, "asked");
        f->send_after_close = pw_web_ws_send(s->ws, "late", 4);
        return;
    }
    if (f->close_ep_on_msg && f->ep) {
        pw_web_ws_ep_close(f->ep);
        f->ep = NULL;
        return;
    }
    if (f->echo)
        pw_web_ws_send(s->ws, text, len);
}

static void side_closed(void *ud, void *conn_ud, const char *why)
{
    (void)ud;
    side *s = conn_ud;
    s->closes++;
    s->ws = NULL;
    pw_strlcpy(s->why, why, sizeof(s->why));
    if (s->f)
        atomic_fetch_add(&s->f->srv_closed_atomic, 1);
}

static void cli_open(void *ud, void *conn_ud, pw_web_ws *ws)
{
    (void)ud;
    side *s = conn_ud;
    s->opens++;
    s->ws = ws;
}

static void cli_message(void *ud, void *conn_ud, const char *text, size_t len)
{
    (void)ud;
    side *s = conn_ud;
    log_add(&s->got, text, len);
}

static void on_tick(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run(UV_RUN_ONCE) so deadlines are checked */
}

/* A web front without HTTP (bare), or with the dashboard's HTTP server too. */
static void fx_init_with(fx *f, bool http)
{
    memset(f, 0, sizeof(*f));
    f->echo = true;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, TICK_MS, TICK_MS);
    char err[256] = "";
    if (http) {
        pw_web_opts o = {.addr = "127.0.0.1"};
        assert_int_equal(pw_web_new(&f->web, &f->loop, &o, err, sizeof(err)), 0);
        assert_true(pw_web_port(f->web) > 0);
    } else {
        assert_int_equal(pw_web_new_bare(&f->web, &f->loop, err, sizeof(err)), 0);
        assert_int_equal(pw_web_port(f->web), 0); /* bare: nothing listens */
    }
}

static void fx_init(fx *f)
{
    fx_init_with(f, false);
}

static pw_web_ws_ep_opts ep_opts(fx *f)
{
    pw_web_ws_ep_opts o = {
        .addr = "127.0.0.1",
        .path_prefix = "/ocpp/",
        .subprotocol = SUBPROTO,
        .handlers = {.ud = f, .accept = srv_accept, .message = srv_message, .closed = side_closed},
    };
    return o;
}

static void fx_listen_opts(fx *f, const pw_web_ws_ep_opts *o)
{
    char err[256] = "";
    assert_int_equal(pw_web_ws_listen(f->web, o, &f->ep, err, sizeof(err)), 0);
    f->port = pw_web_ws_ep_port(f->ep);
    assert_true(f->port > 0);
}

static void fx_listen(fx *f)
{
    pw_web_ws_ep_opts o = ep_opts(f);
    fx_listen_opts(f, &o);
}

typedef bool (*cond_fn)(fx *f);

static bool run_until(fx *f, cond_fn cond, uint64_t ms)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while (!cond(f) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    return cond(f);
}

static void on_web_done(void *ud)
{
    ((fx *)ud)->web_done = true;
}

static void fx_finish(fx *f)
{
    pw_web_close(f->web, on_web_done, f);
    uv_close((uv_handle_t *)&f->tick, NULL);
    if (f->pump.type == UV_TIMER)
        uv_close((uv_handle_t *)&f->pump, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->web_done);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < PW_ARRAY_LEN(f->srv); i++) {
        log_free(&f->srv[i].got);
        log_free(&f->cli[i].got);
    }
    for (size_t i = 0; i < PW_ARRAY_LEN(f->texts); i++)
        free(f->texts[i]);
}

static void *thread_main(void *arg)
{
    fx *f = arg;
    f->scenario(f);
    atomic_store(&f->thread_done, true);
    return NULL;
}

static bool thread_finished(fx *f)
{
    return atomic_load(&f->thread_done);
}

/* Runs scenario on the client thread while the loop serves it. */
static void run_thread(fx *f, void (*scenario)(fx *f), uint64_t ms)
{
    f->scenario = scenario;
    atomic_store(&f->thread_done, false);
    assert_int_equal(pthread_create(&f->thread, NULL, thread_main, f), 0);
    bool done = run_until(f, thread_finished, ms);
    if (!done)
        atomic_store(&f->release, true);
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_true(done);
}

static void client_connect(fx *f, int i, const char *url, const char *user, const char *password,
                           const char *ca)
{
    char err[256] = "";
    side *s = &f->cli[i];
    s->tag = i;
    pw_web_ws_client_opts o = {
        .url = url,
        .subprotocol = SUBPROTO,
        .user = user,
        .password = password,
        .ca_file = ca,
        .handlers = {.ud = f, .open = cli_open, .message = cli_message, .closed = side_closed},
        .conn_ud = s,
    };
    assert_int_equal(pw_web_ws_connect(f->web, &o, err, sizeof(err)), 0);
}

static char *url_of(fx *f, const char *scheme, const char *path)
{
    static char url[256];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", scheme, f->port, path);
    return url;
}

static bool cli0_open(fx *f)
{
    return f->cli[0].opens || f->cli[0].closes;
}
static bool cli0_closed(fx *f)
{
    return f->cli[0].closes > 0;
}
static bool cli0_one_msg(fx *f)
{
    return f->cli[0].got.n >= 1 || f->cli[0].closes;
}
static bool both0_closed(fx *f)
{
    return f->cli[0].closes > 0 && f->srv[0].closes > 0;
}

/* ---- tests ---- */

static void test_echo_round_trip(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    fx_listen(f);
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), NULL, NULL, NULL);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    assert_int_equal(f->cli[0].opens, 1);
    assert_int_equal(f->accepts, 1);
    assert_string_equal(f->identity, "CP-1");
    assert_false(f->has_basic);
    assert_int_equal(pw_web_ws_send(f->cli[0].ws, "[2,\"1\",\"Heartbeat\",{}]", 22), 0);
    assert_true(run_until(f, cli0_one_msg, WAIT_MS));
    assert_int_equal(f->srv[0].got.n, 1);
    assert_string_equal(f->srv[0].got.text[0], "[2,\"1\",\"Heartbeat\",{}]");
    assert_string_equal(f->cli[0].got.text[0], "[2,\"1\",\"Heartbeat\",{}]");
    assert_int_equal(pw_web_ws_queued(f->cli[0].ws), 0);

    pw_web_ws_close(f->cli[0].ws, 1000, "done");
    assert_true(run_until(f, both0_closed, WAIT_MS));
    assert_string_equal(f->cli[0].why, "closed locally 1000");
    assert_string_equal(f->srv[0].why, "closed by peer 1000");
    fx_finish(f);
    assert_int_equal(f->cli[0].closes, 1);
    assert_int_equal(f->srv[0].closes, 1);
    free(f);
}

static void scn_identity(fx *f)
{
    f->st[0] = raw_status(f->port, "/ocpp/CP%2017%25x", SUBPROTO, NULL, f->head[0], 1024);
    f->st[1] = raw_status(f->port, "/ocpp/", SUBPROTO, NULL, f->head[1], 1024);
    f->st[2] = raw_status(f->port, "/ocpp/a%2Fb", SUBPROTO, NULL, f->head[2], 1024);
    f->st[3] = raw_status(f->port, "/other/CP1", SUBPROTO, NULL, f->head[3], 1024);
    f->st[4] = raw_status(f->port, "/ocpp/a/b", SUBPROTO, NULL, f->head[4], 1024);
    f->st[5] = raw_status(f->port, "/ocppCP1", SUBPROTO, NULL, f->head[5], 1024);
}

static void test_identity_and_path(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    pw_web_ws_ep_opts o = ep_opts(f);
    o.path_prefix = "/ocpp"; /* the trailing '/' is implied */
    fx_listen_opts(f, &o);
    run_thread(f, scn_identity, 10000);
    assert_int_equal(f->st[0], 101);
    assert_string_equal(f->identity, "CP 17%x");
    assert_int_equal(f->accepts, 1); /* nothing else reached the accept callback */
    for (int i = 1; i <= 5; i++)
        assert_int_equal(f->st[i], 404);
    fx_finish(f);
    assert_int_equal(f->srv[0].closes, 1);
    free(f);
}

static void b64(const char *in, char *out, size_t size)
{
    size_t n;
    assert_int_equal(mbedtls_base64_encode((unsigned char *)out, size, &n,
                                           (const unsigned char *)in, strlen(in)),
                     0);
}

static void scn_basic(fx *f)
{
    char auth[128], enc[96];
    f->st[0] = raw_status(f->port, "/ocpp/CP-1", SUBPROTO, NULL, f->head[0], 1024);
    b64("CP-1:wrong", enc, sizeof(enc));
    snprintf(auth, sizeof(auth), "Basic %s", enc);
    f->st[1] = raw_status(f->port, "/ocpp/CP-1", SUBPROTO, auth, f->head[1], 1024);
    b64("CP-2:s3cret:x", enc, sizeof(enc));
    snprintf(auth, sizeof(auth), "Basic %s", enc);
    f->st[2] = raw_status(f->port, "/ocpp/CP-2", SUBPROTO, auth, f->head[2], 1024);
    f->st[3] = raw_status(f->port, "/ocpp/CP-1", SUBPROTO, "Basic !!notbase64", f->head[3], 1024);
    b64("CP-1:s3cret:x", enc, sizeof(enc));
    snprintf(auth, sizeof(auth), "basic   %s", enc);
    f->st[4] = raw_status(f->port, "/ocpp/CP-1", SUBPROTO, auth, f->head[4], 1024);
}

static bool cli1_closed(fx *f)
{
    return f->cli[1].closes > 0;
}

static void test_basic_auth(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    f->check_basic = true;
    fx_listen(f);
    run_thread(f, scn_basic, 10000);
    assert_int_equal(f->st[0], 401);
    assert_non_null(strcasestr(f->head[0], "\r\nwww-authenticate: Basic realm=\"phasewise\""));
    assert_int_equal(f->st[1], 401);
    assert_int_equal(f->st[2], 403);
    assert_int_equal(f->st[3], 401); /* undecodable: as if there were none */
    assert_int_equal(f->st[4], 101); /* scheme case and spacing do not matter */
    assert_int_equal(f->accepts, 5);

    /* Our client sends the header itself. */
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), "CP-1", "s3cret:x", NULL);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    assert_int_equal(f->cli[0].opens, 1);
    assert_true(f->has_basic);
    assert_string_equal(f->user, "CP-1");
    assert_string_equal(f->password, "s3cret:x");
    client_connect(f, 1, url_of(f, "ws", "/ocpp/CP-1"), "CP-1", "nope", NULL);
    assert_true(run_until(f, cli1_closed, WAIT_MS));
    fx_finish(f);
    assert_int_equal(f->cli[1].opens, 0);
    assert_int_equal(f->cli[1].closes, 1);
    assert_non_null(strstr(f->cli[1].why, "connect failed"));
    free(f);
}

static void scn_subprotocol(fx *f)
{
    f->st[0] = raw_status(f->port, "/ocpp/CP-1", NULL, NULL, f->head[0], 1024);
    f->st[1] = raw_status(f->port, "/ocpp/CP-1", "ocpp2.0.1", NULL, f->head[1], 1024);
    f->st[2] = raw_status(f->port, "/ocpp/CP-1", "pw-ws-http", NULL, f->head[2], 1024);
    f->st[3] = raw_status(f->port, "/ocpp/CP-1", "ocpp2.0.1, ocpp1.6", NULL, f->head[3], 1024);
}

static void test_subprotocol_required(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    fx_listen(f);
    run_thread(f, scn_subprotocol, 10000);
    assert_int_equal(f->st[0], 400);
    assert_int_equal(f->st[1], 400);
    assert_int_equal(f->st[2], 400);
    assert_int_equal(f->st[3], 101);
    assert_non_null(strcasestr(f->head[3], "\r\nSec-WebSocket-Protocol: ocpp1.6\r\n"));
    assert_int_equal(f->accepts, 1);

    /* Our client offering something else is refused and never opens. */
    char err[256];
    pw_web_ws_client_opts o = {
        .url = url_of(f, "ws", "/ocpp/CP-9"),
        .subprotocol = "ocpp2.0.1",
        .handlers = {.ud = f, .open = cli_open, .message = cli_message, .closed = side_closed},
        .conn_ud = &f->cli[0],
    };
    assert_int_equal(pw_web_ws_connect(f->web, &o, err, sizeof(err)), 0);
    assert_true(run_until(f, cli0_closed, WAIT_MS));
    assert_int_equal(f->cli[0].opens, 0);
    assert_int_equal(f->accepts, 1);
    fx_finish(f);
    assert_int_equal(f->cli[0].closes, 1);
    free(f);
}

/* A server that answers 101 but chooses no subprotocol. */
static void scn_fake_server(fx *f)
{
    int lfd = (int)f->lens[0];
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[2048];
    size_t n = 0;
    while (n < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[n] = '\0';
    char *k = strcasestr(req, "Sec-WebSocket-Key:"), key[128] = "";
    if (k)
        sscanf(k + 18, " %100s", key);
    strcat(key, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    unsigned char sha[20];
    char acc[64], resp[512];
    size_t an;
    mbedtls_sha1_ret((const unsigned char *)key, strlen(key), sha);
    mbedtls_base64_encode((unsigned char *)acc, sizeof(acc), &an, sha, 20);
    acc[an] = '\0';
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n",
             acc);
    send(fd, resp, strlen(resp), MSG_NOSIGNAL);
    f->st[0] = strcasestr(req, "Sec-WebSocket-Protocol: ocpp1.6") != NULL;
    while (!atomic_load(&f->release))
        usleep(1000);
    close(fd);
}

static bool cli0_closed_or_release(fx *f)
{
    if (f->cli[0].closes)
        atomic_store(&f->release, true);
    return atomic_load(&f->thread_done);
}

static void test_client_needs_server_subprotocol(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    f->lens[0] = (size_t)lfd;
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), NULL, NULL, NULL);
    f->scenario = scn_fake_server;
    assert_int_equal(pthread_create(&f->thread, NULL, thread_main, f), 0);
    bool ok = run_until(f, cli0_closed_or_release, WAIT_MS);
    atomic_store(&f->release, true);
    pthread_join(f->thread, NULL);
    close(lfd);
    assert_true(ok);
    assert_int_equal(f->st[0], 1); /* it was offered */
    assert_int_equal(f->cli[0].opens, 0);
    assert_int_equal(f->cli[0].closes, 1);
    assert_string_equal(f->cli[0].why, "server did not choose subprotocol ocpp1.6");
    fx_finish(f);
    assert_int_equal(f->cli[0].closes, 1);
    free(f);
}

static void scn_plain_http(fx *f)
{
    const char *reqs[2] = {"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n\r\n",
                           "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"};
    for (int i = 0; i < 2; i++) {
        conn *c = pw_xmalloc(sizeof(*c));
        if (conn_open(c, f->port, 0) && conn_send(c, reqs[i], strlen(reqs[i])))
            f->st[i] = http_head(c, f->head[i], 1024);
        conn_close(c);
        free(c);
    }
}

static void test_plain_http_refused(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    fx_listen(f);
    run_thread(f, scn_plain_http, 10000);
    assert_int_equal(f->st[0], 426);
    assert_non_null(strcasestr(f->head[0], "\r\nupgrade: websocket"));
    assert_int_equal(f->st[1], 404);
    assert_int_equal(f->accepts, 0);
    fx_finish(f);
    free(f);
}

static bool cli0_two_or_closed(fx *f)
{
    return f->cli[0].closes && f->srv[0].closes;
}

static void test_message_too_big(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    f->echo = false;
    pw_web_ws_ep_opts o = ep_opts(f);
    o.limits.max_message = 64 * 1024;
    fx_listen_opts(f, &o);
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), NULL, NULL, NULL);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    char *big = pw_xmalloc(100 * 1024);
    memset(big, 'a', 100 * 1024);
    /* Exactly at the limit passes; over it closes with 1009 and delivers nothing. */
    assert_int_equal(pw_web_ws_send(f->cli[0].ws, big, 64 * 1024), 0);
    assert_int_equal(pw_web_ws_send(f->cli[0].ws, big, 100 * 1024), 0);
    free(big);
    assert_true(run_until(f, cli0_two_or_closed, WAIT_MS));
    assert_int_equal(f->srv[0].got.n, 1);
    assert_int_equal(f->srv[0].got.len[0], 64 * 1024);
    assert_string_equal(f->cli[0].why, "closed by peer 1009");
    assert_non_null(strstr(f->srv[0].why, "message too big"));
    fx_finish(f);
    free(f);
}

static void scn_fragments(fx *f)
{
    conn *c = pw_xmalloc(sizeof(*c));
    f->st[0] = ws_upgrade(c, f->port, "/ocpp/CP-F", SUBPROTO, NULL, f->head[0], 1024, 0);
    /* "Hello, world" in three frames with a ping between them (RFC 6455, 5.4). */
    ws_frame(c, 0x01, "Hel", 3);
    ws_frame(c, 0x00, "lo, ", 4);
    ws_frame(c, 0x89, "p", 1);
    ws_frame(c, 0x80, "world", 5);
    /* A message bigger than one lws receive, in one frame. */
    size_t big = 20000;
    char *b = pw_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (char)('a' + i % 26);
    ws_frame(c, 0x81, b, big);
    free(b);
    for (int i = 0; i < 3; i++) {
        f->ops[i] = ws_read(c, &f->texts[i], &f->lens[i]);
        if (f->ops[i] < 0)
            break;
    }
    /* A binary frame closes with 1003. */
    ws_frame(c, 0x82, "\x01\x02", 2);
    f->codes[0] = ws_read_close(c);
    conn_close(c);
    free(c);
}

static void test_fragments_joined(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    fx_listen(f);
    run_thread(f, scn_fragments, 10000);
    assert_int_equal(f->st[0], 101);
    assert_int_equal(f->ops[0], 0xA); /* the pong */
    assert_string_equal(f->texts[0], "p");
    assert_int_equal(f->ops[1], 0x1);
    assert_string_equal(f->texts[1], "Hello, world");
    assert_int_equal(f->ops[2], 0x1);
    assert_int_equal(f->lens[2], 20000);
    assert_int_equal(f->srv[0].got.n, 2);
    assert_string_equal(f->srv[0].got.text[0], "Hello, world");
    assert_int_equal(f->srv[0].got.len[1], 20000);
    assert_int_equal(f->srv[0].got.text[1][19999], 'a' + 19999 % 26);
    assert_int_equal(f->codes[0], 1003);
    fx_finish(f);
    assert_int_equal(f->srv[0].closes, 1);
    assert_string_equal(f->srv[0].why, "binary frame");
    free(f);
}

static bool cli0_all(fx *f)
{
    return f->cli[0].got.n == 1000 || f->cli[0].closes;
}

static void test_many_in_order(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    fx_listen(f);
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), NULL, NULL, NULL);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    char text[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(text, sizeof(text), "[2,\"%d\",\"X\",{}]", i);
        assert_int_equal(pw_web_ws_send(f->cli[0].ws, text, (size_t)n), 0);
    }
    assert_true(pw_web_ws_queued(f->cli[0].ws) > 0);
    assert_true(run_until(f, cli0_all, 20000));
    assert_int_equal(f->cli[0].got.n, 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(text, sizeof(text), "[2,\"%d\",\"X\",{}]", i);
        assert_string_equal(f->srv[0].got.text[i], text);
        assert_string_equal(f->cli[0].got.text[i], text);
    }
    assert_int_equal(pw_web_ws_queued(f->cli[0].ws), 0);
    fx_finish(f);
    free(f);
}

static void on_pump(uv_timer_t *t)
{
    fx *f = t->data;
    static char chunk[16 * 1024];
    if (!f->srv[0].ws || f->pump_refused)
        return;
    for (int i = 0; i < 4 && !f->pump_refused; i++) {
        size_t q = pw_web_ws_queued(f->srv[0].ws);
        if (q > f->queued_max)
            f->queued_max = q;
        memset(chunk, 'x', sizeof(chunk));
        if (pw_web_ws_send(f->srv[0].ws, chunk, sizeof(chunk)) < 0)
            f->pump_refused = true;
        else
            f->pumped++;
    }
}

static void scn_slow(fx *f)
{
    conn *c = pw_xmalloc(sizeof(*c));
    f->st[0] = ws_upgrade(c, f->port, "/ocpp/CP-S", SUBPROTO, NULL, f->head[0], 1024, 4096);
    /* Never reads until the loop says it has cut us off. */
    while (!atomic_load(&f->release) && atomic_load(&f->srv_closed_atomic) == 0)
        usleep(1000);
    conn_close(c);
    free(c);
}

static bool slow_cut(fx *f)
{
    return f->srv[0].closes > 0 && atomic_load(&f->thread_done);
}

static void test_slow_consumer_cut(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    pw_web_ws_ep_opts o = ep_opts(f);
    o.limits.max_queued = 256 * 1024;
    fx_listen_opts(f, &o);
    uv_timer_init(&f->loop, &f->pump);
    f->pump.data = f;
    uv_timer_start(&f->pump, on_pump, 1, 1);
    f->scenario = scn_slow;
    assert_int_equal(pthread_create(&f->thread, NULL, thread_main, f), 0);
    bool ok = run_until(f, slow_cut, 20000);
    atomic_store(&f->release, true);
    pthread_join(f->thread, NULL);
    assert_true(ok);
    assert_int_equal(f->st[0], 101);
    assert_true(f->pump_refused);
    assert_true(f->queued_max <= 256 * 1024);
    assert_true(f->pumped > 16); /* more than the queue alone: the socket took some first */
    assert_non_null(strstr(f->srv[0].why, "too slow"));
    fx_finish(f);
    assert_int_equal(f->srv[0].closes, 1);
    free(f);
}

static void test_close_inside_message(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    f->close_on_bye = true;
    fx_listen(f);
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), NULL, NULL, NULL);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    assert_int_equal(pw_web_ws_send(f->cli[0].ws, "bye please", 10), 0);
    assert_int_equal(pw_web_ws_send(f->cli[0].ws, "after", 5), 0);
    assert_true(run_until(f, both0_closed, WAIT_MS));
    assert_int_equal(f->send_after_close, -1);
    assert_int_equal(f->cli[0].got.n, 1);
    assert_string_equal(f->cli[0].got.text[0], "bye");
    assert_string_equal(f->cli[0].why, "closed by peer 4000");
    assert_string_equal(f->srv[0].why, "closed locally 4000");
    assert_int_equal(f->srv[0].got.n, 1); /* "after" came once we were closing: dropped */
    fx_finish(f);
    assert_int_equal(f->cli[0].closes, 1);
    assert_int_equal(f->srv[0].closes, 1);
    free(f);
}

static bool two_open(fx *f);

static bool cli01_closed(fx *f)
{
    return f->cli[0].closes && f->cli[1].closes;
}

static void test_ep_close_inside_message(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    f->close_ep_on_msg = true;
    fx_listen(f);
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-1"), NULL, NULL, NULL);
    client_connect(f, 1, url_of(f, "ws", "/ocpp/CP-2"), NULL, NULL, NULL);
    assert_true(run_until(f, two_open, WAIT_MS));
    pw_web_ws_send(f->cli[0].ws, "close it all", 12);
    assert_true(run_until(f, cli01_closed, WAIT_MS));
    assert_int_equal(f->srv[0].closes, 1);
    assert_int_equal(f->srv[1].closes, 1);
    assert_string_equal(f->srv[0].why, "endpoint closed");
    assert_string_equal(f->cli[0].why, "closed by peer 1001");
    assert_string_equal(f->cli[1].why, "closed by peer 1001");
    fx_finish(f);
    assert_int_equal(f->cli[0].closes, 1);
    assert_int_equal(f->srv[0].closes, 1);
    free(f);
}

/* Writes a self-signed pair for 127.0.0.1 into dir with the openssl tool. */
static bool make_cert(const char *dir, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout %s/%s.key -out %s/%s.pem >/dev/null 2>&1",
             dir, name, dir, name);
    return system(cmd) == 0;
}

static bool cli1_done(fx *f)
{
    return (f->cli[0].got.n >= 1 || f->cli[0].closes) && f->cli[1].closes;
}

static void test_wss_self_signed(void **state)
{
    (void)state;
    char dir[] = "/tmp/pw-ws-test-XXXXXX", cert[128], key[128], other[128], cmd[160];
    assert_non_null(mkdtemp(dir));
    if (!make_cert(dir, "ep") || !make_cert(dir, "other")) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)system(cmd);
        skip();
    }
    snprintf(cert, sizeof(cert), "%s/ep.pem", dir);
    snprintf(key, sizeof(key), "%s/ep.key", dir);
    snprintf(other, sizeof(other), "%s/other.pem", dir);

    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    pw_web_ws_ep_opts o = ep_opts(f);
    o.tls_cert = cert;
    o.tls_key = key;
    fx_listen_opts(f, &o);
    client_connect(f, 0, url_of(f, "wss", "/ocpp/CP-T"), "CP-T", "pw", cert);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    assert_int_equal(f->cli[0].opens, 1);
    assert_string_equal(f->password, "pw");
    pw_web_ws_send(f->cli[0].ws, "over tls", 8);
    /* A client that trusts another CA must fail. */
    client_connect(f, 1, url_of(f, "wss", "/ocpp/CP-U"), NULL, NULL, other);
    assert_true(run_until(f, cli1_done, WAIT_MS));
    assert_string_equal(f->cli[0].got.text[0], "over tls");
    assert_int_equal(f->cli[1].opens, 0);
    assert_non_null(strstr(f->cli[1].why, "connect failed"));
    assert_int_equal(f->accepts, 1);
    fx_finish(f);
    free(f);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static bool two_open(fx *f)
{
    return f->cli[0].opens && f->cli[1].opens;
}

static bool a_closed_b_echoed(fx *f)
{
    return f->cli[0].closes && f->srv[0].closes && f->cli[1].got.n >= 1;
}

static bool c2_closed(fx *f)
{
    return f->cli[2].closes > 0;
}

static void test_two_endpoints(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx *g = pw_xcalloc(1, sizeof(*g)); /* the second endpoint's records only */
    fx_init(f);
    g->echo = true;
    fx_listen(f);
    uint16_t port_a = f->port;
    pw_web_ws_ep_opts o = ep_opts(g);
    o.subprotocol = "ocpp2.0.1";
    pw_web_ws_ep *ep_b;
    char err[256];
    assert_int_equal(pw_web_ws_listen(f->web, &o, &ep_b, err, sizeof(err)), 0);
    uint16_t port_b = pw_web_ws_ep_port(ep_b);
    assert_true(port_b != port_a);

    client_connect(f, 0, url_of(f, "ws", "/ocpp/A"), NULL, NULL, NULL);
    f->port = port_b;
    pw_web_ws_client_opts co = {
        .url = url_of(f, "ws", "/ocpp/B"),
        .subprotocol = "ocpp2.0.1",
        .handlers = {.ud = f, .open = cli_open, .message = cli_message, .closed = side_closed},
        .conn_ud = &f->cli[1],
    };
    assert_int_equal(pw_web_ws_connect(f->web, &co, err, sizeof(err)), 0);
    assert_true(run_until(f, two_open, WAIT_MS));
    assert_string_equal(f->identity, "A");
    assert_string_equal(g->identity, "B");
    assert_int_equal(f->accepts, 1);
    assert_int_equal(g->accepts, 1);

    /* Closing A drops its connection only. */
    pw_web_ws_ep_close(f->ep);
    assert_int_equal(f->srv[0].closes, 1); /* reported at once */
    assert_string_equal(f->srv[0].why, "endpoint closed");
    pw_web_ws_send(f->cli[1].ws, "still here", 10);
    assert_true(run_until(f, a_closed_b_echoed, WAIT_MS));
    assert_string_equal(f->cli[1].got.text[0], "still here");
    assert_int_equal(g->srv[0].got.n, 1);
    assert_int_equal(f->cli[1].closes, 0);

    /* A no longer listens. */
    f->port = port_a;
    client_connect(f, 2, url_of(f, "ws", "/ocpp/A2"), NULL, NULL, NULL);
    assert_true(run_until(f, c2_closed, WAIT_MS));
    assert_int_equal(f->cli[2].opens, 0);
    assert_int_equal(f->accepts, 1);
    fx_finish(f);
    assert_int_equal(f->cli[0].closes, 1);
    assert_int_equal(f->cli[1].closes, 1);
    assert_int_equal(g->srv[0].closes, 1);
    assert_int_equal(f->srv[0].closes, 1);
    for (size_t i = 0; i < PW_ARRAY_LEN(g->srv); i++)
        log_free(&g->srv[i].got);
    free(g);
    free(f);
}

static bool three_open(fx *f)
{
    return f->cli[0].opens && f->cli[1].opens && f->cli[2].opens && f->n_srv == 3;
}

static void test_shutdown_with_open_connections(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init_with(f, true); /* the endpoint shares the context with the HTTP front */
    fx_listen(f);
    for (int i = 0; i < 3; i++)
        client_connect(f, i, url_of(f, "ws", "/ocpp/CP"), NULL, NULL, NULL);
    /* One more that never gets anywhere (nothing listens on port 1). */
    uint16_t port = f->port;
    f->port = 1;
    client_connect(f, 3, url_of(f, "ws", "/ocpp/CP"), NULL, NULL, NULL);
    f->port = port;
    assert_true(run_until(f, three_open, WAIT_MS));
    for (int i = 0; i < 3; i++)
        pw_web_ws_send(f->cli[i].ws, "queued at shutdown", 18);
    fx_finish(f); /* asserts uv_loop_close() == 0 */
    for (int i = 0; i < 4; i++)
        assert_int_equal(f->cli[i].closes, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->srv[i].closes, 1);
    free(f);
}

static void scn_no_pong(fx *f)
{
    conn *c = pw_xmalloc(sizeof(*c));
    f->st[0] = ws_upgrade(c, f->port, "/ocpp/CP-P", SUBPROTO, NULL, f->head[0], 1024, 0);
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    f->ops[0] = ws_read(c, &f->texts[0], &f->lens[0]); /* the ping, never answered */
    gettimeofday(&t1, NULL);
    f->codes[1] = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000);
    f->codes[0] = ws_read_close(c);
    gettimeofday(&t1, NULL);
    f->codes[2] = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000);
    conn_close(c);
    free(c);
}

static bool waited(fx *f)
{
    return f->srv[1].closes > 0 || f->cli[0].closes > 0 || atomic_load(&f->release);
}

static void on_release(uv_timer_t *t)
{
    atomic_store(&((fx *)t->data)->release, true);
}

static bool srv0_closed(fx *f)
{
    return f->srv[0].closes > 0;
}

static void test_ping_timeout(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    pw_web_ws_ep_opts o = ep_opts(f);
    o.limits.ping_s = 1;
    o.limits.pong_timeout_s = 1;
    fx_listen_opts(f, &o);
    run_thread(f, scn_no_pong, 10000);
    assert_int_equal(f->st[0], 101);
    assert_int_equal(f->ops[0], 0x9);
    assert_in_range(f->codes[1], 700, 2500);
    assert_int_equal(f->codes[0], 1001);
    assert_in_range(f->codes[2], 1500, 4000);
    assert_true(run_until(f, srv0_closed, WAIT_MS));
    assert_int_equal(f->srv[0].closes, 1);
    assert_string_equal(f->srv[0].why, "ping timeout");

    /* A peer that answers (lws answers pings for our client) stays for several ping rounds. */
    client_connect(f, 0, url_of(f, "ws", "/ocpp/CP-Q"), NULL, NULL, NULL);
    assert_true(run_until(f, cli0_open, WAIT_MS));
    atomic_store(&f->release, false);
    uv_timer_init(&f->loop, &f->pump);
    f->pump.data = f;
    uv_timer_start(&f->pump, on_release, 3500, 0);
    run_until(f, waited, 6000);
    if (f->srv[1].closes || f->cli[0].closes)
        print_message("srv '%s' cli '%s'\n", f->srv[1].why, f->cli[0].why);
    assert_int_equal(f->srv[1].closes, 0);
    assert_int_equal(f->cli[0].closes, 0);
    fx_finish(f);
    free(f);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fx *f = pw_xcalloc(1, sizeof(*f));
    fx_init(f);
    char err[256];
    pw_web_ws_ep *ep;
    pw_web_ws_ep_opts o = ep_opts(f);
    o.path_prefix = "ocpp/";
    assert_int_equal(pw_web_ws_listen(f->web, &o, &ep, err, sizeof(err)), -1);
    o = ep_opts(f);
    o.subprotocol = "ocpp 1.6";
    assert_int_equal(pw_web_ws_listen(f->web, &o, &ep, err, sizeof(err)), -1);
    o = ep_opts(f);
    o.tls_cert = "/nonexistent.pem";
    assert_int_equal(pw_web_ws_listen(f->web, &o, &ep, err, sizeof(err)), -1);
    pw_web_ws_client_opts co = {.url = "http://127.0.0.1:1/x",
                                .subprotocol = SUBPROTO,
                                .handlers = {.closed = side_closed}};
    assert_int_equal(pw_web_ws_connect(f->web, &co, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ws://"));
    co.url = "ws://127.0.0.1:1/x";
    co.subprotocol = "";
    assert_int_equal(pw_web_ws_connect(f->web, &co, err, sizeof(err)), -1);
    fx_finish(f);
    free(f);
}

int main(void)
{
    pw_log_set_level(PW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_round_trip),
        cmocka_unit_test(test_identity_and_path),
        cmocka_unit_test(test_basic_auth),
        cmocka_unit_test(test_subprotocol_required),
        cmocka_unit_test(test_client_needs_server_subprotocol),
        cmocka_unit_test(test_plain_http_refused),
        cmocka_unit_test(test_message_too_big),
        cmocka_unit_test(test_fragments_joined),
        cmocka_unit_test(test_many_in_order),
        cmocka_unit_test(test_slow_consumer_cut),
        cmocka_unit_test(test_close_inside_message),
        cmocka_unit_test(test_ep_close_inside_message),
        cmocka_unit_test(test_wss_self_signed),
        cmocka_unit_test(test_two_endpoints),
        cmocka_unit_test(test_shutdown_with_open_connections),
        cmocka_unit_test(test_ping_timeout),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
