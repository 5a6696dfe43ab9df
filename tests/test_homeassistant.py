"""What Home Assistant sees: the discovery payloads and entity states as a real MQTT subscriber
receives them from a real mosquitto, checked against Home Assistant's MQTT discovery schema.

Two checks of the schema:
  * always: the rules of Home Assistant 2026.2.3's MQTT platforms (the newest release on PyPI when
    this was written; homeassistant/components/mqtt/ schemas.py, config.py, binary_sensor.py,
    sensor.py, event.py, image.py, abbreviations.py, entity.py), encoded below: default_entity_id
    (its domain part is what makes the entity id: a bare id yields "unnamed_device"), object_id
    (deprecated, ignored from 2026.4), origin, entity_category, the image platform. Stricter
    than Home Assistant in one way on purpose: an unknown key fails here, where Home Assistant
    silently drops it (the usual way a typo'd key goes unnoticed).
  * where the `homeassistant` package can be imported (or $EDGEFACE_HA_PYTHON names a Python that
    has it, e.g. the one tools/ha_smoke.sh builds): the payloads go through Home Assistant's own
    DISCOVERY_SCHEMA. Home Assistant 2026.x needs Python 3.13, so it is not in the `test` extra.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from ha_schema import MQTT_ATTRIBUTES_BLOCKED, schema_problems

from edgeface.cli.demo import astronaut_bgr
from edgeface.config import HomeConfig, MqttConfig
from edgeface.mqtt.images import MAX_BYTES, grown_box
from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher
from edgeface.mqtt.topics import name_key

T0 = 1_700_000_000.0
DP = "homeassistant"


# -- the encoded schema (tests/ha_schema.py) --------------------------------------------------
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
    assert schema_problems("sensor", {"stat_t": "s", "def_ent_id": "edgeface_x"}) \
        == ["default_entity_id: 'edgeface_x' is not a valid entity id"]  # no domain: "unnamed_device"
    assert schema_problems("sensor", {"stat_t": "s", "o": {"sw": "1"}}) == ["origin: {'sw_version': '1'} is not a valid origin"]
    assert schema_problems("sensor", {"stat_t": "s", "ent_cat": "system"}) == ["entity_category: 'system' is not a valid choice"]
    assert schema_problems("image", {"url_t": "u"}) == ["required key image_topic missing", "unknown key url_t"]
    assert schema_problems("sensor", {"stat_t": "s", "dev_cla": "temperature", "unit_of_meas": "%"}) \
        == ["unit_of_measurement '%' does not fit device_class temperature"]


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
    """Everything edgeface announces for a device with one camera, two people and every option on."""
    presence = Presence(600, 60)
    presence.set_people(["alice", "Mary Jane"])
    pub = start_publisher(mosquitto, presence, home=HomeConfig(unknown_image=True, person_image=True))
    try:
        pub.publish_diagnostics({}, {"soc_temperature": 40.0})
        configs = retained_configs(subscriber, 14)
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
        f"{DP}/image/{node}/door_last_unknown_visitor/config", f"{DP}/image/{node}/door_last_person_image/config",
        *(f"{DP}/sensor/{node}/door_{k}/config" for k in ("fps", "dropped_frames", "cascade_share")),
        *(f"{DP}/sensor/{node}/{k}/config" for k in ("cpu_percent", "gallery_people", "gallery_faces",
                                                      "soc_temperature")),
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
        import asyncio, json, sys, tempfile
        from homeassistant.components.mqtt import binary_sensor, event, image, sensor
        from homeassistant.core import HomeAssistant
        platforms = {"binary_sensor": binary_sensor, "event": event, "image": image, "sensor": sensor}

        async def check():
            HomeAssistant(tempfile.mkdtemp())  # templates validate only with a running Home Assistant (2024.x+)
            for topic, config in json.load(open(sys.argv[1])).items():  # (edgeface sends full key names)
                checked = platforms[topic.split("/")[1]].DISCOVERY_SCHEMA(config)  # raises vol.Invalid, naming the key
                dropped = set(config) - set(checked)  # DISCOVERY_SCHEMA removes what it does not know
                assert not dropped, (topic, dropped)
                print("ok", topic)

        asyncio.run(check())
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


# -- with a broker: discovery again on Home Assistant's birth, pictures, diagnostics ---------------
@pytest.mark.broker
def test_discovery_is_sent_again_when_home_assistant_comes_online(mosquitto, subscriber):
    presence = Presence(600, 60)
    presence.set_people(["alice"])
    pub = start_publisher(mosquitto, presence)
    try:
        sub = subscriber(f"{DP}/#")
        assert sub.wait_for(lambda m: m.topic.endswith("/alice_presence/config"), 10)
        sub.wait_for(lambda m: False, 0.5)
        mark = len(sub.messages)
        assert not [m for m in sub.messages[mark:]]
        announce = subscriber("unused/#")  # a client of its own, standing in for Home Assistant
        announce.client.publish(f"{DP}/status", "offline", qos=1)
        announce.client.publish(f"{DP}/status", "online", qos=1)
        again = sub.wait_for(lambda m: m.topic.endswith("/alice_presence/config") and not m.retain, 10, mark)
        assert again is not None and again.json()["default_entity_id"] == "binary_sensor.edgeface_alice_presence"
        sub.wait_for(lambda m: False, 0.5)
        resent = {m.topic for m in sub.messages[mark:] if m.topic != f"{DP}/status"}
        assert resent == {d.topic for d in pub.discoveries()}  # everything, once more
        assert pub.discovery_sent == 2  # the connection, then the "online" (not the "offline")
    finally:
        pub.close()


class _Stranger:
    name, score, box, angle, track_id, t = None, 0.21, (180, 70, 120, 150), 0.0, 3, T0


def _send_stranger(pub: Publisher, image) -> None:
    """What the daemon's camera worker does for one identity event, in its order."""
    pub.publish_face_image("door", _Stranger, image)
    pub.publish_identity("door", _Stranger)
    pub.publish_home("door", _Stranger, 0.1)


