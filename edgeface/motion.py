"""Motion gating for video: which parts of the frame changed, so detection runs only there.

An edge camera mostly looks at an empty room; running the rotated Haar sweep on every such
frame costs a core for nothing. This stage keeps a running-average background of a small grey
copy of the frame (cv2.accumulateWeighted), and marks the pixels that differ from it by more than
``threshold`` grey levels. Downscaling with area averaging (640 -> 160 wide averages 4x4
pixels) divides sensor noise by ~4, and the running average follows slow exposure drift, so
neither gives motion; a person entering does. tools/measure_motion.py compares this with
OpenCV's MOG2 and KNN subtractors (cost, false motion on noise and drift, regions on people).

The changed pixels are grown, grouped into boxes (contours), and the boxes mapped back to
original-frame pixels, grown by a margin and merged: the areas the detector should search.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.validate import require

Box = tuple[int, int, int, int]  # x, y, w, h in original-frame pixels


@dataclass
class MotionConfig:
    enabled: bool = True  # false: detection on every frame as without motion gating
    width: int = 160  # the motion mask is computed on a grey copy this many pixels wide
    # Grey levels (0..255) by which a small-copy pixel must differ from the background to count
    # as changed. Sensor noise of sigma 2.5 on the full frame is ~0.7 on the 4x smaller copy.
    threshold: float = 12.0
    # Weight of each new frame in the running-average background (cv2.accumulateWeighted).
    # 0.3 forgets within ~7 frames: the background a person uncovers when they leave stops being
    # "motion" at once (0.05 kept it for ~45 frames, each paying a sweep), exposure drift is
    # followed, and someone who stands still is absorbed (their track keeps them: the region
    # search needs no motion; the idle sweep finds a still face that was never found).
    # door_clip seed 1 (tools/measure_motion.py): empty frames with motion 0.05: 30%, 0.2: 6%, 0.3: 4%.
    learn_rate: float = 0.3
    # Changed areas smaller than this fraction of the frame are noise (a flicker, a compression block).
    min_area: float = 0.001
    # Each changed area is grown by this fraction of its larger side (plus min_margin pixels) on
    # every side before detection: a face's edge may be still while the body moved.
    margin: float = 0.25
    min_margin: int = 24
    # More than this fraction of the frame changed at once is not motion but a global change
    # (lights, night mode, camera moved): the background is re-learnt from this frame.
    global_change: float = 0.5
    # Safety net for faces that never moved (in view when the daemon started, or stopped before
    # being found): a whole-frame sweep, one detection angle at a time (upright first), spread
    # evenly over this many seconds. Each angle costs 60-115 ms of CPU (~0.7 s a cycle), so this is
    # most of what an empty room costs: `edgeface run`, empty 640x480 room at 15 fps, 30 s of CPU:
    # 3.4% of a core without it, 4.7% at 60 s, 12% at 12 s (before idle_stride). 0 disables.
    idle_sweep_s: float = 60.0
    # A moving area with no tracked face in it gets every angle at once; one holding a tracked
    # face gets each angle once every sweep_period frames (a newcomer beside someone known).
    # 7 (one angle a frame) made make_clip clips, where tracked faces move all the time, 40% slower
    # than 25, which costs about what detection.sweep_period's whole-frame rolling sweep did.
    sweep_period: int = 25
    # Nothing tracked and nothing moving on the last frame looked at: look at only every
    # idle_stride-th frame (motion, scene change, idle sweep), as decoding and motion are then all
    # the work there is. 3 at 15 fps adds at most 133 ms to the time to name (empty room 4.0% of a
    # core against 5.0% at 2). 1 looks at every frame.
    idle_stride: int = 3

    def __post_init__(self):
        finite = math.isfinite
        checks = {  # key: (valid, the allowed range as a sentence)
            "width": (16 <= self.width <= 4096, "16..4096"),
            "threshold": (finite(self.threshold) and 0 < self.threshold < 255, "above 0 and below 255"),
            "learn_rate": (finite(self.learn_rate) and 0 < self.learn_rate <= 1, "above 0, at most 1"),
            "min_area": (finite(self.min_area) and 0 <= self.min_area < 1, "0 or more, below 1"),
            "margin": (finite(self.margin) and 0 <= self.margin <= 4, "0..4"),
            "min_margin": (0 <= self.min_margin <= 4096, "0..4096"),
            "global_change": (finite(self.global_change) and 0 < self.global_change <= 1, "above 0, at most 1"),
            "sweep_period": (1 <= self.sweep_period <= 1000, "1..1000"),
            "idle_stride": (1 <= self.idle_stride <= 100, "1..100"),
            "idle_sweep_s": (finite(self.idle_sweep_s) and 0 <= self.idle_sweep_s <= 3600, "0..3600"),
        }
        require(*((ok, f"{k} must be {allowed}, not {getattr(self, k)!r}") for k, (ok, allowed) in checks.items()))


def small_grey(frame: np.ndarray, width: int) -> np.ndarray:
    """The frame grey, downscaled (area averaging, which also averages out noise) to ``width``.
    Grey first: converting 640x480 then resizing one channel costs ~0.1 ms, resizing three ~0.27."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return frame


