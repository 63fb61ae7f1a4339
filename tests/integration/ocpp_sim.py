#!/usr/bin/env python3
"""OCPP 1.6J end to end with the simulator's charge points, in a mixed facility: the demo's
garage B has four chargers on OCPP (one charge point with a password, one that rejects
TxProfile and is named so in the config's quirks, one with two connectors), the rest on the LAN
protocol. Checks that the charge points are set up (failsafe default profile, measurands),
follow the balancer's limits (the quirky one through its TxDefaultProfile), that a wrong
password is refused at the upgrade, and what happens
when phasewise is SIGKILLed mid-charge: OCPP sessions keep their last limits (which fit the
fuses), the charge points reconnect to the restarted appliance and balancing resumes within
seconds; a charge point that loses its connection is budgeted at its last limits and taken back
when it returns; no line above its limit at any time (the simulator's ground truth), sessions
with their RFID tags in the history."""
import argparse
import base64
import hashlib
import os
import signal
import socket
import time

import fault_common as fc
import pwtest
from pwtest import check, log

PASSWORD = "gb03-authorization-key-0001"
DROP_AT_S, DROP_S = 55, 15  # simulated seconds: GB-56 loses its connection, after the restart
OCPP = {"b03": ("GB-03", 1), "b04": ("GB-04", 1), "b05": ("GB-56", 1), "b06": ("GB-56", 2)}


def password_hash(password):
    salt = os.urandom(16)
    return "sha256:%s:%s" % (salt.hex(), hashlib.sha256(salt + password.encode()).hexdigest())


def write_config(tmp, ocpp_port):
    cfg, path, port = fc.write_config(tmp, balancer={"lease_s": 6})
    for c in cfg["chargers"]:
        if c["id"] in OCPP:
            cp, connector = OCPP[c["id"]]
            c["link"] = {"ocpp": {"id": cp, "connector": connector}}
    cfg["ocpp"] = {"listen": f"127.0.0.1:{ocpp_port}", "meter_interval_s": 2,
                   "min_interval_s": 2, "heartbeat_s": 30,
                   "charge_points": [{"id": "GB-03", "password_hash": password_hash(PASSWORD)},
                                     {"id": "GB-04", "quirks": "tx-default-only"}]}
    cfg["tags"] = [{"id": "SIMTAG01", "name": "Anna's Golf"}]
    import json
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return cfg, path, port


def upgrade_status(port, cp_id, password=None, subprotocol="ocpp1.6"):
    """The HTTP status of a raw WebSocket upgrade (101 when accepted)."""
    head = [f"GET /ocpp/{cp_id} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13"]
    if subprotocol:
        head.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if password is not None:
        token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
        head.append(f"Authorization: Basic {token}")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return int(line.split()[1]) if line.startswith("HTTP/1.") else 0


