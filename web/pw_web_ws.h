/* WebSocket endpoints and clients for device protocols (OCPP 1.6J): whole text messages in and
 * out, so that no other module touches libwebsockets. An endpoint listens on its own address
 * and port (ws:// or wss://), takes connections under a path prefix with one required
 * subprotocol, and checks HTTP Basic credentials at the upgrade; a client connects out (the
 * simulator's charge points, an upstream CSMS). Everything runs on the loop thread. */
#ifndef PW_WEB_WS_H
#define PW_WEB_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pw_web.h"

typedef struct pw_web_ws pw_web_ws;       /* one connection, either side */
typedef struct pw_web_ws_ep pw_web_ws_ep; /* a listening endpoint */

/* What a connecting peer presented at the upgrade (borrowed for the accept call). */
typedef struct pw_web_ws_hello {
    /* The path after the prefix, percent-decoded ("CP-17"); never empty, never holds '/' (also
     * not as "%2F") or a control character, at most 255 bytes. The query is not part of it. */
    const char *identity;
    const char *peer;     /* the peer's address, for logs */
    bool has_basic;       /* an Authorization: Basic header that decoded to "user:password"
                             (base64, no NUL inside, user up to the first ':') */
    const char *user;     /* its user name ("" without) */
    const char *password; /* its password ("" without); may contain ':' */
} pw_web_ws_hello;

/* Answers of the accept callback. */
enum pw_web_ws_verdict {
    PW_WEB_WS_ACCEPT = 0,
    PW_WEB_WS_UNAUTHORIZED = 401, /* refused at the upgrade with 401 and
                                     WWW-Authenticate: Basic realm="phasewise" */
    PW_WEB_WS_FORBIDDEN = 403,    /* (also any value not listed here) */
    PW_WEB_WS_NOT_FOUND = 404,
};

typedef struct pw_web_ws_handlers {
    void *ud;
    /* A peer asks to connect (endpoints only; required). Only called for a path under the
     * prefix with a valid identity whose client offers the subprotocol; everything else was
     * refused before (404, or 400 without the subprotocol). On PW_WEB_WS_ACCEPT sets *conn_ud,
     * which the other callbacks get; ws may be kept and used (sends wait until the handshake
     * is done). Anything else refuses the upgrade with that HTTP status, and ws is then
     * invalid as soon as accept returns (no closed follows). */
    enum pw_web_ws_verdict (*accept)(void *ud, const pw_web_ws_hello *hello, pw_web_ws *ws,
                                     void **conn_ud);
    /* The connection is open (clients only: endpoints open at accept). */
    void (*open)(void *ud, void *conn_ud, pw_web_ws *ws);
    /* One whole text message (fragments joined; NUL-terminated for convenience). text is
     * borrowed for the call. pw_web_ws_send/close on this or any connection, and
     * pw_web_ws_ep_close, may be called from here. Nothing is delivered once closing. */
    void (*message)(void *ud, void *conn_ud, const char *text, size_t len);
    /* The connection is gone (closed by either side, failed to connect, or too slow); ws is
     * invalid from now on. Called exactly once per accepted or opened connection, and once for a
     * client that never opened. why is a short text, borrowed for the call: "closed by peer
     * 1000", "closed locally 4000" (pw_web_ws_close), "message too big (limit N bytes)",
     * "binary frame", "ping timeout", "too slow (N bytes queued)", "endpoint closed",
     * "shutting down", "connection lost", "connect failed: ...", "server did not choose
     * subprotocol X". */
    void (*closed)(void *ud, void *conn_ud, const char *why);
} pw_web_ws_handlers;

/* ping_s: no ping at all. */
#define PW_WEB_WS_NO_PING UINT32_MAX

/* Per-connection limits; a zero field takes the default in parentheses. */
typedef struct pw_web_ws_limits {
    size_t max_message;      /* a longer message closes the connection with 1009 and is never
                                delivered (65536) */
    size_t max_queued;       /* bytes waiting to be sent; a send beyond it fails and the
                                connection is dropped as too slow (1 MiB) */
    uint32_t ping_s;         /* a ping after this much silence, i.e. nothing received (30);
                                PW_WEB_WS_NO_PING = never */
    uint32_t pong_timeout_s; /* nothing heard this long after a ping: closed with 1001,
                                "ping timeout" (10) */
} pw_web_ws_limits;

