"""One person's photos in the gallery: list them, and remove some without re-enrolling the rest.

A photo is named the way a user knows it: the file itself (its sha256 is what the gallery
keeps), the path it was enrolled from, or the first 8 or more hex digits of its sha256 (as
`edgeface gallery list NAME` shows them). The same call removes "not them" marks, so a wrong
`enroll --not` can be taken back. With a fleet, the removals reach every device as tombstones.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from edgeface.store.gallery import Gallery, GalleryError, PhotoRow

__all__ = ["PhotoRow", "Removed", "photos", "remove_photos", "resolve"]

SHA_PREFIX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class Removed:
    faces: int
    negatives: int
    person_gone: bool  # their last face went, so they did too


def _person_id(gallery: Gallery, name: str) -> int:
    """The person ``name`` as stored, else as check_name writes it (trimmed, NFC: a name typed
    decomposed, as macOS keyboards may, is the same name)."""
    try:
        pid = gallery.person_id(name)
    except GalleryError:  # not stored as typed, and not a name check_name takes
        pid = None
    if pid is None:
        raise GalleryError(f"no person named {name!r} in {gallery.path}")
    return pid


def photos(gallery: Gallery, name: str) -> list[PhotoRow]:
    """A person's photos, then the faces marked as not them, oldest first."""
    return gallery.photo_rows(_person_id(gallery, name))


def photo_sha(ref: str) -> str | None:
    """The sha256 of ``ref`` if it is a readable file here."""
    path = Path(ref)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def resolve(rows: list[PhotoRow], ref: str) -> set[str]:
    """The one sha256 among ``rows`` that ``ref`` names; GalleryError if none, or if ``ref``
    could be several (a prefix, or a source several photos share: "fleet:DEVICE", two files
    enrolled as a.jpg): a removal takes back exactly the photo meant, or nothing."""
    sha = photo_sha(ref)
    hits = {r.sha256 for r in rows if r.sha256 == sha} if sha else set()
    if not hits:  # a file changed since, or gone: the path it was enrolled from
        hits = {r.sha256 for r in rows if _nfc(r.source_name) == _nfc(ref)}
        if len(hits) > 1:
            raise GalleryError(f"{ref}: {len(hits)} photos were enrolled as {ref}; name one by the first digits of "
                               f"its sha256 ({', '.join(sorted(h[:12] for h in hits)[:5])}"
                               f"{', ...' if len(hits) > 5 else ''}; see `edgeface gallery list NAME`)")
    if not hits and SHA_PREFIX.fullmatch(ref):
        hits = {r.sha256 for r in rows if r.sha256.startswith(ref)}
        if len(hits) > 1:
            raise GalleryError(f"{ref}: {len(hits)} photos start with these digits; give more of them")
    if not hits:
        raise GalleryError(f"{ref}: not one of this person's photos (see `edgeface gallery list NAME`)")
    return hits


def remove_photos(gallery: Gallery, name: str, refs: list[str]) -> Removed:
    """Remove the named photos of ``name`` (their faces, and "not them" marks) in one
    transaction: if any ref names nothing, nothing is removed. Removing a person's last face
    removes the person, as `gallery remove NAME` would."""
    rows = photos(gallery, name)
    shas: set[str] = set()
    for ref in refs:
        shas |= resolve(rows, ref)
    return Removed(*gallery.remove_photo_rows(_person_id(gallery, name), shas))
