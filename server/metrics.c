/* /metrics in the Prometheus text exposition format, for integrators' monitoring. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_int.h"
#include "pw_util.h"

const double pw_latency_bounds_us[PW_LATENCY_BUCKETS] = {50,   100,  200,  500,
                                                         1000, 2000, 5000, 10000};

void pw_latency_observe(pw_latency *h, uint64_t us)
{
    for (size_t i = 0; i < PW_LATENCY_BUCKETS; i++)
        if ((double)us <= pw_latency_bounds_us[i])
            h->bucket[i]++;
    h->count++;
    h->sum_us += us;
}

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

static void histogram(buf *b, const char *name, const char *help, const pw_latency *h)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < PW_LATENCY_BUCKETS; i++)
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, pw_latency_bounds_us[i] / 1e6,
            (unsigned long long)h->bucket[i]);
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)h->count, name, h->sum_us / 1e6, name, (unsigned long long)h->count);
}

/* The chargers' reported draw per node and line (every charger below the node, through its
 * wiring): the load an unmetered node carries, and the EV share of a metered one. */
static void chargers_load(buf *b, const pw_app *app)
{
    const pw_cfg *cfg = app->cfg;
    double *load = pw_xcalloc(cfg->n_nodes * PW_LINES, sizeof *load);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        const pw_reg_charger *ch = &app->reg.chargers[i];
        for (size_t t = 0; t < PW_LINES && ch->has_status; t++) {
            uint8_t line = cfg->chargers[i].wiring[t];
            for (int n = cfg->chargers[i].node; n >= 0 && line; n = cfg->nodes[n].parent)
                load[(size_t)n * PW_LINES + line - 1] += ch->status.current_ma[t] / 1000.0;
        }
    }
    put(b, "# HELP phasewise_node_charger_amperes Chargers' reported draw per node and line.\n"
           "# TYPE phasewise_node_charger_amperes gauge\n");
    for (size_t n = 0; n < cfg->n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            put(b, "phasewise_node_charger_amperes{node=\"%s\",line=\"L%zu\"} %.1f\n",
                cfg->nodes[n].id, l + 1, load[n * PW_LINES + l]);
    free(load);
}

