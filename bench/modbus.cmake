# Modbus TCP meters on the real appliance (issue 12, item 8): 50 meters behind 10 libmodbus
# gateways polled at 1 s, LAN chargers played by the script; prints CPU, loop time per poll and
# the reading-to-allocation latency p99. The gateways are the test peer modbus-test-server, built
# with the tests (defined after bench/, so it is named here, not tested for). Build optimised,
# then: cmake --build . --target modbus_bench
find_package(Python3 COMPONENTS Interpreter)
if(TARGET phasewise AND Python3_Interpreter_FOUND AND (NOT DEFINED BUILD_TESTING OR BUILD_TESTING))
  add_custom_target(modbus_bench
                    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/modbus_bench.py
                            --phasewise $<TARGET_FILE:phasewise>
                            --bindir $<TARGET_FILE_DIR:modbus-test-server>
                    DEPENDS phasewise modbus-test-server USES_TERMINAL VERBATIM)
endif()
