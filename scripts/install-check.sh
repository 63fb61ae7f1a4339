#!/bin/sh
# Installs the freshly built amd64 package into a clean Debian 12 root and runs it there as the
# service would: the package's dependencies come from Debian's archive through apt, its
# postinst makes the user and folders, then the unit's ExecStart runs as that user (with the
# demo facility as config and the web UI on a free loopback port) until the dashboard answers
# and the history database has its first rows. Not part of the default test command (it
# needs debootstrap and Debian's archive, and takes a few minutes the first time).
#
#   scripts/install-check.sh [--keep-root]
# The clean root is cached in build/install-root/base (debootstrap once); each run copies it.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
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
  for m in proc dev; do umount "$root/$m" 2>/dev/null || true; done
  rm -rf "$out"
  [ "${keep:-}" = 1 ] || rm -rf "$root"
}
trap cleanup EXIT
keep=0; [ "${1:-}" = --keep-root ] && keep=1

deb=$(packaging/build-deb.sh --arch amd64 --out "$out" | grep '/phasewise_')
rm -rf "$root"
cp -a "$base" "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
cp "$deb" "$root/tmp/"
echo "install-check: apt-get install $(basename "$deb") in a clean root"
chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/$(basename "$deb")" \
  >"$out/apt.log" 2>&1 || { tail -n 30 "$out/apt.log" >&2; exit 1; }

fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
check "user phasewise made by postinst" "chroot '$root' getent passwd phasewise >/dev/null"
check "/etc/phasewise and /var/lib/phasewise owned by phasewise, mode 0750" \
  "[ \"\$(chroot '$root' stat -c '%U %a' /etc/phasewise /var/lib/phasewise | sort -u)\" = 'phasewise 750' ]"

# The unit's own command line, plus a free loopback port for the web UI.
exec_start=$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/phasewise.service")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
install -m 0640 config/demo.json "$root/etc/phasewise/config.json"
chroot "$root" chown phasewise:phasewise /etc/phasewise/config.json
echo "install-check: running '$exec_start --http 127.0.0.1:$port' as phasewise"
# shellcheck disable=SC2086
chroot --userspec=phasewise:phasewise "$root" $exec_start --http "127.0.0.1:$port" \
  >"$out/serve.log" 2>&1 &
pid=$!
answered=0
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/api/health', timeout=1).status == 200 else 1)" 2>/dev/null; then
    answered=1; break
  fi
  sleep 0.2
done
check "the dashboard answers (GET /api/health 200)" "[ $answered = 1 ]"
check "the dashboard page is served" "python3 -c \"import urllib.request; assert b'<html' in urllib.request.urlopen('http://127.0.0.1:$port/', timeout=2).read().lower()\""
sleep 3 # a tick's history rows
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=""
check "stopped cleanly on SIGTERM (exit 0)" "[ $rc = 0 ]"
db="$root/var/lib/phasewise/phasewise.db"
check "the database is written ($(sqlite3 "$db" 'select count(*) from event' 2>/dev/null || echo 0) events)" \
  "[ \"\$(sqlite3 '$db' \"select count(*) from event where kind = 'start'\" 2>/dev/null || echo 0)\" -ge 1 ]"
check "the database belongs to phasewise" \
  "[ \"\$(chroot '$root' stat -c %U /var/lib/phasewise/phasewise.db)\" = phasewise ]"
[ $fail = 0 ] || { echo "--- serve.log"; tail -n 30 "$out/serve.log"; }
exit $fail
