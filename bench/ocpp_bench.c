/* The 1,000-charge-point OCPP benchmark: starts the real `phasewise serve` on a generated
 * facility, plays every OCPP 1.6J charge point itself (one libuv loop, one WebSocket client per
 * charge point) and a LAN building meter, and times how fast a building-load step reaches the
 * charge points as SetChargingProfile frames. Loopback only; bounded in steps and time; every
 * process it starts is ended by pid.
 *
 * The facility: N three-phase chargers (CP-0001.., one connector each) in garages of 200 under a
 * main fuse that binds (about 9 A a car), and a "building" node beside the garages metered by a
 * LAN meter (device 900). The building load steps up (every car is cut by about 0.8 A) and down
 * (raised again), alternating. The main node itself is not metered: a LAN meter datagram carries
 * at most 1000 A a line (PW_PROTO_MAX_CURRENT_MA) and 1,000 cars at 6 A or more draw more than
 * that, so the meter sits where the building load is, and the main fuse still sees it.
 *
 * For each step: from the meter datagram sent (uv_hrtime, before sendto) to the first and to the
 * last charge point's first SetChargingProfile frame of that step (uv_hrtime as the frame's
 * message callback runs: the same clock in the same process). The bench's own loop reads and
 * answers the frames in between, so "last" includes the bench's time for the frames before it;
 * the output gives the bench's busy time per step so it can be told apart. */
#define _GNU_SOURCE /* nftw, mkdtemp, getopt_long */
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "pw_ocpp.h"
#include "pw_proto.h"
#include "pw_util.h"
#include "pw_web_ws.h"

#define COMP          "ocpp_bench"
#define GROUP         "239.255.80.87"
#define METER_ID      900u
#define PER_GARAGE    200
#define CAR_A         9.0   /* each car's share of the main fuse at the low building load */
#define STEP_CAR_A    0.8   /* how much each car is cut when the building load steps up */
#define LOW_A         100.0 /* building load per line, low */
#define MAX_A         16.0
#define MIN_A         6.0
#define VOLTS         230.0
#define TICK_MS       10
#define CONNECTS_TICK 50     /* new connections started per tick (a gentle ramp) */
#define RETRY_MS      1000   /* a connection that failed or dropped is tried again after this */
#define SETUP_MS      120000 /* start, connect, boot and first limits: at most this long */
#define QUIET_MS      3000   /* no profile for this long: the facility has settled */
#define STOP_MS       15000  /* phasewise gets this long to exit on SIGTERM, then SIGKILL */
#define MAX_STEPS     1000
#define HIST_MAX      16

/* ---- options and results ------------------------------------------------------------------ */

typedef struct opts {
    const char *phasewise;
    int chargers;
    int steps;
    int period_ms;
    int daily_writes;
    int meter_interval_s;
    bool keep;
    bool verbose;
} opts;

typedef struct step {
    uint64_t t0;      /* meter datagram sent (uv_hrtime, ns) */
    uint64_t first;   /* first charge point's first SetChargingProfile of the step; 0 = none */
    uint64_t last;    /* last charge point's first SetChargingProfile of the step */
    uint64_t half;    /* when half the charge points had theirs */
    unsigned cps;     /* charge points that got one */
    unsigned frames;  /* SetChargingProfile frames in the step */
    uint64_t busy_ns; /* bench handler time from t0 to last */
    double limit_a;   /* CP-0001's limit when the step ended: the cut or raise took */
    long rss_kib;     /* the appliance's VmRSS when the step ended */
    bool cut;
} step;

/* One Prometheus histogram read from /metrics. */
typedef struct hist {
    size_t n;
    double le[HIST_MAX]; /* INFINITY for +Inf */
    double count[HIST_MAX];
    double sum, total;
} hist;

/* ---- the bench ------------------------------------------------------------------------------ */

enum phase { P_START, P_CONNECT, P_SETTLE, P_MEASURE, P_STOP };

struct bench;

/* One simulated charge point with one connector, charging a car that draws what it may. */
typedef struct cp {
    struct bench *b;
    int index;
    char id[16];
    char rotation[4]; /* its ConnectorPhaseRotation ("RST", ...) */
    pw_web_ws *ws;
    bool connecting, open;
    uint64_t retry_at;
    unsigned call_seq;
    char boot_call[16], start_call[16];
    bool booted, started;
    char tx_id[PW_OCPP_TXID_LEN];
    char measurands[200];
    double def_a; /* TxDefaultProfile limit; negative: none */
    double tx_a;  /* TxProfile limit of the running transaction; negative: none */
    bool got_tx_profile;
    double energy_wh;
    uint64_t energy_at;
    uint64_t next_mv;
    int seen_step; /* 1 + the last step it got a profile in; 0 = none */
} cp;

/* A frame read from a charge point's connection, handled once every ready connection was read. */
typedef struct inbox_item {
    cp *c;
    char *text;
    size_t len;
    uint64_t t; /* when it was read */
} inbox_item;

typedef struct bench {
    opts o;
    uv_loop_t loop;
    uv_timer_t tick;
    uv_check_t inbox_check;
    inbox_item *inbox;
    size_t n_inbox, cap_inbox;
    uv_udp_t udp;
    uv_process_t proc;
    bool proc_running;
    int64_t proc_status;
    int proc_signal;
    pw_web *web;
    bool web_closed;
    enum phase phase;
    bool failed, gave_up;
    char tmp[64];
    uint16_t http_port, ocpp_port, udp_port;
    uint8_t key[PW_PROTO_KEY_LEN];
    bool have_key;
    uint32_t meter_boot, meter_seq;
    double building_a;
    uint64_t next_meter;
    uint64_t phase_at, last_profile_at, stop_at;
    cp *cps;
    int n_connect_next;
    /* counters */
    uint64_t frames_in, frames_out, profiles, reconnects, drops, errors_in, send_fail;
    /* measurement */
    step steps[MAX_STEPS];
    int cur_step;
    uint64_t step_end;
    uint64_t busy_ns;
    uint64_t m_t0, m_t1, m_in0, m_out0, m_in1, m_out1;
    double cpu0, cpu1, self_cpu0, self_cpu1, load0, load1;
    hist tick0, tick1;
    long rss_ready_kib, rss_kib, hwm_kib, anon_kib, file_kib;
    int open_end,
        ready_end; /* charge points connected, and charging with a TxProfile, at the end */
} bench;

