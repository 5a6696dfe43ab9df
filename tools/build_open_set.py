"""Build the bigger open set for tools/eval_open_set.py from Labeled Faces in the Wild (LFW).

Source: University of Massachusetts Amherst, "Labeled Faces in the Wild" (vis-www.cs.umass.edu/lfw,
mirrored in the public GitHub repository umass-vis-lfw/umass-vis-lfw.github.io, folder
images/<Name>/<Name>_NNNN.jpg). LFW carries no licence file: it is published as a public research
benchmark (news photos of public figures). It is used here only to measure, and no photo is ever
copied into this repository: the set is built under OUT (default /work/data/openset).

    git --git-dir MIRROR archive HEAD images | tar -x -C /work/data/lfw    # MIRROR: the repo's git dir
    python tools/build_open_set.py /work/data/lfw/images [OUT] [--people 0] [--photos 10]

People with at least --photos photos are taken (sorted by name), except the people of the
held-out set of issue 24, so nothing here is tuned on them. Each person's first half of photos
goes to train/ (enrolment), the second half to val/ (probes). Three variants, as five-celebs had:
- full/: the photos as they are (250x250, the face in the middle, often other faces around it);
- crop/: 112x112 tight crops with ArcFace's framing (eye centres at (38.3, 51.7) and (73.5, 51.5)),
  found by edgeface's own detector and landmarks, grey (128) where the crop reaches past the photo;
- canvas/: the same crops centred on a 160x160 grey canvas (crops as other systems export them).
A photo where no face is found has no crop (it stays in full/).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from edgeface.config import Config
from edgeface.recognition.pipeline import build_recognizer
from edgeface.vision.detect import largest
from edgeface.vision.landmarks import Aligner, similarity_transform

# The held-out set of issue 24 (celebrities sampled from Glint360k): left out of this set.
HELD_OUT = {
    "Barack_Obama", "Daniel_Radcliffe", "Drew_Barrymore", "Gwyneth_Paltrow", "Halle_Berry", "Hugh_Jackman",
    "Hugh_Laurie", "James_Spader", "Jennifer_Aniston", "Jennifer_Lopez", "Jessica_Alba", "Kate_Winslet",
    "Keanu_Reeves", "Keira_Knightley", "Leonardo_DiCaprio", "Lindsay_Lohan", "Mark_Ruffalo", "Miley_Cyrus",
    "Robert_Downey_Jr", "Simon_Cowell", "Tina_Fey", "Tom_Hanks", "Victoria_Beckham", "Will_Smith",
}
ARCFACE_EYES = np.array([(38.2946, 51.6963), (73.5318, 51.5014)])
CROP = 112
CANVAS = 160


def tight_crop(image: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """112x112 crop placing the eye centres where ArcFace-style exports put them."""
    eyes = np.array([points5[0:2].mean(axis=0), points5[2:4].mean(axis=0)])
    eyes = eyes[np.argsort(eyes[:, 0])]  # the eye on the image's left first
    a, t = similarity_transform(eyes, ARCFACE_EYES)
    m = np.hstack([a, t[:, None]])
    return cv2.warpAffine(image, m, (CROP, CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(128, 128, 128))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="LFW's images/ folder (one folder per person)")
    ap.add_argument("out", type=Path, nargs="?", default=Path("/work/data/openset"))
    ap.add_argument("--photos", type=int, default=10, help="photos per person (people with fewer are left out)")
    ap.add_argument("--people", type=int, default=0, help="at most this many people (0: all that qualify)")
    args = ap.parse_args(argv)
    people = [p for p in sorted(args.source.iterdir()) if p.is_dir() and p.name not in HELD_OUT
              and len(list(p.glob("*.jpg"))) >= args.photos]
    people = people[: args.people or None]
    recognizer = build_recognizer(Config())
    aligner = Aligner()
    no_face = 0
    for n, person in enumerate(people, 1):
        files = sorted(person.glob("*.jpg"))[: args.photos]
        half = len(files) // 2
        for i, f in enumerate(files):
            split = "train" if i < half else "val"
            image = cv2.imread(str(f))
            if image is None:
                print(f"unreadable: {f}", file=sys.stderr)
                continue
            folders = {v: args.out / v / split / person.name for v in ("full", "crop", "canvas")}
            for folder in folders.values():
                folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folders["full"] / f.name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            face = largest(recognizer.find(image))
            if face is None:
                no_face += 1
                continue
            crop = tight_crop(image, aligner.landmarks(image, face))
            cv2.imwrite(str(folders["crop"] / f.with_suffix(".png").name), crop)
            canvas = np.full((CANVAS, CANVAS, 3), 128, np.uint8)
            o = (CANVAS - CROP) // 2
            canvas[o:o + CROP, o:o + CROP] = crop
            cv2.imwrite(str(folders["canvas"] / f.with_suffix(".png").name), canvas)
        print(f"[{n}/{len(people)}] {person.name}", file=sys.stderr)
    print(f"{len(people)} people, {args.photos} photos each, {no_face} photos without a face (no crop) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
