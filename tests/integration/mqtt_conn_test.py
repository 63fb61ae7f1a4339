#!/usr/bin/env python3
"""The appliance's MQTT connection (mqtt/conn.c) against Debian's mosquitto, through the meter
transport: one TLS broker that requires a client certificate from its test CA and keeps its users
and ACL in the dynamic security plugin (so that a SUBSCRIBE it does not allow is refused with
128). Five appliances run side by side, each with its own config:

1. "cert": a client certificate and a login: readings flow; the broker stopped, the meter names
   the lost broker; the broker started again on the same port: the connection comes back by
   itself and readings resume (what the balancer makes of a stale meter: mqtt_meter.py);
2. "nocert": no client certificate: the meter says the broker wants one (mqtt.cert_file);
3. "wrongca": ca_file of another CA: the broker's certificate is refused, named in the problem;
4. "badpw": a wrong password: the broker's refusal names mqtt.password, logged once although
   the appliance retries several times;
5. "acl": a meter topic the ACL does not let the user read: the meter's problem says the broker
   refused the subscription; the other meter of the same appliance reads on.

And a client certificate file that cannot be read is a problem at start ("cannot load the client
certificate"), shown as the meter's, while the appliance balances on. Each appliance ends with
SIGTERM and must exit 0 (every handle closed, uv_loop_close 0)."""
import argparse
import json
import os
import time

import fault_common as fc
import mosquitto_common as mc
import pwtest
from mqtt_meter import ams_payload
from pwtest import check, log

USER, BRIDGE = "meter", "bridge"
TIMEOUT_S = 3  # the meters' stale timeout in this test's configs
LIMIT_A = 100
ACL = (f"user {USER}\ntopic read ams/#\n"  # not "secret/#"
       f"user {BRIDGE}\ntopic write ams/#\ntopic write secret/#\n")


def write_config(tmp, name, mqtt, topics=("ams/meter",)):
    """An appliance whose first node(s) read AMS meters on topics from the broker in mqtt."""
    http_port = pwtest.free_tcp_port()
    cfg = pwtest.test_config(http_port, pwtest.free_udp_port())
    cfg["chargers"] = cfg["chargers"][:3]
    for i, topic in enumerate(topics):
        cfg["nodes"][i]["meter"] = {"link": {"mqtt": {"preset": "ams", "topic": topic}},
                                    "timeout_s": TIMEOUT_S, "fallback_a": 40}
    cfg["nodes"][0]["limit_a"] = LIMIT_A
    # Side by side on one broker: a client id each (the same one would throw the other out).
    cfg["mqtt"] = dict(mqtt, client_id=f"pw-{name}")
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path, http_port


class Appliance:
    def __init__(self, procs, tmp, name, mqtt, binary, topics=("ams/meter",)):
        self.name, self.procs = name, procs
        d = os.path.join(tmp, name)  # a data folder each: they run side by side
        os.mkdir(d)
        cfg, self.port = write_config(d, name, mqtt, topics)
        self.t0 = time.monotonic()
        self.proc = fc.start_appliance(procs, d, cfg, self.port, binary, name=f"phasewise-{name}")

    def node(self, i=0):
        return fc.state(self.port)["nodes"][i]

    def problem(self, i=0):
        return self.node(i)["meter"].get("problem", "")

    def wait_problem(self, words, timeout=10, i=0):
        """Until the meter's problem holds every one of words; returns it."""
        return pwtest.wait_for(f"{self.name}: a meter problem with {words}", lambda: (
            lambda p: p if all(w in p for w in words) else None)(self.problem(i)), timeout, 0.1)

    def log_text(self):
        with open(self.proc.logfile, errors="replace") as f:
            return f.read()

    def reading_is(self, amps, i=0):
        n = self.node(i)
        return (not n["meter"]["stale"] and
                all(abs(x - y) < 0.051 for x, y in zip(n["measured_a"], amps)))

    def stop(self):
        rc = self.procs.stop(self.proc)
        check(rc == 0, f"{self.name}: the appliance exited {rc}, not 0: "
                       f"{self.procs.tail(self.proc)}")


def publish_until(broker, bridge_cert, app, amps, what, topic="ams/meter", timeout=15, i=0):
    """Publishes until the appliance shows the reading (its subscription follows its connect:
    the first messages may go to nobody)."""
    def shown():
        mc.publish(broker, topic, ams_payload(*amps), user=BRIDGE, cert=bridge_cert)
        time.sleep(0.2)
        return app.reading_is(amps, i)
    pwtest.wait_for(what, shown, timeout, 0.05)


def check_planned(node, what):
    for line in range(3):
        check(node["planned_a"][line] <= node["limit_a"][line] + 1e-6,
              f"{what}: L{line + 1} planned at {node['planned_a'][line]} A above its "
              f"{node['limit_a'][line]} A limit")


