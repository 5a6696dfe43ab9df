"""Event crops under faults (issue 26, findings 7, 16 and 18): a bad record, a full or read-only
disk, a clock that was a year ahead, a file that is not a crop, an id with a newline."""
import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from faces import FACE_BOX, astronaut_bgr
from galleries import enrol
from running import edgeface

from edgeface.store.events import EventsError, EventStore

REPO = Path(__file__).resolve().parent.parent
YEAR = 365 * 86400.0


def bad_record(folder, event_id, **fields):
    """A record as the daemon writes one, with ``fields`` replaced, and its crop."""
    record = {"id": event_id, "name": "eileen", "score": 0.9, "camera": "front", "time": 1_800_000_000.0,
              "box": list(FACE_BOX), "crop_box": [92, 75, 92, 92], **fields}
    (folder / f"{event_id}.json").write_text(json.dumps(record))
    (folder / f"{event_id}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")


# -- finding 7: "time": null ---------------------------------------------------------------
@pytest.mark.parametrize("fields", [{"time": None}, {"time": "soon"}, {"time": float("nan")}, {"score": None},
                                    {"box": [1, 2]}, {"crop_box": "x"}, {"name": 5}, {"id": "other"},
                                    {"camera": "x" * 70_000}])
def test_a_bad_record_does_not_stop_the_daemons_store_and_is_cleared(tmp_path, fields):
    store = EventStore(tmp_path / "events")
    good = store.add("front", "eileen", 0.9, FACE_BOX, time.time(), astronaut_bgr())
    bad_record(tmp_path / "events", "20261124T001002-abcdef", **fields)
    # before: TypeError from the sort, which ended the camera's worker (and the daemon, in a loop)
    new = store.add("front", "eileen", 0.9, FACE_BOX, time.time() + 1, astronaut_bgr())
    assert [e.id for e in store.events()] == [new.id, good.id]
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == sorted(
        f"{e.id}{s}" for e in (new, good) for s in (".jpg", ".json"))
    with pytest.raises(EventsError, match="20261124T001002-abcdef: not found"):
        store.crop("20261124T001002-abcdef")


def test_a_record_with_a_field_of_a_newer_version_is_kept(tmp_path):
    store = EventStore(tmp_path / "events", clock=lambda: 1_800_000_000.0)
    (tmp_path / "events").mkdir()
    bad_record(tmp_path / "events", "20261124T001002-abcdef", mood="happy")
    assert [e.id for e in store.events()] == ["20261124T001002-abcdef"]


def test_the_commands_survive_a_record_with_null_time_and_removal_takes_the_crops(tmp_path):
    db = tmp_path / "gallery.db"
    enrol(db, "eileen")
    store = EventStore(tmp_path / "events")
    kept = store.add("front", "eileen", 0.9, FACE_BOX, time.time(), astronaut_bgr())
    bad_record(tmp_path / "events", "20261124T001002-abcdef", time=None)
    r = edgeface("events", "--gallery", db)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert kept.id in r.stdout
    bad_record(tmp_path / "events", "20261124T001003-abcdef", time=None)
    r = edgeface("gallery", "remove", "eileen", "--gallery", db)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert list((tmp_path / "events").iterdir()) == []  # her crop went, and the bad records


# -- finding 16: full disk, clock a year ahead, read-only folder ---------------------------
def test_a_crop_whose_record_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    store = EventStore(tmp_path / "events")
    write = EventStore._write

    def disk_full_for_records(path, data):
        if path.suffix == ".json":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, data)

    monkeypatch.setattr(EventStore, "_write", staticmethod(disk_full_for_records))
    with pytest.raises(OSError):
        store.add("front", "eileen", 0.9, FACE_BOX, time.time(), astronaut_bgr())
    assert list((tmp_path / "events").iterdir()) == []


def test_an_orphan_crop_and_a_stale_temporary_file_are_pruned(tmp_path):
    """What a power cut between the crop and its record leaves (or an older version on a full disk)."""
    clock = type("Clock", (), {"t": time.time(), "__call__": lambda self: self.t})()
    store = EventStore(tmp_path / "events", clock=clock)
    kept = store.add("front", "eileen", 0.9, FACE_BOX, clock.t, astronaut_bgr())
    folder = tmp_path / "events"
    orphan, tmp = folder / "20261124T001002-abcdef.jpg", folder / "20261124T001003-abcdef.json.tmp"
    for path in (orphan, tmp):
        path.write_bytes(b"\xff\xd8\xff")
    assert store.prune() == 0 and orphan.exists()  # just written: its record may be on the way
    clock.t += 600
    for path in (orphan, tmp):
        os.utime(path, (clock.t - 600, clock.t - 600))
    store.prune()
    assert not orphan.exists() and not tmp.exists()
    assert [e.id for e in store.events()] == [kept.id]


