"""dlib's 5-point shape predictor (``shape_predictor_5_face_landmarks.dat``) -> compact .npz.

Reads dlib's serialization directly (no dlib needed to convert): version 1, the initial shape
(a column matrix), the forests (per cascade level, a vector of regression trees: split features
idx1/idx2/thresh then leaf value columns), the anchor indices and the pixel deltas. Integers and
floats use dlib's variable-length integer and portable float encodings, decoded by
tools/convert.py's ``DlibReader``.

``--verify`` (needs dlib) compares edgeface.landmarks.LandmarkPredictor with dlib.shape_predictor
on photos, using dlib's HOG face rectangles, and reports landmark error relative to the
inter-ocular distance.

    python tools/convert_landmarks.py [--dat PATH] [--out models/landmarks_5pt.npz]
        [--verify /work/shared/datasets/five-celebs/train /work/shared/datasets/five-celebs/val]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.convert import (ConvertError, DlibFormatError, DlibReader, face_models_dir,  # noqa: E402
                           list_images, load_rgb, sha256_file)

DAT_NAME = "shape_predictor_5_face_landmarks.dat"
DEFAULT_OUT = ROOT / "models" / "landmarks_5pt.npz"


def _matrix(r: DlibReader, what: str) -> np.ndarray:
    # dlib writes -nr, -nc (newer format) or nr, nc (older); values row-major as floats
    nr, nc = abs(r.int(what + " rows")), abs(r.int(what + " cols"))
    return np.array([r.float(what) for _ in range(nr * nc)], dtype=np.float64).reshape(nr, nc)


def parse_shape_predictor(path: Path) -> dict:
    """The predictor as plain arrays; trees of one level must share one depth."""
    data = Path(path).read_bytes()
    r = DlibReader(data, Path(path))
    r.version("shape_predictor", (1,))
    initial = _matrix(r, "initial_shape")
    if initial.shape[1] != 1 or initial.shape[0] % 2:
        raise r.fail(f"initial_shape has shape {initial.shape}, expected (2*parts, 1)")
    n_coords = initial.shape[0]
    levels = []
    for lev in range(r.int("number of cascade levels", signed=False)):
        n_trees = r.int(f"level {lev} tree count", signed=False)
        idx1, idx2, thresh, leaves = [], [], [], []
        for t in range(n_trees):
            n_splits = r.int(f"level {lev} tree {t} split count", signed=False)
            sp = [(r.int("idx1", signed=False), r.int("idx2", signed=False), r.float("thresh"))
                  for _ in range(n_splits)]
            n_leaves = r.int(f"level {lev} tree {t} leaf count", signed=False)
            if n_leaves != n_splits + 1:
                raise r.fail(f"level {lev} tree {t}: {n_leaves} leaves for {n_splits} splits")
            lv = [_matrix(r, "leaf value")[:, 0] for _ in range(n_leaves)]
            if any(v.shape[0] != n_coords for v in lv):
                raise r.fail(f"level {lev} tree {t}: leaf value size differs from the shape's {n_coords}")
            idx1.append([s[0] for s in sp]); idx2.append([s[1] for s in sp]); thresh.append([s[2] for s in sp])
            leaves.append(lv)
        if len({len(s) for s in idx1}) > 1:
            raise r.fail(f"level {lev}: trees of different depths")
        levels.append(dict(idx1=np.array(idx1, np.int32), idx2=np.array(idx2, np.int32),
                           thresh=np.array(thresh, np.float32), leaves=np.array(leaves, np.float32)))
    n_anchor_levels = r.int("anchor_idx level count", signed=False)
    if n_anchor_levels != len(levels):
        raise r.fail(f"{n_anchor_levels} anchor levels for {len(levels)} cascade levels")
    for lev in levels:
        lev["anchor_idx"] = np.array([r.int("anchor index", signed=False)
                                      for _ in range(r.int("anchor count", signed=False))], np.int32)
    if r.int("deltas level count", signed=False) != len(levels):
        raise r.fail("deltas level count differs from the cascade level count")
    for lev in levels:
        n = r.int("delta count", signed=False)
        lev["deltas"] = np.array([(r.float("delta x"), r.float("delta y")) for _ in range(n)], np.float32)
        if n != len(lev["anchor_idx"]):
            raise r.fail(f"{n} deltas for {len(lev['anchor_idx'])} anchors")
        n_feat = n
        for key in ("idx1", "idx2"):
            if lev[key].size and (lev[key].min() < 0 or lev[key].max() >= n_feat):
                raise r.fail(f"split feature index out of range 0..{n_feat - 1}")
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} trailing bytes after the shape predictor")
    return dict(initial_shape=initial[:, 0].astype(np.float32), levels=levels)


def to_npz_arrays(model: dict, leaf_dtype=np.float16) -> dict[str, np.ndarray]:
    out = {"format": np.array(1, np.int32), "initial_shape": model["initial_shape"],
           "n_levels": np.array(len(model["levels"]), np.int32)}
    for i, lev in enumerate(model["levels"]):
        n_feat = len(lev["anchor_idx"])
        idx_dtype = np.uint16 if n_feat <= 65535 else np.int32
        out[f"l{i}_anchor_idx"] = lev["anchor_idx"].astype(np.uint8 if lev["anchor_idx"].max() < 256 else np.int32)
        out[f"l{i}_deltas"] = lev["deltas"].astype(np.float32)
        out[f"l{i}_idx1"] = lev["idx1"].astype(idx_dtype)
        out[f"l{i}_idx2"] = lev["idx2"].astype(idx_dtype)
        out[f"l{i}_thresh"] = lev["thresh"].astype(np.float32)
        out[f"l{i}_leaves"] = lev["leaves"].astype(leaf_dtype)
    return out


def write_npz(arrays: dict, path: Path) -> int:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return len(buf.getvalue())


def verify(npz: Path, dat: Path, folders: list[Path], limit: int | None = None) -> dict:
    """Landmarks of edgeface.landmarks vs dlib.shape_predictor on dlib HOG rects (grey images)."""
    import cv2
    import dlib

    from edgeface.landmarks import LandmarkPredictor

    ours = LandmarkPredictor(npz)
    ref = dlib.shape_predictor(str(dat))
    hog = dlib.get_frontal_face_detector()
    errs, ms = [], []
    images = [p for f in folders for _, p in list_images(f)][:limit]
    for p in images:
        grey = cv2.cvtColor(load_rgb(p), cv2.COLOR_RGB2GRAY)
        for d in hog(grey, 1 if max(grey.shape) < 1200 else 0):
            rect = (d.left(), d.top(), d.right(), d.bottom())
            want = np.array([(q.x, q.y) for q in ref(grey, d).parts()], np.float64)
            t0 = time.perf_counter()
            got = ours.predict(grey, rect)
            ms.append((time.perf_counter() - t0) * 1e3)
            iod = np.linalg.norm((want[0] + want[1]) / 2 - (want[2] + want[3]) / 2)
            # dlib rounds its points to whole pixels; compare with ours rounded the same way
            errs.append(np.linalg.norm(np.floor(got + 0.5) - want, axis=1) / max(iod, 1.0))
    e = np.array(errs)
    return dict(images=len(images), faces=len(e), mean_err_iod=float(e.mean()) if len(e) else float("nan"),
                max_err_iod=float(e.max()) if len(e) else float("nan"),
                exact_faces=int((e.max(1) == 0).sum()) if len(e) else 0,
                ms_per_face_median=float(np.median(ms)) if ms else float("nan"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dat", type=Path, default=None, help=f"dlib {DAT_NAME} (default: face_recognition_models)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--leaf-dtype", choices=("float16", "float32"), default="float16")
    ap.add_argument("--verify", type=Path, nargs="*", default=None, help="photo folders to compare with dlib")
    ap.add_argument("--limit", type=int, default=None, help="at most this many photos for --verify")
    args = ap.parse_args(argv)
    try:
        dat = args.dat or face_models_dir() / DAT_NAME
        if not dat.is_file():
            raise ConvertError(f"{dat}: no such file")
        model = parse_shape_predictor(dat)
        lev = model["levels"]
        print(f"{dat}: {len(model['initial_shape']) // 2} parts, {len(lev)} levels x {len(lev[0]['idx1'])} trees, "
              f"depth {int(np.log2(lev[0]['idx1'].shape[1] + 1))}, {len(lev[0]['anchor_idx'])} features per level")
        size = write_npz(to_npz_arrays(model, np.dtype(args.leaf_dtype)), args.out)
        print(f"wrote {args.out} ({size} bytes; source sha256 {sha256_file(dat)})")
        if args.verify is not None:
            folders = args.verify or [Path("/work/shared/datasets/five-celebs/train"),
                                      Path("/work/shared/datasets/five-celebs/val")]
            for f in folders:
                if not f.is_dir():
                    raise ConvertError(f"{f}: not a folder")
            print(verify(args.out, dat, folders, args.limit))
    except (ConvertError, DlibFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
