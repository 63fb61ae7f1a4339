/* The shell: resolve paths, load the config, bring the modules up in order on one loop (storage,
 * the control core, the transports, the web front, the network watch) and down in reverse on
 * SIGINT/SIGTERM. It runs the core once per loop turn after the I/O and from one timer armed at
 * the core's next deadline, and owns history batching and the state document. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_int.h"
#include "backfill.h"
#include "backup.h"
#include "command.h"
#include "pw_keyfile.h"
#include "pw_util.h"
#include "tls.h"

extern const unsigned char pw_demo_config[];
extern const size_t pw_demo_config_len;

/* The transports the appliance speaks, in start order. */
static pw_transport *(*const transport_new[])(void) = {
    pw_tr_lan_new, pw_tr_defa_new, pw_tr_modbus_new, pw_tr_mqtt_new, pw_tr_ocpp_new};

static int join_path(char *out, size_t size, const char *dir, const char *name)
{
    int n =
        name[0] == '/' ? snprintf(out, size, "%s", name) : snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        pw_error("server", "path too long: %s/%s", dir, name);
        return -1;
    }
    return 0;
}

static int make_data_dir(const char *dir)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        pw_error("server", "cannot create data folder %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* The demo writes its built-in facility on first start so it can be edited like any other. */
static int seed_demo_config(const char *path)
{
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_parse((const char *)pw_demo_config, pw_demo_config_len, &errs);
    if (!cfg) {
        char msg[2048];
        pw_cfg_errors_print(&errs, msg, sizeof msg);
        pw_error("server", "built-in demo facility is invalid:\n%s", msg);
        return -1;
    }
    int rc = pw_cfg_save(cfg, path, &errs);
    pw_cfg_free(cfg);
    if (rc != 0) {
        pw_error("server", "cannot write %s: %s", path, errs.items[0].message);
        return -1;
    }
    pw_info("server", "wrote the demo facility to %s", path);
    return 0;
}

static pw_cfg *load_config(const char *path)
{
    pw_cfg_errors errs;
    pw_cfg *cfg = pw_cfg_load(path, &errs);
    if (!cfg) {
        char msg[4096];
        pw_cfg_errors_print(&errs, msg, sizeof msg);
        pw_error("config", "%s is not valid:\n%s", path, msg);
    }
    return cfg;
}

/* Our boot id must grow across restarts (receivers reject a lower one), so it is a counter kept
 * in the data folder. */
static uint32_t next_boot_id(const char *data_dir)
{
    char path[1100];
    uint32_t boot = 0;
    if (join_path(path, sizeof path, data_dir, "boot.count") != 0)
        return (uint32_t)time(NULL);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%u", &boot) != 1)
            boot = 0;
        fclose(f);
    }
    /* Without a readable counter, the clock is the best guess at "later than before". */
    if (boot == 0)
        boot = (uint32_t)time(NULL);
    boot++;
    char text[16], err[256];
    int n = snprintf(text, sizeof text, "%u\n", boot);
    if (pw_write_file_atomic(path, text, (size_t)n, 0640, err, sizeof err) != 0)
        pw_warn("server", "cannot save the boot counter: %s", err);
    return boot;
}

static void on_demo_exit(uv_process_t *proc, int64_t status, int sig)
{
    pw_app *app = proc->data;
    app->demo_running = false;
    if (!app->stopping)
        pw_warn("server", "demo simulator exited (status %lld, signal %d)", (long long)status, sig);
    uv_close((uv_handle_t *)proc, NULL);
}

static pw_cfg *clone_config(const pw_cfg *cfg);

