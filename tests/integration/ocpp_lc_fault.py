#!/usr/bin/env python3
"""The OCPP local controller's long fault run (issue 14, point 4): the simulator's OCPP charge
points (the physical ground truth: its cars arrive, charge and leave, and it reports every line's
load) behind phasewise, upstream to ocpp-rpc's server as the operator's CSMS in strict mode. The
CSMS is stopped for a stretch of real time while transactions begin, are metered and end; in the
middle of it phasewise is SIGKILLed and restarted; then a new CSMS comes back on the same port.
Checks that every call the charge points made and phasewise answered reaches a CSMS exactly once,
in the order it was made, transactions under the CSMS's own ids (StartTransaction with the
charge point's meterStart, MeterValues and StopTransaction with its meterStop under the id the
CSMS gave), no strict-mode violation, a TriggerMessage and a RemoteStopTransaction from the CSMS
reach the charge point afterwards (the trigger has its effect), and no line above its limit at
any time (the simulator's ground truth).

The truth is the simulator's own record of what it sent and what phasewise answered (its debug
log of every frame), never what the CSMS saw. `--mode short` (ctest ocpp_lc_fault): the CSMS away
about 40 s, phasewise dead for 8 s while two cars arrive (on the simulated clock, so every run);
`--mode long` (ocpp_lc_fault_long, label soak): away 5 minutes, more cars. `--no-kill` leaves the
restart out. Loopback only; skipped (77) without the npm peers."""
import argparse
import collections
import json
import os
import re
import signal
import time

import fault_common as fc
import pwtest
from ocpp_peer import CentralSystem, PeerError, skip_without_peers
from pwtest import check, log

# Garage B of the demo on OCPP only: four charge points, GB-56 with two connectors; 5 x 16 A on
# a 40 A fuse, so the balancer has work; the failsafe defaults (5 x 6 A) fit it.
OCPP = {"b01": ("GB-01", 1), "b03": ("GB-03", 1), "b04": ("GB-04", 1), "b05": ("GB-56", 1),
        "b06": ("GB-56", 2)}
CPS = sorted({cp for cp, _ in OCPP.values()})
UP_PASSWORD = "gb03-csms-authorization-01"  # the CSMS asks GB-03 for it
# Transaction ids of the two CSMS runs, far apart and far from phasewise's own (numbers from the
# wall clock): an id at the CSMS tells which CSMS gave it, and one phasewise forgot to map is
# never mistaken for one.
TX_BASE = (500000, 900000)
# (CSMS up at first, CSMS away, phasewise killed this far into it, down for, after the CSMS is
# back before the charge points stop, sim speed, cars a day) in real seconds. The short run kills
# phasewise on the simulated clock instead, at kill_sim_s, and keeps it dead for 8 s (a reboot):
# the cars of seed 11 arrive at b06 and b03 at 7000 and 7182 simulated s, so every run has cars
# arriving while phasewise is dead, longer than the reaction window.
MODES = {"short": dict(up_s=12, away_s=40, kill_at_s=16, kill_sim_s=6900, down_s=8, after_s=8,
                       speed=240, cars=40, drain_s=90),
         "long": dict(up_s=20, away_s=300, kill_at_s=150, down_s=5, after_s=20, speed=120,
                      cars=60, drain_s=120)}
FRAME = re.compile(r"ocpp (\S+) ([<>]) (\[.*)$")
SKIP = ("BootNotification", "Heartbeat")  # compared apart: sent again on every upstream link


def write_config(tmp, ocpp_port, csms_port):
    cfg, path, port = fc.write_config(tmp, balancer={"lease_s": 6},
                                      only_chargers=list(OCPP))
    for c in cfg["chargers"]:
        cp, connector = OCPP[c["id"]]
        c["link"] = {"ocpp": {"id": cp, "connector": connector}}
        c["max_a"] = 16
    cfg["ocpp"] = {"listen": f"127.0.0.1:{ocpp_port}", "meter_interval_s": 2,
                   "min_interval_s": 2, "heartbeat_s": 30,
                   "upstream": {"url": f"ws://127.0.0.1:{csms_port}/ocpp",
                                "authorize": "charge_point"},
                   "charge_points": [{"id": "GB-03", "upstream_password": UP_PASSWORD}]}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return cfg, path, port


