"""Still images that are already face crops are found; pictures without a face stay without one."""
import cv2
import numpy as np
import pytest
from faces import astronaut_bgr
from skimage import data

from edgeface.recognition.match import Matcher, OpenSetRule
from edgeface.recognition.pipeline import Recognizer
from edgeface.vision.detect import largest
from edgeface.vision.images import content_box


def tight_crop(recognizer, zoom: float, size: int = 112) -> np.ndarray:
    """The astronaut's face cut as other systems export faces (eyes placed as in ArcFace's
    112x112 template), ``zoom`` times closer: at 2, the forehead and chin are cut off."""
    image = astronaut_bgr()
    points = recognizer.aligner.landmarks(image, largest(recognizer.detector.detect(image)))
    eyes = np.array(sorted([points[0:2].mean(0), points[2:4].mean(0)], key=lambda p: p[0]))
    template = (np.array([[38.29, 51.70], [73.53, 51.50]]) - 56) * zoom + 56
    m, _ = cv2.estimateAffinePartial2D(eyes, template * size / 112)
    return cv2.warpAffine(image, m, (size, size), borderValue=(128, 128, 128))


def test_a_tight_crop_the_sweep_misses_is_found_and_named(recognizer):
    crop = tight_crop(recognizer, zoom=2.0)
    assert recognizer.detector.detect(crop) == []  # what the plain sweep gives: the case this is for
    found = recognizer.find(crop)
    assert len(found) == 1 and abs(found[0].angle) <= 15
    image = astronaut_bgr()
    enrolled = recognizer.embed(image, recognizer.find(image))
    matcher = Matcher(["eileen"], enrolled, OpenSetRule(recognizer.embedder.spec.threshold))
    named = Recognizer(recognizer.detector, recognizer.embedder, matcher)  # the session's recognizer stays as built
    (face,) = named.recognize(crop)
    assert face.name == "eileen", face.score
    # on a larger grey canvas, as a crop pasted by another system
    canvas = np.full((200, 200, 3), 128, np.uint8)
    canvas[44:156, 44:156] = crop
    assert [f.name for f in named.recognize(canvas)] == ["eileen"]
    # ... on a canvas much larger than the crop, off centre: the face's share is of the crop
    wide = np.full((300, 260, 3), 128, np.uint8)
    wide[30:142, 120:232] = crop
    (face,) = named.recognize(wide)
    x, y, w, h = face.detection.box()
    assert face.name == "eileen" and 120 <= x + w / 2 <= 232 and 30 <= y + h / 2 <= 142


def _textures() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:112, :112]
    grey = {
        "noise": rng.integers(0, 256, (112, 112), np.uint8),
        "flat grey": np.full((112, 112), 128, np.uint8),
        "checkerboard": (((yy // 14 + xx // 14) % 2) * 255).astype(np.uint8),
        "stripes": ((xx // 8 % 2) * 255).astype(np.uint8),
        "brick": data.brick(),
        "grass": data.grass(),
        "gravel": data.gravel(),
        # (data.camera() is not here: the cameraman's head, turned to the side, is a face the profile
        # cascade finds, as test_schedule.py::test_a_profile_face_and_its_mirror_are_found asserts)
    }
    out = {k: cv2.cvtColor(v, cv2.COLOR_GRAY2BGR) for k, v in grey.items()}
    for name in ("chelsea", "rocket", "coffee"):
        rgb = getattr(data, name)()
        out[name] = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        h, w = rgb.shape[:2]
        side = min(h, w)
        square = out[name][(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        out[f"{name}, centre as a 112 crop"] = cv2.resize(square, (112, 112), interpolation=cv2.INTER_AREA)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_textures()))
def test_no_face_is_invented_in_a_picture_without_one(recognizer, name):
    assert recognizer.find(_textures()[name]) == []


def test_the_astronaut_still_gives_exactly_her_face(recognizer):
    found = recognizer.find(astronaut_bgr())
    assert len(found) == 1
    x, y, w, h = found[0].box()
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200


def test_identify_and_enroll_take_a_tight_crop(recognizer, tmp_path, cli):
    import json

    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), tight_crop(recognizer, zoom=2.0))
    full = tmp_path / "full.png"
    cv2.imwrite(str(full), astronaut_bgr())
    db = tmp_path / "g.db"

    r = cli("enroll", "eileen", crop, "--gallery", db)
    assert r.returncode == 0 and "1 new face(s) enrolled" in r.stdout, r.stderr
    r = cli("identify", full, crop, "--gallery", db, "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [[f["name"] for f in line["faces"]] for line in lines] == [["eileen"], ["eileen"]]
    x, y, w, h = lines[1]["faces"][0]["box"]
    assert x >= 0 and y >= 0 and x + w <= 112 and y + h <= 112  # clipped to the picture


def test_the_plain_border_of_a_pasted_crop_is_trimmed_and_nothing_else():
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (50, 40, 3), np.uint8)
    canvas = np.full((120, 100, 3), 128, np.uint8)
    canvas[30:80, 20:60] = crop
    assert content_box(canvas) == (20, 30, 60, 80)
    ringing = canvas.copy()
    ringing[29, 20:60] = 135  # JPEG ringing along the crop's edge, within the tolerance
    assert content_box(ringing) == (20, 30, 60, 80)
    assert content_box(crop) == (0, 0, 40, 50)  # a picture with no plain border: all of it
    assert content_box(np.full((64, 64, 3), 128, np.uint8)) == (0, 0, 64, 64)  # nothing but border
    odd_corner = canvas.copy()
    odd_corner[-1, -1] = 0  # corners of different colours: not a canvas
    assert content_box(odd_corner) == (0, 0, 100, 120)
    grey = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)
    assert content_box(grey) == (20, 30, 60, 80)