static int start_demo(pw_app *app)
{
    char group[16], port[8], seed[] = "1";
    pw_strlcpy(group, app->boot_cfg->net.group, sizeof group);
    snprintf(port, sizeof port, "%u", app->boot_cfg->net.port);
    char *args[] = {(char *)app->opts.sim_path,
                    "--config",
                    app->config_path,
                    "--key-file",
                    app->key_path,
                    "--interface",
                    "127.0.0.1",
                    "--group",
                    group,
                    "--port",
                    port,
                    "--seed",
                    seed,
                    NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 1},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t po = {.exit_cb = on_demo_exit,
                               .file = app->opts.sim_path,
                               .args = args,
                               .stdio_count = 3,
                               .stdio = stdio};
    app->demo_proc.data = app;
    int rc = uv_spawn(&app->loop, &app->demo_proc, &po);
    if (rc != 0) {
        pw_error("server", "cannot start the simulator %s: %s", app->opts.sim_path,
                 uv_strerror(rc));
        return -1;
    }
    app->demo_running = true;
    pw_info("server", "demo: simulated facility running (pid %d)", app->demo_proc.pid);
    /* A first start shows a week of history at once: simulated, on a worker, marked as such. */
    bool empty = false;
    char err[512];
    if (pw_backfill_db_empty(app->db_path, &empty, err, sizeof err) != 0)
        pw_warn("demo", "history not checked, no simulated history: %s", err);
    else if (empty)
        pw_backfill_start(&app->loop, app->db_path, clone_config(app->cfg), pw_wall_ms());
    return 0;
}

static pw_cfg *clone_config(const pw_cfg *cfg)
{
    pw_cfg_errors errs;
    json_t *j = pw_cfg_to_json(cfg);
    pw_cfg *copy = pw_cfg_from_json(j, &errs);
    json_decref(j);
    if (!copy) { /* our own output must parse: anything else is a bug worth stopping for */
        pw_error("server", "the running config does not survive its own round trip: %s",
                 errs.items[0].message);
        abort();
    }
    return copy;
}

void pw_app_event(pw_app *app, const char *kind, const char *subject, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    pw_info("server", "event %s %s: %s", kind, subject ? subject : "", detail);
    if (app->history)
        pw_history_event(app->history, pw_wall_ms(), kind, subject, detail);
}

/* ---- the core's sink ---------------------------------------------------------------------- */

static void on_ctl_event(void *ud, int64_t wall, const char *kind, const char *subject,
                         const char *detail)
{
    pw_app *app = ud;
    pw_info("server", "event %s %s: %s", kind, subject, detail);
    pw_history_event(app->history, wall, kind, subject, detail);
}

static void on_ctl_session(void *ud, size_t i, const pw_ctl_session *s)
{
    pw_app *app = ud;
    pw_history_session(app->history, app->cfg->chargers[i].id, s);
    pw_uplink_session(app, i, s); /* into the same batch: one transaction */
}

static void on_ctl_limit(void *ud, size_t i, const pw_bal_result *r, int64_t wall)
{
    pw_app *app = ud;
    pw_history_limit_change(app->history, app->cfg->chargers[i].id, r, wall);
}

static void on_transport_event(void *ud, const char *kind, const char *subject, const char *detail)
{
    pw_app_event(ud, kind, subject, "%s", detail);
}

/* Each charger's timing: the transport's that reaches it, then the file's "timing" for its
 * link kind. Caller frees. */
