"""dlib's binary serialization (dlib/serialize.h, dlib/cuda/tensor.h), read in pure Python.

Shared by the ResNet face descriptor (edgeface.convert.resnet) and the 5-point shape predictor
(edgeface.convert.landmarks); neither needs dlib installed to be read.
"""
from __future__ import annotations

import builtins
import math
from pathlib import Path

import numpy as np

from edgeface.convert.common import ConvertError


class DlibFormatError(ConvertError):
    """The file is not (or not entirely) the dlib object expected; the message names it."""


# The four float multipliers every trainable dlib layer (con_, fc_, bn_) serializes.
MULTIPLIERS = ("learning_rate_multiplier", "weight_decay_multiplier",
               "bias_learning_rate_multiplier", "bias_weight_decay_multiplier")


class DlibReader:
    """Sequential reader for dlib's binary serialization format.

    Integers: one control byte (bit 7 = negative, low 4 bits = byte count n >= 1) followed by
    n little-endian magnitude bytes.  Floats (float_details): an int64 mantissa then an int16
    exponent, both in that integer format; value = mantissa * 2**exponent, with exponents
    32000/32001/32002 meaning +inf/-inf/nan.  Strings: integer length then raw bytes.
    bool: ASCII '1' or '0'.  Tensors (version 2): version, num_samples, k, nr, nc, then the
    values as raw little-endian IEEE float32.
    """

    def __init__(self, data: bytes, path: Path):
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str, at: int | None = None) -> DlibFormatError:
        at = self.pos if at is None else at
        return DlibFormatError(f"{self.path}: {what} (at byte offset {at} of {len(self.data)})")

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.data):
            raise self.fail(f"file is truncated: needed {n} more byte(s) for {what}")

    # The methods int/float/bool shadow the builtins inside this class: annotations say builtins.
    def int(self, what: str = "integer", max_bytes: int = 8, signed: bool = True) -> int:
        start = self.pos
        self._need(1, what)
        ctrl = self.data[self.pos]
        negative = bool(ctrl & 0x80)
        size = ctrl & 0x0F
        if (ctrl & 0x70) or size == 0 or size > max_bytes or (negative and not signed):
            raise self.fail(f"invalid dlib integer control byte 0x{ctrl:02x} while reading {what}", start)
        self.pos += 1
        self._need(size, what)
        value = int.from_bytes(self.data[self.pos:self.pos + size], "little")
        self.pos += size
        return -value if negative else value

    def float(self, what: str = "float") -> float:
        mantissa = self.int(what + " mantissa", 8)
        exponent = self.int(what + " exponent", 2)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def string(self, what: str = "string", max_len: builtins.int = 256) -> str:
        start = self.pos
        n = self.int(what + " length", 8, signed=False)
        if n > max_len:
            raise self.fail(f"implausible {what} length {n}", start)
        self._need(n, what)
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not ASCII: {raw[:32]!r}", start) from None

    def bool(self, what: str = "bool") -> builtins.bool:
        self._need(1, what)
        ch = self.data[self.pos]
        if ch not in (ord("0"), ord("1")):
            raise self.fail(f"invalid bool byte 0x{ch:02x} while reading {what}")
        self.pos += 1
        return ch == ord("1")

    def version(self, what: str, allowed: tuple[builtins.int, ...]) -> builtins.int:
        start = self.pos
        v = self.int(what + " version", 4)
        if v not in allowed:
            raise self.fail(f"unexpected {what} version {v} (expected {' or '.join(map(str, allowed))})", start)
        return v

    def tensor(self, what: str = "tensor") -> np.ndarray:
        start = self.pos
        v = self.int(what + " version", 4)
        if v != 2:
            raise self.fail(f"unexpected tensor version {v} for {what} (dlib writes 2)", start)
        dims = [self.int(what + " dimension", 8) for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative dimension {dims} for {what}", start)
        count = int(np.prod(dims, dtype=np.int64))
        self._need(4 * count, f"{what} data ({count} floats, shape {dims})")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return arr.reshape(dims)

    def alias_tensor(self, what: str = "alias_tensor") -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        self.version(what, (1,))
        d0, d1, d2, d3 = (self.int(what + " dimension", 8) for _ in range(4))
        return d0, d1, d2, d3

    def multipliers(self) -> None:
        """Skip a trainable layer's learning-rate and weight-decay multipliers."""
        for name in MULTIPLIERS:
            self.float(name)

    def matrix(self, what: str) -> np.ndarray:
        """A dlib::matrix of floats: -nr, -nc (newer format) or nr, nc (older), then row-major values."""
        nr, nc = abs(self.int(what + " rows")), abs(self.int(what + " cols"))
        return np.array([self.float(what) for _ in range(nr * nc)], dtype=np.float64).reshape(nr, nc)

    def check_end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} unexpected trailing bytes after the {what}")


def _sniff(data: bytes) -> str | None:
    """What a file that is not a dlib object looks like, for the error message."""
    if data[:3] == b"\xff\xd8\xff":
        return "a JPEG image"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "a PNG image"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive"
    if data[:3] == b"BZh":
        return "a bzip2 archive (decompress the .dat.bz2 first)"
    if data[:2] == b"\x1f\x8b":
        return "a gzip archive"
    if data[:4] == b"TFL3" or data[4:8] == b"TFL3":
        return "a TFLite model"
    return None


def open_dlib_file(path: Path, what: str) -> DlibReader:
    """A reader over the whole file; unreadable, empty or obviously foreign files are named."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read: {e.strerror or e}") from None
    if not data:
        raise DlibFormatError(f"{path}: file is empty")
    kind = _sniff(data)
    if kind:
        raise DlibFormatError(f"{path}: not {what}, it looks like {kind}")
    return DlibReader(data, path)
