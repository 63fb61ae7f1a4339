#!/usr/bin/env python3
"""OCPP Security Profile 2: charge points connect over wss:// with the appliance's certificate
(the self-signed pair it makes for HTTPS on first start) and HTTP Basic; one that does not
trust the certificate cannot connect, and a plain ws:// connection to the TLS port gets
nowhere. The simulator's charge points are the clients, checking the certificate against the
CA file they are given."""
import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import time
import urllib.request

import pwtest
from pwtest import check, log

PASSWORD = "gb03-authorization-key-0001"


def password_hash(password):
    salt = os.urandom(16)
    return "sha256:%s:%s" % (salt.hex(), hashlib.sha256(salt + password.encode()).hexdigest())


def https_json(port, path, timeout=5):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx,
                                timeout=timeout) as r:
        return json.loads(r.read())


def upgrade_status_tls(port, cafile, cp_id, password):
    """The HTTP status of a wss upgrade, checking the server with cafile."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the pair is made for the listen address, not a name
    token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
    head = [f"GET /ocpp/{cp_id} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: ocpp1.6",
            f"Authorization: Basic {token}"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            data = s.recv(1024)
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return int(line.split()[1]) if line.startswith("HTTP/1.") else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-ocpp-tls-") as (tmp, procs):
        port = pwtest.free_tcp_port()
        cfg = pwtest.test_config(port, pwtest.free_udp_port(), ocpp=True)
        cfg["http"]["tls"] = {"enabled": True}
        cfg["ocpp"]["tls"] = True
        cfg["ocpp"]["charge_points"] = [{"id": "GB-03", "password_hash": password_hash(PASSWORD)}]
        ocpp_port = int(cfg["ocpp"]["listen"].rsplit(":", 1)[1])
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        procs.start("phasewise", [args.phasewise, "serve", "--config", cfg_path, "--data", tmp])
        cert = os.path.join(tmp, "tls-cert.pem")
        pwtest.wait_for("the appliance's certificate", lambda: os.path.exists(cert), 20)
        pwtest.wait_for("the HTTPS API", lambda: https_json(port, "/api/health") is not None, 20)

        # The charge point that trusts the appliance's certificate connects over wss.
        check(upgrade_status_tls(ocpp_port, cert, "GB-03", PASSWORD) == 101,
              "a wss upgrade with the right password and the appliance's certificate failed")
        check(upgrade_status_tls(ocpp_port, cert, "GB-03", "wrong-password-0000000") == 401,
              "a wss upgrade with a wrong password was not refused with 401")
        log("wss: the right password is taken (101), a wrong one refused (401)")
        try:
            upgrade_status_tls(ocpp_port, "/etc/ssl/certs/ca-certificates.crt", "GB-03", PASSWORD)
            check(False, "a client that does not trust the appliance's certificate connected")
        except ssl.SSLError as e:
            log(f"a client without the appliance's certificate is refused: {e.reason}")
        with socket.create_connection(("127.0.0.1", ocpp_port), timeout=5) as s:
            s.sendall(b"GET /ocpp/GB-03 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n")
            try:
                reply = s.recv(64)
            except OSError:
                reply = b""
        check(not reply.startswith(b"HTTP/1.1 101"), "a plain ws:// upgrade on the TLS port worked")
        log("plain ws:// on the TLS port gets no upgrade")

        # The simulator's charge points, checking the certificate, connect and are set up.
        sim = procs.start("phasewise-sim", [args.sim, "--config", cfg_path, "--key-file",
                                            os.path.join(tmp, "facility.key"), "--ocpp-ca", cert,
                                            "--ocpp-password", f"GB-03={PASSWORD}"])

        def connected():
            doc = https_json(port, "/api/state")
            oc = [c for c in doc["chargers"] if "ocpp" in c]
            return oc and all(c["ocpp"]["connected"] and c["ocpp"]["default_profile"]
                              for c in oc) and oc
        oc = pwtest.wait_for("the simulator's charge points connected over wss", connected, 30)
        log(f"{len(oc)} OCPP chargers connected over wss:// and set up (default profile "
            "installed)")
        time.sleep(1)
        check(procs.stop(sim) == 0, "phasewise-sim did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