/* All strings are borrowed for the pw_web_ws_listen call. */
typedef struct pw_web_ws_ep_opts {
    const char *addr; /* listen address; NULL or "" = 127.0.0.1 (never the LAN by default) */
    uint16_t port;    /* 0 = pick a free one (pw_web_ws_ep_port) */
    const char *tls_cert, *tls_key; /* PEM files: wss://; both NULL = ws:// */
    /* "/ocpp/": the rest of the path is the identity ("/ocpp" means the same). A plain HTTP
     * request (no upgrade) gets 426 under the prefix and 404 elsewhere. */
    const char *path_prefix;
    /* "ocpp1.6": a peer not offering it (or offering none) is refused with 400; the 101 names
     * it in Sec-WebSocket-Protocol. No Origin check: devices, not browsers, connect here. */
    const char *subprotocol;
    pw_web_ws_limits limits;     /* zero fields: the defaults noted there */
    pw_web_ws_handlers handlers; /* copied */
} pw_web_ws_ep_opts;

/* A web front with no HTTP listener, for programs that only run WebSocket clients or endpoints
 * (the simulator's charge points). Checks for the libuv plugin like pw_web_new; pw_web_port is
 * 0. Returns 0 and *out, or -1 with a message (then run the loop before uv_loop_close, as after
 * a failed pw_web_new). Closed with pw_web_close like any other. */
int pw_web_new_bare(pw_web **out, uv_loop_t *loop, char *err, size_t err_size);

/* Opens an endpoint on the web front's libwebsockets context (same loop). Returns 0 and *out,
 * or -1 with a message (address in use, unusable certificate, bad options). Closed with
 * pw_web_ws_ep_close or by pw_web_close, after which *out is invalid. */
int pw_web_ws_listen(pw_web *w, const pw_web_ws_ep_opts *o, pw_web_ws_ep **out, char *err,
                     size_t err_size);
uint16_t pw_web_ws_ep_port(const pw_web_ws_ep *ep);
/* Closes every connection of the endpoint (each gets its closed callback, "endpoint closed",
 * before this returns; the peers get close 1001) and stops listening on the next loop turn. ep
 * is freed; a few hundred bytes that lws may still point at stay until pw_web_close. May be
 * called from the endpoint's own callbacks. Call at most once, and not after pw_web_close. */
void pw_web_ws_ep_close(pw_web_ws_ep *ep);

/* All strings are borrowed for the pw_web_ws_connect call. */
typedef struct pw_web_ws_client_opts {
    /* ws://host:port/path or wss://...; a host name is resolved synchronously by lws 4.1
     * (Debian builds it without async DNS), so the loop waits for the resolver: prefer a
     * numeric address. */
    const char *url;
    const char *subprotocol;     /* offered; the server must choose it */
    const char *user, *password; /* HTTP Basic; NULL = none */
    /* wss: PEM CA to check the server (and its name or IP address) with; NULL = the system's.
     * Each distinct file keeps a small lws client vhost until pw_web_close. */
    const char *ca_file;
    pw_web_ws_limits limits;
    pw_web_ws_handlers handlers; /* copied; accept unused */
    void *conn_ud;               /* given to the callbacks */
} pw_web_ws_client_opts;

/* Starts connecting. Returns 0 (open or closed follows), or -1 with a message for a URL that
 * cannot be used or a connection lws refused at once (no callback follows then). The
 * subprotocol is offered in Sec-WebSocket-Protocol; a server that does not choose it fails the
 * connection. A URL without a port uses 80 (ws://) or 443 (wss://). */
int pw_web_ws_connect(pw_web *w, const pw_web_ws_client_opts *o, char *err, size_t err_size);

/* Queues a text message (copied; sent in order, one WebSocket message each). Allowed before a
 * client opens or a server connection finishes its handshake. Returns 0, or -1 when the
 * connection is closing or the queue would pass max_queued (the connection is then dropped
 * without a close frame: a peer that does not read would not get one). */
int pw_web_ws_send(pw_web_ws *ws, const char *text, size_t len);
/* Starts closing with a WebSocket close code and reason (at most 123 bytes; a code a peer may
 * not receive becomes 1000): what is queued is sent first (for at most 10 s), then the close
 * frame; closed follows later, never from inside this call. Works from inside the message
 * callback. A no-op when already closing. */
void pw_web_ws_close(pw_web_ws *ws, uint16_t code, const char *reason);
/* Bytes queued and not yet written (for flow checks). */
size_t pw_web_ws_queued(const pw_web_ws *ws);

#endif
