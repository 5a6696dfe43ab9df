"""MQTT client ids against a real mosquitto: unique per installation, stable across restarts, and a
clash (two clients with one id kicking each other off) said once and backed off instead of flapping."""
import itertools
import logging
import re
import time

from edgeface.config import MqttConfig, load
from edgeface.mqtt.publish import CLASH_BACKOFF_MAX_S, Publisher

WINDOW_S = 20  # observation window for the clash test: flaps are counted in it, not timed


def status_flaps(sub) -> int:
    texts = [m.text for m in sub.on("edgeface/status")]
    return sum(1 for before, after in itertools.pairwise(texts) if before != after)


def test_two_clients_with_one_id_say_so_once_and_back_off(mosquitto, subscriber, caplog):
    caplog.set_level(logging.DEBUG, logger="edgeface.mqtt.publish")
    sub = subscriber("edgeface/status")
    twins = [Publisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id="edgeface-twin",
                                  discovery=False), ["front"]) for _ in range(2)]
    try:
        for p in twins:
            p.start()
        time.sleep(WINDOW_S)
        flaps = status_flaps(sub)
    finally:
        for p in twins:
            p.close(timeout=0.5)
    clash = [r for r in caplog.records if "probably uses the same client id 'edgeface-twin'" in r.getMessage()]
    assert clash and all(r.levelno == logging.WARNING for r in clash)
    # once per publisher that noticed, not once per drop
    assert len(clash) == sum(p.id_clash_warned for p in twins) >= 1, [r.getMessage() for r in clash]
    assert f"back-off up to {CLASH_BACKOFF_MAX_S} s" in clash[0].getMessage()
    # Before: paho reconnected 1 s after each kick and the status flapped about twice a second
    # (39 flaps in this window); with the back-off: the first few kicks, then 5, 15, 45 s apart (10).
    assert 2 <= flaps <= 16, flaps
    lost = [r for r in caplog.records if "lost the broker" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(lost) <= 2 * len(twins), [r.getMessage() for r in lost]  # the log is not flooded either


def write_config(folder, mosquitto):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edgeface.yaml"
    path.write_text(f"cameras:\n  - {{name: front, source: 0}}\n"
                    f"mqtt: {{host: {mosquitto.host}, port: {mosquitto.port}}}\n")
    return path


def test_default_ids_differ_per_config_and_stay_the_same_across_restarts(mosquitto, subscriber, tmp_path, caplog):
    first, second = write_config(tmp_path / "a", mosquitto), write_config(tmp_path / "b", mosquitto)
    pub_a = Publisher(load(first).mqtt, ["front"])
    pub_b = Publisher(load(second).mqtt, ["front"])
    assert re.fullmatch(r"edgeface-[A-Za-z0-9_-]+-[0-9a-f]{8}", pub_a.client_id), pub_a.client_id
    assert pub_a.client_id != pub_b.client_id
    # a restart (a new load of the same file, a new Publisher) keeps the id, and so the HA device
    again = Publisher(load(first).mqtt, ["front"])
    assert again.client_id == pub_a.client_id and again.node_id == pub_a.node_id
    # the same file named by another (relative, non-normalised) path is the same installation
    assert load(tmp_path / "b" / ".." / "a" / "edgeface.yaml").mqtt.client_id == pub_a.client_id
    # built by hand, without a config file: the default is still machine-unique and stable
    bare = Publisher(MqttConfig(), ["front"])
    assert bare.client_id == Publisher(MqttConfig(), ["front"]).client_id != pub_a.client_id
    assert Publisher(MqttConfig(), ["front"], config_path=str(first)).client_id == pub_a.client_id

    # Both installations on one broker: neither kicks the other off.
    sub = subscriber("homeassistant/#")
    try:
        pub_a.start()
        pub_b.start()
        assert pub_a.wait_connected(10) and pub_b.wait_connected(10)
        for p in (pub_a, pub_b):  # each its own Home Assistant device, named after its id
            assert sub.wait_for(lambda m, p=p: m.topic == f"homeassistant/sensor/{p.node_id}/front_person/config", 10)
        time.sleep(3)
        assert pub_a.connected and pub_b.connected
    finally:
        pub_a.close()
        pub_b.close()
    assert not [r for r in caplog.records if "lost the broker" in r.getMessage() or "same client id" in r.getMessage()]
