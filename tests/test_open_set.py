"""The open-set rule, negatives and the gallery self-test, on vectors built to show each case."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeface.recognition.gallery_check import check
from edgeface.recognition.match import Matcher, OpenSetRule, unit_rows


def _around(rng, centre, n, spread):
    """n unit vectors at about ``spread`` from ``centre`` (a tight cluster: one person's photos)."""
    return unit_rows(centre + spread * rng.normal(size=(n, centre.size)))


def _people(rng, count, photos=4, d=32, spread=0.15):
    names, rows = [], []
    for i in range(count):
        centre = unit_rows(rng.normal(size=d))
        names += [f"p{i:03d}"] * photos
        rows.append(_around(rng, centre, photos, spread))
    return names, np.vstack(rows)


def test_threshold_rises_with_the_log_of_the_gallery_size():
    rule = OpenSetRule(0.9, reference_people=5, growth=0.005)
    assert rule.for_people(1) == rule.for_people(5) == 0.9
    assert rule.for_people(50) == pytest.approx(0.9 + 0.005 * math.log(10))
    assert OpenSetRule.fixed(0.9).for_people(1000) == 0.9


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 40), st.integers(5, 80))
def test_a_bigger_gallery_never_lowers_the_threshold(small, extra):
    rule = OpenSetRule(0.925)
    assert rule.for_people(small + extra) >= rule.for_people(small)


def test_an_enrolled_look_alike_is_not_named_as_the_other():
    rng = np.random.default_rng(1)
    ann = unit_rows(rng.normal(size=32))
    twin = unit_rows(ann + 0.25 * rng.normal(size=32))  # close to ann, but someone else
    names = ["ann"] * 3 + ["twin"] * 3
    vectors = np.vstack([_around(rng, ann, 3, 0.05), _around(rng, twin, 3, 0.05)])
    closeness = float((unit_rows(vectors[3:]) @ unit_rows(vectors[:3]).T).max())
    rule = OpenSetRule(closeness - 0.01, crowd_step=0.001, crowd_cap=0.05)
    matcher = Matcher(names, vectors, rule)
    # ann's threshold was raised just above what twin's photos score against her
    assert matcher.thresholds[0] == pytest.approx(closeness + 0.001, abs=1e-4)
    assert [m.name for m in matcher.match(vectors[3:])] == ["twin"] * 3
    without = Matcher(names, vectors, OpenSetRule.fixed(closeness - 0.01))
    assert np.all(without.thresholds == pytest.approx(closeness - 0.01))


def test_the_best_person_must_beat_the_second_by_the_margin():
    a, b = np.eye(2, 8, dtype=np.float32)
    probe = unit_rows(a + b)  # equally close to both
    matcher = Matcher(["a", "b"], np.stack([a, b]), OpenSetRule.fixed(0.5, margin=0.01))
    (m,) = matcher.match(probe)
    assert m.name is None and m.why == "margin" and m.nearest in ("a", "b")
    (m,) = matcher.match(unit_rows(a + 0.9 * b))
    assert m.name == "a"


def test_a_face_closer_to_a_persons_negatives_is_never_named_as_them():
    rng = np.random.default_rng(2)
    ann = unit_rows(rng.normal(size=32))
    photos = _around(rng, ann, 3, 0.1)
    wrong = unit_rows(ann + 0.3 * rng.normal(size=32))  # the stranger the camera kept naming ann
    rule = OpenSetRule.fixed(float((unit_rows(wrong) @ photos.T).max()) - 0.05)
    before = Matcher(["ann"] * 3, photos, rule)
    assert before.match(wrong)[0].name == "ann"
    after = Matcher(["ann"] * 3, photos, rule, negatives=(["ann"], wrong[None]))
    stranger_again = unit_rows(wrong + 0.02 * rng.normal(size=32))
    (m,) = after.match(stranger_again)
    assert m.name is None and m.why == "negative" and m.nearest == "ann"
    assert [x.name for x in after.match(photos)] == ["ann"] * 3  # her own photos still name her
    # a negative for someone not enrolled is ignored
    assert Matcher(["ann"] * 3, photos, rule, negatives=(["bob"], wrong[None])).match(wrong)[0].name == "ann"


