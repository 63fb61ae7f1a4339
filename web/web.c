/* HTTP and WebSocket front end on the server's libuv loop: libwebsockets 4.1 joins the loop
 * through its libuv event-lib plugin, serves the embedded dashboard, hands /api/ requests to the
 * server's handler and pushes the newest state document to every WebSocket client. */
#include "web_int.h"

#include "pw_util.h"
#include "pw_web_ws.h"
#include "web_assets.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WEB_DEFAULT_BODY    (64 * 1024)
#define WEB_WS_PROTOCOL     "phasewise"
#define WEB_CLOSE_POLL_MS   2
#define WEB_CLOSE_WARN_TURN 2500

/* Where lws 4.1 looks for its event-lib plugins (LWS_INSTALL_LIBDIR). */
#define WEB_EVLIB_PATH LWS_INSTALL_LIBDIR "/libwebsockets-evlib_uv.so"

/* The request a handler sees, with the transaction it belongs to: pw_web_defer finds the
 * transaction from the public part, which the handler gets by pointer. */
typedef struct web_request {
    pw_web_request pub;
    web_http *h;
} web_request;

/* Nothing the page needs comes from elsewhere, so everything but our own origin is refused. */
static const char web_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                              "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
                              "manifest-src 'self'; base-uri 'none'; form-action 'self'; "
                              "frame-ancestors 'none'";

static int web_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len);
static int web_ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);

/* protocols[0] serves HTTP; the WebSocket protocol is also the default for clients that name
 * no subprotocol (pvo "default"). */
static const struct lws_protocol_vhost_options web_ws_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options web_pvo = {NULL, &web_ws_default, WEB_WS_PROTOCOL,
                                                          ""};
static const struct lws_protocols web_protocols[] = {
    {"http", web_http_cb, sizeof(web_http), 0, 0, NULL, 0},
    {WEB_WS_PROTOCOL, web_ws_cb, sizeof(web_ws), 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- logging and setup ---- */

static void web_lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    enum pw_log_level l = level == LLL_ERR    ? PW_LOG_ERROR
                          : level == LLL_WARN ? PW_LOG_WARN
                                              : PW_LOG_DEBUG;
    pw_log(l, "lws", "%.*s", (int)n, line);
}

/* lws 4.1 from Debian ships libuv support as a plugin (package libwebsockets-evlib-uv); without
 * it lws cannot join our loop, so say exactly that rather than a vague lws failure. */
static int web_check_evlib(const char *path, char *err, size_t err_size)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, err_size,
                 "libwebsockets cannot use libuv: %s (install the Debian package "
                 "libwebsockets-evlib-uv)",
                 dlerror());
        return -1;
    }
    bool ok = dlsym(h, "evlib_uv") != NULL;
    dlclose(h);
    if (!ok) {
        snprintf(err, err_size, "%s is not the libwebsockets libuv plugin (no evlib_uv)", path);
        return -1;
    }
    return 0;
}

void web__ptrs_add(web_ptrs *s, const void *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = pw_xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = p;
}

bool web__ptrs_has(const web_ptrs *s, const void *p)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == p)
            return true;
    return false;
}

void web__ptrs_remove(web_ptrs *s, const void *p)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == p) {
            s->v[i] = s->v[--s->n];
            return;
        }
}

static void web_snapshot_cb(uv_handle_t *h, void *arg)
{
    web__ptrs_add(arg, h);
}

typedef struct web_diff {
    const web_ptrs *before;
    web_ptrs *added;
} web_diff;

static void web_diff_cb(uv_handle_t *h, void *arg)
{
    web_diff *d = arg;
    if (!web__ptrs_has(d->before, h) && !web__ptrs_has(d->added, h))
        web__ptrs_add(d->added, h);
}

void web__snapshot_handles(pw_web *w, web_ptrs *before)
{
    uv_walk(w->loop, web_snapshot_cb, before);
}

void web__note_lws_handles(pw_web *w, const web_ptrs *before)
{
    web_diff d = {before, &w->lws_handles};
    uv_walk(w->loop, web_diff_cb, &d);
}

static void web_alive_cb(uv_handle_t *h, void *arg)
{
    struct {
        const web_ptrs *marks;
        bool alive;
    } *st = arg;
    if (web__ptrs_has(st->marks, h))
        st->alive = true;
}

/* True while any handle lws created is still on the loop (closing counts: its close callback
 * still reaches into the context). A freed handle's address reused by someone else's handle
 * only makes this answer "alive" for longer, never "gone" too early. */
