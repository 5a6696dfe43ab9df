"""dlib's 5-point shape predictor (``shape_predictor_5_face_landmarks.dat``) -> compact .npz.

Reads dlib's serialization directly (no dlib needed to convert): version 1, the initial shape
(a column matrix), the forests (per cascade level, a vector of regression trees: split features
idx1/idx2/thresh then leaf value columns), the anchor indices and the pixel deltas. Integers and
floats use dlib's variable-length integer and portable float encodings, decoded by
tools/convert.py's ``DlibReader``.

``--verify`` (needs dlib) compares edgeface.landmarks.LandmarkPredictor with dlib.shape_predictor
on photos, using dlib's HOG face rectangles, and reports landmark error relative to the
inter-ocular distance. ``--fit-rect`` measures the Haar box -> dlib HOG rect mapping that
edgeface.landmarks uses (RECT_SCALE, RECT_DX, RECT_DY). ``--evaluate`` compares chips (dlib's,
HOG rect + ours, Haar + landmarks, Haar box only) through the shipped int8 embedder. The photo
folders default to five-celebs train and val.

    python tools/convert_landmarks.py [--dat PATH] [--out models/landmarks_5pt.npz]
        [--leaf-dtype int16|float16|float32] [--verify [DIR ...]] [--fit-rect] [--evaluate]
"""

from __future__ import annotations

import argparse
import io
import math
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


def to_npz_arrays(model: dict, leaf_dtype: str = "int16") -> dict[str, np.ndarray]:
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


DEFAULT_FOLDERS = [Path("/work/shared/datasets/five-celebs/train"), Path("/work/shared/datasets/five-celebs/val")]


def _hog_rects(hog, rgb):
    # upsample small photos once, as tools/convert.py does when it cuts dlib chips
    return list(hog(rgb, 1 if max(rgb.shape[:2]) < 1200 else 0))


def _matched(dets, rect, dlib_side):
    """The Haar detection whose centre is nearest the dlib rect's centre, if within half a side."""
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    best = min(dets, key=lambda d: math.hypot(d.cx - cx, d.cy - cy), default=None)
    if best is None or math.hypot(best.cx - cx, best.cy - cy) > 0.5 * dlib_side:
        return None
    return best


def fit_rect(folders: list[Path]) -> dict:
    """dlib HOG rect relative to the matching Haar detection, in the Haar face's upright frame:
    medians of side / Haar size and centre offset / Haar size over five-celebs photos."""
    import cv2
    import dlib

    from edgeface.detect import HaarDetector

    from edgeface.landmarks import Aligner

    hog, haar = dlib.get_frontal_face_detector(), HaarDetector()
    sp, aligner = dlib.shape_predictor(str(face_models_dir() / DAT_NAME)), Aligner()
    scale, dx, dy, lm_err = [], [], [], []
    for _, p in [x for f in folders for x in list_images(f)]:
        rgb = load_rgb(p)
        dets = haar.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        for r in _hog_rects(hog, rgb):
            side = r.right() - r.left() + 1
            d = _matched(dets, r, side)
            if d is None:
                continue
            off = np.array(((r.left() + r.right()) / 2 - d.cx, (r.top() + r.bottom()) / 2 - d.cy))
            a = math.radians(d.angle)
            up = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ off  # frame -> upright
            scale.append(side / d.size); dx.append(up[0] / d.size); dy.append(up[1] / d.size)
            # how far Haar + align's landmarks land from dlib's on its own rect (shipped constants)
            want = np.array([(q.x, q.y) for q in sp(rgb, r).parts()], np.float64)
            got = aligner.landmarks(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), d)
            iod = np.linalg.norm(want[:2].mean(0) - want[2:4].mean(0))
            lm_err.append(np.linalg.norm(got - want, axis=1).mean() / max(iod, 1.0))
    q = lambda v: [round(float(x), 4) for x in np.percentile(v, (25, 50, 75))]  # noqa: E731
    return dict(pairs=len(scale), scale_q25_50_75=q(scale), dx_q25_50_75=q(dx), dy_q25_50_75=q(dy),
                haar_landmark_err_iod_mean=round(float(np.mean(lm_err)), 4),
                haar_landmark_err_iod_q50_90=[round(float(x), 4) for x in np.percentile(lm_err, (50, 90))])


