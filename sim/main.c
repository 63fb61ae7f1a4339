/* phasewise-sim: the virtual facility (chargers, cars, building load, meters) speaking the real
 * LAN protocol (and OCPP 1.6J, Modbus TCP, MQTT for the devices linked so) on a libuv loop in
 * real time, optionally sped up. It is the demo, the test bed and the installer's what-if tool. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
#include "pw_keyfile.h"
#include "pw_simocpp.h"
#include "pw_util.h"
#include "sim_int.h"

static const char usage[] =
    "usage: phasewise-sim --config FILE --key-file FILE [options]\n"
    "\n"
    "Simulates the facility described by FILE (chargers, cars, building load, meters) and speaks\n"
    "the phasewise LAN protocol on its multicast group; chargers on ocpp links are OCPP 1.6J\n"
    "charge points. The appliance creates the key file; the simulator waits up to 10 s for it.\n"
    "\n"
    "  --seed N              model seed (default 1); same seed, same cars and loads\n"
    "  --cars N              car arrivals per simulated day (default 1.5 per charger)\n"
    "  --arrivals P          evening | office | uniform (default evening)\n"
    "  --start-hour H        time of day at start (default: the pattern's busy hour)\n"
    "  --base-load F         building load at its daily peak, share of each metered node's\n"
    "                        limit (default 0.3)\n"
    "  --meter-interval S    seconds between meter readings, 1..10 (default 1)\n"
    "  --speed X             simulated seconds per real second (default 1); the model runs\n"
    "                        faster, the protocol's timing (leases, statuses) stays real\n"
    "  --duration S          stop after S simulated seconds (default: run until a signal)\n"
    "  --group G --port P    multicast group and port (default: the config's)\n"
    "  --interface A         local IPv4 address to use (default: the config's, 127.0.0.1)\n"
    "  --report FILE         append one JSON line of ground truth per simulated second\n"
    "  --report-interval S   simulated seconds between report lines (default 1)\n"
    "  --loss P --dup P --reorder P\n"
    "                        impair datagrams in both directions with these probabilities\n"
    "  --meter-outage START:SECONDS\n"
    "                        every meter sends nothing from START for SECONDS (simulated)\n"
    "  --silence ID:START:SECONDS\n"
    "                        the charger with device id ID sends and hears nothing from START\n"
    "                        for SECONDS (simulated), as with its cable pulled; repeatable\n"
    "  --modbus-delay-ms N   Modbus TCP meters answer N ms (real time) late\n"
    "  --modbus-down START:SECONDS\n"
    "                        Modbus TCP gateways close their connections and stop listening\n"
    "                        from START for SECONDS (simulated); repeatable\n"
    "  --ocpp-url BASE       chargers on ocpp links are OCPP 1.6J charge points (one per\n"
    "                        identity, its connectors the chargers) connecting to BASE<id>\n"
    "                        (default: ws://<the config's ocpp listen address>/ocpp/<id>),\n"
    "                        subprotocol ocpp1.6, reconnecting after 1..5 s\n"
    "  --ocpp-password ID=PASSWORD\n"
    "                        HTTP Basic password of charge point ID (user = ID); repeatable\n"
    "  --ocpp-quirk ID=MODE  how charge point ID deviates: default, tx-default-only (rejects\n"
    "                        TxProfile), stack0 (rejects stack levels above 0), whole-amps\n"
    "                        (rejects limits with decimals), ignore (accepts profiles, does\n"
    "                        not apply them), no-offered (no Current.Offered); repeatable\n"
    "  --ocpp-ca FILE        wss://: PEM CA to check the central system with\n"
    "  --ocpp-drop ID=START:SECONDS\n"
    "                        charge point ID loses its connection at START for SECONDS\n"
    "                        (simulated) and stays away; its cars go on charging under the\n"
    "                        profiles they have; repeatable\n"
    "  --verbose             debug logging\n"
    "  --help, --version\n";

enum {
    OPT_CONFIG = 256,
    OPT_KEY,
    OPT_SEED,
    OPT_CARS,
    OPT_ARRIVALS,
    OPT_START,
    OPT_BASE,
    OPT_METER,
    OPT_SPEED,
    OPT_DURATION,
    OPT_GROUP,
    OPT_PORT,
    OPT_IFACE,
    OPT_REPORT,
    OPT_REPORT_INTERVAL,
    OPT_LOSS,
    OPT_DUP,
    OPT_REORDER,
    OPT_METER_OUTAGE,
    OPT_SILENCE,
    OPT_MODBUS_DELAY,
    OPT_MODBUS_DOWN,
    OPT_OCPP_URL,
    OPT_OCPP_PASSWORD,
    OPT_OCPP_QUIRK,
    OPT_OCPP_DROP,
    OPT_OCPP_CA,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"key-file", required_argument, NULL, OPT_KEY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"cars", required_argument, NULL, OPT_CARS},
    {"arrivals", required_argument, NULL, OPT_ARRIVALS},
    {"start-hour", required_argument, NULL, OPT_START},
    {"base-load", required_argument, NULL, OPT_BASE},
    {"meter-interval", required_argument, NULL, OPT_METER},
    {"speed", required_argument, NULL, OPT_SPEED},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"group", required_argument, NULL, OPT_GROUP},
    {"port", required_argument, NULL, OPT_PORT},
    {"interface", required_argument, NULL, OPT_IFACE},
    {"report", required_argument, NULL, OPT_REPORT},
    {"report-interval", required_argument, NULL, OPT_REPORT_INTERVAL},
    {"loss", required_argument, NULL, OPT_LOSS},
    {"dup", required_argument, NULL, OPT_DUP},
    {"reorder", required_argument, NULL, OPT_REORDER},
    {"meter-outage", required_argument, NULL, OPT_METER_OUTAGE},
    {"silence", required_argument, NULL, OPT_SILENCE},
    {"modbus-delay-ms", required_argument, NULL, OPT_MODBUS_DELAY},
    {"modbus-down", required_argument, NULL, OPT_MODBUS_DOWN},
    {"ocpp-url", required_argument, NULL, OPT_OCPP_URL},
    {"ocpp-password", required_argument, NULL, OPT_OCPP_PASSWORD},
    {"ocpp-quirk", required_argument, NULL, OPT_OCPP_QUIRK},
    {"ocpp-drop", required_argument, NULL, OPT_OCPP_DROP},
    {"ocpp-ca", required_argument, NULL, OPT_OCPP_CA},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int parse_num(const char *opt, const char *text, double lo, double hi, double *out)
{
    return sim_cli_number(SIM_COMP, opt, text, lo, hi, out);
}

/* Handles one option that takes a number. Returns 0 or -1. */
static int numeric_opt(sim_opts *o, int c, const char *arg)
{
    double v;
    switch (c) {
    case OPT_SEED:
        if (parse_num("seed", arg, 0, 1e18, &v))
            return -1;
        o->model.seed = (uint64_t)v;
        return 0;
    case OPT_CARS:
        if (parse_num("cars", arg, 0, 100000, &v))
            return -1;
        o->model.cars_per_day = (int)v;
        return 0;
    case OPT_START:
        return parse_num("start-hour", arg, 0, 23.999, &o->model.start_hour);
    case OPT_BASE:
        return parse_num("base-load", arg, 0, 1, &o->model.base_load_peak);
    case OPT_METER:
        if (parse_num("meter-interval", arg, 1, 10, &v))
            return -1;
        o->meter_ms = (uint32_t)lround(v * 1000.0);
        return 0;
    case OPT_SPEED:
        return parse_num("speed", arg, 0.01, 10000, &o->speed);
    case OPT_DURATION:
        return parse_num("duration", arg, 0, 1e9, &o->duration_s);
    case OPT_PORT:
        if (parse_num("port", arg, 1, 65535, &v))
            return -1;
        o->port = (int)v;
        return 0;
    case OPT_REPORT_INTERVAL:
        if (parse_num("report-interval", arg, 1, 86400, &v))
            return -1;
        o->report_ms = (uint32_t)lround(v * 1000.0);
        return 0;
    case OPT_LOSS:
        return parse_num("loss", arg, 0, 1, &o->loss);
    case OPT_DUP:
        return parse_num("dup", arg, 0, 1, &o->dup);
    case OPT_REORDER:
        return parse_num("reorder", arg, 0, 1, &o->reorder);
    case OPT_MODBUS_DELAY:
        if (parse_num("modbus-delay-ms", arg, 0, 600000, &v))
            return -1;
        o->modbus_delay_ms = (uint32_t)v;
        return 0;
    }
    return -1;
}

