/* The backup archive's format (server/backup_tar.c): what the writer makes the reader reads back
 * in any chunking, and every way an archive is refused: a foreign file, truncation anywhere, a
 * damaged header or file, names off the allow-list (path traversal too), a file listed or stored
 * twice or not listed, oversized members, a manifest that is missing, not first, foreign or of a
 * newer format, and data after the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/md.h>

#include "backup_tar.h"

/* ---- building archives, good and bad ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *data, size_t len)
{
    if (b->n + len > b->cap) {
        b->cap = (b->n + len) * 2 + 1024;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (len)
        memcpy(b->p + b->n, data, len);
    b->n += len;
}

static void put_member(buf *b, const char *name, const void *data, size_t len)
{
    uint8_t hdr[PW_BACKUP_BLOCK];
    static const uint8_t zeros[PW_BACKUP_BLOCK];
    assert_int_equal(pw_backup_header(hdr, name, len, 1765000000), 0);
    put(b, hdr, sizeof hdr);
    put(b, data, len);
    put(b, zeros, pw_backup_padding(len));
}

static void put_end(buf *b)
{
    static const uint8_t zeros[PW_BACKUP_END_LEN];
    put(b, zeros, sizeof zeros);
}

typedef struct content {
    int member;
    const char *data;
} content;

static const char config_text[] = "{\"site_name\": \"Test\"}\n";
static const char key_text[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
static const char admin_text[] = "pbkdf2-sha256$600000$c2FsdA$aGFzaA\n";
static const char db_text[] = "SQLite format 3 (not really: the format does not look inside)";

static const content usual[] = {{PW_BACKUP_CONFIG, config_text},
                                {PW_BACKUP_KEY, key_text},
                                {PW_BACKUP_ADMIN, admin_text},
                                {PW_BACKUP_DB, db_text}};

static void fill_manifest(pw_backup_manifest *m, const content *c, size_t n)
{
    memset(m, 0, sizeof *m);
    m->version = PW_BACKUP_VERSION;
    snprintf(m->created, sizeof m->created, "2026-12-06T10:30:00Z");
    snprintf(m->phasewise, sizeof m->phasewise, "0.1.0");
    snprintf(m->site, sizeof m->site, "Test");
    m->schema = 5;
    m->n_files = n;
    for (size_t i = 0; i < n; i++) {
        m->files[i].member = c[i].member;
        m->files[i].size = strlen(c[i].data);
        mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)c[i].data,
                   strlen(c[i].data), m->files[i].sha256);
    }
}

static void put_manifest(buf *b, const pw_backup_manifest *m)
{
    size_t len;
    char *text = pw_backup_manifest_dump(m, &len);
    put_member(b, PW_BACKUP_MANIFEST, text, len);
    free(text);
}

/* The archive the writer makes of c. */
static buf archive_of(const content *c, size_t n)
{
    buf b = {0};
    pw_backup_manifest m;
    fill_manifest(&m, c, n);
    put_manifest(&b, &m);
    for (size_t i = 0; i < n; i++)
        put_member(&b, pw_backup_member(c[i].member)->name, c[i].data, strlen(c[i].data));
    put_end(&b);
    return b;
}

/* ---- reading ---- */

typedef struct outcome {
    int rc;
    char msg[400];
    bool done;
    size_t n_files;
    char data[PW_BACKUP_MEMBERS][256];
    size_t len[PW_BACKUP_MEMBERS];
} outcome;

/* Reads data in chunks of chunk bytes, like the shell reads a file. */
static outcome read_all(const uint8_t *data, size_t n, size_t chunk)
{
    outcome o;
    memset(&o, 0, sizeof o);
    pw_backup_reader *r = pw_backup_reader_new();
    int cur = -1;
    for (size_t at = 0; o.rc == 0;) {
        size_t len = n - at < chunk ? n - at : chunk;
        size_t off = 0, used;
        pw_backup_event ev;
        do {
            o.rc = pw_backup_read(r, data + at + off, len - off, &used, &ev);
            off += used;
            if (o.rc)
                break;
            switch (ev.kind) {
            case PW_BACKUP_EV_BEGIN:
                assert_int_equal(cur, -1);
                cur = ev.member;
                break;
            case PW_BACKUP_EV_DATA:
                assert_int_equal(ev.member, cur);
                assert_true(o.len[cur] + ev.len < sizeof o.data[cur]);
                memcpy(o.data[cur] + o.len[cur], ev.data, ev.len);
                o.len[cur] += ev.len;
                break;
            case PW_BACKUP_EV_END:
                assert_int_equal(ev.member, cur);
                assert_int_equal(ev.size, o.len[cur]);
                cur = -1;
                o.n_files++;
                break;
            case PW_BACKUP_EV_DONE:
                o.done = true;
                break;
            default:
                break;
            }
        } while (ev.kind != PW_BACKUP_EV_MORE);
        at += len;
        if (o.rc || at == n)
            break;
    }
    if (o.rc == 0)
        o.rc = pw_backup_reader_finish(r);
    snprintf(o.msg, sizeof o.msg, "%s", pw_backup_reader_error(r));
    pw_backup_reader_free(r);
    return o;
}

