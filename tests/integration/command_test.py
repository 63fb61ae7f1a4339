#!/usr/bin/env python3
"""Operator commands on the real appliance and simulator (POST /api/command, docs/api.md): bad
bodies are refused with 400 and the field at fault, and change nothing (no override, no
overrides file); a charging car is paused and the simulator's car goes to 0 A; a maximum current
is set and the car stays under it; a facility limit for a few seconds keeps the main fuse's
ground-truth load under it and then ends by itself (event logged); the appliance restarted while
a charger is paused keeps it paused (overrides.json), and a resume brings current back. Every
command is a "command" event in the log; the state document shows the overrides."""
import argparse
import json
import os
import time

import fault_common as fc
import pwtest
from pwtest import check, log

FACILITY_A = 45          # per line on the 100 A main fuse; the building takes at most 20 A
FACILITY_S = 24          # how long it holds
SETTLE_S = 8             # a cut is sent at once; cars follow within the 5 s reaction window


def command(port, headers, body):
    return pwtest.http_json(port, "/api/command", "POST", body, headers)


def charger_doc(port, cid):
    return next(c for c in fc.state(port)["chargers"] if c["id"] == cid)


def sim_charger(sim, cid):
    last = fc.last_report(sim.report)
    return next(c for c in last["chargers"] if c["id"] == cid) if last else None


def charging_ids(sim, exclude=()):
    """Chargers whose simulated car draws more than 8 A now, most first."""
    last = fc.last_report(sim.report)
    cars = [(max(c["current_a"]), c["id"]) for c in last["chargers"]
            if c["state"] == "C" and max(c["current_a"]) > 8 and c["id"] not in exclude]
    return [cid for _, cid in sorted(cars, reverse=True)]


def check_refused(port, headers, tmp):
    """Every malformed or out-of-range body: 400 naming the field; nothing changes."""
    before = fc.state(port)
    bad = [
        (b"{\"charger\": \"a01\", \"pause\": tru", None),
        ({"charger": "a01"}, None),
        ({"charger": "a01", "pause": "yes"}, "pause"),
        ({"charger": "a01", "pause": True, "max_current": 10}, "max_current"),
        ({"charger": "a01", "pause": True, "speed": 3}, "speed"),
        ({"pause": True}, "charger"),
        ({"charger": "zz9", "pause": True}, "charger"),
        ({"charger": "a01", "max_current": 3}, "max_current"),
        ({"charger": "a01", "max_current": 40}, "max_current"),
        ({"charger": "a01", "max_current": "10"}, "max_current"),
        ({"charger": "a01", "priority": 101}, "priority"),
        ({"charger": "a01", "priority": 1.5}, "priority"),
        ({"facility_limit": [32, 32, 32]}, "duration_s"),
        ({"facility_limit": [32, 32, 32], "duration_s": 0}, "duration_s"),
        ({"facility_limit": [32, 32, 32], "duration_s": 86401}, "duration_s"),
        ({"facility_limit": [32, 0, 32], "duration_s": 60}, "facility_limit"),
        ({"facility_limit": [32, 120, 32], "duration_s": 60}, "facility_limit"),
        ({"facility_limit": [32, 32], "duration_s": 60}, "facility_limit"),
        ({"facility_limit": 30, "duration_s": 60, "charger": "a01"}, "charger"),
    ]
    for body, field in bad:
        st, ans = command(port, headers, body)
        check(st == 400, f"{body!r} answered {st}, not 400")
        check(ans and ans.get("error") and ans.get("field") == field,
              f"{body!r}: answer {ans!r} does not name field {field!r}")
    st, _ = command(port, {"Origin": headers["Origin"], "Content-Type": "application/json"},
                    {"charger": "a01", "pause": True})
    check(st == 401, f"a command without a login answered {st}, not 401")
    time.sleep(1.5)  # a document or two later: what a refused command would have changed shows
    after = fc.state(port)
    check(after["facility_limit"] is None, "a refused command set a facility limit")
    check(not any("override" in c for c in before["chargers"] + after["chargers"]),
          "a refused command left an override")
    check(not os.path.exists(os.path.join(tmp, "overrides.json")),
          "a refused command wrote overrides.json")
    log(f"{len(bad)} bad bodies refused with 400 and their field, one without a login with 401; "
        "nothing changed")


