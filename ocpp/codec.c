/* OCPP 1.6J codec: RPC frames, one table-driven checker that holds every payload to the official
 * OCPP 1.6 JSON schemas (ocpp-rpc's ocpp1_6.json), typed views of what is read and builders of
 * what is sent. Pure: jansson only, no clock, no libc time zone state. */
#include "pw_ocpp.h"

#include "pw_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names --------------------------------------------------------------------------------- */

static const char *const error_names[] = {
    [PW_OCPP_NOT_IMPLEMENTED] = "NotImplemented",
    [PW_OCPP_NOT_SUPPORTED] = "NotSupported",
    [PW_OCPP_INTERNAL_ERROR] = "InternalError",
    [PW_OCPP_PROTOCOL_ERROR] = "ProtocolError",
    [PW_OCPP_SECURITY_ERROR] = "SecurityError",
    [PW_OCPP_FORMATION_VIOLATION] = "FormationViolation",
    [PW_OCPP_PROPERTY_CONSTRAINT] = "PropertyConstraintViolation",
    [PW_OCPP_OCCURENCE_CONSTRAINT] = "OccurenceConstraintViolation",
    [PW_OCPP_TYPE_CONSTRAINT] = "TypeConstraintViolation",
    [PW_OCPP_GENERIC_ERROR] = "GenericError",
};

/* PW_OCPP_OK has no wire name; GenericError keeps a CALLERROR built from it valid. */
const char *pw_ocpp_error_name(enum pw_ocpp_error e)
{
    if ((size_t)e >= PW_ARRAY_LEN(error_names) || !error_names[e])
        return "GenericError";
    return error_names[e];
}

enum pw_ocpp_error pw_ocpp_error_parse(const char *name)
{
    for (size_t i = 1; i < PW_ARRAY_LEN(error_names); i++) {
        if (strcmp(name, error_names[i]) == 0)
            return (enum pw_ocpp_error)i;
    }
    /* OCPP 2.0's spellings, which some 1.6 stacks (ocpp-rpc among them) send too. */
    if (strcmp(name, "FormatViolation") == 0)
        return PW_OCPP_FORMATION_VIOLATION;
    if (strcmp(name, "OccurrenceConstraintViolation") == 0)
        return PW_OCPP_OCCURENCE_CONSTRAINT;
    return PW_OCPP_GENERIC_ERROR;
}

static const char *const action_names[PW_OCPP_A_COUNT] = {
    [PW_OCPP_A_AUTHORIZE] = "Authorize",
    [PW_OCPP_A_BOOT_NOTIFICATION] = "BootNotification",
    [PW_OCPP_A_DATA_TRANSFER] = "DataTransfer",
    [PW_OCPP_A_DIAGNOSTICS_STATUS] = "DiagnosticsStatusNotification",
    [PW_OCPP_A_FIRMWARE_STATUS] = "FirmwareStatusNotification",
    [PW_OCPP_A_HEARTBEAT] = "Heartbeat",
    [PW_OCPP_A_METER_VALUES] = "MeterValues",
    [PW_OCPP_A_START_TRANSACTION] = "StartTransaction",
    [PW_OCPP_A_STATUS_NOTIFICATION] = "StatusNotification",
    [PW_OCPP_A_STOP_TRANSACTION] = "StopTransaction",
    [PW_OCPP_A_CHANGE_AVAILABILITY] = "ChangeAvailability",
    [PW_OCPP_A_CHANGE_CONFIGURATION] = "ChangeConfiguration",
    [PW_OCPP_A_CLEAR_CHARGING_PROFILE] = "ClearChargingProfile",
    [PW_OCPP_A_GET_CONFIGURATION] = "GetConfiguration",
    [PW_OCPP_A_REMOTE_START] = "RemoteStartTransaction",
    [PW_OCPP_A_REMOTE_STOP] = "RemoteStopTransaction",
    [PW_OCPP_A_RESET] = "Reset",
    [PW_OCPP_A_SET_CHARGING_PROFILE] = "SetChargingProfile",
    [PW_OCPP_A_TRIGGER_MESSAGE] = "TriggerMessage",
    [PW_OCPP_A_UNLOCK_CONNECTOR] = "UnlockConnector",
};

/* The other actions of OCPP 1.6 and its security extension (all in ocpp1_6.json): known, so a
 * call of one is NotSupported rather than NotImplemented. */
static const char *const other_actions[] = {
    "CancelReservation",
    "CertificateSigned",
    "ClearCache",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetCompositeSchedule",
    "GetDiagnostics",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "InstallCertificate",
    "LogStatusNotification",
    "ReserveNow",
    "SecurityEventNotification",
    "SendLocalList",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "SignedUpdateFirmware",
    "UpdateFirmware",
};

const char *pw_ocpp_action_name(enum pw_ocpp_action a)
{
    if ((size_t)a >= PW_OCPP_A_COUNT || !action_names[a])
        return "";
    return action_names[a];
}

enum pw_ocpp_action pw_ocpp_action_parse(const char *name)
{
    for (size_t i = 1; i < PW_OCPP_A_COUNT; i++) {
        if (strcmp(name, action_names[i]) == 0)
            return (enum pw_ocpp_action)i;
    }
    return PW_OCPP_A_UNKNOWN;
}

static bool is_other_action(const char *name)
{
    for (size_t i = 0; i < PW_ARRAY_LEN(other_actions); i++) {
        if (strcmp(name, other_actions[i]) == 0)
            return true;
    }
    return false;
}

static const char *const status_names[] = {
    "Available", "Preparing", "Charging",    "SuspendedEVSE", "SuspendedEV",
    "Finishing", "Reserved",  "Unavailable", "Faulted",       NULL,
};

const char *pw_ocpp_status_name(enum pw_ocpp_status s)
{
    if ((size_t)s >= PW_ARRAY_LEN(status_names) - 1)
        return "";
    return status_names[s];
}

static int list_index(const char *const *list, const char *name)
{
    for (int i = 0; list[i]; i++) {
        if (strcmp(list[i], name) == 0)
            return i;
    }
    return -1;
}

int pw_ocpp_status_parse(const char *name)
{
    return list_index(status_names, name);
}

static const char *const answer_names[] = {
    [PW_OCPP_ACCEPTED] = "Accepted",
    [PW_OCPP_REJECTED] = "Rejected",
    [PW_OCPP_REBOOT_REQUIRED] = "RebootRequired",
    [PW_OCPP_ANSWER_NOT_SUPPORTED] = "NotSupported",
    [PW_OCPP_ANSWER_NOT_IMPLEMENTED] = "NotImplemented",
    [PW_OCPP_ANSWER_UNKNOWN] = "Unknown",
    [PW_OCPP_PENDING] = "Pending",
    [PW_OCPP_BLOCKED] = "Blocked",
    [PW_OCPP_EXPIRED] = "Expired",
    [PW_OCPP_INVALID] = "Invalid",
    [PW_OCPP_CONCURRENT_TX] = "ConcurrentTx",
    [PW_OCPP_UNKNOWN_MESSAGE_ID] = "UnknownMessageId",
    [PW_OCPP_UNKNOWN_VENDOR_ID] = "UnknownVendorId",
    [PW_OCPP_SCHEDULED] = "Scheduled",
    [PW_OCPP_UNLOCKED] = "Unlocked",
    [PW_OCPP_UNLOCK_FAILED] = "UnlockFailed",
    NULL,
};

const char *pw_ocpp_answer_name(enum pw_ocpp_answer a)
{
    if ((size_t)a >= PW_ARRAY_LEN(answer_names) - 1)
        return "";
    return answer_names[a];
}

int pw_ocpp_answer_parse(const char *name)
{
    return list_index(answer_names, name);
}

/* ---- text helpers -------------------------------------------------------------------------- */

/* Characters (code points) of valid UTF-8, as JSON Schema's maxLength counts them. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Copies src into dst (size > 0), cut at a character boundary if it does not fit. Returns
 * whether all of it fit. */
static bool copy_utf8(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);
    if (len < size) {
        memcpy(dst, src, len + 1);
        return true;
    }
    size_t cut = size - 1;
    while (cut > 0 && ((unsigned char)src[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(dst, src, cut);
    dst[cut] = '\0';
    return false;
}

/* Input shown in a fault text: at most 24 characters, control characters and quotes as '?', so
 * a peer cannot write lines into our logs. */
static void show(char *dst, size_t size, const char *src)
{
    size_t o = 0, chars = 0;
    const char *p = src;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        /* At a character's first byte: room for the longest character and the "..."? */
        if ((c & 0xC0) != 0x80 && (++chars > 24 || o + 4 + 4 > size))
            break;
        dst[o++] = c < 0x20 || c == 0x7F || c == '"' || c == '\\' ? '?' : (char)c;
    }
    dst[o] = '\0';
    if (*p)
        memcpy(dst + o, "...", 4);
}

static int fail(pw_ocpp_fault *fault, enum pw_ocpp_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(pw_ocpp_fault *fault, enum pw_ocpp_error code, const char *fmt, ...)
{
    if (fault) {
        fault->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fault->text, sizeof fault->text, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static json_t *must(json_t *v)
{
    if (!v) {
        pw_error("ocpp", "out of memory building a message");
        abort();
    }
    return v;
}

/* A JSON string for our own text; bytes that are not UTF-8 become '?' so the field is never
 * lost (jansson refuses invalid UTF-8). */
static json_t *jstr(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v)
        return v;
    char *copy = pw_xstrdup(s);
    for (char *p = copy; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    }
    v = must(json_string(copy));
    free(copy);
    return v;
}

static void set(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, must(v)) != 0)
        must(NULL);
}

static void set_str_opt(json_t *obj, const char *key, const char *s)
{
    if (s && s[0])
        set(obj, key, jstr(s));
}

static void push(json_t *arr, json_t *v)
{
    if (json_array_append_new(arr, must(v)) != 0)
        must(NULL);
}

/* 1.6 transaction ids are integers on the wire; inside they are decimal text. */
static bool txid_to_int(const char *s, json_int_t *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '\0' || strlen(p) > 18)
        return false;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
    }
    *out = (json_int_t)strtoll(s, NULL, 10);
    return true;
}

