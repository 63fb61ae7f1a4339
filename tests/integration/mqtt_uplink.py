#!/usr/bin/env python3
"""The fleet uplink (docs/mqtt.md) against Debian's mosquitto, started by the test on loopback
with TLS (a test CA), a client certificate required of every client (each site's signed by the
CA) as well as a password per site, and an ACL that gives each site only
"phasewise/fleet/<site>/#"; a central subscriber may read "phasewise/fleet/#":

a) two appliances (sites "site-a" and "site-b", data folders and ports of their own) report to
   the one broker: the subscriber gets both sites' rows and their retained "online" status; a
   site cannot publish under the other's topics (the ACL);
b) the broker stopped for ~20 s while site A's simulated cars charge (sped up, so sessions end)
   and site B's config is reloaded (a config_change event); site A SIGKILLed and restarted while
   the broker is still down; the broker back (the sites kept out until the central subscriber is
   on again): every outbox id 1..N of each site arrives, the consumer's rule (drop an id seen
   before) takes each exactly once (raw duplicates are counted and printed), first arrivals come
   in id order, the outboxes empty, and site A's /api/state went on updating throughout;
c) site B reloaded with a CA that did not sign the broker's certificate: refused, the state
   document says why, and nothing is deleted from its outbox;
d) rows in flight when everything dies: the broker is frozen (SIGSTOP) so that site A's
   publishes reach its socket but are never acknowledged, site A is SIGKILLed with them in
   flight, then the broker too (what it had not read is gone), and both start again: site A must
   send again every row it has no acknowledgement for, so every id still arrives, each taken
   once by its id.

Every process is ended by its pid, also on failure; the whole test stays under 90 s."""
import argparse
import json
import os
import signal
import sqlite3
import subprocess
import time

import fault_common as fc
import mosquitto_common as mc
import pwtest
from pwtest import check, log

PREFIX = "phasewise/fleet"
SITES = ("site-a", "site-b")
PASSWORDS = {"site-a": "a-secret-1", "site-b": "b-secret-2", "central": "c-secret-3"}
ACL = "".join(f"user {s}\ntopic readwrite {PREFIX}/{s}/#\n\n" for s in SITES) + \
    f"user central\ntopic read {PREFIX}/#\n"
DOWN_S = 20
CENTRAL_CERT = []  # the central subscriber's (cert, key), made with the broker's CA


