/* WebSocket endpoints and clients for device protocols (pw_web_ws.h) on the web front's
 * libwebsockets context: an upgrade is decided (path, subprotocol, HTTP Basic, the owner's accept
 * callback) before lws answers 101, messages are joined and capped, sends are queued per
 * connection and liveness is checked with our own pings. */
#include "pw_web_ws.h"

#include "pw_util.h"
#include "web_int.h"

#include <mbedtls/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_LOG             "web-ws"
#define WS_HTTP_PROTOCOL   "pw-ws-http"
#define WS_CLIENT_PROTOCOL "pw-ws-client"
#define WS_DEF_MESSAGE     (64 * 1024)
#define WS_DEF_QUEUED      (1024 * 1024)
#define WS_DEF_PING_S      30
#define WS_DEF_PONG_S      10
#define WS_CLOSE_FLUSH_S   10  /* a closing connection may take this long to flush its queue */
#define WS_IDENTITY_MAX    256 /* bytes, decoded */
#define WS_CRED_MAX        512 /* bytes of a decoded Basic credential */
#define WS_WHY             80

enum ws_state {
    WS_PENDING, /* accepted at the upgrade, or a client still connecting */
    WS_OPEN,
    WS_CLOSING, /* pw_web_ws_close or a limit: sends fail, the close is on its way */
    WS_DEAD,    /* closed was reported; only waits for our own stack frames to unwind */
};

/* One queued message, LWS_PRE bytes of headroom before the text. */
typedef struct ws_msg {
    struct ws_msg *next;
    size_t len;
    unsigned char buf[];
} ws_msg;

/* What lws points at for a vhost's whole life (its protocol list, the vhost user). lws may call
 * into a vhost for a while after it was destroyed, so this outlives the endpoint and is freed
 * only with the pw_web. */
typedef struct ws_vhost {
    struct ws_vhost *next;
    pw_web *w;
    pw_web_ws_ep *ep; /* NULL for a client vhost, and once the endpoint is closed */
    struct lws_vhost *vh;
    bool client;
    char *ca_file; /* client vhosts: the CA file servers are checked with ("" = system) */
    char *subprotocol;
    char name[32];
    lws_sorted_usec_list_t sul; /* the deferred lws_vhost_destroy */
    struct lws_protocols protocols[3];
} ws_vhost;

struct pw_web_ws_ep {
    pw_web_ws_ep *next;
    pw_web *w;
    ws_vhost *vhost;
    char *prefix; /* always ends with '/' */
    char *subprotocol;
    pw_web_ws_limits limits;
    pw_web_ws_handlers h;
    uint16_t port;
};

struct pw_web_ws {
    pw_web_ws *prev, *next;
    pw_web *w;
    struct lws *wsi;  /* NULL once detached (closed reported, or the endpoint closed) */
    pw_web_ws_ep *ep; /* NULL for a client */
    pw_web_ws_handlers h;
    pw_web_ws_limits limits;
    void *conn_ud;
    enum ws_state state;
    unsigned busy;     /* calls into the owner on the stack: free only when none is */
    bool in_connect;   /* inside lws_client_connect_via_info: no callbacks to the owner yet */
    char *subprotocol; /* client: what the server must choose */
    char *auth;        /* client: "Basic ..." or NULL */

    char *rx; /* the message being joined */
    size_t rx_len, rx_cap;

    ws_msg *tx_head, *tx_tail;
    size_t queued;
    bool ping_due, awaiting_pong;
    bool close_now; /* the close reason is set: the timer callback fails the connection */
    uint64_t last_rx_ms, ping_sent_ms;

    uint16_t close_code;
    char close_reason[124]; /* a close frame carries at most 123 bytes of reason */
    char why[WS_WHY];       /* why we closed, for the closed callback ("" = not us) */
    int peer_code;          /* the peer's close code, 0 = none seen */
};

typedef struct web_wsx {
    ws_vhost *vhosts;
    pw_web_ws_ep *eps;
    pw_web_ws *conns;
    unsigned seq;
} web_wsx;

static int ws_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len);
static int ws_server_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);
static int ws_client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);

/* ---- bookkeeping ---- */

