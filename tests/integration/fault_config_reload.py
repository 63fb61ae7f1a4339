#!/usr/bin/env python3
"""Configuration changes without a restart, under load: while the simulated facility charges,
the test rewrites the config file and sends SIGHUP twenty times in quick succession, switching
the main fuse between 100 A and 90 A and now and then writing a config that fails validation
(failsafe currents that do not fit the fuse). Every valid file must be applied as a whole
between two control passes and every invalid one rejected with the running one kept: the
appliance logs one config_change per valid file and one rejection per invalid one, serves the
last valid config, plans within it, never stops renewing the chargers' leases, and no line is
overloaded beyond the reaction window."""
import argparse
import json
import signal
import time

import fault_common as fc
import pwtest
from pwtest import check, log

RELOADS = 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-reload-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, balancer={"lease_s": 6})
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim, ["--base-load", "0.2"])
        fc.wait_balancing(port, sim.report, n)

        valid, invalid, last_limit = 0, 0, 100
        for k in range(RELOADS):
            new = json.loads(json.dumps(cfg))
            if k % 4 == 3:
                new["nodes"][0]["limit_a"] = 50  # 14 failsafe currents of 6 A do not fit
                invalid += 1
            else:
                last_limit = 90 if k % 2 == 0 else 100
                new["nodes"][0]["limit_a"] = last_limit
                valid += 1
            with open(cfg_path, "w") as f:
                json.dump(new, f)
            pw.send_signal(signal.SIGHUP)
            time.sleep(0.35)
            check(pw.poll() is None, f"phasewise exited during reload {k + 1}")
        time.sleep(1.5)
        log(f"{RELOADS} reloads sent: {valid} valid, {invalid} invalid")

        st, running = pwtest.http_json(port, "/api/config")
        main_limit = running["nodes"][0]["limit_a"] if st == 200 else None
        check(main_limit in (last_limit, [last_limit] * 3),
              f"running config has main {running['nodes'][0]['limit_a']}, last valid file "
              f"{last_limit} A")
        doc = fc.state(port)
        check(doc["nodes"][0]["limit_a"] == [last_limit] * 3, "the live state shows another "
                                                              "main fuse than the running config")
        planned = max(doc["nodes"][0]["planned_a"])
        check(planned <= last_limit, f"planned {planned} A on a {last_limit} A main fuse")
        with open(pw.logfile) as f:
            text = f.read()
        changes = text.count("event config_change")
        kept = text.count("the running configuration stays in force")
        check(changes == valid, f"{changes} config_change events for {valid} valid files")
        check(kept == invalid, f"{kept} rejections for {invalid} invalid files")
        check(all(c["online"] for c in doc["chargers"]), "chargers offline after the reloads")
        fc.sleep_watch(3, [pw, sim])
        reports = fc.read_report(sim.report)
        lapsed = {c["id"] for r in reports for c in r["chargers"] if c["lease"] == "expired"}
        check(not lapsed, f"leases lapsed during the reloads: {sorted(lapsed)}")
        worst = fc.check_no_overload(reports, "config reloads")
        log(f"each valid file applied once, each invalid one rejected; main {last_limit} A in "
            f"force, planned {planned} A; no lease lapsed; worst excess {worst:.1f} A")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
