"""The video path on real camera footage (EDGEFACE_FOOTAGE, CC BY 4.0), scored against hand-made labels
(tests/footage_labels.json; tests/footage.py says how). No budget (budget_ms 0), so what is found does
not depend on how busy the machine is; `python tests/footage.py` reports the figures with the default."""
import os

import pytest
from footage import labels, read_clip, run_clip, score

from edgeface.config import Config
from edgeface.recognition.pipeline import build_frame_pipeline, build_recognizer

FOOTAGE = os.environ.get("EDGEFACE_FOOTAGE", "")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.isdir(FOOTAGE), reason="EDGEFACE_FOOTAGE not set (real footage)")]


def run(name: str, recognizer_gallery=None) -> dict:
    cfg = Config()
    cfg.detection.budget_ms = 0
    pipeline = build_frame_pipeline(cfg, build_recognizer(cfg, recognizer_gallery))
    frames, fps = read_clip(os.path.join(FOOTAGE, name))
    seen, _ = run_clip(pipeline, frames, fps)
    return score(labels()["clips"][name], seen)


@pytest.mark.parametrize("clip, who", [("head-pose-face-detection-male.gif", "man"),
                                       ("head-pose-face-detection-female.gif", "woman"),
                                       ("head-pose-face-detection-female-and-male.gif", "man"),
                                       ("face-demographics-walking-and-pause.gif", "woman")])
def test_labelled_faces_are_found_in_most_of_their_frames(clip, who):
    hits, frames = run(clip)["found"][who]
    assert hits >= 0.9 * frames


def test_the_walking_clips_small_faces_are_found_in_every_labelled_frame():
    """face-demographics-walking: two people, ~24 px faces (33 px boxes), in view from frame 31. With the
    smallest face searched for at 30 px (detection.min_size) the cascade found them with too few
    neighbours: 3 of 4 frames each; at 27, every frame."""
    found = run("face-demographics-walking.gif")["found"]
    assert found["walking_woman"] == [4, 4] and found["walking_man"] == [4, 4]


def test_faces_with_glasses_are_found_and_kept():
    """walking-and-pause's two people with glasses: the cascades propose them but neither opinion verifies
    them (found in 6 and 2 of 41 frames before dlib's HOG filters gave theirs; 34 and 40 with them). The
    default cascade never finds the blonde woman in her first 7 frames; the second frontal cascade
    (detection.upright_cascade) does: 39 and 41 of 41."""
    found = run("face-demographics-walking-and-pause.gif")["found"]
    assert found["blonde"][0] >= 0.9 * found["blonde"][1]
    assert found["bald"][0] >= 0.9 * found["bald"][1]


@pytest.fixture(scope="module")
def woman_gallery(tmp_path_factory):
    """A gallery with the woman of walking-and-pause enrolled from one frame (the left third of frame 40)."""
    import cv2

    from edgeface.cli.main import main as cli

    tmp_path = tmp_path_factory.mktemp("woman")
    frames, _ = read_clip(os.path.join(FOOTAGE, "face-demographics-walking-and-pause.gif"))
    reference = tmp_path / "woman.png"
    cv2.imwrite(str(reference), frames[40][:, :160])
    gallery = tmp_path / "g.db"
    assert cli(["enroll", "woman", str(reference), "--gallery", str(gallery)]) == 0
    return str(gallery)


@pytest.mark.parametrize("clip", ["face-demographics-walking.gif", "people-detection.gif",
                                  "one-by-one-person-detection.gif", "classroom.gif"])
def test_nobody_is_found_or_named_where_no_face_is_labelled_or_no_one_enrolled_appears(clip, woman_gallery):
    """The walking clip's two people are not the enrolled woman: they must stay unnamed."""
    from edgeface.store.gallery import Gallery

    with Gallery(woman_gallery, create=False) as g:
        result = run(clip, g)
    assert result["wrong_names"] == 0


def test_an_enrolled_face_is_followed_where_the_cascade_loses_it(woman_gallery):
    """The woman of female-and-male, her head tilted to ~60 degrees and held still, is found by the
    cascade in 25 of her 56 frames; named, she is followed by her look (vision.follow) through the
    rest. Without following (tracking.follow_s 0) this fails."""
    from edgeface.store.gallery import Gallery

    with Gallery(woman_gallery, create=False) as g:
        result = run("head-pose-face-detection-female-and-male.gif", g)
    hits, frames = result["found"]["woman"]
    assert hits >= 0.9 * frames and result["wrong_names"] == 0


def test_a_tight_crop_of_a_real_face_is_found_on_a_grey_canvas_as_it_is_alone(recognizer):
    """Crops other systems export, pasted on a grey canvas (issue 24's held-out set has that form): the
    female-and-male woman's face, tilted and turned, cut tight (0.8 of its labelled box: forehead and
    chin cut off) every third labelled frame. On the canvas it is found where the crop alone is: the
    canvas is trimmed before the padded retry (17 of 18; 10 of 18 before, when the face's share was of the canvas)."""
    import cv2
    import numpy as np
    from footage import label_boxes

    name = "head-pose-face-detection-female-and-male.gif"
    frames, _ = read_clip(os.path.join(FOOTAGE, name))
    (woman,) = [f for f in labels()["clips"][name]["faces"] if f["who"] == "woman"]
    alone = on_canvas = 0
    for i, (cx, cy, size) in sorted(label_boxes(woman, len(frames)).items())[::3]:
        side = int(round(0.8 * size))
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        padded = cv2.copyMakeBorder(frames[i], side, side, side, side, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        crop = cv2.resize(padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side], (112, 112),
                          interpolation=cv2.INTER_AREA)
        if not recognizer.find(crop):
            continue
        alone += 1
        canvas = np.full((160, 160, 3), 128, np.uint8)
        canvas[24:136, 24:136] = crop
        on_canvas += bool(recognizer.find(canvas))
    assert alone >= 15 and on_canvas >= 0.9 * alone, (on_canvas, alone)
