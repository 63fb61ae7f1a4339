/* Internal state of the appliance, shared by the server's source files (app.c: lifecycle,
 * control.c: LAN and control tick, statedoc.c: the live state document, api.c: the JSON API). */
#ifndef PW_APP_INT_H
#define PW_APP_INT_H

#include <stdint.h>
#include <uv.h>

#include "app.h"
#include "pw_bal.h"
#include "pw_cfg.h"
#include "pw_net.h"
#include "pw_proto.h"
#include "pw_store.h"
#include "pw_web.h"
#include "registry.h"

/* Rejected datagrams by reason: index is -pw_proto_err (0 unused). */
#define PW_REJECT_SLOTS (PW_PROTO_E_COUNT + 1)

#define PW_LATENCY_BUCKETS 8
extern const double pw_latency_bounds_us[PW_LATENCY_BUCKETS];

/* A cumulative latency histogram in microseconds, Prometheus style. */
typedef struct pw_latency {
    uint64_t bucket[PW_LATENCY_BUCKETS]; /* observations <= pw_latency_bounds_us[i] */
    uint64_t count;
    uint64_t sum_us;
} pw_latency;

void pw_latency_observe(pw_latency *h, uint64_t us);

typedef struct pw_counters {
    uint64_t rx;          /* datagrams received on the group */
    uint64_t rx_accepted; /* authenticated, fresh, and used */
    uint64_t rx_own;      /* our own datagrams heard back through multicast loop */
    uint64_t tx;
    uint64_t tx_errors;
    uint64_t rejected[PW_REJECT_SLOTS];
    uint64_t foreign_balancer; /* allocations from another balancer on the group */
    uint64_t ticks;
    uint64_t plans;       /* new allocation plans sent */
    uint64_t cut_resends; /* plans sent again because a cut was not confirmed in time */
    uint64_t rejoins;     /* multicast group joined again after an address or link change */
    uint64_t store_errors;
    pw_latency meter_to_send; /* meter datagram in -> allocation out */
    pw_latency tick_time;     /* one control tick */
    pw_latency store_loop;    /* the loop's own share of history per tick (rows, hand-over) */
    pw_latency store_write;   /* one batch written by the worker */
} pw_counters;

typedef struct pw_api_pool pw_api_pool;

typedef struct pw_sent_alloc {
    double limit_a;
    uint8_t phases;
    uint8_t cut_resends; /* times the plan went out again for an unconfirmed cut */
    uint64_t cut_ms;     /* a lower limit was sent then and no status confirmed it; 0 = none */
} pw_sent_alloc;

typedef struct pw_publisher pw_publisher;
typedef struct pw_netwatch pw_netwatch;

typedef struct pw_app {
    uv_loop_t loop;
    pw_app_opts opts;
    char data_dir[1024];
    char config_path[1100];
    char db_path[1100];
    char key_path[1100];

    pw_cfg *cfg;
    pw_bal *bal;
    pw_registry reg;
    uint8_t key[PW_PROTO_KEY_LEN];

    /* Our identity as a protocol sender. */
    uint32_t boot_id;
    uint32_t seq;

    pw_net *net;
    pw_net *defa_net; /* DEFA meter frames, only when the config asks for them */
    pw_web *web;
    pw_store *store;
    pw_api_pool *api_pool; /* API work (history queries, previews) on libuv workers */

    /* History: the loop fills `filling` while a worker writes `writing`. */
    pw_store_batch *filling;
    pw_store_batch *writing;
    bool write_in_flight;
    int write_rc;
    uint64_t write_ns;     /* duration of the last write, set by the worker */
    char write_error[256]; /* the worker's message for a failed write */
    char store_error[256]; /* why history is not being written, "" when it is (loop thread) */
    uv_work_t write_req;
    uint64_t last_store_error_log_ms;
    pw_store_policy store_policy;
    int64_t last_maintain_ms; /* wall clock, touched only by the writer */

    uv_timer_t tick_timer;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_process_t demo_proc;
    bool demo_running;

    pw_sent_alloc *sent; /* n_chargers: what the chargers were last told */
    uint32_t alloc_seq;
    uint32_t config_generation; /* configs applied since start, in heartbeats */
    uint64_t last_alloc_send_ms;
    uint64_t last_heartbeat_ms;
    uint64_t last_tick_ms; /* last periodic pass: history, state document */
    uint64_t last_run_ms;  /* last control pass: balancer run and sends */
    uint64_t start_ms;
    uint64_t last_reject_event_ms;
    uint64_t last_throttle_event_ms;
    uint64_t rejects_logged[PW_REJECT_SLOTS];

    char *state_doc; /* latest state document, malloc'd */
    size_t state_len;
    pw_publisher *publisher; /* builds the next state document a slice at a time */
    pw_netwatch *netwatch;   /* rejoins the group when the LAN address or link changes */

    pw_counters counters;
    bool stopping;
} pw_app;

