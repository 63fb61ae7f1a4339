#!/usr/bin/env python3
"""MQTT meter feeds against Debian's mosquitto broker, started by the test on loopback with a
password file (mosquitto_passwd) and no anonymous access, readings published with Debian's
mosquitto_pub:

1. the main meter read through each preset (ams, json, plain) lands in /api/state's
   measured_a; an AMS message without currents changes nothing, a malformed one is counted as
   refused;
2. the broker killed: the node goes stale within its timeout, the meter names the problem and
   no line is planned above its limit; the broker back on the same port: readings resume;
3. a wrong password: the appliance logs the broker's refusal and the node is stale;
4. TLS with a CA and a server certificate made here with openssl (for "localhost" only):
   readings through mqtt.host "localhost" with ca_file; mqtt.host "127.0.0.1" is refused as a
   name the certificate is not for;
5. the commissioning page's test read (POST /api/meters/test) through the running broker
   connection: a good reading on a topic no meter uses (unsubscribed after: its messages are no
   longer received) and on the configured meter's own topic (which stays subscribed), a
   malformed payload named, a silent topic timing out after 10 s, the broker's refusal of a
   wrong password, and a shutdown with a test read in flight (exit 0).

Each appliance run ends with SIGTERM and must exit 0 (every handle closed, uv_loop_close 0).
Every process is started in the test's temp dir and killed by pid at the end, also on
failure."""
import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time

import fault_common as fc
import pwtest
from pwtest import check, log

USER, PASSWORD = "meter", "m3ter-secret"
TIMEOUT_S = 3  # the main meter's stale timeout in this test's configs
LIMIT_A = 100
READING_WAIT_S = 15  # subscribe after connect, the first reading after that


def tool(name):
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                       if os.path.exists(p)), None)
    check(path, f"{name} not found: docker/install-deps.sh installs Debian's mosquitto, "
                f"mosquitto-clients and openssl")
    return path


