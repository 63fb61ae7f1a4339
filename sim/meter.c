/* The simulator's meters as real meters show them (pw_simmeter.h): Modbus register images and
 * MQTT feed messages. */
#include "pw_simmeter.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_modbus.h"
#include "pw_simmodel.h"
#include "pw_util.h"

/* ---- SunSpec --------------------------------------------------------------------------------- */

/* The SunSpec layout the simulator serves, after the SunSpec Information Model Specification and
 * its model definitions (smdx_00001, smdx_00213): the marker "SunS" at 40000, then each model as
 * its id, its length L and L registers, then the end marker (id 0xFFFF, length 0):
 *   40000  "SunS"
 *   40002  model 1 (common), L = 66: Mn 16, Md 16, Opt 8, Vr 8, SN 16 registers of text, DA, Pad
 *   40070  model 213 (three-phase wye meter, float32), L = 124
 *   40196  end marker
 * Model 213's points are float32, high word first; NaN means "not implemented". */
#define SS_COMMON       2u /* offsets from 40000 */
#define SS_COMMON_LEN   66u
#define SS_METER        (SS_COMMON + 2u + SS_COMMON_LEN) /* 70: model 213's id */
#define SS_METER_LEN    124u
#define SS_DATA         (SS_METER + 2u) /* 72: its first point */
#define SS_END          (SS_DATA + SS_METER_LEN)
#define SS_MODEL_METER  213u
#define SS_NOT_IMPL_F32 0x7fc00000u

/* Model 213 point offsets from SS_DATA (two registers each). */
enum {
    M213_A = 0,   /* total current, then AphA, AphB, AphC (through the map) */
    M213_PHV = 8, /* line-to-neutral voltage average, then per phase */
    M213_PHVPH = 10,
    M213_PPV = 16, /* line-to-line voltage average, then AB, BC, CA */
    M213_PPVPH = 18,
    M213_HZ = 24,
    M213_W = 26, /* total real power, then per phase */
    M213_WPH = 28,
    M213_TOTWHEXP = 58, /* then TotWhImp at 66 (through the map) */
    M213_EVT = 122,     /* uint32 event bits */
};

_Static_assert(SS_END + 2u == PW_SIM_SUNSPEC_REGS, "SunSpec layout size");

static void put_text(uint16_t *regs, size_t n_regs, const char *text)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < n_regs; i++) {
        uint8_t hi = 2 * i < len ? (uint8_t)text[2 * i] : 0;
        uint8_t lo = 2 * i + 1 < len ? (uint8_t)text[2 * i + 1] : 0;
        regs[i] = (uint16_t)(hi << 8 | lo);
    }
}

static void put_u32(uint16_t *regs, uint32_t v)
{
    regs[0] = (uint16_t)(v >> 16);
    regs[1] = (uint16_t)v;
}

static void put_f32(uint16_t *regs, double v)
{
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    put_u32(regs, bits);
}

static void sunspec_init(pw_sim_regimg *img, uint8_t unit, uint32_t serial)
{
    uint16_t *r = img->regs;
    char sn[24];
    /* The currents and the energy (in Wh) where modbus/ reads them in model 213. */
    pw_modbus_map_sunspec(SS_MODEL_METER, PW_SIM_SUNSPEC_BASE + SS_METER, &img->map);
    img->n_blocks = 1;
    img->blocks[0].function = PW_MODBUS_FN_HOLDING;
    img->blocks[0].address = PW_SIM_SUNSPEC_BASE;
    img->blocks[0].count = PW_SIM_SUNSPEC_REGS;
    img->blocks[0].offset = 0;

    put_text(r, 2, "SunS");
    r[SS_COMMON] = 1;
    r[SS_COMMON + 1] = SS_COMMON_LEN;
    uint16_t *c = r + SS_COMMON + 2;
    put_text(c, 16, "phasewise");                        /* Mn */
    put_text(c + 16, 16, "phasewise-sim SunSpec meter"); /* Md */
    put_text(c + 32, 8, "");                             /* Opt */
    put_text(c + 40, 8, PW_VERSION);                     /* Vr */
    snprintf(sn, sizeof(sn), "%u", serial);
    put_text(c + 48, 16, sn); /* SN */
    c[64] = unit;             /* DA */
    c[65] = 0x8000;           /* Pad: "not implemented" */
    r[SS_METER] = SS_MODEL_METER;
    r[SS_METER + 1] = SS_METER_LEN;
    for (unsigned p = 0; p + 1 < SS_METER_LEN; p += 2)
        put_u32(r + SS_DATA + p, SS_NOT_IMPL_F32);
    put_u32(r + SS_DATA + M213_EVT, 0);
    put_f32(r + SS_DATA + M213_TOTWHEXP, 0.0);
    r[SS_END] = 0xffff;
    r[SS_END + 1] = 0;
}

