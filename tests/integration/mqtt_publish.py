#!/usr/bin/env python3
"""State out, Home Assistant discovery and commands on MQTT (docs/mqtt.md) against Debian's
mosquitto (password login, started by the test on loopback), with the demo facility and the
simulator's cars:

1. the status topic is "online" and every charger's and node's topics are there, retained (a
   subscriber that comes later gets them with the retain flag), with values matching /api/state;
2. over 10 s no topic changes more than once a second;
3. a Home Assistant discovery payload per charger (its name, the unique ids, device classes)
   and per circuit, sent again when "online" is published on homeassistant/status;
4. commands: priority is off and refused on the result topic with nothing changed; pause is on
   and pauses the car (the simulator's ground truth: offered 0 A), resume lets it charge again;
   a bad payload is refused, and a retained command (replayed when the appliance subscribes)
   is refused and never applied; refusals are counted;
5. the broker stopped: balancing goes on (the state document keeps its pace, /api/health
   answers at once) and the problem is shown; back: "online" again;
6. SIGKILL of the appliance: the broker publishes its will, "offline"; another prefix on
   SIGHUP publishes under it and clears the old topics; a clean stop says "offline" itself and
   exits 0.
Every process is ended by its pid, also on failure."""
import argparse
import json
import time

import fault_common as fc
import mosquitto_common as mq
import pwtest
from pwtest import check, log

USER, PASSWORD = "pw", "pub-secret-1"
PREFIX = "pwtest"
SITE = "demo-housing-co-op"
BASE = f"{PREFIX}/{SITE}"


def write_config(tmp, broker):
    cfg, path, port = fc.write_config(tmp)
    cfg["mqtt"] = broker.mqtt_config(USER)
    cfg["mqtt"]["publish"] = {"enabled": True, "prefix": PREFIX}
    cfg["mqtt"]["commands"] = {"pause": True}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return cfg, path, port


def latest(sub, topic):
    msgs = sub.received(lambda m: m.topic == topic)
    return msgs[-1].text() if msgs else None


def check_values(sub, port, cfg):
    """The topics against /api/state: names exactly, currents within what changed meanwhile."""
    doc = fc.state(port)
    for c in doc["chargers"]:
        t = f"{BASE}/charger/{c['id']}"
        check(latest(sub, f"{t}/name") == c["name"], f"{t}/name is {latest(sub, t + '/name')!r}")
        check(latest(sub, f"{t}/online") == ("true" if c["online"] else "false"),
              f"{t}/online {latest(sub, t + '/online')!r}, /api/state {c['online']}")
        total = float(latest(sub, f"{t}/current"))
        lines = [float(latest(sub, f"{t}/current_l{k}")) for k in (1, 2, 3)]
        check(abs(total - sum(lines)) < 0.25, f"{t}/current {total} is not the sum of {lines}")
        check(abs(total - sum(c["current_a"])) < 8.0,
              f"{t}/current {total} A, /api/state {sum(c['current_a'])} A")
        check(latest(sub, f"{t}/state") in "ABCDEF?", f"{t}/state {latest(sub, t + '/state')!r}")
    for n, spec in zip(doc["nodes"], cfg["nodes"]):
        t = f"{BASE}/node/{n['id']}"
        check(latest(sub, f"{t}/name") == spec["name"], f"{t}/name")
        check(float(latest(sub, f"{t}/limit_l1")) == n["limit_a"][0],
              f"{t}/limit_l1 {latest(sub, t + '/limit_l1')}, /api/state {n['limit_a'][0]}")
    check(latest(sub, f"{BASE}/site/name") == cfg["site"], "site/name")
    check(latest(sub, f"{BASE}/site/version") == doc["version"], "site/version")
    log(f"values match /api/state for {len(doc['chargers'])} chargers and "
        f"{len(doc['nodes'])} nodes")