@pytest.mark.broker
@pytest.mark.parametrize("retain", [False, True])
def test_the_strangers_picture_arrives_before_the_unknown_visitor_event(mosquitto, subscriber, retain):
    sub = subscriber("#")
    pub = start_publisher(mosquitto, Presence(600, 60), home=HomeConfig(unknown_image=True, retain_images=retain))
    try:
        image = astronaut_bgr()
        _send_stranger(pub, image)
        event = sub.wait_for(lambda m: m.topic == "edgeface/unknown_visitor/event", 10)
        assert event is not None
        order = [m.topic for m in sub.messages]
        picture_at = order.index("edgeface/door/unknown_image")
        assert picture_at < order.index("edgeface/unknown_visitor/event")
        assert picture_at < order.index("edgeface/door/identity")
        picture = sub.messages[picture_at]
        assert len(picture.payload) <= MAX_BYTES and picture.retain is False  # as delivered live
        decoded = cv2.imdecode(np.frombuffer(picture.payload, "uint8"), cv2.IMREAD_COLOR)
        x0, y0, x1, y1 = grown_box(_Stranger.box, image.shape)
        assert decoded.shape[:2] == (y1 - y0, x1 - x0)  # the face box grown by half
        config = sub.wait_for(lambda m: m.topic == f"{DP}/image/edgeface-ha/door_last_unknown_visitor/config", 10)
        assert config is not None and config.json()["image_topic"] == "edgeface/door/unknown_image"
        assert schema_problems("image", config.json()) == []
        late = subscriber("edgeface/door/unknown_image")
        assert (late.wait_for(lambda m: m.retain, 1.0) is not None) == retain
    finally:
        pub.close()


@pytest.mark.broker
def test_no_picture_is_published_with_the_option_off(mosquitto, subscriber):
    sub = subscriber("#")
    pub = start_publisher(mosquitto, Presence(600, 60), home=HomeConfig(person_image=True))  # strangers' off
    try:
        _send_stranger(pub, astronaut_bgr())
        assert sub.wait_for(lambda m: m.topic == "edgeface/unknown_visitor/event", 10) is not None
        sub.wait_for(lambda m: False, 0.5)
        assert not [m for m in sub.messages if m.topic.endswith("_image") or m.topic.startswith(f"{DP}/image/")
                    and "unknown" in m.topic]
    finally:
        pub.close()


@pytest.mark.broker
def test_diagnostics_are_discovered_and_published_retained(mosquitto, subscriber):
    pub = start_publisher(mosquitto, Presence(600, 60))
    try:
        camera = {"fps": 9.87, "dropped_frames": 4, "cascade_share": 12.5}
        device = {"cpu_percent": 7.5, "soc_temperature": None, "gallery_people": 2, "gallery_faces": 9,
                  "last_fleet_sync": None}
        live = subscriber("edgeface/#")
        pub.publish_diagnostics({"door": camera}, device)
        d_topic = pub.topics.device_diagnostics
        assert live.wait_for(lambda m: m.topic == d_topic, 10)  # at the broker (then: retained?)
        late = subscriber("edgeface/#")
        assert late.wait_for(lambda m: m.topic == d_topic and m.retain, 10).json() == device
        assert late.wait_for(lambda m: m.topic == "edgeface/door/diagnostics" and m.retain, 10).json() == camera
        configs = retained_configs(subscriber, 9)
        sensors = {c["default_entity_id"]: c for t, c in configs.items() if platform_of(t) == "sensor"}
        assert "sensor.edgeface_ha_soc_temperature" not in sensors  # no thermal zone reported (yet)
        for entity_id in ("sensor.edgeface_door_fps", "sensor.edgeface_ha_cpu", "sensor.edgeface_ha_gallery_faces"):
            assert sensors[entity_id]["entity_category"] == "diagnostic"
            assert schema_problems("sensor", sensors[entity_id]) == []
        pub.publish_diagnostics({}, {**device, "soc_temperature": 51.2})  # the temperature's entity follows
        assert subscriber(f"{DP}/sensor/+/soc_temperature/config").wait_for(lambda m: m.retain or True, 10)
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


