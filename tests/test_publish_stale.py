"""Home Assistant entities a device no longer announces go at its next start (edgeface.mqtt.stale):
a camera taken out of the config, diagnostics switched off; never another device's, and never one
whose announcement hangs on what is not known yet. Real mosquitto; no clock in the assertions
(every wait is on a condition, with a timeout)."""
from __future__ import annotations

import logging
import time

from edgeface.config import HomeConfig, MqttConfig
from edgeface.mqtt import homeassistant as ha
from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher
from edgeface.mqtt.stale import StaleConfigs
from edgeface.mqtt.topics import Topics

DP = "homeassistant"
NODE = "edgeface-stale"
MARKER = "edgeface-test/marker"


def until(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def retained_now(subscriber, node: str | None = None) -> dict[str, bytes]:
    """The retained discovery configs (of `node`, else all) a client subscribing now gets: all of them,
    since a message it sends after subscribing comes back behind them."""
    sub = subscriber("#")
    sub.client.publish(MARKER, "end", qos=1)
    end = sub.wait_for(lambda m: m.topic == MARKER, 10)
    assert end is not None
    before = sub.messages[:sub.messages.index(end)]
    return {m.topic: m.payload for m in before if m.retain and m.payload and m.topic.startswith(f"{DP}/")
            and len(m.topic.split("/")) == 5 and node in (None, m.topic.split("/")[2])}


def start(mosquitto, cameras, client_id=NODE, people=("alice",), give_people=True, **home) -> Publisher:
    """As the daemon starts one: everyone's presence first (unless `give_people` is False), then connect."""
    pub = Publisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id=client_id), list(cameras),
                    home=HomeConfig(**home))
    if give_people:
        presence = Presence(600, 60)
        presence.set_people(list(people))
        pub.publish_presence(presence.states())
    pub.start()
    assert pub.wait_connected(10)
    return pub


def run_once(mosquitto, subscriber, cameras, client_id=NODE, temperature=None, **home) -> set[str]:
    """A device that runs until its discovery is on the broker, then stops; what it announced."""
    pub = start(mosquitto, cameras, client_id, **home)
    try:
        if temperature is not None:
            pub.publish_diagnostics({}, {"soc_temperature": temperature})
        announced = {d.topic for d in pub.discoveries()}
        assert until(lambda: announced <= set(retained_now(subscriber, pub.node_id)))
    finally:
        pub.close()
    return announced


def restart(mosquitto, subscriber, cameras, gone: set[str], client_id=NODE, **kw) -> Publisher:
    """Starts the device again and returns it once it has heard every retained config of its node
    and the ones in `gone` are emptied on the broker."""
    before = set(retained_now(subscriber, client_id))
    watch = subscriber(f"{DP}/#")
    pub = start(mosquitto, cameras, client_id, **kw)
    heard = before | {d.topic for d in pub.discoveries()}
    assert until(lambda: pub.stale.heard_retained >= len(heard)), (pub.stale.heard_retained, heard)
    for topic in gone:
        assert watch.wait_for(lambda m, t=topic: m.topic == t and m.payload == b"" and not m.retain, 10), topic
    return pub


def config(component: str, object_id: str, node: str = NODE) -> str:
    return f"{DP}/{component}/{node}/{object_id}/config"


def camera_topics(camera: str, node: str = NODE) -> set[str]:
    t = Topics.build(MqttConfig(client_id=node), HomeConfig(), node)
    return {d.topic for d in ha.camera_entities(t, camera)}


