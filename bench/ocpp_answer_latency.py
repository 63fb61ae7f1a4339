#!/usr/bin/env python3
"""What keeping the local controller's queue in SQLite costs a charge point: the round trip of a
Heartbeat from a charge point (ocpp-rpc's client, through tests/integration/ocpp_peer.py) to a
real `phasewise serve` and back, with the upstream to a CSMS (ocpp-rpc's server) off and on.
With it on, phasewise answers a call only once the call is written down for the CSMS
(docs/ocpp.md), so the difference is that write. Prints median and p99 per run, alternating
off and on. Loopback only; needs the npm peers (tests/peers).

    python3 bench/ocpp_answer_latency.py --phasewise build/rel/bin/phasewise [--calls 40]
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import fault_common as fc  # noqa: E402
import ocpp_local_ctl as lc  # noqa: E402
import pwtest  # noqa: E402
from ocpp_peer import CentralSystem, ChargePoints  # noqa: E402


def measure(binary, upstream, calls):
    with pwtest.workspace("pw-ocpp-lat-") as (tmp, procs):
        csms = CentralSystem(log=os.path.join(tmp, "csms.log"))
        csms.start()
        http_port, ocpp_port = pwtest.free_tcp_port(), pwtest.free_tcp_port()
        path = lc.write_config(tmp, http_port, ocpp_port, csms.port)
        if not upstream:
            with open(path) as f:
                cfg = json.load(f)
            del cfg["ocpp"]["upstream"]
            cfg["ocpp"]["charge_points"] = [{"id": cp} for cp in lc.IDS]
            with open(path, "w") as f:
                json.dump(cfg, f)
        fc.start_appliance(procs, tmp, path, http_port, binary)
        cps = ChargePoints(f"ws://127.0.0.1:{ocpp_port}/ocpp", ["LC-1"],
                           log=os.path.join(tmp, "cps.log"))
        cps.start()
        try:
            cps.connect()
            cps.boot("LC-1")
            time.sleep(2)
            ms = []
            for _ in range(calls):
                time.sleep(0.25)  # under the charge point's flood limit
                t = time.monotonic()
                cps.request({"cmd": "call", "id": "LC-1", "method": "Heartbeat", "params": {}})
                ms.append((time.monotonic() - t) * 1000)
        finally:
            cps.stop()
            csms.stop()
        ms.sort()
        return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    for _ in range(args.pairs):
        for up in (False, True):
            med, p99 = measure(args.phasewise, up, args.calls)
            print(f"upstream {'on ' if up else 'off'}: Heartbeat round trip median {med:.2f} ms, "
                  f"p99 {p99:.2f} ms ({args.calls} calls)", flush=True)


if __name__ == "__main__":
    main()
