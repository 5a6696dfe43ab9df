import numpy as np
import pytest

from edgeface.recognition.match import Matcher, match, person_scores, unit_rows


def _vectors(rng, n, d=8):
    return unit_rows(rng.normal(size=(n, d)))


def test_nearest_names_the_closest_person_above_threshold():
    rng = np.random.default_rng(0)
    ann, bob = _vectors(rng, 1)[0], _vectors(rng, 1)[0]
    names = ["ann", "ann", "bob"]
    vectors = np.stack([ann, unit_rows(ann + 0.1 * rng.normal(size=8)), bob])
    probe = unit_rows(ann + 0.05 * rng.normal(size=8))
    (m,) = match(probe[None], names, vectors, threshold=0.9)
    assert m.name == "ann" and m.nearest == "ann" and m.score > 0.9


def test_below_threshold_is_unknown_but_keeps_nearest():
    vectors = np.eye(3, dtype=np.float32)
    probe = unit_rows(np.array([[1.0, 1.0, 0.2]]))
    (m,) = match(probe, ["a", "b", "c"], vectors, threshold=0.9)
    assert m.name is None and m.nearest in ("a", "b") and 0.6 < m.score < 0.75


def test_scores_are_per_person_maxima():
    vectors = np.eye(4, dtype=np.float32)
    people, scores = person_scores(np.eye(4)[[0, 3]], ["x", "x", "y", "y"], vectors)
    assert people == ["x", "y"]
    np.testing.assert_allclose(scores, [[1, 0], [0, 1]], atol=1e-6)


def test_centroid_method_uses_the_mean():
    vectors = np.array([[1, 0], [0, 1]], np.float32)
    people, scores = person_scores(np.array([[1.0, 1.0]]), ["x", "x"], vectors, "centroid")
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_empty_gallery_and_bad_method():
    unknown = match(np.ones(4), [], np.zeros((0, 4)), 0.5)[0]
    assert Matcher([], np.zeros((0, 0)), 0.5).match(np.ones((2, 4))) == [unknown] * 2
    with pytest.raises(ValueError, match="unknown matching method"):
        Matcher(["a"], np.ones((1, 2)), 0.5, method="svm")
