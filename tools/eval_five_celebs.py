#!/usr/bin/env python3
"""Closed- and open-set accuracy of edgeface on five-celebs, in one process.

usage: python tools/eval_five_celebs.py [DATASET] [--angles -60,-45,...] [--thresholds 0.9,0.92]
       [--methods nearest,centroid] [--model M]

Enrols every train photo (largest face), then identifies the val photos turned in-plane
(as ../shared/acceptance/rotated_five_celebs.py does) and reports per angle:
  closed set: the person named exactly once and every other face unnamed (the acceptance rule);
  open set:   for each person in turn, enrol the other four and probe the held-out person's
              val photos: how often their face is wrongly given someone's name.
Embeddings are computed once, so thresholds and matching methods compare on equal terms.
"""
import argparse
import glob
import os
import sys
import time

import cv2
import numpy as np

from edgeface.config import Config
from edgeface.recognition.match import match
from edgeface.recognition.pipeline import build_recognizer
from edgeface.vision.detect import largest
from edgeface.vision.geometry import turn_image

HERE = os.path.dirname(os.path.abspath(__file__))


turned = turn_image  # the same pictures as ../shared/acceptance/rotated_five_celebs.py


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", default=os.path.join(HERE, "..", "..", "shared", "datasets", "five-celebs"))
    ap.add_argument("--angles", default="-60,-45,-30,-15,0,15,30,45,60")
    ap.add_argument("--thresholds", default=None, help="cosine thresholds to compare (default: the model's)")
    ap.add_argument("--methods", default="nearest,centroid")
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    angles = [int(x) for x in a.angles.split(",")]
    rec = build_recognizer(Config(model=a.model))
    thresholds = [float(x) for x in a.thresholds.split(",")] if a.thresholds else [rec.embedder.spec.threshold]

    t0 = time.time()
    names, vectors = [], []
    for person in sorted(os.listdir(os.path.join(a.dataset, "train"))):
        for path in sorted(glob.glob(os.path.join(a.dataset, "train", person, "*"))):
            img = cv2.imread(path)
            face = largest(rec.detector.detect(img))
            if face is not None:
                names.append(person)
                vectors.append(rec.embed(img, [face])[0])
    vectors = np.stack(vectors)
    print(f"enrolled {len(names)} train photos in {time.time() - t0:.0f} s", file=sys.stderr)

    probes = []  # (angle, person, embeddings of every face found)
    t0 = time.time()
    for path in sorted(glob.glob(os.path.join(a.dataset, "val", "*", "*"))):
        person = path.split(os.sep)[-2]
        img = cv2.imread(path)
        for ang in angles:
            frame = turned(img, ang)
            dets = rec.detector.detect(frame)
            probes.append((ang, person, rec.embed(frame, dets)))
    print(f"probed {len(probes)} turned val photos in {time.time() - t0:.0f} s "
          f"({(time.time() - t0) / len(probes) * 1e3:.0f} ms each)", file=sys.stderr)

    people = sorted(set(names))
    for method in a.methods.split(","):
        for thr in thresholds:
            closed = {ang: [0, 0] for ang in angles}
            opened = {ang: [0, 0] for ang in angles}
            for ang, person, emb in probes:
                got = [m.name for m in match(emb, names, vectors, thr, method)] if len(emb) else []
                ok = got.count(person) == 1 and all(n in (None, person) for n in got)
                closed[ang][0] += ok
                closed[ang][1] += 1
                # open set: the same faces against a gallery without this person
                keep = [i for i, n in enumerate(names) if n != person]
                others = [names[i] for i in keep]
                got = [m.name for m in match(emb, others, vectors[keep], thr, method)] if len(emb) else []
                opened[ang][0] += any(n is not None for n in got)
                opened[ang][1] += 1
            print(f"\nmethod {method}, threshold {thr:.3f} ({len(people)} people)")
            print("angle  closed-set right  unknown wrongly named")
            for ang in angles:
                c, o = closed[ang], opened[ang]
                print(f"{ang:+5d}  {c[0]:3d}/{c[1]:<3d} = {c[0] / c[1]:.2f}   {o[0]:3d}/{o[1]:<3d} = {o[0] / o[1]:.2f}")
            tc = sum(v[0] for v in closed.values()), sum(v[1] for v in closed.values())
            to = sum(v[0] for v in opened.values()), sum(v[1] for v in opened.values())
            worst = min(v[0] / v[1] for v in closed.values())
            print(f"  all  {tc[0]}/{tc[1]} = {tc[0] / tc[1]:.3f} (worst {worst:.2f})"
                  f"   {to[0]}/{to[1]} = {to[0] / to[1]:.3f}")


if __name__ == "__main__":
    main()
