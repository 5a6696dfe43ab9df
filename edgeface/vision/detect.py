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
A turned head (yaw) is found by the profile cascade, on the picture and its mirror; its hits merge
with the frontal ones. On video a second frontal cascade (detection.upright_cascade) joins the upright
passes; edgeface.vision.schedule decides which passes each frame gets.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgeface.config import HAARCASCADES, DetectionConfig
from edgeface.vision import geometry
from edgeface.vision.hog import HogFaceScore

Box = tuple[int, int, int, int]  # x, y, w, h in original-frame pixels

FRONTAL, PROFILE, PROFILE_MIRROR = "frontal", "profile", "profile_mirror"
UPRIGHT = "upright"  # the second frontal cascade (detection.upright_cascade), video only, at roll 0


@dataclass(frozen=True)
class Detection:
    cx: float  # face centre, original-frame pixels
    cy: float
    size: float  # side of the (square) face box, original-frame pixels
    angle: float  # roll, degrees, cv2.getRotationMatrix2D sign (see geometry.py)
    score: float  # summed cascade neighbours over merged hits; larger is better
    profile: bool = False  # found by the profile cascade only (a turned head): no frontal hit agreed
    followed: bool = False  # placed by its look (vision.follow), not by a cascade: no chip from it

    def box(self) -> tuple[int, int, int, int]:
        """x, y, w, h: axis-aligned bound of the turned square, original-frame pixels."""
        x, y, w, h = geometry.rotated_square_bound(self.cx, self.cy, self.size, self.angle)
        return (int(round(x)), int(round(y)), int(round(w)), int(round(h)))


@dataclass(frozen=True)
class Scan:
    """One cascade pass: over ``box`` (None: the whole frame), the picture turned by ``angle``,
    with the frontal cascade or the profile one (PROFILE_MIRROR: on the mirrored picture, for
    heads turned the other way)."""
    box: Box | None
    angle: float
    cascade: str = FRONTAL


@dataclass(frozen=True)
class Hit:
    """One cascade hit mapped back to original-frame pixels."""
    cx: float
    cy: float
    size: float
    angle: float  # the face's roll
    score: float  # cascade neighbours
    profile: bool = False
    tracked: bool = False  # from a tracked face's region search
    upright: bool = False  # from the second frontal cascade (UPRIGHT)
    earlier: bool = False  # from an earlier frame's pass, merged with this frame's (FramePipeline.detect)


@dataclass(frozen=True)
class Candidate:
    """A merged face and its evidence for the verification rule (HaarDetector.keep)."""
    detection: Detection
    eyes: int = 0  # image-left/right halves in which an eye was found (0-2)
    second: int = 0  # the verifying cascade's neighbours at the same place and size
    second_equalized: int = 0  # the same on the crop histogram-equalised (asked only when second falls short)
    hog: float = -math.inf  # dlib's HOG filters' score (asked only when the cascades' opinions fall short)
    tracked: bool = False  # found where a tracked (already verified) face was
    upright_only: bool = False  # only the second frontal cascade found it: the HOG opinion decides
    rejudged: bool = False  # earlier frames' hits alone: judged before, its second opinion needs more


