"""dlib's HOG face filters in numpy (edgeface.vision.hog), the converter that reads them out of dlib
(edgeface.convert.hog), and their use as the detector's last opinion."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from faces import astronaut_bgr
from skimage import data

from edgeface.config import DetectionConfig
from edgeface.config.paths import shipped_file
from edgeface.vision.detect import HaarDetector
from edgeface.vision.hog import HogFaceScore, fhog


@pytest.fixture(scope="module")
def hog():
    return HogFaceScore(shipped_file("hog_frontal.npz"))


def test_fhog_has_dlibs_shape_and_range():
    grey = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)[:100, :124]
    feats = fhog(grey)
    assert feats.shape == (int(100 / 8 + 0.5) - 2, int(124 / 8 + 0.5) - 2, 31)  # dlib rounds cells half up
    # each sensitive/insensitive feature is half a sum of four values truncated at 0.2
    assert feats.min() >= 0 and feats[..., :27].max() <= 0.4 + 1e-6
    assert fhog(np.full((64, 64), 128, np.uint8)).max() == 0  # no gradient, no feature


def test_a_face_scores_above_zero_and_texture_well_below(hog):
    img = astronaut_bgr()
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    face = HaarDetector(DetectionConfig(hog_model="")).detect(img)[0]
    assert hog(grey, face.cx, face.cy, face.size, face.angle) > 0.5
    assert hog(grey, face.cx, face.cy, face.size, 90.0) < -1.0  # the same face on its side is not upright
    rng = np.random.default_rng(0)
    for name in ("brick", "grass", "gravel", "coffee", "rocket"):
        im = getattr(data, name)()
        im = im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
        scores = [hog(im, rng.uniform(40, im.shape[1] - 40), rng.uniform(40, im.shape[0] - 40), rng.uniform(30, 120), 0.0)
                  for _ in range(30)]
        assert max(scores) < DetectionConfig().hog_min_score, name


def test_the_converter_reads_the_shipped_filters_out_of_dlib(tmp_path: Path):
    pytest.importorskip("dlib")
    from edgeface.convert.hog import main

    out = tmp_path / "hog.npz"
    assert main(["--out", str(out)]) == 0
    with np.load(out) as new, np.load(shipped_file("hog_frontal.npz")) as shipped:
        assert new["filters"].shape == (5, 10, 10, 31)
        np.testing.assert_array_equal(new["filters"], shipped["filters"])
        np.testing.assert_array_equal(new["thresholds"], shipped["thresholds"])


def test_a_truncated_detector_is_refused_with_its_offset():
    pytest.importorskip("dlib")
    from edgeface.convert.dlib_format import DlibFormatError
    from edgeface.convert.hog import frontal_detector_bytes, parse_detector

    data_ = frontal_detector_bytes()
    with pytest.raises(DlibFormatError, match="truncated"):
        parse_detector(data_[: len(data_) // 2], Path("half.svm"))


def test_without_the_hog_opinion_the_detector_still_runs():
    img = astronaut_bgr()
    assert len(HaarDetector(DetectionConfig(hog_model="")).detect(img)) == 1
    assert len(HaarDetector(DetectionConfig()).detect(img)) == 1
    with pytest.raises(FileNotFoundError, match="detection.hog_model"):
        HaarDetector(DetectionConfig(hog_model="no_such.npz"))


def test_the_whole_picture_scan_finds_the_astronaut_at_any_size_and_no_face_in_textures(hog):
    img = astronaut_bgr()
    face = HaarDetector(DetectionConfig(hog_model="")).detect(img)[0]
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    for zoom in (0.4, 1.0):
        small = cv2.resize(grey, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        found = hog.scan(small, 0.0, 40.0)
        assert found, zoom
        cx, cy, side, score = found[0]
        assert abs(cx / zoom - face.cx) < 0.2 * face.size and abs(cy / zoom - face.cy) < 0.2 * face.size, zoom
        assert 0.75 < face.size / (side / zoom) < 1.35 and score > 0, zoom
    for name in ("brick", "grass", "gravel"):
        assert hog.scan(getattr(data, name)(), 0.0, 40.0) == [], name


def test_a_still_the_cascades_find_nothing_in_is_searched_by_hog_alone():
    """Recognizer.find's last try (heads turned 30-60 degrees, which dlib's turned filters see): with
    cascades that can never pass, the astronaut is found by the HOG detector, where the cascade puts her
    face; with still_hog_min_score null, she is not."""
    from edgeface.recognition.embed import Embedder
    from edgeface.recognition.pipeline import Recognizer

    img = astronaut_bgr()
    face = HaarDetector(DetectionConfig()).detect(img)[0]
    embedder = Embedder()
    blind = DetectionConfig(min_neighbors=10_000, profile_cascade="")
    assert HaarDetector(blind).detect(img) == []
    recognizer = Recognizer(HaarDetector(blind), embedder)
    found = recognizer.find(img)[0]
    assert abs(found.cx - face.cx) < 0.15 * face.size and abs(found.cy - face.cy) < 0.15 * face.size
    assert 0.8 < found.size / face.size < 1.4 and found.angle == 0.0  # the pyramid steps by 1.2
    # the landmarks place her chip from either box: the same face to the embedder
    by_hog, by_cascade = recognizer.embed(img, [found, face])
    assert float(by_hog @ by_cascade) > 0.97
    off = DetectionConfig(min_neighbors=10_000, profile_cascade="", still_hog_min_score=None)
    assert Recognizer(HaarDetector(off), embedder).find(img) == []
