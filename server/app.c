/* Appliance lifecycle: resolve paths, load the config, bring up storage, the LAN socket, the web
 * front and the control tick on one loop, and take them down in reverse on SIGINT/SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app_int.h"
#include "pw_keyfile.h"
#include "pw_util.h"
#include "tls.h"

extern const unsigned char pw_demo_config[];
extern const size_t pw_demo_config_len;

uint64_t pw_app_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

int64_t pw_app_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

#define MAINTAIN_EVERY_MS 5000
#define MAINTAIN_STEPS    4 /* bounded work per write; the rest waits for the next one */

/* Runs on a libuv worker: the batch, then (every few seconds) a bounded step of retention and
 * aggregation. The loop never waits on SQLite. */
static void write_work(uv_work_t *req)
{
    pw_app *app = req->data;
    uint64_t t0 = uv_hrtime();
    app->write_rc = pw_store_write(app->store, app->writing);
    app->write_ns = uv_hrtime() - t0;
    if (app->write_rc != 0)
        pw_strlcpy(app->write_error, pw_store_errmsg(app->store), sizeof app->write_error);
    int64_t wall = pw_app_wall_ms();
    if (app->write_rc != 0 || wall - app->last_maintain_ms < MAINTAIN_EVERY_MS)
        return;
    app->last_maintain_ms = wall;
    for (int i = 0; i < MAINTAIN_STEPS; i++)
        if (pw_store_maintain(app->store, wall, &app->store_policy) != 1)
            break;
}

/* Rows whose write failed stay in `writing` and are retried first; rows collected meanwhile
 * wait in `filling`, up to a bound, so a full disk costs history but never memory. */
#define MAX_PENDING_ROWS 2000000

static void after_write(uv_work_t *req, int status)
{
    pw_app *app = req->data;
    app->write_in_flight = false;
    pw_latency_observe(&app->counters.store_write, app->write_ns / 1000u);
    if (status == 0 && app->write_rc == 0) {
        if (app->store_error[0])
            pw_info("storage", "history writes work again");
        app->store_error[0] = '\0';
        pw_store_batch_clear(app->writing);
        return;
    }
    /* Copied here, on the loop thread, so the state document never reads a worker's buffer. */
    pw_strlcpy(app->store_error, status != 0 ? uv_strerror(status) : app->write_error,
               sizeof app->store_error);
    app->counters.store_errors++;
    uint64_t now = pw_app_now_ms();
    if (now - app->last_store_error_log_ms > 60000 || !app->last_store_error_log_ms) {
        app->last_store_error_log_ms = now;
        pw_error("storage", "history write failed (%s); balancing continues, retrying",
                 pw_store_strerror(app->write_rc));
    }
    if (pw_store_batch_rows(app->filling) > MAX_PENDING_ROWS) {
        pw_error("storage", "dropping %zu history rows that could not be written",
                 pw_store_batch_rows(app->filling));
        pw_store_batch_clear(app->filling);
    }
}

void pw_control_flush_history(pw_app *app)
{
    if (app->write_in_flight || !app->store)
        return;
    /* An empty `writing` batch means the last write succeeded: hand over the new rows. */
    if (pw_store_batch_rows(app->writing) == 0) {
        pw_store_batch *tmp = app->writing;
        app->writing = app->filling;
        app->filling = tmp;
    }
    if (pw_store_batch_rows(app->writing) == 0)
        return;
    app->write_in_flight = true;
    app->write_req.data = app;
    /* At shutdown the loop is done: write on this thread. */
    if (app->stopping || uv_queue_work(&app->loop, &app->write_req, write_work, after_write)) {
        write_work(&app->write_req);
        after_write(&app->write_req, 0);
    }
}

static void on_demo_exit(uv_process_t *proc, int64_t status, int sig)
{
    pw_app *app = proc->data;
    app->demo_running = false;
    if (!app->stopping)
        pw_warn("server", "demo simulator exited (status %lld, signal %d)", (long long)status, sig);
    uv_close((uv_handle_t *)proc, NULL);
}

