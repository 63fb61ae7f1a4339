#!/usr/bin/env python3
"""Fault: forged and replayed datagrams. The test plays a meter gateway and three charging
chargers with the facility key, then replays recorded datagrams (an old, much lower meter
reading, old statuses), sends readings signed with a wrong key (one far ahead in sequence, to
try to move the replay window), a bit-flipped copy of a genuine datagram and malformed ones.
All must be rejected and counted by reason, visible in /api/state, /metrics and the alerts,
and change nothing: the allocations, the meter reading and the replay state stay as they were."""
import argparse
import os
import time

import fault_common as fc
import pwproto
import pwtest
from pwtest import check, log

CHARGERS = {1001: "a01", 1002: "a02", 2001: "b01"}
METER = 900


class Facility:
    def __init__(self, key, port):
        boot = int(time.time())
        self.sock = pwproto.group_socket("239.255.80.87", port)
        self.sock.setblocking(False)
        self.dest = ("239.255.80.87", port)
        self.meter = pwproto.Sender(key, METER, boot)
        self.chargers = {d: pwproto.Sender(key, d, boot) for d in CHARGERS}
        self.limits = {d: 0 for d in CHARGERS}
        self.seqs = {d: 0 for d in CHARGERS}
        self.key = key
        self.building_a = 20.0

    def send(self, data):
        self.sock.sendto(data, self.dest)
        return data

    def drain(self):
        for seq, _, entries in pwproto.pending_allocations(self.sock, self.key):
            for d, (limit, _) in entries.items():
                if d in self.limits and seq >= self.seqs[d]:
                    self.limits[d], self.seqs[d] = limit, seq

    def status(self, d):
        draw = min(self.limits[d], 16000)
        return self.send(self.chargers[d].datagram(pwproto.STATUS, pwproto.status_payload(
            "C", 3, (draw, draw, draw), 1000, self.limits[d], self.seqs[d], 1)))

    def meter_reading(self, building_a=None):
        ev = sum(min(v, 16000) for v in self.limits.values())
        ma = int((building_a if building_a is not None else self.building_a) * 1000) + ev
        return self.send(self.meter.datagram(pwproto.METER, pwproto.meter_payload((ma,) * 3)))

    def run(self, seconds, record=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent = [self.meter_reading()] + [self.status(d) for d in CHARGERS]
            if record is not None:
                record.extend(sent)
            time.sleep(0.5)
            self.drain()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-fault-forged-") as (tmp, procs):
        cfg, cfg_path, port = fc.write_config(tmp, only_chargers=CHARGERS.values())
        udp = cfg["network"]["port"]
        pw = fc.start_appliance(procs, tmp, cfg_path, port, args.phasewise)
        key = pwproto.read_key(os.path.join(tmp, "facility.key"))
        fac = Facility(key, udp)
        for d in CHARGERS:
            fac.send(fac.chargers[d].datagram(pwproto.ANNOUNCE, pwproto.announce_payload()))

        # A quiet building: the three cars get plenty. These datagrams are recorded.
        old = []
        fac.run(4, record=old)
        quiet = {c["id"]: c["limit_a"] for c in fc.state(port)["chargers"]}
        check(min(quiet.values()) >= 10, f"the cars did not get current: {quiet}")
        # The building load rises: the cars are cut.
        fac.building_a = 75.0
        fac.run(4)
        doc = fc.state(port)
        before = {c["id"]: c["limit_a"] for c in doc["chargers"] if c["id"] in CHARGERS.values()}
        measured = doc["nodes"][0]["measured_a"]
        check(all(c["online"] for c in doc["chargers"] if c["id"] in CHARGERS.values()),
              "the test's chargers are not online")
        check(max(before.values()) < 12, f"the cars were not cut by the building load: {before}")
        rej0 = dict(doc["counters"]["rejected"])
        log(f"balancing: limits {before}, main measured {measured} A")

        # The attack, while the genuine devices keep talking.
        replayed = [d for d in old if pwproto.header(d)[0] in (pwproto.METER, pwproto.STATUS)]
        for d in replayed:
            fac.send(d)
        wrong = os.urandom(32)
        seq = fac.meter.seq
        for k in range(20):
            fac.send(pwproto.encode(wrong, pwproto.METER, METER, fac.meter.boot, seq + 1000 + k,
                                    pwproto.meter_payload((0, 0, 0))))
            fac.send(pwproto.encode(wrong, pwproto.STATUS, 1001, fac.meter.boot, seq + 1000 + k,
                                    pwproto.status_payload("A", 0)))
        genuine = bytearray(fac.meter.datagram(pwproto.METER, pwproto.meter_payload((0, 0, 0))))
        genuine[24] ^= 0x01  # a current byte flipped in transit or by an attacker
        fac.send(bytes(genuine))
        fac.send(b"PW\x01\x03short")
        fac.send(b"XX" + bytes(72))
        fac.send(b"PW\x02" + bytes(71))
        # The attack datagrams are the newest the appliance heard: had any been taken, the
        # state would show it now.
        time.sleep(1.6)  # the state document is published once a second
        fac.drain()
        doc = fc.state(port)
        check(doc["nodes"][0]["measured_a"] == measured,
              f"the meter reads {doc['nodes'][0]['measured_a']} A after the attack, not the "
              f"genuine {measured} A: a replayed or forged reading was taken")
        check(all(c["state"] == "C" for c in doc["chargers"]),
              "a replayed or forged status changed a charger's state")
        fac.run(2)
        fac.building_a = 74.0  # a genuine reading after the forged high sequence numbers
        fac.run(2)

        doc = fc.state(port)
        after = {c["id"]: c["limit_a"] for c in doc["chargers"] if c["id"] in CHARGERS.values()}
        check(all(abs(after[c] - before[c]) <= 1.0 for c in before),
              f"the attack moved the allocations: before {before}, after {after}")
        now = doc["nodes"][0]["measured_a"]
        check(all(abs(now[line] - measured[line] + 1.0) < 0.3 for line in range(3)),
              f"the meter reads {now} A, expected the genuine {measured} A less 1 A: a forged "
              "sequence number moved the replay window")
        check(all(c["online"] and c["state"] == "C" for c in doc["chargers"]),
              "a charger is offline or not charging after the attack")
        rej = doc["counters"]["rejected"]
        gained = {k: rej[k] - rej0.get(k, 0) for k in rej}
        check(gained["replay"] >= len(replayed),
              f"{gained['replay']} replays counted for {len(replayed)} replayed datagrams")
        check(gained["auth"] >= 41, f"{gained['auth']} authentication failures counted for 41")
        for reason in ("short", "magic", "version"):
            check(gained[reason] >= 1, f"no '{reason}' rejection counted: {gained}")
        m = fc.metrics(port)
        for reason in ("replay", "auth", "short", "magic", "version"):
            series = f'phasewise_datagrams_rejected_total{{transport="lan",reason="{reason}"}}'
            check(m[series] == rej[reason], f"/metrics {series} = {m[series]}, API {rej[reason]}")
        alerts = [a["text"] for a in doc["alerts"] if "rejected" in a["text"]]
        check(alerts, f"no alert about rejected datagrams: {doc['alerts']}")
        log(f"rejected {gained}; alert '{alerts[0]}'; allocations and meter unchanged")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
