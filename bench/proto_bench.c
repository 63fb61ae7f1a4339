/* Protocol benchmark (prints figures; not a timed test). Part 1: decode + verify + replay check
 * throughput of status datagrams on one core. Part 2: bytes on the wire per charger and day,
 * counted over a simulated day of charging sessions in fake time: the chargers and the meter send
 * by PROTOCOL.md's schedule, the appliance's control core (pw_ctl) decides when the plan goes out
 * (a new plan, a lease renewal, a cut resent), the plan goes to every charger as the LAN
 * transport sends it, and every datagram is encoded with the real encoder.
 * usage: proto_bench [seconds for part 1, default 3] */
#include "pw_ctl.h"
#include "pw_proto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_S         86400u
#define MAX_CHARGERS  256
#define CAR_MAX_MA    32000u
#define RATED_MA      32000u
#define CHANGE_MA     1000u /* a charger's status goes out on a change of this much current */
#define IDLE_OFFER_MA 6000u /* the charger's failsafe offer without a lease */
#define METER_ID      9001u

static const uint8_t bench_key[PW_PROTO_KEY_LEN] = {
    0x3b, 0x91, 0x0e, 0x55, 0xa2, 0x7c, 0x18, 0xd4, 0x66, 0x09, 0xef, 0x40, 0x2d, 0x83, 0xb7, 0x5a,
    0xc1, 0x7f, 0x24, 0x98, 0x0b, 0xe6, 0x53, 0x3a, 0x8d, 0x12, 0xfa, 0x6e, 0x47, 0xb0, 0x29, 0xc5};

/* CPU time of this process, so that the figure is the cost on one core even on a machine that
 * other work shares (the benchmark is single-threaded). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic generator (xorshift32), so every run simulates the same day. */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static uint32_t rng_range(uint32_t *s, uint32_t lo, uint32_t hi)
{
    return lo + rng_next(s) % (hi - lo + 1);
}

/* ---------------- part 1: throughput ---------------- */

enum { TP_SENDERS = 64, TP_PER_SENDER = 64 };

static void status_sample(pw_proto_msg *m, uint32_t sender, uint32_t seq)
{
    memset(m, 0, sizeof *m);
    m->hdr =
        (pw_proto_hdr){.type = PW_MSG_STATUS, .sender_id = 1000 + sender, .boot_id = 5, .seq = seq};
    m->u.status = (pw_msg_status){.iec_state = PW_IEC_C,
                                  .current_ma = {15900 + seq, 15800, 16000},
                                  .voltage_dv = {2301, 2298, 2305},
                                  .energy_wh = 1234567 + seq,
                                  .applied_limit_ma = 16000,
                                  .applied_phases = 3,
                                  .alloc_seq = 42,
                                  .session_id = 17};
}

/* Decodes every datagram of dg under key round after round for the given CPU seconds, with a
 * replay check on those that decode. Returns datagrams per second; *ok counts the accepted. */
static double decode_rate(uint8_t (*dg)[80], const int *len, int n, const uint8_t *key,
                          double seconds, unsigned long long *ok, unsigned long long *done)
{
    pw_proto_replay replay[TP_SENDERS];
    double t0 = cpu_s(), t1;
    *ok = *done = 0;
    do {
        memset(replay, 0, sizeof replay); /* each round replays the same sequences */
        for (int i = 0; i < n; i++) {
            pw_proto_msg m;
            if (pw_proto_decode(dg[i], (size_t)len[i], key, &m) == 0 &&
                pw_proto_replay_check(&replay[m.hdr.sender_id - 1000], &m.hdr) == 0)
                (*ok)++;
        }
        *done += (unsigned)n;
        t1 = cpu_s();
    } while (t1 - t0 < seconds);
    return (double)*done / (t1 - t0);
}

