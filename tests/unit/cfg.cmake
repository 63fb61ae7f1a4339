pw_unit_test(cfg_test SOURCES unit/cfg_test.c LIBS pw_cfg)
target_compile_definitions(cfg_test PRIVATE PW_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
