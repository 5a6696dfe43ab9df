"""`edgeface bench`: the daemon's own pipeline over a video file or a folder of frames, flat out.

Frames get their time stamps from the video (frame index / fps), so tracking behaves as it
would on a live camera of that rate, while the clock measures how fast we could go.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeface import exitcodes
from edgeface.recognition.pipeline import runtime_info
from edgeface.service.source import open_compressed, retrieve_pixels
from edgeface.vision.images import IMAGE_SUFFIXES, ImageError, read_image

if TYPE_CHECKING:
    from edgeface.config import Config
    from edgeface.recognition.pipeline import FramePipeline

PROGRESS_EVERY_S = 5.0


def frames_from(source: str, limit: int | None):
    """Yield (frame, t): decoded frames of a video file, or images of a folder at 25 fps."""
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for i, f in enumerate(files[:limit]):
            yield read_image(f)[0], i / 25.0
        return
    import cv2

    if not path.exists():
        raise ImageError(f"{source}: no such file or folder")
    cap, jpeg = open_compressed(str(path))
    if not cap.isOpened():
        raise ImageError(f"{source}: not a video OpenCV can open")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    i = 0
    try:
        while limit is None or i < limit:
            frame = retrieve_pixels(cap, jpeg) if cap.grab() else None
            if frame is None:
                break
            yield frame, i / fps
            i += 1
    finally:
        cap.release()


def run_bench(pipeline: FramePipeline, source: str, limit: int | None = None, progress=None) -> dict:
    stages: dict[str, float] = {}
    latencies, names = [], []
    undecodable = 0
    started = last_report = time.perf_counter()
    frames = frames_from(source, limit)
    while True:
        t0 = time.perf_counter()
        item = next(frames, None)
        if item is None:
            break
        frame, t = item
        decoded = time.perf_counter()
        try:
            result = pipeline.process(frame, t)
        except ValueError:  # a corrupt JPEG frame (a truncated file's last one): skipped, as a decoder would
            undecodable += 1
            continue
        done = time.perf_counter()
        latencies.append((done - t0) * 1e3)
        stages["decode"] = stages.get("decode", 0.0) + (decoded - t0) * 1e3
        for k, v in result.stages_ms.items():
            stages[k] = stages.get(k, 0.0) + v
        names.append(sorted(tr.shown_name for tr, _ in result.faces if tr.shown_name is not None))
        if progress and done - last_report >= PROGRESS_EVERY_S:
            last_report = done
            progress(f"{len(latencies)} frames, {len(latencies) / (done - started):.1f} frames/s")
    seconds = time.perf_counter() - started
    n = len(latencies)
    if n == 0:
        raise ImageError(f"{source}: no frames")
    return {
        "frames": n,
        "seconds": round(seconds, 3),
        "fps": round(n / seconds, 2),
        "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 2),
                       "p95": round(float(np.percentile(latencies, 95)), 2)},
        "stages_ms": {k: round(v / n, 3) for k, v in stages.items()},
        "full_sweeps": pipeline.full_sweeps,
        # the per-frame detection budget: its size, the mean share of it used, the frames on which
        # it ran out with passes still queued, the passes carried over, and passes run by kind
        "budget_ms": pipeline.detector.cfg.budget_ms,
        "budget_use": (round(stages.get("detect", 0.0) / n / pipeline.detector.cfg.budget_ms, 3)
                       if pipeline.detector.cfg.budget_ms else None),
        **pipeline.schedule.stats.as_dict(),
        "undecodable_frames": undecodable,
        # frames on which any cascade ran; the others cost only decode + the motion stage
        "cascade_share": round(pipeline.cascade_frames / n, 4),
        "names": names,
        # which runtime and device ran the embedder: {"name", "device", "version"}
        "runtime": runtime_info(pipeline.recognizer.embedder),
    }


def main_bench(cfg: Config, source: str, frames: int | None = None, as_json: bool = False) -> int:
    """`edgeface bench`: returns the exit status."""
    from edgeface.recognition.pipeline import build_frame_pipeline, build_recognizer, describe_runtime
    from edgeface.store.gallery import Gallery

    with Gallery(cfg.gallery, create=False) as gallery:
        recognizer = build_recognizer(cfg, gallery)
    pipeline = build_frame_pipeline(cfg, recognizer)

    def progress(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    try:
        report = run_bench(pipeline, source, frames, progress)
    except ImageError as e:
        print(f"edgeface: {e}", file=sys.stderr)
        return exitcodes.FAIL
    if as_json:
        print(json.dumps(report))
    else:
        print(f"{report['frames']} frames in {report['seconds']:.1f} s: {report['fps']:.1f} frames/s, "
              f"latency p50 {report['latency_ms']['p50']:.1f} ms, p95 {report['latency_ms']['p95']:.1f} ms")
        print(f"  embedder: {describe_runtime(recognizer.embedder)}")
        print(f"  full sweeps: {report['full_sweeps']} (nothing tracked, or the scene changed)")
        print(f"  cascade ran on {report['cascade_share']:.0%} of frames")
        if report["budget_use"] is not None:
            print(f"  detection budget {report['budget_ms']:g} ms: {report['budget_use']:.0%} used on average, "
                  f"ran out on {report['budget_out_frames']} frames, {report['jobs_carried']} passes carried over")
        print("  passes by kind: " + ", ".join(f"{k} {v:.0%}" for k, v in report["job_share"].items()))
        for stage, ms in report["stages_ms"].items():
            print(f"  {stage:>7}: {ms:7.2f} ms/frame")
    return exitcodes.OK
