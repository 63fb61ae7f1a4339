#!/bin/sh
# Checks docker/Dockerfile without a Docker engine: builds it with buildah from a Debian 12 base
# made by debootstrap, then runs the image's `phasewise --version` and its demo for a few seconds.
#
#   sudo sh docker/check.sh
#
# Needs root (debootstrap, buildah's chroot isolation, a private network namespace for the demo)
# and the Debian mirror apt is configured with. Installs buildah, debootstrap, iproute2 and
# sqlite3 if missing. The base image is made once and reused; the built image stays as
# phasewise:check.
# Exits 0 when every step passed, else non-zero with the step that failed.
set -eu

IMAGE=phasewise:check
DEMO_PORT=8080 # the image's port, which its HEALTHCHECK probes; free in the private namespace
DEMO_DATA=/tmp/phasewise-demo # inside the container
DEMO_MIN_SECONDS=6            # long enough for several control ticks and history writes
DEMO_MAX_SECONDS=20           # upper bound for every simulated charger to come online

step="start"
reported=""
containers=""
rootfs=""
t0=$(date +%s)
ts=$t0

begin() {
  now=$(date +%s)
  [ "$step" = start ] || echo "check: '$step' done in $((now - ts)) s" >&2
  step=$1
  ts=$now
  echo "check: $step" >&2
}

fail() {
  echo "check: FAILED in step '$step': $*" >&2
  reported=1
  exit 1
}

cleanup() {
  rc=$?
  for c in $containers; do
    buildah rm "$c" >/dev/null 2>&1 || echo "check: could not remove container $c" >&2
  done
  if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
    # Never delete through a mount debootstrap may have left behind.
    if grep -q " $rootfs/" /proc/mounts; then
      echo "check: $rootfs still has mounts; left in place" >&2
    else
      rm -rf "$rootfs"
    fi
  fi
  if [ "$rc" -ne 0 ]; then
    [ -n "$reported" ] || echo "check: FAILED in step '$step' (exit status $rc)" >&2
  else
    echo "check: all steps passed in $(($(date +%s) - t0)) s" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints the first mirror URI apt uses for the given suite (one-line and deb822 sources alike).
apt_mirror() {
  suite=$1
  srcdir=/etc/apt/sources.list.d
  for f in /etc/apt/sources.list "$srcdir"/*.list "$srcdir"/*.sources; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources)
        # deb822: stanzas separated by blank lines; take URIs of a "deb" stanza with the suite.
        awk -v suite="$suite" '
          function flush() {
            if (deb && uri != "" && has) { print uri; exit }
            deb = has = 0; uri = ""
          }
          /^[ \t]*$/ { flush(); next }
          /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
          /^URIs:/ { uri = $2 }
          /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
          /^Enabled:[ \t]*no/ { deb = 0 }
          END { flush() }' "$f"
        ;;
      *)
        # "deb [options] URI suite components"
        awk -v suite="$suite" '
          { sub(/\[[^]]*\]/, "") } $1 == "deb" && $3 == suite { print $2; exit }' "$f"
        ;;
    esac
  done | head -n 1
}

# --- 1. prerequisites -------------------------------------------------------------------------
begin "prerequisites"
[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap and buildah need it): sudo sh $0"
cd "$(dirname "$0")/.."
{ [ -f docker/Dockerfile ] && [ -f CMakeLists.txt ]; } || fail "cannot find the repository root"
missing=""
command -v buildah >/dev/null 2>&1 || missing="$missing buildah"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
command -v sqlite3 >/dev/null 2>&1 || missing="$missing sqlite3"
if [ -n "$missing" ]; then
  echo "check: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update"
  # shellcheck disable=SC2086
  apt-get install -y -qq $missing >/dev/null || fail "apt-get install$missing"
fi
base=$(awk 'toupper($1) == "FROM" { print $2; exit }' docker/Dockerfile)
[ -n "$base" ] || fail "no FROM line in docker/Dockerfile"
case "$base" in
  */*) qualified=$base ;;
  *) qualified=docker.io/library/$base ;; # what docker itself makes of a short official name
