#!/usr/bin/env python3
"""Control-loop benchmark of the real appliance on loopback: the latency from a meter datagram
leaving a meter gateway to the allocation datagram arriving back, and the appliance's CPU use.

For each charger count it writes a facility of that many chargers (groups of 100 behind
metered sub-circuits under a main fuse, every fuse tight enough that the balancer has work to
do; a protocol meter reads at most 1000 A a line, so a facility of 1000 chargers is metered per
sub-circuit), starts `phasewise serve` on it, and plays every charger and meter gateway itself
with real signed datagrams: each charger announces, reports by the protocol's rule (on change at
most once a second, otherwise every 10 s) and draws what it was allocated, and each meter reads
its sub-circuit's building load plus its chargers' draw. Then:

- steady: every meter once a second for --steady seconds; the appliance's CPU from
  /proc/PID/stat over that window;
- latency: --readings meter readings at --rate per second, round robin over the meters, each
  meter's building load stepping up and down so that readings change the plan; the kernel's
  receive timestamps (SO_TIMESTAMPNS) of the first and the last datagram of each new plan
  against the time the reading was sent. The appliance's own histogram
  (phasewise_control_latency_seconds from /metrics) is read too.

Loopback only: multicast on 127.0.0.1 with TTL 1. Bounded: every phase has a fixed length.
Build the appliance optimised first (cmake --preset release). Example:

  bench/server_latency.py --phasewise build/release/bin/phasewise --chargers 100 1000
"""
import argparse
import contextlib
import json
import math
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import pwproto  # noqa: E402

GROUP = "239.255.80.87"
METER_ID = 900  # + sub-circuit index
SO_TIMESTAMPNS = 35  # Linux; Python's socket module does not name it
PER_DATAGRAM = 128
CLK_TCK = os.sysconf("SC_CLK_TCK")
BASE_A = 60.0


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def facility(n, http_port, mcast_port):
    """n chargers, 100 per metered sub-circuit that can give its cars about 9 A each (so that
    every sub-circuit's reading moves its chargers' limits), under a main fuse with a little
    room to spare."""
    groups = math.ceil(n / 100)
    nodes = [{"id": "main", "parent": None, "limit_a": min(10000, round(1.04 * (BASE_A + 9 * n)))}]
    chargers = []
    rotations = ["L1L2L3", "L2L3L1", "L3L1L2"]
    for g in range(groups):
        members = min(100, n - 100 * g)
        nodes.append({"id": f"g{g}", "parent": "main", "limit_a": round(BASE_A + 9 * members),
                      "margin_a": 2, "meter": {"device_id": METER_ID + g, "timeout_s": 15}})
        for k in range(members):
            i = 100 * g + k
            chargers.append({"id": f"c{i}", "device_id": 10000 + i, "node": f"g{g}",
                             "wiring": rotations[i % 3], "min_a": 6, "max_a": 16,
                             "failsafe_a": 0})
    return {"grid": "TN", "site": f"bench {n}",
            "network": {"group": GROUP, "port": mcast_port, "interface": "127.0.0.1", "ttl": 1},
            "http": {"listen": f"127.0.0.1:{http_port}"},
            "balancer": {"reaction_s": 5, "lease_s": 30, "tick_ms": 1000},
            "nodes": nodes, "chargers": chargers}


class Charger:
    """A charger with a car that draws what it is offered, up to 16 A on its phases."""

    def __init__(self, key, index, boot):
        self.tx = pwproto.Sender(key, 10000 + index, boot)
        self.phases = 1 if index % 4 == 0 else 3
        self.wiring = [(index + t) % 3 for t in range(3)]  # terminal t -> grid line index
        self.limit_ma = 0
        self.alloc_seq = 0
        self.energy_wh = 0
        self.sent_ma = None
        self.sent_limit = None
        self.last_sent = 0.0

    def current_ma(self):
        draw = min(self.limit_ma, 16000)
        return tuple(draw if t < self.phases else 0 for t in range(3))

    def status(self):
        cur = self.current_ma()
        self.sent_ma, self.sent_limit = cur, self.limit_ma
        return self.tx.datagram(pwproto.STATUS, pwproto.status_payload(
            "C", self.phases, cur, self.energy_wh, self.limit_ma, self.alloc_seq, 1))

    def status_due(self, now):
        if self.sent_ma is None or now - self.last_sent >= 10.0:
            return True
        moved = max(abs(a - b) for a, b in zip(self.current_ma(), self.sent_ma)) >= 1000
        return (moved or self.limit_ma != self.sent_limit) and now - self.last_sent >= 1.0


