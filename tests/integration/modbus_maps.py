#!/usr/bin/env python3
"""Every Modbus meter map against peers nobody here wrote (issue 12, item 6): for each map the
test writes a register image computed from the maker's register table (modbus_common.py, not
phasewise's encoder), serves it with Debian's libmodbus (modbus-test-server) or the modbus-serial
npm package's ServerTCP (half the maps each), starts phasewise with the main meter on that map and
checks that /api/state shows the main node's measured currents within 0.05 A (the state
document gives amperes to 0.1 A, so the values here stay clear of x.x5). Then it changes
the image and checks that the new values arrive (the peers reload it). The commissioning
page's test read (POST /api/meters/test) of the same meter gives the same values through every
map, SunSpec discovery included, and names the map it read. Loopback only."""
import argparse
import os

import fault_common as fc
import modbus_common as mc
import pwtest
from pwtest import check, log

# map -> peer; SunSpec twice: integer model 203 with a scale factor, float model 213.
TITLES = {"sdm630": "SDM630", "sdm72v2": "SDM72D-M v2", "em340": "EM340", "em24": "EM24-DIN",
          "em24eth": "EM24 Ethernet", "abb_b2x": "ABB B23/B24", "sunspec": "SunSpec meter (model",
          "generic": "Generic"}
CASES = [
    ("sdm630", "libmodbus", {}),
    ("sdm72v2", "modbus-serial", {}),
    ("em340", "libmodbus", {}),
    ("em24", "modbus-serial", {}),
    ("em24eth", "libmodbus", {}),
    ("abb_b2x", "modbus-serial", {}),
    ("sunspec", "libmodbus", {"model": 203}),
    ("sunspec", "modbus-serial", {"model": 213}),
    ("generic", "modbus-serial", {}),
]


def image(map_name, amps, opts):
    build = mc.MAPS[map_name][0]
    return build(amps, **opts)


def one(args, tmp, procs, k, map_name, kind, opts):
    amps = [12.34 + k, 7.52, round(20.13 - k / 3, 3)]
    img = os.path.join(tmp, f"image-{k}.txt")
    mc.write_image(img, image(map_name, amps, opts))
    port = pwtest.free_tcp_port()
    peer = mc.start_peer(procs, kind, args.bindir, port, img, name=f"{kind}-{map_name}-{k}")
    cfg, cfg_path, http = fc.write_config(tmp, meter=mc.modbus_meter(port, map_name))
    pw = fc.start_appliance(procs, tmp, cfg_path, http, args.phasewise, name=f"phasewise-{k}")
    seen = pwtest.wait_for(f"{map_name} currents {amps} in /api/state",
                           lambda: (lambda m: m if mc.close_to(m, amps) else None)(
                               mc.measured(fc.state(http))), 10)
    log(f"{map_name} over {kind}: read {seen} for {amps}")
    doc = fc.state(http)
    check(not doc["nodes"][0]["meter"]["stale"], f"{map_name}: meter stale while answering")
    st, tr = pwtest.meter_test_read(http, pwtest.admin_headers(http),
                                    mc.modbus_meter(port, map_name))
    check(st == 200 and tr["ok"] and mc.close_to(tr["line_a"], amps, 0.011) and
          TITLES[map_name] in tr["map"], f"{map_name}: test read {st} {tr}")
    log(f"{map_name}: test read {tr['line_a']} from '{tr['map']}' in {tr['elapsed_ms']} ms")

    # A new image: the peer reloads it and the appliance follows.
    amps2 = [a + 3.2 for a in amps]
    mc.write_image(img, image(map_name, amps2, opts))
    pwtest.wait_for(f"{map_name} new currents {amps2}",
                    lambda: mc.close_to(mc.measured(fc.state(http)), amps2), 10)
    m = fc.metrics(http)
    rejected = {key: v for key, v in m.items()
                if key.startswith("phasewise_datagrams_rejected_total{transport=\"modbus\"")}
    check(not any(rejected.values()), f"{map_name}: modbus input rejected: {rejected}")
    check(m['phasewise_datagrams_accepted_total{transport="modbus"}'] >= 2,
          f"{map_name}: no accepted readings counted")
    check(procs.stop(pw) == 0, f"phasewise did not exit 0 on SIGTERM ({map_name})")
    check(procs.stop(peer) == 0, f"the {kind} peer did not exit 0 ({map_name})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--bindir", required=True, help="folder of modbus-test-server")
    ap.add_argument("--only", help="run only this map")
    args = ap.parse_args()
    why = mc.node_peer_ready()
    if why:
        log(f"the modbus-serial half is skipped: {why}")
    with pwtest.workspace("pw-modbus-maps-") as (tmp, procs):
        ran = 0
        for k, (map_name, kind, opts) in enumerate(CASES):
            if args.only and args.only != map_name:
                continue
            if kind == "modbus-serial" and why:
                kind = "libmodbus"  # every map is still read, by the other peer
            one(args, tmp, procs, k, map_name, kind, opts)
            ran += 1
        check(ran, "no map ran")
        log(f"{ran} map cases read correctly")


if __name__ == "__main__":
    pwtest.run(main)
