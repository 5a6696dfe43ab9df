"""Home Assistant MQTT discovery payloads, as pure functions of the topics and the config.

Checked against Home Assistant's current MQTT discovery schema in tests/test_homeassistant.py
without a broker. Every entity carries:
  * ``default_entity_id`` ("<domain>.<object id>": what Home Assistant 2025.10+ uses for a new
    entity's id) and ``object_id`` (the same object id, for Home Assistant before 2025.10, which
    ignores default_entity_id; 2026.4+ ignores object_id), so the entity ids in the README hold on
    every version;
  * an ``origin`` block (who sends the discovery);
  * this device's availability topic and its device block.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from edgeface import __version__
from edgeface.mqtt.topics import Topics, name_key

ONLINE, OFFLINE = "online", "offline"
SUPPORT_URL = "https://github.com/edgeface/edgeface"
ORIGIN = {"name": "edgeface", "sw_version": __version__, "support_url": SUPPORT_URL}
DIAGNOSTIC = "diagnostic"


@dataclass(frozen=True)
class Discovery:
    component: str  # Home Assistant platform: sensor, binary_sensor, event, image
    object_id: str  # this device's id for the entity (the discovery topic's level)
    topic: str
    config: dict

    @property
    def default_entity_id(self) -> str:
        return self.config["default_entity_id"]


def slug(text: str) -> str:
    """What Home Assistant allows in an entity id's object part: [a-z0-9_]."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", text.lower())).strip("_") or "edgeface"


def device_slug(node_id: str) -> str:
    """The device's part of its device-level entity ids: edgeface_<host>_<hex> for default ids."""
    s = slug(node_id)
    return s if s.startswith("edgeface") else f"edgeface_{s}"


def _entity(t: Topics, component: str, object_id: str, entity_object_id: str, name: str | None,
            unique_id: str | None = None, **fields) -> Discovery:
    config = {
        "name": name,
        "unique_id": f"{t.node_id}_{unique_id or object_id}",
        "object_id": entity_object_id,
        "default_entity_id": f"{component}.{slug(entity_object_id)}",
        **fields,
        "availability_topic": t.status,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": {"identifiers": [t.node_id], "name": f"edgeface {t.node_id}", "manufacturer": "edgeface",
                   "model": "edgeface", "sw_version": __version__},
        "origin": ORIGIN,
    }
    return Discovery(component, object_id, t.discovery(component, object_id), config)


# -- per camera ------------------------------------------------------------------------------
def camera_person(t: Topics, camera: str) -> Discovery:
    return _entity(t, "sensor", f"{camera}_person", f"edgeface_{camera}_person", f"{camera} person",
                   state_topic=t.last_person(camera), value_template="{{ value_json.name }}",
                   json_attributes_topic=t.last_person(camera), icon="mdi:face-recognition")


def face_image(t: Topics, camera: str, unknown: bool) -> Discovery:
    """An MQTT image entity: raw JPEG bytes on its image_topic; Home Assistant serves them at
    /api/image_proxy/image.<entity>, so a notification can attach the picture."""
    what = "last_unknown_visitor" if unknown else "last_person_image"
    return _entity(t, "image", f"{camera}_{what}", f"edgeface_{camera}_{what}",
                   f"{camera} last unknown visitor" if unknown else f"{camera} last person",
                   image_topic=t.face_image(camera, unknown), content_type="image/jpeg",
                   icon="mdi:account-question" if unknown else "mdi:account-box")


def camera_entities(t: Topics, camera: str) -> list[Discovery]:
    """Every entity a camera can have, whatever the options (edgeface.mqtt.stale reads old ones)."""
    return [camera_person(t, camera), face_image(t, camera, unknown=True), face_image(t, camera, unknown=False),
            *camera_diagnostics(t, camera)]


CAMERA_DIAGNOSTICS = (  # key in {prefix}/{camera}/diagnostics, name, unit, icon
    ("fps", "frames per second", "fps", "mdi:speedometer"),
    ("dropped_frames", "dropped frames", "frames", "mdi:filmstrip-off"),
    ("cascade_share", "cascade share", "%", "mdi:percent"),
)


