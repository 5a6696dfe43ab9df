"""MQTT brokers on a free loopback port, for the demo and the tests (never for the daemon).

`Mosquitto` runs Debian's `mosquitto` as a child process; `AmqttBroker` runs amqtt (a pure
Python broker, the `demo` extra) inside this process, so `edgeface demo` needs nothing installed.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_executable() -> str | None:
    """mosquitto on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def _wait_listening(port: int, timeout: float, alive=lambda: True) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker(Protocol):
    name: str
    port: int

    def stop(self) -> None: ...


class Mosquitto:
    """A mosquitto child process on a free loopback port. stop() then start() brings it back on
    the same port; with ``persistence`` its retained messages and persistent sessions survive
    that, as for a broker restarted by its service manager."""

    name = "mosquitto (child process)"
    host = "127.0.0.1"

    def __init__(self, workdir: str | os.PathLike, persistence: bool = False):
        exe = mosquitto_executable()
        if exe is None:
            raise FileNotFoundError("no mosquitto executable (apt-get install mosquitto)")
        self.exe, self.port = exe, free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        self.log = os.path.join(workdir, "mosquitto.log")
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 f"log_dest file {self.log}", "log_type error", "log_type warning", "log_type notice"]
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 0"]
        Path(self.conf).write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
        if not _wait_listening(self.port, timeout, lambda: proc.poll() is None):
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} {err}".strip())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class AmqttBroker:
    """amqtt (pure-Python asyncio MQTT 3.1.1 broker) on its own event loop in a thread."""

    name = "amqtt (in-process)"

    def __init__(self) -> None:
        from amqtt.broker import Broker  # noqa: F401  (fail early when it is not installed)

        self.port = free_port()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)

    def _run(self) -> None:
        from amqtt.broker import Broker

        async def serve() -> None:
            broker = Broker({
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            })
            await broker.start()
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await broker.shutdown()

        try:
            asyncio.run(serve())
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()

    def start(self) -> AmqttBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)  # its per-connection chatter is not the demo
        self._thread.start()
        if not self._ready.wait(15) or self._error:
            raise RuntimeError(f"amqtt broker did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)


def start_broker(kind: str, workdir: str | os.PathLike) -> Broker:
    """``kind`` auto (amqtt, else mosquitto), amqtt or mosquitto; raises RuntimeError naming what to install."""
    if kind in ("auto", "amqtt"):
        try:
            return AmqttBroker().start()
        except ImportError:
            if kind == "amqtt":
                raise RuntimeError("amqtt is not installed: pip install 'edgeface[demo]' "
                                   "(or pip install amqtt)") from None
    try:
        return Mosquitto(workdir).start()
    except FileNotFoundError:
        raise RuntimeError("no MQTT broker for the demo: pip install 'edgeface[demo]' (amqtt), "
                           "or install mosquitto") from None
