# Storage tests (included from tests/CMakeLists.txt when pw_store exists).
add_library(pw_store_testutil STATIC ${CMAKE_CURRENT_LIST_DIR}/store_testutil.c)
target_include_directories(pw_store_testutil PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(pw_store_testutil PUBLIC PkgConfig::SQLITE)

pw_unit_test(store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_test.c
             LIBS pw_store pw_store_testutil)

pw_unit_test(store_history_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_history_test.c
             LIBS pw_store pw_store_testutil)

# Crash test: a helper writer killed with SIGKILL in a loop; a short run by default, a long one
# under the soak label.
add_executable(store_crash_writer ${CMAKE_CURRENT_LIST_DIR}/store_crash_writer.c)
target_link_libraries(store_crash_writer PRIVATE pw_store)
pw_unit_test(store_crash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_crash_test.c
             LIBS pw_store pw_store_testutil)
target_compile_definitions(store_crash_test PRIVATE
                           STORE_CRASH_WRITER="$<TARGET_FILE:store_crash_writer>")
add_dependencies(store_crash_test store_crash_writer)
add_test(NAME store_crash_soak COMMAND store_crash_test 400)
set_tests_properties(store_crash_soak PROPERTIES LABELS "soak" TIMEOUT 1200)

# Storage faults come from a SQLite VFS (store_fault_vfs.c), shared with history_test.
pw_unit_test(store_fault_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_fault_test.c
             ${CMAKE_CURRENT_LIST_DIR}/store_fault_vfs.c LIBS pw_store pw_store_testutil)

# The fleet uplink's outbox (storage/outbox.c).
pw_unit_test(outbox_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/outbox_test.c
             LIBS pw_store pw_store_testutil)

# The OCPP local controller's upstream queue (storage/ocppq.c).
pw_unit_test(ocppq_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ocppq_test.c
             LIBS pw_store pw_store_testutil)

# The local controller's keeper (transport/ocpp_keep.c) on a real loop and database.
pw_unit_test(ocpp_keep_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/ocpp_keep_test.c
             LIBS pw_transport pw_store pw_store_testutil)
