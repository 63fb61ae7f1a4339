/* libFuzzer target: the OCPP 1.6J codec on arbitrary bytes. The input is parsed as a frame and
 * decoded as the CALL or RESULT it is; if it is a JSON object it is also decoded as the payload
 * of every action (a CALL to either side and the answer to either side's call), so the schema
 * checker and the readers are reached without the fuzzer having to find the frame syntax; and
 * as text it is a date-time and a message id. Beyond "no crash": every refusal has an error code
 * and a text; whatever is read builds back into a payload that holds to its schema; a parsed
 * time formats and parses back to itself; an id echoes through a frame. Try -dict=ocpp.dict. */
#include "pw_ocpp.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void check_fault(const pw_ocpp_fault *f)
{
    CHECK(f->code != PW_OCPP_OK);
    CHECK(memchr(f->text, '\0', sizeof f->text) != NULL);
    CHECK(f->text[0] != '\0');
}

/* A payload we built holds to the schema of what it is (conf: an answer); takes the reference. */
static void schema_holds(enum pw_ocpp_action a, bool conf, json_t *payload)
{
    CHECK(payload != NULL);
    pw_ocpp_fault fault;
    CHECK(pw_ocpp_check_payload(a, conf, payload, &fault) == 0);
    json_decref(payload);
}

/* What the central system read from a charge point builds back (the simulator's builders) into
 * a valid call. */
static void rebuild_call(const pw_ocpp_call *c)
{
    switch (c->action) {
    case PW_OCPP_A_BOOT_NOTIFICATION:
        schema_holds(c->action, false, pw_ocpp_boot_req(&c->u.boot));
        break;
    case PW_OCPP_A_STATUS_NOTIFICATION:
        schema_holds(c->action, false, pw_ocpp_status_req(&c->u.status));
        break;
    case PW_OCPP_A_METER_VALUES:
        schema_holds(c->action, false, pw_ocpp_meter_req(&c->u.meter));
        break;
    case PW_OCPP_A_START_TRANSACTION:
        schema_holds(c->action, false, pw_ocpp_start_req(&c->u.start));
        break;
    case PW_OCPP_A_STOP_TRANSACTION:
        schema_holds(c->action, false, pw_ocpp_stop_req(&c->u.stop));
        /* The transaction id goes out again as an integer in StartTransaction.conf. */
        schema_holds(PW_OCPP_A_START_TRANSACTION, true,
                     pw_ocpp_start_conf(c->u.stop.tx_id, PW_OCPP_ACCEPTED));
        break;
    case PW_OCPP_A_AUTHORIZE:
        schema_holds(c->action, false, pw_ocpp_authorize_req(c->u.id_tag));
        break;
    default:
        break;
    }
}

static void rebuild_cs_call(const pw_ocpp_cs_call *c)
{
    switch (c->action) {
    case PW_OCPP_A_SET_CHARGING_PROFILE:
        CHECK(c->u.profile.n_periods <= PW_OCPP_MAX_PERIODS);
        schema_holds(c->action, false, pw_ocpp_set_profile_req(&c->u.profile));
        break;
    case PW_OCPP_A_GET_CONFIGURATION: {
        const char *keys[PW_OCPP_MAX_KEYS];
        CHECK(c->u.get_config.n <= PW_OCPP_MAX_KEYS);
        for (size_t i = 0; i < c->u.get_config.n; i++)
            keys[i] = c->u.get_config.keys[i];
        schema_holds(c->action, false, pw_ocpp_get_configuration_req(keys, c->u.get_config.n));
        break;
    }
    case PW_OCPP_A_CHANGE_CONFIGURATION:
        schema_holds(
            c->action, false,
            pw_ocpp_change_configuration_req(c->u.change_config.key, c->u.change_config.value));
        break;
    case PW_OCPP_A_TRIGGER_MESSAGE:
        schema_holds(c->action, false,
                     pw_ocpp_trigger_req(c->u.trigger.message, c->u.trigger.connector));
        break;
    case PW_OCPP_A_CLEAR_CHARGING_PROFILE:
        /* Negative values of present fields cannot be said by the builder; only check those. */
        if (c->u.clear.id >= 0 && c->u.clear.stack_level >= 0)
            schema_holds(c->action, false,
                         pw_ocpp_clear_profile_req(
                             c->u.clear.has_id ? c->u.clear.id : -1,
                             c->u.clear.has_connector ? c->u.clear.connector : -1,
                             c->u.clear.has_purpose, c->u.clear.purpose,
                             c->u.clear.has_stack_level ? c->u.clear.stack_level : -1));
        break;
    default:
        break;
    }
}

