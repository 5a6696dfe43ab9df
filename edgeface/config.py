"""The daemon's configuration: one typed tree of dataclasses loaded from YAML.

Every section has defaults, so an empty file (plus a camera) is a working config. The loader
(edgeface.yamltree) walks YAML *nodes* rather than plain dicts so that an unknown key, a wrong
type or a value out of range is reported with its key path and line, every problem at once, e.g.

    /etc/edgeface/edgeface.yaml:7: cameras[0].fps: expected a number or null, got 'fast'
    /etc/edgeface/edgeface.yaml:12: mqtt.hots: unknown key; did you mean `host`?

Relative paths (gallery, model, file sources, password/TLS files) are taken relative to the
config file's folder, so a config and its files can travel together.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import socket
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgeface.detect import DetectionConfig
from edgeface.events import EventsConfig
from edgeface.fleet import FleetConfig
from edgeface.motion import MotionConfig
from edgeface.track import TrackingConfig
from edgeface.validate import require, within
from edgeface.yamltree import Builder, ConfigError, one_line

DEFAULT_CONFIG_PATH = "/etc/edgeface/edgeface.yaml"


def default_gallery_path() -> str:
    # The same default `edgeface enroll` uses ($EDGEFACE_GALLERY, systemd's $STATE_DIRECTORY, ...),
    # so enrolling and running agree without either naming the file.
    from edgeface.gallery import default_gallery_path as gallery_default

    return str(gallery_default())


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
class CameraConfig:
    name: str
    # int: V4L2 index; str: /dev/videoN, a file path, rtsp://..., http(s)://... (MJPEG)
    source: int | str
    loop: bool = False  # files: start over at the end instead of finishing
    fps: float | None = None  # cap on frames taken per second

    def __post_init__(self):
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"camera name {self.name!r} must be letters, digits, '_' or '-' "
                             "(it is an MQTT topic level)")
        require((self.source != "" and (not isinstance(self.source, int) or self.source >= 0),
                 "source must be a V4L2 index >= 0, a device, a file path or a URL"),
                (self.fps is None or self.fps > 0, "fps must be positive"))


@dataclass
class RecognitionConfig:
    # None: the open-set rule (the model's threshold, rising with the gallery's size and for crowded
    # people; models/README.md "Open set"); a number: that fixed threshold
    threshold: float | None = None
    margin: float = 0.01  # the best person's score must beat the second best's by this much
    num_threads: int | None = None
    # None / "xnnpack" (CPU, the default), "cpu" (reference kernels), "edgetpu", or a delegate library path
    delegate: str | None = None
    delegate_options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False  # fail instead of falling back to CPU when the delegate cannot load
    # landmarks: chips aligned on five landmarks, as the dlib embedder expects; box: from the Haar box only
    align: Literal["landmarks", "box"] = "landmarks"

    def __post_init__(self):
        d = self.delegate
        if d is not None and d not in ("xnnpack", "cpu", "edgetpu") and "/" not in d \
                and not d.endswith((".so", ".dylib", ".dll")) and ".so." not in d:
            raise ValueError(f"delegate {self.delegate!r}: use xnnpack, cpu, edgetpu or a library path")
        require((self.threshold is None or within(self.threshold, -1.0, 1.0),
                 "threshold must be a cosine similarity, -1..1 (null: the model's own)"),
                (within(self.margin, 0.0, 1.0), "margin must be 0..1 (a difference of cosine similarities)"),
                (self.num_threads is None or within(self.num_threads, 1, 1024),
                 "num_threads must be 1..1024 (null: all cores)"))


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
    """Home-automation outputs on top of the identity events (see edgeface.presence, edgeface.compat)."""

    presence: bool = True  # per-person presence + "unknown visitor" entities (Home Assistant discovery)
    presence_timeout: float = 600.0  # seconds after a person's last sighting before their presence turns off
    unknown_timeout: float = 60.0  # ... and before "unknown visitor" turns off again
    frigate: bool = False  # Frigate-style face updates on {frigate_prefix}/tracked_object_update
    frigate_prefix: str | None = None  # None: mqtt.topic_prefix
    double_take: bool = False  # Double Take-style matches on {double_take_prefix}/matches/<name>
    double_take_prefix: str = "double-take"

    def __post_init__(self):
        def seconds(value: float) -> bool:
            return math.isfinite(value) and value > 0

        require((seconds(self.presence_timeout), "presence_timeout must be a finite number of seconds above 0"),
                (seconds(self.unknown_timeout), "unknown_timeout must be a finite number of seconds above 0"),
                (self.frigate_prefix is None or _topic_ok(self.frigate_prefix.strip("/")),
                 "frigate_prefix must be non-empty without MQTT wildcards (+, #)"),
                (_topic_ok(self.double_take_prefix.strip("/")),
                 "double_take_prefix must be non-empty without MQTT wildcards (+, #)"))


@dataclass
class Config:
    gallery: str = field(default_factory=default_gallery_path)
    model: str | None = None  # None: the shipped model
    cameras: list[CameraConfig] = field(default_factory=list)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)  # video only; identify/enroll never use it
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    home: HomeConfig = field(default_factory=HomeConfig)
    events: EventsConfig = field(default_factory=EventsConfig)  # face crops of recent events, for review
    fleet: FleetConfig = field(default_factory=FleetConfig)  # gallery sync with the household's other devices
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    status_interval: float = 60.0  # seconds between status lines in the log
    gallery_poll_interval: float = 2.0  # seconds between checks for gallery changes (edgeface enroll)
    # enroll/identify refuse photos whose header claims more pixels than this (0: no cap): a 20000x20000
    # PNG would need 1.2 GB decoded, more than a Pi can spare
    max_pixels: int = 50_000_000
    path: str | None = field(default=None, compare=False)  # the file it came from (not a YAML key)

    def __post_init__(self):
        require((self.gallery != "", "gallery must be a file path"),
                (self.model != "", "model must be a file path (null: the shipped model)"),
                (self.status_interval > 0, "status_interval must be positive (seconds)"),
                (self.gallery_poll_interval > 0, "gallery_poll_interval must be positive (seconds)"),
                (self.max_pixels >= 0, "max_pixels must be 0 (no cap) or a positive number of pixels"))


_NOT_KEYS = {"path"}  # Config fields that are bookkeeping, not YAML keys


@typing.overload
def _relative_to(base: Path, value: str) -> str: ...
@typing.overload
def _relative_to(base: Path, value: str | None) -> str | None: ...
def _relative_to(base: Path, value: str | None) -> str | None:
    if value is None or value == "":
        return value
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p))


def _is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def _yaml_error(filename: str, text: str, e: yaml.YAMLError) -> ConfigError:
    if isinstance(e, yaml.reader.ReaderError):  # a control character; no mark, a position instead
        line = text.count("\n", 0, e.position) + 1
        return ConfigError(f"{filename}:{line}: not valid YAML: control character #x{e.character:04x} "
                           "(only printable text is allowed)")
    mark = getattr(e, "problem_mark", None)
    where = f":{mark.line + 1}" if mark else ""
    problem = getattr(e, "problem", None) or " ".join(str(e).split())
    return ConfigError(f"{filename}{where}: not valid YAML: {problem}")


def _parse(text: str, filename: str) -> tuple[Config, dict[str, int]]:
    """The Config and the line of every key path given (for checks made later, such as files)."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as e:  # the reader refuses control characters up front
        raise _yaml_error(filename, text, e) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            raise _yaml_error(filename, text, e) from None
        except RecursionError:
            raise ConfigError(f"{filename}: not valid YAML: nested too deeply") from None
        if node is None:
            return Config(), {}
        builder = Builder(loader, filename, {Config: _NOT_KEYS})
        ok, cfg = builder.guarded(builder.dataclass, node, Config, "")
        builder.check_camera_names(node)
        error = builder.error()
        if error is not None or not ok:
            raise error or ConfigError(f"{filename}: not a valid config")
        return cfg, builder.lines
    finally:
        loader.dispose()


