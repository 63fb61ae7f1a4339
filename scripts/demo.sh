#!/bin/sh
# Installs what is missing, builds phasewise and runs the appliance with a simulated facility:
# dashboard at http://localhost:8080, history in ./data/phasewise.db, until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
sh docker/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
exec build/release/bin/phasewise serve --demo --data data "$@"
