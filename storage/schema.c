/* The database schema as an ordered list of migration steps. A step is never edited once it has
 * shipped: a change to the schema is a new step at the end of the array. */
#include "store_internal.h"

#include <stdio.h>

#include "pw_util.h"

/* Version 1: series names, pending samples, events. */
static const char step1[] =
    /* One row per charger or node; samples refer to it by a small integer. */
    "CREATE TABLE series ("
    "  id INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL," /* 1 charger, 2 node */
    "  name TEXT NOT NULL,"
    "  UNIQUE (kind, name));"
    /* Records not yet sealed into blocks, one per sample, values encoded by codec.c. */
    "CREATE TABLE tail ("
    "  id INTEGER PRIMARY KEY,"
    "  tier INTEGER NOT NULL,"
    "  series_id INTEGER NOT NULL REFERENCES series(id),"
    "  ts INTEGER NOT NULL," /* Unix ms */
    "  v BLOB NOT NULL);"
    "CREATE TABLE event ("
    "  id INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  detail TEXT NOT NULL);"
    "CREATE INDEX event_ts ON event(ts);";

/* Version 2: sealed blocks and their aggregates, sessions, limit changes, maintenance marks. */
static const char step2[] =
    /* Records of one series, tier and period (minute, hour or day), encoded by codec.c. */
    "CREATE TABLE block ("
    "  id INTEGER PRIMARY KEY,"
    "  tier INTEGER NOT NULL," /* 0 raw, 1 one-minute, 2 fifteen-minute aggregates */
    "  series_id INTEGER NOT NULL REFERENCES series(id),"
    "  t0 INTEGER NOT NULL," /* first record, Unix ms */
    "  t1 INTEGER NOT NULL," /* last record */
    "  n INTEGER NOT NULL,"  /* records */
    "  v BLOB NOT NULL);"
    "CREATE INDEX block_series ON block(tier, series_id, t0);"
    "CREATE INDEX block_age ON block(tier, t1);"
    /* Samples arrive in time order, so this index only ever grows at its end. */
    "CREATE INDEX tail_age ON tail(tier, ts);"
    "CREATE TABLE session ("
    "  id INTEGER PRIMARY KEY,"
    "  charger_id INTEGER NOT NULL REFERENCES series(id),"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER," /* NULL while open */
    "  register_start_wh INTEGER NOT NULL,"
    "  register_wh INTEGER NOT NULL,"
    "  peak_ca INTEGER NOT NULL," /* centiamperes */
    "  ref TEXT NOT NULL,"
    "  UNIQUE (charger_id, start_ms));"
    "CREATE INDEX session_start ON session(start_ms);"
    "CREATE TABLE limit_change ("
    "  id INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  charger_id INTEGER NOT NULL REFERENCES series(id),"
    "  limit_ca INTEGER NOT NULL,"
    "  phases INTEGER NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  text TEXT NOT NULL);"
    "CREATE INDEX limit_change_ts ON limit_change(ts);"
    "CREATE INDEX limit_change_charger ON limit_change(charger_id, ts);"
    /* Progress of maintenance: how far each aggregate tier is built. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX event_subject ON event(subject, ts);";

/* Version 3: the pending-sample index also carries the series, so that a query for one series
 * over the newest minutes filters on the index alone instead of reading every pending row of
 * every series. It still only ever grows at its end as samples arrive. */
static const char step3[] = "DROP INDEX tail_age;"
                            "CREATE INDEX tail_age ON tail(tier, ts, series_id);";

/* Version 4: the RFID tag (OCPP idTag) that charged, so energy can be billed per person or car.
 * Sessions written before it have none (''). OCPP idTags ignore letter case (CiString20), as the
 * config's tag list does: so does the column, its index, the filter and the grouping. The index
 * serves the tag filter of the sessions query; the per-month report reads every session of its
 * range anyway. */
static const char step4[] =
    "ALTER TABLE session ADD COLUMN id_tag TEXT NOT NULL DEFAULT '' COLLATE NOCASE;"
    "CREATE INDEX session_tag ON session(id_tag, start_ms);";

/* Version 5: history simulated in fake time for a demo (server/backfill.c) is marked, so the UI,
 * the API and exports can say so: sessions and events carry a flag (0 for everything written
 * before, which was real). Samples and limit changes are not flagged: the simulated span is told
 * by its events (kind simulated_history at its start and end). */
