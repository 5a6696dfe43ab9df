"""The gallery: enrolled people and their face embeddings, in one SQLite file.

WAL mode lets the daemon read while `edgeface enroll` writes. Every embedding records the
model that made it (sha256 of the .tflite): vectors from different models are not
comparable, so a gallery refuses to mix them.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.store.gallery_sync import LedgerEntry, PhotoRow, SyncTables
from edgeface.store.names import NAME_MAX, GalleryError, check_name, shown_name

# the fleet ledger's and photo listing's rows (defined with their SQL), and the name rule, as before
__all__ = ["NAME_MAX", "GalleryError", "LedgerEntry", "PhotoRow", "check_name", "shown_name"]

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
-- "this is not that person": faces a person must not be named for (edgeface enroll --not NAME)
CREATE TABLE IF NOT EXISTS negatives (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_name TEXT NOT NULL,
    model_id TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (person_id, source_sha256)
);
-- a photo's face by its sha256 (fleet records, gallery check, photo lookups): without it, each is a full scan
CREATE INDEX IF NOT EXISTS embeddings_by_photo ON embeddings (source_sha256);
-- fleet sync (edgeface.fleet.sync): the newest version of each photo this gallery has published or applied
CREATE TABLE IF NOT EXISTS fleet_ledger (
    sha256 TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    version REAL NOT NULL,
    origin TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
"""

# fleet ledger versions were seconds (floats) before they were integer milliseconds: once per gallery
LEDGER_MS = ("UPDATE fleet_ledger SET version = round(version * 1000) WHERE NOT EXISTS "
             "(SELECT 1 FROM meta WHERE key = 'ledger_ms'); INSERT OR IGNORE INTO meta VALUES ('ledger_ms', '1');")


class GalleryMissing(GalleryError):
    """Gallery(path, create=False) on a path with no file: the daemon waits for it to appear."""


# on a loaded board, another process (enroll, a fleet batch) may hold the write lock for a while
BUSY_TIMEOUT_S = 30.0
APPLICATION_ID = 0x45444746  # "EDGF" in PRAGMA application_id: marks a file as an edgeface gallery
TABLES = {"meta", "people", "embeddings", "negatives", "fleet_ledger"}
CORE_TABLES = {"meta", "people", "embeddings"}  # a gallery before negatives existed
log = logging.getLogger(__name__)


def _explain(path: Path, e: BaseException) -> str:
    """A SQLite/OS error as a sentence that says what to do."""
    code = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    if code.startswith("SQLITE_FULL") or "disk is full" in text or getattr(e, "errno", None) == errno.ENOSPC:
        return f"{path}: the disk is full ({e}); free space on {path.parent} and try again"
    if code.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN")) or isinstance(e, PermissionError) \
            or "readonly" in text or "unable to open" in text:
        if not _writable(path):
            return (f"{path}: permission denied: this user ({_user()}) cannot write the gallery or its folder "
                    f"(SQLite needs both, for the -wal/-shm files beside it). Run as the user that owns it "
                    f"(for the service: sudo -u edgeface ...) or fix the permissions.")
        return f"{path}: cannot open the gallery: {e}"
    if code.startswith("SQLITE_BUSY") or "locked" in text:
        return f"{path}: the gallery is locked by another process; try again"
    if code.startswith("SQLITE_IOERR") or "I/O error" in text:
        return f"{path}: I/O error ({e}); check the disk"
    return f"{path} is not an edgeface gallery: {e}"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid()) if hasattr(os, "geteuid") else "?"


def _writable(path: Path) -> bool:
    folder_ok = os.access(path.parent, os.W_OK | os.X_OK)
    return folder_ok and (not path.exists() or os.access(path, os.R_OK | os.W_OK))


@dataclass(frozen=True)
class Person:
    name: str
    embeddings: int
    created: float
    negatives: int = 0  # faces marked "not this person"


@dataclass(frozen=True)
class Enrolment:
    """One face to add: its vector and the photo it came from."""

    vector: np.ndarray
    source_sha256: str
    source_name: str


