"""Fleet records under hostile input, without a broker: sizes, versions, fields, origins, keys,
status records, rejection logging, and the catch-up planner (issue 26)."""
import json
import logging
import os

import numpy as np
import pytest

from edgeface.fleet.catchup import BUCKETS, SPLIT_AT, CatchUp
from edgeface.fleet.ledger import FleetLedger, receive
from edgeface.fleet.records import (
    RECORD_MAX_BYTES,
    VERSION_MAX,
    FleetError,
    canonical,
    face_record,
    next_version,
    read_key,
    record_topic,
    sign,
)
from edgeface.fleet.status import checked_status, status_body
from edgeface.fleet.sync import RejectLog
from edgeface.store.gallery import Gallery, LedgerEntry

KEY = b"0123456789abcdefghijklmnopqrstuv"
MODEL = "a" * 64
FLEET = "home"
BASE = f"edgeface/fleet/{FLEET}"
SHA = "1" * 64


def _body(version=1000, origin="dev-a", person="ben", vector=True, **extra):
    v = np.ones(4, np.float32).tobytes() if vector else None
    return {**face_record(FLEET, SHA, LedgerEntry(person, 0, origin, not vector), v, MODEL), "version": version,
            **extra}


def _receive(g, body, topic=None, key=KEY, raw=None):
    payload = raw if raw is not None else canonical(sign(body, key))
    return receive(FleetLedger(g), BASE, topic or record_topic(BASE, SHA), payload, key, FLEET, MODEL)


def test_versions_are_bounded_integers_so_a_removal_always_wins(tmp_path):
    """Finding 9: version 1e308 could not be superseded (old + 1e-3 == old)."""
    with Gallery(tmp_path / "g.db") as g:
        for bad in (1e308, 1.5, "9", True, -1, VERSION_MAX + 1, float("nan")):
            body = _body(version=bad)
            try:
                payload = canonical(sign(body, KEY))
            except ValueError:  # NaN cannot even be signed canonically
                payload = json.dumps(body).encode()
            o = _receive(g, body, raw=payload)
            assert o.kind == "rejected", (bad, o)
        assert g.people() == []
        # the largest allowed version can still be superseded by a removal
        top = LedgerEntry("ben", VERSION_MAX - 1, "dev-a", False)
        assert next_version(1_700_000_000_000, top) == VERSION_MAX
        assert _receive(g, _body(version=VERSION_MAX - 1)).kind == "applied"
        assert _receive(g, _body(version=next_version(0, top), vector=False)).kind == "applied"
        assert g.people() == []


def test_extra_fields_and_oversized_records_are_refused_before_parsing(tmp_path):
    """Finding 9 (10 MB of extra fields kept) and 2 (no size cap): the size is checked first."""
    with Gallery(tmp_path / "g.db") as g:
        o = _receive(g, _body(padding="x" * 10_000_000))
        assert o.kind == "rejected" and f"more than a record's {RECORD_MAX_BYTES}" in o.detail
        # not JSON at all, but too big: refused for its size, never parsed
        o = _receive(g, {}, raw=b"[" * (RECORD_MAX_BYTES + 1))
        assert o.kind == "rejected" and "bytes" in o.detail
        o = _receive(g, _body(note="small but unknown"))
        assert o.kind == "rejected" and "unexpected fields" in o.detail
        assert g.people() == [] and g.ledger() == {}


def test_origin_with_control_characters_is_refused_and_never_printed(tmp_path):
    """Finding 12: an origin with a newline and ANSI codes wrote a fake log line and escapes into `gallery list`."""
    evil = "dev-a\n2026-01-01 INFO fake line \x1b[31mred"
    with Gallery(tmp_path / "g.db") as g:
        o = _receive(g, _body(origin=evil))
        assert o.kind == "rejected" and "\n" not in o.detail and "\x1b" not in o.detail
        # a ledger written before the check (or by hand) is shown escaped in `gallery list`
        g.add("ben", [], MODEL)
        assert _receive(g, _body(origin="dev-b")).kind == "applied"
        g.note_ledger({SHA: LedgerEntry("ben", 5000, evil, False)})
        origins = FleetLedger(g).origins("this-device")
        assert "\n" not in origins["ben"] and "\x1b" not in origins["ben"] and "\\x1b" in origins["ben"]


