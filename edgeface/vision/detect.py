"""Rotated Haar face detection.

The frontal cascade only tolerates about +-15 degrees of roll, so the (grey, downscaled)
frame is turned about its centre at each angle of a grid (canvas grown so nothing is cut
off), the cascade runs on each turned canvas, every hit is mapped back to the original
frame as a turned square (centre, size, angle), and the duplicates that neighbouring
angles and scales produce are merged (score-weighted, which also interpolates the angle
between grid steps).

Turned canvases make the frontal cascade fire on texture, and the dlib embedder names
such non-faces with confidence, so every merged face is verified on a small upright crop:
a second cascade (alt2) must agree at the same place and size (tools/measure_detect.py
accuracy/--sweep measured the rule). The eye cascades then refine the roll from the eye line.
Between full sweeps, detect(frame, regions=tracked) searches only near tracked faces.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.config import HAARCASCADES, DetectionConfig
from edgeface.vision import geometry


@dataclass(frozen=True)
class Detection:
    cx: float  # face centre, original-frame pixels
    cy: float
    size: float  # side of the (square) face box, original-frame pixels
    angle: float  # roll, degrees, cv2.getRotationMatrix2D sign (see geometry.py)
    score: float  # summed cascade neighbours over merged hits; larger is better

    def box(self) -> tuple[int, int, int, int]:
        """x, y, w, h: axis-aligned bound of the turned square, original-frame pixels."""
        x, y, w, h = geometry.rotated_square_bound(self.cx, self.cy, self.size, self.angle)
        return (int(round(x)), int(round(y)), int(round(w)), int(round(h)))


def _load_cascade(path: str, key: str) -> cv2.CascadeClassifier:
    c = cv2.CascadeClassifier(path)
    if c.empty():
        raise ValueError(f"{key}: cannot load cascade {path}")
    return c


# Eye search crop: the face box, upright, resampled to this many pixels a side; eyes are
# looked for in its upper part only.
_EYE_CROP = 96
_EYE_TOP = 0.62
# Verification crop: twice the face box, upright, the face resampled to _VERIFY_FACE pixels.
_VERIFY_FACE = 48
_VERIFY_CROP = 2 * _VERIFY_FACE
# Region search crop: the tracked face is resampled to this many pixels a side.
_REGION_FACE = 32
_VERIFY_GROUP = 3  # the verifier's own minNeighbors; the threshold that counts is verify_min_neighbors


class HaarDetector:
    def __init__(self, cfg: DetectionConfig | None = None):
        self.cfg = cfg or DetectionConfig()
        self._cascade_file = self.cfg.cascade_path()
        self._cascade = _load_cascade(self._cascade_file, "detection.cascade")
        # a CascadeClassifier is not safe to share between threads: pool workers get their own
        self._local = threading.local()
        self._eyes = [_load_cascade(self.cfg.cascade_path(n, "detection.eyes"), "detection.eyes")
                      for n in self.cfg.eyes]
        self._eye_crop = np.empty((_EYE_CROP, _EYE_CROP), np.uint8)
        self._verifier = (_load_cascade(self.cfg.cascade_path(self.cfg.verify_cascade, "detection.verify_cascade"),
                                        "detection.verify_cascade") if self.cfg.verify_cascade else None)
        self._verify_crop = np.empty((_VERIFY_CROP, _VERIFY_CROP), np.uint8)
        side = max(_REGION_FACE, int(round(_REGION_FACE * self.cfg.region_margin)))
        self._region_crop = np.empty((side, side), np.uint8)
        self._pool: ThreadPoolExecutor | None = None
        # Buffers reused across frames of the same size (video): grey, small grey, canvases.
        self._grey: np.ndarray | None = None
        self._small: np.ndarray | None = None
        self._canvas: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    # -- preparation --------------------------------------------------------------------
    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Grey, downscaled (to max_width), optionally equalised frame and its scale."""
        if frame.ndim == 3:
            h, w = frame.shape[:2]
            if self._grey is None or self._grey.shape != (h, w):
                self._grey = np.empty((h, w), np.uint8)
            code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            grey = cv2.cvtColor(frame, code, dst=self._grey)
        elif frame.ndim == 2:
            grey = frame
        else:
            raise ValueError(f"frame must be HxW or HxWx3, got shape {frame.shape}")
        h, w = grey.shape
        scale = 1.0
        limit = self.cfg.max_width
        # Tall pictures (a 100x10000 scan) are held to 2 x max_width high as well: sweeping seven
        # turned canvases of their full height costs seconds and gigabytes for no bigger faces.
        if limit and (w > limit or h > 2 * limit):
            scale = min(limit / w, 2 * limit / h)
            sw, sh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
            if self._small is None or self._small.shape != (sh, sw):
                self._small = np.empty((sh, sw), np.uint8)
            grey = cv2.resize(grey, (sw, sh), dst=self._small, interpolation=cv2.INTER_AREA)
            scale = sw / w  # exact in x, within a pixel in y, so mapping back is exact enough
        if self.cfg.equalize:
            if grey is frame:  # never write into the caller's frame
                grey = cv2.equalizeHist(grey)
            else:
                cv2.equalizeHist(grey, dst=grey)
        return grey, scale

    def _canvas_for(self, grey: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = grey.shape
        key = (w, h, angle)
        hit = self._canvas.get(key)
        if hit is None:
            m, (nw, nh) = geometry.rotate_grown(w, h, angle)
            hit = (np.empty((nh, nw), np.uint8), m)
            if len(self._canvas) > 64:  # frame sizes changed a lot: drop stale buffers
                self._canvas.clear()
            self._canvas[key] = hit
        return hit

    def _turned(self, grey: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """(canvas, matrix): grey turned by ``angle`` onto a grown canvas, into a reused buffer."""
        buf, m = self._canvas_for(grey, angle)
        cv2.warpAffine(grey, m, (buf.shape[1], buf.shape[0]), dst=buf, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
        return buf, m

    # -- detection ----------------------------------------------------------------------
    def _hits(self, grey, scale, angles=None):
        cfg = self.cfg
        min_side = max(1, int(round(cfg.min_size * scale)))
        max_side = int(round(cfg.max_size * scale)) if cfg.max_size else 0
        angles = [float(a) for a in (cfg.angles if angles is None else angles)]
        for a in angles:  # make every canvas buffer before any thread touches the cache
            if a != 0.0 and (grey.shape[1], grey.shape[0], a) not in self._canvas:
                self._canvas_for(grey, a)

        def one(angle, cascade=None):
            if cascade is None:
                cascade = getattr(self._local, "cascade", None)
                if cascade is None:
                    cascade = self._local.cascade = _load_cascade(self._cascade_file, "detection.cascade")
            if angle == 0.0:
                canvas, m = grey, None
            else:
                canvas, m = self._turned(grey, angle)
            rects, neighbours = cascade.detectMultiScale2(
                canvas, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors,
                minSize=(min_side, min_side), maxSize=(max_side, max_side) if max_side else (0, 0))
            return angle, m, rects, neighbours

        if cfg.threads > 1 and len(angles) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(cfg.threads, thread_name_prefix="edgeface-detect")
            results = list(self._pool.map(one, angles))
        else:
            results = [one(a, self._cascade) for a in angles]
        hits = []
        for angle, m, rects, neighbours in results:
            if len(rects) == 0:
                continue
            rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
            centres = rects[:, :2] + rects[:, 2:] / 2.0
            if m is not None:
                centres = geometry.map_back(m, centres)
            centres /= scale
            sides = rects[:, 2] / scale
            # the canvas was turned by `angle` to make the face upright, so the face is at -angle
            face_angle = -angle if angle != 0.0 else 0.0
            for (cx, cy), side, n in zip(centres, sides, np.ravel(neighbours)):
                hits.append((float(cx), float(cy), float(side), face_angle, float(n)))
        return hits

    def _region_hits(self, grey, scale, regions) -> list[tuple[float, float, float, float, float]]:
        """Hits near tracked faces: for each region and angle offset, one small upright crop
        around the region and a cascade pass over a narrow range of sizes."""
        cfg = self.cfg
        crop = self._region_crop
        f = _REGION_FACE
        lo, hi = max(1, int(f / cfg.region_size_ratio)), int(math.ceil(f * cfg.region_size_ratio))
        hits = []
        for reg in regions:
            k = reg.size * scale / f  # detection-resolution pixels per crop pixel
            if k <= 0:
                continue
            for off in cfg.region_angles:
                a = float(reg.angle) + float(off)
                m = _upright(grey, reg.cx * scale, reg.cy * scale, a, k, crop)
                found, neighbours = self._cascade.detectMultiScale2(
                    crop, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors, minSize=(lo, lo),
                    maxSize=(hi, hi))
                if len(found) == 0:
                    continue
                rects = np.asarray(found, dtype=np.float64).reshape(-1, 4)
                centres = geometry.apply_affine(m, rects[:, :2] + rects[:, 2:] / 2.0) / scale
                for (cx, cy), side, nb in zip(centres, rects[:, 2] * k / scale, np.ravel(neighbours)):
                    hits.append((float(cx), float(cy), float(side), a, float(nb)))
        return hits

    def _find_eyes(self, grey: np.ndarray, scale: float, det: Detection) -> tuple[int, float | None]:
        """(eyes found: 0, 1 or 2 sides, roll correction in degrees when both sides were found)."""
        if not self._eyes:
            return 0, None
        n = _EYE_CROP
        # the face box spans the whole crop, upright
        _upright(grey, det.cx * scale, det.cy * scale, det.angle, det.size * scale / (n - 1), self._eye_crop)
        top = self._eye_crop[: int(n * _EYE_TOP)]
        best: dict[int, tuple[float, float, int] | None] = {0: None, 1: None}  # image-left/right half: x, y, nb
        for cascade in self._eyes:
            rects, neighbours = cascade.detectMultiScale2(top, 1.1, self.cfg.eye_min_neighbors,
                                                          minSize=(12, 12), maxSize=(40, 40))
            for (x, y, w, h), nb in zip(np.asarray(rects).reshape(-1, 4), np.ravel(neighbours)):
                ex, ey = x + w / 2.0, y + h / 2.0
                half = int(ex >= n / 2.0)
                kept = best[half]
                if kept is None or nb > kept[2]:
                    best[half] = (ex, ey, int(nb))
        left, right = best[0], best[1]
        if left is None or right is None:
            return int(left is not None) + int(right is not None), None
        (lx, ly, _), (rx, ry, _) = left, right
        # eye line turned by R(delta) from horizontal: R(delta) (1, 0) = (cos, -sin)
        return 2, math.degrees(math.atan2(-(ry - ly), rx - lx))

    def _second_opinion(self, grey, scale, det) -> int:
        """Neighbours the verifying cascade gives a face at the same place and size (0: none)."""
        if self._verifier is None:
            return 0
        crop = self._verify_crop  # the face box spans _VERIFY_FACE pixels, upright
        _upright(grey, det.cx * scale, det.cy * scale, det.angle, det.size * scale / _VERIFY_FACE, crop)
        f = _VERIFY_FACE
        rects, neighbours = self._verifier.detectMultiScale2(
            crop, 1.1, _VERIFY_GROUP, minSize=(int(f * 0.7), int(f * 0.7)),
            maxSize=(int(f * 1.45), int(f * 1.45)))
        best = 0
        c = (_VERIFY_CROP - 1) / 2.0
        for (x, y, w, h), nb in zip(np.asarray(rects).reshape(-1, 4), np.ravel(neighbours)):
            if math.hypot(x + w / 2.0 - c, y + h / 2.0 - c) < 0.3 * f:
                best = max(best, int(nb))
        return best

    def _scan_hits(self, grey, scale, box, angles):
        """Hits of whole-frame passes at ``angles`` restricted to ``box`` (x, y, w, h in
        original-frame pixels; None = the whole frame), mapped back to original-frame pixels."""
        if box is None:
            return self._hits(grey, scale, angles)
        x, y, w, h = box
        x0, y0 = max(0, int(x * scale)), max(0, int(y * scale))
        x1 = min(grey.shape[1], int(math.ceil((x + w) * scale)))
        y1 = min(grey.shape[0], int(math.ceil((y + h) * scale)))
        if min(x1 - x0, y1 - y0) < max(1, int(round(self.cfg.min_size * scale))):
            return []
        crop = np.ascontiguousarray(grey[y0:y1, x0:x1])
        dx, dy = x0 / scale, y0 / scale
        return [(cx + dx, cy + dy, side, a, n) for cx, cy, side, a, n in self._hits(crop, scale, angles)]

    def candidates(self, frame: np.ndarray, regions=None, angles=None, scans=None) -> list[tuple[Detection, int, int]]:
        """All merged faces, strongest first, each with its evidence: (detection, eye sides
        found (0-2), second-opinion neighbours, or TRACKED for a face that continues one of
        ``regions``). See detect() for ``regions``, ``angles`` and ``scans``."""
        if scans is not None and not regions and not any(a for _, a in scans):
            return []  # nothing to search: no cascade at all
        grey, scale = self._prepare(frame)
        if regions is None and scans is None:
            hits = self._hits(grey, scale, angles)
        else:
            hits = self._region_hits(grey, scale, regions) if regions else []
            if angles:
                hits += self._hits(grey, scale, angles)
            for box, scan_angles in scans or []:
                if scan_angles:
                    hits += self._scan_hits(grey, scale, box, scan_angles)
        merged = geometry.merge_hits(hits, distance=self.cfg.merge_distance)
        out = []
        for cx, cy, size, angle, score in merged:
            det = Detection(cx, cy, size, angle, score)
            if regions and _continues(det, regions):
                out.append((det, 0, TRACKED))
                continue
            eyes, delta = self._find_eyes(grey, scale, det)
            if delta is not None and abs(delta) <= 20.0:
                det = Detection(cx, cy, size, angle + delta, score)
            out.append((det, eyes, self._second_opinion(grey, scale, det)))
        return out

    def detect(self, frame: np.ndarray, regions=None, angles=None, scans=None) -> list[Detection]:
        """Faces in ``frame`` (BGR uint8 or grey), strongest first.

        ``regions``: None runs the full angle sweep over the whole frame. A list of
        Detection (e.g. tracked faces' last detections) searches only near those faces, at
        their last angle +- region_angles, in small crops: a fraction of a full sweep's cost,
        for the frames between full sweeps (it finds no newcomers: add ``angles`` for that).

        ``angles``: whole-frame passes at these angles instead of cfg.angles; with
        ``regions``, added to the region search (e.g. rolling_angles(i) spreads one full sweep
        over several frames, bounding every frame's cost).

        ``scans``: a list of (box, angles): passes at those angles over only that part of the
        frame (x, y, w, h, original-frame pixels; None = whole frame), e.g. where motion was
        seen. With ``scans`` given (even empty) and no regions, nothing else is searched."""
        cands = self.candidates(frame, regions, angles, scans)
        return [cands[i][0] for i in self.select(cands)]

    def select(self, cands: list[tuple[Detection, int, int]]) -> list[int]:
        """Indices of the candidates that detect() returns: verified, then nested duplicates dropped."""
        idx = [i for i, c in enumerate(cands) if self.keep(*c)]
        if self.cfg.suppress_nested:
            kept = geometry.suppress_nested([(cands[i][0].cx, cands[i][0].cy, cands[i][0].size) for i in idx])
            idx = [idx[k] for k in kept]
        return idx

    def keep(self, det: Detection, eyes: int, second: int) -> bool:
        """The verification rule: enough eyes, a second opinion, or a strong enough score."""
        cfg = self.cfg
        return (second == TRACKED or (cfg.min_eyes > 0 and eyes >= cfg.min_eyes)
                or (second > 0 and second >= cfg.verify_min_neighbors)
                or det.score >= cfg.min_score)


    def rolling_angles(self, frame_index: int, period: int) -> list[float]:
        """The angles of cfg.angles to scan over the whole frame on frame ``frame_index`` so
        that each comes round once every ``period`` frames, spread evenly (upright first): one
        angle on some frames and none on others when period > len(angles), all when period is 1."""
        order = sorted(self.cfg.angles, key=abs)
        if not order or period <= 0:
            return []
        slot = frame_index % period
        return [a for k, a in enumerate(order) if k * period // len(order) == slot]

    def close(self) -> None:
        """Stop the thread pool, if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# The evidence candidates() gives a face found by the region search where a tracked face was:
# that face was verified when its track began, so the same face a frame later is kept as is.
TRACKED = 1 << 30


def _upright(grey: np.ndarray, cx: float, cy: float, angle: float, step: float, out: np.ndarray) -> np.ndarray:
    """Warp the square around (cx, cy) turned by ``angle`` upright into ``out``, ``step``
    detection pixels per crop pixel; returns the crop -> detection-frame affine."""
    n = out.shape[0]
    m = geometry.crop_matrix(cx, cy, angle, step, (n, n))
    cv2.warpAffine(grey, m, (n, n), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                   borderMode=cv2.BORDER_REPLICATE)
    return m


def _continues(det: Detection, regions) -> bool:
    """``det`` lies where one of ``regions`` was: centre within half a face, size within 1.5x."""
    return any(math.hypot(det.cx - r.cx, det.cy - r.cy) <= 0.5 * r.size and r.size / 1.5 <= det.size <= r.size * 1.5
               for r in regions)


def largest(detections: list[Detection]) -> Detection | None:
    """The detection with the largest face (e.g. for enrolment), or None."""
    return max(detections, key=lambda d: d.size, default=None)


def at_box(detections: list[Detection], box: tuple[float, float, float, float]) -> Detection | None:
    """The detection centred nearest ``box`` (x, y, w, h), within half its side; else None. Picks
    the face an event was about out of a crop that may hold a neighbour's face too."""
    x, y, w, h = box
    cx, cy, reach = x + w / 2, y + h / 2, max(w, h) / 2
    near = [(math.hypot(d.cx - cx, d.cy - cy), d) for d in detections]
    return min((t for t in near if t[0] <= reach), key=lambda t: t[0], default=(0.0, None))[1]


class ChipFaceCheck:
    """Whether an aligned face chip really shows a face: an eye in its upper half, or both
    frontal-face cascades agreeing strongly on it (sunglasses hide the eyes). The tracker asks
    before it announces a face that matches nobody, since the detector's false faces (a cat's
    whiskers, wallpaper, a blurred corner) match nobody too.

    Measured on the four door clips of the closing note and five-celebs photos: with all five
    people enrolled, all 33 chips that matched nobody were false faces (the cat of one clip's
    background, coffee, blur) and none passed; 289 of 293 chips of real faces passed (sunglasses
    pass on the face cascades). Unknown events on the clips: 8 false ones became 0; with only one
    person enrolled, all 16 strangers' appearances still raised one. It costs about 4 ms a chip,
    and runs only on chips that match nobody, until their track passes."""

    EYE_NEIGHBOURS = 4  # 1-3 found the eye of the cat in a door clip's background
    FACE_NEIGHBOURS = 8  # both face cascades; false chips reached 13 on one cascade, never 8 on both
    PAD = 0.2  # chip sides of repeated edge around it, so the face cascades see the whole face

    def __init__(self) -> None:
        self._eye = _load_cascade(os.path.join(HAARCASCADES, "haarcascade_eye.xml"), "face check")
        self._faces = [_load_cascade(os.path.join(HAARCASCADES, n), "face check")
                       for n in ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")]

    def __call__(self, chip: np.ndarray) -> bool:
        grey = chip if chip.ndim == 2 else cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)
        side = grey.shape[0]
        eye_min = max(side // 15, 4)
        if len(self._eye.detectMultiScale(grey[: side // 2], 1.1, self.EYE_NEIGHBOURS,
                                          minSize=(eye_min, eye_min))) > 0:
            return True
        pad = int(round(side * self.PAD))
        padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        face_min = side // 3
        return all(len(c.detectMultiScale(padded, 1.1, self.FACE_NEIGHBOURS, minSize=(face_min, face_min))) > 0
                   for c in self._faces)
