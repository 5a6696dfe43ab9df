"""Test pictures made from images that packages ship (no third-party photos in the repo)."""
import cv2
import numpy as np
from skimage import data


def astronaut_bgr() -> np.ndarray:
    """NASA's public-domain portrait of Eileen Collins, 512x512, as OpenCV reads images."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def turned(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turn about the centre with the canvas grown, as ../shared/acceptance does."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE)


def write_jpeg(path, image) -> str:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    path.write_bytes(buf.tobytes())
    return str(path)
