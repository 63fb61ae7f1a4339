/* The simulated OCPP 1.6J charge point's behaviour (pw_simocpp.h): one call of its own in
 * flight at a time, answers to the central system's calls, transactions that outlive a dropped
 * connection, and the charging-profile stack of OCPP 1.6 section 3.13. Pure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_simocpp.h"
#include "pw_util.h"

#define COMP        "sim-ocpp"
#define DAY_MS      86400000LL
#define MAX_TX      16 /* transaction records: running ones and those waiting to be reported */
#define BOOT_RETRY  10 /* s before a boot again when the central system gives no interval */
#define DEFAULT_HB  300
#define NO_DEADLINE UINT64_MAX

static const char *const quirk_names[PW_SIMOCPP_QUIRKS] = {
    "default", "tx-default-only", "stack0", "whole-amps", "ignore", "no-offered",
};

/* Measurand names in the order they are written back by GetConfiguration. */
static const struct {
    unsigned bit;
    const char *name;
} measurands[] = {
    {PW_SIMOCPP_M_CURRENT, "Current.Import"},
    {PW_SIMOCPP_M_OFFERED, "Current.Offered"},
    {PW_SIMOCPP_M_ENERGY, "Energy.Active.Import.Register"},
    {PW_SIMOCPP_M_POWER, "Power.Active.Import"},
};

/* A transaction from the car's plug-in until the central system has both its start and its
 * stop: it survives a dropped connection, as in a real charge point's offline queue. */
typedef struct sim_tx {
    bool used;
    int connector;
    uint32_t session_id;
    bool start_done; /* StartTransaction answered: id holds the central system's id */
    bool ended;      /* the car left: StopTransaction is owed */
    bool busy;       /* its Start or Stop is queued or in flight on this connection */
    bool start_sent; /* its StartTransaction went out at least once */
    char id[PW_OCPP_TXID_LEN];
    char tag[PW_OCPP_TAG_LEN];
    int64_t meter_start_wh, start_wall;
    int64_t meter_stop_wh, stop_wall;
} sim_tx;

typedef struct sim_profile {
    pw_ocpp_profile p;
    int64_t installed_wall; /* start of an Absolute schedule without startSchedule outside a tx */
} sim_profile;

/* One of our calls, waiting to go out or for its answer. */
typedef struct sim_call {
    enum pw_ocpp_action action;
    int connector;
    int tx;          /* index into txs for Start/StopTransaction, else -1 */
    bool triggered;  /* asked for by TriggerMessage: may go out before the boot is accepted */
    json_t *payload; /* owned until sent */
} sim_call;

typedef struct sim_conn {
    pw_simocpp_view view;
    bool has_view;
    enum pw_ocpp_status sent; /* last StatusNotification queued */
    bool has_sent;
    uint64_t finishing_until; /* now-time until which the connector shows Finishing */
    uint64_t next_meter;      /* now-time of the next MeterValues; NO_DEADLINE outside a tx */
    uint32_t refused_session; /* a session whose StartTransaction was refused: no retry */
    unsigned sessions;        /* sessions seen, to take idTags in turn */
} sim_conn;

struct pw_simocpp {
    pw_simocpp_opts o;
    pw_simocpp_sink sink;
    bool connected, booted;
    uint64_t next_boot;      /* NO_DEADLINE unless a boot is to be retried */
    uint64_t next_heartbeat; /* NO_DEADLINE before boot */
    uint32_t heartbeat_s;
    uint32_t sample_s;   /* MeterValueSampleInterval */
    unsigned measurands; /* MeterValuesSampledData */
    unsigned call_seq;
    /* the call in flight */
    bool in_flight;
    sim_call flight;
    char flight_id[PW_OCPP_ID_LEN];
    uint64_t flight_deadline;
    /* queued calls, FIFO */
    sim_call *queue;
    size_t n_queue, cap_queue;
    sim_conn conns[PW_SIMOCPP_MAX_CONNECTORS + 1]; /* [0] unused but for its status */
    sim_tx txs[MAX_TX];
    sim_profile profiles[PW_SIMOCPP_MAX_PROFILES];
    size_t n_profiles;
};

/* ---- small helpers ----------------------------------------------------------------------------
 */

int pw_simocpp_quirk_parse(const char *text, enum pw_simocpp_quirk *out)
{
    for (int i = 0; i < PW_SIMOCPP_QUIRKS; i++) {
        if (strcmp(text, quirk_names[i]) == 0) {
            *out = (enum pw_simocpp_quirk)i;
            return 0;
        }
    }
    return -1;
}

const char *pw_simocpp_quirk_name(enum pw_simocpp_quirk q)
{
    return (unsigned)q < PW_SIMOCPP_QUIRKS ? quirk_names[q] : "?";
}

static bool valid_connector(const pw_simocpp *cp, int c)
{
    return c >= 1 && (size_t)c <= cp->o.n_connectors;
}

