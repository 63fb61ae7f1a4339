# OCPP 1.6J central system under 1,000 charge points (bench/ocpp_bench.c): starts the real
# `phasewise serve` on a generated facility, plays every charge point on one libuv loop and a LAN
# building meter, and prints the meter-reading-to-SetChargingProfile latency (first and last
# charge point), the appliance's loop time, RSS and CPU. Build optimised
# (-DCMAKE_BUILD_TYPE=RelWithDebInfo), then: cmake --build . --target ocpp_bench_run, or run
# bin/ocpp_bench --phasewise bin/phasewise by hand for other counts.
if(TARGET pw_ocpp AND TARGET pw_web AND TARGET pw_proto)
  add_executable(ocpp_bench ${CMAKE_CURRENT_LIST_DIR}/ocpp_bench.c)
  target_link_libraries(ocpp_bench PRIVATE pw_ocpp pw_proto pw_web pw_util PkgConfig::UV
                                           PkgConfig::JANSSON ${MATH_LIB})
  if(TARGET phasewise)
    add_custom_target(ocpp_bench_run
                      COMMAND ocpp_bench --phasewise $<TARGET_FILE:phasewise>
                      DEPENDS ocpp_bench phasewise USES_TERMINAL VERBATIM)
  endif()
endif()
