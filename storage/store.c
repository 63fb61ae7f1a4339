/* The writing connection: opening and migrating the database, batches of rows collected by the
 * control loop, and writing a batch in one transaction with statements prepared once. */
#include "store_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define BUSY_TIMEOUT_MS    5000
#define JOURNAL_SIZE_LIMIT 67108864 /* 64 MiB: the WAL is cut back to this after a checkpoint */

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SERIES_FIND] = "SELECT id FROM series WHERE kind = ?1 AND name = ?2",
    [ST_SERIES_ADD] = "INSERT INTO series (kind, name) VALUES (?1, ?2)",
    [ST_TAIL_ADD] = "INSERT INTO tail (tier, series_id, ts, v) VALUES (?1, ?2, ?3, ?4)",
    [ST_EVENT_ADD] =
        "INSERT INTO event (ts, kind, subject, detail, simulated) VALUES (?1, ?2, ?3, ?4, ?5)",
    /* The server sends the whole session each time; only the peak never goes down, an end
     * once set stays, and an empty ref or tag does not erase a known one. */
    [ST_SESSION_PUT] =
        "INSERT INTO session (charger_id, start_ms, end_ms, register_start_wh, register_wh, "
        "peak_ca, ref, id_tag, simulated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT (charger_id, start_ms) DO UPDATE SET "
        "end_ms = coalesce(excluded.end_ms, end_ms), "
        "register_start_wh = excluded.register_start_wh, register_wh = excluded.register_wh, "
        "peak_ca = max(peak_ca, excluded.peak_ca), "
        "ref = CASE WHEN excluded.ref <> '' THEN excluded.ref ELSE ref END, "
        "id_tag = CASE WHEN excluded.id_tag <> '' THEN excluded.id_tag ELSE id_tag END, "
        "simulated = max(simulated, excluded.simulated)",
    [ST_LIMIT_ADD] = "INSERT INTO limit_change (ts, charger_id, limit_ca, phases, reason, text) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [ST_TAIL_OLDEST] =
        "SELECT id, series_id, ts, v FROM tail WHERE tier = 0 AND ts < ?1 ORDER BY ts LIMIT ?2",
    [ST_TAIL_DEL] = "DELETE FROM tail WHERE id = ?1",
    [ST_TAIL_DEL_BEFORE] = "DELETE FROM tail WHERE tier = 0 AND ts < ?1",
    [ST_TAIL_ANY_BEFORE] = "SELECT 1 FROM tail WHERE tier = 0 AND ts < ?1 LIMIT 1",
    [ST_BLOCK_ADD] = "INSERT INTO block (tier, series_id, t0, t1, n, v) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_BLOCK_NEXT] = "SELECT min(t1) FROM block WHERE tier = ?1 AND t1 >= ?2",
    [ST_BLOCK_RANGE] = PW_STORE__SQL_BLOCK_RANGE,
    [ST_BLOCK_DEL_OLD] = "DELETE FROM block WHERE id IN (SELECT id FROM block "
                         "WHERE tier = ?1 AND t1 < ?2 ORDER BY t1 LIMIT ?3)",
    [ST_LIMIT_DEL_OLD] = "DELETE FROM limit_change WHERE id IN (SELECT id FROM limit_change "
                         "WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
    [ST_SERIES_AFTER] = "SELECT id FROM series WHERE id > ?1 ORDER BY id LIMIT 1",
    [ST_AGG_DEL_FROM] = "DELETE FROM block WHERE tier = ?1 AND t0 >= ?2",
    [ST_OUTBOX_ADD] = "INSERT INTO outbox (ts, kind, payload) VALUES (?1, ?2, ?3)",
};

/* The meta key of the latest 15-minute aggregate queued in the outbox (its quarter's start). */
#define OUTBOX_QUARTER_KEY "outbox.quarter"

/* A growable array of fixed-size items. */
typedef struct store_vec {
    void *items;
    size_t n, cap;
} store_vec;

struct pw_store_batch {
    store_vec chargers; /* pw_store_charger_sample */
    store_vec nodes;    /* pw_store_node_sample */
    store_vec events;   /* pw_store_event */
    store_vec sessions; /* pw_store_session */
    store_vec limits;   /* pw_store_limit_change */
    store_vec outbox;   /* outbox_row, payloads owned */
};

