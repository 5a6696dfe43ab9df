#!/usr/bin/env python3
"""Measurements behind edgeface's detection and chip constants (dlib is used here only,
never by the runtime).

  framing   fit the Haar box -> dlib chip placement (scale, centre offset) on five-celebs
  accuracy  enrol train (largest face per photo), identify val turned -60..+60 (as the
            acceptance script turns them), per angle: accuracy, recall, detection ms;
            embeddings from dlib's ResNet on edgeface chips
  recall    detection only: own face found at rolls -60..+60 in 5 degree steps, angle error
  cost      detection ms per 640x480 frame for a grid

usage:
  python tools/measure_detect.py framing [--dataset DIR]
  python tools/measure_detect.py accuracy [--grid -60,-40,...] [--max-width N] [--min-neighbors N] ...
  python tools/measure_detect.py cost [--grid ...]
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import time

import cv2
import numpy as np

from edgeface.config import DetectionConfig
from edgeface.vision import chip as chipmod
from edgeface.vision import geometry
from edgeface.vision.detect import HaarDetector

DATASET = os.environ.get("EDGEFACE_DATASET",
                         os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "five-celebs"))
ACCEPT_ANGLES = [-60, -45, -30, -15, 0, 15, 30, 45, 60]


def dlib_models():
    import dlib
    import face_recognition_models as frm

    base = os.path.join(frm.__path__[0], "models")
    return (dlib, dlib.get_frontal_face_detector(),
            dlib.shape_predictor(os.path.join(base, "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(os.path.join(base, "dlib_face_recognition_resnet_model_v1.dat")))


def photos(split: str) -> list[tuple[str, str]]:
    out = []
    for p in sorted(glob.glob(os.path.join(DATASET, split, "*", "*"))):
        out.append((p, p.split(os.sep)[-2]))
    if not out:
        sys.exit(f"no photos under {os.path.join(DATASET, split)} (set EDGEFACE_DATASET)")
    return out


def rotate(img, deg):
    """The acceptance script's turned picture (geometry.turn_image) and the matrix that made it."""
    return geometry.turn_image(img, deg), geometry.rotate_grown(img.shape[1], img.shape[0], deg)[0]


def dlib_chip_geometry(dlib, cd):
    """dlib chip_details -> (cx, cy, side, angle in edgeface's convention)."""
    r = cd.rect
    return ((r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0, r.right() - r.left(), -math.degrees(cd.angle))


def make_config(a) -> DetectionConfig:
    cfg = DetectionConfig()
    if a.grid:
        cfg.angles = [float(x) for x in a.grid.split(",")]
    if getattr(a, "region_angles", None):
        cfg.region_angles = [float(x) for x in a.region_angles.split(",")]
    if a.eyes is not None:
        cfg.eyes = [x for x in a.eyes.split(",") if x]
    for key in ("scale_factor", "min_neighbors", "min_size", "max_width", "cascade", "min_score", "merge_distance",
                "min_eyes", "verify_min_neighbors", "verify_cascade", "threads"):
        v = getattr(a, key, None)
        if v is not None:
            setattr(cfg, key, v)
    return cfg


# ---------------------------------------------------------------------------------------
def cmd_framing(a):
    dlib, hog, sp, _ = dlib_models()
    det = HaarDetector(make_config(a))
    rows = []
    for path, _ in photos("train") + photos("val"):
        bgr = cv2.imread(path)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        haar = det.detect(bgr)
        for r in hog(rgb, 1):
            cx, cy, side, ang = dlib_chip_geometry(dlib, dlib.get_face_chip_details(sp(rgb, r), 150, 0.25))
            near = [d for d in haar if math.hypot(d.cx - cx, d.cy - cy) < 0.5 * d.size]
            if not near:
                continue
            d = max(near, key=lambda d: d.score)
            # offset of the dlib chip centre in the Haar face's upright frame, per box size
            off = geometry.rotation_matrix(-d.angle) @ (cx - d.cx, cy - d.cy) / d.size
            rows.append((side / d.size, off[0], off[1], ang - d.angle, d.angle, ang))
    r = np.array(rows)
    print(f"{len(r)} faces matched (dlib HOG + 5 landmarks vs Haar)")
    for name, col in (("scale", 0), ("dx", 1), ("dy", 2), ("angle err", 3)):
        v = r[:, col]
        print(f"{name:10s} median {np.median(v):+.4f}  mean {v.mean():+.4f}  sd {v.std():.4f}  "
              f"p10 {np.percentile(v, 10):+.4f}  p90 {np.percentile(v, 90):+.4f}")
    print(f"|angle err| mean {np.abs(r[:, 3]).mean():.2f} deg")


# ---------------------------------------------------------------------------------------
class Embedder:
    """dlib ResNet on edgeface chips (stand-in for the TFLite model during measurement)."""

    def __init__(self):
        self.dlib, _, _, self.net = dlib_models()

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, 128), np.float32)
        v = np.array(self.net.compute_face_descriptor(list(chips)), dtype=np.float32)
        return v


