"""The static Edge TPU report: the shipped model, and small models converted here whose verdicts
follow from Coral's documented requirements (full int8, static shapes, supported ops and limits)."""
import subprocess
import sys

import numpy as np
import pytest

from edgeface.convert.edgetpu import AFTER_CPU, edgetpu_report
from edgeface.recognition.embed import default_model_path


def test_the_shipped_model_maps_until_its_first_channel_padding():
    report = edgetpu_report(default_model_path())
    assert not report.refused
    ops = report.ops
    assert len(ops) == 56 and ops[0].op == "QUANTIZE" and ops[-1].op == "FULLY_CONNECTED"
    first_cpu = next(v for v in ops if not v.tpu)
    # dlib's residual_down doubles the channels by zero padding: PAD along channels, which the TPU does not take
    assert (first_cpu.index, first_cpu.op) == (13, "PAD") and "channels" in first_cpu.reason
    assert all(v.tpu for v in ops[:13]) and all(v.reason == AFTER_CPU for v in ops[14:])
    # On its own every operator but the three channel PADs is supported (the spatial PADs are).
    assert [v.index for v in ops if v.own_problem] == [13, 27, 38]
    assert report.tpu_ops == 13 and 0.30 < report.macs_share < 0.40


def test_the_report_command_prints_the_verdict_and_refuses_a_file_that_is_not_a_model(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeface.convert", "--edgetpu-report", str(default_model_path())],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "on the Edge TPU: 13 of 56 operators" in r.stdout and "the TPU segment ends at operator 13 (PAD" in r.stdout
    junk = tmp_path / "notes.tflite"
    junk.write_text("not a flatbuffer")
    r = subprocess.run([sys.executable, "-m", "edgeface.convert", "--edgetpu-report", str(junk)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "notes.tflite" in r.stderr and "not a TFLite model" in r.stderr


# ------------------------------------------------------------------ models converted here (TensorFlow)


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow", reason="the convert extra (TensorFlow) is not installed")


def _convert(tf, model, quantize: bool, batch: int | None = 1) -> bytes:
    """As edgeface.convert.keras_model.export_tflite does (a SavedModel freezes the weights), with any batch."""
    import tempfile

    spec = tf.TensorSpec((batch, *model.input_shape[1:]), tf.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", input_signature=[spec], verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        return _convert_with(tf, conv, model, quantize)


def _convert_with(tf, conv, model, quantize: bool) -> bytes:
    if quantize:
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, *model.input_shape[1:])).astype(np.float32)]
                                               for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type, conv.inference_output_type = tf.uint8, tf.int8
    return bytes(conv.convert())


def _mobilenet_block(tf):
    k = tf.keras
    x = inp = k.Input((32, 32, 3))
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = k.layers.Conv2D(16, 1)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(8)(x))


@pytest.mark.slow
def test_a_full_int8_mobilenet_block_maps_whole_and_a_float_or_dynamic_one_is_refused(tf, tmp_path):
    model = _mobilenet_block(tf)
    cases = {"int8": _convert(tf, model, True), "float": _convert(tf, model, False),
             "dynamic": _convert(tf, model, True, batch=None)}
    reports = {}
    for name, data in cases.items():
        (tmp_path / f"{name}.tflite").write_bytes(data)
        reports[name] = edgetpu_report(tmp_path / f"{name}.tflite")
    int8 = reports["int8"]
    assert not int8.refused and int8.tpu_ops == len(int8.ops) and int8.macs_share == 1.0, int8.text()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"} <= {v.op for v in int8.ops}
    assert any("not quantized" in p for p in reports["float"].refused) and reports["float"].tpu_ops == 0
    assert any("dynamic sizes" in p for p in reports["dynamic"].refused) and reports["dynamic"].tpu_ops == 0


@pytest.mark.slow
def test_an_unsupported_operation_sends_it_and_everything_after_it_to_the_cpu(tf, tmp_path):
    k = tf.keras
    x = inp = k.Input((16, 16, 4))
    x = k.layers.Conv2D(8, 3, padding="same")(x)
    x = k.layers.Lambda(lambda t: tf.math.floormod(t, 2.0))(x)  # FLOOR_MOD: not in Coral's table
    x = k.layers.Conv2D(8, 3, padding="same")(x)
    path = tmp_path / "floormod.tflite"
    path.write_bytes(_convert(tf, k.Model(inp, x), True))
    report = edgetpu_report(path)
    names = [v.op for v in report.ops]
    assert "FLOOR_MOD" in names, names
    # The converter runs FLOOR_MOD in float between a DEQUANTIZE and a QUANTIZE; neither float op is
    # in Coral's table, so the first of them ends the TPU segment and the second CONV_2D runs on the CPU too.
    cut = next(i for i, v in enumerate(report.ops) if not v.tpu)
    assert names[cut] in ("DEQUANTIZE", "FLOOR_MOD") and cut <= names.index("FLOOR_MOD")
    assert report.ops[names.index("FLOOR_MOD")].own_problem
    assert all(v.tpu for v in report.ops[:cut]) and all(not v.tpu for v in report.ops[cut:])
    last_conv = report.ops[len(names) - 1 - names[::-1].index("CONV_2D")]
    assert not last_conv.tpu and last_conv.reason == AFTER_CPU and not last_conv.own_problem
