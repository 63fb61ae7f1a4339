# Modbus codec, register maps and SunSpec discovery (modbus/): framing vectors, every map against
# the maker's register table and in a round trip, discovery on a simulated register space.
pw_unit_test(modbus_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/modbus_test.c LIBS pw_modbus ${MATH_LIB})
