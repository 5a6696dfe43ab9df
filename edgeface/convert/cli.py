"""Convert a pretrained face embedder into a verified full-integer TFLite model.

Default: read dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1.dat,
CC0, from the face_recognition_models package), parse dlib's serialization in pure Python,
rebuild the network in Keras with identical semantics, export a float32 and a full-integer
(int8) TFLite model, verify both against dlib's own compute_face_descriptor on real face
chips, and write models/dlib_resnet_v1_int8.tflite + models/dlib_resnet_v1_int8.json.

Alternative: --keras PATH quantises any Keras face embedder (.keras/.h5/SavedModel) through
the same pipeline; fidelity is then measured against the Keras model itself.

Run `python tools/convert.py --help` (or `edgeface convert --help`) for every option.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.convert.chips import (
    ChipSet,
    augment,
    cut_chip_set,
    face_models_dir,
    import_dlib,
    runtime_chip_set,
)
from edgeface.convert.common import (
    CHIP_PADDING,
    DEFAULT_CALIB_DIR,
    DEFAULT_OUT_DIR,
    ConvertError,
    log,
)
from edgeface.convert.fidelity import (
    Reference,
    evaluate,
    evaluate_runtime_chips,
    integer_only_report,
    output_dim,
)
from edgeface.convert.output import (
    build_sidecar,
    report_edgetpu,
    runtime_threshold,
    write_float,
    write_model,
)
from edgeface.convert.resnet import DLIB_DAT_NAME, parse_dlib_resnet, summarize
from edgeface.recognition.embed import file_sha256

DLIB_MODEL_NAME = "dlib_resnet_v1_int8"

EPILOG = """\
pipeline (dlib default):
  1. parse the .dat (dlib serialization, checked against the known 29-conv ResNet)
  2. rebuild in Keras: affine layers folded into convs, input normalisation
     (pixel - (122.782, 117.001, 104.298)) / 256 folded into the first conv, so the model
     input is raw RGB pixels 0..255 (150x150)
  3. face chips from --calib (and --eval) folders: dlib frontal detector + 5-point landmarks +
     dlib.get_face_chip(size=150, padding=0.25), the largest face per image
  4. float32 TFLite and full-integer TFLite (uint8 input, int8 output, TFLITE_BUILTINS_INT8
     only), calibrated on the --calib chips plus mirrored/rotated copies
  5. verification table: float32 and int8 vs dlib's compute_face_descriptor on the same
     chips, same/different-person verification (cosine, threshold chosen on dlib's own
     descriptors for best balanced accuracy), size and single-face latency
  6. write <out-dir>/<name>.tflite and <name>.json atomically; exit 3 without writing when a
     fidelity check fails (unless --force)

exit status: 0 ok, 2 bad input (message names the file), 3 fidelity check failed.

examples:
  python tools/convert.py                         # regenerate models/dlib_resnet_v1_int8.*
  python tools/convert.py --calib ~/faces/train   # calibrate on your own face photos
  python tools/convert.py --keras my_facenet.keras --mean 127.5 --scale 0.0078125 \\
      --calib ~/faces/train --name facenet_int8