def restart(broker, bridge_cert, app):
    """The broker stopped and started again on the same port while readings flow."""
    broker.stop()
    problem = app.wait_problem(["broker localhost"], TIMEOUT_S + 3)
    check("connect" in problem, f"the meter's problem names no lost connection: {problem!r}")
    check_planned(app.node(), "broker stopped")  # stale budgets: mqtt_meter.py's outage
    log(f"broker stopped: '{problem}'")
    time.sleep(1.5)  # a few failed attempts: the backoff grows
    broker.start()
    t0 = time.monotonic()
    publish_until(broker, bridge_cert, app, (5.5, 6.5, 7.5), "readings after the restart",
                  timeout=12)
    check(app.problem() == "", f"a problem after the restart: {app.problem()!r}")
    log(f"broker back on port {broker.port}: readings again after {time.monotonic() - t0:.1f} s")
    check(app.log_text().count("connected to broker") >= 2, "no second connect in the log")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()
    users = {USER: "m3ter-secret", BRIDGE: "br1dge-secret"}
    with pwtest.workspace("pw-mqttconn-") as (tmp, procs), \
            mc.Broker(require_certificate=True, users=users, acl=ACL, dynsec=True) as broker:
        cert, key = broker.client_cert("phasewise-site")
        bridge_cert = broker.client_cert("ams-bridge")
        other_ca = mc.TestCA(os.path.join(tmp, "other-ca"), "another CA")
        base = broker.mqtt_config(USER, host="localhost")
        with_cert = dict(base, cert_file=cert, key_file=key)
        apps = {
            "cert": Appliance(procs, tmp, "cert", with_cert, args.phasewise),
            "nocert": Appliance(procs, tmp, "nocert", base, args.phasewise),
            "wrongca": Appliance(procs, tmp, "wrongca", dict(with_cert, ca_file=other_ca.cert),
                                 args.phasewise),
            "badpw": Appliance(procs, tmp, "badpw", dict(with_cert, password="wrong"),
                               args.phasewise),
            "acl": Appliance(procs, tmp, "acl", with_cert, args.phasewise,
                             topics=("secret/meter", "ams/meter")),
            "nofile": Appliance(procs, tmp, "nofile",
                                dict(with_cert, cert_file=os.path.join(tmp, "missing.pem")),
                                args.phasewise),
        }

        amps = (11.1, 7.5, 9.2)
        publish_until(broker, bridge_cert, apps["cert"], amps, "a reading with a client cert")
        check("over TLS" in apps["cert"].log_text(), "the appliance does not say TLS")
        log(f"client certificate: measured_a {apps['cert'].node()['measured_a']}")

        p = apps["nocert"].wait_problem(["wants a client certificate", "mqtt.cert_file"])
        log(f"no client certificate: '{p}'")
        p = apps["wrongca"].wait_problem(["the broker's certificate is refused"])
        log(f"another CA: '{p}'")
        p = apps["badpw"].wait_problem(["refused the connection", "mqtt.password"])
        log(f"wrong password: '{p}'")
        p = apps["nofile"].wait_problem(["cannot load the client certificate", "missing.pem",
                                         "mqtt.cert_file"], 5)
        log(f"a missing certificate file: '{p}'")
        check(apps["nofile"].proc.poll() is None, "the appliance stopped over a missing file")

        acl = apps["acl"]
        p = acl.wait_problem(["refused the subscription to secret/meter", "ACL"])
        log(f"ACL: '{p}'")
        publish_until(broker, bridge_cert, acl, (3.0, 4.0, 5.0), "the allowed meter's reading",
                      i=1)
        mc.publish(broker, "secret/meter", ams_payload(9, 9, 9), user=BRIDGE, cert=bridge_cert)
        time.sleep(0.3)
        check(not acl.reading_is((9.0, 9.0, 9.0), 0), "the denied meter got a reading")
        check("secret/meter" in acl.problem(0), f"the ACL problem is gone: {acl.problem(0)!r}")

        # Several retries by now (0.5, 1, 2, 4 s apart): the refusal is logged once.
        time.sleep(max(0.0, 4.0 - (time.monotonic() - apps["badpw"].t0)))
        for name, words in (("badpw", "refused the connection"), ("nocert", "TLS with broker"),
                            ("wrongca", "TLS with broker")):
            n = apps[name].log_text().count(words)
            check(n == 1, f"{name}: the problem logged {n} times, not once")

        restart(broker, bridge_cert, apps["cert"])
        for app in apps.values():
            app.stop()
        log("every appliance exited 0")


if __name__ == "__main__":
    pwtest.run(main)
