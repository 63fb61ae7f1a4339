/* libFuzzer target: pw_keyfile_from_hex, the parser of the pairing text an installer types. A
 * text that parses must give the key that pw_keyfile_to_hex prints back. */
#include "pw_keyfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];
    if (size >= sizeof text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    uint8_t key[PW_KEYFILE_KEY_LEN], back[PW_KEYFILE_KEY_LEN];
    if (pw_keyfile_from_hex(text, key) != 0)
        return 0;
    char hex[PW_KEYFILE_HEX_LEN + 1];
    pw_keyfile_to_hex(key, hex);
    if (pw_keyfile_from_hex(hex, back) != 0 || memcmp(key, back, sizeof key) != 0)
        abort();
    return 0;
}
