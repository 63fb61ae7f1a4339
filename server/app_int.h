/* The shell's state, shared by the server's files: app.c (lifecycle, dispatch, config swap),
 * history.c (history batching and its writer), publish.c (the state document in slices),
 * statedoc.c, metrics.c and the api*.c files (read-only views and the JSON API). Everything in
 * pw_app belongs to the loop thread; the one thing a worker touches is the history writer's
 * own half of pw_history (history.c says which fields). */
#ifndef PW_APP_INT_H
#define PW_APP_INT_H

#include <stdint.h>
#include <uv.h>

#include "app.h"
#include "pw_cfg.h"
#include "pw_ctl.h"
#include "pw_latency.h"
#include "pw_net_watch.h"
#include "pw_proto.h"
#include "pw_store.h"
#include "pw_transport.h"
#include "pw_web.h"
#include "sdnotify.h"

#define PW_APP_MAX_TRANSPORTS 8

typedef struct pw_api_pool pw_api_pool;
typedef struct pw_history pw_history;
typedef struct pw_publisher pw_publisher;
typedef struct pw_uplink pw_uplink;

typedef struct pw_app {
    uv_loop_t loop;
    pw_app_opts opts;
    char data_dir[1024];
    char config_path[1100];
    char db_path[1100];
    char key_path[1100];
    char http_addr[64];                 /* where the web front listens (the config's, or --http) */
    char tls_cert[1100], tls_key[1100]; /* the HTTPS pair (also wss:// for OCPP); "" when off */
    uint16_t http_port;

    pw_cfg *cfg;      /* the configuration in force, exactly as saved */
    pw_cfg *boot_cfg; /* the one the sockets were opened with: restart-only settings */
    uint8_t key[PW_PROTO_KEY_LEN];
    uint32_t boot_id;
    uint64_t start_ms;

    pw_ctl *ctl;
    pw_transport *tr[PW_APP_MAX_TRANSPORTS];
    size_t n_tr;
    pw_web *web;
    pw_store *store;
    pw_history *history;
    pw_publisher *publisher;
    pw_api_pool *api_pool; /* API work (history queries, previews) on libuv workers */
    pw_uplink *uplink;     /* the fleet uplink (uplink.c); its connection only when configured */
    pw_net_watch *watch;

    uv_check_t check;    /* runs the core after each loop turn's I/O */
    uv_timer_t deadline; /* ... and at its next deadline when nothing arrives */
    uv_timer_t tick;     /* history rows, the state document, transports' periodic work */
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t restart; /* a staged restore: stop shortly, with exit_status */
    uv_process_t demo_proc;
    bool demo_running;

    char *state_doc; /* latest state document, malloc'd */
    size_t state_len;
    pw_latency run_time; /* one core run and the sends it caused */
    uint64_t rejoins;    /* transports joined again after an address or link change */
    uint64_t last_throttle_event_ms;
    pw_sdnotify *sd; /* systemd's READY/WATCHDOG/STOPPING; NULL outside systemd */
    bool meter_test; /* a meter test read or scan is in flight (api_meters.c): one at a time */
    struct pw_mqtt_pub *mqtt_pub;   /* state out on the broker (mqtt_publish.c) */
    struct pw_mqtt_test *mqtt_test; /* a broker connection test in flight (api_mqtt.c) */
    bool backup_busy; /* a backup or a restore check is in flight (api_backup.c): one at a time */
    int lock_fd;      /* the data folder's lock (backup.h), held while serving */
    char *restored;   /* what a staged restore did at this start, for the event; or NULL */
    bool restore_failed;
    int exit_status; /* of pw_app_run after a clean stop: 0, or PW_BACKUP_EXIT_RESTART */
    bool stopping;
} pw_app;

/* app.c */
/* Replaces the configuration in force with cfg (owned from now on; already saved): the core
 * and the transports carry over what stays, restart-only settings wait for a restart. */
