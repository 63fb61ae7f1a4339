/* Internals shared by the files of web/: the pw_web object, the per-connection HTTP state and
 * the response helpers. Not for use outside web/. */
#ifndef PW_WEB_INT_H
#define PW_WEB_INT_H

#include "pw_web.h"
#include "web_auth.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_LOG     "web"
#define WEB_CHUNK   (16 * 1024)
#define WEB_HDR_BUF 4096

/* A set of pointers: the handles lws put on the loop and the connections it has not freed,
 * remembered so shutdown can wait until both are gone. */
typedef struct web_ptrs {
    const void **v;
    size_t n, cap;
} web_ptrs;

enum web_close_state { WEB_OPEN, WEB_CLOSE_START, WEB_CLOSE_WAIT, WEB_CLOSE_FINISH };

struct pw_web {
    uv_loop_t *loop;
    struct lws_context *ctx; /* lws writes NULL here once the context is gone (pcontext) */
    struct lws_vhost *vh;
    const struct lws_protocols *ws_protocol;
    pw_web_api_fn api;
    void *api_ud;
    size_t max_body;
    const char *upload_path; /* pw_web_opts.upload */
    const char *upload_dir;
    uint64_t upload_max;
    uint16_t port;

    bool bare;           /* pw_web_new_bare: no HTTP vhost at all */
    struct web_wsx *wsx; /* WebSocket endpoints and clients (ws.c), NULL until used */

    web_auth *auth; /* NULL = logins disabled */
    bool dashboard_login;
    bool secure_cookie;
    pw_web_access_fn access;
    void *access_ud;
    const char *const *origins;
    void (*on_event)(void *ud, const char *kind, const char *peer);
    void *event_ud;
    unsigned jobs;    /* password derivations queued on the libuv thread pool */
    unsigned pending; /* API answers deferred by the handler (pw_web_defer), not yet completed */
    bool setup_busy;  /* a setup is being derived and written */
    bool tls;         /* serving HTTPS */

    unsigned char *doc; /* newest broadcast, LWS_PRE bytes of headroom before the text */
    size_t doc_len;
    uint64_t doc_seq;
    size_t clients;
    web_ptrs live_wsi;    /* connections announced by LWS_CALLBACK_WSI_CREATE, not yet freed */
    web_ptrs lws_handles; /* handles lws added to the loop while we created it */
    uv_timer_t reaper;    /* drives the multi-turn shutdown */
    enum web_close_state close_state;
    unsigned close_turns;
    void (*done)(void *ud);
    void *done_ud;

    unsigned char tx[LWS_PRE + WEB_CHUNK]; /* one chunk of an HTTP body being written */
};

struct web_job;

/* An answer computed away from the lws callback (a password check, a deferred API request),
 * sent from the connection's next WRITEABLE. */
typedef struct web_reply {
    int status;
    const char *type; /* static string */
    char *body;       /* malloc'd or NULL */
    size_t len;
    bool is_file; /* the body is len bytes of the open file fd */
    int fd;
    char cookie[256];
    char disposition[128];
} web_reply;

/* One HTTP transaction on a connection. */
typedef struct web_http {
    bool active;
    bool is_api;
    bool is_head;
    bool too_large;
    bool dispatched; /* answered (or being answered): later body callbacks are ignored */
    bool admin;      /* the request carries a live admin session */
    char method[8];
    char *path, *query, *origin, *cookie, *host;
    char peer[64];
    char *body;
    size_t body_len;
    size_t expect_len;
    /* An upload: the body goes to this file (removed when the transaction ends). */
    char *upload_file;
    int upload_fd;
    bool upload_open;
    int upload_errno; /* writing it failed */
    struct lws *wsi;
    /* A reply computed later (login, setup, a deferred API request), sent from the next
     * WRITEABLE once reply_ready is set. */
    struct web_job *job;
    struct pw_web_pending *pending;
    bool deferred; /* the handler called pw_web_defer (it may even have completed already) */
    bool reply_ready;
    web_reply reply;
    /* The response body still to write: from memory, or from an open file. */
    const unsigned char *tx_data;
    char *tx_owned;
    size_t tx_len, tx_off;
    bool tx_is_file;
    int tx_fd;
} web_http;