def pause(port, headers, sim, cid):
    st, ans = command(port, headers, {"charger": cid, "pause": True})
    check(st == 200 and ans["override"] == {"paused": True, "source": "web"},
          f"pause answered {st} {ans!r}")
    pwtest.wait_for(f"{cid}'s car at 0 A in the simulator", lambda: (
        sim_charger(sim, cid)["offered_a"] == 0 and max(sim_charger(sim, cid)["current_a"]) < 0.5),
        15)
    doc = pwtest.wait_for(f"{cid}'s override in the state document", lambda: (
        charger_doc(port, cid) if "override" in charger_doc(port, cid) else None), 5)
    check(doc["reason"] == "paused_operator" and doc["limit_a"] == 0,
          f"{cid} paused shows {doc['reason']} {doc['limit_a']} A")
    check(doc["override"] == {"paused": True, "source": "web"}, f"{cid}: {doc.get('override')}")
    log(f"{cid} paused: the simulated car draws 0 A; reason '{doc['reason_text']}'")


def max_current(port, headers, sim, cid, amps):
    st, ans = command(port, headers, {"charger": cid, "max_current": amps})
    check(st == 200 and ans["override"]["max_a"] == amps, f"max_current answered {st} {ans!r}")
    pwtest.wait_for(f"{cid} offered at most {amps} A", lambda: (
        0 < sim_charger(sim, cid)["offered_a"] <= amps), 15)
    time.sleep(SETTLE_S)
    t0 = fc.last_report(sim.report)["wall_ms"]
    time.sleep(4)
    seen = [c for r in fc.read_report(sim.report) if r["wall_ms"] >= t0
            for c in r["chargers"] if c["id"] == cid]
    worst = max(max(c["current_a"]) for c in seen)
    check(all(c["offered_a"] <= amps for c in seen), f"{cid} offered more than {amps} A")
    check(worst <= amps + 0.2, f"{cid}'s car drew {worst} A under a {amps} A maximum")
    doc = charger_doc(port, cid)
    check("operator's maximum" in doc["reason_text"] or doc["limit_a"] <= amps,
          f"{cid}: {doc['reason_text']}")
    log(f"{cid} at most {amps} A: the car drew at most {worst} A; reason '{doc['reason_text']}'")


def facility_limit(port, headers, sim, pw):
    before = [max(n["load_a"]) for r in fc.read_report(sim.report)[-5:] for n in r["nodes"]
              if n["id"] == "main"]
    st, ans = command(port, headers, {"facility_limit": [FACILITY_A] * 3,
                                      "duration_s": FACILITY_S})
    t_set = time.time()
    check(st == 200 and ans["facility_limit"]["limit_a"] == [FACILITY_A] * 3,
          f"facility_limit answered {st} {ans!r}")
    # The state document is published once a tick: the next one shows it.
    fl = pwtest.wait_for("the facility limit in the state document",
                         lambda: fc.state(port)["facility_limit"], 5)
    check(fl["source"] == "web" and 0 < fl["expires_in_s"] <= FACILITY_S, f"{fl!r}")
    time.sleep(SETTLE_S)
    from_ms = int((t_set + SETTLE_S) * 1000)
    end = t_set + FACILITY_S - 2
    while time.time() < end:
        time.sleep(1)
    reports = [r for r in fc.read_report(sim.report)
               if from_ms <= r["wall_ms"] <= int(end * 1000)]
    check(len(reports) >= 5, f"only {len(reports)} simulator reports under the facility limit")
    main = [max(n["load_a"]) for r in reports for n in r["nodes"] if n["id"] == "main"]
    check(max(main) <= FACILITY_A, f"the main fuse carried {max(main)} A under a {FACILITY_A} A "
                                   "facility limit")
    limited = [c for c in fc.state(port)["chargers"] if "facility limit" in c["reason_text"]]
    check(limited, "no charger's reason names the facility limit")
    pwtest.wait_for("the facility limit to end by itself",
                    lambda: fc.state(port)["facility_limit"] is None, FACILITY_S + 10)
    with open(pw.logfile) as f:
        text = f.read()
    check("event command facility: facility limit 45.0/45.0/45.0 A for 24 s by web" in text,
          "the facility limit command is not in the log")
    check("event command facility: facility limit 45.0/45.0/45.0 A (web) expired" in text,
          "the facility limit's end is not in the log")
    log(f"facility limit {FACILITY_A} A: main fuse at {max(before)} A before, at most "
        f"{max(main)} A over {len(reports)} reports under it, {len(limited)} chargers naming "
        f"it; ended by itself after {time.time() - t_set:.0f} s")


