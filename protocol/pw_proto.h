/* phasewise LAN protocol v1: encode and decode the authenticated binary datagrams that chargers,
 * meter gateways and the balancer exchange on the facility's multicast group. Pure: no sockets,
 * no clock. The byte layout is specified in protocol/PROTOCOL.md. */
#ifndef PW_PROTO_H
#define PW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_PROTO_VERSION        1
#define PW_PROTO_MAX_DATAGRAM   1200 /* bytes, whole datagram including header and tag */
#define PW_PROTO_KEY_LEN        32
#define PW_PROTO_DEFAULT_GROUP  "239.255.80.87" /* administratively scoped (RFC 2365) */
#define PW_PROTO_DEFAULT_PORT   48870
#define PW_PROTO_MAX_CURRENT_MA 1000000u /* 1000 A: anything above is a decoding error */
#define PW_PROTO_MIN_LIMIT_MA   6000u    /* IEC 61851: a non-zero offered limit is >= 6 A */
#define PW_PROTO_MAX_VOLTAGE_DV 10000u   /* 1000 V, the low-voltage ceiling, in 0.1 V */
#define PW_PROTO_MAX_POWER_W    1000000  /* |power| per line: 1000 A x 1000 V */
#define PW_PROTO_TEXT_LEN       24       /* model and firmware strings, NUL-terminated here */
/* Allocation entries that fit one datagram; larger plans are split over several. */
#define PW_PROTO_ALLOC_PER_DATAGRAM 128

/* Envelope: 20-byte header, payload, 16-byte truncated HMAC-SHA256 tag (PROTOCOL.md). */
#define PW_PROTO_HDR_LEN       20
#define PW_PROTO_TAG_LEN       16
#define PW_PROTO_OVERHEAD      (PW_PROTO_HDR_LEN + PW_PROTO_TAG_LEN)
#define PW_PROTO_MAX_PAYLOAD   (PW_PROTO_MAX_DATAGRAM - PW_PROTO_OVERHEAD)
#define PW_PROTO_REPLAY_WINDOW 64      /* sequences per sender accepted out of order */
#define PW_PROTO_MAX_LEASE_MS  600000u /* longer leases would defeat the failsafe */

/* Message rates every sender follows (PROTOCOL.md, "Timing"); milliseconds. */
#define PW_PROTO_STATUS_MIN_INTERVAL_MS 1000   /* on-change statuses at most this often */
#define PW_PROTO_STATUS_MAX_INTERVAL_MS 30000  /* a status at least this often */
#define PW_PROTO_ANNOUNCE_INTERVAL_MS   600000 /* and once at every start */
#define PW_PROTO_METER_INTERVAL_MS      1000
#define PW_PROTO_LEASE_MS               30000 /* lease the balancer grants by default */
#define PW_PROTO_ALLOC_RENEW_MS         10000 /* unchanged plans re-sent: lease / 3 */
#define PW_PROTO_HEARTBEAT_INTERVAL_MS  30000

/* Sender id of the balancer. Allocations and heartbeats come only from it; chargers and meter
 * gateways use any other id. */
#define PW_PROTO_BALANCER_ID 0

enum pw_proto_err {
    PW_PROTO_OK = 0,
    PW_PROTO_E_SHORT = -1,    /* shorter than header + tag, or than the payload it declares */
    PW_PROTO_E_LONG = -2,     /* longer than PW_PROTO_MAX_DATAGRAM or than it declares */
    PW_PROTO_E_MAGIC = -3,    /* not a phasewise datagram */
    PW_PROTO_E_VERSION = -4,  /* unknown protocol version: count and ignore */
    PW_PROTO_E_TYPE = -5,     /* unknown message type: count and ignore */
    PW_PROTO_E_AUTH = -6,     /* authentication tag does not match */
    PW_PROTO_E_REPLAY = -7,   /* old boot id or sequence already seen / too old */
    PW_PROTO_E_RANGE = -8,    /* out of range: current, voltage, state, text, reserved bits */
    PW_PROTO_E_SPACE = -9,    /* encode: output buffer too small or too many entries */
    PW_PROTO_E_INVALID = -10, /* encode: caller passed an invalid message */
    PW_PROTO_E_COUNT = 10
};

/* Human-readable text for an error code; static storage. */
const char *pw_proto_strerror(int err);
/* Short machine name ("auth", "replay", ...) for counters and metrics; static storage. */
const char *pw_proto_err_name(int err);

enum pw_proto_type {
    PW_MSG_ANNOUNCE = 1,   /* charger -> all: identity and capabilities */
    PW_MSG_STATUS = 2,     /* charger -> all: measurements and state */
    PW_MSG_METER = 3,      /* meter gateway -> all: per-line readings */
    PW_MSG_ALLOCATION = 4, /* balancer -> chargers: limits with a lease */
    PW_MSG_HEARTBEAT = 5,  /* balancer -> all: alive, config generation */
};

