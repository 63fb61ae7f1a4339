#!/usr/bin/env python3
"""Modbus TCP meters benchmark (issue 12, item 8): 50 meters behind 10 gateways polled once a
second, on the real appliance on loopback.

The facility: 50 sub-circuits under a main fuse, each metered by a Modbus TCP meter (SDM630 map:
two reads a poll, the serial number and the currents), five meters (units 1-5) behind each of ten
gateways, each gateway a Debian libmodbus server (tests/peers/modbus_server.c, modbus-test-server)
serving per-unit register images that this script rewrites; two LAN chargers per sub-circuit,
played here with signed datagrams (bench/server_latency.py's chargers: they announce, report and
draw what they are allocated). Each meter reads its sub-circuit's building load plus its
chargers' draw.

- steady: --steady seconds of polling; the appliance's CPU from /proc/PID/stat; the loop
  thread's CPU time (/proc/PID/task/PID/schedstat, ns) divided by the polls answered in that
  window (phasewise_datagrams_received_total{transport="modbus"}, two reads a poll) for the loop
  time per poll (it includes the core runs the readings cause and the LAN traffic); and the core
  run's p99 from /metrics (phasewise_tick_duration_seconds).
- latency: --steps times, one sub-circuit's building load steps up far enough to cut its chargers
  (cuts apply at once). The reading-to-allocation latency is the allocation datagram's kernel
  receive time (SO_TIMESTAMPNS, CLOCK_REALTIME) at a LAN charger listener minus the time the
  gateway wrote the first answer carrying the new load (modbus-test-server --answer-log,
  CLOCK_REALTIME): both clocks are the same kernel clock on one machine.

Loopback only; bounded (every phase has a fixed length); every process is ended by pid. Build
optimised first (cmake --preset release, with tests for modbus-test-server). Example:

  bench/modbus_bench.py --phasewise build/release/bin/phasewise --bindir build/release/bin
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import modbus_common as mc  # noqa: E402
import pwproto  # noqa: E402
from server_latency import (Facility, cpu_seconds, free_port,  # noqa: E402
                            histogram_quantile, metrics_histogram, percentile)

GROUP = "239.255.80.87"
GATEWAYS, PER_GATEWAY, CHARGERS_PER_NODE = 10, 5, 2
NODE_LIMIT_A, LOW_A, HIGH_A = 40, 8.0, 20.0
SERIAL = 23000000


def facility(http_port, mcast_port, gw_ports):
    nodes = [{"id": "main", "parent": None, "limit_a": 2100}]
    chargers = []
    rotations = ["L1L2L3", "L2L3L1", "L3L1L2"]
    for i in range(GATEWAYS * PER_GATEWAY):
        g, unit = divmod(i, PER_GATEWAY)
        link = {"host": "127.0.0.1", "port": gw_ports[g], "unit": unit + 1, "map": "sdm630",
                "interval_ms": 1000, "timeout_ms": 500}
        nodes.append({"id": f"m{i:02}", "parent": "main", "limit_a": NODE_LIMIT_A, "margin_a": 1,
                      "meter": {"link": {"modbus": link}, "timeout_s": 5, "fallback_a": 30}})
        for k in range(CHARGERS_PER_NODE):
            c = CHARGERS_PER_NODE * i + k
            chargers.append({"id": f"c{c}", "device_id": 10000 + c, "node": f"m{i:02}",
                             "wiring": rotations[c % 3], "min_a": 6, "max_a": 16,
                             "failsafe_a": 0})
    return {"grid": "TN", "site": "modbus bench",
            "network": {"group": GROUP, "port": mcast_port, "interface": "127.0.0.1", "ttl": 1},
            "http": {"listen": f"127.0.0.1:{http_port}"},
            "balancer": {"reaction_s": 5, "lease_s": 30, "tick_ms": 1000},
            "nodes": nodes, "chargers": chargers}


class Bench(Facility):
    """server_latency's LAN chargers on one socket, their sub-circuits metered by Modbus TCP
    gateways whose register images this bench writes."""

    def __init__(self, key, tmp, mcast_port):
        super().__init__(key, GATEWAYS * PER_GATEWAY * CHARGERS_PER_NODE, mcast_port)
        self.tmp = tmp
        self.base = [LOW_A] * (GATEWAYS * PER_GATEWAY)
        self.plans = []  # (seq, arrival ns, entries)
        self.held = set()  # gateways whose image waits for a measurement

    def image_path(self, g):
        return os.path.join(self.tmp, f"gateway-{g}.txt")

    def answer_log(self, g):
        return os.path.join(self.tmp, f"answers-{g}.txt")

    def node_amps(self, i):
        lines = [self.base[i]] * 3
        for c in self.chargers[CHARGERS_PER_NODE * i:CHARGERS_PER_NODE * (i + 1)]:
            for t, ma in enumerate(c.current_ma()):
                lines[c.wiring[t]] += ma / 1000.0
        return lines

    def write_image(self, g):
        units = {}
        for unit in range(PER_GATEWAY):
            i = g * PER_GATEWAY + unit
            units[unit + 1] = mc.sdm(self.node_amps(i), serial=SERIAL + i)
        mc.write_image(self.image_path(g), {}, unit_regs=units)

    def refresh(self):
        for g in range(GATEWAYS):
            if g not in self.held:
                self.write_image(g)

    def on_allocation(self, data, arrived):
        alloc = pwproto.decode_allocation(self.key, data)
        if alloc is None:
            return
        seq, _, entries = alloc
        for cid, (limit, _) in entries.items():
            c = self.by_id.get(cid)
            if c and seq >= c.alloc_seq:
                c.limit_ma, c.alloc_seq = limit, seq
        self.plans.append((seq, arrived, entries))
        self.top_seq = max(self.top_seq, seq)

    def pump(self, seconds):
        """Statuses, allocations and a fresh image of every gateway once a second."""
        end = time.monotonic() + seconds
        next_image = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_image:
                self.refresh()
                next_image += 1.0
            self.send_statuses()
            self.receive(0.02)


def read_answers(path, unit=None, after_gen=-1):
    """(time ns, unit, fn, address, generation) of each logged answer."""
    out = []
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue
            t, u, fn, addr, gen = map(int, parts)
            if (unit is None or u == unit) and gen > after_gen:
                out.append((t, u, fn, addr, gen))
    return out


def metric(http_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def state(http_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/state", timeout=5) as r:
        return json.loads(r.read())


def warm_up(b, http_port, timeout=60):
    b.announce_all()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b.pump(1.0)
        doc = state(http_port)
        fresh = all(not n["meter"]["stale"] for n in doc["nodes"] if "meter" in n)
        online = sum(c["online"] for c in doc["chargers"]) == len(b.chargers)
        if b.leased() and online and fresh:
            b.pump(3.0)  # let the draws settle
            return
    raise RuntimeError(f"not every charger online and leased, or a meter stale, after {timeout} s")


def loop_cpu_ns(pid):
    """CPU time of the loop thread (the process's first thread), in ns (schedstat's first field:
    finer than /proc/PID/stat's clock ticks)."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def steady(b, pid, http_port, seconds):
    polls = 'phasewise_datagrams_received_total{transport="modbus"}'
    a0, c0, t0 = metric(http_port, polls), cpu_seconds(pid), time.monotonic()
    l0 = loop_cpu_ns(pid)
    tick0 = metrics_histogram(http_port, "phasewise_tick_duration_seconds")
    b.pump(seconds)
    cpu, wall = cpu_seconds(pid) - c0, time.monotonic() - t0
    loop_ns = loop_cpu_ns(pid) - l0
    answers = metric(http_port, polls) - a0
    tick99, ticks = histogram_quantile(tick0, metrics_histogram(
        http_port, "phasewise_tick_duration_seconds"), 0.99)
    accepted = metric(http_port, 'phasewise_datagrams_accepted_total{transport="modbus"}')
    return {"seconds": wall, "answers": answers, "answers_per_s": answers / wall,
            "cpu_pct": 100.0 * cpu / wall, "loop_cpu_pct": 100.0 * loop_ns / 1e9 / wall,
            "loop_us_per_answer": loop_ns / 1e3 / answers if answers else None,
            "loop_us_per_poll": loop_ns / 1e3 / (answers / 2) if answers else None,
            "tick_p99_le_us": None if tick99 is None else tick99 * 1e6, "core_runs": ticks,
            "readings_accepted_total": accepted}


def one_step(b, i):
    """Steps sub-circuit i up; returns the latency in us, or None when no cut was seen."""
    g, unit = divmod(i, PER_GATEWAY)
    unit += 1
    mine = b.chargers[CHARGERS_PER_NODE * i:CHARGERS_PER_NODE * (i + 1)]
    limits = {c.tx.sender: c.limit_ma for c in mine}
    b.held.add(g)
    before = read_answers(b.answer_log(g))
    gen_before = max((a[4] for a in before), default=-1)
    n_plans = len(b.plans)
    b.base[i] = HIGH_A
    b.write_image(g)
    end = time.monotonic() + 2.5
    latency = None
    while time.monotonic() < end and latency is None:
        b.send_statuses()
        b.receive(0.05)
        answers = [a for a in read_answers(b.answer_log(g), unit, gen_before) if a[2] == 4]
        if not answers:
            continue
        t_answer = answers[0][0]
        for seq, arrived, entries in b.plans[n_plans:]:
            cut = any(cid in entries and entries[cid][0] < limits[cid] for cid in limits)
            if arrived >= t_answer and cut:
                latency = (arrived - t_answer) / 1000.0
                break
    b.base[i] = LOW_A
    b.held.discard(g)
    return latency


def latency(b, pid, steps, period):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    values, missed = [], 0
    for k in range(steps):
        start = time.monotonic()
        v = one_step(b, (7 * k) % (GATEWAYS * PER_GATEWAY))  # spread over gateways and units
        if v is None:
            missed += 1
        else:
            values.append(v)
        rest = period - (time.monotonic() - start)
        if rest > 0:
            b.pump(rest)
    cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    return {"steps": steps, "measured": len(values), "missed": missed,
            "p50_us": percentile(values, 0.5) if values else None,
            "p99_us": percentile(values, 0.99) if values else None,
            "max_us": max(values) if values else None, "cpu_pct": 100.0 * cpu}


def run(args):
    tmp = tempfile.mkdtemp(prefix="pw-modbus-bench-")
    procs, b = [], None
    try:
        http_port, mcast_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        gw_ports = [free_port(socket.SOCK_STREAM) for _ in range(GATEWAYS)]
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(facility(http_port, mcast_port, gw_ports), f)
        for g in range(GATEWAYS):
            # The building load alone until the chargers draw: never an empty image, whose
            # serial number 0 would differ from the one that follows.
            mc.write_image(os.path.join(tmp, f"gateway-{g}.txt"), {}, unit_regs={
                u + 1: mc.sdm([LOW_A] * 3, serial=SERIAL + g * PER_GATEWAY + u)
                for u in range(PER_GATEWAY)})
            log = open(os.path.join(tmp, f"gateway-{g}.log"), "wb")
            procs.append(subprocess.Popen(
                [os.path.join(args.bindir, "modbus-test-server"), "--port", str(gw_ports[g]),
                 "--image", os.path.join(tmp, f"gateway-{g}.txt"), "--answer-log",
                 os.path.join(tmp, f"answers-{g}.txt")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        log = open(os.path.join(tmp, "phasewise.log"), "wb")
        pw = subprocess.Popen([args.phasewise, "serve", "--config", cfg_path, "--data", tmp,
                               "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        procs.append(pw)
        key_path = os.path.join(tmp, "facility.key")
        deadline = time.monotonic() + 15
        while not os.path.exists(key_path) or os.path.getsize(key_path) < 64:
            if time.monotonic() > deadline or pw.poll() is not None:
                raise RuntimeError(f"phasewise did not start; see {log.name}")
            time.sleep(0.1)
        time.sleep(0.5)
        b = Bench(pwproto.read_key(key_path), tmp, mcast_port)
        b.refresh()
        warm_up(b, http_port)
        res = {"meters": GATEWAYS * PER_GATEWAY, "gateways": GATEWAYS,
               "chargers": len(b.chargers)}
        res["steady"] = steady(b, pw.pid, http_port, args.steady)
        res["latency"] = latency(b, pw.pid, args.steps, args.period)
        res["tx_errors"] = metric(http_port,
                                  'phasewise_datagrams_send_errors_total{transport="modbus"}')
        pw.send_signal(signal.SIGTERM)
        res["exit"] = pw.wait(15)
        return res
    finally:
        if b:
            b.close()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def fmt(v, digits=0):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phasewise", required=True, help="the phasewise binary (release build)")
    ap.add_argument("--bindir", required=True, help="folder of modbus-test-server")
    ap.add_argument("--steady", type=float, default=30, help="seconds of steady polling")
    ap.add_argument("--steps", type=int, default=100, help="load steps timed")
    ap.add_argument("--period", type=float, default=1.2, help="seconds between load steps")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    if not 5 <= args.steady <= 600 or not 1 <= args.steps <= 1000 or args.period < 1.0:
        ap.error("--steady 5..600 s, --steps 1..1000, --period at least 1 s")
    r = run(args)
    if args.json:
        print(json.dumps(r))
    s, lat = r["steady"], r["latency"]
    print(f"{r['meters']} Modbus meters behind {r['gateways']} gateways (libmodbus), "
          f"{r['chargers']} LAN chargers, polled every 1 s")
    print(f"steady {s['seconds']:.0f} s: {s['answers_per_s']:.1f} answers/s (2 reads a poll), "
          f"appliance CPU {s['cpu_pct']:.2f}% (loop thread {s['loop_cpu_pct']:.2f}%), loop time "
          f"per poll {fmt(s['loop_us_per_poll'], 1)} us ({fmt(s['loop_us_per_answer'], 1)} us per "
          f"answer), core run p99 <= {fmt(s['tick_p99_le_us'])} us over {s['core_runs']} runs")
    print(f"reading-to-allocation latency over {lat['measured']}/{lat['steps']} load steps: "
          f"p50 {fmt(lat['p50_us'])} us, p99 {fmt(lat['p99_us'])} us, max {fmt(lat['max_us'])} "
          f"us (CPU {lat['cpu_pct']:.2f}%)")
    print(f"connect failures and timeouts: {r['tx_errors']:.0f}; appliance exit status "
          f"{r['exit']}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
