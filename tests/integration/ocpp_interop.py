#!/usr/bin/env python3
"""OCPP 1.6J interoperability: phasewise as the central system of 20 charge points run by
ocpp-rpc in strict mode (tests/peers/ocpp_cp_peer.mjs, a library nobody here wrote), so every
frame phasewise sends is checked against the official 1.6 JSON schemas and any violation fails
the test. One unmetered facility whose main fuse cannot carry 20 cars at their maximum: checks the
setup after boot, TxProfile limits that fit the fuse at every moment of the peers' own timeline
(cuts before raises), raises after cars stop, sessions with their RFID tags, CALLERRORs for bad
frames, a flood, the password check at the upgrade, an unknown charge point that never gets
current, reconnects, and a SIGKILL and restart. Loopback only; skipped (77) without the npm
peers."""
import argparse
import hashlib
import itertools
import json
import os
import secrets
import signal
import threading
import time

import fault_common as fc
import pwtest
from ocpp_peer import ChargePoints, PeerError, skip_without_peers
from pwtest import check, log

N = 20
IDS = [f"CP-{i:02d}" for i in range(1, N + 1)]
FUSE_A = 100.0  # the main fuse, per line: 20 cars x 16 A would need 320 A
MARGIN_A = 2.0
MIN_A, MAX_A = 6.0, 16.0
WIRINGS = ["L1L2L3", "L2L3L1", "L3L1L2"]
WIRING = {cp: WIRINGS[i % 3] for i, cp in enumerate(IDS)}
FAILSAFE = {cp: 6.0 if i < 6 else 0.0 for i, cp in enumerate(IDS)}  # 36 A of failsafe in all
PASSWORDED = IDS[:5]
TAG = {cp: f"04A1B2{i + 1:02d}" for i, cp in enumerate(IDS)}
METER_S, MIN_INTERVAL_S, HEARTBEAT_S = 5, 2, 60
WAVE1 = IDS[:8]  # 8 x 16 A > 98 A: shared from the start
WAVE2 = IDS[8:14]  # 14 cars: about 7 A each
STOPPED = IDS[6:10]  # 10 cars left: about 9.8 A each (their connectors have no failsafe to keep)
BAD = "CP-14"  # sends the bad frames and the flood while its car charges
RECONNECT = IDS[10:14] + IDS[5:6]  # running, not stopped
UNKNOWN = "CP-99"
SETUP_METHODS = ("SetChargingProfile", "GetConfiguration", "ChangeConfiguration",
                 "TriggerMessage")
OCCURRENCE = ("OccurenceConstraintViolation", "OccurrenceConstraintViolation")  # 1.6, errata
STATE_FIELDS = ("online", "state", "limit_a")
OCPP_FIELDS = ("connected", "profile", "problem", "default_profile", "tx_id", "id_tag")
_refs = itertools.count(1)


def password_hash(password):
    salt = os.urandom(16)
    return "sha256:%s:%s" % (salt.hex(), hashlib.sha256(salt + password.encode()).hexdigest())


def write_config(tmp, http_port, ocpp_port, passwords):
    cfg = {
        "version": 1,
        "site": "OCPP interop (ocpp-rpc strict)",
        "grid": "TN",
        "network": {"port": pwtest.free_udp_port(), "interface": "127.0.0.1", "ttl": 1},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "balancer": {"reaction_s": 5, "lease_s": 30, "tick_ms": 500},
        "ocpp": {"listen": f"127.0.0.1:{ocpp_port}", "meter_interval_s": METER_S,
                 "min_interval_s": MIN_INTERVAL_S, "heartbeat_s": HEARTBEAT_S,
                 "daily_writes": 500, "authorize": "local_list",
                 "charge_points": [{"id": cp, "password_hash": password_hash(passwords[cp])}
                                   for cp in PASSWORDED]},
        "tags": [{"id": TAG[cp], "name": f"Car of {cp}"} for cp in IDS],
        # No meter: the limits come from the fuse alone.
        "nodes": [{"id": "main", "name": "Main fuse", "parent": None, "limit_a": FUSE_A,
                   "margin_a": MARGIN_A}],
        "chargers": [{"id": charger(cp), "name": f"Bay {cp}", "node": "main",
                      "link": {"ocpp": {"id": cp, "connector": 1}}, "wiring": WIRING[cp],
                      "min_a": MIN_A, "max_a": MAX_A, "failsafe_a": FAILSAFE[cp]}
                     for cp in IDS],
    }
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def charger(cp):
    return "c" + cp[3:]


def rotation(wiring):
    """ConnectorPhaseRotation of a connector wired so: terminal L1 on grid L2 is "S" first."""
    return "".join("RST"[int(wiring[2 * t + 1]) - 1] for t in range(3))


def line_of(wiring, terminal):
    return int(wiring[2 * terminal + 1]) - 1


# ---- the peers' side -------------------------------------------------------------------------

def send_all(peer, cmds, timeout=15):
    """Sends every command at once and waits for all results (in order); fails on any error."""
    since = peer.mark()
    refs = []
    for cmd in cmds:
        ref = f"all-{next(_refs)}"
        peer.send(dict(cmd, ref=ref))
        refs.append(ref)
    out = []
    for ref, cmd in zip(refs, cmds):
        r = peer.wait_for(lambda e, ref=ref: e.get("event") == "result" and e.get("ref") == ref,
                          timeout, since=since, what=f"the result of {cmd['cmd']} {cmd.get('id')}")
        check(r.get("ok"), f"{cmd['cmd']} {cmd.get('id')} failed: {r.get('error')}")
        out.append(r)
    return out


def period0(cs):
    return cs["chargingSchedule"]["chargingSchedulePeriod"][0]


