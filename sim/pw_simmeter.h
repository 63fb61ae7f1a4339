/* The simulator's meters as real meters show them: the register image a Modbus TCP meter serves
 * (SDM630, EM340 or SunSpec), the answer to one Modbus request, and the MQTT messages a meter feed
 * publishes (AMS reader JSON, a JSON document with a path per line, or one number per topic).
 * Pure: values in, registers and bytes out; no sockets, no clock. */
#ifndef PW_SIMMETER_H
#define PW_SIMMETER_H

#include <stddef.h>
#include <stdint.h>

#include "pw_cfg.h"
#include "pw_modbus_map.h"

#define PW_SIM_REGIMG_MAX      512 /* registers one image holds */
#define PW_SIM_REGIMG_BLOCKS   PW_MODBUS_MAP_READS
#define PW_SIM_SUNSPEC_BASE    40000 /* where "SunS" starts */
#define PW_SIM_SUNSPEC_REGS    198   /* "SunS", model 1, model 213, end marker */
#define PW_SIM_MODBUS_GW_FAIL  0x0b  /* exception: gateway target device failed to respond */
#define PW_SIM_MODBUS_BAD_ADDR 0x02  /* exception: illegal data address */

/* Which layout an image has. */
enum pw_sim_regimg_kind {
    PW_SIM_REGIMG_MAP = 0, /* a built-in pw_modbus_map: the blocks its reads plan */
    PW_SIM_REGIMG_SUNSPEC, /* SunSpec: common model 1 and float meter model 213 at 40000 */
};

/* The registers one simulated meter serves: a few blocks of (function, first register, count),
 * every register in them readable, everything else an illegal data address. Caller-allocated,
 * nothing to free. */
typedef struct pw_sim_regimg {
    enum pw_sim_regimg_kind kind;
    pw_modbus_map map; /* where the values go (for SunSpec: the model 213 points) */
    size_t n_blocks;
    struct {
        uint8_t function;
        uint16_t address, count;
        uint16_t offset; /* into regs */
    } blocks[PW_SIM_REGIMG_BLOCKS];
    uint16_t regs[PW_SIM_REGIMG_MAX];
} pw_sim_regimg;

/* Lays out the image of a meter served under map_name ("sdm630", "em340" or "sunspec") with the
 * given serial number (SunSpec also shows unit in its common model). Every register starts at 0,
 * SunSpec's unimplemented points at their "not implemented" value. Returns 0, or -1 if the
 * simulator does not serve that map. */
int pw_sim_regimg_init(pw_sim_regimg *img, const char *map_name, uint8_t unit, uint32_t serial);

/* Writes a reading into the image: per-line currents (A), import energy (Wh) and, for SunSpec,
 * the voltages, powers and frequency of a 230 V / 50 Hz grid that go with them. */
void pw_sim_regimg_set(pw_sim_regimg *img, const double amps[3], double energy_wh);

/* Copies count registers from address of function fn into out. Returns 0, or
 * PW_SIM_MODBUS_BAD_ADDR if any of them is not in the image. */
uint8_t pw_sim_regimg_read(const pw_sim_regimg *img, uint8_t fn, uint16_t address, uint16_t count,
                           uint16_t *out);

/* Answers one request that pw_modbus_parse_request returned with parse_err (0, E_FUNCTION or
 * E_COUNT) from img, the image of req->unit (NULL when no meter has that unit id: exception 11).
 * Returns the answer's length in out, or PW_MODBUS_E_ARG if out is too small. */
int pw_sim_modbus_answer(const pw_modbus_request *req, int parse_err, const pw_sim_regimg *img,
                         uint8_t *out, size_t out_size);

#define PW_SIM_MQTT_PAYLOAD 512

/* One MQTT message of a meter feed. */
typedef struct pw_sim_mqtt_msg {
    char topic[PW_CFG_TOPIC_LEN];
    char payload[PW_SIM_MQTT_PAYLOAD];
} pw_sim_mqtt_msg;

/* The messages one reading of a meter on an MQTT link is published as, by opts->preset: "ams"
 * and "json" one JSON document on link->topic, "plain" one number per line topic. Returns how
 * many (0..3) were written to out, or -1 for an unknown preset or a payload that does not fit. */
int pw_sim_mqtt_messages(const pw_cfg_link *link, const pw_cfg_meter_opts *opts,
                         const double amps[3], double energy_wh, pw_sim_mqtt_msg out[3]);

#endif