typedef struct outbox_row {
    int64_t ts_ms, quarter_ms;
    char kind[PW_STORE_OUTBOX_KIND_LEN];
    char *payload;
} outbox_row;

const char *pw_store_strerror(int err)
{
    switch (err) {
    case PW_STORE_OK:
        return "success";
    case PW_STORE_E_OPEN:
        return "cannot open the database";
    case PW_STORE_E_WAL:
        return "the database cannot use write-ahead logging";
    case PW_STORE_E_NEWER:
        return "the database was written by a newer phasewise";
    case PW_STORE_E_MIGRATE:
        return "the database schema could not be upgraded";
    case PW_STORE_E_WRITE:
        return "writing to the database failed";
    case PW_STORE_E_QUERY:
        return "a database query failed";
    case PW_STORE_E_ARG:
        return "invalid argument";
    default:
        return "unknown storage error";
    }
}

/* ---- series cache ---- */

static uint32_t name_hash(int kind, const char *name)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static series_slot *cache_slot(series_cache *c, uint32_t hash, int kind, const char *name)
{
    size_t i = hash & (c->cap - 1);
    while (c->slots[i].id &&
           (c->slots[i].hash != hash || c->slots[i].kind != kind || strcmp(c->slots[i].name, name)))
        i = (i + 1) & (c->cap - 1);
    return &c->slots[i];
}

static void cache_clear(series_cache *c)
{
    free(c->slots);
    memset(c, 0, sizeof(*c));
}

static void cache_put(series_cache *c, uint32_t hash, int kind, const char *name, int64_t id)
{
    if (2 * (c->count + 1) > c->cap) { /* keep the load under one half */
        series_cache bigger = {.cap = c->cap ? 2 * c->cap : 256};
        bigger.slots = pw_xcalloc(bigger.cap, sizeof(series_slot));
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].id)
                *cache_slot(&bigger, c->slots[i].hash, c->slots[i].kind, c->slots[i].name) =
                    c->slots[i];
        bigger.count = c->count;
        free(c->slots);
        *c = bigger;
    }
    series_slot *slot = cache_slot(c, hash, kind, name);
    slot->id = id;
    slot->hash = hash;
    slot->kind = kind;
    pw_strlcpy(slot->name, name, sizeof(slot->name));
    c->count++;
}

/* ---- statements ---- */

int pw_store__step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int bind_text(sqlite3_stmt *st, int col, const char *s, size_t field_size)
{
    return sqlite3_bind_text(st, col, s, (int)strnlen(s, field_size), SQLITE_STATIC);
}

void pw_store__name(char out[32], const char *field, size_t field_size)
{
    size_t len = strnlen(field, field_size);
    if (len > 31)
        len = 31;
    memcpy(out, field, len);
    out[len] = '\0';
}

/* Finds or creates the series (kind, name), inside the caller's transaction. */
static int series_id(pw_store *s, int kind, const char *name_field, size_t field_size, int64_t *id)
{
    char name[32];
    pw_store__name(name, name_field, field_size);

    uint32_t hash = name_hash(kind, name);
    if (s->series.cap) {
        series_slot *slot = cache_slot(&s->series, hash, kind, name);
        if (slot->id) {
            *id = slot->id;
            return SQLITE_OK;
        }
    }
    sqlite3_stmt *find = s->stmt[ST_SERIES_FIND];
    sqlite3_bind_int(find, 1, kind);
    sqlite3_bind_text(find, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(find);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(find, 0) : 0;
    sqlite3_reset(find);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (!*id) {
        sqlite3_stmt *add = s->stmt[ST_SERIES_ADD];
        sqlite3_bind_int(add, 1, kind);
        sqlite3_bind_text(add, 2, name, -1, SQLITE_STATIC);
        rc = pw_store__step_done(add);
        if (rc != SQLITE_OK)
            return rc;
        *id = sqlite3_last_insert_rowid(s->db);
    }
    cache_put(&s->series, hash, kind, name, *id);
    return SQLITE_OK;
}

/* ---- batches ---- */

static void vec_push(store_vec *v, const void *item, size_t size)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->items = pw_xrealloc(v->items, v->cap * size);
    }
    memcpy((char *)v->items + v->n * size, item, size);
    v->n++;
}

