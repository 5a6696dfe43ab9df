"""Open-set evaluation: are enrolled people named right, and are strangers left unknown?

Two ways to choose who is enrolled:
- default: every subset of the people in TRAIN (2 people up to all but one) in turn (five-celebs);
- --galleries 5,10,20: --draws random galleries of each size (the bigger LFW set that
  tools/build_open_set.py makes); everyone else plays the stranger.
Each gallery is enrolled from its people's TRAIN photos (all, or the first --photos). Enrolled
people named right: their VAL photos, of those where a face was found (a photo is right when its
person is named and nobody else is). Strangers left unknown: every photo of the people left out,
TRAIN and VAL. Photos are embedded once, by the still-image path that `edgeface enroll` and
`identify` use (largest face for enrolment; for a probe, every face found), and matched with the
matcher the daemon builds (open-set rule and all), so the figures are those of the product.

Levers (models/README.md, "Open set"), one at a time:
  --mirror             each chip and its mirror image embedded, the two averaged (enrolment and probes)
  --refine             landmarks predicted a second time from the rect the first prediction implies
  --method M           how a person's photos combine: nearest (best photo), centroid (their mean), top2
  --quality            enrolment photos weighted by quality (face size, sharpness, how frontal) in the mean
                       (with --method centroid), or the poorest third left out (nearest, top2)
  --sweep a,b,...      base thresholds to try instead of the model's (the rule's growth, crowding and
                       margin stay); prints one row per threshold and gallery size
  --probe-face-px N    probes (val photos, strangers' photos) embedded with their faces N pixels across:
                       each photo scaled down, its detections with it (faces at a distance); enrolment
                       keeps the photos as they are
  --enrol-face-px N    each enrolment photo also enrolled as it looks with its face N pixels across

    python tools/eval_open_set.py TRAIN VAL [--photos 5] [--galleries 5,10,20 --draws 20] [--json]

Embeddings are cached per photo folder (--cache DIR, default /tmp/edgeface-eval-cache), keyed on the
files' paths, sizes and modification times and on what embeds them (the model, the detection settings,
the aligner), so levers tried one after another embed each photo once, and a changed model, detector
or --refine embeds afresh.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edgeface.config import Config
from edgeface.recognition.match import Matcher, OpenSetRule, unit_rows
from edgeface.recognition.pipeline import build_recognizer
from edgeface.vision.chip import sharpness
from edgeface.vision.detect import largest
from edgeface.vision.images import IMAGE_SUFFIXES, ImageError, read_photo
from edgeface.vision.landmarks import Aligner


def photos(folder: Path) -> dict[str, list[Path]]:
    out = {}
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            out[person.name] = files
    return out


def quality(recognizer, image: np.ndarray, face, chip: np.ndarray) -> float:
    """0..1: face size (full at 100 px), sharpness (full at 30) and how frontal (nose between the eyes)."""
    size = min(1.0, face.size / 100.0)
    sharp = min(1.0, sharpness(chip) / 30.0)
    frontal = 1.0
    if recognizer.aligner is not None:
        p = recognizer.aligner.landmarks(image, face)
        eyes = np.array([p[0:2].mean(axis=0), p[2:4].mean(axis=0)])
        across = eyes[1] - eyes[0]
        span = max(float(np.linalg.norm(across)), 1e-6)
        turned = abs(float(np.dot(across / span, p[4] - eyes.mean(axis=0)))) / span  # nose off-centre, in eye spans
        frontal = min(1.0, max(0.0, 1.0 - 2.0 * turned))
    return float(size * sharp * frontal)


def embed_folder(recognizer, files: list[Path], cache: Path, face_px: int = 0) -> list[dict]:
    """Per file: plain and mirrored embeddings of every face found, the largest face's index, its quality.
    ``face_px``: each photo is first scaled down so its largest face is that many pixels across (the
    faces found at full size, scaled with it: what is measured is the embedding, not the detector)."""
    # keyed on each file's path, size and modification time: a set rebuilt in place (same paths)
    # is embedded afresh, not served the old photos' embeddings
    stamps = (f"{f}\t{f.stat().st_size}\t{f.stat().st_mtime_ns}" for f in files)
    aligner = recognizer.aligner
    setup = (f"{recognizer.embedder.spec.model_id}\t{recognizer.detector.cfg!r}\t"
             f"{type(aligner).__name__}:{getattr(aligner, 'refine', None)}")
    if face_px:
        setup += f"\tface_px={face_px}"
    key = hashlib.sha256("\n".join([setup, *stamps]).encode()).hexdigest()[:16]
    path = cache / f"{key}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=True)
        return list(data["records"])
    out = []
    t0 = time.perf_counter()
    for n, f in enumerate(files, 1):
        try:
            image = read_photo(f).image
        except ImageError as e:
            print(f"skipped: {e}", file=sys.stderr)
            out.append({"plain": np.zeros((0, 128), np.float32), "mirror": np.zeros((0, 128), np.float32),
                        "largest": -1, "quality": 0.0})
            continue
        found = recognizer.find(image)
        big = largest(found)
        i = found.index(big) if big is not None else -1
        if face_px and big is not None and big.size > face_px:
            k = face_px / big.size
            image = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            # pixel centres: x' + 0.5 = k (x + 0.5)
            found = [replace(d, cx=(d.cx + 0.5) * k - 0.5, cy=(d.cy + 0.5) * k - 0.5, size=d.size * k) for d in found]
            big = found[i]
        chips = recognizer.chips(image, found)
        plain = recognizer.embedder.embed(chips) if len(found) else np.zeros((0, 128), np.float32)
        flipped = recognizer.embedder.embed(chips[:, :, ::-1]) if len(found) else plain
        out.append({"plain": plain, "mirror": unit_rows(plain + flipped), "largest": i,
                    "quality": quality(recognizer, image, big, chips[i]) if i >= 0 else 0.0})
        if n % 100 == 0:
            print(f"  embedded {n}/{len(files)} ({(time.perf_counter() - t0) / n * 1e3:.0f} ms a photo)",
                  file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, records=np.array(out, dtype=object))
    return out


def enrolment(records: list[dict], kind: str, photos_per_person: int, method: str, use_quality: bool
              ) -> np.ndarray:
    """A person's enrolled rows, as the lever says."""
    used = [r for r in records if r["largest"] >= 0][: photos_per_person or None]
    rows = np.array([r[kind][r["largest"]] for r in used]) if used else np.zeros((0, 128), np.float32)
    if not use_quality or len(rows) < 2:
        return rows
    q = np.array([r["quality"] for r in used])
    if method == "centroid":
        return unit_rows((rows * np.maximum(q, 0.05)[:, None]).sum(axis=0))[None]
    keep = q >= np.quantile(q, 1 / 3)
    return rows[keep]


