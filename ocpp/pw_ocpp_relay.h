/* The OCPP 1.6 local controller's relay for one charge point: phasewise sits between the charge
 * point and the operator's CSMS, and this decides per frame what happens. The charge point's
 * calls are answered by phasewise (pw_ocpp_cp) and a copy goes up to the CSMS with an id of the
 * relay's own, one call at a time, transaction ids mapped from phasewise's to the CSMS's. The
 * CSMS's calls go down with fresh ids and the charge point's answers go back with the CSMS's id;
 * charging profiles never reach the charge point: Set/ClearChargingProfile become a cap per
 * connector (sink.cap) answered as a charge point would, GetCompositeSchedule is answered from
 * them. Each profile's schedule is followed (periods, start, duration, recurrency, validity) and
 * a ChargePointMaxProfile is split among the connectors so that their caps never add up to
 * more (see pw_ocpp_relay_cap). Answers to phasewise's own calls are never forwarded.
 *
 * Pure like the rest of ocpp/: no sockets, no clock; now (monotonic ms) and wall (Unix ms) are
 * passed in, and pw_ocpp_relay_poll runs at pw_ocpp_relay_next_deadline. The relay lives as
 * long as the charge point is configured (across its reconnects), so the transaction map and
 * the CSMS's profiles survive a reconnect. Without the upstream (pw_ocpp_relay_upstream false)
 * the charge point's calls wait in the relay's queue and go up in order once the link is back,
 * after its last BootNotification. Across a restart of phasewise the shell keeps what sink.keep
 * reports (in SQLite) and gives it back with pw_ocpp_relay_restore. */
#ifndef PW_OCPP_RELAY_H
#define PW_OCPP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_ocpp_cp.h"

typedef struct pw_ocpp_relay_opts {
    uint32_t call_timeout_ms; /* an unanswered call to the CSMS is given up after (30000); a
                                 CSMS call the charge point does not answer is forgotten */
    size_t max_queue; /* charge point calls waiting for the CSMS (1000); when full, the oldest
                         StatusNotification or MeterValues goes, else the new call */
    double volts;     /* line-to-neutral voltage for W profiles: A = W / (V * phases) */
    size_t n_connectors;
    int connectors[PW_OCPP_MAX_CONNECTORS]; /* the configured connectors, 1.. */
    double max_a[PW_OCPP_MAX_CONNECTORS];   /* their maximum (GetCompositeSchedule) */
    /* The number of the first call queued (1 when 0); each call's number is also its message
     * id to the CSMS ("pw-N"), the same when it is sent again after a drop, so a CSMS can tell a
     * resent call. The shell gives the wall clock in ms, so numbers keep increasing across
     * restarts. */
    uint64_t first_seq;
    /* Authorize: the CSMS decides. A charge point's Authorize is answered by the relay with the
     * CSMS's verdict when the CSMS is up, few calls wait before it and it answers within
     * authorize_wait_ms (5000); otherwise (and with this off) phasewise answers it through
     * sink.authorize. The CSMS's verdicts are remembered an hour per tag
     * (pw_ocpp_relay_verdict), for the tag of a StartTransaction. */
    bool authorize_csms;
    uint32_t authorize_wait_ms;
} pw_ocpp_relay_opts;

/* One change of what the relay must not lose in a restart, reported through sink.keep in the
 * order they happen; the same records go back in with pw_ocpp_relay_restore. */
enum pw_ocpp_relay_keep_kind {
    PW_OCPP_KEEP_CALL = 1, /* a call queued for the CSMS: seq, action, payload, connector; on
                              restore also local_tx (a StartTransaction's, as last set) */
    PW_OCPP_KEEP_CALL_TX,  /* the StartTransaction queued as seq got phasewise's local_tx */
    PW_OCPP_KEEP_DONE,     /* the call seq left the queue (answered, given up, or dropped) */
    PW_OCPP_KEEP_TX,       /* local_tx is csms_tx at the CSMS, on connector */
    PW_OCPP_KEEP_TX_DONE,  /* the pair of local_tx is forgotten */
    PW_OCPP_KEEP_BOOT,     /* the charge point's last BootNotification: payload */
};

