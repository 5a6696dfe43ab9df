"""Edge TPU compatibility of a .tflite, checked statically: no edgetpu_compiler, no device.

Every operator, tensor type and shape is held against Coral's documented requirements
(coral.ai/docs/edgetpu/models-intro: "Model requirements" and "Supported operations", transcribed
below for compiler 16 / runtime 14), and the report says per operator whether the compiler would
map it to the TPU or leave it on the CPU, and the share of the model (operators and arithmetic)
that would run on the TPU. What only the real compiler knows is not claimed: its per-op size and
precision limits ("may not be mapped" in Coral's table are listed as notes), and whether it
accepts operator versions newer than the TensorFlow it was built with.

    python -m edgeface.convert --edgetpu-report MODEL.tflite [--json]
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeface.recognition.tflite_file import OperatorInfo, TensorInfo, TFLiteGraph, read_graph

QUANTIZED = ("int8", "uint8")
# Constant tensors may also be int32 (biases, shapes, axes, paddings) or int64 (some axes).
CONSTANT_TYPES = QUANTIZED + ("int32", "int64")
NO_ACTIVATION = 0  # ActivationFunctionType.NONE
EDGETPU_SRAM_BYTES = 8 * 1024 * 1024  # parameters beyond this stream from host memory on every inference

Check = Callable[[OperatorInfo, TFLiteGraph], str | None]  # a broken limit's description, or None


def _tensors(op: OperatorInfo, graph: TFLiteGraph, which: str = "inputs") -> list[TensorInfo]:
    return [t for t in (graph.tensor(i) for i in getattr(op, which)) if t is not None]


def _data(op: OperatorInfo, graph: TFLiteGraph, k: int) -> np.ndarray | None:
    t = graph.tensor(op.inputs[k]) if k < len(op.inputs) else None
    return t.data if t is not None else None


def _no_fused_activation(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    if op.options.get("fusedActivationFunction", NO_ACTIVATION) != NO_ACTIVATION:
        return "has a fused activation function (not supported for this operation)"
    return None


def _conv(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    if op.options.get("dilationWFactor", 1) != op.options.get("dilationHFactor", 1):
        return "dilation differs between x and y"
    return None


def _depthwise(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    if op.options.get("dilationWFactor", 1) != 1 or op.options.get("dilationHFactor", 1) != 1:
        return "dilated depthwise kernels are not supported"
    return None


def _fully_connected(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    if op.options.get("weightsFormat", 0) != 0:
        return "weights are not in the default format"
    out = _tensors(op, graph, "outputs")
    if out and sum(d > 1 for d in out[0].shape) > 1:
        return f"output {list(out[0].shape)} is not one-dimensional"
    return None


def _axes(op: OperatorInfo, graph: TFLiteGraph, k: int, rank: int) -> set[int] | None:
    data = _data(op, graph, k)
    if data is None:
        return None
    return {int(a) % rank for a in np.ravel(data)}


def _reduce(allowed: set[int], what: str) -> Check:
    def check(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
        x = _tensors(op, graph)[0]
        axes = _axes(op, graph, 1, max(len(x.shape), 1))
        if axes is None:
            return "reduction axes are not a constant"
        if len(x.shape) == 4 and not axes <= allowed:
            return f"reduces axes {sorted(axes)} of an NHWC tensor; supported: {what} only"
        return None
    return check


def _pad(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    pads = _data(op, graph, 1)
    if pads is None:
        return "paddings are not a constant"
    pads = np.asarray(pads).reshape(-1, 2)
    if len(pads) == 4 and (pads[0].any() or pads[3].any()):
        where = [name for name, row in zip(("batch", "y", "x", "channels"), pads) if row.any()]
        return f"pads {' and '.join(where)} {pads.tolist()}; supported: x and/or y only"
    return None


def _concatenation(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    if _no_fused_activation(op, graph):
        return _no_fused_activation(op, graph)
    inputs = _tensors(op, graph)
    constants = [t for t in inputs if t.constant]
    if constants and (len(inputs) != 2 or inputs[1] is not constants[0] or any(
            t.data is None or np.any(t.data != (t.zero_point[0] if t.zero_point else 0)) for t in constants)):
        return "has a constant input that is not the all-zero second of exactly two (a zero padding)"
    return None


def _not_batch_axis(key: str, k: int | None = None) -> Check:
    def check(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
        if k is not None:
            data = _data(op, graph, k)
            axis = int(np.ravel(data)[0]) if data is not None else None
        else:
            axis = op.options.get(key)
        rank = len(_tensors(op, graph, "outputs" if k is None else "inputs")[-1].shape) or 1
        if axis is None:
            return "axis is not a constant"
        if axis % max(rank, 1) == 0 and rank > 1:
            return "works along the batch dimension"
        return None
    return check


def _softmax(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    x = _tensors(op, graph)[0]
    if sum(d > 1 for d in x.shape) > 1 or int(np.prod(x.shape or (1,))) > 16000:
        return f"input {list(x.shape)}: supported only 1-D, at most 16,000 elements"
    return None


def _strided_slice(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    strides = _data(op, graph, 3)
    if strides is None or np.any(np.asarray(strides) != 1):
        return "strides are not all 1 (only a plain slice is supported)"
    if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
        return "uses an ellipsis or new-axis mask"
    return None


def _resize(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    x = _tensors(op, graph)[0]
    if sum(d > 1 for d in x.shape) > 3:
        return "input is more than 3-dimensional"
    return None


@dataclass(frozen=True)
class Support:
    runtime: str  # the oldest Edge TPU runtime that maps it ("all", "13", "14")
    check: Check | None = None
    caution: str = ""  # Coral's "may not be mapped" limits, which only the compiler decides


# Coral's supported-operations table, by TFLite builtin name (compiler 16, runtime 14).
SUPPORTED: dict[str, Support] = {
    "ADD": Support("all"), "SUB": Support("all"), "MUL": Support("all"),
    "MAXIMUM": Support("all"), "MINIMUM": Support("all"),
    "AVERAGE_POOL_2D": Support("all", _no_fused_activation), "MAX_POOL_2D": Support("all", _no_fused_activation),
    "CONCATENATION": Support("all", _concatenation),
    "CONV_2D": Support("all", _conv), "DEPTHWISE_CONV_2D": Support("all", _depthwise),
    "FULLY_CONNECTED": Support("all", _fully_connected),
    "L2_NORMALIZATION": Support("all"), "LOGISTIC": Support("all"), "TANH": Support("all"),
    "RELU": Support("all"), "RELU6": Support("all"), "RELU_N1_TO_1": Support("all"),
    "MEAN": Support("all", _reduce({1, 2}, "x and/or y")),
    "PAD": Support("all", _pad),
    "RESHAPE": Support("all", caution="certain reshapes of large tensors may not be mapped"),
    "RESIZE_BILINEAR": Support("all", _resize, "may not be mapped at some sizes, to avoid losing precision"),
    "RESIZE_NEAREST_NEIGHBOR": Support("all", _resize, "may not be mapped at some sizes, to avoid losing precision"),
    "SLICE": Support("all"), "SOFTMAX": Support("all", _softmax), "SPACE_TO_DEPTH": Support("all"),
    "SPLIT": Support("all", _not_batch_axis("axis", 0)),
    "STRIDED_SLICE": Support("all", _strided_slice),
    "EXPAND_DIMS": Support("13"), "PACK": Support("13", _not_batch_axis("axis")), "PRELU": Support("13"),
    "QUANTIZE": Support("13"), "SUM": Support("13", _reduce({1, 2, 3}, "x, y and/or z")),
    "TRANSPOSE_CONV": Support("13"),
    "REDUCE_MAX": Support("14", _reduce({1, 2, 3}, "x, y and/or z")),
    "REDUCE_MIN": Support("14", _reduce({1, 2, 3}, "x, y and/or z")),
    "RSQRT": Support("14"), "SQUARED_DIFFERENCE": Support("14"), "SQUEEZE": Support("14"),
    "TRANSPOSE": Support("14"), "UNIDIRECTIONAL_SEQUENCE_LSTM": Support("14"),
}


@dataclass
class OpVerdict:
    index: int
    op: str
    version: int
    output: list[int]
    macs: int  # multiply-accumulates (convolutions, fully connected); 1 per output element otherwise
    parameter_bytes: int
    tpu: bool
    reason: str  # why it stays on the CPU ("" when it maps)
    note: str = ""
    own_problem: str = ""  # what keeps it off the TPU by itself, ignoring the operators before it


@dataclass
class EdgeTpuReport:
    model: str
    refused: list[str]  # model-level problems: the compiler would refuse the whole model
    ops: list[OpVerdict] = field(default_factory=list)

    @property
    def tpu_ops(self) -> int:
        return sum(v.tpu for v in self.ops)

    @property
    def macs_share(self) -> float:
        total = sum(v.macs for v in self.ops)
        return sum(v.macs for v in self.ops if v.tpu) / total if total else 0.0

    @property
    def tpu_parameter_bytes(self) -> int:
        return sum(v.parameter_bytes for v in self.ops if v.tpu)

    @property
    def supported_alone(self) -> int:
        """Operators the TPU would take were nothing before them left on the CPU."""
        return sum(not v.own_problem for v in self.ops)

    def as_json(self) -> dict:
        return {"model": self.model, "refused": self.refused, "ops_total": len(self.ops), "ops_on_tpu": self.tpu_ops,
                "ops_supported_alone": self.supported_alone,
                "macs_share_on_tpu": round(self.macs_share, 4), "tpu_parameter_bytes": self.tpu_parameter_bytes,
                "ops": [asdict(v) for v in self.ops]}

    def text(self) -> str:
        lines = [f"Edge TPU static report: {self.model}",
                 "(Coral's model requirements and supported-operations table, compiler 16 / runtime 14; "
                 "no compiler was run)"]
        for problem in self.refused:
            lines.append(f"REFUSED: {problem}")
        lines.append(f"{'#':>3}  {'operator':<22}{'v':>2}  {'output':<18}{'MMAC':>8}  where  why")
        for v in self.ops:
            where = "TPU" if v.tpu else "CPU"
            why = v.reason if not v.tpu else (v.note or "")
            lines.append(f"{v.index:>3}  {v.op:<22}{v.version:>2}  {str(v.output):<18}{v.macs / 1e6:>8.2f}  "
                         f"{where:<5}  {why}".rstrip())
        counts: dict[tuple[str, bool], int] = {}
        for v in self.ops:
            counts[(v.op, v.tpu)] = counts.get((v.op, v.tpu), 0) + 1
        lines.append("summary by operator:")
        for (op, tpu), n in sorted(counts.items()):
            lines.append(f"  {op:<22} {n:>3}  {'mapped to the Edge TPU' if tpu else 'CPU'}")
        total_macs = sum(v.macs for v in self.ops)
        lines.append(f"on the Edge TPU: {self.tpu_ops} of {len(self.ops)} operators, "
                     f"{self.macs_share:.1%} of {total_macs / 1e6:.1f} M multiply-accumulates; "
                     f"parameters on the TPU {self.tpu_parameter_bytes / 1e6:.2f} MB "
                     f"({'fits' if self.tpu_parameter_bytes <= EDGETPU_SRAM_BYTES else 'exceeds'} its 8 MB cache)")
        first_cpu = next((v for v in self.ops if not v.tpu and not v.reason.startswith(EDGE)), None)
        if first_cpu is not None and not self.refused:
            lines.append(f"the TPU segment ends at operator {first_cpu.index} ({first_cpu.op}: {first_cpu.reason})")
            blockers = [v for v in self.ops if v.own_problem and not v.reason.startswith(EDGE)]
            lines.append(f"each operator on its own: {self.supported_alone} of {len(self.ops)} supported; "
                         f"the others: " + ", ".join(f"{v.index} {v.op}" for v in blockers))
        return "\n".join(lines)


EDGE = "graph edge:"  # a float<->int conversion at the model's input or output, left on the CPU
AFTER_CPU = "follows a CPU operator: the compiler cuts the graph only once"


def _macs(op: OperatorInfo, graph: TFLiteGraph) -> int:
    outs = _tensors(op, graph, "outputs")
    out_elems = int(np.prod(outs[0].shape)) if outs and outs[0].shape else 1
    ins = _tensors(op, graph)
    if op.name == "CONV_2D" and len(ins) > 1:  # weights: (Cout, kh, kw, Cin)
        return out_elems * int(np.prod(ins[1].shape[1:]))
    if op.name == "DEPTHWISE_CONV_2D" and len(ins) > 1:  # weights: (1, kh, kw, Cout)
        return out_elems * int(np.prod(ins[1].shape[1:3]))
    if op.name == "FULLY_CONNECTED" and len(ins) > 1:  # weights: (Cout, Cin)
        return out_elems * int(ins[1].shape[-1])
    if op.name == "TRANSPOSE_CONV" and len(ins) > 2:  # weights: (Cout, kh, kw, Cin), input is ins[2]
        return int(np.prod(ins[2].shape)) * int(np.prod(ins[1].shape[:3]))
    return out_elems


def _parameter_bytes(op: OperatorInfo, graph: TFLiteGraph) -> int:
    return sum(t.data.nbytes for t in _tensors(op, graph) if t.constant and t.data is not None)


def _tensor_problem(op: OperatorInfo, graph: TFLiteGraph) -> str | None:
    for t in _tensors(op, graph) + _tensors(op, graph, "outputs"):
        if t.constant:
            if t.dtype not in CONSTANT_TYPES:
                return f"constant {t.name or t.index} is {t.dtype} (not quantized)"
            continue
        if t.dtype not in QUANTIZED:
            return f"tensor {t.name or t.index} is {t.dtype}: not an 8-bit quantized tensor"
        if sum(d > 1 for d in t.shape) > 3:
            return f"tensor {t.name or t.index} {list(t.shape)} has more than 3 dimensions larger than 1"
    return None


def _edge_conversion(op: OperatorInfo, graph: TFLiteGraph) -> bool:
    """A QUANTIZE from the float input or a DEQUANTIZE to the float output: the compiler leaves
    these on the CPU at either end of the graph without cutting the TPU segment."""
    ins, outs = _tensors(op, graph), _tensors(op, graph, "outputs")
    if op.name == "QUANTIZE" and ins and ins[0].dtype == "float32" and ins[0].index in graph.inputs:
        return True
    return op.name == "DEQUANTIZE" and bool(outs) and all(t.index in graph.outputs for t in outs)


def check_model(graph: TFLiteGraph) -> EdgeTpuReport:
    refused = []
    if graph.subgraphs > 1:
        refused.append(f"{graph.subgraphs} subgraphs; the Edge TPU compiler takes one")
    dynamic = [t for t in graph.tensors if not t.constant and t.dynamic]
    if dynamic:
        refused.append(f"{len(dynamic)} tensor(s) with dynamic sizes (e.g. {dynamic[0].name} "
                       f"{list(dynamic[0].shape_signature)}); sizes must be constant at compile time")
    activations = [t for t in graph.tensors if not t.constant]
    if not any(t.dtype in QUANTIZED for t in activations) or all(
            t.dtype == "float32" for t in activations if t.index not in graph.inputs + graph.outputs):
        refused.append("not quantized: the Edge TPU runs only 8-bit (int8/uint8) models")
    report = EdgeTpuReport(str(graph.path), refused)
    cut = bool(refused)
    for op in graph.operators:
        note = ""
        support = SUPPORTED.get(op.name)
        if _edge_conversion(op, graph):
            own = f"{EDGE} float conversion at the model's {'input' if op.name == 'QUANTIZE' else 'output'}"
        elif support is None:
            own = "not in the Edge TPU's supported operations"
        else:
            own = _tensor_problem(op, graph) or (support.check(op, graph) if support.check else None) or ""
            note = "; ".join(n for n in (support.caution,
                                         f"needs Edge TPU runtime {support.runtime}+" if support.runtime != "all"
                                         else "") if n)
        if refused:
            reason = "the model is refused (above)"
        elif cut and not own.startswith(EDGE):
            reason = AFTER_CPU
        else:
            reason = own
        tpu = not reason
        if not tpu and not reason.startswith(EDGE):
            cut = True
        outs = _tensors(op, graph, "outputs")
        report.ops.append(OpVerdict(op.index, op.name, op.version, list(outs[0].shape) if outs else [],
                                    _macs(op, graph), _parameter_bytes(op, graph), tpu, reason, note, own))
    return report


def edgetpu_report(model: str | Path) -> EdgeTpuReport:
    """The static Edge TPU report of a .tflite (raises ModelFileError for a file that is not one)."""
    return check_model(read_graph(model))


def print_report(model: str | Path, as_json: bool = False) -> EdgeTpuReport:
    report = edgetpu_report(model)
    print(json.dumps(report.as_json()) if as_json else report.text())
    return report
