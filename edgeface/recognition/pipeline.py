"""Wiring of the stages: detect -> chip -> embed -> match (-> track for video).

`Recognizer` answers "who is in this picture" for still images (enroll, identify).
`FramePipeline` adds tracking for video, so a face that stays in view is embedded only as
often as the tracker asks, and identities come out as events rather than per frame.
`build_recognizer` is the one way every command (enroll, identify, bench, the daemon) turns a
config into a Recognizer, so they cannot disagree about detection, alignment or the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from edgeface.config import MotionConfig
from edgeface.recognition.embed import Embedder, ModelSpec
from edgeface.recognition.embed_openvino import OpenVinoEmbedder
from edgeface.recognition.match import Match, Matcher, OpenSetRule
from edgeface.recognition.track import IdentityEvent, Track, Tracker, continues
from edgeface.vision.chip import cut_chips
from edgeface.vision.detect import ChipFaceCheck, Detection, HaarDetector, Hit, Prepared
from edgeface.vision.follow import FaceTemplate, cut_template, follow
from edgeface.vision.images import content_box
from edgeface.vision.landmarks import Aligner
from edgeface.vision.motion import MotionDetector
from edgeface.vision.pixels import FramePixels
from edgeface.vision.schedule import DetectionSchedule, FramePlan

if TYPE_CHECKING:
    from edgeface.config import Config, RecognitionConfig
    from edgeface.store.gallery import Gallery


class Detector(Protocol):
    """What a Recognizer needs of a face detector (edgeface.vision.detect.HaarDetector)."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


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
# Queued passes' hits are kept this many frames and merged with the next frames' (about one new
# area's sweep at one or two passes a frame).
EARLIER_HITS_FRAMES = 6


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
        chin the cascade looks for; around it, the canvas lets the face be seen whole. A crop another
        system already pasted on a plain canvas is trimmed to itself first. Only a face that fills
        most of the picture (of the crop) is taken this way: in full photos, faces the
        retry found at the edges were often someone else or not a face. The cascade still
        decides: a picture without a face gains none (tests: textures, a cat, a rocket). Boxes
        may then reach past the picture. Video frames never take this path."""
        found = self.detector.detect(image)
        if found:
            return found
        # a crop pasted on a plain canvas: the crop is the picture (its own edges repeat around it, and
        # the face's share is of the crop, not of the canvas)
        x0, y0, x1, y1 = content_box(image)
        crop = image[y0:y1, x0:x1]
        h, w = crop.shape[:2]
        pad = max(1, int(round(STILL_PAD * max(h, w))))
        for border in (cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE):
            canvas = cv2.copyMakeBorder(crop, pad, pad, pad, pad, border, value=(128, 128, 128))
            found = [d for d in self.detector.detect(canvas) if d.size >= CROP_FACE_SHARE * min(h, w)]
            if found:
                return [replace(d, cx=d.cx - pad + x0, cy=d.cy - pad + y0) for d in found]
        # dlib's HOG detector, on the last canvas above (edges repeated: a face at the edge is whole to
        # its filters); its turned-head filters see heads the frontal cascade misses
        hog = getattr(self.detector, "detect_hog", None)
        if hog is None:
            return []
        return [replace(d, cx=d.cx - pad + x0, cy=d.cy - pad + y0) for d in hog(canvas)]

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

    Each frame's detection is planned by a DetectionSchedule (edgeface.vision.schedule): tracked
    faces' region search always, then queued passes (new moving areas, areas around tracked faces,
    remembered empty moving areas, the slow whole-frame sweep) until detection.budget_ms is spent.
    With ``motion`` (a MotionConfig, enabled) the moving areas come from the motion stage and
    nothing tracked and nothing moving runs no cascade at all; without it the whole frame counts
    as moving. Frames may come as FramePixels: a JPEG is decoded only as far as needed (reduced
    grey for the motion check, in full only for detection or chips), and not at all on the frames
    an empty, still room lets pass (motion.idle_stride)."""

    STAGES = ("motion", "detect", "track", "chip", "embed", "match")

    def __init__(self, recognizer: Recognizer, tracker: Tracker, motion: MotionConfig | None = None):
        if not isinstance(recognizer.detector, HaarDetector):  # the schedule plans a HaarDetector's passes
            raise TypeError("FramePipeline schedules a HaarDetector's searches; got "
                            f"{type(recognizer.detector).__name__}")
        self.recognizer, self.tracker, self.detector = recognizer, tracker, recognizer.detector
        self.face_check = ChipFaceCheck()
        self.motion = MotionDetector(motion) if motion is not None and motion.enabled else None
        self.schedule = DetectionSchedule(partial(self.detector.sweep, video=True), self.detector.cfg,
                                          motion if self.motion is not None else None)
        self.scenes = SceneChange(self.detector.cfg.scene_change)
        self.frame_index = 0
        self.cascade_frames = 0  # frames on which any cascade ran (the rest cost only the motion stage)
        self._quiet = False  # the last motion check found nothing moving
        self._skipped = 0  # frames since the last one that was looked at
        self._earlier_hits: list[tuple[int, Hit]] = []  # queued passes' hits of the last few frames
        self._prep: Prepared | None = None  # this frame's detection picture (None: no cascade ran)
        self._templates: dict[int, FaceTemplate] = {}  # per track id: its face's look, to follow it by

    @property
    def full_sweeps(self) -> int:
        return self.schedule.full_sweeps

    def plan(self, px: FramePixels, t: float) -> tuple[FramePlan, float]:
        """This frame's detection plan, and the milliseconds the motion stage took."""
        tracked = [tr.detection for tr in self.tracker.tracks]
        # A track the last frame missed does not count as found: its person has moved out of the
        # region search (sliding in through a door, say), so their area gets every pass.
        # A followed face (vision.follow) is not found either: the cascade lost it.
        found = [tr.detection for tr in self.tracker.tracks if tr.missed == 0 and not tr.detection.followed]
        self.frame_index += 1
        t0 = time.perf_counter()
        small = px.small_grey(self.motion.cfg.width if self.motion is not None else SceneChange.WIDTH)
        changed = self.scenes.changed(small)
        if changed:
            self.tracker.new_scene()
        if self.motion is None:
            return self.schedule.plan(self.frame_index, t, tracked, found, None, restart=changed), \
                (time.perf_counter() - t0) * 1e3
        if changed:
            self.motion.reset()  # the new picture is the background from now on
        first = self.motion.background is None  # start-up: nothing to compare with yet
        areas = self.motion.areas_in(small, px.size)
        self._quiet = not areas
        motion_ms = (time.perf_counter() - t0) * 1e3
        restart = changed or (first and not tracked)  # one full search, as without motion gating
        return self.schedule.plan(self.frame_index, t, tracked, found, areas, restart=restart), motion_ms

    def detect(self, px: FramePixels, plan: FramePlan, t: float) -> list[Detection]:
        """Run ``plan``: the region search, then queued passes until the budget is spent."""
        self._prep = None
        if plan.empty:
            self.schedule.finish(plan, 0, [], t)
            return []
        self.cascade_frames += 1
        detector, clock = self.detector, time.perf_counter
        t0 = clock()
        prep = self._prep = detector.prepare(px.bgr())
        hits = [h for r in plan.tracked for h in detector.track_search(prep, r)]
        queued: list[Hit] = []
        ran = 0
        for job in plan.jobs:
            if ran and plan.budget_ms and not plan.in_full and (clock() - t0) * 1e3 >= plan.budget_ms:
                break
            queued += detector.scan(prep, job.now())
            ran += 1
        if plan.full_sweep:
            self._earlier_hits.clear()  # start-up or a scene change: what was seen before is gone
        # The budget spreads an area's passes over frames, so one face's hits at neighbouring rolls
        # (-20 and -40 for a face at -31) come on different frames; merged as one sweep's, they place
        # the face at its roll for the second opinion. (door_clip seed 4: Elton's hits at one roll a
        # frame never verified, and he was named 1.7 s late or not at all.)
        earlier = [h for f, h in self._earlier_hits
                   if not any(_covers(d, h) for d in plan.tracked)]  # a tracked face has its own search
        found = detector.select(detector.candidates(prep, hits + queued + earlier, plan.tracked))
        self._earlier_hits = [(f, h) for f, h in self._earlier_hits + [(self.frame_index, replace(h, earlier=True))
                                                                       for h in queued]
                              if self.frame_index - f < EARLIER_HITS_FRAMES and not any(_covers(d, h) for d in found)]
        self.schedule.finish(plan, ran, found, t)
        return found

    def followed(self, detections: list[Detection], t: float) -> list[Detection]:
        """Followed detections (vision.follow) for the live tracks this frame's detections miss,
        within tracking.follow_s of the cascade's last finding them."""
        cfg, prep = self.tracker.cfg, self._prep
        if prep is None or cfg.follow_s <= 0:
            return []
        out = []
        for tr in self.tracker.tracks:
            template = self._templates.get(tr.id)
            if (template is None or t - template.t > cfg.follow_s or not tr.steady
                    or any(continues(tr.detection, d, cfg) for d in detections)):
                continue
            found, _ = follow(prep.grey, prep.scale, template, tr.detection, cfg.follow_min_score)
            if found is not None:
                out.append(found)
        return out

    def remember_looks(self, tracks: list[Track], t: float) -> None:
        """Each steady track's look as the cascade last found it; forgotten with the track."""
        live = {tr.id for tr in self.tracker.tracks}
        self._templates = {k: v for k, v in self._templates.items() if k in live}
        if self._prep is None or self.tracker.cfg.follow_s <= 0:
            return
        for tr in tracks:
            if not tr.detection.followed and tr.steady:
                template = cut_template(self._prep.grey, self._prep.scale, tr.detection, t)
                if template is not None:
                    self._templates[tr.id] = template

    def checked_name(self, track: Track, match: Match, chip: np.ndarray) -> str | None:
        """The name one chip gives ``track``: ``match``'s, except that a close match (clearing its
        threshold by less than tracking.rename_margin) names it only when the chip passes the face
        check (ChipFaceCheck). A chip that matches nobody is checked until one passes, for the
        unknown-face event (tracking.unknown_face_check)."""
        cfg = self.tracker.cfg
        if match.name is not None and match.clearance < cfg.rename_margin and cfg.close_match_face_check:
            if not self.face_check(chip):
                return None
            track.face_confirmed = True
        elif match.name is None and not track.face_confirmed and cfg.unknown_face_check:
            track.face_confirmed = self.face_check(chip)
        return match.name

    def process(self, frame: np.ndarray | FramePixels, t: float) -> FrameResult:
        px = frame if isinstance(frame, FramePixels) else FramePixels(frame)
        clock = time.perf_counter
        t0 = clock()
        motion_ms = 0.0
        self._skipped += 1
        stride = self.motion.cfg.idle_stride if self.motion is not None else 1
        if self._quiet and not self.tracker.tracks and not self.schedule.queue and self._skipped < stride:
            # a still, empty room with nothing left to search: look only every idle_stride-th frame
            detections: list[Detection] = []
            self._prep = None
            self.frame_index += 1
        else:
            self._skipped = 0
            plan, motion_ms = self.plan(px, t)
            detections = self.detect(px, plan, t)
            detections += self.followed(detections, t)
        t1 = clock()
        tracks = self.tracker.update(detections, t)
        self.remember_looks(tracks, t)
        # a profile-only face keeps its track alive but gives no chip to name from: on make_clip clips its
        # chips (a box placed on half a face) named the wrong person in 24-34 frames of 250; nor does
        # a followed one (placed by its look, not found by the cascade)
        todo = [tr for tr in tracks if tr.needs_embedding(t) and not tr.detection.profile
                and not tr.detection.followed]
        t2 = clock()
        chips = self.recognizer.chips(px.bgr(), [tr.detection for tr in todo]) if todo else None
        t3 = clock()
        embeddings = self.recognizer.embed_chips(chips) if chips is not None else np.zeros((0, 0), np.float32)
        t4 = clock()
        matches = self.recognizer.match(embeddings) if todo else []
        by_track = {}
        for tr, m, chip, embedding in zip(todo, matches, chips if chips is not None else [], embeddings):
            name = self.checked_name(tr, m, chip)
            if name is None:  # what an unknown face looks like, for grouping it into a visitor
                tr.unknown_sum = embedding if tr.unknown_sum is None else tr.unknown_sum + embedding
            self.tracker.observe(tr, name, m.score, t, m.clearance)
            by_track[tr.id] = m if name == m.name else replace(m, name=None, why="face check")
        events = self.tracker.events(t)
        t5 = clock()
        stages = dict(motion=motion_ms, detect=(t1 - t0) * 1e3 - motion_ms, track=(t2 - t1) * 1e3,
                      chip=(t3 - t2) * 1e3, embed=(t4 - t3) * 1e3, match=(t5 - t4) * 1e3)
        return FrameResult([(tr, by_track.get(tr.id)) for tr in tracks], events, stages)


class SceneChange:
    """Whether the picture jumped as a whole between the previous frame looked at and this one:
    their 64x48 thumbnails' mean absolute difference rose above detection.scene_change. It must fall
    below half of that before another change counts, so a camera that pans or flickers for a while
    causes one change, not one per frame (each makes the tracker vote again, which would otherwise
    never settle)."""

    WIDTH = 160  # the small grey copy it works on when there is no motion stage to share one with

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._thumb: np.ndarray | None = None
        self._steady = True  # the picture has settled since the last change

    def changed(self, small_grey: np.ndarray) -> bool:
        if self.threshold <= 0:
            return False
        thumb = cv2.resize(small_grey, (64, 48), interpolation=cv2.INTER_AREA)
        previous, self._thumb = self._thumb, thumb
        if previous is None:
            return False
        difference = float(cv2.absdiff(thumb, previous).mean())
        if self._steady:
            changed = difference > self.threshold
            self._steady = not changed
        else:
            changed = False
            self._steady = difference < self.threshold / 2
        return changed


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


def _covers(det: Detection, hit: Hit) -> bool:
    """``hit`` lies on the face ``det`` (its centre within the face's size)."""
    return abs(hit.cx - det.cx) <= det.size and abs(hit.cy - det.cy) <= det.size
