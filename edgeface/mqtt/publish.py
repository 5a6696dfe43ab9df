"""MQTT output: availability, identity events, Home Assistant discovery.

Topics (prefix = mqtt.topic_prefix):
    {prefix}/status                 retained "online"; "offline" on shutdown and as the Last Will
    {prefix}/{camera}/identity      one JSON event per appearance / identity change (QoS mqtt.qos)
    {prefix}/{camera}/last_person   retained: the last *recognised* person (what Home Assistant shows)
    {prefix}/{camera}/snapshot      retained JPEG face crop, only with mqtt.snapshot: true
    {discovery_prefix}/sensor/<node>/<camera>_person/config   retained HA discovery (mqtt.discovery)

With home.presence (and mqtt.discovery for the entities; see edgeface.mqtt.presence):
    {prefix}/presence/<person>/state          retained ON / OFF: seen at any camera within home.presence_timeout
    {prefix}/presence/<person>/attributes     retained JSON: person, camera, last_seen (ISO UTC), score
    {prefix}/unknown_visitor/state|attributes the same for faces that match nobody (home.unknown_timeout)
    {prefix}/unknown_visitor/event            {"event_type": "unknown_visitor", ...} per stranger's appearance
    {discovery_prefix}/binary_sensor/<node>/<person>_presence/config, .../unknown_visitor/config,
    {discovery_prefix}/event/<node>/unknown_visitor/config            retained; emptied when a person is removed
With home.frigate / home.double_take: edgeface.mqtt.compat's payloads on their topics.

paho's network thread reconnects on its own (backoff 1..30 s). While the broker is away, events
wait in our own bounded queue (oldest dropped first, drops counted) and go out on reconnect;
once handed to paho, QoS>0 messages are re-sent by paho itself if the link drops mid-flight.

Client id: mqtt.client_id, else edgeface-<hostname>-<8 hex of machine id + config path>
(config.default_client_id). A broker keeps one connection per id and drops the older one, so two
clients sharing an id kick each other off on every reconnect; when the broker drops us within
seconds of connecting, twice running, we say so once and back off (up to 60 s) instead of flapping.
"""
from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

from edgeface import __version__
from edgeface.config import HomeConfig, MqttConfig, default_client_id
from edgeface.mqtt import compat
from edgeface.mqtt.client import RECONNECT_MAX_S, RECONNECT_MIN_S, mqtt_client
from edgeface.mqtt.presence import PresenceUpdate, entity_key

log = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"

QUICK_DROP_S = 10.0  # a drop this soon after connecting looks like another client taking our id
CLASH_DROPS = 2  # ... and this many such drops in a row make us say so and back off:
CLASH_BACKOFF_S = (5, 15, 45, 60)  # reconnect delays, one step further at each further early drop
CLASH_BACKOFF_MAX_S = CLASH_BACKOFF_S[-1]
STABLE_S = 2 * CLASH_BACKOFF_MAX_S  # a connection this long ends the back-off (the other one is gone)


def iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json(body: object) -> str:
    """Every payload's encoder: NaN or infinity raise ValueError instead of going out as invalid JSON."""
    return json.dumps(body, allow_nan=False)


def identity_payload(event, camera: str) -> dict:
    return {
        "name": event.name,
        "score": round(float(event.score), 4),
        "camera": camera,
        "timestamp": iso_utc(event.t),
        "box": [int(v) for v in event.box],
        "angle": round(float(event.angle), 1),
        "track_id": int(event.track_id),
        **visitor_fields(event),
    }


def visitor_fields(event) -> dict:
    """An unknown face grouped into a returning visitor (store.visitors): its id and appearances."""
    visitor = getattr(event, "visitor_id", None)
    return {} if visitor is None else {"visitor_id": visitor, "visits": int(event.visits)}


