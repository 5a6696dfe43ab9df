"""edgeface.convert (tools/convert.py, `edgeface convert`): dlib .dat parser, Keras rebuild,
--keras quantisation, bad inputs, shipped model; and that the runtime never loads TF or dlib."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeface.convert.chips import ChipCutter
from edgeface.convert.dlib_format import DlibFormatError, DlibReader
from edgeface.convert.fidelity import (
    TFLiteRunner,
    choose_threshold,
    cosines,
    integer_only_report,
    verification_accuracy,
)
from edgeface.convert.resnet import parse_dlib_resnet
from edgeface.recognition.embed import file_sha256
from edgeface.recognition.match import unit_rows
from tests.dlib_reference import dlib_forward_numpy

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "convert.py"
SHIPPED = REPO / "models" / "dlib_resnet_v1_int8.tflite"


def run_tool(*args, timeout=300, command=(str(TOOL),)):
    # The tool imports the installed edgeface; point that at this checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *command, *map(str, args)], cwd=REPO, capture_output=True, check=False,
                          text=True, timeout=timeout, env=env)


def models_dir() -> Path:
    frm = pytest.importorskip("face_recognition_models")
    return Path(frm.__path__[0]) / "models"


@pytest.fixture(scope="module")
def dat() -> Path:
    return models_dir() / "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def astronaut_chips():
    """dlib-framed 150x150 chips of skimage's astronaut and her mirror image."""
    pytest.importorskip("dlib")
    models_dir()
    from skimage import data

    img = data.astronaut()
    cutter = ChipCutter(150)
    chips = cutter.chips(img) + cutter.chips(np.ascontiguousarray(img[:, ::-1]))
    assert len(chips) == 2, "dlib should find the astronaut's face"
    return np.stack(chips)


@pytest.fixture(scope="module")
def dlib_descriptors(dat, astronaut_chips):
    import dlib

    rec = dlib.face_recognition_model_v1(str(dat))
    return np.stack([np.asarray(rec.compute_face_descriptor(c), np.float32) for c in astronaut_chips])


# ------------------------------------------------------------------------------ parser + rebuild


def test_reader_decodes_dlib_integers_floats_strings_and_tensors():
    values = np.array([0.5, -2.25], "<f4").tobytes()
    data = (b"\x01\x05" b"\x81\x05" b"\x02\x00\x01"          # 5, -5, 256
            b"\x01\x03\x81\x01"                              # float 3 * 2**-1
            b"\x01\x00\x02\x00\x7d"                          # float_details is_inf (exponent 32000)
            b"\x01\x03abc" b"1"                                # string, bool
            b"\x01\x02\x01\x01\x01\x02\x01\x01\x01\x01" + values)  # tensor v2, shape 1x2x1x1
    r = DlibReader(data, Path("x.dat"))
    assert [r.int(), r.int(), r.int()] == [5, -5, 256]
    assert r.float() == 1.5 and r.float() == float("inf")
    assert r.string() == "abc" and r.bool() is True
    t = r.tensor()
    assert t.shape == (1, 2, 1, 1) and t.ravel().tolist() == [0.5, -2.25]
    assert r.pos == len(data)
    with pytest.raises(DlibFormatError, match=r"x\.dat: invalid dlib integer control byte 0x75"):
        DlibReader(b"\x75", Path("x.dat")).int()
    with pytest.raises(DlibFormatError, match="truncated"):
        DlibReader(b"\x01\x02\x01\x01\x01\x02\x01\x01\x01\x01\x00", Path("x.dat")).tensor()


def test_parser_reads_the_real_dat_as_the_known_architecture(dat):
    net = parse_dlib_resnet(dat)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert [layer.describe() for layer in net.layers[:4]] == ["con<32,7,7,2,2>", "affine", "relu", "max_pool<3,3,2,2>"]
    assert [layer.describe() for layer in net.layers[-2:]] == ["avg_pool_everything", "fc_no_bias<128>"]
    assert net.input_size == (150, 150)
    np.testing.assert_allclose(net.input_mean, (122.782, 117.001, 104.298), atol=1e-4)
    first = net.layers[0].params
    assert first["weights"].shape == (32, 3, 7, 7) and first["bias"].shape == (32,)
    assert net.layers[-1].params["weights"].shape == (256, 128)
    assert net.loss["type"] == "loss_metric_2"
    assert all(np.isfinite(v).all() for layer in net.layers for v in layer.params.values())


