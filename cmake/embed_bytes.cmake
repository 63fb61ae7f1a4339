# Turns a file into a C source defining `const unsigned char SYM[]` (NUL-terminated) and
# `const size_t SYM_len`, run at build time as
# cmake -DINPUT=<file> -DOUTPUT=<file.c> -DSYM=<identifier> -P embed_bytes.cmake
foreach(var INPUT OUTPUT SYM)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_bytes.cmake: ${var} is not set")
  endif()
endforeach()
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp" "/* Generated from ${name} by cmake/embed_bytes.cmake; do not edit. */
#include <stddef.h>

const unsigned char ${SYM}[] = {
    ${bytes}0x00
};
const size_t ${SYM}_len = ${size};
")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
