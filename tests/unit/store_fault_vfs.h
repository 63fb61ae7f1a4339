/* A SQLite VFS for tests that wraps the default one and injects storage faults (SQLite's own
 * seam for this): a full disk, every write an I/O error, and database files that open
 * read-only. Shared by store_fault_test.c and history_test.c. */
#ifndef STORE_FAULT_VFS_H
#define STORE_FAULT_VFS_H

#include <stdint.h>

typedef struct store_fault_set {
    int64_t quota; /* bytes any file may still grow by; < 0 = no limit (a disk with space) */
    int eio;       /* every write and sync fails, as on a file system remounted read-only */
    int readonly;  /* main database files open read-only */
} store_fault_set;

/* The faults in force, set directly by the tests. SQLite reads them on whichever thread runs
 * the connection: change them only while no write is in flight (for a libuv worker, before
 * uv_queue_work or after its after-work callback). */
extern store_fault_set store_faults;

/* Registers the fault VFS as SQLite's default, so every connection opened afterwards goes
 * through it. Call once before opening any connection (a cmocka group setup). Returns 0, or -1
 * when SQLite refuses. */
int store_fault_vfs_register(void);

/* Unregisters it again; every connection opened through it must be closed first. */
void store_fault_vfs_unregister(void);

/* No faults: no quota, no I/O errors, files open read-write. */
void store_faults_clear(void);

#endif