def check_pacing(sub, seconds=10):
    """No topic's live messages closer than a second (less the broker's jitter)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    live = [m for m in sub.received(lambda m: not m.retain and t0 <= m.t)
            if m.topic.startswith(BASE)]
    by_topic = {}
    for m in live:
        by_topic.setdefault(m.topic, []).append(m.t)
    worst = min((b - a for ts in by_topic.values() for a, b in zip(ts, ts[1:])), default=None)
    check(by_topic, "no value changed in 10 s of charging")
    check(worst is None or worst >= 0.9, f"a topic changed {worst:.3f} s after its last message")
    busiest = max(len(ts) for ts in by_topic.values())
    check(busiest <= seconds + 1, f"a topic sent {busiest} messages in {seconds} s")
    log(f"{len(live)} live messages on {len(by_topic)} topics in {seconds} s; closest two of "
        f"one topic {worst if worst is None else round(worst, 3)} s apart, busiest {busiest}")


def check_discovery(broker, cfg):
    with mq.Subscriber(broker, ["homeassistant/#"], user=USER) as sub:
        want = {f"homeassistant/device/phasewise_{SITE}_{c['id']}/config": c
                for c in cfg["chargers"]}
        pwtest.wait_for("every charger's discovery payload",
                        lambda: want.keys() <= {m.topic for m in sub.received()}, 10)
        for topic, c in want.items():
            d = json.loads(latest(sub, topic))
            check(d["dev"]["name"] == c["name"], f"{topic}: device name {d['dev']['name']!r}")
            cur = d["cmps"]["current"]
            check(cur["device_class"] == "current" and cur["unit_of_measurement"] == "A" and
                  cur["unique_id"] == f"phasewise_{SITE}_{c['id']}_current" and
                  cur["state_topic"] == f"{BASE}/charger/{c['id']}/current", f"{topic}: {cur}")
            check(d["cmps"]["session_energy"]["state_class"] == "total_increasing", topic)
            check(d["availability_topic"] == f"{BASE}/status", topic)
            check("pause" in d["cmps"] and "priority" not in d["cmps"],
                  f"{topic}: control entities {sorted(d['cmps'])}")
        nodes = [m for m in sub.received() if "_node_" in m.topic]
        check(len({m.topic for m in nodes}) == len(cfg["nodes"]), "a circuit without a device")
        before = len(sub.received())
        check(mq.publish(broker, "homeassistant/status", "online", user=USER), "mosquitto_pub")
        pwtest.wait_for("the discovery payloads again after homeassistant/status online",
                        lambda: len(sub.received()) - before >= len(want) + len(cfg["nodes"]), 5)
        log(f"discovery: {len(want)} chargers, {len(cfg['nodes'])} circuits, sent again "
            f"after Home Assistant's online")


def command(broker, sub, topic, payload, retain=False):
    """Publishes a command; the answer on the result topic for it."""
    n = len(sub.received(lambda m: m.topic == f"{BASE}/command/result"))
    check(mq.publish(broker, topic, payload, user=USER, retain=retain), "mosquitto_pub failed")

    def answered():
        res = sub.received(lambda m: m.topic == f"{BASE}/command/result")
        return json.loads(res[n].text()) if len(res) > n else None
    return pwtest.wait_for(f"the answer to {topic} {payload!r}", answered, 5)


def sim_offered(report, charger):
    last = fc.last_report(report)
    return next(c for c in last["chargers"] if c["id"] == charger)


def check_commands(broker, sub, port, report):
    doc = fc.state(port)
    target = next(c for c in doc["chargers"] if c["state"] == "C" and c["limit_a"] > 0)
    cid = target["id"]
    # Priority is off: refused, and nothing changes.
    r = command(broker, sub, f"{BASE}/charger/{cid}/priority/set", "5")
    check(not r["ok"] and "mqtt.commands.priority" in r["error"], f"priority answered {r}")
    c = next(c for c in fc.state(port)["chargers"] if c["id"] == cid)
    check(not c.get("override"), f"a refused command left an override: {c.get('override')}")
    # A bad payload and a retained command: refused, nothing applied.
    r = command(broker, sub, f"{BASE}/charger/{cid}/pause/set", "maybe")
    check(not r["ok"] and "true or false" in r["error"], f"bad payload answered {r}")
    time.sleep(0.5)
    c = next(c for c in fc.state(port)["chargers"] if c["id"] == cid)
    check(not c.get("override"), f"a refused pause was applied: {c.get('override')}")
    rejected = fc.metrics(port)
    refused = sum(v for k, v in rejected.items() if 'transport="mqtt-cmd"' in k and
                  "rejected" in k)
    check(refused >= 3, f"refused commands counted {refused} times, not 3")
    # Pause: applied, the charger offers 0 A in the simulator's ground truth; then resume.
    r = command(broker, sub, f"{BASE}/charger/{cid}/pause/set", "ON")
    check(r["ok"], f"pause answered {r}")
    pwtest.wait_for(f"{cid} paused in the simulator", lambda: sim_offered(report, cid)
                    ["offered_a"] == 0, 15)
    # /api/state is the latest document, built once a tick: it may follow the cut by a second.
    c = pwtest.wait_for(f"{cid} paused in /api/state", lambda: next(
        (c for c in fc.state(port)["chargers"] if c["id"] == cid and
         (c.get("override") or {}).get("paused") and c["limit_a"] == 0), None), 3)
    pwtest.wait_for(f"{BASE}/charger/{cid}/paused true",
                    lambda: latest(sub, f"{BASE}/charger/{cid}/paused") == "true", 5)
    log(f"pause over MQTT: {cid} offered 0 A by the simulator, /api/state override {c['override']}")
    r = command(broker, sub, f"{BASE}/charger/{cid}/pause/set", "false")
    check(r["ok"], f"resume answered {r}")
    pwtest.wait_for(f"{cid} offered current again", lambda: sim_offered(report, cid)
                    ["offered_a"] > 0, 20)
    log(f"resume: {cid} offered {sim_offered(report, cid)['offered_a']} A again; "
        f"{int(refused)} refused commands counted")


def check_broker_down(broker, port):
    broker.stop()
    t0 = fc.state(port)["time_ms"]
    for _ in range(6):
        t = time.monotonic()
        st, _ = pwtest.http_json(port, "/api/health")
        took = time.monotonic() - t
        check(st == 200 and took < 0.5, f"/api/health took {took:.2f} s with the broker down")
        time.sleep(0.5)
    doc = fc.state(port)
    check(doc["time_ms"] - t0 >= 2000, "the state document stalled with the broker down")
    mp = doc["mqtt_publish"]
    check(not mp["connected"] and mp["problem"], f"mqtt_publish with the broker down: {mp}")
    check(any("MQTT state out" in a["text"] for a in doc["alerts"]), "no alert for the broker")
    log(f"broker down: state document goes on, problem '{mp['problem']}'")
    broker.start()
    pwtest.wait_for("the publisher connected again",
                    lambda: fc.state(port)["mqtt_publish"]["connected"], 15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()
    with pwtest.workspace("pw-mqtt-pub-") as (tmp, procs), \
            mq.Broker(users={USER: PASSWORD}) as broker:
        cfg, path, port = write_config(tmp, broker)
        # A retained command waiting on the broker (a pause someone published with the retain
        # flag): the appliance gets it replayed when it subscribes, and must not act on it.
        stale = f"{BASE}/charger/{cfg['chargers'][0]['id']}/pause/set"
        check(mq.publish(broker, stale, "true", user=USER, retain=True), "mosquitto_pub failed")
        results = mq.Subscriber(broker, [f"{BASE}/command/result"], user=USER)
        try:
            pw = fc.start_appliance(procs, tmp, path, port, args.phasewise)
            r = json.loads(results.wait_for(lambda m: True, 10, "the retained command's answer")
                           .text())
        finally:
            results.close()
        check(r["topic"] == stale and not r["ok"] and "retained" in r["error"],
              f"a retained command answered {r}")
        mq.publish(broker, stale, "", user=USER, retain=True)  # cleared on the broker
        sim = fc.start_sim(procs, tmp, path, args.sim)
        fc.wait_balancing(port, sim.report, len(cfg["chargers"]))
        check(all(not c.get("override") for c in fc.state(port)["chargers"]),
              "a retained command was applied")
        log("a retained command replayed at subscribe: refused, nothing applied")
        with mq.Subscriber(broker, [f"{BASE}/#"], user=USER) as sub:
            status = sub.wait_for(lambda m: m.topic == f"{BASE}/status", 5, "the status topic")
            check(status.text() == "online" and status.retain, f"status {status}")
            time.sleep(1.5)  # the latest values after the retained ones
            check_values(sub, port, cfg)
            retained = sub.received(lambda m: m.retain)
            check(len(retained) >= 16 * len(cfg["chargers"]),
                  f"only {len(retained)} retained topics for {len(cfg['chargers'])} chargers")
            check_pacing(sub)
            check_discovery(broker, cfg)
            check_commands(broker, sub, port, sim.report)
        check_broker_down(broker, port)
        with mq.Subscriber(broker, [f"{BASE}/status"], user=USER) as sub:
            sub.wait_for(lambda m: m.text() == "online", 10, "online after the broker's return")
            procs.stop(pw, sig=9)
            m = sub.wait_for(lambda m: m.text() == "offline", 10, "the will after SIGKILL")
            log(f"SIGKILL: the broker published {m.topic} = offline")
        procs.stop(sim)
        # A clean stop says "offline" itself.
        pw = fc.start_appliance(procs, tmp, path, port, args.phasewise, name="phasewise-2")
        with mq.Subscriber(broker, [f"{BASE}/status"], user=USER) as sub:
            sub.wait_for(lambda m: m.text() == "online", 10, "online after the restart")
        # Another prefix (SIGHUP): the new topics come, the old ones are cleared.
        cfg["mqtt"]["publish"]["prefix"] = "pwtest2"
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        with mq.Subscriber(broker, [f"{BASE}/#", f"pwtest2/{SITE}/status"], user=USER) as sub:
            pw.send_signal(1)
            sub.wait_for(lambda m: m.topic == f"pwtest2/{SITE}/status" and m.text() == "online",
                         10, "the new prefix's status")
            sub.wait_for(lambda m: m.topic == f"{BASE}/status" and m.payload == b"", 10,
                         "the old status cleared")
            sub.wait_for(lambda m: m.topic == f"{BASE}/charger/a01/name" and m.payload == b"",
                         10, "the old charger topics cleared")
            log("another prefix on SIGHUP: new topics published, the old ones cleared")
        with mq.Subscriber(broker, [f"pwtest2/{SITE}/status"], user=USER) as sub:
            sub.wait_for(lambda m: m.text() == "online", 10, "online under the new prefix")
            rc = procs.stop(pw)
            check(rc == 0, f"the appliance exited {rc} on SIGTERM: {procs.tail(pw)}")
            sub.wait_for(lambda m: m.text() == "offline" and not m.retain, 5,
                         "offline on a clean stop")
            log("clean stop: offline, exit 0")


if __name__ == "__main__":
    pwtest.run(main)
