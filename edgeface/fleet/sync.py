"""Several devices, one household: gallery sync over the MQTT broker, signed with a fleet key.

Each enrolled photo's face is one retained record (edgeface.fleet.records): the person it
belongs to, its embedding (never the photo), the model that made it, the device that wrote it
and a version. A removal is the same record without an embedding (a tombstone), so a device that
was off when someone was removed still learns it when it comes back.

Rules (tests/test_fleet*.py):
- Per photo (sha256), the newest version wins; equal versions: the larger device id wins. A
  photo belongs to one person, so a rename or merge republishes each photo under the new name.
- Only records signed with the fleet key (HMAC-SHA256), at most RECORD_MAX_BYTES, with every
  field well formed, are applied; rejections are counted per source and logged once per minute.
  A record made by another model is ignored (logged once per device).
- "Not this person" faces (`edgeface enroll --not NAME`) travel the same way, one record per
  (photo, person), and wait (in memory) for their person to arrive.
- After every (re)connection a device reads the retained records in pages (edgeface.fleet.catchup),
  then reconciles: what it holds that the broker lacks or holds older (a lost retained store, a
  replayed old record) it publishes again, so a removal cannot be undone by replaying the old
  record. Live, a record older than ours is answered the same way.
- A record counts as sent (the ledger notes it) only when the broker acknowledges it (PUBACK).
- The connection is MQTT 5 with a maximum packet size: the broker does not send us anything
  bigger than a record, so a huge retained message cannot take the device's memory.
- Every device keeps a retained status on ``{prefix}/fleet/{fleet}/devices/{device}``
  (edgeface.fleet.status).
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time

import paho.mqtt.client as mqtt

from edgeface.config import FleetConfig, MqttConfig
from edgeface.fleet.catchup import SPLIT_AT, CatchUp, Page
from edgeface.fleet.ledger import FleetLedger, Outcome, apply_batch, classify
from edgeface.fleet.records import (
    RECORD_MAX_BYTES,
    FleetError,
    Record,
    canonical,
    face_record,
    is_negative_key,
    newer,
    next_version,
    printable,
    read_key,
    record_topic,
    sign,
)
from edgeface.fleet.status import connect_properties, gallery_digest, status_body
from edgeface.mqtt.client import mqtt_client
from edgeface.store.gallery import Gallery, LedgerEntry

__all__ = ["FleetError", "FleetSync", "RejectLog", "read_key"]

log = logging.getLogger(__name__)

QOS = 1  # records need the broker's acknowledgement before they count as sent
STATUS_EVERY_S = 60.0
MARKER_TIMEOUT_S = 10.0  # a page's marker not back by then: the page was cut short, read it in pieces
INBOX_MAX_BYTES = 16 * 2**20  # received, not yet applied; beyond it messages are dropped and read again
INBOX_PAUSE_BYTES = 4 * 2**20  # catch-up waits for the main thread to apply what came before the next page
PENDING_MAX = 100_000  # "not them" records waiting for their person, at most
REJECT_LOG_EVERY_S = 60.0
SOURCES_MAX = 100


class RejectLog:
    """Rejected records counted per source (a signed origin, "unsigned", "oversized"...): the first
    from a source is logged at once, the rest once per interval as a count."""

    def __init__(self, every_s: float = REJECT_LOG_EVERY_S, clock=time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._sources: dict[str, list] = {}  # source -> [count not logged yet, next log time, last why, last topic]
        self.total = 0

    def add(self, source: str, why: str, topic: str) -> None:
        self.total += 1
        if source not in self._sources and len(self._sources) >= SOURCES_MAX:
            source = "other sources"
        seen = self._sources.get(source)
        if seen is None:
            self._sources[source] = [0, self.clock() + self.every_s, why, topic]
            log.warning("fleet: rejected a record on %s from %s: %s (more are counted, and logged every %.0f s)",
                        printable(topic, 160), source, why, self.every_s)
        else:
            seen[0] += 1
            seen[2], seen[3] = why, topic

    def flush(self) -> None:
        now = self.clock()
        for source, seen in self._sources.items():
            if seen[0] and now >= seen[1]:
                log.warning("fleet: rejected %d more record(s) from %s in the last %.0f s (last on %s: %s)",
                            seen[0], source, self.every_s, printable(seen[3], 160), seen[2])
                seen[0], seen[1] = 0, now + self.every_s


class FleetSync:
    """This device's side of the fleet: its own MQTT connection, the records it receives (queued
    by paho's thread) and what it publishes. The daemon calls step() from its main thread."""

    def __init__(self, cfg: FleetConfig, mqtt_cfg: MqttConfig, model_id: str, client_id: str):
        assert cfg.name is not None and cfg.key_file is not None
        self.fleet, self.key_file, self.model_id = cfg.name, cfg.key_file, model_id
        self.key = read_key(cfg.key_file)
        self.device = cfg.device or client_id
        self.base = f"{mqtt_cfg.topic_prefix}/fleet/{cfg.name}"
        self.marker_topic = f"{self.base}/sync/{self.device}-{os.urandom(4).hex()}"
        self._lock = threading.Lock()
        # written by paho's thread, under _lock
        self._inbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._inbox_bytes = self._inbox_dropped = 0
        self._oversized: list[str] = []  # topics of messages too big to be records (at most a few kept)
        self._oversized_n = 0
        self._connection = self._round = self._caught_up_round = 0
        self._connected = False
        self._catchup: CatchUp | None = None
        self._page: Page | None = None
        self._page_nonce = ""
        self._page_count = 0
        self._page_started = 0.0
        self._paused = False  # a page is done, the next waits until step() has drained the inbox
        self._acks: collections.deque[tuple[int, bool]] = collections.deque()  # (mid, accepted), no lock
        # the main thread's
        self._seen: dict[str, LedgerEntry] = {}  # versions the broker holds, read in this round's catch-up
        self._round_seen = self._connection_seen = self._reconciled = 0
        self._sent: dict[int, tuple[str, LedgerEntry]] = {}  # mid -> record awaiting the broker's PUBACK
        self._in_flight: dict[str, LedgerEntry] = {}
        self._reassert: set[str] = set()  # keys whose version here is newer than the broker's
        self._pending: dict[str, bytes] = {}  # topic -> a "not them" record waiting for its person
        self._diffed_stamp: int | None = None  # gallery.version() when changes were last looked for
        self._next_status = 0.0
        self._warned_models: set[str] = set()
        self.rejections = RejectLog()
        self.applied = self.ignored = 0
        self.client = mqtt_client(mqtt_cfg, f"{client_id}-fleet", protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.connect_async(mqtt_cfg.host, mqtt_cfg.port, keepalive=mqtt_cfg.keepalive, clean_start=True,
                                  properties=connect_properties())
        self.client.loop_start()
        log.info("fleet %s: this device is %s", cfg.name, self.device)

    def key_changed(self) -> bool:
        """The key file now holds other bytes than the key in use (a rotated key)."""
        try:
            return read_key(self.key_file) != self.key
        except FleetError:
            return False  # the reload's config check reports it

    # -- paho's thread (never calls paho with self._lock held: paho holds its own locks around callbacks)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("fleet: broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.marker_topic, qos=QOS)
        with self._lock:
            self._connection += 1
            self._connected = True
        self.start_catchup()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self._connected = False
            self._page = None

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self._acks.append((mid, not reason_code.is_failure))  # deque.append is atomic: no lock (see above)

    def _on_message(self, client, userdata, msg):
        topic, size = msg.topic, len(msg.payload)
        if topic == self.marker_topic:
            with self._lock:
                if self._page is None or self._catchup is None or bytes(msg.payload) != self._page_nonce.encode():
                    return
                self._catchup.done(self._page, self._page_count)
                self._paused = pause = self._inbox_bytes > INBOX_PAUSE_BYTES
                if pause:
                    self._page = None
            if not pause:
                self._next_page()
            return
        with self._lock:
            self._page_count += 1
            if size > RECORD_MAX_BYTES:  # (a broker that ignores our maximum packet size)
                self._oversized_n += 1
                if len(self._oversized) < 5:
                    self._oversized.append(topic)
            elif self._inbox_bytes + size > INBOX_MAX_BYTES:
                self._inbox_dropped += 1
            else:
                self._inbox.append((topic, bytes(msg.payload)))
                self._inbox_bytes += size

    # -- catching up (either thread) ---------------------------------------------------
    def start_catchup(self) -> None:
        """Read every retained record again, page by page (after a connection, or records dropped)."""
        with self._lock:
            self._round += 1
            self._catchup = CatchUp(self.base)
            self._page = None
            self._paused = False
        self._next_page()

    def _next_page(self) -> None:
        with self._lock:
            catchup = self._catchup
            page = catchup.next_page() if catchup is not None and self._connected else None
            if catchup is None or page is None:
                if catchup is not None and self._connected:
                    self._caught_up_round = self._round
                    if catchup.overfull:
                        log.warning("fleet: sub-bucket(s) %s hold too many retained messages to read whole; records "
                                    "there may be missed (junk on the broker?)", ", ".join(catchup.overfull[:5]))
                    self._catchup = None
                self._page = None
                return
            nonce = os.urandom(8).hex()
            self._page, self._page_nonce, self._page_count = page, nonce, 0
            self._page_started = time.monotonic()
            filters = catchup.filters(page)
        for f in page.drop:
            self.client.unsubscribe(f)
        self.client.subscribe([(f, QOS) for f in filters])
        # the broker handles our packets in order: the marker comes back after the page's retained messages
        self.client.publish(self.marker_topic, nonce.encode(), qos=QOS)

    def _check_stalled(self) -> None:
        with self._lock:
            stalled = self._page is not None and self._catchup is not None \
                and time.monotonic() - self._page_started > MARKER_TIMEOUT_S
            if stalled:
                assert self._page is not None and self._catchup is not None
                log.warning("fleet: no end to a page of retained records in %.0f s; reading it in smaller pages",
                            MARKER_TIMEOUT_S)
                self._catchup.done(self._page, SPLIT_AT)
        if stalled:
            self._next_page()

    def caught_up(self) -> bool:
        """Connected, and every retained record has been read since: safe to publish our changes."""
        with self._lock:
            return self._connected and self._caught_up_round == self._round

    def idle(self) -> bool:
        """Caught up, reconciled, and nothing waiting for the broker's acknowledgement."""
        return self.caught_up() and self._reconciled == self._round and not self._sent and not self._reassert

    # -- the daemon's main thread ------------------------------------------------------
    def step(self, gallery: Gallery) -> bool:
        """Apply what arrived, then publish what changed here; True if the gallery changed."""
        ledger = FleetLedger(gallery)
        self._check_stalled()
        with self._lock:
            batch = list(self._inbox)
            self._inbox.clear()
            self._inbox_bytes = 0
            dropped, self._inbox_dropped = self._inbox_dropped, 0
            oversized, self._oversized, n_oversized, self._oversized_n = self._oversized, [], self._oversized_n, 0
            round_, connection = self._round, self._connection
            caught = self._connected and self._caught_up_round == round_
            resume, self._paused = self._paused, False
        if resume:
            self._next_page()
        if connection != self._connection_seen:  # a new connection: what was in flight is sent again
            self._connection_seen = connection
            self._sent.clear()
            self._in_flight.clear()
        if round_ != self._round_seen:
            self._round_seen, self._seen = round_, {}
        for i in range(n_oversized):
            topic = oversized[min(i, len(oversized) - 1)]
            self.rejections.add("oversized", f"more than {RECORD_MAX_BYTES} bytes", topic)
        self._take_acks(ledger)
        changed = self._receive(ledger, batch)
        if dropped:
            log.warning("fleet: %d record(s) arrived faster than they could be applied; reading them again", dropped)
            self.start_catchup()
        elif caught:
            if self._reconciled != round_:
                self._reconcile(ledger)
                self._reconciled = round_
                self._diffed_stamp = None
            stamp = gallery.version()
            if stamp != self._diffed_stamp:
                self._diffed_stamp = stamp
                self._publish_changes(ledger)
            self._publish_reasserts(ledger)
            if time.monotonic() >= self._next_status:
                self._publish_status(ledger)
        self.rejections.flush()
        return changed

    def republish_own(self, gallery: Gallery) -> int:
        """Queue every record this device made for publishing again (`edgeface fleet republish`)."""
        own = {k for k, e in gallery.ledger().items() if e.origin == self.device}
        self._reassert |= own
        return len(own)

    def _receive(self, ledger: FleetLedger, batch: list[tuple[str, bytes]]) -> bool:
        if not batch:
            return False
        changed = self._apply(ledger, batch, ledger.entries())
        if changed and self._pending:
            # someone arrived: the "not them" records that waited for them can go in now
            waiting, self._pending = self._pending, {}
            self._apply(ledger, list(waiting.items()), ledger.entries())
        return changed

    def _apply(self, ledger: FleetLedger, batch: list[tuple[str, bytes]], known: dict[str, LedgerEntry]) -> bool:
        """Classify a batch, apply what is new in as few transactions as possible, then report."""
        new: list[Record] = []
        sources: dict[str, tuple[str, bytes]] = {}  # key -> (topic, payload) of a new record
        for topic, payload in batch:
            outcome = classify(self.base, topic, payload, self.key, self.fleet, self.model_id, known, self._in_flight)
            record = outcome.record
            if record is not None and newer(record.entry, self._seen.get(record.key)):
                self._seen[record.key] = record.entry
            if outcome.kind == "new" and record is not None:
                new.append(record)
                known[record.key] = record.entry
                sources[record.key] = (topic, payload)
            else:
                self._report(outcome, topic, payload)
        changed = False
        for outcome in apply_batch(ledger, new, self.model_id) if new else []:
            assert outcome.record is not None
            topic, payload = sources[outcome.record.key]
            if outcome.kind != "applied":
                known.pop(outcome.record.key, None)  # not applied after all: the ledger decides again next time
            changed |= outcome.kind == "applied"
            self._report(outcome, topic, payload)
        return changed

    def _report(self, outcome: Outcome, topic: str, payload: bytes) -> None:
        record = outcome.record
        if outcome.kind == "applied":
            self.applied += 1
            self._pending.pop(topic, None)
            log.info("fleet: %s", outcome.detail)
        elif outcome.kind == "old" and record is not None:
            self._reassert.add(record.key)  # ours is newer: put it back (a replayed record must not stay)
        elif outcome.kind == "pending" and record is not None:
            if topic not in self._pending and len(self._pending) >= PENDING_MAX:
                self._pending.pop(next(iter(self._pending)))
            self._pending[topic] = payload
        elif outcome.kind == "rejected":
            self.rejections.add(outcome.source or "unsigned", outcome.detail, topic)
        elif outcome.kind == "other model":
            self.ignored += 1
            if outcome.source not in self._warned_models and len(self._warned_models) < SOURCES_MAX:
                self._warned_models.add(outcome.source)
                log.warning("fleet: ignoring records from %s: made by another model than this device's (%.12s); "
                            "use the same model on every device of a fleet", outcome.source, self.model_id)

    def _take_acks(self, ledger: FleetLedger) -> None:
        confirmed: dict[str, LedgerEntry] = {}
        refused = 0
        while self._acks:
            mid, accepted = self._acks.popleft()
            sent = self._sent.pop(mid, None)
            if sent is None:
                continue
            key, entry = sent
            if self._in_flight.get(key) == entry:
                del self._in_flight[key]
            if accepted:
                confirmed[key] = entry
            else:
                refused += 1
        if refused:
            log.warning("fleet: the broker refused %d record(s) (its ACL?); trying again", refused)
            self._diffed_stamp = None
        if confirmed:
            known = ledger.entries()
            ledger.note({k: e for k, e in confirmed.items() if newer(e, known.get(k)) or known.get(k) == e})

    def _publish(self, key: str, entry: LedgerEntry, vector: bytes | None) -> bool:
        negative = is_negative_key(key)
        record = sign(face_record(self.fleet, key[:64], entry, vector, self.model_id, negative), self.key)
        info = self.client.publish(record_topic(self.base, key), canonical(record), qos=QOS, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("fleet: cannot publish now (%s); will retry", mqtt.error_string(info.rc))
            self._diffed_stamp = None
            return False
        self._sent[info.mid] = (key, entry)
        self._in_flight[key] = entry
        return True

    def _publish_changes(self, ledger: FleetLedger) -> None:
        """Publish what differs between the gallery and the ledger: faces first, so that on other
        devices a person exists before their "not them" faces arrive."""
        faces, negatives, known = ledger.faces(), ledger.negatives(), ledger.entries()
        now_ms = int(time.time() * 1000)
        todo: list[tuple[str, str, bytes | None]] = []  # (key, person, vector or None)
        for sha, (person, blob) in faces.items():
            e = known.get(sha)
            if e is None or e.deleted or e.person != person:
                todo.append((sha, person, blob))
        for key, (_, person, blob) in negatives.items():
            e = known.get(key)
            if e is None or e.deleted:
                todo.append((key, person, blob))
        for key, e in known.items():
            if not e.deleted and key not in faces and key not in negatives:
                todo.append((key, e.person, None))
        todo = sorted((t for t in todo if t[0] not in self._in_flight), key=lambda t: is_negative_key(t[0]))
        for key, person, vector in todo:
            entry = LedgerEntry(person, next_version(now_ms, known.get(key)), self.device, vector is None)
            if not self._publish(key, entry, vector):
                return
            log.info("fleet: publishing %s%s (photo %.12s)", "removal of " if vector is None else "",
                     f"'not {person}'" if is_negative_key(key) else person, key)
        if todo:
            self._next_status = 0.0

    def _reconcile(self, ledger: FleetLedger) -> None:
        """After a catch-up: what the broker lacks or holds older than we do goes back."""
        known = ledger.entries()
        missing = {k for k, e in known.items() if newer(e, self._seen.get(k))}
        self._reassert |= missing
        log.info("fleet: caught up: %d record(s) on the broker, %d known here; %d missing or older there, "
                 "published again", len(self._seen), len(known), len(missing))

    def _publish_reasserts(self, ledger: FleetLedger) -> None:
        if not self._reassert:
            return
        known, faces, negatives = ledger.entries(), ledger.faces(), ledger.negatives()
        for key in sorted(self._reassert, key=is_negative_key):
            e = known.get(key)
            if e is not None and key not in self._in_flight:
                here = negatives.get(key, ("", "", b""))[1:] if is_negative_key(key) else faces.get(key)
                if e.deleted:
                    vector = None
                elif here is None or here[0] != e.person:
                    self._reassert.discard(key)  # changed here since: _publish_changes sends a newer one
                    continue
                else:
                    vector = here[1]
                if not self._publish(key, e, vector):
                    return
            self._reassert.discard(key)

    def _publish_status(self, ledger: FleetLedger) -> None:
        faces, entries = ledger.faces(), ledger.entries()
        body = status_body(self.fleet, self.device, self.model_id, len({p for p, _ in faces.values()}), len(faces),
                           len(ledger.negatives()), gallery_digest(entries), time.time())
        self.client.publish(f"{self.base}/devices/{self.device}", canonical(sign(body, self.key)), qos=QOS,
                            retain=True)
        self._next_status = time.monotonic() + STATUS_EVERY_S

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
