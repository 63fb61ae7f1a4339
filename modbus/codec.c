/* Modbus TCP framing: the MBAP header (transaction id, protocol id 0, length, unit id) and the
 * PDUs of read holding/input registers (functions 3 and 4), both directions. Parsing works on
 * whatever bytes have arrived: an incomplete frame is PW_MODBUS_AGAIN, and a whole frame that
 * is not the expected answer is still consumed so the stream stays in step. */
#include "pw_modbus.h"

#include <string.h>

#define MBAP_LEN        7 /* tid, protocol id, length, unit id */
#define REQ_LEN         12
#define EXC_LEN         9 /* MBAP + function | 0x80 + exception code */
#define EXC_FLAG        0x80
#define ANSWER_LEN_MIN  3   /* unit id, function, exception code */
#define ANSWER_LEN_MAX  253 /* unit id, function, byte count, 125 registers: 3 + 250 */
#define REQUEST_LEN_MIN 2   /* unit id and a function without data (e.g. 7, 17) */
#define REQUEST_LEN_MAX 254 /* unit id and the spec's largest PDU (253 bytes) */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_mbap(uint8_t *out, uint16_t tid, uint16_t length, uint8_t unit)
{
    put16(out, tid);
    put16(out + 2, 0);
    put16(out + 4, length);
    out[6] = unit;
}

/* Frames a stream: the length of the whole frame at buf once it is complete, AGAIN before, or
 * E_PROTOCOL as soon as the bytes that have arrived rule a Modbus TCP frame out (so garbage
 * is refused without waiting for bytes that may never come). */
static int frame_len(const uint8_t *buf, size_t len, unsigned min, unsigned max)
{
    if (len >= 3 && buf[2] != 0)
        return PW_MODBUS_E_PROTOCOL;
    if (len >= 4 && buf[3] != 0)
        return PW_MODBUS_E_PROTOCOL;
    if (len < 6)
        return PW_MODBUS_AGAIN;
    unsigned length = get16(buf + 4);
    if (length < min || length > max)
        return PW_MODBUS_E_PROTOCOL;
    if (len < 6 + (size_t)length)
        return PW_MODBUS_AGAIN;
    return (int)(6 + length);
}

const char *pw_modbus_strerror(int err)
{
    switch (err) {
    case PW_MODBUS_OK:
        return "ok";
    case PW_MODBUS_AGAIN:
        return "incomplete frame: more bytes needed";
    case PW_MODBUS_E_PROTOCOL:
        return "not a Modbus TCP frame (protocol id not 0 or length out of range): is this port "
               "a Modbus TCP gateway?";
    case PW_MODBUS_E_TID:
        return "answer to another request (transaction id): a late answer after a timeout?";
    case PW_MODBUS_E_UNIT:
        return "answer from another unit id than asked: two meters with the same unit id, or "
               "a gateway that rewrites it?";
    case PW_MODBUS_E_FUNCTION:
        return "answer for another function code than asked";
    case PW_MODBUS_E_COUNT:
        return "answer does not carry the registers asked for (byte count)";
    case PW_MODBUS_E_EXCEPTION:
        return "the device answered with a Modbus exception";
    case PW_MODBUS_E_ARG:
        return "invalid arguments";
    default:
        return "unknown Modbus error";
    }
}

const char *pw_modbus_exception_text(uint8_t code)
{
    switch (code) {
    case 1:
        return "illegal function: the device does not serve this function code (holding 3 vs "
               "input 4): wrong map or function?";
    case 2:
        return "illegal data address: the register is not available on this device: wrong "
               "meter model or map?";
    case 3:
        return "illegal data value: the device refuses this read (too many registers at once, "
               "or an odd count on a float meter)";
    case 4:
        return "server device failure: the meter failed while answering; check the meter";
    case 5:
        return "acknowledge: the device accepted the request but needs longer to answer";
    case 6:
        return "server device busy: the meter or gateway is busy; the read is retried";
    case 8:
        return "memory parity error: the device found an internal memory error";
    case 10:
        return "gateway path unavailable: the gateway has no route to that unit id; check the "
               "unit id and the gateway's serial port settings";
    case 11:
        return "gateway target device failed to respond: the meter behind the gateway does not "
               "answer: check its unit id, wiring and baud rate";
    default:
        return "unknown exception code";
    }
}

