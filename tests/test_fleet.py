"""Fleet gallery sync: the record rules without a broker, then three real daemons on a real mosquitto."""
import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from running import enroll, shipped_model, write_config

from edgeface.fleet.ledger import FleetLedger
from edgeface.fleet.ledger import receive as receive_outcome
from edgeface.fleet.records import FleetError, canonical, face_record, negative_key, read_key, record_topic, sign
from edgeface.store.gallery import Gallery, LedgerEntry

REPO = Path(__file__).resolve().parent.parent
KEY = b"k" * 32
MODEL = "a" * 64
FLEET = "home"
BASE = f"edgeface/fleet/{FLEET}"


def receive(ledger, topic, payload, key, fleet, model):
    """(kind, detail) of one received record, as the rules below read it."""
    o = receive_outcome(ledger, BASE, topic, payload, key, fleet, model)
    return o.kind, (o.detail if o.kind != "other model" else o.source)


def _record(sha_n, person, version, origin="dev-a", vector=True, key=KEY, model=MODEL):
    sha = f"{sha_n:064x}"
    v = np.zeros(4, np.float32)
    v[sha_n % 4] = 1
    body = face_record(FLEET, sha, LedgerEntry(person, int(version * 1000), origin, not vector),
                       v.tobytes() if vector else None, model)
    return record_topic(BASE, sha), canonical(sign(body, key))


def _negative(sha_n, person, version, origin="dev-a", vector=True, key=KEY, topic_person=None):
    """A "photo sha_n is not person" record (topic_person: a topic naming someone else)."""
    sha = f"{sha_n:064x}"
    v = np.zeros(4, np.float32)
    v[sha_n % 4] = 1
    body = face_record(FLEET, sha, LedgerEntry(person, int(version * 1000), origin, not vector),
                       v.tobytes() if vector else None, MODEL, negative=True)
    return record_topic(BASE, negative_key(sha, topic_person or person)), canonical(sign(body, key))


def _negatives(gallery):
    return sorted((p.name, p.negatives) for p in gallery.people() if p.negatives)


def _people(gallery):
    return sorted((p.name, p.embeddings) for p in gallery.people())