char *pw_metrics_render(const pw_app *app, uint64_t now, size_t *len)
{
    buf b = {.data = pw_xmalloc(4096), .cap = 4096};
    const pw_cfg *cfg = app->cfg;
    const pw_counters *c = &app->counters;
    const pw_bal_result *res = pw_bal_results(app->bal);
    const pw_bal_node_result *nres = pw_bal_node_results(app->bal);

    put(&b,
        "# HELP phasewise_datagrams_received_total Datagrams received on the group.\n"
        "# TYPE phasewise_datagrams_received_total counter\n"
        "phasewise_datagrams_received_total %llu\n",
        (unsigned long long)c->rx);
    put(&b,
        "# HELP phasewise_datagrams_accepted_total Authentic, fresh datagrams from configured "
        "devices.\n"
        "# TYPE phasewise_datagrams_accepted_total counter\n"
        "phasewise_datagrams_accepted_total %llu\n",
        (unsigned long long)c->rx_accepted);
    put(&b,
        "# HELP phasewise_datagrams_send_errors_total Datagrams that could not be sent.\n"
        "# TYPE phasewise_datagrams_send_errors_total counter\n"
        "phasewise_datagrams_send_errors_total %llu\n",
        (unsigned long long)c->tx_errors);
    put(&b,
        "# HELP phasewise_datagrams_sent_total Datagrams sent to the group.\n"
        "# TYPE phasewise_datagrams_sent_total counter\n"
        "phasewise_datagrams_sent_total %llu\n",
        (unsigned long long)c->tx);
    put(&b, "# HELP phasewise_datagrams_rejected_total Datagrams rejected, by reason.\n"
            "# TYPE phasewise_datagrams_rejected_total counter\n");
    for (int slot = 1; slot < PW_REJECT_SLOTS; slot++)
        put(&b, "phasewise_datagrams_rejected_total{reason=\"%s\"} %llu\n",
            pw_proto_err_name(-slot), (unsigned long long)c->rejected[slot]);

    size_t online = 0;
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        uint64_t seen = app->reg.chargers[i].link.last_seen_ms;
        online += seen && now - seen <= cfg->params.offline_ms;
    }
    put(&b,
        "# HELP phasewise_chargers Configured chargers by status, and unassigned devices.\n"
        "# TYPE phasewise_chargers gauge\n"
        "phasewise_chargers{status=\"online\"} %zu\n"
        "phasewise_chargers{status=\"offline\"} %zu\n"
        "phasewise_chargers{status=\"unassigned\"} %zu\n",
        online, cfg->n_chargers - online, app->reg.n_unassigned);

    put(&b, "# HELP phasewise_allocation_amperes Current limit allocated to each charger.\n"
            "# TYPE phasewise_allocation_amperes gauge\n");
    for (size_t i = 0; i < cfg->n_chargers; i++)
        put(&b, "phasewise_allocation_amperes{charger=\"%s\",phases=\"%u\"} %.1f\n",
            cfg->chargers[i].id, res[i].phases, res[i].limit_a);

    put(&b,
        "# HELP phasewise_allocation_plans_total New allocation plans sent.\n"
        "# TYPE phasewise_allocation_plans_total counter\n"
        "phasewise_allocation_plans_total %llu\n"
        "# HELP phasewise_allocation_cut_resends_total Plans sent again because a lower limit "
        "was not confirmed in time.\n"
        "# TYPE phasewise_allocation_cut_resends_total counter\n"
        "phasewise_allocation_cut_resends_total %llu\n"
        "# HELP phasewise_multicast_rejoins_total Group joined again after the interface's "
        "address or link changed.\n"
        "# TYPE phasewise_multicast_rejoins_total counter\n"
        "phasewise_multicast_rejoins_total %llu\n"
        "# HELP phasewise_foreign_balancer_datagrams_total Allocations and heartbeats from "
        "another balancer on the group.\n"
        "# TYPE phasewise_foreign_balancer_datagrams_total counter\n"
        "phasewise_foreign_balancer_datagrams_total %llu\n",
        (unsigned long long)c->plans, (unsigned long long)c->cut_resends,
        (unsigned long long)c->rejoins, (unsigned long long)c->foreign_balancer);

    put(&b, "# HELP phasewise_node_planned_amperes Planned load per node and line.\n"
            "# TYPE phasewise_node_planned_amperes gauge\n");
    for (size_t n = 0; n < cfg->n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            put(&b, "phasewise_node_planned_amperes{node=\"%s\",line=\"L%zu\"} %.1f\n",
                cfg->nodes[n].id, l + 1, nres[n].planned_a[l]);
    put(&b, "# HELP phasewise_node_measured_amperes Metered load per node and line.\n"
            "# TYPE phasewise_node_measured_amperes gauge\n");
    for (size_t n = 0; n < cfg->n_nodes; n++)
        for (size_t l = 0; l < PW_LINES && app->reg.meters[n].has_reading; l++)
            put(&b, "phasewise_node_measured_amperes{node=\"%s\",line=\"L%zu\"} %.1f\n",
                cfg->nodes[n].id, l + 1, app->reg.meters[n].current_ma[l] / 1000.0);
    chargers_load(&b, app);
    put(&b, "# HELP phasewise_meter_stale A node's meter is stale and its budget conservative.\n"
            "# TYPE phasewise_meter_stale gauge\n");
    for (size_t n = 0; n < cfg->n_nodes; n++)
        if (cfg->meters[n].kind != PW_METER_NONE)
            put(&b, "phasewise_meter_stale{node=\"%s\"} %d\n", cfg->nodes[n].id,
                nres[n].meter_stale ? 1 : 0);
    put(&b, "# HELP phasewise_node_limit_amperes Rated current per node and line.\n"
            "# TYPE phasewise_node_limit_amperes gauge\n");
    for (size_t n = 0; n < cfg->n_nodes; n++)
        for (size_t l = 0; l < PW_LINES; l++)
            put(&b, "phasewise_node_limit_amperes{node=\"%s\",line=\"L%zu\"} %.1f\n",
                cfg->nodes[n].id, l + 1, cfg->nodes[n].limit_a[l]);

    histogram(&b, "phasewise_control_latency_seconds",
              "From a meter datagram's arrival to the first allocation datagram it caused leaving.",
              &c->meter_to_send);
    histogram(&b, "phasewise_tick_duration_seconds",
              "Time spent in one control pass (balancer run and sends).", &c->tick_time);
    put(&b,
        "# HELP phasewise_store_errors_total Failed history writes.\n"
        "# TYPE phasewise_store_errors_total counter\n"
        "phasewise_store_errors_total %llu\n",
        (unsigned long long)c->store_errors);
    *len = b.len;
    return b.data;
}
