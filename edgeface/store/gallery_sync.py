"""The gallery's operations for fleet sync and for one person's photos: part of the Gallery class
(a mixin, so gallery.py stays readable), so that every SQL statement on the gallery's tables
lives in the store. edgeface.fleet and edgeface.store.photos call these; neither writes SQL.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.store.names import check_name


@dataclass(frozen=True)
class LedgerEntry:
    """The newest version of one fleet record (a photo's face, or a "not them" mark) known here."""

    person: str
    version: int  # integer milliseconds; newest wins
    origin: str  # the device that made that version
    deleted: bool


@dataclass(frozen=True)
class PhotoRow:
    sha256: str
    source_name: str  # where it was enrolled from ("fleet:DEVICE" when another device sent it)
    negative: bool  # a face marked "not them", not one of theirs
    created: float


class SyncTables:
    """Mixed into Gallery: needs its db, _write, check_model, embedding_size, check_vector, person_id."""

    db: sqlite3.Connection
    path: Path

    # Gallery's own (declared here for type checkers; Gallery defines them)
    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def check_model(self, model_id: str) -> None:
        raise NotImplementedError

    def _check_vector(self, vector: Any, size: int | None, where: str) -> np.ndarray:
        raise NotImplementedError

    def embedding_size(self) -> int | None:
        raise NotImplementedError

    @staticmethod
    def forget_model_if_empty(db: sqlite3.Connection) -> None:
        raise NotImplementedError

    def person_id(self, name: str) -> int | None:
        """A person's row id: the name as stored first (names from before check_name existed), then as
        check_name makes it (a name it refuses raises GalleryError); None if nobody is called that."""
        row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT id FROM people WHERE name = ?", (check_name(name),)).fetchone()
        return int(row[0]) if row else None

    def checked_vector(self, vector: Any, where: str, size: int | None = None) -> np.ndarray:
        """``vector`` as float32 if it can be matched against this gallery's embeddings (or ``size``
        values, for a batch into an empty gallery), else GalleryError."""
        return self._check_vector(vector, size or self.embedding_size(), where)

    # -- the fleet ledger --------------------------------------------------------------
    def ledger(self) -> dict[str, LedgerEntry]:
        rows = self.db.execute("SELECT sha256, person, version, origin, deleted FROM fleet_ledger")
        return {key: LedgerEntry(person, int(v), origin, bool(gone)) for key, person, v, origin, gone in rows}

    def has_ledger(self) -> bool:
        return self.db.execute("SELECT 1 FROM fleet_ledger LIMIT 1").fetchone() is not None

    def note_ledger(self, entries: dict[str, LedgerEntry]) -> None:
        """Record versions this device published (the broker confirmed them), in one transaction."""
        with self._write() as db:
            for key, e in entries.items():
                self._upsert(db, key, e)

    @staticmethod
    def _upsert(db: sqlite3.Connection, key: str, e: LedgerEntry) -> None:
        db.execute("INSERT INTO fleet_ledger VALUES (?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET "
                   "person = excluded.person, version = excluded.version, origin = excluded.origin, "
                   "deleted = excluded.deleted", (key, e.person, e.version, e.origin, int(e.deleted)))

    def synced_faces(self) -> dict[str, tuple[str, bytes]]:
        """sha256 -> (person, vector bytes) of every enrolled face."""
        rows = self.db.execute(
            "SELECT e.source_sha256, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id")
        return {sha: (name, vector) for sha, name, vector in rows}

    def synced_negatives(self) -> list[tuple[str, str, bytes]]:
        """(photo sha256, person, vector bytes) of every "not them" face."""
        return list(self.db.execute(
            "SELECT n.source_sha256, p.name, n.vector FROM negatives n JOIN people p ON p.id = n.person_id"))

    def apply_faces(self, items: list[tuple[str, LedgerEntry, np.ndarray | None]], model_id: str) -> None:
        """Received versions, already checked newer than ours, in one transaction (with the ledger,
        so a crash never applies half of them): each photo's face now belongs to entry.person
        (moved from whoever had it), or is gone (a tombstone). People left with no face are removed."""
        size = self.embedding_size()
        checked = []
        for sha, entry, vector in items:
            if vector is not None:
                self.check_model(model_id)
                vector = self.checked_vector(vector, f"fleet record {sha[:12]}", size)
                size = vector.size
            checked.append((sha, entry, vector))
        with self._write() as db:
            for sha, entry, vector in checked:
                db.execute("DELETE FROM embeddings WHERE source_sha256 = ?", (sha,))
                if vector is not None:
                    pid = self._ensure_person(db, entry.person, model_id, vector.size)
                    db.execute("INSERT INTO embeddings (person_id, vector, source_sha256, source_name, model_id, "
                               "created) VALUES (?, ?, ?, ?, ?, ?)",
                               (pid, vector.tobytes(), sha, f"fleet:{entry.origin}", model_id, entry.version / 1000))
                self._upsert(db, sha, entry)
            gone = db.execute("DELETE FROM people WHERE id NOT IN (SELECT person_id FROM embeddings)").rowcount
            if gone:
                # their negatives went with them (ON DELETE CASCADE); the device that removed them
                # publishes the tombstones, so here they are only marked gone, at the version we had
                db.execute("UPDATE fleet_ledger SET deleted = 1 WHERE deleted = 0 AND length(sha256) > 64 "
                           "AND person NOT IN (SELECT name FROM people)")
            self.forget_model_if_empty(db)

    def apply_face(self, sha: str, entry: LedgerEntry, vector: np.ndarray | None, model_id: str) -> None:
        self.apply_faces([(sha, entry, vector)], model_id)

    def apply_negative(self, sha: str, key: str, entry: LedgerEntry, vector: np.ndarray | None,
                       model_id: str) -> bool:
        """A received "photo sha is not entry.person", already checked newer than ours. False
        (nothing done) when that person is not enrolled here yet. A photo enrolled as the
        person themselves stays theirs: the negative is noted but not kept."""
        pid = self.person_id(entry.person)
        if vector is not None:
            if pid is None:
                return False
            self.check_model(model_id)
            vector = self.checked_vector(vector, f"fleet record {sha[:12]}")
        with self._write() as db:
            if pid is not None:
                db.execute("DELETE FROM negatives WHERE person_id = ? AND source_sha256 = ?", (pid, sha))
                own = db.execute("SELECT 1 FROM embeddings WHERE person_id = ? AND source_sha256 = ?",
                                 (pid, sha)).fetchone()
                if vector is not None and not own:
                    db.execute("INSERT INTO negatives (person_id, vector, source_sha256, source_name, model_id, "
                               "created) VALUES (?, ?, ?, ?, ?, ?)",
                               (pid, vector.tobytes(), sha, f"fleet:{entry.origin}", model_id, entry.version / 1000))
            self._upsert(db, key, entry)
        return True

    def _ensure_person(self, db: sqlite3.Connection, name: str, model_id: str, size: int | None,
                       created: float | None = None) -> int:
        """Inside a write: the person's id, adding them (and the model's marks) if new. The one
        place people and the model are inserted."""
        db.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
        if size:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('embedding_size', ?)", (str(size),))
        db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)",
                   (name, time.time() if created is None else created))
        pid = self.person_id(name)
        assert pid is not None  # inserted just above, in this transaction
        return pid

    # -- one person's photos (edgeface.store.photos) -------------------------------------
    def photo_rows(self, person_id: int) -> list[PhotoRow]:
        """A person's photos, then the faces marked as not them, oldest first."""
        out: list[PhotoRow] = []
        for table, negative in (("embeddings", False), ("negatives", True)):
            rows = self.db.execute(f"SELECT source_sha256, source_name, created FROM {table} WHERE person_id = ? "
                                   "ORDER BY created, id", (person_id,))
            out += [PhotoRow(sha, source, negative, created) for sha, source, created in rows]
        return out

    def remove_photo_rows(self, person_id: int, shas: set[str]) -> tuple[int, int, bool]:
        """Remove these photos (faces and "not them" marks) of one person in one transaction;
        their last face gone, they go too. Returns (faces, negatives, person gone)."""
        faces = negatives = 0
        with self._write() as db:
            for sha in sorted(shas):
                faces += db.execute("DELETE FROM embeddings WHERE person_id = ? AND source_sha256 = ?",
                                    (person_id, sha)).rowcount
                negatives += db.execute("DELETE FROM negatives WHERE person_id = ? AND source_sha256 = ?",
                                        (person_id, sha)).rowcount
            gone = db.execute("SELECT 1 FROM embeddings WHERE person_id = ? LIMIT 1", (person_id,)).fetchone() is None
            if gone:
                db.execute("DELETE FROM people WHERE id = ?", (person_id,))
                self.forget_model_if_empty(db)
        return faces, negatives, gone

