# Storage tests (included from tests/CMakeLists.txt when pw_store exists).
add_library(pw_store_testutil STATIC ${CMAKE_CURRENT_LIST_DIR}/store_testutil.c)
target_include_directories(pw_store_testutil PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(pw_store_testutil PUBLIC PkgConfig::SQLITE)

pw_unit_test(store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_test.c
             LIBS pw_store pw_store_testutil)

pw_unit_test(store_history_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_history_test.c
             LIBS pw_store pw_store_testutil)
