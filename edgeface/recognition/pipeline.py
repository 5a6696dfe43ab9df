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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from edgeface.config import MotionConfig
from edgeface.recognition.embed import Embedder, ModelSpec
from edgeface.recognition.embed_openvino import OpenVinoEmbedder
from edgeface.recognition.match import Match, Matcher, OpenSetRule
from edgeface.recognition.track import IdentityEvent, Track, Tracker
from edgeface.vision.chip import cut_chips
from edgeface.vision.detect import ChipFaceCheck, Detection, HaarDetector
from edgeface.vision.landmarks import Aligner
from edgeface.vision.motion import MotionDetector, small_grey

if TYPE_CHECKING:
    from edgeface.config import Config, RecognitionConfig
    from edgeface.store.gallery import Gallery


class Detector(Protocol):
    """What a Recognizer needs of a face detector (edgeface.vision.detect.HaarDetector)."""

    def detect(self, frame: np.ndarray, regions: Sequence[Detection] | None = None,
               angles: Sequence[float] | None = None) -> list[Detection]: ...


class FaceEmbedder(Protocol):
    """What a Recognizer needs of an embedder (edgeface.recognition.embed.Embedder, or the daemon's shared one)."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def runtime(self) -> str: ...  # recognition.runtime: litert or openvino

    @property
    def device(self) -> str: ...  # what runs the model: LiteRT's delegate, OpenVINO's device

    def embed(self, chips: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Face:
    detection: Detection
    name: str | None
    score: float
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)


ALIGNMENTS = ("landmarks", "box")
# Canvas margin, in picture sides, for a still image where no face was found (Recognizer.find).
# On five-celebs, 0.25 found a face in 7 of the 15 photos and 3 of the 6 tight crops the plain
# sweep missed; 0.5 found fewer (4 and 2): the face gets too small for the detection resolution.
STILL_PAD = 0.25
# ... and the share of the picture's shorter side such a face must span (tight crops: 0.7-1.3).
CROP_FACE_SHARE = 0.5


class Recognizer:
    """align: "landmarks" cuts chips on five landmarks found inside each Haar box, as dlib frames
    the faces its embedder was trained on (closer chips, higher scores for the right person,
    ~3 ms a face); "box" frames them from the Haar box alone (0.1 ms a face)."""

    def __init__(self, detector: Detector, embedder: FaceEmbedder, matcher: Matcher | None = None,
                 align: str = "landmarks", mirror: bool = False):
        if align not in ALIGNMENTS:
            raise ValueError(f"align must be one of {', '.join(ALIGNMENTS)}, not {align!r}")
        self.detector, self.embedder, self.matcher = detector, embedder, matcher
        self.aligner = Aligner() if align == "landmarks" else None
        self.mirror = mirror

    def chips(self, frame: np.ndarray, detections: list[Detection]) -> np.ndarray:
        spec = self.embedder.spec
        if self.aligner is not None:
            chips = self.aligner.chips(frame, detections, size=spec.input_size, padding=spec.padding)
        else:
            chips = cut_chips(frame, detections, size=spec.input_size, padding=spec.padding)
        if spec.color_order == "BGR":
            chips = chips[..., ::-1]
        return chips

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Unit embeddings of chips; with ``mirror``, each chip and its mirror image are embedded
        and the two averaged (twice the embedding cost; models/README.md, "Open set")."""
        if len(chips) == 0:
            return np.zeros((0, self.embedder.spec.embedding_size), np.float32)
        if not self.mirror:
            return self.embedder.embed(chips)
        both = self.embedder.embed(np.concatenate([chips, chips[:, :, ::-1]]))
        mean = both[: len(chips)] + both[len(chips):]
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

    def embed(self, frame: np.ndarray, detections: list[Detection]) -> np.ndarray:
        if not detections:
            return np.zeros((0, self.embedder.spec.embedding_size), np.float32)
        return self.embed_chips(self.chips(frame, detections))

    def match(self, embeddings: np.ndarray) -> list[Match]:
        if self.matcher is None or len(self.matcher) == 0:
            return [Match(None, 0.0, None) for _ in range(len(embeddings))]
        return self.matcher.match(embeddings)

    def find(self, image: np.ndarray) -> list[Detection]:
        """Faces in a still image (enroll, identify): the full sweep, and when it finds none, the
        sweep again on the picture set in a larger canvas, grey then its own edges repeated. A
        tight face crop (an ID photo, a crop exported by another system) cuts off the forehead and
        chin the cascade looks for; around it, the canvas lets the face be seen whole. Only a face
        that fills most of the picture is taken this way (a crop): in full photos, faces the
        retry found at the edges were often someone else or not a face. The cascade still
        decides: a picture without a face gains none (tests: textures, a cat, a rocket). Boxes
        may then reach past the picture. Video frames never take this path."""
        found = self.detector.detect(image)
        if found:
            return found
        h, w = image.shape[:2]
        pad = max(1, int(round(STILL_PAD * max(h, w))))
        for border in (cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE):
            canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, border, value=(128, 128, 128))
            found = [d for d in self.detector.detect(canvas) if d.size >= CROP_FACE_SHARE * min(h, w)]
            if found:
                return [replace(d, cx=d.cx - pad, cy=d.cy - pad) for d in found]
        return []

    def recognize(self, frame: np.ndarray) -> list[Face]:
        detections = self.find(frame)
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
    """Video path: detection, tracking, and embedding only where the tracker needs it.

    With ``motion`` (a MotionConfig, enabled) the detection schedule follows the motion stage
    (edgeface.vision.motion): nothing tracked and nothing moving runs no cascade at all; moving areas
    get the full angle sweep, or their share of a rolling sweep when they move with a tracked face;
    tracked faces keep their region search whether they move or not; and a slow whole-frame
    sweep, one angle at a time over motion.idle_sweep_s, finds faces that never moved.
    Without it (or motion.enabled false) every frame is searched as detect() describes."""

    STAGES = ("motion", "detect", "track", "chip", "embed", "match")

    def __init__(self, recognizer: Recognizer, tracker: Tracker, motion: MotionConfig | None = None):
        if not isinstance(recognizer.detector, HaarDetector):  # rolling sweeps, region search and scans
            raise TypeError("FramePipeline schedules a HaarDetector's searches; got "
                            f"{type(recognizer.detector).__name__}")
        self.recognizer, self.tracker, self.detector = recognizer, tracker, recognizer.detector
        self.face_check = ChipFaceCheck()
        self.motion = MotionDetector(motion) if motion is not None and motion.enabled else None
        self.frame_index = 0
        self._thumb: np.ndarray | None = None  # the previous frame's thumbnail (scene changes)
        self._steady = True  # the picture has settled since the last scene change
        self.full_sweeps = 0
        self.cascade_frames = 0  # frames on which any cascade ran (the rest cost only the motion stage)
        self._idle_k = 0  # the next angle (index into upright-first order) of the slow whole-frame sweep
        self._idle_due: float | None = None  # when it is due (frame time, seconds)
        self._motion_ms = 0.0
        self._small: np.ndarray | None = None  # this frame's small grey copy, once made
        self._quiet = False  # the last motion check found nothing moving
        self._skipped = 0  # frames since the last one that was looked at

    def scene_changed(self, frame: np.ndarray) -> bool:
        """Whether the picture jumped as a whole between the previous frame and this one:
        their 64x48 thumbnails' mean absolute difference rose above detection.scene_change.
        It must fall below half of that before another change counts, so a camera that pans
        or flickers for a while causes one change, not one per frame (each makes the tracker
        vote again, which would otherwise never settle)."""
        threshold = self.detector.cfg.scene_change
        if threshold <= 0:
            return False
        if self.motion is not None:  # the motion stage's small grey copy serves both
            t0 = time.perf_counter()
            self._small = grey = small_grey(frame, self.motion.cfg.width)
            self._motion_ms += (time.perf_counter() - t0) * 1e3
        else:
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

    def idle_angles(self, t: float) -> list[float]:
        """This frame's share of the slow whole-frame sweep: the next angle (upright first) once
        every idle_sweep_s / len(angles) seconds, never more than one a frame; after a gap
        (a stalled camera) it goes on from now rather than catching up in a burst."""
        assert self.motion is not None
        angles = sorted(self.detector.cfg.angles, key=abs)
        step = self.motion.cfg.idle_sweep_s / max(1, len(angles))
        if step <= 0 or not angles:
            return []
        if self._idle_due is None or t - self._idle_due > step:
            self._idle_due = t
        if t < self._idle_due:
            return []
        self._idle_due += step
        self._idle_k += 1
        return [angles[(self._idle_k - 1) % len(angles)]]

    def detect(self, frame: np.ndarray, changed: bool = False, t: float | None = None) -> list[Detection]:
        """Without motion gating: a full angle sweep when nothing is tracked or the scene
        ``changed``, otherwise the region search near the tracked faces plus this frame's
        share of a rolling sweep. With it, the schedule in the class docstring."""
        detector = self.detector
        tracked = [tr.detection for tr in self.tracker.tracks]
        self.frame_index += 1
        if self.motion is None:
            self.cascade_frames += 1
            if not tracked or changed:
                self.full_sweeps += 1
                return detector.detect(frame)
            return detector.detect(frame, regions=tracked,
                                   angles=detector.rolling_angles(self.frame_index, detector.cfg.sweep_period))
        t0 = time.perf_counter()
        if changed:
            self.motion.reset()  # the new picture is the background from now on
        first = self.motion.background is None  # start-up: nothing to compare with yet
        areas = self.motion.areas(frame, self._small)
        self._quiet = not areas
        self._small = None
        self._motion_ms += (time.perf_counter() - t0) * 1e3
        if changed or (first and not tracked):  # one full sweep, as without motion gating
            self.cascade_frames += 1
            self.full_sweeps += 1
            return detector.detect(frame)
        # A moving area with no tracked face in it is someone new: every angle over it now. One
        # holding a face found on the last frame (it moves) may hide a newcomer too: its share of a
        # rolling sweep. A track the last frame missed does not count: its person has moved out of
        # the region search (sliding in through a door, say), so the area gets every angle.
        found = [tr.detection for tr in self.tracker.tracks if tr.missed == 0]
        rolling = detector.rolling_angles(self.frame_index, self.motion.cfg.sweep_period)
        scans: list[tuple[tuple[int, int, int, int] | None, list[float]]] = [
            (a, rolling if any(_near(d, a) for d in found) else list(detector.cfg.angles)) for a in areas]
        idle = self.idle_angles(self.frame_index / 15.0 if t is None else t)
        if idle:
            scans.append((None, idle))
        if not tracked and not any(a for _, a in scans):
            return []
        self.cascade_frames += 1
        return detector.detect(frame, regions=tracked or None, scans=scans)

    def process(self, frame: np.ndarray, t: float) -> FrameResult:
        stages: dict[str, float] = {}
        clock = time.perf_counter
        t0 = clock()
        self._motion_ms = 0.0
        self._small = None
        self._skipped += 1
        stride = self.motion.cfg.idle_stride if self.motion is not None else 1
        if self._quiet and not self.tracker.tracks and self._skipped < stride:
            detections: list[Detection] = []  # a still, empty room: look only every idle_stride-th frame
            self.frame_index += 1
        else:
            self._skipped = 0
            changed = self.scene_changed(frame)
            if changed:
                self.tracker.new_scene()
            detections = self.detect(frame, changed, t)
        t1 = clock()
        tracks = self.tracker.update(detections, t)
        todo = [tr for tr in tracks if tr.needs_embedding(t)]
        t2 = clock()
        chips = self.recognizer.chips(frame, [tr.detection for tr in todo])
        t3 = clock()
        embeddings = self.recognizer.embed_chips(chips) if todo else np.zeros((0, 0), np.float32)
        t4 = clock()
        matches = self.recognizer.match(embeddings) if todo else []
        by_track = {}
        for tr, m, chip, embedding in zip(todo, matches, chips, embeddings):
            if m.name is None and not tr.face_confirmed and self.tracker.cfg.unknown_face_check:
                tr.face_confirmed = self.face_check(chip)
            if m.name is None:  # what an unknown face looks like, for grouping it into a visitor
                tr.unknown_sum = embedding if tr.unknown_sum is None else tr.unknown_sum + embedding
            self.tracker.observe(tr, m.name, m.score, t)
            by_track[tr.id] = m
        events = self.tracker.events(t)
        t5 = clock()
        stages.update(motion=self._motion_ms, detect=(t1 - t0) * 1e3 - self._motion_ms, track=(t2 - t1) * 1e3,
                      chip=(t3 - t2) * 1e3, embed=(t4 - t3) * 1e3, match=(t5 - t4) * 1e3)
        return FrameResult([(tr, by_track.get(tr.id)) for tr in tracks], events, stages)


