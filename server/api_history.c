/* History endpoints of the JSON API (docs/api.md: time series, sessions, energy per charger and
 * per RFID tag, CSV exports, events, limit changes), run on the API worker pool (api_pool.c).
 * SQLite is never touched on the loop thread: a request is parsed on the loop, deferred
 * (pw_web_defer), run on a libuv worker with a read connection of its own and completed back on the
 * loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

#define DAY_MS            INT64_C(86400000)
#define DEFAULT_RANGE_MS  DAY_MS
#define DEFAULT_POINTS    300
#define MAX_POINTS        2000
#define DEFAULT_LIST_ROWS 500
#define MAX_LIST_ROWS     10000
#define MAX_TS_MS         (INT64_C(1) << 53) /* the store's own bound */

/* ---- request parsing (loop thread) ---- */

typedef enum hist_what {
    HIST_SERIES,
    HIST_SESSIONS,
    HIST_ENERGY,
    HIST_EVENTS,
    HIST_LIMITS,
    HIST_CSV_SESSIONS,
    HIST_CSV_ENERGY,
    HIST_TAG_ENERGY,
    HIST_CSV_TAG_ENERGY,
} hist_what;

/* An open session as the control core knows it now. Its row is written when the session opens
 * and then once a minute (PW_CTL_SESSION_SAVE_MS), so a car that has been charging for half a
 * minute would read 0 kWh from the store: the sessions list shows these values instead. */
typedef struct hist_live {
    char charger[PW_BAL_ID_LEN];
    int64_t start_ms; /* with the charger, the row's identity */
    uint64_t energy_wh;
    double peak_a;
} hist_live;

/* Everything a history query needs, copied out of the request. */
typedef struct hist_args {
    hist_what what;
    enum pw_store_kind kind;
    char id[PW_BAL_ID_LEN]; /* the charger or node of a series, or a filter ("" = all) */
    char event_kind[24];
    int64_t from_ms, to_ms;
    size_t points;
    enum pw_store_period period;
    int open;
    uint32_t limit, offset;
    bool by_tag; /* sessions of id_tag only ("" = those without a tag) */
    char id_tag[PW_STORE_TAG_LEN];
    /* A copy of the config's tag list for names on the worker, which may not read app->cfg.
     * Only tags and n_tags are set, so that pw_cfg_tag_find can search it; the tags are owned
     * (hist_args_free), the rest of this config is empty. */
    pw_cfg names;
    hist_live *live; /* owned; the open sessions of the chargers the query can match */
    size_t n_live;
} hist_args;

static void hist_args_free(void *arg)
{
    hist_args *a = arg;
    free(a->names.tags);
    free(a->live);
    free(a);
}

/* Energy as the store computes it for a row: the register's rise, 0 if unknown or backwards. */
static uint64_t live_energy_wh(const pw_ctl_session *s)
{
    if (s->register_start_wh == PW_CTL_ENERGY_UNKNOWN || s->register_wh == PW_CTL_ENERGY_UNKNOWN ||
        s->register_wh < s->register_start_wh)
        return 0;
    return s->register_wh - s->register_start_wh;
}

/* Copies the core's open sessions (loop thread: the worker may not read pw_ctl), only the
 * charger asked for when the query names one. */
static void copy_live_sessions(const pw_app *app, hist_args *a)
{
    const pw_cfg *cfg = pw_ctl_config(app->ctl);
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_chargers; i++)
        n += pw_ctl_charger(app->ctl, i)->in_session;
    if (!n)
        return;
    a->live = pw_xcalloc(n, sizeof *a->live);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_ctl_charger_state *ch = pw_ctl_charger(app->ctl, i);
        if (!ch->in_session || (a->id[0] && strcmp(a->id, cfg->chargers[i].id) != 0))
            continue;
        hist_live *l = &a->live[a->n_live++];
        pw_strlcpy(l->charger, cfg->chargers[i].id, sizeof l->charger);
        l->start_ms = ch->session.start_ms;
        l->energy_wh = live_energy_wh(&ch->session);
        l->peak_a = ch->session.peak_a;
    }
}

