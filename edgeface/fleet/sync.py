"""Several devices, one household: gallery sync over the MQTT broker, signed with a fleet key.

Each enrolled photo's face is one record, retained on ``{prefix}/fleet/{fleet}/faces/{sha256}``:
the person it belongs to, its embedding (never the photo), the model that made it, the device
that wrote it and a version (the time it was written). A removal is the same record without an
embedding (a tombstone), so a device that was off when someone was removed still learns it
from the retained record when it comes back, and its own old copy cannot bring them back.

Rules (tests/test_fleet.py):
- Per photo (sha256), the newest version wins; equal versions: the larger device id wins. A
  photo belongs to one person, so renaming a person (`edgeface gallery rename OLD NEW`) or
  merging two (renaming one onto the other) republishes each of their photos under the new
  name, and every device moves each photo to its newest owner.
- A record is applied only if its HMAC-SHA256 under the fleet key checks out; anything else is
  rejected and logged, so a client that may publish on the broker but lacks the key can neither
  add nor remove anyone. Broker ACLs and TLS stay the first line (README: Several devices).
- A record made by another model is ignored (logged once per device): embeddings of two models
  cannot be compared.
- "Not this person" faces (`edgeface enroll --not NAME`) travel the same way, one record per
  (photo, person) on ``{prefix}/fleet/{fleet}/not/{sha256}-{person key}``, with the same
  newest-wins rule and tombstones. One that arrives before its person does waits (in memory; the
  retained record brings it back after a restart). When a person goes, so do their negatives.
- Every device also keeps a retained status on ``{prefix}/fleet/{fleet}/devices/{device}``:
  model, people, faces and last contact (`edgeface fleet status`).
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import logging
import math
import os
import re
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from edgeface.config import FleetConfig, MqttConfig
from edgeface.mqtt.client import mqtt_client
from edgeface.store.gallery import Gallery, GalleryError, check_name

log = logging.getLogger(__name__)

FORMAT = 1
KEY_MIN_BYTES = 32
SETTLE_S = 1.5  # after (re)connecting, retained records stop arriving for this long before we publish
SETTLE_MAX_S = 15.0
STATUS_EVERY_S = 60.0
SHA = re.compile(r"^[0-9a-f]{64}$")
PENDING_MAX = 100_000  # "not them" records waiting for their person, at most


class FleetError(RuntimeError):
    """The fleet cannot be joined as configured; the message says why and what to do."""


def read_key(path: str | os.PathLike) -> bytes:
    """The fleet key; FleetError if it is missing, short, or readable by others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except OSError as e:
        raise FleetError(f"fleet.key_file: cannot read {path}: {e.strerror or e}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise FleetError(f"fleet.key_file: {path} can be read by other users (mode {stat.S_IMODE(mode):o}); "
                         f"chmod 600 {path}")
    # A text key (`openssl rand -hex 32 > key`) loses its newline; random bytes are taken whole,
    # since stripping them would shorten the one in ~20 that starts or ends with a space or newline
    text = raw.strip()
    key = text if text and all(32 <= b < 127 for b in text) else raw
    if len(key) < KEY_MIN_BYTES:
        raise FleetError(f"fleet.key_file: {path} holds {len(key)} bytes; use {KEY_MIN_BYTES} or more "
                         f"(head -c 32 /dev/urandom > {path})")
    return key


# -- records -------------------------------------------------------------------------------
def canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign(body: dict, key: bytes) -> dict:
    return {**body, "sig": hmac.new(key, canonical(body), hashlib.sha256).hexdigest()}


def verify(record: dict, key: bytes) -> dict | None:
    """The record without its signature if the signature is right, else None."""
    sig = record.get("sig")
    body = {k: v for k, v in record.items() if k != "sig"}
    if not isinstance(sig, str):
        return None
    try:
        want = hmac.new(key, canonical(body), hashlib.sha256).hexdigest()
    except (TypeError, ValueError):
        return None
    return body if hmac.compare_digest(want, sig) else None