def evaluate(folders: list[Path], npz: Path, dat: Path) -> str:
    """Embedding cosine and verification of four chip kinds on the largest face per photo:
    dlib (HOG + dlib landmarks + get_face_chip), HOG rect + our landmarks + chip_transform,
    Haar + align_chips, Haar + cut_chips (box only)."""
    import cv2
    import dlib

    from edgeface.chip import cut_chips
    from edgeface.detect import HaarDetector, largest
    from edgeface.embed import Embedder
    from edgeface.landmarks import Aligner, LandmarkPredictor, _grey, cut_aligned
    from tools.convert import choose_threshold, cosines, pair_scores, verification_accuracy

    hog, sp, haar = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dat)), HaarDetector()
    aligner = Aligner(LandmarkPredictor(npz))
    kinds = ("dlib", "hog+ours", "haar+landmarks", "haar box only")
    chips: dict[str, dict[str, np.ndarray]] = {k: {} for k in kinds}
    labels: dict[str, str] = {}
    ms = []
    for lab, p in [x for f in folders for x in list_images(f)]:
        rgb = load_rgb(p)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        key = str(p)
        labels[key] = lab
        rects = _hog_rects(hog, rgb)
        if rects:
            r = max(rects, key=lambda d: d.area())
            chips["dlib"][key] = np.asarray(dlib.get_face_chip(rgb, sp(rgb, r), size=150, padding=0.25))
            pts = aligner.predictor.predict(_grey(rgb), (r.left(), r.top(), r.right(), r.bottom()))
            out = np.empty((150, 150, 3), np.uint8)
            cut_aligned(rgb, pts, (150, 150), 0.25, out)
            chips["hog+ours"][key] = out
        det = largest(haar.detect(bgr))
        if det is not None:
            t0 = time.perf_counter()
            chips["haar+landmarks"][key] = aligner.chips(bgr, [det])[0]
            ms.append((time.perf_counter() - t0) * 1e3)
            chips["haar box only"][key] = cut_chips(bgr, [det])[0]
    emb = Embedder()
    vecs = {k: dict(zip(v, emb.embed(np.stack(list(v.values()))))) if v else {} for k, v in chips.items()}
    thr = emb.spec.threshold
    common = sorted(set.intersection(*(set(v) for v in vecs.values())))
    rows = [f"photos {len(labels)}; faces: " + ", ".join(f"{k} {len(v)}" for k, v in vecs.items())
            + f"; in all four: {len(common)}",
            f"cost per face, Haar detection -> aligned chip (landmarks + cut): median {np.median(ms):.1f} ms, "
            f"p90 {np.percentile(ms, 90):.1f} ms",
            f"{'chips':16} {'cos vs dlib chip':>22} {'bal.acc @' + format(thr, '.3f'):>14} {'(all its faces)':>16} "
            f"{'best-thr bal.acc':>17}"]
    for k in kinds:
        if not vecs[k]:
            continue
        e_common = np.stack([vecs[k][x] for x in common])
        cos = cosines(e_common, np.stack([vecs["dlib"][x] for x in common]))
        sim, same = pair_scores(e_common, [labels[x] for x in common])
        acc = verification_accuracy(sim, same, thr)["balanced_accuracy"]
        best = verification_accuracy(sim, same, choose_threshold(sim, same)[0])["balanced_accuracy"]
        own = list(vecs[k])
        sim2, same2 = pair_scores(np.stack([vecs[k][x] for x in own]), [labels[x] for x in own])
        acc_all = verification_accuracy(sim2, same2, thr)["balanced_accuracy"]
        rows.append(f"{k:16} {cos.mean():>10.4f} / {cos.min():.4f} {acc:>13.2f}% {acc_all:>15.2f}% {best:>16.2f}%")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        dat = args.dat or face_models_dir() / DAT_NAME
        if not dat.is_file():
            raise ConvertError(f"{dat}: no such file")
        model = parse_shape_predictor(dat)
        lev = model["levels"]
        print(f"{dat}: {len(model['initial_shape']) // 2} parts, {len(lev)} levels x {len(lev[0]['idx1'])} trees, "
              f"depth {int(np.log2(lev[0]['idx1'].shape[1] + 1))}, {len(lev[0]['anchor_idx'])} features per level")
        size = write_npz(to_npz_arrays(model, args.leaf_dtype), args.out)
        print(f"wrote {args.out} ({size} bytes; source sha256 {sha256_file(dat)})")
        folders = args.verify or DEFAULT_FOLDERS
        for f in folders:
            if not f.is_dir():
                raise ConvertError(f"{f}: not a folder")
        if args.verify is not None:
            print(verify(args.out, dat, folders, args.limit))
        if args.fit_rect:
            print(fit_rect(folders))
        if args.evaluate:
            print(evaluate(folders, args.out, dat))
    except (ConvertError, DlibFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
