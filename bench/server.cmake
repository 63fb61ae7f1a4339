# Control-loop latency and CPU of the real appliance on loopback (a Python script driving
# `phasewise serve` with signed datagrams). Build optimised, then: cmake --build . --target
# server_latency_bench, or run bench/server_latency.py by hand for other charger counts.
find_package(Python3 COMPONENTS Interpreter)
if(TARGET phasewise AND Python3_Interpreter_FOUND)
  add_custom_target(server_latency_bench
                    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/server_latency.py
                            --phasewise $<TARGET_FILE:phasewise> --chargers 100 1000
                    DEPENDS phasewise USES_TERMINAL VERBATIM)
endif()
