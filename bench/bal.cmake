# Balancer benchmark: prints allocation times and memory; build with -O2 (RelWithDebInfo).
# --scenario reads planner scenarios, checked by the planner itself (server/plan.c).
add_executable(bal_bench ${CMAKE_CURRENT_SOURCE_DIR}/bal_bench.c ${CMAKE_CURRENT_SOURCE_DIR}/bal_garage.c)
target_link_libraries(bal_bench PRIVATE pw_server pw_bal pw_cfg pw_util PkgConfig::JANSSON
                                        ${MATH_LIB})
# Every shipped scenario is timed (few runs: it checks the path, not the speed), and must give
# the allocation `phasewise plan` gives. bench/ is configured before the top level includes CTest,
# so this folder turns testing on for its own tests.
enable_testing()
file(GLOB pw_bench_examples CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/config/examples/*.json)
foreach(path ${pw_bench_examples})
  get_filename_component(example ${path} NAME_WE)
  add_test(NAME bal_bench_scenario_${example} COMMAND bal_bench --scenario ${path} 51)
  set_tests_properties(bal_bench_scenario_${example} PROPERTIES LABELS "bench" TIMEOUT 30
                       PASS_REGULAR_EXPRESSION "median [0-9.]+ us, p99 [0-9.]+ us")
endforeach()
# Plans fingerprint: a hash of every result over many runs of varied facilities, to show that a
# change meant to make the balancer faster leaves every plan as it was (compare before/after).
add_executable(bal_fingerprint ${CMAKE_CURRENT_SOURCE_DIR}/bal_fingerprint.c
                               ${CMAKE_CURRENT_SOURCE_DIR}/bal_garage.c)
target_link_libraries(bal_fingerprint PRIVATE pw_bal pw_util ${MATH_LIB})
