"""The face check on chips that match nobody: real faces pass, pictures of other things do not."""
import pytest
from faces import astronaut_bgr, chip_windows, turned
from skimage import data

from edgeface.config import Config
from edgeface.recognition.pipeline import build_recognizer
from edgeface.vision.detect import ChipFaceCheck


@pytest.fixture(scope="module")
def check():
    return ChipFaceCheck()


def test_a_real_face_passes_at_every_roll(check):
    recognizer = build_recognizer(Config())
    for roll in (-40, -20, 0, 20, 40):
        image = turned(astronaut_bgr(), roll)
        chips = recognizer.chips(image, recognizer.find(image))
        assert len(chips) == 1 and check(chips[0]), roll


@pytest.mark.parametrize("picture", ["coffee", "brick", "grass", "gravel", "rocket"])
def test_textures_and_things_do_not_pass(check, picture):
    assert not any(check(chip) for chip in chip_windows(getattr(data, picture)()))


def test_a_cat_rarely_passes(check):
    passed = [check(chip) for chip in chip_windows(data.chelsea())]
    assert sum(passed) / len(passed) < 0.1  # measured: 2 of 62 windows (its face, close up)