enum pw_link { PW_LINK_ETHERNET = 0, PW_LINK_WIFI = 1, PW_LINK_CELLULAR = 2 };

/* IEC 61851 control pilot states. */
enum pw_iec_state {
    PW_IEC_A = 0, /* no vehicle */
    PW_IEC_B = 1, /* vehicle connected, not charging */
    PW_IEC_C = 2, /* charging */
    PW_IEC_D = 3, /* charging with ventilation */
    PW_IEC_E = 4, /* no power (short to PE, pilot fault) */
    PW_IEC_F = 5, /* charger fault */
};

/* Envelope fields shared by every message. */
typedef struct pw_proto_hdr {
    uint8_t type;       /* enum pw_proto_type */
    uint8_t flags;      /* no flags are defined in v1: must be 0 */
    uint32_t sender_id; /* unique per device in a facility; PW_PROTO_BALANCER_ID for the
                         * balancer, which alone sends allocations and heartbeats */
    uint32_t boot_id;   /* increases at every start of the sender */
    uint32_t seq;       /* increases by one per datagram within a boot */
} pw_proto_hdr;

typedef struct pw_msg_announce {
    char model[PW_PROTO_TEXT_LEN];    /* printable ASCII, at most 23 characters */
    char firmware[PW_PROTO_TEXT_LEN]; /* printable ASCII, at most 23 characters */
    uint8_t wiring[3]; /* grid line (1..3) of terminal L1..L3, 0 = not wired; distinct, >= 1 */
    uint32_t max_current_ma; /* hardware maximum, 6 A .. 1000 A */
    uint8_t link;            /* enum pw_link */
    int8_t rssi_dbm;         /* Wi-Fi signal (<= 0), 0 when not Wi-Fi or unknown */
    bool can_switch_phases;
} pw_msg_announce;

typedef struct pw_msg_status {
    uint8_t iec_state;         /* enum pw_iec_state */
    uint32_t current_ma[3];    /* per charger terminal L1..L3, <= 1000 A */
    uint16_t voltage_dv[3];    /* per terminal, 0.1 V, <= 1000 V */
    uint64_t energy_wh;        /* lifetime energy register */
    uint32_t applied_limit_ma; /* limit offered to the car now: 0 or 6 A .. 1000 A */
    uint8_t applied_phases;    /* phase count it is using (1..3), 0 = unknown */
    uint32_t alloc_seq;        /* allocation sequence the applied limit came from, 0 = failsafe */
    uint32_t session_id;       /* 0 = no session */
} pw_msg_status;

typedef struct pw_msg_meter {
    uint32_t current_ma[3]; /* per grid line, <= 1000 A */
    uint16_t voltage_dv[3]; /* per grid line, 0.1 V, <= 1000 V */
    int32_t power_w[3];     /* negative when exporting, |power| <= 1 MW */
    uint64_t energy_wh;     /* import register */
} pw_msg_meter;

typedef struct pw_alloc_entry {
    uint32_t charger_id; /* the charger's sender_id */
    uint32_t limit_ma;   /* 0 = pause, else 6 A .. 1000 A and >= the charger's minimum */
    uint8_t phases;      /* 1 or 3 (0 = leave as is) */
} pw_alloc_entry;

typedef struct pw_msg_allocation {
    uint32_t alloc_seq; /* increases with every new plan; renewals repeat it */
    uint32_t lease_ms;  /* how long these limits hold from reception, 1 .. MAX_LEASE_MS */
    uint16_t count;     /* entries in this datagram, <= PW_PROTO_ALLOC_PER_DATAGRAM; charger
                         * ids distinct */
    pw_alloc_entry entries[PW_PROTO_ALLOC_PER_DATAGRAM];
} pw_msg_allocation;

enum pw_hb_state {
    PW_HB_BALANCING = 0,
    PW_HB_DEGRADED = 1, /* balancing conservatively: stale meter, config problem, ... */
};

typedef struct pw_msg_heartbeat {
    uint32_t uptime_s;
    uint32_t config_generation;
    uint16_t chargers_online;
    uint8_t state; /* enum pw_hb_state */
} pw_msg_heartbeat;

/* A decoded message; which member is valid follows hdr.type. */
typedef struct pw_proto_msg {
    pw_proto_hdr hdr;
    union {
        pw_msg_announce announce;
        pw_msg_status status;
        pw_msg_meter meter;
        pw_msg_allocation allocation;
        pw_msg_heartbeat heartbeat;
    } u;
} pw_proto_msg;

