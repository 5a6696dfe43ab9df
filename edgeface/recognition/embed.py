"""Face embedder: a TFLite model that turns upright face chips into unit-norm vectors.

One small loader hides which TFLite runtime is installed (LiteRT first, then the older
tflite_runtime, then full TensorFlow) and which delegate runs the model.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeface.config.paths import shipped_file

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "dlib_resnet_v1_int8.tflite"
# libedgetpu's file name per platform, as Coral's own examples load it.
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


class ModelError(RuntimeError):
    """The model or its sidecar cannot be used; the message names the file."""


def default_model_path() -> Path:
    """The shipped int8 model."""
    return shipped_file(DEFAULT_MODEL_NAME)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quantize(real: np.ndarray, quantization: tuple[float, int], dtype) -> np.ndarray:
    """Real values -> a TFLite integer tensor of dtype, given its (scale, zero_point)."""
    quant_scale, zero_point = quantization
    info = np.iinfo(dtype)
    return np.clip(np.round(real / quant_scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(raw: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    """A TFLite output tensor -> float32 real values (float tensors pass through)."""
    quant_scale, zero_point = quantization
    if raw.dtype == np.float32 or not quant_scale:
        return raw.astype(np.float32)
    return (raw.astype(np.float32) - zero_point) * np.float32(quant_scale)


def chips_to_input(chips: np.ndarray, spec: ModelSpec, dtype, quantization: tuple[float, int]) -> np.ndarray:
    """uint8 chips -> the model's input tensor: (pixels - mean) * scale, quantised when the input is
    an integer tensor. Every runtime feeds the model through this, so they cannot disagree."""
    mean, scale = np.asarray(spec.mean, np.float32), np.float32(spec.scale)
    quant_scale, zero_point = quantization
    if dtype == np.float32:
        return (chips.astype(np.float32) - mean) * scale
    if quant_scale == 1.0 and zero_point == 0 and dtype == np.uint8 and not mean.any() and scale == 1:
        return chips  # raw pixels are already the model's input: no arithmetic at all
    return quantize((chips.astype(np.float32) - mean) * scale, (quant_scale, zero_point), dtype)


def as_batch(chips: np.ndarray) -> np.ndarray:
    """One chip (H, W, 3) or a batch (N, H, W, 3) -> a batch."""
    chips = np.asarray(chips)
    return chips[None] if chips.ndim == 3 else chips


def unit_rows(out: np.ndarray) -> np.ndarray:
    """Each embedding scaled to unit length (an all-zero row stays zero)."""
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class ModelSpec:
    """What the runtime needs to know about a model, read from its JSON sidecar."""

    path: Path
    model_id: str  # sha256 of the .tflite: embeddings from different models never mix
    input_size: tuple[int, int]  # (width, height)
    color_order: str  # "RGB" or "BGR"
    mean: tuple[float, float, float]
    scale: float  # model input = (pixels 0..255 - mean) * scale
    embedding_size: int
    threshold: float  # cosine similarity at or above which two faces are the same person
    padding: float  # chip framing: dlib's get_face_chip padding


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def load_spec(model_path: str | os.PathLike) -> ModelSpec:
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelError(f"model file not found: {model_path}")
    side = sidecar_path(model_path)
    try:
        raw = json.loads(side.read_text())
    except FileNotFoundError:
        raise ModelError(f"model sidecar not found: {side} (tools/convert.py writes it beside the .tflite)") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read model sidecar {side}: {e}") from None

    def need(key, kind):
        if key not in raw:
            raise ModelError(f"{side}: missing key '{key}'")
        try:
            return kind(raw[key])
        except (TypeError, ValueError):
            raise ModelError(f"{side}: key '{key}' has a bad value: {raw[key]!r}") from None

    size = need("input_size", lambda v: tuple(int(x) for x in v))
    mean = need("mean", lambda v: tuple(float(x) for x in v))
    if len(size) != 2 or len(mean) != 3:
        raise ModelError(f"{side}: 'input_size' needs 2 numbers and 'mean' 3")
    color = need("color_order", str).upper()
    if color not in ("RGB", "BGR"):
        raise ModelError(f"{side}: 'color_order' must be RGB or BGR, not {color!r}")
    return ModelSpec(
        path=model_path,
        model_id=file_sha256(model_path),
        input_size=size,
        color_order=color,
        mean=mean,
        scale=need("scale", float),
        embedding_size=need("embedding_size", int),
        threshold=need("threshold", float),
        padding=float(raw.get("padding", 0.25)),
    )


def _runtime():
    """(Interpreter class, load_delegate function), preferring the lightest install."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.load_delegate
    except ImportError:
        raise ModelError("no TFLite runtime installed: pip install ai-edge-litert") from None


