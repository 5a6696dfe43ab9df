#!/usr/bin/env python3
"""How often the still-image path (`edgeface enroll` / `identify`) finds no face, or more than one.

usage: python tools/count_faces.py FOLDER... [--set detection.KEY=VALUE ...] [--list]

Every picture under each FOLDER (recursively) goes through Recognizer.find with the default config
(changed by --set, a YAML value checked as in a config file: `--set detection.still_hog_min_score=null`
for the cascades alone).
Prints one JSON line per folder: pictures, no face, more than one face; --list adds the pictures
with no face.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeface.config import ConfigError, parse_settings  # noqa: E402
from edgeface.recognition.pipeline import build_recognizer  # noqa: E402
from edgeface.vision.images import IMAGE_SUFFIXES  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--list", action="store_true", help="name the pictures with no face")
    a = ap.parse_args(argv)
    try:
        cfg = parse_settings(a.set)
    except ConfigError as e:
        ap.error(str(e))
    recognizer = build_recognizer(cfg)
    for folder in a.folders:
        if not folder.is_dir():
            ap.error(f"{folder}: not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        none, many = [], 0
        for i, path in enumerate(files, 1):
            image = cv2.imread(str(path))
            if image is None:
                print(f"{path}: not a picture cv2 can read, skipped", file=sys.stderr)
                continue
            found = recognizer.find(image)
            none += [str(path)] if not found else []
            many += len(found) > 1
            if i % 100 == 0:
                print(f"{folder}: {i}/{len(files)}", file=sys.stderr)
        out = {"folder": str(folder), "pictures": len(files), "no_face": len(none), "more_than_one": many}
        print(json.dumps({**out, "no_face_pictures": none} if a.list else out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