"""


def _add_source_options(ap: argparse.ArgumentParser) -> None:
    src = ap.add_argument_group("source model")
    src.add_argument("--dat", type=Path, default=None,
                     help=f"dlib network file (default: {DLIB_DAT_NAME} from the installed "
                          f"face_recognition_models package)")
    src.add_argument("--keras", type=Path, default=None, metavar="PATH",
                     help="instead of dlib: a Keras face embedder (.keras, .h5 or a SavedModel folder) taking "
                          "NHWC RGB face chips; its input size is read from the model")
    src.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                     help="--keras only: per-channel (R G B) or single mean the model expects subtracted "
                          "from 0..255 pixels (default 0)")
    src.add_argument("--scale", type=float, default=None,
                     help="--keras only: multiplier applied after the mean, model input = (pixels - mean) * "
                          "scale (default 1/255). Both are folded into the exported model, whose input is "
                          "raw uint8 pixels")


def _add_data_options(ap: argparse.ArgumentParser) -> None:
    data = ap.add_argument_group("data")
    data.add_argument("--calib", type=Path, default=None, metavar="DIR",
                      help="folder of face photos for int8 calibration, one sub-folder per person (default: "
                           "../shared/datasets/five-celebs/train beside the repository, when present)")
    data.add_argument("--eval", type=Path, nargs="*", default=None, metavar="DIR",
                      help="folders of face photos (sub-folder per person) for the fidelity and verification "
                           "table (default: the calibration folder plus its sibling 'val' folder when present)")
    data.add_argument("--max-calib", type=int, default=0,
                      help="use at most this many calibration faces before augmentation (0 = all)")
    data.add_argument("--no-augment", action="store_true",
                      help="calibrate on the chips only (default adds mirrored and slightly rotated copies)")
    data.add_argument("--runtime-chips", action="store_true",
                      help="also cut the evaluation faces the way edgeface's runtime does (its Haar detector, "
                           "then five landmarks from edgeface.vision.landmarks.Aligner placing the chip) and report "
                           "int8 fidelity and verification on those chips too (slower: the multi-angle Haar "
                           "detector)")


def _add_output_options(ap: argparse.ArgumentParser) -> None:
    out = ap.add_argument_group("output")
    out.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where to write (default: models/)")
    out.add_argument("--name", default=None,
                     help=f"output base name (default {DLIB_MODEL_NAME}, or <keras stem>_int8)")
    out.add_argument("--save-float", action="store_true", help="also write <name minus _int8>_float32.tflite")
    out.add_argument("--edgetpu", action="store_true",
                     help="also compile the int8 model with edgetpu_compiler when it is on PATH and report "
                          "how many ops map to the TPU (otherwise: the static --edgetpu-report of the model)")
    out.add_argument("--edgetpu-report", type=Path, default=None, metavar="MODEL",
                     help="convert nothing: check MODEL.tflite's operators, tensor types and shapes against the "
                          "Edge TPU's documented requirements and print, per operator, whether it would map to "
                          "the TPU or fall back to the CPU, and the share of the model on the TPU (no compiler "
                          "needed)")
    out.add_argument("--threads", type=int, default=1, help="interpreter threads for the latency figures (default 1)")
    out.add_argument("--force", action="store_true", help="write the model even when a fidelity check fails")
    out.add_argument("--parse-only", action="store_true",
                     help="parse and check the dlib file, print the layer summary, write nothing")


def parse_args(argv: list[str] | None, prog: str = "python tools/convert.py") -> argparse.Namespace:
    doc = (__doc__ or "").split("\n\n")
    ap = argparse.ArgumentParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description=doc[0] + "\n\n" + "\n\n".join(doc[1:3]), epilog=EPILOG)
    _add_source_options(ap)
    _add_data_options(ap)
    _add_output_options(ap)
    args = ap.parse_args(argv)
    if args.keras is None and (args.mean is not None or args.scale is not None):
        ap.error("--mean/--scale only apply to --keras models (dlib's normalisation is read from the .dat)")
    if args.mean is not None and len(args.mean) not in (1, 3):
        ap.error("--mean takes 1 or 3 values")
    if args.keras is not None and args.dat is not None:
        ap.error("give either --dat or --keras, not both")
    return args


def data_dirs(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """Calibration folder and evaluation folders, checked before any slow work starts."""
    calib_dir = args.calib or DEFAULT_CALIB_DIR
    if not calib_dir.is_dir():
        if args.calib is None:
            raise ConvertError(f"default calibration folder {DEFAULT_CALIB_DIR} is absent; pass --calib DIR "
                               f"(face photos, one sub-folder per person)")
        raise ConvertError(f"{calib_dir}: calibration folder not found")
    if args.eval:
        eval_dirs = list(args.eval)
    else:
        eval_dirs = [calib_dir]
        sibling = calib_dir.parent / "val"
        if calib_dir.name == "train" and sibling.is_dir():
            eval_dirs.append(sibling)
    for d in eval_dirs:
        if not d.is_dir():
            raise ConvertError(f"{d}: evaluation folder not found")
    return calib_dir, eval_dirs


class Steps:
    """Progress lines "[k/n] ..."; n counts the optional runtime-chip step when it runs."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, msg: str) -> None:
        self.done += 1
        log(f"[{self.done}/{self.total}] {msg}")


@dataclass
class Source:
    """The model to convert, with what it is measured against and how it is described."""
    title: str                      # first words of the report header
    name: str                       # output base name
    model: Any                      # Keras model taking raw 0..255 RGB pixels
    input_hw: tuple[int, int]
    ref: Reference
    meta: dict[str, Any]            # the sidecar's "source"

    @property
    def chip_size(self) -> int:
        return self.input_hw[1]


