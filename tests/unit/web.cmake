# web/: HTTP, API hand-off and WebSocket push on a real libuv loop over loopback.
find_package(Threads REQUIRED)
pw_unit_test(web_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/web_test.c LIBS pw_web Threads::Threads)
target_compile_definitions(web_test PRIVATE
  PW_WEB_ASSET_DIR="${CMAKE_CURRENT_LIST_DIR}/../../web/assets")
pw_unit_test(web_auth_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/web_auth_test.c LIBS pw_web)
# The HTTPS certificate the server makes or checks (server/tls.c).
# The server's API worker pool behind deferred answers (server/api_pool.c).
pw_unit_test(web_tls_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/web_tls_test.c LIBS pw_server)
pw_unit_test(web_pool_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/web_pool_test.c
              LIBS pw_server Threads::Threads)
# History batching (server/history.c): rows kept across failed writes reach the database at
# shutdown; write faults come from the storage tests' fault VFS.
pw_unit_test(history_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/history_test.c
             ${CMAKE_CURRENT_LIST_DIR}/store_fault_vfs.c LIBS pw_server pw_store_testutil)
# WebSocket endpoints and clients (web/ws.c) over loopback; the wss test writes a self-signed pair
# with the openssl tool and is skipped without it.
pw_unit_test(web_ws_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/web_ws_test.c
             LIBS pw_web ${MBEDCRYPTO_LIB} Threads::Threads)
# systemd's notification environment (server/sdnotify.c).
pw_unit_test(sdnotify_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/sdnotify_test.c LIBS pw_sdnotify)
