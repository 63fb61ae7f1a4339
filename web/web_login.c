/* Authentication at the HTTP level: the /api/auth/ endpoints (status, setup, login, logout),
 * the Origin and session checks web.c applies before the server's handler runs, and the
 * password derivations that run on the libuv thread pool so the control loop never waits for
 * PBKDF2. */
#include "web_int.h"

#include "pw_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_MAX_JOBS     2 /* derivations in flight; more would only queue CPU work */
#define LOGIN_COOKIE_ATTRS "; Path=/; HttpOnly; SameSite=Strict"

enum web_job_kind { JOB_LOGIN, JOB_SETUP };

/* One password derivation on the thread pool. The worker touches only the job. */
typedef struct web_job {
    uv_work_t req;
    pw_web *w;
    struct lws *wsi; /* NULL once the connection has gone */
    web_http *h;
    enum web_job_kind kind;
    web_pw_record rec; /* login: the stored record; setup: the new one, hash filled in */
    char *password;
    size_t len;
    char peer[64];
    bool ok;
    char err[256];
} web_job;

int web__login_init(pw_web *w, const pw_web_auth_opts *opts, char *err, size_t err_size)
{
    w->dashboard_login = opts->dashboard_login;
    w->on_event = opts->on_event;
    w->event_ud = opts->event_ud;
    w->secure_cookie = opts->secure_cookie;
    w->access = opts->access;
    w->access_ud = opts->access_ud;
    w->origins = opts->origins;
    if (!opts->data_dir) {
        pw_warn(WEB_LOG, "no data folder for the admin password: logins are disabled and "
                         "anyone on the network can change the configuration");
        return 0;
    }
    w->auth = web__auth_new(opts->data_dir, opts->iterations, err, err_size);
    if (!w->auth)
        return -1;
    if (web__auth_setup_required(w->auth))
        pw_info(WEB_LOG, "no admin password yet: open the dashboard to set one");
    return 0;
}

bool web__state_changing(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

bool web__origin_allowed(const pw_web *w, const char *origin, const char *host)
{
    /* Browsers send an Origin with every cross-site POST, PUT, DELETE and WebSocket (an opaque
     * one as "null"), so an absent header means a non-browser client (curl, an integrator's
     * script) that cannot carry a victim's cookies; those still need a login. */
    if (!origin || !origin[0])
        return true;
    return web__origin_ok(origin, host, w->secure_cookie, w->origins);
}

bool web__logged_in(pw_web *w, const char *cookie)
{
    return w->auth && web__auth_session_check(w->auth, cookie, uv_now(w->loop));
}

bool web__access_ok(pw_web *w, const web_http *h)
{
    if (!w->auth)
        return true;
    pw_web_access a = w->access                        ? w->access(w->access_ud, h->method, h->path)
                      : web__state_changing(h->method) ? PW_WEB_ADMIN
                                                       : PW_WEB_READ;
    switch (a) {
    case PW_WEB_PUBLIC:
        return true;
    case PW_WEB_READ:
        return !w->dashboard_login || h->admin;
    case PW_WEB_ADMIN:
    default:
        return h->admin;
    }
}

/* ---- replies ---- */

static int login_json(struct lws *wsi, web_http *h, int status, char *body, const char *cookie)
{
    web_extra x = {.set_cookie = cookie};
    return web__respond(wsi, h, status, "application/json", body, strlen(body), body, &x);
}

static void login_cookie(const pw_web *w, const char *token, char *out, size_t size)
{
    /* Max-Age matches the server-side lifetime so a wall display survives a browser restart. */
    snprintf(out, size, "%s=%s%s; Max-Age=%llu%s", WEB_AUTH_COOKIE, token, LOGIN_COOKIE_ATTRS,
             (unsigned long long)(WEB_AUTH_LIFETIME_MS / 1000), w->secure_cookie ? "; Secure" : "");
}

static int login_status(pw_web *w, struct lws *wsi, web_http *h)
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"auth\":%s,\"setup_required\":%s,\"logged_in\":%s,\"dashboard_login\":%s}",
             w->auth ? "true" : "false",
             w->auth && web__auth_setup_required(w->auth) ? "true" : "false",
             h->admin ? "true" : "false", w->auth && w->dashboard_login ? "true" : "false");
    return login_json(wsi, h, 200, pw_xstrdup(body), NULL);
}