def camera_diagnostics(t: Topics, camera: str) -> list[Discovery]:
    return [_entity(t, "sensor", f"{camera}_{key}", f"edgeface_{camera}_{key}", f"{camera} {name}",
                    state_topic=t.camera_diagnostics(camera), value_template=f"{{{{ value_json.{key} }}}}",
                    unit_of_measurement=unit, state_class="total_increasing" if key == "dropped_frames"
                    else "measurement", entity_category=DIAGNOSTIC, icon=icon)
            for key, name, unit, icon in CAMERA_DIAGNOSTICS]


# -- per device ------------------------------------------------------------------------------
SOC_TEMPERATURE = ("sensor", "soc_temperature")  # (component, object id): announced once a board reports one


def device_diagnostics(t: Topics, temperature: bool, fleet: bool) -> list[Discovery]:
    """CPU and gallery always; the SoC temperature where the board reports one; the last fleet sync
    with a fleet."""
    d = device_slug(t.node_id)
    out = [
        _entity(t, "sensor", "cpu_percent", f"{d}_cpu", "process CPU", state_topic=t.device_diagnostics,
                value_template="{{ value_json.cpu_percent }}", unit_of_measurement="%", state_class="measurement",
                entity_category=DIAGNOSTIC, icon="mdi:cpu-64-bit"),
        _entity(t, "sensor", "gallery_people", f"{d}_gallery_people", "gallery people",
                state_topic=t.device_diagnostics, value_template="{{ value_json.gallery_people }}",
                state_class="measurement", entity_category=DIAGNOSTIC, icon="mdi:account-group"),
        _entity(t, "sensor", "gallery_faces", f"{d}_gallery_faces", "gallery faces",
                state_topic=t.device_diagnostics, value_template="{{ value_json.gallery_faces }}",
                state_class="measurement", entity_category=DIAGNOSTIC, icon="mdi:face-man-profile"),
    ]
    if temperature:
        out.append(_entity(t, *SOC_TEMPERATURE, f"{d}_soc_temperature", "SoC temperature",
                           state_topic=t.device_diagnostics, value_template="{{ value_json.soc_temperature }}",
                           device_class="temperature", unit_of_measurement="°C", state_class="measurement",
                           entity_category=DIAGNOSTIC))
    if fleet:
        out.append(_entity(t, "sensor", "last_fleet_sync", f"{d}_last_fleet_sync", "last fleet sync",
                           state_topic=t.device_diagnostics, value_template="{{ value_json.last_fleet_sync }}",
                           device_class="timestamp", entity_category=DIAGNOSTIC))
    return out


# -- household presence ------------------------------------------------------------------------
def presence_object_id(name: str | None) -> str:
    return "unknown_visitor" if name is None else f"{name_key(name)}_presence"


def is_person_presence(component: str, object_id: str) -> bool:
    """A person's presence entity (not the unknown visitor's): one per gallery person."""
    return component == "binary_sensor" and object_id.endswith("_presence")


def presence(t: Topics, name: str | None) -> Discovery:
    # binary_sensor (device_class presence), not device_tracker: a camera knows "seen lately",
    # not "away"; a device_tracker's not_home would fight a phone tracker on the person entity.
    key = presence_object_id(name)
    return _entity(t, "binary_sensor", key, f"edgeface_{key}", "unknown visitor" if name is None else name,
                   device_class="presence", state_topic=t.presence_state(name), payload_on="ON",
                   payload_off="OFF", json_attributes_topic=t.presence_attributes(name),
                   icon="mdi:account-question" if name is None else "mdi:account")


def unknown_event(t: Topics) -> Discovery:
    return _entity(t, "event", "unknown_visitor", "edgeface_unknown_visitor_seen", "unknown visitor seen",
                   unique_id="unknown_visitor_event", state_topic=t.unknown_event, event_types=["unknown_visitor"],
                   icon="mdi:account-alert")


def removal_topic(t: Topics, name: str) -> str:
    """The retained config to empty when a person leaves the gallery."""
    return t.discovery("binary_sensor", presence_object_id(name))