def dlib_source(args: argparse.Namespace, dat: Path, steps: Steps) -> Source:
    from edgeface.convert.keras_model import build_keras_from_dlib

    steps(f"parsing {dat} ...")
    net = parse_dlib_resnet(dat)
    log("      " + summarize(net))
    data_dirs(args)
    steps("rebuilding in Keras ...")
    model = build_keras_from_dlib(net)
    facerec = import_dlib().face_recognition_model_v1(str(dat))

    def dlib_embed(chips: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(facerec.compute_face_descriptor(np.ascontiguousarray(c)), np.float32)
                         for c in chips])

    meta: dict[str, Any] = {
        "file": dat.name, "sha256": file_sha256(dat), "license": "CC0-1.0 (public domain)",
        "origin": "dlib (Davis King), http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",
        "architecture": "dlib ResNet-34-like metric network (29 conv layers), 128-d, 150x150 RGB",
        "original_normalisation": {"mean_rgb": [round(m, 4) for m in net.input_mean], "divide_by": 256}}
    try:
        import importlib.metadata as md
        meta["package"] = f"face_recognition_models {md.version('face_recognition_models')}"
    except Exception:  # noqa: BLE001
        meta["package"] = "face_recognition_models"
    return Source(f"dlib {DLIB_DAT_NAME}", args.name or DLIB_MODEL_NAME, model, net.input_size,
                  Reference("dlib", dlib_embed, native_distance=0.6), meta)


def keras_source(args: argparse.Namespace, steps: Steps) -> Source:
    from edgeface.convert.keras_model import load_keras_model

    data_dirs(args)
    steps(f"loading Keras model {args.keras} ...")
    base, model, (w, h), mean_in, scale_in = load_keras_model(args.keras, args.mean, args.scale)
    log(f"      input {w}x{h}x3, output {base.output_shape[1]}-d; normalisation (pixels - {mean_in}) * "
        f"{scale_in:g} folded into the model")
    steps("(no rebuild needed)")
    if w != h:
        raise ConvertError(f"{args.keras}: face chips are square; model input {w}x{h} is not")

    def keras_embed(chips: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(chips.astype(np.float32), verbose=0, batch_size=16), np.float32)

    meta: dict[str, Any] = {"file": args.keras.name, "license": "as licensed by the model's author",
                            "original_normalisation": {"mean_rgb": mean_in, "scale": scale_in}}
    if args.keras.is_file():
        meta["sha256"] = file_sha256(args.keras)
    return Source(f"Keras {args.keras}", args.name or (args.keras.stem.replace(".", "_") + "_int8"),
                  model, (h, w), Reference("keras", keras_embed), meta)


def cut_chips(args: argparse.Namespace, calib_dir: Path, eval_dirs: list[Path],
              size: int) -> tuple[ChipSet, ChipSet, np.ndarray]:
    """(calibration faces, evaluation faces, calibration chips after --max-calib and augmentation)."""
    calib_set = cut_chip_set([calib_dir], size, f"calibration {calib_dir.name}")
    eval_parts = [calib_set] if calib_dir.resolve() in [d.resolve() for d in eval_dirs] else []
    extra = [d for d in eval_dirs if d.resolve() != calib_dir.resolve()]
    if extra:
        eval_parts.append(cut_chip_set(extra, size, "evaluation"))
    eval_set = ChipSet.join(eval_parts)
    calib = calib_set.chips
    if args.max_calib:
        calib = calib[: args.max_calib]
    if not args.no_augment:
        calib = augment(calib)
    log(f"      {len(calib_set.chips)} calibration faces -> {len(calib)} calibration chips; "
        f"{len(eval_set.chips)} evaluation faces")
    return calib_set, eval_set, calib


def export_models(model: Any, input_hw: tuple[int, int], calib: np.ndarray,
                  steps: Steps) -> tuple[bytes, bytes, dict[str, Any]]:
    """(float32 TFLite, int8 TFLite, integer_only_report of the int8 one)."""
    from edgeface.convert.keras_model import export_tflite

    steps("exporting float32 TFLite ...")
    shape = (input_hw[0], input_hw[1], 3)
    float_bytes = export_tflite(model, shape, None)
    steps(f"exporting full-integer TFLite (calibrating on {len(calib)} chips) ...")
    t0 = time.perf_counter()
    int8_bytes = export_tflite(model, shape, calib)
    log(f"      done in {time.perf_counter() - t0:.0f} s")
    qinfo = integer_only_report(int8_bytes)
    if qinfo["input_dtype"] != "uint8" or qinfo["output_dtype"] != "int8" or qinfo["tensor_dtypes"].get("float32"):
        raise ConvertError(f"quantised model is not integer-only: {qinfo}")
    return float_bytes, int8_bytes, qinfo