def restart_keeps_pause(procs, pw, tmp, cfg_path, port, binary, sim, paused, capped, amps):
    with open(os.path.join(tmp, "overrides.json")) as f:
        saved = json.load(f)
    check(saved["chargers"][paused]["paused"] is True, f"overrides.json: {saved!r}")
    check(saved["chargers"][capped]["max_a"] == amps, f"overrides.json: {saved!r}")
    check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
    pw = fc.start_appliance(procs, tmp, cfg_path, port, binary, name="phasewise-2")
    fc.wait_planning(port)
    doc = charger_doc(port, paused)
    check(doc.get("override", {}).get("paused") is True and doc["reason"] == "paused_operator",
          f"{paused} after the restart: {doc.get('override')} {doc['reason']}")
    check(charger_doc(port, capped).get("override", {}).get("max_a") == amps,
          f"{capped} lost its maximum in the restart")
    t0 = fc.last_report(sim.report)["wall_ms"]
    fc.sleep_watch(5, [pw, sim])
    seen = [c for r in fc.read_report(sim.report) if r["wall_ms"] >= t0
            for c in r["chargers"] if c["id"] == paused]
    check(seen and all(c["offered_a"] == 0 for c in seen), f"{paused} offered current after the "
                                                           "restart")
    log(f"restarted: {paused} still paused (0 A offered), {capped} still at most {amps} A")
    return pw


def resume(port, headers, sim, cid):
    st, ans = command(port, headers, {"charger": cid, "pause": False})
    check(st == 200 and ans["override"] is None, f"resume answered {st} {ans!r}")
    pwtest.wait_for(f"{cid} offered current again", lambda: sim_charger(sim, cid)["offered_a"] > 0,
                    30)
    check("override" not in charger_doc(port, cid), f"{cid} still shows an override")
    log(f"{cid} resumed: offered {sim_charger(sim, cid)['offered_a']} A")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-command-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp)
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim, ["--base-load", "0.2"])
        fc.wait_balancing(port, sim.report, n)
        headers = pwtest.admin_headers(port)
        check_refused(port, headers, tmp)

        cars = pwtest.wait_for("two cars charging above 8 A", lambda: (
            charging_ids(sim) if len(charging_ids(sim)) >= 2 else None), 40)
        paused, capped = cars[0], cars[1]
        pause(port, headers, sim, paused)
        max_current(port, headers, sim, capped, 8)
        facility_limit(port, headers, sim, pw)
        pw = restart_keeps_pause(procs, pw, tmp, cfg_path, port, args.phasewise, sim, paused,
                                 capped, 8)
        headers = pwtest.admin_headers(port)  # sessions end with the process
        resume(port, headers, sim, paused)

        with open(pw.logfile) as f:
            text = f.read()
        check(f"event command {paused}: resumed by web" in text, "the resume is not in the log")
        worst = fc.check_no_overload(fc.read_report(sim.report), "operator commands")
        log(f"no line above its limit beyond the reaction window; worst excess {worst:.1f} A")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