/* ---- time ---------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), so no
 * mktime/timegm and no TZ. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y_out, int *m_out, int *d_out)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y_out = (int)(yoe + era * 400 + (m <= 2));
    *m_out = m;
    *d_out = d;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* n decimal digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* The grammar of ajv-formats' "date-time" (what ocpp-rpc checks): RFC 3339 with 'T', 't' or a
 * space between date and time, any number of fraction digits, and a zone of Z, +hh:mm, +hhmm
 * or +hh. A leap second (:60) is taken only at 23:59 UTC and reads as the second before. */
int pw_ocpp_time_parse(const char *text, int64_t *ms_out)
{
    const char *p = text;
    int y, mo, d, h, mi, s, zh = 0, zm = 0, sign = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
        !digits(&p, 2, &s))
        return -1;
    if (h > 23 || mi > 59 || s > 60)
        return -1;
    int ms = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
        }
        /* Fewer than 3 digits: scale up (".5" is 500 ms); more are cut. */
        for (; n < 3; n++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (!digits(&p, 2, &zh))
            return -1;
        /* Minutes are optional, the colon before them too; a colon needs them. */
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &zm))
                return -1;
        } else if (*p >= '0' && *p <= '9' && !digits(&p, 2, &zm)) {
            return -1;
        }
        if (zh > 23 || zm > 59)
            return -1;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    int64_t offset_min = sign * (zh * 60 + zm);
    if (s == 60) {
        int64_t utc_min = ((int64_t)h * 60 + mi - offset_min) % 1440;
        if (utc_min < 0)
            utc_min += 1440;
        if (utc_min != 23 * 60 + 59)
            return -1;
        s = 59;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
    *ms_out = secs * 1000 + ms;
    return 0;
}

void pw_ocpp_time_format(int64_t ms, char *out, size_t out_size)
{
    /* Years 0000..9999, the range the format can hold. */
    const int64_t lo = days_from_civil(0, 1, 1) * 86400000;
    const int64_t hi = days_from_civil(10000, 1, 1) * 86400000 - 1;
    if (ms < lo)
        ms = lo;
    if (ms > hi)
        ms = hi;
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86400000 - 1) / 86400000);
    int64_t rem = ms - days * 86400000;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, out_size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, (int)(rem / 3600000),
             (int)(rem / 60000 % 60), (int)(rem / 1000 % 60), (int)(rem % 1000));
}

static json_t *jtime(int64_t ms)
{
    char buf[32];
    pw_ocpp_time_format(ms, buf, sizeof buf);
    return jstr(buf);
}

/* ---- schemas ------------------------------------------------------------------------------- */

/* The checker's error codes (OCPP-J 1.6 section 4.2.3), one per JSON Schema rule:
 *   payload (or a nested object or array) of the wrong JSON type, or not JSON ...
 * FormationViolation a required property missing .................................
 * OccurenceConstraintViolation a property the schema does not list (additionalProperties false) ...
 * OccurenceConstraintViol. more array items than phasewise keeps .........................
 * OccurenceConstraintViolation a string, integer, number or boolean of the wrong JSON type ...
 * TypeConstraintViolation maxLength, enum, date-time format, multipleOf, and the ranges phasewise
 * adds (integers that fit its fields, connectorId >= 0, numberPhases 1..3) ...
 *                                                                  PropertyConstraintViolation
 * ocpp-rpc's strict mode differs in spelling only where 1.6 is vague (it answers maxLength with
 * FormatViolation and an unknown property with PropertyConstraintViolation); the spec's text
 * ("occurence constraints" are about how often a field occurs) is followed here.
 * "integer" is JSON Schema's: 5 and 5.0 both are; a number with a fraction is not. maxLength
 * counts characters, not bytes. */

enum kind { K_STR = 1, K_TIME, K_INT, K_NUM, K_BOOL, K_OBJ, K_ARR };

typedef struct spec spec;
typedef struct field {
    const char *name;
    enum kind kind;
    bool required;
    unsigned max_len;          /* K_STR: at most this many characters; 0 = any */
    const char *const *one_of; /* K_STR: the enum, NULL-terminated; NULL = any */
    int64_t min, max;          /* K_INT: the range */
    bool tenth;                /* K_NUM: multipleOf 0.1 */
    const spec *obj;           /* K_OBJ: its properties */
    const struct field *item;  /* K_ARR: its items */
} field;

struct spec {
    const field *f;
    size_t n;
};

