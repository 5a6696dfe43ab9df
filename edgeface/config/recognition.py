"""recognition: the embedder's runtime and the matching rule's overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from edgeface.config.validate import require, within

Runtime = Literal["litert", "openvino"]
OpenVinoDevice = Literal["CPU", "GPU", "NPU", "AUTO"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
OPENVINO_DEVICES: tuple[str, ...] = get_args(OpenVinoDevice)


@dataclass
class RecognitionConfig:
    # None: the open-set rule (the model's threshold, rising with the gallery's size and for crowded
    # people; models/README.md "Open set"); a number: that fixed threshold
    threshold: float | None = None
    margin: float = 0.01  # the best person's score must beat the second best's by this much
    num_threads: int | None = None
    # litert: LiteRT (ai-edge-litert), its hardware picked by delegate; openvino: Intel's OpenVINO
    # (pip install "edgeface[openvino]") reading the same .tflite, on `device`
    runtime: Runtime = "litert"
    device: OpenVinoDevice = "CPU"  # OpenVINO's device (Intel CPU, iGPU, NPU; AUTO picks)
    # None / "xnnpack" (CPU, the default), "cpu" (reference kernels), "edgetpu", or a delegate library path
    delegate: str | None = None
    delegate_options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False  # fail instead of falling back to CPU when the delegate cannot load
    # landmarks: chips aligned on five landmarks, as the dlib embedder expects; box: from the Haar box only
    align: Literal["landmarks", "box"] = "landmarks"

    def __post_init__(self):
        d = self.delegate
        if d is not None and d not in ("xnnpack", "cpu", "edgetpu") and "/" not in d \
                and not d.endswith((".so", ".dylib", ".dll")) and ".so." not in d:
            raise ValueError(f"delegate {self.delegate!r}: use xnnpack, cpu, edgetpu or a library path")
        require((self.runtime in RUNTIMES, f"runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}"),
                (self.device in OPENVINO_DEVICES,
                 f"device must be one of {', '.join(OPENVINO_DEVICES)}, not {self.device!r}"),
                (self.device == "CPU" or self.runtime == "openvino",
                 "device applies to runtime: openvino (LiteRT's hardware is chosen by delegate)"),
                (self.delegate in (None, "") or self.runtime == "litert",
                 "delegate applies to runtime: litert (OpenVINO's hardware is chosen by device)"),
                (self.threshold is None or within(self.threshold, -1.0, 1.0),
                 "threshold must be a cosine similarity, -1..1 (null: the model's own)"),
                (within(self.margin, 0.0, 1.0), "margin must be 0..1 (a difference of cosine similarities)"),
                (self.num_threads is None or within(self.num_threads, 1, 1024),
                 "num_threads must be 1..1024 (null: all cores)"))
