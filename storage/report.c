/* Reports for people: sessions with filters, energy per charger per day or month and per RFID
 * tag per month, CSV exports for billing, and the event and limit-change logs. */
#include "store_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pw_util.h"

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    pw_strlcpy(dst, t ? (const char *)t : "", size);
}

static uint64_t column_u64(sqlite3_stmt *st, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    return v > 0 ? (uint64_t)v : 0;
}

/* ---- sessions ---- */

static void fill_session(sqlite3_stmt *st, void *item)
{
    pw_store_session_row *row = item;
    row->id = sqlite3_column_int64(st, 0);
    copy_text(row->s.charger, sizeof(row->s.charger), st, 1);
    row->s.start_ms = sqlite3_column_int64(st, 2);
    row->s.end_ms = sqlite3_column_int64(st, 3); /* NULL reads as 0: still open */
    row->s.register_start_wh = column_u64(st, 4);
    row->s.register_wh = column_u64(st, 5);
    row->s.peak_a = (float)sqlite3_column_int(st, 6) / 100.0f;
    copy_text(row->s.ref, sizeof(row->s.ref), st, 7);
    row->energy_wh = column_u64(st, 8);
    copy_text(row->s.id_tag, sizeof(row->s.id_tag), st, 9);
    row->s.simulated = (uint8_t)sqlite3_column_int(st, 10);
}

int pw_store_query_sessions(pw_store_reader *r, const pw_store_session_filter *f,
                            pw_store_session_row **rows, size_t *count)
{
    r->errmsg[0] = '\0';
    *rows = NULL;
    *count = 0;
    if (f->open < -1 || f->open > 1 || f->min_energy_wh > (uint64_t)INT64_MAX) {
        snprintf(r->errmsg, sizeof(r->errmsg), "session query: bad filter");
        return PW_STORE_E_ARG;
    }
    sqlite3_stmt *st = r->stmt[RS_SESSIONS];
    pw_store__bind_opt(st, 1, f->charger);
    pw_store__bind_opt(st, 2, f->ref);
    sqlite3_bind_int64(st, 3, f->from_ms);
    sqlite3_bind_int64(st, 4, f->to_ms ? f->to_ms : INT64_MAX);
    sqlite3_bind_int(st, 5, f->open);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)f->min_energy_wh);
    sqlite3_bind_int64(st, 7, f->limit ? (sqlite3_int64)f->limit : -1);
    sqlite3_bind_int64(st, 8, f->offset);
    pw_store__bind_opt(st, 9, f->id_tag);
    return pw_store__collect(r, st, sizeof(**rows), fill_session, (void **)rows, count);
}

/* ---- energy ---- */

static void fill_energy(sqlite3_stmt *st, void *item)
{
    pw_store_energy_row *row = item;
    copy_text(row->charger, sizeof(row->charger), st, 0);
    copy_text(row->period, sizeof(row->period), st, 1);
    row->sessions = (uint32_t)sqlite3_column_int64(st, 2);
    row->energy_wh = column_u64(st, 3);
}

int pw_store_query_energy(pw_store_reader *r, enum pw_store_period period, const char *charger,
                          int64_t from_ms, int64_t to_ms, pw_store_energy_row **rows, size_t *count)
{
    r->errmsg[0] = '\0';
    *rows = NULL;
    *count = 0;
    if ((period != PW_STORE_DAY && period != PW_STORE_MONTH) || from_ms >= to_ms) {
        snprintf(r->errmsg, sizeof(r->errmsg), "energy query: bad period or range");
        return PW_STORE_E_ARG;
    }
    sqlite3_stmt *st = r->stmt[RS_ENERGY];
    sqlite3_bind_text(st, 1, period == PW_STORE_DAY ? "%Y-%m-%d" : "%Y-%m", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from_ms);
    sqlite3_bind_int64(st, 3, to_ms);
    pw_store__bind_opt(st, 4, charger);
    return pw_store__collect(r, st, sizeof(**rows), fill_energy, (void **)rows, count);
}

static void fill_tag_energy(sqlite3_stmt *st, void *item)
{
    pw_store_tag_energy_row *row = item;
    copy_text(row->month, sizeof(row->month), st, 0);
    copy_text(row->id_tag, sizeof(row->id_tag), st, 1);
    row->sessions = (uint32_t)sqlite3_column_int64(st, 2);
    row->energy_wh = column_u64(st, 3);
}

