"""`edgeface demo`: see the whole path work on a fresh machine, no broker or camera needed.

1. makes a short clip of a public-domain face (NASA's astronaut portrait shipped with
   scikit-image) turned through -60..+60 degrees, appearing twice;
2. enrols the astronaut from an upright photo into a temporary gallery (the `enroll` command);
3. starts an MQTT broker inside this process (amqtt; a `mosquitto` on PATH is the fallback);
4. runs the real daemon (edgeface.daemon.Daemon: file camera, pipeline, tracker, publisher)
   on the clip and prints every MQTT message a subscriber receives.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgeface.geometry import turn_image

log = logging.getLogger(__name__)

CLIP_FPS = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=30, help="frames per sweep of -60..+60 degrees (default %(default)s)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="write the clip and gallery into DIR and keep them (default: a temporary folder)")
    parser.add_argument("--model", default=None, help="embedding model (default: the shipped int8 model)")
    parser.add_argument("--broker", choices=["auto", "amqtt", "mosquitto"], default="auto",
                        help="in-process amqtt, or a mosquitto executable on PATH (default: amqtt if installed)")


# -- the clip ------------------------------------------------------------------------------
def astronaut_bgr() -> np.ndarray:
    from skimage import data  # scikit-image ships the public-domain NASA portrait

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def head_and_shoulders(image: np.ndarray) -> np.ndarray:
    return image[0:300, 70:370]  # the face a little above the middle, little of the shuttle beside her


def turn(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turn about the centre, growing the canvas so nothing is cut off."""
    return turn_image(image, degrees)


def clip_background(size=(320, 240)) -> np.ndarray:
    return np.tile(np.linspace(70, 170, size[0], dtype=np.uint8)[None, :, None], (size[1], 1, 3))


def face_frame(head: np.ndarray, degrees: float, background: np.ndarray) -> np.ndarray:
    """``head`` turned by ``degrees``, fitted to the background's height, centred on a copy of it."""
    img = turn(head, degrees)
    h, w = background.shape[:2]
    s = h / max(img.shape[:2])
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = background.copy()
    x = (w - img.shape[1]) // 2
    frame[: img.shape[0], x: x + img.shape[1]] = img
    return frame


def make_clip(path: str | os.PathLike, frames_per_sweep: int = 30, size=(320, 240), fps: float = CLIP_FPS) -> int:
    """Two appearances (-60 -> +60, then +60 -> -60 degrees) separated by a second of empty
    background; MJPG .avi. Returns the number of frames written."""
    head = head_and_shoulders(astronaut_bgr())
    bg = clip_background(size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}: OpenCV has no MJPG writer")
    n = 0
    sweep = [-60 + 120 * k / max(1, frames_per_sweep - 1) for k in range(frames_per_sweep)]
    for angles in (sweep, sweep[::-1]):
        for deg in angles:
            writer.write(face_frame(head, deg, bg))
            n += 1
        for _ in range(int(fps)):
            writer.write(bg)
            n += 1
    writer.release()
    return n


# -- embedded brokers ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AmqttBroker:
    """amqtt (pure-Python asyncio MQTT 3.1.1 broker) on its own event loop in a thread."""

    name = "amqtt (in-process)"

    def __init__(self):
        from amqtt.broker import Broker  # noqa: F401  (fail early when it is not installed)

        self.port = free_port()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)

    def _run(self):
        from amqtt.broker import Broker

        async def serve():
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

    def start(self):
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)  # its per-connection chatter is not the demo
        self._thread.start()
        if not self._ready.wait(15) or self._error:
            raise RuntimeError(f"amqtt broker did not start: {self._error}")
        return self

    def stop(self):
        if self._thread.is_alive() and hasattr(self, "_loop"):
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)


class MosquittoBroker:
    """A mosquitto executable, run as a child process on a free loopback port."""

    name = "mosquitto (child process)"

    def __init__(self, workdir: str):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            raise ImportError("no mosquitto executable")
        self.exe, self.port = exe, free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        Path(self.conf).write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def start_broker(kind: str, workdir: str):
    if kind in ("auto", "amqtt"):
        try:
            return AmqttBroker().start()
        except ImportError:
            if kind == "amqtt":
                raise RuntimeError("amqtt is not installed: pip install 'edgeface[demo]' (or pip install amqtt)") from None
    try:
        return MosquittoBroker(workdir).start()
    except ImportError:
        raise RuntimeError("no MQTT broker for the demo: pip install 'edgeface[demo]' (amqtt), "
                           "or install mosquitto") from None