typedef struct pw_ocpp_relay_keep {
    enum pw_ocpp_relay_keep_kind kind;
    uint64_t seq;
    const char *action;  /* CALL */
    const char *payload; /* CALL, BOOT: a JSON object's text */
    int connector;       /* CALL (its connectorId, 0 for none), TX */
    const char *local_tx, *csms_tx;
} pw_ocpp_relay_keep;

/* Fills o with the defaults noted on each field (no connectors). */
void pw_ocpp_relay_default_opts(pw_ocpp_relay_opts *o);

/* Where the relay's output goes; each callback runs inside the call that caused it, strings
 * borrowed for the call. Any but to_cp and to_csms may be NULL. */
typedef struct pw_ocpp_relay_sink {
    void *ud;
    void (*to_cp)(void *ud, const char *text, size_t len);   /* a frame for the charge point */
    void (*to_csms)(void *ud, const char *text, size_t len); /* a frame for the CSMS */
    /* The CSMS's cap on a configured connector changed: amperes, INFINITY for none. */
    void (*cap)(void *ud, int connector, double cap_a);
    /* A frame not forwarded, or a profile part left out, with why (for counters and logs). */
    void (*dropped)(void *ud, const char *reason, const char *detail);
    /* The CSMS's profiles held changed (set, cleared, a TxProfile's transaction ended, one
     * expired): time to keep pw_ocpp_relay_profiles_dump again. Not during profiles_load. */
    void (*profiles_changed)(void *ud);
    /* The answer to an Authorize when the CSMS's verdict does not come in time (authorize_csms);
     * NULL: Accepted. */
    enum pw_ocpp_answer (*authorize)(void *ud, const char *id_tag);
    /* A change to keep across a restart (strings borrowed for the call). */
    void (*keep)(void *ud, const pw_ocpp_relay_keep *k);
} pw_ocpp_relay_sink;

typedef struct pw_ocpp_relay pw_ocpp_relay;

/* A new relay (opts and sink copied), upstream down. Never NULL; free with pw_ocpp_relay_free. */
pw_ocpp_relay *pw_ocpp_relay_new(const pw_ocpp_relay_opts *opts, const pw_ocpp_relay_sink *sink);
void pw_ocpp_relay_free(pw_ocpp_relay *r);
/* The configured connectors changed (opts copied): caps are reported again for each. */
void pw_ocpp_relay_reconfigure(pw_ocpp_relay *r, const pw_ocpp_relay_opts *opts);

/* Before any frame or link change: puts back one record sink.keep reported before a restart,
 * in this order: BOOT, the TX pairs, then the CALLs in their order (the CALL_TX of each
 * StartTransaction folded into its local_tx). Nothing is reported through sink.keep for it,
 * except a DONE for a call the bounded queue cannot take. Returns 0, or -1 for a record that is
 * malformed or does not fit (an unknown action, a payload that is not a valid call, no room for
 * another transaction), which is left out with sink.dropped saying why. */
int pw_ocpp_relay_restore(pw_ocpp_relay *r, const pw_ocpp_relay_keep *k);

enum pw_ocpp_relay_verdict {
    PW_OCPP_RELAY_LOCAL = 0, /* give it to phasewise's own conversation (pw_ocpp_cp_receive) */
    PW_OCPP_RELAY_TAKEN,     /* the relay took it (an answer to a CSMS call, sent up; an
                                Authorize the CSMS decides on) */
};

/* One frame from the charge point. A valid call of the ones forwarded is queued for the CSMS
 * (also while the upstream is down; a BootNotification then only replaces the one kept) and
 * LOCAL is returned: phasewise answers it. */
enum pw_ocpp_relay_verdict pw_ocpp_relay_from_cp(pw_ocpp_relay *r, const char *text, size_t len,
                                                 uint64_t now);
/* Every frame phasewise's own conversation sends to the charge point, before it is sent: the
 * relay reads phasewise's StartTransaction answers (its transaction ids) from them. */
void pw_ocpp_relay_local_to_cp(pw_ocpp_relay *r, const char *text, size_t len);
/* One frame from the CSMS. */
void pw_ocpp_relay_from_csms(pw_ocpp_relay *r, const char *text, size_t len, uint64_t now,
                             int64_t wall);
