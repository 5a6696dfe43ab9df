"""Face embedder on Intel's OpenVINO: the same .tflite and sidecar as the LiteRT embedder.

OpenVINO reads TensorFlow Lite files directly and runs them on Intel CPUs, integrated GPUs and
NPUs. The model keeps its integer input and output, so this embedder quantises chips and
dequantises embeddings with the scale and zero point stored in the .tflite, exactly as the LiteRT
embedder does (edgeface.recognition.embed.chips_to_input and dequantize).

Install: pip install "edgeface[openvino]". Proven here on the CPU device (models/README.md
"Runtimes"); GPU and NPU go through the same code path but are untested.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from edgeface.recognition.embed import (
    ModelError,
    as_batch,
    chips_to_input,
    default_model_path,
    dequantize,
    load_spec,
    unit_rows,
)
from edgeface.recognition.tflite_file import ModelFileError, io_tensors

log = logging.getLogger(__name__)

OPENVINO_EXTRA = 'pip install "edgeface[openvino]"'


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ModelError(f"recognition.runtime openvino needs the openvino package: {OPENVINO_EXTRA}") from None
    return openvino


def openvino_version() -> str | None:
    """The installed OpenVINO's version, or None when it is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__).split("-")[0]


class OpenVinoEmbedder:
    """Runs the embedding model with OpenVINO on ``device`` (CPU, GPU, NPU or AUTO).

    The model is compiled with a dynamic batch, so a frame's faces go through in one inference.
    A device OpenVINO does not list is refused with the devices it does list; without ``strict``
    the model runs on the CPU instead, as the LiteRT embedder does for a delegate that will not load.
    """

    runtime = "openvino"

    def __init__(self, model_path=None, device: str = "CPU", num_threads: int | None = None, strict: bool = False):
        self.spec = load_spec(model_path or default_model_path())
        ov = _openvino()
        try:
            self._input, self._output = io_tensors(self.spec.path)
        except ModelFileError as e:
            raise ModelError(str(e)) from None
        w, h = self.spec.input_size
        shape = self._input.shape
        if len(shape) != 4 or tuple(shape[1:3]) != (h, w) or shape[3] != 3:
            raise ModelError(f"{self.spec.path}: input shape {shape} does not match sidecar input_size {w}x{h}")
        core = ov.Core()
        available = list(core.available_devices)
        wanted = device.upper()
        if wanted != "AUTO" and not any(d.split(".")[0] == wanted for d in available):
            message = f"OpenVINO device {wanted} is not available here (OpenVINO {openvino_version()} lists: " \
                      f"{', '.join(available) or 'none'})"
            if strict:
                raise ModelError(message)
            log.warning("%s; running on the CPU", message)
            wanted = "CPU"
        try:
            model = core.read_model(str(self.spec.path))
        except RuntimeError as e:
            raise ModelError(f"OpenVINO cannot read model {self.spec.path}: {e}") from None
        self._batch: int | None = None  # None: any number of faces per inference
        try:
            model.reshape([-1, *shape[1:]])  # only the batch dimension is freed
        except RuntimeError:  # a graph with the batch written into it: its own batch size, in turn
            self._batch = int(shape[0])
        try:
            self.compiled = core.compile_model(model, wanted, self._properties(wanted, num_threads))
        except RuntimeError as e:
            raise ModelError(f"OpenVINO cannot load model {self.spec.path} on {wanted}: {e}") from None
        self.device = wanted
        self._request = self.compiled.create_infer_request()

    @staticmethod
    def _properties(device: str, num_threads: int | None) -> dict[str, str | int]:
        props: dict[str, str | int] = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            props["INFERENCE_NUM_THREADS"] = num_threads or os.cpu_count() or 1
            # The convolutions run in int8 either way. Where the CPU has bf16, OpenVINO would use it
            # for the rest: no closer to LiteRT on five-celebs (min cosine 0.99919 vs f32's 0.99920)
            # and slower in a quick check here, so f32.
            props["INFERENCE_PRECISION_HINT"] = "f32"
        return props

    @property
    def delegate(self) -> str:
        """For code written against the LiteRT embedder (the daemon's log line): the device."""
        return self.device

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """chips: uint8 (N, H, W, 3) in spec.color_order -> float32 (N, D), each row unit length."""
        chips = as_batch(chips)
        if len(chips) == 0:
            return np.zeros((0, self.spec.embedding_size), np.float32)
        data = chips_to_input(chips, self.spec, np.dtype(self._input.dtype), self._input.quantization)
        step = self._batch or len(data)
        raw = np.concatenate([np.asarray(self._request.infer([np.ascontiguousarray(data[i:i + step])])[0])
                              for i in range(0, len(data), step)])
        out = dequantize(raw, self._output.quantization)
        return unit_rows(out.reshape(len(chips), -1))
