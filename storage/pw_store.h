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

#define PW_STORE_TAG_LEN 21 /* an RFID tag (OCPP IdToken, up to 20 characters) and its NUL */

enum pw_store_err {
    PW_STORE_OK = 0,
    PW_STORE_E_OPEN = -1,    /* cannot open or create the file */
    PW_STORE_E_WAL = -2,     /* journal_mode=WAL did not take */
    PW_STORE_E_NEWER = -3,   /* the database was written by a newer phasewise */
    PW_STORE_E_MIGRATE = -4, /* a migration step failed */
    PW_STORE_E_WRITE = -5,   /* a write failed (disk full, read-only, I/O error) */
    PW_STORE_E_QUERY = -6,   /* a query failed (I/O error, or the file is not migrated yet) */
    PW_STORE_E_ARG = -7,     /* an argument is out of range (empty time range, 0 points, ...) */
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
    uint8_t simulated; /* 1: simulated history of a demo (see pw_store_mark_simulated) */
} pw_store_event;

/* A charging session, written when it starts and again whenever it changes (energy, peak,
 * end, a ref or tag learned later): rows are matched on (charger, start_ms), so the server can
 * send the whole session each time; an empty ref or id_tag never erases a stored one. Energy is
 * register_wh - register_start_wh, both from the charger's own register. */
typedef struct pw_store_session {
    char charger[32];
    int64_t start_ms;           /* Unix ms */
    int64_t end_ms;             /* 0 while the session is still open */
    uint64_t register_start_wh; /* the charger's lifetime energy register at the start */
    uint64_t register_wh;       /* its latest reading (the final one once ended) */
    float peak_a;               /* highest terminal current so far; a lower value never lowers it */
    char ref[40];               /* the charger's session id or transaction id, "" if none */
    char id_tag[PW_STORE_TAG_LEN]; /* the RFID tag (OCPP idTag) that charged, "" if none */
    uint8_t simulated; /* 1: simulated history of a demo; once set, a row stays simulated */
} pw_store_session;

/* A new limit the balancer gave a charger, with its reason: a short code and the text a person
 * reads ("limited by Garage B, L2"). */
typedef struct pw_store_limit_change {
    int64_t ts_ms;
    char charger[32];
    float limit_a; /* 0 = paused */
    uint8_t phases;
    char reason[24];
    char text[136];
} pw_store_limit_change;

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
void pw_store_batch_add_session(pw_store_batch *b, const pw_store_session *s);
void pw_store_batch_add_limit_change(pw_store_batch *b, const pw_store_limit_change *c);

/* Writes the whole batch in one transaction. Returns 0, or PW_STORE_E_WRITE when nothing of b
 * was written (disk full, read-only file system, I/O error; the reason is in pw_store_errmsg).
 * The store stays usable after an error: a later write succeeds once the cause is gone, and the
 * caller may retry the same batch or drop it. b is borrowed for the call and not changed.
 * Not thread-safe per store: call from one thread at a time. */
int pw_store_write(pw_store *s, const pw_store_batch *b);

/* Marks every later write on s as past history simulated for a demo (server/backfill.c): the
 * sessions and events it writes are flagged simulated whatever their own flag says, and each
 * write also has maintenance build the 1- and 15-minute aggregates again from from_ms on, in the
 * same transaction. That is needed because the rows are older than what the appliance's own
 * writer (another connection) may already have aggregated; what it built from from_ms on is
 * rebuilt from the full-resolution blocks. Use a store of its own for this, never the live one. */
void pw_store_mark_simulated(pw_store *s, int64_t from_ms);

/* ---- resolution and retention ---- */

/* Samples are kept at full resolution for raw_keep_ms, and as 1-minute and 15-minute aggregates
 * (min/avg/max of each line current and of the limit) for m1_keep_ms and m15_keep_ms. Sessions
 * and events are always kept. When the used size of the database passes max_bytes, the oldest
 * fine-grained data goes first, down to 90% of the cap: full-resolution samples older than
 * cap_keep_raw_ms, then limit changes, then 1-minute aggregates, then the newer full-resolution
 * samples, then 15-minute aggregates; each oldest first, and samples only once aggregated. */