class Facility:
    """Every charger and the meter gateway of one benchmark run, on one socket."""

    def __init__(self, key, n, mcast_port):
        boot = int(time.time()) & 0x7FFFFFFF
        self.key = key
        self.chargers = [Charger(key, i, boot) for i in range(n)]
        self.by_id = {c.tx.sender: c for c in self.chargers}
        self.meters = [pwproto.Sender(key, METER_ID + g, boot) for g in range(math.ceil(n / 100))]
        self.base_a = [BASE_A] * len(self.meters)
        self.sock = pwproto.group_socket(GROUP, mcast_port)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)
        self.dest = (GROUP, mcast_port)
        self.plans = {}  # alloc_seq -> [first arrival ns, last arrival ns, datagrams]
        self.top_seq = 0
        self.next_status = 0

    def send(self, data):
        self.sock.sendto(data, self.dest)

    def announce_all(self):
        for c in self.chargers:
            wiring = tuple(line + 1 for line in c.wiring)
            self.send(c.tx.datagram(pwproto.ANNOUNCE, pwproto.announce_payload(
                model="bench", wiring=wiring)))

    def send_meter(self, g):
        """A reading of sub-circuit g; returns the time it was sent (ns, CLOCK_REALTIME)."""
        lines = [self.base_a[g] * 1000.0] * 3
        for c in self.chargers[100 * g:100 * g + 100]:
            for t, ma in enumerate(c.current_ma()):
                lines[c.wiring[t]] += ma
        data = self.meters[g].datagram(pwproto.METER, pwproto.meter_payload(
            tuple(int(v) for v in lines)))
        sent_ns = time.time_ns()
        self.send(data)
        return sent_ns

    def send_statuses(self, budget=400):
        """Statuses that are due, at most budget of them per call, round robin."""
        now = time.monotonic()
        n = len(self.chargers)
        for _ in range(n):
            c = self.chargers[self.next_status]
            self.next_status = (self.next_status + 1) % n
            if c.status_due(now):
                self.send(c.status())
                c.last_sent = now
                budget -= 1
                if budget == 0:
                    return

    def receive(self, timeout):
        """Reads datagrams for up to timeout seconds; allocations update the chargers and are
        recorded with their kernel arrival time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return
            while True:
                try:
                    data, anc, _, _ = self.sock.recvmsg(2048, 64)
                except BlockingIOError:
                    break
                h = pwproto.header(data)
                if h is None or h[0] != pwproto.ALLOCATION:
                    continue
                arrived = time.time_ns()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        arrived = sec * 1_000_000_000 + nsec
                self.on_allocation(data, arrived)

    def on_allocation(self, data, arrived):
        alloc = pwproto.decode_allocation(self.key, data)
        if alloc is None:
            return
        seq, _, entries = alloc
        for cid, (limit, _) in entries.items():
            c = self.by_id.get(cid)
            if c and (seq >= c.alloc_seq):
                c.limit_ma, c.alloc_seq = limit, seq
        if seq > self.top_seq or seq in self.plans:
            plan = self.plans.setdefault(seq, [arrived, arrived, 0])
            plan[1] = max(plan[1], arrived)
            plan[2] += 1
            self.top_seq = max(self.top_seq, seq)

    def leased(self):
        return all(c.alloc_seq > 0 for c in self.chargers)

    def close(self):
        self.sock.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metrics_histogram(http_port, name):
    """{le: count} of a histogram in /metrics (le as float, +Inf as math.inf)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{le=\""):
            le = line.split('"')[1]
            out[math.inf if le == "+Inf" else float(le)] = int(line.rsplit(" ", 1)[1])
    return out


