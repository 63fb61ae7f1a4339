/* Meter register maps: the built-in tables (each checked against the maker's register table
 * named above it), the plan of reads a map needs, and the conversion between registers and a
 * reading in both directions (decode for the client, encode for the simulator). */
#include "pw_modbus_map.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define IN   PW_MODBUS_FN_INPUT
#define HOLD PW_MODBUS_FN_HOLDING

/* A value of a built-in map: function, 0-based wire address, type, low word first, scale. */
#define FIELD(fn, addr, t, lwf, sc)                                                                \
    {                                                                                              \
        .present = true, .function = (fn), .address = (addr), .type = (t),                         \
        .low_word_first = (lwf), .scale = (sc)                                                     \
    }
#define TEXT(fn, addr, n)                                                                          \
    {                                                                                              \
        .present = true, .function = (fn), .address = (addr), .type = PW_MODBUS_ASCII, .scale = 1, \
        .words = (n)                                                                               \
    }

#define SF_MIN      (-10) /* SunSpec scale factors are -10..10 */
#define SF_MAX      10
#define SF_ENC_MIN  (-3)    /* the finest scale the simulator writes (mA, mWh) */
#define SUNS_NO_I16 0x8000u /* SunSpec "not implemented" for int16 and sunssf */
#define TEXT_MAX    16      /* registers of the longest text (SunSpec's SN: 32 characters) */

