#!/usr/bin/env python3
"""OCPP local controller over TLS: phasewise's upstream to the operator's CSMS as wss://, checked
against the CA in ocpp.upstream.ca_file. ocpp-rpc's strict CSMS listens for TLS with a
certificate for 127.0.0.1 from a test CA; a charge point (ocpp-rpc's client) connects to
phasewise. With the right CA the charge point's boot and status reach the CSMS over TLS and the
state document says the upstream is connected; with another CA phasewise refuses the CSMS's
certificate, the state document says why, the CSMS never sees the charge point, and local control
goes on (the charge point is answered). Loopback only; skipped (77) without the npm peers or
openssl."""
import argparse
import json
import os
import sys
import time

import fault_common as fc
import pwtest
from mosquitto_common import TestCA
from ocpp_peer import CentralSystem, ChargePoints, PeerError, skip_without_peers
from pwtest import check, log

CP = "TLS-1"


def write_config(tmp, http_port, ocpp_port, csms_port, ca_file):
    cfg = {
        "version": 1,
        "site": "OCPP upstream over TLS",
        "grid": "TN",
        "network": {"port": pwtest.free_udp_port(), "interface": "127.0.0.1", "ttl": 1},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "ocpp": {"listen": f"127.0.0.1:{ocpp_port}", "meter_interval_s": 2,
                 "upstream": {"url": f"wss://127.0.0.1:{csms_port}/ocpp", "ca_file": ca_file,
                              "authorize": "csms"},
                 "charge_points": [{"id": CP}]},
        "nodes": [{"id": "main", "name": "Main fuse", "parent": None, "limit_a": 32,
                   "margin_a": 2}],
        "chargers": [{"id": "c1", "name": "Bay 1", "node": "main",
                      "link": {"ocpp": {"id": CP, "connector": 1}}, "wiring": "L1L2L3",
                      "min_a": 6, "max_a": 16, "failsafe_a": 6}],
    }
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def upstream(http_port):
    c = fc.state(http_port)["chargers"][0]
    return c.get("ocpp", {}).get("upstream")


def run(args, tmp, procs, csms, ca_file, name):
    http_port, ocpp_port = pwtest.free_tcp_port(), pwtest.free_tcp_port()
    cfg_path = write_config(tmp, http_port, ocpp_port, csms.port, ca_file)
    pw = fc.start_appliance(procs, tmp, cfg_path, http_port, args.phasewise, name=name)
    cps = ChargePoints(f"ws://127.0.0.1:{ocpp_port}/ocpp", [CP],
                       log=os.path.join(tmp, f"cps-{name}.log"))
    cps.start()
    try:
        cps.connect()
        check(cps.boot(CP)["status"] == "Accepted", "phasewise accepts the boot")
        cps.request({"cmd": "status", "id": CP, "connector": 1, "status": "Available"})
        return pw, cps, http_port
    except Exception:
        cps.stop()
        raise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()
    skip_without_peers()
    with pwtest.workspace("pw-ocpp-up-tls-") as (tmp, procs):
        try:
            ca = TestCA(os.path.join(tmp, "ca"))
            other = TestCA(os.path.join(tmp, "other-ca"), name="another CA")
        except AssertionError as e:
            log(f"skipped: {e}")
            sys.exit(77)
        cert, key = ca.issue("csms", server=True, names=("IP:127.0.0.1",))
        csms = CentralSystem(tls=(cert, key), log=os.path.join(tmp, "csms.log"))
        csms.start()
        check(csms.url.startswith("wss://"), f"the CSMS listens for TLS: {csms.url}")
        t0 = time.monotonic()
        try:
            # ---- another CA: the CSMS's certificate is refused, local control goes on ----
            pw, cps, http_port = run(args, tmp, procs, csms, other.cert, "phasewise-other-ca")
            pwtest.wait_for("the upstream down with a reason", lambda: (
                upstream(http_port) or "").startswith("down:"), 15)
            why_down = upstream(http_port)
            check("ocpp.upstream.ca_file" in why_down, f"the state says where to look: {why_down}")
            r = cps.request({"cmd": "call", "id": CP, "method": "Authorize",
                             "params": {"idTag": "CARD-1"}})
            check(r["response"]["idTagInfo"]["status"] == "Accepted",
                  "the charge point is answered with the CSMS unreachable")
            time.sleep(2)
            check(not csms.find(lambda e: e.get("event") in ("connect", "call")),
                  "the CSMS never saw the charge point")
            log(f"another CA: upstream {why_down!r}; the charge point answered locally")
            cps.stop()
            check(procs.stop(pw) == 0, "phasewise exited 0")

            # ---- the right CA: boot and status reach the CSMS over TLS --------------------
            pw, cps, http_port = run(args, tmp, procs, csms, ca.cert, "phasewise-ca")
            boot = csms.wait_for(lambda e: e.get("event") == "call" and e.get("id") == CP and
                                 e.get("method") == "BootNotification", 15,
                                 what="the boot at the CSMS")
            check(boot["result"]["status"] == "Accepted", "the CSMS accepts the boot")
            csms.wait_for(lambda e: e.get("event") == "call" and e.get("id") == CP and
                          e.get("method") == "StatusNotification", 15,
                          what="the status at the CSMS")
            pwtest.wait_for("the upstream connected", lambda: upstream(http_port) ==
                            "connected", 10)
            problems = csms.problems() + cps.problems()
            check(problems == [], f"strict mode: {problems[:3]}")
            log("the right CA: boot and status reached the CSMS over wss://, upstream connected, "
                "no strict-mode problem")
            cps.stop()
            check(procs.stop(pw) == 0, "phasewise exited 0")
            log(f"done in {time.monotonic() - t0:.1f} s")
        except PeerError as e:
            raise AssertionError(str(e)) from e
        finally:
            csms.stop()


if __name__ == "__main__":
    pwtest.run(main)