class SimTruth:
    """What the simulator's charge points sent and what phasewise answered, read from its debug
    log (one line per frame). calls[cp]: every call in the order sent, each a dict with action,
    payload, answered (a CALLRESULT came) and the wall time it was read; txs: the transactions
    by (cp, connector, start timestamp), with phasewise's id, meterStart and meterStop."""

    def __init__(self, path):
        self.path = path
        self.calls = collections.defaultdict(list)
        self.down = collections.defaultdict(list)  # calls phasewise made to the charge point
        self.txs = {}
        self.local = {}  # (cp, phasewise's transaction id) -> tx key
        self.unparsed = 0
        self._pending = {}
        self._pos = 0

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._pos += end
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            m = FRAME.search(raw)
            if m:
                self._frame(m.group(1), m.group(2), m.group(3))
        return self

    def _frame(self, cp, way, text):
        try:
            frame = json.loads(text)
        except ValueError:
            self.unparsed += 1  # a log line cut at its length limit
            return
        now = time.monotonic()
        if way == ">" and frame[0] == 2:
            call = {"id": frame[1], "action": frame[2], "payload": frame[3], "answered": False,
                    "t": now}
            self.calls[cp].append(call)
            self._pending[(cp, frame[1])] = call
        elif way == "<" and frame[0] in (3, 4):
            call = self._pending.pop((cp, frame[1]), None)
            if call is None or frame[0] != 3:
                return
            call["answered"], call["result"], call["t_answer"] = True, frame[2], now
            p = call["payload"]
            if call["action"] == "StartTransaction":
                key = (cp, p["connectorId"], p["timestamp"])
                local = str(frame[2]["transactionId"])
                tx = self.txs.setdefault(key, {"meterStart": p["meterStart"], "local": local,
                                               "t_start": now})
                check(self.local.get((cp, local), key) == key,
                      f"{cp}: phasewise gave transaction id {local} twice "
                      f"({self.local.get((cp, local))} and {key})")
                self.local[(cp, local)] = key
                tx["local"] = local
            elif call["action"] == "StopTransaction":
                key = self.local.get((cp, str(p["transactionId"])))
                check(key is not None, f"{cp}: StopTransaction of an unknown id: {p}")
                self.txs[key].update(meterStop=p["meterStop"], t_stop=now)
        elif way == "<" and frame[0] == 2:
            self.down[cp].append({"id": frame[1], "action": frame[2], "payload": frame[3],
                                  "t": now})

    def key_of(self, cp, payload):
        """A copy of payload with its transactionId replaced by the transaction's key."""
        if "transactionId" not in payload:
            return payload
        key = self.local.get((cp, str(payload["transactionId"])))
        return dict(payload, transactionId=["tx", *key] if key else ["unknown-local",
                                                                       payload["transactionId"]])


def canon(action, payload):
    return action + " " + json.dumps(payload, sort_keys=True)


def sim_now_ms(report):
    """The simulated time of the report's last whole line (read from its end: it grows fast)."""
    with open(report, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 16384))
        lines = f.read().split(b"\n")
    for raw in reversed(lines[1:-1] if len(lines) > 2 else lines):
        try:
            return json.loads(raw)["t_ms"]
        except ValueError:
            continue
    return 0


def csms_view(csmses):
    """Every call the CSMS runs received, per charge point in order: (run, event); and the map
    from (the CSMS's transaction id) to the transaction's key."""
    per_cp = collections.defaultdict(list)
    tx = {}
    for run, cs in enumerate(csmses):
        for e in cs.find(lambda e: e.get("event") == "call"):
            per_cp[e["id"]].append((run, e))
            if e["method"] == "StartTransaction" and "result" in e:
                p = e["params"]
                tx[e["result"]["transactionId"]] = ["tx", e["id"], p["connectorId"],
                                                    p["timestamp"]]
    return per_cp, tx


def csms_key(payload, tx):
    if "transactionId" not in payload:
        return payload
    return dict(payload, transactionId=tx.get(payload["transactionId"],
                                              ["unknown-csms", payload["transactionId"]]))


