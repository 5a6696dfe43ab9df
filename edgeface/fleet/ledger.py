"""What this device knows of the fleet's records, and applying one received record to the gallery.

The ledger (a gallery table, written only through Gallery's operations) holds the newest version
of each record seen or published here. Per record, the newest version wins; equal versions: the
larger device id wins, on every device alike. A record older than the ledger's is not applied,
and the caller re-asserts the newer one (a replayed old record must not stay on the broker).
"""
from __future__ import annotations

from dataclasses import dataclass

from edgeface.fleet.records import OtherModel, Record, Rejected, negative_key, newer, parse, printable
from edgeface.store.gallery import Gallery, GalleryError, LedgerEntry

__all__ = ["FleetLedger", "LedgerEntry", "Outcome", "apply_batch", "classify", "receive"]


class FleetLedger:
    """A gallery seen as fleet records: the ledger, and the faces and marks it holds."""

    def __init__(self, gallery: Gallery):
        self.gallery = gallery

    def entries(self) -> dict[str, LedgerEntry]:
        return self.gallery.ledger()

    def faces(self) -> dict[str, tuple[str, bytes]]:
        """sha256 -> (person, vector bytes) of every enrolled face."""
        return self.gallery.synced_faces()

    def negatives(self) -> dict[str, tuple[str, str, bytes]]:
        """negative_key -> (photo sha256, person, vector bytes) of every "not them" face."""
        return {negative_key(sha, name): (sha, name, blob) for sha, name, blob in self.gallery.synced_negatives()}

    def note(self, entries: dict[str, LedgerEntry]) -> None:
        """Versions this device published, confirmed by the broker."""
        if entries:
            self.gallery.note_ledger(entries)

    def apply(self, record: Record, model_id: str) -> bool:
        """Apply a record already checked newer than ours; False: a "not them" record whose person
        is not enrolled here yet (nothing done)."""
        if record.negative:
            return self.gallery.apply_negative(record.sha, record.key, record.entry, record.vector, model_id)
        self.gallery.apply_face(record.sha, record.entry, record.vector, model_id)
        return True

    def origins(self, own: str) -> dict[str, str]:
        """person -> where their faces came from: "this device", or the devices that published them."""
        out: dict[str, set[str]] = {}
        ledger = self.entries()
        for sha, (person, _) in self.faces().items():
            e = ledger.get(sha)
            out.setdefault(person, set()).add("this device" if e is None or e.origin == own else printable(e.origin))
        return {person: ", ".join(sorted(o)) for person, o in out.items()}


@dataclass(frozen=True)
class Outcome:
    """What became of one received record. kind: applied, old (ours is newer: ``ours`` to
    re-assert), same, pending (a "not them" record waiting for its person), other model,
    rejected, empty. source: who sent it (for counting rejections per source)."""

    kind: str
    detail: str = ""
    source: str = ""
    record: Record | None = None
    ours: LedgerEntry | None = None


def classify(base: str, topic: str, payload: bytes, key: bytes, fleet: str, model_id: str,
             known: dict[str, LedgerEntry], sending: dict[str, LedgerEntry] | None = None) -> Outcome:
    """Check one received record against ``known`` (ledger.entries(), kept up to date by the
    caller). kind "new": newer than ours, to be applied; ``sending``: records this device
    published that the broker has not acknowledged yet (their echo is not applied)."""
    if not payload:
        return Outcome("empty")  # a cleared retained topic
    try:
        record = parse(base, topic, payload, key, fleet, model_id)
    except Rejected as e:
        return Outcome("rejected", str(e), e.source)
    except OtherModel as e:
        return Outcome("other model", source=str(e.args[0]))
    ours = known.get(record.key)
    if ours == record.entry or (sending is not None and sending.get(record.key) == record.entry):
        return Outcome("same", record=record)
    if not newer(record.entry, ours):
        # strictly older: ours goes back to the broker; the same version and device: nothing to do
        return Outcome("old" if ours is not None and newer(ours, record.entry) else "same", record=record, ours=ours)
    return Outcome("new", record=record, source=record.entry.origin)


def applied(record: Record) -> Outcome:
    e = record.entry
    what = f"'not {e.person}'" if record.negative else e.person
    return Outcome("applied", f"{'removed' if e.deleted else 'added'} {what} (photo {record.sha[:12]}) from "
                   f"{e.origin}", e.origin, record)


def apply_batch(ledger: FleetLedger, records: list[Record], model_id: str) -> list[Outcome]:
    """Apply new records (classify()'s "new"): faces in one transaction, then "not them" marks
    (whose person may have just arrived). A batch the gallery refuses is applied one by one, so
    one bad record costs only itself."""
    out: list[Outcome] = []
    faces = list({r.key: r for r in records if not r.negative}.values())
    if faces:
        try:
            ledger.gallery.apply_faces([(r.sha, r.entry, r.vector) for r in faces], model_id)
            out += [applied(r) for r in faces]
        except GalleryError:
            for r in faces:
                out.append(_apply_one(ledger, r, model_id))
    for r in {r.key: r for r in records if r.negative}.values():
        out.append(_apply_one(ledger, r, model_id))
    return out


def _apply_one(ledger: FleetLedger, record: Record, model_id: str) -> Outcome:
    try:
        if not ledger.apply(record, model_id):
            return Outcome("pending", record.entry.person, record=record)
    except GalleryError as e:
        return Outcome("rejected", f"cannot apply it: {e}", record.entry.origin, record)
    return applied(record)


def receive(ledger: FleetLedger, base: str, topic: str, payload: bytes, key: bytes, fleet: str, model_id: str,
            known: dict[str, LedgerEntry] | None = None) -> Outcome:
    """Check one received record and apply it if it is newer than ours."""
    known = ledger.entries() if known is None else known
    outcome = classify(base, topic, payload, key, fleet, model_id, known)
    if outcome.kind != "new" or outcome.record is None:
        return outcome
    result = _apply_one(ledger, outcome.record, model_id)
    if result.kind == "applied":
        known[outcome.record.key] = outcome.record.entry
    return result