/* The live values of an open row's session, NULL if the core has none for it (closed since,
 * or a charger no longer configured). */
static const hist_live *live_session(const hist_args *a, const pw_store_session *s)
{
    if (s->end_ms)
        return NULL;
    for (size_t k = 0; k < a->n_live; k++)
        if (a->live[k].start_ms == s->start_ms && strcmp(a->live[k].charger, s->charger) == 0)
            return &a->live[k];
    return NULL;
}

/* The name of a tag in the copied list, "" if the config does not know it (worker thread). */
static const char *tag_name(void *ud, const char *id_tag)
{
    const hist_args *a = ud;
    /* No tags: no search (bsearch must not be given a NULL array, even an empty one). */
    const pw_cfg_tag *t = id_tag[0] && a->names.n_tags ? pw_cfg_tag_find(&a->names, id_tag) : NULL;
    return t ? t->name : "";
}

static bool is_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= PW_BAL_ID_LEN)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* Reads a whole number in [lo, hi] from the query into *out (left alone when absent). On a bad
 * value replies 400 naming the argument and returns false. */
static bool arg_int(const pw_web_request *req, pw_web_response *resp, const char *name, int64_t lo,
                    int64_t hi, int64_t *out)
{
    char *v = pw_api_arg(req, name), *end = NULL;
    if (!v)
        return true;
    long long x = strtoll(v, &end, 10);
    bool ok = *v && !*end && x >= lo && x <= hi;
    free(v);
    if (!ok) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be a whole number from %lld to %lld", name,
                 (long long)lo, (long long)hi);
        pw_api_set_error(resp, 400, name, msg);
        return false;
    }
    *out = x;
    return true;
}

/* Reads the optional tag argument: an RFID tag of up to 20 printable characters, or empty for
 * sessions that have none. */
static bool arg_tag(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    char *v = pw_api_arg(req, "tag");
    if (!v)
        return true;
    size_t n = strlen(v);
    bool ok = n < sizeof a->id_tag;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= 0x20 && v[i] < 0x7f;
    if (ok) {
        a->by_tag = true;
        pw_strlcpy(a->id_tag, v, sizeof a->id_tag);
    }
    free(v);
    if (!ok)
        pw_api_set_error(resp, 400, "tag",
                         "tag must be an RFID tag: at most 20 printable characters (empty: "
                         "sessions without a tag)");
    return ok;
}

/* Reads an optional id argument (a charger or node) into out. */
static bool arg_id(const pw_web_request *req, pw_web_response *resp, const char *name, char *out,
                   size_t size)
{
    char *v = pw_api_arg(req, name);
    if (!v)
        return true;
    bool ok = is_id(v) && strlen(v) < size;
    if (ok)
        pw_strlcpy(out, v, size);
    free(v);
    if (!ok)
        pw_api_set_error(resp, 400, name,
                         "must be an id: letters, digits, '-', '_' or '.', at most 31 of them");
    return ok;
}

/* from and to (Unix ms): to defaults to now, from to a default span before it. */
static bool arg_range(const pw_web_request *req, pw_web_response *resp, int64_t span_ms,
                      hist_args *a)
{
    int64_t now = pw_wall_ms();
    a->to_ms = now + 1;
    a->from_ms = -1;
    if (!arg_int(req, resp, "to", 1, MAX_TS_MS, &a->to_ms) ||
        !arg_int(req, resp, "from", 0, MAX_TS_MS - 1, &a->from_ms))
        return false;
    if (a->from_ms < 0)
        a->from_ms = a->to_ms > span_ms ? a->to_ms - span_ms : 0;
    if (a->from_ms >= a->to_ms) {
        pw_api_set_error(resp, 400, "from", "from must be before to");
        return false;
    }
    return true;
}

static bool arg_limit(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    int64_t limit = DEFAULT_LIST_ROWS, offset = 0;
    if (!arg_int(req, resp, "limit", 1, MAX_LIST_ROWS, &limit) ||
        !arg_int(req, resp, "offset", 0, UINT32_MAX, &offset))
        return false;
    a->limit = (uint32_t)limit;
    a->offset = (uint32_t)offset;
    return true;
}

