#!/usr/bin/env python3
"""OCPP 1.6 local controller (issue 14, first part): phasewise between two charge points and an
operator's CSMS, none of them written here: ocpp-rpc's server as the CSMS
(tests/peers/ocpp_csms_peer.mjs) and its client as the charge points (ocpp_cp_peer.mjs), strict
mode on both sides, so every frame phasewise sends either way is checked against the official
1.6 schemas. The CSMS sees each charge point boot (Basic auth where it asks for it), its
statuses, and a transaction's start, meter values and stop under its own transaction id with the
charge point's meter readings; its RemoteStartTransaction and ChangeConfiguration reach the
charge point and the answers come back to its call; its SetChargingProfile of 8 A holds the
connector at 8 A in the balancer while the charge point only ever gets phasewise's own profiles,
and ClearChargingProfile lifts it; a schedule whose second period starts 8 s after receipt is
followed: the balancer's csms_cap_a and the charger's offered current go from 10 A to 7 A then,
and GetCompositeSchedule says so ahead. With the CSMS stopped, the charge points' calls are answered,
a new transaction is balanced, and the state document says the upstream is down. Loopback only;
skipped (77) without the npm peers. What a charge point says while the CSMS is away is queued
(in memory) and reaches the CSMS in order once it is back: the boot first, then statuses,
StartTransaction, MeterValues and StopTransaction under the new CSMS's own transaction id, each
call once, also when phasewise is SIGKILLed and restarted while the CSMS is away (the queue,
the transaction ids and the boot are kept in SQLite): the kept boot goes first, no message id
twice."""
import argparse
import json
import os
import signal
import sqlite3
import threading
import time

import fault_common as fc
import pwtest
from ocpp_peer import CentralSystem, ChargePoints, PeerError, skip_without_peers
from pwtest import check, log

IDS = ["LC-1", "LC-2"]
CHARGER = {"LC-1": "c1", "LC-2": "c2"}
UP_PASSWORD = "csms-authorization-key-01"  # the CSMS asks LC-1 for it; LC-2 has none
CSMS_PROFILE_ID = 4242


def write_config(tmp, http_port, ocpp_port, csms_port):
    cfg = {
        "version": 1,
        "site": "OCPP local controller",
        "grid": "TN",
        "network": {"port": pwtest.free_udp_port(), "interface": "127.0.0.1", "ttl": 1},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "balancer": {"reaction_s": 2, "lease_s": 30, "tick_ms": 500},
        "ocpp": {"listen": f"127.0.0.1:{ocpp_port}", "meter_interval_s": 2, "min_interval_s": 1,
                 "heartbeat_s": 60, "daily_writes": 500,
                 "upstream": {"url": f"ws://127.0.0.1:{csms_port}/ocpp",
                              "authorize": "csms"},
                 "charge_points": [{"id": "LC-1", "upstream_password": UP_PASSWORD},
                                   {"id": "LC-2"}]},
        "nodes": [{"id": "main", "name": "Main fuse", "parent": None, "limit_a": 40,
                   "margin_a": 2}],
        "chargers": [{"id": CHARGER[cp], "name": f"Bay {cp}", "node": "main",
                      "link": {"ocpp": {"id": cp, "connector": 1}}, "wiring": "L1L2L3",
                      "min_a": 6, "max_a": 16, "failsafe_a": 6} for cp in IDS],
    }
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def charger(http_port, cp):
    return {c["id"]: c for c in fc.state(http_port)["chargers"]}[CHARGER[cp]]


def csms_calls(csms, cp, method, since=0):
    return csms.find(lambda e: e.get("event") == "call" and e.get("id") == cp and
                     e.get("method") == method, since)


def wait_csms_call(csms, cp, method, since=0, timeout=15, pred=lambda e: True):
    return csms.wait_for(lambda e: e.get("event") == "call" and e.get("id") == cp and
                         e.get("method") == method and pred(e), timeout, since=since,
                         what=f"{method} from {cp} at the CSMS")


def energy(params):
    for mv in params.get("meterValue", []):
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand") == "Energy.Active.Import.Register":
                return float(sv["value"])
    return None


