"""What Home Assistant sees: the discovery payloads and entity states as a real MQTT subscriber
receives them from a real mosquitto, checked against Home Assistant's MQTT discovery schema.

Two checks of the schema:
  * always: the rules of Home Assistant 2024.3.3's MQTT platforms (homeassistant/components/mqtt/
    binary_sensor.py, sensor.py, event.py, mixins.py, abbreviations.py), encoded below. Stricter
    than Home Assistant in one way on purpose: an unknown key fails here, where Home Assistant
    silently drops it (the usual way a typo'd key goes unnoticed).
  * where the `homeassistant` package can be imported (or $EDGEFACE_HA_PYTHON names a Python that
    has it): the payloads go through Home Assistant's own DISCOVERY_SCHEMA. The package is not in
    the `test` extra: `pip install homeassistant==2024.3.3` (the last release for Python 3.11) took
    114 s and 400 MB here.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import pytest

from edgeface.config import HomeConfig, MqttConfig
from edgeface.mqtt.presence import Presence, entity_key
from edgeface.mqtt.publish import Publisher

T0 = 1_700_000_000.0
DP = "homeassistant"

# -- Home Assistant 2024.3.3's MQTT discovery rules, encoded -----------------------------------
ABBREVIATIONS = {  # the keys edgeface may use (abbreviations.py has 258)
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "dev": "device", "dev_cla": "device_class", "en": "enabled_by_default",
    "ent_cat": "entity_category", "evt_typ": "event_types", "exp_aft": "expire_after", "frc_upd": "force_update",
    "ic": "icon", "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
    "o": "origin", "obj_id": "object_id", "off_dly": "off_delay", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off", "pl_on": "payload_on", "qos": "qos",
    "stat_cla": "state_class", "stat_t": "state_topic", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {"cns": "connections", "cu": "configuration_url", "ids": "identifiers", "mf": "manufacturer",
                        "mdl": "model", "hw": "hw_version", "sw": "sw_version", "sa": "suggested_area",
                        "sn": "serial_number"}
BINARY_SENSOR_DEVICE_CLASSES = set(
    "battery battery_charging carbon_monoxide cold connectivity door garage_door gas heat light lock moisture motion "
    "moving occupancy opening plug power presence problem running safety smoke sound tamper update vibration "
    "window".split())
SENSOR_DEVICE_CLASSES = set(
    "date enum timestamp apparent_power aqi atmospheric_pressure battery carbon_monoxide carbon_dioxide current "
    "data_rate data_size distance duration energy energy_storage frequency gas humidity illuminance irradiance "
    "moisture monetary nitrogen_dioxide nitrogen_monoxide nitrous_oxide ozone ph pm1 pm10 pm25 power_factor power "
    "precipitation precipitation_intensity pressure reactive_power signal_strength sound_pressure speed "
    "sulphur_dioxide temperature volatile_organic_compounds volatile_organic_compounds_parts voltage volume "
    "volume_storage volume_flow_rate water weight wind_speed".split())
EVENT_DEVICE_CLASSES = {"doorbell", "button", "motion"}
# mixins.py: JSON attributes Home Assistant drops without a word
MQTT_ATTRIBUTES_BLOCKED = {"assumed_state", "available", "device_class", "device_info", "entity_category",
                           "entity_picture", "entity_registry_enabled_default", "extra_state_attributes",
                           "force_update", "icon", "name", "should_poll", "state", "supported_features", "unique_id",
                           "unit_of_measurement"}

STR, OPT_STR, POS_INT = "string", "string or null", "positive integer"
COMMON = {  # mixins.py MQTT_ENTITY_COMMON_SCHEMA + MQTT_AVAILABILITY_SINGLE_SCHEMA + MQTT_BASE_SCHEMA
    "name": OPT_STR, "unique_id": STR, "object_id": STR, "icon": "icon", "device": "device",
    "availability_topic": "topic", "payload_available": STR, "payload_not_available": STR,
    "json_attributes_topic": "topic", "json_attributes_template": STR, "enabled_by_default": "boolean",
    "entity_category": ("config", "diagnostic"), "qos": (0, 1, 2), "encoding": STR,
}
PLATFORMS = {
    "binary_sensor": ({"state_topic"}, {**COMMON, "state_topic": "topic", "device_class": BINARY_SENSOR_DEVICE_CLASSES,
                                        "payload_on": STR, "payload_off": STR, "value_template": STR,
                                        "expire_after": POS_INT, "off_delay": POS_INT, "force_update": "boolean"}),
    "sensor": ({"state_topic"}, {**COMMON, "state_topic": "topic", "device_class": SENSOR_DEVICE_CLASSES,
                                 "value_template": STR, "unit_of_measurement": STR, "expire_after": POS_INT,
                                 "force_update": "boolean"}),
    "event": ({"state_topic", "event_types"}, {**COMMON, "state_topic": "topic", "event_types": "string list",
                                               "device_class": EVENT_DEVICE_CLASSES, "value_template": STR}),
}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "name", "hw_version", "serial_number",
               "sw_version", "via_device", "suggested_area", "configuration_url"}


def expand(payload: dict) -> dict:
    """discovery.py: abbreviated keys (top level and in `device`) to their full names."""
    out = {ABBREVIATIONS.get(k, k): v for k, v in payload.items()}
    if isinstance(out.get("device"), dict):
        out["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in out["device"].items()}
    return out


def _fits(value, rule) -> bool:
    if isinstance(rule, (set, tuple)):
        return value in rule
    if rule == STR:
        return isinstance(value, str)
    if rule == OPT_STR:
        return value is None or isinstance(value, str)
    if rule == POS_INT:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if rule == "boolean":
        return isinstance(value, bool)
    if rule == "icon":  # cv.icon: "prefix:name"
        return isinstance(value, str) and re.fullmatch(r"[a-z0-9-]+:[a-z0-9-]+", value) is not None
    if rule == "topic":  # valid_subscribe_topic; ours are published to, so no wildcards either
        return isinstance(value, str) and 0 < len(value.encode()) <= 65535 and "\0" not in value \
            and not any(c in value for c in "+#")
    if rule == "string list":
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    if rule == "device":
        return isinstance(value, dict) and set(value) <= DEVICE_KEYS and bool(value.get("identifiers")) \
            and all(isinstance(i, str) for i in value["identifiers"]) \
            and all(isinstance(value[k], str) for k in value if k not in ("identifiers", "connections"))
    raise AssertionError(f"no rule {rule!r}")


def schema_problems(platform: str, payload: dict) -> list[str]:
    required, keys = PLATFORMS[platform]
    config = expand(payload)
    problems = [f"required key {k} missing" for k in sorted(required - set(config))]
    for key, value in config.items():
        if key not in keys:
            problems.append(f"unknown key {key}")
        elif not _fits(value, keys[key]):
            problems.append(f"{key}: {value!r} is not a valid {keys[key] if isinstance(keys[key], str) else 'choice'}")
    return problems


def test_the_encoded_schema_refuses_what_home_assistant_refuses():
    ok = {"name": "x", "stat_t": "a/b", "dev_cla": "presence", "dev": {"ids": ["n"], "mf": "m"}, "ic": "mdi:account"}
    assert schema_problems("binary_sensor", ok) == []
    assert schema_problems("binary_sensor", {**ok, "dev_cla": "person"}) \
        == ["device_class: 'person' is not a valid choice"]
    assert schema_problems("binary_sensor", {"name": "x"}) == ["required key state_topic missing"]
    assert schema_problems("event", {"stat_t": "e"}) == ["required key event_types missing"]
    assert schema_problems("sensor", {"stat_t": "s", "dev": {"name": "no identifiers"}}) \
        == ["device: {'name': 'no identifiers'} is not a valid device"]
    assert schema_problems("sensor", {"stat_t": "s", "json_attr_t": "a/#"}) \
        == ["json_attributes_topic: 'a/#' is not a valid topic"]
    assert schema_problems("sensor", {"stat_t": "s", "state_topc": "typo"}) == ["unknown key state_topc"]


# -- what a subscriber gets ------------------------------------------------------------------
def mqtt_cfg(mosquitto, client_id="edgeface-ha", **kw) -> MqttConfig:
    return MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id=client_id, **kw)


def start_publisher(mosquitto, presence: Presence, cameras=("door",), client_id="edgeface-ha",
                    home: HomeConfig | None = None) -> Publisher:
    """As the daemon does it: everyone's state queued first, then the connection."""
    p = Publisher(mqtt_cfg(mosquitto, client_id), list(cameras), home=home)
    p.publish_presence(presence.states())
    p.start()
    assert p.wait_connected(10)
    return p


