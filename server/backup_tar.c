/* The backup archive: ustar headers and the manifest written, and an archive read back as a
 * state machine that checks everything it can without touching a file: the manifest first and
 * valid, names from the allow-list, each listed once and in order, sizes, SHA-256, the end
 * marker and nothing after it. */
#include "backup_tar.h"

#include <jansson.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

#define MIB (1024ull * 1024)
/* ustar sizes are 11 octal digits. */
#define TAR_MAX_SIZE 077777777777ull

/* config/ refuses a config larger than 4 MiB (PW_CFG_MAX_FILE); keys and password hashes are
 * a line; the database's bound is PW_BACKUP_DB_MAX. Together they stay within
 * PW_BACKUP_ARCHIVE_MAX. */
static const pw_backup_member_info members[PW_BACKUP_MEMBERS] = {
    [PW_BACKUP_CONFIG] = {"config.json", 4 * MIB, true, 0640},
    [PW_BACKUP_KEY] = {"facility.key", 4096, true, 0600},
    [PW_BACKUP_ADMIN] = {"admin-password", 4096, false, 0600},
    [PW_BACKUP_TLS_CERT] = {"tls-cert.pem", MIB, false, 0644},
    [PW_BACKUP_TLS_KEY] = {"tls-key.pem", MIB, false, 0600},
    [PW_BACKUP_OVERRIDES] = {"overrides.json", 4 * MIB, false, 0640},
    [PW_BACKUP_DB] = {"phasewise.db", PW_BACKUP_DB_MAX, true, 0640},
};

const char *pw_backup_strerror(int err)
{
    switch (err) {
    case PW_BACKUP_OK:
        return "ok";
    case PW_BACKUP_E_FOREIGN:
        return "not a phasewise backup";
    case PW_BACKUP_E_DAMAGED:
        return "damaged archive";
    case PW_BACKUP_E_NAME:
        return "member not allowed";
    case PW_BACKUP_E_DUPLICATE:
        return "member twice";
    case PW_BACKUP_E_SIZE:
        return "member size";
    case PW_BACKUP_E_MANIFEST:
        return "manifest";
    case PW_BACKUP_E_VERSION:
        return "newer format";
    case PW_BACKUP_E_TRUNCATED:
        return "truncated archive";
    case PW_BACKUP_E_EXTRA:
        return "member not listed";
    case PW_BACKUP_E_CONTENT:
        return "content not valid";
    case PW_BACKUP_E_IO:
        return "input/output error";
    case PW_BACKUP_E_RUNNING:
        return "appliance running";
    default:
        return "unknown error";
    }
}

const pw_backup_member_info *pw_backup_member(int m)
{
    return m >= 0 && m < PW_BACKUP_MEMBERS ? &members[m] : NULL;
}

int pw_backup_member_find(const char *name)
{
    for (int m = 0; m < PW_BACKUP_MEMBERS; m++)
        if (strcmp(members[m].name, name) == 0)
            return m;
    return -1;
}

/* ---- writing ---- */

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

char *pw_backup_manifest_dump(const pw_backup_manifest *m, size_t *len)
{
    json_t *files = json_array();
    for (size_t i = 0; i < m->n_files; i++) {
        char sha[2 * PW_BACKUP_SHA256_LEN + 1];
        hex(m->files[i].sha256, PW_BACKUP_SHA256_LEN, sha);
        json_array_append_new(files,
                              json_pack("{s:s, s:I, s:s}", "name", members[m->files[i].member].name,
                                        "size", (json_int_t)m->files[i].size, "sha256", sha));
    }
    json_t *doc = json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:o}", "format", PW_BACKUP_FORMAT,
                            "version", PW_BACKUP_VERSION, "created", m->created, "phasewise",
                            m->phasewise, "site", m->site, "schema", m->schema, "files", files);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text) /* only out of memory: one policy for the whole project */
        text = pw_xstrdup("");
    size_t n = strlen(text);
    /* A final newline, so that `tar xOf FILE manifest.json` reads well. */
    char *out = pw_xmalloc(n + 2);
    memcpy(out, text, n);
    out[n] = '\n';
    out[n + 1] = '\0';
    free(text);
    *len = n + 1;
    return out;
}

