"""Recent identity events with their face crops, kept on the device for review and correction.

Off by default (`events: {keep_crops: true}`). The daemon stores each identity event's face as
a JPEG beside a small JSON record in one owner-only folder (by default `events/` beside the
gallery, in the service's state directory). Nothing here is ever published. The newest
`max_count` events younger than `max_age` seconds are kept; older ones go whenever an event is
stored or listed. An event's age is its distance from now either way, so events stamped while
the clock was far ahead age out too instead of outranking every new one.

A named event records its person's gallery key (Gallery.identities: the person's row, which a
rename keeps), so a person's events follow a rename or merge and go when the person does, by
whatever path (`gallery remove`, removing their last photo, a fleet removal the daemon applies):
see EventStore.follow.

Records are checked as they are read: one that is not what this module writes (a field
missing, "time": null, a box that is not four numbers) is deleted with its crop, as is a crop
whose record never got written (a full disk, a power cut) once it is a minute old.

Review: `edgeface events` lists them; `edgeface enroll NAME --event ID` adds an event's face to
NAME, and `edgeface enroll --not NAME --event ID` marks it as not NAME.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edgeface.config import EventsConfig
from edgeface.store.gallery import Gallery, GalleryError

log = logging.getLogger(__name__)

CROP_MARGIN = 1.0  # face-box sides added around the face: the crop is 3 boxes wide, so enroll finds it again
ID_FORMAT = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")  # fullmatch only: "$" lets a trailing newline in
MAX_RECORD_BYTES = 64 << 10  # records are ~250 bytes
MAX_CROP_BYTES = 16 << 20  # a crop of a 4K frame is a few MB: anything larger is not one of ours
FUTURE_SLACK_S = 60.0  # an event stamped further ahead than this was stamped by a wrong clock
ORPHAN_GRACE_S = 60.0  # a crop this old with no record lost it (the writer puts the record right after)


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
    person: str | None = None  # the person's gallery key (None: unknown, or kept before keys were)

    def face_in_crop(self) -> tuple[int, int, int, int]:
        if self.crop_box is not None:
            x, y, w, h = self.crop_box
            return x, y, w, h
        x, y, w, h = self.box  # the crop's corner, as face_crop cut it (clipped at the frame's top left)
        return x - max(0, x - round(w * CROP_MARGIN)), y - max(0, y - round(h * CROP_MARGIN)), w, h

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, event_id: str) -> Event:
        """The record of ``event_id``, checked field by field; ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}  # a newer version's extras
        if data.get("id") != event_id:
            raise ValueError(f"its id is {data.get('id')!r}")
        for key, ok in (("name", data.get("name") is None or isinstance(data.get("name"), str)),
                        ("camera", isinstance(data.get("camera"), str)),
                        ("score", _number(data.get("score"))), ("time", _number(data.get("time"))),
                        ("box", _box(data.get("box"))),
                        ("crop_box", data.get("crop_box") is None or _box(data.get("crop_box"))),
                        ("person", data.get("person") is None or isinstance(data.get("person"), str))):
            if not ok:
                raise ValueError(f"bad {key!r}: {data.get(key)!r:.40}")
        return cls(**data)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _box(v: object) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


People = dict[str, tuple[str, frozenset[str]]]  # Gallery.identities(): key -> (name, sha256s of their photos)


class EventsError(RuntimeError):
    """An event that cannot be used as asked; the message says which and why."""


