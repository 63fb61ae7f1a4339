#!/bin/sh
# Installs the freshly built amd64 package into a clean Debian 12 root and runs it there as the
# service would: the package's dependencies come from Debian's archive through apt, its
# postinst makes the user and folders, then the unit's ExecStart runs as that user (with the
# demo facility on free loopback ports as config) until the dashboard answers
# and the history database has its first rows. Then a backup round trip: `phasewise backup`
# while it runs, stop, /var/lib/phasewise wiped, `phasewise restore`, start: the same key and
# history. Not part of the default test command (it needs debootstrap and Debian's archive, and
# takes a few minutes the first time).
#
# --upgrade-from COMMIT (default 638bd9c, database schema 5) first installs the packages built
# from that earlier commit, runs them with the demo facility and the simulator for ~20 s so the
# history has samples, sessions and events, stops, installs the new packages over them with apt
# and starts again: config.json and facility.key unchanged byte for byte, no history row lost,
# the database migrated to this tree's schema, and the new binary serves; then the same backup
# round trip on the upgraded appliance.
#
#   scripts/install-check.sh [--keep-root] [--upgrade-from [COMMIT]]
# The clean root is cached in build/install-root/base (debootstrap once); each run copies it.
# The earlier commit's tree is exported to build/upgrade-src/COMMIT and built in build/ too.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
keep=0
upgrade=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-root) keep=1; shift ;;
    --upgrade-from)
      case "${2:-}" in ""|-*) upgrade=638bd9c; shift ;; *) upgrade="$2"; shift 2 ;; esac ;;
    *) echo "usage: $0 [--keep-root] [--upgrade-from [COMMIT]]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install-check: needs root (debootstrap, chroot)" >&2; exit 1; }
sh docker/install-deps.sh --package
base=build/install-root/base
root=build/install-root/run
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}

if [ ! -f "$base/.complete" ]; then
  echo "install-check: debootstrap bookworm from $mirror (once)"
  rm -rf "$base"
  debootstrap --variant=minbase bookworm "$base" "$mirror" >build/install-root.log 2>&1 ||
    { tail -n 20 build/install-root.log >&2; exit 1; }
  touch "$base/.complete"
fi

out=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  for m in proc dev; do umount "$root/$m" 2>/dev/null || true; done
  rm -rf "$out"
  [ "$keep" = 1 ] || rm -rf "$root"
}
trap cleanup EXIT

fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
db="$root/var/lib/phasewise/phasewise.db"
sql() { sqlite3 "${2:-$db}" "$1" 2>/dev/null || echo 0; }
# Rows of the history (of database $1, default the root's): events, sessions and limit changes
# (kept for months and more), and the full-resolution samples from cutoff $2 (Unix ms) on
# (pending ones and those sealed into blocks: a block counts whole when it ends after
# the cutoff, so sealing never lowers the count, and retention never reaches that far back).
rows() {
  sql "select (select count(*) from event) || ' ' || (select count(*) from session) || ' ' || ((select count(*) from tail where tier = 0 and ts >= ${2:-0}) + (select coalesce(sum(n), 0) from block where tier = 0 and t1 >= ${2:-0})) || ' ' || (select count(*) from limit_change)" "${1:-}"
}
# The cutoff for rows: a day before the newest sample of database $1.
cutoff() { sql "select max(coalesce((select max(ts) from tail), 0), coalesce((select max(t1) from block), 0)) - 86400000" "${1:-}"; }
# Every count of $1 at least the one at the same place in $2.
not_lower() { python3 -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); sys.exit(not (len(a) == len(b) and all(int(x) >= int(y) for x, y in zip(a, b))))" "$1" "$2"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# apt_install DEB...: into the root, dependencies from Debian's archive.
apt_install() {
  names=""
  for deb in "$@"; do cp "$deb" "$root/tmp/"; names="$names /tmp/$(basename "$deb")"; done
  echo "install-check: apt-get install$names"
  chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$names" \
    >"$out/apt.log" 2>&1 || { tail -n 30 "$out/apt.log" >&2; exit 1; }
}

# serve_start [ARGS...]: the unit's own command line as phasewise, a free loopback port for the
# web UI; waits until the dashboard answers (answered=1) or 20 s pass.
serve_start() {
  exec_start=$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/phasewise.service")
  port=$(free_port)
  echo "install-check: running '$exec_start --http 127.0.0.1:$port $*' as phasewise"
  # shellcheck disable=SC2086
  chroot --userspec=phasewise:phasewise "$root" $exec_start --http "127.0.0.1:$port" "$@" \
    >>"$out/serve.log" 2>&1 &
  pid=$!
  answered=0
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/api/health', timeout=1).status == 200 else 1)" 2>/dev/null; then
      answered=1; break
    fi
    sleep 0.2
  done
}

