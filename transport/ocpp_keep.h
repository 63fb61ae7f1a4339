/* The local controller's relays kept across a restart (transport/ocpp.c): each relay's changes
 * (pw_ocpp_relay_keep) are written to the history database (storage/ocppq.c) by a worker, a
 * batch per SQLite transaction, in the order they happened, and read back once at start.
 *
 * Frames for a charge point wait until the changes made before them are written
 * (pw_ocpp_keep_written >= the pw_ocpp_keep_queued they were sent at): a charge point is never
 * answered for a call that a SIGKILL could still lose, so it sends it again instead. A batch
 * that cannot be written is tried again a second later, but frames wait for one attempt only:
 * local control never waits on a failing disk. */
#ifndef PW_OCPP_KEEP_H
#define PW_OCPP_KEEP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pw_ocpp_relay.h"

typedef struct pw_ocpp_keep pw_ocpp_keep;

/* Some changes were written (or their attempt failed): frames waiting for them may go. */
typedef void (*pw_ocpp_keep_written_cb)(void *ud);

/* Opens the keeper on db_path, a database the writer has created and migrated (on the loop
 * thread, at start). NULL with a message in err. */
pw_ocpp_keep *pw_ocpp_keep_open(uv_loop_t *loop, const char *db_path,
                                pw_ocpp_keep_written_cb written, void *ud, char *err,
                                size_t err_size);

/* Gives relay r everything kept of charge point cp (at start, on the loop thread, before
 * anything is served): its boot, transaction pairs and calls, then the CSMS's profiles as at
 * wall (Unix ms). Returns how many calls wait in r, or -1 with a message in err. */
int pw_ocpp_keep_restore(pw_ocpp_keep *k, const char *cp, pw_ocpp_relay *r, int64_t wall, char *err,
                         size_t err_size);

/* Queues one change of cp's relay for writing (copied); wall is the Unix time in ms. */
void pw_ocpp_keep_add(pw_ocpp_keep *k, const char *cp, const pw_ocpp_relay_keep *change,
                      int64_t wall);

/* Queues a value of cp's kept whole (the CSMS's "profiles", a dump): text, "" deletes it. */
void pw_ocpp_keep_value(pw_ocpp_keep *k, const char *cp, const char *name, const char *text,
                        int64_t wall);

/* The number of the last change queued, and of the last one attempted. */
uint64_t pw_ocpp_keep_queued(const pw_ocpp_keep *k);
uint64_t pw_ocpp_keep_written(const pw_ocpp_keep *k);

typedef struct pw_ocpp_keep_stats {
    uint64_t written;  /* changes written */
    uint64_t failures; /* batches that could not be written (tried again) */
    uint64_t lost;     /* changes given up on: too many waiting while the disk fails */
    size_t waiting;    /* changes not written yet */
} pw_ocpp_keep_stats;
void pw_ocpp_keep_stats_get(const pw_ocpp_keep *k, pw_ocpp_keep_stats *out);

/* Ends it: what is still queued is written first (after a batch being written, if any), then
 * the keeper frees itself; the loop must run on until then. written is not called any more. */
void pw_ocpp_keep_close(pw_ocpp_keep *k);

#endif
