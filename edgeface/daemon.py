"""The daemon: cameras in, identities out over MQTT, for as long as the service runs.

Threads: one reader per camera (edgeface.source), one worker per camera running the shared
FramePipeline code on the reader's newest frame, paho's network thread, and the main thread,
which owns signals, the gallery poll, the status line and the systemd watchdog.

    SIGTERM / SIGINT   publish "offline", disconnect, exit 0 (within 2 s)
    SIGHUP             reload the config file and the gallery
    gallery writes     (`edgeface enroll` on the same database) picked up within gallery_poll_interval
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import cv2
import numpy as np

from edgeface import sdnotify
from edgeface.config import Config, ConfigError, load
from edgeface.publish import Publisher
from edgeface.source import CameraReader, describe
from edgeface.track import Tracker

log = logging.getLogger("edgeface.daemon")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
HEARTBEAT_STALE_S = 20.0  # a worker silent this long is stuck: stop feeding the systemd watchdog
STOP_BUDGET_S = 1.5  # SIGTERM to exit, of the 2 s promised


class SharedEmbedder:
    """One Embedder (one TFLite interpreter) used by every camera's worker, one batch at a time."""

    def __init__(self, embedder):
        self._embedder = embedder
        self._lock = threading.Lock()

    def embed(self, chips):
        with self._lock:  # a TFLite interpreter is not re-entrant
            return self._embedder.embed(chips)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