# -- the subscriber ----------------------------------------------------------------------------
class PrintingSubscriber:
    def __init__(self, port: int, topics=("edgeface/#", "homeassistant/#")):
        import paho.mqtt.client as mqtt

        self.identities: list[dict] = []
        self.count = 0
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeface-demo-subscriber-{os.getpid()}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("demo subscriber could not subscribe")

    def _on_message(self, client, userdata, msg):
        self.count += 1
        text = msg.payload.decode("utf-8", errors="replace")
        if msg.topic.endswith("/identity"):
            try:
                self.identities.append(json.loads(text))
            except ValueError:
                pass
        shown = text if len(text) <= 160 else text[:157] + "..."
        print(f"  {msg.topic}{' (retained)' if msg.retain else ''}  {shown}", flush=True)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


# -- the demo ------------------------------------------------------------------------------------
def main_demo(args) -> int:
    from edgeface.cli import main as cli_main
    from edgeface.config import CameraConfig, Config, MqttConfig
    from edgeface.daemon import Daemon
    from edgeface.track import TrackingConfig

    verbose = getattr(args, "verbose", False)
    if not verbose:  # the MQTT messages are the show; the daemon's own log only for -v
        logging.getLogger("edgeface").setLevel(logging.WARNING)
    frames = max(5, getattr(args, "frames", 30) or 30)
    model = getattr(args, "model", None)
    keep = getattr(args, "keep", None)
    tmp = None
    if keep:
        workdir = Path(keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="edgeface-demo-")
        workdir = Path(tmp.name)
    broker = subscriber = daemon = None
    old_sigint = signal.getsignal(signal.SIGINT)
    try:
        clip, photo, gallery = workdir / "astronaut.avi", workdir / "astronaut.jpg", workdir / "gallery.db"
        n = make_clip(clip, frames)
        cv2.imwrite(str(photo), head_and_shoulders(astronaut_bgr()))
        print(f"1. clip: {n} frames at {CLIP_FPS:g} fps of NASA's astronaut portrait (public domain, from "
              f"scikit-image) turned -60..+60 degrees, shown twice -> {clip}")
        print("2. enrol the upright photo as 'astronaut':", flush=True)
        if gallery.exists():
            gallery.unlink()
        rc = cli_main(["enroll", "astronaut", str(photo), "--gallery", str(gallery)] + (["--model", model] if model else []))
        if rc != 0:
            print("edgeface demo: enrolment failed", file=sys.stderr)
            return 1
        broker = start_broker(getattr(args, "broker", "auto"), str(workdir))
        print(f"3. MQTT broker: {broker.name} on 127.0.0.1:{broker.port}; a subscriber prints what arrives:", flush=True)
        subscriber = PrintingSubscriber(broker.port)
        cfg = Config(
            gallery=str(gallery),
            model=model,
            cameras=[CameraConfig(name="demo", source=str(clip))],
            tracking=TrackingConfig(max_missed=0.5),
            mqtt=MqttConfig(host="127.0.0.1", port=broker.port, client_id="edgeface-demo", discovery=True),
            status_interval=5.0,
        )
        print("4. the daemon runs on the clip as it would on a camera:", flush=True)
        daemon = Daemon(cfg)
        signal.signal(signal.SIGINT, lambda *a: daemon.stop_event.set())
        started = time.monotonic()
        daemon.start()
        daemon.run()  # returns when the clip has ended (or Ctrl-C)
        frames_done = sum(r.frames_read for r in daemon.readers)
        daemon.shutdown()
        daemon = None
        time.sleep(0.5)  # let the last messages (status offline) reach the subscriber
        seconds = time.monotonic() - started
        names = [i["name"] for i in subscriber.identities]
        named = [x for x in names if x]
        print(f"5. done in {seconds:.0f} s ({frames_done} frames read): {subscriber.count} MQTT messages, "
              f"{len(names)} identity event(s): " + (", ".join(str(x) for x in names) or "none"))
        if "astronaut" not in named:
            print("edgeface demo: the astronaut was never named", file=sys.stderr)
            return 1
        print("   Next: enrol your own people (edgeface enroll NAME PHOTO...) and run the daemon with a "
              "config (edgeface run --config FILE; see systemd/edgeface.yaml).")
        return 0
    except RuntimeError as e:
        print(f"edgeface demo: {e}", file=sys.stderr)
        return 1
    except ImportError as e:  # scikit-image (the astronaut) or amqtt missing
        print(f"edgeface demo: {e.name or e} is not installed: pip install 'edgeface[demo]'", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, old_sigint)
        if daemon is not None:
            daemon.shutdown()
        if subscriber is not None:
            subscriber.close()
        if broker is not None:
            broker.stop()
        if tmp is not None:
            tmp.cleanup()