static uint64_t now_ms(const bench *b)
{
    (void)b; /* the bench's one clock: uv_hrtime, here in ms */
    return uv_hrtime() / 1000000u;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static int free_port(int type, uint16_t *out)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0)
        return -1;
    int rc =
        bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    *out = ntohs(a.sin_port);
    return rc ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int read_key(const char *path, uint8_t key[PW_PROTO_KEY_LEN])
{
    char hex[2 * PW_PROTO_KEY_LEN + 1];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(hex, 1, 2 * PW_PROTO_KEY_LEN, f);
    fclose(f);
    if (n != 2 * PW_PROTO_KEY_LEN)
        return -1;
    for (size_t i = 0; i < PW_PROTO_KEY_LEN; i++) {
        unsigned v;
        char two[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
        if (sscanf(two, "%2x", &v) != 1)
            return -1;
        key[i] = (uint8_t)v;
    }
    return 0;
}

/* "VmRSS" or "VmHWM" of a process in KiB; -1 if unknown. */
static long proc_status_kib(int pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15). */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The 1-minute load average: other work on the machine skews every figure here. */
static double loadavg(void)
{
    double v = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = NAN;
        fclose(f);
    }
    return v;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* GET over HTTP/1.0 on loopback (blocking, 5 s timeout): the body, malloc'd, or NULL. Used only
 * between measurements. */
static char *http_get(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    char req[256];
    size_t cap = 1 << 16, len = 0;
    char *buf = NULL;
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || write(fd, req, (size_t)n) != n)
        goto fail;
    buf = pw_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = pw_xrealloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    if (!body || strncmp(buf, "HTTP/1.", 7) || !strstr(buf, " 200 ")) {
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

/* Reads histogram name from a /metrics text. Returns 0, or -1 if it is not there. */
static int hist_parse(const char *text, const char *name, hist *h)
{
    char pre[128];
    size_t pl = (size_t)snprintf(pre, sizeof pre, "%s_bucket{le=\"", name);
    memset(h, 0, sizeof *h);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, pre, pl) == 0 && h->n < HIST_MAX) {
            const char *le = p + pl;
            h->le[h->n] = strncmp(le, "+Inf", 4) == 0 ? INFINITY : strtod(le, NULL);
            const char *sp = strchr(le, ' ');
            h->count[h->n++] = sp ? strtod(sp + 1, NULL) : 0;
        } else if (strncmp(p, name, strlen(name)) == 0) {
            const char *rest = p + strlen(name);
            if (strncmp(rest, "_sum ", 5) == 0)
                h->sum = strtod(rest + 5, NULL);
            else if (strncmp(rest, "_count ", 7) == 0)
                h->total = strtod(rest + 7, NULL);
        }
    }
    return h->n ? 0 : -1;
}

/* Upper bound (s) of the bucket holding quantile q of the observations between a and b. */
static double hist_quantile(const hist *a, const hist *b, double q)
{
    double total = b->total - a->total;
    for (size_t i = 0; i < b->n && total > 0; i++)
        if (b->count[i] - (i < a->n ? a->count[i] : 0) >= q * total)
            return b->le[i];
    return NAN;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    size_t k = (size_t)ceil(q * (double)n);
    return v[k ? k - 1 : 0];
}

/* ---- the facility's config ------------------------------------------------------------------ */

static double main_limit(int n)
{
    return round(LOW_A + CAR_A * n);
}

static double high_a(int n)
{
    return LOW_A + STEP_CAR_A * n;
}

static int write_config(const bench *b, const char *path)
{
    static const char *const rot[] = {"L1L2L3", "L2L3L1", "L3L1L2"};
    int n = b->o.chargers;
    char listen[64], ocpp_listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", b->http_port);
    snprintf(ocpp_listen, sizeof ocpp_listen, "127.0.0.1:%u", b->ocpp_port);
    json_t *nodes =
        json_pack("[{s:s, s:n, s:f}, {s:s, s:s, s:f, s:{s:{s:{s:i}}, s:i}}]", "id", "main",
                  "parent", "limit_a", main_limit(n), "id", "building", "parent", "main", "limit_a",
                  1000.0, "meter", "link", "lan", "device_id", (int)METER_ID, "timeout_s", 15);
    json_t *chargers = json_array();
    for (int g = 0; g * PER_GARAGE < n; g++) {
        char id[16];
        snprintf(id, sizeof id, "g%d", g);
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:f}", "id", id, "parent", "main",
                                               "limit_a", MAX_A * PER_GARAGE + 100));
    }
    for (int i = 0; i < n; i++) {
        char id[16], garage[16];
        snprintf(id, sizeof id, "c%04d", i + 1);
        snprintf(garage, sizeof garage, "g%d", i / PER_GARAGE);
        json_array_append_new(chargers,
                              json_pack("{s:s, s:{s:{s:s, s:i}}, s:s, s:s, s:f, s:f, s:f}", "id",
                                        id, "link", "ocpp", "id", b->cps[i].id, "connector", 1,
                                        "node", garage, "wiring", rot[i % 3], "min_a", MIN_A,
                                        "max_a", MAX_A, "failsafe_a", MIN_A));
    }
    /* Raises are not held (min_interval_s 0, a daily budget far above what the bench writes) and
     * a raise of STEP_CAR_A is not below the hysteresis: the bench measures the reaction. */
    json_t *cfg =
        json_pack("{s:s, s:s, s:{s:s, s:i, s:s, s:i}, s:{s:s}, s:{s:i, s:i, s:i, s:f},"
                  " s:{s:s, s:i, s:i, s:i, s:i, s:s}, s:o, s:o}",
                  "grid", "TN", "site", "ocpp bench", "network", "group", GROUP, "port",
                  (int)b->udp_port, "interface", "127.0.0.1", "ttl", 1, "http", "listen", listen,
                  "balancer", "reaction_s", 5, "lease_s", 30, "tick_ms", 1000, "hysteresis_a",
                  STEP_CAR_A / 2, "ocpp", "listen", ocpp_listen, "meter_interval_s",
                  b->o.meter_interval_s, "heartbeat_s", 300, "min_interval_s", 0, "daily_writes",
                  b->o.daily_writes, "authorize", "accept", "nodes", nodes, "chargers", chargers);
    if (!cfg)
        return -1;
    int rc = json_dump_file(cfg, path, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
    json_decref(cfg);
    return rc;
}

