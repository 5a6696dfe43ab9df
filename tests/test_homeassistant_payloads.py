"""Home Assistant discovery payloads as pure functions: no broker (edgeface.mqtt.homeassistant),
checked against the encoded Home Assistant 2026.2.3 schema (tests/ha_schema.py)."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from ha_schema import schema_problems

from edgeface.cli.demo import astronaut_bgr
from edgeface.config import HomeConfig, MqttConfig
from edgeface.mqtt import homeassistant as ha
from edgeface.mqtt.diagnostics import DeviceProbe, find_soc_zone
from edgeface.mqtt.images import MAX_BYTES, face_jpeg, grown_box
from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher
from edgeface.mqtt.topics import name_key

DP = "homeassistant"


def everything_on(**home) -> Publisher:
    """A publisher with every entity switched on and two people, never connected."""
    pub = Publisher(MqttConfig(client_id="edgeface-ha"), ["door", "back-yard"],
                    home=HomeConfig(unknown_image=True, person_image=True, **home))
    presence = Presence(600, 60)
    pub.publish_presence(presence.set_people(["alice", "Mary Jane"]))
    pub.publish_diagnostics({}, {"soc_temperature": 48.2})  # a board with a thermal zone
    return pub


def test_every_entity_has_a_domain_qualified_default_entity_id_its_object_id_and_an_origin():
    pub = everything_on()
    found = pub.discoveries()
    assert {d.component for d in found} == {"sensor", "binary_sensor", "event", "image"}
    for d in found:
        c = d.config
        assert schema_problems(d.component, c) == [], d.topic
        domain, object_id = c["default_entity_id"].split(".")
        assert domain == d.component and re.fullmatch(r"[a-z0-9_]+", object_id), c["default_entity_id"]
        assert ha.slug(c["object_id"]) == object_id  # what Home Assistant before 2025.10 makes of object_id
        assert c["origin"] == {"name": "edgeface", "sw_version": ha.__version__, "support_url": ha.SUPPORT_URL}
        assert d.topic == f"{DP}/{d.component}/edgeface-ha/{d.object_id}/config"
    ids = [d.config["unique_id"] for d in found]
    assert len(set(ids)) == len(ids)
    entity_ids = [d.default_entity_id for d in found]
    assert len(set(entity_ids)) == len(entity_ids)
    diagnostic = {d.default_entity_id for d in found if d.config.get("entity_category") == "diagnostic"}
    assert {"sensor.edgeface_door_fps", "sensor.edgeface_door_dropped_frames", "sensor.edgeface_door_cascade_share",
            "sensor.edgeface_back_yard_fps", "sensor.edgeface_ha_cpu", "sensor.edgeface_ha_soc_temperature",
            "sensor.edgeface_ha_gallery_people", "sensor.edgeface_ha_gallery_faces"} <= diagnostic
    assert "image.edgeface_door_last_unknown_visitor" in entity_ids
    pub.client.loop_stop()


def test_the_entity_ids_the_readme_documents_are_the_ones_discovered():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    documented = set(re.findall(r"`((?:binary_sensor|sensor|event|image)\.edgeface_[a-z0-9_<>]+)`", readme))
    assert len(documented) >= 6, documented
    found = {d.default_entity_id for d in everything_on().discoveries()}
    examples = {"<person>": "alice", "<camera>": "door", "<device>": "ha"}
    for entity_id in sorted(documented):
        for placeholder, example in examples.items():
            entity_id = entity_id.replace(placeholder, example)
        assert entity_id in found, (entity_id, sorted(found))


def test_entity_ids_of_entities_that_existed_before_are_unchanged():
    found = {d.object_id: d for d in everything_on().discoveries()}
    # object ids and unique ids as edgeface sent them before default_entity_id existed
    assert found["door_person"].config["object_id"] == "edgeface_door_person"
    assert found["door_person"].config["unique_id"] == "edgeface-ha_door_person"
    assert found["alice_presence"].config["object_id"] == "edgeface_alice_presence"
    assert found["alice_presence"].default_entity_id == "binary_sensor.edgeface_alice_presence"
    key = name_key("Mary Jane")
    assert found[f"{key}_presence"].default_entity_id == f"binary_sensor.edgeface_{key}_presence"
    assert found["unknown_visitor"].config["unique_id"] in ("edgeface-ha_unknown_visitor",
                                                            "edgeface-ha_unknown_visitor_event")
    events = [d for d in found.values() if d.component == "event"]
    assert [e.config["unique_id"] for e in events] == ["edgeface-ha_unknown_visitor_event"]
    assert events[0].default_entity_id == "event.edgeface_unknown_visitor_seen"


def test_face_picture_box_grows_by_half_and_stays_small():
    assert grown_box((100, 100, 40, 40), (480, 640, 3)) == (90, 90, 150, 150)
    assert grown_box((0, 0, 40, 40), (480, 640, 3)) == (0, 0, 50, 50)  # clipped at the edge
    assert grown_box((700, 10, 40, 40), (480, 640, 3)) is None
    big = cv2.resize(astronaut_bgr(), (2000, 2000))
    noisy = (big.astype("int16") + np.random.default_rng(0).integers(-60, 60, big.shape)).clip(0, 255)
    jpeg = face_jpeg(noisy.astype("uint8"), (100, 100, 1600, 1600))
    assert jpeg is not None and len(jpeg) <= MAX_BYTES and jpeg[:2] == b"\xff\xd8"


def test_soc_temperature_comes_from_the_boards_thermal_zone(tmp_path):
    assert find_soc_zone(tmp_path) is None and DeviceProbe(tmp_path).soc_temperature() is None
    for n, (kind, milli) in enumerate([("acpitz", "27800"), ("cpu-thermal", "51234")]):
        zone = tmp_path / f"thermal_zone{n}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    probe = DeviceProbe(tmp_path)
    assert probe.zone == tmp_path / "thermal_zone1" / "temp" and probe.soc_temperature() == 51.2
    assert 0.0 <= probe.cpu_percent()
