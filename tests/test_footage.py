"""The video path on real camera footage (EDGEFACE_FOOTAGE, CC BY 4.0), scored against hand-made labels
(tests/footage_labels.json; tests/footage.py says how). No budget (budget_ms 0), so what is found does
not depend on how busy the machine is, and the profile cascade on; `python tests/footage.py` reports the figures with the default."""
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
    cfg.detection.profile_cascade = "haarcascade_profileface.xml"  # turned heads (off by default: README)
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


@pytest.mark.parametrize("clip", ["face-demographics-walking.gif", "people-detection.gif",
                                  "one-by-one-person-detection.gif", "classroom.gif"])
def test_nobody_is_found_or_named_where_no_face_is_labelled_or_no_one_enrolled_appears(clip, tmp_path):
    """The walking clip's two people are not the enrolled woman: they must stay unnamed."""
    import cv2

    from edgeface.cli.main import main as cli
    from edgeface.store.gallery import Gallery

    frames, _ = read_clip(os.path.join(FOOTAGE, "face-demographics-walking-and-pause.gif"))
    reference = tmp_path / "woman.png"
    cv2.imwrite(str(reference), frames[40][:, :160])
    gallery = tmp_path / "g.db"
    assert cli(["enroll", "woman", str(reference), "--gallery", str(gallery)]) == 0
    with Gallery(str(gallery), create=False) as g:
        result = run(clip, g)
    assert result["wrong_names"] == 0