serve_stop() {
  kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?; pid=""
}

new_root() {
  rm -rf "$root"
  cp -a "$base" "$root"
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

# The demo facility from tree $1 on this run's own ports (OCPP, Modbus meter, LAN group port),
# loopback only, as the appliance's config: the demo's fixed ports may be taken by a demo or a
# test running beside this check.
write_config() {
  python3 - "$1" "$root/etc/phasewise/config.json" <<'EOF'
import json, socket, sys
sys.path.insert(0, "tests/integration")
import pwtest
cfg = pwtest.test_config(pwtest.free_tcp_port(), pwtest.free_udp_port(),
                         base=sys.argv[1] + "/config/demo.json", ocpp=True)
with open(sys.argv[2], "w") as f:
    json.dump(cfg, f, indent=1)
EOF
  chmod 0640 "$root/etc/phasewise/config.json"
  chroot "$root" chown phasewise:phasewise /etc/phasewise/config.json
}

new_debs=$(packaging/build-deb.sh --arch amd64 --out "$out/new")
new_deb=$(echo "$new_debs" | grep '/phasewise_')
new_sim=$(echo "$new_debs" | grep '/phasewise-sim_')
new_root

if [ -n "$upgrade" ]; then
  # ---- the earlier package, filled with history, then the new one over it ----
  commit=$(git rev-parse --verify --short "$upgrade^{commit}")
  old_tree="$src/build/upgrade-src/$commit"
  if [ ! -f "$old_tree/CMakeLists.txt" ]; then
    rm -rf "$old_tree"; mkdir -p "$old_tree"
    git archive "$commit" | tar -x -C "$old_tree"
  fi
  old_version="$(sed -n 's/^project(phasewise VERSION \([0-9.]*\).*/\1/p' "$old_tree/CMakeLists.txt")+r$(git rev-list --count "$commit")"
  echo "install-check: building the packages of $commit ($old_version)"
  old_debs=$(packaging/build-deb.sh --arch amd64 --out "$out/old" --src "$old_tree" --version "$old_version")
  apt_install $(echo "$old_debs" | grep '/phasewise_') $(echo "$old_debs" | grep '/phasewise-sim_')
  check "the earlier package $old_version is installed" \
    "[ \"\$(chroot '$root' dpkg-query -W -f '\${Version}' phasewise)\" = '$old_version' ]"
  write_config "$old_tree"
  serve_start --demo
  check "the earlier appliance serves its demo" "[ $answered = 1 ]"
  sleep 20 # the simulated facility charges: samples, sessions, events
  serve_stop
  check "the earlier appliance stopped cleanly (exit 0)" "[ $rc = 0 ]"
  since=$(cutoff)
  before_rows=$(rows "" "$since")
  before_schema=$(sql 'pragma user_version')
  cfg_sum=$(sha "$root/etc/phasewise/config.json")
  key_sum=$(sha "$root/var/lib/phasewise/facility.key")
  echo "install-check: history of $old_version: events, sessions, samples of its last day, limit changes = $before_rows; schema $before_schema"
  check "the earlier appliance wrote history (samples, sessions, events)" \
    "not_lower '$before_rows' '3 1 1 0'"

  apt_install "$new_deb" "$new_sim"
  new_version=$(dpkg-deb -f "$new_deb" Version)
  check "apt upgraded phasewise to $new_version" \
    "[ \"\$(chroot '$root' dpkg-query -W -f '\${Version}' phasewise)\" = '$new_version' ]"
  serve_start
  check "the upgraded appliance serves" "[ $answered = 1 ]"
  sleep 3
  serve_stop
  check "the upgraded appliance stopped cleanly (exit 0)" "[ $rc = 0 ]"
  latest=$(sed -n 's/.*steps\[\] = {\(.*\)};/\1/p' storage/schema.c | tr ',' '\n' | grep -c step)
  after_rows=$(rows "" "$since")
  echo "install-check: history after the upgrade: $after_rows, schema $(sql 'pragma user_version')"
  check "config.json unchanged byte for byte" "[ \"\$(sha '$root/etc/phasewise/config.json')\" = '$cfg_sum' ]"
  check "facility.key unchanged byte for byte" "[ \"\$(sha '$root/var/lib/phasewise/facility.key')\" = '$key_sum' ]"
  check "no history row lost ($before_rows -> $after_rows)" "not_lower '$after_rows' '$before_rows'"
  check "the database migrated from schema $before_schema to $latest, meta table kept" \
    "[ \"\$(sql 'pragma user_version')\" = '$latest' ] && [ \"\$(sql \"select count(*) from sqlite_master where name = 'meta'\")\" = 1 ]"
  check "the upgraded appliance logged its start" \
    "[ \"\$(sql \"select count(*) from event where kind = 'start' and detail like 'phasewise %'\")\" -ge 2 ]"
else
  # ---- a clean install ----
  apt_install "$new_deb"
  check "user phasewise made by postinst" "chroot '$root' getent passwd phasewise >/dev/null"
  check "/etc/phasewise and /var/lib/phasewise owned by phasewise, mode 0750" \
    "[ \"\$(chroot '$root' stat -c '%U %a' /etc/phasewise /var/lib/phasewise | sort -u)\" = 'phasewise 750' ]"
  write_config "$src"
  serve_start
  check "the dashboard answers (GET /api/health 200)" "[ $answered = 1 ]"
  check "the dashboard page is served" "python3 -c \"import urllib.request; assert b'<html' in urllib.request.urlopen('http://127.0.0.1:$port/', timeout=2).read().lower()\""
  sleep 3 # a tick's history rows
  serve_stop
  check "stopped cleanly on SIGTERM (exit 0)" "[ $rc = 0 ]"
  check "the database is written ($(sql 'select count(*) from event') events)" \
    "[ \"\$(sql \"select count(*) from event where kind = 'start'\")\" -ge 1 ]"
  check "the database belongs to phasewise" \
    "[ \"\$(chroot '$root' stat -c %U /var/lib/phasewise/phasewise.db)\" = phasewise ]"
fi

# ---- backup while running, wipe, restore, start ----
serve_start
sleep 2
backup_log=$(chroot "$root" phasewise backup --config /etc/phasewise/config.json --data /var/lib/phasewise /root/phasewise-backup.tar 2>&1) && brc=0 || brc=$?
echo "install-check: $backup_log"
check "phasewise backup while the appliance runs (exit 0)" "[ $brc = 0 ]"
check "the archive is mode 0600 and tar lists it, manifest first" \
  "[ \"\$(stat -c %a '$root/root/phasewise-backup.tar')\" = 600 ] && [ \"\$(tar tf '$root/root/phasewise-backup.tar' | head -n 1)\" = manifest.json ]"
refused=$(chroot "$root" phasewise restore --config /etc/phasewise/config.json --data /var/lib/phasewise /root/phasewise-backup.tar 2>&1) && rrc=0 || rrc=$?
check "restore refused while the appliance runs" "[ $rrc = 1 ] && printf '%s' \"\$refused\" | grep -q 'stop it first'"
serve_stop
check "stopped cleanly after the backup (exit 0)" "[ $rc = 0 ]"
key_sum=$(sha "$root/var/lib/phasewise/facility.key")
tar xOf "$root/root/phasewise-backup.tar" phasewise.db >"$out/backup.db"
since=$(cutoff "$out/backup.db")
backup_rows=$(rows "$out/backup.db" "$since")
rm -rf "$root/var/lib/phasewise/"* "$root/var/lib/phasewise/".[!.]* 2>/dev/null || true
check "/var/lib/phasewise wiped" "[ -z \"\$(ls -A '$root/var/lib/phasewise')\" ]"
restore_log=$(chroot "$root" phasewise restore --config /etc/phasewise/config.json --data /var/lib/phasewise /root/phasewise-backup.tar 2>&1) && rrc=0 || rrc=$?
echo "install-check: $restore_log" | head -n 2
check "phasewise restore into the wiped folder (exit 0)" "[ $rrc = 0 ]"
check "restored files belong to phasewise" \
  "[ \"\$(chroot '$root' stat -c %U /var/lib/phasewise/facility.key /var/lib/phasewise/phasewise.db /etc/phasewise/config.json | sort -u)\" = phasewise ]"
serve_start
check "the restored appliance serves" "[ $answered = 1 ]"
sleep 2
serve_stop
check "the restored appliance stopped cleanly (exit 0)" "[ $rc = 0 ]"
check "the same facility key after the restore" "[ \"\$(sha '$root/var/lib/phasewise/facility.key')\" = '$key_sum' ]"
restored_rows=$(rows "" "$since")
check "the history is back ($backup_rows -> $restored_rows)" "not_lower '$restored_rows' '$backup_rows'"

[ $fail = 0 ] || { echo "--- serve.log"; tail -n 30 "$out/serve.log"; }
exit $fail
