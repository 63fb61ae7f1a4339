# Balancer unit tests: hand-computed rules (oneshot), dynamic rules and the timing of meters and
# statuses in fake time, and property tests over random facilities (a larger run is labelled
# soak).
add_library(bal_fx STATIC unit/bal_fx.c)
target_link_libraries(bal_fx PUBLIC pw_bal PkgConfig::CMOCKA pw_util)
pw_unit_test(bal_test SOURCES unit/bal_test.c LIBS bal_fx ${MATH_LIB})
pw_unit_test(bal_dyn_test SOURCES unit/bal_dyn_test.c LIBS bal_fx)
pw_unit_test(bal_timing_test SOURCES unit/bal_timing_test.c LIBS bal_fx)
# Operator overrides: a charger's cap and pause, a changed priority, a node's lower limit.
pw_unit_test(bal_override_test SOURCES unit/bal_override_test.c LIBS bal_fx ${MATH_LIB})
pw_unit_test(bal_prop_test SOURCES unit/bal_prop_test.c LIBS pw_bal ${MATH_LIB})
add_test(NAME bal_prop_soak COMMAND bal_prop_test --count 200000)
set_tests_properties(bal_prop_soak PROPERTIES LABELS "soak" TIMEOUT 1800)
# The what-if planner (server/plan.c) with the shipped examples; needs the config module.
if(TARGET pw_cfg)
  pw_unit_test(bal_plan_test SOURCES unit/bal_plan_test.c ${PROJECT_SOURCE_DIR}/server/plan.c
               LIBS pw_cfg pw_bal PkgConfig::JANSSON ${MATH_LIB})
  target_include_directories(bal_plan_test PRIVATE ${PROJECT_SOURCE_DIR}/server)
  target_compile_definitions(bal_plan_test PRIVATE PW_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
