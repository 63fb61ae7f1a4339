#!/usr/bin/env python3
"""Modbus TCP faults on real processes (issue 12, item 6). The node's meter must go stale on a
fault, budget conservatively meanwhile (no line planned above its limit, and with the
simulator's ground truth no line loaded above its limit beyond the reaction window), say why,
and recover when the fault ends.

Part 1, the simulator serving the main meter over Modbus TCP (phasewise-sim --modbus-down,
--meter-outage) with cars charging: the gateway goes down and comes back (connection refused,
reconnect with backoff), then hangs (no answers: timeouts).

Part 2, Debian's libmodbus as the gateway (tests/peers/modbus_server.c), its faults switched on
and off through its image file: slow answers beyond the timeout, exception replies (the message
in the event history, counted in /metrics), answers split in two writes (still read), answers for
the wrong unit (refused and counted, never a reading), and a meter whose serial number changes
(refused until the configuration is saved again). Along the way the commissioning page's test
read (POST /api/meters/test) of the same meter over a connection of its own: the values, serial
number and map while the meter is good, and the exact error for a slow gateway (timeout), an
exception, a wrong unit and a refused connection; the answer arrives within its bound, the
meter's polling is not disturbed, a second test read meanwhile gets 429, an invalid meter gets
400 by field and nobody without a login gets one at all. Loopback only; bounded."""
import argparse
import json
import os
import signal
import subprocess
import threading
import time

import fault_common as fc
import modbus_common as mc
import pwtest
from pwtest import check, log

METER_TIMEOUT_S = 3  # the node's stale budget starts after this
DOWN_START, DOWN_S = 14, 10
HUNG_START, HUNG_S = 36, 6


class Watch:
    """Samples /api/state: every planned line within its limit, and what stale looked like."""

    def __init__(self, http):
        self.http = http
        self.samples = 0
        self.stale_samples = 0
        self.worst = None  # (excess A, node, line) of a plan above its limit

    def sample(self):
        doc = fc.state(self.http)
        self.samples += 1
        stale = doc["nodes"][0]["meter"]["stale"]
        self.stale_samples += stale
        for node in doc["nodes"]:
            for line in range(3):
                excess = node["planned_a"][line] - node["limit_a"][line]
                if excess > 1e-6 and (self.worst is None or excess > self.worst[0]):
                    self.worst = (excess, node["id"], line + 1, stale)
        return doc

    def until(self, t_end, alive):
        while time.monotonic() < t_end:
            for p in alive:
                check(p.poll() is None, f"{p.name} exited with {p.returncode}")
            self.sample()
            time.sleep(0.3)

    def wait(self, what, cond, timeout, alive):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in alive:
                check(p.poll() is None, f"{p.name} exited with {p.returncode}")
            doc = self.sample()
            if cond(doc):
                return doc
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def check_plans(self, what):
        check(self.worst is None, f"{what}: a line planned above its limit: {self.worst}")


def stale(doc):
    return doc["nodes"][0]["meter"]["stale"]


def rejected(http, reason):
    return fc.metrics(http).get(
        f'phasewise_datagrams_rejected_total{{transport="modbus",reason="{reason}"}}', 0)


def events(http, kind):
    st, body = pwtest.http_json(http, f"/api/events?kind={kind}&limit=50")
    check(st == 200, f"/api/events answered {st}")
    return [e["detail"] for e in body["events"]]


def test_read(http, auth, meter, what, ok, bound_s):
    """A test read of meter that must answer within bound_s: its answer, ok or not as expected."""
    t0 = time.monotonic()
    st, body = pwtest.meter_test_read(http, auth, meter)
    took = time.monotonic() - t0
    check(st == 200, f"test read ({what}) answered {st}: {body}")
    check(body["ok"] == ok, f"test read ({what}): ok is {body['ok']}, not {ok}: {body}")
    check(took <= bound_s, f"test read ({what}) took {took:.1f} s, more than {bound_s} s")
    log(f"test read, {what}: {body.get('line_a') if ok else body['error']} "
        f"({body['elapsed_ms']} ms)")
    return body


def sim_serves_modbus(sim):
    out = subprocess.run([sim, "--help"], capture_output=True, text=True, timeout=10)
    return "--modbus-down" in out.stdout + out.stderr