static int login_logout(pw_web *w, struct lws *wsi, web_http *h)
{
    if (w->auth)
        web__auth_session_close(w->auth, h->cookie);
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "%s=%s; Max-Age=0%s", WEB_AUTH_COOKIE, LOGIN_COOKIE_ATTRS,
             w->secure_cookie ? "; Secure" : "");
    return login_json(wsi, h, 200, pw_xstrdup("{\"ok\":true}"), cookie);
}

/* Takes the "password" member of a JSON body. Returns a malloc'd copy or NULL. */
static char *login_password(const web_http *h, size_t *len)
{
    json_error_t e;
    json_t *doc = json_loadb(h->body ? h->body : "", h->body_len, JSON_REJECT_DUPLICATES, &e);
    json_t *pw = json_object_get(doc, "password");
    char *out = NULL;
    if (json_is_string(pw)) {
        *len = json_string_length(pw);
        out = pw_xmalloc(*len + 1);
        memcpy(out, json_string_value(pw), *len + 1);
    }
    json_decref(doc);
    return out;
}

/* Passwords are wiped before their memory goes back to the allocator. */
static void secret_free(char *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

static void job_free(web_job *job)
{
    secret_free(job->password, job->len);
    explicit_bzero(&job->rec, sizeof(job->rec));
    free(job);
}

/* ---- the thread-pool side ---- */

static void job_work(uv_work_t *req)
{
    pw_worker_yield_priority();
    web_job *job = req->data;
    if (job->kind == JOB_LOGIN) {
        job->ok = web__auth_verify(&job->rec, job->password, job->len);
        return;
    }
    job->ok =
        web__auth_derive(&job->rec, job->password, job->len, job->rec.hash) == 0 &&
        web__auth_store(web__auth_dir(job->w->auth), &job->rec, job->err, sizeof(job->err)) == 0;
}

/* Back on the loop: apply the outcome and, if the client is still there, leave the reply for
 * its next WRITEABLE. */
static void security_event(pw_web *w, const char *kind, const char *peer)
{
    if (w->on_event)
        w->on_event(w->event_ud, kind, peer);
}

static void job_done(uv_work_t *req, int status)
{
    web_job *job = req->data;
    pw_web *w = job->w;
    uint64_t now = uv_now(w->loop);
    w->jobs--;
    bool ok = status == 0 && job->ok;
    if (job->kind == JOB_SETUP) {
        w->setup_busy = false;
        if (ok) {
            web__auth_install(w->auth, &job->rec);
            pw_info(WEB_LOG, "admin password set");
            security_event(w, "admin_password_set", job->peer);
        } else {
            pw_error(WEB_LOG, "admin password not set: %s", job->err);
        }
    } else {
        web__auth_rate_note(w->auth, job->peer, ok, now);
        if (!ok)
            pw_warn(WEB_LOG, "failed login from %s", job->peer);
        security_event(w, ok ? "login" : "login_failed", job->peer);
    }
    web_http *h = job->h;
    if (job->wsi && h) {
        h->job = NULL;
        char token[WEB_AUTH_TOKEN_HEX + 1], cookie[256] = "";
        int reply_status;
        const char *body;
        if (ok && web__auth_session_open(w->auth, now, token) == 0) {
            login_cookie(w, token, cookie, sizeof(cookie));
            explicit_bzero(token, sizeof(token));
            reply_status = job->kind == JOB_SETUP ? 201 : 200;
            body = "{\"ok\":true}";
        } else if (job->kind == JOB_LOGIN && status == 0 && !job->ok) {
            reply_status = 401;
            body = "{\"error\":\"wrong password\",\"field\":\"password\"}";
        } else {
            reply_status = 500;
            body = "{\"error\":\"could not store the password; see the appliance log\","
                   "\"field\":null}";
        }
        web__reply_later(h, reply_status, "application/json", pw_xstrdup(body), strlen(body),
                         cookie, NULL);
        explicit_bzero(cookie, sizeof(cookie));
    }
    job_free(job);
}

void web__login_detach(web_http *h)
{
    if (h->job) {
        h->job->wsi = NULL;
        h->job->h = NULL;
        h->job = NULL;
    }
}

/* Queues a derivation of password (taken over) for this request. */
static int job_start(pw_web *w, struct lws *wsi, web_http *h, enum web_job_kind kind,
                     const web_pw_record *rec, char *password, size_t len)
{
    web_job *job = pw_xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->w = w;
    job->wsi = wsi;
    job->h = h;
    job->kind = kind;
    job->rec = *rec;
    job->password = password;
    job->len = len;
    pw_strlcpy(job->peer, h->peer, sizeof(job->peer));
    if (uv_queue_work(w->loop, &job->req, job_work, job_done)) {
        job_free(job);
        return web__respond_error(wsi, h, 500, "cannot start the password check", NULL, NULL);
    }
    w->jobs++;
    if (kind == JOB_SETUP)
        w->setup_busy = true;
    h->job = job;
    /* The answer comes from the thread pool; keep lws from timing the connection out. */
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 60);
    return 0;
}