static pw_bal_timing *charger_timing(const pw_app *app, const pw_cfg *cfg)
{
    pw_bal_timing *t = pw_xcalloc(cfg->n_chargers + 1, sizeof *t);
    for (size_t i = 0; i < cfg->n_chargers; i++) {
        for (size_t k = 0; k < app->n_tr; k++)
            if (app->tr[k]->ops->kind == cfg->charger_links[i].kind)
                app->tr[k]->ops->timing(app->tr[k], cfg, &t[i]);
        /* The file's "timing" for the link kind wins field by field over the transport's. */
        pw_cfg_timing_apply(cfg, cfg->charger_links[i].kind, &t[i]);
    }
    return t;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void on_deadline(uv_timer_t *t);

/* Runs the core if it asked to run by now and hands what it marked due to the transports, then
 * arms the deadline timer for its next wish. */
static void dispatch(pw_app *app)
{
    if (app->stopping)
        return;
    uint64_t now = uv_now(&app->loop);
    if (pw_ctl_next_deadline(app->ctl) <= now) {
        uint64_t t0 = uv_hrtime();
        int64_t wall = pw_wall_ms();
        pw_ctl_run(app->ctl, now, wall);
        for (size_t k = 0; k < app->n_tr; k++)
            if (app->tr[k]->ops->send)
                app->tr[k]->ops->send(app->tr[k], now, wall);
        pw_latency_observe(&app->run_time, (uv_hrtime() - t0) / 1000u);
    }
    uint64_t next = pw_ctl_next_deadline(app->ctl);
    if (next == UINT64_MAX)
        uv_timer_stop(&app->deadline);
    else /* a wish for "now" is served by the next turn's check, not by a busy timer */
        uv_timer_start(&app->deadline, on_deadline, next > now ? next - now : 1, 0);
}

static void on_check(uv_check_t *c)
{
    dispatch(c->data);
}

static void on_deadline(uv_timer_t *t)
{
    dispatch(t->data);
}

static void on_state_doc(void *ud, char *doc, size_t len)
{
    pw_app *app = ud;
    free(app->state_doc);
    app->state_doc = doc;
    app->state_len = len;
    if (app->web)
        pw_web_broadcast(app->web, doc, len);
    pw_mqtt_pub_done(app);
}

static json_t *doc_head(void *ud, uint64_t now)
{
    json_t *head = pw_statedoc_build_head(ud, now);
    pw_uplink_alerts(ud, json_object_get(head, "alerts"));
    pw_mqtt_pub_head(ud, head);
    return head;
}

static json_t *doc_charger(void *ud, size_t i, uint64_t now)
{
    json_t *charger = pw_statedoc_charger(ud, i, now);
    pw_mqtt_pub_charger(ud, i, charger);
    return charger;
}

static size_t doc_count(void *ud)
{
    return ((pw_app *)ud)->cfg->n_chargers;
}

/* Once per tick, never on a meter reading's path: history rows, the state document and the
 * transports' periodic work. */
static void on_tick(uv_timer_t *t)
{
    pw_app *app = t->data;
    uint64_t now = uv_now(&app->loop);
    dispatch(app); /* what the core asked for by now comes first: rows and documents show it */
    pw_history_samples(app->history, app->ctl, pw_wall_ms());
    pw_uplink_tick(app, pw_wall_ms()); /* its rows join this batch */
    pw_history_flush(app->history);
    pw_publisher_start(app->publisher, now);
    for (size_t k = 0; k < app->n_tr; k++)
        if (app->tr[k]->ops->tick)
            app->tr[k]->ops->tick(app->tr[k], now);
}

/* ---- configuration ------------------------------------------------------------------------- */

size_t pw_app_restart_pending(const pw_app *app, const char **out, size_t max)
{
    return pw_cfg_restart_fields(app->boot_cfg, app->cfg, out, max);
}

static void on_watch(void *ud, enum pw_net_watch_event ev, const char *addr, const char *ifname);

static int watch_cb(void *ud, enum pw_net_watch_event ev, const char *addr, const char *ifname)
{
    pw_app *app = ud;
    if (ev != PW_NET_WATCH_UP) {
        on_watch(ud, ev, addr, ifname);
        return 0;
    }
    int rc = 0;
    for (size_t k = 0; k < app->n_tr; k++)
        if (app->tr[k]->ops->net_changed && app->tr[k]->ops->net_changed(app->tr[k], addr) != 0)
            rc = -1;
    if (rc == 0) {
        app->rejoins++;
        pw_app_event(app, "network_rejoin", ifname, "joined the group again on %s (interface %s)",
                     addr, ifname);
    }
    return rc;
}

static void on_watch(void *ud, enum pw_net_watch_event ev, const char *addr, const char *ifname)
{
    pw_app *app = ud;
    if (ev == PW_NET_WATCH_LOST)
        pw_app_event(app, "network_lost", ifname,
                     "address %s is gone from interface %s; waiting for it to return", addr,
                     ifname);
    else
        pw_app_event(app, "network_down", ifname, "interface %s (%s) is down", ifname, addr);
}

/* The LAN interface is the one socket setting that can change live: join there instead. */
static void change_interface(pw_app *app, const char *addr)
{
    for (size_t k = 0; k < app->n_tr; k++)
        if (app->tr[k]->ops->net_changed && app->tr[k]->ops->net_changed(app->tr[k], addr) != 0)
            pw_warn("server", "cannot join on interface %s; the LAN stays where it was", addr);
    pw_net_watch_stop(app->watch);
    app->watch = pw_net_watch_start(&app->loop, addr, watch_cb, app);
}

void pw_app_apply_config(pw_app *app, pw_cfg *cfg)
{
    uint64_t now = uv_now(&app->loop);
    if (app->cfg->commissioning && !cfg->commissioning)
        pw_app_event(app, "commissioned", "",
                     "first configuration saved: %zu chargers, balancing starts", cfg->n_chargers);
    if (strcmp(cfg->net.interface, app->cfg->net.interface) != 0)
        change_interface(app, cfg->net.interface);
    if (app->web)
        pw_web_set_dashboard_login(app->web, cfg->http.dashboard_login);
    pw_bal_timing *timing = charger_timing(app, cfg);
    pw_ctl_set_config(app->ctl, cfg, timing, now, pw_wall_ms());
    free(timing);
    for (size_t k = 0; k < app->n_tr; k++)
        app->tr[k]->ops->reconfigure(app->tr[k], cfg);
    pw_uplink_reconfigure(app, cfg);
    pw_mqtt_pub_reconfigure(app, cfg);
    pw_publisher_reset(app->publisher); /* a half-built document describes the old facility */
    pw_cfg_free(app->cfg);
    app->cfg = cfg;
    const char *pending[PW_CFG_RESTART_FIELDS_MAX];
    size_t n = pw_app_restart_pending(app, pending, PW_ARRAY_LEN(pending));
    for (size_t i = 0; i < n; i++)
        pw_warn("server", "%s is saved and takes effect after a restart", pending[i]);
    uv_timer_set_repeat(&app->tick, cfg->tick_ms);
    dispatch(app);
    on_tick(&app->tick);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

/* Logins and password changes go to the event history like rejected datagrams do; refused
 * attempts of a throttled client at most once a minute, so hammering cannot fill the disk. */
static void on_security_event(void *ud, const char *kind, const char *peer)
{
    pw_app *app = ud;
    if (strcmp(kind, "login_throttled") == 0) {
        uint64_t now = uv_now(&app->loop);
        if (app->last_throttle_event_ms && now - app->last_throttle_event_ms < 60000)
            return;
        app->last_throttle_event_ms = now;
    }
    pw_app_event(app, kind, "", "client %s", peer);
}

static void on_web_closed(void *ud)
{
    pw_app *app = ud;
    app->web = NULL;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop(pw_app *app)
{
    if (app->stopping)
        return;
    pw_info("server", "shutting down");
    app->stopping = true;
    pw_sdnotify_stopping(app->sd);
    app->sd = NULL;
    /* In reverse order of start; a handle is closed only if it was started (start() may have
     * failed half-way). */
    if (app->demo_running)
        uv_process_kill(&app->demo_proc, SIGTERM);
    pw_net_watch_stop(app->watch);
    app->watch = NULL;
    pw_uplink_stop(app);
    for (size_t k = app->n_tr; k-- > 0;)
        app->tr[k]->ops->stop(app->tr[k]);
    app->n_tr = 0;
    pw_mqtt_pub_stop(app);
    pw_api_mqtt_stop(app);
    if (app->web)
        pw_web_close(app->web, on_web_closed, app);
    pw_publisher_close(app->publisher);
    app->publisher = NULL;
    uv_handle_t *handles[] = {(uv_handle_t *)&app->check,    (uv_handle_t *)&app->deadline,
                              (uv_handle_t *)&app->tick,     (uv_handle_t *)&app->sig_int,
                              (uv_handle_t *)&app->sig_term, (uv_handle_t *)&app->sig_hup,
                              (uv_handle_t *)&app->restart};
    for (size_t i = 0; i < PW_ARRAY_LEN(handles); i++)
        close_handle(handles[i]);
}

static void on_restart(uv_timer_t *t)
{
    stop(t->data);
}

void pw_app_restart(pw_app *app, int status)
{
    if (app->stopping || uv_is_active((uv_handle_t *)&app->restart))
        return;
    app->exit_status = status;
    pw_info("server", "stopping with exit status %d to start again (a restore is staged)", status);
    /* A moment for the answer that said so to reach the browser. */
    uv_timer_start(&app->restart, on_restart, 500, 0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    pw_app *app = sig->data;
    if (signum == SIGHUP) {
        pw_info("server", "SIGHUP: reloading %s", app->config_path);
        pw_cfg *cfg = load_config(app->config_path);
        if (cfg)
            pw_app_apply_config(app, cfg);
        else
            pw_warn("server", "the running configuration stays in force");
        return;
    }
    stop(app);
}

static int start_signals(pw_app *app)
{
    uv_signal_t *sigs[] = {&app->sig_int, &app->sig_term, &app->sig_hup};
    int nums[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < PW_ARRAY_LEN(sigs); i++) {
        int rc = uv_signal_init(&app->loop, sigs[i]);
        sigs[i]->data = app;
        if (rc == 0)
            rc = uv_signal_start(sigs[i], on_signal, nums[i]);
        if (rc != 0) {
            pw_error("server", "cannot watch signal %d: %s", nums[i], uv_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* Sessions left open by the last run: a charger still in the same session continues its row. */
static void resume_sessions(pw_app *app)
{
    pw_store_reader *r = NULL;
    char err[256];
    if (pw_store_reader_open(&r, app->db_path, err, sizeof err) != 0) {
        pw_warn("storage", "open sessions not read: %s", err);
        return;
    }
    pw_store_session_filter f = {.open = 1};
    pw_store_session_row *rows = NULL;
    size_t n = 0;
    if (pw_store_query_sessions(r, &f, &rows, &n) == 0) {
        for (size_t k = 0; k < n; k++) {
            const pw_store_session *s = &rows[k].s;
            int i = -1;
            for (size_t c = 0; c < app->cfg->n_chargers && i < 0; c++)
                if (strcmp(app->cfg->chargers[c].id, s->charger) == 0)
                    i = (int)c;
            if (i < 0)
                continue;
            pw_ctl_session cs = {.start_ms = s->start_ms,
                                 .register_start_wh = s->register_start_wh,
                                 .register_wh = s->register_wh,
                                 .peak_a = s->peak_a};
            pw_strlcpy(cs.ref, s->ref, sizeof cs.ref);
            pw_strlcpy(cs.id_tag, s->id_tag, sizeof cs.id_tag); /* the tag stays with the row */
            pw_ctl_resume_session(app->ctl, (size_t)i, &cs);
        }
    }
    free(rows);
    pw_store_reader_close(r);
}

/* A restore staged through the API (api_backup.c) is applied before anything is opened, with
 * the code `phasewise restore` runs; one that no longer passes its checks is kept aside and the
 * appliance starts on what it had. */
static void apply_pending_restore(pw_app *app, const pw_backup_paths *paths)
{
    char pending[1100], failed[1100], err[1024];
    if (join_path(pending, sizeof pending, app->data_dir, PW_BACKUP_PENDING) != 0 ||
        join_path(failed, sizeof failed, app->data_dir, PW_BACKUP_FAILED) != 0 ||
        access(pending, F_OK) != 0)
        return;
    pw_backup_result res;
    if (pw_backup_restore(paths, pending, true, &res, err, sizeof err) != 0) {
        pw_error("server",
                 "the restore staged in %s was refused: %s; kept as %s, starting on the "
                 "files as they were",
                 pending, err, failed);
        if (rename(pending, failed) != 0)
            unlink(pending);
        char text[256];
        snprintf(text, sizeof text, "a staged restore was refused: %.200s", err);
        app->restored = pw_xstrdup(text);
        app->restore_failed = true;
        return;
    }
    unlink(pending);
    char text[700];
    snprintf(text, sizeof text,
             "restored the backup of \"%s\" made %s by phasewise %s (database schema %d): %s%s%s",
             res.m.site, res.m.created, res.m.phasewise, res.m.schema, res.restored,
             res.removed[0] ? "; removed " : "", res.removed);
    pw_info("server", "%s", text);
    app->restored = pw_xstrdup(text);
}

/* The empty facility of a first start, listening where serve's options say (loopback by
 * default). */
static pw_cfg *commissioning_config(const pw_app_opts *opts)
{
    pw_cfg_errors errs;
    pw_cfg_first_start fs = {.http = opts->http, .lan = opts->lan, .ocpp = opts->ocpp};
    pw_cfg *cfg = pw_cfg_commissioning_new(&fs, &errs);
    if (!cfg)
        pw_error("server", "%s %s", errs.items[0].field, errs.items[0].message);
    return cfg;
}

static int resolve(pw_app *app, const pw_app_opts *opts)
{
    app->opts = *opts;
    pw_backup_paths paths;
    char err[1100];
    if (pw_backup_paths_init(&paths, opts->data_dir, opts->config_path, opts->db_path, err,
                             sizeof err) != 0) {
        pw_error("server", "%s", err);
        return -1;
    }
    pw_strlcpy(app->data_dir, paths.data_dir, sizeof app->data_dir);
    pw_strlcpy(app->config_path, paths.config_path, sizeof app->config_path);
    pw_strlcpy(app->db_path, paths.db_path, sizeof app->db_path);
    if (make_data_dir(app->data_dir) != 0)
        return -1;
    /* One appliance per data folder, and `phasewise restore` waits for none to run. */
    int rc = pw_backup_lock(app->data_dir, &app->lock_fd, err, sizeof err);
    if (rc != 0) {
        if (rc == PW_BACKUP_E_RUNNING)
            pw_error("server", "another phasewise (or a restore) is using the data folder %s",
                     app->data_dir);
        else
            pw_error("server", "%s", err);
        return -1;
    }
    apply_pending_restore(app, &paths);
    bool first_start = access(app->config_path, F_OK) != 0 && errno == ENOENT;
    if (first_start && opts->demo) {
        if (seed_demo_config(app->config_path) != 0)
            return -1;
        first_start = false;
    }
    if (first_start) {
        app->cfg = commissioning_config(opts);
        app->boot_cfg = app->cfg ? commissioning_config(opts) : NULL;
        if (!app->cfg)
            return -1;
        pw_warn("server",
                "no configuration at %s: commissioning mode. Nothing is balanced until the "
                "facility is saved from the web UI; chargers are listed, never given more than "
                "their failsafe",
                app->config_path);
    } else {
        if (opts->lan || opts->ocpp)
            pw_warn("server", "--lan and --ocpp apply to commissioning mode only: %s exists",
                    app->config_path);
        app->cfg = load_config(app->config_path);
        if (!app->cfg)
            return -1;
    }
    /* --http overrides where the web front listens, not what the saved config says. */
    pw_strlcpy(app->http_addr, app->cfg->http.addr, sizeof app->http_addr);
    app->http_port = app->cfg->http.port;
    if (opts->http && pw_cfg_parse_listen(opts->http, app->http_addr, sizeof app->http_addr,
                                          &app->http_port) != 0) {
        pw_error("server", "--http %s: expected ADDRESS:PORT, e.g. 127.0.0.1:8080", opts->http);
        return -1;
    }
    if (!app->boot_cfg)
        app->boot_cfg = clone_config(app->cfg);
    return join_path(app->key_path, sizeof app->key_path, app->data_dir, app->cfg->net.key_file);
}

/* HTTPS: the installer's certificate, or a self-signed one made on first start. */
static int start_tls(pw_app *app, char *cert, char *key, size_t size)
{
    char err[1400];
    bool created = false;
    if (join_path(cert, size, app->data_dir, app->cfg->http.tls.cert_file) != 0 ||
        join_path(key, size, app->data_dir, app->cfg->http.tls.key_file) != 0)
        return -1;
    if (pw_tls_ensure(cert, key, app->http_addr, &created, err, sizeof err) != 0) {
        pw_error("web", "HTTPS: %s", err);
        return -1;
    }
    if (created)
        pw_info("web", "generated a self-signed HTTPS certificate %s (key %s, mode 0600)", cert,
                key);
    return 0;
}

static int start_core(pw_app *app)
{
    char err[512];
    bool created = false;
    if (pw_keyfile_load_or_create(app->key_path, app->key, &created, err, sizeof err) != 0) {
        pw_error("server", "facility key: %s", err);
        return -1;
    }
    if (created)
        pw_info("server", "generated a new facility key in %s", app->key_path);
    app->boot_id = next_boot_id(app->data_dir);
    if (pw_store_open(&app->store, app->db_path, err, sizeof err) != 0) {
        pw_error("storage", "%s", err);
        return -1;
    }
    app->history = pw_history_new(&app->loop, app->store);
    app->uplink = pw_uplink_new(app);
    app->start_ms = uv_now(&app->loop);
    for (size_t k = 0; k < PW_ARRAY_LEN(transport_new); k++)
        app->tr[app->n_tr++] = transport_new[k]();
    pw_ctl_sink sink = {
        .ud = app, .event = on_ctl_event, .session = on_ctl_session, .limit_change = on_ctl_limit};
    pw_bal_timing *timing = charger_timing(app, app->cfg);
    app->ctl = pw_ctl_new(app->cfg, timing, &sink);
    free(timing);
    resume_sessions(app);
    pw_command_restore(app); /* a paused charger stays paused across a restart */
    return 0;
}

static int start_transports(pw_app *app)
{
    pw_transport_env env = {.loop = &app->loop,
                            .ctl = app->ctl,
                            .cfg = app->boot_cfg,
                            .key = app->key,
                            .boot_id = app->boot_id,
                            .web = app->web,
                            .tls_cert = app->tls_cert[0] ? app->tls_cert : NULL,
                            .tls_key = app->tls_key[0] ? app->tls_key : NULL,
                            .db_path = app->db_path,
                            .log_event = on_transport_event,
                            .ud = app};
    char err[512];
    for (size_t k = 0; k < app->n_tr; k++) {
        if (app->tr[k]->ops->start(app->tr[k], &env, err, sizeof err) != 0) {
            pw_error("server", "%s: %s", app->tr[k]->ops->name, err);
            return -1;
        }
        /* The running config may already differ from the boot one's devices. */
        app->tr[k]->ops->reconfigure(app->tr[k], app->cfg);
    }
    return 0;
}

static int start_web(pw_app *app)
{
    char err[512];
    app->api_pool = pw_api_pool_new(&app->loop, app->db_path);
    pw_web_opts wo = {.addr = app->http_addr,
                      .port = app->http_port,
                      .max_body = PW_CFG_MAX_FILE,
                      .api = pw_api_handle,
                      .api_ud = app,
                      .auth = {.data_dir = app->data_dir,
                               .dashboard_login = app->cfg->http.dashboard_login,
                               .access = pw_api_access,
                               .access_ud = app,
                               .on_event = on_security_event,
                               .event_ud = app}};
    /* A backup being restored goes to a file in the data folder, not memory: it holds the
     * whole history. */
    wo.upload.path = PW_API_RESTORE_PATH;
    wo.upload.dir = app->data_dir;
    wo.upload.max = PW_BACKUP_ARCHIVE_MAX;
    if (app->cfg->http.tls.enabled) {
        if (start_tls(app, app->tls_cert, app->tls_key, sizeof app->tls_cert) != 0)
            return -1;
        wo.tls_cert = app->tls_cert;
        wo.tls_key = app->tls_key;
    }
    if (pw_web_new(&app->web, &app->loop, &wo, err, sizeof err) != 0) {
        pw_error("web", "%s", err);
        return -1;
    }
    pw_info("server", "dashboard at %s://%s:%u/", wo.tls_cert ? "https" : "http", app->http_addr,
            pw_web_port(app->web));
    return 0;
}

static void start_dispatch(pw_app *app)
{
    pw_publish_src src = {
        .ud = app, .head = doc_head, .item = doc_charger, .count = doc_count, .done = on_state_doc};
    app->publisher = pw_publisher_new(&app->loop, &src);
    uv_check_init(&app->loop, &app->check);
    app->check.data = app;
    uv_check_start(&app->check, on_check);
    uv_timer_init(&app->loop, &app->deadline);
    app->deadline.data = app;
    uv_timer_init(&app->loop, &app->tick);
    app->tick.data = app;
    uv_timer_init(&app->loop, &app->restart);
    app->restart.data = app;
    uv_timer_start(&app->tick, on_tick, 0, app->cfg->tick_ms);
    app->watch = pw_net_watch_start(&app->loop, app->boot_cfg->net.interface, watch_cb, app);
}

static int start(pw_app *app)
{
    /* The web front before the transports: OCPP charge points connect through it. */
    if (start_core(app) != 0 || start_web(app) != 0 || start_transports(app) != 0 ||
        start_signals(app) != 0)
        return -1;
    start_dispatch(app);
    pw_mqtt_pub_start(app); /* after the web front, like the transports */
    pw_app_event(app, "start", "", "phasewise %s, boot %u, %zu chargers", PW_VERSION, app->boot_id,
                 app->cfg->n_chargers);
    if (app->restored)
        pw_app_event(app, app->restore_failed ? "restore_failed" : "restore", "", "%s",
                     app->restored);
    if (app->opts.demo && start_demo(app) != 0)
        return -1;
    app->sd = pw_sdnotify_ready(&app->loop); /* serving: systemd may count it as started */
    return 0;
}

int pw_app_run(const pw_app_opts *opts)
{
    pw_app *app = pw_xcalloc(1, sizeof *app);
    app->lock_fd = -1;
    int rc = uv_loop_init(&app->loop);
    if (rc != 0) {
        pw_error("server", "cannot create the event loop: %s", uv_strerror(rc));
        free(app);
        return 1;
    }
    int status = 1;
    bool started = resolve(app, opts) == 0 && start(app) == 0;
    if (started) {
        pw_info("server", "phasewise %s running; Ctrl-C to stop", PW_VERSION);
        uv_run(&app->loop, UV_RUN_DEFAULT);
        status = app->exit_status;
    } else {
        stop(app); /* unwind whatever did start, through the same orderly path */
        uv_run(&app->loop, UV_RUN_DEFAULT);
    }
    /* Write what the last ticks collected, then close the database cleanly. */
    pw_history_close(app->history);
    pw_uplink_free(app);
    if (app->store)
        pw_store_close(app->store);
    rc = uv_loop_close(&app->loop);
    if (rc != 0) {
        pw_error("server", "event loop still had handles at exit: %s", uv_strerror(rc));
        uv_print_all_handles(&app->loop, stderr);
        status = 1;
    } else if (started) {
        pw_info("server", "stopped cleanly");
    }
    if (app->lock_fd >= 0) /* the database is closed: a restore may go ahead */
        close(app->lock_fd);
    free(app->restored);
    pw_api_pool_free(app->api_pool);
    pw_ctl_free(app->ctl);
    pw_cfg_free(app->cfg);
    pw_cfg_free(app->boot_cfg);
    free(app->state_doc);
    free(app);
    return status;
}
