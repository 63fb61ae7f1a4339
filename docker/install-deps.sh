#!/bin/sh
# The single list of Debian 12 packages phasewise needs. Idempotent and non-interactive: it
# installs only what is missing, and does nothing when everything is there.
#
#   docker/install-deps.sh            build + run + test (the default)
#   docker/install-deps.sh --runtime  only what the built appliance needs to run
#   docker/install-deps.sh --fuzz     also clang and its fuzzing runtime
#   docker/install-deps.sh --browser  also Chromium and Node.js for the browser tests
set -eu

RUNTIME="libuv1 libwebsockets17 libwebsockets-evlib-uv libsqlite3-0 libmbedcrypto7 libmbedtls14
 libmbedx509-1 libjansson4 libmosquitto1 libssl3 ca-certificates"
BUILD="build-essential cmake pkg-config libuv1-dev libwebsockets-dev libwebsockets-evlib-uv
 libsqlite3-dev libmbedtls-dev libjansson-dev libmosquitto-dev libssl-dev"
TEST="libcmocka-dev python3 sqlite3 procps iproute2 libmodbus-dev mosquitto mosquitto-clients openssl"
FUZZ="clang libclang-rt-14-dev"
BROWSER="chromium nodejs"

case "${1:-}" in
  --runtime) want="$RUNTIME" ;;
  --fuzz) want="$BUILD $TEST $FUZZ" ;;
  # npm comes with Node.js from nodesource; Debian's own nodejs needs its npm package.
  --browser) want="$BUILD $TEST $BROWSER"
             command -v npm >/dev/null 2>&1 || want="$want npm" ;;
  ""|--all) want="$BUILD $TEST" ;;
  *) echo "usage: $0 [--runtime|--fuzz|--browser]" >&2; exit 2 ;;
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
