/* Protocol benchmark (prints figures; not a timed test). Part 1: decode + verify + replay check
 * throughput of status datagrams on one core. Part 2: bytes on the wire per charger and day,
 * counted by running PROTOCOL.md's message schedule over a simulated day of charging sessions in
 * fake time and encoding every datagram it sends with the real encoder.
 * usage: proto_bench [seconds for part 1, default 3] */
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
#define PLAN_TICK_S   5 /* the balancer recomputes limits this often */
#define CHANGE_MA     1000u
#define IDLE_OFFER_MA 6000u

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

struct facility {
    int n;
    bool jittery; /* cars whose current wanders by >= 1 A every few seconds */
    struct charger c[MAX_CHARGERS];
    uint32_t plan_ma[MAX_CHARGERS];
    uint32_t alloc_seq, bal_seq, meter_seq;
    uint32_t last_plan_send;
    struct counters k;
};

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
    c->last = *s;
    c->last_status_s = t;
    c->sent_once = true;
    c->pending = false;
}

static void charger_announce(struct facility *f, struct charger *c)
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
}

/* What a connected car can use: its draw plus 2 A of headroom while it charges (so that a car
 * drawing less than offered is trimmed and the rest reclaimed, as the balancer does), the 6 A
 * minimum when it has stopped; whole amperes, capped at the charger's rating. */
static uint32_t demand_ma(const struct charger *c)
{
    if (c->iec != PW_IEC_C)
        return IDLE_OFFER_MA;
    uint32_t draw = 0;
    for (int p = 0; p < 3; p++)
        draw = c->current_ma[p] > draw ? c->current_ma[p] : draw;
    uint32_t d = (draw + 2000 + 999) / 1000 * 1000;
    return d > RATED_MA ? RATED_MA : d < PW_PROTO_MIN_LIMIT_MA ? PW_PROTO_MIN_LIMIT_MA : d;
}

/* Max-min fair shares of a fuse sized for half the chargers at full current: idle chargers get
 * the 6 A they need to start a car; connected ones get their demand or an equal share of what
 * is left, whichever is smaller (water-filling), in whole amperes. */
static void balancer_plan(struct facility *f, uint32_t out[MAX_CHARGERS])
{
    uint32_t avail = RATED_MA * (uint32_t)(f->n + 1) / 2;
    bool fixed[MAX_CHARGERS] = {false};
    int open = 0;
    for (int i = 0; i < f->n; i++) {
        fixed[i] = f->c[i].iec == PW_IEC_A;
        out[i] = IDLE_OFFER_MA;
        if (fixed[i])
            avail -= IDLE_OFFER_MA;
        else
            open++;
    }
    for (bool again = true; again && open > 0;) {
        again = false;
        uint32_t share = avail / (uint32_t)open / 1000 * 1000;
        for (int i = 0; i < f->n; i++) {
            uint32_t d = fixed[i] ? 0 : demand_ma(&f->c[i]);
            if (!fixed[i] && d <= share) {
                out[i] = d;
                fixed[i] = true;
                avail -= d;
                open--;
                again = true;
            }
        }
        if (!again) {
            for (int i = 0; i < f->n; i++) {
                if (!fixed[i])
                    out[i] = share < PW_PROTO_MIN_LIMIT_MA ? 0 : share;
            }
        }
    }
}

/* Sends the current plan, split in datagrams of at most 128 entries; every charger applies its
 * entry at once (no loss in this simulation). */
static void balancer_send_plan(struct facility *f, uint32_t t)
{
    for (int first = 0; first < f->n; first += PW_PROTO_ALLOC_PER_DATAGRAM) {
        static pw_proto_msg m;
        int count =
            f->n - first < PW_PROTO_ALLOC_PER_DATAGRAM ? f->n - first : PW_PROTO_ALLOC_PER_DATAGRAM;
        m.hdr = (pw_proto_hdr){.type = PW_MSG_ALLOCATION,
                               .sender_id = PW_PROTO_BALANCER_ID,
                               .boot_id = 1,
                               .seq = f->bal_seq++};
        m.u.allocation.alloc_seq = f->alloc_seq;
        m.u.allocation.lease_ms = PW_PROTO_LEASE_MS;
        m.u.allocation.count = (uint16_t)count;
        for (int i = 0; i < count; i++) {
            struct charger *c = &f->c[first + i];
            m.u.allocation.entries[i] = (pw_alloc_entry){c->id, f->plan_ma[first + i], 0};
            c->limit_ma = f->plan_ma[first + i];
            c->alloc_seq = f->alloc_seq;
            c->lease_until_ms = t * 1000ull + PW_PROTO_LEASE_MS;
        }
        send_msg(&m, &f->k.balancer_bytes);
        f->k.alloc_datagrams++;
    }
    f->last_plan_send = t;
}