static void throughput(double seconds)
{
    enum { N = TP_SENDERS * TP_PER_SENDER };
    static uint8_t dg[N][80];
    static int len[N];
    /* Interleaved senders, each with increasing sequences, as a receiver sees them. */
    for (uint32_t i = 0; i < N; i++) {
        pw_proto_msg m;
        status_sample(&m, i % TP_SENDERS, i / TP_SENDERS);
        len[i] = pw_proto_encode(&m, bench_key, dg[i], sizeof dg[i]);
        if (len[i] <= 0) {
            fprintf(stderr, "encode failed: %s\n", pw_proto_strerror(len[i]));
            exit(1);
        }
    }
    unsigned long long ok, done;
    double rate = decode_rate(dg, len, N, bench_key, seconds, &ok, &done);
    if (ok != done) {
        fprintf(stderr, "only %llu of %llu accepted\n", ok, done);
        exit(1);
    }
    printf("decode+verify+replay check, status datagrams (%d bytes), one core (CPU time):\n",
           len[0]);
    printf("  %llu datagrams: %.0f datagrams/s, %.0f ns each (target >= 500000/s)\n", done, rate,
           1e9 / rate);
    /* A flood of datagrams under the wrong key costs the same tag computation. */
    uint8_t wrong[PW_PROTO_KEY_LEN];
    memcpy(wrong, bench_key, sizeof wrong);
    wrong[0] ^= 1;
    rate = decode_rate(dg, len, N, wrong, seconds / 2, &ok, &done);
    if (ok != 0) {
        fprintf(stderr, "datagrams accepted under the wrong key\n");
        exit(1);
    }
    printf("  rejected under a wrong key: %.0f datagrams/s\n\n", rate);
}

/* ---------------- part 2: traffic in a simulated day ---------------- */

struct car_session {
    uint32_t arrive, depart; /* seconds of the day */
    uint32_t need_wh;        /* energy the car takes before it stops by itself */
    uint32_t max_ma;         /* the car's own limit per phase */
    uint8_t phases;
};

struct charger {
    uint32_t id;
    struct car_session s[2];
    int sessions;
    uint32_t session_id;
    /* measured state */
    uint8_t iec;
    uint32_t current_ma[3];
    double energy_wh, session_wh;
    /* allocation state */
    uint32_t limit_ma, alloc_seq;
    uint64_t lease_until_ms;
    /* sending state */
    pw_msg_status last;
    uint32_t last_status_s;
    bool sent_once, pending;
    uint32_t seq;
};

struct counters {
    unsigned long long charger_bytes, balancer_bytes, meter_bytes;
    unsigned long statuses, announces, plans, renewals, heartbeats, alloc_datagrams, meters;
    unsigned long failsafe_s; /* charger-seconds spent on the failsafe current */
};

/* The facility as the appliance's config describes it: one metered main fuse sized for half the
 * chargers at full current, chargers of 6-32 A wired L1L2L3 with a 6 A failsafe. */
struct bench_cfg {
    pw_cfg cfg;
    pw_bal_node_spec node;
    pw_cfg_link meter;
    pw_bal_charger_spec chargers[MAX_CHARGERS];
    pw_cfg_link links[MAX_CHARGERS];
};

struct facility {
    int n;
    bool jittery; /* cars whose current wanders by >= 1 A every few seconds */
    struct charger c[MAX_CHARGERS];
    struct bench_cfg bc;
    pw_ctl *ctl;
    uint32_t bal_seq, meter_seq;
    uint32_t sent_plan_seq; /* plan_seq of the last plan that went out */
    bool sent_once;
    struct counters k;
};

/* The core's clocks: monotonic ms from the start of the day; wall time is the same (no
 * sessions or events are recorded). */
static uint64_t ms_of(uint32_t t)
{
    return (uint64_t)t * 1000u;
}