def face_record(fleet: str, sha: str, entry: LedgerEntry, vector: bytes | None, model_id: str,
                negative: bool = False) -> dict:
    """The body of one photo's record; negative: the photo is "not entry.person"."""
    body = {"format": FORMAT, "fleet": fleet, "sha256": sha, "person": entry.person, "version": entry.version,
            "origin": entry.origin, "model": model_id,
            "vector": base64.b64encode(vector).decode() if vector is not None else None}
    return {**body, "kind": "not"} if negative else body


def negative_key(sha: str, person: str) -> str:
    """The ledger key and topic level of "photo sha is not person": a person may have many
    negatives, and one photo may be a negative of several people."""
    return f"{sha}-{hashlib.sha256(person.encode()).hexdigest()[:16]}"


def is_negative_key(key: str) -> bool:
    return len(key) > 64


def newer(a: LedgerEntry, b: LedgerEntry | None) -> bool:
    return b is None or (a.version, a.origin) > (b.version, b.origin)


def receive(ledger: FleetLedger, topic: str, payload: bytes, key: bytes, fleet: str, model_id: str,
            known: dict[str, LedgerEntry] | None = None) -> tuple[str, str]:
    """Check one received record and apply it if it is newer than ours. Returns (outcome,
    detail): ("applied", what), ("rejected", why), ("other model", its device), ("old", ""),
    ("empty", "") or ("pending", person): a "not them" record whose person is not here yet.
    ``known``: ledger.entries(), read once for a batch and kept up to date here."""
    if not payload:
        return "empty", ""  # a cleared retained topic
    try:
        record = json.loads(payload)
    except ValueError:
        record = None
    body = verify(record, key) if isinstance(record, dict) else None
    if body is None:
        return "rejected", "not signed with this fleet's key"
    sha = body.get("sha256")
    negative = body.get("kind") == "not"
    if body.get("fleet") != fleet or not isinstance(sha, str) or not SHA.match(sha) \
            or body.get("kind", "face") not in ("face", "not") \
            or (not negative and not topic.endswith(f"/faces/{sha}")):
        return "rejected", "it names another fleet or photo"
    if body.get("model") != model_id:
        return "other model", str(body.get("origin"))
    try:
        entry = LedgerEntry(check_name(body["person"]), float(body["version"]), str(body["origin"]),
                            body["vector"] is None)
        if not math.isfinite(entry.version):
            raise ValueError("version is not finite")
        vector = None if entry.deleted else np.frombuffer(base64.b64decode(body["vector"]), np.float32)
    except (KeyError, TypeError, ValueError, GalleryError) as e:
        return "rejected", str(e)
    entry_key = negative_key(sha, entry.person) if negative else sha
    if negative and not topic.endswith(f"/not/{entry_key}"):
        return "rejected", "it names another fleet or photo"
    if not newer(entry, (ledger.entries() if known is None else known).get(entry_key)):
        return "old", ""
    try:
        if negative:
            if not ledger.apply_negative(sha, entry, vector, model_id):
                return "pending", entry.person
        else:
            ledger.apply(sha, entry, vector, model_id)
    except GalleryError as e:
        return "rejected", f"cannot apply it: {e}"
    if known is not None:
        known[entry_key] = entry
    what = f"'not {entry.person}'" if negative else entry.person
    return "applied", f"{'removed' if entry.deleted else 'added'} {what} (photo {sha[:12]}) from {entry.origin}"


@dataclass(frozen=True)
class LedgerEntry:
    """The newest version of one photo's record known here (edgeface.fleet.sync)."""

    person: str
    version: float
    origin: str  # the device that made that version
    deleted: bool