def replaces(q, connector, p):
    """Whether installed profile q gives way to p (OCPP 1.6 section 5.16, as the peer does)."""
    return q["id"] == p["id"] or (q["connector"] == connector and q["level"] == p["level"] and
                                  q["purpose"] == p["purpose"])


class Model:
    """The charge points' profiles and transactions rebuilt from the peer's event stream, in the
    order the peer saw them (its timestamps): what each connector may draw at every moment."""

    def __init__(self, peer):
        self.peer = peer
        self.pos = 0
        self.profiles = {cp: [] for cp in IDS}
        self.tx = {cp: None for cp in IDS}
        self.worst = [0.0, 0.0, 0.0]
        self.increases = []  # (event index, t, cp, before, after, line loads after)
        self.changes = []  # (event index, t, cp, before, after) of charging connectors

    def effective(self, cp):
        """(limit A, phases) connector 1 of cp may draw now: its TxProfile for the running
        transaction, else its TxDefaultProfile (connector 1 or 0, highest stack level), else
        MAX_A (no profile at all)."""
        tx = self.tx[cp]
        profs = self.profiles[cp]
        if tx is not None:
            txp = [p for p in profs if p["purpose"] == "TxProfile" and p["connector"] == 1 and
                   p["tx"] in (None, tx)]
            if txp:
                p = max(txp, key=lambda p: p["level"])
                return p["limit"], p["phases"]
        dflt = [p for p in profs if p["purpose"] == "TxDefaultProfile" and p["connector"] in (0, 1)]
        if dflt:
            p = max(dflt, key=lambda p: (p["level"], p["connector"]))
            return p["limit"], p["phases"]
        return MAX_A, 3

    def loads(self):
        """Per grid line: the sum of what every connector with a transaction may draw."""
        load = [0.0, 0.0, 0.0]
        for cp in IDS:
            if self.tx[cp] is None:
                continue
            limit, phases = self.effective(cp)
            for t in range(phases):
                load[line_of(WIRING[cp], t)] += limit
        return load

    def update(self):
        events = self.peer.find(lambda e: True, self.pos)
        for k, e in enumerate(events, self.pos):
            self._apply(k, e)
        self.pos += len(events)

    def _apply(self, k, e):
        cp = e.get("id")
        if cp not in self.profiles:
            return
        ev = e.get("event")
        if ev == "result" and e.get("ok") and e.get("cmd") == "start" and \
                e.get("idTagStatus") == "Accepted":
            self.tx[cp] = e["transactionId"]
        elif ev == "result" and e.get("ok") and e.get("cmd") == "stop":
            self.tx[cp] = None
            self.profiles[cp] = [p for p in self.profiles[cp] if p["purpose"] != "TxProfile"]
        elif ev == "call" and e.get("method") == "SetChargingProfile" and \
                e.get("result", {}).get("status") == "Accepted":
            cs = e["params"]["csChargingProfiles"]
            p = {"id": cs["chargingProfileId"], "connector": e["params"]["connectorId"],
                 "purpose": cs["chargingProfilePurpose"], "level": cs["stackLevel"],
                 "tx": cs.get("transactionId"), "limit": float(period0(cs)["limit"]),
                 "phases": period0(cs).get("numberPhases", 3)}
            if p["purpose"] == "TxProfile" and p["tx"] is not None:
                self.tx[cp] = p["tx"]  # accepted: the charger had that transaction already
            before = self.effective(cp)[0]
            self.profiles[cp] = [q for q in self.profiles[cp]
                                 if not replaces(q, p["connector"], p)] + [p]
            after = self.effective(cp)[0]
            if self.tx[cp] is not None and after != before:
                self.changes.append((k, e["t"], cp, before, after))
                if after > before:
                    load = self.loads()
                    self.increases.append((k, e["t"], cp, before, after, load))
                    self.worst = [max(a, b) for a, b in zip(self.worst, load)]
        elif ev == "call" and e.get("method") == "ClearChargingProfile" and \
                e.get("result", {}).get("status") == "Accepted":
            prm = e["params"]
            self.profiles[cp] = [
                q for q in self.profiles[cp]
                if not ((prm.get("id") is None or q["id"] == prm["id"]) and
                        (prm.get("connectorId") is None or q["connector"] == prm["connectorId"])
                        and (prm.get("chargingProfilePurpose") is None or
                             q["purpose"] == prm["chargingProfilePurpose"]) and
                        (prm.get("stackLevel") is None or q["level"] == prm["stackLevel"]))]


