/* The MQTT transport: node meters read from an MQTT broker (HAN/P1 bridges such as the AMS
 * reader) over the appliance's MQTT client connection (mqtt/conn.c: libmosquitto on the loop,
 * reconnecting with backoff). Payloads are parsed by the pure mqtt_feed.c; this file only
 * subscribes to the meters' topics and hands readings to the core. Meters only: it sends
 * nothing to chargers. A commissioning test read subscribes to a meter's topics on the same
 * connection for up to TEST_WAIT_MS, takes one reading for its answer (never for the core) and
 * unsubscribes from what no configured meter uses. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_feed.h"
#include "pw_mqtt_conn.h"
#include "pw_transport.h"
#include "pw_util.h"

#define TEST_WAIT_MS 10000 /* a test read waits this long for a reading */
#define REFUSED      0x80  /* a SUBACK's refusal (the broker's ACL does not let us read) */

struct mqtt;

/* A test read in flight: freed, and answered, once its timer has closed. */
typedef struct mq_test {
    struct mqtt *t;
    uv_timer_t timer; /* the deadline */
    pw_mqtt_feed feed;
    bool held[PW_LINES]; /* its topic k was subscribed for the test (no configured meter's) */
    int mid[PW_LINES];   /* the SUBSCRIBE of topic k, to match the broker's SUBACK */
    bool retained;       /* a retained message came, and was not taken */
    bool ended;
    pw_transport_test_done done;
    void *ud;
    uint64_t start_ns;
    pw_transport_test_result r;
} mq_test;

/* A meter topic's SUBSCRIBE waiting for the broker's answer. */
typedef struct mq_sub {
    int mid;
    char topic[PW_CFG_TOPIC_LEN];
} mq_sub;

typedef struct mqtt {
    pw_transport super;
    pw_transport_env env;
    const pw_cfg *cfg;  /* in force: the meters and their topics */
    pw_cfg_mqtt broker; /* as the appliance started: the connection is opened from it */
    bool started, activated, stopping;
    pw_mqtt_conn *conn;  /* NULL until a meter (or a test read) needs the broker */
    unsigned pending;    /* test timers not yet closed */
    char problem[200];   /* why there is no connection at all ("" if there is one) */
    pw_mqtt_feed *feeds; /* parallel to cfg->nodes */
    bool *is_feed;       /* the node's meter is an MQTT feed that init accepted */
    bool *denied;        /* the broker refused a subscription of the node's meter */
    char (*node_problem)[224];
    size_t n_nodes;
    mq_sub *subs; /* meter SUBSCRIBEs not yet answered */
    size_t n_subs, cap_subs;
    mq_test *test; /* the test read in flight, NULL if none */
    pw_transport_stats st;
} mqtt;

static bool connected(const mqtt *t)
{
    return pw_mqtt_conn_up(t->conn);
}

/* The broker connection's problem for people, "" when connected. */
static const char *broker_problem(const mqtt *t)
{
    return t->conn ? pw_mqtt_conn_problem(t->conn) : t->problem;
}

/* ---- lifetime -------------------------------------------------------------------------- */

static void free_mqtt(mqtt *t)
{
    free(t->feeds);
    free(t->is_feed);
    free(t->denied);
    free(t->node_problem);
    free(t->subs);
    free(t);
}

/* Stopping ends once every test timer is closed (the connection frees itself). */
static void unref(mqtt *t)
{
    if (--t->pending == 0 && t->stopping)
        free_mqtt(t);
}

__attribute__((format(printf, 2, 3))) static void set_problem(mqtt *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->problem, sizeof t->problem, fmt, ap);
    va_end(ap);
    pw_error("mqtt", "%s", t->problem);
}

/* ---- meter subscriptions ------------------------------------------------------------------ */

/* QoS 0: a lost reading is replaced by the next one; the stale budget covers a gap. The
 * message id is kept to tell the meter if the broker refuses. */
