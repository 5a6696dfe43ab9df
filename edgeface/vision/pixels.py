"""A video frame's pixels, decoded only when something looks at them.

A camera that delivers JPEG (an MJPEG file, HTTP MJPEG, a V4L2 camera in MJPEG mode) hands the
reader compressed frames. Most frames of an empty room need only the motion check, which works on
a small grey copy: libjpeg decodes one at 1/2, 1/4 or 1/8 scale straight to grey
(IMREAD_REDUCED_GRAYSCALE_*) for a fraction of a full colour decode (640x480: ~0.7 ms against
~1.9 ms), and a frame nobody looks at is never decoded at all. The full BGR decode happens only
when detection or a chip needs pixels, and once.
"""
from __future__ import annotations

import cv2
import numpy as np

from edgeface.vision.images import image_size

_REDUCED = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def jpeg_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (SOFn marker), without decoding; None if not found."""
    b = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return image_size(b) if b[:2] == b"\xff\xd8" else None


def is_jpeg(data: np.ndarray) -> bool:
    return data.size > 3 and bool(data.flat[0] == 0xFF and data.flat[1] == 0xD8)


class FramePixels:
    """Either decoded BGR pixels, or a JPEG decoded on demand (bgr(): once, in full; small_grey():
    reduced, grey). ``full_decodes`` and ``reduced_decodes`` count the decoding done."""

    def __init__(self, image: np.ndarray | None = None, jpeg: np.ndarray | None = None):
        if (image is None) == (jpeg is None):
            raise ValueError("FramePixels needs exactly one of image, jpeg")
        self._image = image
        self._jpeg = jpeg
        self._size: tuple[int, int] | None = None
        self.full_decodes = 0
        self.reduced_decodes = 0

    @property
    def decoded(self) -> bool:
        return self._image is not None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the full frame."""
        if self._image is not None:
            return self._image.shape[1], self._image.shape[0]
        if self._size is None:
            self._size = jpeg_size(self._jpeg)  # type: ignore[arg-type]
            if self._size is None:
                img = self.bgr()
                return img.shape[1], img.shape[0]
        return self._size

    def bgr(self) -> np.ndarray:
        """The full colour frame (decoded now, the first time)."""
        if self._image is None:
            image = cv2.imdecode(self._jpeg, cv2.IMREAD_COLOR)  # type: ignore[arg-type]
            if image is None:
                raise ValueError("cannot decode the frame's JPEG")
            self.full_decodes += 1
            self._image = image
        return self._image

    def small_grey(self, width: int) -> np.ndarray:
        """The frame grey, downscaled with area averaging to ``width`` (or less, if it is smaller).
        From a JPEG not yet decoded: a reduced grey decode at the largest of 1/8, 1/4, 1/2 that
        stays at least ``width`` wide, then resized."""
        if self._image is not None:
            grey = self._image
            if grey.ndim == 3:
                code = cv2.COLOR_BGRA2GRAY if grey.shape[2] == 4 else cv2.COLOR_BGR2GRAY
                grey = cv2.cvtColor(grey, code)
        else:
            w, _ = self.size
            factor = max([f for f in (1, 2, 4, 8) if w // f >= width] or [1])
            reduced = cv2.imdecode(self._jpeg, _REDUCED[factor])  # type: ignore[arg-type]
            if reduced is None:
                raise ValueError("cannot decode the frame's JPEG")
            grey = reduced
            self.reduced_decodes += 1
        h, w = grey.shape[:2]
        if w > width:
            grey = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
        return grey