static void octal(char *field, size_t width, uint64_t v)
{
    /* width - 1 digits and a NUL, as POSIX writes them. */
    snprintf(field, width, "%0*llo", (int)(width - 1), (unsigned long long)v);
}

int pw_backup_header(uint8_t out[PW_BACKUP_BLOCK], const char *name, uint64_t size, int64_t mtime)
{
    size_t n = strlen(name);
    if (n == 0 || n > 99 || size > TAR_MAX_SIZE)
        return -1;
    memset(out, 0, PW_BACKUP_BLOCK);
    char *h = (char *)out;
    memcpy(h, name, n);
    octal(h + 100, 8, 0600);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, size);
    octal(h + 136, 12, mtime > 0 && (uint64_t)mtime <= TAR_MAX_SIZE ? (uint64_t)mtime : 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6); /* with its NUL */
    memcpy(h + 263, "00", 2);
    memcpy(h + 265, "phasewise", 9);
    memcpy(h + 297, "phasewise", 9);
    /* The checksum counts its own field as spaces. */
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < PW_BACKUP_BLOCK; i++)
        sum += out[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return 0;
}

size_t pw_backup_padding(uint64_t size)
{
    return (size_t)((PW_BACKUP_BLOCK - size % PW_BACKUP_BLOCK) % PW_BACKUP_BLOCK);
}

uint64_t pw_backup_archive_size(const pw_backup_manifest *m, size_t manifest_len)
{
    uint64_t total = PW_BACKUP_BLOCK + manifest_len + pw_backup_padding(manifest_len);
    for (size_t i = 0; i < m->n_files; i++)
        total += PW_BACKUP_BLOCK + m->files[i].size + pw_backup_padding(m->files[i].size);
    return total + PW_BACKUP_END_LEN;
}

/* ---- the manifest ---- */

static int unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return 0;
}

/* "2026-12-06T10:30:00Z": digits where digits go, UTC. */
static bool rfc3339_utc(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    return true;
}

static int copy_string(json_t *root, const char *key, char *out, size_t size, char *err,
                       size_t err_size)
{
    const char *v = json_string_value(json_object_get(root, key));
    if (!v || strlen(v) >= size) {
        snprintf(err, err_size, "the manifest's \"%s\" is missing or not a short string", key);
        return PW_BACKUP_E_MANIFEST;
    }
    pw_strlcpy(out, v, size);
    return 0;
}

static int parse_file(json_t *f, size_t i, pw_backup_manifest *m, char *err, size_t err_size)
{
    const char *name = json_string_value(json_object_get(f, "name"));
    json_t *size = json_object_get(f, "size");
    const char *sha = json_string_value(json_object_get(f, "sha256"));
    if (!json_is_object(f) || !name || !json_is_integer(size) || !sha) {
        snprintf(err, err_size, "the manifest's files[%zu] needs a name, a size and a sha256", i);
        return PW_BACKUP_E_MANIFEST;
    }
    int member = pw_backup_member_find(name);
    if (member < 0) {
        snprintf(err, err_size,
                 "the manifest lists \"%.64s\", which is not a file a phasewise "
                 "backup holds",
                 name);
        return PW_BACKUP_E_NAME;
    }
    for (size_t k = 0; k < i; k++)
        if (m->files[k].member == member) {
            snprintf(err, err_size, "the manifest lists %s twice", name);
            return PW_BACKUP_E_DUPLICATE;
        }
    json_int_t n = json_integer_value(size);
    if (n < 0 || (uint64_t)n > members[member].max) {
        snprintf(err, err_size,
                 "the manifest lists %s with %lld bytes; a backup holds at most "
                 "%llu",
                 name, (long long)n, (unsigned long long)members[member].max);
        return PW_BACKUP_E_SIZE;
    }
    pw_backup_file *out = &m->files[i];
    out->member = member;
    out->size = (uint64_t)n;
    if (unhex(sha, out->sha256, PW_BACKUP_SHA256_LEN) != 0) {
        snprintf(err, err_size, "the manifest's sha256 of %s is not 64 lower-case hex digits",
                 name);
        return PW_BACKUP_E_MANIFEST;
    }
    return 0;
}