static void expect_refused(const buf *b, int err, const char *words)
{
    for (size_t chunk = 1; chunk <= b->n; chunk = chunk * 7 + 3) {
        outcome o = read_all(b->p, b->n, chunk);
        if (o.rc != err)
            fail_msg("chunk %zu: got %d (%s), expected %d", chunk, o.rc, o.msg, err);
        if (!strstr(o.msg, words))
            fail_msg("the message \"%s\" does not say \"%s\"", o.msg, words);
    }
}

/* ---- tests ---- */

static void round_trip_any_chunking(void **state)
{
    (void)state;
    buf b = archive_of(usual, 4);
    assert_int_equal(b.n % PW_BACKUP_BLOCK, 0);
    pw_backup_manifest m;
    fill_manifest(&m, usual, 4);
    size_t mlen;
    free(pw_backup_manifest_dump(&m, &mlen));
    assert_int_equal(pw_backup_archive_size(&m, mlen), b.n);
    /* tar pads archives to whole records of 10 KiB: zeros after the end are fine. */
    static const uint8_t zeros[10240];
    buf padded = {0};
    put(&padded, b.p, b.n);
    put(&padded, zeros, sizeof zeros - b.n % sizeof zeros);
    const buf *inputs[] = {&b, &padded};
    for (size_t k = 0; k < 2; k++)
        for (size_t chunk = 1; chunk <= inputs[k]->n; chunk = chunk * 3 + 1) {
            outcome o = read_all(inputs[k]->p, inputs[k]->n, chunk);
            if (o.rc)
                fail_msg("chunk %zu: %s", chunk, o.msg);
            assert_true(o.done);
            assert_int_equal(o.n_files, 4);
            for (size_t i = 0; i < 4; i++) {
                assert_int_equal(o.len[usual[i].member], strlen(usual[i].data));
                assert_memory_equal(o.data[usual[i].member], usual[i].data, strlen(usual[i].data));
            }
        }
    free(b.p);
    free(padded.p);
}

static void manifest_round_trip(void **state)
{
    (void)state;
    pw_backup_manifest m, back;
    fill_manifest(&m, usual, 4);
    size_t len;
    char *text = pw_backup_manifest_dump(&m, &len);
    char err[256];
    assert_int_equal(pw_backup_manifest_parse(text, len, &back, err, sizeof err), 0);
    assert_memory_equal(&m, &back, sizeof m);
    free(text);
}

static void refuses_foreign_files(void **state)
{
    (void)state;
    buf text = {0};
    for (int i = 0; i < 40; i++)
        put(&text, "This is a shopping list, not a backup.\n", 39);
    expect_refused(&text, PW_BACKUP_E_FOREIGN, "not a tar archive");
    outcome o = read_all((const uint8_t *)"", 0, 1);
    assert_int_equal(o.rc, PW_BACKUP_E_FOREIGN);
    assert_non_null(strstr(o.msg, "empty"));
    /* A tar of something else: no manifest first. */
    buf other = {0};
    put_member(&other, "notes.txt", "hello\n", 6);
    put_end(&other);
    expect_refused(&other, PW_BACKUP_E_MANIFEST, "does not begin with manifest.json");
    /* A tar with a manifest of another program. */
    buf foreign = {0};
    const char man[] = "{\"format\": \"other-backup\", \"version\": 1}";
    put_member(&foreign, PW_BACKUP_MANIFEST, man, strlen(man));
    put_end(&foreign);
    expect_refused(&foreign, PW_BACKUP_E_FOREIGN, "not a phasewise backup");
    /* Only the end marker. */
    buf empty = {0};
    put_end(&empty);
    expect_refused(&empty, PW_BACKUP_E_MANIFEST, "no manifest.json");
    free(text.p);
    free(other.p);
    free(foreign.p);
    free(empty.p);
}

