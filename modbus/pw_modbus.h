/* Modbus TCP framing (MBAP header + PDU) for reading meters: requests encoded, answers parsed
 * from a byte stream ("need more" is not an error), exceptions named in words a person can act
 * on. The server side (request in, answer out) serves the simulator's meters. Pure: no sockets,
 * no clock, no globals; every function is safe on any input. */
#ifndef PW_MODBUS_H
#define PW_MODBUS_H

#include <stddef.h>
#include <stdint.h>

#define PW_MODBUS_MAX_REGS   125 /* registers one read may ask for (the spec's limit) */
#define PW_MODBUS_MAX_ADU    260 /* 7-byte MBAP header + at most 253 bytes of PDU */
#define PW_MODBUS_FN_HOLDING 3
#define PW_MODBUS_FN_INPUT   4

enum pw_modbus_err {
    PW_MODBUS_OK = 0,
    PW_MODBUS_AGAIN = -1,       /* not a whole frame yet: read more bytes (not an error) */
    PW_MODBUS_E_PROTOCOL = -2,  /* protocol id not 0, length out of range: the stream is lost */
    PW_MODBUS_E_TID = -3,       /* an answer to another request (transaction id) */
    PW_MODBUS_E_UNIT = -4,      /* an answer from another unit id than asked */
    PW_MODBUS_E_FUNCTION = -5,  /* an answer for another function code */
    PW_MODBUS_E_COUNT = -6,     /* byte count does not match the registers asked for */
    PW_MODBUS_E_EXCEPTION = -7, /* the device answered with an exception (see .exception) */
    PW_MODBUS_E_ARG = -8,       /* encode: invalid arguments */
};

/* Short text for a pw_modbus_err; static storage. */
const char *pw_modbus_strerror(int err);
/* The exception code's name and what it usually means for a meter ("illegal data address:
 * the register is not available on this device: wrong meter model or map?"); static. */
const char *pw_modbus_exception_text(uint8_t code);

typedef struct pw_modbus_request {
    uint16_t tid;     /* transaction id, echoed by the server */
    uint8_t unit;     /* unit id behind the gateway */
    uint8_t function; /* 3 or 4 */
    uint16_t address; /* first register (0-based on the wire) */
    uint16_t count;   /* 1..PW_MODBUS_MAX_REGS */
} pw_modbus_request;

/* Writes the 12-byte request into out. Returns its length, or PW_MODBUS_E_ARG. */
int pw_modbus_encode_request(const pw_modbus_request *r, uint8_t *out, size_t out_size);

typedef struct pw_modbus_answer {
    uint8_t exception;                 /* the exception code when E_EXCEPTION, else 0 */
    uint16_t count;                    /* registers in regs */
    uint16_t regs[PW_MODBUS_MAX_REGS]; /* in host order */
} pw_modbus_answer;

/* Parses the answer to req at the start of buf[0..len). Returns the bytes of the frame it
 * consumed (> 0) with out filled (0 on success, or the frame was an exception, a wrong unit,
 * tid or function: then *err says which, and the frame is still consumed so the stream stays in
 * step), PW_MODBUS_AGAIN when the frame is not complete, or PW_MODBUS_E_PROTOCOL when the bytes
 * cannot be a Modbus TCP frame (close the connection). */
int pw_modbus_parse_answer(const uint8_t *buf, size_t len, const pw_modbus_request *req,
                           pw_modbus_answer *out, int *err);

/* Server side: parses one request at the start of buf (same return convention: consumed bytes,
 * AGAIN, E_PROTOCOL); a request for another function than 3/4 or a bad count is returned with
 * *err set to E_FUNCTION / E_COUNT so the server can answer with an exception. */
int pw_modbus_parse_request(const uint8_t *buf, size_t len, pw_modbus_request *out, int *err);
/* Encodes the answer to req with regs (req->count of them), or an exception when exception is
 * non-zero. Returns its length or E_ARG. */
int pw_modbus_encode_answer(const pw_modbus_request *req, const uint16_t *regs, uint8_t exception,
                            uint8_t *out, size_t out_size);

#endif
