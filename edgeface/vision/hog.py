"""A second opinion from dlib's HOG face detector, in numpy (no dlib at run time).

dlib's frontal face detector is five linear filters (frontal, turned left and right, tilted left and
right) over Felzenszwalb's HOG features, 8-pixel cells, an 80x80 window (10x10 cells). Its filters are
read out of dlib by the converter (`python tools/convert_hog.py`, models/hog_frontal.npz) and applied
here to the upright crop around a face the cascades propose. It tells faces with glasses, washed out,
from the texture the cascades also take for faces (wood grain, a corner): on the real walking-and-pause
clip the glasses faces score -0.34..0.33 with dlib itself, the false candidates of door_clip seeds 1-8
at most -0.50 (README, "Detection").
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from edgeface.vision import geometry

CELL = 8
WINDOW_CELLS = 10  # the filters' side, in cells (80 px)


def fhog(grey: np.ndarray) -> np.ndarray:
    """Felzenszwalb HOG features of a grey image as dlib's extract_fhog_features computes them for
    interior cells: (cells_rows - 2, cells_cols - 2, 31) float32; planes 0-17 contrast-sensitive
    orientations, 18-26 insensitive, 27-30 texture."""
    img = grey.astype(np.float32)
    h, w = img.shape
    cr, cc = int(h / CELL + 0.5), int(w / CELL + 0.5)
    if cr < 3 or cc < 3:
        return np.zeros((0, 0, 31), np.float32)
    ys = np.minimum(np.arange(1, cr * CELL - 1), h - 2)
    xs = np.minimum(np.arange(1, cc * CELL - 1), w - 2)
    gx = img[ys][:, xs + 1] - img[ys][:, xs - 1]
    gy = img[ys + 1][:, xs] - img[ys - 1][:, xs]
    mag = np.sqrt(gx * gx + gy * gy)
    # dlib takes the largest of the dot products with 18 unit vectors 20 degrees apart (nine directions
    # and their opposites): the one nearest the gradient's own direction, bin round(angle / 20) mod 18
    # (a vertical gradient lies halfway between two: dlib keeps the first it tries, 80 or 260 degrees)
    orient = np.rint(np.degrees(np.arctan2(gy, gx)) / 20.0).astype(np.int64) % 18
    orient[gx == 0] = np.where(gy[gx == 0] > 0, 4, 13)
    # bilinear votes into the four cells around each pixel
    xp = (np.arange(1, cc * CELL - 1) + 0.5) / CELL - 0.5
    yp = (np.arange(1, cr * CELL - 1) + 0.5) / CELL - 0.5
    ix, iy = np.floor(xp).astype(int), np.floor(yp).astype(int)
    vx0, vy0 = xp - ix, yp - iy
    hist = np.zeros(cr * cc * 18, np.float64)
    for dy, wy in ((0, 1.0 - vy0), (1, vy0)):
        for dx, wx in ((0, 1.0 - vx0), (1, vx0)):
            ry, rx = iy + dy, ix + dx
            oky, okx = (ry >= 0) & (ry < cr), (rx >= 0) & (rx < cc)
            weight = wy[:, None] * wx[None, :] * mag
            idx = (ry[:, None] * cc + rx[None, :]) * 18 + orient
            ok = oky[:, None] & okx[None, :]
            hist += np.bincount(idx[ok], weights=weight[ok], minlength=hist.size)
    cells = hist.reshape(cr, cc, 18)
    norm = ((cells[..., :9] + cells[..., 9:]) ** 2).sum(-1)
    eps = 0.0001
    a, b = slice(0, cr - 2), slice(1, cr - 1)
    c2 = slice(2, cr)
    p, q, r2 = slice(0, cc - 2), slice(1, cc - 1), slice(2, cc)
    ns = [1.0 / np.sqrt(norm[b, q] + norm[b, r2] + norm[c2, q] + norm[c2, r2] + eps),
          1.0 / np.sqrt(norm[a, q] + norm[a, r2] + norm[b, q] + norm[b, r2] + eps),
          1.0 / np.sqrt(norm[b, p] + norm[b, q] + norm[c2, p] + norm[c2, q] + eps),
          1.0 / np.sqrt(norm[a, p] + norm[a, q] + norm[b, p] + norm[b, q] + eps)]
    cell = cells[1:cr - 1, 1:cc - 1]
    unsigned = cell[..., :9] + cell[..., 9:]
    sens = [np.minimum(cell * n[..., None], 0.2) for n in ns]
    out = np.empty((cr - 2, cc - 2, 31), np.float32)
    out[..., :18] = 0.5 * sum(sens)
    out[..., 18:27] = 0.5 * sum(np.minimum(unsigned * n[..., None], 0.2) for n in ns)
    for t, s in enumerate(sens):
        out[..., 27 + t] = 0.2357 * s.sum(-1)
    return out


class HogFaceScore:
    """The best detection confidence of dlib's five face filters for a window centred on a face (within
    ``REACH`` cells), over a few scales: the face's box is resampled to each of ``SIDES`` pixels (dlib's
    window is 80). dlib names a face where this is above 0; a face it would miss scores a little below."""

    # Ten steps of ~8%, windows within two cells: the bald man of walking-and-pause (glasses), his best
    # candidate each frame, scores -0.5 or more in 38 of 41 frames (33 with five steps within one cell;
    # dlib itself scores him -0.34..0.33), and he is found in 40 of 41 frames instead of 34; the 646 false
    # candidates of door_clip seeds 1-8 (every 20th empty frame) stay at most -0.61 either way.
    # Cost: ~15 ms a call here (7 with five steps within one cell).
    SIDES = (66.0, 72.0, 78.0, 84.0, 90.0, 96.0, 103.0, 110.0, 118.0, 127.0)
    REACH = 2
    MARGIN = 4 * CELL  # crop pixels around the face box: the windows' reach and the features' border
    LEVEL_STEP = 5.0 / 6.0  # scan's pyramid, as dlib's pyramid_down<6>: each level 5/6 of the one above

    def __init__(self, path: str | Path):
        with np.load(path) as data:
            self.filters = data["filters"].astype(np.float32)  # (5, 10, 10, 31)
            self.thresholds = data["thresholds"].astype(np.float32)  # (5,)

    def __call__(self, grey: np.ndarray, cx: float, cy: float, size: float, angle: float) -> float:
        """The score of the face centred at (cx, cy), ``size`` pixels across, turned ``angle``
        degrees, in ``grey``'s pixels."""
        best = -math.inf
        n = WINDOW_CELLS
        for side in self.SIDES:
            side_px = int(side + 2 * self.MARGIN)
            crop = np.empty((side_px, side_px), np.uint8)
            geometry.upright_crop(grey, cx, cy, angle, size / side, crop)
            feats = fhog(crop)
            # a window at feature (y, x) covers cells y+1 .. y+n: its centre is at pixel (y + 1 + n/2) * CELL
            c = int(round(side_px / 2.0 / CELL - 1 - n / 2.0))
            lo, hi = max(0, c - self.REACH), min(feats.shape[0] - n, c + self.REACH)
            if hi < lo:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(feats, (n, n), axis=(0, 1))[lo:hi + 1, lo:hi + 1]
            scores = np.einsum("abkij,dijk->abd", windows, self.filters) - self.thresholds
            best = max(best, float(scores.max()))
        return best

    def scan(self, grey: np.ndarray, min_score: float = 0.0,
             min_side: float = 80.0) -> list[tuple[float, float, float, float]]:
        """dlib's detector over a whole picture: its five filters slid over the fHOG of a scale pyramid,
        as ``dlib.get_frontal_face_detector()`` runs. Faces from ``min_side`` pixels across (the
        picture is enlarged first when that is under the filters' 80) upwards; returns (cx, cy, side,
        score) of the windows scoring at least ``min_score``, best first, none overlapping another
        by more than a third of its area. ``side`` is the window's (80 px at its level)."""
        n, window = WINDOW_CELLS, float(WINDOW_CELLS * CELL)
        scale = window / min_side  # level pixels per picture pixel
        found = []
        while True:
            h, w = int(grey.shape[0] * scale), int(grey.shape[1] * scale)
            if min(h, w) < window + 2 * CELL:
                break
            interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
            feats = fhog(cv2.resize(grey, (w, h), interpolation=interpolation))
            rows, cols = feats.shape[0] - n + 1, feats.shape[1] - n + 1
            if rows > 0 and cols > 0:
                scores = np.zeros((rows, cols, len(self.filters)), np.float32)
                for i in range(n):
                    for j in range(n):
                        scores += feats[i:i + rows, j:j + cols] @ self.filters[:, i, j, :].T
                scores = (scores - self.thresholds).max(-1)
                for y, x in zip(*np.nonzero(scores >= min_score)):
                    # the window at feature (y, x) covers cells y+1 .. y+n (fhog drops the border cells)
                    found.append(((x + 1 + n / 2.0) * CELL / scale, (y + 1 + n / 2.0) * CELL / scale,
                                  window / scale, float(scores[y, x])))
            scale *= self.LEVEL_STEP
        found.sort(key=lambda f: -f[3])
        kept: list[tuple[float, float, float, float]] = []
        for f in found:
            if all(_overlap(f, k) <= 1.0 / 3.0 for k in kept):
                kept.append(f)
        return kept


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over the smaller of two squares given as (cx, cy, side, ...)."""
    ix = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    iy = min(a[1] + a[2] / 2, b[1] + b[2] / 2) - max(a[1] - a[2] / 2, b[1] - b[2] / 2)
    return max(ix, 0.0) * max(iy, 0.0) / min(a[2], b[2]) ** 2
