"""Camera readers: one thread per camera, holding only the newest frame.

A reader never queues frames: when recognition is slower than the camera, older frames are
overwritten, so latency stays one frame deep however long the daemon runs. Files are paced at
their own frame rate (a recorded clip behaves like a live camera) and can loop. When a device
is missing or a stream drops, the reader retries with exponential backoff (capped), logging
once per backoff step rather than once per attempt.

Sources that deliver JPEG (MJPEG files, HTTP MJPEG, a V4L2 camera in MJPEG mode) are read without
decoding: each frame stays compressed (edgeface.vision.pixels.FramePixels) until the pipeline looks
at it, so frames it skips cost no decode and the motion check decodes a small grey copy only.
Other codecs (H.264 over RTSP, most files) decode every frame: their frames depend on each other.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.config import CameraConfig
from edgeface.vision.pixels import FramePixels, is_jpeg

log = logging.getLogger(__name__)

OPEN_TIMEOUT_MS = 5000  # network streams: give up opening / reading after this long
READ_TIMEOUT_MS = 5000
DEFAULT_FILE_FPS = 25.0  # when a file does not say its rate


@dataclass
class Frame:
    pixels: FramePixels  # decoded on demand (JPEG sources) or already decoded
    t: float  # wall-clock capture time (time.time()), for event timestamps
    mono: float  # time.monotonic() at capture: latency, tracking and every schedule (never jumps)
    seq: int  # 1, 2, ... per reader

    @property
    def image(self) -> np.ndarray:
        """BGR uint8, decoded now if it was not yet."""
        return self.pixels.bgr()


def describe(source) -> str:
    # Never log credentials embedded in a stream URL (rtsp://user:pass@host/...).
    if isinstance(source, str) and "://" in source and "@" in source.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = source.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return str(source)


def is_file_source(source) -> bool:
    """A regular file (recorded clip), as opposed to a device or a network stream."""
    if not isinstance(source, str) or "://" in source:
        return False
    try:
        return stat.S_ISREG(os.stat(source).st_mode)
    except OSError:
        return not source.startswith("/dev/")  # missing file: still a file source, retried until it appears


def open_capture(source) -> cv2.VideoCapture:
    if isinstance(source, int):
        return cv2.VideoCapture(source, cv2.CAP_V4L2) if os.name == "posix" else cv2.VideoCapture(source)
    if isinstance(source, str) and source.startswith("/dev/video"):
        return cv2.VideoCapture(source, cv2.CAP_V4L2)
    if isinstance(source, str) and "://" in source:
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
    return cv2.VideoCapture(source)


def open_compressed(source) -> tuple[cv2.VideoCapture, bool]:
    """(capture, True) delivering each frame as its JPEG bytes when the source is JPEG-coded; else
    (an ordinary capture, False). Probed on the first frame, which the returned capture re-reads."""
    cap = open_capture(source)
    if not cap.isOpened():
        return cap, False
    raw = cap.set(cv2.CAP_PROP_FORMAT, -1)  # FFmpeg backend: packets as they come
    if isinstance(source, int) or (isinstance(source, str) and source.startswith("/dev/video")):
        raw = cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # V4L2: the driver's buffer (JPEG in MJPEG mode)
    if raw:
        ok, data = cap.read()
        if ok and data is not None and data.dtype == np.uint8 and is_jpeg(data.reshape(-1)):
            cap.release()
            cap = open_capture(source)
            cap.set(cv2.CAP_PROP_FORMAT, -1)
            if isinstance(source, int) or (isinstance(source, str) and source.startswith("/dev/video")):
                cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            return cap, True
    cap.release()
    return open_capture(source), False


def retrieve_pixels(cap: cv2.VideoCapture, jpeg: bool) -> FramePixels | None:
    """The grabbed frame: its JPEG bytes undecoded, or decoded pixels; None if none."""
    ok, data = cap.retrieve()
    if not ok or data is None:
        return None
    if jpeg:
        return FramePixels(jpeg=data.reshape(-1))
    return FramePixels(image=data)


class CameraReader:
    """Reads one camera in a background thread; `next_frame()` hands out the newest frame."""

    def __init__(self, cam: CameraConfig, backoff_initial: float = 1.0, backoff_max: float = 30.0):
        self.cam = cam
        self.name = cam.name
        self.is_file = is_file_source(cam.source)
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken_seq = 0
        self._stop = threading.Event()
        self._done = False  # a file without loop reached its end
        self.frames_read = 0  # frames kept (after the fps cap)
        self.frames_skipped = 0  # overwritten before anyone took them
        self.failures = 0  # failed opens / dropped streams since start
        self.connected = False
        self._last_kept = -1e9  # when the last frame was kept: the fps cap holds across a loop's restart
        self._thread = threading.Thread(target=self._run, name=f"camera-{cam.name}", daemon=True)

    # -- consumer side -------------------------------------------------------------------
    def start(self) -> CameraReader:
        self._thread.start()
        return self

    def next_frame(self, timeout: float = 0.5) -> Frame | None:
        """The newest frame not yet handed out, waiting up to `timeout`; None if none came."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq <= self._taken_seq:
                left = end - time.monotonic()
                if left <= 0 or self._done or self._stop.is_set():
                    return None
                self._cond.wait(left)
            self._taken_seq = self._latest.seq
            return self._latest

    @property
    def finished(self) -> bool:
        """True once a non-looping file has ended and its last frame was taken."""
        with self._cond:
            return self._done and (self._latest is None or self._latest.seq <= self._taken_seq)

    def request_stop(self) -> None:
        """Ask the thread to finish; returns at once (see stop() to wait for it)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 1.0) -> None:
        self.request_stop()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)  # a network read can block up to READ_TIMEOUT_MS; the thread is a daemon

    # -- reader thread -------------------------------------------------------------------
    def _put(self, image: FramePixels) -> None:
        with self._cond:
            seq = (self._latest.seq if self._latest else 0) + 1
            if self._latest is not None and self._latest.seq > self._taken_seq:
                self.frames_skipped += 1
            self._latest = Frame(image, time.time(), time.monotonic(), seq)
            self.frames_read += 1
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self.backoff_initial
        attempts = 0
        last_logged_delay = None
        while not self._stop.is_set():
            reason = self._read_session()
            if reason is None or self._stop.is_set():
                break  # finished file or stop requested
            if reason == "ok":  # it delivered frames before failing: start the backoff afresh
                delay, attempts, last_logged_delay = self.backoff_initial, 0, None
                continue
            self.failures += 1
            attempts += 1
            if delay != last_logged_delay:
                log.warning("camera %s: %s; retrying in %.0f s", self.name, reason, delay)
                last_logged_delay = delay
            elif attempts % 20 == 0:
                log.warning("camera %s: still failing after %d attempts (%s)", self.name, attempts, reason)
            if self._stop.wait(delay):
                break
            delay = min(self.backoff_max, delay * 2)
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def _read_session(self) -> str | None:
        """Open the source and read until it ends or fails.

        Returns None when a file finished (no loop), "ok" when a stream that delivered frames
        dropped (or a looping file restarts), or a failure reason for the backoff.
        """
        src = self.cam.source
        if self.is_file and isinstance(src, str) and not os.path.exists(src):
            return f"file {src} not found"
        cap, jpeg = open_compressed(src)
        try:
            if not cap.isOpened():
                return f"cannot open {describe(src)}"
            native = cap.get(cv2.CAP_PROP_FPS) or 0.0
            if self.is_file:
                # Pace a file at its own rate, as the camera that recorded it would deliver it.
                pace = native if 0 < native < 1000 else DEFAULT_FILE_FPS
            else:
                pace = None
            min_gap = 1.0 / self.cam.fps if self.cam.fps else 0.0
            if self.connected is False:
                log.info("camera %s: reading %s (%s%s%s)", self.name, describe(src),
                         f"file at {pace:g} fps" if pace else "live", ", JPEG decoded on demand" if jpeg else "",
                         f", capped at {self.cam.fps:g} fps" if self.cam.fps else "")
            self.connected = True
            start = time.monotonic()
            n = 0
            while not self._stop.is_set():
                if pace:
                    wait = start + n / pace - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return None
                now = time.monotonic()
                keep = now - self._last_kept >= min_gap * 0.999
                image = None
                ok = cap.grab()
                if ok and keep:
                    image = retrieve_pixels(cap, jpeg)
                    ok = image is not None
                if not ok:
                    if self.is_file and n > 0:
                        if self.cam.loop:
                            return "ok"
                        log.info("camera %s: end of %s after %d frames", self.name, describe(src), n)
                        return None
                    self.connected = False
                    if n > 0:
                        log.warning("camera %s: stream %s dropped after %d frames", self.name, describe(src), n)
                        return "ok"
                    return f"no frames from {describe(src)}"
                n += 1
                if keep and image is not None:
                    self._last_kept = now
                    self._put(image)
            return None
        finally:
            cap.release()
