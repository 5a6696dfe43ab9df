"""`edgeface demo`: see the whole path work on a fresh machine, no broker or camera needed.

1. makes a short clip of a public-domain face (NASA's astronaut portrait shipped with
   scikit-image) turned through -60..+60 degrees, appearing twice;
2. enrols the astronaut from an upright photo into a temporary gallery (the `enroll` command);
3. starts an MQTT broker inside this process (amqtt; a `mosquitto` on PATH is the fallback);
4. runs the real daemon (edgeface.service.daemon.Daemon: file camera, pipeline, tracker, publisher)
   on the clip and prints every MQTT message a subscriber receives.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgeface.vision.geometry import turn_image

log = logging.getLogger(__name__)

CLIP_FPS = 10.0


# -- the clip ------------------------------------------------------------------------------
def astronaut_bgr() -> np.ndarray:
    from skimage import data  # scikit-image ships the public-domain NASA portrait

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def head_and_shoulders(image: np.ndarray) -> np.ndarray:
    return image[0:300, 70:370]  # the face a little above the middle, little of the shuttle beside her


def clip_background(size=(320, 240)) -> np.ndarray:
    return np.tile(np.linspace(70, 170, size[0], dtype=np.uint8)[None, :, None], (size[1], 1, 3))


def face_frame(head: np.ndarray, degrees: float, background: np.ndarray) -> np.ndarray:
    """``head`` turned by ``degrees``, fitted to the background's height, centred on a copy of it."""
    img = turn_image(head, degrees)
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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
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
def run_demo(frames: int = 30, keep: str | None = None, model: str | None = None, broker: str = "auto",
             verbose: bool = False) -> int:
    """`edgeface demo`: returns the exit status (1 when the astronaut was never named)."""
    from edgeface.cli.testbroker import start_broker
    from edgeface.config import CameraConfig, Config, MqttConfig, TrackingConfig
    from edgeface.recognition.enroll import enroll
    from edgeface.recognition.pipeline import build_recognizer
    from edgeface.service.daemon import Daemon
    from edgeface.store.gallery import Gallery

    if not verbose:  # the MQTT messages are the show; the daemon's own log only for -v
        logging.getLogger("edgeface").setLevel(logging.WARNING)
    frames = max(5, frames)
    tmp = None
    if keep:
        workdir = Path(keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="edgeface-demo-")
        workdir = Path(tmp.name)
    server = subscriber = daemon = None
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
        cfg = Config(gallery=str(gallery), model=model)
        with Gallery(gallery) as db:
            report = enroll(db, build_recognizer(cfg), "astronaut", [photo], say=print,
                            warn=lambda line: print(line, file=sys.stderr))
        if report.faces == 0:
            print("edgeface demo: enrolment failed", file=sys.stderr)
            return 1
        server = start_broker(broker, str(workdir))
        print(f"3. MQTT broker: {server.name} on 127.0.0.1:{server.port}; a subscriber prints what arrives:",
              flush=True)
        subscriber = PrintingSubscriber(server.port)
        cfg.cameras = [CameraConfig(name="demo", source=str(clip))]
        cfg.tracking = TrackingConfig(max_missed=0.5)
        cfg.mqtt = MqttConfig(host="127.0.0.1", port=server.port, client_id="edgeface-demo", discovery=True)
        cfg.status_interval = 5.0
        print("4. the daemon runs on the clip as it would on a camera:", flush=True)
        daemon = Daemon(cfg)
        stop = daemon.stop_event
        signal.signal(signal.SIGINT, lambda *a: stop.set())
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
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()
