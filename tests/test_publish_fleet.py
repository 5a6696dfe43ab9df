"""Devices of one household on one broker (issue 26, finding 6): each device has its own
availability, and presence is the household's (a person is home if any device saw them lately).
Real mosquitto; pure parts with a driven clock."""
import time

import pytest

from edgeface.config import HomeConfig, MqttConfig
from edgeface.mqtt.household import Household
from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher

T0 = 1_700_000_000.0


def test_household_is_home_while_any_device_sees_them_and_lapses_after_a_device_goes_offline():
    h = Household(timeout=600, unknown_timeout=60)
    h.own("madonna", False, {"person": "madonna"}, now=0)
    h.heard("dev-a", "madonna", {"present": True, "person": "madonna", "camera": "door"}, now=1)
    assert h.state("madonna", now=2) == (True, {"person": "madonna", "camera": "door", "last_seen": None,
                                                "score": None})
    h.device_status("dev-a", online=False, now=100)  # dev-a stops while it still sees her
    assert h.state("madonna", now=699)[0] is True  # ... she counts for one more timeout
    assert h.state("madonna", now=700)[0] is False
    h.device_status("dev-a", online=True, now=800)  # back, still saying present (its retained view)
    assert h.state("madonna", now=801)[0] is True
    h.heard("dev-a", "madonna", {"present": False, "person": "madonna"}, now=900)
    assert h.state("madonna", now=901)[0] is False
    h.own("madonna", True, {"person": "madonna", "camera": "garden"}, now=902)
    assert h.state("madonna", now=903) == (True, {"person": "madonna", "camera": "garden"})
    h.forget("madonna")
    assert h.state("madonna", now=904) == (False, None)


def start(mosquitto, client_id: str, people=("madonna",)) -> tuple[Publisher, Presence]:
    presence = Presence(2.0, 1.0)
    presence.set_people(list(people))
    pub = Publisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id=client_id), ["door"],
                    home=HomeConfig(presence_timeout=2.0, unknown_timeout=1.0), fleet=True)
    pub.start(presence.states())
    assert pub.wait_connected(10)
    return pub, presence


def pump(pub: Publisher, presence: Presence, seconds: float) -> None:
    """What the daemon's main loop does every 0.2 s."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pub.publish_presence(presence.expire(time.monotonic()))
        time.sleep(0.1)


@pytest.mark.broker
def test_stopping_one_device_leaves_the_others_available_and_presence_right(mosquitto, subscriber):
    sub = subscriber("#")
    a, pa = start(mosquitto, "dev-a")
    b = None
    try:
        pa_updates = pa.seen("madonna", "door", 0.8, time.monotonic(), T0)
        a.publish_presence(pa_updates)
        pump(a, pa, 1.3)
        state = "edgeface/presence/madonna/state"
        assert sub.wait_for(lambda m: m.topic == state and m.text == "ON", 10)
        mark = len(sub.messages)
        b, pb = start(mosquitto, "dev-b")  # a device starting up has seen nobody
        pump(b, pb, 1.5)
        assert "OFF" not in [m.text for m in sub.messages[mark:] if m.topic == state]  # not while dev-a sees her
        late = subscriber(state)
        assert late.wait_for(lambda m: m.retain, 5).text == "ON"
        # each device its own availability; discovery points each device's entities at it
        configs = [m.json() for m in sub.messages if m.topic.startswith("homeassistant/") and m.payload]
        assert {c["availability_topic"] for c in configs} == {"edgeface/dev-a/status", "edgeface/dev-b/status"}
        a.close()
        assert sub.wait_for(lambda m: m.topic == "edgeface/dev-a/status" and m.text == "offline", 10)
        b_status = subscriber("edgeface/dev-b/status")
        assert b_status.wait_for(lambda m: m.retain, 5).text == "online"  # dev-b's entities stay available
        assert not [m for m in sub.messages if m.topic == "edgeface/status"]  # nothing household-wide
        # dev-a can no longer say she left: she counts for one more timeout, then dev-b says OFF
        mark = len(sub.messages)
        pump(b, pb, 3.0)
        assert [m.text for m in sub.messages[mark:] if m.topic == state] == ["OFF"]
        # dev-b sees her itself: ON again (the old bug: the restarted device never said ON again)
        b.publish_presence(pb.seen("madonna", "door", 0.8, time.monotonic(), T0 + 10))
        assert sub.wait_for(lambda m: m.topic == state and m.text == "ON", 10, mark)
    finally:
        a.close()
        if b is not None:
            b.close()
