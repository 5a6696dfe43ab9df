"""The one rule for a person's name, and the gallery's error type (edgeface.store.gallery re-exports both)."""
from __future__ import annotations

import unicodedata

NAME_MAX = 64  # characters; names go into logs, MQTT payloads and Home Assistant states
_NAME_FORMAT_OK = {"\u200c", "\u200d"}  # zero-width (non-)joiners: needed to spell names in some scripts


class GalleryError(RuntimeError):
    """The gallery cannot be used as asked; the message says why and what to do."""


def check_name(name: object) -> str:
    """The one rule for a person's name: returns it trimmed (NFC), or raises GalleryError saying why."""
    if not isinstance(name, str):
        raise GalleryError(f"a person's name must be text, got {type(name).__name__}")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise GalleryError("a person's name cannot be empty")
    if len(name) > NAME_MAX:
        raise GalleryError(f"a person's name can have at most {NAME_MAX} characters, got {len(name)} "
                           f"({name[:20]!r}...)")
    for ch in name:
        category = unicodedata.category(ch)
        if category in ("Zl", "Zp") or (category[0] == "C" and ch not in _NAME_FORMAT_OK):
            raise GalleryError(f"a person's name cannot contain control or invisible characters: {name!r} has "
                               f"U+{ord(ch):04X} ({unicodedata.name(ch, category)})")
    return name


def shown_name(name: str) -> str:
    """A stored name as it may be printed: names from before check_name existed are escaped."""
    try:
        return check_name(name)
    except GalleryError:
        return repr(name[:NAME_MAX]) + ("..." if len(name) > NAME_MAX else "")
