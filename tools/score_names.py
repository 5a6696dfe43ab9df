#!/usr/bin/env python3
"""Score per-frame names against a clip's truth.

usage: python tools/score_names.py RESULT.json CLIP.json

RESULT.json is what `edgeface bench --json` (or tools/baseline_face_recognition.py) prints;
CLIP.json is what ../shared/acceptance/make_clip.py writes beside the clip. A (frame, person)
appearance counts as named right when that person's name is among the frame's names (a person
shown twice needs their name twice); a name beyond the frame's truth counts as a wrong name.
"""
import argparse
import json
from collections import Counter


def score(names_per_frame, truth_per_frame):
    appearances = right = wrong = 0
    for names, truth in zip(names_per_frame, truth_per_frame):
        appearances += len(truth)
        named = sum((Counter(names) & Counter(truth)).values())
        right += named
        wrong += len(names) - named
    frames = min(len(names_per_frame), len(truth_per_frame))
    return {"frames": frames, "appearances": appearances, "named_right": right,
            "named_right_ratio": round(right / appearances, 4) if appearances else 0.0, "wrong_names": wrong}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result")
    ap.add_argument("truth")
    a = ap.parse_args()
    with open(a.result) as f:
        result = json.load(f)
    with open(a.truth) as f:
        truth = json.load(f)["frames"]
    s = score(result["names"], truth[: len(result["names"])])
    s["fps"] = result.get("fps")
    print(json.dumps(s))


if __name__ == "__main__":
    main()