/* Adds a --meter-outage, --silence or --modbus-down window. Returns 0 or -1 (logged). */
static int add_outage(sim_opts *o, int c, const char *arg)
{
    int charger = c == OPT_SILENCE;
    const char *opt = charger                ? "--silence"
                      : c == OPT_MODBUS_DOWN ? "--modbus-down"
                                             : "--meter-outage";
    pw_sim_outage *list = c == OPT_MODBUS_DOWN ? o->modbus_down : o->outages;
    size_t *n = c == OPT_MODBUS_DOWN ? &o->n_modbus_down : &o->n_outages;
    if (*n == PW_SIM_MAX_OUTAGES) {
        pw_error(SIM_COMP, "%s: at most %d windows", opt, PW_SIM_MAX_OUTAGES);
        return -1;
    }
    if (pw_sim_outage_parse(arg, charger, &list[*n]) != 0) {
        pw_error(SIM_COMP, "%s: '%s' is not %s", opt, arg,
                 charger ? "DEVICE_ID:START:SECONDS" : "START:SECONDS");
        return -1;
    }
    (*n)++;
    return 0;
}

/* Adds an --ocpp-password, --ocpp-quirk or --ocpp-drop ID=VALUE. Returns 0 or -1 (logged). */
static int add_kv(sim_opts *o, int c, const char *arg)
{
    bool quirk = c == OPT_OCPP_QUIRK, drop = c == OPT_OCPP_DROP;
    const char *opt = quirk ? "--ocpp-quirk" : drop ? "--ocpp-drop" : "--ocpp-password";
    sim_kv *list = quirk ? o->ocpp_quirks : drop ? o->ocpp_drops : o->ocpp_passwords;
    size_t *n = quirk ? &o->n_ocpp_quirks : drop ? &o->n_ocpp_drops : &o->n_ocpp_passwords;
    const char *eq = strchr(arg, '=');
    pw_sim_outage window;
    if (!eq || eq == arg || !eq[1] || (drop && pw_sim_outage_parse(eq + 1, 0, &window) != 0)) {
        pw_error(SIM_COMP, "%s: '%s' is not ID=%s", opt, arg,
                 quirk  ? "MODE"
                 : drop ? "START:SECONDS"
                        : "PASSWORD");
        return -1;
    }
    enum pw_simocpp_quirk q;
    if (quirk && pw_simocpp_quirk_parse(eq + 1, &q) != 0) {
        pw_error(SIM_COMP,
                 "%s: '%s' is not default, tx-default-only, stack0, whole-amps, "
                 "ignore or no-offered",
                 opt, eq + 1);
        return -1;
    }
    if (*n == SIM_MAX_KV) {
        pw_error(SIM_COMP, "%s: at most %d", opt, SIM_MAX_KV);
        return -1;
    }
    list[(*n)++] = (sim_kv){.key = arg, .key_len = (size_t)(eq - arg), .value = eq + 1};
    return 0;
}

