"""Starts and drives the OCPP 1.6J test peers of tests/peers/ (ocpp-rpc in strict mode, a library
nobody here wrote): ChargePoints runs ocpp_cp_peer.mjs (N charge points against a central system
URL), CentralSystem runs ocpp_csms_peer.mjs (a central system on 127.0.0.1). Both speak JSON lines:
send() writes a command, wait_for() waits for an event, request() does both for one command and
returns its "result". The events and commands are listed in tests/peers/README.md. Standard
library only, loopback only; stop() ends the process it started, by its pid."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from pwtest import log

PEERS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers")
# The events every test should fail on when they appear: the peer found something wrong with
# what the other side sent, or the peer itself broke.
PROBLEMS = ("strict_violation", "bad_message", "internal_error")


def ocpp_peer_ready():
    """None when the OCPP peers can run, else why not (for a skip message)."""
    if not shutil.which("node"):
        return "node is not installed"
    if not os.path.isdir(os.path.join(PEERS_DIR, "node_modules", "ocpp-rpc")):
        return ("tests/peers/node_modules is missing ocpp-rpc: run `npm ci` in tests/peers "
                "(scripts/test.sh does)")
    return None


def skip_without_peers():
    """Ends the test as skipped (exit 77, what ctest counts as a skip), saying why, when the
    OCPP peers cannot run."""
    why = ocpp_peer_ready()
    if why:
        log(f"skipped: {why}")
        sys.exit(77)


class PeerError(Exception):
    pass


class NodePeer:
    """One node process speaking JSON lines. Every event it prints is kept in self.events, in
    order; a reader thread fills it. Use as a context manager, or call stop() (also on failure)."""

    def __init__(self, script, args, name=None, log=None):
        self.name = name or os.path.splitext(script)[0]
        self.args = ["node", os.path.join(PEERS_DIR, script)] + list(args)
        self.log = log  # optional file path: every line in and out is appended there
        self.events = []
        self.stderr = []
        self.proc = None
        self._cond = threading.Condition()
        self._refs = 0
        self._threads = []
        self._logf = None

    def start(self, ready="ready", timeout=15):
        """Starts node and waits for its first event (ready/listening); returns that event."""
        why = ocpp_peer_ready()
        if why:
            raise PeerError(why)
        if self.log:
            self._logf = open(self.log, "a", buffering=1)
        self.proc = subprocess.Popen(self.args, cwd=PEERS_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        for target, stream in ((self._read_events, self.proc.stdout),
                               (self._read_stderr, self.proc.stderr)):
            t = threading.Thread(target=target, args=(stream,), daemon=True)
            t.start()
            self._threads.append(t)
        return self.wait_for(lambda e: e.get("event") == ready, timeout, what=ready)

    def _read_events(self, stream):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self._logf:
                self._logf.write(f"{self.name} < {line}\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed_output", "line": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "eof"})
            self._cond.notify_all()

    def _read_stderr(self, stream):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self._logf:
                self._logf.write(f"{self.name} ! {line}\n")
            with self._cond:
                self.stderr.append(line)
                del self.stderr[:-200]

    def send(self, cmd):
        """Writes one command (a dict) as a JSON line."""
        if self.proc is None or self.proc.poll() is not None:
            raise PeerError(f"{self.name} is not running{self._stderr_tail()}")
        line = json.dumps(cmd)
        if self._logf:
            self._logf.write(f"{self.name} > {line[:2000]}\n")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def mark(self):
        """The index of the next event: pass it as since= to look only at what comes after."""
        with self._cond:
            return len(self.events)

    def find(self, pred, since=0):
        """Every event so far (from index since) for which pred is true."""
        with self._cond:
            return [e for e in self.events[since:] if pred(e)]

    def wait_for(self, pred, timeout=10, since=0, what=None):
        """The first event from index since on for which pred(event) is true, waiting up to
        timeout seconds; raises PeerError (with the last events) on timeout or if the peer
        exits first."""
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.events):
                    e = self.events[i]
                    i += 1
                    if pred(e):
                        return e
                    if e.get("event") == "eof":
                        raise PeerError(f"{self.name} exited while waiting for {what or pred}"
                                        f"{self._tail()}{self._stderr_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerError(f"{self.name}: no {what or 'matching event'} within "
                                    f"{timeout} s{self._tail()}")
                self._cond.wait(left)

    def request(self, cmd, timeout=10, ok=True):
        """Sends cmd with a fresh "ref" and returns its "result" event; with ok=True (default)
        raises PeerError when the command failed."""
        with self._cond:
            self._refs += 1
            ref = f"py-{self._refs}"
        cmd = dict(cmd, ref=ref)
        since = self.mark()
        self.send(cmd)
        r = self.wait_for(lambda e: e.get("event") == "result" and e.get("ref") == ref, timeout,
                          since=since, what=f"the result of {cmd.get('cmd')} {cmd.get('id', '')}")
        if ok and not r.get("ok"):
            raise PeerError(f"{self.name}: {cmd.get('cmd')} {cmd.get('id', '')} failed: "
                            f"{r.get('error')}")
        return r

    def problems(self, since=0):
        """Schema failures, unparseable frames and peer bugs seen so far."""
        return self.find(lambda e: e.get("event") in PROBLEMS, since)

    def _tail(self, n=15):
        return "\n  last events:\n    " + "\n    ".join(
            json.dumps(e)[:400] for e in self.events[-n:])

    def _stderr_tail(self, n=10):
        return ("\n  stderr:\n    " + "\n    ".join(self.stderr[-n:])) if self.stderr else ""

    def stop(self, timeout=5):
        """Asks the peer to quit, then ends it by pid (SIGTERM, then SIGKILL); returns the exit
        status. Safe to call twice."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                self.send({"cmd": "quit"})
                p.stdin.close()
            except (OSError, ValueError, PeerError):
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    p.send_signal(sig)
                    try:
                        p.wait(timeout)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        for t in self._threads:
            t.join(2)
        for s in (p.stdin, p.stdout, p.stderr):
            try:
                s.close()
            except (OSError, ValueError):
                pass
        if self._logf:
            self._logf.close()
            self._logf = None
        return p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ChargePoints(NodePeer):
    """ocpp_cp_peer.mjs: charge points [{"id", "password"?, "endpoint"?, "connectors"?, ...}]
    (or plain ids) against the central system at url."""

    def __init__(self, url, cps, trace=False, log=None):
        specs = [c if isinstance(c, dict) else {"id": c} for c in cps]
        args = ["--url", url, "--cps", json.dumps(specs)] + (["--trace"] if trace else [])
        super().__init__("ocpp_cp_peer.mjs", args, name="cp-peer", log=log)
        self.ids = [s["id"] for s in specs]

    def connect(self, ids=None, timeout=10, ok=True):
        """Connects the given charge points (all by default); returns {id: result}."""
        return {i: self.request({"cmd": "connect", "id": i}, timeout, ok=ok)
                for i in (ids or self.ids)}

    def boot(self, cp, timeout=10):
        return self.request({"cmd": "boot", "id": cp}, timeout)["response"]

    def state(self, cp):
        return self.request({"cmd": "state", "id": cp})["state"]


class CentralSystem(NodePeer):
    """ocpp_csms_peer.mjs on 127.0.0.1 (port 0: any free port; self.port once started); with
    tls=(cert, key) PEM files it listens for wss://."""

    def __init__(self, port=0, passwords=None, require_password=False, record=None, trace=False,
                 log=None, tls=None, tx_base=0):
        args = ["--port", str(port)]
        if tls:  # (cert, key): wss://
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if tx_base:
            args += ["--tx-base", str(tx_base)]
        if passwords:
            args += ["--passwords", json.dumps(passwords)]
        if require_password:
            args.append("--require-password")
        if record:
            args += ["--record", record]
        if trace:
            args.append("--trace")
        super().__init__("ocpp_csms_peer.mjs", args, name="csms-peer", log=log)
        self.port = None
        self.url = None

    def start(self, ready="listening", timeout=15):
        e = super().start(ready, timeout)
        self.port, self.url = e["port"], e["url"]
        return e

    def call(self, cp, method, params, timeout=10, ok=True):
        """Sends a call to a connected charge point; returns the result event ("response" holds
        the answer when ok)."""
        return self.request({"cmd": "call", "id": cp, "method": method, "params": params},
                            timeout, ok=ok)