/* ---- the LAN building meter ----------------------------------------------------------------- */

static int send_meter(bench *b)
{
    pw_proto_msg m = {.hdr = {.type = PW_MSG_METER,
                              .sender_id = METER_ID,
                              .boot_id = b->meter_boot,
                              .seq = ++b->meter_seq}};
    for (int l = 0; l < 3; l++) {
        m.u.meter.current_ma[l] = pw_proto_milliamps(b->building_a);
        m.u.meter.voltage_dv[l] = 2300;
        m.u.meter.power_w[l] = (int32_t)(b->building_a * VOLTS);
    }
    m.u.meter.energy_wh = 1000000u + b->meter_seq;
    uint8_t out[PW_PROTO_MAX_DATAGRAM];
    int len = pw_proto_encode(&m, b->key, out, sizeof out);
    if (len <= 0)
        return -1;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(b->udp_port)};
    inet_pton(AF_INET, GROUP, &to.sin_addr);
    uv_buf_t buf = uv_buf_init((char *)out, (unsigned)len);
    b->next_meter = now_ms(b) + 1000;
    return uv_udp_try_send(&b->udp, &buf, 1, (const struct sockaddr *)&to) == len ? 0 : -1;
}

/* ---- one charge point ----------------------------------------------------------------------- */

static double cp_limit(const cp *c)
{
    if (c->tx_a >= 0 && c->started)
        return c->tx_a;
    return c->def_a >= 0 ? c->def_a : MAX_A;
}

/* Sends a frame the codec built (NUL-terminated, malloc'd) and frees it. */
static void cp_send_text(cp *c, char *text)
{
    if (!text)
        return;
    size_t len = strlen(text);
    pw_debug(COMP, "%s > %.*s", c->id, (int)len, text);
    if (c->ws && pw_web_ws_send(c->ws, text, len) == 0)
        c->b->frames_out++;
    else
        c->b->send_fail++;
    free(text);
}

/* A call of the charge point's; id_out (16 bytes, may be NULL) gets its message id. */
static void cp_call(cp *c, enum pw_ocpp_action a, json_t *payload, char *id_out)
{
    char id[16];
    snprintf(id, sizeof id, "%u", ++c->call_seq);
    if (id_out)
        memcpy(id_out, id, sizeof id);
    cp_send_text(c, pw_ocpp_call_text(id, pw_ocpp_action_name(a), payload, NULL));
}

static void cp_answer(cp *c, const char *id, json_t *payload)
{
    cp_send_text(c, pw_ocpp_result_text(id, payload, NULL));
}

static json_t *accepted(void)
{
    return json_pack("{s:s}", "status", "Accepted");
}

/* The car draws its limit on every phase; the energy register follows. */
static void cp_energy(cp *c, uint64_t now)
{
    if (c->started && c->energy_at)
        c->energy_wh += cp_limit(c) * 3 * VOLTS * (double)(now - c->energy_at) / 3.6e6;
    c->energy_at = now;
}

static void cp_meter_values(cp *c)
{
    uint64_t now = now_ms(c->b);
    cp_energy(c, now);
    double a = cp_limit(c);
    pw_ocpp_meter m = {.connector = 1,
                       .timestamp_ms = pw_wall_ms(),
                       .has_current = {true, true, true},
                       .current_a = {a, a, a},
                       .has_offered = true,
                       .offered_a = a,
                       .has_energy = true,
                       .energy_wh = (uint64_t)c->energy_wh};
    pw_strlcpy(m.tx_id, c->tx_id, sizeof m.tx_id);
    cp_call(c, PW_OCPP_A_METER_VALUES, pw_ocpp_meter_req(&m), NULL);
}

static void cp_status(cp *c, int connector)
{
    pw_ocpp_status_note s = {.connector = connector,
                             .status = connector == 0 || !c->started ? PW_OCPP_AVAILABLE
                                                                     : PW_OCPP_CHARGING,
                             .timestamp_ms = pw_wall_ms()};
    pw_strlcpy(s.error_code, "NoError", sizeof s.error_code);
    cp_call(c, PW_OCPP_A_STATUS_NOTIFICATION, pw_ocpp_status_req(&s), NULL);
}

static void cp_boot(cp *c)
{
    pw_ocpp_boot boot = {0};
    pw_strlcpy(boot.vendor, "phasewise-bench", sizeof boot.vendor);
    pw_strlcpy(boot.model, "bench-cp", sizeof boot.model);
    pw_strlcpy(boot.serial, c->id, sizeof boot.serial);
    pw_strlcpy(boot.firmware, "1.0", sizeof boot.firmware);
    cp_call(c, PW_OCPP_A_BOOT_NOTIFICATION, pw_ocpp_boot_req(&boot), c->boot_call);
}

static json_t *config_key(const cp *c, const char *key)
{
    char v[64];
    const char *value = NULL;
    if (strcmp(key, "MeterValuesSampledData") == 0)
        value = c->measurands;
    else if (strcmp(key, "MeterValueSampleInterval") == 0) {
        snprintf(v, sizeof v, "%d", c->b->o.meter_interval_s);
        value = v;
    } else if (strcmp(key, "ConnectorPhaseRotation") == 0) {
        snprintf(v, sizeof v, "1.%s", c->rotation);
        value = v;
    } else if (strcmp(key, "ChargeProfileMaxStackLevel") == 0)
        value = "8";
    else if (strcmp(key, "NumberOfConnectors") == 0)
        value = "1";
    else if (strcmp(key, "ChargingScheduleAllowedChargingRateUnit") == 0)
        value = "Current";
    else if (strcmp(key, "SupportedFeatureProfiles") == 0)
        value = "Core,SmartCharging,RemoteTrigger";
    if (!value)
        return NULL;
    return json_pack("{s:s, s:b, s:s}", "key", key, "readonly",
                     strcmp(key, "NumberOfConnectors") == 0, "value", value);
}

