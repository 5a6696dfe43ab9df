"""Enrolment: photos of one person -> their largest face's embedding each -> the gallery.

One function, used by `edgeface enroll` and the demo. A photo that cannot be used is reported
and skipped; the good photos of the same batch still land, all in one transaction.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.recognition.match import unit_rows
from edgeface.recognition.pipeline import Recognizer
from edgeface.store.gallery import Enrolment, Gallery
from edgeface.vision.chip import sharpness
from edgeface.vision.detect import at_box, largest
from edgeface.vision.images import DEFAULT_MAX_PIXELS, MAX_SIDE, ImageError, read_photo

# Enrolment refuses faces that would make poor references. Measured on five-celebs train photos
# shrunk until the face was N px (cosine of the embedding to the full-size one, median / 10th
# percentile): 24 px 0.949 / 0.946 (found in 11%), 32 px 0.969 / 0.934, 40 px 0.981 / 0.958,
# 48 px 0.987 / 0.967, 64 px 0.994 / 0.988. At 32 px a tenth of faces lose 0.066 or more, two thirds
# of the room between a typical right match (0.966) and the threshold (0.925): below 40 px a face is
# refused, below 48 px enrolment warns.
MIN_FACE_PX = 40
SMALL_FACE_PX = 48
# Sharpness (chip.sharpness) after a Gaussian blur of sigma 0/1/2/3/4 px: median 313/38/10/6.1/4.5;
# cosine to the sharp embedding, 10th percentile: 1/0.98/0.95/0.916/0.902. Every real five-celebs
# photo scores 12 or more, and 112 px face crops 7.4 or more: below 5 a face is refused as blurred.
MIN_SHARPNESS = 5.0

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class EnrolReport:
    files: int  # photos looked at
    faces: int  # photos that gave a face
    added: int  # faces new to the gallery (the rest were enrolled before)
    skipped: int  # photos that could not be used

    @property
    def already(self) -> int:
        return self.faces - self.added


def enroll(gallery: Gallery, recognizer: Recognizer, name: str, files: Sequence[str | os.PathLike],
           max_pixels: int | None = DEFAULT_MAX_PIXELS, say: Say = _quiet, warn: Say = _quiet,
           negative: bool = False, at: Sequence[tuple[int, int, int, int] | None] | None = None) -> EnrolReport:
    """Add ``name``'s largest face from each of ``files`` (``name`` already checked by
    gallery.check_name). ``say`` hears one line per photo used, ``warn`` one per photo skipped
    or doubtful. A photo already enrolled as someone else, larger than ``max_pixels`` (0/None:
    no cap), unreadable or without a face is skipped; nothing is written when no photo gave a face.
    negative=True: the faces are marked "not ``name``" instead (``name`` must be enrolled).
    ``at``: per file, the box (original pixels) of the face meant, or None for the largest; an
    event's crop can hold a neighbour's face beside the one the event was about."""
    spec = recognizer.embedder.spec
    gallery.check_model(spec.model_id)  # before minutes of work, not after
    enrolments: list[Enrolment] = []
    skipped = 0
    names, vectors = gallery.vectors(spec.embedding_size)
    known = (list(names), unit_rows(vectors.reshape(len(names), spec.embedding_size)))
    for n, path in enumerate(files, 1):
        prefix = f"[{n}/{len(files)}] {path}"
        try:
            photo = read_photo(path, max_pixels or None, MAX_SIDE)
            first = gallery.owner(photo.sha256)
            if first is not None and first != name and not negative:
                raise ImageError(f"{path}: this photo is already enrolled as {first!r}")
            detections = recognizer.find(photo.image)
            meant = at[n - 1] if at is not None else None
            if meant is None:
                face = largest(detections)
            else:
                x, y, w, h = (v * photo.scale for v in meant)
                face = at_box(detections, (x, y, w, h))
                if face is None and detections:
                    raise ImageError(f"{path}: the face at {list(meant)} was not found again")
            if face is None:
                raise ImageError(f"{path}: no face found")
            side = face.size / photo.scale
            if side < MIN_FACE_PX:
                raise ImageError(f"{path}: face too small ({side:.0f} px, needs {MIN_FACE_PX}): use a closer or "
                                 "larger photo")
            chips = recognizer.chips(photo.image, [face])
            sharp = sharpness(chips[0])
            if sharp < MIN_SHARPNESS:
                raise ImageError(f"{path}: face too blurred (sharpness {sharp:.1f}, needs {MIN_SHARPNESS:g})")
            vector = recognizer.embed_chips(chips)[0]
        except (ImageError, cv2.error, MemoryError, ValueError) as e:  # one bad photo never costs the rest
            warn(f"{prefix}: skipped: {str(e).split(': ', 1)[-1]}")
            skipped += 1
            continue
        if len(detections) > 1 and meant is None:
            warn(f"{prefix}: warning: {len(detections)} faces, using the largest")
        if side < SMALL_FACE_PX:
            warn(f"{prefix}: warning: small face ({side:.0f} px); a photo with the face {SMALL_FACE_PX} px or "
                 "larger makes a better reference")
        if not negative:
            closer = _closer_to_someone_else(known, name, vector, spec.threshold)
            if closer:
                warn(f"{prefix}: warning: {closer}")
            known = (known[0] + [name], np.vstack([known[1], unit_rows(vector)[None]]))
        enrolments.append(Enrolment(vector, photo.sha256, str(path)))
        box = [round(v / photo.scale) for v in face.box()]
        say(f"{prefix}: face at {box}, angle {face.angle:+.0f}")
    write = gallery.add_negatives if negative else gallery.add
    added = write(name, enrolments, spec.model_id) if enrolments else 0
    return EnrolReport(len(files), len(enrolments), added, skipped)


def _closer_to_someone_else(known: tuple[list[str], np.ndarray], name: str, vector: np.ndarray,
                            threshold: float) -> str:
    """Why a new photo of ``name`` may hurt ("" if it looks like them): it is closer to another
    enrolled person than to ``name``'s other photos (enrolled before, or earlier in this batch);
    for ``name``'s first photo, it would already be named as someone else (``threshold``)."""
    names, rows = known
    if not names:
        return ""
    sims = rows @ unit_rows(vector)
    own = max((s for n, s in zip(names, sims) if n == name), default=None)
    other_name, other = max(((n, s) for n, s in zip(names, sims) if n != name), key=lambda t: t[1],
                            default=(None, None))
    if other_name is None or other is None or other <= (threshold if own is None else own):
        return ""
    if own is None:
        return (f"this face would already be named {other_name} ({other:.3f}); check it shows {name}, and that "
                f"it is the largest face in the photo")
    return (f"closer to {other_name} ({other:.3f}) than to {name}'s other photos ({own:.3f}); check it shows "
            f"{name}, and that it is the largest face in the photo")
