"""Upright face chips framed like dlib's ``get_face_chip(img, shape5, size, padding)``.

dlib aligns chips on five landmarks; here the chip is placed from the (turned) Haar box
alone, with a scale and centre offset measured against dlib's own chip placement on the
five-celebs photos (tools/measure_detect.py ``framing``). The chip is cut with one
``warpAffine`` per face straight from the frame, turning the face upright on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edgeface.vision import geometry

if TYPE_CHECKING:
    from edgeface.vision.detect import Detection

# dlib chip (padding 0.25) relative to the Haar box of the same face, in the face's upright
# frame: chip side = CHIP_SCALE x box size; chip centre = box centre + (dx, dy) x box size.
# Measured with the frontal_face_default cascade by tools/measure_detect.py framing.
CHIP_SCALE = 0.99
CHIP_DX = 0.0
CHIP_DY = 0.088
# Paddings other than 0.25 scale the chip as dlib does: its template spans 1 + 2 x padding.
_REFERENCE_PADDING = 0.25
# Where a chip reaches past the picture (a tight face crop, a face at the edge), the edge pixels
# are repeated. dlib fills black; on tight crops black (or a flat canvas) makes every face look
# alike to the embedder: strangers' scores rose by ~0.015 and 8-16% of them were named on five-celebs
# crops, against 2-5% with repeated edges (models/README.md, "Open set").
OUTSIDE = cv2.BORDER_REPLICATE


def chip_placement(det: Detection, padding: float = 0.25) -> tuple[float, float, float, float]:
    """(centre x, centre y, side, angle) in frame pixels of the chip for detection ``det``."""
    size = det.size
    side = CHIP_SCALE * size * (1.0 + 2.0 * padding) / (1.0 + 2.0 * _REFERENCE_PADDING)
    off = geometry.rotation_matrix(det.angle) @ (CHIP_DX * size, CHIP_DY * size)
    return (det.cx + off[0], det.cy + off[1], side, det.angle)


def chip_matrix(cx: float, cy: float, side: float, angle: float, size: tuple[int, int]) -> np.ndarray:
    """2x3 affine taking chip pixels to frame pixels (dlib's convention: chip pixel 0 and
    size-1 land on the two edges of the chip square of side ``side``)."""
    w, h = size
    return geometry.crop_matrix(cx, cy, angle, (side / max(w - 1, 1), side / max(h - 1, 1)), (w, h))


def cut(frame: np.ndarray, m: np.ndarray, size: tuple[int, int], out: np.ndarray) -> None:
    """Warp the chip that affine ``m`` (chip -> frame pixels) places into ``out``."""
    w, h = size
    step = max(np.hypot(m[0, 0], m[1, 0]), 1e-9)  # frame pixels per chip pixel
    if step > 2.0:
        # Shrinking more than 2x: average the region down first (as dlib does with its
        # pyramid) so the chip is not aliased.
        corners = geometry.apply_affine(m, [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        x0, y0 = np.floor(corners.min(0)).astype(int) - 1
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
        fh, fw = frame.shape[:2]
        x0c, y0c, x1c, y1c = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
        if x1c > x0c and y1c > y0c:
            f = 1.0 / step
            region = frame[y0c:y1c, x0c:x1c]
            rw, rh = max(1, int(round(region.shape[1] * f))), max(1, int(round(region.shape[0] * f)))
            small = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            sx, sy = rw / region.shape[1], rh / region.shape[0]
            # chip -> frame -> region -> small
            m2 = np.array([[sx, 0, -x0c * sx], [0, sy, -y0c * sy]], dtype=np.float64)
            mm = m2[:, :2] @ m
            mm[:, 2] += m2[:, 2]
            cv2.warpAffine(small, mm, (w, h), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=OUTSIDE)
            return
    cv2.warpAffine(frame, m, (w, h), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                   borderMode=OUTSIDE)


def cut_chips_at(frame_bgr: np.ndarray, matrices: Sequence[np.ndarray],
                 size: tuple[int, int] = (150, 150)) -> np.ndarray:
    """Upright RGB chips (N, H, W, 3) uint8, one per 2x3 chip->frame affine in ``matrices``
    (chip_matrix, or a landmark alignment). ``size`` is (width, height). Outside the frame, the
    frame's edge repeats (OUTSIDE); a grey frame gives grey chips in all three channels."""
    w, h = int(size[0]), int(size[1])
    out = np.zeros((len(matrices), h, w, 3), dtype=np.uint8)
    frame = frame_bgr if frame_bgr.ndim == 2 else frame_bgr[:, :, :3]
    grey = np.empty((h, w), np.uint8) if frame.ndim == 2 else None
    for i, m in enumerate(matrices):
        if grey is not None:
            cut(frame, m, (w, h), grey)
            out[i] = grey[:, :, None]
        else:
            cut(frame, m, (w, h), out[i])
            cv2.cvtColor(out[i], cv2.COLOR_BGR2RGB, dst=out[i])
    return out


def cut_chips(frame_bgr: np.ndarray, detections: Sequence[Detection], size: tuple[int, int] = (150, 150),
              padding: float = 0.25) -> np.ndarray:
    """Chips placed from the Haar boxes alone (see cut_chips_at), one per detection, in order."""
    return cut_chips_at(frame_bgr, [chip_matrix(*chip_placement(d, padding), size) for d in detections], size)


def sharpness(chip_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's grey: low for a blurred (or much enlarged) face."""
    grey = cv2.cvtColor(chip_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