def test_a_camera_taken_out_of_the_config_takes_its_entities_with_it_at_the_next_start(mosquitto, subscriber,
                                                                                        caplog):
    caplog.set_level(logging.INFO, logger="edgeface.mqtt.publish")
    first = run_once(mosquitto, subscriber, ["a", "b"], unknown_image=True, person_image=True)
    b_entities = {t for t in first if t.split("/")[3].startswith("b_")}
    assert b_entities == camera_topics("b")  # every kind of per-camera entity, b's person sensor included
    pub = restart(mosquitto, subscriber, ["a"], gone=b_entities, unknown_image=True, person_image=True)
    try:
        kept = retained_now(subscriber, NODE)
        assert set(kept) == first - b_entities == {d.topic for d in pub.discoveries()}
        assert camera_topics("a") <= set(kept)
        removed = [r.getMessage() for r in caplog.records if "removing the Home Assistant entity" in r.getMessage()]
        assert len(removed) == len(b_entities) and all("camera b no longer configured" in r for r in removed), removed
    finally:
        pub.close()


def test_diagnostics_switched_off_takes_the_diagnostic_entities_away(mosquitto, subscriber):
    first = run_once(mosquitto, subscriber, ["door"], temperature=41.5)
    diagnostic = {config("sensor", k) for k in ("door_fps", "door_dropped_frames", "door_cascade_share",
                                                 "cpu_percent", "gallery_people", "gallery_faces", "soc_temperature")}
    assert diagnostic <= first
    pub = restart(mosquitto, subscriber, ["door"], gone=diagnostic, diagnostics=False)
    try:
        kept = set(retained_now(subscriber, NODE))
        assert kept == first - diagnostic
        assert {config("sensor", "door_person"), config("binary_sensor", "alice_presence"),
                config("binary_sensor", "unknown_visitor"), config("event", "unknown_visitor")} <= kept
        assert pub.stale.pending() == set()  # nothing left undecided
    finally:
        pub.close()


def test_another_devices_entities_are_never_touched(mosquitto, subscriber):
    theirs = run_once(mosquitto, subscriber, ["a", "b"], client_id="edgeface-other", temperature=40.0)
    # a node id with wildcards is sanitised (node_id_of): "edgeface+stale" would otherwise match others
    also = run_once(mosquitto, subscriber, ["b"], client_id="edgeface+stale")
    assert {t.split("/")[2] for t in also} == {"edgeface_stale"}
    ours = run_once(mosquitto, subscriber, ["a", "b"])
    gone = ours - {config("sensor", "a_person")}  # b's, the diagnostics, the presence entities
    pub = restart(mosquitto, subscriber, ["a"], gone=gone, diagnostics=False, presence=False)
    try:
        assert set(retained_now(subscriber, "edgeface-other")) == theirs  # b and the diagnostics included
        assert set(retained_now(subscriber, "edgeface_stale")) == also
        assert set(retained_now(subscriber, NODE)) == {config("sensor", "a_person")}
    finally:
        pub.close()


def test_the_gallerys_people_and_the_temperature_are_known_before_their_entities_are_judged(mosquitto,
                                                                                             subscriber):
    first = run_once(mosquitto, subscriber, ["door"], people=("alice", "bob"), temperature=40.0)
    alice, bob, soc = (config("binary_sensor", "alice_presence"), config("binary_sensor", "bob_presence"),
                       config("sensor", "soc_temperature"))
    assert {alice, bob, soc} <= first
    # started without the gallery's people and before any diagnostics: those entities wait
    pub = restart(mosquitto, subscriber, ["door"], gone=set(), give_people=False)
    try:
        assert pub.stale.pending() == {alice, bob, soc}
        assert set(retained_now(subscriber, NODE)) == first
        watch = subscriber(f"{DP}/#")
        presence = Presence(600, 60)
        presence.set_people(["alice"])
        pub.publish_presence(presence.states())  # bob has gone from the gallery meanwhile
        assert watch.wait_for(lambda m: m.topic == bob and m.payload == b"", 10)
        assert pub.stale.pending() == {soc}
        pub.publish_diagnostics({}, {"soc_temperature": None})  # this board has none (any more)
        assert watch.wait_for(lambda m: m.topic == soc and m.payload == b"", 10)
        assert pub.stale.pending() == set()
        assert set(retained_now(subscriber, NODE)) == first - {bob, soc}
        assert not [m for m in watch.messages if m.topic == alice and m.payload == b""]
    finally:
        pub.close()