static unsigned supported_measurands(const pw_simocpp *cp)
{
    unsigned all =
        PW_SIMOCPP_M_CURRENT | PW_SIMOCPP_M_OFFERED | PW_SIMOCPP_M_ENERGY | PW_SIMOCPP_M_POWER;
    return cp->o.quirk == PW_SIMOCPP_NO_OFFERED ? all & ~(unsigned)PW_SIMOCPP_M_OFFERED : all;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* The running transaction of a connector (started, not ended), or NULL. */
static sim_tx *running_tx(pw_simocpp *cp, int connector)
{
    for (size_t i = 0; i < MAX_TX; i++) {
        sim_tx *t = &cp->txs[i];
        if (t->used && !t->ended && t->connector == connector)
            return t;
    }
    return NULL;
}

static const sim_tx *running_tx_c(const pw_simocpp *cp, int connector)
{
    return running_tx((pw_simocpp *)cp, connector);
}

/* ---- the outgoing call queue ------------------------------------------------------------------
 */

static void call_clear(sim_call *c)
{
    json_decref(c->payload);
    c->payload = NULL;
}

static void enqueue(pw_simocpp *cp, enum pw_ocpp_action action, int connector, int tx,
                    bool triggered, json_t *payload)
{
    if (!payload) {
        pw_warn(COMP, "%s: cannot build %s", cp->o.cp_id, pw_ocpp_action_name(action));
        return;
    }
    if (cp->n_queue == cp->cap_queue) {
        cp->cap_queue = cp->cap_queue ? 2 * cp->cap_queue : 16;
        cp->queue = pw_xrealloc(cp->queue, cp->cap_queue * sizeof(*cp->queue));
    }
    cp->queue[cp->n_queue++] = (sim_call){.action = action,
                                          .connector = connector,
                                          .tx = tx,
                                          .triggered = triggered,
                                          .payload = payload};
}

/* Sends the head of the queue when nothing is in flight. Before the boot is accepted only the
 * BootNotification and triggered messages may go. */
static void pump(pw_simocpp *cp, uint64_t now)
{
    while (cp->connected && !cp->in_flight && cp->n_queue > 0) {
        sim_call *head = &cp->queue[0];
        if (!cp->booted && head->action != PW_OCPP_A_BOOT_NOTIFICATION && !head->triggered)
            return;
        sim_call c = *head;
        memmove(cp->queue, cp->queue + 1, (cp->n_queue - 1) * sizeof(*cp->queue));
        cp->n_queue--;
        snprintf(cp->flight_id, sizeof(cp->flight_id), "%u", ++cp->call_seq);
        size_t len;
        char *text =
            pw_ocpp_call_text(cp->flight_id, pw_ocpp_action_name(c.action), c.payload, &len);
        c.payload = NULL; /* stolen */
        if (!text) {
            pw_warn(COMP, "%s: cannot encode %s", cp->o.cp_id, pw_ocpp_action_name(c.action));
            continue;
        }
        if (c.action == PW_OCPP_A_START_TRANSACTION)
            cp->txs[c.tx].start_sent = true;
        cp->flight = c;
        cp->in_flight = true;
        cp->flight_deadline = now + PW_SIMOCPP_CALL_TIMEOUT;
        cp->sink.send(cp->sink.ud, text, len);
        free(text);
    }
}

/* Removes the queued messages of transaction record i. */
static void drop_queued_tx(pw_simocpp *cp, int i)
{
    size_t kept = 0;
    for (size_t k = 0; k < cp->n_queue; k++) {
        if (cp->queue[k].tx == i)
            call_clear(&cp->queue[k]);
        else
            cp->queue[kept++] = cp->queue[k];
    }
    cp->n_queue = kept;
}

/* Sends a frame built by the codec (NULL: it could not be built) and frees it. */
static void send_text(pw_simocpp *cp, char *text, size_t len)
{
    if (text) {
        cp->sink.send(cp->sink.ud, text, len);
        free(text);
    }
}

/* ---- what the charge point sends ------------------------------------------------------------- */

static void queue_boot(pw_simocpp *cp, bool triggered)
{
    pw_ocpp_boot b;
    memset(&b, 0, sizeof(b));
    pw_strlcpy(b.vendor, PW_SIMOCPP_VENDOR, sizeof(b.vendor));
    snprintf(b.model, sizeof(b.model), "sim-%s", quirk_names[cp->o.quirk]);
    pw_strlcpy(b.serial, cp->o.cp_id, sizeof(b.serial));
    pw_strlcpy(b.firmware, PW_VERSION, sizeof(b.firmware));
    enqueue(cp, PW_OCPP_A_BOOT_NOTIFICATION, 0, -1, triggered, pw_ocpp_boot_req(&b));
}

/* The status a connector should show now. */
static enum pw_ocpp_status status_of(pw_simocpp *cp, int c, uint64_t now)
{
    if (c == 0)
        return PW_OCPP_AVAILABLE;
    sim_conn *k = &cp->conns[c];
    if (!k->has_view || k->view.session_id == 0)
        return now < k->finishing_until ? PW_OCPP_FINISHING : PW_OCPP_AVAILABLE;
    const sim_tx *t = running_tx(cp, c);
    if (!t || !t->start_done)
        return PW_OCPP_PREPARING;
    if (k->view.offered_a <= 0.0)
        return PW_OCPP_SUSPENDED_EVSE;
    return k->view.charging ? PW_OCPP_CHARGING : PW_OCPP_SUSPENDED_EV;
}

static void queue_status(pw_simocpp *cp, int c, enum pw_ocpp_status s, int64_t wall, bool triggered)
{
    pw_ocpp_status_note n;
    memset(&n, 0, sizeof(n));
    n.connector = c;
    n.status = s;
    pw_strlcpy(n.error_code, "NoError", sizeof(n.error_code));
    n.timestamp_ms = wall;
    cp->conns[c].sent = s;
    cp->conns[c].has_sent = true;
    enqueue(cp, PW_OCPP_A_STATUS_NOTIFICATION, c, -1, triggered, pw_ocpp_status_req(&n));
}

/* Queues a StatusNotification for every connector whose status changed (booted only). */
static void sync_statuses(pw_simocpp *cp, uint64_t now, int64_t wall)
{
    if (!cp->booted)
        return;
    for (int c = 0; c <= (int)cp->o.n_connectors; c++) {
        enum pw_ocpp_status s = status_of(cp, c, now);
        if (!cp->conns[c].has_sent || cp->conns[c].sent != s)
            queue_status(cp, c, s, wall, false);
    }
}

static void queue_tx_message(pw_simocpp *cp, int i)
{
    sim_tx *t = &cp->txs[i];
    if (t->busy)
        return;
    if (!t->start_done) {
        pw_ocpp_start_tx s;
        memset(&s, 0, sizeof(s));
        s.connector = t->connector;
        pw_strlcpy(s.id_tag, t->tag, sizeof(s.id_tag));
        s.meter_start_wh = t->meter_start_wh;
        s.timestamp_ms = t->start_wall;
        t->busy = true;
        enqueue(cp, PW_OCPP_A_START_TRANSACTION, t->connector, i, false, pw_ocpp_start_req(&s));
    } else if (t->ended) {
        pw_ocpp_stop_tx s;
        memset(&s, 0, sizeof(s));
        pw_strlcpy(s.tx_id, t->id, sizeof(s.tx_id));
        pw_strlcpy(s.id_tag, t->tag, sizeof(s.id_tag));
        s.meter_stop_wh = t->meter_stop_wh;
        s.timestamp_ms = t->stop_wall;
        pw_strlcpy(s.reason, "EVDisconnected", sizeof(s.reason));
        t->busy = true;
        enqueue(cp, PW_OCPP_A_STOP_TRANSACTION, t->connector, i, false, pw_ocpp_stop_req(&s));
    }
}

/* Transaction messages owed, in the order the transactions began. */
static void queue_owed_tx(pw_simocpp *cp)
{
    int order[MAX_TX];
    size_t n = 0;
    for (int i = 0; i < MAX_TX; i++) {
        if (cp->txs[i].used)
            order[n++] = i;
    }
    for (size_t a = 1; a < n; a++) { /* insertion sort by start time: a handful of entries */
        int x = order[a];
        size_t b = a;
        while (b > 0 && cp->txs[order[b - 1]].start_wall > cp->txs[x].start_wall) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = x;
    }
    for (size_t k = 0; k < n; k++)
        queue_tx_message(cp, order[k]);
}

void pw_simocpp_meter(const pw_simocpp *cp, int connector, const pw_simocpp_view *v, int64_t wall,
                      pw_ocpp_meter *out)
{
    memset(out, 0, sizeof(*out));
    out->connector = connector;
    out->timestamp_ms = wall;
    if (!valid_connector(cp, connector))
        return;
    const pw_simocpp_connector_cfg *cc = &cp->o.connectors[connector - 1];
    const sim_tx *t = running_tx_c(cp, connector);
    if (t && t->start_done)
        pw_strlcpy(out->tx_id, t->id, sizeof(out->tx_id));
    unsigned m = cp->measurands;
    double power = 0.0;
    for (int l = 0; l < 3; l++) {
        if (!cc->wiring[l])
            continue;
        out->has_current[l] = (m & PW_SIMOCPP_M_CURRENT) != 0;
        out->current_a[l] = round(v->current_a[l] * 10.0) / 10.0;
        power += v->current_a[l] * PW_SIMOCPP_VOLTAGE_V;
    }
    out->has_offered = (m & PW_SIMOCPP_M_OFFERED) != 0;
    out->offered_a = v->offered_a;
    out->has_energy = (m & PW_SIMOCPP_M_ENERGY) != 0;
    out->energy_wh = v->energy_wh > 0.0 ? (uint64_t)v->energy_wh : 0;
    out->has_power = (m & PW_SIMOCPP_M_POWER) != 0;
    out->power_w = round(power);
}

/* "L1" -> "L1-N" in every sampledValue's phase: the label style some chargers use. */
static void label_ln(json_t *payload)
{
    json_t *mv, *s;
    size_t i, j;
    json_array_foreach(json_object_get(payload, "meterValue"), i, mv)
    {
        json_array_foreach(json_object_get(mv, "sampledValue"), j, s)
        {
            json_t *ph = json_object_get(s, "phase");
            const char *p = json_string_value(ph);
            if (p && p[0] == 'L' && p[1] >= '1' && p[1] <= '3' && p[2] == '\0') {
                char buf[8] = {'L', p[1], '-', 'N', '\0'};
                json_object_set_new(s, "phase", json_string(buf));
            }
        }
    }
}

static void queue_meter(pw_simocpp *cp, int c, int64_t wall, bool triggered)
{
    pw_ocpp_meter m;
    const sim_conn *k = &cp->conns[c];
    pw_simocpp_view none;
    memset(&none, 0, sizeof(none));
    pw_simocpp_meter(cp, c, k->has_view ? &k->view : &none, wall, &m);
    if (!(m.has_current[0] || m.has_current[1] || m.has_current[2] || m.has_offered ||
          m.has_energy || m.has_power))
        return; /* MeterValuesSampledData is empty: nothing to sample */
    json_t *payload = pw_ocpp_meter_req(&m);
    if (payload && cp->o.connectors[c - 1].phase_ln)
        label_ln(payload);
    enqueue(cp, PW_OCPP_A_METER_VALUES, c, -1, triggered, payload);
}

/* ---- lifetime and connection ----------------------------------------------------------------- */

pw_simocpp *pw_simocpp_new(const pw_simocpp_opts *opts, const pw_simocpp_sink *sink)
{
    pw_simocpp *cp = pw_xcalloc(1, sizeof(*cp));
    cp->o = *opts;
    if (cp->o.n_connectors > PW_SIMOCPP_MAX_CONNECTORS)
        cp->o.n_connectors = PW_SIMOCPP_MAX_CONNECTORS;
    cp->sink = *sink;
    cp->heartbeat_s = DEFAULT_HB;
    cp->sample_s = 60;
    cp->measurands = PW_SIMOCPP_M_ENERGY; /* the spec's usual factory setting */
    cp->next_boot = cp->next_heartbeat = NO_DEADLINE;
    for (size_t c = 0; c <= PW_SIMOCPP_MAX_CONNECTORS; c++)
        cp->conns[c].next_meter = NO_DEADLINE;
    return cp;
}

static void drop_queue(pw_simocpp *cp)
{
    for (size_t i = 0; i < cp->n_queue; i++)
        call_clear(&cp->queue[i]);
    cp->n_queue = 0;
    cp->in_flight = false;
    for (size_t i = 0; i < MAX_TX; i++)
        cp->txs[i].busy = false;
}

void pw_simocpp_free(pw_simocpp *cp)
{
    if (!cp)
        return;
    drop_queue(cp);
    free(cp->queue);
    free(cp);
}

void pw_simocpp_connected(pw_simocpp *cp, uint64_t now, int64_t wall)
{
    (void)wall;
    drop_queue(cp);
    cp->connected = true;
    cp->booted = false;
    cp->next_boot = cp->next_heartbeat = NO_DEADLINE;
    for (size_t c = 0; c <= PW_SIMOCPP_MAX_CONNECTORS; c++)
        cp->conns[c].has_sent = false;
    queue_boot(cp, false);
    pump(cp, now);
}

void pw_simocpp_disconnected(pw_simocpp *cp)
{
    drop_queue(cp);
    cp->connected = cp->booted = false;
    cp->next_boot = cp->next_heartbeat = NO_DEADLINE;
}

bool pw_simocpp_is_booted(const pw_simocpp *cp)
{
    return cp->booted;
}

/* ---- the model's side: sessions become transactions ----------------------------------------- */

static void end_tx(pw_simocpp *cp, int c, uint64_t now, int64_t wall)
{
    sim_tx *t = running_tx(cp, c);
    cp->conns[c].next_meter = NO_DEADLINE;
    cp->conns[c].finishing_until = now + PW_SIMOCPP_FINISHING_MS;
    /* OCPP 1.6 3.13.1: a TxProfile ends with its transaction. */
    for (size_t i = 0; i < cp->n_profiles;) {
        if (cp->profiles[i].p.purpose == PW_OCPP_TX && cp->profiles[i].p.connector == c)
            cp->profiles[i] = cp->profiles[--cp->n_profiles];
        else
            i++;
    }
    if (!t)
        return;
    t->ended = true;
    t->meter_stop_wh = (int64_t)cp->conns[c].view.energy_wh;
    t->stop_wall = wall;
    if (!t->start_sent) {
        /* The central system never heard of it and will not: forget it (and its queued Start). */
        drop_queued_tx(cp, (int)(t - cp->txs));
        memset(t, 0, sizeof(*t));
        return;
    }
    if (cp->booted && t->start_done)
        queue_tx_message(cp, (int)(t - cp->txs));
}

static void begin_tx(pw_simocpp *cp, int c, const pw_simocpp_view *v, int64_t wall)
{
    sim_conn *k = &cp->conns[c];
    if (v->session_id == k->refused_session)
        return;
    sim_tx *t = NULL;
    for (size_t i = 0; i < MAX_TX && !t; i++) {
        if (!cp->txs[i].used)
            t = &cp->txs[i];
    }
    if (!t) {
        pw_warn(COMP, "%s: %d transactions unreported; session on connector %d not started",
                cp->o.cp_id, MAX_TX, c);
        k->refused_session = v->session_id;
        return;
    }
    memset(t, 0, sizeof(*t));
    t->used = true;
    t->connector = c;
    t->session_id = v->session_id;
    const pw_simocpp_connector_cfg *cc = &cp->o.connectors[c - 1];
    pw_strlcpy(t->tag, cc->tags[k->sessions++ % 3], sizeof(t->tag));
    if (!t->tag[0])
        pw_strlcpy(t->tag, "SIM", sizeof(t->tag));
    t->meter_start_wh = (int64_t)v->energy_wh;
    t->start_wall = wall;
    if (cp->booted)
        queue_tx_message(cp, (int)(t - cp->txs));
}

void pw_simocpp_update(pw_simocpp *cp, int connector, const pw_simocpp_view *v, uint64_t now,
                       int64_t wall)
{
    if (!valid_connector(cp, connector))
        return;
    sim_conn *k = &cp->conns[connector];
    uint32_t before = k->has_view ? k->view.session_id : 0;
    if (before != v->session_id && before != 0) {
        k->view.energy_wh = v->energy_wh; /* meterStop: the register at the end */
        end_tx(cp, connector, now, wall);
    }
    k->view = *v;
    k->has_view = true;
    if (v->session_id != 0 && !running_tx(cp, connector)) {
        /* Preparing goes out before StartTransaction. */
        sync_statuses(cp, now, wall);
        begin_tx(cp, connector, v, wall);
    }
    sync_statuses(cp, now, wall);
    pump(cp, now);
}

/* ---- time ------------------------------------------------------------------------------------ */

uint64_t pw_simocpp_next_deadline(const pw_simocpp *cp)
{
    uint64_t d = NO_DEADLINE;
    if (!cp->connected)
        return d;
    if (cp->in_flight)
        d = min_u64(d, cp->flight_deadline);
    d = min_u64(d, cp->next_boot);
    if (!cp->booted)
        return d;
    d = min_u64(d, cp->next_heartbeat);
    for (size_t c = 1; c <= cp->o.n_connectors; c++) {
        const sim_conn *k = &cp->conns[c];
        d = min_u64(d, k->next_meter);
        if (k->has_sent && k->sent == PW_OCPP_FINISHING)
            d = min_u64(d, k->finishing_until);
    }
    return d;
}

void pw_simocpp_poll(pw_simocpp *cp, uint64_t now, int64_t wall)
{
    if (!cp->connected)
        return;
    if (cp->in_flight && now >= cp->flight_deadline) {
        pw_warn(COMP, "%s: %s %s unanswered after %d s", cp->o.cp_id,
                pw_ocpp_action_name(cp->flight.action), cp->flight_id,
                PW_SIMOCPP_CALL_TIMEOUT / 1000);
        cp->in_flight = false;
        if (cp->flight.action == PW_OCPP_A_BOOT_NOTIFICATION && !cp->booted)
            queue_boot(cp, false);
        if (cp->flight.tx >= 0) {
            /* A transaction message is owed until answered: again at the end of the queue. */
            cp->txs[cp->flight.tx].busy = false;
            queue_tx_message(cp, cp->flight.tx);
        }
    }
    if (now >= cp->next_boot) {
        cp->next_boot = NO_DEADLINE;
        queue_boot(cp, false);
    }
    if (cp->booted && now >= cp->next_heartbeat) {
        enqueue(cp, PW_OCPP_A_HEARTBEAT, 0, -1, false, pw_ocpp_heartbeat_req());
        cp->next_heartbeat = now + (uint64_t)cp->heartbeat_s * 1000u;
    }
    if (cp->booted) {
        for (int c = 1; c <= (int)cp->o.n_connectors; c++) {
            sim_conn *k = &cp->conns[c];
            if (now < k->next_meter)
                continue;
            queue_meter(cp, c, wall, false);
            k->next_meter = now + (uint64_t)cp->sample_s * 1000u;
        }
    }
    sync_statuses(cp, now, wall);
    pump(cp, now);
}

/* ---- results of our calls -------------------------------------------------------------------- */

static void booted(pw_simocpp *cp, int interval_s, uint64_t now, int64_t wall)
{
    bool first = !cp->booted;
    cp->booted = true;
    cp->next_boot = NO_DEADLINE;
    cp->heartbeat_s = interval_s > 0 ? (uint32_t)interval_s : DEFAULT_HB;
    cp->next_heartbeat = now + (uint64_t)cp->heartbeat_s * 1000u;
    if (!first)
        return;
    sync_statuses(cp, now, wall);
    queue_owed_tx(cp);
    for (int c = 1; c <= (int)cp->o.n_connectors; c++) {
        const sim_tx *t = running_tx(cp, c);
        if (t && t->start_done)
            cp->conns[c].next_meter = now + (uint64_t)cp->sample_s * 1000u;
    }
}

static void take_result(pw_simocpp *cp, const json_t *payload, uint64_t now, int64_t wall)
{
    sim_call *c = &cp->flight;
    enum pw_ocpp_answer status = PW_OCPP_ACCEPTED;
    int interval = 0;
    char tx_id[PW_OCPP_TXID_LEN] = "";
    pw_ocpp_fault fault;
    cp->in_flight = false;
    bool typed = c->action == PW_OCPP_A_BOOT_NOTIFICATION ||
                 c->action == PW_OCPP_A_START_TRANSACTION ||
                 c->action == PW_OCPP_A_STOP_TRANSACTION;
    if (!typed)
        return; /* Heartbeat, StatusNotification, MeterValues: nothing to act on */
    if (pw_ocpp_decode_cp_result(c->action, payload, &status, &interval, tx_id, &fault) != 0) {
        pw_warn(COMP, "%s: %s answer refused: %s", cp->o.cp_id, pw_ocpp_action_name(c->action),
                fault.text);
        if (c->tx >= 0)
            cp->txs[c->tx].busy = false; /* owed still; goes again after the next boot */
        return;
    }
    switch (c->action) {
    case PW_OCPP_A_BOOT_NOTIFICATION:
        if (status == PW_OCPP_ACCEPTED) {
            booted(cp, interval, now, wall);
        } else if (!cp->booted) {
            int wait = interval > 0 ? interval : BOOT_RETRY;
            pw_info(COMP, "%s: boot %s; again in %d s", cp->o.cp_id, pw_ocpp_answer_name(status),
                    wait);
            cp->next_boot = now + (uint64_t)wait * 1000u;
        }
        break;
    case PW_OCPP_A_START_TRANSACTION: {
        sim_tx *t = &cp->txs[c->tx];
        t->busy = false;
        pw_strlcpy(t->id, tx_id, sizeof(t->id));
        t->start_done = true;
        if (status != PW_OCPP_ACCEPTED)
            pw_info(COMP,
                    "%s: idTag %s is %s; charging anyway (StopTransactionOnInvalidId "
                    "false)",
                    cp->o.cp_id, t->tag, pw_ocpp_answer_name(status));
        if (t->ended)
            queue_tx_message(cp, c->tx);
        else
            cp->conns[t->connector].next_meter = now + (uint64_t)cp->sample_s * 1000u;
        break;
    }
    case PW_OCPP_A_STOP_TRANSACTION:
        memset(&cp->txs[c->tx], 0, sizeof(cp->txs[c->tx]));
        break;
    default:
        break;
    }
}

/* A CALLERROR for our call: transaction messages are given up (their session is not retried),
 * a refused boot is tried again later. */
static void take_error(pw_simocpp *cp, const pw_ocpp_frame *f, uint64_t now)
{
    sim_call *c = &cp->flight;
    cp->in_flight = false;
    pw_warn(COMP, "%s: %s refused: %s %s", cp->o.cp_id, pw_ocpp_action_name(c->action),
            pw_ocpp_error_name(f->error), f->error_text);
    if (c->action == PW_OCPP_A_BOOT_NOTIFICATION && !cp->booted)
        cp->next_boot = now + BOOT_RETRY * 1000u;
    if (c->tx >= 0) {
        sim_tx *t = &cp->txs[c->tx];
        if (!t->ended)
            cp->conns[t->connector].refused_session = t->session_id;
        memset(t, 0, sizeof(*t));
    }
}

/* ---- charging profiles ----------------------------------------------------------------------- */

static int max_stack(const pw_simocpp *cp)
{
    return cp->o.quirk == PW_SIMOCPP_STACK0 ? 0 : PW_SIMOCPP_MAX_STACK;
}

enum pw_ocpp_answer pw_simocpp_set_profile(pw_simocpp *cp, const pw_ocpp_profile *p, int64_t wall)
{
    const char *why = NULL;
    const sim_tx *t = p->connector >= 1 ? running_tx(cp, p->connector) : NULL;
    if (p->connector < 0 || (size_t)p->connector > cp->o.n_connectors)
        why = "no such connector";
    else if (p->purpose == PW_OCPP_CHARGE_POINT_MAX && p->connector != 0)
        why = "ChargePointMaxProfile only on connector 0";
    else if (p->purpose == PW_OCPP_TX && cp->o.quirk == PW_SIMOCPP_TX_DEFAULT_ONLY)
        why = "TxProfile not supported (tx-default-only)";
    else if (p->purpose == PW_OCPP_TX && p->connector == 0)
        why = "TxProfile on connector 0";
    else if (p->purpose == PW_OCPP_TX && (!t || !t->start_done))
        why = "no transaction on the connector";
    else if (p->purpose == PW_OCPP_TX && p->tx_id[0] && strcmp(p->tx_id, t->id) != 0)
        why = "another transaction";
    else if (p->stack_level < 0 || p->stack_level > max_stack(cp))
        why = "stack level beyond ChargeProfileMaxStackLevel";
    else if (p->n_periods == 0 || p->n_periods > PW_OCPP_MAX_PERIODS)
        why = "no schedule periods";
    if (!why && cp->o.quirk == PW_SIMOCPP_WHOLE_AMPS) {
        for (size_t i = 0; i < p->n_periods; i++) {
            if (p->periods[i].limit_a != floor(p->periods[i].limit_a))
                why = "limit with decimals (whole-amps)";
        }
    }
    for (size_t i = 0; !why && i < p->n_periods; i++) {
        if (!(p->periods[i].limit_a >= 0.0))
            why = "negative limit";
    }
    if (why) {
        pw_debug(COMP, "%s: profile %d rejected: %s", cp->o.cp_id, p->id, why);
        return PW_OCPP_REJECTED;
    }
    /* OCPP 1.6 5.16.3: the same id, or the same purpose and stack level (on the same connector),
     * replaces the old profile. */
    for (size_t i = 0; i < cp->n_profiles;) {
        const pw_ocpp_profile *o = &cp->profiles[i].p;
        if (o->id == p->id || (o->connector == p->connector && o->purpose == p->purpose &&
                               o->stack_level == p->stack_level))
            cp->profiles[i] = cp->profiles[--cp->n_profiles];
        else
            i++;
    }
    if (cp->n_profiles == PW_SIMOCPP_MAX_PROFILES) {
        pw_debug(COMP, "%s: profile %d rejected: %d installed", cp->o.cp_id, p->id,
                 PW_SIMOCPP_MAX_PROFILES);
        return PW_OCPP_REJECTED;
    }
    sim_profile *s = &cp->profiles[cp->n_profiles++];
    s->p = *p;
    s->installed_wall = wall;
    if (p->purpose == PW_OCPP_TX)
        pw_strlcpy(s->p.tx_id, t->id, sizeof(s->p.tx_id));
    return PW_OCPP_ACCEPTED;
}

enum pw_ocpp_answer pw_simocpp_clear_profiles(pw_simocpp *cp, const pw_simocpp_clear *c)
{
    size_t removed = 0;
    for (size_t i = 0; i < cp->n_profiles;) {
        const pw_ocpp_profile *p = &cp->profiles[i].p;
        bool match = c->has_id ? p->id == c->id
                               : (!c->has_connector || p->connector == c->connector) &&
                                     (!c->has_purpose || p->purpose == c->purpose) &&
                                     (!c->has_stack_level || p->stack_level == c->stack_level);
        if (match) {
            cp->profiles[i] = cp->profiles[--cp->n_profiles];
            removed++;
        } else {
            i++;
        }
    }
    return removed ? PW_OCPP_ACCEPTED : PW_OCPP_ANSWER_UNKNOWN;
}

size_t pw_simocpp_profile_count(const pw_simocpp *cp)
{
    return cp->n_profiles;
}

/* The limit profile s sets at wall for a connector whose running transaction is t (may be
 * NULL), in A per phase. Returns false when the profile is not in force then. */
static bool profile_limit(const sim_profile *s, int64_t wall, const sim_tx *t, double *amps,
                          uint8_t *phases)
{
    const pw_ocpp_profile *p = &s->p;
    int64_t start;
    switch (p->kind) {
    case PW_OCPP_RECURRING:
        if (p->start_ms == 0 || wall < p->start_ms)
            return false;
        start = p->start_ms + (wall - p->start_ms) / DAY_MS * DAY_MS;
        break;
    case PW_OCPP_RELATIVE:
        /* Relative to the transaction's start; before one, to now (its first period). */
        start = t ? t->start_wall : wall;
        break;
    default:
        start = p->start_ms ? p->start_ms : t ? t->start_wall : s->installed_wall;
        break;
    }
    if (wall < start)
        return false;
    int64_t elapsed_s = (wall - start) / 1000;
    if (p->duration_s > 0 && elapsed_s >= p->duration_s)
        return false;
    const pw_ocpp_period *in_force = NULL;
    for (size_t i = 0; i < p->n_periods; i++) {
        if (p->periods[i].start_s <= elapsed_s &&
            (!in_force || p->periods[i].start_s >= in_force->start_s))
            in_force = &p->periods[i];
    }
    if (!in_force)
        return false;
    uint8_t n = in_force->phases >= 1 && in_force->phases <= 3 ? in_force->phases : 3;
    *phases = n;
    *amps = p->watts ? in_force->limit_a / (PW_SIMOCPP_VOLTAGE_V * n) : in_force->limit_a;
    return true;
}

/* The winner within a purpose: the highest stack level in force on connector c (or on 0 for a
 * TxDefaultProfile meant for all connectors; c's own wins a tie). */
static const sim_profile *winner(const pw_simocpp *cp, enum pw_ocpp_purpose purpose, int c,
                                 int64_t wall, const sim_tx *t, double *amps, uint8_t *phases)
{
    const sim_profile *best = NULL;
    for (size_t i = 0; i < cp->n_profiles; i++) {
        const sim_profile *s = &cp->profiles[i];
        const pw_ocpp_profile *p = &s->p;
        double a;
        uint8_t ph;
        if (p->purpose != purpose)
            continue;
        if (purpose == PW_OCPP_TX && (!t || p->connector != c || strcmp(p->tx_id, t->id) != 0))
            continue;
        if (purpose == PW_OCPP_TX_DEFAULT && p->connector != c && p->connector != 0)
            continue;
        if (!profile_limit(s, wall, t, &a, &ph))
            continue;
        bool better =
            !best || p->stack_level > best->p.stack_level ||
            (p->stack_level == best->p.stack_level && p->connector == c && best->p.connector != c);
        if (better) {
            best = s;
            *amps = a;
            *phases = ph;
        }
    }
    return best;
}

void pw_simocpp_limit_at(const pw_simocpp *cp, int connector, int64_t wall, pw_simocpp_limit *out)
{
    memset(out, 0, sizeof(*out));
    out->phases = 3;
    if (!valid_connector(cp, connector))
        return;
    double max_a = cp->o.connectors[connector - 1].max_a;
    out->limit_a = max_a;
    if (cp->o.quirk == PW_SIMOCPP_IGNORE)
        return;
    const sim_tx *t = running_tx_c(cp, connector);
    if (t && !t->start_done)
        t = NULL;
    double base_a = 0.0, cap_a = 0.0;
    uint8_t base_ph = 3, cap_ph = 3;
    const sim_profile *base = winner(cp, PW_OCPP_TX, connector, wall, t, &base_a, &base_ph);
    if (!base)
        base = winner(cp, PW_OCPP_TX_DEFAULT, connector, wall, t, &base_a, &base_ph);
    const sim_profile *cap = winner(cp, PW_OCPP_CHARGE_POINT_MAX, 0, wall, NULL, &cap_a, &cap_ph);
    if (!base && !cap)
        return;
    out->constrained = true;
    double lim = base ? base_a : cap_a;
    if (cap && cap_a < lim)
        lim = cap_a;
    out->limit_a = lim < max_a ? lim : max_a;
    out->phases = base ? base_ph : cap_ph;
    out->profile_id = base ? base->p.id : cap->p.id;
}

/* ---- configuration --------------------------------------------------------------------------- */

/* Parses a MeterValuesSampledData list into bits. Returns 0, or -1 for a measurand the charge
 * point does not sample. */
static int parse_measurands(const pw_simocpp *cp, const char *value, unsigned *out)
{
    unsigned bits = 0;
    const char *s = value;
    while (*s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        size_t len = strcspn(s, ",");
        while (len > 0 && s[len - 1] == ' ')
            len--;
        unsigned bit = 0;
        for (size_t i = 0; i < PW_ARRAY_LEN(measurands); i++) {
            if (strlen(measurands[i].name) == len && strncmp(s, measurands[i].name, len) == 0)
                bit = measurands[i].bit;
        }
        if (!(bit & supported_measurands(cp)))
            return -1;
        bits |= bit;
        s += len;
        while (*s == ' ')
            s++;
    }
    *out = bits;
    return 0;
}

static void format_measurands(unsigned bits, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < PW_ARRAY_LEN(measurands); i++) {
        if (!(bits & measurands[i].bit))
            continue;
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", used ? "," : "", measurands[i].name);
    }
}

