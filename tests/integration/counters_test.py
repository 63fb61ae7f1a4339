#!/usr/bin/env python3
"""Counters that tell the truth (issue 15, item 8). A 3,000-byte datagram on the LAN group and one
on the DEFA group, longer than the appliance's 2,048-byte sockets take, must each be counted as
refused input of reason `long`, the same in /api/state and in /metrics, never dropped unseen.
And the counters of a real state document must be exactly the ones docs/state.md documents: the
example's keys, the reasons always present, every key named in the text, so the two cannot drift
apart again. Loopback only."""
import argparse
import json
import os
import re
import socket
import time

import fault_common as fc
import pwtest
from pwtest import check, log

DEFA_GROUP, DEFA_PORT = "234.222.250.1", 57082  # protocol/pw_proto.h PW_DEFA_DEFAULT_*
STATE_MD = os.path.join(pwtest.SOURCE_DIR, "docs", "state.md")


def send(group, port, data):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        check(s.sendto(data, (group, port)) == len(data), f"could not send {len(data)} bytes")
    finally:
        s.close()


def rejected_series(m, transport, reason):
    return m.get(f'phasewise_datagrams_rejected_total{{transport="{transport}",reason="{reason}"}}')


def documented():
    """docs/state.md's example document and the text of its `counters` item."""
    with open(STATE_MD) as f:
        text = f.read()
    block = re.search(r"```json\n(.*?)\n```", text, re.S)
    check(block, "docs/state.md has no JSON example")
    item = re.search(r"^- `counters`(.*?)(?=^- |\Z)", text, re.S | re.M)
    check(item, "docs/state.md does not describe `counters`")
    return json.loads(block.group(1)), " ".join(item.group(0).split())


def check_documented(doc):
    """The real document's counters against docs/state.md. Only LAN and DEFA datagrams were
    refused in this test, so the reasons present are exactly the always-present ones."""
    example, item = documented()
    want, got = example["counters"], doc["counters"]
    check(set(got) == set(want),
          f"counters keys: the document has {sorted(got)}, docs/state.md {sorted(want)}")
    check(set(got["rejected"]) == set(want["rejected"]),
          f"counters.rejected: the document has {sorted(got['rejected'])}, docs/state.md "
          f"{sorted(want['rejected'])}")
    for key in list(got) + list(got["rejected"]):
        check(f"`{key}`" in item, f"docs/state.md's counters text does not name `{key}`")
    for key, value in got.items():
        kind = dict if key == "rejected" else int
        check(isinstance(value, kind) and isinstance(want[key], kind),
              f"counters.{key} is {type(value).__name__} in the document")
    log(f"docs/state.md documents exactly the counters {sorted(got)} and reasons "
        f"{sorted(got['rejected'])}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()

    with pwtest.workspace("pw-counters-") as (tmp, procs):
        cfg = pwtest.test_config(pwtest.free_tcp_port(), pwtest.free_udp_port())
        cfg["network"]["defa_meters"] = True
        http_port = int(cfg["http"]["listen"].rsplit(":", 1)[1])
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        pw = fc.start_appliance(procs, tmp, cfg_path, http_port, args.phasewise)
        net = cfg["network"]
        before = fc.state(http_port)["counters"]
        m0 = fc.metrics(http_port)

        send(net["group"], net["port"], bytes(3000))
        send(DEFA_GROUP, DEFA_PORT, bytes(3000))

        def counted():
            m = fc.metrics(http_port)
            lan, defa = rejected_series(m, "lan", "long") or 0, rejected_series(m, "defa", "long")
            # /api/state is the document last published (once a second): wait for the one
            # published after both were counted.
            doc = fc.state(http_port)
            return lan >= 1 and (defa or 0) >= 1 and doc["counters"]["rejected"]["long"] >= 2 \
                and (m, doc)

        m, _ = pwtest.wait_for("both oversized datagrams counted as 'long'", counted, 10)
        time.sleep(1.5)  # a document published after /metrics was read
        doc = fc.state(http_port)
        k = doc["counters"]
        lan, defa = rejected_series(m, "lan", "long"), rejected_series(m, "defa", "long")
        # Nobody else sends to this test's own LAN port; another test may send to the DEFA one.
        check(lan - (rejected_series(m0, "lan", "long") or 0) == 1,
              f"/metrics counts {lan} long LAN datagrams for the one sent")
        check(k["rejected"]["long"] == lan + defa,
              f"/api/state counts {k['rejected']['long']} long datagrams, /metrics {lan} on the "
              f"LAN and {defa} on DEFA")
        check(k["rejected"]["long"] - before["rejected"]["long"] >= 2,
              f"/api/state: long went from {before['rejected']['long']} to "
              f"{k['rejected']['long']} for two oversized datagrams")
        check(k["rx"] - before["rx"] >= 2, f"rx went from {before['rx']} to {k['rx']}")
        alerts = [a["text"] for a in doc["alerts"] if "rejected" in a["text"]]
        total = sum(k["rejected"].values())
        check(alerts and alerts[0].startswith(f"{total} datagrams rejected"),
              f"the alert does not say the {total} rejections the counters add up to: {alerts}")
        log(f"3,000-byte datagrams: long {k['rejected']['long']} in /api/state = {lan} lan + "
            f"{defa} defa in /metrics; alert '{alerts[0]}'")

        check_documented(doc)
        check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")


if __name__ == "__main__":
    pwtest.run(main)