static int manifest_from_json(json_t *root, pw_backup_manifest *m, char *err, size_t err_size)
{
    const char *format = json_string_value(json_object_get(root, "format"));
    if (!format || strcmp(format, PW_BACKUP_FORMAT) != 0) {
        snprintf(err, err_size, "not a phasewise backup: its manifest's format is not \"%s\"",
                 PW_BACKUP_FORMAT);
        return PW_BACKUP_E_FOREIGN;
    }
    json_t *version = json_object_get(root, "version");
    if (!json_is_integer(version) || json_integer_value(version) < 1) {
        snprintf(err, err_size, "the manifest's version is not a positive whole number");
        return PW_BACKUP_E_MANIFEST;
    }
    if (json_integer_value(version) > PW_BACKUP_VERSION) {
        snprintf(err, err_size,
                 "the backup was made by a newer phasewise (backup format %lld; "
                 "this one reads format %d): restore it with that version or later",
                 (long long)json_integer_value(version), PW_BACKUP_VERSION);
        return PW_BACKUP_E_VERSION;
    }
    m->version = (int)json_integer_value(version);
    int rc;
    if ((rc = copy_string(root, "created", m->created, sizeof m->created, err, err_size)) ||
        (rc = copy_string(root, "phasewise", m->phasewise, sizeof m->phasewise, err, err_size)) ||
        (rc = copy_string(root, "site", m->site, sizeof m->site, err, err_size)))
        return rc;
    if (!rfc3339_utc(m->created)) {
        snprintf(err, err_size, "the manifest's created time is not RFC 3339 UTC");
        return PW_BACKUP_E_MANIFEST;
    }
    json_t *schema = json_object_get(root, "schema");
    if (!json_is_integer(schema) || json_integer_value(schema) < 1 ||
        json_integer_value(schema) > 1000000) {
        snprintf(err, err_size, "the manifest's schema is not a positive whole number");
        return PW_BACKUP_E_MANIFEST;
    }
    m->schema = (int)json_integer_value(schema);
    json_t *files = json_object_get(root, "files");
    size_t n = json_array_size(files);
    if (!json_is_array(files) || n == 0) {
        snprintf(err, err_size, "the manifest lists no files");
        return PW_BACKUP_E_MANIFEST;
    }
    if (n > PW_BACKUP_MEMBERS) {
        snprintf(err, err_size, "the manifest lists %zu files; a backup holds at most %d", n,
                 PW_BACKUP_MEMBERS);
        return PW_BACKUP_E_DUPLICATE;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = parse_file(json_array_get(files, i), i, m, err, err_size)) != 0)
            return rc;
    m->n_files = n;
    /* The config names where the key and the HTTPS pair go: it comes first. */
    if (m->files[0].member != PW_BACKUP_CONFIG) {
        snprintf(err, err_size, "the manifest must list config.json first");
        return PW_BACKUP_E_MANIFEST;
    }
    for (int k = 0; k < PW_BACKUP_MEMBERS; k++) {
        if (!members[k].required)
            continue;
        bool listed = false;
        for (size_t i = 0; i < n; i++)
            listed |= m->files[i].member == k;
        if (!listed) {
            snprintf(err, err_size, "the manifest does not list %s, which every backup holds",
                     members[k].name);
            return PW_BACKUP_E_MANIFEST;
        }
    }
    return 0;
}

int pw_backup_manifest_parse(const char *text, size_t len, pw_backup_manifest *m, char *err,
                             size_t err_size)
{
    memset(m, 0, sizeof *m);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        snprintf(err, err_size, "manifest.json is not a JSON object (%s): not a phasewise backup",
                 root ? "another JSON value" : jerr.text);
        json_decref(root);
        return PW_BACKUP_E_FOREIGN;
    }
    int rc = manifest_from_json(root, m, err, err_size);
    json_decref(root);
    return rc;
}

/* ---- reading ---- */

enum rd_state {
    RD_HEADER,   /* collecting a header block */
    RD_MANIFEST, /* collecting the manifest's text */
    RD_DATA,     /* passing a listed file's data through */
    RD_PAD,      /* skipping the padding after a member */
    RD_END2,     /* one zero block seen: the second must follow */
    RD_DONE,     /* the end marker was read: only zero bytes may follow */
};