void pw_simocpp_rotation(const pw_simocpp_opts *o, char *out, size_t out_size)
{
    size_t used = (size_t)snprintf(out, out_size, "0.RST");
    for (size_t c = 0; c < o->n_connectors && used < out_size; c++) {
        const uint8_t *w = o->connectors[c].wiring;
        char rot[16];
        int wired = (w[0] != 0) + (w[1] != 0) + (w[2] != 0);
        if (wired == 3)
            snprintf(rot, sizeof(rot), "%c%c%c", "RST"[w[0] - 1], "RST"[w[1] - 1], "RST"[w[2] - 1]);
        else
            pw_strlcpy(rot, wired == 1 ? "NotApplicable" : "Unknown", sizeof(rot));
        used += (size_t)snprintf(out + used, out_size - used, ", %zu.%s", c + 1, rot);
    }
}

/* The charge point's configuration keys: name, read-only, and its value now. */
enum {
    K_SAMPLED,
    K_INTERVAL,
    K_ROTATION,
    K_STACK,
    K_CONNECTORS,
    K_PROFILES,
    K_HEARTBEAT,
    K_MAX_LENGTH,
    K_UNIT,
    K_MAX_PERIODS,
    K_MAX_INSTALLED,
    K_STOP_INVALID,
    K_KEYS
};
static const struct {
    const char *name;
    bool readonly;
} config_keys[K_KEYS] = {
    [K_SAMPLED] = {"MeterValuesSampledData", false},
    [K_INTERVAL] = {"MeterValueSampleInterval", false},
    [K_ROTATION] = {"ConnectorPhaseRotation", false},
    [K_STACK] = {"ChargeProfileMaxStackLevel", true},
    [K_CONNECTORS] = {"NumberOfConnectors", true},
    [K_PROFILES] = {"SupportedFeatureProfiles", true},
    [K_HEARTBEAT] = {"HeartbeatInterval", false},
    [K_MAX_LENGTH] = {"MeterValuesSampledDataMaxLength", true},
    [K_UNIT] = {"ChargingScheduleAllowedChargingRateUnit", true},
    [K_MAX_PERIODS] = {"ChargingScheduleMaxPeriods", true},
    [K_MAX_INSTALLED] = {"MaxChargingProfilesInstalled", true},
    [K_STOP_INVALID] = {"StopTransactionOnInvalidId", true},
};