typedef struct pw_store_policy {
    int64_t raw_keep_ms;     /* default 7 days */
    int64_t m1_keep_ms;      /* default 2 years */
    int64_t m15_keep_ms;     /* default 2 years */
    int64_t limit_keep_ms;   /* limit changes, default 90 days */
    uint64_t max_bytes;      /* size cap; 0 = none; default 1 GiB */
    int64_t cap_keep_raw_ms; /* newest full resolution the cap takes last; default 24 hours */
    int64_t grace_ms; /* how late a sample may arrive and still be sealed in its minute; 5 s */
    uint32_t work;    /* bound on records handled per call; default 200,000 (~10 ms) */
} pw_store_policy;

/* Fills p with the defaults above. */
void pw_store_policy_default(pw_store_policy *p);

/* One bounded step of maintenance at wall-clock time now_ms: seals written samples into
 * compact per-minute blocks, builds the 1-minute and 15-minute aggregates, drops what the policy
 * no longer keeps and enforces the size cap. Every step is its own transaction, so a crash in
 * the middle loses nothing. Runs on the writer's thread, like pw_store_write (not concurrently
 * with it). Call it every few seconds; returns 1 when more work is waiting (call again soon),
 * 0 when it is up to date, PW_STORE_E_WRITE (see pw_store_errmsg; nothing half-done stays
 * behind) or PW_STORE_E_ARG for a policy with a negative period. */
int pw_store_maintain(pw_store *s, int64_t now_ms, const pw_store_policy *p);

/* ---- copies for backups (snapshot.c) ---- */

/* The newest schema version this code knows (PRAGMA user_version of a migrated database). */
int pw_store_schema_latest(void);

/* Copies the database at db_path into a new file out_path (it must not exist; mode 0600) with
 * SQLite's online backup API from a read connection, in one step: a consistent snapshot, taken
 * while the appliance may be writing. Returns 0 and the copy's schema version in *schema, or a
 * negative pw_store_err with a message in err (out_path is removed then). Runs on any thread;
 * may take as long as reading the whole file, so never on the loop thread. */
int pw_store_snapshot(const char *db_path, const char *out_path, int *schema, char *err,
                      size_t err_size);

/* Checks a copy that is not in use (a backup's database before it replaces the history): it
 * passes PRAGMA quick_check, is a phasewise history (application id, the meta table) and its
 * schema is not newer than this code knows. Opened read-only and immutable: it leaves no file
 * behind. Returns 0 and *schema, PW_STORE_E_NEWER, or PW_STORE_E_OPEN, with a message. */
int pw_store_check_copy(const char *path, int *schema, char *err, size_t err_size);

/* ---- queries: a separate read connection ---- */

/* A read-only connection for the UI and API. It never blocks the writer and never waits for it
 * (WAL readers see the last committed state). One thread at a time per reader: open one per
 * thread that runs queries (for example one per libuv worker that serves the API). */
typedef struct pw_store_reader pw_store_reader;

/* Opens a reader on a database that pw_store_open has already created and migrated. Returns 0 and
 * *out, or a negative pw_store_err with a message in err. Close with pw_store_reader_close. */
int pw_store_reader_open(pw_store_reader **out, const char *path, char *err, size_t err_size);
void pw_store_reader_close(pw_store_reader *r); /* NULL is allowed */

/* The message for the last failed query on r, or "". Borrowed, valid until the next call. */
const char *pw_store_reader_errmsg(const pw_store_reader *r);

enum pw_store_kind { PW_STORE_CHARGER = 1, PW_STORE_NODE = 2 };

typedef struct pw_store_stat {
    float min, avg, max;
} pw_store_stat;

/* One point of a downsampled series: everything recorded in [ts_ms, ts_ms + bucket). */
typedef struct pw_store_point {
    int64_t ts_ms;
    uint32_t samples;         /* full-resolution samples behind the point */
    pw_store_stat current[3]; /* per charger terminal, or per grid line for a node */
    pw_store_stat limit;      /* chargers only; 0 for nodes */
    uint8_t state, phases;    /* chargers only: the last ones in the bucket */
} pw_store_point;

/* Time series of one charger or node over [from_ms, to_ms), downsampled on the server side to at
 * most max_points equal buckets; buckets without data are left out. Uses the coarsest stored
 * resolution that is still finer than a bucket and fills in from other resolutions where that one
 * has no data (recent minutes, or history older than its retention). On success returns 0,
 * *points (caller frees with free(); NULL when *count is 0), *count and *bucket_ms (the bucket
 * width). An unknown name gives 0 points. PW_STORE_E_ARG unless 0 <= from_ms < to_ms <= 2^53
 * and 1 <= max_points <= 100,000. */
