"""tools/eval_open_set.py embeds each photo once per setup: its cache is keyed on the photos and on
what embeds them, so a lever that changes the chips (--refine) is never served another's embeddings."""
import importlib.util
from pathlib import Path

import cv2
import pytest
from faces import astronaut_bgr
from running import shipped_model

from edgeface.recognition.pipeline import Recognizer
from edgeface.vision.landmarks import Aligner

TOOL = Path(__file__).resolve().parent.parent / "tools" / "eval_open_set.py"
pytestmark = pytest.mark.skipif(shipped_model() is None, reason="needs the shipped model")


def load_tool():
    spec = importlib.util.spec_from_file_location("eval_open_set", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cache_is_keyed_on_the_aligner_as_well_as_the_photos(recognizer, tmp_path):
    tool = load_tool()
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr())
    cache = tmp_path / "cache"
    first = tool.embed_folder(recognizer, [photo], cache)
    assert len(list(cache.iterdir())) == 1
    again = tool.embed_folder(recognizer, [photo], cache)  # served from the cache
    assert len(list(cache.iterdir())) == 1 and (again[0]["plain"] == first[0]["plain"]).all()
    refined = Recognizer(recognizer.detector, recognizer.embedder)
    refined.aligner = Aligner(refined.aligner.predictor, refine=True)
    tool.embed_folder(refined, [photo], cache)
    assert len(list(cache.iterdir())) == 2


def test_probes_at_a_smaller_face_size_are_cached_apart_and_embed_the_small_face(recognizer, tmp_path):
    """--probe-face-px: the photo is scaled down so its face is that many pixels across, the face
    found at full size placed on it; the astronaut's own face still matches its full-size self, but
    less closely, and the cache never serves one size for the other."""
    tool = load_tool()
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr())
    cache = tmp_path / "cache"
    (full,) = tool.embed_folder(recognizer, [photo], cache)
    (small,) = tool.embed_folder(recognizer, [photo], cache, face_px=40)
    assert len(list(cache.iterdir())) == 2
    a, b = full["plain"][full["largest"]], small["plain"][small["largest"]]
    similarity = float(a @ b)
    assert 0.95 < similarity < 0.995  # the same face at a third of its resolution (0.986; 0.998 at 80 px)
    (again,) = tool.embed_folder(recognizer, [photo], cache, face_px=40)
    assert (again["plain"] == small["plain"]).all()
