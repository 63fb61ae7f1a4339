/* Backup and restore of the appliance: the archive written from the live files (the database
 * through SQLite's online backup, so the appliance may keep running), and an archive checked
 * member by member in temporary files beside their targets before anything is replaced. The
 * format and its checks are backup_tar.c's; this file moves bytes between it and the disk. */
#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pw_cfg.h"
#include "pw_store.h"
#include "pw_util.h"
#include "pw_web.h"

#define IO_CHUNK       (64 * 1024)
#define OVERRIDES_FILE "overrides.json" /* the operator's overrides, in the data folder */
#define STAGE_SUFFIX   ".restore-tmp"

/* ---- small file helpers ---- */

static int join(char *out, size_t size, const char *dir, const char *name)
{
    int n =
        name[0] == '/' ? snprintf(out, size, "%s", name) : snprintf(out, size, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static void dir_of(const char *path, char *out, size_t size)
{
    pw_strlcpy(out, path, size);
    char *slash = strrchr(out, '/');
    if (slash == out)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        pw_strlcpy(out, ".", size);
}

static ssize_t read_some(int fd, void *buf, size_t len)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        pw_warn("backup", "cannot sync the folder %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* A small file (config, key, hash, PEM) read whole. *exists false when there is none. */
static int read_small(const char *path, uint64_t max, uint8_t **data, size_t *len, bool *exists,
                      char *err, size_t err_size)
{
    *data = NULL;
    *len = 0;
    *exists = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return PW_BACKUP_E_IO;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        snprintf(err, err_size, "%s is %s: a backup holds at most %llu bytes of it", path,
                 S_ISREG(st.st_mode) ? "too large" : "not a file", (unsigned long long)max);
        close(fd);
        return PW_BACKUP_E_SIZE;
    }
    uint8_t *buf = pw_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read_some(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        snprintf(err, err_size, "cannot read %s: it changed while it was read", path);
        free(buf);
        return PW_BACKUP_E_IO;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    *exists = true;
    return 0;
}

static const mbedtls_md_info_t *sha256_info(void)
{
    return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
}

/* SHA-256 and size of a whole file from its start. */
static int sha256_file(int fd, uint64_t *size, uint8_t out[PW_BACKUP_SHA256_LEN])
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    uint8_t *buf = pw_xmalloc(IO_CHUNK);
    int rc = mbedtls_md_setup(&md, sha256_info(), 0) || mbedtls_md_starts(&md) ? -1 : 0;
    *size = 0;
    if (rc == 0 && lseek(fd, 0, SEEK_SET) != 0)
        rc = -1;
    while (rc == 0) {
        ssize_t n = read_some(fd, buf, IO_CHUNK);
        if (n < 0 || (n > 0 && mbedtls_md_update(&md, buf, (size_t)n) != 0))
            rc = -1;
        if (n <= 0)
            break;
        *size += (uint64_t)n;
    }
    if (rc == 0 && mbedtls_md_finish(&md, out) != 0)
        rc = -1;
    mbedtls_md_free(&md);
    free(buf);
    return rc;
}

int pw_backup_paths_init(pw_backup_paths *p, const char *data_dir, const char *config,
                         const char *db, char *err, size_t err_size)
{
    memset(p, 0, sizeof *p);
    const char *dir = data_dir ? data_dir : "data";
    if (pw_strlcpy(p->data_dir, dir, sizeof p->data_dir) >= sizeof p->data_dir ||
        (config ? pw_strlcpy(p->config_path, config, sizeof p->config_path) >= sizeof p->config_path
                : join(p->config_path, sizeof p->config_path, dir, "config.json") != 0) ||
        (db ? pw_strlcpy(p->db_path, db, sizeof p->db_path) >= sizeof p->db_path
            : join(p->db_path, sizeof p->db_path, dir, "phasewise.db") != 0)) {
        snprintf(err, err_size, "a path is too long (data folder %s)", dir);
        return -1;
    }
    return 0;
}

int pw_backup_lock(const char *data_dir, int *fd, char *err, size_t err_size)
{
    char path[1100];
    if (join(path, sizeof path, data_dir, PW_BACKUP_LOCK_FILE) != 0) {
        snprintf(err, err_size, "path too long: %s", data_dir);
        return PW_BACKUP_E_IO;
    }
    /* Read-only is enough for flock, so whoever made the file (root running a restore, or the
     * service's user) can take it later; mode 0644, it holds nothing. */
    bool made = true;
    int f = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0 && errno == EEXIST) {
        made = false;
        f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (f < 0) {
        snprintf(err, err_size, "cannot open the lock file %s: %s", path, strerror(errno));
        return PW_BACKUP_E_IO;
    }
    struct stat st;
    if (made && geteuid() == 0 && stat(data_dir, &st) == 0 && fchown(f, st.st_uid, st.st_gid))
        pw_warn("backup", "cannot give %s to the data folder's owner: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK) {
            snprintf(err, err_size,
                     "the appliance is running on %s: stop it first (systemctl stop phasewise)",
                     data_dir);
            return PW_BACKUP_E_RUNNING;
        }
        snprintf(err, err_size, "cannot lock %s: %s", path, strerror(e));
        return PW_BACKUP_E_IO;
    }
    *fd = f;
    return 0;
}

/* ---- writing an archive ---- */

typedef struct part {
    int member;
    uint8_t *data;
    size_t len;
} part;

static int write_member(int fd, const char *name, const void *data, size_t len, int64_t mtime)
{
    static const uint8_t zeros[PW_BACKUP_BLOCK];
    uint8_t hdr[PW_BACKUP_BLOCK];
    if (pw_backup_header(hdr, name, len, mtime) != 0 || pw_write_all(fd, hdr, sizeof hdr) != 0 ||
        pw_write_all(fd, data, len) != 0 || pw_write_all(fd, zeros, pw_backup_padding(len)) != 0)
        return -1;
    return 0;
}

/* The database's snapshot, copied from its file into the archive. */
static int write_db_member(int fd, int src, uint64_t size, int64_t mtime)
{
    static const uint8_t zeros[PW_BACKUP_BLOCK];
    uint8_t hdr[PW_BACKUP_BLOCK];
    if (pw_backup_header(hdr, pw_backup_member(PW_BACKUP_DB)->name, size, mtime) != 0 ||
        pw_write_all(fd, hdr, sizeof hdr) != 0 || lseek(src, 0, SEEK_SET) != 0)
        return -1;
    uint8_t *buf = pw_xmalloc(IO_CHUNK);
    uint64_t left = size;
    int rc = 0;
    while (rc == 0 && left) {
        ssize_t n = read_some(src, buf, left < IO_CHUNK ? (size_t)left : IO_CHUNK);
        if (n <= 0 || pw_write_all(fd, buf, (size_t)n) != 0)
            rc = -1;
        else
            left -= (uint64_t)n;
    }
    free(buf);
    if (rc == 0 && pw_write_all(fd, zeros, pw_backup_padding(size)) != 0)
        rc = -1;
    return rc;
}

/* Reads one optional or required part into parts[*n]. */
static int add_part(part *parts, size_t *n, int member, const char *path, char *err,
                    size_t err_size)
{
    const pw_backup_member_info *info = pw_backup_member(member);
    bool exists;
    part *pt = &parts[*n];
    int rc = read_small(path, info->max, &pt->data, &pt->len, &exists, err, err_size);
    if (rc != 0)
        return rc;
    if (!exists && info->required) {
        snprintf(err, err_size,
                 member == PW_BACKUP_KEY
                     ? "no facility key at %s: the appliance makes it when it first starts"
                     : "no %s",
                 path);
        return PW_BACKUP_E_IO;
    }
    if (exists) {
        pt->member = member;
        (*n)++;
    }
    return 0;
}

/* The parts read from the disk, the config first. Returns 0 or an error; *cfg owned by the
 * caller either way (may be NULL). */
static int read_parts(const pw_backup_paths *p, part *parts, size_t *n, pw_cfg **cfg, char *err,
                      size_t err_size)
{
    char path[1100];
    int rc = add_part(parts, n, PW_BACKUP_CONFIG, p->config_path, err, err_size);
    if (rc == 0 && *n == 0) {
        snprintf(err, err_size, "no configuration at %s", p->config_path);
        rc = PW_BACKUP_E_IO;
    }
    if (rc != 0)
        return rc;
    pw_cfg_errors errs;
    *cfg = pw_cfg_parse((const char *)parts[0].data, parts[0].len, &errs);
    if (!*cfg) {
        snprintf(err, err_size, "%s is not a valid configuration (%s: %s): fix it first",
                 p->config_path, errs.items[0].field, errs.items[0].message);
        return PW_BACKUP_E_CONTENT;
    }
    const struct {
        int member;
        const char *name;
    } files[] = {{PW_BACKUP_KEY, (*cfg)->net.key_file},
                 {PW_BACKUP_ADMIN, PW_WEB_PASSWORD_FILE},
                 {PW_BACKUP_TLS_CERT, (*cfg)->http.tls.cert_file},
                 {PW_BACKUP_TLS_KEY, (*cfg)->http.tls.key_file},
                 {PW_BACKUP_OVERRIDES, OVERRIDES_FILE}};
    for (size_t i = 0; i < PW_ARRAY_LEN(files) && rc == 0; i++) {
        if (join(path, sizeof path, p->data_dir, files[i].name) != 0) {
            snprintf(err, err_size, "path too long: %s", files[i].name);
            return PW_BACKUP_E_IO;
        }
        rc = add_part(parts, n, files[i].member, path, err, err_size);
    }
    return rc;
}

static void rfc3339_now(char *out, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int pw_backup_write(const pw_backup_paths *p, int fd, const char *tmp_dir, pw_backup_manifest *m,
                    uint64_t *size, char *err, size_t err_size)
{
    part parts[PW_BACKUP_MEMBERS] = {{0}};
    size_t n = 0, text_len = 0;
    pw_cfg *cfg = NULL;
    char snap[1100] = "", *text = NULL;
    int snap_fd = -1, schema = 0;
    uint64_t db_size = 0;
    memset(m, 0, sizeof *m);
    int rc = read_parts(p, parts, &n, &cfg, err, err_size);
    if (rc != 0)
        goto out;

    /* The database: a snapshot into a new file of ours first, hashed, then copied in. */
    rc = PW_BACKUP_E_IO;
    if ((size_t)snprintf(snap, sizeof snap, "%s/.backup-XXXXXX", tmp_dir) >= sizeof snap) {
        snprintf(err, err_size, "path too long: %s", tmp_dir);
        snap[0] = '\0';
        goto out;
    }
    int tmp = mkstemp(snap);
    if (tmp < 0) {
        snprintf(err, err_size, "cannot make a temporary file in %s: %s", tmp_dir, strerror(errno));
        snap[0] = '\0';
        goto out;
    }
    close(tmp);
    unlink(snap); /* the name only: the snapshot creates it anew */
    char why[600];
    if (pw_store_snapshot(p->db_path, snap, &schema, why, sizeof why) != 0) {
        snprintf(err, err_size, "cannot copy the database: %s", why);
        snap[0] = '\0';
        goto out;
    }
    snap_fd = open(snap, O_RDONLY | O_CLOEXEC);
    pw_backup_file *dbf = &m->files[n];
    if (snap_fd < 0 || sha256_file(snap_fd, &db_size, dbf->sha256) != 0) {
        snprintf(err, err_size, "cannot read the database's copy %s: %s", snap, strerror(errno));
        goto out;
    }
    if (db_size > PW_BACKUP_DB_MAX) {
        snprintf(err, err_size, "the database has %llu bytes; a backup holds at most %llu",
                 (unsigned long long)db_size, (unsigned long long)PW_BACKUP_DB_MAX);
        rc = PW_BACKUP_E_SIZE;
        goto out;
    }

    m->version = PW_BACKUP_VERSION;
    rfc3339_now(m->created, sizeof m->created);
    pw_strlcpy(m->phasewise, PW_VERSION, sizeof m->phasewise);
    pw_strlcpy(m->site, cfg->site_name, sizeof m->site);
    m->schema = schema;
    for (size_t i = 0; i < n; i++) {
        m->files[i].member = parts[i].member;
        m->files[i].size = parts[i].len;
        mbedtls_md(sha256_info(), parts[i].data, parts[i].len, m->files[i].sha256);
    }
    dbf->member = PW_BACKUP_DB;
    dbf->size = db_size;
    m->n_files = n + 1;

    int64_t mtime = (int64_t)time(NULL);
    text = pw_backup_manifest_dump(m, &text_len);
    bool ok = write_member(fd, PW_BACKUP_MANIFEST, text, text_len, mtime) == 0;
    for (size_t i = 0; i < n && ok; i++)
        ok = write_member(fd, pw_backup_member(parts[i].member)->name, parts[i].data, parts[i].len,
                          mtime) == 0;
    static const uint8_t end[PW_BACKUP_END_LEN];
    ok = ok && write_db_member(fd, snap_fd, db_size, mtime) == 0 &&
         pw_write_all(fd, end, sizeof end) == 0;
    if (!ok) {
        snprintf(err, err_size, "cannot write the archive: %s", strerror(errno));
        goto out;
    }
    *size = pw_backup_archive_size(m, text_len);
    rc = 0;
out:
    for (size_t i = 0; i < PW_BACKUP_MEMBERS; i++)
        free(parts[i].data);
    if (snap_fd >= 0)
        close(snap_fd);
    if (snap[0])
        unlink(snap);
    free(text);
    pw_cfg_free(cfg);
    return rc;
}

int pw_backup_create(const pw_backup_paths *p, const char *path, pw_backup_manifest *m,
                     uint64_t *size, char *err, size_t err_size)
{
    char tmp[1200], dir[1100];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(err, err_size, "path too long: %s", path);
        return PW_BACKUP_E_IO;
    }
    dir_of(path, dir, sizeof dir);
    /* It holds secrets (the facility key, the TLS key, the password hash): 0600. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        snprintf(err, err_size, "cannot create %s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return PW_BACKUP_E_IO;
    }
    int rc = pw_backup_write(p, fd, dir, m, size, err, err_size);
    if (rc == 0 && fsync(fd) != 0) {
        snprintf(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
        rc = PW_BACKUP_E_IO;
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(err, err_size, "cannot replace %s: %s", path, strerror(errno));
        rc = PW_BACKUP_E_IO;
    }
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    sync_dir(dir);
    return 0;
}

/* ---- restoring ---- */

typedef struct stage {
    char target[1100];
    char tmp[1120];
    int fd;
    bool made;    /* tmp exists */
    bool present; /* the archive holds it */
} stage;

typedef struct restore {
    const pw_backup_paths *p;
    const char *archive;
    char config_dir[1100];
    stage st[PW_BACKUP_MEMBERS];
    pw_cfg *cfg; /* the archive's config, once read */
    char *err;
    size_t err_size;
} restore;

/* Its temporary file: beside the target, so that a rename puts it in place. */
static void stage_name(stage *s)
{
    size_t n = pw_strlcpy(s->tmp, s->target, sizeof s->tmp);
    pw_strlcpy(s->tmp + n, STAGE_SUFFIX, sizeof s->tmp - n); /* target is shorter than tmp */
}

/* The key and the HTTPS pair stay in the data folder or the config's folder: a backup must not
 * be able to write anywhere else, whoever runs the restore. */
static bool allowed_place(const restore *rs, const char *name)
{
    if (strcmp(name, "..") == 0 || strncmp(name, "../", 3) == 0 || strstr(name, "/../") ||
        (strlen(name) >= 3 && strcmp(name + strlen(name) - 3, "/..") == 0))
        return false;
    if (name[0] != '/')
        return true;
    const char *dirs[] = {rs->p->data_dir, rs->config_dir};
    for (size_t i = 0; i < PW_ARRAY_LEN(dirs); i++) {
        size_t n = strlen(dirs[i]);
        if (dirs[i][0] == '/' && strncmp(name, dirs[i], n) == 0 && name[n] == '/')
            return true;
    }
    return false;
}

/* Where each member goes, once the archive's config is known; all different. */
static int plan_targets(restore *rs)
{
    const pw_cfg *cfg = rs->cfg;
    const char *names[PW_BACKUP_MEMBERS] = {
        [PW_BACKUP_KEY] = cfg->net.key_file,
        [PW_BACKUP_ADMIN] = PW_WEB_PASSWORD_FILE,
        [PW_BACKUP_TLS_CERT] = cfg->http.tls.cert_file,
        [PW_BACKUP_TLS_KEY] = cfg->http.tls.key_file,
        [PW_BACKUP_OVERRIDES] = OVERRIDES_FILE,
    };
    for (int m = 0; m < PW_BACKUP_MEMBERS; m++) {
        stage *s = &rs->st[m];
        if (m == PW_BACKUP_CONFIG)
            pw_strlcpy(s->target, rs->p->config_path, sizeof s->target);
        else if (m == PW_BACKUP_DB)
            pw_strlcpy(s->target, rs->p->db_path, sizeof s->target);
        else if (!allowed_place(rs, names[m])) {
            snprintf(rs->err, rs->err_size,
                     "config.json in the backup keeps %s at %s, outside the data folder and the "
                     "config's folder: restore that file by hand",
                     pw_backup_member(m)->name, names[m]);
            return PW_BACKUP_E_CONTENT;
        } else if (join(s->target, sizeof s->target, rs->p->data_dir, names[m]) != 0) {
            snprintf(rs->err, rs->err_size, "path too long: %s", names[m]);
            return PW_BACKUP_E_IO;
        }
        stage_name(s);
    }
    for (int a = 0; a < PW_BACKUP_MEMBERS; a++)
        for (int b = a + 1; b < PW_BACKUP_MEMBERS; b++)
            if (strcmp(rs->st[a].target, rs->st[b].target) == 0) {
                snprintf(rs->err, rs->err_size,
                         "config.json in the backup puts %s and %s in the same file %s",
                         pw_backup_member(a)->name, pw_backup_member(b)->name, rs->st[a].target);
                return PW_BACKUP_E_CONTENT;
            }
    for (int m = 0; m < PW_BACKUP_MEMBERS; m++)
        if (strcmp(rs->st[m].target, rs->archive) == 0) {
            snprintf(rs->err, rs->err_size, "the backup would replace itself (%s)", rs->archive);
            return PW_BACKUP_E_CONTENT;
        }
    return 0;
}

static int stage_open(restore *rs, int member)
{
    stage *s = &rs->st[member];
    if (member != PW_BACKUP_CONFIG && !rs->cfg) { /* the manifest lists it first */
        snprintf(rs->err, rs->err_size, "%s comes before config.json",
                 pw_backup_member(member)->name);
        return PW_BACKUP_E_MANIFEST;
    }
    if (member == PW_BACKUP_CONFIG) { /* the others' places come from it */
        pw_strlcpy(s->target, rs->p->config_path, sizeof s->target);
        stage_name(s);
    }
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
    s->fd = open(s->tmp, flags, 0600);
    if (s->fd < 0 && errno == EEXIST && unlink(s->tmp) == 0) /* left by a restore that died */
        s->fd = open(s->tmp, flags, 0600);
    if (s->fd < 0) {
        snprintf(rs->err, rs->err_size, "cannot create %s: %s", s->tmp, strerror(errno));
        return PW_BACKUP_E_IO;
    }
    s->made = true;
    s->present = true;
    return 0;
}

static int stage_end(restore *rs, int member)
{
    stage *s = &rs->st[member];
    int rc = fsync(s->fd);
    close(s->fd);
    s->fd = -1;
    if (rc != 0) {
        snprintf(rs->err, rs->err_size, "cannot write %s: %s", s->tmp, strerror(errno));
        return PW_BACKUP_E_IO;
    }
    if (member != PW_BACKUP_CONFIG)
        return 0;
    pw_cfg_errors errs;
    rs->cfg = pw_cfg_load(s->tmp, &errs);
    if (!rs->cfg) {
        snprintf(rs->err, rs->err_size, "config.json in the backup is not valid (%s: %s)",
                 errs.items[0].field, errs.items[0].message);
        return PW_BACKUP_E_CONTENT;
    }
    return plan_targets(rs);
}

/* Reads the whole archive into the stages, checking it on the way. */
static int read_archive(restore *rs, int in, pw_backup_result *res)
{
    pw_backup_reader *r = pw_backup_reader_new();
    uint8_t *buf = pw_xmalloc(IO_CHUNK);
    int rc = 0;
    for (;;) {
        ssize_t n = read_some(in, buf, IO_CHUNK);
        if (n < 0) {
            snprintf(rs->err, rs->err_size, "cannot read %s: %s", rs->archive, strerror(errno));
            rc = PW_BACKUP_E_IO;
            break;
        }
        size_t off = 0, used;
        pw_backup_event ev;
        do {
            rc = pw_backup_read(r, buf + off, (size_t)n - off, &used, &ev);
            off += used;
            if (rc != 0) {
                snprintf(rs->err, rs->err_size, "%s", pw_backup_reader_error(r));
                break;
            }
            if (ev.kind == PW_BACKUP_EV_MANIFEST) {
                res->m = *pw_backup_reader_manifest(r);
                if (res->m.schema > pw_store_schema_latest()) {
                    snprintf(rs->err, rs->err_size,
                             "the backup's database has schema version %d, newer than this "
                             "phasewise %s knows (up to %d): restore it with a newer phasewise",
                             res->m.schema, PW_VERSION, pw_store_schema_latest());
                    rc = PW_BACKUP_E_VERSION;
                }
            } else if (ev.kind == PW_BACKUP_EV_BEGIN) {
                rc = stage_open(rs, ev.member);
            } else if (ev.kind == PW_BACKUP_EV_DATA) {
                if (pw_write_all(rs->st[ev.member].fd, ev.data, ev.len) != 0) {
                    snprintf(rs->err, rs->err_size, "cannot write %s: %s", rs->st[ev.member].tmp,
                             strerror(errno));
                    rc = PW_BACKUP_E_IO;
                }
            } else if (ev.kind == PW_BACKUP_EV_END) {
                rc = stage_end(rs, ev.member);
            }
        } while (rc == 0 && ev.kind != PW_BACKUP_EV_MORE);
        if (rc != 0 || n == 0)
            break;
    }
    if (rc == 0 && (rc = pw_backup_reader_finish(r)) != 0)
        snprintf(rs->err, rs->err_size, "%s", pw_backup_reader_error(r));
    free(buf);
    pw_backup_reader_free(r);
    return rc;
}

static int check_db(restore *rs, const pw_backup_result *res)
{
    int schema = 0;
    char why[600];
    int rc = pw_store_check_copy(rs->st[PW_BACKUP_DB].tmp, &schema, why, sizeof why);
    if (rc == PW_STORE_E_NEWER) {
        snprintf(rs->err, rs->err_size, "%s", why);
        return PW_BACKUP_E_VERSION;
    }
    if (rc != 0) {
        snprintf(rs->err, rs->err_size, "phasewise.db in the backup is not usable: %s", why);
        return PW_BACKUP_E_CONTENT;
    }
    if (schema != res->m.schema) {
        snprintf(rs->err, rs->err_size,
                 "phasewise.db in the backup has schema version %d, not the %d its manifest "
                 "lists",
                 schema, res->m.schema);
        return PW_BACKUP_E_CONTENT;
    }
    return 0;
}

static void list_add(char *list, size_t size, const char *name)
{
    size_t n = strlen(list);
    snprintf(list + n, size - n, "%s%s", n ? ", " : "", name);
}

/* A restored file gets the owner and mode of the file it replaces, or its folder's owner and
 * the member's usual mode: a restore run as root must leave files the service's user can read. */
static int set_owner(const stage *s, int member)
{
    struct stat st;
    unsigned mode = pw_backup_member(member)->mode;
    uid_t uid;
    gid_t gid;
    char dir[1100];
    if (stat(s->target, &st) == 0 && S_ISREG(st.st_mode)) {
        mode = st.st_mode & 0777;
    } else {
        dir_of(s->target, dir, sizeof dir);
        if (stat(dir, &st) != 0)
            return -1;
    }
    uid = st.st_uid;
    gid = st.st_gid;
    if (chmod(s->tmp, (mode_t)mode) != 0)
        return -1;
    if (geteuid() == 0 && chown(s->tmp, uid, gid) != 0)
        return -1;
    return 0;
}

/* Every check passed: the files are replaced, the database first (its stale WAL and shared
 * memory go before it: they belong to the old file and would be replayed into the new one). */
static int apply(restore *rs, pw_backup_result *res)
{
    for (int m = 0; m < PW_BACKUP_MEMBERS; m++)
        if (rs->st[m].present && set_owner(&rs->st[m], m) != 0) {
            snprintf(rs->err, rs->err_size, "cannot set the owner and mode of %s: %s",
                     rs->st[m].tmp, strerror(errno));
            return PW_BACKUP_E_IO;
        }
    const char *suffixes[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < PW_ARRAY_LEN(suffixes); i++) {
        char side[1200];
        snprintf(side, sizeof side, "%s%s", rs->p->db_path, suffixes[i]);
        if (unlink(side) != 0 && errno != ENOENT) {
            snprintf(rs->err, rs->err_size, "cannot remove %s: %s", side, strerror(errno));
            return PW_BACKUP_E_IO;
        }
    }
    static const int order[] = {PW_BACKUP_DB,      PW_BACKUP_KEY,   PW_BACKUP_TLS_CERT,
                                PW_BACKUP_TLS_KEY, PW_BACKUP_ADMIN, PW_BACKUP_OVERRIDES,
                                PW_BACKUP_CONFIG};
    for (size_t i = 0; i < PW_ARRAY_LEN(order); i++) {
        int m = order[i];
        stage *s = &rs->st[m];
        const char *name = pw_backup_member(m)->name;
        if (s->present) {
            if (rename(s->tmp, s->target) != 0) {
                snprintf(rs->err, rs->err_size,
                         "restoring stopped half-way: %s could not replace %s (%s); restored so "
                         "far: %s",
                         s->tmp, s->target, strerror(errno), res->restored);
                return PW_BACKUP_E_IO;
            }
            s->made = false;
            list_add(res->restored, sizeof res->restored, name);
        } else if (unlink(s->target) == 0) {
            list_add(res->removed, sizeof res->removed, name);
        }
    }
    char dir[1100];
    sync_dir(rs->p->data_dir);
    dir_of(rs->p->config_path, dir, sizeof dir);
    sync_dir(dir);
    dir_of(rs->p->db_path, dir, sizeof dir);
    sync_dir(dir);
    return 0;
}

int pw_backup_restore(const pw_backup_paths *p, const char *archive, bool apply_it,
                      pw_backup_result *res, char *err, size_t err_size)
{
    restore rs = {.p = p, .archive = archive, .err = err, .err_size = err_size};
    memset(res, 0, sizeof *res);
    for (int m = 0; m < PW_BACKUP_MEMBERS; m++)
        rs.st[m].fd = -1;
    dir_of(p->config_path, rs.config_dir, sizeof rs.config_dir);
    int in = open(archive, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(err, err_size, "cannot open %s: %s", archive, strerror(errno));
        return PW_BACKUP_E_IO;
    }
    int rc = read_archive(&rs, in, res);
    close(in);
    if (rc == 0)
        rc = check_db(&rs, res);
    if (rc == 0 && apply_it)
        rc = apply(&rs, res);
    for (int m = 0; m < PW_BACKUP_MEMBERS; m++) {
        if (rs.st[m].fd >= 0)
            close(rs.st[m].fd);
        if (rs.st[m].made)
            unlink(rs.st[m].tmp);
    }
    pw_cfg_free(rs.cfg);
    return rc;
}

/* ---- the commands ---- */

static const char cmd_usage[] =
    "usage: phasewise backup [--config FILE] [--data DIR] [--db FILE] FILE\n"
    "       phasewise restore [--config FILE] [--data DIR] [--db FILE] FILE\n";

/* Options shared by both commands, as serve takes them. Returns the archive's path or NULL. */
static const char *parse_args(int argc, char **argv, pw_backup_paths *p)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"data", required_argument, NULL, 'd'},
                                             {"db", required_argument, NULL, 'b'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *data = NULL, *config = NULL, *db = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'c')
            config = optarg;
        else if (c == 'd')
            data = optarg;
        else if (c == 'b')
            db = optarg;
        else {
            fputs(cmd_usage, c == 'h' ? stdout : stderr);
            return NULL;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: name one archive FILE\n%s", argv[0], cmd_usage);
        return NULL;
    }
    char err[256];
    if (pw_backup_paths_init(p, data, config, db, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return NULL;
    }
    return argv[optind];
}

static void list_files(const pw_backup_manifest *m, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < m->n_files; i++)
        list_add(out, size, pw_backup_member(m->files[i].member)->name);
}

