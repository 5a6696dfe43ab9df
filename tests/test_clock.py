"""Clocks that jump (issue 26, finding 8): a Pi without a real-time clock has its wall clock set
by NTP once it is on the network, a year forward or an hour back. Tracking, re-embedding and the
idle sweep run on the monotonic clock; only the timestamps people read use the wall clock.

Driven clocks: each frame carries the wall and monotonic times a CameraReader would have given it."""
import re
import time
from pathlib import Path

import numpy as np
import pytest
from faces import astronaut_bgr
from running import shipped_model

from edgeface.config import MotionConfig, MqttConfig, TrackingConfig
from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher
from edgeface.recognition.match import Matcher
from edgeface.recognition.pipeline import FramePipeline, Recognizer
from edgeface.recognition.track import Tracker
from edgeface.service.source import Frame
from edgeface.service.worker import CameraWorker, WorkerParts
from edgeface.store.events import EventStore
from edgeface.vision.detect import HaarDetector
from edgeface.vision.pixels import FramePixels

REPO = Path(__file__).resolve().parent.parent
HOUR, YEAR = 3600.0, 365 * 86400.0
T0 = 1_790_000_000.0  # wall clock at the start
needs_model = pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")


@pytest.fixture(scope="module")
def recognizer():
    from edgeface.recognition.embed import Embedder

    r = Recognizer(HaarDetector(), Embedder())
    face = astronaut_bgr()
    (enrolled,) = r.embed(face, r.detector.detect(face)[:1])
    r.matcher = Matcher(["eileen"], enrolled[None], r.embedder.spec.threshold)
    return r


class Camera:
    """Feeds a CameraWorker frames stamped by a driven wall clock and monotonic clock."""

    def __init__(self, worker):
        self.worker, self.wall, self.mono, self.seq = worker, T0, 1000.0, 0

    def show(self, image, frames, dt=0.2):
        for _ in range(frames):
            self.seq += 1
            self.worker.handle(Frame(FramePixels(image), self.wall, self.mono, self.seq))
            self.wall += dt
            self.mono += dt


def worker_for(tmp_path, pipeline):
    publisher = Publisher(MqttConfig(host="127.0.0.1", port=9), ["front"])  # never started: messages queue
    events = EventStore(tmp_path / "events", max_age=2 * YEAR, clock=lambda: T0)
    parts = WorkerParts(publisher, Presence(60, 60), events, pipeline.recognizer.matcher)
    return CameraWorker("front", None, pipeline, parts, snapshot=False)


@needs_model
def test_tracking_ignores_the_wall_clock_and_events_are_stamped_with_it(tmp_path, recognizer):
    pipeline = FramePipeline(recognizer, Tracker(TrackingConfig(max_missed=0.5)))
    worker = worker_for(tmp_path, pipeline)
    camera = Camera(worker)
    face, empty = astronaut_bgr(), np.full_like(astronaut_bgr(), 90)
    camera.show(face, 6)  # eileen arrives: announced
    camera.wall -= HOUR  # NTP steps the clock back an hour
    camera.show(empty, 10)  # she leaves for 2 s
    camera.show(face, 6)  # and comes back: a new appearance (before: a ghost track hid it for the hour)
    camera.wall += YEAR  # NTP steps it a year forward while she stays
    camera.show(face, 6)  # the same appearance: no event (before: every track ended, announced again)
    stamps = sorted(e.time for e in worker.parts.events.events())
    assert [e.name for e in worker.parts.events.events()] == ["eileen", "eileen"]
    assert stamps[0] == pytest.approx(T0 - HOUR + 3.2, abs=1.3)  # the wall clock, as it read then
    assert stamps[1] == pytest.approx(T0, abs=1.3)
    assert worker.take_stats()["events"] == 2
    ids = [e.id for e in worker.parts.events.events()]
    day = time.strftime("%Y%m%d", time.gmtime(T0))
    assert all(re.fullmatch(rf"{day}T\d{{6}}-[0-9a-f]{{6}}", i) for i in ids), ids  # ids from the wall clock too


@needs_model
def test_the_idle_sweep_goes_on_when_the_wall_clock_steps_back(tmp_path, recognizer):
    """An empty, still room: the idle sweep looks for faces that never moved, one angle at a time."""
    motion = MotionConfig(idle_sweep_s=4.0, idle_stride=1)
    pipeline = FramePipeline(recognizer, Tracker(), motion)
    camera = Camera(worker_for(tmp_path, pipeline))
    room = np.random.default_rng(0).integers(60, 120, astronaut_bgr().shape, dtype=np.uint8)
    camera.show(room, 20, dt=0.5)
    before = pipeline.cascade_frames
    assert before >= 10
    camera.wall -= HOUR
    camera.show(room, 20, dt=0.5)  # 10 s more: the sweep carries on (before: paused for the hour)
    assert pipeline.cascade_frames - before >= 10


def test_the_unit_starts_after_the_clock_is_set():
    unit = (REPO / "systemd" / "edgeface.service").read_text().split("[Service]")[0]
    for key in ("Wants", "After"):
        values = " ".join(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}="))
        assert "time-sync.target" in values.split(), (key, values)


@needs_model
def test_a_bad_event_record_does_not_stop_the_camera(tmp_path, recognizer):
    """Issue 26, finding 7: a record with "time": null ended the camera's worker at the first
    face (TypeError), the daemon exited, and systemd restarted it into the same crash."""
    pipeline = FramePipeline(recognizer, Tracker())
    worker = worker_for(tmp_path, pipeline)
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "20261124T001002-abcdef.json").write_text(
        '{"id": "20261124T001002-abcdef", "name": "eileen", "score": 0.9, "camera": "front", "time": null, '
        '"box": [1, 2, 3, 4]}')
    Camera(worker).show(astronaut_bgr(), 6)
    assert [e.name for e in worker.parts.events.events()] == ["eileen"]
    assert worker.take_stats()["events"] == 1