/* clang-format off */
#define REQ true
#define OPT false
#define F_STR(nm, rq, len)  {.name = nm, .kind = K_STR, .required = rq, .max_len = len}
#define F_ENUM(nm, rq, e)   {.name = nm, .kind = K_STR, .required = rq, .one_of = e}
#define F_TIME(nm, rq)      {.name = nm, .kind = K_TIME, .required = rq}
#define F_INT(nm, rq, a, b) {.name = nm, .kind = K_INT, .required = rq, .min = a, .max = b}
#define F_I32(nm, rq)       F_INT(nm, rq, INT32_MIN, INT32_MAX)
/* Energy registers and transaction ids: kept in 64 bits; exact in a double up to 2^53. */
#define F_I64(nm, rq)       F_INT(nm, rq, -(INT64_C(1) << 53), INT64_C(1) << 53)
#define CONNECTOR(nm, rq)   F_INT(nm, rq, 0, INT32_MAX)
#define F_TENTH(nm, rq)     {.name = nm, .kind = K_NUM, .required = rq, .tenth = true}
#define F_BOOL(nm, rq)      {.name = nm, .kind = K_BOOL, .required = rq}
#define F_OBJ(nm, rq, s)    {.name = nm, .kind = K_OBJ, .required = rq, .obj = &s}
#define F_ARR(nm, rq, it)   {.name = nm, .kind = K_ARR, .required = rq, .item = &it}
#define SPEC(var, ...)                                                                             \
    static const field var##_f[] = {__VA_ARGS__};                                                  \
    static const spec var = {var##_f, PW_ARRAY_LEN(var##_f)}
/* clang-format on */

static const spec empty = {NULL, 0};

static const char *const id_status_e[] = {"Accepted", "Blocked",      "Expired",
                                          "Invalid",  "ConcurrentTx", NULL};
static const char *const boot_status_e[] = {"Accepted", "Pending", "Rejected", NULL};
static const char *const error_code_e[] = {"ConnectorLockFailure",
                                           "EVCommunicationError",
                                           "GroundFailure",
                                           "HighTemperature",
                                           "InternalError",
                                           "LocalListConflict",
                                           "NoError",
                                           "OtherError",
                                           "OverCurrentFailure",
                                           "PowerMeterFailure",
                                           "PowerSwitchFailure",
                                           "ReaderFailure",
                                           "ResetFailure",
                                           "UnderVoltage",
                                           "OverVoltage",
                                           "WeakSignal",
                                           NULL};
static const char *const context_e[] = {"Interruption.Begin",
                                        "Interruption.End",
                                        "Sample.Clock",
                                        "Sample.Periodic",
                                        "Transaction.Begin",
                                        "Transaction.End",
                                        "Trigger",
                                        "Other",
                                        NULL};
static const char *const format_e[] = {"Raw", "SignedData", NULL};
static const char *const measurand_e[] = {"Energy.Active.Export.Register",
                                          "Energy.Active.Import.Register",
                                          "Energy.Reactive.Export.Register",
                                          "Energy.Reactive.Import.Register",
                                          "Energy.Active.Export.Interval",
                                          "Energy.Active.Import.Interval",
                                          "Energy.Reactive.Export.Interval",
                                          "Energy.Reactive.Import.Interval",
                                          "Power.Active.Export",
                                          "Power.Active.Import",
                                          "Power.Offered",
                                          "Power.Reactive.Export",
                                          "Power.Reactive.Import",
                                          "Power.Factor",
                                          "Current.Import",
                                          "Current.Export",
                                          "Current.Offered",
                                          "Voltage",
                                          "Frequency",
                                          "Temperature",
                                          "SoC",
                                          "RPM",
                                          NULL};
static const char *const phase_e[] = {"L1",   "L2",    "L3",    "N",     "L1-N", "L2-N",
                                      "L3-N", "L1-L2", "L2-L3", "L3-L1", NULL};
static const char *const location_e[] = {"Cable", "EV", "Inlet", "Outlet", "Body", NULL};
static const char *const unit_e[] = {"Wh", "kWh",     "varh",    "kvarh",      "W",       "kW",
                                     "VA", "kVA",     "var",     "kvar",       "A",       "V",
                                     "K",  "Celcius", "Celsius", "Fahrenheit", "Percent", NULL};
static const char *const reason_e[] = {"EmergencyStop", "EVDisconnected", "HardReset",    "Local",
                                       "Other",         "PowerLoss",      "Reboot",       "Remote",
                                       "SoftReset",     "UnlockCommand",  "DeAuthorized", NULL};
static const char *const diag_status_e[] = {"Idle", "Uploaded", "UploadFailed", "Uploading", NULL};
static const char *const fw_status_e[] = {
    "Downloaded",         "DownloadFailed", "Downloading", "Idle",
    "InstallationFailed", "Installing",     "Installed",   NULL};
static const char *const purpose_e[] = {"ChargePointMaxProfile", "TxDefaultProfile", "TxProfile",
                                        NULL};
static const char *const kind_e[] = {"Absolute", "Recurring", "Relative", NULL};
static const char *const recurrency_e[] = {"Daily", "Weekly", NULL};
static const char *const rate_unit_e[] = {"A", "W", NULL};
static const char *const trigger_e[] = {"BootNotification",
                                        "DiagnosticsStatusNotification",
                                        "FirmwareStatusNotification",
                                        "Heartbeat",
                                        "MeterValues",
                                        "StatusNotification",
                                        NULL};
static const char *const availability_e[] = {"Inoperative", "Operative", NULL};
static const char *const reset_e[] = {"Hard", "Soft", NULL};
static const char *const accepted_rejected_e[] = {"Accepted", "Rejected", NULL};
static const char *const change_config_status_e[] = {"Accepted", "Rejected", "RebootRequired",
                                                     "NotSupported", NULL};
static const char *const set_profile_status_e[] = {"Accepted", "Rejected", "NotSupported", NULL};
static const char *const clear_status_e[] = {"Accepted", "Unknown", NULL};
static const char *const trigger_status_e[] = {"Accepted", "Rejected", "NotImplemented", NULL};
static const char *const availability_status_e[] = {"Accepted", "Rejected", "Scheduled", NULL};
static const char *const unlock_status_e[] = {"Unlocked", "UnlockFailed", "NotSupported", NULL};
static const char *const data_status_e[] = {"Accepted", "Rejected", "UnknownMessageId",
                                            "UnknownVendorId", NULL};

/* clang-format off */
SPEC(id_tag_info,
     F_TIME("expiryDate", OPT),
     F_STR("parentIdTag", OPT, 20),
     F_ENUM("status", REQ, id_status_e));

SPEC(sampled_value,
     {.name = "value", .kind = K_STR, .required = REQ},
     F_ENUM("context", OPT, context_e),
     F_ENUM("format", OPT, format_e),
     F_ENUM("measurand", OPT, measurand_e),
     F_ENUM("phase", OPT, phase_e),
     F_ENUM("location", OPT, location_e),
     F_ENUM("unit", OPT, unit_e));
static const field sampled_value_item = {.kind = K_OBJ, .obj = &sampled_value};
SPEC(meter_value,
     F_TIME("timestamp", REQ),
     F_ARR("sampledValue", REQ, sampled_value_item));
static const field meter_value_item = {.kind = K_OBJ, .obj = &meter_value};

SPEC(schedule_period,
     F_INT("startPeriod", REQ, INT32_MIN, INT32_MAX),
     F_TENTH("limit", REQ),
     F_INT("numberPhases", OPT, 1, 3));
static const field schedule_period_item = {.kind = K_OBJ, .obj = &schedule_period};
SPEC(charging_schedule,
     F_I32("duration", OPT),
     F_TIME("startSchedule", OPT),
     F_ENUM("chargingRateUnit", REQ, rate_unit_e),
     F_ARR("chargingSchedulePeriod", REQ, schedule_period_item),
     F_TENTH("minChargingRate", OPT));
SPEC(charging_profile,
     F_I32("chargingProfileId", REQ),
     F_I64("transactionId", OPT),
     F_I32("stackLevel", REQ),
     F_ENUM("chargingProfilePurpose", REQ, purpose_e),
     F_ENUM("chargingProfileKind", REQ, kind_e),
     F_ENUM("recurrencyKind", OPT, recurrency_e),
     F_TIME("validFrom", OPT),
     F_TIME("validTo", OPT),
     F_OBJ("chargingSchedule", REQ, charging_schedule));

static const field key50_item = {.kind = K_STR, .max_len = 50};
SPEC(config_key,
     F_STR("key", REQ, 50),
     F_BOOL("readonly", REQ),
     F_STR("value", OPT, 500));
static const field config_key_item = {.kind = K_OBJ, .obj = &config_key};

/* charge point -> central system */
SPEC(authorize_req, F_STR("idTag", REQ, 20));
SPEC(authorize_conf, F_OBJ("idTagInfo", REQ, id_tag_info));
SPEC(boot_req,
     F_STR("chargePointVendor", REQ, 20),
     F_STR("chargePointModel", REQ, 20),
     F_STR("chargePointSerialNumber", OPT, 25),
     F_STR("chargeBoxSerialNumber", OPT, 25),
     F_STR("firmwareVersion", OPT, 50),
     F_STR("iccid", OPT, 20),
     F_STR("imsi", OPT, 20),
     F_STR("meterType", OPT, 25),
     F_STR("meterSerialNumber", OPT, 25));
SPEC(boot_conf,
     F_ENUM("status", REQ, boot_status_e),
     F_TIME("currentTime", REQ),
     F_I32("interval", REQ));
SPEC(data_req,
     F_STR("vendorId", REQ, 255),
     F_STR("messageId", OPT, 50),
     F_STR("data", OPT, 0));
SPEC(data_conf,
     F_ENUM("status", REQ, data_status_e),
     F_STR("data", OPT, 0));
SPEC(diag_req, F_ENUM("status", REQ, diag_status_e));
SPEC(fw_req, F_ENUM("status", REQ, fw_status_e));
SPEC(heartbeat_conf, F_TIME("currentTime", REQ));
SPEC(meter_req,
     CONNECTOR("connectorId", REQ),
     F_I64("transactionId", OPT),
     F_ARR("meterValue", REQ, meter_value_item));
SPEC(start_req,
     F_INT("connectorId", REQ, 1, INT32_MAX),
     F_STR("idTag", REQ, 20),
     F_I64("meterStart", REQ),
     F_I32("reservationId", OPT),
     F_TIME("timestamp", REQ));
SPEC(start_conf,
     F_OBJ("idTagInfo", REQ, id_tag_info),
     F_I64("transactionId", REQ));
SPEC(status_req,
     CONNECTOR("connectorId", REQ),
     F_ENUM("errorCode", REQ, error_code_e),
     F_STR("info", OPT, 50),
     F_ENUM("status", REQ, status_names),
     F_TIME("timestamp", OPT),
     F_STR("vendorId", OPT, 255),
     F_STR("vendorErrorCode", OPT, 50));
SPEC(stop_req,
     F_STR("idTag", OPT, 20),
     F_I64("meterStop", REQ),
     F_TIME("timestamp", REQ),
     F_I64("transactionId", REQ),
     F_ENUM("reason", OPT, reason_e),
     F_ARR("transactionData", OPT, meter_value_item));
SPEC(stop_conf, F_OBJ("idTagInfo", OPT, id_tag_info));

/* central system -> charge point */
SPEC(change_availability_req,
     CONNECTOR("connectorId", REQ),
     F_ENUM("type", REQ, availability_e));
SPEC(change_availability_conf, F_ENUM("status", REQ, availability_status_e));
SPEC(change_config_req,
     F_STR("key", REQ, 50),
     F_STR("value", REQ, 500));
SPEC(change_config_conf, F_ENUM("status", REQ, change_config_status_e));
SPEC(clear_profile_req,
     F_I32("id", OPT),
     CONNECTOR("connectorId", OPT),
     F_ENUM("chargingProfilePurpose", OPT, purpose_e),
     F_I32("stackLevel", OPT));
SPEC(clear_profile_conf, F_ENUM("status", REQ, clear_status_e));
SPEC(get_config_req, F_ARR("key", OPT, key50_item));
SPEC(get_config_conf,
     F_ARR("configurationKey", OPT, config_key_item),
     F_ARR("unknownKey", OPT, key50_item));
SPEC(remote_start_req,
     CONNECTOR("connectorId", OPT),
     F_STR("idTag", REQ, 20),
     F_OBJ("chargingProfile", OPT, charging_profile));
SPEC(accepted_rejected_conf, F_ENUM("status", REQ, accepted_rejected_e));
SPEC(remote_stop_req, F_I64("transactionId", REQ));
SPEC(reset_req, F_ENUM("type", REQ, reset_e));
SPEC(set_profile_req,
     CONNECTOR("connectorId", REQ),
     F_OBJ("csChargingProfiles", REQ, charging_profile));
SPEC(set_profile_conf, F_ENUM("status", REQ, set_profile_status_e));
SPEC(trigger_req,
     F_ENUM("requestedMessage", REQ, trigger_e),
     CONNECTOR("connectorId", OPT));
SPEC(trigger_conf, F_ENUM("status", REQ, trigger_status_e));
SPEC(unlock_req, CONNECTOR("connectorId", REQ));
SPEC(unlock_conf, F_ENUM("status", REQ, unlock_status_e));
/* clang-format on */

static const struct {
    const spec *req, *conf;
} schemas[PW_OCPP_A_COUNT] = {
    [PW_OCPP_A_AUTHORIZE] = {&authorize_req, &authorize_conf},
    [PW_OCPP_A_BOOT_NOTIFICATION] = {&boot_req, &boot_conf},
    [PW_OCPP_A_DATA_TRANSFER] = {&data_req, &data_conf},
    [PW_OCPP_A_DIAGNOSTICS_STATUS] = {&diag_req, &empty},
    [PW_OCPP_A_FIRMWARE_STATUS] = {&fw_req, &empty},
    [PW_OCPP_A_HEARTBEAT] = {&empty, &heartbeat_conf},
    [PW_OCPP_A_METER_VALUES] = {&meter_req, &empty},
    [PW_OCPP_A_START_TRANSACTION] = {&start_req, &start_conf},
    [PW_OCPP_A_STATUS_NOTIFICATION] = {&status_req, &empty},
    [PW_OCPP_A_STOP_TRANSACTION] = {&stop_req, &stop_conf},
    [PW_OCPP_A_CHANGE_AVAILABILITY] = {&change_availability_req, &change_availability_conf},
    [PW_OCPP_A_CHANGE_CONFIGURATION] = {&change_config_req, &change_config_conf},
    [PW_OCPP_A_CLEAR_CHARGING_PROFILE] = {&clear_profile_req, &clear_profile_conf},
    [PW_OCPP_A_GET_CONFIGURATION] = {&get_config_req, &get_config_conf},
    [PW_OCPP_A_REMOTE_START] = {&remote_start_req, &accepted_rejected_conf},
    [PW_OCPP_A_REMOTE_STOP] = {&remote_stop_req, &accepted_rejected_conf},
    [PW_OCPP_A_RESET] = {&reset_req, &accepted_rejected_conf},
    [PW_OCPP_A_SET_CHARGING_PROFILE] = {&set_profile_req, &set_profile_conf},
    [PW_OCPP_A_TRIGGER_MESSAGE] = {&trigger_req, &trigger_conf},
    [PW_OCPP_A_UNLOCK_CONNECTOR] = {&unlock_req, &unlock_conf},
};

/* ---- the checker --------------------------------------------------------------------------- */

typedef struct walk {
    pw_ocpp_fault *fault;
    char path[112]; /* "MeterValues.meterValue[0].sampledValue[2].unit" */
} walk;

static size_t path_push(walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the path; returns the length to cut it back to. */
static size_t path_push(walk *w, const char *fmt, ...)
{
    size_t mark = strlen(w->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->path + mark, sizeof w->path - mark, fmt, ap);
    va_end(ap);
    return mark;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

static int wrong_type(walk *w, enum pw_ocpp_error code, const char *due, const json_t *v)
{
    return fail(w->fault, code, "%s: %s is due, not %s", w->path, due, json_kind(v));
}

static void join(char *dst, size_t size, const char *const *list)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; list[i] && o + 1 < size; i++)
        o += (size_t)snprintf(dst + o, size - o, "%s%s", i ? ", " : "", list[i]);
}

static bool is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    double d = json_real_value(v);
    return json_is_real(v) && isfinite(d) && d == floor(d);
}

