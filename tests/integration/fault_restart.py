#!/usr/bin/env python3
"""Fault: the appliance is restarted five times while cars charge (SIGTERM and SIGKILL, at once
or after the chargers' leases ran out so they sit at their failsafe currents). A restart must
resume from what the chargers are doing (issue 15, item 7): no charger whose car was charging is
offered 0 A around a restart, and no line goes above its limit at any time.

Ground truth: every allocation datagram on the group, heard by the test's own socket (a pause
lasts well under the simulator's one-second report lines), the simulator's report lines (each
charger's offer and state) and its overload accounting (over_beyond_ms for the whole run, and
max_over_a, the largest excess so far, which must not grow around a restart). Loopback only."""
import argparse
import os
import signal
import socket
import threading
import time

import fault_common as fc
import pwproto
import pwtest
from pwtest import check, log

LEASE_S = 6
# (signal, seconds down): at once, and longer than the lease so the chargers fall back first.
RESTARTS = (("TERM", 0), ("KILL", 0), ("TERM", LEASE_S + 1), ("KILL", LEASE_S + 1), ("TERM", 1))
SETTLE_S = 4  # watched after every charger got the new appliance's plan
MAX_OVER_GROWTH_A = 0.05  # max_over_a is rounded to 0.01 A in the report


class Allocations:
    """Every authentic allocation heard on the group, with its arrival time and boot id, read
    by a thread so that a sub-second plan is timed when it arrives."""

    def __init__(self, key, group, port):
        self.key = key
        self.sock = pwproto.group_socket(group, port)
        self.sock.settimeout(0.2)
        self.heard = []  # (monotonic s, boot id, alloc_seq, {device id: limit mA})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            alloc = pwproto.decode_allocation(self.key, data)
            if alloc:
                seq, _, entries = alloc
                boot = pwproto.header(data)[2]
                self.heard.append((time.monotonic(), boot, seq,
                                   {d: limit for d, (limit, _) in entries.items()}))

    def since(self, t0):
        return [a for a in list(self.heard) if a[0] >= t0]

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def stop_appliance(procs, pw, sig):
    if sig == "TERM":
        check(procs.stop(pw) == 0, f"{pw.name} did not exit 0 on SIGTERM")
    else:
        pw.send_signal(signal.SIGKILL)
        pw.wait(5)


def covered_by_boot(allocs, t0, devices):
    """The newest boot id heard since t0 and whether its plans reached every device."""
    recent = allocs.since(t0)
    if not recent:
        return None, False
    boot = max(a[1] for a in recent)
    seen = set()
    for a in recent:
        if a[1] == boot:
            seen |= set(a[3])
    return boot, devices <= seen


def pauses(allocs, reports, charging, t0, t1, w0, w1):
    """Offers of 0 A to a charger whose car was charging before the restart, from the stop to the
    end of the window: in the datagrams heard and in the simulator's report lines. A charger
    whose car left in the window is not counted."""
    left = set()
    lines = [r for r in reports if w0 <= r["wall_ms"] / 1000.0 <= w1]
    for r in lines:
        for c in r["chargers"]:
            if c["device_id"] in charging and (c["state"] == "A" or c["car"] is None):
                left.add(c["device_id"])
    found = []
    for t, boot, seq, entries in allocs.since(t0):
        if t > t1:
            break
        for d, limit in entries.items():
            if d in charging and d not in left and limit == 0:
                found.append(f"device {d} offered 0 A in plan {seq} of boot {boot} "
                             f"{t - t0:.2f} s after the stop")
    for r in lines:
        for c in r["chargers"]:
            if c["device_id"] in charging and c["device_id"] not in left and c["offered_a"] == 0:
                found.append(f"{c['id']} at 0 A in the simulator's report "
                             f"{r['wall_ms'] / 1000.0 - w0:.1f} s after the stop")
    return found


def max_over(line):
    return {(n["id"], k): n["max_over_a"][k] for n in line["nodes"] for k in range(3)}


def last_before(reports, wall_s):
    before = [r for r in reports if r["wall_ms"] / 1000.0 <= wall_s]
    return before[-1] if before else reports[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-restart-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, balancer={"lease_s": LEASE_S})
        n = len(cfg["chargers"])
        devices = {c["link"]["lan"]["device_id"] for c in cfg["chargers"]}
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        net = cfg["network"]
        allocs = Allocations(pwproto.read_key(os.path.join(tmp, "facility.key")), net["group"],
                             net["port"])
        try:
            # A light building load: the failsafe currents (6 A on all 14) plus it fit the main
            # fuse, so a restart never has to cut anyone for the fuse's sake.
            sim = fc.start_sim(procs, tmp, cfg_path, args.sim, ["--base-load", "0.1"])
            fc.wait_balancing(port, sim.report, n)
            fc.sleep_watch(5, [pw, sim])
            problems, growth = [], []
            for k, (sig, down) in enumerate(RESTARTS, 1):
                before = fc.last_report(sim.report)
                charging = {c["device_id"] for c in before["chargers"]
                            if c["state"] == "C" and c["offered_a"] > 0}
                check(len(charging) >= 4, f"restart {k}: only {len(charging)} cars charging")
                t0, w0 = time.monotonic(), time.time()
                stop_appliance(procs, pw, sig)
                fc.sleep_watch(down, [sim])
                pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise,
                                        name=f"phasewise-{k + 1}")
                t_up = time.monotonic()

                def new_plan():
                    boot, all_covered = covered_by_boot(allocs, t_up, devices)
                    return boot if all_covered else None
                boot = pwtest.wait_for("every charger in a plan of the restarted appliance",
                                       new_plan, 25)
                pwtest.wait_for("every charger online at the restarted appliance",
                                lambda: all(c["online"] for c in fc.state(port)["chargers"]), 15)
                fc.sleep_watch(SETTLE_S, [pw, sim])
                t1, w1 = time.monotonic(), time.time()
                reports = fc.read_report(sim.report)
                found = pauses(allocs, reports, charging, t0, t1, w0, w1)
                m0, m1 = max_over(last_before(reports, w0)), max_over(reports[-1])
                grew = {key: round(m1[key] - m0[key], 2) for key in m1
                        if m1[key] - m0[key] > MAX_OVER_GROWTH_A}
                log(f"restart {k} (SIG{sig}, {down} s down, boot {boot}): "
                    f"{len(charging)} cars charging before, {len(found)} offers of 0 A, "
                    f"max_over_a grew {grew or 'nowhere'}")
                problems += [f"restart {k} (SIG{sig}, {down} s down): {p}" for p in found]
                growth += [f"restart {k} (SIG{sig}, {down} s down): {node} L{line + 1} "
                           f"{m0[(node, line)]:.2f} -> {m1[(node, line)]:.2f} A above its limit"
                           for (node, line) in grew]
            reports = fc.read_report(sim.report)
            failures = []
            if problems:
                failures.append("chargers paused by a restart:\n  " + "\n  ".join(problems))
            if growth:
                failures.append("a line above its limit around a restart:\n  " +
                                "\n  ".join(growth))
            try:
                worst = fc.check_no_overload(reports, "five restarts")
            except AssertionError as e:
                failures.append(str(e))
            check(not failures, "\n".join(failures))
            log(f"no charger paused by a restart; no line above its limit beyond the reaction "
                f"window, none above it at all around a restart (worst excess of the run "
                f"{worst:.2f} A)")
            check(procs.stop(pw) == 0, "the last phasewise did not exit 0 on SIGTERM")
            check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")
        finally:
            allocs.close()


if __name__ == "__main__":
    pwtest.run(main)
