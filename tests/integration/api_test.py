#!/usr/bin/env python3
"""The appliance's JSON API on loopback: logins guard every change, a foreign Origin is refused,
malformed or invalid input gets 400 and changes nothing, a valid config takes effect at once and
is saved; SIGHUP with a broken file keeps the running config; /metrics speaks Prometheus."""
import argparse
import json
import os
import signal
import time

import pwtest
from pwtest import check, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-api-") as (tmp, procs):
        port = pwtest.free_tcp_port()
        cfg = pwtest.test_config(port, pwtest.free_udp_port())
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        pw = procs.start("phasewise", [args.phasewise, "serve", "--config", cfg_path, "--data",
                                       tmp])
        pwtest.wait_for("the API", lambda: pwtest.http_json(port, "/api/health")[0] == 200, 15)
        origin = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"}

        st, before = pwtest.http_json(port, "/api/config")
        check(st == 200 and before["nodes"][1]["id"] == "garage-a", "GET /api/config failed")
        changed = json.loads(json.dumps(before))
        changed["nodes"][1]["limit_a"] = 49

        st, body = pwtest.http_json(port, "/api/config", "PUT", changed, origin)
        check(st == 401, f"an unauthenticated change got {st}, not 401")

        st, _ = pwtest.http_json(port, "/api/auth/setup", "POST",
                                 {"password": "correct horse battery"}, origin)
        check(st in (200, 201, 204), f"first-start setup failed: {st}")
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/login", method="POST",
                                     data=json.dumps({"password": "correct horse battery"}
                                                     ).encode(), headers=origin)
        with urllib.request.urlopen(req, timeout=10) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
        check("HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in
              r.headers["Set-Cookie"], "the session cookie lacks HttpOnly/SameSite=Strict")
        auth = dict(origin, Cookie=cookie)

        evil = dict(auth, Origin="http://evil.example")
        st, _ = pwtest.http_json(port, "/api/config", "PUT", changed, evil)
        check(st == 403, f"a cross-origin change got {st}, not 403")

        st, body = pwtest.http_json(port, "/api/config", "PUT", b"{\"grid\": ", auth)
        check(st == 400 and "error" in body, f"malformed JSON got {st} {body}")
        bad = json.loads(json.dumps(before))
        bad["chargers"][2]["wiring"] = "L1L1"
        st, body = pwtest.http_json(port, "/api/config", "PUT", bad, auth)
        check(st == 400 and body.get("field") == "chargers[2].wiring",
              f"an invalid wiring got {st} {body}")
        st, now = pwtest.http_json(port, "/api/config")
        check(now == before, "a rejected change altered the running config")
        with open(cfg_path) as f:
            check(json.load(f)["nodes"][1]["limit_a"] == 50, "a rejected change reached the file")
        log("unauthenticated 401, cross-origin 403, malformed 400, invalid 400 by field: "
            "nothing changed")

        st, body = pwtest.http_json(port, "/api/config/validate", "POST", bad, auth)
        check(st == 400 and body["errors"][0]["field"] == "chargers[2].wiring",
              f"validate did not name the field: {st} {body}")

        st, body = pwtest.http_json(port, "/api/config", "PUT", changed, auth)
        check(st == 200, f"a valid change got {st} {body}")

        def limit_shown():
            _, doc = pwtest.http_json(port, "/api/state")
            return doc["nodes"][1]["limit_a"] == [49, 49, 49]
        pwtest.wait_for("the new limit in the live state", limit_shown, 5)
        with open(cfg_path) as f:
            check(json.load(f)["nodes"][1]["limit_a"] == 49, "the change was not saved")
        log("a valid change is live and saved")

        with open(cfg_path, "w") as f:
            f.write('{"grid": "TN", "nodes": []}')
        pw.send_signal(signal.SIGHUP)
        time.sleep(1)
        check(pw.poll() is None, "phasewise died on SIGHUP with a broken config")
        st, now = pwtest.http_json(port, "/api/config")
        check(now["nodes"][1]["limit_a"] == 49, "a broken config replaced the running one")
        log("SIGHUP with a broken file: rejected, running config kept")

        import urllib.request as u
        with u.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        for name in ("phasewise_datagrams_received_total", "phasewise_chargers{status=\"online\"}",
                     "phasewise_node_limit_amperes{node=\"garage-a\",line=\"L1\"} 49.0",
                     "phasewise_control_latency_seconds_bucket",
                     "phasewise_datagrams_rejected_total{reason=\"auth\"}"):
            check(name in text, f"/metrics lacks {name}")
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