def parse(text: str, filename: str = "<config>") -> Config:
    """Build a Config from YAML text; relative paths are kept as written."""
    return _parse(text, filename)[0]


def resolve_secrets(mqtt: MqttConfig, filename: str = "<config>") -> None:
    """Fill mqtt.password from password_env / password_file (the YAML never needs to hold it)."""
    if mqtt.password_env:
        value = os.environ.get(mqtt.password_env)
        if value is None:
            raise ConfigError(f"{filename}: mqtt.password_env: environment variable {mqtt.password_env} is not set")
        mqtt.password = value
    if mqtt.password_file:
        try:
            with open(mqtt.password_file, encoding="utf-8") as f:
                mqtt.password = f.readline().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"{filename}: mqtt.password_file: cannot read {mqtt.password_file}: "
                              f"{e.strerror}") from None
        except ValueError:  # not UTF-8 text; the content (a secret) is not shown
            raise ConfigError(f"{filename}: mqtt.password_file: {mqtt.password_file} is not UTF-8 text") from None


def _unreadable(path: str) -> str | None:
    """Why a file named in the config cannot be read, or None."""
    if os.path.exists(path) and not os.path.isfile(path):
        return "not a regular file"
    try:
        with open(path, "rb"):
            return None
    except OSError as e:
        return e.strerror or str(e)


