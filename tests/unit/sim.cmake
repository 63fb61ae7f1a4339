# Unit tests of the multicast socket library (net/) and the facility simulator (sim/: the model,
# its meters as Modbus register images and MQTT messages, and its OCPP charge points).
pw_unit_test(net_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/net_test.c LIBS pw_net)
pw_unit_test(sim_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/sim_test.c LIBS pw_simmodel)
pw_unit_test(sim_meter_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/sim_meter_test.c
             LIBS pw_simmeter)
# The simulated OCPP charge point: profile stacking, quirks, the conversation in fake time.
pw_unit_test(sim_ocpp_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/sim_ocpp_test.c
             LIBS pw_simocpp)
pw_unit_test(dayrun_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/dayrun_test.c
             LIBS pw_dayrun pw_cfg)
target_compile_definitions(dayrun_test PRIVATE PW_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
# A simulated week under phasewise with realistic status timing, 1 s and 10 s meters: --check
# fails if any line stays above its limit beyond the reaction window. Slow: labelled soak.
if(TARGET phasewise-dayrun)
  foreach(meter_s 1 10)
    add_test(NAME dayrun_week_meter${meter_s}s
             COMMAND phasewise-dayrun --config ${PROJECT_SOURCE_DIR}/config/demo.json --days 7
                     --meter-interval ${meter_s} --allocator phasewise --check)
    set_tests_properties(dayrun_week_meter${meter_s}s PROPERTIES LABELS "soak" TIMEOUT 900)
  endforeach()
endif()