static void cp_get_configuration(cp *c, const char *id, const pw_ocpp_cs_call *call)
{
    static const char *const all[] = {"MeterValuesSampledData",
                                      "MeterValueSampleInterval",
                                      "ConnectorPhaseRotation",
                                      "ChargeProfileMaxStackLevel",
                                      "NumberOfConnectors",
                                      "SupportedFeatureProfiles",
                                      "ChargingScheduleAllowedChargingRateUnit"};
    json_t *known = json_array(), *unknown = json_array();
    size_t n = call->u.get_config.n ? call->u.get_config.n : PW_ARRAY_LEN(all);
    for (size_t i = 0; i < n; i++) {
        const char *key = call->u.get_config.n ? call->u.get_config.keys[i] : all[i];
        json_t *k = config_key(c, key);
        if (k)
            json_array_append_new(known, k);
        else
            json_array_append_new(unknown, json_string(key));
    }
    json_t *p = json_pack("{s:o}", "configurationKey", known);
    if (json_array_size(unknown))
        json_object_set_new(p, "unknownKey", unknown);
    else
        json_decref(unknown);
    cp_answer(c, id, p);
}

/* A SetChargingProfile arrived at t: the step's timing, then the limit it sets. */
static void cp_profile(cp *c, const char *id, const pw_ocpp_profile *p, uint64_t t)
{
    bench *b = c->b;
    b->profiles++;
    b->last_profile_at = t / 1000000u;
    if (b->phase == P_MEASURE && t >= b->steps[b->cur_step].t0) {
        step *s = &b->steps[b->cur_step];
        s->frames++;
        if (c->seen_step != b->cur_step + 1) {
            c->seen_step = b->cur_step + 1;
            s->cps++;
            if (!s->first)
                s->first = t;
            s->last = t;
            if (s->cps == ((unsigned)b->o.chargers + 1) / 2)
                s->half = t;
            s->busy_ns = b->busy_ns;
        }
    }
    cp_energy(c, t / 1000000u);
    double a = p->n_periods ? p->periods[0].limit_a : MAX_A;
    if (p->watts)
        a = a / (3 * VOLTS);
    if (p->purpose == PW_OCPP_TX) {
        c->tx_a = a;
        c->got_tx_profile = true;
    } else if (p->purpose == PW_OCPP_TX_DEFAULT) {
        c->def_a = a;
    }
    cp_answer(c, id, accepted());
}

static void cp_clear(cp *c, const char *id, const pw_ocpp_cs_call *call)
{
    cp_energy(c, now_ms(c->b));
    bool any = !call->u.clear.has_id && !call->u.clear.has_purpose;
    if (any || (call->u.clear.has_purpose && call->u.clear.purpose == PW_OCPP_TX))
        c->tx_a = -1;
    if (any || (call->u.clear.has_purpose && call->u.clear.purpose == PW_OCPP_TX_DEFAULT))
        c->def_a = -1;
    if (call->u.clear.has_id && call->u.clear.id >= 100)
        c->tx_a = -1;
    cp_answer(c, id, accepted());
}

static void cp_trigger(cp *c, const char *id, const pw_ocpp_cs_call *call)
{
    const char *what = call->u.trigger.message;
    bool mv = strcmp(what, "MeterValues") == 0, st = strcmp(what, "StatusNotification") == 0;
    bool hb = strcmp(what, "Heartbeat") == 0;
    cp_answer(c, id, json_pack("{s:s}", "status", mv || st || hb ? "Accepted" : "NotImplemented"));
    if (mv && c->started)
        cp_meter_values(c);
    else if (st && call->u.trigger.connector < 0) {
        cp_status(c, 0);
        cp_status(c, 1);
    } else if (st)
        cp_status(c, call->u.trigger.connector);
    else if (hb)
        cp_call(c, PW_OCPP_A_HEARTBEAT, pw_ocpp_heartbeat_req(), NULL);
}

static void cp_on_call(cp *c, const pw_ocpp_frame *f, uint64_t t)
{
    pw_ocpp_cs_call call;
    pw_ocpp_fault fault;
    if (pw_ocpp_decode_cs_call(f, &call, &fault) != 0) {
        pw_warn(COMP, "%s: refused a call: %s", c->id, fault.text);
        cp_send_text(c, pw_ocpp_error_text(f->id, fault.code, fault.text, NULL));
        return;
    }
    switch (call.action) {
    case PW_OCPP_A_GET_CONFIGURATION:
        cp_get_configuration(c, f->id, &call);
        break;
    case PW_OCPP_A_CHANGE_CONFIGURATION:
        if (strcmp(call.u.change_config.key, "MeterValuesSampledData") == 0)
            pw_strlcpy(c->measurands, call.u.change_config.value, sizeof c->measurands);
        cp_answer(c, f->id, accepted());
        break;
    case PW_OCPP_A_TRIGGER_MESSAGE:
        cp_trigger(c, f->id, &call);
        break;
    case PW_OCPP_A_SET_CHARGING_PROFILE:
        cp_profile(c, f->id, &call.u.profile, t);
        break;
    case PW_OCPP_A_CLEAR_CHARGING_PROFILE:
        cp_clear(c, f->id, &call);
        break;
    default:
        cp_send_text(c, pw_ocpp_error_text(f->id, PW_OCPP_NOT_SUPPORTED, "not in the bench", NULL));
        break;
    }
}