def histogram_quantile(before, after, q):
    """Upper bound of the bucket holding quantile q of the observations between two reads."""
    total = after[math.inf] - before.get(math.inf, 0)
    if total == 0:
        return None, 0
    for le in sorted(after):
        if after[le] - before.get(le, 0) >= q * total:
            return le, total
    return math.inf, total


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def online_count(http_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/state", timeout=5) as r:
        doc = json.loads(r.read())
    return sum(c["online"] for c in doc["chargers"])


def pump(fac, seconds, meter_every=None):
    """Runs the facility for seconds: statuses, allocations, and a reading of every meter every
    meter_every seconds."""
    end = time.monotonic() + seconds
    next_meter = time.monotonic()
    while time.monotonic() < end:
        if meter_every and time.monotonic() >= next_meter:
            for g in range(len(fac.meters)):
                fac.send_meter(g)
            next_meter += meter_every
        fac.send_statuses()
        fac.receive(0.02)


def warm_up(fac, http_port, n, timeout=60):
    fac.announce_all()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pump(fac, 1.0, meter_every=1.0)
        if fac.leased() and online_count(http_port) == n:
            pump(fac, 3.0, meter_every=1.0)  # let the chargers' draws settle
            return
    raise RuntimeError(f"not every charger got online and leased within {timeout} s")


def steady(fac, pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    pump(fac, seconds, meter_every=1.0)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def latency(fac, pid, http_port, readings, rate):
    """Meter readings at rate per second; the building load climbs for 10 readings by enough to
    cut every car by about 0.25 A (cuts apply at once) and drops back over the next 10 (raises,
    which wait for the cuts to show). Returns the figures."""
    hist0 = metrics_histogram(http_port, "phasewise_control_latency_seconds")
    tick0 = metrics_histogram(http_port, "phasewise_tick_duration_seconds")
    c0, t0 = cpu_seconds(pid), time.monotonic()
    first, last, complete = [], [], 0
    expect = math.ceil(len(fac.chargers) / PER_DATAGRAM)
    period = 1.0 / rate
    groups = len(fac.meters)
    for k in range(readings):
        g, step = k % groups, (k // groups) % 20
        per_line = sum(c.phases for c in fac.chargers[100 * g:100 * g + 100]) / 3.0
        fac.base_a[g] = BASE_A + 0.25 * per_line * (step if step < 10 else 20 - step)
        seq_before = fac.top_seq
        start = time.monotonic()
        sent = fac.send_meter(g)
        fac.receive(min(0.03, period / 2))
        new = [s for s in fac.plans if s > seq_before and fac.plans[s][0] >= sent]
        if new:
            plan = fac.plans[min(new)]
            first.append((plan[0] - sent) / 1000.0)
            last.append((plan[1] - sent) / 1000.0)
            complete += plan[2] >= expect
        fac.send_statuses()
        rest = period - (time.monotonic() - start)
        if rest > 0:
            fac.receive(rest)
    cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    hist1 = metrics_histogram(http_port, "phasewise_control_latency_seconds")
    tick99, _ = histogram_quantile(tick0, metrics_histogram(
        http_port, "phasewise_tick_duration_seconds"), 0.99)
    h99, hcount = histogram_quantile(hist0, hist1, 0.99)
    h50, _ = histogram_quantile(hist0, hist1, 0.50)
    return {"readings": readings, "plans": len(first), "complete_plans": complete,
            "first_p50_us": percentile(first, 0.5) if first else None,
            "first_p99_us": percentile(first, 0.99) if first else None,
            "first_max_us": max(first) if first else None,
            "first_over_2ms": sum(v > 2000 for v in first),
            "last_p50_us": percentile(last, 0.5) if last else None,
            "last_p99_us": percentile(last, 0.99) if last else None,
            "appliance_hist_count": hcount,
            "appliance_p50_le_us": None if h50 is None else h50 * 1e6,
            "appliance_p99_le_us": None if h99 is None else h99 * 1e6,
            "tick_p99_le_us": None if tick99 is None else tick99 * 1e6,
            "cpu_pct": 100.0 * cpu}


def unit_sched(path):
    """The Nice=, CPUSchedulingPolicy= and CPUSchedulingPriority= of a systemd unit file."""
    nice, policy, prio = 0, "other", 0
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key == "Nice":
                nice = int(value)
            elif key == "CPUSchedulingPolicy":
                policy = value
            elif key == "CPUSchedulingPriority":
                prio = int(value)
    return nice, policy, prio


def set_sched(nice, policy, prio):
    """In the child before exec: what systemd would set for the unit."""
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    if policy in ("rr", "fifo"):
        os.sched_setscheduler(0, os.SCHED_RR if policy == "rr" else os.SCHED_FIFO,
                              os.sched_param(prio))


@contextlib.contextmanager
def cpu_load(n):
    """n busy processes at normal priority (other work on the box), ended by pid afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                              preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0))
             for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run_one(phasewise, n, args):
    tmp = tempfile.mkdtemp(prefix="pw-bench-")
    http_port, mcast_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    cfg_path = os.path.join(tmp, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(facility(n, http_port, mcast_port), f)
    log = open(os.path.join(tmp, "phasewise.log"), "wb")
    # An absolute nice value: the bench itself may run at another (see main).
    proc = subprocess.Popen([phasewise, "serve", "--config", cfg_path, "--data", tmp,
                             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: set_sched(args.nice, args.policy, args.rt_prio))
    fac = None
    try:
        deadline = time.monotonic() + 15
        key_path = os.path.join(tmp, "facility.key")
        while not os.path.exists(key_path) or os.path.getsize(key_path) < 64:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"phasewise did not start; see {log.name}")
            time.sleep(0.1)
        time.sleep(0.5)
        fac = Facility(pwproto.read_key(key_path), n, mcast_port)
        warm_up(fac, http_port, n)
        rss0 = rss_kib(proc.pid)
        res = {"chargers": n, "steady_cpu_pct": 100.0 * steady(fac, proc.pid, args.steady)}
        res.update(latency(fac, proc.pid, http_port, args.readings, args.rate))
        res["rss_kib"] = [rss0, rss_kib(proc.pid)]
        return res
    finally:
        if fac:
            fac.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def fmt(v):
    return "-" if v is None else f"{v:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phasewise", required=True, help="the phasewise binary (release build)")
    ap.add_argument("--chargers", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--steady", type=float, default=20, help="seconds of 1 Hz meter readings")
    ap.add_argument("--readings", type=int, default=400, help="meter readings timed")
    ap.add_argument("--rate", type=float, default=10, help="timed meter readings per second")
    ap.add_argument("--json", action="store_true", help="print one JSON object per run")
    ap.add_argument("--keep", action="store_true", help="keep the temp folders")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the appliance at this nice value (e.g. -10: a dedicated box on a "
                         "busy host)")
    ap.add_argument("--unit", help="run the appliance with this systemd unit's Nice= "
                                   "(packaging/phasewise.service); overrides --nice")
    ap.add_argument("--load", type=int, default=0,
                    help="keep this many busy processes running beside it (2: both CPUs)")
    args = ap.parse_args()
    args.policy, args.rt_prio = "other", 0
    if args.unit:
        args.nice, args.policy, args.rt_prio = unit_sched(args.unit)
    if args.load < 0 or args.load > 16:
        ap.error("--load: 0..16 busy processes")
    if args.load:
        # The chargers and meters the bench plays are other boxes: under the load it makes, the
        # bench must not be the one waiting for a CPU, or it times itself, not the appliance.
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -19)
        except PermissionError:
            print("note: the bench could not raise its own priority (not root): with --load its "
                  "own scheduling is part of the figures", file=sys.stderr)
    if any(n < 1 or n > 2000 for n in args.chargers) or args.readings > 5000:
        ap.error("1..2000 chargers and at most 5000 readings")
    print("chargers | steady CPU | timed CPU | plans/readings | first datagram p50/p99/max us |"
          " > 2 ms | last datagram p50/p99 us | appliance histogram p50/p99 <= us | tick p99 <= us |"
          " RSS KiB start/end")
    rt = f", {args.policy} {args.rt_prio}" if args.policy != "other" else ""
    print(f"nice {args.nice}{rt}, {args.load} busy process(es) beside it")
    for n in args.chargers:
        with cpu_load(args.load):
            r = run_one(args.phasewise, n, args)
        if args.json:
            print(json.dumps(r))
        print(f"{n:8} | {r['steady_cpu_pct']:9.1f}% | {r['cpu_pct']:8.1f}% | "
              f"{r['plans']:5}/{r['readings']:<5} ({r['complete_plans']} complete) | "
              f"{fmt(r['first_p50_us'])}/{fmt(r['first_p99_us'])}/{fmt(r['first_max_us'])} | "
              f"{r['first_over_2ms']} | "
              f"{fmt(r['last_p50_us'])}/{fmt(r['last_p99_us'])} | "
              f"{fmt(r['appliance_p50_le_us'])}/{fmt(r['appliance_p99_le_us'])} "
              f"({r['appliance_hist_count']}) | {fmt(r['tick_p99_le_us'])} | "
              f"{r['rss_kib'][0]}/{r['rss_kib'][1]}", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
