"""Recent events' face crops: kept on the device only, aged out, and used to correct the gallery."""
import json
import os
import signal
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from faces import FACE_BOX, astronaut_bgr, turned
from running import enroll as enroll_with_model
from running import is_status, shipped_model, write_config

from edgeface.config import parse
from edgeface.config.yamltree import ConfigError
from edgeface.store.events import EventsError, EventStore, face_crop

REPO = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_events_are_kept_owner_only_newest_first_and_limited_by_count(tmp_path):
    clock = Clock()
    store = EventStore(tmp_path / "events", max_count=3, max_age=3600, clock=clock)
    frame = astronaut_bgr()
    ids = []
    for k in range(5):
        event = store.add("front", "eileen" if k % 2 else None, 0.95, FACE_BOX, clock.t + k, frame)
        ids.append(event.id)
    kept = store.events()
    assert [e.id for e in kept] == ids[:1:-1]  # the newest three, newest first
    assert kept[0].name is None and kept[1].name == "eileen" and kept[0].camera == "front"
    folder = tmp_path / "events"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(os.listdir(folder))
    assert len(files) == 6 and not any(f.endswith(".tmp") for f in files)
    assert all(stat.S_IMODE((folder / f).stat().st_mode) == 0o600 for f in files)


def test_events_age_out_and_go_with_their_person(tmp_path):
    clock = Clock()
    store = EventStore(tmp_path / "events", max_count=100, max_age=600, clock=clock)
    frame = astronaut_bgr()
    old = store.add("front", "eileen", 0.95, FACE_BOX, clock.t, frame)
    clock.t += 300
    ann = store.add("back", "ann", 0.96, FACE_BOX, clock.t, frame)
    bob = store.add("back", "bob", 0.97, FACE_BOX, clock.t, frame)
    clock.t += 301  # the first is now 601 s old
    assert {e.id for e in store.events()} == {ann.id, bob.id}
    assert not (tmp_path / "events" / f"{old.id}.jpg").exists()
    assert store.follow({"1@1.0": ("bob", frozenset())}) == 1  # ann is no longer in the gallery
    assert [e.name for e in store.events()] == ["bob"]


def test_a_bad_or_unknown_event_id_is_refused_by_name(tmp_path):
    store = EventStore(tmp_path / "events")
    with pytest.raises(EventsError, match="not an event id"):
        store.crop("../../etc/passwd")
    with pytest.raises(EventsError, match="20261124T001002-abcdef: not found"):
        store.crop("20261124T001002-abcdef")


def test_the_crop_holds_the_face_with_room_around_it_and_stays_in_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    assert face_crop(frame, (10, 10, 20, 20)).shape == (50, 50, 3)  # 3 boxes wide, clipped at 0
    assert face_crop(frame, (300, 10, 20, 20)) is None


def test_the_events_section_is_checked():
    assert parse("events: {keep_crops: true, max_count: 10, max_age: 60}").events.max_count == 10
    with pytest.raises(ConfigError, match="events.max_count"):
        parse("events: {max_count: 0}")
    with pytest.raises(ConfigError, match="events.max_age"):
        parse("events: {max_age: -1}")


def test_review_and_correct_from_the_command_line(tmp_path, cli):
    db = tmp_path / "gallery.db"
    store = EventStore(tmp_path / "events")  # where the commands look: beside the gallery
    t = time.time()  # (a time far from now ages out: see test_events_faults.py)
    seen = store.add("front", None, 0.5, FACE_BOX, t, astronaut_bgr())
    turned_frame = turned(astronaut_bgr(), 30)
    r = cli("events", "--json", "--gallery", db)
    assert r.returncode == 0, r.stderr
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["id"] for e in listed] == [seen.id]
    assert set(listed[0]) == {"id", "name", "score", "camera", "time", "box"}  # where in the crop: internal
    r = cli("enroll", "eileen", "--event", seen.id, "--gallery", db)
    assert r.returncode == 0 and "1 new face(s) enrolled" in r.stdout, r.stdout + r.stderr
    # a face the camera will keep naming eileen, marked as not her
    from edgeface.config import Config
    from edgeface.recognition.pipeline import build_recognizer

    recognizer = build_recognizer(Config())
    found = recognizer.find(turned_frame)
    x, y, w, h = found[0].box()
    wrong = store.add("front", "eileen", 0.97, (x, y, w, h), t + 5, turned_frame)
    r = cli("enroll", "--not", "eileen", "--event", wrong.id, "--gallery", db)
    assert r.returncode == 0 and "1 new face(s) marked as not eileen" in r.stdout, r.stdout + r.stderr
    r = cli("gallery", "list", "--json", "--gallery", db)
    assert json.loads(r.stdout) == [{"name": "eileen", "embeddings": 1, "negatives": 1}]
    r = cli("enroll", "eileen", "--event", "20990101T000000-000000", "--gallery", db)
    assert r.returncode == 1 and "not found" in r.stderr
    r = cli("gallery", "remove", "eileen", "--gallery", db)
    assert r.returncode == 0 and "1 event crop(s)" in r.stdout, r.stdout
    assert [e.id for e in store.events()] == [seen.id]  # the unknown face's event stays


@pytest.mark.slow
@pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")
def test_the_daemon_keeps_event_crops_and_never_publishes_them(tmp_path, mosquitto, subscriber, run_daemon,  # noqa: F811
                                                               media, cli):  # noqa: F811
    model = shipped_model()
    enroll_with_model(tmp_path / "gallery.db", media["photo"], model)
    sub = subscriber("#")
    config = write_config(tmp_path, mosquitto, model, media=media, events={"keep_crops": True, "max_count": 5})
    d = run_daemon(config)
    named = sub.wait_for(lambda m: m.topic == "edgeface/front/identity" and m.json()["name"] == "astronaut", 120)
    assert named is not None, d.log()
    deadline = time.monotonic() + 30
    listed = []
    while not listed and time.monotonic() < deadline:
        r = cli("events", "--json", "--config", config)
        listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(e["name"] == "astronaut" and e["camera"] == "front" for e in listed), d.log()
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()
    assert sub.wait_for(is_status("offline"), 10) is not None
    # nothing that left the device carries a picture: every payload is short JSON or a plain state
    for m in sub.messages:
        assert len(m.payload) < 4096 and not m.payload.startswith(b"\xff\xd8"), m.topic
    folder = tmp_path / "events"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and len(list(folder.glob("*.jpg"))) <= 5


def test_an_event_knows_where_its_face_is_in_its_crop(tmp_path):
    store = EventStore(tmp_path / "events")
    frame = np.zeros((200, 300, 3), np.uint8)
    for box in [(10, 20, 40, 40), (100, 100, 40, 40), (250, 150, 40, 40)]:
        event = store.add("front", None, 0.5, box, time.time(), frame)
        assert event.crop_box is not None and event.face_in_crop() == tuple(event.crop_box)
        # an event kept before crop_box was written gets the same answer from its frame box
        assert store.crop(event.id)[1].face_in_crop() == tuple(event.crop_box)
        old = type(event)(event.id, event.name, event.score, event.camera, event.time, event.box)
        assert old.face_in_crop() == tuple(event.crop_box), box
