/* Internals shared by the storage sources and its tests: the record codec, the migration runner
 * and the writer's state. Not part of the public API. */
#ifndef PW_STORE_INTERNAL_H
#define PW_STORE_INTERNAL_H

#include <assert.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_store.h"

/* application_id of every phasewise database ("phws"), so another program's file is refused. */
#define PW_STORE__APP_ID 0x70687773 /* 1885894515 */

/* Series kinds as stored in series.kind. */
enum { PW_STORE__KIND_CHARGER = 1, PW_STORE__KIND_NODE = 2 };

/* Raw record fields, in this order: the three currents first so that aggregation code can treat
 * node and charger series alike. Currents and limits are stored in centiamperes. */
enum {
    PW_STORE__F_I1,
    PW_STORE__F_I2,
    PW_STORE__F_I3,
    PW_STORE__F_LIMIT,
    PW_STORE__F_STATE,
    PW_STORE__F_PHASES,
    PW_STORE__RAW_FIELDS
};

/* The currents and the limit are "measured" fields: aggregates keep their min/avg/max. */
#define PW_STORE__MEASURED 4

/* Aggregate record fields: the number of raw samples, then min/avg/max of each measured field,
 * then the last state and phase count. */
enum {
    PW_STORE__A_N,
    PW_STORE__A_STATS, /* min, avg, max of field m at PW_STORE__A_STATS + 3 * m + 0..2 */
    PW_STORE__A_STATE = PW_STORE__A_STATS + 3 * PW_STORE__MEASURED,
    PW_STORE__A_PHASES,
    PW_STORE__AGG_FIELDS
};

/* Tiers of resolution. Raw records live in the tail table until they are sealed into one block
 * per series and minute; the aggregate tiers are built from the tier below them, one block per
 * series and hour (1-minute records) or day (15-minute records). */
enum { PW_STORE__TIER_RAW, PW_STORE__TIER_M1, PW_STORE__TIER_M15, PW_STORE__TIERS };

typedef struct store__tier {
    int nfields;
    int64_t res_ms;  /* one record per res_ms (raw: nominal, samples come as they come) */
    int64_t span_ms; /* one block per series and span_ms, aligned to multiples of it */
} store__tier;

extern const store__tier pw_store__tiers[PW_STORE__TIERS];

#define STORE_MAX_FIELDS 16

#define PW_STORE__STR_(x) #x
#define PW_STORE__STR(x)  PW_STORE__STR_(x)

/* ---- codec.c ---- */

typedef struct store__rec {
    int64_t ts;
    int32_t v[STORE_MAX_FIELDS];
} store__rec;

typedef struct store__buf {
    uint8_t *p;
    size_t len, cap;
} store__buf;

typedef struct store__enc {
    store__buf out; /* owned; reused across store__enc_init calls, freed with store__buf_free */
    int64_t prev_ts, prev_dt;
    int32_t prev[STORE_MAX_FIELDS];
    int nfields;
    int count;
} store__enc;

typedef struct store__dec {
    const uint8_t *p, *end; /* borrowed */
    int64_t prev_ts, prev_dt;
    int32_t prev[STORE_MAX_FIELDS];
    int nfields;
} store__dec;

void store__buf_free(store__buf *b);
/* Starts a new encoding at time t0 (the block's start) keeping the output buffer's memory. */
void store__enc_init(store__enc *e, int64_t t0, int nfields);
void store__enc_add(store__enc *e, const store__rec *r);
/* Decodes data (borrowed for the decoder's life) written by an encoder started at t0. */
void store__dec_init(store__dec *d, const void *data, size_t len, int64_t t0, int nfields);
/* Returns 1 with the next record in r, 0 at the end, -1 when the data is corrupt. */
int store__dec_next(store__dec *d, store__rec *r);

/* Sums records of any tier into one aggregate: what a 1-minute record, a 15-minute record and a
 * point of a downsampled series are made of. */
