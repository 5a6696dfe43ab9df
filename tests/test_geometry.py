import math

import cv2
import numpy as np
import pytest

from edgeface.vision import geometry


@pytest.mark.parametrize("angle", [-60, -33.3, 0, 15, 45, 90])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_point_round_trip(angle, scale):
    w, h = 640, 480
    m, (nw, nh) = geometry.rotate_grown(w, h, angle, scale)
    pts = np.array([[0, 0], [w, h], [123.4, 56.7], [w / 2, h / 2]])
    back = geometry.map_back(m, geometry.apply_affine(m, pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)
    # the frame centre lands on the canvas centre
    np.testing.assert_allclose(geometry.apply_affine(m, [w / 2, h / 2]), [nw / 2, nh / 2], atol=1e-9)


@pytest.mark.parametrize("angle", [-60, -20, 0, 30, 60])
def test_grown_canvas_matches_opencv_and_keeps_every_corner(angle):
    w, h = 300, 200
    m, (nw, nh) = geometry.rotate_grown(w, h, angle)
    ref = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    np.testing.assert_allclose(m[:, :2], ref[:, :2], atol=1e-12)
    corners = geometry.apply_affine(m, [[0, 0], [w, 0], [w, h], [0, h]])
    assert corners.min() >= -1.0
    assert corners[:, 0].max() <= nw + 1.0 and corners[:, 1].max() <= nh + 1.0


def test_rotation_sign_follows_opencv():
    # +90 in OpenCV turns the image counter-clockwise on screen: a point right of the centre goes up
    m, _ = geometry.rotate_grown(100, 100, 90)
    p = geometry.apply_affine(m, [80, 50])
    np.testing.assert_allclose(p, [50, 20], atol=1e-9)


def test_rotated_square_bound():
    assert geometry.rotated_square_bound(50, 60, 20, 0) == pytest.approx((40, 50, 20, 20))
    x, y, w, h = geometry.rotated_square_bound(50, 60, 20, 45)
    side = 20 * math.sqrt(2)
    assert (x, y, w, h) == pytest.approx((50 - side / 2, 60 - side / 2, side, side))
    # bound agrees with the actual corners at an arbitrary angle
    upright = np.array([[-15, -15], [15, -15], [15, 15], [-15, 15]], dtype=np.float64)
    corners = upright @ geometry.rotation_matrix(-27).T + (10, 20)
    x, y, w, h = geometry.rotated_square_bound(10, 20, 30, -27)
    assert corners[:, 0].min() == pytest.approx(x) and corners[:, 0].max() == pytest.approx(x + w)
    assert corners[:, 1].min() == pytest.approx(y) and corners[:, 1].max() == pytest.approx(y + h)


def test_merge_duplicates_keeps_separate_faces_and_weights_the_angle():
    hits = [
        (100, 100, 50, 20, 30),  # one face seen at two neighbouring grid angles
        (104, 98, 54, 40, 10),
        (300, 100, 50, 0, 8),  # another face far away
        (102, 101, 200, 0, 5),  # much larger box around the first: not the same face
    ]
    merged = geometry.merge_hits(hits)
    assert len(merged) == 3
    cx, cy, size, angle, score = merged[0]
    assert score == 40
    assert angle == pytest.approx(25.0)
    assert cx == pytest.approx(101.0) and size == pytest.approx(51.0)
    assert sorted(round(m[0]) for m in merged[1:]) == [102, 300]


def test_merge_empty():
    assert geometry.merge_hits([]) == []


def test_suppress_nested_drops_reframed_duplicates_only():
    faces = [
        (100, 100, 80),  # strongest
        (110, 130, 200),  # head-and-shoulders box around it: its circle holds the first centre
        (120, 95, 40),  # box on one half of the face: centre inside the first
        (220, 100, 80),  # a neighbour's face, side by side
    ]
    assert geometry.suppress_nested(faces) == [0, 3]


@pytest.mark.parametrize("angle", [-60.0, -25.0, 0.0, 30.0, 60.0])
def test_a_box_stacked_on_a_faces_forehead_is_dropped_whatever_the_roll(angle):
    face = (300.0, 300.0, 120.0, angle)
    up = geometry.rotation_matrix(angle) @ (0.0, -0.8 * 120)  # 0.8 sizes above, in the face's own frame
    forehead = (300.0 + up[0], 300.0 + up[1], 130.0, angle)
    assert geometry.suppress_stacked([forehead, face]) == [1]  # the upper one goes, whichever is stronger
    assert geometry.suppress_stacked([face, forehead]) == [0]
    below = geometry.rotation_matrix(angle) @ (0.0, 1.3 * 120)
    chin_to_forehead = (300.0 + below[0], 300.0 + below[1], 90.0, angle)  # a child in front: no overlap
    beside = geometry.rotation_matrix(angle) @ (0.75 * 120, 0.0)
    cheek_to_cheek = (300.0 + beside[0], 300.0 + beside[1], 110.0, angle)
    small_above = (300.0 + up[0], 300.0 + up[1], 60.0, angle)  # much smaller: another face, far behind
    for other in (chin_to_forehead, cheek_to_cheek, small_above):
        assert geometry.suppress_stacked([face, other]) == [0, 1]
