"""The stages wired together, as enroll/identify and the daemon run them: real model, real image."""
import numpy as np
import pytest
from faces import astronaut_bgr, turned
from faces import correlation as corr

from edgeface.recognition.embed import Embedder
from edgeface.recognition.match import Matcher
from edgeface.recognition.pipeline import FramePipeline, Recognizer, SceneChange
from edgeface.recognition.track import Tracker
from edgeface.vision.detect import HaarDetector
from edgeface.vision.pixels import FramePixels


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(HaarDetector(), Embedder())


@pytest.mark.parametrize("roll", [-60, -35, 20, 45])
def test_landmark_aligned_chip_of_a_turned_face_is_the_upright_chip(recognizer, roll):
    face = astronaut_bgr()
    ref = recognizer.chips(face, recognizer.detector.detect(face)[:1])[0]
    frame = turned(face, roll)
    got = recognizer.chips(frame, recognizer.detector.detect(frame)[:1])[0]
    assert corr(got, ref) > 0.95


@pytest.mark.slow
def test_recognize_names_a_turned_face_and_frame_pipeline_announces_it_once(recognizer):
    face = astronaut_bgr()
    (enrolled,) = recognizer.embed(face, recognizer.detector.detect(face)[:1])
    recognizer.matcher = Matcher(["eileen"], enrolled[None], recognizer.embedder.spec.threshold)
    faces = recognizer.recognize(turned(face, 40))
    assert [f.name for f in faces] == ["eileen"] and faces[0].score >= recognizer.embedder.spec.threshold
    pipeline = FramePipeline(recognizer, Tracker())
    events, embedded = [], 0
    for i, roll in enumerate(range(-30, 31, 3)):  # a face turning slowly in front of the camera
        result = pipeline.process(turned(face, roll), i / 10)
        events += result.events
        embedded += sum(1 for _, m in result.faces if m is not None)
        assert result.stages_ms.keys() >= {"detect", "track", "chip", "embed", "match"}
    assert [e.name for e in events] == ["eileen"]
    assert embedded < 21  # a decided track is not embedded on every frame


def test_a_cut_is_one_scene_change_and_a_flickering_picture_is_not_one_per_frame(recognizer):
    scenes = SceneChange(12.0)
    a = np.zeros((480, 640, 3), np.uint8)
    a[:, :320] = 200  # b is a mirrored: every thumbnail pixel changes by 200
    b = a[:, ::-1].copy()
    steady = [a, a, a, b, b, b]  # one cut
    assert [scenes.changed(FramePixels(f).small_grey(160)) for f in steady] == [False, False, False, True, False, False]
    flicker = [a, b] * 4 + [b, b, a]  # jumps every frame, settles, then one more cut
    assert [scenes.changed(FramePixels(f).small_grey(160)) for f in flicker] == [True] + [False] * 9 + [True]