def cmd_accuracy(a):
    if a.load:
        import pickle

        with open(a.load, "rb") as f:
            sweep(a, pickle.load(f))
        return
    cfg = make_config(a)
    det = HaarDetector(cfg)
    emb = Embedder()
    dlib, hog, sp, _ = dlib_models()
    gal_v, gal_n = [], []
    missing = 0
    for path, person in photos("train"):
        img = cv2.imread(path)
        ds = [d for d in det.detect(img) if a.enrol_min_score is None or d.score >= a.enrol_min_score]
        if not ds:
            missing += 1
            continue
        big = max(ds, key=lambda d: d.size)
        gal_v.append(emb(chipmod.cut_chips(img, [big]))[0])
        gal_n.append(person)
    gal_v = np.array(gal_v)
    print(f"enrolled {len(gal_v)} photos ({missing} without a face); grid {cfg.angles} "
          f"sf {cfg.scale_factor} mn {cfg.min_neighbors} min_size {cfg.min_size} max_width {cfg.max_width} "
          f"min_score {cfg.min_score} cascade {cfg.cascade}")
    angles = [int(x) for x in a.angles.split(",")]
    stats = {ang: dict(n=0, ok=0, found=0, ms=0.0, extra=0, named_wrong=0) for ang in angles}
    true_scores, false_scores, records = [], [], []
    for path, person in photos("val"):
        img = cv2.imread(path)
        # the photo's own face (for recall): dlib HOG on the upright photo, largest face
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        truth = max(hog(rgb, 1), key=lambda r: r.area(), default=None)
        for ang in angles:
            rot, m = rotate(img, ang)
            t = time.perf_counter()
            prep = det.prepare(rot)
            cands = det.candidates(prep, det.scan_all(prep, det.sweep()))
            dt = time.perf_counter() - t
            # every merged face (as at min_score 0) with its eyes, for the sweep below
            all_ds = [c.detection for c in cands]
            eyes = [c.eyes for c in cands]
            second = [c.second for c in cands]
            v = emb(chipmod.cut_chips(rot, all_ds))
            all_names, all_dists = [], []
            for e in v:
                dist = np.linalg.norm(gal_v - e, axis=1)
                i = int(np.argmin(dist))
                all_names.append(gal_n[i] if dist[i] < a.threshold else None)
                all_dists.append(round(float(dist[i]), 2))
            hit = [False] * len(all_ds)
            if truth is not None:
                c = geometry.apply_affine(m, [(truth.left() + truth.right()) / 2, (truth.top() + truth.bottom()) / 2])
                hit = [math.hypot(d.cx - c[0], d.cy - c[1]) < 0.5 * d.size for d in all_ds]
            evidence = [(d.score, h, n, e, s2) for d, h, n, e, s2 in zip(all_ds, hit, all_names, eyes, second)]
            records.append((ang, person, evidence))
            all_hit = hit
            # what detect() returns with this config
            chosen = set(det.select(cands))
            keep = [i in chosen for i in range(len(cands))]
            ds = [d for d, k in zip(all_ds, keep) if k]
            names = [n for n, k in zip(all_names, keep) if k]
            dists = [x for x, k in zip(all_dists, keep) if k]
            hit = [h for h, k in zip(hit, keep) if k]
            s = stats[ang]
            s["n"] += 1
            s["ms"] += dt * 1000
            ok = names.count(person) == 1 and all(n in (None, person) for n in names)
            s["ok"] += ok
            s["named_wrong"] += any(n not in (None, person) for n in names)
            s["extra"] += max(0, len(ds) - 1)
            s["found"] += any(hit)
            true_scores.extend(d.score for d, h in zip(ds, hit) if h)
            false_scores.extend((d.score, n is not None) for d, h, n in zip(ds, hit, names) if not h)
            if a.verbose and not ok:
                cands = [(round(d.size), round(d.angle, 1), d.score, e, s2, h)
                         for d, e, s2, h in zip(all_ds, eyes, second, all_hit)]
                print(f"  miss {ang:+d} {person} {os.path.basename(path)[:40]} names={names} dist={dists} "
                      f"cands(size,angle,score,eyes,second,true)={cands}")
    print(f"{'angle':>6} {'acc':>5} {'recall':>6} {'wrong':>5} {'extra':>5} {'ms':>6}")
    worst = 1.0
    for ang in angles:
        s = stats[ang]
        acc = s["ok"] / s["n"]
        worst = min(worst, acc)
        print(f"{ang:+6d} {acc:5.2f} {s['found'] / s['n']:6.2f} {s['named_wrong']:5d} {s['extra']:5d} "
              f"{s['ms'] / s['n']:6.1f}")
    if true_scores:
        print("true-face scores: percentiles 0,1,5,10,50:", np.percentile(true_scores, [0, 1, 5, 10, 50]).round(1))
    if false_scores:
        fs = np.array(false_scores)
        print(f"other detections: {len(fs)}, named {int(fs[:, 1].sum())}; score percentiles 50,90,99,100:",
              np.percentile(fs[:, 0], [50, 90, 99, 100]).round(1),
              "named ones' max score", fs[fs[:, 1] > 0, 0].max() if fs[:, 1].any() else None)
    if a.save:
        import pickle

        with open(a.save, "wb") as f:
            pickle.dump(records, f)
    sweep(a, records)
    print(f"worst angle accuracy {worst:.2f}; mean {np.mean([stats[x]['ok'] / stats[x]['n'] for x in angles]):.3f}")


