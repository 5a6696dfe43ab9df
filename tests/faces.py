"""Test pictures made from images that packages ship (no third-party photos in the repo)."""
import struct
import zlib

import cv2
import numpy as np
from skimage import data

from edgeface.vision.geometry import turn_image

FACE_BOX = (177, 75, 92, 92)  # the astronaut's face in astronaut_bgr(): x, y, w, h


def astronaut_bgr() -> np.ndarray:
    """NASA's public-domain portrait of Eileen Collins, 512x512, as OpenCV reads images."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def turned(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turn about the centre with the canvas grown, as ../shared/acceptance does."""
    return turn_image(image, degrees)


def write_jpeg(path, image) -> str:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    path.write_bytes(buf.tobytes())
    return str(path)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny IDAT: enough for the header check."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' pixels (1: the same picture up to brightness and contrast)."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def chip_windows(image, sizes=(0.3, 0.5, 0.8)):
    """150x150 chips of square windows over an RGB or grey picture, half a window apart."""
    bgr = cv2.cvtColor(image[..., :3] if image.ndim == 3 else np.dstack([image] * 3), cv2.COLOR_RGB2BGR)
    h, w = bgr.shape[:2]
    for share in sizes:
        side = int(min(h, w) * share)
        for y in range(0, h - side + 1, side // 2):
            for x in range(0, w - side + 1, side // 2):
                yield cv2.resize(bgr[y:y + side, x:x + side], (150, 150), interpolation=cv2.INTER_AREA)