class Cars:
    """The cars behind the charge points: a car charges at whatever its connector may draw now
    and says so in MeterValues (per-phase Current.Import, Current.Offered, the energy register)
    each time that changes, as a car following its pilot signal would."""

    def __init__(self, peer, model):
        self.peer = peer
        self.model = model
        self.energy = {cp: 1000 * (i + 1) for i, cp in enumerate(IDS)}
        self.reported = {}  # cp -> the limit last reported as drawn
        self.offline = set()  # charge points not connected now: their cars cannot report

    def running(self):
        self.model.update()
        return [cp for cp in IDS if self.model.tx[cp] is not None]

    def meter_cmd(self, cp):
        limit, phases = self.model.effective(cp)
        self.energy[cp] += 50
        self.reported[cp] = limit
        draw = round(min(limit, MAX_A), 1)
        return {"cmd": "meter", "id": cp, "connector": 1, "currents": [draw] * phases,
                "offered": round(limit, 1), "energyWh": self.energy[cp]}

    def follow(self):
        """MeterValues for every car whose limit changed since it last reported."""
        cmds = [self.meter_cmd(cp) for cp in self.running()
                if self.reported.get(cp) != self.model.effective(cp)[0] and
                cp not in self.offline]
        if cmds:
            send_all(self.peer, cmds)

    def start(self, ids):
        send_all(self.peer, [{"cmd": "status", "id": cp, "connector": 1, "status": "Preparing"}
                             for cp in ids])
        res = send_all(self.peer, [{"cmd": "start", "id": cp, "connector": 1, "idTag": TAG[cp],
                                    "meterStart": self.energy[cp]} for cp in ids])
        for cp, r in zip(ids, res):
            check(r["idTagStatus"] == "Accepted",
                  f"{cp}: StartTransaction with the config's tag {TAG[cp]} answered "
                  f"{r['response']}")
        send_all(self.peer, [{"cmd": "status", "id": cp, "connector": 1, "status": "Charging"}
                             for cp in ids])
        self.model.update()
        send_all(self.peer, [self.meter_cmd(cp) for cp in ids])
        return {cp: r["transactionId"] for cp, r in zip(ids, res)}

    def stop(self, ids):
        send_all(self.peer, [{"cmd": "stop", "id": cp, "connector": 1, "reason": "Local",
                              "meterStop": self.energy[cp] + 100} for cp in ids])
        send_all(self.peer, [{"cmd": "status", "id": cp, "connector": 1, "status": "Available"}
                             for cp in ids])
        self.model.update()
        for cp in ids:
            self.reported.pop(cp, None)

    def settle(self, what, quiet_s=MIN_INTERVAL_S + 2.5, timeout=30, pred=None):
        """Follows the limits until no profile has changed for quiet_s (and pred() holds)."""
        deadline = time.monotonic() + timeout
        last_change = time.monotonic()
        seen = len(self.model.changes)
        while True:
            self.follow()
            if len(self.model.changes) != seen:
                seen = len(self.model.changes)
                last_change = time.monotonic()
            if time.monotonic() - last_change >= quiet_s and (pred is None or pred()):
                return
            check(time.monotonic() < deadline, f"{what}: limits still moving after {timeout} s")
            time.sleep(0.2)


def check_fuse(model, what):
    """At every raise the peers accepted so far, the connectors with a transaction could draw
    no more than the fuse on any line (a raise before the cuts it needs would break this)."""
    model.update()
    for k, t, cp, before, after, load in model.increases:
        check(max(load) <= FUSE_A + 1e-6,
              f"{what}: when {cp} was raised from {before} A to {after} A (event {k}, t={t}), "
              f"the running connectors' limits summed to {[round(x, 1) for x in load]} A, above "
              f"the {FUSE_A:g} A fuse")
    return model.worst


def limits_now(model, ids):
    model.update()
    return {cp: model.effective(cp)[0] for cp in ids}


def peer_limit(state):
    """The limit connector 1 holds per the peer's own state: its TxProfile for the running
    transaction, else its default profile (independent of Model)."""
    tx = state["transactions"].get("1")
    profs = state["profiles"]
    txp = [p for p in profs if p["purpose"] == "TxProfile" and p["connectorId"] == 1 and
           tx is not None and p.get("transactionId") in (None, tx)]
    if txp:
        return max(txp, key=lambda p: p["stackLevel"])["limit"]
    d = [p for p in profs if p["purpose"] == "TxDefaultProfile" and p["connectorId"] in (0, 1)]
    return max(d, key=lambda p: (p["stackLevel"], p["connectorId"]))["limit"] if d else None


def doc_chargers(port):
    return {c["id"]: c for c in fc.state(port)["chargers"]}


def snapshot(doc):
    """The fields of each charger that bad input from a charge point must not change."""
    return {cid: tuple(c.get(k) for k in STATE_FIELDS) +
            tuple(c.get("ocpp", {}).get(k) for k in OCPP_FIELDS) for cid, c in doc.items()}


def scp_events(peer, since, ids=None):
    return peer.find(lambda e: e.get("event") == "call" and
                     e.get("method") == "SetChargingProfile" and
                     (ids is None or e.get("id") in ids), since)


def rejected_count(port, reason):
    key = f'phasewise_datagrams_rejected_total{{transport="ocpp",reason="{reason}"}}'
    return fc.metrics(port).get(key, 0.0)


# ---- the parts ---------------------------------------------------------------------------------

