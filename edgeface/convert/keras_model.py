"""Keras side of the conversion: dlib's ResNet rebuilt in Keras, any Keras embedder loaded with
its normalisation folded in, and both exported to float32 / full-integer TFLite.

TensorFlow is imported inside the functions that need it (the `convert` extra), never at
module import.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.convert.common import ConvertError
from edgeface.convert.resnet import DlibNet, LayerSpec


def import_tf() -> tuple[Any, Any]:
    """(tensorflow, keras), or a ConvertError that says how to install them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as e:
        raise ConvertError(f"tensorflow/keras are needed for conversion ({e}); "
                           f"install the convert extra: pip install '.[convert]'") from None
    return tf, keras


def _zero_pad_layer(keras: Any) -> type:
    from keras import layers as L

    class ZeroPadTo(L.Layer):
        """Zero-pad bottom/right/channels: dlib's add_prev adds mismatched shapes that way."""

        def __init__(self, pad_h: int, pad_w: int, pad_c: int, **kw: Any):
            super().__init__(**kw)
            self.pad_h, self.pad_w, self.pad_c = pad_h, pad_w, pad_c

        def call(self, x: Any) -> Any:
            return keras.ops.pad(x, [[0, 0], [0, self.pad_h], [0, self.pad_w], [0, self.pad_c]])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "pad_h": self.pad_h, "pad_w": self.pad_w, "pad_c": self.pad_c}

    return ZeroPadTo


