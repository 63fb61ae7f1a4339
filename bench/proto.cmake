# Protocol benchmark: decode+verify throughput and bytes per charger per day (the send decisions
# are the control core's, pw_ctl). Figures only; build with CMAKE_BUILD_TYPE=RelWithDebInfo (-O2)
# or Release.
if(TARGET pw_proto)
  add_executable(proto_bench ${CMAKE_CURRENT_LIST_DIR}/proto_bench.c)
  target_link_libraries(proto_bench PRIVATE pw_proto pw_ctl ${MATH_LIB})
endif()