/* Name of a message type ("status", ...) for logs, or "unknown"; static storage. */
const char *pw_proto_type_name(int type);

/* Encodes msg, authenticated with key, into out. Returns the datagram length (> 0) or a
 * negative pw_proto_err: PW_PROTO_E_INVALID for a message the decoder would reject,
 * PW_PROTO_E_SPACE when out_size is too small or there are too many allocation entries.
 * Both buffers are borrowed for the call only. */
int pw_proto_encode(const pw_proto_msg *msg, const uint8_t key[PW_PROTO_KEY_LEN], uint8_t *out,
                    size_t out_size);

/* Checks framing and the authentication tag, then decodes. Does not check replay: see
 * pw_proto_replay_check. Returns 0 or a negative pw_proto_err; msg is only valid on 0. Framing
 * errors (short, long, magic, version) are reported before the tag is checked, everything
 * else (type, range) only for authentic datagrams. Never reads outside buf[0..len). */
int pw_proto_decode(const uint8_t *buf, size_t len, const uint8_t key[PW_PROTO_KEY_LEN],
                    pw_proto_msg *msg);

/* Replay state kept by a receiver for one sender. Zero-initialise before first use. */
typedef struct pw_proto_replay {
    bool seen;
    uint32_t boot_id;
    uint32_t top_seq; /* highest sequence accepted in this boot */
    uint64_t window;  /* bit i set: top_seq - i was accepted */
} pw_proto_replay;

/* Accepts (0, state updated) or rejects (PW_PROTO_E_REPLAY, state unchanged) a decoded header
 * from the sender whose state this is. A higher boot id than seen before starts a new window; a
 * lower one is rejected; within a boot a sequence is accepted once if it is newer than the
 * highest seen or at most PW_PROTO_REPLAY_WINDOW - 1 behind it. Call only after
 * pw_proto_decode returned 0, so that forged headers never move the window. */
int pw_proto_replay_check(pw_proto_replay *state, const pw_proto_hdr *hdr);

/* A sender's link as a receiver sees it: replay state plus loss counted from sequence gaps. */
typedef struct pw_proto_link {
    uint64_t last_seen_ms; /* monotonic; 0 = never */
    uint32_t boot_id;
    uint32_t last_seq;
    uint64_t received; /* datagrams accepted since the current boot started */
    uint64_t expected; /* sequence span seen in this boot: received + lost */
    uint32_t reboots;  /* boot id changes seen */
    pw_proto_replay replay;
} pw_proto_link;

/* Replay-checks hdr against the sender's link and, if accepted, records it as seen at now_ms.
 * Returns 0 or PW_PROTO_E_REPLAY (link unchanged). */
int pw_proto_link_accept(pw_proto_link *link, const pw_proto_hdr *hdr, uint64_t now_ms);

/* Loss in percent over the current boot, from sequence gaps. */
double pw_proto_link_loss_pct(const pw_proto_link *link);

/* The wire carries milliamperes; everything past the codec speaks amperes. */
static inline double pw_proto_amps(uint32_t ma)
{
    return ma / 1000.0;
}

/* Amperes to the wire, rounded; negative or non-finite values become 0, values above
 * PW_PROTO_MAX_CURRENT_MA are capped to it. */
uint32_t pw_proto_milliamps(double a);

/* A DEFA Balancer meter frame: 54 bytes, unauthenticated, L1..L3 currents in mA. */
typedef struct pw_defa_frame {
    char serial[12];        /* printable ASCII, NUL-terminated, 1..11 characters */
    char firmware[6];       /* printable ASCII, NUL-terminated, 0..5 characters */
    uint32_t current_ma[3]; /* L1 <= 65535 mA (16-bit field), L2 and L3 <= 1000 A */
} pw_defa_frame;

#define PW_DEFA_FRAME_LEN     54
#define PW_DEFA_DEFAULT_GROUP "234.222.250.1"
#define PW_DEFA_DEFAULT_PORT  57082

/* Reads a 54-byte DEFA Balancer meter frame into out. Returns 0, PW_PROTO_E_SHORT or
 * PW_PROTO_E_LONG for a wrong length, PW_PROTO_E_RANGE for a serial or firmware that is not
 * NUL-padded printable ASCII or a current above 1000 A. Never reads outside buf[0..len). */
int pw_defa_decode(const uint8_t *buf, size_t len, pw_defa_frame *out);
/* Builds a frame from frame's fields; bytes of unknown meaning are zero. Returns
 * PW_DEFA_FRAME_LEN, or PW_PROTO_E_INVALID when a field does not fit the layout (notably L1
 * above 65535 mA: the caller must then not send rather than under-report the load). */
int pw_defa_encode(const pw_defa_frame *frame, uint8_t out[PW_DEFA_FRAME_LEN]);

#endif