static int start_demo(pw_app *app)
{
    char group[16], port[8], seed[] = "1";
    pw_strlcpy(group, app->cfg->net.group, sizeof group);
    snprintf(port, sizeof port, "%u", app->cfg->net.port);
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
    return 0;
}

/* Logins and password changes go to the event history like rejected datagrams do; refused
 * attempts of a throttled client at most once a minute, so hammering cannot fill the disk. */
static void on_security_event(void *ud, const char *kind, const char *peer)
{
    pw_app *app = ud;
    if (strcmp(kind, "login_throttled") == 0) {
        uint64_t now = pw_app_now_ms();
        if (app->last_throttle_event_ms && now - app->last_throttle_event_ms < 60000)
            return;
        app->last_throttle_event_ms = now;
    }
    pw_control_log_event(app, kind, "", "client %s", peer);
}

static void on_web_closed(void *ud)
{
    pw_app *app = ud;
    app->web = NULL;
}

static void stop(pw_app *app)
{
    if (app->stopping)
        return;
    pw_info("server", "shutting down");
    app->stopping = true;
    /* Handles are closed only if they were started: start() may have failed half-way. */
    uv_handle_t *handles[] = {(uv_handle_t *)&app->tick_timer, (uv_handle_t *)&app->sig_int,
                              (uv_handle_t *)&app->sig_term, (uv_handle_t *)&app->sig_hup};
    for (size_t i = 0; i < PW_ARRAY_LEN(handles); i++)
        if (handles[i]->loop && !uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    if (app->demo_running)
        uv_process_kill(&app->demo_proc, SIGTERM);
    pw_control_stop(app);
    pw_netwatch_stop(app);
    if (app->net) {
        pw_net_close(app->net, NULL, NULL);
        app->net = NULL;
    }
    pw_defa_stop(app);
    if (app->web)
        pw_web_close(app->web, on_web_closed, app);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    pw_app *app = sig->data;
    if (signum == SIGHUP) {
        pw_info("server", "SIGHUP: reloading %s", app->config_path);
        pw_cfg *cfg = load_config(app->config_path);
        if (cfg)
            pw_control_apply_config(app, cfg);
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
    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(&app->loop, sigs[i]);
        sigs[i]->data = app;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    return 0;
}

static int resolve(pw_app *app, const pw_app_opts *opts)
{
    app->opts = *opts;
    pw_strlcpy(app->data_dir, opts->data_dir ? opts->data_dir : "data", sizeof app->data_dir);
    if (make_data_dir(app->data_dir) != 0)
        return -1;
    if (opts->config_path)
        pw_strlcpy(app->config_path, opts->config_path, sizeof app->config_path);
    else if (join_path(app->config_path, sizeof app->config_path, app->data_dir, "config.json") !=
             0)
        return -1;
    if (opts->db_path)
        pw_strlcpy(app->db_path, opts->db_path, sizeof app->db_path);
    else if (join_path(app->db_path, sizeof app->db_path, app->data_dir, "phasewise.db") != 0)
        return -1;
    if (access(app->config_path, F_OK) != 0) {
        if (!opts->demo) {
            pw_error("server",
                     "no configuration at %s: pass --config FILE, or --demo to start "
                     "with the simulated demo facility",
                     app->config_path);
            return -1;
        }
        if (seed_demo_config(app->config_path) != 0)
            return -1;
    }
    app->cfg = load_config(app->config_path);
    if (!app->cfg)
        return -1;
    if (opts->http && pw_cfg_parse_listen(opts->http, app->cfg->http.addr,
                                          sizeof app->cfg->http.addr, &app->cfg->http.port) != 0) {
        pw_error("server", "--http %s: expected ADDRESS:PORT, e.g. 127.0.0.1:8080", opts->http);
        return -1;
    }
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
    if (pw_tls_ensure(cert, key, app->cfg->http.addr, &created, err, sizeof err) != 0) {
        pw_error("web", "HTTPS: %s", err);
        return -1;
    }
    if (created)
        pw_info("web", "generated a self-signed HTTPS certificate %s (key %s, mode 0600)", cert,
                key);
    return 0;
}

static int start(pw_app *app)
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
    pw_store_policy_default(&app->store_policy);
    app->filling = pw_store_batch_new();
    app->writing = pw_store_batch_new();

    pw_registry_init(&app->reg, app->cfg);
    pw_bal_facility f;
    pw_cfg_facility(app->cfg, &f);
    app->bal = pw_bal_new(&f);
    app->start_ms = pw_app_now_ms();

    pw_net_opts no = {.group = app->cfg->net.group,
                      .port = app->cfg->net.port,
                      .interface = app->cfg->net.interface,
                      .ttl = app->cfg->net.ttl};
    if (pw_net_open(&app->loop, &no, pw_control_on_datagram, app, &app->net) != 0)
        return -1;
    pw_info("server", "LAN: group %s port %u on interface %s, ttl %u", no.group, no.port,
            no.interface, no.ttl);
    if (pw_defa_start(app) != 0)
        return -1;

    app->api_pool = pw_api_pool_new(&app->loop, app->db_path);
    pw_web_opts wo = {.addr = app->cfg->http.addr,
                      .port = app->cfg->http.port,
                      .max_body = 1u << 20,
                      .api = pw_api_handle,
                      .api_ud = app,
                      .auth = {.data_dir = app->data_dir,
                               .dashboard_login = app->cfg->http.dashboard_login,
                               .access = pw_api_access,
                               .access_ud = app,
                               .on_event = on_security_event,
                               .event_ud = app}};
    char cert[1100], key[1100];
    if (app->cfg->http.tls.enabled) {
        if (start_tls(app, cert, key, sizeof cert) != 0)
            return -1;
        wo.tls_cert = cert;
        wo.tls_key = key;
    }
    if (pw_web_new(&app->web, &app->loop, &wo, err, sizeof err) != 0) {
        pw_error("web", "%s", err);
        return -1;
    }
    pw_info("server", "dashboard at %s://%s:%u/", wo.tls_cert ? "https" : "http",
            app->cfg->http.addr, pw_web_port(app->web));

    start_signals(app);
    pw_control_start(app);
    pw_netwatch_start(app);
    pw_control_log_event(app, "start", "", "phasewise %s, boot %u, %zu chargers", PW_VERSION,
                         app->boot_id, app->cfg->n_chargers);
    if (app->opts.demo && start_demo(app) != 0)
        return -1;
    return 0;
}

int pw_app_run(const pw_app_opts *opts)
{
    pw_app *app = pw_xcalloc(1, sizeof *app);
    uv_loop_init(&app->loop);
    int status = 1;
    bool started = resolve(app, opts) == 0 && start(app) == 0;
    if (started) {
        pw_info("server", "phasewise %s running; Ctrl-C to stop", PW_VERSION);
        uv_run(&app->loop, UV_RUN_DEFAULT);
        status = 0;
    } else {
        stop(app); /* unwind whatever did start, through the same orderly path */
        uv_run(&app->loop, UV_RUN_DEFAULT);
    }
    /* Write what the last ticks collected, then close the database cleanly. */
    if (app->store && app->filling) {
        pw_control_flush_history(app);
        pw_store_close(app->store);
    }
    int rc = uv_loop_close(&app->loop);
    if (rc != 0) {
        pw_error("server", "event loop still had handles at exit: %s", uv_strerror(rc));
        uv_print_all_handles(&app->loop, stderr);
        status = 1;
    } else if (started) {
        pw_info("server", "stopped cleanly");
    }
    pw_api_pool_free(app->api_pool);
    pw_store_batch_free(app->filling);
    pw_store_batch_free(app->writing);
    if (app->bal)
        pw_bal_free(app->bal);
    pw_registry_close(&app->reg);
    pw_cfg_free(app->cfg);
    free(app->sent);
    free(app->state_doc);
    free(app);
    return status;
}
