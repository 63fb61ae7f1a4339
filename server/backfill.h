/* The demo's first minutes: on a first start with an empty database, the 7 days before now are
 * simulated in fake time (the facility model driven by the real control core, sim/dayrun.c) and
 * written through the appliance's own history path, marked as simulated, so History has
 * sessions, charts and monthly energy at once. Only the demo does this. */
#ifndef PW_BACKFILL_H
#define PW_BACKFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pw_cfg.h"

#define PW_BACKFILL_DAYS 7

/* Whether the database at db_path (created and migrated) holds no history yet: no session and no
 * event (every start of the appliance writes one). Runs a short query on the caller's thread: call
 * it at start-up, before the loop runs. Returns 0 and *empty, or -1 with a message in err. */
int pw_backfill_db_empty(const char *db_path, bool *empty, char *err, size_t err_size);

/* Simulates the PW_BACKFILL_DAYS days before now_wall (Unix ms) at the facility cfg (taken: freed
 * by the backfill) on a libuv worker of loop, with its own control core and its own store
 * connection to db_path (copied), and writes samples every minute, sessions, events and limit
 * changes as server/history.c does, in one transaction, every session and event flagged
 * simulated (pw_store_mark_simulated) and the span marked by two simulated_history events. The
 * loop never waits: the result is logged from the loop when done (with the time taken), and the
 * pending work keeps uv_run going until then. Returns 0, or -1 (logged; cfg freed) when the work
 * cannot be queued. */
int pw_backfill_start(uv_loop_t *loop, const char *db_path, pw_cfg *cfg, int64_t now_wall);

#endif
