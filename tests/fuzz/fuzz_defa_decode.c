/* libFuzzer target: pw_defa_decode on arbitrary bytes. A frame that decodes must encode again
 * (every decoded value fits the layout) and decode to the same fields. */
#include "pw_proto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_defa_frame f, back;
    if (pw_defa_decode(data, size, &f) != 0)
        return 0;
    uint8_t out[PW_DEFA_FRAME_LEN];
    if (pw_defa_encode(&f, out) != PW_DEFA_FRAME_LEN || pw_defa_decode(out, sizeof out, &back))
        abort();
    if (strcmp(f.serial, back.serial) || strcmp(f.firmware, back.firmware) ||
        memcmp(f.current_ma, back.current_ma, sizeof f.current_ma))
        abort();
    return 0;
}