/* ---- queries and their documents (worker thread) ---- */

/* Amperes to a hundredth, never "-0". */
static json_t *amps(double a)
{
    double r = round(a * 100) / 100;
    return json_real(r == 0 ? 0 : r);
}

static json_t *stat3(const pw_store_stat s[3], size_t which)
{
    json_t *arr = json_array();
    for (size_t l = 0; l < 3; l++) {
        const float *v = which == 0 ? &s[l].min : which == 1 ? &s[l].avg : &s[l].max;
        json_array_append_new(arr, amps(*v));
    }
    return arr;
}

static json_t *series_json(const hist_args *a, const pw_store_point *pts, size_t n,
                           int64_t bucket_ms)
{
    bool charger = a->kind == PW_STORE_CHARGER;
    json_t *points = json_array();
    for (size_t i = 0; i < n; i++) {
        const pw_store_point *p = &pts[i];
        json_t *o = json_pack("{s:I, s:I, s:o, s:o, s:o}", "t", (json_int_t)p->ts_ms, "n",
                              (json_int_t)p->samples, "min_a", stat3(p->current, 0), "avg_a",
                              stat3(p->current, 1), "max_a", stat3(p->current, 2));
        if (charger) {
            char state[2] = {(char)('A' + (p->state <= 5 ? p->state : 5)), '\0'};
            json_object_set_new(o, "limit_a", amps(p->limit.avg));
            json_object_set_new(o, "limit_min_a", amps(p->limit.min));
            json_object_set_new(o, "state", json_string(state));
            json_object_set_new(o, "phases", json_integer(p->phases));
        }
        json_array_append_new(points, o);
    }
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:o}", "kind", charger ? "charger" : "node", "id",
                     a->id, "from", (json_int_t)a->from_ms, "to", (json_int_t)a->to_ms, "bucket_ms",
                     (json_int_t)bucket_ms, "points", points);
}

static json_t *sessions_json(const hist_args *a, const pw_store_session_row *rows, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const pw_store_session_row *r = &rows[i];
        const hist_live *live = live_session(a, &r->s);
        uint64_t energy_wh = live ? live->energy_wh : r->energy_wh;
        double peak_a = live && live->peak_a > r->s.peak_a ? live->peak_a : r->s.peak_a;
        json_t *o =
            json_pack("{s:I, s:s, s:I, s:o, s:I, s:o, s:s}", "id", (json_int_t)r->id, "charger",
                      r->s.charger, "start_ms", (json_int_t)r->s.start_ms, "end_ms",
                      r->s.end_ms ? json_integer((json_int_t)r->s.end_ms) : json_null(),
                      "energy_wh", (json_int_t)energy_wh, "peak_a", amps(peak_a), "ref", r->s.ref);
        json_object_set_new(o, "id_tag", json_string(r->s.id_tag));
        json_object_set_new(o, "tag_name", json_string(tag_name((void *)a, r->s.id_tag)));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "sessions", arr);
}

/* Whole watt-hours as kWh (8 significant digits when dumped: exact below 100 MWh). */
static json_t *kwh(uint64_t wh)
{
    return json_real((double)wh / 1000.0);
}

static json_t *tag_energy_json(const hist_args *a, const pw_store_tag_energy_row *rows, size_t n)
{
    json_t *arr = json_array();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const pw_store_tag_energy_row *r = &rows[i];
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:I, s:o}", "month", r->month, "id_tag", r->id_tag,
                           "name", tag_name((void *)a, r->id_tag), "sessions",
                           (json_int_t)r->sessions, "energy_kwh", kwh(r->energy_wh)));
        total += r->energy_wh;
    }
    return json_pack("{s:I, s:I, s:o, s:o}", "from", (json_int_t)a->from_ms, "to",
                     (json_int_t)a->to_ms, "total_kwh", kwh(total), "rows", arr);
}

