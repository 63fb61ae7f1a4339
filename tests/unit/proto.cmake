# Protocol codec tests (included from tests/CMakeLists.txt when pw_proto exists).
add_library(pw_proto_vectors STATIC ${CMAKE_CURRENT_LIST_DIR}/proto_vectors.c)
target_include_directories(pw_proto_vectors PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(pw_proto_vectors PUBLIC pw_proto)

pw_unit_test(proto_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/proto_test.c
             LIBS pw_proto_vectors pw_proto ${MBEDCRYPTO_LIB})
target_compile_definitions(proto_test PRIVATE PW_SOURCE_DIR="${CMAKE_CURRENT_LIST_DIR}/../..")

# Prints the vectors for PROTOCOL.md; not a test.
add_executable(proto_vectors_print ${CMAKE_CURRENT_LIST_DIR}/proto_vectors_print.c)
target_link_libraries(proto_vectors_print PRIVATE pw_proto_vectors)

pw_unit_test(keyfile_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/keyfile_test.c LIBS pw_keyfile)