def part_simulator(args, tmp, procs):
    port = pwtest.free_tcp_port()
    meter = mc.modbus_meter(port, "sdm630", timeout_s=METER_TIMEOUT_S, fallback_a=70)
    cfg, cfg_path, http = fc.write_config(tmp, meter=meter)
    n = len(cfg["chargers"])
    pw = fc.start_appliance(procs, tmp, cfg_path, http, args.phasewise)
    sim = fc.start_sim(procs, tmp, cfg_path, args.sim,
                       ["--modbus-down", f"{DOWN_START}:{DOWN_S}",
                        "--meter-outage", f"{HUNG_START}:{HUNG_S}"])
    t0 = time.monotonic()
    fc.wait_balancing(http, sim.report, n)
    w = Watch(http)
    alive = [pw, sim]

    w.until(t0 + DOWN_START - 1, alive)
    doc = w.sample()
    check(not stale(doc), "the Modbus meter is stale before any fault")
    errors0 = fc.metrics(http)['phasewise_datagrams_send_errors_total{transport="modbus"}']
    log("before the faults: main meter fresh over Modbus TCP from the simulator")

    # The gateway goes down: connection refused until it listens again.
    w.wait("the meter stale with its gateway down", stale, METER_TIMEOUT_S + 4, alive)
    doc = w.sample()
    alerts = [a["text"] for a in doc["alerts"] if "stale" in a["text"]]
    check(alerts, "no alert for the stale Modbus meter")
    problem = doc["nodes"][0]["meter"].get("problem", "")
    check(f"gateway 127.0.0.1:{port}" in problem,
          f"/api/state does not say the gateway is down: {problem!r}")
    w.until(t0 + DOWN_START + DOWN_S, alive)
    gw_events = events(http, "modbus_gateway")
    check(gw_events, "no modbus_gateway event while the gateway was down")
    log(f"gateway down: stale, alert '{alerts[0]}', problem '{problem}', event "
        f"'{gw_events[0]}'")
    # Back: reconnect within the backoff (1, 2, 4, 8 s after the loss).
    w.wait("the meter fresh after the gateway came back", lambda d: not stale(d), 12, alive)
    log(f"gateway back: fresh again {time.monotonic() - t0 - DOWN_START - DOWN_S:.1f} s after")

    # The gateway hangs: connections open but no answer comes; each timeout reconnects.
    w.until(t0 + HUNG_START, alive)
    w.wait("the meter stale with its gateway hung", stale, METER_TIMEOUT_S + 4, alive)
    w.until(t0 + HUNG_START + HUNG_S, alive)
    errors1 = fc.metrics(http)['phasewise_datagrams_send_errors_total{transport="modbus"}']
    check(errors1 > errors0, "no connect failures or timeouts counted")
    w.wait("the meter fresh after the gateway answered again", lambda d: not stale(d), 14,
           alive)
    log(f"gateway hung and back: fresh again; {errors1 - errors0:.0f} connect failures and "
        f"timeouts counted")

    w.check_plans("simulator faults")
    check(w.stale_samples > 5, f"too few samples while stale ({w.stale_samples})")
    reports = fc.read_report(sim.report)
    worst = fc.check_no_overload(reports, "Modbus gateway faults")
    check(fc.charging(reports[-1]) >= 4, "too few cars charging to exercise anything")
    log(f"{w.samples} state samples ({w.stale_samples} stale): no line planned above its limit; "
        f"ground truth: no line above its limit beyond the reaction window (worst excess "
        f"{worst:.1f} A)")
    check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
    check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


