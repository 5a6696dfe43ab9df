"""Test pictures made from images that packages ship (no third-party photos in the repo)."""
import cv2
import numpy as np
from skimage import data

from edgeface.vision.geometry import turn_image


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