static int login_setup(pw_web *w, struct lws *wsi, web_http *h, char *password, size_t len)
{
    if (!web__auth_setup_required(w->auth) || w->setup_busy) {
        secret_free(password, len);
        return web__respond_error(wsi, h, 409, "the admin password is already set", NULL, NULL);
    }
    if (len < WEB_AUTH_MIN_PASSWORD || len > WEB_AUTH_MAX_PASSWORD) {
        secret_free(password, len);
        return web__respond_error(wsi, h, 400,
                                  "the password must have at least 10 and at most 1024 characters",
                                  "password", NULL);
    }
    web_pw_record rec;
    if (web__auth_new_record(w->auth, &rec)) {
        secret_free(password, len);
        return web__respond_error(wsi, h, 500, "random generator failed", NULL, NULL);
    }
    return job_start(w, wsi, h, JOB_SETUP, &rec, password, len);
}

static int login_login(pw_web *w, struct lws *wsi, web_http *h, char *password, size_t len)
{
    if (web__auth_setup_required(w->auth)) {
        secret_free(password, len);
        return web__respond_error(wsi, h, 409, "no admin password yet: set one first", NULL, NULL);
    }
    uint64_t wait = web__auth_rate_wait(w->auth, h->peer, uv_now(w->loop));
    if (wait > 0) {
        security_event(w, "login_throttled", h->peer);
        secret_free(password, len);
        web_extra x = {.retry_after = (unsigned)((wait + 999) / 1000)};
        return web__respond_error(wsi, h, 429, "too many failed logins: wait before trying again",
                                  NULL, &x);
    }
    return job_start(w, wsi, h, JOB_LOGIN, web__auth_record(w->auth), password, len);
}

int web__login_endpoint(pw_web *w, struct lws *wsi, web_http *h)
{
    const char *what = h->path + strlen("/api/auth/");
    bool get = strcmp(h->method, "GET") == 0, post = strcmp(h->method, "POST") == 0;
    if (strcmp(what, "status") == 0 && get)
        return login_status(w, wsi, h);
    if (strcmp(what, "logout") == 0 && post)
        return login_logout(w, wsi, h);
    bool setup = strcmp(what, "setup") == 0, login = strcmp(what, "login") == 0;
    if (!setup && !login)
        return web__respond_error(wsi, h, 404, "not found", NULL, NULL);
    if (!post)
        return web__respond_error(wsi, h, 405, "method not allowed", NULL,
                                  &(web_extra){.allow = "POST"});
    if (!w->auth)
        return web__respond_error(wsi, h, 404, "logins are disabled on this appliance", NULL, NULL);
    if (w->jobs >= LOGIN_MAX_JOBS)
        return web__respond_error(wsi, h, 429, "busy checking other logins: try again", NULL,
                                  &(web_extra){.retry_after = 1});
    size_t len = 0;
    char *password = login_password(h, &len);
    if (!password)
        return web__respond_error(wsi, h, 400, "expected a JSON object with a password string",
                                  "password", NULL);
    return setup ? login_setup(w, wsi, h, password, len) : login_login(w, wsi, h, password, len);
}
