"""Reading a .tflite file as stored, without an interpreter: its tensors, operators and quantisation.

Runtimes other than LiteRT (OpenVINO) need the model's input and output quantisation to keep the
same quantise/dequantise contract, and the Edge TPU report (edgeface.convert.edgetpu) checks every
operator and tensor. Both read the flatbuffer through the schema module LiteRT ships
(ai_edge_litert.schema_py_generated, with the flatbuffers package LiteRT depends on).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# TFLite's TensorType enum (schema.fbs) -> numpy dtype names; types numpy lacks keep their schema name.
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
                13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4"}


class ModelFileError(ValueError):
    """Not a TFLite flatbuffer we can read; the message names the file."""


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelFileError("reading a .tflite file needs ai-edge-litert (pip install ai-edge-litert)") from None
    return schema_py_generated


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 where the dimension is dynamic
    scale: tuple[float, ...]  # empty: not quantised
    zero_point: tuple[int, ...]
    quantized_dimension: int
    constant: bool  # backed by a buffer in the file (weights, biases, shape arguments)
    data: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def quantization(self) -> tuple[float, int]:
        """(scale, zero_point) as LiteRT's get_input_details reports it: (0.0, 0) when not quantised."""
        if not self.scale:
            return 0.0, 0
        return float(self.scale[0]), int(self.zero_point[0]) if self.zero_point else 0

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)


@dataclass(frozen=True)
class OperatorInfo:
    index: int
    name: str  # BuiltinOperator name (CONV_2D) or the custom code
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 for an optional input left out
    outputs: tuple[int, ...]
    options: dict[str, Any]  # the builtin options table as a dict of its fields (camelCase, as stored)


@dataclass(frozen=True)
class TFLiteGraph:
    path: Path
    tensors: list[TensorInfo]
    operators: list[OperatorInfo]  # in execution order
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraphs: int

    def tensor(self, index: int) -> TensorInfo | None:
        return self.tensors[index] if index >= 0 else None


def _read(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read model {path}: {e.strerror or e}") from None


def _tensor(s, t, index: int, buffers, with_data: bool) -> TensorInfo:
    q = t.quantization
    scale = tuple(float(x) for x in (q.scale if q is not None and q.scale is not None else ()))
    zero = tuple(int(x) for x in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
    shape = tuple(int(x) for x in (t.shape if t.shape is not None else ()))
    signature = tuple(int(x) for x in t.shapeSignature) if t.shapeSignature is not None else shape
    buf = buffers[t.buffer] if buffers is not None and 0 <= t.buffer < len(buffers) else None
    raw = getattr(buf, "data", None) if buf is not None else None
    constant = raw is not None and len(raw) > 0
    dtype = TENSOR_TYPES.get(int(t.type), f"type{t.type}")
    data = None
    if with_data and constant and dtype in ("float32", "int32", "uint8", "int8", "int16", "int64"):
        data = np.frombuffer(np.asarray(raw, np.uint8).tobytes(), dtype=dtype).reshape(shape or (-1,))
    name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
    return TensorInfo(index, name, dtype, shape, signature, scale, zero,
                      int(q.quantizedDimension) if q is not None else 0, constant, data)


def read_graph(path: str | os.PathLike) -> TFLiteGraph:
    """Every tensor (with constant data) and operator of the model's first subgraph."""
    s = _schema()
    buf = _read(path)
    try:
        model = s.ModelT.InitFromPackedBuf(buf, 0)
        sub = model.subgraphs[0]
    except Exception as e:  # a flatbuffer that is not a TFLite model fails anywhere in the generated code
        raise ModelFileError(f"{path}: not a TFLite model ({type(e).__name__}: {e})") from None
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    tensors = [_tensor(s, t, i, model.buffers, True) for i, t in enumerate(sub.tensors or [])]
    operators = []
    for i, op in enumerate(sub.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin == s.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
            name = f"CUSTOM:{custom}"
        else:
            name = names.get(builtin, f"BUILTIN_{builtin}")
        options = {k: v for k, v in vars(op.builtinOptions).items()} if op.builtinOptions is not None else {}
        operators.append(OperatorInfo(i, name, int(code.version),
                                      tuple(int(x) for x in (op.inputs if op.inputs is not None else ())),
                                      tuple(int(x) for x in (op.outputs if op.outputs is not None else ())),
                                      options))
    return TFLiteGraph(Path(path), tensors, operators, tuple(int(x) for x in sub.inputs),
                       tuple(int(x) for x in sub.outputs), len(model.subgraphs))


def io_tensors(path: str | os.PathLike) -> tuple[TensorInfo, TensorInfo]:
    """The first input and first output tensor, read lazily (weights are not copied)."""
    s = _schema()
    buf = _read(path)
    try:
        model = s.Model.GetRootAs(buf, 0)
        sub = model.Subgraphs(0)
        tin = s.TensorT.InitFromObj(sub.Tensors(sub.Inputs(0)))
        tout = s.TensorT.InitFromObj(sub.Tensors(sub.Outputs(0)))
        return (_tensor(s, tin, int(sub.Inputs(0)), None, False),
                _tensor(s, tout, int(sub.Outputs(0)), None, False))
    except Exception as e:  # as above: the generated reader fails anywhere on a foreign file
        raise ModelFileError(f"{path}: not a TFLite model ({type(e).__name__}: {e})") from None