def run_clip(tmp_path, mosquitto, subscriber, gallery_people: bool, home: dict | None = None):
    model = shipped_model()
    clip = face_then_empty_clip(tmp_path / "door.avi")
    if gallery_people:
        photo = tmp_path / "astronaut.jpg"
        cv2.imwrite(str(photo), astronaut_head())
        enroll(tmp_path / "gallery.db", str(photo), model)
    sub = subscriber("#")
    config = write_config(tmp_path, mosquitto, model, cameras=[{"name": "door", "source": clip}],
                          mqtt={"discovery": True},
                          home={"presence_timeout": 2.0, "unknown_timeout": 1.0, **(home or {})})
    d = Daemon(config)
    try:
        assert d.wait(120) == 0, d.log()  # the file ends, the daemon stops
        sub.wait_for(lambda m: m.topic == "edgeface/status" and m.text == "offline", 10)  # a device on its own
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
def test_daemon_sends_the_strangers_picture_before_the_unknown_visitor_event(tmp_path, mosquitto, subscriber):
    sub, log = run_clip(tmp_path, mosquitto, subscriber, gallery_people=False, home={"unknown_image": True})
    order = [m.topic for m in sub.messages]
    assert "edgeface/unknown_visitor/event" in order, log
    first_picture = order.index("edgeface/door/unknown_image")
    assert first_picture < order.index("edgeface/unknown_visitor/event")
    picture = sub.messages[first_picture].payload
    assert picture[:2] == b"\xff\xd8" and len(picture) <= MAX_BYTES
    diagnostics = [m.json() for m in sub.on("edgeface/door/diagnostics")]
    assert diagnostics and set(diagnostics[-1]) == {"fps", "dropped_frames", "cascade_share"}, log


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
        added = config_of(name_key("Eileen Collins") + "_presence", empty=False)
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
        == sorted([name_key("Eileen Collins") + "_presence", "unknown_visitor"])


@pytest.mark.slow
@needs_shipped_model
def test_daemon_with_its_gallery_missing_leaves_the_presence_entities_in_place(tmp_path, mosquitto, subscriber):
    """A mistyped gallery path gives a daemon that knows nobody: the people's entities an earlier run
    announced stay (their Home Assistant settings with them) until the gallery is there."""
    old = f"{DP}/binary_sensor/edgeface-under-test/carol_presence/config"
    setter = subscriber("unused/#")
    setter.client.publish(old, '{"name": "Carol"}', qos=1, retain=True).wait_for_publish(5)
    watch = subscriber(old)
    assert watch.wait_for(lambda m: m.payload != b"", 10)  # retained on the broker
    sub, log = run_clip(tmp_path, mosquitto, subscriber, gallery_people=False)
    assert "does not exist" in log
    assert any(m.topic.endswith("/unknown_visitor/config") for m in sub.messages), log  # discovery went out
    assert not [m for m in watch.messages if m.payload == b""], log


@pytest.mark.slow
@needs_shipped_model
def test_daemon_reloaded_onto_a_missing_gallery_keeps_the_presence_entities(tmp_path, mosquitto, subscriber, media,
                                                                             run_daemon):
    """A gallery path mistyped on a reload names nobody until the file is there, and takes no one's
    Home Assistant entity away: the astronaut's presence config stays on the broker."""
    import signal

    import yaml

    model = shipped_model()
    enroll(tmp_path / "gallery.db", media["photo"], model)
    topic = f"{DP}/binary_sensor/edgeface-under-test/astronaut_presence/config"
    watch = subscriber(topic)
    config = write_config(tmp_path, mosquitto, model, media=media, mqtt={"discovery": True})
    d = run_daemon(config)
    assert watch.wait_for(lambda m: m.payload != b"", 60), d.log()
    text = yaml.safe_load(config.read_text())
    text["gallery"] = str(tmp_path / "galery.db")  # the typo
    text["mqtt"]["keepalive"] = 30  # and a new publisher (its connection judges stale entities)
    config.write_text(yaml.safe_dump(text))
    d.signal(signal.SIGHUP)
    assert d.wait_log("galery.db does not exist", 30), d.log()
    assert d.wait_log("MQTT: connected", 30, count=2), d.log()
    watch.wait_for(lambda m: False, 2.0)  # the new connection's retained configs have come and been judged
    assert not [m for m in watch.messages if m.payload == b""], d.log()
    still = subscriber(topic)
    assert still.wait_for(lambda m: m.retain and m.payload != b"", 10), d.log()  # retained, not emptied
