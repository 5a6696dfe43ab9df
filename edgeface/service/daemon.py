"""The daemon: cameras in, identities out over MQTT, for as long as the service runs.

Threads: one reader per camera (edgeface.service.source), one worker per camera
(edgeface.service.worker) running the shared FramePipeline code on the reader's newest frame,
paho's network thread, and the main thread, which owns signals, the gallery poll, the status
line, the systemd watchdog and every swap of the workers' parts.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeface import exitcodes
from edgeface.config import Config, ConfigError, load
from edgeface.fleet.sync import FleetError, FleetSync, read_key
from edgeface.mqtt.diagnostics import DeviceProbe, camera_values, device_values
from edgeface.mqtt.presence import Presence
from edgeface.mqtt.publish import Publisher
from edgeface.recognition.embed import Embedder, ModelSpec
from edgeface.recognition.embed_openvino import OpenVinoEmbedder
from edgeface.recognition.match import Matcher
from edgeface.recognition.pipeline import (
    FramePipeline,
    build_frame_pipeline,
    build_recognizer,
    load_embedder,
    load_matcher,
)
from edgeface.service import sdnotify
from edgeface.service.source import CameraReader, describe
from edgeface.service.worker import CameraWorker, WorkerParts
from edgeface.store.events import EventStore, events_folder
from edgeface.store.gallery import Gallery, GalleryError
from edgeface.store.visitors import VisitorBook, visitors_path

log = logging.getLogger("edgeface.service.daemon")

HEARTBEAT_STALE_S = 20.0  # a worker silent this long is stuck: stop feeding the systemd watchdog
STOP_BUDGET_S = 1.5  # SIGTERM to exit, of the 2 s promised


class SharedEmbedder:
    """One Embedder (one TFLite interpreter) used by every camera's worker, one batch at a time."""

    def __init__(self, embedder: Embedder | OpenVinoEmbedder):
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def spec(self) -> ModelSpec:
        return self._embedder.spec

    @property
    def delegate(self) -> str:
        return self._embedder.delegate

    @property
    def runtime(self) -> str:
        return self._embedder.runtime

    @property
    def device(self) -> str:
        return self._embedder.device

    def embed(self, chips: np.ndarray) -> np.ndarray:
        with self._lock:  # a TFLite interpreter is not re-entrant
            return self._embedder.embed(chips)


def _embedder_settings(cfg: Config) -> tuple:
    """What the TFLite interpreter is built from: a change here loads a new one."""
    r = cfg.recognition
    return (cfg.model, r.runtime, r.device, r.num_threads, r.delegate, r.delegate_options, r.strict)


def _camera_settings(cfg: Config) -> tuple:
    """What each camera's reader and pipeline are built from: a change here rebuilds the cameras."""
    return (cfg.cameras, cfg.detection, cfg.tracking, cfg.recognition.align, cfg.mqtt.snapshot)


@dataclass
class ReloadPlan:
    """Everything a reload changes, built in full before anything running is touched, so that a
    reload applies completely or not at all. Fields left None keep what is running."""

    cfg: Config
    embedder: SharedEmbedder | None = None  # the model or its runtime settings changed
    gallery: Gallery | None = None  # the gallery path or the model changed
    gallery_missing: bool = False  # ... and the new path does not exist (yet)
    matcher: Matcher | None = None  # always rebuilt: cheap, and the threshold may have changed
    publisher: Publisher | None = None  # mqtt settings or camera names changed (not started yet)
    cameras: list[tuple[CameraReader, FramePipeline]] | None = None  # not started yet
    fleet_changed: bool = False  # fleet or mqtt settings changed: reconnect the fleet sync

    def discard(self) -> None:
        """Let go of what was built for a reload that will not happen."""
        if self.gallery is not None:
            self.gallery.close()
        if self.publisher is not None:
            self.publisher.close(timeout=0.1)

    def changes(self) -> str:
        parts = [name for name, value in (("model", self.embedder), ("gallery", self.gallery or self.gallery_missing),
                                          ("mqtt", self.publisher), ("cameras", self.cameras)) if value]
        return ", ".join(parts) or "matching settings only"