static json_t *energy_json(const hist_args *a, const pw_store_energy_row *rows, size_t n)
{
    json_t *arr = json_array();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "charger", rows[i].charger,
                                             "period", rows[i].period, "sessions",
                                             (json_int_t)rows[i].sessions, "energy_wh",
                                             (json_int_t)rows[i].energy_wh));
        total += rows[i].energy_wh;
    }
    return json_pack("{s:s, s:I, s:I, s:I, s:o}", "period",
                     a->period == PW_STORE_MONTH ? "month" : "day", "from", (json_int_t)a->from_ms,
                     "to", (json_int_t)a->to_ms, "total_wh", (json_int_t)total, "rows", arr);
}

static json_t *events_json(const pw_store_event *rows, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "ts_ms",
                                             (json_int_t)rows[i].ts_ms, "kind", rows[i].kind,
                                             "subject", rows[i].subject, "detail", rows[i].detail));
    return json_pack("{s:o}", "events", arr);
}

static json_t *limits_json(const pw_store_limit_change *rows, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:o, s:i, s:s, s:s}", "ts_ms", (json_int_t)rows[i].ts_ms,
                           "charger", rows[i].charger, "limit_a", amps(rows[i].limit_a), "phases",
                           rows[i].phases, "reason", rows[i].reason, "text", rows[i].text));
    return json_pack("{s:o}", "changes", arr);
}

static void session_filter(const hist_args *a, pw_store_session_filter *f)
{
    memset(f, 0, sizeof *f);
    f->charger = a->id[0] ? a->id : NULL;
    f->from_ms = a->from_ms;
    f->to_ms = a->to_ms;
    f->open = a->open;
    f->limit = a->limit;
    f->offset = a->offset;
    f->id_tag = a->by_tag ? a->id_tag : NULL;
}

/* Runs one query; returns a store error code, with *doc or *csv set on success. */
static int hist_query(const hist_args *a, pw_store_reader *r, json_t **doc, char **csv)
{
    void *rows = NULL;
    size_t n = 0;
    int64_t bucket = 0;
    int rc;
    pw_store_session_filter f;
    const char *id = a->id[0] ? a->id : NULL;
    switch (a->what) {
    case HIST_SERIES:
        rc = pw_store_query_series(r, a->kind, a->id, a->from_ms, a->to_ms, a->points,
                                   (pw_store_point **)&rows, &n, &bucket);
        if (rc == 0)
            *doc = series_json(a, rows, n, bucket);
        break;
    case HIST_SESSIONS:
        session_filter(a, &f);
        rc = pw_store_query_sessions(r, &f, (pw_store_session_row **)&rows, &n);
        if (rc == 0)
            *doc = sessions_json(a, rows, n);
        break;
    case HIST_ENERGY:
        rc = pw_store_query_energy(r, a->period, id, a->from_ms, a->to_ms,
                                   (pw_store_energy_row **)&rows, &n);
        if (rc == 0)
            *doc = energy_json(a, rows, n);
        break;
    case HIST_EVENTS:
        rc = pw_store_query_events(r, a->from_ms, a->to_ms, a->event_kind[0] ? a->event_kind : NULL,
                                   id, a->limit, (pw_store_event **)&rows, &n);
        if (rc == 0)
            *doc = events_json(rows, n);
        break;
    case HIST_LIMITS:
        rc = pw_store_query_limit_changes(r, a->from_ms, a->to_ms, id, a->limit,
                                          (pw_store_limit_change **)&rows, &n);
        if (rc == 0)
            *doc = limits_json(rows, n);
        break;
    case HIST_CSV_SESSIONS:
        session_filter(a, &f);
        rc = pw_store_csv_sessions_named(r, &f, tag_name, (void *)a, csv);
        break;
    case HIST_TAG_ENERGY:
        rc = pw_store_query_tag_energy(r, a->from_ms, a->to_ms, (pw_store_tag_energy_row **)&rows,
                                       &n);
        if (rc == 0)
            *doc = tag_energy_json(a, rows, n);
        break;
    case HIST_CSV_TAG_ENERGY:
        rc = pw_store_csv_tag_energy(r, a->from_ms, a->to_ms, tag_name, (void *)a, csv);
        break;
    case HIST_CSV_ENERGY:
    default:
        rc = pw_store_csv_monthly_energy(r, a->from_ms, a->to_ms, csv);
        break;
    }
    free(rows);
    return rc;
}

