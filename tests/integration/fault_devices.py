#!/usr/bin/env python3
"""The charger registry on real processes, with the test playing the devices: link type and
Wi-Fi signal from announces (a warning below -75 dBm), packet loss from sequence gaps, last
seen, offline after the configured timeout and back, a reboot (new boot id) picked up without
restarting the appliance while a boot id going backwards is refused, and a device that is not in
the configuration listed as unassigned and never given current until an installer assigns it
(here by editing the config file and SIGHUP)."""
import argparse
import json
import os
import signal
import time

import fault_common as fc
import pwproto
import pwtest
from pwtest import check, log

GROUP = "239.255.80.87"
DEVICES = {1001: "a01", 1002: "a02", 2001: "b01"}
STRANGER = 5555
MAIN_METER = 900  # fault_common's main meter: the appliance plans once it has read it
OFFLINE_S = 6


class Lan:
    def __init__(self, key, port):
        self.key, self.dest = key, (GROUP, port)
        self.sock = pwproto.group_socket(GROUP, port)
        self.sock.setblocking(False)
        boot = int(time.time())
        self.tx = {d: pwproto.Sender(key, d, boot)
                   for d in list(DEVICES) + [STRANGER, MAIN_METER]}
        self.allocated = set()  # device ids seen in allocations since the last clear

    def send(self, dev, msg_type, payload, skip=0):
        self.tx[dev].seq += skip
        self.sock.sendto(self.tx[dev].datagram(msg_type, payload), self.dest)

    def status(self, dev, state="C", skip=0):
        self.send(dev, pwproto.STATUS, pwproto.status_payload(state, 3, (8000,) * 3, 500, 8000,
                                                              0, 1), skip)

    def drain(self):
        for _, _, entries in pwproto.pending_allocations(self.sock, self.key):
            self.allocated |= set(entries)