class EventStore:
    """One folder of <id>.jpg + <id>.json pairs. Safe for one writer (the daemon) and readers
    (the CLI): every file is written to a temporary name and renamed into place. Within one
    process (the daemon's camera workers and its main thread) a lock keeps writes apart."""

    def __init__(self, folder: str | os.PathLike, max_count: int = 200, max_age: float = 7 * 86400.0,
                 clock: Callable[[], float] = time.time):
        self.folder, self.max_count, self.max_age, self.clock = Path(folder), max_count, max_age, clock
        self._lock = threading.RLock()
        self._people: People | None = None  # gallery key -> person, as of the last follow()
        self._keys: dict[str, str] = {}  # name -> gallery key, for add()
        self.undeletable: list[str] = []  # files the last prune or follow could not delete (read-only disk)

    # -- writing (the daemon) ------------------------------------------------------------
    def add(self, camera: str, name: str | None, score: float, box: tuple[int, int, int, int], t: float,
            frame: np.ndarray) -> Event | None:
        """Store one event's face crop (cut from ``frame`` around ``box``); None if nothing to cut.
        ``t``: wall-clock seconds, shown to people. Raises OSError (a full or read-only disk),
        leaving no crop without its record."""
        rect = crop_rect(frame.shape, box)
        if rect is None:
            return None
        x0, y0, x1, y1 = rect
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        with self._lock:
            self._make_folder()
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
            x, y, w, h = (int(v) for v in box)
            event = Event(f"{stamp}-{secrets.token_hex(3)}", name, round(float(score), 4), camera, float(t),
                          [x, y, w, h], [x - x0, y - y0, w, h], self._keys.get(name) if name is not None else None)
            jpg = self.folder / f"{event.id}.jpg"
            self._write(jpg, jpeg.tobytes())
            try:
                self._write(self.folder / f"{event.id}.json", json.dumps(event.as_json(), allow_nan=False).encode())
            except OSError:
                jpg.unlink(missing_ok=True)  # a crop without its record would never be pruned
                raise
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
        """Every kept event, newest first (old ones pruned first; if they cannot be, listed anyway)."""
        with self._lock:
            self.prune()
            return sorted(self._read_all()[0], key=lambda e: (e.time, e.id), reverse=True)

    def _read_all(self) -> tuple[list[Event], list[str]]:
        """(the events whose records are sound, the ids of records that are not)."""
        out, bad = [], []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            try:
                if path.stat().st_size > MAX_RECORD_BYTES:
                    raise ValueError(f"{path.stat().st_size} bytes: not a record this module wrote")
                out.append(Event.from_json(json.loads(path.read_bytes()), path.stem))
            except (OSError, ValueError, RecursionError) as e:
                log.warning("events: deleting the unusable record %s (%s)", path, e)
                bad.append(path.stem)
        return out, bad

    def crop(self, event_id: str) -> tuple[Path, Event]:
        """The JPEG of event ``event_id`` and its record; EventsError naming the id when there is none,
        or when the file there is not a face crop (checked before anything reads it whole)."""
        if not ID_FORMAT.fullmatch(event_id):
            raise EventsError(f"event {event_id!r}: not an event id (they look like 20261124T001002-3f9a1c; "
                              "see edgeface events)")
        path = self.folder / f"{event_id}.jpg"
        if not path.is_file():
            raise EventsError(f"event {event_id}: not found in {self.folder} (it may have aged out; see edgeface "
                              "events)")
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                magic = f.read(3)
            event = Event.from_json(json.loads((self.folder / f"{event_id}.json").read_bytes()), event_id)
        except (OSError, ValueError, RecursionError) as e:
            raise EventsError(f"event {event_id}: its record in {self.folder} cannot be read ({e})") from None
        if size > MAX_CROP_BYTES or magic != b"\xff\xd8\xff":
            what = f"{size / 2**20:.0f} MB" if size > MAX_CROP_BYTES else "not a JPEG"
            raise EventsError(f"event {event_id}: {path} is {what}: not a face crop this device kept")
        return path, event

    # -- deleting ------------------------------------------------------------------------
    @staticmethod
    def age(event: Event, now: float) -> float:
        """Seconds from now either way: an event stamped a year ahead is not new but wrong."""
        return abs(now - event.time)

    def prune(self) -> int:
        """Delete events past max_age, then the oldest past max_count, unusable records, and crops
        or temporary files left without a record; returns how many events. Events stamped more
        than FUTURE_SLACK_S ahead (the clock was wrong, then corrected) count as the oldest. Files
        it cannot delete (a read-only disk) are logged, listed in ``undeletable``, and left."""
        with self._lock:
            every, bad = self._read_all()
            now = self.clock()
            every.sort(key=lambda e: (e.time <= now + FUTURE_SLACK_S, e.time, e.id), reverse=True)
            doomed = [e.id for e in every if self.age(e, now) > self.max_age]
            kept = [e for e in every if self.age(e, now) <= self.max_age]
            doomed += [e.id for e in kept[self.max_count:]]
            self.undeletable = []
            for event_id in doomed + bad:
                self._delete(event_id)
            self._delete_leftovers(now)
            return len(doomed)

    def _delete_leftovers(self, now: float) -> None:
        """Crops without a record (a full disk or a power cut between the two) and temporary files."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            leftover = path.suffix == ".tmp" or (path.suffix == ".jpg"
                                                 and not (self.folder / f"{path.stem}.json").exists())
            if not leftover:
                continue
            try:
                if abs(now - path.stat().st_mtime) > ORPHAN_GRACE_S:  # younger: its writer may be mid-way
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            except OSError as e:
                self._cannot_delete(path, e)

    def follow(self, people: People) -> int:
        """Bring the events up to date with the gallery's people (Gallery.identities()): a renamed
        person's events take the new name; a person who is gone takes their events along, unless
        every photo of theirs is now one other person's (a merge, or a rename the fleet applied as
        a new person): then the events go to that person. The first call compares with nothing
        before it, so a gone person's events are deleted. Returns how many events were deleted."""
        with self._lock:
            before, self._people = self._people, dict(people)
            self._keys = {name: key for key, (name, _) in people.items()}
            by_photo = {sha: key for key, (_, photos) in people.items() for sha in photos}
            every, bad = self._read_all()
            self.undeletable = []
            deleted = 0
            for event in every:
                if event.name is None:
                    continue
                key = event.person if event.person is not None else self._keys.get(event.name)
                if key is not None and key not in people and before is not None and key in before:
                    heirs = {by_photo.get(sha) for sha in before[key][1]}
                    key = heirs.pop() if len(heirs) == 1 else None
                if key is None or key not in people:
                    self._delete(event.id)
                    deleted += 1
                elif key != event.person or people[key][0] != event.name:
                    self._rewrite(replace(event, person=key, name=people[key][0]))
            for event_id in bad:
                self._delete(event_id)
            return deleted

    def _rewrite(self, event: Event) -> None:
        try:
            self._write(self.folder / f"{event.id}.json", json.dumps(event.as_json(), allow_nan=False).encode())
        except OSError as e:
            self._cannot_delete(self.folder / f"{event.id}.json", e, "update")

    def _delete(self, event_id: str) -> None:
        for suffix in (".jpg", ".json"):
            path = self.folder / f"{event_id}{suffix}"
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                self._cannot_delete(path, e)

    def _cannot_delete(self, path: Path, e: OSError, what: str = "delete") -> None:
        if not self.undeletable:  # once per pass: a read-only folder fails for every file
            log.warning("events: cannot %s %s (%s)", what, path, e.strerror or e)
        self.undeletable.append(str(path))


def follow_gallery(store: EventStore, gallery: str | os.PathLike) -> None:
    """store.follow() the gallery file at ``gallery``, if there is one this user can read."""
    try:
        with Gallery(gallery, create=False) as g:
            people = g.identities()
    except (GalleryError, sqlite3.Error) as e:
        log.debug("events: not following the gallery %s (%s)", gallery, e)
        return
    store.follow(people)


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
