"""The face picture Home Assistant's MQTT image entity shows: the face box grown by half, as a JPEG
small enough for a retained MQTT message and a phone notification."""
from __future__ import annotations

import cv2
import numpy as np

MAX_BYTES = 64 * 1024
GROW = 0.5  # the box grows by half its size (a quarter on each side): hair, chin and ears in view


def grown_box(box, shape: tuple[int, ...], grow: float = GROW) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the face box grown by `grow` about its centre, clipped to the image."""
    x, y, w, h = (float(v) for v in box)
    cx, cy, gw, gh = x + w / 2, y + h / 2, w * (1 + grow), h * (1 + grow)
    height, width = shape[:2]
    x0, y0 = max(0, int(round(cx - gw / 2))), max(0, int(round(cy - gh / 2)))
    x1, y1 = min(width, int(round(cx + gw / 2))), min(height, int(round(cy + gh / 2)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def face_jpeg(image: np.ndarray, box, max_bytes: int = MAX_BYTES) -> bytes | None:
    """The grown face crop as JPEG of at most max_bytes (lower quality, then smaller, until it fits);
    None when the box lies outside the image."""
    corners = grown_box(box, image.shape)
    if corners is None:
        return None
    x0, y0, x1, y1 = corners
    crop = image[y0:y1, x0:x1]
    for _ in range(8):
        for quality in (85, 70, 50):
            ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and buf.size <= max_bytes:
                return buf.tobytes()
        if min(crop.shape[:2]) < 16:
            return None
        crop = cv2.resize(crop, (crop.shape[1] * 2 // 3, crop.shape[0] * 2 // 3), interpolation=cv2.INTER_AREA)
    return None
