"""What the diagnostic entities show: a few numbers read at the status interval (no per-frame work).

Per camera: frames/s, dropped frames (camera frames replaced before the pipeline took them, since
start), cascade share (percent of frames on which the detection cascade ran). Per device: this
process's CPU percent (of one core, as top shows it), the SoC temperature where
/sys/class/thermal has one, the gallery's people and faces, and the last fleet sync.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

THERMAL = Path("/sys/class/thermal")
# zone types that mean the SoC / CPU (Raspberry Pi: cpu-thermal; many ARM boards: soc-thermal; x86: x86_pkg_temp)
SOC_ZONE_TYPES = ("cpu-thermal", "soc-thermal", "cpu_thermal", "soc_thermal", "x86_pkg_temp", "cpu")


def find_soc_zone(root: Path = THERMAL) -> Path | None:
    """The thermal zone's temp file for the SoC; the first zone if none says so; None without any."""
    zones = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip().lower()
            int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        zones.append((kind, zone / "temp"))
    for wanted in SOC_ZONE_TYPES:
        for kind, temp in zones:
            if kind == wanted or (wanted == "cpu" and "cpu" in kind):
                return temp
    return zones[0][1] if zones else None


class DeviceProbe:
    """CPU percent since the last reading, and the SoC temperature (both cheap: a few syscalls)."""

    def __init__(self, thermal_root: Path = THERMAL):
        self.zone = find_soc_zone(thermal_root)
        self._cpu, self._at = self._cpu_seconds(), time.monotonic()

    @staticmethod
    def _cpu_seconds() -> float:
        t = os.times()
        return t.user + t.system

    def cpu_percent(self) -> float:
        cpu, at = self._cpu_seconds(), time.monotonic()
        span = at - self._at
        share = (cpu - self._cpu) / span if span > 0 else 0.0
        self._cpu, self._at = cpu, at
        return round(100.0 * share, 1)

    def soc_temperature(self) -> float | None:
        if self.zone is None:
            return None
        try:
            return round(int(self.zone.read_text().strip()) / 1000.0, 1)  # millidegrees Celsius
        except (OSError, ValueError):
            return None


def camera_values(stats: dict, dropped_frames: int) -> dict:
    return {"fps": round(float(stats["fps"]), 2), "dropped_frames": int(dropped_frames),
            "cascade_share": round(100.0 * float(stats["cascade_share"]), 1)}


def device_values(probe: DeviceProbe, people: int, faces: int, last_fleet_sync: float | None) -> dict:
    """`last_fleet_sync`: wall-clock seconds (shown to people), None: none yet or no fleet."""
    return {"cpu_percent": probe.cpu_percent(), "soc_temperature": probe.soc_temperature(),
            "gallery_people": int(people), "gallery_faces": int(faces),
            "last_fleet_sync": datetime.fromtimestamp(last_fleet_sync, timezone.utc).isoformat(timespec="seconds")
            if last_fleet_sync is not None else None}
