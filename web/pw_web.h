/* The appliance's web front: HTTP and WebSocket served by libwebsockets on the server's libuv
 * loop. It serves the built-in dashboard assets, hands /api/ requests to a handler the server
 * provides and pushes live state to every WebSocket client. It knows nothing of the balancer or
 * the database: the server wires them in. Everything here runs on the loop thread; a handler
 * whose answer takes longer (a history query) defers it and completes it later, so the loop
 * never waits. */
#ifndef PW_WEB_H
#define PW_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pw_web pw_web;
typedef struct pw_web_pending pw_web_pending;

/* One API request; every pointer is borrowed and valid only during the handler call. */
typedef struct pw_web_request {
    const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD" */
    const char *path;   /* "/api/state", without the query */
    const char *query;  /* "from=1&to=2", percent-encoded, or ""; see pw_web_query_param */
    const char *body;   /* NUL-terminated, "" when none (and for an upload) */
    size_t body_len;    /* for an upload: the size of body_file */
    /* An upload (pw_web_opts.upload): the file that holds the body, else NULL. web removes it
     * once the answer is given (the handler returned, or pw_web_complete), or when the client
     * goes; a handler that keeps it renames it away before it answers. */
    const char *body_file;
    const char *origin; /* Origin header or "" */
    const char *cookie; /* Cookie header or "" */
    bool admin;         /* carries a valid admin session (always false with auth disabled) */
} pw_web_request;

/* The handler's answer. Header values must not contain CR or LF (web answers 500 if they do). */
typedef struct pw_web_response {
    int status;               /* HTTP status, 200 by default */
    const char *content_type; /* static string, "application/json" by default */
    char *body;               /* malloc'd by the handler (or NULL); freed by web */
    size_t body_len;
    /* A download too large for memory: when body_is_file, the body is body_len bytes read from
     * the open file body_fd from its start (body must be NULL); web closes it. */
    bool body_is_file;
    int body_fd;
    char set_cookie[256];          /* Set-Cookie value or "" */
    char content_disposition[128]; /* for downloads, or "" */
} pw_web_response;

/* Handles one API request on the loop thread; fills resp, or calls pw_web_defer and leaves
 * resp alone to answer later. */
typedef void (*pw_web_api_fn)(void *ud, const pw_web_request *req, pw_web_response *resp);

/* Called by an API handler, during the handler call, to answer req later: web keeps the
 * connection waiting (up to a minute) until pw_web_complete is called with the handle. req must
 * be the pointer the handler was given (not a copy). Copy whatever the later answer needs from
 * req now. Returns the handle, owned by the caller until
 * it passes it to pw_web_complete, which must happen exactly once, on the loop thread. */
pw_web_pending *pw_web_defer(const pw_web_request *req);

/* Sends resp as the answer to a deferred request and frees p. Takes resp->body. If the client
 * went away meanwhile (or web is shutting down) the answer is dropped; that is not an error.
 * pw_web_close waits for every deferred request to be completed. Loop thread only. */
void pw_web_complete(pw_web_pending *p, pw_web_response *resp);

/* False once the client of a deferred request has gone: its answer would be dropped, so the
 * work need not start. */
bool pw_web_pending_alive(const pw_web_pending *p);

/* Who may call an API path. web enforces it before the handler runs. */
typedef enum pw_web_access {
    PW_WEB_READ,   /* dashboard data: needs a login only when auth.dashboard_login is set */
    PW_WEB_ADMIN,  /* changes and exports: always needs a login */
    PW_WEB_PUBLIC, /* never needs a login (health checks) */
} pw_web_access;

/* Classifies a request; runs on the loop thread. */
typedef pw_web_access (*pw_web_access_fn)(void *ud, const char *method, const char *path);

/* Authentication. web handles /api/auth/{status,setup,login,logout} itself: the admin password
 * is set once through setup (there is no default), kept as PBKDF2-SHA256 in
 * <data_dir>/admin-password (mode 0600), and a login gives an HttpOnly, SameSite=Strict
 * session cookie. Independently of auth, a state-changing request (not GET/HEAD/OPTIONS) or
 * WebSocket upgrade whose Origin names another site is refused (403); clients that send no
 * Origin (not browsers) pass this check. */
