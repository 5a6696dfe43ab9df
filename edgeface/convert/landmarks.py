"""dlib's 5-point shape predictor (``shape_predictor_5_face_landmarks.dat``) -> compact .npz.

Reads dlib's serialization directly (no dlib needed to convert): version 1, the initial shape
(a column matrix), the forests (per cascade level, a vector of regression trees: split features
idx1/idx2/thresh then leaf value columns), the anchor indices and the pixel deltas. Integers and
floats use dlib's variable-length integer and portable float encodings, decoded by
edgeface.convert.dlib_format's ``DlibReader``.

``--verify`` (needs dlib) compares edgeface.vision.landmarks.LandmarkPredictor with dlib.shape_predictor
on photos, using dlib's HOG face rectangles, and reports landmark error relative to the
inter-ocular distance. ``--fit-rect`` measures the Haar box -> dlib HOG rect mapping that
edgeface.vision.landmarks uses (RECT_SCALE, RECT_DX, RECT_DY). ``--evaluate`` compares chips (dlib's,
HOG rect + ours, Haar + landmarks, Haar box only) through the shipped int8 embedder. The photo
folders default to five-celebs train and val.

    python tools/convert_landmarks.py [--dat PATH] [--out models/landmarks_5pt.npz]
        [--leaf-dtype int16|float16|float32] [--verify [DIR ...]] [--fit-rect] [--evaluate]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.convert.common import (
    DEFAULT_CALIB_DIR,
    REPO_ROOT,
    ConvertError,
    write_npz,
)
from edgeface.convert.dlib_format import DlibReader, open_dlib_file
from edgeface.recognition.embed import file_sha256

DAT_NAME = "shape_predictor_5_face_landmarks.dat"
DEFAULT_OUT = REPO_ROOT / "models" / "landmarks_5pt.npz"
DEFAULT_FOLDERS = [DEFAULT_CALIB_DIR, DEFAULT_CALIB_DIR.parent / "val"]


def _read_tree(r: DlibReader, lev: int, t: int, n_coords: int) -> tuple[list[tuple[int, int, float]],
                                                                           list[np.ndarray]]:
    """One regression tree: its splits (idx1, idx2, thresh) and leaf values."""
    n_splits = r.int(f"level {lev} tree {t} split count", signed=False)
    splits = [(r.int("idx1", signed=False), r.int("idx2", signed=False), r.float("thresh"))
              for _ in range(n_splits)]
    n_leaves = r.int(f"level {lev} tree {t} leaf count", signed=False)
    if n_leaves != n_splits + 1:
        raise r.fail(f"level {lev} tree {t}: {n_leaves} leaves for {n_splits} splits")
    leaves = [r.matrix("leaf value")[:, 0] for _ in range(n_leaves)]
    if any(v.shape[0] != n_coords for v in leaves):
        raise r.fail(f"level {lev} tree {t}: leaf value size differs from the shape's {n_coords}")
    return splits, leaves


def _read_level(r: DlibReader, lev: int, n_coords: int) -> dict[str, np.ndarray]:
    trees = [_read_tree(r, lev, t, n_coords) for t in range(r.int(f"level {lev} tree count", signed=False))]
    if len({len(splits) for splits, _ in trees}) > 1:
        raise r.fail(f"level {lev}: trees of different depths")
    return {"idx1": np.array([[s[0] for s in sp] for sp, _ in trees], np.int32),
            "idx2": np.array([[s[1] for s in sp] for sp, _ in trees], np.int32),
            "thresh": np.array([[s[2] for s in sp] for sp, _ in trees], np.float32),
            "leaves": np.array([lv for _, lv in trees], np.float32)}


def _read_features(r: DlibReader, levels: list[dict[str, np.ndarray]]) -> None:
    """Per level: the anchor landmark and pixel offset of each sampled feature."""
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
        for key in ("idx1", "idx2"):
            if lev[key].size and (lev[key].min() < 0 or lev[key].max() >= n):
                raise r.fail(f"split feature index out of range 0..{n - 1}")


def parse_shape_predictor(path: Path) -> dict[str, Any]:
    """The predictor as plain arrays; trees of one level must share one depth."""
    r = open_dlib_file(Path(path), "a dlib shape predictor")
    r.version("shape_predictor", (1,))
    initial = r.matrix("initial_shape")
    if initial.shape[1] != 1 or initial.shape[0] % 2:
        raise r.fail(f"initial_shape has shape {initial.shape}, expected (2*parts, 1)")
    n_levels = r.int("number of cascade levels", signed=False)
    levels = [_read_level(r, lev, initial.shape[0]) for lev in range(n_levels)]
    _read_features(r, levels)
    r.check_end("shape predictor")
    return {"initial_shape": initial[:, 0].astype(np.float32), "levels": levels}


def to_npz_arrays(model: dict[str, Any], leaf_dtype: str = "int16") -> dict[str, np.ndarray]:
    """Arrays for the .npz. Leaves: "int16" = per level and coordinate scaled integers
    (l{i}_leaves * l{i}_leaf_scale; ~10x smaller worst error than float16 at the same size),
    or "float16" / "float32" as is."""
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
        leaves = lev["leaves"]
        if leaf_dtype == "int16":
            scale = np.maximum(np.abs(leaves).max(axis=(0, 1)), 1e-30).astype(np.float32) / 32767
            out[f"l{i}_leaves"] = np.round(leaves / scale).astype(np.int16)
            out[f"l{i}_leaf_scale"] = scale
        else:
            out[f"l{i}_leaves"] = leaves.astype(leaf_dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/convert_landmarks.py", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--dat", type=Path, default=None, help=f"dlib {DAT_NAME} (default: face_recognition_models)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--leaf-dtype", choices=("int16", "float16", "float32"), default="int16")
    ap.add_argument("--verify", type=Path, nargs="*", default=None, help="photo folders to compare with dlib")
    ap.add_argument("--limit", type=int, default=None, help="at most this many photos for --verify")
    ap.add_argument("--fit-rect", action="store_true",
                    help="fit the Haar box -> dlib HOG rect mapping on the --verify folders (default five-celebs)")
    ap.add_argument("--evaluate", action="store_true",
                    help="embedding cosine and verification of dlib / HOG+ours / Haar+landmarks / Haar-only chips")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from edgeface.convert.chips import face_models_dir

    dat = args.dat or face_models_dir() / DAT_NAME
    if not dat.is_file():
        raise ConvertError(f"{dat}: no such file")
    model = parse_shape_predictor(dat)
    lev = model["levels"]
    print(f"{dat}: {len(model['initial_shape']) // 2} parts, {len(lev)} levels x {len(lev[0]['idx1'])} trees, "
          f"depth {int(np.log2(lev[0]['idx1'].shape[1] + 1))}, {len(lev[0]['anchor_idx'])} features per level")
    size = write_npz(to_npz_arrays(model, args.leaf_dtype), args.out)
    print(f"wrote {args.out} ({size} bytes; source sha256 {file_sha256(dat)})")
    folders = args.verify or DEFAULT_FOLDERS
    for f in folders:
        if not f.is_dir():
            raise ConvertError(f"{f}: not a folder")
    if args.verify is not None or args.fit_rect or args.evaluate:
        from edgeface.convert import landmarks_eval as ev
        if args.verify is not None:
            print(ev.verify(args.out, dat, folders, args.limit))
        if args.fit_rect:
            print(ev.fit_rect(folders, dat))
        if args.evaluate:
            print(ev.evaluate(folders, args.out, dat))
    return 0
