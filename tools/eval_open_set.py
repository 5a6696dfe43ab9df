"""Open-set evaluation: are enrolled people named right, and are strangers left unknown?

Every subset of the people in TRAIN (2 people up to all but one) is enrolled in turn, from all
their TRAIN photos or the first --photos of them; the subset's VAL photos must be named right
(enrolled people named right) and every photo of the people left out, TRAIN and VAL, must come
back unnamed (strangers left unknown). Photos are embedded once, by the still-image path that
`edgeface enroll` and `identify` use (largest face for enrolment; for a probe, every face found,
as identify reports them), and matched with the matcher the daemon builds (open-set rule and
all), so the figures are those of the product.

    python tools/eval_open_set.py TRAIN VAL [--photos 5] [--threshold T] [--json]

TRAIN and VAL hold one folder per person. For tight face crops, make them first:
    python tools/make_tight_crops.py DATASET/train crops/train   (and val)
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from edgeface.config import Config
from edgeface.recognition.match import Matcher, OpenSetRule
from edgeface.recognition.pipeline import build_recognizer
from edgeface.vision.detect import largest
from edgeface.vision.images import IMAGE_SUFFIXES, ImageError, read_photo


def photos(folder: Path) -> dict[str, list[Path]]:
    out = {}
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f for f in person.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            out[person.name] = files
    return out


def embed_all(recognizer, files: list[Path], every_face: bool) -> list[np.ndarray]:
    """Per file: (k, D) embeddings of its largest face (k <= 1) or of every face found."""
    out = []
    for n, path in enumerate(files, 1):
        try:
            image = read_photo(path).image
        except ImageError as e:
            print(f"skipped: {e}", file=sys.stderr)
            out.append(np.zeros((0, recognizer.embedder.spec.embedding_size), np.float32))
            continue
        found = recognizer.find(image)
        if not every_face:
            face = largest(found)
            found = [face] if face is not None else []
        out.append(recognizer.embed(image, found))
        if n % 25 == 0:
            print(f"  embedded {n}/{len(files)}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", type=Path)
    ap.add_argument("val", type=Path)
    ap.add_argument("--photos", type=int, default=0, help="enrol the first N photos per person (0: all)")
    ap.add_argument("--threshold", type=float, default=None, help="a fixed threshold instead of the open-set rule")
    ap.add_argument("--margin", type=float, default=None, help="margin over the second best (default: config's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    cfg = Config()
    recognizer = build_recognizer(cfg)
    spec = recognizer.embedder.spec
    margin = cfg.recognition.margin if args.margin is None else args.margin
    rule = OpenSetRule(spec.threshold, margin=margin) if args.threshold is None \
        else OpenSetRule.fixed(args.threshold, margin)
    train, val = photos(args.train), photos(args.val)
    people = sorted(set(train) & set(val))
    print(f"embedding {sum(len(train[p]) + len(val[p]) for p in people)} photos of {len(people)} people",
          file=sys.stderr)
    enrol = {p: embed_all(recognizer, train[p], every_face=False) for p in people}
    probes_train = {p: embed_all(recognizer, train[p], every_face=True) for p in people}
    probes_val = {p: embed_all(recognizer, val[p], every_face=True) for p in people}
    no_face = {"enrol": sum(len(e) == 0 for p in people for e in enrol[p]),
               "probes": sum(len(e) == 0 for p in people for e in probes_val[p] + probes_train[p])}

    rows = []
    for k in range(2, len(people)):
        right = genuine = unknown = strangers = 0
        for chosen in itertools.combinations(people, k):
            names, vectors = [], []
            for p in chosen:
                used = [e for e in enrol[p] if len(e)][: args.photos or None]
                names += [p] * len(used)
                vectors += [e[0] for e in used]
            matcher = Matcher(names, np.array(vectors), rule)
            for p in chosen:  # a photo is right when its person is named and nobody else is
                for emb in probes_val[p]:
                    got = [m.name for m in matcher.match(emb)] if len(emb) else []
                    genuine += 1
                    right += p in got and all(g in (None, p) for g in got)
            for p in set(people) - set(chosen):  # a stranger's photo is right when nobody is named
                for emb in probes_val[p] + probes_train[p]:
                    got = [m.name for m in matcher.match(emb)] if len(emb) else []
                    strangers += 1
                    unknown += all(g is None for g in got)
        rows.append({"enrolled_people": k, "galleries": len(list(itertools.combinations(people, k))),
                     "threshold": round(rule.for_people(k), 4),
                     "enrolled_named_right": round(right / max(genuine, 1), 4), "enrolled_probes": genuine,
                     "strangers_left_unknown": round(unknown / max(strangers, 1), 4), "stranger_probes": strangers})
    result = {"train": str(args.train), "val": str(args.val), "photos_per_person": args.photos or "all",
              "rule": "fixed" if args.threshold is not None else "open-set", "margin": margin,
              "no_face": no_face, "splits": rows,
              "threshold_by_gallery_size": {n: round(rule.for_people(n), 4) for n in (5, 12, 20, 50, 100, 1000)}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"no face found: {no_face['enrol']} enrolment photos, {no_face['probes']} probes")
        print("people  galleries  threshold  enrolled named right  strangers left unknown")
        for r in rows:
            print(f"{r['enrolled_people']:>6}  {r['galleries']:>9}  {r['threshold']:>9}  "
                  f"{r['enrolled_named_right']:>8.3f} of {r['enrolled_probes']:<5}  "
                  f"{r['strangers_left_unknown']:>8.3f} of {r['stranger_probes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