struct pw_backup_reader {
    enum rd_state st;
    int err;
    char msg[320];
    uint8_t hdr[PW_BACKUP_BLOCK];
    size_t fill;
    char *man; /* the manifest's text while it is read */
    size_t man_len, man_size;
    pw_backup_manifest m;
    bool have_manifest;
    size_t next; /* index in m.files of the file expected next */
    int cur;     /* member being read */
    uint64_t remaining;
    size_t pad;
    uint64_t total; /* bytes read so far */
    mbedtls_md_context_t md;
    bool md_ready;
};

pw_backup_reader *pw_backup_reader_new(void)
{
    pw_backup_reader *r = pw_xcalloc(1, sizeof *r);
    r->cur = -1;
    mbedtls_md_init(&r->md);
    r->md_ready = mbedtls_md_setup(&r->md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) == 0;
    return r;
}

void pw_backup_reader_free(pw_backup_reader *r)
{
    if (!r)
        return;
    mbedtls_md_free(&r->md);
    free(r->man);
    free(r);
}

const pw_backup_manifest *pw_backup_reader_manifest(const pw_backup_reader *r)
{
    return r->have_manifest ? &r->m : NULL;
}

const char *pw_backup_reader_error(const pw_backup_reader *r)
{
    return r->msg;
}