static double num(const json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static int64_t int_of(const json_t *v)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)json_real_value(v);
}

static int check_object(walk *w, const spec *s, const json_t *obj);

static int check_value(walk *w, const field *f, const json_t *v)
{
    char shown[104];
    switch (f->kind) {
    case K_STR:
    case K_TIME: {
        if (!json_is_string(v))
            return wrong_type(w, PW_OCPP_TYPE_CONSTRAINT, "a string", v);
        const char *s = json_string_value(v);
        size_t chars = utf8_chars(s);
        if (f->max_len && chars > f->max_len)
            return fail(w->fault, PW_OCPP_PROPERTY_CONSTRAINT,
                        "%s: %zu characters, at most %u are allowed", w->path, chars, f->max_len);
        if (f->one_of && list_index(f->one_of, s) < 0) {
            char list[160];
            join(list, sizeof list, f->one_of);
            show(shown, sizeof shown, s);
            return fail(w->fault, PW_OCPP_PROPERTY_CONSTRAINT, "%s: \"%s\" is not one of %s",
                        w->path, shown, list);
        }
        int64_t ms;
        if (f->kind == K_TIME && pw_ocpp_time_parse(s, &ms) != 0) {
            show(shown, sizeof shown, s);
            return fail(w->fault, PW_OCPP_PROPERTY_CONSTRAINT,
                        "%s: \"%s\" is not an RFC 3339 date-time", w->path, shown);
        }
        return 0;
    }
    case K_INT: {
        if (!is_integral(v))
            return wrong_type(w, PW_OCPP_TYPE_CONSTRAINT, "an integer", v);
        double d = num(v);
        if (d < (double)f->min || d > (double)f->max || int_of(v) < f->min || int_of(v) > f->max)
            return fail(w->fault, PW_OCPP_PROPERTY_CONSTRAINT, "%s: %.17g is not in %lld..%lld",
                        w->path, d, (long long)f->min, (long long)f->max);
        return 0;
    }
    case K_NUM: {
        if (!json_is_number(v))
            return wrong_type(w, PW_OCPP_TYPE_CONSTRAINT, "a number", v);
        /* multipleOf 0.1 as ocpp-rpc tests it: the quotient within 1e-6 of a whole number. */
        double q = num(v) / 0.1;
        if (f->tenth && !(fabs(round(q) - q) < 1e-6))
            return fail(w->fault, PW_OCPP_PROPERTY_CONSTRAINT, "%s: %.17g is not a multiple of 0.1",
                        w->path, num(v));
        return 0;
    }
    case K_BOOL:
        if (!json_is_boolean(v))
            return wrong_type(w, PW_OCPP_TYPE_CONSTRAINT, "a boolean", v);
        return 0;
    case K_OBJ:
        if (!json_is_object(v))
            return wrong_type(w, PW_OCPP_FORMATION_VIOLATION, "an object", v);
        return check_object(w, f->obj, v);
    case K_ARR:
        if (!json_is_array(v))
            return wrong_type(w, PW_OCPP_FORMATION_VIOLATION, "an array", v);
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t mark = path_push(w, "[%zu]", i);
            if (check_value(w, f->item, json_array_get(v, i)) != 0)
                return -1;
            w->path[mark] = '\0';
        }
        return 0;
    }
    return fail(w->fault, PW_OCPP_INTERNAL_ERROR, "%s: no rule", w->path);
}

static const field *find_field(const spec *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->f[i].name, name) == 0)
            return &s->f[i];
    }
    return NULL;
}

/* Required first, then unknown properties, then each property in the schema's order: the first
 * violation found is the one reported. */
static int check_object(walk *w, const spec *s, const json_t *obj)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->f[i].required && !json_object_get(obj, s->f[i].name))
            return fail(w->fault, PW_OCPP_OCCURENCE_CONSTRAINT, "%s.%s: required, missing", w->path,
                        s->f[i].name);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!find_field(s, key)) {
            char shown[104];
            show(shown, sizeof shown, key);
            return fail(w->fault, PW_OCPP_OCCURENCE_CONSTRAINT,
                        "%s.%s: not a property of this message", w->path, shown);
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        const json_t *val = json_object_get(obj, s->f[i].name);
        if (!val)
            continue;
        size_t mark = path_push(w, ".%s", s->f[i].name);
        if (check_value(w, &s->f[i], val) != 0)
            return -1;
        w->path[mark] = '\0';
    }
    return 0;
}

static int check_payload(const spec *s, const char *root, const json_t *payload,
                         pw_ocpp_fault *fault)
{
    walk w = {.fault = fault};
    pw_strlcpy(w.path, root, sizeof w.path);
    if (!json_is_object(payload))
        return wrong_type(&w, PW_OCPP_FORMATION_VIOLATION, "an object", payload);
    return check_object(&w, s, payload);
}

int pw_ocpp_check_payload(enum pw_ocpp_action a, bool conf, const json_t *payload,
                          pw_ocpp_fault *fault)
{
    if (a <= PW_OCPP_A_UNKNOWN || a >= PW_OCPP_A_COUNT)
        return fail(fault, PW_OCPP_NOT_IMPLEMENTED, "no such action");
    char root[PW_OCPP_ACTION_LEN + 8];
    snprintf(root, sizeof root, "%s%s", action_names[a], conf ? ".conf" : "");
    return check_payload(conf ? schemas[a].conf : schemas[a].req, root, payload, fault);
}

/* ---- frames -------------------------------------------------------------------------------- */

void pw_ocpp_frame_clear(pw_ocpp_frame *f)
{
    json_decref(f->payload);
    memset(f, 0, sizeof *f);
}

/* Returns -1 after clearing what was read, keeping the id of a CALL so it can be answered. */
static int frame_fail(pw_ocpp_frame *out, bool keep_id)
{
    char id[PW_OCPP_ID_LEN];
    memcpy(id, out->id, sizeof id);
    bool call = out->kind == PW_OCPP_CALL;
    pw_ocpp_frame_clear(out);
    if (keep_id && call && id[0]) {
        out->kind = PW_OCPP_CALL;
        memcpy(out->id, id, sizeof id);
    }
    return -1;
}

