"""One camera's worker: the pipeline on the reader's newest frame, its events published.

The parts it shares with the other cameras (publisher, presence, event store, matcher) come at
construction as one WorkerParts; the daemon hands over new ones with use(), and the worker's own
thread takes them up between frames.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher
from edgeface.recognition.match import Matcher
from edgeface.recognition.pipeline import FramePipeline
from edgeface.service.source import CameraReader, Frame
from edgeface.store.events import EventStore
from edgeface.store.visitors import VisitorBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerParts:
    """The daemon's parts every camera's worker uses; a reload or a gallery change swaps them as one."""

    publisher: Publisher
    presence: Presence  # fed every recognised face's sighting
    events: EventStore | None  # when events.keep_crops: each event's face crop
    matcher: Matcher  # the gallery the pipeline names faces from
    visitors: VisitorBook | None = None  # unknown faces grouped into returning visitors


class CameraWorker:
    """Runs the pipeline on one camera's newest frames and publishes its identity events."""

    def __init__(self, name: str, reader: CameraReader, pipeline: FramePipeline, parts: WorkerParts,
                 snapshot: bool):
        self.name, self.reader, self.pipeline = name, reader, pipeline
        self.parts = parts  # what this frame uses (the worker's own thread alone changes it)
        self._wanted = parts  # the latest handed over by use(), taken up between frames
        self.pipeline.recognizer.matcher = parts.matcher
        self.snapshot = snapshot
        self.heartbeat = time.monotonic()
        self.finished = False  # its file ended
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reset_stats()
        self._thread = threading.Thread(target=self._run, name=f"worker-{name}", daemon=True)

    def _reset_stats(self):
        self._frames, self._latency_ms, self._faces, self._events = 0, [], 0, 0
        self._cascade_base = self.pipeline.cascade_frames
        self._budget_base = self.pipeline.schedule.stats.budget_out
        self._since = time.monotonic()

    def start(self):
        self._thread.start()
        return self

    def use(self, parts: WorkerParts) -> None:
        """Swap in new parts: the worker's own thread takes them up before its next frame, so a
        frame is processed and published with one set of parts throughout."""
        self._wanted = parts

    def _take_up_parts(self) -> WorkerParts:
        wanted = self._wanted
        if wanted is not self.parts:
            self.parts = wanted
            self.pipeline.recognizer.matcher = wanted.matcher
        return wanted

    def stop(self):
        self._stop.set()

    def join(self, timeout: float):
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def take_stats(self) -> dict:
        with self._lock:
            span = max(1e-6, time.monotonic() - self._since)
            lat = sorted(self._latency_ms)
            stats = {
                "fps": self._frames / span,
                "latency_ms": sum(lat) / len(lat) if lat else 0.0,
                "latency_p95_ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0,
                "faces": self._faces,
                "events": self._events,
                # share of frames on which the detection cascade ran (motion gating skips the rest)
                # (clamped: a frame in flight at the reset counts its cascade but not itself)
                "cascade_share": min(1.0, (self.pipeline.cascade_frames - self._cascade_base) / self._frames)
                if self._frames else 0.0,
                # share of frames whose detection budget ran out with passes still queued
                "budget_out_share": min(1.0, (self.pipeline.schedule.stats.budget_out - self._budget_base)
                                        / self._frames) if self._frames else 0.0,
            }
            self._reset_stats()
        return stats

    def _run(self):
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            frame = self.reader.next_frame(timeout=0.5)
            if frame is None:
                if self.reader.finished:
                    self.finished = True
                    return
                continue
            self.handle(frame)

    def handle(self, frame: Frame) -> None:
        """One frame: the pipeline, then its events out. Tracking, re-embedding and the idle
        sweep run on the frame's monotonic time: a wall clock stepped by NTP (a Pi has no clock
        of its own until it is on the network) would end every track, or keep a ghost track and
        pause the idle sweep for as long as it went back. Events are stamped with the frame's
        wall-clock time, for people to read."""
        parts = self._take_up_parts()
        try:
            result = self.pipeline.process(frame.pixels, frame.mono)
        except Exception:  # one bad frame must not end the camera
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.exception("camera %s: frame failed (%d so far)", self.name, self.errors)
            return
        done = time.monotonic()
        for event in result.events:
            event = replace(event, t=frame.t)
            self._visit(parts.visitors, event)
            jpeg = self._crop_jpeg(frame.image, event.box) if self.snapshot else None
            try:
                parts.publisher.publish_face_image(self.name, event, frame.image)  # first: automations find it
                parts.publisher.publish_identity(self.name, event, jpeg)
                parts.publisher.publish_home(self.name, event, done - frame.mono)
            except (ValueError, OSError, RuntimeError) as e:  # never let MQTT trouble stop the camera
                log.error("camera %s: cannot publish event: %s", self.name, e)
            log.info("camera %s: %s (score %.3f, track %d, angle %+.0f)", self.name,
                     event.name if event.name is not None else "unknown face", event.score, event.track_id,
                     event.angle)
            self._keep_crop(parts.events, event, frame.image)
        self._report_sightings(parts, result.faces, frame.mono, frame.t)
        with self._lock:
            self._frames += 1
            self._latency_ms.append((done - frame.mono) * 1e3)
            self._faces += len(result.faces)
            self._events += len(result.events)

    def _visit(self, visitors: VisitorBook | None, event) -> None:
        """An unknown face joins (or starts) a visitor: its id and appearance count go with the event."""
        if visitors is None or event.name is not None or event.embedding is None:
            return
        try:
            visitor, event.new_visit = visitors.see(event.embedding, self.name, event.track_id, event.t)
        except OSError as e:  # a full disk must not stop the camera
            log.error("camera %s: cannot record the visitor in %s: %s", self.name, visitors.path, e)
            return
        event.visitor_id, event.visits = visitor.id, visitor.appearances

    def _keep_crop(self, store: EventStore | None, event, image: np.ndarray) -> None:
        if store is None:
            return
        try:
            kept = store.add(self.name, event.name, event.score, event.box, event.t, image)
            visitors = self.parts.visitors
            if kept is not None and event.visitor_id is not None and visitors is not None:
                visitors.add_crop(event.visitor_id, kept.id)
        except Exception as e:  # a full disk, a bad record: a kept crop is never worth the camera
            log.error("camera %s: cannot keep the event's face crop in %s: %s", self.name, store.folder, e)

    def _report_sightings(self, parts: WorkerParts, faces, mono: float, wall: float) -> None:
        """Every face whose identity was announced keeps its person (or the unknown visitor) present."""
        for track, _ in faces:
            if track.announced and not track.recheck:
                try:
                    parts.publisher.publish_presence(
                        parts.presence.seen(track.announced_name, self.name, track.score, mono, wall))
                except (ValueError, OSError, RuntimeError) as e:
                    log.error("camera %s: cannot publish presence: %s", self.name, e)

    @staticmethod
    def _crop_jpeg(image: np.ndarray, box) -> bytes | None:
        x, y, w, h = (int(v) for v in box)
        h_img, w_img = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w_img, x + w), min(h_img, y + h)
        if x1 <= x0 or y1 <= y0:
            return None
        ok, buf = cv2.imencode(".jpg", image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else None
