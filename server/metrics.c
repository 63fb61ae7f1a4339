/* /metrics in the Prometheus text exposition format, for integrators' monitoring. It reads the
 * control core, the transports' counters and the history writer; it changes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

/* Transports whose refusals are named by pw_proto_err_name: every one of those reasons is
 * exported for them, zero included, so a dashboard finds the series before the first attack. */
static const char *const proto_reason_transports[] = {"lan", "defa"};

/* A growable text buffer; out of memory aborts like everywhere else. */
typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->data = pw_xrealloc(b->data, b->cap);
    }
}

static void header(buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(buf *b, const char *name, const char *help, const pw_latency *h)
{
    header(b, name, "histogram", help);
    for (size_t i = 0; i < PW_LATENCY_BUCKETS; i++)
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, pw_latency_bounds_us[i] / 1e6,
            (unsigned long long)h->bucket[i]);
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)h->count, name, h->sum_us / 1e6, name, (unsigned long long)h->count);
}

/* One gauge per node and grid line; rows[n] holds node n's three values, NULL to leave the node
 * out. */
static void node_gauge(buf *b, const pw_cfg *cfg, const char *name, const char *help,
                       const double *const *rows)
{
    header(b, name, "gauge", help);
    for (size_t n = 0; n < cfg->n_nodes; n++)
        for (size_t l = 0; l < PW_LINES && rows[n]; l++)
            put(b, "%s{node=\"%s\",line=\"L%zu\"} %.1f\n", name, cfg->nodes[n].id, l + 1,
                rows[n][l]);
}

static void node_gauges(buf *b, const pw_ctl *ctl)
{
    const pw_cfg *cfg = pw_ctl_config(ctl);
    const pw_bal_node_result *nres = pw_bal_node_results(pw_ctl_balancer(ctl));
    size_t nn = cfg->n_nodes ? cfg->n_nodes : 1;
    const double **rows = pw_xcalloc(nn, sizeof *rows);
    /* The chargers' draw counts at their node and at every node above it: the load an
     * unmetered node carries, and the EV share of a metered one. */
    double *load = pw_xcalloc(nn * PW_LINES, sizeof *load);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        double line[PW_LINES];
        pw_ctl_charger_lines(ctl, i, line);
        for (int n = cfg->chargers[i].node; n >= 0; n = cfg->nodes[n].parent)
            for (size_t l = 0; l < PW_LINES; l++)
                load[(size_t)n * PW_LINES + l] += line[l];
    }

    for (size_t n = 0; n < cfg->n_nodes; n++)
        rows[n] = nres[n].planned_a;
    node_gauge(b, cfg, "phasewise_node_planned_amperes", "Planned load per node and line.", rows);
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        const pw_ctl_meter_state *m = pw_ctl_meter(ctl, n);
        rows[n] = m->has_reading ? m->line_a : NULL;
    }
    node_gauge(b, cfg, "phasewise_node_measured_amperes", "Metered load per node and line.", rows);
    for (size_t n = 0; n < cfg->n_nodes; n++)
        rows[n] = &load[n * PW_LINES];
    node_gauge(b, cfg, "phasewise_node_charger_amperes",
               "Chargers' reported draw per node and line.", rows);
    header(b, "phasewise_meter_stale", "gauge",
           "A node's meter is stale and its budget conservative.");
    for (size_t n = 0; n < cfg->n_nodes; n++)
        if (cfg->meters[n].kind != PW_CFG_LINK_NONE)
            put(b, "phasewise_meter_stale{node=\"%s\"} %d\n", cfg->nodes[n].id,
                nres[n].meter_stale ? 1 : 0);
    for (size_t n = 0; n < cfg->n_nodes; n++)
        rows[n] = cfg->nodes[n].limit_a;
    node_gauge(b, cfg, "phasewise_node_limit_amperes", "Rated current per node and line.", rows);
    free(load);
    free(rows);
}

static bool proto_reasons(const char *transport)
{
    for (size_t k = 0; k < PW_ARRAY_LEN(proto_reason_transports); k++)
        if (strcmp(transport, proto_reason_transports[k]) == 0)
            return true;
    return false;
}

static bool has_transport(const pw_app *app, const char *name)
{
    for (size_t k = 0; k < app->n_tr; k++)
        if (strcmp(app->tr[k]->ops->name, name) == 0)
            return true;
    return false;
}

static bool is_proto_reason(const char *reason)
{
    for (int slot = 1; slot <= PW_PROTO_E_COUNT; slot++)
        if (strcmp(reason, pw_proto_err_name(-slot)) == 0)
            return true;
    return false;
}