def _missing_cascades(det: DetectionConfig, filename: str, lines: dict[str, int]) -> list[str]:
    """Cascade names that are neither a file nor one of OpenCV's (found now, not at the first frame)."""
    named = [("detection.cascade", det.cascade)] + [(f"detection.eyes[{i}]", e) for i, e in enumerate(det.eyes)]
    if det.verify_cascade:
        named.append(("detection.verify_cascade", det.verify_cascade))
    problems = []
    for key, name in named:
        try:
            det.cascade_path(name, key)
        except FileNotFoundError as e:
            line = lines.get(key.split("[")[0], 0)
            problems.append(f"{filename}{f':{line}' if line else ''}: {e}")
    return problems


def load(path: str | os.PathLike = DEFAULT_CONFIG_PATH) -> Config:
    """Read, type-check and complete a config file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                          "save the file as UTF-8") from None
    cfg, lines = _parse(text, str(path))
    cfg.path = str(path)
    base = path.resolve().parent
    cfg.gallery = _relative_to(base, cfg.gallery)
    cfg.model = _relative_to(base, cfg.model)
    cfg.events.folder = _relative_to(base, cfg.events.folder)
    cfg.fleet.key_file = _relative_to(base, cfg.fleet.key_file)
    for cam in cfg.cameras:
        if isinstance(cam.source, str) and cam.source.isdigit():
            cam.source = int(cam.source)
        elif isinstance(cam.source, str) and not _is_url(cam.source):
            cam.source = _relative_to(base, cam.source)
    m = cfg.mqtt
    if m.client_id is None:
        m.client_id = default_client_id(path)
    m.password_file = _relative_to(base, m.password_file)
    problems = []
    if isinstance(m.tls, TlsConfig):
        m.tls.ca, m.tls.cert, m.tls.key = (_relative_to(base, v) for v in (m.tls.ca, m.tls.cert, m.tls.key))
        for name in ("ca", "cert", "key"):
            file = getattr(m.tls, name)
            why = _unreadable(file) if file else None
            if why:  # found now rather than as a TLS error in the background, retried forever
                key = f"mqtt.tls.{name}"
                problems.append(f"{path}:{lines.get(key, lines.get('mqtt.tls', 0))}: {key}: cannot read {file}: {why}")
    problems += _missing_cascades(cfg.detection, str(path), lines)
    try:
        resolve_secrets(m, str(path))
    except ConfigError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(one_line(p) for p in problems))
    return cfg