class Broker:
    """Debian's mosquitto with a plain and a TLS listener on 127.0.0.1, restartable on the
    same ports."""

    def __init__(self, procs, tmp, tls_files):
        self.procs, self.tmp = procs, tmp
        self.port, self.tls_port = pwtest.free_tcp_port(), pwtest.free_tcp_port()
        passwd = os.path.join(tmp, "passwd")
        subprocess.run([tool("mosquitto_passwd"), "-c", "-b", passwd, USER, PASSWORD],
                       check=True, timeout=10, capture_output=True)
        ca, cert, key = tls_files
        self.conf = os.path.join(tmp, "mosquitto.conf")
        with open(self.conf, "w") as f:
            # As root, mosquitto would switch to user "mosquitto", who cannot read this temp
            # dir; "user" names the one running the test (no effect when not root).
            f.write(f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
                    f"per_listener_settings false\nallow_anonymous false\n"
                    f"password_file {passwd}\npersistence false\nlog_dest stdout\n"
                    f"log_type error\nlog_type warning\nlog_type notice\n"
                    f"listener {self.port} 127.0.0.1\n"
                    f"listener {self.tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\n"
                    f"keyfile {key}\n")
        self.proc = None
        self.runs = 0

    def start(self):
        self.runs += 1
        self.proc = self.procs.start(f"mosquitto-{self.runs}", [tool("mosquitto"), "-c",
                                                                self.conf])

        def listening():
            check(self.proc.poll() is None, f"mosquitto exited: {self.procs.tail(self.proc)}")
            for port in (self.port, self.tls_port):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) != 0:
                        return False
            return True
        pwtest.wait_for("the broker's listeners", listening, 10, 0.05)

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def make_tls(tmp):
    """A CA and a server certificate for DNS name "localhost" only, by openssl."""
    openssl = tool("openssl")
    v = subprocess.run([openssl, "version"], capture_output=True, text=True, timeout=10)
    check(v.returncode == 0, f"openssl version failed: {v.stderr}")
    log(f"{v.stdout.strip()}")
    d = os.path.join(tmp, "tls")
    os.mkdir(d)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    cert, key, csr = (os.path.join(d, n) for n in ("server.pem", "server.key", "server.csr"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def run(*args):
        r = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"openssl {args[0]} failed: {r.stderr}")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "2", "-subj", "/CN=phasewise test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
        "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out",
        cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def publish(port, topic, payload, ca=None, password=PASSWORD):
    """One message with mosquitto_pub; False if the broker did not take it."""
    args = [tool("mosquitto_pub"), "-p", str(port), "-u", USER, "-P", password, "-t", topic,
            "-m", payload, "-q", "0"]
    args += ["-h", "localhost", "--cafile", ca] if ca else ["-h", "127.0.0.1"]
    try:
        return subprocess.run(args, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ams_payload(i1, i2, i3):
    """The AMS reader's list 2 message as its firmware prints it (json2 template)."""
    return ("{\n    \"id\" : \"a4cf12f3c0de\",\n    \"name\" : \"ams-c0de\",\n    \"up\" : 86400,"
            "\n    \"t\" : 1700000000,\n    \"vcc\" : 3.286,\n    \"rssi\": -61,\n"
            "    \"temp\": 22.50,\n    \"data\" : {\n        \"lv\" : \"AIDON_V0001\",\n"
            "        \"id\" : \"7359992890941742\",\n        \"type\" : \"6525\",\n"
            f"        \"P\" : 7412,\n        \"Q\" : 0,\n        \"PO\" : 0,\n        \"QO\" : 312,"
            f"\n        \"I1\" : {i1:.2f},\n        \"I2\" : {i2:.2f},\n        \"I3\" : {i3:.2f},"
            "\n        \"U1\" : 231.20,\n        \"U2\" : 230.80,\n        \"U3\" : 232.00\n    },"
            "\n    \"realtime\" : {\n        \"h\" : 1.20,\n        \"d\" : 24.5,\n"
            "        \"t\" : 10,\n        \"x\" : 5.10,\n        \"he\" : 0.00,\n"
            "        \"de\" : 0.0\n    }\n}\n")


AMS_LIST1 = ('{"id":"a4cf12f3c0de","name":"ams-c0de","up":86402,"t":1700000002,"vcc":3.286,'
             '"rssi":-61,"temp":22.50,"data":{"P":7398},"realtime":{"h":1.2,"d":24.5,"t":10}}')

FEEDS = {
    "ams": ({"preset": "ams", "topic": "ams/meter"},
            lambda a: [("ams/meter", ams_payload(*a))]),
    "json": ({"preset": "json", "topic": "tele/meter/SENSOR",
              "paths": ["ENERGY.Current.0", "ENERGY.Current.1", "ENERGY.Current.2"]},
             lambda a: [("tele/meter/SENSOR", json.dumps(
                 {"Time": "2024-01-01T18:00:00", "ENERGY": {"Total": 1234.5,
                                                            "Current": list(a)}}))]),
    "plain": ({"preset": "plain", "topics": ["p1/meter/l1/current", "p1/meter/l2/current",
                                             "p1/meter/l3/current"]},
              lambda a: [(f"p1/meter/l{k + 1}/current", f"{a[k]:.2f}") for k in range(3)]),
}


def write_config(tmp, name, feed, broker):
    http_port = pwtest.free_tcp_port()
    cfg = pwtest.test_config(http_port, pwtest.free_udp_port())
    cfg["nodes"][0]["limit_a"] = LIMIT_A
    cfg["nodes"][0]["meter"] = {"link": {"mqtt": feed}, "timeout_s": TIMEOUT_S,
                                "fallback_a": 40}
    # Three offline chargers: what they may draw (failsafe) plus the stale budget fits the fuse.
    cfg["chargers"] = cfg["chargers"][:3]
    cfg["mqtt"] = dict({"host": "127.0.0.1", "username": USER, "password": PASSWORD,
                        "keepalive_s": 5}, **broker)
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path, http_port


def main_node(port):
    return fc.state(port)["nodes"][0]


def reading_is(port, amps):
    m = main_node(port)
    return (not m["meter"]["stale"] and
            all(abs(x - y) < 0.051 for x, y in zip(m["measured_a"], amps)))


def publish_until(port, broker_port, messages, amps, what, ca=None):
    """Publishes until the appliance shows the reading: its subscription follows its connect,
    so the first messages may go to nobody (QoS 0, not retained)."""
    def shown():
        for topic, payload in messages:
            publish(broker_port, topic, payload, ca)
        time.sleep(0.2)
        return reading_is(port, amps)
    pwtest.wait_for(what, shown, READING_WAIT_S, 0.1)


def check_planned(node, what):
    for line in range(3):
        check(node["planned_a"][line] <= node["limit_a"][line] + 1e-6,
              f"{what}: L{line + 1} planned at {node['planned_a'][line]} A above its "
              f"{node['limit_a'][line]} A limit")


def stop_appliance(procs, pw, what):
    rc = procs.stop(pw)
    check(rc == 0, f"{what}: the appliance exited {rc}, not 0: {procs.tail(pw)}")


def log_text(p):
    with open(p.logfile, errors="replace") as f:
        return f.read()


def run_preset(procs, tmp, broker, preset, binary):
    feed, messages = FEEDS[preset]
    cfg, port = write_config(tmp, preset, feed, {"port": broker.port})
    pw = fc.start_appliance(procs, tmp, cfg, port, binary, name=f"phasewise-{preset}")
    amps = (11.1, 7.5, 9.2)
    publish_until(port, broker.port, messages(amps), amps, f"the {preset} reading")
    check_planned(main_node(port), preset)
    log(f"{preset}: measured_a {main_node(port)['measured_a']}")
    if preset == "ams":
        # List 1 (power only) shares the topic: not a reading, not refused.
        check(publish(broker.port, "ams/meter", AMS_LIST1), "mosquitto_pub failed")
        time.sleep(0.3)
        check(reading_is(port, amps), "an AMS list-1 message changed the reading")
        check(fc.metrics(port).get(
            'phasewise_datagrams_rejected_total{transport="mqtt",reason="malformed"}', 0) == 0,
            "an AMS list-1 message was counted as refused")
    if preset == "json":
        for bad in ('{"ENERGY":{"Current":[1,2]}}', "not json", '{"ENERGY":{"Current":[1,"x",3]}}'):
            check(publish(broker.port, "tele/meter/SENSOR", bad), "mosquitto_pub failed")
        pwtest.wait_for("the refused messages counted", lambda: fc.metrics(port).get(
            'phasewise_datagrams_rejected_total{transport="mqtt",reason="malformed"}', 0) == 3,
            5)
        check(all(abs(x - y) < 0.051 for x, y in zip(main_node(port)["measured_a"], amps)),
              "a refused message changed the reading")
        log("json: 3 malformed messages refused and counted, the reading kept")
    return pw, port


def received(port):
    return fc.metrics(port).get('phasewise_datagrams_received_total{transport="mqtt"}', 0)


def publishing(broker_port, messages, every=0.3):
    """Publishes messages in a thread until the returned stop() is called."""
    stop = threading.Event()

    def run():
        while not stop.is_set():
            for topic, payload in messages:
                publish(broker_port, topic, payload)
            stop.wait(every)
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def end():
        stop.set()
        t.join(15)
    return end


def test_read(port, auth, feed, what, ok, bound_s=14):
    t0 = time.monotonic()
    st, body = pwtest.meter_test_read(port, auth, {"link": {"mqtt": feed}})
    took = time.monotonic() - t0
    check(st == 200, f"test read ({what}) answered {st}: {body}")
    check(body["ok"] == ok, f"test read ({what}): ok is {body['ok']}, not {ok}: {body}")
    check(took <= bound_s, f"test read ({what}) took {took:.1f} s")
    log(f"test read, {what}: {body.get('line_a') if ok else body['error']} "
        f"({body['elapsed_ms']} ms)")
    return body


def test_reads(broker, port):
    """Test reads through the running broker connection of the ams appliance."""
    auth = pwtest.admin_headers(port)
    # A plain feed on topics no meter uses: subscribed for the test, unsubscribed after.
    feed, messages = FEEDS["plain"]
    amps = (3.3, 4.4, 5.5)
    end = publishing(broker.port, messages(amps))
    try:
        body = test_read(port, auth, feed, "plain topics no meter uses", True)
    finally:
        end()
    check(all(abs(x - y) < 0.001 for x, y in zip(body["line_a"], amps)),
          f"test read values {body['line_a']} for {amps}")
    check(reading_is(port, (11.1, 7.5, 9.2)), "a test read's values reached the balancer")
    time.sleep(0.5)
    before = received(port)
    for topic, payload in messages(amps):
        check(publish(broker.port, topic, payload), "mosquitto_pub failed")
    time.sleep(0.5)
    check(received(port) == before, "the test's topics are still subscribed after it ended")

    # The configured meter's own topic: read, and still subscribed for the meter afterwards.
    feed, messages = FEEDS["ams"]
    amps = (16.1, 17.2, 18.3)
    end = publishing(broker.port, messages(amps))
    try:
        test_read(port, auth, feed, "the configured meter's topic", True)
    finally:
        end()
    amps = (12.5, 13.5, 14.5)
    publish_until(port, broker.port, messages(amps), amps, "readings after the test read")

    # A malformed payload is named at once.
    json_feed = FEEDS["json"][0]
    end = publishing(broker.port, [("tele/meter/SENSOR", "not json")])
    try:
        body = test_read(port, auth, json_feed, "malformed payload", False, 5)
    finally:
        end()
    check("tele/meter/SENSOR" in body["error"], f"malformed: {body['error']!r}")

    # Nobody publishes: the answer comes after 10 s.
    body = test_read(port, auth, {"preset": "ams", "topic": "ams/silent"}, "silent topic", False)
    check("no message on topic ams/silent within 10 s" in body["error"] and
          body["elapsed_ms"] >= 9900, f"silent topic: {body}")


def shutdown_in_flight(procs, pw, port):
    """SIGTERM while a test read waits for a message: still exit 0."""
    auth = pwtest.admin_headers(port)
    answers = []

    def ask():
        try:
            answers.append(pwtest.meter_test_read(port, auth, {"link": {"mqtt": {
                "preset": "ams", "topic": "ams/silent"}}}))
        except OSError as e:
            answers.append(e)
    t = threading.Thread(target=ask, daemon=True)
    t.start()
    time.sleep(1)
    stop_appliance(procs, pw, "a test read in flight")
    t.join(15)
    log(f"stopped with a test read in flight: exit 0; the read got {answers}")


def outage(procs, broker, pw, port):
    """Broker killed while readings flow: stale within the timeout, then back."""
    feed, messages = FEEDS["ams"]
    stop = threading.Event()
    amps = [20.0, 21.0, 22.0]

    def publisher():
        while not stop.is_set():
            for topic, payload in messages(amps):
                publish(broker.port, topic, payload)
            stop.wait(0.5)
    t = threading.Thread(target=publisher, daemon=True)
    t.start()
    try:
        pwtest.wait_for("readings flowing", lambda: reading_is(port, amps), 10)
        fc.wait_planning(port)  # its chargers never speak: the balancer runs once it is over
        broker.kill()
        t_kill = time.monotonic()
        log(f"broker killed (pid {broker.proc.pid})")
        node = pwtest.wait_for("the node stale", lambda: (lambda m: m if m["meter"]["stale"]
                                                          else None)(main_node(port)),
                               TIMEOUT_S + 3, 0.1)
        took = time.monotonic() - t_kill
        check(took <= TIMEOUT_S + 2.0, f"stale only after {took:.1f} s (timeout {TIMEOUT_S} s)")
        problem = node["meter"].get("problem", "")
        check("broker" in problem, f"the meter names no broker problem: {node['meter']}")
        check_planned(node, "broker down")
        alerts = [a["text"] for a in fc.state(port)["alerts"]]
        check(any("stale" in a for a in alerts), f"no stale alert: {alerts}")
        log(f"stale {took:.1f} s after the kill: '{problem}', planned {node['planned_a']} A")
        for _ in range(6):  # stays within limits while the broker is away
            check_planned(main_node(port), "broker down")
            time.sleep(0.5)
        check(pw.poll() is None, "the appliance exited with the broker down")
        amps[:] = [5.5, 6.5, 7.5]
        broker.start()
        t_back = time.monotonic()
        pwtest.wait_for("readings after the broker's restart", lambda: reading_is(port, amps),
                        20)
        log(f"broker back: readings resumed after {time.monotonic() - t_back:.1f} s")
    finally:
        stop.set()
        t.join(15)


def wrong_password(procs, tmp, broker, binary):
    feed, messages = FEEDS["ams"]
    cfg, port = write_config(tmp, "badpw", feed, {"port": broker.port, "password": "wrong"})
    pw = fc.start_appliance(procs, tmp, cfg, port, binary, name="phasewise-badpw")
    pwtest.wait_for("the broker's refusal in the log",
                    lambda: "refused the connection" in log_text(pw), 10)
    for topic, payload in messages((9.0, 9.0, 9.0)):
        publish(broker.port, topic, payload)
    fc.wait_planning(port)  # no meter reading and no charger: the balancer runs after 30 s
    # The state document follows within a tick.
    node = pwtest.wait_for("the node stale, its meter naming the password", lambda: (
        lambda m: m if m["meter"]["stale"] and "mqtt.password" in m["meter"].get("problem", "")
        else None)(main_node(port)), 5)
    check_planned(node, "wrong password")
    line = next(l for l in log_text(pw).splitlines() if "refused the connection" in l)
    log(f"wrong password: '{line.strip()}'; node stale")
    body = test_read(port, pwtest.admin_headers(port), feed, "wrong password", False, 3)
    check("not authorised" in body["error"], f"wrong password test read: {body['error']!r}")
    stop_appliance(procs, pw, "wrong password")


def tls(procs, tmp, broker, ca, binary):
    feed, messages = FEEDS["ams"]
    cfg, port = write_config(tmp, "tls", feed, {"host": "localhost", "port": broker.tls_port,
                                                "tls": True, "ca_file": ca})
    pw = fc.start_appliance(procs, tmp, cfg, port, binary, name="phasewise-tls")
    amps = (13.3, 14.4, 15.5)
    publish_until(port, broker.tls_port, messages(amps), amps, "a reading over TLS", ca)
    check("over TLS" in log_text(pw), "the appliance does not say it connected over TLS")
    log(f"TLS to localhost:{broker.tls_port}: measured_a {main_node(port)['measured_a']}")
    stop_appliance(procs, pw, "TLS")

    # The certificate is for "localhost": an address it does not name is refused.
    cfg, port = write_config(tmp, "tls-name", feed, {"host": "127.0.0.1",
                                                     "port": broker.tls_port, "tls": True,
                                                     "ca_file": ca})
    pw = fc.start_appliance(procs, tmp, cfg, port, binary, name="phasewise-tls-name")
    pwtest.wait_for("the certificate refused in the log",
                    lambda: "certificate is refused" in log_text(pw), 10)
    for topic, payload in messages(amps):
        publish(broker.tls_port, topic, payload, ca)
    fc.wait_planning(port)  # no meter reading and no charger: the balancer runs after 30 s
    node = pwtest.wait_for("the node stale, its meter naming the certificate", lambda: (
        lambda m: m if m["meter"]["stale"] and "certificate" in m["meter"].get("problem", "")
        else None)(main_node(port)), 5)
    log(f"meter problem: '{node['meter']['problem']}'")
    line = next(l for l in log_text(pw).splitlines() if "certificate is refused" in l)
    log(f"TLS to 127.0.0.1: '{line.strip()}'; node stale")
    stop_appliance(procs, pw, "TLS name mismatch")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()
    with pwtest.workspace("pw-mqtt-") as (tmp, procs):
        ca, cert, key = make_tls(tmp)
        broker = Broker(procs, tmp, (ca, cert, key))
        broker.start()
        log(f"mosquitto on 127.0.0.1:{broker.port} and TLS on :{broker.tls_port}")
        for preset in ("ams", "json", "plain"):
            pw, port = run_preset(procs, tmp, broker, preset, args.phasewise)
            if preset == "ams":
                test_reads(broker, port)
                outage(procs, broker, pw, port)
            if preset == "plain":
                shutdown_in_flight(procs, pw, port)
            else:
                stop_appliance(procs, pw, preset)
        wrong_password(procs, tmp, broker, args.phasewise)
        tls(procs, tmp, broker, ca, args.phasewise)


if __name__ == "__main__":
    pwtest.run(main)