static bool web_lws_handles_alive(pw_web *w)
{
    struct {
        const web_ptrs *marks;
        bool alive;
    } st = {&w->lws_handles, false};
    uv_walk(w->loop, web_alive_cb, &st);
    return st.alive;
}

static void web_reaper_closed(uv_handle_t *h)
{
    pw_web *w = h->data;
    void (*done)(void *) = w->done;
    void *ud = w->done_ud;
    web__ws_free(w);
    free(w->doc);
    free(w->lws_handles.v);
    free(w->live_wsi.v);
    web__auth_free(w->auth);
    free(w);
    if (done)
        done(ud);
}

/* Shutdown in loop turns (lws issues #1969, #2595): the first lws_context_destroy() starts
 * closing lws's handles, which libuv finishes only in later turns; once none is left the second
 * call frees the context. Calling it earlier frees handles libuv still holds. */
static void web_reaper_cb(uv_timer_t *t)
{
    pw_web *w = t->data;
    switch (w->close_state) {
    case WEB_OPEN:
        return;
    case WEB_CLOSE_START:
        web__ws_shutdown(w);
        lws_context_destroy(w->ctx);
        w->close_state = WEB_CLOSE_WAIT;
        return;
    case WEB_CLOSE_WAIT:
        if (w->live_wsi.n > 0 || w->jobs > 0 || w->pending > 0 || web_lws_handles_alive(w)) {
            if (++w->close_turns == WEB_CLOSE_WARN_TURN)
                pw_warn(WEB_LOG,
                        "libwebsockets still closing after %u ms (%zu connections, %u "
                        "deferred answers)",
                        w->close_turns * WEB_CLOSE_POLL_MS, w->live_wsi.n, w->pending);
            return;
        }
        /* One more turn, so close callbacks queued in this one have run too. */
        w->close_state = WEB_CLOSE_FINISH;
        return;
    case WEB_CLOSE_FINISH:
        if (w->ctx)
            lws_context_destroy(w->ctx);
        if (w->ctx)
            pw_error(WEB_LOG, "libwebsockets context survived its final destroy");
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, web_reaper_closed);
        return;
    }
}

static void web_start_close(pw_web *w, void (*done)(void *), void *ud)
{
    w->done = done;
    w->done_ud = ud;
    w->close_state = w->ctx ? WEB_CLOSE_START : WEB_CLOSE_FINISH;
    /* Never destroy the context from inside one of its own callbacks: go through the loop. */
    uv_timer_start(&w->reaper, web_reaper_cb, 0, WEB_CLOSE_POLL_MS);
}

static const char *web_iface(const char *addr)
{
    if (!addr || !addr[0] || strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0)
        return NULL;
    return addr;
}

/* Allocates w and joins lws to loop (a context without vhosts). Returns 0, or -1 with err; on
 * failure w is still returned and must go through web_start_close. */