int pw_store_query_series(pw_store_reader *r, enum pw_store_kind kind, const char *name,
                          int64_t from_ms, int64_t to_ms, size_t max_points,
                          pw_store_point **points, size_t *count, int64_t *bucket_ms);

/* A stored session. Energy is the difference of the charger's register readings (0 if the
 * register went backwards, e.g. a replaced charger). */
typedef struct pw_store_session_row {
    int64_t id;
    pw_store_session s;
    uint64_t energy_wh;
} pw_store_session_row;

typedef struct pw_store_session_filter {
    const char *charger;    /* NULL = every charger */
    const char *ref;        /* NULL = any id */
    const char *id_tag;     /* NULL = any tag; "" = sessions without a tag; ignores case */
    int64_t from_ms, to_ms; /* sessions that started in [from, to); to_ms 0 = no upper bound */
    int open;               /* 1 = only open sessions, 0 = only ended ones, -1 = both */
    uint64_t min_energy_wh;
    uint32_t limit, offset; /* limit 0 = no limit */
} pw_store_session_filter;

/* Sessions matching f, newest start first. Returns 0, *rows (caller frees with free()) and
 * *count. */
int pw_store_query_sessions(pw_store_reader *r, const pw_store_session_filter *f,
                            pw_store_session_row **rows, size_t *count);

/* Energy per charger per local day ("2025-11-22") or month ("2025-11"). */
typedef struct pw_store_energy_row {
    char charger[32];
    char period[12];
    uint32_t sessions;
    uint64_t energy_wh;
} pw_store_energy_row;

enum pw_store_period { PW_STORE_DAY, PW_STORE_MONTH };

/* Energy of the sessions that started in [from_ms, to_ms), per charger (or only `charger` when
 * not NULL) and per day or month in the process's local time zone (TZ); a session counts whole
 * in the period it started in. Sorted by period, then charger. Returns 0, *rows (caller frees
 * with free()) and *count. */
int pw_store_query_energy(pw_store_reader *r, enum pw_store_period period, const char *charger,
                          int64_t from_ms, int64_t to_ms, pw_store_energy_row **rows,
                          size_t *count);

/* Energy per RFID tag per calendar month in UTC ("2026-12"): who charged how much, for billing
 * people or cars rather than chargers. Tags are compared ignoring case, as OCPP does
 * ("04a2b3c4" is "04A2B3C4"; the row shows the spelling that sorts first). Sessions without a
 * tag are one row with id_tag "". */
typedef struct pw_store_tag_energy_row {
    char month[8];
    char id_tag[PW_STORE_TAG_LEN];
    uint32_t sessions;
    uint64_t energy_wh;
} pw_store_tag_energy_row;

/* Energy of the sessions that started in [from_ms, to_ms), per UTC month and tag; a session
 * counts whole in the month it started in. Sorted by month, then tag. Returns 0, *rows (caller
 * frees with free(); NULL when *count is 0) and *count, or PW_STORE_E_ARG unless
 * from_ms < to_ms. */
int pw_store_query_tag_energy(pw_store_reader *r, int64_t from_ms, int64_t to_ms,
                              pw_store_tag_energy_row **rows, size_t *count);

/* The name a person reads for an RFID tag ("Anna's car"), or NULL / "" when it has none. Runs on
 * the reader's thread during the export; the string is borrowed until the next call. */
typedef const char *(*pw_store_tag_name_fn)(void *ud, const char *id_tag);

/* CSV (RFC 4180, header line, local times in ISO 8601 with offset, energy in kWh) of the sessions
 * matching f, or of the monthly energy per charger in [from_ms, to_ms) for billing. The session
 * export ends each row with the RFID tag and its name, which pw_store_csv_sessions leaves empty
 * and pw_store_csv_sessions_named asks tag_name for (ud is passed to it). Returns 0 and *csv
 * (NUL-terminated; caller frees with free()). */
int pw_store_csv_sessions(pw_store_reader *r, const pw_store_session_filter *f, char **csv);
int pw_store_csv_sessions_named(pw_store_reader *r, const pw_store_session_filter *f,
                                pw_store_tag_name_fn tag_name, void *ud, char **csv);
int pw_store_csv_monthly_energy(pw_store_reader *r, int64_t from_ms, int64_t to_ms, char **csv);

/* CSV of pw_store_query_tag_energy ("month,id_tag,name,sessions,energy_kwh"), names from
 * tag_name (NULL: left empty) as for pw_store_csv_sessions_named. Same ownership and errors. */
int pw_store_csv_tag_energy(pw_store_reader *r, int64_t from_ms, int64_t to_ms,
                            pw_store_tag_name_fn tag_name, void *ud, char **csv);

