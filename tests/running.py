"""Helpers for tests that run edgeface as a user does: the command in a subprocess (`edgeface`),
the daemon (`python -m edgeface run --config ...`) against a real broker.

The fixtures built on them (`media`: the astronaut clip and photo; `run_daemon`: start daemons,
killed at the test's end) are in conftest.py; `cli` there runs the command in-process.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from faces import astronaut_bgr

from edgeface.cli.demo import clip_background, face_frame, head_and_shoulders

REPO = Path(__file__).resolve().parent.parent


def shipped_model():
    from edgeface.recognition.embed import default_model_path

    p = default_model_path()
    return str(p) if p.is_file() and p.with_suffix(".json").is_file() else None


def lifecycle_model():
    return os.environ.get("EDGEFACE_TEST_MODEL") or shipped_model()


needs_model = pytest.mark.skipif(lifecycle_model() is None,
                                 reason="no embedding model yet (models/dlib_resnet_v1_int8.tflite)")
needs_shipped_model = pytest.mark.skipif(shipped_model() is None,
                                         reason="needs the shipped model models/dlib_resnet_v1_int8.tflite")


def edgeface(*args, cwd=REPO) -> subprocess.CompletedProcess:
    """`python -m edgeface ARGS...` in a process of its own: returncode, stdout, stderr."""
    return subprocess.run([sys.executable, "-m", "edgeface", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)

def astronaut_head() -> np.ndarray:
    """The astronaut's head and shoulders, upright (the enrolment photo)."""
    return head_and_shoulders(astronaut_bgr())


def make_clip(path, face_frames=30, blank_frames=10, fps=10.0, size=(320, 240)):
    head = astronaut_head()
    bg = clip_background(size)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for k in range(face_frames):
        vw.write(face_frame(head, -60 + 120 * k / (face_frames - 1), bg))
    for _ in range(blank_frames):
        vw.write(bg)
    vw.release()
    return str(path)


def enroll(gallery, photo, model, name="astronaut"):
    photos = [photo] if isinstance(photo, str) else list(photo)
    r = subprocess.run([sys.executable, "-m", "edgeface", "enroll", name, *photos, "--gallery", str(gallery),
                        "--model", model], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def write_config(tmp_path, mosquitto, model, cameras=None, media=None, **extra):
    cfg = {
        "gallery": str(tmp_path / "gallery.db"),
        "model": model,
        "cameras": cameras if cameras is not None else [{"name": "front", "source": media["clip"], "loop": True}],
        "tracking": {"vote_count": 2, "max_missed": 0.5},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "client_id": "edgeface-under-test",
                 "discovery": False},
        "status_interval": 2,
        "gallery_poll_interval": 0.5,
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path = tmp_path / "edgeface.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Daemon:
    def __init__(self, config, env=None):
        self.logfile = open(Path(config).parent / "daemon.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeface", "run", "--config", str(config)], cwd=REPO,
                                     stdout=self.logfile, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def log(self) -> str:
        self.logfile.flush()
        return Path(self.logfile.name).read_text()

    def wait_log(self, text, timeout=60.0, count=1) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.log().count(text) >= count:
                return True
            if self.proc.poll() is not None:
                return self.log().count(text) >= count
            time.sleep(0.1)
        return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=15):
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()


def is_status(text, retain=None):
    return lambda m: m.topic == "edgeface/status" and m.text == text and (retain is None or m.retain == retain)