static int subscribe_meter_topic(mqtt *t, const char *topic)
{
    int mid = -1;
    if (pw_mqtt_conn_subscribe(t->conn, topic, 0, &mid) != 0)
        return -1;
    if (t->n_subs == t->cap_subs) {
        t->cap_subs = t->cap_subs ? 2 * t->cap_subs : 8;
        mq_sub *grown = pw_xcalloc(t->cap_subs, sizeof *grown);
        if (t->n_subs)
            memcpy(grown, t->subs, t->n_subs * sizeof *grown);
        free(t->subs);
        t->subs = grown;
    }
    t->subs[t->n_subs].mid = mid;
    pw_strlcpy(t->subs[t->n_subs].topic, topic, sizeof t->subs[t->n_subs].topic);
    t->n_subs++;
    return 0;
}

/* The broker answered a meter's SUBSCRIBE: a refusal becomes the problem of every meter that
 * reads the topic. */
static void meter_suback(mqtt *t, int mid, bool refused)
{
    for (size_t k = 0; k < t->n_subs; k++) {
        if (t->subs[k].mid != mid)
            continue;
        const char *topic = t->subs[k].topic;
        for (size_t i = 0; refused && i < t->n_nodes; i++) {
            if (!t->is_feed[i] || !pw_mqtt_feed_wants(&t->feeds[i], topic))
                continue;
            t->denied[i] = true;
            snprintf(t->node_problem[i], sizeof t->node_problem[i],
                     "broker %.48s:%u refused the subscription to %.64s: not authorised (the "
                     "broker's ACL, user \"%.24s\")",
                     t->broker.host, t->broker.port, topic, t->broker.username);
            pw_error("mqtt", "meter of node '%s': %s", t->cfg->nodes[i].name, t->node_problem[i]);
        }
        t->subs[k] = t->subs[--t->n_subs];
        return;
    }
}

static void subscribe_all(mqtt *t)
{
    size_t n = 0;
    t->n_subs = 0; /* a new connection: earlier SUBSCRIBEs are answered no more */
    for (size_t i = 0; i < t->n_nodes; i++) {
        if (!t->is_feed[i])
            continue;
        if (t->denied[i]) { /* asked again: the broker says anew */
            t->denied[i] = false;
            *t->node_problem[i] = '\0';
        }
        const char *topics[PW_LINES];
        size_t k = pw_mqtt_feed_topics(&t->feeds[i], topics);
        for (size_t j = 0; j < k; j++, n++)
            if (subscribe_meter_topic(t, topics[j]) != 0)
                pw_warn("mqtt", "cannot subscribe to %s", topics[j]);
    }
    pw_info("mqtt", "connected to broker %s:%u%s as %s; %zu meter topic%s", t->broker.host,
            t->broker.port, t->broker.tls ? " over TLS" : "", pw_mqtt_conn_client_id(t->conn), n,
            n == 1 ? "" : "s");
}

/* ---- test reads ---------------------------------------------------------------------------- */

/* Whether a configured meter (of the config in force) reads topic. */
static bool configured(const mqtt *t, const char *topic)
{
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->is_feed[i] && pw_mqtt_feed_wants(&t->feeds[i], topic))
            return true;
    return false;
}

static void on_test_closed(uv_handle_t *h)
{
    mq_test *x = h->data;
    mqtt *t = x->t;
    x->done(x->ud, &x->r);
    free(x);
    unref(t);
}

/* The test read is over: the reading it took, else error. Its own subscriptions go (unless a
 * meter saved meanwhile reads them); the answer goes out once the timer has closed. */
