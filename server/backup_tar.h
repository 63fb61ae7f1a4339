/* The backup archive's format: a POSIX ustar tar (so `tar tf` lists it) whose first member is
 * manifest.json, followed by the files the manifest lists, in its order, each with its size and
 * SHA-256. Member names come from a fixed allow-list. Pure: no clock, no files, no sockets; the
 * shell (backup.c) moves the bytes, and tests and the fuzzer feed the reader directly. */
#ifndef PW_BACKUP_TAR_H
#define PW_BACKUP_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_BACKUP_FORMAT       "phasewise-backup"
#define PW_BACKUP_VERSION      1
#define PW_BACKUP_BLOCK        512
#define PW_BACKUP_END_LEN      (2 * PW_BACKUP_BLOCK) /* two zero blocks end a tar */
#define PW_BACKUP_MANIFEST     "manifest.json"
#define PW_BACKUP_MANIFEST_MAX (64 * 1024)
#define PW_BACKUP_SHA256_LEN   32
/* The history database's size cap is 1 GiB (storage/, pw_store_policy): twice that bounds its
 * copy, and the archive is bounded by what it may hold. */
#define PW_BACKUP_DB_MAX      (2048ull * 1024 * 1024)
#define PW_BACKUP_ARCHIVE_MAX (PW_BACKUP_DB_MAX + 16ull * 1024 * 1024)

enum pw_backup_err {
    PW_BACKUP_OK = 0,
    PW_BACKUP_E_FOREIGN = -1,   /* not a tar, or a tar that is not a phasewise backup */
    PW_BACKUP_E_DAMAGED = -2,   /* a header's checksum or a file's SHA-256 does not match */
    PW_BACKUP_E_NAME = -3,      /* a member that is not on the allow-list, or not a file */
    PW_BACKUP_E_DUPLICATE = -4, /* a file listed or stored twice */
    PW_BACKUP_E_SIZE = -5,      /* a member larger than allowed, or not the size listed */
    PW_BACKUP_E_MANIFEST = -6,  /* the manifest is missing, not first, or not valid */
    PW_BACKUP_E_VERSION = -7,   /* a newer backup format, or a newer database schema */
    PW_BACKUP_E_TRUNCATED = -8, /* the archive ends before its end, or a listed file is missing */
    PW_BACKUP_E_EXTRA = -9,     /* a member or data the manifest does not list */
    PW_BACKUP_E_CONTENT = -10,  /* the config does not validate, or the database fails its check */
    PW_BACKUP_E_IO = -11,       /* reading or writing a file failed */
    PW_BACKUP_E_RUNNING = -12,  /* the appliance is running on the data folder */
};

/* A short name of the error class, e.g. "damaged archive". Static. */
const char *pw_backup_strerror(int err);

/* The files a backup may hold: the allow-list, in the order the writer stores them. */
enum pw_backup_member {
    PW_BACKUP_CONFIG,    /* config.json: the facility config (first: it names the others) */
    PW_BACKUP_KEY,       /* facility.key: the facility key (config net.key_file) */
    PW_BACKUP_ADMIN,     /* admin-password: the admin password hash, if set */
    PW_BACKUP_TLS_CERT,  /* tls-cert.pem: the HTTPS certificate (config http.tls.cert_file) */
    PW_BACKUP_TLS_KEY,   /* tls-key.pem: its private key (config http.tls.key_file) */
    PW_BACKUP_OVERRIDES, /* overrides.json: the operator's overrides, if any */
    PW_BACKUP_DB,        /* phasewise.db: a consistent snapshot of the history database */
    PW_BACKUP_MEMBERS
};

typedef struct pw_backup_member_info {
    const char *name; /* the member's name in the archive */
    uint64_t max;     /* the largest size a backup may hold for it */
    bool required;    /* every backup has it */
    unsigned mode;    /* the mode a restored file gets when none is there yet */
} pw_backup_member_info;

/* The allow-list entry of member m (0 <= m < PW_BACKUP_MEMBERS). Static. */
const pw_backup_member_info *pw_backup_member(int m);

