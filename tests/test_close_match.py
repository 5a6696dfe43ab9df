"""A match that only just clears its threshold names a face only when the chip passes the face check
(tracking.close_match_face_check): false faces (a punching bag beside a face on make_clip seed 7) crept
over a threshold; real faces' chips pass."""
import pytest
from faces import astronaut_bgr, chip_windows
from skimage import data

from edgeface.config import Config
from edgeface.recognition.match import Match
from edgeface.recognition.pipeline import build_frame_pipeline, build_recognizer
from edgeface.vision.detect import Detection


@pytest.fixture(scope="module")
def chips():
    recognizer = build_recognizer(Config())
    image = astronaut_bgr()
    face = recognizer.chips(image, recognizer.find(image))[0]
    brick = next(chip_windows(data.brick()))
    return recognizer, face, brick


def _pipeline(recognizer, **tracking):
    cfg = Config()
    for key, value in tracking.items():
        setattr(cfg.tracking, key, value)
    return build_frame_pipeline(cfg, recognizer)


def _track(pipeline):
    return pipeline.tracker.update([Detection(100.0, 100.0, 80.0, 0.0, 20.0)], 0.0)[0]


def _match(clearance, name="eileen"):
    return Match(name, 0.9 + clearance, name, clearance=clearance)


def test_a_close_match_names_a_real_face_and_confirms_it(chips):
    recognizer, face, _ = chips
    pipeline = _pipeline(recognizer)
    track = _track(pipeline)
    assert pipeline.checked_name(track, _match(0.002), face) == "eileen"
    assert track.face_confirmed


def test_a_close_match_on_something_else_names_nobody(chips):
    recognizer, _, brick = chips
    pipeline = _pipeline(recognizer)
    track = _track(pipeline)
    for clearance in (0.0, 0.005, 0.0099):
        assert pipeline.checked_name(track, _match(clearance), brick) is None
    assert not track.face_confirmed


def test_each_close_match_is_checked_on_its_own_chip(chips):
    """One chip of a false face that passed does not let the next close ones through."""
    recognizer, face, brick = chips
    pipeline = _pipeline(recognizer)
    track = _track(pipeline)
    assert pipeline.checked_name(track, _match(0.001), face) == "eileen"
    assert pipeline.checked_name(track, _match(0.001), brick) is None


def test_a_clear_match_or_the_rule_turned_off_is_not_checked(chips):
    recognizer, _, brick = chips
    pipeline = _pipeline(recognizer)
    assert pipeline.checked_name(_track(pipeline), _match(0.02), brick) == "eileen"
    off = _pipeline(recognizer, close_match_face_check=False)
    assert off.checked_name(_track(off), _match(0.0), brick) == "eileen"


def test_a_chip_that_matches_nobody_is_checked_for_the_unknown_event(chips):
    recognizer, face, brick = chips
    pipeline = _pipeline(recognizer)
    track = _track(pipeline)
    assert pipeline.checked_name(track, Match(None, 0.5, "eileen", "threshold", -0.4), brick) is None
    assert not track.face_confirmed
    assert pipeline.checked_name(track, Match(None, 0.5, "eileen", "threshold", -0.4), face) is None
    assert track.face_confirmed
