"""Pure geometry for rotated detection: no I/O, no OpenCV state.

Angle convention (shared with detect.py and chip.py): degrees, the sign of
``cv2.getRotationMatrix2D``. A point turned by angle ``a`` about a centre ``c``
moves as ``p' = R(a) (p - c) + c`` with ``R(a) = [[cos a, sin a], [-sin a, cos a]]``
(image coordinates, y down: positive ``a`` turns counter-clockwise on screen).
An upright face turned by ``R(+30)`` is reported with ``angle = +30``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np


def rotation_matrix(angle: float) -> np.ndarray:
    """2x2 matrix R(angle) in the OpenCV sign convention."""
    r = math.radians(angle)
    c, s = math.cos(r), math.sin(r)
    return np.array([[c, s], [-s, c]], dtype=np.float64)


def rotate_grown(width: int, height: int, angle: float, scale: float = 1.0) -> tuple[np.ndarray, tuple[int, int]]:
    """Affine (2x3) turning a ``width`` x ``height`` image by ``angle`` about its centre
    (optionally scaling by ``scale``) onto a canvas grown so that no pixel is cut off.

    Returns ``(matrix, (new_width, new_height))``; the canvas size rounds the same way as
    the acceptance script's ``rotate`` so both produce the same pictures.
    """
    r = rotation_matrix(angle) * scale
    c, s = abs(r[0, 0]), abs(r[0, 1])
    new_w, new_h = int(height * s + width * c), int(height * c + width * s)
    cx, cy = width / 2.0, height / 2.0
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = r
    # centre of the source lands on the centre of the grown canvas
    m[:, 2] = (new_w / 2.0, new_h / 2.0) - r @ (cx, cy)
    return m, (new_w, new_h)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (as a 2x3 matrix)."""
    a = np.asarray(m, dtype=np.float64)[:, :2]
    t = np.asarray(m, dtype=np.float64)[:, 2]
    ai = np.linalg.inv(a)
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = ai
    out[:, 2] = -ai @ t
    return out


