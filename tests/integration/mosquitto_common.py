"""Debian's mosquitto broker for the MQTT tests (mqtt_*.py, uplink and publish tests), on
127.0.0.1 only: a Broker started in a temp dir of its own (plain or TLS with a test CA made here
by the openssl CLI, client certificates required or not, a password file and an ACL), stopped and
started again on the same port, or SIGKILLed; a Subscriber (a small MQTT 3.1.1 client on Python
sockets, no packages needed) that records what arrives; publish() through mosquitto_pub.

    with Broker(tls=True, users={"meter": "pw"}, acl="user meter\\ntopic read ams/#\\n") as b:
        cfg["mqtt"] = b.mqtt_config("meter")
        with Subscriber(b, ["phasewise/#"], user="meter") as sub:
            publish(b, "ams/meter", "{...}", user="meter")
            sub.wait_for(lambda m: m.topic == "phasewise/x", 5)

Every process is ended by its pid and the temp dir removed, also when the test fails (then the
broker's log is printed first; PW_KEEP_TMP=1 keeps the dir)."""
import base64
import contextlib
import glob
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

import pwtest
from pwtest import check, log


def tool(name):
    """The path of one of Debian's mosquitto or openssl programs."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                       if os.path.exists(p)), None)
    check(path, f"{name} not found: docker/install-deps.sh installs Debian's mosquitto, "
                f"mosquitto-clients and openssl")
    return path


def _openssl(*args):
    r = subprocess.run([tool("openssl"), *args], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"openssl {args[0]} failed: {r.stderr}")


class TestCA:
    """A certificate authority of the test's own (EC P-256: quick to make) that issues server
    and client certificates into directory d."""

    def __init__(self, d, name="phasewise test CA"):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        self.cert, self.key = (os.path.join(d, f"{slug}.{x}") for x in ("pem", "key"))
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj",
                 f"/CN={name}")

    def issue(self, cn, server=False, names=()):
        """A certificate and its key (PEM files) for cn; a server's names ("DNS:localhost",
        "IP:127.0.0.1") go in its subjectAltName. Returns (cert, key)."""
        base = os.path.join(self.dir, "".join(ch if ch.isalnum() else "-" for ch in cn))
        cert, key, csr, ext = (f"{base}.{x}" for x in ("pem", "key", "csr", "ext"))
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}\n")
            if names:
                f.write(f"subjectAltName={','.join(names)}\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-set_serial",
                 str(random.getrandbits(63)), "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


class Broker:
    """Debian's mosquitto on 127.0.0.1 and a free port, with its config, TLS files, password
    file, ACL and log in a temp dir of its own.

    tls: TLS on the listener with a server certificate for "localhost" and 127.0.0.1 from
    self.ca; require_certificate: clients must show a certificate from self.ca
    (client_cert() makes one). users: {name: password} in a password file (mosquitto_passwd -b),
    and then no anonymous access unless anonymous=True. acl: the text of an ACL file ("user
    NAME" then "topic read|write|readwrite FILTER" lines). Mosquitto 2.0's ACL file only stops
    delivery and never refuses a SUBSCRIBE; with dynsec=True the users and the ACL go into its
    dynamic security plugin instead, which answers a SUBSCRIBE it does not allow with 128."""

    def __init__(self, tls=False, require_certificate=False, users=None, acl=None,
                 anonymous=None, dynsec=False, name="mosquitto"):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"pw-{name}-")
        self.port = pwtest.free_tcp_port()
        self.tls = tls or require_certificate
        self.users = dict(users or {})
        self.proc = None
        self.runs = 0
        self.log = os.path.join(self.tmp, "mosquitto.log")
        try:
            self.ca = TestCA(os.path.join(self.tmp, "tls")) if self.tls else None
            self._write_config(require_certificate, acl,
                               anonymous if anonymous is not None else not self.users, dynsec)
        except BaseException:
            self.close()
            raise

    def _write_config(self, require_certificate, acl, anonymous, dynsec):
        # As root, mosquitto would switch to user "mosquitto", who cannot read this temp dir;
        # "user" names the one running the test (no effect when not root).
        lines = [f"user {pwd.getpwuid(os.getuid()).pw_name}", "per_listener_settings false",
                 f"allow_anonymous {'true' if anonymous else 'false'}", "persistence false",
                 f"log_dest file {self.log}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "log_timestamp_format %H:%M:%S",
                 "connection_messages true"]
        if dynsec:
            plugin = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")
            check(plugin, "mosquitto's dynamic security plugin not found (package mosquitto)")
            path = os.path.join(self.tmp, "dynsec.json")
            with open(path, "w") as f:
                json.dump(_dynsec(self.users, acl or ""), f, indent=1)
            lines += [f"plugin {plugin[0]}", f"plugin_opt_config_file {path}"]
        elif self.users:
            passwd = os.path.join(self.tmp, "passwd")
            for i, (user, password) in enumerate(self.users.items()):
                args = [tool("mosquitto_passwd")] + (["-c"] if i == 0 else []) + ["-b", passwd,
                                                                                   user, password]
                subprocess.run(args, check=True, timeout=10, capture_output=True)
            lines.append(f"password_file {passwd}")
        if acl is not None and not dynsec:
            path = os.path.join(self.tmp, "acl")
            with open(path, "w") as f:
                f.write(acl)
            lines.append(f"acl_file {path}")
        lines.append(f"listener {self.port} 127.0.0.1")
        if self.tls:
            self.server_cert, self.server_key = self.ca.issue(
                "localhost", server=True, names=("DNS:localhost", "IP:127.0.0.1"))
            lines += [f"cafile {self.ca.cert}", f"certfile {self.server_cert}",
                      f"keyfile {self.server_key}"]
            if require_certificate:
                lines.append("require_certificate true")
        self.conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def client_cert(self, cn="phasewise"):
        """A client certificate and key signed by the broker's CA: (cert, key)."""
        return self.ca.issue(cn)

    def mqtt_config(self, user=None, host="127.0.0.1", **extra):
        """The appliance's "mqtt" section for this broker."""
        cfg = {"host": host, "port": self.port, "keepalive_s": 5}
        if user:
            cfg.update(username=user, password=self.users[user])
        if self.tls:
            cfg.update(tls=True, ca_file=self.ca.cert)
        cfg.update(extra)
        return cfg

    def start(self, timeout=10):
        """Starts mosquitto (again, on the same port) and waits until it accepts connections."""
        check(self.proc is None or self.proc.poll() is not None, "the broker is running already")
        self.runs += 1
        out = open(os.path.join(self.tmp, f"stdout-{self.runs}.log"), "wb")
        self.proc = subprocess.Popen([tool("mosquitto"), "-c", self.conf], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        log(f"started {self.name} on 127.0.0.1:{self.port}{' (TLS)' if self.tls else ''} "
            f"(pid {self.proc.pid})")

        def listening():
            check(self.proc.poll() is None, f"mosquitto exited: {self.tail()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        pwtest.wait_for(f"{self.name} to accept connections", listening, timeout, 0.05)
        return self

    def stop(self, timeout=10):
        """SIGTERM, as a clean shutdown; the port stays this broker's for start()."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        log(f"stopped {self.name}")

    def kill(self):
        """SIGKILL: the broker vanishes without a word to its clients."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        log(f"killed {self.name}")

    def tail(self, lines=30):
        with contextlib.suppress(OSError), open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
        return ""

    def close(self, failed=False):
        """Ends the broker by its pid and removes the temp dir (kept with PW_KEEP_TMP)."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if failed:
            print(f"--- {self.name} log (tail) ---\n{self.tail()}", flush=True)
        if os.environ.get("PW_KEEP_TMP"):
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, kind, value, tb):
        self.close(failed=kind is not None)


def _dynsec(users, acl):
    """The dynamic security plugin's config: each user with a role of its own holding the ACL
    file's rules for it (read: subscribe and receive, write: publish); what no rule allows is
    refused (subscribe) or not delivered."""
    rules, user = {u: [] for u in users}, None
    for line in acl.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "user":
            user = words[1]
        elif words and words[0] == "topic" and user in rules:
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            kinds = (["subscribePattern", "publishClientReceive"] if "read" in access else [])
            kinds += ["publishClientSend"] if "write" in access else []
            rules[user] += [{"acltype": k, "topic": topic, "allow": True} for k in kinds]
    clients = []
    for name, password in users.items():
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
        clients.append({"username": name, "password": base64.b64encode(digest).decode(),
                        "salt": base64.b64encode(salt).decode(), "iterations": 101,
                        "roles": [{"rolename": name}]})
    return {"clients": clients,
            "roles": [{"rolename": u, "acls": r} for u, r in rules.items()],
            "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": True}}


def publish(broker, topic, payload, user=None, retain=False, qos=0, cert=None, timeout=10):
    """One message with mosquitto_pub; False if the broker did not take it. cert: a client
    (cert, key) for a broker that requires one."""
    args = [tool("mosquitto_pub"), "-p", str(broker.port), "-t", topic, "-m", payload, "-q",
            str(qos)]
    if user:
        args += ["-u", user, "-P", broker.users[user]]
    if retain:
        args.append("-r")
    args += ["-h", "localhost", "--cafile", broker.ca.cert] if broker.tls else ["-h", "127.0.0.1"]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class Message:
    def __init__(self, topic, payload, retain, qos):
        self.t = time.monotonic()
        self.topic, self.payload, self.retain, self.qos = topic, payload, retain, qos

    def text(self):
        return self.payload.decode(errors="replace")

    def __repr__(self):
        return f"<{self.topic} {'retained ' if self.retain else ''}{self.payload[:80]!r}>"


class Refused(Exception):
    """The broker refused a CONNECT: rc is the CONNACK's return code (4 bad login, 5 not
    authorised)."""

    def __init__(self, rc):
        super().__init__(f"the broker refused the connection: return code {rc}")
        self.rc = rc


def _utf8(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _packet(kind, body):
    n, length = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + length + body


class Subscriber:
    """An MQTT 3.1.1 client of the test's own that subscribes to topics (QoS 1 by default,
    acknowledging what it gets) and records every message with its arrival time and retain
    flag. granted: the broker's SUBACK (128 = refused by its ACL). cert: a client (cert, key)."""

    def __init__(self, broker, topics, user=None, qos=1, client_id=None, cert=None, timeout=10):
        self.messages, self.lock = [], threading.Lock()
        self.closed = False
        sock = socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)
        if broker.tls:
            ctx = ssl.create_default_context(cafile=broker.ca.cert)
            if cert:
                ctx.load_cert_chain(*cert)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock, self.buf = sock, b""
        flags = 0x02 | (0xC0 if user else 0)  # clean session, user name and password
        body = _utf8("MQTT") + bytes([4, flags]) + struct.pack(">H", 0)  # no keepalive
        body += _utf8(client_id or f"pwtest-{random.getrandbits(32):08x}")
        if user:
            body += _utf8(user) + _utf8(broker.users[user])
        self.sock.sendall(_packet(0x10, body))
        kind, body = self._read_packet()
        check(kind >> 4 == 2, f"no CONNACK but packet type {kind >> 4}")
        if body[1] != 0:
            self.sock.close()
            raise Refused(body[1])
        sub = struct.pack(">H", 1) + b"".join(_utf8(t) + bytes([qos]) for t in topics)
        self.sock.sendall(_packet(0x82, sub))
        kind, body = self._read_packet()
        check(kind >> 4 == 9, f"no SUBACK but packet type {kind >> 4}")
        self.granted = list(body[2:])
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _parse(self):
        """A whole packet off the front of the buffer, else None (nothing consumed)."""
        length, shift = 0, 0
        for i in range(1, min(len(self.buf), 5)):
            length += (self.buf[i] & 0x7F) << shift
            shift += 7
            if not self.buf[i] & 0x80:
                end = i + 1 + length
                if len(self.buf) < end:
                    return None
                kind, body, self.buf = self.buf[0], self.buf[i + 1:end], self.buf[end:]
                return kind, body
        return None

    def _read_packet(self):
        """The next packet; a timeout of the socket leaves a partial one in the buffer."""
        while True:
            packet = self._parse()
            if packet:
                return packet
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            self.buf += chunk

    def _run(self):
        while not self.closed:
            try:
                kind, body = self._read_packet()
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (OSError, ConnectionError):
                return
            if kind >> 4 != 3:
                continue  # PUBACKs of nothing, PINGRESP
            qos = (kind >> 1) & 3
            n = struct.unpack(">H", body[:2])[0]
            topic, rest = body[2:2 + n].decode(errors="replace"), body[2 + n:]
            if qos:
                mid, rest = rest[:2], rest[2:]
                with contextlib.suppress(OSError):
                    self.sock.sendall(_packet(0x40, mid))
            with self.lock:
                self.messages.append(Message(topic, rest, bool(kind & 1), qos))

    def received(self, pred=lambda m: True):
        with self.lock:
            return [m for m in self.messages if pred(m)]

    def wait_for(self, pred, timeout, what="a message"):
        """The first message for which pred is true, waiting up to timeout seconds."""
        return pwtest.wait_for(what, lambda: next(iter(self.received(pred)), None), timeout,
                               0.05)

    def close(self):
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.sendall(_packet(0xE0, b""))
        self.thread.join(5)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