static void test_end(mqtt *t, const char *error)
{
    mq_test *x = t->test;
    if (!x || x->ended)
        return;
    x->ended = true;
    t->test = NULL;
    x->r.elapsed_ms = (uint32_t)((uv_hrtime() - x->start_ns) / 1000000u);
    if (!x->r.ok)
        pw_strlcpy(x->r.error, error ? error : "no reading", sizeof x->r.error);
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t k = 0; k < n; k++)
        if (x->held[k] && !t->stopping && connected(t) && !configured(t, topics[k]))
            pw_mqtt_conn_unsubscribe(t->conn, topics[k]);
    pw_debug("mqtt", "test read of %s: %s (%u ms)", n ? topics[0] : "no topic",
             x->r.ok ? "read" : x->r.error, x->r.elapsed_ms);
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, on_test_closed);
}

/* Subscribes to the test's topics that no configured meter has subscribed already. */
static void test_subscribe(mqtt *t)
{
    mq_test *x = t->test;
    if (!x || !connected(t))
        return;
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t k = 0; k < n; k++) {
        x->mid[k] = -1;
        if (configured(t, topics[k]))
            continue;
        if (pw_mqtt_conn_subscribe(t->conn, topics[k], 0, &x->mid[k]) != 0) {
            char why[sizeof x->r.error];
            snprintf(why, sizeof why, "cannot subscribe to %.160s: the client refused the topic",
                     topics[k]);
            test_end(t, why);
            return;
        }
        x->held[k] = true;
    }
}

/* A topic no longer configured that the test still reads: kept subscribed for it, and
 * unsubscribed when it ends. */
static bool test_keeps(mqtt *t, const char *topic)
{
    mq_test *x = t->test;
    if (!x)
        return false;
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t k = 0; k < n; k++) {
        if (strcmp(topics[k], topic) == 0) {
            x->held[k] = true;
            return true;
        }
    }
    return false;
}

/* A message on the test's topics: a reading ends the test, a refused message too (that is
 * what would happen to it), a message without currents (AMS list 1) or one line of several
 * waits for more. Retained messages are no readings, as for the meters. */
static void test_message(mqtt *t, const char *topic, const void *payload, size_t len, bool retained)
{
    mq_test *x = t->test;
    if (!pw_mqtt_feed_wants(&x->feed, topic))
        return;
    if (retained) {
        x->retained = true;
        return;
    }
    double amps[PW_LINES];
    int rc = pw_mqtt_feed_input(&x->feed, topic, payload, len, uv_now(t->env.loop), amps);
    if (rc == PW_MQTT_FEED_READING) {
        x->r.ok = true;
        memcpy(x->r.line_a, amps, sizeof x->r.line_a);
        test_end(t, NULL);
    } else if (rc < 0) {
        char why[sizeof x->r.error];
        snprintf(why, sizeof why, "topic %.128s: %s", topic, x->feed.note);
        test_end(t, why);
    }
}

/* The SUBACK of a test's topic: a refusal ends the test. */
static bool test_suback(mqtt *t, int mid, bool refused)
{
    mq_test *x = t->test;
    if (!x)
        return false;
    const char *topics[PW_LINES];
    size_t k = pw_mqtt_feed_topics(&x->feed, topics);
    for (size_t i = 0; i < k; i++) {
        if (!x->held[i] || x->mid[i] != mid)
            continue;
        if (refused) {
            char why[sizeof x->r.error];
            snprintf(why, sizeof why,
                     "broker %.64s:%u refused the subscription to %.80s: user \"%.63s\" is not "
                     "authorised to read it (the broker's ACL)",
                     t->broker.host, t->broker.port, topics[i], t->broker.username);
            test_end(t, why);
        }
        return true;
    }
    return false;
}