/* Events in [from_ms, to_ms), newest first, optionally only those of one kind or subject
 * (NULL = any), at most limit (0 = no limit). Returns 0, *rows (caller frees with free()) and
 * *count. */
int pw_store_query_events(pw_store_reader *r, int64_t from_ms, int64_t to_ms, const char *kind,
                          const char *subject, uint32_t limit, pw_store_event **rows,
                          size_t *count);

/* Limit changes in [from_ms, to_ms), newest first, optionally of one charger. Same ownership as
 * pw_store_query_events. */
int pw_store_query_limit_changes(pw_store_reader *r, int64_t from_ms, int64_t to_ms,
                                 const char *charger, uint32_t limit, pw_store_limit_change **rows,
                                 size_t *count);

/* ---- the fleet uplink's outbox (server/uplink.c, docs/mqtt.md) ----
 *
 * Messages for a central broker wait in the outbox table of the history database until the
 * broker has acknowledged them. Rows are queued through a batch, so they commit in the same
 * transaction as the history rows they mirror (a session is never recorded without being queued,
 * nor queued without being recorded). Every row gets the next id (never reused, also after a
 * delete); the uplink reads and deletes them through a pw_store_outbox connection of its own,
 * on a worker. The outbox is bounded (pw_store_outbox_trim): the oldest rows go first. */

#define PW_STORE_OUTBOX_KIND_LEN   16
#define PW_STORE_OUTBOX_MAX_ROWS   200000                    /* the default bound on rows */
#define PW_STORE_OUTBOX_MAX_AGE_MS (30LL * 24 * 3600 * 1000) /* ... and on their age */

/* Queues one message in b: kind ("session", "aggregate", "event", "alert"), the time it
 * describes (Unix ms) and its payload, a JSON object as text (copied; the batch frees it).
 * quarter_ms: for a 15-minute aggregate, the quarter's start; the write queues it only when it is
 * later than every quarter queued before (a meta mark in the same transaction), so a quarter is
 * never queued twice, also across a restart. 0 for every other kind. */
void pw_store_batch_add_outbox(pw_store_batch *b, int64_t ts_ms, const char *kind,
                               const char *payload, int64_t quarter_ms);

/* A connection that reads and deletes outbox rows. One thread at a time; it may wait on the
 * writer's lock (the busy timeout), so never use it on the loop thread. */
typedef struct pw_store_outbox pw_store_outbox;

/* Opens it on a database pw_store_open has created and migrated. Returns 0 and *out, or a
 * negative pw_store_err with a message in err. Close with pw_store_outbox_close (NULL allowed). */
int pw_store_outbox_open(pw_store_outbox **out, const char *path, char *err, size_t err_size);
void pw_store_outbox_close(pw_store_outbox *o);
/* The message for the last failed call on o, or "". Borrowed until the next call. */
const char *pw_store_outbox_errmsg(const pw_store_outbox *o);

typedef struct pw_store_outbox_msg {
    int64_t id;
    int64_t ts_ms;
    char kind[PW_STORE_OUTBOX_KIND_LEN];
    char *payload; /* NUL-terminated JSON object text, owned (pw_store_outbox_msgs_free) */
} pw_store_outbox_msg;

/* At most max rows with an id above after_id, in id order. Returns 0, *msgs (free with
 * pw_store_outbox_msgs_free; NULL when *count is 0) and *count, or PW_STORE_E_QUERY. */
int pw_store_outbox_read(pw_store_outbox *o, int64_t after_id, size_t max,
                         pw_store_outbox_msg **msgs, size_t *count);
void pw_store_outbox_msgs_free(pw_store_outbox_msg *msgs, size_t count);

/* Deletes the rows with these ids (delivered), in one transaction; ids already gone are fine.
 * Returns 0 or PW_STORE_E_WRITE (nothing deleted). */
int pw_store_outbox_ack(pw_store_outbox *o, const int64_t *ids, size_t n);

typedef struct pw_store_outbox_status {
    uint64_t queued;      /* rows waiting */
    int64_t oldest_ts_ms; /* ts of the first row waiting (lowest id), 0 when none */
    int64_t last_id;      /* the last id handed out (0 when none ever was) */
} pw_store_outbox_status;

/* How many rows wait and since when. Returns 0 or PW_STORE_E_QUERY. */
int pw_store_outbox_status_get(pw_store_outbox *o, pw_store_outbox_status *st);

