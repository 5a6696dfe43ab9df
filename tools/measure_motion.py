#!/usr/bin/env python3
"""Compare motion detectors for edgeface's motion stage, and write an empty-room clip.

  measure_motion.py compare DOOR_CLIP.avi [DOOR_CLIP.avi ...]
      For each method (running average at several learn rates, as edgeface.vision.motion does; OpenCV's
      MOG2 and KNN subtractors on the same small grey copy): ms per frame, the share of EMPTY
      frames (nobody even partly in view, from the clip's .json) with any motion area (false
      motion: noise, drift, ghosts), the share of frames with someone present that have a motion
      area, and the mean area searched (fraction of the frame) on either.
  measure_motion.py empty OUT.avi [--seconds 30] [--fps 15] [--background coffee] [--seed 1]
      A door_clip.py room (skimage photo, sensor noise sigma 2.5, +-3% exposure drift) with nobody.

Measured on door_clip seeds 1 (coffee, 15 fps), 2 (rocket, 10 fps), 3 (chelsea, 15 fps), 2 shared cores:
  method      ms/frame  empty frames w/ motion  area (empty)  present w/ motion  area (present)
  avg lr=0.05   0.60        0.313                 0.211          1.000              0.840
  avg lr=0.3    0.58        0.043                 0.012          0.803              0.363
  avg lr=0.5    0.58        0.026                 0.005          0.507              0.241
  MOG2          0.76        0.000                 0.000          0.864              0.424
  KNN           0.81        0.008                 0.008          0.987              0.604
The running average at 0.3 is kept: cheapest; its false motion is the few frames of "ghost" after
someone leaves (none on noise and drift alone: tests/test_motion.py); a person who stands still
stops being motion, which the tracker's region search does not need.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgeface.vision.motion import (
    MotionConfig,
    MotionDetector,
    grow_and_merge,
    mask_boxes,
    small_grey,
)


class Subtractor:
    """An OpenCV background subtractor on the same small grey copy, with the same boxes."""

    def __init__(self, make, cfg: MotionConfig):
        self.sub, self.cfg = make(), cfg

    def areas(self, frame):
        grey = small_grey(frame, self.cfg.width)
        mask = self.sub.apply(grey)
        mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)[1]  # shadows (127) are not motion
        h, w = frame.shape[:2]
        boxes = mask_boxes(mask, self.cfg.min_area * mask.size)
        return grow_and_merge(boxes, w / grey.shape[1], self.cfg.margin, self.cfg.min_margin, w, h)


def methods():
    cfg = MotionConfig()
    out = {f"avg lr={lr}": (lambda lr=lr: MotionDetector(MotionConfig(learn_rate=lr)))
           for lr in (0.05, 0.1, 0.2, 0.3, 0.5)}
    out["MOG2"] = lambda: Subtractor(lambda: cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=16), cfg)
    out["KNN"] = lambda: Subtractor(lambda: cv2.createBackgroundSubtractorKNN(history=200), cfg)
    return out


def compare(clips: list[str]) -> None:
    data = []
    for clip in clips:
        present = json.loads(Path(clip).with_suffix(".json").read_text())["present"]
        cap, frames = cv2.VideoCapture(clip), []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        data.append((frames, present))
    print(f"{'method':<14} {'ms/frame':>8} {'empty w/ motion':>15} {'area (empty)':>12} "
          f"{'present w/ motion':>17} {'area (present)':>14}")
    for name, make in methods().items():
        ms, fe, fp, ae, ap, ne, np_ = 0.0, 0, 0, 0.0, 0.0, 0, 0
        for frames, present in data:
            m = make()
            for f, who in zip(frames, present):
                t0 = time.perf_counter()
                areas = m.areas(f)
                ms += (time.perf_counter() - t0) * 1e3
                share = sum(w * h for _, _, w, h in areas) / (f.shape[0] * f.shape[1])
                if who:
                    np_, fp, ap = np_ + 1, fp + bool(areas), ap + share
                else:
                    ne, fe, ae = ne + 1, fe + bool(areas), ae + share
        n = ne + np_
        print(f"{name:<14} {ms / n:8.3f} {fe / max(1, ne):15.3f} {ae / max(1, ne):12.3f} "
              f"{fp / max(1, np_):17.3f} {ap / max(1, np_):14.3f}")


def empty(out: str, seconds: float, fps: int, background: str, seed: int) -> None:
    from skimage import data as skdata

    bg = getattr(skdata, background)()
    bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR) if bg.ndim == 2 else cv2.cvtColor(bg[..., :3], cv2.COLOR_RGB2BGR)
    room = cv2.resize(bg, (640, 480), interpolation=cv2.INTER_AREA).astype(np.float32)
    rng = np.random.default_rng(seed)
    vw = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for i in range(int(seconds * fps)):  # exactly door_clip.py's noise and drift
        frame = room * (1 + 0.03 * math.sin(i / (fps * 7))) + rng.normal(0, 2.5, room.shape).astype(np.float32)
        vw.write(np.clip(frame, 0, 255).astype(np.uint8))
    vw.release()
    print(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("clips", nargs="+")
    e = sub.add_parser("empty")
    e.add_argument("out")
    e.add_argument("--seconds", type=float, default=30)
    e.add_argument("--fps", type=int, default=15)
    e.add_argument("--background", default="coffee")
    e.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "compare":
        compare(a.clips)
    else:
        empty(a.out, a.seconds, a.fps, a.background, a.seed)


if __name__ == "__main__":
    main()
