#!/bin/sh
# Installs what is missing, then builds and runs the whole test suite twice: a normal build with
# warnings as errors, and an ASan+UBSan build. Slow soak and fuzz runs are labelled and skipped
# here (see README.md). Pass --quick to skip the sanitizer build.
set -eu
cd "$(dirname "$0")/.."
sh docker/install-deps.sh
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
