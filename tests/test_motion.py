"""Motion gating: the motion stage on synthetic frames, and the detection schedule it drives
(real cascades, real model; the cascade calls are counted on the real detector)."""
import math

import numpy as np
import pytest
from faces import astronaut_bgr, turned

from edgeface.config import DetectionConfig, MotionConfig
from edgeface.recognition.embed import Embedder
from edgeface.recognition.match import Matcher
from edgeface.recognition.pipeline import FramePipeline, Recognizer
from edgeface.recognition.track import Tracker
from edgeface.vision.detect import HaarDetector
from edgeface.vision.motion import MotionDetector, grow_and_merge, mask_boxes

W, H = 640, 480


def room(seed: int = 0) -> np.ndarray:
    """A textured, static 'room' (smooth gradients and blobs), float32 BGR."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    base = 90 + 60 * np.sin(x / 70.0) * np.cos(y / 55.0) + 0.1 * x
    img = np.repeat(base[..., None], 3, axis=2)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(15, 60)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] += rng.uniform(-50, 50, 3)
    return img


def noisy(background: np.ndarray, i: int, rng, fps: float = 15.0) -> np.ndarray:
    """door_clip.py's camera: sensor noise sigma 2.5 and a slow +-3% exposure drift."""
    frame = background * (1 + 0.03 * math.sin(i / (fps * 7))) + rng.normal(0, 2.5, background.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_noise_and_exposure_drift_alone_give_no_motion():
    bg, rng, motion = room(), np.random.default_rng(1), MotionDetector(MotionConfig())
    # 40 s at 15 fps covers a full swing of the drift (sin(i / 105) from 0 to 1 and back)
    moving = [i for i in range(600) if motion.areas(noisy(bg, i, rng))]
    assert moving == []
    assert motion.relearnt == 0


def test_a_moving_square_gives_one_region_around_it():
    bg, rng, motion = room(), np.random.default_rng(2), MotionDetector(MotionConfig())
    for i in range(10):
        motion.areas(noisy(bg, i, rng))
    for i in range(10, 20):
        frame = noisy(bg, i, rng)
        x = 100 + 12 * (i - 10)  # 12 px a frame to the right
        frame[200:280, x:x + 80] = (30, 200, 240)
        areas = motion.areas(frame)
    assert len(areas) == 1
    ax, ay, aw, ah = areas[0]
    assert ax <= x and ay <= 200 and ax + aw >= x + 80 and ay + ah >= 280  # covers the square...
    assert aw * ah < 0.35 * W * H  # ...and not the whole frame (its trail and the margin: ~0.27)


def test_grow_and_merge_joins_overlapping_boxes_and_clips_to_the_frame():
    boxes = [(0, 0, 10, 10), (12, 0, 10, 10), (100, 100, 5, 5)]
    got = grow_and_merge(boxes, 4.0, 0.0, 8, 640, 480)
    assert sorted(got) == [(0, 0, 96, 48), (392, 392, 36, 36)]


def test_mask_boxes_drops_isolated_pixels():
    mask = np.zeros((120, 160), np.uint8)
    mask[::7, ::9] = 255  # scattered single pixels: noise
    assert mask_boxes(mask, 5) == []
    mask[40:60, 50:80] = 255
    assert len(mask_boxes(mask, 5)) == 1


def test_a_brightness_step_is_a_global_change_and_the_background_relearns():
    bg, rng, motion = room(), np.random.default_rng(3), MotionDetector(MotionConfig())
    for i in range(10):
        motion.areas(noisy(bg, i, rng))
    assert motion.areas(noisy(bg * 0.5, 10, rng)) == [(0, 0, W, H)]  # lights dimmed: search it all once
    assert motion.relearnt == 1
    assert [motion.areas(noisy(bg * 0.5, i, rng)) for i in range(11, 20)] == [[]] * 9


@pytest.mark.parametrize("key,value", [("threshold", float("nan")), ("threshold", 0.0), ("learn_rate", 1.5),
                                       ("width", 4), ("idle_sweep_s", float("inf")), ("sweep_period", 0),
                                       ("global_change", 0.0), ("min_area", -0.1)])
def test_config_rejects_out_of_range_values(key, value):
    with pytest.raises(ValueError, match=key):
        MotionConfig(**{key: value})


class CountingDetector(HaarDetector):
    """The real detector, with no per-frame budget (every queued pass runs), counting its passes."""

    def __init__(self, **detection):
        super().__init__(DetectionConfig(budget_ms=0, **detection))

    @property
    def passes(self) -> int:
        return self.cascade_calls


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


@pytest.mark.slow
def test_on_an_empty_room_the_cascade_stops_after_the_first_frames(embedder):
    detector = CountingDetector()
    pipeline = FramePipeline(Recognizer(detector, embedder), Tracker(), MotionConfig(idle_sweep_s=0))
    bg, rng = room(), np.random.default_rng(4)
    per_frame = []
    for i in range(150):  # 10 s at 15 fps
        before = detector.passes
        result = pipeline.process(noisy(bg, i, rng), i / 15)
        per_frame.append(detector.passes - before)
        assert result.faces == [] and "motion" in result.stages_ms
    # start-up's one full sweep (nothing to compare with yet); then, with the idle sweep off, none
    assert per_frame[0] == len(detector.sweep(video=True)) and sum(per_frame[1:]) == 0
    assert pipeline.cascade_frames == 1
    # the idle sweep alone: one angle per idle_sweep_s / 7 seconds, never two in a frame
    detector = CountingDetector()
    pipeline = FramePipeline(Recognizer(detector, embedder), Tracker(), MotionConfig(idle_sweep_s=7.0))
    for i in range(150):
        before = detector.passes
        pipeline.process(noisy(bg, i, rng), i / 15)
        assert detector.passes - before <= (len(detector.sweep(video=True)) if i == 0 else 1)
    n = len(detector.cfg.angles)  # every (frontal) pass of the idle sweep comes round once in idle_sweep_s
    assert detector.passes == len(detector.sweep(video=True)) + math.ceil(10 / (7.0 / n))  # start-up's, then one each 7 / n s
    # and with motion off, every frame is searched as before
    detector = CountingDetector()
    pipeline = FramePipeline(Recognizer(detector, embedder), Tracker(), MotionConfig(enabled=False))
    for i in range(5):
        pipeline.process(noisy(bg, i, rng), i / 15)
    assert detector.passes == 5 * len(detector.sweep(video=True)) and pipeline.cascade_frames == 5


@pytest.mark.parametrize("roll", [0, 40])
def test_a_still_face_in_view_from_the_first_frame_is_found_and_named_once(embedder, roll):
    face = astronaut_bgr()
    recognizer = Recognizer(HaarDetector(), embedder)
    (enrolled,) = recognizer.embed(face, recognizer.detector.detect(face)[:1])
    recognizer.matcher = Matcher(["eileen"], enrolled[None], embedder.spec.threshold)
    bg = room(5)
    bg[:, 64:576] = cv2_resize(turned(face, roll).astype(np.float32), 512, 480)
    # the idle sweep over 2 s: every angle comes round within the 4 s shown
    pipeline = FramePipeline(recognizer, Tracker(), MotionConfig(idle_sweep_s=2.0))
    rng, events = np.random.default_rng(6), []
    # she has stood there long enough to be part of the background, unfound (start-up's one full
    # sweep is over): only the idle sweep can find her now
    pipeline.motion.areas(noisy(bg, 0, rng))
    for i in range(60):
        events += pipeline.process(noisy(bg, i, rng), i / 15).events
    assert [e.name for e in events] == ["eileen"]
    assert pipeline.full_sweeps == 0 and len(pipeline.tracker.tracks) == 1


def test_a_scene_change_relearns_the_background_and_the_cascade_stops_again(embedder):
    detector = CountingDetector()
    pipeline = FramePipeline(Recognizer(detector, embedder), Tracker(), MotionConfig(idle_sweep_s=0))
    bg, rng = room(7), np.random.default_rng(8)
    for i in range(20):
        pipeline.process(noisy(bg, i, rng), i / 15)
    assert detector.passes == len(detector.sweep(video=True)) and pipeline.full_sweeps == 1  # start-up only
    for i in range(20, 60):  # lights switched: 1.6 times as bright
        pipeline.process(noisy(bg * 1.6, i, rng), i / 15)
    assert pipeline.full_sweeps == 2  # the scene-change path, once
    assert detector.passes == 2 * len(detector.sweep(video=True))


def cv2_resize(image, w, h):
    import cv2

    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def test_motion_config_section_documented_and_switchable(tmp_path):
    import dataclasses
    from pathlib import Path

    import yaml

    from edgeface.config import loader as config

    path = Path(__file__).resolve().parent.parent / "systemd" / "edgeface.yaml"
    documented = yaml.safe_load(path.read_text())["motion"]
    assert sorted(documented) == sorted(f.name for f in dataclasses.fields(MotionConfig))
    assert config.load(path).motion == MotionConfig()  # every key documented there, at its default
    assert config.parse("motion: {enabled: false}").motion.enabled is False
    with pytest.raises(config.ConfigError, match="motion.learn_rate: must be above 0, at most 1, not 2"):
        config.parse("motion: {learn_rate: 2}")