static int web_create(pw_web **out, uv_loop_t *loop, const char *evlib, char *err, size_t err_size)
{
    web_ptrs before = {0};
    pw_web *w = pw_xcalloc(1, sizeof(*w));
    *out = w;
    w->loop = loop;
    w->max_body = WEB_DEFAULT_BODY;
    uv_timer_init(loop, &w->reaper);
    w->reaper.data = w;

    lws_set_log_level(LLL_ERR | LLL_WARN, web_lws_log);
    web__snapshot_handles(w, &before);

    void *foreign_loops[1] = {loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* TLS is initialised even for a plain HTTP front: WebSocket endpoints (wss://) and clients
     * may need it later on the same context. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = foreign_loops;
    info.pcontext = &w->ctx;
    info.user = w;
    info.max_http_header_data = WEB_HDR_BUF;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        snprintf(err, err_size, "libwebsockets could not create its context on the libuv loop");
        goto fail;
    }
    web__note_lws_handles(w, &before);
    if (w->lws_handles.n == 0) {
        snprintf(err, err_size,
                 "libwebsockets did not join the libuv loop (event-lib plugin %s "
                 "not loaded?)",
                 evlib);
        goto fail;
    }
    free(before.v);
    return 0;

fail:
    free(before.v);
    return -1;
}

int pw_web_new_bare(pw_web **out, uv_loop_t *loop, char *err, size_t err_size)
{
    pw_web *w;
    *out = NULL;
    if (web_check_evlib(WEB_EVLIB_PATH, err, err_size))
        return -1;
    if (web_create(&w, loop, WEB_EVLIB_PATH, err, err_size)) {
        web_start_close(w, NULL, NULL);
        return -1;
    }
    *out = w; /* no vhost: w->vh stays NULL and nothing listens */
    return 0;
}

int pw_web_new(pw_web **out, uv_loop_t *loop, const pw_web_opts *opts, char *err, size_t err_size)
{
    web_ptrs before = {0};
    const char *evlib = opts->evlib_path ? opts->evlib_path : WEB_EVLIB_PATH;
    pw_web *w;
    *out = NULL;
    if (web_check_evlib(evlib, err, err_size))
        return -1;
    if (web_create(&w, loop, evlib, err, err_size))
        goto fail;

    w->api = opts->api;
    w->api_ud = opts->api_ud;
    w->max_body = opts->max_body ? opts->max_body : WEB_DEFAULT_BODY;
    if (opts->upload.path && opts->upload.dir) {
        w->upload_path = opts->upload.path;
        w->upload_dir = opts->upload.dir;
        w->upload_max = opts->upload.max;
    }
    if (web__login_init(w, &opts->auth, err, err_size))
        goto fail;

    w->tls = opts->tls_cert != NULL;
    if (w->tls != (opts->tls_key != NULL)) {
        snprintf(err, err_size, "HTTPS needs both a certificate and a private key file");
        goto fail;
    }
    if (w->tls)
        w->secure_cookie = true; /* a cookie set over HTTPS must never travel in clear */

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.port = opts->port;
    info.iface = web_iface(opts->addr);
    info.protocols = web_protocols;
    info.pvo = &web_pvo;
    info.vhost_name = "phasewise";
    if (w->tls) {
        /* lws enables TLS on a vhost only when its own creation options ask for it too. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = opts->tls_cert;
        info.ssl_private_key_filepath = opts->tls_key;
        /* The handlers speak HTTP/1.1 transactions; keep browsers from negotiating h2. */
        info.alpn = "http/1.1";
    }
    web__snapshot_handles(w, &before);
    w->vh = lws_create_vhost(w->ctx, &info);
    web__note_lws_handles(w, &before);
    if (!w->vh) {
        if (w->tls)
            snprintf(err, err_size,
                     "cannot serve HTTPS on %s:%u: the address is in use or not local, or the "
                     "certificate %s or key %s cannot be used (see the lws messages above)",
                     opts->addr && opts->addr[0] ? opts->addr : "*", (unsigned)opts->port,
                     opts->tls_cert, opts->tls_key);
        else
            snprintf(err, err_size, "cannot listen on %s:%u (address in use or not local?)",
                     opts->addr && opts->addr[0] ? opts->addr : "*", (unsigned)opts->port);
        goto fail;
    }
    w->port = (uint16_t)lws_get_vhost_listen_port(w->vh);
    w->ws_protocol = lws_vhost_name_to_protocol(w->vh, WEB_WS_PROTOCOL);
    free(before.v);
    pw_info(WEB_LOG, "serving %s://%s:%u/", w->tls ? "https" : "http",
            opts->addr && opts->addr[0] ? opts->addr : "*", (unsigned)w->port);
    *out = w;
    return 0;

fail:
    free(before.v);
    /* lws may already have handles on the loop; they go away as the loop runs. */
    web_start_close(w, NULL, NULL);
    return -1;
}

uint16_t pw_web_port(const pw_web *w)
{
    return w->port;
}

void pw_web_set_dashboard_login(pw_web *w, bool on)
{
    w->dashboard_login = on;
}

size_t pw_web_clients(const pw_web *w)
{
    return w->clients;
}

void pw_web_close(pw_web *w, void (*done)(void *ud), void *ud)
{
    if (w->close_state != WEB_OPEN) {
        pw_error(WEB_LOG, "pw_web_close called twice");
        return;
    }
    web_start_close(w, done, ud);
}

void pw_web_broadcast(pw_web *w, const char *text, size_t len)
{
    if (w->close_state != WEB_OPEN)
        return;
    unsigned char *doc = pw_xmalloc(LWS_PRE + len + 1);
    memcpy(doc + LWS_PRE, text, len);
    doc[LWS_PRE + len] = '\0';
    free(w->doc);
    w->doc = doc;
    w->doc_len = len;
    w->doc_seq++;
    if (w->clients)
        lws_callback_on_writable_all_protocol_vhost(w->vh, w->ws_protocol);
}

/* ---- HTTP ---- */

/* A request whose answer the API handler gives later (pw_web_defer). */
struct pw_web_pending {
    pw_web *w;
    struct lws *wsi; /* NULL once the connection has gone */
    web_http *h;
    char method[8];
    char *path; /* for the log */
};

static pw_web *web_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* An upload's file goes as soon as its answer is decided: a kept-alive connection must not keep
 * it on the disk. A handler that keeps it has renamed it away by then. */
static void web_upload_drop(web_http *h)
{
    if (h->upload_open)
        close(h->upload_fd);
    h->upload_open = false;
    if (h->upload_file)
        unlink(h->upload_file);
    free(h->upload_file);
    h->upload_file = NULL;
}

static void web_http_reset(web_http *h)
{
    web_upload_drop(h);
    if (h->tx_is_file)
        close(h->tx_fd);
    if (h->reply.is_file)
        close(h->reply.fd);
    free(h->path);
    free(h->query);
    free(h->origin);
    free(h->cookie);
    free(h->host);
    free(h->body);
    free(h->tx_owned);
    free(h->reply.body);
    web__login_detach(h);
    if (h->pending) {
        /* Its answer, when it comes, has nowhere to go. */
        h->pending->h = NULL;
        h->pending->wsi = NULL;
    }
    memset(h, 0, sizeof(*h));
}

/* lws keeps headers only until the transaction moves on, so everything the handler sees is
 * copied when the request starts. */
char *web__hdr_dup(struct lws *wsi, enum lws_token_indexes token)
{
    int n = lws_hdr_total_length(wsi, token);
    char *s = pw_xmalloc(n > 0 ? (size_t)n + 1 : 1);
    if (n <= 0 || lws_hdr_copy(wsi, s, n + 1, token) < 0)
        s[0] = '\0';
    return s;
}

static const char *web_method_name(int m)
{
    switch (m) {
    case LWSHUMETH_GET:
        return "GET";
    case LWSHUMETH_POST:
        return "POST";
    case LWSHUMETH_OPTIONS:
        return "OPTIONS";
    case LWSHUMETH_PUT:
        return "PUT";
    case LWSHUMETH_PATCH:
        return "PATCH";
    case LWSHUMETH_DELETE:
        return "DELETE";
    case LWSHUMETH_HEAD:
        return "HEAD";
    default:
        return NULL;
    }
}

static bool web_header_value_ok(const char *v)
{
    return v && !strpbrk(v, "\r\n");
}

static int web_add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                          unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int web_transaction_done(struct lws *wsi)
{
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The status line and headers of a response with a body of len bytes. Returns 0 or -1. */
static int web_headers(struct lws *wsi, int status, const char *type, size_t len,
                       const web_extra *x)
{
    unsigned char buf[LWS_PRE + WEB_HDR_BUF];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    char retry[16];
    snprintf(retry, sizeof(retry), "%u", x ? x->retry_after : 0);

    if (lws_add_http_common_headers(wsi, (unsigned)status, type, len, &p, end) ||
        web_add_header(wsi, "content-security-policy:", web_csp, &p, end) ||
        web_add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        web_add_header(wsi, "x-frame-options:", "DENY", &p, end) ||
        web_add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
        web_add_header(wsi, "cache-control:", x && x->cache ? x->cache : "no-store", &p, end) ||
        (x && x->set_cookie && x->set_cookie[0] &&
         web_add_header(wsi, "set-cookie:", x->set_cookie, &p, end)) ||
        (x && x->content_disposition && x->content_disposition[0] &&
         web_add_header(wsi, "content-disposition:", x->content_disposition, &p, end)) ||
        (x && x->etag && web_add_header(wsi, "etag:", x->etag, &p, end)) ||
        (x && x->allow && web_add_header(wsi, "allow:", x->allow, &p, end)) ||
        (x && x->retry_after && web_add_header(wsi, "retry-after:", retry, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return 0;
}

int web__respond(struct lws *wsi, web_http *h, int status, const char *type, const void *data,
                 size_t len, char *owned, const web_extra *x)
{
    if (web_headers(wsi, status, type, len, x) != 0) {
        free(owned);
        return -1;
    }
    if (len == 0 || h->is_head) {
        free(owned);
        h->active = false;
        return web_transaction_done(wsi);
    }
    h->tx_data = data;
    h->tx_owned = owned;
    h->tx_len = len;
    h->tx_off = 0;
    lws_callback_on_writable(wsi);
    return 0;
}

int web__respond_file(struct lws *wsi, web_http *h, int status, const char *type, int fd,
                      size_t len, const web_extra *x)
{
    if (web_headers(wsi, status, type, len, x) != 0) {
        close(fd);
        return -1;
    }
    if (len == 0 || h->is_head) {
        close(fd);
        h->active = false;
        return web_transaction_done(wsi);
    }
    h->tx_is_file = true;
    h->tx_fd = fd;
    h->tx_len = len;
    h->tx_off = 0;
    lws_callback_on_writable(wsi);
    return 0;
}

int web__respond_error(struct lws *wsi, web_http *h, int status, const char *message,
                       const char *field, const web_extra *x)
{
    size_t cap = strlen(message) + (field ? strlen(field) : 0) + 40;
    char *body = pw_xmalloc(cap);
    int n = field ? snprintf(body, cap, "{\"error\":\"%s\",\"field\":\"%s\"}", message, field)
                  : snprintf(body, cap, "{\"error\":\"%s\",\"field\":null}", message);
    return web__respond(wsi, h, status, "application/json", body, (size_t)n, body, x);
}

/* A chunk of a file body: the file is local and in the page cache once written, so a read of
 * one chunk per writable turn keeps the loop's share small. Returns 0 or -1. */
static int web_read_chunk(web_http *h, unsigned char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(h->tx_fd, out + got, n - got, (off_t)(h->tx_off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            pw_error(WEB_LOG, "reading a download's file failed: %s",
                     k < 0 ? strerror(errno) : "it is shorter than announced");
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

static int web_write_body(pw_web *w, struct lws *wsi, web_http *h)
{
    if (!h->tx_data && !h->tx_is_file)
        return 0; /* a writable callback we did not ask for */
    size_t n = h->tx_len - h->tx_off;
    if (n > WEB_CHUNK)
        n = WEB_CHUNK;
    bool last = h->tx_off + n == h->tx_len;
    if (h->tx_is_file) {
        if (web_read_chunk(h, w->tx + LWS_PRE, n) != 0)
            return -1;
    } else {
        memcpy(w->tx + LWS_PRE, h->tx_data + h->tx_off, n);
    }
    if (lws_write(wsi, w->tx + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    h->tx_off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (h->tx_is_file)
        close(h->tx_fd);
    h->tx_is_file = false;
    free(h->tx_owned);
    h->tx_owned = NULL;
    h->tx_data = NULL;
    h->active = false;
    return web_transaction_done(wsi);
}

static int web_serve_asset(struct lws *wsi, web_http *h)
{
    const pw_web_asset *a = web__asset_find(h->path);
    if (!a)
        return web__respond_error(wsi, h, 404, "not found", NULL, NULL);
    if (strcmp(h->method, "GET") != 0 && strcmp(h->method, "HEAD") != 0)
        return web__respond_error(wsi, h, 405, "method not allowed", NULL,
                                  &(web_extra){.allow = "GET, HEAD"});

    /* Assets change only with the binary: revalidate each time, answer 304 when unchanged. */
    web_extra x = {.etag = a->etag, .cache = "no-cache"};
    char inm[64];
    if (lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        strcmp(inm, a->etag) == 0)
        return web__respond(wsi, h, 304, a->content_type, NULL, 0, NULL, &x);
    return web__respond(wsi, h, 200, a->content_type, a->data, a->len, NULL, &x);
}

/* Checks a handler's answer before any of it reaches the wire. */
static bool web_response_ok(const pw_web_response *resp)
{
    return resp->status >= 100 && resp->status <= 599 && web_header_value_ok(resp->content_type) &&
           web_header_value_ok(resp->set_cookie) &&
           web_header_value_ok(resp->content_disposition) &&
           (!resp->body_is_file || (!resp->body && resp->body_fd >= 0));
}

/* A response that is dropped: its file is closed with it. */
static void web_response_drop(pw_web_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    if (resp->body_is_file && resp->body_fd >= 0)
        close(resp->body_fd);
    resp->body_is_file = false;
}

void web__reply_later(web_http *h, int status, const char *type, char *body, size_t len,
                      const char *cookie, const char *disposition)
{
    if (h->reply.is_file)
        close(h->reply.fd);
    h->reply.is_file = false;
    free(h->reply.body);
    h->reply.status = status;
    h->reply.type = type;
    h->reply.body = body;
    h->reply.len = body ? len : 0;
    pw_strlcpy(h->reply.cookie, cookie ? cookie : "", sizeof(h->reply.cookie));
    pw_strlcpy(h->reply.disposition, disposition ? disposition : "", sizeof(h->reply.disposition));
    h->reply_ready = true;
    lws_callback_on_writable(h->wsi);
}

static int web_send_reply(struct lws *wsi, web_http *h)
{
    h->reply_ready = false;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    web_reply r = h->reply;
    memset(&h->reply, 0, sizeof(h->reply));
    web_extra x = {.set_cookie = r.cookie, .content_disposition = r.disposition};
    int rc = r.is_file ? web__respond_file(wsi, h, r.status, r.type, r.fd, r.len, &x)
                       : web__respond(wsi, h, r.status, r.type, r.body, r.len, r.body, &x);
    explicit_bzero(r.cookie, sizeof(r.cookie));
    return rc;
}

pw_web_pending *pw_web_defer(const pw_web_request *req)
{
    const web_request *r =
        (const web_request *)(const void *)((const char *)req - offsetof(web_request, pub));
    web_http *h = r->h;
    pw_web *w = web_of(h->wsi);
    pw_web_pending *p = pw_xcalloc(1, sizeof(*p));
    p->w = w;
    p->wsi = h->wsi;
    p->h = h;
    pw_strlcpy(p->method, h->method, sizeof(p->method));
    p->path = pw_xstrdup(h->path);
    h->pending = p;
    h->deferred = true;
    w->pending++;
    /* The answer comes later; keep lws from timing the connection out meanwhile. */
    lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, 60);
    return p;
}

bool pw_web_pending_alive(const pw_web_pending *p)
{
    if (!p->h || p->w->close_state != WEB_OPEN)
        return false;
    /* lws reads nothing more from a connection while its transaction is open, so it notices a
     * client that left only when the answer is written: look at the socket itself. End of
     * stream or an error means gone; data (a pipelined request, TLS records) or nothing yet
     * means the client still waits. */
    int fd = lws_get_socket_fd(p->wsi);
    char c;
    ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

void pw_web_complete(pw_web_pending *p, pw_web_response *resp)
{
    pw_web *w = p->w;
    web_http *h = p->h;
    if (h && !web_response_ok(resp)) {
        pw_error(WEB_LOG, "API handler gave an invalid deferred response for %s %s", p->method,
                 p->path);
        web_upload_drop(h);
        web_response_drop(resp);
        const char msg[] = "{\"error\":\"internal error: invalid response\",\"field\":null}";
        web__reply_later(h, 500, "application/json", pw_xstrdup(msg), strlen(msg), NULL, NULL);
    } else if (h) {
        web_upload_drop(h);
        web__reply_later(h, resp->status, resp->content_type, resp->body,
                         resp->body ? resp->body_len : 0, resp->set_cookie,
                         resp->content_disposition);
        if (resp->body_is_file) { /* the file goes with the reply */
            h->reply.is_file = true;
            h->reply.fd = resp->body_fd;
            h->reply.len = resp->body_len;
            resp->body_is_file = false;
        }
    } else {
        web_response_drop(resp);
    }
    resp->body = NULL;
    if (h)
        h->pending = NULL;
    w->pending--;
    free(p->path);
    free(p);
}

static int web_call_api(pw_web *w, struct lws *wsi, web_http *h)
{
    if (!w->api)
        return web__respond_error(wsi, h, 404, "no API here", NULL, NULL);
    web_request req = {
        .pub =
            {
                .method = h->method,
                .path = h->path,
                .query = h->query,
                .body = h->body ? h->body : "",
                .body_len = h->body_len,
                .body_file = h->upload_file,
                .origin = h->origin,
                .cookie = h->cookie,
                .admin = h->admin,
            },
        .h = h,
    };
    pw_web_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    resp.content_type = "application/json";
    w->api(w->api_ud, &req.pub, &resp);
    if (!h->deferred)
        web_upload_drop(h);
    if (h->deferred) {
        web_response_drop(&resp); /* the answer is pw_web_complete's, not this one */
        return 0;
    }
    if (!web_response_ok(&resp)) {
        pw_error(WEB_LOG, "API handler gave an invalid response for %s %s", h->method, h->path);
        web_response_drop(&resp);
        return web__respond_error(wsi, h, 500, "internal error: invalid response", NULL, NULL);
    }
    web_extra x = {.set_cookie = resp.set_cookie, .content_disposition = resp.content_disposition};
    if (resp.body_is_file)
        return web__respond_file(wsi, h, resp.status, resp.content_type, resp.body_fd,
                                 resp.body_len, &x);
    return web__respond(wsi, h, resp.status, resp.content_type, resp.body,
                        resp.body ? resp.body_len : 0, resp.body, &x);
}

/* ---- uploads: one API path's body streamed to a file ---- */

static bool web_is_upload(const pw_web *w, const web_http *h)
{
    return w->upload_path && h->is_api && strcmp(h->method, "POST") == 0 &&
           strcmp(h->path, w->upload_path) == 0;
}

static uint64_t web_body_limit(const pw_web *w, const web_http *h)
{
    return web_is_upload(w, h) ? w->upload_max : w->max_body;
}

/* The file an upload goes to, made only for a request that will reach the handler: a refused
 * one must not be able to fill the disk. The dispatch checks the same again. */
static void web_upload_open(pw_web *w, web_http *h)
{
    if (web__state_changing(h->method) && !web__origin_allowed(w, h->origin, h->host))
        return;
    h->admin = web__logged_in(w, h->cookie);
    if (!web__access_ok(w, h))
        return;
    size_t n = strlen(w->upload_dir) + 32;
    h->upload_file = pw_xmalloc(n);
    snprintf(h->upload_file, n, "%s/upload-XXXXXX", w->upload_dir);
    h->upload_fd = mkstemp(h->upload_file); /* mode 0600: it may hold secrets */
    if (h->upload_fd >= 0)
        fcntl(h->upload_fd, F_SETFD, FD_CLOEXEC);
    if (h->upload_fd < 0) {
        h->upload_errno = errno;
        free(h->upload_file);
        h->upload_file = NULL;
        return;
    }
    h->upload_open = true;
}

static int web_dispatch(pw_web *w, struct lws *wsi, web_http *h)
{
    /* lws 4.1 reports an empty body (BODY with len 0, then BODY_COMPLETION) even for a POST
     * with Content-Length: 0, which was answered when its headers arrived. */
    if (h->dispatched)
        return 0;
    h->dispatched = true;
    if (h->too_large) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body too large: the limit is %llu bytes",
                 (unsigned long long)web_body_limit(w, h));
        return web__respond_error(wsi, h, 413, msg, NULL, NULL);
    }
    if (h->upload_open) {
        close(h->upload_fd);
        h->upload_open = false;
    }
    if (h->upload_errno) {
        web_upload_drop(h);
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot store the upload on the appliance: %s",
                 strerror(h->upload_errno));
        return web__respond_error(wsi, h, h->upload_errno == ENOSPC ? 507 : 500, msg, NULL, NULL);
    }
    if (!h->is_api)
        return web_serve_asset(wsi, h);
    /* Cross-site requests could otherwise ride on the browser's session cookie. */
    if (web__state_changing(h->method) && !web__origin_allowed(w, h->origin, h->host))
        return web__respond_error(wsi, h, 403,
                                  "cross-origin request refused: the Origin header must name "
                                  "this site",
                                  "origin", NULL);
    h->admin = web__logged_in(w, h->cookie);
    if (strncmp(h->path, "/api/auth/", 10) == 0)
        return web__login_endpoint(w, wsi, h);
    if (!web__access_ok(w, h))
        return web__respond_error(wsi, h, 401,
                                  web__auth_setup_required(w->auth)
                                      ? "login required: set the admin password first"
                                      : "login required",
                                  NULL, NULL);
    return web_call_api(w, wsi, h);
}

static int web_http_begin(pw_web *w, struct lws *wsi, web_http *h, const char *uri, size_t len)
{
    web_http_reset(h);
    h->active = true;
    h->wsi = wsi;
    char *uri_ptr;
    int uri_len;
    const char *method = web_method_name(lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len));
    h->path = pw_xmalloc(len + 1);
    memcpy(h->path, uri, len);
    h->path[len] = '\0';
    h->query = web__query_dup(wsi);
    h->origin = web__hdr_dup(wsi, WSI_TOKEN_ORIGIN);
    h->cookie = web__hdr_dup(wsi, WSI_TOKEN_HTTP_COOKIE);
    h->host = web__hdr_dup(wsi, WSI_TOKEN_HOST);
    lws_get_peer_simple(wsi, h->peer, sizeof(h->peer));
    /* /metrics is the Prometheus convention; the server's handler answers it like the API. */
    h->is_api = strcmp(h->path, "/api") == 0 || strncmp(h->path, "/api/", 5) == 0 ||
                strcmp(h->path, "/metrics") == 0;
    if (!method)
        return web__respond_error(wsi, h, 405, "method not allowed", NULL, NULL);
    pw_strlcpy(h->method, method, sizeof(h->method));
    h->is_head = strcmp(method, "HEAD") == 0;

    char clen[32];
    if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char *e;
        unsigned long long n = strtoull(clen, &e, 10);
        if (*e || clen[0] == '-')
            return web__respond_error(wsi, h, 400, "bad Content-Length", NULL, NULL);
        h->expect_len = (size_t)n;
    }
    if (h->expect_len == 0)
        return web_dispatch(w, wsi, h);
    /* A body follows: answer only after lws has read all of it (an early answer would leave
     * the rest to be parsed as the next request). An oversized one is read and dropped. */
    if (h->expect_len > web_body_limit(w, h))
        h->too_large = true;
    else if (web_is_upload(w, h))
        web_upload_open(w, h);
    else
        h->body = pw_xmalloc(h->expect_len + 1);
    return 0;
}

static void web_http_body(pw_web *w, web_http *h, const void *in, size_t len)
{
    if (h->too_large || h->dispatched || len == 0)
        return;
    if (h->body_len + len > web_body_limit(w, h) || h->body_len + len > h->expect_len) {
        h->too_large = true;
        web_upload_drop(h);
        free(h->body);
        h->body = NULL;
        h->body_len = 0;
        return;
    }
    if (web_is_upload(w, h)) {
        /* A refused upload (no file) is read and dropped; its answer says why. */
        if (h->upload_open && !h->upload_errno)
            h->upload_errno = pw_write_all(h->upload_fd, in, len) != 0 ? errno : 0;
        h->body_len += len;
        return;
    }
    memcpy(h->body + h->body_len, in, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
}

static int web_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    pw_web *w = web_of(wsi);
    web_http *h = user;

    switch (reason) {
    case LWS_CALLBACK_WSI_CREATE:
        web__ptrs_add(&w->live_wsi, wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* Also comes for wsi that had no CREATE (the listener): only ours are removed. */
        web__ptrs_remove(&w->live_wsi, wsi);
        return 0;
    case LWS_CALLBACK_HTTP:
        return web_http_begin(w, wsi, h, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        if (h && h->active)
            web_http_body(w, h, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return h && h->active ? web_dispatch(w, wsi, h) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (h && h->reply_ready)
            return web_send_reply(wsi, h);
        return h ? web_write_body(w, wsi, h) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (h)
            web_http_reset(h);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- WebSocket ---- */

/* Decides a WebSocket upgrade: only on /ws, only from a page of this site (browsers send the
 * Origin even for WebSockets, which have no same-origin rule of their own), and with a login
 * when the dashboard needs one. */
static int web_ws_filter(pw_web *w, struct lws *wsi)
{
    char uri[16];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws") != 0)
        return 1;
    char *origin = web__hdr_dup(wsi, WSI_TOKEN_ORIGIN), *host = web__hdr_dup(wsi, WSI_TOKEN_HOST);
    char *cookie = web__hdr_dup(wsi, WSI_TOKEN_HTTP_COOKIE);
    int refuse = 0;
    if (!web__origin_allowed(w, origin, host)) {
        pw_warn(WEB_LOG, "WebSocket from origin '%s' refused", origin);
        refuse = 1;
    } else if (w->auth && w->dashboard_login && !web__logged_in(w, cookie)) {
        refuse = 1;
    }
    free(origin);
    free(host);
    free(cookie);
    return refuse;
}

static int web_ws_send(pw_web *w, struct lws *wsi, web_ws *c)
{
    if (!w->doc || c->sent_seq == w->doc_seq)
        return 0;
    /* Only the newest document is ever sent; lws keeps any unsent tail itself and calls back
     * only when it is flushed, so a slow client skips what it missed. */
    if (lws_write(wsi, w->doc + LWS_PRE, w->doc_len, LWS_WRITE_TEXT) < (int)w->doc_len)
        return -1;
    c->sent_seq = w->doc_seq;
    return 0;
}

static int web_ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    pw_web *w = web_of(wsi);
    web_ws *c = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return web_ws_filter(w, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        c->sent_seq = 0;
        c->counted = true;
        w->clients++;
        if (w->doc)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return web_ws_send(w, wsi, c);
    case LWS_CALLBACK_CLOSED:
        if (c && c->counted) {
            c->counted = false;
            w->clients--;
        }
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return 0; /* clients only listen; pings are answered by lws */
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
