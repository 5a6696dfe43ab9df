"""similarity_transform (edgeface.vision.landmarks): the least-squares rotation + scale + shift,
exact and reflection-free from two point pairs on (issue 24: Umeyama's SVD turned some two-eye fits
of tools/build_open_set.py upside down), and unchanged for the aligner's five-point chips."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeface.vision.chip import cut_chips_at
from edgeface.vision.detect import HaarDetector, largest
from edgeface.vision.landmarks import _CHIP_TEMPLATE, Aligner, chip_to_image, similarity_transform
from tests.faces import astronaut_bgr


def _rotation(degrees: float, scale: float) -> np.ndarray:
    r = math.radians(degrees)
    return scale * np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])


_coord = st.floats(-500, 500, allow_nan=False, allow_infinity=False)


@st.composite
def _points(draw) -> np.ndarray:
    """2 to 5 points, at least two of them 1 apart or more (so the fit is determined)."""
    n = draw(st.integers(2, 5))
    pts = np.array(draw(st.lists(st.tuples(_coord, _coord), min_size=n, max_size=n)), np.float64)
    spread = np.linalg.norm(pts[:, None] - pts[None], axis=2).max()
    if spread < 1.0:
        pts[1] = pts[0] + (draw(st.sampled_from([-1.0, 1.0])) * 7.0, 3.0)
    return pts


@settings(max_examples=400, deadline=None)
@given(src=_points(), degrees=st.floats(-180, 180), scale=st.floats(0.2, 5),
       tx=_coord, ty=_coord)
def test_fit_recovers_any_rotation_scale_and_shift(src, degrees, scale, tx, ty):
    want = _rotation(degrees, scale)
    shift = np.array([tx, ty])
    dst = src @ want.T + shift
    a, t = similarity_transform(src, dst)
    # never a reflection: a rotation times a positive scale
    assert np.linalg.det(a) > 0
    assert a[0, 0] == pytest.approx(a[1, 1], abs=1e-9 * scale) and a[0, 1] == pytest.approx(-a[1, 0], abs=1e-9 * scale)
    np.testing.assert_allclose(a, want, atol=1e-9 * scale)
    np.testing.assert_allclose(src @ a.T + t, dst, atol=1e-7 * max(1.0, float(np.abs(dst).max())))


def test_two_eyes_from_a_photo_that_came_out_upside_down():
    # the eye centres tools/build_open_set.py found on LFW's Alvaro_Uribe_0001: Umeyama's
    # rank-1 sign fix fitted a reflection (det -2.26) that put both eyes in place upside down
    arcface_eyes = np.array([(38.2946, 51.6963), (73.5318, 51.5014)])
    eyes = np.array([(59.6218484482322, 70.81215839610923), (82.54949411904278, 65.92291150649821)])
    for src in (eyes, eyes[::-1]):
        a, t = similarity_transform(src, arcface_eyes)
        np.testing.assert_allclose(src @ a.T + t, arcface_eyes, atol=1e-9)
        assert np.linalg.det(a) > 0
    a, _ = similarity_transform(eyes, arcface_eyes)
    # upright: the eye line turns by its own slope only (12 degrees here), not by 180
    assert abs(math.degrees(math.atan2(a[1, 0], a[0, 0]))) < 15


def test_collinear_and_coincident_points():
    src = np.array([(0.0, 0.0), (1.0, 1.0), (3.0, 3.0)])          # rank-1 covariance
    want = _rotation(-170, 2.5)
    a, t = similarity_transform(src, src @ want.T + (4.0, -2.0))
    np.testing.assert_allclose(a, want, atol=1e-12)
    a, t = similarity_transform(np.ones((3, 2)), np.full((3, 2), 5.0))  # no spread: shift only
    np.testing.assert_array_equal(a, np.eye(2))
    np.testing.assert_array_equal(t, (4.0, 4.0))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        similarity_transform(np.zeros((3, 2)), np.zeros((2, 2)))


def test_five_point_chips_unchanged_against_umeyama():
    """The aligner's chips on the astronaut's real landmarks: the closed form gives the placement
    Umeyama's SVD gives (scikit-image's implementation, what this function computed before), to
    float rounding, and the very same chip pixels."""
    transform = pytest.importorskip("skimage.transform")
    bgr = astronaut_bgr()
    det = largest(HaarDetector().detect(bgr))
    assert det is not None
    points5 = Aligner().landmarks(bgr, det)
    ours = chip_to_image(points5, 150, 0.25)
    template = (0.25 + _CHIP_TEMPLATE) / 1.5 * 150
    umeyama = transform.estimate_transform("similarity", template, points5).params
    theirs = np.hstack([umeyama[:2, :2], (umeyama[:2, 2] + umeyama[:2, :2] @ (0.5, 0.5))[:, None]])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    frame = bgr[:, :, ::-1].copy()
    assert np.array_equal(cut_chips_at(frame, [ours], (150, 150)), cut_chips_at(frame, [theirs], (150, 150)))