esac
version=$(sed -n 's/^project(phasewise VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || fail "cannot read the project version from CMakeLists.txt"

# --- 2. the Debian 12 base image ---------------------------------------------------------------
begin "base image $base"
if buildah inspect --type image "$qualified" >/dev/null 2>&1; then
  echo "check: $qualified exists; not rebuilding it (buildah rmi $qualified to force)" >&2
else
  mirror=$(apt_mirror bookworm)
  security=$(apt_mirror bookworm-security)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  echo "check: debootstrap from $mirror" >&2
  rootfs=$(mktemp -d /var/tmp/phasewise-base.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; fail "debootstrap (log: $rootfs.log)"; }
  rm -f "$rootfs.log"
  grep -q " $rootfs/" /proc/mounts && fail "debootstrap left mounts under $rootfs"
  # Shape it like the official image: apt sources in deb822 with updates and security, no
  # downloaded packages or package lists, and an empty /dev (the runtime provides one).
  rm -f "$rootfs/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$rootfs/etc/apt/sources.list.d/debian.sources"
  rm -rf "${rootfs:?}"/var/cache/apt/archives/*.deb "${rootfs:?}"/var/cache/apt/*.bin \
    "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/dev/* "${rootfs:?}"/var/log/bootstrap.log
  ctr=$(buildah from scratch) || fail "buildah from scratch"
  containers="$containers $ctr"
  mnt=$(buildah mount "$ctr") || fail "buildah mount"
  tar -C "$rootfs" --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf - ||
    fail "copying the root filesystem into the image"
  buildah umount "$ctr" >/dev/null
  buildah config --cmd bash \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr" ||
    fail "buildah config"
  buildah commit --quiet "$ctr" "$qualified" >/dev/null || fail "buildah commit $qualified"
  # Also the localhost/ name buildah gives short names, so FROM resolves without a registry.
  [ "$qualified" = "$base" ] || buildah tag "$qualified" "localhost/$base" || fail "buildah tag"
  buildah rm "$ctr" >/dev/null
  containers=""
  rm -rf "$rootfs"
  rootfs=""
fi

# --- 3. build the Dockerfile -------------------------------------------------------------------
begin "buildah bud -f docker/Dockerfile -t $IMAGE"
# --pull=never: the base must be the debootstrapped one, never a registry's. --format docker keeps
# the HEALTHCHECK (OCI has no field for it). --layers caches the dependency layers between runs;
# --force-rm removes the build's working containers also when a step fails.
buildah bud --isolation=chroot --pull=never --format docker --layers --force-rm \
  -f docker/Dockerfile -t "$IMAGE" . || fail "buildah bud"

# --- 4. image metadata ---------------------------------------------------------------------------
begin "image metadata"
fmt='{{.Docker.Config.User}}|{{.Docker.Config.ExposedPorts}}|{{.Docker.Config.Volumes}}'
meta=$(buildah inspect --type image --format "$fmt|{{.Docker.Config.Healthcheck.Test}}" "$IMAGE") ||
  fail "buildah inspect $IMAGE"
printf 'check: user|ports|volumes|healthcheck = %s\n' "$meta" >&2
case "$meta" in
  phasewise\|*8080/tcp*\|*/var/lib/phasewise*\|*/api/health*) ;;
  *) fail "expected user phasewise, port 8080/tcp, volume /var/lib/phasewise, a health check" ;;
esac
# The demo runs the image's own HEALTHCHECK command, which must be CMD ["bash", "-c", SCRIPT].
test_arg() {
  buildah inspect --type image --format "{{index .Docker.Config.Healthcheck.Test $1}}" "$IMAGE"
}
[ "$(test_arg 0) $(test_arg 1) $(test_arg 2)" = "CMD bash -c" ] ||
  fail "expected HEALTHCHECK CMD [\"bash\", \"-c\", ...] in docker/Dockerfile"
healthcheck=$(test_arg 3)

# --- 5. phasewise --version ---------------------------------------------------------------------
begin "phasewise --version in the image"
ctr=$(buildah from --pull=never "$IMAGE") || fail "buildah from $IMAGE"
containers="$containers $ctr"
out=$(buildah run --isolation=chroot "$ctr" -- phasewise --version) || fail "phasewise --version"
echo "check: $out" >&2
[ "$out" = "phasewise $version" ] || fail "expected 'phasewise $version', got '$out'"
uid=$(buildah run --isolation=chroot --user phasewise "$ctr" -- id -u) || fail "id -u"
[ "$uid" -ne 0 ] || fail "the image user must not be root"

