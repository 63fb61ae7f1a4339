/* The MQTT client connection (mqtt/conn.c) on a real loop: client ids, what pw_mqtt_conn_new
 * refuses (files that cannot be loaded, a certificate without TLS), a refused TCP connect told
 * through down() and the connection closed from inside that callback; and against Debian's
 * mosquitto started here on 127.0.0.1 (skipped without it): messages, SUBACKs, QoS 1
 * acknowledgements (none for QoS 0), a kept session, the last will published after a process
 * dies without a word and not after a clean close, and a close from inside the message
 * callback. Every test ends with uv_loop_close() == 0: every handle closed, nothing leaked. */
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pw_mqtt_conn.h"

#define MOSQUITTO "/usr/sbin/mosquitto"

extern char **environ;

/* A self-signed EC certificate, its key, another key and the key encrypted (pass "secret"). */
static const char CERT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBkzCCATmgAwIBAgIUHh8/YURR7ZoYvKaOQCsgQuEi78MwCgYIKoZIzj0EAwIw\n"
                               "HjEcMBoGA1UEAwwTcGhhc2V3aXNlIHVuaXQgdGVzdDAgFw0yNjEyMDYwMDQyMTla\n"
                               "GA8yMTI2MTExMjAwNDIxOVowHjEcMBoGA1UEAwwTcGhhc2V3aXNlIHVuaXQgdGVz\n"
                               "dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN/ckbE5BePrIbq1PRMxm4+J2kDe\n"
                               "L/09mw2arACgktmn0z6WInYDRafku3fUguoGxGbPfl3HuJS4OadjzFwGSrijUzBR\n"
                               "MB0GA1UdDgQWBBR3tuVKnpo+nv0Zxm7WzIAtv5EPEDAfBgNVHSMEGDAWgBR3tuVK\n"
                               "npo+nv0Zxm7WzIAtv5EPEDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA\n"
                               "MEUCIDQ8Rbko7bPbNV1lD9PM92hGTAW5WoJCCHkRFGX7iEuiAiEAqgkR8qAbVSdF\n"
                               "fHxbY6SNcZ8umpZ86cPbmoTsX/To51o=\n"
                               "-----END CERTIFICATE-----\n";
static const char KEY_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFdufY7wpBgzsQq8O\n"
                              "cvCGvMemi/CHgM6KKr584vSN39qhRANCAATf3JGxOQXj6yG6tT0TMZuPidpA3i/9\n"
                              "PZsNmqwAoJLZp9M+liJ2A0Wn5Lt31ILqBsRmz35dx7iUuDmnY8xcBkq4\n"
                              "-----END PRIVATE KEY-----\n";
static const char OTHER_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxukEQABUdd8YB4g0\n"
    "Cw3m8BTcZ8alqesddaGA68LFzVuhRANCAARuHHxX2XJRmdzhyF4Z4Dzb1FILl6vZ\n"
    "RNdh2KpR7jT3W6aCaYrWcZyiNny60EJfC1HaN1fyoh0fbAa15sc3M6i1\n"
    "-----END PRIVATE KEY-----\n";