int pw_ocpp_frame_parse(const char *text, size_t len, pw_ocpp_frame *out, pw_ocpp_fault *fault)
{
    memset(out, 0, sizeof *out);
    if (len > PW_OCPP_MAX_FRAME)
        return fail(fault, PW_OCPP_FORMATION_VIOLATION,
                    "a message of %zu bytes, more than the %u taken", len, PW_OCPP_MAX_FRAME);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(fault, PW_OCPP_FORMATION_VIOLATION, "not JSON: %s (line %d, column %d)",
                    jerr.text, jerr.line, jerr.column);
    size_t n = json_array_size(root);
    const json_t *type = json_array_get(root, 0);
    const json_t *id = json_array_get(root, 1);
    if (!json_is_array(root) || !json_is_integer(type)) {
        fail(fault, PW_OCPP_FORMATION_VIOLATION,
             "not an OCPP-J message: an array starting with 2, 3 or 4 is due");
        goto fail;
    }
    json_int_t t = json_integer_value(type);
    if (t < PW_OCPP_CALL || t > PW_OCPP_ERROR) {
        fail(fault, PW_OCPP_FORMATION_VIOLATION,
             "message type %lld is none of 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR)", (long long)t);
        goto fail;
    }
    out->kind = (enum pw_ocpp_frame_kind)t;
    if (!json_is_string(id) || json_string_length(id) < 1 ||
        json_string_length(id) >= PW_OCPP_ID_LEN) {
        fail(fault, PW_OCPP_FORMATION_VIOLATION,
             "the message id must be a string of 1 to %d characters", PW_OCPP_ID_LEN - 1);
        out->kind = 0;
        goto fail;
    }
    memcpy(out->id, json_string_value(id), json_string_length(id) + 1);

    static const size_t want[] = {[PW_OCPP_CALL] = 4, [PW_OCPP_RESULT] = 3, [PW_OCPP_ERROR] = 5};
    if (n != want[t]) {
        fail(fault, PW_OCPP_FORMATION_VIOLATION, "a %s has %zu elements, not %zu",
             t == PW_OCPP_CALL     ? "CALL"
             : t == PW_OCPP_RESULT ? "CALLRESULT"
                                   : "CALLERROR",
             want[t], n);
        goto fail;
    }
    const json_t *payload = json_array_get(root, n - 1);
    if (!json_is_object(payload)) {
        fail(fault, PW_OCPP_FORMATION_VIOLATION, "the %s must be an object, not %s",
             t == PW_OCPP_ERROR ? "error details" : "payload", json_kind(payload));
        goto fail;
    }
    if (t == PW_OCPP_CALL) {
        const json_t *action = json_array_get(root, 2);
        if (!json_is_string(action)) {
            fail(fault, PW_OCPP_FORMATION_VIOLATION, "the action must be a string, not %s",
                 json_kind(action));
            goto fail;
        }
        /* Too long for any action name: no action of OCPP 1.6 at all. */
        if (json_string_length(action) >= PW_OCPP_ACTION_LEN) {
            char shown[104];
            show(shown, sizeof shown, json_string_value(action));
            fail(fault, PW_OCPP_NOT_IMPLEMENTED, "\"%s\" is not an OCPP 1.6 action", shown);
            goto fail;
        }
        memcpy(out->action, json_string_value(action), json_string_length(action) + 1);
    } else if (t == PW_OCPP_ERROR) {
        const json_t *code = json_array_get(root, 2);
        const json_t *desc = json_array_get(root, 3);
        if (!json_is_string(code) || !json_is_string(desc)) {
            fail(fault, PW_OCPP_FORMATION_VIOLATION,
                 "a CALLERROR's code and description must be strings");
            goto fail;
        }
        out->error = pw_ocpp_error_parse(json_string_value(code));
        copy_utf8(out->error_text, sizeof out->error_text, json_string_value(desc));
    }
    out->payload = json_incref((json_t *)payload);
    json_decref(root);
    return 0;

fail:
    json_decref(root);
    return frame_fail(out, true);
}

/* Dumps a frame with numbers at no more than 3 decimals; JSON_REAL_PRECISION(15) keeps 13.7
 * from coming out as 13.699999999999999. */
static void round_reals(json_t *v, int depth)
{
    if (depth > 32)
        return;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && fabs(d) < 1e12)
            json_real_set(v, round(d * 1000.0) / 1000.0);
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            round_reals(json_array_get(v, i), depth + 1);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) round_reals(m, depth + 1);
    }
}

static char *frame_text(json_t *frame, size_t *len_out)
{
    round_reals(frame, 0);
    char *text = json_dumps(frame, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(frame);
    if (!text)
        must(NULL);
    if (len_out)
        *len_out = strlen(text);
    return text;
}

char *pw_ocpp_call_text(const char *id, const char *action, json_t *payload, size_t *len_out)
{
    if (!payload)
        return NULL;
    json_t *f = must(json_array());
    push(f, json_integer(PW_OCPP_CALL));
    push(f, jstr(id));
    push(f, jstr(action));
    push(f, payload);
    return frame_text(f, len_out);
}

char *pw_ocpp_result_text(const char *id, json_t *payload, size_t *len_out)
{
    if (!payload)
        return NULL;
    json_t *f = must(json_array());
    push(f, json_integer(PW_OCPP_RESULT));
    push(f, jstr(id));
    push(f, payload);
    return frame_text(f, len_out);
}

char *pw_ocpp_error_text(const char *id, enum pw_ocpp_error code, const char *description,
                         size_t *len_out)
{
    /* 255 characters: OCPP 2.0's limit, which 1.6 peers' buffers are likely to follow. */
    char desc[256 * 4];
    copy_utf8(desc, sizeof desc, description ? description : "");
    if (utf8_chars(desc) > 255) {
        size_t chars = 0, i = 0;
        for (; desc[i]; i++) {
            if (((unsigned char)desc[i] & 0xC0) != 0x80 && ++chars > 255)
                break;
        }
        desc[i] = '\0';
    }
    json_t *f = must(json_array());
    push(f, json_integer(PW_OCPP_ERROR));
    push(f, jstr(id));
    push(f, jstr(pw_ocpp_error_name(code)));
    push(f, jstr(desc));
    push(f, json_object());
    return frame_text(f, len_out);
}

/* ---- reading checked payloads -------------------------------------------------------------- */

/* Accessors for payloads the checker passed: types are as the schema says. */
static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int64_t get_int(const json_t *o, const char *key, int64_t absent)
{
    const json_t *v = json_object_get(o, key);
    return v ? int_of(v) : absent;
}

static int64_t get_time(const json_t *o, const char *key)
{
    const char *s = get_str(o, key);
    int64_t ms = 0;
    if (s && pw_ocpp_time_parse(s, &ms) != 0)
        ms = 0;
    return ms;
}

static void get_txid(const json_t *o, const char *key, char *dst)
{
    const json_t *v = json_object_get(o, key);
    dst[0] = '\0';
    if (v)
        snprintf(dst, PW_OCPP_TXID_LEN, "%lld", (long long)int_of(v));
}

/* Copies an informational string, cut at a character boundary when longer in bytes than the
 * field (a 20-character name in UTF-8 can take 80 bytes). */
static void get_text(const json_t *o, const char *key, char *dst, size_t size)
{
    const char *s = get_str(o, key);
    copy_utf8(dst, size, s ? s : "");
}

/* Copies a string that identifies something (an idTag, a configuration key): it is refused,
 * not cut, when its UTF-8 is longer than the field. */
static int get_exact(const json_t *o, const char *key, char *dst, size_t size, const char *path,
                     pw_ocpp_fault *fault)
{
    const char *s = get_str(o, key);
    if (!copy_utf8(dst, size, s ? s : ""))
        return fail(fault, PW_OCPP_PROPERTY_CONSTRAINT,
                    "%s.%s: %zu bytes of UTF-8, phasewise keeps at most %zu", path, key, strlen(s),
                    size - 1);
    return 0;
}

static int enum_of(const json_t *o, const char *key, const char *const *list, int absent)
{
    const char *s = get_str(o, key);
    return s ? list_index(list, s) : absent;
}

/* ---- MeterValues --------------------------------------------------------------------------- */

/* A sampled value as a number: decimal notation only (no hex, inf or nan, which strtod would
 * take), surrounding spaces allowed, finite. */
static bool parse_value(const char *s, double *out)
{
    while (*s == ' ')
        s++;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t int_digits = strspn(p, "0123456789");
    p += int_digits;
    size_t frac_digits = 0;
    if (*p == '.') {
        p++;
        frac_digits = strspn(p, "0123456789");
        p += frac_digits;
    }
    if (int_digits + frac_digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        size_t exp_digits = strspn(p, "0123456789");
        if (exp_digits == 0)
            return false;
        p += exp_digits;
    }
    size_t end = (size_t)(p - s);
    while (*p == ' ')
        p++;
    if (*p != '\0' || end > 64)
        return false;
    char buf[72];
    memcpy(buf, s, end);
    buf[end] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d))
        return false;
    *out = d;
    return true;
}

/* "L1", "L1-N" -> 0 .. "L3-N" -> 2; -1 for no phase; -2 for N and line-to-line labels. */
static int phase_index(const char *phase)
{
    if (!phase)
        return -1;
    if (phase[0] == 'L' && phase[1] >= '1' && phase[1] <= '3' &&
        (phase[2] == '\0' || strcmp(phase + 2, "-N") == 0))
        return phase[1] - '1';
    return -2;
}

/* Sums per phase, used when a meter reports energy or power only per phase. */
typedef struct acc {
    bool has_total, has_phase[3];
    double total, phase[3];
} acc;

static void acc_add(acc *a, int ph, double v)
{
    if (ph == -1) {
        a->has_total = true;
        a->total = v;
    } else {
        a->has_phase[ph] = true;
        a->phase[ph] = v;
    }
}

/* The unphased value, else the sum of the phases; false if neither was reported. */
static bool acc_value(const acc *a, double *out)
{
    if (a->has_total) {
        *out = a->total;
        return true;
    }
    bool any = false;
    double sum = 0;
    for (int i = 0; i < 3; i++) {
        if (a->has_phase[i]) {
            any = true;
            sum += a->phase[i];
        }
    }
    *out = sum;
    return any;
}

