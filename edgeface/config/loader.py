"""The daemon's configuration: one typed tree of dataclasses loaded from YAML.

Every section has defaults, so an empty file (plus a camera) is a working config. The loader
(edgeface.config.yamltree) walks YAML *nodes* rather than plain dicts so that an unknown key, a wrong
type or a value out of range is reported with its key path and line, every problem at once, e.g.

    /etc/edgeface/edgeface.yaml:7: cameras[0].fps: expected a number or null, got 'fast'
    /etc/edgeface/edgeface.yaml:12: mqtt.hots: unknown key; did you mean `host`?

Relative paths (gallery, model, file sources, password/TLS files) are taken relative to the
config file's folder, so a config and its files can travel together.
"""
from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from edgeface.config.detection import DetectionConfig
from edgeface.config.events import EventsConfig
from edgeface.config.fleet import FleetConfig
from edgeface.config.motion import MotionConfig
from edgeface.config.mqtt import HomeConfig, MqttConfig, TlsConfig, default_client_id
from edgeface.config.paths import default_gallery_path
from edgeface.config.recognition import RecognitionConfig
from edgeface.config.tracking import TrackingConfig
from edgeface.config.validate import require
from edgeface.config.yamltree import Builder, ConfigError, one_line

DEFAULT_CONFIG_PATH = "/etc/edgeface/edgeface.yaml"


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
class Config:
    gallery: str = field(default_factory=lambda: str(default_gallery_path()))
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


def parse_settings(items: list[str], flag: str = "--set") -> Config:
    """A Config from ``SECTION.KEY=VALUE`` items (a YAML value: ``5``, ``null``, ``[0, 20]``), checked as
    a config file is: an unknown section or key, or a bad value, raises ConfigError naming the item."""
    sections: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not (eq and dot and section.isidentifier() and name.isidentifier()) or "\n" in value:
            raise ConfigError(f"{flag} {item}: expected SECTION.KEY=VALUE, such as detection.budget_ms=5")
        sections.setdefault(section, []).append(f"  {name}: {value}")
    text = "".join(f"{section}:\n" + "\n".join(lines) + "\n" for section, lines in sections.items())
    return parse(text, flag)


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
