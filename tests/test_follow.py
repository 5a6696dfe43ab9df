"""Following a tracked face by its look (vision.follow) where the cascade misses it, and keeping a face
the second opinion narrowly rejects once it stays put (vision.persist)."""
import numpy as np
import pytest
from faces import astronaut_bgr
from running import shipped_model

from edgeface.config import TrackingConfig
from edgeface.recognition.pipeline import FramePipeline
from edgeface.recognition.track import Tracker
from edgeface.vision.detect import Candidate, Detection, HaarDetector
from edgeface.vision.follow import cut_template, follow
from edgeface.vision.persist import Persistence

needs_model = pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")


@pytest.fixture(scope="module")
def found():
    """The astronaut, the detector and her face as the cascade finds it."""
    detector = HaarDetector()
    image = astronaut_bgr()
    (face,) = detector.detect(image)
    return image, detector, face


def eyes_covered(image: np.ndarray, face: Detection) -> np.ndarray:
    """The picture with a dark band across the eyes: the cascade no longer finds the face."""
    out = image.copy()
    x, y, s = int(face.cx), int(face.cy), int(face.size)
    out[y - int(0.3 * s):y - int(0.1 * s), x - s // 2:x + s // 2] = 40
    return out


def test_a_moved_face_is_followed_to_where_it_went(found):
    image, detector, face = found
    prep = detector.prepare(image)
    template = cut_template(prep.grey, prep.scale, face, 0.0)
    moved = np.roll(image, (7, -9), (0, 1))
    prep = detector.prepare(moved)
    where, score = follow(prep.grey, prep.scale, template, face, 0.6)
    assert where is not None and where.followed and score > 0.9
    assert (where.cx, where.cy) == pytest.approx((face.cx - 9, face.cy + 7), abs=2.0)
    assert where.size == pytest.approx(face.size, rel=0.1) and where.angle == face.angle


def test_nothing_is_followed_onto_a_picture_without_the_face(found):
    image, detector, face = found
    prep = detector.prepare(image)
    template = cut_template(prep.grey, prep.scale, face, 0.0)
    noise = np.random.default_rng(0).integers(0, 256, image.shape, np.uint8)
    prep = detector.prepare(noise)
    where, score = follow(prep.grey, prep.scale, template, face, 0.6)
    assert where is None and score < 0.3


def test_a_face_reaching_past_the_picture_leaves_no_template(found):
    image, detector, face = found
    prep = detector.prepare(image)
    edge = Detection(5.0, 100.0, 60.0, 0.0, 10.0)
    assert cut_template(prep.grey, prep.scale, edge, 0.0) is None


def test_a_followed_detection_continues_its_track_and_never_starts_one():
    tracker = Tracker(TrackingConfig())
    face = Detection(100.0, 100.0, 60.0, 0.0, 10.0)
    (track,) = tracker.update([face], 0.0)
    followed = Detection(104.0, 101.0, 60.0, 0.0, 0.0, followed=True)
    elsewhere = Detection(400.0, 300.0, 60.0, 0.0, 0.0, followed=True)
    assert tracker.update([followed, elsewhere], 0.1) == [track]
    assert track.detection is followed and track.missed == 0 and len(tracker.tracks) == 1


@needs_model
def test_a_face_the_cascade_loses_is_followed_without_chips_and_only_for_follow_s(recognizer, found):
    image, detector, face = found
    hidden = eyes_covered(image, face)
    assert detector.detect(hidden) == []  # the cascade cannot find it any more
    pipeline = FramePipeline(recognizer, Tracker(TrackingConfig(follow_s=0.5, max_missed=0.3)))
    fps = 10.0
    for k in range(4):
        pipeline.process(image, k / fps)
    (track,) = pipeline.tracker.tracks
    embedded = track.last_embedded
    seen = []
    for k in range(4, 16):
        result = pipeline.process(hidden, k / fps)
        seen.append([(tr.id, tr.detection.followed) for tr, match in result.faces])
        assert all(match is None for _, match in result.faces)  # a followed face gives no chip
    assert track.last_embedded == embedded
    # followed for follow_s after the cascade's last sighting (frames 4-8), then lost; the track
    # ends max_missed later
    assert seen[:5] == [[(track.id, True)]] * 5 and seen[6:] == [[]] * 6
    assert pipeline.tracker.tracks == []


def weak(cx: float, second: int = 5, angle: float = 0.0, profile: bool = False) -> Candidate:
    return Candidate(Detection(cx, 100.0, 50.0, angle, 6.0, profile=profile), second=second)


def test_a_weak_face_is_kept_once_seen_at_the_same_place_on_enough_frames():
    rule = Persistence(frames=3, window=6, min_second=4)
    assert rule.confirmed(1, [weak(100)]) == []
    assert rule.confirmed(3, [weak(104)]) == []  # seen twice
    third = weak(108)
    assert rule.confirmed(5, [third]) == [third]
    assert rule.confirmed(12, [weak(110)]) == []  # the earlier sightings are out of the window


@pytest.mark.parametrize("other", [weak(300), weak(100, second=3), weak(100, angle=40.0), weak(100, profile=True)])
def test_a_face_elsewhere_too_weak_turned_or_profile_is_not_kept_by_persistence(other):
    rule = Persistence(frames=3, window=6, min_second=4)
    rule.confirmed(1, [weak(100)])
    rule.confirmed(2, [weak(100)])
    assert rule.confirmed(3, [other]) == []


def test_persistence_off_keeps_nothing():
    rule = Persistence(frames=0, window=6, min_second=4)
    for frame in range(6):
        assert rule.confirmed(frame, [weak(100)]) == []
