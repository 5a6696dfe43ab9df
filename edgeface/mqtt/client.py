"""The one way edgeface opens an MQTT connection: credentials, TLS and reconnect delays from the config."""
from __future__ import annotations

import paho.mqtt.client as mqtt

from edgeface.config import MqttConfig, TlsConfig

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30  # paho's backoff after a lost connection


def mqtt_client(cfg: MqttConfig, client_id: str, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311) -> mqtt.Client:
    """A paho client for the configured broker: credentials, TLS and reconnect delays set; not connected.
    protocol MQTTv5 (fleet sync): a clean start is asked for at connect instead."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                    clean_session=None if protocol == mqtt.MQTTv5 else True)
    if cfg.username is not None:
        c.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        tls = cfg.tls if isinstance(cfg.tls, TlsConfig) else TlsConfig()
        c.tls_set(ca_certs=tls.ca, certfile=tls.cert, keyfile=tls.key)
        if tls.insecure:
            c.tls_insecure_set(True)
    c.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    return c