def compare(truth, csmses, final=True, until=None):
    """Judges what the CSMS runs got against the charge points' truth. Returns (problems, facts):
    with final=False only the calls answered by phasewise before `until` (monotonic) and not yet
    at a CSMS count, for waiting on the drain."""
    per_cp, tx = csms_view(csmses)
    problems, facts = [], collections.Counter()
    for cp in CPS:
        sent = [c for c in truth.calls[cp] if c["action"] not in SKIP]
        pos = {}
        made = collections.Counter()  # a charge point may say the same twice (a status it is
        for i, c in enumerate(sent):  # asked for by TriggerMessage keeps its timestamp)
            k = canon(c["action"], truth.key_of(cp, c["payload"]))
            pos.setdefault(k, i)
            made[k] += 1
        got = [(run, e) for run, e in per_cp.get(cp, []) if e["method"] not in SKIP]
        seen = collections.Counter()
        last, order_ok = -1, True
        for run, e in got:
            k = canon(e["method"], csms_key(e["params"], tx))
            seen[k] += 1
            if k not in pos:
                problems.append(f"{cp}: the CSMS got a call the charge point never made (wrong "
                                f"or unmapped transaction id?): {k[:300]}")
                continue
            if pos[k] <= last and seen[k] == 1:
                order_ok = False
                problems.append(f"{cp}: out of order at the CSMS: {k[:200]}")
            last = max(last, pos[k])
        for k, n in seen.items():
            if n > made[k]:
                problems.append(f"{cp}: the CSMS got the same call {n} times, the charge point "
                                f"made it {made[k]} times: {k[:300]}")
        for c in sent:
            k = canon(c["action"], truth.key_of(cp, c["payload"]))
            if c["answered"] and k not in seen and (until is None or c["t_answer"] <= until):
                problems.append(f"{cp}: answered by phasewise, never at the CSMS: {k[:300]}")
            facts["answered"] += c["answered"]
        facts["at_csms"] += len(got)
        facts["order_ok"] += order_ok
        ids = collections.Counter((run, e["messageId"]) for run, e in per_cp.get(cp, []))
        facts["dup_message_ids"] += sum(n - 1 for n in ids.values() if n > 1)
    if not final:
        return [p for p in problems if "never at the CSMS" in p], facts
    # The transactions, said in the words: each Start and Stop once, with the charge
    # point's readings, under the CSMS's id.
    starts = collections.defaultdict(list)
    stops = collections.defaultdict(list)
    for cp in CPS:
        for run, e in per_cp.get(cp, []):
            if e["method"] == "StartTransaction":
                p = e["params"]
                starts[(cp, p["connectorId"], p["timestamp"])].append(e)
            elif e["method"] == "StopTransaction":
                stops[tuple(csms_key(e["params"], tx)["transactionId"][1:])].append(e)
    for key, t in truth.txs.items():
        s = starts.get(key, [])
        if len(s) != 1 or s[0]["params"]["meterStart"] != t["meterStart"]:
            problems.append(f"transaction {key}: {len(s)} StartTransaction at the CSMS, "
                            f"meterStart {[e['params']['meterStart'] for e in s]} "
                            f"(the charge point's: {t['meterStart']})")
        if "meterStop" in t:
            s = stops.get(key, [])
            if len(s) != 1 or s[0]["params"]["meterStop"] != t["meterStop"]:
                problems.append(f"transaction {key}: {len(s)} StopTransaction at the CSMS, "
                                f"meterStop {[e['params']['meterStop'] for e in s]} "
                                f"(the charge point's: {t['meterStop']})")
    return problems, facts


def boots_first(csmses):
    """Each upstream connection's first call is the charge point's BootNotification."""
    out = []
    for run, cs in enumerate(csmses):
        first = {}
        for e in cs.events:
            if e.get("event") == "connect":
                first[e["id"]] = None
            elif e.get("event") == "call" and e["id"] in first and first[e["id"]] is None:
                first[e["id"]] = e
                p = e["params"]
                if e["method"] != "BootNotification" or p.get("chargePointSerialNumber") != \
                        e["id"] or p.get("chargePointVendor") != "phasewise-sim":
                    out.append(f"CSMS run {run}: {e['id']} began with {e['method']} {p}")
    return out


