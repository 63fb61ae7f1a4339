/* The appliance's history in SQLite: samples, limit changes, events and sessions. The store
 * owns the database handle; writes come in batches, one transaction each.
 *
 * Threading contract (the store never includes uv.h and starts no thread of its own):
 * - A pw_store is the one writing connection. Every call on it (pw_store_write and the
 *   maintenance calls) must come from one thread at a time; the server runs them on a libuv
 *   worker (uv_queue_work), one job at a time, so the control loop never waits on the disk.
 *   A call may take as long as an fsync or a checkpoint: never call it on the loop thread.
 * - A batch (pw_store_batch) is plain memory with no database handle: the loop fills one while a
 *   worker writes the previous one; it must not be touched while pw_store_write reads it.
 * - pw_store_strerror is thread-safe; pw_store_errmsg belongs to the store's thread.
 * - Queries for the UI and API go through separate read connections, so a query never waits
 *   for a write (WAL lets readers and the writer run concurrently). */
#ifndef PW_STORE_H
#define PW_STORE_H

#include <stddef.h>
#include <stdint.h>

enum pw_store_err {
    PW_STORE_OK = 0,
    PW_STORE_E_OPEN = -1,    /* cannot open or create the file */
    PW_STORE_E_WAL = -2,     /* journal_mode=WAL did not take */
    PW_STORE_E_NEWER = -3,   /* the database was written by a newer phasewise */
    PW_STORE_E_MIGRATE = -4, /* a migration step failed */
    PW_STORE_E_WRITE = -5,   /* a write failed (disk full, read-only, I/O error) */
    PW_STORE_E_QUERY = -6,
};

const char *pw_store_strerror(int err);

typedef struct pw_store pw_store;

/* Opens (creating if needed) and migrates the database at path. Returns 0 and *out, or a
 * negative pw_store_err with a message in err. Close with pw_store_close. */
int pw_store_open(pw_store **out, const char *path, char *err, size_t err_size);

/* Checkpoints the WAL, finalizes every statement and closes. NULL is allowed. */
void pw_store_close(pw_store *s);

/* The database's message for the last failed call on s ("database or disk is full", ...), for
 * logs and the UI, or "" after a success. Borrowed, valid until the next call on s. */
const char *pw_store_errmsg(const pw_store *s);

typedef struct pw_store_charger_sample {
    int64_t ts_ms; /* Unix time in milliseconds */
    char charger[32];
    uint8_t state;      /* IEC 61851 state, 0 = A ... 5 = F */
    float current_a[3]; /* per terminal */
    float limit_a;
    uint8_t phases;
} pw_store_charger_sample;

typedef struct pw_store_node_sample {
    int64_t ts_ms;
    char node[32];
    float current_a[3]; /* per grid line, measured total */
} pw_store_node_sample;

typedef struct pw_store_event {
    int64_t ts_ms;
    char kind[24];    /* "charger_online", "config_change", "datagram_rejected", ... */
    char subject[32]; /* charger or node id, or "" */
    char detail[224];
} pw_store_event;

/* A batch of rows collected during one tick; plain memory, no database handle, so the control
 * loop can fill one while a worker writes the previous one. */
typedef struct pw_store_batch pw_store_batch;

pw_store_batch *pw_store_batch_new(void);
void pw_store_batch_free(pw_store_batch *b);
void pw_store_batch_clear(pw_store_batch *b);
size_t pw_store_batch_rows(const pw_store_batch *b);
void pw_store_batch_add_charger(pw_store_batch *b, const pw_store_charger_sample *s);
void pw_store_batch_add_node(pw_store_batch *b, const pw_store_node_sample *s);
void pw_store_batch_add_event(pw_store_batch *b, const pw_store_event *e);

/* Writes the whole batch in one transaction. Returns 0, or PW_STORE_E_WRITE when nothing of b
 * was written (disk full, read-only file system, I/O error; the reason is in pw_store_errmsg).
 * The store stays usable after an error: a later write succeeds once the cause is gone, and the
 * caller may retry the same batch or drop it. b is borrowed for the call and not changed.
 * Not thread-safe per store: call from one thread at a time. */
int pw_store_write(pw_store *s, const pw_store_batch *b);

#endif