/* The admin password's file in pw_web_auth_opts.data_dir. */
#define PW_WEB_PASSWORD_FILE "admin-password"

typedef struct pw_web_auth_opts {
    const char *data_dir;    /* NULL = no logins at all (everything open, a warning is logged) */
    bool dashboard_login;    /* the read-only dashboard (READ paths, /ws) needs a login too */
    bool secure_cookie;      /* mark the cookie Secure (implied when serving HTTPS) */
    unsigned iterations;     /* PBKDF2 iterations for a new password; 0 = 600000 */
    pw_web_access_fn access; /* NULL = GET and HEAD are READ, everything else ADMIN */
    void *access_ud;
    /* Called on the loop for security events ("admin_password_set", "login", "login_failed",
     * "login_throttled") with the client's address, so the server can keep them in history. */
    void (*on_event)(void *ud, const char *kind, const char *peer);
    void *event_ud;
    const char *const *origins; /* further allowed origins, NULL-terminated, or NULL; borrowed
                                   for the life of the pw_web */
} pw_web_auth_opts;

typedef struct pw_web_opts {
    const char *addr; /* listen address, e.g. "127.0.0.1"; NULL, "" or "0.0.0.0" = all */
    /* HTTPS: PEM certificate (chain) and private key files; both NULL = plain HTTP. With TLS
     * cookies are Secure and only HTTP/1.1 is offered (ALPN). */
    const char *tls_cert;
    const char *tls_key;
    uint16_t port;   /* 0 = pick a free port (see pw_web_port) */
    size_t max_body; /* larger request bodies get 413; 0 = 64 KiB */
    /* One API path whose POST body is streamed into a new file in dir instead of memory, up to
     * max bytes (413 above): a backup being restored. The access checks run before the body is
     * stored, so a refused request writes nothing. path NULL = none; both strings borrowed for
     * the life of the pw_web. */
    struct {
        const char *path;
        const char *dir;
        uint64_t max;
    } upload;
    pw_web_api_fn api; /* called for /metrics and every path under /api/; NULL = 404 */
    void *api_ud;
    pw_web_auth_opts auth;
    /* The libuv event-lib plugin pw_web_new checks for before starting lws; NULL = the file lws
     * 4.1 itself loads from its install directory. lws always loads its own copy: another path
     * only changes the check (the unit test names a missing file). Borrowed for the call. */
    const char *evlib_path;
} pw_web_opts;

/* Starts serving on loop. Returns 0 and *out, or -1 with a message in err (e.g. the libuv
 * event-lib plugin of libwebsockets is missing, or the address cannot be bound). On failure
 * libwebsockets may still hold handles on loop that it releases while the loop runs, so run
 * the loop before uv_loop_close(). */
int pw_web_new(pw_web **out, uv_loop_t *loop, const pw_web_opts *opts, char *err, size_t err_size);

/* Finds argument name in a request's query and writes its decoded value ('+' and %XX undone)
 * to out. Returns the value's length, or -1 when the argument is absent or does not fit in
 * size bytes with its NUL. */
int pw_web_query_param(const char *query, const char *name, char *out, size_t size);

/* The port actually bound. */
uint16_t pw_web_port(const pw_web *w);

/* Queues text (a JSON document, copied) for every connected WebSocket client on /ws, and keeps
 * it as the document a new client receives at once. A slow client gets only the newest
 * message, never an unbounded queue. */
void pw_web_broadcast(pw_web *w, const char *text, size_t len);

/* Switches whether the read-only dashboard needs a login (a config change, no restart). */
void pw_web_set_dashboard_login(pw_web *w, bool on);

/* Number of WebSocket clients connected. */
size_t pw_web_clients(const pw_web *w);

/* Starts an orderly shutdown; done(ud) (may be NULL) runs on the loop once libwebsockets has
 * closed every handle it had on it and w is freed. Call at most once; w is invalid after. */
void pw_web_close(pw_web *w, void (*done)(void *ud), void *ud);

#endif