static void refuses_truncation_anywhere(void **state)
{
    (void)state;
    buf b = archive_of(usual, 4);
    for (size_t cut = 1; cut < b.n; cut += cut < 2048 ? 13 : 97) {
        outcome o = read_all(b.p, cut, 64);
        if (o.rc != PW_BACKUP_E_TRUNCATED)
            fail_msg("cut at %zu of %zu: got %d (%s)", cut, b.n, o.rc, o.msg);
        assert_false(o.done);
    }
    /* Inside the database: the message names it. */
    outcome o = read_all(b.p, b.n - PW_BACKUP_END_LEN - PW_BACKUP_BLOCK + 10, 100);
    assert_int_equal(o.rc, PW_BACKUP_E_TRUNCATED);
    assert_non_null(strstr(o.msg, "inside phasewise.db"));
    /* The end marker early: a listed file is missing. */
    buf early = {0};
    pw_backup_manifest m;
    fill_manifest(&m, usual, 4);
    put_manifest(&early, &m);
    put_member(&early, "config.json", config_text, strlen(config_text));
    put_end(&early);
    expect_refused(&early, PW_BACKUP_E_TRUNCATED, "facility.key is listed in the manifest");
    free(b.p);
    free(early.p);
}

static void refuses_a_bad_header_checksum(void **state)
{
    (void)state;
    buf b = archive_of(usual, 4);
    /* The mtime of the second header (config.json's): after the manifest's header and text. */
    size_t mlen;
    pw_backup_manifest m;
    fill_manifest(&m, usual, 4);
    free(pw_backup_manifest_dump(&m, &mlen));
    size_t second = PW_BACKUP_BLOCK + mlen + pw_backup_padding(mlen);
    b.p[second + 140] ^= 1;
    expect_refused(&b, PW_BACKUP_E_DAMAGED, "checksum");
    free(b.p);
}

static void refuses_damaged_data(void **state)
{
    (void)state;
    buf b = archive_of(usual, 4);
    /* A byte of the key, flipped: its SHA-256 no longer matches. */
    uint8_t *at = NULL;
    for (size_t i = 0; !at && i + strlen(key_text) <= b.n; i++)
        if (memcmp(b.p + i, key_text, strlen(key_text)) == 0)
            at = b.p + i;
    assert_non_null(at);
    at[5] ^= 0x20;
    expect_refused(&b, PW_BACKUP_E_DAMAGED, "facility.key does not match its SHA-256");
    free(b.p);
}

static void refuses_names_off_the_list(void **state)
{
    (void)state;
    pw_backup_manifest m;
    fill_manifest(&m, usual, 4);
    /* Stored, not listed: path traversal and an unknown name. */
    const char *names[] = {"../x", "/etc/passwd", "data/config.json", "manifest.jsonx", "x"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        buf b = {0};
        put_manifest(&b, &m);
        put_member(&b, "config.json", config_text, strlen(config_text));
        put_member(&b, names[i], "evil\n", 5);
        put_end(&b);
        expect_refused(&b, PW_BACKUP_E_NAME, "is not a file a phasewise backup holds");
        free(b.p);
    }
    /* Listed in the manifest. */
    char text[] = "{\"format\": \"phasewise-backup\", \"version\": 1, \"created\": "
                  "\"2026-12-06T10:30:00Z\", \"phasewise\": \"0.1.0\", \"site\": \"T\", "
                  "\"schema\": 5, \"files\": [{\"name\": \"../x\", \"size\": 1, \"sha256\": "
                  "\"0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    buf b = {0};
    put_member(&b, PW_BACKUP_MANIFEST, text, strlen(text));
    put_end(&b);
    expect_refused(&b, PW_BACKUP_E_NAME, "\"../x\"");
    free(b.p);
    /* Not a regular file: a symbolic link called facility.key. */
    buf link = {0};
    put_manifest(&link, &m);
    put_member(&link, "config.json", config_text, strlen(config_text));
    uint8_t hdr[PW_BACKUP_BLOCK];
    assert_int_equal(pw_backup_header(hdr, "facility.key", 0, 1), 0);
    hdr[156] = '2';
    memcpy(hdr + 157, "/etc/shadow", 11);
    unsigned sum = 0;
    memset(hdr + 148, ' ', 8);
    for (size_t i = 0; i < sizeof hdr; i++)
        sum += hdr[i];
    snprintf((char *)hdr + 148, 8, "%06o", sum);
    put(&link, hdr, sizeof hdr);
    put_end(&link);
    expect_refused(&link, PW_BACKUP_E_NAME, "not a regular file");
    free(link.p);
}

