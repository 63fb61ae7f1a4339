# Integration tests: the real binaries on loopback multicast, each with its own temp dir and ports.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
# Test-only Modbus TCP peers (libmodbus, modbus-serial) for the modbus_* tests.
include(${CMAKE_CURRENT_SOURCE_DIR}/peers/peers.cmake)
add_test(NAME e2e
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/e2e_test.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(e2e PROPERTIES LABELS "integration" TIMEOUT 180)
add_test(NAME api
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/api_test.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(api PROPERTIES LABELS "integration" TIMEOUT 120)
add_test(NAME defa
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/defa_test.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(defa PROPERTIES LABELS "integration" TIMEOUT 120)
add_test(NAME storage_full
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/storage_full_test.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(storage_full PROPERTIES LABELS "integration" TIMEOUT 150 SKIP_RETURN_CODE 77)
# Faults on real processes (issue 5): each under a minute, short timeouts in the test's config.
foreach(fault lossy meter_outage charger_silent)
  add_test(NAME fault_${fault}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_${fault}.py
                   --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
  set_tests_properties(fault_${fault} PROPERTIES LABELS "integration" TIMEOUT 120)
endforeach()
# The lossy LAN waits for a live duplicate as long as five mean gaps between them.
set_tests_properties(fault_lossy PROPERTIES TIMEOUT 200)
add_test(NAME fault_sigkill
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_sigkill.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
add_test(NAME fault_forged
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_forged.py
                 --phasewise $<TARGET_FILE:phasewise>)
# Network namespaces and a veth pair made and deleted by the test; skipped without root.
add_test(NAME fault_rejoin
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_rejoin.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(fault_sigkill fault_forged fault_rejoin
                     PROPERTIES LABELS "integration" TIMEOUT 120 SKIP_RETURN_CODE 77)
add_test(NAME fault_devices
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_devices.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(fault_devices PROPERTIES LABELS "integration" TIMEOUT 120)
add_test(NAME fault_config_reload
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_config_reload.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(fault_config_reload PROPERTIES LABELS "integration" TIMEOUT 120)
# The appliance's safety soak: 120 chargers through a simulated day in about ten minutes.
add_test(NAME soak_day
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/soak_day.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(soak_day PROPERTIES LABELS "soak" TIMEOUT 1200)
add_test(NAME fault_cut_resend
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_cut_resend.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(fault_cut_resend PROPERTIES LABELS "integration" TIMEOUT 120)
# Modbus TCP meters: every map against peers nobody here wrote (Debian's libmodbus, and the
# modbus-serial npm package when tests/peers/node_modules is installed), and gateway faults with
# the simulator's ground truth and the libmodbus peer.
add_test(NAME modbus_maps
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/modbus_maps.py
                 --phasewise $<TARGET_FILE:phasewise>
                 --bindir $<TARGET_FILE_DIR:modbus-test-server>)
add_test(NAME modbus_faults
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/modbus_faults.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>
                 --bindir $<TARGET_FILE_DIR:modbus-test-server>)
set_tests_properties(modbus_maps modbus_faults PROPERTIES LABELS "integration" TIMEOUT 180)
# MQTT meter feeds against Debian's mosquitto broker started by the test (plain, TLS, a wrong
# password, the broker killed and back).
add_test(NAME mqtt_meter
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/mqtt_meter.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(mqtt_meter PROPERTIES LABELS "integration" TIMEOUT 180)
# The appliance's MQTT connection (mqtt/conn.c) against mosquitto with TLS, a required client
# certificate and the dynamic security plugin: a wrong CA, a refused login, a subscription the
# ACL refuses, an unreadable certificate file, the broker restarted on the same port.
add_test(NAME mqtt_conn
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/mqtt_conn_test.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(mqtt_conn PROPERTIES LABELS "integration" TIMEOUT 60)
# OCPP 1.6J: the simulator's charge points in a mixed facility (setup, limits, a rejecting
# model, passwords, SIGKILL and restart with the simulator's ground truth).
add_test(NAME ocpp_sim
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_sim.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(ocpp_sim PROPERTIES LABELS "integration" TIMEOUT 240)
# The demo's first start fills a week of simulated history (issue 15): under 10 s (sanitizers
# slow it several-fold: 40 s there), marked, and never without --demo.
if(PW_SANITIZE)
  set(pw_backfill_max_s 40)
else()
  set(pw_backfill_max_s 10)
endif()
add_test(NAME demo_backfill
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/demo_backfill.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>
                 --max-seconds ${pw_backfill_max_s})
set_tests_properties(demo_backfill PROPERTIES LABELS "integration" TIMEOUT 180)
# OCPP 1.6J interop: 20 charge points on ocpp-rpc in strict mode (tests/peers) against phasewise
# as the central system (setup, limits within the fuse, bad frames, a flood, passwords, an unknown
# charge point, reconnects, SIGKILL and restart); skipped (77) without node or the npm peers.
add_test(NAME ocpp_interop
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_interop.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(ocpp_interop PROPERTIES LABELS "integration" TIMEOUT 240 SKIP_RETURN_CODE 77)
# Restarts while cars charge (issue 15, item 7): five restarts, SIGTERM and SIGKILL, at once and
# after the leases ran out; no charger paused by a restart, no line above its limit.
add_test(NAME fault_restart
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/fault_restart.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(fault_restart PROPERTIES LABELS "integration" TIMEOUT 150)
# Counters that tell the truth: oversized LAN and DEFA datagrams counted as "long" in /api/state
# and /metrics, and the state document's counters exactly as docs/state.md documents them.
add_test(NAME counters
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/counters_test.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(counters PROPERTIES LABELS "integration" TIMEOUT 60)
# OCPP Security Profile 2: wss:// with the appliance's own certificate and HTTP Basic; the
# simulator's charge points check the certificate.
add_test(NAME ocpp_tls
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_tls.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(ocpp_tls PROPERTIES LABELS "integration" TIMEOUT 60)
# systemd's notify protocol and the loop-fed watchdog, as packaging/phasewise.service uses them.
add_test(NAME systemd_notify
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/systemd_notify.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(systemd_notify PROPERTIES LABELS "integration" TIMEOUT 60)
# Operator commands (POST /api/command): bad bodies refused with nothing changed, a pause, a
# maximum current and a facility limit followed by the simulator's cars, the facility limit
# ending by itself, a pause kept across a restart.
add_test(NAME command
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/command_test.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(command PROPERTIES LABELS "integration" TIMEOUT 240)
# The fleet uplink: two sites report to one TLS broker with an ACL per site; the broker stopped,
# an appliance SIGKILLed meanwhile, every outbox row delivered exactly once by its id; a wrong CA.
add_test(NAME mqtt_uplink
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/mqtt_uplink.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(mqtt_uplink PROPERTIES LABELS "integration" TIMEOUT 120)
# State out, Home Assistant discovery and commands on mosquitto: retained topics matching
# /api/state, at most once a second per topic, discovery sent again on Home Assistant's
# "online", a command off refused, a pause applied, the broker stopped, the will on SIGKILL.
add_test(NAME mqtt_publish
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/mqtt_publish.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(mqtt_publish PROPERTIES LABELS "integration" TIMEOUT 120)
# Backup and restore (issue 16): backups while running (command line and API), broken and
# foreign archives refused with the data folder unchanged, a wiped folder restored, a restore
# staged through the API applied at the next start.
add_test(NAME backup
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/backup_test.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(backup PROPERTIES LABELS "integration" TIMEOUT 90)
# First start from the web UI (issue 16, item 5): an empty data folder in commissioning mode, the
# simulator's chargers discovered, a Modbus scan, the first config saved, balancing without a
# restart.
add_test(NAME first_start
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/first_start.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(first_start PROPERTIES LABELS "integration" TIMEOUT 90)
# OCPP local controller (issue 14, first part): ocpp-rpc's server as the operator's CSMS and its
# client as two charge points, strict mode both sides, phasewise between them: boot, statuses and
# a transaction reach the CSMS under its ids; its calls reach the charge point; its profile is a
# cap in the balancer, never a profile on the charger; with the CSMS away local control goes on.
add_test(NAME ocpp_local_ctl
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_local_ctl.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(ocpp_local_ctl PROPERTIES LABELS "integration" TIMEOUT 90 SKIP_RETURN_CODE 77)
# The local controller's upstream over wss://: the CSMS's certificate checked against ca_file.
add_test(NAME ocpp_upstream_tls
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_upstream_tls.py
                 --phasewise $<TARGET_FILE:phasewise>)
set_tests_properties(ocpp_upstream_tls PROPERTIES LABELS "integration" TIMEOUT 90 SKIP_RETURN_CODE 77)
# OCPP local controller's long fault run (issue 14, point 4): the simulator's charge points behind
# phasewise, ocpp-rpc's strict CSMS upstream stopped for a stretch of real time while phasewise is
# SIGKILLed and restarted; every call once, in order, under the CSMS's transaction ids, no line
# over its limit. The long form (CSMS away 5 minutes) is a soak: not in the default presets.
add_test(NAME ocpp_lc_fault
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_lc_fault.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>)
set_tests_properties(ocpp_lc_fault PROPERTIES LABELS "integration" TIMEOUT 240 SKIP_RETURN_CODE 77)
add_test(NAME ocpp_lc_fault_long
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/integration/ocpp_lc_fault.py
                 --phasewise $<TARGET_FILE:phasewise> --sim $<TARGET_FILE:phasewise-sim>
                 --mode long)
set_tests_properties(ocpp_lc_fault_long PROPERTIES LABELS "soak" TIMEOUT 720 SKIP_RETURN_CODE 77)