def check_setup(peer, port, since, ids, what, first=True):
    """Each charge point got its setup calls after connecting (TxDefaultProfile at its
    failsafe, GetConfiguration, TriggerMessage and, on a first setup, MeterValuesSampledData one
    measurand at a time and MeterValueSampleInterval); the state document shows it connected
    with its default profile. Returns (seconds, last measurands set, triggers, methods seen)."""
    def has_default(mine):
        return any(e["method"] == "SetChargingProfile" and
                   e["params"]["csChargingProfiles"]["chargingProfilePurpose"] ==
                   "TxDefaultProfile" for e in mine)

    def all_set():
        calls = peer.find(lambda e: e.get("event") == "call" and e.get("id") in ids, since)
        for cp in ids:
            mine = [e for e in calls if e["id"] == cp]
            methods = {e["method"] for e in mine}
            if not {"GetConfiguration", "TriggerMessage"} <= methods or not has_default(mine):
                return False
            if first and not any(e["method"] == "ChangeConfiguration" and
                                 e["params"]["key"] == "MeterValueSampleInterval" for e in mine):
                return False
        doc = doc_chargers(port)
        return all(doc[charger(cp)]["ocpp"]["connected"] and
                   doc[charger(cp)]["ocpp"]["default_profile"] and
                   "Current.Import" in doc[charger(cp)]["ocpp"]["measurands"].split(",")
                   for cp in ids)
    t0 = time.monotonic()
    pwtest.wait_for(f"{what}: setup calls for {len(ids)} charge points and their default "
                    "profiles and measurands in the state document", all_set, 20)
    elapsed = time.monotonic() - t0
    calls = peer.find(lambda e: e.get("event") == "call" and e.get("id") in ids, since)
    methods = set()
    measurands, trig = None, []
    for cp in ids:
        mine = [e for e in calls if e["id"] == cp]
        methods |= {e["method"] for e in mine}
        dflt = [e for e in mine if e["method"] == "SetChargingProfile" and
                e["params"]["csChargingProfiles"]["chargingProfilePurpose"] ==
                "TxDefaultProfile"]
        cs = dflt[0]["params"]["csChargingProfiles"]
        check(dflt[0].get("result", {}).get("status") == "Accepted",
              f"{what}: {cp}: its TxDefaultProfile was answered {dflt[0].get('result')}")
        check(cs["chargingSchedule"]["chargingRateUnit"] == "A" and
              abs(period0(cs)["limit"] - FAILSAFE[cp]) < 1e-9,
              f"{what}: {cp}: TxDefaultProfile {cs['chargingSchedule']} is not its failsafe "
              f"{FAILSAFE[cp]:g} A")
        trig += [e["params"]["requestedMessage"] for e in mine
                 if e["method"] == "TriggerMessage"]
        if not first:
            continue
        # No transaction yet: the failsafe default comes before any other profile.
        firsts = [e for e in mine if e["method"] == "SetChargingProfile"]
        check(firsts[0] is dflt[0],
              f"{cp}: a {firsts[0]['params']['csChargingProfiles']['chargingProfilePurpose']} "
              "came before the failsafe default profile")
        mvs = [e["params"]["value"] for e in mine if e["method"] == "ChangeConfiguration" and
               e["params"]["key"] == "MeterValuesSampledData"]
        check(mvs, f"{cp}: MeterValuesSampledData was never set")
        measurands = mvs[-1]
        check("Current.Import" in measurands.split(","),
              f"{cp}: MeterValuesSampledData ended as {measurands!r}, without Current.Import")
        grown = [len([m for m in v.split(",") if m]) for v in mvs]
        check(grown == list(range(1, len(grown) + 1)),
              f"{cp}: MeterValuesSampledData not set one measurand at a time: {mvs}")
        interval = [e for e in mine if e["method"] == "ChangeConfiguration" and
                    e["params"]["key"] == "MeterValueSampleInterval"]
        check(interval[-1]["params"]["value"] == str(METER_S),
              f"{cp}: MeterValueSampleInterval set to {interval[-1]['params']['value']!r}, "
              f"the config says {METER_S}")
    return elapsed, measurands, sorted(set(trig)), sorted(methods)


def part_boot(peer, port, model):
    mark = peer.mark()
    t0 = time.monotonic()
    res = send_all(peer, [{"cmd": "connect", "id": cp} for cp in IDS])
    check(all(r.get("protocol") == "ocpp1.6" for r in res),
          f"subprotocols agreed: {sorted({r.get('protocol') for r in res})}")
    boots = send_all(peer, [{"cmd": "boot", "id": cp, "model": f"IOP-{cp}"} for cp in IDS])
    for cp, r in zip(IDS, boots):
        resp = r["response"]
        check(resp["status"] == "Accepted" and resp["interval"] == HEARTBEAT_S,
              f"{cp}: BootNotification answered {resp}, not Accepted with interval "
              f"{HEARTBEAT_S}")
    log(f"1. boot: {N} charge points connected (ocpp1.6) and booted in "
        f"{time.monotonic() - t0:.2f} s; every BootNotification Accepted, interval "
        f"{HEARTBEAT_S} s")
    elapsed, measurands, trig, _ = check_setup(peer, port, mark, IDS, "boot")
    doc = doc_chargers(port)
    for cp in IDS:
        o = doc[charger(cp)]["ocpp"]
        check(o["vendor"] == "phasewise-test" and o["model"] == f"IOP-{cp}",
              f"{charger(cp)}: vendor/model {o['vendor']!r}/{o['model']!r} not the boot's")
    log(f"1. setup: all {N} got TxDefaultProfile at their failsafe (6 A on CP-01..06, 0 A on the "
        f"others) before any other profile, GetConfiguration, MeterValuesSampledData one "
        f"measurand at a time up to {measurands!r}, MeterValueSampleInterval={METER_S}, "
        f"TriggerMessage {trig}; state document connected + default_profile for "
        f"all {N} within {elapsed:.1f} s")
    st, events = pwtest.http_json(port, "/api/events?kind=ocpp_rotation")
    rot = [e for e in (events or {}).get("events", [])] if st == 200 else []
    check(not rot, f"ConnectorPhaseRotation that matches the wiring was flagged: {rot[:3]}")
    model.update()