static void on_test_timer(uv_timer_t *timer)
{
    mq_test *x = timer->data;
    mqtt *t = x->t;
    char why[sizeof x->r.error];
    const char *topics[PW_LINES];
    size_t n = pw_mqtt_feed_topics(&x->feed, topics);
    char list[200] = "";
    for (size_t k = 0; k < n; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", topics[k]);
    const char *problem = broker_problem(t);
    if (!connected(t))
        snprintf(why, sizeof why, "not connected to broker %s:%u within %u s%s%s", t->broker.host,
                 t->broker.port, TEST_WAIT_MS / 1000, *problem ? ": " : "", problem);
    else if (x->feed.fresh)
        snprintf(why, sizeof why,
                 "not every line arrived within %u s (topics %s): a reading needs them all "
                 "within %u ms of each other",
                 TEST_WAIT_MS / 1000, list, x->feed.window_ms);
    else
        snprintf(why, sizeof why, "no message on %s %s within %u s%s", n > 1 ? "topics" : "topic",
                 list, TEST_WAIT_MS / 1000,
                 x->retained ? " (only a retained message, which may be hours old: the bridge "
                               "must publish while phasewise listens)"
                             : "");
    test_end(t, why);
}

/* ---- the connection's callbacks ------------------------------------------------------------ */

static void on_up(void *ud, bool session_present)
{
    (void)session_present; /* a clean session: the broker has forgotten every subscription */
    mqtt *t = ud;
    subscribe_all(t);
    test_subscribe(t);
}

static void on_subscribed(void *ud, int mid, int n, const int *granted)
{
    mqtt *t = ud;
    bool refused = n >= 1 && granted[0] == REFUSED;
    if (!test_suback(t, mid, refused))
        meter_suback(t, mid, refused);
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    mqtt *t = ud;
    t->st.rx++;
    if (t->test)
        test_message(t, topic, payload, len, retained);
    /* A retained message is the last one the broker kept, maybe from hours ago: taken as a
     * reading it would hide a meter that has gone silent. Live ones arrive with retain 0. */
    if (retained)
        return;
    uint64_t now = uv_now(t->env.loop);
    bool taken = false;
    for (size_t i = 0; i < t->n_nodes; i++) {
        pw_mqtt_feed *f = &t->feeds[i];
        if (!t->is_feed[i] || !pw_mqtt_feed_wants(f, topic))
            continue;
        double amps[PW_LINES];
        int rc = pw_mqtt_feed_input(f, topic, payload, len, now, amps);
        if (rc == PW_MQTT_FEED_READING) {
            *t->node_problem[i] = '\0';
            taken |= pw_ctl_meter_report(t->env.ctl, i, amps, now) == 0;
        } else if (rc == PW_MQTT_FEED_PARTIAL) {
            taken = true;
        } else if (rc < 0) {
            snprintf(t->node_problem[i], sizeof t->node_problem[i], "topic %.96s: %s", topic,
                     f->note);
            pw_ctl_rejected(t->env.ctl, "mqtt", pw_mqtt_feed_reason(rc), f->note);
        }
    }
    t->st.rx_accepted += taken;
}

/* ---- the client -------------------------------------------------------------------------- */

static bool has_feeds(const mqtt *t)
{
    for (size_t i = 0; i < t->n_nodes; i++)
        if (t->is_feed[i])
            return true;
    return false;
}

/* Opens the broker connection, once: a failure is reported, not retried at each reload. The
 * client id is mqtt.client_id, else made from the site's name. */
static int activate(mqtt *t)
{
    t->activated = true;
    pw_mqtt_conn_opts o = {
        .what = "mqtt", .section = "mqtt", .broker = t->broker, .clean_session = true};
    if (!*t->broker.client_id)
        pw_mqtt_conn_client_id_for(t->env.cfg->site_name, NULL, o.client_id, sizeof o.client_id);
    pw_mqtt_conn_cb cb = {.ud = t, .up = on_up, .message = on_message, .subscribed = on_subscribed};
    pw_info("mqtt", "meter feeds from broker %s:%u%s", t->broker.host, t->broker.port,
            t->broker.tls ? " over TLS" : "");
    char err[256];
    t->conn = pw_mqtt_conn_new(t->env.loop, &o, &cb, err, sizeof err);
    if (!t->conn) {
        set_problem(t, "%s", err);
        return -1;
    }
    *t->problem = '\0';
    return 0;
}

/* The feeds of cfg's MQTT meters; a meter whose settings report no line is logged. */
static void build_feeds(mqtt *t, const pw_cfg *cfg)
{
    free(t->feeds);
    free(t->is_feed);
    free(t->denied);
    free(t->node_problem);
    t->n_nodes = cfg->n_nodes;
    t->feeds = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->feeds);
    t->is_feed = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->is_feed);
    t->denied = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->denied);
    t->node_problem = pw_xcalloc(cfg->n_nodes + 1, sizeof *t->node_problem);
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        if (cfg->meters[i].kind != PW_CFG_LINK_MQTT || !cfg->meter_opts)
            continue;
        int rc = pw_mqtt_feed_init(&t->feeds[i], &cfg->meters[i], &cfg->meter_opts[i]);
        t->is_feed[i] = rc == 0;
        if (rc != 0) {
            snprintf(t->node_problem[i], sizeof t->node_problem[i], "%s", t->feeds[i].note);
            pw_error("mqtt", "meter of node '%s': %s", cfg->nodes[i].name, t->feeds[i].note);
        }
    }
    t->cfg = cfg;
}

