#!/bin/sh
# Builds the Debian packages phasewise and phasewise-sim from this tree.
#
#   packaging/build-deb.sh [--arch amd64|arm64] [--out DIR] [--version VERSION] [--src DIR]
#
# --src builds the programs of another source tree (an earlier commit, for the upgrade check in
# scripts/install-check.sh) with this script's packaging; the packaging files that tree has
# (unit, man page, maintainer scripts) are its own, the others come from this tree.
# amd64 builds natively; arm64 cross-builds with Debian's toolchain and the arm64 libraries
# (docker/install-deps.sh --arm64 installs both). The runtime dependencies come from
# dpkg-shlibdeps, so they are the libraries the binaries really link. The version is the
# project's, with the commit count, so a package built from a later commit upgrades an earlier
# one: 0.1.0+r412.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
arch=$(dpkg --print-architecture)
out="$src/build/deb"
version=""
tree="$src"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --src) tree=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: $0 [--arch amd64|arm64] [--out DIR] [--version VERSION] [--src DIR]" >&2
       exit 2 ;;
  esac
done
# A file of the tree being packaged, or this tree's when it has none.
pick() { if [ -e "$tree/$1" ]; then echo "$tree/$1"; else echo "$src/$1"; fi; }
case "$arch" in
  amd64) multiarch=x86_64-linux-gnu; toolchain=""; strip=strip ;;
  arm64) multiarch=aarch64-linux-gnu; toolchain="-DCMAKE_TOOLCHAIN_FILE=$src/packaging/arm64-toolchain.cmake"
         strip=aarch64-linux-gnu-strip ;;
  *) echo "build-deb: unknown architecture $arch" >&2; exit 2 ;;
esac
if [ -z "$version" ]; then
  base=$(sed -n 's/^project(phasewise VERSION \([0-9.]*\).*/\1/p' "$tree/CMakeLists.txt")
  count=$(git -C "$tree" rev-list --count HEAD 2>/dev/null || echo 0)
  version="$base+r$count"
fi

build="$src/build/deb-$arch"
# Another tree gets a build folder of its own, under this tree's build/.
[ "$tree" = "$src" ] || build="$src/build/deb-$arch-$(echo "$tree" | cksum | cut -d' ' -f1)"
# shellcheck disable=SC2086
cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPW_WERROR=ON -DBUILD_TESTING=OFF \
  $toolchain >/dev/null
cmake --build "$build" -j "$(nproc)" --target phasewise phasewise-sim >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# stage PACKAGE: an empty tree with the files every package has.
stage() {
  dir="$work/$1"
  install -d "$dir/DEBIAN" "$dir/usr/share/doc/$1"
  install -m 0644 "$(pick packaging/copyright)" "$dir/usr/share/doc/$1/copyright"
  printf '%s (%s) stable; urgency=medium\n\n  * Built from %s.\n\n -- phasewise <phasewise@localhost>  %s\n' \
    "$1" "$version" "$(git -C "$tree" rev-parse --short HEAD 2>/dev/null || echo "a source tree")" \
    "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$tree" log -1 --format=%ct 2>/dev/null || date +%s)}")" |
    gzip -9n >"$dir/usr/share/doc/$1/changelog.Debian.gz"
}

stage phasewise
root="$work/phasewise"
install -D -m 0755 "$build/bin/phasewise" "$root/usr/bin/phasewise"
install -D -m 0644 "$(pick packaging/phasewise.service)" "$root/lib/systemd/system/phasewise.service"
install -d "$root/usr/share/man/man8"
gzip -9n <"$(pick packaging/phasewise.8)" >"$root/usr/share/man/man8/phasewise.8.gz"
install -D -m 0644 "$tree/README.md" "$root/usr/share/doc/phasewise/README.md"
install -D -m 0644 "$tree/config/demo.json" "$root/usr/share/phasewise/demo.json"
for script in postinst prerm postrm; do
  install -m 0755 "$(pick "packaging/deb/phasewise.$script")" "$root/DEBIAN/$script"
done

stage phasewise-sim
install -D -m 0755 "$build/bin/phasewise-sim" "$work/phasewise-sim/usr/bin/phasewise-sim"

for pkg in phasewise phasewise-sim; do
  $strip --strip-unneeded --remove-section=.comment "$work/$pkg/usr/bin/$pkg"
done

# dpkg-shlibdeps reads debian/control of the source package in the current folder.
mkdir -p "$work/src/debian"
printf 'Source: phasewise\n\nPackage: phasewise\nArchitecture: any\n\nPackage: phasewise-sim\nArchitecture: any\n' \
  >"$work/src/debian/control"
deps() {
  (cd "$work/src" && DEB_HOST_ARCH="$arch" DEB_HOST_MULTIARCH="$multiarch" \
     dpkg-shlibdeps -O -l"/usr/lib/$multiarch" "$1") | sed -n 's/^shlibs:Depends=//p'
}

# control PACKAGE DEPENDS DESCRIPTION...
control() {
  size=$(du -ks "$work/$1" | cut -f1)
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: phasewise <phasewise@localhost>\n' \
      "$1" "$version" "$arch"
    printf 'Installed-Size: %s\nDepends: %s\nSection: net\nPriority: optional\n' "$size" "$2"
    printf 'Homepage: https://phasewise.invalid/\nDescription: %s\n' "$3"
    shift 3
    for line in "$@"; do printf ' %s\n' "$line"; done
  } >"$work/$1/DEBIAN/control"
}
# lws loads its libuv support as a plugin (dlopen), which dpkg-shlibdeps cannot see.
control phasewise "$(deps "$work/phasewise/usr/bin/phasewise"), libwebsockets-evlib-uv, adduser" \
  "phase-aware load balancer for EV chargers" \
  "Shares a facility's connection and every sub-circuit's fuse among charging" \
  "cars per grid line, for LAN, OCPP 1.6J and DEFA chargers and LAN, Modbus TCP" \
  "and MQTT meters, with history, a live dashboard and a commissioning web UI." \
  "Runs as a hardened systemd service (phasewise.service)."
control phasewise-sim "$(deps "$work/phasewise-sim/usr/bin/phasewise-sim")" \
  "simulated facility for phasewise (demo and tests)" \
  "Simulates chargers, cars and meters speaking phasewise's LAN protocol," \
  "OCPP 1.6J, Modbus TCP and MQTT, for the demo (phasewise serve --demo) and tests."

for pkg in phasewise phasewise-sim; do
  dpkg-deb --root-owner-group -Zxz --build "$work/$pkg" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out/${pkg}_${version}_${arch}.deb"
done
