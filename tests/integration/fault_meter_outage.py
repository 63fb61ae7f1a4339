#!/usr/bin/env python3
"""Fault: the meter goes silent (two minutes in a facility, compressed here: the test's config
gives the main meter a 3 s timeout and the simulator silences it for 20 s). The appliance must
mark it stale, budget conservatively (the worst recent reading or the configured fallback, never
the last value: here a fallback of 70 A on a 100 A fuse that carries about 30 A), say so in the state, the alerts and /metrics, keep every line within its limit,
and return to normal balancing when readings resume."""
import argparse
import time

import fault_common as fc
import pwtest
from pwtest import check, log

OUTAGE_START_S, OUTAGE_S, TIMEOUT_S = 14, 20, 3


def stale_view(port):
    doc = fc.state(port)
    main = doc["nodes"][0]
    alerts = [a["text"] for a in doc["alerts"] if "stale" in a["text"]]
    reasons = {c["reason"] for c in doc["chargers"]}
    total = sum(c["limit_a"] for c in doc["chargers"])
    return main["meter"]["stale"], alerts, reasons, total, main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-meter-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, meter={"timeout_s": TIMEOUT_S,
                                                          "fallback_a": 70})
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim,
                           ["--meter-outage", f"{OUTAGE_START_S}:{OUTAGE_S}"])
        t0 = time.monotonic()
        fc.wait_balancing(port, sim.report, n)

        # Before: fresh readings, no alert, balancing on the measured building load.
        fc.sleep_watch(OUTAGE_START_S - 1 - (time.monotonic() - t0), [pw, sim])
        stale, alerts, _, total_before, _ = stale_view(port)
        check(not stale and not alerts, f"meter stale before the outage: {alerts}")
        check(fc.metrics(port)['phasewise_meter_stale{node="main"}'] == 0,
              "/metrics calls a fresh meter stale")
        log(f"before the outage: {total_before:.1f} A allocated in all")

        # During: stale after the timeout, conservative budget, visible everywhere.
        fc.sleep_watch(OUTAGE_START_S + TIMEOUT_S + 3 - (time.monotonic() - t0), [pw, sim])
        stale, alerts, reasons, total_during, main_node = stale_view(port)
        check(stale, "the appliance did not notice the silent meter")
        check(alerts, "no alert for the stale meter")
        check("meter_stale" in reasons, f"no charger names the stale meter as its reason: "
                                        f"{reasons}")
        check(total_during < total_before - 5,
              f"no conservative budget: {total_during:.1f} A allocated with a stale meter, "
              f"{total_before:.1f} A with a fresh one")
        m = fc.metrics(port)
        check(m['phasewise_meter_stale{node="main"}'] == 1, "/metrics does not show the stale "
                                                              "meter")
        last = fc.last_report(sim.report)
        building = max(last["nodes"][0]["base_a"])
        log(f"meter silent: stale, alert '{alerts[0]}', {total_during:.1f} A allocated, "
            f"planned {main_node['planned_a']} A on a {main_node['limit_a']} A fuse with a true "
            f"building load of {building:.1f} A")

        # After: readings resume, the stale mark and its alert go, balancing resumes.
        fc.sleep_watch(OUTAGE_START_S + OUTAGE_S + 4 - (time.monotonic() - t0), [pw, sim])
        stale, alerts, reasons, total_after, _ = stale_view(port)
        check(not stale and not alerts, f"still stale after the meter came back: {alerts}")
        check("meter_stale" not in reasons, "chargers still limited by a stale meter")
        check(total_after > total_during + 5, f"balancing did not resume: {total_after:.1f} A "
                                              f"allocated, {total_during:.1f} A while stale")
        check(fc.metrics(port)['phasewise_meter_stale{node="main"}'] == 0,
              "/metrics still shows the meter stale")
        log(f"meter back: fresh, {total_after:.1f} A allocated")

        reports = fc.read_report(sim.report)
        worst = fc.check_no_overload(reports, "meter outage")
        check(fc.charging(reports[-1]) >= 4, "too few cars charging to exercise anything")
        log(f"no line above its limit beyond the reaction window (worst excess {worst:.1f} A)")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