class FleetLedger:
    """Fleet-sync bookkeeping on a Gallery, in the same file and the same transactions."""

    def __init__(self, gallery: Gallery):
        self.gallery = gallery

    def entries(self) -> dict[str, LedgerEntry]:
        rows = self.gallery.db.execute("SELECT sha256, person, version, origin, deleted FROM fleet_ledger")
        return {sha: LedgerEntry(person, version, origin, bool(gone)) for sha, person, version, origin, gone in rows}

    def faces(self) -> dict[str, tuple[str, bytes]]:
        """sha256 -> (person, vector bytes) of every enrolled face."""
        rows = self.gallery.db.execute(
            "SELECT e.source_sha256, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id"
        ).fetchall()
        return {sha: (name, vector) for sha, name, vector in rows}

    def negatives(self) -> dict[str, tuple[str, str, bytes]]:
        """negative_key -> (photo sha256, person, vector bytes) of every "not them" face."""
        rows = self.gallery.db.execute(
            "SELECT n.source_sha256, p.name, n.vector FROM negatives n JOIN people p ON p.id = n.person_id"
        ).fetchall()
        return {negative_key(sha, name): (sha, name, vector) for sha, name, vector in rows}

    def note(self, sha: str, entry: LedgerEntry) -> None:
        """Record a version this device published."""
        with self.gallery._write() as db:
            self._upsert(db, sha, entry)

    @staticmethod
    def _upsert(db: sqlite3.Connection, sha: str, e: LedgerEntry) -> None:
        db.execute("INSERT INTO fleet_ledger VALUES (?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET "
                   "person = excluded.person, version = excluded.version, origin = excluded.origin, "
                   "deleted = excluded.deleted", (sha, e.person, e.version, e.origin, int(e.deleted)))

    def apply(self, sha: str, entry: LedgerEntry, vector: np.ndarray | None, model_id: str) -> None:
        """A received version, already checked newer than ours: the photo's face now belongs to
        entry.person (moved from whoever had it), or is gone (a tombstone). People left with no
        face are removed. One transaction with the ledger, so a crash never applies half of it."""
        g = self.gallery
        if vector is not None:
            g.check_model(model_id)
            vector = g._check_vector(vector, g.embedding_size(), f"fleet record {sha[:12]}")
            check_name(entry.person)
        with g._write() as db:
            db.execute("DELETE FROM embeddings WHERE source_sha256 = ?", (sha,))
            if vector is not None:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('model_id', ?)", (model_id,))
                db.execute("INSERT OR IGNORE INTO meta VALUES ('embedding_size', ?)", (str(vector.size),))
                db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (entry.person, time.time()))
                (pid,) = db.execute("SELECT id FROM people WHERE name = ?", (entry.person,)).fetchone()
                db.execute("INSERT INTO embeddings (person_id, vector, source_sha256, source_name, model_id, created)"
                           " VALUES (?, ?, ?, ?, ?, ?)",
                           (pid, vector.tobytes(), sha, f"fleet:{entry.origin}", model_id, entry.version))
            gone = db.execute("DELETE FROM people WHERE id NOT IN (SELECT person_id FROM embeddings)").rowcount
            if gone:
                # their negatives went with them (ON DELETE CASCADE); the device that removed them
                # publishes the tombstones, so here they are only marked gone, at the version we had
                db.execute("UPDATE fleet_ledger SET deleted = 1 WHERE deleted = 0 AND length(sha256) > 64 "
                           "AND person NOT IN (SELECT name FROM people)")
            g.forget_model_if_empty(db)
            self._upsert(db, sha, entry)

    def apply_negative(self, sha: str, entry: LedgerEntry, vector: np.ndarray | None, model_id: str) -> bool:
        """A received "photo sha is not entry.person", already checked newer than ours. False
        (nothing done) when that person is not enrolled here yet. A photo enrolled as the
        person themselves stays theirs: the negative is noted but not kept."""
        g = self.gallery
        row = g.db.execute("SELECT id FROM people WHERE name = ?", (entry.person,)).fetchone()
        if vector is not None:
            if row is None:
                return False
            g.check_model(model_id)
            vector = g._check_vector(vector, g.embedding_size(), f"fleet record {sha[:12]}")
        with g._write() as db:
            if row is not None:
                db.execute("DELETE FROM negatives WHERE person_id = ? AND source_sha256 = ?", (row[0], sha))
                own = db.execute("SELECT 1 FROM embeddings WHERE person_id = ? AND source_sha256 = ?",
                                 (row[0], sha)).fetchone()
                if vector is not None and not own:
                    db.execute("INSERT INTO negatives (person_id, vector, source_sha256, source_name, model_id, "
                               "created) VALUES (?, ?, ?, ?, ?, ?)",
                               (row[0], vector.tobytes(), sha, f"fleet:{entry.origin}", model_id, entry.version))
            self._upsert(db, negative_key(sha, entry.person), entry)
        return True

    def origins(self, own: str) -> dict[str, str]:
        """person -> where their faces came from: "this device", or the devices that published them."""
        out: dict[str, set[str]] = {}
        ledger = self.entries()
        for sha, (person, _) in self.faces().items():
            e = ledger.get(sha)
            out.setdefault(person, set()).add("this device" if e is None or e.origin == own else e.origin)
        return {person: ", ".join(sorted(o)) for person, o in out.items()}


