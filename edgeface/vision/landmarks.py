"""Five-point face landmarks (dlib's shape_predictor_5_face_landmarks, converted to numpy) and
dlib-style aligned face chips from Haar detections.

The embedder was trained on chips framed by dlib's ``get_face_chip(img, shape5, 150, 0.25)``,
which aligns on five landmarks; chips placed from a Haar box alone lose a lot of verification
accuracy. ``LandmarkPredictor`` runs dlib's regression-tree cascade (Kazemi & Sullivan) from
models/landmarks_5pt.npz (written by tools/convert_landmarks.py) with numpy only;
``chip_transform`` reproduces dlib's ``get_face_chip_details`` placement; ``Aligner`` goes
from ``HaarDetector`` detections to aligned chips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edgeface.config.paths import shipped_file
from edgeface.vision import geometry
from edgeface.vision.chip import cut_chips_at
from edgeface.vision.detect import Detection

DEFAULT_LANDMARKS_NAME = "landmarks_5pt.npz"

# dlib's 5-point chip template (get_face_chip_details): right eye outer, right eye inner,
# left eye outer, left eye inner, nose base, in units of the unpadded chip.
_CHIP_TEMPLATE = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                           (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                           (0.4901123135679, 0.6277975316475)], dtype=np.float64)

# dlib HOG rect relative to the Haar box, in the face's upright frame (fitted on five-celebs by
# tools/convert_landmarks.py --fit-rect): rect side = RECT_SCALE x Haar size; rect centre =
# Haar centre + (RECT_DX, RECT_DY) x Haar size.
RECT_SCALE = 0.87
RECT_DX = -0.017
RECT_DY = 0.067


def default_landmarks_path() -> Path:
    """The shipped landmark model."""
    return shipped_file(DEFAULT_LANDMARKS_NAME)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A 2x2, t) least-squares similarity dst ~ A @ src + t: a rotation and a uniform scale,
    never a reflection (dlib's find_similarity_transform, Umeyama, restricted to rotations).

    In 2-D the least-squares fit has a closed form: A = [[a, -b], [b, a]] with a, b the dot and
    cross sums of the centred points over src's spread. It equals Umeyama's SVD solution (to
    float rounding) whenever the covariance has full rank, and stays exact where it has not (two
    point pairs, collinear points): there the SVD's singular vectors have an arbitrary sign, and
    the sign correction turned some two-point fits into a 180-degree rotation or a reflection."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
        raise ValueError(f"similarity_transform wants two (N, 2) arrays, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    spread = float((s * s).sum())
    if spread == 0:  # all source points coincide: no rotation or scale to fit
        a = np.eye(2)
    else:
        dot = float((s * d).sum()) / spread
        cross = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / spread
        a = np.array([[dot, -cross], [cross, dot]])
    return a, mu_d - a @ mu_s


class LandmarkPredictor:
    """dlib's shape predictor cascade; ``predict(grey, rect)`` -> (5, 2) float points.

    Points are unrounded (dlib rounds its output to whole pixels)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_landmarks_path()
        try:
            z = np.load(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path}: landmark model not found "
                                    f"(write it with tools/convert_landmarks.py)") from None
        with z:
            if int(z["format"]) != 1:
                raise ValueError(f"{self.path}: unknown landmark model format {int(z['format'])}")
            self.initial_shape = z["initial_shape"].astype(np.float32).reshape(-1, 2)
            self.levels = []
            for i in range(int(z["n_levels"])):
                leaves = z[f"l{i}_leaves"].astype(np.float32)          # (trees, leaves, 2*parts)
                if f"l{i}_leaf_scale" in z.files:                         # int16 leaves
                    leaves *= z[f"l{i}_leaf_scale"].astype(np.float32)
                n_trees, n_leaves = leaves.shape[:2]
                self.levels.append(dict(
                    anchor=z[f"l{i}_anchor_idx"].astype(np.intp),
                    deltas=z[f"l{i}_deltas"].astype(np.float32),
                    idx1=z[f"l{i}_idx1"].astype(np.intp), idx2=z[f"l{i}_idx2"].astype(np.intp),
                    thresh=z[f"l{i}_thresh"].astype(np.float32),
                    leaves=leaves.reshape(n_trees * n_leaves, -1),
                    leaf_base=np.arange(n_trees, dtype=np.intp) * n_leaves,
                    depth=int(round(math.log2(n_leaves)))))
        self.n_parts = len(self.initial_shape)
        ref = self.initial_shape.astype(np.float64)
        self._ref_centred = ref - ref.mean(0)
        self._ref_var = float((self._ref_centred ** 2).sum())

    def _to_current(self, shape: np.ndarray) -> np.ndarray:
        """2x2 (float32) of the similarity from the mean shape to ``shape`` (dlib's
        find_tform_between_shapes). In 2-D, Umeyama's SVD solution is this closed form: scale x
        rotation = [[a, -b], [b, a]] with a, b the dot and cross sums over the centred points
        (a reflected covariance gives the same nearest rotation), at a tenth of the cost."""
        d = shape.astype(np.float64)
        d -= d.mean(0)
        r = self._ref_centred
        a = float((r * d).sum()) / self._ref_var
        b = float((r[:, 0] * d[:, 1] - r[:, 1] * d[:, 0]).sum()) / self._ref_var
        return np.array([[a, -b], [b, a]], np.float32)

    def predict(self, grey: np.ndarray, rect: Sequence[float]) -> np.ndarray:
        """Landmarks for the face in ``rect`` = (left, top, right, bottom), dlib's inclusive
        rectangle in ``grey`` (uint8, H x W) pixels."""
        if grey.ndim != 2:
            raise ValueError(f"predict wants a grey (H, W) image, got shape {grey.shape}")
        left, top, right, bottom = (float(v) for v in rect)
        # dlib's unnormalizing_tform: (0,0)->(left,top), (1,0)->(right,top), (1,1)->(right,bottom)
        sx, sy = right - left, bottom - top
        h, w = grey.shape
        flat = grey.reshape(-1)
        shape = self.initial_shape.copy()
        for lev in self.levels:
            pts = lev["deltas"] @ self._to_current(shape).T + shape[lev["anchor"]]
            # map to pixels and take the nearest pixel (dlib rounds half up); outside = 0
            px = np.floor(left + pts[:, 0] * sx + 0.5).astype(np.intp)
            py = np.floor(top + pts[:, 1] * sy + 0.5).astype(np.intp)
            inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
            feats = np.zeros(len(pts), np.float32)
            feats[inside] = flat[py[inside] * w + px[inside]]
            diff = feats[lev["idx1"]] - feats[lev["idx2"]] > lev["thresh"]   # (trees, splits)
            node = np.zeros(len(diff), np.intp)
            rows = np.arange(len(diff))
            for _ in range(lev["depth"]):
                node = 2 * node + 2 - diff[rows, node]     # left child 2i+1 when the split holds
            n_splits = diff.shape[1]
            # dlib adds the trees' leaves one after another in float32; cumsum keeps that order
            # (a pairwise sum rounds differently and can flip a later split)
            steps = lev["leaves"][lev["leaf_base"] + node - n_splits]
            shape = np.cumsum(np.vstack([shape.reshape(1, -1), steps]), axis=0, dtype=np.float32)[-1].reshape(-1, 2)
        return np.stack([left + shape[:, 0] * sx, top + shape[:, 1] * sy], axis=1).astype(np.float64)


