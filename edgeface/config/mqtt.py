"""mqtt and home: the broker connection and the home-automation outputs on top of identity events."""
from __future__ import annotations

import hashlib
import math
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edgeface.config.validate import require, within

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def _machine_id() -> str:
    for name in _MACHINE_ID_FILES:
        try:
            text = Path(name).read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            continue
        if text:
            return text
    # No machine id (some containers): the hostname and a MAC address stand in for it.
    return f"{socket.gethostname()}-{uuid.getnode():012x}"


def default_client_id(config_path: str | os.PathLike | None = None) -> str:
    """edgeface-<hostname>-<8 hex>, the hex from this machine's id and the config file's resolved path.

    Two boards (even both called raspberrypi) or two configs on one board get different ids, so
    the broker does not kick one off for the other; one installation keeps its id, and with it
    its Home Assistant device, across restarts. Camera names are left out on purpose: adding a
    camera must not turn the board into a new Home Assistant device.
    """
    where = ""
    if config_path:
        try:
            where = str(Path(config_path).resolve())
        except (OSError, RuntimeError, ValueError):
            where = os.path.abspath(config_path)
    digest = hashlib.sha256(f"{_machine_id()}\n{where}".encode("utf-8", "surrogateescape")).hexdigest()[:8]
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"
    return f"edgeface-{host}-{digest}"


@dataclass
class TlsConfig:
    ca: str | None = None  # CA bundle; None: the system's
    cert: str | None = None  # client certificate (mutual TLS)
    key: str | None = None
    insecure: bool = False  # skip hostname check (self-signed lab brokers only)

    def __post_init__(self):
        require(*((value != "", f"{name} must not be empty (leave it out instead)")
                  for name, value in (("ca", self.ca), ("cert", self.cert), ("key", self.key))),
                (self.key is None or self.cert is not None, "key needs cert (the client certificate it belongs to)"))


def _topic_ok(value: str) -> bool:
    return bool(value) and not any(c in value for c in "+#")


@dataclass
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    topic_prefix: str = "edgeface"
    # None: edgeface-<hostname>-<8 hex from the machine id and config path> (see default_client_id)
    client_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None  # name of an environment variable holding the password
    password_file: str | None = None  # file whose first line is the password
    tls: bool | TlsConfig = False
    qos: int = 1
    # seconds; 0 (no keepalive) is refused: a half-open link to the broker would never be noticed
    keepalive: int = 60
    queue_max: int = 1000  # events held while the broker is away; oldest dropped beyond this
    discovery: bool = True  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"
    snapshot: bool = False  # publish face crops (JPEG) to {prefix}/{camera}/snapshot

    def __post_init__(self):
        secrets = [n for n in ("password", "password_env", "password_file") if getattr(self, n) is not None]
        require((self.qos in (0, 1, 2), "qos must be 0, 1 or 2"),
                (0 < self.port < 65536, "port must be 1..65535"),
                (bool(self.host) and not any(c.isspace() for c in self.host), "host must be a host name or address"),
                (within(self.keepalive, 5, 65535), "keepalive must be 5..65535 seconds"),
                (within(self.queue_max, 1, 10_000_000), "queue_max must be 1..10000000"),
                (_topic_ok(self.topic_prefix), "topic_prefix must be non-empty without MQTT wildcards (+, #)"),
                (_topic_ok(self.discovery_prefix), "discovery_prefix must be non-empty without MQTT wildcards (+, #)"),
                (self.client_id != "", "client_id must not be empty (leave it out for the default)"),
                (len(secrets) <= 1,
                 f"{secrets[-1] if secrets else 'password'} is given with "
                 f"{secrets[0] if secrets else ''}: use only one"),
                (not secrets or self.username is not None, f"{secrets[0] if secrets else 'password'} needs username"),
                (self.password_env != "", "password_env must name an environment variable"),
                (self.password_file != "", "password_file must not be empty"))


@dataclass
class HomeConfig:
    """Home-automation outputs on top of the identity events (see edgeface.mqtt.presence, edgeface.mqtt.compat)."""

    presence: bool = True  # per-person presence + "unknown visitor" entities (Home Assistant discovery)
    presence_timeout: float = 600.0  # seconds after a person's last sighting before their presence turns off
    unknown_timeout: float = 60.0  # ... and before "unknown visitor" turns off again
    frigate: bool = False  # Frigate-style face updates on {frigate_prefix}/tracked_object_update
    frigate_prefix: str | None = None  # None: mqtt.topic_prefix
    double_take: bool = False  # Double Take-style matches on {double_take_prefix}/matches/<name>
    double_take_prefix: str = "double-take"
    # Off by default (privacy): a Home Assistant image entity per camera with the last unknown
    # visitor's face (JPEG <= 64 KB), sent before the unknown-visitor event
    unknown_image: bool = False
    person_image: bool = False  # ... and one with the last recognised person's face
    retain_images: bool = False  # keep those pictures on the broker (retained) for late subscribers
    diagnostics: bool = True  # fps, dropped frames, cascade share, CPU, temperature, gallery, fleet sync entities

    def __post_init__(self):
        def seconds(value: float) -> bool:
            return math.isfinite(value) and value > 0

        require((seconds(self.presence_timeout), "presence_timeout must be a finite number of seconds above 0"),
                (seconds(self.unknown_timeout), "unknown_timeout must be a finite number of seconds above 0"),
                (self.frigate_prefix is None or _topic_ok(self.frigate_prefix.strip("/")),
                 "frigate_prefix must be non-empty without MQTT wildcards (+, #)"),
                (_topic_ok(self.double_take_prefix.strip("/")),
                 "double_take_prefix must be non-empty without MQTT wildcards (+, #)"))