/* Encodes, counts and checks one datagram: it must decode under the same key. */
static int send_msg(pw_proto_msg *m, unsigned long long *bytes)
{
    uint8_t buf[PW_PROTO_MAX_DATAGRAM];
    pw_proto_msg back;
    int n = pw_proto_encode(m, bench_key, buf, sizeof buf);
    if (n <= 0 || pw_proto_decode(buf, (size_t)n, bench_key, &back) != 0) {
        fprintf(stderr, "datagram of type %d failed: %s\n", m->hdr.type, pw_proto_strerror(n));
        exit(1);
    }
    *bytes += (unsigned)n;
    return n;
}

/* One or two sessions a day: commuters by day, residents overnight; the rest is idle time. */
static void plan_sessions(struct charger *c, uint32_t *rng)
{
    c->sessions = 1 + (int)(rng_next(rng) % 2);
    for (int i = 0; i < c->sessions; i++) {
        struct car_session *s = &c->s[i];
        uint32_t base = i == 0 ? 7 * 3600 : 17 * 3600;
        s->arrive = base + rng_range(rng, 0, 2 * 3600);
        s->depart = s->arrive + rng_range(rng, 4 * 3600, i == 0 ? 9 * 3600 : 6 * 3600);
        s->need_wh = rng_range(rng, 8000, 40000);
        s->phases = rng_next(rng) % 3 ? 3 : 1;
        s->max_ma = s->phases == 3 ? 16000 : CAR_MAX_MA;
    }
}

static const struct car_session *session_at(const struct charger *c, uint32_t t)
{
    for (int i = 0; i < c->sessions; i++) {
        if (t >= c->s[i].arrive && t < c->s[i].depart)
            return &c->s[i];
    }
    return NULL;
}

/* Car physics for one second: follows the applied limit (after a short delay), tapers over the
 * last 20 % of its energy, stops when full. A little measurement noise on top. */
static void charger_step(struct facility *f, struct charger *c, uint32_t t, uint32_t *rng)
{
    const struct car_session *s = session_at(c, t);
    uint32_t applied = t * 1000ull < c->lease_until_ms ? c->limit_ma : IDLE_OFFER_MA;
    if (t * 1000ull >= c->lease_until_ms)
        f->k.failsafe_s++;
    if (!s) {
        c->iec = PW_IEC_A;
        c->session_wh = 0;
        memset(c->current_ma, 0, sizeof c->current_ma);
        return;
    }
    if (c->iec == PW_IEC_A) {
        c->session_id++;
        c->session_wh = 0;
    }
    double want = 0;
    if (c->session_wh < s->need_wh && applied > 0) {
        want = applied < s->max_ma ? applied : s->max_ma;
        double left = 1.0 - c->session_wh / s->need_wh;
        if (left < 0.2)
            want = 6000 + (want - 6000) * left / 0.2;
        if (f->jittery)
            want -= (double)(rng_next(rng) % 3000);
    }
    c->iec = want > 0 ? PW_IEC_C : PW_IEC_B;
    for (int p = 0; p < 3; p++) {
        double noise = (double)(rng_next(rng) % 401) - 200.0; /* +-0.2 A */
        double ma = p < s->phases && want > 0 ? want + noise : 0;
        c->current_ma[p] = ma > 0 ? (uint32_t)ma : 0;
    }
    double w = 230.0 * (c->current_ma[0] + c->current_ma[1] + c->current_ma[2]) / 1000.0;
    c->session_wh += w / 3600.0;
    c->energy_wh += w / 3600.0;
}

/* The bench's facility as a config for the core, put together by hand (no charger_order, so
 * lookups by link scan) and checked as the config loader would. */