static void hist_run(void *arg, pw_store_reader *r, pw_web_response *resp)
{
    const hist_args *a = arg;
    uint64_t t0 = uv_hrtime();
    json_t *doc = NULL;
    char *csv = NULL;
    int rc = hist_query(a, r, &doc, &csv);
    if (rc != 0) {
        pw_api_set_error(resp, rc == PW_STORE_E_ARG ? 400 : 503, NULL,
                         rc == PW_STORE_E_ARG ? pw_store_strerror(rc) : pw_store_reader_errmsg(r));
        return;
    }
    if (csv) {
        resp->content_type = "text/csv; charset=utf-8";
        snprintf(resp->content_disposition, sizeof resp->content_disposition,
                 "attachment; filename=\"phasewise-%s.csv\"",
                 a->what == HIST_CSV_SESSIONS     ? "sessions"
                 : a->what == HIST_CSV_TAG_ENERGY ? "tags-energy-monthly"
                                                  : "energy-monthly");
        resp->body = csv;
        resp->body_len = strlen(csv);
        return;
    }
    /* How long the database took, so a slow query shows up in the browser's network panel. */
    json_object_set_new(doc, "query_ms", json_real(round((uv_hrtime() - t0) / 1e4) / 100));
    pw_api_set_json(resp, 200, doc);
}

/* ---- routing (loop thread) ---- */

static bool hist_parse_series(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    static const char charger[] = "/api/history/charger/", node[] = "/api/history/node/";
    const char *id;
    if (strncmp(req->path, charger, sizeof charger - 1) == 0) {
        a->kind = PW_STORE_CHARGER;
        id = req->path + sizeof charger - 1;
    } else {
        a->kind = PW_STORE_NODE;
        id = req->path + sizeof node - 1;
    }
    if (!is_id(id)) {
        pw_api_set_error(resp, 404, NULL, "expected /api/history/charger/ID or /node/ID");
        return false;
    }
    pw_strlcpy(a->id, id, sizeof a->id);
    int64_t points = DEFAULT_POINTS;
    if (!arg_range(req, resp, DEFAULT_RANGE_MS, a) ||
        !arg_int(req, resp, "points", 1, MAX_POINTS, &points))
        return false;
    a->points = (size_t)points;
    return true;
}

static bool hist_parse_sessions(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    int64_t open = -1;
    /* Sessions: the last 31 days unless asked otherwise. */
    if (!arg_range(req, resp, 31 * DAY_MS, a) ||
        !arg_id(req, resp, "charger", a->id, sizeof a->id) || !arg_limit(req, resp, a) ||
        !arg_int(req, resp, "open", -1, 1, &open) || !arg_tag(req, resp, a))
        return false;
    a->open = (int)open;
    return true;
}

static bool hist_parse_energy(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    char *period = pw_api_arg(req, "period");
    bool ok = !period || !strcmp(period, "month") || !strcmp(period, "day");
    a->period = period && !strcmp(period, "day") ? PW_STORE_DAY : PW_STORE_MONTH;
    free(period);
    if (!ok) {
        pw_api_set_error(resp, 400, "period", "period must be day or month");
        return false;
    }
    /* A year of months, or a month of days, by default. */
    return arg_range(req, resp, a->period == PW_STORE_MONTH ? 366 * DAY_MS : 31 * DAY_MS, a) &&
           arg_id(req, resp, "charger", a->id, sizeof a->id);
}

static bool hist_parse_events(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    char *kind = pw_api_arg(req, "kind");
    bool ok = !kind || (*kind && strlen(kind) < sizeof a->event_kind &&
                        strspn(kind, "abcdefghijklmnopqrstuvwxyz_") == strlen(kind));
    if (ok && kind)
        pw_strlcpy(a->event_kind, kind, sizeof a->event_kind);
    free(kind);
    if (!ok) {
        pw_api_set_error(resp, 400, "kind", "kind must be an event kind such as config_change");
        return false;
    }
    return arg_range(req, resp, 7 * DAY_MS, a) &&
           arg_id(req, resp, "subject", a->id, sizeof a->id) && arg_limit(req, resp, a);
}

