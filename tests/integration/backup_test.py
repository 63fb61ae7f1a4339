#!/usr/bin/env python3
"""Backup and restore on real processes: the appliance runs with the simulator until its history
has samples, sessions and events; `phasewise backup` and GET /api/backup make archives while it
runs (a POSIX tar, manifest first, mode 0600); a restore while it runs is refused. Stopped,
broken and foreign archives (a text file, another tar, a truncated or damaged one, a path
traversal, a newer format, an invalid config, a database of another program, a key outside the
data folder) are refused with a sentence naming the problem, and the data folder stays the same
byte for byte. Then the data folder is wiped and restored: the same facility key, config, admin
password (logging in works), HTTPS pair, overrides and history rows; restored over the files a
killed appliance left, its WAL is removed and the history is exactly the backup's. Last, POST /api/restore
refuses a broken upload and keeps running, stages a good one, exits with status 75, and the next
start applies it and logs an event "restore"."""
import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import fault_common as fc
import pwtest
from pwtest import check, log

PASSWORD = "backup test password"
NOTHING_CHANGED = "Nothing was changed."


def folder_state(path):
    """Every file in path (recursively) with its mode and SHA-256: the byte-for-byte picture."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, path)] = (stat.S_IMODE(st.st_mode), st.st_size, digest)
    return out


def db_counts(path):
    """Rows of the history's tables in a database file that is not in use."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("event", "session", "tail", "block", "series")}
        counts["schema"] = con.execute("PRAGMA user_version").fetchone()[0]
        return counts
    finally:
        con.close()


def live_counts(path):
    """The same on the live database (a WAL reader)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("event", "session", "tail")}
    finally:
        con.close()


def login(port, password):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/login", method="POST",
                                 data=json.dumps({"password": password}).encode(),
                                 headers={"Origin": f"http://127.0.0.1:{port}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return {"Origin": f"http://127.0.0.1:{port}",
                "Cookie": r.headers["Set-Cookie"].split(";")[0]}


def http_bytes(port, path, headers, method="GET", body=None, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        return [(m.name, m.size) for m in t.getmembers()]


def read_member(data, name):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        return t.extractfile(name).read()


def make_tar(parts):
    """A ustar archive of (name, bytes) pairs, as another program would make it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in parts:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def forged(good, change=None, files=None, manifest=None):
    """An archive in the good one's form with some parts replaced and the manifest's sizes and
    hashes made to match, so only the replaced content is wrong."""
    man = json.loads(read_member(good, "manifest.json"))
    parts = {name: read_member(good, name) for name, _ in members(good)[1:]}
    parts.update(files or {})
    if change:
        change(parts)
    man["files"] = [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                    for n, d in parts.items()]
    man.update(manifest or {})
    return make_tar([("manifest.json", json.dumps(man).encode())] + list(parts.items()))


