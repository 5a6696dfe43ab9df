"""Recent identity events with their face crops, kept on the device for review and correction.

Off by default (`events: {keep_crops: true}`). The daemon stores each identity event's face as
a JPEG beside a small JSON record in one owner-only folder (by default `events/` beside the
gallery, in the service's state directory). Nothing here is ever published. The newest
`max_count` events younger than `max_age` seconds are kept; older ones go whenever an event is
stored or listed, and a person's events go when the person is removed from the gallery.

Review: `edgeface events` lists them; `edgeface enroll NAME --event ID` adds an event's face to
NAME, and `edgeface enroll --not NAME --event ID` marks it as not NAME.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeface.config import EventsConfig

log = logging.getLogger(__name__)

CROP_MARGIN = 1.0  # face-box sides added around the face: the crop is 3 boxes wide, so enroll finds it again
ID_FORMAT = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$")


def events_folder(cfg: EventsConfig, gallery: str | os.PathLike) -> Path:
    return Path(cfg.folder) if cfg.folder else Path(gallery).parent / "events"


@dataclass(frozen=True)
class Event:
    id: str
    name: str | None  # None: an unknown face
    score: float
    camera: str
    time: float  # epoch seconds
    box: list[int]  # x, y, w, h of the face in the camera frame
    # ... and in the crop, which may hold a neighbour's face too (None: an event from before it was kept)
    crop_box: list[int] | None = None

    def face_in_crop(self) -> tuple[int, int, int, int]:
        if self.crop_box is not None:
            x, y, w, h = self.crop_box
            return x, y, w, h
        x, y, w, h = self.box  # the crop's corner, as face_crop cut it (clipped at the frame's top left)
        return x - max(0, x - round(w * CROP_MARGIN)), y - max(0, y - round(h * CROP_MARGIN)), w, h

    def as_json(self) -> dict:
        return asdict(self)


class EventsError(RuntimeError):
    """An event that cannot be used as asked; the message says which and why."""


class EventStore:
    """One folder of <id>.jpg + <id>.json pairs. Safe for one writer (the daemon) and readers
    (the CLI): every file is written to a temporary name and renamed into place."""

    def __init__(self, folder: str | os.PathLike, max_count: int = 200, max_age: float = 7 * 86400.0,
                 clock: Callable[[], float] = time.time):
        self.folder, self.max_count, self.max_age, self.clock = Path(folder), max_count, max_age, clock

    # -- writing (the daemon) ------------------------------------------------------------
    def add(self, camera: str, name: str | None, score: float, box: tuple[int, int, int, int], t: float,
            frame: np.ndarray) -> Event | None:
        """Store one event's face crop (cut from ``frame`` around ``box``); None if nothing to cut."""
        rect = crop_rect(frame.shape, box)
        if rect is None:
            return None
        x0, y0, x1, y1 = rect
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        self._make_folder()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
        x, y, w, h = (int(v) for v in box)
        event = Event(f"{stamp}-{secrets.token_hex(3)}", name, round(float(score), 4), camera, float(t),
                      [x, y, w, h], [x - x0, y - y0, w, h])
        self._write(self.folder / f"{event.id}.jpg", jpeg.tobytes())
        self._write(self.folder / f"{event.id}.json", json.dumps(event.as_json(), allow_nan=False).encode())
        self.prune()
        return event

    def _make_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # faces of everyone who came by: owner only, whatever umask said

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    # -- reading -------------------------------------------------------------------------
    def events(self) -> list[Event]:
        """Every kept event, newest first (old ones pruned first)."""
        self.prune()
        return self._read_all()

    def _read_all(self) -> list[Event]:
        out = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            try:
                data = json.loads(path.read_text())
                out.append(Event(**data))
            except (OSError, ValueError, TypeError) as e:
                log.warning("events: skipping unreadable %s (%s)", path, e)
        return sorted(out, key=lambda e: (e.time, e.id), reverse=True)

    def crop(self, event_id: str) -> tuple[Path, Event]:
        """The JPEG of event ``event_id`` and its record; EventsError naming the id when there is none."""
        if not ID_FORMAT.match(event_id):
            raise EventsError(f"event {event_id!r}: not an event id (they look like 20261124T001002-3f9a1c; "
                              "see edgeface events)")
        path = self.folder / f"{event_id}.jpg"
        if not path.is_file():
            raise EventsError(f"event {event_id}: not found in {self.folder} (it may have aged out; see edgeface "
                              "events)")
        try:
            event = Event(**json.loads((self.folder / f"{event_id}.json").read_text()))
        except (OSError, ValueError, TypeError) as e:
            raise EventsError(f"event {event_id}: its record in {self.folder} cannot be read ({e})") from None
        return path, event

    # -- deleting ------------------------------------------------------------------------
    def prune(self) -> int:
        """Delete events past max_age, then the oldest past max_count; returns how many."""
        every = self._read_all()
        now = self.clock()
        doomed = [e for e in every if now - e.time > self.max_age]
        kept = [e for e in every if e not in doomed]
        doomed += kept[self.max_count:]
        for event in doomed:
            self._delete(event.id)
        return len(doomed)

    def remove_person(self, name: str) -> int:
        """Delete every event named ``name`` (the person was removed from the gallery)."""
        doomed = [e for e in self._read_all() if e.name == name]
        for event in doomed:
            self._delete(event.id)
        return len(doomed)

    def _delete(self, event_id: str) -> None:
        for suffix in (".jpg", ".json"):
            (self.folder / f"{event_id}{suffix}").unlink(missing_ok=True)


def crop_rect(shape: tuple[int, ...], box: tuple[int, int, int, int] | list[int]
              ) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1: the face and CROP_MARGIN box sides around it, clipped to the frame: enough
    picture for the still-image sweep to find the face again when it is enrolled from the crop."""
    x, y, w, h = (int(v) for v in box)
    mx, my = int(round(w * CROP_MARGIN)), int(round(h * CROP_MARGIN))
    fh, fw = shape[:2]
    x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(fw, x + w + mx), min(fh, y + h + my)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def face_crop(frame: np.ndarray, box: tuple[int, int, int, int] | list[int]) -> np.ndarray | None:
    rect = crop_rect(frame.shape, box)
    if rect is None:
        return None
    x0, y0, x1, y1 = rect
    return np.ascontiguousarray(frame[y0:y1, x0:x1])