def retained_configs(subscriber, count: int) -> dict[str, dict]:
    """Discovery configs as Home Assistant gets them when it (re)subscribes: the retained ones, and
    any still on their way (the latest message per topic; an empty one means removed)."""
    sub = subscriber(f"{DP}/#")

    def latest() -> dict[str, bytes]:
        return {m.topic: m.payload for m in list(sub.messages)}

    sub.wait_for(lambda m: len([p for p in latest().values() if p]) >= count, 10)
    sub.wait_for(lambda m: False, 0.5)  # and nothing more behind them
    return {topic: json.loads(payload) for topic, payload in latest().items() if payload}


def platform_of(topic: str) -> str:
    return topic.split("/")[1]


@pytest.fixture
def announced(mosquitto, subscriber):
    """Everything edgeface announces for a device with one camera and two people."""
    presence = Presence(600, 60)
    presence.set_people(["alice", "Mary Jane"])
    pub = start_publisher(mosquitto, presence)
    try:
        configs = retained_configs(subscriber, 5)
    finally:
        pub.close()
    return configs


def test_discovery_payloads_fit_home_assistants_schema(announced):
    node = "edgeface-ha"
    mary = next(t for t in announced if "mary_jane" in t)
    assert sorted(announced) == sorted([
        f"{DP}/binary_sensor/{node}/alice_presence/config", mary,
        f"{DP}/binary_sensor/{node}/unknown_visitor/config",
        f"{DP}/event/{node}/unknown_visitor/config",
        f"{DP}/sensor/{node}/door_person/config",  # the per-camera sensor stays
    ])
    for topic, config in announced.items():
        assert schema_problems(platform_of(topic), config) == [], topic
    ids = [c["unique_id"] for c in announced.values()]
    assert len(set(ids)) == len(ids)
    presence = [c for t, c in announced.items() if t.startswith(f"{DP}/binary_sensor/")]
    assert {c["device_class"] for c in presence} == {"presence"}
    assert {c["name"] for c in presence} == {"alice", "Mary Jane", "unknown visitor"}
    assert len({json.dumps(c["device"], sort_keys=True) for c in announced.values()}) == 1  # one device


