"""Home Assistant entities this device announced once and announces no more: a camera taken out of
the config, an option switched off (home.diagnostics, unknown_image, person_image, presence), the
fleet left, a person removed from the gallery while the device was down.

On every connection (with mqtt.discovery) the publisher subscribes to the retained discovery
configs under its own node id, whatever the component ({discovery_prefix}/+/<node id>/+/config:
never another device's) and hands each message here. A retained, non-empty config whose topic is
not among what the device announces now (Publisher.discoveries) is emptied: a zero-length retained
config makes Home Assistant remove the entity. Empty ones (already removed) and live messages (our
own configs coming back to us) are ignored.

Removing a live entity loses what the user set on it in Home Assistant, so doubt keeps it: a kind
of entity whose announcement hangs on something not known yet (the gallery's people before the
publisher is given them, the board's SoC temperature before the first diagnostics) stays
undecided, and is judged again once that is known.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from edgeface.mqtt import homeassistant as ha
from edgeface.mqtt.topics import Topics


class StaleConfigs:
    """The retained configs under this node heard since connecting, not yet judged."""

    def __init__(self, topics: Topics, cameras: list[str]):
        self.topics = topics
        self.cameras = set(cameras)
        probe = "x"  # what follows a camera's name in its entities' object ids, per component
        self._camera_suffixes = {(d.component, d.object_id[len(probe):]) for d in ha.camera_entities(topics, probe)}
        self._found: set[str] = set()
        self.heard_retained = 0  # retained configs heard since connecting (tests wait on it)
        self._lock = threading.Lock()

    @property
    def subscription(self) -> str:
        return self.topics.discovery_node

    def connected(self) -> None:
        """A new connection: the retained configs come again with the subscription."""
        with self._lock:
            self._found.clear()
            self.heard_retained = 0

    def heard(self, topic: str, payload: bytes, retain: bool) -> bool:
        """True if `topic` is a discovery config under this node (kept for judging if it is a retained
        one that is not empty)."""
        if self.topics.discovery_parts(topic) is None:
            return False
        if retain and payload:
            with self._lock:
                self._found.add(topic)
                self.heard_retained += 1
        return True

    def pending(self) -> set[str]:
        """The configs heard and not judged yet (undecided ones)."""
        with self._lock:
            return set(self._found)

    def judge(self, announced: set[str], undecided: Callable[[str, str], bool]) -> list[tuple[str, str]]:
        """(topic, why) of each config heard to empty now; forgets those and the announced ones, and
        keeps those `undecided(component, object_id)` holds back for another judgement."""
        out = []
        with self._lock:
            for topic in sorted(self._found):
                parts = self.topics.discovery_parts(topic)
                assert parts is not None  # heard() keeps only those
                if topic not in announced:
                    if undecided(*parts):
                        continue
                    out.append((topic, self.why(*parts)))
                self._found.discard(topic)
        return out

    def why(self, component: str, object_id: str) -> str:
        """Why an entity is no longer announced, as far as its ids tell."""
        camera = self.camera_of(component, object_id)
        if camera is not None and camera not in self.cameras:
            return f"camera {camera} no longer configured"
        return "no longer announced"

    def camera_of(self, component: str, object_id: str) -> str | None:
        """The camera a per-camera entity belongs to; None for any other entity."""
        for kind, suffix in self._camera_suffixes:
            if kind == component and object_id.endswith(suffix) and len(object_id) > len(suffix):
                return object_id[:-len(suffix)]
        return None