pw_store_batch *pw_store_batch_new(void)
{
    return pw_xcalloc(1, sizeof(pw_store_batch));
}

void pw_store_batch_free(pw_store_batch *b)
{
    if (!b)
        return;
    free(b->chargers.items);
    free(b->nodes.items);
    free(b->events.items);
    free(b->sessions.items);
    free(b->limits.items);
    pw_store_batch_clear(b); /* the outbox payloads */
    free(b->outbox.items);
    free(b);
}

void pw_store_batch_clear(pw_store_batch *b)
{
    b->chargers.n = b->nodes.n = b->events.n = b->sessions.n = b->limits.n = 0;
    outbox_row *ob = b->outbox.items;
    for (size_t i = 0; i < b->outbox.n; i++)
        free(ob[i].payload);
    b->outbox.n = 0;
}

size_t pw_store_batch_rows(const pw_store_batch *b)
{
    return b->chargers.n + b->nodes.n + b->events.n + b->sessions.n + b->limits.n + b->outbox.n;
}

void pw_store_batch_add_charger(pw_store_batch *b, const pw_store_charger_sample *s)
{
    vec_push(&b->chargers, s, sizeof(*s));
}

void pw_store_batch_add_node(pw_store_batch *b, const pw_store_node_sample *s)
{
    vec_push(&b->nodes, s, sizeof(*s));
}

void pw_store_batch_add_event(pw_store_batch *b, const pw_store_event *e)
{
    vec_push(&b->events, e, sizeof(*e));
}

void pw_store_batch_add_session(pw_store_batch *b, const pw_store_session *s)
{
    vec_push(&b->sessions, s, sizeof(*s));
}

void pw_store_batch_add_limit_change(pw_store_batch *b, const pw_store_limit_change *c)
{
    vec_push(&b->limits, c, sizeof(*c));
}

void pw_store_batch_add_outbox(pw_store_batch *b, int64_t ts_ms, const char *kind,
                               const char *payload, int64_t quarter_ms)
{
    outbox_row r = {.ts_ms = ts_ms, .quarter_ms = quarter_ms, .payload = pw_xstrdup(payload)};
    pw_strlcpy(r.kind, kind, sizeof r.kind);
    vec_push(&b->outbox, &r, sizeof r);
}

/* ---- writing ---- */

/* Amperes to the stored centiamperes; what cannot be represented is stored as 0. */
static int32_t centiamps(float a)
{
    double c = round((double)a * 100.0);
    return isfinite(c) && fabs(c) < 2e9 ? (int32_t)c : 0;
}

/* Appends one raw record of the series (kind, name) to the tail. */
static int write_raw(pw_store *s, int kind, const char *name, size_t name_size, const store__rec *r)
{
    int64_t id;
    int rc = series_id(s, kind, name, name_size, &id);
    if (rc != SQLITE_OK)
        return rc;
    store__enc_init(&s->enc, r->ts, PW_STORE__RAW_FIELDS);
    store__enc_add(&s->enc, r);
    sqlite3_stmt *st = s->stmt[ST_TAIL_ADD];
    sqlite3_bind_int(st, 1, PW_STORE__TIER_RAW);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, r->ts);
    sqlite3_bind_blob(st, 4, s->enc.out.p, (int)s->enc.out.len, SQLITE_STATIC);
    return pw_store__step_done(st);
}

static void currents_to_record(store__rec *r, const float a[3])
{
    for (int k = 0; k < 3; k++)
        r->v[PW_STORE__F_I1 + k] = centiamps(a[k]);
}

static int write_charger(pw_store *s, const pw_store_charger_sample *c)
{
    store__rec r = {.ts = c->ts_ms};
    currents_to_record(&r, c->current_a);
    r.v[PW_STORE__F_LIMIT] = centiamps(c->limit_a);
    r.v[PW_STORE__F_STATE] = c->state;
    r.v[PW_STORE__F_PHASES] = c->phases;
    return write_raw(s, PW_STORE__KIND_CHARGER, c->charger, sizeof(c->charger), &r);
}

static int write_node(pw_store *s, const pw_store_node_sample *n)
{
    store__rec r = {.ts = n->ts_ms};
    currents_to_record(&r, n->current_a);
    return write_raw(s, PW_STORE__KIND_NODE, n->node, sizeof(n->node), &r);
}