def sweep(a, records):
    if a.sweep:
        # what other verification rules would give (exact: the rule applies after merging).
        # Rule "S:E:V": keep a face when score >= S, or eyes >= E (E > 0), or second-opinion
        # neighbours >= V (V > 0).
        for rule in a.sweep.split(","):
            thr, need_eyes, need_second = (float(x) for x in rule.split(":"))
            acc, rec = {}, {}
            for ang, person, dets in records:
                kept = [(h, n) for sc, h, n, e, s2 in dets
                        if sc >= thr or e >= need_eyes > 0 or s2 >= need_second > 0]
                names = [n for h, n in kept]
                ok = names.count(person) == 1 and all(n in (None, person) for n in names)
                acc.setdefault(ang, []).append(ok)
                rec.setdefault(ang, []).append(any(h for h, n in kept))
            print(f"rule {rule:>10s}: acc " + " ".join(f"{np.mean(v):.2f}" for v in acc.values())
                  + f" | worst {min(np.mean(v) for v in acc.values()):.2f} mean {np.mean(list(acc.values())):.3f}"
                  + " | recall " + " ".join(f"{np.mean(v):.2f}" for v in rec.values()))


# ---------------------------------------------------------------------------------------
def cmd_recall(a):
    """Detection only: is the photo's own face (dlib HOG + landmarks on the upright photo)
    among detect()'s faces at rolls -60..+60 in 5 degree steps; angle error vs dlib's chip."""
    dlib, hog, sp, _ = dlib_models()
    cfg = make_config(a)
    det = HaarDetector(cfg)
    rolls = list(range(-60, 61, 5))
    found = {r: 0 for r in rolls}
    errs = {r: [] for r in rolls}
    n = 0
    ms = 0.0
    for path, _ in photos(a.split):
        img = cv2.imread(path)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        truth = max(hog(rgb, 1), key=lambda r: r.area(), default=None)
        if truth is None:
            continue
        tcx, tcy, _, tang = dlib_chip_geometry(dlib, dlib.get_face_chip_details(sp(rgb, truth), 150, 0.25))
        n += 1
        for roll in rolls:
            rot, m = rotate(img, roll)
            c = geometry.apply_affine(m, [tcx, tcy])
            t = time.perf_counter()
            ds = det.detect(rot)
            ms += (time.perf_counter() - t) * 1000
            near = [d for d in ds if math.hypot(d.cx - c[0], d.cy - c[1]) < 0.35 * d.size]
            if near:
                found[roll] += 1
                errs[roll].append(abs(near[0].angle - (tang + roll)))
    print(f"grid {cfg.angles} sf {cfg.scale_factor} mn {cfg.min_neighbors} max_width {cfg.max_width}: "
          f"{n} {a.split} photos with a dlib face, {ms / (n * len(rolls)):.1f} ms per photo")
    print("roll   " + " ".join(f"{r:+4d}" for r in rolls))
    print("recall " + " ".join(f"{found[r] / n:4.2f}" for r in rolls))
    print("|dang| " + " ".join(f"{np.mean(errs[r]) if errs[r] else float('nan'):4.1f}" for r in rolls))
    print(f"min recall {min(found[r] / n for r in rolls):.2f}, mean {np.mean([found[r] / n for r in rolls]):.3f}; "
          f"mean |angle error| {np.mean([e for r in rolls for e in errs[r]]):.1f} deg")