static int key_index(const char *name)
{
    for (int k = 0; k < K_KEYS; k++) {
        if (strcmp(config_keys[k].name, name) == 0)
            return k;
    }
    return -1;
}

static void key_value(const pw_simocpp *cp, int k, char *out, size_t size)
{
    switch (k) {
    case K_SAMPLED:
        format_measurands(cp->measurands, out, size);
        break;
    case K_INTERVAL:
        snprintf(out, size, "%u", cp->sample_s);
        break;
    case K_ROTATION:
        pw_simocpp_rotation(&cp->o, out, size);
        break;
    case K_STACK:
        snprintf(out, size, "%d", max_stack(cp));
        break;
    case K_CONNECTORS:
        snprintf(out, size, "%zu", cp->o.n_connectors);
        break;
    case K_PROFILES:
        pw_strlcpy(out, "Core,SmartCharging,RemoteTrigger", size);
        break;
    case K_HEARTBEAT:
        snprintf(out, size, "%u", cp->heartbeat_s);
        break;
    case K_MAX_LENGTH:
        snprintf(out, size, "%u", cp->o.quirk == PW_SIMOCPP_NO_OFFERED ? 3u : 4u);
        break;
    case K_UNIT:
        pw_strlcpy(out, "Current,Power", size);
        break;
    case K_MAX_PERIODS:
        snprintf(out, size, "%d", PW_OCPP_MAX_PERIODS);
        break;
    case K_MAX_INSTALLED:
        snprintf(out, size, "%d", PW_SIMOCPP_MAX_PROFILES);
        break;
    default:
        pw_strlcpy(out, "false", size);
        break;
    }
}