int pw_backup_main(int argc, char **argv)
{
    pw_backup_paths p;
    const char *file = parse_args(argc, argv, &p);
    if (!file)
        return 2;
    pw_backup_manifest m;
    uint64_t size = 0;
    char err[1024], files[256];
    if (pw_backup_create(&p, file, &m, &size, err, sizeof err) != 0) {
        fprintf(stderr, "phasewise backup: %s\n", err);
        return 1;
    }
    list_files(&m, files, sizeof files);
    printf("wrote %s (%llu bytes, mode 0600): the backup of \"%s\" made %s: %s (database schema "
           "%d)\n",
           file, (unsigned long long)size, m.site, m.created, files, m.schema);
    return 0;
}

int pw_restore_main(int argc, char **argv)
{
    pw_backup_paths p;
    const char *file = parse_args(argc, argv, &p);
    if (!file)
        return 2;
    char err[1024];
    if (mkdir(p.data_dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "phasewise restore: cannot create the data folder %s: %s\n", p.data_dir,
                strerror(errno));
        return 1;
    }
    int lock = -1;
    if (pw_backup_lock(p.data_dir, &lock, err, sizeof err) != 0) {
        fprintf(stderr, "phasewise restore: %s\n", err);
        return 1;
    }
    pw_backup_result res;
    int rc = pw_backup_restore(&p, file, true, &res, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "phasewise restore: %s refused: %s\n%s\n", file, err,
                rc == PW_BACKUP_E_IO && strstr(err, "half-way")
                    ? "The data folder is partly restored: run the restore again."
                    : "Nothing was changed.");
        close(lock);
        return 1;
    }
    /* A restore the web UI staged and the appliance never applied would undo this one. */
    char pending[1100];
    if (join(pending, sizeof pending, p.data_dir, PW_BACKUP_PENDING) == 0 && unlink(pending) == 0)
        printf("removed a restore staged through the web UI and never applied (%s)\n", pending);
    printf("restored the backup of \"%s\" made %s by phasewise %s (database schema %d): %s\n",
           res.m.site, res.m.created, res.m.phasewise, res.m.schema, res.restored);
    if (res.removed[0])
        printf("removed, as the backup does not hold them: %s\n", res.removed);
    printf("start the appliance again (systemctl start phasewise); it migrates an older "
           "database at its start\n");
    close(lock);
    return 0;
}