/* Monotonic milliseconds and Unix wall-clock milliseconds. */
uint64_t pw_app_now_ms(void);
int64_t pw_app_wall_ms(void);

/* control.c */
void pw_control_start(pw_app *app);
void pw_control_on_datagram(pw_net *net, const uint8_t *buf, size_t len,
                            const struct sockaddr_in *from, void *user);
void pw_control_tick(pw_app *app);
/* Closes the control path's own handles (the state publisher) at shutdown. */
void pw_control_stop(pw_app *app);
/* Replaces the running configuration between two ticks; takes ownership of cfg. */
void pw_control_apply_config(pw_app *app, pw_cfg *cfg);
void pw_control_log_event(pw_app *app, const char *kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Feeds a node meter's reading (from either meter protocol) and reacts at once. */
void pw_control_meter_reading(pw_app *app, size_t node, const uint32_t current_ma[PW_LINES],
                              uint64_t now_ms, uint64_t arrival_ns);
/* Counts a rejected datagram by its pw_proto_err. */
void pw_control_count_reject(pw_app *app, int err);
/* Starts a history write of everything collected so far, unless one is in flight. */
void pw_control_flush_history(pw_app *app);

/* netwatch.c: polls the LAN interface and calls pw_net_rejoin when its address or link
 * changes (a DHCP renewal, a cable replugged), so a stale membership never silences the LAN.
 * Nothing to do on loopback-only hosts beyond the polling. Stop closes the timer. */
void pw_netwatch_start(pw_app *app);
void pw_netwatch_stop(pw_app *app);

/* defa.c: DEFA Balancer meter frames, both directions opt-in (unauthenticated). */
int pw_defa_start(pw_app *app);
void pw_defa_emit(pw_app *app);
void pw_defa_stop(pw_app *app);

/* statedoc.c: builds the live state document; caller owns the reference. The document without
 * its "chargers" array, and one charger's entry, let the control loop build a large facility's
 * document a slice at a time. */
json_t *pw_statedoc_build(const pw_app *app, uint64_t now_ms);
json_t *pw_statedoc_build_head(const pw_app *app, uint64_t now_ms);
json_t *pw_statedoc_charger(const pw_app *app, size_t i, uint64_t now_ms);

/* metrics.c: the Prometheus text for /metrics; caller frees. */
char *pw_metrics_render(const pw_app *app, uint64_t now_ms, size_t *len);

/* api.c: the JSON API behind the dashboard. */
void pw_api_handle(void *ud, const pw_web_request *req, pw_web_response *resp);
/* Who may call a path (pw_web_access_fn): exports and the pairing text need a login. */
pw_web_access pw_api_access(void *ud, const char *method, const char *path);
/* Fill a response with a JSON document (reference stolen), an {"error", "field"} object, or the
 * config validation errors by field (400). Thread-safe: workers use them too. */
void pw_api_set_json(pw_web_response *resp, int status, json_t *body);
void pw_api_set_error(pw_web_response *resp, int status, const char *field, const char *msg);
void pw_api_set_config_errors(pw_web_response *resp, const pw_cfg_errors *errs);

/* api_history.c: the worker pool and the history endpoints. */
typedef void (*pw_api_work_fn)(void *arg, pw_store_reader *reader, pw_web_response *resp);
/* A pool on loop whose jobs read db_path. Free with pw_api_pool_free once the loop has run to
 * its end (no job left). */
pw_api_pool *pw_api_pool_new(uv_loop_t *loop, const char *db_path);
void pw_api_pool_free(pw_api_pool *p);
/* Answers req later: fn(arg, reader, resp) runs on a libuv worker (reader NULL unless
 * needs_reader; a read connection of that worker's slot) and its resp is sent back from the
 * loop. arg is freed with arg_free (may be NULL) afterwards. When the pool is saturated, fills
 * resp with 503 at once, frees arg and returns false. */
bool pw_api_submit(pw_app *app, const pw_web_request *req, pw_web_response *resp, bool needs_reader,
                   pw_api_work_fn fn, void *arg, void (*arg_free)(void *arg));
/* The decoded query argument name (caller frees), or NULL when absent. */
char *pw_api_arg(const pw_web_request *req, const char *name);
/* Handles the history paths; returns false for a path that is not one of them. */
bool pw_api_history_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

/* api_facility.c: chargers, nodes, config preview and the pairing text. Same contract. */
bool pw_api_facility_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

#endif