@dataclass(frozen=True)
class Prepared:
    """A frame ready for cascade passes: grey, downscaled to the detection resolution."""
    grey: np.ndarray
    scale: float  # detection pixels per original-frame pixel


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
# ... and, when that finds nothing, once more at this size, contrast-equalised (CLAHE; fine_search): the
# real walking-and-pause clip's two faces with glasses, searched at their labelled place, were found in
# 6 and 4 of 41 frames at 32 px, 28 and 41 at 56, 41 and 41 at 56 with CLAHE.
_REGION_FINE_FACE = 56
_VERIFY_GROUP = 3  # the verifier's own minNeighbors; the threshold that counts is verify_min_neighbors
# A face made of earlier frames' hits alone (FramePipeline keeps queued passes' hits 6 frames) is judged
# again on each of them, on new pixels: more tries, so a higher bar for its second opinion. On a slow
# machine (budget 5 ms) make_clip seed 7's corner of hair, refused at 4 and 0, passed at 9 on its third
# try and was named elton_john for 23 frames; door_clip seed 4's Elton, sliding in at roll -31, passed
# at 13 on his sixth (none of this frame's hits there), and not judged again he was never named.
_REJUDGED_MIN_NEIGHBORS = 12
# dlib's HOG filters give their opinion on faces turned at most this far in roll (they were trained on
# upright faces; a cat's head at -40 found on a turned canvas of skimage's chelsea scored -0.32).
_HOG_MAX_ROLL = 20.0
# The frontal cascade's box for a face dlib's HOG window (80 px at its pyramid level) holds: its side and
# centre offset in window sides, medians over the 74 five-celebs train faces both find.
_HOG_BOX_SCALE, _HOG_BOX_DX, _HOG_BOX_DY = 1.057, 0.013, -0.051
_HOG_STILL_MIN_FACE = 40.0
# A tracked face turned at most this far in roll also gets the profile passes in its region search.
_REGION_PROFILE_ROLL = 30.0
# ... at this resolution: the profile cascade lost the cameraman (skimage) at 32 pixels, kept him at 48.
_REGION_PROFILE_FACE = 48


