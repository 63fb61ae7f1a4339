#!/usr/bin/env python3
"""History on a full disk: the database lives on a small tmpfs that the test fills up. The
appliance must keep balancing, show the storage error on the dashboard, and resume writing (with
the rows it kept) once there is room again; the database stays intact. Needs root for the
mount; without it the test reports itself skipped (exit 77)."""
import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import pwtest
from pwtest import check, log


def rows(db):
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
        return con.execute("SELECT (SELECT count(*) FROM tail) + (SELECT count(*) FROM block) + "
                           "(SELECT count(*) FROM event)").fetchone()[0]


def store_alert(port):
    _, doc = pwtest.http_json(port, "/api/state")
    return [a["text"] for a in doc["alerts"] if "history is not being written" in a["text"]]


def fill(path):
    """Writes until the file system is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("storage_full: needs root to mount a small tmpfs; skipped")
        sys.exit(77)

    with pwtest.workspace("pw-full-") as (tmp, procs):
        dbdir = os.path.join(tmp, "db")
        os.mkdir(dbdir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", dbdir], check=True)
        try:
            port = pwtest.free_tcp_port()
            cfg = pwtest.test_config(port, pwtest.free_udp_port())
            cfg_path = os.path.join(tmp, "config.json")
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            db = os.path.join(dbdir, "history.db")
            pw = procs.start("phasewise", [args.phasewise, "serve", "--config", cfg_path,
                                           "--data", tmp, "--db", db])
            pwtest.wait_for("the API", lambda: pwtest.http_json(port, "/api/health")[0] == 200,
                            15)
            report = os.path.join(tmp, "truth.jsonl")
            procs.start("phasewise-sim", [args.sim, "--config", cfg_path, "--key-file",
                                          os.path.join(tmp, "facility.key"), "--seed", "5",
                                          "--report", report])
            pwtest.wait_for("history rows", lambda: rows(db) > 50, 20)
            fill(os.path.join(dbdir, "filler"))
            alert = pwtest.wait_for("the storage alert", lambda: store_alert(port), 20)
            log(f"disk full: dashboard shows {alert[0]!r}")
            _, doc = pwtest.http_json(port, "/api/state")
            tx_full = doc["counters"]["tx"]
            time.sleep(12)  # longer than one lease renewal period
            _, doc = pwtest.http_json(port, "/api/state")
            check(doc["counters"]["tx"] > tx_full, "balancing stopped while the disk was full")
            check(doc["counters"]["store_errors"] > 0, "no store error counted")
            before = rows(db)
            os.unlink(os.path.join(dbdir, "filler"))
            pwtest.wait_for("the storage alert to clear", lambda: not store_alert(port), 20)
            pwtest.wait_for("history to grow again", lambda: rows(db) > before + 14, 20)
            log(f"room again: writes resumed ({before} -> {rows(db)} rows)")
            check(procs.stop(pw) == 0, "phasewise did not exit 0 on SIGTERM")
            with contextlib.closing(sqlite3.connect(db)) as con:
                check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
                      "database damaged by the full disk")
        finally:
            procs.close()
            subprocess.run(["umount", "-l", dbdir], check=False)


if __name__ == "__main__":
    pwtest.run(main)