@pytest.mark.slow
def test_numpy_reference_and_keras_rebuild_match_dlib(dat, astronaut_chips, dlib_descriptors):
    pytest.importorskip("tensorflow")
    net = parse_dlib_resnet(dat)
    # The direct NCHW re-implementation pins down dlib's semantics (padding, zero-padded adds).
    ref = dlib_forward_numpy(net, astronaut_chips)
    np.testing.assert_allclose(ref, dlib_descriptors, atol=1e-4)
    from edgeface.convert.keras_model import build_keras_from_dlib

    model = build_keras_from_dlib(net)
    assert model.input_shape == (None, 150, 150, 3) and model.output_shape == (None, 128)
    out = model.predict(astronaut_chips.astype(np.float32), verbose=0)
    np.testing.assert_allclose(out, dlib_descriptors, atol=1e-4)
    assert cosines(out, dlib_descriptors).min() > 0.99999


def test_threshold_is_the_middle_of_the_best_plateau():
    sim = np.array([0.95, 0.9, 0.85, 0.5, 0.4, 0.3])
    same = np.array([True, True, True, False, False, False])
    threshold, (lo, hi) = choose_threshold(sim, same)
    assert 0.5 < lo <= threshold <= hi < 0.85
    assert verification_accuracy(sim, same, threshold)["balanced_accuracy"] == 100.0


# ------------------------------------------------------------------------------ bad input files


def _bad_files(tmp_path: Path, dat: Path) -> dict[str, Path]:
    import cv2
    from skimage import data

    files = {}
    raw = dat.read_bytes()
    for name, n in (("truncated-header", 5000), ("truncated-weights", len(raw) // 2), ("truncated-end", len(raw) - 3)):
        files[name] = tmp_path / f"{name}.dat"
        files[name].write_bytes(raw[:n])
    _ok, jpeg = cv2.imencode(".jpg", data.astronaut())
    files["jpeg"] = tmp_path / "photo.dat"
    files["jpeg"].write_bytes(jpeg.tobytes())
    files["empty"] = tmp_path / "empty.dat"
    files["empty"].write_bytes(b"")
    files["shape_predictor"] = models_dir() / "shape_predictor_5_face_landmarks.dat"
    files["mmod_detector"] = models_dir() / "mmod_human_face_detector.dat"
    files["missing"] = tmp_path / "no-such-file.dat"
    return files


EXPECTED_MESSAGE = {
    "truncated-header": "truncated",
    "truncated-weights": "truncated",
    "truncated-end": "truncated",
    "jpeg": "JPEG",
    "empty": "empty",
    "shape_predictor": "not a dlib deep network",
    "mmod_detector": "loss_mmod_",
    "missing": "cannot read",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_MESSAGE))
def test_bad_input_file_gives_a_clear_error_and_nonzero_exit(tmp_path, dat, kind):
    bad = _bad_files(tmp_path, dat)[kind]
    out = tmp_path / "out"
    res = run_tool("--dat", bad, "--out-dir", out, timeout=60)
    assert res.returncode == 2, res.stderr
    assert str(bad) in res.stderr and EXPECTED_MESSAGE[kind] in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists() or not any(out.iterdir()), "nothing may be written on failure"


def test_parser_error_names_the_layer_for_a_corrupted_layer_record(tmp_path, dat):
    raw = bytearray(dat.read_bytes())
    at = raw.index(b"max_pool_2")
    raw[at:at + 10] = b"avg_pool_2"  # a different layer where max_pool belongs
    bad = tmp_path / "swapped.dat"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DlibFormatError, match=r"swapped\.dat.*expected max_pool<3,3,2,2>.*avg_pool_2"):
        parse_dlib_resnet(bad)