static void add_key(const pw_simocpp *cp, int k, pw_ocpp_config_answer *out)
{
    if (out->n_keys == PW_OCPP_MAX_KEYS) {
        out->n_dropped++;
        return;
    }
    pw_ocpp_config_key *e = &out->keys[out->n_keys++];
    pw_strlcpy(e->key, config_keys[k].name, sizeof(e->key));
    e->readonly = config_keys[k].readonly;
    e->has_value = true;
    key_value(cp, k, e->value, sizeof(e->value));
}

void pw_simocpp_get_config(const pw_simocpp *cp, const char *const *keys, size_t n,
                           pw_ocpp_config_answer *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        for (int k = 0; k < K_KEYS; k++)
            add_key(cp, k, out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int k = key_index(keys[i]);
        if (k >= 0)
            add_key(cp, k, out);
        else if (out->n_unknown < PW_ARRAY_LEN(out->unknown))
            pw_strlcpy(out->unknown[out->n_unknown++], keys[i], sizeof(out->unknown[0]));
    }
}

enum pw_ocpp_answer pw_simocpp_change_config(pw_simocpp *cp, const char *key, const char *value,
                                             uint64_t now)
{
    int k = key_index(key);
    if (k < 0)
        return PW_OCPP_ANSWER_NOT_SUPPORTED;
    if (k == K_SAMPLED) {
        unsigned bits;
        if (parse_measurands(cp, value, &bits) != 0)
            return PW_OCPP_REJECTED;
        cp->measurands = bits;
        return PW_OCPP_ACCEPTED;
    }
    if (k == K_INTERVAL) {
        char *end;
        long v = strtol(value, &end, 10);
        if (end == value || *end || v < 1 || v > 3600)
            return PW_OCPP_REJECTED;
        cp->sample_s = (uint32_t)v;
        /* The new interval counts from now for running transactions. */
        for (size_t c = 1; c <= cp->o.n_connectors; c++) {
            if (cp->conns[c].next_meter != NO_DEADLINE)
                cp->conns[c].next_meter = now + (uint64_t)v * 1000u;
        }
        return PW_OCPP_ACCEPTED;
    }
    return PW_OCPP_REJECTED;
}