static pw_web *ws_web(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static web_wsx *ws_set(pw_web *w)
{
    if (!w->wsx)
        w->wsx = pw_xcalloc(1, sizeof(*w->wsx));
    return w->wsx;
}

static uint64_t ws_now(const pw_web_ws *ws)
{
    return uv_now(ws->w->loop);
}

static void ws_limits(pw_web_ws_limits *l)
{
    if (!l->max_message)
        l->max_message = WS_DEF_MESSAGE;
    if (!l->max_queued)
        l->max_queued = WS_DEF_QUEUED;
    if (!l->ping_s)
        l->ping_s = WS_DEF_PING_S;
    else if (l->ping_s == PW_WEB_WS_NO_PING)
        l->ping_s = 0; /* from here on 0 means never */
    if (!l->pong_timeout_s)
        l->pong_timeout_s = WS_DEF_PONG_S;
}

static pw_web_ws *ws_new(pw_web *w, struct lws *wsi, const pw_web_ws_handlers *h,
                         const pw_web_ws_limits *limits)
{
    web_wsx *x = ws_set(w);
    pw_web_ws *ws = pw_xcalloc(1, sizeof(*ws));
    ws->w = w;
    ws->wsi = wsi;
    ws->h = *h;
    ws->limits = *limits;
    ws->state = WS_PENDING;
    ws->next = x->conns;
    if (x->conns)
        x->conns->prev = ws;
    x->conns = ws;
    return ws;
}

static void ws_unlink(pw_web_ws *ws)
{
    web_wsx *x = ws->w->wsx;
    if (ws->prev)
        ws->prev->next = ws->next;
    else if (x->conns == ws)
        x->conns = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    ws->prev = ws->next = NULL;
}

static void ws_free(pw_web_ws *ws)
{
    while (ws->tx_head) {
        ws_msg *m = ws->tx_head;
        ws->tx_head = m->next;
        free(m);
    }
    free(ws->rx);
    free(ws->subprotocol);
    if (ws->auth)
        explicit_bzero(ws->auth, strlen(ws->auth));
    free(ws->auth);
    free(ws);
}

static void ws_detach(pw_web_ws *ws)
{
    if (ws->wsi)
        lws_set_opaque_user_data(ws->wsi, NULL);
    ws->wsi = NULL;
}

/* The connection is over for its owner: reports closed once, then frees ws unless one of our
 * calls into the owner is still on the stack (that caller frees it on the way out). */
static void ws_finish(pw_web_ws *ws, const char *why)
{
    if (ws->state == WS_DEAD)
        return;
    ws->state = WS_DEAD;
    ws_detach(ws);
    ws_unlink(ws);
    if (ws->in_connect) {
        pw_strlcpy(ws->why, why, sizeof(ws->why));
        return; /* pw_web_ws_connect reports the failure itself */
    }
    if (ws->h.closed) {
        ws->busy++;
        ws->h.closed(ws->h.ud, ws->conn_ud, why);
        ws->busy--;
    }
    if (!ws->busy)
        ws_free(ws);
}

/* After a call into the owner returns: false when ws is gone (then freed here if due). */
static bool ws_after_call(pw_web_ws *ws)
{
    ws->busy--;
    if (ws->state != WS_DEAD)
        return true;
    if (!ws->busy)
        ws_free(ws);
    return false;
}

/* Why the connection ended, as the closed callback tells it. */
static void ws_closed_why(pw_web_ws *ws, char *out, size_t size)
{
    if (ws->why[0])
        pw_strlcpy(out, ws->why, size);
    else if (ws->peer_code)
        snprintf(out, size, "closed by peer %d", ws->peer_code);
    else
        pw_strlcpy(out, "connection lost", size);
}

/* Closes from inside one of the connection's own lws callbacks: the caller returns -1. */
static int ws_fail(pw_web_ws *ws, struct lws *wsi, uint16_t code, const char *reason,
                   const char *why)
{
    if (!ws->why[0])
        pw_strlcpy(ws->why, why, sizeof(ws->why));
    if (ws->state != WS_DEAD)
        ws->state = WS_CLOSING;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)(uintptr_t)reason,
                     strlen(reason));
    return -1;
}

/* ---- liveness ---- */

static void ws_arm(struct lws *wsi, uint64_t ms)
{
    lws_set_timer_usecs(wsi, (lws_usec_t)ms * 1000);
}

static void ws_heard(pw_web_ws *ws)
{
    ws->last_rx_ms = ws_now(ws);
    ws->awaiting_pong = false;
}

static void ws_opened(pw_web_ws *ws, struct lws *wsi)
{
    ws_heard(ws);
    if (ws->limits.ping_s)
        ws_arm(wsi, (uint64_t)ws->limits.ping_s * 1000);
    if (ws->tx_head || ws->state == WS_CLOSING)
        lws_callback_on_writable(wsi);
}

/* Pings after ping_s of silence; anything heard meanwhile (a message, a pong) proves the peer
 * alive, so a busy connection is never pinged and a quiet one is pinged once per ping_s. */
static int ws_timer(pw_web_ws *ws, struct lws *wsi)
{
    uint64_t now = ws_now(ws), ping_ms = (uint64_t)ws->limits.ping_s * 1000;
    uint64_t pong_ms = (uint64_t)ws->limits.pong_timeout_s * 1000;
    if (ws->close_now)
        return -1;
    if (!ping_ms || ws->state == WS_PENDING)
        return 0;
    if (ws->awaiting_pong) {
        if (now - ws->ping_sent_ms >= pong_ms)
            return ws_fail(ws, wsi, LWS_CLOSE_STATUS_GOINGAWAY, "no pong", "ping timeout");
        ws_arm(wsi, pong_ms - (now - ws->ping_sent_ms));
        return 0;
    }
    uint64_t idle = now - ws->last_rx_ms;
    if (idle < ping_ms) {
        ws_arm(wsi, ping_ms - idle);
        return 0;
    }
    ws->ping_due = true;
    ws->awaiting_pong = true;
    ws->ping_sent_ms = now;
    lws_callback_on_writable(wsi);
    ws_arm(wsi, pong_ms);
    return 0;
}