def _calibration_record(args: argparse.Namespace, calib_dir: Path, faces: int, chips: int) -> dict[str, Any]:
    return {"folder": ("../shared/datasets/five-celebs/train (default, relative to the repo)"
                       if args.calib is None else str(calib_dir)),
            "faces": faces, "chips": chips,
            "augmentation": (None if args.no_augment
                             else "mirror + 2 random rotations (+-8 deg, scale 0.95-1.05) per face")}


def parse_only(dat: Path) -> int:
    log(f"parsing {dat} ...")
    net = parse_dlib_resnet(dat)
    print(summarize(net))
    for i, layer in enumerate(net.layers):
        print(f"{i:3d} {layer.describe()}")
    return 0


def edgetpu_report_command(model: Path) -> int:
    from edgeface.convert.edgetpu import print_report
    from edgeface.recognition.tflite_file import ModelFileError

    if not model.is_file():
        raise ConvertError(f"{model}: model file not found")
    try:
        print_report(model)
    except ModelFileError as e:
        raise ConvertError(str(e)) from None
    return 0


def convert(argv: list[str] | None = None, prog: str = "python tools/convert.py") -> int:
    """The conversion; raises ConvertError on bad input (main() turns it into exit status 2)."""
    args = parse_args(argv, prog)
    if args.edgetpu_report is not None:
        return edgetpu_report_command(args.edgetpu_report)
    t_start = time.perf_counter()
    if args.parse_only:
        if args.keras is not None:
            raise ConvertError("--parse-only applies to dlib .dat files")
        return parse_only(args.dat or face_models_dir() / DLIB_DAT_NAME)
    steps = Steps(7 if args.runtime_chips else 6)
    if args.keras is None:
        src = dlib_source(args, args.dat or face_models_dir() / DLIB_DAT_NAME, steps)
    else:
        src = keras_source(args, steps)
    calib_dir, eval_dirs = data_dirs(args)
    steps(f"cutting face chips ({src.chip_size}x{src.chip_size}, padding {CHIP_PADDING}) ...")
    calib_set, eval_set, calib = cut_chips(args, calib_dir, eval_dirs, src.chip_size)
    float_bytes, int8_bytes, qinfo = export_models(src.model, src.input_hw, calib, steps)
    steps("verifying ...")
    calib_sources = set(calib_set.sources)
    held_out = np.array([s not in calib_sources for s in eval_set.sources])
    fid, table, pair_threshold = evaluate(float_bytes, int8_bytes, src.ref, eval_set, args.threads, held_out)
    print(f"{src.title} -> {src.name}.tflite  ({len(eval_set.chips)} chips from {', '.join(map(str, eval_dirs))})")
    print(table)
    if args.runtime_chips:
        steps("edgeface runtime chips (Haar + landmarks) ...")
        rt_set = runtime_chip_set(eval_dirs, src.chip_size)
        fid["runtime_chips"], rt_table = evaluate_runtime_chips(int8_bytes, src.ref, rt_set, pair_threshold,
                                                                args.threads)
        print(rt_table)
    all_ok = all(fid["checks"].values())
    if not all_ok and not args.force:
        log(f"error: fidelity check failed ({', '.join(k for k, v in fid['checks'].items() if not v)}); "
            f"nothing written (use --force to write anyway)")
        return 3
    threshold, method = runtime_threshold(fid, pair_threshold)
    sidecar = build_sidecar(
        name=src.name, input_hw=src.input_hw, embedding_size=output_dim(int8_bytes), threshold=threshold,
        threshold_method=method, qinfo=qinfo, int8_bytes=int8_bytes, source=src.meta,
        command_args=list(sys.argv[1:] if argv is None else argv),
        calibration=_calibration_record(args, calib_dir, len(calib_set.chips), len(calib)),
        reference=src.ref.name, fid=fid)
    tflite_path = write_model(args.out_dir, src.name, int8_bytes, sidecar)
    if args.save_float:
        write_float(args.out_dir, src.name, float_bytes)
    if args.edgetpu:
        report_edgetpu(tflite_path, args.out_dir)
    log(f"total {time.perf_counter() - t_start:.0f} s")
    if not all_ok:
        log("warning: fidelity check failed but --force given; model written")
    return 0


def main(argv: list[str] | None = None, prog: str = "python tools/convert.py") -> int:
    """The converter's entry point: exit status 0 ok, 2 bad input (one-line message naming the
    file), 3 fidelity check failed, 130 interrupted."""
    try:
        return convert(argv, prog)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing written", file=sys.stderr)
        return 130