typedef struct store__acc {
    uint32_t n;
    int32_t min[PW_STORE__MEASURED], max[PW_STORE__MEASURED];
    int64_t sum[PW_STORE__MEASURED]; /* sample-weighted, so merged averages stay exact */
    int32_t state, phases;           /* of the latest record */
    int64_t last_ts;
} store__acc;

/* Adds record r of the given tier to a (zero-initialised for an empty aggregate). */
void store__acc_add(store__acc *a, int tier, const store__rec *r);
/* Writes a (n > 0) as an aggregate record at time ts; averages round to the nearest unit. */
void store__acc_record(const store__acc *a, int64_t ts, store__rec *out);

/* ---- schema.c ---- */

/* The schema version this code writes: the number of migration steps. */
int pw_store__schema_latest(void);

/* Runs the migration steps from the database's user_version up to target, each step and its
 * user_version in one transaction. Returns 0 or PW_STORE_E_MIGRATE with a message in err. */
int pw_store__migrate(sqlite3 *db, int target, char *err, size_t err_size);

/* Reads PRAGMA user_version into *out. Returns 0 or a SQLite error code. */
int pw_store__user_version(sqlite3 *db, int *out);

/* ---- store.c: the writer ---- */

/* Statements of the writing connection, prepared once at open. */
enum store__stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SERIES_FIND,
    ST_SERIES_ADD,
    ST_TAIL_ADD,
    ST_EVENT_ADD,
    ST_SESSION_PUT,
    ST_LIMIT_ADD,
    ST_META_GET,
    ST_META_SET,
    ST_TAIL_OLDEST,     /* tail rows before a time, oldest first */
    ST_TAIL_DEL,        /* one tail row */
    ST_TAIL_DEL_BEFORE, /* every tail row before a time */
    ST_TAIL_ANY_BEFORE, /* is any tail row older than a time? */
    ST_BLOCK_ADD,
    ST_BLOCK_NEXT,    /* the first block end at or after a time, per tier */
    ST_BLOCK_RANGE,   /* a series' blocks of one tier starting in a range */
    ST_BLOCK_DEL_OLD, /* the oldest blocks of a tier ending before a time */
    ST_LIMIT_DEL_OLD, /* the oldest limit changes before a time */
    ST_SERIES_AFTER,  /* the next series id */
    ST_AGG_DEL_FROM,  /* aggregate blocks of a tier from a time on */
    ST_OUTBOX_ADD,    /* one message for the fleet uplink */
    ST_COUNT
};

/* Series ids by (kind, name), so a tick with 1,000 samples costs no lookups in the database. */
typedef struct series_slot {
    int64_t id; /* 0 = empty slot */
    uint32_t hash;
    int kind;
    char name[32];
} series_slot;

typedef struct series_cache {
    series_slot *slots;
    size_t cap; /* power of two */
    size_t count;
} series_cache;

struct pw_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    series_cache series;
    store__enc enc;
    unsigned failed_writes; /* consecutive, for logging the start and end of an outage once */
    unsigned failed_maint;
    int cap_warned; /* the size cap could not be met: logged once until it can */
    int simulated;  /* pw_store_mark_simulated: every write is simulated history from sim_from */
    int64_t sim_from;
    char errmsg[256];
};

/* Runs a statement that returns no rows and resets it. Returns SQLITE_OK or the error. */
int pw_store__step_done(sqlite3_stmt *st);

/* Runs a pragma or query and copies the first column of its first row (or "") into out. */
int pw_store__pragma_text(sqlite3 *db, const char *sql, char *out, size_t out_size);

/* Copies a fixed-size, possibly unterminated name field into a terminated 32-byte buffer. */
void pw_store__name(char out[32], const char *field, size_t field_size);

/* Ends a failed transaction on the writer: keeps SQLite's message in s->errmsg prefixed with
 * what, rolls back what is left and forgets cached series ids the rollback may have removed. */