int pw_store_query_tag_energy(pw_store_reader *r, int64_t from_ms, int64_t to_ms,
                              pw_store_tag_energy_row **rows, size_t *count)
{
    r->errmsg[0] = '\0';
    *rows = NULL;
    *count = 0;
    if (from_ms >= to_ms) {
        snprintf(r->errmsg, sizeof(r->errmsg), "tag energy query: empty range");
        return PW_STORE_E_ARG;
    }
    sqlite3_stmt *st = r->stmt[RS_TAG_ENERGY];
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    return pw_store__collect(r, st, sizeof(**rows), fill_tag_energy, (void **)rows, count);
}

/* ---- CSV ---- */

static void csv_printf(store__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void csv_printf(store__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = pw_xrealloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A field as RFC 4180 wants it: quoted, with quotes doubled, when it holds a separator, a quote
 * or a line break. */
static void csv_field(store__buf *b, const char *s, int last)
{
    if (strpbrk(s, ",\"\r\n")) {
        csv_printf(b, "\"");
        for (const char *p = s; *p; p++)
            csv_printf(b, *p == '"' ? "\"\"" : "%c", *p);
        csv_printf(b, "\"");
    } else {
        csv_printf(b, "%s", s);
    }
    csv_printf(b, last ? "\r\n" : ",");
}

/* Local time as ISO 8601 with the UTC offset ("2025-11-22T21:05:00+01:00"), or "" for 0. */
static void local_iso(char *out, size_t size, int64_t ms)
{
    out[0] = '\0';
    if (!ms)
        return;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char zone[8];
    if (!localtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm) ||
        strftime(zone, sizeof(zone), "%z", &tm) != 5) /* "+0100" */
        return;
    size_t len = strlen(out);
    snprintf(out + len, size - len, "%.3s:%.2s", zone, zone + 3);
}

static void csv_kwh(store__buf *b, uint64_t wh, int last)
{
    csv_printf(b, "%llu.%03llu%s", (unsigned long long)(wh / 1000), (unsigned long long)(wh % 1000),
               last ? "\r\n" : ",");
}

static char *csv_finish(store__buf *b)
{
    csv_printf(b, "%s", ""); /* makes sure there is a buffer and a terminator */
    return (char *)b->p;
}

/* The tag's name, or "" when there is no tag, no lookup or no name. */
static const char *tag_name_of(pw_store_tag_name_fn tag_name, void *ud, const char *id_tag)
{
    const char *name = id_tag[0] && tag_name ? tag_name(ud, id_tag) : NULL;
    return name ? name : "";
}

int pw_store_csv_sessions_named(pw_store_reader *r, const pw_store_session_filter *f,
                                pw_store_tag_name_fn tag_name, void *ud, char **csv)
{
    pw_store_session_row *rows;
    size_t n;
    *csv = NULL;
    int rc = pw_store_query_sessions(r, f, &rows, &n);
    if (rc)
        return rc;
    store__buf b = {0};
    /* The tag columns come last, so spreadsheets built on the older export keep working. */
    csv_printf(&b, "session,charger,ref,start,end,duration_min,energy_kwh,register_start_kwh,"
                   "register_end_kwh,peak_a,id_tag,tag_name\r\n");
    for (size_t i = 0; i < n; i++) {
        const pw_store_session_row *x = &rows[i];
        char start[40], end[40];
        local_iso(start, sizeof(start), x->s.start_ms);
        local_iso(end, sizeof(end), x->s.end_ms);
        csv_printf(&b, "%lld,", (long long)x->id);
        csv_field(&b, x->s.charger, 0);
        csv_field(&b, x->s.ref, 0);
        csv_printf(&b, "%s,%s,", start, end);
        if (x->s.end_ms)
            csv_printf(&b, "%.1f,", (double)(x->s.end_ms - x->s.start_ms) / 60000.0);
        else
            csv_printf(&b, ",");
        csv_kwh(&b, x->energy_wh, 0);
        csv_kwh(&b, x->s.register_start_wh, 0);
        csv_kwh(&b, x->s.register_wh, 0);
        csv_printf(&b, "%.2f,", (double)x->s.peak_a);
        csv_field(&b, x->s.id_tag, 0);
        csv_field(&b, tag_name_of(tag_name, ud, x->s.id_tag), 1);
    }
    free(rows);
    *csv = csv_finish(&b);
    return 0;
}

int pw_store_csv_sessions(pw_store_reader *r, const pw_store_session_filter *f, char **csv)
{
    return pw_store_csv_sessions_named(r, f, NULL, NULL, csv);
}

int pw_store_csv_monthly_energy(pw_store_reader *r, int64_t from_ms, int64_t to_ms, char **csv)
{
    pw_store_energy_row *rows;
    size_t n;
    *csv = NULL;
    int rc = pw_store_query_energy(r, PW_STORE_MONTH, NULL, from_ms, to_ms, &rows, &n);
    if (rc)
        return rc;
    store__buf b = {0};
    csv_printf(&b, "month,charger,sessions,energy_kwh\r\n");
    for (size_t i = 0; i < n; i++) {
        csv_printf(&b, "%s,", rows[i].period);
        csv_field(&b, rows[i].charger, 0);
        csv_printf(&b, "%u,", rows[i].sessions);
        csv_kwh(&b, rows[i].energy_wh, 1);
    }
    free(rows);
    *csv = csv_finish(&b);
    return 0;
}

int pw_store_csv_tag_energy(pw_store_reader *r, int64_t from_ms, int64_t to_ms,
                            pw_store_tag_name_fn tag_name, void *ud, char **csv)
{
    pw_store_tag_energy_row *rows;
    size_t n;
    *csv = NULL;
    int rc = pw_store_query_tag_energy(r, from_ms, to_ms, &rows, &n);
    if (rc)
        return rc;
    store__buf b = {0};
    csv_printf(&b, "month,id_tag,name,sessions,energy_kwh\r\n");
    for (size_t i = 0; i < n; i++) {
        csv_printf(&b, "%s,", rows[i].month);
        csv_field(&b, rows[i].id_tag, 0);
        csv_field(&b, tag_name_of(tag_name, ud, rows[i].id_tag), 0);
        csv_printf(&b, "%u,", rows[i].sessions);
        csv_kwh(&b, rows[i].energy_wh, 1);
    }
    free(rows);
    *csv = csv_finish(&b);
    return 0;
}

/* ---- logs ---- */

static void fill_event(sqlite3_stmt *st, void *item)
{
    pw_store_event *e = item;
    e->ts_ms = sqlite3_column_int64(st, 0);
    copy_text(e->kind, sizeof(e->kind), st, 1);
    copy_text(e->subject, sizeof(e->subject), st, 2);
    copy_text(e->detail, sizeof(e->detail), st, 3);
    e->simulated = (uint8_t)sqlite3_column_int(st, 4);
}

int pw_store_query_events(pw_store_reader *r, int64_t from_ms, int64_t to_ms, const char *kind,
                          const char *subject, uint32_t limit, pw_store_event **rows, size_t *count)
{
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = r->stmt[RS_EVENTS];
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    pw_store__bind_opt(st, 3, kind);
    pw_store__bind_opt(st, 4, subject);
    sqlite3_bind_int64(st, 5, limit ? (sqlite3_int64)limit : -1);
    return pw_store__collect(r, st, sizeof(**rows), fill_event, (void **)rows, count);
}

static void fill_limit(sqlite3_stmt *st, void *item)
{
    pw_store_limit_change *c = item;
    c->ts_ms = sqlite3_column_int64(st, 0);
    copy_text(c->charger, sizeof(c->charger), st, 1);
    c->limit_a = (float)sqlite3_column_int(st, 2) / 100.0f;
    c->phases = (uint8_t)sqlite3_column_int(st, 3);
    copy_text(c->reason, sizeof(c->reason), st, 4);
    copy_text(c->text, sizeof(c->text), st, 5);
}

int pw_store_query_limit_changes(pw_store_reader *r, int64_t from_ms, int64_t to_ms,
                                 const char *charger, uint32_t limit, pw_store_limit_change **rows,
                                 size_t *count)
{
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = r->stmt[RS_LIMITS];
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    pw_store__bind_opt(st, 3, charger);
    sqlite3_bind_int64(st, 4, limit ? (sqlite3_int64)limit : -1);
    return pw_store__collect(r, st, sizeof(**rows), fill_limit, (void **)rows, count);
}
