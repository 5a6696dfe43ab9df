"""Default file locations shared by the config and the commands that run without one, and the
shipped models' files."""
from __future__ import annotations

import os
from pathlib import Path


def default_gallery_path() -> Path:
    """$EDGEFACE_GALLERY, else the systemd StateDirectory, else $XDG_DATA_HOME/edgeface/gallery.db.

    `edgeface enroll` and the daemon's config share this default, so enrolling and running agree
    without either naming the file.
    """
    if os.environ.get("EDGEFACE_GALLERY"):
        return Path(os.environ["EDGEFACE_GALLERY"])
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "gallery.db"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "edgeface" / "gallery.db"


def shipped_file(name: str) -> Path:
    """A file of models/: inside the installed wheel (edgeface/models/), else the source tree's."""
    package = Path(__file__).resolve().parents[1]  # edgeface/
    for folder in (package / "models", package.parent / "models"):
        if (folder / name).is_file():
            return folder / name
    return package.parent / "models" / name