static void refuses_duplicates(void **state)
{
    (void)state;
    /* Listed twice. */
    const content twice[] = {{PW_BACKUP_CONFIG, config_text},
                             {PW_BACKUP_KEY, key_text},
                             {PW_BACKUP_KEY, key_text},
                             {PW_BACKUP_DB, db_text}};
    buf b = archive_of(twice, 4);
    expect_refused(&b, PW_BACKUP_E_DUPLICATE, "lists facility.key twice");
    free(b.p);
    /* Stored twice. */
    pw_backup_manifest m;
    fill_manifest(&m, usual, 4);
    buf s = {0};
    put_manifest(&s, &m);
    put_member(&s, "config.json", config_text, strlen(config_text));
    put_member(&s, "config.json", config_text, strlen(config_text));
    put_end(&s);
    expect_refused(&s, PW_BACKUP_E_DUPLICATE, "config.json appears twice");
    free(s.p);
    /* Two manifests. */
    buf mm = {0};
    put_manifest(&mm, &m);
    put_manifest(&mm, &m);
    put_end(&mm);
    expect_refused(&mm, PW_BACKUP_E_DUPLICATE, "manifest.json appears twice");
    free(mm.p);
}

static void refuses_unlisted_and_out_of_order(void **state)
{
    (void)state;
    const content three[] = {
        {PW_BACKUP_CONFIG, config_text}, {PW_BACKUP_KEY, key_text}, {PW_BACKUP_DB, db_text}};
    pw_backup_manifest m;
    fill_manifest(&m, three, 3);
    buf b = {0};
    put_manifest(&b, &m);
    put_member(&b, "config.json", config_text, strlen(config_text));
    put_member(&b, "admin-password", admin_text, strlen(admin_text)); /* not listed */
    put_end(&b);
    expect_refused(&b, PW_BACKUP_E_EXTRA, "admin-password is in the archive but not in its");
    free(b.p);
    buf o = {0};
    put_manifest(&o, &m);
    put_member(&o, "config.json", config_text, strlen(config_text));
    put_member(&o, "phasewise.db", db_text, strlen(db_text));
    put_end(&o);
    expect_refused(&o, PW_BACKUP_E_DAMAGED, "phasewise.db stands where the manifest lists");
    free(o.p);
    /* Data after the end marker. */
    buf after = archive_of(three, 3);
    put_member(&after, "facility.key", key_text, strlen(key_text));
    expect_refused(&after, PW_BACKUP_E_EXTRA, "after its end marker");
    free(after.p);
}

static void refuses_oversized_members(void **state)
{
    (void)state;
    /* A key larger than any key: listed so. */
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const content fat[] = {
        {PW_BACKUP_CONFIG, config_text}, {PW_BACKUP_KEY, big}, {PW_BACKUP_DB, db_text}};
    buf b = archive_of(fat, 3);
    expect_refused(&b, PW_BACKUP_E_SIZE, "facility.key with 4999 bytes");
    free(b.p);
    /* Stored larger than listed. */
    const content three[] = {
        {PW_BACKUP_CONFIG, config_text}, {PW_BACKUP_KEY, key_text}, {PW_BACKUP_DB, db_text}};
    pw_backup_manifest m;
    fill_manifest(&m, three, 3);
    buf s = {0};
    put_manifest(&s, &m);
    put_member(&s, "config.json", config_text, strlen(config_text));
    put_member(&s, "facility.key", big, 100);
    put_end(&s);
    expect_refused(&s, PW_BACKUP_E_SIZE, "facility.key holds 100 bytes but the manifest lists");
    free(s.p);
    /* A manifest beyond its bound. */
    buf h = {0};
    size_t n = PW_BACKUP_MANIFEST_MAX + 1;
    char *huge = calloc(1, n);
    memset(huge, ' ', n);
    put_member(&h, PW_BACKUP_MANIFEST, huge, n);
    put_end(&h);
    expect_refused(&h, PW_BACKUP_E_SIZE, "manifest.json has 65537 bytes");
    free(huge);
    free(h.p);
}

