#!/bin/sh
# Runs each libFuzzer target for SECONDS seconds from the seed corpus into a scratch corpus, so
# the seeds stay as they are. Fails at the first target that finds a crash, leak or timeout and
# then keeps the scratch directory (with the reproducer) and names it.
# usage: smoke.sh SEED_DIR SECONDS TARGET...   (run from the directory holding the targets)
set -u
seeds=$1
secs=$2
shift 2
work=$(mktemp -d "${TMPDIR:-/tmp}/pw-fuzz-smoke.XXXXXX")
for t in "$@"; do
    mkdir "$work/$t"
    if ./"$t" -max_total_time="$secs" -timeout=5 -print_final_stats=1 \
        -artifact_prefix="$work/$t-" "$work/$t" "$seeds" >"$work/$t.log" 2>&1; then
        echo "$t: $(grep -E '^stat::number_of_executed_units' "$work/$t.log") in $secs s"
    else
        tail -n 40 "$work/$t.log"
        echo "$t: FAILED; reproducer and log kept in $work"
        exit 1
    fi
done
rm -rf "$work"
