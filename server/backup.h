/* Backups of the appliance: one archive (backup_tar.h) of everything needed to come back, made
 * from the data folder while the appliance may run, and checked in full before it replaces
 * anything on a stopped appliance. Shared by `phasewise backup` / `phasewise restore`, the API
 * (api_backup.c) and serve's start, which applies a restore staged through the API. */
#ifndef PW_BACKUP_H
#define PW_BACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "backup_tar.h"

#define PW_BACKUP_LOCK_FILE "phasewise.lock"  /* serve holds it while it runs */
#define PW_BACKUP_PENDING   "restore.pending" /* staged by the API, applied at the next start */
#define PW_BACKUP_FAILED    "restore.failed"  /* a staged restore refused at start, kept */
/* The exit status of serve after it staged a restore: systemd starts it again at once
 * (RestartForceExitStatus=75 in packaging/phasewise.service), and the start applies it. */
#define PW_BACKUP_EXIT_RESTART 75

/* Where the appliance keeps its files, resolved as serve resolves them. */
typedef struct pw_backup_paths {
    char data_dir[1024];
    char config_path[1100];
    char db_path[1100];
} pw_backup_paths;

/* data_dir NULL = "data", config NULL = <data_dir>/config.json, db NULL = <data_dir>/phasewise.db.
 * Returns 0, or -1 with a message in err when a path is too long. */
int pw_backup_paths_init(pw_backup_paths *p, const char *data_dir, const char *config,
                         const char *db, char *err, size_t err_size);

/* Takes the data folder's lock (PW_BACKUP_LOCK_FILE, made if missing) without waiting. Returns
 * 0 and *fd (keep it open: closing it releases the lock), PW_BACKUP_E_RUNNING when another
 * process holds it, or PW_BACKUP_E_IO; with a message in err either way. */
int pw_backup_lock(const char *data_dir, int *fd, char *err, size_t err_size);

/* Writes the archive of the appliance at p to fd (from its current offset): config, facility
 * key, admin password hash, HTTPS pair and overrides where they exist, and a snapshot of the
 * database made in tmp_dir (removed again). The appliance may be running. Returns 0, the
 * manifest written (*m) and the archive's size, or a negative pw_backup_err with a message.
 * Blocks for as long as copying the database takes: never on the loop thread. */
int pw_backup_write(const pw_backup_paths *p, int fd, const char *tmp_dir, pw_backup_manifest *m,
                    uint64_t *size, char *err, size_t err_size);

/* The same into the file path, atomically (temporary file, fsync, rename) with mode 0600, the
 * database's snapshot made beside it. */
int pw_backup_create(const pw_backup_paths *p, const char *path, pw_backup_manifest *m,
                     uint64_t *size, char *err, size_t err_size);

typedef struct pw_backup_result {
    pw_backup_manifest m;
    char restored[160]; /* the files put back, "config.json, facility.key, ..." */
    char removed[160];  /* files the archive does not hold that were removed, or "" */
} pw_backup_result;

/* Reads the archive at archive member by member into temporary files beside their targets and
 * checks all of it: manifest, names, sizes, SHA-256, the end, the config (it must validate, and
 * keep its key and HTTPS pair in the data folder or the config's folder) and the database
 * (quick_check, a phasewise history, its schema not newer than this code's). With apply it then
 * replaces the files (a stale WAL of the old database is removed first) and removes the
 * optional ones the archive does not hold; the caller holds the lock (pw_backup_lock). Returns
 * 0 and *res, or a negative pw_backup_err with a sentence in err; then nothing in the target
 * folders has changed. */
int pw_backup_restore(const pw_backup_paths *p, const char *archive, bool apply,
                      pw_backup_result *res, char *err, size_t err_size);

/* `phasewise backup ...` and `phasewise restore ...` (argv[0] is the command). Return the exit
 * status. */
int pw_backup_main(int argc, char **argv);
int pw_restore_main(int argc, char **argv);

#endif
