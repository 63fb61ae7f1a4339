#!/usr/bin/env python3
"""Fault: a lossy LAN. The simulator drops 5 % of the datagrams in both directions, duplicates
5 % and reorders 5 %. The appliance must keep every charger online and leased, count the
duplicates as replays without acting on them twice, measure the loss from sequence gaps, and
keep every line within its limit beyond the reaction window (the simulator's ground truth)."""
import argparse
import math
import statistics

import fault_common as fc
import pwtest
from pwtest import check, log

LOSS = DUP = REORDER = 0.05  # the simulator's impairment, both directions


def poisson_quantile(lam, tail):
    """The smallest k with P(X > k) < tail for X ~ Poisson(lam)."""
    k, p, cdf = 0, math.exp(-lam), 0.0
    while True:
        cdf += p
        if 1.0 - cdf < tail:
            return k
        k += 1
        p *= lam / k


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
                           ["--loss", str(LOSS), "--dup", str(DUP), "--reorder", str(REORDER)])
        t_start = pwtest.time.monotonic()
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
        # The state document is a snapshot of the last tick. /metrics reads the live counter,
        # and duplicates keep arriving, so it must soon count more than the snapshot: equal for
        # five times the mean gap between duplicates seen so far (at least 15 s; a chance of
        # e^-5 to see none by luck) would mean a frozen or separate count. Chargers send a status
        # on change or every 30 s, so duplicates come about once every 10 s.
        rate = rejected["replay"] / max(1.0, pwtest.time.monotonic() - t_start)
        wait = min(90.0, max(15.0, 5.0 / rate))
        replay_series = 'phasewise_datagrams_rejected_total{transport="lan",reason="replay"}'
        pwtest.wait_for(f"/metrics to count more replays than the {rejected['replay']} /api/state "
                        "showed", lambda: fc.metrics(port)[replay_series] > rejected["replay"],
                        wait)

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
        # How close the two figures must be. They count the same lost datagrams except a few:
        # the meters' (in the simulator's figure only: the appliance's is over chargers), a
        # charger's first datagram lost and its last ones lost before the snapshot (no gap the
        # appliance can see). One datagram moves either figure by about one = 100 / (sent +
        # dropped) points. Those unshared losses are about Poisson with mean lam = LOSS x (the
        # meters' datagrams + 2 per charger), ~3 in a 35 s run of ~520 datagrams; allow the
        # count exceeded with probability 1e-4 (11-12), plus the duplicates in `sent` (they
        # lower the simulator's figure by about DUP of itself) and the 0.1 rounding of loss_pct.
        # About 2.2-2.7 points at the ~3 % this seed loses; 23 runs measured 0.3-1.7 apart.
        meters = sum(1 for node in cfg["nodes"] if node.get("meter"))
        one = 100.0 / (sent + dropped)
        lam = LOSS * (meters * (sent + dropped) / (n + meters) + 2 * n)
        tol = poisson_quantile(lam, 1e-4) * one + DUP * truth + 0.1
        check(abs(mean - truth) <= tol, f"the appliance measured {mean:.1f} % loss from sequence "
              f"gaps, the simulator dropped {truth:.1f} % of what it sent (tolerance {tol:.1f})")
        log(f"loss: simulator dropped {truth:.1f} %, appliance measured {mean:.1f} % "
            f"(tolerance {tol:.1f} points)")


if __name__ == "__main__":
    pwtest.run(main)