def part_sessions(peer, port, model, cars):
    # Wave 1: 8 cars, 8 x 16 A does not fit 98 A.
    mark1 = peer.mark()
    cars.start(WAVE1)
    cars.settle("wave 1", pred=lambda: all(
        any(p["purpose"] == "TxProfile" for p in model.profiles[cp]) for cp in WAVE1))
    lim1 = limits_now(model, WAVE1)
    worst = check_fuse(model, "wave 1")
    check(all(MIN_A <= v <= MAX_A for v in lim1.values()), f"wave 1 limits {lim1}")
    check(sum(lim1.values()) <= FUSE_A, f"wave 1 limits {lim1} sum above the fuse")
    check(max(lim1.values()) - min(lim1.values()) <= 1.05,
          f"wave 1: equal cars got unequal limits {lim1}")
    n1 = len(scp_events(peer, mark1))
    log(f"2. wave 1: 8 cars charging (tags from the config accepted), {n1} SetChargingProfile; "
        f"limits {sorted(set(lim1.values()))} A, sum {sum(lim1.values()):.1f} A <= "
        f"{FUSE_A:g} A; worst line at any raise {max(worst):.1f} A")

    # Wave 2: 6 more cars: the first 8 must come down before the newcomers go up.
    changes_before = len(model.changes)
    cars.start(WAVE2)
    cars.settle("wave 2", pred=lambda: all(
        any(p["purpose"] == "TxProfile" for p in model.profiles[cp]) for cp in WAVE2))
    running = WAVE1 + WAVE2
    lim2 = limits_now(model, running)
    worst = check_fuse(model, "wave 2")
    episode = model.changes[changes_before:]
    downs = [c for c in episode if c[4] < c[3]]
    ups = [c for c in episode if c[4] > c[3]]
    check(downs and ups, f"wave 2: limits did not move both ways: {episode}")
    check(downs[0][0] < ups[0][0],
          f"wave 2: an increase ({ups[0][2]} {ups[0][3]} -> {ups[0][4]} A) reached the charge "
          f"points before the first decrease ({downs[0][2]} {downs[0][3]} -> {downs[0][4]} A)")
    check(all(lim2[cp] < lim1[cp] for cp in WAVE1),
          f"wave 2: the first cars were not lowered: {lim1} -> {lim2}")
    check(all(MIN_A <= v for v in lim2.values()) and sum(lim2.values()) <= FUSE_A,
          f"wave 2 limits {lim2}")
    check(max(lim2.values()) - min(lim2.values()) <= 1.05,
          f"wave 2: equal cars got unequal limits {lim2}")
    log(f"2. wave 2: 14 cars; {len(downs)} decreases and {len(ups)} increases, the first "
        f"decrease {ups[0][1] - downs[0][1]} ms before the first increase; at every raise the "
        f"lines carried at most {max(worst):.1f} A of {FUSE_A:g} A; limits now "
        f"{sorted(set(lim2.values()))} A (sum {sum(lim2.values()):.1f} A)")

    # Per the state document too: each charging car's limit is what its charge point holds.
    doc = doc_chargers(port)
    for cp in running:
        c = doc[charger(cp)]
        check(c["state"] == "C" and abs(c["limit_a"] - lim2[cp]) <= 0.05,
              f"{charger(cp)}: state document {c['state']} {c['limit_a']} A, the charge point "
              f"holds {lim2[cp]} A")
        check(c["ocpp"]["tx_id"] and c["ocpp"]["id_tag"].upper() == TAG[cp],
              f"{charger(cp)}: tx_id/id_tag {c['ocpp']['tx_id']!r}/{c['ocpp']['id_tag']!r}")
    # The test's timeline agrees with what each charge point says it holds.
    for cp in running:
        held = peer_limit(peer.state(cp))
        check(held is not None and abs(held - lim2[cp]) <= 1e-9,
              f"{cp}: the peer holds {held} A, the test's timeline {lim2[cp]} A")
    txs = {cp: model.tx[cp] for cp in running}
    if len(set(txs.values())) != len(txs):
        log(f"2. note: transaction ids repeat across charge points: {txs}")

    # Stop 4: the other 10 are raised, within the minimum interval of a raise (plus a tick).
    remaining = [cp for cp in running if cp not in STOPPED]
    changes_before = len(model.changes)
    t_stop = int(time.time() * 1000)
    cars.stop(STOPPED)
    time.sleep(1)
    doc = doc_chargers(port)  # for the failure message: why a raise waits
    why = {k: (c["state"], c["current_a"], c["limit_a"], c["reason"]) for k, c in doc.items()
           if k in (charger(STOPPED[0]), charger(remaining[0]))}
    cars.settle("after the stops", pred=lambda: all(
        model.effective(cp)[0] > lim2[cp] for cp in remaining))
    lim3 = limits_now(model, remaining)
    check_fuse(model, "after the stops")
    raises = {}
    for k, t, cp, before, after in model.changes[changes_before:]:
        if after > before and cp not in raises:
            raises[cp] = t - t_stop
    check(set(raises) == set(remaining),
          f"after 4 stops, raised only {sorted(raises)} of {remaining}")
    check(all(lim3[cp] > lim2[cp] for cp in remaining), f"limits {lim2} -> {lim3}")
    slowest = max(raises.values())
    check(slowest <= (MIN_INTERVAL_S + 2) * 1000,
          f"after the stops, a raise took {slowest} ms (min_interval_s {MIN_INTERVAL_S}); "
          f"1 s after the stops the state document said (state, current_a, limit_a, reason) "
          f"{why}")
    check(sum(lim3.values()) <= FUSE_A, f"limits after the stops {lim3}")
    log(f"2. 4 stopped: the other 10 raised to {sorted(set(lim3.values()))} A within "
        f"{min(raises.values())}..{slowest} ms of the stops (min_interval_s {MIN_INTERVAL_S})")

    # The sessions, with their tags.
    def sessions_ok():
        st, body = pwtest.http_json(port, "/api/sessions?limit=500")
        if st != 200:
            return None
        rows = {r["charger"]: r for r in body["sessions"]}
        ok = all(charger(cp) in rows and (rows[charger(cp)]["id_tag"] or "").upper() == TAG[cp]
                 for cp in running)
        ok = ok and all(rows[charger(cp)]["end_ms"] is not None for cp in STOPPED)
        return rows if ok else None
    rows = pwtest.wait_for("the 14 sessions in /api/sessions with their tags, 4 ended",
                           sessions_ok, 15)
    log(f"2. /api/sessions: 14 sessions with their id_tag (e.g. {charger(STOPPED[0])} "
        f"{rows[charger(STOPPED[0])]['id_tag']} ended, {charger(BAD)} "
        f"{rows[charger(BAD)]['id_tag']} open)")
    return remaining


