/* Copies of the database for backups: a consistent snapshot taken with SQLite's online backup
 * API from a read connection while the appliance writes (WAL lets it go on), and the check a
 * copy must pass before it replaces the history (a backup being restored). */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pw_util.h"

int pw_store_schema_latest(void)
{
    return pw_store__schema_latest();
}

int pw_store_snapshot(const char *db_path, const char *out_path, int *schema, char *err,
                      size_t err_size)
{
    sqlite3 *src = NULL, *dst = NULL;
    int ret = PW_STORE_E_OPEN, version = 0;
    /* The copy is a new file of ours with the mode a backup's parts get. */
    int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create %s: %s", out_path, strerror(errno));
        return PW_STORE_E_OPEN;
    }
    close(fd);
    /* Read-write without create, as a reader: WAL readers need the shared-memory index, and a
     * missing database must stay missing. query_only keeps it from ever writing. */
    if ((ret = pw_store__connect(&src, db_path, SQLITE_OPEN_READWRITE, err, err_size)) ||
        (ret = pw_store__check_file(src, db_path, &version, err, err_size)))
        goto fail;
    ret = PW_STORE_E_OPEN;
    if (sqlite3_exec(src, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "cannot configure a reader: %s", sqlite3_errmsg(src));
        goto fail;
    }
    if ((ret = pw_store__connect(&dst, out_path, SQLITE_OPEN_READWRITE, err, err_size)))
        goto fail;
    ret = PW_STORE_E_QUERY;
    /* One step copies every page under one read transaction: a consistent snapshot, and the
     * writer is never blocked (a reader in WAL mode only holds back checkpoints). */
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(err, err_size, "cannot start copying %s: %s", db_path, sqlite3_errmsg(dst));
        goto fail;
    }
    int rc = sqlite3_backup_step(b, -1);
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        snprintf(err, err_size, "copying %s failed: %s", db_path,
                 sqlite3_errstr(rc != SQLITE_DONE ? rc : frc));
        goto fail;
    }
    if (pw_store__user_version(dst, &version) != SQLITE_OK) {
        snprintf(err, err_size, "cannot read the copy's schema: %s", sqlite3_errmsg(dst));
        goto fail;
    }
    *schema = version;
    ret = 0;
fail:
    if (dst && sqlite3_close(dst) != SQLITE_OK && ret == 0) {
        snprintf(err, err_size, "closing the copy %s failed", out_path);
        ret = PW_STORE_E_WRITE;
    }
    if (src)
        sqlite3_close(src);
    if (ret != 0)
        unlink(out_path);
    return ret;
}

/* A path as an SQLite URI ("file:" form): characters with a meaning there are %-escaped. */
static int file_uri(const char *path, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("/-_.~", *p);
        if (n + 4 >= size)
            return -1;
        n += plain ? (size_t)snprintf(out + n, size - n, "%c", *p)
                   : (size_t)snprintf(out + n, size - n, "%%%02X", *p);
    }
    return snprintf(out + n, size - n, "?immutable=1") < (int)(size - n) ? 0 : -1;
}

/* The first row's text of sql, "" when none. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
    return pw_store__pragma_text(db, sql, out, size);
}

int pw_store_check_copy(const char *path, int *schema, char *err, size_t err_size)
{
    char uri[4200];
    if (file_uri(path, uri, sizeof uri) != 0) {
        snprintf(err, err_size, "path too long: %s", path);
        return PW_STORE_E_OPEN;
    }
    sqlite3 *db = NULL;
    char text[128];
    int version = 0;
    /* immutable: the copy is complete in its one file (no WAL beside it to trust or create), and
     * checking it must leave no file behind. */
    int ret = pw_store__connect(&db, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, err, err_size);
    if (ret)
        goto out;
    ret = PW_STORE_E_OPEN;
    if (query_text(db, "PRAGMA quick_check", text, sizeof text) != SQLITE_OK ||
        strcmp(text, "ok") != 0) {
        snprintf(err, err_size, "the database fails SQLite's quick_check (%s)",
                 text[0] ? text : sqlite3_errmsg(db));
        goto out;
    }
    if (query_text(db, "PRAGMA application_id", text, sizeof text) != SQLITE_OK ||
        atol(text) != PW_STORE__APP_ID) {
        snprintf(err, err_size, "the database is not a phasewise history (application_id %s)",
                 text);
        goto out;
    }
    if (query_text(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                   text, sizeof text) != SQLITE_OK ||
        strcmp(text, "meta") != 0) {
        snprintf(err, err_size, "the database has no meta table: not a phasewise history");
        goto out;
    }
    if (pw_store__user_version(db, &version) != SQLITE_OK || version < 1) {
        snprintf(err, err_size, "the database has no schema version");
        goto out;
    }
    *schema = version;
    if (version > pw_store__schema_latest()) {
        snprintf(err, err_size,
                 "the database has schema version %d but this phasewise %s knows versions up to "
                 "%d: restore it with a newer phasewise",
                 version, PW_VERSION, pw_store__schema_latest());
        ret = PW_STORE_E_NEWER;
        goto out;
    }
    ret = 0;
out:
    if (db)
        sqlite3_close(db);
    return ret;
}
