"""Config values out of range, hostile YAML, secrets and missing files: each a ConfigError naming file and line."""
import subprocess
import sys

import pytest

from edgeface.config import ConfigError, DetectionConfig, MqttConfig, TrackingConfig, load, parse

CAMERA = "cameras:\n  - {name: front, source: 0}\n"


def write(tmp_path, text, name="edgeface.yaml"):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return p


def load_error(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    message = str(e.value)
    for line in message.splitlines():  # every problem names the file
        assert line.startswith(f"{path}:"), message
    return message


# Each of these loaded before and gave a daemon that ran without ever naming anyone (or crashed).
@pytest.mark.parametrize("text, where", [
    ("detection:\n  scale_factor: 1.0\n", ":2: detection.scale_factor: must be above 1"),
    ("detection:\n  min_size: -40\n", ":2: detection.min_size: must not be negative"),
    ("detection:\n  max_width: -480\n", ":2: detection.max_width: must be 0 (no downscaling) or at least 64"),
    ("detection:\n  angles: []\n", ":2: detection.angles: must list at least one"),
    ("detection:\n  sweep_period: 0\n", ":2: detection.sweep_period: must be at least 1"),
    ("detection:\n  min_size: 80\n  max_size: 40\n", ":3: detection.max_size: must be 0 (no limit) or at least min_size"),
    ("detection:\n  region_angles: []\n", ":2: detection.region_angles: must list"),
    ("detection:\n  cascade: no-such-cascade.xml\n", ":2: detection.cascade: 'no-such-cascade.xml' is neither"),
    ("detection:\n  scene_change: 300\n", ":2: detection.scene_change: must be 0..255"),
    ("tracking:\n  iou_min: 0\n", ":2: tracking.iou_min: must be above 0"),
    ("tracking:\n  vote_count: 0\n", ":2: tracking.vote_count: must be 1..1000"),
    ("tracking:\n  reembed_interval: -1\n", ":2: tracking.reembed_interval: must not be negative"),
    ("recognition:\n  threshold: 1.5\n", ":2: recognition.threshold: must be a cosine similarity"),
    ("recognition:\n  num_threads: 0\n", ":2: recognition.num_threads: must be 1..1024"),
    ("mqtt:\n  keepalive: -1\n", ":2: mqtt.keepalive: must be 5..65535"),
    ("mqtt:\n  client_id: ''\n", ":2: mqtt.client_id: must not be empty"),
    ("mqtt:\n  host: ''\n", ":2: mqtt.host: must be a host name"),
    ("mqtt:\n  discovery_prefix: 'home/#'\n", ":2: mqtt.discovery_prefix: must be non-empty without MQTT wildcards"),
    ("mqtt:\n  password: x\n", ":2: mqtt.password: needs username"),
    ("mqtt:\n  username: u\n  password: x\n  password_env: PW\n", ":4: mqtt.password_env: is given with password"),
    ("mqtt:\n  tls: {key: k.pem}\n", ":2: mqtt.tls.key: needs cert"),
    ("cameras:\n  - {name: a, source: -1}\n", ":2: cameras[0].source: must be a V4L2 index >= 0"),
    ("cameras:\n  - {name: a, source: ''}\n", ":2: cameras[0].source: must be a V4L2 index >= 0"),
    ("gallery: ''\n", ":1: gallery: must be a file path"),
    ("status_interval: 0\n", ":1: status_interval: must be positive"),
])
def test_values_out_of_range_are_refused_at_their_key(tmp_path, text, where):
    assert where in load_error(tmp_path, text)


@pytest.mark.parametrize("text, where", [
    ("recognition:\n  threshold: .nan\n", ":2: recognition.threshold: must be a finite number"),
    ("status_interval: .nan\n", ":1: status_interval: must be a finite number"),
    ("gallery_poll_interval: .inf\n", ":1: gallery_poll_interval: must be a finite number"),
    ("detection:\n  angles: [0, -.inf]\n", ":2: detection.angles[1]: must be a finite number"),
    ("cameras:\n  - {name: a, source: 0, fps: .NaN}\n", ":2: cameras[0].fps: must be a finite number"),
    ("tracking:\n  max_missed: 1.0e+400\n", ":2: tracking.max_missed: must be a finite number"),
    ("recognition:\n  delegate_options: {a: {b: [1, .nan]}}\n", ":2: recognition.delegate_options.a.b[1]: must be a finite"),
    ("detection:\n  scale_factor: " + "9" * 400 + "\n", ":2: detection.scale_factor: integer out of range"),
])
def test_nan_infinity_and_huge_numbers_are_refused_everywhere(tmp_path, text, where):
    assert where in load_error(tmp_path, text)


@pytest.mark.parametrize("text, where", [
    ("mqtt:\n  port: !!int abc\n", ":2: mqtt.port: cannot read !!int 'abc'"),
    ("status_interval: !!float fast\n", ":1: status_interval: cannot read !!float 'fast'"),
    ("mqtt:\n  discovery: !!bool maybe\n", ":2: mqtt.discovery: cannot read !!bool 'maybe'"),
    ("mqtt:\n  host: !!binary '%%%'\n", ":2: mqtt.host: the tag !!binary is not allowed"),
    ("mqtt:\n  host: !!set {a, b}\n", ":2: mqtt.host: the tag !!set is not allowed"),
    ("mqtt:\n  host: !local x\n", ":2: mqtt.host: the tag !local is not allowed"),
    ("mqtt:\n  <<: {host: x}\n", ":2: mqtt.?: merge keys (<<) are not supported"),
    ("mqtt:\n  ? [a, b]\n  : 1\n", ":2: mqtt.?: a key must be a plain word"),
    ("mqtt:\n  host: \"a\\0b\"\n", ":2: mqtt.host: text holds a NUL"),
    ("mqtt:\n  topic_prefix: \"\\ud800\"\n", ":2: mqtt.topic_prefix: text holds a NUL or an unpaired surrogate"),
    ("recognition:\n  delegate_options: &a {x: *a}\n", "recognition.delegate_options"),
    ("mqtt:\n  host: x\n  host: y\n", ":3: mqtt.host: key given twice"),
])
def test_yaml_constructor_problems_name_file_and_line(tmp_path, text, where):
    assert where in load_error(tmp_path, text)


@pytest.mark.parametrize("text", [
    "gallery: !!python/object/apply:os.system ['touch {marker}']\n",
    "mqtt:\n  host: !!python/object/apply:os.system ['touch {marker}']\n",
    "recognition:\n  delegate_options: {{device: !!python/object/apply:os.system ['touch {marker}']}}\n",
    "recognition:\n  delegate_options:\n    deep: [{{x: !!python/object/new:os.system ['touch {marker}']}}]\n",
    "recognition:\n  delegate_options: {{!!python/object/apply:os.system ['touch {marker}']: 1}}\n",
    "cameras: !!python/object/apply:os.system ['touch {marker}']\n",
    "!!python/object/apply:os.system ['touch {marker}']\n",
    "mqtt: {{password: !!python/name:os.system }}\n",
])
def test_python_tags_are_refused_wherever_they_appear(tmp_path, text):
    marker = tmp_path / "constructed"
    message = load_error(tmp_path, text.format(marker=marker))
    assert "the tag !!python/" in message and "is not allowed" in message, message
    assert not marker.exists()


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    message = load_error(tmp_path, CAMERA + """\
detection:
  scale_factor: 1.0
  angles: []
recognition:
  threshold: .nan
mqtt:
  hots: broker
  keepalive: -1
  port: eighty
status_interval: .nan
""")
    lines = message.splitlines()
    wanted = [":4: detection.scale_factor:", ":5: detection.angles:", ":7: recognition.threshold:",
              ":9: mqtt.hots: unknown key; did you mean `host`?", ":10: mqtt.keepalive:", ":11: mqtt.port:",
              ":12: status_interval:"]
    assert len(lines) == len(wanted), message
    for line, where in zip(lines, wanted):
        assert where in line, message


def test_unknown_key_suggests_the_closest_one(tmp_path):
    assert "mqtt.hots: unknown key; did you mean `host`?" in load_error(tmp_path, "mqtt:\n  hots: x\n")
    assert "detection.sweep_perod: unknown key; did you mean `sweep_period`?" in \
        load_error(tmp_path, "detection:\n  sweep_perod: 5\n")
    far = load_error(tmp_path, "mqtt:\n  zzzzzz: x\n")  # nothing close: the allowed keys instead
    assert "allowed: client_id, discovery" in far


@pytest.mark.parametrize("text", [
    "mqtt:\n  username: u\n  password: 918273645\n",
    "mqtt:\n  username: u\n  password: [918273645]\n",
    "mqtt:\n  username: u\n  password: !!int 918273645x\n",
    "mqtt:\n  username: u\n  password: !!float 918273645x\n",
    "recognition:\n  delegate_options: {api_key: !!int 918273645x}\n",
    "recognition:\n  delegate_options: {client_secret: !!bool 918273645}\n",
    "recognition:\n  delegate_options: {token: !!int 918273645x}\n",
])
def test_secret_values_are_never_echoed(tmp_path, text):
    message = load_error(tmp_path, text)
    assert "918273645" not in message, message
    assert ":3:" in message or ":2:" in message


def test_password_file_that_is_not_text_does_not_echo_it(tmp_path):
    (tmp_path / "pw").write_bytes(b"\xff918273645\n")
    message = load_error(tmp_path, "mqtt: {username: u, password_file: pw}\n")
    assert "mqtt.password_file:" in message and "not UTF-8" in message and "918273645" not in message


def test_missing_tls_files_are_named_at_load(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    message = load_error(tmp_path, "mqtt:\n  tls:\n    ca: ca.pem\n    cert: client.pem\n    key: client.key\n")
    lines = message.splitlines()
    assert len(lines) == 2, message
    assert f":4: mqtt.tls.cert: cannot read {tmp_path / 'client.pem'}: No such file" in lines[0]
    assert f":5: mqtt.tls.key: cannot read {tmp_path / 'client.key'}: No such file" in lines[1]
    (tmp_path / "client.pem").write_text("x")
    (tmp_path / "client.key").write_text("x")
    assert load(tmp_path / "edgeface.yaml").mqtt.tls.key == str(tmp_path / "client.key")


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    message = load_error(tmp_path, b"mqtt:\n  host: caf\xe9\n")
    assert ":2: not UTF-8 text (byte 0xe9)" in message


@pytest.mark.parametrize("text", ["\x00", "a: \x07\n", "[" * 5000, "a: 1\n---\nb: 2\n", "- 1\n", "just words\n"])
def test_text_that_is_no_config_is_a_config_error(text):
    with pytest.raises(ConfigError, match="^<config>"):
        parse(text)


def test_alias_bomb_in_free_form_options_is_bounded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "recognition:\n  delegate_options:\n" + "".join(f"    {line}\n" for line in lines)
    with pytest.raises(ConfigError, match="nested too deeply or too large"):
        parse(text)


def test_direct_construction_checks_the_same_ranges():
    with pytest.raises(ValueError, match="scale_factor must be above 1"):
        DetectionConfig(scale_factor=1.0)
    with pytest.raises(ValueError) as e:  # every broken rule, one per line
        DetectionConfig(angles=[], sweep_period=0, min_size=-1)
    assert len(str(e.value).splitlines()) == 3
    with pytest.raises(ValueError, match="vote_count"):
        TrackingConfig(vote_count=0)
    with pytest.raises(ValueError, match="keepalive"):
        MqttConfig(keepalive=-1)
    with pytest.raises(ValueError, match="scale_factor"):
        DetectionConfig(scale_factor=float("nan"))
    DetectionConfig(), TrackingConfig(), MqttConfig()  # the defaults are valid


@pytest.mark.parametrize("text, where", [
    ("mqtt:\n  keepalive: -1\n", ":4: mqtt.keepalive:"),
    ("recognition:\n  delegate_options: {x: !!python/object/apply:os.getcwd []}\n", ":4: recognition.delegate_options.x:"),
    (b"mqtt:\n  host: caf\xe9\n", ":4: not UTF-8"),
    ("mqtt:\n  prot: 1883\n", ":4: mqtt.prot:"),
])
def test_run_with_such_a_config_exits_2_with_the_message_and_no_traceback(tmp_path, text, where):
    body = (CAMERA + text) if isinstance(text, str) else CAMERA.encode() + text
    path = write(tmp_path, body)
    r = subprocess.run([sys.executable, "-m", "edgeface", "run", "--config", str(path)],
                       check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert where in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_control_characters_in_keys_and_paths_keep_one_problem_per_line(tmp_path):
    message = load_error(tmp_path, 'cameras:\n  - {"\\x1e\\nfoo": 1}\n')
    assert len(message.splitlines()) == 3, message  # the unknown key; name and source missing
    assert "cameras[0].\\x1e\\nfoo: unknown key" in message
    message = load_error(tmp_path, 'mqtt:\n  tls: {ca: "a\\nb.pem"}\n')
    assert len(message.splitlines()) == 1 and "a\\nb.pem: No such file" in message, message