def test_a_placeholder_key_is_refused(tmp_path):
    """Finding 18: a key of 32 spaces was accepted."""
    key = tmp_path / "fleet.key"
    for placeholder in (b" " * 32, b" " * 40 + b"\n", b"a" * 32, b"ab" * 32, b"\0" * 32):
        key.write_bytes(placeholder)
        key.chmod(0o600)
        with pytest.raises(FleetError):
            read_key(key)
    key.write_bytes(os.urandom(32))
    assert len(read_key(key)) == 32


def test_fleet_status_believes_only_signed_well_formed_records():
    """Finding 11: `fleet status` traced back on {"last_contact": "x"} or 1e300 and printed terminal escapes."""
    good = sign(status_body(FLEET, "dev-a", MODEL, 2, 3, 0, "abc123abc123", 1_700_000_000.0), KEY)
    assert checked_status("dev-a", canonical(good), KEY, FLEET)["verified"] is True
    forged = [
        ("dev-b", json.dumps({"device": "dev-b", "last_contact": "x"}).encode()),
        ("dev-c", json.dumps({"device": "dev-c", "last_contact": 1e300, "people": 1}).encode()),
        ("dev\x1b[2K\rok", json.dumps({"device": "x\x1b[31m"}).encode()),
        ("dev-d", b"\xff" * 10),
        ("dev-e", b"[" * 100_000),
    ]
    for device, payload in forged:
        shown = checked_status(device, payload, KEY, FLEET)
        assert shown["verified"] is False and set(shown) == {"device", "verified", "problem"}
        assert "\x1b" not in shown["device"] and "\r" not in shown["device"]
    # signed with the key but not well formed: not believed either
    for bad in ({"last_contact": 1e300}, {"last_contact": "x"}, {"people": -1}, {"device": "other"}):
        body = sign({**status_body(FLEET, "dev-a", MODEL, 2, 3, 0, "abc", 1.0), **bad}, KEY)
        assert checked_status("dev-a", canonical(body), KEY, FLEET)["verified"] is False, bad


def test_rejections_are_counted_and_logged_once_per_source_per_interval(caplog):
    """Finding 10: 50,000 unsigned retained messages wrote 50,016 WARNING lines per device."""
    now = [0.0]
    rejections = RejectLog(every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="edgeface.fleet.sync"):
        for i in range(50_000):
            rejections.add("unsigned", "not signed with this fleet's key", f"{BASE}/faces/junk{i}")
        rejections.add("dev-z", "format 1, not 2", f"{BASE}/records/00/00/x")
        rejections.flush()
        assert len(caplog.records) == 2  # the first of each source, at once
        now[0] = 61.0
        rejections.flush()
        rejections.flush()
    assert len(caplog.records) == 3 and "rejected 49999 more record(s) from unsigned" in caplog.records[-1].message
    assert rejections.total == 50_001


def test_catchup_pages_stay_small_and_split_when_full():
    """Finding 1's design: pages sized from what earlier ones held; a full page is read again in pieces."""
    plan = CatchUp(BASE)
    first = plan.next_page()
    assert first is not None and first.prefixes == ["00"]
    plan.done(first, 20)  # ~20 messages per bucket: about 10 buckets per page
    page = plan.next_page()
    assert page is not None and 5 <= len(page.prefixes) <= 20
    plan.done(page, SPLIT_AT)  # cut short: each of its buckets alone, next
    singles = [plan.next_page() for _ in page.prefixes]
    assert [p.prefixes for p in singles if p] == [[b] for b in page.prefixes]
    plan.done(singles[0], SPLIT_AT + 1)  # one bucket still full: its 256 sub-buckets, dropping the bucket's filter
    sub = plan.next_page()
    assert sub is not None and sub.prefixes == [f"{page.prefixes[0]}/00"]
    assert sub.drop == [f"{BASE}/records/{page.prefixes[0]}/#"]
    assert plan.filters(sub) == [f"{BASE}/records/{page.prefixes[0]}/00/+"]
    seen = set(first.prefixes) | {sub.prefixes[0]}
    while (p := plan.next_page()) is not None:
        plan.done(p, 1)
        seen |= set(p.prefixes)
    assert set(BUCKETS) <= seen | set(page.prefixes)
