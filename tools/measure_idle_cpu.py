"""CPU of `edgeface run` on an empty room (640x480 at 15 fps, a still doorway with sensor noise),
with the Home Assistant diagnostics on and off, alternating, so both see the same machine load.

    python tools/measure_idle_cpu.py [--seconds 30] [--rounds 2] [--status-interval 5]

Prints percent of one core per run (process CPU time from /proc/PID/stat over --seconds, after a
10 s warm-up) and the mean of each setting. A short status_interval makes the diagnostics'
cost visible if there is one (the default is 60 s).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeface.cli.testbroker import Mosquitto  # noqa: E402


def empty_room(path: Path, seconds: float = 20.0, fps: float = 15.0) -> None:
    rng = np.random.default_rng(1)
    room = cv2.GaussianBlur(rng.integers(40, 200, (480, 640, 3), dtype=np.uint8), (31, 31), 0)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for _ in range(int(seconds * fps)):
        noise = rng.normal(0, 2.0, room.shape)
        vw.write(np.clip(room + noise, 0, 255).astype(np.uint8))
    vw.release()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(work: Path, broker: Mosquitto, diagnostics: bool, seconds: float, status_interval: float) -> float:
    config = work / f"edgeface-{diagnostics}.yaml"
    config.write_text(json.dumps({
        "gallery": str(work / "gallery.db"),
        "cameras": [{"name": "room", "source": str(work / "room.avi"), "loop": True, "fps": 15}],
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "idle-cpu"},
        "home": {"diagnostics": diagnostics},
        "status_interval": status_interval,
    }))
    proc = subprocess.Popen([sys.executable, "-m", "edgeface", "run", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(10)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return 100.0 * (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--status-interval", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        empty_room(work / "room.avi")
        broker = Mosquitto(work).start()
        try:
            got: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.rounds):
                for diagnostics in (False, True):
                    cpu = one_run(work, broker, diagnostics, args.seconds, args.status_interval)
                    got[diagnostics].append(cpu)
                    print(f"diagnostics {'on ' if diagnostics else 'off'}: {cpu:.1f}% of one core", flush=True)
        finally:
            broker.stop()
    for diagnostics, values in got.items():
        print(f"mean, diagnostics {'on ' if diagnostics else 'off'}: {sum(values) / len(values):.1f}% "
              f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