def test_records_are_applied_newest_first_and_tombstones_hold(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        ledger = FleetLedger(g)
        assert receive(ledger, *_record(1, "ann", 10.0), KEY, FLEET, MODEL)[0] == "applied"
        assert receive(ledger, *_record(2, "ann", 10.0), KEY, FLEET, MODEL)[0] == "applied"
        assert _people(g) == [("ann", 2)]
        # an older copy of photo 1 (a device that was offline) changes nothing
        assert receive(ledger, *_record(1, "bob", 9.0), KEY, FLEET, MODEL)[0] == "old"
        # removal: tombstones; an offline device's older "ann" records cannot bring her back
        receive(ledger, *_record(1, "ann", 20.0, vector=False), KEY, FLEET, MODEL)
        receive(ledger, *_record(2, "ann", 20.0, vector=False), KEY, FLEET, MODEL)
        assert _people(g) == []
        assert receive(ledger, *_record(1, "ann", 15.0, origin="dev-c"), KEY, FLEET, MODEL)[0] == "old"
        assert _people(g) == []
        # a rename: the same photo, newer, under another name moves it
        receive(ledger, *_record(3, "cy", 30.0), KEY, FLEET, MODEL)
        receive(ledger, *_record(3, "cyrus", 31.0), KEY, FLEET, MODEL)
        assert _people(g) == [("cyrus", 1)]
        # equal versions: the larger device id wins, on every device alike
        receive(ledger, *_record(4, "dee", 40.0, origin="dev-a"), KEY, FLEET, MODEL)
        receive(ledger, *_record(4, "dora", 40.0, origin="dev-b"), KEY, FLEET, MODEL)
        receive(ledger, *_record(4, "dee", 40.0, origin="dev-a"), KEY, FLEET, MODEL)
        assert ("dora", 1) in _people(g)


def test_forged_foreign_and_other_model_records_are_refused(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        ledger = FleetLedger(g)
        topic, payload = _record(1, "mallory", 10.0, key=b"x" * 32)
        assert receive(ledger, topic, payload, KEY, FLEET, MODEL) == ("rejected", "not signed with this fleet's key")
        body = json.loads(_record(1, "mallory", 10.0)[1])
        body["person"] = "eve"  # changed after signing
        assert receive(ledger, topic, json.dumps(body).encode(), KEY, FLEET, MODEL)[0] == "rejected"
        assert receive(ledger, topic, b"not json", KEY, FLEET, MODEL)[0] == "rejected"
        other_topic, _ = _record(2, "ann", 10.0)
        assert receive(ledger, other_topic, _record(1, "ann", 10.0)[1], KEY, FLEET, MODEL)[0] == "rejected"
        assert receive(ledger, *_record(1, "ann", 10.0, model="b" * 64), KEY, FLEET, MODEL) == ("other model", "dev-a")
        assert _people(g) == []


def test_not_them_records_wait_for_their_person_and_go_with_them(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        ledger = FleetLedger(g)
        # "photo 5 is not ann" before ann is here: it waits, nothing is written
        assert receive(ledger, *_negative(5, "ann", 10.0), KEY, FLEET, MODEL) == ("pending", "ann")
        assert ledger.entries() == {}
        receive(ledger, *_record(1, "ann", 9.0), KEY, FLEET, MODEL)
        assert receive(ledger, *_negative(5, "ann", 10.0), KEY, FLEET, MODEL)[0] == "applied"
        assert _negatives(g) == [("ann", 1)]
        # the same photo may be "not" several people; a photo of ann's own is never "not ann"
        receive(ledger, *_record(2, "bob", 9.0), KEY, FLEET, MODEL)
        assert receive(ledger, *_negative(5, "bob", 11.0), KEY, FLEET, MODEL)[0] == "applied"
        assert receive(ledger, *_negative(1, "ann", 11.0), KEY, FLEET, MODEL)[0] == "applied"
        assert _negatives(g) == [("ann", 1), ("bob", 1)]
        # newest wins: a tombstone removes it, an older copy cannot bring it back
        receive(ledger, *_negative(5, "bob", 12.0, vector=False), KEY, FLEET, MODEL)
        assert receive(ledger, *_negative(5, "bob", 11.5), KEY, FLEET, MODEL)[0] == "old"
        assert _negatives(g) == [("ann", 1)]
        # a topic that names another person is refused
        assert receive(ledger, *_negative(6, "ann", 13.0, topic_person="bob"), KEY, FLEET, MODEL)[0] == "rejected"
        # ann removed (her last face's tombstone): her negatives go too, marked gone in the ledger
        receive(ledger, *_record(1, "ann", 20.0, vector=False), KEY, FLEET, MODEL)
        assert _people(g) == [("bob", 1)] and _negatives(g) == []
        assert ledger.entries()[negative_key(f"{5:064x}", "ann")].deleted
        # (the same version as the one marked gone: not applied, and not re-asserted either)
        assert receive(ledger, *_negative(5, "ann", 10.0), KEY, FLEET, MODEL)[0] == "same"


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(8))))
def test_any_order_of_the_same_records_gives_the_same_gallery(tmp_path_factory, order):
    records = [_record(1, "ann", 1.0), _record(1, "ann", 5.0, vector=False), _record(2, "bob", 2.0),
               _record(2, "bo", 3.0), _record(3, "cy", 4.0), _record(3, "cy", 4.0, origin="dev-z"),
               _record(4, "dee", 6.0), _record(4, "dee", 7.0, vector=False)]
    with Gallery(tmp_path_factory.mktemp("g") / "g.db") as g:
        ledger = FleetLedger(g)
        for i in order:
            receive(ledger, *records[i], KEY, FLEET, MODEL)
        assert _people(g) == [("bo", 1), ("cy", 1)]
        assert ledger.entries()[f"{3:064x}"].origin == "dev-z"


def test_the_key_file_must_be_private_and_long_enough(tmp_path):
    key = tmp_path / "fleet.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with pytest.raises(FleetError, match="can be read by other users"):
        read_key(key)
    key.chmod(0o600)
    assert len(read_key(key)) == 32
    key.write_bytes(b"short")
    with pytest.raises(FleetError, match="5 bytes; use 32 or more"):
        read_key(key)
    # random bytes are taken whole, even when they start or end like whitespace
    binary = b"\n " + os.urandom(28) + b"\t\n"
    key.write_bytes(binary)
    assert read_key(key) == binary
    # a text key loses its newline, so devices that wrote it with or without one agree
    text = os.urandom(32).hex().encode()
    key.write_bytes(text + b"\n")
    assert read_key(key) == text