def _folded_conv(net: DlibNet, i: int, first: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """Conv i's HWIO weights and bias with the affine after it (if any) folded in, and on the
    first conv dlib's input normalisation (pixel - mean) / 256 as well (padding 0 there, so
    folding the mean into the bias is exact). Third value: whether the affine was consumed."""
    spec, layers = net.layers[i], net.layers
    w = spec.params["weights"].astype(np.float64)  # O,I,H,W
    b = spec.params["bias"].astype(np.float64)
    has_affine = i + 1 < len(layers) and layers[i + 1].kind == "affine"
    if has_affine:
        g = layers[i + 1].params["gamma"].astype(np.float64)
        be = layers[i + 1].params["beta"].astype(np.float64)
        w = w * g[:, None, None, None]
        b = b * g + be
    if first:
        if spec.stride == 1:
            raise ConvertError("cannot fold the input mean into a padded first convolution")
        mean = np.array(net.input_mean, np.float64)
        b = b - np.einsum("oihw,i->o", w, mean) / 256.0
        w = w / 256.0
    return w.transpose(2, 3, 1, 0).astype(np.float32), b.astype(np.float32), has_affine


def _add_prev(keras: Any, pad_layer: type, x: Any, y: Any, n: int) -> Any:
    sx, sy = tuple(x.shape[1:]), tuple(y.shape[1:])
    target = tuple(max(a, b) for a, b in zip(sx, sy))
    if sx != target:
        x = pad_layer(target[0] - sx[0], target[1] - sx[1], target[2] - sx[2])(x)
    if sy != target:
        y = pad_layer(target[0] - sy[0], target[1] - sy[1], target[2] - sy[2])(y)
    return keras.layers.Add(name=f"add_prev{n}")([x, y])


def _simple_layer(L: Any, spec: LayerSpec) -> Any:
    """The Keras layer for a relu / pool / fc spec (weights set by the caller)."""
    if spec.kind == "relu":
        return L.ReLU()
    if spec.kind == "max_pool":
        return L.MaxPooling2D(spec.size, strides=spec.stride, padding="valid")
    if spec.kind == "avg_pool" and spec.size == 0:
        return L.GlobalAveragePooling2D(name="avg_pool_everything")
    if spec.kind == "avg_pool":
        return L.AveragePooling2D(spec.size, strides=spec.stride, padding="valid")
    if spec.kind == "fc":
        return L.Dense(spec.num_filters, use_bias=False, name="fc_no_bias")
    raise ConvertError(f"layer {spec.describe()} has no Keras counterpart here")


def build_keras_from_dlib(net: DlibNet) -> Any:
    """Keras (NHWC) model with dlib's exact semantics; input = raw RGB pixels 0..255, float32.

    Folding: each affine (frozen batch-norm) into the conv before it; dlib's input
    normalisation into the first conv (see _folded_conv).
    """
    _, keras = import_tf()
    L = keras.layers
    pad_layer = _zero_pad_layer(keras)
    rows, cols = net.input_size
    inp = keras.Input((rows, cols, 3), name="pixels")
    x, tags = inp, {}
    n_con = n_add = 0
    i = 0
    while i < len(net.layers):
        spec = net.layers[i]
        if spec.kind == "con":
            w, b, folded = _folded_conv(net, i, first=n_con == 0)
            pad = "same" if spec.stride == 1 else "valid"
            conv = L.Conv2D(spec.num_filters, spec.size, strides=spec.stride, padding=pad,
                            name=f"con{n_con}_{spec.num_filters}x{spec.size}s{spec.stride}")
            x = conv(x)
            conv.set_weights([w, b])
            n_con += 1
            i += folded
        elif spec.kind == "affine":
            raise ConvertError("affine layer not preceded by a convolution cannot be folded")
        elif spec.kind == "tag":
            tags[spec.tag] = x
        elif spec.kind == "skip":
            x = tags[spec.tag]
        elif spec.kind == "add_prev":
            x = _add_prev(keras, pad_layer, x, tags[spec.tag], n_add)
            n_add += 1
        else:
            layer = _simple_layer(L, spec)
            x = layer(x)
            if spec.kind == "fc":
                layer.set_weights([spec.params["weights"]])
        i += 1
    return keras.Model(inp, x, name="dlib_resnet_v1")


def _load_base(path: Path) -> Any:
    tf, keras = import_tf()
    if not path.exists():
        raise ConvertError(f"{path}: no such file or folder")
    try:
        if path.is_dir():  # SavedModel: wrap its serving signature in a Keras model
            sig = tf.saved_model.load(str(path)).signatures["serving_default"]
            spec = next(iter(sig.structured_input_signature[1].values()))
            inp = keras.Input(tuple(spec.shape[1:]))
            y = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")(inp)
            if isinstance(y, dict):
                y = next(iter(y.values()))
            return keras.Model(inp, y)
        return keras.models.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001 - keras raises many types
        raise ConvertError(f"{path}: cannot load as a Keras model: {e}") from None


def load_keras_model(path: Path, mean: list[float] | None,
                     scale: float | None) -> tuple[Any, Any, tuple[int, int], list[float], float]:
    """(base model, model taking raw 0..255 pixels, (width, height), mean, scale)."""
    _, keras = import_tf()
    base = _load_base(path)
    shape = tuple(base.input_shape[1:]) if not isinstance(base.input_shape, list) else tuple(base.input_shape[0][1:])
    if len(shape) != 3 or shape[2] != 3 or shape[0] is None or shape[1] is None:
        raise ConvertError(f"{path}: input shape {shape} is not a fixed-size (H, W, 3) image")
    out_shape = base.output_shape
    if len(out_shape) != 2 or out_shape[1] is None:
        raise ConvertError(f"{path}: output shape {out_shape} is not a (batch, D) embedding")
    m = np.array(mean if mean is not None else [0.0], np.float32) * np.ones(3, np.float32)
    s = float(scale if scale is not None else 1.0 / 255.0)
    inp = keras.Input(shape, name="pixels")
    x = keras.layers.Rescaling(scale=s, offset=(-m * s).tolist(), name="normalise")(inp)
    wrapped = keras.Model(inp, base(x), name=(path.stem or "embedder") + "_pixels")
    return base, wrapped, (int(shape[1]), int(shape[0])), m.tolist(), s


def export_tflite(model: Any, input_shape: tuple[int, int, int], calib: np.ndarray | None) -> bytes:
    """Float32 TFLite when calib is None, else full-integer (uint8 in, int8 out, int8 ops only)."""
    tf, _ = import_tf()
    # Keras 3 -> SavedModel (fixed batch 1) -> converter; the SavedModel route freezes the
    # weights, which the calibrator needs (a concrete function keeps resource variables).
    spec = tf.TensorSpec((1,) + tuple(input_shape), tf.float32, name="pixels")
    with tempfile.TemporaryDirectory(prefix="edgeface-convert-") as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", input_signature=[spec], verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if calib is not None:
            def representative() -> Any:
                for c in calib:
                    yield [c[None].astype(np.float32)]
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.int8
        return bytes(conv.convert())
