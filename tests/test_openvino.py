"""recognition.runtime: openvino gives the same embeddings, names and scores as LiteRT.

The OpenVINO tests need the optional extra (pip install "edgeface[openvino]"; .ci/run installs it)
and skip with that reason without it. The config checks and the missing-extra message run always.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faces import astronaut_bgr, turned, write_jpeg

from edgeface.config import Config, ConfigError, parse
from edgeface.recognition.embed import Embedder, ModelError
from edgeface.recognition.embed_openvino import OpenVinoEmbedder, openvino_version
from edgeface.recognition.pipeline import build_recognizer, load_embedder, runtime_info

needs_openvino = pytest.mark.skipif(openvino_version() is None,
                                    reason='the openvino extra is not installed (pip install "edgeface[openvino]")')
DATASET = os.environ.get("EDGEFACE_DATASET")
needs_dataset = pytest.mark.skipif(not DATASET or not Path(DATASET).is_dir(),
                                   reason="EDGEFACE_DATASET (five-celebs) not set or missing")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def edgeface(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeface", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)  # both embedders return unit rows


# ------------------------------------------------------------------------------ config, always


@pytest.mark.parametrize("text, wanted", [
    ("recognition:\n  runtime: onnx\n", ":2: recognition.runtime:"),
    ("recognition:\n  runtime: openvino\n  device: TPU\n", ":3: recognition.device:"),
    ("recognition:\n  device: GPU\n", "recognition.device: applies to runtime: openvino"),
    ("recognition:\n  runtime: openvino\n  delegate: edgetpu\n", "recognition.delegate: applies to runtime: litert"),
])
def test_runtime_and_device_are_checked(text, wanted):
    with pytest.raises(ConfigError) as e:
        parse(text, "edgeface.yaml")
    assert wanted in str(e.value), str(e.value)


def test_runtime_keys_read_in_any_case_and_default_to_litert():
    assert (Config().recognition.runtime, Config().recognition.device) == ("litert", "CPU")
    rec = parse("recognition: {runtime: OpenVINO, device: gpu}\n").recognition
    assert (rec.runtime, rec.device) == ("openvino", "GPU")


def test_a_missing_openvino_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: `import openvino` raises
    cfg = parse("recognition: {runtime: openvino}\n")
    with pytest.raises(ModelError, match=r'pip install "edgeface\[openvino\]"'):
        load_embedder(cfg)


# ------------------------------------------------------------------------------ OpenVINO, always


@pytest.fixture(scope="module")
def astronaut_chips():
    """The astronaut cut as the pipeline cuts faces (landmark-aligned), upright and turned."""
    rec = build_recognizer(Config())
    chips = []
    for angle in (0, -30, 20):
        frame = turned(astronaut_bgr(), angle) if angle else astronaut_bgr()
        found = rec.find(frame)
        assert found, angle
        chips.append(rec.chips(frame, found[:1])[0])
    chips.append(chips[0][:, ::-1])  # a mirror image is another valid face chip
    return np.stack(chips)


@needs_openvino
def test_openvino_embeddings_match_litert(astronaut_chips):
    lite, ov = Embedder(num_threads=1), OpenVinoEmbedder(num_threads=1)
    assert (ov.runtime, ov.device, ov.spec.model_id) == ("openvino", "CPU", lite.spec.model_id)
    cos = cosines(lite.embed(astronaut_chips), ov.embed(astronaut_chips))
    assert cos.min() >= 0.999, cos


@needs_openvino
def test_openvino_batches_give_the_single_face_embeddings(astronaut_chips):
    ov = OpenVinoEmbedder(num_threads=2)
    batched = ov.embed(astronaut_chips)
    one_by_one = np.concatenate([ov.embed(chip) for chip in astronaut_chips])  # (H, W, 3) each
    assert batched.shape == (len(astronaut_chips), ov.spec.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert cosines(batched, one_by_one).min() > 0.99999
    assert ov.embed(astronaut_chips[:0]).shape == (0, ov.spec.embedding_size)


@needs_openvino
def test_an_absent_device_falls_back_to_the_cpu_unless_strict(caplog):
    import openvino

    missing = next((d for d in ("NPU", "GPU") if not any(a.startswith(d) for a in openvino.Core().available_devices)),
                   None)
    if missing is None:
        pytest.skip("this machine has both an Intel GPU and NPU for OpenVINO")
    with pytest.raises(ModelError, match=f"device {missing} is not available"):
        OpenVinoEmbedder(device=missing, strict=True)
    emb = OpenVinoEmbedder(device=missing)
    assert emb.device == "CPU" and "running on the CPU" in caplog.text
    assert runtime_info(emb)["name"] == "openvino" and runtime_info(emb)["device"] == "CPU"


@needs_openvino
@pytest.mark.slow
def test_bench_and_identify_say_which_runtime_ran(tmp_path):
    face = astronaut_bgr()
    photo = write_jpeg(tmp_path / "eileen.jpg", face)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        write_jpeg(frames / f"{i:03d}.jpg", face)
    db = tmp_path / "g.db"
    r = edgeface("enroll", "eileen", photo, "--gallery", db, "--runtime", "openvino")
    assert r.returncode == 0, r.stderr
    r = edgeface("bench", frames, "--gallery", db, "--json", "--runtime", "openvino", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["runtime"]["name"] == "openvino" and report["runtime"]["device"] == "CPU"
    assert report["runtime"]["version"] == openvino_version()
    assert ["eileen"] in report["names"]
    r = edgeface("identify", photo, "--gallery", db, "--json")
    line = json.loads(r.stdout)
    assert set(line) == {"image", "faces"} and line["faces"][0]["name"] == "eileen"
    assert "embedder: litert" in r.stderr
    r = edgeface("identify", photo, "--gallery", db, "--json", "--runtime", "openvino")
    assert json.loads(r.stdout)["faces"][0]["name"] == "eileen" and "embedder: openvino" in r.stderr
    r = edgeface("identify", photo, "--gallery", db, "--device", "GPU")  # LiteRT has no devices
    assert r.returncode == 2 and "device applies to runtime: openvino" in r.stderr


# ------------------------------------------------------------------------------ five-celebs


def _people_photos(split: str) -> dict[str, list[str]]:
    root = Path(DATASET or "") / split
    return {p.name: sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            for p in sorted(root.iterdir()) if p.is_dir()}


@needs_openvino
@needs_dataset
@pytest.mark.dataset
@pytest.mark.slow
def test_openvino_embeddings_match_litert_on_five_celebs_chips():
    """Every five-celebs photo's largest face, as the pipeline cuts it: cosine >= 0.999, mean and min."""
    from edgeface.vision.images import read_image

    rec = build_recognizer(Config())
    chips = []
    for split in ("train", "val"):
        for files in _people_photos(split).values():
            for f in files:
                image = read_image(f)[0]
                found = rec.find(image)
                if found:
                    chips.append(rec.chips(image, [max(found, key=lambda d: d.size)])[0])
    chips_arr = np.stack(chips)
    assert len(chips_arr) >= 100
    cos = cosines(Embedder(num_threads=2).embed(chips_arr), OpenVinoEmbedder(num_threads=2).embed(chips_arr))
    assert cos.mean() >= 0.999 and cos.min() >= 0.999, (cos.mean(), cos.min())


