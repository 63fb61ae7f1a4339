/* Meter register maps as data: where a meter model keeps its per-line currents, its serial
 * number and its energy register, how the values are typed and scaled, and which reads fetch
 * them. SunSpec meters are found by discovery (a small pure state machine) instead of a fixed
 * table. Pure: registers in, amperes out; and the reverse for the simulator's meters. */
#ifndef PW_MODBUS_MAP_H
#define PW_MODBUS_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_modbus.h"

#define PW_MODBUS_MAP_READS 4 /* register blocks one reading may need */

enum pw_modbus_type {
    PW_MODBUS_U16 = 0,
    PW_MODBUS_S16,
    PW_MODBUS_U32,
    PW_MODBUS_S32,
    PW_MODBUS_F32,
    PW_MODBUS_U64, /* SunSpec energy accumulators (acc64) */
};

/* One value in a device's register space. */
typedef struct pw_modbus_field {
    bool present;
    uint8_t function;         /* 3 or 4 */
    uint16_t address;         /* 0-based register address on the wire */
    enum pw_modbus_type type;
    bool low_word_first;      /* 32/64-bit values with the least significant word first */
    double scale;             /* raw x scale = amperes (or Wh for energy) */
    bool has_sf;              /* SunSpec: scale also x 10^(int16 at sf_address) */
    uint16_t sf_address;
} pw_modbus_field;

typedef struct pw_modbus_map {
    char name[16];    /* config name: "sdm630", ... */
    char title[48];   /* for people: "Eastron SDM630 (v2)" */
    pw_modbus_field current[3]; /* grid lines L1..L3; a missing one is not read */
    pw_modbus_field serial;     /* the meter's serial number, to notice a swapped meter */
    pw_modbus_field energy_wh;  /* total import energy */
} pw_modbus_map;

/* The built-in map of that config name, or NULL. Static storage. */
const pw_modbus_map *pw_modbus_map_find(const char *name);
/* Every built-in map in order (for the UI and docs); n set to the count. */
const pw_modbus_map *pw_modbus_map_all(size_t *n);

/* The reads a map needs, as few contiguous blocks as the registers allow (each at most
 * PW_MODBUS_MAX_REGS); unit and tid are left 0 for the caller. Returns how many (<= max). */
size_t pw_modbus_map_plan(const pw_modbus_map *m, pw_modbus_request *reqs, size_t max);

typedef struct pw_modbus_reading {
    double line_a[3];
    bool has_line[3];
    bool has_serial;
    uint32_t serial;
    bool has_energy;
    uint64_t energy_wh;
} pw_modbus_reading;

/* Decodes a reading from the answers to the planned reads (n of each, in plan order). A value
 * that is NaN, infinite or negative is still returned as read: deciding what is plausible is
 * the core's job. Returns 0, or PW_MODBUS_E_COUNT when an answer does not cover its fields. */
int pw_modbus_map_decode(const pw_modbus_map *m, const pw_modbus_request *reqs,
                         const pw_modbus_answer *answers, size_t n, pw_modbus_reading *out);

/* Simulator side: writes the registers of r that fall into [address, address + count) of
 * function fn into regs (others untouched). */
void pw_modbus_map_encode(const pw_modbus_map *m, const pw_modbus_reading *r, uint8_t fn,
                          uint16_t address, uint16_t count, uint16_t *regs);

/* SunSpec discovery: "SunS" at 40000, then 0, then 50000; walk the models to the first meter
 * model (201-204 integer with scale factors, 211-214 float) and build its map. */
typedef struct pw_modbus_sunspec {
    int state;        /* internal */
    int base_try;     /* internal */
    uint16_t base;    /* where "SunS" was found */
    uint16_t next;    /* the model header to read next */
    uint16_t model;   /* the meter model found */
    pw_modbus_map map;
    char error[128];  /* why discovery failed, for people */
} pw_modbus_sunspec;

void pw_modbus_sunspec_init(pw_modbus_sunspec *s);
/* The next read discovery needs. Returns 1 with req filled, 0 when done (s->map is ready), or
 * -1 when it failed (s->error says why). */
int pw_modbus_sunspec_next(pw_modbus_sunspec *s, pw_modbus_request *req);
/* The answer (or the parse error / exception) to the read next() asked for. */
void pw_modbus_sunspec_feed(pw_modbus_sunspec *s, int err, const pw_modbus_answer *a);

#endif
