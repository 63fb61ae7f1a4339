/* OCPP 1.6J, the codec: RPC frames ([2|3|4, ...] as text), every payload phasewise reads checked
 * against the official OCPP 1.6 JSON schemas (required fields, types, string lengths, enums), and
 * typed views and builders for the messages a central system and a charge point exchange.
 *
 * Pure: jansson only; no sockets, no clock reads (timestamps are passed in and out as Unix ms).
 * The internal model is version-neutral (transaction ids are strings) so 2.0.1 can follow. */
#ifndef PW_OCPP_H
#define PW_OCPP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_OCPP_SUBPROTOCOL "ocpp1.6"
#define PW_OCPP_ID_LEN      37 /* a message id: at most 36 characters, NUL-terminated */
#define PW_OCPP_ACTION_LEN  40
#define PW_OCPP_TAG_LEN     21            /* IdToken: CiString20Type */
#define PW_OCPP_TXID_LEN    24            /* a transaction id as text (1.6: an integer) */
#define PW_OCPP_MAX_FRAME   (64u * 1024u) /* a longer frame is refused before it is parsed */
#define PW_OCPP_MAX_KEYS    64            /* GetConfiguration: keys kept from one answer */

/* The RPC error codes of OCPP-J 1.6 section 4.2.3 (spelled as on the wire by
 * pw_ocpp_error_name, including the standard's "OccurenceConstraintViolation"). */
enum pw_ocpp_error {
    PW_OCPP_OK = 0,
    PW_OCPP_NOT_IMPLEMENTED, /* the action is not known */
    PW_OCPP_NOT_SUPPORTED,   /* known, not supported */
    PW_OCPP_INTERNAL_ERROR,
    PW_OCPP_PROTOCOL_ERROR, /* payload incomplete */
    PW_OCPP_SECURITY_ERROR,
    PW_OCPP_FORMATION_VIOLATION,  /* not the structure of the action's PDU */
    PW_OCPP_PROPERTY_CONSTRAINT,  /* a field's value breaks a constraint (enum, length) */
    PW_OCPP_OCCURENCE_CONSTRAINT, /* a required field is missing, or an unknown one is there */
    PW_OCPP_TYPE_CONSTRAINT,      /* a field has the wrong type (a number where a string is due) */
    PW_OCPP_GENERIC_ERROR,
};

const char *pw_ocpp_error_name(enum pw_ocpp_error e);
/* The code for a name as received in a CALLERROR; PW_OCPP_GENERIC_ERROR if unknown. */
enum pw_ocpp_error pw_ocpp_error_parse(const char *name);

/* Why input was refused: the error to answer with and a sentence for people and logs
 * ("StatusNotification.status: \"Charged\" is not one of Available, Preparing, ..."). */
typedef struct pw_ocpp_fault {
    enum pw_ocpp_error code;
    char text[160];
} pw_ocpp_fault;

/* ---- frames -------------------------------------------------------------------------------- */

enum pw_ocpp_frame_kind {
    PW_OCPP_CALL = 2,
    PW_OCPP_RESULT = 3,
    PW_OCPP_ERROR = 4,
};

typedef struct pw_ocpp_frame {
    enum pw_ocpp_frame_kind kind;
    char id[PW_OCPP_ID_LEN];
    char action[PW_OCPP_ACTION_LEN]; /* CALL only */
    json_t *payload;                 /* CALL and RESULT: an object; ERROR: the details; owned */
    enum pw_ocpp_error error;        /* ERROR only */
    char error_text[128];            /* ERROR only: its description, cut to fit */
} pw_ocpp_frame;

/* Parses one WebSocket text message. Returns 0 with *out filled (free with
 * pw_ocpp_frame_clear), or -1 with fault filled and *out cleared; then, if the message was a
 * CALL whose id could be read, out->kind is PW_OCPP_CALL and out->id holds it, so the caller
 * can answer with a CALLERROR (FormationViolation for a frame of the wrong shape); otherwise
 * out->id is "" and the message cannot be answered. Ids longer than 36 characters, payloads
 * that are not objects, and messages longer than PW_OCPP_MAX_FRAME are refused; a CALL whose
 * action is longer than any action name gets NotImplemented. */
int pw_ocpp_frame_parse(const char *text, size_t len, pw_ocpp_frame *out, pw_ocpp_fault *fault);
void pw_ocpp_frame_clear(pw_ocpp_frame *f);