@needs_openvino
@needs_dataset
@pytest.mark.dataset
@pytest.mark.slow
def test_enroll_and_identify_with_openvino_name_the_same_faces_as_litert(tmp_path):
    """Each runtime enrols five-celebs train into its own gallery (`runtime:` in the config file, as
    a user sets it) and identifies val: the same names, face for face, scores within 0.005."""
    val = [f for files in _people_photos("val").values() for f in files]
    results = {}
    for runtime in ("litert", "openvino"):
        config = tmp_path / f"{runtime}.yaml"
        config.write_text(f"gallery: {tmp_path / runtime}.db\nrecognition:\n  runtime: {runtime}\n  num_threads: 2\n")
        for person, files in _people_photos("train").items():
            r = edgeface("enroll", person, *files, "--config", config)
            assert r.returncode == 0, r.stderr
        r = edgeface("identify", *val, "--config", config, "--json")
        assert f"embedder: {runtime}" in r.stderr
        results[runtime] = [json.loads(line) for line in r.stdout.splitlines()]
    lite, ov = results["litert"], results["openvino"]
    assert [line["image"] for line in lite] == [line["image"] for line in ov] == val
    named = 0
    for a, b in zip(lite, ov):
        assert [f["box"] for f in a["faces"]] == [f["box"] for f in b["faces"]], a["image"]
        assert [f["name"] for f in a["faces"]] == [f["name"] for f in b["faces"]], (a, b)
        for fa, fb in zip(a["faces"], b["faces"]):
            assert abs(fa["score"] - fb["score"]) <= 0.005, (a["image"], fa, fb)
            named += fa["name"] is not None
    assert named >= 10  # the comparison is about real identifications, not a wall of unknowns
