"""Scoring the video path on the shared real footage (EDGEFACE_FOOTAGE) against tests/footage_labels.json.

A labelled face counts as found in a frame when one of the frame's tracks has its detection centred
within half the labelled face's size of the label's centre. A name is wrong when it is shown for
someone not in the clip's ``people`` (who appears in it at all). Labels and how they were made:
footage_labels.json's "how".

    python tests/footage.py [--gallery DB] [--clip NAME] [--set section.key=value ...]

prints one JSON line per clip (faces found per labelled face, wrong names, frames/s, budget figures).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import cv2

LABELS = Path(__file__).with_name("footage_labels.json")


def labels() -> dict:
    return json.loads(LABELS.read_text())


def label_boxes(face: dict, frames: int) -> dict[int, tuple[float, float, float]]:
    """{frame: (cx, cy, size)} for a labelled face: its key boxes, linearly between them, over its frames."""
    keys = sorted((int(k), v) for k, v in face["boxes"].items())
    out = {}
    for first, last in face["frames"]:
        for i in range(first, min(last, frames - 1) + 1):
            before = max((k for k in keys if k[0] <= i), default=keys[0], key=lambda k: k[0])
            after = min((k for k in keys if k[0] >= i), default=keys[-1], key=lambda k: k[0])
            if after[0] == before[0]:
                out[i] = tuple(before[1])
            else:
                w = (i - before[0]) / (after[0] - before[0])
                out[i] = tuple(b + w * (a - b) for b, a in zip(before[1], after[1]))
    return out


def read_clip(path: str) -> tuple[list, float]:
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def run_clip(pipeline, frames, fps) -> tuple[list, float]:
    """Per frame: [(cx, cy, shown name)] of every track; and the seconds it took."""
    seen = []
    started = time.perf_counter()
    for i, frame in enumerate(frames):
        result = pipeline.process(frame, i / fps)
        seen.append([(tr.detection.cx, tr.detection.cy, tr.shown_name) for tr, _ in result.faces])
    return seen, time.perf_counter() - started


def score(clip: dict, seen: list) -> dict:
    found = {}
    for face in clip["faces"]:
        boxes = label_boxes(face, len(seen))
        hits = sum(any(math.hypot(cx - bx, cy - by) <= 0.5 * size for cx, cy, _ in seen[i])
                   for i, (bx, by, size) in boxes.items())
        found[face["who"]] = [hits, len(boxes)]
    people = set(clip["people"])
    wrong = sum(1 for frame in seen for _, _, name in frame if name is not None and name not in people)
    return {"found": found, "wrong_names": wrong}


def main(argv: list[str]) -> None:
    import argparse

    from edgeface.config import parse_settings
    from edgeface.recognition.pipeline import build_frame_pipeline, build_recognizer
    from edgeface.store.gallery import Gallery

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gallery")
    ap.add_argument("--clip", action="append")
    ap.add_argument("--set", action="append", default=[], help="section.key=value (a YAML value), as in a config file")
    a = ap.parse_args(argv)
    root = os.environ.get("EDGEFACE_FOOTAGE", "../shared/datasets/real-footage")
    cfg = parse_settings(a.set)
    for name, clip in labels()["clips"].items():
        if a.clip and name not in a.clip:
            continue
        if a.gallery:
            with Gallery(a.gallery, create=False) as g:
                recognizer = build_recognizer(cfg, g)
        else:
            recognizer = build_recognizer(cfg)
        pipeline = build_frame_pipeline(cfg, recognizer)
        frames, fps = read_clip(os.path.join(root, name))
        seen, seconds = run_clip(pipeline, frames, fps)
        print(json.dumps({"clip": name, **score(clip, seen), "fps": round(len(frames) / seconds, 1),
                          **pipeline.schedule.stats.as_dict()}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main(sys.argv[1:])