def chip_to_image(points5: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """2x3 affine taking chip pixels to image pixels, as dlib's get_face_chip_details +
    extract_image_chip place it: the similarity from dlib's padded template (in chip units) to
    the five points, with chip pixel centres at +0.5 (measured against dlib.get_face_chip: this
    placement matches its chips to interpolation rounding; chip pixels 0..size-1 spread over
    ``size`` template units)."""
    tmpl = (padding + _CHIP_TEMPLATE) / (2 * padding + 1) * size
    a, t = similarity_transform(tmpl, np.asarray(points5, np.float64))
    m = np.empty((2, 3))
    m[:, :2] = a
    m[:, 2] = t + a @ (0.5, 0.5)
    return m


def chip_transform(points5: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """2x3 affine image -> chip: ``cv2.warpAffine(img, M, (size, size))`` gives dlib's
    ``get_face_chip(img, shape5, size, padding)`` framing."""
    return cv2.invertAffineTransform(chip_to_image(points5, size, padding))


# Largest face rect side (pixels) the predictor sees; bigger faces are shrunk first, which keeps
# the crop cheap and changes the landmarks very little (the trees compare pixel pairs).
_MAX_RECT_SIDE = 240.0
# Upright crop side around the face, in rect sides: the cascade samples pixels a little
# outside the rect.
_CROP_RECT_SIDES = 2.0


def haar_rect(det: Detection, scale: float = 1.0) -> tuple[float, float, float]:
    """(dx, dy, side) of the dlib-HOG-like rect for a Haar detection: its centre's offset from
    the detection centre in the face's upright frame, and its side; in frame pixels times
    ``scale``."""
    return (RECT_DX * det.size * scale, RECT_DY * det.size * scale, RECT_SCALE * det.size * scale)


def _crop_matrix(det: Detection, side: int, scale: float) -> np.ndarray:
    """2x3 affine taking upright-crop pixels to frame pixels: the crop is centred on the
    detection, turned upright (undoing det.angle) and scaled by ``scale`` (crop px per frame px)."""
    m = geometry.crop_matrix(det.cx, det.cy, det.angle, 1.0 / scale, (side, side))
    if det.angle == 0 and scale == 1.0:
        m[:, 2] = np.round(m[:, 2])  # plain copy: no interpolation of the pixels
    return m


def _grey(bgr: np.ndarray) -> np.ndarray:
    """dlib's RGB -> grey: the plain channel average, rounded down."""
    if bgr.ndim == 2:
        return bgr
    return (bgr[:, :, :3].sum(axis=2, dtype=np.uint16) // 3).astype(np.uint8)


class Aligner:
    """Haar detections -> five landmarks -> dlib-framed chips. Holds the predictor."""

    def __init__(self, predictor: LandmarkPredictor | None = None, refine: bool = False):
        self.predictor = predictor if predictor is not None else LandmarkPredictor()
        # refine: a second pass from the rect the first pass's landmarks imply (measured as an
        # open-set lever, models/README.md "Open set"; off)
        self.refine = refine

    def landmarks(self, frame: np.ndarray, det: Detection) -> np.ndarray:
        """(5, 2) landmarks in frame pixels for one Haar detection."""
        pts = self._landmarks(frame, det)
        return self._landmarks(frame, self.implied_detection(pts)) if self.refine else pts

    def implied_detection(self, pts: np.ndarray) -> Detection:
        """The Haar detection whose rect (haar_rect) would hold ``pts`` where the predictor's mean
        shape sits in its rect: place, size and roll fitted to the landmarks, not to the cascade."""
        a, t = similarity_transform(self.predictor.initial_shape, pts)  # unit rect -> frame pixels
        side = math.hypot(a[0, 0], a[1, 0])
        angle = -math.degrees(math.atan2(a[1, 0], a[0, 0]))  # rotation_matrix's sign convention
        centre = a @ (0.5, 0.5) + t
        size = side / RECT_SCALE
        cx, cy = centre - geometry.rotation_matrix(angle) @ (RECT_DX * size, RECT_DY * size)
        return Detection(float(cx), float(cy), float(size), angle, 0.0)

    def _landmarks(self, frame: np.ndarray, det: Detection) -> np.ndarray:
        rect_side = RECT_SCALE * det.size
        scale = min(1.0, _MAX_RECT_SIDE / max(rect_side, 1.0))
        side = int(math.ceil(_CROP_RECT_SIDES * rect_side * scale)) | 1
        m = _crop_matrix(det, side, scale)
        crop = cv2.warpAffine(frame, m, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        grey = _grey(crop)
        dx, dy, rs = haar_rect(det, scale)
        half = (side - 1) / 2.0
        left, top = half + dx - rs / 2.0, half + dy - rs / 2.0
        # dlib rects are inclusive integer rectangles: side rs spans left .. left + rs - 1
        rect = (round(left), round(top), round(left) + round(rs) - 1, round(top) + round(rs) - 1)
        pts = self.predictor.predict(grey, rect)
        return pts @ m[:, :2].T + m[:, 2]

    def chips(self, frame_bgr: np.ndarray, detections: Sequence[Detection], size: tuple[int, int] = (150, 150),
              padding: float = 0.25) -> np.ndarray:
        """Upright RGB chips (N, H, W, 3) uint8 framed as dlib's get_face_chip(img, shape5, size,
        padding) frames them, one per Haar detection, in order. Outside the frame, its edge repeats."""
        frame = frame_bgr if frame_bgr.ndim == 2 else frame_bgr[:, :, :3]
        return cut_chips_at(frame, [chip_to_image(self.landmarks(frame, d), int(size[0]), padding)
                                    for d in detections], size)