static void reduce_sample(const json_t *sv, pw_ocpp_meter *m, acc *energy, acc *power)
{
    const char *measurand = get_str(sv, "measurand");
    const char *unit = get_str(sv, "unit");
    const char *format = get_str(sv, "format");
    int ph = phase_index(get_str(sv, "phase"));
    double v;
    if (!measurand)
        measurand = "Energy.Active.Import.Register";
    if ((format && strcmp(format, "SignedData") == 0) || !parse_value(get_str(sv, "value"), &v))
        goto skip;
    if (strcmp(measurand, "Energy.Active.Import.Register") == 0) {
        /* The schema's default unit is Wh. */
        double scale = !unit || strcmp(unit, "Wh") == 0 ? 1.0 : strcmp(unit, "kWh") == 0 ? 1e3 : 0;
        if (scale == 0 || ph == -2 || v < 0 || v * scale >= 9e15)
            goto skip;
        acc_add(energy, ph, v * scale);
    } else if (strcmp(measurand, "Power.Active.Import") == 0) {
        /* Unit-less power is taken as W: the Wh default cannot apply to a power. */
        double scale = !unit || strcmp(unit, "W") == 0 ? 1.0 : strcmp(unit, "kW") == 0 ? 1e3 : 0;
        if (scale == 0 || ph == -2)
            goto skip;
        acc_add(power, ph, v * scale);
    } else if (strcmp(measurand, "Current.Import") == 0 ||
               strcmp(measurand, "Current.Offered") == 0) {
        if ((unit && strcmp(unit, "A") != 0) || ph == -2)
            goto skip;
        if (strcmp(measurand, "Current.Offered") == 0) {
            /* Offered per phase is the same limit on each; the largest stands for all. */
            if (!m->has_offered || v > m->offered_a)
                m->offered_a = v;
            m->has_offered = true;
        } else if (ph == -1) {
            m->has_current_total = true;
            m->current_total_a = v;
        } else {
            m->has_current[ph] = true;
            m->current_a[ph] = v;
        }
    } else {
        goto skip;
    }
    return;
skip:
    m->skipped++;
}

/* The newest meterValue (the last of equal timestamps) reduced into m. */
static void reduce_meter(const json_t *values, pw_ocpp_meter *m)
{
    const json_t *newest = NULL;
    for (size_t i = 0; i < json_array_size(values); i++) {
        const json_t *mv = json_array_get(values, i);
        int64_t t = get_time(mv, "timestamp");
        if (!newest || t >= m->timestamp_ms) {
            newest = mv;
            m->timestamp_ms = t;
        }
    }
    if (!newest)
        return;
    acc energy = {0}, power = {0};
    const json_t *samples = json_object_get(newest, "sampledValue");
    for (size_t i = 0; i < json_array_size(samples); i++)
        reduce_sample(json_array_get(samples, i), m, &energy, &power);
    double v;
    if (acc_value(&energy, &v)) {
        m->has_energy = true;
        m->energy_wh = (uint64_t)llround(v);
    }
    if (acc_value(&power, &v)) {
        m->has_power = true;
        m->power_w = v;
    }
}

/* ---- charge point -> central system: reading its calls ------------------------------------- */

/* The action of a CALL and its schema check, shared by both sides. want(action) says whether
 * this side takes it. */
static int call_begin(const pw_ocpp_frame *f, bool (*want)(enum pw_ocpp_action),
                      enum pw_ocpp_action *a_out, pw_ocpp_fault *fault)
{
    if (f->kind != PW_OCPP_CALL || !f->payload)
        return fail(fault, PW_OCPP_INTERNAL_ERROR, "not a CALL");
    enum pw_ocpp_action a = pw_ocpp_action_parse(f->action);
    char shown[104];
    show(shown, sizeof shown, f->action);
    if (a == PW_OCPP_A_UNKNOWN && !is_other_action(f->action))
        return fail(fault, PW_OCPP_NOT_IMPLEMENTED, "\"%s\" is not an OCPP 1.6 action", shown);
    if (a == PW_OCPP_A_UNKNOWN || !want(a))
        return fail(fault, PW_OCPP_NOT_SUPPORTED, "%s is not taken here", shown);
    *a_out = a;
    return pw_ocpp_check_payload(a, false, f->payload, fault);
}

static bool cs_takes(enum pw_ocpp_action a)
{
    return a >= PW_OCPP_A_AUTHORIZE && a <= PW_OCPP_A_STOP_TRANSACTION;
}

int pw_ocpp_decode_call(const pw_ocpp_frame *f, pw_ocpp_call *out, pw_ocpp_fault *fault)
{
    memset(out, 0, sizeof *out);
    enum pw_ocpp_action a = PW_OCPP_A_UNKNOWN;
    if (call_begin(f, cs_takes, &a, fault) != 0)
        return -1;
    const json_t *p = f->payload;
    const char *name = action_names[a];
    out->action = a;
    switch (a) {
    case PW_OCPP_A_AUTHORIZE:
        return get_exact(p, "idTag", out->u.id_tag, sizeof out->u.id_tag, name, fault);
    case PW_OCPP_A_BOOT_NOTIFICATION: {
        pw_ocpp_boot *b = &out->u.boot;
        get_text(p, "chargePointVendor", b->vendor, sizeof b->vendor);
        get_text(p, "chargePointModel", b->model, sizeof b->model);
        get_text(p, "chargePointSerialNumber", b->serial, sizeof b->serial);
        get_text(p, "chargeBoxSerialNumber", b->box_serial, sizeof b->box_serial);
        get_text(p, "firmwareVersion", b->firmware, sizeof b->firmware);
        get_text(p, "meterType", b->meter_type, sizeof b->meter_type);
        get_text(p, "meterSerialNumber", b->meter_serial, sizeof b->meter_serial);
        return 0;
    }
    case PW_OCPP_A_DATA_TRANSFER:
        get_text(p, "vendorId", out->u.data.vendor_id, sizeof out->u.data.vendor_id);
        get_text(p, "messageId", out->u.data.message_id, sizeof out->u.data.message_id);
        out->u.data.data = get_str(p, "data");
        return 0;
    case PW_OCPP_A_DIAGNOSTICS_STATUS:
    case PW_OCPP_A_FIRMWARE_STATUS:
        get_text(p, "status", out->u.text, sizeof out->u.text);
        return 0;
    case PW_OCPP_A_HEARTBEAT:
        return 0;
    case PW_OCPP_A_METER_VALUES:
        out->u.meter.connector = (int)get_int(p, "connectorId", 0);
        get_txid(p, "transactionId", out->u.meter.tx_id);
        reduce_meter(json_object_get(p, "meterValue"), &out->u.meter);
        return 0;
    case PW_OCPP_A_START_TRANSACTION: {
        pw_ocpp_start_tx *s = &out->u.start;
        s->connector = (int)get_int(p, "connectorId", 0);
        s->meter_start_wh = get_int(p, "meterStart", 0);
        s->has_reservation = json_object_get(p, "reservationId") != NULL;
        s->reservation_id = (int)get_int(p, "reservationId", 0);
        s->timestamp_ms = get_time(p, "timestamp");
        return get_exact(p, "idTag", s->id_tag, sizeof s->id_tag, name, fault);
    }
    case PW_OCPP_A_STATUS_NOTIFICATION: {
        pw_ocpp_status_note *s = &out->u.status;
        s->connector = (int)get_int(p, "connectorId", 0);
        s->status = (enum pw_ocpp_status)enum_of(p, "status", status_names, 0);
        get_text(p, "errorCode", s->error_code, sizeof s->error_code);
        get_text(p, "info", s->info, sizeof s->info);
        get_text(p, "vendorErrorCode", s->vendor_error, sizeof s->vendor_error);
        s->timestamp_ms = get_time(p, "timestamp");
        return 0;
    }
    case PW_OCPP_A_STOP_TRANSACTION: {
        pw_ocpp_stop_tx *s = &out->u.stop;
        get_txid(p, "transactionId", s->tx_id);
        s->meter_stop_wh = get_int(p, "meterStop", 0);
        s->timestamp_ms = get_time(p, "timestamp");
        get_text(p, "reason", s->reason, sizeof s->reason);
        return get_exact(p, "idTag", s->id_tag, sizeof s->id_tag, name, fault);
    }
    default:
        return fail(fault, PW_OCPP_INTERNAL_ERROR, "%s: no reader", name);
    }
}

/* ---- answers to the calls of either side --------------------------------------------------- */

/* The status of an answer: its "status", or idTagInfo's; Accepted when it has none. */
static enum pw_ocpp_answer answer_status(const json_t *p)
{
    const json_t *info = json_object_get(p, "idTagInfo");
    const char *s = get_str(info ? info : p, "status");
    int a = s ? pw_ocpp_answer_parse(s) : PW_OCPP_ACCEPTED;
    return a < 0 ? PW_OCPP_REJECTED : (enum pw_ocpp_answer)a;
}