static const char ENCRYPTED_KEY_PEM[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAifcxaCdlGq8wICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEJ8xMmr4B8PZaOlh8l1zBjoEgZDu\n"
    "RmoC1/7gcO+Umch/607Ni16kxLomtUFplZLJHiv08KunelqyVU34bnZaQtwuf+B/\n"
    "d2tWHpifc7B4jRfB38qwdcvYe9cePz+2FhcxECuBmZ/fNxXp8puvXlxcNMCakr7z\n"
    "/AeA0pp1fl5lAOu0YePFKtyj4hgOgEMi4NSjlKFQPQjRxbjPSXeycU53WHG0a1o=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

static char dir[64]; /* this run's temp dir: PEM files, the broker's config */
static pid_t broker_pid;
static uint16_t broker_port;

/* ---- helpers -------------------------------------------------------------------------------- */

static const char *path_of(const char *name)
{
    static char out[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(out[k], sizeof out[k], "%s/%s", dir, name);
    return out[k];
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A TCP port on 127.0.0.1 that nobody listens on (bound, then closed). */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool accepts(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static pw_mqtt_conn_opts opts_for(uint16_t port)
{
    pw_mqtt_conn_opts o = {.what = "mqtt test", .section = "mqtt", .clean_session = true};
    snprintf(o.broker.host, sizeof o.broker.host, "127.0.0.1");
    o.broker.port = port;
    o.broker.keepalive_s = 5;
    return o;
}

/* What one connection's callbacks saw; close_on_* closes it from inside that callback. */
typedef struct rec {
    pw_mqtt_conn *c;
    int ups, downs, messages, published, subscribed, after_close;
    bool session_present, retained, closed;
    int pub_mid, sub_mid, granted;
    char problem[256], topic[64], payload[64];
    bool close_on_down, close_on_message;
} rec;

static void closing(rec *r)
{
    pw_mqtt_conn_close(r->c);
    r->c = NULL;
    r->closed = true;
}

static void on_up(void *ud, bool session_present)
{
    rec *r = ud;
    r->after_close += r->closed;
    r->ups++;
    r->session_present = session_present;
}

static void on_down(void *ud, const char *problem)
{
    rec *r = ud;
    r->after_close += r->closed;
    r->downs++;
    snprintf(r->problem, sizeof r->problem, "%s", problem);
    if (r->close_on_down)
        closing(r);
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len, bool retained)
{
    rec *r = ud;
    r->after_close += r->closed;
    r->messages++;
    r->retained = retained;
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    snprintf(r->payload, sizeof r->payload, "%.*s", (int)len, (const char *)payload);
    if (r->close_on_message)
        closing(r);
}

static void on_published(void *ud, int mid)
{
    rec *r = ud;
    r->after_close += r->closed;
    r->published++;
    r->pub_mid = mid;
}

static void on_subscribed(void *ud, int mid, int n, const int *granted)
{
    rec *r = ud;
    r->after_close += r->closed;
    r->subscribed++;
    r->sub_mid = mid;
    r->granted = n > 0 ? granted[0] : -1;
}

static pw_mqtt_conn *open_conn(uv_loop_t *loop, const pw_mqtt_conn_opts *o, rec *r)
{
    pw_mqtt_conn_cb cb = {.ud = r,
                          .up = on_up,
                          .down = on_down,
                          .message = on_message,
                          .published = on_published,
                          .subscribed = on_subscribed};
    char err[256] = "";
    r->c = pw_mqtt_conn_new(loop, o, &cb, err, sizeof err);
    if (!r->c)
        fail_msg("pw_mqtt_conn_new: %s", err);
    return r->c;
}

/* Runs the loop until *flag is nonzero or ms have passed; returns *flag. */
static void on_tick(uv_timer_t *t)
{
    (void)t;
}
static int run_until(uv_loop_t *loop, const int *flag, uint64_t ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while (!*flag && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

/* Everything closed: the loop ends by itself and closes. */
static void finish(uv_loop_t *loop)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- without a broker ----------------------------------------------------------------------- */

static void test_client_id_for(void **state)
{
    (void)state;
    char id[64];
    pw_mqtt_conn_client_id_for("Demo Housing Co", NULL, id, sizeof id);
    assert_string_equal(id, "phasewise-DemoHousingCo"); /* 23: nothing cut */
    pw_mqtt_conn_client_id_for("Demo Housing Co.", "-pub", id, sizeof id);
    assert_string_equal(id, "phasewise-DemoHousi-pub"); /* the name is cut, not the suffix */
    assert_int_equal(strlen(id), 23);
    pw_mqtt_conn_client_id_for("Sølvberget 7", "-up", id, sizeof id);
    assert_string_equal(id, "phasewise-Slvberget7-up");
    pw_mqtt_conn_client_id_for("", NULL, id, sizeof id);
    assert_string_equal(id, "phasewise-");
    pw_mqtt_conn_client_id_for(NULL, "-x", id, sizeof id);
    assert_string_equal(id, "phasewise--x");
    char small[8];
    pw_mqtt_conn_client_id_for("Site", "-pub", small, sizeof small);
    assert_string_equal(small, "phasewi"); /* cut to the buffer, still terminated */
}

/* pw_mqtt_conn_new refuses opts, err saying why in words that name the config field. */
static void refused(const pw_mqtt_conn_opts *o, const char *want1, const char *want2)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256] = "";
    rec r = {0};
    pw_mqtt_conn_cb cb = {.ud = &r, .down = on_down};
    assert_null(pw_mqtt_conn_new(&loop, o, &cb, err, sizeof err));
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error '%s' lacks '%s' / '%s'", err, want1, want2 ? want2 : "");
    finish(&loop);
    assert_int_equal(r.downs, 0);
}

static void test_new_refuses(void **state)
{
    (void)state;
    write_file("c.pem", CERT_PEM);
    write_file("k.pem", KEY_PEM);
    write_file("other.pem", OTHER_KEY_PEM);
    write_file("enc.pem", ENCRYPTED_KEY_PEM);
    pw_mqtt_conn_opts o = opts_for(1883);
    o.broker.tls = true;
    snprintf(o.broker.ca_file, sizeof o.broker.ca_file, "%s", path_of("c.pem"));
    snprintf(o.broker.cert_file, sizeof o.broker.cert_file, "%s", path_of("missing.pem"));
    snprintf(o.broker.key_file, sizeof o.broker.key_file, "%s", path_of("k.pem"));
    refused(&o, "cannot load the client certificate from", "missing.pem (mqtt.cert_file)");
    o.section = "uplink"; /* the section named is the user's */
    refused(&o, "(uplink.cert_file)", NULL);
    o.section = "mqtt";
    snprintf(o.broker.cert_file, sizeof o.broker.cert_file, "%s", path_of("c.pem"));
    snprintf(o.broker.key_file, sizeof o.broker.key_file, "%s", path_of("other.pem"));
    refused(&o, "is not the client certificate's", "mqtt.key_file");
    snprintf(o.broker.key_file, sizeof o.broker.key_file, "%s", path_of("enc.pem"));
    refused(&o, "cannot load the private key", "pass phrase"); /* and no prompt */
    snprintf(o.broker.key_file, sizeof o.broker.key_file, "%s", path_of("nokey.pem"));
    refused(&o, "cannot load the private key", "nokey.pem");
    *o.broker.key_file = '\0';
    refused(&o, "set together", NULL);
    snprintf(o.broker.ca_file, sizeof o.broker.ca_file, "%s", path_of("noca.pem"));
    refused(&o, "cannot load the CA certificates", "(mqtt.ca_file)");

    o = opts_for(1883);
    snprintf(o.broker.cert_file, sizeof o.broker.cert_file, "%s", path_of("c.pem"));
    snprintf(o.broker.key_file, sizeof o.broker.key_file, "%s", path_of("k.pem"));
    refused(&o, "needs mqtt.tls", NULL);
    o = opts_for(1883);
    o.clean_session = false; /* a kept session is found by its client id */
    refused(&o, "needs a client id", NULL);
    o = opts_for(1883);
    *o.broker.host = '\0';
    refused(&o, "no broker (mqtt.host)", NULL);
}

/* Nothing listens: down() says so, once per attempt; closed from inside down(), nothing calls
 * back after, and every handle closes. A publish meanwhile is refused and counted. */
static void test_refused_connect_close_in_down(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    uint16_t port = free_port();
    pw_mqtt_conn_opts o = opts_for(port);
    rec r = {.close_on_down = true};
    pw_mqtt_conn *c = open_conn(&loop, &o, &r);
    assert_false(pw_mqtt_conn_up(c));
    assert_string_equal(pw_mqtt_conn_problem(c), ""); /* the first attempt has not run */
    assert_int_equal(pw_mqtt_conn_publish(c, "t", "x", 1, 1, false, NULL), -1);
    assert_int_equal(pw_mqtt_conn_subscribe(c, "t", 0, NULL), -1);
    assert_int_equal(pw_mqtt_conn_stats_get(c)->tx_errors, 1);
    assert_int_equal(pw_mqtt_conn_stats_get(c)->tx, 0);
    assert_true(run_until(&loop, &r.downs, 5000));
    char want[64];
    snprintf(want, sizeof want, "cannot connect to broker 127.0.0.1:%u", port);
    if (!strstr(r.problem, want) || !strstr(r.problem, "refused"))
        fail_msg("problem '%s'", r.problem);
    assert_null(r.c);
    finish(&loop); /* retry timer, misc timer and poll closed: the loop ends */
    assert_int_equal(r.downs, 1);
    assert_int_equal(r.after_close, 0);
}

/* Closed before the loop ran: no callback at all (none runs inside new or close either). */
static void test_close_at_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pw_mqtt_conn_opts o = opts_for(free_port());
    snprintf(o.broker.host, sizeof o.broker.host, "localhost");
    rec r = {0};
    open_conn(&loop, &o, &r);
    closing(&r);
    pw_mqtt_conn_close(NULL);
    finish(&loop);
    assert_int_equal(r.ups + r.downs + r.after_close, 0);
}

/* ---- against mosquitto ---------------------------------------------------------------------- */

static void need_broker(void)
{
    if (!broker_pid)
        skip();
}

/* A subscriber and a publisher: QoS 1 acknowledged by mid, QoS 0 not; SUBACK; retained flags. */
static void test_publish_subscribe(void **state)
{
    (void)state;
    need_broker();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pw_mqtt_conn_opts o = opts_for(broker_port);
    rec sub = {0}, pub = {0};
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-sub");
    open_conn(&loop, &o, &sub);
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-pub");
    open_conn(&loop, &o, &pub);
    assert_true(run_until(&loop, &sub.ups, 5000));
    assert_true(run_until(&loop, &pub.ups, 5000));
    assert_string_equal(pw_mqtt_conn_problem(sub.c), "");
    assert_string_equal(pw_mqtt_conn_client_id(pub.c), "pw-unit-pub");
    int mid = 0;
    assert_int_equal(pw_mqtt_conn_subscribe(sub.c, "unit/#", 1, &mid), 0);
    assert_true(run_until(&loop, &sub.subscribed, 5000));
    assert_int_equal(sub.sub_mid, mid);
    assert_int_equal(sub.granted, 1);

    assert_int_equal(pw_mqtt_conn_publish(pub.c, "unit/a", "zero", 4, 0, false, &mid), 0);
    assert_true(run_until(&loop, &sub.messages, 5000));
    assert_string_equal(sub.topic, "unit/a");
    assert_string_equal(sub.payload, "zero");
    assert_false(sub.retained);
    assert_int_equal(pub.published, 0); /* QoS 0: no acknowledgement */

    sub.messages = 0;
    assert_int_equal(pw_mqtt_conn_publish(pub.c, "unit/b", "one", 3, 1, true, &mid), 0);
    assert_true(run_until(&loop, &pub.published, 5000));
    assert_int_equal(pub.pub_mid, mid);
    assert_int_equal(pw_mqtt_conn_stats_get(pub.c)->tx, 2);
    assert_int_equal(pw_mqtt_conn_stats_get(pub.c)->connects, 1);
    assert_true(run_until(&loop, &sub.messages, 5000));
    assert_string_equal(sub.payload, "one");
    assert_false(sub.retained); /* live, though published retained */
    sub.messages = 0;
    assert_int_equal(pw_mqtt_conn_publish(pub.c, "unit/b", "", 0, 1, true, NULL), 0); /* clear */
    assert_true(run_until(&loop, &sub.messages, 5000));
    assert_int_equal(pw_mqtt_conn_stats_get(sub.c)->rx, 3);
    closing(&sub);
    closing(&pub);
    finish(&loop);
    assert_int_equal(sub.downs + pub.downs + sub.after_close + pub.after_close, 0);
}

/* Closed from inside its message callback (libmosquitto is on the stack then): nothing more is
 * delivered, and the connection is torn down once libmosquitto has returned. */
static void test_close_in_message(void **state)
{
    (void)state;
    need_broker();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pw_mqtt_conn_opts o = opts_for(broker_port);
    rec sub = {.close_on_message = true}, pub = {0};
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-sub2");
    open_conn(&loop, &o, &sub);
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-pub2");
    open_conn(&loop, &o, &pub);
    assert_true(run_until(&loop, &sub.ups, 5000));
    assert_true(run_until(&loop, &pub.ups, 5000));
    assert_int_equal(pw_mqtt_conn_subscribe(sub.c, "unit2/#", 0, NULL), 0);
    assert_true(run_until(&loop, &sub.subscribed, 5000));
    for (int i = 0; i < 20; i++) /* several in one read */
        assert_int_equal(pw_mqtt_conn_publish(pub.c, "unit2/x", "m", 1, 0, false, NULL), 0);
    assert_true(run_until(&loop, &sub.messages, 5000));
    int flag = 0;
    run_until(&loop, &flag, 300);
    assert_int_equal(sub.messages, 1);
    assert_int_equal(sub.after_close, 0);
    closing(&pub);
    finish(&loop);
}

/* The broker keeps a session with clean_session false: the same client id again finds it. */
static void test_session_kept(void **state)
{
    (void)state;
    need_broker();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pw_mqtt_conn_opts o = opts_for(broker_port);
    o.clean_session = false;
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-kept");
    rec a = {0}, b = {0};
    open_conn(&loop, &o, &a);
    assert_true(run_until(&loop, &a.ups, 5000));
    assert_false(a.session_present);
    assert_int_equal(pw_mqtt_conn_subscribe(a.c, "unit3/#", 1, NULL), 0);
    assert_true(run_until(&loop, &a.subscribed, 5000));
    closing(&a);
    open_conn(&loop, &o, &b);
    assert_true(run_until(&loop, &b.ups, 5000));
    assert_true(b.session_present);
    closing(&b);
    finish(&loop);
}

/* A child process connects with a will and dies without a DISCONNECT: the broker publishes
 * the will (retained here). A clean close sends a DISCONNECT: no will. */
static void run_with_will(const char *topic, bool clean)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        _exit(2);
    pw_mqtt_conn_opts o = opts_for(broker_port);
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-will%d", clean);
    o.will_topic = topic;
    o.will_payload = "offline";
    o.will_qos = 1;
    o.will_retain = true;
    rec r = {0};
    pw_mqtt_conn_cb cb = {.ud = &r, .up = on_up};
    char err[128];
    r.c = pw_mqtt_conn_new(&loop, &o, &cb, err, sizeof err);
    if (!r.c || !run_until(&loop, &r.ups, 5000))
        _exit(3);
    if (!clean)
        _exit(0); /* the socket goes with the process */
    closing(&r);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(uv_loop_close(&loop) == 0 ? 0 : 4);
}

static void test_will(void **state)
{
    (void)state;
    need_broker();
    for (int clean = 0; clean <= 1; clean++) {
        const char *topic = clean ? "unit4/clean" : "unit4/died";
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            run_with_will(topic, clean);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    pw_mqtt_conn_opts o = opts_for(broker_port);
    snprintf(o.client_id, sizeof o.client_id, "pw-unit-watch");
    rec r = {0};
    open_conn(&loop, &o, &r);
    assert_true(run_until(&loop, &r.ups, 5000));
    assert_int_equal(pw_mqtt_conn_subscribe(r.c, "unit4/#", 1, NULL), 0);
    assert_true(run_until(&loop, &r.messages, 5000));
    assert_string_equal(r.topic, "unit4/died");
    assert_string_equal(r.payload, "offline");
    assert_true(r.retained);
    int flag = 0;
    run_until(&loop, &flag, 500);
    assert_int_equal(r.messages, 1); /* none on unit4/clean */
    closing(&r);
    finish(&loop);
}

/* ---- the broker ------------------------------------------------------------------------------ */

static int start_broker(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pw-mqtt-conn-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (access(MOSQUITTO, X_OK) != 0) {
        print_message("no %s: the broker tests are skipped\n", MOSQUITTO);
        return 0;
    }
    broker_port = free_port();
    /* As root mosquitto would become user "mosquitto"; "user" keeps the one running the test. */
    struct passwd *pw = getpwuid(getuid());
    char conf[512];
    snprintf(conf, sizeof conf,
             "user %s\nallow_anonymous true\npersistence false\nlog_dest file %s/broker.log\n"
             "listener %u 127.0.0.1\n",
             pw ? pw->pw_name : "root", dir, broker_port);
    write_file("mosquitto.conf", conf);
    char *argv[] = {MOSQUITTO, "-c", (char *)path_of("mosquitto.conf"), NULL};
    if (posix_spawn(&broker_pid, MOSQUITTO, NULL, NULL, argv, environ) != 0) {
        broker_pid = 0;
        return -1;
    }
    for (int i = 0; i < 200 && !accepts(broker_port); i++)
        usleep(25000);
    return accepts(broker_port) ? 0 : -1;
}

static int stop_broker(void **state)
{
    (void)state;
    if (broker_pid) {
        kill(broker_pid, SIGTERM);
        waitpid(broker_pid, NULL, 0);
    }
    static const char *const files[] = {"c.pem",   "k.pem",          "other.pem",
                                        "enc.pem", "mosquitto.conf", "broker.log"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(path_of(files[i]));
    rmdir(dir);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_id_for),
        cmocka_unit_test(test_new_refuses),
        cmocka_unit_test(test_refused_connect_close_in_down),
        cmocka_unit_test(test_close_at_once),
        cmocka_unit_test(test_publish_subscribe),
        cmocka_unit_test(test_close_in_message),
        cmocka_unit_test(test_session_kept),
        cmocka_unit_test(test_will),
    };
    return cmocka_run_group_tests(tests, start_broker, stop_broker);
}