/* ---- ops --------------------------------------------------------------------------------- */

static int mqtt_start(pw_transport *t_, const pw_transport_env *env, char *err, size_t err_size)
{
    (void)err;
    (void)err_size;
    mqtt *t = (mqtt *)t_;
    t->env = *env;
    t->broker = env->cfg->mqtt;
    t->started = true;
    build_feeds(t, env->cfg);
    if (!*t->broker.host) {
        if (has_feeds(t))
            set_problem(t, "MQTT meters are configured but no broker (mqtt.host)");
        return 0;
    }
    /* A broker that cannot be reached or a bad CA file leaves these meters stale (the nodes
     * are budgeted conservatively) and says so; it is no reason to stop balancing. */
    if (has_feeds(t))
        activate(t);
    return 0;
}

static void mqtt_timing(const pw_transport *t, const pw_cfg *cfg, pw_bal_timing *out)
{
    (void)t;
    (void)cfg;
    *out = (pw_bal_timing){0}; /* no chargers speak it */
}

static void topic_set(const mqtt *t, const char **out, size_t *n, size_t max)
{
    *n = 0;
    for (size_t i = 0; i < t->n_nodes; i++) {
        const char *k[PW_LINES];
        size_t m = t->is_feed[i] ? pw_mqtt_feed_topics(&t->feeds[i], k) : 0;
        for (size_t j = 0; j < m && *n < max; j++)
            out[(*n)++] = k[j];
    }
}

static bool in_set(const char *const *set, size_t n, const char *topic)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], topic) == 0)
            return true;
    return false;
}

/* Meters may come, go or change topics at once; the broker settings stay as started. */
static void mqtt_reconfigure(pw_transport *t_, const pw_cfg *cfg)
{
    mqtt *t = (mqtt *)t_;
    size_t max = PW_LINES * (t->n_nodes > cfg->n_nodes ? t->n_nodes : cfg->n_nodes) + 1;
    char(*old)[PW_CFG_TOPIC_LEN] = pw_xcalloc(max, sizeof *old);
    const char **oldp = pw_xcalloc(max, sizeof *oldp), **newp = pw_xcalloc(max, sizeof *newp);
    size_t n_old, n_new;
    topic_set(t, oldp, &n_old, max);
    for (size_t i = 0; i < n_old; i++) {
        pw_strlcpy(old[i], oldp[i], sizeof old[i]);
        oldp[i] = old[i];
    }
    build_feeds(t, cfg);
    topic_set(t, newp, &n_new, max);
    if (connected(t)) {
        for (size_t i = 0; i < n_old; i++)
            if (!in_set(newp, n_new, oldp[i]) && !test_keeps(t, oldp[i]))
                pw_mqtt_conn_unsubscribe(t->conn, oldp[i]);
        for (size_t i = 0; i < n_new; i++)
            if (!in_set(oldp, n_old, newp[i]))
                subscribe_meter_topic(t, newp[i]);
    } else if (!t->activated && *t->broker.host && n_new && !t->stopping && t->started) {
        activate(t);
    }
    free(old);
    free(oldp);
    free(newp);
}

