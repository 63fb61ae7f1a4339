# Cross-build for arm64 with Debian's toolchain (crossbuild-essential-arm64) and the arm64
# libraries installed beside the amd64 ones through multiarch (docker/install-deps.sh --arm64).
# Test programs run under qemu-aarch64-static with those libraries as its root (-L /: the arm64
# loader is /lib/ld-linux-aarch64.so.1), so binfmt_misc is not needed.
#
#   cmake --preset arm64 && cmake --build --preset arm64 && ctest --preset arm64
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /)

# Debian's libwebsockets-dev is not multiarch-installable: its lws_config.h differs per
# architecture only in LWS_INSTALL_LIBDIR, where the event-lib plugins are (web.c checks the
# libuv one there). So the amd64 headers serve both, with an arm64 lws_config.h put first, and
# the arm64 link name and a pkg-config file for it are made here.
# One fixed place (try_compile runs this file again with other binary folders).
get_filename_component(_shim ${CMAKE_CURRENT_LIST_DIR}/../build/arm64-shim ABSOLUTE)
file(MAKE_DIRECTORY ${_shim}/lib ${_shim}/pkgconfig ${_shim}/include)
file(READ /usr/include/lws_config.h _lws_config)
string(REGEX REPLACE "/usr/lib/[a-z0-9_]+-linux-gnu" "/usr/lib/aarch64-linux-gnu" _lws_config
                     "${_lws_config}")
file(WRITE ${_shim}/include/lws_config.h "${_lws_config}")
# libwebsockets.h includes "lws_config.h" with quotes, which looks beside itself first.
file(COPY /usr/include/libwebsockets.h DESTINATION ${_shim}/include)
# -I, so it comes before the -isystem /usr/include other packages' pkg-config files add.
set(CMAKE_C_FLAGS_INIT "-I${_shim}/include")
file(CREATE_LINK /usr/lib/aarch64-linux-gnu/libwebsockets.so.17 ${_shim}/lib/libwebsockets.so
     SYMBOLIC)
file(WRITE ${_shim}/pkgconfig/libwebsockets.pc
     "Name: libwebsockets\nDescription: libwebsockets (arm64 via multiarch)\nVersion: 4.1.6\n"
     "Libs: -L${_shim}/lib -lwebsockets\nCflags: -I/usr/include\n")
set(ENV{PKG_CONFIG_LIBDIR}
    "${_shim}/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