/* Frames as text, malloc'd and NUL-terminated (caller frees with free()); *len_out (may be NULL)
 * gets the length. They steal the payload reference; a NULL payload gives NULL. Numbers are
 * written with at most 3 decimals. */
char *pw_ocpp_call_text(const char *id, const char *action, json_t *payload, size_t *len_out);
char *pw_ocpp_result_text(const char *id, json_t *payload, size_t *len_out);
char *pw_ocpp_error_text(const char *id, enum pw_ocpp_error code, const char *description,
                         size_t *len_out);

/* ---- time ---------------------------------------------------------------------------------- */

/* RFC 3339 date-time ("2026-12-05T21:20:51Z", fractions and offsets accepted) to Unix ms.
 * Returns 0 or -1. */
int pw_ocpp_time_parse(const char *text, int64_t *ms_out);
/* Unix ms as "2026-12-05T21:20:51.000Z" into out (at least 25 bytes). */
void pw_ocpp_time_format(int64_t ms, char *out, size_t out_size);

/* ---- actions ------------------------------------------------------------------------------- */

enum pw_ocpp_action {
    PW_OCPP_A_UNKNOWN = 0,
    /* charge point -> central system */
    PW_OCPP_A_AUTHORIZE,
    PW_OCPP_A_BOOT_NOTIFICATION,
    PW_OCPP_A_DATA_TRANSFER,
    PW_OCPP_A_DIAGNOSTICS_STATUS,
    PW_OCPP_A_FIRMWARE_STATUS,
    PW_OCPP_A_HEARTBEAT,
    PW_OCPP_A_METER_VALUES,
    PW_OCPP_A_START_TRANSACTION,
    PW_OCPP_A_STATUS_NOTIFICATION,
    PW_OCPP_A_STOP_TRANSACTION,
    /* central system -> charge point (the ones phasewise sends) */
    PW_OCPP_A_CHANGE_AVAILABILITY,
    PW_OCPP_A_CHANGE_CONFIGURATION,
    PW_OCPP_A_CLEAR_CHARGING_PROFILE,
    PW_OCPP_A_GET_CONFIGURATION,
    PW_OCPP_A_REMOTE_START,
    PW_OCPP_A_REMOTE_STOP,
    PW_OCPP_A_RESET,
    PW_OCPP_A_SET_CHARGING_PROFILE,
    PW_OCPP_A_TRIGGER_MESSAGE,
    PW_OCPP_A_UNLOCK_CONNECTOR,
    PW_OCPP_A_COUNT
};

/* "BootNotification" and back (exact, case-sensitive); PW_OCPP_A_UNKNOWN if none. */
const char *pw_ocpp_action_name(enum pw_ocpp_action a);
enum pw_ocpp_action pw_ocpp_action_parse(const char *name);

/* ChargePointStatus of StatusNotification. */
enum pw_ocpp_status {
    PW_OCPP_AVAILABLE = 0,
    PW_OCPP_PREPARING,
    PW_OCPP_CHARGING,
    PW_OCPP_SUSPENDED_EVSE,
    PW_OCPP_SUSPENDED_EV,
    PW_OCPP_FINISHING,
    PW_OCPP_RESERVED,
    PW_OCPP_UNAVAILABLE,
    PW_OCPP_FAULTED,
};
const char *pw_ocpp_status_name(enum pw_ocpp_status s);

/* The status field of every *.conf that has one (ChangeConfiguration, SetChargingProfile,
 * TriggerMessage, ClearChargingProfile, DataTransfer, IdTagInfo, BootNotification ...). */
enum pw_ocpp_answer {
    PW_OCPP_ACCEPTED = 0,
    PW_OCPP_REJECTED,
    PW_OCPP_REBOOT_REQUIRED,
    PW_OCPP_ANSWER_NOT_SUPPORTED,
    PW_OCPP_ANSWER_NOT_IMPLEMENTED,
    PW_OCPP_ANSWER_UNKNOWN,     /* ClearChargingProfile: no such profile */
    PW_OCPP_PENDING,            /* BootNotification */
    PW_OCPP_BLOCKED,            /* IdTagInfo */
    PW_OCPP_EXPIRED,            /* IdTagInfo */
    PW_OCPP_INVALID,            /* IdTagInfo */
    PW_OCPP_CONCURRENT_TX,      /* IdTagInfo */
    PW_OCPP_UNKNOWN_MESSAGE_ID, /* DataTransfer */
    PW_OCPP_UNKNOWN_VENDOR_ID,  /* DataTransfer */
    PW_OCPP_SCHEDULED,          /* ChangeAvailability */
    PW_OCPP_UNLOCKED,           /* UnlockConnector */
    PW_OCPP_UNLOCK_FAILED,      /* UnlockConnector */
};
const char *pw_ocpp_answer_name(enum pw_ocpp_answer a);
/* The answer for its wire name (exact); -1 if none. */
int pw_ocpp_answer_parse(const char *name);