unsigned pw_simocpp_measurands(const pw_simocpp *cp)
{
    return cp->measurands;
}

uint32_t pw_simocpp_sample_interval_s(const pw_simocpp *cp)
{
    return cp->sample_s;
}

const char *pw_simocpp_tx_id(const pw_simocpp *cp, int connector)
{
    const sim_tx *t = valid_connector(cp, connector) ? running_tx_c(cp, connector) : NULL;
    return t && t->start_done ? t->id : "";
}

enum pw_ocpp_status pw_simocpp_status(const pw_simocpp *cp, int connector)
{
    if (connector < 0 || (size_t)connector > cp->o.n_connectors)
        return PW_OCPP_UNAVAILABLE;
    return cp->conns[connector].has_sent ? cp->conns[connector].sent : PW_OCPP_AVAILABLE;
}

/* ---- the central system's calls -------------------------------------------------------------- */

/* The codec has no builders for a charge point's answers yet: these two payloads are written
 * here, each field as the OCPP 1.6 schema of the *.conf wants it. */
static json_t *status_conf(enum pw_ocpp_answer a)
{
    return json_pack("{s:s}", "status", pw_ocpp_answer_name(a));
}

static json_t *config_conf(const pw_ocpp_config_answer *a)
{
    json_t *keys = json_array(), *unknown = json_array();
    for (size_t i = 0; i < a->n_keys; i++) {
        const pw_ocpp_config_key *k = &a->keys[i];
        json_t *o = json_pack("{s:s, s:b}", "key", k->key, "readonly", k->readonly);
        if (k->has_value)
            json_object_set_new(o, "value", json_string(k->value));
        json_array_append_new(keys, o);
    }
    for (size_t i = 0; i < a->n_unknown; i++)
        json_array_append_new(unknown, json_string(a->unknown[i]));
    json_t *conf = json_object();
    json_object_set_new(conf, "configurationKey", keys);
    if (a->n_unknown)
        json_object_set_new(conf, "unknownKey", unknown);
    else
        json_decref(unknown);
    return conf;
}

