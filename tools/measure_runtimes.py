#!/usr/bin/env python3
"""LiteRT vs OpenVINO on this machine, side by side in one run: fidelity, latency, load time, memory.

usage: python tools/measure_runtimes.py [--model M.tflite] [--threads 1,2] [--batch 8] [--repeat 60]

Face chips: every five-celebs photo's largest face cut as the pipeline cuts it (EDGEFACE_DATASET),
else the astronaut from scikit-image, upright, turned and mirrored. Each runtime x thread count runs
in a fresh child process, so its model load time and resident memory are its own. Prints one
Markdown table (models/README.md "Runtimes" quotes it) and the cosine between the runtimes'
embeddings of the same chips.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> tuple[float, float]:
    """(resident now, peak resident) of this process in MB, from /proc (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def child(a: argparse.Namespace) -> None:
    """One runtime at one thread count: load, time, embed every chip, report JSON on stdout."""
    chips = np.load(a.chips)
    base_rss, _ = rss_mb()
    t0 = time.perf_counter()
    if a.runtime == "openvino":
        from edgeface.recognition.embed_openvino import OpenVinoEmbedder

        emb = OpenVinoEmbedder(a.model, device="CPU", num_threads=a.threads)
    else:
        from edgeface.recognition.embed import Embedder

        emb = Embedder(a.model, num_threads=a.threads)  # type: ignore[assignment]
    emb.embed(chips[:1])  # the first inference finishes loading (XNNPACK packs weights, OpenVINO compiles)
    load_s = time.perf_counter() - t0
    single = []
    for i in range(a.repeat):
        chip = chips[i % len(chips)][None]
        t = time.perf_counter()
        emb.embed(chip)
        single.append(time.perf_counter() - t)
    batch = chips[: a.batch] if len(chips) >= a.batch else np.resize(chips, (a.batch, *chips.shape[1:]))
    emb.embed(batch)  # warm the batch size
    batched = []
    for _ in range(max(3, a.repeat // a.batch)):
        t = time.perf_counter()
        emb.embed(batch)
        batched.append((time.perf_counter() - t) / len(batch))
    embeddings = emb.embed(chips)
    np.save(a.out, embeddings)
    rss, peak = rss_mb()
    print(json.dumps({"runtime": a.runtime, "device": emb.device, "threads": a.threads, "load_s": load_s,
                      "single_ms": float(np.median(single) * 1e3), "batched_ms": float(np.median(batched) * 1e3),
                      "rss_mb": rss, "peak_rss_mb": peak, "rss_added_mb": rss - base_rss}))


def dataset_chips(root: Path) -> np.ndarray:
    from edgeface.config import Config
    from edgeface.recognition.pipeline import build_recognizer
    from edgeface.vision.images import read_image

    rec = build_recognizer(Config())
    chips = []
    for f in sorted(root.glob("*/*/*")):
        if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        image = read_image(f)[0]
        found = rec.find(image)
        if found:
            chips.append(rec.chips(image, [max(found, key=lambda d: d.size)])[0])
    return np.stack(chips)


def astronaut_chips() -> np.ndarray:
    import cv2
    from skimage.data import astronaut

    from edgeface.config import Config
    from edgeface.recognition.pipeline import build_recognizer
    from edgeface.vision.geometry import turn_image

    rec = build_recognizer(Config())
    frame = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    chips = []
    for angle in (0, -30, 20):
        image = turn_image(frame, angle) if angle else frame
        chips.append(rec.chips(image, rec.find(image)[:1])[0])
    chips += [c[:, ::-1] for c in chips]
    return np.stack(chips)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a .tflite with its .json sidecar (default: the shipped int8 model)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--batch", type=int, default=8, help="faces per inference for the batched figure")
    ap.add_argument("--repeat", type=int, default=60, help="single-face inferences timed per setting")
    ap.add_argument("--rounds", type=int, default=2,
                    help="run every setting this many times, in turn, and keep each figure's best (a shared "
                         "machine's bursts of load hit one round, not all)")
    ap.add_argument("--child", choices=("litert", "openvino"), dest="runtime", help=argparse.SUPPRESS)
    ap.add_argument("--chips", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--one-thread-count", type=int, dest="thread_count", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.runtime:
        a.threads = a.thread_count
        child(a)
        return

    from edgeface.recognition.embed_openvino import openvino_version

    dataset = os.environ.get("EDGEFACE_DATASET")
    if dataset and Path(dataset).is_dir():
        chips, source = dataset_chips(Path(dataset)), f"five-celebs ({dataset})"
    else:
        chips, source = astronaut_chips(), "the astronaut (skimage), upright, turned, mirrored"
    runtimes = ["litert"] + (["openvino"] if openvino_version() else [])
    embeddings: dict[tuple[str, int], np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="edgeface-runtimes-") as tmp:
        np.save(Path(tmp) / "chips.npy", chips)
        best: dict[tuple[str, int], dict] = {}
        for _ in range(a.rounds):
            for threads in [int(x) for x in a.threads.split(",")]:
                for runtime in runtimes:
                    out = Path(tmp) / f"{runtime}-{threads}.npy"
                    cmd = [sys.executable, __file__, "--child", runtime, "--chips", str(Path(tmp) / "chips.npy"),
                           "--out", str(out), "--one-thread-count", str(threads), "--batch", str(a.batch),
                           "--repeat", str(a.repeat)] + (["--model", a.model] if a.model else [])
                    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    row = json.loads(r.stdout.strip().splitlines()[-1])
                    kept = best.setdefault((runtime, threads), row)
                    for key in ("load_s", "single_ms", "batched_ms"):
                        kept[key] = min(kept[key], row[key])
                    embeddings[(runtime, threads)] = np.load(out)
        rows = list(best.values())
    print(f"machine: {os.cpu_count()} cpus, 1-min load {os.getloadavg()[0]:.2f} at the end; "
          f"chips: {len(chips)} from {source}; best of {a.rounds} rounds")
    from importlib.metadata import version

    openvino = f", OpenVINO {openvino_version()}" if "openvino" in runtimes else ""
    print(f"runtimes: LiteRT (ai-edge-litert {version('ai-edge-litert')}, XNNPACK){openvino}")
    print()
    print(f"| runtime | device | threads | load (s) | ms/face, 1 face | ms/face, batch of {a.batch} | RSS (MB) "
          "| RSS added by runtime+model (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runtime']} | {r['device']} | {r['threads']} | {r['load_s']:.2f} | {r['single_ms']:.2f} | "
              f"{r['batched_ms']:.2f} | {r['rss_mb']:.0f} | {r['rss_added_mb']:.0f} |")
    if "openvino" in runtimes:
        print()
        for threads in sorted({t for _, t in embeddings}):
            cos = np.sum(embeddings[("litert", threads)] * embeddings[("openvino", threads)], axis=1)
            print(f"cosine OpenVINO vs LiteRT, {len(cos)} chips, {threads} thread(s): mean {cos.mean():.5f}, "
                  f"min {cos.min():.5f}")


if __name__ == "__main__":
    main()