class Publisher:
    def __init__(self, cfg: MqttConfig, cameras: list[str], config_path: str | None = None,
                 home: HomeConfig | None = None):
        self.cfg = cfg
        self.home = home or HomeConfig()
        self._home_people: set[str] = set()  # people whose presence entity this connection announced
        self._home_states: dict[str, str] = {}  # state topic -> ON/OFF last sent (refreshes send attributes only)
        self._home_lock = threading.Lock()
        self.cameras = list(cameras)
        self.prefix = cfg.topic_prefix.rstrip("/")
        # config.load() fills client_id in; built by hand, the MqttConfig may leave it to us
        self.client_id = cfg.client_id or default_client_id(config_path)
        self.node_id = re.sub(r"[^A-Za-z0-9_-]", "_", self.client_id)
        self.status_topic = f"{self.prefix}/status"
        self._lock = threading.Lock()
        self._queue: collections.deque = collections.deque()
        self._connected = False
        self._closing = False
        self.dropped = 0  # events lost to a full queue, since start
        self._dropped_in_outage = 0
        self._connect_failures = 0
        self._connected_at = 0.0
        self._quick_drops = 0  # drops within QUICK_DROP_S of connecting, in a row
        self._backoff_s = 0  # >0: reconnect delay raised because another client seems to use our id
        self.id_clash_warned = False
        self.client = self._make_client()

    # -- setup ---------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt_client(self.cfg, self.client_id)
        c.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_discovery_message
        return c

    def start(self) -> None:
        """Connect in the background; returns at once (the broker may come later)."""
        log.info("MQTT: connecting to %s:%d as %s", self.cfg.host, self.cfg.port, self.client_id)
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connected:
                return True
            time.sleep(0.02)
        return self.connected

    @property
    def connected(self) -> bool:
        return self._connected

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- callbacks (paho's network thread) ------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._connect_failures += 1
            log_fn = log.error if self._connect_failures == 1 else log.debug
            log_fn("MQTT: %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, reason_code)
            return
        self._connect_failures = 0
        self._connected_at = time.monotonic()
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        if self.cfg.discovery:
            for camera in self.cameras:
                self._publish_discovery(client, camera)
            self._publish_home_discovery(client)
        with self._lock:  # held while the backlog goes out, so new events queue behind it in order
            backlog = len(self._queue)
            while self._queue:
                self._send(*self._queue.popleft())
            self._connected = True
            dropped, self._dropped_in_outage = self._dropped_in_outage, 0
        log.info("MQTT: connected to %s:%d; sent %d queued message(s)%s", self.cfg.host, self.cfg.port,
                 backlog, f", {dropped} dropped while away" if dropped else "")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            was = self._connected
            self._connected = False
        if not was or self._closing:
            return
        lasted = time.monotonic() - self._connected_at
        self._quick_drops = self._quick_drops + 1 if lasted < QUICK_DROP_S else 0
        # Once backing off, the other client reconnects later too, so our connections last longer
        # before each kick: any drop short of STABLE_S keeps the back-off going.
        if self._quick_drops >= CLASH_DROPS or (self._backoff_s and lasted < STABLE_S):
            self._back_off(client, reason_code)
            return
        if lasted >= STABLE_S and self._backoff_s:
            self._backoff_s = 0
            client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        (log.debug if self._backoff_s else log.warning)(
            "MQTT: lost the broker at %s:%d (%s); reconnecting, queueing up to %d events",
            self.cfg.host, self.cfg.port, reason_code, self.cfg.queue_max)

    def _back_off(self, client, reason_code) -> None:
        """Dropped right after connecting, again: most likely another client with our id (the broker
        keeps the newer connection), so each reconnect kicks the other one off. Wait longer each time."""
        self._backoff_s = next((s for s in CLASH_BACKOFF_S if s > self._backoff_s), CLASH_BACKOFF_MAX_S)
        # paho restarts its own backoff at min_delay after each successful connect: raise the minimum
        client.reconnect_delay_set(min_delay=self._backoff_s, max_delay=CLASH_BACKOFF_MAX_S)
        if not self.id_clash_warned:
            self.id_clash_warned = True
            log.warning("MQTT: %s:%d dropped us within %.0f s of connecting, %d times running (%s): another "
                        "client probably uses the same client id %r (a second edgeface with this config, or "
                        "a board with the same name); give each its own mqtt.client_id. Reconnecting with "
                        "back-off up to %d s", self.cfg.host, self.cfg.port, QUICK_DROP_S, self._quick_drops,
                        reason_code, self.client_id, CLASH_BACKOFF_MAX_S)
        else:
            log.debug("MQTT: dropped again right after connecting; next try in %d s", self._backoff_s)

    def _on_connect_fail(self, client, userdata):
        self._connect_failures += 1
        # First failure is news; the rest of the outage only at debug (paho retries up to every 30 s).
        (log.warning if self._connect_failures == 1 else log.debug)(
            "MQTT: cannot reach %s:%d; retrying in the background", self.cfg.host, self.cfg.port)

    def _publish_discovery(self, client, camera: str) -> None:
        topic = f"{self.cfg.discovery_prefix}/sensor/{self.node_id}/{camera}_person/config"
        config = {
            "name": f"{camera} person",
            "unique_id": f"{self.node_id}_{camera}_person",
            "object_id": f"edgeface_{camera}_person",
            "state_topic": f"{self.prefix}/{camera}/last_person",
            "value_template": "{{ value_json.name }}",
            "json_attributes_topic": f"{self.prefix}/{camera}/last_person",
            "icon": "mdi:face-recognition",
            **self._entity_common(),
        }
        client.publish(topic, to_json(config), qos=1, retain=True)

    # -- publishing -----------------------------------------------------------------------
    def _send(self, topic, payload, qos, retain) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def _enqueue_or_send(self, topic: str, payload, qos: int, retain: bool) -> None:
        with self._lock:
            if not self._connected:
                if len(self._queue) >= self.cfg.queue_max:
                    self._queue.popleft()
                    self.dropped += 1
                    self._dropped_in_outage += 1
                    if self._dropped_in_outage == 1 or self._dropped_in_outage % 100 == 0:
                        log.warning("MQTT: queue full (%d); dropped %d oldest event(s) so far in this outage",
                                    self.cfg.queue_max, self._dropped_in_outage)
                self._queue.append((topic, payload, qos, retain))
                return
        self._send(topic, payload, qos, retain)

    def publish_identity(self, camera: str, event, snapshot_jpeg: bytes | None = None) -> dict:
        """Queue one identity event; returns the JSON body. Never blocks on the network."""
        body = identity_payload(event, camera)
        payload = to_json(body)  # ValueError, never an invalid NaN payload
        self._enqueue_or_send(f"{self.prefix}/{camera}/identity", payload, self.cfg.qos, False)
        if event.name is not None:
            last = {"name": event.name, "score": body["score"], "timestamp": body["timestamp"]}
            self._enqueue_or_send(f"{self.prefix}/{camera}/last_person", to_json(last),
                                  self.cfg.qos, True)
        if self.cfg.snapshot and snapshot_jpeg is not None and self.connected:
            # Crops are large and stale quickly: sent only while connected, never queued.
            self.client.publish(f"{self.prefix}/{camera}/snapshot", snapshot_jpeg, qos=0, retain=True)
        return body

    def close(self, timeout: float = 1.0) -> None:
        """Announce offline (retained), flush, disconnect. Bounded by `timeout` seconds."""
        self._closing = True
        end = time.monotonic() + timeout
        if self.connected:
            info = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.05, end - time.monotonic()))
            except (RuntimeError, ValueError):
                pass  # the link went away meanwhile; the Last Will says offline instead
        was_connected = self.connected
        self.client.disconnect()
        if was_connected:
            self.client.loop_stop()
        # else paho's (daemon) thread may sit in a connect attempt to an unreachable broker for
        # seconds; joining it would break the 2 s stop promise, so it is left to end with the process

    # -- home automation: presence, unknown visitors, compatibility outputs ---------------
    def _entity_common(self) -> dict:
        """What every discovered entity shares: availability from the status topic, and this device."""
        return {"availability_topic": self.status_topic, "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
                "device": {"identifiers": [self.node_id], "name": f"edgeface {self.node_id}",
                           "manufacturer": "edgeface", "model": "edgeface", "sw_version": __version__}}

    def _presence_topic(self, name: str | None) -> str:
        return f"{self.prefix}/unknown_visitor" if name is None else f"{self.prefix}/presence/{entity_key(name)}"

    def _presence_config_topic(self, name: str) -> str:
        return f"{self.cfg.discovery_prefix}/binary_sensor/{self.node_id}/{entity_key(name)}_presence/config"

    def _presence_config(self, name: str | None) -> dict:
        # binary_sensor (device_class presence), not device_tracker: a camera knows "seen lately",
        # not "away"; a device_tracker's not_home would fight a phone tracker on the person entity,
        # while a binary_sensor can be added to a person's automations without claiming either.
        key = "unknown_visitor" if name is None else f"{entity_key(name)}_presence"
        topic = self._presence_topic(name)
        return {
            "name": "unknown visitor" if name is None else name,
            "unique_id": f"{self.node_id}_{key}",
            "object_id": f"edgeface_{key}",
            "device_class": "presence",
            "state_topic": f"{topic}/state",
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": f"{topic}/attributes",
            "icon": "mdi:account-question" if name is None else "mdi:account",
            **self._entity_common(),
        }

    def _unknown_event_config(self) -> dict:
        return {
            "name": "unknown visitor seen",
            "unique_id": f"{self.node_id}_unknown_visitor_event",
            "object_id": "edgeface_unknown_visitor_seen",
            "state_topic": f"{self._presence_topic(None)}/event",
            "event_types": ["unknown_visitor"],
            "icon": "mdi:account-alert",
            **self._entity_common(),
        }

    def _publish_home_discovery(self, client: mqtt.Client) -> None:
        """On each connection: every presence entity, and a subscription that finds the ones of
        people removed while we were away (retained configs under our node) to take them down."""
        if not self.home.presence:
            return
        dp = self.cfg.discovery_prefix
        with self._home_lock:
            people = sorted(self._home_people)
        for name in people:
            client.publish(self._presence_config_topic(name), to_json(self._presence_config(name)),
                           qos=1, retain=True)
        client.publish(f"{dp}/binary_sensor/{self.node_id}/unknown_visitor/config",
                       to_json(self._presence_config(None)), qos=1, retain=True)
        client.publish(f"{dp}/event/{self.node_id}/unknown_visitor/config",
                       to_json(self._unknown_event_config()), qos=1, retain=True)
        client.subscribe(f"{dp}/binary_sensor/{self.node_id}/+/config", qos=1)

    def _on_discovery_message(self, client, userdata, msg) -> None:
        object_id = msg.topic.split("/")[-2]
        if not (msg.retain and msg.payload and object_id.endswith("_presence")):
            return
        with self._home_lock:
            keys = {f"{entity_key(n)}_presence" for n in self._home_people}
        if object_id not in keys:
            log.info("MQTT: removing the presence entity %s (no longer in the gallery)", object_id)
            client.publish(msg.topic, b"", qos=1, retain=True)

    def publish_presence(self, updates: list[PresenceUpdate]) -> None:
        """Presence entities' states (retained), announcing newcomers' entities and removing the removed."""
        if not self.home.presence:
            return
        for u in updates:
            topic = self._presence_topic(u.name)
            if u.name is not None:
                with self._home_lock:
                    new = not u.removed and u.name not in self._home_people
                    if u.removed:
                        self._home_people.discard(u.name)
                        self._home_states.pop(f"{topic}/state", None)
                    elif new:
                        self._home_people.add(u.name)
                if u.removed:  # an empty retained payload removes the entity, its state and attributes
                    if self.cfg.discovery:
                        self._enqueue_or_send(self._presence_config_topic(u.name), b"", 1, True)
                    self._enqueue_or_send(f"{topic}/state", b"", 1, True)
                    self._enqueue_or_send(f"{topic}/attributes", b"", 1, True)
                    continue
                if new and self.cfg.discovery:
                    self._enqueue_or_send(self._presence_config_topic(u.name),
                                          to_json(self._presence_config(u.name)), 1, True)
            # "person", not "name": Home Assistant drops an MQTT attribute called name (MQTT_ATTRIBUTES_BLOCKED)
            attributes = {"person": u.name, "camera": u.camera,
                          "last_seen": iso_utc(u.last_seen) if u.last_seen is not None else None,
                          "score": round(u.score, 4) if u.score is not None else None}
            self._enqueue_or_send(f"{topic}/attributes", to_json(attributes), 1, True)
            state = "ON" if u.present else "OFF"
            with self._home_lock:
                changed = self._home_states.get(f"{topic}/state") != state
                self._home_states[f"{topic}/state"] = state
            if changed:
                self._enqueue_or_send(f"{topic}/state", state, 1, True)

    def publish_home(self, camera: str, event, duration: float) -> None:
        """What one identity event means beyond {prefix}/{camera}/identity: the unknown-visitor
        event, and the Frigate / Double Take style messages where switched on."""
        if self.home.presence and event.name is None and getattr(event, "new_visit", True):
            body = {"event_type": "unknown_visitor", "camera": camera, "score": round(float(event.score), 4),
                    "timestamp": iso_utc(event.t), "track_id": int(event.track_id), **visitor_fields(event)}
            self._enqueue_or_send(f"{self._presence_topic(None)}/event", to_json(body), self.cfg.qos, False)
        if self.home.frigate:
            prefix = (self.home.frigate_prefix or self.prefix).rstrip("/")
            self._enqueue_or_send(f"{prefix}/tracked_object_update",
                                  to_json(compat.frigate_face_update(event, camera)), self.cfg.qos, False)
        if self.home.double_take:
            self._enqueue_or_send(compat.double_take_topic(self.home.double_take_prefix, event.name),
                                  to_json(compat.double_take_payload(event, camera, duration)), self.cfg.qos, False)
