"""Returning strangers: unknown faces grouped into visitors (edgeface.store.visitors), their id
and appearance count on the unknown messages, `edgeface visitors`, and enrolling a visitor.

The door test runs the real daemon on door_clip footage (needs EDGEFACE_DATASET) against a real
mosquitto, with only mindy_kaling enrolled: elton_john comes four times, madonna once.
"""
import json
import os
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeface.store.visitors import MAX_EMBEDDINGS, VisitorBook, VisitorsError

ROOT = Path(__file__).resolve().parent.parent
DATASET = os.environ.get("EDGEFACE_DATASET")
DOOR_CLIP = Path("/work/shared/acceptance/door_clip.py")
if not DOOR_CLIP.is_file():
    DOOR_CLIP = ROOT.parent / "shared" / "acceptance" / "door_clip.py"


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _near(base, rng, spread):
    return _unit(base + rng.normal(0, spread, base.shape))


def test_a_returning_face_keeps_its_visitor_and_a_different_face_gets_another(tmp_path):
    rng = np.random.default_rng(0)
    a, b = _unit(rng.normal(size=128)), _unit(rng.normal(size=128))
    book = VisitorBook(tmp_path / "visitors.json", max_age=3600, model_id="m", clock=lambda: 1000.0)
    first, new = book.see(_near(a, rng, 0.02), "door", 1, 900.0)
    again, again_new = book.see(_near(a, rng, 0.02), "garden", 2, 950.0)
    other, _ = book.see(b, "door", 3, 960.0)
    assert new and again_new and again.id == first.id and again.appearances == 2
    assert other.id != first.id and other.appearances == 1
    same, same_new = book.see(_near(a, rng, 0.02), "garden", 2, 955.0)
    assert same.appearances == 2 and not same_new  # the same track counts once
    listed = {v.id: v for v in book.visitors()}
    assert listed[first.id].cameras == ["door", "garden"]
    assert listed[first.id].first_seen == 900.0 and listed[first.id].last_seen == 955.0
    assert stat.S_IMODE(os.stat(tmp_path / "visitors.json").st_mode) == 0o600  # strangers' faces: owner only


def test_a_second_track_of_the_same_visit_is_not_another_appearance(tmp_path):
    rng = np.random.default_rng(2)
    a, b = _unit(rng.normal(size=128)), _unit(rng.normal(size=128))
    book = VisitorBook(tmp_path / "visitors.json", clock=lambda: 0.0)
    first, _ = book.see(a, "door", 1, 100.0)
    # the face lost and found again a few seconds later, looking less alike than a return must
    looser = _unit(a + 0.45 * _unit(rng.normal(size=128)))
    assert 0.90 <= float(looser @ a) < 0.935
    split, new = book.see(looser, "door", 2, 104.0)
    assert split.id == first.id and not new and split.appearances == 1
    other_look = _unit(a + 0.45 * _unit(rng.normal(size=128)))
    assert 0.90 <= float(other_look @ a) < 0.935 and float(other_look @ looser) < 0.935
    later, new = book.see(other_look, "door", 3, 200.0)  # as alike, long after: another visitor
    assert later.id != first.id and new
    companion, new = book.see(b, "door", 4, 201.0)  # someone else beside them: their own visitor
    assert companion.id not in (first.id, later.id) and new


def test_visitors_age_out_and_are_forgotten_when_named(tmp_path):
    now = [1000.0]
    book = VisitorBook(tmp_path / "visitors.json", max_age=100, clock=lambda: now[0])
    v, _ = book.see(_unit(np.ones(128)), "door", 1, 996.0)
    w, _ = book.see(_unit(np.arange(128.0) - 64), "door", 2, 1000.0)
    now[0] = 1095.0
    assert [x.id for x in book.visitors()] == [w.id, v.id]
    now[0] = 1097.0
    assert [x.id for x in book.visitors()] == [w.id]  # v was last seen 101 s ago
    assert book.forget(w.id) and book.visitors() == []
    with pytest.raises(VisitorsError, match="not found"):
        book.get(w.id)
    with pytest.raises(VisitorsError, match="not a visitor id"):
        book.get("../etc")


