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

/* Tiers of resolution; the tail and block tables carry the tier in a column. */
enum { PW_STORE__TIER_RAW = 0 };

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

/* ---- schema.c ---- */

/* The schema version this code writes: the number of migration steps. */
int pw_store__schema_latest(void);

/* Runs the migration steps from the database's user_version up to target, each step and its
 * user_version in one transaction. Returns 0 or PW_STORE_E_MIGRATE with a message in err. */
int pw_store__migrate(sqlite3 *db, int target, char *err, size_t err_size);

/* Reads PRAGMA user_version into *out. Returns 0 or a SQLite error code. */
int pw_store__user_version(sqlite3 *db, int *out);

/* ---- store.c ---- */

/* The writer's connection, for tests that need to reach past the API (fault injection). */
sqlite3 *pw_store__db(pw_store *s);

#endif
