/* Tests of web/: pw_web runs on a real libuv loop on 127.0.0.1 and a client thread talks plain
 * HTTP/1.1 and RFC 6455 to it through sockets; every test ends with uv_loop_close() == 0. */
#include "pw_util.h"
#include "pw_web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

/* ---- blocking client side (runs on the client thread, never asserts) ---- */

typedef struct conn {
    int fd;
    char buf[256 * 1024];
    size_t len;
} conn;

typedef struct http_resp {
    int status;
    char head[4096];
    char *body;
    size_t body_len;
} http_resp;

static bool conn_open(conn *c, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
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

/* Reads more bytes into the buffer; returns the count, 0 on EOF, -1 on error or timeout. */
static ssize_t conn_fill(conn *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static bool conn_need(conn *c, size_t n)
{
    while (c->len < n)
        if (conn_fill(c) <= 0)
            return false;
    return true;
}

static void conn_consume(conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

/* Copies the value of header name from a response head ("" when absent). */
static void header_value(const char *head, const char *name, char *out, size_t size)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = find_ci(head, key);
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static bool http_read(conn *c, http_resp *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    for (;;) {
        c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = '\0';
        end = strstr(c->buf, "\r\n\r\n");
        if (end)
            break;
        if (conn_fill(c) <= 0)
            return false;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (head_len >= sizeof(r->head))
        return false;
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    r->status = atoi(r->head + 9);
    char clen[32];
    header_value(r->head, "content-length", clen, sizeof(clen));
    r->body_len = (size_t)strtoul(clen, NULL, 10);
    if (!conn_need(c, head_len + r->body_len))
        return false;
    r->body = pw_xmalloc(r->body_len + 1);
    memcpy(r->body, c->buf + head_len, r->body_len);
    r->body[r->body_len] = '\0';
    conn_consume(c, head_len + r->body_len);
    return true;
}

/* One request on a fresh connection that the client closes afterwards. */
static bool http_once(uint16_t port, const char *request, http_resp *r)
{
    conn *c = pw_xmalloc(sizeof(*c));
    bool ok = conn_open(c, port) && conn_send(c, request, strlen(request)) && http_read(c, r);
    conn_close(c);
    free(c);
    return ok;
}

static const char ws_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char ws_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; /* RFC 6455, section 1.3 */

/* Opens a WebSocket on path. origin NULL means this site's own; cookie may be NULL. */
static bool ws_handshake_as(conn *c, uint16_t port, const char *path, const char *origin,
                            const char *cookie, http_resp *r)
{
    char req[768], own[64];
    memset(r, 0, sizeof(*r));
    snprintf(own, sizeof(own), "http://127.0.0.1:%u", port);
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
             "Origin: %s\r\n%s%s%s\r\n",
             path, port, ws_key, origin ? origin : own, cookie ? "Cookie: " : "",
             cookie ? cookie : "", cookie ? "\r\n" : "");
    if (!conn_open(c, port) || !conn_send(c, req, strlen(req)))
        return false;
    /* A 101 has no body and no Content-Length: http_read then reads exactly the head. */
    return http_read(c, r);
}

static bool ws_handshake(conn *c, uint16_t port, const char *path, http_resp *r)
{
    return ws_handshake_as(c, port, path, NULL, NULL, r);
}

/* Reads one frame; returns the opcode (-1 on error) and a malloc'd NUL-terminated payload. */
static int ws_read_frame(conn *c, char **payload, size_t *len)
{
    if (!conn_need(c, 2))
        return -1;
    unsigned char *b = (unsigned char *)c->buf;
    int opcode = b[0] & 0x0f;
    if (b[1] & 0x80)
        return -1; /* servers never mask */
    size_t n = b[1] & 0x7f, hdr = 2;
    if (n == 126) {
        if (!conn_need(c, 4))
            return -1;
        b = (unsigned char *)c->buf;
        n = (size_t)b[2] << 8 | b[3];
        hdr = 4;
    } else if (n == 127) {
        if (!conn_need(c, 10))
            return -1;
        b = (unsigned char *)c->buf;
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | b[i];
        hdr = 10;
    }
    if (n > sizeof(c->buf) - hdr || !conn_need(c, hdr + n))
        return -1;
    *payload = pw_xmalloc(n + 1);
    memcpy(*payload, c->buf + hdr, n);
    (*payload)[n] = '\0';
    *len = n;
    conn_consume(c, hdr + n);
    return opcode;
}

/* True once the server has closed the connection (EOF, possibly after a close frame). */
static bool wait_eof(conn *c)
{
    for (;;) {
        c->len = 0;
        ssize_t n = conn_fill(c);
        if (n == 0)
            return true;
        if (n < 0)
            return errno == ECONNRESET;
    }
}

/* ---- the loop side ---- */

enum cmd {
    CMD_NONE,
    CMD_BROADCAST,
    CMD_BURST,
    CMD_DASHBOARD_OPEN,
    CMD_CLOSE,
    CMD_COMPLETE,
    CMD_PROBE
};

#define BURST 500

typedef struct fixture {
    uv_loop_t loop;
    pw_web *web;
    uint16_t port;
    uv_async_t wake;
    _Atomic int cmd;
    atomic_bool acked;
    bool closed;
    size_t clients_seen;

    /* Deferred API answers, completed in order by CMD_COMPLETE. */
    pw_web_pending *pending[4];
    size_t n_pending, n_completed;
    bool alive_at_complete[4];
    bool closed_at_probe;
    bool alive_at_probe;

    /* What the API handler saw. The client thread polls api_calls while the loop counts. */
    atomic_int api_calls;
    bool admin;
    char method[16], path[64], query[128], origin[64], cookie[128];
    char body[512];
    size_t body_len;

    /* Results the client thread leaves for the asserts. */
    bool ok;
    char why[256];
    http_resp resp[32];
    char *frames[4];
    size_t frame_len[4];
    int frames_in_burst;
} fixture;

static void on_web_closed(void *ud)
{
    fixture *f = ud;
    f->closed = true;
    uv_close((uv_handle_t *)&f->wake, NULL);
}

/* Answers the oldest deferred request, as a query finishing on a worker would. */
static void complete_next(fixture *f)
{
    if (f->n_completed == f->n_pending)
        return;
    size_t i = f->n_completed++;
    f->alive_at_complete[i] = pw_web_pending_alive(f->pending[i]);
    char text[64];
    int n = snprintf(text, sizeof(text), "{\"late\":%zu}", i);
    pw_web_response resp = {
        .status = 202, .content_type = "text/csv", .body = pw_xstrdup(text), .body_len = (size_t)n};
    pw_strlcpy(resp.content_disposition, "attachment; filename=\"late.csv\"",
               sizeof(resp.content_disposition));
    pw_web_complete(f->pending[i], &resp);
}

static void on_wake(uv_async_t *a)
{
    fixture *f = a->data;
    int cmd = atomic_exchange(&f->cmd, CMD_NONE);
    char doc[64];
    switch (cmd) {
    case CMD_BROADCAST:
        f->clients_seen = pw_web_clients(f->web);
        pw_web_broadcast(f->web, "{\"type\":\"state\",\"n\":2}", 22);
        break;
    case CMD_BURST:
        /* All in one loop turn: a client must get the newest, not a queue of 500. */
        for (int i = 0; i < BURST; i++) {
            int n = snprintf(doc, sizeof(doc), "{\"burst\":%d}", i);
            pw_web_broadcast(f->web, doc, (size_t)n);
        }
        break;
    case CMD_DASHBOARD_OPEN:
        pw_web_set_dashboard_login(f->web, false);
        break;
    case CMD_CLOSE:
        pw_web_close(f->web, on_web_closed, f);
        break;
    case CMD_COMPLETE:
        complete_next(f);
        break;
    case CMD_PROBE:
        f->closed_at_probe = f->closed;
        f->alive_at_probe =
            f->n_completed < f->n_pending && pw_web_pending_alive(f->pending[f->n_completed]);
        break;
    default:
        return;
    }
    atomic_store(&f->acked, true);
}

/* Client thread: asks the loop to do cmd and waits until it has. */
static void loop_do(fixture *f, enum cmd cmd)
{
    atomic_store(&f->acked, false);
    atomic_store(&f->cmd, cmd);
    uv_async_send(&f->wake);
    while (!atomic_load(&f->acked))
        usleep(1000);
}

static void client_fail(fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void client_fail(fixture *f, const char *fmt, ...)
{
    if (!f->ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof(f->why), fmt, ap);
    va_end(ap);
    f->ok = false;
}

/* Uploads and downloads (test_upload_download): what the handler saw of an upload, and the
 * file a download sends. */
static char upload_dir[64];
static char upload_seen[128];
static size_t upload_seen_len, upload_seen_bytes;
static bool upload_content_ok, upload_body_empty;
static int download_fd = -1;
static size_t download_len;

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 % 251);
}

static void record_upload(const pw_web_request *req)
{
    pw_strlcpy(upload_seen, req->body_file ? req->body_file : "", sizeof(upload_seen));
    upload_seen_len = req->body_len;
    upload_body_empty = req->body_len == 0 || req->body[0] == '\0';
    upload_content_ok = false;
    upload_seen_bytes = 0;
    FILE *fp = req->body_file ? fopen(req->body_file, "rb") : NULL;
    if (!fp)
        return;
    upload_content_ok = true;
    int c;
    while ((c = fgetc(fp)) != EOF)
        upload_content_ok &= (uint8_t)c == pattern(upload_seen_bytes++);
    fclose(fp);
}

static void record_api(void *ud, const pw_web_request *req, pw_web_response *resp)
{
    fixture *f = ud;
    f->api_calls++;
    if (strcmp(req->path, "/api/upload") == 0)
        record_upload(req);
    if (strcmp(req->path, "/api/download") == 0) {
        resp->body_is_file = true;
        resp->body_fd = dup(download_fd);
        resp->body_len = download_len;
        resp->content_type = "application/x-tar";
        return;
    }
    if (strcmp(req->path, "/api/slow") == 0 && f->n_pending < PW_ARRAY_LEN(f->pending)) {
        f->pending[f->n_pending++] = pw_web_defer(req);
        resp->body = pw_xstrdup("ignored"); /* web must drop what a deferring handler left */
        return;
    }
    if (strcmp(req->path, "/api/now") == 0) {
        /* Deferred and completed before the handler returns: still exactly one answer. */
        pw_web_pending *p = pw_web_defer(req);
        pw_web_response late = {.status = 203,
                                .content_type = "application/json",
                                .body = pw_xstrdup("{\"now\":1}"),
                                .body_len = 9};
        pw_web_complete(p, &late);
        return;
    }
    pw_strlcpy(f->method, req->method, sizeof(f->method));
    pw_strlcpy(f->path, req->path, sizeof(f->path));
    pw_strlcpy(f->query, req->query, sizeof(f->query));
    pw_strlcpy(f->origin, req->origin, sizeof(f->origin));
    pw_strlcpy(f->cookie, req->cookie, sizeof(f->cookie));
    pw_strlcpy(f->body, req->body, sizeof(f->body));
    f->body_len = req->body_len;
    f->admin = req->admin;

    char text[128];
    int n = snprintf(text, sizeof(text), "{\"seen\":\"%s %s\"}", req->method, req->path);
    resp->status = strcmp(req->method, "POST") == 0 ? 201 : 200;
    resp->body = pw_xstrdup(text);
    resp->body_len = (size_t)n;
    pw_strlcpy(resp->set_cookie, "pw_test=1; HttpOnly", sizeof(resp->set_cookie));
    pw_strlcpy(resp->content_disposition, "attachment; filename=\"x.csv\"",
               sizeof(resp->content_disposition));
}

#define UPLOAD_MAX 300000

static void fixture_start_web(fixture *f, size_t max_body, const pw_web_auth_opts *auth,
                              bool upload)
{
    memset(f, 0, sizeof(*f));
    f->ok = true;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->wake, on_wake), 0);
    f->wake.data = f;
    pw_web_opts o = {
        .addr = "127.0.0.1", .port = 0, .max_body = max_body, .api = record_api, .api_ud = f};
    if (upload) {
        o.upload.path = "/api/upload";
        o.upload.dir = upload_dir;
        o.upload.max = UPLOAD_MAX;
    }
    if (auth)
        o.auth = *auth;
    char err[256] = "";
    assert_int_equal(pw_web_new(&f->web, &f->loop, &o, err, sizeof(err)), 0);
    f->port = pw_web_port(f->web);
    assert_true(f->port != 0);
}