class HaarDetector:
    """Cascade passes (scan, track_search), merging and verification (candidates, select), and
    detect(frame): the whole sweep, for still pictures. The video path (FramePipeline) decides which
    passes each frame gets (edgeface.vision.schedule) and calls the parts itself.

    ``cascade_calls`` counts cascade passes (detectMultiScale on a frame, area or region crop;
    verification and eye passes not included): what a per-frame budget bounds."""

    def __init__(self, cfg: DetectionConfig | None = None):
        self.cfg = cfg or DetectionConfig()
        self._files = {FRONTAL: self.cfg.cascade_path()}
        if self.cfg.profile_cascade:
            path = self.cfg.cascade_path(self.cfg.profile_cascade, "detection.profile_cascade")
            self._files[PROFILE] = self._files[PROFILE_MIRROR] = path
        if self.cfg.upright_cascade:
            self._files[UPRIGHT] = self.cfg.cascade_path(self.cfg.upright_cascade, "detection.upright_cascade")
        self._cascades = {k: _load_cascade(p, f"detection.{_KEYS[k]}") for k, p in self._files.items()}
        # a CascadeClassifier is not safe to share between threads: pool workers get their own
        self._local = threading.local()
        self._eyes = [_load_cascade(self.cfg.cascade_path(n, "detection.eyes"), "detection.eyes")
                      for n in self.cfg.eyes]
        self._eye_crop = np.empty((_EYE_CROP, _EYE_CROP), np.uint8)
        self._verifier = (_load_cascade(self.cfg.cascade_path(self.cfg.verify_cascade, "detection.verify_cascade"),
                                        "detection.verify_cascade") if self.cfg.verify_cascade else None)
        self._verify_crop = np.empty((_VERIFY_CROP, _VERIFY_CROP), np.uint8)
        self._region_crops = {f: np.empty((side, side), np.uint8)
                              for f in (_REGION_FACE, _REGION_FINE_FACE, _REGION_PROFILE_FACE)
                              for side in [max(f, int(round(f * self.cfg.region_margin)))]}
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))  # the fine region crop's contrast
        self._hog = HogFaceScore(self.cfg.hog_path()) if self.cfg.hog_model else None
        self._pool: ThreadPoolExecutor | None = None
        # Buffers reused across frames of the same size (video): grey, small grey, canvases.
        self._grey: np.ndarray | None = None
        self._small: np.ndarray | None = None
        self._canvas: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.cascade_calls = 0

    # -- preparation --------------------------------------------------------------------
    def prepare(self, frame: np.ndarray) -> Prepared:
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
        return Prepared(grey, scale)

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

    # -- cascade passes -----------------------------------------------------------------
    def sweep(self, box: Box | None = None, video: bool = False) -> list[Scan]:
        """Every pass of a full search of ``box`` (None: the whole frame), upright first: the
        frontal cascade at every angle, the profile cascade and its mirror at profile_angles, and on
        ``video`` the second frontal cascade upright."""
        scans = [Scan(box, float(a)) for a in self.cfg.angles]
        if PROFILE in self._cascades:
            for a in self.cfg.profile_angles:
                scans += [Scan(box, float(a), PROFILE), Scan(box, float(a), PROFILE_MIRROR)]
        if video and UPRIGHT in self._cascades:
            scans.append(Scan(box, 0.0, UPRIGHT))
        # upright first (a turned head is commoner than a tilted one), then by roll; stable sort
        return sorted(scans, key=lambda s: abs(s.angle))

    def _cascade(self, kind: str, pooled: bool) -> cv2.CascadeClassifier:
        if not pooled:
            return self._cascades[kind]
        own = getattr(self._local, "cascades", None)
        if own is None:
            own = self._local.cascades = {}
        if kind not in own:
            own[kind] = _load_cascade(self._files[kind], f"detection.{_KEYS[kind]}")
        return own[kind]

    def _area(self, prep: Prepared, box: Box | None) -> tuple[np.ndarray, float, float] | None:
        """The part of the detection-resolution frame ``box`` covers, and its offset in original pixels."""
        grey, scale = prep.grey, prep.scale
        if box is None:
            return grey, 0.0, 0.0
        x, y, w, h = box
        x0, y0 = max(0, int(x * scale)), max(0, int(y * scale))
        x1 = min(grey.shape[1], int(math.ceil((x + w) * scale)))
        y1 = min(grey.shape[0], int(math.ceil((y + h) * scale)))
        if min(x1 - x0, y1 - y0) < max(1, int(round(self.cfg.min_size * scale))):
            return None
        return np.ascontiguousarray(grey[y0:y1, x0:x1]), x0 / scale, y0 / scale

    def scan(self, prep: Prepared, scan: Scan, pooled: bool = False) -> list[Hit]:
        """The hits of one pass, in original-frame pixels."""
        cfg = self.cfg
        area = self._area(prep, scan.box)
        if area is None:
            return []
        grey, dx, dy = area
        scale, angle = prep.scale, scan.angle
        mirror = scan.cascade == PROFILE_MIRROR
        if mirror:
            grey = cv2.flip(grey, 1)
        min_side = max(1, int(round(cfg.min_size * scale)))
        max_side = int(round(cfg.max_size * scale)) if cfg.max_size else 0
        if angle == 0.0:
            canvas, m = grey, None
        elif pooled or scan.box is not None or mirror:
            m, (nw, nh) = geometry.rotate_grown(grey.shape[1], grey.shape[0], angle)
            canvas = cv2.warpAffine(grey, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            canvas, m = self._turned(grey, angle)
        self.cascade_calls += 1
        rects, neighbours = self._cascade(scan.cascade, pooled).detectMultiScale2(
            canvas, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors,
            minSize=(min_side, min_side), maxSize=(max_side, max_side) if max_side else (0, 0))
        if len(rects) == 0:
            return []
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        centres = boxes[:, :2] + boxes[:, 2:] / 2.0
        if m is not None:
            centres = geometry.map_back(m, centres)
        # the picture was turned by `angle` to make the face upright, so the face is at -angle
        face_angle = -angle if angle != 0.0 else 0.0
        if mirror:  # back from the mirrored picture: x flips, and so does the roll
            centres[:, 0] = grey.shape[1] - centres[:, 0]
            face_angle = -face_angle
        centres /= scale
        sides = boxes[:, 2] / scale
        profile = scan.cascade in (PROFILE, PROFILE_MIRROR)
        upright = scan.cascade == UPRIGHT
        return [Hit(float(cx) + dx, float(cy) + dy, float(side), face_angle, float(n), profile, upright=upright)
                for (cx, cy), side, n in zip(centres, sides, np.ravel(neighbours))]

    def scan_all(self, prep: Prepared, scans: list[Scan]) -> list[Hit]:
        """The hits of several passes (on the thread pool when cfg.threads > 1)."""
        if self.cfg.threads > 1 and len(scans) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="edgeface-detect")
            return [h for hits in self._pool.map(lambda s: self.scan(prep, s, pooled=True), scans) for h in hits]
        return [h for s in scans for h in self.scan(prep, s)]

    def track_search(self, prep: Prepared, region: Detection) -> list[Hit]:
        """Hits near a tracked face: one small upright crop around it per angle offset
        (region_angles around its last roll), a cascade pass over a narrow range of sizes; when
        those find nothing, fine_search (with the HOG opinion on), and then, when it is nearly
        upright, the profile passes, so a head that turns keeps its track."""
        hits = [h for off in self.cfg.region_angles
                for h in self._region_pass(prep, region, float(region.angle) + float(off), FRONTAL, _REGION_FACE)]
        if not hits and self._hog is not None:
            hits = self.fine_search(prep, region)
        if not hits and PROFILE in self._cascades and abs(region.angle) <= _REGION_PROFILE_ROLL:
            for kind in (PROFILE, PROFILE_MIRROR):
                hits += self._region_pass(prep, region, float(region.angle), kind, _REGION_PROFILE_FACE)
        return hits

    def fine_search(self, prep: Prepared, region: Detection) -> list[Hit]:
        """One frontal pass at a tracked face's last roll on a finer, contrast-equalised crop, for
        when the small crop finds nothing: a low-contrast face (glasses) it loses. It finds texture
        where a face just left as readily (unchecked, static false faces kept their tracks for good
        and were named: door_clip seeds 1, 2, 7, 47-205 wrong-name frames), so a hit counts only where
        dlib's HOG filters score it at least detection.hog_min_score."""
        return [h for h in
                self._region_pass(prep, region, float(region.angle), FRONTAL, _REGION_FINE_FACE, equalize=True)
                if abs(h.angle) <= _HOG_MAX_ROLL
                and self._hog_score(prep, h.cx, h.cy, h.size, h.angle) >= self.cfg.hog_min_score]

    def _hog_score(self, prep: Prepared, cx: float, cy: float, size: float, angle: float) -> float:
        assert self._hog is not None
        s = prep.scale
        return self._hog(prep.grey, cx * s, cy * s, size * s, angle)

    def _region_pass(self, prep: Prepared, region: Detection, a: float, kind: str, f: int,
                     equalize: bool = False) -> list[Hit]:
        """One cascade pass over the upright crop around ``region`` turned to roll ``a``, the face
        resampled to ``f`` pixels, for faces of its size / region_size_ratio .. x region_size_ratio."""
        cfg = self.cfg
        grey, scale = prep.grey, prep.scale
        if region.size <= 0:
            return []
        crop = self._region_crops[f]
        lo, hi = max(1, int(f / cfg.region_size_ratio)), int(math.ceil(f * cfg.region_size_ratio))
        k = region.size * scale / f  # detection-resolution pixels per crop pixel
        m = geometry.upright_crop(grey, region.cx * scale, region.cy * scale, a, k, crop)
        if equalize:
            self._clahe.apply(crop, dst=crop)
        mirror = kind == PROFILE_MIRROR
        self.cascade_calls += 1
        found, neighbours = self._cascades[kind].detectMultiScale2(
            cv2.flip(crop, 1) if mirror else crop, scaleFactor=cfg.scale_factor,
            minNeighbors=cfg.min_neighbors, minSize=(lo, lo), maxSize=(hi, hi))
        if len(found) == 0:
            return []
        rects = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        centres = rects[:, :2] + rects[:, 2:] / 2.0
        if mirror:
            centres[:, 0] = crop.shape[1] - centres[:, 0]
        centres = geometry.apply_affine(m, centres) / scale
        return [Hit(float(cx), float(cy), float(side), a, float(nb), kind != FRONTAL, tracked=True)
                for (cx, cy), side, nb in zip(centres, rects[:, 2] * k / scale, np.ravel(neighbours))]

    # -- merging and verification -------------------------------------------------------
    def candidates(self, prep: Prepared, hits: list[Hit], tracked: Sequence[Detection] = ()) -> list[Candidate]:
        """All merged faces, strongest first, each with its evidence. Hits of both cascades merge
        into one face; it is a profile face only when no frontal hit is among them. A face the region
        search found where one of ``tracked`` was continues it (verified when its track began): no eye
        search, no second opinion. A face only the second frontal cascade (UPRIGHT) found gets no
        second opinion either (that cascade is the verifier too): the HOG filters' opinion decides.
        A face of earlier frames' hits alone is judged again on each frame they are kept, so its
        second opinion must reach _REJUDGED_MIN_NEIGHBORS."""
        merged = []
        tuples = [(h.cx, h.cy, h.size, h.angle, h.score) for h in hits]
        for group in geometry.group_hits(tuples, distance=self.cfg.merge_distance):
            # where the frontal cascade agreed, its hits alone place the face (profile boxes sit
            # differently on a face): a face seen frontally is the face it was without profiles
            frontal = [i for i in group if not hits[i].profile]
            g = np.array([tuples[i] for i in frontal or group], dtype=np.float64)
            w = np.maximum(g[:, 4], 1e-6)
            cx, cy, size, angle = (float(np.average(g[:, k], weights=w)) for k in range(4))
            merged.append((Detection(cx, cy, size, angle, float(g[:, 4].sum()), profile=not frontal),
                           bool(frontal), bool(frontal) and all(hits[i].upright for i in frontal),
                           all(hits[i].earlier for i in group)))
        merged.sort(key=lambda m: -m[0].score)
        out = []
        for det, frontal_hit, upright_only, rejudged in merged:
            # frontal hits where a tracked face was continue it unverified (its roll may have left the
            # second opinion's range); a profile-only face must verify: profile passes found false faces
            # where someone had just slid out of view (door clips), and the track kept its name
            if frontal_hit and tracked and _continues(det, tracked):
                out.append(Candidate(det, tracked=True))
                continue
            if upright_only:  # its cascade gives the second opinion: the HOG filters alone decide
                c = Candidate(det, upright_only=True)
            else:
                eyes, delta = self._find_eyes(prep, det)
                if delta is not None and abs(delta) <= 20.0 and not det.profile:
                    det = replace(det, angle=det.angle + delta)
                second = self._second_opinion(prep, det)
                equalized = (self._second_opinion(prep, det, equalize=True)
                             if second < self.cfg.verify_min_neighbors and self.cfg.verify_equalized_min_neighbors > 0
                             and not det.profile else 0)
                c = Candidate(det, eyes, second, equalized, rejudged=rejudged)
            if self._hog is not None and not det.profile and abs(det.angle) <= _HOG_MAX_ROLL and not self.keep(c):
                c = replace(c, hog=self._hog_score(prep, det.cx, det.cy, det.size, det.angle))
            out.append(c)
        return out

    def select(self, cands: list[Candidate]) -> list[Detection]:
        """The candidates that verify, nested and stacked duplicates dropped, strongest first."""
        kept = [c.detection for c in cands if self.keep(c)]
        if self.cfg.suppress_nested:
            kept = [kept[k] for k in geometry.suppress_nested([(d.cx, d.cy, d.size) for d in kept])]
            kept = [kept[k] for k in geometry.suppress_stacked([(d.cx, d.cy, d.size, d.angle) for d in kept])]
        return kept

    def keep(self, c: Candidate) -> bool:
        """The verification rule: a tracked face, enough eyes, a second opinion, or a strong enough
        score. A profile face has no frontal second opinion to give: its own score must reach
        profile_min_score."""
        cfg = self.cfg
        if c.tracked:
            return True
        if c.upright_only:
            return c.hog >= cfg.hog_min_score
        if c.detection.profile:
            return c.detection.score >= cfg.profile_min_score
        second_min = max(cfg.verify_min_neighbors, _REJUDGED_MIN_NEIGHBORS) if c.rejudged else cfg.verify_min_neighbors
        return ((cfg.min_eyes > 0 and c.eyes >= cfg.min_eyes)
                or (c.second > 0 and c.second >= second_min)
                or (cfg.verify_equalized_min_neighbors > 0 and c.second_equalized >= cfg.verify_equalized_min_neighbors)
                or c.hog >= cfg.hog_min_score
                or c.detection.score >= cfg.min_score)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Faces in ``frame`` (BGR uint8 or grey), strongest first: every pass of sweep() over the
        whole frame (still pictures; video frames get their passes from the schedule)."""
        prep = self.prepare(frame)
        return self.select(self.candidates(prep, self.scan_all(prep, self.sweep())))

    def detect_hog(self, picture: np.ndarray) -> list[Detection]:
        """Faces in a still picture by dlib's HOG detector alone (detection.still_hog_min_score; [] when
        off), best first, upright: the last try of Recognizer.find when the cascades find nothing. Their
        ``score`` is the HOG filters' confidence (dlib's scale, 0 its threshold), not cascade neighbours."""
        if self._hog is None or self.cfg.still_hog_min_score is None:
            return []
        grey = picture if picture.ndim == 2 else cv2.cvtColor(picture[:, :, :3], cv2.COLOR_BGR2GRAY)
        # faces from 40 px (dlib's one upsampling), or a tenth of a larger picture's side: the pyramid's
        # first level is then at most 800 px across (numpy's fHOG costs ~0.1 s per 500x500 level here)
        min_side = max(_HOG_STILL_MIN_FACE, max(grey.shape) / 10.0)
        return [Detection(cx + _HOG_BOX_DX * side, cy + _HOG_BOX_DY * side, _HOG_BOX_SCALE * side, 0.0, score)
                for cx, cy, side, score in self._hog.scan(grey, self.cfg.still_hog_min_score, min_side)]

    def search(self, frame: np.ndarray, scans: Sequence[Scan] = (),
               tracked: Sequence[Detection] = ()) -> list[Detection]:
        """Faces found by exactly these passes plus the region search around each of ``tracked``."""
        prep = self.prepare(frame)
        hits = [h for r in tracked for h in self.track_search(prep, r)] + self.scan_all(prep, list(scans))
        return self.select(self.candidates(prep, hits, tracked))

    def _find_eyes(self, prep: Prepared, det: Detection) -> tuple[int, float | None]:
        """(eyes found: 0, 1 or 2 sides, roll correction in degrees when both sides were found)."""
        if not self._eyes:
            return 0, None
        n = _EYE_CROP
        grey, scale = prep.grey, prep.scale
        # the face box spans the whole crop, upright
        geometry.upright_crop(grey, det.cx * scale, det.cy * scale, det.angle, det.size * scale / (n - 1),
                              self._eye_crop)
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

    def _second_opinion(self, prep: Prepared, det: Detection, equalize: bool = False) -> int:
        """Neighbours the verifying cascade gives a face at the same place and size (0: none);
        ``equalize``: on the crop histogram-equalised (a washed-out or low-contrast face)."""
        if self._verifier is None:
            return 0
        crop = self._verify_crop  # the face box spans _VERIFY_FACE pixels, upright
        scale = prep.scale
        geometry.upright_crop(prep.grey, det.cx * scale, det.cy * scale, det.angle, det.size * scale / _VERIFY_FACE,
                              crop)
        if equalize:
            cv2.equalizeHist(crop, dst=crop)
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

    def close(self) -> None:
        """Stop the thread pool, if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


_KEYS = {FRONTAL: "cascade", PROFILE: "profile_cascade", PROFILE_MIRROR: "profile_cascade",
         UPRIGHT: "upright_cascade"}  # config key of each cascade kind, for errors


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
