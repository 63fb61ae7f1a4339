# Unit tests of the multicast socket library (net/) and the facility simulator (sim/).
pw_unit_test(net_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/net_test.c LIBS pw_net)
pw_unit_test(sim_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/sim_test.c LIBS pw_simmodel)
pw_unit_test(dayrun_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/dayrun_test.c
             LIBS pw_dayrun pw_cfg)
target_compile_definitions(dayrun_test PRIVATE PW_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