class Daemon:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.embedder: SharedEmbedder | None = None
        self.gallery: Gallery | None = None  # None while cfg.gallery does not exist
        self.gallery_version: int | None = None
        self.matcher: Matcher | None = None
        self.publisher: Publisher | None = None
        self.presence = Presence(cfg.home.presence_timeout, cfg.home.unknown_timeout)
        self.events = _event_store(cfg)  # None unless events.keep_crops
        self.fleet: FleetSync | None = None  # with fleet.name: gallery sync with the other devices
        self.last_fleet_sync: float | None = None  # wall clock (shown in Home Assistant)
        self.probe = DeviceProbe()  # CPU and SoC temperature for the diagnostics
        self.readers: list[CameraReader] = []
        self.workers: list[CameraWorker] = []
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()

    # -- building ------------------------------------------------------------------------
    def _use_embedder(self, embedder: SharedEmbedder) -> None:
        self.embedder = embedder
        log.info("model %s (%s, %s %s)", embedder.spec.path, embedder.spec.model_id[:12], embedder.runtime,
                 embedder.device)

    @staticmethod
    def _open_gallery(path: str, spec: ModelSpec) -> Gallery | None:
        """The gallery at ``path``, checked against the model; None (and a warning) while the file
        does not exist: a typo in the path must not quietly make a new, empty gallery."""
        if not Path(path).exists():
            log.warning("gallery %s does not exist: every face is unknown until it appears "
                        "(enrol someone: EDGEFACE_GALLERY=%s edgeface enroll NAME PHOTO...)", path, path)
            return None
        gallery = Gallery(path, create=False)
        try:
            gallery.check_model(spec.model_id)
        except GalleryError:
            gallery.close()
            raise
        return gallery

    def _gallery_matcher(self) -> Matcher:
        """The running gallery's matcher, for the running model and threshold."""
        assert self.embedder is not None
        return load_matcher(self.gallery, self.embedder.spec, self.cfg.recognition)

    def _use_matcher(self, matcher: Matcher, reason: str) -> None:
        self.matcher = matcher
        # A gallery file that is missing (a mistyped path, at start or on a reload) names nobody, but the
        # people's presence entities stay, with what the user set on them in Home Assistant: nobody
        # known is removed, and no entity left from an earlier run is judged stale, until it is there.
        names = matcher.people if self.gallery is not None else self.presence.people
        if self.publisher is not None:
            self.publisher.gallery_missing = self.gallery is None
            self.publisher.publish_presence(self.presence.set_people(names))
        else:
            self.presence.set_people(names)  # published with everyone's state once MQTT is set up
        self._swap_worker_parts()
        if self.gallery is None:
            return
        self.gallery_version = self.gallery.version()
        if self.events is not None:  # crops follow renames and go with removals, the fleet's included
            try:
                self.events.follow(self.gallery.identities())
            except Exception as e:
                log.error("events: cannot bring the kept crops up to date with the gallery: %s", e)
        people = self.gallery.people()
        log.info("gallery %s: %d people, %d faces (%s)", self.gallery.path, len(people),
                 sum(p.embeddings for p in people), reason)
        if not people:
            log.warning("gallery %s is empty: every face is unknown until someone is enrolled", self.gallery.path)

    def _build_cameras(self, cfg: Config, embedder: SharedEmbedder,
                       matcher: Matcher) -> list[tuple[CameraReader, FramePipeline]]:
        """Readers and pipelines for cfg's cameras, not started: building fails (a cascade file
        that is missing, say) before anything running is stopped."""
        return [(CameraReader(cam), build_frame_pipeline(cfg, build_recognizer(cfg, embedder=embedder,
                                                                                matcher=matcher)))
                for cam in cfg.cameras]

    def _visitor_book(self) -> VisitorBook | None:
        """Visitors beside the gallery, aging out with events.max_age (store.visitors)."""
        if self.embedder is None:
            return None
        return VisitorBook(visitors_path(self.cfg.gallery), self.cfg.events.max_age, self.embedder.spec.model_id)

    def _worker_parts(self) -> WorkerParts:
        assert self.publisher is not None and self.matcher is not None
        return WorkerParts(self.publisher, self.presence, self.events, self.matcher, self._visitor_book())

    def _swap_worker_parts(self) -> None:
        """The one place running workers get new parts (publisher, event store, matcher)."""
        if self.workers:
            parts = self._worker_parts()
            for w in self.workers:
                w.use(parts)

    def _start_cameras(self, cameras: list[tuple[CameraReader, FramePipeline]]) -> None:
        parts = self._worker_parts()
        for reader, pipeline in cameras:
            self.readers.append(reader)
            self.workers.append(CameraWorker(reader.name, reader, pipeline, parts, self.cfg.mqtt.snapshot))
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
        self._use_embedder(SharedEmbedder(load_embedder(self.cfg)))
        assert self.embedder is not None
        if self.cfg.fleet.name:  # the fleet fills the gallery: make it if it is not there yet
            Gallery(self.cfg.gallery).close()
        self.gallery = self._open_gallery(self.cfg.gallery, self.embedder.spec)
        self._use_matcher(self._gallery_matcher(), "loaded")
        assert self.matcher is not None
        cameras = self._build_cameras(self.cfg, self.embedder, self.matcher)
        self._start_publisher(_new_publisher(self.cfg))
        self._start_fleet()
        self._start_cameras(cameras)

    def _start_publisher(self, publisher: Publisher) -> None:
        """Make `publisher` the running one: everyone's presence queued first, then connect."""
        if self.publisher is not None:
            self.publisher.close(timeout=0.5)
        self.publisher = publisher
        self.presence.configure(self.cfg.home.presence_timeout, self.cfg.home.unknown_timeout)
        publisher.gallery_missing = self.gallery is None
        publisher.publish_presence(self.presence.states())
        publisher.start()

    def _start_fleet(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        if self.cfg.fleet.name and self.publisher is not None and self.embedder is not None:
            self.fleet = FleetSync(self.cfg.fleet, self.cfg.mqtt, self.embedder.spec.model_id, self.publisher.client_id)

    def _sync_fleet(self) -> None:
        if self.fleet is None or self.gallery is None:
            return
        try:
            self.fleet.step(self.gallery)
            self.last_fleet_sync = time.time()
        except Exception as e:  # the broker or the gallery file in trouble: try again next poll
            log.warning("fleet: sync failed (%s); trying again", e)

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
            if self.publisher is not None:
                self.publisher.publish_presence(self.presence.expire(time.monotonic()))
            if now >= next_poll:
                next_poll = now + self.cfg.gallery_poll_interval
                self._sync_fleet()
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
                    return exitcodes.FAIL
        return exitcodes.OK

    def _poll_gallery(self) -> None:
        assert self.embedder is not None
        try:
            if self.gallery is None:
                if Path(self.cfg.gallery).exists():
                    self.gallery = self._open_gallery(self.cfg.gallery, self.embedder.spec)
                    self._use_matcher(self._gallery_matcher(), "appeared")
            elif self.gallery.version() != self.gallery_version:
                self._use_matcher(self._gallery_matcher(), "changed on disk")
        except Exception as e:  # a locked or half-written gallery: keep the old one, try again next poll
            log.warning("gallery %s: cannot reload (%s); keeping the previous one", self.cfg.gallery, e)

    def log_status(self) -> None:
        parts, diagnostics = [], {}
        for w in self.workers:
            s = w.take_stats()
            diagnostics[w.name] = camera_values(s, w.reader.frames_skipped)
            parts.append(f"{w.name} {s['fps']:.1f} fps, latency {s['latency_ms']:.0f} ms "
                         f"(p95 {s['latency_p95_ms']:.0f}), faces {s['faces']}, events {s['events']}, "
                         f"cascade on {s['cascade_share']:.0%} of frames, "
                         f"budget out on {s['budget_out_share']:.0%}")
        p = self.publisher
        assert p is not None
        mqtt_state = (f"mqtt {'connected' if p.connected else 'DISCONNECTED'}, queue {p.queued()}, "
                      f"dropped {p.dropped}")
        line = "; ".join(parts) + " | " + mqtt_state
        if self.gallery is None:
            line += f" | gallery MISSING ({self.cfg.gallery}): everyone unknown"
        elif self.matcher is not None and len(self.matcher) == 0:
            line += " | gallery EMPTY: everyone unknown"
        log.info("status: %s", line)
        sdnotify.status(line[:200])
        m = self.matcher
        p.publish_diagnostics(diagnostics, device_values(self.probe, len(m.people) if m else 0,
                                                         len(m.names) if m else 0, self.last_fleet_sync))

    # -- reloading -----------------------------------------------------------------------
    def reload(self) -> None:
        """SIGHUP: re-read the config file and the gallery. A reload applies completely or changes
        nothing; only what changed is rebuilt; no reload ever ends the daemon."""
        if not self.cfg.path:
            log.warning("SIGHUP: no config file to reload")
            return
        sdnotify.reloading()
        try:
            plan = self._plan_reload(self.cfg.path)
        except Exception as e:  # a bad file, a model the gallery refuses, a missing TLS file...
            log.error("SIGHUP: %s; keeping the running config", e)
        else:
            log.info("SIGHUP: reloading %s (%s)", plan.cfg.path, plan.changes())
            self._apply(plan)
        sdnotify.ready()

    def _plan_reload(self, path: str) -> ReloadPlan:
        new = load_daemon_config(path)
        old = self.cfg
        plan = ReloadPlan(new)
        try:
            if _embedder_settings(new) != _embedder_settings(old):
                plan.embedder = SharedEmbedder(load_embedder(new))
            embedder = plan.embedder or self.embedder
            assert embedder is not None
            gallery = self.gallery
            if plan.embedder is not None or new.gallery != old.gallery:
                gallery = plan.gallery = self._open_gallery(new.gallery, embedder.spec)
                plan.gallery_missing = gallery is None
            plan.matcher = load_matcher(gallery, embedder.spec, new.recognition)
            plan.fleet_changed = new.fleet != old.fleet or new.mqtt != old.mqtt or plan.embedder is not None \
                or (self.fleet is not None and self.fleet.key_changed())  # a rotated key, same path
            if new.mqtt != old.mqtt or new.home != old.home or bool(new.fleet.name) != bool(old.fleet.name) \
                    or [c.name for c in new.cameras] != [c.name for c in old.cameras]:
                plan.publisher = _new_publisher(new)
            if plan.embedder is not None or _camera_settings(new) != _camera_settings(old):
                plan.cameras = self._build_cameras(new, embedder, plan.matcher)
        except BaseException:
            plan.discard()
            raise
        return plan

    def _apply(self, plan: ReloadPlan) -> None:
        """Swap in what the plan built; nothing here can fail on the user's input."""
        setup_logging(plan.cfg.log_level)
        if plan.cameras is not None:
            self._stop_cameras(time.monotonic() + 2.0)
        self.cfg = plan.cfg
        self.events = _event_store(self.cfg)
        if plan.embedder is not None:
            self._use_embedder(plan.embedder)
        if plan.gallery is not None or plan.gallery_missing:
            if self.gallery is not None:
                self.gallery.close()
            self.gallery = plan.gallery
        if plan.publisher is not None:
            self._start_publisher(plan.publisher)
        assert plan.matcher is not None
        self._use_matcher(plan.matcher, "reloaded on SIGHUP")  # hands the workers their new parts
        if plan.cameras is not None:
            self._start_cameras(plan.cameras)
        if plan.fleet_changed:
            self._start_fleet()

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
        if self.fleet is not None:
            self.fleet.close()
        if self.gallery is not None:
            self.gallery.close()
        log.info("stopped")


def _new_publisher(cfg: Config) -> Publisher:
    """Not started: Daemon._start_publisher starts it."""
    return Publisher(cfg.mqtt, [c.name for c in cfg.cameras], home=cfg.home, fleet=bool(cfg.fleet.name))


def _event_store(cfg: Config) -> EventStore | None:
    e = cfg.events
    return EventStore(events_folder(e, cfg.gallery), e.max_count, e.max_age) if e.keep_crops else None


def load_daemon_config(path: str) -> Config:
    """A config the daemon can run (load() plus: it names at least one camera); raises ConfigError."""
    cfg = load(path)
    if not cfg.cameras:
        raise ConfigError(f"{path}: cameras: at least one camera is required")
    if cfg.fleet.name and cfg.fleet.key_file:
        try:
            read_key(cfg.fleet.key_file)
        except FleetError as e:
            raise ConfigError(f"{path}: {e}") from None
    return cfg


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
        cfg = load_daemon_config(config_path)
    except ConfigError as e:
        print(f"edgeface: {e}", file=sys.stderr)
        return exitcodes.USAGE
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

    from edgeface.recognition.embed import ModelError
    from edgeface.store.gallery import GalleryError

    try:
        daemon.start()
    except (ModelError, GalleryError, OSError, ValueError) as e:  # ValueError: a cascade OpenCV cannot load
        print(f"edgeface: {e}", file=sys.stderr)
        daemon.shutdown()
        return exitcodes.FAIL
    try:
        rc = daemon.run()
    finally:
        daemon.shutdown()
    return rc