static const pw_modbus_map builtin[] = {
    /* Eastron SDM630-Modbus V2. Eastron "SDM630 Modbus Protocol" (V1.8 / V2.0), input registers
     * (function 4), IEEE 754 float, high word first: 30007/30009/30011 "Phase 1/2/3 current"
     * [A] = wire 0x0006/0x0008/0x000A; 30073 "Total import kWh" [kWh] = 0x0048 (x 1000 for
     * Wh). Holding register 464513 "Serial number" = 0xFC00, unsigned int32 (next to the meter
     * code at 464515 = 0xFC02). At most 40 parameters (80 registers) per request. */
    {
        .name = "sdm630",
        .title = "Eastron SDM630 (Modbus V2)",
        .current = {FIELD(IN, 0x0006, PW_MODBUS_F32, false, 1),
                    FIELD(IN, 0x0008, PW_MODBUS_F32, false, 1),
                    FIELD(IN, 0x000A, PW_MODBUS_F32, false, 1)},
        .serial = FIELD(HOLD, 0xFC00, PW_MODBUS_U32, false, 1),
        .energy_wh = FIELD(IN, 0x0048, PW_MODBUS_F32, false, 1000),
        .max_regs = 80,
    },
    /* Eastron SDM72D-M (first version). "SDM72D-M User Manual V1.5" part 3 (B+G e-tech) and
     * "SDM72D-M Modbus Protocol v1.1" (Smart Process & Control): the input registers are only
     * 30053 total system power, 30073 "Total Import kWh" = 0x0048 (float, kWh), 30075, 30343,
     * 30385-30391, 31281/31283: no per-phase current at all, so this map reads the energy only
     * and the meter cannot be used for phase-aware balancing. No serial number register is
     * documented. At most 30 parameters (60 registers) per request. */
    {
        .name = "sdm72v1",
        .title = "Eastron SDM72D-M v1 (no phase currents)",
        .energy_wh = FIELD(IN, 0x0048, PW_MODBUS_F32, false, 1000),
        .max_regs = 60,
    },
    /* Eastron SDM72D-M-2 (v2). "Eastron SDM72D-M-v2 Modbus Protocol", input registers, float,
     * high word first: 30007/30009/30011 "L1/L2/L3 current" [A] = 0x0006/0x0008/0x000A, 30073
     * "Import active energy" [kWh] = 0x0048; holding 464513 "Serial number" = 0xFC00 (uint32;
     * meter code 0x0089 at 0xFC02). Kept at the v1 manual's 30 parameters per request. */
    {
        .name = "sdm72v2",
        .title = "Eastron SDM72D-M v2",
        .current = {FIELD(IN, 0x0006, PW_MODBUS_F32, false, 1),
                    FIELD(IN, 0x0008, PW_MODBUS_F32, false, 1),
                    FIELD(IN, 0x000A, PW_MODBUS_F32, false, 1)},
        .serial = FIELD(HOLD, 0xFC00, PW_MODBUS_U32, false, 1),
        .energy_wh = FIELD(IN, 0x0048, PW_MODBUS_F32, false, 1000),
        .max_regs = 60,
    },
    /* Carlo Gavazzi EM330/EM340/ET330/ET340. "EM300 Series and ET300 Series Communication
     * Protocol" (version 2 revision 17), table "Instantaneous variables and meters (grouped by
     * variable type)": functions 3 and 4 read the same values; INT32 with the least
     * significant word first. 300013/300015/300017 "A L1/L2/L3" = 0x000C/0x000E/0x0010, weight
     * Ampere*1000 (scale 0.001); 300053 "kWh (+) TOT" = 0x0034, weight kWh*10 (x 100 for Wh).
     * "Serial number" = 0x5000, 7 registers of ASCII. At most 50 registers per request. */
    {
        .name = "em340",
        .title = "Carlo Gavazzi EM340/ET340",
        .current = {FIELD(IN, 0x000C, PW_MODBUS_S32, true, 0.001),
                    FIELD(IN, 0x000E, PW_MODBUS_S32, true, 0.001),
                    FIELD(IN, 0x0010, PW_MODBUS_S32, true, 0.001)},
        .serial = TEXT(IN, 0x5000, 7),
        .energy_wh = FIELD(IN, 0x0034, PW_MODBUS_S32, true, 100),
        .max_regs = 50,
    },
    /* Carlo Gavazzi EM24-DIN with RS485 (AV..IS/XS: PFA, PFB and X models). "EM24-DIN PFA, PFB &
     * X models Communication Protocol" (version 4 revision 0), table 2.3-1: functions 3 and 4;
     * INT32, least significant word first. 300013/300015/300017 "A L1/L2/L3" =
     * 0x000C/0x000E/0x0010, Ampere*1000; 300063 "kWh (+) TOT" = 0x003E, kWh*10 (not 0x0034 as on
     * the EM340 and the Ethernet EM24: that is "PF L3" here). Table 2.9-12 "Serial number" =
     * 0x1300..0x1306, 13 ASCII letters. At most 11 registers per request, hence three reads. */
    {
        .name = "em24",
        .title = "Carlo Gavazzi EM24-DIN (RS485)",
        .current = {FIELD(IN, 0x000C, PW_MODBUS_S32, true, 0.001),
                    FIELD(IN, 0x000E, PW_MODBUS_S32, true, 0.001),
                    FIELD(IN, 0x0010, PW_MODBUS_S32, true, 0.001)},
        .serial = TEXT(IN, 0x1300, 7),
        .energy_wh = FIELD(IN, 0x003E, PW_MODBUS_S32, true, 100),
        .max_regs = 11,
    },
    /* Carlo Gavazzi EM24 Ethernet (EM24DINAV..XE1..). "EM24_E1 (Ethernet) Communication
     * Protocol" (version 0 revision 1.3), sections 2.3-2.5: the EM340 layout. INT32, least
     * significant word first; "A L1/L2/L3" = 0x000C/0x000E/0x0010, Ampere*1000; "kWh (+) TOT" =
     * 0x0034, kWh*10; "Serial number" = 0x5000, 7 registers of ASCII. */
    {
        .name = "em24eth",
        .title = "Carlo Gavazzi EM24 Ethernet",
        .current = {FIELD(IN, 0x000C, PW_MODBUS_S32, true, 0.001),
                    FIELD(IN, 0x000E, PW_MODBUS_S32, true, 0.001),
                    FIELD(IN, 0x0010, PW_MODBUS_S32, true, 0.001)},
        .serial = TEXT(IN, 0x5000, 7),
        .energy_wh = FIELD(IN, 0x0034, PW_MODBUS_S32, true, 100),
    },
    /* ABB B23/B24. "B23/B24 User Manual" (2CMC485003M0201), chapter 9 "Communication with
     * Modbus": function 3 only, up to 125 registers per read, most significant word first;
     * 9.3 "Mapping tables": "Current L1/L2/L3" = 0x5B0C/0x5B0E/0x5B10, unsigned 32, resolution
     * 0.01 A; "Active import kWh" (total) = 0x5000, unsigned 64, 0.01 kWh (x 10 for Wh);
     * "Serial number" = 0x8900, unsigned 32. */
    {
        .name = "abb_b2x",
        .title = "ABB B23/B24",
        .current = {FIELD(HOLD, 0x5B0C, PW_MODBUS_U32, false, 0.01),
                    FIELD(HOLD, 0x5B0E, PW_MODBUS_U32, false, 0.01),
                    FIELD(HOLD, 0x5B10, PW_MODBUS_U32, false, 0.01)},
        .serial = FIELD(HOLD, 0x8900, PW_MODBUS_U32, false, 1),
        .energy_wh = FIELD(HOLD, 0x5000, PW_MODBUS_U64, false, 10),
    },
};