def foreign_db(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (text TEXT)")
    con.execute("INSERT INTO notes VALUES ('not a history')")
    con.commit()
    con.close()
    with open(path, "rb") as f:
        return f.read()


def restore(binary, data, archive):
    r = subprocess.run([binary, "restore", "--data", data, archive], capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def check_refusals(tmp, binary, data, good):
    """Broken and foreign archives on the stopped appliance: each refused, nothing changed."""
    before = folder_state(data)
    config = json.loads(read_member(good, "config.json"))
    outside = dict(config, network=dict(config["network"], key_file="/tmp/phasewise-evil.key"))
    bad_config = dict(config, nodes=[])
    cut = good[:len(good) // 2]
    flipped = bytearray(good)
    flipped[len(good) - 4096] ^= 0xFF  # inside the database's pages
    cases = [
        ("a text file", b"Dear diary,\n" * 200, "not a tar archive: not a phasewise backup"),
        ("another program's tar", make_tar([("notes.txt", b"hello\n")]),
         "does not begin with manifest.json"),
        ("an empty file", b"", "the file is empty"),
        ("a truncated archive", cut, "truncated"),
        ("a damaged archive", bytes(flipped), "does not match its SHA-256"),
        ("a path traversal", make_tar([("manifest.json", read_member(good, "manifest.json")),
                                       ("config.json", read_member(good, "config.json")),
                                       ("../evil", b"x")]),
         "\"../evil\" is not a file a phasewise backup holds"),
        ("a newer backup format", forged(good, manifest={"version": 2}),
         "made by a newer phasewise"),
        ("an invalid config", forged(good, files={"config.json": json.dumps(bad_config).encode()}),
         "config.json in the backup is not valid"),
        ("a database of another program",
         forged(good, files={"phasewise.db": foreign_db(os.path.join(tmp, "foreign.db"))}),
         "phasewise.db in the backup is not usable"),
        ("a key outside the data folder",
         forged(good, files={"config.json": json.dumps(outside).encode()}),
         "outside the data folder"),
        ("a newer database schema", forged(good, manifest={"schema": 99}),
         "newer than this phasewise"),
    ]
    for what, blob, words in cases:
        path = os.path.join(tmp, "bad.tar")
        with open(path, "wb") as f:
            f.write(blob)
        rc, out = restore(binary, data, path)
        check(rc == 1, f"{what}: restore exited {rc}: {out}")
        check(words in out and NOTHING_CHANGED in out, f"{what}: the refusal does not say "
                                                       f"\"{words}\": {out}")
        after = folder_state(data)
        check(after == before, f"{what}: the data folder changed: "
                               f"{sorted(set(after.items()) ^ set(before.items()))}")
    check(not os.path.exists("/tmp/phasewise-evil.key"), "a restore wrote outside its folders")
    log(f"{len(cases)} broken or foreign archives refused; the data folder unchanged byte for "
        f"byte ({len(before)} files)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    ap.add_argument("--sim", required=True)
    args = ap.parse_args()
    t0 = time.monotonic()

    with pwtest.workspace("pw-backup-") as (tmp, procs):
        data = os.path.join(tmp, "data")
        os.mkdir(data, 0o750)
        cfg, cfg_path, port = fc.write_config(data)
        # Files a backup holds when they exist: an HTTPS pair (HTTPS itself stays off here, the
        # files are carried as they are) and the operator's overrides.
        extra = {"tls-cert.pem": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                 "tls-key.pem": b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
                 "overrides.json": b'{"chargers": {}}\n'}
        for name, blob in extra.items():
            with open(os.path.join(data, name), "wb") as f:
                f.write(blob)
        pw = procs.start("phasewise", [args.phasewise, "serve", "--data", data])
        pwtest.wait_for("the appliance's API",
                        lambda: pwtest.http_json(port, "/api/health")[0] == 200, 20)
        procs.start("phasewise-sim", [args.sim, "--config", cfg_path, "--key-file",
                                      os.path.join(data, "facility.key"), "--seed", "11",
                                      "--cars", "40", "--arrivals", "evening",
                                      "--start-hour", "18.5"])
        auth = pwtest.admin_headers(port, PASSWORD)
        db = os.path.join(data, "phasewise.db")
        pwtest.wait_for("samples, sessions and events in the history", lambda: (
            lambda c: c["tail"] >= 50 and c["session"] >= 1 and c["event"] >= 3)(live_counts(db)),
            25)
        log(f"history while running: {live_counts(db)}")

        # A backup from the command line and one from the API, while it runs.
        cli = os.path.join(tmp, "cli.tar")
        r = subprocess.run([args.phasewise, "backup", "--data", data, cli], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, f"phasewise backup exited {r.returncode}: {r.stderr}")
        check(stat.S_IMODE(os.stat(cli).st_mode) == 0o600, "the archive is not mode 0600")
        with open(cli, "rb") as f:
            good = f.read()
        names = [n for n, _ in members(good)]
        check(names == ["manifest.json", "config.json", "facility.key", "admin-password",
                        "tls-cert.pem", "tls-key.pem", "overrides.json", "phasewise.db"],
              f"archive members {names}")
        manifest = json.loads(read_member(good, "manifest.json"))
        listing = subprocess.run(["tar", "tf", cli], capture_output=True, text=True)
        check(listing.returncode == 0 and listing.stdout.split() == names,
              f"tar tf lists {listing.stdout.split()} ({listing.stderr})")
        snap = os.path.join(tmp, "snapshot.db")
        with open(snap, "wb") as f:
            f.write(read_member(good, "phasewise.db"))
        backed = db_counts(snap)
        check(backed["schema"] == manifest["schema"] and backed["tail"] > 0 and
              backed["session"] > 0, f"the snapshot holds {backed}")
        log(f"phasewise backup while running: {len(good)} bytes, {r.stdout.strip()}")
        st, hdr, api_tar = http_bytes(port, "/api/backup", {"Cookie": auth["Cookie"]})
        check(st == 200 and hdr["Content-Type"] == "application/x-tar", f"GET /api/backup {st}")
        disposition = hdr["Content-Disposition"]
        check(disposition.startswith('attachment; filename="phasewise-') and
              disposition.endswith('.tar"'), f"Content-Disposition {disposition}")
        check([n for n, _ in members(api_tar)] == names, "the API's archive holds other files")
        st, _, _ = http_bytes(port, "/api/backup", {})
        check(st == 401, f"GET /api/backup without a login answered {st}")
        log(f"GET /api/backup: {len(api_tar)} bytes, {disposition}; 401 without a login")

        rc, out = restore(args.phasewise, data, cli)
        check(rc == 1 and "the appliance is running" in out and "stop it first" in out,
              f"a restore while running: {rc} {out}")
        log("restore while the appliance runs: refused")

        for p in list(procs.procs):
            check(procs.stop(p) == 0, f"{p.name} did not stop cleanly")
        saved = {n: open(os.path.join(data, n), "rb").read()
                 for n in ("config.json", "facility.key", "admin-password", *extra)}
        check_refusals(tmp, args.phasewise, data, good)

        # Over a history that a killed appliance left with its WAL: the WAL belongs to the old
        # file and must not be replayed into the restored one.
        pw = procs.start("phasewise-killed", [args.phasewise, "serve", "--data", data])
        pwtest.wait_for("the appliance's API",
                        lambda: pwtest.http_json(port, "/api/health")[0] == 200, 20)
        time.sleep(1.5)  # a tick or two of rows
        procs.stop(pw, signal.SIGKILL)
        check(os.path.getsize(db + "-wal") > 0, "SIGKILL left no WAL to test with")
        rc, out = restore(args.phasewise, data, cli)
        check(rc == 0, f"restore over a killed appliance's files exited {rc}: {out}")
        check(not os.path.exists(db + "-wal") and not os.path.exists(db + "-shm"),
              "the old database's WAL stayed beside the restored one")
        check(db_counts(db) == backed, f"restored history {db_counts(db)}, backup {backed}")
        log("restored over a killed appliance's files: its WAL removed, the history is the "
            "backup's")

        # Wiped, restored, started: the same appliance.
        shutil.rmtree(data)
        rc, out = restore(args.phasewise, data, cli)
        check(rc == 0, f"restore into a wiped folder exited {rc}: {out}")
        for name, blob in saved.items():
            with open(os.path.join(data, name), "rb") as f:
                check(f.read() == blob, f"{name} differs after the restore")
        check(stat.S_IMODE(os.stat(os.path.join(data, "facility.key")).st_mode) == 0o600,
              "the restored facility key is not mode 0600")
        log(f"restored into a wiped data folder: {out.splitlines()[0]}")
        pw = procs.start("phasewise-restored", [args.phasewise, "serve", "--data", data])
        pwtest.wait_for("the restored appliance's API",
                        lambda: pwtest.http_json(port, "/api/health")[0] == 200, 20)
        auth = login(port, PASSWORD)
        st, body = pwtest.http_json(port, "/api/sessions", headers=auth)
        check(st == 200 and len(body["sessions"]) >= backed["session"],
              f"sessions after the restore: {st} {len(body.get('sessions', []))}")
        now = live_counts(db)
        check(all(now[t] >= backed[t] for t in ("event", "session")),
              f"history rows after the restore {now}, in the backup {backed}")
        log(f"restored appliance: same key, config, password (logged in), {now['session']} "
            f"sessions, {now['event']} events (backup: {backed['session']}, {backed['event']})")

        # Through the API: a broken upload is refused and nothing restarts; a good one is staged,
        # the appliance exits 75 and the next start applies it.
        st, _, body = http_bytes(port, "/api/restore",
                                 dict(auth, **{"Content-Type": "application/x-tar"}), "POST",
                                 good[:len(good) // 3])
        check(st == 400 and b"truncated" in body, f"a truncated upload: {st} {body[:200]}")
        check(pw.poll() is None and not os.path.exists(os.path.join(data, "restore.pending")),
              "a refused upload staged something or stopped the appliance")
        check(not [n for n in os.listdir(data) if n.startswith("upload-") or
                   n.endswith(".restore-tmp")], f"left-overs in the data folder: "
                                                 f"{os.listdir(data)}")
        st, _, body = http_bytes(port, "/api/restore", {"Origin": auth["Origin"]}, "POST", good)
        check(st == 401 and not os.path.exists(os.path.join(data, "restore.pending")),
              f"an upload without a login: {st}")
        st, _, body = http_bytes(port, "/api/restore",
                                 dict(auth, **{"Content-Type": "application/x-tar"}), "POST",
                                 api_tar)
        answer = json.loads(body)
        check(st == 200 and answer.get("restarting"), f"POST /api/restore: {st} {answer}")
        status = pw.wait(15)
        check(status == 75, f"the appliance exited {status} after staging a restore, not 75")
        check(os.path.exists(os.path.join(data, "restore.pending")), "nothing staged")
        log(f"POST /api/restore: {answer['message']} (exit status {status})")
        pw = procs.start("phasewise-after-api", [args.phasewise, "serve", "--data", data])
        pwtest.wait_for("the appliance after the staged restore",
                        lambda: pwtest.http_json(port, "/api/health")[0] == 200, 20)
        st, body = pwtest.http_json(port, "/api/events?kind=restore&limit=5", headers=auth)
        check(st == 200 and body["events"] and "restored the backup" in body["events"][0]["detail"],
              f"no restore event: {st} {body}")
        check(not os.path.exists(os.path.join(data, "restore.pending")), "restore.pending stayed")
        with open(os.path.join(data, "facility.key"), "rb") as f:
            check(f.read() == saved["facility.key"], "the key changed through the API restore")
        log(f"the next start applied it: {body['events'][0]['detail']}")
        check(procs.stop(pw) == 0, "phasewise did not stop cleanly")
    log(f"done in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    pwtest.run(main)
