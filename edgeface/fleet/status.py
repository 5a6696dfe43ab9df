"""Each device's retained status on ``{prefix}/fleet/{fleet}/devices/{device}`` (model, people,
faces, a gallery fingerprint, last contact), and reading them back for `edgeface fleet status`.

Anyone who may publish on the broker can put a record there, so only a record signed with the
fleet key is believed, and only after every field is checked; anything else is listed as
"not signed" with its topic escaped, never its text.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeface.config import FleetConfig, MqttConfig
from edgeface.fleet.records import DEVICE, FORMAT, RECORD_MAX_BYTES, FleetError, printable, read_key, signed_body
from edgeface.mqtt.client import mqtt_client
from edgeface.store.gallery import LedgerEntry

DEVICES_MAX = 1000  # status records read at most
COUNT_MAX = 10**9
CONTACT_MAX = 1e11  # seconds since 1970: year 5138


def gallery_digest(entries: dict[str, LedgerEntry]) -> str:
    """A short fingerprint of what a device holds: equal on devices that agree."""
    h = hashlib.sha256()
    for key, e in sorted(entries.items()):
        h.update(f"{key}:{e.person}:{e.version}:{int(e.deleted)};".encode())
    return h.hexdigest()[:12]


def status_body(fleet: str, device: str, model_id: str, people: int, faces: int, negatives: int, digest: str,
                now: float) -> dict:
    return {"format": FORMAT, "fleet": fleet, "device": device, "model": model_id, "people": people, "faces": faces,
            "negatives": negatives, "gallery_version": digest, "last_contact": round(now, 3)}


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= COUNT_MAX


def checked_status(topic_device: str, payload: bytes, key: bytes, fleet: str) -> dict:
    """One device's status as `fleet status` shows it: every field checked, or only
    {"device": (escaped), "verified": False} for a record that is not signed or not well formed."""
    shown = printable(topic_device, 64)
    body = signed_body(payload, key) if len(payload) <= RECORD_MAX_BYTES else None
    if body is None:
        return {"device": shown, "verified": False, "problem": "not signed with this fleet's key"}
    contact = body.get("last_contact")
    ok = (body.get("fleet") == fleet and body.get("device") == topic_device and isinstance(topic_device, str)
          and bool(DEVICE.fullmatch(topic_device)) and isinstance(body.get("model"), str)
          and bool(re.fullmatch(r"[0-9a-f]{64}", body["model"])) and all(_count(body.get(k)) for k in
                                                                        ("people", "faces", "negatives"))
          and isinstance(body.get("gallery_version"), str) and bool(re.fullmatch(r"[0-9a-f]{1,64}",
                                                                                 body["gallery_version"]))
          and isinstance(contact, (int, float)) and not isinstance(contact, bool) and math.isfinite(contact)
          and 0 <= contact <= CONTACT_MAX)
    if not ok:
        return {"device": shown, "verified": False, "problem": "signed, but not a well-formed status record"}
    return {k: body[k] for k in ("device", "model", "people", "faces", "negatives", "gallery_version",
                                 "last_contact")} | {"verified": True}


def connect_properties() -> Properties:
    """MQTT 5 CONNECT properties for every fleet connection: the broker must not send us a
    message bigger than a record (a 200 MB retained message would otherwise be read whole)."""
    props = Properties(PacketTypes.CONNECT)
    props.MaximumPacketSize = RECORD_MAX_BYTES + 1024  # + topic and headers
    return props


def fleet_status(cfg: FleetConfig, mqtt_cfg: MqttConfig, client_id: str, wait_s: float = 2.0) -> list[dict]:
    """The devices' retained status records, checked (``verified``)."""
    assert cfg.name is not None and cfg.key_file is not None
    key = read_key(cfg.key_file)
    base = f"{mqtt_cfg.topic_prefix}/fleet/{cfg.name}"
    seen: dict[str, dict] = {}
    done = threading.Event()
    lock = threading.Lock()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            done.set()
        else:
            client.subscribe(f"{base}/devices/+", qos=1)

    def on_message(client, userdata, msg):
        device = msg.topic.rsplit("/", 1)[-1]
        with lock:
            if len(seen) < DEVICES_MAX or device in seen:
                seen[device] = checked_status(device, bytes(msg.payload), key, cfg.name or "")

    client = mqtt_client(mqtt_cfg, f"{client_id}-status-{os.getpid()}", protocol=mqtt.MQTTv5)
    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(mqtt_cfg.host, mqtt_cfg.port, keepalive=10, clean_start=True, properties=connect_properties())
    except OSError as e:
        raise FleetError(f"cannot reach the broker {mqtt_cfg.host}:{mqtt_cfg.port}: {e}") from None
    client.loop_start()
    done.wait(wait_s)
    client.disconnect()
    client.loop_stop()
    with lock:
        return [seen[d] for d in sorted(seen)]
