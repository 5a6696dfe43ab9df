#!/usr/bin/env bash
# Home Assistant's Python (3.13, in the userland tools/ha_smoke.sh --prepare builds) for
# EDGEFACE_HA_PYTHON: runs `python ARGS...` there; arguments that are files are copied in first.
#   sudo tools/ha_smoke.sh --prepare && sudo EDGEFACE_HA_PYTHON=tools/ha_python.sh python -m pytest tests/test_homeassistant.py
set -euo pipefail
ROOT=${EDGEFACE_HA_CACHE:-/var/cache/edgeface-ha}/root-trixie-amd64
[ -f "$ROOT/opt/hass/pyvenv.cfg" ] || { echo "no Home Assistant in $ROOT: run tools/ha_smoke.sh --prepare" >&2; exit 2; }
inside=$(mktemp -d "$ROOT/tmp/ha-python.XXXXXX")
trap 'rm -rf "$inside"' EXIT
args=()
for a in "$@"; do
    if [ -f "$a" ]; then
        cp "$a" "$inside/"
        args+=("/tmp/$(basename "$inside")/$(basename "$a")")
    else
        args+=("$a")
    fi
done
env -i HOME=/root PATH=/opt/hass/bin:/usr/bin:/bin LANG=C.UTF-8 "$(command -v chroot)" "$ROOT" python "${args[@]}"
