#!/bin/sh
# The single list of Debian 12 packages phasewise needs. Idempotent and non-interactive: it
# installs only what is missing, and does nothing when everything is there.
#
#   docker/install-deps.sh            build + run + test (the default)
#   docker/install-deps.sh --runtime  only what the built appliance needs to run
#   docker/install-deps.sh --fuzz     also clang and its fuzzing runtime
#   docker/install-deps.sh --browser  also Chromium and Node.js for the browser tests
#   docker/install-deps.sh --package  also what building and checking the Debian packages needs
#   docker/install-deps.sh --arm64    also the arm64 cross toolchain, arm64 libraries (multiarch)
#                                     and qemu user emulation for the arm64 build and tests
set -eu

RUNTIME="libuv1 libwebsockets17 libwebsockets-evlib-uv libsqlite3-0 libmbedcrypto7 libmbedtls14
 libmbedx509-1 libjansson4 libmosquitto1 libssl3 ca-certificates"
BUILD="build-essential cmake pkg-config libuv1-dev libwebsockets-dev libwebsockets-evlib-uv
 libsqlite3-dev libmbedtls-dev libjansson-dev libmosquitto-dev libssl-dev"
TEST="libcmocka-dev python3 sqlite3 procps iproute2 libmodbus-dev mosquitto mosquitto-clients openssl"
FUZZ="clang libclang-rt-14-dev"
BROWSER="chromium nodejs"
PACKAGE="dpkg-dev file binutils systemd man-db debootstrap"
# libwebsockets-dev is not multiarch-installable: packaging/arm64-toolchain.cmake uses the amd64
# headers with the arm64 library.
ARM64="crossbuild-essential-arm64 qemu-user-static libc6:arm64 libuv1-dev:arm64
 libwebsockets17:arm64 libwebsockets-evlib-uv:arm64 libsqlite3-dev:arm64 libmbedtls-dev:arm64
 libjansson-dev:arm64 libmosquitto-dev:arm64 libssl-dev:arm64 libcmocka-dev:arm64"

case "${1:-}" in
  --runtime) want="$RUNTIME" ;;
  --fuzz) want="$BUILD $TEST $FUZZ" ;;
  # npm comes with Node.js from nodesource; Debian's own nodejs needs its npm package.
  --browser) want="$BUILD $TEST $BROWSER"
             command -v npm >/dev/null 2>&1 || want="$want npm" ;;
  --package) want="$BUILD $TEST $PACKAGE" ;;
  --arm64) want="$BUILD $TEST $PACKAGE $ARM64"
           dpkg --print-foreign-architectures | grep -qx arm64 || {
             [ "$(id -u)" = 0 ] || { echo "install-deps: need root to add arm64" >&2; exit 1; }
             dpkg --add-architecture arm64; } ;;
  ""|--all) want="$BUILD $TEST" ;;
  *) echo "usage: $0 [--runtime|--fuzz|--browser|--package|--arm64]" >&2; exit 2 ;;
esac

missing=""
for pkg in $want; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) for:$missing" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
