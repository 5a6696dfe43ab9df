#!/usr/bin/env bash
# Smoke test on the device's platform: build the wheel from this checkout, install it with its
# runtime deps and the demo extra as aarch64 / CPython 3.11 wheels (Raspberry Pi OS 64-bit
# Bookworm's Python) into a Debian bookworm arm64 userland, and run `edgeface demo`, `enroll`
# and `identify` there: under qemu-aarch64 on an x86 host, natively on an aarch64 host.
#
# Fails unless the astronaut is named. Exits 77 (skip) when this host cannot run arm64 code.
#
# Cached between runs (nothing cached and still valid is downloaded again; the wheel is always
# rebuilt): the userland, the .debs it came from and the wheels, under
#   EDGEFACE_AARCH64_CACHE   (default /var/cache/edgeface-aarch64); delete it to start cold.
# Also: EDGEFACE_AARCH64_CPU (emulated CPU, default cortex-a72 = Raspberry Pi 4; cortex-a76 = Pi 5),
#       EDGEFACE_DEBIAN_MIRROR, EDGEFACE_DEBIAN_SECURITY_MIRROR, PYTHON (host python with pip).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${EDGEFACE_AARCH64_CACHE:-/var/cache/edgeface-aarch64}
CPU=${EDGEFACE_AARCH64_CPU:-cortex-a72}
MIRROR=${EDGEFACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${EDGEFACE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PY=${PYTHON:-python3}
SUITE=bookworm                      # Raspberry Pi OS Bookworm is built on Debian bookworm
PY_VER=3.11                         # bookworm's (and so Raspberry Pi OS Bookworm's) python3
GLIBC_MINOR=36                      # bookworm's glibc 2.36: the newest manylinux tag it runs
DEBS=(python3.11 libstdc++6)        # the interpreter; libstdc++/libgcc for LiteRT's and OpenCV's wheels
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Bump when the userland's recipe changes, so cached userlands are rebuilt.
ROOT_KEY="v1 $SUITE arm64 ${DEBS[*]} $MIRROR $SECURITY_MIRROR"

SKIP=77
say() { printf '\n== %s\n' "$*"; }
die() { printf 'aarch64 smoke: FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'aarch64 smoke: SKIPPED: %s\n' "$*" >&2; exit "$SKIP"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)

# -- how to run arm64 code here ---------------------------------------------------------------
HOST_ARCH=$(uname -m)
if [ "$HOST_ARCH" = aarch64 ]; then
    MODE=native
else
    MODE=qemu
    QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
    if [ -z "$QEMU" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "installing qemu-user-static (runs arm64 programs on this $HOST_ARCH host)"
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                  --no-install-recommends qemu-user-static >/dev/null; } ||
                skip "cannot install qemu-user-static on this $HOST_ARCH host"
            QEMU=$(command -v qemu-aarch64-static || true)
        fi
        [ -n "$QEMU" ] || skip "no qemu-aarch64 on this $HOST_ARCH host (apt-get install qemu-user-static)"
    fi
fi
for tool in dpkg-deb apt-get; do
    command -v "$tool" >/dev/null || skip "needs $tool to build the Debian arm64 userland"
done
[ -r "$KEYRING" ] || skip "needs $KEYRING (apt-get install debian-archive-keyring) to verify Debian's packages"
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip (set PYTHON to a python with pip)"

mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgeface-aarch64.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# -- (a) the arm64 userland: bookworm's python3.11 and the libraries it needs -----------------
ROOT=$CACHE/root-$SUITE-arm64
APT=$CACHE/apt                     # a private apt for arm64: the host's apt state is not touched
T=$(now)
if [ -x "$ROOT/usr/bin/python$PY_VER" ] && [ "$(cat "$ROOT/.edgeface-key" 2>/dev/null)" = "$ROOT_KEY" ]; then
    say "(a) userland: cached $ROOT"
else
    say "(a) userland: Debian $SUITE arm64 ${DEBS[*]} and their dependencies -> $ROOT"
    mkdir -p "$APT/etc/apt/apt.conf.d" "$APT/etc/apt/preferences.d" "$APT/etc/apt/trusted.gpg.d" \
             "$APT/var/lib/apt/lists/partial" "$APT/var/cache/apt/archives/partial" "$APT/var/lib/dpkg"
    : > "$APT/var/lib/dpkg/status"   # nothing installed: apt fetches every dependency
    {
        echo "deb [arch=arm64 signed-by=$KEYRING] $MIRROR $SUITE main"
        echo "deb [arch=arm64 signed-by=$KEYRING] $MIRROR $SUITE-updates main"
        echo "deb [arch=arm64 signed-by=$KEYRING] $SECURITY_MIRROR $SUITE-security main"
    } > "$APT/etc/apt/sources.list"
    apt_opts=(-o "Dir=$APT" -o "Dir::Etc=$APT/etc/apt" -o "Dir::State::status=$APT/var/lib/dpkg/status"
              -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
              -o APT::Install-Recommends=0 -o Acquire::Languages=none -o Acquire::Retries=3)
    apt-get "${apt_opts[@]}" update -qq || die "apt-get update of the arm64 package lists failed"
    # Debs already in $APT/var/cache/apt/archives with the right checksum are not fetched again.
    apt-get "${apt_opts[@]}" install -y -qq --download-only "${DEBS[@]}" >/dev/null ||
        die "downloading the arm64 packages failed"
    # Exactly the versions apt resolved now (older cached debs stay out), unpacked without dpkg:
    # no maintainer scripts, so nothing needs to run as arm64 here.
    mapfile -t wanted < <(apt-get "${apt_opts[@]}" install -s -qq "${DEBS[@]}" |
        sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\(arm64\|all\)\].*/\1_\2_\3.deb/p' | sed 's/:/%3a/')
    [ ${#wanted[@]} -gt 0 ] || die "apt resolved no arm64 packages"
    rm -rf "$ROOT.new" && mkdir -p "$ROOT.new"
    for deb in "${wanted[@]}"; do
        dpkg-deb -x "$APT/var/cache/apt/archives/$deb" "$ROOT.new" || die "unpacking $deb failed"
    done
    printf '%s\n' "$ROOT_KEY" > "$ROOT.new/.edgeface-key"
    echo "   ${#wanted[@]} packages, $(du -sh "$APT/var/cache/apt/archives" | cut -f1) of .debs, " \
         "$(du -sh "$ROOT.new" | cut -f1) unpacked"
    rm -rf "$ROOT" && mv "$ROOT.new" "$ROOT"
fi
if [ "$MODE" = qemu ]; then
    # LiteRT (XNNPACK's cpuinfo) reads /proc/cpuinfo to pick its kernels and crashes on the
    # host's x86 one; qemu -L looks under ROOT first, so give it an ARM one (Cortex-A72 cores,
    # as many as the host has). Emulation only: a real board has its own.
    last_cpu=$(sed 's/.*-//' /sys/devices/system/cpu/possible 2>/dev/null || echo 0)
    mkdir -p "$ROOT/proc"
    for ((i = 0; i <= last_cpu; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
        printf 'CPU revision\t: 3\n\n'
    done > "$ROOT/proc/cpuinfo"
fi
echo "   $(since "$T") s"

# How every arm64 command runs. Natively, ROOT's own loader runs ROOT's python with ROOT's
# libraries, whatever the host's distribution is.
LIBPATH=$ROOT/lib/aarch64-linux-gnu:$ROOT/usr/lib/aarch64-linux-gnu
if [ "$MODE" = qemu ]; then
    RUN=("$QEMU" -L "$ROOT" -cpu "$CPU" "$ROOT/usr/bin/python$PY_VER")
    where="qemu-user ($($QEMU --version | head -1), -cpu $CPU) on $HOST_ARCH"
else
    RUN=("$ROOT/lib/ld-linux-aarch64.so.1" --library-path "$LIBPATH" "$ROOT/usr/bin/python$PY_VER")
    where="natively on $HOST_ARCH"
fi
SITE=$WORK/site
export PYTHONPATH=$SITE PYTHONNOUSERSITE=1 HOME=$WORK/home EDGEFACE_GALLERY=$WORK/gallery.db
mkdir -p "$HOME"
# From $WORK, so `-m edgeface` imports the installed wheel, not this checkout's sources.
arm() { (cd "$WORK" && "${RUN[@]}" "$@"); }
arm -c 'import platform, sys; assert platform.machine() == "aarch64", platform.machine()' ||
    die "the arm64 python3.11 does not start ($where)"

# -- (b) the wheel, and an aarch64 / cp311 install of it --------------------------------------
say "(b) wheel from this checkout"
T=$(now)
BUILD_WHEELS=$CACHE/build-wheels    # hatchling, so a warm run builds without the index
build() { "$PY" -m pip wheel -q --no-deps . -w "$WORK/dist" "$@"; }
if ! PIP_NO_INDEX=1 PIP_FIND_LINKS=$BUILD_WHEELS build 2>/dev/null; then
    "$PY" -m pip download -q -d "$BUILD_WHEELS" hatchling || die "downloading hatchling failed"
    PIP_NO_INDEX=1 PIP_FIND_LINKS=$BUILD_WHEELS build || die "building the wheel failed"
fi
WHEEL=$(ls "$WORK"/dist/edgeface-*.whl)
"$PY" - "$WHEEL" <<'EOF' || die "the wheel does not carry its models"
import fnmatch, os, sys, zipfile
wheel = sys.argv[1]
names = {i.filename: i.file_size for i in zipfile.ZipFile(wheel).infolist()}
models = {n: s for n, s in names.items() if n.startswith("edgeface/models/")}
print(f"   {os.path.basename(wheel)}: {os.path.getsize(wheel) / 1e6:.1f} MB, {len(names)} files; "
      f"edgeface/models/ {sum(models.values()) / 1e6:.1f} MB unpacked:")
for n, s in sorted(models.items()):
    print(f"     {n} ({s / 1e6:.2f} MB)")
missing = [p for p in ("*.tflite", "*.json", "*.npz") if not fnmatch.filter(models, "edgeface/models/" + p)]
if missing:
    sys.exit(f"   missing from the wheel: edgeface/models/{', '.join(missing)}")
EOF

WHEELS=$CACHE/wheels-cp311-aarch64
platforms=(--platform manylinux2014_aarch64)
for ((m = 17; m <= GLIBC_MINOR; m++)); do platforms+=(--platform "manylinux_2_${m}_aarch64"); done
target_opts=(--python-version "$PY_VER" --implementation cp --abi "cp${PY_VER/./}" "${platforms[@]}"
             --only-binary=:all:)
install() {
    rm -rf "$SITE"
    "$PY" -m pip install -q --target "$SITE" "${target_opts[@]}" --no-index --find-links "$WHEELS" \
        "$WHEEL[demo]" "$@"
}
if install 2>/dev/null; then
    echo "   deps: all from the cached wheels in $WHEELS"
else
    echo "   deps: fetching aarch64 cp311 wheels for what the cache lacks -> $WHEELS"
    "$PY" -m pip download -q -d "$WHEELS" "${target_opts[@]}" "$WHEEL[demo]" ||
        die "no aarch64 cp311 wheels for some dependency (above)"
    rm -f "$WHEELS"/edgeface-*.whl   # the checkout's wheel is never taken from the cache
    install || die "installing the wheel for aarch64 cp311 failed"
fi
echo "   installed into $SITE: $(du -sh "$SITE" | cut -f1); $(since "$T") s"

# -- (c) run it there ---------------------------------------------------------------------------
say "(c) on arm64, $where: Debian $SUITE python $PY_VER"
arm - "$SITE" <<'EOF' || die "the installed wheel does not import ($where)"
import os, platform, sys
import ai_edge_litert, cv2, edgeface, numpy
from importlib.metadata import version
assert edgeface.__file__.startswith(os.path.join(sys.argv[1], "")), f"edgeface from {edgeface.__file__}"
print(f"   {platform.machine()} python {platform.python_version()}; edgeface {version('edgeface')} from {edgeface.__file__}")
print(f"   ai-edge-litert {version('ai-edge-litert')}, opencv {cv2.__version__}, numpy {numpy.__version__}")
EOF

# A slower sweep than the default 30 frames per -60..+60: the daemon reads the clip in real time
# (10 fps) but, emulated, handles only 0.2-2 of those frames a second, and a name needs a few
# frames of the same face; at the default it sometimes named nobody. -v: the daemon's status
# lines (fps, latency) show how it went; the few DEBUG lines are dropped.
DEMO_FRAMES=${EDGEFACE_AARCH64_DEMO_FRAMES:-240}
say "edgeface -v demo --frames $DEMO_FRAMES"
T=$(now)
arm -m edgeface -v demo --frames "$DEMO_FRAMES" 2>&1 | grep -v ' DEBUG ' || die "edgeface demo failed ($where)"
T_DEMO=$(since "$T")
echo "   [edgeface demo: $T_DEMO s]"

say "photos: skimage's astronaut upright (to enrol) and turned (to identify)"
arm - "$WORK" <<'EOF'
import sys
import cv2
from skimage import data
from edgeface.vision.geometry import turn_image
out = sys.argv[1]
astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
cv2.imwrite(f"{out}/enrol.png", astronaut[0:300, 70:370])       # head and shoulders, upright
for degrees in (-45, -20, 25, 50):                              # the whole portrait, turned
    cv2.imwrite(f"{out}/turned{degrees:+d}.png", turn_image(astronaut, degrees))
print("   " + ", ".join(["enrol.png"] + [f"turned{d:+d}.png" for d in (-45, -20, 25, 50)]))
EOF

say "edgeface enroll astronaut enrol.png"
T=$(now)
arm -m edgeface enroll astronaut "$WORK/enrol.png" || die "edgeface enroll failed ($where)"
T_ENROLL=$(since "$T")
echo "   [edgeface enroll: $T_ENROLL s]"

say "edgeface identify --json turned*.png"
T=$(now)
prev=$T
: > "$WORK/identify.jsonl"
# Each photo's line is timed as it arrives: the first includes start-up and loading the model.
while IFS= read -r line; do
    t=$(now)
    printf '%s\n' "$line" >> "$WORK/identify.jsonl"
    printf '   [+%s s] %s\n' "$(awk -v a="$prev" -v b="$t" 'BEGIN { printf "%.2f", b - a }')" "$line"
    prev=$t
done < <(arm -m edgeface identify --json "$WORK"/turned*.png)
wait $! || die "edgeface identify failed ($where)"
T_IDENTIFY=$(since "$T")
"$PY" - "$WORK/identify.jsonl" <<'EOF' || die "the astronaut was not named in every turned photo"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
named = [any(f["name"] == "astronaut" for f in r["faces"]) for r in rows]
print(f"   astronaut named in {sum(named)} of {len(rows)} turned photos")
sys.exit(0 if rows and all(named) else 1)
EOF

say "aarch64 smoke: PASS ($where)"
echo "   demo $T_DEMO s, enroll $T_ENROLL s, identify of 4 photos $T_IDENTIFY s; whole smoke $(since "$T_START") s"