def part_peer(args, tmp, procs):
    port = pwtest.free_tcp_port()
    img = os.path.join(tmp, "gateway.txt")
    amps = [21.2, 18.4, 25.6]
    serial = 31415926
    mc.write_image(img, mc.sdm(amps, serial=serial))
    answers = os.path.join(tmp, "answers.txt")
    peer = mc.start_peer(procs, "libmodbus", args.bindir, port, img,
                         extra=["--answer-log", answers])
    meter = mc.modbus_meter(port, "sdm630", timeout_s=METER_TIMEOUT_S, fallback_a=70)
    # One charger, offline: the plan is the stale budget and its failsafe current (no meter
    # fault changes what an offline charger may draw; fourteen of them would not fit).
    cfg, cfg_path, http = fc.write_config(tmp, meter=meter, only_chargers=["a01"])
    pw = fc.start_appliance(procs, tmp, cfg_path, http, args.phasewise, name="phasewise-peer")
    w = Watch(http)
    alive = [pw, peer]

    def reads(values):
        return lambda d: not stale(d) and mc.close_to(mc.measured(d), values)

    w.wait("the first reading", reads(amps), 10, alive)
    fc.wait_planning(http)  # its charger never speaks: the balancer runs once it is over
    log(f"libmodbus gateway: read {amps}")

    # Test reads: only an admin may ask; the meter object is checked as a save would check it.
    st, body = pwtest.meter_test_read(http, {"Content-Type": "application/json"}, meter)
    check(st == 401, f"a test read without a login got {st}, not 401")
    auth = pwtest.admin_headers(http)
    bad = mc.modbus_meter(port, "sdm630")
    del bad["link"]["modbus"]["host"]
    st, body = pwtest.meter_test_read(http, auth, bad)
    check(st == 400 and body["errors"][0]["field"] == "meter.link.modbus.host",
          f"a test read of a meter without host: {st} {body}")
    good = test_read(http, auth, meter, "good values", True, 2)
    check(mc.close_to(good["line_a"], amps, 0.01), f"test read values {good['line_a']} for {amps}")
    check(good["serial"] == serial, f"test read serial {good['serial']}, not {serial}")
    check("SDM630" in good["map"], f"test read map {good['map']!r}")
    refused_port = pwtest.free_tcp_port()
    nobody = test_read(http, auth, mc.modbus_meter(refused_port, "sdm630"), "nobody listening",
                       False, 2)
    check(f"127.0.0.1:{refused_port}" in nobody["error"] and
          "connection refused" in nobody["error"], f"refused: {nobody['error']!r}")
    check(not stale(w.sample()), "the test reads disturbed the meter's polling")

    # Slow answers: later than the timeout, so each one is given up and the connection renewed.
    mc.write_image(img, mc.sdm(amps, serial=serial), options={"delay_ms": 1500})
    w.wait("the meter stale with slow answers", stale, METER_TIMEOUT_S + 5, alive)
    # A test read waits one timeout (400 ms, the peer answering others first at most 1.5 s
    # each); a second one meanwhile is refused.
    slow_answers = []
    slow_read = threading.Thread(target=lambda: slow_answers.append(
        test_read(http, auth, meter, "slow answers", False, 6)))
    slow_read.start()
    time.sleep(0.1)
    st, body = pwtest.meter_test_read(http, auth, meter)
    slow_read.join(10)
    check(st == 429, f"a second test read while one runs got {st}, not 429: {body}")
    check(slow_answers and "did not answer within 400 ms" in slow_answers[0]["error"],
          f"slow answers: {slow_answers}")
    slow = [e for e in events(http, "meter_error") if "did not answer" in e]
    check(slow, "no meter_error event says the meter did not answer")
    mc.write_image(img, mc.sdm(amps, serial=serial))
    w.wait("the meter fresh after the answers are quick again", reads(amps), 14, alive)
    log(f"slow answers: stale ('{slow[0]}'), then fresh again")

    # Exceptions: the message names the registers and what to check.
    mc.write_image(img, mc.sdm(amps, serial=serial), options={"exception": 2})
    doc = w.wait("the meter stale with exception replies", stale, METER_TIMEOUT_S + 5, alive)
    problem = doc["nodes"][0]["meter"].get("problem", "")
    check("exception 2" in problem, f"/api/state shows no problem for the exceptions: {problem!r}")
    check(any(problem in a["text"] for a in doc["alerts"]), "no alert carries the meter's problem")
    exc = [e for e in events(http, "meter_error") if "exception 2" in e]
    check(exc, f"no meter_error event for the exception: {events(http, 'meter_error')}")
    check("0x" in exc[0] and "unit 1" in exc[0], f"the exception message names no register or "
                                                 f"unit: {exc[0]}")
    check(rejected(http, "exception") > 0, "exception replies not counted in /metrics")
    exc_read = test_read(http, auth, meter, "exception replies", False, 4)
    check("exception 2, illegal data address" in exc_read["error"] and
          "registers 0x" in exc_read["error"] and "unit 1 at" in exc_read["error"],
          f"the test read's exception: {exc_read['error']!r}")
    mc.write_image(img, mc.sdm(amps, serial=serial))
    w.wait("the meter fresh after the exceptions end", reads(amps), 6, alive)
    log(f"exception replies: stale, event '{exc[0]}', counted; then fresh again")

    # Partial frames: each answer in two writes 150 ms apart is still one answer.
    amps2 = [a + 2.2 for a in amps]
    mc.write_image(img, mc.sdm(amps2, serial=serial), options={"split_ms": 150})
    w.wait("the new values read from split answers", reads(amps2), 6, alive)
    w.until(time.monotonic() + 2, alive)
    check(not stale(w.sample()), "split answers made the meter stale")
    log("answers split in two writes: still read")

    # The wrong unit: never a reading (the values it carries must not show), refused, counted.
    wrong = [a + 30 for a in amps]
    mc.write_image(img, mc.sdm(wrong, serial=serial), options={"unit_as": 9})
    w.wait("the meter stale with answers from the wrong unit", stale, METER_TIMEOUT_S + 5, alive)
    w.until(time.monotonic() + 2, alive)
    check(not mc.close_to(mc.measured(w.sample()), wrong), "a wrong-unit answer became a reading")
    n_wrong = rejected(http, "wrong_unit")
    check(n_wrong > 0, "wrong-unit answers not counted in /metrics")
    unit_read = test_read(http, auth, meter, "wrong unit", False, 4)
    check("unit 9" in unit_read["error"] and "asked unit 1" in unit_read["error"],
          f"the test read's wrong unit: {unit_read['error']!r}")
    check(str(round(wrong[0], 1)) not in json.dumps(unit_read), "a wrong-unit value shown")
    mc.write_image(img, mc.sdm(amps, serial=serial))
    w.wait("the meter fresh after the right unit answers again", reads(amps), 14, alive)
    log(f"wrong unit: stale, {n_wrong:.0f} answers refused (reason wrong_unit), then fresh again")

    # Another meter at the same address: refused until the configuration is saved again.
    mc.write_image(img, mc.sdm(amps2, serial=serial + 1))
    w.wait("the meter stale with a changed serial number", stale, METER_TIMEOUT_S + 5, alive)
    check(not mc.close_to(mc.measured(w.sample()), amps2), "a swapped meter's reading went in")
    check(rejected(http, "serial_changed") > 0, "the changed serial number not counted")
    swapped = [e for e in events(http, "meter_error") if "serial number" in e]
    check(swapped, "no meter_error event for the changed serial number")
    pw.send_signal(signal.SIGHUP)  # the installer saves the configuration: the new meter is ok
    w.wait("the new meter read after the configuration was saved again", reads(amps2), 8, alive)
    log(f"serial number changed: refused ('{swapped[0]}'), read again after the config reload")

    # The meter moves to another gateway (config saved, SIGHUP): the old connection goes, the
    # new gateway is read; then a second meter joins behind the old one.
    port2 = pwtest.free_tcp_port()
    img2 = os.path.join(tmp, "gateway2.txt")
    amps3 = [9.1, 8.2, 7.3]
    mc.write_image(img2, mc.sdm(amps3, serial=serial + 7))
    peer2 = mc.start_peer(procs, "libmodbus", args.bindir, port2, img2)
    alive.append(peer2)
    cfg["nodes"][0]["meter"] = mc.modbus_meter(port2, "sdm630", timeout_s=METER_TIMEOUT_S,
                                               fallback_a=70)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=1)
    pw.send_signal(signal.SIGHUP)
    w.wait("the meter read from its new gateway", reads(amps3), 8, alive)
    w.until(time.monotonic() + 1.5, alive)
    with open(answers) as f:
        n_old = len(f.readlines())
    w.until(time.monotonic() + 2, alive)
    with open(answers) as f:
        check(len(f.readlines()) == n_old, "the gateway no longer configured is still polled")
    log("meter moved to another gateway: read there, the old gateway no longer polled")
    cfg["nodes"][1]["meter"] = mc.modbus_meter(port, "sdm630", unit=2, timeout_s=METER_TIMEOUT_S,
                                               fallback_a=20)  # a 50 A sub-circuit
    amps4 = [3.3, 4.4, 5.6]
    mc.write_image(img, {}, unit_regs={1: mc.sdm(amps2, serial=serial + 1),
                                       2: mc.sdm(amps4, serial=serial + 2)})
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=1)
    pw.send_signal(signal.SIGHUP)
    # Until the reload is in force the state document has no meter on that node.
    w.wait("both meters read", lambda d: reads(amps3)(d) and
           not d["nodes"][1].get("meter", {}).get("stale", True) and
           mc.close_to(mc.measured(d, 1), amps4), 8, alive)
    log("a second gateway joined on reload: both meters read")

    w.check_plans("libmodbus gateway faults")
    check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
    check(procs.stop(peer) == 0, "modbus-test-server did not exit 0 on SIGTERM")
    check(procs.stop(peer2) == 0, "the second modbus-test-server did not exit 0 on SIGTERM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--bindir", required=True, help="folder of modbus-test-server")
    ap.add_argument("--part", choices=["sim", "peer"], help="run one part only")
    args = ap.parse_args()
    if args.part != "peer":
        if sim_serves_modbus(args.sim):
            with pwtest.workspace("pw-modbus-faults-sim-") as (tmp, procs):
                part_simulator(args, tmp, procs)
        else:
            log("phasewise-sim cannot serve Modbus TCP meters (no --modbus-down): part 1 skipped")
    if args.part != "sim":
        with pwtest.workspace("pw-modbus-faults-peer-") as (tmp, procs):
            part_peer(args, tmp, procs)


if __name__ == "__main__":
    pwtest.run(main)
