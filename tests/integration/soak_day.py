#!/usr/bin/env python3
"""Safety soak on real processes: a facility of 120 chargers (four metered garages of 30 on 100 A
under a metered 330 A main fuse, so both levels bind in the evening) through a compressed
simulated day (phasewise-sim --speed 144: 24 h in about ten minutes) with 300 car arrivals,
building load peaking at 65 % of each fuse and its appliance peaks. Records every node line's
load from the simulator's ground truth and reports the time any line spent above its limit
beyond the reaction window (goal: none, asserted), and the appliance's memory at the start and
the end (bounded growth, asserted) and its CPU. Run under the asan build, the appliance's clean
SIGTERM exit includes LeakSanitizer's check. ctest label `soak`: not in the default run.

  ctest --test-dir build/dev -R soak_day -L soak -V
"""
import argparse
import json
import os
import time

import fault_common as fc
import pwtest
from pwtest import check, log

CLK_TCK = os.sysconf("SC_CLK_TCK")


def facility(http_port, mcast_port, garages=4, per_garage=30):
    nodes = [{"id": "main", "name": "Main fuse", "parent": None, "limit_a": 330, "margin_a": 3,
              "meter": {"device_id": 900, "timeout_s": 15, "fallback_a": 120}}]
    chargers = []
    rot = ["L1L2L3", "L2L3L1", "L3L1L2"]
    for g in range(garages):
        nodes.append({"id": f"g{g}", "name": f"Garage {g}", "parent": "main", "limit_a": 100,
                      "margin_a": 1, "meter": {"device_id": 901 + g, "timeout_s": 15}})
        for k in range(per_garage):
            i = g * per_garage + k
            chargers.append({"id": f"c{i:03}", "device_id": 3000 + i, "node": f"g{g}",
                             "wiring": rot[i % 3], "max_a": 32 if i % 5 == 0 else 16,
                             "failsafe_a": 6 if i % 3 == 0 else 0})
    return {"version": 1, "site": "soak", "grid": "TN",
            "network": {"group": "239.255.80.87", "port": mcast_port, "interface": "127.0.0.1",
                        "ttl": 1},
            "http": {"listen": f"127.0.0.1:{http_port}"},
            "balancer": {"reaction_s": 5, "lease_s": 30, "tick_ms": 1000},
            "nodes": nodes, "chargers": chargers}


def sanitized(binary):
    """True for an ASan build, whose allocator keeps freed memory in quarantine (up to 256 MB):
    its RSS says nothing about leaks, LeakSanitizer at exit does."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def proc_stat(pid):
    """(RSS KiB, CPU seconds) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / CLK_TCK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--hours", type=float, default=24, help="simulated hours")
    ap.add_argument("--speed", type=float, default=144)
    ap.add_argument("--start-hour", type=float, default=12)
    ap.add_argument("--rss-growth-kib", type=int, default=16384,
                    help="allowed RSS growth between the start and the end")
    args = ap.parse_args()

    with pwtest.workspace("pw-soak-") as (tmp, procs):
        port, mcast = pwtest.free_tcp_port(), pwtest.free_udp_port()
        cfg = facility(port, mcast)
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        report = os.path.join(tmp, "truth.jsonl")
        duration = args.hours * 3600
        sim = procs.start("phasewise-sim", [
            args.sim, "--config", cfg_path, "--key-file", os.path.join(tmp, "facility.key"),
            "--seed", "5", "--cars", "300", "--base-load", "0.65", "--arrivals", "evening", "--start-hour", str(args.start_hour), "--speed",
            str(args.speed), "--duration", str(duration), "--report", report,
            "--report-interval", "60"])
        pwtest.wait_for(f"all {n} chargers online", lambda: sum(
            c["online"] for c in fc.state(port)["chargers"]) == n, 40)
        rss0, cpu0 = proc_stat(pw.pid)
        t0 = time.monotonic()
        log(f"{n} chargers online; appliance RSS {rss0} KiB; a {args.hours:g} h day at speed "
            f"{args.speed:g} takes about {duration / args.speed / 60:.1f} min")

        samples = []
        while sim.poll() is None:
            check(pw.poll() is None, f"phasewise exited with {pw.returncode}")
            time.sleep(10)
            samples.append(proc_stat(pw.pid)[0])
            check(time.monotonic() - t0 < duration / args.speed + 120,
                  "the simulator did not finish in time")
        check(sim.returncode == 0, f"phasewise-sim exited with {sim.returncode}")
        rss1, cpu1 = proc_stat(pw.pid)
        cpu_pct = 100.0 * (cpu1 - cpu0) / (time.monotonic() - t0)
        doc = fc.state(port)
        rejected = sum(doc["counters"]["rejected"].values())
        check(procs.stop(pw, timeout=30) == 0,
              "phasewise did not exit 0 on SIGTERM (under ASan: a leak or an error at exit)")

        reports = fc.read_report(report)
        check(reports and reports[-1]["t_ms"] >= duration * 1000 - 60000,
              "the report does not cover the day")
        final = reports[-1]
        log("node line: peak load / limit, time above the limit, beyond the reaction window")
        beyond = 0.0
        for i, node in enumerate(final["nodes"]):
            for line in range(3):
                peak = max(r["nodes"][i]["load_a"][line] for r in reports)
                beyond += node["over_beyond_ms"][line] / 1000.0
                log(f"  {node['id']:5} L{line + 1}: {peak:6.1f} / {node['limit_a'][line]:.0f} A,"
                    f" over {node['over_ms'][line] / 1000.0:6.1f} s, beyond "
                    f"{node['over_beyond_ms'][line] / 1000.0:.1f} s, by up to "
                    f"{node['max_over_a'][line]:.1f} A")
        sessions = len({(c["id"], c["session_id"]) for r in reports for c in r["chargers"]
                        if c["session_id"]})
        log(f"{sessions} charging sessions; {rejected} datagrams rejected; appliance CPU "
            f"{cpu_pct:.1f} %; RSS {rss0} KiB at the start, {rss1} KiB at the end (max "
            f"{max(samples)} KiB)")
        want = n * min(1.0, args.hours / 24.0) / 2
        check(sessions >= want, f"only {sessions} charging sessions in {args.hours:g} h of {n} "
                                "chargers")
        check(beyond == 0, f"lines above their limit beyond the reaction window for "
                           f"{beyond:.1f} s in all")
        if sanitized(args.phasewise):
            log("ASan build: RSS reported, not bounded (quarantine); LeakSanitizer found no leak")
        else:
            check(rss1 - rss0 <= args.rss_growth_kib,
                  f"RSS grew by {rss1 - rss0} KiB (bound {args.rss_growth_kib} KiB)")


if __name__ == "__main__":
    pwtest.run(main)