def health_watch(port, stop, out):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            st, _ = pwtest.http_json(port, "/api/health", timeout=3)
        except OSError as e:
            st = repr(e)
        out.append((time.monotonic() - t0, st))
        time.sleep(0.1)


def part_bad_frames(peer, port, model, cars, running):
    doc0 = snapshot(doc_chargers(port))
    lim0 = limits_now(model, running)
    mark = peer.mark()
    malformed0 = rejected_count(port, "malformed")
    cases = [
        ("a number where a string is due", "ids:type/1 ÿ",
         '[2,"%s","StatusNotification",{"connectorId":1,"errorCode":42,"status":"Charging"}]',
         ("TypeConstraintViolation",)),
        ("a missing required field", "ids:missing/2",
         '[2,"%s","StatusNotification",{"connectorId":1,"status":"Charging"}]', OCCURRENCE),
        ("an unknown action", "ids:unknown/3", '[2,"%s","ChargeMeBaby",{}]', ("NotImplemented",)),
        ("a central-system action", "ids:cs-action/4",
         '[2,"%s","RemoteStartTransaction",{"idTag":"04A1B201"}]', ("NotSupported",)),
    ]
    for what, mid, text, codes in cases:
        peer.request({"cmd": "raw", "id": BAD, "text": text % mid})
        r = peer.wait_for(lambda e, mid=mid: e.get("event") in ("raw_reply", "unexpected_reply")
                          and e.get("id") == BAD and e.get("messageId") == mid, 5, since=mark,
                          what=f"the answer to {what}")
        check(r["event"] == "raw_reply" and r["type"] == "CALLERROR" and
              r["errorCode"] in codes,
              f"{what}: answered {r}, not a CALLERROR {' or '.join(codes)}")
        log(f"3. {what}: CALLERROR {r['errorCode']} ({r['errorDescription']!r}), message id "
            f"{mid!r} echoed exactly")
    peer.request({"cmd": "raw", "id": BAD, "text": '[2,"ids:broken/5","Heartbeat",{'})
    pwtest.wait_for("the malformed frame counted in /metrics",
                    lambda: rejected_count(port, "malformed") >= malformed0 + 1, 5)
    time.sleep(0.5)
    stray = peer.find(lambda e: e.get("event") in ("raw_reply", "unexpected_reply", "close") and
                      e.get("id") == BAD and e.get("messageId") not in [c[1] for c in cases],
                      mark)
    check(not stray, f"malformed JSON: unexpected answer or close {stray}")
    log(f"3. malformed JSON: no answer, counted (rejected reason=malformed "
        f"{malformed0:g} -> {rejected_count(port, 'malformed'):g})")
    scps = scp_events(peer, mark)
    check(not scps, f"bad frames from {BAD} changed profiles: {scps[:3]}")
    doc1 = snapshot(doc_chargers(port))
    check(doc1 == doc0, "bad frames changed the state document: " + str(
        {k: (doc0[k], doc1[k]) for k in doc0 if doc0[k] != doc1.get(k)}))
    check(limits_now(model, running) == lim0, "bad frames moved limits")
    log(f"3. after the bad frames: {charger(BAD)} unchanged (still charging at {lim0[BAD]} A), "
        f"the other {N - 1} unchanged, no profile sent")

    # A flood: 1,000 calls a second for 2 s. The API must stay responsive.
    mark = peer.mark()
    samples = []
    stop = threading.Event()
    watcher = threading.Thread(target=health_watch, args=(port, stop, samples), daemon=True)
    watcher.start()
    t_flood = time.monotonic()
    try:
        fl = peer.request({"cmd": "flood", "id": BAD, "count": 2000, "per_s": 1000,
                           "wait_ms": 1500}, timeout=20)
        # The API is watched for the flood's whole 2 s, also when the flooder is cut off early.
        time.sleep(max(0.0, t_flood + 2.5 - time.monotonic()))
    finally:
        stop.set()
        watcher.join(5)
    check(len(samples) >= 5, f"only {len(samples)} health probes during the flood")
    bad_health = [s for s in samples if s[1] != 200 or s[0] > 1.0]
    check(not bad_health, f"/api/health during the flood: {bad_health[:5]}")
    closed = peer.find(lambda e: e.get("event") == "close" and e.get("id") == BAD, mark)
    check(fl["invalid_results"] == 0, f"flood: {fl['invalid_results']} answers off the schema")
    check(closed or fl["answered"] < fl["sent"],
          f"flood: all {fl['sent']} calls answered and the connection kept: no protection")
    if closed:
        seen = f"cut off (close {closed[0]['code']} {closed[0]['reason']!r})"
    else:
        seen = (f"rate-limited: {fl['answered']} of {fl['sent']} answered, the rest dropped "
                "unanswered; the connection stays")
    log(f"3. flood from {BAD}: {fl['sent']} Heartbeats in {fl['sent_ms']} ms; {seen}; "
        f"/api/health answered {len(samples)} times, slowest "
        f"{max(s[0] for s in samples) * 1000:.0f} ms")
    others_running = [cp for cp in running if cp != BAD]
    scps = scp_events(peer, mark, others_running)
    check(not scps, f"the flood moved the others' limits: {scps[:3]}")
    check(limits_now(model, others_running) == {cp: lim0[cp] for cp in others_running},
          "the others' limits changed during the flood")
    doc2 = snapshot(doc_chargers(port))
    changed = {k: (doc0[k], doc2[k]) for k in doc0 if doc0[k] != doc2[k] and
               k != charger(BAD)}
    check(not changed, f"the flood changed other chargers: {changed}")
    log(f"3. during the flood the other {N - 1} kept their limits and state")

    # A frame over 64 KiB (on a new connection if the flood cost the old one).
    if closed:
        cars.offline.add(BAD)
        send_all(peer, [{"cmd": "connect", "id": BAD}])
    mark = peer.mark()
    big = '[2,"ids:big/6","Heartbeat",{"pad":"%s"}]' % ("x" * (70 * 1024))
    peer.request({"cmd": "raw", "id": BAD, "text": big})
    r = peer.wait_for(lambda e: e.get("id") == BAD and (
        e.get("event") == "close" or e.get("event") in ("raw_reply", "unexpected_reply") and
        e.get("messageId") == "ids:big/6"), 5, since=mark, what="the answer to a 70 KiB frame")
    check((r["event"] == "close" and r["code"] == 1009) or
          (r["event"] == "raw_reply" and r["type"] == "CALLERROR"),
          f"a 70 KiB frame: {r}, neither a close with 1009 nor refused")
    log(f"3. a 70 KiB frame: {r['event']} {r.get('code') or r.get('errorCode')} "
        f"{r.get('reason', '')!r}")
    # Back as a charger that restarted after losing its connection: it boots and reports.
    mark = peer.mark()
    cars.offline.add(BAD)
    pwtest.wait_for(f"{BAD} shown disconnected",
                    lambda: not doc_chargers(port)[charger(BAD)]["ocpp"]["connected"], 10)
    send_all(peer, [{"cmd": "connect", "id": BAD}])
    cars.offline.discard(BAD)
    send_all(peer, [{"cmd": "boot", "id": BAD, "model": f"IOP-{BAD}"}])
    send_all(peer, [{"cmd": "status", "id": BAD, "connector": 1, "status": "Charging"}])
    send_all(peer, [cars.meter_cmd(BAD)])

    def back():
        cars.follow()
        return tx_profiled(peer, mark, [BAD]) == {BAD}
    pwtest.wait_for(f"{BAD} set up again with a TxProfile for its transaction", back, 15)
    cars.settle("after the flood")
    check_fuse(model, "after the flood")