def changed_mask(grey: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 mask (255 = changed) of the pixels of ``grey`` differing from the float background."""
    diff = cv2.absdiff(grey.astype(np.float32), background)
    return ((diff > threshold) * np.uint8(255)).astype(np.uint8)


_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def mask_boxes(mask: np.ndarray, min_pixels: float) -> list[Box]:
    """Bounding boxes (small-copy pixels) of the changed areas of ``mask``: isolated pixels
    removed (opening), neighbouring ones joined (dilation), areas under ``min_pixels`` dropped."""
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL)
    mask = cv2.dilate(mask, _KERNEL, iterations=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[Box] = []
    for c in contours:
        if cv2.contourArea(c) >= min_pixels:
            x, y, w, h = cv2.boundingRect(c)
            boxes.append((x, y, w, h))
    return boxes


def grow_and_merge(boxes: list[Box], scale: float, margin: float, min_margin: int,
                   width: int, height: int) -> list[Box]:
    """``boxes`` scaled by ``scale`` (small copy -> frame), each grown by margin x its larger
    side + min_margin pixels, clipped to the frame, and overlapping ones merged until none overlap."""
    out: list[list[int]] = []
    for bx, by, bw, bh in boxes:
        x, y, w, h = bx * scale, by * scale, bw * scale, bh * scale
        g = margin * max(w, h) + min_margin
        out.append([max(0, int(x - g)), max(0, int(y - g)), min(width, math.ceil(x + w + g)),
                    min(height, math.ceil(y + h + g))])
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    out[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in out if x1 > x0 and y1 > y0]


class MotionDetector:
    """Per-frame motion areas against a running-average background (see the module docstring)."""

    def __init__(self, cfg: MotionConfig | None = None):
        self.cfg = cfg or MotionConfig()
        self.background: np.ndarray | None = None
        self.relearnt = 0  # global changes that re-learnt the background

    def reset(self) -> None:
        """Forget the background: the next frame becomes it (after a scene change)."""
        self.background = None

    def areas(self, frame: np.ndarray, grey: np.ndarray | None = None) -> list[Box]:
        """The changed areas of ``frame`` (grown, merged, original-frame pixels); updates the background.
        The first frame after start or reset() has none: it becomes the background.
        ``grey``: small_grey(frame, cfg.width) when the caller already has it."""
        cfg = self.cfg
        if grey is None:
            grey = small_grey(frame, cfg.width)
        if self.background is None or self.background.shape != grey.shape:
            self.background = grey.astype(np.float32)
            return []
        mask = changed_mask(grey, self.background, cfg.threshold)
        cv2.accumulateWeighted(grey, self.background, cfg.learn_rate)
        h, w = frame.shape[:2]
        if cv2.countNonZero(mask) > cfg.global_change * mask.size:
            # not motion but a global change: learn the new picture at once, search it all this frame
            self.background = grey.astype(np.float32)
            self.relearnt += 1
            return [(0, 0, w, h)]
        boxes = mask_boxes(mask, cfg.min_area * mask.size)
        return grow_and_merge(boxes, w / grey.shape[1], cfg.margin, cfg.min_margin, w, h)
