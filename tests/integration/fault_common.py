"""Shared pieces of the fault tests (fault_*.py): the demo facility on this test's own ports with
short timeouts, the appliance and the simulator started in a pwtest workspace, the simulator's
ground-truth report, the live state and /metrics. Loopback only."""
import json
import os
import time
import urllib.request

import pwtest
from e2e_test import read_report  # noqa: F401 (the fault tests use it through this module)
from pwtest import check, log


def write_config(tmp, balancer=None, meter=None, http_port=None, mcast_port=None, interface=None,
                 only_chargers=None):
    """The demo facility on fresh ports with balancer and main-meter overrides (and only the
    chargers named, if given); returns (config dict, path, http port)."""
    http_port = http_port or pwtest.free_tcp_port()
    cfg = pwtest.test_config(http_port, mcast_port or pwtest.free_udp_port())
    # The fault tests judge the LAN protocol's meter (outages, forged and replayed datagrams,
    # loss): the main meter is the simulator's LAN meter gateway 900, whatever the demo reads.
    cfg["nodes"][0]["meter"]["link"] = {"lan": {"device_id": 900}}
    cfg["balancer"].update(balancer or {})
    cfg["nodes"][0]["meter"].update(meter or {})
    if interface:
        cfg["network"]["interface"] = interface
    if only_chargers is not None:
        cfg["chargers"] = [c for c in cfg["chargers"] if c["id"] in set(only_chargers)]
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return cfg, path, http_port


def start_appliance(procs, tmp, cfg_path, http_port, binary, name="phasewise", prefix=()):
    p = procs.start(name, list(prefix) + [binary, "serve", "--config", cfg_path, "--data", tmp,
                                          "--db", os.path.join(tmp, "history.db")])
    if http_port:
        pwtest.wait_for("the appliance's API",
                        lambda: pwtest.http_json(http_port, "/api/health")[0] == 200, 20)
    else:
        pwtest.wait_for("the facility key", lambda: os.path.exists(os.path.join(tmp,
                                                                                "facility.key")),
                        20)
    return p


def start_sim(procs, tmp, cfg_path, binary, extra=(), name="phasewise-sim", prefix=()):
    """The simulator with a busy evening (cars on most chargers) and its report in tmp."""
    report = os.path.join(tmp, f"{name}.jsonl")
    args = list(prefix) + [binary, "--config", cfg_path, "--key-file",
                           os.path.join(tmp, "facility.key"), "--seed", "11", "--cars", "40",
                           "--arrivals", "evening", "--start-hour", "18.5", "--report", report]
    p = procs.start(name, args + list(extra))
    p.report = report
    return p


def last_report(path):
    r = read_report(path)
    return r[-1] if r else None


def state(http_port):
    st, doc = pwtest.http_json(http_port, "/api/state")
    check(st == 200, f"/api/state answered {st}")
    return doc


def metrics(http_port):
    """/metrics as {series with labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def wait_planning(http_port, timeout=40):
    """Until the appliance's start window is over (it plans once every charger has spoken and
    the meters were read after them, at most 30 s): tests whose chargers never speak wait here
    before judging what the balancer makes of a meter."""
    pwtest.wait_for("the start window to end", lambda: not state(http_port)["starting"], timeout)


def wait_balancing(http_port, report, n, timeout=25):
    """Until every charger is online at the appliance and holds a lease in the simulator."""
    def ready():
        doc = state(http_port)
        last = last_report(report)
        return (sum(c["online"] for c in doc["chargers"]) == n and last is not None and
                all(c["lease"] == "active" for c in last["chargers"]))
    pwtest.wait_for(f"all {n} chargers online and leased", ready, timeout)
    log(f"all {n} chargers online and leased")


def check_no_overload(reports, what, tolerance_ms=0):
    """No node line above its limit beyond the reaction window, per the simulator's ground
    truth; returns the worst excess seen (A) for the log."""
    check(reports, f"{what}: no simulator report")
    final = reports[-1]
    for node in final["nodes"]:
        for line in range(3):
            check(node["over_beyond_ms"][line] <= tolerance_ms,
                  f"{what}: node {node['id']} L{line + 1} above its limit beyond the reaction "
                  f"window for {node['over_beyond_ms'][line]} ms")
    return max(max(node["max_over_a"]) for node in final["nodes"])


def charging(report_line):
    return sum(c["state"] == "C" for c in report_line["chargers"])


def sleep_watch(seconds, procs_alive):
    """Sleeps, failing early if a process that must stay up exits."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in procs_alive:
            check(p.poll() is None, f"{p.name} exited with {p.returncode}")
        time.sleep(0.5)