def part_passwords(peer, port, model, url, tmp):
    mark = peer.mark()
    intruders = ChargePoints(url, [{"id": PASSWORDED[1], "password": "wrong-password-000000"},
                                   {"id": PASSWORDED[2]}, {"id": UNKNOWN}],
                             log=os.path.join(tmp, "peer-intruders.log"))
    intruders.start()
    try:
        res = intruders.connect([PASSWORDED[1], PASSWORDED[2]], ok=False)
        for cp, r in res.items():
            check(not r["ok"], f"{cp}: connected with a wrong or no password")
            ref = intruders.find(lambda e, cp=cp: e.get("event") == "refused" and
                                 e.get("id") == cp)
            check(ref and ref[0]["status"] == 401,
                  f"{cp}: refused with {ref[0] if ref else 'no refused event'}, not HTTP 401")
        for cp in PASSWORDED[1:3]:
            check(peer.state(cp)["connected"] and doc_chargers(port)[charger(cp)]["ocpp"]
                  ["connected"], f"{cp}: the real charge point lost its connection")
        log(f"4. {PASSWORDED[1]} with a wrong password and {PASSWORDED[2]} with none refused at "
            "the upgrade with HTTP 401; the real ones stay connected")

        imark = intruders.mark()
        intruders.connect([UNKNOWN])
        intruders.boot(UNKNOWN)
        intruders.request({"cmd": "status", "id": UNKNOWN, "connector": 1,
                           "status": "Preparing"})
        st = intruders.request({"cmd": "start", "id": UNKNOWN, "connector": 1,
                                "idTag": TAG[IDS[-1]], "meterStart": 0})
        intruders.request({"cmd": "status", "id": UNKNOWN, "connector": 1, "status": "Charging"})
        intruders.request({"cmd": "meter", "id": UNKNOWN, "connector": 1,
                           "currents": [16, 16, 16], "offered": 16, "energyWh": 5})

        def listed():
            doc = fc.state(port)
            return [u for u in doc.get("unassigned", [])
                    if u.get("link", {}).get("ocpp", {}).get("id") == UNKNOWN]
        u = pwtest.wait_for(f"{UNKNOWN} in the state document's unassigned", listed, 10)
        time.sleep(MIN_INTERVAL_S + 3)  # time for any limit it would wrongly get
        profiles = scp_events(intruders, imark, [UNKNOWN])
        for e in profiles:
            cs = e["params"]["csChargingProfiles"]
            lim = period0(cs)["limit"]
            check(lim <= 0, f"{UNKNOWN} (not in the config) got a {cs['chargingProfilePurpose']}"
                  f" of {lim} {cs['chargingSchedule']['chargingRateUnit']}")
        check(intruders.problems() == [], f"intruder peer problems: {intruders.problems()}")
        log(f"4. {UNKNOWN} (not in the config) connected, listed as unassigned {u[0]['link']}, "
            f"started a transaction ({st['idTagStatus']}) and got "
            f"{len(profiles)} profiles, none above 0 A")
    finally:
        intruders.stop()
    check_fuse(model, "passwords")


