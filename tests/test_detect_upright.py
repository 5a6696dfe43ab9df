"""The second frontal cascade (detection.upright_cascade): an upright pass of video sweeps only, its
faces kept on dlib's HOG opinion alone. To tell its faces from the first cascade's, the first is set to
OpenCV's cat-face cascade, which finds no face in the astronaut picture."""
import pytest
from faces import astronaut_bgr as astronaut_photo

from edgeface.config import DetectionConfig
from edgeface.vision.detect import UPRIGHT, HaarDetector, Scan

CAT = "haarcascade_frontalcatface.xml"


@pytest.fixture(scope="module")
def astronaut_bgr():
    return astronaut_photo()


def detector(**overrides) -> HaarDetector:
    return HaarDetector(DetectionConfig(cascade=CAT, profile_cascade="", **overrides))


def test_the_upright_pass_is_in_video_sweeps_only_once_at_roll_0():
    d = HaarDetector()
    assert not [s for s in d.sweep(None) if s.cascade == UPRIGHT]
    video = [s for s in d.sweep((0, 0, 200, 200), video=True) if s.cascade == UPRIGHT]
    assert video == [Scan((0, 0, 200, 200), 0.0, UPRIGHT)]
    assert not [s for s in HaarDetector(DetectionConfig(upright_cascade="")).sweep(None, video=True)
                if s.cascade == UPRIGHT]


def test_a_face_only_the_upright_cascade_finds_is_found_with_the_hog_opinion(astronaut_bgr):
    d = detector()
    assert d.detect(astronaut_bgr) == []  # stills: the first cascade alone, which finds no face here
    faces = d.search(astronaut_bgr, [Scan(None, 0.0, UPRIGHT)])
    assert len(faces) == 1
    # her face spans roughly x 170..280, y 60..170
    assert 200 < faces[0].cx < 250 and 90 < faces[0].cy < 140


@pytest.mark.parametrize("overrides", [{"hog_model": ""}, {"hog_min_score": 3.0}])
def test_a_face_only_the_upright_cascade_finds_is_dropped_without_hog_support(astronaut_bgr, overrides):
    """No HOG model, or a HOG score (1.5 here) under hog_min_score: its own cascade is the verifier
    too, so nothing else may vouch for it."""
    assert detector(**overrides).search(astronaut_bgr, [Scan(None, 0.0, UPRIGHT)]) == []


def test_an_unknown_upright_cascade_names_its_key():
    with pytest.raises(FileNotFoundError, match="detection.upright_cascade"):
        HaarDetector(DetectionConfig(upright_cascade="no_such_cascade.xml"))
