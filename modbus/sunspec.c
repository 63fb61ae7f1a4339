/* SunSpec discovery as a small state machine: the caller sends the read next() asks for and
 * feeds back whatever came of it, so discovery runs on the event loop without blocking. The
 * marker "SunS" is looked for at 40000, 0 and 50000 (the SunSpec Information Model
 * Specification's base addresses, holding registers); from there the model headers (ID, L) are
 * walked until the first meter model (201-204, 211-214) or the end marker 0xFFFF. */
#include "pw_modbus_map.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { ST_MARKER = 0, ST_HEADER, ST_DONE, ST_FAILED };

#define SUNS_HI    0x5375 /* "Su" */
#define SUNS_LO    0x6E53 /* "nS" */
#define END_MODEL  0xFFFF
#define COMMON     1  /* the common model, first after the marker */
#define COMMON_SN  50 /* its SN (32 characters) from the header: after Mn, Md, Opt and Vr */
#define SN_WORDS   16
#define MAX_MODELS 64 /* a device with more is broken or hostile: stop reading headers */
#define N_BASES    3

static const uint16_t bases[N_BASES] = {40000, 0, 50000};

static void fail(pw_modbus_sunspec *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(pw_modbus_sunspec *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s->state = ST_FAILED;
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
}

/* What went wrong with a read, in a few words for the error text. */
static void why_read(int err, const pw_modbus_answer *a, char *out, size_t size)
{
    if (err == PW_MODBUS_E_EXCEPTION && a)
        snprintf(out, size, "exception %u", a->exception);
    else if (err == PW_MODBUS_E_UNIT)
        snprintf(out, size, "answer from another unit id");
    else if (err == PW_MODBUS_E_COUNT)
        snprintf(out, size, "wrong register count");
    else if (err)
        snprintf(out, size, "error %d", err); /* the caller's own codes, e.g. a timeout */
    else
        snprintf(out, size, "short answer");
}

void pw_modbus_sunspec_init(pw_modbus_sunspec *s)
{
    memset(s, 0, sizeof *s);
    s->state = ST_MARKER;
}

int pw_modbus_sunspec_next(pw_modbus_sunspec *s, pw_modbus_request *req)
{
    memset(req, 0, sizeof *req);
    req->function = PW_MODBUS_FN_HOLDING;
    req->count = 2;
    switch (s->state) {
    case ST_MARKER:
        if (s->base_try < 0 || s->base_try >= N_BASES)
            break;
        req->address = bases[s->base_try];
        return 1;
    case ST_HEADER:
        req->address = s->next;
        return 1;
    case ST_DONE:
        return 0;
    default:
        break;
    }
    if (s->state != ST_FAILED)
        fail(s, "SunSpec discovery lost its state (%d, %d)", s->state, s->base_try);
    return -1;
}

static void feed_marker(pw_modbus_sunspec *s, int err, const pw_modbus_answer *a)
{
    if (err == 0 && a && a->count >= 2 && a->regs[0] == SUNS_HI && a->regs[1] == SUNS_LO) {
        s->base = bases[s->base_try];
        s->next = (uint16_t)(s->base + 2);
        s->state = ST_HEADER;
        return;
    }
    /* Any failure, an exception 2 above all, means "not here": try the next base. */
    if (++s->base_try >= N_BASES)
        fail(s,
             "no SunSpec marker \"SunS\" at register %u, 0 or %u: not a SunSpec meter, or the "
             "wrong unit id",
             (unsigned)bases[0], (unsigned)bases[2]);
}

static void feed_header(pw_modbus_sunspec *s, int err, const pw_modbus_answer *a)
{
    if (err || !a || a->count < 2) {
        char why[40];
        why_read(err, a, why, sizeof why);
        fail(s, "reading the SunSpec model header at register %u failed (%s)", s->next, why);
        return;
    }
    uint16_t id = a->regs[0], len = a->regs[1];
    if (id == END_MODEL) {
        fail(s,
             "no SunSpec meter model (201-204, 211-214) among the %d models at register %u: "
             "is this an inverter?",
             s->walked, s->base);
        return;
    }
    s->walked++;
    if ((id >= 201 && id <= 204) || (id >= 211 && id <= 214)) {
        if (pw_modbus_map_sunspec(id, s->next, &s->map) != 0) {
            fail(s, "SunSpec meter model %u at register %u runs past the last register",
                 (unsigned)id, (unsigned)s->next);
            return;
        }
        if (s->common) {
            s->map.serial = (pw_modbus_field){.present = true,
                                              .function = PW_MODBUS_FN_HOLDING,
                                              .address = (uint16_t)(s->common + COMMON_SN),
                                              .type = PW_MODBUS_ASCII,
                                              .scale = 1,
                                              .words = SN_WORDS};
        }
        s->model = id;
        s->error[0] = '\0';
        s->state = ST_DONE;
        return;
    }
    /* The common model is the first one; its SN tells a swapped meter, if it is long enough. */
    if (id == COMMON && s->walked == 1 && len >= COMMON_SN - 2 + SN_WORDS)
        s->common = s->next;
    uint32_t next = (uint32_t)s->next + 2 + len;
    if (next + 2 > 65536u) {
        fail(s, "SunSpec model %u at register %u runs past the last register", (unsigned)id,
             (unsigned)s->next);
        return;
    }
    if (s->walked >= MAX_MODELS) {
        fail(s, "no SunSpec meter model in the first %d models at register %u", MAX_MODELS,
             s->base);
        return;
    }
    s->next = (uint16_t)next;
}

void pw_modbus_sunspec_feed(pw_modbus_sunspec *s, int err, const pw_modbus_answer *a)
{
    if (s->state == ST_MARKER && s->base_try >= 0 && s->base_try < N_BASES)
        feed_marker(s, err, a);
    else if (s->state == ST_HEADER)
        feed_header(s, err, a);
}