/* The points a meter computes from its currents on a 230 V / 50 Hz wye grid; the currents and
 * the energy themselves go through pw_modbus_map_encode. */
static void sunspec_set_extras(pw_sim_regimg *img, const double amps[3])
{
    uint16_t *d = img->regs + SS_DATA;
    double total = amps[0] + amps[1] + amps[2];
    put_f32(d + M213_A, total);
    put_f32(d + M213_PHV, PW_SIM_VOLTAGE_V);
    put_f32(d + M213_PPV, PW_SIM_VOLTAGE_V * sqrt(3.0));
    put_f32(d + M213_HZ, 50.0);
    put_f32(d + M213_W, total * PW_SIM_VOLTAGE_V);
    for (int l = 0; l < 3; l++) {
        put_f32(d + M213_PHVPH + 2 * l, PW_SIM_VOLTAGE_V);
        put_f32(d + M213_PPVPH + 2 * l, PW_SIM_VOLTAGE_V * sqrt(3.0));
        put_f32(d + M213_WPH + 2 * l, amps[l] * PW_SIM_VOLTAGE_V);
    }
}

/* ---- register images ------------------------------------------------------------------------- */

int pw_sim_regimg_init(pw_sim_regimg *img, const char *map_name, uint8_t unit, uint32_t serial)
{
    memset(img, 0, sizeof(*img));
    if (strcmp(map_name, "sunspec") == 0) {
        img->kind = PW_SIM_REGIMG_SUNSPEC;
        sunspec_init(img, unit, serial);
        return 0;
    }
    const pw_modbus_map *m = NULL;
    if (strcmp(map_name, "sdm630") == 0 || strcmp(map_name, "em340") == 0)
        m = pw_modbus_map_find(map_name);
    if (!m)
        return -1;
    img->kind = PW_SIM_REGIMG_MAP;
    img->map = *m;
    pw_modbus_request reqs[PW_SIM_REGIMG_BLOCKS];
    size_t n = pw_modbus_map_plan(m, reqs, PW_SIM_REGIMG_BLOCKS);
    if (n == 0)
        return -1;
    uint16_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        if (offset + reqs[i].count > PW_SIM_REGIMG_MAX)
            return -1;
        img->blocks[i].function = reqs[i].function;
        img->blocks[i].address = reqs[i].address;
        img->blocks[i].count = reqs[i].count;
        img->blocks[i].offset = offset;
        offset = (uint16_t)(offset + reqs[i].count);
    }
    img->n_blocks = n;
    pw_modbus_reading r = {.has_serial = true, .serial = serial, .has_energy = true};
    for (size_t i = 0; i < n; i++)
        pw_modbus_map_encode(&img->map, &r, img->blocks[i].function, img->blocks[i].address,
                             img->blocks[i].count, img->regs + img->blocks[i].offset);
    return 0;
}

void pw_sim_regimg_set(pw_sim_regimg *img, const double amps[3], double energy_wh)
{
    pw_modbus_reading r = {.has_energy = true,
                           .energy_wh = energy_wh > 0.0 ? (uint64_t)energy_wh : 0};
    for (int l = 0; l < 3; l++) {
        r.line_a[l] = amps[l];
        r.has_line[l] = img->map.current[l].present;
    }
    /* The serial number was written at init and stays: has_serial is false here. */
    for (size_t i = 0; i < img->n_blocks; i++)
        pw_modbus_map_encode(&img->map, &r, img->blocks[i].function, img->blocks[i].address,
                             img->blocks[i].count, img->regs + img->blocks[i].offset);
    if (img->kind == PW_SIM_REGIMG_SUNSPEC)
        sunspec_set_extras(img, amps);
}

/* The register at address of function fn, or NULL if the image has none there. */
static const uint16_t *reg_at(const pw_sim_regimg *img, uint8_t fn, uint32_t address)
{
    for (size_t i = 0; i < img->n_blocks; i++) {
        uint32_t start = img->blocks[i].address;
        if (img->blocks[i].function == fn && address >= start &&
            address < start + img->blocks[i].count)
            return &img->regs[img->blocks[i].offset + (address - start)];
    }
    return NULL;
}

uint8_t pw_sim_regimg_read(const pw_sim_regimg *img, uint8_t fn, uint16_t address, uint16_t count,
                           uint16_t *out)
{
    for (uint32_t k = 0; k < count; k++) {
        const uint16_t *r = reg_at(img, fn, (uint32_t)address + k);
        if (!r)
            return PW_SIM_MODBUS_BAD_ADDR;
        out[k] = *r;
    }
    return 0;
}

