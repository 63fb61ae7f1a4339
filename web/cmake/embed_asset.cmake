# Turns one dashboard asset into a C source file holding its bytes, run at build time as
# cmake -DASSET_IN=<file> -DASSET_OUT=<file.c> -DASSET_NAME=<file name>
# -DASSET_SYM=<C identifier> -P embed_asset.cmake
# so the appliance serves its UI from the binary and never needs files beside it.
foreach(var ASSET_IN ASSET_OUT ASSET_NAME ASSET_SYM)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_asset.cmake: ${var} is not set")
  endif()
endforeach()

get_filename_component(ext "${ASSET_NAME}" LAST_EXT)
string(TOLOWER "${ext}" ext)
# (An if-chain, not a CMake list: the values contain semicolons.)
set(utf8 "charset=utf-8")
if(ext STREQUAL ".html")
  set(content_type "text/html; ${utf8}")
elseif(ext STREQUAL ".js")
  set(content_type "text/javascript; ${utf8}")
elseif(ext STREQUAL ".css")
  set(content_type "text/css; ${utf8}")
elseif(ext STREQUAL ".svg")
  set(content_type "image/svg+xml")
elseif(ext STREQUAL ".png")
  set(content_type "image/png")
elseif(ext STREQUAL ".ico")
  set(content_type "image/x-icon")
elseif(ext STREQUAL ".json")
  set(content_type "application/json")
elseif(ext STREQUAL ".webmanifest")
  set(content_type "application/manifest+json")
else()
  message(FATAL_ERROR "embed_asset.cmake: no content type known for '${ASSET_NAME}'; add it")
endif()

file(READ "${ASSET_IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
file(SHA256 "${ASSET_IN}" digest)
string(SUBSTRING "${digest}" 0 16 etag)

# 16 bytes per line keeps the generated file readable in a debugger.
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REPEAT "0x..," 16 line_of_16)
string(REGEX REPLACE "(${line_of_16})" "\\1\n    " bytes "${bytes}")
if(size EQUAL 0)
  set(bytes "0")
endif()

file(WRITE "${ASSET_OUT}.tmp" "/* Generated from ${ASSET_NAME} by web/cmake/embed_asset.cmake; do not edit. */
#include \"web_assets.h\"

static const unsigned char data[] = {
    ${bytes}
};

const pw_web_asset pw_web__asset_${ASSET_SYM} = {
    \"/${ASSET_NAME}\", \"${content_type}\", \"\\\"${etag}\\\"\", data, ${size},
};
")
file(COPY_FILE "${ASSET_OUT}.tmp" "${ASSET_OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${ASSET_OUT}.tmp")