class Site:
    def __init__(self, name, root, procs, broker, args):
        self.name, self.procs, self.args = name, procs, args
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.cfg, self.cfg_path, self.port = fc.write_config(self.dir)
        self.cfg["site"] = f"Fleet test {name}"
        cert, key = broker.client_cert(name)
        self.cfg["uplink"] = {"host": "localhost", "port": broker.port, "tls": True,
                              "ca_file": broker.ca.cert, "cert_file": cert, "key_file": key,
                              "username": name, "password": PASSWORDS[name], "site": name,
                              "keepalive_s": 5}
        self.save()
        self.db = os.path.join(self.dir, "history.db")
        self.proc = None

    def save(self):
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f, indent=1)

    def start(self):
        self.proc = fc.start_appliance(self.procs, self.dir, self.cfg_path, self.port,
                                       self.args.phasewise, name=f"phasewise-{self.name}")

    def reload(self):
        self.save()
        self.proc.send_signal(signal.SIGHUP)

    def uplink(self):
        return fc.state(self.port)["uplink"]

    def outbox(self):
        """(last id handed out, rows waiting), read from the database as a central system
        cannot: the judge of "every row"."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as db:
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return (last[0] if last else 0), waiting


def rows(messages, site):
    """The outbox rows of site among messages, in arrival order, as parsed JSON."""
    out = []
    for m in messages:
        if m.topic.startswith(f"{PREFIX}/{site}/") and not m.topic.endswith("/status"):
            doc = json.loads(m.text())
            check(doc["site"] == site and m.topic == f"{PREFIX}/{site}/{doc['kind']}",
                  f"row {doc} on topic {m.topic}")
            check(set(doc) == {"id", "site", "kind", "at", "data"}, f"row fields: {doc}")
            out.append(doc)
    return out


def part_a(broker, sites, sub):
    for s in sites:
        sub.wait_for(lambda m, s=s: m.topic == f"{PREFIX}/{s.name}/status" and
                     m.payload == b"online", 20, f"{s.name} online")
        pwtest.wait_for(f"{s.name}'s first rows", lambda s=s: rows(sub.received(), s.name), 20)
        # The state document is built once a tick: it may still show the time before.
        pwtest.wait_for(f"{s.name}'s state document to show the link",
                        lambda s=s: s.uplink()["connected"], 5)
        check(s.uplink()["problem"] == "", f"{s.name} uplink: {s.uplink()}")
    for s in sites:
        first = rows(sub.received(), s.name)
        check(first[0]["id"] == 1 and first[0]["kind"] == "event",
              f"{s.name}'s first row: {first[0]}")
        log(f"a) {s.name}: {len(first)} rows so far, kinds "
            f"{sorted({r['kind'] for r in first})}")
    # The ACL: site A cannot write under site B's topics.
    forged = '{"id":999999,"site":"site-b","kind":"event","at":"x","data":{}}'
    mc.publish(broker, f"{PREFIX}/site-b/event", forged, user="site-a", qos=1,
               cert=broker.client_cert("forger"))
    time.sleep(1)
    check(not [m for m in sub.received() if b"999999" in m.payload],
          "site-a published under site-b's topics")
    log("a) both sites report to one broker; the ACL keeps site-a out of site-b's topics")


def set_users(broker, present):
    """Adds (or removes) the sites' logins in the broker's password file; the broker reads it
    again on SIGHUP when running."""
    passwd = os.path.join(broker.tmp, "passwd")
    for s in SITES:
        args = ["-b", passwd, s, PASSWORDS[s]] if present else ["-D", passwd, s]
        subprocess.run([mc.tool("mosquitto_passwd"), *args], check=True, timeout=10,
                       capture_output=True)


def part_b(broker, sites, sub, sim):
    a, b = sites
    time_before = fc.state(a.port)["time_ms"]
    broker.stop()
    sub.close()
    t_down = time.monotonic()
    log(f"b) broker stopped for {DOWN_S} s")
    pwtest.wait_for("site A to see the link down", lambda: not a.uplink()["connected"], 15)
    # Events while the link is down: a config change at site B, a restart at site A.
    b.cfg["balancer"]["hysteresis_a"] = 0.6
    b.reload()
    fc.sleep_watch(4, [a.proc, b.proc, sim])
    check(b.uplink()["queued"] > 0, f"site B queued nothing after its change: {b.uplink()}")
    queued = a.outbox()[1]
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(5)
    log(f"b) site A SIGKILLed with {queued} rows queued; restarted with the broker still down")
    a.start()
    samples = []
    while time.monotonic() - t_down < DOWN_S:
        doc = fc.state(a.port)
        samples.append(doc["time_ms"])
        check(not doc["uplink"]["connected"], f"site A's uplink with the broker down: {doc}")
        fc.sleep_watch(1, [a.proc, b.proc, sim])
    check(samples[-1] > time_before and len(set(samples)) >= len(samples) - 2,
          "site A's state stopped updating while the broker was down")
    check(a.uplink()["problem"] and a.uplink()["queued"] > queued,
          f"site A's uplink after its restart: {a.uplink()}")
    # Back, but the sites kept out until the central subscriber is there to see everything.
    set_users(broker, False)
    broker.start()
    sub2 = mc.Subscriber(broker, [f"{PREFIX}/#"], user="central", cert=CENTRAL_CERT[0])
    set_users(broker, True)
    broker.proc.send_signal(signal.SIGHUP)
    log(f"b) broker back after {time.monotonic() - t_down:.0f} s; the sites may connect")
    fc.wait_balancing(a.port, sim.report, len(a.cfg["chargers"]), timeout=30)

    def drained():
        return all(s.uplink()["connected"] and s.outbox()[1] == 0 for s in sites)
    pwtest.wait_for("both outboxes to empty", drained, 30)
    return sub2


def judge(site, messages):
    """messages() gives what the central subscriber received so far: the site may queue more
    meanwhile (an alert, an event), so the ids up to the last one handed out when its outbox was
    empty must all arrive."""
    pwtest.wait_for(f"{site.name}'s outbox to empty", lambda: site.outbox()[1] == 0, 15)
    last = site.outbox()[0]
    pwtest.wait_for(f"{site.name}'s rows up to {last}",
                    lambda: {r["id"] for r in rows(messages(), site.name)} >=
                    set(range(1, last + 1)), 10)
    got = [r for r in rows(messages(), site.name) if r["id"] <= last]
    ids = [r["id"] for r in got]
    seen, first = set(), []
    for i in ids:  # the consumer's rule: an id seen before is dropped
        if i not in seen:
            seen.add(i)
            first.append(i)
    check(seen == set(range(1, last + 1)),
          f"{site.name}: ids 1..{last}, missing {sorted(set(range(1, last + 1)) - seen)[:20]}")
    check(first == sorted(first), f"{site.name}: first arrivals out of id order")
    kinds = {}
    for r in got:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    log(f"b) {site.name}: ids 1..{last} all arrived, each taken once; {len(ids) - len(first)} "
        f"raw duplicates; kinds {kinds}")
    return got


def part_c(site, broker, tmp):
    other = mc.TestCA(os.path.join(tmp, "other-ca"), name="not the broker's CA")
    site.cfg["uplink"]["ca_file"] = other.cert
    site.reload()
    pwtest.wait_for("the refusal in the state document",
                    lambda: not site.uplink()["connected"] and site.uplink()["problem"], 15)
    fc.sleep_watch(3, [site.proc])
    before = site.outbox()
    up = site.uplink()
    check("certificate" in up["problem"], f"the problem does not name the certificate: {up}")
    fc.sleep_watch(3, [site.proc])
    after = site.outbox()
    check(before[1] > 0 and after[1] >= before[1],
          f"rows deleted while refused: {before} -> {after}")
    log(f"c) a wrong CA: \"{up['problem']}\"; {after[1]} rows kept")


def part_d(broker, site, subs, messages):
    """Rows in flight at the kill: sent, never acknowledged, lost by the broker, sent again."""
    pwtest.wait_for("site A's outbox to empty", lambda: site.outbox()[1] == 0, 15)
    before = site.outbox()[0]
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        # A config change makes events; the uplink publishes them into the frozen broker's
        # socket, where no acknowledgement will come from.
        site.cfg["balancer"]["hysteresis_a"] = 0.7
        site.reload()
        pwtest.wait_for("rows queued while the broker is frozen",
                        lambda: site.outbox()[0] > before, 10)
        time.sleep(1.5)  # a tick or two: the rows are read and published by now
        in_flight = site.outbox()[1]
        site.proc.send_signal(signal.SIGKILL)
        site.proc.wait(5)
    finally:
        broker.kill()  # a stopped process takes SIGKILL: what it had not read is lost
    log(f"d) site A and the broker SIGKILLed with {in_flight} rows sent and not acknowledged")
    check(in_flight > 0, "no rows were waiting for an acknowledgement at the kill")
    set_users(broker, False)
    broker.start()
    subs.append(mc.Subscriber(broker, [f"{PREFIX}/#"], user="central", cert=CENTRAL_CERT[0]))
    set_users(broker, True)
    broker.proc.send_signal(signal.SIGHUP)
    site.start()
    judge(site, messages)
    log(f"d) rows {before + 1}..{site.outbox()[0]} all arrived after both restarts")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()
    t0 = time.monotonic()
    with pwtest.workspace("pw-uplink-") as (tmp, procs), \
            mc.Broker(tls=True, require_certificate=True, users=PASSWORDS, acl=ACL,
                      name="fleet-broker") as broker:
        CENTRAL_CERT.append(broker.client_cert("central"))
        sub = mc.Subscriber(broker, [f"{PREFIX}/#"], user="central", cert=CENTRAL_CERT[0])
        sites = [Site(name, tmp, procs, broker, args) for name in SITES]
        for s in sites:
            s.start()
        a = sites[0]
        sim = fc.start_sim(procs, a.dir, a.cfg_path, args.sim, ["--speed", "300"])
        part_a(broker, sites, sub)
        subs = [sub, part_b(broker, sites, sub, sim)]  # the first one closed in part b
        try:
            def messages():
                return [m for s in subs for m in s.received()]
            got = [judge(s, messages) for s in sites]
            check(any(r["kind"] == "event" and r["data"]["kind"] == "config_change"
                      for r in got[1]), "site B's config change did not arrive")
            check(any(r["kind"] == "event" and r["data"]["kind"] == "start" for r in got[0]
                      if r["id"] > 1), "site A's restart did not arrive")
            part_c(sites[1], broker, tmp)
            part_d(broker, sites[0], subs, messages)
        finally:
            for s in subs[1:]:
                s.close()
        for s in sites:
            check(procs.stop(s.proc) == 0, f"{s.name} did not exit cleanly")
        procs.stop(sim)
    log(f"mqtt_uplink passed in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    pwtest.run(main)
