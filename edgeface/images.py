"""Reading photos from disk with errors a person can act on."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


class ImageError(ValueError):
    """A photo that cannot be used; the message names the file and the reason."""


def expand(paths: list[str]) -> list[Path]:
    """Files as given, folders as their images (sorted, not recursive). Missing paths raise."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def _truncated(data: bytes) -> bool:
    """Some decoder builds turn a cut-off file into a half-grey picture without failing; say what it is."""
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" not in data[-64:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-32:]
    return False


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(BGR uint8 image, sha256 of the file bytes)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read: {e.strerror or e}") from None
    if not data:
        raise ImageError(f"{path}: empty file")
    if _truncated(data):
        raise ImageError(f"{path}: truncated image (the file ends before the picture does)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path}: not an image OpenCV can decode")
    return image, hashlib.sha256(data).hexdigest()