/* Enforces the bound: drops the oldest rows so that at most max_rows remain (the ids above the
 * last id - max_rows) and none describes a time before now_ms - max_age_ms; 0 = no such bound.
 * *dropped gets how many went (the one way the outbox loses data: the caller logs it).
 * Returns 0 or PW_STORE_E_WRITE (nothing dropped). */
int pw_store_outbox_trim(pw_store_outbox *o, int64_t now_ms, uint64_t max_rows, int64_t max_age_ms,
                         uint64_t *dropped);

/* ---- the OCPP local controller's upstream queue (ocpp/relay.c, docs/ocpp.md) ----
 *
 * What the relay of each charge point must not lose in a restart: the calls the CSMS has not
 * answered yet (ocpp_queue, in the relay's order: seq), phasewise's transaction ids paired with
 * the CSMS's (ocpp_tx), and a few values kept whole (ocpp_kept: the last BootNotification, the
 * CSMS's charging profiles). The relay decides everything (order, bounds, what goes); this only
 * writes down its changes, a batch per transaction, and reads them back at start. Like the
 * outbox, it has a connection of its own, used on a worker, never on the loop thread (except the
 * one read at start, before anything is served). */

#define PW_STORE_OCPPQ_ID_LEN     49 /* a charge point id: 1..48 characters, NUL-terminated */
#define PW_STORE_OCPPQ_TXID_LEN   24
#define PW_STORE_OCPPQ_ACTION_LEN 40

typedef struct pw_store_ocppq pw_store_ocppq;

/* Opens it on a database pw_store_open has created and migrated. Returns 0 and *out, or a
 * negative pw_store_err with a message in err. Close with pw_store_ocppq_close (NULL allowed). */
int pw_store_ocppq_open(pw_store_ocppq **out, const char *path, char *err, size_t err_size);
void pw_store_ocppq_close(pw_store_ocppq *q);
/* The message for the last failed call on q, or "". Borrowed until the next call. */
const char *pw_store_ocppq_errmsg(const pw_store_ocppq *q);

enum pw_store_ocppq_kind {
    PW_STORE_OCPPQ_CALL = 1, /* a call queued: seq, ts_ms, connector, local_tx, action, text */
    PW_STORE_OCPPQ_CALL_TX,  /* the StartTransaction at seq got phasewise's id local_tx */
    PW_STORE_OCPPQ_DONE,     /* the call at seq left the queue */
    PW_STORE_OCPPQ_TX,       /* local_tx is csms_tx at the CSMS, on connector */
    PW_STORE_OCPPQ_TX_DONE,  /* local_tx is forgotten */
    PW_STORE_OCPPQ_KEPT,     /* the value named action is text ("" deletes it) */
};

/* One change, of charge point cp. */
typedef struct pw_store_ocppq_op {
    enum pw_store_ocppq_kind kind;
    char cp[PW_STORE_OCPPQ_ID_LEN];
    int64_t seq;
    int64_t ts_ms;
    int connector;
    char local_tx[PW_STORE_OCPPQ_TXID_LEN];
    char csms_tx[PW_STORE_OCPPQ_TXID_LEN];
    char action[PW_STORE_OCPPQ_ACTION_LEN];
    char *text; /* a call's JSON payload, or a kept value; borrowed */
} pw_store_ocppq_op;

/* Applies ops in order, all or none (one transaction). Returns 0 or PW_STORE_E_WRITE. */
int pw_store_ocppq_apply(pw_store_ocppq *q, const pw_store_ocppq_op *ops, size_t n);

/* What is kept of one charge point, as pw_store_ocppq_load reads it: its calls in order (CALL
 * ops, local_tx as last set), its transaction pairs (TX ops) and its kept values (KEPT ops); the
 * text of each is owned by the array (pw_store_ocppq_ops_free). */
typedef struct pw_store_ocppq_saved {
    pw_store_ocppq_op *ops;
    size_t n;
} pw_store_ocppq_saved;

/* Everything kept of cp: kept values first, then the transaction pairs, then the calls in order.
 * Returns 0 or PW_STORE_E_QUERY (nothing in *out). */
int pw_store_ocppq_load(pw_store_ocppq *q, const char *cp, pw_store_ocppq_saved *out);
void pw_store_ocppq_saved_free(pw_store_ocppq_saved *s);

/* How many calls of cp wait. Returns 0 or PW_STORE_E_QUERY. */
int pw_store_ocppq_count(pw_store_ocppq *q, const char *cp, uint64_t *count);

#endif