/* TriggerMessage: the answer, and what it asks for queued behind it. */
static enum pw_ocpp_answer trigger(pw_simocpp *cp, const char *msg, int connector, uint64_t now,
                                   int64_t wall)
{
    bool all = connector < 0;
    if (!all && connector > (int)cp->o.n_connectors)
        return PW_OCPP_REJECTED;
    if (strcmp(msg, "BootNotification") == 0) {
        queue_boot(cp, true);
    } else if (strcmp(msg, "Heartbeat") == 0) {
        enqueue(cp, PW_OCPP_A_HEARTBEAT, 0, -1, true, pw_ocpp_heartbeat_req());
    } else if (strcmp(msg, "StatusNotification") == 0) {
        for (int c = all ? 0 : connector; c <= (all ? (int)cp->o.n_connectors : connector); c++)
            queue_status(cp, c, status_of(cp, c, now), wall, true);
    } else if (strcmp(msg, "MeterValues") == 0) {
        all = all || connector == 0; /* no main meter: 0 means each connector's */
        for (int c = all ? 1 : connector; c <= (all ? (int)cp->o.n_connectors : connector); c++)
            queue_meter(cp, c, wall, true);
    } else {
        return PW_OCPP_ANSWER_NOT_IMPLEMENTED; /* diagnostics and firmware status */
    }
    return PW_OCPP_ACCEPTED;
}