typedef struct web_ws {
    uint64_t sent_seq;
    bool counted;
} web_ws;

/* Pointer sets (web.c). */
void web__ptrs_add(web_ptrs *s, const void *p);
bool web__ptrs_has(const web_ptrs *s, const void *p);
void web__ptrs_remove(web_ptrs *s, const void *p);

/* Every handle now on w's loop, into before (caller frees before->v). */
void web__snapshot_handles(pw_web *w, web_ptrs *before);

/* Remembers every handle on the loop that is not in before as lws's own, so shutdown waits for
 * it: creating a context or vhost runs synchronously on this thread. */
void web__note_lws_handles(pw_web *w, const web_ptrs *before);

/* ---- ws.c: WebSocket endpoints and clients (pw_web_ws.h) ---- */

/* Shutdown begins, just before the context is destroyed: sends fail from now on, connections
 * report closed as lws drops them. */
void web__ws_shutdown(pw_web *w);

/* The context is gone: reports closed for anything left and frees every endpoint and
 * connection. */
void web__ws_free(pw_web *w);

/* The parts of a response besides status, type and body. */
typedef struct web_extra {
    const char *set_cookie;
    const char *content_disposition;
    const char *etag;
    const char *cache; /* Cache-Control */
    const char *allow;
    unsigned retry_after; /* seconds, 0 = none */
} web_extra;

/* Writes the status line and headers, then either finishes the transaction (no body) or queues
 * the body for WRITEABLE. owned (may be NULL) is freed once written; data may point into it or
 * into static memory. Returns what the lws callback should return. */
int web__respond(struct lws *wsi, web_http *h, int status, const char *type, const void *data,
                 size_t len, char *owned, const web_extra *x);

/* The same with len bytes of the open file fd as the body; fd is closed once written (or at
 * once when nothing is written). */
int web__respond_file(struct lws *wsi, web_http *h, int status, const char *type, int fd,
                      size_t len, const web_extra *x);

/* A JSON error {"error": ..., "field": ...} (field may be NULL); message and field are ours
 * and hold no characters that need escaping. */
int web__respond_error(struct lws *wsi, web_http *h, int status, const char *message,
                       const char *field, const web_extra *x);

/* Leaves reply (body taken over) for the connection's next WRITEABLE. */
void web__reply_later(web_http *h, int status, const char *type, char *body, size_t len,
                      const char *cookie, const char *disposition);

/* A header's value as a malloc'd string ("" when absent). */
char *web__hdr_dup(struct lws *wsi, enum lws_token_indexes token);

/* The URL arguments, percent-encoded again, joined with '&' (malloc'd). */
char *web__query_dup(struct lws *wsi);

/* ---- web_login.c: authentication at the HTTP level ---- */

/* Sets up auth from opts (logins disabled without a data_dir). Returns 0 or -1 with err. */
int web__login_init(pw_web *w, const pw_web_auth_opts *opts, char *err, size_t err_size);

/* True for methods that change state and so must carry a matching Origin. */
bool web__state_changing(const char *method);

/* True when origin names this site (Host header host) or one of the configured origins, or
 * when there is no Origin header at all (not a browser). */
bool web__origin_allowed(const pw_web *w, const char *origin, const char *host);

/* True when the Cookie header carries a live session (refreshing it). */
bool web__logged_in(pw_web *w, const char *cookie);

/* True when the request may reach the API handler as it stands. */
bool web__access_ok(pw_web *w, const web_http *h);

/* Answers a request under /api/auth/. */
int web__login_endpoint(pw_web *w, struct lws *wsi, web_http *h);

/* The connection of h is going away: a job still running must not touch it. */
void web__login_detach(web_http *h);

#endif