const pw_modbus_map *pw_modbus_map_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof builtin / sizeof builtin[0]; i++) {
        if (strcmp(builtin[i].name, name) == 0)
            return &builtin[i];
    }
    return NULL;
}

const pw_modbus_map *pw_modbus_map_all(size_t *n)
{
    if (n)
        *n = sizeof builtin / sizeof builtin[0];
    return builtin;
}

/* SunSpec meter models (sunspec/models, json/model_20x.json and model_21x.json), offsets from
 * the model header (ID at +0, L at +1), function 3, most significant word first:
 * 201-204 (int16 + scale factors): AphA/AphB/AphC at +3/+4/+5 with A_SF at +6; TotWhImp
 * (acc32, Wh) at +46 with TotWh_SF at +54; L = 105.
 * 211-214 (float32): AphA/AphB/AphC at +4/+6/+8; TotWhImp (Wh) at +68; L = 124.
 * 201 and 211 are single phase (line A only), 202 and 212 split phase (A and B). */
#define SUNS_INT_A     3
#define SUNS_INT_A_SF  6
#define SUNS_INT_WH    46
#define SUNS_INT_WH_SF 54
#define SUNS_INT_LEN   105
#define SUNS_FLT_A     4
#define SUNS_FLT_WH    68
#define SUNS_FLT_LEN   124

int pw_modbus_map_sunspec(uint16_t model, uint16_t header, pw_modbus_map *out)
{
    bool flt = model >= 211 && model <= 214;
    if (!flt && !(model >= 201 && model <= 204))
        return PW_MODBUS_E_ARG;
    unsigned len = flt ? SUNS_FLT_LEN : SUNS_INT_LEN;
    if ((uint32_t)header + 2 + len > 65536u)
        return PW_MODBUS_E_ARG;
    unsigned lines = model % 10 == 1 ? 1 : model % 10 == 2 ? 2 : 3;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "sunspec");
    snprintf(out->title, sizeof out->title, "SunSpec meter (model %u, %s)", model,
             flt ? "float" : "integer");
    for (unsigned l = 0; l < lines; l++) {
        pw_modbus_field *f = &out->current[l];
        *f = (pw_modbus_field)FIELD(HOLD, 0, PW_MODBUS_F32, false, 1);
        if (flt) {
            f->address = (uint16_t)(header + SUNS_FLT_A + 2 * l);
        } else {
            f->type = PW_MODBUS_S16;
            f->address = (uint16_t)(header + SUNS_INT_A + l);
            f->has_sf = true;
            f->sf_address = (uint16_t)(header + SUNS_INT_A_SF);
        }
    }
    out->energy_wh = (pw_modbus_field)FIELD(HOLD, 0, PW_MODBUS_F32, false, 1);
    if (flt) {
        out->energy_wh.address = (uint16_t)(header + SUNS_FLT_WH);
    } else {
        out->energy_wh.type = PW_MODBUS_U32;
        out->energy_wh.address = (uint16_t)(header + SUNS_INT_WH);
        out->energy_wh.has_sf = true;
        out->energy_wh.sf_address = (uint16_t)(header + SUNS_INT_WH_SF);
    }
    return 0;
}

/* ---- Registers of one value ---- */

static unsigned type_words(const pw_modbus_field *f)
{
    switch (f->type) {
    case PW_MODBUS_U16:
    case PW_MODBUS_S16:
        return 1;
    case PW_MODBUS_U32:
    case PW_MODBUS_S32:
    case PW_MODBUS_F32:
        return 2;
    case PW_MODBUS_U64:
        return 4;
    case PW_MODBUS_ASCII:
        return f->words;
    }
    return 0;
}