/* ---- receive and send ---- */

static int ws_receive(pw_web_ws *ws, struct lws *wsi, const void *in, size_t len)
{
    ws_heard(ws);
    if (ws->state != WS_OPEN && ws->state != WS_CLOSING)
        return 0;
    if (lws_frame_is_binary(wsi))
        return ws_fail(ws, wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text only", "binary frame");
    if (lws_is_first_fragment(wsi))
        ws->rx_len = 0;
    /* Cut as soon as the limit is passed: the rest of the message is never buffered. */
    if (len > ws->limits.max_message - ws->rx_len) {
        char why[WS_WHY];
        snprintf(why, sizeof(why), "message too big (limit %zu bytes)", ws->limits.max_message);
        return ws_fail(ws, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big", why);
    }
    if (ws->rx_len + len + 1 > ws->rx_cap) {
        size_t cap = ws->rx_cap ? ws->rx_cap : 1024;
        while (cap < ws->rx_len + len + 1)
            cap *= 2;
        ws->rx = pw_xrealloc(ws->rx, cap);
        ws->rx_cap = cap;
    }
    if (len)
        memcpy(ws->rx + ws->rx_len, in, len);
    ws->rx_len += len;
    if (!lws_is_final_fragment(wsi))
        return 0;
    size_t n = ws->rx_len;
    ws->rx[n] = '\0';
    ws->rx_len = 0;
    if (ws->state != WS_OPEN || !ws->h.message)
        return 0; /* closing: what still arrives is dropped */
    ws->busy++;
    ws->h.message(ws->h.ud, ws->conn_ud, ws->rx, n);
    if (!ws_after_call(ws))
        return -1; /* detached: let lws drop the connection now */
    /* Closed from inside the callback: answer what was queued first, then close. */
    if (ws->state == WS_CLOSING)
        lws_callback_on_writable(wsi);
    return 0;
}

/* Closes with the code and reason set by pw_web_ws_close. lws 4.1 sends our close frame only
 * for a callback that fails from a receive or timer callback: failing WRITEABLE (or an lws
 * timeout) drops the socket without one. So the close goes through the wsi's timer. */
static void ws_close_soon(pw_web_ws *ws, struct lws *wsi)
{
    lws_close_reason(wsi, (enum lws_close_status)ws->close_code, (unsigned char *)ws->close_reason,
                     strlen(ws->close_reason));
    ws->close_now = true;
    lws_set_timer_usecs(wsi, 1);
}

static int ws_writeable(pw_web_ws *ws, struct lws *wsi)
{
    if (ws->state == WS_PENDING)
        return 0;
    if (ws->ping_due) {
        /* One byte of payload: with an empty ping, lws 4.1 never reported the pong. */
        unsigned char ping[LWS_PRE + 1] = {[LWS_PRE] = 'p'};
        ws->ping_due = false;
        if (lws_write(wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 0)
            return -1;
        if (ws->tx_head || ws->state == WS_CLOSING)
            lws_callback_on_writable(wsi);
        return 0;
    }
    ws_msg *m = ws->tx_head;
    if (m) {
        ws->tx_head = m->next;
        if (!ws->tx_head)
            ws->tx_tail = NULL;
        ws->queued -= m->len;
        /* lws keeps whatever the socket did not take and calls back only once it is flushed. */
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        bool ok = n >= 0 && (size_t)n >= m->len;
        free(m);
        if (!ok) {
            pw_strlcpy(ws->why, "write failed", sizeof(ws->why));
            return -1;
        }
        if (ws->tx_head || ws->state == WS_CLOSING)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (ws->state == WS_CLOSING)
        ws_close_soon(ws, wsi);
    return 0;
}

/* Drops the connection from outside its callbacks, without waiting for the socket. */
static void ws_kill(pw_web_ws *ws, const char *why)
{
    if (!ws->why[0])
        pw_strlcpy(ws->why, why, sizeof(ws->why));
    ws->state = WS_CLOSING;
    if (ws->wsi)
        lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int pw_web_ws_send(pw_web_ws *ws, const char *text, size_t len)
{
    if (ws->state != WS_OPEN && ws->state != WS_PENDING)
        return -1;
    if (len > ws->limits.max_queued - ws->queued) {
        char why[WS_WHY];
        snprintf(why, sizeof(why), "too slow (%zu bytes queued)", ws->queued);
        pw_warn(WS_LOG, "closing a WebSocket connection: %s", why);
        ws_kill(ws, why);
        return -1;
    }
    ws_msg *m = pw_xmalloc(sizeof(*m) + LWS_PRE + len);
    m->next = NULL;
    m->len = len;
    memcpy(m->buf + LWS_PRE, text, len);
    if (ws->tx_tail)
        ws->tx_tail->next = m;
    else
        ws->tx_head = m;
    ws->tx_tail = m;
    ws->queued += len;
    if (ws->state == WS_OPEN && ws->wsi)
        lws_callback_on_writable(ws->wsi);
    return 0;
}

void pw_web_ws_close(pw_web_ws *ws, uint16_t code, const char *reason)
{
    if (ws->state == WS_CLOSING || ws->state == WS_DEAD)
        return;
    /* Codes a peer may not receive (RFC 6455, 7.4) become a plain normal closure. */
    if (code < 1000 || code == 1004 || code == 1005 || code == 1006 || code == 1015 || code > 4999)
        code = LWS_CLOSE_STATUS_NORMAL;
    ws->close_code = code;
    pw_strlcpy(ws->close_reason, reason ? reason : "", sizeof(ws->close_reason));
    snprintf(ws->why, sizeof(ws->why), "closed locally %u", (unsigned)code);
    if (ws->state == WS_PENDING && !ws->ep) {
        ws_kill(ws, ws->why); /* a client still connecting: nothing to say goodbye to */
        return;
    }
    bool pending = ws->state == WS_PENDING;
    ws->state = WS_CLOSING;
    if (pending || !ws->wsi)
        return; /* closes once established (ws_opened) */
    /* Queued messages go first; a peer that does not read is dropped after a while. */
    lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, WS_CLOSE_FLUSH_S);
    if (!ws->tx_head)
        ws_close_soon(ws, ws->wsi);
    else if (!ws->busy)
        lws_callback_on_writable(ws->wsi);
}

size_t pw_web_ws_queued(const pw_web_ws *ws)
{
    return ws->queued;
}

/* ---- lws callbacks shared by both sides ---- */

/* Handles what every one of our protocols gets: connection tracking for shutdown and the end of
 * a connection whose closed was not reported yet. Returns true when reason was handled. */
static bool ws_common(pw_web *w, struct lws *wsi, enum lws_callback_reasons reason)
{
    if (reason == LWS_CALLBACK_WSI_CREATE) {
        if (!web__ptrs_has(&w->live_wsi, wsi))
            web__ptrs_add(&w->live_wsi, wsi);
        return true;
    }
    if (reason == LWS_CALLBACK_WSI_DESTROY) {
        web__ptrs_remove(&w->live_wsi, wsi);
        pw_web_ws *ws = lws_get_opaque_user_data(wsi);
        if (ws) {
            ws->wsi = wsi;
            char why[WS_WHY];
            ws_closed_why(ws, why, sizeof(why));
            ws_finish(ws, why);
        }
        return true;
    }
    return false;
}

static int ws_closed_cb(struct lws *wsi)
{
    pw_web_ws *ws = lws_get_opaque_user_data(wsi);
    if (ws) {
        char why[WS_WHY];
        ws_closed_why(ws, why, sizeof(why));
        ws_finish(ws, why);
    }
    return 0;
}

static void ws_peer_close(pw_web_ws *ws, const unsigned char *in, size_t len)
{
    ws->peer_code = len >= 2 ? (in[0] << 8 | in[1]) : LWS_CLOSE_STATUS_NO_STATUS;
}

/* ---- endpoints: the upgrade ---- */

/* Checks the identity: lws has already percent-decoded the path (so "%2F" arrives as '/'
 * and decoding again would turn "%2541" into "A"). False for an empty one, one with '/' or a
 * control character, or one that does not fit. */
static bool ws_identity(const char *in, char *out, size_t size)
{
    size_t n = strlen(in);
    if (n == 0 || n >= size)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return false;
    }
    memcpy(out, in, n + 1);
    return true;
}

/* The identity from the request path, or false when the path is not under the prefix. */
static bool ws_path_identity(const pw_web_ws_ep *ep, struct lws *wsi, char *out, size_t size)
{
    char *uri = web__hdr_dup(wsi, WSI_TOKEN_GET_URI);
    size_t plen = strlen(ep->prefix);
    bool ok = strncmp(uri, ep->prefix, plen) == 0 && ws_identity(uri + plen, out, size);
    free(uri);
    return ok;
}

/* True when the comma-separated Sec-WebSocket-Protocol list names want. */
static bool ws_offers(struct lws *wsi, const char *want)
{
    char *list = web__hdr_dup(wsi, WSI_TOKEN_PROTOCOL);
    bool hit = false;
    size_t wl = strlen(want);
    for (char *p = list; *p && !hit;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        hit = n == wl && strncmp(p, want, n) == 0;
        p += n;
    }
    free(list);
    return hit;
}

/* Decodes "Authorization: Basic base64(user:password)". False when absent or malformed. */
static bool ws_basic(struct lws *wsi, char *cred, size_t size, char **user, char **password)
{
    char *hdr = web__hdr_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    const char *p = hdr;
    bool ok = false;
    size_t n = 0;
    if (strncasecmp(p, "basic", 5) == 0 && (p[5] == ' ' || p[5] == '\t')) {
        p += 5;
        p += strspn(p, " \t");
        size_t blen = strcspn(p, " \t");
        ok = p[blen + strspn(p + blen, " \t")] == '\0' && blen > 0 &&
             mbedtls_base64_decode((unsigned char *)cred, size - 1, &n, (const unsigned char *)p,
                                   blen) == 0;
    }
    explicit_bzero(hdr, strlen(hdr));
    free(hdr);
    if (!ok)
        return false;
    cred[n] = '\0';
    /* The user ends at the first ':' (RFC 7617); a NUL inside cannot be told apart. */
    char *colon = memchr(cred, ':', n);
    if (!colon || memchr(cred, '\0', n))
        return false;
    *colon = '\0';
    *user = cred;
    *password = colon + 1;
    return true;
}

/* Answers the request with a bodiless status; 401 carries the Basic challenge. Returns what
 * HTTP_CONFIRM_UPGRADE should return (1: answered), or -1 to hang up. */
static int ws_refuse(struct lws *wsi, unsigned status)
{
    unsigned char buf[LWS_PRE + 512];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    static const char realm[] = "Basic realm=\"phasewise\"";
    if (lws_add_http_common_headers(wsi, status, "text/plain", 0, &p, end) ||
        (status == 401 &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                     (const unsigned char *)realm, (int)strlen(realm), &p, end)) ||
        (status == 426 &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"upgrade:",
                                     (const unsigned char *)"websocket", 9, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return 1;
}

/* HTTP_CONFIRM_UPGRADE: everything is decided here, while lws can still answer with an HTTP
 * status; a connection that passes is bound to the subprotocol by lws right after. */
static int ws_upgrade(ws_vhost *v, struct lws *wsi, const char *upgrade)
{
    pw_web_ws_ep *ep = v->ep;
    pw_web *w = v->w;
    char identity[WS_IDENTITY_MAX], peer[64], cred[WS_CRED_MAX];
    char *user = "", *password = "";
    if (!ep || w->close_state != WEB_OPEN)
        return -1;
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return ws_refuse(wsi, 404);
    if (!ws_path_identity(ep, wsi, identity, sizeof(identity)))
        return ws_refuse(wsi, 404);
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    /* lws would bind a client that names no subprotocol to the vhost's default protocol, so the
     * requirement is enforced here. */
    if (!ws_offers(wsi, ep->subprotocol)) {
        pw_info(WS_LOG, "%s (%s) refused: does not offer subprotocol %s", identity, peer,
                ep->subprotocol);
        return ws_refuse(wsi, 400);
    }
    bool basic = ws_basic(wsi, cred, sizeof(cred), &user, &password);
    pw_web_ws_hello hello = {
        .identity = identity,
        .peer = peer,
        .has_basic = basic,
        .user = basic ? user : "",
        .password = basic ? password : "",
    };
    pw_web_ws *ws = ws_new(w, wsi, &ep->h, &ep->limits);
    ws->ep = ep;
    lws_set_opaque_user_data(wsi, ws);
    ws->busy++;
    enum pw_web_ws_verdict verdict = ep->h.accept(ep->h.ud, &hello, ws, &ws->conn_ud);
    explicit_bzero(cred, sizeof(cred));
    if (!ws_after_call(ws))
        return -1; /* the endpoint was closed from inside accept */
    if (verdict == PW_WEB_WS_ACCEPT)
        return 0;
    /* Never accepted: no closed callback for it. */
    ws->state = WS_DEAD;
    ws_detach(ws);
    ws_unlink(ws);
    ws_free(ws);
    unsigned status = verdict == PW_WEB_WS_UNAUTHORIZED ? 401
                      : verdict == PW_WEB_WS_NOT_FOUND  ? 404
                                                        : 403;
    pw_info(WS_LOG, "%s (%s) refused with %u", identity, peer, status);
    return ws_refuse(wsi, status);
}

/* protocols[0] of an endpoint: plain HTTP and the upgrade decision. */
static int ws_http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    pw_web *w = ws_web(wsi);
    if (ws_common(w, wsi, reason))
        return 0;
    ws_vhost *v = lws_vhost_user(lws_get_vhost(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return ws_upgrade(v, wsi, in);
    case LWS_CALLBACK_HTTP: {
        /* Plain HTTP here is a device that forgot to upgrade (426) or a stray request (404). */
        char identity[WS_IDENTITY_MAX];
        bool ours = v->ep && ws_path_identity(v->ep, wsi, identity, sizeof(identity));
        if (ws_refuse(wsi, ours ? 426 : 404) < 0)
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* never a WebSocket on this protocol (no subprotocol, or its name) */
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* The endpoint's subprotocol: an accepted connection. */
static int ws_server_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    pw_web *w = ws_web(wsi);
    if (ws_common(w, wsi, reason))
        return 0;
    pw_web_ws *ws = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws && ws->state != WS_DEAD ? 0 : 1;
    case LWS_CALLBACK_ESTABLISHED:
        if (!ws)
            return -1;
        if (ws->state == WS_PENDING)
            ws->state = WS_OPEN;
        ws_opened(ws, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return ws ? ws_receive(ws, wsi, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (ws)
            ws_heard(ws);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws ? ws_writeable(ws, wsi) : -1;
    case LWS_CALLBACK_TIMER:
        return ws ? ws_timer(ws, wsi) : -1; /* detached by pw_web_ws_ep_close: closing */
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (ws)
            ws_peer_close(ws, in, len);
        return 0;
    case LWS_CALLBACK_CLOSED:
        return ws_closed_cb(wsi);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- endpoints: open and close ---- */

static ws_vhost *ws_vhost_new(pw_web *w)
{
    web_wsx *x = ws_set(w);
    ws_vhost *v = pw_xcalloc(1, sizeof(*v));
    v->w = w;
    snprintf(v->name, sizeof(v->name), "pw-ws-%u", ++x->seq);
    v->next = x->vhosts;
    x->vhosts = v;
    return v;
}

static bool ws_token_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s))
            return false;
    return true;
}

int pw_web_ws_listen(pw_web *w, const pw_web_ws_ep_opts *o, pw_web_ws_ep **out, char *err,
                     size_t err_size)
{
    web_ptrs before = {0};
    const char *addr = o->addr && o->addr[0] ? o->addr : "127.0.0.1";
    *out = NULL;
    if (w->close_state != WEB_OPEN || !w->ctx) {
        snprintf(err, err_size, "the web front is closing");
        return -1;
    }
    if (!o->path_prefix || o->path_prefix[0] != '/') {
        snprintf(err, err_size, "a WebSocket endpoint needs a path prefix starting with '/'");
        return -1;
    }
    if (!ws_token_ok(o->subprotocol)) {
        snprintf(err, err_size, "a WebSocket endpoint needs one subprotocol name (\"ocpp1.6\")");
        return -1;
    }
    if (!o->handlers.accept) {
        snprintf(err, err_size, "a WebSocket endpoint needs an accept callback");
        return -1;
    }
    if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
        snprintf(err, err_size, "wss:// needs both a certificate and a private key file");
        return -1;
    }

    ws_vhost *v = ws_vhost_new(w);
    v->subprotocol = pw_xstrdup(o->subprotocol);
    v->protocols[0] = (struct lws_protocols){WS_HTTP_PROTOCOL, ws_http_cb, 0, 0, 0, NULL, 0};
    v->protocols[1] = (struct lws_protocols){v->subprotocol, ws_server_cb, 0, 0, 0, NULL, 0};

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.port = o->port;
    info.iface = addr;
    info.protocols = v->protocols;
    info.vhost_name = v->name;
    info.user = v;
    if (o->tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = o->tls_cert;
        info.ssl_private_key_filepath = o->tls_key;
        info.alpn = "http/1.1";
    }
    web__snapshot_handles(w, &before);
    v->vh = lws_create_vhost(w->ctx, &info);
    web__note_lws_handles(w, &before);
    free(before.v);
    if (!v->vh) {
        /* v stays on the list: lws may still hold it until the context goes. */
        if (o->tls_cert)
            snprintf(err, err_size,
                     "cannot serve wss:// on %s:%u: the address is in use or not local, or the "
                     "certificate %s or key %s cannot be used",
                     addr, (unsigned)o->port, o->tls_cert, o->tls_key);
        else
            snprintf(err, err_size, "cannot listen on %s:%u (address in use or not local?)", addr,
                     (unsigned)o->port);
        return -1;
    }

    pw_web_ws_ep *ep = pw_xcalloc(1, sizeof(*ep));
    size_t plen = strlen(o->path_prefix);
    ep->w = w;
    ep->vhost = v;
    ep->prefix = pw_xmalloc(plen + 2);
    memcpy(ep->prefix, o->path_prefix, plen + 1);
    if (ep->prefix[plen - 1] != '/')
        memcpy(ep->prefix + plen, "/", 2); /* "/ocpp" must not take "/ocppX" */
    ep->subprotocol = v->subprotocol;
    ep->limits = o->limits;
    ws_limits(&ep->limits);
    ep->h = o->handlers;
    ep->port = (uint16_t)lws_get_vhost_listen_port(v->vh);
    v->ep = ep;
    web_wsx *x = ws_set(w);
    ep->next = x->eps;
    x->eps = ep;
    pw_info(WS_LOG, "listening on %s://%s:%u%s (subprotocol %s)", o->tls_cert ? "wss" : "ws", addr,
            (unsigned)ep->port, ep->prefix, ep->subprotocol);
    *out = ep;
    return 0;
}

uint16_t pw_web_ws_ep_port(const pw_web_ws_ep *ep)
{
    return ep->port;
}

static void ws_vhost_destroy_cb(lws_sorted_usec_list_t *sul)
{
    ws_vhost *v = (ws_vhost *)(void *)((char *)sul - offsetof(ws_vhost, sul));
    if (v->vh && v->w->close_state == WEB_OPEN)
        lws_vhost_destroy(v->vh);
    v->vh = NULL;
}

/* Reports closed for ws at once and lets lws drop its connection in the background. */
static void ws_abandon(pw_web_ws *ws, const char *why)
{
    if (ws->wsi && (ws->state == WS_OPEN || ws->state == WS_CLOSING)) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"going away", 10);
        /* Detached, so its timer callback (ws_server_cb) fails it and the close frame goes
         * out; inside its own message callback the receive handler fails it right after. */
        if (!ws->busy)
            lws_set_timer_usecs(ws->wsi, 1);
    } else if (ws->wsi) {
        lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    ws_finish(ws, why);
}

void pw_web_ws_ep_close(pw_web_ws_ep *ep)
{
    pw_web *w = ep->w;
    web_wsx *x = w->wsx;
    for (pw_web_ws_ep **pp = &x->eps; *pp; pp = &(*pp)->next)
        if (*pp == ep) {
            *pp = ep->next;
            break;
        }
    ep->vhost->ep = NULL;
    /* From the head each time: a closed callback may end other connections too. */
    for (pw_web_ws *ws = x->conns; ws;) {
        if (ws->ep != ep) {
            ws = ws->next;
            continue;
        }
        ws_abandon(ws, "endpoint closed");
        ws = x->conns;
    }
    /* Never destroy a vhost from inside one of its own callbacks (the owner may be closing the
     * endpoint from a message callback): lws does it on its next timer turn. */
    if (w->close_state == WEB_OPEN && ep->vhost->vh)
        lws_sul_schedule(w->ctx, 0, &ep->vhost->sul, ws_vhost_destroy_cb, 1);
    pw_info(WS_LOG, "endpoint on port %u closed", (unsigned)ep->port);
    free(ep->prefix);
    free(ep);
}

/* ---- clients ---- */

static ws_vhost *ws_client_vhost(pw_web *w, const char *ca_file, char *err, size_t err_size)
{
    const char *key = ca_file ? ca_file : "";
    for (ws_vhost *v = ws_set(w)->vhosts; v; v = v->next)
        if (v->client && v->vh && strcmp(v->ca_file, key) == 0)
            return v;
    web_ptrs before = {0};
    ws_vhost *v = ws_vhost_new(w);
    v->client = true;
    v->ca_file = pw_xstrdup(key);
    v->protocols[0] = (struct lws_protocols){WS_CLIENT_PROTOCOL, ws_client_cb, 0, 0, 0, NULL, 0};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.protocols = v->protocols;
    info.vhost_name = v->name;
    info.user = v;
    info.client_ssl_ca_filepath = ca_file;
    web__snapshot_handles(w, &before);
    v->vh = lws_create_vhost(w->ctx, &info);
    web__note_lws_handles(w, &before);
    free(before.v);
    if (!v->vh) {
        snprintf(err, err_size, "cannot set up WebSocket clients%s%s", ca_file ? " with CA " : "",
                 ca_file ? ca_file : "");
        return NULL;
    }
    return v;
}

static int ws_client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    pw_web *w = ws_web(wsi);
    if (ws_common(w, wsi, reason))
        return 0;
    pw_web_ws *ws = lws_get_opaque_user_data(wsi);
    if (ws && !ws->wsi)
        ws->wsi = wsi; /* callbacks that come before lws_client_connect_via_info returns */
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        if (ws && ws->auth &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                         (const unsigned char *)ws->auth, (int)strlen(ws->auth), p,
                                         end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: {
        if (!ws)
            return 1;
        char chosen[64] = "";
        lws_hdr_copy(wsi, chosen, sizeof(chosen), WSI_TOKEN_PROTOCOL);
        if (strcmp(chosen, ws->subprotocol) != 0) {
            snprintf(ws->why, sizeof(ws->why), "server did not choose subprotocol %s",
                     ws->subprotocol);
            return 1;
        }
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!ws)
            return -1;
        if (ws->state == WS_PENDING)
            ws->state = WS_OPEN;
        if (ws->h.open) {
            ws->busy++;
            ws->h.open(ws->h.ud, ws->conn_ud, ws);
            if (!ws_after_call(ws))
                return -1;
        }
        ws_opened(ws, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (ws) {
            char why[WS_WHY];
            if (ws->why[0])
                pw_strlcpy(why, ws->why, sizeof(why));
            else
                snprintf(why, sizeof(why), "connect failed: %s",
                         in ? (const char *)in : "unknown error");
            ws_finish(ws, why);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return ws ? ws_receive(ws, wsi, in, len) : -1;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        if (ws)
            ws_heard(ws);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return ws ? ws_writeable(ws, wsi) : -1;
    case LWS_CALLBACK_TIMER:
        return ws ? ws_timer(ws, wsi) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (ws)
            ws_peer_close(ws, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        return ws_closed_cb(wsi);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* "Basic " + base64(user:password), malloc'd. */
static char *ws_basic_header(const char *user, const char *password)
{
    size_t ul = strlen(user), pl = password ? strlen(password) : 0, n = ul + 1 + pl;
    unsigned char *cred = pw_xmalloc(n + 1);
    memcpy(cred, user, ul);
    cred[ul] = ':';
    if (pl)
        memcpy(cred + ul + 1, password, pl);
    size_t cap = 6 + 4 * ((n + 2) / 3) + 1, olen = 0;
    char *hdr = pw_xmalloc(cap);
    memcpy(hdr, "Basic ", 6);
    mbedtls_base64_encode((unsigned char *)hdr + 6, cap - 6, &olen, cred, n);
    hdr[6 + olen] = '\0';
    explicit_bzero(cred, n);
    free(cred);
    return hdr;
}

int pw_web_ws_connect(pw_web *w, const pw_web_ws_client_opts *o, char *err, size_t err_size)
{
    char url[512], path[512], host[300];
    const char *prot, *address, *upath;
    int port;
    if (w->close_state != WEB_OPEN || !w->ctx) {
        snprintf(err, err_size, "the web front is closing");
        return -1;
    }
    if (!o->url || pw_strlcpy(url, o->url, sizeof(url)) >= sizeof(url) ||
        lws_parse_uri(url, &prot, &address, &port, &upath) || !address[0]) {
        snprintf(err, err_size, "cannot use WebSocket URL '%s'", o->url ? o->url : "");
        return -1;
    }
    bool tls = strcmp(prot, "wss") == 0;
    if (!tls && strcmp(prot, "ws") != 0) {
        snprintf(err, err_size, "WebSocket URL '%s' must start with ws:// or wss://", o->url);
        return -1;
    }
    if (!ws_token_ok(o->subprotocol)) {
        snprintf(err, err_size, "a WebSocket client needs one subprotocol to offer");
        return -1;
    }
    /* lws_parse_uri gives 80 for any scheme it does not know as TLS. */
    if (tls && port == 80 && !strstr(o->url + 6, ":80"))
        port = 443;
    snprintf(path, sizeof(path), "/%s", upath);
    if ((tls && port == 443) || (!tls && port == 80))
        snprintf(host, sizeof(host), "%s", address);
    else
        snprintf(host, sizeof(host), "%s:%d", address, port);
    ws_vhost *v = ws_client_vhost(w, tls ? o->ca_file : NULL, err, err_size);
    if (!v)
        return -1;

    pw_web_ws_limits limits = o->limits;
    ws_limits(&limits);
    pw_web_ws *ws = ws_new(w, NULL, &o->handlers, &limits);
    ws->conn_ud = o->conn_ud;
    ws->subprotocol = pw_xstrdup(o->subprotocol);
    if (o->user)
        ws->auth = ws_basic_header(o->user, o->password);

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = w->ctx;
    ci.vhost = v->vh;
    ci.address = address;
    ci.port = port;
    ci.path = path;
    ci.host = host;
    ci.protocol = o->subprotocol;
    ci.local_protocol_name = WS_CLIENT_PROTOCOL;
    ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    ci.opaque_user_data = ws;
    /* Callbacks that come before lws returns must not reach the owner: a failure here is
     * reported by the return value instead. */
    ws->in_connect = true;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    ws->in_connect = false;
    if (wsi && ws->state != WS_DEAD) {
        ws->wsi = wsi;
        if (!web__ptrs_has(&w->live_wsi, wsi))
            web__ptrs_add(&w->live_wsi, wsi);
        return 0;
    }
    snprintf(err, err_size, "cannot connect to %s: %s", o->url,
             ws->why[0] ? ws->why : "libwebsockets refused the connection");
    if (ws->state != WS_DEAD) {
        ws->state = WS_DEAD;
        ws_unlink(ws);
    }
    ws_free(ws);
    return -1;
}

/* ---- shutdown ---- */

void web__ws_shutdown(pw_web *w)
{
    if (!w->wsx)
        return;
    for (pw_web_ws *ws = w->wsx->conns; ws; ws = ws->next) {
        if (ws->state != WS_DEAD)
            ws->state = WS_CLOSING;
        if (!ws->why[0])
            pw_strlcpy(ws->why, "shutting down", sizeof(ws->why));
    }
}

void web__ws_free(pw_web *w)
{
    web_wsx *x = w->wsx;
    if (!x)
        return;
    while (x->conns)
        ws_finish(x->conns, "shutting down");
    while (x->eps) {
        pw_web_ws_ep *ep = x->eps;
        x->eps = ep->next;
        free(ep->prefix);
        free(ep);
    }
    while (x->vhosts) {
        ws_vhost *v = x->vhosts;
        x->vhosts = v->next;
        free(v->ca_file);
        free(v->subprotocol);
        free(v);
    }
    free(x);
    w->wsx = NULL;
}