/* BootNotification.req */
typedef struct pw_ocpp_boot {
    char vendor[21];
    char model[21];
    char serial[26];     /* chargePointSerialNumber, "" if absent */
    char box_serial[26]; /* chargeBoxSerialNumber */
    char firmware[51];
    char meter_type[26];
    char meter_serial[26];
} pw_ocpp_boot;

/* StatusNotification.req */
typedef struct pw_ocpp_status_note {
    int connector; /* 0 = the whole charge point */
    enum pw_ocpp_status status;
    char error_code[32]; /* ChargePointErrorCode ("NoError") */
    char info[51];
    char vendor_error[51];
    int64_t timestamp_ms; /* 0 if absent */
} pw_ocpp_status_note;

/* What one MeterValues.req (or StopTransaction's transactionData) says, reduced to what the
 * balancer uses: the newest meterValue's samples, converted to A, Wh and W. Phase labels are
 * read leniently: "L1", "L1-N" are line 1; "N" and line-to-line labels are ignored for
 * currents; a current without a phase counts as unphased. Samples in signed format, of other
 * measurands, or with values that are not finite numbers are skipped (counted in skipped).
 * Energy and power reported only per phase are summed. */
typedef struct pw_ocpp_meter {
    int connector;
    char tx_id[PW_OCPP_TXID_LEN]; /* "" if none */
    int64_t timestamp_ms;
    bool has_current[3];
    double current_a[3]; /* Current.Import per phase of the charger's terminals L1..L3 */
    bool has_current_total;
    double current_total_a; /* Current.Import without a phase */
    bool has_offered;
    double offered_a; /* Current.Offered */
    bool has_energy;
    uint64_t energy_wh; /* Energy.Active.Import.Register */
    bool has_power;
    double power_w; /* Power.Active.Import */
    unsigned skipped;
} pw_ocpp_meter;

typedef struct pw_ocpp_start_tx {
    int connector;
    char id_tag[PW_OCPP_TAG_LEN];
    int64_t meter_start_wh;
    bool has_reservation;
    int reservation_id;
    int64_t timestamp_ms;
} pw_ocpp_start_tx;

typedef struct pw_ocpp_stop_tx {
    char tx_id[PW_OCPP_TXID_LEN];
    char id_tag[PW_OCPP_TAG_LEN]; /* "" if absent */
    int64_t meter_stop_wh;
    int64_t timestamp_ms;
    char reason[24]; /* Reason enum, "" if absent */
} pw_ocpp_stop_tx;

typedef struct pw_ocpp_data_transfer {
    char vendor_id[256];
    char message_id[51];
    const char *data; /* borrowed from the frame's payload; NULL if absent */
} pw_ocpp_data_transfer;

/* A CALL from a charge point, checked against its schema and read into a typed view. */
typedef struct pw_ocpp_call {
    enum pw_ocpp_action action;
    union {
        pw_ocpp_boot boot;
        pw_ocpp_status_note status;
        pw_ocpp_meter meter;
        pw_ocpp_start_tx start;
        pw_ocpp_stop_tx stop;
        char id_tag[PW_OCPP_TAG_LEN]; /* Authorize */
        pw_ocpp_data_transfer data;
        char text[64]; /* DiagnosticsStatusNotification / FirmwareStatusNotification status */
    } u;
} pw_ocpp_call;

/* Reads a CALL frame from a charge point. Returns 0, or -1 with the CALLERROR to answer in
 * fault: NotImplemented for an action that is not in OCPP 1.6, NotSupported for one a central
 * system does not take (a central-system action sent by a charge point), FormationViolation,
 * OccurenceConstraintViolation, TypeConstraintViolation or PropertyConstraintViolation for a
 * payload that breaks the action's schema. Borrowed pointers in out live as long as f. */