def tx_profiled(peer, since, ids):
    """The charge points among ids that accepted a TxProfile since the mark."""
    return {e["id"] for e in scp_events(peer, since, ids)
            if e["params"]["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile" and
            e.get("result", {}).get("status") == "Accepted"}


def part_reconnect(peer, port, model, cars):
    send_all(peer, [{"cmd": "disconnect", "id": cp, "code": 1000, "reason": "network blip"}
                    for cp in RECONNECT])
    cars.offline |= set(RECONNECT)
    pwtest.wait_for("the 5 shown disconnected", lambda: not any(
        doc_chargers(port)[charger(cp)]["ocpp"]["connected"] for cp in RECONNECT), 10)
    t0 = time.monotonic()
    mark = peer.mark()
    send_all(peer, [{"cmd": "connect", "id": cp} for cp in RECONNECT])
    cars.offline -= set(RECONNECT)
    # A charger back after a network blip does not boot again: it reports what it is doing.
    send_all(peer, [{"cmd": "status", "id": cp, "connector": 1, "status": "Charging"}
                    for cp in RECONNECT])
    # Their meter values a while later: until then they still hold their limits, and their
    # room must not go to the others (a draw not yet known is no draw of 0 A).
    time.sleep(1.5)
    send_all(peer, [cars.meter_cmd(cp) for cp in RECONNECT])
    elapsed, _, _, methods = check_setup(peer, port, mark, RECONNECT, "reconnect", first=False)

    def limited():
        cars.follow()
        return tx_profiled(peer, mark, RECONNECT) == set(RECONNECT)
    pwtest.wait_for("TxProfiles for the 5 reconnected running transactions", limited, 20)
    took = time.monotonic() - t0
    check(took <= 15, f"the reconnected charge points got their limits only after {took:.1f} s")
    cars.settle("after the reconnect")
    check_fuse(model, "reconnect")
    log(f"5. 5 charging charge points disconnected and back without a new boot: set up again "
        f"({', '.join(methods)}) within {elapsed:.1f} s, TxProfiles for their transactions "
        f"within {took:.1f} s")


def part_restart(peer, port, model, cars, procs, tmp, cfg_path, binary, pw):
    running = cars.running()
    held = limits_now(model, running)
    mark = peer.mark()
    pw.send_signal(signal.SIGKILL)
    pw.wait(5)
    cars.offline |= set(IDS)
    pwtest.wait_for(f"close events for all {N}", lambda: {
        e["id"] for e in peer.find(lambda e: e.get("event") == "close", mark)} >= set(IDS), 10)
    log(f"5. phasewise SIGKILLed: all {N} connections closed; {len(running)} cars keep "
        f"their last limits (sum {sum(held.values()):.1f} A)")
    pw2 = fc.start_appliance(procs, tmp, cfg_path, port, binary, name="phasewise-2")
    t0 = time.monotonic()
    mark = peer.mark()
    send_all(peer, [{"cmd": "connect", "id": cp} for cp in IDS])
    cars.offline.clear()
    send_all(peer, [{"cmd": "boot", "id": cp, "model": f"IOP-{cp}"} for cp in IDS])
    send_all(peer, [{"cmd": "status", "id": cp, "connector": 1, "status": "Charging"}
                    for cp in running])
    send_all(peer, [cars.meter_cmd(cp) for cp in running])
    elapsed, _, _, _ = check_setup(peer, port, mark, IDS, "restart", first=False)

    def balancing():
        cars.follow()
        return tx_profiled(peer, mark, running) == set(running)
    pwtest.wait_for("TxProfiles for every running transaction after the restart", balancing, 25)
    took = time.monotonic() - t0
    cars.settle("after the restart")
    check_fuse(model, "restart")
    lim = limits_now(model, running)
    doc = doc_chargers(port)
    for cp in running:
        c = doc[charger(cp)]
        check(c["state"] == "C" and abs(c["limit_a"] - lim[cp]) <= 0.05,
              f"{charger(cp)} after the restart: {c['state']} {c['limit_a']} A, the charge "
              f"point holds {lim[cp]} A")
        held_now = peer_limit(peer.state(cp))
        check(held_now is not None and abs(held_now - lim[cp]) <= 1e-9,
              f"{cp}: the peer holds {held_now} A, the test's model {lim[cp]} A")
    check(sum(lim.values()) <= FUSE_A, f"limits after the restart {lim}")
    log(f"5. restarted: all {N} reconnected and set up within {elapsed:.1f} s, every running "
        f"transaction limited again within {took:.1f} s; limits {sorted(set(lim.values()))} A "
        f"(sum {sum(lim.values()):.1f} A <= {FUSE_A:g} A)")
    return pw2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()
    skip_without_peers()

    with pwtest.workspace("pw-ocpp-interop-") as (tmp, procs):
        http_port, ocpp_port = pwtest.free_tcp_port(), pwtest.free_tcp_port()
        passwords = {cp: secrets.token_urlsafe(18) for cp in PASSWORDED}  # 24 characters
        cfg_path = write_config(tmp, http_port, ocpp_port, passwords)
        pw = fc.start_appliance(procs, tmp, cfg_path, http_port, args.phasewise)
        url = f"ws://127.0.0.1:{ocpp_port}/ocpp"
        specs = [{"id": cp, "password": passwords.get(cp),
                  "config": {"ConnectorPhaseRotation": f"0.RST,1.{rotation(WIRING[cp])}"}}
                 for cp in IDS]
        for s in specs:
            if s["password"] is None:
                del s["password"]
        peer = ChargePoints(url, specs, log=os.path.join(tmp, "peer.log"))
        peer.start()
        try:
            model = Model(peer)
            cars = Cars(peer, model)
            part_boot(peer, http_port, model)
            running = part_sessions(peer, http_port, model, cars)
            part_bad_frames(peer, http_port, model, cars, running)
            part_passwords(peer, http_port, model, url, tmp)
            part_reconnect(peer, http_port, model, cars)
            pw = part_restart(peer, http_port, model, cars, procs, tmp, cfg_path, args.phasewise,
                              pw)
            problems = peer.problems()
            check(problems == [], f"strict mode: {len(problems)} problems, first {problems[:3]}")
            log(f"strict mode: no schema violation, bad message or peer error in "
                f"{len(peer.events)} events")
            code = procs.stop(pw)
            check(code == 0, f"phasewise exited {code} on SIGTERM")
            log("phasewise exited 0 on SIGTERM")
        except PeerError as e:
            raise AssertionError(str(e)) from e
        finally:
            peer.stop()


if __name__ == "__main__":
    pwtest.run(main)
