#!/usr/bin/env bash
# A real Home Assistant against edgeface: build a Debian trixie amd64 userland (Python 3.13, which
# Home Assistant 2026.x needs) the way tools/aarch64_smoke.sh builds its arm64 one (apt resolves,
# the .debs are unpacked without dpkg), `pip install homeassistant` inside it, run `hass` there
# (chroot, native: no qemu) against a mosquitto on loopback here, set up the MQTT integration
# through its config flow, start `edgeface run` on a clip with a stranger and record:
#   - the entity ids Home Assistant created for edgeface's discovery,
#   - the picture it serves at /api/image_proxy/image.<entity> (saved under the output folder),
#   - an automation (the README's "Someone unknown is at the door") that fired with it.
#
# Needs root (chroot, mounts). Slow on a cold cache (downloads ~300 MB): not run in CI.
# Usage: tools/ha_smoke.sh [--prepare]   (--prepare: build the userland and install HA only)
# Cache: EDGEFACE_HA_CACHE (default /var/cache/edgeface-ha); output: EDGEFACE_HA_OUT
# (default /tmp/edgeface-ha-smoke). Also EDGEFACE_DEBIAN_MIRROR, EDGEFACE_DEBIAN_SECURITY_MIRROR,
# HOMEASSISTANT (pip requirement, default "homeassistant"), PYTHON (the python that runs edgeface).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${EDGEFACE_HA_CACHE:-/var/cache/edgeface-ha}
OUT=${EDGEFACE_HA_OUT:-/tmp/edgeface-ha-smoke}
MIRROR=${EDGEFACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${EDGEFACE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
HA_REQ=${HOMEASSISTANT:-homeassistant}
PY=${PYTHON:-python3}  # runs edgeface (needs its dependencies)
SUITE=trixie
PY_VER=3.13
# gcc, libc6-dev, python3.13-dev: a few of Home Assistant's pinned requirements (lru-dict) have
# no cp313 wheel and build from source
DEBS=(python3.13 python3.13-venv python3.13-dev gcc libc6-dev libstdc++6 tzdata)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
ROOT_KEY="v1 $SUITE amd64 ${DEBS[*]} $MIRROR $SECURITY_MIRROR"
SKIP=77
PREPARE_ONLY=0
[ "${1:-}" = --prepare ] && PREPARE_ONLY=1

say() { printf '\n== %s\n' "$*"; }
die() { printf 'ha smoke: FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'ha smoke: SKIPPED: %s\n' "$*" >&2; exit "$SKIP"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(uname -m)" = x86_64 ] || skip "builds an amd64 userland; this host is $(uname -m)"
[ "$(id -u)" = 0 ] || skip "needs root (chroot and mounts)"
for tool in dpkg-deb apt-get chroot mount mosquitto curl; do
    command -v "$tool" >/dev/null || skip "needs $tool"
done
[ -r "$KEYRING" ] || skip "needs $KEYRING (apt-get install debian-archive-keyring)"
mkdir -p "$CACHE" "$OUT"

# -- (a) the userland ---------------------------------------------------------------------------
ROOT=$CACHE/root-$SUITE-amd64
APT=$CACHE/apt
T=$(now)
if [ -x "$ROOT/usr/bin/python$PY_VER" ] && [ "$(cat "$ROOT/.edgeface-key" 2>/dev/null)" = "$ROOT_KEY" ]; then
    say "(a) userland: cached $ROOT"
else
    say "(a) userland: Debian $SUITE amd64 ${DEBS[*]} and their dependencies -> $ROOT"
    mkdir -p "$APT/etc/apt/apt.conf.d" "$APT/etc/apt/preferences.d" "$APT/etc/apt/trusted.gpg.d" \
             "$APT/var/lib/apt/lists/partial" "$APT/var/cache/apt/archives/partial" "$APT/var/lib/dpkg"
    : > "$APT/var/lib/dpkg/status"
    {
        echo "deb [arch=amd64 signed-by=$KEYRING] $MIRROR $SUITE main"
        echo "deb [arch=amd64 signed-by=$KEYRING] $MIRROR $SUITE-updates main"
        echo "deb [arch=amd64 signed-by=$KEYRING] $SECURITY_MIRROR $SUITE-security main"
    } > "$APT/etc/apt/sources.list"
    apt_opts=(-o "Dir=$APT" -o "Dir::Etc=$APT/etc/apt" -o "Dir::State::status=$APT/var/lib/dpkg/status"
              -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Debug::NoLocking=1
              -o APT::Install-Recommends=0 -o Acquire::Languages=none -o Acquire::Retries=3)
    apt-get "${apt_opts[@]}" update -qq || die "apt-get update of the $SUITE package lists failed"
    apt-get "${apt_opts[@]}" install -y -qq --download-only "${DEBS[@]}" >/dev/null ||
        die "downloading the $SUITE packages failed"
    mapfile -t wanted < <(apt-get "${apt_opts[@]}" install -s -qq "${DEBS[@]}" |
        sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\(amd64\|all\)\].*/\1_\2_\3.deb/p' | sed 's/:/%3a/')
    [ ${#wanted[@]} -gt 0 ] || die "apt resolved no packages"
    rm -rf "$ROOT.new" && mkdir -p "$ROOT.new"
    for deb in "${wanted[@]}"; do
        dpkg-deb -x "$APT/var/cache/apt/archives/$deb" "$ROOT.new" || die "unpacking $deb failed"
    done
    # merged /usr: the links base-files' maintainer scripts would make
    for d in bin sbin lib lib64; do
        [ -e "$ROOT.new/$d" ] || [ ! -d "$ROOT.new/usr/$d" ] || ln -s "usr/$d" "$ROOT.new/$d"
    done
    mkdir -p "$ROOT.new"/{dev,proc,tmp,etc,opt} && chmod 1777 "$ROOT.new/tmp"
    printf '%s\n' "$ROOT_KEY" > "$ROOT.new/.edgeface-key"
    echo "   ${#wanted[@]} packages, $(du -sh "$ROOT.new" | cut -f1) unpacked"
    rm -rf "$ROOT" && mv "$ROOT.new" "$ROOT"
fi
echo "   $(since "$T") s"

# What a chroot needs that maintainer scripts or the host would give it.
for n in null:1:3 zero:1:5 random:1:8 urandom:1:9; do
    IFS=: read -r name major minor <<<"$n"
    [ -e "$ROOT/dev/$name" ] || mknod -m 666 "$ROOT/dev/$name" c "$major" "$minor"
done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# Debian's pip reads the system CA bundle, which ca-certificates' maintainer script would build
mkdir -p "$ROOT/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/"
grep -q '^root:' "$ROOT/etc/passwd" 2>/dev/null || echo 'root:x:0:0:root:/root:/bin/sh' >> "$ROOT/etc/passwd"
grep -q '^root:' "$ROOT/etc/group" 2>/dev/null || echo 'root:x:0:' >> "$ROOT/etc/group"
[ -e "$ROOT/etc/localtime" ] || ln -s /usr/share/zoneinfo/Etc/UTC "$ROOT/etc/localtime"
mkdir -p "$ROOT/root"
cleanup_mounts() { umount "$ROOT/proc" 2>/dev/null || true; }
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap cleanup_mounts EXIT
CHROOT=$(command -v chroot)
inroot() { env -i HOME=/root PATH=/opt/hass/bin:/usr/bin:/bin LANG=C.UTF-8 "$CHROOT" "$ROOT" "$@"; }

# -- (b) Home Assistant in a venv inside it ------------------------------------------------------
say "(b) pip install $HA_REQ (python $PY_VER in $SUITE)"
T=$(now)
inroot python$PY_VER -c 'import sys, ssl; print("  ", sys.version.split()[0], ssl.OPENSSL_VERSION)' ||
    die "the $SUITE python does not start in the chroot"
[ -x "$ROOT/opt/hass/bin/pip" ] || inroot python$PY_VER -m venv /opt/hass || die "venv failed"
# What the integrations this run loads need (Home Assistant would pip-install them at its first
# start; installed here so the run itself needs no index): frontend (without it Home Assistant
# starts in recovery mode), conversation/cloud, http, mqtt.
HA_EXTRA=(home-assistant-frontend hassil home-assistant-intents paho-mqtt aiohttp_cors aiohttp-fast-zlib isal)
if ! inroot python -c 'import homeassistant' 2>/dev/null; then
    inroot pip install -q --upgrade pip || die "upgrading pip failed"
    # Home Assistant's own pins (package_constraints.txt in its wheel), as its docs install it:
    # without them pip backtracks through dozens of sdists of its requirements.
    rm -rf "$ROOT/tmp/ha-wheel" && inroot pip download -q --no-deps -d /tmp/ha-wheel "$HA_REQ" ||
        die "downloading $HA_REQ failed"
    inroot python -c 'import glob, zipfile, sys; z = zipfile.ZipFile(glob.glob("/tmp/ha-wheel/*.whl")[0]); open("/tmp/ha-constraints.txt", "wb").write(z.read("homeassistant/package_constraints.txt"))' ||
        die "no package_constraints.txt in the homeassistant wheel"
    wheel=$(cd "$ROOT" && ls tmp/ha-wheel/*.whl)
    inroot pip install -q "/$wheel" -c /tmp/ha-constraints.txt || die "pip install $HA_REQ failed"
fi
# Requirements of the integrations this run loads (hass runs with --skip-pip).
inroot pip install -q "${HA_EXTRA[@]}" -c /tmp/ha-constraints.txt || die "installing the integrations' requirements failed"
HA_VERSION=$(inroot python -c 'from homeassistant.const import __version__; print(__version__)')
echo "   Home Assistant $HA_VERSION; $(since "$T") s"
[ "$PREPARE_ONLY" = 1 ] && { say "prepared"; exit 0; }

# -- (c) Home Assistant, mosquitto and edgeface, on loopback -------------------------------------
say "(c) the run (edgeface from this checkout, with $PY)"
"$PY" -c 'import cv2, paho.mqtt' 2>/dev/null || die "$PY lacks edgeface's dependencies (set PYTHON to its venv's python)"
"$PY" tools/ha_smoke.py "$ROOT" "$OUT"
