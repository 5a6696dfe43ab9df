"""dlib's HOG frontal face detector -> models/hog_frontal.npz (five 10x10x31 filters, their thresholds).

The detector is compiled into dlib (``dlib.get_frontal_face_detector()``, Boost Software License), so
this needs dlib (the convert extra): it saves the detector in dlib's serialization and reads that back
with edgeface.convert.dlib_format (object_detector version 2: a scan_fhog_pyramid, the box-overlap
test, then one weight vector per filter, 31 planes of 10x10 cells and the threshold last).
``--verify`` compares edgeface.vision.hog.HogFaceScore with dlib's own confidences on face photos.

    python tools/convert_hog.py [--out models/hog_frontal.npz] [--verify [DIR ...]]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeface.convert.common import DEFAULT_CALIB_DIR, REPO_ROOT, ConvertError, write_npz
from edgeface.convert.dlib_format import DlibReader

DEFAULT_OUT = REPO_ROOT / "models" / "hog_frontal.npz"


def parse_detector(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(filters (n, 10, 10, 31) as rows, cols, planes; thresholds (n,)) of a serialised
    object_detector<scan_fhog_pyramid<pyramid_down<6>>>."""
    r = DlibReader(data, path)
    r.version("object_detector", (2,))
    r.version("scan_fhog_pyramid", (1,))
    r.int("feature pyramid max size"), r.int("feature pyramid size")
    cell, padding = r.int("cell size"), r.int("padding")
    width, height = r.int("window width"), r.int("window height")
    if (cell, padding, width, height) != (8, 0, 80, 80):
        raise r.fail(f"expected 8-pixel cells, no padding and an 80x80 window, not {cell}, {padding}, {width}x{height}")
    for what in ("max pyramid levels", "min layer width", "min layer height"):
        r.int(what)
    r.float("nuclear norm strength")
    dims = r.int("dimensions")
    if dims != 10 * 10 * 31:
        raise r.fail(f"expected 3100 dimensions (10x10 cells x 31 planes), not {dims}")
    r.float("overlap match threshold"), r.float("overlap threshold")
    filters, thresholds = [], []
    for i in range(r.int("detector count", signed=False)):
        w = r.matrix(f"detector {i} weights")[:, 0]
        if w.size != dims + 1:
            raise r.fail(f"detector {i}: {w.size} weights, expected {dims + 1}")
        filters.append(w[:dims].reshape(31, 10, 10).transpose(1, 2, 0))
        thresholds.append(w[dims])
    r.check_end("detector")
    return np.asarray(filters, np.float32), np.asarray(thresholds, np.float32)


def frontal_detector_bytes() -> bytes:
    try:
        import dlib
    except ImportError as e:
        raise ConvertError("dlib is not installed: pip install -e '.[convert]'") from e
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frontal.svm"
        dlib.get_frontal_face_detector().save(str(path))
        return path.read_bytes()


def verify(npz: Path, folders: list[Path], limit: int) -> str:
    """HogFaceScore and dlib's confidence for the largest face dlib finds in each photo (its rect
    as the face box): how often both call it a face, and how close the scores are."""
    import cv2
    import dlib

    from edgeface.vision.hog import HogFaceScore

    ours, detector = HogFaceScore(npz), dlib.get_frontal_face_detector()
    pairs = []
    for f in sorted(p for d in folders for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]:
        grey = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        rects, scores, _ = detector.run(grey, 0, 0.0)
        if not len(rects):
            continue
        k = int(np.argmax([r.width() for r in rects]))
        r = rects[k]
        cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
        pairs.append((scores[k], ours(grey, cx, cy, 1.25 * r.width(), 0.0)))  # a Haar box is ~1.25 x dlib's rect
    if not pairs:
        return "verify: dlib found no face in the photos"
    a = np.array(pairs)
    return (f"verify: {len(a)} faces dlib finds; ours scores {np.mean(a[:, 1] > -0.5):.3f} of them above -0.5, "
            f"{np.mean(a[:, 1] > 0):.3f} above 0; median {np.median(a[:, 1]):.2f} (dlib {np.median(a[:, 0]):.2f}), "
            f"correlation {np.corrcoef(a[:, 0], a[:, 1])[0, 1]:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/convert_hog.py", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--verify", type=Path, nargs="*", default=None,
                    help="photo folders to compare with dlib (default five-celebs train)")
    ap.add_argument("--limit", type=int, default=200, help="at most this many photos for --verify")
    args = ap.parse_args(argv)
    try:
        data = frontal_detector_bytes()
        filters, thresholds = parse_detector(data, Path("dlib.get_frontal_face_detector()"))
        size = write_npz({"filters": filters, "thresholds": thresholds}, args.out)
        print(f"wrote {args.out} ({size} bytes: {len(filters)} filters {filters.shape[1:]})")
        if args.verify is not None:
            print(verify(args.out, args.verify or [DEFAULT_CALIB_DIR], args.limit))
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