def test_a_visitor_keeps_a_few_views_and_another_model_starts_afresh(tmp_path):
    rng = np.random.default_rng(1)
    a = _unit(rng.normal(size=128))
    book = VisitorBook(tmp_path / "visitors.json", model_id="m1", clock=lambda: 0.0)
    for track in range(MAX_EMBEDDINGS + 3):
        v, _ = book.see(_near(a, rng, 0.01), "door", track, 100.0 * track)
    assert v.appearances == MAX_EMBEDDINGS + 3 and len(v.embeddings) == MAX_EMBEDDINGS
    assert VisitorBook(tmp_path / "visitors.json", model_id="m2", clock=lambda: 0.0).visitors() == []


def test_visitors_cli_lists_them_as_json(tmp_path):
    book = VisitorBook(tmp_path / "visitors.json", clock=time.time)
    v, _ = book.see(_unit(np.ones(128)), "door", 1, time.time())
    r = subprocess.run([sys.executable, "-m", "edgeface", "visitors", "--json", "--gallery", str(tmp_path / "g.db")],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["id"], x["appearances"], x["cameras"]) for x in rows] == [(v.id, 1, ["door"])]
    assert "embeddings" not in rows[0]
    r = subprocess.run([sys.executable, "-m", "edgeface", "enroll", "someone", "--visitor", v.id, "--gallery",
                        str(tmp_path / "g.db")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and f"visitor {v.id}: no face crop" in r.stderr  # keep_crops is off


class ClipFrames:
    """Every frame of a clip, stamped at its own time in the clip (wall clock from t0, and the
    monotonic clock the tracker runs on): the camera worker sees the footage as a camera would
    deliver it, however slowly this machine runs it (a paced file reader drops the frames a busy
    machine cannot keep up with, and the tracker would see seconds between frames: the test
    would measure the load)."""

    def __init__(self, path: Path, t0: float):
        import cv2

        self.cap = cv2.VideoCapture(str(path))
        self.fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.t0, self.mono0, self.n, self.finished = t0, time.monotonic(), 0, False

    def next_frame(self, timeout: float = 0.5):
        from edgeface.service.source import Frame
        from edgeface.vision.pixels import FramePixels

        ok, image = self.cap.read()
        if not ok:
            self.finished = True
            return None
        self.n += 1
        dt = (self.n - 1) / self.fps
        return Frame(FramePixels(image), self.t0 + dt, self.mono0 + dt, self.n)


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.dataset
@pytest.mark.skipif(not DATASET or not DOOR_CLIP.is_file(), reason="EDGEFACE_DATASET / door_clip.py not there")
def test_door_clip_returning_stranger_keeps_one_visitor_id(tmp_path, mosquitto, subscriber):
    from edgeface.config import Config
    from edgeface.config.loader import parse
    from edgeface.mqtt.presence import Presence
    from edgeface.mqtt.publish import Publisher
    from edgeface.recognition.pipeline import build_frame_pipeline, build_recognizer
    from edgeface.service.worker import CameraWorker, WorkerParts
    from edgeface.store.events import EventStore, events_folder
    from edgeface.store.gallery import Gallery
    from edgeface.store.visitors import visitors_path

    clip = tmp_path / "door"
    subprocess.run([sys.executable, str(DOOR_CLIP), str(Path(DATASET, "val")), str(clip), "--seed", "5",
                    "--seconds", "120"], check=True, capture_output=True, timeout=1200)
    truth = json.loads(clip.with_suffix(".json").read_text())
    train = Path(DATASET, "train", "mindy_kaling")
    gallery = tmp_path / "gallery.db"
    r = subprocess.run([sys.executable, "-m", "edgeface", "enroll", "mindy_kaling", *sorted(map(str, train.iterdir())),
                        "--gallery", str(gallery)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    raw = {"gallery": str(gallery), "cameras": [{"name": "door", "source": str(clip.with_suffix(".avi"))}],
           "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "client_id": "visitors-test", "discovery": False},
           "events": {"keep_crops": True},
           # Every queued detection pass on every frame: the budget is wall-clock milliseconds, so under it
           # what is found (and whether a stranger's face or only a box on their eyes and forehead is
           # found, which embeds too far from their face to join their visitor) follows the machine's load.
           "detection": {"budget_ms": 0}}
    (tmp_path / "edgeface.yaml").write_text(yaml.safe_dump(raw))
    cfg: Config = parse(yaml.safe_dump(raw))
    sub = subscriber("edgeface/door/identity")
    visits = subscriber("edgeface/unknown_visitor/event")
    with Gallery(str(gallery)) as g:
        recognizer = build_recognizer(cfg, g)
    publisher = Publisher(cfg.mqtt, ["door"], home=cfg.home)
    publisher.start()
    assert publisher.wait_connected(30)
    t0 = time.time() - 150  # the clip as if it had just been recorded: its events are recent, none in the future
    reader = ClipFrames(clip.with_suffix(".avi"), t0)
    assert recognizer.matcher is not None
    parts = WorkerParts(publisher, Presence(600, 60), EventStore(events_folder(cfg.events, cfg.gallery), cfg.events.max_count,
                                                          1e9), recognizer.matcher,
                        VisitorBook(visitors_path(cfg.gallery), 1e9, recognizer.embedder.spec.model_id))
    worker = CameraWorker("door", reader, build_frame_pipeline(cfg, recognizer), parts, False)
    worker.start()
    worker.join(1500)
    assert worker.finished and worker.errors == 0
    publisher.close(5.0)
    time.sleep(1.0)
    fps = truth["fps"]
    strangers = [a for a in truth["appearances"] if a["name"] != "mindy_kaling"]
    unknown = [m.json() for m in visits.messages]  # the unknown_visitor events: one per new visit
    identity = [m.json() for m in sub.messages if m.json()["name"] is None]
    assert {b["visitor_id"] for b in identity} == {b["visitor_id"] for b in unknown}, (identity, unknown)
    per_appearance: dict[int, list[dict]] = {i: [] for i in range(len(strangers))}
    for body in unknown:
        frame = (datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp() - t0) * fps
        hit = [i for i, a in enumerate(strangers) if a["enter"] - fps <= frame <= a["leave"] + 2 * fps]
        assert hit, (body, frame)  # an unknown message only while a stranger is at the door
        per_appearance[hit[0]].append(body)
    report = [(a["name"], a["enter"], [(b["visitor_id"], b["visits"]) for b in per_appearance[i]])
              for i, a in enumerate(strangers)]
    print("unknown events per stranger appearance:", report)
    # every appearance raises one unknown event (before: 2 of these 5 raised a second one under a
    # second id, from a box on the eyes and forehead beside the whole face's that made a track of its own)
    assert all(len(per_appearance[i]) == 1 for i in per_appearance), report
    ids: dict[str, list[set[str]]] = {}
    for i, a in enumerate(strangers):
        ids.setdefault(a["name"], []).append({b["visitor_id"] for b in per_appearance[i]})
    main_ids = {}
    for name, got in ids.items():
        every = [v for seen in got for v in seen]
        main_ids[name] = max(set(every), key=every.count)
        kept = sum(main_ids[name] in seen for seen in got)
        assert kept >= 0.9 * len(got), (name, got)  # a returning stranger keeps one id
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not set().union(*ids[a]) & set().union(*ids[b]), ids  # two strangers never share one
    elton = main_ids["elton_john"]
    assert max(b["visits"] for b in unknown if b["visitor_id"] == elton) == 4  # seen four times
    r = subprocess.run([sys.executable, "-m", "edgeface", "visitors", "--json", "--config",
                        str(tmp_path / "edgeface.yaml")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    listed = {v["id"]: v for v in map(json.loads, r.stdout.splitlines())}
    assert listed[elton]["appearances"] == 4 and listed[elton]["crops"], listed
    r = subprocess.run([sys.executable, "-m", "edgeface", "enroll", "elton_john", "--visitor", elton, "--config",
                        str(tmp_path / "edgeface.yaml")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert elton not in {v.id for v in VisitorBook(visitors_path(cfg.gallery)).visitors()}
