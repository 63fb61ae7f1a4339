/* libFuzzer target: the backup archive's reader (server/backup_tar.c), fed in chunks of a size
 * the input picks, the way the shell reads a file. Raw inputs check the events' own contract
 * (data adds up to each file's size, the archive is done only when every listed file came);
 * inputs starting with 'W' become the contents of an archive the writer makes, which must read
 * back whole and equal in any chunking, and again with one byte flipped (then it may be refused,
 * but never crash, and a change inside a file must be refused). */
#include "backup_tar.h"

#include <mbedtls/md.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    int rc;
    bool done;
    size_t files;
    uint64_t got[PW_BACKUP_MEMBERS];
    uint8_t sum[PW_BACKUP_MEMBERS][PW_BACKUP_SHA256_LEN];
} seen;

static seen read_chunked(const uint8_t *data, size_t size, size_t chunk)
{
    seen s;
    memset(&s, 0, sizeof s);
    pw_backup_reader *r = pw_backup_reader_new();
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0);
    int cur = -1;
    for (size_t at = 0; s.rc == 0 && at < size;) {
        size_t len = size - at < chunk ? size - at : chunk;
        size_t off = 0, used;
        pw_backup_event ev;
        do {
            s.rc = pw_backup_read(r, data + at + off, len - off, &used, &ev);
            if (used > len - off)
                abort();
            off += used;
            if (s.rc) {
                if (!pw_backup_reader_error(r)[0])
                    abort(); /* every refusal names its problem */
                break;
            }
            if (ev.kind == PW_BACKUP_EV_BEGIN) {
                if (cur != -1 || s.done)
                    abort();
                cur = ev.member;
                s.got[cur] = 0;
                mbedtls_md_starts(&md);
            } else if (ev.kind == PW_BACKUP_EV_DATA) {
                if (ev.member != cur || ev.len == 0 || ev.data < data || ev.data >= data + size)
                    abort();
                s.got[cur] += ev.len;
                mbedtls_md_update(&md, ev.data, ev.len);
            } else if (ev.kind == PW_BACKUP_EV_END) {
                if (ev.member != cur || ev.size != s.got[cur])
                    abort();
                mbedtls_md_finish(&md, s.sum[cur]);
                const pw_backup_manifest *m = pw_backup_reader_manifest(r);
                if (!m || memcmp(m->files[s.files].sha256, s.sum[cur], PW_BACKUP_SHA256_LEN))
                    abort(); /* END means the listed SHA-256 matched */
                s.files++;
                cur = -1;
            } else if (ev.kind == PW_BACKUP_EV_DONE) {
                const pw_backup_manifest *m = pw_backup_reader_manifest(r);
                if (!m || cur != -1 || s.files != m->n_files)
                    abort();
                s.done = true;
            }
        } while (ev.kind != PW_BACKUP_EV_MORE);
        at += len;
    }
    if (s.rc == 0)
        s.rc = pw_backup_reader_finish(r);
    if ((s.rc == 0) != s.done)
        abort();
    mbedtls_md_free(&md);
    pw_backup_reader_free(r);
    return s;
}

/* An archive of config, key and database whose contents are the input split in three. */
static uint8_t *write_archive(const uint8_t *in, size_t n, size_t *out_len, size_t *db_at)
{
    size_t cut1 = n / 3, cut2 = 2 * n / 3;
    const struct {
        int member;
        const uint8_t *p;
        size_t len;
    } parts[] = {{PW_BACKUP_CONFIG, in, cut1},
                 {PW_BACKUP_KEY, in + cut1, cut2 - cut1 < 4096 ? cut2 - cut1 : 4096},
                 {PW_BACKUP_DB, in + cut2, n - cut2}};
    pw_backup_manifest m;
    memset(&m, 0, sizeof m);
    m.version = PW_BACKUP_VERSION;
    strcpy(m.created, "2026-12-06T10:30:00Z");
    strcpy(m.phasewise, "0.1.0");
    strcpy(m.site, "fuzz");
    m.schema = 5;
    m.n_files = 3;
    for (size_t i = 0; i < 3; i++) {
        m.files[i].member = parts[i].member;
        m.files[i].size = parts[i].len;
        mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), parts[i].p, parts[i].len,
                   m.files[i].sha256);
    }
    size_t mlen;
    char *text = pw_backup_manifest_dump(&m, &mlen);
    size_t total = (size_t)pw_backup_archive_size(&m, mlen);
    uint8_t *out = calloc(1, total), *p = out;
    pw_backup_header(p, PW_BACKUP_MANIFEST, mlen, 0);
    memcpy(p + PW_BACKUP_BLOCK, text, mlen);
    p += PW_BACKUP_BLOCK + mlen + pw_backup_padding(mlen);
    for (size_t i = 0; i < 3; i++) {
        pw_backup_header(p, pw_backup_member(parts[i].member)->name, parts[i].len, 0);
        if (parts[i].member == PW_BACKUP_DB)
            *db_at = (size_t)(p - out) + PW_BACKUP_BLOCK;
        memcpy(p + PW_BACKUP_BLOCK, parts[i].p, parts[i].len);
        p += PW_BACKUP_BLOCK + parts[i].len + pw_backup_padding(parts[i].len);
    }
    free(text);
    *out_len = total;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 20)) /* the writer's parts stay within their bounds */
        return 0;
    size_t chunk = 1 + data[1] * 37u;
    if (data[0] != 'W') {
        read_chunked(data + 2, size - 2, chunk);
        return 0;
    }
    size_t len, db_at = 0;
    uint8_t *archive = write_archive(data + 2, size - 2, &len, &db_at);
    seen s = read_chunked(archive, len, chunk);
    if (s.rc != 0 || s.files != 3)
        abort(); /* what the writer makes reads back */
    /* One byte flipped, where the input's last byte says. */
    size_t at = (size_t)data[size - 1] * 131u % len;
    archive[at] ^= 0x5a;
    seen f = read_chunked(archive, len, chunk);
    size_t db_len = (size - 2) - 2 * (size - 2) / 3;
    if (at >= db_at && at < db_at + db_len && f.rc == 0)
        abort(); /* a change inside a file's data is always refused */
    free(archive);
    return 0;
}