static void read_config(const json_t *p, pw_ocpp_config_answer *c)
{
    memset(c, 0, sizeof *c);
    const json_t *keys = json_object_get(p, "configurationKey");
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const json_t *k = json_array_get(keys, i);
        if (c->n_keys == PW_OCPP_MAX_KEYS) {
            c->n_dropped++;
            continue;
        }
        pw_ocpp_config_key *dst = &c->keys[c->n_keys];
        const char *value = get_str(k, "value");
        if (!copy_utf8(dst->key, sizeof dst->key, get_str(k, "key")) ||
            !copy_utf8(dst->value, sizeof dst->value, value ? value : "")) {
            memset(dst, 0, sizeof *dst);
            c->n_dropped++;
            continue;
        }
        dst->readonly = json_is_true(json_object_get(k, "readonly"));
        dst->has_value = value != NULL;
        c->n_keys++;
    }
    const json_t *unknown = json_object_get(p, "unknownKey");
    for (size_t i = 0; i < json_array_size(unknown); i++) {
        const size_t cap = PW_ARRAY_LEN(c->unknown);
        if (c->n_unknown == cap || !copy_utf8(c->unknown[c->n_unknown], sizeof c->unknown[0],
                                              json_string_value(json_array_get(unknown, i)))) {
            if (c->n_unknown < cap)
                c->unknown[c->n_unknown][0] = '\0';
            c->n_dropped++;
            continue;
        }
        c->n_unknown++;
    }
}

int pw_ocpp_decode_result(enum pw_ocpp_action call, const json_t *payload,
                          enum pw_ocpp_answer *status, pw_ocpp_config_answer *config,
                          pw_ocpp_fault *fault)
{
    if (pw_ocpp_check_payload(call, true, payload, fault) != 0)
        return -1;
    if (status)
        *status = answer_status(payload);
    if (config && call == PW_OCPP_A_GET_CONFIGURATION)
        read_config(payload, config);
    return 0;
}

int pw_ocpp_decode_cp_result(enum pw_ocpp_action call, const json_t *payload,
                             enum pw_ocpp_answer *status, int *interval_s, char *tx_id,
                             pw_ocpp_fault *fault)
{
    if (pw_ocpp_check_payload(call, true, payload, fault) != 0)
        return -1;
    if (status)
        *status = answer_status(payload);
    if (interval_s && call == PW_OCPP_A_BOOT_NOTIFICATION)
        *interval_s = (int)get_int(payload, "interval", 0);
    if (tx_id && call == PW_OCPP_A_START_TRANSACTION)
        get_txid(payload, "transactionId", tx_id);
    return 0;
}

/* ---- central system -> charge point: what phasewise sends ---------------------------------- */

static const char *const purpose_names[] = {"ChargePointMaxProfile", "TxDefaultProfile",
                                            "TxProfile"};

/* A limit at one decimal, as multipleOf 0.1 asks. */
static json_t *jtenth(double v)
{
    double r = round(v * 10.0) / 10.0;
    return json_real(isfinite(r) ? r : 0.0);
}

json_t *pw_ocpp_set_profile_req(const pw_ocpp_profile *p)
{
    json_int_t tx = 0;
    bool has_tx = p->purpose == PW_OCPP_TX && p->tx_id[0];
    if (has_tx && !txid_to_int(p->tx_id, &tx))
        return NULL;
    json_t *periods = must(json_array());
    for (size_t i = 0; i < p->n_periods && i < PW_OCPP_MAX_PERIODS; i++) {
        json_t *period = must(json_object());
        set(period, "startPeriod", json_integer(p->periods[i].start_s));
        set(period, "limit", jtenth(p->periods[i].limit_a));
        if (p->periods[i].phases)
            set(period, "numberPhases", json_integer(p->periods[i].phases));
        push(periods, period);
    }
    json_t *sched = must(json_object());
    if (p->duration_s > 0)
        set(sched, "duration", json_integer(p->duration_s));
    if (p->start_ms != 0)
        set(sched, "startSchedule", jtime(p->start_ms));
    set(sched, "chargingRateUnit", jstr("A"));
    set(sched, "chargingSchedulePeriod", periods);

    json_t *prof = must(json_object());
    set(prof, "chargingProfileId", json_integer(p->id));
    if (has_tx)
        set(prof, "transactionId", json_integer(tx));
    set(prof, "stackLevel", json_integer(p->stack_level));
    set(prof, "chargingProfilePurpose", jstr(purpose_names[p->purpose % 3]));
    switch (p->kind) {
    case PW_OCPP_ABSOLUTE:
        set(prof, "chargingProfileKind", jstr("Absolute"));
        break;
    case PW_OCPP_RELATIVE:
        set(prof, "chargingProfileKind", jstr("Relative"));
        break;
    case PW_OCPP_RECURRING:
    case PW_OCPP_RECURRING_WEEKLY:
        set(prof, "chargingProfileKind", jstr("Recurring"));
        set(prof, "recurrencyKind", jstr(p->kind == PW_OCPP_RECURRING ? "Daily" : "Weekly"));
        break;
    }
    set(prof, "chargingSchedule", sched);

    json_t *req = must(json_object());
    set(req, "connectorId", json_integer(p->connector));
    set(req, "csChargingProfiles", prof);
    return req;
}

json_t *pw_ocpp_clear_profile_req(int id, int connector, bool has_purpose,
                                  enum pw_ocpp_purpose purpose, int stack_level)
{
    json_t *req = must(json_object());
    if (id >= 0)
        set(req, "id", json_integer(id));
    if (connector >= 0)
        set(req, "connectorId", json_integer(connector));
    if (has_purpose)
        set(req, "chargingProfilePurpose", jstr(purpose_names[purpose % 3]));
    if (stack_level >= 0)
        set(req, "stackLevel", json_integer(stack_level));
    return req;
}

json_t *pw_ocpp_get_configuration_req(const char *const *keys, size_t n)
{
    json_t *req = must(json_object());
    if (n > 0) {
        json_t *arr = must(json_array());
        for (size_t i = 0; i < n; i++)
            push(arr, jstr(keys[i]));
        set(req, "key", arr);
    }
    return req;
}

json_t *pw_ocpp_change_configuration_req(const char *key, const char *value)
{
    json_t *req = must(json_object());
    set(req, "key", jstr(key));
    set(req, "value", jstr(value));
    return req;
}

json_t *pw_ocpp_trigger_req(const char *message, int connector)
{
    if (!message || list_index(trigger_e, message) < 0)
        return NULL;
    json_t *req = must(json_object());
    set(req, "requestedMessage", jstr(message));
    if (connector >= 0)
        set(req, "connectorId", json_integer(connector));
    return req;
}

/* An answer's status as its schema's enum has it; one outside it becomes fallback, so what is
 * sent always holds to the schema (a local tag list may answer "Rejected", which IdTagInfo
 * spells "Invalid"). */
static json_t *jstatus(enum pw_ocpp_answer status, const char *const *allowed, const char *fallback)
{
    const char *name = pw_ocpp_answer_name(status);
    return jstr(list_index(allowed, name) >= 0 ? name : fallback);
}

json_t *pw_ocpp_boot_conf(enum pw_ocpp_answer status, int64_t now_ms, int interval_s)
{
    json_t *conf = must(json_object());
    set(conf, "status", jstatus(status, boot_status_e, "Rejected"));
    set(conf, "currentTime", jtime(now_ms));
    set(conf, "interval", json_integer(interval_s));
    return conf;
}

json_t *pw_ocpp_heartbeat_conf(int64_t now_ms)
{
    json_t *conf = must(json_object());
    set(conf, "currentTime", jtime(now_ms));
    return conf;
}

json_t *pw_ocpp_empty_conf(void)
{
    return must(json_object());
}

static json_t *jid_tag_info(enum pw_ocpp_answer status)
{
    json_t *info = must(json_object());
    set(info, "status", jstatus(status, id_status_e, "Invalid"));
    return info;
}

json_t *pw_ocpp_authorize_conf(enum pw_ocpp_answer status)
{
    json_t *conf = must(json_object());
    set(conf, "idTagInfo", jid_tag_info(status));
    return conf;
}

json_t *pw_ocpp_start_conf(const char *tx_id, enum pw_ocpp_answer status)
{
    json_int_t tx;
    if (!tx_id || !txid_to_int(tx_id, &tx))
        return NULL;
    json_t *conf = must(json_object());
    set(conf, "idTagInfo", jid_tag_info(status));
    set(conf, "transactionId", json_integer(tx));
    return conf;
}

json_t *pw_ocpp_stop_conf(int status)
{
    json_t *conf = must(json_object());
    if (status >= 0)
        set(conf, "idTagInfo", jid_tag_info((enum pw_ocpp_answer)status));
    return conf;
}

json_t *pw_ocpp_data_transfer_conf(enum pw_ocpp_answer status)
{
    json_t *conf = must(json_object());
    set(conf, "status", jstatus(status, data_status_e, "Rejected"));
    return conf;
}

/* ---- charge point side --------------------------------------------------------------------- */

json_t *pw_ocpp_boot_req(const pw_ocpp_boot *b)
{
    json_t *req = must(json_object());
    set(req, "chargePointVendor", jstr(b->vendor));
    set(req, "chargePointModel", jstr(b->model));
    set_str_opt(req, "chargePointSerialNumber", b->serial);
    set_str_opt(req, "chargeBoxSerialNumber", b->box_serial);
    set_str_opt(req, "firmwareVersion", b->firmware);
    set_str_opt(req, "meterType", b->meter_type);
    set_str_opt(req, "meterSerialNumber", b->meter_serial);
    return req;
}

json_t *pw_ocpp_heartbeat_req(void)
{
    return must(json_object());
}

json_t *pw_ocpp_status_req(const pw_ocpp_status_note *s)
{
    json_t *req = must(json_object());
    set(req, "connectorId", json_integer(s->connector));
    set(req, "errorCode", jstr(s->error_code[0] ? s->error_code : "NoError"));
    set_str_opt(req, "info", s->info);
    set(req, "status", jstr(pw_ocpp_status_name(s->status)));
    if (s->timestamp_ms != 0)
        set(req, "timestamp", jtime(s->timestamp_ms));
    set_str_opt(req, "vendorErrorCode", s->vendor_error);
    return req;
}

