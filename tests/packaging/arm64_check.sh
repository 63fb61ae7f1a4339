#!/bin/sh
# arm64: cross-builds the tree with Debian's toolchain and arm64 libraries (multiarch), runs the
# unit tests under qemu-aarch64-static with those libraries as its root (no binfmt_misc needed),
# then builds and checks the arm64 packages (deb_check.sh arm64). ctest label "arm64"; needs
# docker/install-deps.sh --arm64.
#
# Left out under emulation, because qemu-user cannot do what they test, not because they fail on
# arm64 hardware:
#   net_test          qemu 7.2 user mode has no IP_MULTICAST_IF socket option (ENOPROTOOPT);
#   store_crash_test  it execs its writer program, which without binfmt_misc the host cannot run.
set -eu
cd "$(dirname "$0")/../.."
build=build/arm64
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$(pwd)/packaging/arm64-toolchain.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPW_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
ctest --test-dir "$build" -L unit -E '^(net_test|store_crash_test)$' -j "$(nproc)" \
  --output-on-failure --timeout 600
exec tests/packaging/deb_check.sh arm64
