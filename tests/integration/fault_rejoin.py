#!/usr/bin/env python3
"""Fault: the appliance's address changes, then its link goes down and up. In two network
namespaces this test creates (and always deletes), joined by a veth pair: the appliance on one
end, the simulator on the other. The test moves the appliance's address (as a DHCP renewal
would) and takes its link down and up; the appliance must notice by itself, join the group
again on the new address and keep the chargers' leases alive. Needs root and iproute2; skipped
(77) without them. Never touches a real interface: both ends live in the test's namespaces."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import fault_common as fc
import pwtest
from pwtest import check, log

SUBNET = "10.213.0"  # only inside the test's own namespaces
SKIP = 77


def ip(*args, check_rc=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check_rc and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class Namespaces:
    """Two namespaces and a veth pair between them; deleted on exit whatever happened."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.a, self.b = f"pwt-a-{tag}", f"pwt-b-{tag}"
        # Unique names: concurrent runs must not meet even for the moment of creation.
        self.dev_a, self.dev_b = f"pwa{tag}", f"pwb{tag}"

    def __enter__(self):
        try:
            ip("netns", "add", self.a)
            ip("netns", "add", self.b)
            ip("link", "add", self.dev_a, "netns", self.a, "type", "veth", "peer", "name",
               self.dev_b, "netns", self.b)
            for ns, dev, host in ((self.a, self.dev_a, 1), (self.b, self.dev_b, 2)):
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "addr", "add", f"{SUBNET}.{host}/24", "dev", dev)
                ip("-n", ns, "link", "set", dev, "up")
            # Programs list only running interfaces; a veth runs once both ends are up.
            for ns, dev in ((self.a, self.dev_a), (self.b, self.dev_b)):
                pwtest.wait_for(f"{dev} running", lambda ns=ns, dev=dev: "state UP" in ip(
                    "-n", ns, "-o", "link", "show", "dev", dev).stdout, 10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for ns in (self.a, self.b):
            ip("netns", "del", ns, check_rc=False)

    def http(self, port, path):
        """GET a JSON document from the appliance's API inside namespace a."""
        code = ("import json,sys,urllib.request;"
                f"print(urllib.request.urlopen('http://127.0.0.1:{port}{path}',timeout=5)"
                ".read().decode())")
        r = subprocess.run(["ip", "netns", "exec", self.a, sys.executable, "-c", code],
                           capture_output=True, text=True, timeout=15)
        check(r.returncode == 0, f"GET {path} in {self.a}: {r.stderr.strip()[-300:]}")
        return r.stdout


def leases_alive(report):
    last = fc.last_report(report)
    return (last is not None and last["wall_ms"] / 1000.0 > time.time() - 2.5 and
            all(c["lease"] == "active" for c in last["chargers"]))


def rejoins(ns, port):
    for line in ns.http(port, "/metrics").splitlines():
        if line.startswith("phasewise_multicast_rejoins_total "):
            return int(float(line.split()[1]))
    raise AssertionError("/metrics has no phasewise_multicast_rejoins_total")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("skipped: needs root and iproute2 for network namespaces", flush=True)
        sys.exit(SKIP)
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if probe.returncode != 0:
        print("skipped: network namespaces are not available here", flush=True)
        sys.exit(SKIP)

    with Namespaces() as ns, pwtest.workspace("pw-fault-rejoin-") as (tmp, procs):
        port = pwtest.free_tcp_port()
        cfg, cfg_path, _ = fc.write_config(tmp, balancer={"lease_s": 6}, http_port=port,
                                           interface=f"{SUBNET}.1")
        n = len(cfg["chargers"])
        pw = fc.start_appliance(procs, tmp, cfg_path, None, args.phasewise,
                                prefix=["ip", "netns", "exec", ns.a])
        pwtest.wait_for("the appliance's API", lambda: json.loads(
            ns.http(port, "/api/health"))["status"] == "ok", 20)
        sim = fc.start_sim(procs, tmp, cfg_path, args.sim, ["--interface", f"{SUBNET}.2"],
                           prefix=["ip", "netns", "exec", ns.b])
        pwtest.wait_for("every charger leased across the veth pair",
                        lambda: leases_alive(sim.report), 25)
        pwtest.wait_for("every charger online", lambda: sum(
            c["online"] for c in json.loads(ns.http(port, "/api/state"))["chargers"]) == n, 15)
        log(f"all {n} chargers online and leased across the veth pair")
        base = rejoins(ns, port)

        # A new address, as a DHCP renewal would give: the old one disappears.
        ip("-n", ns.a, "addr", "del", f"{SUBNET}.1/24", "dev", ns.dev_a)
        ip("-n", ns.a, "addr", "add", f"{SUBNET}.11/24", "dev", ns.dev_a)
        t0 = time.monotonic()
        pwtest.wait_for("the appliance to rejoin on its new address",
                        lambda: rejoins(ns, port) > base, 10)
        log(f"rejoined on {SUBNET}.11 after {time.monotonic() - t0:.1f} s")
        fc.sleep_watch(8, [pw, sim])  # longer than a lease: only renewals keep them alive
        check(leases_alive(sim.report), "leases lapsed after the address change")
        doc = json.loads(ns.http(port, "/api/state"))
        check(all(c["online"] for c in doc["chargers"]), "chargers went offline after the "
                                                          "address change")
        log("leases renewed and statuses heard on the new address")

        # The link goes down and comes back (cable replugged).
        base = rejoins(ns, port)
        ip("-n", ns.a, "link", "set", ns.dev_a, "down")
        fc.sleep_watch(4, [pw, sim])
        ip("-n", ns.a, "link", "set", ns.dev_a, "up")
        t0 = time.monotonic()
        log("link down for 4 s and up again")
        pwtest.wait_for("the appliance to rejoin after the link came back",
                        lambda: rejoins(ns, port) > base, 10)
        pwtest.wait_for("leases renewed after the link came back",
                        lambda: leases_alive(sim.report), 10)
        log(f"link back: rejoined and leases renewed {time.monotonic() - t0:.1f} s later")
        with open(pw.logfile) as f:
            events = [line.strip() for line in f if "network_" in line]
        check(any("network_rejoin" in e for e in events), "no network_rejoin event logged")
        log("events: " + " | ".join(e.split("event ", 1)[-1] for e in events))
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
