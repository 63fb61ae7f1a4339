# Storage benchmark (figures only; build with CMAKE_BUILD_TYPE=RelWithDebInfo for -O2).
if(TARGET pw_store)
  add_executable(store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.c)
  target_link_libraries(store_bench PRIVATE pw_store pw_util)
endif()
