# Balancer benchmark: prints allocation times and memory; build with -O2 (RelWithDebInfo).
add_executable(bal_bench ${CMAKE_CURRENT_SOURCE_DIR}/bal_bench.c)
target_link_libraries(bal_bench PRIVATE pw_bal pw_util ${MATH_LIB})