int pw_sim_modbus_answer(const pw_modbus_request *req, int parse_err, const pw_sim_regimg *img,
                         uint8_t *out, size_t out_size)
{
    uint16_t regs[PW_MODBUS_MAX_REGS];
    uint8_t exception = 0;
    if (parse_err == PW_MODBUS_E_FUNCTION)
        exception = 0x01; /* illegal function */
    else if (parse_err != 0)
        exception = 0x03; /* illegal data value: a count of 0 or above 125 */
    else if (!img)
        exception = PW_SIM_MODBUS_GW_FAIL;
    else if (img->map.max_regs && req->count > img->map.max_regs)
        exception = 0x03; /* more than the meter answers in one read */
    else
        exception = pw_sim_regimg_read(img, req->function, req->address, req->count, regs);
    return pw_modbus_encode_answer(req, regs, exception, out, out_size);
}

/* ---- MQTT ------------------------------------------------------------------------------------ */

static double milli(double v)
{
    return round(v * 1000.0) / 1000.0;
}

/* Sets the number v at a dotted path ("meter.l1.current") in root, creating the objects on the
 * way. Returns 0, or -1 if a part of the path is already a value. */
static int set_path(json_t *root, const char *path, double v)
{
    char buf[PW_CFG_PATH_LEN];
    pw_strlcpy(buf, path, sizeof(buf));
    json_t *obj = root;
    char *part = buf;
    for (char *dot; (dot = strchr(part, '.')); part = dot + 1) {
        *dot = '\0';
        json_t *next = json_object_get(obj, part);
        if (!next) {
            next = json_object();
            json_object_set_new(obj, part, next);
        }
        if (!json_is_object(next))
            return -1;
        obj = next;
    }
    return json_object_set_new(obj, part, json_real(milli(v)));
}

/* The AMS reader's JSON (UtilitechAS/amsreader-firmware, lib/JsonMqttHandler/json/json2.json,
 * as config.c reads it): inside "data", I1..I3 in A, U1..U3 in V, P active import power in W
 * and tPI total active import energy in kWh. */
static void ams_document(json_t *root, const double amps[3], double energy_wh)
{
    static const char *const current[3] = {"I1", "I2", "I3"};
    static const char *const voltage[3] = {"U1", "U2", "U3"};
    json_t *data = json_object();
    double watts = 0.0;
    for (int l = 0; l < 3; l++) {
        json_object_set_new(data, current[l], json_real(milli(amps[l])));
        json_object_set_new(data, voltage[l], json_real(PW_SIM_VOLTAGE_V));
        watts += amps[l] * PW_SIM_VOLTAGE_V;
    }
    json_object_set_new(data, "P", json_integer((json_int_t)lround(watts)));
    json_object_set_new(data, "tPI", json_real(milli(energy_wh / 1000.0)));
    json_object_set_new(root, "data", data);
}

static int put_json(pw_sim_mqtt_msg *msg, const char *topic, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10));
    int rc = -1;
    if (text && strlen(text) < sizeof(msg->payload) && strlen(topic) < sizeof(msg->topic)) {
        snprintf(msg->topic, sizeof(msg->topic), "%s", topic);
        snprintf(msg->payload, sizeof(msg->payload), "%s", text);
        rc = 1;
    }
    free(text);
    return rc;
}

int pw_sim_mqtt_messages(const pw_cfg_link *link, const pw_cfg_meter_opts *opts,
                         const double amps[3], double energy_wh, pw_sim_mqtt_msg out[3])
{
    if (strcmp(opts->preset, "plain") == 0) {
        int n = 0;
        for (int l = 0; l < 3; l++) {
            if (!opts->topics[l][0]) /* a line the feed does not report */
                continue;
            pw_strlcpy(out[n].topic, opts->topics[l], sizeof(out[n].topic));
            snprintf(out[n].payload, sizeof(out[n].payload), "%.3f", amps[l]);
            n++;
        }
        return n;
    }
    json_t *root = json_object();
    int rc = 0;
    if (strcmp(opts->preset, "ams") == 0) {
        ams_document(root, amps, energy_wh);
    } else if (strcmp(opts->preset, "json") == 0) {
        for (int l = 0; l < 3 && rc == 0; l++) {
            if (opts->paths[l][0])
                rc = set_path(root, opts->paths[l], amps[l]);
        }
    } else {
        rc = -1;
    }
    if (rc == 0)
        rc = put_json(&out[0], link->topic, root);
    json_decref(root);
    return rc;
}