static const char *const field_names[5] = {"current L1", "current L2", "current L3",
                                           "serial number", "energy"};

/* The map's values in a fixed order: L1, L2, L3, serial, energy. */
static const pw_modbus_field *field_at(const pw_modbus_map *m, int i)
{
    return i < 3 ? &m->current[i] : i == 3 ? &m->serial : &m->energy_wh;
}

static unsigned map_limit(const pw_modbus_map *m)
{
    return m->max_regs && m->max_regs < PW_MODBUS_MAX_REGS ? m->max_regs : PW_MODBUS_MAX_REGS;
}

/* ---- Plan ---- */

typedef struct span {
    uint8_t function;
    uint32_t start, end; /* [start, end) */
} span;

/* Every register range the map reads, values and scale factors, sorted by function and start.
 * Returns how many, or -1 for a value no read can fetch (checked by pw_modbus_map_check). */
static int collect_spans(const pw_modbus_map *m, span *out)
{
    int n = 0;
    for (int i = 0; i < 5; i++) {
        const pw_modbus_field *f = field_at(m, i);
        unsigned words = type_words(f);
        if (!f->present)
            continue;
        if ((f->function != HOLD && f->function != IN) || words == 0 || words > TEXT_MAX ||
            (uint32_t)f->address + words > 65536u)
            return -1;
        out[n++] = (span){f->function, f->address, (uint32_t)f->address + words};
        if (f->has_sf)
            out[n++] = (span){f->function, f->sf_address, (uint32_t)f->sf_address + 1};
    }
    for (int i = 1; i < n; i++) {
        span s = out[i];
        int j = i;
        while (j > 0 && (out[j - 1].function > s.function ||
                         (out[j - 1].function == s.function && out[j - 1].start > s.start))) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = s;
    }
    return n;
}

size_t pw_modbus_map_plan(const pw_modbus_map *m, pw_modbus_request *reqs, size_t max)
{
    span spans[10];
    int n = collect_spans(m, spans);
    size_t out = 0;
    uint32_t limit = map_limit(m);
    /* Greedy from the lowest address: a block grows while the next range still fits whole,
     * which gives the fewest blocks for ranges that may not be split. */
    for (int i = 0; i < n;) {
        span b = spans[i++];
        if (b.end - b.start > limit)
            return 0;
        while (i < n && spans[i].function == b.function &&
               (spans[i].end > b.end ? spans[i].end : b.end) - b.start <= limit) {
            if (spans[i].end > b.end)
                b.end = spans[i].end;
            i++;
        }
        if (out == max)
            return 0;
        reqs[out++] = (pw_modbus_request){.function = b.function,
                                          .address = (uint16_t)b.start,
                                          .count = (uint16_t)(b.end - b.start)};
    }
    return out;
}