# --- 6. the demo --------------------------------------------------------------------------------
begin "phasewise serve --demo in the image (private network namespace, loopback only)"
# Runs inside the container as the image's user: starts the demo, waits until the image's health
# check passes, every simulated charger is online in /api/state and the demo has run
# DEMO_MIN_SECONDS, stops it with SIGINT and checks what it left behind. The data stays in the
# container for step 7.
# shellcheck disable=SC2016 # expanded by the shell inside the container
demo_script='
set -u
port=$1 min=$2 limit=$3 d=$4 healthcheck=$5
rm -rf "$d" && mkdir -p "$d" || exit 1
get() { # GET $1 over HTTP/1.0 with bash alone; prints status line, headers and body
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port &&
    printf \"GET %s HTTP/1.0\\r\\n\\r\\n\" \"\$0\" >&3 && cat <&3" "$1" 2>/dev/null
}
exited() { # a zombie still answers kill -0, so read the state from /proc
  [ ! -e /proc/$pid ] || [ "$(cut -d " " -f 3 /proc/$pid/stat 2>/dev/null)" = Z ]
}
phasewise serve --demo --data "$d" --http "127.0.0.1:$port" 2>"$d/log" &
pid=$!
healthy=0 online=0 total=-1 i=0
while [ $i -lt "$limit" ] && ! exited; do
  sleep 1; i=$((i + 1))
  bash -c "$healthcheck" && healthy=1 || continue
  state=$(get /api/state)
  total=$(printf "%s" "$state" | grep -o "\"online\":\(true\|false\)" | wc -l)
  online=$(printf "%s" "$state" | grep -o "\"online\":true" | wc -l)
  [ "$total" -gt 0 ] && [ "$online" -eq "$total" ] && [ $i -ge "$min" ] && break
done
kill -INT $pid 2>/dev/null
j=0
while ! exited && [ $j -lt 10 ]; do sleep 1; j=$((j + 1)); done
exited || { echo "demo: still running 10 s after SIGINT"; kill -KILL $pid; }
wait $pid; rc=$?
echo "demo: exit status $rc after ${i} s; health $healthy; chargers online $online of $total"
echo "demo: data folder:"; ls -l "$d"
echo "demo: log (last 8 lines):"; tail -n 8 "$d/log"
# The simulator reports at exit how many allocations its chargers received from the appliance.
allocs=$(grep -o "allocations [0-9]*" "$d/log" | tail -n 1 | cut -d " " -f 2)
ok=1
[ $rc -eq 0 ] || { echo "demo: FAIL: exit status $rc, expected 0"; ok=0; }
[ $healthy -eq 1 ] || { echo "demo: FAIL: the image HEALTHCHECK never passed"; ok=0; }
[ "$total" -gt 0 ] && [ "$online" -eq "$total" ] ||
  { echo "demo: FAIL: $online of $total chargers online within $limit s"; ok=0; }
[ "${allocs:-0}" -gt 0 ] ||
  { echo "demo: FAIL: the simulator received no allocations (summary: ${allocs:-none})"; ok=0; }
grep -q "dashboard at http://127.0.0.1:$port/" "$d/log" ||
  { echo "demo: FAIL: no dashboard line"; ok=0; }
grep -q "stopped cleanly" "$d/log" || { echo "demo: FAIL: no clean stop logged"; ok=0; }
[ -s "$d/phasewise.db" ] || { echo "demo: FAIL: no database at $d/phasewise.db"; ok=0; }
[ -s "$d/facility.key" ] || { echo "demo: FAIL: no facility key"; ok=0; }
phasewise check-config "$d/config.json" || { echo "demo: FAIL: seeded config rejected"; ok=0; }
[ $ok -eq 1 ]
'
# unshare -n: the container gets a network namespace holding only its own loopback, so nothing
# in the image can reach a real interface and the demo cannot meet other loopback multicast.
unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
  buildah run --isolation=chroot --user phasewise "$ctr" -- \
  bash -c "$demo_script" demo "$DEMO_PORT" "$DEMO_MIN_SECONDS" "$DEMO_MAX_SECONDS" "$DEMO_DATA" \
  "$healthcheck" >&2 || fail "demo run (see above)"

# --- 7. the demo's database ----------------------------------------------------------------------
begin "the demo's database (host sqlite3, read-only)"
mnt=$(buildah mount "$ctr") || fail "buildah mount"
db="$mnt$DEMO_DATA/phasewise.db"
[ ! -e "$db-wal" ] || [ ! -s "$db-wal" ] || fail "WAL not checkpointed at a clean stop: $db-wal"
integrity=$(sqlite3 -readonly "$db" "PRAGMA integrity_check;") || fail "sqlite3 $db"
[ "$integrity" = ok ] || fail "PRAGMA integrity_check: $integrity"
journal=$(sqlite3 -readonly "$db" "PRAGMA journal_mode;")
[ "$journal" = wal ] || fail "journal_mode is '$journal', expected wal"
# Row counts of every table, so the check does not depend on the schema of the day.
rows=0
for t in $(sqlite3 -readonly "$db" "SELECT name FROM sqlite_master WHERE type = 'table';"); do
  n=$(sqlite3 -readonly "$db" "SELECT count(*) FROM \"$t\";") || fail "count rows of $t"
  echo "check: table $t: $n rows" >&2
  rows=$((rows + n))
done
buildah umount "$ctr" >/dev/null
[ "$rows" -gt 0 ] || fail "the demo wrote no rows"

begin "cleanup"