/* Parses argv into o. Returns 0 to run, 1 to exit 0 (help, version), -1 on a usage error. */
static int parse_args(int argc, char **argv, sim_opts *o)
{
    int c;
    memset(o, 0, sizeof(*o));
    pw_sim_default_params(&o->model);
    o->speed = 1.0;
    o->meter_ms = 1000;
    o->report_ms = 1000;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONFIG:
            o->config = optarg;
            break;
        case OPT_KEY:
            o->key_file = optarg;
            break;
        case OPT_ARRIVALS:
            if (pw_sim_pattern_parse(optarg, &o->model.pattern) != 0) {
                pw_error(SIM_COMP, "--arrivals: '%s' is not evening, office or uniform", optarg);
                return -1;
            }
            break;
        case OPT_GROUP:
            o->group = optarg;
            break;
        case OPT_IFACE:
            o->interface = optarg;
            break;
        case OPT_REPORT:
            o->report = optarg;
            break;
        case OPT_METER_OUTAGE:
        case OPT_SILENCE:
        case OPT_MODBUS_DOWN:
            if (add_outage(o, c, optarg) != 0)
                return -1;
            break;
        case OPT_OCPP_URL:
            o->ocpp_url = optarg;
            break;
        case OPT_OCPP_CA:
            o->ocpp_ca = optarg;
            break;
        case OPT_OCPP_PASSWORD:
        case OPT_OCPP_QUIRK:
        case OPT_OCPP_DROP:
            if (add_kv(o, c, optarg) != 0)
                return -1;
            break;
        case OPT_VERBOSE:
            pw_log_set_level(PW_LOG_DEBUG);
            break;
        case OPT_HELP:
            fputs(usage, stdout);
            return 1;
        case OPT_VERSION:
            printf("phasewise-sim %s\n", PW_VERSION);
            return 1;
        case '?':
            fputs(usage, stderr);
            return -1;
        default:
            if (numeric_opt(o, c, optarg) != 0)
                return -1;
        }
    }
    if (optind < argc || !o->config || !o->key_file) {
        pw_error(SIM_COMP, "%s",
                 optind < argc ? "unexpected argument" : "--config and --key-file are required");
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

uint64_t sim_now_ms(sim_app *app)
{
    return (uint64_t)((double)(uv_now(&app->loop) - app->t0_real) * app->o.speed);
}

/* Boot ids must grow across restarts and the simulator keeps no state: deciseconds since
 * 2024-01-01 grow for the next decade and stay below 2^32. */
static uint32_t make_boot_id(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t ds = (uint64_t)tv.tv_sec * 10 + (uint64_t)tv.tv_usec / 100000;
    return (uint32_t)(ds - 17040672000ull);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void log_summary(sim_app *app)
{
    double energy = 0.0;
    for (size_t i = 0; i < app->cfg->n_chargers; i++) {
        pw_sim_charger_view v;
        pw_sim_charger(app->model, i, &v);
        energy += v.energy_wh;
    }
    pw_info(SIM_COMP,
            "simulated %.1f s: %.2f kWh delivered; tx %llu, rx %llu (allocations %llu, "
            "rejected %llu, replayed %llu); impairment dropped %llu/%llu",
            pw_sim_now(app->model) / 1000.0, energy / 1000.0, (unsigned long long)app->c.tx,
            (unsigned long long)app->c.rx, (unsigned long long)app->c.rx_alloc,
            (unsigned long long)app->c.rx_rejected, (unsigned long long)app->c.rx_replay,
            (unsigned long long)app->tx_imp.dropped, (unsigned long long)app->rx_imp.dropped);
    for (size_t i = 0; i < app->cfg->n_nodes; i++) {
        pw_sim_node_view v;
        pw_sim_node(app->model, i, &v);
        for (int l = 0; l < PW_LINES; l++) {
            if (v.over_ms[l] > 0.0)
                pw_warn(SIM_COMP,
                        "node '%s' L%d above its limit for %.1f s (%.1f s beyond %u ms),"
                        " by up to %.1f A",
                        app->cfg->nodes[i].id, l + 1, v.over_ms[l] / 1000.0,
                        v.over_beyond_ms[l] / 1000.0, app->o.model.reaction_ms, v.max_over_a[l]);
        }
    }
}

/* Closes every handle; the loop then runs dry and main closes it. */
static void shutdown_sim(sim_app *app, int code)
{
    if (app->stopping)
        return;
    app->stopping = true;
    app->exit_code = code;
    if (app->running)
        log_summary(app);
    sim_agent_close(app);
    sim_modbus_close(app);
    sim_mqtt_close(app);
    sim_ocpp_close(app);
    uv_handle_t *handles[] = {(uv_handle_t *)&app->tick, (uv_handle_t *)&app->key_retry,
                              (uv_handle_t *)&app->sig_int, (uv_handle_t *)&app->sig_term};
    for (size_t i = 0; i < PW_ARRAY_LEN(handles); i++) {
        if (!uv_is_closing(handles[i]))
            uv_close(handles[i], on_handle_closed);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    sim_app *app = s->data;
    pw_info(SIM_COMP, "signal %d: stopping", signum);
    shutdown_sim(app, 0);
}

static void on_tick(uv_timer_t *t)
{
    sim_app *app = t->data;
    uint64_t now = sim_now_ms(app);
    uint64_t end = (uint64_t)(app->o.duration_s * 1000.0);
    if (app->o.duration_s > 0 && now >= end)
        now = end;
    sim_agent_advance(app, now);
    sim_agent_flush(app);
    sim_modbus_tick(app, now);
    sim_ocpp_tick(app);
    if (app->o.duration_s > 0 && now >= end) {
        pw_info(SIM_COMP, "duration reached");
        shutdown_sim(app, 0);
    }
}

static void start_running(sim_app *app)
{
    /* The meters' servers first: a port that is taken ends the run before any charger has
     * announced itself. */
    if (sim_modbus_start(app) != 0 || sim_mqtt_start(app) != 0 || sim_agent_start(app) != 0 ||
        sim_ocpp_start(app) != 0) {
        shutdown_sim(app, 1);
        return;
    }
    app->running = true;
    app->t0_real = uv_now(&app->loop);
    pw_info(SIM_COMP, "%zu chargers, %zu nodes, %s arrivals, seed %llu, speed %g",
            app->cfg->n_chargers, app->cfg->n_nodes, pw_sim_pattern_name(app->o.model.pattern),
            (unsigned long long)app->o.model.seed, app->o.speed);
    uv_timer_start(&app->tick, on_tick, SIM_TICK_MS, SIM_TICK_MS);
}

/* Loads the key; the appliance may not have created it yet, so missing files are retried. */
static void try_key(uv_timer_t *t)
{
    sim_app *app = t->data;
    char err[256];
    int rc = pw_keyfile_load(app->o.key_file, app->key, err, sizeof(err));
    bool missing = rc == PW_KEYFILE_E_MISSING;
    if (rc == 0) {
        uv_timer_stop(&app->key_retry);
        start_running(app);
        return;
    }
    if (!missing || uv_now(&app->loop) - app->key_wait_start >= SIM_KEY_WAIT_MS) {
        pw_error(SIM_COMP, "key file %s: %s%s", app->o.key_file, err,
                 missing ? " (the appliance creates it)" : "");
        shutdown_sim(app, 1);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&app->key_retry)) {
        pw_info(SIM_COMP, "waiting for the key file %s", app->o.key_file);
        uv_timer_start(&app->key_retry, try_key, SIM_KEY_RETRY_MS, SIM_KEY_RETRY_MS);
    }
}

/* Loads the facility and creates the model and per-device senders. Returns 0 or -1 (logged). */
static int load_facility(sim_app *app)
{
    pw_cfg_errors errs;
    char text[2048], err[160];
    app->cfg = pw_cfg_load(app->o.config, &errs);
    if (!app->cfg) {
        pw_cfg_errors_print(&errs, text, sizeof(text));
        pw_error(SIM_COMP, "config %s:\n%s", app->o.config, text);
        return -1;
    }
    pw_bal_facility f;
    pw_cfg_facility(app->cfg, &f);
    app->o.model.reaction_ms = f.params.reaction_ms ? f.params.reaction_ms : 5000;
    if (pw_sim_new(&f, &app->o.model, &app->model, err, sizeof(err)) != 0) {
        pw_error(SIM_COMP, "model: %s", err);
        return -1;
    }
    app->chargers = pw_xcalloc(app->cfg->n_chargers, sizeof(*app->chargers));
    /* LAN chargers send as their device id; OCPP chargers (device id 0) never send on the LAN. */
    for (size_t i = 0; i < app->cfg->n_chargers; i++)
        app->chargers[i].s.id = app->cfg->charger_links[i].device_id;
    app->meters = pw_xcalloc(app->cfg->n_nodes, sizeof(*app->meters));
    app->meter_energy_wh = pw_xcalloc(app->cfg->n_nodes, sizeof(*app->meter_energy_wh));
    for (size_t i = 0; i < app->cfg->n_nodes; i++)
        app->meters[i].id = app->cfg->meters[i].device_id;
    return 0;
}

static int init_loop(sim_app *app)
{
    if (uv_loop_init(&app->loop) != 0)
        return -1;
    uv_timer_init(&app->loop, &app->tick);
    uv_timer_init(&app->loop, &app->key_retry);
    uv_signal_init(&app->loop, &app->sig_int);
    uv_signal_init(&app->loop, &app->sig_term);
    app->tick.data = app->key_retry.data = app;
    app->sig_int.data = app->sig_term.data = app;
    uv_signal_start(&app->sig_int, on_signal, SIGINT);
    uv_signal_start(&app->sig_term, on_signal, SIGTERM);
    return 0;
}

static void free_app(sim_app *app)
{
    sim_modbus_free(app);
    sim_mqtt_free(app);
    sim_ocpp_free(app);
    if (app->report)
        fclose(app->report);
    pw_sim_free(app->model);
    pw_cfg_free(app->cfg);
    free(app->chargers);
    free(app->meters);
    free(app->meter_energy_wh);
}

int main(int argc, char **argv)
{
    static sim_app app;
    int rc = parse_args(argc, argv, &app.o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (load_facility(&app) != 0) {
        free_app(&app);
        return 1;
    }
    if (app.o.report && !(app.report = fopen(app.o.report, "a"))) {
        pw_error(SIM_COMP, "cannot open the report %s: %s", app.o.report, strerror(errno));
        free_app(&app);
        return 1;
    }
    app.boot_id = make_boot_id();
    pw_sim_impair_init(&app.tx_imp, app.o.loss, app.o.dup, app.o.reorder, app.o.model.seed ^ 0x7e);
    pw_sim_impair_init(&app.rx_imp, app.o.loss, app.o.dup, app.o.reorder, app.o.model.seed ^ 0x4e);
    if (init_loop(&app) != 0) {
        pw_error(SIM_COMP, "cannot initialise the event loop");
        free_app(&app);
        return 1;
    }
    app.key_wait_start = uv_now(&app.loop);
    try_key(&app.key_retry);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&app.loop);
    if (rc != 0) {
        pw_error(SIM_COMP, "handles left open at exit: %s", uv_strerror(rc));
        app.exit_code = 1;
    }
    free_app(&app);
    return app.exit_code;
}