static void bench_config(struct facility *f)
{
    struct bench_cfg *b = &f->bc;
    pw_cfg *cfg = &b->cfg;
    memset(b, 0, sizeof *b);
    snprintf(cfg->site_name, sizeof cfg->site_name, "proto_bench");
    cfg->grid = PW_GRID_TN;
    pw_bal_default_params(&cfg->params);
    cfg->lease_ms = PW_PROTO_LEASE_MS;
    cfg->tick_ms = 1000;
    snprintf(b->node.id, sizeof b->node.id, "main");
    b->node.parent = -1;
    for (int l = 0; l < PW_LINES; l++)
        b->node.limit_a[l] = pw_proto_amps(RATED_MA) * (f->n + 1) / 2;
    b->node.metered = true;
    b->node.meter_timeout_ms = 15000;
    b->meter = (pw_cfg_link){.kind = PW_CFG_LINK_LAN, .device_id = METER_ID};
    for (int i = 0; i < f->n; i++) {
        pw_bal_charger_spec *c = &b->chargers[i];
        snprintf(c->id, sizeof c->id, "c%03d", i);
        c->node = 0;
        c->wiring[0] = 1;
        c->wiring[1] = 2;
        c->wiring[2] = 3;
        c->min_a = pw_proto_amps(PW_PROTO_MIN_LIMIT_MA);
        c->max_a = pw_proto_amps(RATED_MA);
        c->failsafe_a = pw_proto_amps(IDLE_OFFER_MA);
        c->weight = 1;
        b->links[i] = (pw_cfg_link){.kind = PW_CFG_LINK_LAN, .device_id = f->c[i].id};
    }
    cfg->nodes = &b->node;
    cfg->meters = &b->meter;
    cfg->n_nodes = 1;
    cfg->chargers = b->chargers;
    cfg->charger_links = b->links;
    cfg->n_chargers = (size_t)f->n;
    pw_bal_facility fac;
    char err[256];
    pw_cfg_facility(cfg, &fac);
    if (pw_bal_validate(&fac, err, sizeof err) != 0) {
        fprintf(stderr, "bench facility: %s\n", err);
        exit(1);
    }
}

/* What the LAN transport hands the core for a status datagram (transport/lan.c, to_report). */
static void report_status(struct facility *f, int i, const pw_msg_status *st, uint32_t t)
{
    pw_ctl_report r = {.pilot = st->iec_state,
                       .ev_suspended = -1,
                       .offered_a = pw_proto_amps(st->applied_limit_ma),
                       .phases = st->applied_phases,
                       .energy_wh = st->energy_wh};
    for (int p = 0; p < PW_LINES; p++)
        r.current_a[p] = pw_proto_amps(st->current_ma[p]);
    if (st->session_id)
        snprintf(r.session_ref, sizeof r.session_ref, "%u", st->session_id);
    pw_ctl_charger_report(f->ctl, (size_t)i, NULL, &r, ms_of(t), (int64_t)ms_of(t));
}

static bool status_differs(const pw_msg_status *a, const pw_msg_status *b)
{
    /* A new allocation sequence alone is no change: it rides along in the next status, unless
     * the charger fell back to (or left) its failsafe. */
    if (a->iec_state != b->iec_state || a->applied_limit_ma != b->applied_limit_ma ||
        (a->alloc_seq == 0) != (b->alloc_seq == 0) || a->session_id != b->session_id ||
        a->applied_phases != b->applied_phases)
        return true;
    for (int p = 0; p < 3; p++) {
        uint32_t d = a->current_ma[p] > b->current_ma[p] ? a->current_ma[p] - b->current_ma[p]
                                                         : b->current_ma[p] - a->current_ma[p];
        if (d >= CHANGE_MA)
            return true;
    }
    return false;
}