/* An answer to one of the charge point's calls: boot, then the transaction, then its status. */
static void cp_on_result(cp *c, const pw_ocpp_frame *f)
{
    pw_ocpp_fault fault;
    enum pw_ocpp_answer status = PW_OCPP_REJECTED;
    if (c->boot_call[0] && strcmp(f->id, c->boot_call) == 0) {
        c->boot_call[0] = '\0';
        if (pw_ocpp_decode_cp_result(PW_OCPP_A_BOOT_NOTIFICATION, f->payload, &status, NULL, NULL,
                                     &fault) != 0 ||
            status != PW_OCPP_ACCEPTED) {
            pw_warn(COMP, "%s: BootNotification not accepted", c->id);
            return;
        }
        c->booted = true;
        cp_status(c, 0);
        pw_ocpp_start_tx s = {
            .connector = 1, .meter_start_wh = (int64_t)c->energy_wh, .timestamp_ms = pw_wall_ms()};
        snprintf(s.id_tag, sizeof s.id_tag, "TAG%04d", c->index + 1);
        cp_call(c, PW_OCPP_A_START_TRANSACTION, pw_ocpp_start_req(&s), c->start_call);
    } else if (c->start_call[0] && strcmp(f->id, c->start_call) == 0) {
        c->start_call[0] = '\0';
        if (pw_ocpp_decode_cp_result(PW_OCPP_A_START_TRANSACTION, f->payload, &status, NULL,
                                     c->tx_id, &fault) != 0 ||
            status != PW_OCPP_ACCEPTED) {
            pw_warn(COMP, "%s: StartTransaction not accepted", c->id);
            return;
        }
        c->started = true;
        c->energy_at = now_ms(c->b);
        cp_status(c, 1);
        /* Staggered over the interval, so the MeterValues are spread evenly. */
        uint64_t every = (uint64_t)c->b->o.meter_interval_s * 1000u;
        c->next_mv = c->energy_at + 1 + every * (uint64_t)c->index / (uint64_t)c->b->o.chargers;
    }
}

static void on_open(void *ud, void *conn_ud, pw_web_ws *ws)
{
    (void)ud;
    cp *c = conn_ud;
    c->ws = ws;
    c->open = true;
    c->connecting = false;
    cp_boot(c);
}

static void handle_message(cp *c, const char *text, size_t len, uint64_t t)
{
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    c->b->frames_in++;
    pw_debug(COMP, "%s < %.*s", c->id, (int)len, text);
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0) {
        pw_warn(COMP, "%s: unreadable frame: %s", c->id, fault.text);
        c->b->errors_in++;
    } else if (f.kind == PW_OCPP_CALL) {
        cp_on_call(c, &f, t);
    } else if (f.kind == PW_OCPP_RESULT) {
        cp_on_result(c, &f);
    } else {
        c->b->errors_in++;
        pw_warn(COMP, "%s: CALLERROR %s", c->id, f.error_text);
    }
    pw_ocpp_frame_clear(&f);
}

/* Frames are only stamped and queued here, and handled after the loop has read every connection
 * that was ready: a frame's time is when it reached this process, not when the bench got round
 * to it after answering the frames before it (which would add the bench's own work to the
 * appliance's figure). */
static void on_message(void *ud, void *conn_ud, const char *text, size_t len)
{
    (void)ud;
    bench *b = ((cp *)conn_ud)->b;
    if (b->n_inbox == b->cap_inbox) {
        b->cap_inbox = b->cap_inbox ? 2 * b->cap_inbox : 1024;
        b->inbox = pw_xrealloc(b->inbox, b->cap_inbox * sizeof *b->inbox);
    }
    char *copy = pw_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    b->inbox[b->n_inbox++] = (inbox_item){.c = conn_ud, .text = copy, .len = len, .t = uv_hrtime()};
}

static void on_inbox(uv_check_t *h)
{
    bench *b = h->data;
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < b->n_inbox; i++) {
        handle_message(b->inbox[i].c, b->inbox[i].text, b->inbox[i].len, b->inbox[i].t);
        free(b->inbox[i].text);
    }
    if (b->n_inbox)
        b->busy_ns += uv_hrtime() - t0;
    b->n_inbox = 0;
}

static void on_closed(void *ud, void *conn_ud, const char *why)
{
    (void)ud;
    cp *c = conn_ud;
    bench *b = c->b;
    if (c->open && b->phase != P_STOP && b->drops++ == 0)
        pw_warn(COMP, "%s: connection lost: %s (further losses are only counted)", c->id, why);
    if (b->phase != P_STOP)
        b->reconnects++;
    c->ws = NULL;
    c->open = c->connecting = c->booted = c->started = false;
    c->boot_call[0] = c->start_call[0] = c->tx_id[0] = '\0';
    c->retry_at = now_ms(b) + RETRY_MS;
}

static void cp_connect(cp *c)
{
    bench *b = c->b;
    char url[128], err[256];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/ocpp/%s", b->ocpp_port, c->id);
    pw_web_ws_client_opts co = {
        .url = url,
        .subprotocol = PW_OCPP_SUBPROTOCOL,
        .limits = {.max_message = PW_OCPP_MAX_FRAME},
        .handlers = {.open = on_open, .message = on_message, .closed = on_closed},
        .conn_ud = c};
    c->connecting = true;
    if (pw_web_ws_connect(b->web, &co, err, sizeof err) != 0) {
        c->connecting = false;
        c->retry_at = now_ms(b) + RETRY_MS;
        pw_warn(COMP, "%s: %s", c->id, err);
    }
}

/* ---- the run -------------------------------------------------------------------------------- */

static void stop(bench *b, bool failed);

static int count(const bench *b, bool (*pred)(const cp *))
{
    int n = 0;
    for (int i = 0; i < b->o.chargers; i++)
        n += pred(&b->cps[i]);
    return n;
}

static bool is_open(const cp *c)
{
    return c->open;
}

static bool is_ready(const cp *c)
{
    return c->started && c->got_tx_profile;
}

static void read_metrics(bench *b, hist *h)
{
    char *text = http_get(b->http_port, "/metrics");
    if (!text || hist_parse(text, "phasewise_tick_duration_seconds", h) != 0)
        pw_warn(COMP, "no phasewise_tick_duration_seconds in /metrics");
    free(text);
}

static void start_step(bench *b, int k)
{
    step *s = &b->steps[k];
    b->cur_step = k;
    s->cut = k % 2 == 0;
    b->building_a = s->cut ? high_a(b->o.chargers) : LOW_A;
    b->busy_ns = 0;
    s->t0 = uv_hrtime();
    if (send_meter(b) != 0) {
        pw_error(COMP, "cannot send the meter datagram");
        stop(b, true);
        return;
    }
    b->step_end = now_ms(b) + (uint64_t)b->o.period_ms;
}