# -- three daemons -------------------------------------------------------------------------
def _people_in(db) -> set[str]:
    if not Path(db).exists():
        return set()
    try:
        return {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM people")}
    except sqlite3.Error:
        return set()


def _negatives_in(db) -> dict[str, int]:
    try:
        return dict(sqlite3.connect(db).execute(
            "SELECT p.name, COUNT(*) FROM negatives n JOIN people p ON p.id = n.person_id GROUP BY p.name"))
    except sqlite3.Error:
        return {}


def _wait(predicate, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _device(tmp_path, name, mosquitto, model, key, media):
    d = tmp_path / name
    d.mkdir()
    return write_config(d, mosquitto, model, media=media, fleet={"name": FLEET, "key_file": str(key), "device": name},
                        mqtt={"client_id": f"edgeface-{name}"})


@pytest.fixture(scope="module")
def quiet_media(tmp_path_factory):
    """A few seconds of an empty grey room: the daemons need a camera, not faces."""
    import cv2

    path = tmp_path_factory.mktemp("media") / "room.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (160, 120))
    for _ in range(10):
        vw.write(np.full((120, 160, 3), 90, np.uint8))
    vw.release()
    from faces import astronaut_bgr, write_jpeg

    photo = write_jpeg(path.parent / "eileen.jpg", astronaut_bgr())
    return {"clip": str(path), "photo": photo}


@pytest.mark.slow
@pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")
def test_three_devices_share_enrolments_and_removals(tmp_path, mosquitto, run_daemon, quiet_media):  # noqa: F811
    model = shipped_model()
    key = tmp_path / "fleet.key"
    # random bytes that start and end like whitespace: the key is taken whole on every device
    key.write_bytes(b"\n" + os.urandom(30) + b" ")
    key.chmod(0o600)
    configs = {n: _device(tmp_path, n, mosquitto, model, key, quiet_media) for n in ("a", "b", "c")}
    galleries = {n: tmp_path / n / "gallery.db" for n in configs}
    daemons = {n: run_daemon(configs[n]) for n in configs}

    # enrol on A: B and C name her
    enroll(galleries["a"], quiet_media["photo"], model, name="eileen")
    for n in ("b", "c"):
        assert _wait(lambda n=n: "eileen" in _people_in(galleries[n])), daemons[n].log()
    r = subprocess.run([sys.executable, "-m", "edgeface", "gallery", "list", "--config", configs["b"]],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "eileen\t1 face(s)\tfrom a" in r.stdout, r.stdout + r.stderr

    # C is off while A enrols someone else; it has them once it is back
    daemons["c"].signal(signal.SIGTERM)
    assert daemons["c"].wait(15) == 0
    from faces import astronaut_bgr, turned, write_jpeg

    other = write_jpeg(tmp_path / "other.jpg", turned(astronaut_bgr(), 25))
    enroll(galleries["a"], other, model, name="frank")
    assert _wait(lambda: "frank" in _people_in(galleries["b"]))
    assert "frank" not in _people_in(galleries["c"])
    # ... and B marks a face as "not frank": A has it, and C once it is back
    stranger = write_jpeg(tmp_path / "stranger.jpg", turned(astronaut_bgr(), -25))
    r = subprocess.run([sys.executable, "-m", "edgeface", "enroll", "--not", "frank", stranger, "--gallery",
                        galleries["b"], "--model", model], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _wait(lambda: _negatives_in(galleries["a"]) == {"frank": 1}), daemons["a"].log()
    daemons["c"] = run_daemon(configs["c"])
    assert _wait(lambda: "frank" in _people_in(galleries["c"])), daemons["c"].log()
    assert _wait(lambda: _negatives_in(galleries["c"]) == {"frank": 1}), daemons["c"].log()

    # C off again; B removes eileen; gone on A, and on C once it is back
    daemons["c"].signal(signal.SIGTERM)
    assert daemons["c"].wait(15) == 0
    r = subprocess.run([sys.executable, "-m", "edgeface", "gallery", "remove", "eileen", "--gallery", galleries["b"]],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert _wait(lambda: "eileen" not in _people_in(galleries["a"])), daemons["a"].log()
    daemons["c"] = run_daemon(configs["c"])
    assert _wait(lambda: "eileen" not in _people_in(galleries["c"]) and "frank" in _people_in(galleries["c"]))
    time.sleep(3)  # C's own old copy must not have brought her back anywhere
    assert all("eileen" not in _people_in(g) for g in galleries.values())

    # a rename on C: the new name everywhere, the old one nowhere
    r = subprocess.run([sys.executable, "-m", "edgeface", "gallery", "rename", "frank", "francis", "--gallery",
                        galleries["c"]], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and "renamed frank to francis (1 face(s))" in r.stdout, r.stderr
    assert _wait(lambda: all(_people_in(g) == {"francis"} for g in galleries.values())), \
        {n: _people_in(g) for n, g in galleries.items()}
    assert _wait(lambda: all(_negatives_in(g) == {"francis": 1} for g in galleries.values())), \
        {n: _negatives_in(g) for n, g in galleries.items()}
    # A takes that mark back (gallery remove --photo): gone everywhere, francis stays
    r = subprocess.run([sys.executable, "-m", "edgeface", "gallery", "remove", "francis", "--photo", stranger,
                        "--gallery", galleries["a"]], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and "1 'not them' mark(s)" in r.stdout, r.stdout + r.stderr
    assert _wait(lambda: all(_negatives_in(g) == {} and _people_in(g) == {"francis"} for g in galleries.values())), \
        {n: _negatives_in(g) for n, g in galleries.items()}

    # a forged record (no key) and a record of another model are refused and said so
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mallory")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    topic, payload = _record(7, "mallory", time.time() + 100, key=b"m" * 32, model=json.loads(
        Path(model).with_suffix(".json").read_text())["sha256"])
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    real_key = read_key(key)
    topic2, payload2 = _record(8, "zed", time.time() + 100, origin="old-board", key=real_key, model="b" * 64)
    client.publish(topic2, payload2, qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    assert daemons["a"].wait_log("rejected a record", 30), daemons["a"].log()
    assert daemons["b"].wait_log("ignoring records from old-board: made by another model", 30), daemons["b"].log()
    assert all(not ({"mallory", "zed"} & _people_in(g)) for g in galleries.values())

    # fleet status lists the three devices
    r = subprocess.run([sys.executable, "-m", "edgeface", "fleet", "status", "--config", configs["a"], "--json"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    devices = {d["device"]: d for d in json.loads(r.stdout)}
    assert set(devices) == {"a", "b", "c"} and all(d["verified"] for d in devices.values())
    assert base64  # (used by _record through face_record)


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")
def test_a_rotated_key_takes_effect_on_reload(tmp_path, mosquitto, run_daemon, quiet_media):  # noqa: F811
    """Finding 4: replacing the key file and reloading kept the old key (reload compared paths)."""
    from edgeface.config import FleetConfig, MqttConfig
    from edgeface.fleet.sync import FleetSync
    from edgeface.store.gallery import Enrolment

    model = shipped_model()
    model_id = json.loads(Path(model).with_suffix(".json").read_text())["sha256"]
    key = tmp_path / "fleet.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    daemon = run_daemon(_device(tmp_path, "a", mosquitto, model, key, quiet_media))
    assert daemon.wait_log("fleet: caught up", 60), daemon.log()
    new_key = os.urandom(32)
    key.write_bytes(new_key)  # the same path: only the bytes tell
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_log("fleet: caught up", 60, count=2), daemon.log()
    # a device with the new key enrols someone: the reloaded daemon takes it
    other_key = tmp_path / "other.key"
    other_key.write_bytes(new_key)
    other_key.chmod(0o600)
    with Gallery(tmp_path / "b.db") as g:
        g.add("zoe", [Enrolment(np.random.default_rng(1).normal(size=128).astype(np.float32), "f" * 64, "z.jpg")],
              model_id)
        b = FleetSync(FleetConfig(FLEET, str(other_key), "b"), MqttConfig(host=mosquitto.host, port=mosquitto.port),
                      model_id, "test-b")
        try:
            assert _wait(lambda: b.step(g) or (b.idle() and "f" * 64 in g.ledger()), 60)
        finally:
            b.close()
    assert _wait(lambda: "zoe" in _people_in(tmp_path / "a" / "gallery.db"), 30), daemon.log()
    assert "rejected a record" not in daemon.log()