static void decode_as_call(const pw_ocpp_frame *f)
{
    pw_ocpp_fault fault;
    static pw_ocpp_call c;
    if (pw_ocpp_decode_call(f, &c, &fault) == 0)
        rebuild_call(&c);
    else
        check_fault(&fault);
    static pw_ocpp_cs_call cs;
    if (pw_ocpp_decode_cs_call(f, &cs, &fault) == 0)
        rebuild_cs_call(&cs);
    else
        check_fault(&fault);
}

static void decode_as_answers(const json_t *payload)
{
    static pw_ocpp_config_answer config;
    for (int a = 0; a < PW_OCPP_A_COUNT; a++) {
        pw_ocpp_fault fault;
        enum pw_ocpp_answer st;
        if (pw_ocpp_decode_result((enum pw_ocpp_action)a, payload, &st, &config, &fault) == 0) {
            CHECK(pw_ocpp_answer_name(st)[0] != '\0');
            if (a == PW_OCPP_A_GET_CONFIGURATION)
                CHECK(config.n_keys <= PW_OCPP_MAX_KEYS && config.n_unknown <= 8);
        } else {
            check_fault(&fault);
        }
        int interval = 0;
        char tx[PW_OCPP_TXID_LEN];
        if (pw_ocpp_decode_cp_result((enum pw_ocpp_action)a, payload, &st, &interval, tx, &fault) ==
            0) {
            /* The simulator's StopTransaction carries the id it was given. */
            if (a == PW_OCPP_A_START_TRANSACTION) {
                pw_ocpp_stop_tx stop = {.meter_stop_wh = 1};
                memcpy(stop.tx_id, tx, sizeof tx);
                schema_holds(PW_OCPP_A_STOP_TRANSACTION, false, pw_ocpp_stop_req(&stop));
            }
        } else {
            check_fault(&fault);
        }
    }
}

static void fuzz_time(const char *text)
{
    int64_t ms;
    if (pw_ocpp_time_parse(text, &ms) != 0)
        return;
    /* A zone offset can put a valid text just outside 0000..9999, which formatting clamps. */
    if (ms < INT64_C(-62167219200000) || ms > INT64_C(253402300799999))
        return;
    char buf[32];
    pw_ocpp_time_format(ms, buf, sizeof buf);
    int64_t back;
    CHECK(pw_ocpp_time_parse(buf, &back) == 0);
    CHECK(back == ms);
}

static void fuzz_id(const char *text, size_t len)
{
    /* A valid id (1..36 bytes of UTF-8) echoes back exactly. */
    json_t *valid = json_stringn(text, len);
    if (!valid || len < 1 || len >= PW_OCPP_ID_LEN || memchr(text, '\0', len)) {
        json_decref(valid);
        return;
    }
    json_decref(valid);
    char *frame = pw_ocpp_error_text(text, PW_OCPP_GENERIC_ERROR, text, NULL);
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    CHECK(pw_ocpp_frame_parse(frame, strlen(frame), &f, &fault) == 0);
    CHECK(f.kind == PW_OCPP_ERROR && strcmp(f.id, text) == 0);
    pw_ocpp_frame_clear(&f);
    free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, size, &f, &fault) == 0) {
        CHECK(f.payload != NULL && f.id[0] != '\0');
        if (f.kind == PW_OCPP_CALL)
            decode_as_call(&f);
        else if (f.kind == PW_OCPP_RESULT)
            decode_as_answers(f.payload);
        pw_ocpp_frame_clear(&f);
    } else {
        check_fault(&fault);
        CHECK(f.payload == NULL);
        CHECK(f.id[0] == '\0' || f.kind == PW_OCPP_CALL);
    }

    /* The input as a payload of every action, both ways. */
    json_t *payload = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(payload)) {
        decode_as_answers(payload);
        for (int a = 1; a < PW_OCPP_A_COUNT; a++) {
            pw_ocpp_frame call = {.kind = PW_OCPP_CALL, .id = "f", .payload = payload};
            strcpy(call.action, pw_ocpp_action_name((enum pw_ocpp_action)a));
            decode_as_call(&call);
        }
    }
    json_decref(payload);

    if (size < 128) {
        char buf[128];
        memcpy(buf, data, size);
        buf[size] = '\0';
        fuzz_time(buf);
        fuzz_id(buf, size);
    }
    return 0;
}