static const char step5[] = "ALTER TABLE session ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;"
                            "ALTER TABLE event ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;";

/* Version 6: the fleet uplink's outbox (server/uplink.c, docs/mqtt.md): messages for a central
 * broker, queued in the same transaction as the history rows they mirror and deleted once the
 * broker has acknowledged them. AUTOINCREMENT so that an id is never handed out twice, also
 * after the newest rows were delivered and deleted: a central system keeps the last id per site.
 * ts is the time the row describes; its index serves the age bound (pw_store_outbox_trim). */
static const char step6[] = "CREATE TABLE outbox ("
                            "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
                            "  ts INTEGER NOT NULL,"    /* Unix ms */
                            "  kind TEXT NOT NULL,"     /* session, aggregate, event, alert */
                            "  payload TEXT NOT NULL);" /* a JSON object */
                            "CREATE INDEX outbox_ts ON outbox(ts);";

/* Version 7: the OCPP local controller's relay state (ocpp/relay.c, docs/ocpp.md), so that it
 * survives a restart: the calls of a charge point the CSMS has not answered yet, in the relay's
 * order (seq), phasewise's transaction ids paired with the CSMS's, and values kept whole (the
 * last BootNotification, the CSMS's profiles). */
static const char step7[] = "CREATE TABLE ocpp_queue ("
                            "  cp TEXT NOT NULL,"                  /* the charge point id */
                            "  seq INTEGER NOT NULL,"              /* the relay's order */
                            "  ts INTEGER NOT NULL,"               /* Unix ms, when it was made */
                            "  connector INTEGER NOT NULL,"        /* 0 when the call names none */
                            "  local_tx TEXT NOT NULL DEFAULT ''," /* phasewise's transaction id */
                            "  action TEXT NOT NULL,"
                            "  payload TEXT NOT NULL," /* a JSON object */
                            "  PRIMARY KEY (cp, seq)) WITHOUT ROWID;"
                            "CREATE TABLE ocpp_tx ("
                            "  cp TEXT NOT NULL,"
                            "  local_tx TEXT NOT NULL,"
                            "  csms_tx TEXT NOT NULL,"
                            "  connector INTEGER NOT NULL,"
                            "  PRIMARY KEY (cp, local_tx)) WITHOUT ROWID;"
                            "CREATE TABLE ocpp_kept ("
                            "  cp TEXT NOT NULL,"
                            "  name TEXT NOT NULL," /* "boot", "profiles" */
                            "  value TEXT NOT NULL,"
                            "  PRIMARY KEY (cp, name)) WITHOUT ROWID;";

static const char *const steps[] = {step1, step2, step3, step4, step5, step6, step7};

int pw_store__schema_latest(void)
{
    return (int)PW_ARRAY_LEN(steps);
}

int pw_store__user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Applies the step that leads from the database's current version, inside one IMMEDIATE
 * transaction: user_version is read under the write lock in case another process migrated
 * meanwhile. *version is the version before the step, or after it once committed. */
static int run_step(sqlite3 *db, int target, int *version, char *err, size_t err_size)
{
    int v = 0;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = pw_store__user_version(db, &v);
    *version = v;
    if (rc == SQLITE_OK && v < target) {
        char pragmas[96];
        /* The application id marks the file as ours from the first step on. */
        snprintf(pragmas, sizeof(pragmas), "PRAGMA application_id = %d; PRAGMA user_version = %d",
                 PW_STORE__APP_ID, v + 1);
        rc = sqlite3_exec(db, steps[v], NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK && v < target)
        *version = v + 1;
    if (rc != SQLITE_OK) {
        /* The message first: ROLLBACK replaces it. */
        snprintf(err, err_size, "migrating the database from schema version %d failed: %s", v,
                 sqlite3_errmsg(db));
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int pw_store__migrate(sqlite3 *db, int target, char *err, size_t err_size)
{
    assert(target >= 0 && target <= pw_store__schema_latest());
    int version = 0;
    do {
        if (run_step(db, target, &version, err, err_size) != SQLITE_OK)
            return PW_STORE_E_MIGRATE;
    } while (version < target);
    return 0;
}
