#!/usr/bin/env python3
"""Self-test of the OCPP test peers without phasewise, run by hand (not in ctest):
ocpp_csms_peer.mjs as the central system and ocpp_cp_peer.mjs as three charge points (one with a
password) boot, report and get charging profiles; it also checks that the peers report what they
must: a refused upgrade with its HTTP status, strict-mode schema failures in both directions,
CALLERRORs for raw frames, a bounded flood, and a clean close.

    python3 tests/peers/selftest_ocpp.py        (after `npm ci` in tests/peers)
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ocpp_peer import CentralSystem, ChargePoints, ocpp_peer_ready  # noqa: E402

checks = 0


def check(cond, msg):
    global checks
    if not cond:
        raise AssertionError(msg)
    checks += 1
    print(f"ok   {msg}", flush=True)


def profile(profile_id, limit, purpose="TxDefaultProfile", stack=0, phases=3):
    return {"chargingProfileId": profile_id, "stackLevel": stack,
            "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": limit, "numberPhases": phases}]}}


def run(tmp):
    record = os.path.join(tmp, "csms-calls.jsonl")
    log = os.path.join(tmp, "peers.log")
    cs = CentralSystem(passwords={"CP3": "cp3-secret-password", "CP4": "cp4-secret-password"},
                       record=record, log=log)
    cps = ChargePoints("", [], log=log)  # replaced once the central system has a port
    try:
        cs.start()
        check(cs.port > 0, f"central system listens on 127.0.0.1:{cs.port}")
        cps = ChargePoints(cs.url, ["CP1", "CP2",
                                    {"id": "CP3", "password": "cp3-secret-password",
                                     "connectors": 2}], log=log)
        cps.start()

        # Connect and boot the three charge points.
        for cp, r in cps.connect().items():
            check(r["ok"] and r["protocol"] == "ocpp1.6", f"{cp} connected with ocpp1.6")
        for cp in cps.ids:
            check(cps.boot(cp)["status"] == "Accepted", f"{cp} boot Accepted")
        # The other process's events arrive on their own pipe: wait for them, never just look.
        for cp in cps.ids:
            cs.wait_for(lambda e, cp=cp: e["event"] == "call" and e["id"] == cp and
                        e["method"] == "BootNotification", what=f"{cp}'s BootNotification")
        check(len(cs.find(lambda e: e["event"] == "call" and e["method"] == "BootNotification"))
              == 3, "the central system recorded three BootNotifications")
        check(cs.wait_for(lambda e: e["event"] == "connect" and e["id"] == "CP3")["password"],
              "CP3 connected with its Basic auth password")

        # A wrong password is refused at the upgrade with 401, and reported as such.
        cps.request({"cmd": "add", "id": "CP4", "password": "wrong-password-1234"})
        r = cps.request({"cmd": "connect", "id": "CP4"}, ok=False)
        check(not r["ok"] and r["error"]["code"] == 401, "CP4 with a wrong password: result 401")
        check(cps.find(lambda e: e["event"] == "refused" and e["id"] == "CP4"
                       and e["status"] == 401), "CP4: refused event with HTTP status 401")

        # A transaction and a meter reading on CP1.
        cps.request({"cmd": "status", "id": "CP1", "connector": 1, "status": "Charging"})
        r = cps.request({"cmd": "start", "id": "CP1", "connector": 1, "idTag": "TAG1",
                         "meterStart": 100})
        tx = r["transactionId"]
        check(isinstance(tx, int) and r["idTagStatus"] == "Accepted",
              f"CP1 started transaction {tx}")
        cps.request({"cmd": "meter", "id": "CP1", "connector": 1, "currents": [16, 15.5, 16],
                     "offered": 16, "energyWh": 1234})
        mv = cs.wait_for(lambda e: e["event"] == "call" and e["method"] == "MeterValues")
        sv = mv["params"]["meterValue"][0]["sampledValue"]
        currents = [s["value"] for s in sv if s["measurand"] == "Current.Import"]
        check(mv["params"]["transactionId"] == tx and currents == ["16", "15.5", "16"],
              "MeterValues carried the transaction and three phase currents")

        # SetChargingProfile from the central system: CP1 accepts and keeps the limit.
        mark = cps.mark()
        r = cs.call("CP1", "SetChargingProfile", {"connectorId": 1,
                                                  "csChargingProfiles": profile(7, 10.0)})
        check(r["response"] == {"status": "Accepted"}, "CP1 answered SetChargingProfile Accepted")
        ev = cps.wait_for(lambda e: e["event"] == "call" and e["method"] == "SetChargingProfile",
                          since=mark)
        check(ev["id"] == "CP1" and ev["result"] == {"status": "Accepted"} and
              ev["params"]["csChargingProfiles"]["chargingProfileId"] == 7,
              "CP1 reported the call with its params and answer")
        st = cps.state("CP1")
        check(st["last_limit"]["1"]["limit"] == 10.0 and st["last_limit"]["1"]["unit"] == "A",
              "CP1 state: last limit 10 A on connector 1")

        # A TxProfile on a connector without a transaction is refused (CP3 has none).
        r = cs.call("CP3", "SetChargingProfile", {"connectorId": 2, "csChargingProfiles":
                                                  profile(8, 6.0, purpose="TxProfile")})
        check(r["response"]["status"] == "Rejected", "CP3 rejects a TxProfile without transaction")

        # Configured to reject: CP2.
        cps.request({"cmd": "configure", "id": "CP2", "set_profile": "Rejected"})
        r = cs.call("CP2", "SetChargingProfile", {"connectorId": 0, "csChargingProfiles":
                                                  profile(9, 32.0, "ChargePointMaxProfile")})
        check(r["response"]["status"] == "Rejected", "CP2 configured to reject: Rejected")

        # ClearChargingProfile on CP1.
        r = cs.call("CP1", "ClearChargingProfile", {"id": 7})
        check(r["response"]["status"] == "Accepted" and cps.state("CP1")["profiles"] == [],
              "CP1 cleared profile 7")

        # GetConfiguration and ChangeConfiguration with a measurand CP3 does not support.
        r = cs.call("CP3", "GetConfiguration", {"key": ["NumberOfConnectors", "NoSuchKey"]})
        check(r["response"] == {"configurationKey": [{"key": "NumberOfConnectors",
                                                      "readonly": True, "value": "2"}],
                                "unknownKey": ["NoSuchKey"]}, "CP3 GetConfiguration")
        r = cs.call("CP3", "ChangeConfiguration", {"key": "MeterValuesSampledData",
                                                   "value": "Current.Import,SoC"})
        check(r["response"]["status"] == "Rejected", "CP3 rejects an unsupported measurand")
        r = cs.call("CP3", "ChangeConfiguration", {"key": "MeterValueSampleInterval",
                                                   "value": "10"})
        check(r["response"]["status"] == "Accepted" and
              cps.state("CP3")["config"]["MeterValueSampleInterval"] == "10",
              "CP3 accepts MeterValueSampleInterval=10 and keeps it")

        # TriggerMessage: Accepted, then the MeterValues actually arrive at the central system.
        mark = cs.mark()
        r = cs.call("CP1", "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1})
        check(r["response"]["status"] == "Accepted", "CP1 accepts TriggerMessage MeterValues")
        mv = cs.wait_for(lambda e: e["event"] == "call" and e["method"] == "MeterValues",
                         since=mark)
        check(mv["params"]["meterValue"][0]["sampledValue"][0]["context"] == "Trigger",
              "the triggered MeterValues arrived, context Trigger")

        # Strict mode, central system -> charge point: a profile with a string limit.
        mark = cps.mark()
        bad = profile(10, "16")
        r = cs.request({"cmd": "raw", "id": "CP1", "text": json.dumps(
            [2, "bad-1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": bad}])})
        sv = cps.wait_for(lambda e: e["event"] == "strict_violation", since=mark)
        check(sv["id"] == "CP1" and sv["direction"] == "in" and sv["what"] == "call" and
              sv["method"] == "SetChargingProfile" and
              sv["error"]["code"] == "TypeConstraintViolation",
              "CP1 reported the schema failure of a string limit")
        reply = cs.wait_for(lambda e: e["event"] == "raw_reply" and e["messageId"] == "bad-1")
        check(reply["type"] == "CALLERROR" and reply["errorCode"] == "TypeConstraintViolation",
              "the central system got CALLERROR TypeConstraintViolation back")

        # Strict mode on answers. The central system's own malformed answer is caught by its
        # strict mode before it leaves (the charge point gets InternalError) ...
        cs.request({"cmd": "configure", "answers": {"Heartbeat": {"currentTime": 5}}})
        r = cps.request({"cmd": "call", "id": "CP2", "method": "Heartbeat"}, ok=False)
        check(not r["ok"] and r["error"]["code"] == "InternalError",
              "CP2's Heartbeat got InternalError for the central system's malformed answer")
        check(cs.wait_for(lambda e: e["event"] == "strict_violation" and e["direction"] == "out"
                          and e["method"] == "Heartbeat"),
              "the central system reported its own malformed answer (strict, outbound)")
        # ... and one sent raw, past the central system's checks, is caught by the charge point.
        cs.request({"cmd": "configure", "answers": {}, "silent": ["Heartbeat"]})
        mark = cs.mark()
        cps.send({"cmd": "call", "id": "CP2", "method": "Heartbeat", "ref": "hb-raw"})
        call = cs.wait_for(lambda e: e["event"] == "call" and e.get("silent"), since=mark)
        cs.request({"cmd": "raw", "id": "CP2",
                    "text": json.dumps([3, call["messageId"], {"currentTime": 5}])})
        r = cps.wait_for(lambda e: e["event"] == "result" and e.get("ref") == "hb-raw")
        check(not r["ok"] and r["error"]["code"] == "TypeConstraintViolation",
              "CP2 refused a Heartbeat answer with a numeric currentTime")
        check(cps.find(lambda e: e["event"] == "strict_violation" and e["what"] == "result"
                       and e["direction"] == "in" and e["method"] == "Heartbeat"),
              "CP2 reported the schema failure of the answer (strict, inbound result)")
        cs.request({"cmd": "configure", "silent": []})

        # Raw frames from a charge point: unknown action, malformed JSON, wrong types.
        for text, want in ((json.dumps([2, "raw-1", "NoSuchAction", {}]), "NotImplemented"),
                           (json.dumps([2, "raw-2", "StatusNotification",
                                       {"connectorId": "1", "errorCode": "NoError",
                                        "status": "Available"}]),
                            "TypeConstraintViolation")):
            mark = cps.mark()
            cps.request({"cmd": "raw", "id": "CP2", "text": text})
            r = cps.wait_for(lambda e: e["event"] == "raw_reply", since=mark)
            check(r["type"] == "CALLERROR" and r["errorCode"] == want,
                  f"raw {json.loads(text)[2]}: CALLERROR {want}")
        mark = cps.mark()
        cps.request({"cmd": "raw", "id": "CP2", "text": "[2, not json"})
        r = cps.wait_for(lambda e: e["event"] == "unexpected_reply", since=mark)
        check(r["errorCode"] == "RpcFrameworkError", "malformed JSON: CALLERROR RpcFrameworkError")

        # A bounded flood of Heartbeats.
        r = cps.request({"cmd": "flood", "id": "CP2", "count": 300, "per_s": 1000}, timeout=30)
        check(r["sent"] == 300 and r["results"] == 300 and r["invalid_results"] == 0,
              f"flood: 300 sent, 300 valid answers in {r['elapsed_ms']} ms")

        # Disconnect: both sides see the close.
        cps.request({"cmd": "disconnect", "id": "CP3"})
        cps.wait_for(lambda e: e["event"] == "close" and e["id"] == "CP3")
        c = cs.wait_for(lambda e: e["event"] == "close" and e["id"] == "CP3")
        check(c["code"] == 1000, "CP3 closed with 1000, seen by the central system")

        with open(record) as f:
            recorded = [json.loads(line) for line in f]
        check(len(recorded) == len(cs.find(lambda e: e["event"] == "call")) and
              all(e["event"] == "call" for e in recorded), "--record holds every call, one a line")

        # Exactly the problems this test provoked, nothing else.
        cp_problems = cps.problems()
        check([(e["event"], e.get("method")) for e in cp_problems] ==
              [("strict_violation", "SetChargingProfile"), ("strict_violation", "Heartbeat")],
              "charge points: only the two provoked schema failures")
        cs_problems = cs.problems()
        check(sorted((e["event"], e.get("method")) for e in cs_problems) ==
              [("bad_message", None), ("strict_violation", "Heartbeat"),
               ("strict_violation", "StatusNotification")],
              "central system: only the provoked failures")
    finally:
        rc_cp = cps.stop()
        rc_cs = cs.stop()
    check(rc_cp == 0 and rc_cs == 0, "both peers exited 0")


def main():
    why = ocpp_peer_ready()
    if why:
        print(f"skipped: {why}")
        return 77
    tmp = tempfile.mkdtemp(prefix="ocpp-selftest-")
    try:
        run(tmp)
    except Exception as e:  # report and fail; the peers are stopped already
        print(f"FAIL {e}")
        print(f"the peers' log is kept: {os.path.join(tmp, 'peers.log')}")
        print(f"{checks} passed, 1 failed")
        return 1
    shutil.rmtree(tmp)
    print(f"{checks} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
