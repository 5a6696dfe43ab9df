"""The gallery: enrolled people and their face embeddings, in one SQLite file.

WAL mode lets the daemon read while `edgeface enroll` writes. Every embedding records the
model that made it (sha256 of the .tflite): vectors from different models are not
comparable, so a gallery refuses to mix them.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_name TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (person_id, source_sha256)
);
"""


class GalleryError(RuntimeError):
    """The gallery cannot be used as asked; the message says why and what to do."""


def default_gallery_path() -> Path:
    """$EDGEFACE_GALLERY, else the systemd StateDirectory, else $XDG_DATA_HOME/edgeface/gallery.db."""
    if os.environ.get("EDGEFACE_GALLERY"):
        return Path(os.environ["EDGEFACE_GALLERY"])
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "gallery.db"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "edgeface" / "gallery.db"


@dataclass(frozen=True)
class Person:
    name: str
    embeddings: int
    created: float


@dataclass(frozen=True)
class Enrolment:
    """One face to add: its vector and the photo it came from."""

    vector: np.ndarray
    source_sha256: str
    source_name: str


class Gallery:
    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise GalleryError(f"gallery not found: {self.path} (enrol someone first: edgeface enroll NAME PHOTO...)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.db:
                self.db.executescript(SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as e:
            raise GalleryError(f"{self.path} is not an edgeface gallery: {e}") from None

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- model bookkeeping -------------------------------------------------------------
    def model_id(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='model_id'").fetchone()
        return row[0] if row else None

    def check_model(self, model_id: str) -> None:
        """Refuse a model other than the one that made the gallery's embeddings."""
        have = self.model_id()
        if have is not None and have != model_id:
            raise GalleryError(
                f"gallery {self.path} was enrolled with another model (sha256 {have[:12]}, this one is "
                f"{model_id[:12]}); embeddings of different models cannot be compared. Re-enrol into a new "
                f"gallery (edgeface enroll NAME PHOTO... --gallery NEW.db) or run with the model that made it."
            )

    # -- reading ---------------------------------------------------------------------
    def version(self) -> int:
        """Changes whenever any connection commits a write: the daemon polls it to reload."""
        # SQLite's own data_version only sees *other* connections' writes; a stamp stored in
        # the database changes for every writer, this process included.
        rows = self.db.execute("SELECT value FROM meta WHERE key='stamp'").fetchall()
        return int(rows[0][0]) if rows else 0

    def people(self) -> list[Person]:
        rows = self.db.execute(
            "SELECT p.name, COUNT(e.id), p.created FROM people p LEFT JOIN embeddings e ON e.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name"
        ).fetchall()
        return [Person(*r) for r in rows]

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(name per row, float32 matrix of embeddings), for matching."""
        rows = self.db.execute(
            "SELECT p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id ORDER BY e.id"
        ).fetchall()
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        names = [r[0] for r in rows]
        return names, np.stack([np.frombuffer(r[1], np.float32) for r in rows])

    # -- writing ---------------------------------------------------------------------
    @contextmanager
    def _write(self):
        """One transaction: either all of it lands or none of it does."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db
            self.db.execute(
                "INSERT INTO meta VALUES ('stamp', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )

    def add(self, name: str, enrolments: list[Enrolment], model_id: str) -> int:
        """Add faces for one person in one transaction; returns how many were new."""
        name = name.strip()
        if not name:
            raise GalleryError("a person's name cannot be empty")
        self.check_model(model_id)
        added = 0
        now = time.time()
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
            db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, now))
            (person_id,) = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            for e in enrolments:
                cur = db.execute(
                    "INSERT OR IGNORE INTO embeddings (person_id, vector, source_sha256, source_name, model_id, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (person_id, np.asarray(e.vector, np.float32).tobytes(), e.source_sha256, e.source_name, model_id, now),
                )
                added += cur.rowcount
        return added

    def remove(self, name: str) -> int:
        """Remove a person and their embeddings; returns embeddings removed. Unknown name raises."""
        with self._write() as db:
            row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise GalleryError(f"no person named {name!r} in {self.path}")
            (count,) = db.execute("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", row).fetchone()
            db.execute("DELETE FROM people WHERE id = ?", row)
            if not db.execute("SELECT 1 FROM embeddings LIMIT 1").fetchone():
                db.execute("DELETE FROM meta WHERE key = 'model_id'")  # empty again: any model may enrol
        return count

    # -- export / import ---------------------------------------------------------------
    def export(self) -> dict:
        rows = self.db.execute(
            "SELECT p.name, e.vector, e.source_sha256, e.source_name, e.model_id, e.created "
            "FROM embeddings e JOIN people p ON p.id = e.person_id ORDER BY p.name, e.id"
        ).fetchall()
        return {
            "format": "edgeface-gallery",
            "version": SCHEMA_VERSION,
            "model_id": self.model_id(),
            "embeddings": [
                {"name": n, "vector": np.frombuffer(v, np.float32).tolist(), "source_sha256": s,
                 "source_name": sn, "model_id": m, "created": c}
                for n, v, s, sn, m, c in rows
            ],
        }

    def import_(self, data: dict) -> int:
        """Merge an export into this gallery in one transaction; returns embeddings added."""
        if not isinstance(data, dict) or data.get("format") != "edgeface-gallery":
            raise GalleryError("not an edgeface gallery export (missing \"format\": \"edgeface-gallery\")")
        items = data.get("embeddings") or []
        models = {item.get("model_id") for item in items}
        if len(models) > 1:
            raise GalleryError("the export mixes embeddings of several models")
        if not items:
            return 0
        model_id = models.pop()
        self.check_model(model_id)
        added = 0
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
            for item in items:
                try:
                    name, vector = str(item["name"]), np.asarray(item["vector"], np.float32)
                    sha, source, created = str(item["source_sha256"]), str(item.get("source_name", "")), float(item.get("created", time.time()))
                except (KeyError, TypeError, ValueError) as e:
                    raise GalleryError(f"bad embedding record in export: {e}") from None
                db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, created))
                (pid,) = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
                cur = db.execute(
                    "INSERT OR IGNORE INTO embeddings (person_id, vector, source_sha256, source_name, model_id, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (pid, vector.tobytes(), sha, source, model_id, created),
                )
                added += cur.rowcount
        return added


def dump_export(data: dict, path: str | os.PathLike) -> None:
    """Write an export atomically: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