void pw_store__abort_txn(pw_store *s, const char *what);

/* Has maintenance build the aggregate tiers again from from_ms on, inside the caller's
 * transaction: drops their blocks from the start of from_ms's period on and moves the built
 * marks back to it. Returns SQLITE_OK or the error (maintain.c). */
int pw_store__rebuild_from(pw_store *s, int64_t from_ms);

/* The writer's connection, for tests that need to reach past the API (fault injection). */
sqlite3 *pw_store__db(pw_store *s);

/* Opens a connection (flags as for sqlite3_open_v2) with extended result codes and the busy
 * timeout. Returns 0 or PW_STORE_E_OPEN with a message; *db may need closing either way. */
int pw_store__connect(sqlite3 **db, const char *path, int flags, char *err, size_t err_size);

/* Prepares n statements once, persistent. Returns 0 or PW_STORE_E_OPEN with a message. */
int pw_store__prepare(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n, char *err,
                      size_t err_size);

/* Opens a side connection of a worker (the outbox's, the OCPP queue's) on a database the writer
 * has created and migrated: it never migrates, runs with synchronous NORMAL and a small cache,
 * and prepares its n statements. Returns 0, or PW_STORE_E_OPEN with a message naming what;
 * *db (and the statements) need pw_store__disconnect either way. */
int pw_store__side_open(sqlite3 **db, const char *path, const char *what, const char *const *sql,
                        sqlite3_stmt **st, int n, char *err, size_t err_size);

/* Keeps SQLite's message for db as "<what>: <message>" in errmsg, ends a transaction left
 * open, and returns ret. */
int pw_store__side_fail(sqlite3 *db, char *errmsg, size_t errmsg_size, const char *what, int ret);

/* Finalizes n statements (NULL allowed) and closes db, logging a failure. */
void pw_store__disconnect(sqlite3 *db, sqlite3_stmt **st, int n);

/* Checks that the file is a phasewise database (or a new empty one) this code can read, before
 * anything touches it. Returns 0 and its schema version, or PW_STORE_E_OPEN / _E_NEWER. */
int pw_store__check_file(sqlite3 *db, const char *path, int *version, char *err, size_t err_size);

/* ---- reader.c, report.c: the read connection ---- */

enum store__rstmt {
    RS_BEGIN,
    RS_COMMIT,
    RS_SERIES_FIND,
    RS_META_GET,
    RS_BLOCK_RANGE,
    RS_BLOCK_OLDEST,
    RS_TAIL_RANGE,
    RS_TAIL_OLDEST,
    RS_SESSIONS,
    RS_ENERGY,
    RS_TAG_ENERGY,
    RS_EVENTS,
    RS_LIMITS,
    RS_COUNT
};

struct pw_store_reader {
    sqlite3 *db;
    sqlite3_stmt *stmt[RS_COUNT];
    char errmsg[256];
};

/* Records SQLite's message for a failed query on r, prefixed with what, ends a read transaction
 * left open and returns PW_STORE_E_QUERY. */
int pw_store__reader_fail(pw_store_reader *r, const char *what);

/* Steps st to the end, appending one item of item_size per row as fill writes it; on success
 * *items (caller frees with free(); NULL when empty) and *count. st is reset either way. */
int pw_store__collect(pw_store_reader *r, sqlite3_stmt *st, size_t item_size,
                      void (*fill)(sqlite3_stmt *st, void *item), void **items, size_t *count);

/* Binds a C string, or NULL for a NULL pointer. */
void pw_store__bind_opt(sqlite3_stmt *st, int col, const char *s);

/* SQL shared by the writer and the reader. */
#define PW_STORE__SQL_BLOCK_RANGE                                                                  \
    "SELECT t0, n, v FROM block WHERE tier = ?1 AND series_id = ?2 AND t0 >= ?3 AND t0 < ?4 "      \
    "ORDER BY t0"

#endif
