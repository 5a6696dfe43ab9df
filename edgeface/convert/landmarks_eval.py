"""How the converted 5-point predictor compares with dlib's (tools/convert_landmarks.py --verify,
--fit-rect, --evaluate). Needs dlib (the `convert` extra), imported inside each function."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.convert.chips import import_dlib, list_images, load_rgb
from edgeface.convert.fidelity import (
    choose_threshold,
    cosines,
    pair_scores,
    verification_accuracy,
)

CHIP_KINDS = ("dlib", "hog+ours", "haar+landmarks", "haar box only")


def _hog_rects(hog: Any, rgb: np.ndarray) -> list[Any]:
    # upsample small photos once, as the ResNet conversion does when it cuts dlib chips
    return list(hog(rgb, 1 if max(rgb.shape[:2]) < 1200 else 0))


def verify(npz: Path, dat: Path, folders: list[Path], limit: int | None = None) -> dict[str, Any]:
    """Landmarks of edgeface.vision.landmarks vs dlib.shape_predictor on dlib HOG rects (grey images)."""
    from edgeface.vision.landmarks import LandmarkPredictor

    dlib = import_dlib()
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
    return {"images": len(images), "faces": len(e), "mean_err_iod": float(e.mean()) if len(e) else float("nan"),
            "max_err_iod": float(e.max()) if len(e) else float("nan"),
            "exact_faces": int((e.max(1) == 0).sum()) if len(e) else 0,
            "ms_per_face_median": float(np.median(ms)) if ms else float("nan")}


def _matched(dets: list[Any], rect: Any, dlib_side: float) -> Any:
    """The Haar detection whose centre is nearest the dlib rect's centre, if within half a side."""
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    best = min(dets, key=lambda d: math.hypot(d.cx - cx, d.cy - cy), default=None)
    if best is None or math.hypot(best.cx - cx, best.cy - cy) > 0.5 * dlib_side:
        return None
    return best


def _quartiles(v: list[float]) -> list[float]:
    return [round(float(x), 4) for x in np.percentile(v, (25, 50, 75))]


def fit_rect(folders: list[Path], dat: Path) -> dict[str, Any]:
    """dlib HOG rect relative to the matching Haar detection, in the Haar face's upright frame:
    medians of side / Haar size and centre offset / Haar size over five-celebs photos."""
    from edgeface.vision.detect import HaarDetector
    from edgeface.vision.landmarks import Aligner

    dlib = import_dlib()
    hog, haar = dlib.get_frontal_face_detector(), HaarDetector()
    sp, aligner = dlib.shape_predictor(str(dat)), Aligner()
    scale, dx, dy, lm_err = [], [], [], []
    for _, p in [x for f in folders for x in list_images(f)]:
        rgb = load_rgb(p)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        dets = haar.detect(bgr)
        for r in _hog_rects(hog, rgb):
            side = r.right() - r.left() + 1
            d = _matched(dets, r, side)
            if d is None:
                continue
            off = np.array(((r.left() + r.right()) / 2 - d.cx, (r.top() + r.bottom()) / 2 - d.cy))
            a = math.radians(d.angle)
            up = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ off  # frame -> upright
            scale.append(side / d.size)
            dx.append(up[0] / d.size)
            dy.append(up[1] / d.size)
            # how far Haar + align's landmarks land from dlib's on its own rect (shipped constants)
            want = np.array([(q.x, q.y) for q in sp(rgb, r).parts()], np.float64)
            got = aligner.landmarks(bgr, d)
            iod = np.linalg.norm(want[:2].mean(0) - want[2:4].mean(0))
            lm_err.append(np.linalg.norm(got - want, axis=1).mean() / max(iod, 1.0))
    return {"pairs": len(scale), "scale_q25_50_75": _quartiles(scale), "dx_q25_50_75": _quartiles(dx),
            "dy_q25_50_75": _quartiles(dy), "haar_landmark_err_iod_mean": round(float(np.mean(lm_err)), 4),
            "haar_landmark_err_iod_q50_90": [round(float(x), 4) for x in np.percentile(lm_err, (50, 90))]}


def _chips_of_four_kinds(folders: list[Path], npz: Path,
                         dat: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str], list[float]]:
    """Largest face per photo cut four ways (CHIP_KINDS): ({kind: {photo: chip}}, {photo: label},
    ms per Haar-aligned chip)."""
    from edgeface.vision.chip import cut, cut_chips
    from edgeface.vision.detect import HaarDetector, largest
    from edgeface.vision.landmarks import Aligner, LandmarkPredictor, _grey, chip_to_image

    dlib = import_dlib()
    hog, sp, haar = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dat)), HaarDetector()
    aligner = Aligner(LandmarkPredictor(npz))
    chips: dict[str, dict[str, np.ndarray]] = {k: {} for k in CHIP_KINDS}
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
            cut(rgb, chip_to_image(pts, 150, 0.25), (150, 150), out)
            chips["hog+ours"][key] = out
        det = largest(haar.detect(bgr))
        if det is not None:
            t0 = time.perf_counter()
            chips["haar+landmarks"][key] = aligner.chips(bgr, [det])[0]
            ms.append((time.perf_counter() - t0) * 1e3)
            chips["haar box only"][key] = cut_chips(bgr, [det])[0]
    return chips, labels, ms


def evaluate(folders: list[Path], npz: Path, dat: Path) -> str:
    """Embedding cosine and verification of four chip kinds on the largest face per photo:
    dlib (HOG + dlib landmarks + get_face_chip), HOG rect + our landmarks + chip_transform,
    Haar + Aligner (landmarks), Haar + cut_chips (box only)."""
    from edgeface.recognition.embed import Embedder

    chips, labels, ms = _chips_of_four_kinds(folders, npz, dat)
    emb = Embedder()
    vecs = {k: dict(zip(v, emb.embed(np.stack(list(v.values()))))) if v else {} for k, v in chips.items()}
    thr = emb.spec.threshold
    common = sorted(set.intersection(*(set(v) for v in vecs.values())))
    rows = [f"photos {len(labels)}; faces: " + ", ".join(f"{k} {len(v)}" for k, v in vecs.items())
            + f"; in all four: {len(common)}",
            (f"cost per face, Haar detection -> aligned chip (landmarks + cut): median {np.median(ms):.1f} ms, "
            f"p90 {np.percentile(ms, 90):.1f} ms"),
            (f"{'chips':16} {'cos vs dlib chip':>22} {'bal.acc @' + format(thr, '.3f'):>14} {'(all its faces)':>16} "
            f"{'best-thr bal.acc':>17}")]
    for k in CHIP_KINDS:
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
