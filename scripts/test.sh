#!/bin/sh
# Installs what is missing, then builds and runs the whole test suite twice: a normal build with
# warnings as errors, and an ASan+UBSan build, each including the browser test in headless
# Chromium (label browser). Slow soak and fuzz runs are labelled and skipped here (see
# README.md). Pass --quick to skip the sanitizer build.
set -eu
cd "$(dirname "$0")/.."
sh docker/install-deps.sh --browser
# The browser test's driver (playwright-core) from the checked-in lockfile; the npm cache is
# used first, so a machine that ran this once works offline. Without it the test is skipped.
if [ ! -d tests/browser/node_modules/playwright-core ] ||
   [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --prefer-offline --no-audit --no-fund) ||
    echo "test.sh: npm ci failed: the browser test will be skipped" >&2
fi
# The test peers of tests/peers (modbus-serial for the Modbus tests, ocpp-rpc for the OCPP
# tests), the same way; without them those tests skip what needs them, and say so.
if [ ! -d tests/peers/node_modules/modbus-serial ] || [ ! -d tests/peers/node_modules/ocpp-rpc ] ||
   [ tests/peers/package-lock.json -nt tests/peers/node_modules/.package-lock.json ]; then
  (cd tests/peers && npm ci --prefer-offline --no-audit --no-fund) ||
    echo "test.sh: npm ci failed in tests/peers: the modbus-serial and OCPP peers will be skipped" >&2
fi
jobs="$(nproc)"
presets="dev asan"
[ "${1:-}" = "--quick" ] && presets="dev"
for preset in $presets; do
  echo "== $preset build =="
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "== $preset tests =="
  ctest --preset "$preset" -j "$jobs"
done
