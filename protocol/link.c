/* A sender's link as a receiver keeps it: replay protection and loss from sequence gaps. */
#include <math.h>

#include "pw_proto.h"

int pw_proto_link_accept(pw_proto_link *link, const pw_proto_hdr *hdr, uint64_t now_ms)
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
    link->last_seen_ms = now_ms ? now_ms : 1;
    return 0;
}

double pw_proto_link_loss_pct(const pw_proto_link *link)
{
    if (link->expected == 0 || link->received >= link->expected)
        return 0.0;
    return 100.0 * (double)(link->expected - link->received) / (double)link->expected;
}

uint32_t pw_proto_milliamps(double a)
{
    if (!isfinite(a) || a <= 0)
        return 0;
    double ma = round(a * 1000.0);
    return ma >= PW_PROTO_MAX_CURRENT_MA ? PW_PROTO_MAX_CURRENT_MA : (uint32_t)ma;
}
