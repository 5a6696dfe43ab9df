"""edgeface.mqtt.compat: Frigate- and Double Take-shaped payloads (pure builders), and their topics on a real broker."""
import json
from datetime import datetime

import pytest

from edgeface.config import HomeConfig, MqttConfig
from edgeface.mqtt.compat import double_take_payload, frigate_face_update
from edgeface.mqtt.publish import Publisher
from edgeface.mqtt.topics import Topics, name_key
from edgeface.recognition.track import IdentityEvent

T = 1_700_000_123.456789


def event(name="Alice", score=0.8123, box=(40, 30, 100, 120), track_id=7):
    return IdentityEvent(name=name, score=score, box=box, angle=0.0, track_id=track_id, t=T)


def test_frigate_face_update_has_frigates_fields_and_types():
    body = frigate_face_update(event(), "door")
    assert body == {"type": "face", "id": "1700000123.457-door-7", "name": "Alice", "score": 0.8123, "camera": "door",
                    "timestamp": round(T, 3)}
    assert isinstance(body["id"], str) and isinstance(body["timestamp"], float)
    stranger = frigate_face_update(event(name=None, score=-0.2), "door")
    assert stranger["name"] is None and stranger["score"] == 0.0  # cosine below 0 clamped to Frigate's 0..1
    assert frigate_face_update(event(score=1.3), "door")["score"] == 1.0
    json.dumps(body, allow_nan=False)


@pytest.mark.parametrize("name, level", [
    ("david", "david"), ("ben_affleck", "ben_affleck"), ("Mary Jane", name_key("Mary Jane")),
    ("Alice", name_key("Alice")), (None, "unknown"),
])
def test_double_take_topic_uses_the_one_name_key(name, level):
    # Double Take lower-cases names for its topics; that made "Alice", "alice" and "a.lice" share one
    # (26.13): the topic level is edgeface's name key, lower-case names stay as Double Take had them
    t = Topics.build(MqttConfig(), HomeConfig(double_take_prefix="double-take/"), "dev")
    assert t.double_take(name) == f"double-take/matches/{level}"
    assert len({t.double_take(n) for n in ("Alice", "alice", "a.lice", "unknown", None)}) == 5


def test_double_take_match_payload():
    body = double_take_payload(event(), "Front_Door", duration=0.1234)
    assert set(body) == {"id", "duration", "timestamp", "attempts", "camera", "zones", "match"}
    assert body["id"] == "1700000123.457-Front_Door-7"
    assert body["camera"] == "front_door"  # Double Take lower-cases cameras
    assert body["attempts"] == 1 and body["zones"] == [] and body["duration"] == 0.12
    assert datetime.fromisoformat(body["timestamp"]).timestamp() == pytest.approx(T, abs=1e-3)
    assert body["timestamp"][-6] in "+-"  # ISO 8601 with the local offset, as luxon writes it
    m = body["match"]
    assert m == {"name": "alice", "confidence": 81.23, "match": True,
                 "box": {"top": 30, "left": 40, "width": 100, "height": 120},
                 "type": "latest", "duration": 0.12, "detector": "edgeface", "filename": None}
    json.dumps(body, allow_nan=False)


def test_double_take_unknown_payload_has_unknown_and_unknowns():
    body = double_take_payload(event(name=None, score=0.31), "door", duration=0.05)
    assert "match" not in body
    assert body["unknown"] == body["unknowns"][0]
    assert body["unknown"]["name"] == "unknown" and body["unknown"]["match"] is False
    assert 0 <= body["unknown"]["confidence"] <= 100 and body["unknown"]["confidence"] == 31.0


def test_outputs_are_off_by_default_and_on_when_configured(mosquitto, subscriber):
    sub = subscriber("#")
    off = Publisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id="compat-off", discovery=False),
                    ["door"])
    on = Publisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id="compat-on", discovery=False,
                              topic_prefix="cam"),
                   ["door"], home=HomeConfig(frigate=True, frigate_prefix="frigate", double_take=True))
    try:
        for p in (off, on):
            p.start()
            assert p.wait_connected(10)
            p.publish_identity("door", event(name="Mary Jane"))
            p.publish_home("door", event(name="Mary Jane"), 0.2)
            p.publish_home("door", event(name=None, track_id=8), 0.2)
        dt = sub.wait_for(lambda m: m.topic == "double-take/matches/unknown")
        assert dt is not None and dt.json()["unknown"]["name"] == "unknown" and not dt.retain
        mary = f"double-take/matches/{name_key('Mary Jane')}"  # the one name key, not Double Take's "mary-jane"
        match = sub.wait_for(lambda m: m.topic == mary)
        assert match is not None and match.json()["match"]["name"] == "mary jane"
        frigate = [m.json() for m in sub.on("frigate/tracked_object_update")]
        assert [f["name"] for f in frigate] == ["Mary Jane", None] and {f["type"] for f in frigate} == {"face"}
        # exactly one of each: the publisher with the defaults sent none of them
        assert len(sub.on(mary)) == 1
        assert not sub.on("edgeface/tracked_object_update") and not sub.on("cam/tracked_object_update")
        # the unknown-visitor event goes out (presence is on by default) for both publishers' strangers
        events = [m.json() for m in sub.messages if m.topic.endswith("/unknown_visitor/event")]
        assert [e["event_type"] for e in events] == ["unknown_visitor", "unknown_visitor"]
    finally:
        off.close()
        on.close()