static void start_measure(bench *b)
{
    b->rss_ready_kib = proc_status_kib(b->proc.pid, "VmRSS");
    read_metrics(b, &b->tick0);
    b->phase = P_MEASURE;
    b->m_t0 = uv_hrtime();
    b->m_in0 = b->frames_in;
    b->m_out0 = b->frames_out;
    b->cpu0 = proc_cpu_s(b->proc.pid);
    b->self_cpu0 = self_cpu_s();
    b->load0 = loadavg();
    start_step(b, 0);
}

static void end_measure(bench *b)
{
    b->m_t1 = uv_hrtime();
    b->open_end = count(b, is_open);
    b->ready_end = count(b, is_ready);
    b->m_in1 = b->frames_in;
    b->m_out1 = b->frames_out;
    b->cpu1 = proc_cpu_s(b->proc.pid);
    b->self_cpu1 = self_cpu_s();
    b->load1 = loadavg();
    b->rss_kib = proc_status_kib(b->proc.pid, "VmRSS");
    b->hwm_kib = proc_status_kib(b->proc.pid, "VmHWM");
    b->anon_kib = proc_status_kib(b->proc.pid, "RssAnon");
    b->file_kib = proc_status_kib(b->proc.pid, "RssFile");
    read_metrics(b, &b->tick1);
    stop(b, false);
}

static void on_web_closed(void *ud)
{
    ((bench *)ud)->web_closed = true;
}

/* Closes every connection and asks phasewise to exit; the tick goes on until it has. */
static void stop(bench *b, bool failed)
{
    if (b->phase == P_STOP)
        return;
    b->failed = b->failed || failed;
    b->phase = P_STOP;
    b->stop_at = now_ms(b);
    if (b->web)
        pw_web_close(b->web, on_web_closed, b);
    else
        b->web_closed = true;
    b->web = NULL;
    if (b->proc_running)
        uv_process_kill(&b->proc, SIGTERM);
}

static void on_tick(uv_timer_t *t)
{
    bench *b = t->data;
    uint64_t now = now_ms(b);
    uint64_t t0 = uv_hrtime();
    if (b->phase == P_STOP) {
        if (b->proc_running && now - b->stop_at > STOP_MS) {
            pw_warn(COMP, "phasewise did not exit on SIGTERM: SIGKILL");
            uv_process_kill(&b->proc, SIGKILL);
            b->stop_at = now;
        }
        if (!b->web_closed && now - b->stop_at > 2 * STOP_MS) {
            /* libwebsockets did not finish closing: leave rather than hang (bounded run). */
            pw_error(COMP, "the WebSocket clients did not close; leaving the loop");
            b->failed = b->gave_up = true;
            uv_stop(&b->loop);
        }
        if (!b->proc_running && b->web_closed) {
            uv_close((uv_handle_t *)&b->tick, NULL);
            uv_close((uv_handle_t *)&b->inbox_check, NULL);
            uv_close((uv_handle_t *)&b->udp, NULL);
            uv_close((uv_handle_t *)&b->proc, NULL);
        }
        return;
    }
    if (!b->proc_running) {
        pw_error(COMP, "phasewise exited (status %lld, signal %d); see %s/phasewise.log",
                 (long long)b->proc_status, b->proc_signal, b->tmp);
        stop(b, true);
        return;
    }
    if (b->phase != P_MEASURE && now - b->phase_at > SETUP_MS) {
        pw_error(COMP, "setup took over %d s: %d of %d charge points connected, %d ready",
                 SETUP_MS / 1000, count(b, is_open), b->o.chargers, count(b, is_ready));
        stop(b, true);
        return;
    }
    if (b->phase == P_START) {
        char path[128];
        snprintf(path, sizeof path, "%s/facility.key", b->tmp);
        if (read_key(path, b->key) != 0)
            return;
        b->have_key = true;
        b->phase = P_CONNECT;
        b->next_meter = now + 500; /* let the listeners open */
        return;
    }
    if (b->have_key && now >= b->next_meter && send_meter(b) != 0)
        pw_warn(COMP, "cannot send the meter datagram");
    for (int k = 0, started = 0; k < b->o.chargers && started < CONNECTS_TICK; k++) {
        cp *c = &b->cps[(b->n_connect_next + k) % b->o.chargers];
        if (!c->open && !c->connecting && now >= c->retry_at && now >= b->phase_at + 500) {
            cp_connect(c);
            started++;
            b->n_connect_next = (c->index + 1) % b->o.chargers;
        }
    }
    for (int i = 0; i < b->o.chargers; i++) {
        cp *c = &b->cps[i];
        if (c->started && now >= c->next_mv) {
            cp_meter_values(c);
            c->next_mv += (uint64_t)b->o.meter_interval_s * 1000u;
        }
    }
    if (b->phase == P_CONNECT && count(b, is_ready) == b->o.chargers) {
        b->phase = P_SETTLE;
        pw_info(COMP, "all %d charge points charging with a TxProfile after %.1f s", b->o.chargers,
                (double)(now - b->phase_at) / 1000);
    } else if (b->phase == P_SETTLE && now - b->last_profile_at >= QUIET_MS) {
        start_measure(b);
    } else if (b->phase == P_MEASURE && now >= b->step_end) {
        b->steps[b->cur_step].limit_a = cp_limit(&b->cps[0]);
        b->steps[b->cur_step].rss_kib = proc_status_kib(b->proc.pid, "VmRSS");
        if (b->cur_step + 1 < b->o.steps)
            start_step(b, b->cur_step + 1);
        else
            end_measure(b);
    }
    b->busy_ns += uv_hrtime() - t0;
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    bench *b = p->data;
    b->proc_running = false;
    b->proc_status = status;
    b->proc_signal = sig;
}

