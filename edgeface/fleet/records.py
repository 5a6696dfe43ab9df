"""Fleet records: the key, the signed record format, the topic layout, and the checks every
received record passes before anything else looks at it.

A record is one photo's face (or one "not them" mark), a few hundred bytes of canonical JSON:
``{"format": 2, "fleet", "sha256", "person", "version", "origin", "model", "vector", ["kind"], "sig"}``,
retained on ``{prefix}/fleet/{fleet}/records/{key[0:2]}/{key[2:4]}/{key}``. The two hex levels let
a device read the retained set one bucket at a time (edgeface.fleet.catchup), so catching up never
needs more than a page of messages queued on the broker, whatever else is retained beside them.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeface.store.gallery import GalleryError, LedgerEntry, check_name

FORMAT = 2  # 1: float versions in seconds on faces/{sha} (before bucketed topics)
KEY_MIN_BYTES = 32
KEY_MIN_DISTINCT = 8  # a key of 32 spaces (or "aaaa...") is a placeholder, not a secret
RECORD_MAX_BYTES = 8192  # a 512-value embedding's record is ~3.2 KB; anything bigger is refused unread
VERSION_MAX = 2**53 - 1  # integer milliseconds; JSON-safe, and far enough that +1 always supersedes
SHA = re.compile(r"[0-9a-f]{64}")
DEVICE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # as config.fleet.device: safe in topics, logs and tables
FIELDS = {"format", "fleet", "sha256", "person", "version", "origin", "model", "vector", "sig"}


class FleetError(RuntimeError):
    """The fleet cannot be joined as configured; the message says why and what to do."""


class Rejected(ValueError):
    """A received record that is not applied; ``source``: its signed origin, or "unsigned"."""

    def __init__(self, why: str, source: str = "unsigned"):
        super().__init__(why)
        self.source = source


def read_key(path: str | os.PathLike) -> bytes:
    """The fleet key; FleetError if it is missing, short, a placeholder, or readable by others."""
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
    if not text or len(set(key)) < KEY_MIN_DISTINCT:
        raise FleetError(f"fleet.key_file: {path} is not a secret ({len(set(key))} different byte values in "
                         f"{len(key)}); make one with head -c 32 /dev/urandom > {path}")
    return key


def printable(text: object, limit: int = 80) -> str:
    """Text from the network as it may go into a log line or a terminal: control characters
    (newlines, ANSI escapes) escaped, length bounded."""
    s = str(text)
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in s[:limit])
    return out + ("..." if len(s) > limit else "")


# -- signing -------------------------------------------------------------------------------
def canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign(body: dict, key: bytes) -> dict:
    return {**body, "sig": hmac.new(key, canonical(body), hashlib.sha256).hexdigest()}


def signed_body(payload: bytes, key: bytes) -> dict | None:
    """The body of a JSON payload signed with the fleet's key, or None (not JSON, not signed)."""
    try:
        record = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return verify(record, key) if isinstance(record, dict) else None


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


# -- layout --------------------------------------------------------------------------------
def negative_key(sha: str, person: str) -> str:
    """The ledger key and topic level of "photo sha is not person": a person may have many
    negatives, and one photo may be a negative of several people."""
    return f"{sha}-{hashlib.sha256(person.encode()).hexdigest()[:16]}"


def is_negative_key(key: str) -> bool:
    return len(key) > 64


def record_topic(base: str, key: str) -> str:
    return f"{base}/records/{key[0:2]}/{key[2:4]}/{key}"


def face_record(fleet: str, sha: str, entry: LedgerEntry, vector: bytes | None, model_id: str,
                negative: bool = False) -> dict:
    """The body of one photo's record; negative: the photo is "not entry.person"."""
    body = {"format": FORMAT, "fleet": fleet, "sha256": sha, "person": entry.person, "version": entry.version,
            "origin": entry.origin, "model": model_id,
            "vector": base64.b64encode(vector).decode() if vector is not None else None}
    return {**body, "kind": "not"} if negative else body


def newer(a: LedgerEntry, b: LedgerEntry | None) -> bool:
    return b is None or (a.version, a.origin) > (b.version, b.origin)


def next_version(now_ms: int, old: LedgerEntry | None) -> int:
    """A version newer than ``old`` on any clock: a device whose clock is behind still supersedes."""
    return max(now_ms, old.version + 1) if old else now_ms


# -- receiving -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    key: str  # the ledger key: sha256, or negative_key(sha256, person)
    sha: str
    entry: LedgerEntry
    vector: np.ndarray | None  # None: a tombstone
    negative: bool


class OtherModel(Exception):
    """A well-signed record made by another embedding model; args[0]: its origin."""


def parse(base: str, topic: str, payload: bytes, key: bytes, fleet: str, model_id: str) -> Record:
    """A received record, checked: size first (before any parsing), then signature, then every
    field. Raises Rejected (why, and who sent it) or OtherModel."""
    if len(payload) > RECORD_MAX_BYTES:
        raise Rejected(f"{len(payload)} bytes, more than a record's {RECORD_MAX_BYTES}")
    body = signed_body(payload, key)
    if body is None:
        raise Rejected("not signed with this fleet's key")
    origin = body.get("origin")
    if not isinstance(origin, str) or not DEVICE.fullmatch(origin):
        raise Rejected(f"its origin {printable(origin, 40)} is not a device name", "a bad origin")
    if body.get("format") != FORMAT:
        raise Rejected(f"format {printable(body.get('format'), 20)}, not {FORMAT} (update that device)", origin)
    extra = set(body) - FIELDS - {"kind"}  # the body is the record less "sig", which FIELDS holds
    if extra:
        raise Rejected(f"unexpected fields {printable(sorted(extra), 60)}", origin)
    sha, kind = body.get("sha256"), body.get("kind", "face")
    if body.get("fleet") != fleet or not isinstance(sha, str) or not SHA.fullmatch(sha) or kind not in ("face", "not"):
        raise Rejected("it names another fleet or photo", origin)
    if body.get("model") != model_id:
        raise OtherModel(origin)
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= VERSION_MAX:
        raise Rejected(f"version {printable(version, 30)} is not an integer in 0..{VERSION_MAX}", origin)
    try:
        person = check_name(body.get("person"))
        blob = body.get("vector")
        if blob is not None and not isinstance(blob, str):
            raise ValueError("the vector is not base64 text")
        vector = None if blob is None else np.frombuffer(base64.b64decode(blob, validate=True), np.float32)
    except (TypeError, ValueError, GalleryError) as e:
        raise Rejected(printable(e), origin) from None
    negative = kind == "not"
    entry_key = negative_key(sha, person) if negative else sha
    if topic != record_topic(base, entry_key):
        raise Rejected("it names another fleet or photo than its topic", origin)
    return Record(entry_key, sha, LedgerEntry(person, version, origin, vector is None), vector, negative)
