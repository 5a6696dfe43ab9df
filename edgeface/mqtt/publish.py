"""MQTT output: availability, identity events, Home Assistant discovery, presence, diagnostics.

Every topic comes from edgeface.mqtt.topics (the list is there), every discovery payload from
edgeface.mqtt.homeassistant. Availability is per device ({prefix}/<device>/status, with the Last
Will), so stopping one device of a household leaves the others' entities available.

Discovery goes out (retained) on every connection and again whenever Home Assistant announces
itself ({discovery_prefix}/status = "online"), so entities come back after its MQTT integration
was reset. On every connection the retained configs under this device's node id that it no longer
announces are emptied (edgeface.mqtt.stale: cameras removed, options switched off, people gone).

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
import threading
import time
from datetime import datetime, timezone

import numpy as np
import paho.mqtt.client as mqtt

from edgeface.config import HomeConfig, MqttConfig, default_client_id
from edgeface.mqtt import compat
from edgeface.mqtt import homeassistant as ha
from edgeface.mqtt.client import RECONNECT_MAX_S, RECONNECT_MIN_S, mqtt_client
from edgeface.mqtt.homeassistant import OFFLINE, ONLINE
from edgeface.mqtt.household import Household
from edgeface.mqtt.images import face_jpeg
from edgeface.mqtt.presence import PresenceUpdate
from edgeface.mqtt.stale import StaleConfigs
from edgeface.mqtt.topics import Topics

log = logging.getLogger(__name__)

QUICK_DROP_S = 10.0  # a drop this soon after connecting looks like another client taking our id
CLASH_DROPS = 2  # ... and this many such drops in a row make us say so and back off:
CLASH_BACKOFF_S = (5, 15, 45, 60)  # reconnect delays, one step further at each further early drop
CLASH_BACKOFF_MAX_S = CLASH_BACKOFF_S[-1]
STABLE_S = 2 * CLASH_BACKOFF_MAX_S  # a connection this long ends the back-off (the other one is gone)
# fleet: the other devices' retained presence views arrive right after subscribing; the household
# states wait this long after connecting, so a device starting up never says OFF for someone
# another device sees
HOUSEHOLD_SETTLE_S = 1.0


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
                 home: HomeConfig | None = None, fleet: bool = False):
        """`fleet`: this device is one of a household's: its availability is its own
        {prefix}/<device>/status (one device stopping must not make the others unavailable)."""
        self.cfg = cfg
        self.home = home or HomeConfig()
        self.fleet = fleet
        self._home_people: set[str] = set()  # people whose presence entity this connection announced
        self._people_known = False  # set by the first publish_presence: until then nobody's entity is stale
        # Set by the daemon while its gallery file is missing (a mistyped path?): the people it knows
        # are not everyone, so nobody's presence entity is judged stale until the gallery is there.
        self.gallery_missing = False
        self._home_states: dict[str, str] = {}  # state topic -> ON/OFF last sent (refreshes send attributes only)
        self._home_lock = threading.Lock()
        self.cameras = list(cameras)
        # config.load() fills client_id in; built by hand, the MqttConfig may leave it to us
        self.client_id = cfg.client_id or default_client_id(config_path)
        self.topics = Topics.build(cfg, self.home, self.client_id, fleet)
        self.prefix = self.topics.prefix
        self.node_id = self.topics.node_id
        self.status_topic = self.topics.status
        self.household = Household(self.home.presence_timeout, self.home.unknown_timeout) if fleet else None
        self._household_from = float("inf")  # monotonic time from which household states go out
        self._home_attributes: dict[str, str] = {}  # fleet: attributes topic -> JSON last sent
        # None until the first diagnostics tell whether the board has a SoC temperature (True from the
        # first one with a reading); until then the temperature's entity is neither announced nor stale
        self.has_temperature: bool | None = None
        self.stale = StaleConfigs(self.topics, self.cameras)
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
        self.discovery_sent = 0  # times the whole discovery went out (connections and HA restarts)
        self.client = self._make_client()

    # -- setup ---------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = mqtt_client(self.cfg, self.client_id)
        c.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_message
        return c

    def start(self, presence: list[PresenceUpdate] | None = None) -> None:
        """Queue everyone's presence state (`presence`), then connect in the background; returns
        at once (the broker may come later)."""
        if presence:
            self.publish_presence(presence)
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
            self._publish_discovery(client)
            self.stale.connected()  # finds the entities announced before and no longer (after ours went out)
            client.subscribe([(self.stale.subscription, 1), (self.topics.ha_status, 1)])
        if self.household is not None and self.home.presence:
            client.subscribe([(self.topics.all_device_presence, 1), (self.topics.all_device_status, 1)])
            self._household_from = self._connected_at + HOUSEHOLD_SETTLE_S
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

    def _on_message(self, client, userdata, msg) -> None:
        if self.household is not None and self._household_message(msg):
            return
        if msg.topic == self.topics.ha_status:
            if msg.payload == ONLINE.encode():  # Home Assistant (re)started: it may have lost our entities
                log.info("MQTT: Home Assistant is online; sending discovery again")
                self._publish_discovery(client)
            return
        if self.stale.heard(msg.topic, msg.payload, msg.retain):
            self._remove_stale()

    # -- Home Assistant discovery ----------------------------------------------------------
    def discoveries(self) -> list[ha.Discovery]:
        """Everything this device announces now (see edgeface.mqtt.homeassistant)."""
        t = self.topics
        out: list[ha.Discovery] = []
        for camera in self.cameras:
            out.append(ha.camera_person(t, camera))
            if self.home.unknown_image:
                out.append(ha.face_image(t, camera, unknown=True))
            if self.home.person_image:
                out.append(ha.face_image(t, camera, unknown=False))
            if self.home.diagnostics:
                out.extend(ha.camera_diagnostics(t, camera))
        if self.home.diagnostics:
            out.extend(ha.device_diagnostics(t, temperature=bool(self.has_temperature), fleet=self.fleet))
        if self.home.presence:
            with self._home_lock:
                people = sorted(self._home_people)
            out.extend(ha.presence(t, name) for name in people)
            out.append(ha.presence(t, None))
            out.append(ha.unknown_event(t))
        return out

    def _publish_discovery(self, client: mqtt.Client) -> None:
        for d in self.discoveries():
            client.publish(d.topic, to_json(d.config), qos=1, retain=True)
        self.discovery_sent += 1

    def _remove_stale(self) -> None:
        """Empty the retained configs heard under our node that discoveries() no longer announces,
        unless what decides them is not known yet (see edgeface.mqtt.stale)."""
        if not (self.cfg.discovery and self.connected):
            return  # the next connection hears them again
        # what is known is read before what is announced: each is set before it counts as known
        people_known, temperature_known = self._people_known, self.has_temperature is not None
        announced = {d.topic for d in self.discoveries()}

        def undecided(component: str, object_id: str) -> bool:
            """An entity whose announcement hangs on what is not known yet: kept until it is."""
            if self.home.presence and not people_known and ha.is_person_presence(component, object_id):
                return True
            return self.home.diagnostics and not temperature_known and (component, object_id) == ha.SOC_TEMPERATURE

        for topic, why in self.stale.judge(announced, undecided):
            component, object_id = self.topics.discovery_parts(topic) or ("", topic)
            log.info("MQTT: removing the Home Assistant entity %s %s (%s)", component, object_id, why)
            self.client.publish(topic, b"", qos=1, retain=True)

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

    def wants_face_image(self, name: str | None) -> bool:
        return self.home.unknown_image if name is None else self.home.person_image

    def publish_face_image(self, camera: str, event, image: np.ndarray) -> bytes | None:
        """The picture for the camera's "last unknown visitor" (or "last person") image entity; call
        it before the event's other messages, so an automation they trigger finds the new picture.
        Sent only while connected, like snapshots: a queue of stale pictures helps nobody."""
        if not self.wants_face_image(event.name) or not self.connected:
            return None
        jpeg = face_jpeg(image, event.box)
        if jpeg is not None:
            self.client.publish(self.topics.face_image(camera, event.name is None), jpeg, qos=self.cfg.qos,
                                retain=self.home.retain_images)
        return jpeg

    def publish_identity(self, camera: str, event, snapshot_jpeg: bytes | None = None) -> dict:
        """Queue one identity event; returns the JSON body. Never blocks on the network."""
        body = identity_payload(event, camera)
        payload = to_json(body)  # ValueError, never an invalid NaN payload
        self._enqueue_or_send(self.topics.identity(camera), payload, self.cfg.qos, False)
        if event.name is not None:
            last = {"name": event.name, "score": body["score"], "timestamp": body["timestamp"]}
            self._enqueue_or_send(self.topics.last_person(camera), to_json(last), self.cfg.qos, True)
        if self.cfg.snapshot and snapshot_jpeg is not None and self.connected:
            # Crops are large and stale quickly: sent only while connected, never queued.
            self.client.publish(self.topics.snapshot(camera), snapshot_jpeg, qos=0, retain=True)
        return body

    def publish_diagnostics(self, cameras: dict[str, dict], device: dict) -> None:
        """Retained diagnostics at the status interval: per camera and for this device. The first
        SoC temperature adds its entity (boards without one never show an empty sensor)."""
        if not self.home.diagnostics:
            return
        for camera, values in cameras.items():
            self._enqueue_or_send(self.topics.camera_diagnostics(camera), to_json(values), 0, True)
        reading = device.get("soc_temperature") is not None
        if self.has_temperature is None or (reading and not self.has_temperature):
            was, self.has_temperature = self.has_temperature, reading or bool(self.has_temperature)
            if self.has_temperature and self.cfg.discovery and self.connected:
                self._publish_discovery(self.client)
            if was is None:  # the temperature's entity can be judged now
                self._remove_stale()
        self._enqueue_or_send(self.topics.device_diagnostics, to_json(device), 0, True)

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
    def publish_presence(self, updates: list[PresenceUpdate]) -> None:
        """Presence entities' states (retained), announcing newcomers' entities and removing the removed.
        In a fleet, this device's own views, and the household states where they changed. The first
        call gives everyone (Presence.states(), or set_people() on a fresh Presence): the gallery's
        people are known from then on, and the entities of people not among them are stale; while
        ``gallery_missing``, from the first call after it is cleared."""
        if not self.home.presence:
            return
        if self.household is not None:
            self._publish_own_views(updates)
        else:
            self._publish_presence(updates)
        if not self._people_known and not self.gallery_missing:
            self._people_known = True
            self._remove_stale()

    def _publish_presence(self, updates: list[PresenceUpdate]) -> None:
        t = self.topics
        for u in updates:
            state_topic = t.presence_state(u.name)
            if u.name is not None:
                with self._home_lock:
                    new = not u.removed and u.name not in self._home_people
                    if u.removed:
                        self._home_people.discard(u.name)
                        self._home_states.pop(state_topic, None)
                    elif new:
                        self._home_people.add(u.name)
                if u.removed:  # an empty retained payload removes the entity, its state and attributes
                    if self.cfg.discovery:
                        self._enqueue_or_send(ha.removal_topic(t, u.name), b"", 1, True)
                    self._enqueue_or_send(state_topic, b"", 1, True)
                    self._enqueue_or_send(t.presence_attributes(u.name), b"", 1, True)
                    continue
                if new and self.cfg.discovery:
                    d = ha.presence(t, u.name)
                    self._enqueue_or_send(d.topic, to_json(d.config), 1, True)
            # "person", not "name": Home Assistant drops an MQTT attribute called name (MQTT_ATTRIBUTES_BLOCKED)
            attributes = {"person": u.name, "camera": u.camera,
                          "last_seen": iso_utc(u.last_seen) if u.last_seen is not None else None,
                          "score": round(u.score, 4) if u.score is not None else None}
            self._enqueue_or_send(t.presence_attributes(u.name), to_json(attributes), 1, True)
            state = "ON" if u.present else "OFF"
            with self._home_lock:
                changed = self._home_states.get(state_topic) != state
                self._home_states[state_topic] = state
            if changed:
                self._enqueue_or_send(state_topic, state, 1, True)

    # -- fleet: household presence from every device's own view ------------------------------
    @staticmethod
    def _attributes(u: PresenceUpdate) -> dict:
        # "person", not "name": Home Assistant drops an MQTT attribute called name (MQTT_ATTRIBUTES_BLOCKED)
        return {"person": u.name, "camera": u.camera,
                "last_seen": iso_utc(u.last_seen) if u.last_seen is not None else None,
                "score": round(u.score, 4) if u.score is not None else None}

    def _publish_own_views(self, updates: list[PresenceUpdate]) -> None:
        assert self.household is not None
        t, now = self.topics, time.monotonic()
        for u in updates:
            with self._home_lock:
                new = u.name is not None and not u.removed and u.name not in self._home_people
                if u.name is not None and u.removed:
                    self._home_people.discard(u.name)
                    self.household.forget(u.name)
                    for topic in (t.presence_state(u.name), t.presence_attributes(u.name)):
                        self._home_states.pop(topic, None)
                        self._home_attributes.pop(topic, None)
                elif new and u.name is not None:
                    self._home_people.add(u.name)
                if not u.removed:
                    self.household.own(u.name, u.present, self._attributes(u), now)
            if u.name is not None and u.removed:
                if self.cfg.discovery:
                    self._enqueue_or_send(ha.removal_topic(t, u.name), b"", 1, True)
                for topic in (t.device_presence(u.name), t.presence_state(u.name), t.presence_attributes(u.name)):
                    self._enqueue_or_send(topic, b"", 1, True)
                continue
            if new and self.cfg.discovery:
                d = ha.presence(t, u.name)
                self._enqueue_or_send(d.topic, to_json(d.config), 1, True)
            self._enqueue_or_send(t.device_presence(u.name), to_json({"present": u.present, **self._attributes(u)}),
                                  1, True)
        self._publish_household(now)

    def _household_message(self, msg) -> bool:
        """Another device's view or status; True if the message was one of those."""
        assert self.household is not None
        parts = msg.topic.split("/")
        prefix = self.prefix.split("/")
        if parts[:len(prefix)] != prefix:
            return False
        rest = parts[len(prefix):]
        now = time.monotonic()
        if len(rest) == 2 and rest[1] == "status":
            if rest[0] != self.node_id:
                with self._home_lock:
                    self.household.device_status(rest[0], msg.payload == ONLINE.encode(), now)
                self._publish_household(now)
            return True
        if len(rest) == 3 and rest[1] == "presence":
            if rest[0] != self.node_id:
                try:
                    view = json.loads(msg.payload) if msg.payload else None
                except ValueError:
                    view = None
                if view is None or isinstance(view, dict):
                    with self._home_lock:
                        name = view.get("person") if view else self._name_of_key(rest[2])
                        if name is None and rest[2] != "unknown":
                            return True  # a removal of someone we do not know
                        self.household.heard(rest[0], name, view, now)
                    self._publish_household(now)
            return True
        return False

    def _name_of_key(self, key: str) -> str | None:
        from_key = {self.topics.device_presence(n).rsplit("/", 1)[1]: n for n in self._home_people}
        return from_key.get(key)

    def _publish_household(self, now: float) -> None:
        """The household states and attributes that changed (once the others' views have arrived)."""
        assert self.household is not None
        if not self.connected or now < self._household_from:
            return
        t = self.topics
        with self._home_lock:
            names: list[str | None] = [*sorted(self._home_people), None]
            out = []
            for name in names:
                present, attributes = self.household.state(name, now)
                state = "ON" if present else "OFF"
                if attributes is not None:
                    body = to_json(attributes)
                    if self._home_attributes.get(t.presence_attributes(name)) != body:
                        self._home_attributes[t.presence_attributes(name)] = body
                        out.append((t.presence_attributes(name), body))
                if self._home_states.get(t.presence_state(name)) != state:
                    self._home_states[t.presence_state(name)] = state
                    out.append((t.presence_state(name), state))
        for topic, payload in out:
            self._enqueue_or_send(topic, payload, 1, True)

    def publish_home(self, camera: str, event, duration: float) -> None:
        """What one identity event means beyond {prefix}/{camera}/identity: the unknown-visitor
        event, and the Frigate / Double Take style messages where switched on."""
        if self.home.presence and event.name is None and getattr(event, "new_visit", True):
            body = {"event_type": "unknown_visitor", "camera": camera, "score": round(float(event.score), 4),
                    "timestamp": iso_utc(event.t), "track_id": int(event.track_id), **visitor_fields(event)}
            self._enqueue_or_send(self.topics.unknown_event, to_json(body), self.cfg.qos, False)
        if self.home.frigate:
            self._enqueue_or_send(self.topics.frigate_update, to_json(compat.frigate_face_update(event, camera)),
                                  self.cfg.qos, False)
        if self.home.double_take:
            self._enqueue_or_send(self.topics.double_take(event.name),
                                  to_json(compat.double_take_payload(event, camera, duration)), self.cfg.qos, False)
