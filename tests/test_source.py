"""Camera readers: files paced and looped, newest frame only, HTTP MJPEG, missing devices retried."""
import http.server
import logging
import threading
import time

import cv2
import numpy as np
import pytest

from edgeface.config import CameraConfig
from edgeface.service.source import CameraReader, describe, is_file_source


def write_clip(path, frames=20, fps=20.0, size=(160, 120)):
    """Each frame is a flat grey whose level encodes its index (robust to JPEG)."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for k in range(frames):
        vw.write(np.full((size[1], size[0], 3), 10 + 5 * k, np.uint8))
    vw.release()
    return str(path)


def frame_index(frame) -> int:
    return int(round((float(frame.image.mean()) - 10) / 5))


def drain(reader, limit_s=30.0):
    """Every frame handed out until the file ends."""
    got = []
    end = time.monotonic() + limit_s
    while time.monotonic() < end and not reader.finished:
        f = reader.next_frame(0.2)
        if f is not None:
            got.append(f)
    return got


def test_file_is_read_at_its_own_pace_then_finishes(tmp_path):
    clip = write_clip(tmp_path / "c.avi", frames=20, fps=20.0)
    reader = CameraReader(CameraConfig("c", clip)).start()
    got = drain(reader)
    reader.stop()
    idx = [frame_index(f) for f in got]
    assert idx == sorted(idx) and idx[-1] == 19 and len(idx) >= 10  # in order; a slow consumer may skip some
    span = got[-1].mono - got[0].mono
    assert span >= 0.8 * (idx[-1] - idx[0]) / 20.0  # not faster than the clip's own 20 fps
    assert [f.seq for f in got] == sorted({f.seq for f in got})


def test_slow_consumer_gets_the_newest_frame_not_a_backlog(tmp_path):
    clip = write_clip(tmp_path / "c.avi", frames=40, fps=40.0)
    reader = CameraReader(CameraConfig("c", clip)).start()
    first = reader.next_frame(10)
    time.sleep(0.5)  # ~20 frames pass meanwhile
    second = reader.next_frame(10)
    reader.stop()
    assert frame_index(second) - frame_index(first) >= 8  # skipped ahead (~20 frames): latency never grows
    assert reader.frames_skipped >= 5


def test_fps_cap_and_loop(tmp_path):
    clip = write_clip(tmp_path / "c.avi", frames=10, fps=40.0)
    reader = CameraReader(CameraConfig("c", clip, loop=True, fps=10.0)).start()
    got = []
    end = time.monotonic() + 1.6
    while time.monotonic() < end:
        f = reader.next_frame(0.2)
        if f is not None:
            got.append(frame_index(f))
    reader.stop()
    assert not reader.finished or reader._done  # stopped by us, not by the end of the file
    assert 5 <= len(got) <= 20  # about 10 fps, not 40
    assert any(b < a for a, b in zip(got, got[1:]))  # came round again


def test_missing_camera_is_retried_with_backoff_and_logged_once_per_step(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edgeface.service.source")
    reader = CameraReader(CameraConfig("gone", str(tmp_path / "later.avi")), backoff_initial=0.05, backoff_max=0.2)
    reader.start()
    time.sleep(1.2)
    assert reader.failures >= 5 and not reader.finished
    lines = [r.getMessage() for r in caplog.records if "camera gone" in r.getMessage()]
    assert 2 <= len(lines) <= 4, lines  # 0.05, 0.1, 0.2 (cap): one line per step, not per attempt
    # the file appears: the reader picks it up without anyone restarting it
    write_clip(tmp_path / "later.avi", frames=5, fps=20.0)
    assert reader.next_frame(10) is not None
    reader.stop()


def test_missing_video_device_keeps_retrying():
    reader = CameraReader(CameraConfig("usb", "/dev/video97"), backoff_initial=0.05, backoff_max=0.1).start()
    assert reader.next_frame(0.5) is None
    assert reader.failures >= 2 and not reader.finished
    reader.stop()
    assert not is_file_source("/dev/video97")


class MjpegHandler(http.server.BaseHTTPRequestHandler):
    frames_sent = 0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        k = 0
        try:
            while not self.server.stopping.is_set():
                img = np.zeros((120, 160, 3), np.uint8)
                img[:, :, 2] = 200  # red in BGR
                cv2.putText(img, str(k), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
                jpeg = cv2.imencode(".jpg", img)[1].tobytes()
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                 + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                k += 1
                type(self).frames_sent = k
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def mjpeg_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MjpegHandler)
    server.daemon_threads = True
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    server.stopping.set()
    server.shutdown()
    server.server_close()


def test_http_mjpeg_stream_is_read(mjpeg_server):
    reader = CameraReader(CameraConfig("web", mjpeg_server)).start()
    frames = []
    end = time.monotonic() + 20
    while len(frames) < 5 and time.monotonic() < end:
        f = reader.next_frame(1.0)
        if f is not None:
            frames.append(f)
    reader.stop()
    assert len(frames) == 5
    img = frames[-1].image
    assert img.shape == (120, 160, 3)
    b, g, r = (float(img[..., c].mean()) for c in range(3))
    assert r > 150 and r > b + 100  # the red frames the server drew


def test_stream_credentials_are_not_logged():
    assert describe("rtsp://admin:pw@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    assert describe(0) == "0"


def test_mjpeg_frames_arrive_undecoded_and_only_those_looked_at_are_decoded(tmp_path):
    clip = write_clip(tmp_path / "c.avi", frames=12, fps=40.0)
    got = drain(CameraReader(CameraConfig("c", clip)).start())
    assert len(got) >= 5 and all(not f.pixels.decoded for f in got)  # grabbed, never decoded
    looked = got[::3]
    assert [frame_index(f) for f in looked] == sorted(frame_index(f) for f in looked)
    assert sum(f.pixels.full_decodes for f in got) == len(looked)  # once each, the others not at all
    frame_index(looked[0])
    assert looked[0].pixels.full_decodes == 1


def test_frames_of_other_codecs_arrive_decoded(tmp_path):
    path = tmp_path / "c.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), 20.0, (160, 120))
    for k in range(6):
        vw.write(np.full((120, 160, 3), 10 + 5 * k, np.uint8))
    vw.release()
    got = drain(CameraReader(CameraConfig("c", str(path))).start())
    assert got and all(f.pixels.decoded for f in got)