def _near(det: Detection, box: tuple[int, int, int, int]) -> bool:
    """``box`` reaches within 1.5 face sizes of the face's centre (it moves with that person:
    their head, or the edge of their body or picture)."""
    x, y, w, h = box
    r = 1.5 * det.size
    return x - r <= det.cx < x + w + r and y - r <= det.cy < y + h + r


def load_matcher(gallery: Gallery | None, spec: ModelSpec, recognition: RecognitionConfig | None = None) -> Matcher:
    """The gallery's current embeddings (and negatives), checked against the model, ready to
    match; with no gallery (the daemon's, not there yet) an empty matcher: everyone unknown.
    recognition.threshold None: the open-set rule from the model's threshold; a number: that fixed threshold."""
    from edgeface.config import RecognitionConfig

    rec = recognition or RecognitionConfig()
    rule = (OpenSetRule(spec.threshold, margin=rec.margin) if rec.threshold is None
            else OpenSetRule.fixed(rec.threshold, rec.margin))
    if gallery is None:
        return Matcher([], np.zeros((0, spec.embedding_size), np.float32), rule)
    gallery.check_model(spec.model_id)
    names, vectors = gallery.vectors(spec.embedding_size)
    return Matcher(names, vectors, rule, negatives=gallery.vectors(spec.embedding_size, negatives=True))


