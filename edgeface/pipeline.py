"""Wiring of the stages: detect -> chip -> embed -> match (-> track for video).

`Recognizer` answers "who is in this picture" for still images (enroll, identify).
`FramePipeline` adds tracking for video, so a face that stays in view is embedded only as
often as the tracker asks, and identities come out as events rather than per frame.
`build_recognizer` is the one way every command (enroll, identify, bench, the daemon) turns a
config into a Recognizer, so they cannot disagree about detection, alignment or the model.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from edgeface.chip import cut_chips
from edgeface.detect import Detection, HaarDetector
from edgeface.embed import Embedder, ModelSpec
from edgeface.landmarks import Aligner
from edgeface.match import Match, Matcher
from edgeface.track import IdentityEvent, Track, Tracker

if TYPE_CHECKING:
    from edgeface.config import Config
    from edgeface.gallery import Gallery


class Detector(Protocol):
    """What a Recognizer needs of a face detector (edgeface.detect.HaarDetector)."""

    def detect(self, frame: np.ndarray, regions: Sequence[Detection] | None = None,
               angles: Sequence[float] | None = None) -> list[Detection]: ...


class FaceEmbedder(Protocol):
    """What a Recognizer needs of an embedder (edgeface.embed.Embedder, or the daemon's shared one)."""

    @property
    def spec(self) -> ModelSpec: ...

    def embed(self, chips: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Face:
    detection: Detection
    name: str | None
    score: float
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)


ALIGNMENTS = ("landmarks", "box")


class Recognizer:
    """align: "landmarks" cuts chips on five landmarks found inside each Haar box, as dlib frames
    the faces its embedder was trained on (closer chips, higher scores for the right person,
    ~3 ms a face); "box" frames them from the Haar box alone (0.1 ms a face)."""

    def __init__(self, detector: HaarDetector, embedder: FaceEmbedder, matcher: Matcher | None = None,
                 align: str = "landmarks"):
        if align not in ALIGNMENTS:
            raise ValueError(f"align must be one of {', '.join(ALIGNMENTS)}, not {align!r}")
        self.detector, self.embedder, self.matcher = detector, embedder, matcher
        self.aligner = Aligner() if align == "landmarks" else None

    def chips(self, frame: np.ndarray, detections: list[Detection]) -> np.ndarray:
        spec = self.embedder.spec
        if self.aligner is not None:
            chips = self.aligner.chips(frame, detections, size=spec.input_size, padding=spec.padding)
        else:
            chips = cut_chips(frame, detections, size=spec.input_size, padding=spec.padding)
        if spec.color_order == "BGR":
            chips = chips[..., ::-1]
        return chips

    def embed(self, frame: np.ndarray, detections: list[Detection]) -> np.ndarray:
        if not detections:
            return np.zeros((0, self.embedder.spec.embedding_size), np.float32)
        return self.embedder.embed(self.chips(frame, detections))

    def match(self, embeddings: np.ndarray) -> list[Match]:
        if self.matcher is None or len(self.matcher) == 0:
            return [Match(None, 0.0, None) for _ in range(len(embeddings))]
        return self.matcher.match(embeddings)

    def recognize(self, frame: np.ndarray) -> list[Face]:
        detections = self.detector.detect(frame)
        embeddings = self.embed(frame, detections)
        return [
            Face(d, m.name, m.score, e) for d, m, e in zip(detections, self.match(embeddings), embeddings)
        ]


@dataclass
class FrameResult:
    faces: list[tuple[Track, Match | None]]  # every face in the frame and, if embedded now, its match
    events: list[IdentityEvent]  # identities decided in this frame
    stages_ms: dict[str, float]


class FramePipeline:
    """Video path: detection, tracking, and embedding only where the tracker needs it."""

    STAGES = ("detect", "track", "chip", "embed", "match")

    def __init__(self, recognizer: Recognizer, tracker: Tracker):
        self.recognizer, self.tracker = recognizer, tracker
        self.frame_index = 0
        self._thumb: np.ndarray | None = None  # the previous frame's thumbnail (scene changes)
        self._steady = True  # the picture has settled since the last scene change
        self.full_sweeps = 0

    def scene_changed(self, frame: np.ndarray) -> bool:
        """Whether the picture jumped as a whole between the previous frame and this one:
        their 64x48 thumbnails' mean absolute difference rose above detection.scene_change.
        It must fall below half of that before another change counts, so a camera that pans
        or flickers for a while causes one change, not one per frame (each makes the tracker
        vote again, which would otherwise never settle)."""
        threshold = self.recognizer.detector.cfg.scene_change
        if threshold <= 0:
            return False
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        thumb = cv2.resize(grey, (64, 48), interpolation=cv2.INTER_AREA)
        previous, self._thumb = self._thumb, thumb
        if previous is None:
            return False
        difference = float(cv2.absdiff(thumb, previous).mean())
        if self._steady:
            changed = difference > threshold
            self._steady = not changed
        else:
            changed = False
            self._steady = difference < threshold / 2
        return changed

    def detect(self, frame: np.ndarray, changed: bool = False) -> list[Detection]:
        """A full angle sweep when nothing is tracked or the scene ``changed``; otherwise the
        region search near the tracked faces plus this frame's share of a rolling sweep."""
        detector = self.recognizer.detector
        tracked = [tr.detection for tr in self.tracker.tracks]
        self.frame_index += 1
        if not tracked or changed:
            self.full_sweeps += 1
            return detector.detect(frame)
        return detector.detect(frame, regions=tracked,
                               angles=detector.rolling_angles(self.frame_index, detector.cfg.sweep_period))

    def process(self, frame: np.ndarray, t: float) -> FrameResult:
        stages = {}
        clock = time.perf_counter
        t0 = clock()
        changed = self.scene_changed(frame)
        if changed:
            self.tracker.new_scene()
        detections = self.detect(frame, changed)
        t1 = clock()
        tracks = self.tracker.update(detections, t)
        todo = [tr for tr in tracks if tr.needs_embedding(t)]
        t2 = clock()
        chips = self.recognizer.chips(frame, [tr.detection for tr in todo]) if todo else None
        t3 = clock()
        embeddings = self.recognizer.embedder.embed(chips) if todo else np.zeros((0, 0), np.float32)
        t4 = clock()
        matches = self.recognizer.match(embeddings) if todo else []
        by_track = {}
        for tr, m in zip(todo, matches):
            self.tracker.observe(tr, m.name, m.score, t)
            by_track[tr.id] = m
        events = self.tracker.events(t)
        t5 = clock()
        stages.update(detect=(t1 - t0) * 1e3, track=(t2 - t1) * 1e3, chip=(t3 - t2) * 1e3,
                      embed=(t4 - t3) * 1e3, match=(t5 - t4) * 1e3)
        return FrameResult([(tr, by_track.get(tr.id)) for tr in tracks], events, stages)


def load_matcher(gallery: Gallery, spec: ModelSpec, threshold: float | None = None) -> Matcher:
    """The gallery's current embeddings, checked against the model, ready to match."""
    gallery.check_model(spec.model_id)
    names, vectors = gallery.vectors(spec.embedding_size)
    return Matcher(names, vectors, spec.threshold if threshold is None else threshold)


def load_embedder(cfg: Config) -> Embedder:
    """The embedder cfg.model and cfg.recognition describe (the shipped int8 model by default)."""
    rec = cfg.recognition
    return Embedder(cfg.model, num_threads=rec.num_threads, delegate=rec.delegate,
                    delegate_options=rec.delegate_options or None, strict=rec.strict)


def build_recognizer(cfg: Config, gallery: Gallery | None = None, *, embedder: FaceEmbedder | None = None,
                     matcher: Matcher | None = None) -> Recognizer:
    """The Recognizer a config describes: its detection settings, alignment, model and threshold.

    Every command builds it here. ``gallery`` loads a matcher (identify, bench); without one
    (enroll) nothing is named. The daemon passes the ``embedder`` and ``matcher`` that all its
    cameras share."""
    embedder = embedder if embedder is not None else load_embedder(cfg)
    if matcher is None and gallery is not None:
        matcher = load_matcher(gallery, embedder.spec, cfg.recognition.threshold)
    return Recognizer(HaarDetector(cfg.detection), embedder, matcher, align=cfg.recognition.align)


def build_frame_pipeline(cfg: Config, recognizer: Recognizer) -> FramePipeline:
    """The video path for one camera (the daemon) or one clip (bench)."""
    return FramePipeline(recognizer, Tracker(cfg.tracking))
