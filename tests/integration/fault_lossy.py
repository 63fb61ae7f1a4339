#!/usr/bin/env python3
"""Fault: a lossy LAN. The simulator drops 5 % of the datagrams in both directions, duplicates
5 % and reorders 5 %. The appliance must keep every charger online and leased, count the
duplicates as replays without acting on them twice, measure the loss from sequence gaps, and
keep every line within its limit beyond the reaction window (the simulator's ground truth)."""
import argparse
import statistics

import fault_common as fc
import pwtest
from pwtest import check, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--seconds", type=float, default=35)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-lossy-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp)
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim,
                           ["--loss", "0.05", "--dup", "0.05", "--reorder", "0.05"])
        fc.wait_balancing(port, sim.report, n, timeout=30)

        # Every charger stays online and leased for the whole run, whatever is lost.
        t_end = pwtest.time.monotonic() + args.seconds
        lapses = set()
        while pwtest.time.monotonic() < t_end:
            fc.sleep_watch(2, [pw, sim])
            doc = fc.state(port)
            offline = [c["id"] for c in doc["chargers"] if not c["online"]]
            check(not offline, f"chargers went offline on a 5 % lossy LAN: {offline}")
            last = fc.last_report(sim.report)
            lapses |= {c["id"] for c in last["chargers"] if c["lease"] != "active"}
        check(not lapses, f"leases ran out despite renewals every lease/3: {sorted(lapses)}")

        doc = fc.state(port)
        rejected = doc["counters"]["rejected"]
        check(rejected["replay"] > 0, f"no duplicate was rejected as a replay: {rejected}")
        check(rejected["auth"] == 0, f"impairment produced unauthentic datagrams: {rejected}")
        losses = [c["loss_pct"] for c in doc["chargers"]]
        mean = statistics.mean(losses)
        m = fc.metrics(port)
        # The state document is a snapshot of the last tick; the counter only grows since.
        check(m['phasewise_datagrams_rejected_total{transport="lan",reason="replay"}']
              >= rejected["replay"],
              "/metrics counts fewer replays than /api/state showed before it")

        reports = fc.read_report(sim.report)
        worst = fc.check_no_overload(reports, "lossy LAN")
        busy = fc.charging(reports[-1])
        check(busy >= 4, f"only {busy} cars charging: the scenario exercises nothing")
        log(f"{busy} cars charging, {rejected['replay']} duplicates rejected, loss measured "
            f"{mean:.1f} % on average, worst excess {worst:.1f} A within the reaction window")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")
        with open(sim.logfile) as f:
            summary = [line for line in f if "impairment dropped" in line]
        check(summary, "the simulator printed no summary")
        # "... tx 576, rx 619 (...); impairment dropped 12/22": what it sent and dropped.
        sent = int(summary[-1].split(" tx ")[1].split(",")[0])
        dropped = int(summary[-1].rsplit("dropped ", 1)[1].split("/")[0])
        truth = 100.0 * dropped / (sent + dropped)
        check(dropped > 0 and mean > 0, f"nothing lost: dropped {dropped}, measured {mean} %")
        check(abs(mean - truth) <= max(2.0, truth), f"the appliance measured {mean:.1f} % loss "
              f"from sequence gaps, the simulator dropped {truth:.1f} % of what it sent")
        log(f"loss: simulator dropped {truth:.1f} %, appliance measured {mean:.1f} %")


if __name__ == "__main__":
    pwtest.run(main)
