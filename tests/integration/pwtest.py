"""Helpers for phasewise integration tests: temp dirs, free ports, processes that are always
ended, a minimal WebSocket client and HTTP calls. Standard library only, loopback only."""
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port():
    """A port for the test's own multicast group, unlikely to collide with a running demo."""
    for _ in range(50):
        port = random.randint(40000, 60000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free UDP port")


def test_config(http_port, mcast_port, base=os.path.join(SOURCE_DIR, "config", "demo.json"),
                ocpp=False):
    """The demo facility moved to this test's own ports, bound to loopback. The demo's OCPP
    chargers speak the LAN protocol instead (device ids 3000 + their index) unless ocpp is
    true: most tests judge the LAN protocol's timing; with ocpp the central system gets a port of
    the test's own."""
    with open(base) as f:
        cfg = json.load(f)
    cfg["network"].update({"port": mcast_port, "interface": "127.0.0.1", "ttl": 1})
    cfg["http"]["listen"] = f"127.0.0.1:{http_port}"
    if ocpp and "ocpp" in cfg:
        cfg["ocpp"]["listen"] = f"127.0.0.1:{free_tcp_port()}"
    elif "ocpp" in cfg:
        for i, c in enumerate(cfg["chargers"]):
            if "ocpp" in c.get("link", {}):
                c["link"] = {"lan": {"device_id": 3000 + i}}
        del cfg["ocpp"]
    # The demo reads its main meter over Modbus TCP from the simulator: a port of this test's own,
    # so tests running side by side never read each other's meter.
    link = cfg["nodes"][0].get("meter", {}).get("link", {})
    if "modbus" in link:
        link["modbus"].update({"host": "127.0.0.1", "port": free_tcp_port()})
    return cfg


class Processes:
    """Starts processes and guarantees they are ended, also when the test fails."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, args):
        out = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        p.name = name
        p.logfile = out.name
        self.procs.append(p)
        log(f"started {name} (pid {p.pid})")
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        """Sends sig and waits; returns the exit status."""
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{p.name} did not exit within {timeout} s of signal {sig}")

    def tail(self, p, lines=40):
        with open(p.logfile, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@contextlib.contextmanager
def workspace(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    procs = Processes(d)
    ok = False
    try:
        yield d, procs
        ok = True
    finally:
        procs.close()
        if ok and not os.environ.get("PW_KEEP_TMP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            log(f"kept {d} for inspection")
            for p in procs.procs:
                print(f"--- {p.name} log (tail) ---\n{procs.tail(p)}", flush=True)


def wait_for(what, fn, timeout, interval=0.2):
    """Polls fn until it returns a true value; fails with what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError, urllib.error.URLError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def http_json(port, path, method="GET", body=None, headers=None, timeout=5):
    """Returns (status, parsed JSON or None)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def admin_headers(port, password="correct horse battery"):
    """Sets the admin password on first start (or logs in with it when a run before in the same
    data folder set it) and returns the headers of a logged-in change: Origin, Content-Type and
    the session cookie."""
    headers = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"}

    def post(path):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                     data=json.dumps({"password": password}).encode(),
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.headers["Set-Cookie"].split(";")[0]
    try:
        cookie = post("/api/auth/setup")
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
        cookie = post("/api/auth/login")
    return dict(headers, Cookie=cookie)


def meter_test_read(port, headers, meter, grid="TN", timeout=30):
    """POST /api/meters/test: (status, answer) of a test read of a node's meter object."""
    return http_json(port, "/api/meters/test", "POST", {"meter": meter, "grid": grid}, headers,
                     timeout)


class WebSocket:
    """A minimal RFC 6455 client: enough to read the appliance's text frames."""

    def __init__(self, port, path="/ws", origin=None, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if origin:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head.splitlines()[0]!r}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_text(self):
        """Returns the next complete text message (reassembling fragments)."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, fin = b0 & 0x0F, b0 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if opcode == 8:
                raise ConnectionError("server closed the WebSocket")
            if opcode in (9, 10):
                continue  # ping/pong
            parts.append(payload)
            if fin:
                return b"".join(parts).decode()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.sendall(bytes([0x88, 0x80, 0, 0, 0, 0]))
            self.sock.close()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def run(main):
    """Runs a test's main(); prints a result line ctest and CI can read; exits 1 on failure."""
    t0 = time.monotonic()
    try:
        main()
    except AssertionError as e:
        log(f"FAIL: {e}")
        print("0 passed, 1 failed", flush=True)
        sys.exit(1)
    log(f"ok in {time.monotonic() - t0:.1f} s")
    print("1 passed, 0 failed", flush=True)
