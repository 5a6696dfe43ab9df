"""The configuration: one typed tree of dataclasses loaded from YAML.

This package imports nothing else from edgeface (tests/test_architecture.py checks it): runtime
code imports its section here, never the reverse. One module per section; loader.py builds the tree.
"""
from edgeface.config.detection import HAARCASCADES, DetectionConfig
from edgeface.config.events import EventsConfig
from edgeface.config.fleet import FleetConfig
from edgeface.config.loader import (
    DEFAULT_CONFIG_PATH,
    CameraConfig,
    Config,
    load,
    parse,
    parse_settings,
    resolve_secrets,
)
from edgeface.config.motion import MotionConfig
from edgeface.config.mqtt import HomeConfig, MqttConfig, TlsConfig, default_client_id
from edgeface.config.paths import default_gallery_path
from edgeface.config.recognition import RecognitionConfig
from edgeface.config.tracking import TrackingConfig
from edgeface.config.yamltree import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH", "HAARCASCADES", "CameraConfig", "Config", "ConfigError", "DetectionConfig",
    "EventsConfig", "FleetConfig", "HomeConfig", "MotionConfig", "MqttConfig", "RecognitionConfig",
    "TlsConfig", "TrackingConfig", "default_client_id", "default_gallery_path", "load", "parse",
    "parse_settings", "resolve_secrets",
]