static int spawn_phasewise(bench *b, const char *cfg_path)
{
    char log_path[128];
    snprintf(log_path, sizeof log_path, "%s/phasewise.log", b->tmp);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    char *args[] = {(char *)b->o.phasewise, "serve", "--config", (char *)cfg_path, "--data", b->tmp,
                    "--log-level",          "warn",  NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = fd},
                                     {.flags = UV_INHERIT_FD, .data.fd = fd}};
    uv_process_options_t po = {.exit_cb = on_exit_cb,
                               .file = b->o.phasewise,
                               .args = args,
                               .stdio_count = 3,
                               .stdio = stdio};
    b->proc.data = b;
    int rc = uv_spawn(&b->loop, &b->proc, &po);
    close(fd);
    if (rc != 0) {
        pw_error(COMP, "cannot start %s: %s", b->o.phasewise, uv_strerror(rc));
        uv_close((uv_handle_t *)&b->proc, NULL);
        return -1;
    }
    b->proc_running = true;
    return 0;
}

/* ---- the report ----------------------------------------------------------------------------- */

static void report(const bench *b)
{
    int n = b->o.steps;
    double *first = pw_xcalloc((size_t)n, sizeof *first),
           *last = pw_xcalloc((size_t)n, sizeof *last);
    size_t nf = 0, incomplete = 0;
    uint64_t frames = 0;
    printf("step  kind  cps   frames  first ms   half ms  last ms  us/cp  bench busy ms  CP-0001 A "
           " RSS KiB\n");
    for (int k = 0; k < n; k++) {
        const step *s = &b->steps[k];
        frames += s->frames;
        incomplete += s->cps < (unsigned)b->o.chargers;
        if (!s->first) {
            printf("%4d  %-5s %5u %6u  -\n", k, s->cut ? "cut" : "raise", s->cps, s->frames);
            continue;
        }
        first[nf] = (double)(s->first - s->t0) / 1e6;
        last[nf] = (double)(s->last - s->t0) / 1e6;
        printf("%4d  %-5s %5u %6u  %8.2f %8.2f %8.2f %6.1f %8.2f %10.1f %8ld\n", k,
               s->cut ? "cut" : "raise", s->cps, s->frames, first[nf],
               s->half ? (double)(s->half - s->t0) / 1e6 : NAN, last[nf],
               s->cps > 1 ? (double)(s->last - s->first) / 1e3 / (s->cps - 1) : NAN,
               (double)s->busy_ns / 1e6, s->limit_a, s->rss_kib);
        nf++;
    }
    qsort(first, nf, sizeof *first, cmp_double);
    qsort(last, nf, sizeof *last, cmp_double);
    double secs = (double)(b->m_t1 - b->m_t0) / 1e9;
    uint64_t fin = b->m_in1 - b->m_in0, fout = b->m_out1 - b->m_out0;
    printf("\ncharge points connected: %d of %d at the end (%d charging with a TxProfile); drops "
           "%llu, reconnects %llu, CALLERRORs/unreadable %llu\n",
           b->open_end, b->o.chargers, b->ready_end, (unsigned long long)b->drops,
           (unsigned long long)b->reconnects, (unsigned long long)b->errors_in);
    printf("config: main fuse %.0f A binding, building load %.0f A <-> %.0f A a line "
           "(every car cut/raised by ~%.1f A); ocpp min_interval_s 0, daily_writes %d, "
           "balancer hysteresis_a %.1f: raises are not held, the bench measures the reaction\n",
           main_limit(b->o.chargers), LOW_A, high_a(b->o.chargers), STEP_CAR_A, b->o.daily_writes,
           STEP_CAR_A / 2);
    printf("steps: %d (%zu with frames, %zu reached fewer than all charge points), every %d ms;"
           " %llu SetChargingProfile frames\n",
           n, nf, incomplete, b->o.period_ms, (unsigned long long)frames);
    printf("meter datagram -> FIRST SetChargingProfile: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           pct(first, nf, 0.5), pct(first, nf, 0.99), nf ? first[nf - 1] : NAN);
    printf("meter datagram -> LAST  SetChargingProfile: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
           "  (target p99 <= 50 ms: %s)\n",
           pct(last, nf, 0.5), pct(last, nf, 0.99), nf ? last[nf - 1] : NAN,
           nf && pct(last, nf, 0.99) <= 50 ? "met" : "MISSED");
    double h50 = hist_quantile(&b->tick0, &b->tick1, 0.5);
    double h99 = hist_quantile(&b->tick0, &b->tick1, 0.99);
    double runs = b->tick1.total - b->tick0.total;
    printf("appliance loop (phasewise_tick_duration_seconds, one core run and its sends): %.0f "
           "runs, mean %.3f ms, p50 <= %g ms, p99 <= %g ms\n",
           runs, runs > 0 ? (b->tick1.sum - b->tick0.sum) / runs * 1e3 : NAN, h50 * 1e3, h99 * 1e3);
    printf("appliance RSS: VmRSS %ld KiB when settled, %ld KiB at the end (anon %ld, file %ld); "
           "VmHWM %ld KiB (target <= 64 MiB = 65536 KiB: %s)\n",
           b->rss_ready_kib, b->rss_kib, b->anon_kib, b->file_kib, b->hwm_kib,
           b->hwm_kib > 0 && b->hwm_kib <= 65536 ? "met" : "MISSED");
    printf("appliance CPU %.1f%%, bench CPU %.1f%% over %.1f s (machine load average %.2f -> "
           "%.2f on %ld CPUs); frames/s: %.0f to the charge points, %.0f from them (%llu + %llu)\n",
           100 * (b->cpu1 - b->cpu0) / secs, 100 * (b->self_cpu1 - b->self_cpu0) / secs, secs,
           b->load0, b->load1, sysconf(_SC_NPROCESSORS_ONLN), (double)fin / secs,
           (double)fout / secs, (unsigned long long)fin, (unsigned long long)fout);
    free(first);
    free(last);
}

/* ---- main ----------------------------------------------------------------------------------- */

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {{"phasewise", required_argument, NULL, 'p'},
                                       {"chargers", required_argument, NULL, 'n'},
                                       {"steps", required_argument, NULL, 's'},
                                       {"period-ms", required_argument, NULL, 't'},
                                       {"daily-writes", required_argument, NULL, 'd'},
                                       {"meter-interval", required_argument, NULL, 'm'},
                                       {"keep", no_argument, NULL, 'k'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {NULL, 0, NULL, 0}};
    *o = (opts){.chargers = 1000,
                .steps = 30,
                .period_ms = 3000,
                .daily_writes = 1000,
                .meter_interval_s = 10};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            o->phasewise = optarg;
            break;
        case 'n':
            o->chargers = atoi(optarg);
            break;
        case 's':
            o->steps = atoi(optarg);
            break;
        case 't':
            o->period_ms = atoi(optarg);
            break;
        case 'd':
            o->daily_writes = atoi(optarg);
            break;
        case 'm':
            o->meter_interval_s = atoi(optarg);
            break;
        case 'k':
            o->keep = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        default:
            return -1;
        }
    }
    if (!o->phasewise || optind != argc || o->chargers < 1 || o->chargers > 1000 || o->steps < 1 ||
        o->steps > MAX_STEPS || o->period_ms < 1000 || o->period_ms > 60000 ||
        o->daily_writes < 1 || o->daily_writes > 100000 || o->meter_interval_s < 1 ||
        o->meter_interval_s > 900)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static bench b; /* large (the steps); zeroed */
    char cfg_path[128];
    bool loop_open = false, udp_open = false;
    int rc = 1;
    if (parse_opts(argc, argv, &b.o) != 0) {
        fprintf(stderr,
                "usage: ocpp_bench --phasewise PATH [--chargers 1..1000 (1000)] [--steps N (30)]\n"
                "                  [--period-ms 1000..60000 (3000)] [--daily-writes N (1000)]\n"
                "                  [--meter-interval S (10)] [--keep] [--verbose]\n"
                "Starts `phasewise serve` (a release build) on a generated facility of N OCPP\n"
                "charge points, plays them and a LAN building meter on loopback, and times\n"
                "building-load steps to the SetChargingProfile frames they cause.\n");
        return 2;
    }
    pw_log_set_level(b.o.verbose ? PW_LOG_DEBUG : PW_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    /* Two sockets a charge point (its and the appliance's end): raise the descriptor limit for
     * both processes. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(b.tmp, sizeof b.tmp, "/tmp/pw-ocpp-bench-XXXXXX");
    if (!mkdtemp(b.tmp)) {
        perror("mkdtemp");
        return 1;
    }
    b.cps = pw_xcalloc((size_t)b.o.chargers, sizeof *b.cps);
    for (int i = 0; i < b.o.chargers; i++) {
        static const char *const rot[] = {"RST", "STR", "TRS"};
        cp *c = &b.cps[i];
        c->b = &b;
        c->index = i;
        snprintf(c->id, sizeof c->id, "CP-%04d", i + 1);
        pw_strlcpy(c->rotation, rot[i % 3], sizeof c->rotation);
        pw_strlcpy(c->measurands, "Energy.Active.Import.Register", sizeof c->measurands);
        c->def_a = c->tx_a = -1;
        c->energy_wh = 1000.0 * i;
    }
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", b.tmp);
    b.meter_boot = (uint32_t)(pw_wall_ms() / 1000) & 0x7fffffffu;
    b.building_a = LOW_A;
    if (free_port(SOCK_STREAM, &b.http_port) || free_port(SOCK_STREAM, &b.ocpp_port) ||
        free_port(SOCK_DGRAM, &b.udp_port) || b.http_port == b.ocpp_port) {
        pw_error(COMP, "no free loopback port");
        goto done;
    }
    if (write_config(&b, cfg_path) != 0) {
        pw_error(COMP, "cannot write %s", cfg_path);
        goto done;
    }
    if (uv_loop_init(&b.loop) != 0)
        goto done;
    loop_open = true;
    struct sockaddr_in any = {.sin_family = AF_INET};
    if (uv_udp_init(&b.loop, &b.udp) != 0)
        goto done;
    udp_open = true;
    if (uv_udp_bind(&b.udp, (const struct sockaddr *)&any, 0) != 0 ||
        uv_udp_set_multicast_interface(&b.udp, "127.0.0.1") != 0 ||
        uv_udp_set_multicast_ttl(&b.udp, 1) != 0 || uv_udp_set_multicast_loop(&b.udp, 1) != 0) {
        pw_error(COMP, "cannot set up the meter's multicast socket");
        goto done;
    }
    char err[256];
    if (pw_web_new_bare(&b.web, &b.loop, err, sizeof err) != 0) {
        pw_error(COMP, "%s", err);
        goto done;
    }
    if (spawn_phasewise(&b, cfg_path) != 0) {
        pw_web_close(b.web, NULL, NULL);
        b.web = NULL;
        goto done;
    }
    uv_timer_init(&b.loop, &b.tick);
    b.tick.data = &b;
    uv_check_init(&b.loop, &b.inbox_check);
    b.inbox_check.data = &b;
    uv_check_start(&b.inbox_check, on_inbox);
    b.phase_at = now_ms(&b);
    b.last_profile_at = b.phase_at;
    uv_timer_start(&b.tick, on_tick, TICK_MS, TICK_MS);
    printf("ocpp_bench: %d charge points, %d steps every %d ms, phasewise %s (pid %d), data %s\n",
           b.o.chargers, b.o.steps, b.o.period_ms, b.o.phasewise, b.proc.pid, b.tmp);
    fflush(stdout);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    udp_open = false; /* closed by the tick */
    if (!b.failed) {
        report(&b);
        printf("phasewise exit status %lld (signal %d)\n", (long long)b.proc_status, b.proc_signal);
        rc = 0;
    }
done:
    if (udp_open)
        uv_close((uv_handle_t *)&b.udp, NULL);
    if (loop_open && !b.gave_up) {
        uv_run(&b.loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&b.loop) != 0) {
            pw_error(COMP, "handles left open at exit");
            rc = 1;
        }
    }
    for (size_t i = 0; i < b.n_inbox; i++)
        free(b.inbox[i].text);
    free(b.inbox);
    free(b.cps);
    if (b.o.keep || rc != 0)
        fprintf(stderr, "kept %s\n", b.tmp);
    else
        nftw(b.tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}