int pw_modbus_encode_request(const pw_modbus_request *r, uint8_t *out, size_t out_size)
{
    if (!r || !out || out_size < REQ_LEN)
        return PW_MODBUS_E_ARG;
    if (r->function != PW_MODBUS_FN_HOLDING && r->function != PW_MODBUS_FN_INPUT)
        return PW_MODBUS_E_ARG;
    /* The spec's limit, and the read must stay inside the 65536 registers. */
    if (r->count < 1 || r->count > PW_MODBUS_MAX_REGS || (uint32_t)r->address + r->count > 65536u)
        return PW_MODBUS_E_ARG;
    put_mbap(out, r->tid, 6, r->unit);
    out[7] = r->function;
    put16(out + 8, r->address);
    put16(out + 10, r->count);
    return REQ_LEN;
}

int pw_modbus_parse_answer(const uint8_t *buf, size_t len, const pw_modbus_request *req,
                           pw_modbus_answer *out, int *err)
{
    int n = frame_len(buf, len, ANSWER_LEN_MIN, ANSWER_LEN_MAX);
    if (n < 0)
        return n;
    unsigned length = (unsigned)n - 6;
    uint8_t fn = buf[7];
    out->exception = 0;
    out->count = 0;
    /* Identity first: a frame for another request says nothing about this one. */
    if (get16(buf) != req->tid)
        *err = PW_MODBUS_E_TID;
    else if (buf[6] != req->unit)
        *err = PW_MODBUS_E_UNIT;
    else if ((fn & ~EXC_FLAG) != req->function)
        *err = PW_MODBUS_E_FUNCTION;
    else if (fn & EXC_FLAG) {
        /* An exception PDU is exactly function and code; anything else is not a Modbus
         * answer even though the MBAP length framed it. */
        if (length != 3)
            return PW_MODBUS_E_PROTOCOL;
        out->exception = buf[8];
        *err = PW_MODBUS_E_EXCEPTION;
    } else if (length < 3 || req->count > PW_MODBUS_MAX_REGS || buf[8] != 2u * req->count ||
               length != 3u + buf[8]) {
        *err = PW_MODBUS_E_COUNT;
    } else {
        out->count = req->count;
        for (unsigned i = 0; i < req->count; i++)
            out->regs[i] = get16(buf + 9 + 2 * i);
        *err = PW_MODBUS_OK;
    }
    return n;
}

int pw_modbus_parse_request(const uint8_t *buf, size_t len, pw_modbus_request *out, int *err)
{
    /* A client may send any function; those we do not serve are still framed, so the server can
     * answer "illegal function" instead of dropping the connection. */
    int n = frame_len(buf, len, REQUEST_LEN_MIN, REQUEST_LEN_MAX);
    if (n < 0)
        return n;
    unsigned length = (unsigned)n - 6;
    memset(out, 0, sizeof *out);
    out->tid = get16(buf);
    out->unit = buf[6];
    out->function = buf[7];
    if (out->function != PW_MODBUS_FN_HOLDING && out->function != PW_MODBUS_FN_INPUT) {
        *err = PW_MODBUS_E_FUNCTION;
        return n;
    }
    if (length != 6) {
        *err = PW_MODBUS_E_COUNT;
        return n;
    }
    out->address = get16(buf + 8);
    out->count = get16(buf + 10);
    *err = out->count < 1 || out->count > PW_MODBUS_MAX_REGS ? PW_MODBUS_E_COUNT : PW_MODBUS_OK;
    return n;
}

int pw_modbus_encode_answer(const pw_modbus_request *req, const uint16_t *regs, uint8_t exception,
                            uint8_t *out, size_t out_size)
{
    if (!req || !out || (req->function & EXC_FLAG))
        return PW_MODBUS_E_ARG;
    if (exception) {
        if (out_size < EXC_LEN)
            return PW_MODBUS_E_ARG;
        put_mbap(out, req->tid, 3, req->unit);
        out[7] = (uint8_t)(req->function | EXC_FLAG);
        out[8] = exception;
        return EXC_LEN;
    }
    if (req->function != PW_MODBUS_FN_HOLDING && req->function != PW_MODBUS_FN_INPUT)
        return PW_MODBUS_E_ARG;
    if (!regs || req->count < 1 || req->count > PW_MODBUS_MAX_REGS)
        return PW_MODBUS_E_ARG;
    size_t total = MBAP_LEN + 2 + 2u * req->count;
    if (out_size < total)
        return PW_MODBUS_E_ARG;
    put_mbap(out, req->tid, (uint16_t)(3 + 2 * req->count), req->unit);
    out[7] = req->function;
    out[8] = (uint8_t)(2 * req->count);
    for (unsigned i = 0; i < req->count; i++)
        put16(out + 9 + 2 * i, regs[i]);
    return (int)total;
}