/* The member called name, or -1 when a backup may not hold it. */
int pw_backup_member_find(const char *name);

typedef struct pw_backup_file {
    int member; /* enum pw_backup_member */
    uint64_t size;
    uint8_t sha256[PW_BACKUP_SHA256_LEN];
} pw_backup_file;

typedef struct pw_backup_manifest {
    int version;        /* PW_BACKUP_VERSION */
    char created[32];   /* RFC 3339 UTC, "2026-12-06T10:30:00Z" */
    char phasewise[32]; /* the version that wrote it */
    char site[64];      /* the site's name */
    int schema;         /* the database's schema version (PRAGMA user_version) */
    size_t n_files;
    pw_backup_file files[PW_BACKUP_MEMBERS]; /* in archive order; config.json first */
} pw_backup_manifest;

/* ---- writing ---- */

/* The manifest as JSON text (NUL-terminated; caller frees with free()); *len its length. */
char *pw_backup_manifest_dump(const pw_backup_manifest *m, size_t *len);

/* A ustar header block for a regular file name of size bytes, modified at mtime (Unix
 * seconds), mode 0600. Returns 0, or -1 when the name is longer than 99 bytes or the size does
 * not fit the header's 11 octal digits. */
int pw_backup_header(uint8_t out[PW_BACKUP_BLOCK], const char *name, uint64_t size, int64_t mtime);

/* Zero bytes that follow size bytes of data up to the next block. */
size_t pw_backup_padding(uint64_t size);

/* The exact size of the archive of m whose manifest text is manifest_len bytes long. */
uint64_t pw_backup_archive_size(const pw_backup_manifest *m, size_t manifest_len);

/* ---- reading: bytes in, events out ---- */

enum pw_backup_event_kind {
    PW_BACKUP_EV_MORE,     /* every byte given was used: give more (or finish) */
    PW_BACKUP_EV_MANIFEST, /* the manifest was read and is valid (pw_backup_reader_manifest) */
    PW_BACKUP_EV_BEGIN,    /* a listed file begins: member, size */
    PW_BACKUP_EV_DATA,     /* data of the current file: data, len (pointing into the input) */
    PW_BACKUP_EV_END,      /* the current file ended and its SHA-256 matches: member */
    PW_BACKUP_EV_DONE,     /* the archive's end marker: every listed file was there */
};

typedef struct pw_backup_event {
    enum pw_backup_event_kind kind;
    int member;
    uint64_t size;
    const uint8_t *data;
    size_t len;
} pw_backup_event;

typedef struct pw_backup_reader pw_backup_reader;

/* A reader at the start of an archive. Free with pw_backup_reader_free. */
pw_backup_reader *pw_backup_reader_new(void);
void pw_backup_reader_free(pw_backup_reader *r); /* NULL is allowed */

/* Reads from data[0, len) up to the next event; *used says how many bytes were taken (the rest
 * is for the next call). Returns 0 and *ev, or a negative pw_backup_err with a sentence in
 * pw_backup_reader_error. After an error every call returns that error again. Bytes after the
 * end marker must be zero (tar pads archives to whole records). */
int pw_backup_read(pw_backup_reader *r, const uint8_t *data, size_t len, size_t *used,
                   pw_backup_event *ev);

/* The input ended: 0 when the whole archive was read (PW_BACKUP_EV_DONE came), else
 * PW_BACKUP_E_TRUNCATED (or the earlier error) with a sentence. */
int pw_backup_reader_finish(pw_backup_reader *r);

/* The manifest once PW_BACKUP_EV_MANIFEST came (borrowed from r), else NULL. */
const pw_backup_manifest *pw_backup_reader_manifest(const pw_backup_reader *r);

/* The sentence naming the last error, "" if none. Borrowed from r. */
const char *pw_backup_reader_error(const pw_backup_reader *r);

/* Parses and validates manifest text. Returns 0, or a negative pw_backup_err with a sentence in
 * err. */
int pw_backup_manifest_parse(const char *text, size_t len, pw_backup_manifest *m, char *err,
                             size_t err_size);

#endif
