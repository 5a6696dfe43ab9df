"""The tracker on real faces: two people standing close are two tracks, two events (the rule that
a second box on a tracked face starts no track must not merge neighbours)."""
import numpy as np
import pytest
from faces import FACE_BOX, astronaut_bgr
from running import shipped_model

from edgeface.config import TrackingConfig
from edgeface.recognition.pipeline import FramePipeline
from edgeface.recognition.track import Tracker

needs_model = pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")


def side_by_side(step: int) -> np.ndarray:
    """A 640x480 frame with the astronaut's head twice, face centres ``step`` pixels apart."""
    x, y, w, h = FACE_BOX
    head = astronaut_bgr()[y - 40:y + h + 50, x - 30:x + w + 30]
    frame = np.full((480, 640, 3), 110, np.uint8)
    left = 320 - step // 2 - (w // 2 + 30)
    for k, flip in ((0, False), (1, True)):  # the second one mirrored: a face turned the other way
        x0 = left + k * step
        frame[150:150 + head.shape[0], x0:x0 + head.shape[1]] = head[:, ::-1] if flip else head
    return frame


@needs_model
@pytest.mark.parametrize("step", [100, 115])
def test_two_faces_standing_close_are_two_tracks_and_two_events(recognizer, step):
    pipeline = FramePipeline(recognizer, Tracker(TrackingConfig(vote_count=3)))
    frame = side_by_side(step)
    events, ids = [], set()
    for k in range(8):
        result = pipeline.process(frame, k * 0.1)
        events += result.events
        ids |= {track.id for track, _ in result.faces}
    assert len(ids) == 2 and len(events) == 2, (ids, events)
    centres = sorted(track.detection.cx for track in pipeline.tracker.tracks)
    assert centres[1] - centres[0] == pytest.approx(step, abs=0.25 * step)
