"""Landmarks (edgeface.vision.landmarks) against dlib on the astronaut; dlib-framed chips from Haar
detections, upright and turned."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.convert.common import write_npz
from edgeface.convert.dlib_format import DlibFormatError
from edgeface.convert.landmarks import parse_shape_predictor, to_npz_arrays
from edgeface.vision.landmarks import (
    Aligner,
    LandmarkPredictor,
    chip_transform,
    default_landmarks_path,
)
from tests.faces import astronaut_bgr, turned


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner()


@pytest.fixture(scope="module")
def dlib_parts():
    """dlib's HOG face rect and 5-point predictor on the astronaut (RGB and dlib's grey)."""
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    dat = Path(frm.__path__[0]) / "models" / "shape_predictor_5_face_landmarks.dat"
    rgb = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2RGB)
    grey = (rgb.sum(axis=2) // 3).astype(np.uint8)
    rect = dlib.get_frontal_face_detector()(rgb, 1)[0]
    sp = dlib.shape_predictor(str(dat))
    return {"dlib": dlib, "dat": dat, "rgb": rgb, "grey": grey, "rect": rect, "sp": sp}


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _ltrb(r):
    return (r.left(), r.top(), r.right(), r.bottom())


def test_float32_conversion_reproduces_dlib_exactly(dlib_parts, tmp_path):
    out = tmp_path / "lm32.npz"
    write_npz(to_npz_arrays(parse_shape_predictor(dlib_parts["dat"]), "float32"), out)
    d = dlib_parts
    for img in (d["grey"], cv2.resize(d["grey"], None, fx=0.7, fy=0.7)):
        scale = img.shape[0] / d["grey"].shape[0]
        r = d["dlib"].rectangle(*(round(v * scale) for v in _ltrb(d["rect"])))
        want = _points(d["sp"](img, r))
        got = LandmarkPredictor(out).predict(img, _ltrb(r))
        # dlib rounds its points to whole pixels
        np.testing.assert_array_equal(np.floor(got + 0.5), want)


def test_shipped_model_close_to_dlib(dlib_parts):
    d = dlib_parts
    want = _points(d["sp"](d["grey"], d["rect"]))
    got = LandmarkPredictor().predict(d["grey"], _ltrb(d["rect"]))
    iod = np.linalg.norm(want[:2].mean(0) - want[2:4].mean(0))
    assert np.abs(got - want).max() < 0.05 * iod
    # and it is a face: eyes above the nose, right eye (points 0, 1) on the image's left side
    assert got[4, 1] > got[:4, 1].max() and got[0, 0] > got[2, 0]


def test_predictor_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        LandmarkPredictor(tmp_path / "nothing.npz")
    assert default_landmarks_path().is_file()


def test_chip_transform_matches_dlib_get_face_chip(dlib_parts):
    d = dlib_parts
    shape = d["sp"](d["rgb"], d["rect"])
    want = np.asarray(d["dlib"].get_face_chip(d["rgb"], shape, size=150, padding=0.25)).astype(np.float64)
    got = cv2.warpAffine(d["rgb"], chip_transform(_points(shape), 150, 0.25), (150, 150),
                         flags=cv2.INTER_LINEAR).astype(np.float64)
    diff = np.abs(got - want)
    # bilinear both ways; only rounding of the interpolated values differs
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 8
    # a half-pixel shift of the placement would already fail this
    shifted = cv2.warpAffine(d["rgb"], chip_transform(_points(shape) + 0.5, 150, 0.25), (150, 150),
                             flags=cv2.INTER_LINEAR).astype(np.float64)
    assert np.abs(shifted - want).mean() > 2 * diff.mean()


def _haar_face(frame):
    from edgeface.vision.detect import HaarDetector, largest
    det = largest(HaarDetector().detect(frame))
    assert det is not None
    return det


def test_aligner_chips_upright_matches_dlib_chip(dlib_parts, aligner):
    bgr = astronaut_bgr()
    det = _haar_face(bgr)
    chip = aligner.chips(bgr, [det])[0].astype(np.float64)
    d = dlib_parts
    ref = np.asarray(d["dlib"].get_face_chip(d["rgb"], d["sp"](d["rgb"], d["rect"]), size=150, padding=0.25))
    # Haar box -> rect -> landmarks lands within a pixel or two of dlib's framing (the box-only
    # chip differs by ~40 grey levels on average here)
    assert np.abs(chip - ref).mean() < 6


@pytest.mark.parametrize("degrees", [35, -50])
def test_aligner_chips_turned_face_comes_out_upright(degrees, aligner):
    bgr = astronaut_bgr()
    upright = aligner.chips(bgr, [_haar_face(bgr)])[0].astype(np.float64)
    frame = turned(bgr, degrees)
    det = _haar_face(frame)
    assert abs(det.angle - degrees) < 20
    chip = aligner.chips(frame, [det])[0].astype(np.float64)
    # the same face, upright and framed the same way: the landmarks, not the detector's
    # coarse angle, set the final rotation
    assert np.abs(chip - upright).mean() < 6
    off_by_5 = cv2.warpAffine(upright, cv2.getRotationMatrix2D((74.5, 74.5), 5, 1.0), (150, 150))
    assert np.abs(chip - upright).mean() < np.abs(off_by_5 - upright).mean()


def test_aligner_chips_no_faces_and_grey(aligner):
    bgr = astronaut_bgr()
    assert aligner.chips(bgr, []).shape == (0, 150, 150, 3)
    det = _haar_face(bgr)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    chips = aligner.chips(grey, [det], size=(112, 112))
    assert chips.shape == (1, 112, 112, 3)
    assert np.array_equal(chips[0, :, :, 0], chips[0, :, :, 2])


def test_convert_landmarks_tool_reproduces_the_shipped_file(tmp_path):
    """tools/convert_landmarks.py (edgeface.convert.landmarks) writes the arrays models/ ships."""
    import os
    import subprocess
    import sys

    pytest.importorskip("face_recognition_models")
    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "lm.npz"
    env = {**os.environ, "PYTHONPATH": str(repo)}  # this checkout's edgeface, not another install
    res = subprocess.run([sys.executable, str(repo / "tools" / "convert_landmarks.py"), "--out", str(out)],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "15 levels x 500 trees" in res.stdout
    shipped, written = np.load(default_landmarks_path()), np.load(out)
    assert sorted(written.files) == sorted(shipped.files)
    for key in shipped.files:
        assert written[key].dtype == shipped[key].dtype and np.array_equal(written[key], shipped[key]), key


def test_convert_landmarks_names_a_bad_file(tmp_path):
    bad = tmp_path / "photo.dat"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(DlibFormatError, match=r"photo\.dat: not a dlib shape predictor, it looks like a JPEG"):
        parse_shape_predictor(bad)
    truncated = tmp_path / "cut.dat"
    truncated.write_bytes(b"\x01\x01\x01")
    with pytest.raises(DlibFormatError, match=r"cut\.dat: file is truncated"):
        parse_shape_predictor(truncated)


@pytest.mark.parametrize("degrees", [0, 30, -45])
def test_a_second_landmark_pass_from_the_implied_rect_lands_where_the_first_did(degrees, aligner):
    """The open-set lever "tighter alignment" (models/README.md): the rect the first pass's landmarks
    imply has the face's roll, and predicting again from it moves the points by under a pixel
    (the first pass has converged: why the lever changes nothing)."""
    from edgeface.vision.detect import HaarDetector

    image = turned(astronaut_bgr(), degrees)
    (face,) = HaarDetector().detect(image)
    first = aligner.landmarks(image, face)
    implied = aligner.implied_detection(first)
    assert implied.angle == pytest.approx(degrees, abs=8.0)
    second = Aligner(aligner.predictor, refine=True).landmarks(image, face)
    assert np.abs(second - first).max() < 1.0