/* PROTOCOL.md 5.2: on change at most once a second, and at least every 30 s. */
static void charger_send(struct facility *f, struct charger *c, uint32_t t)
{
    pw_proto_msg m = {.hdr = {.type = PW_MSG_STATUS, .sender_id = c->id, .boot_id = 1}};
    pw_msg_status *s = &m.u.status;
    bool leased = t * 1000ull < c->lease_until_ms;
    s->iec_state = c->iec;
    memcpy(s->current_ma, c->current_ma, sizeof s->current_ma);
    for (int p = 0; p < 3; p++)
        s->voltage_dv[p] = (uint16_t)(2300 + (t + (uint32_t)p) % 7);
    s->energy_wh = (uint64_t)c->energy_wh;
    s->applied_limit_ma = leased ? c->limit_ma : IDLE_OFFER_MA;
    s->applied_phases = c->iec == PW_IEC_C ? (c->current_ma[1] ? 3 : 1) : 0;
    s->alloc_seq = leased ? c->alloc_seq : 0;
    s->session_id = c->iec == PW_IEC_A ? 0 : c->session_id;

    uint32_t quiet = t - c->last_status_s;
    if (c->sent_once && status_differs(s, &c->last))
        c->pending = true;
    bool due = !c->sent_once || quiet * 1000u >= PW_PROTO_STATUS_MAX_INTERVAL_MS ||
               (c->pending && quiet * 1000u >= PW_PROTO_STATUS_MIN_INTERVAL_MS);
    if (!due)
        return;
    m.hdr.seq = c->seq++;
    send_msg(&m, &f->k.charger_bytes);
    f->k.statuses++;
    report_status(f, (int)(c - f->c), s, t);
    c->last = *s;
    c->last_status_s = t;
    c->sent_once = true;
    c->pending = false;
}

static void charger_announce(struct facility *f, struct charger *c, uint32_t t)
{
    pw_proto_msg m = {
        .hdr = {.type = PW_MSG_ANNOUNCE, .sender_id = c->id, .boot_id = 1, .seq = c->seq++}};
    snprintf(m.u.announce.model, sizeof m.u.announce.model, "Bench 22");
    snprintf(m.u.announce.firmware, sizeof m.u.announce.firmware, "1.0.0");
    m.u.announce.wiring[0] = 1;
    m.u.announce.wiring[1] = 2;
    m.u.announce.wiring[2] = 3;
    m.u.announce.max_current_ma = RATED_MA;
    m.u.announce.link = PW_LINK_WIFI;
    m.u.announce.rssi_dbm = -60;
    send_msg(&m, &f->k.charger_bytes);
    f->k.announces++;
    pw_ctl_device_info info = {.rssi_dbm = m.u.announce.rssi_dbm};
    snprintf(info.model, sizeof info.model, "%s", m.u.announce.model);
    snprintf(info.firmware, sizeof info.firmware, "%s", m.u.announce.firmware);
    snprintf(info.link, sizeof info.link, "wifi");
    pw_ctl_seen seen = {.info = &info, .loss_pct = -1};
    pw_ctl_charger_seen(f->ctl, (size_t)(c - f->c), &seen, ms_of(t), (int64_t)ms_of(t));
}

/* Sends every charger its current command, split in datagrams of at most 128 entries, as the
 * LAN transport does whenever any command is due; every charger applies its entry at once (no
 * loss in this simulation), and the core is told each went out. */
static void balancer_send_plan(struct facility *f, uint32_t t)
{
    const pw_ctl_command *cmd = pw_ctl_commands(f->ctl);
    uint32_t plan_seq = f->n ? cmd[0].plan_seq : 0;
    for (int first = 0; first < f->n; first += PW_PROTO_ALLOC_PER_DATAGRAM) {
        static pw_proto_msg m;
        int count =
            f->n - first < PW_PROTO_ALLOC_PER_DATAGRAM ? f->n - first : PW_PROTO_ALLOC_PER_DATAGRAM;
        m.hdr = (pw_proto_hdr){.type = PW_MSG_ALLOCATION,
                               .sender_id = PW_PROTO_BALANCER_ID,
                               .boot_id = 1,
                               .seq = f->bal_seq++};
        m.u.allocation.alloc_seq = plan_seq;
        m.u.allocation.lease_ms = cmd[first].lease_ms;
        m.u.allocation.count = (uint16_t)count;
        for (int i = 0; i < count; i++) {
            struct charger *c = &f->c[first + i];
            const pw_ctl_command *k = &cmd[first + i];
            m.u.allocation.entries[i] =
                (pw_alloc_entry){c->id, pw_proto_milliamps(k->limit_a), k->phases};
            c->limit_ma = m.u.allocation.entries[i].limit_ma;
            c->alloc_seq = plan_seq;
            c->lease_until_ms = ms_of(t) + k->lease_ms;
        }
        send_msg(&m, &f->k.balancer_bytes);
        f->k.alloc_datagrams++;
    }
    for (int i = 0; i < f->n; i++)
        pw_ctl_sent(f->ctl, (size_t)i, ms_of(t), (int64_t)ms_of(t));
    if (!f->sent_once || plan_seq != f->sent_plan_seq)
        f->k.plans++;
    else
        f->k.renewals++; /* a renewal, or a cut no status confirmed sent again */
    f->sent_once = true;
    f->sent_plan_seq = plan_seq;
}