static int write_event(pw_store *s, const pw_store_event *e)
{
    sqlite3_stmt *st = s->stmt[ST_EVENT_ADD];
    sqlite3_bind_int64(st, 1, e->ts_ms);
    bind_text(st, 2, e->kind, sizeof(e->kind));
    bind_text(st, 3, e->subject, sizeof(e->subject));
    bind_text(st, 4, e->detail, sizeof(e->detail));
    sqlite3_bind_int(st, 5, e->simulated || s->simulated);
    return pw_store__step_done(st);
}

/* Registers are unsigned in the protocol; SQLite integers are signed 64-bit. */
static sqlite3_int64 wh(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int write_session(pw_store *s, const pw_store_session *x)
{
    int64_t id;
    int rc = series_id(s, PW_STORE__KIND_CHARGER, x->charger, sizeof(x->charger), &id);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = s->stmt[ST_SESSION_PUT];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, x->start_ms);
    if (x->end_ms)
        sqlite3_bind_int64(st, 3, x->end_ms);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, wh(x->register_start_wh));
    sqlite3_bind_int64(st, 5, wh(x->register_wh));
    sqlite3_bind_int(st, 6, centiamps(x->peak_a));
    bind_text(st, 7, x->ref, sizeof(x->ref));
    bind_text(st, 8, x->id_tag, sizeof(x->id_tag));
    sqlite3_bind_int(st, 9, x->simulated || s->simulated);
    return pw_store__step_done(st);
}

static int write_limit(pw_store *s, const pw_store_limit_change *c)
{
    int64_t id;
    int rc = series_id(s, PW_STORE__KIND_CHARGER, c->charger, sizeof(c->charger), &id);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = s->stmt[ST_LIMIT_ADD];
    sqlite3_bind_int64(st, 1, c->ts_ms);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int(st, 3, centiamps(c->limit_a));
    sqlite3_bind_int(st, 4, c->phases);
    bind_text(st, 5, c->reason, sizeof(c->reason));
    bind_text(st, 6, c->text, sizeof(c->text));
    return pw_store__step_done(st);
}

/* The latest aggregate quarter queued, 0 when none was (inside the write's transaction). */
static int outbox_quarter(pw_store *s, int64_t *quarter)
{
    sqlite3_stmt *st = s->stmt[ST_META_GET];
    sqlite3_bind_text(st, 1, OUTBOX_QUARTER_KEY, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *quarter = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Queues one outbox row; an aggregate of a quarter queued before is left out, and a new one
 * moves the mark, in the same transaction. */
static int write_outbox(pw_store *s, const outbox_row *r)
{
    int rc = SQLITE_OK;
    if (r->quarter_ms) {
        int64_t done;
        if ((rc = outbox_quarter(s, &done)) != SQLITE_OK || r->quarter_ms <= done)
            return rc;
        sqlite3_stmt *set = s->stmt[ST_META_SET];
        sqlite3_bind_text(set, 1, OUTBOX_QUARTER_KEY, -1, SQLITE_STATIC);
        sqlite3_bind_int64(set, 2, r->quarter_ms);
        if ((rc = pw_store__step_done(set)) != SQLITE_OK)
            return rc;
    }
    sqlite3_stmt *st = s->stmt[ST_OUTBOX_ADD];
    sqlite3_bind_int64(st, 1, r->ts_ms);
    sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->payload, -1, SQLITE_STATIC);
    return pw_store__step_done(st);
}

void pw_store__abort_txn(pw_store *s, const char *what)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s: %s", what, sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db))
        pw_store__step_done(s->stmt[ST_ROLLBACK]);
    cache_clear(&s->series);
}

