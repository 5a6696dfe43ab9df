"""Reading photos from disk with errors a person can act on."""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 50_000_000  # a header claiming more is refused before decoding (--max-pixels)
MAX_SIDE = 4096  # larger photos are decoded reduced: faces are found at 480 px wide anyway
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


class ImageError(ValueError):
    """A photo that cannot be used; the message names the file and the reason."""


def expand(paths: list[str]) -> list[Path]:
    """Files as given, folders as their images (sorted, not recursive). A missing path is kept as
    given, so reading it reports "no such file" for that path alone (the rest of a batch goes on)."""
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


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it; None for a format not recognised.

    JPEG, PNG, GIF, BMP, WebP, TIFF and PNM: what OpenCV decodes. cv2 has no header-only API.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)  # negative height: rows stored top-down
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:1] == b"P" and data[1:2] in b"1234567":
            return _pnm_size(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers: no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn (not DHT, JPG, DAC)
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        if marker == 0xDA:  # scan data began without a frame header
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD: the page OpenCV decodes."""
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
    found: dict[int, int] = {}
    for k in range(count):
        tag, kind, _n = struct.unpack(e + "HHI", data[ifd + 2 + 12 * k:ifd + 10 + 12 * k])
        field = data[ifd + 10 + 12 * k:ifd + 14 + 12 * k]
        if tag in (256, 257):
            found[tag] = struct.unpack(e + "H", field[:2])[0] if kind == 3 else struct.unpack(e + "I", field)[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    head = data[:4096]
    if head[1:2] == b"7":  # PAM: WIDTH and HEIGHT lines
        fields = dict(line.split(None, 1) for line in head.split(b"\n") if len(line.split(None, 1)) == 2)
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    tokens = []
    for line in head[2:].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[0]), int(tokens[1])
    return None


@dataclass(frozen=True)
class Photo:
    """A decoded photo. scale: decoded size / original size (1.0 unless it was decoded reduced)."""

    image: np.ndarray
    sha256: str
    width: int
    height: int
    scale: float


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def read_photo(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_side: int | None = MAX_SIDE) -> Photo:
    """Read, check the header's size against max_pixels before decoding, decode at most max_side wide or tall.

    A JPEG is decoded reduced by 2, 4 or 8 (libjpeg scales while decoding, so the full picture is
    never in memory); any other format is decoded whole and then scaled down. None: no limit.
    """
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
    size = image_size(data)
    if size is None:
        raise ImageError(f"{path}: not an image OpenCV can decode (edgeface reads JPEG, PNG, BMP, WebP, TIFF, "
                         f"GIF and PNM files)")
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{path}: the header says {width}x{height} pixels: not a usable image")
    if max_pixels and width * height > max_pixels:
        raise ImageError(f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
                         f"{max_pixels / 1e6:g}; scale the photo down or raise --max-pixels (max_pixels)")
    if _truncated(data):
        raise ImageError(f"{path}: truncated image (the file ends before the picture does)")
    longest = max(width, height)
    factor = 1
    if data[:3] == b"\xff\xd8\xff" and max_side:
        while factor < 8 and longest / factor > max_side:
            factor *= 2
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[factor])
    except cv2.error as e:
        raise ImageError(f"{path}: not an image OpenCV can decode ({str(e).strip().splitlines()[-1]})") from None
    if image is None:
        raise ImageError(f"{path}: not an image OpenCV can decode")
    if max_side and max(image.shape[:2]) > max_side:
        shrink = max_side / max(image.shape[:2])
        new = (max(1, round(image.shape[1] * shrink)), max(1, round(image.shape[0] * shrink)))
        image = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
    scale = max(image.shape[:2]) / longest  # longest sides: right whether or not EXIF turned it
    return Photo(image, hashlib.sha256(data).hexdigest(), width, height, scale)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               max_side: int | None = None) -> tuple[np.ndarray, str]:
    """(BGR uint8 image, sha256 of the file bytes); full size unless max_side is given (see read_photo)."""
    photo = read_photo(path, max_pixels, max_side)
    return photo.image, photo.sha256


# A border counts as plain where no pixel differs from the corners' colour by more than this (JPEG
# ringing along a pasted crop's edge stays within it).
PLAIN_BORDER_TOLERANCE = 12


def content_box(image: np.ndarray, tolerance: int = PLAIN_BORDER_TOLERANCE) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the picture without its plain border, when it has one: a face crop another
    system pasted on a grey canvas. The four corners must share one colour (within ``tolerance``);
    the border is every outer row and column within ``tolerance`` of it. The whole picture when there
    is no such border, or nothing but it."""
    h, w = image.shape[:2]
    full = (0, 0, w, h)
    pixels = image.reshape(h, w, -1).astype(np.int16)
    corner = pixels[0, 0]
    corners = pixels[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]]
    if np.abs(corners - corner).max() > tolerance:
        return full
    differs = np.abs(pixels - corner).max(axis=2) > tolerance
    rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if not len(rows):
        return full
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
