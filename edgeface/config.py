"""The daemon's configuration: one typed tree of dataclasses loaded from YAML.

Every section has defaults, so an empty file (plus a camera) is a working config. The loader
walks YAML *nodes* rather than plain dicts so that an unknown key or a wrong type is reported
with its key path and the line it sits on, e.g.

    /etc/edgeface/edgeface.yaml:7: cameras[0].fps: expected a number, got 'fast'

Relative paths (gallery, model, file sources, password/TLS files) are taken relative to the
config file's folder, so a config and its files can travel together.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from edgeface.motion import MotionConfig
from edgeface.track import TrackingConfig

try:  # written by the detection engineer; the config only needs its dataclass
    from edgeface.detect import DetectionConfig
except ImportError:  # pragma: no cover - only while detect.py is absent
    DetectionConfig = dict  # type: ignore[misc,assignment]

DEFAULT_CONFIG_PATH = "/etc/edgeface/edgeface.yaml"


class ConfigError(ValueError):
    """A config problem; the message names the file, line and key path."""


class _Mismatch(ConfigError):
    """The node itself has the wrong shape or type (a union may try its next option)."""

    def __init__(self, msg, node):
        super().__init__(msg)
        self.node = node


def default_gallery_path() -> str:
    # The same default `edgeface enroll` uses ($EDGEFACE_GALLERY, systemd's $STATE_DIRECTORY, ...),
    # so enrolling and running agree without either naming the file.
    from edgeface.gallery import default_gallery_path as gallery_default

    return str(gallery_default())


@dataclass
class CameraConfig:
    name: str
    # int: V4L2 index; str: /dev/videoN, a file path, rtsp://..., http(s)://... (MJPEG)
    source: Union[int, str]
    loop: bool = False  # files: start over at the end instead of finishing
    fps: Union[float, None] = None  # cap on frames taken per second

    def __post_init__(self):
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"camera name {self.name!r} must be letters, digits, '_' or '-' (it is an MQTT topic level)")
        if self.fps is not None and self.fps <= 0:
            raise ValueError("fps must be positive")


@dataclass
class RecognitionConfig:
    threshold: Union[float, None] = None  # None: the model sidecar's threshold
    num_threads: Union[int, None] = None
    # None / "xnnpack" (CPU, the default), "cpu" (reference kernels), "edgetpu", or a delegate library path
    delegate: Union[str, None] = None
    delegate_options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False  # fail instead of falling back to CPU when the delegate cannot load
    # landmarks: chips aligned on five landmarks, as the dlib embedder expects; box: from the Haar box only
    align: Literal["landmarks", "box"] = "landmarks"

    def __post_init__(self):
        if self.delegate is not None and self.delegate not in ("xnnpack", "cpu", "edgetpu") and "/" not in self.delegate \
                and not self.delegate.endswith((".so", ".dylib", ".dll")) and ".so." not in self.delegate:
            raise ValueError(f"delegate {self.delegate!r}: use xnnpack, cpu, edgetpu or a library path")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError("num_threads must be at least 1")


@dataclass
class TlsConfig:
    ca: Union[str, None] = None  # CA bundle; None: the system's
    cert: Union[str, None] = None  # client certificate (mutual TLS)
    key: Union[str, None] = None
    insecure: bool = False  # skip hostname check (self-signed lab brokers only)


@dataclass
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    topic_prefix: str = "edgeface"
    client_id: Union[str, None] = None  # None: edgeface-<hostname>
    username: Union[str, None] = None
    password: Union[str, None] = field(default=None, repr=False)
    password_env: Union[str, None] = None  # name of an environment variable holding the password
    password_file: Union[str, None] = None  # file whose first line is the password
    tls: Union[bool, TlsConfig] = False
    qos: int = 1
    keepalive: int = 60
    queue_max: int = 1000  # events held while the broker is away; oldest dropped beyond this
    discovery: bool = True  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"
    snapshot: bool = False  # publish face crops (JPEG) to {prefix}/{camera}/snapshot

    def __post_init__(self):
        if self.qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        if not (0 < self.port < 65536):
            raise ValueError("port must be 1..65535")
        if self.queue_max < 1:
            raise ValueError("queue_max must be at least 1")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#"):
            raise ValueError("topic_prefix must be non-empty without MQTT wildcards")


@dataclass
class Config:
    gallery: str = field(default_factory=default_gallery_path)
    model: Union[str, None] = None  # None: the shipped model
    cameras: list[CameraConfig] = field(default_factory=list)
    detection: DetectionConfig = field(default_factory=DetectionConfig)  # type: ignore[valid-type]
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)  # video only; identify/enroll never use it
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    status_interval: float = 60.0  # seconds between status lines in the log
    gallery_poll_interval: float = 2.0  # seconds between checks for gallery changes (edgeface enroll)
    path: Union[str, None] = field(default=None, compare=False)  # the file it came from (not a YAML key)

    def __post_init__(self):
        if self.status_interval <= 0 or self.gallery_poll_interval <= 0:
            raise ValueError("intervals must be positive")


_NOT_KEYS = {"path"}  # Config fields that are bookkeeping, not YAML keys

_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _describe(tp) -> str:
    if tp in _TYPE_WORDS:
        return _TYPE_WORDS[tp]
    if dataclasses.is_dataclass(tp) or tp is dict or typing.get_origin(tp) is dict:
        return "a mapping"
    if typing.get_origin(tp) in (list, tuple):
        return "a list"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if _is_union(tp):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _is_union(tp) -> bool:
    return typing.get_origin(tp) is Union or isinstance(tp, types.UnionType)


class _Builder:
    """Turns a composed YAML node tree into dataclasses, naming the key path on any error."""

    def __init__(self, loader: yaml.SafeLoader, filename: str):
        self.loader = loader
        self.filename = filename

    def fail(self, node, path: str, msg: str) -> typing.NoReturn:
        raise ConfigError(self._where(node, path, msg))

    def mismatch(self, node, path: str, tp) -> typing.NoReturn:
        raise _Mismatch(self._where(node, path, f"expected {_describe(tp)}, got {self._shown(node)}"), node)

    def _where(self, node, path, msg) -> str:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return f"{self.filename}{line}: {path or '(top level)'}: {msg}"

    def scalar(self, node):
        return self.loader.construct_object(node, deep=True)

    def build(self, node, tp, path: str):
        if tp is Any:
            return self.loader.construct_object(node, deep=True)
        if _is_union(tp):
            options = typing.get_args(tp)
            # Try the options in order; a value fitting none reports the whole union.
            for option in options:
                try:
                    return self.build(node, option, path)
                except _Mismatch as e:
                    if e.node is not node:
                        raise  # a problem deeper inside a value of the right shape: report that one
            self.mismatch(node, path, tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(node, tp, path)
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            if not isinstance(node, yaml.SequenceNode):
                self.mismatch(node, path, tp)
            args = typing.get_args(tp)
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(args) != len(node.value):
                    self.fail(node, path, f"expected a list of {len(args)} items, got {len(node.value)}")
                return tuple(self.build(n, a, f"{path}[{i}]") for i, (n, a) in enumerate(zip(node.value, args)))
            item = args[0] if args else Any
            items = [self.build(n, item, f"{path}[{i}]") for i, n in enumerate(node.value)]
            return tuple(items) if origin is tuple else items
        if origin is dict or tp is dict:
            if not isinstance(node, yaml.MappingNode):
                self.mismatch(node, path, tp)
            value_tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
            return {str(self.scalar(k)): self.build(v, value_tp, f"{path}.{self.scalar(k)}") for k, v in node.value}
        if origin is Literal:
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            choices = typing.get_args(tp)
            if isinstance(value, str):  # log levels and the like: case does not matter
                value = next((c for c in choices if isinstance(c, str) and c.lower() == value.lower()), value)
            if value not in choices:
                self.mismatch(node, path, tp)
            return value
        if tp in (int, float, str, bool, type(None)):
            if not isinstance(node, yaml.ScalarNode):
                self.mismatch(node, path, tp)
            value = self.scalar(node)
            ok = (type(value) is tp) or (tp is float and type(value) is int)
            if not ok:
                self.mismatch(node, path, tp)
            return float(value) if tp is float else value
        self.fail(node, path, f"unsupported config type {tp!r} (a bug in the config schema)")

    def dataclass(self, node, cls, path: str):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            node_items = []
        elif not isinstance(node, yaml.MappingNode):
            self.mismatch(node, path, cls)
        else:
            node_items = node.value
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not (cls is Config and f.name in _NOT_KEYS)}
        kwargs = {}
        for key_node, value_node in node_items:
            key = self.scalar(key_node)
            sub = f"{path}.{key}" if path else str(key)
            if key not in fields:
                self.fail(key_node, sub, f"unknown key (allowed: {', '.join(sorted(fields))})")
            if key in kwargs:
                self.fail(key_node, sub, "key given twice")
            kwargs[key] = self.build(value_node, hints[key], sub)
        for name, f in fields.items():
            if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(node, f"{path}.{name}" if path else name, "required key is missing")
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:
            self.fail(node, path, str(e))

    @staticmethod
    def _shown(node) -> str:
        if isinstance(node, yaml.ScalarNode):
            return repr(node.value) if node.tag != "tag:yaml.org,2002:null" else "null"
        return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _relative_to(base: Path, value: str | None) -> str | None:
    if value is None or value == "":
        return value
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p))


def _is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def parse(text: str, filename: str = "<config>") -> Config:
    """Build a Config from YAML text; relative paths are kept as written."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{filename}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
        builder = _Builder(loader, filename)
        cfg = builder.dataclass(node, Config, "") if node is not None else Config()
        names = [c.name for c in cfg.cameras]
        for i, name in enumerate(names):
            if names.index(name) != i:
                cam_node = node.value[[k.value for k, _ in node.value].index("cameras")][1].value[i]
                builder.fail(cam_node, f"cameras[{i}].name", f"camera name {name!r} used twice")
        return cfg
    finally:
        loader.dispose()


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
            raise ConfigError(f"{filename}: mqtt.password_file: cannot read {mqtt.password_file}: {e.strerror}") from None


def load(path: str | os.PathLike = DEFAULT_CONFIG_PATH) -> Config:
    """Read, type-check and complete a config file; raises ConfigError naming the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    cfg = parse(text, str(path))
    cfg.path = str(path)
    base = path.resolve().parent
    cfg.gallery = _relative_to(base, cfg.gallery)
    cfg.model = _relative_to(base, cfg.model)
    for cam in cfg.cameras:
        if isinstance(cam.source, str) and cam.source.isdigit():
            cam.source = int(cam.source)
        elif isinstance(cam.source, str) and not _is_url(cam.source):
            cam.source = _relative_to(base, cam.source)
    m = cfg.mqtt
    m.password_file = _relative_to(base, m.password_file)
    if isinstance(m.tls, TlsConfig):
        m.tls.ca, m.tls.cert, m.tls.key = (_relative_to(base, v) for v in (m.tls.ca, m.tls.cert, m.tls.key))
    resolve_secrets(m, str(path))
    return cfg
