/* Writes seed archives for fuzz_backup into a folder: a raw archive as the writer makes it (the
 * reader's happy path, for the fuzzer to mutate) and the same contents in the target's 'W' form.
 * usage: fuzz_backup_seed DIR */
#include "backup_tar.h"

#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char config[] = "{\"site_name\": \"Seed\"}\n";
static const char key[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
static const char db[] = "SQLite format 3";

static void put(FILE *f, const char *name, const void *data, size_t len)
{
    uint8_t hdr[PW_BACKUP_BLOCK];
    static const uint8_t zeros[PW_BACKUP_BLOCK];
    pw_backup_header(hdr, name, len, 1765000000);
    fwrite(hdr, 1, sizeof hdr, f);
    fwrite(data, 1, len, f);
    fwrite(zeros, 1, pw_backup_padding(len), f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_backup_seed DIR\n");
        return 2;
    }
    const struct {
        int member;
        const char *text;
    } parts[] = {{PW_BACKUP_CONFIG, config}, {PW_BACKUP_KEY, key}, {PW_BACKUP_DB, db}};
    pw_backup_manifest m;
    memset(&m, 0, sizeof m);
    m.version = PW_BACKUP_VERSION;
    strcpy(m.created, "2026-12-06T10:30:00Z");
    strcpy(m.phasewise, "0.1.0");
    strcpy(m.site, "Seed");
    m.schema = 5;
    m.n_files = 3;
    for (size_t i = 0; i < 3; i++) {
        m.files[i].member = parts[i].member;
        m.files[i].size = strlen(parts[i].text);
        mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)parts[i].text,
                   strlen(parts[i].text), m.files[i].sha256);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/backup.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    fputc('R', f);
    fputc(13, f); /* chunks of 482 bytes */
    size_t mlen;
    char *text = pw_backup_manifest_dump(&m, &mlen);
    put(f, PW_BACKUP_MANIFEST, text, mlen);
    for (size_t i = 0; i < 3; i++)
        put(f, pw_backup_member(parts[i].member)->name, parts[i].text, strlen(parts[i].text));
    static const uint8_t end[PW_BACKUP_END_LEN];
    fwrite(end, 1, sizeof end, f);
    free(text);
    if (fclose(f) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/backup-write.bin", argv[1]);
    f = fopen(path, "wb");
    if (!f)
        return 1;
    fputs("W\001", f);
    fputs(config, f);
    fputs(key, f);
    fputs(db, f);
    return fclose(f) != 0;
}