/* Writes a reason for people into why, when the caller wants one. */
static void say(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_size, const char *fmt, ...)
{
    if (!why || why_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

int pw_modbus_map_check(const pw_modbus_map *m, char *why, size_t why_size)
{
    say(why, why_size, "%s", "");
    unsigned limit = map_limit(m), present = 0;
    for (int i = 0; i < 5; i++) {
        const pw_modbus_field *f = field_at(m, i);
        if (!f->present)
            continue;
        present++;
        const char *name = field_names[i];
        unsigned words = type_words(f);
        if (f->function != HOLD && f->function != IN) {
            say(why, why_size, "%s: function %u is not a register read: 3 (holding) or 4 (input)",
                name, f->function);
            return PW_MODBUS_E_ARG;
        }
        if (words == 0 || (f->type == PW_MODBUS_ASCII && words > TEXT_MAX)) {
            say(why, why_size, "%s: unknown type or a text of 0 or more than %d registers", name,
                TEXT_MAX);
            return PW_MODBUS_E_ARG;
        }
        if ((uint32_t)f->address + words > 65536u) {
            say(why, why_size,
                "%s: a %u-register value at register %u runs past the last register "
                "(65535)",
                name, words, f->address);
            return PW_MODBUS_E_ARG;
        }
        if (words > limit) {
            say(why, why_size, "%s: %u registers do not fit one read of at most %u", name, words,
                limit);
            return PW_MODBUS_E_ARG;
        }
        if (i != 3 && (!isfinite(f->scale) || f->scale == 0)) {
            say(why, why_size, "%s: the scale must be a number other than 0", name);
            return PW_MODBUS_E_ARG;
        }
    }
    if (!present) {
        say(why, why_size, "the map reads no register");
        return PW_MODBUS_E_ARG;
    }
    pw_modbus_request reqs[PW_MODBUS_MAP_READS];
    if (pw_modbus_map_plan(m, reqs, PW_MODBUS_MAP_READS) == 0) {
        say(why, why_size,
            "the registers are too far apart: reading them takes more than %d requests",
            PW_MODBUS_MAP_READS);
        return PW_MODBUS_E_ARG;
    }
    return 0;
}

/* ---- Decode ---- */

/* The registers [address, address + words) of function fn within the answers, or NULL. */
static const uint16_t *find_regs(const pw_modbus_request *reqs, const pw_modbus_answer *answers,
                                 size_t n, uint8_t fn, uint16_t address, unsigned words)
{
    for (size_t i = 0; i < n; i++) {
        unsigned count = answers[i].count < reqs[i].count ? answers[i].count : reqs[i].count;
        if (reqs[i].function == fn && address >= reqs[i].address &&
            (uint32_t)address + words <= (uint32_t)reqs[i].address + count)
            return answers[i].regs + (address - reqs[i].address);
    }
    return NULL;
}

static uint64_t join_words(const uint16_t *w, unsigned n, bool low_word_first)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)w[i] << (16 * (low_word_first ? i : n - 1 - i));
    return v;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The raw register value as a number (not scaled); NaN for text. */
static double raw_value(const pw_modbus_field *f, const uint16_t *w)
{
    uint64_t v = join_words(w, type_words(f), f->low_word_first);
    switch (f->type) {
    case PW_MODBUS_U16:
    case PW_MODBUS_U32:
    case PW_MODBUS_U64:
        return (double)v;
    case PW_MODBUS_S16:
        return v >= 0x8000u ? (double)v - 65536.0 : (double)v;
    case PW_MODBUS_S32:
        return v >= 0x80000000u ? (double)v - 4294967296.0 : (double)v;
    case PW_MODBUS_F32:
        return bits_float((uint32_t)v);
    case PW_MODBUS_ASCII:
        break;
    }
    return NAN;
}

/* SunSpec marks an unimplemented point with the type's extreme value. */
static bool sunspec_unimplemented(const pw_modbus_field *f, const uint16_t *w)
{
    uint64_t v = join_words(w, type_words(f), f->low_word_first);
    switch (f->type) {
    case PW_MODBUS_S16:
        return v == SUNS_NO_I16;
    case PW_MODBUS_U16:
        return v == 0xFFFFu;
    case PW_MODBUS_S32:
        return v == 0x80000000u;
    default:
        return false; /* acc32 0 means "nothing accumulated yet", a real value */
    }
}

static double pow10i(int e)
{
    double p = 1;
    for (int i = 0; i < (e < 0 ? -e : e); i++)
        p *= 10;
    return p;
}

/* Applies 10^sf by multiplying or dividing by an exact power of ten, so that 1250 with -2 is
 * exactly 12.5. */
static double apply_sf(double v, int sf)
{
    return sf < 0 ? v / pow10i(-sf) : v * pow10i(sf);
}

/* A value in its unit (A or Wh), or NaN when SunSpec says it is not implemented. */
static int field_value(const pw_modbus_field *f, const pw_modbus_request *reqs,
                       const pw_modbus_answer *answers, size_t n, double *out)
{
    const uint16_t *w = find_regs(reqs, answers, n, f->function, f->address, type_words(f));
    if (!w)
        return PW_MODBUS_E_COUNT;
    double v = raw_value(f, w) * f->scale;
    if (f->has_sf) {
        const uint16_t *sfw = find_regs(reqs, answers, n, f->function, f->sf_address, 1);
        if (!sfw)
            return PW_MODBUS_E_COUNT;
        int sf = sfw[0] >= 0x8000u ? (int)sfw[0] - 65536 : (int)sfw[0];
        if (sunspec_unimplemented(f, w) || sf < SF_MIN || sf > SF_MAX)
            v = NAN;
        else
            v = apply_sf(v, sf);
    }
    *out = v;
    return 0;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* A text serial number: its number when it is all digits and fits, else its hash; false for
 * an empty text (a meter that does not fill it in). */
static bool text_serial(const uint16_t *w, unsigned words, uint32_t *out)
{
    uint8_t text[2 * TEXT_MAX];
    size_t len = 0, start = 0;
    for (unsigned i = 0; i < words && i < TEXT_MAX; i++) {
        text[len++] = (uint8_t)(w[i] >> 8);
        text[len++] = (uint8_t)w[i];
    }
    while (len > 0 && (text[len - 1] == 0 || text[len - 1] == ' '))
        len--;
    while (start < len && text[start] == ' ')
        start++;
    if (start == len)
        return false;
    uint64_t num = 0;
    bool digits = true;
    for (size_t i = start; i < len && digits; i++) {
        if (text[i] < '0' || text[i] > '9')
            digits = false;
        else if ((num = num * 10 + (uint64_t)(text[i] - '0')) > UINT32_MAX)
            digits = false;
    }
    *out = digits ? (uint32_t)num : fnv1a(text + start, len - start);
    return true;
}

int pw_modbus_map_decode(const pw_modbus_map *m, const pw_modbus_request *reqs,
                         const pw_modbus_answer *answers, size_t n, pw_modbus_reading *out)
{
    memset(out, 0, sizeof *out);
    for (int l = 0; l < 3; l++) {
        if (!m->current[l].present)
            continue;
        int err = field_value(&m->current[l], reqs, answers, n, &out->line_a[l]);
        if (err)
            return err;
        out->has_line[l] = true;
    }
    const pw_modbus_field *e = &m->energy_wh;
    if (e->present) {
        double wh;
        int err = field_value(e, reqs, answers, n, &wh);
        if (err)
            return err;
        /* 0x1p64 is the first value a uint64_t cannot hold. */
        if (wh >= 0 && wh < 0x1p64) {
            out->energy_wh = (uint64_t)floor(wh + 0.5);
            out->has_energy = true;
        }
    }
    const pw_modbus_field *s = &m->serial;
    if (s->present) {
        const uint16_t *w = find_regs(reqs, answers, n, s->function, s->address, type_words(s));
        if (!w)
            return PW_MODBUS_E_COUNT;
        if (s->type == PW_MODBUS_ASCII) {
            out->has_serial = text_serial(w, s->words, &out->serial);
        } else if (s->type == PW_MODBUS_F32) {
            double v = raw_value(s, w);
            out->has_serial = true;
            out->serial = v >= 0 && v < 4294967296.0
                              ? (uint32_t)v
                              : float_bits((float)v); /* NaN or out of range: its bits */
        } else {
            uint64_t v = join_words(w, type_words(s), s->low_word_first);
            out->has_serial = true;
            out->serial = (uint32_t)(v ^ (v >> 32));
        }
    }
    return 0;
}

/* ---- Encode (simulator) ---- */

/* The value r gives for field i, if any. */
static bool reading_value(const pw_modbus_reading *r, int i, double *v)
{
    if (i < 3) {
        *v = r->line_a[i];
        return r->has_line[i];
    }
    if (i == 3) {
        *v = r->serial;
        return r->has_serial;
    }
    *v = (double)r->energy_wh;
    return r->has_energy;
}

/* The range a raw integer of the field's type may take; SunSpec keeps the extreme value for
 * "not implemented". */
static void int_range(const pw_modbus_field *f, double *lo, double *hi)
{
    bool suns = f->has_sf;
    switch (f->type) {
    case PW_MODBUS_U16:
        *lo = 0, *hi = suns ? 65534.0 : 65535.0;
        break;
    case PW_MODBUS_S16:
        *lo = suns ? -32767.0 : -32768.0, *hi = 32767.0;
        break;
    case PW_MODBUS_U32:
        *lo = 0, *hi = 4294967295.0;
        break;
    case PW_MODBUS_S32:
        *lo = suns ? -2147483647.0 : -2147483648.0, *hi = 2147483647.0;
        break;
    default: /* U64: the part of the range a double holds exactly */
        *lo = 0, *hi = 9007199254740992.0;
        break;
    }
}

/* The smallest scale factor that lets every value sharing the register at sf_address fit. */
static int group_sf(const pw_modbus_map *m, const pw_modbus_reading *r, uint8_t fn,
                    uint16_t sf_address)
{
    int sf = SF_ENC_MIN;
    for (int i = 0; i < 5; i++) {
        const pw_modbus_field *f = field_at(m, i);
        double v, lo, hi;
        if (!f->present || !f->has_sf || f->function != fn || f->sf_address != sf_address ||
            !reading_value(r, i, &v) || !isfinite(v))
            continue;
        int_range(f, &lo, &hi);
        while (sf < SF_MAX) {
            double raw = round(apply_sf(v / f->scale, -sf));
            if (raw >= lo && raw <= hi)
                break;
            sf++;
        }
    }
    return sf;
}

/* The registers of value v in field f (type_words(f) of them). */
static void value_words(const pw_modbus_field *f, double v, int sf, uint16_t *w)
{
    unsigned n = type_words(f);
    uint64_t bits;
    if (f->type == PW_MODBUS_F32) {
        bits = float_bits((float)apply_sf(v / f->scale, -sf));
    } else if (isnan(v) && f->has_sf) {
        bits = f->type == PW_MODBUS_S16   ? SUNS_NO_I16
               : f->type == PW_MODBUS_S32 ? 0x80000000u
                                          : UINT64_MAX;
    } else {
        double lo, hi, raw = isnan(v) ? 0 : round(apply_sf(v / f->scale, -sf));
        int_range(f, &lo, &hi);
        raw = raw < lo ? lo : raw > hi ? hi : raw;
        /* Negative values go through int64_t to get their two's complement bits. */
        bits = raw < 0 ? (uint64_t)(int64_t)raw : (uint64_t)raw;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned shift = 16 * (f->low_word_first ? i : n - 1 - i);
        w[i] = (uint16_t)(bits >> shift);
    }
}

/* An ASCII serial number: the decimal digits, then NUL. */
static void text_words(const pw_modbus_field *f, uint32_t serial, uint16_t *w)
{
    char text[2 * TEXT_MAX + 1];
    memset(text, 0, sizeof text);
    snprintf(text, sizeof text, "%u", (unsigned)serial);
    for (unsigned i = 0; i < f->words && i < TEXT_MAX; i++)
        w[i] = (uint16_t)((uint8_t)text[2 * i] << 8 | (uint8_t)text[2 * i + 1]);
}

static void put_window(uint16_t at, const uint16_t *w, unsigned n, uint16_t address, uint16_t count,
                       uint16_t *regs)
{
    for (unsigned i = 0; i < n; i++) {
        uint32_t a = (uint32_t)at + i;
        if (a >= address && a < (uint32_t)address + count)
            regs[a - address] = w[i];
    }
}

void pw_modbus_map_encode(const pw_modbus_map *m, const pw_modbus_reading *r, uint8_t fn,
                          uint16_t address, uint16_t count, uint16_t *regs)
{
    for (int i = 0; i < 5; i++) {
        const pw_modbus_field *f = field_at(m, i);
        uint16_t w[TEXT_MAX];
        double v;
        unsigned n = type_words(f);
        if (!f->present || f->function != fn || n == 0 || n > TEXT_MAX || !reading_value(r, i, &v))
            continue;
        int sf = f->has_sf ? group_sf(m, r, fn, f->sf_address) : 0;
        if (f->type == PW_MODBUS_ASCII)
            text_words(f, r->serial, w);
        else if (i == 3 && f->type != PW_MODBUS_F32)
            value_words(&(pw_modbus_field){.type = f->type,
                                           .low_word_first = f->low_word_first,
                                           .scale = 1},
                        v, 0, w); /* a serial number is not scaled */
        else
            value_words(f, v, sf, w);
        put_window(f->address, w, n, address, count, regs);
        if (f->has_sf) {
            uint16_t sfw = (uint16_t)(int16_t)sf;
            put_window(f->sf_address, &sfw, 1, address, count, regs);
        }
    }
}
