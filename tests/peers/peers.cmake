# Test-only peers nobody here wrote (issue 12, item 6): a Modbus TCP server on Debian's libmodbus
# (modbus-test-server), and the modbus-serial npm package's server (modbus_serial_server.mjs, run
# by node from tests/peers/node_modules, installed by scripts/test.sh with npm ci).
pkg_check_modules(LIBMODBUS REQUIRED IMPORTED_TARGET libmodbus)
add_executable(modbus-test-server ${CMAKE_CURRENT_LIST_DIR}/modbus_server.c)
target_link_libraries(modbus-test-server PRIVATE PkgConfig::LIBMODBUS)
