"""Config loading: defaults, relative paths, secrets, and errors that name the key and line."""

import pytest

from edgeface.config import ConfigError, TlsConfig, load, parse, parse_settings


def write(tmp_path, text, name="edgeface.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load(write(tmp_path, "cameras:\n  - name: front\n    source: 0\n"))
    assert cfg.cameras[0].name == "front" and cfg.cameras[0].source == 0
    assert cfg.mqtt.host == "localhost" and cfg.mqtt.port == 1883 and cfg.mqtt.qos == 1
    assert cfg.mqtt.topic_prefix == "edgeface"
    assert cfg.recognition.threshold is None
    assert cfg.detection.angles  # the detector's own defaults
    assert cfg.tracking.vote_count >= 1
    assert cfg.status_interval == 60


def test_full_config_types_and_relative_paths(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "ca.pem").write_text("not checked as a certificate here, only as a readable file\n")
    cfg = load(write(tmp_path, """
gallery: data/gallery.db
model: m.tflite
cameras:
  - {name: door, source: clip.avi, loop: true, fps: 5}
  - {name: yard, source: "rtsp://cam/stream"}
  - {name: usb, source: /dev/video2}
  - {name: idx, source: "1"}
detection: {angles: [-30, 0, 30], min_neighbors: 3}
recognition: {threshold: 0.6, num_threads: 2, delegate: edgetpu, delegate_options: {device: usb}}
tracking: {vote_count: 5}
mqtt:
  host: broker
  port: 8883
  username: cam
  password_file: pw
  tls: {ca: ca.pem}
  discovery: false
log_level: debug
status_interval: 10
"""))
    assert cfg.gallery == str(tmp_path / "data/gallery.db")
    assert cfg.model == str(tmp_path / "m.tflite")
    assert cfg.cameras[0].source == str(tmp_path / "clip.avi") and cfg.cameras[0].loop and cfg.cameras[0].fps == 5.0
    assert cfg.cameras[1].source == "rtsp://cam/stream"
    assert cfg.cameras[2].source == "/dev/video2"
    assert cfg.cameras[3].source == 1
    assert cfg.detection.angles == [-30.0, 0.0, 30.0] and cfg.detection.min_neighbors == 3
    assert cfg.recognition.delegate == "edgetpu" and cfg.recognition.delegate_options == {"device": "usb"}
    assert cfg.tracking.vote_count == 5
    assert isinstance(cfg.mqtt.tls, TlsConfig) and cfg.mqtt.tls.ca == str(tmp_path / "ca.pem")
    assert cfg.mqtt.password == "s3cret"
    assert cfg.log_level == "DEBUG"
    # the secret never shows in a repr (and so never in a log line that prints the config)
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.mqtt)


def test_password_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFACE_TEST_PW", "hunter2")
    cfg = load(write(tmp_path, "mqtt: {username: u, password_env: EDGEFACE_TEST_PW}\n"))
    assert cfg.mqtt.password == "hunter2" and "hunter2" not in repr(cfg)
    monkeypatch.delenv("EDGEFACE_TEST_PW")
    with pytest.raises(ConfigError, match="mqtt.password_env: environment variable EDGEFACE_TEST_PW"):
        load(write(tmp_path, "mqtt: {username: u, password_env: EDGEFACE_TEST_PW}\n"))


@pytest.mark.parametrize("text, where", [
    ("cameras:\n  - name: a\n    source: 0\n    fsp: 5\n", ":4: cameras[0].fsp: unknown key"),
    ("mqtt:\n  host: x\n  port: eighty\n", ":3: mqtt.port: expected an integer, got 'eighty'"),
    ("cameras:\n  - name: a\n    source: 0\n    fps: fast\n", ":4: cameras[0].fps: expected a number or null, got 'fast'"),
    ("mqtt:\n  tls: maybe\n", ":2: mqtt.tls: expected true or false or a mapping"),
    ("mqtt:\n  tls: {ca: x, cerd: y}\n", ":2: mqtt.tls.cerd: unknown key"),
    ("detection:\n  angles: 30\n", ":2: detection.angles: expected a list"),
    ("detection:\n  min_neighbors: 2.5\n", ":2: detection.min_neighbors: expected an integer"),
    ("recognition:\n  delegate: gpu\n", ":2: recognition.delegate: 'gpu'"),
    ("mqtt: {qos: 3}\n", ":1: mqtt.qos: must be 0, 1 or 2"),
    ("cameras:\n  - source: 0\n", ":2: cameras[0].name: required key is missing"),
    ("cameras:\n  - {name: a, source: 0}\n  - {name: a, source: 1}\n", ":3: cameras[1].name: camera name 'a' used twice"),
    ("cameras:\n  - {name: 'a/b', source: 0}\n", ":2: cameras[0]: camera name 'a/b'"),
    ("log_level: loud\n", ":1: log_level: expected one of"),
    ("galery: x.db\n", ":1: galery: unknown key; did you mean `gallery`?"),
    ("mqtt: [1, 2]\n", ":1: mqtt: expected a mapping, got a list"),
    ("mqtt:\n  host: [a\n", "not valid YAML"),
])
def test_errors_name_key_and_line(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(e.value).startswith(str(path)), e.value
    assert where in str(e.value), e.value


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml: cannot read config"):
        load(tmp_path / "nothere.yaml")


def test_parse_empty_is_defaults():
    assert parse("").cameras == [] and parse("# nothing\n").mqtt.port == 1883


def test_settings_from_the_command_line_are_checked_as_a_file_is():
    cfg = parse_settings(["detection.budget_ms=5", "detection.still_hog_min_score=null", "motion.settle_s=0"])
    assert (cfg.detection.budget_ms, cfg.detection.still_hog_min_score, cfg.motion.settle_s) == (5, None, 0)
    for item, why in [("detection.budget_ms=-1", "detection.budget_ms: must be 0"),
                      ("detection.nokey=1", "detection.nokey: unknown key"),
                      ("budget_ms=5", "expected SECTION.KEY=VALUE"),
                      ("detection.budget_ms=1\nmqtt:", "expected SECTION.KEY=VALUE")]:
        with pytest.raises(ConfigError, match=why):
            parse_settings([item])