static void balancer_step(struct facility *f, uint32_t t)
{
    if (t % PLAN_TICK_S == 0) {
        uint32_t plan[MAX_CHARGERS];
        balancer_plan(f, plan);
        bool changed = f->alloc_seq == 0;
        for (int i = 0; i < f->n; i++) {
            uint32_t d =
                plan[i] > f->plan_ma[i] ? plan[i] - f->plan_ma[i] : f->plan_ma[i] - plan[i];
            changed |= d >= CHANGE_MA || (plan[i] == 0) != (f->plan_ma[i] == 0);
        }
        if (changed) {
            memcpy(f->plan_ma, plan, sizeof plan);
            f->alloc_seq++;
            f->k.plans++;
            balancer_send_plan(f, t);
        }
    }
    if ((t - f->last_plan_send) * 1000u >= PW_PROTO_ALLOC_RENEW_MS) {
        f->k.renewals++;
        balancer_send_plan(f, t);
    }
    if (t * 1000u % PW_PROTO_HEARTBEAT_INTERVAL_MS == 0) {
        pw_proto_msg m = {.hdr = {.type = PW_MSG_HEARTBEAT,
                                  .sender_id = PW_PROTO_BALANCER_ID,
                                  .boot_id = 1,
                                  .seq = f->bal_seq++},
                          .u.heartbeat = {.uptime_s = t,
                                          .config_generation = 1,
                                          .chargers_online = (uint16_t)f->n}};
        send_msg(&m, &f->k.balancer_bytes);
        f->k.heartbeats++;
    }
}

static void meter_step(struct facility *f, uint32_t t)
{
    pw_proto_msg m = {
        .hdr = {.type = PW_MSG_METER, .sender_id = 9001, .boot_id = 1, .seq = f->meter_seq++}};
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
    for (uint32_t t = 0; t < DAY_S; t++) {
        for (int i = 0; i < n; i++) {
            if (t * 1000ull % PW_PROTO_ANNOUNCE_INTERVAL_MS == 0)
                charger_announce(f, &f->c[i]);
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
    double per_charger = (double)(k->charger_bytes + k->balancer_bytes) / n;
    double received = (double)(k->charger_bytes + k->balancer_bytes + k->meter_bytes);
    printf("%9d %-9s %9lu %6lu %8lu %10lu %9lu %12.0f %11.3f %13.2f\n", n,
           jittery ? "jittery" : "sessions", k->statuses / (unsigned long)n, k->plans, k->renewals,
           k->alloc_datagrams, k->heartbeats, (double)k->charger_bytes / n, per_charger / 1e6,
           received / 1e6);
    if (k->failsafe_s)
        printf("          (%lu charger-seconds on the failsafe current: a lease ran out)\n",
               k->failsafe_s);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    if (!(seconds > 0) || !isfinite(seconds)) {
        fprintf(stderr, "usage: %s [seconds for the throughput run]\n", argv[0]);
        return 2;
    }
    throughput(seconds);

    printf("bytes on the wire in one simulated day (PROTOCOL.md section 6 schedule; status on\n"
           "change >= 1 A or state/limit, at most 1/s, at least every %d s; plan renewal every\n"
           "%d s, lease %d s; heartbeat every %d s; announce every %d s; one meter every %d s):\n",
           PW_PROTO_STATUS_MAX_INTERVAL_MS / 1000, PW_PROTO_ALLOC_RENEW_MS / 1000,
           PW_PROTO_LEASE_MS / 1000, PW_PROTO_HEARTBEAT_INTERVAL_MS / 1000,
           PW_PROTO_ANNOUNCE_INTERVAL_MS / 1000, PW_PROTO_METER_INTERVAL_MS / 1000);
    printf("%9s %-9s %9s %6s %8s %10s %9s %12s %11s %13s\n", "chargers", "cars", "status/ch",
           "plans", "renewals", "alloc dgrams", "heartbts", "sent B/ch", "MB/ch/day",
           "rx MB/device");
    static const int sizes[] = {1, 10, 50, 200};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        traffic_row(sizes[i], false);
    traffic_row(1, true);
    traffic_row(10, true);
    printf("\nMB/ch/day = what a charger sends plus its share of the balancer's datagrams (target\n"
           "<= 1 MB); rx MB/device = everything on the group incl. the meter, which every member\n"
           "receives. 'jittery' = pessimistic: a car charging all day whose current wanders by\n"
           "up to 3 A every second.\n");
    return 0;
}
