# Config benchmark: prints how long pw_cfg_parse takes for 100, 1,000 and 10,000 chargers; build
# with -O2 (the release preset) for real figures.
add_executable(cfg_bench ${CMAKE_CURRENT_SOURCE_DIR}/cfg_bench.c)
target_link_libraries(cfg_bench PRIVATE pw_cfg pw_util)
