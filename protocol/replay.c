/* Replay protection per sender (PROTOCOL.md, "Replay protection"): a boot id that only grows and
 * a 64-sequence sliding window within a boot. No clock is involved, because chargers often have
 * none that is synchronised. */
#include "proto_int.h"

/* Starts a window at hdr's boot and sequence with every older sequence marked as seen: a
 * receiver that has just met this boot cannot tell datagrams it missed from datagrams an attacker
 * recorded, so it accepts only newer ones. A new boot starts at sequence 0, so normally nothing
 * is lost; after a receiver restart at most the few datagrams in flight are. */
static void window_reset(pw_proto_replay *st, const pw_proto_hdr *hdr)
{
    st->seen = true;
    st->boot_id = hdr->boot_id;
    st->top_seq = hdr->seq;
    st->window = UINT64_MAX;
}

int pw_proto_replay_check(pw_proto_replay *st, const pw_proto_hdr *hdr)
{
    if (!st->seen || hdr->boot_id > st->boot_id) {
        window_reset(st, hdr);
        return 0;
    }
    if (hdr->boot_id < st->boot_id)
        return PW_PROTO_E_REPLAY;
    if (hdr->seq > st->top_seq) {
        uint32_t shift = hdr->seq - st->top_seq;
        st->window = shift >= PW_PROTO_REPLAY_WINDOW ? 1 : st->window << shift | 1;
        st->top_seq = hdr->seq;
        return 0;
    }
    uint32_t behind = st->top_seq - hdr->seq;
    if (behind >= PW_PROTO_REPLAY_WINDOW)
        return PW_PROTO_E_REPLAY;
    uint64_t bit = (uint64_t)1 << behind;
    if (st->window & bit)
        return PW_PROTO_E_REPLAY;
    st->window |= bit;
    return 0;
}
