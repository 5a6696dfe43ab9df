"""`edgeface identify PHOTO... [--json]`: name every face in photos."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from edgeface import exitcodes
from edgeface.cli.common import (
    add_config_option,
    add_gallery_option,
    add_max_pixels_option,
    add_model_options,
    config_from_args,
    err,
)

if TYPE_CHECKING:
    from edgeface.recognition.pipeline import Face


def face_record(face: Face, scale: float = 1.0, shape: tuple[int, ...] | None = None) -> dict:
    """scale: of the decoded image to the original (boxes are reported in original pixels).
    shape: the decoded image's; the box is clipped to the picture (a face in a tight crop can
    reach past its edges)."""
    x, y, w, h = face.detection.box()
    if shape is not None:
        x0, y0 = max(x, 0), max(y, 0)
        x, y, w, h = x0, y0, max(min(x + w, shape[1]) - x0, 0), max(min(y + h, shape[0]) - y0, 0)
    box = [round(v / scale) for v in (x, y, w, h)]
    return {"name": face.name, "score": round(float(face.score), 4), "box": box,
            "angle": round(float(face.detection.angle), 1)}


def cmd_identify(args: argparse.Namespace) -> int:
    from edgeface.recognition.pipeline import build_recognizer, describe_runtime
    from edgeface.store.gallery import Gallery
    from edgeface.vision.images import MAX_SIDE, ImageError, read_photo

    cfg = config_from_args(args)
    with Gallery(cfg.gallery, create=False) as gallery:
        recognizer = build_recognizer(cfg, gallery)
    print(f"edgeface: embedder: {describe_runtime(recognizer.embedder)}", file=sys.stderr)  # --json stays as it is
    if recognizer.matcher is None or len(recognizer.matcher) == 0:
        print("edgeface: warning: the gallery is empty; every face will be unknown", file=sys.stderr)
    failed = 0
    for path in args.images:
        try:
            photo = read_photo(path, cfg.max_pixels or None, MAX_SIDE)
        except ImageError as e:
            failed += 1
            err(str(e))
            if args.json:
                print(json.dumps({"image": path, "faces": [], "error": str(e)}, allow_nan=False), flush=True)
            continue
        faces = [face_record(f, photo.scale, photo.image.shape) for f in recognizer.recognize(photo.image)]
        if args.json:
            print(json.dumps({"image": path, "faces": faces}, allow_nan=False), flush=True)
        else:
            described = ", ".join(
                f"{f['name'] or 'unknown'} ({f['score']:.2f}) at {f['box']} angle {f['angle']:+.0f}" for f in faces
            )
            print(f"{path}: {described or 'no face'}", flush=True)
    return exitcodes.FAIL if failed else exitcodes.OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("identify", help="name the faces in photos",
                       description="Find and name every face in each photo. With --json, one line per photo: "
                       '{"image": path, "faces": [{"name": str|null, "score": float, "box": [x,y,w,h], '
                       '"angle": float}]}; box is the axis-aligned bound in original pixels, angle the roll in '
                       "degrees, name null for someone not in the gallery. Exits 1 if any photo could not be read.")
    i.add_argument("images", metavar="IMAGE", nargs="+")
    i.add_argument("--json", action="store_true", help="one JSON object per image per line")
    i.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity needed to name a face (default: the model's calibrated threshold)")
    add_gallery_option(i)
    add_config_option(i)
    add_max_pixels_option(i)
    add_model_options(i)
    i.set_defaults(func=cmd_identify)
