/* Device registry: link health from sequence numbers, replay state, latest reports. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "pw_util.h"

static int index_cmp(const void *a, const void *b)
{
    uint32_t x = ((const pw_reg_index *)a)->device_id, y = ((const pw_reg_index *)b)->device_id;
    return (x > y) - (x < y);
}

static int index_find(const pw_reg_index *idx, size_t n, uint32_t device_id)
{
    pw_reg_index key = {.device_id = device_id};
    const pw_reg_index *hit = n ? bsearch(&key, idx, n, sizeof *idx, index_cmp) : NULL;
    return hit ? (int)hit->index : -1;
}

void pw_registry_init(pw_registry *r, const pw_cfg *cfg)
{
    memset(r, 0, sizeof *r);
    r->n_chargers = cfg->n_chargers;
    r->chargers = pw_xcalloc(cfg->n_chargers, sizeof *r->chargers);
    r->n_nodes = cfg->n_nodes;
    r->meters = pw_xcalloc(cfg->n_nodes, sizeof *r->meters);
    r->charger_index = pw_xcalloc(cfg->n_chargers + 1, sizeof *r->charger_index);
    for (size_t i = 0; i < cfg->n_chargers; i++)
        r->charger_index[i] = (pw_reg_index){cfg->charger_device_ids[i], (uint32_t)i};
    qsort(r->charger_index, cfg->n_chargers, sizeof *r->charger_index, index_cmp);
    r->meter_index = pw_xcalloc(cfg->n_nodes + 1, sizeof *r->meter_index);
    for (size_t n = 0; n < cfg->n_nodes; n++)
        if (cfg->meters[n].kind == PW_METER_PW)
            r->meter_index[r->n_meter_index++] =
                (pw_reg_index){cfg->meters[n].device_id, (uint32_t)n};
    qsort(r->meter_index, r->n_meter_index, sizeof *r->meter_index, index_cmp);
}

void pw_registry_close(pw_registry *r)
{
    free(r->chargers);
    free(r->meters);
    free(r->charger_index);
    free(r->meter_index);
    memset(r, 0, sizeof *r);
}

int pw_registry_charger(const pw_registry *r, uint32_t device_id)
{
    return index_find(r->charger_index, r->n_chargers, device_id);
}

int pw_registry_meter_node(const pw_registry *r, uint32_t device_id)
{
    return index_find(r->meter_index, r->n_meter_index, device_id);
}

void pw_registry_carry_over(pw_registry *to, const pw_cfg *to_cfg, const pw_registry *from,
                            const pw_cfg *from_cfg)
{
    for (size_t i = 0; i < to_cfg->n_chargers; i++) {
        int j = pw_registry_charger(from, to_cfg->charger_device_ids[i]);
        if (j >= 0)
            to->chargers[i] = from->chargers[j];
    }
    for (size_t i = 0; i < to_cfg->n_nodes; i++) {
        const pw_cfg_meter *m = &to_cfg->meters[i];
        for (size_t j = 0; j < from_cfg->n_nodes && m->kind != PW_METER_NONE; j++) {
            const pw_cfg_meter *old = &from_cfg->meters[j];
            if (old->kind == m->kind && old->device_id == m->device_id &&
                strcmp(old->defa_serial, m->defa_serial) == 0)
                to->meters[i] = from->meters[j];
        }
    }
    /* Devices that were unassigned and are now configured start fresh; the rest stay listed. */
    for (size_t i = 0; i < from->n_unassigned; i++)
        if (pw_registry_charger(to, from->unassigned[i].device_id) < 0)
            to->unassigned[to->n_unassigned++] = from->unassigned[i];
}

int pw_reg_link_accept(pw_reg_link *link, const pw_proto_hdr *hdr, uint64_t now_ms)
{
    bool new_boot = !link->replay.seen || hdr->boot_id != link->replay.boot_id;
    uint32_t prev_top = link->replay.top_seq;
    if (pw_proto_replay_check(&link->replay, hdr) != 0)
        return PW_PROTO_E_REPLAY;
    if (new_boot) {
        if (link->last_seen_ms)
            link->reboots++;
        link->boot_id = hdr->boot_id;
        link->received = 0;
        link->expected = 0;
        prev_top = hdr->seq - 1;
    }
    link->received++;
    /* Only sequence numbers above the previous top widen the span; a late (reordered) datagram
     * fills a gap that was counted as lost already. */
    if (hdr->seq > prev_top || new_boot)
        link->expected += (uint64_t)(hdr->seq - prev_top);
    link->last_seq = hdr->seq;
    link->last_seen_ms = now_ms;
    return 0;
}

double pw_reg_link_loss_pct(const pw_reg_link *link)
{
    if (link->expected == 0 || link->received >= link->expected)
        return 0.0;
    return 100.0 * (double)(link->expected - link->received) / (double)link->expected;
}

pw_reg_unassigned *pw_reg_unassigned_get(pw_registry *r, uint32_t device_id)
{
    size_t oldest = 0;
    for (size_t i = 0; i < r->n_unassigned; i++) {
        if (r->unassigned[i].device_id == device_id)
            return &r->unassigned[i];
        if (r->unassigned[i].link.last_seen_ms < r->unassigned[oldest].link.last_seen_ms)
            oldest = i;
    }
    size_t slot = r->n_unassigned < PW_REG_MAX_UNASSIGNED ? r->n_unassigned++ : oldest;
    memset(&r->unassigned[slot], 0, sizeof r->unassigned[slot]);
    r->unassigned[slot].device_id = device_id;
    return &r->unassigned[slot];
}
