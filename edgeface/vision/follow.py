"""Following a named face by its look where the cascade loses it for a few frames.

On real footage the cascade misses a face it found a moment ago for many frames in a row: a
head tilted or turned a little further, glasses catching the light, motion blur (the shared
head-pose female-and-male clip: the woman, her head tilted ~60 degrees and held still, found in
25 of 56 frames). Between those hits the face is where it was, looking as it did. So each
cascade detection of a named track leaves a template (its grey square at detection resolution),
and a frame that misses the face looks for it by normalised cross-correlation (cv2.matchTemplate)
near where it was, at three sizes. A match as alike as ``min_score`` places the face for that
frame: a *followed* detection. It keeps the track alive, named and in place, but it never gives a
chip to name from or to raise an unknown-face event on, and the pipeline stops following
tracking.follow_s after the cascade last found the face: only the cascade starts, names and
re-confirms faces.

Pure functions over numpy arrays; the pipeline (recognition.pipeline) keeps one template per track.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgeface.vision.detect import Detection

# Sizes tried, relative to the template: a face walking towards the camera grows ~2-3% a frame.
SCALES = (0.92, 1.0, 1.08)
# How far from its last place a face is looked for, in face sizes (a person walking across at
# 12.5 frames/s moves ~0.1-0.2 face sizes a frame).
REACH = 0.5
# Templates smaller than this (detection pixels) match texture too easily to be trusted.
MIN_SIDE = 12


@dataclass(frozen=True)
class FaceTemplate:
    patch: np.ndarray  # grey square of the face at detection resolution (a copy)
    detection: Detection  # the cascade detection it was cut from (original-frame pixels)
    t: float  # when the cascade found it


def cut_template(grey: np.ndarray, scale: float, det: Detection, t: float) -> FaceTemplate | None:
    """The face's axis-aligned square from ``grey`` (detection pixels = ``scale`` x frame pixels),
    or None where it reaches past the picture or is too small to follow."""
    side = int(round(det.size * scale))
    x0, y0 = int(round(det.cx * scale - side / 2)), int(round(det.cy * scale - side / 2))
    h, w = grey.shape[:2]
    if side < MIN_SIDE or x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h:
        return None
    return FaceTemplate(grey[y0:y0 + side, x0:x0 + side].copy(), det, t)


def follow(grey: np.ndarray, scale: float, template: FaceTemplate, near: Detection,
           min_score: float) -> tuple[Detection | None, float]:
    """Where the face of ``template`` is now, looked for around ``near`` (its track's latest
    place): a followed Detection and its correlation, or (None, best correlation) below ``min_score``."""
    h, w = grey.shape[:2]
    best_score, best = -1.0, None
    for s in SCALES:
        side = int(round(template.patch.shape[0] * s))
        if side < MIN_SIDE:
            continue
        reach = int(round(REACH * side))
        cx, cy = near.cx * scale, near.cy * scale
        x0, y0 = max(0, int(round(cx - side / 2)) - reach), max(0, int(round(cy - side / 2)) - reach)
        x1, y1 = min(w, int(round(cx + side / 2)) + reach), min(h, int(round(cy + side / 2)) + reach)
        if x1 - x0 < side or y1 - y0 < side:
            continue
        patch = template.patch if s == 1.0 else cv2.resize(template.patch, (side, side), interpolation=cv2.INTER_AREA)
        scores = cv2.matchTemplate(grey[y0:y1, x0:x1], patch, cv2.TM_CCOEFF_NORMED)
        _, score, _, (mx, my) = cv2.minMaxLoc(scores)
        if score > best_score:
            best_score, best = float(score), ((x0 + mx + side / 2) / scale, (y0 + my + side / 2) / scale, side / scale)
    if best is None or best_score < min_score:
        return None, best_score
    cx, cy, size = best
    return replace(template.detection, cx=cx, cy=cy, size=size, score=0.0, followed=True), best_score