void pw_app_apply_config(pw_app *app, pw_cfg *cfg);
/* Writes an event to the log and the history. */
void pw_app_event(pw_app *app, const char *kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The restart-only settings saved but not yet in force, as field paths; returns how many. */
size_t pw_app_restart_pending(const pw_app *app, const char **out, size_t max);
/* Stops the appliance in a moment, cleanly, with exit status status (a restore is staged and
 * the service manager starts it again). */
void pw_app_restart(pw_app *app, int status);

/* history.c: the loop collects rows in one batch while a libuv worker writes the other. */
pw_history *pw_history_new(uv_loop_t *loop, pw_store *store);
void pw_history_event(pw_history *h, int64_t wall, const char *kind, const char *subject,
                      const char *detail);
void pw_history_session(pw_history *h, const char *charger, const pw_ctl_session *s);
void pw_history_limit_change(pw_history *h, const char *charger, const pw_bal_result *r,
                             int64_t wall);
/* One sample row per charger that has reported and per metered node that has read. */
void pw_history_samples(pw_history *h, const pw_ctl *ctl, int64_t wall);
/* Starts a write of everything collected, unless one is in flight. */
void pw_history_flush(pw_history *h);
/* After the loop has ended: writes every row still held (also those collected while writes
 * failed), says how many were lost if the database refuses them, and frees h. */
void pw_history_close(pw_history *h);
/* Why history is not being written, "" when it is; borrowed (loop thread). */
const char *pw_history_error(const pw_history *h);
typedef struct pw_history_stats {
    uint64_t errors;       /* failed writes */
    pw_latency loop_time;  /* the loop's share per batch (rows, hand-over) */
    pw_latency write_time; /* one batch written by the worker */
    uint64_t rows_written;
} pw_history_stats;
const pw_history_stats *pw_history_stats_get(const pw_history *h);
/* The fleet uplink's outbox rows ride in the history batch, so they commit with the rows they
 * mirror (pw_store_batch_add_outbox says how). While on, every event is mirrored as well. */
void pw_history_set_outbox(pw_history *h, bool on);
void pw_history_outbox(pw_history *h, int64_t ts_ms, const char *kind, const char *payload,
                       int64_t quarter_ms);

/* publish.c: builds the live state document a slice at a time and hands it to done. */
typedef struct pw_publish_src {
    void *ud;
    json_t *(*head)(void *ud, uint64_t now); /* the document without "chargers" */
    json_t *(*item)(void *ud, size_t i, uint64_t now);
    size_t (*count)(void *ud);
    void (*done)(void *ud, char *doc, size_t len); /* takes doc (malloc'd) */
} pw_publish_src;
pw_publisher *pw_publisher_new(uv_loop_t *loop, const pw_publish_src *src);
/* Starts the next document (one in progress starts over); a small one is done in this call. */
void pw_publisher_start(pw_publisher *p, uint64_t now);
/* Drops a document in progress (it describes a facility that changed). */
void pw_publisher_reset(pw_publisher *p);
/* Closes the idle handle; the memory goes with it. */
void pw_publisher_close(pw_publisher *p);

/* statedoc.c: the live state document (docs/state.md); caller owns the reference. */
json_t *pw_statedoc_build(const pw_app *app, uint64_t now_ms);
json_t *pw_statedoc_build_head(const pw_app *app, uint64_t now_ms);
json_t *pw_statedoc_charger(const pw_app *app, size_t i, uint64_t now_ms);
/* A charger's operator override ({"paused", "priority", "max_a", "source"}) and the facility
 * limit ({"limit_a", "expires_in_s", "source"}) as the document shows them; JSON null when none.
 * Caller owns the reference. */
json_t *pw_statedoc_override(const pw_app *app, size_t i);
json_t *pw_statedoc_facility_limit(const pw_app *app, uint64_t now_ms);

/* api_command.c: POST /api/command, an operator's command (server/command.h). Same contract as
 * pw_api_facility_handle. */
bool pw_api_command_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

/* uplink.c: the fleet uplink (docs/mqtt.md). What the site reports is queued in the outbox with
 * the history rows it mirrors and delivered in id order over a broker connection of its own
 * while cfg->uplink names a host. Loop thread; nothing here waits on the broker or the disk. */
pw_uplink *pw_uplink_new(pw_app *app); /* after the history; app->uplink takes it */
/* cfg becomes the configuration in force: queueing starts or stops, the link is opened again
 * when its settings changed. */
void pw_uplink_reconfigure(pw_app *app, const pw_cfg *cfg);
/* Once per tick: samples for the 15-minute aggregates, then delivery. */
void pw_uplink_tick(pw_app *app, int64_t wall);
/* A session from the core: queued once, when it has ended. */
void pw_uplink_session(pw_app *app, size_t charger, const pw_ctl_session *s);
/* The state document's alerts (borrowed): those raised and cleared since the last call. */
void pw_uplink_alerts(pw_app *app, const json_t *alerts);
void pw_uplink_stop(pw_app *app); /* closes the link (stop()) */
/* After the loop: deletes what the broker acknowledged, closes the outbox and frees. */
void pw_uplink_free(pw_app *app);
typedef struct pw_uplink_stats {
    uint64_t queued;   /* rows in the outbox, as last counted */
    int64_t oldest_ms; /* Unix ms of the oldest, 0 for none */
    uint64_t sent;     /* acknowledged by the broker since the start */
    uint64_t dropped;  /* dropped by the outbox's bound since the start */
} pw_uplink_stats;
/* NULL when there is no uplink object. */
const pw_uplink_stats *pw_uplink_stats_get(const pw_app *app);
/* {"connected", "problem", "queued", "sent", "oldest_queued_s", "dropped", "site"}, or JSON null
 * when the uplink is off (docs/state.md). Caller owns the reference. */
json_t *pw_uplink_status_json(const pw_app *app);

/* mqtt_publish.c: state out, Home Assistant discovery and commands on the broker of "mqtt"
 * (docs/mqtt.md), on a connection of its own while mqtt.publish.enabled. Loop thread; nothing
 * here waits on the broker. */
void pw_mqtt_pub_start(pw_app *app); /* after the web front; app->mqtt_pub takes it */
/* cfg becomes the configuration in force: another broker or prefix connects again, another
 * set of commands subscribes again, publishing off closes the connection. */
void pw_mqtt_pub_reconfigure(pw_app *app, const pw_cfg *cfg);
/* Each state document as it is built (borrowed): the head, each charger, then done. */
void pw_mqtt_pub_head(pw_app *app, const json_t *head);
void pw_mqtt_pub_charger(pw_app *app, size_t i, const json_t *charger);
void pw_mqtt_pub_done(pw_app *app);
/* Says "offline" on the status topic and closes (stop(), before the web front). */
void pw_mqtt_pub_stop(pw_app *app);
/* {"connected", "problem", "published", "pending", "commands": {"accepted", "refused"}}, or
 * JSON null when publishing is off; a connection problem also goes to alerts. Caller owns the
 * reference (docs/state.md). */
json_t *pw_mqtt_pub_status_json(const pw_app *app, json_t *alerts);

/* api_mqtt.c: POST /api/mqtt/test, a broker connection test from the commissioning page
 * (answered later). Same contract as pw_api_meters_handle. */
bool pw_api_mqtt_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);
/* Answers a test in flight ("shutting down") so that the web front can close (stop()). */
void pw_api_mqtt_stop(pw_app *app);

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
/* A config that came back from the UI carries no secrets (GET /api/config leaves them out):
 * puts the saved ones back into root where it has none. Loop thread. */