static void refuses_bad_manifests(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int err;
        const char *words;
    } cases[] = {
        {"[1, 2]", PW_BACKUP_E_FOREIGN, "not a JSON object"},
        {"{\"format\": \"phasewise-backup\"", PW_BACKUP_E_FOREIGN, "not a JSON object"},
        {"{\"format\": \"phasewise-backup\", \"version\": 2}", PW_BACKUP_E_VERSION,
         "newer phasewise (backup format 2"},
        {"{\"format\": \"phasewise-backup\", \"version\": 0}", PW_BACKUP_E_MANIFEST, "version"},
        {"{\"format\": \"phasewise-backup\", \"version\": 1, \"created\": \"yesterday\", "
         "\"phasewise\": \"0.1.0\", \"site\": \"T\", \"schema\": 5, \"files\": []}",
         PW_BACKUP_E_MANIFEST, "RFC 3339"},
        {"{\"format\": \"phasewise-backup\", \"version\": 1, \"created\": "
         "\"2026-12-06T10:30:00Z\", \"phasewise\": \"0.1.0\", \"site\": \"T\", \"schema\": 5, "
         "\"files\": []}",
         PW_BACKUP_E_MANIFEST, "lists no files"},
        {"{\"format\": \"phasewise-backup\", \"format\": \"phasewise-backup\"}",
         PW_BACKUP_E_FOREIGN, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buf b = {0};
        put_member(&b, PW_BACKUP_MANIFEST, cases[i].text, strlen(cases[i].text));
        put_end(&b);
        expect_refused(&b, cases[i].err, cases[i].words);
        free(b.p);
    }
    /* Config not first, a required file missing. */
    const content key_first[] = {
        {PW_BACKUP_KEY, key_text}, {PW_BACKUP_CONFIG, config_text}, {PW_BACKUP_DB, db_text}};
    buf b = archive_of(key_first, 3);
    expect_refused(&b, PW_BACKUP_E_MANIFEST, "config.json first");
    free(b.p);
    const content no_db[] = {{PW_BACKUP_CONFIG, config_text}, {PW_BACKUP_KEY, key_text}};
    b = archive_of(no_db, 2);
    expect_refused(&b, PW_BACKUP_E_MANIFEST, "does not list phasewise.db");
    free(b.p);
    /* The manifest second. */
    buf late = {0};
    pw_backup_manifest m;
    fill_manifest(&m, usual, 4);
    put_member(&late, "config.json", config_text, strlen(config_text));
    put_manifest(&late, &m);
    put_end(&late);
    expect_refused(&late, PW_BACKUP_E_MANIFEST, "does not begin with manifest.json");
    free(late.p);
}

static void header_limits(void **state)
{
    (void)state;
    uint8_t hdr[PW_BACKUP_BLOCK];
    char name[101];
    memset(name, 'n', 100);
    name[100] = '\0';
    assert_int_equal(pw_backup_header(hdr, name, 1, 0), -1);
    assert_int_equal(pw_backup_header(hdr, "", 1, 0), -1);
    assert_int_equal(pw_backup_header(hdr, "x", 077777777777ull + 1, 0), -1);
    assert_int_equal(pw_backup_header(hdr, "x", 077777777777ull, 0), 0);
    assert_int_equal(pw_backup_padding(0), 0);
    assert_int_equal(pw_backup_padding(1), 511);
    assert_int_equal(pw_backup_padding(512), 0);
    assert_int_equal(pw_backup_member_find("phasewise.db"), PW_BACKUP_DB);
    assert_int_equal(pw_backup_member_find("../phasewise.db"), -1);
    assert_int_equal(pw_backup_member_find(PW_BACKUP_MANIFEST), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_any_chunking),
        cmocka_unit_test(manifest_round_trip),
        cmocka_unit_test(refuses_foreign_files),
        cmocka_unit_test(refuses_truncation_anywhere),
        cmocka_unit_test(refuses_a_bad_header_checksum),
        cmocka_unit_test(refuses_damaged_data),
        cmocka_unit_test(refuses_names_off_the_list),
        cmocka_unit_test(refuses_duplicates),
        cmocka_unit_test(refuses_unlisted_and_out_of_order),
        cmocka_unit_test(refuses_oversized_members),
        cmocka_unit_test(refuses_bad_manifests),
        cmocka_unit_test(header_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