class Gallery(SyncTables):
    """One gallery file. create=False: a missing file raises GalleryMissing instead of being made."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise GalleryMissing(f"gallery not found: {self.path} "
                                     "(enrol someone first: edgeface enroll NAME PHOTO...)")
            self._create_file()
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error as e:
            raise GalleryError(_explain(self.path, e)) from None
        try:
            self._adopt()  # reads only, and refuses, before anything is written
            self._use_wal()
            self.db.execute("PRAGMA foreign_keys=ON")
            # one transaction: a process opening the file meanwhile (the daemon starting while
            # `enroll` makes the gallery) sees no tables or all of them, never half
            try:
                self.db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} INSERT OR IGNORE INTO meta VALUES "
                                      f"('schema', '{SCHEMA_VERSION}'); {LEDGER_MS} PRAGMA application_id = "
                                      f"{APPLICATION_ID}; COMMIT;")
            except sqlite3.Error:
                if self.db.in_transaction:
                    self.db.rollback()
                raise
        except GalleryError:
            self.db.close()
            raise
        except sqlite3.Error as e:
            self.db.close()
            raise GalleryError(_explain(self.path, e)) from None

    def _use_wal(self) -> None:
        """Switch the file to WAL (persistent, so once per gallery). SQLite answers a switch that
        meets another process's lock with SQLITE_BUSY at once, without its busy timeout (several
        processes opening a new gallery together: 1 round in 4 of six openers failed), so retry."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _create_file(self) -> None:
        """An empty file, owner-only (SQLite gives its -wal/-shm files the same mode)."""
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(mode=0o700, parents=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another process made it first
        except OSError as e:
            raise GalleryError(_explain(self.path, e)) from None

    def _adopt(self) -> None:
        """Refuse another program's database; an empty one or an edgeface gallery without the mark is ours."""
        (app_id,) = self.db.execute("PRAGMA application_id").fetchone()
        if app_id == APPLICATION_ID:
            return
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id == 0 and (not tables or CORE_TABLES <= tables <= TABLES):
            return
        what = f"application_id {app_id:#x}" if app_id else f"tables {', '.join(sorted(tables))}"
        raise GalleryError(f"{self.path} is not an edgeface gallery (it is another program's SQLite database: "
                           f"{what}); it was left untouched. Use another path for the gallery.")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
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

    def embedding_size(self) -> int | None:
        """Values per embedding: recorded at the first enrolment; older galleries: their usual vector size."""
        row = self.db.execute("SELECT value FROM meta WHERE key='embedding_size'").fetchone()
        if row:
            return int(row[0])
        row = self.db.execute(
            "SELECT length(vector) / 4 FROM embeddings GROUP BY length(vector) ORDER BY COUNT(*) DESC LIMIT 1"
        ).fetchone()
        return int(row[0]) if row else None

    def owner(self, source_sha256: str) -> str | None:
        """Who a photo (by sha256) is enrolled as, if anyone."""
        row = self.db.execute(
            "SELECT p.name FROM embeddings e JOIN people p ON p.id = e.person_id WHERE e.source_sha256 = ? LIMIT 1",
            (source_sha256,),
        ).fetchone()
        return row[0] if row else None

    # -- reading ---------------------------------------------------------------------
    def version(self) -> int:
        """Changes whenever any connection commits a write: the daemon polls it to reload."""
        # SQLite's own data_version only sees *other* connections' writes; a stamp stored in
        # the database changes for every writer, this process included.
        rows = self.db.execute("SELECT value FROM meta WHERE key='stamp'").fetchall()
        return int(rows[0][0]) if rows else 0

    def people(self) -> list[Person]:
        rows = self.db.execute(
            "SELECT p.name, (SELECT COUNT(*) FROM embeddings e WHERE e.person_id = p.id), p.created, "
            "(SELECT COUNT(*) FROM negatives n WHERE n.person_id = p.id) FROM people p ORDER BY p.name"
        ).fetchall()
        return [Person(*r) for r in rows]

    def identities(self) -> dict[str, tuple[str, frozenset[str]]]:
        """Every person as {key: (name, sha256s of their photos)}. A key names one person row for
        as long as it exists (a rename keeps it; the row's creation time keeps a reused row id
        from naming someone new): what the events store keys a person's crops by."""
        people: dict[str, tuple[str, set[str]]] = {}
        for pid, created, name, sha in self.db.execute(
                "SELECT p.id, p.created, p.name, e.source_sha256 FROM people p "
                "LEFT JOIN embeddings e ON e.person_id = p.id"):
            people.setdefault(f"{pid}@{created!r}", (name, set()))[1].update([sha] if sha is not None else [])
        return {key: (name, frozenset(shas)) for key, (name, shas) in people.items()}

    def vectors(self, size: int | None = None, negatives: bool = False) -> tuple[list[str], np.ndarray]:
        """(name per row, float32 matrix of embeddings), for matching; negatives=True: the faces
        marked "not NAME" instead, under NAME. See records."""
        names, _, matrix = self.records(size, negatives)
        return names, matrix

    def records(self, size: int | None = None, negatives: bool = False) -> tuple[list[str], list[str], np.ndarray]:
        """(name per row, photo file name per row, float32 matrix of embeddings).

        Rows that cannot be matched safely (another size than `size` or the gallery's, a value that
        is not finite, all zeros, a name check_name refuses: written by older versions or by hand)
        are left out with a warning, so one bad row never makes every score NaN or crashes matching.
        """
        size = size or self.embedding_size()
        table = "negatives" if negatives else "embeddings"
        rows = self.db.execute(
            f"SELECT p.name, e.vector, e.source_name FROM {table} e JOIN people p ON p.id = e.person_id ORDER BY e.id"
        ).fetchall()
        names, sources, kept, skipped = [], [], [], []
        for name, blob, source in rows:
            problem = None
            if not isinstance(blob, bytes) or len(blob) % 4 or len(blob) // 4 != size:
                problem = f"{len(blob) // 4 if isinstance(blob, bytes) else '?'} values, not {size}"
            else:
                vector = np.frombuffer(blob, np.float32)
                if not np.isfinite(vector).all():
                    problem = "values that are not finite"
                elif not vector.any():
                    problem = "all zeros"
                else:
                    try:
                        check_name(name)
                    except GalleryError as e:
                        problem = str(e)
            if problem:
                skipped.append(f"{shown_name(str(name))}: {problem}")
            else:
                names.append(name)
                sources.append(source)
                kept.append(vector)
        if skipped:
            log.warning("gallery %s: %d stored embedding(s) left out of matching (%s); remove and re-enrol "
                        "(edgeface gallery remove NAME)", self.path, len(skipped), "; ".join(skipped[:5]))
        if not kept:
            return [], [], np.zeros((0, size or 0), np.float32)
        return names, sources, np.stack(kept)

    # -- writing ---------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: either all of it lands or none of it does."""
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                self.db.execute(
                    "INSERT INTO meta VALUES ('stamp', '1') "
                    "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
        except sqlite3.Error as e:
            raise GalleryError(_explain(self.path, e)) from None

    def _check_vector(self, vector: Any, size: int | None, where: str) -> np.ndarray:
        try:
            with np.errstate(over="ignore"):  # 1e39 becomes inf in float32: refused just below
                v = np.asarray(vector, np.float32)
        except (TypeError, ValueError) as e:
            raise GalleryError(f"{where}: the vector is not a list of numbers ({e})") from None
        if v.ndim != 1 or v.size == 0:
            raise GalleryError(f"{where}: the vector must be a flat list of numbers, got shape {v.shape}")
        if size is not None and v.size != size:
            raise GalleryError(f"{where}: the vector has {v.size} values; this gallery's embeddings have {size}")
        if not np.isfinite(v).all():
            raise GalleryError(f"{where}: the vector has values that are not finite (NaN or infinity)")
        if not v.any():
            raise GalleryError(f"{where}: the vector is all zeros")
        return v

    def _check_owner(self, sha: str, name: str, where: str) -> None:
        first = self.owner(sha)
        if first is not None and first != name:
            raise GalleryError(f"{where}: this photo is already enrolled as {first!r}; one photo cannot name two "
                               f"people (remove it from {first!r} first: edgeface gallery remove)")

    def add(self, name: str, enrolments: list[Enrolment], model_id: str) -> int:
        """Add faces for one person in one transaction; returns how many were new."""
        name = check_name(name)
        self.check_model(model_id)
        size = self.embedding_size()
        rows = []
        for e in enrolments:
            where = f"{e.source_name}"
            vector = self._check_vector(e.vector, size, where)
            size = size or vector.size
            self._check_owner(e.source_sha256, name, where)
            rows.append((vector, e))
        added = 0
        now = time.time()
        with self._write() as db:
            person_id = self._ensure_person(db, name, model_id, size, now)
            for vector, e in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO embeddings"
                    " (person_id, vector, source_sha256, source_name, model_id, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (person_id, vector.tobytes(), e.source_sha256, e.source_name, model_id, now),
                )
                added += cur.rowcount
        return added

    def add_negatives(self, name: str, enrolments: list[Enrolment], model_id: str) -> int:
        """Mark faces as "not ``name``" in one transaction; returns how many were new. The person
        must be enrolled, and a photo of their own cannot be one of their negatives."""
        name = check_name(name)
        self.check_model(model_id)
        size = self.embedding_size()
        pid = self.person_id(name)
        if pid is None:
            raise GalleryError(f"no person named {name!r} in {self.path}: enrol them before marking faces "
                               f"as not them")
        rows = []
        for e in enrolments:
            vector = self._check_vector(e.vector, size, e.source_name)
            if self.owner(e.source_sha256) == name:
                raise GalleryError(f"{e.source_name}: this photo is enrolled as {name!r}; it cannot also be "
                                   f"marked as not {name!r}")
            rows.append(vector)
        added = 0
        now = time.time()
        with self._write() as db:
            for vector, e in zip(rows, enrolments):
                cur = db.execute(
                    "INSERT OR IGNORE INTO negatives"
                    " (person_id, vector, source_sha256, source_name, model_id, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (pid, vector.tobytes(), e.source_sha256, e.source_name, model_id, now),
                )
                added += cur.rowcount
        return added

    def remove(self, name: str) -> int:
        """Remove a person and their embeddings; returns embeddings removed. Unknown name raises.

        The name as stored is tried first, so a name written before check_name existed can still go.
        """
        with self._write() as db:
            pid = self.person_id(name)
            if pid is None:
                raise GalleryError(f"no person named {name!r} in {self.path}")
            (count,) = db.execute("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (pid,)).fetchone()
            db.execute("DELETE FROM people WHERE id = ?", (pid,))
            self.forget_model_if_empty(db)
        return count

    @staticmethod
    def forget_model_if_empty(db: sqlite3.Connection) -> None:
        """Inside a write: once the last face is gone, any model may enrol again."""
        if not db.execute("SELECT 1 FROM embeddings LIMIT 1").fetchone():
            db.execute("DELETE FROM meta WHERE key IN ('model_id', 'embedding_size')")

    def rename(self, old: str, new: str) -> tuple[int, bool]:
        """Give ``old``'s faces (and their "not them" faces) to ``new``, in one transaction.
        If ``new`` is already enrolled, the two become one person (a merge). Returns (faces
        moved, merged). Fleet sync then moves each photo's record to ``new`` on every device."""
        new = check_name(new)
        with self._write() as db:
            old_id = self.person_id(old)
            if old_id is None:
                raise GalleryError(f"no person named {old!r} in {self.path}")
            (count,) = db.execute("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (old_id,)).fetchone()
            new_id = self.person_id(new)
            if new_id is None:
                db.execute("UPDATE people SET name = ? WHERE id = ?", (new, old_id))
                return count, False
            if new_id == old_id:
                raise GalleryError(f"{old!r} is already called {new!r}")
            # OR IGNORE: a photo both already had (older galleries allowed it) stays once
            db.execute("UPDATE OR IGNORE embeddings SET person_id = ? WHERE person_id = ?", (new_id, old_id))
            db.execute("UPDATE OR IGNORE negatives SET person_id = ? WHERE person_id = ?", (new_id, old_id))
            # a merged photo of theirs cannot stay one of their "not them" faces
            db.execute("DELETE FROM negatives WHERE person_id = ? AND source_sha256 IN "
                       "(SELECT source_sha256 FROM embeddings WHERE person_id = ?)", (new_id, new_id))
            db.execute("DELETE FROM people WHERE id = ?", (old_id,))
        return count, True

    # -- export / import ---------------------------------------------------------------
    def export(self) -> dict:
        """Everything needed to rebuild the gallery elsewhere: embeddings, and the faces marked
        "not NAME" (``negatives``, left out when there are none)."""
        out: dict[str, Any] = {
            "format": "edgeface-gallery",
            "version": SCHEMA_VERSION,
            "model_id": self.model_id(),
        }
        for table in ("embeddings", "negatives"):
            rows = self.db.execute(
                "SELECT p.name, e.vector, e.source_sha256, e.source_name, e.model_id, e.created "
                f"FROM {table} e JOIN people p ON p.id = e.person_id ORDER BY p.name, e.id"
            ).fetchall()
            if rows or table == "embeddings":
                out[table] = [
                    {"name": n, "vector": np.frombuffer(v, np.float32).tolist(), "source_sha256": s,
                     "source_name": sn, "model_id": m, "created": c}
                    for n, v, s, sn, m, c in rows
                ]
        return out

    def import_(self, data: Any, embedding_size: int | None = None) -> int:
        """Merge an export into this gallery in one transaction; returns embeddings added.

        Every record is checked first (name rule, vector size and values, photo not under another
        person; a negative's person enrolled here or in the export); on any error nothing is
        written. embedding_size: the model's (from its sidecar); without it, the gallery's own
        size, else the records must agree among themselves.
        """
        if not isinstance(data, dict) or data.get("format") != "edgeface-gallery":
            raise GalleryError("not an edgeface gallery export (missing \"format\": \"edgeface-gallery\")")
        if data.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise GalleryError(f"export version {data.get('version')!r}: this edgeface reads version {SCHEMA_VERSION}")
        tables = {table: data.get(table, []) for table in ("embeddings", "negatives")}
        for table, items in tables.items():
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise GalleryError(f"\"{table}\" must be a list of records ({{\"name\": ..., \"vector\": [...], ...}})")
        if not tables["embeddings"]:
            return 0
        every = tables["embeddings"] + tables["negatives"]
        models = {m for m in [data.get("model_id"), *(item.get("model_id") for item in every)] if m is not None}
        if not models:
            raise GalleryError("the export has no \"model_id\": cannot tell which model made its embeddings")
        if len(models) > 1:
            raise GalleryError("the export mixes embeddings of several models")
        model_id = models.pop()
        if not isinstance(model_id, str) or not re.fullmatch(r"[0-9a-f]{64}", model_id):
            raise GalleryError(f"\"model_id\" must be the model's sha256 (64 hex digits), got {model_id!r}")
        self.check_model(model_id)
        size = embedding_size or self.embedding_size()
        records, size = self._import_records(tables["embeddings"], "record", size)
        negatives, size = self._import_records(tables["negatives"], "negative", size)
        known = {name for name, *_ in records} | {p.name for p in self.people()}
        for name, *_ in negatives:
            if name not in known:
                raise GalleryError(f"negative for {name!r}: nobody of that name is in the export or the gallery")
        added = 0
        with self._write() as db:
            for table, rows in (("embeddings", records), ("negatives", negatives)):
                for name, vector, sha, source, created in rows:
                    pid = self._ensure_person(db, name, model_id, size, created)
                    cur = db.execute(
                        f"INSERT OR IGNORE INTO {table}"
                        " (person_id, vector, source_sha256, source_name, model_id, created) VALUES (?, ?, ?, ?, ?, ?)",
                        (pid, vector.tobytes(), sha, source, model_id, created),
                    )
                    added += cur.rowcount if table == "embeddings" else 0
        return added

    def _import_records(self, items: list[dict], what: str, size: int | None
                        ) -> tuple[list[tuple[str, np.ndarray, str, str, float]], int | None]:
        """Checked (name, vector, sha256, source name, created) rows of one list of an export."""
        records = []
        owners: dict[str, str] = {}
        for i, item in enumerate(items):
            where = f"{what} {i + 1} of {len(items)}"
            try:
                name = check_name(item.get("name"))
            except GalleryError as e:
                raise GalleryError(f"{where}: {e}") from None
            where += f" ({name!r})"
            vector = self._check_vector(item.get("vector"), size, where)
            size = size or vector.size
            sha = item.get("source_sha256")
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise GalleryError(f"{where}: \"source_sha256\" must be 64 hex digits, got {sha!r}")
            if what == "record":  # one photo, one person; a negative may be anyone's photo
                if owners.setdefault(sha, name) != name:
                    raise GalleryError(f"{where}: the same photo is also in the export as {owners[sha]!r}")
                self._check_owner(sha, name, where)
            source = item.get("source_name", "")
            created = item.get("created", time.time())
            if not isinstance(source, str) or isinstance(created, bool) or not isinstance(created, (int, float)) \
                    or not np.isfinite(created):
                raise GalleryError(f"{where}: \"source_name\" must be text and \"created\" a finite number")
            records.append((name, vector, sha, source, float(created)))
        return records, size


def dump_export(data: dict, path: str | os.PathLike) -> None:
    """Write an export atomically and owner-only (it holds everyone's faces): a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # a .tmp left by an earlier run keeps its old mode otherwise
            json.dump(data, f, allow_nan=False)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise GalleryError(f"{path}: the disk is full; free space on {path.parent} and try again") from None
        raise GalleryError(f"cannot write {path}: {e.strerror or e}") from None