def ocpp_chargers(doc):
    return {c["id"]: c for c in doc["chargers"] if c["id"] in OCPP}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-ocpp-sim-") as (tmp, procs):
        ocpp_port = pwtest.free_tcp_port()
        cfg, cfg_path, port = write_config(tmp, ocpp_port)
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        sim_args = ["--base-load", "0.1", "--ocpp-password", f"GB-03={PASSWORD}",
                    "--ocpp-quirk", "GB-04=tx-default-only",
                    "--ocpp-drop", f"GB-56={DROP_AT_S}:{DROP_S}"]
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim, sim_args)

        # Set up: every charger online, every OCPP one connected with its default profile.
        def ready():
            doc = fc.state(port)
            oc = ocpp_chargers(doc)
            return (sum(c["online"] for c in doc["chargers"]) == n and
                    all(c.get("ocpp", {}).get("connected") and c["ocpp"]["default_profile"]
                        for c in oc.values()))
        pwtest.wait_for("all chargers online, OCPP ones with their default profile", ready, 30)
        doc = fc.state(port)
        for cid, c in ocpp_chargers(doc).items():
            o = c["ocpp"]
            check(o["vendor"], f"{cid}: no vendor from BootNotification")
            check("Current.Import" in o["measurands"], f"{cid}: measurands {o['measurands']!r}")
        log("OCPP charge points set up: " + ", ".join(
            f"{cid} {c['ocpp']['model']} [{c['ocpp']['measurands']}]"
            for cid, c in sorted(ocpp_chargers(doc).items())))

        # Security profile 1: the password is checked at the upgrade.
        check(upgrade_status(ocpp_port, "GB-03", "wrong-password-0000000") == 401,
              "a wrong password was not refused with 401")
        check(upgrade_status(ocpp_port, "GB-03") == 401, "a missing password was not refused")
        check(upgrade_status(ocpp_port, "GB-99", subprotocol=None) != 101,
              "an upgrade without the ocpp1.6 subprotocol was accepted")
        log("wrong and missing passwords refused with 401, no subprotocol refused")

        # Limits follow: an OCPP charger with a car offers what the balancer planned.
        def following(ids=("b03", "b05", "b06")):
            doc = fc.state(port)
            last = fc.last_report(sim.report)
            truth = {c["id"]: c for c in last["chargers"]}
            ok = []
            for cid, c in ocpp_chargers(doc).items():
                if cid not in ids or c["state"] != "C" or c["ocpp"]["profile"] != "accepted":
                    continue
                if abs(truth[cid]["offered_a"] - c["limit_a"]) <= 1.0:
                    ok.append(cid)
            return ok
        pwtest.wait_for("an OCPP charger offering the balancer's limit", following, 40)
        log(f"OCPP chargers follow the balancer's limits: {following()}")
        pwtest.wait_for("b04 (TxDefaultProfile only) offering the balancer's limit",
                        lambda: following(("b04",)), 60)
        log("b04 follows through its TxDefaultProfile: "
            f"{ocpp_chargers(fc.state(port))['b04']['ocpp']}")

        fc.sleep_watch(4, [pw, sim])
        pw.send_signal(signal.SIGKILL)
        pw.wait(5)
        fc.sleep_watch(2, [sim])  # a profile on the wire at the kill lands meanwhile
        held = {c["id"]: c for c in fc.last_report(sim.report)["chargers"] if c["id"] in OCPP}
        log("phasewise killed (SIGKILL); OCPP offers: " +
            ", ".join(f"{cid} {c['offered_a']} A ({c['state']})" for cid, c in held.items()))
        fc.sleep_watch(10, [sim])
        after = {c["id"]: c for c in fc.last_report(sim.report)["chargers"]}
        kept = 0
        for cid, c in held.items():
            if c["state"] == "C" and after[cid]["state"] == "C":
                check(abs(after[cid]["offered_a"] - c["offered_a"]) < 0.05,
                      f"{cid}: offers {after[cid]['offered_a']} A 10 s after the kill, not its "
                      f"last limit {c['offered_a']} A")
                kept += 1
        check(kept, "no OCPP charger was charging across the kill")
        fc.check_no_overload(fc.read_report(sim.report), "after the kill")
        log("with phasewise gone, OCPP sessions keep their last limits; no line over its limit")

        t_start = time.monotonic()
        pw2 = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise, name="phasewise-2")

        def reconnected():
            oc = ocpp_chargers(fc.state(port))
            return all(c.get("ocpp", {}).get("connected") and c["online"] for c in oc.values())
        pwtest.wait_for("OCPP charge points reconnected", reconnected, 20)
        log(f"OCPP charge points reconnected {time.monotonic() - t_start:.1f} s after the "
            "restart")
        pwtest.wait_for("an OCPP charger following again", following, 30)
        log(f"balancing OCPP chargers again {time.monotonic() - t_start:.1f} s after the restart")
        fc.sleep_watch(3, [pw2, sim])
        worst = fc.check_no_overload(fc.read_report(sim.report), "kill and restart")
        log(f"no line above its limit beyond the reaction window (worst excess {worst:.1f} A)")

        # A charge point that loses its connection (cable pulled on its network side): shown
        # disconnected and budgeted at its last limits meanwhile (its cars go on under them),
        # balanced again within seconds of its return; no line over its limit throughout.
        pwtest.wait_for("GB-56 shown disconnected", lambda: not any(
            c["ocpp"]["connected"] for cid, c in ocpp_chargers(fc.state(port)).items()
            if cid in ("b05", "b06")), DROP_AT_S + 10)
        log("GB-56 disconnected: " + ", ".join(
            f"{cid} budgeted at {c['line_a']} A ({c['reason']})"
            for cid, c in ocpp_chargers(fc.state(port)).items() if cid in ("b05", "b06")))
        t_drop = time.monotonic()
        pwtest.wait_for("GB-56 back and connected", lambda: all(
            c["ocpp"]["connected"] for cid, c in ocpp_chargers(fc.state(port)).items()
            if cid in ("b05", "b06")), DROP_S + 15)
        log(f"GB-56 reconnected {time.monotonic() - t_drop:.1f} s after it was seen gone")
        fc.sleep_watch(4, [pw2, sim])
        worst = fc.check_no_overload(fc.read_report(sim.report), "charge point disconnected")
        log(f"no line above its limit while GB-56 was away (worst excess {worst:.1f} A)")

        st, body = pwtest.http_json(port, "/api/sessions?limit=500")
        check(st == 200, f"/api/sessions answered {st}")
        rows = body["sessions"] if isinstance(body, dict) else body
        tagged = [r for r in rows if r.get("charger") in OCPP and r.get("id_tag")]
        check(tagged, "no OCPP session in the history carries its RFID tag")
        log(f"{len(tagged)} OCPP sessions in the history with their tags, e.g. "
            f"{tagged[0]['charger']} tag {tagged[0]['id_tag']}")
        check(procs.stop(pw2) == 0, "the restarted phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