def test_gallery_check_reports_people_confusable_photos_and_the_stranger_rate():
    rng = np.random.default_rng(3)
    names, vectors = _people(rng, 6, photos=4, spread=0.03)
    sources = [f"{n}_{i}.jpg" for i, n in enumerate(names)]
    # one of p000's photos is really p001
    vectors[0] = unit_rows(vectors[4] + 0.02 * rng.normal(size=vectors.shape[1]))
    names += ["solo"]
    sources += ["solo.jpg"]
    vectors = np.vstack([vectors, unit_rows(rng.normal(size=(1, vectors.shape[1])))])
    report = check(names, sources, vectors, OpenSetRule(0.9))
    by_name = {p.name: p for p in report.people}
    assert by_name["p002"].share == 1.0
    assert by_name["solo"].tested == 0 and by_name["solo"].share is None
    assert any(c.photo == "p000_0.jpg" and c.looks_like == "p001" for c in report.confusable)
    assert report.stranger_rate is not None and report.strangers_tested == len(names)
    # random people in 32-d are far apart; only the planted photo names strangers: p001 playing a
    # stranger is named p000 through it (4 photos), and it is named p001 when p000 plays one (1)
    assert report.stranger_rate == pytest.approx(5 / 25)
    text = " ".join(report.advice)
    assert "solo: only 1 photo(s)" in text and "p000_0.jpg looks like p001" in text


def test_gallery_check_counts_strangers_named_when_everyone_looks_alike():
    rng = np.random.default_rng(4)
    base = unit_rows(rng.normal(size=32))
    names, rows = [], []
    for i in range(5):  # five people crowded around one face: a stranger among them is often named
        names += [f"q{i}"] * 3
        rows.append(_around(rng, unit_rows(base + 0.12 * rng.normal(size=32)), 3, 0.03))
    vectors = np.vstack(rows)
    loose = check(names, [f"{i}.jpg" for i in range(len(names))], vectors, OpenSetRule.fixed(0.5))
    assert loose.stranger_rate is not None and loose.stranger_rate > 0.5
    assert any("strangers would be named" in a for a in loose.advice)


def test_gallery_check_of_an_empty_or_single_person_gallery():
    empty = check([], [], np.zeros((0, 8), np.float32), OpenSetRule(0.9))
    assert empty.people == [] and empty.stranger_rate is None
    one = check(["a", "a"], ["1", "2"], np.eye(2, 8, dtype=np.float32), OpenSetRule(0.9))
    assert one.stranger_rate is None and one.people[0].tested == 2


def test_one_rule_gives_the_thresholds_and_the_decision():
    rule = OpenSetRule(0.9, margin=0.02, crowd_step=0.001, crowd_cap=0.02)
    crowd = np.array([-np.inf, 0.905, 0.95], np.float32)  # nobody, a look-alike, a close look-alike
    assert rule.thresholds(3, crowd) == pytest.approx([0.9, 0.906, 0.92])
    assert OpenSetRule.fixed(0.9).thresholds(3, crowd) == pytest.approx([0.9, 0.9, 0.9])
    t = rule.thresholds(3, crowd)
    assert rule.decide(np.array([0.95, 0.5, 0.5]), t) == (0, "")
    assert rule.decide(np.array([0.89, 0.5, 0.5]), t) == (0, "threshold")
    assert rule.decide(np.array([0.5, 0.903, 0.5]), t) == (1, "threshold")  # crowded: 0.906 needed
    assert rule.decide(np.array([0.95, 0.94, 0.5]), t) == (0, "margin")
    assert rule.decide(np.array([0.95, 0.5, 0.5]), t, np.array([True, False, False])) == (0, "negative")
    assert rule.decide(np.full(3, -np.inf), t) == (-1, "")


def test_top2_scores_a_person_by_the_mean_of_their_two_best_photos():
    rows = unit_rows(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32))
    face = rows[0]
    matcher = Matcher(["a", "a", "a", "b"], rows, 0.5, method="top2")
    assert matcher.scores(face)[0] == pytest.approx([(1 + rows[1] @ face) / 2, 0.0])


def test_mirror_embeds_each_chip_and_its_mirror_image_and_averages_them():
    from skimage.data import astronaut

    from edgeface.config import Config
    from edgeface.recognition.pipeline import build_recognizer

    recognizer = build_recognizer(Config())
    image = np.ascontiguousarray(astronaut()[:, :, ::-1])
    chips = recognizer.chips(image, recognizer.find(image)[:1])
    plain = recognizer.embed_chips(chips)
    recognizer.mirror = True
    both = recognizer.embed_chips(chips)
    flipped = recognizer.embedder.embed(chips[:, :, ::-1])
    assert both == pytest.approx(unit_rows(plain + flipped), abs=1e-5)
    assert 0.9 < float(both[0] @ plain[0]) < 1.0  # the mirror image is the same face, not the same chip