def test_a_temperature_read_after_connecting_keeps_its_entity(mosquitto, subscriber):
    first = run_once(mosquitto, subscriber, ["door"], temperature=40.0)
    pub = restart(mosquitto, subscriber, ["door"], gone=set())
    try:
        soc = config("sensor", "soc_temperature")
        assert pub.stale.pending() == {soc}
        watch = subscriber(soc)
        pub.publish_diagnostics({}, {"soc_temperature": 42.0})
        assert watch.wait_for(lambda m: not m.retain and m.payload != b"", 10)  # announced again, not removed
        assert pub.stale.pending() == set()
        assert not [m for m in watch.messages if m.payload == b""]
        assert set(retained_now(subscriber, NODE)) == first
    finally:
        pub.close()


# -- without a broker ----------------------------------------------------------------------------
def test_only_this_nodes_retained_non_empty_configs_are_judged_and_the_reason_names_the_camera():
    t = Topics.build(MqttConfig(client_id="dev-1"), HomeConfig(), "dev-1")
    stale = StaleConfigs(t, ["front_door"])
    assert t.discovery_node == f"{DP}/+/dev-1/+/config"
    assert not stale.heard(f"{DP}/sensor/dev-2/x_person/config", b"{}", True)  # another device's
    assert not stale.heard(f"{DP}/status", b"online", True)
    assert stale.heard(f"{DP}/sensor/dev-1/gone_person/config", b"", True)  # already removed
    assert stale.heard(f"{DP}/sensor/dev-1/back_yard_fps/config", b"{}", False)  # live: our own echo
    assert stale.pending() == set()
    for component, object_id in (("sensor", "back_yard_fps"), ("sensor", "front_door_fps"), ("sensor", "cpu_percent"),
                                 ("binary_sensor", "alice_presence")):
        assert stale.heard(config(component, object_id, "dev-1"), b"{}", True)
    judged = stale.judge({config("sensor", "front_door_fps", "dev-1")},
                         lambda component, object_id: ha.is_person_presence(component, object_id))
    assert judged == [(config("sensor", "back_yard_fps", "dev-1"), "camera back_yard no longer configured"),
                      (config("sensor", "cpu_percent", "dev-1"), "no longer announced")]
    assert stale.pending() == {config("binary_sensor", "alice_presence", "dev-1")}  # undecided: kept for later
    assert stale.camera_of("image", "back_yard_last_unknown_visitor") == "back_yard"
    assert stale.camera_of("sensor", "gallery_people") is None
    assert stale.camera_of("binary_sensor", "unknown_visitor") is None


def test_people_not_known_to_be_everyone_leave_every_presence_entity_in_place(mosquitto, subscriber):
    """The daemon sets gallery_missing while its gallery file is missing (a mistyped path): removing
    everyone's presence entity then would lose what the user set on them in Home Assistant."""
    first = run_once(mosquitto, subscriber, ["door"], people=("alice", "bob"))
    alice, bob = config("binary_sensor", "alice_presence"), config("binary_sensor", "bob_presence")
    assert {alice, bob} <= first
    pub = restart(mosquitto, subscriber, ["door"], gone=set(), give_people=False, diagnostics=False)
    try:
        watch = subscriber(f"{DP}/#")
        pub.gallery_missing = True
        presence = Presence(600, 60)
        pub.publish_presence(presence.states())  # nobody: the gallery is missing
        pub.publish_presence(presence.expire(time.monotonic() + 3600))  # the daemon's periodic call
        assert pub.stale.pending() == {alice, bob}
        assert {alice, bob} <= set(retained_now(subscriber, NODE))
        pub.gallery_missing = False
        pub.publish_presence(presence.set_people(["alice"]))  # the gallery appeared: alice alone
        assert watch.wait_for(lambda m: m.topic == bob and m.payload == b"", 10)
        assert alice in retained_now(subscriber, NODE) and pub.stale.pending() == set()
    finally:
        pub.close()