def cmd_cost(a):
    """ms per 640x480 frame: val photos (two side by side, turned) pasted on a 640x480 canvas."""
    cfg = make_config(a)
    det = HaarDetector(cfg)
    frames = []
    ps = photos("val")
    for i in range(0, len(ps), 2):
        canvas = np.full((480, 640, 3), 110, np.uint8)
        for j, (p, _) in enumerate(ps[i:i + 2]):
            img = cv2.imread(p)
            rot, _ = rotate(img, ACCEPT_ANGLES[(i + j) % len(ACCEPT_ANGLES)])
            rot = cv2.resize(rot, (300, int(300 * rot.shape[0] / rot.shape[1])))[:460]
            canvas[10:10 + rot.shape[0], 10 + 320 * j:10 + 320 * j + 300] = rot
        frames.append(canvas)
    if a.cv2_threads is not None:
        cv2.setNumThreads(a.cv2_threads)
    det.detect(frames[0])
    t = time.perf_counter()
    n = 0
    found = []
    for f in frames * a.repeat:
        found.append(det.detect(f))
        n += 1
    dt = (time.perf_counter() - t) / n
    faces = sum(len(x) for x in found[:len(frames)])
    print(f"full sweep: grid {cfg.angles} max_width {cfg.max_width} sf {cfg.scale_factor} threads {cfg.threads}: "
          f"{dt * 1000:.1f} ms per 640x480 frame ({n} frames, {faces} faces in {len(frames)} frames, "
          f"cv2 threads {cv2.getNumThreads()})")
    # tracked frames: search only near the faces the full sweep found (as a tracker would pass them)
    t = time.perf_counter()
    kept = 0
    for f, prev in zip(frames * a.repeat, found):
        kept += len(det.search(f, tracked=prev))
    dr = (time.perf_counter() - t) / n
    print(f"region search near {faces / len(frames):.1f} tracked faces per frame: {dr * 1000:.1f} ms per frame "
          f"({kept / a.repeat:.0f}/{faces} faces found again)")
    for k in (1, 3, 5, 10):
        per_frame = (dt + (k - 1) * dr) / k * 1000
        print(f"  full sweep every {k:2d} frames, region search between: {per_frame:.1f} ms per frame")
    # rolling sweep: region search plus each frame's share of a whole-frame sweep spread over a period
    for period in (7, 25):
        t = time.perf_counter()
        i = 0
        for f, prev in zip(frames * a.repeat, found):
            sweep = det.sweep()
            det.search(f, [s for k, s in enumerate(sweep) if k * period // len(sweep) == i % period], tracked=prev)
            i += 1
        print(f"  region search + rolling sweep over {period} frames: "
              f"{(time.perf_counter() - t) / n * 1000:.1f} ms per frame")
    det.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["framing", "accuracy", "recall", "cost"])
    ap.add_argument("--split", default="val", help="recall: train or val photos")
    ap.add_argument("--grid", help="comma-separated sweep angles (default: DetectionConfig's)")
    ap.add_argument("--angles", default=",".join(str(x) for x in ACCEPT_ANGLES), help="rolls to test")
    ap.add_argument("--scale-factor", dest="scale_factor", type=float)
    ap.add_argument("--min-neighbors", dest="min_neighbors", type=int)
    ap.add_argument("--min-size", dest="min_size", type=int)
    ap.add_argument("--max-width", dest="max_width", type=int)
    ap.add_argument("--min-score", dest="min_score", type=float)
    ap.add_argument("--merge-distance", dest="merge_distance", type=float)
    ap.add_argument("--cascade")
    ap.add_argument("--eyes", help="comma-separated eye cascades ('' for none)")
    ap.add_argument("--min-eyes", dest="min_eyes", type=int)
    ap.add_argument("--verify-min-neighbors", dest="verify_min_neighbors", type=int)
    ap.add_argument("--verify-cascade", dest="verify_cascade")
    ap.add_argument("--threshold", type=float, default=0.6, help="dlib euclidean distance threshold")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, help="cost: DetectionConfig.threads (thread pool over angles)")
    ap.add_argument("--region-angles", dest="region_angles", help="cost: offsets searched around a tracked face")
    ap.add_argument("--cv2-threads", dest="cv2_threads", type=int, help="cost: cv2.setNumThreads")
    ap.add_argument("--sweep",
                    help="verification rules S:E:V (score, eyes, second opinion) to compare, e.g. 30:2:1,1000:0:1")
    ap.add_argument("--enrol-min-score", dest="enrol_min_score", type=float,
                    help="enrol the largest face among those scoring at least this (default: all the detector returns)")
    ap.add_argument("--save", help="accuracy: keep the per-face records in this pickle (for --load)")
    ap.add_argument("--load", help="accuracy: only run --sweep on records saved by --save")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args()
    {"framing": cmd_framing, "accuracy": cmd_accuracy, "recall": cmd_recall, "cost": cmd_cost}[a.what](a)


if __name__ == "__main__":
    main()