static void mqtt_stats(const pw_transport *t, pw_transport_stats *out)
{
    *out = ((const mqtt *)t)->st;
    out->react = NULL;
}

static int mqtt_meter_problem(const pw_transport *t_, size_t node, char *out, size_t out_size)
{
    const mqtt *t = (const mqtt *)t_;
    if (node >= t->n_nodes || (!t->is_feed[node] && !*t->node_problem[node]))
        return 0;
    const char *problem = broker_problem(t);
    if (*problem && !connected(t))
        snprintf(out, out_size, "%s", problem);
    else if (*t->node_problem[node])
        snprintf(out, out_size, "%s", t->node_problem[node]);
    else
        return 0;
    return 1;
}

/* One reading from the meter's topics through the broker connection in use (opened now if no
 * meter needed it yet), within TEST_WAIT_MS. */
static int mqtt_test_read(pw_transport *t_, const pw_cfg_link *link, const pw_cfg_meter_opts *opts,
                          pw_transport_test_done done, void *ud)
{
    mqtt *t = (mqtt *)t_;
    if (t->test || t->stopping || !t->started)
        return PW_TRANSPORT_TEST_BUSY;
    mq_test *x = pw_xcalloc(1, sizeof *x);
    x->t = t;
    x->done = done;
    x->ud = ud;
    x->start_ns = uv_hrtime();
    for (size_t l = 0; l < PW_LINES; l++)
        x->r.line_a[l] = NAN;
    snprintf(x->r.map, sizeof x->r.map, "MQTT feed, preset %s", opts->preset);
    uv_timer_init(t->env.loop, &x->timer);
    x->timer.data = x;
    t->pending++;
    t->test = x;
    char why[sizeof x->r.error];
    if (pw_mqtt_feed_init(&x->feed, link, opts) != 0) {
        test_end(t, x->feed.note);
        return 0;
    }
    if (!*t->broker.host) {
        test_end(t, "no MQTT broker is configured (mqtt.host): the broker connection is opened "
                    "at start, so save the broker settings and restart first");
        return 0;
    }
    if (!t->activated)
        activate(t); /* no meter needed the broker yet */
    if (!t->conn) {
        snprintf(why, sizeof why, "no MQTT client: %s", *t->problem ? t->problem : "not set up");
        test_end(t, why);
        return 0;
    }
    if (connected(t)) {
        test_subscribe(t);
    } else if (*broker_problem(t)) {
        snprintf(why, sizeof why, "not connected to the broker: %s", broker_problem(t));
        test_end(t, why);
    }
    if (!x->ended)
        uv_timer_start(&x->timer, on_test_timer, TEST_WAIT_MS, 0);
    return 0;
}

static void mqtt_stop(pw_transport *t_)
{
    mqtt *t = (mqtt *)t_;
    t->stopping = true;
    if (t->test)
        test_end(t, "the appliance is shutting down");
    pw_mqtt_conn_close(t->conn); /* frees itself once its handles have closed */
    t->conn = NULL;
    if (t->pending == 0) /* else the last test timer's close frees it */
        free_mqtt(t);
}

static const pw_transport_ops mqtt_ops = {
    .name = "mqtt",
    .kind = PW_CFG_LINK_MQTT,
    .start = mqtt_start,
    .timing = mqtt_timing,
    .send = NULL, /* meters only */
    .reconfigure = mqtt_reconfigure,
    .stats = mqtt_stats,
    .meter_problem = mqtt_meter_problem,
    .test_read = mqtt_test_read,
    .stop = mqtt_stop,
};

pw_transport *pw_tr_mqtt_new(void)
{
    mqtt *t = pw_xcalloc(1, sizeof *t);
    t->super.ops = &mqtt_ops;
    return &t->super;
}