def apply_affine(m: np.ndarray, points) -> np.ndarray:
    """Apply a 2x3 affine to points shaped (..., 2); returns float64 of the same shape."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def map_back(m: np.ndarray, points) -> np.ndarray:
    """Map points from the canvas that affine ``m`` produced back to the source frame."""
    return apply_affine(invert_affine(m), points)


def rotated_square_bound(cx: float, cy: float, size: float, angle: float) -> tuple[float, float, float, float]:
    """Axis-aligned bound (x, y, w, h) of a square of side ``size`` centred at (cx, cy)
    and turned by ``angle`` degrees."""
    r = math.radians(angle)
    half = 0.5 * size * (abs(math.cos(r)) + abs(math.sin(r)))
    return (cx - half, cy - half, 2.0 * half, 2.0 * half)


def crop_matrix(cx: float, cy: float, angle: float, step: float | tuple[float, float],
                size: tuple[int, int]) -> np.ndarray:
    """2x3 affine taking the pixels of an upright crop of ``size`` (w, h) to frame pixels: the
    crop is centred on (cx, cy), turned by ``angle`` (so a face at that roll comes out upright)
    and samples ``step`` frame pixels per crop pixel (one number, or x and y). Warp with
    ``cv2.WARP_INVERSE_MAP``. Every upright crop (chips, landmark crops, detection crops) uses it."""
    sx, sy = (step, step) if isinstance(step, (int, float)) else step
    a = rotation_matrix(angle) @ np.diag((float(sx), float(sy)))
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = a
    m[:, 2] = (cx, cy) - a @ ((size[0] - 1) / 2.0, (size[1] - 1) / 2.0)
    return m


def upright_crop(grey: np.ndarray, cx: float, cy: float, angle: float, step: float, out: np.ndarray) -> np.ndarray:
    """Warp the square around (cx, cy) turned by ``angle`` upright into ``out`` (square), ``step``
    image pixels per crop pixel, edges repeated; returns the crop -> image affine."""
    n = out.shape[0]
    m = crop_matrix(cx, cy, angle, step, (n, n))
    cv2.warpAffine(grey, m, (n, n), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                   borderMode=cv2.BORDER_REPLICATE)
    return m


def group_hits(hits: Sequence[Sequence[float]], distance: float = 0.5, size_ratio: float = 1.6) -> list[list[int]]:
    """Group hits (cx, cy, size, angle, score) that are the same face seen at
    neighbouring angles or scales.

    Greedy by score: the strongest ungrouped hit starts a group; another hit joins it when
    its centre lies within ``distance`` x the larger size of the leader's centre and the
    sizes differ by less than ``size_ratio``. Returns lists of indices, strongest first.
    """
    order = sorted(range(len(hits)), key=lambda i: -hits[i][4])
    taken = [False] * len(hits)
    groups: list[list[int]] = []
    for i in order:
        if taken[i]:
            continue
        taken[i] = True
        cx, cy, size = hits[i][0], hits[i][1], hits[i][2]
        group = [i]
        for j in order:
            if taken[j]:
                continue
            ox, oy, osize = hits[j][0], hits[j][1], hits[j][2]
            if max(size, osize) > size_ratio * min(size, osize):
                continue
            if math.hypot(ox - cx, oy - cy) <= distance * max(size, osize):
                taken[j] = True
                group.append(j)
        groups.append(group)
    return groups


def merge_hits(hits: Iterable[Sequence[float]], distance: float = 0.5,
               size_ratio: float = 1.6) -> list[tuple[float, float, float, float, float]]:
    """Merge duplicate hits (cx, cy, size, angle, score) into one per face.

    Position, size and angle are score-weighted means over the group (the angle between
    two neighbouring grid angles lands where the cascade agreed best); the score is the
    group's summed score. Returns merged tuples, strongest first.
    """
    hits = [tuple(float(v) for v in h) for h in hits]
    out = []
    for group in group_hits(hits, distance, size_ratio):
        g = np.array([hits[i] for i in group], dtype=np.float64)
        w = np.maximum(g[:, 4], 1e-6)
        cx, cy, size, angle = (np.average(g[:, k], weights=w) for k in range(4))
        out.append((float(cx), float(cy), float(size), float(angle), float(g[:, 4].sum())))
    out.sort(key=lambda h: -h[4])
    return out


def suppress_nested(faces: Sequence[Sequence[float]], overlap: float = 1.0) -> list[int]:
    """Indices of faces (cx, cy, size, ...) to keep, given strongest first: a face whose
    centre lies inside a stronger kept face's circle (radius ``overlap`` x size / 2), or
    whose circle holds the stronger face's centre, is the same face framed differently
    (a box around head and shoulders, a box on one half of the face) and is dropped."""
    kept: list[int] = []
    for i, f in enumerate(faces):
        ok = True
        for j in kept:
            g = faces[j]
            d = math.hypot(f[0] - g[0], f[1] - g[1])
            if d < 0.5 * overlap * max(f[2], g[2]):
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


def suppress_stacked(faces: Sequence[Sequence[float]]) -> list[int]:
    """Indices of faces (cx, cy, size, angle) to keep: of two faces of about one size (within
    1.5x) that lie one above the other in the lower one's own upright frame (across it by under
    0.35 sizes, above it by 0.4-1.0 sizes), the upper one is dropped. It is a box on the forehead
    and hair of the face below (its eyes sit at the bottom of the box): two people's faces do not
    overlap like that, as one would hide the other's chin. (make_clip seed 11: such a box over
    Madonna's face was verified, tracked, and named Elton John for 2 frames.)"""
    drop: set[int] = set()
    for i, low in enumerate(faces):
        for j, high in enumerate(faces):
            if i == j or i in drop or max(low[2], high[2]) > 1.5 * min(low[2], high[2]):
                continue
            size = (low[2] + high[2]) / 2
            across, down = rotation_matrix(low[3]).T @ (high[0] - low[0], high[1] - low[1])
            if abs(across) < 0.35 * size and 0.4 * size < -down < size:
                drop.add(j)
    return [k for k in range(len(faces)) if k not in drop]


def turn_image(image: np.ndarray, angle: float, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """``image`` turned by ``angle`` about its centre on a grown canvas (see rotate_grown)."""
    h, w = image.shape[:2]
    m, size = rotate_grown(w, h, angle)
    return cv2.warpAffine(image, m, size, borderMode=border)
