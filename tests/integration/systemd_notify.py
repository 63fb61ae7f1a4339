#!/usr/bin/env python3
"""systemd's service protocol, as the unit (packaging/phasewise.service) uses it: Type=notify and
WatchdogSec=. The appliance is started the way systemd starts it, with NOTIFY_SOCKET naming a
datagram socket of this test's (abstract namespace) and WATCHDOG_USEC/WATCHDOG_PID set. It must
say READY=1 once it serves, then WATCHDOG=1 at half the interval, fed by its loop: while the
process is stopped (SIGSTOP, a stalled loop as systemd sees it) nothing comes, so systemd would
restart it; after SIGCONT the pings resume; SIGTERM brings STOPPING=1 and a clean exit. The
parsing of the variables (WATCHDOG_PID of another process, '@' names) is unit-tested in
sdnotify_test. Loopback only."""
import argparse
import json
import os
import signal
import socket
import subprocess
import time

import pwtest
from pwtest import check, log

WATCHDOG_S = 1.0


def receive(sock, until):
    """(time, message) pairs until the monotonic deadline."""
    got = []
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return got
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return got
        got.append((time.monotonic(), data.decode()))


def start(args, tmp, procs, name):
    cfg = pwtest.test_config(pwtest.free_tcp_port(), pwtest.free_udp_port())
    cfg_path = os.path.join(tmp, f"{name}.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = f"\0pw-notify-{os.getpid()}-{name}"
    sock.bind(addr)
    env = dict(os.environ, NOTIFY_SOCKET="@" + addr[1:],
               WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)))
    out = open(os.path.join(tmp, f"{name}.log"), "wb")
    p = subprocess.Popen([args.phasewise, "serve", "--config", cfg_path, "--data",
                          os.path.join(tmp, name)], env=env, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    p.name, p.logfile = name, out.name
    procs.procs.append(p)
    log(f"started {name} (pid {p.pid})")
    return p, sock


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()
    with pwtest.workspace("pw-notify-") as (tmp, procs):
        p, sock = start(args, tmp, procs, "serve")
        t0 = time.monotonic()
        msgs, deadline = [], t0 + 15
        while not any(m == "READY=1" for _, m in msgs) and time.monotonic() < deadline:
            msgs += receive(sock, min(deadline, time.monotonic() + 0.5))
        ready = [t for t, m in msgs if m == "READY=1"]
        check(ready, "no READY=1 within 15 s")
        log(f"READY=1 {ready[0] - t0:.2f} s after start")

        pings = [t for t, m in receive(sock, time.monotonic() + 3) if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        check(len(pings) >= 4, f"{len(pings)} WATCHDOG=1 in 3 s with WatchdogSec={WATCHDOG_S} s")
        check(max(gaps) < WATCHDOG_S, f"a watchdog gap of {max(gaps):.2f} s (>= the interval)")
        log(f"{len(pings)} pings in 3 s, gaps {min(gaps):.2f}..{max(gaps):.2f} s")

        os.kill(p.pid, signal.SIGSTOP)
        stalled = [m for _, m in receive(sock, time.monotonic() + 2.5) if m == "WATCHDOG=1"]
        os.kill(p.pid, signal.SIGCONT)
        # A ping that was already queued in the socket when the process stopped may still come.
        check(len(stalled) <= 1, f"{len(stalled)} pings while the process was stopped")
        resumed = [m for _, m in receive(sock, time.monotonic() + 2) if m == "WATCHDOG=1"]
        check(len(resumed) >= 2, "the pings did not resume after SIGCONT")
        log(f"stopped 2.5 s: {len(stalled)} ping(s); after SIGCONT {len(resumed)} in 2 s")

        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        tail = [m for _, m in receive(sock, time.monotonic() + 0.5)]
        check(rc == 0, f"exit status {rc} on SIGTERM")
        check("STOPPING=1" in tail, f"no STOPPING=1 at shutdown (got {tail[-3:]})")
        sock.close()
        log("STOPPING=1 and exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
