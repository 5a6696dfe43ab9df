"""Shared fixtures: a real mosquitto broker on a free loopback port, an MQTT subscriber, the
daemon's test clip and runner, and the edgeface command run in-process.

    def test_x(mosquitto, subscriber):
        sub = subscriber("edgeface/#")          # connected, subscribed, collecting
        ...                                      # point the code under test at mosquitto.port
        msg = sub.wait_for(lambda m: m.topic == "edgeface/status" and m.text == "online")

`mosquitto.stop()` / `mosquitto.start()` take the broker away and bring it back on the same port.
Every test that uses `mosquitto` (directly or through `subscriber`) is marked `broker`, and every
test that starts daemons with `run_daemon` (seconds each, for the model and the clip) `slow`, so
`python -m pytest -m "not slow and not broker"` is the quick set.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
from running import Daemon, astronaut_head, make_clip

from edgeface.cli.main import main
from edgeface.cli.testbroker import Mosquitto, mosquitto_executable


def pytest_collection_modifyitems(items):
    for item in items:
        used = getattr(item, "fixturenames", ())
        if "mosquitto" in used:
            item.add_marker(pytest.mark.broker)
        if "run_daemon" in used:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def mosquitto(tmp_path):
    """A mosquitto broker of its own for this test (skipped where mosquitto is not installed)."""
    if not mosquitto_executable():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(str(tmp_path), persistence=True)
    broker.start()
    yield broker
    broker.stop()


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")

    def json(self):
        import json

        return json.loads(self.payload)


class Subscriber:
    """A real paho client that records every message on its topics."""

    def __init__(self, host: str, port: int, topic: str, client_id: str, persistent: bool = False):
        import paho.mqtt.client as mqtt

        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.topic = topic
        # persistent: the broker keeps this subscriber's QoS 1 messages while it is disconnected
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)  # follow a restarted broker quickly
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError(f"subscriber could not subscribe to {topic} on {host}:{port}")

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0, start: int = 0) -> Message | None:
        """The first message from index `start` on that satisfies predicate, waiting up to timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[start:]:
                    if predicate(m):
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(mosquitto):
    """Factory: subscriber(topic="#", persistent=False) -> a connected Subscriber on the test's mosquitto."""
    made = []

    def make(topic: str = "#", persistent: bool = False) -> Subscriber:
        s = Subscriber(mosquitto.host, mosquitto.port, topic, client_id=f"test-sub-{os.getpid()}-{len(made)}",
                       persistent=persistent)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="session")
def recognizer():
    """The recognizer enroll and identify build from the default config (the shipped model)."""
    from edgeface.config import Config
    from edgeface.recognition.pipeline import build_recognizer

    return build_recognizer(Config())


@pytest.fixture(scope="module")
def media():
    """The daemon's test clip (the astronaut turned through -60..+60 degrees, then background) and
    the enrolment photo: {"clip": path, "photo": path}."""
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        photo = folder / "astronaut.jpg"
        cv2.imwrite(str(photo), astronaut_head())
        yield {"clip": make_clip(folder / "astronaut.avi"), "photo": str(photo)}


@pytest.fixture
def run_daemon():
    """Factory: run_daemon(config, env=None) -> a running Daemon process, killed at the test's end."""
    started: list[Daemon] = []

    def start(config, env=None) -> Daemon:
        d = Daemon(config, env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """cli("gallery", "list", ...) runs the edgeface command's main() in this process: a Ran with
    returncode, stdout and stderr, as running.edgeface gives for a subprocess. Output printed, not
    logged: in-process, log records go to pytest's capture."""
    def run(*args) -> Ran:
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help, usage errors
            rc = e.code if isinstance(e.code, int) else int(e.code is not None)
        out, err = capsys.readouterr()
        return Ran(rc, out, err)

    return run