def _load_delegate(load_delegate, delegate: str, options: dict | None):
    if delegate == "edgetpu":
        import platform

        return load_delegate(EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1"), options or {})
    return load_delegate(delegate, options or {})


class Embedder:
    """Runs the embedding model on batches of face chips with LiteRT.

    delegate: None or "xnnpack" (the CPU default built into the runtime), "cpu" (plain
    reference kernels), "edgetpu" (libedgetpu), or a path to a delegate library. A delegate
    that cannot load is logged and the model runs on the CPU, unless strict is set.
    """

    runtime = "litert"

    def __init__(self, model_path=None, num_threads=None, delegate=None, delegate_options=None, strict=False):
        self.spec = load_spec(model_path or default_model_path())
        Interpreter, load_delegate = _runtime()
        kwargs = {"model_path": str(self.spec.path), "num_threads": num_threads or os.cpu_count() or 1}
        self.delegate = "xnnpack"
        if delegate == "cpu":
            # Without XNNPACK the runtime falls back to its reference kernels: slow but universal.
            kwargs["experimental_op_resolver_type"] = _builtin_ref_resolver()
            self.delegate = "cpu"
        elif delegate not in (None, "", "xnnpack"):
            try:
                kwargs["experimental_delegates"] = [_load_delegate(load_delegate, delegate, delegate_options)]
                self.delegate = delegate
            except (ValueError, OSError, RuntimeError) as e:
                if strict:
                    raise ModelError(f"delegate {delegate!r} could not be loaded: {e}") from None
                log.warning("delegate %r could not be loaded (%s); running on the CPU", delegate, e)
        try:
            self.interpreter = Interpreter(**kwargs)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load model {self.spec.path}: {e}") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        shape = tuple(self._input["shape"])
        w, h = self.spec.input_size
        if len(shape) != 4 or tuple(shape[1:3]) != (h, w) or shape[3] != 3:
            raise ModelError(f"{self.spec.path}: input shape {shape} does not match sidecar input_size {w}x{h}")
        self._batch = int(shape[0])
        # A model converted with a dynamic batch dimension can be resized to take every face at once.
        self._resizable = int(self._input.get("shape_signature", shape)[0]) == -1
        self.interpreter.allocate_tensors()

    @property
    def device(self) -> str:
        """What runs the model, in LiteRT's terms: its delegate (xnnpack, cpu, edgetpu, a library)."""
        return self.delegate

    def _to_input(self, chips: np.ndarray) -> np.ndarray:
        return chips_to_input(chips, self.spec, self._input["dtype"], self._input["quantization"])

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        return dequantize(raw, self._output["quantization"])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._input["shape"][0]:
            self.interpreter.resize_tensor_input(self._input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        return self._from_output(self.interpreter.get_tensor(self._output["index"]))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """chips: uint8 (N, H, W, 3) in spec.color_order -> float32 (N, D), each row unit length."""
        chips = as_batch(chips)
        if len(chips) == 0:
            return np.zeros((0, self.spec.embedding_size), np.float32)
        data = self._to_input(chips)
        if self._resizable:
            out = self._invoke(data)
        else:
            out = np.concatenate([self._invoke(data[i : i + self._batch]) for i in range(0, len(data), self._batch)])
        return unit_rows(out.reshape(len(chips), -1))


def _builtin_ref_resolver():
    try:
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import OpResolverType
        except ImportError:
            import tensorflow as tf

            OpResolverType = tf.lite.experimental.OpResolverType
    return OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
