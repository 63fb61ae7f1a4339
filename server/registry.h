/* What the appliance knows of every device on the LAN: configured chargers and meters with their
 * latest reports, link health and replay state, and devices that speak the protocol but are not
 * in the configuration ("unassigned"). No I/O: the server feeds it decoded, authenticated
 * messages with the monotonic time. */
#ifndef PW_REGISTRY_H
#define PW_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "pw_cfg.h"
#include "pw_proto.h"

#define PW_REG_MAX_UNASSIGNED 64

typedef struct pw_reg_link {
    uint64_t last_seen_ms; /* monotonic; 0 = never */
    uint32_t boot_id;
    uint32_t last_seq;
    uint64_t received; /* datagrams accepted since the current boot started */
    uint64_t expected; /* sequence span seen in this boot: received + lost */
    uint32_t reboots;  /* boot id changes seen */
    pw_proto_replay replay;
} pw_reg_link;

typedef struct pw_reg_charger {
    pw_reg_link link;
    bool announced;
    pw_msg_announce announce;
    bool has_status;
    pw_msg_status status;
    bool drew_this_session; /* a later pilot state B means the car paused itself */
    /* The charging session as it goes to history: from plug-in (pilot leaves A) to unplug. */
    bool in_session;
    int64_t session_start_ms; /* Unix ms */
    uint64_t register_start_wh;
    float session_peak_a;
    uint64_t session_saved_ms; /* monotonic time the session row was last written */
} pw_reg_charger;

typedef struct pw_reg_meter {
    pw_reg_link link;
    bool has_reading;
    uint32_t current_ma[3];
} pw_reg_meter;

typedef struct pw_reg_unassigned {
    uint32_t device_id;
    pw_reg_link link;
    uint8_t last_type;
    char model[PW_PROTO_TEXT_LEN];
} pw_reg_unassigned;

/* A device id and the index of its charger or node, in a table sorted by device id. */
typedef struct pw_reg_index {
    uint32_t device_id;
    uint32_t index;
} pw_reg_index;

typedef struct pw_registry {
    pw_reg_charger *chargers; /* parallel to cfg->chargers */
    size_t n_chargers;
    pw_reg_meter *meters; /* parallel to cfg->nodes; used where a meter is configured */
    size_t n_nodes;
    pw_reg_unassigned unassigned[PW_REG_MAX_UNASSIGNED];
    size_t n_unassigned;
    /* Every datagram is looked up by its sender: binary search, not a walk over a thousand
     * chargers. */
    pw_reg_index *charger_index; /* n_chargers entries */
    pw_reg_index *meter_index;   /* n_meter_index entries: nodes with a phasewise meter */
    size_t n_meter_index;
} pw_registry;

/* Sizes the registry for cfg. Close with pw_registry_close. */
void pw_registry_init(pw_registry *r, const pw_cfg *cfg);
void pw_registry_close(pw_registry *r);

/* The index of the configured charger with this device id, or -1. */
int pw_registry_charger(const pw_registry *r, uint32_t device_id);

/* The node whose phasewise meter gateway has this device id, or -1. */
int pw_registry_meter_node(const pw_registry *r, uint32_t device_id);

/* Carries the state of devices that stay in the configuration over to a registry built for a
 * new configuration (matched by device id), so a config change does not forget live data. */
void pw_registry_carry_over(pw_registry *to, const pw_cfg *to_cfg, const pw_registry *from,
                            const pw_cfg *from_cfg);

/* Replay-checks hdr against the sender's link state and, if accepted, records it as seen at
 * now_ms. Returns 0 or PW_PROTO_E_REPLAY. */
int pw_reg_link_accept(pw_reg_link *link, const pw_proto_hdr *hdr, uint64_t now_ms);

/* Loss in percent over the current boot, from sequence gaps. */
double pw_reg_link_loss_pct(const pw_reg_link *link);

/* The unassigned entry for device_id, created if there is room (the oldest is replaced when the
 * table is full). Never NULL. */
pw_reg_unassigned *pw_reg_unassigned_get(pw_registry *r, uint32_t device_id);

#endif