static bool hist_parse_limits(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    return arg_range(req, resp, DAY_MS, a) && arg_id(req, resp, "charger", a->id, sizeof a->id) &&
           arg_limit(req, resp, a);
}

static bool hist_parse_csv_sessions(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    a->open = -1;
    /* An export covers everything unless narrowed: no row limit, a year by default. */
    return arg_range(req, resp, 366 * DAY_MS, a) &&
           arg_id(req, resp, "charger", a->id, sizeof a->id) && arg_tag(req, resp, a);
}

static bool hist_parse_csv_energy(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    return arg_range(req, resp, 366 * DAY_MS, a);
}

/* Energy per tag per month: a year by default; format=csv for the download. */
static bool hist_parse_tag_energy(const pw_web_request *req, pw_web_response *resp, hist_args *a)
{
    char *format = pw_api_arg(req, "format");
    bool ok = !format || !strcmp(format, "json") || !strcmp(format, "csv");
    if (format && !strcmp(format, "csv"))
        a->what = HIST_CSV_TAG_ENERGY;
    free(format);
    if (!ok) {
        pw_api_set_error(resp, 400, "format", "format must be json or csv");
        return false;
    }
    return arg_range(req, resp, 366 * DAY_MS, a);
}

typedef struct hist_route {
    const char *path; /* exact, or a prefix when it ends in '/' */
    hist_what what;
    bool (*parse)(const pw_web_request *req, pw_web_response *resp, hist_args *a);
} hist_route;

static const hist_route hist_routes[] = {
    {"/api/history/charger/", HIST_SERIES, hist_parse_series},
    {"/api/history/node/", HIST_SERIES, hist_parse_series},
    {"/api/history/limits", HIST_LIMITS, hist_parse_limits},
    {"/api/sessions", HIST_SESSIONS, hist_parse_sessions},
    {"/api/energy", HIST_ENERGY, hist_parse_energy},
    {"/api/events", HIST_EVENTS, hist_parse_events},
    {"/api/export/sessions.csv", HIST_CSV_SESSIONS, hist_parse_csv_sessions},
    {"/api/export/energy.csv", HIST_CSV_ENERGY, hist_parse_csv_energy},
    {"/api/tags/energy", HIST_TAG_ENERGY, hist_parse_tag_energy},
    /* The same CSV under /api/export/, where every download needs an admin login. */
    {"/api/export/tags-energy.csv", HIST_CSV_TAG_ENERGY, hist_parse_csv_energy},
};

static const hist_route *hist_route_find(const char *path)
{
    for (size_t i = 0; i < PW_ARRAY_LEN(hist_routes); i++) {
        const char *p = hist_routes[i].path;
        size_t n = strlen(p);
        if (p[n - 1] == '/' ? strncmp(path, p, n) == 0 : strcmp(path, p) == 0)
            return &hist_routes[i];
    }
    return NULL;
}

bool pw_api_history_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp)
{
    const hist_route *route = hist_route_find(req->path);
    if (!route)
        return false;
    if (strcmp(req->method, "GET") != 0) {
        pw_api_set_error(resp, 405, NULL, "only GET is allowed here");
        return true;
    }
    hist_args *a = pw_xcalloc(1, sizeof *a);
    a->what = route->what;
    a->open = -1;
    if (!route->parse(req, resp, a)) {
        free(a);
        return true;
    }
    /* Tag names come from the config, which only the loop may read: the worker gets a copy. */
    if (app->cfg->n_tags && (a->what == HIST_SESSIONS || a->what == HIST_CSV_SESSIONS ||
                             a->what == HIST_TAG_ENERGY || a->what == HIST_CSV_TAG_ENERGY)) {
        a->names.n_tags = app->cfg->n_tags;
        a->names.tags = pw_xcalloc(app->cfg->n_tags, sizeof *a->names.tags);
        memcpy(a->names.tags, app->cfg->tags, app->cfg->n_tags * sizeof *a->names.tags);
    }
    if (a->what == HIST_SESSIONS && a->open != 0)
        copy_live_sessions(app, a);
    pw_api_submit(app->api_pool, req, resp, true, hist_run, a, hist_args_free);
    return true;
}