/* The bench steps whole seconds: the core runs at the first second at or after its deadline
 * (its deadlines fall on whole seconds here, bar the balancer's hold times, which wait for the
 * next second). */
static void balancer_step(struct facility *f, uint32_t t)
{
    if (pw_ctl_next_deadline(f->ctl) <= ms_of(t) &&
        pw_ctl_run(f->ctl, ms_of(t), (int64_t)ms_of(t)) > 0)
        balancer_send_plan(f, t);
    if (t * 1000u % PW_PROTO_HEARTBEAT_INTERVAL_MS == 0) {
        size_t online = pw_ctl_online_count(f->ctl, ms_of(t));
        pw_proto_msg m = {.hdr = {.type = PW_MSG_HEARTBEAT,
                                  .sender_id = PW_PROTO_BALANCER_ID,
                                  .boot_id = 1,
                                  .seq = f->bal_seq++},
                          .u.heartbeat = {.uptime_s = t,
                                          .config_generation = 1,
                                          .chargers_online = (uint16_t)online,
                                          .state = PW_HB_BALANCING}};
        send_msg(&m, &f->k.balancer_bytes);
        f->k.heartbeats++;
    }
}

static void meter_step(struct facility *f, uint32_t t)
{
    pw_proto_msg m = {
        .hdr = {.type = PW_MSG_METER, .sender_id = METER_ID, .boot_id = 1, .seq = f->meter_seq++}};
    for (int p = 0; p < 3; p++) {
        uint64_t sum = 8000; /* building load */
        for (int i = 0; i < f->n; i++)
            sum += f->c[i].current_ma[p];
        m.u.meter.current_ma[p] =
            sum > PW_PROTO_MAX_CURRENT_MA ? PW_PROTO_MAX_CURRENT_MA : (uint32_t)sum;
        m.u.meter.voltage_dv[p] = 2300;
        m.u.meter.power_w[p] = (int32_t)(m.u.meter.current_ma[p] * 23 / 100);
    }
    m.u.meter.energy_wh = 1000000 + t;
    send_msg(&m, &f->k.meter_bytes);
    f->k.meters++;
    double amps[PW_LINES];
    for (int p = 0; p < PW_LINES; p++)
        amps[p] = pw_proto_amps(m.u.meter.current_ma[p]);
    pw_ctl_meter_report(f->ctl, 0, amps, ms_of(t));
}