def test_help_explains_the_options():
    res = run_tool("--help", timeout=60)
    assert res.returncode == 0
    for option in ("--dat", "--keras", "--calib", "--mean", "--scale", "--edgetpu", "--out-dir", "exit status"):
        assert option in res.stdout


def test_keras_options_are_checked():
    res = run_tool("--mean", "127.5", timeout=60)
    assert res.returncode == 2 and "--keras" in res.stderr


# ------------------------------------------------------------------------------ --keras quantisation


@pytest.mark.slow
def test_tiny_keras_embedder_goes_through_quantisation(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("dlib")
    models_dir()
    import cv2
    import keras
    from skimage import data

    # Calibration/evaluation photos: the astronaut, mirrored and rotated.
    folder = tmp_path / "faces" / "astronaut"
    folder.mkdir(parents=True)
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "a.png"), bgr)
    cv2.imwrite(str(folder / "b.png"), np.ascontiguousarray(bgr[:, ::-1]))
    rot = cv2.getRotationMatrix2D((256, 256), 10, 1.0)
    cv2.imwrite(str(folder / "c.jpg"), cv2.warpAffine(bgr, rot, (512, 512)))

    keras.utils.set_random_seed(1)
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(32)(x))
    path = tmp_path / "tiny_embedder.keras"
    model.save(path)

    out = tmp_path / "out"
    res = run_tool("--keras", path, "--mean", "127.5", "--scale", "0.0078125", "--calib", tmp_path / "faces",
                   "--out-dir", out, "--name", "tiny_int8", "--edgetpu", timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "int8 TFLite vs keras: mean cosine" in res.stdout
    assert "edgetpu:" in res.stdout
    tflite, sidecar = out / "tiny_int8.tflite", out / "tiny_int8.json"
    meta = json.loads(sidecar.read_text())
    assert meta["input_size"] == [64, 64] and meta["embedding_size"] == 32
    assert meta["mean"] == [0.0, 0.0, 0.0] and meta["scale"] == 1.0  # normalisation folded into the model
    assert meta["color_order"] == "RGB" and meta["metric"] == "cosine" and meta["padding"] == 0.25
    assert meta["fidelity"]["int8_vs_reference_cosine"]["mean"] >= 0.99
    assert meta["dtype"]["input"] == "uint8" and meta["dtype"]["output"] == "int8"
    assert meta["sha256"] == file_sha256(tflite)

    info = integer_only_report(tflite.read_bytes())
    assert "float32" not in info["tensor_dtypes"]

    try:
        from edgeface.recognition.embed import Embedder, load_spec
    except ImportError:
        return
    spec = load_spec(tflite)
    assert spec.input_size == (64, 64) and spec.embedding_size == 32
    chips = ChipCutter(64).chips(data.astronaut())
    emb = Embedder(tflite, num_threads=1).embed(np.stack(chips))
    assert emb.shape == (1, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    ref = model.predict(((np.stack(chips).astype(np.float32) - 127.5) * 0.0078125), verbose=0)
    assert cosines(emb, ref).min() > 0.99


# ------------------------------------------------------------------------------ the shipped model


def test_shipped_int8_model_gives_unit_norm_128d_embeddings_close_to_dlib(astronaut_chips, dlib_descriptors):
    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert meta["input_size"] == [150, 150] and meta["embedding_size"] == 128
    assert meta["sha256"] == file_sha256(SHIPPED)
    assert 0 < meta["threshold"] < 1
    info = integer_only_report(SHIPPED.read_bytes())
    assert info["input_dtype"] == "uint8" and info["output_dtype"] == "int8"
    assert "float32" not in info["tensor_dtypes"], info

    try:
        from edgeface.recognition.embed import Embedder
    except ImportError:
        Embedder = None
    if Embedder is not None:
        emb = Embedder(SHIPPED, num_threads=1).embed(astronaut_chips)
    else:
        emb = unit_rows(TFLiteRunner(SHIPPED.read_bytes()).embed(astronaut_chips))
    assert emb.shape == (2, 128) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert cosines(emb, dlib_descriptors).min() > 0.99
    # The same face (and its mirror image) matches itself under the sidecar threshold.
    assert float(emb[0] @ emb[1]) >= meta["threshold"]


def test_missing_calibration_folder_is_named(tmp_path, dat):
    res = run_tool("--calib", tmp_path / "missing", "--out-dir", tmp_path / "out", timeout=60)
    assert res.returncode == 2 and str(tmp_path / "missing") in res.stderr
    assert not (tmp_path / "out").exists()


DATASET = os.environ.get("EDGEFACE_DATASET")


@pytest.mark.dataset
@pytest.mark.slow
@pytest.mark.skipif(not DATASET or not Path(DATASET, "train").is_dir(), reason="EDGEFACE_DATASET not set")
def test_dlib_conversion_end_to_end_on_a_few_photos(tmp_path, dat):
    """The default dlib path on a small subset: calibrate, verify against dlib, write model + sidecar.

    18 photos give only 153 pairs, where one borderline pair moves verification accuracy by
    more than a point; --force keeps that check from deciding, and the cosine checks are
    asserted here instead."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("dlib")
    import shutil

    for split, per_person in (("train", 4), ("val", 2)):
        for person in sorted(Path(DATASET, split).iterdir())[:3]:
            dest = tmp_path / split / person.name
            dest.mkdir(parents=True)
            for photo in sorted(person.glob("*.jpg"))[:per_person]:
                shutil.copy(photo, dest / photo.name)
    out = tmp_path / "out"
    res = run_tool("--calib", tmp_path / "train", "--out-dir", out, "--force", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "int8 TFLite vs dlib: mean cosine" in res.stdout
    steps = [line.split("]")[0] + "]" for line in res.stderr.splitlines() if line.startswith("[") and "/" in line[:6]]
    assert steps == [f"[{k}/6]" for k in range(1, 7)], steps
    meta = json.loads((out / "dlib_resnet_v1_int8.json").read_text())
    checks = meta["fidelity"]["checks"]
    assert checks["float_mean_cosine"] and checks["int8_mean_cosine"] and checks["int8_min_cosine"], checks
    assert meta["fidelity"]["verification"]["identities"] == 3
    assert meta["fidelity"]["int8_vs_reference_cosine"]["min"] >= 0.97
    assert meta["source"]["sha256"] == file_sha256(dat)
    try:
        from edgeface.recognition.embed import load_spec
    except ImportError:
        return
    spec = load_spec(out / "dlib_resnet_v1_int8.tflite")
    assert spec.input_size == (150, 150) and spec.embedding_size == 128 and spec.mean == (0.0, 0.0, 0.0)
    assert spec.threshold == meta["threshold"]


# ------------------------------------------------------------------------------ the package boundary


def test_runtime_modules_never_import_tensorflow_or_dlib():
    """The daemon's import graph stays free of the `convert` extra; so does the converter's CLI
    module until a conversion actually runs."""
    code = ("import sys\n"
            "import edgeface, edgeface.cli.main, edgeface.service.daemon, edgeface.recognition.pipeline, edgeface.convert.cli\n"
            "edgeface.cli.main.build_parser()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'dlib'))\n"
            "print(edgeface.__file__)\n"
            "print(','.join(heavy) or 'none')\n")
    res = run_tool("-c", code, command=(), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    where, heavy = res.stdout.split()
    assert Path(where).resolve().parent.parent == REPO  # this checkout's package was the one imported
    assert heavy == "none"


def test_edgeface_convert_subcommand_forwards_every_argument():
    res = run_tool("--help", command=("-m", "edgeface", "convert"), timeout=60)
    assert res.returncode == 0, res.stderr
    assert "usage: edgeface convert" in res.stdout
    for option in ("--dat", "--keras", "--calib", "--out-dir", "exit status"):
        assert option in res.stdout
    res = run_tool("--mean", "127.5", command=("-m", "edgeface", "convert"), timeout=60)
    assert res.returncode == 2 and "--keras" in res.stderr
