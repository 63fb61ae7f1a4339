#!/usr/bin/env python3
"""Fault: chargers go silent mid-charge (cable pulled: they neither send nor hear anything) and
come back. Their leases run out and they fall back to their failsafe current; the appliance
shows them offline, budgets them at what they may still draw so that no line is overloaded, and
picks them up again without a restart when they return. Short timeouts in the test's config
(lease 6 s, offline after 12 s: longer than the 10 s a simulated charger may stay quiet while
nothing changes) keep the run under a minute."""
import argparse
import time

import fault_common as fc
import pwtest
from pwtest import check, log

SILENT = {1001: "a01", 1002: "a02", 2001: "b01"}
START_S, SILENT_S = 12, 24


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-silent-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, balancer={"lease_s": 6, "offline_s": 12})
        n = len(cfg["chargers"])
        failsafe = {c["id"]: c["failsafe_a"] for c in cfg["chargers"]}
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        extra = []
        for dev in SILENT:
            extra += ["--silence", f"{dev}:{START_S}:{SILENT_S}"]
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim, extra)
        t0 = time.monotonic()
        fc.wait_balancing(port, sim.report, n)

        fc.sleep_watch(START_S - 1 - (time.monotonic() - t0), [pw, sim])
        before = {c["id"]: c for c in fc.last_report(sim.report)["chargers"]}
        busy = [i for i in SILENT.values() if before[i]["state"] == "C"]
        check(busy, f"none of {sorted(SILENT.values())} was charging when it went silent")
        log(f"going silent while charging: {busy}")

        # Silent: leases run out (6 s), the appliance calls them offline (12 s).
        fc.sleep_watch(START_S + 15 - (time.monotonic() - t0), [pw, sim])
        truth = {c["id"]: c for c in fc.last_report(sim.report)["chargers"]}
        for cid in SILENT.values():
            check(truth[cid]["lease"] == "expired" and truth[cid]["alloc_seq"] == 0,
                  f"{cid}: lease {truth[cid]['lease']} while silent")
            check(abs(truth[cid]["offered_a"] - failsafe[cid]) < 0.01,
                  f"{cid} offers {truth[cid]['offered_a']} A, not its failsafe "
                  f"{failsafe[cid]} A")
        doc = fc.state(port)
        seen = {c["id"]: c for c in doc["chargers"]}
        for cid in SILENT.values():
            check(not seen[cid]["online"] and seen[cid]["state"] == "?",
                  f"{cid} still shown online while silent")
        others = [c for c in doc["chargers"] if c["id"] not in SILENT.values()]
        check(all(c["online"] for c in others), "chargers that kept talking were shown offline")
        offline = fc.metrics(port)['phasewise_chargers{status="offline"}']
        check(offline == len(SILENT), f"/metrics counts {offline} chargers offline")
        log(f"silent: leases expired, failsafe offered, shown offline, reasons "
            f"{[seen[c]['reason'] for c in SILENT.values()]}")

        # Back: online again, leased again, without restarting anything.
        def back():
            d = {c["id"]: c for c in fc.state(port)["chargers"]}
            t = {c["id"]: c for c in fc.last_report(sim.report)["chargers"]}
            return all(d[c]["online"] and t[c]["lease"] == "active" and t[c]["alloc_seq"] > 0
                       for c in SILENT.values())
        fc.sleep_watch(START_S + SILENT_S - (time.monotonic() - t0), [pw, sim])
        t_back = time.monotonic()
        pwtest.wait_for("the silent chargers to be picked up again", back, 15)
        log(f"picked up again {time.monotonic() - t_back:.1f} s after they spoke again")
        doc = fc.state(port)
        check(all(c["online"] for c in doc["chargers"]), "not every charger online at the end")

        reports = fc.read_report(sim.report)
        worst = fc.check_no_overload(reports, "silent chargers")
        log(f"no line above its limit beyond the reaction window (worst excess {worst:.1f} A)")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
