/* Helpers shared by the storage tests and their helper programs: temporary directories and
 * one-value SQL queries. */
#ifndef STORE_TESTUTIL_H
#define STORE_TESTUTIL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); the path is written to dir. Aborts on
 * failure. */
void st_tmpdir(char *dir, size_t size);

/* Removes dir and every file in it (the directory is flat). */
void st_rmdir(const char *dir);

/* Returns the integer in the first column of the first row of sql, or INT64_MIN when it fails
 * or returns no row. */
int64_t st_sql_int(sqlite3 *db, const char *sql);

/* Opens path with a plain connection (no phasewise checks); aborts on failure. Close with
 * sqlite3_close. */
sqlite3 *st_sql_open(const char *path);

#endif