def test_discovery_payloads_pass_home_assistants_own_schema(announced, tmp_path):
    check = textwrap.dedent("""
        import json, sys
        from homeassistant.components.mqtt import binary_sensor, event, sensor
        from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS
        platforms = {"binary_sensor": binary_sensor, "event": event, "sensor": sensor}
        for topic, config in json.load(open(sys.argv[1])).items():
            config = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
            if "device" in config:
                config["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in config["device"].items()}
            platforms[topic.split("/")[1]].DISCOVERY_SCHEMA(config)  # raises vol.Invalid, naming the key
            print("ok", topic)
    """)
    (tmp_path / "configs.json").write_text(json.dumps(announced))
    (tmp_path / "check.py").write_text(check)
    python = os.environ.get("EDGEFACE_HA_PYTHON")
    if not python:
        pytest.importorskip("homeassistant.components.mqtt.binary_sensor",
                            reason="homeassistant not installed (or set EDGEFACE_HA_PYTHON)")
        python = sys.executable
    r = subprocess.run([python, str(tmp_path / "check.py"), str(tmp_path / "configs.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok ") == len(announced)


def test_presence_goes_on_and_off_with_the_clock(mosquitto, subscriber):
    sub = subscriber("edgeface/#")
    presence = Presence(600, 30)
    presence.set_people(["alice", "bob"])
    pub = start_publisher(mosquitto, presence)
    try:
        def state(who: str, text: str, start: int = 0):
            return sub.wait_for(lambda m: m.topic == f"edgeface/{who}/state" and m.text == text, 10, start)

        assert state("presence/alice", "OFF") and state("presence/bob", "OFF") and state("unknown_visitor", "OFF")
        mark = len(sub.messages)
        pub.publish_presence(presence.seen("alice", "door", 0.71, T0))
        assert state("presence/alice", "ON", mark) is not None
        late = subscriber("edgeface/presence/alice/state")  # Home Assistant starting later sees it too
        assert late.wait_for(lambda m: m.retain and m.text == "ON", 10) is not None
        attributes = sub.wait_for(lambda m: m.topic == "edgeface/presence/alice/attributes", 10, mark).json()
        assert attributes == {"person": "alice", "camera": "door", "last_seen": "2023-11-14T22:13:20.000Z",
                              "score": 0.71}
        assert not set(attributes) & MQTT_ATTRIBUTES_BLOCKED  # Home Assistant would drop those silently
        pub.publish_presence(presence.expire(T0 + 599.0))
        pub.publish_presence(presence.seen("alice", "garden", 0.69, T0 + 300))  # moved: attributes follow
        assert sub.wait_for(lambda m: m.topic.endswith("alice/attributes") and m.json()["camera"] == "garden", 10)
        mark = len(sub.messages)
        pub.publish_presence(presence.expire(T0 + 900.0))  # ten minutes after the last sighting
        assert state("presence/alice", "OFF", mark) is not None
        # a stranger: the unknown visitor goes on, fires its event, and goes off after its own timeout
        mark = len(sub.messages)
        stranger = type("E", (), {"name": None, "score": 0.2, "box": (1, 2, 3, 4), "angle": 0.0, "track_id": 9,
                                  "t": T0 + 1000})()
        pub.publish_home("door", stranger, 0.1)
        pub.publish_presence(presence.seen(None, "door", 0.2, T0 + 1000))
        assert state("unknown_visitor", "ON", mark) is not None
        fired = sub.wait_for(lambda m: m.topic == "edgeface/unknown_visitor/event", 10, mark)
        assert fired is not None and not fired.retain
        assert fired.json()["event_type"] == "unknown_visitor" and fired.json()["camera"] == "door"
        pub.publish_presence(presence.expire(T0 + 1030))
        assert state("unknown_visitor", "OFF", mark) is not None
        assert not [m for m in sub.messages[mark:] if m.topic.startswith("edgeface/presence/bob")]
    finally:
        pub.close()


def test_entities_follow_the_gallery_without_a_restart_and_stale_ones_go_after_one(mosquitto, subscriber):
    presence = Presence(600, 60)
    presence.set_people(["alice", "bob", "carol"])
    pub = start_publisher(mosquitto, presence)
    try:
        assert len([t for t in retained_configs(subscriber, 6) if t.endswith("_presence/config")]) == 3
        watch = subscriber(f"{DP}/binary_sensor/+/dave_presence/config")
        pub.publish_presence(presence.set_people(["alice", "carol", "dave"]))  # bob removed, dave enrolled
        assert watch.wait_for(lambda m: m.payload != b"", 10) is not None  # (so bob's removal is through too)
        configs = retained_configs(subscriber, 6)
        assert sorted(t.split("/")[3] for t in configs if t.endswith("_presence/config")) \
            == ["alice_presence", "carol_presence", "dave_presence"]
    finally:
        pub.close()
    # carol is removed while edgeface is down: the next start takes her entity away
    presence.set_people(["alice", "dave"])
    fresh = Presence(600, 60)
    fresh.set_people(presence.people)
    sub = subscriber(f"{DP}/binary_sensor/+/carol_presence/config")  # (watching before edgeface starts)
    pub = start_publisher(mosquitto, fresh)
    try:
        assert sub.wait_for(lambda m: m.payload == b"", 10) is not None  # the removal went to the broker
        configs = retained_configs(subscriber, 5)
        assert sorted(t.split("/")[3] for t in configs if t.endswith("_presence/config")) \
            == ["alice_presence", "dave_presence"]
        state = subscriber("edgeface/presence/bob/#")
        assert state.wait_for(lambda m: True, 1) is None  # bob's retained state went with his entity
    finally:
        pub.close()


# -- the daemon, end to end ------------------------------------------------------------------
from running import Daemon, astronaut_head, enroll, needs_shipped_model, shipped_model, write_config  # noqa: E402

from edgeface.cli.demo import clip_background, face_frame  # noqa: E402


def face_then_empty_clip(path: Path, face_s=3.0, empty_s=6.0, fps=10.0, size=(320, 240)) -> str:
    """The astronaut for face_s seconds, then an empty doorway long enough for a 2 s timeout to pass."""
    head, bg = astronaut_head(), clip_background(size)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    n = int(face_s * fps)
    for k in range(n):
        vw.write(face_frame(head, -20 + 40 * k / max(1, n - 1), bg))
    for _ in range(int(empty_s * fps)):
        vw.write(bg)
    vw.release()
    return str(path)


def run_clip(tmp_path, mosquitto, subscriber, gallery_people: bool):
    model = shipped_model()
    clip = face_then_empty_clip(tmp_path / "door.avi")
    if gallery_people:
        photo = tmp_path / "astronaut.jpg"
        cv2.imwrite(str(photo), astronaut_head())
        enroll(tmp_path / "gallery.db", str(photo), model)
    sub = subscriber("#")
    config = write_config(tmp_path, mosquitto, model, cameras=[{"name": "door", "source": clip}],
                          mqtt={"discovery": True}, home={"presence_timeout": 2.0, "unknown_timeout": 1.0})
    d = Daemon(config)
    try:
        assert d.wait(120) == 0, d.log()  # the file ends, the daemon stops
        sub.wait_for(lambda m: m.topic == "edgeface/status" and m.text == "offline", 10)
        log = d.log()
    finally:
        d.close()
    return sub, log


@pytest.mark.slow
@needs_shipped_model
def test_daemon_presence_goes_on_at_a_sighting_and_off_after_the_timeout(tmp_path, mosquitto, subscriber):
    sub, log = run_clip(tmp_path, mosquitto, subscriber, gallery_people=True)
    config = sub.wait_for(lambda m: m.topic.endswith("/astronaut_presence/config"), 1)
    assert config is not None and schema_problems("binary_sensor", config.json()) == [], log
    states = [m.text for m in sub.on("edgeface/presence/astronaut/state")]
    assert states[:3] == ["OFF", "ON", "OFF"], (states, log)  # away at start, seen, away 2 s after the face left
    last = [m.json() for m in sub.on("edgeface/presence/astronaut/attributes")][-1]
    assert last["camera"] == "door" and last["last_seen"].endswith("Z") and last["score"] > 0.5
    assert [m.text for m in sub.on("edgeface/unknown_visitor/state")] == ["OFF"]  # no stranger here
    assert not sub.on("edgeface/unknown_visitor/event")


@pytest.mark.slow
@needs_shipped_model
def test_daemon_a_stranger_fires_the_unknown_visitor(tmp_path, mosquitto, subscriber):
    # nobody enrolled: the astronaut is a stranger
    sub, log = run_clip(tmp_path, mosquitto, subscriber, gallery_people=False)
    events = [m.json() for m in sub.on("edgeface/unknown_visitor/event")]
    assert events and events[0]["event_type"] == "unknown_visitor" and events[0]["camera"] == "door", log
    states = [m.text for m in sub.on("edgeface/unknown_visitor/state")]
    assert states[:3] == ["OFF", "ON", "OFF"], (states, log)
    assert not [m for m in sub.messages if m.topic.startswith("edgeface/presence/")]


@pytest.mark.slow
@needs_shipped_model
def test_daemon_entities_follow_enrol_and_remove_without_a_restart(tmp_path, mosquitto, subscriber):
    model = shipped_model()
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_head())
    gallery = tmp_path / "gallery.db"
    enroll(gallery, str(photo), model)
    clip = face_then_empty_clip(tmp_path / "door.avi", face_s=1.0, empty_s=1.0)
    sub = subscriber(f"{DP}/binary_sensor/#")
    config = write_config(tmp_path, mosquitto, model, cameras=[{"name": "door", "source": clip, "loop": True}],
                          mqtt={"discovery": True})
    d = Daemon(config)
    try:
        def config_of(object_id: str, empty: bool):
            return sub.wait_for(lambda m: m.topic.endswith(f"/{object_id}/config") and (m.payload == b"") == empty, 60)

        assert config_of("astronaut_presence", empty=False) is not None, d.log()
        other = tmp_path / "eileen.jpg"  # a photo of its own: the same file is refused under a second name
        cv2.imwrite(str(other), cv2.flip(astronaut_head(), 1))
        enroll(gallery, str(other), model, name="Eileen Collins")  # a second person, while it runs
        added = config_of(entity_key("Eileen Collins") + "_presence", empty=False)
        assert added is not None and added.json()["name"] == "Eileen Collins", d.log()
        r = subprocess.run([sys.executable, "-m", "edgeface", "gallery", "remove", "astronaut", "--gallery",
                            str(gallery)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert config_of("astronaut_presence", empty=True) is not None, d.log()  # Home Assistant removes it
        # the removal is published before the daemon logs the reload, so wait for that line
        assert d.wait_log("changed on disk", 10, count=2), d.log()
        assert d.proc.poll() is None and d.log().count("changed on disk") == 2
    finally:
        d.close()
    late = subscriber(f"{DP}/binary_sensor/#")  # what a Home Assistant starting now would find
    late.wait_for(lambda m: False, 1.0)
    assert sorted(m.topic.split("/")[3] for m in late.messages if m.retain and m.payload) \
        == sorted([entity_key("Eileen Collins") + "_presence", "unknown_visitor"])