def load_embedder(cfg: Config) -> Embedder | OpenVinoEmbedder:
    """The embedder cfg.model and cfg.recognition describe (the shipped int8 model by default),
    on recognition.runtime: LiteRT with its delegate, or OpenVINO on recognition.device."""
    rec = cfg.recognition
    if rec.runtime == "openvino":
        return OpenVinoEmbedder(cfg.model, device=rec.device, num_threads=rec.num_threads, strict=rec.strict)
    return Embedder(cfg.model, num_threads=rec.num_threads, delegate=rec.delegate,
                    delegate_options=rec.delegate_options or None, strict=rec.strict)


RUNTIME_PACKAGES = {"litert": "ai-edge-litert", "openvino": "openvino"}


def runtime_info(embedder: FaceEmbedder) -> dict[str, str]:
    """Which runtime and device ran the model, and the runtime package's version (bench, identify)."""
    from importlib.metadata import PackageNotFoundError, version

    info = {"name": embedder.runtime, "device": embedder.device}
    try:
        info["version"] = version(RUNTIME_PACKAGES.get(embedder.runtime, embedder.runtime))
    except PackageNotFoundError:  # LiteRT's API from tflite_runtime or TensorFlow
        pass
    return info


def describe_runtime(embedder: FaceEmbedder) -> str:
    """One line for people: "openvino 2026.4.1 on CPU"."""
    info = runtime_info(embedder)
    return f"{info['name']} {info.get('version', '')} on {info['device']}".replace("  ", " ")


def build_recognizer(cfg: Config, gallery: Gallery | None = None, *, embedder: FaceEmbedder | None = None,
                     matcher: Matcher | None = None) -> Recognizer:
    """The Recognizer a config describes: its detection settings, alignment, model and threshold.

    Every command builds it here. ``gallery`` loads a matcher (identify, bench); without one
    (enroll) nothing is named. The daemon passes the ``embedder`` and ``matcher`` that all its
    cameras share."""
    embedder = embedder if embedder is not None else load_embedder(cfg)
    if matcher is None and gallery is not None:
        matcher = load_matcher(gallery, embedder.spec, cfg.recognition)
    return Recognizer(HaarDetector(cfg.detection), embedder, matcher, align=cfg.recognition.align)


def build_frame_pipeline(cfg: Config, recognizer: Recognizer) -> FramePipeline:
    """The video path for one camera (the daemon) or one clip (bench)."""
    return FramePipeline(recognizer, Tracker(cfg.tracking), cfg.motion)
