"""How well unknown faces group into visitors (edgeface.store.visitors), per joining threshold.

Strangers' photos arrive one at a time, in a random order, as unknown appearances; each joins
the visitor with the nearest kept embedding when that similarity reaches the threshold, else
starts a new visitor (the daemon's rule, store.visitors.closest, MAX_EMBEDDINGS kept each). Per
threshold:
- kept: the share of a person's appearances that carry that person's most common visitor id
  (1.0: every return recognised as the same visitor);
- merged: visitor ids given to more than one person (two strangers sharing one; must be 0);
- visitors per person: how many ids one person was split into.

    python tools/eval_visitors.py VAL [TRAIN] [--people 40] [--thresholds 0.92,0.93,0.94,0.95]

Photos are embedded by tools/eval_open_set.py's path and cache (largest face, plain embeddings).
A photo is a harder appearance than a doorway visit: the daemon averages a track's embeddings
over several frames of the same face.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from edgeface.config import Config
from edgeface.recognition.pipeline import build_recognizer
from edgeface.store.visitors import MAX_EMBEDDINGS, Visitor, closest, pack_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_open_set import embed_folder, photos  # noqa: E402  (a sibling tool, not a package)


def group(appearances: list[tuple[str, np.ndarray]], threshold: float) -> list[str]:
    visitors: list[Visitor] = []
    out = []
    for _, emb in appearances:
        v, score = closest(emb, visitors)
        if v is None or score < threshold:
            v = Visitor(f"v{len(visitors):06x}", 0.0, 0.0, 0, [])
            visitors.append(v)
        v.appearances += 1
        if len(v.embeddings) < MAX_EMBEDDINGS:
            v.embeddings.append(pack_vector(emb))
        out.append(v.id)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+", help="VAL (and TRAIN): one folder per person")
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--thresholds", default="0.92,0.93,0.94,0.95,0.96")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/edgeface-eval-cache"))
    args = ap.parse_args(argv)
    recognizer = build_recognizer(Config())
    appearances: list[tuple[str, np.ndarray]] = []
    for folder in args.folders:
        found = photos(folder)
        people = sorted(found)
        records = embed_folder(recognizer, [f for p in people for f in found[p]], args.cache)
        i = 0
        for p in people:
            for r in records[i:i + len(found[p])]:
                if r["largest"] >= 0:
                    appearances.append((p, r["plain"][r["largest"]]))
            i += len(found[p])
    rng = np.random.default_rng(args.seed)
    chosen = set(rng.choice(sorted({p for p, _ in appearances}), args.people, replace=False))
    appearances = [a for a in appearances if a[0] in chosen]
    order = rng.permutation(len(appearances))
    appearances = [appearances[i] for i in order]
    print(f"{len(appearances)} appearances of {len(chosen)} people")
    print("threshold  kept   merged ids  visitors per person")
    for t in (float(x) for x in args.thresholds.split(",")):
        ids = group(appearances, t)
        by_person: dict[str, list[str]] = {}
        for (p, _), v in zip(appearances, ids):
            by_person.setdefault(p, []).append(v)
        kept = sum(Counter(v).most_common(1)[0][1] for v in by_person.values()) / len(ids)
        owners: dict[str, set[str]] = {}
        for (p, _), v in zip(appearances, ids):
            owners.setdefault(v, set()).add(p)
        merged = sum(len(o) > 1 for o in owners.values())
        split = np.mean([len(set(v)) for v in by_person.values()])
        print(f"{t:9.3f}  {kept:.3f}  {merged:>10}  {split:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