void pw_api_keep_secrets(const pw_app *app, json_t *root);

/* api_pool.c: the worker pool behind deferred API answers. */
typedef void (*pw_api_work_fn)(void *arg, pw_store_reader *reader, pw_web_response *resp);
/* A pool on loop whose jobs read db_path. Free with pw_api_pool_free once the loop has run to
 * its end (no job left). */
pw_api_pool *pw_api_pool_new(uv_loop_t *loop, const char *db_path);
void pw_api_pool_free(pw_api_pool *p);
/* Answers req later: fn(arg, reader, resp) runs on a libuv worker (reader NULL unless
 * needs_reader; a read connection of that worker's slot) and its resp is sent back from the
 * loop. arg is freed with arg_free (may be NULL) afterwards. When the pool is saturated, fills
 * resp with 503 at once, frees arg and returns false. */
bool pw_api_submit(pw_api_pool *pool, const pw_web_request *req, pw_web_response *resp,
                   bool needs_reader, pw_api_work_fn fn, void *arg, void (*arg_free)(void *arg));
/* The decoded query argument name (caller frees), or NULL when absent. */
char *pw_api_arg(const pw_web_request *req, const char *name);

/* api_history.c: the history endpoints; false for a path that is not one of them. */
bool pw_api_history_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

/* api_facility.c: chargers, nodes, config preview and the pairing text. Same contract. */
bool pw_api_facility_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

/* api_backup.c: GET /api/backup (the archive as a download) and POST /api/restore (an archive
 * checked and staged for the next start). Same contract. */
#define PW_API_RESTORE_PATH "/api/restore"
bool pw_api_backup_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

/* api_meters.c: POST /api/meters/test, a one-shot test read of a meter before it is saved
 * (answered later for Modbus and MQTT meters), and POST /api/meters/scan, the unit ids that
 * answer behind a Modbus gateway and the maps that read them (answered later). Same contract. */
bool pw_api_meters_handle(pw_app *app, const pw_web_request *req, pw_web_response *resp);

#endif