int pw_ocpp_decode_call(const pw_ocpp_frame *f, pw_ocpp_call *out, pw_ocpp_fault *fault);

/* ---- central system -> charge point: what phasewise sends -------------------------------- */

enum pw_ocpp_purpose {
    PW_OCPP_CHARGE_POINT_MAX = 0,
    PW_OCPP_TX_DEFAULT,
    PW_OCPP_TX,
};
enum pw_ocpp_profile_kind {
    PW_OCPP_ABSOLUTE = 0,
    PW_OCPP_RELATIVE,
    PW_OCPP_RECURRING, /* daily */
    PW_OCPP_RECURRING_WEEKLY,
};

/* A charging profile with one schedule period in amperes (all phasewise needs), and the one a
 * charge point reads back from SetChargingProfile (up to PW_OCPP_MAX_PERIODS periods). */
#define PW_OCPP_MAX_PERIODS 8
typedef struct pw_ocpp_period {
    int32_t start_s;
    double limit_a;
    uint8_t phases; /* numberPhases; 0 = absent (the charge point's default, 3) */
} pw_ocpp_period;

typedef struct pw_ocpp_profile {
    int connector; /* 0 = the whole charge point */
    int id;        /* chargingProfileId */
    int stack_level;
    enum pw_ocpp_purpose purpose;
    enum pw_ocpp_profile_kind kind;
    char tx_id[PW_OCPP_TXID_LEN]; /* TxProfile: the transaction it belongs to */
    int64_t start_ms;             /* startSchedule; 0 = absent (needed for Absolute/Recurring) */
    int32_t duration_s;           /* 0 = absent */
    size_t n_periods;
    pw_ocpp_period periods[PW_OCPP_MAX_PERIODS];
    bool watts; /* chargingRateUnit "W" (read only: phasewise always sends "A") */
} pw_ocpp_profile;

/* Payloads (new references, caller owns). Limits are written with one decimal. Strings must
 * fit the schema's lengths (the config checks them); a tx_id that is not a decimal integer
 * (1.6's transactionId) makes pw_ocpp_set_profile_req return NULL. */
json_t *pw_ocpp_set_profile_req(const pw_ocpp_profile *p);
/* id, connector, stack_level < 0: left out (clear by the other criteria; all out: clear all). */
json_t *pw_ocpp_clear_profile_req(int id, int connector, bool has_purpose,
                                  enum pw_ocpp_purpose purpose, int stack_level);
json_t *pw_ocpp_get_configuration_req(const char *const *keys, size_t n); /* n = 0: all */
json_t *pw_ocpp_change_configuration_req(const char *key, const char *value);
/* requestedMessage ("MeterValues", "StatusNotification", "BootNotification", ...); connector
 * < 0: absent. NULL if message is not one of the schema's MessageTrigger values. */
json_t *pw_ocpp_trigger_req(const char *message, int connector);

/* The charge point's answers to them. */
typedef struct pw_ocpp_config_key {
    char key[51];
    bool readonly;
    bool has_value;
    char value[501];
} pw_ocpp_config_key;

typedef struct pw_ocpp_config_answer {
    size_t n_keys; /* at most PW_OCPP_MAX_KEYS kept; more are counted in n_dropped */
    size_t n_dropped;
    pw_ocpp_config_key keys[PW_OCPP_MAX_KEYS];
    size_t n_unknown;
    char unknown[8][51];
} pw_ocpp_config_answer;

/* Reads the RESULT payload of a call phasewise sent: the status of ChangeConfiguration,
 * SetChargingProfile, ClearChargingProfile, TriggerMessage, ChangeAvailability, RemoteStart/
 * Stop, Reset, UnlockConnector into *status; GetConfiguration into *config (may be NULL for the
 * others). Returns 0, or -1 with the schema violation in fault (the answer is then ignored).
 * Any action is taken (its .conf schema is checked); an answer without a status field sets
 * *status to PW_OCPP_ACCEPTED. GetConfiguration: keys past PW_OCPP_MAX_KEYS, unknown keys past
 * 8, and keys or values longer in UTF-8 bytes than the fields here hold are counted in
 * n_dropped. */
int pw_ocpp_decode_result(enum pw_ocpp_action call, const json_t *payload,
                          enum pw_ocpp_answer *status, pw_ocpp_config_answer *config,
                          pw_ocpp_fault *fault);

