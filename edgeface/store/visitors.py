"""Returning strangers: unknown faces grouped into visitors, kept on the device.

Each unknown appearance (one unknown identity event, with the mean embedding of its track) joins
the visitor it is closest to, when its similarity to one of that visitor's kept embeddings reaches
VISITOR_THRESHOLD, stricter than naming (models/README.md, "Returning strangers"); otherwise it
starts a new visitor with a short random id. A visitor remembers when it was first and last seen,
how many appearances, on which cameras, a few embeddings (the first MAX_EMBEDDINGS appearances),
and the ids of the event crops kept for it (events.keep_crops).

One owner-only JSON file (visitors.json beside the gallery), written to a temporary name and
renamed into place; visitors unseen for events.max_age are dropped whenever the file is read or
written. Nothing in it is ever published: only a visitor's id and appearance count go out with
the unknown identity message. `edgeface visitors` lists them; `edgeface enroll NAME --visitor ID`
enrols their crops, `edgeface enroll --not NAME --visitor ID` marks them as not NAME; either way
the visitor is then forgotten.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Cosine similarity at or above which an unknown appearance joins a visitor: stricter than naming
# (0.925). On LFW photos of 40 strangers arriving one at a time (tools/eval_visitors.py), 0.93
# gave one id to two people, 0.935 none, keeping 0.952 of returns on their visitor (0.896 at 0.94).
VISITOR_THRESHOLD = 0.935
# A second unknown track at the same camera within VISIT_GAP seconds of a visitor's last event is
# the same visit (a face lost and found again, the tracker splitting one face in two) when it is
# this alike: it takes that visitor's id and does not count as another appearance.
VISIT_GAP = 10.0
SAME_VISIT_THRESHOLD = 0.90
MAX_EMBEDDINGS = 8  # kept per visitor: enough views of a face, small enough to read on every event
MAX_VISITORS = 500  # the least recently seen go first past this
MAX_CROPS = 20  # event crop ids kept per visitor
ID_FORMAT = re.compile(r"^v[0-9a-f]{6}$")


class VisitorsError(RuntimeError):
    """A visitor that cannot be used as asked; the message says which and why."""


def visitors_path(gallery: str | os.PathLike) -> Path:
    return Path(gallery).parent / "visitors.json"


def pack_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, "<f2").tobytes()).decode()


def unpack_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f2").astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / max(float(np.linalg.norm(x)), 1e-12)


@dataclass
class Visitor:
    id: str
    first_seen: float  # epoch seconds
    last_seen: float
    appearances: int
    cameras: list[str]
    crops: list[str] = field(default_factory=list)  # event ids whose crops the event store keeps
    embeddings: list[str] = field(default_factory=list, repr=False)  # base64 float16, unit length

    def vectors(self) -> np.ndarray:
        return np.array([unpack_vector(e) for e in self.embeddings], np.float32).reshape(len(self.embeddings), -1)

    def summary(self) -> dict:
        out = asdict(self)
        del out["embeddings"]
        return out


def closest(embedding: np.ndarray, visitors: list[Visitor]) -> tuple[Visitor | None, float]:
    """The visitor one of whose embeddings is nearest to ``embedding``, and that similarity."""
    best, score = None, -1.0
    unit = _unit(embedding)
    for v in visitors:
        rows = v.vectors()
        if len(rows) and rows.shape[1] == len(unit):
            s = float((rows @ unit).max())
            if s > score:
                best, score = v, s
    return best, score


def _new_id(taken: set[str]) -> str:
    while True:
        candidate = f"v{secrets.token_hex(3)}"
        if candidate not in taken:
            return candidate


class VisitorBook:
    """The visitors file; safe for the daemon's camera threads (one lock) and a CLI reader."""

    def __init__(self, path: str | os.PathLike, max_age: float = 7 * 86400.0, model_id: str = "",
                 threshold: float = VISITOR_THRESHOLD, clock: Callable[[], float] = time.time):
        self.path, self.max_age, self.model_id = Path(path), float(max_age), model_id
        self.threshold, self.clock = float(threshold), clock
        self._lock = threading.Lock()
        self._counted: dict[tuple[str, int], str] = {}  # (camera, track id) -> visitor: one track, one appearance

    # -- the daemon ----------------------------------------------------------------------
    def see(self, embedding: np.ndarray, camera: str, track_id: int, t: float) -> tuple[Visitor, bool]:
        """One unknown track's event: (the visitor it joins or starts, whether this is a new
        appearance). A track announced unknown twice, or another track of the same visit
        (VISIT_GAP), is not a new appearance."""
        with self._lock:
            visitors = self._load()
            again = self._counted.get((camera, track_id))
            visitor = next((v for v in visitors if v.id == again), None) if again else None
            new_visit = False
            if visitor is None:
                visitor, score = closest(embedding, visitors)
                here = [v for v in visitors if camera in v.cameras and 0 <= t - v.last_seen <= VISIT_GAP]
                current, current_score = closest(embedding, here)
                if current is not None and current_score >= SAME_VISIT_THRESHOLD:
                    visitor = current  # the same visit, seen again
                elif visitor is None or score < self.threshold:
                    visitor = Visitor(_new_id({v.id for v in visitors}), t, t, 0, [])
                    visitors.append(visitor)
                    new_visit = True
                else:
                    new_visit = not (camera in visitor.cameras and 0 <= t - visitor.last_seen <= VISIT_GAP)
                if new_visit:
                    visitor.appearances += 1
                if len(visitor.embeddings) < MAX_EMBEDDINGS:
                    visitor.embeddings.append(pack_vector(_unit(embedding)))
                self._counted[(camera, track_id)] = visitor.id
            visitor.last_seen = max(visitor.last_seen, t)
            if camera not in visitor.cameras:
                visitor.cameras.append(camera)
            self._save(visitors)
            return visitor, new_visit

    def add_crop(self, visitor_id: str, event_id: str) -> None:
        with self._lock:
            visitors = self._load()
            for v in visitors:
                if v.id == visitor_id and event_id not in v.crops:
                    v.crops = (v.crops + [event_id])[-MAX_CROPS:]
                    self._save(visitors)
                    return

    # -- the CLI -------------------------------------------------------------------------
    def visitors(self) -> list[Visitor]:
        """Every visitor younger than max_age, most recently seen first."""
        with self._lock:
            return sorted(self._load(), key=lambda v: v.last_seen, reverse=True)

    def get(self, visitor_id: str) -> Visitor:
        if not ID_FORMAT.match(visitor_id):
            raise VisitorsError(f"visitor {visitor_id!r}: not a visitor id (they look like v3f9a1c; see edgeface "
                                "visitors)")
        for v in self.visitors():
            if v.id == visitor_id:
                return v
        raise VisitorsError(f"visitor {visitor_id}: not found in {self.path} (it may have aged out; see edgeface "
                            "visitors)")

    def forget(self, visitor_id: str) -> bool:
        """Drop a visitor (named now, or marked as not someone)."""
        with self._lock:
            visitors = self._load()
            kept = [v for v in visitors if v.id != visitor_id]
            if len(kept) == len(visitors):
                return False
            self._save(kept)
            return True

    # -- the file ------------------------------------------------------------------------
    def _load(self) -> list[Visitor]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("visitors: %s cannot be read (%s); starting afresh", self.path, e)
            return []
        if self.model_id and data.get("model_id") not in ("", self.model_id):
            return []  # embeddings of another model never mix
        now = self.clock()
        out = []
        for raw in data.get("visitors", []):
            try:
                v = Visitor(**raw)
            except TypeError:
                continue
            if now - v.last_seen <= self.max_age:
                out.append(v)
        return out

    def _save(self, visitors: list[Visitor]) -> None:
        visitors = sorted(visitors, key=lambda v: v.last_seen, reverse=True)[:MAX_VISITORS]
        body = json.dumps({"model_id": self.model_id, "visitors": [asdict(v) for v in visitors]}).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # strangers' faces: owner only
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
