"""Publisher against a real mosquitto: availability, Last Will, identity JSON, discovery, outage queue."""
import re

from edgeface.config import MqttConfig
from edgeface.mqtt.publish import Publisher
from edgeface.recognition.track import IdentityEvent


def event(name="ann", track_id=1, t=1_700_000_000.25):
    return IdentityEvent(name, 0.87654, (10, 20, 30, 40), -31.25, track_id, t)


def make(mosquitto, **kw):
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id="edgeface-test", **kw)
    return Publisher(cfg, ["front", "back"])


def test_online_identity_discovery_offline(mosquitto, subscriber):
    sub = subscriber("#")
    pub = make(mosquitto)
    pub.start()
    assert sub.wait_for(lambda m: m.topic == "edgeface/status" and m.text == "online", 10)
    pub.publish_identity("front", event())
    pub.publish_identity("back", event(None, 2))
    m = sub.wait_for(lambda m: m.topic == "edgeface/front/identity", 10)
    body = m.json()
    assert body == {"name": "ann", "score": 0.8765, "camera": "front", "timestamp": "2023-11-14T22:13:20.250Z",
                    "box": [10, 20, 30, 40], "angle": -31.2, "track_id": 1}
    assert m.qos == 1 and not m.retain
    unknown = sub.wait_for(lambda m: m.topic == "edgeface/back/identity", 10).json()
    assert unknown["name"] is None and unknown["camera"] == "back"
    # HA: one sensor per camera, fed by the retained last recognised person
    disc = sub.wait_for(lambda m: m.topic == "homeassistant/sensor/edgeface-test/front_person/config", 10)
    cfg = disc.json()
    assert cfg["state_topic"] == "edgeface/front/last_person" and cfg["availability_topic"] == "edgeface/status"
    assert sub.wait_for(lambda m: m.topic == "homeassistant/sensor/edgeface-test/back_person/config", 10)
    last = sub.wait_for(lambda m: m.topic == "edgeface/front/last_person", 10).json()
    assert last["name"] == "ann"
    assert not sub.on("edgeface/back/last_person")  # an unknown face is not "the last recognised person"
    assert not [m for m in sub.messages if "snapshot" in m.topic]
    pub.close()
    assert sub.wait_for(lambda m: m.topic == "edgeface/status" and m.text == "offline", 10)
    # retained: a subscriber arriving later learns both availability and the last person
    late = subscriber("edgeface/#")
    assert late.wait_for(lambda m: m.topic == "edgeface/status" and m.retain, 10).text == "offline"
    assert late.wait_for(lambda m: m.topic == "edgeface/front/last_person" and m.retain, 10).json()["name"] == "ann"


def test_discovery_off_and_topic_prefix(mosquitto, subscriber):
    sub = subscriber("#")
    pub = make(mosquitto, topic_prefix="home/faces", discovery=False)
    pub.start()
    assert sub.wait_for(lambda m: m.topic == "home/faces/status" and m.text == "online", 10)
    pub.publish_identity("front", event())
    assert sub.wait_for(lambda m: m.topic == "home/faces/front/identity", 10)
    pub.close()
    assert not [m for m in sub.messages if m.topic.startswith("homeassistant/")]


def test_queue_while_broker_away_drops_oldest_then_delivers(mosquitto, subscriber, caplog):
    pub = make(mosquitto, queue_max=5, discovery=False)
    # persistent session: the restarted broker holds messages for it until it is back too
    sub = subscriber("edgeface/front/identity", persistent=True)
    pub.start()
    assert pub.wait_connected(10)
    mosquitto.stop()
    for _ in range(200):  # wait until the client noticed
        if not pub.connected:
            break
        __import__("time").sleep(0.05)
    assert not pub.connected
    for k in range(8):
        pub.publish_identity("front", event(None, track_id=k))  # unknowns: one message each
    assert pub.queued() == 5 and pub.dropped == 3
    assert any("dropped" in r.getMessage() for r in caplog.records)
    mosquitto.start()
    assert pub.wait_connected(40)
    got = sub.wait_for(lambda m: m.json()["track_id"] == 7, 20)
    assert got is not None
    ids = [m.json()["track_id"] for m in sub.messages]
    assert ids == [3, 4, 5, 6, 7]  # the newest five, in order
    pub.close()


def test_broker_absent_at_start_is_not_fatal(mosquitto, subscriber):
    mosquitto.stop()
    pub = make(mosquitto, discovery=False)
    pub.start()
    pub.publish_identity("front", event())
    assert not pub.connected and pub.queued() == 2  # identity + last_person
    mosquitto.start()
    sub = subscriber("edgeface/#")
    assert pub.wait_connected(40)
    assert sub.wait_for(lambda m: m.topic == "edgeface/front/identity", 20).json()["name"] == "ann"
    pub.close()


def test_password_never_in_repr():
    cfg = MqttConfig(username="u", password="topsecret")
    assert "topsecret" not in repr(cfg)
    assert re.search(r"username='u'", repr(cfg))


def test_face_crops_only_with_snapshot_enabled(mosquitto, subscriber):
    sub = subscriber("edgeface/#")
    jpeg = b"\xff\xd8 not really a jpeg \xff\xd9"
    plain = make(mosquitto, discovery=False)
    plain.start()
    assert plain.wait_connected(10)
    plain.publish_identity("front", event(), snapshot_jpeg=jpeg)
    assert sub.wait_for(lambda m: m.topic == "edgeface/front/identity", 10)
    plain.close()
    assert not sub.on("edgeface/front/snapshot")
    snap = make(mosquitto, discovery=False, snapshot=True)
    snap.start()
    assert snap.wait_connected(10)
    snap.publish_identity("front", event(), snapshot_jpeg=jpeg)
    got = sub.wait_for(lambda m: m.topic == "edgeface/front/snapshot", 10)
    assert got is not None and got.payload == jpeg
    snap.close()
