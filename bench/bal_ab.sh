#!/bin/sh
# Times two builds of bal_bench side by side: runs them in turn N times (default 15) at 1,000
# chargers, 401 allocations a run, and prints for each the median of the runs' medians and of
# their 99th percentiles. Timings on a shared machine drift; taking turns shows both the same
# drift, which a before and an after measured minutes apart do not.
#
#   bench/bal_ab.sh OLD/bin/bal_bench NEW/bin/bal_bench [N]
set -eu
[ $# -ge 2 ] || { echo "usage: bench/bal_ab.sh BAL_BENCH_A BAL_BENCH_B [N]" >&2; exit 2; }
a=$1 b=$2 n=${3:-15}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$n" ]; do
  "$a" 401 1000 | tail -1 | awk '{print "A", $3, $5}' >> "$out"
  "$b" 401 1000 | tail -1 | awk '{print "B", $3, $5}' >> "$out"
  i=$((i + 1))
done
for k in A B; do
  med=$(awk -v k=$k '$1 == k {print $2}' "$out" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  p99=$(awk -v k=$k '$1 == k {print $3}' "$out" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  echo "$k: median of medians $med us, median p99 $p99 us ($n runs)"
done
