"""What the converter writes: the int8 model, its JSON sidecar (read by edgeface.recognition.embed.load_spec),
optionally the float32 model and an Edge TPU compilation."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgeface.convert.common import CHIP_PADDING, atomic_write, log

TOOL_NAME = "edgeface tools/convert.py"
TOOL_VERSION = "1.0.0"

THRESHOLD_METHOD = ("open-set identification: 98th percentile (to 0.005) of each evaluation face's best cosine "
                    "similarity to other identities, i.e. what it scores when its own person is not enrolled "
                    "(int8 embeddings); see fidelity.identification. The pair verification threshold is "
                    "fidelity.verification.threshold")


def runtime_threshold(fid: dict[str, Any], pair_threshold: float) -> tuple[float, str]:
    """(threshold the runtime names faces at, how it was chosen)."""
    if "identification" in fid:
        return fid["identification"]["threshold"], THRESHOLD_METHOD
    if math.isnan(pair_threshold):
        log("warning: evaluation data has a single identity; threshold set to 0.5 (uncalibrated)")
        return 0.5, "uncalibrated default: the evaluation folders hold a single identity"
    return pair_threshold, THRESHOLD_METHOD


def build_sidecar(*, name: str, input_hw: tuple[int, int], embedding_size: int, threshold: float,
                  threshold_method: str, qinfo: dict[str, Any], int8_bytes: bytes, source: dict[str, Any],
                  command_args: list[str], calibration: dict[str, Any], reference: str,
                  fid: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "input_size": [int(input_hw[1]), int(input_hw[0])],
        "color_order": "RGB",
        # The normalisation is folded into the model: it takes raw pixels.
        "mean": [0.0, 0.0, 0.0],
        "scale": 1.0,
        "embedding_size": int(embedding_size),
        "metric": "cosine",
        "threshold": threshold,
        "threshold_method": threshold_method,
        "padding": CHIP_PADDING,
        "chip": "dlib.get_face_chip framing: 5-point landmarks, upright, size input_size, padding 0.25",
        "dtype": {"input": qinfo["input_dtype"], "output": qinfo["output_dtype"],
                  "output_quantization": qinfo["output_quantization"]},
        "sha256": hashlib.sha256(int8_bytes).hexdigest(),
        "source": source,
        "tool": {"name": TOOL_NAME, "version": TOOL_VERSION,
                 "command": " ".join(["python tools/convert.py"] + command_args),
                 "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "calibration": calibration,
        "fidelity": {"reference": reference, **fid},
        "ops": qinfo["ops"],
    }


def write_model(out_dir: Path, name: str, int8_bytes: bytes, sidecar: dict[str, Any]) -> Path:
    tflite_path = out_dir / f"{name}.tflite"
    atomic_write(tflite_path, int8_bytes)
    atomic_write(tflite_path.with_suffix(".json"), (json.dumps(sidecar, indent=2) + "\n").encode())
    log(f"wrote {tflite_path} ({len(int8_bytes) / 1e6:.2f} MB) and {tflite_path.with_suffix('.json')}")
    return tflite_path


def write_float(out_dir: Path, name: str, float_bytes: bytes) -> None:
    fp = out_dir / f"{name.removesuffix('_int8')}_float32.tflite"
    atomic_write(fp, float_bytes)
    log(f"wrote {fp}")


def run_edgetpu_compiler(model_path: Path, out_dir: Path) -> dict[str, Any]:
    exe = shutil.which("edgetpu_compiler")
    if not exe:
        return {"compiled": False, "reason": "edgetpu_compiler not found on PATH; CPU model written only"}
    proc = subprocess.run([exe, "-s", "-o", str(out_dir), str(model_path)], capture_output=True, text=True,
                          check=False)
    text = proc.stdout + proc.stderr
    info: dict[str, Any] = {"compiled": proc.returncode == 0, "log": text[-4000:]}
    for line in text.splitlines():
        if "Number of operations that will run on Edge TPU" in line:
            info["ops_on_tpu"] = int(line.rsplit(":", 1)[1])
        if "Number of operations that will run on CPU" in line:
            info["ops_on_cpu"] = int(line.rsplit(":", 1)[1])
    if proc.returncode == 0:
        info["output"] = str(out_dir / (model_path.stem + "_edgetpu.tflite"))
    return info


def report_edgetpu(tflite_path: Path, out_dir: Path) -> None:
    info = run_edgetpu_compiler(tflite_path, out_dir)
    if not info.get("compiled"):
        print(f"edgetpu: {info.get('reason') or 'edgetpu_compiler failed'}")
        if info.get("log"):
            log(info["log"])
        from edgeface.convert.edgetpu import print_report

        print_report(tflite_path)  # what the compiler would do, checked against Coral's documented requirements
    else:
        print(f"edgetpu: {info.get('ops_on_tpu', '?')} ops on the Edge TPU, {info.get('ops_on_cpu', '?')} on "
              f"CPU -> {info['output']}")
