"""The daemon as a user runs it (`python -m edgeface run --config ...`) against a real mosquitto.

The clip is the skimage astronaut turned through -60..+60 degrees, then a second of empty
background, looped: each loop is a new appearance and so a new identity event.

Every test here needs an embedding model: the shipped models/dlib_resnet_v1_int8.tflite (or
the one named by $EDGEFACE_TEST_MODEL for the lifecycle tests). Tests that check *names* need
the shipped model itself. Without it they skip.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml
from faces import turned
from running import (
    REPO,
    astronaut_head,
    enroll,
    is_status,
    lifecycle_model,
    make_clip,
    needs_model,
    needs_shipped_model,
    shipped_model,
    write_config,
)

from edgeface.cli.testbroker import free_port


@needs_model
def test_sigterm_publishes_offline_and_exits_0_with_sd_notify(tmp_path, mosquitto, subscriber, run_daemon, media):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"edgeface-test-{os.getpid()}-{time.monotonic_ns()}"
    notify.bind("\0" + name)  # abstract namespace, as NOTIFY_SOCKET=@name
    notify.settimeout(0.2)
    sub = subscriber("edgeface/#")
    d = run_daemon(write_config(tmp_path, mosquitto, lifecycle_model(), media=media),
                   env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "400000"})
    assert sub.wait_for(is_status("online"), 60), d.log()
    got = []
    end = time.monotonic() + 20
    while time.monotonic() < end and not ("READY=1" in "".join(got) and "WATCHDOG=1" in "".join(got)):
        try:
            got.append(notify.recv(4096).decode())
        except TimeoutError:
            pass
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()
    assert sub.wait_for(is_status("offline"), 10), d.log()
    while True:
        try:
            got.append(notify.recv(4096).decode())
        except TimeoutError:
            break
    notify.close()
    text = "\n".join(got)
    assert "READY=1" in text and "WATCHDOG=1" in text and "STOPPING=1" in text, text
    late = subscriber("edgeface/status")
    assert late.wait_for(is_status("offline", retain=True), 10)


@needs_model
def test_sigint_also_stops_cleanly(tmp_path, mosquitto, subscriber, run_daemon, media):
    sub = subscriber("edgeface/status")
    d = run_daemon(write_config(tmp_path, mosquitto, lifecycle_model(), media=media))
    assert sub.wait_for(is_status("online"), 60), d.log()
    d.signal(signal.SIGINT)
    assert d.wait(15) == 0, d.log()
    assert sub.wait_for(is_status("offline"), 10)


@needs_model
def test_kill_9_leaves_retained_offline_via_last_will(tmp_path, mosquitto, subscriber, run_daemon, media):
    sub = subscriber("edgeface/status")
    d = run_daemon(write_config(tmp_path, mosquitto, lifecycle_model(), media=media))
    assert sub.wait_for(is_status("online"), 60), d.log()
    d.signal(signal.SIGKILL)
    d.wait(10)
    assert sub.wait_for(is_status("offline"), 20), "no Last Will after kill -9"
    late = subscriber("edgeface/status")
    assert late.wait_for(is_status("offline", retain=True), 10)


@needs_model
def test_missing_camera_is_retried_without_crashing(tmp_path, mosquitto, subscriber, run_daemon, media):
    cams = [{"name": "usb", "source": "/dev/video97"}, {"name": "gone", "source": str(tmp_path / "nothere.avi")}]
    sub = subscriber("edgeface/status")
    d = run_daemon(write_config(tmp_path, mosquitto, lifecycle_model(), cameras=cams))
    assert sub.wait_for(is_status("online"), 60), d.log()
    assert d.wait_log("camera gone: file", 30) and d.wait_log("retrying in 2 s", 30), d.log()
    assert d.wait_log("camera usb: cannot open /dev/video97", 30), d.log()
    assert d.proc.poll() is None, d.log()
    # the file turns up: that camera starts without a restart
    make_clip(tmp_path / "nothere.avi", face_frames=5, blank_frames=0)
    assert d.wait_log("camera gone: reading", 60), d.log()
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()


@needs_model
def test_broker_restart_daemon_survives_and_delivers_queued_events(tmp_path, mosquitto, subscriber, run_daemon, media):
    from datetime import datetime

    def event_time(m):
        return datetime.fromisoformat(m.json()["timestamp"].replace("Z", "+00:00")).timestamp()

    identity = "edgeface/front/identity"
    sub = subscriber("edgeface/#", persistent=True)  # the restarted broker keeps its messages for it
    d = run_daemon(write_config(tmp_path, mosquitto, lifecycle_model(), media=media))
    assert sub.wait_for(lambda m: m.topic == identity, 90), d.log()
    mosquitto.stop()
    outage_from = time.time()
    assert d.wait_log("MQTT: lost the broker", 30), d.log()
    mark = len(d.log())
    # the daemon keeps recognising: wait until it decided events while the broker was away
    end = time.monotonic() + 90
    while time.monotonic() < end and d.log()[mark:].count("(score ") < 2:
        time.sleep(0.2)
    during = d.log()[mark:].count("(score ")
    assert during >= 2, d.log()
    outage_to = time.time()
    mosquitto.start()
    assert d.wait_log("MQTT: connected", 60, count=2), d.log()
    assert "sent 0 queued" not in d.log()[mark:], d.log()
    # every event decided during the outage arrives afterwards, with its own (outage-time) timestamp
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        late = [m for m in sub.on(identity) if outage_from <= event_time(m) <= outage_to]
        if len(late) >= during:
            break
        time.sleep(0.2)
    assert len(late) >= during, (during, [m.text for m in sub.on(identity)], d.log())
    onlines = [m for m in sub.on("edgeface/status") if m.text == "online" and not m.retain]  # live, not replayed
    assert len(onlines) >= 2, [m.text for m in sub.on("edgeface/status")]  # announced itself again
    assert d.proc.poll() is None  # survived
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()


@needs_model
def test_sighup_reloads_config(tmp_path, mosquitto, subscriber, run_daemon, media):
    sub = subscriber("#")
    config = write_config(tmp_path, mosquitto, lifecycle_model(), media=media)
    d = run_daemon(config)
    assert sub.wait_for(is_status("online"), 60), d.log()
    text = yaml.safe_load(config.read_text())
    text["mqtt"]["topic_prefix"] = "faces2"
    config.write_text(yaml.safe_dump(text))
    d.signal(signal.SIGHUP)
    assert sub.wait_for(lambda m: m.topic == "faces2/status" and m.text == "online", 60), d.log()
    # a broken config on the next SIGHUP is reported and the daemon keeps running
    config.write_text(config.read_text() + "bogus_key: 1\n")
    d.signal(signal.SIGHUP)
    assert d.wait_log("bogus_key: unknown key", 30), d.log()
    assert d.proc.poll() is None
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()
    assert sub.wait_for(lambda m: m.topic == "faces2/status" and m.text == "offline", 10)


@needs_shipped_model
def test_identity_events_name_the_astronaut_from_a_video_file(tmp_path, mosquitto, subscriber, run_daemon, media):
    model = shipped_model()
    enroll(tmp_path / "gallery.db", media["photo"], model)
    sub = subscriber("edgeface/#")
    d = run_daemon(write_config(tmp_path, mosquitto, model, media=media, mqtt={"discovery": True}))
    named = sub.wait_for(lambda m: m.topic == "edgeface/front/identity" and m.json()["name"] == "astronaut", 120)
    assert named is not None, d.log()
    body = named.json()
    assert set(body) == {"name", "score", "camera", "timestamp", "box", "angle", "track_id"}
    assert body["camera"] == "front" and body["timestamp"].endswith("Z") and len(body["box"]) == 4
    assert -75 <= body["angle"] <= 75
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()
    names = {m.json()["name"] for m in sub.on("edgeface/front/identity")}
    assert names <= {"astronaut", None}, names  # never a wrong name
    last = sub.wait_for(lambda m: m.topic == "edgeface/front/last_person", 10)
    assert last.json()["name"] == "astronaut"


@needs_shipped_model
def test_a_missing_gallery_is_reported_and_picked_up_once_someone_is_enrolled(tmp_path, mosquitto, subscriber,
                                                                               run_daemon, media):
    model = shipped_model()
    gallery = tmp_path / "gallery.db"
    sub = subscriber("edgeface/front/identity")
    d = run_daemon(write_config(tmp_path, mosquitto, model, media=media))
    # a typo'd or not yet made gallery: said at start and in the status line, never created empty
    assert d.wait_log("does not exist", 60), d.log()
    assert d.wait_log("gallery MISSING", 30), d.log()
    assert sub.wait_for(lambda m: m.json()["name"] is None, 120), d.log()
    assert not gallery.exists()
    enroll(gallery, media["photo"], model)
    assert d.wait_log("(appeared)", 30), d.log()
    named = sub.wait_for(lambda m: m.json()["name"] == "astronaut", 120)
    assert named is not None, d.log()
    other = tmp_path / "other.jpg"  # one photo, one person: a second person needs their own photo
    cv2.imwrite(str(other), turned(astronaut_head(), 20))
    enroll(gallery, str(other), model, name="eileen")  # a second person: a change on disk
    assert d.wait_log("changed on disk", 30), d.log()
    assert d.proc.poll() is None  # same process: no restart
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0


@needs_shipped_model
def test_a_reload_applies_completely_or_changes_nothing_and_never_ends_the_daemon(tmp_path, mosquitto, subscriber,
                                                                                   run_daemon, media):
    model = shipped_model()
    enroll(tmp_path / "gallery.db", media["photo"], model)
    config = write_config(tmp_path, mosquitto, model, media=media)
    good = config.read_bytes()
    sub = subscriber("edgeface/#")
    d = run_daemon(config)
    assert sub.wait_for(is_status("online"), 60), d.log()
    assert sub.wait_for(lambda m: m.topic.endswith("/identity") and m.json()["name"] == "astronaut", 120), d.log()
    # a copy of the model with one more byte: another model id, which the gallery refuses
    other = tmp_path / "other_model.tflite"
    other.write_bytes(Path(model).read_bytes() + b"\0")
    Path(other).with_suffix(".json").write_bytes(Path(model).with_suffix(".json").read_bytes())
    bad = {
        "not UTF-8": good + b"# caf\xe9\n",
        "python tag": good + b"recognition: {delegate_options: !!python/object/apply:os.system [echo hi]}\n",
        "keepalive": good.replace(b"mqtt:", b"mqtt:\n  keepalive: -1", 1),
        "TLS CA": good.replace(b"mqtt:", f"mqtt:\n  tls: {{ca: {tmp_path / 'no-ca.pem'}}}".encode(), 1),
        "refused model": good.replace(model.encode(), str(other).encode()),
    }
    for n, (what, text) in enumerate(bad.items(), 1):
        config.write_bytes(text)
        d.signal(signal.SIGHUP)
        assert d.wait_log("keeping the running config", 30, count=n), (what, d.log())
        assert d.proc.poll() is None, (what, d.log())
    assert d.log().count(": model /") == 1, d.log()  # the interpreter was never replaced
    # the running config still works: a new event for the astronaut after a cut in the clip
    seen = len(sub.messages)
    assert sub.wait_for(lambda m: m.topic.endswith("/identity") and m.json()["name"] == "astronaut", 120,
                        start=seen), d.log()
    # only the threshold changed: matching settings only, no new interpreter, cameras kept
    config.write_bytes(good.replace(b"recognition:", b"recognition:\n  threshold: 0.99", 1) if b"recognition:" in good
                       else good + b"recognition: {threshold: 0.99}\n")
    seen = len(sub.messages)
    d.signal(signal.SIGHUP)
    assert d.wait_log("(matching settings only)", 30), d.log()
    assert d.log().count(": model /") == 1 and d.log().count(": cameras: ") == 1, d.log()
    # the running camera's worker took up the new matcher: at 0.99 the astronaut's next face is unknown
    assert sub.wait_for(lambda m: m.topic.endswith("/identity") and m.json()["name"] is None, 120,
                        start=seen), d.log()
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()


def test_unit_file_verifies(tmp_path):
    """systemd-analyze verify accepts the unit (ExecStart pointed at this interpreter: verify
    insists the program exists, and /usr/local/bin/edgeface only does after installing)."""
    import shutil

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (REPO / "systemd" / "edgeface.service").read_text()
    assert "ExecStart=/usr/local/bin/edgeface run --config /etc/edgeface/edgeface.yaml" in text
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=edgeface",
                   "ConfigurationDirectory=edgeface", "SupplementaryGroups=video", "ProtectSystem=strict",
                   "ProtectHome=yes", "NoNewPrivileges=yes", "PrivateTmp=yes", "DevicePolicy=closed",
                   "DeviceAllow=char-video4linux", "DeviceAllow=/dev/apex_0"):
        assert needed in text, needed
    unit = tmp_path / "edgeface.service"
    unit.write_text(text.replace("/usr/local/bin/edgeface", sys.executable))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "edgeface.service" not in r.stderr, r.stderr


def test_sd_notify_to_a_path_socket(tmp_path, monkeypatch):
    from edgeface.service import sdnotify

    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.ready("1 camera(s)") and sdnotify.watchdog() and sdnotify.stopping()
    got = [s.recv(1024).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=1 camera(s)", "WATCHDOG=1", "STOPPING=1"]
    assert sdnotify.watchdog_interval() == 15.0
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sdnotify.ready() is False  # outside systemd: a no-op
    s.close()


@pytest.mark.slow
@pytest.mark.broker  # the demo's own, in-process
@needs_shipped_model
def test_demo_prints_the_astronaut_messages(tmp_path):
    # amqtt when installed (the demo extra), else the mosquitto the tests use anyway
    r = subprocess.run([sys.executable, "-m", "edgeface", "demo", "--frames", "20", "--keep", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    identity = [line for line in r.stdout.splitlines() if "/identity" in line]
    assert any('"name": "astronaut"' in line for line in identity), r.stdout
    assert all('"name": "astronaut"' in line or '"name": null' in line for line in identity), r.stdout
    assert "edgeface/status  online" in r.stdout and "edgeface/status  offline" in r.stdout
    assert (tmp_path / "astronaut.avi").is_file() and (tmp_path / "gallery.db").is_file()


DATASET = os.environ.get("EDGEFACE_DATASET")


def compose_people_clip(path, photos, seconds=3.0, gap=2.0, fps=10.0, size=(480, 360)):
    """One person per segment (turning -60..+60 degrees), an empty second between segments.
    Returns [(start_s, end_s, name)]."""
    bg = np.tile(np.linspace(60, 180, size[0], dtype=np.uint8)[None, :, None], (size[1], 1, 3))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    spans, t = [], 0.0
    for name, photo in photos:
        img = cv2.imread(photo)
        n = int(seconds * fps)
        for k in range(n):
            tile = turned(img, -60 + 120 * k / (n - 1))
            s = 0.9 * min(size[0] / tile.shape[1], size[1] / tile.shape[0])
            tile = cv2.resize(tile, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            frame = bg.copy()
            y, x = (size[1] - tile.shape[0]) // 2, (size[0] - tile.shape[1]) // 2
            frame[y: y + tile.shape[0], x: x + tile.shape[1]] = tile
            vw.write(frame)
        for _ in range(int(gap * fps)):
            vw.write(bg)
        spans.append((t, t + seconds, name))
        t += seconds + gap
    vw.release()
    return spans


def clearest_face_photo(folder, candidates=4):
    """Of the first few photos, the one whose largest face fills most of it: a clip of a photo
    with a tiny or profile face tests the detector, not the daemon."""
    from edgeface.vision.detect import HaarDetector

    detector = HaarDetector()
    best, best_fill = None, -1.0
    for name in sorted(os.listdir(folder))[:candidates]:
        img = cv2.imread(os.path.join(folder, name))
        if img is None:
            continue
        faces = detector.detect(img)
        fill = max((d.size for d in faces), default=0) / min(img.shape[:2])
        if fill > best_fill:
            best, best_fill = os.path.join(folder, name), fill
    return best


@pytest.mark.dataset
@needs_shipped_model
@pytest.mark.skipif(not DATASET or not os.path.isdir(str(DATASET)), reason="EDGEFACE_DATASET (five-celebs) not set")
def test_five_celebs_clip_every_person_named_no_wrong_name(tmp_path, mosquitto, subscriber, run_daemon):
    from datetime import datetime

    model = shipped_model()
    people = sorted(os.listdir(os.path.join(DATASET, "val")))
    photos = []
    for person in people:
        train = sorted(os.listdir(os.path.join(DATASET, "train", person)))[:8]  # a few photos each: quicker
        enroll(tmp_path / "gallery.db", [os.path.join(DATASET, "train", person, f) for f in train], model, name=person)
        photos.append((person, clearest_face_photo(os.path.join(DATASET, "val", person))))
    spans = compose_people_clip(tmp_path / "people.avi", photos, seconds=4.0)
    sub = subscriber("edgeface/cam/identity")
    cams = [{"name": "cam", "source": str(tmp_path / "people.avi")}]
    d = run_daemon(write_config(tmp_path, mosquitto, model, cameras=cams, tracking={"max_missed": 1.0}))
    assert d.wait(300) == 0, d.log()  # a file without loop: the daemon stops at its end
    start_line = next(line for line in d.log().splitlines() if "camera cam: reading" in line)
    t0 = datetime.strptime(start_line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    seen = {}
    for m in sub.messages:
        body = m.json()
        if body["name"] is None:
            continue
        t = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp() - t0
        shown = [name for start, end, name in spans if start - 0.5 <= t <= end + 0.5]
        assert body["name"] in shown, (body, t, spans)  # only right names
        seen[body["name"]] = seen.get(body["name"], 0) + 1
    assert set(seen) == set(people), (seen, d.log())  # every person named
    print("named per person:", seen)


def test_missing_model_exits_1_naming_the_file(tmp_path):
    no_broker = SimpleNamespace(host="127.0.0.1", port=free_port())  # the model fails first; MQTT is never tried
    cfg = write_config(tmp_path, no_broker, str(tmp_path / "no_such_model.tflite"),
                       cameras=[{"name": "a", "source": 0}])
    r = subprocess.run([sys.executable, "-m", "edgeface", "run", "--config", str(cfg)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no_such_model.tflite" in r.stderr, r.stderr


def test_config_without_cameras_is_refused(tmp_path):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("mqtt: {host: localhost}\n")
    r = subprocess.run([sys.executable, "-m", "edgeface", "run", "--config", str(cfg)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cameras: at least one camera is required" in r.stderr, r.stderr


@needs_model
def test_several_cameras_in_one_daemon(tmp_path, mosquitto, subscriber, run_daemon, media):
    cams = [{"name": "front", "source": media["clip"], "loop": True},
            {"name": "back", "source": media["clip"], "loop": True, "fps": 5}]
    sub = subscriber("edgeface/+/identity")
    d = run_daemon(write_config(tmp_path, mosquitto, lifecycle_model(), cameras=cams))
    for camera in ("front", "back"):
        m = sub.wait_for(lambda m, c=camera: m.topic == f"edgeface/{c}/identity", 120)
        assert m is not None and m.json()["camera"] == camera, d.log()
    assert d.wait_log("status: front", 30), d.log()
    assert "; back" in d.log()  # one status line covers every camera
    d.signal(signal.SIGTERM)
    assert d.wait(15) == 0, d.log()