/* Answers phasewise gives to a charge point's calls (new references). */
json_t *pw_ocpp_boot_conf(enum pw_ocpp_answer status, int64_t now_ms, int interval_s);
json_t *pw_ocpp_heartbeat_conf(int64_t now_ms);
json_t *pw_ocpp_empty_conf(void); /* StatusNotification, MeterValues, *StatusNotification */
/* idTagInfo with status (and no expiry): Authorize, StartTransaction (with tx_id: an integer
 * in 1.6; must be digits, else NULL is returned), StopTransaction (tx_id NULL; idTagInfo
 * omitted when status < 0). A status its schema does not have is sent as the nearest one that
 * it does: Invalid in idTagInfo (Rejected, ...), Rejected in BootNotification and DataTransfer. */
json_t *pw_ocpp_authorize_conf(enum pw_ocpp_answer status);
json_t *pw_ocpp_start_conf(const char *tx_id, enum pw_ocpp_answer status);
json_t *pw_ocpp_stop_conf(int status);
json_t *pw_ocpp_data_transfer_conf(enum pw_ocpp_answer status);

/* ---- charge point side (the simulator) ----------------------------------------------------- */

/* Calls a charge point makes (new references). meter: only the has_* values are written, each
 * as a sampledValue with its measurand, unit and phase, in one meterValue at timestamp_ms.
 * Empty strings are left out where the field is optional. A tx_id that is not a decimal
 * integer makes pw_ocpp_meter_req (when not "") and pw_ocpp_stop_req return NULL. */
json_t *pw_ocpp_boot_req(const pw_ocpp_boot *b);
json_t *pw_ocpp_heartbeat_req(void);
json_t *pw_ocpp_status_req(const pw_ocpp_status_note *s);
json_t *pw_ocpp_meter_req(const pw_ocpp_meter *m);
json_t *pw_ocpp_start_req(const pw_ocpp_start_tx *s);
json_t *pw_ocpp_stop_req(const pw_ocpp_stop_tx *s);
json_t *pw_ocpp_authorize_req(const char *id_tag);

/* A central system's CALL to a charge point, read by the charge point side. */
typedef struct pw_ocpp_cs_call {
    enum pw_ocpp_action action;
    union {
        pw_ocpp_profile profile; /* SetChargingProfile */
        struct {
            bool has_id, has_connector, has_purpose, has_stack_level;
            int id, connector, stack_level;
            enum pw_ocpp_purpose purpose;
        } clear; /* ClearChargingProfile */
        struct {
            size_t n;
            char keys[PW_OCPP_MAX_KEYS][51];
        } get_config;
        struct {
            char key[51];
            char value[501];
        } change_config;
        struct {
            char message[32];
            int connector; /* -1 if absent */
        } trigger;
    } u;
} pw_ocpp_cs_call;

/* Reads a CALL frame from a central system (the charge point side). Same contract as
 * pw_ocpp_decode_call. */
int pw_ocpp_decode_cs_call(const pw_ocpp_frame *f, pw_ocpp_cs_call *out, pw_ocpp_fault *fault);

/* Reads the RESULT payload a central system gave to a charge point's call: the status
 * (BootNotification, Authorize, Start/StopTransaction's idTagInfo, DataTransfer), the
 * heartbeat interval of BootNotification in *interval_s, and StartTransaction's transaction id
 * in tx_id (PW_OCPP_TXID_LEN). Pointers may be NULL when not wanted. Returns 0 or -1 with the
 * schema violation in fault. */
int pw_ocpp_decode_cp_result(enum pw_ocpp_action call, const json_t *payload,
                             enum pw_ocpp_answer *status, int *interval_s, char *tx_id,
                             pw_ocpp_fault *fault);

/* ChargePointStatus from its name; -1 if none. */
int pw_ocpp_status_parse(const char *name);

/* ---- schemas ------------------------------------------------------------------------------- */

/* Checks a payload against the OCPP 1.6 JSON schema of an action's request (conf false) or
 * answer (conf true), with the same rules and error codes the decoders use, and the ranges
 * phasewise adds (integers that fit the fields here; connectorId >= 0, >= 1 in
 * StartTransaction; numberPhases 1..3).
 * Returns 0, or -1 with the first violation in fault (NotImplemented for PW_OCPP_A_UNKNOWN).
 * For tests and for checking what is sent. */
int pw_ocpp_check_payload(enum pw_ocpp_action a, bool conf, const json_t *payload,
                          pw_ocpp_fault *fault);

#endif