/* The upstream connection opened (up) or is gone. On up the last BootNotification goes first
 * (nothing else until the CSMS accepts it), then the queued calls in the order they were made,
 * one at a time. On down the queue is kept; the call in flight was not answered, so it is sent
 * again (under a new message id) when the link is back. */
void pw_ocpp_relay_upstream(pw_ocpp_relay *r, bool up, uint64_t now);
bool pw_ocpp_relay_is_up(const pw_ocpp_relay *r);
/* The charge point's connection closed: CSMS calls waiting for its answer are forgotten (the
 * CSMS times them out). */
void pw_ocpp_relay_cp_gone(pw_ocpp_relay *r);

/* Time passes: gives up calls past their timeout, retries a BootNotification the CSMS left
 * Pending or Rejected, reports the caps the CSMS's schedules set at wall (Unix ms) where they
 * changed, and lets profiles that will never set a limit again go. Call at
 * pw_ocpp_relay_next_deadline (or later): with profiles held that is their next period
 * boundary, start, end or validity change, and at most 60 s (the wall clock may be stepped). */
void pw_ocpp_relay_poll(pw_ocpp_relay *r, uint64_t now, int64_t wall);
uint64_t pw_ocpp_relay_next_deadline(const pw_ocpp_relay *r); /* UINT64_MAX: none */

/* The CSMS's cap on a connector at the latest wall time the relay was given (INFINITY: none);
 * connector 0: the ChargePointMaxProfile's limit. A TxProfile in force outranks the
 * TxDefaultProfiles (the connector's before connector 0's), the highest stack level in force
 * wins, W is converted with volts and numberPhases (3 if absent). The ChargePointMaxProfile is
 * for the whole charge point: it is split evenly among the connectors with a running
 * transaction, none getting more than its own cap (what one cannot use goes to the others),
 * and what is left among the other connectors (all of them when none runs); it is split again
 * when a transaction starts or stops. So the connectors' caps never add up to more than it. */
double pw_ocpp_relay_cap(const pw_ocpp_relay *r, int connector);

/* The CSMS's profiles held, to keep across a restart: an array (new reference, caller frees)
 * of {"connectorId", "csChargingProfiles"} as the CSMS sent them, with "origin", the Unix ms a
 * Relative schedule starts at. */
json_t *pw_ocpp_relay_profiles_dump(const pw_ocpp_relay *r);
/* Takes each element of such a dump (borrowed) as its SetChargingProfile would be, at wall:
 * one that the CSMS would have had Rejected (a TxProfile with its transaction not running
 * included), or that is not of the dump's form, is skipped with sink.dropped
 * ("profile_load"); caps are reported after. Returns how many were skipped, or -1 (nothing
 * changed) when dump is not an array. */
int pw_ocpp_relay_profiles_load(pw_ocpp_relay *r, const json_t *dump, int64_t wall);
/* The CSMS's latest verdict on id_tag, if it gave one in the last hour: true and *out. */
bool pw_ocpp_relay_verdict(const pw_ocpp_relay *r, const char *id_tag, uint64_t now,
                           enum pw_ocpp_answer *out);
/* The CSMS's transaction id for phasewise's (NULL if not known). */
const char *pw_ocpp_relay_csms_tx(const pw_ocpp_relay *r, const char *local_tx);

typedef struct pw_ocpp_relay_stats {
    uint64_t up_calls;    /* charge point calls sent to the CSMS */
    uint64_t up_answered; /* of them answered by the CSMS (CALLRESULT) */
    uint64_t down_calls;  /* CSMS calls forwarded to the charge point */
    uint64_t local;       /* CSMS calls answered by the relay (profiles, schedule, refusals) */
    uint64_t dropped;     /* frames dropped, the queue full included (sink.dropped says why) */
    size_t queued;        /* waiting now, the one in flight included */
} pw_ocpp_relay_stats;
const pw_ocpp_relay_stats *pw_ocpp_relay_stats_get(const pw_ocpp_relay *r);

#endif