def limit_of(cps, cp):
    ll = cps.state(cp).get("last_limit", {}).get("1")
    return None if ll is None or ll.get("cleared") else ll.get("limit")


def meter_until(cps, cp, amps, pred, what, timeout=25, wh=[2000]):
    """Sends meter values (the car draws amps) every second until pred() holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        wh[0] += 10
        cps.request({"cmd": "meter", "id": cp, "connector": 1, "currents": [amps] * 3,
                     "offered": amps, "energyWh": wh[0]})
        if pred():
            return
        time.sleep(1)
    raise AssertionError(f"not within {timeout} s: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phasewise", required=True)
    args = ap.parse_args()
    skip_without_peers()

    with pwtest.workspace("pw-ocpp-lc-") as (tmp, procs):
        csms = CentralSystem(passwords={"LC-1": UP_PASSWORD}, log=os.path.join(tmp, "csms.log"))
        csms.start()
        http_port, ocpp_port = pwtest.free_tcp_port(), pwtest.free_tcp_port()
        cfg_path = write_config(tmp, http_port, ocpp_port, csms.port)
        pw = fc.start_appliance(procs, tmp, cfg_path, http_port, args.phasewise)
        cps = ChargePoints(f"ws://127.0.0.1:{ocpp_port}/ocpp", IDS,
                           log=os.path.join(tmp, "cps.log"))
        cps.start()
        try:
            t0 = time.monotonic()
            # ---- boot and status reach the CSMS, with Basic auth where it asks ----------
            cps.connect()
            for cp in IDS:
                check(cps.boot(cp)["status"] == "Accepted", f"{cp}: phasewise accepts its boot")
            for cp in IDS:
                e = wait_csms_call(csms, cp, "BootNotification")
                check(e["result"]["status"] == "Accepted", f"{cp}: the CSMS accepts its boot")
            conn = {e["id"]: e for e in csms.find(lambda e: e.get("event") == "connect")}
            check(conn["LC-1"]["password"] and not conn["LC-2"]["password"],
                  f"Basic auth upstream only where configured: {conn}")
            csms_boot_lc2 = wait_csms_call(csms, "LC-2", "BootNotification")["params"]
            log("both charge points booted at the CSMS (LC-1 with its upstream password)")
            for cp in IDS:
                cps.request({"cmd": "status", "id": cp, "connector": 1, "status": "Preparing"})
            for cp in IDS:
                wait_csms_call(csms, cp, "StatusNotification",
                               pred=lambda e: e["params"]["status"] == "Preparing")
            log("StatusNotification Preparing seen by the CSMS for both")

            # ---- a transaction under the CSMS's id, with the charge point's meter values ----
            mark = csms.mark()
            r = cps.request({"cmd": "start", "id": "LC-1", "connector": 1, "idTag": "TAG-LC1",
                             "meterStart": 1000})
            local_tx = r["transactionId"]
            e = wait_csms_call(csms, "LC-1", "StartTransaction", since=mark)
            check(e["params"]["meterStart"] == 1000 and e["params"]["idTag"] == "TAG-LC1",
                  f"StartTransaction as the charge point sent it: {e['params']}")
            csms_tx = e["result"]["transactionId"]
            log(f"StartTransaction: the charge point knows phasewise's id {local_tx}, the CSMS "
                f"its own {csms_tx}")
            cps.request({"cmd": "status", "id": "LC-1", "connector": 1, "status": "Charging"})
            mark = csms.mark()
            cps.request({"cmd": "meter", "id": "LC-1", "connector": 1, "currents": [16] * 3,
                         "offered": 16, "energyWh": 1500})
            e = wait_csms_call(csms, "LC-1", "MeterValues", since=mark,
                               pred=lambda e: energy(e["params"]) == 1500)
            check(e["params"].get("transactionId") == csms_tx,
                  f"MeterValues under the CSMS's transaction id with 1500 Wh: {e['params']}")
            log("MeterValues reach the CSMS under its transaction id with the right register")

            # ---- the CSMS's calls reach the charge point, answers come back to them -------
            mark_cp = cps.mark()
            r = csms.call("LC-2", "RemoteStartTransaction", {"idTag": "TAG-R", "connectorId": 1})
            check(r["response"]["status"] == "Accepted", f"RemoteStart answered: {r}")
            e = cps.wait_for(lambda e: e.get("event") == "call" and e.get("id") == "LC-2" and
                             e.get("method") == "RemoteStartTransaction", 5, since=mark_cp)
            check(e["params"]["idTag"] == "TAG-R", f"RemoteStart reached LC-2: {e}")
            r = csms.call("LC-2", "ChangeConfiguration", {"key": "ConnectionTimeOut",
                                                          "value": "90"})
            check(r["response"]["status"] == "Accepted", f"ChangeConfiguration answered: {r}")
            cfgs = cps.state("LC-2")["config"]
            v = cfgs.get("ConnectionTimeOut")
            v = v.get("value") if isinstance(v, dict) else v
            check(str(v) == "90", f"ChangeConfiguration reached LC-2: {v}")
            r = csms.call("LC-2", "GetConfiguration", {"key": ["ConnectionTimeOut"]})
            keys = r["response"]["configurationKey"]
            check(keys and keys[0]["value"] == "90", f"GetConfiguration came back: {r}")
            log("RemoteStartTransaction, ChangeConfiguration and GetConfiguration went down and "
                "their answers back to the CSMS's calls")

            # ---- a CSMS profile is a cap in the balancer, never a profile on the charger ----
            prof = {"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": CSMS_PROFILE_ID, "stackLevel": 1,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 8}]}}}
            r = csms.call("LC-1", "SetChargingProfile", prof)
            check(r["response"]["status"] == "Accepted", f"SetChargingProfile answered: {r}")
            meter_until(cps, "LC-1", 16, lambda: limit_of(cps, "LC-1") == 8,
                        "LC-1 held at 8 A by phasewise's own profile")
            pwtest.wait_for("the CSMS's cap in the state document", lambda: (
                lambda c: c.get("csms_cap_a") == 8 and c["limit_a"] <= 8)(
                    charger(http_port, "LC-1")), 5)
            for _ in range(4):  # held there for seconds while the car draws what it may
                time.sleep(1)
                meter_until(cps, "LC-1", 8, lambda: True, "")
                check(limit_of(cps, "LC-1") <= 8 and charger(http_port, "LC-1")["limit_a"] <= 8,
                      "LC-1 stays at 8 A at most")
            r = csms.call("LC-1", "GetCompositeSchedule", {"connectorId": 1, "duration": 600})
            per = r["response"]["chargingSchedule"]["chargingSchedulePeriod"][0]
            check(per["limit"] == 8, f"GetCompositeSchedule from the cap: {r['response']}")
            r = csms.call("LC-1", "ClearChargingProfile", {"id": CSMS_PROFILE_ID})
            check(r["response"]["status"] == "Accepted", f"ClearChargingProfile answered: {r}")
            meter_until(cps, "LC-1", 8, lambda: (limit_of(cps, "LC-1") or 0) > 8,
                        "LC-1 raised above 8 A after the clear")
            pwtest.wait_for("the cap gone from the state document",
                            lambda: "csms_cap_a" not in charger(http_port, "LC-1"), 5)
            installed = [p for cp in IDS for p in cps.state(cp)["profiles"]]
            check(all(p.get("chargingProfileId", p.get("id")) != CSMS_PROFILE_ID
                      for p in installed), f"no CSMS profile on a charger: {installed}")
            got = cps.find(lambda e: e.get("event") == "call" and
                           e.get("method") == "SetChargingProfile")
            check(got and all(e["params"]["csChargingProfiles"]["chargingProfileId"] !=
                              CSMS_PROFILE_ID for e in got),
                  "every SetChargingProfile a charge point got was phasewise's")
            log(f"SetChargingProfile 8 A: LC-1 held at 8 A, raised after the clear; the charge "
                f"points got {len(got)} profiles, all phasewise's")

            # ---- a schedule is followed: 10 A, then 7 A from 8 s after receipt -------------
            sched = {"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": CSMS_PROFILE_ID + 1, "stackLevel": 2,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "duration": 600,
                                     "chargingSchedulePeriod": [
                                         {"startPeriod": 0, "limit": 10},
                                         {"startPeriod": 8, "limit": 7}]}}}
            t_set = time.monotonic()
            r = csms.call("LC-1", "SetChargingProfile", sched)
            check(r["response"]["status"] == "Accepted", f"schedule answered: {r}")
            r = csms.call("LC-1", "GetCompositeSchedule", {"connectorId": 1, "duration": 60})
            pers = [(p["startPeriod"], p["limit"]) for p in
                    r["response"]["chargingSchedule"]["chargingSchedulePeriod"]]
            check(len(pers) == 2 and pers[0] == (0, 10) and pers[1][0] in (7, 8) and
                  pers[1][1] == 7, f"GetCompositeSchedule tells both periods: {r['response']}")
            pwtest.wait_for("csms_cap_a 10 A from the first period", lambda: charger(
                http_port, "LC-1").get("csms_cap_a") == 10, 5)
            meter_until(cps, "LC-1", 16, lambda: limit_of(cps, "LC-1") == 10,
                        "LC-1 offered 10 A in the first period", timeout=7)
            check(time.monotonic() - t_set < 8, "the first period seen before the second began")
            pwtest.wait_for("csms_cap_a 7 A from the second period", lambda: charger(
                http_port, "LC-1").get("csms_cap_a") == 7, 12)
            took = time.monotonic() - t_set
            check(7.5 <= took <= 11, f"the cap followed the schedule at 8 s: {took:.1f} s")
            meter_until(cps, "LC-1", 10, lambda: limit_of(cps, "LC-1") == 7,
                        "LC-1 offered 7 A in the second period", timeout=10)
            check(charger(http_port, "LC-1")["limit_a"] <= 7, "the balancer holds LC-1 at 7 A")
            r = csms.call("LC-1", "ClearChargingProfile", {"id": CSMS_PROFILE_ID + 1})
            check(r["response"]["status"] == "Accepted", f"schedule cleared: {r}")
            pwtest.wait_for("the schedule's cap gone", lambda: "csms_cap_a" not in charger(
                http_port, "LC-1"), 5)
            log(f"a schedule: csms_cap_a and LC-1's offer 10 A, then 7 A after {took:.1f} s "
                f"(second period at 8 s); GetCompositeSchedule {pers}")

            mark = csms.mark()
            cps.request({"cmd": "stop", "id": "LC-1", "connector": 1, "meterStop": 4000,
                         "reason": "Local"})
            e = wait_csms_call(csms, "LC-1", "StopTransaction", since=mark)
            check(e["params"]["transactionId"] == csms_tx and e["params"]["meterStop"] == 4000,
                  f"StopTransaction under the CSMS's id with 4000 Wh: {e['params']}")
            log("StopTransaction reached the CSMS under its id with meterStop 4000")
            problems = csms.problems() + cps.problems()
            check(problems == [], f"strict mode: {len(problems)} problems, first {problems[:3]}")
            log(f"strict mode: no violation in {len(csms.events)} CSMS and {len(cps.events)} "
                f"charge point events")
            for cp in IDS:
                check(charger(http_port, cp)["ocpp"].get("upstream") == "connected",
                      f"{cp}: upstream connected in the state document")

            # A CSMS profile on LC-1 that must outlive a restart of phasewise (a charge point
            # keeps its profiles across a reboot).
            kept = {"connectorId": 0, "csChargingProfiles": {
                "chargingProfileId": CSMS_PROFILE_ID + 2, "stackLevel": 0,
                "chargingProfilePurpose": "ChargePointMaxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 9}]}}}
            r = csms.call("LC-1", "SetChargingProfile", kept)
            check(r["response"]["status"] == "Accepted", f"ChargePointMaxProfile: {r}")
            pwtest.wait_for("LC-1's csms_cap_a 9 A", lambda: charger(
                http_port, "LC-1").get("csms_cap_a") == 9, 5)

            # ---- authorize "csms": the CSMS's verdict on a tag reaches the charge point -------
            csms.request({"cmd": "configure", "id_tags": {"STOLEN-CARD": "Blocked"}})

            def authorize(tag):
                r = cps.request({"cmd": "call", "id": "LC-2", "method": "Authorize",
                                 "params": {"idTag": tag}})
                return r["response"]["idTagInfo"]["status"]
            check(authorize("STOLEN-CARD") == "Blocked", "the CSMS's Blocked reaches LC-2")
            check(authorize("GOOD-CARD") == "Accepted", "the CSMS's Accepted reaches LC-2")
            log("Authorize: the CSMS's verdicts (Blocked, Accepted) reached the charge point")

            # ---- the CSMS goes away: local control goes on ---------------------------------
            csms.stop()
            pwtest.wait_for("the upstream shown down", lambda: all(
                charger(http_port, cp)["ocpp"].get("upstream") not in ("connected", None)
                for cp in IDS), 15)
            log(f"CSMS stopped: state document says {charger(http_port, 'LC-2')['ocpp']['upstream']!r}")
            check(authorize("STOLEN-CARD") == "Blocked" and authorize("NEW-CARD") == "Accepted",
                  "with the CSMS away: its last verdict, else the charger's own cache")
            log("Authorize with the CSMS away: Blocked remembered, an unknown tag Accepted")
            r = cps.request({"cmd": "status", "id": "LC-2", "connector": 1, "status": "Preparing"})
            check(r["ok"], "a status is answered with the CSMS away")
            r = cps.request({"cmd": "start", "id": "LC-2", "connector": 1, "idTag": "TAG-LC2",
                             "meterStart": 50})
            check(r["idTagStatus"] == "Accepted" and r["transactionId"],
                  f"StartTransaction answered with the CSMS away: {r}")
            local_tx = r["transactionId"]
            cps.request({"cmd": "status", "id": "LC-2", "connector": 1, "status": "Charging"})
            meter_until(cps, "LC-2", 6, lambda: limit_of(cps, "LC-2") is not None,
                        "LC-2's transaction balanced with the CSMS away")
            check(charger(http_port, "LC-2")["limit_a"] >= 6, "LC-2 charging")
            log(f"CSMS away: LC-2 started and got phasewise's limit {limit_of(cps, 'LC-2')} A")

            # ---- phasewise is SIGKILLed while the CSMS is away: what waits is kept ---------
            mark_cp = cps.mark()
            pw.send_signal(signal.SIGKILL)
            pw.wait(5)
            cps.wait_for(lambda e: e.get("event") == "close" and e.get("id") == "LC-2", 10,
                         since=mark_cp)
            pw = fc.start_appliance(procs, tmp, cfg_path, http_port, args.phasewise,
                                    name="phasewise-2")
            cps.connect()  # back after the restart, without booting again
            pwtest.wait_for("LC-2 connected again", lambda: charger(http_port, "LC-2").get(
                "ocpp", {}).get("connected"), 10)
            pwtest.wait_for("LC-1's CSMS cap of 9 A back after the restart", lambda: charger(
                http_port, "LC-1").get("csms_cap_a") == 9, 10)
            log("phasewise SIGKILLed and restarted with the CSMS still away; the charge points "
                "reconnected without a new boot; LC-1 is still under the CSMS's 9 A")
            cps.request({"cmd": "status", "id": "LC-2", "connector": 1, "status": "Finishing"})
            cps.request({"cmd": "stop", "id": "LC-2", "connector": 1, "meterStop": 2600,
                         "reason": "Local"})
            cps.request({"cmd": "status", "id": "LC-2", "connector": 1, "status": "Available"})

            # ---- the CSMS comes back: what it missed goes up in order, each call once ------
            csms2 = CentralSystem(port=csms.port, passwords={"LC-1": UP_PASSWORD},
                                  log=os.path.join(tmp, "csms2.log"))
            csms2.start()
            try:
                stop = wait_csms_call(csms2, "LC-2", "StopTransaction", timeout=45)
                time.sleep(1.5)  # anything sent twice would come now
                calls = [e for e in csms2.events if e.get("event") == "call" and
                         e.get("id") == "LC-2"]
                methods = [e["method"] for e in calls]
                check(methods[0] == "BootNotification", f"the boot first: {methods}")
                check(calls[0]["params"] == csms_boot_lc2,
                      f"the boot kept from before the restart: {calls[0]['params']}")
                starts = [i for i, m in enumerate(methods) if m == "StartTransaction"]
                stops = [i for i, m in enumerate(methods) if m == "StopTransaction"]
                meters = [i for i, m in enumerate(methods) if m == "MeterValues" and
                          "transactionId" in calls[i]["params"]]
                check(len(starts) == 1 and len(stops) == 1,
                      f"one StartTransaction and one StopTransaction: {methods}")
                check(meters and starts[0] < meters[0] and meters[-1] < stops[0],
                      f"start, meter values, stop in that order: {methods}")
                # The new CSMS numbers its transactions from 1: LC-2's is its first.
                tx = 1
                check(tx != local_tx, f"phasewise's id {local_tx} differs from the CSMS's")
                check(all(calls[i]["params"]["transactionId"] == tx for i in meters) and
                      stop["params"]["transactionId"] == tx and
                      stop["params"]["meterStop"] == 2600,
                      f"meter values and stop under the CSMS's id {tx}: {stop['params']}")
                seen = [calls[i]["params"]["status"] for i, m in enumerate(methods)
                        if m == "StatusNotification" and
                        calls[i]["params"]["connectorId"] == 1]
                want = ["Preparing", "Charging", "Finishing", "Available"]
                check(seen[-4:] == want, f"LC-2's statuses in order: {seen}")
                ids = [e["messageId"] for e in calls if "messageId" in e]
                check(len(ids) == len(set(ids)), f"no message id twice: {ids}")
                log(f"CSMS back: LC-2's {len(calls)} calls made while it was away, before and "
                    f"after a SIGKILL of phasewise, arrived in order, start/stop once, "
                    f"{len(meters)} meter values under its id {tx}")
                problems = csms2.problems()
                check(problems == [], f"strict mode at the second CSMS: {problems[:3]}")
            finally:
                csms2.stop()

            # ---- an answer is the promise that the call is written down ---------------------
            # Another connection holds the database's write lock for 2 s: a call that must be
            # kept for the CSMS is answered only once it is written, after the lock goes.
            db = sqlite3.connect(os.path.join(tmp, "history.db"), isolation_level=None,
                                 timeout=10, check_same_thread=False)
            db.execute("BEGIN EXCLUSIVE")
            release = threading.Timer(2.0, db.execute, args=("COMMIT",))
            t_lock = time.monotonic()
            release.start()
            try:
                cps.request({"cmd": "status", "id": "LC-1", "connector": 1,
                             "status": "Available"}, timeout=15)
                waited = time.monotonic() - t_lock
            finally:
                release.join()
                db.close()
            check(1.5 <= waited <= 4.5, f"the answer came {waited:.2f} s into a 2 s write lock")
            log(f"a status with the database locked for 2 s was answered after {waited:.2f} s, "
                f"once it was written down")

            # ---- the upstream password is never shown --------------------------------------
            status, doc = pwtest.http_json(http_port, "/api/config",
                                           headers=pwtest.admin_headers(http_port))
            check(status == 200, f"GET /api/config: {status}")
            ent = {c["id"]: c for c in doc["ocpp"]["charge_points"]}
            check(ent["LC-1"]["upstream_password"] is None and
                  ent["LC-1"]["upstream_password_set"] is True and
                  ent["LC-2"]["upstream_password_set"] is False,
                  f"upstream passwords hidden: {ent}")
            check(UP_PASSWORD not in json.dumps(doc), "the password is nowhere in the document")
            log("GET /api/config: upstream_password null, upstream_password_set true")
            problems = cps.problems()
            check(problems == [], f"charge points: {problems[:3]}")
            code = procs.stop(pw)
            check(code == 0, f"phasewise exited {code} on SIGTERM")
            log(f"done in {time.monotonic() - t0:.1f} s; phasewise exited 0")
        except PeerError as e:
            raise AssertionError(str(e)) from e
        finally:
            cps.stop()
            csms.stop()


if __name__ == "__main__":
    pwtest.run(main)
