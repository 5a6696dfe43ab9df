"""Enrolment: photos of one person -> their largest face's embedding each -> the gallery.

One function, used by `edgeface enroll` and the demo. A photo that cannot be used is reported
and skipped; the good photos of the same batch still land, all in one transaction.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeface.detect import largest
from edgeface.gallery import Enrolment, Gallery
from edgeface.images import ImageError, read_image
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
           say: Say = _quiet, warn: Say = _quiet) -> EnrolReport:
    """Add ``name``'s largest face from each of ``files``. ``say`` hears one line per photo
    used, ``warn`` one per photo skipped or doubtful. Nothing is written when no photo gave a face."""
    spec = recognizer.embedder.spec
    gallery.check_model(spec.model_id)  # before minutes of work, not after
    enrolments: list[Enrolment] = []
    skipped = 0
    for n, path in enumerate(files, 1):
        prefix = f"[{n}/{len(files)}] {path}"
        try:
            image, sha = read_image(path)
        except ImageError as e:
            warn(f"{prefix}: skipped: {str(e).split(': ', 1)[-1]}")
            skipped += 1
            continue
        detections = recognizer.detector.detect(image)
        face = largest(detections)
        if face is None:
            warn(f"{prefix}: skipped: no face found")
            skipped += 1
            continue
        if len(detections) > 1:
            warn(f"{prefix}: warning: {len(detections)} faces, using the largest")
        vector = recognizer.embed(image, [face])[0]
        enrolments.append(Enrolment(vector, sha, str(path)))
        say(f"{prefix}: face at {list(face.box())}, angle {face.angle:+.0f}")
    added = gallery.add(name, enrolments, spec.model_id) if enrolments else 0
    return EnrolReport(len(files), len(enrolments), added, skipped)
