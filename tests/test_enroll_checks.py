"""Enrolment refuses photos that would make poor references, and warns about doubtful ones."""
import re

import cv2
from faces import astronaut_bgr, turned, write_jpeg

from edgeface.recognition.enroll import MIN_FACE_PX, enroll
from edgeface.store.gallery import Gallery


def _enrol(tmp_path, recognizer, name, *paths, gallery="g.db"):
    said, warned = [], []
    with Gallery(tmp_path / gallery) as g:
        report = enroll(g, recognizer, name, list(paths), say=said.append, warn=warned.append)
        people = [(p.name, p.embeddings) for p in g.people()]
    return report, people, warned


def test_a_face_too_small_is_refused_with_its_size(tmp_path, recognizer):
    tiny = write_jpeg(tmp_path / "tiny.jpg", cv2.resize(astronaut_bgr(), None, fx=0.37, fy=0.37,
                                                        interpolation=cv2.INTER_AREA))
    report, people, warned = _enrol(tmp_path, recognizer, "eileen", tiny)
    assert report.skipped == 1 and people == []
    assert re.search(rf"tiny.jpg: skipped: face too small \(3\d px, needs {MIN_FACE_PX}\)", warned[0]), warned


def test_a_small_face_is_enrolled_with_a_warning(tmp_path, recognizer):
    small = write_jpeg(tmp_path / "small.jpg", cv2.resize(astronaut_bgr(), None, fx=0.42, fy=0.42,
                                                          interpolation=cv2.INTER_AREA))
    report, people, warned = _enrol(tmp_path, recognizer, "eileen", small)
    assert people == [("eileen", 1)]
    assert any("warning: small face" in w for w in warned)


def test_a_blurred_face_is_refused(tmp_path, recognizer):
    blurred = write_jpeg(tmp_path / "blurred.jpg", cv2.GaussianBlur(astronaut_bgr(), (0, 0), 5))
    sharp = write_jpeg(tmp_path / "sharp.jpg", astronaut_bgr())
    report, people, warned = _enrol(tmp_path, recognizer, "eileen", blurred, sharp)
    assert report.skipped == 1 and people == [("eileen", 1)]  # the sharp photo of the batch still lands
    assert re.search(r"blurred.jpg: skipped: face too blurred \(sharpness [0-4]\.\d, needs 5\)", warned[0]), warned


def test_a_face_that_looks_like_another_enrolled_person_is_flagged(tmp_path, recognizer):
    _enrol(tmp_path, recognizer, "eileen", write_jpeg(tmp_path / "eileen.jpg", astronaut_bgr()))
    # "bob"'s first photo is in fact eileen again, turned: it would be named eileen
    report, people, warned = _enrol(tmp_path, recognizer, "bob",
                                    write_jpeg(tmp_path / "bob.jpg", turned(astronaut_bgr(), 20)))
    assert people == [("bob", 1), ("eileen", 1)]  # enrolled: the user may know better
    assert any("would already be named eileen" in w for w in warned), warned
    # a second "bob" photo closer to eileen than to bob's first one: her upright photo, a little brighter
    brighter = cv2.convertScaleAbs(astronaut_bgr(), alpha=1.1)
    report, people, warned = _enrol(tmp_path, recognizer, "bob", write_jpeg(tmp_path / "bob2.jpg", brighter))
    assert any("closer to eileen" in w and "than to bob's other photos" in w for w in warned), warned


def test_the_face_meant_is_enrolled_not_the_largest(tmp_path, recognizer):
    """An event's crop can hold a neighbour's larger face; enrolment takes the face at the event's box."""
    import numpy as np

    big = astronaut_bgr()
    small = cv2.resize(big, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    frame = np.full((512, 512 + small.shape[1] + 20, 3), 120, np.uint8)
    frame[:, :512] = big
    frame[:small.shape[0], 532:] = small
    photo = write_jpeg(tmp_path / "two.jpg", frame)
    said, warned = [], []
    with Gallery(tmp_path / "g.db") as g:
        enroll(g, recognizer, "eileen", [photo, photo], say=said.append, warn=warned.append,
               at=[(532 + 124, 52, 64, 64), (420, 400, 60, 60)])
    x, y, w, h = map(int, re.search(r"face at \[(-?\d+), (-?\d+), (\d+), (\d+)\]", said[0]).groups())
    assert abs(x + w / 2 - (532 + 156)) < 20 and abs(y + h / 2 - 84) < 20 and w < 100, said  # the small face (the big one: 120)
    assert "the face at [420, 400, 60, 60] was not found again" in warned[-1], warned
    assert not any("using the largest" in line for line in warned)