/* A sampled value's text: up to 3 decimals, no trailing zeros ("16", "13.7"). */
static json_t *jvalue(double v)
{
    char buf[48];
    /* Past 1e15 "%.3f" would not fit; such values are no current or power anyway. */
    if (!(fabs(v) < 1e15)) {
        snprintf(buf, sizeof buf, "%.17g", v);
        return jstr(buf);
    }
    snprintf(buf, sizeof buf, "%.3f", v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf);
        while (end > dot + 1 && end[-1] == '0')
            *--end = '\0';
        if (end == dot + 1)
            *dot = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        strcpy(buf, "0");
    return jstr(buf);
}

static void sample(json_t *arr, const char *measurand, const char *unit, const char *phase,
                   json_t *value)
{
    json_t *sv = must(json_object());
    set(sv, "value", value);
    set(sv, "measurand", jstr(measurand));
    if (phase)
        set(sv, "phase", jstr(phase));
    set(sv, "unit", jstr(unit));
    push(arr, sv);
}

json_t *pw_ocpp_meter_req(const pw_ocpp_meter *m)
{
    json_int_t tx = 0;
    if (m->tx_id[0] && !txid_to_int(m->tx_id, &tx))
        return NULL;
    static const char *const phase[] = {"L1", "L2", "L3"};
    json_t *samples = must(json_array());
    for (int i = 0; i < 3; i++) {
        if (m->has_current[i])
            sample(samples, "Current.Import", "A", phase[i], jvalue(m->current_a[i]));
    }
    if (m->has_current_total)
        sample(samples, "Current.Import", "A", NULL, jvalue(m->current_total_a));
    if (m->has_offered)
        sample(samples, "Current.Offered", "A", NULL, jvalue(m->offered_a));
    if (m->has_energy) {
        char buf[24];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)m->energy_wh);
        sample(samples, "Energy.Active.Import.Register", "Wh", NULL, jstr(buf));
    }
    if (m->has_power)
        sample(samples, "Power.Active.Import", "W", NULL, jvalue(m->power_w));
    json_t *mv = must(json_object());
    set(mv, "timestamp", jtime(m->timestamp_ms));
    set(mv, "sampledValue", samples);
    json_t *values = must(json_array());
    push(values, mv);

    json_t *req = must(json_object());
    set(req, "connectorId", json_integer(m->connector));
    if (m->tx_id[0])
        set(req, "transactionId", json_integer(tx));
    set(req, "meterValue", values);
    return req;
}

json_t *pw_ocpp_start_req(const pw_ocpp_start_tx *s)
{
    json_t *req = must(json_object());
    set(req, "connectorId", json_integer(s->connector));
    set(req, "idTag", jstr(s->id_tag));
    set(req, "meterStart", json_integer(s->meter_start_wh));
    if (s->has_reservation)
        set(req, "reservationId", json_integer(s->reservation_id));
    set(req, "timestamp", jtime(s->timestamp_ms));
    return req;
}

json_t *pw_ocpp_stop_req(const pw_ocpp_stop_tx *s)
{
    json_int_t tx;
    if (!txid_to_int(s->tx_id, &tx))
        return NULL;
    json_t *req = must(json_object());
    set_str_opt(req, "idTag", s->id_tag);
    set(req, "meterStop", json_integer(s->meter_stop_wh));
    set(req, "timestamp", jtime(s->timestamp_ms));
    set(req, "transactionId", json_integer(tx));
    set_str_opt(req, "reason", s->reason);
    return req;
}

json_t *pw_ocpp_authorize_req(const char *id_tag)
{
    json_t *req = must(json_object());
    set(req, "idTag", jstr(id_tag));
    return req;
}

/* ---- charge point side: a central system's calls ------------------------------------------- */

static bool cp_takes(enum pw_ocpp_action a)
{
    return a == PW_OCPP_A_SET_CHARGING_PROFILE || a == PW_OCPP_A_CLEAR_CHARGING_PROFILE ||
           a == PW_OCPP_A_GET_CONFIGURATION || a == PW_OCPP_A_CHANGE_CONFIGURATION ||
           a == PW_OCPP_A_TRIGGER_MESSAGE;
}

static int read_profile(const json_t *p, pw_ocpp_profile *out, pw_ocpp_fault *fault)
{
    const json_t *prof = json_object_get(p, "csChargingProfiles");
    const json_t *sched = json_object_get(prof, "chargingSchedule");
    const json_t *periods = json_object_get(sched, "chargingSchedulePeriod");
    if (json_array_size(periods) > PW_OCPP_MAX_PERIODS)
        return fail(fault, PW_OCPP_OCCURENCE_CONSTRAINT,
                    "SetChargingProfile.csChargingProfiles.chargingSchedule."
                    "chargingSchedulePeriod: %zu periods, at most %d are taken",
                    json_array_size(periods), PW_OCPP_MAX_PERIODS);
    out->connector = (int)get_int(p, "connectorId", 0);
    out->id = (int)get_int(prof, "chargingProfileId", 0);
    out->stack_level = (int)get_int(prof, "stackLevel", 0);
    out->purpose = (enum pw_ocpp_purpose)enum_of(prof, "chargingProfilePurpose", purpose_e, 0);
    const char *kind = get_str(prof, "chargingProfileKind");
    const char *rec = get_str(prof, "recurrencyKind");
    if (strcmp(kind, "Relative") == 0)
        out->kind = PW_OCPP_RELATIVE;
    else if (strcmp(kind, "Recurring") == 0)
        out->kind =
            rec && strcmp(rec, "Weekly") == 0 ? PW_OCPP_RECURRING_WEEKLY : PW_OCPP_RECURRING;
    else
        out->kind = PW_OCPP_ABSOLUTE;
    get_txid(prof, "transactionId", out->tx_id);
    out->start_ms = get_time(sched, "startSchedule");
    out->duration_s = (int32_t)get_int(sched, "duration", 0);
    out->watts = strcmp(get_str(sched, "chargingRateUnit"), "W") == 0;
    out->n_periods = json_array_size(periods);
    for (size_t i = 0; i < out->n_periods; i++) {
        const json_t *per = json_array_get(periods, i);
        out->periods[i].start_s = (int32_t)get_int(per, "startPeriod", 0);
        out->periods[i].limit_a = num(json_object_get(per, "limit"));
        out->periods[i].phases = (uint8_t)get_int(per, "numberPhases", 0);
    }
    return 0;
}

int pw_ocpp_decode_cs_call(const pw_ocpp_frame *f, pw_ocpp_cs_call *out, pw_ocpp_fault *fault)
{
    memset(out, 0, sizeof *out);
    enum pw_ocpp_action a = PW_OCPP_A_UNKNOWN;
    if (call_begin(f, cp_takes, &a, fault) != 0)
        return -1;
    const json_t *p = f->payload;
    const char *name = action_names[a];
    out->action = a;
    switch (a) {
    case PW_OCPP_A_SET_CHARGING_PROFILE:
        return read_profile(p, &out->u.profile, fault);
    case PW_OCPP_A_CLEAR_CHARGING_PROFILE: {
        out->u.clear.has_id = json_object_get(p, "id") != NULL;
        out->u.clear.id = (int)get_int(p, "id", 0);
        out->u.clear.has_connector = json_object_get(p, "connectorId") != NULL;
        out->u.clear.connector = (int)get_int(p, "connectorId", 0);
        out->u.clear.has_purpose = json_object_get(p, "chargingProfilePurpose") != NULL;
        out->u.clear.purpose =
            (enum pw_ocpp_purpose)enum_of(p, "chargingProfilePurpose", purpose_e, 0);
        out->u.clear.has_stack_level = json_object_get(p, "stackLevel") != NULL;
        out->u.clear.stack_level = (int)get_int(p, "stackLevel", 0);
        return 0;
    }
    case PW_OCPP_A_GET_CONFIGURATION: {
        const json_t *keys = json_object_get(p, "key");
        if (json_array_size(keys) > PW_OCPP_MAX_KEYS)
            return fail(fault, PW_OCPP_OCCURENCE_CONSTRAINT, "%s.key: %zu keys, at most %d", name,
                        json_array_size(keys), PW_OCPP_MAX_KEYS);
        for (size_t i = 0; i < json_array_size(keys); i++) {
            const char *k = json_string_value(json_array_get(keys, i));
            if (!copy_utf8(out->u.get_config.keys[i], sizeof out->u.get_config.keys[i], k))
                return fail(fault, PW_OCPP_PROPERTY_CONSTRAINT,
                            "%s.key[%zu]: %zu bytes of UTF-8, phasewise keeps at most %zu", name, i,
                            strlen(k), sizeof out->u.get_config.keys[i] - 1);
        }
        out->u.get_config.n = json_array_size(keys);
        return 0;
    }
    case PW_OCPP_A_CHANGE_CONFIGURATION:
        if (get_exact(p, "key", out->u.change_config.key, sizeof out->u.change_config.key, name,
                      fault) != 0)
            return -1;
        return get_exact(p, "value", out->u.change_config.value, sizeof out->u.change_config.value,
                         name, fault);
    case PW_OCPP_A_TRIGGER_MESSAGE:
        get_text(p, "requestedMessage", out->u.trigger.message, sizeof out->u.trigger.message);
        out->u.trigger.connector = (int)get_int(p, "connectorId", -1);
        return 0;
    default:
        return fail(fault, PW_OCPP_INTERNAL_ERROR, "%s: no reader", name);
    }
}