static int fail(pw_backup_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(pw_backup_reader *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->err = err;
    return err;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* A header field's octal number: optional leading spaces, digits, then NUL or space to its
 * end. Returns 0 or -1 (base-256 sizes and anything else). */
static int parse_octal(const uint8_t *f, size_t width, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < width && f[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v > (UINT64_MAX >> 3))
            return -1;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    if (digits == 0)
        return -1;
    for (; i < width; i++)
        if (f[i] != '\0' && f[i] != ' ')
            return -1;
    *out = v;
    return 0;
}

/* The member's name for a message: printable ASCII, anything else as '?'. */
static void printable(const uint8_t *name, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && name[i] && k + 1 < size; i++)
        out[k++] = name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
    out[k] = '\0';
}

static const char *listed_name(const pw_backup_reader *r, size_t i)
{
    return members[r->m.files[i].member].name;
}

/* A zero block where a header may stand: the end marker's first half, if nothing is missing. */
static int on_zero_block(pw_backup_reader *r)
{
    if (!r->have_manifest)
        return fail(r, PW_BACKUP_E_MANIFEST,
                    "the archive holds no manifest.json: not a phasewise backup");
    if (r->next < r->m.n_files)
        return fail(r, PW_BACKUP_E_TRUNCATED,
                    "%s is listed in the manifest but missing from the archive",
                    listed_name(r, r->next));
    r->st = RD_END2;
    return 0;
}

static int check_header(pw_backup_reader *r, char *name, size_t name_size, uint64_t *size)
{
    const uint8_t *h = r->hdr;
    /* POSIX ustar ("ustar\0" "00") or the old GNU form ("ustar  \0"). */
    if (memcmp(h + 257, "ustar", 5) != 0 || (h[262] != '\0' && h[262] != ' '))
        return fail(r, PW_BACKUP_E_FOREIGN, "not a tar archive: not a phasewise backup");
    uint64_t stored;
    unsigned sum = 0;
    for (size_t i = 0; i < PW_BACKUP_BLOCK; i++)
        sum += i >= 148 && i < 156 ? ' ' : h[i];
    char shown[112];
    printable(h, 100, shown, sizeof shown);
    if (parse_octal(h + 148, 8, &stored) != 0 || stored != sum)
        return fail(r, PW_BACKUP_E_DAMAGED,
                    "the archive is damaged: the header of member \"%s\" fails its checksum",
                    shown);
    if (memchr(h, '\0', 100) == NULL || h[345] != '\0')
        return fail(r, PW_BACKUP_E_NAME, "member \"%s\" is not a file a phasewise backup holds",
                    shown);
    pw_strlcpy(name, (const char *)h, name_size);
    if (h[156] != '0' && h[156] != '\0')
        return fail(r, PW_BACKUP_E_NAME, "member \"%s\" is not a regular file", shown);
    if (parse_octal(h + 124, 12, size) != 0)
        return fail(r, PW_BACKUP_E_DAMAGED,
                    "the archive is damaged: the size of member \"%s\" is not a number", shown);
    return 0;
}

static int start_manifest(pw_backup_reader *r, uint64_t size)
{
    if (r->have_manifest)
        return fail(r, PW_BACKUP_E_DUPLICATE, "manifest.json appears twice in the archive");
    if (size > PW_BACKUP_MANIFEST_MAX)
        return fail(r, PW_BACKUP_E_SIZE,
                    "manifest.json has %llu bytes; a backup's manifest has at most %d",
                    (unsigned long long)size, PW_BACKUP_MANIFEST_MAX);
    r->man_size = (size_t)size;
    r->man_len = 0;
    r->man = pw_xmalloc(r->man_size + 1);
    r->remaining = size;
    r->st = RD_MANIFEST;
    return 0;
}

/* A file after the manifest: the one it lists next, of the size it lists. */
static int start_file(pw_backup_reader *r, const char *name, uint64_t size, pw_backup_event *ev)
{
    int member = pw_backup_member_find(name);
    if (member < 0)
        return fail(r, PW_BACKUP_E_NAME, "member \"%s\" is not a file a phasewise backup holds",
                    name);
    for (size_t i = 0; i < r->next; i++)
        if (r->m.files[i].member == member)
            return fail(r, PW_BACKUP_E_DUPLICATE, "%s appears twice in the archive", name);
    size_t at = r->m.n_files;
    for (size_t i = r->next; i < r->m.n_files; i++)
        if (r->m.files[i].member == member)
            at = i;
    if (at == r->m.n_files)
        return fail(r, PW_BACKUP_E_EXTRA, "%s is in the archive but not in its manifest", name);
    if (at != r->next)
        return fail(r, PW_BACKUP_E_DAMAGED,
                    "the archive is damaged: %s stands where the manifest lists %s", name,
                    listed_name(r, r->next));
    const pw_backup_file *f = &r->m.files[at];
    if (size != f->size)
        return fail(r, PW_BACKUP_E_SIZE, "%s holds %llu bytes but the manifest lists %llu", name,
                    (unsigned long long)size, (unsigned long long)f->size);
    if (!r->md_ready || mbedtls_md_starts(&r->md) != 0)
        return fail(r, PW_BACKUP_E_IO, "SHA-256 is not available");
    r->cur = member;
    r->remaining = size;
    r->st = RD_DATA;
    ev->kind = PW_BACKUP_EV_BEGIN;
    ev->member = member;
    ev->size = size;
    return 0;
}

static int on_header(pw_backup_reader *r, pw_backup_event *ev)
{
    if (all_zero(r->hdr, PW_BACKUP_BLOCK))
        return on_zero_block(r);
    char name[100];
    uint64_t size = 0;
    int rc = check_header(r, name, sizeof name, &size);
    if (rc != 0)
        return rc;
    if (strcmp(name, PW_BACKUP_MANIFEST) == 0)
        return start_manifest(r, size);
    if (!r->have_manifest)
        return fail(r, PW_BACKUP_E_MANIFEST,
                    "the archive does not begin with manifest.json: not a phasewise backup");
    return start_file(r, name, size, ev);
}

static int end_manifest(pw_backup_reader *r, pw_backup_event *ev)
{
    char err[256];
    r->man[r->man_len] = '\0';
    int rc = pw_backup_manifest_parse(r->man, r->man_len, &r->m, err, sizeof err);
    free(r->man);
    r->man = NULL;
    if (rc != 0)
        return fail(r, rc, "%s", err);
    r->have_manifest = true;
    r->next = 0;
    r->pad = pw_backup_padding(r->man_size);
    r->st = RD_PAD;
    ev->kind = PW_BACKUP_EV_MANIFEST;
    return 0;
}

static int end_file(pw_backup_reader *r, pw_backup_event *ev)
{
    uint8_t sum[PW_BACKUP_SHA256_LEN];
    const pw_backup_file *f = &r->m.files[r->next];
    if (mbedtls_md_finish(&r->md, sum) != 0)
        return fail(r, PW_BACKUP_E_IO, "SHA-256 is not available");
    if (memcmp(sum, f->sha256, sizeof sum) != 0)
        return fail(r, PW_BACKUP_E_DAMAGED,
                    "the archive is damaged: %s does not match its SHA-256 in the manifest",
                    members[f->member].name);
    r->next++;
    r->pad = pw_backup_padding(f->size);
    r->st = RD_PAD;
    ev->kind = PW_BACKUP_EV_END;
    ev->member = r->cur;
    ev->size = f->size;
    r->cur = -1;
    return 0;
}

int pw_backup_read(pw_backup_reader *r, const uint8_t *data, size_t len, size_t *used,
                   pw_backup_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->member = -1;
    *used = 0;
    if (r->err)
        return r->err;
    size_t off = 0;
    int rc = 0;
    for (;;) {
        size_t avail = len - off;
        switch (r->st) {
        case RD_HEADER:
        case RD_END2: {
            size_t take = PW_BACKUP_BLOCK - r->fill < avail ? PW_BACKUP_BLOCK - r->fill : avail;
            memcpy(r->hdr + r->fill, data + off, take);
            r->fill += take;
            off += take;
            if (r->fill < PW_BACKUP_BLOCK)
                goto more;
            r->fill = 0;
            if (r->st == RD_END2) {
                if (!all_zero(r->hdr, PW_BACKUP_BLOCK)) {
                    rc = fail(r, PW_BACKUP_E_EXTRA, "the archive holds data after its end marker");
                    goto out;
                }
                r->st = RD_DONE;
                ev->kind = PW_BACKUP_EV_DONE;
                goto out;
            }
            if ((rc = on_header(r, ev)) != 0 || ev->kind != PW_BACKUP_EV_MORE)
                goto out;
            break;
        }
        case RD_MANIFEST: {
            size_t take = r->remaining < avail ? (size_t)r->remaining : avail;
            memcpy(r->man + r->man_len, data + off, take);
            r->man_len += take;
            r->remaining -= take;
            off += take;
            if (r->remaining)
                goto more;
            rc = end_manifest(r, ev);
            goto out;
        }
        case RD_DATA: {
            if (r->remaining == 0) {
                rc = end_file(r, ev);
                goto out;
            }
            if (avail == 0)
                goto more;
            size_t take = r->remaining < avail ? (size_t)r->remaining : avail;
            if (mbedtls_md_update(&r->md, data + off, take) != 0) {
                rc = fail(r, PW_BACKUP_E_IO, "SHA-256 is not available");
                goto out;
            }
            ev->kind = PW_BACKUP_EV_DATA;
            ev->member = r->cur;
            ev->data = data + off;
            ev->len = take;
            r->remaining -= take;
            off += take;
            goto out;
        }
        case RD_PAD: {
            size_t take = r->pad < avail ? r->pad : avail;
            r->pad -= take;
            off += take;
            if (r->pad)
                goto more;
            r->st = RD_HEADER;
            break;
        }
        case RD_DONE:
            if (!all_zero(data + off, avail)) {
                rc = fail(r, PW_BACKUP_E_EXTRA, "the archive holds data after its end marker");
                goto out;
            }
            off = len;
            goto more;
        }
    }
more:
    ev->kind = PW_BACKUP_EV_MORE;
out:
    r->total += off;
    *used = off;
    return rc;
}

int pw_backup_reader_finish(pw_backup_reader *r)
{
    if (r->err)
        return r->err;
    if (r->st == RD_DONE)
        return 0;
    if (r->total == 0)
        return fail(r, PW_BACKUP_E_FOREIGN, "the file is empty: not a phasewise backup");
    if (!r->have_manifest)
        return fail(r, PW_BACKUP_E_TRUNCATED, "the archive is truncated: it ends in its manifest");
    if (r->st == RD_DATA)
        return fail(r, PW_BACKUP_E_TRUNCATED, "the archive is truncated: it ends inside %s",
                    members[r->cur].name);
    if (r->next < r->m.n_files)
        return fail(r, PW_BACKUP_E_TRUNCATED,
                    "the archive is truncated: it ends before %s (listed in the manifest)",
                    listed_name(r, r->next));
    return fail(r, PW_BACKUP_E_TRUNCATED, "the archive is truncated: its end marker is missing");
}