def overloads(reports, reaction_s, down=None):
    """Judges the simulator's ground truth in real time: the model runs faster than real time
    (its cars follow an offer in 1-5 simulated s) but phasewise reacts in real milliseconds, so a
    line above its limit counts once it stays there longer than the reaction window of wall
    time. The start is left out until every OCPP connector has a profile in force and no line is
    above its limit: a charge point offers its maximum until the central system sets it up, for a
    moment that the speed stretches to simulated minutes. Returns (episodes beyond the window,
    max load % of a limit, the simulated hours judged)."""
    first = next((i for i, r in enumerate(reports)
                  if all(c["alloc_seq"] > 0 for c in r["chargers"] if c["id"] in OCPP) and
                  all(a <= b for n in r["nodes"] for a, b in zip(n["load_a"], n["limit_a"]))),
                 None)
    check(first is not None, "the OCPP chargers never had a profile in force")
    judged = reports[first:]
    beyond, worst, open_at = [], 0.0, {}
    for r in judged:
        for n in r["nodes"]:
            for line, (load, limit) in enumerate(zip(n["load_a"], n["limit_a"])):
                worst = max(worst, 100.0 * load / limit) if limit > 0 else worst
                key = (n["id"], line)
                if load > limit:
                    start = open_at.setdefault(key, (r["wall_ms"], r["t_ms"], load))
                    if r["wall_ms"] - start[0] > reaction_s * 1000:
                        why = ""
                        if down and down[0] <= start[0] <= down[1]:
                            why = (" (began while phasewise was killed: a car at an idle "
                                   "connector draws its failsafe default on top of the "
                                   "sessions that keep their raised limits)")
                        beyond.append(f"node {n['id']} L{line + 1} at {load:.1f} A on "
                                      f"{limit:.0f} A for {r['wall_ms'] - start[0]} ms of real "
                                      f"time from simulated {start[1] / 1000:.0f} s{why}")
                        open_at[key] = (r["wall_ms"], r["t_ms"], load)  # said once per window
                else:
                    open_at.pop(key, None)
    hours = (judged[-1]["t_ms"] - judged[0]["t_ms"]) / 3600000
    return beyond, worst, hours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--mode", choices=sorted(MODES), default="short")
    ap.add_argument("--kill-at-sim", type=float, default=None,
                    help="simulated second at which phasewise is killed (0: after kill_at_s of "
                         "the outage, in real time)")
    ap.add_argument("--no-kill", action="store_true",
                    help="leave out step c (the SIGKILL): to check the rest on a build whose "
                         "relay queue does not survive a restart")
    args = ap.parse_args()
    skip_without_peers()
    m = MODES[args.mode]

    with pwtest.workspace("pw-ocpp-lcf-") as (tmp, procs):
        csms = CentralSystem(passwords={"GB-03": UP_PASSWORD}, tx_base=TX_BASE[0],
                             log=os.path.join(tmp, "csms1.log"))
        csmses = [csms]
        try:
            csms.start()
            ocpp_port = pwtest.free_tcp_port()
            cfg, cfg_path, port = write_config(tmp, ocpp_port, csms.port)
            pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
            sim = fc.start_sim(procs, tmp, cfg_path, args.sim, [
                "--verbose", "--base-load", "0.1", "--arrivals", "uniform", "--cars",
                str(m["cars"]), "--speed", str(m["speed"])])
            truth = SimTruth(sim.logfile)
            t0 = time.monotonic()

            # ---- a) everything up: every charge point boots at the CSMS, sessions run -------
            def ready():
                oc = {c["id"]: c for c in fc.state(port)["chargers"]}
                return all(oc[cid].get("ocpp", {}).get("connected") and
                           oc[cid]["ocpp"].get("upstream") == "connected" for cid in OCPP)
            pwtest.wait_for("every charge point connected, its upstream too", ready, 30)
            for cp in CPS:
                csms.wait_for(lambda e, cp=cp: e.get("event") == "call" and e["id"] == cp and
                              e["method"] == "BootNotification", 10, what=f"{cp}'s boot")
            conn = {e["id"]: e for e in csms.find(lambda e: e.get("event") == "connect")}
            check(conn["GB-03"]["password"] and not conn["GB-01"]["password"],
                  "Basic auth upstream only where configured")
            log(f"a) all {len(CPS)} charge points booted at the CSMS in "
                f"{time.monotonic() - t0:.1f} s")
            fc.sleep_watch(m["up_s"], [pw, sim])
            check(truth.read().txs, "no transaction began while the CSMS was up")
            log(f"a) CSMS up: {len(truth.txs)} transactions begun so far")

            # ---- b) the CSMS goes away for real time; cars come and go ----------------------
            csms.stop()
            truth.read()
            t_away = time.monotonic()
            pwtest.wait_for("the upstream shown down", lambda: all(
                c["ocpp"].get("upstream") not in ("connected", None)
                for c in fc.state(port)["chargers"] if c["id"] in OCPP), 15)
            log(f"b) CSMS stopped: upstream "
                f"{fc.state(port)['chargers'][0]['ocpp']['upstream']!r}")
            kill_sim_s = m.get("kill_sim_s") if args.kill_at_sim is None else args.kill_at_sim
            if kill_sim_s:
                pwtest.wait_for(f"simulated {kill_sim_s} s", lambda: (
                    sim_now_ms(sim.report) >= kill_sim_s * 1000), m["kill_at_s"] + 20, 0.05)
            else:
                fc.sleep_watch(m["kill_at_s"] - (time.monotonic() - t_away), [pw, sim])

            # ---- c) phasewise SIGKILLed and restarted while the CSMS is away ---------------
            truth.read()
            before_kill = sum(c["answered"] and c["t"] >= t_away
                              for cp in CPS for c in truth.calls[cp])
            down = None
            if args.no_kill:
                log(f"c) left out (--no-kill): {before_kill} calls waiting for the CSMS")
            else:
                down = [time.time() * 1000, None]
                pw.send_signal(signal.SIGKILL)
                pw.wait(5)
                log(f"c) phasewise SIGKILLed {time.monotonic() - t_away:.0f} s into the "
                    f"outage (simulated {sim_now_ms(sim.report) / 1000:.0f} s), {before_kill} "
                    f"calls answered and waiting for the CSMS")
                fc.sleep_watch(m["down_s"], [sim])
                pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise,
                                        name="phasewise-2")
                pwtest.wait_for("the charge points reconnected", lambda: all(
                    c.get("ocpp", {}).get("connected")
                    for c in fc.state(port)["chargers"] if c["id"] in OCPP), 30)
                down[1] = time.time() * 1000
                log("c) restarted; every charge point reconnected")

            # ---- d) more transactions while still away; the CSMS back on the same port ------
            fc.sleep_watch(m["away_s"] - (time.monotonic() - t_away), [pw, sim])
            truth.read()
            away = [c for cp in CPS for c in truth.calls[cp]
                    if c["answered"] and c["t"] >= t_away]
            tx_away = [k for k, t in truth.txs.items() if t["t_start"] >= t_away or
                       t.get("t_stop", 0) >= t_away]
            log(f"d) while the CSMS was away ({time.monotonic() - t_away:.0f} s): "
                f"{len(away)} calls answered by phasewise "
                f"({collections.Counter(c['action'] for c in away)}), "
                f"{sum(truth.txs[k]['t_start'] >= t_away for k in tx_away)} transactions begun, "
                f"{sum(truth.txs[k].get('t_stop', 0) >= t_away for k in tx_away)} ended")
            check(any(truth.txs[k]["t_start"] >= t_away for k in tx_away) and
                  any(truth.txs[k].get("t_stop", 0) >= t_away for k in tx_away),
                  "no transaction began and none ended while the CSMS was away")
            queued = {c["id"]: c["ocpp"].get("upstream_queued")
                      for c in fc.state(port)["chargers"] if c["id"] in OCPP}
            log(f"d) phasewise says these calls wait for the CSMS (upstream_queued): {queued}")
            csms2 = CentralSystem(port=csms.port, passwords={"GB-03": UP_PASSWORD},
                                  tx_base=TX_BASE[1], log=os.path.join(tmp, "csms2.log"))
            csmses.append(csms2)
            truth.read()
            t_back = time.monotonic()  # what phasewise answered until now waited for the CSMS
            csms2.start()

            # ---- e) within a bounded time every call waiting reaches it ---------------------
            def missing():
                return compare(truth.read(), csmses, final=False, until=t_back)[0]
            try:
                pwtest.wait_for("every call answered before the CSMS came back at the CSMS",
                                lambda: not missing(), m["drain_s"], interval=1)
            except AssertionError:
                left = missing()
                wrong = [p for p in compare(truth, csmses)[0] if "never at the CSMS" not in p]
                raise AssertionError(f"e) {len(left)} calls never reached the CSMS within "
                                     f"{m['drain_s']} s, first: {left[:4]}; other problems: "
                                     f"{len(wrong)}, first: {wrong[:4]}")
            t_drain = time.monotonic() - t_back
            log(f"e) drained {t_drain:.1f} s after the CSMS came back")

            # ---- f) the CSMS's calls reach the charge point and have their effect ----------
            running = [(k, t) for k, t in truth.read().txs.items() if "meterStop" not in t]
            check(running, "no transaction running to trigger on")
            running.sort(key=lambda kt: kt[1]["t_start"])  # the oldest: begun before the kill
            (cp, conn_id, _), t = running[0]
            _, tx = csms_view(csmses)
            csms_tx = next(i for i, key in tx.items() if key == ["tx", *running[0][0]])
            mark = csms2.mark()
            r = csms2.call(cp, "TriggerMessage", {"requestedMessage": "MeterValues",
                                                  "connectorId": conn_id})
            check(r["response"]["status"] == "Accepted", f"TriggerMessage answered: {r}")
            e = csms2.wait_for(lambda e: e.get("event") == "call" and e["id"] == cp and
                               e["method"] == "MeterValues" and
                               e["params"].get("connectorId") == conn_id, 10, since=mark,
                               what="the triggered MeterValues")
            check(e["params"].get("transactionId") == csms_tx,
                  f"triggered MeterValues under the CSMS's id {csms_tx}: {e['params']}")
            log(f"f) TriggerMessage MeterValues reached {cp}/{conn_id}; its meter values came "
                f"back under the CSMS's id {csms_tx} (phasewise's {t['local']})")
            mark_down = len(truth.read().down[cp])
            r = csms2.call(cp, "RemoteStopTransaction", {"transactionId": csms_tx}, ok=False)
            pwtest.wait_for("RemoteStopTransaction at the charge point", lambda: [
                d for d in truth.read().down[cp][mark_down:]
                if d["action"] == "RemoteStopTransaction"], 10)
            d = [d for d in truth.down[cp][mark_down:] if d["action"] == "RemoteStopTransaction"]
            check(str(d[0]["payload"]["transactionId"]) == t["local"],
                  f"RemoteStopTransaction reached {cp} with phasewise's id {t['local']}: {d}")
            log(f"f) RemoteStopTransaction {csms_tx} reached {cp} as phasewise's {t['local']} "
                f"(the simulator answers {r.get('error', r.get('response'))})")

            # ---- the charge points stop; everything they were answered is at a CSMS --------
            fc.sleep_watch(m["after_s"], [pw, sim])
            check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")
            time.sleep(3)  # the last calls go up
            truth.read()
            problems, facts = compare(truth, csmses)
            problems += boots_first(csmses)
            problems += [f"strict: {p}" for cs in csmses for p in cs.problems()]
            check(truth.unparsed == 0, f"{truth.unparsed} frames cut in the simulator's log")
            reports = fc.read_report(sim.report)
            beyond, worst, hours = overloads(reports, cfg["balancer"]["reaction_s"], down)
            done = sum("meterStop" in t for t in truth.txs.values())
            log(f"transactions: {len(truth.txs)} begun, {done} ended; calls answered by "
                f"phasewise {facts['answered']}, at the CSMS {facts['at_csms']} (Boot and "
                f"Heartbeat apart); duplicate message ids {facts['dup_message_ids']}")
            log(f"max line load {worst:.1f} % of its limit over {hours:.1f} simulated h "
                f"(simulated time above a limit beyond the window, at speed {m['speed']}: "
                f"{max(max(n['over_beyond_ms']) for n in reports[-1]['nodes'])} ms)")
            code = procs.stop(pw)  # first, so that a sanitizer's exit check is never skipped
            check(not problems, f"{len(problems)} problems:\n  " + "\n  ".join(problems[:25]))
            log("e) every call once, in order, transactions under the CSMS's ids with the "
                "charge points' readings; no strict-mode violation")
            check(code == 0, f"phasewise exited {code} on SIGTERM")
            check(not beyond, f"{len(beyond)} overloads beyond the reaction window: {beyond[:5]}")
            log("no line over its limit beyond the reaction window; phasewise exited 0")
            log(f"done: CSMS away {t_back - t_away:.0f} s, drained in {t_drain:.1f} s, whole "
                f"run {time.monotonic() - t0:.0f} s")
        except PeerError as e:
            raise AssertionError(str(e)) from e
        finally:
            for cs in csmses:
                cs.stop()


if __name__ == "__main__":
    pwtest.run(main)
