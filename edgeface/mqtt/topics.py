"""Every MQTT topic edgeface publishes or subscribes to, built in one place.

    {prefix}/status                       retained online/offline, the Last Will: a device on its own
    {prefix}/{device}/status              the same for each device of a fleet (one availability per device)
    {prefix}/{device}/diagnostics         retained JSON: CPU, temperature, gallery size, last fleet sync
    {prefix}/{device}/presence/<key>      retained JSON: this device's own view of a person (fleet)
    {prefix}/{camera}/identity            one JSON event per appearance / identity change
    {prefix}/{camera}/last_person         retained: the last recognised person
    {prefix}/{camera}/snapshot            retained JPEG face crop (mqtt.snapshot)
    {prefix}/{camera}/unknown_image       JPEG of the last unknown visitor (home.unknown_image)
    {prefix}/{camera}/person_image        JPEG of the last recognised person (home.person_image)
    {prefix}/{camera}/diagnostics         retained JSON: frames/s, dropped frames, cascade share
    {prefix}/presence/<key>/state|attributes      household presence (any device saw them lately)
    {prefix}/unknown_visitor/state|attributes|event
    {discovery_prefix}/<component>/<device>/<object id>/config     Home Assistant discovery (this
                                          device's are subscribed to: stale ones are emptied)
    {discovery_prefix}/status             Home Assistant's birth / last will (we re-send discovery)
    {frigate_prefix}/tracked_object_update, {double_take_prefix}/matches/<key>   compatibility

<device> is the node id (the MQTT client id with anything outside [A-Za-z0-9_-] as "_"), <key> a
person's name key (see name_key): one rule, so two names never share a topic or an entity.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from edgeface.config import HomeConfig, MqttConfig

UNKNOWN_KEY = "unknown"  # Double Take's topic level for strangers: no person may have it as key
_HASHED = re.compile(r".*_[0-9a-f]{6}")
_RESERVED = {UNKNOWN_KEY}


def name_key(name: str) -> str:
    """A person's topic level and Home Assistant key, and no other name's.

    A name already in the key alphabet ([a-z0-9_-], not reserved, not ending like a hashed key) is
    its own key; any other name gets its simplified form plus "_" and 6 hex of its SHA-1. So keys of
    the first kind never end in "_<6 hex>" and every key of the second kind does: "Mary Jane"
    (mary_jane_c82967) and a person literally called "mary_jane_c82967" (mary_jane_c82967_<hash>),
    "Alice" and "alice", a person called "unknown" and the strangers never share a key. Keys of
    names that already had one are unchanged (Home Assistant entity ids stay)."""
    simple = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_") or "person"
    if simple == name and simple not in _RESERVED and not _HASHED.fullmatch(simple):
        return simple
    return f"{simple}_{hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]}"


def node_id_of(client_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", client_id)


@dataclass(frozen=True)
class Topics:
    prefix: str
    discovery_prefix: str
    node_id: str
    frigate_prefix: str
    double_take_prefix: str
    fleet: bool = False  # one of a household's devices sharing the prefix

    @classmethod
    def build(cls, mqtt: MqttConfig, home: HomeConfig, client_id: str, fleet: bool = False) -> Topics:
        prefix = mqtt.topic_prefix.rstrip("/")
        return cls(prefix=prefix, discovery_prefix=mqtt.discovery_prefix.rstrip("/"), node_id=node_id_of(client_id),
                   frigate_prefix=(home.frigate_prefix or prefix).rstrip("/"),
                   double_take_prefix=home.double_take_prefix.rstrip("/"), fleet=fleet)

    # -- this device -----------------------------------------------------------------------
    @property
    def status(self) -> str:
        """This device's availability (and Last Will). A device on its own keeps {prefix}/status,
        as before; in a fleet each device has its own, so one stopping leaves the others available
        (their entities' discovery points at it; the unique ids, and so the entity ids, stay)."""
        return f"{self.prefix}/{self.node_id}/status" if self.fleet else f"{self.prefix}/status"

    @property
    def device_diagnostics(self) -> str:
        return f"{self.prefix}/{self.node_id}/diagnostics"

    def device_presence(self, name: str | None) -> str:
        return f"{self.prefix}/{self.node_id}/presence/{self._key(name)}"

    @property
    def all_device_presence(self) -> str:
        """Every device's own presence views (subscription)."""
        return f"{self.prefix}/+/presence/+"

    @property
    def all_device_status(self) -> str:
        """Every device's availability in a fleet (subscription)."""
        return f"{self.prefix}/+/status"

    # -- cameras ---------------------------------------------------------------------------
    def identity(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/identity"

    def last_person(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/last_person"

    def snapshot(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/snapshot"

    def face_image(self, camera: str, unknown: bool) -> str:
        return f"{self.prefix}/{camera}/{'unknown_image' if unknown else 'person_image'}"

    def camera_diagnostics(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/diagnostics"

    # -- household presence ------------------------------------------------------------------
    def presence(self, name: str | None) -> str:
        """Base of a person's (None: the unknown visitor's) state and attributes topics."""
        return f"{self.prefix}/unknown_visitor" if name is None else f"{self.prefix}/presence/{name_key(name)}"

    def presence_state(self, name: str | None) -> str:
        return f"{self.presence(name)}/state"

    def presence_attributes(self, name: str | None) -> str:
        return f"{self.presence(name)}/attributes"

    @property
    def unknown_event(self) -> str:
        return f"{self.presence(None)}/event"

    # -- Home Assistant ----------------------------------------------------------------------
    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"

    @property
    def discovery_node(self) -> str:
        """Every config under this device's node id, whatever the component (subscription: finds
        the stale ones). The node id has no wildcard in it (node_id_of): never another device's."""
        return f"{self.discovery_prefix}/+/{self.node_id}/+/config"

    def discovery_parts(self, topic: str) -> tuple[str, str] | None:
        """(component, object id) of a discovery config under this device's node id; None for any
        other topic, another device's configs included."""
        head = f"{self.discovery_prefix}/"
        parts = topic[len(head):].split("/") if topic.startswith(head) else []
        if len(parts) != 4 or parts[1] != self.node_id or parts[3] != "config" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    # -- compatibility -------------------------------------------------------------------------
    @property
    def frigate_update(self) -> str:
        return f"{self.frigate_prefix}/tracked_object_update"

    def double_take(self, name: str | None) -> str:
        return f"{self.double_take_prefix}/matches/{self._key(name)}"

    @staticmethod
    def _key(name: str | None) -> str:
        return UNKNOWN_KEY if name is None else name_key(name)
