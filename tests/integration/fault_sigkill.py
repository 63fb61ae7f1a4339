#!/usr/bin/env python3
"""Fault: the appliance is killed with SIGKILL mid-charge. The simulated chargers keep their
last limits until their leases run out (6 s in this test's config), then fall back to their
failsafe currents, and the facility stays within its fuses (the simulator's ground truth: the
failsafe currents fit every node, checked when the config was saved). Restarted on the same
config and data folder, the appliance opens its database (a WAL left by a killed process), takes
a higher boot id that the chargers accept, and resumes balancing within seconds."""
import argparse
import signal
import sqlite3
import time

import fault_common as fc
import pwtest
from pwtest import check, log

LEASE_S = 6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-kill-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, balancer={"lease_s": LEASE_S})
        n = len(cfg["chargers"])
        failsafe = {c["id"]: c["failsafe_a"] for c in cfg["chargers"]}
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        # A light building load: the failsafe currents (6 A on all 14) plus it fit the main fuse.
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim, ["--base-load", "0.1"])
        fc.wait_balancing(port, sim.report, n)
        fc.sleep_watch(6, [pw, sim])
        before = fc.last_report(sim.report)
        check(fc.charging(before) >= 4, "too few cars charging to exercise anything")
        above = [c["id"] for c in before["chargers"] if c["offered_a"] > failsafe[c["id"]] + 0.5]
        check(above, "no charger was offered more than its failsafe before the kill")

        pw.send_signal(signal.SIGKILL)
        pw.wait(5)
        t_kill = time.monotonic()
        log(f"phasewise killed (SIGKILL) with {fc.charging(before)} cars charging, "
            f"{len(above)} chargers above their failsafe")

        def all_failsafe():
            last = fc.last_report(sim.report)
            return all(c["lease"] == "expired" and abs(c["offered_a"] - failsafe[c["id"]]) < 0.01
                       for c in last["chargers"])
        pwtest.wait_for("every charger on its failsafe current", all_failsafe, LEASE_S + 4)
        waited = time.monotonic() - t_kill
        check(waited >= LEASE_S - 2.5, f"chargers fell back after {waited:.1f} s, before their "
                                       f"{LEASE_S} s lease could have run out")
        log(f"every charger on its failsafe current {waited:.1f} s after the kill")
        fc.sleep_watch(4, [sim])  # the cars follow the failsafe offer within their delay
        fallback = fc.read_report(sim.report)[-1]
        for node in fallback["nodes"]:
            for line in range(3):
                check(node["load_a"][line] <= node["limit_a"][line],
                      f"on failsafe, node {node['id']} L{line + 1} carries "
                      f"{node['load_a'][line]} A over its {node['limit_a'][line]} A")
        log("on failsafe every line is within its fuse: " + ", ".join(
            f"{nd['id']} {max(nd['load_a']):.1f}/{max(nd['limit_a']):.0f} A"
            for nd in fallback["nodes"]))

        # Restarted on the same config and data: balancing again within seconds.
        t_start = time.monotonic()
        pw2 = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise, name="phasewise-2")

        def resumed():
            last = fc.last_report(sim.report)
            return last["wall_ms"] / 1000.0 > time.time() - 2 and all(
                c["lease"] == "active" and c["alloc_seq"] > 0 for c in last["chargers"])
        # The restarted appliance plans once every charger has spoken (within the simulator's
        # 10 s keepalive) and the meter has been read after them (pw_ctl_run's start window).
        pwtest.wait_for("every charger leased by the restarted appliance", resumed, 20)
        log(f"leases renewed {time.monotonic() - t_start:.1f} s after the restart")
        pwtest.wait_for("every charger online at the restarted appliance",
                        lambda: all(c["online"] for c in fc.state(port)["chargers"]), 15)
        pwtest.wait_for("cars charging above their failsafe again", lambda: any(
            c["offered_a"] > failsafe[c["id"]] + 0.5 and c["state"] == "C"
            for c in fc.last_report(sim.report)["chargers"]), 15)
        log(f"balancing again {time.monotonic() - t_start:.1f} s after the restart")

        fc.sleep_watch(3, [pw2, sim])
        reports = fc.read_report(sim.report)
        worst = fc.check_no_overload(reports, "kill and restart")
        log(f"no line above its limit beyond the reaction window (worst excess {worst:.1f} A)")
        check(procs.stop(pw2) == 0, "the restarted phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")
        with sqlite3.connect(f"{tmp}/history.db") as con:
            check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
                  "database damaged by the kill")
            starts = con.execute("SELECT count(*) FROM event WHERE kind = 'start'").fetchone()[0]
            check(starts == 2, f"{starts} start events in the history, expected 2")
            rows = con.execute("SELECT (SELECT count(*) FROM tail) + (SELECT count(*) FROM "
                               "block)").fetchone()[0]
        check(rows > n, f"only {rows} sample rows survived")
        log(f"database intact after the kill: {rows} sample records, both starts recorded")


if __name__ == "__main__":
    pwtest.run(main)
