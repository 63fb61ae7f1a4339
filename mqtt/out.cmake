# State out, the pure half (no sockets, no clock): topics from the state document, Home
# Assistant discovery, the change table, and the parser of commands. Unit-tested
# (tests/unit/mqtt_out.cmake) and fuzzed (tests/fuzz/fuzz_mqtt_command.c) on its own; the shell
# is server/mqtt_publish.c. command.h (server/) only names the command struct it fills.
add_library(pw_mqtt_out STATIC ${CMAKE_CURRENT_LIST_DIR}/out_table.c
                               ${CMAKE_CURRENT_LIST_DIR}/state_topics.c
                               ${CMAKE_CURRENT_LIST_DIR}/ha.c ${CMAKE_CURRENT_LIST_DIR}/command.c)
target_include_directories(pw_mqtt_out PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                                              ${PROJECT_SOURCE_DIR}/server)
target_link_libraries(pw_mqtt_out PUBLIC pw_cfg pw_bal pw_util PkgConfig::JANSSON ${MATH_LIB})
