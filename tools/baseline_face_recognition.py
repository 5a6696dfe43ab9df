#!/usr/bin/env python3
"""The baseline edgeface is measured against: the face_recognition library (dlib HOG detector +
dlib ResNet, float32) run over a clip, nearest neighbour over enrolled photos, distance 0.6.

usage: python tools/baseline_face_recognition.py TRAIN_DIR CLIP.avi [--frames N] > baseline.json

TRAIN_DIR holds one folder of photos per person (five-celebs/train). Prints one JSON object
shaped like `edgeface bench --json` (frames, seconds, fps, names per frame) for
tools/score_names.py. Not a dependency of edgeface: install it for the comparison only with
`pip install dlib-bin face_recognition_models && pip install --no-deps face_recognition`.
"""
import argparse
import glob
import json
import os
import sys
import time

import cv2
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train")
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=None)
    a = ap.parse_args()
    import face_recognition as fr

    names, encodings = [], []
    for person in sorted(os.listdir(a.train)):
        for path in sorted(glob.glob(os.path.join(a.train, person, "*"))):
            found = fr.face_encodings(fr.load_image_file(path))
            if found:
                names.append(person)
                encodings.append(found[0])
    encodings = np.array(encodings)
    cap = cv2.VideoCapture(a.clip)
    per_frame, started = [], time.perf_counter()
    while a.frames is None or len(per_frame) < a.frames:
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        seen = []
        for enc in fr.face_encodings(rgb, fr.face_locations(rgb)):
            d = np.linalg.norm(encodings - enc, axis=1)
            if d.min() <= 0.6:
                seen.append(names[int(d.argmin())])
        per_frame.append(sorted(seen))
        if len(per_frame) % 25 == 0:
            print(f"baseline: {len(per_frame)} frames", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": len(per_frame), "seconds": round(seconds, 3),
                      "fps": round(len(per_frame) / seconds, 2), "names": per_frame}))


if __name__ == "__main__":
    main()
