#!/bin/sh
# shellcheck disable=SC2086 # $cflags and $link are word lists on purpose
# Times two versions of the balancer against each other in one process (bench/bal_pair.c): the
# same world, runs in turn, so that the machine's drift cancels within each pair. Each version is
# a git revision or a directory holding balancer sources (bal_*.c and headers). Builds both as
# RelWithDebInfo builds the balancer (-O3), renames one copy's symbols A_ and the other's B_, and
# runs SETS sets of 3,001 pairs, half with A linked first and half with B, printing each set's
# median ratio B/A and the median over the sets (below 1: B is faster). Needs gcc, binutils and
# an x86-64 machine (the TSC).
#
#   bench/bal_pair.sh a3c3943 HEAD [SETS]      # or directories: bench/bal_pair.sh /tmp/old/balancer balancer
set -eu
[ $# -ge 2 ] || { echo "usage: bench/bal_pair.sh A B [SETS]  (A, B: git revisions or balancer source directories)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
sets=${3:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cflags="-O3 -g -DNDEBUG -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -I$root/common"

# sources P SPEC: the balancer sources of SPEC in $work/P
sources() {
  mkdir -p "$work/$1"
  if [ -d "$2" ]; then
    cp "$2"/bal_*.c "$2"/*.h "$work/$1/"
  else
    git -C "$root" archive "$2" balancer | tar -x -C "$work/$1" --strip-components=1
  fi
}

# object P PREFIX: one relocatable object of $work/P's balancer with its symbols prefixed
object() {
  for f in "$work/$1"/bal_*.c; do
    gcc $cflags -I"$work/$1" -c "$f" -o "${f%.c}.o"
  done
  ld -r -o "$work/$1.o" "$work/$1"/bal_*.o
  nm -g --defined-only "$work/$1.o" | awk -v p="$2" '{print $3, p $3}' > "$work/$1.syms"
  objcopy --redefine-syms="$work/$1.syms" "$work/$1.o" "$work/$1_$2.o"
}

sources a "$1"
sources b "$2"
# The driver is built against this tree's pw_bal.h: a version whose public structs differ would
# be fed the wrong layout. Such an older one is timed with bench/bal_ab.sh, its own bal_bench.
for p in a b; do
  cmp -s "$work/$p/pw_bal.h" "$root/balancer/pw_bal.h" ||
    { echo "bal_pair.sh: $p's pw_bal.h differs from this tree's; use bench/bal_ab.sh" >&2; exit 2; }
done
object a A_
object a B_
object b A_
object b B_
link="gcc -O2 -std=c11 -D_DEFAULT_SOURCE -Dpw_bal_default_params=A_pw_bal_default_params -I$root/balancer -I$root/common -I$root/bench $root/bench/bal_pair.c $root/bench/bal_garage.c $root/common/util.c"
$link "$work/a_A_.o" "$work/b_B_.o" -lm -o "$work/pair"         # A's code as A
$link "$work/b_A_.o" "$work/a_B_.o" -lm -o "$work/pair_swapped" # B's code linked first
: > "$work/ratios"
i=0
while [ "$i" -lt "$sets" ]; do
  if [ $((i % 2)) -eq 0 ]; then
    r=$("$work/pair" 3001 | awk '{print $2}')
  else
    r=$("$work/pair_swapped" 3001 | awk '{printf "%.4f", 1 / $2}')
  fi
  echo "set $((i + 1)): B/A $r"
  echo "$r" >> "$work/ratios"
  i=$((i + 1))
done
sort -n "$work/ratios" | awk '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "B/A median of %d sets: %.4f\n", NR, m}'