int pw_store_write(pw_store *s, const pw_store_batch *b)
{
    s->errmsg[0] = '\0';
    if (!pw_store_batch_rows(b))
        return 0;
    int rc = pw_store__step_done(s->stmt[ST_BEGIN]);
    const pw_store_charger_sample *chargers = b->chargers.items;
    for (size_t i = 0; rc == SQLITE_OK && i < b->chargers.n; i++)
        rc = write_charger(s, &chargers[i]);
    const pw_store_node_sample *nodes = b->nodes.items;
    for (size_t i = 0; rc == SQLITE_OK && i < b->nodes.n; i++)
        rc = write_node(s, &nodes[i]);
    const pw_store_event *events = b->events.items;
    for (size_t i = 0; rc == SQLITE_OK && i < b->events.n; i++)
        rc = write_event(s, &events[i]);
    const pw_store_session *sessions = b->sessions.items;
    for (size_t i = 0; rc == SQLITE_OK && i < b->sessions.n; i++)
        rc = write_session(s, &sessions[i]);
    const pw_store_limit_change *limits = b->limits.items;
    for (size_t i = 0; rc == SQLITE_OK && i < b->limits.n; i++)
        rc = write_limit(s, &limits[i]);
    const outbox_row *outbox = b->outbox.items;
    for (size_t i = 0; rc == SQLITE_OK && i < b->outbox.n; i++)
        rc = write_outbox(s, &outbox[i]);
    if (rc == SQLITE_OK && s->simulated)
        rc = pw_store__rebuild_from(s, s->sim_from);
    if (rc == SQLITE_OK)
        rc = pw_store__step_done(s->stmt[ST_COMMIT]);
    if (rc != SQLITE_OK) {
        pw_store__abort_txn(s, "write");
        if (s->failed_writes++ == 0)
            pw_warn("store", "writing history failed, will retry: %s", s->errmsg);
        return PW_STORE_E_WRITE;
    }
    if (s->failed_writes) {
        pw_info("store", "writing history again after %u failed batches", s->failed_writes);
        s->failed_writes = 0;
    }
    return 0;
}

/* ---- open and close ---- */

int pw_store__pragma_text(sqlite3 *db, const char *sql, char *out, size_t out_size)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *text = sqlite3_column_text(st, 0);
            pw_strlcpy(out, text ? (const char *)text : "", out_size);
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

int pw_store__check_file(sqlite3 *db, const char *path, int *version, char *err, size_t err_size)
{
    char app_id[24];
    int rc = pw_store__pragma_text(db, "PRAGMA application_id", app_id, sizeof(app_id));
    if (rc == SQLITE_OK)
        rc = pw_store__user_version(db, version);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot read %s: %s", path, sqlite3_errmsg(db));
        return PW_STORE_E_OPEN;
    }
    if (atol(app_id) != 0 && atol(app_id) != PW_STORE__APP_ID) {
        snprintf(err, err_size, "%s is an SQLite database of another program (application_id %s)",
                 path, app_id);
        return PW_STORE_E_OPEN;
    }
    if (*version > pw_store__schema_latest()) {
        snprintf(err, err_size,
                 "%s has schema version %d but this phasewise %s knows versions up to %d: it was "
                 "written by a newer phasewise; refusing to open it (upgrade phasewise, or move "
                 "the file away to start a new history)",
                 path, *version, PW_VERSION, pw_store__schema_latest());
        return PW_STORE_E_NEWER;
    }
    return 0;
}

/* The writer refuses files it cannot write, before anything else. */
static int check_writable(sqlite3 *db, const char *path, char *err, size_t err_size)
{
    if (sqlite3_db_readonly(db, "main") == 1) {
        snprintf(err, err_size, "%s is read-only", path);
        return PW_STORE_E_OPEN;
    }
    return 0;
}

/* Sets the connection up: WAL (verified), NORMAL sync, foreign keys, and for a new file
 * incremental auto-vacuum so that the size cap can give space back. */
