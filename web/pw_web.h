/* The appliance's web front: HTTP and WebSocket served by libwebsockets on the server's libuv
 * loop. It serves the built-in dashboard assets, hands /api/ requests to a handler the server
 * provides and pushes live state to every WebSocket client. It knows nothing of the balancer or
 * the database: the server wires them in. */
#ifndef PW_WEB_H
#define PW_WEB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pw_web pw_web;

typedef struct pw_web_request {
    const char *method; /* "GET", "POST", "PUT", "DELETE" */
    const char *path;   /* "/api/state", without the query */
    const char *query;  /* "from=...&to=..." or "" */
    const char *body;   /* NUL-terminated, "" when none */
    size_t body_len;
    const char *origin; /* Origin header or "" */
    const char *cookie; /* Cookie header or "" */
} pw_web_request;

typedef struct pw_web_response {
    int status;               /* HTTP status, 200 by default */
    const char *content_type; /* static string, "application/json" by default */
    char *body;               /* malloc'd by the handler; freed by web */
    size_t body_len;
    char set_cookie[256];     /* Set-Cookie value or "" */
    char content_disposition[128]; /* for downloads, or "" */
} pw_web_response;

/* Handles one API request on the loop thread; fills resp. */
typedef void (*pw_web_api_fn)(void *ud, const pw_web_request *req, pw_web_response *resp);

typedef struct pw_web_opts {
    const char *addr;    /* listen address, e.g. "127.0.0.1" */
    uint16_t port;       /* 0 = pick a free port (see pw_web_port) */
    size_t max_body;     /* larger request bodies get 413 */
    pw_web_api_fn api;   /* called for every path under /api/ */
    void *api_ud;
} pw_web_opts;

/* Starts serving on loop. Returns 0 and *out, or -1 with a message in err. */
int pw_web_new(pw_web **out, uv_loop_t *loop, const pw_web_opts *opts, char *err,
               size_t err_size);

/* The port actually bound. */
uint16_t pw_web_port(const pw_web *w);

/* Queues text (a JSON document) for every connected WebSocket client on /ws. A slow client
 * gets only the newest message, never an unbounded queue. */
void pw_web_broadcast(pw_web *w, const char *text, size_t len);

/* Number of WebSocket clients connected. */
size_t pw_web_clients(const pw_web *w);

/* Starts an orderly shutdown; done(ud) runs on the loop once libwebsockets has closed every
 * handle it had on it and w is freed. */
void pw_web_close(pw_web *w, void (*done)(void *ud), void *ud);

#endif
