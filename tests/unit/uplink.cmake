# The fleet uplink's pure part (server/uplink_agg.c): its 15-minute aggregates in fake time.
pw_unit_test(uplink_agg_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/uplink_agg_test.c
             ${PROJECT_SOURCE_DIR}/server/uplink_agg.c LIBS PkgConfig::JANSSON ${MATH_LIB})
target_include_directories(uplink_agg_test PRIVATE ${PROJECT_SOURCE_DIR}/server)