def score_gallery(chosen, people, enrol_rows, probes_val, probes_all, rule, method, kind):
    names, vectors = [], []
    for p in chosen:
        names += [p] * len(enrol_rows[p])
        vectors += list(enrol_rows[p])
    matcher = Matcher(names, np.array(vectors), rule, method=method)
    right = genuine = unknown = strangers = wrong = 0
    for p in chosen:
        for r in probes_val[p]:
            if not len(r[kind]):
                continue  # no face found: the detector's miss, counted apart
            got = [m.name for m in matcher.match(r[kind])]
            genuine += 1
            right += p in got and all(g in (None, p) for g in got)
            wrong += any(g not in (None, p) for g in got)
    for p in set(people) - set(chosen):
        for r in probes_all[p]:
            if not len(r[kind]):
                continue
            got = [m.name for m in matcher.match(r[kind])]
            strangers += 1
            unknown += all(g is None for g in got)
    return right, genuine, unknown, strangers, wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", type=Path)
    ap.add_argument("val", type=Path)
    ap.add_argument("--photos", type=int, default=0, help="enrol the first N photos per person (0: all)")
    ap.add_argument("--threshold", type=float, default=None, help="a fixed threshold instead of the open-set rule")
    ap.add_argument("--margin", type=float, default=None, help="margin over the second best (default: config's)")
    ap.add_argument("--galleries", default="", help="gallery sizes to draw at random, e.g. 5,10,20")
    ap.add_argument("--draws", type=int, default=20, help="random galleries per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mirror", action="store_true")
    ap.add_argument("--refine", action="store_true",
                    help="landmarks predicted twice, the second time from the rect the first implies")
    ap.add_argument("--method", default="nearest", choices=("nearest", "centroid", "top2"))
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--sweep", default="", help="base thresholds to try, e.g. 0.915,0.92,0.925")
    ap.add_argument("--probe-face-px", type=int, default=0,
                    help="probes embedded with their faces this many pixels across (0: as they are)")
    ap.add_argument("--enrol-face-px", type=int, default=0,
                    help="each enrolment photo enrolled a second time, its face this many pixels across")
    ap.add_argument("--growth", type=float, default=None, help="the rule's threshold growth per e-fold of people")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/edgeface-eval-cache"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    cfg = Config()
    recognizer = build_recognizer(cfg)
    if args.refine:
        recognizer.aligner = Aligner(refine=True)
    spec = recognizer.embedder.spec
    margin = cfg.recognition.margin if args.margin is None else args.margin
    train, val = photos(args.train), photos(args.val)
    people = sorted(set(train) & set(val))
    print(f"embedding {sum(len(train[p]) + len(val[p]) for p in people)} photos of {len(people)} people",
          file=sys.stderr)
    train_files = [f for p in people for f in train[p]]

    def by_person(records: list[dict], folder: dict[str, list[Path]]) -> dict[str, list[dict]]:
        """The records of one embed_folder call over every person's photos, split back per person."""
        out, start = {}, 0
        for p in people:
            out[p], start = records[start:start + len(folder[p])], start + len(folder[p])
        return out

    enrol_train = by_person(embed_folder(recognizer, train_files, args.cache), train)
    probes_val = by_person(embed_folder(recognizer, [f for p in people for f in val[p]], args.cache,
                                        args.probe_face_px), val)
    # strangers' train photos are probes too: at the probes' size
    probes_train = (by_person(embed_folder(recognizer, train_files, args.cache, args.probe_face_px), train)
                    if args.probe_face_px else enrol_train)
    kind = "mirror" if args.mirror else "plain"
    method = "nearest" if args.method == "centroid" and args.quality else args.method  # one weighted row each
    enrol_rows = {p: enrolment(enrol_train[p], kind, args.photos, args.method, args.quality) for p in people}
    if args.enrol_face_px:  # the same photos again, as they look from further away
        copies = by_person(embed_folder(recognizer, train_files, args.cache, args.enrol_face_px), train)
        for p in people:
            extra = enrolment(copies[p], kind, args.photos, args.method, args.quality)
            enrol_rows[p] = np.concatenate([enrol_rows[p], extra]) if len(extra) else enrol_rows[p]
    probes_all = {p: probes_val[p] + probes_train[p] for p in people}
    no_face = {"enrol": sum(r["largest"] < 0 for p in people for r in enrol_train[p]),
               "probes": sum(not len(r[kind]) for p in people for r in probes_all[p])}

    if args.galleries:
        rng = np.random.default_rng(args.seed)
        sizes = [int(s) for s in args.galleries.split(",")]
        draws = {k: [tuple(sorted(rng.choice(people, k, replace=False))) for _ in range(args.draws)] for k in sizes}
    else:
        draws = {k: list(itertools.combinations(people, k)) for k in range(2, len(people))}
    bases = [float(b) for b in args.sweep.split(",")] if args.sweep else [None]
    rows = []
    for base in bases:
        if args.threshold is not None:
            rule = OpenSetRule.fixed(args.threshold, margin)
        else:
            rule = OpenSetRule(spec.threshold if base is None else base, margin=margin,
                               **({} if args.growth is None else {"growth": args.growth}))
        for k, galleries in draws.items():
            totals = np.zeros(5, int)
            for chosen in galleries:
                totals += score_gallery(chosen, people, enrol_rows, probes_val, probes_all, rule, method, kind)
            right, genuine, unknown, strangers, wrong = (int(v) for v in totals)
            rows.append({"enrolled_people": k, "galleries": len(galleries), "base_threshold": rule.threshold,
                         "threshold": round(rule.for_people(k), 4),
                         "enrolled_named_right": round(right / max(genuine, 1), 4), "enrolled_probes": genuine,
                         "named_as_someone_else": wrong,
                         "strangers_left_unknown": round(unknown / max(strangers, 1), 4),
                         "stranger_probes": strangers})
    result = {"train": str(args.train), "val": str(args.val), "photos_per_person": args.photos or "all",
              "rule": "fixed" if args.threshold is not None else "open-set", "margin": margin,
              "mirror": args.mirror, "method": args.method, "quality": args.quality,
              "probe_face_px": args.probe_face_px or None, "enrol_face_px": args.enrol_face_px or None,
              "no_face": no_face, "splits": rows,
              "threshold_by_gallery_size": {n: round(OpenSetRule(spec.threshold).for_people(n), 4)
                                            for n in (5, 12, 20, 50, 100, 1000)}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"mirror {args.mirror}, method {args.method}, quality {args.quality}, "
              f"probe faces {args.probe_face_px or 'as they are'} px, "
              f"enrolment copies {args.enrol_face_px or 'none'}; "
              f"no face found: {no_face['enrol']} enrolment photos, {no_face['probes']} probes")
        print("base    people  galleries  threshold  enrolled named right  strangers left unknown  wrong name")
        for r in rows:
            print(f"{r['base_threshold']:.3f}  {r['enrolled_people']:>6}  {r['galleries']:>9}  {r['threshold']:>9}  "
                  f"{r['enrolled_named_right']:>8.3f} of {r['enrolled_probes']:<5}  "
                  f"{r['strangers_left_unknown']:>8.3f} of {r['stranger_probes']:<6}  {r['named_as_someone_else']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