def test_events_stamped_a_year_ahead_do_not_push_out_new_ones(tmp_path):
    now = time.time()
    clock = type("Clock", (), {"t": now + YEAR, "__call__": lambda self: self.t})()
    store = EventStore(tmp_path / "events", max_count=200, clock=clock)
    frame = astronaut_bgr()
    for k in range(200):  # a Pi without a clock, a year ahead until NTP answered
        store.add("front", None, 0.5, FACE_BOX, clock.t + k, frame)
    clock.t = now  # NTP set it right
    new = store.add("front", "eileen", 0.9, FACE_BOX, now, frame)
    listed = store.events()
    assert listed[0].id == new.id and len(listed) == 1  # before: the new one was the one pruned


def test_events_a_moment_ahead_are_kept(tmp_path):
    now = time.time()
    store = EventStore(tmp_path / "events", max_count=3, clock=lambda: now)
    ahead = store.add("front", None, 0.5, FACE_BOX, now + 5, astronaut_bgr())  # a small step back of the clock
    new = store.add("front", None, 0.5, FACE_BOX, now, astronaut_bgr())
    assert [e.id for e in store.events()] == [ahead.id, new.id]


@pytest.fixture
def read_only_events(tmp_path):
    """An events folder on a file system mounted read-only (root only: chmod does not stop root)."""
    folder = tmp_path / "events"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a read-only file system")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_read_only_events_folder_is_reported_not_a_traceback(tmp_path, read_only_events):
    db = tmp_path / "gallery.db"
    enrol(db, "eileen")
    old = time.time() - 30 * 86400  # past max_age: listing wants to delete it
    store = EventStore(read_only_events, clock=lambda: old)
    store.add("front", "eileen", 0.9, FACE_BOX, old, astronaut_bgr())
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_events)], check=True)
    r = edgeface("events", "--gallery", db)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "read-only" in r.stderr.lower() or "cannot" in r.stderr.lower(), r.stderr
    with pytest.raises(OSError):  # the daemon's writes fail as an OSError, which it logs and carries on
        EventStore(read_only_events).add("front", "eileen", 0.9, FACE_BOX, time.time(), astronaut_bgr())
    r = edgeface("gallery", "remove", "eileen", "--gallery", db)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0 and "cannot delete" in r.stderr, r.stderr  # removed from the gallery; crops said
    assert "eileen" not in edgeface("gallery", "list", "--gallery", db).stdout


# -- finding 18: a file that is not a crop, an id with a newline ---------------------------
def test_enroll_event_refuses_a_huge_file_without_reading_it(tmp_path):
    store = EventStore(tmp_path / "events")
    event = store.add("front", None, 0.5, FACE_BOX, time.time(), astronaut_bgr())
    with open(tmp_path / "events" / f"{event.id}.jpg", "r+b") as f:
        f.truncate(1 << 30)  # sparse: 1 GB that takes no disk
    with pytest.raises(EventsError, match=f"event {event.id}: .*1024 MB.*not a face crop"):
        store.crop(event.id)
    (tmp_path / "events" / f"{event.id}.jpg").write_bytes(b"PK\x03\x04" + b"\0" * 1000)
    with pytest.raises(EventsError, match="not a face crop"):
        store.crop(event.id)
    r = edgeface("enroll", "eileen", "--event", event.id, "--gallery", tmp_path / "gallery.db")
    assert r.returncode == 1 and "not a face crop" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_an_event_id_with_a_trailing_newline_is_not_an_id(tmp_path):
    store = EventStore(tmp_path / "events")
    event = store.add("front", None, 0.5, FACE_BOX, time.time(), astronaut_bgr())
    assert store.crop(event.id)[1].id == event.id
    for bad in (event.id + "\n", event.id + "\r\n", " " + event.id):
        with pytest.raises(EventsError, match="not an event id"):
            store.crop(bad)
