/* Sample messages and their encodings for PROTOCOL.md's test vectors; see proto_vectors.h. */
#include "proto_vectors.h"

#include <string.h>

const uint8_t pw_test_key[PW_PROTO_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

const struct pw_test_vector pw_test_vectors[] = {
    {"announce",
     {.hdr = {.type = PW_MSG_ANNOUNCE, .sender_id = 1001, .boot_id = 7, .seq = 1},
      .u.announce = {.model = "PW-Sim 22",
                     .firmware = "1.4.2",
                     .wiring = {2, 3, 1},
                     .max_current_ma = 32000,
                     .link = PW_LINK_WIFI,
                     .rssi_dbm = -67,
                     .can_switch_phases = true}},
     "505701010000003a000003e9000000070000000150572d53696d203232000000"
     "000000000000000000000000312e342e32000000000000000000000000000000"
     "0000000002030100007d0001bd01a3db478b087aaca65b893788037076ab"},
    {"status",
     {.hdr = {.type = PW_MSG_STATUS, .sender_id = 1001, .boot_id = 7, .seq = 2},
      .u.status = {.iec_state = PW_IEC_C,
                   .current_ma = {15900, 15800, 16000},
                   .voltage_dv = {2301, 2298, 2305},
                   .energy_wh = 1234567,
                   .applied_limit_ma = 16000,
                   .applied_phases = 3,
                   .alloc_seq = 42,
                   .session_id = 17}},
     "5057010200000028000003e90000000700000002020300003e1c00003db80000"
     "3e8008fd08fa0901000000000012d68700003e800000002a000000117cc38a3b"
     "3a04e52efd41c6fd958788fc"},
    {"meter",
     {.hdr = {.type = PW_MSG_METER, .sender_id = 9001, .boot_id = 1700000000, .seq = 86400},
      .u.meter = {.current_ma = {41200, 38000, 40100},
                  .voltage_dv = {2312, 2307, 2299},
                  .power_w = {9400, 8650, -1200},
                  .energy_wh = 987654321}},
     "5057010300000026000023296553f100000151800000a0f00000947000009ca4"
     "0908090308fb000024b8000021cafffffb50000000003ade68b1be439bd070b0"
     "f674c417b03d7815f27f"},
    {"allocation",
     {.hdr =
          {.type = PW_MSG_ALLOCATION, .sender_id = PW_PROTO_BALANCER_ID, .boot_id = 3, .seq = 100},
      .u.allocation = {.alloc_seq = 42,
                       .lease_ms = 30000,
                       .count = 3,
                       .entries = {{1001, 16000, 3}, {1002, 0, 0}, {1003, 10000, 1}}}},
     "50570104000000250000000000000003000000640000002a0000753000030000"
     "03e900003e8003000003ea0000000000000003eb00002710011b035948be4890"
     "ccc57297af65ff225f"},
    {"heartbeat",
     {.hdr =
          {.type = PW_MSG_HEARTBEAT, .sender_id = PW_PROTO_BALANCER_ID, .boot_id = 3, .seq = 101},
      .u.heartbeat = {.uptime_s = 3600,
                      .config_generation = 5,
                      .chargers_online = 12,
                      .state = PW_HB_BALANCING}},
     "505701050000000b00000000000000030000006500000e1000000005000c00a9"
     "98d306082fc2622667c38f99140130"},
};

const size_t pw_test_vector_count = sizeof pw_test_vectors / sizeof pw_test_vectors[0];

const pw_defa_frame pw_test_defa_frame = {
    .serial = "DB123456789", .firmware = "2.1.0", .current_ma = {12345, 67890, 1000000}};

const char pw_test_defa_hex[] = "444231323334353637383900000000000000000039300032090140420f000000"
                                "00322e312e3000000000000000000000000000000000";

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pw_test_unhex(const char *hex, uint8_t *out, size_t out_size)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > out_size)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

void pw_test_hex(const uint8_t *buf, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[buf[i] >> 4];
        out[2 * i + 1] = digits[buf[i] & 15];
    }
    out[2 * len] = '\0';
}
