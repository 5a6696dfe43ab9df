#!/usr/bin/env python3
"""Embedder cost on this machine: milliseconds per face for interpreter threads x batch size.

usage: python tools/measure_embed.py [--model M.tflite] [--threads 1,2] [--batches 1,2,4] [--repeat 50]

Runs the model the daemon loads (default: the shipped int8 model) on real face chips: the
astronaut from scikit-image, cut as the pipeline cuts it, several copies per batch. The
float32 comparison is in tools/convert.py's report (the float32 model is not shipped).
"""
import argparse
import os
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a .tflite with its .json sidecar (default: the shipped int8 model)")
    ap.add_argument("--threads", default="1,2", help="comma-separated interpreter thread counts")
    ap.add_argument("--batches", default="1,2,4", help="comma-separated faces per invoke")
    ap.add_argument("--repeat", type=int, default=50, help="invokes timed per setting")
    a = ap.parse_args()

    from skimage.data import astronaut

    from edgeface.config import Config
    from edgeface.recognition.pipeline import build_recognizer

    frame = np.ascontiguousarray(astronaut()[..., ::-1])  # BGR, as frames arrive
    print(f"machine: {os.cpu_count()} cpus, 1-min load {os.getloadavg()[0]:.2f}")
    print("| threads | faces per invoke | ms per invoke | ms per face |")
    print("|---|---|---|---|")
    for threads in [int(x) for x in a.threads.split(",")]:
        cfg = Config(model=a.model)
        cfg.recognition.num_threads = threads
        rec = build_recognizer(cfg)
        chip = rec.chips(frame, rec.detector.detect(frame)[:1])
        for batch in [int(x) for x in a.batches.split(",")]:
            chips = np.repeat(chip, batch, axis=0)
            rec.embedder.embed(chips)  # warm up (and resize the input tensor once)
            t = time.perf_counter()
            for _ in range(a.repeat):
                rec.embedder.embed(chips)
            ms = (time.perf_counter() - t) / a.repeat * 1e3
            print(f"| {threads} | {batch} | {ms:.2f} | {ms / batch:.2f} |")


if __name__ == "__main__":
    main()
