"""Enrolment: photos of one person -> their largest face's embedding each -> the gallery.

One function, used by `edgeface enroll` and the demo. A photo that cannot be used is reported
and skipped; the good photos of the same batch still land, all in one transaction.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2

from edgeface.detect import largest
from edgeface.gallery import Enrolment, Gallery
from edgeface.images import DEFAULT_MAX_PIXELS, MAX_SIDE, ImageError, read_photo
from edgeface.pipeline import Recognizer

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
           negative: bool = False) -> EnrolReport:
    """Add ``name``'s largest face from each of ``files`` (``name`` already checked by
    gallery.check_name). ``say`` hears one line per photo used, ``warn`` one per photo skipped
    or doubtful. A photo already enrolled as someone else, larger than ``max_pixels`` (0/None:
    no cap), unreadable or without a face is skipped; nothing is written when no photo gave a face.
    negative=True: the faces are marked "not ``name``" instead (``name`` must be enrolled)."""
    spec = recognizer.embedder.spec
    gallery.check_model(spec.model_id)  # before minutes of work, not after
    enrolments: list[Enrolment] = []
    skipped = 0
    for n, path in enumerate(files, 1):
        prefix = f"[{n}/{len(files)}] {path}"
        try:
            photo = read_photo(path, max_pixels or None, MAX_SIDE)
            first = gallery.owner(photo.sha256)
            if first is not None and first != name and not negative:
                raise ImageError(f"{path}: this photo is already enrolled as {first!r}")
            detections = recognizer.find(photo.image)
            face = largest(detections)
            if face is None:
                raise ImageError(f"{path}: no face found")
            vector = recognizer.embed(photo.image, [face])[0]
        except (ImageError, cv2.error, MemoryError, ValueError) as e:  # one bad photo never costs the rest
            warn(f"{prefix}: skipped: {str(e).split(': ', 1)[-1]}")
            skipped += 1
            continue
        if len(detections) > 1:
            warn(f"{prefix}: warning: {len(detections)} faces, using the largest")
        enrolments.append(Enrolment(vector, photo.sha256, str(path)))
        box = [round(v / photo.scale) for v in face.box()]
        say(f"{prefix}: face at {box}, angle {face.angle:+.0f}")
    write = gallery.add_negatives if negative else gallery.add
    added = write(name, enrolments, spec.model_id) if enrolments else 0
    return EnrolReport(len(files), len(enrolments), added, skipped)
