"""What every conversion step shares: the user-facing error, progress logging, default paths."""
from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# The converter runs from a source checkout (pip install -e ".[convert]"): models/ and the
# five-celebs photos beside the repository are its defaults.
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = REPO_ROOT / "models"
DEFAULT_CALIB_DIR = REPO_ROOT.parent / "shared" / "datasets" / "five-celebs" / "train"
CHIP_PADDING = 0.25


class ConvertError(Exception):
    """A problem the user can fix (bad file, missing folder, ...); printed without traceback."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; models are shipped files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> int:
    """``arrays`` compressed into ``path`` (atomically); returns the bytes written."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    atomic_write(path, buf.getvalue())
    return len(buf.getvalue())
