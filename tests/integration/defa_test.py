#!/usr/bin/env python3
"""DEFA Balancer meter frames on loopback: with `network.defa_meters` the appliance reads the
main meter from 54-byte DEFA frames (sent by the simulator for a node whose meter link is a DEFA
serial) and balances on them; with `network.defa_emit` it multicasts the main node's currents
in the same format, which this test reads as an existing DEFA listener would."""
import argparse
import json
import os
import socket
import struct

import pwtest
from pwtest import check, log

DEFA_GROUP, DEFA_PORT = "234.222.250.1", 57082


def defa_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((DEFA_GROUP, DEFA_PORT))
    mreq = socket.inet_aton(DEFA_GROUP) + socket.inet_aton("127.0.0.1")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(1.0)
    return s


def parse_frame(b):
    """The observed layout: serial ASCII 0-10, L1 uint16 LE mA at 20, L2/L3 uint24 LE at 23/26."""
    check(len(b) == 54, f"DEFA frame of {len(b)} bytes")
    serial = b[0:11].split(b"\0")[0].decode()
    l1 = struct.unpack_from("<H", b, 20)[0]
    l2 = int.from_bytes(b[23:26], "little")
    l3 = int.from_bytes(b[26:29], "little")
    return serial, [l1 / 1000, l2 / 1000, l3 / 1000]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-defa-") as (tmp, procs):
        port = pwtest.free_tcp_port()
        cfg = pwtest.test_config(port, pwtest.free_udp_port())
        cfg["nodes"][0]["meter"] = {"link": {"defa": {"serial": "DEFA0001"}}, "timeout_s": 10,
                                    "fallback_a": 40}
        cfg["network"].update({"defa_meters": True, "defa_emit": True})
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        listener = defa_listener()
        pw = procs.start("phasewise", [args.phasewise, "serve", "--config", cfg_path, "--data",
                                       tmp])
        pwtest.wait_for("the API", lambda: pwtest.http_json(port, "/api/health")[0] == 200, 15)
        report = os.path.join(tmp, "truth.jsonl")
        procs.start("phasewise-sim", [args.sim, "--config", cfg_path, "--key-file",
                                      os.path.join(tmp, "facility.key"), "--seed", "3",
                                      "--report", report])

        def meter_fresh():
            _, doc = pwtest.http_json(port, "/api/state")
            m = doc["nodes"][0].get("meter", {})
            return m.get("kind") == "defa" and not m.get("stale") and m.get("age_ms") is not None \
                and doc
        doc = pwtest.wait_for("the DEFA main meter to be read", meter_fresh, 20)
        with open(report) as f:
            truth = [json.loads(line) for line in f if line.endswith("\n")][-3:]
        loads = [r["nodes"][0]["load_a"] for r in truth]
        measured = doc["nodes"][0]["measured_a"]
        for line in range(3):
            lo = min(x[line] for x in loads) - 1.0
            hi = max(x[line] for x in loads) + 1.0
            check(lo <= measured[line] <= hi,
                  f"L{line + 1}: appliance read {measured[line]} A from DEFA frames, simulator "
                  f"had {[x[line] for x in loads]}")
        log(f"main meter read from DEFA frames: {measured}")

        frames = []
        while len(frames) < 3:
            try:
                data = listener.recv(2048)
            except socket.timeout:
                check(False, "no DEFA frame from the appliance")
            serial, amps = parse_frame(data)
            if serial == "PHASEWISE":
                frames.append(amps)
        check(all(0 < sum(a) < 400 for a in frames), f"implausible emitted currents {frames}")
        log(f"appliance emits DEFA frames: {frames[-1]}")
        _, doc = pwtest.http_json(port, "/api/state")
        check(doc["counters"]["rejected"]["auth"] == 0, "datagrams rejected in a clean run")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