class FleetSync:
    """This device's side of the fleet: its own MQTT connection, the records it receives (queued
    by paho's thread) and what it publishes. The daemon calls step() from its main thread."""

    def __init__(self, cfg: FleetConfig, mqtt_cfg: MqttConfig, model_id: str, client_id: str):
        assert cfg.name is not None and cfg.key_file is not None
        self.cfg, self.model_id = cfg, model_id
        self.key = read_key(cfg.key_file)
        self.device = cfg.device or client_id
        self.base = f"{mqtt_cfg.topic_prefix}/fleet/{cfg.name}"
        self.qos = mqtt_cfg.qos
        self._inbox: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=1_000_000)
        self._pending: dict[str, bytes] = {}  # topic -> a "not them" record waiting for its person
        self._lock = threading.Lock()
        self._connected_at: float | None = None
        self._last_message = 0.0
        self._warned_models: set[str] = set()
        self._next_status = 0.0
        self.applied = self.rejected = self.ignored = 0
        self.client = mqtt_client(mqtt_cfg, f"{client_id}-fleet")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(mqtt_cfg.host, mqtt_cfg.port, keepalive=mqtt_cfg.keepalive)
        self.client.loop_start()
        log.info("fleet %s: this device is %s", cfg.name, self.device)

    # paho's thread
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("fleet: broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self._connected_at = self._last_message = time.monotonic()
        client.subscribe([(f"{self.base}/faces/+", self.qos), (f"{self.base}/not/+", self.qos)])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self._connected_at = None

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self._last_message = time.monotonic()
            self._inbox.append((msg.topic, bytes(msg.payload)))

    # the daemon's main thread
    def settled(self) -> bool:
        """Connected, and the retained records have had time to arrive: safe to publish our changes."""
        with self._lock:
            if self._connected_at is None:
                return False
            now = time.monotonic()
            return now - self._last_message >= SETTLE_S or now - self._connected_at >= SETTLE_MAX_S

    def step(self, gallery: Gallery) -> bool:
        """Apply what arrived, then publish what changed here; True if the gallery changed."""
        ledger = FleetLedger(gallery)
        changed = self._receive(ledger)
        if self.settled():
            self._publish_changes(ledger)
            if time.monotonic() >= self._next_status:
                self._publish_status(ledger)
        return changed

    def _receive(self, ledger: FleetLedger) -> bool:
        with self._lock:
            batch = list(self._inbox)
            self._inbox.clear()
        changed = False
        known = ledger.entries() if batch else {}
        for topic, payload in batch:
            changed |= self._apply(ledger, topic, payload, known)
        if changed and self._pending:
            # someone arrived: the "not them" records that waited for them can go in now
            waiting, self._pending = self._pending, {}
            for topic, payload in waiting.items():
                changed |= self._apply(ledger, topic, payload, known)
        return changed

    def _apply(self, ledger: FleetLedger, topic: str, payload: bytes, known: dict[str, LedgerEntry]) -> bool:
        outcome, detail = receive(ledger, topic, payload, self.key, self.cfg.name or "", self.model_id, known)
        if outcome == "applied":
            self.applied += 1
            self._pending.pop(topic, None)
            log.info("fleet: %s", detail)
        elif outcome == "pending":
            if topic not in self._pending and len(self._pending) >= PENDING_MAX:
                self._pending.pop(next(iter(self._pending)))
            self._pending[topic] = payload
            log.debug("fleet: 'not %s' waits until %s is enrolled here", detail, detail)
        elif outcome == "rejected":
            self.rejected += 1
            log.warning("fleet: rejected a record on %s: %s", topic, detail)
        elif outcome == "other model":
            self.ignored += 1
            if detail not in self._warned_models:
                self._warned_models.add(detail)
                log.warning("fleet: ignoring records from %s: made by another model than this device's (%.12s); "
                            "use the same model on every device of a fleet", detail, self.model_id)
        return outcome == "applied"

    def _publish_changes(self, ledger: FleetLedger) -> None:
        """Publish what differs between the gallery and the ledger: faces first, so that on other
        devices a person exists before their "not them" faces arrive."""
        faces, negatives, known = ledger.faces(), ledger.negatives(), ledger.entries()
        now = time.time()
        todo: list[tuple[str, str, str, bytes | None]] = []  # (key, sha, person, vector or None)
        for sha, (person, blob) in faces.items():
            e = known.get(sha)
            if e is None or e.deleted or e.person != person:
                todo.append((sha, sha, person, blob))
        for key, (sha, person, blob) in negatives.items():
            e = known.get(key)
            if e is None or e.deleted:
                todo.append((key, sha, person, blob))
        for key, e in known.items():
            if not e.deleted and key not in faces and key not in negatives:
                todo.append((key, key[:64], e.person, None))
        todo.sort(key=lambda t: is_negative_key(t[0]))
        for key, sha, person, vector in todo:
            old = known.get(key)
            negative = is_negative_key(key)
            version = max(now, old.version + 1e-3) if old else now
            entry = LedgerEntry(person, round(version, 3), self.device, vector is None)
            record = sign(face_record(self.cfg.name or "", sha, entry, vector, self.model_id, negative), self.key)
            topic = f"{self.base}/{'not' if negative else 'faces'}/{key}"
            info = self.client.publish(topic, canonical(record), qos=self.qos, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("fleet: cannot publish now (%s); will retry", mqtt.error_string(info.rc))
                return
            ledger.note(key, entry)
            log.info("fleet: published %s%s (photo %.12s)", "removal of " if vector is None else "",
                     f"'not {person}'" if negative else person, sha)
        if todo:
            self._next_status = 0.0

    def _publish_status(self, ledger: FleetLedger) -> None:
        faces = ledger.faces()
        body = {"format": FORMAT, "fleet": self.cfg.name, "device": self.device, "model": self.model_id,
                "people": len({p for p, _ in faces.values()}), "faces": len(faces),
                "negatives": len(ledger.negatives()),
                "gallery_version": _gallery_digest(ledger), "last_contact": round(time.time(), 3)}
        self.client.publish(f"{self.base}/devices/{self.device}", canonical(sign(body, self.key)), qos=self.qos,
                            retain=True)
        self._next_status = time.monotonic() + STATUS_EVERY_S

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _gallery_digest(ledger: FleetLedger) -> str:
    """A short fingerprint of what this device holds: equal on devices that agree."""
    h = hashlib.sha256()
    for sha, e in sorted(ledger.entries().items()):
        h.update(f"{sha}:{e.person}:{e.version}:{int(e.deleted)};".encode())
    return h.hexdigest()[:12]


def fleet_status(cfg: FleetConfig, mqtt_cfg: MqttConfig, client_id: str, wait_s: float = 2.0) -> list[dict]:
    """The devices' retained status records, signature checked (``verified``)."""
    assert cfg.name is not None and cfg.key_file is not None
    key = read_key(cfg.key_file)
    base = f"{mqtt_cfg.topic_prefix}/fleet/{cfg.name}"
    seen: dict[str, dict] = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            done.set()
        else:
            client.subscribe(f"{base}/devices/+", qos=1)

    def on_message(client, userdata, msg):
        try:
            record = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(record, dict):
            body = verify(record, key)
            device = msg.topic.rsplit("/", 1)[-1]
            seen[device] = {**(body or record), "verified": body is not None}

    client = mqtt_client(mqtt_cfg, f"{client_id}-status-{os.getpid()}")
    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(mqtt_cfg.host, mqtt_cfg.port, keepalive=10)
    except OSError as e:
        raise FleetError(f"cannot reach the broker {mqtt_cfg.host}:{mqtt_cfg.port}: {e}") from None
    client.loop_start()
    done.wait(wait_s)
    client.disconnect()
    client.loop_stop()
    return [seen[d] for d in sorted(seen)]