static int configure(sqlite3 *db, int version, char *err, size_t err_size)
{
    char val[32], count[32];
    if (version == 0 &&
        pw_store__pragma_text(db, "PRAGMA page_count", count, sizeof(count)) == SQLITE_OK &&
        atol(count) == 0)
        sqlite3_exec(db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL);

    int rc = pw_store__pragma_text(db, "PRAGMA journal_mode = WAL", val, sizeof(val));
    if (rc != SQLITE_OK || strcmp(val, "wal") != 0) {
        snprintf(err, err_size,
                 "journal_mode=WAL did not take (got \"%s\": %s); the database must be a file on "
                 "a local file system",
                 val, rc == SQLITE_OK ? "not wal" : sqlite3_errmsg(db));
        return PW_STORE_E_WAL;
    }
    rc = sqlite3_exec(db,
                      "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                      "PRAGMA secure_delete = FAST;"
                      "PRAGMA journal_size_limit = " PW_STORE__STR(JOURNAL_SIZE_LIMIT),
                      NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = pw_store__pragma_text(db, "PRAGMA foreign_keys", val, sizeof(val));
    if (rc != SQLITE_OK || strcmp(val, "1") != 0) {
        snprintf(err, err_size, "cannot configure the database connection: %s",
                 rc == SQLITE_OK ? "foreign keys stay off" : sqlite3_errmsg(db));
        return PW_STORE_E_OPEN;
    }
    return 0;
}

int pw_store__connect(sqlite3 **db, const char *path, int flags, char *err, size_t err_size)
{
    int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        return PW_STORE_E_OPEN;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
    return 0;
}

int pw_store__side_open(sqlite3 **db, const char *path, const char *what, const char *const *sql,
                        sqlite3_stmt **st, int n, char *err, size_t err_size)
{
    int version = 0;
    int ret = pw_store__connect(db, path, SQLITE_OPEN_READWRITE, err, err_size);
    if (!ret)
        ret = pw_store__check_file(*db, path, &version, err, err_size);
    if (!ret && version != pw_store__schema_latest()) {
        snprintf(err, err_size, "%s has schema version %d, not %d: open it with the writer first",
                 path, version, pw_store__schema_latest());
        ret = PW_STORE_E_OPEN;
    }
    if (!ret && sqlite3_exec(*db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -2048", NULL,
                             NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot configure the %s connection: %s", what,
                 sqlite3_errmsg(*db));
        ret = PW_STORE_E_OPEN;
    }
    if (!ret)
        ret = pw_store__prepare(*db, sql, st, n, err, err_size);
    return ret;
}

int pw_store__side_fail(sqlite3 *db, char *errmsg, size_t errmsg_size, const char *what, int ret)
{
    snprintf(errmsg, errmsg_size, "%s: %s", what, sqlite3_errmsg(db));
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

int pw_store__prepare(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n, char *err,
                      size_t err_size)
{
    for (int i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL) !=
            SQLITE_OK) {
            snprintf(err, err_size, "cannot prepare \"%s\": %s", sql[i], sqlite3_errmsg(db));
            return PW_STORE_E_OPEN;
        }
    }
    return 0;
}

void pw_store__disconnect(sqlite3 *db, sqlite3_stmt **st, int n)
{
    for (int i = 0; i < n; i++)
        sqlite3_finalize(st[i]);
    int rc = sqlite3_close(db);
    if (rc != SQLITE_OK)
        pw_error("store", "closing the database failed: %s", sqlite3_errstr(rc));
}

/* Finalizes the statements and closes the handle; frees s. */
static void destroy(pw_store *s)
{
    pw_store__disconnect(s->db, s->stmt, ST_COUNT);
    cache_clear(&s->series);
    store__buf_free(&s->enc.out);
    free(s);
}

int pw_store_open(pw_store **out, const char *path, char *err, size_t err_size)
{
    *out = NULL;
    pw_store *s = pw_xcalloc(1, sizeof(*s));
    int version = 0, ret;
    if ((ret = pw_store__connect(&s->db, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err,
                                 err_size)))
        goto fail;
    if ((ret = pw_store__check_file(s->db, path, &version, err, err_size)) ||
        (ret = check_writable(s->db, path, err, err_size)) ||
        (ret = configure(s->db, version, err, err_size)) ||
        (ret = pw_store__migrate(s->db, pw_store__schema_latest(), err, err_size)) ||
        (ret = pw_store__prepare(s->db, stmt_sql, s->stmt, ST_COUNT, err, err_size)))
        goto fail;
    *out = s;
    return 0;
fail:
    destroy(s);
    return ret;
}

void pw_store_close(pw_store *s)
{
    if (!s)
        return;
    /* Leave a small file that a copy or backup gets whole: fold the WAL back in. */
    int rc =
        sqlite3_exec(s->db, "PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        pw_warn("store", "checkpoint at close failed: %s", sqlite3_errmsg(s->db));
    destroy(s);
}

void pw_store_mark_simulated(pw_store *s, int64_t from_ms)
{
    s->simulated = 1;
    s->sim_from = from_ms;
}

const char *pw_store_errmsg(const pw_store *s)
{
    return s->errmsg;
}

sqlite3 *pw_store__db(pw_store *s)
{
    return s->db;
}