def charger(doc, cid):
    return next(c for c in doc["chargers"] if c["id"] == cid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-devices-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, balancer={"offline_s": OFFLINE_S},
                                              only_chargers=DEVICES.values())
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        lan = Lan(pwproto.read_key(os.path.join(tmp, "facility.key")), cfg["network"]["port"])
        lan.send(1001, pwproto.ANNOUNCE, pwproto.announce_payload(model="wired"))
        lan.send(1002, pwproto.ANNOUNCE, pwproto.announce_payload(
            model="weak wifi", link=pwproto.LINK_WIFI, rssi=-80))
        lan.send(2001, pwproto.ANNOUNCE, pwproto.announce_payload(
            model="good wifi", link=pwproto.LINK_WIFI, rssi=-60))
        lan.send(STRANGER, pwproto.ANNOUNCE, pwproto.announce_payload(model="stranger"))
        # 40 statuses each; a01 loses one datagram in five on the way (a gap before every 5th).
        for k in range(40):
            for dev in (1001, 1002, 2001, STRANGER):
                lan.status(dev, skip=1 if dev == 1001 and k % 4 == 3 else 0)
            lan.send(MAIN_METER, pwproto.METER, pwproto.meter_payload((30000,) * 3))
            time.sleep(0.05)
            lan.drain()
        time.sleep(1.5)
        lan.drain()

        doc = fc.state(port)
        a01, a02, b01 = (charger(doc, c) for c in ("a01", "a02", "b01"))
        check(all(c["online"] for c in (a01, a02, b01)), "the devices are not online")
        check(all(c["last_seen_ms"] is not None and c["last_seen_ms"] < 3000
                  for c in (a01, a02, b01)), "last seen is not recent")
        check(a01["link"] == "ethernet" and a02["link"] == "wifi" and a02["rssi_dbm"] == -80,
              f"link types wrong: {a01['link']}, {a02['link']} {a02['rssi_dbm']} dBm")
        check(abs(a01["loss_pct"] - 19.6) <= 0.2, f"a01 lost 10 of 51 datagrams, the appliance "
                                                   f"says {a01['loss_pct']} %")
        check(a02["loss_pct"] == 0 and b01["loss_pct"] == 0, "loss reported on clean links")
        weak = [a["text"] for a in doc["alerts"] if "dBm" in a["text"]]
        check(len(weak) == 1 and "-80" in weak[0], f"expected one weak Wi-Fi alert (a02), got "
                                                   f"{weak}")
        log(f"links: a01 ethernet {a01['loss_pct']} % loss; a02 wifi -80 dBm ('{weak[0]}'); "
            "b01 wifi -60 dBm, no alert")

        stranger = [u for u in doc["unassigned"] if u["device_id"] == STRANGER]
        check(stranger and stranger[0]["model"] == "stranger",
              f"the unconfigured device is not listed as unassigned: {doc['unassigned']}")
        check(lan.allocated >= set(DEVICES), f"allocations miss configured chargers: "
                                             f"{lan.allocated}")
        check(STRANGER not in lan.allocated, "an unassigned device was given current")
        m = fc.metrics(port)
        check(m['phasewise_chargers{status="unassigned"}'] == 1, "/metrics: unassigned != 1")
        log("device 5555 listed as unassigned and left out of every allocation")

        # a02 goes silent: offline after offline_s, the others stay online.
        t0 = time.monotonic()
        while time.monotonic() - t0 < OFFLINE_S + 2:
            for dev in (1001, 2001):
                lan.status(dev)
            time.sleep(0.5)
        doc = fc.state(port)
        check(not charger(doc, "a02")["online"] and charger(doc, "a01")["online"],
              "a02 not offline after its silence, or a talking charger offline")
        check(fc.metrics(port)['phasewise_chargers{status="offline"}'] == 1,
              "/metrics does not count a02 offline")
        log(f"a02 offline after {OFFLINE_S} s of silence")

        # b01 reboots (a higher boot id, sequence from 1) and comes back in state B; a02 returns.
        lan.tx[2001] = pwproto.Sender(lan.key, 2001, lan.tx[2001].boot + 5)
        lan.status(2001, state="B")
        lan.status(1002)
        time.sleep(1.5)
        doc = fc.state(port)
        check(charger(doc, "b01")["state"] == "B", "b01's status after its reboot was not taken")
        check(charger(doc, "a02")["online"], "a02 not back online")
        # A boot id going backwards is refused (a replay) and changes nothing.
        rej = doc["counters"]["rejected"]["replay"]
        old = pwproto.Sender(lan.key, 2001, lan.tx[2001].boot - 5)
        old.seq = 100
        lan.sock.sendto(old.datagram(pwproto.STATUS, pwproto.status_payload("A", 0)), lan.dest)
        time.sleep(1.5)
        doc = fc.state(port)
        check(doc["counters"]["rejected"]["replay"] == rej + 1, "a lower boot id was not refused")
        check(charger(doc, "b01")["state"] == "B", "a lower boot id changed b01")
        with open(pw.logfile) as f:
            text = f.read()
        check("charger_reboot b01" in text, "no charger_reboot event for b01")
        log("b01's reboot picked up without a restart; a boot id going backwards refused")

        # The installer assigns the stranger: it joins the plan and leaves the unassigned list.
        with open(cfg_path) as f:
            new = json.load(f)
        new["chargers"].append({"id": "c01", "device_id": STRANGER, "node": "garage-b",
                                "wiring": "L1L2L3", "max_a": 16, "failsafe_a": 0})
        with open(cfg_path, "w") as f:
            json.dump(new, f)
        pw.send_signal(signal.SIGHUP)
        lan.allocated.clear()
        for _ in range(6):
            lan.status(STRANGER)
            time.sleep(0.5)
            lan.drain()
        doc = fc.state(port)
        check(STRANGER in lan.allocated, "the assigned device gets no allocation")
        check(not doc["unassigned"], f"still listed as unassigned: {doc['unassigned']}")
        check(charger(doc, "c01")["online"], "the newly assigned charger is not online")
        log("device 5555 assigned by the installer: allocated, no longer unassigned")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