static void simulate_day(struct facility *f, int n, bool jittery)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->jittery = jittery;
    uint32_t rng = 0x9e3779b9u ^ (uint32_t)n;
    for (int i = 0; i < n; i++) {
        f->c[i].id = 1001 + (uint32_t)i;
        plan_sessions(&f->c[i], &rng);
        if (jittery) { /* one car plugged in all day, never full */
            f->c[i].sessions = 1;
            f->c[i].s[0] = (struct car_session){0, DAY_S, UINT32_MAX, CAR_MAX_MA, 3};
        }
    }
    bench_config(f);
    f->ctl = pw_ctl_new(&f->bc.cfg, NULL, NULL);
    for (uint32_t t = 0; t < DAY_S; t++) {
        for (int i = 0; i < n; i++) {
            if (t * 1000ull % PW_PROTO_ANNOUNCE_INTERVAL_MS == 0)
                charger_announce(f, &f->c[i], t);
        }
        balancer_step(f, t);
        for (int i = 0; i < n; i++)
            charger_step(f, &f->c[i], t, &rng);
        for (int i = 0; i < n; i++)
            charger_send(f, &f->c[i], t);
        if (t * 1000u % PW_PROTO_METER_INTERVAL_MS == 0)
            meter_step(f, t);
    }
}

static void traffic_row(int n, bool jittery)
{
    static struct facility f;
    simulate_day(&f, n, jittery);
    const struct counters *k = &f.k;
    const pw_ctl_stats *st = pw_ctl_stats_get(f.ctl);
    double per_charger = (double)(k->charger_bytes + k->balancer_bytes) / n;
    double received = (double)(k->charger_bytes + k->balancer_bytes + k->meter_bytes);
    printf("%9d %-9s %9lu %6lu %8lu %6llu %10lu %9lu %12.0f %11.3f %13.2f\n", n,
           jittery ? "jittery" : "sessions", k->statuses / (unsigned long)n, k->plans, k->renewals,
           (unsigned long long)st->cut_resends, k->alloc_datagrams, k->heartbeats,
           (double)k->charger_bytes / n, per_charger / 1e6, received / 1e6);
    if (k->failsafe_s)
        printf("          (%lu charger-seconds on the failsafe current: a lease ran out)\n",
               k->failsafe_s);
    pw_ctl_free(f.ctl);
    f.ctl = NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    if (!(seconds > 0) || !isfinite(seconds)) {
        fprintf(stderr, "usage: %s [seconds for the throughput run]\n", argv[0]);
        return 2;
    }
    throughput(seconds);

    printf(
        "bytes on the wire in one simulated day (PROTOCOL.md section 6 schedule; status on\n"
        "change >= 1 A or state/limit, at most 1/s, at least every %d s; heartbeat every %d s;\n"
        "announce every %d s; one meter every %d s; the plan goes to every charger whenever the\n"
        "control core marks a command due: a changed plan, a renewal after %d s of a %d s\n"
        "lease, a cut no status confirmed within %d s, resent at most %d times):\n",
        PW_PROTO_STATUS_MAX_INTERVAL_MS / 1000, PW_PROTO_HEARTBEAT_INTERVAL_MS / 1000,
        PW_PROTO_ANNOUNCE_INTERVAL_MS / 1000, PW_PROTO_METER_INTERVAL_MS / 1000,
        PW_PROTO_LEASE_MS / PW_CTL_LEASE_RENEW_DIV / 1000, PW_PROTO_LEASE_MS / 1000,
        PW_CTL_CUT_CONFIRM_MS / 1000, PW_CTL_CUT_MAX_RESENDS);
    printf("%9s %-9s %9s %6s %8s %6s %10s %9s %12s %11s %13s\n", "chargers", "cars", "status/ch",
           "plans", "renewals", "cut rs", "alloc dgrams", "heartbts", "sent B/ch", "MB/ch/day",
           "rx MB/device");
    static const int sizes[] = {1, 10, 50, 200};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        traffic_row(sizes[i], false);
    traffic_row(1, true);
    traffic_row(10, true);
    printf(
        "\nMB/ch/day = what a charger sends plus its share of the balancer's datagrams (target\n"
        "<= 1 MB); rx MB/device = everything on the group incl. the meter, which every member\n"
        "receives. plans = sends of a changed plan; renewals = sends of an unchanged one (lease\n"
        "renewals and cut resends; cut rs = the core's cut resends). 'jittery' = pessimistic: a\n"
        "car charging all day whose current wanders by up to 3 A every second.\n");
    return 0;
}