class CameraWorker:
    """Runs the pipeline on one camera's newest frames and publishes its identity events."""

    def __init__(self, name: str, reader: CameraReader, pipeline, publisher: Publisher, snapshot: bool):
        self.name, self.reader, self.pipeline, self.publisher = name, reader, pipeline, publisher
        self.snapshot = snapshot
        self.heartbeat = time.monotonic()
        self.finished = False  # its file ended
        self.errors = 0
        self.total_events = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reset_stats()
        self._thread = threading.Thread(target=self._run, name=f"worker-{name}", daemon=True)

    def _reset_stats(self):
        self._frames, self._latency_ms, self._faces, self._events = 0, [], 0, 0
        self._cascade_base = getattr(self.pipeline, "cascade_frames", 0)
        self._since = time.monotonic()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    def join(self, timeout: float):
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def take_stats(self) -> dict:
        with self._lock:
            span = max(1e-6, time.monotonic() - self._since)
            lat = sorted(self._latency_ms)
            stats = {
                "fps": self._frames / span,
                "latency_ms": sum(lat) / len(lat) if lat else 0.0,
                "latency_p95_ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0,
                "faces": self._faces,
                "events": self._events,
                # share of frames on which the detection cascade ran (motion gating skips the rest)
                # (clamped: a frame in flight at the reset counts its cascade but not itself)
                "cascade_share": min(1.0, (getattr(self.pipeline, "cascade_frames", 0) - self._cascade_base)
                                     / self._frames) if self._frames else 0.0,
            }
            self._reset_stats()
        return stats

    def _run(self):
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            frame = self.reader.next_frame(timeout=0.5)
            if frame is None:
                if self.reader.finished:
                    self.finished = True
                    return
                continue
            try:
                result = self.pipeline.process(frame.image, frame.t)
            except Exception:  # one bad frame must not end the camera
                self.errors += 1
                if self.errors == 1 or self.errors % 100 == 0:
                    log.exception("camera %s: frame failed (%d so far)", self.name, self.errors)
                continue
            done = time.monotonic()
            for event in result.events:
                jpeg = self._crop_jpeg(frame.image, event.box) if self.snapshot else None
                try:
                    self.publisher.publish_identity(self.name, event, jpeg)
                except (ValueError, OSError, RuntimeError) as e:  # never let MQTT trouble stop the camera
                    log.error("camera %s: cannot publish event: %s", self.name, e)
                log.info("camera %s: %s (score %.3f, track %d, angle %+.0f)", self.name,
                         event.name if event.name is not None else "unknown face", event.score, event.track_id,
                         event.angle)
            with self._lock:
                self._frames += 1
                self._latency_ms.append((done - frame.mono) * 1e3)
                self._faces += len(result.faces)
                self._events += len(result.events)
                self.total_events += len(result.events)

    @staticmethod
    def _crop_jpeg(image: np.ndarray, box) -> bytes | None:
        x, y, w, h = (int(v) for v in box)
        h_img, w_img = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w_img, x + w), min(h_img, y + h)
        if x1 <= x0 or y1 <= y0:
            return None
        ok, buf = cv2.imencode(".jpg", image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else None


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.embedder = None
        self.gallery = None
        self.gallery_version = None
        self.matcher = None
        self.publisher: Publisher | None = None
        self.readers: list[CameraReader] = []
        self.workers: list[CameraWorker] = []
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()

    # -- building ------------------------------------------------------------------------
    def _load_embedder(self, cfg: Config):
        from edgeface.embed import Embedder

        r = cfg.recognition
        embedder = Embedder(cfg.model, num_threads=r.num_threads, delegate=r.delegate,
                            delegate_options=r.delegate_options or None, strict=r.strict)
        log.info("model %s (%s, %s)", embedder.spec.path, embedder.spec.model_id[:12], getattr(embedder, "delegate", "cpu"))
        return SharedEmbedder(embedder)

    def _open_gallery(self, path: str):
        from edgeface.gallery import Gallery

        gallery = Gallery(path)
        gallery.check_model(self.embedder.spec.model_id)
        return gallery

    def _reload_matcher(self, reason: str) -> None:
        from edgeface.pipeline import load_matcher

        version = self.gallery.version()
        matcher = load_matcher(self.gallery, self.embedder.spec, self.cfg.recognition.threshold)
        self.matcher, self.gallery_version = matcher, version
        for w in self.workers:
            w.pipeline.recognizer.matcher = matcher  # read afresh by the worker on its next frame
        people = self.gallery.people()
        log.info("gallery %s: %d people, %d faces (%s)", self.gallery.path, len(people),
                 sum(p.embeddings for p in people), reason)

    def _build_cameras(self) -> None:
        from edgeface.detect import HaarDetector
        from edgeface.pipeline import FramePipeline, Recognizer

        for cam in self.cfg.cameras:
            reader = CameraReader(cam)
            recognizer = Recognizer(HaarDetector(self.cfg.detection), self.embedder, self.matcher,
                                    align=self.cfg.recognition.align)
            pipeline = FramePipeline(recognizer, Tracker(self.cfg.tracking), self.cfg.motion)
            self.readers.append(reader)
            self.workers.append(CameraWorker(cam.name, reader, pipeline, self.publisher, self.cfg.mqtt.snapshot))
        for reader in self.readers:
            reader.start()
        for worker in self.workers:
            worker.start()
        log.info("cameras: %s", ", ".join(f"{c.name}={describe(c.source)}" for c in self.cfg.cameras))

    def _stop_cameras(self, deadline: float) -> None:
        for w in self.workers:
            w.stop()
        for r in self.readers:
            r.request_stop()
        for r in self.readers:
            r.stop(timeout=max(0.0, min(0.3, deadline - time.monotonic())))
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        self.readers, self.workers = [], []

    def start(self) -> None:
        """Load model and gallery, connect MQTT in the background, start cameras. Raises on fatal errors."""
        self.embedder = self._load_embedder(self.cfg)
        self.gallery = self._open_gallery(self.cfg.gallery)
        self._reload_matcher("loaded")
        self.publisher = Publisher(self.cfg.mqtt, [c.name for c in self.cfg.cameras])
        self.publisher.start()
        self._build_cameras()

    # -- running -------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stop_event is set (signal) or every camera was a file that ended."""
        sdnotify.ready(f"{len(self.workers)} camera(s)")
        wd_interval = sdnotify.watchdog_interval()
        now = time.monotonic()
        next_status, next_poll, next_ping = now + self.cfg.status_interval, now + self.cfg.gallery_poll_interval, now
        while not self.stop_event.is_set():
            self.stop_event.wait(0.2)
            if self.stop_event.is_set():
                break
            now = time.monotonic()
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            if now >= next_poll:
                next_poll = now + self.cfg.gallery_poll_interval
                self._poll_gallery()
            if now >= next_status:
                next_status = now + self.cfg.status_interval
                self.log_status()
            if wd_interval and now >= next_ping:
                stale = [w.name for w in self.workers if w.alive and now - w.heartbeat > HEARTBEAT_STALE_S]
                if not stale:
                    sdnotify.watchdog()
                    next_ping = now + wd_interval
                else:  # let systemd's watchdog restart us rather than hang silently
                    log.error("camera worker(s) stuck: %s", ", ".join(stale))
            if self.workers and all(w.finished for w in self.workers):
                log.info("every camera's file has ended; stopping")
                break
            for w in self.workers:
                if not w.alive and not w.finished and not self.stop_event.is_set():
                    log.error("camera %s: worker ended unexpectedly", w.name)
                    return EXIT_FAIL
        return EXIT_OK

    def _poll_gallery(self) -> None:
        try:
            if self.gallery.version() != self.gallery_version:
                self._reload_matcher("changed on disk")
        except Exception as e:  # a locked or half-written gallery: keep the old one, try again next poll
            log.warning("gallery %s: cannot reload (%s); keeping the previous one", self.cfg.gallery, e)

    def log_status(self) -> None:
        parts = []
        for w in self.workers:
            s = w.take_stats()
            parts.append(f"{w.name} {s['fps']:.1f} fps, latency {s['latency_ms']:.0f} ms (p95 {s['latency_p95_ms']:.0f}), "
                         f"faces {s['faces']}, events {s['events']}, cascade on {s['cascade_share']:.0%} of frames")
        p = self.publisher
        mqtt_state = (f"mqtt {'connected' if p.connected else 'DISCONNECTED'}, queue {p.queued()}, "
                      f"dropped {p.dropped}")
        line = "; ".join(parts) + " | " + mqtt_state
        log.info("status: %s", line)
        sdnotify.status(line[:200])

    def reload(self) -> None:
        """SIGHUP: re-read the config file and the gallery; a bad new config keeps the old one."""
        if not self.cfg.path:
            log.warning("SIGHUP: no config file to reload")
            return
        sdnotify.reloading()
        try:
            new = load(self.cfg.path)
            if not new.cameras:
                raise ConfigError(f"{self.cfg.path}: cameras: at least one camera is required")
        except ConfigError as e:
            log.error("SIGHUP: %s; keeping the running config", e)
            sdnotify.ready()
            return
        old = self.cfg
        log.info("SIGHUP: reloading %s", new.path)
        setup_logging(new.log_level)
        self._stop_cameras(time.monotonic() + 2.0)
        try:
            if (new.model, new.recognition) != (old.model, old.recognition):
                self.embedder = self._load_embedder(new)
            if new.gallery != old.gallery or new.model != old.model:
                gallery = self._open_gallery(new.gallery)
                self.gallery.close()
                self.gallery = gallery
        except Exception as e:
            log.error("SIGHUP: %s; keeping the previous model and gallery", e)
            new.model, new.recognition, new.gallery = old.model, old.recognition, old.gallery
        self.cfg = new
        if new.mqtt != old.mqtt or [c.name for c in new.cameras] != [c.name for c in old.cameras]:
            self.publisher.close(timeout=0.5)
            self.publisher = Publisher(new.mqtt, [c.name for c in new.cameras])
            self.publisher.start()
        self._reload_matcher("reloaded on SIGHUP")
        self._build_cameras()
        sdnotify.ready()

    def shutdown(self) -> None:
        """Publish offline, disconnect, let go of cameras; bounded by STOP_BUDGET_S."""
        sdnotify.stopping()
        deadline = time.monotonic() + STOP_BUDGET_S
        self._stop_cameras(deadline - 0.6)
        if self.publisher is not None:
            left = self.publisher.queued()
            if left:
                log.warning("MQTT: %d queued message(s) not delivered (broker away at shutdown)", left)
            self.publisher.close(timeout=max(0.1, deadline - time.monotonic()))
        if self.gallery is not None:
            self.gallery.close()
        log.info("stopped")


def setup_logging(level: str) -> None:
    """The config's log_level, unless `edgeface -v` already asked for debug output."""
    root = logging.getLogger()
    if not root.handlers:  # `python -m edgeface` configures it; library use may not
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if root.level == logging.DEBUG:
        return
    logging.getLogger("edgeface").setLevel(level)
    root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(level)))


def main_run(config_path: str) -> int:
    """`edgeface run --config FILE`: returns the process exit status."""
    try:
        cfg = load(config_path)
        if not cfg.cameras:
            raise ConfigError(f"{config_path}: cameras: at least one camera is required")
    except ConfigError as e:
        print(f"edgeface: {e}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(cfg.log_level)
    daemon = Daemon(cfg)

    def on_stop(signum, frame):
        log.info("%s: stopping", signal.Signals(signum).name)
        daemon.stop_event.set()

    def on_hup(signum, frame):
        daemon.reload_event.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)

    from edgeface.embed import ModelError
    from edgeface.gallery import GalleryError

    try:
        daemon.start()
    except (ModelError, GalleryError, OSError) as e:
        print(f"edgeface: {e}", file=sys.stderr)
        daemon.shutdown()
        return EXIT_FAIL
    try:
        rc = daemon.run()
    finally:
        daemon.shutdown()
    return rc
