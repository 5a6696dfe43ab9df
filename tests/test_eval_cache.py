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