static void fixture_start_auth(fixture *f, size_t max_body, const pw_web_auth_opts *auth)
{
    fixture_start_web(f, max_body, auth, false);
}

static void fixture_start(fixture *f, size_t max_body)
{
    fixture_start_auth(f, max_body, NULL);
}

/* Runs the loop while scenario runs on a client thread that ends with CMD_CLOSE; then checks
 * that web really left nothing behind on the loop. */
static void fixture_run(fixture *f, void *(*scenario)(void *))
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, scenario, f), 0);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    pthread_join(t, NULL);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (!f->ok)
        fail_msg("%s", f->why);
}

static void fixture_free(fixture *f)
{
    for (size_t i = 0; i < PW_ARRAY_LEN(f->resp); i++)
        free(f->resp[i].body);
    for (size_t i = 0; i < PW_ARRAY_LEN(f->frames); i++)
        free(f->frames[i]);
}

static char *read_source_asset(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", PW_WEB_ASSET_DIR, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = pw_xmalloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

/* ---- static assets ---- */

static void *scenario_assets(void *arg)
{
    fixture *f = arg;
    char req[256];
    static const char *paths[] = {"/", "/app.js", "/style.css", "/nope", "/index.html"};
    for (size_t i = 0; i < PW_ARRAY_LEN(paths); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 paths[i]);
        if (!http_once(f->port, req, &f->resp[i]))
            client_fail(f, "GET %s: no response", paths[i]);
    }
    char etag[64];
    header_value(f->resp[0].head, "etag", etag, sizeof(etag));
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\nConnection: close\r\n\r\n", etag);
    if (!http_once(f->port, req, &f->resp[5]))
        client_fail(f, "conditional GET: no response");
    if (!http_once(f->port, "POST /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   &f->resp[6]))
        client_fail(f, "POST asset: no response");
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_static_assets(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 0);
    fixture_run(&f, scenario_assets);

    size_t len;
    char *index = read_source_asset("index.html", &len);
    char v[1024];
    assert_int_equal(f.resp[0].status, 200);
    assert_int_equal(f.resp[0].body_len, len);
    assert_memory_equal(f.resp[0].body, index, len);
    assert_string_equal(f.resp[4].body, index);
    free(index);
    header_value(f.resp[0].head, "content-type", v, sizeof(v));
    assert_string_equal(v, "text/html; charset=utf-8");

    /* The policy allows our own origin only, and nothing anywhere else. */
    header_value(f.resp[0].head, "content-security-policy", v, sizeof(v));
    assert_non_null(strstr(v, "default-src 'none'"));
    assert_non_null(strstr(v, "script-src 'self'"));
    assert_non_null(strstr(v, "connect-src 'self'"));
    assert_null(strstr(v, "http"));
    assert_null(strstr(v, "*"));
    assert_null(strstr(v, "unsafe"));
    header_value(f.resp[0].head, "x-content-type-options", v, sizeof(v));
    assert_string_equal(v, "nosniff");

    assert_int_equal(f.resp[1].status, 200);
    header_value(f.resp[1].head, "content-type", v, sizeof(v));
    assert_string_equal(v, "text/javascript; charset=utf-8");
    assert_int_equal(f.resp[2].status, 200);
    header_value(f.resp[2].head, "content-type", v, sizeof(v));
    assert_string_equal(v, "text/css; charset=utf-8");
    header_value(f.resp[2].head, "content-security-policy", v, sizeof(v));
    assert_non_null(strstr(v, "default-src 'none'"));

    assert_int_equal(f.resp[3].status, 404);
    assert_non_null(strstr(f.resp[3].body, "\"error\""));
    assert_int_equal(f.resp[5].status, 304);
    assert_int_equal(f.resp[5].body_len, 0);
    assert_int_equal(f.resp[6].status, 405);
    assert_int_equal(f.api_calls, 0);
    fixture_free(&f);
}

/* ---- API hand-off ---- */

static void *scenario_api(void *arg)
{
    fixture *f = arg;
    conn *c = pw_xmalloc(sizeof(*c));
    const char body[] = "{\"limit_a\":16}";
    char req[512];
    /* Two requests on one keep-alive connection: the second must find clean state. */
    snprintf(req, sizeof(req),
             "POST /api/chargers/a01?from=10&to=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Origin: http://127.0.0.1\r\nCookie: pw_session=abc\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    if (!conn_open(c, f->port) || !conn_send(c, req, strlen(req)) || !http_read(c, &f->resp[0]))
        client_fail(f, "POST /api: no response");
    snprintf(req, sizeof(req), "GET /api/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if (!conn_send(c, req, strlen(req)) || !http_read(c, &f->resp[1]))
        client_fail(f, "GET /api/state after POST on the same connection: no response");
    conn_close(c);
    free(c);
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_api_handler(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 0);
    fixture_run(&f, scenario_api);

    assert_int_equal(f.resp[0].status, 201);
    assert_string_equal(f.resp[0].body, "{\"seen\":\"POST /api/chargers/a01\"}");
    char v[256];
    header_value(f.resp[0].head, "content-type", v, sizeof(v));
    assert_string_equal(v, "application/json");
    header_value(f.resp[0].head, "set-cookie", v, sizeof(v));
    assert_string_equal(v, "pw_test=1; HttpOnly");
    header_value(f.resp[0].head, "content-disposition", v, sizeof(v));
    assert_string_equal(v, "attachment; filename=\"x.csv\"");

    /* The second request is what the handler saw last. */
    assert_int_equal(f.api_calls, 2);
    assert_int_equal(f.resp[1].status, 200);
    assert_string_equal(f.resp[1].body, "{\"seen\":\"GET /api/state\"}");
    assert_string_equal(f.method, "GET");
    assert_string_equal(f.path, "/api/state");
    assert_string_equal(f.query, "");
    assert_string_equal(f.body, "");
    assert_int_equal(f.body_len, 0);
    fixture_free(&f);
}

static void *scenario_api_fields(void *arg)
{
    fixture *f = arg;
    const char body[] = "{\"limit_a\":16}";
    char req[512];
    snprintf(req, sizeof(req),
             "PUT /api/config?from=10&to=20&q=a%%26b%%3Dc+d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Origin: http://127.0.0.1\r\nCookie: pw_session=abc\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    if (!http_once(f->port, req, &f->resp[0]))
        client_fail(f, "PUT /api/config: no response");
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_api_request_fields(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 0);
    fixture_run(&f, scenario_api_fields);
    assert_int_equal(f.resp[0].status, 200);
    assert_int_equal(f.api_calls, 1);
    assert_string_equal(f.method, "PUT");
    assert_string_equal(f.path, "/api/config");
    /* Values holding '&' or '=' stay unambiguous: web re-encodes what lws decoded. */
    assert_string_equal(f.query, "from=10&to=20&q=a%26b%3Dc%20d");
    char v[32];
    assert_int_equal(pw_web_query_param(f.query, "to", v, sizeof(v)), 2);
    assert_string_equal(v, "20");
    assert_int_equal(pw_web_query_param(f.query, "q", v, sizeof(v)), 7);
    assert_string_equal(v, "a&b=c d");
    assert_string_equal(f.body, "{\"limit_a\":16}");
    assert_int_equal(f.body_len, 14);
    assert_string_equal(f.origin, "http://127.0.0.1");
    assert_string_equal(f.cookie, "pw_session=abc");
    fixture_free(&f);
}

static void *scenario_too_large(void *arg)
{
    fixture *f = arg;
    size_t n = 4096;
    char *req = pw_xmalloc(n + 256);
    int h = snprintf(req, 256,
                     "POST /api/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     n);
    memset(req + h, 'x', n);
    req[h + (int)n] = '\0';
    if (!http_once(f->port, req, &f->resp[0]))
        client_fail(f, "oversized POST: no response");
    /* Exactly at the limit is still accepted. */
    h = snprintf(req, 256,
                 "POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 "Origin: http://127.0.0.1\r\nContent-Length: 1024\r\n\r\n");
    memset(req + h, 'y', 1024);
    req[h + 1024] = '\0';
    if (!http_once(f->port, req, &f->resp[1]))
        client_fail(f, "POST at the limit: no response");
    free(req);
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_body_too_large(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 1024);
    fixture_run(&f, scenario_too_large);
    assert_int_equal(f.resp[0].status, 413);
    assert_non_null(strstr(f.resp[0].body, "\"error\":\"request body too large"));
    char v[64];
    header_value(f.resp[0].head, "content-type", v, sizeof(v));
    assert_string_equal(v, "application/json");
    assert_int_equal(f.resp[1].status, 201);
    assert_int_equal(f.api_calls, 1); /* only the one within the limit */
    assert_int_equal(f.body_len, 1024);
    fixture_free(&f);
}

/* ---- deferred answers ---- */

static const char slow_req[] = "GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n";

/* True once the loop has taken n requests off the wire (the handler has run). */
static bool wait_api_calls(fixture *f, int n)
{
    for (int i = 0; i < 2000 && atomic_load(&f->api_calls) < n; i++)
        usleep(1000);
    return atomic_load(&f->api_calls) >= n;
}

static void *scenario_deferred(void *arg)
{
    fixture *f = arg;
    conn *a = pw_xmalloc(sizeof(*a)), *b = pw_xmalloc(sizeof(*b)), *c = pw_xmalloc(sizeof(*c));
    /* a: answered later, and the connection then serves the next request as usual. */
    if (!conn_open(a, f->port) || !conn_send(a, slow_req, strlen(slow_req)) ||
        !wait_api_calls(f, 1))
        client_fail(f, "deferred request not handled");
    struct timeval tv = {0, 200000};
    setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (conn_fill(a) > 0)
        client_fail(f, "a deferred request was answered before it was completed");
    tv.tv_sec = 5;
    setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    loop_do(f, CMD_COMPLETE);
    if (!http_read(a, &f->resp[0]))
        client_fail(f, "no deferred answer");
    const char next[] = "GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n";
    if (!conn_send(a, next, strlen(next)) || !http_read(a, &f->resp[1]))
        client_fail(f, "keep-alive request after a deferred one: no answer");
    const char now[] = "GET /api/now HTTP/1.1\r\nHost: x\r\n\r\n";
    if (!conn_send(a, now, strlen(now)) || !http_read(a, &f->resp[2]) ||
        !conn_send(a, next, strlen(next)) || !http_read(a, &f->resp[3]))
        client_fail(f, "a request completed inside its handler: no (single) answer");
    /* b: the client leaves before the answer; completing it must be harmless. */
    if (!conn_open(b, f->port) || !conn_send(b, slow_req, strlen(slow_req)) ||
        !wait_api_calls(f, 5))
        client_fail(f, "second deferred request not handled");
    conn_close(b);
    usleep(50000); /* let the close reach the server's socket */
    loop_do(f, CMD_COMPLETE);
    /* c: still waiting when web shuts down: the close waits for the answer, which is dropped. */
    if (!conn_open(c, f->port) || !conn_send(c, slow_req, strlen(slow_req)) ||
        !wait_api_calls(f, 6))
        client_fail(f, "third deferred request not handled");
    loop_do(f, CMD_CLOSE);
    usleep(50000);
    loop_do(f, CMD_PROBE);
    loop_do(f, CMD_COMPLETE);
    wait_eof(c);
    conn_close(a);
    conn_close(c);
    free(a);
    free(b);
    free(c);
    return NULL;
}

static void test_deferred(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 0);
    fixture_run(&f, scenario_deferred);
    assert_int_equal(f.n_pending, 3);
    assert_int_equal(f.n_completed, 3);
    assert_int_equal(f.resp[0].status, 202);
    assert_string_equal(f.resp[0].body, "{\"late\":0}");
    char v[128];
    header_value(f.resp[0].head, "content-type", v, sizeof(v));
    assert_string_equal(v, "text/csv");
    header_value(f.resp[0].head, "content-disposition", v, sizeof(v));
    assert_string_equal(v, "attachment; filename=\"late.csv\"");
    assert_int_equal(f.resp[1].status, 200);
    assert_string_equal(f.resp[1].body, "{\"seen\":\"GET /api/state\"}");
    assert_int_equal(f.resp[2].status, 203);
    assert_string_equal(f.resp[2].body, "{\"now\":1}");
    assert_int_equal(f.resp[3].status, 200); /* the next request on the connection is its own */
    assert_true(f.alive_at_complete[0]);
    assert_false(f.alive_at_complete[1]); /* the client had gone */
    assert_false(f.closed_at_probe);      /* close waited for the deferred answer */
    assert_false(f.alive_at_probe);       /* and told the handler not to bother */
    fixture_free(&f);
}

/* ---- WebSocket ---- */

static void *scenario_ws(void *arg)
{
    fixture *f = arg;
    conn *c = pw_xmalloc(sizeof(*c));
    http_resp hs;
    if (!ws_handshake(c, f->port, "/ws", &hs) || hs.status != 101) {
        client_fail(f, "no 101 from /ws: %s", hs.head);
        goto out;
    }
    char accept[64];
    header_value(hs.head, "sec-websocket-accept", accept, sizeof(accept));
    if (strcmp(accept, ws_accept) != 0)
        client_fail(f, "bad Sec-WebSocket-Accept '%s'", accept);
    free(hs.body);

    /* The document broadcast before we connected arrives at once. */
    if (ws_read_frame(c, &f->frames[0], &f->frame_len[0]) != 1)
        client_fail(f, "no first text frame");
    loop_do(f, CMD_BROADCAST);
    if (ws_read_frame(c, &f->frames[1], &f->frame_len[1]) != 1)
        client_fail(f, "no text frame after broadcast");
    loop_do(f, CMD_BURST);
    char last[32];
    snprintf(last, sizeof(last), "{\"burst\":%d}", BURST - 1);
    for (;;) {
        char *p;
        size_t n;
        if (ws_read_frame(c, &p, &n) != 1) {
            client_fail(f, "burst: frame missing");
            break;
        }
        f->frames_in_burst++;
        bool done = strcmp(p, last) == 0;
        free(p);
        if (done)
            break;
    }
    /* So is a page of another site, even with logins disabled. */
    conn *c3 = pw_xmalloc(sizeof(*c3));
    if (ws_handshake_as(c3, f->port, "/ws", "http://evil.example", NULL, &hs) && hs.status == 101)
        client_fail(f, "cross-origin upgrade accepted");
    free(hs.body);
    conn_close(c3);
    free(c3);
    /* A path other than /ws is refused. */
    conn *c2 = pw_xmalloc(sizeof(*c2));
    if (ws_handshake(c2, f->port, "/other", &hs) && hs.status == 101)
        client_fail(f, "upgrade on /other accepted");
    free(hs.body);
    conn_close(c2);
    free(c2);
out:
    conn_close(c);
    free(c);
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_websocket(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 0);
    pw_web_broadcast(f.web, "{\"type\":\"state\",\"n\":1}", 22);
    fixture_run(&f, scenario_ws);
    assert_non_null(f.frames[0]);
    assert_string_equal(f.frames[0], "{\"type\":\"state\",\"n\":1}");
    assert_non_null(f.frames[1]);
    assert_string_equal(f.frames[1], "{\"type\":\"state\",\"n\":2}");
    assert_int_equal(f.clients_seen, 1);
    /* 500 broadcasts in one loop turn reach this client as the newest only. */
    assert_true(f.frames_in_burst >= 1 && f.frames_in_burst <= 2);
    fixture_free(&f);
}

/* ---- shutdown with clients still connected ---- */

static void *scenario_close_busy(void *arg)
{
    fixture *f = arg;
    conn *ws = pw_xmalloc(sizeof(*ws)), *idle = pw_xmalloc(sizeof(*idle));
    http_resp hs;
    if (!ws_handshake(ws, f->port, "/ws", &hs) || hs.status != 101)
        client_fail(f, "no 101");
    free(hs.body);
    /* A keep-alive HTTP connection left idle after one request. */
    const char req[] = "GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n";
    if (!conn_open(idle, f->port) || !conn_send(idle, req, strlen(req)) ||
        !http_read(idle, &f->resp[0]))
        client_fail(f, "keep-alive GET failed");
    loop_do(f, CMD_CLOSE);
    if (!wait_eof(ws))
        client_fail(f, "WebSocket not closed by pw_web_close");
    if (!wait_eof(idle))
        client_fail(f, "idle HTTP connection not closed by pw_web_close");
    conn_close(ws);
    conn_close(idle);
    free(ws);
    free(idle);
    return NULL;
}

static void test_close_with_clients(void **state)
{
    (void)state;
    fixture f;
    fixture_start(&f, 0);
    pw_web_broadcast(f.web, "{}", 2);
    fixture_run(&f, scenario_close_busy);
    assert_int_equal(f.resp[0].status, 200);
    fixture_free(&f);
}

static void test_query_param(void **state)
{
    (void)state;
    char v[8];
    const char q[] = "a=1&flag&b=x+y%21&c=%zz&long=123456789&=e";
    assert_int_equal(pw_web_query_param(q, "a", v, sizeof(v)), 1);
    assert_string_equal(v, "1");
    assert_int_equal(pw_web_query_param(q, "flag", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(pw_web_query_param(q, "b", v, sizeof(v)), 4);
    assert_string_equal(v, "x y!");
    assert_int_equal(pw_web_query_param(q, "c", v, sizeof(v)), 3); /* bad escape kept as is */
    assert_string_equal(v, "%zz");
    assert_int_equal(pw_web_query_param(q, "long", v, sizeof(v)), -1); /* does not fit */
    assert_int_equal(pw_web_query_param(q, "", v, sizeof(v)), 1);
    assert_int_equal(pw_web_query_param(q, "missing", v, sizeof(v)), -1);
    assert_int_equal(pw_web_query_param("", "a", v, sizeof(v)), -1);
}

/* ---- authentication at the HTTP level ---- */

#define PASSWORD "correct horse battery"
#define OWN      "http://127.0.0.1"

/* One request on its own connection: method, path, Origin (NULL = none), Cookie (NULL =
 * none) and a body (NULL = none). */
static void req_as(fixture *f, int slot, const char *method, const char *path, const char *origin,
                   const char *cookie, const char *body)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s%s%s%s"
             "Content-Length: %zu\r\n\r\n%s",
             method, path, origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "",
             cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "",
             body ? strlen(body) : 0, body ? body : "");
    if (!http_once(f->port, req, &f->resp[slot]))
        client_fail(f, "%s %s: no response", method, path);
}

/* The "pw_session=..." part of a response's Set-Cookie, for sending back. */
static void session_of(const http_resp *r, char *out, size_t size)
{
    header_value(r->head, "set-cookie", out, size);
    out[strcspn(out, ";")] = '\0';
}

/* What web does without an access function: reads are dashboard data, the rest admin. */
static pw_web_access web_test_default_access(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? PW_WEB_READ : PW_WEB_ADMIN;
}

static pw_web_access test_access(void *ud, const char *method, const char *path)
{
    (void)ud;
    (void)method;
    if (strcmp(path, "/api/health") == 0)
        return PW_WEB_PUBLIC;
    if (strcmp(path, "/api/export") == 0)
        return PW_WEB_ADMIN;
    return web_test_default_access(method);
}

static char session_cookie[128];
static int api_calls_before_login;
static bool admin_seen_with_cookie;

static void *scenario_auth(void *arg)
{
    fixture *f = arg;
    req_as(f, 0, "GET", "/api/auth/status", NULL, NULL, NULL);
    req_as(f, 1, "POST", "/api/thing", OWN, NULL, "{}");
    req_as(f, 2, "POST", "/api/thing", "http://evil.example", NULL, "{}");
    req_as(f, 3, "POST", "/api/thing", NULL, NULL, "{}");
    req_as(f, 4, "POST", "/api/auth/setup", OWN, NULL, "{\"password\":\"short\"}");
    req_as(f, 5, "POST", "/api/auth/setup", "http://evil.example", NULL,
           "{\"password\":\"" PASSWORD "\"}");
    req_as(f, 6, "POST", "/api/auth/setup", OWN, NULL, "{\"password\":\"" PASSWORD "\"}");
    api_calls_before_login = f->api_calls;
    req_as(f, 7, "POST", "/api/auth/setup", OWN, NULL, "{\"password\":\"another password\"}");
    session_of(&f->resp[6], session_cookie, sizeof(session_cookie));
    req_as(f, 8, "POST", "/api/thing", OWN, session_cookie, "{}");
    admin_seen_with_cookie = f->admin;
    req_as(f, 23, "POST", "/api/thing", NULL, session_cookie, "{}");
    req_as(f, 9, "GET", "/api/state", NULL, NULL, NULL);
    req_as(f, 10, "GET", "/api/auth/status", NULL, session_cookie, NULL);
    req_as(f, 11, "GET", "/api/export", NULL, NULL, NULL);
    req_as(f, 12, "POST", "/api/health", OWN, NULL, "{}");
    req_as(f, 13, "POST", "/api/auth/logout", OWN, session_cookie, "");
    req_as(f, 14, "POST", "/api/thing", OWN, session_cookie, "{}");
    req_as(f, 15, "POST", "/api/auth/login", OWN, NULL, "{\"password\":\"wrong password\"}");
    req_as(f, 16, "POST", "/api/auth/login", OWN, NULL, "{\"password\":");
    req_as(f, 17, "POST", "/api/auth/login", OWN, NULL, "{\"password\":\"" PASSWORD "\"}");
    char fresh[128];
    session_of(&f->resp[17], fresh, sizeof(fresh));
    req_as(f, 18, "GET", "/api/export", NULL, fresh, NULL);
    /* Three failures in a row, then the client must wait, even with the right password. */
    for (int i = 19; i < 22; i++)
        req_as(f, i, "POST", "/api/auth/login", OWN, NULL, "{\"password\":\"guess\"}");
    req_as(f, 22, "POST", "/api/auth/login", OWN, NULL, "{\"password\":\"" PASSWORD "\"}");
    loop_do(f, CMD_CLOSE);
    return NULL;
}

typedef struct data_dir {
    char path[64];
    char file[96];
} data_dir;

static void data_dir_make(data_dir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/pw-web-test-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    snprintf(d->file, sizeof(d->file), "%s/admin-password", d->path);
}

static void data_dir_remove(data_dir *d)
{
    unlink(d->file);
    assert_int_equal(rmdir(d->path), 0);
}

static void assert_status(const fixture *f, int slot, int status)
{
    if (f->resp[slot].status != status)
        fail_msg("request %d: status %d, expected %d: %s", slot, f->resp[slot].status, status,
                 f->resp[slot].body ? f->resp[slot].body : "");
}

static void test_auth_rules(void **state)
{
    (void)state;
    data_dir d;
    data_dir_make(&d);
    pw_web_auth_opts auth = {.data_dir = d.path, .iterations = 1000, .access = test_access};
    fixture f;
    fixture_start_auth(&f, 0, &auth);
    fixture_run(&f, scenario_auth);

    assert_status(&f, 0, 200);
    assert_non_null(strstr(f.resp[0].body, "\"setup_required\":true"));
    assert_non_null(strstr(f.resp[0].body, "\"logged_in\":false"));
    assert_status(&f, 1, 401); /* no password yet: no changes at all */
    assert_status(&f, 2, 403); /* cross-origin */
    assert_non_null(strstr(f.resp[2].body, "\"field\":\"origin\""));
    assert_status(&f, 3, 401); /* no Origin (not a browser): still needs a login */
    assert_status(&f, 4, 400);
    assert_non_null(strstr(f.resp[4].body, "\"field\":\"password\""));
    assert_status(&f, 5, 403); /* setup is a change too */
    assert_status(&f, 6, 201);
    assert_int_equal(api_calls_before_login, 0);
    char v[256];
    header_value(f.resp[6].head, "set-cookie", v, sizeof(v));
    assert_int_equal(strncmp(v, "pw_session=", 11), 0);
    assert_int_equal(strcspn(v + 11, ";"), 64);
    assert_non_null(strstr(v, "; HttpOnly"));
    assert_non_null(strstr(v, "; SameSite=Strict"));
    assert_non_null(strstr(v, "; Path=/"));
    assert_null(strstr(v, "Secure"));
    assert_status(&f, 7, 409); /* only once */
    assert_status(&f, 8, 201); /* the test handler answers POST with 201 */
    assert_true(admin_seen_with_cookie);
    assert_status(&f, 23, 201); /* a script without Origin, logged in */
    assert_status(&f, 9, 200);  /* the dashboard is open by default */
    assert_non_null(strstr(f.resp[10].body, "\"logged_in\":true"));
    assert_non_null(strstr(f.resp[10].body, "\"setup_required\":false"));
    assert_status(&f, 11, 401); /* the server marked this GET as admin-only */
    assert_status(&f, 12, 201); /* and this POST as public (Origin still required) */
    assert_status(&f, 13, 200);
    header_value(f.resp[13].head, "set-cookie", v, sizeof(v));
    assert_non_null(strstr(v, "Max-Age=0"));
    assert_status(&f, 14, 401); /* the session ended with the logout */
    assert_status(&f, 15, 401);
    assert_non_null(strstr(f.resp[15].body, "wrong password"));
    assert_status(&f, 16, 400);
    assert_status(&f, 17, 200);
    assert_status(&f, 18, 200);
    assert_status(&f, 19, 401);
    assert_status(&f, 20, 401);
    assert_status(&f, 21, 401);
    assert_status(&f, 22, 429);
    header_value(f.resp[22].head, "retry-after", v, sizeof(v));
    assert_true(atoi(v) >= 1);

    /* The password is on disk as PBKDF2 with its salt, readable by the owner only. */
    struct stat st;
    assert_int_equal(stat(d.file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *fp = fopen(d.file, "r");
    assert_non_null(fp);
    assert_non_null(fgets(v, sizeof(v), fp));
    fclose(fp);
    assert_int_equal(strncmp(v, "pbkdf2-sha256$1000$", 19), 0);
    assert_null(strstr(v, PASSWORD));
    fixture_free(&f);
    data_dir_remove(&d);
}

static void *scenario_dashboard_login(void *arg)
{
    fixture *f = arg;
    conn *c = pw_xmalloc(sizeof(*c));
    http_resp hs;
    req_as(f, 0, "GET", "/api/state", NULL, NULL, NULL);
    if (ws_handshake_as(c, f->port, "/ws", NULL, NULL, &hs) && hs.status == 101)
        client_fail(f, "WebSocket without login accepted");
    free(hs.body);
    conn_close(c);
    req_as(f, 1, "GET", "/", NULL, NULL, NULL); /* the page itself stays reachable */
    req_as(f, 2, "POST", "/api/auth/setup", OWN, NULL, "{\"password\":\"" PASSWORD "\"}");
    char cookie[128];
    session_of(&f->resp[2], cookie, sizeof(cookie));
    req_as(f, 3, "GET", "/api/state", NULL, cookie, NULL);
    if (ws_handshake_as(c, f->port, "/ws", "http://evil.example", cookie, &hs) && hs.status == 101)
        client_fail(f, "cross-origin WebSocket accepted");
    free(hs.body);
    conn_close(c);
    if (!ws_handshake_as(c, f->port, "/ws", NULL, cookie, &hs) || hs.status != 101)
        client_fail(f, "WebSocket with login refused");
    else if (ws_read_frame(c, &f->frames[0], &f->frame_len[0]) != 1)
        client_fail(f, "no frame after login");
    free(hs.body);
    conn_close(c);
    loop_do(f, CMD_DASHBOARD_OPEN);
    req_as(f, 4, "GET", "/api/state", NULL, NULL, NULL);
    free(c);
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_dashboard_login(void **state)
{
    (void)state;
    data_dir d;
    data_dir_make(&d);
    pw_web_auth_opts auth = {.data_dir = d.path, .iterations = 1000, .dashboard_login = true};
    fixture f;
    fixture_start_auth(&f, 0, &auth);
    pw_web_broadcast(f.web, "{\"type\":\"state\"}", 16);
    fixture_run(&f, scenario_dashboard_login);
    assert_status(&f, 0, 401);
    assert_status(&f, 1, 200);
    assert_status(&f, 2, 201);
    assert_status(&f, 3, 200);
    assert_string_equal(f.frames[0], "{\"type\":\"state\"}");
    assert_status(&f, 4, 200); /* switched off without a restart */
    fixture_free(&f);
    data_dir_remove(&d);
}

/* A login still being derived on the thread pool when web shuts down: the job must finish
 * without touching the closed connection, and web must wait for it before freeing itself. */
static void *scenario_close_during_login(void *arg)
{
    fixture *f = arg;
    req_as(f, 0, "POST", "/api/auth/setup", OWN, NULL, "{\"password\":\"" PASSWORD "\"}");
    conn *c = pw_xmalloc(sizeof(*c));
    const char body[] = "{\"password\":\"" PASSWORD "\"}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " OWN "\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    if (!conn_open(c, f->port) || !conn_send(c, req, strlen(req)))
        client_fail(f, "login request not sent");
    usleep(20000); /* let the loop queue the derivation */
    loop_do(f, CMD_CLOSE);
    wait_eof(c);
    conn_close(c);
    free(c);
    return NULL;
}

static void test_close_during_login(void **state)
{
    (void)state;
    data_dir d;
    data_dir_make(&d);
    /* Slow enough (tens of ms) that the close lands while it runs. */
    pw_web_auth_opts auth = {.data_dir = d.path, .iterations = 100000};
    fixture f;
    fixture_start_auth(&f, 0, &auth);
    fixture_run(&f, scenario_close_during_login);
    assert_status(&f, 0, 201);
    fixture_free(&f);
    data_dir_remove(&d);
}

/* ---- start-up failures leave nothing on the loop ---- */

static void test_missing_evlib_plugin(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_web *w = NULL;
    pw_web_opts o = {.addr = "127.0.0.1", .evlib_path = "/nonexistent/libwebsockets-evlib_uv.so"};
    char err[256] = "";
    int rc = pw_web_new(&w, &loop, &o, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_null(w);
    assert_non_null(strstr(err, "libwebsockets-evlib-uv"));
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_port_in_use(void **state)
{
    (void)state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 1), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_web *w = NULL;
    pw_web_opts o = {.addr = "127.0.0.1", .port = ntohs(a.sin_port)};
    char err[256] = "";
    assert_int_equal(pw_web_new(&w, &loop, &o, err, sizeof(err)), -1);
    assert_null(w);
    assert_non_null(strstr(err, "cannot listen"));
    /* lws already had handles on the loop: they must drain away by themselves. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(s);
}

/* ---- uploads streamed to a file, downloads sent from one ---- */

static size_t files_in(const char *dir)
{
    size_t n = 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%zu", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static size_t files_mid, files_after, files_refused;

/* Sends a POST of len pattern bytes in two parts, counting the files in upload_dir between
 * them (*mid) and after the answer. */
static void upload_in_two(fixture *f, int slot, const char *extra, size_t len, size_t *mid)
{
    char head[512];
    int h = snprintf(head, sizeof(head),
                     "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     extra, len);
    uint8_t *body = pw_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = pattern(i);
    conn *c = pw_xmalloc(sizeof(*c));
    bool ok = conn_open(c, f->port) && conn_send(c, head, (size_t)h) && conn_send(c, body, len / 4);
    usleep(300000);
    *mid = files_in(upload_dir);
    ok = ok && conn_send(c, body + len / 4, len - len / 4) && http_read(c, &f->resp[slot]);
    if (!ok)
        client_fail(f, "upload to slot %d: no response", slot);
    conn_close(c);
    free(c);
    free(body);
}

static void *scenario_upload(void *arg)
{
    fixture *f = arg;
    upload_in_two(f, 0, "", 200000, &files_mid);
    files_after = files_in(upload_dir); /* gone before the answer, whatever the connection does */
    /* Over the upload's own limit (which is far above max_body): 413, nothing stored. */
    size_t mid_large;
    upload_in_two(f, 1, "", UPLOAD_MAX + 1, &mid_large);
    if (mid_large != 0)
        client_fail(f, "an oversized upload was stored (%zu files)", mid_large);
    req_as(f, 2, "GET", "/api/download", NULL, NULL, NULL);
    loop_do(f, CMD_CLOSE);
    return NULL;
}

static void test_upload_download(void **state)
{
    (void)state;
    snprintf(upload_dir, sizeof(upload_dir), "/tmp/pw-web-upload-XXXXXX");
    assert_non_null(mkdtemp(upload_dir));
    /* A download larger than a chunk, from a file. */
    char path[96];
    snprintf(path, sizeof(path), "%s.download", upload_dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    download_len = 100000;
    for (size_t i = 0; i < download_len; i++)
        fputc(pattern(i), fp);
    fclose(fp);
    download_fd = open(path, O_RDONLY);
    assert_true(download_fd >= 0);
    unlink(path);

    fixture f;
    fixture_start_web(&f, 1024, NULL, true);
    fixture_run(&f, scenario_upload);
    assert_status(&f, 0, 201);
    assert_int_equal(files_mid, 1);   /* the body went to a file while it arrived */
    assert_int_equal(files_after, 0); /* and web removed it before it answered */
    assert_int_equal(strncmp(upload_seen, upload_dir, strlen(upload_dir)), 0);
    assert_int_equal(upload_seen_len, 200000);
    assert_int_equal(upload_seen_bytes, 200000);
    assert_true(upload_content_ok);
    assert_true(upload_body_empty);
    assert_status(&f, 1, 413);
    assert_non_null(strstr(f.resp[1].body, "the limit is 300000 bytes"));
    assert_status(&f, 2, 200);
    assert_int_equal(f.resp[2].body_len, download_len);
    for (size_t i = 0; i < download_len; i++)
        if ((uint8_t)f.resp[2].body[i] != pattern(i))
            fail_msg("download byte %zu differs", i);
    assert_int_equal(f.api_calls, 2);
    close(download_fd);
    download_fd = -1;
    assert_int_equal(rmdir(upload_dir), 0);
    fixture_free(&f);
}

static void *scenario_upload_refused(void *arg)
{
    fixture *f = arg;
    upload_in_two(f, 0, "Origin: " OWN "\r\n", 100000, &files_refused);
    size_t cross;
    upload_in_two(f, 1, "Origin: http://evil.example\r\n", 100000, &cross);
    files_refused += cross;
    loop_do(f, CMD_CLOSE);
    return NULL;
}

/* An upload that will be refused (no login, another site) never reaches the disk. */
static void test_upload_refused_writes_nothing(void **state)
{
    (void)state;
    snprintf(upload_dir, sizeof(upload_dir), "/tmp/pw-web-upload-XXXXXX");
    assert_non_null(mkdtemp(upload_dir));
    data_dir d;
    data_dir_make(&d);
    pw_web_auth_opts auth = {.data_dir = d.path, .iterations = 1000, .access = test_access};
    fixture f;
    fixture_start_web(&f, 1024, &auth, true);
    fixture_run(&f, scenario_upload_refused);
    assert_status(&f, 0, 401);
    assert_status(&f, 1, 403);
    assert_int_equal(files_refused, 0);
    assert_int_equal(f.api_calls, 0);
    assert_int_equal(rmdir(upload_dir), 0);
    fixture_free(&f);
    data_dir_remove(&d);
}

int main(void)
{
    pw_log_set_level(PW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_assets),
        cmocka_unit_test(test_api_handler),
        cmocka_unit_test(test_api_request_fields),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_deferred),
        cmocka_unit_test(test_websocket),
        cmocka_unit_test(test_close_with_clients),
        cmocka_unit_test(test_auth_rules),
        cmocka_unit_test(test_dashboard_login),
        cmocka_unit_test(test_close_during_login),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_missing_evlib_plugin),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_upload_download),
        cmocka_unit_test(test_upload_refused_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