/* Answers one call of the central system; returns the payload (new reference) or NULL with
 * fault filled for a CALLERROR. */
static json_t *answer_call(pw_simocpp *cp, const pw_ocpp_cs_call *c, uint64_t now, int64_t wall,
                           bool *triggered, pw_ocpp_fault *fault)
{
    switch (c->action) {
    case PW_OCPP_A_SET_CHARGING_PROFILE:
        return status_conf(pw_simocpp_set_profile(cp, &c->u.profile, wall));
    case PW_OCPP_A_CLEAR_CHARGING_PROFILE: {
        pw_simocpp_clear cl = {.has_id = c->u.clear.has_id,
                               .has_connector = c->u.clear.has_connector,
                               .has_purpose = c->u.clear.has_purpose,
                               .has_stack_level = c->u.clear.has_stack_level,
                               .id = c->u.clear.id,
                               .connector = c->u.clear.connector,
                               .stack_level = c->u.clear.stack_level,
                               .purpose = c->u.clear.purpose};
        return status_conf(pw_simocpp_clear_profiles(cp, &cl));
    }
    case PW_OCPP_A_GET_CONFIGURATION: {
        pw_ocpp_config_answer *a = pw_xmalloc(sizeof(*a));
        const char *keys[PW_OCPP_MAX_KEYS];
        size_t n = c->u.get_config.n < PW_OCPP_MAX_KEYS ? c->u.get_config.n : PW_OCPP_MAX_KEYS;
        for (size_t i = 0; i < n; i++)
            keys[i] = c->u.get_config.keys[i];
        pw_simocpp_get_config(cp, keys, n, a);
        json_t *conf = config_conf(a);
        free(a);
        return conf;
    }
    case PW_OCPP_A_CHANGE_CONFIGURATION:
        return status_conf(
            pw_simocpp_change_config(cp, c->u.change_config.key, c->u.change_config.value, now));
    case PW_OCPP_A_TRIGGER_MESSAGE: {
        enum pw_ocpp_answer a =
            trigger(cp, c->u.trigger.message, c->u.trigger.connector, now, wall);
        *triggered = a == PW_OCPP_ACCEPTED;
        return status_conf(a);
    }
    default:
        fault->code = PW_OCPP_NOT_SUPPORTED;
        snprintf(fault->text, sizeof(fault->text), "%s is not supported by the simulator",
                 pw_ocpp_action_name(c->action));
        return NULL;
    }
}

static void receive_call(pw_simocpp *cp, const pw_ocpp_frame *f, uint64_t now, int64_t wall)
{
    pw_ocpp_cs_call *call = pw_xmalloc(sizeof(*call));
    pw_ocpp_fault fault = {PW_OCPP_OK, ""};
    json_t *conf = NULL;
    bool triggered = false;
    size_t len = 0;
    /* Queue length before the call: what a trigger adds must go out after the answer. */
    size_t queued = cp->n_queue;
    if (pw_ocpp_decode_cs_call(f, call, &fault) == 0)
        conf = answer_call(cp, call, now, wall, &triggered, &fault);
    free(call);
    char *text;
    if (conf) {
        text = pw_ocpp_result_text(f->id, conf, &len);
    } else {
        pw_debug(COMP, "%s: %s refused: %s", cp->o.cp_id, f->action, fault.text);
        text = pw_ocpp_error_text(f->id, fault.code, fault.text, &len);
    }
    send_text(cp, text, len);
    if (triggered && cp->n_queue > queued) {
        /* Triggered messages go first (the central system waits for them), in their order. */
        size_t n = cp->n_queue - queued;
        sim_call *moved = pw_xmalloc(n * sizeof(*moved));
        memcpy(moved, cp->queue + queued, n * sizeof(*moved));
        memmove(cp->queue + n, cp->queue, queued * sizeof(*moved));
        memcpy(cp->queue, moved, n * sizeof(*moved));
        free(moved);
    }
}

void pw_simocpp_receive(pw_simocpp *cp, const char *text, size_t len, uint64_t now, int64_t wall)
{
    pw_ocpp_frame f;
    pw_ocpp_fault fault;
    if (pw_ocpp_frame_parse(text, len, &f, &fault) != 0) {
        pw_warn(COMP, "%s: frame refused: %s", cp->o.cp_id, fault.text);
        if (f.kind == PW_OCPP_CALL && f.id[0]) {
            size_t n = 0;
            char *err = pw_ocpp_error_text(f.id, fault.code, fault.text, &n);
            send_text(cp, err, n);
        }
        pw_ocpp_frame_clear(&f);
        return;
    }
    if (f.kind == PW_OCPP_CALL) {
        receive_call(cp, &f, now, wall);
    } else if (!cp->in_flight || strcmp(f.id, cp->flight_id) != 0) {
        pw_debug(COMP, "%s: answer to no call of ours (%s)", cp->o.cp_id, f.id);
    } else if (f.kind == PW_OCPP_RESULT) {
        take_result(cp, f.payload, now, wall);
    } else {
        take_error(cp, &f, now);
    }
    pw_ocpp_frame_clear(&f);
    sync_statuses(cp, now, wall);
    pump(cp, now);
}
