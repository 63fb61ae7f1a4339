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
    PW_MODBUS_U64,   /* SunSpec energy accumulators (acc64) */
    PW_MODBUS_ASCII, /* text, two characters per register, high byte first (serial numbers);
                        .words registers long */
};

/* One value in a device's register space. */
typedef struct pw_modbus_field {
    bool present;
    uint8_t function; /* 3 or 4 */
    uint16_t address; /* 0-based register address on the wire */
    enum pw_modbus_type type;
    bool low_word_first; /* 32/64-bit values with the least significant word first */
    double scale;        /* raw x scale = amperes (or Wh for energy) */
    bool has_sf;         /* SunSpec: scale also x 10^(int16 at sf_address) */
    uint16_t sf_address;
    uint8_t words; /* PW_MODBUS_ASCII only: its length in registers (1..16) */
} pw_modbus_field;

typedef struct pw_modbus_map {
    char name[16];              /* config name: "sdm630", ... */
    char title[48];             /* for people: "Eastron SDM630 (v2)" */
    pw_modbus_field current[3]; /* grid lines L1..L3; a missing one is not read */
    pw_modbus_field serial;     /* the meter's serial number, to notice a swapped meter */
    pw_modbus_field energy_wh;  /* total import energy */
    uint16_t max_regs;          /* the most registers the meter answers in one read (the EM24-DIN
                                   classic: 11); 0 = PW_MODBUS_MAX_REGS */
} pw_modbus_map;

/* The built-in map of that config name, or NULL. Static storage. "sunspec" and "generic" are
 * not in the table: a SunSpec map comes from discovery (pw_modbus_sunspec_*), a generic one is
 * filled in by the caller from the config and checked with pw_modbus_map_check. */
const pw_modbus_map *pw_modbus_map_find(const char *name);
/* Every built-in map in order (for the UI and docs); n set to the count. */
const pw_modbus_map *pw_modbus_map_all(size_t *n);

/* Checks a map put together by hand (the generic map from the config): function 3 or 4, known
 * types, every value inside the 65536 registers, each one readable in a single request, and at
 * most PW_MODBUS_MAP_READS reads. Returns 0, or PW_MODBUS_E_ARG with a sentence for people in
 * why (may be NULL): "current L2: a 2-register value at register 65535 runs past the last
 * register (65535)". */
int pw_modbus_map_check(const pw_modbus_map *m, char *why, size_t why_size);

/* The reads a map needs, as few contiguous blocks as the registers allow (each at most
 * max_regs, never mixing functions; the registers between two values are read and ignored);
 * unit and tid are left 0 for the caller. Returns how many (<= max), or 0 when the map reads
 * nothing or would need more than max reads. */
size_t pw_modbus_map_plan(const pw_modbus_map *m, pw_modbus_request *reqs, size_t max);

typedef struct pw_modbus_reading {
    double line_a[3];
    bool has_line[3];
    bool has_serial;
    uint32_t serial; /* an ASCII serial number of digits as its number, other text as its
                        32-bit FNV-1a hash: enough to notice a swapped meter */
    bool has_energy;
    uint64_t energy_wh;
} pw_modbus_reading;

/* Decodes a reading from the answers to the planned reads (n of each, in plan order). A value
 * that is NaN, infinite or negative is still returned as read: deciding what is plausible is
 * the core's job. A SunSpec "not implemented" current or scale factor (0x8000) reads as NaN,
 * so a meter that stops reporting a line is rejected rather than taken as 0 A; a line the map
 * does not have stays has_line = false. The energy is rounded to whole Wh; one that is NaN,
 * negative or beyond 2^64 Wh leaves has_energy false. Returns 0, or PW_MODBUS_E_COUNT when
 * an answer does not cover its fields. */
int pw_modbus_map_decode(const pw_modbus_map *m, const pw_modbus_request *reqs,
                         const pw_modbus_answer *answers, size_t n, pw_modbus_reading *out);

/* Simulator side: writes the registers of r that fall into [address, address + count) of
 * function fn into regs (others untouched). Values without has_* are not written. A SunSpec
 * scale factor is chosen per scale-factor register, the smallest that lets every value sharing
 * it fit its type. An ASCII serial number is written as its decimal digits. */
void pw_modbus_map_encode(const pw_modbus_map *m, const pw_modbus_reading *r, uint8_t fn,
                          uint16_t address, uint16_t count, uint16_t *regs);

/* The map of SunSpec meter model 201-204 or 211-214 whose header (ID, L) is at register header
 * (function 3, absolute addresses). Returns 0, or PW_MODBUS_E_ARG for another model or a model
 * that would run past register 65535. */
int pw_modbus_map_sunspec(uint16_t model, uint16_t header, pw_modbus_map *out);

/* SunSpec discovery: "SunS" at 40000, then 0, then 50000 (holding registers); walk the model
 * headers from there to the first meter model (201-204 integer with scale factors, 211-214
 * float) and build its map. Gives up at the end marker (0xFFFF), after 64 models, or when a
 * header read fails. Caller-allocated, nothing to free. */
typedef struct pw_modbus_sunspec {
    int state;      /* internal */
    int base_try;   /* internal */
    uint16_t base;  /* where "SunS" was found */
    uint16_t next;  /* the model header to read next */
    uint16_t model; /* the meter model found */
    pw_modbus_map map;
    char error[128]; /* why discovery failed, for people */
    int walked;      /* internal: model headers read so far */
    uint16_t common; /* internal: header of the common model (1), whose SN is the serial */
} pw_modbus_sunspec;

void pw_modbus_sunspec_init(pw_modbus_sunspec *s);
/* The next read discovery needs. Returns 1 with req filled, 0 when done (s->map is ready), or
 * -1 when it failed (s->error says why). */
int pw_modbus_sunspec_next(pw_modbus_sunspec *s, pw_modbus_request *req);
/* The answer (or the parse error / exception) to the read next() asked for. */
void pw_modbus_sunspec_feed(pw_modbus_sunspec *s, int err, const pw_modbus_answer *a);

#endif