/* Per-transport traffic, and refused input by transport and reason. */
static void transport_counters(buf *b, const pw_app *app)
{
    static const struct {
        const char *name, *help;
        size_t offset;
    } series[] = {
        {"phasewise_datagrams_received_total", "Messages received, per transport.",
         offsetof(pw_transport_stats, rx)},
        {"phasewise_datagrams_accepted_total",
         "Messages from configured devices that were used (authentic and fresh where the "
         "protocol can tell), per transport.",
         offsetof(pw_transport_stats, rx_accepted)},
        {"phasewise_datagrams_send_errors_total", "Messages that could not be sent, per transport.",
         offsetof(pw_transport_stats, tx_errors)},
        {"phasewise_datagrams_sent_total", "Messages sent, per transport.",
         offsetof(pw_transport_stats, tx)},
        {"phasewise_foreign_balancer_datagrams_total",
         "Messages from another controller commanding the same devices (on the LAN: allocations "
         "and heartbeats from another balancer on the group).",
         offsetof(pw_transport_stats, foreign)},
    };
    pw_transport_stats st[PW_APP_MAX_TRANSPORTS];
    for (size_t k = 0; k < app->n_tr; k++)
        app->tr[k]->ops->stats(app->tr[k], &st[k]);
    for (size_t s = 0; s < PW_ARRAY_LEN(series); s++) {
        header(b, series[s].name, "counter", series[s].help);
        for (size_t k = 0; k < app->n_tr; k++) {
            const uint64_t *v = (const uint64_t *)((const char *)&st[k] + series[s].offset);
            put(b, "%s{transport=\"%s\"} %llu\n", series[s].name, app->tr[k]->ops->name,
                (unsigned long long)*v);
        }
    }

    static const char rejected[] = "phasewise_datagrams_rejected_total";
    header(b, rejected, "counter", "Input refused, by transport and reason.");
    for (size_t t = 0; t < PW_ARRAY_LEN(proto_reason_transports); t++) {
        const char *tr = proto_reason_transports[t];
        if (!has_transport(app, tr))
            continue;
        for (int slot = 1; slot <= PW_PROTO_E_COUNT; slot++) {
            const char *reason = pw_proto_err_name(-slot);
            put(b, "%s{transport=\"%s\",reason=\"%s\"} %llu\n", rejected, tr, reason,
                (unsigned long long)pw_ctl_reject_count(app->ctl, tr, reason));
        }
    }
    size_t n;
    const pw_ctl_reject *rej = pw_ctl_rejects(app->ctl, &n);
    for (size_t k = 0; k < n; k++) {
        bool done = proto_reasons(rej[k].transport) && has_transport(app, rej[k].transport) &&
                    is_proto_reason(rej[k].reason);
        if (!done)
            put(b, "%s{transport=\"%s\",reason=\"%s\"} %llu\n", rejected, rej[k].transport,
                rej[k].reason, (unsigned long long)rej[k].count);
    }
}

char *pw_metrics_render(const pw_app *app, uint64_t now, size_t *len)
{
    buf b = {.data = pw_xmalloc(4096), .cap = 4096};
    const pw_ctl *ctl = app->ctl;
    const pw_cfg *cfg = pw_ctl_config(ctl);
    const pw_bal_result *res = pw_bal_results(pw_ctl_balancer(ctl));
    const pw_ctl_stats *cs = pw_ctl_stats_get(ctl);
    const pw_history_stats *hs = pw_history_stats_get(app->history);
    const pw_uplink_stats *up = pw_uplink_stats_get(app);

    transport_counters(&b, app);

    size_t online = pw_ctl_online_count(ctl, now), unassigned;
    pw_ctl_unassigned_list(ctl, &unassigned);
    header(&b, "phasewise_chargers", "gauge",
           "Configured chargers by status, and unassigned devices.");
    put(&b,
        "phasewise_chargers{status=\"online\"} %zu\n"
        "phasewise_chargers{status=\"offline\"} %zu\n"
        "phasewise_chargers{status=\"unassigned\"} %zu\n",
        online, cfg->n_chargers - online, unassigned);

    header(&b, "phasewise_allocation_amperes", "gauge", "Current limit allocated to each charger.");
    for (size_t i = 0; i < cfg->n_chargers; i++)
        put(&b, "phasewise_allocation_amperes{charger=\"%s\",phases=\"%u\"} %.1f\n",
            cfg->chargers[i].id, res[i].phases, res[i].limit_a);

    const struct {
        const char *name, *help;
        uint64_t value;
    } counters[] = {
        {"phasewise_allocation_plans_total", "Balancer runs that changed some charger's limit.",
         cs->plans},
        {"phasewise_allocation_cut_resends_total",
         "Limits sent again because a lower limit was not confirmed in time.", cs->cut_resends},
        {"phasewise_multicast_rejoins_total",
         "Groups joined again after the interface's address or link changed.", app->rejoins},
        {"phasewise_store_errors_total", "Failed history writes.", hs->errors},
        {"phasewise_uplink_sent_total", "Fleet uplink rows the central broker acknowledged.",
         up ? up->sent : 0},
        {"phasewise_uplink_dropped_total", "Fleet uplink rows dropped by the outbox's bound.",
         up ? up->dropped : 0},
    };
    for (size_t k = 0; k < PW_ARRAY_LEN(counters); k++) {
        header(&b, counters[k].name, "counter", counters[k].help);
        put(&b, "%s %llu\n", counters[k].name, (unsigned long long)counters[k].value);
    }

    header(&b, "phasewise_uplink_queued", "gauge", "Fleet uplink rows waiting in the outbox.");
    put(&b, "phasewise_uplink_queued %llu\n", (unsigned long long)(up ? up->queued : 0));

    node_gauges(&b, ctl);

    for (size_t k = 0; k < app->n_tr; k++) {
        pw_transport_stats st;
        app->tr[k]->ops->stats(app->tr[k], &st);
        if (strcmp(app->tr[k]->ops->name, "lan") == 0 && st.react)
            histogram(&b, "phasewise_control_latency_seconds",
                      "From a meter datagram's arrival to the first allocation datagram it "
                      "caused leaving.",
                      st.react);
    }
    histogram(&b, "phasewise_tick_duration_seconds", "One core run and the sends it caused.",
              &app->run_time);
    histogram(&b, "phasewise_history_loop_seconds",
              "The loop's share of one history batch (rows, hand-over to the writer).",
              &hs->loop_time);
    histogram(&b, "phasewise_history_write_seconds", "One history batch written by the worker.",
              &hs->write_time);
    *len = b.len;
    return b.data;
}
